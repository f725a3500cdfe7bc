"""Invariant-suite inputs for the diffusion loss (``jaxloss.diffusion``).

v-prediction with min-SNR weighting (the branchiest path): the
signal-to-noise ratios (4.26, 0.099, 1.78, 0.19) stay away from
``snr_gamma = 1``, where the weight has a kink; ``tests/test_diffusion.py``
covers the other prediction types and weightings.
"""

from __future__ import annotations

import numpy as np

import jaxloss.diffusion  # noqa: F401  (registers the loss)
from tests.specs import Spec

_ALPHAS = np.array([0.9, 0.3, 0.8, 0.4])


def _diffusion(rng):
    shape = (4, 3, 2)
    return (rng.normal(size=shape), rng.normal(size=shape), rng.normal(size=shape), _ALPHAS,
            np.sqrt(1.0 - _ALPHAS ** 2))


SPECS = {
    "diffusion_loss": Spec(make_args=_diffusion, kwargs={"prediction_type": "v_prediction", "weighting": "min_snr",
                                                          "snr_gamma": 1.0}),
}
