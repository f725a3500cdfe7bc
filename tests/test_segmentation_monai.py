"""Reference tests for MONAI's segmentation toolbox in jaxloss.segmentation.

``smooth_nr``/``smooth_dr``, ``channel_axis``, ``ignore_index``, ``dice_ce_loss``,
``dice_focal_loss``, ``hausdorff_dt_loss``, ``soft_cldice_loss`` and ``ssim_loss``.

References (numbers we did not compute with our code), each transcribed in
NumPy below, channels first, as the peer's source reads:

* MONAI ``monai/losses/dice.py`` (``DiceLoss``, ``DiceCELoss``, ``DiceFocalLoss``),
  ``monai/losses/focal_loss.py`` (``sigmoid_focal_loss``),
  ``monai/losses/hausdorff_loss.py`` (``HausdorffDTLoss``, with SciPy's exact
  ``distance_transform_edt`` as MONAI uses on the CPU) and
  ``monai/losses/cldice.py``: https://github.com/Project-MONAI/MONAI/tree/dev/monai/losses
* torch ``nn.CrossEntropyLoss`` / ``BCEWithLogitsLoss`` semantics (class weights,
  ``label_smoothing``, probability targets), as ``DiceCELoss`` calls them:
  https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html
* Shit et al.'s ``cldice_loss/pytorch/soft_skeleton.py`` and ``cldice.py``:
  https://github.com/jocpae/clDice
* scikit-image ``skimage/metrics/_structural_similarity.py``
  (``gaussian_weights=True``, ``use_sample_covariance=False``): SciPy
  ``gaussian_filter`` with ``truncate=3.5`` and the border crop.
* The peers themselves (MONAI, scikit-image) where installed (importorskip).
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss.segmentation as seg

RTOL = 1e-5
ATOL = 1e-6

OVERLAP = [seg.dice_loss, seg.jaccard_loss, seg.tversky_loss, seg.focal_tversky_loss, seg.generalized_dice_loss]
COMPOUND = [seg.dice_ce_loss, seg.dice_focal_loss]


def _one_program(fn):
    """``jax.jit`` (one compile for a test's cases) except for ``soft_cldice_loss``.

    Eager execution compiles each primitive once per shape and reuses it: cheap for
    ``soft_cldice_loss``, whose ``iterations`` pooling steps repeat the same primitives, but not for
    the other losses, where one jitted program costs a fraction of their per-primitive compiles.
    """
    return (lambda f: f) if fn is seg.soft_cldice_loss else jax.jit
NEW = COMPOUND + [seg.soft_cldice_loss, seg.hausdorff_dt_loss]


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64), rtol=rtol, atol=atol)


def _data(seed, shape=(3, 6, 7), num_classes=4, scale=2.0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, scale, shape + (num_classes,)).astype(np.float32)
    labels = rng.integers(0, num_classes, shape).astype(np.int32)
    onehot = np.eye(num_classes, dtype=np.float32)[labels]
    return logits, labels, onehot


def _first(x):
    """Channels last -> channels first (MONAI layout), float64."""
    return np.moveaxis(np.asarray(x, np.float64), -1, 1)


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


# ------------------------------------------------------------ NumPy transcriptions
def ref_dice(x, y, *, activation="softmax", include_background=True, squared=False, jaccard=False,
             smooth_nr=1e-5, smooth_dr=1e-5, batch=False, weight=None):
    """monai DiceLoss(reduction="none"), channels first: [B, K] (or [K] with batch)."""
    if activation == "softmax":
        x = _softmax(x, 1)
    elif activation == "sigmoid":
        x = 1.0 / (1.0 + np.exp(-x))
    if not include_background:
        x, y = x[:, 1:], y[:, 1:]
    axes = tuple(range(2, x.ndim))
    if batch:
        axes = (0,) + axes
    tp = np.sum(x * y, axes)
    total = np.sum(x ** 2, axes) + np.sum(y ** 2, axes) if squared else np.sum(x, axes) + np.sum(y, axes)
    denominator = 2.0 * (total - tp) if jaccard else total
    f = 1.0 - (2.0 * tp + smooth_nr) / (denominator + smooth_dr)
    if weight is not None and y.shape[1] != 1:
        f = f * np.asarray(weight, np.float64)
    return f


def ref_cross_entropy(x, y, *, weight=None, label_smoothing=0.0, integer=True):
    """torch CrossEntropyLoss(weight, label_smoothing, reduction="mean") on [B, C, ...] logits, one-hot y.

    Integer targets: sum_i w_{y_i} l_i / sum_i w_{y_i}; probability targets: mean over pixels.
    """
    num_classes = x.shape[1]
    w = np.ones(num_classes) if weight is None else np.asarray(weight, np.float64)
    wb = w.reshape((1, -1) + (1,) * (x.ndim - 2))
    logp = _log_softmax(x, 1)
    smoothed = (1.0 - label_smoothing) * y + label_smoothing / num_classes
    per_pixel = -np.sum(wb * smoothed * logp, axis=1)
    if integer:
        return per_pixel.sum() / np.sum(wb * y, axis=1).sum()
    return per_pixel.mean()


def ref_dice_ce(x, y, *, lambda_dice=1.0, lambda_ce=1.0, weight=None, include_background=True, batch=False,
                label_smoothing=0.0, integer=True, **dice):
    """monai DiceCELoss(...)(x, y) (reduction="mean"): weight[1:] for Dice without background, BCE for C = 1."""
    dice_weight = None if weight is None else (weight if include_background else weight[1:])
    d = ref_dice(x, y, include_background=include_background, batch=batch, weight=dice_weight, **dice).mean()
    if x.shape[1] == 1:
        pw = 1.0 if weight is None else float(weight[0])
        ce = np.mean(-(pw * y * _log_sigmoid(x) + (1.0 - y) * _log_sigmoid(-x)))
    else:
        ce = ref_cross_entropy(x, y, weight=weight, label_smoothing=label_smoothing, integer=integer)
    return lambda_dice * d + lambda_ce * ce


def ref_sigmoid_focal(x, y, gamma=2.0, alpha=None):
    """monai/losses/focal_loss.py sigmoid_focal_loss, elementwise."""
    loss = x - x * y - _log_sigmoid(x)
    loss = np.exp(_log_sigmoid(-x * (y * 2 - 1)) * gamma) * loss
    if alpha is not None:
        loss = (y * alpha + (1 - y) * (1 - alpha)) * loss
    return loss


def ref_dice_focal(x, y, *, lambda_dice=1.0, lambda_focal=1.0, gamma=2.0, alpha=None, weight=None,
                   include_background=True, batch=False, **dice):
    """monai DiceFocalLoss(...)(x, y): the same weight (kept classes) for both parts, focal mean over all."""
    d = ref_dice(x, y, include_background=include_background, batch=batch, weight=weight, **dice).mean()
    xf, yf = (x, y) if include_background else (x[:, 1:], y[:, 1:])
    focal = ref_sigmoid_focal(xf, yf, gamma, alpha)
    if weight is not None:
        focal = focal * np.asarray(weight, np.float64).reshape((1, -1) + (1,) * (x.ndim - 2))
    return lambda_dice * d + lambda_focal * focal.mean()


def ref_distance_field(img):
    """HausdorffDTLoss.distance_field on [B, 1, *spatial] with SciPy's exact EDT."""
    ndimage = pytest.importorskip("scipy.ndimage")
    field = np.zeros_like(img, dtype=np.float64)
    for b in range(len(img)):
        fg = img[b] > 0.5
        if fg.any() and not fg.all():
            field[b] = ndimage.distance_transform_edt(fg) + ndimage.distance_transform_edt(~fg)
    return field


def ref_hausdorff(x, y, alpha=2.0, include_background=False):
    """monai HausdorffDTLoss(alpha, include_background)(x, y) with reduction="none": [B, K]."""
    if not include_background and x.shape[1] > 1:
        x, y = x[:, 1:], y[:, 1:]
    out = []
    for i in range(x.shape[1]):
        xi, yi = x[:, [i]], y[:, [i]]
        distance = ref_distance_field(xi) ** alpha + ref_distance_field(yi) ** alpha
        out.append(((xi - yi) ** 2 * distance).mean(axis=tuple(range(1, x.ndim))))
    return np.stack(out, 1)


def _pool3(x, axis, op):
    """torch max_pool / -max_pool(-x) of width 3 along ``axis``, stride 1, padding 1 (pads never win)."""
    fill = -np.inf if op is np.maximum else np.inf
    pad = [(0, 0)] * x.ndim
    pad[axis] = (1, 1)
    p = np.pad(x, pad, constant_values=fill)
    n = x.shape[axis]
    s = [np.take(p, range(k, k + n), axis=axis) for k in range(3)]
    return op(op(s[0], s[1]), s[2])


def ref_soft_erode(img):
    """soft_skeleton.py soft_erode on [B, C, *spatial]: min of the (3,1) and (1,3) (and (1,1,3)) min-pools."""
    pools = [_pool3(img, a, np.minimum) for a in range(2, img.ndim)]
    out = pools[0]
    for p in pools[1:]:
        out = np.minimum(out, p)
    return out


def ref_soft_dilate(img):
    """soft_skeleton.py soft_dilate: a full 3x3(x3) max-pool, written as a loop over the window."""
    out = np.full_like(img, -np.inf)
    spatial = img.shape[2:]
    padded = np.pad(img, [(0, 0), (0, 0)] + [(1, 1)] * len(spatial), constant_values=-np.inf)
    for shift in itertools.product(range(3), repeat=len(spatial)):
        index = (slice(None), slice(None)) + tuple(slice(s, s + n) for s, n in zip(shift, spatial))
        out = np.maximum(out, padded[index])
    return out


def ref_soft_skel(img, iterations):
    img1 = ref_soft_dilate(ref_soft_erode(img))
    skel = np.maximum(img - img1, 0.0)
    for _ in range(iterations):
        img = ref_soft_erode(img)
        img1 = ref_soft_dilate(ref_soft_erode(img))
        delta = np.maximum(img - img1, 0.0)
        skel = skel + np.maximum(delta - skel * delta, 0.0)
    return skel


def ref_cldice(y_pred, y_true, iterations=3, smooth=1.0):
    """cldice.py soft_cldice.forward on ONE example (its sums run over everything it is given)."""
    skel_pred = ref_soft_skel(y_pred, iterations)
    skel_true = ref_soft_skel(y_true, iterations)
    tprec = (np.sum(skel_pred * y_true) + smooth) / (np.sum(skel_pred) + smooth)
    tsens = (np.sum(skel_true * y_pred) + smooth) / (np.sum(skel_true) + smooth)
    return 1.0 - 2.0 * (tprec * tsens) / (tprec + tsens)


def ref_ssim(x, y, data_range=1.0, sigma=1.5, win_size=11, k1=0.01, k2=0.03):
    """skimage structural_similarity(gaussian_weights=True, use_sample_covariance=False) per channel, averaged.

    ``x``, ``y``: [*spatial, C]. The Gaussian filter runs over the spatial axes with
    truncate = radius / sigma (skimage's ``truncate=3.5`` at sigma 1.5 gives radius 5).
    """
    ndimage = pytest.importorskip("scipy.ndimage")
    radius = (win_size - 1) // 2
    out = []
    for c in range(x.shape[-1]):
        a, b = x[..., c].astype(np.float64), y[..., c].astype(np.float64)

        def filt(z):
            return ndimage.gaussian_filter(z, sigma=sigma, truncate=radius / sigma, mode="reflect")

        ux, uy = filt(a), filt(b)
        uxx, uyy, uxy = filt(a * a), filt(b * b), filt(a * b)
        vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
        c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
        crop = tuple(slice(radius, n - radius) for n in s.shape)
        out.append(s[crop].mean())
    return float(np.mean(out))


# ---------------------------------------------------------- smooth_nr, smooth_dr
@pytest.mark.parametrize("nr,dr", [(0.0, 1e-6), (1.0, 1e-5), (0.5, 2.0)])
def test_smooth_nr_dr_equal_monai(nr, dr):
    # monai/losses/dice.py DiceLoss and tversky.py: f = 1 - (num + smooth_nr) / (den + smooth_dr).
    logits, labels, onehot = _data(40)
    x, y = _first(logits), _first(onehot)
    _close(seg.dice_loss(logits, labels, smooth_nr=nr, smooth_dr=dr), ref_dice(x, y, smooth_nr=nr, smooth_dr=dr).mean())
    _close(seg.jaccard_loss(logits, labels, smooth_nr=nr, smooth_dr=dr),
           ref_dice(x, y, jaccard=True, smooth_nr=nr, smooth_dr=dr).mean())
    p = _softmax(x, 1)
    tp, fp, fn = np.sum(p * y, (2, 3)), np.sum(p * (1 - y), (2, 3)), np.sum((1 - p) * y, (2, 3))
    tversky = 1.0 - (tp + nr) / (tp + 0.3 * fp + 0.7 * fn + dr)
    _close(seg.tversky_loss(logits, labels, alpha=0.3, beta=0.7, smooth_nr=nr, smooth_dr=dr), tversky.mean())
    _close(seg.focal_tversky_loss(logits, labels, alpha=0.3, beta=0.7, gamma=2.0, smooth_nr=nr, smooth_dr=dr),
           (tversky ** 2).mean())


@pytest.mark.parametrize("fn", OVERLAP, ids=lambda f: f.__name__)
def test_single_smooth_sets_both_terms(fn):
    logits, labels, _ = _data(41)
    _close(fn(logits, labels, smooth=0.3, reduction="none"),
           fn(logits, labels, smooth_nr=0.3, smooth_dr=0.3, reduction="none"))
    with pytest.raises(ValueError, match=f"jaxloss.{fn.__name__}: smooth_dr"):
        fn(logits, labels, smooth_dr=-1.0)


def test_empty_class_without_numerator_smoothing_scores_one():
    # MONAI with smooth_nr=0: an empty, unpredicted class has f = 1 - 0 / smooth_dr = 1.
    probs = np.array([[[1.0, 0.0], [1.0, 0.0]]], np.float32)
    labels = np.array([[0, 0]], np.int32)
    per_class = ref_dice(_first(probs), _first(np.eye(2, dtype=np.float32)[labels]), activation=None,
                         smooth_nr=0.0, smooth_dr=1e-5)
    _close(seg.dice_loss(probs, labels, activation=None, smooth_nr=0.0, smooth_dr=1e-5), per_class.mean())
    _close(per_class, [[0.0, 1.0]], atol=1e-5)


# ------------------------------------------------------------------ channel_axis
@pytest.mark.parametrize("fn", OVERLAP + NEW, ids=lambda f: f.__name__)
def test_channels_first_equals_channels_last(fn):
    logits, labels, onehot = _data(42)
    first = np.moveaxis(logits, -1, 1)
    kwargs = {"channel_axis": 1}

    @_one_program(fn)   # both layouts, values and gradients
    def run(first, logits, labels, onehot):
        return (fn(first, labels, reduction="none", **kwargs), fn(logits, labels, reduction="none"),
                fn(first, jnp.moveaxis(onehot, -1, 1), reduction="none", **kwargs),
                fn(logits, onehot, reduction="none"),
                jax.grad(lambda x: fn(x, labels, **kwargs))(first), jax.grad(lambda x: fn(x, labels))(logits))

    v_first, v_last, oh_first, oh_last, grad_first, grad_last = run(first, logits, labels, onehot)
    _close(v_first, v_last)
    _close(oh_first, oh_last)
    _close(grad_first, np.moveaxis(np.asarray(grad_last), -1, 1), atol=1e-6)


def test_channels_first_equals_monai_on_its_own_layout():
    logits, labels, onehot = _data(43)
    first = np.moveaxis(logits, -1, 1)
    _close(seg.dice_loss(first, np.moveaxis(onehot, -1, 1), channel_axis=1),
           ref_dice(first.astype(np.float64), _first(onehot)).mean())
    with pytest.raises(ValueError, match="jaxloss.dice_loss: channel_axis"):
        seg.dice_loss(logits, labels, channel_axis=0)
    with pytest.raises(ValueError, match="jaxloss.dice_loss: channel_axis"):
        seg.dice_loss(logits, labels, channel_axis=4)


# ------------------------------------------------------------------ ignore_index
@pytest.mark.parametrize("fn", OVERLAP + NEW, ids=lambda f: f.__name__)
def test_ignore_index_equals_pixel_mask(fn):
    logits, labels, _ = _data(44)
    keep = np.random.default_rng(45).uniform(size=labels.shape) > 0.3
    ignored = np.where(keep, labels, 255).astype(np.int32)
    poisoned = np.where(keep[..., None], logits, np.nan).astype(np.float32)
    ours = fn(poisoned, ignored, ignore_index=255, reduction="none")
    _close(ours, fn(logits, labels, where=keep, reduction="none"))
    grad = _one_program(fn)(jax.grad(lambda x: fn(x, ignored, ignore_index=255)))(poisoned)
    assert np.all(np.isfinite(np.asarray(grad))) and np.all(np.asarray(grad)[~keep] == 0)
    # An in-range ignore_index (class 2) removes those pixels too, and combines with where.
    where = np.ones(labels.shape, bool)
    where[0] = False
    _close(fn(logits, labels, ignore_index=2, where=where, reduction="none"),
           fn(logits, labels, where=where & (labels != 2), reduction="none"))


def test_ignore_index_equals_monai_transcription():
    # MONAI DiceLoss(ignore_index=...): input and target multiplied by the mask of kept pixels.
    logits, labels, onehot = _data(46)
    labels = labels.copy()
    labels[:, :2] = 7                                         # an ignore label outside [0, C)
    keep = labels != 7
    onehot = np.eye(4, dtype=np.float32)[np.where(keep, labels, 0)] * keep[..., None]
    probs = _softmax(logits.astype(np.float64), -1) * keep[..., None]
    expected = ref_dice(_first(probs), _first(onehot), activation=None)
    _close(seg.dice_loss(logits, labels, ignore_index=7, reduction="none"), expected.mean(1))


def test_ignore_index_needs_integer_targets():
    logits, _, onehot = _data(47)
    with pytest.raises(ValueError, match="jaxloss.dice_loss: ignore_index"):
        seg.dice_loss(logits, onehot, ignore_index=0)
    with pytest.raises(ValueError, match="jaxloss.dice_ce_loss: ignore_index"):
        seg.dice_ce_loss(logits, onehot, ignore_index=1.5)


# ------------------------------------------------------------------ dice_ce_loss
DICE_CE_OPTIONS = [
    dict(),
    dict(include_background=False),
    dict(lambda_dice=0.3, lambda_ce=1.7),
    dict(label_smoothing=0.1),
    dict(activation="sigmoid", squared=True),
    dict(jaccard=True, smooth_nr=0.0, smooth_dr=1e-6),
    dict(batch_dice=True, class_weights=np.array([0.5, 2.0, 1.0, 3.0], np.float32)),
    dict(batch_dice=True, class_weights=np.array([0.5, 2.0, 1.0, 3.0], np.float32), include_background=False,
         label_smoothing=0.2),
]


def _ref_kwargs(opts):
    out = dict(opts)
    if "activation" not in out:
        out["activation"] = "softmax"
    if "batch_dice" in out:
        out["batch"] = out.pop("batch_dice")
    if "class_weights" in out:
        out["weight"] = out.pop("class_weights")
    return out


@pytest.mark.parametrize("integer", [True, False], ids=["indices", "onehot"])
@pytest.mark.parametrize("opts", DICE_CE_OPTIONS, ids=lambda o: ",".join(o) or "defaults")
def test_dice_ce_equals_monai_transcription(opts, integer):
    logits, labels, onehot = _data(48)
    expected = ref_dice_ce(_first(logits), _first(onehot), integer=integer, **_ref_kwargs(opts))
    _close(seg.dice_ce_loss(logits, labels if integer else onehot, **opts), expected)


def test_dice_ce_class_weights_normalise_per_example():
    # MONAI normalises the class-weighted CE over the batch; jaxloss per example (documented): equal for
    # a batch of one, and the per-example values average to the mean.
    logits, labels, onehot = _data(49)
    cw = np.array([0.5, 2.0, 1.0, 3.0], np.float32)
    per_example = [ref_dice_ce(_first(logits[i:i + 1]), _first(onehot[i:i + 1]), weight=cw) for i in range(3)]
    _close(seg.dice_ce_loss(logits, labels, class_weights=cw, reduction="none"), per_example)
    # One-hot targets: torch divides by the pixel count, so the batch mean is MONAI's even with weights.
    _close(seg.dice_ce_loss(logits, onehot, class_weights=cw),
           ref_dice_ce(_first(logits), _first(onehot), weight=cw, integer=False))


def test_dice_ce_one_channel_is_bce_with_pos_weight():
    logits, labels, _ = _data(50, num_classes=1)
    target = (np.random.default_rng(51).uniform(size=labels.shape) > 0.6).astype(np.float32)[..., None]
    for cw in (None, np.array([2.5], np.float32)):
        expected = ref_dice_ce(_first(logits), _first(target), activation="sigmoid", weight=cw)
        _close(seg.dice_ce_loss(logits, target, activation="sigmoid", class_weights=cw), expected)


def test_dice_ce_ignore_index_is_torch_ignore_index():
    # torch CrossEntropyLoss(ignore_index): ignored pixels leave numerator and denominator.
    logits, labels, onehot = _data(52)
    labels = labels.copy()
    labels[1, :3] = -100
    keep = labels != -100
    x = _first(logits)
    logp = _log_softmax(x, 1)
    safe = np.where(keep, labels, 0)
    nll = -np.take_along_axis(logp, safe[:, None], axis=1)[:, 0]
    ce = [nll[i][keep[i]].mean() for i in range(3)]
    oh = np.eye(4)[safe] * keep[..., None]
    p = _softmax(x, 1) * keep[:, None]
    dice = ref_dice(p, _first(oh), activation=None).mean(1)
    _close(seg.dice_ce_loss(logits, labels, ignore_index=-100, reduction="none"), dice + np.array(ce))


# ---------------------------------------------------------------- dice_focal_loss
DICE_FOCAL_OPTIONS = [
    dict(),
    dict(include_background=False),
    dict(gamma=0.5, alpha=0.3, lambda_focal=2.0, lambda_dice=0.5),
    dict(class_weights=np.array([0.5, 2.0, 1.0, 3.0], np.float32)),
    dict(class_weights=np.array([2.0, 1.0, 3.0], np.float32), include_background=False, batch_dice=True),
    dict(activation="sigmoid", squared=True, gamma=0.0),
]


@pytest.mark.parametrize("opts", DICE_FOCAL_OPTIONS, ids=lambda o: ",".join(o) or "defaults")
def test_dice_focal_equals_monai_transcription(opts):
    logits, labels, onehot = _data(53)
    expected = ref_dice_focal(_first(logits), _first(onehot), **_ref_kwargs(opts))
    _close(seg.dice_focal_loss(logits, labels, **opts), expected)
    _close(seg.dice_focal_loss(logits, onehot, **opts), expected)


def test_compound_parts_equal_their_losses():
    # lambda_ce = 0 leaves dice_loss; lambda_dice = 0 leaves the pixel-mean cross-entropy.
    logits, labels, onehot = _data(54)
    _close(seg.dice_ce_loss(logits, labels, lambda_ce=0.0, reduction="none"), seg.dice_loss(logits, labels, reduction="none"))
    _close(seg.dice_focal_loss(logits, labels, lambda_focal=0.0, reduction="none"),
           seg.dice_loss(logits, labels, reduction="none"))
    ce = -np.sum(onehot * _log_softmax(logits.astype(np.float64), -1), -1).mean(axis=(1, 2))
    _close(seg.dice_ce_loss(logits, labels, lambda_dice=0.0, reduction="none"), ce)


def test_compound_losses_equal_monai_itself():
    monai_losses = pytest.importorskip("monai.losses")
    torch = pytest.importorskip("torch")
    logits, labels, onehot = _data(55)
    x = torch.from_numpy(_first(logits))
    y = torch.from_numpy(labels[:, None].astype(np.int64))
    cw = np.array([0.5, 2.0, 1.0, 3.0], np.float32)
    cases = [
        (monai_losses.DiceCELoss(softmax=True, to_onehot_y=True, lambda_dice=0.4, lambda_ce=1.3, label_smoothing=0.1),
         seg.dice_ce_loss, dict(lambda_dice=0.4, lambda_ce=1.3, label_smoothing=0.1)),
        (monai_losses.DiceCELoss(softmax=True, to_onehot_y=True, batch=True, weight=torch.tensor(cw, dtype=torch.float64),
                                 include_background=False),
         seg.dice_ce_loss, dict(batch_dice=True, class_weights=cw, include_background=False)),
        (monai_losses.DiceFocalLoss(softmax=True, to_onehot_y=True, gamma=1.5, alpha=0.25, weight=cw.tolist()),
         seg.dice_focal_loss, dict(gamma=1.5, alpha=0.25, class_weights=cw)),
        (monai_losses.DiceFocalLoss(sigmoid=True, to_onehot_y=True, include_background=False, lambda_focal=3.0),
         seg.dice_focal_loss, dict(activation="sigmoid", include_background=False, lambda_focal=3.0)),
    ]
    for module, fn, kwargs in cases:
        _close(fn(logits, labels, **kwargs), float(module(x, y)), rtol=1e-5)


# -------------------------------------------------------------- hausdorff_dt_loss
@pytest.mark.parametrize("opts", [dict(), dict(alpha=1.0, include_background=True), dict(activation="softmax")],
                         ids=lambda o: ",".join(o) or "defaults")
def test_hausdorff_equals_monai_transcription(opts):
    logits, labels, onehot = _data(56)         # the file's common shape: fewer compiles
    labels = labels.copy()
    labels[2] = 0                                   # one example: only background (fields of zeros)
    onehot = np.eye(4, dtype=np.float32)[labels]
    probs = _softmax(logits.astype(np.float64), -1).astype(np.float32)
    inputs = logits if opts.get("activation") == "softmax" else probs
    expected = ref_hausdorff(_first(probs), _first(onehot), alpha=opts.get("alpha", 2.0),
                             include_background=opts.get("include_background", False))
    _close(seg.hausdorff_dt_loss(inputs, labels, reduction="none", **opts), expected.mean(1))
    _close(seg.hausdorff_dt_loss(inputs, onehot, **opts), expected.mean())


def test_hausdorff_three_d_and_one_channel():
    rng = np.random.default_rng(57)
    vol = rng.uniform(size=(2, 5, 6, 4, 1)).astype(np.float32)     # one channel: include_background ignored
    target = (rng.uniform(size=vol.shape) > 0.7).astype(np.float32)
    expected = ref_hausdorff(_first(vol), _first(target), include_background=True)
    _close(seg.hausdorff_dt_loss(vol, target, reduction="none"), expected[:, 0])
    jitted = jax.jit(lambda p, t: seg.hausdorff_dt_loss(p, t, reduction="none"))
    _close(jitted(vol, target), expected[:, 0])


def test_hausdorff_distances_carry_no_gradient():
    # d/dp of (p - g)^2 (d_P^a + d_G^a) with the fields held constant: 2 (p - g) (d_P^a + d_G^a) / (K N).
    logits, labels, onehot = _data(58, shape=(1, 5, 6), num_classes=2)
    probs = _softmax(logits.astype(np.float64), -1).astype(np.float32)
    x, y = _first(probs), _first(onehot)
    dist = ref_distance_field(x[:, [1]]) ** 2 + ref_distance_field(y[:, [1]]) ** 2
    expected = 2.0 * (x[:, [1]] - y[:, [1]]) * dist / x[0, 0].size
    grad = jax.jit(jax.grad(lambda p: seg.hausdorff_dt_loss(p, labels)))(probs)
    _close(np.asarray(grad)[..., 1], expected[:, 0], atol=1e-5)
    assert np.all(np.asarray(grad)[..., 0] == 0)     # background excluded


def test_hausdorff_equals_monai_itself():
    monai_losses = pytest.importorskip("monai.losses")
    torch = pytest.importorskip("torch")
    logits, labels, onehot = _data(59)
    x, y = torch.from_numpy(_first(logits)), torch.from_numpy(_first(onehot))
    _close(seg.hausdorff_dt_loss(logits, labels, activation="softmax"),
           float(monai_losses.HausdorffDTLoss(softmax=True)(x, y)), rtol=1e-5)
    _close(seg.hausdorff_dt_loss(logits, labels, activation="sigmoid", include_background=True, alpha=1.5),
           float(monai_losses.HausdorffDTLoss(sigmoid=True, include_background=True, alpha=1.5)(x, y)), rtol=1e-5)


# --------------------------------------------------------------- soft_cldice_loss
@pytest.mark.parametrize("iterations", [0, 1, 3, 5])
def test_cldice_equals_authors_transcription_and_honours_iterations(iterations):
    logits, labels, onehot = _data(60, shape=(2, 9, 10), num_classes=3)
    probs = _softmax(logits.astype(np.float64), -1)
    x, y = _first(probs), _first(onehot)
    expected = [ref_cldice(x[i:i + 1], y[i:i + 1], iterations) for i in range(2)]
    _close(seg.soft_cldice_loss(logits, labels, iterations=iterations, reduction="none"), expected)


def test_cldice_iterations_change_the_value_and_three_d_works():
    logits, labels, _ = _data(61, shape=(2, 12, 12), num_classes=2)
    values = [float(seg.soft_cldice_loss(logits, labels, iterations=k)) for k in (0, 2, 6)]
    assert len(set(values)) == 3
    rng = np.random.default_rng(62)
    vol = rng.uniform(size=(1, 5, 6, 7, 1))
    target = (rng.uniform(size=vol.shape) > 0.5).astype(np.float64)
    _close(seg.soft_cldice_loss(vol.astype(np.float32), target.astype(np.float32), activation=None, smooth=0.5),
           ref_cldice(_first(vol), _first(target), 3, 0.5))


def test_cldice_prefers_connected_thin_structures():
    # A broken line scores worse than the full line, though Dice barely sees the two-pixel gap.
    line = np.zeros((1, 9, 16, 1), np.float32)
    line[0, 4, :, 0] = 1.0
    broken = line.copy()
    broken[0, 4, 7:9, 0] = 0.0
    perfect = float(seg.soft_cldice_loss(line, line, activation=None))
    gap = float(seg.soft_cldice_loss(broken, line, activation=None))
    assert perfect < 1e-6 and gap > 0.05


def test_cldice_equals_monai_soft_skel():
    torch = pytest.importorskip("torch")
    cldice = pytest.importorskip("monai.losses.cldice")
    rng = np.random.default_rng(63)
    img = rng.uniform(size=(2, 3, 11, 12))
    for it in (0, 2, 4):
        _close(cldice.soft_skel(torch.from_numpy(img), it).numpy(), ref_soft_skel(img, it), atol=1e-12)
        ours = seg._soft_skeleton(jnp.asarray(np.moveaxis(img, 1, -1), jnp.float32), it)
        _close(np.moveaxis(np.asarray(ours), -1, 1), cldice.soft_skel(torch.from_numpy(img), it).numpy())


# ----------------------------------------------------------------------- ssim_loss
@pytest.mark.parametrize("filter_size,sigma", [(11, 1.5), (7, 1.0), (3, 0.8)])
def test_ssim_equals_skimage_transcription(filter_size, sigma):
    rng = np.random.default_rng(64)
    a = rng.uniform(size=(2, 16, 13, 3))
    b = np.clip(a + rng.normal(0.0, 0.2, a.shape), 0.0, 1.0)
    expected = [1.0 - ref_ssim(a[i], b[i], sigma=sigma, win_size=filter_size) for i in range(2)]
    # ssim_loss unrolls its blur into filter_size slices per axis, each its own primitive: one jitted
    # program for both layouts compiles far less than running them eagerly.
    ssim = functools.partial(seg.ssim_loss, filter_size=filter_size, filter_sigma=sigma, reduction="none")
    last, first = jax.jit(lambda a, b: (ssim(a, b), ssim(jnp.moveaxis(a, -1, 1), jnp.moveaxis(b, -1, 1),
                                                         channel_axis=1)))(a.astype(np.float32), b.astype(np.float32))
    _close(last, expected)
    _close(first, expected)


def test_ssim_data_range_and_constants():
    rng = np.random.default_rng(65)
    a = rng.uniform(0.0, 255.0, size=(1, 12, 12, 1))
    b = np.clip(a + rng.normal(0.0, 30.0, a.shape), 0.0, 255.0)
    both = jax.jit(lambda a, b: (seg.ssim_loss(a, b, max_value=255.0),                # one program
                                 seg.ssim_loss(a / 255.0, b / 255.0, k1=0.05, k2=0.1)))
    ranged, constants = both(a.astype(np.float32), b.astype(np.float32))
    _close(ranged, 1.0 - ref_ssim(a[0], b[0], data_range=255.0), rtol=1e-4)
    _close(constants, 1.0 - ref_ssim(a[0] / 255.0, b[0] / 255.0, k1=0.05, k2=0.1), rtol=1e-4)


def test_ssim_equals_skimage_itself():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(66)
    a = rng.uniform(size=(2, 16, 13, 3))       # the transcription test's shape: its compiles are reused
    b = np.clip(a + rng.normal(0.0, 0.1, a.shape), 0.0, 1.0)
    expected = [1.0 - metrics.structural_similarity(a[i], b[i], gaussian_weights=True, sigma=1.5,
                                                    use_sample_covariance=False, data_range=1.0, channel_axis=-1)
                for i in range(2)]
    _close(seg.ssim_loss(a.astype(np.float32), b.astype(np.float32), reduction="none"), expected)
    # Three spatial axes (skimage filters every axis when channel_axis is given).
    vol_a = rng.uniform(size=(11, 12, 11, 1))
    vol_b = np.clip(vol_a + rng.normal(0.0, 0.1, vol_a.shape), 0.0, 1.0)
    expected3 = 1.0 - metrics.structural_similarity(vol_a, vol_b, gaussian_weights=True, sigma=1.5,
                                                    use_sample_covariance=False, data_range=1.0, channel_axis=-1)
    _close(jax.jit(seg.ssim_loss)(vol_a[None], vol_b[None]), expected3)   # a one-off shape: one program


def test_ssim_errors():
    x = np.zeros((2, 8, 8, 1), np.float32)
    with pytest.raises(ValueError, match="jaxloss.ssim_loss: predictions"):
        seg.ssim_loss(x, x)                                     # 8 < filter_size 11
    with pytest.raises(ValueError, match="jaxloss.ssim_loss: filter_size"):
        seg.ssim_loss(x, x, filter_size=4)
    with pytest.raises(ValueError, match="jaxloss.ssim_loss: max_value"):
        seg.ssim_loss(x, x, filter_size=3, max_value=0.0)
    with pytest.raises(ValueError, match="jaxloss.ssim_loss"):
        seg.ssim_loss(x, x[:, :7], filter_size=3)
    with pytest.raises(ValueError, match="jaxloss.ssim_loss: where"):
        seg.ssim_loss(x, x, filter_size=3, where=np.ones((2, 8, 8), bool))


# ---------------------------------------------------------------- edges, all losses
@pytest.mark.parametrize("fn", NEW, ids=lambda f: f.__name__)
def test_empty_classes_and_all_background_finite(fn):
    logits, _, _ = _data(67)
    background = np.zeros(logits.shape[:-1], np.int32)
    probs = np.eye(4, dtype=np.float32)[background]          # probabilities exactly 0 and 1
    cases = ((logits, {}), (logits, {"include_background": False}),
             (probs, {"activation": None}), (probs, {"activation": None, "include_background": False}))
    run = _one_program(fn)(lambda logits, probs: [
        jax.value_and_grad(lambda x, kw=kwargs: fn(x, background, **kw))(logits if inputs is cases[0][0] else probs)
        for inputs, kwargs in cases])
    for (_, kwargs), (value, grad) in zip(cases, run(logits, probs)):
        assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad))), kwargs


