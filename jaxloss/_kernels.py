"""Pallas kernels for the softmax cross-entropy and the linear (fused) cross-entropy.

Private to the package. What runs where:

* On a GPU or TPU backend (see :func:`use_pallas`) the per-row statistics
  ``lse = logsumexp(z)``, ``z[label]`` and ``sum(z)`` of a ``[N, V]`` logits matrix, and
  of the logits ``hidden @ weight`` of a linear head, are computed by Pallas
  kernels: rows in blocks, the vocabulary streamed in blocks with an online
  log-sum-exp (float32 accumulation whatever the input dtype), so any ``V``
  works and the linear head never materialises ``[N, V]``.
* Everywhere else the callers keep their XLA path. On CPU the kernels run only
  in Pallas interpret mode (``interpret=True`` or :func:`_force_interpret`),
  which the tests use to check them against the XLA computations.

Two layouts of the same computation, chosen by backend:

* ``"gpu"`` (Triton): the grid is over row blocks only; each program walks
  the vocabulary with a loop, loading tiles with masked loads (Triton has no
  out-of-bounds clipping, and its tiles must be powers of two).
* ``"tpu"`` (Mosaic): the grid is ``(row blocks, vocabulary blocks)``, the
  vocabulary axis last and sequential; the running maximum, sum, label
  logit and logit sum live in the output blocks, which stay resident while only the
  vocabulary index changes. Partial edge blocks are masked with an iota.

The backward passes (``jax.custom_vjp``) recompute ``softmax(z)`` from the
saved per-row ``lse``: the only ``[N, V]`` residual is the logits themselves
(none at all for the linear head, whose backward walks the vocabulary in
chunks: one XLA matmul for the chunk's logits, the gradient kernel, two XLA
matmuls for ``d_hidden`` and ``d_weight``).

Masking and reduction stay with the callers: the kernels take already-masked
inputs and return per-row values.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl

Array = jax.Array
Layout = Literal["gpu", "tpu"]
Ref = Any  # a Pallas memory reference (its type is private to jax)
Index = Any  # a grid offset: a traced int32 scalar or a Python int

# Environment variable that turns the kernels off everywhere ("1", "true", "yes").
DISABLE_ENV = "JAXLOSS_DISABLE_PALLAS"

# Untuned defaults (no accelerator was available when they were chosen): rows per
# block and vocabulary columns per block, per kernel and layout. The linear head's
# GPU tiles are larger in rows (each row block reads the whole weight once) and
# feed Triton's dot, whose tiles need at least 16 rows and columns.
_BLOCKS: dict[tuple[str, str], tuple[int, int]] = {
    ("ce", "gpu"): (8, 1024), ("ce", "tpu"): (8, 512),
    ("linear", "gpu"): (64, 128), ("linear", "tpu"): (8, 512),
}
# Feature columns per tile of the linear head's matmul on the GPU layout.
_GPU_BLOCK_D = 64
# Triton warps per program: the CE kernels, the linear head's forward.
_GPU_WARPS = {"ce": 4, "linear": 8}
# Vocabulary columns per chunk of the linear head's backward (XLA matmuls + gradient kernel).
_LINEAR_BACKWARD_CHUNK = 2048

_KERNEL_DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)

_interpret_forced = False
_layout_forced: Layout | None = None


def _force_interpret(enabled: bool = True, layout: Layout | None = None) -> None:
    """Test-only: makes :func:`use_pallas` True on CPU and runs the kernels in interpret mode.

    ``layout`` (``"gpu"`` or ``"tpu"``) also forces the layout, so both run on
    CPU; ``None`` picks it from the backend (``"gpu"`` on CPU).
    """
    global _interpret_forced, _layout_forced
    _interpret_forced = bool(enabled)
    _layout_forced = layout if enabled else None


def _disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _backend(x: object | None) -> str:
    """``"gpu"``, ``"tpu"``, ``"cpu"``...: the platform of ``x``'s devices, else the default backend.

    Under ``jit`` (a tracer has no devices) the default backend decides.
    """
    if x is not None and not isinstance(x, jax.core.Tracer):
        try:
            platforms = {d.platform for d in x.devices()}  # type: ignore[attr-defined]
        except (AttributeError, TypeError, ValueError):
            platforms = set()
        if len(platforms) == 1:
            platform = platforms.pop()
            return "gpu" if platform in ("cuda", "rocm", "gpu") else platform
    return jax.default_backend()


def _layout(x: object | None) -> Layout:
    """The kernel layout for the backend ``x`` lives on (``"gpu"`` off-accelerator, for interpret mode)."""
    if _layout_forced is not None:
        return _layout_forced
    return "tpu" if _backend(x) == "tpu" else "gpu"


def _interpret(x: object | None) -> bool:
    return _interpret_forced or _backend(x) not in ("gpu", "tpu")


def use_pallas(x: object, weight: object | None = None) -> bool:
    """Whether the Pallas kernels should replace the XLA path for logits ``x`` (``[..., V]``).

    For the linear head pass ``hidden`` as ``x`` and ``weight`` (``[D, V]``, of
    ``hidden``'s dtype). True only on a GPU or TPU backend (``x``'s devices, or the default backend
    under ``jit``), for float32/bfloat16/float16 inputs with a non-empty batch
    and vocabulary that fit the layout's block constraints, and when the
    environment variable ``JAXLOSS_DISABLE_PALLAS`` is not set to ``1``. False
    on CPU unless :func:`_force_interpret` is on (tests), and False for a
    concrete array sharded over several devices (XLA cannot partition a
    ``pallas_call``; inside ``shard_map`` values are per-device and fine).
    """
    if _disabled():
        return False
    if not _interpret_forced and _backend(x) not in ("gpu", "tpu"):
        return False
    if not _interpret_forced and jax.device_count() > 1:
        # A pallas_call is one custom call that XLA's partitioner cannot split: under jit with a
        # batch sharded over devices (which cannot be seen here) it would be gathered whole onto
        # every device. With several devices the XLA path, which partitions, is kept.
        return False
    arrays = [a for a in (x, weight) if a is not None]
    if any(getattr(a, "dtype", None) not in _KERNEL_DTYPES for a in arrays):
        return False
    if weight is not None and getattr(weight, "dtype", None) != getattr(x, "dtype", None):
        return False  # the kernel's products take one input dtype
    # A pallas_call is one custom call that XLA cannot partition: an array sharded over several
    # devices would be gathered whole onto each. (Under jit the sharding is not known here;
    # inside shard_map every value is per-device and the kernels are fine.)
    for a in arrays:
        sharding = None if isinstance(a, jax.core.Tracer) else getattr(a, "sharding", None)
        if isinstance(sharding, jax.sharding.Sharding) and len(sharding.device_set) > 1:
            return False
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) < 1:
        return False
    if weight is None:
        rows, vocab = int(np.prod(shape[:-1], dtype=np.int64)), shape[-1]
    else:
        w_shape = tuple(getattr(weight, "shape", ()))
        if len(w_shape) != 2 or w_shape[0] != shape[-1]:
            return False
        rows, vocab = int(np.prod(shape[:-1], dtype=np.int64)), w_shape[1]
    if rows < 1 or vocab < 1 or rows >= 2 ** 31 or vocab >= 2 ** 31:
        return False
    if _layout(x) == "tpu" and not _interpret(x):
        # Mosaic tiles: rows in multiples of 8 sublanes, a vocabulary of at least one lane tile.
        block_rows = max(_BLOCKS[("ce", "tpu")][0], _BLOCKS[("linear", "tpu")][0])
        if rows % block_rows or vocab < 128:
            return False
    return True


# ----------------------------------------------------------------------------- tiles
def _tile(ref: Ref, rows: int, cols: int, r0: Index, c0: Index, n: int, v: int, other: float,
          layout: Layout) -> Array:
    """The ``[rows, cols]`` tile at ``(r0, c0)`` of an ``[n, v]`` ref, ``other`` outside the array.

    GPU: ``ref`` is the whole array, the tile is a masked load. TPU: ``ref`` is
    already the block (edge blocks hold unspecified values), masked here.
    """
    row_ok = (r0 + jax.lax.broadcasted_iota(jnp.int32, (rows, cols), 0)) < n
    col_ok = (c0 + jax.lax.broadcasted_iota(jnp.int32, (rows, cols), 1)) < v
    ok = row_ok & col_ok
    if layout == "gpu":
        from jax.experimental.pallas import triton as plgpu

        loaded: Array = plgpu.load(ref.at[pl.ds(r0, rows), pl.ds(c0, cols)], mask=ok, other=other)
        return loaded
    return jnp.where(ok, ref[...], jnp.asarray(other, ref.dtype))


def _put(ref: Ref, value: Array, r0: Index, n: int, layout: Layout) -> None:
    """Stores a ``[rows, 1]`` column at row ``r0`` of an ``[n, 1]`` ref (rows past ``n`` dropped)."""
    rows = value.shape[0]
    if layout == "gpu":
        from jax.experimental.pallas import triton as plgpu

        ok = (r0 + jax.lax.broadcasted_iota(jnp.int32, (rows, 1), 0)) < n
        plgpu.store(ref.at[pl.ds(r0, rows), pl.ds(0, 1)], value.astype(ref.dtype), mask=ok)
    else:
        ref[...] = value.astype(ref.dtype)


# ------------------------------------------------------------ streaming statistics
# Per row: running maximum, running sum of exp(z - maximum), label logit, sum of the logits.
Carry = tuple[Array, Array, Array, Array]


def _online_update(carry: Carry, z: Array, c0: Index, labels: Array, v: int) -> Carry:
    """One vocabulary block of the online log-sum-exp (Milakov and Gimelshein, 2018).

    ``z`` is the ``[rows, cols]`` float32 block of columns ``c0, c0 + 1, ...``,
    ``-inf`` past the vocabulary ``v``; ``labels`` is ``[rows, 1]``.
    """
    running_max, running_sum, label_logit, logit_sum = carry
    columns = c0 + jax.lax.broadcasted_iota(jnp.int32, z.shape, 1)
    new_max = jnp.maximum(running_max, jnp.max(z, axis=1, keepdims=True))
    # While a row's logits are all -inf its maximum stays -inf and exp(-inf - -inf) would be NaN:
    # shift by 0 there (its running sum is 0 and stays 0). A NaN logit makes the maximum NaN,
    # and the row's log-sum-exp NaN, as on the XLA path.
    shift = jnp.where(new_max == -jnp.inf, 0.0, new_max)
    running_sum = running_sum * jnp.exp(running_max - shift) + jnp.sum(jnp.exp(z - shift), axis=1, keepdims=True)
    label_logit = label_logit + jnp.sum(jnp.where(columns == labels, z, 0.0), axis=1, keepdims=True)
    logit_sum = logit_sum + jnp.sum(jnp.where(columns < v, z, 0.0), axis=1, keepdims=True)
    return new_max, running_sum, label_logit, logit_sum


def _stream(block_logits: Callable[[Index], Array], labels_ref: Ref, out_refs: tuple[Ref, ...], *, n: int, v: int,
            block_rows: int, block_cols: int, layout: Layout) -> None:
    """Writes ``lse``, ``label_logit``, ``logit_sum`` of this program's rows, streaming the vocabulary.

    ``block_logits(c0)`` is the ``[rows, cols]`` float32 logits block of
    columns from ``c0`` (``-inf`` past ``v``). GPU: one program per row block
    loops over the vocabulary. TPU: the grid's second axis is the vocabulary;
    the accumulators live in the resident output blocks (two extra outputs
    hold the running maximum and sum).
    """
    r0 = pl.program_id(0) * block_rows
    if layout == "gpu":
        lse_ref, label_ref, total_ref = out_refs
        labels = _tile(labels_ref, block_rows, 1, r0, 0, n, 1, 0, layout)
        shape = (block_rows, 1)
        init = (jnp.full(shape, -jnp.inf, jnp.float32),) + (jnp.zeros(shape, jnp.float32),) * 3

        def body(j: Array, carry: Carry) -> Carry:
            return _online_update(carry, block_logits(j * block_cols), j * block_cols, labels, v)

        running_max, running_sum, label_logit, logit_sum = jax.lax.fori_loop(0, pl.cdiv(v, block_cols), body, init)
        _put(lse_ref, running_max + jnp.log(running_sum), r0, n, layout)
        _put(label_ref, label_logit, r0, n, layout)
        _put(total_ref, logit_sum, r0, n, layout)
        return
    lse_ref, label_ref, total_ref, max_ref, sum_ref = out_refs
    j = pl.program_id(1)

    @pl.when(j == 0)
    def _init() -> None:
        max_ref[...] = jnp.full(max_ref.shape, -jnp.inf, jnp.float32)
        for ref in (sum_ref, label_ref, total_ref):
            ref[...] = jnp.zeros(ref.shape, jnp.float32)

    carry = (max_ref[...], sum_ref[...], label_ref[...], total_ref[...])
    carry = _online_update(carry, block_logits(j * block_cols), j * block_cols, labels_ref[...], v)
    max_ref[...], sum_ref[...], label_ref[...], total_ref[...] = carry

    @pl.when(j == pl.num_programs(1) - 1)
    def _finish() -> None:
        lse_ref[...] = max_ref[...] + jnp.log(sum_ref[...])


def _blocks(kind: str, layout: Layout, n: int, v: int) -> tuple[int, int]:
    """Row and vocabulary block sizes: powers of two on GPU, clipped to the problem."""
    block_rows, block_cols = _BLOCKS[(kind, layout)]
    if layout == "gpu":
        block_rows = min(block_rows, max(16, pl.next_power_of_2(n)))
        block_cols = min(block_cols, max(16, pl.next_power_of_2(v)))
    else:
        block_cols = min(block_cols, max(128, 128 * pl.cdiv(v, 128)))
    return block_rows, block_cols


def _col_spec(block_rows: int) -> pl.BlockSpec:
    """BlockSpec of an ``[N, 1]`` per-row column on the TPU layout's (rows, vocabulary) grid."""
    return pl.BlockSpec((block_rows, 1), lambda i, j: (i, 0))


