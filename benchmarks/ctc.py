"""jaxloss.ctc_loss against optax.ctc_loss under jax.jit, value and gradient.

Both are measured in the same run on the same inputs; each figure is the
median of ``--repeats`` warm calls (compilation excluded). A ratio below 1
means jaxloss is faster.

    python benchmarks/ctc.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

try:
    from jaxloss.sequence import ctc_loss
except ImportError:  # run from a clone without installing: use the checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from jaxloss.sequence import ctc_loss

CONFIGS = [  # (batch, frames, classes, max_labels)
    (16, 100, 30, 20),
    (32, 200, 40, 50),
    (8, 400, 100, 80),
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


def median_seconds(fn, args, repeats):
    jax.block_until_ready(fn(*args))  # compile and warm up
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind}, median of {args.repeats} warm calls")

    ours_value = jax.jit(lambda *a: ctc_loss(*a, reduction="mean"))
    optax_value = jax.jit(lambda *a: jnp.mean(optax.ctc_loss(*a)))
    ours_grad = jax.jit(jax.grad(lambda *a: ctc_loss(*a, reduction="mean")))
    optax_grad = jax.jit(jax.grad(lambda *a: jnp.mean(optax.ctc_loss(*a))))

    print(f"{'B, T, K, N':>18} {'what':>6} {'jaxloss ms':>11} {'optax ms':>9} {'ratio':>6}")
    for config in CONFIGS:
        inputs = make_inputs(*config)
        for what, ours, theirs in (("value", ours_value, optax_value), ("grad", ours_grad, optax_grad)):
            t_ours = median_seconds(ours, inputs, args.repeats)
            t_optax = median_seconds(theirs, inputs, args.repeats)
            print(f"{str(config):>18} {what:>6} {1e3 * t_ours:11.3f} {1e3 * t_optax:9.3f} {t_ours / t_optax:6.2f}")


if __name__ == "__main__":
    main()
