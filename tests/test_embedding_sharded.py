"""Batch-global embedding losses under ``shard_map`` and ``pmap`` on 8 simulated CPU devices.

With ``axis_name`` every device gathers the embeddings of all devices, so the
value, the per-example values and the gradients must equal the single-device
computation on the full batch. The check runs in a subprocess because the
number of host devices (``--xla_force_host_platform_device_count=8``) is fixed
when JAX starts.
"""

from __future__ import annotations

import textwrap

from tests.devices import run_with_devices

_SCRIPT = textwrap.dedent(
    r'''
    import os
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P

    from jaxloss import embedding as E

    assert jax.device_count() == 8, jax.devices()
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    rng = np.random.default_rng(0)
    B = 32
    x = jnp.asarray(rng.normal(size=(B, 6)), jnp.float32)
    x2 = jnp.asarray(rng.normal(size=(B, 6)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 6, size=B), jnp.int32)
    views = jnp.asarray(np.arange(B) // 2, jnp.int32)          # two views per label (SimCLR)
    w = jnp.asarray(rng.uniform(0.5, 2.0, size=B), jnp.float32)
    where = jnp.asarray(rng.uniform(size=B) < 0.8)

    LOSSES = {
        "batch_hard_triplet_loss": (lambda a, b, y, **k: E.batch_hard_triplet_loss(a, y, margin=0.3, **k), labels),
        "batch_hard_triplet_loss_soft": (lambda a, b, y, **k: E.batch_hard_triplet_loss(a, y, soft=True, **k), labels),
        "ntxent_loss": (lambda a, b, y, **k: E.ntxent_loss(a, y, temperature=0.2, **k), views),
        "ntxent_loss_unbalanced": (lambda a, b, y, **k: E.ntxent_loss(a, y, temperature=0.2, **k), labels),
        "supervised_contrastive_loss": (lambda a, b, y, **k: E.supervised_contrastive_loss(a, y, **k), labels),
        "circle_loss": (lambda a, b, y, **k: E.circle_loss(a, y, **k), labels),
        "info_nce_loss": (lambda a, b, y, **k: E.info_nce_loss(a, b, temperature=0.1, **k), labels),
        "clip_loss": (lambda a, b, y, **k: E.clip_loss(a, b, **k), labels),
        "siglip_loss": (lambda a, b, y, **k: E.siglip_loss(a, b, logit_scale=10.0, logit_bias=-10.0, **k), labels),
        "multi_similarity_loss": (lambda a, b, y, **k: E.multi_similarity_loss(a, y, beta=10.0, **k), labels),
        "lifted_structure_loss": (lambda a, b, y, **k: E.lifted_structure_loss(a, y, **k), labels),
        "npairs_loss": (lambda a, b, y, **k: E.npairs_loss(a, b, **k), labels),
    }

    def close(a, b, what, rtol=1e-5, atol=1e-6):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol, err_msg=what)

    shard = lambda v: jax.device_put(v, NamedSharding(mesh, P("data")))
    data = P("data")
    for name, (loss, y) in LOSSES.items():
        for extra in ({}, {"weights": w, "where": where}):
            tag = f"{name} {sorted(extra)}"
            names = sorted(extra)

            def full(a, b, reduction="mean"):
                return loss(a, b, y, reduction=reduction, **extra)

            def sharded(a, b, reduction="mean"):
                def local(a, b, y, *ex):
                    return loss(a, b, y, reduction=reduction, axis_name="data", **dict(zip(names, ex)))
                out = P() if reduction != "none" else data
                return jax.shard_map(local, mesh=mesh, in_specs=(data,) * (3 + len(names)), out_specs=out)(
                    a, b, y, *[extra[n] for n in names])

            for reduction in ("mean", "none"):
                close(jax.jit(sharded, static_argnums=2)(shard(x), shard(x2), reduction),
                      full(x, x2, reduction), f"{tag} value {reduction}")
            g_full = jax.grad(full, argnums=(0, 1))(x, x2)
            g_outer = jax.jit(jax.grad(sharded, argnums=(0, 1)))(shard(x), shard(x2))

            def inner(a, b, y, *ex):
                kw = dict(zip(names, ex))
                return jax.grad(lambda p, q: loss(p, q, y, axis_name="data", **kw), argnums=(0, 1))(a, b)
            g_inner = jax.jit(jax.shard_map(inner, mesh=mesh, in_specs=(data,) * (3 + len(names)),
                                            out_specs=(data, data)))(x, x2, y, *[extra[n] for n in names])
            for g_ref, g_out, g_in in zip(g_full, g_outer, g_inner):
                close(g_out, g_ref, f"{tag} grad (grad of shard_map)", atol=1e-5)
                close(g_in, g_ref, f"{tag} grad (grad inside shard_map)", atol=1e-5)

    # proxy_anchor_loss: per-proxy values [C] from sums over the global batch; proxies replicated.
    proxies = jnp.asarray(rng.normal(size=(6, 6)), jnp.float32)
    for extra in ({}, {"where": where}):
        names = sorted(extra)

        def pa_full(a, p, reduction="mean"):
            return E.proxy_anchor_loss(a, p, labels, alpha=8.0, reduction=reduction, **extra)

        def pa_sharded(a, p, reduction="mean"):
            def local(a, p, y, *ex):
                return E.proxy_anchor_loss(a, p, y, alpha=8.0, reduction=reduction, axis_name="data",
                                           **dict(zip(names, ex)))
            return jax.shard_map(local, mesh=mesh, in_specs=(data, P(), data) + (data,) * len(names),
                                 out_specs=P())(a, p, labels, *[extra[n] for n in names])

        for reduction in ("mean", "none"):
            close(jax.jit(pa_sharded, static_argnums=2)(shard(x), proxies, reduction), pa_full(x, proxies, reduction),
                  f"proxy_anchor_loss {names} value {reduction}")
        g_ref = jax.grad(pa_full, argnums=(0, 1))(x, proxies)
        g_out = jax.jit(jax.grad(pa_sharded, argnums=(0, 1)))(shard(x), proxies)
        for a, b in zip(g_out, g_ref):
            close(a, b, f"proxy_anchor_loss {names} grad (grad of shard_map)", atol=1e-5)

        def pa_inner(a, p, y, *ex):
            kw = dict(zip(names, ex))
            return jax.grad(lambda q: E.proxy_anchor_loss(q, p, y, alpha=8.0, axis_name="data", **kw))(a)
        g_in = jax.jit(jax.shard_map(pa_inner, mesh=mesh, in_specs=(data, P(), data) + (data,) * len(names),
                                     out_specs=data))(x, proxies, labels, *[extra[n] for n in names])
        close(g_in, g_ref[0], f"proxy_anchor_loss {names} grad (grad inside shard_map)", atol=1e-5)

    # pmap: the same global value on every device.
    xs, x2s = x.reshape(8, B // 8, 6), x2.reshape(8, B // 8, 6)
    ys = labels.reshape(8, B // 8)
    out = jax.pmap(lambda a, b, y: E.clip_loss(a, b, axis_name="i"), axis_name="i")(xs, x2s, ys)
    close(out, np.full(8, E.clip_loss(x, x2)), "clip_loss under pmap")
    out = jax.pmap(lambda a, y: E.supervised_contrastive_loss(a, y, axis_name="i"), axis_name="i")(xs, ys)
    close(out, np.full(8, E.supervised_contrastive_loss(x, labels)), "supervised_contrastive_loss under pmap")

    # Two mesh axes gathered together: axis_name=("x", "y").
    mesh2 = jax.make_mesh((2, 4), ("x", "y"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
    spec = P(("x", "y"))
    for name in ("supervised_contrastive_loss", "siglip_loss"):
        loss, y = LOSSES[name]
        fn = jax.shard_map(lambda a, b, y: loss(a, b, y, axis_name=("x", "y")), mesh=mesh2,
                           in_specs=(spec, spec, spec), out_specs=P())
        close(jax.jit(fn)(x, x2, y), loss(x, x2, y), f"{name} over two mesh axes")
        close(jax.jit(jax.grad(fn))(x, x2, y), jax.grad(lambda a: loss(a, x2, y))(x), f"{name} grad, two axes",
              atol=1e-5)
    print("SHARDED-OK")
    '''
)


def test_global_batch_equals_single_device():
    proc = run_with_devices(_SCRIPT)
    assert proc.returncode == 0 and "SHARDED-OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-5000:]
