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


@pytest.mark.parametrize("options", OPTIONS[-1:] + OPTIONS[:1], ids=["all", "plain"])
def test_token_blocks_equal_naive(monkeypatch, options):
    # Tiles of 5 tokens by 32 columns: 12 tokens in 3 blocks (the last one moved back over the
    # second), 100 columns in 4 chunks (the last one moved back over the third).
    monkeypatch.setattr(jaxloss.large_vocab, "_TILE_ELEMENTS", 5 * 32)
    h, w, b, y = _inputs()
    options = dict(options)
    soft_cap = options.pop("soft_cap", None)
    if "ignore_index" in options:
        y = y.at[::3].set(options["ignore_index"])
    f = lambda h, w, b, c: fused(h, w, y, bias=b, chunk_size=32, logit_soft_cap=c, **options)
    g = lambda h, w, b, c: _naive(h, w, b, y, soft_cap=c, **options)
    argnums = (0, 1, 2) if soft_cap is None else (0, 1, 2, 3)
    v1, g1 = jax.jit(jax.value_and_grad(f, argnums=argnums))(h, w, b, soft_cap)
    v2, g2 = jax.value_and_grad(g, argnums=argnums)(h, w, b, soft_cap)
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


@pytest.mark.parametrize("chunk_size", [7, 32])
def test_bfloat16_weight_walked_in_groups_equals_naive(monkeypatch, chunk_size):
    # A bfloat16 weight is bit-cast and walked one group of columns at a time; groups of three
    # chunks here (V=100: the last group and its last chunk are partial and overlap the previous).
    monkeypatch.setattr(jaxloss.large_vocab, "_GROUP_BYTES", 16 * 2 * chunk_size * 3)
    monkeypatch.setattr(jaxloss.large_vocab, "_TILE_ELEMENTS", 5 * chunk_size)  # and 3 token blocks
    h, w, b, y = _inputs(dtype=jnp.bfloat16)
    y = y.at[0].set(99).at[1].set(98).at[2].set(0)  # labels in the overlapping last columns too
    f = lambda h, w, b: fused(h, w, y, bias=b, chunk_size=chunk_size, logit_soft_cap=4.0, z_loss_weight=1e-3)
    g = lambda h, w, b: _naive(h, w, b, y, soft_cap=4.0, z_loss_weight=1e-3)
    v1, g1 = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))(h, w, b)
    v2, g2 = jax.value_and_grad(g, argnums=(0, 1, 2))(h, w, b)
    np.testing.assert_allclose(v1, v2, rtol=1e-5)
    for a, c in zip(g1, g2):
        assert a.dtype == jnp.bfloat16
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


def test_gemma_shape_bfloat16_memory_at_most_a_twentieth_of_naive():
    # Issue 15: N=8192, D=2304, V=256000 bfloat16 (Gemma-2 2B), compile only. XLA:CPU would convert
    # the whole weight to float32 (2.2 GiB) if the loop sliced it as bfloat16, and a whole uint16
    # copy (1.1 GiB) if it were bit-cast at once.
    n, d, v = 8192, 2304, 256000
    naive = _net_bytes(lambda h, w, y: jaxloss.softmax_cross_entropy_with_integer_labels(h @ w, y), n, d, v,
                       jnp.bfloat16)
    ours = _net_bytes(lambda h, w, y: fused(h, w, y), n, d, v, jnp.bfloat16)
    assert ours <= 0.05 * naive, (ours, naive)


def test_memory_at_most_a_tenth_of_naive_and_flat_in_vocabulary():
    # Issue 6: N=8192, D=512, V=32768, float32; measured from XLA's buffer assignment (compile only).
    n, d, v = 8192, 512, 32768
    naive = _net_bytes(lambda h, w, y: jaxloss.softmax_cross_entropy_with_integer_labels(h @ w, y), n, d, v)
    ours = _net_bytes(lambda h, w, y: fused(h, w, y, chunk_size=1024), n, d, v)
    doubled = _net_bytes(lambda h, w, y: fused(h, w, y, chunk_size=1024), n, d, 2 * v)
    assert ours <= 0.10 * naive, (ours, naive)
    assert doubled < 1.10 * ours, (ours, doubled)