@pytest.mark.parametrize("fn", NEW, ids=lambda f: f.__name__)
@pytest.mark.parametrize("magnitude,dtype", [(1e4, jnp.float32), (60.0, jnp.bfloat16)])
def test_saturated_and_half_precision_finite(fn, magnitude, dtype):
    logits, labels, _ = _data(68)
    big = jnp.asarray(np.where(logits >= 0, magnitude, -magnitude), dtype)
    for kwargs in ({"activation": "sigmoid"}, {"activation": "softmax"}):
        value, grad = jax.value_and_grad(lambda x: fn(x, labels, **kwargs))(big)
        assert value.dtype == jnp.float32 and grad.dtype == dtype
        assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad, np.float32))), kwargs


def test_ssim_constant_and_identical_images_finite():
    # Zero variances: c1 and c2 keep every ratio finite, whatever the window. filter_size=3 keeps the
    # unrolled separable blur (filter_size slices per axis, values and gradients) quick to compile.
    const = np.full((2, 12, 12, 1), 0.5, np.float32)
    ssim = functools.partial(seg.ssim_loss, filter_size=3)
    both = jax.jit(jax.value_and_grad(ssim, argnums=(0, 1)))   # one program for both pairs
    value, grads = both(const, const)
    assert abs(float(value)) < 1e-6 and all(np.all(np.isfinite(np.asarray(g))) for g in grads)
    other = np.zeros_like(const)
    value, grads = both(const, other)
    assert np.isfinite(float(value)) and all(np.all(np.isfinite(np.asarray(g))) for g in grads)
    low = jnp.asarray(np.random.default_rng(69).uniform(size=(2, 12, 12, 1)), jnp.bfloat16)
    value, grad = jax.jit(jax.value_and_grad(ssim))(low, low)
    assert value.dtype == jnp.float32 and grad.dtype == jnp.bfloat16 and np.isfinite(float(value))


