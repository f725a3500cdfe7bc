"""Example inputs for every registered loss, one module per family.

Each family module defines ``SPECS``: a dict from the registered loss name to
a :class:`Spec`. ``tests/test_invariants.py`` runs ``jaxloss.testing.check_loss``
on every spec and fails if a registered loss has none, so registering a loss
puts it under the whole invariants suite.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Spec:
    """How to call one loss on small random inputs.

    make_args: ``rng -> tuple`` of positional arrays (float64 floats, int32
      labels), batch on axis 0, kept away from kinks of the loss so finite
      differences are meaningful.
    kwargs: hyper-parameters passed to every call.
    skip: ``{check name: reason}`` for checks of ``check_loss`` that do not
      apply, each with the reason (shown in the report).
    grad_tolerance: finite-difference tolerance in float64.
    """

    make_args: Callable[[np.random.Generator], tuple[Any, ...]]
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    skip: dict[str, str] = dataclasses.field(default_factory=dict)
    grad_tolerance: float = 1e-4


def _family_specs():
    """(family module name, its ``SPECS``) for every module of this package."""
    for info in pkgutil.iter_modules(__path__):
        yield info.name, getattr(importlib.import_module(f"{__name__}.{info.name}"), "SPECS", {})


def families() -> dict[str, str]:
    """Registered loss name -> the family module its spec lives in (``"classification"``, ...)."""
    return {name: family for family, specs in _family_specs() for name in specs}


def all_specs() -> dict[str, Spec]:
    specs: dict[str, Spec] = {}
    for _, family in _family_specs():
        for name, spec in family.items():
            assert name not in specs, f"two specs for {name}"
            specs[name] = spec
    return specs


# Positional arguments that are parameters, not batch data, although their axis 0 may equal the batch
# size; every other argument is batched iff its axis 0 has the batch size of the first argument.
REPLICATED = {"arcface_loss": {1}, "cosface_loss": {1}, "sub_center_arcface_loss": {1}, "proxy_anchor_loss": {1},
              "proxy_nca_loss": {1}, "soft_triple_loss": {1}, "linear_softmax_cross_entropy": {1}}


def grow(name: str, spec: Spec, copies: Callable[[np.ndarray], int]) -> tuple[list[np.ndarray], list[bool]]:
    """A spec's inputs with ``copies(first input of seed 0)`` independent draws concatenated along axis 0.

    Draw ``k`` uses seed ``k``; only the batched inputs are concatenated (the
    others, e.g. class centres, come from the first draw). Returns the inputs
    and, per position, whether it is batched.
    """
    first = [np.asarray(a) for a in spec.make_args(np.random.default_rng(0))]
    if not first or first[0].ndim == 0:
        return first, [False] * len(first)
    b = first[0].shape[0]
    batched = [a.ndim >= 1 and a.shape[0] == b and i not in REPLICATED.get(name, ()) for i, a in enumerate(first)]
    draws = [first] + [[np.asarray(a) for a in spec.make_args(np.random.default_rng(seed))]
                       for seed in range(1, copies(first[0]))]
    return [np.concatenate([d[i] for d in draws]) if batched[i] else first[i] for i in range(len(first))], batched
