"""Specs for the text losses (``jaxloss.text``); the text metrics are not losses."""

from __future__ import annotations

import numpy as np

import jaxloss.text  # noqa: F401  (registers the losses)
from tests.specs import Spec


def _mrt_args(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    sample_log_probs = -rng.uniform(1.0, 20.0, size=(4, 5))
    rewards = rng.uniform(0.0, 1.0, size=(4, 5))
    return sample_log_probs, rewards


SPECS = {
    # alpha = 0.5 so the softmax is far from uniform and its gradient is tested.
    "minimum_risk_loss": Spec(_mrt_args, kwargs={"alpha": 0.5}),
}
