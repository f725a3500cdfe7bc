"""Reference tests for ``jaxloss.classification``.

Every number compared here comes from outside jaxloss:

* PyTorch (only through ``pytest.importorskip("torch")``): ``F.cross_entropy``,
  ``F.nll_loss``, ``F.multi_margin_loss``, ``F.soft_margin_loss``,
  ``F.multilabel_soft_margin_loss``, ``F.binary_cross_entropy_with_logits``,
  values and autograd gradients; each torch test is paired with a NumPy
  transcription of the documented torch formula (below, ``np_*``) that runs
  without torch;
* Keras 3 on the JAX backend (``keras.losses.*``);
* optax (``optax.losses.*``);
* torchvision's ``sigmoid_focal_loss`` transcribed into NumPy (no CPU wheel here);
* Cui et al. 2019's class-balanced weights, SciPy's ``jensenshannon``, and
  closed forms written as expressions.

Tolerances: 1e-5 relative, 1e-6 absolute in float32. All random inputs are seeded.
"""

from __future__ import annotations

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.spatial.distance
import scipy.special

import jaxloss

RTOL, ATOL = 1e-5, 1e-6
F64 = np.float64


def _rng(seed=0):
    return np.random.default_rng(seed)


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, F64), np.asarray(expected, F64), rtol=rtol, atol=atol)


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras")


def _torch():
    return pytest.importorskip("torch")


def _t(torch, x):
    """A float64 (or int64) torch tensor of a NumPy array."""
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.integer):
        return torch.tensor(x, dtype=torch.int64)
    return torch.tensor(x, dtype=torch.float64)


def _logits(rng, shape, scale=2.0):
    return (scale * rng.normal(size=shape)).astype(np.float32)


def _distributions(rng, shape):
    raw = rng.uniform(0.05, 1.0, size=shape)
    return (raw / raw.sum(-1, keepdims=True)).astype(np.float32)


def _reduce(values, reduction, denominator=None):
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    return values.sum() / (values.size if denominator is None else denominator)


# ======================================================= NumPy transcriptions
def np_log_softmax(x, axis=-1):
    x = np.asarray(x, F64)
    return x - scipy.special.logsumexp(x, axis=axis, keepdims=True)


def np_cross_entropy(logits, labels, *, axis=-1, weight=None, ignore_index=None, label_smoothing=0.0,
                     reduction="mean"):
    """torch ``F.cross_entropy`` with class-index targets, transcribed from the docs and from
    ``cross_entropy_label_smoothing`` in aten/src/ATen/native/LossNLL.cpp:

    nll_n = -w[y_n] log p_{n, y_n} (0 where y_n == ignore_index);
    smooth_n = -sum_c w_c log p_{n, c} (0 where ignored);
    loss_n = (1 - e) nll_n + e / C smooth_n;
    "mean" = sum_n loss_n / sum_{n not ignored} w[y_n].
    """
    logp = np.moveaxis(np_log_softmax(logits, axis), axis, -1)
    num_classes = logp.shape[-1]
    w = np.ones(num_classes) if weight is None else np.asarray(weight, F64)
    labels = np.asarray(labels)
    ignored = np.zeros(labels.shape, bool) if ignore_index is None else labels == ignore_index
    safe = np.where(ignored, 0, labels)
    w_y = np.where(ignored, 0.0, w[safe])
    nll = -np.take_along_axis(logp, safe[..., None], -1)[..., 0] * w_y
    smooth = np.where(ignored, 0.0, -(logp * w).sum(-1))
    loss = (1.0 - label_smoothing) * nll + label_smoothing / num_classes * smooth
    return _reduce(loss, reduction, w_y.sum())


def np_cross_entropy_grad(logits, labels, *, weight=None, ignore_index=None, label_smoothing=0.0):
    """d/dlogits of ``np_cross_entropy(..., reduction="mean")`` (class axis last), by hand:
    d loss_n / d x_n = (1 - e) w_y (p_n - onehot_n) + e / C (sum_c w_c p_n - w), over D = sum w_y."""
    logp = np_log_softmax(logits, -1)
    p = np.exp(logp)
    num_classes = p.shape[-1]
    w = np.ones(num_classes) if weight is None else np.asarray(weight, F64)
    ignored = np.zeros(labels.shape, bool) if ignore_index is None else labels == ignore_index
    safe = np.where(ignored, 0, labels)
    w_y = np.where(ignored, 0.0, w[safe])
    onehot = np.eye(num_classes)[safe]
    g = ((1.0 - label_smoothing) * w_y[..., None] * (p - onehot)
         + label_smoothing / num_classes * (w.sum() * p - w))
    g = np.where(ignored[..., None], 0.0, g)
    return g / w_y.sum()


def np_cross_entropy_probs(logits, targets, *, weight=None, label_smoothing=0.0, reduction="mean"):
    """torch ``F.cross_entropy`` with class-probability targets (docs): targets become
    (1 - e) y + e / C; loss_n = -sum_c w_c y_c log p_c; "mean" divides by N."""
    logp = np_log_softmax(logits, -1)
    num_classes = logp.shape[-1]
    w = np.ones(num_classes) if weight is None else np.asarray(weight, F64)
    q = (1.0 - label_smoothing) * np.asarray(targets, F64) + label_smoothing / num_classes
    return _reduce(-(w * q * logp).sum(-1), reduction)


def np_nll(log_p, labels, *, weight=None, ignore_index=None, reduction="mean"):
    """torch ``F.nll_loss`` docs: l_n = -w[y_n] x_{n, y_n}, 0 where ignored; "mean" / sum w[y_n]."""
    log_p = np.asarray(log_p, F64)
    num_classes = log_p.shape[-1]
    w = np.ones(num_classes) if weight is None else np.asarray(weight, F64)
    ignored = np.zeros(labels.shape, bool) if ignore_index is None else labels == ignore_index
    safe = np.where(ignored, 0, labels)
    w_y = np.where(ignored, 0.0, w[safe])
    loss = -np.take_along_axis(log_p, safe[..., None], -1)[..., 0] * w_y
    return _reduce(loss, reduction, w_y.sum())


def np_multi_margin(x, y, *, p=1, margin=1.0, weight=None, reduction="mean"):
    """torch ``MultiMarginLoss`` docs: l(x, y) = sum_{i != y} w[y] max(0, margin - x[y] + x[i])^p / C;
    "mean" divides by N."""
    x = np.asarray(x, F64)
    num_classes = x.shape[-1]
    x_y = np.take_along_axis(x, y[..., None], -1)
    hinge = np.maximum(0.0, margin - x_y + x) ** p
    hinge = np.where(np.eye(num_classes, dtype=bool)[y], 0.0, hinge)
    loss = hinge.sum(-1) / num_classes
    if weight is not None:
        loss = np.asarray(weight, F64)[y] * loss
    return _reduce(loss, reduction)


def np_soft_margin(x, y, reduction="mean"):
    """torch ``SoftMarginLoss`` docs: log(1 + exp(-y x)), averaged over all elements."""
    return _reduce(np.logaddexp(0.0, -np.asarray(y, F64) * np.asarray(x, F64)), reduction)


def np_multilabel_soft_margin(x, y, *, weight=None, reduction="mean"):
    """torch ``MultiLabelSoftMarginLoss`` docs:
    l = -1/C sum_i w_i (y_i log sigmoid(x_i) + (1 - y_i) log sigmoid(-x_i)); "mean" over N."""
    x, y = np.asarray(x, F64), np.asarray(y, F64)
    terms = y * np.logaddexp(0.0, -x) + (1.0 - y) * np.logaddexp(0.0, x)
    if weight is not None:
        terms = terms * np.asarray(weight, F64)
    return _reduce(terms.mean(-1), reduction)


def np_bce_with_logits(x, y, pos_weight=None, reduction="mean"):
    """torch ``BCEWithLogitsLoss`` docs: l = -[p_c y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))]."""
    x, y = np.asarray(x, F64), np.asarray(y, F64)
    pw = 1.0 if pos_weight is None else np.asarray(pos_weight, F64)
    return _reduce(pw * y * np.logaddexp(0.0, -x) + (1.0 - y) * np.logaddexp(0.0, x), reduction)


def np_torchvision_sigmoid_focal(inputs, targets, alpha=0.25, gamma=2.0):
    """torchvision.ops.sigmoid_focal_loss (reduction="none"), line by line; alpha < 0 disables."""
    inputs, targets = np.asarray(inputs, F64), np.asarray(targets, F64)
    p = 1.0 / (1.0 + np.exp(-inputs))
    ce_loss = np.logaddexp(0.0, -inputs) * targets + np.logaddexp(0.0, inputs) * (1 - targets)
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return loss


def np_keras_categorical_focal(y_true, logits, alpha, gamma, label_smoothing=0.0):
    """keras.losses.categorical_focal_crossentropy(from_logits=True), transcribed: softmax,
    clip to [1e-7, 1 - 1e-7], -alpha (1 - p)^gamma y log p summed over classes."""
    num_classes = logits.shape[-1]
    y = (1.0 - label_smoothing) * np.asarray(y_true, F64) + label_smoothing / num_classes
    p = np.clip(np.exp(np_log_softmax(logits)), 1e-7, 1 - 1e-7)
    return (np.asarray(alpha, F64) * (1.0 - p) ** gamma * -y * np.log(p)).sum(-1)


def np_class_balanced(n, beta):
    """Cui et al. 2019, eq. (8) and the authors' code: w = (1 - beta) / (1 - beta^n), w * C / sum w."""
    n = np.asarray(n, F64)
    w = (1.0 - beta) / (1.0 - np.power(beta, n))
    return w / w.sum() * n.size


# ================================================== integer-label cross-entropy
# Labels with every class present, padding (-100) and class 1 (ignored when ignore_index=1).
_CE_LABELS = np.array([0, 1, 2, 3, 4, -100, 1, 3, -100, 2, 0, 4], np.int32)
_CLASS_WEIGHTS = np.array([0.5, 2.0, 1.0, 0.25, 3.0], np.float32)


def _ce_case(ignore_index, seed=10):
    rng = _rng(seed)
    logits = _logits(rng, (_CE_LABELS.size, 5))
    labels = _CE_LABELS.copy()
    if ignore_index != -100:  # no padding to ignore: draw in-range labels instead (-100 would be NaN)
        labels = np.where(labels < 0, rng.integers(0, 5, labels.shape), labels).astype(np.int32)
    return logits, labels


