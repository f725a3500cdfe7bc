"""Numerically safe primitives shared by every loss.

The rules they implement: compute in at least float32, stay in log space,
``stop_gradient`` the maximum before an exponential, and use the double-where
pattern around every ``log``, ``sqrt``, division or power that can meet zero,
so that the branch ``jnp.where`` does not select cannot leak ``inf``/``nan``
into gradients.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Hashable, Iterator
from typing import Any, NamedTuple, overload

import jax
import jax.numpy as jnp
import numpy as np


def compute_dtype(*arrays: Any) -> np.dtype[Any]:
    """The dtype losses compute and return in: at least float32.

    float16/bfloat16 (and integer or bool) inputs give float32; float64 inputs
    (under ``jax_enable_x64``) keep float64.
    """
    # Decided by bit width, not by implicit promotion: under
    # ``jax.numpy_dtype_promotion("strict")`` float32 and bfloat16 have no
    # common type, but the policy (at least float32) is still well defined.
    dtype: np.dtype[Any] = np.dtype(np.float32)
    for x in arrays:
        if x is None:
            continue
        x_dtype: np.dtype[Any] = np.dtype(x.dtype) if hasattr(x, "dtype") else np.dtype(jnp.result_type(x))
        if jnp.issubdtype(x_dtype, jnp.floating) and x_dtype.itemsize > dtype.itemsize:
            dtype = x_dtype
    return dtype


def cast(dtype: jnp.dtype, *arrays: Any) -> tuple[Any, ...]:
    """Casts every non-``None`` array to ``dtype``."""
    return tuple(None if x is None else jnp.asarray(x).astype(dtype) for x in arrays)


def mask_inputs(where: jax.Array | None, x: jax.Array, safe_value: float = 0.0) -> jax.Array:
    """First half of the double-where: replaces masked inputs by a safe value.

    ``where`` must already be broadcastable to ``x`` (callers expand the class
    axis for per-example losses). Masked positions then contribute exactly 0 to
    every gradient, even when their inputs are ``inf`` or ``nan``.
    """
    if where is None:
        return x
    return jnp.where(where, x, jnp.asarray(safe_value, x.dtype))


def expand_where(where: jax.Array | None, axis: int) -> jax.Array | None:
    """Adds back the reduced ``axis`` to a per-example mask so it masks inputs."""
    if where is None:
        return None
    return jnp.expand_dims(where, axis)


def floor_keeping_nan(x: jax.Array, low: jax.Array | float) -> jax.Array:
    """``max(x, low)`` that keeps a NaN ``x`` also where XLA:CPU fuses it into a reduction.

    XLA:CPU's YNN reduction fusions evaluate ``maximum`` without NaN
    propagation; a select is never taken into them, so it keeps the NaN. The
    derivative is 0 at and below ``low`` (``jax.nn.relu``'s convention at 0).
    Used by the losses optax does not have (for those it has, the select's extra
    pass would cost the speed optax sets; see the conventions page).
    """
    low = jnp.asarray(low, x.dtype)
    return jnp.where(x <= low, low, x)


def is_zero(x: jax.Array) -> jax.Array:
    """``x == 0``, written without a constant: ``x - x == x`` (``inf - inf`` and NaN give NaN, which equals nothing).

    XLA:CPU (jax 0.10) emits a loop fusion that broadcasts a constant with its
    loop-fusion emitter, which for a narrow minor axis (``[128, 10]``)
    vectorises across rows with strided gathers; a fusion without broadcasts
    is one contiguous vectorised loop. A test and a select whose replacement
    is an input (e.g. ``where(is_zero(t), t, v)``) keep a guard out of the
    broadcast-emitting path. Exact for every float, signed zeros included.
    """
    return x - x == x


def reduction_input(values: jax.Array, *, max_last: int | None = 2, min_size: int = 4096) -> jax.Array:
    """``values`` about to be summed whole, computed apart from the sum where their last axis is narrow.

    XLA:CPU (jaxlib 0.10) fuses an elementwise computation into the YNN
    fusion of the reduction that consumes it, and there evaluates ``exp``,
    ``log1p`` and the like row by row of the minor axis: with 1 or 2 elements
    per row, 10-30x slower than the same loop on a flat array (binary
    cross-entropy on ``[2^20, 1]`` logits: 24 ms against 0.8 ms for
    ``[2^20]``). A select is never taken into those fusions, so one that
    changes nothing (``0`` for ``0``) leaves the computation to a vectorised
    loop fusion and the reduction reads its result (1.4 ms); its derivative
    is the identity. Rows of more than ``max_last`` elements (``None``: any
    row), 1-D arrays and arrays under ``min_size`` elements are returned as
    they are (there the fused form measured as fast or faster; the
    segmentation losses set their own bounds).
    """
    if values.ndim < 2 or values.size < min_size or (max_last is not None and values.shape[-1] > max_last):
        return values
    return computed_apart(values)


# ------------------------------------------------------------ CPU edge-case guards
# XLA:CPU hands a reduction over >= 4096 elements to a YNNPACK fusion that takes exp, log, add, subtract,
# multiply, max and min but no compare or select: a select on the [N, C] product is written to memory by a
# separate loop and read back (1.1-1.3x optax's time), and select-free guards built from max/min floors cost
# several operations per element (1.7x for the log-target KL) and, under jit, dropped a NaN in their first
# operand (a NaN log-probability gave +inf). So on CPU the value is the peer's unguarded formula, whose
# edge cases (0 * inf) all show up as a non-finite row, and only then is the guarded one computed.
YNN_MIN_ELEMENTS = 4096
PerExample = Callable[[jax.Array, jax.Array, int], jax.Array]  # (a, b, class axis) -> per-example values
# Elements of one row block of the rare guarded recomputation (64 KiB of float32 per [rows, C] array).
GUARD_BLOCK_ELEMENTS = 1 << 14


def guarded_in_blocks(guarded: PerExample, a: jax.Array, b: jax.Array, ax: int) -> jax.Array:
    """``guarded(a, b, ax)``, computed one block of rows at a time (the rare branch of the CPU guards).

    A ``lax.cond`` branch gets temporaries of its own: the guarded recomputation's
    ``[N, C]`` select doubled the compiled program's temporary memory, although it
    runs only for a batch with an edge case (softmax cross-entropy 8192x1000,
    forward+backward: 93.8 MiB against optax's 62.5 MiB). On CPU, XLA allocates
    the temporaries in one buffer per call, and glibc serves one over 32 MiB with
    a fresh ``mmap`` whose pages fault in on first touch every call (31 MiB of
    faults per call there, up to 1.6x optax's time). Blocks of rows keep the
    branch's temporaries at ``[rows, C]``; the last block is clamped to end at the
    last row (it recomputes a few rows and writes the same values). Inputs of
    different shapes, or too few rows, are computed whole.
    """
    ax = ax % a.ndim if a.ndim else 0
    if a.shape != b.shape or a.ndim == 0:
        return guarded(a, b, ax - a.ndim)
    classes = a.shape[ax]
    row_shape = a.shape[:ax] + a.shape[ax + 1:]
    rows = math.prod(row_shape)
    block = max(1, GUARD_BLOCK_ELEMENTS // max(classes, 1))
    if rows <= block:
        return guarded(a, b, ax - a.ndim)
    whole = jax.eval_shape(lambda a, b: guarded(a, b, ax - a.ndim), a, b)
    extra = whole.shape[len(row_shape):]
    if whole.shape[:len(row_shape)] != row_shape:
        return guarded(a, b, ax - a.ndim)
    a2 = jnp.moveaxis(a, ax, -1).reshape(rows, classes)
    b2 = jnp.moveaxis(b, ax, -1).reshape(rows, classes)

    def body(k: jax.Array, out: jax.Array) -> jax.Array:
        start = jnp.minimum(k * block, rows - block)
        values = guarded(jax.lax.dynamic_slice_in_dim(a2, start, block), jax.lax.dynamic_slice_in_dim(b2, start, block),
                         -1)
        return jax.lax.dynamic_update_slice_in_dim(out, values, start, 0)

    out: jax.Array = jax.lax.fori_loop(0, -(-rows // block), body, jnp.zeros((rows, *extra), whole.dtype))
    return out.reshape(whole.shape)


@functools.lru_cache(maxsize=None)
def unless_nonfinite(fast: PerExample, guarded: PerExample, ax: int) -> Any:
    """``(a, b) -> fast(a, b, ax)``, recomputed as ``guarded(a, b, ax)`` when any row of it is not finite.

    The test is the finiteness of the rows' sum (any non-finite row makes it
    NaN or infinite; a sum of finite rows that overflows only costs the
    recomputation, whose finite rows are the same): one ``[N]`` reduction,
    where a per-row test took four kernels. The optimization barrier keeps
    XLA from fusing that sum into the ``[N, C]`` pass, which it then ran twice.

    ``fast`` is an unguarded per-example formula that equals ``guarded`` on every
    finite row; ``guarded`` keeps the conventions (``0 log 0 = 0``, NaN
    propagation, ...) at the edge cases, where ``fast`` gives NaN or ``inf``.
    The ``lax.cond`` runs one branch, so a batch without edge cases costs
    ``fast`` alone and the rare other one both. Below ``YNN_MIN_ELEMENTS``
    ``guarded`` is taken directly (XLA's own loop fusion takes its select).
    Under ``vmap`` the batch axis joins the rows (``custom_vmap``), so the
    condition stays one scalar instead of a select that runs both branches.
    ``ax`` is negative, so it names the same axis with a batch axis in front.
    """

    @jax.custom_batching.custom_vmap
    def values(a: jax.Array, b: jax.Array) -> jax.Array:
        if max(a.size, b.size) < YNN_MIN_ELEMENTS:
            return guarded(a, b, ax)
        first = jax.lax.optimization_barrier(fast(a, b, ax))
        out: jax.Array = jax.lax.cond(~jnp.isfinite(jnp.sum(first)),
                                      lambda a, b, _: guarded_in_blocks(guarded, a, b, ax),
                                      lambda a, b, f: f, a, b, first)
        return out

    @values.def_vmap
    def _values_vmap(axis_size: int, in_batched: list[bool], a: jax.Array, b: jax.Array) -> tuple[jax.Array, bool]:
        a, b = (x if batched else jnp.broadcast_to(x, (axis_size, *x.shape)) for x, batched in zip((a, b), in_batched))
        return values(a, b), True

    return values


def on_cpu_unless_nonfinite(fast: PerExample, guarded: PerExample, a: jax.Array, b: jax.Array, ax: int,
                             mode: str = "auto") -> jax.Array:
    """:func:`unless_nonfinite` on CPU; ``guarded`` (whose selects fuse) on other backends.

    ``mode="fast"``: ``fast`` alone on CPU (the caller tests the reduced value,
    :func:`jaxloss.classification._reduce_unless_nonfinite`); ``mode="guarded"``: ``guarded`` everywhere.
    """
    ax = ax - a.ndim if ax >= 0 else ax
    if mode == "guarded":
        return guarded(a, b, ax)
    cpu = unless_nonfinite(fast, guarded, ax) if mode == "auto" else (lambda a, b: fast(a, b, ax))
    out: jax.Array = jax.lax.platform_dependent(a, b, cpu=cpu, default=lambda a, b: guarded(a, b, ax))
    return out


def fast_unless_nonfinite(fast: PerExample, guarded: PerExample) -> Callable[[jax.Array, jax.Array, int], jax.Array]:
    """``(a, b, ax) -> per-example values``: :func:`on_cpu_unless_nonfinite`, differentiated as ``guarded``.

    For losses whose hyper-parameters are closed over (concrete numbers, so
    the functions can be cached per value): the forward is the fused
    unguarded pass on CPU; under differentiation the value and the derivative
    are the guarded form's (one linearisation, as without the fast pass).
    """
    @functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
    def negative_axis_rows(a: jax.Array, b: jax.Array, ax: int) -> jax.Array:
        return on_cpu_unless_nonfinite(fast, guarded, a, b, ax)

    @negative_axis_rows.defjvp
    def _rows_jvp(ax: int, primals: tuple[jax.Array, jax.Array],
                  tangents: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        out: tuple[jax.Array, jax.Array] = jax.jvp(lambda a, b: guarded(a, b, ax), primals, tangents)
        return out

    def rows(a: jax.Array, b: jax.Array, ax: int) -> jax.Array:
        return negative_axis_rows(a, b, ax - a.ndim if ax >= 0 else ax)

    return rows


def batch_wide(reduce: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
    """``reduce`` (to a scalar), over the batch axis too under ``vmap``: a ``lax.cond`` predicate that stays one scalar.

    A batched predicate would turn the ``lax.cond`` into a select that runs both branches.
    """
    @jax.custom_batching.custom_vmap
    def whole(x: jax.Array) -> jax.Array:
        return reduce(x)

    @whole.def_vmap
    def _whole_vmap(axis_size: int, in_batched: list[bool], x: jax.Array) -> tuple[jax.Array, bool]:
        del axis_size, in_batched
        return reduce(x), False

    return whole


all_finite = batch_wide(lambda x: jnp.all(jnp.isfinite(x)))  # the CPU guards' "no edge case in the batch"
any_true = batch_wide(jnp.any)  # the simplex threshold's "some row still changing"


def distinct(value: Any, copy: int) -> Any:
    """``value`` (an array or a tuple of arrays) behind ``copy`` optimization barriers: equal, kept apart by XLA.

    XLA's CSE merges equal expressions, and on XLA:CPU an ``[N, ...]``
    broadcast or difference shared by two reduction fusions is written out
    and read back by both instead of being recomputed inside each (see
    ``embedding._shifted_distance``, ``classification._target_pair_hinges``).
    Each use that must stay in its own fusion takes a different ``copy``.
    """
    for _ in range(copy):
        value = jax.lax.optimization_barrier(value)
    return value


@jax.custom_jvp
def computed_apart(x: jax.Array) -> jax.Array:
    """``x``, computed by its own loop fusion rather than inside the YNN fusion of a reduction that reads it.

    A select that changes nothing (``0`` for ``0``; ``-0.0`` becomes ``0.0``,
    NaN stays NaN), which XLA:CPU never takes into those fusions; its
    derivative is the identity. See :func:`reduction_input`.
    """
    return jnp.where(x == 0, jnp.zeros_like(x), x)


@computed_apart.defjvp
def _computed_apart_jvp(primals: tuple[jax.Array], tangents: tuple[jax.Array]) -> tuple[jax.Array, jax.Array]:
    return computed_apart(primals[0]), tangents[0]


# From this many elements, a loss whose value and derivative would share an intermediate computes them apart
# (a written derivative rule, :func:`elementwise`, or a value spelled for XLA:CPU's fused sums): the value then
# stays inside its YNN reduction and the gradient is one pass over the inputs. Below it, writing nothing out
# saves nothing measurable and the split form measured the same or up to 1.06x (32x128 value and gradient).
SPLIT_DERIVATIVE_MIN_SIZE = 1 << 14


def elementwise(value: Callable[..., jax.Array],
                partials: Callable[..., tuple[jax.Array | None, ...]]) -> Callable[..., jax.Array]:
    """An elementwise loss ``value(*args)`` whose derivative is ``partials(*args)``, recomputed from the inputs.

    ``partials`` returns one array per argument, ``d value / d arg``
    (``None`` for an argument with no derivative). The derivative rule reads
    the arguments again behind an optimization barrier: the same values, but
    not the same HLO, so XLA's CSE cannot share the forward's intermediates
    (the residual ``p - t``, its sign) with the backward, and XLA:CPU does not
    write them out between the forward's reduction and the gradient. Each
    pass then reads the inputs once (huber 32768x128, value and gradient: 5
    kernels and two ``[N, D]`` temporaries -> 3 kernels and none, about 0.3x
    the time). Arguments that are not differentiated add nothing (symbolic
    zeros), so ``0 * inf`` cannot appear.
    """
    fn = jax.custom_jvp(value)

    def jvp(primals: tuple[jax.Array, ...], tangents: tuple[Any, ...]) -> tuple[jax.Array, jax.Array]:
        out = fn(*primals)
        differentiated = [i for i, d in enumerate(tangents) if not isinstance(d, jax.custom_derivatives.SymbolicZero)]
        slopes = partials(*jax.lax.optimization_barrier(primals))
        terms = [slopes[i] * tangents[i] for i in differentiated if slopes[i] is not None]
        return out, sum(terms[1:], terms[0]) if terms else jnp.zeros_like(out)

    fn.defjvp(jvp, symbolic_zeros=True)
    return fn


def _bce_with_logits_value(x: jax.Array, y: jax.Array) -> jax.Array:
    """``y softplus(-x) + (1 - y) softplus(x)`` as ``x (1/2 - y) + |x|/2 + log1p(e^-|x|)``.

    The stable form ``max(x, 0) - x y + log1p(e^-|x|)`` (accurate where the
    value is tiny), with ``max(x, 0) - x y`` as ``x (1/2 - y) + |x|/2`` (exact
    for 0/1 labels): no array of ones for ``1 - y`` and no maximum with 0 that
    XLA:CPU would share between fusions and write out. Derivatives written
    out (:func:`elementwise`), ``sigmoid(x) - y`` and ``-x``: through ``|x|``
    the backward wrote out a broadcast of its own. Shared, as
    ``bce_with_logits``, by the binary cross-entropy, the sigmoid focal loss,
    the multi-label soft margin loss, the Bernoulli likelihood and the sigmoid
    parts of the Dice-CE and Dice-focal losses.
    """
    magnitude = jnp.abs(x)
    return x * (0.5 - y) + 0.5 * magnitude + jnp.log1p(jnp.exp(-magnitude))


def _bce_with_logits_partials(x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    return jax.nn.sigmoid(x) - y, -x


bce_with_logits = elementwise(_bce_with_logits_value, _bce_with_logits_partials)


def softplus_both(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``softplus(x)`` and ``softplus(-x)``: ``max(+-x, 0) + log1p(e^-|x|)``, the maximum as ``(|x| +- x)/2``."""
    magnitude = jnp.abs(x)
    tail = jnp.log1p(jnp.exp(-magnitude))
    return 0.5 * (magnitude + x) + tail, 0.5 * (magnitude - x) + tail


def _weighted_bce_value(x: jax.Array, y: jax.Array, pos_weight: jax.Array) -> jax.Array:
    # (1 - y) softplus(x) as softplus(x) - y softplus(x): no array of ones, and exactly 0 at y = 1.
    positive, negative = softplus_both(x)
    return pos_weight * y * negative + (positive - y * positive)


def _weighted_bce_partials(x: jax.Array, y: jax.Array, pos_weight: jax.Array
                           ) -> tuple[jax.Array, jax.Array, jax.Array]:
    positive, negative = softplus_both(x)
    up = jax.nn.sigmoid(x)
    slope = (up - y * up) - pos_weight * y * jax.nn.sigmoid(-x)
    return slope, pos_weight * negative - positive, y * negative


_weighted_bce = elementwise(_weighted_bce_value, _weighted_bce_partials)


def weighted_bce_with_logits(x: jax.Array, y: jax.Array, pos_weight: jax.Array) -> jax.Array:
    """``pos_weight y softplus(-x) + (1 - y) softplus(x)`` (torch ``BCEWithLogitsLoss(pos_weight)``).

    Each softplus in the stable form, derivatives written (:func:`elementwise`);
    ``pos_weight`` broadcasts to the shape of ``x``.
    """
    return _weighted_bce(x, y, jnp.broadcast_to(jnp.asarray(pos_weight, x.dtype), x.shape))


def safe_div(numerator: jax.Array, denominator: jax.Array, fill: float = 0.0) -> jax.Array:
    """``numerator / denominator``, and ``fill`` with zero gradient where it is 0.

    A NaN denominator is not 0: it propagates (a diverged model shows).
    """
    nonzero = denominator != 0
    safe = jnp.where(nonzero, denominator, jnp.ones_like(denominator))
    return jnp.where(nonzero, numerator / safe, jnp.asarray(fill, numerator.dtype))


def safe_sqrt(x: jax.Array) -> jax.Array:
    """``sqrt(x)`` for ``x >= 0`` with gradient 0 (not ``inf``) at 0.

    Only ``x <= 0`` takes the safe branch; NaN propagates (value and gradient).
    """
    positive = ~(x <= 0)
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, jnp.ones_like(x))), jnp.zeros_like(x))


