"""Invariant-suite inputs for the router regularisers (``jaxloss.routing``).

Router logits are random normal, so no two experts tie for a top-k slot and
the piecewise-constant expert assignment does not change under the small
perturbations of the finite-difference check. ``load_balancing_loss`` is one
value per batch (unreduced shape ``()``): ``check_loss`` then reports the
where-equals-slicing check as not applicable, and ``tests/test_routing.py``
checks token masking against slicing instead.
"""

from __future__ import annotations

import jaxloss.routing  # noqa: F401  (registers the losses)
from tests.specs import Spec

_T, _E = 8, 4


def _router_logits(rng):
    return (rng.normal(size=(_T, _E)),)


SPECS = {
    "load_balancing_loss": Spec(make_args=_router_logits, kwargs={"top_k": 2}),
    "router_z_loss": Spec(make_args=_router_logits),
}
