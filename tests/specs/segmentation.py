"""Specs for the segmentation losses (channels last, per-example values ``[B]``)."""

from __future__ import annotations

import numpy as np

import jaxloss.segmentation  # noqa: F401  (registers the losses)
from tests.specs import Spec

_B, _H, _W, _C = 3, 4, 5, 3


def _logits(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, 1.5, (_B, _H, _W, _C))


def _int_labels(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, _C, (_B, _H, _W)).astype(np.int32)


def _soft_labels(rng: np.random.Generator) -> np.ndarray:
    # Soft targets away from 0 and 1, so gradients w.r.t. them are smooth too.
    return rng.dirichlet(np.ones(_C), (_B, _H, _W))


def _with_int(rng):
    return _logits(rng), _int_labels(rng)


def _with_soft(rng):
    return _logits(rng), _soft_labels(rng)


def _binary(rng):
    # Hinge errors 1 - z s stay away from 0 (the kink of the relu) and from
    # each other (ties of the sort), so finite differences see one linear piece.
    logits = rng.normal(0.0, 2.0, (_B, _H, _W))
    labels = rng.integers(0, 2, (_B, _H, _W)).astype(np.int32)
    return logits, labels


SPECS = {
    "dice_loss": Spec(_with_soft),
    "jaccard_loss": Spec(_with_int, kwargs={"squared": True}),
    "tversky_loss": Spec(_with_soft, kwargs={"alpha": 0.3, "beta": 0.7}),
    "focal_tversky_loss": Spec(_with_int),
    "generalized_dice_loss": Spec(_with_soft),
    "lovasz_hinge_loss": Spec(_binary),
    "lovasz_softmax_loss": Spec(_with_int),
}


def _thin(rng):
    # Probabilities away from 0.5 so the thresholded distance fields do not flip under finite differences.
    probs = rng.dirichlet(np.ones(_C), (_B, _H, _W))
    return np.where(np.abs(probs - 0.5) < 0.05, probs + 0.1, probs), _int_labels(rng)


def _images(rng):
    images = rng.uniform(0.0, 1.0, (_B, 6, 7, 2))
    return images, np.clip(images + rng.normal(0.0, 0.2, images.shape), 0.0, 1.0)


SPECS.update({
    "dice_ce_loss": Spec(_with_int, kwargs={"lambda_dice": 0.7, "label_smoothing": 0.1}),
    "dice_focal_loss": Spec(_with_soft, kwargs={"gamma": 1.5, "alpha": 0.3}),
    "soft_cldice_loss": Spec(_with_int, kwargs={"iterations": 2}),
    "hausdorff_dt_loss": Spec(_thin),
    "ssim_loss": Spec(_images, kwargs={"filter_size": 3}),
})