def _gpu_params(kind: str) -> Any:
    """Triton compiler parameters: they also select the Triton backend (not Mosaic GPU)."""
    from jax.experimental.pallas import triton as plgpu

    return plgpu.CompilerParams(num_warps=_GPU_WARPS[kind], num_stages=2)


def _tpu_params(*semantics: Literal["parallel", "arbitrary"]) -> Any:
    from jax.experimental.pallas import tpu as pltpu

    return pltpu.CompilerParams(dimension_semantics=semantics)


Statistics = tuple[Array, Array, Array]


def _statistics_call(kernel: Callable[..., None], kind: str, inputs: tuple[Array, ...], in_specs: list[pl.BlockSpec],
                     n: int, v: int, block_rows: int, block_cols: int, layout: Layout, interpret: bool) -> Statistics:
    """Runs a forward kernel built on :func:`_stream`: per-row ``(lse, label_logit, logit_sum)``, ``[N]`` each."""
    column = jax.ShapeDtypeStruct((n, 1), jnp.float32)
    name = f"jaxloss_{kind}_forward"
    if layout == "gpu":
        outs = pl.pallas_call(kernel, out_shape=(column,) * 3, grid=(pl.cdiv(n, block_rows),), interpret=interpret,
                              name=name, compiler_params=_gpu_params(kind))(*inputs)
    else:
        outs = pl.pallas_call(
            kernel, out_shape=(column,) * 5, grid=(pl.cdiv(n, block_rows), pl.cdiv(v, block_cols)),
            in_specs=in_specs + [_col_spec(block_rows)], out_specs=(_col_spec(block_rows),) * 5,
            interpret=interpret, name=name,
            compiler_params=None if interpret else _tpu_params("parallel", "arbitrary"),
        )(*inputs)
    lse, label_logit, logit_sum = (x[:, 0] for x in outs[:3])
    return lse, label_logit, logit_sum


