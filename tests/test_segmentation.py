"""Reference tests for jaxloss.segmentation.

References (numbers we did not compute with our code):

* MONAI ``monai/losses/dice.py`` (``DiceLoss``, ``GeneralizedDiceLoss``) and
  ``monai/losses/tversky.py`` (``TverskyLoss``), transcribed below in NumPy,
  channels first, exactly as their ``forward`` reads:
  https://github.com/Project-MONAI/MONAI/blob/dev/monai/losses/dice.py,
  https://github.com/Project-MONAI/MONAI/blob/dev/monai/losses/tversky.py
* Berman et al.'s reference ``lovasz_losses.py`` (``lovasz_grad``,
  ``lovasz_hinge_flat``, ``lovasz_softmax_flat``, ``mean``), transcribed below
  in NumPy with explicit per-image / per-class loops and pixel removal for
  ``ignore``: https://github.com/bermanmaxim/LovaszSoftmax/blob/master/pytorch/lovasz_losses.py
* Abraham and Khan's focal Tversky (``tversky``/``focal_tversky`` in
  https://github.com/nabsabraham/focal-tversky-unet/blob/master/losses.py),
  transcribed with their alpha on the false negatives.
* Closed forms: a perfect prediction gives ~0, a disjoint one ~1.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss.segmentation as seg
from jaxloss.testing import check_loss

RTOL = 1e-5
ATOL = 1e-6

OVERLAP = [seg.dice_loss, seg.jaccard_loss, seg.tversky_loss, seg.focal_tversky_loss, seg.generalized_dice_loss]
ALL = OVERLAP + [seg.lovasz_softmax_loss]


# ------------------------------------------------------------ NumPy references
def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _monai_inputs(x, y, *, sigmoid, softmax, include_background):
    """MONAI's common preamble: activation, to_onehot_y, drop background. ``x``, ``y`` are [B, C, ...]."""
    if sigmoid:
        x = _sigmoid(x)
    if softmax:
        x = _softmax(x, 1)
    if not include_background:
        x, y = x[:, 1:], y[:, 1:]
    return x, y


def monai_dice(x, y, *, sigmoid=False, softmax=False, include_background=True, squared_pred=False,
               jaccard=False, smooth_nr=1e-5, smooth_dr=1e-5, batch=False, weight=None):
    """monai.losses.DiceLoss(...)(x, y) with reduction="none": [B, C] (or [C] with batch=True)."""
    x, y = _monai_inputs(x, y, sigmoid=sigmoid, softmax=softmax, include_background=include_background)
    axes = tuple(range(2, x.ndim))
    if batch:
        axes = (0,) + axes
    intersection = np.sum(y * x, axis=axes)
    if squared_pred:
        ground_o, pred_o = np.sum(y ** 2, axis=axes), np.sum(x ** 2, axis=axes)
    else:
        ground_o, pred_o = np.sum(y, axis=axes), np.sum(x, axis=axes)
    denominator = ground_o + pred_o
    if jaccard:
        denominator = 2.0 * (denominator - intersection)
    f = 1.0 - (2.0 * intersection + smooth_nr) / (denominator + smooth_dr)
    if weight is not None and y.shape[1] != 1:
        f = f * np.asarray(weight)  # MONAI: class weights over the kept classes
    return f


def monai_tversky(x, y, *, sigmoid=False, softmax=False, include_background=True, alpha=0.5, beta=0.5,
                  smooth_nr=1e-5, smooth_dr=1e-5, batch=False):
    """monai.losses.TverskyLoss(...)(x, y) with reduction="none": [B, C] (or [C])."""
    x, y = _monai_inputs(x, y, sigmoid=sigmoid, softmax=softmax, include_background=include_background)
    axes = tuple(range(2, x.ndim))
    if batch:
        axes = (0,) + axes
    p0, p1, g0, g1 = x, 1 - x, y, 1 - y
    tp = np.sum(p0 * g0, axes)
    fp = alpha * np.sum(p0 * g1, axes)
    fn = beta * np.sum(p1 * g0, axes)
    return 1.0 - (tp + smooth_nr) / (tp + fp + fn + smooth_dr)


def monai_generalized_dice(x, y, *, sigmoid=False, softmax=False, include_background=True, w_type="square",
                           smooth_nr=1e-5, smooth_dr=1e-5, batch=False):
    """monai.losses.GeneralizedDiceLoss(...)(x, y), one value per example: [B] (or [1] with batch)."""
    x, y = _monai_inputs(x, y, sigmoid=sigmoid, softmax=softmax, include_background=include_background)
    axes = tuple(range(2, x.ndim))
    if batch:
        axes = (0,) + axes
    intersection = np.sum(y * x, axes)
    ground_o = np.sum(y, axes)
    pred_o = np.sum(x, axes)
    denominator = ground_o + pred_o
    with np.errstate(divide="ignore"):
        if w_type == "simple":
            w = np.reciprocal(ground_o)
        elif w_type == "square":
            w = np.reciprocal(ground_o * ground_o)
        else:
            w = np.ones_like(ground_o)
    infs = np.isinf(w)
    w = np.where(infs, 0.0, w)
    if batch:
        w = w + infs * np.max(w)
    else:
        w = w + infs * np.max(w, axis=1, keepdims=True)
    final = 0 if batch else 1
    numer = 2.0 * (intersection * w).sum(final, keepdims=True) + smooth_nr
    denom = (denominator * w).sum(final, keepdims=True) + smooth_dr
    return np.ravel(1.0 - numer / denom)


