"""Reference tests for ``jaxloss.boxes``.

References, none computed with our code:

* torchvision's ``generalized_box_iou_loss``, ``distance_box_iou_loss``
  (``_diou_iou_loss``), ``complete_box_iou_loss`` and ``box_iou``
  (https://github.com/pytorch/vision/tree/main/torchvision/ops), transcribed
  formula by formula into NumPy below (torchvision is not installable here);
* the EIoU formula of Zhang et al., "Focal and Efficient IOU Loss for Accurate
  Bounding Box Regression", 2021, https://arxiv.org/abs/2101.08158, eq. (9);
* closed forms worked out by hand in each test;
* torch autograd on the same torchvision formulas, when torch is installed.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxloss import boxes as B
from jaxloss.testing import check_loss
from tests.specs.boxes import random_box_pairs

LOSSES = {
    "iou_loss": B.iou_loss,
    "giou_loss": B.giou_loss,
    "diou_loss": B.diou_loss,
    "ciou_loss": B.ciou_loss,
    "eiou_loss": B.eiou_loss,
}
EPS = 1e-7


# ------------------------------------------------------- NumPy references
def _unpack(b):
    return [b[..., i] for i in range(4)]


def _tv_inter_union(b1, b2):
    """torchvision.ops._utils._loss_inter_union: masked intersection, raw areas."""
    x1, y1, x2, y2 = _unpack(b1)
    x1g, y1g, x2g, y2g = _unpack(b2)
    xk1, yk1 = np.maximum(x1, x1g), np.maximum(y1, y1g)
    xk2, yk2 = np.minimum(x2, x2g), np.minimum(y2, y2g)
    mask = (yk2 > yk1) & (xk2 > xk1)
    inter = np.where(mask, (xk2 - xk1) * (yk2 - yk1), 0.0)
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    return inter, union


def _tv_enclosing(b1, b2):
    x1, y1, x2, y2 = _unpack(b1)
    x1g, y1g, x2g, y2g = _unpack(b2)
    return np.minimum(x1, x1g), np.minimum(y1, y1g), np.maximum(x2, x2g), np.maximum(y2, y2g)


def ref_iou_loss(b1, b2, eps=EPS):
    inter, union = _tv_inter_union(b1, b2)
    return 1.0 - inter / (union + eps)


def ref_giou_loss(b1, b2, eps=EPS):
    """torchvision.ops.generalized_box_iou_loss."""
    inter, union = _tv_inter_union(b1, b2)
    iou = inter / (union + eps)
    xc1, yc1, xc2, yc2 = _tv_enclosing(b1, b2)
    area_c = (xc2 - xc1) * (yc2 - yc1)
    return 1.0 - (iou - (area_c - union) / (area_c + eps))


def ref_diou_loss_and_iou(b1, b2, eps=EPS):
    """torchvision.ops.diou_loss._diou_iou_loss."""
    inter, union = _tv_inter_union(b1, b2)
    iou = inter / (union + eps)
    xc1, yc1, xc2, yc2 = _tv_enclosing(b1, b2)
    diag2 = (xc2 - xc1) ** 2 + (yc2 - yc1) ** 2 + eps
    x1, y1, x2, y2 = _unpack(b1)
    x1g, y1g, x2g, y2g = _unpack(b2)
    centers2 = ((x2 + x1) / 2 - (x1g + x2g) / 2) ** 2 + ((y2 + y1) / 2 - (y1g + y2g) / 2) ** 2
    return 1.0 - iou + centers2 / diag2, iou


def ref_diou_loss(b1, b2, eps=EPS):
    return ref_diou_loss_and_iou(b1, b2, eps)[0]


def ref_ciou_terms(b1, b2, eps=EPS):
    """torchvision.ops.complete_box_iou_loss: (diou loss, v, alpha)."""
    diou, iou = ref_diou_loss_and_iou(b1, b2, eps)
    x1, y1, x2, y2 = _unpack(b1)
    x1g, y1g, x2g, y2g = _unpack(b2)
    v = (4 / math.pi ** 2) * (np.arctan((x2g - x1g) / (y2g - y1g)) - np.arctan((x2 - x1) / (y2 - y1))) ** 2
    alpha = v / (1 - iou + v + eps)
    return diou, v, alpha


def ref_ciou_loss(b1, b2, eps=EPS):
    diou, v, alpha = ref_ciou_terms(b1, b2, eps)
    return diou + alpha * v


def ref_eiou_loss(b1, b2, eps=EPS):
    """Zhang et al. 2021, eq. (9): 1 - IoU + rho^2/c^2 + rho^2(w, wg)/Cw^2 + rho^2(h, hg)/Ch^2."""
    diou = ref_diou_loss(b1, b2, eps)
    xc1, yc1, xc2, yc2 = _tv_enclosing(b1, b2)
    x1, y1, x2, y2 = _unpack(b1)
    x1g, y1g, x2g, y2g = _unpack(b2)
    return (diou + ((x2 - x1) - (x2g - x1g)) ** 2 / ((xc2 - xc1) ** 2 + eps)
            + ((y2 - y1) - (y2g - y1g)) ** 2 / ((yc2 - yc1) ** 2 + eps))


def ref_box_iou(b1, b2):
    """torchvision.ops.box_iou: the [N, M] matrix, inter / union."""
    area1 = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
    area2 = (b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1])
    lt = np.maximum(b1[:, None, :2], b2[None, :, :2])
    rb = np.minimum(b1[:, None, 2:], b2[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area1[:, None] + area2[None, :] - inter)


REFERENCES = {
    "iou_loss": ref_iou_loss,
    "giou_loss": ref_giou_loss,
    "diou_loss": ref_diou_loss,
    "ciou_loss": ref_ciou_loss,
    "eiou_loss": ref_eiou_loss,
}


def valid_boxes(rng, n):
    """``n`` valid xyxy boxes (positive width and height), float64."""
    xy = rng.uniform(0.0, 10.0, size=(n, 2))
    wh = rng.uniform(0.2, 5.0, size=(n, 2))
    return np.concatenate([xy, xy + wh], axis=-1)


def mixed_pairs(rng, n=300):
    """Overlapping, disjoint and nested valid pairs."""
    b1 = valid_boxes(rng, n)
    b2 = valid_boxes(rng, n)
    # A third of the pairs: b2 a jittered copy of b1 (large overlap).
    near = b1 + rng.uniform(-0.5, 0.5, size=b1.shape)
    near[:, 2:] = np.maximum(near[:, 2:], near[:, :2] + 0.1)
    b2[: n // 3] = near[: n // 3]
    # Another third: b2 strictly inside b1.
    k = slice(n // 3, 2 * n // 3)
    lo = rng.uniform(0.1, 0.4, size=(n, 2))
    hi = rng.uniform(0.6, 0.9, size=(n, 2))
    wh = b1[:, 2:] - b1[:, :2]
    b2[k] = np.concatenate([b1[:, :2] + lo * wh, b1[:, :2] + hi * wh], axis=-1)[k]
    return b1, b2


# ------------------------------------------------------- reference values
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_matches_reference_float64(name):
    # torchvision formulas (giou/diou/ciou), the linear IoU loss and Zhang et al. (eiou).
    b1, b2 = mixed_pairs(np.random.default_rng(1))
    expected = REFERENCES[name](b1, b2)
    with jax.enable_x64(True):
        got = LOSSES[name](jnp.asarray(b1), jnp.asarray(b2), reduction="none")
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12, atol=1e-12)
        mean = LOSSES[name](jnp.asarray(b1), jnp.asarray(b2))
        np.testing.assert_allclose(float(mean), expected.mean(), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_matches_reference_float32_relative_1e5(name):
    b1, b2 = mixed_pairs(np.random.default_rng(2))
    expected = REFERENCES[name](b1, b2)
    got = LOSSES[name](b1.astype(np.float32), b2.astype(np.float32), reduction="none")
    assert got.dtype == jnp.float32
    # float32 inputs: compare with the float64 reference on the same (rounded) boxes.
    expected32 = REFERENCES[name](b1.astype(np.float32).astype(np.float64),
                                  b2.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(np.asarray(got), expected32, rtol=1e-5, atol=0)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_symmetric(name):
    # All five losses are symmetric in their two arguments (torchvision says so for its three).
    b1, b2 = mixed_pairs(np.random.default_rng(3))   # the shape of the float32 test: no new compiles
    np.testing.assert_allclose(LOSSES[name](b1, b2, reduction="none"), LOSSES[name](b2, b1, reduction="none"),
                               rtol=1e-6, atol=1e-7)


def test_worked_example_two_offset_squares():
    # [0,0,2,2] and [1,1,3,3]: intersection 1, union 7, enclosing 3x3 (area 9,
    # squared diagonal 18), centres (1,1) and (2,2) so rho^2 = 2; same aspect so v = 0.
    a = np.array([0.0, 0.0, 2.0, 2.0])
    b = np.array([1.0, 1.0, 3.0, 3.0])
    with jax.enable_x64(True):
        a, b = jnp.asarray(a), jnp.asarray(b)
        np.testing.assert_allclose(B.box_iou(a, b), 1 / 7, rtol=1e-12)
        np.testing.assert_allclose(B.iou_loss(a, b, epsilon=0.0), 6 / 7, rtol=1e-12)
        np.testing.assert_allclose(B.giou_loss(a, b, epsilon=0.0), 1 - 1 / 7 + 2 / 9, rtol=1e-12)
        np.testing.assert_allclose(B.diou_loss(a, b, epsilon=0.0), 1 - 1 / 7 + 2 / 18, rtol=1e-12)
        np.testing.assert_allclose(B.ciou_loss(a, b, epsilon=0.0), 1 - 1 / 7 + 2 / 18, rtol=1e-12)
        # EIoU: equal widths and heights, so it equals DIoU.
        np.testing.assert_allclose(B.eiou_loss(a, b, epsilon=0.0), 1 - 1 / 7 + 2 / 18, rtol=1e-12)


def test_worked_example_crossed_rectangles():
    # [0,0,1,3] (w=1, h=3) and [0,0,3,1] (w=3, h=1): IoU 1/5, enclosing 3x3, rho^2 = 2.
    a = np.array([0.0, 0.0, 1.0, 3.0])
    b = np.array([0.0, 0.0, 3.0, 1.0])
    v = 4 / math.pi ** 2 * (math.atan(3.0) - math.atan(1 / 3)) ** 2
    alpha = v / (1 - 0.2 + v)
    with jax.enable_x64(True):
        a, b = jnp.asarray(a), jnp.asarray(b)
        np.testing.assert_allclose(B.giou_loss(a, b, epsilon=0.0), 1 - 0.2 + (9 - 5) / 9, rtol=1e-12)
        np.testing.assert_allclose(B.ciou_loss(a, b, epsilon=0.0), 1 - 0.2 + 2 / 18 + alpha * v, rtol=1e-12)
        np.testing.assert_allclose(B.eiou_loss(a, b, epsilon=0.0), 1 - 0.2 + 2 / 18 + 4 / 9 + 4 / 9, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_identical_boxes_give_zero(name):
    b = valid_boxes(np.random.default_rng(4), 300)   # the shape of the float64 test: no new compiles
    with jax.enable_x64(True):
        np.testing.assert_allclose(LOSSES[name](b, b, epsilon=0.0, reduction="none"), 0.0, atol=1e-14)
        # With the default epsilon every penalty is 0 and 1 - IoU = 1 - area / (area + eps).
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        np.testing.assert_allclose(LOSSES[name](b, b, reduction="none"), EPS / (area + EPS), rtol=1e-6)


def test_disjoint_boxes():
    # Disjoint boxes: IoU 0, so the IoU loss is exactly 1 and GIoU/DIoU/CIoU/EIoU exceed 1
    # (Rezatofighi et al. 2019: GIoU in (-1, 1], loss in [0, 2)).
    rng = np.random.default_rng(5)
    b1 = valid_boxes(rng, 300)                        # the shape of the float32 test: no new compiles
    shift = np.where(rng.uniform(size=(300, 1)) < 0.5, [[6.0, 0.0, 6.0, 0.0]], [[0.0, 6.0, 0.0, 6.0]])
    b2 = b1 + shift  # boxes are at most 5 wide: shifted by 6, never overlapping
    np.testing.assert_array_equal(B.iou_loss(b1, b2, reduction="none"), 1.0)
    for name in ("giou_loss", "diou_loss", "ciou_loss", "eiou_loss"):
        values = np.asarray(LOSSES[name](b1, b2, reduction="none"))
        assert np.all(values > 1.0) and np.all(values < 2.0 if name != "eiou_loss" else values < 4.0), name


def test_nested_boxes():
    # b inside a: IoU = |b| / |a|, the enclosing box is a, so GIoU's penalty is 0;
    # concentric and of equal aspect, DIoU and CIoU equal the IoU loss.
    a = np.array([0.0, 0.0, 4.0, 4.0])
    b = np.array([1.0, 1.0, 3.0, 3.0])
    with jax.enable_x64(True):
        a, b = jnp.asarray(a), jnp.asarray(b)
        for name in ("iou_loss", "giou_loss", "diou_loss", "ciou_loss"):
            np.testing.assert_allclose(LOSSES[name](a, b, epsilon=0.0), 1 - 4 / 16, rtol=1e-12, err_msg=name)
        # EIoU adds (4 - 2)^2 / 4^2 for the width and for the height.
        np.testing.assert_allclose(B.eiou_loss(a, b, epsilon=0.0), 0.75 + 2 * 4 / 16, rtol=1e-12)


def test_zero_height_box_ciou_closed_form():
    # [0,0,2,0] (h = 0) against [0,0,2,2]: IoU 0, rho^2 = 1, c^2 = 8. torchvision's
    # arctan(w / h) is arctan(inf) = pi/2 here (and its gradient NaN); ours is arctan2(2, 0) = pi/2,
    # so v = 4/pi^2 (pi/4)^2 = 1/4 and alpha = 0.25 / 1.25 = 0.2.
    a = np.array([0.0, 0.0, 2.0, 0.0])
    b = np.array([0.0, 0.0, 2.0, 2.0])
    with jax.enable_x64(True):
        a, b = jnp.asarray(a), jnp.asarray(b)
        np.testing.assert_allclose(B.ciou_loss(a, b, epsilon=0.0), 1 + 1 / 8 + 0.2 * 0.25, rtol=1e-12)
        grads = jax.jit(jax.grad(B.ciou_loss, argnums=(0, 1)))(a, b)   # one program, not one per primitive
        assert all(np.all(np.isfinite(g)) for g in grads)


# ------------------------------------------------------------ broadcasting
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_pairwise_broadcasting(name):
    rng = np.random.default_rng(6)
    b1, b2 = valid_boxes(rng, 5), valid_boxes(rng, 3)
    fn = LOSSES[name]
    matrix = fn(b1[:, None], b2[None], reduction="none")
    assert matrix.shape == (5, 3)
    single = jax.jit(lambda a, b: fn(a, b, reduction="none"))
    loop = np.array([[float(single(b1[i], b2[j])) for j in range(3)] for i in range(5)])
    np.testing.assert_allclose(matrix, loop, rtol=1e-6)
    np.testing.assert_allclose(matrix, REFERENCES[name](b1[:, None], b2[None]), rtol=1e-5, atol=1e-6)
    # Different ranks broadcast too: one box against many.
    np.testing.assert_allclose(fn(b1, b2[0], reduction="none"), matrix[:, 0], rtol=1e-6)
    # weights and where broadcast to the [N, M] unreduced shape.
    w = rng.uniform(0.5, 2.0, size=(3,)).astype(np.float32)
    keep = rng.uniform(size=(5, 3)) < 0.6
    got = fn(b1[:, None], b2[None], weights=w, where=keep)
    expected = (np.asarray(matrix) * w * keep).sum() / (np.broadcast_to(w, (5, 3)) * keep).sum()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_box_iou_pairwise_matches_torchvision_box_iou():
    rng = np.random.default_rng(7)
    b1, b2 = valid_boxes(rng, 7), valid_boxes(rng, 4)
    b2[0] = b1[0]
    with jax.enable_x64(True):
        got = jax.jit(B.box_iou)(jnp.asarray(b1)[:, None], jnp.asarray(b2)[None])   # one program
        assert got.shape == (7, 4)
        np.testing.assert_allclose(got, ref_box_iou(b1, b2), rtol=1e-12, atol=1e-15)
    # Integer boxes are accepted by the utility and give float32.
    ints = np.array([[0, 0, 2, 2]], np.int32)
    out = jax.jit(B.box_iou)(ints, np.array([[1, 1, 3, 3]], np.int32))
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, [1 / 7], rtol=1e-6)


def test_batch_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"jaxloss\.giou_loss: boxes1 and boxes2 must have batch shapes"):
        B.giou_loss(np.zeros((3, 4), np.float32), np.zeros((5, 4), np.float32))


# -------------------------------------------------------------- box_convert
FORMATS = ("xyxy", "xywh", "cxcywh")


@pytest.mark.parametrize("in_fmt", FORMATS)
@pytest.mark.parametrize("out_fmt", FORMATS)
def test_box_convert_round_trip(in_fmt, out_fmt):
    rng = np.random.default_rng(8)
    xyxy = valid_boxes(rng, 10).reshape(2, 5, 4)
    with jax.enable_x64(True):
        start = B.box_convert(jnp.asarray(xyxy), "xyxy", in_fmt)
        there = B.box_convert(start, in_fmt, out_fmt)
        back = B.box_convert(there, out_fmt, in_fmt)
        assert there.shape == (2, 5, 4)
        np.testing.assert_allclose(back, start, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(B.box_convert(there, out_fmt, "xyxy"), xyxy, rtol=1e-12, atol=1e-12)


def test_box_convert_known_values():
    # torchvision.ops.box_convert definitions: xywh = (x1, y1, w, h), cxcywh = (cx, cy, w, h).
    xyxy = np.array([1.0, 2.0, 5.0, 8.0], np.float32)
    np.testing.assert_array_equal(B.box_convert(xyxy, "xyxy", "xywh"), [1.0, 2.0, 4.0, 6.0])
    np.testing.assert_array_equal(B.box_convert(xyxy, "xyxy", "cxcywh"), [3.0, 5.0, 4.0, 6.0])
    np.testing.assert_array_equal(B.box_convert(np.array([3.0, 5.0, 4.0, 6.0]), "cxcywh", "xyxy"), xyxy)
    assert B.box_convert(jnp.asarray(xyxy, jnp.bfloat16), "xyxy", "cxcywh").dtype == jnp.bfloat16
    ints = B.box_convert(np.array([1, 2, 5, 8], np.int32), "xyxy", "cxcywh")
    assert jnp.issubdtype(ints.dtype, jnp.floating)
    np.testing.assert_array_equal(ints, [3.0, 5.0, 4.0, 6.0])


def test_box_convert_is_differentiable():
    # d cx / d x1 = 1/2, d w / d x1 = -1.
    g = jax.jit(jax.grad(lambda b: jnp.sum(B.box_convert(b, "xyxy", "cxcywh") * jnp.array([1.0, 0.0, 1.0, 0.0]))))(
        jnp.array([1.0, 2.0, 5.0, 8.0]))
    np.testing.assert_allclose(g, [-0.5, 0.0, 1.5, 0.0])


@pytest.mark.parametrize("argument", ["in_fmt", "out_fmt"])
def test_box_convert_bad_format(argument):
    kwargs = {"in_fmt": "xyxy", "out_fmt": "cxcywh", argument: "xyhw"}
    with pytest.raises(ValueError, match=rf"jaxloss\.box_convert: {argument} must be one of 'xyxy', 'xywh', "
                                         r"'cxcywh', got 'xyhw'"):
        B.box_convert(np.zeros((2, 4)), **kwargs)


def test_last_axis_not_four_raises():
    with pytest.raises(ValueError, match=r"jaxloss\.box_convert: boxes must have shape \[\.\.\., 4\]"):
        B.box_convert(np.zeros((2, 5)), "xyxy", "xywh")
    with pytest.raises(ValueError, match=r"jaxloss\.box_iou: boxes2 must have shape \[\.\.\., 4\]"):
        B.box_iou(np.zeros((2, 4)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"jaxloss\.box_iou: boxes1 must have rank >= 1"):
        B.box_iou(np.zeros(()), np.zeros((2, 4)))
    for name, fn in LOSSES.items():
        with pytest.raises(ValueError, match=rf"jaxloss\.{name}: boxes2 must have shape \[\.\.\., 4\]"):
            fn(np.zeros((2, 4), np.float32), np.zeros((2, 4, 1), np.float32))
        with pytest.raises(ValueError, match=rf"jaxloss\.{name}: boxes1 must have shape \[\.\.\., 4\]"):
            fn(np.zeros((2, 2), np.float32), np.zeros((2, 4), np.float32))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_bad_arguments_raise(name):
    fn = LOSSES[name]
    b = np.zeros((2, 4), np.float32)
    with pytest.raises(TypeError, match=rf"jaxloss\.{name}: boxes2 must have a floating dtype"):
        fn(b, b.astype(np.int32))
    with pytest.raises(ValueError, match=rf"jaxloss\.{name}: epsilon must be >= 0"):
        fn(b, b, epsilon=-1e-3)
    with pytest.raises(ValueError, match=rf"jaxloss\.{name}: where must broadcast"):
        fn(b, b, where=np.ones((3,), bool))
    # A traced epsilon is not checked and still works.
    jax.jit(lambda e: fn(b, b, epsilon=e))(1e-7)


# --------------------------------------------------------- degenerate boxes
DEGENERATE = {
    "zero width vs box": ([1.0, 1.0, 1.0, 3.0], [0.0, 0.0, 2.0, 2.0]),
    "zero height vs box": ([1.0, 1.0, 3.0, 1.0], [0.0, 0.0, 2.0, 2.0]),
    "both zero height": ([0.0, 1.0, 2.0, 1.0], [1.0, 1.0, 3.0, 1.0]),
    "point vs box": ([1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]),
    "point vs same point": ([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]),
    "all zeros": ([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]),
    "identical": ([0.5, 1.0, 2.5, 4.0], [0.5, 1.0, 2.5, 4.0]),
    "one inside another": ([1.0, 1.0, 2.0, 2.0], [0.0, 0.0, 4.0, 4.0]),
    "inner shares a corner": ([0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 4.0, 4.0]),
    "touching edges": ([0.0, 0.0, 1.0, 1.0], [1.0, 0.0, 2.0, 1.0]),
    "x2 < x1": ([2.0, 0.0, 1.0, 1.0], [0.0, 0.0, 3.0, 3.0]),
    "both inverted": ([2.0, 2.0, 1.0, 1.0], [3.0, 3.0, 0.0, 0.0]),
    "inverted vs its own flip": ([2.0, 2.0, 1.0, 1.0], [1.0, 1.0, 2.0, 2.0]),
    "zero-area huge": ([1e6, 1e6, 1e6, 1e6], [0.0, 0.0, 1e6, 1e6]),
}


@pytest.mark.parametrize("epsilon", [1e-7, 0.0])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_degenerate_boxes_finite_value_and_grad(name, epsilon):
    fn = LOSSES[name]
    b1 = np.array([p[0] for p in DEGENERATE.values()], np.float32)
    b2 = np.array([p[1] for p in DEGENERATE.values()], np.float32)
    for args in ((b1, b2), (b2, b1)):
        values = np.asarray(fn(*args, epsilon=epsilon, reduction="none"))
        bad = [k for k, ok in zip(DEGENERATE, np.isfinite(values)) if not ok]
        assert not bad, f"{name}: non-finite values for {bad}"
        g1, g2 = jax.grad(lambda a, b: fn(a, b, epsilon=epsilon, reduction="sum"), argnums=(0, 1))(*args)
        bad = [k for k, ok in zip(DEGENERATE, np.isfinite(g1).all(-1) & np.isfinite(g2).all(-1)) if not ok]
        assert not bad, f"{name}: non-finite gradients for {bad}"
        assert np.all(values >= -1e-6), f"{name}: negative loss {values.min()}"


def test_box_iou_degenerate_finite():
    b1 = np.array([p[0] for p in DEGENERATE.values()], np.float32)
    b2 = np.array([p[1] for p in DEGENERATE.values()], np.float32)
    iou = B.box_iou(b1, b2)
    assert np.all(np.isfinite(iou)) and np.all((iou >= 0) & (iou <= 1))
    g = jax.grad(lambda a: jnp.sum(B.box_iou(a, b2)))(b1)
    assert np.all(np.isfinite(g))


def test_torchvision_ciou_is_nan_where_ours_is_finite():
    # The reason for arctan2 and the double-where: torchvision's arctan(w / h) is 0/0 for points.
    a = np.array([[1.0, 1.0, 1.0, 1.0]])
    b = np.array([[0.0, 0.0, 2.0, 2.0]])
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isnan(ref_ciou_loss(a, b)).all()
    assert np.isfinite(B.ciou_loss(a.astype(np.float32), b.astype(np.float32)))


# ---------------------------------------------------------------- gradients
def _central_difference(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[idx] = h
        grad[idx] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


def test_ciou_gradient_holds_alpha_constant():
    # torchvision computes alpha under torch.no_grad(); the gradient is that of
    # diou + alpha0 * v with alpha0 frozen at the current boxes.
    b1, b2 = random_box_pairs(np.random.default_rng(9))
    _, _, alpha0 = ref_ciou_terms(b1, b2)

    def frozen(x):
        diou, v, _ = ref_ciou_terms(x, b2)
        return float(np.mean(diou + alpha0 * v))

    expected = _central_difference(frozen, b1)
    with jax.enable_x64(True):
        got = jax.jit(jax.grad(B.ciou_loss))(jnp.asarray(b1), jnp.asarray(b2))   # one program
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)
    # And it differs from the full derivative of the value (alpha does vary).
    full = _central_difference(lambda x: float(np.mean(ref_ciou_loss(x, b2))), b1)
    assert np.max(np.abs(full - expected)) > 1e-4


def test_ciou_full_grad_check_on_equal_aspect_pairs():
    # Where both boxes have the same aspect ratio, v = 0 and its derivative is 0, so the
    # stop_gradient on alpha changes nothing: check_loss's finite-difference check applies.
    b1, b2 = random_box_pairs(np.random.default_rng(10))
    wh1 = b1[:, 2:] - b1[:, :2]
    scale = np.random.default_rng(11).uniform(0.6, 1.4, size=(len(b1), 1))
    b2 = np.concatenate([b2[:, :2], b2[:, :2] + scale * wh1], axis=-1)
    assert np.allclose(ref_ciou_terms(b1, b2)[1], 0.0, atol=1e-20)
    check_loss(B.ciou_loss, b1, b2, only=["grad"])


# ------------------------------------------------------------- torch check
def test_torch_autograd_cross_check():
    # torch autograd on the torchvision formulas (alpha under no_grad), float64.
    torch = pytest.importorskip("torch")
    b1, b2 = random_box_pairs(np.random.default_rng(12))   # the shape of the gradient tests above

    def inter_union(p, t):
        xk1, yk1 = torch.max(p[:, 0], t[:, 0]), torch.max(p[:, 1], t[:, 1])
        xk2, yk2 = torch.min(p[:, 2], t[:, 2]), torch.min(p[:, 3], t[:, 3])
        mask = (yk2 > yk1) & (xk2 > xk1)
        inter = torch.where(mask, (xk2 - xk1) * (yk2 - yk1), torch.zeros_like(xk1))
        union = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1]) + (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1]) - inter
        return inter, union

    def diou_iou(p, t):
        inter, union = inter_union(p, t)
        iou = inter / (union + EPS)
        cw = torch.max(p[:, 2], t[:, 2]) - torch.min(p[:, 0], t[:, 0])
        ch = torch.max(p[:, 3], t[:, 3]) - torch.min(p[:, 1], t[:, 1])
        d2 = ((p[:, 0] + p[:, 2]) / 2 - (t[:, 0] + t[:, 2]) / 2) ** 2 + \
             ((p[:, 1] + p[:, 3]) / 2 - (t[:, 1] + t[:, 3]) / 2) ** 2
        return 1 - iou + d2 / (cw ** 2 + ch ** 2 + EPS), iou, cw, ch, union

    def giou(p, t):
        _, iou, cw, ch, union = diou_iou(p, t)
        area_c = cw * ch
        return 1 - (iou - (area_c - union) / (area_c + EPS))

    def ciou(p, t):
        d, iou, *_ = diou_iou(p, t)
        v = (4 / math.pi ** 2) * (torch.atan((t[:, 2] - t[:, 0]) / (t[:, 3] - t[:, 1]))
                                  - torch.atan((p[:, 2] - p[:, 0]) / (p[:, 3] - p[:, 1]))) ** 2
        with torch.no_grad():
            alpha = v / (1 - iou + v + EPS)
        return d + alpha * v

    torch_fns = {"giou_loss": giou, "diou_loss": lambda p, t: diou_iou(p, t)[0], "ciou_loss": ciou}
    for name, tfn in torch_fns.items():
        p = torch.tensor(b1, dtype=torch.float64, requires_grad=True)
        t = torch.tensor(b2, dtype=torch.float64, requires_grad=True)
        value = tfn(p, t).mean()
        value.backward()
        with jax.enable_x64(True):
            ours, grads = jax.jit(jax.value_and_grad(LOSSES[name], argnums=(0, 1)))(jnp.asarray(b1), jnp.asarray(b2))
        np.testing.assert_allclose(float(ours), value.item(), rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(grads[0], p.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(grads[1], t.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
