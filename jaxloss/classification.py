"""Classification losses: binary, multi-class and multi-label, margins and divergences.

Conventions: ``logits``/``scores`` are ``[..., num_classes]`` along ``axis``;
integer ``labels`` are ``[...]`` class indices (out-of-range labels give NaN,
``ignore_index`` masks), distribution ``labels`` have the shape of the logits;
binary losses are elementwise. Every loss accepts ``reduction``, ``weights``
and ``where`` (see :func:`jaxloss.reduce`); for per-example losses ``where``
and ``weights`` broadcast to ``[...]``.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _checks, _kernels, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array


# ----------------------------------------------------------------- helpers
def _per_example_inputs(fn: str, where: Any, logits_name: str, logits: Any, labels_name: str, labels: Any,
                        axis: int, *, integer_labels: bool) -> tuple[Array, Array, Any, int]:
    """Validates ``[..., C]`` scores and their labels; masks both; returns the axis >= 0.

    Integer labels must have the scores' shape without ``axis``; distribution
    labels the scores' shape. Masked inputs become 0 (scores, soft labels) or
    class 0 (integer labels), the first half of the double-where.
    """
    logits = _checks.floating(fn, logits_name, logits)
    _checks.rank_at_least(fn, logits_name, logits, 1, "a class axis")
    ax = _checks.normalize_axis(fn, axis, logits.ndim)
    dtype = _numerics.compute_dtype(logits)
    example_shape = logits.shape[:ax] + logits.shape[ax + 1:]
    if integer_labels:
        labels = _checks.integer(fn, labels_name, labels)
        _checks.shape(fn, labels_name, labels, example_shape,
                      f"{example_shape} ({logits_name} {logits.shape} without axis {axis})")
    else:
        labels = _checks.real(fn, labels_name, labels)
        _checks.same_shape(fn, (logits_name, logits), (labels_name, labels))
        labels = labels.astype(dtype)
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), example_shape,
                                      "the per-example shape")
    logits = _numerics.mask_inputs(_numerics.expand_where(where, ax), logits.astype(dtype))
    if integer_labels:
        labels = jnp.where(where, labels, 0) if where is not None else labels
    else:
        labels = _numerics.mask_inputs(_numerics.expand_where(where, ax), labels)
    return logits, labels, where, ax


def _flatten_class_axes(fn: str, axis: Any, logits: Any, labels: Any, *,
                        labels_have_classes: bool) -> tuple[Any, Any, int]:
    """optax's tuple ``axis``: the class axes move last and flatten into one.

    Integer labels then index the flattened classes (row-major over the class
    axes in the order given), as optax does. An int ``axis`` passes through.
    """
    if not isinstance(axis, tuple):
        return logits, labels, axis
    logits = _checks.floating(fn, "logits", logits)
    ndim = logits.ndim
    if not axis or not all(isinstance(a, int) and not isinstance(a, bool) for a in axis):
        _checks._fail(ValueError, _checks.message(fn, "axis", "must be an int or a non-empty tuple of ints", axis))
    for a in axis:
        _checks.normalize_axis(fn, a, ndim)
    class_axes = tuple(a % ndim for a in axis)
    if len(set(class_axes)) != len(class_axes):
        _checks._fail(ValueError, _checks.message(fn, "axis", "must not repeat an axis", axis))
    batch_axes = tuple(a for a in range(ndim) if a not in class_axes)
    order = batch_axes + class_axes
    batch_shape = tuple(logits.shape[a] for a in batch_axes)
    if labels_have_classes:
        labels = _checks.real(fn, "labels", labels)
        _checks.same_shape(fn, ("logits", logits), ("labels", labels))
        labels = jnp.transpose(labels, order).reshape(batch_shape + (-1,))
    logits = jnp.transpose(logits, order).reshape(batch_shape + (-1,))
    return logits, labels, -1


def _class_vector(fn: str, name: str, value: Any, num_classes: int, dtype: Any) -> Array:
    """A ``[C]`` class-weight vector (or scalar broadcast to ``[C]``), checked >= 0."""
    _checks.in_range(fn, name, value, low=0.0)
    value = _checks.floating(fn, name, jnp.asarray(value, dtype) if not hasattr(value, "dtype") else value)
    if value.ndim > 1 or (value.ndim == 1 and value.shape[0] != num_classes):
        _checks._fail(ValueError, _checks.message(fn, name, f"must be a scalar or have shape ({num_classes},)",
                                                  f"shape {value.shape}"))
    return jnp.broadcast_to(value.astype(dtype), (num_classes,))


def _along(vector: Array, axis: int, ndim: int) -> Array:
    """Reshapes a ``[C]`` vector to broadcast along ``axis`` of a rank-``ndim`` array."""
    shape = [1] * ndim
    shape[axis] = vector.shape[0]
    return vector.reshape(shape)


def _log_where_weighted(log_p: Array, q: Array) -> Array:
    """``log_p`` with ``-inf`` replaced by 0 where its weight ``q`` is 0, so ``q * log_p`` is 0 there.

    A class with probability exactly 0 (a ``-inf`` logit, a masked class) and
    zero target weight contributes ``0 log 0 = 0`` to value and gradients,
    not ``0 * -inf = NaN``; with a positive weight it stays ``+inf``.
    """
    return jnp.where((q == 0) & (log_p == -jnp.inf), jnp.zeros_like(log_p), log_p)


def _xlogx_ratio(log_a: Array, log_b: Array) -> Array:
    """``a * (log a - log b)`` from log values, 0 (value and gradient) where ``a = 0`` (``log a = -inf``).

    The double-where keeps ``0 * (-inf - log b)`` (NaN) out of both the value
    and the gradient; ``a > 0`` with ``log b = -inf`` stays ``+inf`` (the
    divergence is infinite).
    """
    zero = log_a == -jnp.inf
    safe_a = jnp.where(zero, jnp.zeros_like(log_a), log_a)
    safe_b = jnp.where(zero, jnp.zeros_like(log_b), log_b)
    return jnp.where(zero, jnp.zeros_like(log_a), jnp.exp(safe_a) * (safe_a - safe_b))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _kl_values(log_p: Array, t: Array, ax: int, mode: str = "auto") -> Array:
    """``sum_c t_c (log t_c - log p_c)`` with ``0 log 0 = 0`` on both sides.

    A zero target at a zero prediction (``log_p = -inf``) adds 0 to the value
    and every gradient, not NaN; a positive target at ``log_p = -inf`` gives
    ``+inf``. Gradients: ``-t`` for ``log_p``; ``log t + 1 - log p`` for ``t > 0``
    and ``-log p`` (0 where ``log p = -inf``) at ``t = 0``.
    """
    return _numerics.on_cpu_unless_nonfinite(_kl_fast, _kl_guarded, log_p, t, ax, mode)


def _kl_fast(log_p: Array, t: Array, ax: int) -> Array:
    """optax's ``sum(t (log t - log p))`` unguarded: NaN at ``t = 0``, equal to :func:`_kl_guarded` elsewhere."""
    return jnp.sum(t * (jnp.log(t) - log_p), axis=ax)


def _kl_guarded(log_p: Array, t: Array, ax: int) -> Array:
    """``sum(t (log t - log p))`` with one select: 0 where ``t = 0`` (also at ``log p = -inf``) unless ``log p`` is NaN.

    (A max-based floor on ``log p`` here lost a NaN ``log p`` under jit on XLA:CPU: +inf instead of NaN.)
    At ``t = 0`` the product is NaN (``0 * -inf``) and the select replaces it. The logarithm is of ``|t|``,
    which keeps an invalid negative target finite (the contract's edge cases; a floor ``max(t, tiny)`` did
    too). Neither the select nor the logarithm has a constant (:func:`_numerics.is_zero`; the zero it
    selects is ``t``), so XLA:CPU emits the loop fusion as one contiguous vectorised loop (see
    :func:`_kl_log_targets_guarded`): 128x10 forward 0.84-0.88x optax, was 0.98-1.02x.
    """
    return jnp.sum(_target_weighted_log_ratio(t, jnp.log(jnp.abs(t)), log_p), axis=ax)


@_kl_values.defjvp
def _kl_values_jvp(ax: int, mode: str, primals: tuple[Array, Array], tangents: tuple[Array, Array]
                   ) -> tuple[Array, Array]:
    (log_p, t), (d_log_p, d_t) = primals, tangents
    positive = ~(t <= 0)  # NaN propagates
    d_xlogx = jnp.where(positive, jnp.log(jnp.where(positive, t, jnp.ones_like(t))) + 1.0, jnp.zeros_like(t))
    guarded_log_p = jnp.where((t == 0) & (log_p == -jnp.inf), jnp.zeros_like(log_p), log_p)
    tangent = jnp.sum(-t * d_log_p + (d_xlogx - guarded_log_p) * d_t, axis=ax)
    return _kl_values(log_p, t, ax, mode), tangent


def _kl_log_targets_guarded(log_p: Array, log_t: Array, ax: int) -> Array:
    """``sum_c t_c (log t_c - log p_c)``, ``t = exp(log_t)``, with one select per element for ``t = 0``.

    Every edge case is a product with ``t = 0`` (``0 * -inf`` at ``log_t = -inf``,
    ``0 * inf`` at an underflowing ``exp`` and ``log_p = -inf``), so one select on
    the product covers them; it keeps a NaN ``log_p`` (and a NaN ``log_t`` makes
    ``t`` NaN, so ``t == 0`` is false).

    The select is written without a constant (:func:`_numerics.is_zero`, and
    the zero it selects is ``t`` itself), so the loop fusion has no broadcast:
    XLA:CPU then emits it as one contiguous vectorised loop, where a broadcast
    sent it to the loop-fusion emitter, which at ``[128, 10]`` gathered the
    rows 10 elements apart (forward 1.12-1.16x optax's time, 1.01-1.06x now).
    """
    t = jnp.exp(log_t)
    return jnp.sum(_target_weighted_log_ratio(t, log_t, log_p), axis=ax)


def _target_weighted_log_ratio(t: Array, log_t: Array, log_p: Array) -> Array:
    """``t (log t - log p)`` per element, 0 where ``t = 0`` unless ``log p`` is NaN: the KL guards' one select.

    The test and the selected zero have no constant (:func:`_numerics.is_zero`; the zero is ``t``), so the
    loop fusion has no broadcast (see :func:`_kl_log_targets_guarded`); ``log_p == log_p`` is "not NaN".
    """
    zero = _numerics.is_zero(t) & (log_p == log_p)
    return jnp.where(zero, t, t * (log_t - log_p))




@jax.custom_jvp
def _value_with_tangent_of(value: Array, carrier: Array) -> Array:
    """``value``, differentiated as ``carrier`` (same shape and dtype)."""
    return value


@_value_with_tangent_of.defjvp
def _value_with_tangent_of_jvp(primals: tuple[Array, Array], tangents: tuple[Array, Array]) -> tuple[Array, Array]:
    return primals[0], tangents[1]


def _reduce_unless_nonfinite(per_example: Callable[..., Array], a: Array, b: Array, ax: int, *, reduction: str,
                             weights: Any, where: Any, fn: str) -> Array:
    """``reduce_values(per_example(a, b, ax))``, on CPU with the edge-case test on the reduced scalar.

    ``per_example`` is one of the guarded custom-JVP functions (``mode`` its last
    argument). For ``"sum"``/``"mean"`` without ``weights`` on CPU, the unguarded
    rows are reduced at once and only a non-finite result recomputes the batch
    guarded (``lax.cond`` on a scalar the reduction computes anyway): no
    ``[N]``-sized finiteness test or barrier. A masked row that is not finite
    only costs the recomputation (its value is 0 either way). The gradient is
    the custom JVP's, which is guarded in every mode. With ``weights`` (whose
    gradient is the rows themselves), ``"none"`` or small inputs, the rows are
    guarded as in :func:`_numerics.unless_nonfinite`.
    """
    def reduce(values: Array) -> Array:
        return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)

    if reduction == "none" or weights is not None or max(a.size, b.size) < _numerics.YNN_MIN_ELEMENTS:
        return reduce(per_example(a, b, ax, "auto"))
    fast = reduce(per_example(a, b, ax, "fast"))  # carries the (guarded) tangent
    a0, b0, fast0 = (jax.lax.stop_gradient(x) for x in (a, b, fast))

    def on_cpu(a0: Array, b0: Array, fast0: Array) -> Array:
        out: Array = jax.lax.cond(_numerics.all_finite(fast0), lambda a0, b0, f: f,
                                  lambda a0, b0, f: reduce(_numerics.guarded_in_blocks(
                                      lambda a, b, ax: per_example(a, b, ax, "guarded"), a0, b0, ax)), a0, b0, fast0)
        return out

    value = jax.lax.platform_dependent(a0, b0, fast0, cpu=on_cpu, default=lambda a0, b0, f: f)
    out: Array = _value_with_tangent_of(value, fast)
    return out


def _kl_log_targets_fast(log_p: Array, log_t: Array, ax: int) -> Array:
    """optax's ``sum(exp(log_t) (log_t - log_p))``: one fused reduction, three operations per element."""
    return jnp.sum(jnp.exp(log_t) * (log_t - log_p), axis=ax)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _kl_log_targets_values(log_p: Array, log_t: Array, ax: int, mode: str = "auto") -> Array:
    """``sum_c t_c (log t_c - log p_c)`` with ``t = exp(log_t)`` and ``0 log 0 = 0``.

    A zero target (``log_t = -inf``, or an ``exp`` that underflows to 0) adds 0
    to the value and every gradient, even at ``log_p = -inf``; a positive target
    at ``log_p = -inf`` gives ``+inf``; NaN in either input gives NaN. On CPU
    the value is optax's unguarded formula unless a row is not finite
    (:func:`_numerics.unless_nonfinite`), else :func:`_kl_log_targets_guarded`. Gradients:
    ``-t`` for ``log_p``; ``t (log t + 1 - log p)`` for ``log_t`` (0 where ``t = 0``).
    """
    return _numerics.on_cpu_unless_nonfinite(_kl_log_targets_fast, _kl_log_targets_guarded, log_p, log_t, ax, mode)