def ref_lovasz_grad(gt_sorted):
    """Berman et al. ``lovasz_grad`` (Alg. 1)."""
    gts = gt_sorted.sum()
    intersection = gts - np.cumsum(gt_sorted)
    union = gts + np.cumsum(1.0 - gt_sorted)
    jaccard = 1.0 - intersection / union
    if len(gt_sorted) > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def ref_mean(values, empty=0.0):
    values = list(values)
    return empty if not values else float(np.mean(values))


def ref_lovasz_hinge_flat(logits, labels):
    if len(labels) == 0:
        return 0.0
    signs = 2.0 * labels - 1.0
    errors = 1.0 - logits * signs
    perm = np.argsort(-errors, kind="stable")
    return float(np.dot(np.maximum(errors[perm], 0.0), ref_lovasz_grad(labels[perm].astype(np.float64))))


def ref_lovasz_hinge(logits, labels, per_image=True, keep=None):
    """``lovasz_hinge``; ``keep`` (bool, like labels) removes pixels as the reference's ``ignore`` does."""
    keep = np.ones(labels.shape, bool) if keep is None else keep
    if per_image:
        return ref_mean(ref_lovasz_hinge_flat(lo[k], la[k]) for lo, la, k in zip(logits, labels, keep))
    return ref_lovasz_hinge_flat(logits[keep], labels[keep])


def ref_lovasz_softmax_flat(probas, labels, classes="present"):
    if probas.size == 0:
        return 0.0
    losses = []
    for c in range(probas.shape[1]):
        fg = (labels == c).astype(np.float64)
        if classes == "present" and fg.sum() == 0:
            continue
        errors = np.abs(fg - probas[:, c])
        perm = np.argsort(-errors, kind="stable")
        losses.append(float(np.dot(errors[perm], ref_lovasz_grad(fg[perm]))))
    return ref_mean(losses)


def ref_lovasz_softmax(probas, labels, classes="present", per_image=False, keep=None):
    """``lovasz_softmax`` on channels-last probabilities [B, *spatial, C]."""
    keep = np.ones(labels.shape, bool) if keep is None else keep
    if per_image:
        return ref_mean(ref_lovasz_softmax_flat(p[k], la[k], classes) for p, la, k in zip(probas, labels, keep))
    return ref_lovasz_softmax_flat(probas[keep], labels[keep], classes)


def _data(seed, shape=(3, 6, 7), num_classes=4, scale=2.0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, scale, shape + (num_classes,)).astype(np.float32)
    labels = rng.integers(0, num_classes, shape).astype(np.int32)
    onehot = np.eye(num_classes, dtype=np.float32)[labels]
    return logits, labels, onehot


def _first(x):
    """Channels last -> channels first (MONAI layout)."""
    return np.moveaxis(np.asarray(x, np.float64), -1, 1)


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64), rtol=rtol, atol=atol)


# --------------------------------------------------------- MONAI transcriptions
DICE_OPTIONS = [
    dict(activation="softmax"),
    dict(activation="sigmoid"),
    dict(activation="softmax", include_background=False),
    dict(activation="softmax", squared=True),
    dict(activation="sigmoid", squared=True, include_background=False),
    dict(activation="softmax", batch_dice=True),
    dict(activation="softmax", smooth=1.0),
]


def _monai_kwargs(opts):
    return dict(sigmoid=opts.get("activation") == "sigmoid", softmax=opts.get("activation") == "softmax",
                include_background=opts.get("include_background", True),
                smooth_nr=opts.get("smooth", 1e-5), smooth_dr=opts.get("smooth", 1e-5),
                batch=opts.get("batch_dice", False))