def safe_log(x: jax.Array) -> jax.Array:
    """``log(x)`` for ``x > 0``; 0 with zero gradient where ``x <= 0``.

    Only for terms that are multiplied by a factor that is 0 where ``x`` is 0
    (``x log x``); use ``xlogy`` semantics. NaN propagates: only ``x <= 0``
    takes the safe branch.
    """
    positive = ~(x <= 0)
    return jnp.where(positive, jnp.log(jnp.where(positive, x, jnp.ones_like(x))), jnp.zeros_like(x))


def xlogx(x: jax.Array) -> jax.Array:
    """``x * log(x)`` with the limit 0 at ``x = 0`` and finite gradient there."""
    return x * safe_log(x)


_INTEGER_POW_MAX = 8  # whole exponents up to this one are multiplied out (whole_exponent)


def whole_exponent(exponent: Any) -> int | None:
    """``exponent`` as an ``int`` when it is a Python number with a whole value in ``[0, 8]``, else ``None``.

    Such powers are taken by repeated multiplication (``lax.integer_pow``)
    instead of XLA's ``pow`` (an ``exp`` and a ``log`` per element; the focal
    losses' default ``gamma = 2``).
    """
    if isinstance(exponent, (int, float)) and float(exponent).is_integer() and 0 <= exponent <= _INTEGER_POW_MAX:
        return int(exponent)
    return None