# ------------------------------------------------------- softmax cross-entropy kernels
def _ce_forward_kernel(logits_ref: Ref, labels_ref: Ref, *out_refs: Ref, n: int, v: int, block_rows: int,
                       block_cols: int, layout: Layout) -> None:
    r0 = pl.program_id(0) * block_rows

    def block_logits(c0: Index) -> Array:
        return _tile(logits_ref, block_rows, block_cols, r0, c0, n, v, -jnp.inf, layout).astype(jnp.float32)

    _stream(block_logits, labels_ref, out_refs, n=n, v=v, block_rows=block_rows, block_cols=block_cols,
            layout=layout)


def _ce_forward_call(logits: Array, labels: Array, layout: Layout, interpret: bool) -> Statistics:
    n, v = logits.shape
    block_rows, block_cols = _blocks("ce", layout, n, v)
    kernel = functools.partial(_ce_forward_kernel, n=n, v=v, block_rows=block_rows, block_cols=block_cols,
                               layout=layout)
    tile = pl.BlockSpec((block_rows, block_cols), lambda i, j: (i, j))
    return _statistics_call(kernel, "ce", (logits, labels.reshape(n, 1)), [tile], n, v, block_rows, block_cols,
                            layout, interpret)


def _grad_kernel(logits_ref: Ref, labels_ref: Ref, lse_ref: Ref, g_lse_ref: Ref, g_label_ref: Ref, g_sum_ref: Ref,
                 out_ref: Ref, *, n: int, v: int, block_rows: int, block_cols: int, layout: Layout) -> None:
    """``d z = g_lse * softmax(z) + g_label * onehot(label) + g_sum`` for one ``[rows, cols]`` tile."""
    i, j = pl.program_id(0), pl.program_id(1)
    r0, c0 = i * block_rows, j * block_cols

    def column(ref: Ref) -> Array:
        return _tile(ref, block_rows, 1, r0, 0, n, 1, 0, layout)

    z = _tile(logits_ref, block_rows, block_cols, r0, c0, n, v, -jnp.inf, layout).astype(jnp.float32)
    labels, lse = column(labels_ref), column(lse_ref)
    g_lse, g_label, g_sum = column(g_lse_ref), column(g_label_ref), column(g_sum_ref)
    columns = c0 + jax.lax.broadcasted_iota(jnp.int32, z.shape, 1)
    # softmax(z) recomputed from the saved lse: the backward keeps no [N, V] residual of its own.
    d_z = g_lse * jnp.exp(z - lse) + jnp.where(columns == labels, g_label, 0.0) + g_sum
    if layout == "gpu":
        from jax.experimental.pallas import triton as plgpu

        row_ok = (r0 + jax.lax.broadcasted_iota(jnp.int32, z.shape, 0)) < n
        plgpu.store(out_ref.at[pl.ds(r0, block_rows), pl.ds(c0, block_cols)], d_z.astype(out_ref.dtype),
                    mask=row_ok & (columns < v))
    else:
        out_ref[...] = d_z.astype(out_ref.dtype)  # the parts of an edge block past [n, v] are not written back


