"""Segmentation losses: overlap (Dice family) and Lovasz losses, channels last.

Layout, shared by every loss here:

* ``predictions`` (or ``logits``) ``[B, *spatial, C]``: one score per pixel
  and class, batch first, classes last, any number of spatial axes (none,
  ``[H, W]``, ``[D, H, W]``, ...).
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
  ``1 + len(spatial)``, broadcastable). Masked pixels leave every sum (this is
  the segmentation ``ignore_index``: pass ``where=labels != 255``); an example
  whose pixels are all masked leaves the ``"mean"`` denominator. Masked inputs
  never reach values or gradients, even when NaN.

Every sum is taken in at least float32 (float16/bfloat16 inputs are cast
first), so 512x512 images in bfloat16 stay finite.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _checks, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array

_ACTIVATIONS = ("softmax", "sigmoid", None)
_WEIGHT_TYPES = ("square", "simple", "uniform")
_LOVASZ_CLASSES = ("present", "all")


# ------------------------------------------------------------------ helpers
class _Prepared(NamedTuple):
    probs: Array            # [B, N, K] activated predictions, kept classes, masked pixels 0
    onehot: Array           # [B, N, K] targets, kept classes, masked pixels 0
    pixel: Array | None     # [B, N, 1] float pixel mask (1 kept, 0 masked) or None
    example: Array | None   # [B] bool example mask for the reduction, or None
    class_weights: Array | None  # [K] or None
    batch: int


def _flag(fn: str, argument: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        _checks._fail(ValueError, _checks.message(fn, argument, "must be a Python bool", repr(value)))
    return bool(value)


def _split_where(fn: str, where: Any, batch: int, spatial: tuple[int, ...]) -> tuple[Array | None, Array | None]:
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


def _class_weights(fn: str, class_weights: Any, num_classes: int, include_background: bool,
                   dtype: Any) -> Array | None:
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


def _prepare(fn: str, predictions: Any, targets: Any, where: Any, *, activation: Any,
             include_background: Any, class_weights: Any, pred_name: str = "predictions",
             target_name: str = "targets") -> _Prepared:
    """Validates, casts, masks, activates and flattens the inputs of an overlap loss."""
    _checks.choice(fn, "activation", activation, _ACTIVATIONS)
    include_background = _flag(fn, "include_background", include_background)
    pred = _checks.floating(fn, pred_name, predictions)
    _checks.rank_at_least(fn, pred_name, pred, 2, "[B, *spatial, C]")
    shape = pred.shape
    batch, spatial, num_classes = shape[0], tuple(shape[1:-1]), shape[-1]
    if not hasattr(targets, "dtype"):
        targets = np.asarray(targets)
    tdtype = jnp.result_type(targets)
    tshape = jnp.shape(targets)
    integer_targets = tshape == shape[:-1]
    if integer_targets:
        tgt = _checks.integer(fn, target_name, targets)   # class indices: float or bool is a TypeError
    else:
        tgt = _checks.real(fn, target_name, targets)
        if tshape != shape:
            _checks._fail(ValueError, _checks.message(
                fn, target_name, f"must have shape {shape} (one-hot, like {pred_name}) or "
                f"{shape[:-1]} (integer class indices)", f"shape {tshape} of dtype {tdtype}"))
    if activation == "softmax" and num_classes < 2:
        _checks._fail(ValueError, _checks.message(fn, "activation", "'softmax' needs at least 2 classes "
                                                  "(use 'sigmoid' for one channel)", f"{num_classes} class"))
    if not include_background and num_classes < 2:
        _checks._fail(ValueError, _checks.message(fn, "include_background", "False needs at least 2 classes",
                                                  f"{num_classes} class"))
    float_targets = None if integer_targets else tgt
    dtype = _numerics.compute_dtype(pred, float_targets)
    pixel, example = _split_where(fn, where, batch, spatial)
    cw = _class_weights(fn, class_weights, num_classes, include_background, dtype)

    channel_mask = None if pixel is None else pixel[..., None]
    pred = _numerics.mask_inputs(channel_mask, pred.astype(dtype))
    if activation == "softmax":
        probs = jax.nn.softmax(pred, axis=-1)
    elif activation == "sigmoid":
        probs = jax.nn.sigmoid(pred)
    else:
        probs = pred
    if integer_targets:
        labels = tgt if pixel is None else jnp.where(pixel, tgt, jnp.zeros_like(tgt))
        onehot = _numerics.one_hot(labels, num_classes, -1, dtype)
    else:
        onehot = _numerics.mask_inputs(channel_mask, tgt.astype(dtype))
    if not include_background:
        probs, onehot = probs[..., 1:], onehot[..., 1:]
    kept = probs.shape[-1]
    pixels = math.prod(spatial)   # explicit sizes: a size-0 batch cannot infer a -1
    probs = probs.reshape(batch, pixels, kept)
    onehot = onehot.reshape(batch, pixels, kept)
    pix = None
    if pixel is not None:
        pix = pixel.reshape(batch, pixels, 1).astype(dtype)
        probs, onehot = probs * pix, onehot * pix
    return _Prepared(probs, onehot, pix, example, cw, batch)


def _pool(x: Array, batch_dice: bool) -> Array:
    """Sums ``[B, N, K]`` over pixels (and the batch when pooled): ``[B or 1, K]``."""
    total = jnp.sum(x, axis=1)
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
    """Overlap ratio; ``0 / 0`` (an empty class with ``smooth=0``) counts as perfect overlap."""
    return _numerics.safe_div(numerator, denominator, fill=1.0)


def _common_checks(fn: str, smooth: Any, batch_dice: Any) -> bool:
    _checks.in_range(fn, "smooth", smooth, low=0.0)
    return _flag(fn, "batch_dice", batch_dice)


def _tversky_per_class(fn: str, predictions: Any, targets: Any, *, alpha: Any, beta: Any, activation: Any,
                       include_background: Any, smooth: Any, batch_dice: Any, class_weights: Any,
                       where: Any) -> tuple[Array, _Prepared]:
    _checks.in_range(fn, "alpha", alpha, low=0.0)
    _checks.in_range(fn, "beta", beta, low=0.0)
    batch_dice = _common_checks(fn, smooth, batch_dice)
    prep = _prepare(fn, predictions, targets, where, activation=activation,
                    include_background=include_background, class_weights=class_weights)
    p, g = prep.probs, prep.onehot
    m = 1.0 if prep.pixel is None else prep.pixel
    dtype = p.dtype
    tp = _pool(p * g, batch_dice)
    fp = _pool(p * (m - g), batch_dice)          # p (1 - g) over kept pixels
    fn_ = _pool((m - p) * g, batch_dice)         # (1 - p) g over kept pixels
    smooth = jnp.asarray(smooth, dtype)
    index = _ratio(tp + smooth, tp + jnp.asarray(alpha, dtype) * fp + jnp.asarray(beta, dtype) * fn_ + smooth)
    return 1.0 - index, prep


# ------------------------------------------------------------------- losses
@_registry.builtin(tags=("segmentation",))
def dice_loss(predictions: Any, targets: Any, *, activation: str | None = "softmax",
              include_background: bool = True, squared: bool = False, smooth: Any = 1e-5,
              batch_dice: bool = False, class_weights: Any = None, reduction: str = "mean",
              weights: Any = None, where: Any = None) -> Array:
    r"""Soft Dice loss, averaged over classes (MONAI ``DiceLoss``, channels last).

    For class :math:`c` of one example, with probabilities :math:`p` and
    targets :math:`g` summed over the pixels :math:`i`:

    .. math::

        f_c = 1 - \frac{2 \sum_i p_{ic} g_{ic} + s}{\sum_i g_{ic}^{k} + \sum_i p_{ic}^{k} + s},
        \qquad \ell = \frac{1}{K} \sum_{c} w_c f_c

    with :math:`k = 2` if ``squared`` else 1, :math:`s` = ``smooth`` (MONAI's
    ``smooth_nr = smooth_dr``), :math:`w_c` the class weights and :math:`K` the
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
      smooth: added to numerator and denominator, ``>= 0``.
      batch_dice: pool the sums over the whole batch (MONAI ``batch=True``);
        the pooled value is returned broadcast to ``[B]``.
      class_weights: ``[C]`` non-negative weights indexed by class (with
        ``include_background=False`` also ``[C - 1]``, MONAI's layout); the
        example's value is ``mean_c(class_weights[c] * f_c)``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[B]``.
      where: boolean example mask ``[B]`` or pixel mask ``[B, *spatial]``
        (masked pixels leave every sum; see the module docstring).

    Returns:
      ``[B]`` per-example values for ``reduction="none"`` (with ``batch_dice=True``
      the pooled value repeated ``B`` times), else a scalar.

    Raises:
      ValueError: ``targets`` of neither accepted shape, a bad ``where`` or
        ``class_weights`` shape, ``smooth < 0``, an unknown ``activation`` or
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
    batch_dice = _common_checks(fn, smooth, batch_dice)
    prep = _prepare(fn, predictions, targets, where, activation=activation,
                    include_background=include_background, class_weights=class_weights)
    p, g = prep.probs, prep.onehot
    smooth = jnp.asarray(smooth, p.dtype)
    intersection = _pool(p * g, batch_dice)
    if squared:
        denominator = _pool(g * g, batch_dice) + _pool(p * p, batch_dice)
    else:
        denominator = _pool(g, batch_dice) + _pool(p, batch_dice)
    per_class = 1.0 - _ratio(2.0 * intersection + smooth, denominator + smooth)
    values = _class_mean(per_class, prep.class_weights, prep.batch)
    return reduce_values(values, reduction=reduction, weights=weights, where=prep.example, fn=fn)


@_registry.builtin(tags=("segmentation",))
def jaccard_loss(predictions: Any, targets: Any, *, activation: str | None = "softmax",
                 include_background: bool = True, squared: bool = False, smooth: Any = 1e-5,
                 batch_dice: bool = False, class_weights: Any = None, reduction: str = "mean",
                 weights: Any = None, where: Any = None) -> Array:
    r"""Soft Jaccard (IoU) loss, averaged over classes (MONAI ``DiceLoss(jaccard=True)``).

    With :math:`I_c = \sum_i p_{ic} g_{ic}` and
    :math:`S_c = \sum_i g_{ic}^k + \sum_i p_{ic}^k` (:math:`k = 2` if ``squared``):

    .. math::

        f_c = 1 - \frac{2 I_c + s}{2 (S_c - I_c) + s},
        \qquad \ell = \frac{1}{K} \sum_c w_c f_c

    For ``s = 0`` this is :math:`1 - I_c / (S_c - I_c)`, one minus the soft
    intersection over union; the factor 2 places ``smooth`` exactly where
    MONAI does, so the values equal ``monai.losses.DiceLoss(jaccard=True)``.

    Args:
      predictions: ``[B, *spatial, C]`` float scores (logits unless
        ``activation=None``).
      targets: ``[B, *spatial, C]`` one-hot or soft targets, or
        ``[B, *spatial]`` integer class indices.
      activation: ``"softmax"``, ``"sigmoid"`` or ``None``.
      include_background: keep class 0 in the average.
      squared: square ``p`` and ``g`` in the union term (MONAI ``squared_pred``).
      smooth: added to numerator and denominator, ``>= 0``.
      batch_dice: pool the sums over the batch; the value is broadcast to ``[B]``.
      class_weights: ``[C]`` (or ``[C - 1]`` without background) non-negative weights.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[B]``.
      where: boolean example mask ``[B]`` or pixel mask ``[B, *spatial]``.

    Returns:
      ``[B]`` per-example values for ``reduction="none"`` (with ``batch_dice=True``
      the pooled value repeated ``B`` times), else a scalar.

    Raises:
      ValueError: bad shapes of ``targets``, ``where`` or ``class_weights``,
        ``smooth < 0``, an unknown ``activation`` or ``reduction``.
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
    batch_dice = _common_checks(fn, smooth, batch_dice)
    prep = _prepare(fn, predictions, targets, where, activation=activation,
                    include_background=include_background, class_weights=class_weights)
    p, g = prep.probs, prep.onehot
    smooth = jnp.asarray(smooth, p.dtype)
    intersection = _pool(p * g, batch_dice)
    if squared:
        total = _pool(g * g, batch_dice) + _pool(p * p, batch_dice)
    else:
        total = _pool(g, batch_dice) + _pool(p, batch_dice)
    per_class = 1.0 - _ratio(2.0 * intersection + smooth, 2.0 * (total - intersection) + smooth)
    values = _class_mean(per_class, prep.class_weights, prep.batch)
    return reduce_values(values, reduction=reduction, weights=weights, where=prep.example, fn=fn)


@_registry.builtin(tags=("segmentation",))
def tversky_loss(predictions: Any, targets: Any, *, alpha: Any = 0.5, beta: Any = 0.5,
                 activation: str | None = "softmax", include_background: bool = True, smooth: Any = 1e-5,
                 batch_dice: bool = False, class_weights: Any = None, reduction: str = "mean",
                 weights: Any = None, where: Any = None) -> Array:
    r"""Tversky loss, averaged over classes (MONAI ``TverskyLoss``).

    With soft true positives :math:`TP_c = \sum_i p_{ic} g_{ic}`, false
    positives :math:`FP_c = \sum_i p_{ic} (1 - g_{ic})` and false negatives
    :math:`FN_c = \sum_i (1 - p_{ic}) g_{ic}`:

    .. math::

        f_c = 1 - \frac{TP_c + s}{TP_c + \alpha FP_c + \beta FN_c + s},
        \qquad \ell = \frac{1}{K} \sum_c w_c f_c

    ``alpha`` weights false positives and ``beta`` false negatives (Salehi et
    al., MONAI); ``alpha = beta = 0.5`` is a Dice loss, ``alpha = beta = 1``
    a Jaccard loss (up to where ``smooth`` enters).

    Args:
      predictions: ``[B, *spatial, C]`` float scores (logits unless
        ``activation=None``).
      targets: ``[B, *spatial, C]`` one-hot or soft targets, or
        ``[B, *spatial]`` integer class indices.
      alpha: weight of the false positives, ``>= 0``.
      beta: weight of the false negatives, ``>= 0``.
      activation: ``"softmax"``, ``"sigmoid"`` or ``None``.
      include_background: keep class 0 in the average.
      smooth: added to numerator and denominator, ``>= 0``.
      batch_dice: pool the sums over the batch; the value is broadcast to ``[B]``.
      class_weights: ``[C]`` (or ``[C - 1]`` without background) non-negative weights.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[B]``.
      where: boolean example mask ``[B]`` or pixel mask ``[B, *spatial]``.

    Returns:
      ``[B]`` per-example values for ``reduction="none"`` (with ``batch_dice=True``
      the pooled value repeated ``B`` times), else a scalar.

    Raises:
      ValueError: bad shapes of ``targets``, ``where`` or ``class_weights``,
        negative ``alpha``, ``beta`` or ``smooth``, an unknown ``activation``
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
                                         include_background=include_background, smooth=smooth,
                                         batch_dice=batch_dice, class_weights=class_weights, where=where)
    values = _class_mean(per_class, prep.class_weights, prep.batch)
    return reduce_values(values, reduction=reduction, weights=weights, where=prep.example, fn=fn)