CE_COMBOS = [(cw, ii, ls) for cw in (False, True) for ii in (None, -100, 1) for ls in (0.0, 0.1)]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("use_weights,ignore_index,label_smoothing", CE_COMBOS)
def test_integer_ce_matches_torch_formula(use_weights, ignore_index, label_smoothing, reduction):
    # Reference: torch F.cross_entropy docs + LossNLL.cpp cross_entropy_label_smoothing (NumPy).
    logits, labels = _ce_case(ignore_index)
    weight = _CLASS_WEIGHTS if use_weights else None
    got = jaxloss.softmax_cross_entropy_with_integer_labels(
        logits, labels, class_weights=weight, ignore_index=ignore_index, label_smoothing=label_smoothing,
        reduction=reduction)
    expected = np_cross_entropy(logits, labels, weight=weight, ignore_index=ignore_index,
                                label_smoothing=label_smoothing, reduction=reduction)
    _close(got, expected)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("use_weights,ignore_index,label_smoothing", CE_COMBOS)
def test_integer_ce_matches_torch(use_weights, ignore_index, label_smoothing, reduction):
    # Reference: torch.nn.functional.cross_entropy (float64).
    torch = _torch()
    logits, labels = _ce_case(ignore_index)
    weight = _CLASS_WEIGHTS if use_weights else None
    expected = torch.nn.functional.cross_entropy(
        _t(torch, logits), _t(torch, labels), weight=None if weight is None else _t(torch, weight),
        ignore_index=-100 if ignore_index is None else ignore_index, reduction=reduction,
        label_smoothing=label_smoothing).numpy()
    got = jaxloss.softmax_cross_entropy_with_integer_labels(
        logits, labels, class_weights=weight, ignore_index=ignore_index, label_smoothing=label_smoothing,
        reduction=reduction)
    _close(got, expected)


@pytest.mark.parametrize("use_weights,ignore_index,label_smoothing", CE_COMBOS)
def test_integer_ce_gradient_matches_torch_formula(use_weights, ignore_index, label_smoothing):
    # Reference: the analytic gradient of the torch formula above (NumPy, by hand).
    logits, labels = _ce_case(ignore_index, seed=11)
    weight = _CLASS_WEIGHTS if use_weights else None
    grad = jax.grad(lambda x: jaxloss.softmax_cross_entropy_with_integer_labels(
        x, labels, class_weights=weight, ignore_index=ignore_index, label_smoothing=label_smoothing))(logits)
    _close(grad, np_cross_entropy_grad(logits, labels, weight=weight, ignore_index=ignore_index,
                                       label_smoothing=label_smoothing))


@pytest.mark.parametrize("use_weights,ignore_index,label_smoothing", CE_COMBOS)
def test_integer_ce_gradient_matches_torch(use_weights, ignore_index, label_smoothing):
    # Reference: torch autograd through F.cross_entropy (mean reduction, float64).
    torch = _torch()
    logits, labels = _ce_case(ignore_index, seed=11)
    weight = _CLASS_WEIGHTS if use_weights else None
    x = _t(torch, logits).requires_grad_(True)
    torch.nn.functional.cross_entropy(
        x, _t(torch, labels), weight=None if weight is None else _t(torch, weight),
        ignore_index=-100 if ignore_index is None else ignore_index, label_smoothing=label_smoothing).backward()
    grad = jax.grad(lambda z: jaxloss.softmax_cross_entropy_with_integer_labels(
        z, labels, class_weights=weight, ignore_index=ignore_index, label_smoothing=label_smoothing))(logits)
    _close(grad, x.grad.numpy())


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_integer_ce_class_axis_1_matches_torch(reduction):
    # Reference: torch F.cross_entropy on [N, C, d] inputs (class axis 1), weights + ignore + smoothing.
    rng = _rng(12)
    logits = _logits(rng, (3, 5, 4))
    labels = rng.integers(0, 5, (3, 4)).astype(np.int32)
    labels[0, 1] = labels[2, 3] = -100
    kwargs = dict(ignore_index=-100, label_smoothing=0.2)
    expected = np_cross_entropy(logits, labels, axis=1, weight=_CLASS_WEIGHTS, reduction=reduction, **kwargs)
    got = jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels, axis=1, class_weights=_CLASS_WEIGHTS,
                                                            reduction=reduction, **kwargs)
    _close(got, expected)
    torch = _torch()
    ref = torch.nn.functional.cross_entropy(_t(torch, logits), _t(torch, labels), weight=_t(torch, _CLASS_WEIGHTS),
                                            reduction=reduction, **kwargs).numpy()
    _close(got, ref)


def test_integer_ce_matches_optax():
    # Reference: optax.losses.softmax_cross_entropy_with_integer_labels (no smoothing / weights).
    rng = _rng(13)
    logits = _logits(rng, (4, 3, 6))
    labels = rng.integers(0, 6, (4, 3)).astype(np.int32)
    got = jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels, reduction="none")
    _close(got, optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels))
    # Class axis 0 as well (optax takes axis=).
    got0 = jaxloss.softmax_cross_entropy_with_integer_labels(np.moveaxis(logits, -1, 0), labels, axis=0,
                                                             reduction="none")
    _close(got0, optax.losses.softmax_cross_entropy_with_integer_labels(np.moveaxis(logits, -1, 0), labels,
                                                                       axis=0))


def test_sparse_categorical_crossentropy_matches_keras():
    # Reference: keras.losses.sparse_categorical_crossentropy(from_logits=True).
    keras = _keras()
    rng = _rng(14)
    logits = _logits(rng, (7, 5))
    labels = rng.integers(0, 5, 7).astype(np.int32)
    expected = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    _close(jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels, reduction="none"), expected)
    _close(jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels), np.mean(np.asarray(expected)))


def test_integer_ce_z_loss_adds_z_logsumexp_squared():
    # Reference: PaLM z-loss (Chowdhery et al. 2022): + z * log(Z)^2 per example, log Z by SciPy.
    rng = _rng(15)
    logits = _logits(rng, (6, 4), scale=3.0)
    labels = rng.integers(0, 4, 6).astype(np.int32)
    z = 1e-2
    base = np_cross_entropy(logits, labels, label_smoothing=0.1, reduction="none")
    lse = scipy.special.logsumexp(logits.astype(F64), axis=-1)
    got = jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels, label_smoothing=0.1, z_loss_weight=z,
                                                            reduction="none")
    _close(got, base + z * lse ** 2)
    # Gradient of the z-term alone: 2 z lse softmax(x).
    g = jax.grad(lambda x: jaxloss.softmax_cross_entropy_with_integer_labels(x, labels, z_loss_weight=z,
                                                                             reduction="sum"))(logits)
    g0 = jax.grad(lambda x: jaxloss.softmax_cross_entropy_with_integer_labels(x, labels, reduction="sum"))(logits)
    _close(np.asarray(g, F64) - np.asarray(g0, F64),
           2 * z * lse[:, None] * np.exp(np_log_softmax(logits)), atol=1e-5)


@pytest.mark.parametrize("offset", [1e3, 1e4])
@pytest.mark.parametrize("use_weights,label_smoothing", [(False, 0.0), (True, 0.1), (False, 0.3)])
def test_integer_ce_large_logits_keep_float32_precision(offset, use_weights, label_smoothing):
    # Reference: the torch formula in float64 on the same (float32-rounded) logits. torch's float32
    # log_softmax subtracts the maximum first and stays within rounding of it at any offset; so must we.
    rng = _rng(17)
    logits = (rng.normal(size=(32, 7)) + offset).astype(np.float32)
    labels = rng.integers(0, 7, 32).astype(np.int32)
    weight = np.linspace(0.5, 2.0, 7).astype(np.float32) if use_weights else None
    got = jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels, class_weights=weight,
                                                            label_smoothing=label_smoothing, reduction="none")
    _close(got, np_cross_entropy(logits, labels, weight=weight, label_smoothing=label_smoothing, reduction="none"))
    z = jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels, z_loss_weight=1e-4, reduction="none")
    lse = scipy.special.logsumexp(logits.astype(F64), axis=-1)
    _close(z, np_cross_entropy(logits, labels, reduction="none") + 1e-4 * lse ** 2)


def test_neg_inf_logits_of_masked_classes():
    # A class masked with a -inf logit has probability 0: every softmax loss must equal the same loss on the
    # other classes only (reference: the torch formula / optax on the reduced logits), value and gradient
    # finite, the masked class's gradient 0. torch F.cross_entropy and optax agree (no smoothing).
    rng = _rng(18)
    full = _logits(rng, (5, 4))
    full[:, 2] = -np.inf
    keep = [0, 1, 3]
    reduced = full[:, keep]
    labels = np.array([0, 3, 1, 0, 3], np.int32)
    reduced_labels = np.array([0, 2, 1, 0, 2], np.int32)
    ce = lambda x: jaxloss.softmax_cross_entropy_with_integer_labels(x, labels)  # noqa: E731
    value, grad = jax.value_and_grad(ce)(full)
    _close(value, np_cross_entropy(reduced, reduced_labels))
    _close(value, np.mean(np.asarray(optax.losses.softmax_cross_entropy_with_integer_labels(full, labels))))
    _close(np.asarray(grad)[:, keep], np_cross_entropy_grad(reduced, reduced_labels))
    assert np.all(np.asarray(grad)[:, 2] == 0.0)
    # Distribution labels with 0 weight on the masked class (0 log 0 = 0), focal and poly losses alike.
    targets = _distributions(rng, (5, 3))
    full_targets = np.zeros((5, 4), np.float32)
    full_targets[:, keep] = targets
    for fn, kw in [(jaxloss.softmax_cross_entropy, {}), (jaxloss.softmax_focal_loss, {"gamma": 2.0}),
                   (jaxloss.poly_loss_cross_entropy, {"epsilon": 1.0})]:
        value, grad = jax.value_and_grad(lambda x: fn(x, full_targets, reduction="sum", **kw))(full)
        _close(value, fn(reduced, targets, reduction="sum", **kw))
        assert np.all(np.isfinite(np.asarray(grad))) and np.all(np.asarray(grad)[:, 2] == 0.0), fn.__name__
    _close(jaxloss.softmax_cross_entropy(full, full_targets, reduction="none"),
           optax.losses.softmax_cross_entropy(reduced, targets))
    value = jaxloss.softmax_focal_loss_with_integer_labels(full, labels, alpha=None, gamma=2.0, reduction="none")
    _close(value, np_keras_categorical_focal(np.eye(3)[reduced_labels], reduced, 1.0, 2.0))
    torch = _torch()
    x = _t(torch, full).requires_grad_(True)
    ref = torch.nn.functional.cross_entropy(x, _t(torch, labels))
    ref.backward()
    _close(jaxloss.softmax_cross_entropy_with_integer_labels(full, labels), ref.item())
    _close(jax.grad(ce)(full), x.grad.numpy())