def _grad_call(logits: Array, labels: Array, lse: Array, cotangents: Statistics, out_dtype: Any, layout: Layout,
               interpret: bool) -> Array:
    """``d logits`` ``[N, V]`` in ``out_dtype`` from the per-row cotangents of ``(lse, label_logit, logit_sum)``."""
    n, v = logits.shape
    block_rows, block_cols = _blocks("ce", layout, n, v)
    kernel = functools.partial(_grad_kernel, n=n, v=v, block_rows=block_rows, block_cols=block_cols,
                               layout=layout)
    grid = (pl.cdiv(n, block_rows), pl.cdiv(v, block_cols))
    columns = [x.reshape(n, 1) for x in (labels, lse, *cotangents)]
    out_shape = jax.ShapeDtypeStruct((n, v), out_dtype)
    d_logits: Array
    if layout == "gpu":
        d_logits = pl.pallas_call(kernel, out_shape=out_shape, grid=grid, interpret=interpret,
                                  name="jaxloss_ce_grad", compiler_params=_gpu_params("ce"))(logits, *columns)
        return d_logits
    tile = pl.BlockSpec((block_rows, block_cols), lambda i, j: (i, j))
    d_logits = pl.pallas_call(kernel, out_shape=out_shape, grid=grid,
                              in_specs=[tile] + [_col_spec(block_rows)] * len(columns), out_specs=tile,
                              interpret=interpret, name="jaxloss_ce_grad",
                              compiler_params=None if interpret else _tpu_params("parallel", "parallel"),
                              )(logits, *columns)
    return d_logits