@pytest.mark.parametrize("jaccard", [False, True])
@pytest.mark.parametrize("opts", DICE_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_dice_and_jaccard_equal_monai(opts, jaccard):
    # MONAI DiceLoss(jaccard=...), monai/losses/dice.py, channels moved to axis 1.
    logits, labels, onehot = _data(0)
    fn = seg.jaccard_loss if jaccard else seg.dice_loss
    ref = monai_dice(_first(logits), _first(onehot), squared_pred=opts.get("squared", False), jaccard=jaccard,
                     **_monai_kwargs(opts))
    ours = fn(logits, labels, reduction="none", **opts)
    per_example = np.broadcast_to(ref.mean(axis=-1), (logits.shape[0],))
    _close(ours, per_example)
    _close(fn(logits, labels, **opts), ref.mean())           # MONAI reduction="mean"
    _close(fn(logits, onehot, **opts), ref.mean())           # one-hot targets agree with integer targets


@pytest.mark.parametrize("include_background", [True, False])
def test_dice_class_weights_equal_monai(include_background):
    # MONAI DiceLoss(weight=...): f * weight over the kept classes, then mean over batch and classes.
    logits, labels, onehot = _data(1)
    cw = np.array([0.5, 2.0, 1.0, 3.0], np.float32)
    kept = cw if include_background else cw[1:]
    ref = monai_dice(_first(logits), _first(onehot), softmax=True, include_background=include_background, weight=kept)
    ours = seg.dice_loss(logits, labels, class_weights=cw, include_background=include_background, reduction="none")
    _close(ours, ref.mean(axis=1))
    if not include_background:  # MONAI's own layout, [C - 1], is accepted too
        _close(seg.dice_loss(logits, labels, class_weights=kept, include_background=False, reduction="none"),
               ref.mean(axis=1))


@pytest.mark.parametrize("alpha,beta", [(0.5, 0.5), (0.3, 0.7), (0.8, 0.1), (1.0, 1.0)])
@pytest.mark.parametrize("opts", DICE_OPTIONS[:3] + DICE_OPTIONS[5:], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_tversky_equals_monai(opts, alpha, beta):
    # MONAI TverskyLoss, monai/losses/tversky.py: alpha weights FP, beta weights FN.
    logits, labels, onehot = _data(2)
    ref = monai_tversky(_first(logits), _first(onehot), alpha=alpha, beta=beta, **_monai_kwargs(opts))
    ours = seg.tversky_loss(logits, labels, alpha=alpha, beta=beta, reduction="none", **opts)
    _close(ours, np.broadcast_to(ref.mean(axis=-1), (logits.shape[0],)))
    _close(seg.tversky_loss(logits, onehot, alpha=alpha, beta=beta, **opts), ref.mean())


@pytest.mark.parametrize("shape", [(2, 24, 40), (2, 36, 36), (3, 20, 25)])  # 32, 16 and 4 (no) pixels folded
@pytest.mark.parametrize("batch_dice", [False, True])
def test_multichannel_sigmoid_sums_equal_monai(shape, batch_dice):
    # With a sigmoid on >= 2 channels and >= 4096 elements, the sums over pixels
    # fold pixels into the minor axis (segmentation._FOLD); the sums must stay
    # MONAI's (monai/losses/dice.py, tversky.py), whatever the pixel count.
    logits, _, _ = _data(7, shape=shape, num_classes=4)
    targets = (np.random.default_rng(8).random(logits.shape) < 0.3).astype(np.float32)
    targets[0, ..., 2] = 0.0                                   # an empty channel
    opts = dict(activation="sigmoid", batch_dice=batch_dice)
    kw = _monai_kwargs(opts)
    x, y = _first(logits), _first(targets)
    for jaccard, fn in ((False, seg.dice_loss), (True, seg.jaccard_loss)):
        _close(fn(logits, targets, **opts), monai_dice(x, y, jaccard=jaccard, **kw).mean())
    _close(seg.tversky_loss(logits, targets, alpha=0.3, beta=0.7, **opts),
           monai_tversky(x, y, alpha=0.3, beta=0.7, **kw).mean())
    _close(seg.generalized_dice_loss(logits, targets, **opts), monai_generalized_dice(x, y, **kw).mean())


def test_multichannel_sigmoid_gradients_match_finite_differences_float64():
    from jax.test_util import check_grads
    logits, _, _ = _data(9, shape=(2, 24, 40), num_classes=3, scale=1.0)
    targets = (np.random.default_rng(10).random(logits.shape) < 0.3).astype(np.float64)
    with jax.enable_x64(True):
        for fn in (seg.dice_loss, seg.tversky_loss, seg.generalized_dice_loss):
            check_grads(lambda z: fn(z, targets, activation="sigmoid"), (jnp.asarray(logits, jnp.float64),),
                        order=1, modes=("rev",), atol=1e-6, rtol=1e-6, eps=1e-5)


def test_tversky_one_half_is_close_to_dice_and_alpha_weights_false_positives():
    # alpha = beta = 0.5 is Dice up to where smooth enters; alpha penalises false positives.
    logits, labels, _ = _data(3)
    _close(seg.tversky_loss(logits, labels, smooth=0.0), seg.dice_loss(logits, labels, smooth=0.0))
    probs = np.array([[[1.0], [1.0], [1.0], [0.0]]], np.float32)   # 2 FP, 0 FN, 1 TP
    mask = np.array([[[1.0], [0.0], [0.0], [0.0]]], np.float32)
    # A one-off shape: one jitted program (alpha and beta traced) instead of per-primitive compiles.
    tversky = jax.jit(lambda a, b: seg.tversky_loss(probs, mask, activation=None, alpha=a, beta=b, smooth=0.0))
    fp_heavy = tversky(1.0, 0.0)
    fn_heavy = tversky(0.0, 1.0)
    _close(fp_heavy, 1.0 - 1.0 / 3.0)
    _close(fn_heavy, 0.0)


@pytest.mark.parametrize("gamma", [0.75, 1.0, 2.0])
def test_focal_tversky_equals_abraham_khan(gamma):
    # Abraham & Khan, losses.py: TI = (TP + s) / (TP + a FN + (1 - a) FP + s), FTL = (1 - TI)^gamma,
    # their alpha on the false negatives: their (alpha=0.7) is our alpha=0.3 (FP), beta=0.7 (FN).
    logits, labels, onehot = _data(4)
    probs = _softmax(logits.astype(np.float64), -1)
    s = 1e-5
    axes = (1, 2)
    tp = np.sum(onehot * probs, axes)
    fn = np.sum(onehot * (1 - probs), axes)
    fp = np.sum((1 - onehot) * probs, axes)
    ti = (tp + s) / (tp + 0.7 * fn + 0.3 * fp + s)
    expected = np.mean((1.0 - ti) ** gamma, axis=-1)
    ours = seg.focal_tversky_loss(logits, labels, alpha=0.3, beta=0.7, gamma=gamma, smooth=s, reduction="none")
    _close(ours, expected)
    if gamma == 1.0:
        _close(ours, seg.tversky_loss(logits, labels, alpha=0.3, beta=0.7, reduction="none"))


@pytest.mark.parametrize("w_type", ["square", "simple", "uniform"])
@pytest.mark.parametrize("opts", DICE_OPTIONS[:3] + DICE_OPTIONS[5:], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_generalized_dice_equals_monai(opts, w_type):
    # MONAI GeneralizedDiceLoss, monai/losses/dice.py, with an empty class in one example (inf weight
    # replaced by the example's largest finite weight).
    logits, labels, onehot = _data(5, num_classes=4)
    labels = labels.copy()
    labels[0][labels[0] == 2] = 1
    onehot = np.eye(4, dtype=np.float32)[labels]
    ref = monai_generalized_dice(_first(logits), _first(onehot), w_type=w_type, **_monai_kwargs(opts))
    ours = seg.generalized_dice_loss(logits, labels, weight_type=w_type, reduction="none", **opts)
    _close(ours, np.broadcast_to(ref, (logits.shape[0],)))
    _close(seg.generalized_dice_loss(logits, onehot, weight_type=w_type, **opts), ref.mean())


def test_generalized_dice_class_weights_scale_volume_weights():
    # Documented extension: class_weights multiply the volume weights; uniform weights of 1 change nothing.
    logits, labels, _ = _data(6)
    base = seg.generalized_dice_loss(logits, labels, reduction="none")
    _close(seg.generalized_dice_loss(logits, labels, class_weights=np.full(4, 3.0, np.float32), reduction="none"),
           base)
    zeroed = seg.generalized_dice_loss(logits, labels, class_weights=np.array([0, 1, 1, 1], np.float32),
                                       reduction="none")
    _close(zeroed, seg.generalized_dice_loss(logits, labels, include_background=False, reduction="none"))


def test_monai_itself_when_installed():
    monai_losses = pytest.importorskip("monai.losses")
    torch = pytest.importorskip("torch")
    logits, labels, onehot = _data(7)
    x, y = torch.from_numpy(_first(logits)), torch.from_numpy(_first(onehot))
    cases = [
        (monai_losses.DiceLoss(softmax=True), seg.dice_loss, {}),
        (monai_losses.DiceLoss(sigmoid=True, jaccard=True, batch=True), seg.jaccard_loss,
         dict(activation="sigmoid", batch_dice=True)),
        (monai_losses.TverskyLoss(softmax=True, alpha=0.3, beta=0.7, include_background=False), seg.tversky_loss,
         dict(alpha=0.3, beta=0.7, include_background=False)),
        (monai_losses.GeneralizedDiceLoss(softmax=True), seg.generalized_dice_loss, {}),
    ]
    for module, fn, kwargs in cases:
        _close(fn(logits, labels, **kwargs), float(module(x, y)), rtol=1e-5)


# ------------------------------------------------------------------- Lovasz
@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_lovasz_hinge_equals_reference(per_image, masked):
    # Berman et al., lovasz_losses.py: lovasz_hinge(logits, labels, per_image, ignore).
    rng = np.random.default_rng(8)
    logits = rng.normal(0.0, 2.0, (3, 6, 7)).astype(np.float32)   # the file's common shape: fewer compiles
    labels = rng.integers(0, 2, (3, 6, 7)).astype(np.int32)
    labels[1] = 0                                  # an image without foreground
    keep = rng.uniform(size=labels.shape) > 0.3 if masked else None
    expected = ref_lovasz_hinge(logits.astype(np.float64), labels, per_image=per_image, keep=keep)
    ours = seg.lovasz_hinge_loss(logits, labels, per_image=per_image, where=keep)
    _close(ours, expected)
    _close(seg.lovasz_hinge_loss(logits, labels.astype(np.float32), per_image=per_image, where=keep), expected)


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("classes", ["present", "all"])
@pytest.mark.parametrize("masked", [False, True])
def test_lovasz_softmax_equals_reference(per_image, classes, masked):
    # Berman et al., lovasz_losses.py: lovasz_softmax(softmax(logits), labels, classes, per_image, ignore).
    logits, labels, onehot = _data(9)
    labels = labels.copy()
    labels[0][labels[0] == 3] = 2                  # class 3 absent from image 0
    keep = np.random.default_rng(10).uniform(size=labels.shape) > 0.25 if masked else None
    probas = _softmax(logits.astype(np.float64), -1)
    expected = ref_lovasz_softmax(probas, labels, classes=classes, per_image=per_image, keep=keep)
    ours = seg.lovasz_softmax_loss(logits, labels, per_image=per_image, classes=classes, where=keep)
    _close(ours, expected)
    onehot = np.eye(4, dtype=np.float32)[labels]
    _close(seg.lovasz_softmax_loss(logits, onehot, per_image=per_image, classes=classes, where=keep), expected)


def test_lovasz_softmax_class_weights():
    logits, labels, _ = _data(11)
    base = np.asarray(seg.lovasz_softmax_loss(logits, labels, classes="all", reduction="none"))
    cw = np.array([1.0, 0.0, 0.0, 0.0], np.float32)
    probas = _softmax(logits.astype(np.float64), -1)
    # Only class 0 left: its Lovasz term divided by the number of classes averaged (4).
    expected = [ref_lovasz_softmax_flat(p.reshape(-1, 4), la.ravel(), "all") for p, la in zip(probas, labels)]
    only0 = []
    for p, la in zip(probas, labels):
        fg = (la.ravel() == 0).astype(np.float64)
        e = np.abs(fg - p.reshape(-1, 4)[:, 0])
        perm = np.argsort(-e, kind="stable")
        only0.append(np.dot(e[perm], ref_lovasz_grad(fg[perm])) / 4)
    _close(base, expected)
    _close(seg.lovasz_softmax_loss(logits, labels, classes="all", class_weights=cw, reduction="none"), only0)


def test_lovasz_hinge_perfect_margin_is_zero():
    labels = np.array([[1, 0, 1, 0]], np.int32)
    logits = np.array([[2.0, -3.0, 1.5, -1.0]], np.float32)   # every margin >= 1
    _close(jax.jit(seg.lovasz_hinge_loss)(logits, labels), 0.0)   # a one-off shape: one program


# --------------------------------------------------------------- closed forms
@pytest.mark.parametrize("fn", OVERLAP, ids=lambda f: f.__name__)
def test_perfect_prediction_gives_zero_and_disjoint_gives_one(fn):
    _, labels, onehot = _data(12)
    _close(fn(onehot, labels, activation=None, reduction="none"), np.zeros(3), atol=1e-5)
    wrong = np.roll(onehot, 1, axis=-1)   # every pixel predicts another class: no overlap at all
    _close(fn(wrong, labels, activation=None, reduction="none"), np.ones(3), atol=1e-5)


def test_lovasz_softmax_perfect_and_disjoint():
    _, labels, onehot = _data(13)
    big = 50.0 * (2.0 * onehot - 1.0)
    _close(seg.lovasz_softmax_loss(big, labels), 0.0, atol=1e-5)
    _close(seg.lovasz_softmax_loss(np.roll(big, 1, axis=-1), labels), 1.0, atol=1e-5)


# --------------------------------------------------------------- edge cases
@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_empty_classes_and_all_background_stay_finite(fn):
    logits, _, _ = _data(14)
    background = np.zeros(logits.shape[:-1], np.int32)   # only class 0 present, classes 1..3 empty
    for kwargs in ({}, {"include_background": False}) if fn is not seg.lovasz_softmax_loss else ({},):
        value, grad = jax.value_and_grad(lambda x: fn(x, background, **kwargs))(logits)
        assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
    # All background with include_background=False: nothing to find, nothing predicted -> ~0 loss.
    confident = np.where(np.arange(4) == 0, 30.0, -30.0).astype(np.float32) * np.ones_like(logits)
    if fn is not seg.lovasz_softmax_loss:
        value = fn(confident, background, include_background=False, smooth=1e-5)
        assert float(value) < 1e-3
        exact = np.eye(4, dtype=np.float32)[background]             # probabilities exactly 0 off class 0
        value = fn(exact, background, include_background=False, smooth=0.0, activation=None)
        assert float(value) == 0.0                                   # 0 / 0 counts as a perfect score
    else:
        assert float(fn(confident, background)) < 1e-6


def test_lovasz_hinge_all_background_finite():
    logits = np.random.default_rng(15).normal(size=(3, 6, 7)).astype(np.float32)
    labels = np.zeros((3, 6, 7), np.int32)
    value, grad = jax.value_and_grad(seg.lovasz_hinge_loss)(logits, labels)
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_256x256_half_precision_finite_and_accurate(dtype):
    # 256 x 256 = 65536 pixels per image: the all-background image's class-0 count alone is past
    # float16's largest finite value (65504), so a count or sum kept in float16 overflows, and one
    # kept in bfloat16 (8 significant bits) misses the float32 value by far more than 1e-5.
    # Every loss, its gradient and its float32 value on the rounded input come from one program.
    rng = np.random.default_rng(16)
    logits32 = rng.normal(0.0, 3.0, (2, 256, 256, 3)).astype(np.float32)
    labels = rng.integers(0, 3, (2, 256, 256)).astype(np.int32)
    labels[1] = 0                                  # an all-background image
    low = jnp.asarray(logits32, dtype)
    rounded = np.asarray(low, np.float32)          # what the 16-bit input holds, exactly, in float32
    binary = (labels > 0).astype(np.int32)

    @jax.jit
    def run(low, rounded, labels, binary):
        out = {fn.__name__: (*jax.value_and_grad(fn)(low, labels), fn(rounded, labels)) for fn in ALL}
        out["lovasz_hinge_loss"] = (*jax.value_and_grad(seg.lovasz_hinge_loss)(low[..., 0], binary), None)
        return out

    for name, (value, grad, value32) in run(low, rounded, labels, binary).items():
        assert value.dtype == jnp.float32 and grad.dtype == dtype, name
        assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad, np.float32))), name
        if value32 is not None:
            _close(value, value32, rtol=1e-5)  # summed in float32, like float32 input


