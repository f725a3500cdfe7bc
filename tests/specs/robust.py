"""Specs for ``jaxloss.robust`` (further alpha variants run in ``tests/test_robust.py``)."""

from __future__ import annotations

import numpy as np

import jaxloss.robust  # noqa: F401  (registers the robust losses)
from tests.specs import Spec


def _residuals(rng: np.random.Generator) -> tuple[np.ndarray]:
    return (rng.normal(0.0, 1.5, (6, 3)),)


def _task_losses(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(0.1, 2.0, (5, 3)), rng.normal(0.0, 0.5, (5, 3))


SPECS = {
    "general_robust_loss": Spec(_residuals, {"alpha": 1.5, "scale": 1.3}),
    "adaptive_robust_nll": Spec(_residuals, {"alpha": 1.0, "scale": 0.8}),
    "uncertainty_weighted_sum": Spec(_task_losses),
}