def _float32_cotangents(cotangents: Statistics) -> Statistics:
    g_lse, g_label, g_sum = (g.astype(jnp.float32) for g in cotangents)
    return g_lse, g_label, g_sum


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _ce_statistics(logits: Array, labels: Array, layout: Layout, interpret: bool) -> Statistics:
    return _ce_forward_call(logits, labels, layout, interpret)


def _ce_statistics_fwd(logits: Array, labels: Array, layout: Layout, interpret: bool
                       ) -> tuple[Statistics, tuple[Array, Array, Array]]:
    statistics = _ce_forward_call(logits, labels, layout, interpret)
    return statistics, (logits, labels, statistics[0])


def _ce_statistics_bwd(layout: Layout, interpret: bool, residuals: tuple[Array, Array, Array],
                       cotangents: Statistics) -> tuple[Array, np.ndarray[Any, Any]]:
    logits, labels, lse = residuals
    d_logits = _grad_call(logits, labels, lse, _float32_cotangents(cotangents), logits.dtype, layout, interpret)
    return d_logits, np.zeros(labels.shape, jax.dtypes.float0)


_ce_statistics.defvjp(_ce_statistics_fwd, _ce_statistics_bwd)


def _empty_statistics(batch_shape: tuple[int, ...], *inputs: Array) -> Statistics:
    """Zeros for an empty batch, connected to the inputs so that their gradients are zeros."""
    zero = sum((0.0 * jnp.sum(x.astype(jnp.float32)) for x in inputs), jnp.zeros((), jnp.float32))
    zeros = jnp.zeros(batch_shape, jnp.float32) + zero
    return zeros, zeros, zeros