@pytest.mark.parametrize("fn", NEW + [seg.ssim_loss], ids=lambda f: f.__name__)
def test_nan_out_of_range_and_empty(fn):
    if fn is seg.ssim_loss:
        rng = np.random.default_rng(70)
        x = rng.uniform(size=(3, 5, 5, 1)).astype(np.float32)
        y = rng.uniform(size=x.shape).astype(np.float32)
        kwargs = {"filter_size": 3}
    else:
        x, y, _ = _data(70)
        kwargs = {}
        bad = y.copy()
        bad[1, 0, 0] = 4
        values = np.asarray(fn(x, bad, reduction="none"))
        assert np.isnan(values[1]) and np.all(np.isfinite(values[[0, 2]]))
    poisoned = x.copy()
    poisoned[1, 0, 0, 0] = np.nan                               # class 0: read even without background
    extras = ({}, {} if fn is seg.ssim_loss else {"include_background": False})

    @jax.jit   # the NaN cases and the empty batch in one program
    def run(poisoned, y):
        return ([fn(poisoned, y, reduction="none", **kwargs, **extra) for extra in extras],
                jax.value_and_grad(lambda a: fn(a, y[:0], **kwargs))(poisoned[:0]))

    nan_cases, (value, grad) = run(poisoned, y)
    for values in nan_cases:
        values = np.asarray(values)
        assert np.isnan(values[1]) and np.all(np.isfinite(values[[0, 2]]))
    assert float(value) == 0.0 and grad.shape == x[:0].shape