@_kl_log_targets_values.defjvp
def _kl_log_targets_values_jvp(ax: int, mode: str, primals: tuple[Array, Array],
                               tangents: tuple[Array, Array]) -> tuple[Array, Array]:
    (log_p, log_t), (d_log_p, d_log_t) = primals, tangents
    # From _numerics.YNN_MIN_ELEMENTS, exp of log_t behind an optimization barrier: the same numbers, but CSE does not
    # share the [N, C] exponential with the value, which then stays inside its YNN reduction instead of being
    # written out (1024x1000 value and gradient 0.74-0.87x optax; at 128x10 the barrier cost 1.04x).
    t = jnp.exp(jax.lax.optimization_barrier(log_t) if log_t.size >= _numerics.YNN_MIN_ELEMENTS else log_t)
    positive = ~(t <= 0)  # NaN propagates
    d_t_coef = jnp.where(positive, t * (log_t + 1.0 - log_p), jnp.zeros_like(t))
    tangent = jnp.sum(-t * d_log_p + d_t_coef * d_log_t, axis=ax)
    return _kl_log_targets_values(log_p, log_t, ax, mode), tangent


def _shift_and_lse(x: Array, ax: int, floor: bool = False) -> tuple[Array, Array]:
    """``x - max(x)`` (stop-gradient maximum) and its log-sum-exp (keepdims).

    ``-inf`` stays ``-inf``, or with ``floor`` becomes the lowest finite float;
    the log-sum-exp is the same either way (``exp`` of both is 0), but it is
    taken from the floored values so that XLA:CPU computes one ``[N, C]``
    expression, not two (taken from the unfloored ones, the 8192x1000 forward
    of ``poly_loss_cross_entropy`` measured 1.7x optax's time, 1.03x this way).
    """
    shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=ax, keepdims=True))
    if floor:
        shifted = jnp.maximum(shifted, jnp.finfo(x.dtype).min)
    return shifted, jnp.log(jnp.sum(jnp.exp(shifted), axis=ax, keepdims=True))


def _softmax_xent_fast(x: Array, q: Array, ax: int) -> Array:
    """optax's ``-sum(q log_softmax(x))``, unguarded: NaN or ``inf`` at a ``-inf`` logit."""
    shifted, lse = _shift_and_lse(x, ax)
    return -jnp.sum(q * (shifted - lse), axis=ax)


def _softmax_xent_guarded(x: Array, q: Array, ax: int) -> Array:
    """:func:`_softmax_xent_fast` with ``-inf`` shifted logits replaced by the lowest finite float (a select).

    ``q * (shifted - lse)`` is then ``0`` for ``q = 0`` (``0 log 0 = 0``) and a huge
    finite number for ``q > 0``; a NaN logit stays NaN (``NaN == -inf`` is false).
    The log-sum-exp is the same either way (``exp`` of both is 0).
    """
    shifted, lse = _shift_and_lse(x, ax)
    return -jnp.sum(q * (_lowest_for_neg_inf(shifted) - lse), axis=ax)


def _lowest_for_neg_inf(shifted: Array) -> Array:
    """``-inf`` replaced by the lowest finite float with a select (a NaN stays NaN: ``NaN == -inf`` is false)."""
    return jnp.where(shifted == -jnp.inf, jnp.finfo(shifted.dtype).min, shifted)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _softmax_xent(x: Array, q: Array, ax: int, mode: str = "auto") -> Array:
    """``-sum_c q_c log softmax(x)_c`` per example, finite where ``x = -inf`` meets ``q = 0``.

    A ``-inf`` logit (a masked class, probability exactly 0) with zero target
    weight adds ``0 log 0 = 0`` to the value and every gradient. A positive
    weight on such a class gives a huge finite value (``q * 3.4e38`` in
    float32) rather than ``inf``; NaN propagates. On CPU the value is optax's
    unguarded formula unless a row is not finite (:func:`_numerics.unless_nonfinite`),
    else :func:`_softmax_xent_guarded`. Gradients: ``sum(q) softmax(x) - q`` for
    the logits, ``-log softmax(x)`` for ``q`` (0 where ``q = 0`` and ``x = -inf``).
    """
    return _numerics.on_cpu_unless_nonfinite(_softmax_xent_fast, _softmax_xent_guarded, x, q, ax, mode)


@_softmax_xent.defjvp
def _softmax_xent_jvp(ax: int, mode: str, primals: tuple[Array, Array], tangents: tuple[Array, Array]
                      ) -> tuple[Array, Array]:
    (x, q), (dx, dq) = primals, tangents
    shifted, lse = _shift_and_lse(x, ax)
    # Below 4096 rows, the [N]-sized lse behind an optimization barrier: the same numbers, but XLA's CSE then
    # shares neither the [N, C] log-probabilities nor lse's broadcast with the value, whose log-probabilities
    # stay inside its YNN reduction instead of being written out for both (value and gradient against optax:
    # 1024x1000 0.92-0.96x instead of 1.03-1.05x, 2048x1000 0.75-0.78x instead of 0.91-1.02x, 1024x8192
    # 0.70x instead of 0.84-0.88x). From 4096 rows XLA:CPU computes the log-probabilities once in a YNN
    # fusion for both, which the barrier split (6144 and 8192 rows of 1000: 0.83-0.85x instead of 0.79-0.81x).
    log_p = shifted - (jax.lax.optimization_barrier(lse) if x.size // x.shape[ax] < 4096 else lse)
    guarded_log_p = jnp.where((q == 0) & (x == -jnp.inf), jnp.zeros_like(log_p), log_p)
    d_logits = dx - jnp.sum(jnp.exp(log_p) * dx, axis=ax, keepdims=True)  # d log_softmax
    tangent = -jnp.sum(q * d_logits + guarded_log_p * dq, axis=ax)
    return _softmax_xent(x, q, ax, mode), tangent


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _xent_and_one_minus_pt(x: Array, q: Array, ax: int, mode: str = "auto") -> tuple[Array, Array]:
    """:func:`_softmax_xent` and ``sum_c q_c (1 - softmax(x)_c)`` per example, in one custom JVP.

    Both values are sums over the log-probabilities ``log p = s - lse``
    (:func:`_xent_and_one_minus_pt_rows`). The edge cases are guarded as the
    cross-entropy's (:func:`_numerics.on_cpu_unless_nonfinite`; ``mode`` as there); the
    two values travel stacked on a last axis. Gradients of the second output:
    ``-p (q - sum(q p))`` for the logits, ``1 - p`` for ``q``.
    """
    both = _numerics.on_cpu_unless_nonfinite(_xent_and_one_minus_pt_fast, _xent_and_one_minus_pt_guarded, x, q, ax,
                                             mode)
    return both[..., 0], both[..., 1]


def _xent_and_one_minus_pt_rows(x: Array, q: Array, ax: int, guard: bool) -> Array:
    """Both values of :func:`_xent_and_one_minus_pt` stacked on a last axis, with or without the ``-inf`` guard.

    ``-sum(q log p)`` and ``sum(q (1 - exp(log p)))`` over the log-probabilities
    (optax's formula): two sums, at most one ``[N, C]`` intermediate. The form
    before shared the log-sum-exp's exponential, ``sum(q) - sum(q e^s) /
    sum(e^s)``; XLA:CPU then either wrote out the shifted logits and their
    exponential (two ``[N, C]`` arrays: 32 MiB at 2048x2048, 64 MiB at
    1024x8192, past glibc's 32 MiB mmap threshold) or fused it all into one YNN
    reduction with three sums and a division per row (4096x1000, 8192x1000).
    Forward against optax, scratch A/B runs: 8192x1000 0.97-1.01x -> 0.50-0.54x,
    2048x2048 0.98-1.53x -> 0.44-0.74x, 1024x8192 1.00-1.05x -> 0.66-0.67x,
    4096x1000 0.97x -> 0.89-0.92x; 128x10 5 kernels instead of 7, 2-9% faster
    in each of five runs; 1024x1000, the one size that lost, 0.83-0.89x ->
    0.89-0.96x.

    Unguarded, a ``-inf`` logit at ``q = 0`` gives NaN (``0 * -inf``); ``guard``
    replaces the ``-inf`` shifted logits by the lowest finite float with a
    select, as :func:`_softmax_xent_guarded` (a NaN logit stays NaN; the
    floor ``maximum(s, lowest)`` did too, but not inside XLA:CPU's YNN
    reduction fusions, which drop NaN in a maximum); its probability is then 0.
    """
    shifted, lse = _shift_and_lse(x, ax)
    log_p = (_lowest_for_neg_inf(shifted) if guard else shifted) - lse
    xent = -jnp.sum(q * log_p, axis=ax)
    one_minus_pt = jnp.sum(q * (1.0 - jnp.exp(log_p)), axis=ax)
    return jnp.stack([xent, one_minus_pt], axis=-1)


def _xent_and_one_minus_pt_fast(x: Array, q: Array, ax: int) -> Array:
    return _xent_and_one_minus_pt_rows(x, q, ax, guard=False)


def _xent_and_one_minus_pt_guarded(x: Array, q: Array, ax: int) -> Array:
    return _xent_and_one_minus_pt_rows(x, q, ax, guard=True)


@_xent_and_one_minus_pt.defjvp
def _xent_and_one_minus_pt_jvp(ax: int, mode: str, primals: tuple[Array, Array],
                               tangents: tuple[Array, Array]) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    (x, q), (dx, dq) = primals, tangents
    # The values come from the same pass as the tangents: as a separate primal pass, forward+backward
    # measured 1.09x optax at 1024x1000 instead of 0.83x. (The floor's maximum is one of those that
    # XLA:CPU's YNN fusions evaluate without NaN propagation; see the conventions page.)
    shifted, lse = _shift_and_lse(x, ax, floor=True)
    log_p = shifted - lse
    p = jnp.exp(log_p)
    xent = -jnp.sum(q * log_p, axis=ax)
    # sum(q (1 - p)), the forward's formula: as sum(q) - sum(q p), a third sum, XLA:CPU's value-and-gradient
    # program took 0.96-1.01x optax's time at 8192x1000 instead of 0.75-0.78x (1024x1000 0.84-0.86x either way).
    one_minus_pt = jnp.sum(q * (1.0 - p), axis=ax)
    guarded_log_p = jnp.where((q == 0) & (x == -jnp.inf), jnp.zeros_like(log_p), log_p)
    d_logits = dx - jnp.sum(p * dx, axis=ax, keepdims=True)  # d log_softmax
    d_xent = -jnp.sum(q * d_logits + guarded_log_p * dq, axis=ax)
    d_one_minus_pt = jnp.sum((1.0 - p) * dq - q * p * d_logits, axis=ax)
    return (xent, one_minus_pt), (d_xent, d_one_minus_pt)


@jax.custom_jvp
def _relu(x: Array) -> Array:
    """``max(x, 0)`` with ``jax.nn.relu``'s conventions (gradient 0 at 0, NaN propagates).

    The value is a plain ``maximum`` with a scalar 0, which XLA:CPU fuses into
    the reduction that follows (a select would not fuse, and ``jax.nn.relu``'s
    derivative rule made XLA:CPU materialise a full-size array of zeros); the
    convention at the kink (``maximum``'s own derivative there is 0.5) lives in
    the JVP.
    """
    return jnp.maximum(x, jnp.asarray(0, x.dtype))


@_relu.defjvp
def _relu_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (x,), (dx,) = primals, tangents
    # The step function 1[x > 0] as sign(max(x, 0)), not a select (nor (sign(x) + |sign(x)|) / 2, nor
    # max(sign(x), 0)): it reads the maximum the value computes, so XLA:CPU stores that maximum once for
    # the reduction and the backward, in optax's kernel count and memory (hinge loss 2048x128
    # forward+backward 1.06 -> 1.01x optax). sign(0) = 0 keeps relu's convention; NaN stays NaN.
    out = _relu(x)
    return out, dx * jnp.sign(out)


def _reduce_hinge(s: Array, y: Array, margin: bool, *, reduction: str, weights: Any, where: Any, fn: str) -> Array:
    """``reduce(max(m - y s, 0))`` for the binary hinge (``m = 1``) and perceptron (``m = 0``) losses.

    For ``"sum"``/``"mean"`` from ``_numerics.SPLIT_DERIVATIVE_MIN_SIZE`` elements (below, the plain relu
    is as fast: 32x128 value and gradient 1.03-1.06x with this form) it is
    ``0 - reduce(min(y s - m, 0))`` (:func:`_hinge_negative_part`), the same
    numbers (``min(y s - m, 0) = -max(m - y s, 0)`` exactly; ``0 - x`` keeps a
    zero loss ``+0``). XLA:CPU's YNN reduction fusion runs a minimum against 0
    after a subtract of a constant faster than a maximum against 0 after a
    negation or a subtract from a constant (32768x128 forward 0.87x), and with
    the derivative spelled apart (see :func:`_hinge_negative_part`) the value
    and gradient read the inputs twice and write only the gradient, where
    optax writes the ``[N, D]`` hinge for its reduction and reads it back
    (2048x128 value and gradient 0.85x, 32768x128 0.76-0.81x).
    """
    if reduction == "none" or s.size < _numerics.SPLIT_DERIVATIVE_MIN_SIZE:
        values = _relu(1.0 - y * s) if margin else _relu(-y * s)
        return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)
    negative = _hinge_negative_part(s, y, margin)
    reduced = reduce_values(negative, reduction=reduction, weights=weights, where=where, fn=fn)
    return jnp.zeros((), reduced.dtype) - reduced


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _hinge_negative_part(s: Array, y: Array, margin: bool) -> Array:
    """``min(y s - m, 0)`` (``m`` 1 or 0), with ``jax.nn.relu``'s convention (derivative 0 at the kink).

    The derivative's step function is spelled from ``y * (-s)`` rather than
    ``y * s`` (bit-identical: negation is exact), and its zero is a separate
    constant behind an optimization barrier, so XLA's CSE shares nothing
    between the value and the gradient: the value's minimum then fuses into
    the YNN reduction and the gradient is one pass over the inputs, instead of
    the product or the minimum being written out for both.
    """
    z = y * s
    if margin:
        z = z - jnp.asarray(1, z.dtype)
    return jnp.minimum(z, jnp.asarray(0, z.dtype))


