"""``linear_softmax_cross_entropy`` with the vocabulary sharded over devices (tensor parallel).

On a 2 x 4 ``("data", "model")`` mesh of 8 simulated CPU devices, ``weight``
``[D, V]`` and ``bias`` ``[V]`` are split over ``"model"`` in contiguous
column slices and the tokens over ``"data"``; ``axis_name="model"`` combines
the per-slice statistics. Reference: the single-device
``linear_softmax_cross_entropy`` on the full arrays (itself equal to the naive
``softmax_cross_entropy_with_integer_labels(hidden @ weight + bias, ...)``,
tests/test_large_vocab.py). Checked:

* per-token values (``reduction="none"``) and the global mean
  (``jaxloss.reduce(..., axis_name="data")``), with every option together
  (bias, label smoothing, z-loss, soft cap, ``ignore_index``), a
  vocabulary slice that is not a multiple of ``chunk_size`` (labels owned by
  the next device fall on a padding column of this one) and a label on every
  slice boundary;
* gradients w.r.t. ``hidden``, ``weight``, ``bias`` and a learned soft cap,
  both of the ``shard_map``-ed function (``jax.grad`` outside) and taken
  inside the ``shard_map`` body. ``hidden`` and the soft cap are replicated
  over ``"model"``, so their gradient must be summed over it; ``weight`` is
  replicated over ``"data"``;
* ``[B, T, D]`` hidden states, two mesh axes as one vocabulary axis
  (``axis_name=("data", "model")``), the data-parallel path without
  ``axis_name`` (``weight`` replicated, only the tokens sharded), and the same
  ``axis_name`` under ``jax.vmap`` and ``jax.pmap``.

It runs in a subprocess: the device count is fixed when JAX starts.
"""

from __future__ import annotations

import textwrap

from tests.devices import run_with_devices

