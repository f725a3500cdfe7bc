"""``jaxloss.reduce``: the reduction/weights/where rules of docs/conventions.md.

Unit tests with hand-checkable numbers, hypothesis properties (derandomized,
so every run draws the same examples) and the ``axis_name`` path under
``jax.vmap`` and ``shard_map``.
"""

from __future__ import annotations

import functools
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jaxloss
from tests.devices import run_with_devices


PROPERTY = settings(derandomize=True, max_examples=50, deadline=None)

_finite = st.floats(min_value=-100.0, max_value=100.0, allow_nan=False, width=32)
_positive = st.floats(min_value=0.125, max_value=16.0, allow_nan=False, width=32)
# Few distinct shapes: each new shape compiles every eager op again.
_shapes = hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4)


@functools.partial(jax.jit, static_argnames=("reduction",))
def _masked_grad(values, where, *, reduction):
    # The gradient under jit: an eager jax.grad compiles each of its primitives on its own.
    return jax.grad(lambda a: jaxloss.reduce(a, where=where, reduction=reduction))(values)


def _close(actual, expected, rtol=1e-5, atol=1e-5):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


# ------------------------------------------------------------------ unit tests
def test_hand_values():
    # docs/conventions.md: none = m w l, sum = sum m w l, mean = sum m w l / sum m w.
    v = jnp.array([1.0, 2.0, 3.0, 4.0])
    w = jnp.array([1.0, 2.0, 0.5, 0.0])
    m = jnp.array([True, True, False, True])
    _close(jaxloss.reduce(v), (1 + 2 + 3 + 4) / 4)
    _close(jaxloss.reduce(v, reduction="sum"), 10.0)
    _close(jaxloss.reduce(v, reduction="none"), v)
    _close(jaxloss.reduce(v, weights=w), (1 * 1 + 2 * 2 + 3 * 0.5 + 4 * 0) / (1 + 2 + 0.5 + 0))
    _close(jaxloss.reduce(v, where=m), (1 + 2 + 4) / 3)
    _close(jaxloss.reduce(v, weights=w, where=m), (1 * 1 + 2 * 2 + 4 * 0) / (1 + 2 + 0))
    _close(jaxloss.reduce(v, weights=w, where=m, reduction="sum"), 1 * 1 + 2 * 2)
    _close(jaxloss.reduce(v, weights=w, where=m, reduction="none"), [1.0, 4.0, 0.0, 0.0])



@pytest.mark.parametrize("shape", [(8192, 1), (4096, 2), (2, 64, 64, 1)])
def test_narrow_last_axis_reduces_the_same_values_with_identity_derivative(shape):
    # Values whose last axis has 1 or 2 elements pass a select before the sum (_numerics.reduction_input,
    # XLA:CPU speed); it must change nothing: sums, means and gradients as NumPy's, -0.0 and NaN included.
    values = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    values.reshape(-1)[:3] = [0.0, -0.0, 2.5]
    _close = functools.partial(np.testing.assert_allclose, rtol=1e-5)
    for reduction, expected in (("sum", values.astype(np.float64).sum()), ("mean", values.astype(np.float64).mean())):
        got, grad = jax.jit(jax.value_and_grad(lambda v, r=reduction: jaxloss.reduce(v, reduction=r)))(values)
        _close(got, expected)
        _close(grad, np.full(shape, 1.0 if reduction == "sum" else 1.0 / values.size))
    poisoned = values.copy()
    poisoned.reshape(-1)[-1] = np.nan
    assert np.isnan(jax.jit(lambda v: jaxloss.reduce(v, reduction="sum"))(poisoned))
    # through a loss: the binary cross-entropy of a [rows, 1] column equals that of the flat array
    x = values.reshape(-1, 1)
    y = (x > 0.3).astype(np.float32)
    column = jax.jit(jax.value_and_grad(jaxloss.sigmoid_binary_cross_entropy))(x, y)
    flat = jax.jit(jax.value_and_grad(jaxloss.sigmoid_binary_cross_entropy))(x[:, 0], y[:, 0])
    _close(column[0], flat[0])
    _close(np.asarray(column[1])[:, 0], flat[1])


def test_default_reduction_is_mean_and_returns_scalar():
    out = jaxloss.reduce(jnp.arange(6.0).reshape(2, 3))
    assert out.shape == ()
    _close(out, 2.5)


