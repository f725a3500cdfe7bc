"""Bounding-box losses: ``[..., 4]`` boxes, paired elementwise with broadcasting.

Every loss here takes two arrays of boxes in ``(x1, y1, x2, y2)`` ("xyxy")
format, ``boxes1 [..., 4]`` and ``boxes2 [..., 4]``, whose batch shapes (all
axes but the last) broadcast together; the unreduced values have that
broadcast batch shape. ``giou_loss(boxes1[:, None], boxes2[None],
reduction="none")`` is therefore the ``[N, M]`` pairwise matrix, and
``giou_loss(predictions, targets)`` with equal shapes the matched pairs.

``giou_loss``, ``diou_loss`` and ``ciou_loss`` equal torchvision's
``generalized_box_iou_loss``, ``distance_box_iou_loss`` and
``complete_box_iou_loss`` on valid boxes (``x1 <= x2``, ``y1 <= y2``, positive
area). On degenerate boxes (zero width or height, points, identical boxes, one
inside the other, ``x2 < x1``) every value and gradient stays finite, where
torchvision's CIoU divides by a zero height. A box with ``x2 < x1`` (or
``y2 < y1``) counts as empty: its width (height) is taken as 0 in areas and
aspect ratios, while its corners and centre still enter the distance and
enclosing-box terms, so the gradient still pulls it towards the other box.

``box_convert`` and ``box_iou`` are utilities (not registered losses).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array

_FORMATS = ("xyxy", "xywh", "cxcywh")


# ------------------------------------------------------------------ validation
def _last_axis_four(fn: str, argument: str, x: Array) -> None:
    """``x`` must have rank >= 1 and a last axis of 4 coordinates."""
    _checks.rank_at_least(fn, argument, x, 1, "[..., 4] boxes")
    if x.shape[-1] != 4:
        _checks.assert_with(
            chex.assert_axis_dimension, ValueError,
            _checks.message(fn, argument, "must have shape [..., 4] (4 box coordinates on the last axis)",
                            f"shape {x.shape}"),
            x, -1, 4)


def _broadcast_batch(fn: str, b1: Array, b2: Array) -> tuple[int, ...]:
    """The broadcast of the two batch shapes (all axes but the last), or ``ValueError``."""
    try:
        return tuple(np.broadcast_shapes(b1.shape[:-1], b2.shape[:-1]))
    except ValueError:
        _checks._fail(ValueError, _checks.message(
            fn, "boxes1 and boxes2", "must have batch shapes (all axes but the last) that broadcast together "
            "(use boxes1[:, None] and boxes2[None] for all pairs)", f"{b1.shape} and {b2.shape}"))
        raise  # unreachable: _fail always raises


def _prepare(fn: str, boxes1: ArrayLike, boxes2: ArrayLike, where: ArrayLike | None,
             epsilon: ArrayLike) -> tuple[Array, Array, Array | None, Array]:
    """Validates, casts, broadcasts and masks the inputs of a box loss.

    Returns both boxes broadcast to ``batch + (4,)`` in the compute dtype, with
    masked boxes replaced by the unit box (the first half of the double-where),
    ``where`` broadcast to ``batch``, and ``epsilon`` as a compute-dtype scalar.
    """
    _checks.in_range(fn, "epsilon", epsilon, low=0.0)
    b1 = _checks.floating(fn, "boxes1", boxes1)
    b2 = _checks.floating(fn, "boxes2", boxes2)
    _last_axis_four(fn, "boxes1", b1)
    _last_axis_four(fn, "boxes2", b2)
    batch = _broadcast_batch(fn, b1, b2)
    dtype = _numerics.compute_dtype(b1, b2)
    # Explicit broadcasts: the two batch shapes may differ in rank by design.
    b1 = jnp.broadcast_to(b1.astype(dtype), batch + (4,))
    b2 = jnp.broadcast_to(b2.astype(dtype), batch + (4,))
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), batch,
                                      "the unreduced loss shape")
        # A masked pair becomes two identical unit boxes: every term is finite
        # there, so the masked branch cannot leak NaN into gradients.
        unit = jnp.broadcast_to(jnp.asarray([0.0, 0.0, 1.0, 1.0], dtype), batch + (4,))
        keep = where[..., None]
        b1 = jnp.where(keep, b1, unit)
        b2 = jnp.where(keep, b2, unit)
    return b1, b2, where, jnp.asarray(epsilon, dtype)


# ------------------------------------------------------------------- geometry
class _Geometry(NamedTuple):
    iou: Array          # intersection / (union + eps)
    union: Array        # area1 + area2 - intersection (empty boxes have area 0)
    enclosing_w: Array  # width of the smallest enclosing box (may be < 0 for two inverted boxes)
    enclosing_h: Array
    rho2: Array         # squared distance between the centres
    w1: Array           # raw widths and heights (x2 - x1, y2 - y1; negative for inverted boxes)
    h1: Array
    w2: Array
    h2: Array


def _geometry(b1: Array, b2: Array, eps: Array) -> _Geometry:
    x1, y1, x2, y2 = (b1[..., i] for i in range(4))
    x1g, y1g, x2g, y2g = (b2[..., i] for i in range(4))
    w1, h1, w2, h2 = x2 - x1, y2 - y1, x2g - x1g, y2g - y1g
    zero = jnp.zeros((), b1.dtype)
    # Areas with an inverted side clamped to 0: union >= intersection >= 0, so
    # the IoU stays in [0, 1] and union + eps never reaches 0 for eps > 0.
    area1 = jnp.maximum(w1, zero) * jnp.maximum(h1, zero)
    area2 = jnp.maximum(w2, zero) * jnp.maximum(h2, zero)
    # The intersection is empty unless both of its sides are positive
    # (torchvision masks on xkis2 > xkis1 and ykis2 > ykis1: the same product).
    inter_w = jnp.maximum(jnp.minimum(x2, x2g) - jnp.maximum(x1, x1g), zero)
    inter_h = jnp.maximum(jnp.minimum(y2, y2g) - jnp.maximum(y1, y1g), zero)
    inter = inter_w * inter_h
    union = area1 + area2 - inter
    iou = _numerics.safe_div(inter, union + eps)
    enclosing_w = jnp.maximum(x2, x2g) - jnp.minimum(x1, x1g)
    enclosing_h = jnp.maximum(y2, y2g) - jnp.minimum(y1, y1g)
    # Centres: ((x1 + x2) / 2, (y1 + y2) / 2); the halves are folded into 0.25.
    rho2 = 0.25 * (jnp.square(x1 + x2 - x1g - x2g) + jnp.square(y1 + y2 - y1g - y2g))
    return _Geometry(iou, union, enclosing_w, enclosing_h, rho2, w1, h1, w2, h2)


def _distance_penalty(g: _Geometry, eps: Array) -> Array:
    """``rho^2 / (c^2 + eps)``, ``c`` the diagonal of the enclosing box (DIoU)."""
    diagonal2 = jnp.square(g.enclosing_w) + jnp.square(g.enclosing_h)
    return _numerics.safe_div(g.rho2, diagonal2 + eps)


def _aspect_angle(w: Array, h: Array) -> Array:
    """``arctan(w / h)`` for a box of width ``w`` and height ``h``, made total.

    Widths and heights are clamped at 0 (inverted boxes are empty). For
    ``h > 0`` this is ``arctan(w / h)`` exactly (torchvision's CIoU term);
    ``arctan2(w, h)`` extends it continuously to ``h = 0`` (``pi / 2``, where
    ``w / h`` is ``inf`` and torchvision's gradient is NaN). At ``w = h = 0``
    the angle is undefined; a point counts as a square (``pi / 4``) with zero
    gradient (double-where: ``arctan2``'s derivative divides by
    ``w^2 + h^2``).
    """
    zero = jnp.zeros((), w.dtype)
    w, h = jnp.maximum(w, zero), jnp.maximum(h, zero)
    point = w * w + h * h < jnp.finfo(w.dtype).tiny
    one = jnp.ones_like(w)
    angle = jnp.arctan2(jnp.where(point, one, w), jnp.where(point, one, h))
    return jnp.where(point, jnp.full_like(angle, math.pi / 4), angle)


# ------------------------------------------------------------------ utilities
def box_convert(boxes: ArrayLike, in_fmt: Literal["xyxy", "xywh", "cxcywh"],
                out_fmt: Literal["xyxy", "xywh", "cxcywh"]) -> Array:
    r"""Converts boxes between the ``"xyxy"``, ``"xywh"`` and ``"cxcywh"`` formats.

    * ``"xyxy"``: ``(x1, y1, x2, y2)``, the two corners (top left, bottom right);
    * ``"xywh"``: ``(x1, y1, w, h)``, top-left corner, width and height;
    * ``"cxcywh"``: ``(cx, cy, w, h)``, centre, width and height.

    .. math::

        w = x_2 - x_1, \quad h = y_2 - y_1, \quad
        c_x = \tfrac12 (x_1 + x_2), \quad c_y = \tfrac12 (y_1 + y_2)

    The same formats and formulas as ``torchvision.ops.box_convert``.

    Args:
      boxes: ``[..., 4]`` boxes in ``in_fmt``, any real dtype.
      in_fmt: ``"xyxy"``, ``"xywh"`` or ``"cxcywh"``.
      out_fmt: ``"xyxy"``, ``"xywh"`` or ``"cxcywh"``.

    Returns:
      ``[..., 4]`` boxes in ``out_fmt``: the input's dtype for floating input,
      the default float dtype for integer or bool input.

    Raises:
      ValueError: unknown ``in_fmt`` or ``out_fmt``, or a last axis that is not 4.
      TypeError: complex ``boxes``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> jaxloss.box_convert(jnp.array([1.0, 2.0, 5.0, 8.0]), "xyxy", "cxcywh")
      Array([3., 5., 4., 6.], dtype=float32)
      >>> jaxloss.box_convert(jnp.array([3.0, 5.0, 4.0, 6.0]), "cxcywh", "xywh")
      Array([1., 2., 4., 6.], dtype=float32)

    References:
      torchvision ``box_convert``,
      https://pytorch.org/vision/stable/generated/torchvision.ops.box_convert.html
    """
    fn = "box_convert"
    _checks.choice(fn, "in_fmt", in_fmt, _FORMATS)
    _checks.choice(fn, "out_fmt", out_fmt, _FORMATS)
    boxes = _checks.real(fn, "boxes", boxes)
    _last_axis_four(fn, "boxes", boxes)
    if not jnp.issubdtype(boxes.dtype, jnp.floating):
        boxes = boxes.astype(jnp.result_type(float))
    if in_fmt == out_fmt:
        return boxes
    a, b, c, d = (boxes[..., i] for i in range(4))
    if in_fmt == "xyxy":
        x1, y1, x2, y2 = a, b, c, d
    elif in_fmt == "xywh":
        x1, y1, x2, y2 = a, b, a + c, b + d
    else:  # cxcywh
        x1, y1, x2, y2 = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    if out_fmt == "xyxy":
        out = (x1, y1, x2, y2)
    elif out_fmt == "xywh":
        out = (x1, y1, x2 - x1, y2 - y1)
    else:  # cxcywh
        out = (0.5 * (x1 + x2), 0.5 * (y1 + y2), x2 - x1, y2 - y1)
    return jnp.stack(out, axis=-1)


def box_iou(boxes1: ArrayLike, boxes2: ArrayLike, *, epsilon: ArrayLike = 0.0) -> Array:
    r"""Intersection over union of paired boxes, with broadcasting.

    .. math::

        \mathrm{IoU}(A, B) = \frac{|A \cap B|}{|A \cup B| + \epsilon}

    Boxes are paired elementwise over their batch shapes, which broadcast:
    ``box_iou(boxes1[:, None], boxes2[None])`` is the ``[N, M]`` matrix of
    ``torchvision.ops.box_iou(boxes1, boxes2)``. Where both boxes are empty
    (zero union) and ``epsilon = 0`` the IoU is 0 with zero gradient, not NaN.
    A box with ``x2 < x1`` or ``y2 < y1`` is empty.

    Args:
      boxes1: ``[..., 4]`` boxes in ``"xyxy"`` format, any real dtype.
      boxes2: ``[..., 4]`` boxes in ``"xyxy"`` format, batch shape broadcastable
        with ``boxes1``'s.
      epsilon: added to the union, ``>= 0`` (0, the exact IoU, by default).

    Returns:
      The IoU in ``[0, 1]``, shape the broadcast of the two batch shapes;
      float32 for 16-bit or integer input, else the input's float dtype.

    Raises:
      ValueError: a last axis that is not 4, batch shapes that do not
        broadcast, or ``epsilon < 0``.
      TypeError: complex boxes.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> a = jnp.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
      >>> b = jnp.array([[1.0, 1.0, 3.0, 3.0]])
      >>> jaxloss.box_iou(a, b)  # a[i] with b[0]
      Array([0.14285715, 0.        ], dtype=float32)
      >>> jaxloss.box_iou(a[:, None], a[None])  # all pairs
      Array([[1.  , 0.25],
             [0.25, 1.  ]], dtype=float32)

    References:
      Jaccard, "The distribution of the flora in the alpine zone", New
      Phytologist, 1912, https://doi.org/10.1111/j.1469-8137.1912.tb05611.x;
      torchvision ``box_iou``,
      https://pytorch.org/vision/stable/generated/torchvision.ops.box_iou.html
    """
    fn = "box_iou"
    _checks.in_range(fn, "epsilon", epsilon, low=0.0)
    b1 = _checks.real(fn, "boxes1", boxes1)
    b2 = _checks.real(fn, "boxes2", boxes2)
    _last_axis_four(fn, "boxes1", b1)
    _last_axis_four(fn, "boxes2", b2)
    batch = _broadcast_batch(fn, b1, b2)
    dtype = _numerics.compute_dtype(b1, b2)
    b1 = jnp.broadcast_to(b1.astype(dtype), batch + (4,))
    b2 = jnp.broadcast_to(b2.astype(dtype), batch + (4,))
    return _geometry(b1, b2, jnp.asarray(epsilon, dtype)).iou


# --------------------------------------------------------------------- losses
@_registry.builtin(tags=("boxes",))
def iou_loss(boxes1: ArrayLike, boxes2: ArrayLike, *, epsilon: ArrayLike = 1e-7,
             reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
             where: ArrayLike | None = None) -> Array:
    r"""IoU loss: one minus the intersection over union of paired boxes.

    .. math::

        \ell = 1 - \mathrm{IoU}, \qquad
        \mathrm{IoU} = \frac{|B_1 \cap B_2|}{|B_1 \cup B_2| + \epsilon}

    The linear IoU loss of Rezatofighi et al. (UnitBox uses ``-log IoU``). It
    is in ``[0, 1]`` and its gradient vanishes for disjoint boxes; see
    :func:`giou_loss`, :func:`diou_loss` for losses that do not.

    Args:
      boxes1: ``[..., 4]`` float boxes in ``"xyxy"`` format (e.g. predictions).
      boxes2: ``[..., 4]`` float boxes in ``"xyxy"`` format (e.g. targets); the
        batch shapes of ``boxes1`` and ``boxes2`` (all axes but the last)
        broadcast together.
      epsilon: added to the union, ``>= 0``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to the unreduced shape.
      where: boolean mask broadcastable to the unreduced shape.

    Returns:
      For ``reduction="none"`` one value per pair, shape the broadcast of the
      two batch shapes (``[N, M]`` for ``boxes1[:, None]`` and ``boxes2[None]``);
      else a scalar.

    Raises:
      ValueError: a last axis that is not 4, batch shapes that do not
        broadcast, ``epsilon < 0``, or an unknown ``reduction``.
      TypeError: non-float boxes.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
      >>> t = jnp.array([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 2.0]])
      >>> jaxloss.iou_loss(p, t, reduction="none")
      Array([0.85714287, 0.5       ], dtype=float32)

    References:
      Yu, Jiang, Wang, Cao and Huang, "UnitBox: An Advanced Object Detection
      Network", ACM Multimedia 2016, https://arxiv.org/abs/1608.01471;
      Rezatofighi, Tsoi, Gwak, Sadeghian, Reid and Savarese, "Generalized
      Intersection over Union: A Metric and A Loss for Bounding Box
      Regression", CVPR 2019, https://arxiv.org/abs/1902.09630
    """
    b1, b2, where, eps = _prepare("iou_loss", boxes1, boxes2, where, epsilon)
    g = _geometry(b1, b2, eps)
    return reduce_values(1.0 - g.iou, reduction=reduction, weights=weights, where=where, fn="iou_loss")


@_registry.builtin(tags=("boxes",))
def giou_loss(boxes1: ArrayLike, boxes2: ArrayLike, *, epsilon: ArrayLike = 1e-7,
              reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
              where: ArrayLike | None = None) -> Array:
    r"""Generalized IoU loss (torchvision ``generalized_box_iou_loss``).

    .. math::

        \ell = 1 - \mathrm{IoU} + \frac{|C| - |B_1 \cup B_2|}{|C| + \epsilon}

    with :math:`C` the smallest box enclosing both and
    :math:`\mathrm{IoU} = |B_1 \cap B_2| / (|B_1 \cup B_2| + \epsilon)`.
    In ``[0, 2)``: 0 for identical boxes, above 1 for disjoint ones, and its
    gradient does not vanish when the boxes do not overlap.

    Args:
      boxes1: ``[..., 4]`` float boxes in ``"xyxy"`` format (e.g. predictions).
      boxes2: ``[..., 4]`` float boxes in ``"xyxy"`` format (e.g. targets); the
        batch shapes of ``boxes1`` and ``boxes2`` (all axes but the last)
        broadcast together.
      epsilon: added to the union and to the enclosing area, ``>= 0``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to the unreduced shape.
      where: boolean mask broadcastable to the unreduced shape.

    Returns:
      For ``reduction="none"`` one value per pair, shape the broadcast of the
      two batch shapes; else a scalar.

    Raises:
      ValueError: a last axis that is not 4, batch shapes that do not
        broadcast, ``epsilon < 0``, or an unknown ``reduction``.
      TypeError: non-float boxes.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
      >>> t = jnp.array([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0]])
      >>> jaxloss.giou_loss(p, t, reduction="none")
      Array([1.0793651, 1.3333334], dtype=float32)

    References:
      Rezatofighi, Tsoi, Gwak, Sadeghian, Reid and Savarese, "Generalized
      Intersection over Union: A Metric and A Loss for Bounding Box
      Regression", CVPR 2019, https://arxiv.org/abs/1902.09630;
      torchvision ``generalized_box_iou_loss``,
      https://pytorch.org/vision/stable/generated/torchvision.ops.generalized_box_iou_loss.html
    """
    b1, b2, where, eps = _prepare("giou_loss", boxes1, boxes2, where, epsilon)
    g = _geometry(b1, b2, eps)
    zero = jnp.zeros((), b1.dtype)
    # Clamped sides: the enclosing area of two inverted boxes is 0, not negative.
    area_c = jnp.maximum(g.enclosing_w, zero) * jnp.maximum(g.enclosing_h, zero)
    values = 1.0 - g.iou + _numerics.safe_div(area_c - g.union, area_c + eps)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn="giou_loss")


@_registry.builtin(tags=("boxes",))
def diou_loss(boxes1: ArrayLike, boxes2: ArrayLike, *, epsilon: ArrayLike = 1e-7,
              reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
              where: ArrayLike | None = None) -> Array:
    r"""Distance IoU loss (torchvision ``distance_box_iou_loss``).

    .. math::

        \ell = 1 - \mathrm{IoU} + \frac{\rho^2}{c^2 + \epsilon}

    with :math:`\rho` the distance between the box centres, :math:`c` the
    diagonal of the smallest box enclosing both and
    :math:`\mathrm{IoU} = |B_1 \cap B_2| / (|B_1 \cup B_2| + \epsilon)`.
    In ``[0, 2)``; the distance term keeps pulling disjoint boxes together.

    Args:
      boxes1: ``[..., 4]`` float boxes in ``"xyxy"`` format (e.g. predictions).
      boxes2: ``[..., 4]`` float boxes in ``"xyxy"`` format (e.g. targets); the
        batch shapes of ``boxes1`` and ``boxes2`` (all axes but the last)
        broadcast together.
      epsilon: added to the union and to the squared diagonal, ``>= 0``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to the unreduced shape.
      where: boolean mask broadcastable to the unreduced shape.

    Returns:
      For ``reduction="none"`` one value per pair, shape the broadcast of the
      two batch shapes; else a scalar.

    Raises:
      ValueError: a last axis that is not 4, batch shapes that do not
        broadcast, ``epsilon < 0``, or an unknown ``reduction``.
      TypeError: non-float boxes.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
      >>> t = jnp.array([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0]])
      >>> jaxloss.diou_loss(p, t, reduction="none")
      Array([0.96825397, 1.4       ], dtype=float32)

    References:
      Zheng, Wang, Liu, Li, Ye and Ren, "Distance-IoU Loss: Faster and Better
      Learning for Bounding Box Regression", AAAI 2020,
      https://arxiv.org/abs/1911.08287; torchvision ``distance_box_iou_loss``,
      https://pytorch.org/vision/stable/generated/torchvision.ops.distance_box_iou_loss.html
    """
    b1, b2, where, eps = _prepare("diou_loss", boxes1, boxes2, where, epsilon)
    g = _geometry(b1, b2, eps)
    values = 1.0 - g.iou + _distance_penalty(g, eps)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn="diou_loss")


@_registry.builtin(tags=("boxes",))
def ciou_loss(boxes1: ArrayLike, boxes2: ArrayLike, *, epsilon: ArrayLike = 1e-7,
              reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
              where: ArrayLike | None = None) -> Array:
    r"""Complete IoU loss (torchvision ``complete_box_iou_loss``).

    .. math::

        \ell = 1 - \mathrm{IoU} + \frac{\rho^2}{c^2 + \epsilon} + \alpha v,
        \qquad v = \frac{4}{\pi^2}\Big(\arctan\frac{w_2}{h_2}
                   - \arctan\frac{w_1}{h_1}\Big)^2,
        \qquad \alpha = \frac{v}{1 - \mathrm{IoU} + v + \epsilon}

    the DIoU loss (:func:`diou_loss`) plus an aspect-ratio term. As in the
    paper's reference code and torchvision, :math:`\alpha` is a trade-off
    weight held constant in the gradient (``stop_gradient``), so the gradient
    is that of :math:`1 - \mathrm{IoU} + \rho^2 / (c^2 + \epsilon) + \alpha v`
    at fixed :math:`\alpha`, not the full derivative of the value.

    ``arctan(w / h)`` is evaluated as ``arctan2(w, h)``: equal for ``h > 0``,
    and ``pi / 2`` with a finite gradient at ``h = 0`` (torchvision gives NaN).
    A box of zero width and height counts as a square (angle ``pi / 4``,
    zero gradient through the angle).

    Args:
      boxes1: ``[..., 4]`` float boxes in ``"xyxy"`` format (e.g. predictions).
      boxes2: ``[..., 4]`` float boxes in ``"xyxy"`` format (e.g. targets); the
        batch shapes of ``boxes1`` and ``boxes2`` (all axes but the last)
        broadcast together.
      epsilon: added to the union, the squared diagonal and the denominator
        of :math:`\alpha`, ``>= 0``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to the unreduced shape.
      where: boolean mask broadcastable to the unreduced shape.

    Returns:
      For ``reduction="none"`` one value per pair, shape the broadcast of the
      two batch shapes; else a scalar.

    Raises:
      ValueError: a last axis that is not 4, batch shapes that do not
        broadcast, ``epsilon < 0``, or an unknown ``reduction``.
      TypeError: non-float boxes.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 3.0]])
      >>> t = jnp.array([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 3.0, 1.0]])
      >>> jaxloss.ciou_loss(p, t, reduction="none")
      Array([0.96825397, 1.016857  ], dtype=float32)

    References:
      Zheng, Wang, Liu, Li, Ye and Ren, "Distance-IoU Loss: Faster and Better
      Learning for Bounding Box Regression", AAAI 2020,
      https://arxiv.org/abs/1911.08287; torchvision ``complete_box_iou_loss``,
      https://pytorch.org/vision/stable/generated/torchvision.ops.complete_box_iou_loss.html
    """
    b1, b2, where, eps = _prepare("ciou_loss", boxes1, boxes2, where, epsilon)
    g = _geometry(b1, b2, eps)
    v = (4.0 / math.pi ** 2) * jnp.square(_aspect_angle(g.w2, g.h2) - _aspect_angle(g.w1, g.h1))
    # 1 - IoU >= 0 and v >= 0, so the denominator is >= eps; safe_div covers eps = 0.
    alpha = jax.lax.stop_gradient(_numerics.safe_div(v, 1.0 - g.iou + v + eps))
    values = 1.0 - g.iou + _distance_penalty(g, eps) + alpha * v
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn="ciou_loss")


@_registry.builtin(tags=("boxes",))
def eiou_loss(boxes1: ArrayLike, boxes2: ArrayLike, *, epsilon: ArrayLike = 1e-7,
              reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
              where: ArrayLike | None = None) -> Array:
    r"""Efficient IoU loss (Zhang et al.): DIoU plus width and height penalties.

    .. math::

        \ell = 1 - \mathrm{IoU} + \frac{\rho^2}{c_w^2 + c_h^2 + \epsilon}
               + \frac{(w_1 - w_2)^2}{c_w^2 + \epsilon}
               + \frac{(h_1 - h_2)^2}{c_h^2 + \epsilon}

    with :math:`\rho` the distance between the box centres, :math:`c_w, c_h`
    the width and height of the smallest box enclosing both, :math:`w, h` the
    box widths and heights and
    :math:`\mathrm{IoU} = |B_1 \cap B_2| / (|B_1 \cup B_2| + \epsilon)`.
    Unlike CIoU's aspect-ratio term, the width and height terms vanish only
    when the sizes match, and their gradient is the plain derivative. (The
    paper's Focal-EIoU multiplies this by ``IoU ** gamma``.)

    Args:
      boxes1: ``[..., 4]`` float boxes in ``"xyxy"`` format (e.g. predictions).
      boxes2: ``[..., 4]`` float boxes in ``"xyxy"`` format (e.g. targets); the
        batch shapes of ``boxes1`` and ``boxes2`` (all axes but the last)
        broadcast together.
      epsilon: added to the union and to each penalty's denominator, ``>= 0``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to the unreduced shape.
      where: boolean mask broadcastable to the unreduced shape.

    Returns:
      For ``reduction="none"`` one value per pair, shape the broadcast of the
      two batch shapes; else a scalar.

    Raises:
      ValueError: a last axis that is not 4, batch shapes that do not
        broadcast, ``epsilon < 0``, or an unknown ``reduction``.
      TypeError: non-float boxes.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> p = jnp.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 3.0]])
      >>> t = jnp.array([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 3.0, 1.0]])
      >>> jaxloss.eiou_loss(p, t, reduction="none")
      Array([0.96825397, 1.8       ], dtype=float32)

    References:
      Zhang, Ren, Zhang, Jia, Wang and Tan, "Focal and Efficient IOU Loss for
      Accurate Bounding Box Regression", Neurocomputing 506, 2022 (arXiv 2021),
      https://arxiv.org/abs/2101.08158
    """
    b1, b2, where, eps = _prepare("eiou_loss", boxes1, boxes2, where, epsilon)
    g = _geometry(b1, b2, eps)
    cw2, ch2 = jnp.square(g.enclosing_w), jnp.square(g.enclosing_h)
    values = (1.0 - g.iou + _distance_penalty(g, eps)
              + _numerics.safe_div(jnp.square(g.w1 - g.w2), cw2 + eps)
              + _numerics.safe_div(jnp.square(g.h1 - g.h2), ch2 + eps))
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn="eiou_loss")