# ===================================================== out-of-range and ignoring
def test_out_of_range_label_is_nan_not_clamped():
    # Contract section 1: a label outside [0, C) that is not ignore_index gives NaN at its position.
    logits = np.log(np.array([[0.5, 0.25, 0.25]] * 4, np.float32))
    labels = np.array([0, 3, -1, 2], np.int32)
    for fn, kw in [(jaxloss.softmax_cross_entropy_with_integer_labels, {}),
                   (jaxloss.softmax_cross_entropy_with_integer_labels, {"class_weights": np.ones(3, np.float32)}),
                   (jaxloss.softmax_cross_entropy_with_integer_labels, {"label_smoothing": 0.1}),
                   (jaxloss.nll_loss, {}),
                   (jaxloss.softmax_focal_loss_with_integer_labels, {}),
                   (jaxloss.multiclass_hinge_loss, {}),
                   (jaxloss.multi_margin_loss, {})]:
        values = np.asarray(fn(logits, labels, reduction="none", **kw))
        assert np.isnan(values[1]) and np.isnan(values[2]), (fn.__name__, kw, values)
        assert np.all(np.isfinite(values[[0, 3]])), (fn.__name__, kw, values)
        assert np.isnan(float(fn(logits, labels, **kw))), (fn.__name__, kw)
    # The in-range positions keep their exact values: -log 0.5 and -log 0.25.
    values = jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels, reduction="none")
    _close(np.asarray(values)[[0, 3]], [np.log(2.0), np.log(4.0)])


def test_ignore_index_leaves_the_denominator():
    # torch semantics: ignored positions are 0 and do not count in "mean": mean over the 2 kept rows.
    logits = np.log(np.array([[0.5, 0.25, 0.25]] * 4, np.float32))
    labels = np.array([0, -100, 1, -100], np.int32)
    got = jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels, ignore_index=-100)
    _close(got, (np.log(2.0) + np.log(4.0)) / 2)
    values = jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels, ignore_index=-100, reduction="none")
    np.testing.assert_array_equal(np.asarray(values)[[1, 3]], [0.0, 0.0])
    # With class weights the denominator is w[0] + w[1] (torch).
    w = np.array([2.0, 0.5, 1.0], np.float32)
    got = jaxloss.nll_loss(logits, labels, ignore_index=-100, class_weights=w)
    _close(got, (2.0 * np.log(2.0) + 0.5 * np.log(4.0)) / (2.0 + 0.5))


def test_checked_names_function_and_labels():
    # Contract section 3: jaxloss.checked raises a clear error naming the loss and "labels".
    logits = np.zeros((3, 4), np.float32)
    bad = np.array([0, 4, 1], np.int32)
    for fn in (jaxloss.softmax_cross_entropy_with_integer_labels, jaxloss.nll_loss, jaxloss.multi_margin_loss):
        with pytest.raises(Exception, match=re.escape(f"jaxloss.{fn.__name__}: labels")):
            jaxloss.checked(fn)(logits, bad)
    safe = jaxloss.checked(jaxloss.softmax_cross_entropy_with_integer_labels)
    with pytest.raises(Exception, match=r"softmax_cross_entropy_with_integer_labels: labels.*got 4"):
        jax.block_until_ready(jax.jit(safe)(logits, bad))
    # ignore_index is allowed; in-range labels pass and give the unchecked value (log 4 each).
    ok = np.array([0, -100, 1], np.int32)
    _close(safe(logits, ok, ignore_index=-100), np.log(4.0))


@pytest.mark.parametrize("use_weights", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_all_ignored_batch_gives_zero_with_zero_gradient(use_weights, label_smoothing):
    # Contract section 1: an empty denominator gives 0.0 with zero gradient, never NaN.
    logits = _logits(_rng(16), (3, 4))
    labels = np.full(3, -100, np.int32)
    kw = dict(ignore_index=-100, label_smoothing=label_smoothing,
              class_weights=np.array([1.0, 2.0, 3.0, 4.0], np.float32) if use_weights else None)
    loss = lambda x: jaxloss.softmax_cross_entropy_with_integer_labels(x, labels, **kw)  # noqa: E731
    value, grad = jax.value_and_grad(loss)(logits)
    assert float(value) == 0.0
    np.testing.assert_array_equal(np.asarray(grad), np.zeros_like(logits))
    value, grad = jax.value_and_grad(lambda x: jaxloss.nll_loss(x, labels, ignore_index=-100))(logits)
    assert float(value) == 0.0
    np.testing.assert_array_equal(np.asarray(grad), np.zeros_like(logits))


# ============================================================== numerics edges
@pytest.mark.parametrize("kw", [{}, {"label_smoothing": 0.1},
                                {"class_weights": np.array([1.0, 2.0, 0.5], np.float32), "label_smoothing": 0.1}])
def test_extreme_logits_finite_value_and_gradient(kw):
    # Closed form: logits [1e4, -1e4, 0]: log Z = 1e4 (exp(-1e4) underflows), p = (1, 0, 0).
    logits = np.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0]], np.float32)
    labels = np.array([0, 1], np.int32)
    value, grad = jax.value_and_grad(
        lambda x: jaxloss.softmax_cross_entropy_with_integer_labels(x, labels, reduction="sum", **kw))(logits)
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
    e = kw.get("label_smoothing", 0.0)
    w = kw.get("class_weights", np.ones(3))
    nll = np.array([0.0, 2e4])                                 # lse - x_y
    smooth = np.array([w @ (1e4 - logits[0].astype(F64))] * 2)  # sum_c w_c (lse - x_c)
    expected = ((1 - e) * w[labels] * nll + e / 3 * smooth).sum()
    _close(value, expected)
    # d/dx of the sum: (1 - e) w_y (p - onehot) + e/3 (sum w p - w), p = (1, 0, 0).
    p = np.array([1.0, 0.0, 0.0])
    expected_grad = [(1 - e) * w[y] * (p - np.eye(3)[y]) + e / 3 * (w.sum() * p - w) for y in labels]
    _close(grad, expected_grad)


@pytest.mark.parametrize("name,kind", [
    ("softmax_cross_entropy_with_integer_labels", "int"), ("nll_loss", "int"),
    ("softmax_focal_loss_with_integer_labels", "int"), ("multiclass_hinge_loss", "int"),
    ("multi_margin_loss", "int"), ("softmax_cross_entropy", "dist"), ("softmax_focal_loss", "dist"),
    ("poly_loss_cross_entropy", "dist"), ("multilabel_soft_margin_loss", "unit"),
    ("sigmoid_binary_cross_entropy", "unit"), ("sigmoid_focal_loss", "unit"), ("soft_margin_loss", "sign"),
    ("hinge_loss", "sign"), ("squared_hinge_loss", "sign")])
@pytest.mark.parametrize("magnitude,dtype", [(1e4, jnp.float32), (60.0, jnp.bfloat16)])
def test_extreme_logits_every_loss(name, kind, magnitude, dtype):
    # Contract section 2: logits of 1e4 (float32) and 60 (bfloat16) give finite values and gradients;
    # 16-bit inputs give float32 results and gradients in the input dtype.
    fn = jaxloss.get(name)
    logits = jnp.asarray(np.array([[magnitude, -magnitude, 0.0], [-magnitude, magnitude, 0.0]]), dtype)
    labels = {"int": np.array([1, 1], np.int32),
              "dist": np.array([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]], np.float32),
              "unit": np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]], np.float32),
              "sign": np.array([[-1.0, 1.0, 1.0], [1.0, -1.0, -1.0]], np.float32)}[kind]
    value, grad = jax.value_and_grad(lambda x: fn(x, labels))(logits)
    assert value.dtype == jnp.float32
    assert grad.dtype == dtype
    assert np.isfinite(float(value)), (name, float(value))
    assert np.all(np.isfinite(np.asarray(grad, F64))), (name, grad)


def test_bfloat16_logits_value_matches_float64_reference():
    # bfloat16 logits of +-60 (exactly representable) computed in float32: torch formula in float64.
    logits = np.array([[60.0, -60.0, 0.0], [-60.0, 60.0, 0.5], [0.25, 1.5, -2.0]])
    labels = np.array([1, 1, 2], np.int32)
    got = jaxloss.softmax_cross_entropy_with_integer_labels(jnp.asarray(logits, jnp.bfloat16), labels,
                                                            label_smoothing=0.1, reduction="none")
    assert got.dtype == jnp.float32
    _close(got, np_cross_entropy(logits, labels, label_smoothing=0.1, reduction="none"))


# ======================================================================= nll_loss
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("use_weights,ignore_index", [(False, None), (True, None), (False, -100), (True, -100),
                                                      (True, 2)])
def test_nll_loss_matches_torch(use_weights, ignore_index, reduction):
    # Reference: torch.nn.NLLLoss docs (NumPy), and torch.nn.functional.nll_loss when installed.
    logits, labels = _ce_case(ignore_index, seed=20)
    log_p = np_log_softmax(logits).astype(np.float32)
    weight = _CLASS_WEIGHTS if use_weights else None
    got = jaxloss.nll_loss(log_p, labels, class_weights=weight, ignore_index=ignore_index, reduction=reduction)
    _close(got, np_nll(log_p, labels, weight=weight, ignore_index=ignore_index, reduction=reduction))
    torch = _torch()
    ref = torch.nn.functional.nll_loss(_t(torch, log_p), _t(torch, labels),
                                       weight=None if weight is None else _t(torch, weight),
                                       ignore_index=-100 if ignore_index is None else ignore_index,
                                       reduction=reduction).numpy()
    _close(got, ref)


def test_nll_loss_of_log_softmax_is_cross_entropy():
    # torch docs: cross_entropy = nll_loss(log_softmax(x)); the CE reference is the NumPy torch formula.
    logits, labels = _ce_case(-100, seed=21)
    got = jaxloss.nll_loss(jax.nn.log_softmax(logits), labels, class_weights=_CLASS_WEIGHTS, ignore_index=-100)
    _close(got, np_cross_entropy(logits, labels, weight=_CLASS_WEIGHTS, ignore_index=-100))


# ============================================= softmax CE with distribution labels
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("use_weights,label_smoothing", [(False, 0.0), (True, 0.0), (False, 0.2), (True, 0.2)])
def test_softmax_ce_probability_targets_matches_torch(use_weights, label_smoothing, reduction):
    # Reference: torch F.cross_entropy with class-probability targets (docs; NumPy, and torch itself).
    rng = _rng(30)
    logits = _logits(rng, (6, 5))
    targets = _distributions(rng, (6, 5))
    weight = _CLASS_WEIGHTS if use_weights else None
    got = jaxloss.softmax_cross_entropy(logits, targets, class_weights=weight, label_smoothing=label_smoothing,
                                        reduction=reduction)
    _close(got, np_cross_entropy_probs(logits, targets, weight=weight, label_smoothing=label_smoothing,
                                       reduction=reduction))
    torch = _torch()
    ref = torch.nn.functional.cross_entropy(_t(torch, logits), _t(torch, targets),
                                            weight=None if weight is None else _t(torch, weight),
                                            label_smoothing=label_smoothing, reduction=reduction).numpy()
    _close(got, ref)


