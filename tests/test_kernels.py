"""The Pallas kernels (jaxloss/_kernels.py) equal the XLA computations, run in interpret mode on CPU.

References: the XLA path ``jax.nn.logsumexp(z) - z[label]`` (and its autodiff
gradient), a float64 NumPy transcription of the same formula, and for the linear
head the same on the materialised ``hidden @ weight``. Both kernel layouts (the
GPU/Triton one with masked loads and an in-kernel vocabulary loop, the TPU/Mosaic
one with a (rows, vocabulary) grid) run here in Pallas interpret mode, with
blocks small enough that several vocabulary blocks, a partial last vocabulary
block and a partial last row block all occur. Cross-platform lowering (to the
Triton and Mosaic custom calls) is checked without the hardware.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss import _kernels

N, V, D = 13, 300, 24  # 13 rows: a partial row block; 300 columns: a partial vocabulary block


@pytest.fixture(params=["gpu", "tpu"])
def layout(request, monkeypatch):
    # Small blocks so that the vocabulary streams over several blocks with a tail of 44 columns.
    monkeypatch.setattr(_kernels, "_BLOCKS", {
        ("ce", "gpu"): (8, 64), ("ce", "tpu"): (8, 128),
        ("linear", "gpu"): (16, 64), ("linear", "tpu"): (8, 128),
    })
    monkeypatch.setattr(_kernels, "_GPU_BLOCK_D", 16)  # D = 24: a partial feature tile on GPU
    monkeypatch.setattr(_kernels, "_LINEAR_BACKWARD_CHUNK", 128)  # two chunks and a tail of 44
    _kernels._force_interpret(True, request.param)
    yield request.param
    _kernels._force_interpret(False)


def _logits(dtype=jnp.float32, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    z = (3.0 * jax.random.normal(k1, (N, V))).astype(dtype)
    y = jax.random.randint(k2, (N,), 0, V)
    return z, y


def _xla_statistics(z, y):
    """The XLA computation the kernels replace: logsumexp, the label's logit and the logit sum, float32."""
    z = z.astype(jnp.float32)
    return jax.nn.logsumexp(z, axis=-1), jnp.take_along_axis(z, y[:, None], axis=-1)[:, 0], jnp.sum(z, axis=-1)


def _objective(statistics):
    """A scalar that weighs each row's three statistics differently (every cotangent nonzero)."""
    a, b, c = jax.random.normal(jax.random.key(3), (3, N))
    return jnp.sum(a * statistics[0] + b * statistics[1] + c * statistics[2]), statistics


def _numpy_cross_entropy(z, y):
    """Float64 NumPy transcription of ``logsumexp(z) - z[y]`` (labels in range)."""
    z, y = np.asarray(z, np.float64), np.asarray(y)
    top = z.max(axis=1)
    return top + np.log(np.exp(z - top[:, None]).sum(axis=1)) - z[np.arange(len(y)), y]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_cross_entropy_statistics_value_and_gradient_equal_xla(layout, dtype):
    z, y = _logits(dtype)
    kernel = jax.jit(jax.value_and_grad(lambda z: _objective(_kernels.cross_entropy_statistics(z, y)), has_aux=True))
    (_, got), d_got = kernel(z)
    (_, want), d_want = jax.value_and_grad(lambda z: _objective(_xla_statistics(z, y)), has_aux=True)(z)
    for g, w in zip(got, want):
        assert g.dtype == jnp.float32 and g.shape == (N,)
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(got[0] - got[1], _numpy_cross_entropy(z.astype(jnp.float32), y), rtol=1e-6)
    assert d_got.dtype == dtype
    if dtype == jnp.float32:
        np.testing.assert_allclose(d_got, d_want, rtol=1e-6, atol=1e-6)
    else:
        # Both gradients are float32 numbers rounded to bfloat16: at most one bfloat16 ulp apart.
        np.testing.assert_allclose(d_got.astype(jnp.float32), d_want.astype(jnp.float32), rtol=2 ** -7, atol=1e-6)


