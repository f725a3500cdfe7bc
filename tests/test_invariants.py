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
from tests.specs import all_specs

SPECS = all_specs()
# All checks of one loss run on one xdist worker (--dist loadgroup), which reuses its compiled programs.
CASES = [pytest.param(name, check, id=f"{name}-{check}", marks=pytest.mark.xdist_group(name))
         for name in sorted(SPECS) for check in CHECKS]


def test_every_registered_loss_has_a_spec():
    missing = sorted(set(jaxloss.available(aliases=False)) - set(SPECS))
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