def test_softmax_ce_matches_optax_and_keras():
    # References: optax.losses.softmax_cross_entropy; keras.losses.categorical_crossentropy(from_logits=True).
    rng = _rng(31)
    logits = _logits(rng, (3, 4, 6))
    targets = _distributions(rng, (3, 4, 6))
    got = jaxloss.softmax_cross_entropy(logits, targets, reduction="none")
    _close(got, optax.losses.softmax_cross_entropy(logits, targets))
    got1 = jaxloss.softmax_cross_entropy(np.swapaxes(logits, 1, 2), np.swapaxes(targets, 1, 2), axis=1,
                                         reduction="none")
    _close(got1, optax.losses.softmax_cross_entropy(logits, targets))
    keras = _keras()
    _close(got, keras.losses.categorical_crossentropy(targets, logits, from_logits=True))
    _close(jaxloss.softmax_cross_entropy(logits, targets, label_smoothing=0.1, reduction="none"),
           keras.losses.categorical_crossentropy(targets, logits, from_logits=True, label_smoothing=0.1))


def test_softmax_ce_integer_and_onehot_agree():
    # torch docs: class-index targets without weights equal one-hot probability targets (also with smoothing).
    rng = _rng(32)
    logits = _logits(rng, (5, 4))
    labels = rng.integers(0, 4, 5).astype(np.int32)
    onehot = np.eye(4, dtype=np.float32)[labels]
    _close(jaxloss.softmax_cross_entropy(logits, onehot, label_smoothing=0.3, reduction="none"),
           np_cross_entropy(logits, labels, label_smoothing=0.3, reduction="none"))


# ============================================================== binary losses
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("pos_weight", [None, "scalar", "vector"])
def test_sigmoid_bce_pos_weight_matches_torch(pos_weight, reduction):
    # Reference: torch BCEWithLogitsLoss docs (NumPy) and F.binary_cross_entropy_with_logits.
    rng = _rng(40)
    logits = _logits(rng, (6, 4), scale=3.0)
    labels = rng.uniform(size=(6, 4)).astype(np.float32)
    labels[:3] = np.round(labels[:3])
    pw = {None: None, "scalar": np.float32(2.5), "vector": np.array([0.5, 1.0, 3.0, 0.0], np.float32)}[pos_weight]
    got = jaxloss.sigmoid_binary_cross_entropy(logits, labels, pos_weight=pw, reduction=reduction)
    _close(got, np_bce_with_logits(logits, labels, pw, reduction))
    torch = _torch()
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        _t(torch, logits), _t(torch, labels), pos_weight=None if pw is None else _t(torch, pw),
        reduction=reduction).numpy()
    _close(got, ref)


def test_sigmoid_bce_pos_weight_gradients_and_accuracy_match_torch():
    # The pos_weight form has hand-written derivatives (_numerics.weighted_bce_with_logits). References:
    # float64 torch autograd of F.binary_cross_entropy_with_logits for logits and soft labels (torch does not
    # differentiate pos_weight: for it, the NumPy derivative sum_rows y softplus(-x)), at logits up to +-80,
    # where each softplus must stay accurate relative to its (tiny) value.
    torch = _torch()
    logits = np.array([[-80.0, -20.0, -1.0, 0.0], [0.5, 3.0, 20.0, 80.0], [80.0, -80.0, 7.0, -7.0]], np.float32)
    labels = np.array([[0.0, 1.0, 0.3, 1.0], [0.0, 0.7, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]], np.float32)
    pw = np.array([0.5, 2.0, 3.0, 1.5], np.float32)
    tx, ty = _t(torch, logits).requires_grad_(), _t(torch, labels).requires_grad_()
    ref = torch.nn.functional.binary_cross_entropy_with_logits(tx, ty, pos_weight=_t(torch, pw), reduction="none")
    ref.sum().backward()
    got = jaxloss.sigmoid_binary_cross_entropy(logits, labels, pos_weight=pw, reduction="none")
    _close(got, ref.detach().numpy())
    x64 = logits.astype(np.float64)  # relative accuracy down to e^-80 (torch's form cancels to 0 there)
    _close(got, pw * labels * np.logaddexp(0.0, -x64) + (1 - labels) * np.logaddexp(0.0, x64), rtol=1e-5, atol=0)
    gx, gy, gw = jax.grad(lambda a, b, w: jaxloss.sigmoid_binary_cross_entropy(a, b, pos_weight=w, reduction="sum"),
                          argnums=(0, 1, 2))(logits, labels, pw)
    _close(gx, tx.grad.numpy(), rtol=1e-5, atol=1e-30)
    _close(gy, ty.grad.numpy(), rtol=1e-5, atol=1e-30)
    _close(gw, np.sum(labels * np.logaddexp(0.0, -x64), axis=0), rtol=1e-5, atol=1e-30)


def test_sigmoid_bce_matches_optax_and_closed_forms():
    # Reference: optax.losses.sigmoid_binary_cross_entropy; log(2) at 0 logits; -log sigmoid(50) ~ exp(-50).
    rng = _rng(41)
    logits = _logits(rng, (5, 3), scale=4.0)
    labels = rng.uniform(size=(5, 3)).astype(np.float32)
    _close(jaxloss.sigmoid_binary_cross_entropy(logits, labels, reduction="none"),
           optax.losses.sigmoid_binary_cross_entropy(logits, labels))
    _close(jaxloss.sigmoid_binary_cross_entropy(np.zeros(3, np.float32), np.array([0.0, 0.5, 1.0])), np.log(2.0))
    _close(jaxloss.sigmoid_binary_cross_entropy(np.array([50.0], np.float32), np.array([1.0]), reduction="sum"),
           np.exp(-50.0), rtol=1e-4, atol=0)


def test_sigmoid_bce_label_smoothing_is_keras_binary_smoothing():
    # Reference: keras.losses.binary_crossentropy(from_logits=True, label_smoothing=e): y (1 - e) + e / 2,
    # averaged over the last axis; NumPy transcription of the smoothed BCE as well.
    rng = _rng(42)
    logits = _logits(rng, (4, 5))
    labels = rng.integers(0, 2, (4, 5)).astype(np.float32)
    got = jaxloss.sigmoid_binary_cross_entropy(logits, labels, label_smoothing=0.2, reduction="none")
    _close(got, np_bce_with_logits(logits, labels * 0.8 + 0.1, reduction="none"))
    keras = _keras()
    _close(np.asarray(got).mean(-1),
           keras.losses.binary_crossentropy(labels, logits, from_logits=True, label_smoothing=0.2))


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_binary_cross_entropy_matches_keras(label_smoothing):
    # Reference: keras.losses.binary_crossentropy (probabilities, clipped at 1e-7; mean over the last axis),
    # including probabilities exactly 0 and 1 (where the clip decides the value).
    keras = _keras()
    rng = _rng(43)
    probs = rng.uniform(0.01, 0.99, size=(4, 6)).astype(np.float32)
    probs[0, :2] = [0.0, 1.0]
    labels = rng.integers(0, 2, (4, 6)).astype(np.float32)
    labels[0, :2] = [1.0, 0.0]
    got = jaxloss.binary_cross_entropy(probs, labels, label_smoothing=label_smoothing, reduction="none")
    expected = keras.losses.binary_crossentropy(labels, probs, label_smoothing=label_smoothing)
    _close(np.asarray(got).mean(-1), expected)
    _close(jaxloss.binary_cross_entropy(probs, labels, label_smoothing=label_smoothing),
           np.mean(np.asarray(expected)))



def test_binary_cross_entropy_gradients_match_keras():
    # Reference: jax.grad of keras.losses.binary_crossentropy (JAX backend), with respect to the
    # probabilities and the (soft) labels, inside the clip and at p = 0 and 1 (outside it: gradient 0).
    # jaxloss writes these derivatives by hand (_clipped_bce_partials), so this checks them.
    keras = _keras()
    rng = _rng(44)
    probs = rng.uniform(0.01, 0.99, size=(3, 8)).astype(np.float32)
    probs[0, :2] = [0.0, 1.0]
    labels = rng.uniform(size=(3, 8)).astype(np.float32)
    ours = jax.grad(lambda p, y: jaxloss.binary_cross_entropy(p, y), argnums=(0, 1))(probs, labels)
    theirs = jax.grad(lambda p, y: jnp.mean(keras.losses.binary_crossentropy(y, p)), argnums=(0, 1))(probs, labels)
    _close(ours[0], theirs[0], rtol=1e-4)
    _close(ours[1], theirs[1], rtol=1e-4)
    assert np.asarray(ours[0])[0, 0] == 0.0 and np.asarray(ours[0])[0, 1] == 0.0

def test_binary_cross_entropy_clip_closed_form():
    # Keras clips to [eps, 1 - eps]: p = 0 with y = 1 gives -log(1e-7); both labels at p = 0.5 give log 2.
    got = jaxloss.binary_cross_entropy(np.array([0.0, 0.5, 0.5], np.float32), np.array([1.0, 0.0, 1.0]),
                                       reduction="none")
    _close(got, [-np.log(np.float32(1e-7)), np.log(2.0), np.log(2.0)])
    g = jax.grad(lambda p: jaxloss.binary_cross_entropy(p, np.array([1.0, 0.0]), reduction="sum"))(
        np.array([0.0, 1.0], np.float32))
    assert np.all(np.isfinite(np.asarray(g)))


# ================================================================ focal losses
def np_softmax_focal(q, logits, alpha, gamma):
    """-sum_c alpha_c q_c (1 - p_c)^gamma log p_c in float64 (Lin et al.'s focal term over a softmax), with
    0 log 0 = 0 where q_c = 0 (the contract's convention; Keras clips p instead, see np_keras_categorical_focal)."""
    log_p = np_log_softmax(logits)
    q = np.asarray(q, F64) * np.asarray(alpha, F64)
    with np.errstate(invalid="ignore"):
        terms = np.where(q == 0, 0.0, -q * (-np.expm1(log_p)) ** gamma * log_p)
    return terms.sum(-1)


@pytest.mark.parametrize("gamma", [pytest.param(0.0, marks=pytest.mark.slow), 0.5, 2.0,
                                   pytest.param(3.0, marks=pytest.mark.slow)])  # 0 and 3: full suite only
