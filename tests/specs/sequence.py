"""Specs for the sequence losses (``jaxloss.sequence``)."""

from __future__ import annotations

import numpy as np

import jaxloss.sequence  # noqa: F401  (registers the losses)
from tests.specs import Spec


def _ctc_args(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    batch, frames, classes, max_labels = 4, 8, 5, 3
    logits = rng.normal(size=(batch, frames, classes))
    frame_lengths = np.array([8, 6, 7, 5])
    label_lengths = np.array([3, 2, 0, 1])
    logit_paddings = (np.arange(frames)[None, :] >= frame_lengths[:, None]).astype(np.float64)
    labels = rng.integers(1, classes, size=(batch, max_labels)).astype(np.int32)
    labels[0] = [1, 1, 2]  # a repeated label needs a blank between
    label_paddings = (np.arange(max_labels)[None, :] >= label_lengths[:, None]).astype(np.float64)
    return logits, logit_paddings, labels, label_paddings


SPECS = {
    "ctc_loss": Spec(_ctc_args),
}