_SCRIPT = textwrap.dedent(
    r'''
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import PartitionSpec as P

    import jaxloss
    from jaxloss import linear_softmax_cross_entropy as lsce

    assert jax.device_count() == 8, jax.devices()
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
    rng = np.random.default_rng(0)
    N, D, V = 16, 8, 44                 # V_local = 11, chunk 4: a padded last chunk on every device
    IGNORE = -100
    h = jnp.asarray(rng.normal(size=(N, D)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(D, V)) * 0.5, jnp.float32)
    b = jnp.asarray(rng.normal(size=(V,)), jnp.float32)
    cap = jnp.asarray(3.0, jnp.float32)
    y = rng.integers(0, V, size=N).astype(np.int32)
    y[:6] = [0, 10, 11, 21, 22, 43]     # first/last column of slices, incl. ids at V_local multiples
    y[[6, 13]] = IGNORE
    y = jnp.asarray(y)
    OPTIONS = dict(chunk_size=4, label_smoothing=0.1, z_loss_weight=1e-3, ignore_index=IGNORE)

    def close(a, b, what, rtol=1e-5):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        scale = np.max(np.abs(b))
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-2 * scale, err_msg=what)
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-2 * scale)))

    worst = {}

    def full(h, w, b, cap, reduction="mean"):
        return lsce(h, w, y, bias=b, logit_soft_cap=cap, reduction=reduction, **OPTIONS)

    def local_mean(h, w, b, cap, y):
        values = lsce(h, w, y, bias=b, logit_soft_cap=cap, reduction="none", axis_name="model", **OPTIONS)
        return jaxloss.reduce(values, where=y != IGNORE, axis_name="data")

    def local_none(h, w, b, cap, y):
        return lsce(h, w, y, bias=b, logit_soft_cap=cap, reduction="none", axis_name="model", **OPTIONS)

    specs = (P("data"), P(None, "model"), P("model"), P(), P("data"))
    grad_specs = (P("data"), P(None, "model"), P("model"), P())

    none = jax.jit(jax.shard_map(local_none, mesh=mesh, in_specs=specs, out_specs=P("data")))(h, w, b, cap, y)
    worst["values none"] = close(none, full(h, w, b, cap, "none"), "per-token values")
    mean_fn = jax.shard_map(local_mean, mesh=mesh, in_specs=specs, out_specs=P())
    worst["value mean"] = close(jax.jit(mean_fn)(h, w, b, cap, y), full(h, w, b, cap), "mean")

    ref = jax.grad(full, argnums=(0, 1, 2, 3))(h, w, b, cap)
    outer = jax.jit(jax.grad(mean_fn, argnums=(0, 1, 2, 3)))(h, w, b, cap, y)
    inner = jax.jit(jax.shard_map(lambda *a: jax.grad(local_mean, argnums=(0, 1, 2, 3))(*a), mesh=mesh,
                                  in_specs=specs, out_specs=grad_specs))(h, w, b, cap, y)
    for name, r, o, i in zip(("hidden", "weight", "bias", "soft cap"), ref, outer, inner):
        worst[f"grad {name} (grad of shard_map)"] = close(o, r, f"grad {name}, jax.grad outside shard_map")
        worst[f"grad {name} (grad inside shard_map)"] = close(i, r, f"grad {name}, jax.grad inside shard_map")

    # [B, T, D] hidden states, plain options.
    h3, y3 = h.reshape(4, 4, D), jnp.where(y == IGNORE, 1, y).reshape(4, 4)
    f3 = jax.shard_map(lambda h, w, y: lsce(h, w, y, chunk_size=4, reduction="none", axis_name="model"),
                       mesh=mesh, in_specs=(P("data"), P(None, "model"), P("data")), out_specs=P("data"))
    worst["[B, T, D] values"] = close(jax.jit(f3)(h3, w, y3), lsce(h3, w, y3, chunk_size=4, reduction="none"),
                                      "[B, T, D] values")

    # The vocabulary over both mesh axes (8 slices of 6 columns), tokens replicated.
    V8 = 48
    w8 = jnp.asarray(rng.normal(size=(D, V8)) * 0.5, jnp.float32)
    y8 = jnp.asarray(rng.integers(0, V8, size=N), jnp.int32)
    both = ("data", "model")
    f8 = jax.shard_map(lambda h, w, y: lsce(h, w, y, chunk_size=4, axis_name=both), mesh=mesh,
                       in_specs=(P(), P(None, both), P()), out_specs=P())
    worst["two axes value"] = close(jax.jit(f8)(h, w8, y8), lsce(h, w8, y8, chunk_size=4), "two axes value")
    g8 = jax.jit(jax.grad(f8, argnums=(0, 1)))(h, w8, y8)
    r8 = jax.grad(lambda h, w: lsce(h, w, y8, chunk_size=4), argnums=(0, 1))(h, w8)
    worst["two axes grad hidden"] = close(g8[0], r8[0], "two axes grad hidden")
    worst["two axes grad weight"] = close(g8[1], r8[1], "two axes grad weight")

    # Data parallel only (no axis_name): weight replicated, tokens sharded over all 8 devices.
    dp = jax.shard_map(lambda h, w, y: jaxloss.reduce(lsce(h, w, y, chunk_size=4, reduction="none"),
                                                      axis_name=both),
                       mesh=mesh, in_specs=(P(both), P(), P(both)), out_specs=P())
    y_ok = jnp.where(y == IGNORE, 1, y)
    worst["data parallel value"] = close(jax.jit(dp)(h, w, y_ok), lsce(h, w, y_ok, chunk_size=4), "dp value")
    gd = jax.jit(jax.grad(dp, argnums=(0, 1)))(h, w, y_ok)
    rd = jax.grad(lambda h, w: lsce(h, w, y_ok, chunk_size=4), argnums=(0, 1))(h, w)
    worst["data parallel grad hidden"] = close(gd[0], rd[0], "dp grad hidden")
    worst["data parallel grad weight"] = close(gd[1], rd[1], "dp grad weight")
    # The same axis_name under vmap and pmap (vocabulary slices on a mapped leading axis).
    slices = w8.reshape(D, 4, V8 // 4).transpose(1, 0, 2)      # [4, D, V / 4], contiguous column blocks
    r_val = lsce(h, w8, y8, chunk_size=4)
    for name, mapped in (("vmap", jax.vmap(lambda h, w, y: lsce(h, w, y, chunk_size=4, axis_name="m"),
                                           in_axes=(None, 0, None), axis_name="m")),
                         ("pmap", jax.pmap(lambda h, w, y: lsce(h, w, y, chunk_size=4, axis_name="m"),
                                           in_axes=(None, 0, None), axis_name="m", devices=jax.devices()[:4]))):
        worst[f"{name} value"] = close(mapped(h, slices, y8), np.full(4, r_val), f"{name} value")
        g = jax.grad(lambda h, s: mapped(h, s, y8)[0], argnums=(0, 1))(h, slices)
        worst[f"{name} grad hidden"] = close(g[0], r8[0], f"{name} grad hidden")
        worst[f"{name} grad weight"] = close(g[1].transpose(1, 0, 2).reshape(D, V8), r8[1], f"{name} grad weight")

    for k, v in worst.items():
        print(f"{k}: {v:.2e}")
    print("TP-OK")
    '''
)


def test_vocabulary_sharded_equals_single_device():
    proc = run_with_devices(_SCRIPT, timeout=600)
    assert proc.returncode == 0 and "TP-OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-5000:]
