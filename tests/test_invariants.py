"""The invariants suite: every registered loss under every check of ``check_loss``.

jit equals eager, vmap equals batched, float64 gradients match finite
differences, edge cases stay finite, ``where`` equals slicing, all-masked gives
0 with finite gradients, bfloat16 in gives float32 out, bad shapes and dtypes
raise, float hyper-parameters trace (one trace per shape).
"""

import numpy as np
import pytest

import jaxloss
from jaxloss.testing import CHECKS, check_loss
from tests.specs import all_specs, families

SPECS = all_specs()
FAMILY = families()
# All checks of one family's losses run on one xdist worker (--dist loadgroup): each loss reuses its
# compiled programs across checks, and the family's losses share the eager operations of the "jit"
# check (the same shapes in one family's specs).
CASES = [pytest.param(name, check, id=f"{name}-{check}", marks=pytest.mark.xdist_group("invariants_" + FAMILY[name]))
         for name in sorted(SPECS, key=lambda n: (FAMILY[n], n)) for check in CHECKS]


def test_every_registered_loss_has_a_spec():
    # Built-in losses only: a user registration elsewhere in the run (the ``register`` doctest) needs no spec.
    builtin = {n for n in jaxloss.available(aliases=False) if jaxloss._registry.is_builtin(n)}
    missing = sorted(builtin - set(SPECS))
    assert not missing, f"registered losses without a spec in tests/specs: {missing}"
    unknown = sorted(set(SPECS) - set(jaxloss.available(aliases=False)))
    assert not unknown, f"specs for names that are not registered: {unknown}"


@pytest.mark.parametrize("name,check", CASES)
def test_invariant(name, check):
    spec = SPECS[name]
    if check in spec.skip:
        pytest.skip(spec.skip[check])
    args = spec.make_args(np.random.default_rng(0))
    report = check_loss(jaxloss.get(name), *args, only=[check], grad_tolerance=spec.grad_tolerance,
                        raise_on_failure=False, **spec.kwargs)
    assert report.ok, str(report)
    if check in report.skipped:
        pytest.skip(report.skipped[check])