@_hinge_negative_part.defjvp
def _hinge_negative_part_jvp(margin: bool, primals: tuple[Array, Array],
                             tangents: tuple[Array, Array]) -> tuple[Array, Array]:
    (s, y), (ds, dy) = primals, tangents
    m_minus_ys = y * (-s)  # == -(y s), bit for bit
    if margin:
        m_minus_ys = m_minus_ys + jnp.asarray(1, s.dtype)
    zero = jax.lax.optimization_barrier(jnp.asarray(0, s.dtype))
    step = jnp.maximum(jnp.sign(m_minus_ys), zero)  # 1 where y s < m, 0 at and above it; NaN stays NaN
    return _hinge_negative_part(s, y, margin), (ds * y + dy * s) * step


def _nan_unless(valid: Array, values: Array) -> Array:
    """``values`` where ``valid``, NaN elsewhere (value and gradient row): one multiply per example.

    A NaN one-hot row gives the same NaN with a select per ``[N, C]`` element.
    """
    return values * jnp.where(valid, jnp.asarray(1, values.dtype), jnp.asarray(jnp.nan, values.dtype))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _label_score(s: Array, labels: Array, ax: int) -> Array:
    """``s[..., labels, ...]`` along ``ax`` for in-range int32 ``labels``: a gather of ``[N]`` scores.

    The forward reads one score per example (a one-hot dot product reads, and on XLA:CPU above ~4096
    elements materialises, a whole ``[N, C]`` one-hot). The tangent is the one-hot dot product
    ``sum(where(c = y, ds, 0))``, so the gradient is an elementwise select, not a gather's scatter.
    """
    return jnp.squeeze(jnp.take_along_axis(s, jnp.expand_dims(labels, ax), axis=ax), ax)


@_label_score.defjvp
def _label_score_jvp(ax: int, primals: tuple[Array, Array], tangents: tuple[Array, Array]) -> tuple[Array, Array]:
    (s, labels), (ds, _) = primals, tangents
    is_label = jax.lax.broadcasted_iota(jnp.int32, s.shape, ax) == jnp.expand_dims(labels, ax)
    return _label_score(s, labels, ax), jnp.sum(jnp.where(is_label, ds, jnp.zeros((), ds.dtype)), axis=ax)


def _check_smoothing(fn: str, label_smoothing: Any) -> None:
    _checks.in_range(fn, "label_smoothing", label_smoothing, low=0.0, high=1.0)


# ------------------------------------------------------------------- binary
@_registry.builtin(tags=("binary",), labels="unit")
def sigmoid_binary_cross_entropy(logits: Any, labels: Any, *, pos_weight: Any = None,
                                 label_smoothing: Any = 0.0, reduction: str = "mean", weights: Any = None,
                                 where: Any = None) -> Array:
    r"""Binary cross-entropy on logits (torch ``BCEWithLogits``, optax semantics).

    .. math::

        \ell = p_w \, y \, \operatorname{softplus}(-x) + (1 - y) \operatorname{softplus}(x),
        \qquad y \leftarrow y (1 - \varepsilon) + \tfrac12 \varepsilon

    using :math:`-\log\sigma(x) = \operatorname{softplus}(-x)` and
    :math:`-\log(1 - \sigma(x)) = \operatorname{softplus}(x)`, exact for any logit.

    Args:
      logits: ``[...]`` float logits.
      labels: ``[...]`` targets in ``[0, 1]`` (any real dtype), same shape.
      pos_weight: weight of the positive term, broadcastable to ``[...]``
        (e.g. ``[num_labels]``), ``>= 0``; ``None`` is 1.
      label_smoothing: ``varepsilon`` in ``[0, 1]`` (Keras semantics).
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, ``label_smoothing`` outside ``[0, 1]``,
        negative or non-broadcastable ``pos_weight``, unknown ``reduction``.
      TypeError: non-float ``logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> loss = jaxloss.sigmoid_binary_cross_entropy(jnp.array([0.0, 0.0]), jnp.array([1.0, 0.0]))
      >>> round(float(loss), 6)  # log 2
      0.693147

    References:
      Cox, "The regression analysis of binary sequences", JRSS B, 1958;
      torch ``BCEWithLogitsLoss``,
      https://pytorch.org/docs/stable/generated/torch.nn.BCEWithLogitsLoss.html
    """
    fn = "sigmoid_binary_cross_entropy"
    _check_smoothing(fn, label_smoothing)
    _checks.in_range(fn, "pos_weight", pos_weight, low=0.0)
    (x, y), where = _checks.elementwise_inputs(fn, where, [("logits", logits)], [("labels", labels)])
    y = y * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if pos_weight is None:
        values = _numerics.bce_with_logits(x, y)  # forward 4 -> 2 kernels (see there)
    else:
        pw = _checks.broadcastable(fn, "pos_weight", _checks.floating(fn, "pos_weight", jnp.asarray(pos_weight)),
                                   x.shape, "logits")
        values = _numerics.weighted_bce_with_logits(x, y, pw)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(aliases=("binary_crossentropy",), tags=("binary",), labels="unit")
def binary_cross_entropy(probabilities: Any, labels: Any, *, label_smoothing: Any = 0.0, epsilon: Any = 1e-7,
                         reduction: str = "mean", weights: Any = None, where: Any = None) -> Array:
    r"""Binary cross-entropy on probabilities, clipped to ``[epsilon, 1 - epsilon]`` (Keras).

    .. math::

        \ell = -\big(y \log \tilde p + (1 - y) \log(1 - \tilde p)\big),
        \qquad \tilde p = \operatorname{clip}(p, \epsilon, 1 - \epsilon)

    Prefer :func:`sigmoid_binary_cross_entropy` on logits when you have them:
    it is exact where this one clips.

    Args:
      probabilities: ``[...]`` predicted probabilities in ``[0, 1]``.
      labels: ``[...]`` targets in ``[0, 1]`` (any real dtype), same shape.
      label_smoothing: in ``[0, 1]``; labels become ``y (1 - e) + e / 2``.
      epsilon: the clipping margin, in ``(0, 0.5)``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.
      Keras' ``binary_crossentropy`` is the mean of these over the last axis.

    Raises:
      ValueError: shapes differ, hyper-parameters out of range, unknown ``reduction``.
      TypeError: non-float ``probabilities``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> round(float(jaxloss.binary_cross_entropy(jnp.array([0.5]), jnp.array([1.0]))), 6)
      0.693147

    References:
      Keras ``BinaryCrossentropy``, https://keras.io/api/losses/probabilistic_losses/
    """
    fn = "binary_cross_entropy"
    _check_smoothing(fn, label_smoothing)
    _checks.in_range(fn, "epsilon", epsilon, low=0.0, high=0.5, low_open=True, high_open=True)
    (p, y), where = _checks.elementwise_inputs(fn, where, [("probabilities", probabilities)], [("labels", labels)],
                                               safe_values=[0.5, 0.0])
    y = y * (1.0 - label_smoothing) + 0.5 * label_smoothing
    values = _clipped_bce(p, y, jnp.asarray(epsilon, p.dtype))  # derivatives written: 32768x128 6 -> 5 kernels
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


def _clipped_bce_value(p: Array, y: Array, eps: Array) -> Array:
    # A clamp, not a maximum and a minimum: XLA:CPU would fuse those into the reduction (one kernel
    # less) but evaluate them there without NaN propagation, and a NaN probability must give NaN.
    clipped = jnp.clip(p, eps, 1.0 - eps)
    return -(y * jnp.log(clipped) + (1.0 - y) * jnp.log1p(-clipped))


def _clipped_bce_partials(p: Array, y: Array, eps: Array) -> tuple[Array, Array, None]:
    clipped = jnp.clip(p, eps, 1.0 - eps)
    inside = ~((p < eps) | (p > 1.0 - eps))  # the clip passes the gradient (TF's clip_by_value); NaN stays NaN
    # c (1 - c) as c - c^2: a constant 1 here is the same broadcast as the value's (1 - y), which XLA:CPU then
    # wrote out for both (32768x128 value and gradient: a 16 MiB array of ones, 10.9 -> 7.0-8.5 ms).
    slope = jnp.where(inside, (clipped - y) / (clipped - clipped * clipped), jnp.zeros_like(p))
    return slope, jnp.log1p(-clipped) - jnp.log(clipped), None


_clipped_bce = _numerics.elementwise(_clipped_bce_value, _clipped_bce_partials)


@_registry.builtin(tags=("binary",), labels="unit")
def sigmoid_focal_loss(logits: Any, labels: Any, *, alpha: Any = 0.25, gamma: Any = 2.0, reduction: str = "mean",
                       weights: Any = None, where: Any = None) -> Array:
    r"""Sigmoid focal loss (torchvision ``sigmoid_focal_loss``).

    .. math::

        \ell = \alpha_t (1 - p_t)^\gamma \, \mathrm{BCE}(x, y), \quad
        p_t = p y + (1 - p)(1 - y), \quad \alpha_t = \alpha y + (1 - \alpha)(1 - y)

    with :math:`p = \sigma(x)`. ``alpha=None`` drops :math:`\alpha_t`. At
    :math:`1 - p_t = 0` the modulating factor's gradient is taken as 0, so
    ``gamma < 1`` stays finite.

    Args:
      logits: ``[...]`` float logits.
      labels: ``[...]`` targets in ``[0, 1]``, same shape.
      alpha: weight of positives in ``[0, 1]``, or ``None``.
      gamma: focusing exponent ``>= 0``; 0 gives (alpha-weighted) BCE.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, ``alpha`` outside ``[0, 1]``, ``gamma < 0``,
        unknown ``reduction``.
      TypeError: non-float ``logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> round(float(jaxloss.sigmoid_focal_loss(jnp.array([0.0]), jnp.array([1.0]))), 6)  # .25*.25*log 2
      0.043322

    References:
      Lin, Goyal, Girshick, He and Dollar, "Focal Loss for Dense Object
      Detection", ICCV 2017, https://arxiv.org/abs/1708.02002
    """
    fn = "sigmoid_focal_loss"
    _checks.in_range(fn, "alpha", alpha, low=0.0, high=1.0)
    _checks.in_range(fn, "gamma", gamma, low=0.0)
    (x, y), where = _checks.elementwise_inputs(fn, where, [("logits", logits)], [("labels", labels)])
    p = jax.nn.sigmoid(x)
    ce = _numerics.bce_with_logits(x, y)  # no shared array of ones or zeros for XLA:CPU to write out
    one_minus_pt = jnp.clip(p + y - 2.0 * p * y, 0.0, None)
    values = ce * _numerics.safe_pow(one_minus_pt, gamma)
    if alpha is not None:
        values = ((1.0 - alpha) + (2.0 * alpha - 1.0) * y) * values  # alpha y + (1 - alpha)(1 - y)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


