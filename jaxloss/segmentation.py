"""Segmentation losses: overlap (Dice family), compound (MONAI), topology, boundary and Lovasz losses.

Also ``ssim_loss`` (one minus SSIM per image) for image restoration.

Layout, shared by every loss here:

* ``predictions`` (or ``logits``) ``[B, *spatial, C]``: one score per pixel
  and class, batch first, classes last, any number of spatial axes (none,
  ``[H, W]``, ``[D, H, W]``, ...). The overlap, compound, clDice and
  Hausdorff losses take ``channel_axis=1`` for MONAI/PyTorch channels-first
  ``[B, C, *spatial]`` inputs (one-hot targets in the same layout).
* ``targets`` either one-hot / soft ``[B, *spatial, C]`` (same shape, any real
  dtype) or integer class indices ``[B, *spatial]``. An index outside
  ``[0, C)`` makes its example's value NaN (never wrapped or clamped).
* The unreduced values are **per example**, shape ``[B]``: the per-class
  losses ``f_c`` of an example, averaged over the classes kept,
  ``mean_c(class_weights[c] * f_c)`` (MONAI's normalisation).
* Pooled variants (``batch_dice=True``, ``per_image=False``) compute one
  value over the whole batch; it is returned broadcast to ``[B]``, so
  ``reduction="mean"`` gives the pooled value (MONAI ``batch=True``),
  ``"sum"`` gives ``B`` times it, and an example mask removes examples from
  the pool.
* ``where`` is either an **example mask** (``[B]``, or anything of rank <= 1
  that broadcasts to it) or a **pixel mask** ``[B, *spatial]`` (rank
  ``1 + len(spatial)``, broadcastable). Masked pixels leave every sum (as
  ``ignore_index=255`` does for integer targets, or ``where=labels != 255``);
  an example whose pixels are all masked leaves the ``"mean"`` denominator.
  Masked inputs never reach values or gradients, even when NaN.
* MONAI's two smoothing terms: ``smooth_nr`` (numerator) and ``smooth_dr``
  (denominator); the older single ``smooth`` sets both.

Every sum is taken in at least float32 (float16/bfloat16 inputs are cast
first), so 512x512 images in bfloat16 stay finite.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from jaxloss import _checks, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array

_ACTIVATIONS = ("softmax", "sigmoid", None)
_WEIGHT_TYPES = ("square", "simple", "uniform")
_LOVASZ_CLASSES = ("present", "all")


# ------------------------------------------------------------------ helpers
class _Prepared(NamedTuple):
    probs: Array            # [B, *spatial, K] activated predictions, kept classes, masked pixels 0
    onehot: Array           # [B, *spatial, K] targets, kept classes, masked pixels 0
    pixel: Array | None     # [B, *spatial, 1] float pixel mask (1 kept, 0 masked) or None
    example: Array | None   # [B] bool example mask for the reduction, or None
    class_weights: Array | None  # [K] or None
    batch: int
    logits: Array           # [B, *spatial, C] predictions before the activation, every class, masked pixels 0
    onehot_all: Array       # [B, *spatial, C] targets, every class, masked pixels 0
    integer_targets: bool   # targets were class indices
    spatial: tuple[int, ...]
    fold: int               # pixels folded into the minor axis of the sums over pixels (see _pool), 1 for none


def _flag(fn: str, argument: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        _checks._fail(ValueError, _checks.message(fn, argument, "must be a Python bool", repr(value)))
    return bool(value)


def _split_where(fn: str, where: ArrayLike | None, batch: int,
                 spatial: tuple[int, ...]) -> tuple[Array | None, Array | None]:
    """``where`` -> (pixel mask ``[B, *spatial]`` bool, example mask ``[B]`` bool)."""
    if where is None:
        return None, None
    where = _checks.boolean(fn, "where", where)
    if where.ndim <= 1:
        example = _checks.broadcastable(fn, "where", where, (batch,), "the per-example shape")
        pixel = jnp.broadcast_to(example.reshape((batch,) + (1,) * len(spatial)), (batch, *spatial))
        return pixel, example
    if where.ndim == 1 + len(spatial):
        pixel = _checks.broadcastable(fn, "where", where, (batch, *spatial), "the pixel shape [B, *spatial]")
        example = jnp.any(pixel.reshape(batch, math.prod(spatial)), axis=1)
        return pixel, example
    _checks._fail(ValueError, _checks.message(
        fn, "where", f"must broadcast to the examples ({batch},) (rank <= 1) or to the pixels "
        f"{(batch, *spatial)} (rank {1 + len(spatial)})", f"shape {where.shape}"))
    raise AssertionError  # unreachable


def _class_weights(fn: str, class_weights: ArrayLike | None, num_classes: int, include_background: bool,
                   dtype: DTypeLike) -> Array | None:
    """``[C]`` weights (indexed by class id), or ``[C - 1]`` without background (MONAI layout)."""
    if class_weights is None:
        return None
    cw = _checks.floating(fn, "class_weights", class_weights)
    allowed = (num_classes,) if include_background else (num_classes, num_classes - 1)
    if cw.ndim != 1 or cw.shape[0] not in allowed:
        what = f"[{num_classes}]" + ("" if include_background else f" or [{num_classes - 1}] (without background)")
        _checks._fail(ValueError, _checks.message(fn, "class_weights", f"must have shape {what}", cw.shape))
    _checks.in_range(fn, "class_weights", class_weights, low=0.0)
    cw = cw.astype(dtype)
    if not include_background and cw.shape[0] == num_classes:
        cw = cw[1:]
    return cw


def _channel_axis(fn: str, channel_axis: int, ndim: int) -> int:
    """The class axis as a non-negative index; the batch axis 0 cannot be it."""
    axis = _checks.normalize_axis(fn, channel_axis, ndim, "channel_axis")
    if axis == 0:
        _checks._fail(ValueError, _checks.message(
            fn, "channel_axis", "must not be the batch axis 0 (use -1 for channels last, 1 for channels first)",
            channel_axis))
    return axis


def _prepare(fn: str, predictions: ArrayLike, targets: ArrayLike, where: ArrayLike | None, *,
             activation: str | None, include_background: bool, class_weights: ArrayLike | None,
             channel_axis: int = -1, ignore_index: int | None = None, pred_name: str = "predictions",
             target_name: str = "targets") -> _Prepared:
    """Validates, casts, masks and activates the inputs of an overlap loss.

    Inputs with the classes on ``channel_axis`` are moved to channels last
    first; ``ignore_index`` joins the pixel mask. The arrays keep their
    spatial axes: sums over the pixels reduce those axes (:func:`_pool`).
    Flattened to ``[B, N, K]``, XLA:CPU's fused softmax backward ran 10%
    slower at 16x128x128x8 (the sums over a 16384-long middle axis).
    """
    _checks.choice(fn, "activation", activation, _ACTIVATIONS)
    include_background = _flag(fn, "include_background", include_background)
    _checks.integer_option(fn, "ignore_index", ignore_index)
    pred = _checks.floating(fn, pred_name, predictions)
    _checks.rank_at_least(fn, pred_name, pred, 2, "[B, *spatial, C]")
    user_shape = pred.shape
    axis = _channel_axis(fn, channel_axis, pred.ndim)
    user_index_shape = user_shape[:axis] + user_shape[axis + 1:]
    if not hasattr(targets, "dtype"):
        targets = np.asarray(targets)
    tdtype = jnp.result_type(targets)
    tshape = jnp.shape(targets)
    integer_targets = tshape == user_index_shape
    if integer_targets:
        tgt = _checks.integer(fn, target_name, targets)   # class indices: float or bool is a TypeError
    else:
        tgt = _checks.real(fn, target_name, targets)
        if tshape != user_shape:
            _checks._fail(ValueError, _checks.message(
                fn, target_name, f"must have shape {user_shape} (one-hot, like {pred_name}) or "
                f"{user_index_shape} (integer class indices)", f"shape {tshape} of dtype {tdtype}"))
        if ignore_index is not None:
            _checks._fail(ValueError, _checks.message(
                fn, "ignore_index", "applies to integer class-index targets only (mask one-hot targets with "
                "where=)", f"{ignore_index!r} with {target_name} of shape {tshape}"))
    if axis != pred.ndim - 1:   # channels first (or anywhere): move the classes last, as the body expects
        pred = jnp.moveaxis(pred, axis, -1)
        if not integer_targets:
            tgt = jnp.moveaxis(tgt, axis, -1)
    shape = pred.shape
    batch, spatial, num_classes = shape[0], tuple(shape[1:-1]), shape[-1]
    if activation == "softmax" and num_classes < 2:
        _checks._fail(ValueError, _checks.message(fn, "activation", "'softmax' needs at least 2 classes "
                                                  "(use 'sigmoid' for one channel)", f"{num_classes} class"))
    if not include_background and num_classes < 2:
        _checks._fail(ValueError, _checks.message(fn, "include_background", "False needs at least 2 classes",
                                                  f"{num_classes} class"))
    float_targets = None if integer_targets else tgt
    dtype = _numerics.compute_dtype(pred, float_targets)
    pixel, example = _split_where(fn, where, batch, spatial)
    if ignore_index is not None:
        kept = tgt != ignore_index                 # those pixels leave every sum (torch/MONAI ignore_index)
        pixel = kept if pixel is None else pixel & kept
        example = jnp.any(pixel.reshape(batch, math.prod(spatial)), axis=1)
    cw = _class_weights(fn, class_weights, num_classes, include_background, dtype)

    pixels = math.prod(spatial)   # explicit sizes: a size-0 batch cannot infer a -1
    channel_mask = None if pixel is None else pixel[..., None]
    pred = _numerics.mask_inputs(channel_mask, pred.astype(dtype))
    if activation == "softmax":
        probs = jax.nn.softmax(pred, axis=-1)
    elif activation == "sigmoid":
        probs = jax.nn.sigmoid(pred)
        probs = _numerics.reduction_input(probs, max_last=1, min_size=_ONE_CHANNEL_APART)
    else:
        probs = pred
    if integer_targets:
        labels = tgt if pixel is None else jnp.where(pixel, tgt, jnp.zeros_like(tgt))
        onehot = _numerics.one_hot(labels, num_classes, -1, dtype)
    else:
        onehot = _numerics.mask_inputs(channel_mask, tgt.astype(dtype))
    logits, onehot_all = pred, onehot
    if not include_background:
        # The dropped background channel is never read, but a NaN there still shows: contract, a NaN in an
        # unmasked input gives NaN. Added as a constant, so no gradient changes.
        dropped_nan = jnp.any(jnp.isnan(pred[..., 0]).reshape(batch, pixels), axis=1)
        poison = jnp.where(dropped_nan, jnp.asarray(jnp.nan, dtype), jnp.zeros((), dtype))
        probs = probs[..., 1:] + poison.reshape((batch,) + (1,) * (probs.ndim - 1))
        onehot = onehot[..., 1:]
    pix = None
    if pixel is not None:
        pix = pixel[..., None].astype(dtype)
        probs, onehot, onehot_all = probs * pix, onehot * pix, onehot_all * pix
    fold = 1
    if activation == "sigmoid" and probs.shape[-1] > 1 and probs.size >= _FOLD_MIN_SIZE:
        fold = math.gcd(pixels, _FOLD)
        fold = fold if fold >= 8 else 1
    return _Prepared(probs, onehot, pix, example, cw, batch, logits, onehot_all, integer_targets, spatial, fold)


# The sums over pixels, and XLA:CPU's reduction fusions
# (:func:`_numerics.reduction_input`): fused into them, the logistic
# function, the log-sigmoids of the focal and cross-entropy terms and, on a
# one-channel layout, even products run pixel by pixel, 5-20x slower than a
# loop fusion (16x256x256x1 forward: Dice-focal 72 -> 5 ms, Dice-CE 26 -> 3
# ms, the sum of a sigmoid alone 17 -> 0.8 ms). The one-channel
# probabilities and their products are computed apart from 2^19 elements
# on: below, writing the array out costs more than it saves (8x64x64x1 Dice
# value and gradient: 0.23 -> 0.28 ms), and with more channels the fused sums
# were as fast or faster (16x256x256x8 sigmoid Dice forward: 15 ms fused, 22
# ms apart). The per-pixel log-sigmoid terms gain from 4096 elements on.
_ONE_CHANNEL_APART = 1 << 19

# With a sigmoid on two or more channels, the sums over pixels of [B, P, K]
# fold 32 pixels into the minor axis ([B, P / 32, 32 K], then the 32 partial
# sums; 8 or 16 where P has no factor 32, none where it has no factor 8):
# XLA:CPU's reduction fusion runs the logistic function vectorised along a
# wide minor axis and row by row along a narrow one. Dice forward (and value
# and gradient) against the plain sums: 16x256x256x3 0.37x (0.37x),
# 16x256x256x4 0.45x, 16x128x128x2 and x4 0.52x, 8x64x64x2 0.56x (0.61x).
# Not for a softmax (16x128x128x8 value and gradient 1.08-1.11x: its
# backward over the class axis fused worse), one channel (no gain) or under
# 4096 elements, where XLA:CPU's own loops sum (2x16x16x4 forward 1.2x).
_FOLD = 32
_FOLD_MIN_SIZE = 4096


def _pixel_axes(x: Array, classes: bool = True) -> tuple[int, ...]:
    """The spatial axes of ``[B, *spatial, K]`` (``classes=False``: of ``[B, *spatial]``)."""
    return tuple(range(1, x.ndim - 1 if classes else x.ndim))


def _pool(x: Array, batch_dice: bool, fold: int = 1) -> Array:
    """Sums ``[B, *spatial, K]`` over pixels (and the batch when pooled): ``[B or 1, K]``.

    ``fold`` pixels at a time are summed along the minor axis (``_FOLD``).

    With one class the summand is computed apart from the sum (see
    ``_ONE_CHANNEL_APART``): XLA:CPU's reduction fusions run the products
    pixel by pixel on that layout. Not with two: the softmax's two-class
    sums, fused, are as fast as optax's, and apart they took 1.5x as long
    (16x256x256x2 value and gradient).
    """
    if fold > 1:
        batch, pixels, k = x.shape[0], math.prod(x.shape[1:-1]), x.shape[-1]
        total = jnp.sum(jnp.sum(x.reshape(batch, pixels // fold, fold * k), axis=1).reshape(batch, fold, k), axis=1)
    else:
        total = jnp.sum(_numerics.reduction_input(x, max_last=1, min_size=_ONE_CHANNEL_APART), axis=_pixel_axes(x))
    if batch_dice:
        total = jnp.sum(total, axis=0, keepdims=True)
    return total


def _class_mean(per_class: Array, cw: Array | None, batch: int) -> Array:
    """``mean_c(class_weights[c] * f_c)``: ``[G, K]`` -> ``[B]`` (pooled ``G = 1`` broadcast)."""
    if cw is not None:
        per_class = per_class * cw[None, :]
    values = jnp.mean(per_class, axis=-1)
    return jnp.broadcast_to(values, (batch,))


def _ratio(numerator: Array, denominator: Array) -> Array:
    """Overlap ratio; ``0 / 0`` (an empty class with no smoothing) counts as perfect overlap."""
    return _numerics.safe_div(numerator, denominator, fill=1.0)


def _smoothing(fn: str, smooth_nr: ArrayLike, smooth_dr: ArrayLike,
               smooth: ArrayLike | None) -> tuple[ArrayLike, ArrayLike]:
    """``(smooth_nr, smooth_dr)``; the older single ``smooth`` sets both (MONAI's two terms)."""
    if smooth is not None:
        _checks.in_range(fn, "smooth", smooth, low=0.0)
        return smooth, smooth
    _checks.in_range(fn, "smooth_nr", smooth_nr, low=0.0)
    _checks.in_range(fn, "smooth_dr", smooth_dr, low=0.0)
    return smooth_nr, smooth_dr


def _common_checks(fn: str, smooth_nr: ArrayLike, smooth_dr: ArrayLike, smooth: ArrayLike | None,
                   batch_dice: bool) -> tuple[ArrayLike, ArrayLike, bool]:
    nr, dr = _smoothing(fn, smooth_nr, smooth_dr, smooth)
    return nr, dr, _flag(fn, "batch_dice", batch_dice)


def _tversky_per_class(fn: str, predictions: ArrayLike, targets: ArrayLike, *, alpha: ArrayLike, beta: ArrayLike,
                       activation: str | None, include_background: bool, smooth_nr: ArrayLike, smooth_dr: ArrayLike,
                       smooth: ArrayLike | None, batch_dice: bool, class_weights: ArrayLike | None,
                       channel_axis: int, ignore_index: int | None,
                       where: ArrayLike | None) -> tuple[Array, _Prepared]:
    _checks.in_range(fn, "alpha", alpha, low=0.0)
    _checks.in_range(fn, "beta", beta, low=0.0)
    smooth_nr, smooth_dr, batch_dice = _common_checks(fn, smooth_nr, smooth_dr, smooth, batch_dice)
    prep = _prepare(fn, predictions, targets, where, activation=activation,
                    include_background=include_background, class_weights=class_weights,
                    channel_axis=channel_axis, ignore_index=ignore_index)
    p, g = prep.probs, prep.onehot
    dtype = p.dtype
    tp = _pool(p * g, batch_dice, prep.fold)
    if prep.pixel is None:
        # sum p (1 - g) = sum p - tp and sum (1 - p) g = sum g - tp: no constant 1 broadcast, which XLA:CPU
        # shared between the sums and wrote out (16x128x128x8: forward 8.8 -> 5.9 ms, value and gradient
        # 20.8 -> 8.3 ms, as the Dice loss).
        fp = _pool(p, batch_dice, prep.fold) - tp
        fn_ = _pool(g, batch_dice, prep.fold) - tp
    else:
        m = prep.pixel
        fp = _pool(p * (m - g), batch_dice, prep.fold)      # p (1 - g) over kept pixels
        fn_ = _pool((m - p) * g, batch_dice, prep.fold)     # (1 - p) g over kept pixels
    nr, dr = jnp.asarray(smooth_nr, dtype), jnp.asarray(smooth_dr, dtype)
    index = _ratio(tp + nr, tp + jnp.asarray(alpha, dtype) * fp + jnp.asarray(beta, dtype) * fn_ + dr)
    return 1.0 - index, prep


# ------------------------------------------------------------------- losses
@_registry.builtin(tags=("segmentation",))
def dice_loss(predictions: ArrayLike, targets: ArrayLike, *,
              activation: Literal["softmax", "sigmoid"] | None = "softmax", include_background: bool = True,
              squared: bool = False, smooth_nr: ArrayLike = 1e-5, smooth_dr: ArrayLike = 1e-5, batch_dice: bool = False,
              class_weights: ArrayLike | None = None, channel_axis: int = -1, ignore_index: int | None = None,
              smooth: ArrayLike | None = None, reduction: Literal["none", "sum", "mean"] = "mean",
              weights: ArrayLike | None = None, where: ArrayLike | None = None) -> Array:
    r"""Soft Dice loss, averaged over classes (MONAI ``DiceLoss``, channels last).

    For class :math:`c` of one example, with probabilities :math:`p` and
    targets :math:`g` summed over the pixels :math:`i`:

    .. math::

        f_c = 1 - \frac{2 \sum_i p_{ic} g_{ic} + s_{nr}}{\sum_i g_{ic}^{k} + \sum_i p_{ic}^{k} + s_{dr}},
        \qquad \ell = \frac{1}{K} \sum_{c} w_c f_c

    with :math:`k = 2` if ``squared`` else 1, :math:`s_{nr}, s_{dr}` =
    ``smooth_nr``, ``smooth_dr`` (MONAI), :math:`w_c` the class weights and :math:`K` the
    number of classes kept. Equals ``monai.losses.DiceLoss`` with the classes
    moved to axis 1 and the same options (``softmax``/``sigmoid``,
    ``include_background``, ``squared_pred``, ``batch``, ``weight``), its
    ``reduction="none"`` output averaged over classes.

    Args:
      predictions: ``[B, *spatial, C]`` float scores: logits for
        ``activation="softmax"``/``"sigmoid"``, probabilities for ``None``.
      targets: ``[B, *spatial, C]`` one-hot or soft targets (any real dtype),
        or ``[B, *spatial]`` integer class indices in ``[0, C)``.
      activation: ``"softmax"`` (classes exclusive), ``"sigmoid"`` (one
        independent channel per class, multi-label) or ``None``.
      include_background: keep class 0; ``False`` drops it from the average.
      squared: square ``p`` and ``g`` in the denominator (Milletari et al.).
      smooth_nr: added to the numerator, ``>= 0`` (MONAI ``smooth_nr``).
      smooth_dr: added to the denominator, ``>= 0`` (MONAI ``smooth_dr``).
      batch_dice: pool the sums over the whole batch (MONAI ``batch=True``);
        the pooled value is returned broadcast to ``[B]``.
      class_weights: ``[C]`` non-negative weights indexed by class (with
        ``include_background=False`` also ``[C - 1]``, MONAI's layout); the
        example's value is ``mean_c(class_weights[c] * f_c)``.
      channel_axis: the class axis of ``predictions`` (and of one-hot
        ``targets``): ``-1`` channels last (default), ``1`` channels first
        (MONAI/PyTorch ``[B, C, *spatial]``, no transpose needed).
      ignore_index: with integer ``targets``, pixels whose label equals it
        leave every sum (as if masked by ``where``); ``None`` ignores nothing.
      smooth: older single smoothing term; when given it sets both
        ``smooth_nr`` and ``smooth_dr``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[B]``.
      where: boolean example mask ``[B]`` or pixel mask ``[B, *spatial]``
        (masked pixels leave every sum; see the module docstring).

    Returns:
      ``[B]`` per-example values for ``reduction="none"`` (with ``batch_dice=True``
      the pooled value repeated ``B`` times), else a scalar.

    Raises:
      ValueError: ``targets`` of neither accepted shape, a bad ``where`` or
        ``class_weights`` shape, a negative smoothing term, a bad ``channel_axis`` or
        ``ignore_index``, an unknown ``activation`` or
        ``reduction``, ``"softmax"`` or ``include_background=False`` with one
        class.
      TypeError: non-float ``predictions``, non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[[4.0, -4.0], [-4.0, 4.0], [4.0, -4.0], [-4.0, 4.0]]])  # [1, 4, 2]
      >>> labels = jnp.array([[0, 1, 0, 1]])
      >>> round(float(jaxloss.dice_loss(logits, labels)), 4)
      0.0003
      >>> round(float(jaxloss.dice_loss(logits, 1 - labels)), 4)
      0.9997

    References:
      Milletari, Navab and Ahmadi, "V-Net: Fully Convolutional Neural Networks
      for Volumetric Medical Image Segmentation", 3DV 2016,
      https://arxiv.org/abs/1606.04797; MONAI ``DiceLoss``,
      https://docs.monai.io/en/stable/losses.html#diceloss
    """
    fn = "dice_loss"
    squared = _flag(fn, "squared", squared)
    smooth_nr, smooth_dr, batch_dice = _common_checks(fn, smooth_nr, smooth_dr, smooth, batch_dice)
    prep = _prepare(fn, predictions, targets, where, activation=activation,
                    include_background=include_background, class_weights=class_weights,
                    channel_axis=channel_axis, ignore_index=ignore_index)
    p, g = prep.probs, prep.onehot
    nr, dr = jnp.asarray(smooth_nr, p.dtype), jnp.asarray(smooth_dr, p.dtype)
    intersection = _pool(p * g, batch_dice, prep.fold)
    if squared:
        denominator = _pool(g * g, batch_dice, prep.fold) + _pool(p * p, batch_dice, prep.fold)
    else:
        denominator = _pool(g, batch_dice, prep.fold) + _pool(p, batch_dice, prep.fold)
    per_class = 1.0 - _ratio(2.0 * intersection + nr, denominator + dr)
    values = _class_mean(per_class, prep.class_weights, prep.batch)
    return reduce_values(values, reduction=reduction, weights=weights, where=prep.example, fn=fn)


@_registry.builtin(tags=("segmentation",))
def jaccard_loss(predictions: ArrayLike, targets: ArrayLike, *,
                 activation: Literal["softmax", "sigmoid"] | None = "softmax", include_background: bool = True,
                 squared: bool = False, smooth_nr: ArrayLike = 1e-5, smooth_dr: ArrayLike = 1e-5,
                 batch_dice: bool = False, class_weights: ArrayLike | None = None, channel_axis: int = -1,
                 ignore_index: int | None = None, smooth: ArrayLike | None = None,
                 reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                 where: ArrayLike | None = None) -> Array:
    r"""Soft Jaccard (IoU) loss, averaged over classes (MONAI ``DiceLoss(jaccard=True)``).

    With :math:`I_c = \sum_i p_{ic} g_{ic}` and
    :math:`S_c = \sum_i g_{ic}^k + \sum_i p_{ic}^k` (:math:`k = 2` if ``squared``):

    .. math::

        f_c = 1 - \frac{2 I_c + s_{nr}}{2 (S_c - I_c) + s_{dr}},
        \qquad \ell = \frac{1}{K} \sum_c w_c f_c

    Without smoothing this is :math:`1 - I_c / (S_c - I_c)`, one minus the soft
    intersection over union; the factor 2 places the smoothing exactly where
    MONAI does, so the values equal ``monai.losses.DiceLoss(jaccard=True)``.

    Args:
      predictions: ``[B, *spatial, C]`` float scores (logits unless
        ``activation=None``).
      targets: ``[B, *spatial, C]`` one-hot or soft targets, or
        ``[B, *spatial]`` integer class indices.
      activation: ``"softmax"``, ``"sigmoid"`` or ``None``.
      include_background: keep class 0 in the average.
      squared: square ``p`` and ``g`` in the union term (MONAI ``squared_pred``).
      smooth_nr: added to the numerator, ``>= 0`` (MONAI ``smooth_nr``).
      smooth_dr: added to the denominator, ``>= 0`` (MONAI ``smooth_dr``).
      batch_dice: pool the sums over the batch; the value is broadcast to ``[B]``.
      class_weights: ``[C]`` (or ``[C - 1]`` without background) non-negative weights.
      channel_axis: the class axis of ``predictions`` (and of one-hot
        ``targets``): ``-1`` channels last (default), ``1`` channels first
        (MONAI/PyTorch ``[B, C, *spatial]``, no transpose needed).
      ignore_index: with integer ``targets``, pixels whose label equals it
        leave every sum (as if masked by ``where``); ``None`` ignores nothing.
      smooth: older single smoothing term; when given it sets both
        ``smooth_nr`` and ``smooth_dr``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[B]``.
      where: boolean example mask ``[B]`` or pixel mask ``[B, *spatial]``.

    Returns:
      ``[B]`` per-example values for ``reduction="none"`` (with ``batch_dice=True``
      the pooled value repeated ``B`` times), else a scalar.

    Raises:
      ValueError: bad shapes of ``targets``, ``where`` or ``class_weights``,
        a negative smoothing term, a bad ``channel_axis`` or ``ignore_index``, an unknown
        ``activation`` or ``reduction``.
      TypeError: non-float ``predictions``, non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> probs = jnp.array([[[0.5, 0.5], [0.0, 1.0]]])  # [1, 2, 2], already probabilities
      >>> labels = jnp.array([[1, 1]])
      >>> jaxloss.jaccard_loss(probs, labels, activation=None, smooth=0.0, reduction="none")
      Array([0.625], dtype=float32)

    References:
      Rahman and Wang, "Optimizing Intersection-Over-Union in Deep Neural
      Networks for Image Segmentation", ISVC 2016,
      https://doi.org/10.1007/978-3-319-50835-1_22; MONAI ``DiceLoss``
      (``jaccard=True``), https://docs.monai.io/en/stable/losses.html#diceloss
    """
    fn = "jaccard_loss"
    squared = _flag(fn, "squared", squared)
    smooth_nr, smooth_dr, batch_dice = _common_checks(fn, smooth_nr, smooth_dr, smooth, batch_dice)
    prep = _prepare(fn, predictions, targets, where, activation=activation,
                    include_background=include_background, class_weights=class_weights,
                    channel_axis=channel_axis, ignore_index=ignore_index)
    p, g = prep.probs, prep.onehot
    nr, dr = jnp.asarray(smooth_nr, p.dtype), jnp.asarray(smooth_dr, p.dtype)
    intersection = _pool(p * g, batch_dice, prep.fold)
    if squared:
        total = _pool(g * g, batch_dice, prep.fold) + _pool(p * p, batch_dice, prep.fold)
    else:
        total = _pool(g, batch_dice, prep.fold) + _pool(p, batch_dice, prep.fold)
    per_class = 1.0 - _ratio(2.0 * intersection + nr, 2.0 * (total - intersection) + dr)
    values = _class_mean(per_class, prep.class_weights, prep.batch)
    return reduce_values(values, reduction=reduction, weights=weights, where=prep.example, fn=fn)


@_registry.builtin(tags=("segmentation",))
def tversky_loss(predictions: ArrayLike, targets: ArrayLike, *, alpha: ArrayLike = 0.5, beta: ArrayLike = 0.5,
                 activation: Literal["softmax", "sigmoid"] | None = "softmax", include_background: bool = True,
                 smooth_nr: ArrayLike = 1e-5, smooth_dr: ArrayLike = 1e-5, batch_dice: bool = False,
                 class_weights: ArrayLike | None = None, channel_axis: int = -1, ignore_index: int | None = None,
                 smooth: ArrayLike | None = None, reduction: Literal["none", "sum", "mean"] = "mean",
                 weights: ArrayLike | None = None, where: ArrayLike | None = None) -> Array:
    r"""Tversky loss, averaged over classes (MONAI ``TverskyLoss``).

    With soft true positives :math:`TP_c = \sum_i p_{ic} g_{ic}`, false
    positives :math:`FP_c = \sum_i p_{ic} (1 - g_{ic})` and false negatives
    :math:`FN_c = \sum_i (1 - p_{ic}) g_{ic}`:

    .. math::

        f_c = 1 - \frac{TP_c + s_{nr}}{TP_c + \alpha FP_c + \beta FN_c + s_{dr}},
        \qquad \ell = \frac{1}{K} \sum_c w_c f_c

    ``alpha`` weights false positives and ``beta`` false negatives (Salehi et
    al., MONAI); ``alpha = beta = 0.5`` is a Dice loss, ``alpha = beta = 1``
    a Jaccard loss (up to where the smoothing enters).

    Args:
      predictions: ``[B, *spatial, C]`` float scores (logits unless
        ``activation=None``).
      targets: ``[B, *spatial, C]`` one-hot or soft targets, or
        ``[B, *spatial]`` integer class indices.
      alpha: weight of the false positives, ``>= 0``.
      beta: weight of the false negatives, ``>= 0``.
      activation: ``"softmax"``, ``"sigmoid"`` or ``None``.
      include_background: keep class 0 in the average.
      smooth_nr: added to the numerator, ``>= 0`` (MONAI ``smooth_nr``).
      smooth_dr: added to the denominator, ``>= 0`` (MONAI ``smooth_dr``).
      batch_dice: pool the sums over the batch; the value is broadcast to ``[B]``.
      class_weights: ``[C]`` (or ``[C - 1]`` without background) non-negative weights.
      channel_axis: the class axis of ``predictions`` (and of one-hot
        ``targets``): ``-1`` channels last (default), ``1`` channels first
        (MONAI/PyTorch ``[B, C, *spatial]``, no transpose needed).
      ignore_index: with integer ``targets``, pixels whose label equals it
        leave every sum (as if masked by ``where``); ``None`` ignores nothing.
      smooth: older single smoothing term; when given it sets both
        ``smooth_nr`` and ``smooth_dr``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[B]``.
      where: boolean example mask ``[B]`` or pixel mask ``[B, *spatial]``.

    Returns:
      ``[B]`` per-example values for ``reduction="none"`` (with ``batch_dice=True``
      the pooled value repeated ``B`` times), else a scalar.

    Raises:
      ValueError: bad shapes of ``targets``, ``where`` or ``class_weights``,
        negative ``alpha``, ``beta`` or smoothing term, a bad ``channel_axis`` or
        ``ignore_index``, an unknown ``activation``
        or ``reduction``.
      TypeError: non-float ``predictions``, non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> probs = jnp.array([[[1.0], [1.0], [0.0], [0.0]]])  # [1, 4, 1]: two pixels predicted
      >>> mask = jnp.array([[[1.0], [0.0], [1.0], [0.0]]])   # one hit, one FP, one FN
      >>> float(jaxloss.tversky_loss(probs, mask, activation=None, alpha=0.7, beta=0.3, smooth=0.0))
      0.5

    References:
      Salehi, Erdogmus and Gholipour, "Tversky loss function for image
      segmentation using 3D fully convolutional deep networks", MLMI 2017,
      https://arxiv.org/abs/1706.05721; MONAI ``TverskyLoss``,
      https://docs.monai.io/en/stable/losses.html#tverskyloss
    """
    fn = "tversky_loss"
    per_class, prep = _tversky_per_class(fn, predictions, targets, alpha=alpha, beta=beta, activation=activation,
                                         include_background=include_background, smooth_nr=smooth_nr,
                                         smooth_dr=smooth_dr, smooth=smooth, batch_dice=batch_dice,
                                         class_weights=class_weights, channel_axis=channel_axis,
                                         ignore_index=ignore_index, where=where)
    values = _class_mean(per_class, prep.class_weights, prep.batch)
    return reduce_values(values, reduction=reduction, weights=weights, where=prep.example, fn=fn)


@_registry.builtin(tags=("segmentation",))
def focal_tversky_loss(predictions: ArrayLike, targets: ArrayLike, *, alpha: ArrayLike = 0.7, beta: ArrayLike = 0.3,
                       gamma: ArrayLike = 0.75, activation: Literal["softmax", "sigmoid"] | None = "softmax",
                       include_background: bool = True, smooth_nr: ArrayLike = 1e-5, smooth_dr: ArrayLike = 1e-5,
                       batch_dice: bool = False, class_weights: ArrayLike | None = None, channel_axis: int = -1,
                       ignore_index: int | None = None, smooth: ArrayLike | None = None,
                       reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                       where: ArrayLike | None = None) -> Array:
    r"""Focal Tversky loss: the per-class Tversky loss raised to ``gamma``.

    With :math:`f^{T}_c` the per-class :func:`tversky_loss`:

    .. math::

        f_c = \big(f^{T}_c\big)^{\gamma}
            = \Big(1 - \frac{TP_c + s_{nr}}{TP_c + \alpha FP_c + \beta FN_c + s_{dr}}\Big)^{\gamma},
        \qquad \ell = \frac{1}{K} \sum_c w_c f_c

    ``gamma = 1`` gives :func:`tversky_loss` exactly. ``alpha`` weights false
    positives, as in :func:`tversky_loss`. Abraham and Khan write the index
    with their ``alpha = 0.7`` on the *false negatives* and the exponent as
    ``1 / gamma`` with ``gamma = 4/3``: their setting is ``alpha=0.3,
    beta=0.7, gamma=0.75`` here; the defaults ``alpha=0.7, beta=0.3`` weight
    false positives more. At ``f^T_c = 0`` the gradient is taken as 0 (the
    power has an infinite slope there for ``gamma < 1``).

    Args:
      predictions: ``[B, *spatial, C]`` float scores (logits unless
        ``activation=None``).
      targets: ``[B, *spatial, C]`` one-hot or soft targets, or
        ``[B, *spatial]`` integer class indices.
      alpha: weight of the false positives, ``>= 0``.
      beta: weight of the false negatives, ``>= 0``.
      gamma: focal exponent, ``>= 0`` (``< 1`` focuses on the hard classes
        near a perfect score; the paper's ``1 / (4/3)``).
      activation: ``"softmax"``, ``"sigmoid"`` or ``None``.
      include_background: keep class 0 in the average.
      smooth_nr: added to the numerator, ``>= 0`` (MONAI ``smooth_nr``).
      smooth_dr: added to the denominator, ``>= 0`` (MONAI ``smooth_dr``).
      batch_dice: pool the sums over the batch; the value is broadcast to ``[B]``.
      class_weights: ``[C]`` (or ``[C - 1]`` without background) non-negative weights.
      channel_axis: the class axis of ``predictions`` (and of one-hot
        ``targets``): ``-1`` channels last (default), ``1`` channels first
        (MONAI/PyTorch ``[B, C, *spatial]``, no transpose needed).
      ignore_index: with integer ``targets``, pixels whose label equals it
        leave every sum (as if masked by ``where``); ``None`` ignores nothing.
      smooth: older single smoothing term; when given it sets both
        ``smooth_nr`` and ``smooth_dr``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[B]``.
      where: boolean example mask ``[B]`` or pixel mask ``[B, *spatial]``.

    Returns:
      ``[B]`` per-example values for ``reduction="none"`` (with ``batch_dice=True``
      the pooled value repeated ``B`` times), else a scalar.

    Raises:
      ValueError: bad shapes of ``targets``, ``where`` or ``class_weights``,
        negative ``alpha``, ``beta``, ``gamma`` or smoothing term, a bad ``channel_axis`` or
        ``ignore_index``, an unknown
        ``activation`` or ``reduction``.
      TypeError: non-float ``predictions``, non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> probs = jnp.array([[[1.0], [1.0], [0.0], [0.0]]])
      >>> mask = jnp.array([[[1.0], [0.0], [1.0], [0.0]]])
      >>> round(float(jaxloss.focal_tversky_loss(probs, mask, activation=None, gamma=0.5, smooth=0.0)), 6)
      0.707107

    References:
      Abraham and Khan, "A Novel Focal Tversky Loss Function with Improved
      Attention U-Net for Lesion Segmentation", ISBI 2019,
      https://arxiv.org/abs/1810.07842
    """
    fn = "focal_tversky_loss"
    _checks.in_range(fn, "gamma", gamma, low=0.0)
    per_class, prep = _tversky_per_class(fn, predictions, targets, alpha=alpha, beta=beta, activation=activation,
                                         include_background=include_background, smooth_nr=smooth_nr,
                                         smooth_dr=smooth_dr, smooth=smooth, batch_dice=batch_dice,
                                         class_weights=class_weights, channel_axis=channel_axis,
                                         ignore_index=ignore_index, where=where)
    per_class = _numerics.safe_pow(jnp.maximum(per_class, 0.0), gamma)
    values = _class_mean(per_class, prep.class_weights, prep.batch)
    return reduce_values(values, reduction=reduction, weights=weights, where=prep.example, fn=fn)


@_registry.builtin(tags=("segmentation",))
def generalized_dice_loss(predictions: ArrayLike, targets: ArrayLike, *,
                          weight_type: Literal["square", "simple", "uniform"] = "square",
                          activation: Literal["softmax", "sigmoid"] | None = "softmax", include_background: bool = True,
                          smooth_nr: ArrayLike = 1e-5, smooth_dr: ArrayLike = 1e-5, batch_dice: bool = False,
                          class_weights: ArrayLike | None = None, channel_axis: int = -1,
                          ignore_index: int | None = None, smooth: ArrayLike | None = None,
                          reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                          where: ArrayLike | None = None) -> Array:
    r"""Generalised Dice loss (Sudre et al. 2017; MONAI ``GeneralizedDiceLoss``).

    One ratio per example, the classes weighted by the inverse of their
    target volume :math:`G_c = \sum_i g_{ic}`:

    .. math::

        \ell = 1 - \frac{2 \sum_c v_c \sum_i p_{ic} g_{ic} + s_{nr}}
                        {\sum_c v_c \big(\sum_i g_{ic} + \sum_i p_{ic}\big) + s_{dr}},
        \qquad v_c = u_c \cdot \begin{cases} G_c^{-2} & \text{"square"} \\
                                   G_c^{-1} & \text{"simple"} \\
                                   1 & \text{"uniform"} \end{cases}

    A class absent from an example (:math:`G_c = 0`, infinite weight) takes
    the largest finite weight of that example, as MONAI does; an example with
    no class present gives 0. :math:`u_c` are the ``class_weights`` (1 when
    ``None``), a jaxloss extension multiplying the volume weights.

    Args:
      predictions: ``[B, *spatial, C]`` float scores (logits unless
        ``activation=None``).
      targets: ``[B, *spatial, C]`` one-hot or soft targets, or
        ``[B, *spatial]`` integer class indices.
      weight_type: ``"square"`` (Sudre et al.), ``"simple"`` or ``"uniform"``.
      activation: ``"softmax"``, ``"sigmoid"`` or ``None``.
      include_background: keep class 0.
      smooth_nr: added to the numerator, ``>= 0`` (MONAI ``smooth_nr``).
      smooth_dr: added to the denominator, ``>= 0`` (MONAI ``smooth_dr``).
      batch_dice: pool the sums (and the weights) over the batch; the value
        is broadcast to ``[B]``.
      class_weights: ``[C]`` (or ``[C - 1]`` without background) non-negative
        factors on the volume weights.
      channel_axis: the class axis of ``predictions`` (and of one-hot
        ``targets``): ``-1`` channels last (default), ``1`` channels first
        (MONAI/PyTorch ``[B, C, *spatial]``, no transpose needed).
      ignore_index: with integer ``targets``, pixels whose label equals it
        leave every sum (as if masked by ``where``); ``None`` ignores nothing.
      smooth: older single smoothing term; when given it sets both
        ``smooth_nr`` and ``smooth_dr``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[B]``.
      where: boolean example mask ``[B]`` or pixel mask ``[B, *spatial]``.

    Returns:
      ``[B]`` per-example values for ``reduction="none"`` (with ``batch_dice=True``
      the pooled value repeated ``B`` times), else a scalar.

    Raises:
      ValueError: bad shapes of ``targets``, ``where`` or ``class_weights``,
        a negative smoothing term, a bad ``channel_axis`` or ``ignore_index``, an unknown
        ``weight_type``, ``activation`` or
        ``reduction``.
      TypeError: non-float ``predictions``, non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> probs = jnp.array([[[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.0, 1.0]]])  # [1, 4, 2]
      >>> labels = jnp.array([[0, 0, 0, 1]])
      >>> round(float(jaxloss.generalized_dice_loss(probs, labels, activation=None, smooth=0.0)), 6)
      0.416667

    References:
      Sudre, Li, Vercauteren, Ourselin and Cardoso, "Generalised Dice overlap
      as a deep learning loss function for highly unbalanced segmentations",
      DLMIA 2017, https://arxiv.org/abs/1707.03237; MONAI
      ``GeneralizedDiceLoss``, https://docs.monai.io/en/stable/losses.html#generalizeddiceloss
    """
    fn = "generalized_dice_loss"
    _checks.choice(fn, "weight_type", weight_type, _WEIGHT_TYPES)
    smooth_nr, smooth_dr, batch_dice = _common_checks(fn, smooth_nr, smooth_dr, smooth, batch_dice)
    prep = _prepare(fn, predictions, targets, where, activation=activation,
                    include_background=include_background, class_weights=class_weights,
                    channel_axis=channel_axis, ignore_index=ignore_index)
    p, g = prep.probs, prep.onehot
    nr, dr = jnp.asarray(smooth_nr, p.dtype), jnp.asarray(smooth_dr, p.dtype)
    intersection = _pool(p * g, batch_dice, prep.fold)        # [G, K]
    ground = _pool(g, batch_dice, prep.fold)
    denominator = ground + _pool(p, batch_dice, prep.fold)
    if weight_type == "uniform":
        volume_weights = jnp.ones_like(ground)
    else:
        # An absent class takes the largest weight of its example (MONAI), that is
        # the weight of the smallest present volume: one minimum and one select
        # (raw weights, their maximum and two selects measured 1.08-1.10x optax's
        # multiclass_generalized_dice_loss at 8x64x64x8, this 0.99-1.01x).
        present = ground != 0
        smallest = jnp.min(jnp.where(present, ground, jnp.inf), axis=-1, keepdims=True)
        volume = jnp.where(present, ground, smallest)
        volume_weights = 1.0 / (volume * volume if weight_type == "square" else volume)
    if prep.class_weights is not None:
        volume_weights = volume_weights * prep.class_weights[None, :]
    numerator = 2.0 * jnp.sum(intersection * volume_weights, axis=-1) + nr
    total = jnp.sum(denominator * volume_weights, axis=-1) + dr
    values = jnp.broadcast_to(1.0 - _ratio(numerator, total), (prep.batch,))
    return reduce_values(values, reduction=reduction, weights=weights, where=prep.example, fn=fn)


# ------------------------------------------------------- compound (MONAI)
def _dice_values(prep: _Prepared, *, squared: bool, jaccard: bool, smooth_nr: ArrayLike, smooth_dr: ArrayLike,
                 batch_dice: bool) -> Array:
    """MONAI ``DiceLoss`` per example ``[B]`` (``jaccard=True``: its soft-IoU form)."""
    p, g = prep.probs, prep.onehot
    nr, dr = jnp.asarray(smooth_nr, p.dtype), jnp.asarray(smooth_dr, p.dtype)
    intersection = _pool(p * g, batch_dice, prep.fold)
    if squared:
        total = _pool(g * g, batch_dice, prep.fold) + _pool(p * p, batch_dice, prep.fold)
    else:
        total = _pool(g, batch_dice, prep.fold) + _pool(p, batch_dice, prep.fold)
    denominator = 2.0 * (total - intersection) if jaccard else total
    per_class = 1.0 - _ratio(2.0 * intersection + nr, denominator + dr)
    return _class_mean(per_class, prep.class_weights, prep.batch)


def _pixel_mean(per_pixel: Array, normaliser: Array, prep: _Prepared, batch_dice: bool, apart: bool = False
                ) -> Array:
    """``sum(per_pixel) / sum(normaliser)`` over an example's kept pixels (or the pooled batch): ``[B]``.

    ``apart``: the per-pixel terms are log-sigmoids, which the sums' fused
    form evaluates pixel by pixel (see ``_ONE_CHANNEL_APART``); a softmax
    cross-entropy's terms stay fused (apart, 16x128x128x8 forward took 1.2x
    as long).
    """
    if prep.pixel is not None:
        per_pixel = per_pixel * prep.pixel[..., 0]
        normaliser = normaliser * prep.pixel[..., 0]
    total = jnp.sum(_numerics.reduction_input(per_pixel, max_last=None) if apart else per_pixel,
                    axis=_pixel_axes(per_pixel, classes=False))
    count = jnp.sum(normaliser, axis=_pixel_axes(normaliser, classes=False))
    if batch_dice:
        total, count = jnp.sum(total, keepdims=True), jnp.sum(count, keepdims=True)
    return jnp.broadcast_to(_numerics.safe_div(total, count), (prep.batch,))


def _full_class_weights(fn: str, class_weights: ArrayLike | None, num_classes: int, dtype: DTypeLike) -> Array | None:
    """``[C]`` class weights indexed by class id (the cross-entropy layout, background included)."""
    if class_weights is None:
        return None
    cw = _checks.floating(fn, "class_weights", class_weights)
    if cw.shape != (num_classes,):
        _checks._fail(ValueError, _checks.message(
            fn, "class_weights", f"must have shape [{num_classes}] (every class, as the cross-entropy "
            "weight; the Dice part drops the background itself)", cw.shape))
    return cw.astype(dtype)


@_registry.builtin(tags=("segmentation",))
def dice_ce_loss(predictions: ArrayLike, targets: ArrayLike, *, lambda_dice: ArrayLike = 1.0,
                 lambda_ce: ArrayLike = 1.0, activation: Literal["softmax", "sigmoid"] | None = "softmax",
                 include_background: bool = True, squared: bool = False, jaccard: bool = False,
                 smooth_nr: ArrayLike = 1e-5, smooth_dr: ArrayLike = 1e-5, batch_dice: bool = False,
                 class_weights: ArrayLike | None = None, label_smoothing: ArrayLike = 0.0, channel_axis: int = -1,
                 ignore_index: int | None = None, reduction: Literal["none", "sum", "mean"] = "mean",
                 weights: ArrayLike | None = None, where: ArrayLike | None = None) -> Array:
    r"""Dice loss plus cross-entropy (MONAI ``DiceCELoss``).

    Per example, with :math:`D` the :func:`dice_loss` value (or the Jaccard
    form with ``jaccard=True``) and :math:`CE` the pixel-averaged cross-entropy
    of the logits:

    .. math::

        \ell = \lambda_{dice} D + \lambda_{ce} CE, \qquad
        CE = \frac{\sum_i \sum_c -w_c \tilde y_{ic} \log \mathrm{softmax}(x_i)_c}{\sum_i n_i},
        \qquad \tilde y = (1 - \epsilon) y + \epsilon / C

    with :math:`w_c` the class weights (1 when ``None``), :math:`\epsilon` =
    ``label_smoothing`` and :math:`n_i = w_{y_i}` for integer targets (torch's
    weighted mean) or 1 for one-hot/soft targets (torch divides by the number
    of pixels). With one channel (``C = 1``) the CE part is
    ``BCEWithLogitsLoss(pos_weight=class_weights)``. As in MONAI the CE part
    always reads ``predictions`` as logits; ``activation`` applies to the Dice
    part only, and the CE part uses every class whatever
    ``include_background``.

    Equals ``monai.losses.DiceCELoss`` (channels moved, same options) for
    ``reduction="mean"``. One difference by design: MONAI normalises the
    class-weighted CE over the whole batch, jaxloss per example (so an
    example's value does not depend on the others); with ``class_weights`` or
    a pixel mask the two agree for a batch of one, or always with
    ``batch_dice=True``, where both parts pool the batch as MONAI
    ``batch=True`` does.

    Args:
      predictions: ``[B, *spatial, C]`` float logits (``channel_axis`` moves
        the class axis).
      targets: ``[B, *spatial, C]`` one-hot or soft targets, or
        ``[B, *spatial]`` integer class indices.
      lambda_dice: weight of the Dice part, ``>= 0``.
      lambda_ce: weight of the cross-entropy part, ``>= 0``.
      activation: ``"softmax"``, ``"sigmoid"`` or ``None``, for the Dice part.
      include_background: keep class 0 in the Dice part.
      squared: MONAI ``squared_pred`` for the Dice part.
      jaccard: use the Jaccard (soft IoU) form of the Dice part.
      smooth_nr: added to the Dice numerator, ``>= 0``.
      smooth_dr: added to the Dice denominator, ``>= 0``.
      batch_dice: pool both parts over the batch (MONAI ``batch=True``); the
        value is broadcast to ``[B]``.
      class_weights: ``[C]`` non-negative weights by class id: the CE
        ``weight`` (``pos_weight`` with one channel) and the Dice class
        weights (without class 0 when ``include_background=False``, as MONAI).
      label_smoothing: in ``[0, 1]``, torch semantics, softmax CE only.
      channel_axis: the class axis: ``-1`` channels last, ``1`` channels first.
      ignore_index: with integer ``targets``, pixels whose label equals it
        leave both parts (torch ``ignore_index``).
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[B]``.
      where: boolean example mask ``[B]`` or pixel mask ``[B, *spatial]``.

    Returns:
      ``[B]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: bad shapes of ``targets``, ``where`` or ``class_weights``,
        negative ``lambda_dice``, ``lambda_ce`` or smoothing term,
        ``label_smoothing`` outside ``[0, 1]``, a bad ``channel_axis`` or
        ``ignore_index``, an unknown ``activation`` or ``reduction``.
      TypeError: non-float ``predictions``, non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]])  # [1, 3, 2]
      >>> labels = jnp.array([[0, 1, 1]])
      >>> round(float(jaxloss.segmentation.dice_ce_loss(logits, labels)), 4)  # MONAI DiceCELoss: 1.16725
      1.1673

    References:
      Isensee et al., "nnU-Net: a self-configuring method for deep
      learning-based biomedical image segmentation", Nature Methods 2021,
      https://doi.org/10.1038/s41592-020-01008-z; MONAI ``DiceCELoss``,
      https://docs.monai.io/en/stable/losses.html#diceceloss
    """
    fn = "dice_ce_loss"
    _checks.in_range(fn, "lambda_dice", lambda_dice, low=0.0)
    _checks.in_range(fn, "lambda_ce", lambda_ce, low=0.0)
    _checks.in_range(fn, "label_smoothing", label_smoothing, low=0.0, high=1.0)
    squared = _flag(fn, "squared", squared)
    jaccard = _flag(fn, "jaccard", jaccard)
    smooth_nr, smooth_dr, batch_dice = _common_checks(fn, smooth_nr, smooth_dr, None, batch_dice)
    prep = _prepare(fn, predictions, targets, where, activation=activation, include_background=include_background,
                    class_weights=None, channel_axis=channel_axis, ignore_index=ignore_index)
    x, y = prep.logits, prep.onehot_all
    dtype, num_classes = x.dtype, x.shape[-1]
    cw = _full_class_weights(fn, class_weights, num_classes, dtype)
    if cw is not None and num_classes > 1:   # the Dice part: weight[1:] without background; none for one channel
        prep = prep._replace(class_weights=cw if include_background else cw[1:])
    dice = _dice_values(prep, squared=squared, jaccard=jaccard, smooth_nr=smooth_nr, smooth_dr=smooth_dr,
                        batch_dice=batch_dice)
    if num_classes == 1:
        # BCEWithLogits(pos_weight): -(pw y log sigmoid(x) + (1 - y) log sigmoid(-x)), in the stable form.
        if cw is None:
            per_pixel = _numerics.bce_with_logits(x, y)
        else:
            per_pixel = _numerics.weighted_bce_with_logits(x, y, cw[0])
        per_pixel = per_pixel[..., 0]
        normaliser = jnp.ones_like(per_pixel)
    else:
        eps = jnp.asarray(label_smoothing, dtype)
        smoothed = (1.0 - eps) * y + eps / num_classes
        w = (jnp.ones((num_classes,), dtype) if cw is None else cw).reshape((1,) * (x.ndim - 1) + (num_classes,))
        per_pixel = -jnp.sum(w * smoothed * jax.nn.log_softmax(x, axis=-1), axis=-1)
        normaliser = jnp.sum(w * y, axis=-1) if prep.integer_targets else jnp.ones_like(per_pixel)
    ce = _pixel_mean(per_pixel, normaliser, prep, batch_dice, apart=num_classes == 1)
    values = jnp.asarray(lambda_dice, dtype) * dice + jnp.asarray(lambda_ce, dtype) * ce
    return reduce_values(values, reduction=reduction, weights=weights, where=prep.example, fn=fn)


@_registry.builtin(tags=("segmentation",))
def dice_focal_loss(predictions: ArrayLike, targets: ArrayLike, *, lambda_dice: ArrayLike = 1.0,
                    lambda_focal: ArrayLike = 1.0, gamma: ArrayLike = 2.0, alpha: ArrayLike | None = None,
                    activation: Literal["softmax", "sigmoid"] | None = "softmax", include_background: bool = True,
                    squared: bool = False, jaccard: bool = False, smooth_nr: ArrayLike = 1e-5,
                    smooth_dr: ArrayLike = 1e-5, batch_dice: bool = False, class_weights: ArrayLike | None = None,
                    channel_axis: int = -1, ignore_index: int | None = None,
                    reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                    where: ArrayLike | None = None) -> Array:
    r"""Dice loss plus sigmoid focal loss (MONAI ``DiceFocalLoss``).

    Per example, with :math:`D` the :func:`dice_loss` value and :math:`F` the
    sigmoid focal loss of the logits averaged over the kept classes and
    pixels:

    .. math::

        \ell = \lambda_{dice} D + \lambda_{focal} F, \qquad
        F = \frac{1}{K N} \sum_{i, c} w_c\, a_{ic}\, \sigma(-x_{ic} (2 y_{ic} - 1))^{\gamma}
            \big(-y_{ic} \log \sigma(x_{ic}) - (1 - y_{ic}) \log \sigma(-x_{ic})\big)

    with :math:`a_{ic} = \alpha y_{ic} + (1 - \alpha)(1 - y_{ic})` (1 when
    ``alpha=None``), :math:`w_c` the class weights, :math:`K` the kept classes
    and :math:`N` the (kept) pixels. As MONAI: the focal part is always the
    sigmoid focal loss of the logits on the one-hot targets, ``activation``
    applies to the Dice part only, ``include_background`` and
    ``class_weights`` apply to both. Equals ``monai.losses.DiceFocalLoss``
    (channels moved, same options) for ``reduction="mean"``.

    Args:
      predictions: ``[B, *spatial, C]`` float logits.
      targets: ``[B, *spatial, C]`` one-hot or soft targets, or
        ``[B, *spatial]`` integer class indices.
      lambda_dice: weight of the Dice part, ``>= 0``.
      lambda_focal: weight of the focal part, ``>= 0``.
      gamma: focal exponent, ``>= 0``.
      alpha: ``None`` or a balance factor in ``[0, 1]`` for the positives.
      activation: ``"softmax"``, ``"sigmoid"`` or ``None``, for the Dice part.
      include_background: keep class 0 in both parts.
      squared: MONAI ``squared_pred`` for the Dice part.
      jaccard: use the Jaccard (soft IoU) form of the Dice part.
      smooth_nr: added to the Dice numerator, ``>= 0``.
      smooth_dr: added to the Dice denominator, ``>= 0``.
      batch_dice: pool both parts over the batch (MONAI ``batch=True``).
      class_weights: ``[C]`` (or ``[C - 1]`` without background, MONAI's
        layout) non-negative weights for both parts.
      channel_axis: the class axis: ``-1`` channels last, ``1`` channels first.
      ignore_index: with integer ``targets``, pixels whose label equals it
        leave both parts.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[B]``.
      where: boolean example mask ``[B]`` or pixel mask ``[B, *spatial]``.

    Returns:
      ``[B]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: bad shapes of ``targets``, ``where`` or ``class_weights``,
        negative ``lambda_dice``, ``lambda_focal``, ``gamma`` or smoothing
        term, ``alpha`` outside ``[0, 1]``, a bad ``channel_axis`` or
        ``ignore_index``, an unknown ``activation`` or ``reduction``.
      TypeError: non-float ``predictions``, non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]])  # [1, 3, 2]
      >>> labels = jnp.array([[0, 1, 1]])
      >>> round(float(jaxloss.segmentation.dice_focal_loss(logits, labels)), 4)  # MONAI DiceFocalLoss: 0.73591
      0.7359

    References:
      Lin, Goyal, Girshick, He and Dollar, "Focal Loss for Dense Object
      Detection", ICCV 2017, https://arxiv.org/abs/1708.02002; MONAI
      ``DiceFocalLoss``, https://docs.monai.io/en/stable/losses.html#dicefocalloss
    """
    fn = "dice_focal_loss"
    _checks.in_range(fn, "lambda_dice", lambda_dice, low=0.0)
    _checks.in_range(fn, "lambda_focal", lambda_focal, low=0.0)
    _checks.in_range(fn, "gamma", gamma, low=0.0)
    _checks.in_range(fn, "alpha", alpha, low=0.0, high=1.0)
    squared = _flag(fn, "squared", squared)
    jaccard = _flag(fn, "jaccard", jaccard)
    smooth_nr, smooth_dr, batch_dice = _common_checks(fn, smooth_nr, smooth_dr, None, batch_dice)
    prep = _prepare(fn, predictions, targets, where, activation=activation, include_background=include_background,
                    class_weights=class_weights, channel_axis=channel_axis, ignore_index=ignore_index)
    dice = _dice_values(prep, squared=squared, jaccard=jaccard, smooth_nr=smooth_nr, smooth_dr=smooth_dr,
                        batch_dice=batch_dice)
    x, y = prep.logits, prep.onehot_all
    if x.shape[-1] != prep.probs.shape[-1]:   # include_background=False: the focal part drops class 0 too
        x, y = x[..., 1:], y[..., 1:]
    dtype = x.dtype
    focal = _monai_sigmoid_focal(x, y, jnp.asarray(gamma, dtype))
    if alpha is not None:
        a = jnp.asarray(alpha, dtype)
        focal = (y * a + (1.0 - y) * (1.0 - a)) * focal
    if prep.class_weights is not None:
        focal = focal * prep.class_weights.reshape((1,) * (focal.ndim - 1) + (-1,))
    kept = x.shape[-1]
    per_pixel = jnp.sum(focal, axis=-1)
    focal_mean = _pixel_mean(per_pixel, jnp.full(per_pixel.shape, kept, dtype), prep, batch_dice, apart=True)
    values = jnp.asarray(lambda_dice, dtype) * dice + jnp.asarray(lambda_focal, dtype) * focal_mean
    return reduce_values(values, reduction=reduction, weights=weights, where=prep.example, fn=fn)


def _monai_sigmoid_focal_value(x: Array, y: Array, gamma: Array) -> Array:
    """MONAI's ``sigmoid_focal_loss``: BCE-with-logits times ``sigmoid(-w)**gamma``, ``w = x (2y - 1)``.

    The power is taken in log space, as MONAI does: ``exp(-gamma softplus(w))``,
    with the select-free softplus (``jax.nn.log_sigmoid``'s selects kept
    XLA:CPU from fusing the pass: 16x128x128x8 forward 45 -> 10 ms).
    """
    return jnp.exp(-gamma * _numerics.softplus_both(x * (2.0 * y - 1.0))[0]) * _numerics.bce_with_logits(x, y)


def _monai_sigmoid_focal_partials(x: Array, y: Array, gamma: Array) -> tuple[Array, Array, Array]:
    # f = m(w) b with m = exp(-gamma softplus(w)), m' = -gamma sigmoid(w) m, b = bce(x, y):
    # df/dx = m' (2y - 1) b + m (sigmoid(x) - y), df/dy = m' 2x b - m x, df/dgamma = -softplus(w) m b.
    # Constants of their own (:func:`jaxloss._numerics.distinct`): the value's, shared, are written out.
    two, one = _numerics.distinct((jnp.asarray(2.0, x.dtype), jnp.asarray(1.0, x.dtype)), 1)
    sign = two * y - one
    w = x * sign
    softplus_w = _numerics.softplus_both(w)[0]
    m = jnp.exp(-gamma * softplus_w)
    b = _numerics.bce_with_logits(x, y)
    slope_w = -gamma * jax.nn.sigmoid(w) * m * b
    return slope_w * sign + m * (jax.nn.sigmoid(x) - y), slope_w * (two * x) - m * x, -softplus_w * m * b


# Written derivatives (:func:`jaxloss._numerics.elementwise`): autodiff through the log-space power wrote out
# eleven [..., C] arrays (16x128x128x8 value and gradient 85-99 ms).
_monai_sigmoid_focal = _numerics.elementwise(_monai_sigmoid_focal_value, _monai_sigmoid_focal_partials)


# ------------------------------------------------- topology and boundaries
def _max3(x: Array, axis: int) -> Array:
    """Max over a 3-wide window along ``axis``, stride 1, ``-inf`` padding (torch ``max_pool``, padding 1).

    Shifted slices and ``jnp.maximum`` rather than ``reduce_window``, so
    reverse-mode autodiff works under every transformation.
    """
    pad = [(0, 0)] * x.ndim
    pad[axis] = (1, 1)
    padded = jnp.pad(x, pad, constant_values=-jnp.inf)
    n = x.shape[axis]
    left, centre, right = (jax.lax.slice_in_dim(padded, k, k + n, axis=axis) for k in range(3))
    return jnp.maximum(jnp.maximum(left, centre), right)


def _soft_erode(x: Array) -> Array:
    """Soft erosion: the minimum of the 3-pixel min-pools along each spatial axis (Shit et al.)."""
    spatial = x.ndim - 2
    eroded: Array | None = None
    for axis in range(1, spatial + 1):
        pooled = -_max3(-x, axis)
        eroded = pooled if eroded is None else jnp.minimum(eroded, pooled)
    assert eroded is not None, "soft erosion needs at least one spatial axis"
    return eroded


def _soft_dilate(x: Array) -> Array:
    """Soft dilation: a 3 x 3 (x 3 ...) max-pool, separable as one 3-wide max per axis."""
    for axis in range(1, x.ndim - 1):
        x = _max3(x, axis)
    return x


def _soft_skeleton(x: Array, iterations: int) -> Array:
    """Soft skeleton by iterated soft opening (Shit et al. 2021, ``soft_skel``)."""
    skeleton = jax.nn.relu(x - _soft_dilate(_soft_erode(x)))
    for _ in range(iterations):
        x = _soft_erode(x)
        delta = jax.nn.relu(x - _soft_dilate(_soft_erode(x)))
        skeleton = skeleton + jax.nn.relu(delta - skeleton * delta)
    return skeleton


@_registry.builtin(tags=("segmentation",))
def soft_cldice_loss(predictions: ArrayLike, targets: ArrayLike, *, iterations: int = 3, smooth: ArrayLike = 1.0,
                     activation: Literal["softmax", "sigmoid"] | None = "softmax", include_background: bool = True,
                     channel_axis: int = -1, ignore_index: int | None = None,
                     reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                     where: ArrayLike | None = None) -> Array:
    r"""Soft clDice loss for tubular and thin structures (Shit et al. 2021).

    With soft skeletons :math:`S_P, S_G` of the probabilities :math:`P` and
    targets :math:`G` (``iterations`` rounds of soft erosion and opening by
    3-pixel min/max pooling), summed over an example's pixels and kept classes:

    .. math::

        T_{prec} = \frac{\sum S_P G + s}{\sum S_P + s}, \quad
        T_{sens} = \frac{\sum S_G P + s}{\sum S_G + s}, \quad
        \ell = 1 - \frac{2\, T_{prec} T_{sens}}{T_{prec} + T_{sens}}

    Equals the authors' ``soft_cldice`` (``cldice_loss/pytorch/cldice.py``)
    on one example. Usually combined with a Dice loss
    (:func:`jaxloss.combine`), as the authors' ``soft_dice_cldice``.

    Args:
      predictions: ``[B, *spatial, C]`` float scores (logits unless
        ``activation=None``), one or more spatial axes (2D and 3D in the paper).
      targets: ``[B, *spatial, C]`` one-hot or soft targets, or
        ``[B, *spatial]`` integer class indices.
      iterations: skeletonisation rounds, a Python int ``>= 0`` (the
        authors' ``iter_``; about the largest structure radius in pixels).
      smooth: added to the numerators and denominators, ``>= 0``.
      activation: ``"softmax"``, ``"sigmoid"`` or ``None``.
      include_background: keep class 0 (the authors' ``exclude_background``
        negated).
      channel_axis: the class axis: ``-1`` channels last, ``1`` channels first.
      ignore_index: with integer ``targets``, pixels whose label equals it
        are set to 0 in both maps before skeletonisation.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[B]``.
      where: boolean example mask ``[B]`` or pixel mask ``[B, *spatial]``
        (masked pixels are 0 in both maps).

    Returns:
      ``[B]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: a negative or non-int ``iterations``, ``smooth < 0``, bad
        shapes of ``targets`` or ``where``, a bad ``channel_axis`` or
        ``ignore_index``, an unknown ``activation`` or ``reduction``.
      TypeError: non-float ``predictions``, non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> line = jnp.zeros((1, 5, 5)).at[:, 2, :].set(1.0)[..., None]  # a horizontal line, one channel
      >>> float(jaxloss.segmentation.soft_cldice_loss(line, line, activation=None))
      0.0
      >>> round(float(jaxloss.segmentation.soft_cldice_loss(line, jnp.swapaxes(line, 1, 2), activation=None)), 4)
      0.6667

    References:
      Shit, Paetzold, Sekuboyina et al., "clDice -- a Novel Topology-Preserving
      Loss Function for Tubular Structure Segmentation", CVPR 2021,
      https://arxiv.org/abs/2003.07311; code https://github.com/jocpae/clDice
    """
    fn = "soft_cldice_loss"
    _checks.integer_option(fn, "iterations", iterations, allow_none=False)
    if iterations < 0:
        _checks._fail(ValueError, _checks.message(fn, "iterations", "must be >= 0", iterations))
    _checks.in_range(fn, "smooth", smooth, low=0.0)
    prep = _prepare(fn, predictions, targets, where, activation=activation, include_background=include_background,
                    class_weights=None, channel_axis=channel_axis, ignore_index=ignore_index)
    p, g = prep.probs, prep.onehot
    skel_p, skel_g = _soft_skeleton(p, int(iterations)), _soft_skeleton(g, int(iterations))
    axes = tuple(range(1, p.ndim))
    s = jnp.asarray(smooth, p.dtype)
    precision = _numerics.safe_div(jnp.sum(skel_p * g, axis=axes) + s, jnp.sum(skel_p, axis=axes) + s, fill=1.0)
    sensitivity = _numerics.safe_div(jnp.sum(skel_g * p, axis=axes) + s, jnp.sum(skel_g, axis=axes) + s, fill=1.0)
    values = 1.0 - _numerics.safe_div(2.0 * precision * sensitivity, precision + sensitivity)
    return reduce_values(values, reduction=reduction, weights=weights, where=prep.example, fn=fn)


def _squared_distance_to(feature: Array) -> Array:
    """Exact squared Euclidean distance to the nearest ``True`` of ``feature [G, *spatial]``.

    Separable (one brute-force minimum per axis, as Felzenszwalb and
    Huttenlocher's decomposition): ``d(p) = min_q |p - q|^2`` equals the
    minimum over the last axis of the minimum over the other axes. ``inf``
    where ``feature`` has no ``True``. Memory ``O(size x longest axis)``.
    """
    dist = jnp.where(feature, 0.0, jnp.inf).astype(jnp.float32)
    for axis in range(1, feature.ndim):
        n = feature.shape[axis]
        moved = jnp.moveaxis(dist, axis, -1)
        offsets = jnp.square(jnp.arange(n, dtype=jnp.float32)[:, None] - jnp.arange(n, dtype=jnp.float32)[None, :])
        offsets = offsets.reshape((1,) * (moved.ndim - 1) + (n, n))
        moved = jnp.min(moved[..., None, :] + offsets, axis=-1)
        dist = jnp.moveaxis(moved, -1, axis)
    return dist


def _distance_field(mask: Array) -> Array:
    """MONAI ``HausdorffDTLoss.distance_field`` on ``[B, *spatial, K]`` (no gradient).

    Per example and class, foreground ``mask > 0.5``: each pixel's Euclidean
    distance to the nearest pixel of the other side (``edt(fg) + edt(bg)``);
    all zeros when the example's class is all foreground or all background.
    """
    fg = jnp.moveaxis(jax.lax.stop_gradient(mask) > 0.5, -1, 1)          # [B, K, *spatial]
    shape = fg.shape
    fg = fg.reshape((shape[0] * shape[1],) + shape[2:])
    to_bg = _squared_distance_to(~fg)
    to_fg = _squared_distance_to(fg)
    flat = fg.reshape(fg.shape[0], math.prod(fg.shape[1:]))   # explicit sizes: a size-0 batch cannot infer -1
    both = jnp.any(flat, axis=1) & ~jnp.all(flat, axis=1)
    both = jnp.broadcast_to(both.reshape((-1,) + (1,) * (fg.ndim - 1)), fg.shape)
    squared = jnp.where(fg, to_bg, to_fg)
    field = jnp.where(both, jnp.sqrt(jnp.where(both, squared, 0.0)), 0.0)
    return jnp.moveaxis(field.reshape(shape), 1, -1)


@_registry.builtin(tags=("segmentation",))
def hausdorff_dt_loss(predictions: ArrayLike, targets: ArrayLike, *, alpha: ArrayLike = 2.0,
                      activation: Literal["softmax", "sigmoid"] | None = None, include_background: bool = False,
                      channel_axis: int = -1, ignore_index: int | None = None,
                      reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                      where: ArrayLike | None = None) -> Array:
    r"""Hausdorff distance-transform loss (Karimi and Salcudean 2019; MONAI ``HausdorffDTLoss``).

    With :math:`d_P, d_G` the distance fields of the thresholded prediction
    (:math:`p > 0.5`) and target (each pixel's Euclidean distance to the
    nearest pixel on the other side of the boundary; 0 for a class that is
    all foreground or all background), per class :math:`c`:

    .. math::

        f_c = \frac{1}{N} \sum_i (p_{ic} - g_{ic})^2 \big(d_{P,ic}^{\alpha} + d_{G,ic}^{\alpha}\big),
        \qquad \ell = \frac{1}{K} \sum_c f_c

    The distance fields carry no gradient (MONAI computes them under
    ``no_grad``). The exact Euclidean distance transform is computed in JAX
    (separable minimum over each axis, memory ``O(N x longest side)`` per
    class), so the loss is jittable, vmappable and needs no host callback.
    Defaults are MONAI's: ``activation=None`` (probabilities in) and
    ``include_background=False``, which one-channel inputs ignore as MONAI
    does. Equals ``monai.losses.HausdorffDTLoss`` (channels moved) for
    ``reduction="mean"``; MONAI's ``batch=True`` gives the same mean.

    Args:
      predictions: ``[B, *spatial, C]`` float probabilities (or logits with
        ``activation``), one or more spatial axes.
      targets: ``[B, *spatial, C]`` one-hot targets or ``[B, *spatial]``
        integer class indices.
      alpha: exponent of the distances, ``>= 0``.
      activation: ``None``, ``"softmax"`` or ``"sigmoid"``.
      include_background: keep class 0 (ignored with one channel).
      channel_axis: the class axis: ``-1`` channels last, ``1`` channels first.
      ignore_index: with integer ``targets``, pixels whose label equals it
        leave the mean (and count as background in the distance fields).
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[B]``.
      where: boolean example mask ``[B]`` or pixel mask ``[B, *spatial]``
        (masked pixels leave the mean and are background for the fields).

    Returns:
      ``[B]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: negative ``alpha``, bad shapes of ``targets`` or
        ``where``, a bad ``channel_axis`` or ``ignore_index``, an unknown
        ``activation`` or ``reduction``.
      TypeError: non-float ``predictions``, non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> target = jnp.zeros((1, 1, 5)).at[0, 0, 3:].set(1.0)[..., None]   # [1, 1, 5, 1]
      >>> pred = jnp.zeros((1, 1, 5)).at[0, 0, 1:].set(1.0)[..., None]     # two pixels too many
      >>> float(jaxloss.segmentation.hausdorff_dt_loss(pred, target))  # (1 + 2**2) + (2**2 + 1) over 5 pixels
      2.0

    References:
      Karimi and Salcudean, "Reducing the Hausdorff Distance in Medical Image
      Segmentation with Convolutional Neural Networks", IEEE TMI 2019,
      https://arxiv.org/abs/1904.10030; MONAI ``HausdorffDTLoss``,
      https://docs.monai.io/en/stable/losses.html#hausdorffdtloss
    """
    fn = "hausdorff_dt_loss"
    _checks.in_range(fn, "alpha", alpha, low=0.0)
    include_background = _flag(fn, "include_background", include_background)
    shape = jnp.shape(predictions)
    if (len(shape) >= 2 and isinstance(channel_axis, int) and -len(shape) <= channel_axis < len(shape)
            and shape[channel_axis] == 1):
        include_background = True   # one channel: MONAI ignores include_background=False
    prep = _prepare(fn, predictions, targets, where, activation=activation, include_background=include_background,
                    class_weights=None, channel_axis=channel_axis, ignore_index=ignore_index)
    kept = prep.probs.shape[-1]
    p, g = prep.probs, prep.onehot
    dtype = p.dtype
    field_p = _distance_field(p).astype(dtype)
    field_g = _distance_field(g).astype(dtype)
    a = jnp.asarray(alpha, dtype)
    distance = _numerics.safe_pow(field_p, a) + _numerics.safe_pow(field_g, a)
    per_pixel = jnp.sum(jnp.square(p - g) * distance, axis=-1)
    values = _pixel_mean(per_pixel, jnp.full(per_pixel.shape, kept, dtype), prep, False)
    return reduce_values(values, reduction=reduction, weights=weights, where=prep.example, fn=fn)


# ---------------------------------------------------------------- images
@_registry.builtin(tags=("segmentation",))
def ssim_loss(predictions: ArrayLike, targets: ArrayLike, *, max_value: ArrayLike = 1.0, filter_size: int = 11,
              filter_sigma: ArrayLike = 1.5, k1: ArrayLike = 0.01, k2: ArrayLike = 0.03, channel_axis: int = -1,
              reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
              where: ArrayLike | None = None) -> Array:
    r"""One minus the structural similarity (SSIM) of each image (Wang et al. 2004).

    With Gaussian-weighted local means :math:`\mu`, variances :math:`\sigma^2`
    and covariance :math:`\sigma_{xy}` (population statistics, window
    ``filter_size`` with standard deviation ``filter_sigma``), at every pixel
    whose window lies inside the image, for each channel:

    .. math::

        \mathrm{SSIM} = \frac{(2 \mu_x \mu_y + C_1)(2 \sigma_{xy} + C_2)}
                             {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)},
        \qquad \ell = 1 - \operatorname{mean}_{\text{pixels, channels}} \mathrm{SSIM}

    with :math:`C_1 = (k_1 L)^2`, :math:`C_2 = (k_2 L)^2`, :math:`L` =
    ``max_value`` (the data range). Equals ``dm_pix.ssim`` and scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=filter_sigma,
    use_sample_covariance=False, data_range=max_value, channel_axis=-1)``
    (whose border crop is exactly the "valid" region here) whenever
    ``filter_size`` is scikit-image's window for that sigma,
    ``2 * int(3.5 * filter_sigma + 0.5) + 1`` (11 at the default 1.5).
    Identical constant images give 0 with finite gradients.

    Args:
      predictions: ``[B, *spatial, C]`` float images (2D: ``[B, H, W, C]``;
        one or more spatial axes, each at least ``filter_size`` long).
      targets: float images of the same shape.
      max_value: the data range :math:`L`, ``> 0``.
      filter_size: odd Python int, the Gaussian window size.
      filter_sigma: the window's standard deviation, ``> 0``.
      k1: ``> 0``, the luminance constant.
      k2: ``> 0``, the contrast constant.
      channel_axis: the channel axis: ``-1`` channels last, ``1`` channels first.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-image weights broadcastable to ``[B]``.
      where: boolean per-image mask broadcastable to ``[B]``.

    Returns:
      ``[B]`` per-image values ``1 - SSIM`` for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, rank < 3, a spatial side shorter than
        ``filter_size``, an even or non-positive ``filter_size``, a
        non-positive ``max_value``, ``filter_sigma``, ``k1`` or ``k2``, a bad
        ``channel_axis``, ``where`` or ``weights`` shape, an unknown ``reduction``.
      TypeError: non-float inputs, non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> image = jnp.linspace(0.0, 1.0, 3 * 16 * 16).reshape(1, 16, 16, 3)
      >>> float(jaxloss.segmentation.ssim_loss(image, image))
      0.0
      >>> round(float(jaxloss.segmentation.ssim_loss(image, 1.0 - image)), 4)  # scikit-image: 1 - (-0.82616)
      1.8262

    References:
      Wang, Bovik, Sheikh and Simoncelli, "Image Quality Assessment: From
      Error Visibility to Structural Similarity", IEEE TIP 2004,
      https://doi.org/10.1109/TIP.2003.819861; scikit-image
      ``structural_similarity``,
      https://scikit-image.org/docs/stable/api/skimage.metrics.html#skimage.metrics.structural_similarity
    """
    fn = "ssim_loss"
    x = _checks.floating(fn, "predictions", predictions)
    y = _checks.floating(fn, "targets", targets)
    _checks.same_shape(fn, ("predictions", x), ("targets", y))
    _checks.rank_at_least(fn, "predictions", x, 3, "[B, *spatial, C]")
    _checks.integer_option(fn, "filter_size", filter_size, allow_none=False)
    if filter_size < 1 or filter_size % 2 == 0:
        _checks._fail(ValueError, _checks.message(fn, "filter_size", "must be an odd int >= 1", filter_size))
    for name, value in (("max_value", max_value), ("filter_sigma", filter_sigma), ("k1", k1), ("k2", k2)):
        _checks.in_range(fn, name, value, low=0.0, low_open=True)
    axis = _channel_axis(fn, channel_axis, x.ndim)
    if axis != x.ndim - 1:
        x, y = jnp.moveaxis(x, axis, -1), jnp.moveaxis(y, axis, -1)
    batch, spatial = x.shape[0], x.shape[1:-1]
    if min(spatial) < filter_size:
        _checks._fail(ValueError, _checks.message(
            fn, "predictions", f"must have every spatial side >= filter_size={filter_size}",
            f"spatial shape {tuple(spatial)}"))
    dtype = _numerics.compute_dtype(x, y)
    example = None
    if where is not None:
        example = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), (batch,),
                                        "the per-image shape [B]")
        image_mask = example.reshape((batch,) + (1,) * (x.ndim - 1))
        x, y = _numerics.mask_inputs(image_mask, x.astype(dtype)), _numerics.mask_inputs(image_mask, y.astype(dtype))
    x, y = x.astype(dtype), y.astype(dtype)
    radius = filter_size // 2
    offsets = jnp.arange(-radius, radius + 1, dtype=dtype)
    kernel = jnp.exp(-0.5 * jnp.square(offsets / jnp.asarray(filter_sigma, dtype)))
    kernel = kernel / jnp.sum(kernel)

    def blur(z: Array) -> Array:
        # Separable Gaussian, "valid" region only: what scikit-image keeps after cropping its border.
        for a in range(1, z.ndim - 1):
            n = z.shape[a] - filter_size + 1
            z = cast(Array, sum(kernel[k] * jax.lax.slice_in_dim(z, k, k + n, axis=a) for k in range(filter_size)))
        return z

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    c1 = jnp.square(jnp.asarray(k1, dtype) * jnp.asarray(max_value, dtype))
    c2 = jnp.square(jnp.asarray(k2, dtype) * jnp.asarray(max_value, dtype))
    numerator = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
    ssim_map = numerator / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    values = 1.0 - jnp.mean(ssim_map.reshape(batch, math.prod(ssim_map.shape[1:])), axis=1)
    return reduce_values(values, reduction=reduction, weights=weights, where=example, fn=fn)