def test_masked_nan_and_inf_are_exactly_zero_in_value_and_gradient():
    # docs/conventions.md: a masked position contributes exactly 0 even when it is inf or NaN.
    v = jnp.array([1.0, jnp.nan, jnp.inf, 3.0])
    w = jnp.array([2.0, 1.0, 1.0, 1.0])
    m = jnp.array([True, False, False, True])
    none = jaxloss.reduce(v, where=m, weights=w, reduction="none")
    np.testing.assert_array_equal(np.asarray(none), [2.0, 0.0, 0.0, 3.0])
    _close(jaxloss.reduce(v, where=m, weights=w), (2.0 + 3.0) / 3.0)
    _close(jaxloss.reduce(v, where=m, reduction="sum"), 4.0)
    for reduction in ("sum", "mean"):
        gv, gw = jax.grad(lambda a, b: jaxloss.reduce(a, weights=b, where=m, reduction=reduction),
                          argnums=(0, 1))(v, w)
        assert np.all(np.isfinite(gv)) and np.all(np.isfinite(gw))
        np.testing.assert_array_equal(np.asarray(gv)[1:3], 0.0)
        np.testing.assert_array_equal(np.asarray(gw)[1:3], 0.0)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_all_masked_gives_zero_with_zero_finite_gradient(reduction):
    # docs/conventions.md: an empty denominator gives 0.0 with zero gradient, never NaN.
    v = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    w = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    m = jnp.zeros((2, 2), bool)
    assert float(jaxloss.reduce(v, where=m, reduction=reduction)) == 0.0
    assert float(jaxloss.reduce(v, weights=w, where=m, reduction=reduction)) == 0.0
    gv, gw = jax.grad(lambda a, b: jaxloss.reduce(a, weights=b, where=m, reduction=reduction),
                      argnums=(0, 1))(v, w)
    np.testing.assert_array_equal(np.asarray(gv), 0.0)
    np.testing.assert_array_equal(np.asarray(gw), 0.0)


def test_zero_weights_give_zero_mean_with_zero_gradient():
    v = jnp.array([1.0, 2.0, 3.0])
    w = jnp.zeros(3)
    assert float(jaxloss.reduce(v, weights=w)) == 0.0
    gv, gw = jax.grad(lambda a, b: jaxloss.reduce(a, weights=b), argnums=(0, 1))(v, w)
    assert np.all(np.isfinite(gv)) and np.all(np.isfinite(gw))
    np.testing.assert_array_equal(np.asarray(gv), 0.0)


def test_empty_values():
    v = jnp.zeros((0, 3))
    assert float(jaxloss.reduce(v)) == 0.0
    assert float(jaxloss.reduce(v, reduction="sum")) == 0.0
    assert jaxloss.reduce(v, reduction="none").shape == (0, 3)
    assert np.isfinite(float(jax.grad(lambda a: jaxloss.reduce(a))(v).sum()))


def test_broadcastable_weights_and_where():
    # Sample weights [B, 1] and a per-column mask [C] broadcast to values [B, C] (numpy rules).
    rng = np.random.default_rng(0)
    v = rng.normal(size=(4, 3)).astype(np.float32)
    w = rng.uniform(0.5, 2.0, size=(4, 1)).astype(np.float32)
    m = np.array([True, False, True])
    full_w = np.broadcast_to(w, v.shape)
    full_m = np.broadcast_to(m, v.shape)
    expected = (v * full_w)[full_m].sum() / full_w[full_m].sum()
    _close(jaxloss.reduce(v, weights=w, where=m), expected)
    _close(jaxloss.reduce(v, weights=w, where=m, reduction="none"), np.where(full_m, v * full_w, 0.0))
    # A scalar weight and a scalar mask broadcast too.
    _close(jaxloss.reduce(v, weights=jnp.float32(3.0)), v.mean())
    _close(jaxloss.reduce(v, weights=jnp.float32(3.0), reduction="sum"), 3.0 * v.sum())
    assert float(jaxloss.reduce(v, where=jnp.array(False))) == 0.0


def test_dtypes():
    # docs/conventions.md: 16-bit values are reduced in float32; float64 is kept under x64.
    for low in (jnp.bfloat16, jnp.float16):
        v = jnp.array([1.0, 2.0, 3.0], low)
        for reduction in ("none", "sum", "mean"):
            assert jaxloss.reduce(v, reduction=reduction).dtype == jnp.float32
        assert jax.grad(lambda a: jaxloss.reduce(a))(v).dtype == low
    assert jaxloss.reduce(jnp.array([1, 2, 3])).dtype == jnp.float32
    with jax.enable_x64(True):
        v = jnp.array([1.0, 2.0, 3.0], jnp.float64)
        assert jaxloss.reduce(v).dtype == jnp.float64
        assert jaxloss.reduce(v, weights=jnp.ones(3, jnp.float32)).dtype == jnp.float64