# ---------------------------------------------------------- softmax family
@_registry.builtin(aliases=("categorical_crossentropy",), tags=("distribution_labels",))
def softmax_cross_entropy(logits: Any, labels: Any, *, axis: int = -1, label_smoothing: Any = 0.0,
                          class_weights: Any = None, reduction: str = "mean", weights: Any = None,
                          where: Any = None) -> Array:
    r"""Softmax cross-entropy with distribution labels (optax; torch with probability targets).

    .. math::

        \ell = -\sum_c w_c \, q_c \log \operatorname{softmax}(x)_c,
        \qquad q = (1 - \varepsilon) y + \varepsilon / C

    A ``-inf`` logit (a masked class) with zero target weight adds ``0 log 0 = 0``
    to the value and every gradient (optax gives NaN); a positive weight on it
    gives a huge finite value (the shifted logits are floored at the lowest
    finite float) instead of ``inf``.

    Args:
      logits: ``[..., C]`` float logits (class axis ``axis``).
      labels: ``[..., C]`` target distributions (any real dtype), same shape.
      axis: the class axis.
      label_smoothing: ``varepsilon`` in ``[0, 1]`` (torch semantics).
      class_weights: ``[C]`` non-negative class weights ``w`` (scale each
        example's value; ``"mean"`` divides by the number of examples, as torch).
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, bad ``axis``, ``label_smoothing`` outside
        ``[0, 1]``, ``class_weights`` not ``[C]`` or negative, unknown ``reduction``.
      TypeError: non-float ``logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.log(jnp.array([[0.5, 0.25, 0.25]]))
      >>> round(float(jaxloss.softmax_cross_entropy(logits, jnp.array([[1.0, 0.0, 0.0]]))), 6)  # log 2
      0.693147

    References:
      Bridle, "Probabilistic Interpretation of Feedforward Classification
      Network Outputs", 1990; Szegedy et al., "Rethinking the Inception
      Architecture" (label smoothing), 2016, https://arxiv.org/abs/1512.00567
    """
    fn = "softmax_cross_entropy"
    _check_smoothing(fn, label_smoothing)
    logits, labels, axis = _flatten_class_axes(fn, axis, logits, labels, labels_have_classes=True)
    x, q, where, ax = _per_example_inputs(fn, where, "logits", logits, "labels", labels, axis, integer_labels=False)
    num_classes = x.shape[ax]
    q = (1.0 - label_smoothing) * q + label_smoothing / num_classes
    if class_weights is not None:
        q = q * _along(_class_vector(fn, "class_weights", class_weights, num_classes, x.dtype), ax, x.ndim)
    return _reduce_unless_nonfinite(_softmax_xent, x, q, ax, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(aliases=("sparse_categorical_crossentropy", "cross_entropy"), tags=("integer_labels",))
def softmax_cross_entropy_with_integer_labels(
    logits: Any, labels: Any, *, axis: int = -1, label_smoothing: Any = 0.0, class_weights: Any = None,
    ignore_index: int | None = None, z_loss_weight: Any = 0.0, reduction: str = "mean", weights: Any = None,
    where: Any = None,
) -> Array:
    r"""Softmax cross-entropy with integer labels (torch ``cross_entropy`` semantics).

    With :math:`\mathrm{lse} = \log\sum_c e^{x_c}` and class weights :math:`w`
    (1 if ``None``):

    .. math::

        \ell = (1 - \varepsilon)\, w_y (\mathrm{lse} - x_y)
             + \frac{\varepsilon}{C} \sum_c w_c (\mathrm{lse} - x_c)
             + \lambda_z \, \mathrm{lse}^2

    ``"mean"`` divides by :math:`\sum w_y` over unmasked, non-ignored
    positions (torch). The value is computed from ``lse`` and gathered logits,
    never materialising ``log_softmax``. A label outside ``[0, C)`` that is not
    ``ignore_index`` gives NaN at its position.

    Args:
      logits: ``[..., C]`` float logits (class axis ``axis``).
      labels: ``[...]`` integer class indices.
      axis: the class axis.
      label_smoothing: ``varepsilon`` in ``[0, 1]``: targets ``(1 - e) onehot + e / C``.
      class_weights: ``[C]`` non-negative class weights.
      ignore_index: a label value to mask (e.g. ``-100`` for padding), or ``None``.
      z_loss_weight: ``lambda_z >= 0`` of the PaLM z-loss ``lse**2``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values (times ``w_y``) for ``reduction="none"``,
      else a scalar.

    Raises:
      ValueError: labels shape is not logits' without ``axis``, bad ``axis``,
        hyper-parameters out of range, unknown ``reduction``.
      TypeError: non-float ``logits`` or non-integer ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.log(jnp.array([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]]))
      >>> labels = jnp.array([0, -100])
      >>> round(float(jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels, ignore_index=-100)), 6)
      0.693147
      >>> jaxloss.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 3]), reduction="none")
      Array([0.6931472,       nan], dtype=float32)

    References:
      Paszke et al., torch ``cross_entropy``,
      https://pytorch.org/docs/stable/generated/torch.nn.functional.cross_entropy.html;
      Chowdhery et al., "PaLM: Scaling Language Modeling with Pathways" (z-loss),
      2022, https://arxiv.org/abs/2204.02311
    """
    fn = "softmax_cross_entropy_with_integer_labels"
    logits, labels, axis = _flatten_class_axes(fn, axis, logits, labels, labels_have_classes=False)
    _check_smoothing(fn, label_smoothing)
    _checks.integer_option(fn, "ignore_index", ignore_index)
    _checks.in_range(fn, "z_loss_weight", z_loss_weight, low=0.0)
    raw_labels = _checks.integer(fn, "labels", labels)
    where = _numerics.ignore_mask(where, raw_labels, ignore_index)
    x, y, where, ax = _per_example_inputs(fn, where, "logits", logits, "labels", raw_labels, axis,
                                          integer_labels=True)
    num_classes = x.shape[ax]
    if class_weights is None and ax == x.ndim - 1 and _kernels.use_pallas(logits):
        # GPU/TPU: the Pallas kernel streams the vocabulary (jaxloss/_kernels.py). It reads the logits
        # in their input dtype (a bfloat16 model's logits are not copied to float32 first).
        xk = _numerics.mask_inputs(_numerics.expand_where(where, ax), jnp.asarray(logits))
        lse, label_logit, logit_sum = _kernels.cross_entropy_statistics(xk, y)
        nll = lse - jnp.where((y >= 0) & (y < num_classes), label_logit, jnp.nan)
        smooth = jnp.where(label_smoothing == 0, jnp.zeros_like(lse), num_classes * lse - logit_sum)
        values = (1.0 - label_smoothing) * nll + (label_smoothing / num_classes) * smooth
        values = values + z_loss_weight * jnp.square(lse)
        return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)
    # Shift by the (stop-gradient) maximum first, as torch's log_softmax does: lse - x_c is then a
    # difference of O(1) numbers, exact to rounding even for logits of magnitude 1e4.
    shift = jax.lax.stop_gradient(jnp.max(x, axis=ax, keepdims=True))
    shifted = x - shift
    # Log-partition minus the shift. max(shifted) is exactly 0, so log(sum(exp)) needs no second max
    # pass (jax.nn.logsumexp would take one and make XLA materialise `shifted`); the label's logit is
    # gathered from x and shifted afterwards, the same float as gathering from `shifted`.
    lse = jnp.log(jnp.sum(jnp.exp(shifted), axis=ax))
    nll = lse - (_numerics.take_class(x, y, ax) - jnp.squeeze(shift, ax))
    normalizer = None
    if class_weights is not None:
        cw = _class_vector(fn, "class_weights", class_weights, num_classes, x.dtype)
        w_y = _numerics.class_weight_of(cw, y)
        nll = w_y * nll
        normalizer = w_y
    # A hyper-parameter that is a concrete 0 (the defaults) drops its term at trace time: a zero-weighted
    # term still sent zeros through the gradient, and XLA kept the `-0 + g` of adding them (one more
    # operation per element of the [N, C] gradient pass than optax's).
    if _checks.is_static_zero(label_smoothing):
        values = nll
    else:
        if class_weights is not None:
            smooth = lse * jnp.sum(cw) - jnp.sum(_along(cw, ax, x.ndim) * shifted, axis=ax)
        else:
            smooth = num_classes * lse - jnp.sum(shifted, axis=ax)
        # A traced smoothing of 0 drops the smoothing term all the same (double-where): it is inf for -inf
        # logits (masked classes), and 0 * inf would make the value and gradients NaN.
        smooth = jnp.where(label_smoothing == 0, jnp.zeros_like(smooth), smooth)
        values = (1.0 - label_smoothing) * nll + (label_smoothing / num_classes) * smooth
    if not _checks.is_static_zero(z_loss_weight):
        values = values + z_loss_weight * jnp.square(lse + jnp.squeeze(shift, ax))
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn, normalizer=normalizer)


@_registry.builtin(tags=("integer_labels", "log_probabilities"))
def nll_loss(log_probabilities: Any, labels: Any, *, axis: int = -1, class_weights: Any = None,
             ignore_index: int | None = None, reduction: str = "mean", weights: Any = None,
             where: Any = None) -> Array:
    r"""Negative log-likelihood of integer labels under given log-probabilities (torch ``nll_loss``).

    .. math::

        \ell = -w_y \log p_y

    ``"mean"`` divides by :math:`\sum w_y` over unmasked, non-ignored positions.

    Args:
      log_probabilities: ``[..., C]`` log-probabilities (e.g. ``log_softmax``).
      labels: ``[...]`` integer class indices; out of range gives NaN.
      axis: the class axis.
      class_weights: ``[C]`` non-negative class weights.
      ignore_index: a label value to mask, or ``None``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: labels shape is not the input's without ``axis``, bad
        ``axis`` or ``class_weights``, unknown ``reduction``.
      TypeError: non-float ``log_probabilities`` or non-integer ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> log_p = jnp.log(jnp.array([[0.5, 0.5], [0.25, 0.75]]))
      >>> jaxloss.nll_loss(log_p, jnp.array([0, 1]), reduction="none")
      Array([0.6931472, 0.2876821], dtype=float32)

    References:
      torch ``nll_loss``, https://pytorch.org/docs/stable/generated/torch.nn.NLLLoss.html
    """
    fn = "nll_loss"
    _checks.integer_option(fn, "ignore_index", ignore_index)
    raw_labels = _checks.integer(fn, "labels", labels)
    where = _numerics.ignore_mask(where, raw_labels, ignore_index)
    log_p, y, where, ax = _per_example_inputs(fn, where, "log_probabilities", log_probabilities, "labels",
                                              raw_labels, axis, integer_labels=True)
    values = -_numerics.take_class(log_p, y, ax)
    normalizer = None
    if class_weights is not None:
        cw = _class_vector(fn, "class_weights", class_weights, log_p.shape[ax], log_p.dtype)
        normalizer = _numerics.class_weight_of(cw, y)
        values = normalizer * values
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn, normalizer=normalizer)


def _softmax_focal_values(x: Array, q: Array, ax: int, alpha: Any, gamma: Any, fn: str) -> Array:
    """``-sum_c alpha_c q_c (1 - p_c)^gamma log p_c`` per example; a concrete ``gamma`` takes the CPU fast path."""
    if alpha is not None:
        q = q * _along(_class_vector(fn, "alpha", alpha, x.shape[ax], x.dtype), ax, x.ndim)
    if not _checks.is_concrete(gamma):
        return _softmax_focal_guarded(x, q, ax, gamma)
    return _softmax_focal_rows(float(np.asarray(gamma)))(x, q, ax)


def _softmax_focal_guarded(x: Array, q: Array, ax: int, gamma: Any) -> Array:
    """The focal terms with the contract's guards: ``0 log 0 = 0``, a finite gradient at ``p = 1``."""
    log_p = jax.nn.log_softmax(x, axis=ax)
    # 1 - p = -expm1(log p): accurate when p is close to 1.
    modulating = _numerics.safe_pow(jnp.clip(-jnp.expm1(log_p), 0.0, None), gamma)
    return jnp.sum(-q * modulating * _log_where_weighted(log_p, q), axis=ax)


@functools.lru_cache(maxsize=None)
def _softmax_focal_rows(gamma: float) -> Callable[[Array, Array, int], Array]:
    """The per-example softmax focal loss for one ``gamma``: on CPU the unguarded terms in one fused pass.

    XLA:CPU's YNN reduction takes no select, so the guarded form wrote out the
    log-probabilities and its two selects (three ``[N, C]`` arrays; 8192x1000
    forward 31-39 ms, Keras 13 ms). The unguarded form (no select; a whole
    ``gamma`` multiplied out) is one pass (6.6 ms), and only a batch with a
    non-finite row is recomputed guarded (:func:`jaxloss._numerics.on_cpu_unless_nonfinite`).
    Under differentiation the value and the derivative are the guarded form's.
    """
    def fast(x: Array, q: Array, ax: int) -> Array:
        shifted, lse = _shift_and_lse(x, ax)
        log_p = shifted - lse
        one_minus_p = jnp.maximum(-jnp.expm1(log_p), jnp.zeros((), x.dtype))
        whole = _numerics.whole_exponent(gamma)
        modulating = (jax.lax.integer_pow(one_minus_p, whole) if whole is not None
                      else one_minus_p ** jnp.asarray(gamma, x.dtype))
        return -jnp.sum(q * modulating * log_p, axis=ax)

    def guarded(x: Array, q: Array, ax: int) -> Array:
        return _softmax_focal_guarded(x, q, ax, gamma)

    return _numerics.fast_unless_nonfinite(fast, guarded)


@_registry.builtin(tags=("distribution_labels",))
def softmax_focal_loss(logits: Any, labels: Any, *, alpha: Any = None, gamma: Any = 2.0, axis: int = -1,
                       label_smoothing: Any = 0.0, reduction: str = "mean", weights: Any = None,
                       where: Any = None) -> Array:
    r"""Softmax focal loss with distribution labels (Keras ``CategoricalFocalCrossentropy(from_logits=True)``).

    .. math::

        \ell = -\sum_c \alpha_c \, q_c \, (1 - p_c)^\gamma \log p_c,
        \qquad p = \operatorname{softmax}(x), \; q = (1 - \varepsilon) y + \varepsilon / C

    Computed from ``log_softmax`` (Keras clips probabilities to
    ``[1e-7, 1 - 1e-7]``; the two agree away from saturation).

    Args:
      logits: ``[..., C]`` float logits.
      labels: ``[..., C]`` target distributions, same shape.
      alpha: ``None``, a scalar or ``[C]`` non-negative class weights.
      gamma: focusing exponent ``>= 0``.
      axis: the class axis.
      label_smoothing: in ``[0, 1]``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, hyper-parameters out of range, unknown ``reduction``.
      TypeError: non-float ``logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.log(jnp.array([[0.5, 0.5]]))
      >>> round(float(jaxloss.softmax_focal_loss(logits, jnp.array([[1.0, 0.0]]))), 6)  # .25 log 2
      0.173287

    References:
      Lin, Goyal, Girshick, He and Dollar, "Focal Loss for Dense Object
      Detection", ICCV 2017, https://arxiv.org/abs/1708.02002
    """
    fn = "softmax_focal_loss"
    _check_smoothing(fn, label_smoothing)
    _checks.in_range(fn, "gamma", gamma, low=0.0)
    x, q, where, ax = _per_example_inputs(fn, where, "logits", logits, "labels", labels, axis, integer_labels=False)
    q = (1.0 - label_smoothing) * q + label_smoothing / x.shape[ax]
    values = _softmax_focal_values(x, q, ax, alpha, gamma, fn)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(tags=("integer_labels",))