# ------------------------------------------------------------------- Lovasz
def _lovasz_extension(errors: Array, fg: Array, pix: Array | None, hinge: bool) -> Array:
    """Lovasz extension of the Jaccard loss, per group and class.

    ``errors``, ``fg``: ``[G, N, K]`` (``fg`` already 0 at masked pixels),
    ``pix``: ``[G, N, 1]`` float pixel mask or ``None``. Returns ``[G, K]``:
    ``sum_j e_(j) * (J_j - J_{j-1})`` over the errors sorted in decreasing
    order, ``J_j`` the Jaccard loss of predicting the ``j`` largest errors
    wrong (Berman et al., Alg. 1). Masked pixels sort last and count nowhere.
    """
    key = jax.lax.stop_gradient(errors)
    if pix is not None:
        key = jnp.where(pix > 0, key, jnp.asarray(-jnp.inf, key.dtype))
    order = jnp.argsort(key, axis=1, descending=True, stable=True)
    errors_sorted = jnp.take_along_axis(errors, order, axis=1)
    fg_sorted = jnp.take_along_axis(fg, order, axis=1)
    if pix is None:
        kept_sorted = jnp.ones_like(fg_sorted)
    else:
        kept_sorted = jnp.take_along_axis(jnp.broadcast_to(pix, fg.shape), order, axis=1)
    total = jnp.sum(fg_sorted, axis=1, keepdims=True)
    intersection = total - jnp.cumsum(fg_sorted, axis=1)
    union = total + jnp.cumsum((1.0 - fg_sorted) * kept_sorted, axis=1)
    jaccard = 1.0 - _numerics.safe_div(intersection, union)
    previous = jnp.concatenate([jnp.zeros_like(jaccard[:, :1]), jaccard[:, :-1]], axis=1)
    grad = jaccard - previous
    contribution = jax.nn.relu(errors_sorted) if hinge else errors_sorted
    return jnp.sum(contribution * kept_sorted * grad, axis=1)