def test_bfloat16_sum_is_accumulated_in_float32():
    # 4096 ones summed in bfloat16 would stop at 256; float32 accumulation is exact.
    v = jnp.ones(4096, jnp.bfloat16)
    assert float(jaxloss.reduce(v, reduction="sum")) == 4096.0
    assert float(jaxloss.reduce(v)) == 1.0


@pytest.mark.parametrize("reduction", ["average", "MEAN", "", None, 0])
def test_unknown_reduction_raises(reduction):
    with pytest.raises(ValueError, match=r"jaxloss\.reduce: reduction must be one of 'none', 'sum', 'mean'"):
        jaxloss.reduce(jnp.ones(3), reduction=reduction)


@pytest.mark.parametrize("where", [jnp.ones(3), jnp.ones(3, jnp.int32), np.array([1, 0, 1])])
def test_non_boolean_where_raises_type_error(where):
    with pytest.raises(TypeError, match=r"jaxloss\.reduce: where must be a boolean mask"):
        jaxloss.reduce(jnp.ones(3), where=where)


def test_non_float_weights_raise_type_error():
    with pytest.raises(TypeError, match=r"jaxloss\.reduce: weights must have a floating dtype"):
        jaxloss.reduce(jnp.ones(3), weights=jnp.ones(3, jnp.int32))


@pytest.mark.parametrize("argument,value", [
    ("weights", jnp.ones(2)), ("weights", jnp.ones(4)), ("weights", jnp.ones((1, 4, 3))),
    ("where", jnp.ones(2, bool)), ("where", jnp.ones((4, 2), bool)), ("where", jnp.ones((2, 4, 3), bool)),
])
def test_non_broadcastable_weights_or_where_raise(argument, value):
    with pytest.raises(ValueError, match=rf"jaxloss\.reduce: {argument} must broadcast to the unreduced loss "
                                         r"shape \(4, 3\)"):
        jaxloss.reduce(jnp.ones((4, 3)), **{argument: value})


def test_reduce_under_jit_and_grad():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(5, 2)).astype(np.float32)
    w = rng.uniform(0.1, 1.0, size=(5, 1)).astype(np.float32)
    m = rng.uniform(size=(5, 2)) < 0.7
    f = lambda a, b, c: jaxloss.reduce(a, weights=b, where=c)  # noqa: E731
    _close(jax.jit(f)(v, w, m), f(v, w, m))
    g = jax.grad(f)(v, w, m)
    full_w = np.broadcast_to(w, v.shape)
    _close(g, np.where(m, full_w, 0.0) / (full_w * m).sum())


# ---------------------------------------------------------------- properties
@PROPERTY
@given(shape=_shapes)
def test_property_mean_of_ones_is_one(shape):
    assert float(jaxloss.reduce(jnp.ones(shape))) == 1.0


@PROPERTY
@given(values=hnp.arrays(np.float32, st.integers(1, 8), elements=_finite), data=st.data())
def test_property_masking_equals_slicing(values, data):
    mask = data.draw(hnp.arrays(np.bool_, values.shape))
    for reduction in ("sum", "mean"):
        masked = jaxloss.reduce(values, where=mask, reduction=reduction)
        sliced = jaxloss.reduce(values[mask], reduction=reduction)
        _close(masked, sliced, rtol=1e-5, atol=1e-4)
    weights = data.draw(hnp.arrays(np.float32, values.shape, elements=_positive))
    _close(jaxloss.reduce(values, weights=weights, where=mask),
           jaxloss.reduce(values[mask], weights=weights[mask]), rtol=1e-5, atol=1e-4)


@PROPERTY
@given(values=hnp.arrays(np.float32, _shapes, elements=_finite), data=st.data(),
       scale=st.floats(min_value=2.0 ** -10, max_value=2.0 ** 10, width=32))
def test_property_scaling_weights_does_not_change_the_mean(values, data, scale):
    weights = data.draw(hnp.arrays(np.float32, values.shape, elements=_positive))
    base = jaxloss.reduce(values, weights=weights)
    scaled = jaxloss.reduce(values, weights=np.float32(scale) * weights)
    _close(scaled, base, rtol=1e-4, atol=1e-4)


@PROPERTY
@given(values=hnp.arrays(np.float32, _shapes, elements=_finite), data=st.data())
def test_property_sum_is_mean_times_count(values, data):
    mask = data.draw(hnp.arrays(np.bool_, values.shape))
    total = jaxloss.reduce(values, where=mask, reduction="sum")
    mean = jaxloss.reduce(values, where=mask)
    _close(total, float(mean) * int(mask.sum()), rtol=1e-5, atol=1e-3)
    _close(total, values[mask].astype(np.float64).sum(), rtol=1e-5, atol=1e-3)