def safe_pow(base: jax.Array, exponent: Any) -> jax.Array:
    """``base ** exponent`` for ``base >= 0`` with finite gradients at ``base = 0``.

    At ``base = 0`` the value is ``0 ** exponent`` (1 for exponent 0, else 0)
    and the gradient w.r.t. ``base`` is taken as 0, the convention of the focal
    losses for ``gamma < 1``.
    """
    positive = ~(base <= 0)  # NaN propagates
    whole = whole_exponent(exponent)
    if whole is not None and whole >= 1:
        # Multiplied out (sigmoid focal 32768x128 value and gradient 19.9 -> 18.7 ms).
        return jax.lax.integer_pow(jnp.where(positive, base, jnp.zeros_like(base)), whole)
    exponent = jnp.asarray(exponent, base.dtype)
    safe_base = jnp.where(positive, base, jnp.ones_like(base))
    at_zero = jnp.where(exponent == 0, jnp.ones_like(base), jnp.zeros_like(base))
    return jnp.where(positive, safe_base ** exponent, at_zero)


def log1mexp(x: jax.Array) -> jax.Array:
    """``log(1 - exp(x))`` for ``x <= 0``, accurate near 0 and for large ``-x``."""
    # Maechler (2012): use log(-expm1(x)) for x > -log 2, log1p(-exp(x)) below.
    x = jnp.minimum(x, -jnp.finfo(x.dtype).tiny)
    near = x > -0.6931471805599453
    # Double-where: each branch sees only inputs of its own range, so the branch
    # not taken (log1p(-exp(0)) = -inf) cannot put NaN into the gradient.
    x_near = jnp.where(near, x, -1.0)
    x_far = jnp.where(near, -1.0, x)
    return jnp.where(near, jnp.log(-jnp.expm1(x_near)), jnp.log1p(-jnp.exp(x_far)))


