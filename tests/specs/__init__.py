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
