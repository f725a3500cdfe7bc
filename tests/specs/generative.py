"""Specs for the reconstruction and generative losses (``jaxloss.generative``)."""

from __future__ import annotations

import numpy as np

import jaxloss.generative  # noqa: F401  (registers the losses)
from tests.specs import Spec


def _images(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    reconstructions = rng.normal(size=(4, 3, 2))
    # Keep |r - x| away from 0 so "absolute" has no kink near the example.
    inputs = reconstructions + rng.choice([-1.0, 1.0], size=(4, 3, 2)) * rng.uniform(0.2, 1.0, size=(4, 3, 2))
    return reconstructions, inputs


def _unit_images(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(size=(4, 5)), rng.uniform(0.0, 1.0, size=(4, 5))


def _latents(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(size=(4, 3)), rng.normal(scale=0.5, size=(4, 3))


SPECS = {
    "reconstruction_error": Spec(lambda rng: _images(rng)),
    "gaussian_kl_divergence": Spec(lambda rng: _latents(rng)),
    "elbo_loss": Spec(lambda rng: _unit_images(rng) + _latents(rng), kwargs={"beta": 0.5}),
}