def test_cross_entropy_edge_rows_match_the_loss_xla_path(layout):
    """Out-of-range labels and a NaN logit give NaN in their row only; logits of magnitude 1e4 stay finite.

    Gradients equal the loss's everywhere, also at out-of-range labels (``softmax`` flows back).
    """
    z, y = _logits(seed=2)
    y = y.at[1].set(-1).at[4].set(V)
    z = z.at[7, 150].set(jnp.nan).at[9:, 0].set(1e4).at[9:, 5].set(-1e4)
    bad = np.isin(np.arange(N), [1, 4, 7])
    row_weights = jax.random.uniform(jax.random.key(7), (N,))

    def loss(values):
        return jnp.sum(row_weights * values), values

    kernel = jax.value_and_grad(lambda z: loss(_kernels.cross_entropy(z, y)), has_aux=True)
    xla = jax.value_and_grad(lambda z: loss(jaxloss.classification.softmax_cross_entropy_with_integer_labels(
        z, y, reduction="none")), has_aux=True)
    (_, got), d_got = jax.jit(kernel)(z)
    (_, want), d_want = xla(z)
    got, want = np.asarray(got), np.asarray(want)
    assert np.isnan(got[bad]).all() and np.isnan(want[bad]).all()
    np.testing.assert_allclose(got[~bad], want[~bad], rtol=1e-6)
    d_got, d_want = np.asarray(d_got), np.asarray(d_want)
    finite_rows = np.arange(N) != 7  # the NaN logit's row has NaN gradients on both paths
    assert np.isfinite(d_got[finite_rows]).all() and np.isnan(d_got[7]).all() and np.isnan(d_want[7]).all()
    np.testing.assert_allclose(d_got[finite_rows], d_want[finite_rows], rtol=1e-6, atol=1e-7)


def test_empty_batch_gives_zeros_and_zero_gradient(layout):
    z = jnp.zeros((0, V))
    y = jnp.zeros((0,), jnp.int32)
    value, grad = jax.value_and_grad(lambda z: jnp.sum(_kernels.cross_entropy(z, y)))(z)
    assert value == 0.0 and grad.shape == (0, V)


def _linear_inputs(dtype=jnp.float32, seed=5):
    k = jax.random.split(jax.random.key(seed), 3)
    h = jax.random.normal(k[0], (N, D)).astype(dtype)
    w = (0.4 * jax.random.normal(k[1], (D, V))).astype(dtype)
    y = jax.random.randint(k[2], (N,), 0, V)
    return h, w, y


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_linear_statistics_value_and_gradients_equal_xla(layout, dtype):
    h, w, y = _linear_inputs(dtype)

    def kernel(h, w):
        return _objective(_kernels.linear_cross_entropy_statistics(h, w, y))

    def xla_of_logits(z):
        return _objective(_xla_statistics(z, y))

    def xla(h, w):
        return xla_of_logits(jnp.matmul(h, w, preferred_element_type=jnp.float32))

    (_, got), d_got = jax.jit(jax.value_and_grad(kernel, argnums=(0, 1), has_aux=True))(h, w)
    (_, want), d_want = jax.value_and_grad(xla, argnums=(0, 1), has_aux=True)(h, w)
    for g, v in zip(got, want):
        np.testing.assert_allclose(g, v, rtol=1e-6, atol=1e-5)
    z64 = np.asarray(h.astype(jnp.float32), np.float64) @ np.asarray(w.astype(jnp.float32), np.float64)
    np.testing.assert_allclose(got[0] - got[1], _numpy_cross_entropy(z64, y), rtol=1e-5)
    for g, v in zip(d_got, d_want):
        assert g.dtype == dtype
        if dtype == jnp.float32:
            np.testing.assert_allclose(g, v, rtol=1e-5, atol=1e-6)
        else:
            # Autodiff keeps d_z = dL/dz in float32; the kernel path rounds it to bfloat16 before
            # the two products (as large_vocab's XLA path does, and tensor cores want): 2^-9
            # per element summed over V columns, about 2^-8 of the gradient's norm here.
            g, v = np.asarray(g.astype(jnp.float32)), np.asarray(v.astype(jnp.float32))
            assert np.linalg.norm(g - v) <= 2 ** -7 * np.linalg.norm(v)
    if dtype == jnp.bfloat16:
        # Exactly that rounding, from XLA's d_z: equal to one bfloat16 rounding of the result.
        d_z = jax.grad(lambda z: xla_of_logits(z)[0])(jnp.matmul(h, w, preferred_element_type=jnp.float32))
        d_z = d_z.astype(jnp.bfloat16)
        d_h = jnp.matmul(d_z, w.T, preferred_element_type=jnp.float32).astype(jnp.bfloat16)
        d_w = jnp.matmul(h.T, d_z, preferred_element_type=jnp.float32).astype(jnp.bfloat16)
        for g, v in zip(d_got, (d_h, d_w)):
            np.testing.assert_allclose(g.astype(jnp.float32), v.astype(jnp.float32), rtol=2 ** -7, atol=1e-6)


