"""jaxloss.ctc_loss against optax.ctc_loss under jax.jit, value and gradient.

Both run in the same process on the same inputs. Calls are interleaved
(jaxloss, optax, optax, jaxloss, ...) so that load from other processes on a
shared machine hits both alike; each figure is the median of ``--repeats``
warm calls (compilation excluded). A ratio below 1 means jaxloss is faster.
Before timing, the values and gradients of the two are compared: the largest
difference relative to the largest magnitude. That column measures optax's
rounding more than ours: against a float64 reference (torch in float64; largest
error over the gradient's scale) optax's float32 gradients are 1.7e-4 off at
(16, 200, 32, 40) and 2.0e-3 at (8, 1000, 64, 100), jaxloss's 6.4e-6 and 4.5e-5.

Measured on the shared 2-core CPU (load average about 1), three runs with
``--repeats 40`` after the blocked recursion for fewer than 32 rows (session
11): value+grad 0.73-0.74x optax at (16, 200, 32, 40) and 0.62-0.64x at
(8, 1000, 64, 100) (before: 0.68-0.72x there); value alone 0.33-0.35x and
0.30-0.32x. In the full ``benchmarks/run.py`` of that session: 0.70x and
0.75x.

    python benchmarks/ctc.py [--repeats 30] [--configs 16,200,32,40 8,1000,64,100]
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/harness.py, however this is run
from harness import interleaved_medians  # noqa: E402
import optax

try:
    from jaxloss.sequence import ctc_loss
except ImportError:  # run from a clone without installing: use the checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from jaxloss.sequence import ctc_loss

CONFIGS = [  # (batch, frames, classes, max_labels); the first two are issue 15's targets (<= 0.8x)
    (16, 200, 32, 40),
    (8, 1000, 64, 100),
    (32, 200, 40, 50),
]


def make_inputs(batch, frames, classes, max_labels, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(batch, frames, classes)).astype(np.float32)
    frame_lengths = rng.integers(frames // 2, frames + 1, size=batch)
    label_lengths = rng.integers(1, max_labels + 1, size=batch)
    logit_paddings = (np.arange(frames)[None] >= frame_lengths[:, None]).astype(np.float32)
    labels = rng.integers(1, classes, size=(batch, max_labels)).astype(np.int32)
    label_paddings = (np.arange(max_labels)[None] >= label_lengths[:, None]).astype(np.float32)
    return tuple(jnp.asarray(a) for a in (logits, logit_paddings, labels, label_paddings))


def max_relative_difference(a, b):
    """Largest difference relative to the largest magnitude (a gradient's scale)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--configs", nargs="*", default=None, help="B,T,K,N tuples")
    args = parser.parse_args()
    configs = CONFIGS if not args.configs else [tuple(int(v) for v in c.split(",")) for c in args.configs]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device: {jax.devices()[0].device_kind}, median of {args.repeats} interleaved warm calls, "
          f"load average {load:.2f}")

    def ours_mean(*a):
        return ctc_loss(*a, reduction="mean")

    def optax_mean(*a):
        return jnp.mean(optax.ctc_loss(*a))

    ours_value, optax_value = jax.jit(ours_mean), jax.jit(optax_mean)
    ours_grad = jax.jit(jax.value_and_grad(ours_mean))
    optax_grad = jax.jit(jax.value_and_grad(optax_mean))

    print(f"{'B, T, K, N':>18} {'what':>11} {'jaxloss ms':>11} {'optax ms':>9} {'ratio':>6} {'max rel diff':>13}")
    for config in configs:
        inputs = make_inputs(*config)
        (v1, g1), (v2, g2) = ours_grad(*inputs), optax_grad(*inputs)
        diffs = {"value": max_relative_difference(v1, v2), "value+grad": max_relative_difference(g1, g2)}
        for what, ours, theirs in (("value", ours_value, optax_value), ("value+grad", ours_grad, optax_grad)):
            t_ours, t_optax = interleaved_medians([ours, theirs], inputs, args.repeats)
            print(f"{str(config):>18} {what:>11} {1e3 * t_ours:11.3f} {1e3 * t_optax:9.3f} "
                  f"{t_ours / t_optax:6.2f} {diffs[what]:13.2e}")


if __name__ == "__main__":
    main()