def softmax_focal_loss_with_integer_labels(logits: Any, labels: Any, *, alpha: Any = None, gamma: Any = 2.0,
                                           axis: int = -1, label_smoothing: Any = 0.0,
                                           ignore_index: int | None = None, reduction: str = "mean",
                                           weights: Any = None, where: Any = None) -> Array:
    r"""Softmax focal loss with integer labels.

    .. math::

        \ell = -\sum_c \alpha_c \, q_c \, (1 - p_c)^\gamma \log p_c,
        \qquad q = (1 - \varepsilon)\,\mathrm{onehot}(y) + \varepsilon / C

    Without smoothing this is :math:`-\alpha_y (1 - p_y)^\gamma \log p_y`.
    ``"mean"`` divides by the number of unmasked, non-ignored examples.

    Args:
      logits: ``[..., C]`` float logits.
      labels: ``[...]`` integer class indices; out of range gives NaN.
      alpha: ``None``, a scalar or ``[C]`` non-negative class weights.
      gamma: focusing exponent ``>= 0``.
      axis: the class axis.
      label_smoothing: in ``[0, 1]``.
      ignore_index: a label value to mask, or ``None``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: labels shape is not logits' without ``axis``,
        hyper-parameters out of range, unknown ``reduction``.
      TypeError: non-float ``logits`` or non-integer ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.log(jnp.array([[0.5, 0.5]]))
      >>> round(float(jaxloss.softmax_focal_loss_with_integer_labels(logits, jnp.array([0]))), 6)
      0.173287

    References:
      Lin, Goyal, Girshick, He and Dollar, "Focal Loss for Dense Object
      Detection", ICCV 2017, https://arxiv.org/abs/1708.02002
    """
    fn = "softmax_focal_loss_with_integer_labels"
    _check_smoothing(fn, label_smoothing)
    _checks.in_range(fn, "gamma", gamma, low=0.0)
    _checks.integer_option(fn, "ignore_index", ignore_index)
    raw_labels = _checks.integer(fn, "labels", labels)
    where = _numerics.ignore_mask(where, raw_labels, ignore_index)
    x, y, where, ax = _per_example_inputs(fn, where, "logits", logits, "labels", raw_labels, axis,
                                          integer_labels=True)
    num_classes = x.shape[ax]
    q = (1.0 - label_smoothing) * _numerics.one_hot(y, num_classes, ax, x.dtype) + label_smoothing / num_classes
    values = _softmax_focal_values(x, q, ax, alpha, gamma, fn)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(tags=("distribution_labels",))
def poly_loss_cross_entropy(logits: Any, labels: Any, *, epsilon: Any = 2.0, axis: int = -1,
                            reduction: str = "mean", weights: Any = None, where: Any = None) -> Array:
    r"""Poly-1 loss: cross-entropy plus ``epsilon`` times ``1 - p_t`` (optax).

    .. math::

        \ell = -\sum_c y_c \log p_c + \epsilon \sum_c y_c (1 - p_c)

    Args:
      logits: ``[..., C]`` float logits.
      labels: ``[..., C]`` target distributions, same shape.
      epsilon: weight of the poly-1 term (the paper uses values in ``[-1, 2]``+).
      axis: the class axis.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, bad ``axis``, unknown ``reduction``.
      TypeError: non-float ``logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.log(jnp.array([[0.5, 0.5]]))
      >>> round(float(jaxloss.poly_loss_cross_entropy(logits, jnp.array([[1.0, 0.0]]))), 6)  # log 2 + 1
      1.693147

    References:
      Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
      Classification Loss Functions", ICLR 2022, https://arxiv.org/abs/2204.12511
    """
    fn = "poly_loss_cross_entropy"
    x, y, where, ax = _per_example_inputs(fn, where, "logits", logits, "labels", labels, axis, integer_labels=False)
    eps = jnp.asarray(epsilon, x.dtype)

    def per_example(a: Array, b: Array, ax: int, mode: str) -> Array:
        cross_entropy, one_minus_pt = _xent_and_one_minus_pt(a, b, ax, mode)
        return cross_entropy + eps * one_minus_pt

    return _reduce_unless_nonfinite(per_example, x, y, ax, reduction=reduction, weights=weights, where=where, fn=fn)


# ----------------------------------------------------------------- margins
@_registry.builtin(aliases=("hinge",), tags=("binary", "sign_labels"), labels="sign")
def hinge_loss(scores: Any, labels: Any, *, reduction: str = "mean", weights: Any = None,
               where: Any = None) -> Array:
    r"""Binary hinge loss with labels in ``{-1, +1}`` (optax ``hinge_loss``).

    .. math::

        \ell = \max(0, 1 - y s)

    Args:
      scores: ``[...]`` float decision values.
      labels: ``[...]`` labels in ``{-1, +1}``, same shape (Keras' ``hinge``
        also maps ``{0, 1}`` labels; here pass ``2 y - 1``).
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, unknown ``reduction``.
      TypeError: non-float ``scores``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> jaxloss.hinge_loss(jnp.array([2.0, 0.5, -1.0]), jnp.array([1.0, 1.0, 1.0]), reduction="none")
      Array([0. , 0.5, 2. ], dtype=float32)

    References:
      Cortes and Vapnik, "Support-Vector Networks", Machine Learning, 1995,
      https://doi.org/10.1007/BF00994018
    """
    (s, y), where = _checks.elementwise_inputs("hinge_loss", where, [("scores", scores)], [("labels", labels)])
    return _reduce_hinge(s, y, True, reduction=reduction, weights=weights, where=where, fn="hinge_loss")


@_registry.builtin(aliases=("squared_hinge",), tags=("binary", "sign_labels"), labels="sign")
def squared_hinge_loss(scores: Any, labels: Any, *, reduction: str = "mean", weights: Any = None,
                       where: Any = None) -> Array:
    r"""Squared binary hinge loss with labels in ``{-1, +1}`` (Keras ``squared_hinge``).

    .. math::

        \ell = \max(0, 1 - y s)^2

    Args:
      scores: ``[...]`` float decision values.
      labels: ``[...]`` labels in ``{-1, +1}``, same shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, unknown ``reduction``.
      TypeError: non-float ``scores``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> jaxloss.squared_hinge_loss(jnp.array([2.0, 0.5, -1.0]), jnp.ones(3), reduction="none")
      Array([0.  , 0.25, 4.  ], dtype=float32)

    References:
      Rennie and Srebro, "Loss Functions for Preference Levels", 2005;
      Keras ``SquaredHinge``, https://keras.io/api/losses/hinge_losses/
    """
    (s, y), where = _checks.elementwise_inputs("squared_hinge_loss", where, [("scores", scores)], [("labels", labels)])
    values = jnp.square(_numerics.floor_keeping_nan(1.0 - y * s, 0.0))
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn="squared_hinge_loss")


@_registry.builtin(aliases=("categorical_hinge",), tags=("integer_labels",))
def multiclass_hinge_loss(scores: Any, labels: Any, *, reduction: str = "mean", weights: Any = None,
                          where: Any = None) -> Array:
    r"""Crammer-Singer multi-class hinge loss (optax ``multiclass_hinge_loss``).

    .. math::

        \ell = \max_c \big(s_c + 1 - [c = y]\big) - s_y
             = \max\big(0, \max_{c \ne y} s_c + 1 - s_y\big)

    Keras' ``categorical_hinge`` (one-hot labels) equals this whenever some
    wrong-class score is ``>= 0``.

    Args:
      scores: ``[..., C]`` float scores (class axis last).
      labels: ``[...]`` integer class indices; out of range gives NaN.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: labels shape is not the scores' without the last axis,
        unknown ``reduction``.
      TypeError: non-float ``scores`` or non-integer ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.multiclass_hinge_loss(jnp.array([[2.0, 1.5, 0.0]]), jnp.array([0])))
      0.5

    References:
      Crammer and Singer, "On the Algorithmic Implementation of Multiclass
      Kernel-based Vector Machines", JMLR 2001,
      https://www.jmlr.org/papers/v2/crammer01a.html
    """
    fn = "multiclass_hinge_loss"
    s, y, where, ax = _per_example_inputs(fn, where, "scores", scores, "labels", labels, -1, integer_labels=True)
    # The label's score is a gather (`_label_score`, one-hot tangent) and an out-of-range label's NaN an
    # [N] factor: the only [N, C] pass left is the margin's max (optax: a NaN-free one-hot, a max and a
    # one-hot dot product over [N, C]).
    y, valid = _numerics.split_labels(y, s.shape[ax])
    onehot = jax.nn.one_hot(y, s.shape[ax], dtype=s.dtype, axis=ax)
    values = _nan_unless(valid, jnp.max(s + 1.0 - onehot, axis=ax) - _label_score(s, y, ax))
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(tags=("integer_labels",))
def multi_margin_loss(scores: Any, labels: Any, *, p: int = 1, margin: Any = 1.0, class_weights: Any = None,
                      reduction: str = "mean", weights: Any = None, where: Any = None) -> Array:
    r"""Multi-class margin loss (torch ``multi_margin_loss``).

    .. math::

        \ell = \frac{1}{C} \sum_{c \ne y} w_y \max(0, m - s_y + s_c)^p

    ``"mean"`` divides by the number of unmasked examples (torch), even with
    ``class_weights``.

    Args:
      scores: ``[..., C]`` float scores (class axis last).
      labels: ``[...]`` integer class indices; out of range gives NaN.
      p: 1 or 2.
      margin: the margin ``m``.
      class_weights: ``[C]`` non-negative class weights ``w``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: ``p`` not 1 or 2, bad shapes or ``class_weights``, unknown ``reduction``.
      TypeError: non-float ``scores`` or non-integer ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> round(float(jaxloss.multi_margin_loss(jnp.array([[0.1, 0.2, 0.4, 0.8]]), jnp.array([3]))), 6)
      0.325

    References:
      Weston and Watkins, "Support Vector Machines for Multi-Class Pattern
      Recognition", ESANN 1999; torch ``MultiMarginLoss``,
      https://pytorch.org/docs/stable/generated/torch.nn.MultiMarginLoss.html
    """
    fn = "multi_margin_loss"
    _checks.choice(fn, "p", p, (1, 2))
    s, y, where, ax = _per_example_inputs(fn, where, "scores", scores, "labels", labels, -1, integer_labels=True)
    num_classes = s.shape[ax]
    onehot = _numerics.one_hot(y, num_classes, ax, s.dtype)
    s_y = jnp.sum(s * onehot, axis=ax, keepdims=True)
    hinge = _numerics.floor_keeping_nan(jnp.asarray(margin, s.dtype) - s_y + s, 0.0)
    if p == 2:
        hinge = jnp.square(hinge)
    values = jnp.sum(hinge * (1.0 - onehot), axis=ax) / num_classes
    if class_weights is not None:
        cw = _class_vector(fn, "class_weights", class_weights, num_classes, s.dtype)
        values = _numerics.class_weight_of(cw, y) * values
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(tags=("binary", "sign_labels"), labels="sign")
def soft_margin_loss(scores: Any, labels: Any, *, reduction: str = "mean", weights: Any = None,
                     where: Any = None) -> Array:
    r"""Two-class logistic loss with labels in ``{-1, +1}`` (torch ``soft_margin_loss``).

    .. math::

        \ell = \log(1 + e^{-y s}) = \operatorname{softplus}(-y s)

    Args:
      scores: ``[...]`` float scores.
      labels: ``[...]`` labels in ``{-1, +1}``, same shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, unknown ``reduction``.
      TypeError: non-float ``scores``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> round(float(jaxloss.soft_margin_loss(jnp.array([0.0]), jnp.array([1.0]))), 6)
      0.693147

    References:
      torch ``SoftMarginLoss``,
      https://pytorch.org/docs/stable/generated/torch.nn.SoftMarginLoss.html
    """
    (s, y), where = _checks.elementwise_inputs("soft_margin_loss", where, [("scores", scores)], [("labels", labels)])
    # Stable softplus without logaddexp's selects, derivatives written: 32768x128 forward 3 -> 2 kernels
    # (0.56x), value and gradient 4 -> 3 (0.61x).
    return reduce_values(_soft_margin(s, y), reduction=reduction, weights=weights, where=where, fn="soft_margin_loss")


def _soft_margin_value(s: Array, y: Array) -> Array:
    # softplus(-y s) in the stable form, its maximum written without a maximum that XLA:CPU's reduction
    # fusions would evaluate without NaN propagation (the other half of the pair is never computed).
    return _numerics.softplus_both(-y * s)[0]


def _soft_margin_partials(s: Array, y: Array) -> tuple[Array, Array]:
    slope = jax.nn.sigmoid(-y * s)
    return -y * slope, -s * slope


_soft_margin = _numerics.elementwise(_soft_margin_value, _soft_margin_partials)


@_registry.builtin(tags=("multilabel",), labels="unit")
def multilabel_soft_margin_loss(logits: Any, labels: Any, *, class_weights: Any = None, reduction: str = "mean",
                                weights: Any = None, where: Any = None) -> Array:
    r"""Multi-label one-versus-all logistic loss, averaged over classes (torch).

    .. math::

        \ell = -\frac{1}{C} \sum_c w_c \big(y_c \log\sigma(x_c) + (1 - y_c) \log\sigma(-x_c)\big)

    Args:
      logits: ``[..., C]`` float logits (classes last).
      labels: ``[..., C]`` targets in ``{0, 1}`` (or ``[0, 1]``), same shape.
      class_weights: ``[C]`` non-negative class weights ``w``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, bad ``class_weights``, unknown ``reduction``.
      TypeError: non-float ``logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> round(float(jaxloss.multilabel_soft_margin_loss(jnp.zeros((1, 3)), jnp.array([[1.0, 0.0, 1.0]]))), 6)
      0.693147

    References:
      torch ``MultiLabelSoftMarginLoss``,
      https://pytorch.org/docs/stable/generated/torch.nn.MultiLabelSoftMarginLoss.html
    """
    fn = "multilabel_soft_margin_loss"
    x, y, where, ax = _per_example_inputs(fn, where, "logits", logits, "labels", labels, -1, integer_labels=False)
    # The binary cross-entropy's form: 8192x1000 forward 4 -> 2 kernels (0.18x), value and gradient 6 -> 3 (0.34x).
    terms = _numerics.bce_with_logits(x, y)
    if class_weights is not None:
        terms = terms * _along(_class_vector(fn, "class_weights", class_weights, x.shape[ax], x.dtype), ax, x.ndim)
    values = jnp.mean(terms, axis=ax)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