def cross_entropy_statistics(logits: Array, labels: Array, *, interpret: bool | None = None) -> Statistics:
    """Per row ``(logsumexp(z), z[label], sum(z))`` of logits ``z`` by the Pallas kernels, differentiable.

    ``logits`` ``[..., V]`` float32/bfloat16/float16, ``labels`` ``[...]``
    integer. The three results are float32 of shape ``[...]``. A label outside
    ``[0, V)`` selects no column: its ``label_logit`` is 0 (the caller decides
    what that means; :func:`cross_entropy` makes it NaN). ``jax.grad`` flows to
    ``logits`` only, in ``logits``' dtype: ``g_lse * softmax(z) + g_label *
    onehot(label) + g_sum``, the softmax recomputed from the saved ``lse``.
    ``interpret=None`` picks interpret mode off-accelerator.
    """
    batch_shape, v = logits.shape[:-1], logits.shape[-1]
    flat = logits.reshape(-1, v)
    if flat.shape[0] == 0:
        return _empty_statistics(batch_shape, logits)
    flat_labels = labels.reshape(-1).astype(jnp.int32)
    interpret = _interpret(logits) if interpret is None else interpret
    statistics = _ce_statistics(flat, flat_labels, _layout(logits), bool(interpret))
    lse, label_logit, logit_sum = (x.reshape(batch_shape) for x in statistics)
    return lse, label_logit, logit_sum


def cross_entropy(logits: Array, labels: Array, *, interpret: bool | None = None) -> Array:
    """Per-row softmax cross-entropy ``logsumexp(z) - z[label]`` by the Pallas kernels.

    ``logits`` ``[..., V]`` (float32/bfloat16/float16), ``labels`` ``[...]``
    integer; returns ``[...]`` float32. A label outside ``[0, V)`` gives NaN, a
    NaN logit gives NaN in its row, as the XLA path. No mask, no reduction: the
    caller masks inputs first (double-where) and reduces the rows. Gradients
    equal those of ``softmax_cross_entropy_with_integer_labels(reduction="none")``,
    including at an out-of-range label (the NaN replaces the label's logit, so
    ``softmax`` still flows back, as ``take_class`` does there).
    """
    lse, label_logit, _ = cross_entropy_statistics(logits, labels, interpret=interpret)
    in_range = (labels >= 0) & (labels < logits.shape[-1])
    return lse - jnp.where(in_range, label_logit, jnp.nan)


