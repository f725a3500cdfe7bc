"""Large-vocabulary cross-entropy that never materialises the ``[N, V]`` logits.

:func:`linear_softmax_cross_entropy` fuses the output projection of a language
model with the integer-label softmax cross-entropy. The forward pass walks the
vocabulary in chunks (and the tokens in blocks: tiles of about 2^21 logits),
keeping a running log-sum-exp, the label's logit and the sum of the logits;
the backward pass (a ``jax.custom_vjp``) recomputes each tile's logits and
turns them straight into gradients for ``hidden``, ``weight`` and ``bias``.
Memory is ``O(tile)`` instead of ``O(N * V)``; a bfloat16 weight is never
converted to float32 whole (see ``_numerics.column_groups``).

Under ``shard_map`` the vocabulary can also be split across devices (tensor
parallel): with ``axis_name``, each device holds a contiguous slice of the
columns of ``weight`` and the per-token statistics are combined with one
``pmax`` of an ``[N]`` vector and one ``psum`` of a ``[3, N]`` array.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _kernels, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array

def _chunk_logits(h: Array, w_chunk: Array, b_chunk: Array | None, soft_cap: Array | None,
                  new: Array | None = None) -> tuple[Array, Array | None, Array | None]:
    """Logits ``z`` of one vocabulary chunk (float32 or wider), ``dz/du`` and ``dz/dc`` of the soft cap.

    Columns that are not ``new`` (counted by the previous chunk) get ``z = -inf``.
    """
    acc = _numerics.compute_dtype(h, w_chunk)
    u = jnp.matmul(h, w_chunk, preferred_element_type=acc)
    if b_chunk is not None:
        u = u + b_chunk.astype(acc)[None, :]
    if soft_cap is None:
        z, dz_du, dz_dc = u, None, None
    else:
        # Gemma 2's soft cap z = c tanh(u / c), applied after the bias:
        # dz/du = 1 - tanh^2, dz/dc = tanh - (u / c)(1 - tanh^2).
        cap = soft_cap.astype(acc)
        t = jnp.tanh(u / cap)
        z, dz_du = cap * t, 1.0 - jnp.square(t)
        dz_dc = t - (u / cap) * dz_du
    if new is not None:
        z = jnp.where(new[None, :], z, -jnp.inf)
    return z, dz_du, dz_dc


# The columns of a bfloat16 weight are walked in groups of about this many bytes
# (``_numerics.column_groups``).
_GROUP_BYTES = _numerics.COLUMN_GROUP_BYTES


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _vocab_statistics(h: Array, weight: Array, bias: Array | None, labels: Array, soft_cap: Array | None,
                      chunk: int, with_sum: bool = True) -> tuple[Array, Array, Array]:
    """Per token: ``logsumexp_c z_c``, ``z_label`` and ``sum_c z_c`` over the vocabulary.

    Without ``with_sum`` the third is zeros (only label smoothing reads it).
    """
    return _statistics_forward(h, weight, bias, labels, soft_cap, chunk, with_sum)[0]


# What the forward pass keeps for the backward one: the inputs and the log-sum-exp.
_Residuals = tuple[Array, Array, Array | None, Array, Array | None, Array]


# A tile is at most this many logits (8 MiB in float32): ``chunk`` vocabulary
# columns by ``_TILE_ELEMENTS // chunk`` tokens.
_TILE_ELEMENTS = _numerics.VOCAB_CHUNK_ELEMENTS
# ``chunk_size=None``: at least this many columns per chunk (wide tiles: fewer, larger
# products and fewer passes over the [N, D] gradient of ``hidden``).
_DEFAULT_MIN_CHUNK = 1024


class _Rows(NamedTuple):
    """Token blocks: ``num`` blocks of ``size`` rows; with ``partial``, the last one is moved back to end at ``n``."""
    size: int
    num: int
    partial: bool

    @classmethod
    def of(cls, n: int, chunk: int) -> _Rows:
        size = min(n, max(1, _TILE_ELEMENTS // chunk))
        return cls(size, -(-n // size) if n else 0, bool(n) and n % size != 0)

    def block(self, j: Array, n: int) -> tuple[Array, Array | None]:
        """First row of block ``j`` and (``partial`` only) which of its rows the previous block did not have."""
        start = j * self.size
        first = jnp.minimum(start, n - self.size)
        new = first + jnp.arange(self.size, dtype=jnp.int32) >= start if self.partial else None
        return first, new


def _statistics_forward(h: Array, weight: Array, bias: Array | None, labels: Array, soft_cap: Array | None,
                        chunk: int, with_sum: bool = True) -> tuple[tuple[Array, Array, Array], _Residuals]:
    n = h.shape[0]
    rows = _Rows.of(n, chunk)

    def tile(begin: Array, w_c: Array, b_c: Array | None, new: Array | None, j: Array,
             carry: tuple[Array, ...]) -> tuple[Array, ...]:
        first, new_rows = rows.block(j, n)
        running_max, running_sum, label_logit, logit_sum = (
            jax.lax.dynamic_slice_in_dim(x, first, rows.size) for x in carry)
        z, _, _ = _chunk_logits(jax.lax.dynamic_slice_in_dim(h, first, rows.size), w_c, b_c, soft_cap, new)
        # Online log-sum-exp: rescale the running sum to the new maximum.
        new_max = jnp.maximum(running_max, jax.lax.stop_gradient(jnp.max(z, axis=1)))
        updated = [new_max,
                   running_sum * jnp.exp(running_max - new_max) + jnp.sum(jnp.exp(z - new_max[:, None]), axis=1)]
        # The label's logit, gathered from the tile ([rows] work; a select over the whole tile was
        # written out and read back by XLA:CPU, about 4% of the value-and-gradient time).
        column = jax.lax.dynamic_slice_in_dim(labels, first, rows.size) - begin
        hit = (column >= 0) & (column < chunk)
        column = jnp.clip(column, 0, chunk - 1)
        if new is not None:
            hit = hit & new[column]
        picked = jnp.take_along_axis(z, column[:, None], axis=1, mode="clip")[:, 0]
        updated.append(label_logit + jnp.where(hit, picked, 0.0))
        if with_sum:  # only label smoothing reads it: one more pass over the tile
            logit_sum = logit_sum + jnp.sum(z if new is None else jnp.where(new[None, :], z, 0.0), axis=1)
        updated.append(logit_sum)
        if new_rows is not None:  # rows of the previous block keep their statistics
            updated = [jnp.where(new_rows, u, jax.lax.dynamic_slice_in_dim(x, first, rows.size))
                       for u, x in zip(updated, carry)]
        return tuple(jax.lax.dynamic_update_slice_in_dim(x, u, first, 0) for x, u in zip(carry, updated))

    def body(group: _numerics.ColumnGroup, i: Array, carry: tuple[Array, ...]) -> tuple[Array, ...]:
        begin, (w_c,), new = _numerics.group_chunk(i, chunk, group)
        b_c = None if bias is None else jax.lax.dynamic_slice_in_dim(bias, begin, chunk)
        out: tuple[Array, ...] = jax.lax.fori_loop(0, rows.num, functools.partial(tile, begin, w_c, b_c, new), carry)
        return out

    acc = _numerics.compute_dtype(h, weight, bias)
    axes = _numerics.varying_axes(h)  # every input was cast to the same varying axes
    carry = tuple(_numerics.vary(x, axes) for x in (jnp.full((n,), -jnp.inf, acc), jnp.zeros((n,), acc),
                                           jnp.zeros((n,), acc), jnp.zeros((n,), acc)))
    for group in _numerics.column_groups((weight,), chunk, lambda: carry[1], _GROUP_BYTES):
        carry = jax.lax.fori_loop(0, group.num_chunks, functools.partial(body, group), carry)
    running_max, running_sum, label_logit, logit_sum = carry
    lse = running_max + jnp.log(running_sum)
    return (lse, label_logit, logit_sum), (h, weight, bias, labels, soft_cap, lse)


def _statistics_backward(chunk: int, with_sum: bool, residuals: _Residuals, cotangents: tuple[Array, Array, Array]
                         ) -> tuple[Array, Array, Array | None, None, Array | None]:
    h, weight, bias, labels, soft_cap, lse = residuals
    g_lse, g_label, g_sum = cotangents
    n = h.shape[0]
    rows = _Rows.of(n, chunk)

    def tile(begin: Array, w_c: Array, w_new: Array, new: Array | None, b_c: Array | None, j: Array,
             carry: tuple[Array, Array, Array | None, Array | None]
             ) -> tuple[Array, Array, Array | None, Array | None]:
        d_h, d_w_c, d_b_c, d_cap = carry
        first, new_rows = rows.block(j, n)
        h_b, labels_b, lse_b, g_lse_b, g_label_b, g_sum_b = (
            jax.lax.dynamic_slice_in_dim(x, first, rows.size) for x in (h, labels, lse, g_lse, g_label, g_sum))
        # Gradients of every column of the chunk, also those the previous chunk had (the
        # same numbers, written again); only d_h, d_cap must not count them twice.
        z, dz_du, dz_dc = _chunk_logits(h_b, w_c, b_c, soft_cap)
        # d lse / d z = softmax(z); d z_label / d z = onehot; d sum z / d z = 1.
        probabilities = jnp.exp(z - lse_b[:, None])
        hit = begin + jnp.arange(chunk, dtype=jnp.int32)[None, :] == labels_b[:, None]
        d_z = g_lse_b[:, None] * probabilities + jnp.where(hit, g_label_b[:, None], 0.0)
        if with_sum:
            d_z = d_z + g_sum_b[:, None]
        if new_rows is not None:  # rows of the previous block were counted there
            d_z = jnp.where(new_rows[:, None], d_z, 0.0)
        d_u = d_z if dz_du is None else d_z * dz_du
        if d_cap is not None:
            assert dz_dc is not None  # a soft cap, so its derivative
            per_column = jnp.sum(d_z * dz_dc, axis=0)
            d_cap = d_cap + jnp.sum(per_column if new is None else jnp.where(new, per_column, 0.0))
        # d_u is rounded to the weight's dtype as autodiff of ``h @ weight`` would.
        d_h_b = jax.lax.dynamic_slice_in_dim(d_h, first, rows.size) + jnp.matmul(
            d_u.astype(weight.dtype).astype(w_c.dtype), w_new.T, preferred_element_type=acc)
        d_h = jax.lax.dynamic_update_slice_in_dim(d_h, d_h_b, first, 0)
        d_w_c = d_w_c + jnp.matmul(h_b.T, d_u.astype(h.dtype), preferred_element_type=acc)
        if d_b_c is not None:
            d_b_c = d_b_c + jnp.sum(d_u, axis=0)
        return d_h, d_w_c, d_b_c, d_cap

    def body(group: _numerics.ColumnGroup, i: Array, carry: tuple[Array, Array, Array | None, Array | None]
             ) -> tuple[Array, Array, Array | None, Array | None]:
        d_h, d_w, d_b, d_cap = carry
        begin, (w_c,), new = _numerics.group_chunk(i, chunk, group)
        b_c = None if bias is None else jax.lax.dynamic_slice_in_dim(bias, begin, chunk)
        w_new = w_c if new is None else jnp.where(new[None, :], w_c, 0.0)
        inner = tuple(_numerics.vary(x, axes) for x in (
            jnp.zeros((weight.shape[0], chunk), acc), None if bias is None else jnp.zeros((chunk,), acc)))
        d_h, d_w_c, d_b_c, d_cap = jax.lax.fori_loop(
            0, rows.num, functools.partial(tile, begin, w_c, w_new, new, b_c), (d_h, *inner, d_cap))
        d_w = jax.lax.dynamic_update_slice_in_dim(d_w, d_w_c.astype(weight.dtype), begin, axis=1)
        if d_b is not None:
            assert d_b_c is not None
            d_b = jax.lax.dynamic_update_slice_in_dim(d_b, d_b_c.astype(d_b.dtype), begin, axis=0)
        return d_h, d_w, d_b, d_cap

    acc = _numerics.compute_dtype(h, weight, bias)
    axes = _numerics.varying_axes(h)
    carry: tuple[Array, Array, Array | None, Array | None] = (
        _numerics.vary(jnp.zeros(h.shape, acc), axes), _numerics.vary(jnp.zeros(weight.shape, weight.dtype), axes),
        _numerics.vary(None if bias is None else jnp.zeros(bias.shape, bias.dtype), axes),
        _numerics.vary(None if soft_cap is None else jnp.zeros((), acc), axes))
    for group in _numerics.column_groups((weight,), chunk, lambda: carry[0], _GROUP_BYTES):
        carry = jax.lax.fori_loop(0, group.num_chunks, functools.partial(body, group), carry)
    d_h, d_w, d_b, d_cap = carry
    d_soft_cap = None if soft_cap is None or d_cap is None else d_cap.astype(soft_cap.dtype)
    return d_h.astype(h.dtype), d_w, d_b, None, d_soft_cap


_vocab_statistics.defvjp(_statistics_forward, _statistics_backward)


@_registry.builtin(tags=("large_vocab",))
def linear_softmax_cross_entropy(
    hidden: ArrayLike, weight: ArrayLike, labels: ArrayLike, *, bias: ArrayLike | None = None,
    chunk_size: int | None = None, ignore_index: int | None = None, label_smoothing: ArrayLike = 0.0,
    z_loss_weight: ArrayLike = 0.0, logit_soft_cap: ArrayLike | None = None,
    reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
    where: ArrayLike | None = None, axis_name: Hashable | None = None,
) -> Array:
    r"""Softmax cross-entropy of ``hidden @ weight + bias`` without materialising the logits.

    With logits :math:`z = \mathrm{cap}(h W + b)` (:math:`\mathrm{cap}(u) = c \tanh(u / c)`
    when ``logit_soft_cap`` is set) and :math:`\mathrm{lse} = \log \sum_v e^{z_v}`:

    .. math::

        \ell = (1 - \varepsilon)(\mathrm{lse} - z_y)
             + \frac{\varepsilon}{V} \sum_v (\mathrm{lse} - z_v)
             + \lambda_z \, \mathrm{lse}^2

    the same value and gradients as
    ``softmax_cross_entropy_with_integer_labels(hidden @ weight + bias, labels, ...)``.
    The logits are processed one tile of ``chunk_size`` columns by
    ``2^21 // chunk_size`` tokens at a time, forward (online log-sum-exp) and
    backward (logits recomputed per tile, a ``jax.custom_vjp``), so temporary
    memory is about 2^21 logits, not ``O(N * V)``. Matrix products accumulate
    in float32, so bfloat16 inputs are safe; the result is float32 (float64
    under ``jax_enable_x64`` for float64 inputs).

    Tensor parallel: inside ``shard_map`` with ``axis_name``, each device of
    that mesh axis holds a contiguous slice of the vocabulary (``weight``'s
    columns and ``bias``), computes its per-token maximum, sum of exponentials,
    label logit and logit sum over that slice, and a ``pmax`` and one ``psum``
    (of ``[N]`` and ``[3, N]`` arrays) give the global log-sum-exp: the values equal
    the single-device ones on every device of the axis, and the ``[N, V]``
    logits exist nowhere, not even sliced.

    Args:
      hidden: ``[..., D]`` float activations.
      weight: ``[D, V]`` float output projection.
      labels: ``[...]`` integer token ids; out of ``[0, V)`` gives NaN unless
        equal to ``ignore_index``.
      bias: ``[V]`` float bias, or ``None``.
      chunk_size: vocabulary columns per chunk (a Python int >= 1), or
        ``None`` (default): 1024 columns, or up to 4096 for fewer than 2048
        tokens. The tokens are taken in blocks of ``2^21 // chunk_size``
        (a tile of about 2^21 logits, 8 MiB in float32).
      ignore_index: label value to mask (e.g. ``-100`` for padding), or ``None``.
      label_smoothing: ``varepsilon`` in ``[0, 1]``.
      z_loss_weight: ``lambda_z >= 0`` (PaLM z-loss).
      logit_soft_cap: ``c > 0`` of Gemma 2's soft cap (a float or a scalar
        array, differentiable), or ``None``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.
      axis_name: inside ``shard_map`` (or another mapped context), the mesh
        axis name, or tuple of names, over which the vocabulary is split;
        ``None`` (default) when ``weight`` holds the whole vocabulary. Device
        ``i`` of the axis holds the columns ``[i * V_local, (i + 1) * V_local)``,
        ``V_local = weight.shape[1]``, and ``bias`` likewise; ``labels`` are
        global ids in ``[0, V_local * axis_size)``. ``hidden`` is the same on
        every device of the axis: its gradient is summed over the axis, while
        the gradients of ``weight`` and ``bias`` stay on their slice. This is
        the model axis only: the batch is reduced locally, so for a data axis
        use ``reduction="none"`` and ``jaxloss.reduce(..., axis_name="data")``.
        Gradients taken *inside* ``shard_map`` need its default
        ``check_vma=True`` (with ``check_vma=False`` JAX cannot tell replicated
        from per-device values and sums nothing).

    Returns:
      ``[...]`` per-token values for ``reduction="none"``, else a scalar; float32
      for 16/32-bit inputs. With ``axis_name``, the same on every device of
      that axis.

    Raises:
      ValueError: ``weight`` not ``[D, V]`` matching ``hidden``, ``labels``
        not ``hidden``'s batch shape, ``bias`` not ``[V]``, bad hyper-parameters.
      TypeError: non-float ``hidden``/``weight``/``bias`` or non-integer ``labels``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> h = jax.random.normal(jax.random.key(0), (4, 8))
      >>> w = jax.random.normal(jax.random.key(1), (8, 100))
      >>> y = jnp.array([1, 5, 99, 42])
      >>> fused = jaxloss.linear_softmax_cross_entropy(h, w, y, chunk_size=32)
      >>> naive = jaxloss.softmax_cross_entropy_with_integer_labels(h @ w, y)
      >>> bool(jnp.allclose(fused, naive, rtol=1e-5))
      True

      The vocabulary split over a ``"model"`` axis (a one-device mesh here;
      ``examples/sharded_lm.py`` trains with 4 model shards):

      >>> from jax.sharding import PartitionSpec as P
      >>> mesh = jax.sharding.Mesh(jax.devices()[:1], ("model",))
      >>> tp = jax.shard_map(
      ...     lambda h, w, y: jaxloss.linear_softmax_cross_entropy(h, w, y, axis_name="model"),
      ...     mesh=mesh, in_specs=(P(), P(None, "model"), P()), out_specs=P())
      >>> bool(jnp.allclose(tp(h, w, y), naive, rtol=1e-5))
      True

    References:
      Shoeybi et al., "Megatron-LM: Training Multi-Billion Parameter Language
      Models Using Model Parallelism" (vocabulary-parallel cross-entropy),
      2019, https://arxiv.org/abs/1909.08053;
      Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models",
      2024, https://arxiv.org/abs/2411.09009; Milakov and Gimelshein, "Online
      normalizer calculation for softmax", 2018, https://arxiv.org/abs/1805.02867;
      Gemma Team, "Gemma 2" (logit soft-capping), 2024, https://arxiv.org/abs/2408.00118
    """
    fn = "linear_softmax_cross_entropy"
    _checks.integer_option(fn, "ignore_index", ignore_index)
    _checks.in_range(fn, "label_smoothing", label_smoothing, low=0.0, high=1.0)
    _checks.in_range(fn, "z_loss_weight", z_loss_weight, low=0.0)
    hidden, weight, labels, bias, where = _checked_inputs(fn, hidden, weight, labels, bias, where, chunk_size,
                                                          logit_soft_cap, ignore_index)
    batch_shape = labels.shape
    lse, label_logit, logit_sum, vocab = _token_statistics(hidden, weight, labels, bias, where, chunk_size,
                                                           logit_soft_cap, axis_name,
                                                           with_sum=not _checks.is_static_zero(label_smoothing))
    values = ((1.0 - label_smoothing) * (lse - label_logit)
              + (label_smoothing / vocab) * (vocab * lse - logit_sum)
              + z_loss_weight * jnp.square(lse))
    flat_labels = labels.reshape(-1)
    in_range = (flat_labels >= 0) & (flat_labels < vocab)
    values = jnp.where(in_range, values, jnp.nan).reshape(batch_shape)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


def _checked_inputs(fn: str, hidden: ArrayLike, weight: ArrayLike, labels: ArrayLike, bias: ArrayLike | None,
                    where: ArrayLike | None, chunk_size: int | None, logit_soft_cap: ArrayLike | None,
                    ignore_index: int | None) -> tuple[Array, Array, Array, Array | None, Array | None]:
    """Validated ``hidden [..., D]``, ``weight [D, V]``, ``labels [...]``, ``bias`` and the token mask.

    ``ignore_index`` is folded into the returned ``where``.
    """
    if chunk_size is not None:
        _checks.integer_option(fn, "chunk_size", chunk_size, allow_none=False)
        _checks.in_range(fn, "chunk_size", chunk_size, low=1)
    _checks.in_range(fn, "logit_soft_cap", logit_soft_cap, low=0.0, low_open=True)
    hidden = _checks.floating(fn, "hidden", hidden)
    weight = _checks.floating(fn, "weight", weight)
    labels = _checks.integer(fn, "labels", labels)
    _checks.rank_at_least(fn, "hidden", hidden, 1, "[..., D]")
    dim = hidden.shape[-1]
    _checks.shape(fn, "weight", weight, (dim, None), f"[D, V] with D = {dim} (hidden's last axis)")
    vocab = weight.shape[1]
    batch_shape = hidden.shape[:-1]
    _checks.shape(fn, "labels", labels, batch_shape, f"{batch_shape} (hidden without its last axis)")
    if bias is not None:
        bias = _checks.floating(fn, "bias", bias)
        _checks.shape(fn, "bias", bias, (vocab,), f"[V] = ({vocab},)")
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), batch_shape,
                                      "the per-token shape")
    where = _numerics.ignore_mask(where, labels, ignore_index)
    return hidden, weight, labels, bias, where


def _token_statistics(hidden: Array, weight: Array, labels: Array, bias: Array | None, where: Array | None,
                      chunk_size: int | None, logit_soft_cap: ArrayLike | None, axis_name: Hashable | None,
                      with_sum: bool = True) -> tuple[Array, Array, Array, int]:
    """Per token ``[N]`` (flattened): log-sum-exp, label logit and logit sum; and the global vocabulary size.

    Without ``with_sum`` (no label smoothing) the logit sum is not computed (zeros).

    Masked tokens (``where`` False) get zero hidden states and label 0 (the
    double-where: their values are discarded by the caller, their gradients
    are 0 even when their inputs are NaN).
    """
    dim = hidden.shape[-1]
    vocab = weight.shape[1]
    h = _numerics.mask_inputs(None if where is None else where[..., None], hidden)
    safe_labels = labels if where is None else jnp.where(where, labels, 0)
    n = int(jnp.size(labels))
    chunk = int(min(max(_numerics.vocab_chunk(n), _DEFAULT_MIN_CHUNK) if chunk_size is None else chunk_size, vocab))
    flat_h = h.reshape(n, dim)
    # Labels of any integer dtype compare as int32 (under strict promotion an
    # int32 column id and uint8 labels have no common type); one that does not
    # fit wraps here but is out of range, and the caller's range check on the
    # original labels turns it into NaN.
    flat_labels = safe_labels.reshape(n).astype(jnp.int32)
    soft_cap = None if logit_soft_cap is None else jnp.asarray(
        logit_soft_cap, _numerics.compute_dtype(hidden, weight))
    # Tensor parallel: this device holds columns [offset, offset + V_local) of the vocabulary.
    local_labels = flat_labels
    if axis_name is not None:
        local_labels = flat_labels - jax.lax.axis_index(axis_name) * vocab
        vocab = vocab * jax.lax.axis_size(axis_name)
    # Inside shard_map every input of the custom_vjp varies over the same mesh axes
    # (see _vary): the replicated ones get their gradients summed over those axes.
    axes = frozenset().union(*(_numerics.varying_axes(x) for x in (flat_h, weight, bias, local_labels, soft_cap)
                               if x is not None))
    flat_h, weight, local_labels = _numerics.vary(flat_h, axes), _numerics.vary(weight, axes), _numerics.vary(local_labels, axes)
    bias, soft_cap = _numerics.vary(bias, axes), _numerics.vary(soft_cap, axes)
    if bias is None and soft_cap is None and axis_name is None and _kernels.use_pallas(flat_h, weight):
        # GPU/TPU: one Pallas kernel per pass, tiles of tokens x vocabulary (jaxloss/_kernels.py).
        lse, label_logit, logit_sum = _kernels.linear_cross_entropy_statistics(flat_h, weight, local_labels)
    else:
        lse, label_logit, logit_sum = _vocab_statistics(flat_h, weight, bias, local_labels, soft_cap, chunk,
                                                        with_sum)
    if axis_name is not None:
        # Global log-sum-exp from the local ones: lse = M + log sum_i exp(lse_i - M). The
        # label logit (only its owner adds a nonzero) and the logit sum ride in the same psum:
        # two collectives in a chain, pmax then psum.
        top = jax.lax.pmax(jax.lax.stop_gradient(lse), axis_name)
        summed = jax.lax.psum(jnp.stack([jnp.exp(lse - top), label_logit, logit_sum]), axis_name)
        lse, label_logit, logit_sum = top + jnp.log(summed[0]), summed[1], summed[2]
    return lse, label_logit, logit_sum, vocab


def linear_sequence_log_probs(
    hidden: ArrayLike, weight: ArrayLike, labels: ArrayLike, *, bias: ArrayLike | None = None,
    chunk_size: int | None = None, ignore_index: int | None = None, where: ArrayLike | None = None,
    average: bool = False, logit_soft_cap: ArrayLike | None = None, axis_name: Hashable | None = None,
) -> Array:
    r"""Per-sequence log-probability of ``labels`` under ``hidden @ weight + bias``, never materialising ``[B, T, V]``.

    With logits :math:`z = \mathrm{cap}(h W + b)` as in
    :func:`linear_softmax_cross_entropy` and :math:`K_b` the kept positions
    of sequence :math:`b` (``where`` and ``ignore_index``):

    .. math::

        s_b = \sum_{t \in K_b} \bigl(z_{b,t,y_{b,t}} - \log \sum_v e^{z_{b,t,v}}\bigr)
        \quad\text{or, with } \texttt{average=True}, \quad \frac{s_b}{|K_b|}

    the same value and gradients as
    ``jaxloss.preference.sequence_log_probs(hidden @ weight + bias, labels, ...)``
    (position by position, no shift), computed tile by tile like
    :func:`linear_softmax_cross_entropy`: the per-sequence
    log-probabilities that the preference losses (DPO, SimPO, ORPO, ...)
    consume, at about 2^21 logits of temporary memory instead of ``O(B T V)``.
    A sequence with no kept token gives 0 with zero gradient.

    Args:
      hidden: ``[..., T, D]`` float activations.
      weight: ``[D, V]`` float output projection.
      labels: ``[..., T]`` integer token ids; a kept label outside ``[0, V)``
        gives NaN for its sequence.
      bias: ``[V]`` float bias, or ``None``.
      chunk_size: vocabulary columns per chunk (a Python int >= 1), or
        ``None`` (default), as in :func:`linear_softmax_cross_entropy`.
      ignore_index: a label value that marks positions to skip (e.g. ``-100``),
        or ``None``.
      where: boolean mask broadcastable to ``[..., T]``; ``False`` skips a
        position (prompt or padding tokens).
      average: the mean over kept tokens instead of the sum.
      logit_soft_cap: ``c > 0`` of Gemma 2's soft cap, or ``None``.
      axis_name: the mesh axis (or axes) over which the vocabulary is split,
        as in :func:`linear_softmax_cross_entropy`; the result is the same on
        every device of the axis.

    Returns:
      ``[...]`` per-sequence log-probabilities (float32 for 16-bit inputs).

    Raises:
      ValueError: ``hidden`` of rank < 2, ``weight`` not ``[D, V]``, ``labels``
        not ``hidden``'s shape without ``D``, ``bias`` not ``[V]``, bad
        ``chunk_size`` or ``logit_soft_cap``, non-bool ``average``.
      TypeError: non-float ``hidden``/``weight``/``bias``, non-integer
        ``labels``, non-boolean ``where``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxloss.large_vocab import linear_sequence_log_probs
      >>> h = jax.random.normal(jax.random.key(0), (2, 5, 8))
      >>> w = jax.random.normal(jax.random.key(1), (8, 100))
      >>> y = jnp.array([[1, 5, 99, 42, 0], [3, 3, 7, -100, -100]])
      >>> fused = linear_sequence_log_probs(h, w, y, ignore_index=-100, chunk_size=32)
      >>> logp = jax.nn.log_softmax(h @ w)
      >>> kept = y != -100
      >>> token = jnp.take_along_axis(logp, jnp.where(kept, y, 0)[..., None], -1)[..., 0]
      >>> naive = jnp.sum(jnp.where(kept, token, 0.0), -1)
      >>> bool(jnp.allclose(fused, naive, rtol=1e-5))
      True

    References:
      Rafailov et al., "Direct Preference Optimization: Your Language Model is
      Secretly a Reward Model", 2023, https://arxiv.org/abs/2305.18290;
      Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models",
      2024, https://arxiv.org/abs/2411.09009
    """
    fn = "linear_sequence_log_probs"
    _checks.integer_option(fn, "ignore_index", ignore_index)
    _checks.choice(fn, "average", average, (True, False))
    hidden, weight, labels, bias, where = _checked_inputs(fn, hidden, weight, labels, bias, where, chunk_size,
                                                          logit_soft_cap, ignore_index)
    _checks.rank_at_least(fn, "hidden", hidden, 2, "[..., T, D]")
    lse, label_logit, _, vocab = _token_statistics(hidden, weight, labels, bias, where, chunk_size,
                                                   logit_soft_cap, axis_name, with_sum=False)
    flat_labels = labels.reshape(-1)
    in_range = (flat_labels >= 0) & (flat_labels < vocab)
    token = jnp.where(in_range, label_logit - lse, jnp.nan).reshape(labels.shape)
    if where is not None:
        where = jnp.broadcast_to(where, labels.shape)
        token = jnp.where(where, token, jnp.zeros_like(token))  # second half of the double-where
    total = jnp.sum(token, axis=-1)
    if not average:
        return total
    count = jnp.sum(jnp.ones_like(token) if where is None else where.astype(token.dtype), axis=-1)
    return _numerics.safe_div(total, count)
