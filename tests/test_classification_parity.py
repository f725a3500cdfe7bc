"""Reference tests for the classic-parity classification losses (issue 14, items 1-3).

Every expected number comes from outside jaxloss:

* optax (installed with the test extra): ``optax.losses.sparsemax_loss``,
  ``multiclass_sparsemax_loss``, ``perceptron_loss``, ``multiclass_perceptron_loss``,
  ``convex_kl_divergence`` and ``make_fenchel_young_loss``, values and ``jax.grad``
  gradients, and NumPy transcriptions of their formulas in
  ``optax/losses/_classification.py``, ``optax/losses/_fenchel_young.py`` and
  ``optax/projections/_projections.py`` (``_projection_unit_simplex``);
* Keras 3 on the JAX backend: ``keras.losses.CategoricalGeneralizedCrossEntropy`` on
  ``softmax(logits)``, and a transcription of ``categorical_generalized_cross_entropy`` in
  ``keras/src/losses/losses.py``;
* PyTorch (``pytest.importorskip("torch")``): ``F.multilabel_margin_loss`` values and
  autograd gradients, and a transcription of the loop in
  ``aten/src/ATen/native/LossMultiLabelMargin.cpp`` (``multilabel_margin_loss_forward_out_frame``).

Tolerances: 1e-5 relative, 1e-6 absolute in float32. Every random input is seeded.
"""

from __future__ import annotations

import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special

import jaxloss
from jaxloss import _numerics
from jaxloss import classification as cl

RTOL, ATOL = 1e-5, 1e-6
F64 = np.float64


def _rng(seed=0):
    return np.random.default_rng(seed)


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, F64), np.asarray(expected, F64), rtol=rtol, atol=atol)


def _scores(rng, shape=(7, 5), scale=2.0):
    return (rng.normal(size=shape) * scale).astype(np.float32)


# ------------------------------------------------------------ NumPy transcriptions
def np_sparse_plus(x):
    # jax.nn.sparse_plus, as optax.losses.sparsemax_loss uses it.
    return np.where(x <= -1.0, 0.0, np.where(x >= 1.0, x, (x + 1.0) ** 2 / 4))


def np_sparsemax_loss(logits, labels):
    # optax/losses/_classification.py: sparse_plus(where(labels, -logits, logits)).
    return np_sparse_plus(np.where(labels, -logits, logits).astype(F64))


def np_perceptron_loss(scores, labels):
    # optax/losses/_classification.py: maximum(0, -predictor_outputs * targets).
    return np.maximum(0.0, -np.asarray(scores, F64) * labels)


def np_multiclass_perceptron_loss(scores, labels):
    # optax/losses/_classification.py: max(scores, -1) - dot(scores, one_hot(labels)).
    s = np.asarray(scores, F64)
    return s.max(-1) - np.take_along_axis(s, labels[..., None], -1)[..., 0]


def np_projection_simplex(values):
    # optax/projections/_projections.py, _projection_unit_simplex (one vector, s = 1).
    u = np.sort(values)[::-1]
    cumsum_u = np.cumsum(u)
    ind = np.arange(values.shape[0]) + 1
    cond = 1.0 / ind + (u - cumsum_u / ind) > 0
    idx = np.count_nonzero(cond)
    return np.maximum(1.0 / idx + (values - cumsum_u[idx - 1] / idx), 0.0)


def np_multiclass_sparsemax_loss(scores, labels):
    # optax/losses/_classification.py, _multiclass_sparsemax_loss, row by row.
    out = []
    for row, label in zip(np.asarray(scores, F64), labels):
        proba = np_projection_simplex(row)
        shifted = row - row[label]
        shifted[label] = 0.0
        out.append(proba @ np.where(proba, shifted, 0.0) + 0.5 * (1.0 - proba @ proba))
    return np.array(out)


def np_multiclass_sparsemax_grad(scores, labels):
    # The Fenchel-Young gradient (Blondel et al. 2020, prop. 2): sparsemax(s) - onehot(y), per row.
    s = np.asarray(scores, F64)
    return np.stack([np_projection_simplex(r) for r in s]) - np.eye(s.shape[-1])[labels]


def np_convex_kl_divergence(log_predictions, targets):
    # optax/losses/_classification.py, generalized_kl_divergence:
    # kl_divergence (sum xlogy(t, t) - t * log_p) + sum(exp(log_p) - t).
    log_p, t = np.asarray(log_predictions, F64), np.asarray(targets, F64)
    kl = np.sum(scipy.special.xlogy(t, t) - t * log_p, -1)
    return kl + np.sum(np.exp(log_p) - t, -1)


def np_fenchel_young(max_fun, scores, targets):
    # optax/losses/_fenchel_young.py: max_fun over the last axis minus vdot(targets, scores).
    s, t = np.asarray(scores, F64), np.asarray(targets, F64)
    return np.array([max_fun(r) for r in s.reshape(-1, s.shape[-1])]).reshape(s.shape[:-1]) - np.sum(t * s, -1)


def np_generalized_cross_entropy(logits, labels, q):
    # keras/src/losses/losses.py, categorical_generalized_cross_entropy on y_pred = softmax(logits):
    # p = sum(y_pred * one_hot(y_true)); (1 - p**q) / q.
    p = scipy.special.softmax(np.asarray(logits, F64), -1)
    p_y = np.sum(p * np.eye(p.shape[-1])[labels], -1)
    return (1.0 - p_y ** q) / q


def _listed_targets(y, c):
    """torch's target list of one row: the classes before the first -1, and the [C] mask of them."""
    listed = []
    for v in y:
        if v < 0:
            break
        listed.append(int(v))
    is_target = np.zeros(c, bool)
    is_target[listed] = True
    return listed, is_target


def np_multilabel_margin_loss(scores, labels):
    # aten/src/ATen/native/LossMultiLabelMargin.cpp: for each row, is_target marks the classes listed
    # before the first -1; sum over listed targets j and non-target i of max(0, 1 - (x[j] - x[i])), / C.
    s = np.asarray(scores, F64)
    out = []
    for x, y in zip(s.reshape(-1, s.shape[-1]), labels.reshape(-1, s.shape[-1])):
        c = x.shape[0]
        listed, is_target = _listed_targets(y, c)
        total = 0.0
        for j in listed:
            for i in range(c):
                if not is_target[i]:
                    total += max(0.0, 1.0 - (x[j] - x[i]))
        out.append(total / c)
    return np.array(out).reshape(s.shape[:-1])


