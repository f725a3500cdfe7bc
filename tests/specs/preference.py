"""Example inputs for the preference-optimisation losses (per-sequence log-probabilities ``[B]``)."""

import numpy as np

import jaxloss.preference  # noqa: F401  (registers the losses)
from tests.specs import Spec

B = 6


def _summed(rng):
    """Summed log-probabilities of completions of a few dozen tokens."""
    return -rng.uniform(5.0, 40.0, size=(B,))


def _averaged(rng):
    """Length-averaged log-probabilities (per-token), away from 0 where log(1 - e^x) is steep."""
    return -rng.uniform(0.2, 3.0, size=(B,))


SPECS = {
    "dpo_loss": Spec(lambda r: (_summed(r), _summed(r), _summed(r), _summed(r)),
                     kwargs={"beta": 0.1, "label_smoothing": 0.1}),
    "simpo_loss": Spec(lambda r: (_averaged(r), _averaged(r)), kwargs={"label_smoothing": 0.1}),
    "cpo_loss": Spec(lambda r: (_summed(r), _summed(r)), kwargs={"label_smoothing": 0.1}),
    "orpo_loss": Spec(lambda r: (_averaged(r), _averaged(r))),
    "kto_loss": Spec(lambda r: (_summed(r), _summed(r), np.arange(B) % 2 == 0),
                     kwargs={"kl": 0.3, "desirable_weight": 1.0, "undesirable_weight": 1.33}),
}
