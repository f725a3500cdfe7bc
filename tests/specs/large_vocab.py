"""Example inputs for the large-vocabulary loss."""

import numpy as np

import jaxloss.large_vocab  # noqa: F401  (registers the loss)
from tests.specs import Spec

N, D, V = 6, 5, 23  # V not a multiple of chunk_size: exercises the padded last chunk


SPECS = {
    "linear_softmax_cross_entropy": Spec(
        lambda r: (r.normal(size=(N, D)), r.normal(size=(D, V)) * 0.5, r.integers(0, V, size=(N,)).astype(np.int32)),
        kwargs={"chunk_size": 8, "label_smoothing": 0.1, "z_loss_weight": 1e-3, "logit_soft_cap": 3.0}),
}