def np_multilabel_margin_loss_grad(scores, labels):
    # aten/src/ATen/native/LossMultiLabelMargin.cpp (multilabel_margin_loss_backward_out_frame): for each
    # listed target j and non-target i with 1 - (x[j] - x[i]) > 0, grad[j] -= 1/C and grad[i] += 1/C.
    s = np.asarray(scores, F64)
    flat_s, flat_y = s.reshape(-1, s.shape[-1]), np.asarray(labels).reshape(-1, s.shape[-1])
    grad = np.zeros_like(flat_s)
    for x, y, g in zip(flat_s, flat_y, grad):
        c = x.shape[0]
        listed, is_target = _listed_targets(y, c)
        for j in listed:
            for i in range(c):
                if not is_target[i] and 1.0 - (x[j] - x[i]) > 0:
                    g[j] -= 1.0 / c
                    g[i] += 1.0 / c
    return grad.reshape(s.shape)


def _target_lists(rng, n, c):
    rows = []
    for _ in range(n):
        k = int(rng.integers(0, c + 1))
        row = list(rng.permutation(c)[:k]) + [-1] * (c - k)
        if k < c - 1:
            row[k + 1] = int(rng.integers(0, c))  # after the first -1: not read
        rows.append(row)
    return np.array(rows, np.int64)


# --------------------------------------------------------------------- optax
def test_sparsemax_loss_matches_optax():
    rng = _rng(1)
    logits = _scores(rng, (6, 5), 1.5)
    labels = rng.integers(0, 2, size=(6, 5))
    ours = cl.sparsemax_loss(logits, labels, reduction="none")
    _close(ours, np_sparsemax_loss(logits, labels))
    _close(ours, optax.losses.sparsemax_loss(logits, labels))
    grad = jax.grad(lambda x: cl.sparsemax_loss(x, labels, reduction="sum"))(logits)
    _close(grad, jax.grad(lambda x: jnp.sum(optax.losses.sparsemax_loss(x, labels)))(logits))
    # Float labels in {0, 1} read as optax's boolean labels.
    _close(cl.sparsemax_loss(logits, labels.astype(np.float32), reduction="none"), ours)


def test_perceptron_losses_match_optax():
    rng = _rng(2)
    scores = _scores(rng, (5, 6))
    signs = rng.choice([-1.0, 1.0], size=(5, 6)).astype(np.float32)
    ours = cl.perceptron_loss(scores, signs, reduction="none")
    _close(ours, np_perceptron_loss(scores, signs))
    _close(ours, optax.losses.perceptron_loss(scores, signs))
    labels = rng.integers(0, 6, size=5)
    ours = cl.multiclass_perceptron_loss(scores, labels, reduction="none")
    _close(ours, np_multiclass_perceptron_loss(scores, labels))
    _close(ours, optax.losses.multiclass_perceptron_loss(scores, labels))
    grad = jax.grad(lambda s: cl.multiclass_perceptron_loss(s, labels, reduction="sum"))(scores)
    _close(grad, jax.grad(lambda s: jnp.sum(optax.losses.multiclass_perceptron_loss(s, labels)))(scores))


@pytest.mark.parametrize("scale", [0.3, 3.0])
def test_multiclass_sparsemax_loss_matches_optax(scale):
    rng = _rng(3)
    scores = _scores(rng, (8, 6), scale)
    labels = rng.integers(0, 6, size=8)
    ours = cl.multiclass_sparsemax_loss(scores, labels, reduction="none")
    _close(ours, np_multiclass_sparsemax_loss(scores, labels))
    grad = jax.grad(lambda s: cl.multiclass_sparsemax_loss(s, labels, reduction="sum"))(scores)
    _close(grad, np_multiclass_sparsemax_grad(scores, labels))
    with jax.numpy_dtype_promotion("standard"):  # optax's simplex projection mixes int and float
        _close(ours, optax.losses.multiclass_sparsemax_loss(scores, labels))
        theirs = jax.grad(lambda s: jnp.sum(optax.losses.multiclass_sparsemax_loss(s, labels)))(scores)
    _close(grad, theirs)


