"""Invariant-suite inputs for the box losses (``jaxloss.boxes``).

The losses are piecewise smooth: ``max``/``min`` of corresponding corners
switch where two corners coincide, and the intersection switches on where a
side of it crosses 0. Every pair of boxes here keeps each corner of one box at
least ``_MARGIN`` away from the matching corner of the other, and each side of
the intersection at least ``_MARGIN`` away from 0, so float64 finite
differences (step 1e-6) never straddle a kink. Some pairs overlap, some do not.

Boxes broadcast by design (``[..., 4]`` paired over broadcast batch shapes),
but the ``shapes`` check still applies: an extra trailing axis turns
``[N, 4]`` into ``[N, 4, 1]``, whose last axis is 1, not 4, and the losses
raise ``ValueError`` naming the function and the argument.
"""

from __future__ import annotations

import numpy as np

import jaxloss.boxes  # noqa: F401  (registers the losses)
from tests.specs import Spec

_BATCH = 6
_MARGIN = 0.05


def _far(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(np.abs(a - b) > _MARGIN))


def random_box_pairs(rng: np.random.Generator, n: int = _BATCH) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pairs of valid xyxy boxes (float64) away from every kink of the losses.

    Even rows overlap, odd rows are disjoint.
    """
    boxes1, boxes2 = [], []
    while len(boxes1) < n:
        xy1 = rng.uniform(0.0, 2.0, size=2)
        wh1 = rng.uniform(0.3, 2.0, size=2)
        xy2 = xy1 + rng.uniform(-1.0, 1.0, size=2)
        wh2 = rng.uniform(0.3, 2.0, size=2)
        b1 = np.concatenate([xy1, xy1 + wh1])
        b2 = np.concatenate([xy2, xy2 + wh2])
        inter_sides = np.minimum(b1[2:], b2[2:]) - np.maximum(b1[:2], b2[:2])
        overlap = bool(np.all(inter_sides > 0))
        if overlap == (len(boxes1) % 2 == 0) and _far(b1, b2) and np.all(np.abs(inter_sides) > _MARGIN):
            boxes1.append(b1)
            boxes2.append(b2)
    return np.stack(boxes1), np.stack(boxes2)


def _pairs(rng: np.random.Generator):
    return random_box_pairs(rng)


_CIOU_GRAD_SKIP = (
    "alpha = v / (1 - IoU + v + eps) is held constant in the gradient (stop_gradient, as in torchvision "
    "and the paper's code), so the gradient is deliberately not the derivative of the value; "
    "tests/test_boxes.py checks it against finite differences with alpha frozen, and runs this check "
    "on equal-aspect pairs (v = 0), where both derivatives agree")

_SHAPES_SKIP = ("box pairs broadcast by design (the boxes' documented semantics: boxes1[:, None] against boxes2[None] "
                "gives the pairwise matrix); tests/test_boxes.py checks that a last axis other than 4 raises")

SPECS = {
    "iou_loss": Spec(_pairs, skip={"shapes": _SHAPES_SKIP}),
    "giou_loss": Spec(_pairs, skip={"shapes": _SHAPES_SKIP}),
    "diou_loss": Spec(_pairs, skip={"shapes": _SHAPES_SKIP}),
    "ciou_loss": Spec(_pairs, skip={"grad": _CIOU_GRAD_SKIP, "shapes": _SHAPES_SKIP}),
    "eiou_loss": Spec(_pairs, skip={"shapes": _SHAPES_SKIP}),
}