@pytest.mark.parametrize("magnitude,dtype", [(1e4, jnp.float32), (60.0, jnp.bfloat16)])
def test_saturated_logits_finite(magnitude, dtype):
    # Contract edge cases: logits of magnitude 1e4 (float32) and 60 (bfloat16), every option path,
    # all values and gradients from one jitted program.
    logits, labels, _ = _data(31)
    big = jnp.asarray(np.where(logits >= 0, magnitude, -magnitude), dtype)
    cases = [(fn, kwargs) for fn in ALL
             for kwargs in (({}, {"activation": "sigmoid"}, {"batch_dice": True}) if fn in OVERLAP else ({},))]

    @jax.jit
    def run(big):
        out = [jax.value_and_grad(lambda x, fn=fn, kwargs=kwargs: fn(x, labels, **kwargs))(big)
               for fn, kwargs in cases]
        return out + [jax.value_and_grad(seg.lovasz_hinge_loss)(big[..., 0], (labels > 1).astype(np.int32))]

    for (fn, kwargs), (value, grad) in zip(cases + [(seg.lovasz_hinge_loss, {})], run(big)):
        assert np.isfinite(float(value)), (fn.__name__, kwargs)
        assert np.all(np.isfinite(np.asarray(grad, np.float32))), (fn.__name__, kwargs)