# --- linear_sequence_log_probs ---------------------------------------------------------------------
# References: a float64 NumPy transcription of the per-sequence log-probability (sum or mean over
# kept tokens of log_softmax(h @ W + b)[label]; TRL's DPOTrainer.get_batch_logps after its shift,
# trl/trainer/dpo_trainer.py), plain-JAX value and gradients on the materialised logits, and
# jaxloss.preference.sequence_log_probs when that module provides it.

from jaxloss.large_vocab import linear_sequence_log_probs  # noqa: E402


def _seq_inputs(b=3, t=6, d=16, v=100, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(b, t, d)).astype(np.float32)
    w = (0.3 * rng.normal(size=(d, v))).astype(np.float32)
    bias = rng.normal(size=(v,)).astype(np.float32)
    y = rng.integers(0, v, size=(b, t)).astype(np.int32)
    y[0, 4:] = -100         # padding
    y[2, :] = -100          # a sequence with no kept token
    return h, w, bias, y


def _seq_numpy_reference(h, w, bias, y, average=False):
    z = h.astype(np.float64) @ w.astype(np.float64) + bias.astype(np.float64)
    m = z.max(-1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))
    kept = y != -100
    token = np.where(kept, np.take_along_axis(logp, np.where(kept, y, 0)[..., None], -1)[..., 0], 0.0)
    total = token.sum(-1)
    if not average:
        return total
    count = kept.sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def _seq_plain_jax(h, w, bias, y, average=False):
    logp = jax.nn.log_softmax(h @ w + bias[None, None, :], axis=-1)
    kept = y != -100
    token = jnp.where(kept, jnp.take_along_axis(logp, jnp.where(kept, y, 0)[..., None], -1)[..., 0], 0.0)
    total = jnp.sum(token, -1)
    if not average:
        return total
    count = jnp.sum(kept, -1).astype(total.dtype)
    return jnp.where(count > 0, total / jnp.maximum(count, 1.0), 0.0)


@pytest.mark.parametrize("average", [False, True])
def test_sequence_log_probs_matches_numpy_float64(average):
    h, w, bias, y = _seq_inputs()
    got = linear_sequence_log_probs(h, w, y, bias=bias, ignore_index=-100, average=average, chunk_size=32)
    np.testing.assert_allclose(got, _seq_numpy_reference(h, w, bias, y, average), rtol=1e-5, atol=1e-6)
    assert float(got[2]) == 0.0


@pytest.mark.parametrize("average", [False, True])
def test_sequence_log_probs_equal_materialised_logits(average):
    h, w, bias, y = _seq_inputs(seed=1)
    cot = jnp.asarray([0.7, -1.3, 2.0])  # distinct per-sequence cotangents (a DPO-like weighting)

    def fused(h, w, bias):
        return jnp.sum(cot * linear_sequence_log_probs(h, w, y, bias=bias, ignore_index=-100, average=average,
                                                       chunk_size=7))

    def naive(h, w, bias):
        return jnp.sum(cot * _seq_plain_jax(h, w, bias, y, average))

    v1, g1 = jax.value_and_grad(fused, argnums=(0, 1, 2))(h, w, bias)
    v2, g2 = jax.value_and_grad(naive, argnums=(0, 1, 2))(h, w, bias)
    np.testing.assert_allclose(v1, v2, rtol=1e-5)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert np.all(np.asarray(g1[0][2]) == 0)  # no kept token: zero gradient