@pytest.mark.parametrize("fn", NEW, ids=lambda f: f.__name__)
def test_jit_vmap_with_pixel_where(fn):
    logits, labels, _ = _data(71)
    keep = labels != 2
    eager = fn(logits, labels, where=keep, reduction="none")
    _close(jax.jit(lambda x, y, w: fn(x, y, where=w, reduction="none"))(logits, labels, keep), eager)
    mapped = jax.vmap(lambda x, y, w: fn(x, y, where=w, reduction="none"))(logits[None], labels[None], keep[None])
    _close(mapped[0], eager)


def test_errors_name_function_and_argument():
    logits, labels, onehot = _data(72)
    with pytest.raises(ValueError, match="jaxloss.dice_ce_loss: lambda_ce"):
        seg.dice_ce_loss(logits, labels, lambda_ce=-1.0)
    with pytest.raises(ValueError, match="jaxloss.dice_ce_loss: label_smoothing"):
        seg.dice_ce_loss(logits, labels, label_smoothing=1.5)
    with pytest.raises(ValueError, match="jaxloss.dice_ce_loss: class_weights"):
        seg.dice_ce_loss(logits, labels, class_weights=np.ones(3, np.float32), include_background=False)
    with pytest.raises(ValueError, match="jaxloss.dice_focal_loss: alpha"):
        seg.dice_focal_loss(logits, labels, alpha=1.5)
    with pytest.raises(ValueError, match="jaxloss.dice_focal_loss: gamma"):
        seg.dice_focal_loss(logits, labels, gamma=-1.0)
    with pytest.raises(ValueError, match="jaxloss.soft_cldice_loss: iterations"):
        seg.soft_cldice_loss(logits, labels, iterations=-1)
    with pytest.raises(ValueError, match="jaxloss.soft_cldice_loss: iterations"):
        seg.soft_cldice_loss(logits, labels, iterations=2.5)
    with pytest.raises(ValueError, match="jaxloss.hausdorff_dt_loss: alpha"):
        seg.hausdorff_dt_loss(logits, labels, alpha=-2.0)
    with pytest.raises(ValueError, match="jaxloss.hausdorff_dt_loss: targets"):
        seg.hausdorff_dt_loss(logits, onehot[..., :3])


def test_traced_hyper_parameters():
    logits, labels, _ = _data(73)
    f = jax.jit(lambda ld, lc, s: seg.dice_ce_loss(logits, labels, lambda_dice=ld, lambda_ce=lc, label_smoothing=s))
    _close(f(0.5, 2.0, 0.1), seg.dice_ce_loss(logits, labels, lambda_dice=0.5, lambda_ce=2.0, label_smoothing=0.1))
    g = jax.jit(lambda gamma, alpha: seg.dice_focal_loss(logits, labels, gamma=gamma, alpha=alpha))
    _close(g(1.5, 0.25), seg.dice_focal_loss(logits, labels, gamma=1.5, alpha=0.25))
    h = jax.jit(lambda a: seg.hausdorff_dt_loss(logits, labels, alpha=a, activation="softmax"))
    _close(h(1.0), seg.hausdorff_dt_loss(logits, labels, alpha=1.0, activation="softmax"))