def test_softmax_focal_fused_cpu_path_matches_transcription(gamma):
    # From 4096 elements the CPU computes the unguarded focal terms in one fused pass and recomputes the
    # batch guarded only when a row is not finite (classification._softmax_focal_rows). Values against the
    # float64 transcription with soft labels and a class weight vector, a batch with a -inf logit of weight 0
    # (the guarded recomputation: finite, 0 log 0 = 0) and a NaN row; gradients (forward and reverse mode)
    # against float64 autodiff of the textbook formula.
    rng = _rng(53)
    n, c = 64, 100                                    # 6400 elements
    logits = _logits(rng, (n, c))
    q = rng.dirichlet(np.ones(c), size=n).astype(np.float32)
    alpha = rng.uniform(0.5, 1.5, size=c).astype(np.float32)
    fn = jax.jit(lambda x, y: jaxloss.softmax_focal_loss(x, y, alpha=alpha, gamma=gamma, reduction="none"))
    _close(fn(logits, q), np_softmax_focal(q, logits, alpha, gamma))
    _close(jax.jit(lambda x, y: jaxloss.softmax_focal_loss(x, y, alpha=alpha, gamma=gamma))(logits, q),
           np_softmax_focal(q, logits, alpha, gamma).mean())
    edge, q_edge = logits.copy(), q.copy()
    edge[3, 7], q_edge[3, 7] = -np.inf, 0.0
    q_edge[3] /= q_edge[3].sum()
    got = np.asarray(fn(edge, q_edge))
    assert np.isfinite(got).all()
    _close(got, np_softmax_focal(q_edge, edge, alpha, gamma))
    nan = logits.copy()
    nan[5, 2] = np.nan
    got = np.asarray(fn(nan, q))
    assert np.isnan(got[5]) and np.isfinite(np.delete(got, 5)).all()
    _close(np.delete(got, 5), np.delete(np_softmax_focal(q, logits, alpha, gamma), 5))

    def reference(x, y):
        p = jax.nn.softmax(x)
        return jnp.sum(-jnp.asarray(alpha, x.dtype)[None, :] * y * (1.0 - p) ** gamma * jnp.log(p))

    grads = jax.grad(lambda x, y: jaxloss.softmax_focal_loss(x, y, alpha=alpha, gamma=gamma, reduction="sum"),
                     argnums=(0, 1))(logits, q)
    with jax.enable_x64(True):
        expected = jax.grad(reference, argnums=(0, 1))(jnp.asarray(logits, F64), jnp.asarray(q, F64))
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(np.asarray(g, F64), np.asarray(e), rtol=1e-4, atol=1e-5)
    tangent = _logits(rng, (n, c))
    _, jvp = jax.jvp(lambda x: jaxloss.softmax_focal_loss(x, q, alpha=alpha, gamma=gamma, reduction="sum"),
                     (logits,), (tangent,))
    np.testing.assert_allclose(float(jvp), float(np.sum(np.asarray(expected[0]) * tangent)), rtol=1e-4)


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (None, 2.0), (0.6, 0.5), (0.25, 0.0), (None, 3.0)])
def test_sigmoid_focal_matches_torchvision_formula(alpha, gamma):
    # Reference: torchvision.ops.sigmoid_focal_loss, transcribed in NumPy (alpha=None <-> alpha=-1).
    rng = _rng(50)
    logits = _logits(rng, (5, 4), scale=3.0)
    labels = rng.integers(0, 2, (5, 4)).astype(np.float32)
    got = jaxloss.sigmoid_focal_loss(logits, labels, alpha=alpha, gamma=gamma, reduction="none")
    expected = np_torchvision_sigmoid_focal(logits, labels, -1.0 if alpha is None else alpha, gamma)
    _close(got, expected)
    _close(jaxloss.sigmoid_focal_loss(logits, labels, alpha=alpha, gamma=gamma), expected.mean())


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (None, 2.0), (0.75, 1.0)])
def test_sigmoid_focal_matches_optax(alpha, gamma):
    # Reference: optax.losses.sigmoid_focal_loss (soft labels too).
    rng = _rng(51)
    logits = _logits(rng, (6, 3))
    labels = rng.uniform(size=(6, 3)).astype(np.float32)
    _close(jaxloss.sigmoid_focal_loss(logits, labels, alpha=alpha, gamma=gamma, reduction="none"),
           optax.losses.sigmoid_focal_loss(logits, labels, alpha=alpha, gamma=gamma))


@pytest.mark.parametrize("label", [0.0, 1.0, 0.3])
def test_sigmoid_binary_cross_entropy_accurate_at_extreme_logits(label):
    # Relative accuracy where the loss is tiny (a confident right logit) against torch's formula in float64;
    # the gradient is sigmoid(x) - y, also at x = 0.
    logits = np.array([-80.0, -30.0, -15.0, -5.0, -1e-3, 0.0, 2.0, 9.7, 15.0, 30.0, 80.0], np.float32)
    labels = np.full_like(logits, label)
    got = np.asarray(jaxloss.sigmoid_binary_cross_entropy(logits, labels, reduction="none"), F64)
    expected = np_bce_with_logits(logits, labels, reduction="none")
    representable = expected > np.finfo(np.float32).tiny
    np.testing.assert_allclose(got[representable], expected[representable], rtol=1e-5)
    assert np.all(got[~representable] < 1e-37)
    grad = jax.grad(lambda x: jaxloss.sigmoid_binary_cross_entropy(x, labels, reduction="sum"))(logits)
    expected_grad = 1.0 / (1.0 + np.exp(-logits.astype(F64))) - label
    np.testing.assert_allclose(np.asarray(grad, F64), expected_grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("label", [0.0, 1.0, 0.3])
def test_sigmoid_focal_accurate_at_extreme_logits(label):
    # The cross-entropy part keeps its relative accuracy where it is tiny (a confident right logit), against
    # the torchvision formula in float64 with gamma = 0 (with gamma > 0 the modulating factor 1 - p_t, the
    # formula's own p + y - 2 p y, loses it in float32 whatever the cross-entropy does); gradients at
    # gamma = 2 against float64 autodiff of that formula (sigmoid(0) - y at 0).
    logits = np.array([-80.0, -30.0, -15.0, -5.0, -1e-3, 0.0, 2.0, 9.7, 15.0, 30.0, 80.0], np.float32)
    labels = np.full_like(logits, label)
    got = np.asarray(jaxloss.sigmoid_focal_loss(logits, labels, gamma=0.0, reduction="none"), F64)
    expected = np_torchvision_sigmoid_focal(logits, labels, gamma=0.0)
    representable = expected > np.finfo(np.float32).tiny
    np.testing.assert_allclose(got[representable], expected[representable], rtol=1e-5)
    assert np.all(got[~representable] < 1e-37)

    def reference(x, y):
        p = jax.nn.sigmoid(x)
        ce = y * jax.nn.softplus(-x) + (1 - y) * jax.nn.softplus(x)
        return jnp.sum((0.25 * y + 0.75 * (1 - y)) * ce * (p + y - 2 * p * y) ** 2)

    grad = jax.grad(lambda x: jaxloss.sigmoid_focal_loss(x, labels, reduction="sum"))(logits)
    with jax.enable_x64(True):
        expected_grad = jax.grad(reference)(jnp.asarray(logits, jnp.float64), jnp.asarray(labels, jnp.float64))
    np.testing.assert_allclose(np.asarray(grad, F64), np.asarray(expected_grad), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (None, 0.5), (0.6, 1.0), (0.25, 3.0)])
def test_sigmoid_focal_gradients_match_torch_autograd(alpha, gamma):
    # Reference: float64 torch autograd of torchvision.ops.sigmoid_focal_loss's formula, with respect to
    # logits, soft labels and gamma (the cross-entropy part's derivative is written by hand).
    torch = _torch()
    rng = _rng(52)
    logits = _logits(rng, (5, 4), scale=4.0)
    labels = rng.uniform(size=(5, 4)).astype(np.float32)
    labels[0] = [0.0, 1.0, 0.0, 1.0]
    tx, ty = _t(torch, logits).requires_grad_(), _t(torch, labels).requires_grad_()
    tg = torch.tensor(gamma, dtype=torch.float64, requires_grad=True)
    p = torch.sigmoid(tx)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(tx, ty, reduction="none")
    loss = ce * (1 - (p * ty + (1 - p) * (1 - ty))) ** tg
    if alpha is not None:
        loss = (alpha * ty + (1 - alpha) * (1 - ty)) * loss
    loss.sum().backward()
    grads = jax.grad(lambda x, y, g: jaxloss.sigmoid_focal_loss(x, y, alpha=alpha, gamma=g, reduction="sum"),
                     argnums=(0, 1, 2))(logits, labels, np.float32(gamma))
    for ours, theirs in zip(grads, (tx.grad, ty.grad, tg.grad)):
        _close(ours, theirs.numpy(), rtol=1e-4, atol=1e-6)


def test_sigmoid_focal_gamma_below_one_finite_gradient():
    # At 1 - p_t = 0 the modulating factor's gradient is taken as 0 (docstring): finite for gamma = 0.5.
    logits = np.array([100.0, -100.0, 0.0], np.float32)
    labels = np.array([1.0, 0.0, 1.0], np.float32)
    g = jax.grad(lambda x: jaxloss.sigmoid_focal_loss(x, labels, gamma=0.5, reduction="sum"))(logits)
    assert np.all(np.isfinite(np.asarray(g)))


@pytest.mark.parametrize("alpha,gamma,label_smoothing", [(0.25, 2.0, 0.0), (1.0, 0.0, 0.0), (0.5, 1.5, 0.1),
                                                         ([0.1, 0.2, 0.3, 0.4], 2.0, 0.0)])
def test_softmax_focal_matches_keras(alpha, gamma, label_smoothing):
    # Reference: keras.losses.CategoricalFocalCrossentropy(from_logits=True, alpha, gamma) with
    # reduction=None (Keras clips probabilities to [1e-7, 1 - 1e-7]: logits here are far from it),
    # and the NumPy transcription of Keras' formula.
    rng = _rng(52)
    logits = _logits(rng, (6, 4), scale=1.0)
    targets = _distributions(rng, (6, 4))
    targets[:3] = np.eye(4, dtype=np.float32)[[0, 2, 3]]
    got = jaxloss.softmax_focal_loss(logits, targets, alpha=np.asarray(alpha, np.float32), gamma=gamma,
                                     label_smoothing=label_smoothing, reduction="none")
    _close(got, np_keras_categorical_focal(targets, logits, alpha, gamma, label_smoothing))
    keras = _keras()
    loss = keras.losses.CategoricalFocalCrossentropy(from_logits=True, alpha=alpha, gamma=gamma,
                                                     label_smoothing=label_smoothing, reduction=None)
    with jax.numpy_rank_promotion("allow"):  # Keras broadcasts a [C] alpha against [N, C] itself
        expected = loss(targets, logits)
    _close(got, expected)


def test_softmax_focal_gamma_zero_alpha_none_is_cross_entropy():
    # Lin et al. 2017: gamma = 0 and no alpha is the cross-entropy (optax as the CE reference).
    rng = _rng(53)
    logits = _logits(rng, (5, 6))
    targets = _distributions(rng, (5, 6))
    _close(jaxloss.softmax_focal_loss(logits, targets, alpha=None, gamma=0.0, reduction="none"),
           optax.losses.softmax_cross_entropy(logits, targets))