@_registry.builtin(tags=("segmentation",), labels="binary")
def lovasz_hinge_loss(logits: ArrayLike, labels: ArrayLike, *, per_image: bool = True,
                      reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                      where: ArrayLike | None = None) -> Array:
    r"""Binary Lovasz hinge loss: a convex surrogate of the Jaccard loss (Berman et al. 2018).

    With signs :math:`s_i = 2 y_i - 1`, hinge errors
    :math:`e_i = 1 - z_i s_i` sorted decreasingly :math:`e_{(1)} \ge e_{(2)} \ge \dots`:

    .. math::

        \ell = \sum_j \max(e_{(j)}, 0)\, \big(\Delta_J(j) - \Delta_J(j-1)\big),
        \qquad \Delta_J(j) = 1 - \frac{P - \sum_{k \le j} y_{(k)}}{P + \sum_{k \le j} (1 - y_{(k)})}

    with :math:`P = \sum_i y_i` and :math:`\Delta_J(0) = 0`: the Lovasz
    extension of the Jaccard loss at the hinge errors. Equals the authors'
    ``lovasz_hinge``; the loss is piecewise linear in the logits.

    Args:
      logits: ``[B, *spatial]`` float logits of the foreground.
      labels: ``[B, *spatial]`` binary labels (0 background, 1 foreground;
        any real dtype; an integer other than 0 or 1 gives NaN).
      per_image: one value per image (default); ``False`` pools all pixels of
        the batch into one image (the value is broadcast to ``[B]``).
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[B]``.
      where: boolean example mask ``[B]`` or pixel mask ``[B, *spatial]``
        (the authors' ``ignore``: masked pixels are removed).

    Returns:
      ``[B]`` per-example values for ``reduction="none"`` (with ``per_image=False``
      the pooled value repeated ``B`` times), else a scalar.

    Raises:
      ValueError: shapes differ, a bad ``where`` shape, rank < 1, or an
        unknown ``reduction``.
      TypeError: non-float ``logits``, non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[2.0, -1.5, 0.5, -3.0]])
      >>> labels = jnp.array([[1, 0, 0, 0]])
      >>> float(jaxloss.lovasz_hinge_loss(logits, labels))  # 1.5 hinge error x Jaccard step 0.5
      0.75

    References:
      Berman, Rannen Triki and Blaschko, "The Lovasz-Softmax loss: A tractable
      surrogate for the optimization of the intersection-over-union measure
      in neural networks", CVPR 2018, https://arxiv.org/abs/1705.08790;
      reference code https://github.com/bermanmaxim/LovaszSoftmax
    """
    fn = "lovasz_hinge_loss"
    per_image = _flag(fn, "per_image", per_image)
    z = _checks.floating(fn, "logits", logits)
    _checks.rank_at_least(fn, "logits", z, 1, "[B, *spatial]")
    y = _checks.real(fn, "labels", labels)
    _checks.same_shape(fn, ("logits", z), ("labels", y))
    batch, spatial = z.shape[0], tuple(z.shape[1:])
    dtype = _numerics.compute_dtype(z, y if jnp.issubdtype(y.dtype, jnp.floating) else None)
    pixel, example = _split_where(fn, where, batch, spatial)
    z = _numerics.mask_inputs(pixel, z.astype(dtype))
    if jnp.issubdtype(y.dtype, jnp.floating):
        y = _numerics.mask_inputs(pixel, y.astype(dtype))
    else:
        y = jnp.where(pixel, y, jnp.zeros_like(y)) if pixel is not None else y
        valid = (y == 0) | (y == 1)
        y = jnp.where(valid, y.astype(dtype), jnp.asarray(jnp.nan, dtype))
    groups = batch if per_image else 1
    pixels = math.prod(spatial) * (1 if per_image else batch)   # explicit: a size-0 batch cannot infer -1
    z = z.reshape(groups, pixels, 1)
    y = y.reshape(groups, pixels, 1)
    pix = None if pixel is None else pixel.reshape(groups, pixels, 1).astype(dtype)
    if pix is not None:
        y = y * pix
    errors = 1.0 - z * (2.0 * y - 1.0)
    values = _lovasz_extension(errors, y, pix, hinge=True)[:, 0]
    values = jnp.broadcast_to(values, (batch,))
    return reduce_values(values, reduction=reduction, weights=weights, where=example, fn=fn)