def ignore_mask(where: jax.Array | None, labels: jax.Array, ignore_index: int | None) -> jax.Array | None:
    """Folds ``labels == ignore_index`` into the mask ``where`` (``None``: no mask yet)."""
    if ignore_index is None:
        return where
    keep = labels != ignore_index
    return keep if where is None else where & keep


def split_labels(labels: jax.Array, num_classes: int) -> tuple[jax.Array, jax.Array]:
    """(``labels`` with class 0 in place of out-of-range ones, as int32; whether each is in ``[0, C)``).

    Labels outside ``[0, C)`` never wrap or clamp: the callers turn them into
    NaN (docs/conventions.md, Integer labels); the safe labels only keep the
    gathers in bounds.
    """
    valid = (labels >= 0) & (labels < num_classes)
    return jnp.where(valid, labels, 0).astype(jnp.int32), valid


def take_class(values: jax.Array, labels: jax.Array, axis: int) -> jax.Array:
    """``values[..., labels, ...]`` along ``axis``; NaN where a label is out of range.

    ``labels`` has the shape of ``values`` without ``axis``.
    """
    safe_labels, valid = split_labels(labels, values.shape[axis])
    taken = jnp.take_along_axis(values, jnp.expand_dims(safe_labels, axis), axis=axis)
    taken = jnp.squeeze(taken, axis)
    return jnp.where(valid, taken, jnp.asarray(jnp.nan, values.dtype))


