"""Invariant-suite inputs for the self-supervised losses (``jaxloss.self_supervised``).

``byol_loss``, ``simsiam_loss`` and ``dino_loss`` put ``stop_gradient`` on their
targets by design (the papers'), so finite differences, which see the
dependence on the targets that autodiff cuts, cannot agree with the gradient
w.r.t. those inputs; their ``grad`` check is skipped here and
``tests/test_self_supervised.py`` checks the gradient w.r.t. the online inputs
against finite differences and the gradient w.r.t. the targets to be 0.

VICReg embeddings have a standard deviation near 0.5, away from the kink of
``relu(1 - std)`` at 1. Barlow Twins and VICReg are one value per batch
(unreduced shape ``()``), and DINO's inputs are crop-major ``[S, B, K]``: for
these the where-equals-slicing check does not apply here and
``tests/test_self_supervised.py`` checks masking against slicing.
"""

from __future__ import annotations

import jaxloss.self_supervised  # noqa: F401  (registers the losses)
from tests.specs import Spec

_B, _D = 6, 4

def _pair(rng):
    return rng.normal(size=(_B, _D)), rng.normal(size=(_B, _D))


def _four(rng):
    return tuple(rng.normal(size=(_B, _D)) for _ in range(4))


def _batch_pair(rng):
    z1 = rng.normal(size=(8, _D))
    return z1, z1 + 0.5 * rng.normal(size=(8, _D))


def _small_batch_pair(rng):
    z1 = 0.5 * rng.normal(size=(8, _D))
    return z1, z1 + 0.2 * rng.normal(size=(8, _D))


def _dino(rng):
    # 3 student crops, 2 teacher views, a batch of 5, 4 prototypes.
    return rng.normal(size=(3, 5, 4)), rng.normal(size=(2, 5, 4)), 0.1 * rng.normal(size=(4,))


SPECS = {
    "byol_loss": Spec(make_args=_pair),
    "simsiam_loss": Spec(make_args=_four),
    "barlow_twins_loss": Spec(make_args=_batch_pair),
    "vicreg_loss": Spec(make_args=_small_batch_pair),
    "dino_loss": Spec(make_args=_dino),
}