@pytest.mark.parametrize("bad,dtype", [(-1, np.int32), (4, np.int32), (255, np.uint8), (2**32 - 1, np.uint32)])
@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_out_of_range_integer_labels_give_nan_for_that_example(fn, bad, dtype):
    # Contract section 1: a label outside [0, C) gives NaN at its example, never a wrapped, clamped or
    # dropped class (lovasz_softmax_loss used to count the poisoned classes as absent and return 0.0).
    logits, labels, _ = _data(17)
    labels = labels.astype(dtype)
    labels[1, 0, 0] = bad
    values = np.asarray(fn(logits, labels, reduction="none"))
    assert np.isnan(values[1]) and np.all(np.isfinite(values[[0, 2]]))
    assert np.isnan(float(fn(logits, labels)))
    # Masked, the same pixel is harmless.
    keep = np.ones(labels.shape, bool)
    keep[1, 0, 0] = False
    assert np.all(np.isfinite(np.asarray(fn(logits, labels, where=keep, reduction="none"))))


def test_lovasz_hinge_non_binary_integer_labels_give_nan():
    logits = np.random.default_rng(32).normal(size=(3, 6, 7)).astype(np.float32)
    labels = np.random.default_rng(33).integers(0, 2, (3, 6, 7)).astype(np.uint8)
    labels[0, 1, 1] = 255
    values = np.asarray(seg.lovasz_hinge_loss(logits, labels, reduction="none"))
    assert np.isnan(values[0]) and np.all(np.isfinite(values[1:]))