@_registry.builtin(tags=("segmentation",))
def focal_tversky_loss(predictions: Any, targets: Any, *, alpha: Any = 0.7, beta: Any = 0.3, gamma: Any = 0.75,
                       activation: str | None = "softmax", include_background: bool = True, smooth: Any = 1e-5,
                       batch_dice: bool = False, class_weights: Any = None, reduction: str = "mean",
                       weights: Any = None, where: Any = None) -> Array:
    r"""Focal Tversky loss: the per-class Tversky loss raised to ``gamma``.

    With :math:`f^{T}_c` the per-class :func:`tversky_loss`:

    .. math::

        f_c = \big(f^{T}_c\big)^{\gamma}
            = \Big(1 - \frac{TP_c + s}{TP_c + \alpha FP_c + \beta FN_c + s}\Big)^{\gamma},
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
      smooth: added to numerator and denominator, ``>= 0``.
      batch_dice: pool the sums over the batch; the value is broadcast to ``[B]``.
      class_weights: ``[C]`` (or ``[C - 1]`` without background) non-negative weights.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[B]``.
      where: boolean example mask ``[B]`` or pixel mask ``[B, *spatial]``.

    Returns:
      ``[B]`` per-example values for ``reduction="none"`` (with ``batch_dice=True``
      the pooled value repeated ``B`` times), else a scalar.

    Raises:
      ValueError: bad shapes of ``targets``, ``where`` or ``class_weights``,
        negative ``alpha``, ``beta``, ``gamma`` or ``smooth``, an unknown
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
                                         include_background=include_background, smooth=smooth,
                                         batch_dice=batch_dice, class_weights=class_weights, where=where)
    per_class = _numerics.safe_pow(jnp.maximum(per_class, 0.0), gamma)
    values = _class_mean(per_class, prep.class_weights, prep.batch)
    return reduce_values(values, reduction=reduction, weights=weights, where=prep.example, fn=fn)


@_registry.builtin(tags=("segmentation",))
def generalized_dice_loss(predictions: Any, targets: Any, *, weight_type: str = "square",
                          activation: str | None = "softmax", include_background: bool = True,
                          smooth: Any = 1e-5, batch_dice: bool = False, class_weights: Any = None,
                          reduction: str = "mean", weights: Any = None, where: Any = None) -> Array:
    r"""Generalised Dice loss (Sudre et al. 2017; MONAI ``GeneralizedDiceLoss``).

    One ratio per example, the classes weighted by the inverse of their
    target volume :math:`G_c = \sum_i g_{ic}`:

    .. math::

        \ell = 1 - \frac{2 \sum_c v_c \sum_i p_{ic} g_{ic} + s}
                        {\sum_c v_c \big(\sum_i g_{ic} + \sum_i p_{ic}\big) + s},
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
      smooth: added to numerator and denominator, ``>= 0``.
      batch_dice: pool the sums (and the weights) over the batch; the value
        is broadcast to ``[B]``.
      class_weights: ``[C]`` (or ``[C - 1]`` without background) non-negative
        factors on the volume weights.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[B]``.
      where: boolean example mask ``[B]`` or pixel mask ``[B, *spatial]``.

    Returns:
      ``[B]`` per-example values for ``reduction="none"`` (with ``batch_dice=True``
      the pooled value repeated ``B`` times), else a scalar.

    Raises:
      ValueError: bad shapes of ``targets``, ``where`` or ``class_weights``,
        ``smooth < 0``, an unknown ``weight_type``, ``activation`` or
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
    batch_dice = _common_checks(fn, smooth, batch_dice)
    prep = _prepare(fn, predictions, targets, where, activation=activation,
                    include_background=include_background, class_weights=class_weights)
    p, g = prep.probs, prep.onehot
    smooth = jnp.asarray(smooth, p.dtype)
    intersection = _pool(p * g, batch_dice)        # [G, K]
    ground = _pool(g, batch_dice)
    denominator = ground + _pool(p, batch_dice)
    if weight_type == "uniform":
        volume_weights = jnp.ones_like(ground)
    else:
        present = ground != 0
        safe_ground = jnp.where(present, ground, jnp.ones_like(ground))
        raw = 1.0 / (safe_ground * safe_ground if weight_type == "square" else safe_ground)
        raw = jnp.where(present, raw, jnp.zeros_like(raw))
        largest = jnp.max(raw, axis=-1, keepdims=True)
        volume_weights = jnp.where(present, raw, jnp.broadcast_to(largest, raw.shape))
    if prep.class_weights is not None:
        volume_weights = volume_weights * prep.class_weights[None, :]
    numerator = 2.0 * jnp.sum(intersection * volume_weights, axis=-1) + smooth
    total = jnp.sum(denominator * volume_weights, axis=-1) + smooth
    values = jnp.broadcast_to(1.0 - _ratio(numerator, total), (prep.batch,))
    return reduce_values(values, reduction=reduction, weights=weights, where=prep.example, fn=fn)


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
def lovasz_hinge_loss(logits: Any, labels: Any, *, per_image: bool = True, reduction: str = "mean",
                      weights: Any = None, where: Any = None) -> Array:
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
def lovasz_softmax_loss(logits: Any, labels: Any, *, per_image: bool = True, classes: str = "present",
                        class_weights: Any = None, reduction: str = "mean", weights: Any = None,
                        where: Any = None) -> Array:
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
    p, g, pix = prep.probs, prep.onehot, prep.pixel
    batch = prep.batch
    if not per_image:
        pooled = p.shape[0] * p.shape[1]
        p = p.reshape(1, pooled, p.shape[-1])
        g = g.reshape(1, pooled, g.shape[-1])
        pix = None if pix is None else pix.reshape(1, pooled, 1)
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
    "dice_loss",
    "focal_tversky_loss",
    "generalized_dice_loss",
    "jaccard_loss",
    "lovasz_hinge_loss",
    "lovasz_softmax_loss",
    "tversky_loss",
]
