"""Memory (and time) of the fused distillation losses against the materialised path.

``jaxloss.distillation.linear_knowledge_distillation_loss`` and
``linear_generalized_jsd_loss`` take student and teacher ``(hidden, weight)``
pairs; the naive path is ``knowledge_distillation_loss`` /
``generalized_jsd_loss`` on ``hidden @ weight``. Memory is what XLA plans for
the compiled ``jit(value_and_grad)`` (``memory_analysis()``: temporary plus
output bytes, so the ``[D, V]`` weight gradients count on both sides); nothing
is allocated. Two settings: a frozen teacher (gradients w.r.t. the student's
hidden states and weight, the usual distillation step) and gradients w.r.t.
all four arrays. Time (``--time``) is the median of interleaved warm calls of
the frozen-teacher step.

    python benchmarks/fused_distillation.py [--time] [--repeats 3] [--no-bf16]

Two shapes, compile only: N=8192, D=512, V=32768 float32 and the Gemma-2 2B
vocabulary, N=8192, D=2304, V=256000 bfloat16 (``--no-bf16`` skips it). At the
bfloat16 shape each weight is 1125 MiB; the fused temporaries stay far below
one weight (the weights' bits are taken one group of columns at a time, never
whole), which the ``temp < W`` column checks. ``--time`` executes the
materialised float32 paths: the naive generalized-JSD step holds about 11 GiB
at that shape (the knowledge-distillation one about 6 GiB).

Target (issue 15): fused / naive memory <= 0.1 at N=8192, D=512, V=32768 float32
(and at the bfloat16 shape).
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

try:
    import jaxloss.distillation as distillation
except ImportError:  # run from a clone without installing: use the checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import jaxloss.distillation as distillation

SHAPES = {"float32": (8192, 512, 512, 32768, jnp.float32)}
BF16 = {"bfloat16 (Gemma-2 2B vocabulary)": (8192, 2304, 2304, 256000, jnp.bfloat16)}

LOSSES = {
    "linear_knowledge_distillation_loss (T=2)": (
        lambda hs, ws, ht, wt: distillation.linear_knowledge_distillation_loss(hs, ws, ht, wt, temperature=2.0),
        lambda hs, ws, ht, wt: distillation.knowledge_distillation_loss(hs @ ws, ht @ wt, temperature=2.0)),
    "linear_generalized_jsd_loss (beta=0.5)": (
        lambda hs, ws, ht, wt: distillation.linear_generalized_jsd_loss(hs, ws, ht, wt, beta=0.5),
        lambda hs, ws, ht, wt: distillation.generalized_jsd_loss(hs @ ws, ht @ wt, beta=0.5)),
}


def memory_parts(fn, n, ds, dt, v, dtype, argnums):
    """Temporary and output bytes of the compiled ``jit(value_and_grad(fn))`` (nothing is allocated)."""
    args = [jax.ShapeDtypeStruct(s, dtype) for s in ((n, ds), (ds, v), (n, dt), (dt, v))]
    compiled = jax.jit(jax.value_and_grad(fn, argnums=argnums)).lower(*args).compile()
    memory = compiled.memory_analysis()
    return int(memory.temp_size_in_bytes), int(memory.output_size_in_bytes)


def memory_bytes(fn, n, ds, dt, v, dtype, argnums):
    return sum(memory_parts(fn, n, ds, dt, v, dtype, argnums))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", action="store_true", help="also time the float32 shape (slow on CPU)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-bf16", action="store_true", help="skip the bfloat16 Gemma-2 2B vocabulary shape")
    args = parser.parse_args(argv)
    results = {}
    print(f"device: {jax.devices()[0].device_kind}; memory = temp + output bytes of jit(value_and_grad); "
          "W = one weight's bytes; target ratio <= 0.10")
    print(f"{'loss':>42} {'shape':>40} {'gradients':>9} {'fused MiB':>10} {'(temp)':>8} {'naive MiB':>10} "
          f"{'ratio':>6} {'temp < W':>8}")
    shapes = {**SHAPES, **({} if args.no_bf16 else BF16)}
    for shape_name, (n, ds, dt, v, dtype) in shapes.items():
        weight_bytes = min(ds, dt) * v * jnp.dtype(dtype).itemsize
        for name, (fused, naive) in LOSSES.items():
            for grads, argnums in (("student", (0, 1)), ("all four", (0, 1, 2, 3))):
                temp, out = memory_parts(fused, n, ds, dt, v, dtype, argnums)
                f, m = temp + out, memory_bytes(naive, n, ds, dt, v, dtype, argnums)
                results[(shape_name, name, grads)] = f / m
                print(f"{name:>42} {f'{shape_name} {n}x{ds}/{dt}x{v}':>40} {grads:>9} {f / 2**20:10.1f} "
                      f"{temp / 2**20:8.1f} {m / 2**20:10.1f} {f / m:6.3f} {str(temp < weight_bytes):>8}",
                      flush=True)
    if args.time:
        n, ds, dt, v, dtype = SHAPES["float32"]
        rng = np.random.default_rng(0)
        arrays = [jnp.asarray(rng.normal(size=s) / np.sqrt(s[0] if i % 2 else s[1]), dtype)
                  for i, s in enumerate(((n, ds), (ds, v), (n, dt), (dt, v)))]
        for name, (fused, naive) in LOSSES.items():
            fns = [jax.jit(jax.value_and_grad(f, argnums=(0, 1))) for f in (fused, naive)]
            t_fused, t_naive = interleaved_medians(fns, arrays, args.repeats)
            results[("time", name)] = t_fused / t_naive
            print(f"time value_and_grad (student) {name} {n}x{ds}x{v}: fused {t_fused:.2f} s, naive "
                  f"{t_naive:.2f} s, ratio {t_fused / t_naive:.2f} (median of {args.repeats}, interleaved; "
                  f"load {os.getloadavg()[0]:.1f})", flush=True)
    return results


if __name__ == "__main__":
    main()
