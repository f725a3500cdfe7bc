"""Batch-global self-supervised and router losses under ``shard_map``/``pmap`` on 8 simulated CPU devices.

With ``axis_name`` the batch statistics (means, variances, cross-correlations,
expert counts and probabilities) are summed over devices, so the value and
the gradients must equal the single-device computation on the full batch,
with ``where`` removing examples from the statistics. Covers
``barlow_twins_loss``, ``vicreg_loss``, ``load_balancing_loss``,
``router_z_loss``, ``dino_loss`` (global mean) and ``dino_center_update``.
The check runs in a subprocess because the number of host devices is fixed
when JAX starts.
"""

from __future__ import annotations

import textwrap

from tests.devices import run_with_devices

_SCRIPT = textwrap.dedent(
    r'''
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P

    from jaxloss import routing as R
    from jaxloss import self_supervised as S

    assert jax.device_count() == 8, jax.devices()
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    rng = np.random.default_rng(0)
    B = 32
    z1 = jnp.asarray(0.6 * rng.normal(size=(B, 6)), jnp.float32)
    z2 = jnp.asarray(np.asarray(z1) + 0.4 * rng.normal(size=(B, 6)), jnp.float32)
    router = jnp.asarray(rng.normal(size=(B, 5)), jnp.float32)
    where = jnp.asarray(rng.uniform(size=B) < 0.75)
    data = P("data")
    worst = {}

    def close(a, b, what, rtol=1e-5, atol=1e-6):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)
        kind = what.split()[-1]
        # Figure for the report: largest difference relative to the largest reference entry.
        worst[kind] = max(worst.get(kind, 0.0), float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)))

    # name: (loss(a, b, **kw), float inputs)
    LOSSES = {
        "barlow_twins_loss": (lambda a, b, **k: S.barlow_twins_loss(a, b, **k), (z1, z2)),
        "vicreg_loss": (lambda a, b, **k: S.vicreg_loss(a, b, **k), (z1, z2)),
        "load_balancing_loss": (lambda a, **k: R.load_balancing_loss(a, top_k=2, **k), (router,)),
        "router_z_loss": (lambda a, **k: R.router_z_loss(a, **k), (router,)),
    }
    for name, (loss, inputs) in LOSSES.items():
        n = len(inputs)
        for extra in ({}, {"where": where}):
            tag = f"{name} {sorted(extra)}"
            names = sorted(extra)

            def full(*args):
                return loss(*args, **extra)

            def sharded(*args):
                def local(*a):
                    return loss(*a[:n], axis_name="data", **dict(zip(names, a[n:])))
                return jax.shard_map(local, mesh=mesh, in_specs=(data,) * (n + len(names)), out_specs=P())(
                    *args, *[extra[k] for k in names])

            close(jax.jit(sharded)(*inputs), full(*inputs), f"{tag} value")
            g_full = jax.grad(full, argnums=tuple(range(n)))(*inputs)
            g_outer = jax.jit(jax.grad(sharded, argnums=tuple(range(n))))(*inputs)

            def inner(*a):
                kw = dict(zip(names, a[n:]))
                return jax.grad(lambda *x: loss(*x, axis_name="data", **kw), argnums=tuple(range(n)))(*a[:n])
            g_inner = jax.jit(jax.shard_map(inner, mesh=mesh, in_specs=(data,) * (n + len(names)),
                                            out_specs=(data,) * n))(*inputs, *[extra[k] for k in names])
            for g_ref, g_out, g_in in zip(g_full, g_outer, g_inner):
                close(g_out, g_ref, f"{tag} (grad of shard_map) grad", atol=1e-5)
                close(g_in, g_ref, f"{tag} (grad inside shard_map) grad", atol=1e-5)

    # DINO: the global mean of the per-example loss, and the global center update.
    student = jnp.asarray(rng.normal(size=(3, B, 7)), jnp.float32)
    teacher = jnp.asarray(rng.normal(size=(2, B, 7)), jnp.float32)
    center = jnp.asarray(0.1 * rng.normal(size=7), jnp.float32)
    crop = P(None, "data")
    for extra in ({}, {"where": where}):
        names = sorted(extra)
        fn = jax.shard_map(lambda s, t, c, *w: S.dino_loss(s, t, c, axis_name="data", **dict(zip(names, w))),
                           mesh=mesh, in_specs=(crop, crop, P()) + (data,) * len(names), out_specs=P())
        close(jax.jit(fn)(student, teacher, center, *extra.values()), S.dino_loss(student, teacher, center, **extra),
              f"dino_loss {names} value")
        close(jax.jit(jax.grad(fn))(student, teacher, center, *extra.values()),
              jax.grad(lambda s: S.dino_loss(s, teacher, center, **extra))(student), f"dino_loss {names} grad",
              atol=1e-6)
        up = jax.shard_map(lambda c, t, *w: S.dino_center_update(c, t, axis_name="data", **dict(zip(names, w))),
                           mesh=mesh, in_specs=(P(), crop) + (data,) * len(names), out_specs=P())
        close(jax.jit(up)(center, teacher, *extra.values()), S.dino_center_update(center, teacher, **extra),
              f"dino_center_update {names} value")

    # pmap: the same global value on every device.
    out = jax.pmap(lambda a, b: S.barlow_twins_loss(a, b, axis_name="i"), axis_name="i")(
        z1.reshape(8, 4, 6), z2.reshape(8, 4, 6))
    close(out, np.full(8, S.barlow_twins_loss(z1, z2)), "barlow_twins_loss pmap value")

    # Two mesh axes reduced together.
    mesh2 = jax.make_mesh((2, 4), ("x", "y"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
    fn = jax.shard_map(lambda a, b: S.vicreg_loss(a, b, axis_name=("x", "y")), mesh=mesh2,
                       in_specs=(P(("x", "y")),) * 2, out_specs=P())
    close(jax.jit(fn)(z1, z2), S.vicreg_loss(z1, z2), "vicreg_loss two axes value")
    close(jax.jit(jax.grad(fn))(z1, z2), jax.grad(S.vicreg_loss)(z1, z2), "vicreg_loss two axes grad", atol=1e-5)
    print("MAX-REL", {k: f"{v:.2e}" for k, v in worst.items()})
    print("SHARDED-OK")
    '''
)


def test_global_batch_equals_single_device():
    proc = run_with_devices(_SCRIPT)
    assert proc.returncode == 0 and "SHARDED-OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-5000:]