def test_linear_cross_entropy_gives_nan_for_out_of_range_labels():
    h, w, y = _linear_inputs(seed=6)
    y = y.at[2].set(V).at[5].set(-3)
    _kernels._force_interpret(True)  # one layout: the NaN is set outside the kernels
    try:
        got = np.asarray(_kernels.linear_cross_entropy(h, w, y))
    finally:
        _kernels._force_interpret(False)
    keep = ~np.isin(np.arange(N), [2, 5])
    assert np.isnan(got[~keep]).all()
    expected = _numpy_cross_entropy(np.asarray(h) @ np.asarray(w), np.clip(y, 0, V - 1))
    np.testing.assert_allclose(got[keep], expected[keep], rtol=1e-5)


def test_use_pallas_is_false_on_cpu_and_honours_the_environment_variable(monkeypatch):
    z, _ = _logits()
    h, w, _ = _linear_inputs()
    monkeypatch.delenv(_kernels.DISABLE_ENV, raising=False)
    assert jax.default_backend() == "cpu"
    assert not _kernels.use_pallas(z) and not _kernels.use_pallas(h, w)
    assert not jax.jit(lambda z: jnp.asarray(_kernels.use_pallas(z)))(z)  # under jit: the default backend
    _kernels._force_interpret(True)
    try:
        assert _kernels.use_pallas(z) and _kernels.use_pallas(h, w)
        assert not _kernels.use_pallas(z.astype(jnp.int32))  # not a kernel dtype
        assert not _kernels.use_pallas(h, w.T)  # weight not [D, V]
        assert not _kernels.use_pallas(jnp.zeros((0, V)))  # empty batch: the XLA path
        monkeypatch.setenv(_kernels.DISABLE_ENV, "1")
        assert not _kernels.use_pallas(z) and not _kernels.use_pallas(h, w)
    finally:
        _kernels._force_interpret(False)


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_kernels_lower_for_gpu_and_tpu_without_the_hardware(platform, monkeypatch):
    """Pallas -> Triton IR (GPU) and Pallas -> Mosaic (TPU) lowering succeeds for forward and backward."""
    monkeypatch.setattr(_kernels, "_layout_forced", "gpu" if platform == "cuda" else "tpu")
    z = jax.ShapeDtypeStruct((64, 1000), jnp.bfloat16)
    h = jax.ShapeDtypeStruct((64, 96), jnp.bfloat16)
    w = jax.ShapeDtypeStruct((96, 1000), jnp.bfloat16)
    y = jax.ShapeDtypeStruct((64,), jnp.int32)

    def loss(z, y):
        return jnp.sum(_kernels.cross_entropy(z, y, interpret=False))

    def linear_loss(h, w, y):
        return jnp.sum(_kernels.linear_cross_entropy(h, w, y, interpret=False))

    marker = "xla.gpu.triton" if platform == "cuda" else "tpu_custom_call"
    for fn, args in ((jax.grad(loss), (z, y)), (jax.grad(linear_loss, argnums=(0, 1)), (h, w, y))):
        if platform == "cuda":
            text = jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",)).as_text()
        else:
            text = jax.export.export(jax.jit(fn), platforms=["tpu"])(*args).mlir_module()
        assert text.count(marker) >= 2  # the forward kernel and the gradient kernel