# ------------------------------------------------------------- divergences
@_registry.builtin(aliases=("kld", "kullback_leibler_divergence"), tags=("divergence",))
def kl_divergence(log_predictions: Any, targets: Any, *, axis: int = -1, reduction: str = "mean",
                  weights: Any = None, where: Any = None) -> Array:
    r"""Kullback-Leibler divergence of predictions from target distributions (optax).

    .. math::

        \ell = \sum_c t_c (\log t_c - \log p_c), \qquad 0 \log 0 = 0

    Keras' ``kld`` takes probabilities; pass ``jnp.log`` of them here.

    Args:
      log_predictions: ``[..., C]`` predicted log-probabilities.
      targets: ``[..., C]`` target probabilities, same shape.
      axis: the class axis.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, bad ``axis``, unknown ``reduction``.
      TypeError: non-float ``log_predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> log_p = jnp.log(jnp.array([[0.5, 0.5]]))
      >>> round(float(jaxloss.kl_divergence(log_p, jnp.array([[1.0, 0.0]]))), 6)  # log 2
      0.693147

    References:
      Kullback and Leibler, "On Information and Sufficiency", Annals of
      Mathematical Statistics, 1951, https://doi.org/10.1214/aoms/1177729694
    """
    fn = "kl_divergence"
    log_p, t, where, ax = _per_example_inputs(fn, where, "log_predictions", log_predictions, "targets", targets,
                                              axis, integer_labels=False)
    return _reduce_unless_nonfinite(_kl_values, log_p, t, ax, reduction=reduction, weights=weights, where=where,
                                    fn=fn)


@_registry.builtin(aliases=("generalized_kl_divergence",), tags=("divergence",))
def convex_kl_divergence(log_predictions: Any, targets: Any, *, axis: int = -1, reduction: str = "mean",
                         weights: Any = None, where: Any = None) -> Array:
    r"""Generalised Kullback-Leibler divergence of unnormalised measures (optax ``convex_kl_divergence``).

    .. math::

        \ell = \sum_c \big(t_c (\log t_c - \log p_c) + p_c - t_c\big), \qquad 0 \log 0 = 0

    The Bregman divergence of :math:`x \log x - x`; equal to :func:`kl_divergence`
    when both sides sum to 1. optax 0.2.8 names it ``generalized_kl_divergence``
    (an alias here).

    Args:
      log_predictions: ``[..., C]`` predicted log-measures.
      targets: ``[..., C]`` non-negative target measures, same shape.
      axis: the class axis.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, bad ``axis``, unknown ``reduction``.
      TypeError: non-float ``log_predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> log_p = jnp.log(jnp.array([[1.0, 1.0]]))
      >>> round(float(jaxloss.classification.convex_kl_divergence(log_p, jnp.array([[2.0, 0.0]]))), 6)
      1.386294

    References:
      Boyd and Vandenberghe, "Convex Optimization", 2004, p. 90,
      https://stanford.edu/~boyd/cvxbook/; Bregman, "The relaxation method of
      finding the common point of convex sets", 1967,
      https://doi.org/10.1016/0041-5553(67)90040-7
    """
    fn = "convex_kl_divergence"
    log_p, t, where, ax = _per_example_inputs(fn, where, "log_predictions", log_predictions, "targets", targets,
                                              axis, integer_labels=False)
    return _reduce_unless_nonfinite(_convex_kl_values, log_p, t, ax, reduction=reduction, weights=weights,
                                    where=where, fn=fn)


def _convex_kl_values(log_p: Array, t: Array, ax: int, mode: str = "auto") -> Array:
    """``sum_c t_c (log t_c - log p_c) + p_c - t_c`` per example (:func:`_kl_values` keeps ``0 log 0 = 0``)."""
    return _kl_values(log_p, t, ax, mode) + jnp.sum(jnp.exp(log_p) - t, axis=ax)


@_registry.builtin(tags=("divergence",))
def kl_divergence_with_log_targets(log_predictions: Any, log_targets: Any, *, axis: int = -1,
                                   reduction: str = "mean", weights: Any = None, where: Any = None) -> Array:
    r"""Kullback-Leibler divergence with targets given as log-probabilities (optax).

    .. math::

        \ell = \sum_c e^{\log t_c} (\log t_c - \log p_c)

    Args:
      log_predictions: ``[..., C]`` predicted log-probabilities.
      log_targets: ``[..., C]`` target log-probabilities, same shape.
      axis: the class axis.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, bad ``axis``, unknown ``reduction``.
      TypeError: non-float inputs.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> log_p = jnp.log(jnp.array([[0.5, 0.5]]))
      >>> log_t = jnp.log(jnp.array([[0.75, 0.25]]))
      >>> round(float(jaxloss.kl_divergence_with_log_targets(log_p, log_t)), 6)
      0.130812

    References:
      Kullback and Leibler, "On Information and Sufficiency", 1951,
      https://doi.org/10.1214/aoms/1177729694
    """
    fn = "kl_divergence_with_log_targets"
    log_targets = _checks.floating(fn, "log_targets", log_targets)
    log_p, log_t, where, ax = _per_example_inputs(fn, where, "log_predictions", log_predictions, "log_targets",
                                                  log_targets, axis, integer_labels=False)
    return _reduce_unless_nonfinite(_kl_log_targets_values, log_p, log_t, ax, reduction=reduction, weights=weights,
                                    where=where, fn=fn)


@_registry.builtin(tags=("divergence",))
def jensen_shannon_divergence(log_predictions: Any, log_targets: Any, *, axis: int = -1, reduction: str = "mean",
                              weights: Any = None, where: Any = None) -> Array:
    r"""Jensen-Shannon divergence between two distributions given in log space.

    .. math::

        \ell = \tfrac12 \mathrm{KL}(p \,\|\, m) + \tfrac12 \mathrm{KL}(t \,\|\, m),
        \qquad \log m = \operatorname{logaddexp}(\log p, \log t) - \log 2

    Symmetric, bounded by :math:`\log 2`, finite when either side has zeros.

    Args:
      log_predictions: ``[..., C]`` log-probabilities.
      log_targets: ``[..., C]`` log-probabilities, same shape.
      axis: the class axis.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values (nats) for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, bad ``axis``, unknown ``reduction``.
      TypeError: non-float inputs.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> log_p = jnp.log(jnp.array([[1.0, 1e-30]]))
      >>> log_t = jnp.log(jnp.array([[1e-30, 1.0]]))
      >>> round(float(jaxloss.jensen_shannon_divergence(log_p, log_t)), 6)  # log 2
      0.693147

    References:
      Lin, "Divergence Measures Based on the Shannon Entropy", IEEE Trans.
      Information Theory, 1991, https://doi.org/10.1109/18.61115
    """
    fn = "jensen_shannon_divergence"
    log_targets = _checks.floating(fn, "log_targets", log_targets)
    log_p, log_t, where, ax = _per_example_inputs(fn, where, "log_predictions", log_predictions, "log_targets",
                                                  log_targets, axis, integer_labels=False)
    # Where both sides are exactly 0 (log = -inf) m is 0 too and both terms vanish; feed logaddexp
    # finite stand-ins there so that no -inf - -inf reaches the value or the gradient.
    both_zero = (log_p == -jnp.inf) & (log_t == -jnp.inf)
    log_m = jnp.logaddexp(jnp.where(both_zero, 0.0, log_p), jnp.where(both_zero, 0.0, log_t)) - math.log(2.0)
    values = 0.5 * jnp.sum(_xlogx_ratio(log_p, log_m) + _xlogx_ratio(log_t, log_m), axis=ax)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


# ---------------------------------------------------------- classic parity
@jax.custom_jvp
def _sparse_plus(x: Array) -> Array:
    """``jax.nn.sparse_plus``: 0 below -1, ``(x + 1)^2 / 4`` on ``[-1, 1]``, ``x`` above.

    The derivative is ``(clip(x, -1, 1) + 1) / 2`` (the sparse sigmoid): one clamp per element, where
    differentiating the selects and the clip wrote out their tie rules (6 compares, 6 selects and 2
    divides per element; 2048x128 forward+backward 1.05x optax).
    """
    # One select: below -1 the floor max(x, -1) makes the quadratic 0 (also at -inf), and its overflow at large
    # x is selected away; a NaN x stays NaN (a loop fusion's maximum propagates it). Two selects, as in
    # jax.nn.sparse_plus, measured 1.02-1.05x this form's time (32768x128 forward).
    return jnp.where(x >= 1.0, x, 0.25 * jnp.square(jnp.maximum(x, -1.0) + 1.0))


@_sparse_plus.defjvp
def _sparse_plus_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (x,), (dx,) = primals, tangents
    return _sparse_plus(x), dx * (0.5 * (jnp.clip(x, -1.0, 1.0) + 1.0))


@_registry.builtin(tags=("binary", "fenchel_young"), labels="binary")
def sparsemax_loss(logits: Any, labels: Any, *, reduction: str = "mean", weights: Any = None,
                   where: Any = None) -> Array:
    r"""Binary sparsemax loss: the Fenchel-Young loss of the sparse sigmoid (optax ``sparsemax_loss``).

    .. math::

        \ell = \operatorname{sparse\_plus}\big((1 - 2y)\,x\big), \qquad
        \operatorname{sparse\_plus}(z) = \begin{cases} 0 & z \le -1 \\ \tfrac14 (z + 1)^2 & |z| < 1 \\
        z & z \ge 1 \end{cases}

    Zero exactly when ``jax.nn.sparse_sigmoid(logits) == labels``. For labels in
    ``{0, 1}`` the argument is optax's ``where(labels, -logits, logits)``.

    Args:
      logits: ``[...]`` float logits.
      labels: ``[...]`` labels in ``{0, 1}`` (any real dtype), same shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, unknown ``reduction``.
      TypeError: non-float ``logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> jaxloss.classification.sparsemax_loss(jnp.array([2.0, 0.0, -2.0]), jnp.array([0, 1, 1]),
      ...                                       reduction="none")
      Array([2.  , 0.25, 2.  ], dtype=float32)

    References:
      Blondel, Martins and Niculae, "Learning with Fenchel-Young Losses", JMLR 2020
      (section 4.4), https://arxiv.org/abs/1901.02324
    """
    fn = "sparsemax_loss"
    (x, y), where = _checks.elementwise_inputs(fn, where, [("logits", logits)], [("labels", labels)])
    values = _sparse_plus((1.0 - 2.0 * y) * x)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(tags=("binary", "sign_labels"), labels="sign")
def perceptron_loss(scores: Any, labels: Any, *, reduction: str = "mean", weights: Any = None,
                    where: Any = None) -> Array:
    r"""Binary perceptron loss with labels in ``{-1, +1}`` (optax ``perceptron_loss``).

    .. math::

        \ell = \max(0, -y s)

    The gradient at the kink ``y s = 0`` is 0 (``jax.nn.relu``'s convention).

    Args:
      scores: ``[...]`` float decision values.
      labels: ``[...]`` labels in ``{-1, +1}``, same shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, unknown ``reduction``.
      TypeError: non-float ``scores``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> jaxloss.classification.perceptron_loss(jnp.array([2.0, -0.5]), jnp.array([1.0, 1.0]),
      ...                                        reduction="none")
      Array([0. , 0.5], dtype=float32)

    References:
      Rosenblatt, "The perceptron: a probabilistic model for information storage
      and organization in the brain", Psychological Review, 1958,
      https://doi.org/10.1037/h0042519
    """
    fn = "perceptron_loss"
    (s, y), where = _checks.elementwise_inputs(fn, where, [("scores", scores)], [("labels", labels)])
    return _reduce_hinge(s, y, False, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(tags=("integer_labels",))
def multiclass_perceptron_loss(scores: Any, labels: Any, *, reduction: str = "mean", weights: Any = None,
                               where: Any = None) -> Array:
    r"""Multi-class perceptron loss (optax ``multiclass_perceptron_loss``).

    .. math::

        \ell = \max_c s_c - s_y

    Args:
      scores: ``[..., C]`` float scores (class axis last).
      labels: ``[...]`` integer class indices; out of range gives NaN.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: labels shape is not the scores' without the last axis,
        unknown ``reduction``.
      TypeError: non-float ``scores`` or non-integer ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> scores = jnp.array([[2.0, 1.5, 0.0], [2.0, 1.5, 0.0]])
      >>> jaxloss.classification.multiclass_perceptron_loss(scores, jnp.array([0, 2]), reduction="none")
      Array([0., 2.], dtype=float32)

    References:
      Collins, "Discriminative Training Methods for Hidden Markov Models: Theory
      and Experiments with Perceptron Algorithms", EMNLP 2002,
      https://aclanthology.org/W02-1001/
    """
    fn = "multiclass_perceptron_loss"
    s, y, where, ax = _per_example_inputs(fn, where, "scores", scores, "labels", labels, -1, integer_labels=True)
    # The label's score is a gather whose tangent is the one-hot dot product (`_label_score`: the
    # gradient is an elementwise select, not a scatter); an out-of-range label's NaN is an [N] factor.
    # The only [N, C] pass of the forward is the max (optax: a one-hot and its dot product as well).
    y, valid = _numerics.split_labels(y, s.shape[ax])
    values = _nan_unless(valid, jnp.max(s, axis=ax) - _label_score(s, y, ax))
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@jax.custom_jvp
def _sparsemax(x: Array) -> Array:
    """Euclidean projection of each row (last axis) onto the probability simplex (Martins & Astudillo)."""
    x = x - jax.lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True))  # the top score is exactly 0
    return _relu(x - _simplex_threshold(x))


