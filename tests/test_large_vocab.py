"""linear_softmax_cross_entropy equals the naive logits path, without its memory.

Reference: the naive path ``softmax_cross_entropy_with_integer_labels(hidden @ weight + bias, ...)``
(itself checked against torch ``cross_entropy`` in tests/test_classification.py), and a float64
NumPy transcription of the same formula for the plain case.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss import linear_softmax_cross_entropy as fused


def _inputs(n=12, d=16, v=100, seed=0, dtype=jnp.float32):
    k = jax.random.split(jax.random.key(seed), 4)
    h = jax.random.normal(k[0], (n, d), dtype)
    w = (jax.random.normal(k[1], (d, v)) * 0.3).astype(dtype)
    b = jax.random.normal(k[2], (v,), dtype)
    y = jax.random.randint(k[3], (n,), 0, v)
    return h, w, b, y


def _naive(h, w, b, y, soft_cap=None, **kwargs):
    z = jnp.matmul(h, w, preferred_element_type=jnp.float32)
    z = z + jnp.broadcast_to(b.astype(jnp.float32), z.shape)
    if soft_cap is not None:
        z = soft_cap * jnp.tanh(z / soft_cap)
    return jaxloss.softmax_cross_entropy_with_integer_labels(z, y, **kwargs)


def test_matches_numpy_float64_transcription():
    h, w, b, y = _inputs()
    z = np.asarray(h, np.float64) @ np.asarray(w, np.float64) + np.asarray(b, np.float64)[None, :]
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    expected = lse - z[np.arange(len(y)), np.asarray(y)]
    got = fused(h, w, y, bias=b, chunk_size=32, reduction="none")
    np.testing.assert_allclose(got, expected, rtol=1e-5)


OPTIONS = [
    {},
    {"label_smoothing": 0.1},
    {"z_loss_weight": 1e-3},
    {"ignore_index": -100},
    {"soft_cap": 5.0},
    {"label_smoothing": 0.2, "z_loss_weight": 1e-4, "ignore_index": -100, "soft_cap": 3.0},
]


@pytest.mark.parametrize("options", OPTIONS, ids=[",".join(o) or "plain" for o in OPTIONS])
@pytest.mark.parametrize("chunk_size", [7, 32, 100, 4096])
def test_value_and_gradients_equal_naive(options, chunk_size):
    h, w, b, y = _inputs()
    options = dict(options)
    soft_cap = options.pop("soft_cap", None)
    if "ignore_index" in options:
        y = y.at[::3].set(options["ignore_index"])

    def f(h, w, b):
        return fused(h, w, y, bias=b, chunk_size=chunk_size, logit_soft_cap=soft_cap, **options)

    def g(h, w, b):
        return _naive(h, w, b, y, soft_cap=soft_cap, **options)

    v1, g1 = jax.value_and_grad(f, argnums=(0, 1, 2))(h, w, b)
    v2, g2 = jax.value_and_grad(g, argnums=(0, 1, 2))(h, w, b)
    np.testing.assert_allclose(v1, v2, rtol=1e-5)
    for a, c in zip(g1, g2):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6 * float(jnp.max(jnp.abs(c))))


def test_soft_cap_gradient_matches_naive():
    h, w, b, y = _inputs()
    d1 = jax.grad(lambda c: fused(h, w, y, bias=b, chunk_size=32, logit_soft_cap=c))(4.0)
    d2 = jax.grad(lambda c: _naive(h, w, b, y, soft_cap=c))(4.0)
    np.testing.assert_allclose(d1, d2, rtol=1e-5)


def test_bfloat16_within_rounding_and_float32_result():
    h, w, b, y = _inputs(dtype=jnp.bfloat16)
    v1, g1 = jax.value_and_grad(lambda h, w: fused(h, w, y, bias=b, chunk_size=32), argnums=(0, 1))(h, w)
    v2, g2 = jax.value_and_grad(lambda h, w: _naive(h, w, b, y), argnums=(0, 1))(h, w)
    assert v1.dtype == jnp.float32
    assert g1[0].dtype == jnp.bfloat16 and g1[1].dtype == jnp.bfloat16
    np.testing.assert_allclose(v1, v2, rtol=1e-5)
    for a, c in zip(g1, g2):
        # bfloat16 has 8 bits of mantissa: agree to its rounding (2**-8 relative to the largest entry).
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(c, np.float32),
                                   atol=2.0**-7 * float(jnp.max(jnp.abs(c.astype(jnp.float32)))))


def test_batch_shape_where_and_out_of_range_labels():
    h, w, b, y = _inputs(n=12)
    h3, y3 = h.reshape(3, 4, 16), y.reshape(3, 4).at[1, 2].set(100)
    out = fused(h3, w, y3, bias=b, chunk_size=32, reduction="none")
    assert out.shape == (3, 4)
    assert np.isnan(out[1, 2]) and np.isfinite(np.delete(np.asarray(out).ravel(), 6)).all()
    where = jnp.ones((3, 4), bool).at[1, 2].set(False)
    masked = fused(h3.at[1, 2].set(jnp.nan), w, y3, bias=b, chunk_size=32, where=where)
    expected = _naive(h3, w, b, jnp.where(where, y3, 0), where=where)
    np.testing.assert_allclose(masked, expected, rtol=1e-5)


def test_errors_name_function_and_argument():
    h, w, b, y = _inputs()
    with pytest.raises(ValueError, match="linear_softmax_cross_entropy: weight must have shape"):
        fused(h, w.T, y)
    with pytest.raises(ValueError, match="linear_softmax_cross_entropy: labels must have shape"):
        fused(h, w, y[:-1])
    with pytest.raises(ValueError, match="linear_softmax_cross_entropy: bias must have shape"):
        fused(h, w, y, bias=b[:-1])
    with pytest.raises(ValueError, match="chunk_size"):
        fused(h, w, y, chunk_size=0)
    with pytest.raises(TypeError, match="labels must have an integer dtype"):
        fused(h, w, y.astype(jnp.float32))


def _net_bytes(fn, n, d, v, dtype=jnp.float32):
    """Temp + output bytes of jit(value_and_grad) minus the weight gradient's (the memory figure the large-vocabulary docs state)."""
    args = (jax.ShapeDtypeStruct((n, d), dtype), jax.ShapeDtypeStruct((d, v), dtype),
            jax.ShapeDtypeStruct((n,), jnp.int32))
    compiled = jax.jit(jax.value_and_grad(fn, argnums=(0, 1))).lower(*args).compile()
    memory = compiled.memory_analysis()
    return memory.temp_size_in_bytes + memory.output_size_in_bytes - d * v * jnp.dtype(dtype).itemsize


def test_memory_at_most_a_tenth_of_naive_and_flat_in_vocabulary():
    # Issue 6: N=8192, D=512, V=32768, float32; measured from XLA's buffer assignment (compile only).
    n, d, v = 8192, 512, 32768
    naive = _net_bytes(lambda h, w, y: jaxloss.softmax_cross_entropy_with_integer_labels(h @ w, y), n, d, v)
    ours = _net_bytes(lambda h, w, y: fused(h, w, y, chunk_size=1024), n, d, v)
    doubled = _net_bytes(lambda h, w, y: fused(h, w, y, chunk_size=1024), n, d, 2 * v)
    assert ours <= 0.10 * naive, (ours, naive)
    assert doubled < 1.10 * ours, (ours, doubled)