@PROPERTY
@given(values=hnp.arrays(np.float32, _shapes, elements=_finite))
def test_property_all_masked_is_zero_with_zero_gradient(values):
    mask = np.zeros(values.shape, bool)
    for reduction in ("sum", "mean"):
        assert float(jaxloss.reduce(values, where=mask, reduction=reduction)) == 0.0
        np.testing.assert_array_equal(np.asarray(_masked_grad(values, mask, reduction=reduction)), 0.0)


@PROPERTY
@given(values=hnp.arrays(np.float32, _shapes, elements=_finite), data=st.data())
def test_property_none_is_masked_weighted_values(values, data):
    weights = data.draw(hnp.arrays(np.float32, values.shape, elements=_positive))
    mask = data.draw(hnp.arrays(np.bool_, values.shape))
    none = jaxloss.reduce(values, weights=weights, where=mask, reduction="none")
    _close(none, np.where(mask, values * weights, 0.0), rtol=1e-6, atol=1e-6)
    mean = jaxloss.reduce(values, weights=weights, where=mask)
    denominator = weights[mask].astype(np.float64).sum()
    expected = (values * weights)[mask].astype(np.float64).sum() / denominator if mask.any() else 0.0
    _close(mean, expected, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------- axis_name
def test_axis_name_under_vmap_equals_the_global_value():
    # Inside a mapped axis, numerator and denominator are psum-ed: every member of the
    # batch sees the full-batch value.
    rng = np.random.default_rng(2)
    v = rng.normal(size=(4, 5)).astype(np.float32)
    w = rng.uniform(0.5, 2.0, size=(4, 5)).astype(np.float32)
    m = rng.uniform(size=(4, 5)) < 0.6
    for reduction in ("sum", "mean"):
        local = jax.vmap(lambda a, b, c: jaxloss.reduce(a, weights=b, where=c, reduction=reduction,
                                                        axis_name="b"), axis_name="b")(v, w, m)
        expected = jaxloss.reduce(v, weights=w, where=m, reduction=reduction)
        assert local.shape == (4,)
        _close(local, np.full(4, float(expected)))
    # One member entirely masked still gets the global value; all masked everywhere gives 0.
    m2 = m.copy()
    m2[0] = False
    local = jax.vmap(lambda a, c: jaxloss.reduce(a, where=c, axis_name="b"), axis_name="b")(v, m2)
    _close(local, np.full(4, v[m2].mean()))
    zero = jax.vmap(lambda a, c: jaxloss.reduce(a, where=c, axis_name="b"), axis_name="b")(v, np.zeros_like(m))
    np.testing.assert_array_equal(np.asarray(zero), 0.0)


def test_axis_name_gradient_under_vmap_matches_global_gradient():
    rng = np.random.default_rng(3)
    v = rng.normal(size=(3, 4)).astype(np.float32)
    m = rng.uniform(size=(3, 4)) < 0.7

    def local_mean(a):
        return jax.vmap(lambda x, c: jaxloss.reduce(x, where=c, axis_name="b"), axis_name="b")(a, m)[0]

    _close(jax.grad(local_mean)(v), jax.grad(lambda a: jaxloss.reduce(a, where=m))(v))


_SHARD_MAP_SCRIPT = textwrap.dedent("""
    import os
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, PartitionSpec as P
    import jaxloss

    assert len(jax.devices()) == 4, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("data",))
    rng = np.random.default_rng(0)
    v = rng.normal(size=(8, 3)).astype(np.float32)
    w = rng.uniform(0.5, 2.0, size=(8, 3)).astype(np.float32)
    m = rng.uniform(size=(8, 3)) < 0.6
    m[:2] = False  # the first device's shard is entirely masked
    for reduction in ("sum", "mean"):
        f = jax.shard_map(lambda a, b, c: jaxloss.reduce(a, weights=b, where=c, reduction=reduction,
                                                         axis_name="data")[None],
                          mesh=mesh, in_specs=(P("data"), P("data"), P("data")), out_specs=P("data"))
        local = np.asarray(jax.jit(f)(v, w, m))
        expected = float(jaxloss.reduce(v, weights=w, where=m, reduction=reduction))
        assert local.shape == (4,), local.shape
        np.testing.assert_allclose(local, expected, rtol=1e-5, atol=1e-6)
    print("OK")
""")


def test_axis_name_under_shard_map_equals_the_global_value():
    # Four CPU devices need XLA_FLAGS before JAX starts: run in a fresh interpreter.
    result = run_with_devices(_SHARD_MAP_SCRIPT, devices=4, timeout=300)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]