# ------------------------------------------------------------ linear cross-entropy kernels
def _linear_forward_kernel(h_ref: Ref, w_ref: Ref, labels_ref: Ref, *out_refs: Ref, n: int, d: int, v: int,
                           block_rows: int, block_cols: int, block_d: int, layout: Layout) -> None:
    r0 = pl.program_id(0) * block_rows

    def block_logits(c0: Index) -> Array:
        if layout == "gpu":
            # Feature tiles of block_d (a power of two, as Triton's tiles must be), masked past d.
            def dot_step(k: Array, acc: Array) -> Array:
                h = _tile(h_ref, block_rows, block_d, r0, k * block_d, n, d, 0.0, layout)
                w = _tile(w_ref, block_d, block_cols, k * block_d, c0, d, v, 0.0, layout)
                return acc + jnp.dot(h, w, preferred_element_type=jnp.float32)

            z = jax.lax.fori_loop(0, pl.cdiv(d, block_d), dot_step, jnp.zeros((block_rows, block_cols), jnp.float32))
        else:
            # hidden's block is [rows, D] (the whole feature axis), weight's [D, cols]; an edge
            # block's padding holds unspecified values: padding rows are never written back and
            # padding columns are masked below.
            z = jnp.dot(h_ref[...], w_ref[...], preferred_element_type=jnp.float32)
        columns = c0 + jax.lax.broadcasted_iota(jnp.int32, z.shape, 1)
        return jnp.where(columns < v, z, -jnp.inf)

    _stream(block_logits, labels_ref, out_refs, n=n, v=v, block_rows=block_rows, block_cols=block_cols,
            layout=layout)


def _linear_forward_call(h: Array, w: Array, labels: Array, layout: Layout, interpret: bool) -> Statistics:
    n, d = h.shape
    v = w.shape[1]
    block_rows, block_cols = _blocks("linear", layout, n, v)
    block_d = min(_GPU_BLOCK_D, max(16, pl.next_power_of_2(d)))
    kernel = functools.partial(_linear_forward_kernel, n=n, d=d, v=v, block_rows=block_rows,
                               block_cols=block_cols, block_d=block_d, layout=layout)
    in_specs = [pl.BlockSpec((block_rows, d), lambda i, j: (i, 0)), pl.BlockSpec((d, block_cols), lambda i, j: (0, j))]
    return _statistics_call(kernel, "linear", (h, w, labels.reshape(n, 1)), in_specs, n, v, block_rows, block_cols,
                            layout, interpret)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _linear_statistics(h: Array, w: Array, labels: Array, layout: Layout, interpret: bool) -> Statistics:
    return _linear_forward_call(h, w, labels, layout, interpret)


def _linear_statistics_fwd(h: Array, w: Array, labels: Array, layout: Layout, interpret: bool
                           ) -> tuple[Statistics, tuple[Array, Array, Array, Array]]:
    statistics = _linear_forward_call(h, w, labels, layout, interpret)
    return statistics, (h, w, labels, statistics[0])