def test_sequence_log_probs_equal_preference_sequence_log_probs():
    preference = pytest.importorskip("jaxloss.preference")
    if not hasattr(preference, "sequence_log_probs"):
        pytest.skip("jaxloss.preference.sequence_log_probs not available")
    h, w, bias, y = _seq_inputs(seed=2)
    where = jnp.asarray(np.arange(6)[None, :] >= 1).repeat(3, 0)  # prompt token masked
    for average in (False, True):
        def fused(h, w):
            return linear_sequence_log_probs(h, w, y, bias=bias, ignore_index=-100, where=where, average=average)

        def theirs(h, w):
            return preference.sequence_log_probs(h @ w + bias[None, None, :], y, ignore_index=-100, where=where,
                                                 average=average)

        np.testing.assert_allclose(fused(h, w), theirs(h, w), rtol=1e-5, atol=1e-6)
        g1 = jax.grad(lambda h, w: jnp.sum(fused(h, w) * jnp.arange(1.0, 4.0)), argnums=(0, 1))(h, w)
        g2 = jax.grad(lambda h, w: jnp.sum(theirs(h, w) * jnp.arange(1.0, 4.0)), argnums=(0, 1))(h, w)
        for a, b in zip(g1, g2):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_sequence_log_probs_masked_nan_and_out_of_range():
    h, w, bias, y = _seq_inputs(seed=3)
    poisoned = h.copy()
    poisoned[0, 5] = np.nan  # a padded position of sequence 0
    value, grad = jax.value_and_grad(
        lambda h: jnp.sum(linear_sequence_log_probs(h, w, y, bias=bias, ignore_index=-100)))(jnp.asarray(poisoned))
    assert np.isfinite(value) and np.all(np.isfinite(grad)) and np.all(np.asarray(grad[0, 5]) == 0)
    bad = y.copy()
    bad[1, 0] = 100  # == V
    out = linear_sequence_log_probs(h, w, bad, bias=bias, ignore_index=-100)
    assert np.isnan(out[1]) and np.isfinite(out[0])
    poisoned = h.copy()
    poisoned[1, 2, 0] = np.nan  # a kept position: NaN shows
    assert np.isnan(linear_sequence_log_probs(poisoned, w, y, ignore_index=-100)[1])


def test_sequence_log_probs_bfloat16_gives_float32():
    h, w, bias, y = _seq_inputs(seed=4)
    out = linear_sequence_log_probs(jnp.asarray(h, jnp.bfloat16), jnp.asarray(w, jnp.bfloat16), y, ignore_index=-100)
    assert out.dtype == jnp.float32
    ref = _seq_numpy_reference(np.asarray(jnp.asarray(h, jnp.bfloat16), np.float32),
                               np.asarray(jnp.asarray(w, jnp.bfloat16), np.float32), np.zeros(100, np.float32), y)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_sequence_log_probs_errors():
    h, w, bias, y = _seq_inputs()
    with pytest.raises(ValueError, match="jaxloss.linear_sequence_log_probs: hidden"):
        linear_sequence_log_probs(h[0, 0], w, y[0, 0])
    with pytest.raises(ValueError, match="jaxloss.linear_sequence_log_probs: weight"):
        linear_sequence_log_probs(h, w[:-1], y)
    with pytest.raises(ValueError, match="labels"):
        linear_sequence_log_probs(h, w, y[:, :-1])
    with pytest.raises(TypeError, match="labels"):
        linear_sequence_log_probs(h, w, y.astype(np.float32))
    with pytest.raises(ValueError, match="average"):
        linear_sequence_log_probs(h, w, y, average="yes")
    with pytest.raises(ValueError, match="chunk_size"):
        linear_sequence_log_probs(h, w, y, chunk_size=0)


def test_default_chunk_keeps_memory_low():
    # Compile only: temp + output bytes of value_and_grad at 8192 x 512 x 32768
    # float32 against the materialised logits (issue 15's 0.05x target).
    n, d, v = 8192, 512, 32768
    args = (jax.ShapeDtypeStruct((n, d), jnp.float32), jax.ShapeDtypeStruct((d, v), jnp.float32),
            jax.ShapeDtypeStruct((n,), jnp.int32))

    def memory(fn):
        analysis = jax.jit(jax.value_and_grad(fn, argnums=(0, 1))).lower(*args).compile().memory_analysis()
        return analysis.temp_size_in_bytes + analysis.output_size_in_bytes

    def naive(h, w, y):
        logp = jax.nn.log_softmax(h @ w, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], -1))

    ratio = memory(lambda h, w, y: fused(h, w, y)) / memory(naive)
    assert ratio <= 0.05, ratio