@pytest.mark.parametrize("ignore_index", [None, -100])
def test_softmax_focal_integer_labels_matches_keras_onehot(ignore_index):
    # Reference: Keras categorical_focal_crossentropy(from_logits=True) on one-hot labels (NumPy transcription,
    # then keras itself); ignored rows are 0 and leave the mean's denominator.
    rng = _rng(54)
    logits = _logits(rng, (6, 4), scale=1.0)
    labels = rng.integers(0, 4, 6).astype(np.int32)
    if ignore_index is not None:
        labels[[1, 4]] = ignore_index
    kept = labels >= 0
    onehot = np.eye(4)[np.where(kept, labels, 0)]
    expected = np.where(kept, np_keras_categorical_focal(onehot, logits, 0.25, 2.0, 0.1), 0.0)
    got = jaxloss.softmax_focal_loss_with_integer_labels(logits, labels, alpha=0.25, gamma=2.0, label_smoothing=0.1,
                                                         ignore_index=ignore_index, reduction="none")
    _close(got, expected)
    _close(jaxloss.softmax_focal_loss_with_integer_labels(logits, labels, alpha=0.25, gamma=2.0,
                                                          label_smoothing=0.1, ignore_index=ignore_index),
           expected.sum() / kept.sum())
    keras = _keras()
    ref = keras.losses.categorical_focal_crossentropy(onehot.astype(np.float32), logits, alpha=0.25, gamma=2.0,
                                                      from_logits=True, label_smoothing=0.1)
    _close(np.asarray(got)[kept], np.asarray(ref)[kept])


# ==================================================================== poly loss
@pytest.mark.parametrize("epsilon", [2.0, 1.0, -1.0, 0.0])
def test_poly_loss_matches_optax(epsilon):
    # Reference: optax.losses.poly_loss_cross_entropy; epsilon = 0 is optax's softmax_cross_entropy.
    rng = _rng(60)
    logits = _logits(rng, (2, 5, 4))
    targets = _distributions(rng, (2, 5, 4))
    got = jaxloss.poly_loss_cross_entropy(logits, targets, epsilon=epsilon, reduction="none")
    _close(got, optax.losses.poly_loss_cross_entropy(logits, targets, epsilon=epsilon))
    # Leng et al. 2022 eq. (3) on one-hot labels: CE + epsilon (1 - p_t), in NumPy.
    onehot = np.eye(4, dtype=np.float32)[[0, 3, 1, 2, 2]]
    logp = np_log_softmax(logits[0])
    pt_log = (onehot * logp).sum(-1)
    _close(jaxloss.poly_loss_cross_entropy(logits[0], onehot, epsilon=epsilon, reduction="none"),
           -pt_log + epsilon * (1 - np.exp(pt_log)))


# ====================================================================== margins
def test_hinge_losses_match_optax_and_keras():
    # References: optax.losses.hinge_loss; keras.losses.hinge / squared_hinge (mean over the last axis).
    rng = _rng(70)
    scores = _logits(rng, (4, 6), scale=1.5)
    labels = np.where(rng.uniform(size=(4, 6)) < 0.5, -1.0, 1.0).astype(np.float32)
    hinge = jaxloss.hinge_loss(scores, labels, reduction="none")
    _close(hinge, optax.losses.hinge_loss(scores, labels))
    sq = jaxloss.squared_hinge_loss(scores, labels, reduction="none")
    _close(sq, np.maximum(0.0, 1.0 - labels.astype(F64) * scores) ** 2)
    keras = _keras()
    _close(np.asarray(hinge).mean(-1), keras.losses.hinge(labels, scores))
    _close(np.asarray(sq).mean(-1), keras.losses.squared_hinge(labels, scores))