@pytest.mark.parametrize("activation", ["softmax", None])
@pytest.mark.parametrize("fn", ALL + [seg.lovasz_hinge_loss], ids=lambda f: f.__name__)
def test_nan_in_an_unmasked_input_gives_nan(fn, activation):
    # A diverged model must show: one NaN prediction makes its example NaN (and the mean NaN);
    # masked, the same NaN contributes nothing.
    logits, labels, _ = _data(34)
    kwargs = {}
    if fn is seg.lovasz_hinge_loss:
        logits, labels = logits[..., 0], (labels > 1).astype(np.int32)
    elif fn is not seg.lovasz_softmax_loss:
        kwargs["activation"] = activation
        if activation is None:
            logits = _softmax(logits, -1)
    elif activation is None:
        pytest.skip("lovasz_softmax_loss always applies softmax")
    poisoned = logits.copy()
    poisoned[1, 2, 3] = np.nan
    values = np.asarray(fn(poisoned, labels, reduction="none", **kwargs))
    assert np.isnan(values[1]) and np.all(np.isfinite(values[[0, 2]]))
    keep = ~np.isnan(poisoned) if poisoned.ndim == labels.ndim else ~np.isnan(poisoned).any(-1)
    value, grad = jax.value_and_grad(lambda x: fn(x, labels, where=keep, **kwargs))(poisoned)
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))


EMPTY_BATCH_CASES = [(f, {}) for f in ALL] + [
    (seg.dice_loss, {"batch_dice": True}), (seg.generalized_dice_loss, {"batch_dice": True}),
    (seg.lovasz_softmax_loss, {"per_image": False}), (seg.lovasz_hinge_loss, {}),
    (seg.lovasz_hinge_loss, {"per_image": False})]


def test_empty_batch_gives_zero_with_zero_gradient():
    # Size-0 batch: an empty mean is 0.0 with zero gradient (used to raise ZeroDivisionError).
    # Every loss and option, both reductions, in one jitted program.
    logits = np.zeros((0, 4, 5, 3), np.float32)
    labels = np.zeros((0, 4, 5), np.int32)

    def inputs(fn):
        return logits[..., 0] if fn is seg.lovasz_hinge_loss else logits

    @jax.jit
    def run():
        return [(jax.value_and_grad(lambda x, fn=fn, kw=kwargs, r=reduction: fn(x, labels, reduction=r, **kw))(
                    inputs(fn)), fn(inputs(fn), labels, reduction="none", **kwargs))
                for fn, kwargs in EMPTY_BATCH_CASES for reduction in ("mean", "sum")]

    cases = [(fn.__name__, kwargs, reduction) for fn, kwargs in EMPTY_BATCH_CASES for reduction in ("mean", "sum")]
    for (name, kwargs, reduction), ((value, grad), unreduced) in zip(cases, run()):
        fn = getattr(seg, name)
        assert float(value) == 0.0 and grad.shape == inputs(fn).shape, (name, kwargs, reduction)
        assert unreduced.shape == (0,), (name, kwargs)