@pytest.mark.parametrize("options", [
    {},
    {"label_smoothing": 0.1},
    {"z_loss_weight": 1e-3, "ignore_index": 7},
    {"label_smoothing": 0.2, "ignore_index": 7},
])
def test_the_loss_takes_the_kernel_path_with_the_same_value_and_gradients(options):
    # softmax_cross_entropy_with_integer_labels dispatches to the kernel where use_pallas says so
    # (a GPU or TPU; forced here in interpret mode). Masking, ignore_index, smoothing, z-loss and the
    # reduction stay in the loss: value and gradients equal the XLA path's, a masked NaN row included.
    fn = jaxloss.softmax_cross_entropy_with_integer_labels
    z, y = _logits(jnp.bfloat16, seed=5)
    y = y.at[2].set(7)
    z = z.at[4].set(jnp.nan)
    where = jnp.arange(N) != 4

    def loss(z):
        return fn(z, y, where=where, **options)

    value, grad = jax.value_and_grad(loss)(z)  # XLA path (CPU)
    _kernels._force_interpret(True)
    try:
        traced = []
        kernel_value, kernel_grad = jax.value_and_grad(lambda z: traced.append(_kernels.use_pallas(z)) or loss(z))(z)
    finally:
        _kernels._force_interpret(False)
    assert traced == [True]
    np.testing.assert_allclose(float(kernel_value), float(value), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(kernel_grad, np.float32), np.asarray(grad, np.float32), rtol=1e-2, atol=1e-6)
    assert np.all(np.asarray(kernel_grad[4], np.float32) == 0)


def test_use_pallas_keeps_the_xla_path_when_several_devices_could_shard_the_batch(monkeypatch):
    # A pallas_call cannot be partitioned by XLA: under jit with a sharded batch it would be gathered whole
    # onto every device, so with more than one device the kernels are not picked automatically.
    monkeypatch.setattr(_kernels, "_backend", lambda x: "gpu")
    monkeypatch.setattr(jax, "device_count", lambda: 1)
    assert _kernels.use_pallas(jnp.zeros((8, 256), jnp.float32))
    monkeypatch.setattr(jax, "device_count", lambda: 8)
    assert not _kernels.use_pallas(jnp.zeros((8, 256), jnp.float32))


def test_linear_softmax_cross_entropy_takes_the_kernel_path_with_the_same_value_and_gradients(monkeypatch):
    # The fused linear head dispatches to the kernel where use_pallas says so (forced here in interpret
    # mode); where, ignore_index and the reduction stay in the loss. Equal to the chunked XLA path.
    fn = jaxloss.linear_softmax_cross_entropy
    k1, k2, k3 = jax.random.split(jax.random.key(7), 3)
    hidden = jax.random.normal(k1, (N, D), jnp.float32)
    weight = 0.3 * jax.random.normal(k2, (D, V), jnp.float32)
    labels = jax.random.randint(k3, (N,), 0, V).at[3].set(-100)
    hidden = hidden.at[5].set(jnp.nan)
    where = jnp.arange(N) != 5

    def loss(h, w):
        return fn(h, w, labels, ignore_index=-100, where=where)

    value, grads = jax.value_and_grad(loss, argnums=(0, 1))(hidden, weight)
    calls = []
    kernel = _kernels.linear_cross_entropy_statistics
    monkeypatch.setattr(_kernels, "linear_cross_entropy_statistics", lambda *a, **k: calls.append(1) or kernel(*a, **k))
    _kernels._force_interpret(True)
    try:
        kernel_value, kernel_grads = jax.value_and_grad(loss, argnums=(0, 1))(hidden, weight)
    finally:
        _kernels._force_interpret(False)
    assert calls == [1]
    np.testing.assert_allclose(float(kernel_value), float(value), rtol=1e-6)
    for a, b in zip(kernel_grads, grads):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(kernel_grads[0][5]) == 0)