@pytest.mark.parametrize("name,margin", [("hinge_loss", 1.0), ("perceptron_loss", 0.0)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_summed_hinges_at_the_sum_form_sizes_match_numpy(name, margin, reduction):
    # From 2^14 elements "sum"/"mean" run as 0 - reduce(min(y s - m, 0)) with a derivative of its own
    # (classification._reduce_hinge). Reference: NumPy transcription of optax's hinge_loss / perceptron_loss
    # (max(0, m - y s)), gradients -y 1[y s < m] (ds) and -s 1[y s < m] (dy), with jax.nn.relu's 0 at the kink.
    rng = _rng(71)
    shape = (256, 128)
    scores = _logits(rng, shape, scale=2.0)
    labels = np.where(rng.uniform(size=shape) < 0.5, -1.0, 1.0).astype(np.float32)
    scores[0, :4] = [margin, -margin, 2.0, -2.0]  # on the kink (y = +-1 below) and away from it
    labels[0, :4] = [1.0, -1.0, 1.0, 1.0]
    weights = rng.uniform(0.5, 2.0, size=shape).astype(np.float32)
    where = rng.uniform(size=shape) < 0.8
    ys = labels.astype(F64) * scores
    active = ys < margin
    scale = np.where(where, weights, 0.0)
    norm = scale.sum() if reduction == "mean" else 1.0
    expected = (np.maximum(margin - ys, 0.0) * scale).sum() / norm
    expected_ds = -labels * active * scale / norm
    expected_dy = -scores * active * scale / norm
    fn = getattr(jaxloss, name)

    def loss(s, y):
        return fn(s, y, reduction=reduction, weights=weights, where=where)

    for run in (loss, jax.jit(loss)):
        _close(run(scores, labels), expected)
    ds, dy = jax.jit(jax.grad(loss, argnums=(0, 1)))(scores, labels)
    _close(ds, expected_ds)
    _close(dy, expected_dy)
    assert np.all(np.asarray(ds)[0, :2] == 0) and np.all(np.asarray(dy)[0, :2] == 0)  # the kink
    # A batch whose margins all hold gives +0, not -0.
    zero = jax.jit(lambda s, y: fn(s, y, reduction=reduction))(np.abs(scores) + margin + 1.0, np.ones(shape, np.float32))
    assert float(zero) == 0.0 and not np.signbit(np.asarray(zero))
    # Unweighted, against optax itself.
    optax_fn = getattr(optax.losses, name)
    expected_plain = optax_fn(scores, labels).mean() if reduction == "mean" else optax_fn(scores, labels).sum()
    _close(jax.jit(lambda s, y: fn(s, y, reduction=reduction))(scores, labels), expected_plain)


def test_multiclass_hinge_matches_optax_and_keras_categorical_hinge():
    # References: optax.losses.multiclass_hinge_loss; keras.losses.categorical_hinge on one-hot labels,
    # which equals Crammer-Singer when some wrong-class score is >= 0 (forced below).
    rng = _rng(71)
    scores = _logits(rng, (8, 5), scale=1.5)
    labels = rng.integers(0, 5, 8).astype(np.int32)
    wrong = (labels + 1) % 5
    scores[np.arange(8), wrong] = np.abs(scores[np.arange(8), wrong])
    got = jaxloss.multiclass_hinge_loss(scores, labels, reduction="none")
    _close(got, optax.losses.multiclass_hinge_loss(scores, labels))
    # Crammer & Singer 2001 in NumPy: max(0, 1 + max_{c != y} s_c - s_y).
    s = scores.astype(F64)
    s_y = s[np.arange(8), labels]
    others = np.where(np.eye(5, dtype=bool)[labels], -np.inf, s).max(-1)
    _close(got, np.maximum(0.0, 1.0 + others - s_y))
    keras = _keras()
    _close(got, keras.losses.categorical_hinge(np.eye(5, dtype=np.float32)[labels], scores))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("p,margin,use_weights", [(1, 1.0, False), (2, 1.0, False), (1, 0.5, True), (2, 2.0, True)])
def test_multi_margin_matches_torch(p, margin, use_weights, reduction):
    # Reference: torch MultiMarginLoss docs (NumPy) and torch.nn.functional.multi_margin_loss.
    rng = _rng(72)
    scores = _logits(rng, (7, 5), scale=1.0)
    labels = rng.integers(0, 5, 7).astype(np.int32)
    weight = _CLASS_WEIGHTS if use_weights else None
    got = jaxloss.multi_margin_loss(scores, labels, p=p, margin=margin, class_weights=weight, reduction=reduction)
    _close(got, np_multi_margin(scores, labels, p=p, margin=margin, weight=weight, reduction=reduction))
    torch = _torch()
    ref = torch.nn.functional.multi_margin_loss(_t(torch, scores), _t(torch, labels), p=p, margin=margin,
                                                weight=None if weight is None else _t(torch, weight),
                                                reduction=reduction).numpy()
    _close(got, ref)


def test_multi_margin_torch_doc_example():
    # torch MultiMarginLoss docs example: x = [0.1, 0.2, 0.4, 0.8], y = 3 ->
    # 1/4 * ((1 - (0.8 - 0.1)) + (1 - (0.8 - 0.2)) + (1 - (0.8 - 0.4))) = 0.325.
    got = jaxloss.multi_margin_loss(np.array([[0.1, 0.2, 0.4, 0.8]], np.float32), np.array([3]))
    _close(got, 0.25 * ((1 - (0.8 - 0.1)) + (1 - (0.8 - 0.2)) + (1 - (0.8 - 0.4))))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_soft_margin_matches_torch(reduction):
    # Reference: torch SoftMarginLoss docs (NumPy) and torch.nn.functional.soft_margin_loss.
    rng = _rng(73)
    scores = _logits(rng, (5, 3), scale=3.0)
    labels = np.where(rng.uniform(size=(5, 3)) < 0.5, -1.0, 1.0).astype(np.float32)
    got = jaxloss.soft_margin_loss(scores, labels, reduction=reduction)
    _close(got, np_soft_margin(scores, labels, reduction))
    torch = _torch()
    _close(got, torch.nn.functional.soft_margin_loss(_t(torch, scores), _t(torch, labels),
                                                     reduction=reduction).numpy())



def test_soft_margin_values_and_gradients_at_large_margins():
    # The derivatives are written by hand (_soft_margin_partials). References: float64 NumPy of
    # log(1 + e^(-y s)) (logaddexp form) and its derivatives -y sigmoid(-y s) and -s sigmoid(-y s), and
    # torch autograd for the scores; margins up to +-80, where softplus's two regimes meet float32 limits.
    scores = np.array([-80.0, -20.0, -1.0, 0.0, 0.5, 3.0, 20.0, 80.0], np.float32)
    labels = np.array([1.0, -1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0], np.float32)
    z = -labels.astype(np.float64) * scores
    sigmoid = 1.0 / (1.0 + np.exp(-z))
    value, (gs, gy) = jax.value_and_grad(
        lambda s, y: jaxloss.soft_margin_loss(s, y, reduction="sum"), argnums=(0, 1))(scores, labels)
    _close(value, np.sum(np.logaddexp(0.0, z)), rtol=1e-6)
    _close(gs, -labels * sigmoid, rtol=1e-6, atol=1e-30)
    _close(gy, -scores * sigmoid, rtol=1e-6, atol=1e-30)
    torch = _torch()
    ts = torch.tensor(scores.astype(np.float64), requires_grad=True)
    torch.nn.functional.soft_margin_loss(ts, torch.tensor(labels.astype(np.float64)), reduction="sum").backward()
    _close(gs, ts.grad.numpy(), rtol=1e-6, atol=1e-30)

@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("use_weights", [False, True])
def test_multilabel_soft_margin_matches_torch(use_weights, reduction):
    # Reference: torch MultiLabelSoftMarginLoss docs (NumPy) and F.multilabel_soft_margin_loss.
    rng = _rng(74)
    logits = _logits(rng, (6, 5), scale=3.0)
    labels = rng.integers(0, 2, (6, 5)).astype(np.float32)
    weight = _CLASS_WEIGHTS if use_weights else None
    got = jaxloss.multilabel_soft_margin_loss(logits, labels, class_weights=weight, reduction=reduction)
    _close(got, np_multilabel_soft_margin(logits, labels, weight=weight, reduction=reduction))
    torch = _torch()
    ref = torch.nn.functional.multilabel_soft_margin_loss(_t(torch, logits), _t(torch, labels),
                                                          weight=None if weight is None else _t(torch, weight),
                                                          reduction=reduction).numpy()
    _close(got, ref)
    # Gradients with respect to the logits (the binary cross-entropy's written derivative) and soft labels.
    tx, ty = _t(torch, logits).requires_grad_(), _t(torch, labels).requires_grad_()
    torch.nn.functional.multilabel_soft_margin_loss(tx, ty, weight=None if weight is None else _t(torch, weight),
                                                    reduction="sum").backward()
    gx, gy = jax.grad(lambda a, b: jaxloss.multilabel_soft_margin_loss(a, b, class_weights=weight, reduction="sum"),
                      argnums=(0, 1))(logits, labels)
    _close(gx, tx.grad.numpy())
    _close(gy, ty.grad.numpy())


# ================================================================== divergences
def test_kl_divergence_matches_optax_and_keras():
    # References: optax.losses.kl_divergence (with zero targets: 0 log 0 = 0); keras.losses.kld on
    # probabilities away from Keras' 1e-7 clip.
    rng = _rng(80)
    p = _distributions(rng, (4, 5))
    t = _distributions(rng, (4, 5))
    t_zero = t.copy()
    t_zero[0] = [0.5, 0.5, 0.0, 0.0, 0.0]
    log_p = np.log(p)
    _close(jaxloss.kl_divergence(log_p, t_zero, reduction="none"), optax.losses.kl_divergence(log_p, t_zero))
    t64, p64 = t.astype(F64), p.astype(F64)
    _close(jaxloss.kl_divergence(log_p, t, reduction="none"), (t64 * np.log(t64 / p64)).sum(-1))
    keras = _keras()
    _close(jaxloss.kl_divergence(log_p, t, reduction="none"), keras.losses.kl_divergence(t, p))
    _close(jaxloss.kl_divergence(log_p, t), np.mean(np.asarray(keras.losses.kl_divergence(t, p))))


def test_divergences_with_exact_zero_probabilities():
    # Contract section 2 (probabilities exactly 0): 0 log 0 = 0, references scipy.special.rel_entr and
    # scipy.spatial.distance.jensenshannon; finite gradients wherever the divergence is finite.
    p = np.array([[0.5, 0.5, 0.0], [0.25, 0.75, 0.0], [1.0, 0.0, 0.0]])
    t = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    with np.errstate(divide="ignore"):
        log_p, log_t = np.log(p).astype(np.float32), np.log(t).astype(np.float32)
    kl = scipy.special.rel_entr(t, p).sum(-1)  # [0, inf, inf]
    _close(jaxloss.kl_divergence(log_p, t.astype(np.float32), reduction="none"), kl)
    _close(jaxloss.kl_divergence_with_log_targets(log_p, log_t, reduction="none"), kl)
    js = scipy.spatial.distance.jensenshannon(p, t, axis=-1) ** 2
    _close(jaxloss.jensen_shannon_divergence(log_p, log_t, reduction="none"), js)
    _close(js[2], np.log(2.0))
    finite = slice(0, 1)
    for fn, target in [(jaxloss.kl_divergence, t.astype(np.float32)),
                       (jaxloss.kl_divergence_with_log_targets, log_t)]:
        grads = jax.grad(fn, argnums=(0, 1))(log_p[finite], target[finite])
        assert all(np.all(np.isfinite(np.asarray(g))) for g in grads), fn.__name__
        _close(grads[0], -t[finite] / 1)  # d/dlog_p of sum t (log t - log p) = -t (batch of 1)
    grads = jax.grad(jaxloss.jensen_shannon_divergence, argnums=(0, 1))(log_p, log_t)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)


def test_kl_divergence_with_log_targets_matches_optax():
    # Reference: optax.losses.kl_divergence_with_log_targets; equals kl_divergence(log p, exp(log t)).
    rng = _rng(81)
    log_p = np.log(_distributions(rng, (3, 6)))
    log_t = np.log(_distributions(rng, (3, 6)))
    got = jaxloss.kl_divergence_with_log_targets(log_p, log_t, reduction="none")
    _close(got, optax.losses.kl_divergence_with_log_targets(log_p, log_t))
    _close(got, (np.exp(log_t.astype(F64)) * (log_t.astype(F64) - log_p)).sum(-1))


def test_jensen_shannon_matches_scipy():
    # Reference: scipy.spatial.distance.jensenshannon returns sqrt(JS) (natural log); square it.
    rng = _rng(82)
    p = _distributions(rng, (5, 4)).astype(F64)
    t = _distributions(rng, (5, 4)).astype(F64)
    p[0] = [1.0, 0.0, 0.0, 0.0]
    t[0] = [0.0, 0.5, 0.5, 0.0]
    expected = scipy.spatial.distance.jensenshannon(p, t, axis=-1) ** 2
    with np.errstate(divide="ignore"):
        log_p, log_t = np.log(p).astype(np.float32), np.log(t).astype(np.float32)
    got = jaxloss.jensen_shannon_divergence(log_p, log_t, reduction="none")
    _close(got, expected)
    # Disjoint supports: log 2; symmetric in its arguments.
    _close(np.asarray(got)[0], np.log(2.0))
    _close(jaxloss.jensen_shannon_divergence(log_t, log_p, reduction="none"), expected)
    g = jax.grad(lambda a: jaxloss.jensen_shannon_divergence(a, log_t))(log_p)
    assert np.all(np.isfinite(np.asarray(g)))


# =================================================================== utilities
def test_smooth_labels_matches_optax():
    # Reference: optax.losses.smooth_labels.
    labels = np.eye(5, dtype=np.float32)[[0, 3, 4, 1]]
    for alpha in (0.0, 0.1, 1.0):
        _close(jaxloss.smooth_labels(labels, alpha), optax.losses.smooth_labels(labels, alpha))
    _close(jaxloss.smooth_labels(labels, 0.2), 0.8 * labels + 0.2 / 5)


@pytest.mark.parametrize("beta", [0.9, 0.99, 0.999, 0.9999])
def test_class_balanced_weights_closed_form(beta):
    # Reference: Cui et al. 2019 (eq. 8, and the authors' code): (1 - beta) / (1 - beta^n), summing to C.
    n = np.array([5000, 1200, 300, 40, 7, 1])
    got = jaxloss.class_balanced_weights(n, beta=beta)
    assert got.dtype == jnp.float32
    _close(got, np_class_balanced(n, beta))
    _close(np.sum(np.asarray(got, F64)), n.size)


def test_class_balanced_weights_limits():
    # Cui et al. 2019: beta = 0 gives uniform weights; beta -> 1 gives inverse class frequency (sum C).
    n = np.array([100, 10, 1])
    _close(jaxloss.class_balanced_weights(n, beta=0.0), np.ones(3))
    inv = (1.0 / n) / (1.0 / n).sum() * 3
    _close(jaxloss.class_balanced_weights(n, beta=1.0 - 1e-7), inv, rtol=1e-3)
    # A class with no samples gets 0; the others keep the closed form's ratios, and all sum to C.
    got = np.asarray(jaxloss.class_balanced_weights(np.array([100, 0, 10]), beta=0.99), F64)
    assert got[1] == 0.0
    ref = (1 - 0.99) / (1 - 0.99 ** np.array([100.0, 10.0]))
    _close(got[[0, 2]], ref / ref.sum() * 3)


# ============================================================ errors (contract 3)
LOGITS = np.zeros((3, 4), np.float32)
LABELS = np.array([0, 1, 2], np.int32)


def _raises(exc, fn_name, argument):
    return pytest.raises(exc, match=re.escape(f"jaxloss.{fn_name}: {argument}"))


@pytest.mark.parametrize("fn_name,call,argument", [
    ("softmax_cross_entropy_with_integer_labels",
     lambda: jaxloss.softmax_cross_entropy_with_integer_labels(LOGITS, LABELS, label_smoothing=1.5),
     "label_smoothing"),
    ("softmax_cross_entropy", lambda: jaxloss.softmax_cross_entropy(LOGITS, LOGITS, label_smoothing=-0.1),
     "label_smoothing"),
    ("sigmoid_binary_cross_entropy",
     lambda: jaxloss.sigmoid_binary_cross_entropy(LOGITS, LOGITS, label_smoothing=1.5), "label_smoothing"),
    ("sigmoid_focal_loss", lambda: jaxloss.sigmoid_focal_loss(LOGITS, LOGITS, gamma=-1.0), "gamma"),
    ("sigmoid_focal_loss", lambda: jaxloss.sigmoid_focal_loss(LOGITS, LOGITS, alpha=1.5), "alpha"),
    ("softmax_focal_loss", lambda: jaxloss.softmax_focal_loss(LOGITS, LOGITS, gamma=-1.0), "gamma"),
    ("softmax_focal_loss_with_integer_labels",
     lambda: jaxloss.softmax_focal_loss_with_integer_labels(LOGITS, LABELS, gamma=-1.0), "gamma"),
    ("softmax_focal_loss", lambda: jaxloss.softmax_focal_loss(LOGITS, LOGITS, alpha=np.array([1.0, -1.0, 1.0, 1.0])),
     "alpha"),
    ("softmax_cross_entropy_with_integer_labels",
     lambda: jaxloss.softmax_cross_entropy_with_integer_labels(LOGITS, LABELS,
                                                               class_weights=np.array([1.0, -1.0, 1.0, 1.0])),
     "class_weights"),
    ("softmax_cross_entropy_with_integer_labels",
     lambda: jaxloss.softmax_cross_entropy_with_integer_labels(LOGITS, LABELS, class_weights=np.ones(3, np.float32)),
     "class_weights"),
    ("nll_loss", lambda: jaxloss.nll_loss(LOGITS, LABELS, class_weights=np.ones((4, 1), np.float32)),
     "class_weights"),
    ("nll_loss", lambda: jaxloss.nll_loss(LOGITS, LABELS, class_weights=np.array([1.0, 1.0, -2.0, 1.0])),
     "class_weights"),
    ("softmax_cross_entropy", lambda: jaxloss.softmax_cross_entropy(LOGITS, LOGITS, class_weights=np.ones(5)),
     "class_weights"),
    ("multi_margin_loss", lambda: jaxloss.multi_margin_loss(LOGITS, LABELS, class_weights=np.ones(2)),
     "class_weights"),
    ("multilabel_soft_margin_loss",
     lambda: jaxloss.multilabel_soft_margin_loss(LOGITS, LOGITS, class_weights=-np.ones(4)), "class_weights"),
    ("multi_margin_loss", lambda: jaxloss.multi_margin_loss(LOGITS, LABELS, p=3), "p"),
    ("sigmoid_binary_cross_entropy", lambda: jaxloss.sigmoid_binary_cross_entropy(LOGITS, LOGITS, pos_weight=-1.0),
     "pos_weight"),
    ("binary_cross_entropy", lambda: jaxloss.binary_cross_entropy(LOGITS, LOGITS, epsilon=0.0), "epsilon"),
    ("smooth_labels", lambda: jaxloss.smooth_labels(LOGITS, 1.5), "alpha"),
    ("class_balanced_weights", lambda: jaxloss.class_balanced_weights(np.array([1, 2]), beta=1.0), "beta"),
    ("softmax_cross_entropy_with_integer_labels",
     lambda: jaxloss.softmax_cross_entropy_with_integer_labels(LOGITS, LABELS, z_loss_weight=-1.0), "z_loss_weight"),
    ("softmax_cross_entropy_with_integer_labels",
     lambda: jaxloss.softmax_cross_entropy_with_integer_labels(LOGITS, LABELS, reduction="avg"), "reduction"),
    ("kl_divergence", lambda: jaxloss.kl_divergence(LOGITS, LOGITS, reduction="batchmean"), "reduction"),
    ("hinge_loss", lambda: jaxloss.hinge_loss(LOGITS, LOGITS, reduction=None), "reduction"),
    ("multi_margin_loss", lambda: jaxloss.multi_margin_loss(LOGITS, LABELS, reduction="elementwise_mean"),
     "reduction"),
])
def test_bad_hyper_parameters_raise_value_error(fn_name, call, argument):
    # Contract section 3: ValueError at call time naming the function and the argument.
    with _raises(ValueError, fn_name, argument):
        call()


@pytest.mark.parametrize("fn_name", ["softmax_cross_entropy_with_integer_labels", "nll_loss",
                                     "softmax_focal_loss_with_integer_labels", "multiclass_hinge_loss",
                                     "multi_margin_loss"])
def test_label_dtype_and_shape_errors(fn_name):
    # Contract section 3: float class indices are a TypeError; a labels shape that is not the logits' shape
    # without the class axis is a ValueError (no silent broadcasting); both name the function and "labels".
    fn = jaxloss.get(fn_name)
    with _raises(TypeError, fn_name, "labels"):
        fn(LOGITS, LABELS.astype(np.float32))
    with _raises(ValueError, fn_name, "labels"):
        fn(LOGITS, LABELS[:2])
    with _raises(ValueError, fn_name, "labels"):
        fn(LOGITS, LABELS[:, None])
    with _raises(TypeError, fn_name, "scores" if "hinge" in fn_name or "margin" in fn_name else
                 ("log_probabilities" if fn_name == "nll_loss" else "logits")):
        fn(LOGITS.astype(np.int32), LABELS)


@pytest.mark.parametrize("fn_name,argument", [
    ("softmax_cross_entropy", "labels"), ("sigmoid_binary_cross_entropy", "labels"),
    ("multilabel_soft_margin_loss", "labels"), ("kl_divergence", "targets"),
    ("jensen_shannon_divergence", "log_targets"), ("hinge_loss", "labels")])
def test_distribution_label_shape_mismatch_raises(fn_name, argument):
    # Contract section 3: equal shapes required, no broadcasting; the message names the function.
    fn = jaxloss.get(fn_name)
    with pytest.raises(ValueError, match=re.escape(f"jaxloss.{fn_name}:") + r".*\(3, 4\) and " +
                       re.escape(f"{argument} (3, 1)")):
        fn(LOGITS, LOGITS[:, :1])


def test_traced_hyper_parameters_still_work():
    # Contract section 3: traced hyper-parameters are not checked in Python and give the same values
    # (reference: the NumPy torch formula).
    logits, labels = _ce_case(-100, seed=90)

    @jax.jit
    def loss(ls, w):
        return jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels, label_smoothing=ls,
                                                                 class_weights=w, ignore_index=-100)

    _close(loss(0.2, _CLASS_WEIGHTS), np_cross_entropy(logits, labels, weight=_CLASS_WEIGHTS, ignore_index=-100,
                                                       label_smoothing=0.2))
    g = jax.jit(jax.grad(lambda a: jaxloss.sigmoid_focal_loss(logits, (logits > 0).astype(np.float32),
                                                              alpha=a)))(0.3)
    assert np.isfinite(float(g))


