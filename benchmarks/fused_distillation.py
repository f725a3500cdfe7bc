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

    python benchmarks/fused_distillation.py [--time] [--repeats 3] [--bf16]

``--time`` executes the materialised paths: the naive generalized-JSD step
holds about 11 GiB at that shape (the knowledge-distillation one about 6 GiB).

Target (issue 15): fused / naive memory <= 0.1 at N=8192, D=512, V=32768 float32.
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


def memory_bytes(fn, n, ds, dt, v, dtype, argnums):
    args = [jax.ShapeDtypeStruct(s, dtype) for s in ((n, ds), (ds, v), (n, dt), (dt, v))]
    compiled = jax.jit(jax.value_and_grad(fn, argnums=argnums)).lower(*args).compile()
    memory = compiled.memory_analysis()
    return int(memory.temp_size_in_bytes) + int(memory.output_size_in_bytes)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", action="store_true", help="also time the float32 shape (slow on CPU)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bf16", action="store_true", help="also the bfloat16 Gemma-2 2B vocabulary shape")
    args = parser.parse_args(argv)
    results = {}
    print(f"device: {jax.devices()[0].device_kind}; memory = temp + output bytes of jit(value_and_grad)")
    print(f"{'loss':>42} {'shape':>30} {'gradients':>16} {'fused MiB':>10} {'naive MiB':>10} {'ratio':>6}")
    shapes = {**SHAPES, **(BF16 if args.bf16 else {})}
    for shape_name, (n, ds, dt, v, dtype) in shapes.items():
        for name, (fused, naive) in LOSSES.items():
            for grads, argnums in (("student", (0, 1)), ("all four", (0, 1, 2, 3))):
                f = memory_bytes(fused, n, ds, dt, v, dtype, argnums)
                m = memory_bytes(naive, n, ds, dt, v, dtype, argnums)
                results[(shape_name, name, grads)] = f / m
                print(f"{name:>42} {f'{shape_name} {n}x{ds}/{dt}x{v}':>30} {grads:>16} {f / 2**20:10.1f} "
                      f"{m / 2**20:10.1f} {f / m:6.3f}", flush=True)
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