def _simplex_threshold(x: Array) -> Array:
    """``tau`` (keepdims) with ``sum(max(x - tau, 0)) = 1`` on each row, by Michelot's algorithm.

    Start with every entry in the support; ``tau = (sum of the support - 1) /
    its size``; drop the entries at or below ``tau`` and repeat until none is
    dropped. ``tau`` only grows, each pass that does not stop drops at least
    one entry, so at most ``C`` passes, and the last ``tau`` is the exact
    formula over the true support, the number the sort-based algorithm (optax,
    the paper) gives. Normal, uniform, exponential, linear, geometric and
    harmonic rows of 1000 scores took 6-16 passes; after
    ``_SIMPLEX_MAX_PASSES`` the batch is sorted instead, which bounds the cost
    of a row built to drop one entry per pass. Each pass is one fused read of
    ``x``: sorting every row, as before (and optax), cost 122 ms at 1024x1000,
    this 7.7 ms (0.06x optax's time, forward and forward+backward). A NaN row
    stops at once (``NaN > tau`` is false) and stays NaN; ``-inf`` entries
    leave the support in the first pass.
    """
    num_classes = x.shape[-1]

    def threshold(support: Array) -> Array:
        size = jnp.sum(support.astype(x.dtype), axis=-1, keepdims=True)
        return (jnp.sum(jnp.where(support, x, jnp.zeros_like(x)), axis=-1, keepdims=True) - 1.0) / size

    def step(carry: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
        passes, tau, _ = carry
        new = threshold(x > tau)
        return passes + 1, new, jnp.any(new > tau)

    tau0 = (jnp.sum(x, axis=-1, keepdims=True) - 1.0) / num_classes
    cap = min(num_classes, _SIMPLEX_MAX_PASSES)
    _, tau, changing = jax.lax.while_loop(lambda c: c[2] & (c[0] < cap), step,
                                          (jnp.zeros((), jnp.int32), tau0, jnp.ones((), bool)))
    if cap == num_classes:  # C passes always suffice
        return tau
    # A row built so that each pass drops few entries: the sort bounds the cost (taken for the whole batch,
    # only when some row is still changing; the predicate stays one scalar under vmap).
    out: Array = jax.lax.cond(_numerics.any_true(changing), _sorted_simplex_threshold, lambda x, t: t, x, tau)
    return out


# Michelot passes before the threshold falls back to sorting (6-16 passes on ordinary rows of 1000 scores).
_SIMPLEX_MAX_PASSES = 64


def _sorted_simplex_threshold(x: Array, _: Array) -> Array:
    """The simplex threshold of each row by sorting it (Martins & Astudillo; optax): the fallback of Michelot's."""
    num_classes = x.shape[-1]
    u = -jnp.sort(-x, axis=-1)  # descending
    cumsum = jnp.cumsum(u, axis=-1)
    k = jnp.arange(1, num_classes + 1, dtype=x.dtype).reshape((1,) * (x.ndim - 1) + (num_classes,))
    support = jnp.sum((1.0 + k * u > cumsum).astype(jnp.int32), axis=-1, keepdims=True)  # >= 1
    return (jnp.take_along_axis(cumsum, support - 1, axis=-1) - 1.0) / support.astype(x.dtype)



@_sparsemax.defjvp
def _sparsemax_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (x,), (dx,) = primals, tangents
    p = _sparsemax(x)
    on = (p > 0).astype(x.dtype)
    mean_on = jnp.sum(on * dx, axis=-1, keepdims=True) / jnp.sum(on, axis=-1, keepdims=True)
    return p, on * (dx - mean_on)


@_registry.builtin(tags=("integer_labels", "fenchel_young"))
def multiclass_sparsemax_loss(scores: Any, labels: Any, *, reduction: str = "mean", weights: Any = None,
                              where: Any = None) -> Array:
    r"""Multi-class sparsemax loss (optax ``multiclass_sparsemax_loss``; Martins & Astudillo 2016).

    With :math:`p = \operatorname{sparsemax}(s)`, the Euclidean projection of the
    scores onto the probability simplex:

    .. math::

        \ell = \sum_c p_c (s_c - s_y) + \tfrac12 \big(1 - \lVert p \rVert_2^2\big),
        \qquad \nabla_s \ell = p - e_y

    the Fenchel-Young loss of the Gini negentropy: 0 exactly when
    ``sparsemax(scores)`` puts all its mass on the label.

    Args:
      scores: ``[..., C]`` float scores (class axis last).
      labels: ``[...]`` integer class indices; out of range gives NaN.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: labels shape is not the scores' without the last axis,
        unknown ``reduction``.
      TypeError: non-float ``scores`` or non-integer ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> scores = jnp.array([[0.0, 0.0], [3.0, 0.0]])
      >>> jaxloss.classification.multiclass_sparsemax_loss(scores, jnp.array([0, 0]), reduction="none")
      Array([0.25, 0.  ], dtype=float32)

    References:
      Martins and Astudillo, "From Softmax to Sparsemax: A Sparse Model of
      Attention and Multi-Label Classification", ICML 2016,
      https://arxiv.org/abs/1602.02068; Blondel, Martins and Niculae, "Learning
      with Fenchel-Young Losses", JMLR 2020, https://arxiv.org/abs/1901.02324
    """
    fn = "multiclass_sparsemax_loss"
    s, y, where, ax = _per_example_inputs(fn, where, "scores", scores, "labels", labels, -1, integer_labels=True)
    values = _sparsemax_fenchel_young(s, y)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@jax.custom_jvp
def _sparsemax_fenchel_young(s: Array, y: Array) -> Array:
    """Per-example multi-class sparsemax loss over the last axis, with its gradient ``p - e_y`` written out.

    Differentiated through :func:`_sparsemax`, the backward ran the projection's
    JVP (a support mask, its mean and a select per element) on top of
    ``p``; the Fenchel-Young gradient needs ``p`` alone (8192x1000
    forward+backward: 187.6 MiB against optax's 156 MiB). An out-of-range label
    gives a NaN value and a NaN gradient row (the one-hot's NaN row).
    """
    return _sparsemax_fenchel_young_of(s, y, _sparsemax(s))


def _sparsemax_fenchel_young_of(s: Array, y: Array, p: Array) -> Array:
    """The multi-class sparsemax loss from ``p = sparsemax(s)`` (computed once for the value and the JVP)."""
    # Scores relative to the label's: exact at any magnitude (1e4 - 1e4 is 0, not a rounding of 1e4).
    relative = s - jnp.expand_dims(_numerics.take_class(s, y, -1), -1)
    return jnp.sum(p * relative, axis=-1) + 0.5 * (1.0 - jnp.sum(jnp.square(p), axis=-1))


@_sparsemax_fenchel_young.defjvp
def _sparsemax_fenchel_young_jvp(primals: tuple[Array, Array], tangents: tuple[Array, Array]) -> tuple[Array, Array]:
    (s, y), (ds, _) = primals, tangents
    # p keeps its own derivative (the projection's JVP), so second derivatives (the Hessian) stay right.
    p = _sparsemax(s)
    grad = p - _numerics.one_hot(y, s.shape[-1], -1, s.dtype)
    return _sparsemax_fenchel_young_of(s, y, p), jnp.sum(grad * ds, axis=-1)


def make_fenchel_young_loss(max_fun: Any) -> Any:
    r"""Builds the Fenchel-Young loss of a max function (optax ``make_fenchel_young_loss``).

    .. math::

        \ell(s, t) = \Omega^*(s) - \langle t, s \rangle

    where :math:`\Omega^*` is ``max_fun`` applied to each ``[C]`` row (the last
    axis): ``jax.nn.logsumexp`` gives the softmax cross-entropy with
    distribution targets, a hard ``max`` the perceptron. The returned loss
    keeps the jaxloss contract: ``fenchel_young_loss(scores, targets, *,
    reduction="mean", weights=None, where=None, **max_fun_kwargs)``, checked
    shapes and dtypes, per-example values ``[...]``, and masked rows (replaced
    by zeros before ``max_fun`` sees them) contributing exactly 0 to the value
    and every gradient. Keyword arguments other than the three reduction
    keywords are passed to ``max_fun``.

    Args:
      max_fun: a function ``[C] -> []`` (convex and, for gradients,
        differentiable), e.g. ``jax.nn.logsumexp``.

    Returns:
      The loss function ``(scores [..., C], targets [..., C]) -> [...]`` or a scalar.

    Raises:
      TypeError: ``max_fun`` is not callable. The returned loss raises
        ``ValueError`` for shapes that differ or an unknown ``reduction`` and
        ``TypeError`` for non-float ``scores``.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> fy = jaxloss.classification.make_fenchel_young_loss(jax.nn.logsumexp)
      >>> scores, targets = jnp.array([[1.0, 2.0, 3.0]]), jnp.array([[0.0, 0.0, 1.0]])
      >>> bool(jnp.allclose(fy(scores, targets),
      ...                   jaxloss.softmax_cross_entropy(scores, targets)))
      True

    References:
      Blondel, Martins and Niculae, "Learning with Fenchel-Young Losses", JMLR
      2020, https://arxiv.org/abs/1901.02324
    """
    if not callable(max_fun):
        _checks._fail(TypeError, _checks.message("make_fenchel_young_loss", "max_fun", "must be callable",
                                                 repr(max_fun)))

    def fenchel_young_loss(scores: Any, targets: Any, *, reduction: str = "mean", weights: Any = None,
                           where: Any = None, **kwargs: Any) -> Array:
        fn = "fenchel_young_loss"
        s, t, where, ax = _per_example_inputs(fn, where, "scores", scores, "targets", targets, -1,
                                              integer_labels=False)
        row_max = jnp.vectorize(lambda row: jnp.asarray(max_fun(row, **kwargs)), signature="(n)->()")
        values = row_max(s).astype(s.dtype) - jnp.sum(t * s, axis=ax)
        return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)

    fenchel_young_loss.__doc__ = (
        f"Fenchel-Young loss of ``{getattr(max_fun, '__name__', repr(max_fun))}`` "
        "(built by :func:`jaxloss.classification.make_fenchel_young_loss`).")
    return fenchel_young_loss


@_registry.builtin(tags=("integer_labels", "robust"))
def generalized_cross_entropy(logits: Any, labels: Any, *, q: Any = 0.5, axis: int = -1, reduction: str = "mean",
                              weights: Any = None, where: Any = None) -> Array:
    r"""Generalized cross-entropy, robust to label noise (Zhang & Sabuncu 2018; Keras).

    .. math::

        \ell = \frac{1 - p_y^{\,q}}{q}, \qquad p = \operatorname{softmax}(x)

    computed as :math:`-\operatorname{expm1}(q \log p_y) / q` from the log-softmax,
    so it is accurate for ``p_y`` near 0 and 1. ``q -> 0`` tends to the
    cross-entropy, ``q = 1`` is the mean absolute error ``1 - p_y``. Equals
    Keras' ``CategoricalGeneralizedCrossEntropy(q)`` on ``softmax(logits)``.

    Args:
      logits: ``[..., C]`` float logits (class axis ``axis``).
      labels: ``[...]`` integer class indices; out of range gives NaN.
      q: the exponent, in ``(0, 1)``.
      axis: the class axis.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: ``q`` outside ``(0, 1)``, labels shape is not logits' without
        ``axis``, bad ``axis``, unknown ``reduction``.
      TypeError: non-float ``logits`` or non-integer ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.log(jnp.array([[0.25, 0.75]]))
      >>> float(jaxloss.classification.generalized_cross_entropy(logits, jnp.array([0])))  # (1 - 0.5) / 0.5
      1.0

    References:
      Zhang and Sabuncu, "Generalized Cross Entropy Loss for Training Deep
      Neural Networks with Noisy Labels", NeurIPS 2018, https://arxiv.org/abs/1805.07836
    """
    fn = "generalized_cross_entropy"
    _checks.in_range(fn, "q", q, low=0.0, high=1.0, low_open=True, high_open=True)
    x, y, where, ax = _per_example_inputs(fn, where, "logits", logits, "labels", labels, axis, integer_labels=True)
    shift = jax.lax.stop_gradient(jnp.max(x, axis=ax, keepdims=True))
    shifted = x - shift
    log_p_y = (_numerics.take_class(x, y, ax) - jnp.squeeze(shift, ax)) - jnp.log(jnp.sum(jnp.exp(shifted), axis=ax))
    q = jnp.asarray(q, x.dtype)
    values = -jnp.expm1(q * log_p_y) / q
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


def _masked_pair_hinges(s_j: Array, s: Array, target: Array, is_target: Array) -> Array:
    """``sum_{j listed} sum_{i not a target} max(0, 1 - s_j + s_i)`` per example, the pairs selected: ``[...]``."""
    hinge = _relu(1.0 - s_j[..., :, None] + s[..., None, :])  # [..., j, i]
    pairs = target[..., :, None] & ~is_target[..., None, :]
    return jnp.sum(jnp.where(pairs, hinge, jnp.zeros_like(hinge)), axis=(-2, -1))


# Pairs (examples x slots x classes) from which the select-free value is used: below, its extra
# [N, C]-sized kernels cost more than the pass saves (128x10 forward 1.25x, 1024x32 0.79x).
_SELECT_FREE_PAIRS = 1 << 17