def one_hot(labels: jax.Array, num_classes: int, axis: int, dtype: jnp.dtype) -> jax.Array:
    """One-hot along ``axis``; an out-of-range label gives a row of NaN."""
    safe_labels, valid = split_labels(labels, num_classes)
    encoded = jax.nn.one_hot(safe_labels, num_classes, dtype=dtype, axis=axis)
    return jnp.where(jnp.expand_dims(valid, axis), encoded, jnp.asarray(jnp.nan, dtype))


def class_weight_of(class_weights: jax.Array, labels: jax.Array) -> jax.Array:
    """``class_weights[labels]`` for a ``[C]`` vector; NaN where a label is out of range."""
    safe_labels, valid = split_labels(labels, class_weights.shape[0])
    taken = jnp.take(class_weights, safe_labels, axis=0)
    return jnp.where(valid, taken, jnp.asarray(jnp.nan, class_weights.dtype))


# ------------------------------------------------- vocabulary chunks (fused losses)
# With ``chunk_size=None`` a fused large-vocabulary loss (linear cross-entropy,
# linear distillation) holds about 2^21 logits per chunk (8 MiB in float32)
# whatever the number of tokens: 256 columns for 8192 tokens.
VOCAB_CHUNK_ELEMENTS = 2 ** 21
MIN_VOCAB_CHUNK, MAX_VOCAB_CHUNK = 128, 4096


