"""Invariant-suite inputs for the regression losses (``jaxloss.regression``).

Every input is kept away from the kinks of its loss so finite differences in
float64 are meaningful: residuals of absolute/huber/smooth-L1/quantile losses
stay away from 0 and from ``delta``/``beta``; the log arguments of the
percentage, log and Poisson losses stay positive and away from ``epsilon``.
"""

from __future__ import annotations

import numpy as np

from tests.specs import Spec

_SHAPE = (6, 3)


def _signs(rng: np.random.Generator, shape=_SHAPE) -> np.ndarray:
    return np.where(rng.uniform(size=shape) < 0.5, -1.0, 1.0)


def _residual_pair(low: float, high: float):
    """(predictions, targets) with |predictions - targets| in [low, high]."""

    def make(rng: np.random.Generator):
        targets = rng.normal(size=_SHAPE)
        residual = _signs(rng) * rng.uniform(low, high, size=_SHAPE)
        return targets + residual, targets

    return make


def _huber_pair(threshold: float):
    """Residuals on both sides of ``threshold``, none within 0.2 of it or of 0."""

    def make(rng: np.random.Generator):
        targets = rng.normal(size=_SHAPE)
        small = rng.uniform(0.2, threshold - 0.2, size=_SHAPE)
        large = rng.uniform(threshold + 0.2, threshold + 2.0, size=_SHAPE)
        pick = np.arange(np.prod(_SHAPE)).reshape(_SHAPE) % 2 == 0
        return targets + _signs(rng) * np.where(pick, small, large), targets

    return make


def _normal_pair(rng: np.random.Generator):
    return rng.normal(size=_SHAPE), rng.normal(size=_SHAPE)


def _percentage_pair(rng: np.random.Generator):
    # |targets| in [0.5, 2] (far above epsilon), residual away from 0.
    targets = _signs(rng) * rng.uniform(0.5, 2.0, size=_SHAPE)
    return targets + _signs(rng) * rng.uniform(0.1, 1.0, size=_SHAPE), targets


def _positive_pair(rng: np.random.Generator):
    # Both arguments well above epsilon: the max(., eps) clip is inactive.
    return rng.uniform(0.2, 3.0, size=_SHAPE), rng.uniform(0.2, 3.0, size=_SHAPE)


def _counts(rng: np.random.Generator) -> np.ndarray:
    # Integer-valued counts in {0, 2, 3, 4, 5}: never 1, where torch's Stirling
    # term (full=True, counted only for y > 1) jumps by 0.5 log(2 pi) - 1, so a
    # finite difference in the targets would straddle a discontinuity.
    counts = rng.integers(0, 6, size=_SHAPE)
    return np.where(counts == 1, 2, counts).astype(np.float64)


def _rates_and_counts(rng: np.random.Generator):
    # Positive rates away from 0 (the epsilon floor of the log is inactive).
    return rng.uniform(0.3, 4.0, size=_SHAPE), _counts(rng)


def _log_rates_and_counts(rng: np.random.Generator):
    return rng.normal(scale=0.7, size=_SHAPE), _counts(rng)


def _gaussian_triple(rng: np.random.Generator):
    # Variances well above epsilon: the clamp is inactive, gradients are exact.
    return rng.normal(size=_SHAPE), rng.normal(size=_SHAPE), rng.uniform(0.3, 2.0, size=_SHAPE)


SPECS = {
    "squared_error": Spec(_normal_pair),
    "l2_loss": Spec(_normal_pair),
    "absolute_error": Spec(_residual_pair(0.1, 2.0)),
    "huber_loss": Spec(_huber_pair(1.5), kwargs={"delta": 1.5}),
    "smooth_l1_loss": Spec(_huber_pair(0.8), kwargs={"beta": 0.8}),
    "log_cosh": Spec(_normal_pair),
    "absolute_percentage_error": Spec(_percentage_pair),
    "squared_log_error": Spec(_positive_pair),
    "quantile_loss": Spec(_residual_pair(0.1, 2.0), kwargs={"quantile": 0.3}),
    "poisson_loss": Spec(_rates_and_counts),
    "poisson_nll_loss": Spec(_log_rates_and_counts, kwargs={"full": True}),
    "gaussian_nll_loss": Spec(_gaussian_triple, kwargs={"full": True}),
}

# Variants the registry cannot hold under a second name (tests/test_regression.py
# runs check_loss on them): poisson_nll_loss on rates, and without the Stirling term.
VARIANTS = {
    "poisson_nll_loss[log_input=False]": ("poisson_nll_loss",
                                          Spec(_rates_and_counts, kwargs={"log_input": False, "full": True})),
    "poisson_nll_loss[full=False]": ("poisson_nll_loss", Spec(_log_rates_and_counts)),
    "gaussian_nll_loss[full=False]": ("gaussian_nll_loss", Spec(_gaussian_triple)),
}