def _linear_statistics_bwd(layout: Layout, interpret: bool, residuals: tuple[Array, Array, Array, Array],
                           cotangents: Statistics) -> tuple[Array, Array, np.ndarray[Any, Any]]:
    """Vocabulary chunk by chunk: logits (XLA matmul), ``d z`` (gradient kernel), two XLA matmuls."""
    h, w, labels, lse = residuals
    g = _float32_cotangents(cotangents)
    v = w.shape[1]
    chunk = min(_LINEAR_BACKWARD_CHUNK, v)
    num_full, tail = divmod(v, chunk)

    def chunk_grads(start: Index, w_c: Array) -> tuple[Array, Array]:
        z = jnp.matmul(h, w_c, preferred_element_type=jnp.float32)
        # Labels shifted into the chunk's columns; d_z rounded to the weight's dtype, as autodiff of
        # ``h @ w`` would round it, before the two products.
        d_z = _grad_call(z, labels - start, lse, g, w.dtype, layout, interpret)
        d_h = jnp.matmul(d_z, w_c.T, preferred_element_type=jnp.float32)
        d_w = jnp.matmul(h.T, d_z.astype(h.dtype), preferred_element_type=jnp.float32).astype(w.dtype)
        return d_h, d_w

    def body(k: Array, carry: tuple[Array, Array]) -> tuple[Array, Array]:
        d_h, d_w = carry
        start = k * chunk
        d_h_c, d_w_c = chunk_grads(start, jax.lax.dynamic_slice_in_dim(w, start, chunk, axis=1))
        return d_h + d_h_c, jax.lax.dynamic_update_slice_in_dim(d_w, d_w_c, start, axis=1)

    init = (jnp.zeros(h.shape, jnp.float32), jnp.zeros(w.shape, w.dtype))
    d_h, d_w = jax.lax.fori_loop(0, num_full, body, init)
    if tail:  # the last, narrower chunk, sliced statically (no padded copy of the weight)
        start = num_full * chunk
        d_h_c, d_w_c = chunk_grads(start, w[:, start:])
        d_h = d_h + d_h_c
        d_w = jax.lax.dynamic_update_slice_in_dim(d_w, d_w_c, start, axis=1)
    return d_h.astype(h.dtype), d_w, np.zeros(labels.shape, jax.dtypes.float0)


_linear_statistics.defvjp(_linear_statistics_fwd, _linear_statistics_bwd)


def linear_cross_entropy_statistics(hidden: Array, weight: Array, labels: Array, *,
                                    interpret: bool | None = None) -> Statistics:
    """Per row ``(logsumexp(z), z[label], sum(z))`` of ``z = hidden @ weight``, never materialising ``[N, V]``.

    ``hidden`` ``[..., D]``, ``weight`` ``[D, V]`` (float32/bfloat16/float16),
    ``labels`` ``[...]`` integer; the three results are float32 ``[...]``
    (products accumulate in float32). A label outside ``[0, V)`` selects no
    column (its ``label_logit`` is 0). ``jax.grad`` flows to ``hidden`` and
    ``weight`` in their dtypes; the backward walks the vocabulary in chunks of
    ``_LINEAR_BACKWARD_CHUNK`` columns (temporary memory ``O(N * chunk)``).
    """
    batch_shape, d = hidden.shape[:-1], hidden.shape[-1]
    flat = hidden.reshape(-1, d)
    if flat.shape[0] == 0:
        return _empty_statistics(batch_shape, hidden, weight)
    flat_labels = labels.reshape(-1).astype(jnp.int32)
    interpret = _interpret(hidden) if interpret is None else interpret
    statistics = _linear_statistics(flat, weight, flat_labels, _layout(hidden), bool(interpret))
    lse, label_logit, logit_sum = (x.reshape(batch_shape) for x in statistics)
    return lse, label_logit, logit_sum


def linear_cross_entropy(hidden: Array, weight: Array, labels: Array, *, interpret: bool | None = None) -> Array:
    """Per-row ``logsumexp(z) - z[label]`` of ``z = hidden @ weight`` by the Pallas kernels.

    ``hidden`` ``[..., D]``, ``weight`` ``[D, V]``, ``labels`` ``[...]``;
    returns ``[...]`` float32, NaN where a label is outside ``[0, V)`` or an
    input of the row is NaN (that row then has zero gradient, as in
    ``linear_softmax_cross_entropy``). No mask, no reduction (callers mask first).
    """
    lse, label_logit, _ = linear_cross_entropy_statistics(hidden, weight, labels, interpret=interpret)
    in_range = (labels >= 0) & (labels < weight.shape[1])
    return jnp.where(in_range, lse - label_logit, jnp.nan)
