"""The fused distillation losses with the vocabulary sharded over devices (tensor parallel).

On a 2 x 4 ``("data", "model")`` mesh of 8 simulated CPU devices, both
weights ``[D, V]`` are split over ``"model"`` in contiguous column slices and
the tokens over ``"data"``; ``axis_name="model"`` combines the per-slice
log-sum-exps and divergence sums. Reference: the single-device call on the
full arrays (itself equal to the unfused losses on ``hidden @ weight``,
tests/test_distillation_fused.py). Checked: per-token values and the global
masked, weighted mean (``jaxloss.reduce(..., axis_name="data")``); gradients
w.r.t. both hidden states, both weights, a learned temperature and a learned
beta, with ``jax.grad`` outside the ``shard_map`` and inside its body; a frozen
teacher; a vocabulary slice (11 columns) that chunk 4 does not divide; the
vocabulary over both mesh axes at once.

It runs in a subprocess: the device count is fixed when JAX starts.
"""

from __future__ import annotations

import textwrap

from tests.devices import run_with_devices

_SCRIPT = textwrap.dedent(
    r'''
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import PartitionSpec as P

    import jaxloss
    from jaxloss.distillation import linear_generalized_jsd_loss as gjsd, linear_knowledge_distillation_loss as kd

    assert jax.device_count() == 8, jax.devices()
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
    rng = np.random.default_rng(0)
    N, DS, DT, V = 16, 8, 6, 44          # V_local = 11, chunk 4: a shifted last chunk on every device
    hs = jnp.asarray(rng.normal(size=(N, DS)), jnp.float32)
    ws = jnp.asarray(rng.normal(size=(DS, V)) * 0.5, jnp.float32)
    ht = jnp.asarray(rng.normal(size=(N, DT)), jnp.float32)
    wt = jnp.asarray(rng.normal(size=(DT, V)) * 0.5, jnp.float32)
    keep = jnp.asarray(rng.uniform(size=N) > 0.2)
    wts = jnp.asarray(rng.uniform(0.5, 2.0, size=N), jnp.float32)
    temp, beta = jnp.float32(1.3), jnp.float32(0.3)

    def close(a, b, what, rtol=1e-5):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        scale = np.max(np.abs(b))
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 0.1 * scale, err_msg=what)
        return float(np.max(np.abs(a - b)) / max(scale, 1e-30))

    worst = {}
    LOSSES = {"kd": lambda *a, **k: kd(*a, chunk_size=4, **k),
              "gjsd": lambda *a, beta=beta, **k: gjsd(*a, beta=beta, chunk_size=4, **k)}
    specs = (P("data"), P(None, "model"), P("data"), P(None, "model"), P(), P(), P("data"), P("data"))
    grad_specs = (P("data"), P(None, "model"), P("data"), P(None, "model"), P(), P())

    for name, loss in LOSSES.items():
        def full(hs, ws, ht, wt, temp, beta, reduction="mean"):
            extra = {} if name == "kd" else {"beta": beta}
            return loss(hs, ws, ht, wt, temperature=temp, where=keep, weights=wts, reduction=reduction, **extra)

        def local_none(hs, ws, ht, wt, temp, beta, keep, wts):
            extra = {} if name == "kd" else {"beta": beta}
            return loss(hs, ws, ht, wt, temperature=temp, where=keep, reduction="none", axis_name="model", **extra)

        def local_mean(hs, ws, ht, wt, temp, beta, keep, wts):
            values = local_none(hs, ws, ht, wt, temp, beta, keep, wts)
            return jaxloss.reduce(values, weights=wts, where=keep, axis_name="data")

        args = (hs, ws, ht, wt, temp, beta)
        none = jax.jit(jax.shard_map(local_none, mesh=mesh, in_specs=specs, out_specs=P("data")))(*args, keep, wts)
        ref_none = jnp.where(keep, full(*args, reduction="none") / wts, 0.0)
        worst[f"{name} values"] = close(none, ref_none, f"{name} per-token values")
        mean_fn = jax.shard_map(local_mean, mesh=mesh, in_specs=specs, out_specs=P())
        worst[f"{name} mean"] = close(jax.jit(mean_fn)(*args, keep, wts), full(*args), f"{name} mean")

        argnums = (0, 1, 2, 3, 4, 5)
        ref = jax.grad(full, argnums=argnums)(*args)
        outer = jax.jit(jax.grad(mean_fn, argnums=argnums))(*args, keep, wts)
        inner = jax.jit(jax.shard_map(lambda *a: jax.grad(local_mean, argnums=argnums)(*a), mesh=mesh,
                                      in_specs=specs, out_specs=grad_specs))(*args, keep, wts)
        labels = ("student hidden", "student weight", "teacher hidden", "teacher weight", "temperature", "beta")
        for label, r, o, i in zip(labels, ref, outer, inner):
            if name == "kd" and label == "beta":
                continue
            worst[f"{name} grad {label} (outside)"] = close(o, r, f"{name} grad {label}, jax.grad outside")
            worst[f"{name} grad {label} (inside)"] = close(i, r, f"{name} grad {label}, jax.grad inside")

    # A frozen teacher: only the student's gradients, with a Python-float beta.
    frozen = jax.shard_map(
        lambda hs, ws, ht, wt: jaxloss.reduce(gjsd(hs, ws, jax.lax.stop_gradient(ht), jax.lax.stop_gradient(wt),
                                                   beta=0.5, chunk_size=4, reduction="none", axis_name="model"),
                                              axis_name="data"),
        mesh=mesh, in_specs=specs[:4], out_specs=P())
    g = jax.jit(jax.grad(frozen, argnums=(0, 1)))(hs, ws, ht, wt)
    r = jax.grad(lambda hs, ws: gjsd(hs, ws, ht, wt, beta=0.5, chunk_size=4), argnums=(0, 1))(hs, ws)
    worst["frozen teacher grad student hidden"] = close(g[0], r[0], "frozen grad hidden")
    worst["frozen teacher grad student weight"] = close(g[1], r[1], "frozen grad weight")

    # The vocabulary over both mesh axes (8 slices of 6 columns), tokens replicated.
    V8 = 48
    ws8 = jnp.asarray(rng.normal(size=(DS, V8)) * 0.5, jnp.float32)
    wt8 = jnp.asarray(rng.normal(size=(DT, V8)) * 0.5, jnp.float32)
    both = ("data", "model")
    f8 = jax.shard_map(lambda *a: kd(*a, temperature=2.0, chunk_size=4, axis_name=both), mesh=mesh,
                       in_specs=(P(), P(None, both), P(), P(None, both)), out_specs=P())
    r8 = lambda *a: kd(*a, temperature=2.0, chunk_size=4)
    worst["two axes value"] = close(jax.jit(f8)(hs, ws8, ht, wt8), r8(hs, ws8, ht, wt8), "two axes value")
    g8 = jax.jit(jax.grad(f8, argnums=(0, 1, 2, 3)))(hs, ws8, ht, wt8)
    rg8 = jax.grad(r8, argnums=(0, 1, 2, 3))(hs, ws8, ht, wt8)
    for label, a, b in zip(("hidden", "weight", "teacher hidden", "teacher weight"), g8, rg8):
        worst[f"two axes grad {label}"] = close(a, b, f"two axes grad {label}")

    for k, v in worst.items():
        print(f"{k}: {v:.2e}")
    print("TP-OK")
    '''
)


def test_vocabulary_sharded_equals_single_device():
    proc = run_with_devices(_SCRIPT, timeout=600)
    assert proc.returncode == 0 and "TP-OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-5000:]