def _simplex_rows(name, rng):
    c = 300
    rows = {"normal": rng.normal(size=(6, c)), "tiny scale": rng.normal(size=(6, c)) * 1e-3,
            "large scale": rng.normal(size=(6, c)) * 50.0, "uniform": rng.uniform(size=(6, c)),
            "exponential": rng.exponential(size=(6, c)), "linear": -np.arange(c)[None].repeat(2, 0) * 0.01,
            "geometric": -(1.5 ** np.minimum(np.arange(c), 60))[None].repeat(2, 0),
            "harmonic": (1.0 / (1.0 + np.arange(c)))[None].repeat(2, 0),
            "ties": np.repeat(rng.normal(size=(6, c // 10)), 10, axis=1),
            "one large": np.eye(c)[:3] * 100.0}[name]
    return np.asarray(rows, np.float32)


@pytest.mark.parametrize("name", ["normal", "tiny scale", "large scale", "uniform", "exponential", "linear",
                                  "geometric", "harmonic", "ties", "one large"])
def test_sparsemax_threshold_without_sorting_equals_the_sorting_algorithm(name):
    # _sparsemax finds the threshold by Michelot's iteration instead of sorting each row; the projection must be
    # the sort-based one (np_projection_simplex: optax's and Martins & Astudillo's algorithm) on rows whose
    # support the iteration reaches in few passes (normal) and in many (geometric: 16 passes at 1000 scores).
    x = _simplex_rows(name, _rng(11))
    ours = np.asarray(cl._sparsemax(jnp.asarray(x)), F64)
    expected = np.stack([np_projection_simplex(r) for r in x.astype(F64)])
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ours > 0, expected > 1e-6)  # the same support
    np.testing.assert_allclose(ours.sum(-1), 1.0, rtol=1e-5)


def test_sparsemax_threshold_falls_back_to_sorting_after_its_pass_cap(monkeypatch):
    # Geometric rows need 16 passes: with a cap of 3 the batch is sorted instead, and the projection is unchanged,
    # also under vmap (the fallback's condition stays one scalar there).
    x = _simplex_rows("geometric", _rng(13))
    expected = np.stack([np_projection_simplex(r) for r in x.astype(F64)])
    monkeypatch.setattr(cl, "_SIMPLEX_MAX_PASSES", 3)
    np.testing.assert_allclose(jax.jit(cl._sparsemax)(jnp.asarray(x)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jax.jit(jax.vmap(cl._sparsemax))(jnp.asarray(x)), expected, rtol=1e-5, atol=1e-6)
    labels = jnp.zeros(2, jnp.int32)
    grad = jax.grad(lambda s: cl.multiclass_sparsemax_loss(s, labels, reduction="sum"))(jnp.asarray(x))
    np.testing.assert_allclose(grad, expected - np.eye(x.shape[-1])[[0, 0]], rtol=1e-5, atol=1e-6)


def test_sparsemax_threshold_edge_rows():
    x = jnp.array([[0.0, -jnp.inf, 1.0, 1.0], [jnp.nan, 0.0, 1.0, 2.0], [5.0, 5.0, 5.0, 5.0],
                   [1e4, -1e4, 1e4 - 0.5, 0.0]], jnp.float32)
    out = np.asarray(jax.jit(cl._sparsemax)(x))
    np.testing.assert_allclose(out[0], [0.0, 0.0, 0.5, 0.5])
    assert np.isnan(out[1]).all()  # NaN propagates (the iteration stops at once)
    np.testing.assert_allclose(out[2], [0.25] * 4)
    np.testing.assert_allclose(out[3], [0.75, 0.0, 0.25, 0.0])
    # Under vmap the rows' iterations run together until the slowest row's support is found.
    rows = jnp.asarray(_simplex_rows("geometric", _rng(12))[:1].repeat(3, 0) * np.array([[1.0], [0.1], [10.0]],
                                                                                        np.float32))
    np.testing.assert_allclose(jax.vmap(cl._sparsemax)(rows), cl._sparsemax(rows), rtol=1e-6)


def test_multiclass_sparsemax_loss_large_scores_and_batch_axes():
    rng = _rng(4)
    scores = _scores(rng, (2, 3, 5), 1.0)
    labels = rng.integers(0, 5, size=(2, 3))
    # Batch axes: the same per-row values as the flattened batch.
    _close(cl.multiclass_sparsemax_loss(scores, labels, reduction="none").reshape(-1),
           np_multiclass_sparsemax_loss(scores.reshape(-1, 5), labels.reshape(-1)))
    # Scores of magnitude 1e4: values relative to the top score, exact (optax rounds at 1e4).
    big = scores.reshape(-1, 5) + np.float32(1e4)
    _close(cl.multiclass_sparsemax_loss(big, labels.reshape(-1), reduction="none"),
           np_multiclass_sparsemax_loss(scores.reshape(-1, 5).astype(F64), labels.reshape(-1)), atol=1e-3)


def test_convex_kl_divergence_matches_optax():
    rng = _rng(5)
    log_p = np.log(rng.uniform(0.05, 2.0, size=(6, 4))).astype(np.float32)
    targets = rng.uniform(0.0, 2.0, size=(6, 4)).astype(np.float32)
    targets[0, 1] = 0.0  # 0 log 0 = 0
    ours = cl.convex_kl_divergence(log_p, targets, reduction="none")
    _close(ours, np_convex_kl_divergence(log_p, targets))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # optax 0.2.8 renamed it generalized_kl_divergence
        _close(ours, optax.losses.convex_kl_divergence(log_p, targets))
    grad = jax.grad(lambda x: cl.convex_kl_divergence(x, targets, reduction="sum"))(log_p)
    _close(grad, jax.grad(lambda x: jnp.sum(optax.losses.generalized_kl_divergence(x, targets)))(log_p))
    assert jaxloss.get("generalized_kl_divergence") is cl.convex_kl_divergence


@pytest.mark.parametrize("max_fun", [jax.nn.logsumexp, jnp.max], ids=["logsumexp", "max"])
def test_make_fenchel_young_loss_matches_optax(max_fun):
    rng = _rng(6)
    scores = _scores(rng, (2, 3, 5))
    targets = scipy.special.softmax(_scores(rng, (2, 3, 5)), -1).astype(np.float32)
    ours = cl.make_fenchel_young_loss(max_fun)
    theirs = optax.losses.make_fenchel_young_loss(max_fun)
    np_max = (lambda r: scipy.special.logsumexp(r)) if max_fun is jax.nn.logsumexp else np.max
    _close(ours(scores, targets, reduction="none"), np_fenchel_young(np_max, scores, targets))
    _close(ours(scores, targets, reduction="none"), theirs(scores, targets))
    _close(ours(scores, targets), np.mean(np_fenchel_young(np_max, scores, targets)))
    grad = jax.grad(lambda s: ours(s, targets, reduction="sum"))(scores)
    _close(grad, jax.grad(lambda s: jnp.sum(theirs(s, targets)))(scores))


def test_fenchel_young_of_logsumexp_is_softmax_cross_entropy_and_keeps_the_contract():
    rng = _rng(7)
    fy = cl.make_fenchel_young_loss(jax.nn.logsumexp)
    scores = rng.normal(size=(6, 4)) * 2.0
    targets = scipy.special.softmax(rng.normal(size=(6, 4)), -1)
    # optax's Fenchel-Young loss leaves out Omega(targets): for logsumexp it is the cross-entropy.
    ce = -np.sum(targets * scipy.special.log_softmax(scores, -1), -1)
    _close(fy(scores.astype(np.float32), targets.astype(np.float32), reduction="none"), ce)
    # The invariants suite (jit, vmap, float64 finite differences, edges, where == slicing, dtypes).
    report = jaxloss.testing.check_loss(fy, scores, targets, skip=["labels"])
    assert report.ok, str(report)
    # Keyword arguments reach max_fun.
    scaled = cl.make_fenchel_young_loss(lambda r, *, t=1.0: t * jax.nn.logsumexp(r / t))
    _close(scaled(scores, targets, t=1.0, reduction="none"), ce)
    with pytest.raises(TypeError, match=r"^jaxloss.make_fenchel_young_loss: max_fun must be callable"):
        cl.make_fenchel_young_loss(3.0)
    with pytest.raises(ValueError, match=r"^jaxloss.fenchel_young_loss: scores"):
        fy(scores, targets[:, :3])


# --------------------------------------------------------------------- Keras
def _keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("Keras must run on the JAX backend (KERAS_BACKEND=jax)")
    return keras


@pytest.mark.parametrize("q", [0.2, 0.7])
def test_generalized_cross_entropy_matches_keras(q):
    rng = _rng(8)
    logits = _scores(rng, (9, 5))
    labels = rng.integers(0, 5, size=9)
    ours = cl.generalized_cross_entropy(logits, labels, q=q, reduction="none")
    _close(ours, np_generalized_cross_entropy(logits, labels, q))
    keras = _keras()
    probs = scipy.special.softmax(logits.astype(F64), -1).astype(np.float32)
    expected = keras.losses.CategoricalGeneralizedCrossEntropy(q=q)(labels, probs)
    _close(cl.generalized_cross_entropy(logits, labels, q=q), expected)
    # Gradient against the formula through jax.nn.softmax (not our log-space form).
    ref = jax.grad(lambda x: jnp.sum((1.0 - jnp.take_along_axis(jax.nn.softmax(x), labels[:, None], -1) ** q) / q))
    _close(jax.grad(lambda x: cl.generalized_cross_entropy(x, labels, q=q, reduction="sum"))(logits), ref(logits))


def test_generalized_cross_entropy_limits_and_errors():
    rng = _rng(9)
    logits = _scores(rng, (4, 3))
    labels = rng.integers(0, 3, size=4)
    log_p_y = np.take_along_axis(scipy.special.log_softmax(logits.astype(F64), -1), labels[:, None], -1)[:, 0]
    # q -> 0 tends to the cross-entropy -log p_y.
    _close(cl.generalized_cross_entropy(logits, labels, q=1e-4, reduction="none"), -log_p_y, rtol=1e-3)
    # Saturated logits: p_y -> 0 gives 1/q, finite.
    huge = np.array([[1e4, -1e4, 0.0]], np.float32)
    _close(cl.generalized_cross_entropy(huge, np.array([1]), q=0.5), 2.0)
    for bad in (0.0, 1.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"^jaxloss.generalized_cross_entropy: q must be > 0.0 and < 1.0"):
            cl.generalized_cross_entropy(logits, labels, q=bad)
    # A traced q is not checked and works.
    _close(jax.jit(lambda q: cl.generalized_cross_entropy(logits, labels, q=q))(0.7),
           np.mean(np_generalized_cross_entropy(logits, labels, 0.7)))


# --------------------------------------------------------------------- torch
def test_multilabel_margin_loss_transcription():
    rng = _rng(10)
    scores = _scores(rng, (12, 5), 1.0)
    labels = _target_lists(rng, 12, 5)
    labels[0] = [2, 2, -1, 0, 1]  # a class listed twice counts twice (as torch's loop)
    labels[1] = [-1, 3, 3, 3, 3]  # empty list: 0
    ours = cl.multilabel_margin_loss(scores, labels, reduction="none")
    _close(ours, np_multilabel_margin_loss(scores, labels))
    assert float(ours[1]) == 0.0
    # Batch axes.
    _close(cl.multilabel_margin_loss(scores.reshape(3, 4, 5), labels.reshape(3, 4, 5), reduction="none"),
           np_multilabel_margin_loss(scores, labels).reshape(3, 4))


def test_multilabel_margin_loss_matches_torch():
    torch = pytest.importorskip("torch")
    rng = _rng(11)
    scores = rng.normal(size=(10, 6))
    labels = _target_lists(rng, 10, 6)
    x = torch.tensor(scores, dtype=torch.float64, requires_grad=True)
    value = torch.nn.functional.multilabel_margin_loss(x, torch.tensor(labels))
    (grad,) = torch.autograd.grad(value, x)
    _close(cl.multilabel_margin_loss(scores.astype(np.float32), labels), value.item())
    ours = jax.grad(lambda s: cl.multilabel_margin_loss(s, labels))(scores.astype(np.float32))
    _close(ours, grad.numpy())
    none = torch.nn.functional.multilabel_margin_loss(x, torch.tensor(labels), reduction="none")
    _close(cl.multilabel_margin_loss(scores.astype(np.float32), labels, reduction="none"), none.detach().numpy())


@pytest.mark.parametrize("jit", [False, True])
def test_multilabel_margin_loss_select_free_value(jit):
    # From 2^17 pairs (examples x classes^2) the value is computed without a select over the pairs
    # (classification._target_pair_hinges); it must still be the transcription's, duplicates and empty
    # or full lists included, and a NaN score must give NaN exactly where it meets a pair.
    rng = _rng(12)
    n, c = 300, 24                                    # 300 * 24 * 24 = 172800 pairs
    scores = _scores(rng, (n, c), 1.0)
    labels = _target_lists(rng, n, c)
    labels[0, :3] = [2, 2, -1]                        # a class listed twice counts twice
    labels[1, 0] = -1                                 # no target: 0
    labels[2] = rng.permutation(c)                    # every class a target: 0
    scores[0, 2] = 1e4                                # hinges at 0 against a large target score
    fn = lambda s: cl.multilabel_margin_loss(s, labels, reduction="none")  # noqa: E731
    fn = jax.jit(fn) if jit else fn
    _close(fn(scores), np_multilabel_margin_loss(scores, labels))
    labels[3, :3] = [0, 1, -1]                        # targets 0 and 1
    labels[4, :2] = [0, -1]                           # target 0
    poisoned = scores.copy()
    poisoned[1, 5] = np.nan                           # row without targets: still 0
    poisoned[2, 7] = np.nan                           # every class a target, no non-target: still 0
    poisoned[3, 1] = np.nan                           # a target's score: NaN
    poisoned[4, 5] = np.nan                           # a non-target's score: NaN
    values = np.asarray(fn(poisoned))
    expect = np.asarray(np_multilabel_margin_loss(scores, labels))
    assert values[1] == 0.0 and values[2] == 0.0
    assert np.isnan(values[3]) and np.isnan(values[4])
    _close(values[5:], expect[5:])
    # Gradients: the selected form's, against torch's where it installs (test above) and here against
    # the transcription's finite differences at one row.
    grad = jax.grad(lambda s: jnp.sum(cl.multilabel_margin_loss(s, labels, reduction="none")))(scores)
    eps, row = 1e-2, 5
    for i in range(c):
        up, down = scores.copy(), scores.copy()
        up[row, i] += eps
        down[row, i] -= eps
        fd = (np_multilabel_margin_loss(up[row:row + 1], labels[row:row + 1])
              - np_multilabel_margin_loss(down[row:row + 1], labels[row:row + 1])) / (2 * eps)
        _close(grad[row, i], fd[0], rtol=1e-3, atol=1e-3)


# "selected" (the derivative below the threshold, as before) runs in the full suite only (slow).
@pytest.mark.parametrize("counted_from", [pytest.param(None, marks=pytest.mark.slow), 1], ids=["selected", "counted"])
def test_multilabel_margin_loss_select_free_gradient(counted_from, monkeypatch):
    # From 2^22 pairs the select-free value's derivative counts each score's pairs with a positive hinge
    # (classification._pair_counts) instead of differentiating the selected form; "counted" lowers that
    # threshold to test it at this size. Both must give torch's gradient (the NumPy transcription of
    # its backward), with duplicates, empty and full lists, a large target score, batch axes, where, vmap,
    # forward mode, and finite gradients for finite scores.
    if counted_from is not None:
        monkeypatch.setattr(cl, "_COUNTED_DERIVATIVE_PAIRS", counted_from)
    rng = _rng(13)
    n, c = 300, 24                                    # 172800 pairs: the select-free value
    scores = _scores(rng, (n, c), 1.0)
    labels = _target_lists(rng, n, c)
    labels[0, :3] = [2, 2, -1]                        # a class listed twice counts twice
    labels[1, 0] = -1                                 # no target: gradient 0
    labels[2] = rng.permutation(c)                    # every class a target: gradient 0
    scores[3, labels[3, 0]] = 1e4                     # a large target score: its hinges are 0
    scores[4, 5] = -1e30                              # a very low non-target score
    expect = np_multilabel_margin_loss_grad(scores, labels)
    grad = jax.jit(jax.grad(lambda s: jnp.sum(cl.multilabel_margin_loss(s, labels, reduction="none"))))(scores)
    _close(grad, expect)
    assert not np.asarray(grad[1:3]).any()
    # Batch axes and vmap: the same numbers.
    batched = jax.grad(lambda s: jnp.sum(cl.multilabel_margin_loss(s, labels.reshape(3, 100, c),
                                                                   reduction="none")))(scores.reshape(3, 100, c))
    _close(batched.reshape(n, c), expect)
    per_row = jax.vmap(jax.grad(lambda s, y: cl.multilabel_margin_loss(s[None], y[None], reduction="sum")))
    _close(per_row(scores, labels), expect)
    # where: masked rows get gradient 0, the mean is over the others.
    where = np.ones(n, bool)
    where[::2] = False
    masked = jax.grad(lambda s: cl.multilabel_margin_loss(s, labels, where=where))(scores)
    _close(masked, np.where(where[:, None], expect, 0.0) / where.sum())
    # Forward mode agrees with reverse mode.
    tangent = _scores(rng, (n, c), 1.0)
    _, jvp = jax.jvp(lambda s: cl.multilabel_margin_loss(s, labels, reduction="sum"), (scores,), (tangent,))
    _close(jvp, np.sum(expect * tangent), rtol=1e-5, atol=1e-4)


def test_multilabel_margin_loss_bad_labels_give_nan():
    scores = np.zeros((3, 4), np.float32)
    labels = np.array([[4, -1, 0, 0], [1, -2, -1, 0], [1, -1, 9, 9]])
    values = np.asarray(cl.multilabel_margin_loss(scores, labels, reduction="none"))
    assert np.isnan(values[0]) and np.isnan(values[1])  # C and -2 before the first -1
    assert values[2] == pytest.approx(0.75)  # entries after the first -1 are not read (torch)
    for dtype, bad in ((np.uint8, 255), (np.uint32, 2**32 - 1)):
        lab = np.array([[bad, 0, 0, 0]], dtype)
        assert np.isnan(float(cl.multilabel_margin_loss(scores[:1], lab)))
    with pytest.raises(TypeError, match=r"^jaxloss.multilabel_margin_loss: labels must have an integer dtype"):
        cl.multilabel_margin_loss(scores, labels.astype(np.float32))
    with pytest.raises(ValueError, match=r"^jaxloss.multilabel_margin_loss: scores \(3, 4\) and labels"):
        cl.multilabel_margin_loss(scores, labels[:, :3])


def test_new_losses_out_of_range_integer_labels_give_nan():
    scores = _scores(_rng(12), (3, 4))
    labels = np.array([0, 4, -1])
    for fn in (cl.multiclass_perceptron_loss, cl.multiclass_sparsemax_loss, cl.generalized_cross_entropy):
        values = np.asarray(fn(scores, labels, reduction="none"))
        assert np.isfinite(values[0]) and np.isnan(values[1]) and np.isnan(values[2]), fn.__name__


# ----------------------------------------- select-free guards (issue 15 item 1)
def test_guarded_divergences_forward_and_reverse_mode_agree():
    # The custom JVPs of softmax_cross_entropy, poly_loss_cross_entropy and kl_divergence: forward-mode
    # jvp equals the reverse-mode gradient, and both equal the closed forms (d/dx = sum(q) softmax - q,
    # d/dq = -log softmax; KL: d/dlog_p = -t, d/dt = log t + 1 - log p).
    rng = _rng(13)
    x = rng.normal(size=(4, 5)) * 2.0
    q = scipy.special.softmax(rng.normal(size=(4, 5)), -1) * 1.5
    tx, tq = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    with jax.enable_x64(True):
        for fn in (jaxloss.softmax_cross_entropy, jaxloss.poly_loss_cross_entropy, jaxloss.kl_divergence,
                   cl.convex_kl_divergence):
            a, b = (x - scipy.special.logsumexp(x, -1, keepdims=True), q) if "kl" in fn.__name__ else (x, q)
            f = lambda a, b: fn(a, b, reduction="sum")  # noqa: E731
            _, forward = jax.jvp(f, (a, b), (tx, tq))
            ga, gb = jax.grad(f, argnums=(0, 1))(a, b)
            _close(forward, np.sum(ga * tx) + np.sum(gb * tq), rtol=1e-10)
        ga, gb = jax.grad(lambda a, b: jaxloss.softmax_cross_entropy(a, b, reduction="sum"), argnums=(0, 1))(x, q)
        log_p = scipy.special.log_softmax(x, -1)
        _close(ga, q.sum(-1, keepdims=True) * np.exp(log_p) - q, rtol=1e-10)
        _close(gb, -log_p, rtol=1e-10)
        ga, gb = jax.grad(lambda a, b: jaxloss.kl_divergence(a, b, reduction="sum"), argnums=(0, 1))(log_p, q)
        _close(ga, -q, rtol=1e-10)
        _close(gb, np.log(q) + 1.0 - log_p, rtol=1e-10)


@pytest.mark.parametrize("shape", [(4, 5), (16, 512)])  # below and above _numerics.YNN_MIN_ELEMENTS (the JVP's barrier)
def test_kl_divergence_with_log_targets_forward_and_reverse_mode_agree(shape):
    # Its custom JVP (`_kl_log_targets_values`): forward-mode jvp equals the reverse-mode gradient, and both
    # equal the closed forms of optax's exp(log t) (log t - log p) (optax/losses/_classification.py):
    # d/dlog_p = -t, d/dlog_t = t (log t + 1 - log p). optax's own gradient agrees where it is finite.
    rng = _rng(14)
    log_p = scipy.special.log_softmax(rng.normal(size=shape) * 2.0, -1)
    log_t = scipy.special.log_softmax(rng.normal(size=shape), -1)
    tp, tt = rng.normal(size=shape), rng.normal(size=shape)
    with jax.enable_x64(True):
        f = lambda a, b: cl.kl_divergence_with_log_targets(a, b, reduction="sum")  # noqa: E731
        value, forward = jax.jvp(f, (log_p, log_t), (tp, tt))
        ga, gb = jax.grad(f, argnums=(0, 1))(log_p, log_t)
        _close(value, np.sum(np.exp(log_t) * (log_t - log_p)), rtol=1e-12)
        _close(forward, np.sum(ga * tp) + np.sum(gb * tt), rtol=1e-10)
        _close(ga, -np.exp(log_t), rtol=1e-12)
        _close(gb, np.exp(log_t) * (log_t + 1.0 - log_p), rtol=1e-12)
        og = jax.grad(lambda a, b: jnp.sum(optax.losses.kl_divergence_with_log_targets(a, b)), argnums=(0, 1))
        for ours, theirs in zip((ga, gb), og(log_p, log_t)):
            _close(ours, theirs, rtol=1e-12)


def test_kl_divergence_with_log_targets_edges_without_selects():
    # A zero target (log t = -inf, or an exp that underflows) adds exactly 0 to the value and both gradients,
    # also at log p = -inf (optax: NaN); a positive target at log p = -inf gives +inf; NaN propagates.
    inf = np.inf
    log_p = np.array([[np.log(0.5), np.log(0.5), -inf], [np.log(0.5), np.log(0.5), -inf],
                      [np.log(0.5), np.log(0.5), -300.0]], np.float32)
    log_t = np.array([[np.log(0.5), np.log(0.5), -inf], [np.log(0.5), -inf, np.log(0.5)],
                      [np.log(0.5), np.log(0.5), -200.0]], np.float32)
    values = np.asarray(cl.kl_divergence_with_log_targets(log_p, log_t, reduction="none"))
    _close(values[[0, 2]], [0.0, 0.0])
    assert values[1] == inf
    for rows in ([0], [2]):
        ga, gb = jax.grad(lambda a, b: cl.kl_divergence_with_log_targets(a, b, reduction="sum"),
                          argnums=(0, 1))(log_p[rows], log_t[rows])
        _close(ga, [[-0.5, -0.5, 0.0]])
        _close(gb, [[0.5, 0.5, 0.0]])  # t (log t + 1 - log p) = t where log t = log p
        _, forward = jax.jvp(lambda a, b: cl.kl_divergence_with_log_targets(a, b, reduction="sum"),
                             (log_p[rows], log_t[rows]), (np.ones((1, 3), np.float32),) * 2)
        _close(forward, 0.0, atol=1e-6)
    nan_p, nan_t = log_p.copy(), log_t.copy()
    nan_p[0, 2] = nan_t[0, 2] = np.nan  # row 0 has t = 0 at p = 0 there: NaN all the same
    for args in ((nan_p, log_t), (log_p, nan_t)):
        assert np.isnan(float(cl.kl_divergence_with_log_targets(*args, reduction="none")[0]))


def _rel_entr_rows(log_p, log_t):
    """scipy.special.rel_entr(t, p) summed over the last axis (0 at t = 0, +inf at p = 0 < t, NaN propagates)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t, p = np.exp(log_t).astype(F64), np.exp(log_p).astype(F64)  # float32 exp: exp(-200) underflows to 0
        return scipy.special.rel_entr(t, p).sum(-1)


def test_kl_divergence_with_log_targets_edges_in_a_large_batch_under_jit_and_vmap():
    # At >= 4096 elements the CPU value is optax's unguarded sum with a lax.cond that recomputes the batch
    # with one select per element when a row is NaN. Edge rows must come out as scipy's rel_entr (0 at
    # t = 0 even where p = 0, +inf at p = 0 < t, NaN for a NaN input) under jit and vmap, ordinary rows
    # equal to it, and the gradients stay finite (-t for log p).
    rng = _rng(3)
    inf = np.inf
    log_p = scipy.special.log_softmax(rng.normal(size=(3, 8, 256)) * 2, -1).astype(np.float32)
    log_t = scipy.special.log_softmax(rng.normal(size=(3, 8, 256)) * 2, -1).astype(np.float32)
    clean_p, clean_t = log_p.copy(), log_t.copy()
    log_t[0, 1, :3] = -inf; log_p[0, 1, :2] = -inf      # zero targets, two of them at zero predictions
    log_t[0, 2, 5] = -200.0; log_p[0, 2, 5] = -inf      # an exp that underflows, at p = 0
    log_p[0, 3, 7] = -inf                               # a positive target at p = 0: +inf
    log_p[0, 4, 9] = np.nan; log_t[0, 4, 9] = -inf      # NaN at a zero target: still NaN
    log_t[0, 5, 2] = np.nan                             # NaN target
    log_p[0, 6, 4:] = np.nan                            # NaN predictions (a max-based floor gave +inf here)
    expected = _rel_entr_rows(log_p, log_t)
    expected[0, 4] = np.nan  # rel_entr gives 0 at t = 0 whatever p is; the contract propagates NaN
    f = lambda a, b: cl.kl_divergence_with_log_targets(a, b, reduction="none")  # noqa: E731
    for got in (jax.jit(f)(log_p, log_t), jax.jit(jax.vmap(f))(log_p, log_t), f(log_p, log_t)):
        got = np.asarray(got)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
        finite = np.isfinite(expected)
        np.testing.assert_allclose(got[finite], expected[finite], rtol=RTOL, atol=ATOL)
    # The batch without edge cases takes the unguarded branch: the same numbers.
    np.testing.assert_allclose(np.asarray(jax.jit(f)(clean_p, clean_t)), _rel_entr_rows(clean_p, clean_t),
                               rtol=RTOL, atol=ATOL)
    rows = (slice(0, 1), slice(1, 3))  # the zero-target rows only: finite value and gradients
    loss = lambda a, b: cl.kl_divergence_with_log_targets(a, b, reduction="sum")  # noqa: E731
    ga, gb = jax.jit(jax.grad(loss, argnums=(0, 1)))(log_p[rows], log_t[rows])
    t = np.exp(log_t[rows])
    np.testing.assert_allclose(np.asarray(ga), -t, rtol=RTOL, atol=ATOL)
    assert np.isfinite(np.asarray(gb)).all() and np.all(np.asarray(gb)[t == 0] == 0)


def test_softmax_cross_entropy_edges_in_a_large_batch_under_jit_and_vmap():
    # At >= 4096 elements the CPU value is optax's unguarded formula with a lax.cond that recomputes the batch
    # with -inf shifted logits floored at the lowest finite float when a row is not finite. Reference:
    # -sum(q * scipy.special.log_softmax(x)) in float64 (optax/losses/_classification.py), with 0 log 0 = 0.
    rng = _rng(4)
    logits = rng.normal(size=(2, 8, 300)).astype(np.float32) * 3
    labels = scipy.special.softmax(rng.normal(size=(2, 8, 300)), -1).astype(np.float32)
    logits[0, 1, :5] = -np.inf; labels[0, 1, :5] = 0.0  # masked classes with zero weight: 0 log 0 = 0
    labels[0, 1] /= labels[0, 1].sum()
    logits[0, 2, 3] = -np.inf                           # a positive weight on a -inf logit: huge, finite
    logits[0, 3, 7] = np.nan                            # NaN logit: NaN
    labels[0, 4, 2] = np.nan                            # NaN label: NaN
    with np.errstate(invalid="ignore"):
        log_p = scipy.special.log_softmax(logits.astype(F64), -1)
        expected = -np.sum(np.where(labels == 0, 0.0, labels * log_p), -1)
    f = lambda x, q: cl.softmax_cross_entropy(x, q, reduction="none")  # noqa: E731
    for got in (np.asarray(jax.jit(f)(logits, labels)), np.asarray(jax.jit(jax.vmap(f))(logits, labels))):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        assert np.isfinite(got[0, 2]) and got[0, 2] > 1e30  # expected: +inf; ours: q * 3.4e38
        rows = np.isfinite(expected)
        np.testing.assert_allclose(got[rows], expected[rows], rtol=RTOL, atol=ATOL)
    grad = jax.jit(jax.grad(lambda x, q: cl.softmax_cross_entropy(x, q, reduction="sum"), argnums=(0, 1)))
    gx, gq = grad(logits[:, :2], labels[:, :2])
    p = scipy.special.softmax(logits[:, :2].astype(F64), -1)
    np.testing.assert_allclose(np.asarray(gx), p * labels[:, :2].sum(-1, keepdims=True) - labels[:, :2],
                               rtol=RTOL, atol=ATOL)
    assert np.isfinite(np.asarray(gq)).all()


def _scalar_guard_cases(rng):
    """Per loss: inputs [2, 8, 300] (above the 4096-element threshold) with edge rows in batch 0, and scipy rows."""
    logits = rng.normal(size=(2, 8, 300)) * 3
    q = scipy.special.softmax(rng.normal(size=(2, 8, 300)), -1)
    log_t = scipy.special.log_softmax(rng.normal(size=(2, 8, 300)), -1)
    log_p = scipy.special.log_softmax(logits, -1)
    logits[0, 1, :5] = -np.inf; q[0, 1, :5] = 0.0; q[0, 1] /= q[0, 1].sum()  # masked classes, zero weight
    log_p[0, 1, :5] = -np.inf; log_t[0, 1, :5] = -np.inf                     # zero targets at zero predictions
    t = np.exp(log_t)
    t[0, 1, :5] = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        xent = -np.sum(np.where(q == 0, 0.0, q * scipy.special.log_softmax(logits, -1)), -1)
    kl = scipy.special.rel_entr(t, np.exp(log_p)).sum(-1)
    f32 = lambda *a: tuple(np.asarray(x, np.float32) for x in a)  # noqa: E731
    return {"softmax_cross_entropy": (cl.softmax_cross_entropy, f32(logits, q), xent),
            "kl_divergence": (cl.kl_divergence, f32(log_p, t), kl),
            "kl_divergence_with_log_targets": (cl.kl_divergence_with_log_targets, f32(log_p, log_t), kl),
            "convex_kl_divergence": (cl.convex_kl_divergence, f32(log_p, t),
                                     kl + (np.exp(log_p) - t).sum(-1)),
            # optax poly_loss_cross_entropy, epsilon = 2 (the default): xent + epsilon * (1 - sum(q p))
            "poly_loss_cross_entropy": (cl.poly_loss_cross_entropy, f32(logits, q),
                                        xent + 2.0 * (q.sum(-1) - (q * scipy.special.softmax(logits, -1)).sum(-1)))}


@pytest.mark.parametrize("block_elements", [None, 900], ids=["whole", "row_blocks"])
@pytest.mark.parametrize("name", ["softmax_cross_entropy", "kl_divergence", "kl_divergence_with_log_targets",
                                  "convex_kl_divergence", "poly_loss_cross_entropy"])
def test_scalar_reduction_guard_tests_the_reduced_value(name, block_elements, monkeypatch):
    # With reduction "mean"/"sum" (no weights) the CPU path reduces the unguarded rows at once and recomputes
    # the batch guarded only when the reduced scalar is not finite; the gradient is the guarded custom JVP in
    # both branches. Values against scipy (rel_entr, log_softmax in float64), also under vmap, where the
    # condition stays one scalar; gradients equal those of the per-row path (reduction="none", then a mean).
    # "row_blocks": the guarded recomputation runs 3 rows of 300 classes at a time, 16 rows in 6 blocks, the
    # last one clamped to end at the last row (rows 13-15, two of them recomputed).
    if block_elements is not None:
        monkeypatch.setattr(_numerics, "GUARD_BLOCK_ELEMENTS", block_elements)
    loss, (a, b), rows = _scalar_guard_cases(_rng(5))[name]
    np.testing.assert_allclose(np.asarray(jax.jit(lambda a, b: loss(a, b, reduction="none"))(a, b)), rows, rtol=RTOL)
    for reduction, reduce_rows in (("mean", np.mean), ("sum", np.sum)):
        f = lambda a, b, r=reduction: loss(a, b, reduction=r)  # noqa: E731
        np.testing.assert_allclose(float(jax.jit(f)(a, b)), reduce_rows(rows), rtol=RTOL)
        np.testing.assert_allclose(float(jax.jit(f)(a[1], b[1])), reduce_rows(rows[1]), rtol=RTOL)  # no edge rows
        np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(f))(a, b)), reduce_rows(rows, axis=(1,)), rtol=RTOL)
    masked = np.ones(rows.shape, bool)
    masked[0, 1] = False  # the edge row masked out: its (finite) value does not count
    got = jax.jit(lambda a, b: loss(a, b, where=masked))(a, b)
    np.testing.assert_allclose(float(got), rows[masked].mean(), rtol=RTOL)
    scalar = jax.jit(jax.grad(lambda a, b: loss(a, b), argnums=(0, 1)))(a, b)
    per_row = jax.jit(jax.grad(lambda a, b: jnp.mean(loss(a, b, reduction="none")), argnums=(0, 1)))(a, b)
    for g, h in zip(scalar, per_row):
        assert np.isfinite(np.asarray(g)).all()
        np.testing.assert_allclose(np.asarray(g), np.asarray(h), rtol=RTOL, atol=1e-9)
    # A NaN input makes the mean NaN in both branches.
    a_nan = a.copy(); a_nan[1, 2, 3] = np.nan
    assert np.isnan(float(jax.jit(lambda a, b: loss(a, b))(a_nan, b)))


_OPTAX_GUARDED_PEERS = {"softmax_cross_entropy": "softmax_cross_entropy", "kl_divergence": "kl_divergence",
                        "kl_divergence_with_log_targets": "kl_divergence_with_log_targets",
                        "convex_kl_divergence": ("convex_kl_divergence", "generalized_kl_divergence"),
                        "poly_loss_cross_entropy": "poly_loss_cross_entropy"}


def _compiled_memory(fn, x):
    stats = jax.jit(fn).trace(x, x).lower(lowering_platforms=("cpu",)).compile().memory_analysis()
    return stats.temp_size_in_bytes + stats.output_size_in_bytes


@pytest.mark.parametrize("rows", [2048, 4096])
@pytest.mark.parametrize("name", sorted(_OPTAX_GUARDED_PEERS))
def test_guarded_recomputation_needs_no_more_memory_than_optax(name, rows):
    # The rare guarded branch of the CPU conditional runs in row blocks (_numerics.guarded_in_blocks), so the
    # compiled program needs no more temporary and output memory than optax's unguarded one, forward and
    # forward+backward (compile only), but for the blocks. Before, the branch's [N, C] select was one more [N, C] temporary,
    # and at 8192x1000 it made XLA:CPU's temporary buffer a fresh 62.5 MiB mmap with 31 MiB of page faults
    # every call.
    peer = _OPTAX_GUARDED_PEERS[name]
    names = peer if isinstance(peer, tuple) else (peer,)
    theirs = next(getattr(optax.losses, n) for n in names if hasattr(optax.losses, n))
    ours = getattr(cl, name)
    x = jax.ShapeDtypeStruct((rows, 1000), jnp.float32)
    mean_theirs = lambda a, b: jnp.mean(theirs(a, b))  # noqa: E731
    blocks = 2**20  # the branch's [rows, C] blocks and a few [N] vectors; an [N, C] array is 8-16 MiB here
    assert _compiled_memory(ours, x) <= _compiled_memory(mean_theirs, x) + blocks
    assert _compiled_memory(jax.value_and_grad(ours), x) <= _compiled_memory(jax.value_and_grad(mean_theirs), x) + blocks


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "kl_divergence", "kl_divergence_with_log_targets",
                                  "convex_kl_divergence", "poly_loss_cross_entropy"])
def test_scalar_reduction_guard_lowers_for_accelerators_and_several_platforms(name):
    # The conditional exists on CPU only (jax.lax.platform_dependent); GPU/TPU take the guarded rows, whose
    # selects fuse there. No accelerator is needed to lower for one (or for CPU and GPU in one program).
    x = jax.ShapeDtypeStruct((64, 100), jnp.float32)
    fn = jax.jit(jax.value_and_grad(getattr(cl, name)))
    cases = {platforms: fn.trace(x, x).lower(lowering_platforms=platforms).as_text().count("stablehlo.case")
             for platforms in (("cpu",), ("cuda",), ("tpu",), ("cpu", "cuda"))}
    assert cases[("cpu",)] > cases[("cuda",)] == cases[("tpu",)], cases  # the CPU program has the conditional


def test_poly_loss_keeps_a_nan_logit_in_a_large_batch_under_jit():
    # Regression: the poly loss floored its shifted logits with a maximum, and inside XLA:CPU's YNN reduction
    # fusions (>= 4096 elements) a maximum drops NaN, so a NaN logit gave 2.1e35 under jit. The value is now
    # guarded as the cross-entropy's (unguarded formula, recomputed with a select only for a non-finite row).
    rng = _rng(6)
    logits = rng.normal(size=(16, 300)).astype(np.float32)
    labels = scipy.special.softmax(rng.normal(size=(16, 300)), -1).astype(np.float32)
    logits[3, 7] = np.nan
    rows = np.asarray(jax.jit(lambda x, q: cl.poly_loss_cross_entropy(x, q, reduction="none"))(logits, labels))
    assert np.isnan(rows[3]) and np.isfinite(np.delete(rows, 3)).all()
    assert np.isnan(float(jax.jit(cl.poly_loss_cross_entropy)(logits, labels)))


def test_guarded_divergences_at_zero_probabilities():
    # 0 log 0 = 0 with finite gradients (optax gives NaN there); a positive target on a zero probability
    # gives +inf for the KL divergence and a huge finite value for the cross-entropy (its shifted logits are
    # floored at the lowest finite float). The target gradient keeps -log p, 0 where both are 0.
    with np.errstate(divide="ignore"):
        log_p = np.log(np.array([[0.5, 0.5, 0.0], [0.25, 0.75, 0.0]], np.float32))
    t = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]], np.float32)
    values = np.asarray(jaxloss.kl_divergence(log_p, t, reduction="none"))
    _close(values[0], 0.0)
    assert values[1] == np.inf
    ga, gb = jax.grad(lambda a, b: jaxloss.kl_divergence(a, b, reduction="sum"), argnums=(0, 1))(log_p[:1], t[:1])
    _close(ga, -t[:1])
    _close(gb, [[np.log(0.5) + 1.0 - np.log(0.5)] * 2 + [0.0]])
    logits = np.array([[1.0, 2.0, -np.inf]], np.float32)
    q = np.array([[0.25, 0.75, 0.0]], np.float32)
    value, (ga, gb) = jax.value_and_grad(
        lambda a, b: jaxloss.softmax_cross_entropy(a, b, reduction="sum"), argnums=(0, 1))(logits, q)
    _close(value, -np.sum(q[:, :2] * scipy.special.log_softmax(logits[:, :2].astype(F64), -1)))
    assert np.all(np.isfinite(ga)) and np.all(np.isfinite(gb)) and ga[0, 2] == 0.0 and gb[0, 2] == 0.0
    huge = float(jaxloss.softmax_cross_entropy(logits, np.array([[0.0, 0.5, 0.5]], np.float32)))
    assert np.isfinite(huge) and huge > 1e38


@pytest.mark.parametrize("name", ["multiclass_sparsemax_loss", "sparsemax_loss", "hinge_loss",
                                  "ranking_softmax_loss"])
def test_written_out_derivatives_keep_second_derivatives(name):
    # These losses take their gradients from custom JVPs (the Fenchel-Young p - e_y, the sparse sigmoid, relu's
    # step read from the stored maximum, sum(y) softmax(s) - y); the JVP rules are differentiable themselves,
    # so Hessian-vector products equal central finite differences of the gradient (float64).
    rng = _rng(11)
    with jax.enable_x64(True):
        s = jnp.asarray(rng.normal(size=(4, 6)))
        v = jnp.asarray(rng.normal(size=(4, 6)))
        target = {"multiclass_sparsemax_loss": jnp.asarray([0, 2, 5, 1]),
                  "sparsemax_loss": jnp.asarray(rng.integers(0, 2, size=(4, 6)).astype(np.float64)),
                  "hinge_loss": jnp.asarray(np.where(rng.random((4, 6)) < 0.5, -1.0, 1.0)),
                  "ranking_softmax_loss": jnp.asarray(rng.random((4, 6)))}[name]
        loss = jaxloss.get(name)
        grad = jax.grad(lambda s: loss(s, target, reduction="sum"))
        hvp = jax.jvp(grad, (s,), (v,))[1]
        eps = 1e-6
        fd = (grad(s + eps * v) - grad(s - eps * v)) / (2 * eps)
        np.testing.assert_allclose(np.asarray(hvp), np.asarray(fd), rtol=1e-5, atol=1e-7)