@_registry.builtin(tags=("segmentation",))
def lovasz_softmax_loss(logits: ArrayLike, labels: ArrayLike, *, per_image: bool = True,
                        classes: Literal["present", "all"] = "present", class_weights: ArrayLike | None = None,
                        reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                        where: ArrayLike | None = None) -> Array:
    r"""Multi-class Lovasz-Softmax loss (Berman et al. 2018).

    For each class :math:`c`, the errors :math:`e_{ic} = |g_{ic} - p_{ic}|` of
    the softmax probabilities, sorted decreasingly, enter the Lovasz
    extension of the class's Jaccard loss:

    .. math::

        f_c = \sum_j e_{(j)c} \big(\Delta_{J_c}(j) - \Delta_{J_c}(j-1)\big),
        \qquad \ell = \frac{1}{|\mathcal{C}|} \sum_{c \in \mathcal{C}} w_c f_c

    (:math:`\Delta_J` as in :func:`lovasz_hinge_loss`), :math:`\mathcal{C}`
    the classes present in the example's labels (``classes="present"``, the
    authors' default) or all classes (``"all"``). An example with no class
    present (only possible with a pixel mask or soft labels) gives 0.
    Equals the authors' ``lovasz_softmax`` applied to ``softmax(logits)``.

    Args:
      logits: ``[B, *spatial, C]`` float logits.
      labels: ``[B, *spatial]`` integer class indices, or ``[B, *spatial, C]``
        one-hot labels.
      per_image: one value per image (default); ``False`` (the authors'
        default) pools all pixels of the batch, value broadcast to ``[B]``.
      classes: ``"present"`` or ``"all"``.
      class_weights: ``[C]`` non-negative weights; the value is
        ``mean_c(class_weights[c] * f_c)`` over the classes averaged.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[B]``.
      where: boolean example mask ``[B]`` or pixel mask ``[B, *spatial]``
        (the authors' ``ignore``).

    Returns:
      ``[B]`` per-example values for ``reduction="none"`` (with ``per_image=False``
      the pooled value repeated ``B`` times), else a scalar.

    Raises:
      ValueError: ``labels`` of neither accepted shape, bad ``where`` or
        ``class_weights`` shapes, an unknown ``classes`` or ``reduction``,
        fewer than 2 classes.
      TypeError: non-float ``logits``, non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.array([[[3.0, 0.0], [0.0, 1.0], [2.0, 0.0]]])  # [1, 3, 2]
      >>> labels = jnp.array([[0, 1, 1]])
      >>> round(float(jaxloss.lovasz_softmax_loss(logits, labels)), 4)
      0.5379

    References:
      Berman, Rannen Triki and Blaschko, "The Lovasz-Softmax loss: A tractable
      surrogate for the optimization of the intersection-over-union measure
      in neural networks", CVPR 2018, https://arxiv.org/abs/1705.08790;
      reference code https://github.com/bermanmaxim/LovaszSoftmax
    """
    fn = "lovasz_softmax_loss"
    per_image = _flag(fn, "per_image", per_image)
    _checks.choice(fn, "classes", classes, _LOVASZ_CLASSES)
    prep = _prepare(fn, logits, labels, where, activation="softmax", include_background=True,
                    class_weights=class_weights, pred_name="logits", target_name="labels")
    batch = prep.batch
    # [G, N, C]: one list of pixels per image, or one for the pooled batch (explicit sizes: a size-0
    # batch cannot infer a -1).
    groups, pixels = (batch, math.prod(prep.spatial)) if per_image else (1, batch * math.prod(prep.spatial))
    p = prep.probs.reshape(groups, pixels, prep.probs.shape[-1])
    g = prep.onehot.reshape(groups, pixels, prep.onehot.shape[-1])
    pix = None if prep.pixel is None else prep.pixel.reshape(groups, pixels, 1)
    errors = jnp.abs(g - p)
    per_class = _lovasz_extension(errors, g, pix, hinge=False)     # [G, C]
    if prep.class_weights is not None:
        per_class = per_class * prep.class_weights[None, :]
    if classes == "present":
        # ``~(x <= 0)``: a class whose sum is NaN (an out-of-range label) counts as present, so its
        # NaN reaches the value instead of being dropped as an absent class.
        present = (~(jnp.sum(g, axis=1) <= 0)).astype(per_class.dtype)
        values = _numerics.safe_div(jnp.sum(per_class * present, axis=-1), jnp.sum(present, axis=-1))
    else:
        values = jnp.mean(per_class, axis=-1)
    values = jnp.broadcast_to(values, (batch,))
    return reduce_values(values, reduction=reduction, weights=weights, where=prep.example, fn=fn)


__all__ = [
    "dice_ce_loss",
    "dice_focal_loss",
    "dice_loss",
    "focal_tversky_loss",
    "generalized_dice_loss",
    "hausdorff_dt_loss",
    "jaccard_loss",
    "lovasz_hinge_loss",
    "lovasz_softmax_loss",
    "soft_cldice_loss",
    "ssim_loss",
    "tversky_loss",
]