def _pair_stand_ins(s_j: Array, s: Array, target: Array, is_target: Array) -> tuple[Array, Array]:
    """``a_j = s_j - 1`` for a listed slot, ``b_i = s_i`` for a non-target class, finite stand-ins elsewhere.

    A slot that lists no target gets ``a_j = +big`` and a target class
    ``b_i = -big``, so that the pair ``(j, i)`` counts, in the value
    ``max(0, b_i - a_j)`` and in the derivative ``[b_i > a_j]``, exactly when
    it is a pair of :func:`_masked_pair_hinges` with a positive hinge. The
    stand-ins are finite, so an infinite score meets them without
    ``inf - inf``; they misread only non-target scores above a quarter of the
    largest float (8.5e37 in float32). Scores in no pair (a row without
    targets, or with every class a target) are left out as well.
    """
    big = jnp.asarray(jnp.finfo(s.dtype).max / 4, s.dtype)
    a = jnp.where(target & jnp.any(~is_target, axis=-1, keepdims=True), s_j - 1.0, big)
    b = jnp.where(is_target | ~jnp.any(target, axis=-1, keepdims=True), -big, s)
    return a, b


def _pair_counts(a: Array, b: Array) -> tuple[Array, Array]:
    """The pairs with a positive hinge ``b_i - a_j`` of each slot ``j`` and of each class ``i``: ``[..., J], [..., C]``.

    Select-free, so that XLA:CPU runs each count as one vectorised reduction
    over the ``[..., J, C]`` pairs without writing them out: the indicator
    is ``min(1, max(0, b_i - a_j) / smallest normal)`` (1 from a difference
    of one smallest normal float up; a subnormal difference, a tie in all but
    name, counts a fraction). Each count reads its own copies of ``a``, ``b``
    and the constants (:func:`jaxloss._numerics.distinct`): shared, XLA's CSE
    would merge the two ``[..., J, C]`` differences and the value's into one
    array written out and read back by the three (4096x64 value and
    gradient: 131 -> 20 MiB of temporaries).
    """
    dtype = a.dtype
    counts = []
    for copy, axis in ((1, -1), (2, -2)):
        a_c, b_c, zero, scale, one = _numerics.distinct(
            (a, b, jnp.zeros((), dtype), jnp.asarray(1.0 / jnp.finfo(dtype).smallest_normal, dtype),
             jnp.ones((), dtype)), copy)
        count = jnp.sum(jnp.minimum(jnp.maximum(b_c[..., None, :] - a_c[..., :, None], zero) * scale, one), axis=axis)
        # Kept out of the reduction's YNN fusion: the gradient's multiply by the cotangent fused in as its
        # epilogue makes XLA:CPU's reduction 2.2x slower (4096x64: 3.4 -> 7.5 ms per count).
        counts.append(_numerics.computed_apart(count))
    return counts[0], counts[1]


# Pairs from which the select-free value's derivative counts the pairs (:func:`_pair_counts`) instead of
# differentiating the selected form, whose two written-out [..., J, C] arrays cost little while they stay
# in cache (value and gradient, counted / selected: 1024x32 and 2048x32 1.06-1.07x, 4096x32 and 1024x64
# 0.31-0.33x, 4096x64 0.33x).
_COUNTED_DERIVATIVE_PAIRS = 1 << 22


@jax.custom_jvp
def _target_pair_hinges(s_j: Array, s: Array, target: Array, is_target: Array) -> Array:
    """:func:`_masked_pair_hinges`, its value and derivative computed without a select over the pairs.

    With the stand-ins of :func:`_pair_stand_ins` the ``[..., J, C]`` pass is
    subtract, maximum and sum, which XLA:CPU runs as one vectorised reduction
    (4096x64 forward: 20 -> 4 ms; the select had the pass written out
    first). A NaN score in a pair gives NaN, as the selected form does. The
    derivative counts each score's pairs with a positive hinge
    (:func:`_pair_counts`, the selected form's numbers): ``-count_j`` for a
    listed slot's score, ``+count_i`` for a non-target class's (4096x64
    value and gradient: 43 -> 14 ms; autodiff through the selected form
    wrote out two ``[..., J, C]`` arrays), from
    ``_COUNTED_DERIVATIVE_PAIRS`` pairs; below, the selected form's.
    """
    a, b = _pair_stand_ins(s_j, s, target, is_target)
    total = jnp.sum(jnp.maximum(b[..., None, :] - a[..., :, None], jnp.zeros((), s.dtype)), axis=(-2, -1))
    # XLA:CPU's vectorised maximum drops a NaN operand; a NaN score in a pair makes its row NaN, as selected.
    nan = jnp.any(jnp.isnan(a), axis=-1) | jnp.any(jnp.isnan(b), axis=-1)
    return jnp.where(nan, jnp.asarray(jnp.nan, s.dtype), total)


@_target_pair_hinges.defjvp
def _target_pair_hinges_jvp(primals: tuple[Array, Array, Array, Array],
                            tangents: tuple[Array, Array, Any, Any]) -> tuple[Array, Array]:
    s_j, s, target, is_target = primals
    if s_j.size * s.shape[-1] < _COUNTED_DERIVATIVE_PAIRS:
        return jax.jvp(lambda s_j, s: _masked_pair_hinges(s_j, s, target, is_target), (s_j, s), tangents[:2])
    ds_j, ds = tangents[:2]
    per_slot, per_class = _pair_counts(*_pair_stand_ins(s_j, s, target, is_target))
    tangent = jnp.sum(per_class * ds, axis=-1) - jnp.sum(per_slot * ds_j, axis=-1)
    return _target_pair_hinges(s_j, s, target, is_target), tangent


@_registry.builtin(tags=("multilabel", "integer_labels"))
def multilabel_margin_loss(scores: Any, labels: Any, *, reduction: str = "mean", weights: Any = None,
                           where: Any = None) -> Array:
    r"""Multi-label margin loss with target lists ended by ``-1`` (torch ``multilabel_margin_loss``).

    With :math:`J` the target classes (``labels`` up to the first ``-1``):

    .. math::

        \ell = \frac{1}{C} \sum_{j \in J} \sum_{i \notin J} \max\big(0, 1 - (s_j - s_i)\big)

    As torch: an entry of ``labels`` after the first ``-1`` is not read, an
    empty target list gives 0, and a class listed twice counts twice. A
    target outside ``[0, C)`` (before the first ``-1``) gives NaN. All pairs
    are compared at once: memory ``[..., C, C]`` (meant for tens to hundreds
    of classes, as torch's per-row loop).

    Args:
      scores: ``[..., C]`` float scores (class axis last).
      labels: ``[..., C]`` integer class indices padded with ``-1``, same shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, ``scores`` of rank 0, unknown ``reduction``.
      TypeError: non-float ``scores`` or non-integer ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> scores = jnp.array([[0.1, 0.2, 0.4, 0.8]])
      >>> labels = jnp.array([[3, 0, -1, 1]])
      >>> round(float(jaxloss.classification.multilabel_margin_loss(scores, labels)), 6)
      0.85

    References:
      torch ``MultiLabelMarginLoss``,
      https://pytorch.org/docs/stable/generated/torch.nn.MultiLabelMarginLoss.html
    """
    fn = "multilabel_margin_loss"
    s = _checks.floating(fn, "scores", scores)
    _checks.rank_at_least(fn, "scores", s, 1, "a class axis")
    labels = _checks.integer(fn, "labels", labels)
    _checks.same_shape(fn, ("scores", s), ("labels", labels))
    num_classes = s.shape[-1]
    example_shape = s.shape[:-1]
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), example_shape,
                                      "the per-example shape")
        # Masked rows: zero scores and an empty target list (value 0, every gradient 0).
        s = _numerics.mask_inputs(where[..., None], s)
        labels = jnp.where(where[..., None], labels, jnp.asarray(-1, labels.dtype))
    s = s.astype(_numerics.compute_dtype(s))
    # Before the first -1 (an unsigned dtype has no -1: 255 in uint8 is an out-of-range class, not padding).
    is_end = labels == -1 if jnp.issubdtype(labels.dtype, jnp.signedinteger) else jnp.zeros(labels.shape, bool)
    listed = jnp.cumprod((~is_end).astype(jnp.int32), axis=-1) > 0
    in_range = (labels >= 0) & (labels < num_classes)
    target = listed & in_range
    safe = jnp.where(target, labels, 0)
    classes = jnp.arange(num_classes, dtype=safe.dtype).reshape((1,) * safe.ndim + (num_classes,))
    is_target = jnp.any(target[..., :, None] & (safe[..., :, None] == classes), axis=-2)
    s_j = jnp.take_along_axis(s, safe, axis=-1)
    pair_hinges = _target_pair_hinges if s.size * num_classes >= _SELECT_FREE_PAIRS else _masked_pair_hinges
    values = pair_hinges(s_j, s, target, is_target) / num_classes
    values = jnp.where(jnp.any(listed & ~in_range, axis=-1), jnp.asarray(jnp.nan, s.dtype), values)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


# --------------------------------------------------------------- utilities
@_registry.builtin(tags=("language_model", "regularizer"))
def z_loss(logits: Any, *, axis: int = -1, reduction: str = "mean", weights: Any = None,
           where: Any = None) -> Array:
    r"""Auxiliary z-loss: the squared log-partition function of the logits (PaLM, ST-MoE).

    .. math::

        \ell = \Big(\log \sum_c e^{x_c}\Big)^2

    Keeps the softmax normaliser near 1 (``log Z`` near 0), which stabilises
    large-vocabulary training in low precision; added to the cross-entropy with
    a small weight (PaLM uses ``1e-4``). Computed with ``logsumexp`` (the
    maximum is subtracted before the exponential).

    Args:
      logits: ``[..., C]`` float logits (class axis ``axis``).
      axis: the class axis.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]`` (padding tokens).

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: ``logits`` of rank 0, a bad ``axis``, or an unknown ``reduction``.
      TypeError: non-float ``logits``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> round(float(jaxloss.z_loss(jnp.log(jnp.array([[0.5, 1.5]])))), 6)  # (log 2)**2
      0.480453

    References:
      Chowdhery et al., "PaLM: Scaling Language Modeling with Pathways", 2022,
      https://arxiv.org/abs/2204.02311; Zoph et al., "ST-MoE: Designing Stable and
      Transferable Sparse Expert Models", 2022, https://arxiv.org/abs/2202.08906
    """
    fn = "z_loss"
    x = _checks.floating(fn, "logits", logits)
    _checks.rank_at_least(fn, "logits", x, 1, "a class axis")
    ax = _checks.normalize_axis(fn, axis, x.ndim)
    example_shape = x.shape[:ax] + x.shape[ax + 1:]
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), example_shape,
                                      "the per-example shape")
    x = _numerics.mask_inputs(_numerics.expand_where(where, ax), x.astype(_numerics.compute_dtype(x)))
    values = jnp.square(jax.nn.logsumexp(x, axis=ax))
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


def smooth_labels(labels: Any, alpha: Any) -> Array:
    r"""Label smoothing of one-hot or distribution labels (optax ``smooth_labels``).

    .. math::

        \tilde y = (1 - \alpha) y + \alpha / C

    Args:
      labels: ``[..., C]`` one-hot or distribution labels.
      alpha: smoothing in ``[0, 1]``.

    Returns:
      ``[..., C]`` smoothed labels, float32 for 16-bit or integer input.

    Raises:
      ValueError: ``alpha`` outside ``[0, 1]`` or scalar ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> jaxloss.smooth_labels(jnp.array([1.0, 0.0, 0.0, 0.0]), 0.2)
      Array([0.85, 0.05, 0.05, 0.05], dtype=float32)

    References:
      Szegedy et al., "Rethinking the Inception Architecture for Computer
      Vision", CVPR 2016, https://arxiv.org/abs/1512.00567
    """
    _checks.in_range("smooth_labels", "alpha", alpha, low=0.0, high=1.0)
    labels = _checks.real("smooth_labels", "labels", labels)
    _checks.rank_at_least("smooth_labels", "labels", labels, 1, "a class axis")
    labels = labels.astype(_numerics.compute_dtype(labels))
    smoothed: Array = (1.0 - alpha) * labels + alpha / labels.shape[-1]
    return smoothed


def class_balanced_weights(samples_per_class: Any, *, beta: Any = 0.9999) -> Array:
    r"""Class weights from the effective number of samples, summing to ``C``.

    .. math::

        w_c \propto \frac{1 - \beta}{1 - \beta^{n_c}}, \qquad \sum_c w_c = C

    A class with no samples gets weight 0 (it cannot occur as a label).

    Args:
      samples_per_class: ``[C]`` counts ``n_c >= 0``.
      beta: in ``[0, 1)``; 0 gives uniform weights, ``beta -> 1`` inverse frequency.

    Returns:
      ``[C]`` float32 weights, for any ``class_weights=`` argument.

    Raises:
      ValueError: ``beta`` outside ``[0, 1)`` or ``samples_per_class`` not 1-D.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> jaxloss.class_balanced_weights(jnp.array([100, 10]), beta=0.0)
      Array([1., 1.], dtype=float32)
      >>> w = jaxloss.class_balanced_weights(jnp.array([100, 10]), beta=0.999)
      >>> bool(w[1] > w[0]), round(float(w.sum()), 5)
      (True, 2.0)

    References:
      Cui, Jia, Lin, Song and Belongie, "Class-Balanced Loss Based on Effective
      Number of Samples", CVPR 2019, https://arxiv.org/abs/1901.05555
    """
    fn = "class_balanced_weights"
    _checks.in_range(fn, "beta", beta, low=0.0, high=1.0, high_open=True)
    n = _checks.real(fn, "samples_per_class", samples_per_class)
    _checks.shape(fn, "samples_per_class", n, (None,), "[C]")
    n = n.astype(_numerics.compute_dtype(n))
    beta = jnp.asarray(beta, n.dtype)
    present = n > 0
    # (1 - beta) / (1 - beta**n) written with expm1/log1p: stable for beta -> 1.
    effective = -jnp.expm1(n * jnp.log1p(beta - 1.0))
    raw = jnp.where(present, _numerics.safe_div(1.0 - beta, effective, 1.0), 0.0)
    raw = jnp.where(beta == 0, present.astype(n.dtype), raw)
    return raw * (n.shape[0] / jnp.maximum(jnp.sum(raw), jnp.finfo(n.dtype).tiny))