def vocab_chunk(num_tokens: int) -> int:
    """The largest power of two <= 2^21 / N, clipped to [128, 4096]."""
    target = max(1, VOCAB_CHUNK_ELEMENTS // max(num_tokens, 1))
    return int(min(MAX_VOCAB_CHUNK, max(MIN_VOCAB_CHUNK, 1 << (target.bit_length() - 1))))


# XLA:CPU computes a bfloat16 product in float32 and hoists the conversion of a
# loop-invariant bfloat16 weight out of the loop: the whole weight would be
# converted to float32 once, however the chunk is sliced or cast. The fused loops
# therefore slice a bfloat16 weight as its uint16 bits, integer work no pass
# rewrites, and widen each chunk exactly (a bfloat16 is the top half of a float32).
def to_bits(x: jax.Array) -> jax.Array:
    """A bfloat16 array as its uint16 bits; any other array unchanged."""
    return jax.lax.bitcast_convert_type(x, jnp.uint16) if x.dtype == jnp.bfloat16 else x


def from_bits(x: jax.Array) -> jax.Array:
    """A sliced chunk as a float array: uint16 bits of bfloat16 widen exactly to float32."""
    if x.dtype != jnp.uint16:
        return x
    return jax.lax.bitcast_convert_type(x.astype(jnp.uint32) << 16, jnp.float32)


# The columns of bfloat16 weights are walked in groups of about this many bytes.
COLUMN_GROUP_BYTES = 64 * 2 ** 20


class ColumnGroup(NamedTuple):
    """Columns ``[first, end)`` of the vocabulary that one loop walks, ``chunk`` columns at a time.

    The loop reads ``windows``, each weight's columns ``[offset, end)`` (``uint16``
    bits for bfloat16). Chunk ``i`` starts at ``first + i * chunk``,
    except that a last partial chunk is moved back to end at ``end`` so that no
    column is ever padded: its first columns were the previous chunk's, and
    ``partial`` says the loop must not count them twice.
    """
    first: int
    end: int
    offset: int
    num_chunks: int
    partial: bool
    windows: tuple[jax.Array, ...]


def column_groups(weights: tuple[jax.Array, ...], chunk: int, after: Callable[[], jax.Array],
                  group_bytes: int = COLUMN_GROUP_BYTES) -> Iterator[ColumnGroup]:
    """The groups of columns of ``[D_k, V]`` weights that one loop each walks (``chunk <= V``).

    XLA:CPU computes a bfloat16 product in float32, and it converts a whole
    bfloat16 array that a loop slices to float32 before the loop: a second,
    twice-as-large copy of the weight. The loops therefore slice the weights'
    ``uint16`` bits, and bit-cast one group of at most ``group_bytes`` (all
    weights' windows together) at a time instead of the whole weights. Weights
    none of which is bfloat16 are sliced in place, as one group.

    ``after()`` gives a carry of the loop over the previous group: a group's
    offset depends on it (always by 0), so XLA takes each group's copies only
    when its loop starts and at most one group's are alive at a time.
    """
    vocab = weights[0].shape[1]
    per = max(vocab, 1)
    if any(w.dtype == jnp.bfloat16 for w in weights):
        column_bytes = sum(max(w.shape[0], 1) * w.dtype.itemsize for w in weights)
        per = max(1, group_bytes // (column_bytes * chunk)) * chunk
    for first in range(0, vocab, per):
        end = min(first + per, vocab)
        width = max(end - first, chunk)
        windows = tuple(to_bits(w) for w in weights)
        if width != vocab:
            later = (jnp.sum(after().reshape(-1)[:1]) > jnp.inf).astype(jnp.int32)  # always 0
            windows = tuple(jax.lax.dynamic_slice_in_dim(w, end - width + later, width, axis=1) for w in windows)
        yield ColumnGroup(first, end, end - width, -(-(end - first) // chunk), (end - first) % chunk != 0, windows)


def group_chunk(i: jax.Array, chunk: int, group: ColumnGroup
                ) -> tuple[jax.Array, tuple[jax.Array, ...], jax.Array | None]:
    """Chunk ``i`` of a group: its first column, each weight's columns, and which of them are new.

    ``new`` is ``None`` unless the group ends with a partial chunk; then the
    last chunk's columns before ``first + i * chunk`` were counted already.
    """
    start = i * chunk + group.first
    begin = jnp.minimum(start, group.end - chunk)
    columns = tuple(from_bits(jax.lax.dynamic_slice_in_dim(w, begin - group.offset, chunk, axis=1))
                    for w in group.windows)
    new = None
    if group.partial:
        new = begin + jnp.arange(chunk, dtype=jnp.int32) >= start
    return begin, columns, new


# ------------------------------------------------------ shard_map varying axes
def varying_axes(x: jax.Array) -> frozenset[Hashable]:
    """The manual mesh axes ``x`` varies over inside ``shard_map`` (empty elsewhere)."""
    aval = jax.typeof(x)
    manual = getattr(aval, "manual_axis_type", None)
    if manual is not None:
        return frozenset(manual.varying)
    return frozenset(getattr(aval, "vma", ()))


@overload
def vary(x: jax.Array, axes: frozenset[Hashable]) -> jax.Array: ...
@overload
def vary(x: None, axes: frozenset[Hashable]) -> None: ...
def vary(x: jax.Array | None, axes: frozenset[Hashable]) -> jax.Array | None:
    """Marks ``x`` as varying over ``axes`` (``shard_map``'s ``pcast(to="varying")``).

    Inside ``shard_map`` a loop carry must vary over the same mesh axes as the
    body's result, and a ``custom_vjp`` cotangent over the same axes as its
    primal. Casting an input that is replicated over an axis (``hidden`` over
    the vocabulary axis, a weight over the data axis) to varying is what makes
    its gradient right: the cast's transpose sums the per-device cotangents
    over that axis.
    """
    if x is None:
        return None
    missing = tuple(sorted(axes - varying_axes(x), key=str))
    return jax.lax.pcast(x, missing, to="varying") if missing else x