# ------------------------------------------------------------ where and options
@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_pixel_where_removes_pixels_from_every_sum(fn):
    # A pixel mask equals the transcription computed on the kept pixels only (the ignore_index use).
    logits, labels, onehot = _data(18)
    keep = np.random.default_rng(19).uniform(size=labels.shape) > 0.3
    ignore = np.where(keep, labels, 255).astype(np.int32)          # VOC-style ignore label
    poisoned = np.where(keep[..., None], logits, np.nan).astype(np.float32)
    ours = np.asarray(fn(poisoned, ignore, where=ignore != 255, reduction="none"))
    # Each example's kept pixels have their own count: one jitted program per shape is far
    # cheaper than compiling every primitive eagerly for each new shape.
    unreduced = jax.jit(functools.partial(fn, reduction="none"))
    expected = [float(unreduced(lo[k][None], la[k][None])[0]) for lo, la, k in zip(logits, labels, keep)]
    _close(ours, expected)
    grad = jax.grad(lambda x: fn(x, ignore, where=ignore != 255))(poisoned)
    assert np.all(np.isfinite(np.asarray(grad))) and np.all(np.asarray(grad)[~keep] == 0)


def test_pixel_where_matches_monai_transcription():
    logits, labels, onehot = _data(20)
    keep = np.random.default_rng(21).uniform(size=labels.shape) > 0.5
    probs = _softmax(logits.astype(np.float64), -1) * keep[..., None]
    ref = monai_dice(_first(probs), _first(onehot * keep[..., None]))
    _close(seg.dice_loss(logits, labels, where=keep, reduction="none"), ref.mean(axis=1))


def test_fully_masked_example_leaves_the_mean():
    logits, labels, _ = _data(22)
    keep = np.ones(labels.shape, bool)
    keep[2] = False
    _close(seg.dice_loss(logits, labels, where=keep), jax.jit(seg.dice_loss)(logits[:2], labels[:2]))
    assert float(seg.dice_loss(logits, labels, where=np.zeros(labels.shape, bool))) == 0.0


@pytest.mark.parametrize("fn", OVERLAP, ids=lambda f: f.__name__)
def test_batch_dice_pools_and_broadcasts(fn):
    logits, labels, _ = _data(23)
    values = np.asarray(fn(logits, labels, batch_dice=True, reduction="none"))
    assert values.shape == (3,) and np.allclose(values, values[0])
    # Pooled = one image made of the batch laid side by side.
    side_by_side = np.concatenate(list(logits), axis=0)[None], np.concatenate(list(labels), axis=0)[None]
    # The side-by-side and two-example shapes are one-offs: one jitted program each, not per primitive.
    _close(fn(logits, labels, batch_dice=True), jax.jit(fn)(*side_by_side))
    # An example mask removes the example from the pool.
    where = np.array([True, False, True])
    _close(fn(logits, labels, batch_dice=True, where=where),
           jax.jit(functools.partial(fn, batch_dice=True))(logits[[0, 2]], labels[[0, 2]]))
    _close(fn(logits, labels, batch_dice=True, reduction="sum"), 3 * values[0])


def test_lovasz_per_image_false_pools_the_batch():
    logits, labels, _ = _data(24)
    side_by_side = np.concatenate(list(logits), axis=0)[None], np.concatenate(list(labels), axis=0)[None]
    _close(seg.lovasz_softmax_loss(logits, labels, per_image=False), jax.jit(seg.lovasz_softmax_loss)(*side_by_side))


@pytest.mark.parametrize("fn", OVERLAP, ids=lambda f: f.__name__)
def test_include_background_and_class_weights(fn):
    logits, labels, _ = _data(25)
    per_class = []
    for c in range(4):   # per-class loss: the loss with every other class weighted 0, times 4
        cw = np.zeros(4, np.float32)
        cw[c] = 4.0
        per_class.append(np.asarray(fn(logits, labels, class_weights=cw, reduction="none")))
    per_class = np.stack(per_class, -1)
    if fn is seg.generalized_dice_loss:
        return  # one ratio over classes: covered by test_generalized_dice_class_weights_scale_volume_weights
    _close(fn(logits, labels, reduction="none"), per_class.mean(-1))
    _close(fn(logits, labels, include_background=False, reduction="none"), per_class[:, 1:].mean(-1))
    cw = np.array([0.0, 1.0, 2.0, 3.0], np.float32)
    _close(fn(logits, labels, class_weights=cw, reduction="none"), (per_class * cw).mean(-1))


def test_three_d_and_no_spatial_axes():
    rng = np.random.default_rng(26)
    vol = rng.normal(size=(2, 3, 4, 5, 3)).astype(np.float32)
    vlab = rng.integers(0, 3, (2, 3, 4, 5)).astype(np.int32)
    flat = vol.reshape(2, -1, 3), vlab.reshape(2, -1)
    # New shapes for every loss: one jitted program for all of them (no per-primitive compiles).
    run = jax.jit(lambda v, vl, f, fl: [(fn(v, vl, reduction="none"), fn(f, fl, reduction="none")) for fn in ALL])
    for fn, (three_d, flattened) in zip(ALL, run(vol, vlab, *flat)):
        _close(three_d, flattened)
    assert seg.dice_loss(vol[:, 0, 0, 0], vlab[:, 0, 0, 0], reduction="none").shape == (2,)


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_jit_and_vmap_with_pixel_where(fn):
    logits, labels, _ = _data(27)
    keep = labels != 2
    eager = fn(logits, labels, where=keep, reduction="none")
    _close(jax.jit(lambda x, y, w: fn(x, y, where=w, reduction="none"))(logits, labels, keep), eager)
    mapped = jax.vmap(lambda x, y, w: fn(x, y, where=w, reduction="none"))(logits[None], labels[None], keep[None])
    _close(mapped[0], eager)


