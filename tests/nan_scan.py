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
from tests.specs import all_specs

MIN_ELEMENTS = 8192
# Parameters, not batch data, although their axis 0 may equal the batch size.
REPLICATED = {"arcface_loss": {1}, "cosface_loss": {1}, "sub_center_arcface_loss": {1}, "proxy_anchor_loss": {1},
              "proxy_nca_loss": {1}, "soft_triple_loss": {1}, "linear_softmax_cross_entropy": {1}}


def grown_args(name, spec):
    first = [np.asarray(a) for a in spec.make_args(np.random.default_rng(0))]
    if not first or first[0].ndim == 0 or first[0].size == 0:
        return first, []
    b = first[0].shape[0]
    batched = [a.ndim >= 1 and a.shape[0] == b and i not in REPLICATED.get(name, ()) for i, a in enumerate(first)]
    draws = [first] + [[np.asarray(a) for a in spec.make_args(np.random.default_rng(seed))]
                       for seed in range(1, math.ceil(MIN_ELEMENTS / first[0].size))]
    args = [np.concatenate([d[i] for d in draws]) if batched[i] else first[i] for i in range(len(first))]
    floats = [i for i, a in enumerate(args) if batched[i] and np.issubdtype(a.dtype, np.floating)]
    return args, floats


def scan(names=None):
    dropped = {}
    for name, spec in sorted(all_specs().items()):
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