def test_where_masks_like_slicing_torch_formula():
    # Contract section 1: where=False rows equal dropping them (NaN inputs there included), with
    # class weights: the denominator is the sum of the kept rows' w[y] (torch formula on the kept rows).
    logits, labels = _ce_case(None, seed=91)
    keep = np.arange(labels.size) % 3 != 0
    poisoned = logits.copy()
    poisoned[~keep] = np.nan
    kw = dict(class_weights=_CLASS_WEIGHTS, label_smoothing=0.1)
    value, grad = jax.value_and_grad(lambda x: jaxloss.softmax_cross_entropy_with_integer_labels(
        x, labels, where=keep, **kw))(poisoned)
    _close(value, np_cross_entropy(logits[keep], labels[keep], weight=_CLASS_WEIGHTS, label_smoothing=0.1))
    assert np.all(np.asarray(grad)[~keep] == 0.0) and np.all(np.isfinite(np.asarray(grad)))


# ============================================= issue 11: tuple class axes, z_loss
@pytest.mark.parametrize("axis", [(1, 3), (3, 1), (-1,), (2, 3)])
def test_integer_labels_tuple_axis_equals_optax(axis):
    # optax flattens the class axes (moved last, in the order given) and indexes them with the labels.
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    batch_shape = tuple(d for i, d in enumerate(x.shape) if i not in {a % 4 for a in axis})
    num_classes = int(np.prod([x.shape[a] for a in axis]))
    y = rng.integers(0, num_classes, size=batch_shape).astype(np.int32)
    expected = optax.softmax_cross_entropy_with_integer_labels(x, y, axis=axis)
    got = jaxloss.softmax_cross_entropy_with_integer_labels(x, y, axis=axis, reduction="none")
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("axis", [(1, 3), (2, 1)])
def test_distribution_labels_tuple_axis_equals_optax(axis):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    q = rng.uniform(size=x.shape).astype(np.float32)
    q = q / q.sum(axis=axis, keepdims=True)
    expected = optax.softmax_cross_entropy(x, q, axis=axis)
    got = jaxloss.softmax_cross_entropy(x, q, axis=axis, reduction="none")
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_tuple_axis_errors():
    x = jnp.zeros((2, 3, 4))
    with pytest.raises(ValueError, match=r"jaxloss\.softmax_cross_entropy_with_integer_labels: axis must be in"):
        jaxloss.softmax_cross_entropy_with_integer_labels(x, jnp.zeros(2, jnp.int32), axis=(1, 5))
    with pytest.raises(ValueError, match=r"jaxloss\.softmax_cross_entropy: axis must not repeat an axis"):
        jaxloss.softmax_cross_entropy(x, x, axis=(1, -2))


def test_z_loss_is_squared_logsumexp():
    # Reference: scipy's logsumexp (PaLM / ST-MoE: z_loss = log(Z)^2).
    from scipy.special import logsumexp
    rng = np.random.default_rng(13)
    x = rng.normal(scale=3.0, size=(4, 7))
    np.testing.assert_allclose(jaxloss.z_loss(x.astype(np.float32), reduction="none"),
                               logsumexp(x, axis=-1) ** 2, rtol=1e-6)
    np.testing.assert_allclose(jaxloss.z_loss(x.T.astype(np.float32), axis=0, reduction="none"),
                               logsumexp(x, axis=-1) ** 2, rtol=1e-6)
    big = jnp.array([[1e4, -1e4, 0.0]])
    assert np.isfinite(float(jaxloss.z_loss(big))) and np.all(np.isfinite(jax.grad(jaxloss.z_loss)(big)))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_strict_promotion_accepts_every_float_dtype(dtype):
    # Issue 11 item 8: under strict promotion (conftest) the compute dtype is chosen explicitly.
    rng = np.random.default_rng(14)
    x = jnp.asarray(rng.normal(size=(3, 4)), dtype)
    y = jnp.array([0, 1, 3])
    with jax.numpy_dtype_promotion("strict"):
        for value in (jaxloss.softmax_cross_entropy_with_integer_labels(x, y), jaxloss.huber_loss(x, x * 0.5),
                      jaxloss.z_loss(x), jaxloss.sigmoid_binary_cross_entropy(x, jnp.ones_like(x))):
            assert value.dtype == jnp.float32 and np.isfinite(float(value))


def test_is_zero_is_equality_with_zero_on_every_special_float():
    # _numerics.is_zero (x - x == x) is the constant-free zero test of the log-target KL's guard.
    from jaxloss import _numerics
    tiny = np.finfo(np.float32).smallest_subnormal
    x = np.array([0.0, -0.0, tiny, -tiny, 1e-37, 1.0, -2.5, 3e38, np.inf, -np.inf, np.nan], np.float32)
    for fn in (_numerics.is_zero, jax.jit(_numerics.is_zero)):
        got = np.asarray(fn(jnp.asarray(x)))
        # XLA:CPU may flush subnormals to zero inside a kernel: then they count as zero, as for `x == 0` there.
        flushed = np.asarray(jax.jit(lambda v: v == 0)(jnp.asarray(x)))
        np.testing.assert_array_equal(got[[0, 1, 4, 5, 6, 7, 8, 9, 10]],
                                      [True, True, False, False, False, False, False, False, False])
        np.testing.assert_array_equal(got[2:4], flushed[2:4])