# -------------------------------------------- check_loss on the other configurations
@pytest.mark.parametrize("fn,kwargs", [
    (seg.dice_loss, dict(batch_dice=True)),
    (seg.generalized_dice_loss, dict(batch_dice=True, weight_type="simple")),
    (seg.tversky_loss, dict(activation="sigmoid", include_background=False, class_weights=np.array([1.0, 2.0, 0.5]))),
    (seg.lovasz_softmax_loss, dict(per_image=False, classes="all")),
    (seg.lovasz_hinge_loss, dict(per_image=False)),
], ids=lambda v: getattr(v, "__name__", ""))
def test_check_loss_on_pooled_and_other_options(fn, kwargs):
    rng = np.random.default_rng(28)
    if fn is seg.lovasz_hinge_loss:
        args = rng.normal(0.0, 2.0, (3, 4, 5)), rng.integers(0, 2, (3, 4, 5)).astype(np.int32)
    else:
        args = rng.normal(0.0, 1.5, (3, 4, 5, 3)), rng.integers(0, 3, (3, 4, 5)).astype(np.int32)
    # The default configurations run every check in test_invariants.py; here the checks whose
    # outcome the pooled / optional code paths can change.
    check_loss(fn, *args, only=["reduction", "vmap", "grad", "where", "all_masked"], **kwargs)


# ------------------------------------------------------------------- errors
def test_errors_name_function_and_argument():
    logits, labels, onehot = _data(29)
    with pytest.raises(ValueError, match="jaxloss.dice_loss: targets"):
        seg.dice_loss(logits, labels[..., :3])
    with pytest.raises(ValueError, match="jaxloss.dice_loss: targets"):
        seg.dice_loss(logits, onehot[..., :3])
    with pytest.raises(TypeError, match="jaxloss.dice_loss: targets"):
        seg.dice_loss(logits, labels.astype(np.float32))          # float class indices
    with pytest.raises(TypeError, match="jaxloss.dice_loss: predictions"):
        seg.dice_loss(labels[..., None], labels)
    with pytest.raises(ValueError, match="jaxloss.dice_loss: where"):
        seg.dice_loss(logits, labels, where=np.ones((3, 6), bool))
    with pytest.raises(TypeError, match="jaxloss.dice_loss: where"):
        seg.dice_loss(logits, labels, where=np.ones(3))
    with pytest.raises(ValueError, match="jaxloss.dice_loss: class_weights"):
        seg.dice_loss(logits, labels, class_weights=np.ones(3, np.float32))
    with pytest.raises(ValueError, match="jaxloss.dice_loss: class_weights"):
        seg.dice_loss(logits, labels, class_weights=-np.ones(4, np.float32))
    with pytest.raises(ValueError, match="jaxloss.dice_loss: activation"):
        seg.dice_loss(logits, labels, activation="relu")
    with pytest.raises(ValueError, match="jaxloss.dice_loss: activation"):
        seg.dice_loss(logits[..., :1], onehot[..., :1])           # softmax over one class
    with pytest.raises(ValueError, match="jaxloss.dice_loss: smooth"):
        seg.dice_loss(logits, labels, smooth=-1.0)
    with pytest.raises(ValueError, match="jaxloss.dice_loss: reduction"):
        seg.dice_loss(logits, labels, reduction="average")
    with pytest.raises(ValueError, match="jaxloss.tversky_loss: alpha"):
        seg.tversky_loss(logits, labels, alpha=-0.1)
    with pytest.raises(ValueError, match="jaxloss.focal_tversky_loss: gamma"):
        seg.focal_tversky_loss(logits, labels, gamma=-1.0)
    with pytest.raises(ValueError, match="jaxloss.generalized_dice_loss: weight_type"):
        seg.generalized_dice_loss(logits, labels, weight_type="cubic")
    with pytest.raises(ValueError, match="jaxloss.lovasz_softmax_loss: classes"):
        seg.lovasz_softmax_loss(logits, labels, classes="some")
    with pytest.raises(ValueError, match="jaxloss.lovasz_hinge_loss"):
        seg.lovasz_hinge_loss(logits[..., 0], labels[:, :5] > 0)
    with pytest.raises(ValueError, match="jaxloss.dice_loss: batch_dice"):
        seg.dice_loss(logits, labels, batch_dice="yes")


def test_traced_hyper_parameters():
    logits, labels, _ = _data(30)
    f = jax.jit(lambda a, b, g, s: seg.focal_tversky_loss(logits, labels, alpha=a, beta=b, gamma=g, smooth=s))
    _close(f(0.6, 0.4, 1.5, 1e-3), seg.focal_tversky_loss(logits, labels, alpha=0.6, beta=0.4, gamma=1.5, smooth=1e-3))
    grads = jax.grad(lambda a: seg.tversky_loss(logits, labels, alpha=a))(0.5)
    assert np.isfinite(float(grads)) and float(grads) > 0   # more weight on FP raises the loss
