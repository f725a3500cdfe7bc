"""Which registered losses keep a NaN input in their value at XLA:CPU's YNN fusion sizes (a script).

Every spec of ``tests/specs`` is grown along its batch axis (independent draws
concatenated) until its first input has at least 8192 elements; then, for each
batched float input in turn, one element of example 1 becomes NaN and the jitted
loss (``reduction="mean"``) is evaluated. Prints a JSON object: loss name ->
the input positions whose NaN did not reach the value.

    python -m tests.nan_scan                      # every registered loss, XLA:CPU as configured
    python -m tests.nan_scan hinge_loss,nll_loss  # only these
"""

from __future__ import annotations

import json
import math
import sys

import jax
import numpy as np

import jaxloss
from tests import specs

MIN_ELEMENTS = 8192


def grown_args(name, spec):
    """The spec's inputs grown to at least MIN_ELEMENTS in the first one, and the batched float positions."""
    args, batched = specs.grow(name, spec, lambda first: math.ceil(MIN_ELEMENTS / first.size) if first.size else 1)
    if not args or args[0].size == 0:
        return args, []
    floats = [i for i, a in enumerate(args) if batched[i] and np.issubdtype(a.dtype, np.floating)]
    return args, floats


def scan(names=None):
    dropped = {}
    for name, spec in sorted(specs.all_specs().items()):
        if names is not None and name not in names:
            continue
        args, floats = grown_args(name, spec)
        fn = jax.jit(lambda *a, _f=jaxloss.get(name), _k=spec.kwargs: _f(*a, **_k))
        for i in floats:
            poisoned = list(args)
            poisoned[i] = args[i].astype(np.float32, copy=True)
            poisoned[i][(1,) + (0,) * (args[i].ndim - 1)] = np.nan
            value = np.asarray(fn(*poisoned))
            if not np.isnan(value).any():
                dropped.setdefault(name, []).append(i)
    return dropped


if __name__ == "__main__":
    print(json.dumps(scan(set(sys.argv[1].split(",")) if len(sys.argv) > 1 else None), sort_keys=True))
