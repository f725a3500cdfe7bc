"""Knowledge-distillation losses over a class axis.

``student_logits`` and ``teacher_logits`` are ``[..., V]`` logits of one shape
(classes, or a vocabulary at every position of ``[B, T, V]`` sequences); the
losses are per example (per position), ``[...]``, and ``where`` masks positions
(padding, prompt tokens). Everything stays in log space (``log_softmax``,
``logaddexp``), so logits of magnitude ``1e4`` give finite values and
gradients. Gradients flow into both logits; wrap the teacher's in
``jax.lax.stop_gradient`` (or compute them outside the differentiated function)
for a frozen teacher.

For language models, :func:`linear_knowledge_distillation_loss` and
:func:`linear_generalized_jsd_loss` take the student's and the teacher's
final hidden states and output projections instead of logits, and walk the
vocabulary in chunks: the same values and gradients without ever
materialising the ``[N, V]`` logits (about 0.01-0.02x the memory of the
materialised path at N=8192, D=512, V=32768), optionally with the vocabulary
split over devices (``axis_name``). bfloat16 weights are never copied whole:
their columns are read one group of about 64 MiB (both weights) at a time
(``_numerics.column_groups``, shared with ``jaxloss.large_vocab``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _checks, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array


# ----------------------------------------------------------------- helpers
def _logit_pair(fn: str, student_logits: Any, teacher_logits: Any, axis: int, where: Any,
                temperature: Any, log_softmax: bool = True) -> tuple[Array, Array, Any, int, Array]:
    """Validates the two logit arrays and ``temperature``; returns their temperature-scaled log-softmax.

    Masked positions read logits 0 (the first half of the double-where).
    ``log_softmax=False`` returns the logits themselves, unscaled (for
    :func:`_kl_logits`). The last element is ``1 / temperature`` in the
    compute dtype.
    """
    _checks.in_range(fn, "temperature", temperature, low=0.0, low_open=True)
    s = _checks.floating(fn, "student_logits", student_logits)
    t = _checks.floating(fn, "teacher_logits", teacher_logits)
    _checks.rank_at_least(fn, "student_logits", s, 1, "a class axis")
    _checks.same_shape(fn, ("student_logits", s), ("teacher_logits", t))
    ax = _checks.normalize_axis(fn, axis, s.ndim)
    dtype = _numerics.compute_dtype(s, t)
    example_shape = s.shape[:ax] + s.shape[ax + 1:]
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), example_shape,
                                      "the per-example shape")
    in_mask = _numerics.expand_where(where, ax)
    s = _numerics.mask_inputs(in_mask, s.astype(dtype))
    t = _numerics.mask_inputs(in_mask, t.astype(dtype))
    inv_t = 1.0 / jnp.asarray(temperature).astype(dtype)
    if not log_softmax:
        return s, t, where, ax, inv_t
    # log_softmax shifts by the stop-gradient maximum: exact for logits of magnitude 1e4.
    return jax.nn.log_softmax(s * inv_t, axis=ax), jax.nn.log_softmax(t * inv_t, axis=ax), where, ax, inv_t


def _jsd_mode(beta: Any) -> str:
    """Which divergence a generalized JSD computes (static): the ends are plain KLs.

    ``beta = 0`` is KL(teacher || student), ``beta = 1`` KL(student || teacher),
    a concrete ``beta`` in between the skewed JSD, and a traced ``beta`` all
    three, selected at run time.
    """
    if not _checks.is_concrete(beta):
        return "traced_beta"
    if float(beta) == 0.0:
        return "forward_kl"
    if float(beta) == 1.0:
        return "reverse_kl"
    return "jsd"


def _kl(log_p: Array, log_q: Array, axis: int) -> Array:
    """``KL(p || q) = sum p (log p - log q)`` from log-probabilities; ``0 log 0 = 0``.

    A class with ``p = 0`` (``log p = -inf``, e.g. a ``-inf`` logit) contributes
    exactly 0 to the value and the gradient (double-where); ``p > 0`` with
    ``q = 0`` stays ``+inf`` (the divergence is infinite).
    """
    zero = log_p == -jnp.inf
    safe_p = jnp.where(zero, jnp.zeros_like(log_p), log_p)
    safe_q = jnp.where(zero, jnp.zeros_like(log_q), log_q)
    terms = jnp.where(zero, jnp.zeros_like(log_p), jnp.exp(safe_p) * (safe_p - safe_q))
    return jnp.sum(terms, axis=axis)


def _kl_logits(p: Array, q: Array, axis: int, temperature: Any) -> Array:
    """``KL(softmax(p / T) || softmax(q / T))`` from logits, as ``lse(q') - lse(p') + sum softmax(p') (p' - q')``.

    The same divergence as :func:`_kl` of the two log-softmaxes (``p' = p / T``
    with ``inv_t = 1 / T > 0``), without writing them out: two log-sum-exps and
    one pass over both logits. Each pass scales the logits itself (the
    maximum of ``p / T`` is ``max(p) / T``), so no scaled copy is written
    either (1024 x 32000, T = 2: three ``[N, C]`` temporaries fewer; forward
    0.71x, value and gradient 0.70x the time of the log-softmax form; a
    written derivative measured 0.97x of that, within noise, and was not
    kept). A class with ``p = -inf`` adds exactly 0 to the value and the
    gradient (double-where); ``p`` finite with ``q = -inf`` gives ``+inf``.
    With a concrete ``temperature``, the CPU takes :func:`_kl_logits_rows`.
    """
    if _checks.is_concrete(temperature):
        return _kl_logits_rows(float(np.asarray(temperature)))(p, q, axis)
    return _kl_logits_guarded(p, q, axis, 1.0 / jnp.asarray(temperature).astype(p.dtype))


def _logits_lse(x: Array, scale: Array, axis: int) -> Array:
    """``logsumexp(x * scale)`` along ``axis`` (keepdims), the maximum of ``x`` subtracted first."""
    top = jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    top = jnp.where(jnp.isfinite(top), top, jnp.zeros_like(top))  # an all -inf row: lse -inf, no NaN
    return jnp.log(jnp.sum(jnp.exp((x - top) * scale), axis=axis, keepdims=True)) + top * scale


def _kl_logits_guarded(p: Array, q: Array, axis: int, inv_t: Array) -> Array:
    """:func:`_kl_logits` with the double-where for ``p = -inf``.

    Each sum reads its own copy of ``1/T`` (:func:`jaxloss._numerics.distinct`):
    a constant broadcast shared by two fusions is written out as an ``[N, C]``
    array (1024x8192 forward: 32 MiB of temporaries).
    """
    lse_p, lse_q = _logits_lse(p, inv_t, axis), _logits_lse(q, _numerics.distinct(inv_t, 1), axis)
    zero = p == -jnp.inf
    safe_p = jnp.where(zero, jnp.zeros_like(p), p)
    safe_q = jnp.where(zero, jnp.zeros_like(q), q)
    inv_t = _numerics.distinct(inv_t, 2)
    terms = jnp.where(zero, jnp.zeros_like(p), jnp.exp(safe_p * inv_t - lse_p) * ((safe_p - safe_q) * inv_t))
    return jnp.sum(terms, axis=axis) + jnp.squeeze(lse_q - lse_p, axis)


@functools.lru_cache(maxsize=None)
def _kl_logits_rows(temperature: float) -> Callable[[Array, Array, int], Array]:
    """:func:`_kl_logits` for one concrete temperature: on CPU the unguarded sums, one fused pass each.

    XLA:CPU's YNN reductions take no select, so the double-where's terms were
    written out as an ``[N, C]`` array first (1024x8192 forward 24-28 ms).
    The unguarded terms (``exp(p' - lse_p) (p' - q')``, each use of ``1/T``
    its own copy) need no temporaries (12-13 ms); a batch with a non-finite row
    (a ``-inf`` logit, NaN) is recomputed guarded
    (:func:`jaxloss._numerics.on_cpu_unless_nonfinite`). Under differentiation
    the value and the derivative are the guarded form's (value and gradient
    as before: 1024x8192 1.08x and 8192x1000 0.95x when only the derivative
    was).
    """
    def inv_t(dtype: Any, copy: int) -> Array:
        out: Array = _numerics.distinct(1.0 / jnp.asarray(temperature, dtype), copy)
        return out

    def fast(p: Array, q: Array, axis: int) -> Array:
        lse_p, lse_q = _logits_lse(p, inv_t(p.dtype, 0), axis), _logits_lse(q, inv_t(p.dtype, 1), axis)
        scale = inv_t(p.dtype, 2)
        terms = jnp.exp(p * scale - lse_p) * ((p - q) * scale)
        return jnp.sum(terms, axis=axis) + jnp.squeeze(lse_q - lse_p, axis)

    def guarded(p: Array, q: Array, axis: int) -> Array:
        return _kl_logits_guarded(p, q, axis, 1.0 / jnp.asarray(temperature, p.dtype))

    return _numerics.fast_unless_nonfinite(fast, guarded)


def _skewed_jsd(log_s: Array, log_t: Array, beta: Array, axis: int) -> Array:
    """``beta KL(t || m) + (1 - beta) KL(s || m)`` with ``m = (1 - beta) s + beta t``, for ``0 < beta < 1``."""
    # log m = log((1 - beta) e^{log s} + beta e^{log t}) = logaddexp(log s + log1p(-beta), log t + log beta)
    log_m = jnp.logaddexp(log_s + jnp.log1p(-beta), log_t + jnp.log(beta))
    return beta * _kl(log_t, log_m, axis) + (1.0 - beta) * _kl(log_s, log_m, axis)


@functools.lru_cache(maxsize=None)
def _skewed_jsd_rows(temperature: float, beta: float) -> Callable[[Array, Array, int], Array]:
    """:func:`_skewed_jsd` of the logits' temperature-scaled log-softmaxes, for one concrete ``(T, beta)``.

    On CPU the unguarded sum in one fused pass after the two log-sum-exps:
    ``log m`` as ``max(a, b) + log1p(exp(-|a - b|))`` (``jnp.logaddexp``'s
    NaN select would leave XLA:CPU's YNN fusion), each constant its own copy
    (:func:`jaxloss._numerics.distinct`). The log-softmax form wrote out five
    ``[N, C]`` arrays (1024x8192 forward: 57 -> 20 ms, 128 MiB -> 0 of
    temporaries). A batch with a non-finite row is recomputed guarded
    (:func:`jaxloss._numerics.on_cpu_unless_nonfinite`); under
    differentiation the value and the derivative are the guarded form's.
    """
    def constant(value: float, dtype: Any, copy: int) -> Array:
        out: Array = _numerics.distinct(jnp.asarray(value, dtype), copy)
        return out

    def fast(s: Array, t: Array, axis: int) -> Array:
        inv_t = 1.0 / temperature
        lse_s = _logits_lse(s, constant(inv_t, s.dtype, 0), axis)
        lse_t = _logits_lse(t, constant(inv_t, s.dtype, 1), axis)
        scale = constant(inv_t, s.dtype, 2)
        log_s, log_t = s * scale - lse_s, t * scale - lse_t
        a = log_s + constant(math.log1p(-beta), s.dtype, 3)
        b = log_t + constant(math.log(beta), s.dtype, 4)
        log_m = jnp.maximum(a, b) + jnp.log1p(jnp.exp(-jnp.abs(a - b)))
        terms = (constant(beta, s.dtype, 5) * jnp.exp(log_t) * (log_t - log_m)
                 + constant(1.0 - beta, s.dtype, 6) * jnp.exp(log_s) * (log_s - log_m))
        return jnp.sum(terms, axis=axis)

    def guarded(s: Array, t: Array, axis: int) -> Array:
        inv_t = 1.0 / jnp.asarray(temperature, s.dtype)
        log_s, log_t = jax.nn.log_softmax(s * inv_t, axis=axis), jax.nn.log_softmax(t * inv_t, axis=axis)
        return _skewed_jsd(log_s, log_t, jnp.asarray(beta, s.dtype), axis)

    return _numerics.fast_unless_nonfinite(fast, guarded)


# -------------------------------------------------------------------- losses
@_registry.builtin(tags=("distillation",))
def knowledge_distillation_loss(student_logits: Any, teacher_logits: Any, *, temperature: Any = 1.0,
                                axis: int = -1, reduction: str = "mean", weights: Any = None,
                                where: Any = None) -> Array:
    r"""Hinton's knowledge-distillation loss: the KL divergence of softened distributions, times :math:`T^2`.

    .. math::

        \ell = T^2 \, \mathrm{KL}\big(\operatorname{softmax}(t / T) \,\big\|\, \operatorname{softmax}(s / T)\big)
             = T^2 \sum_c p^T_c \big(\log p^T_c - \log p^S_c\big)

    The :math:`T^2` factor keeps the gradient's scale independent of the
    temperature (Hinton et al., section 2). Per example equal to the common
    PyTorch form ``F.kl_div(F.log_softmax(s / T), F.softmax(t / T)) * T**2``
    summed over classes (RepDistiller ``DistillKL``; its ``"batchmean"`` is
    ``reduction="mean"`` here). Add the hard-label cross-entropy yourself,
    e.g. ``alpha * kd + (1 - alpha) * softmax_cross_entropy_with_integer_labels(s, y)``.

    Args:
      student_logits: ``[..., C]`` student logits.
      teacher_logits: ``[..., C]`` teacher logits, same shape.
      temperature: :math:`T > 0` (Python float or traced array).
      axis: the class axis.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]`` (e.g. padding positions of
        ``[B, T, V]`` token logits).

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, bad ``axis``, ``temperature <= 0``, unknown ``reduction``.
      TypeError: non-float logits.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> student = jnp.log(jnp.array([[0.5, 0.5]]))
      >>> teacher = jnp.log(jnp.array([[0.75, 0.25]]))
      >>> # KL([0.75, 0.25] || [0.5, 0.5]) = 0.75 log 1.5 + 0.25 log 0.5
      >>> jaxloss.distillation.knowledge_distillation_loss(student, teacher, reduction="none").round(6)
      Array([0.130812], dtype=float32)

    References:
      Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network",
      2015, https://arxiv.org/abs/1503.02531;
      Tian, Krishnan and Isola, "Contrastive Representation Distillation"
      (RepDistiller ``distiller_zoo/KD.py``), 2020, https://github.com/HobbitLong/RepDistiller
    """
    fn = "knowledge_distillation_loss"
    s, t, where, ax, _ = _logit_pair(fn, student_logits, teacher_logits, axis, where, temperature,
                                     log_softmax=False)
    values = jnp.square(jnp.asarray(temperature).astype(s.dtype)) * _kl_logits(t, s, ax, temperature)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(tags=("distillation",))
def generalized_jsd_loss(student_logits: Any, teacher_logits: Any, *, beta: Any = 0.5, temperature: Any = 1.0,
                         axis: int = -1, reduction: str = "mean", weights: Any = None,
                         where: Any = None) -> Array:
    r"""Generalized (beta-skewed) Jensen-Shannon divergence of GKD, per position.

    With :math:`S = \operatorname{softmax}(s / T)`, :math:`P = \operatorname{softmax}(t / T)`
    (teacher) and the mixture :math:`M = (1 - \beta) S + \beta P`:

    .. math::

        \ell = \begin{cases}
            \mathrm{KL}(P \,\|\, S) & \beta = 0 \text{ (forward KL)} \\
            \beta \, \mathrm{KL}(P \,\|\, M) + (1 - \beta) \, \mathrm{KL}(S \,\|\, M) & 0 < \beta < 1 \\
            \mathrm{KL}(S \,\|\, P) & \beta = 1 \text{ (reverse KL)}
        \end{cases}

    Per position equal to TRL's ``GKDTrainer.generalized_jsd_loss`` (summed
    over the vocabulary; no :math:`T^2` factor; TRL's ``"batchmean"`` with
    ``labels == -100`` positions dropped is ``reduction="mean"`` with those
    positions masked through ``where``). :math:`\log M` is a ``logaddexp`` of
    the two log-probabilities, so nothing leaves log space. As in TRL, the
    ends are the plain KL divergences (the mixed formula itself tends to 0 at
    both ends). A traced ``beta`` computes all three and selects.

    Args:
      student_logits: ``[..., V]`` student logits (e.g. ``[B, T, V]``).
      teacher_logits: ``[..., V]`` teacher logits, same shape.
      beta: :math:`\beta` in ``[0, 1]``.
      temperature: :math:`T > 0`; both logits are divided by it.
      axis: the vocabulary axis.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``; ``False`` drops a position
        (padding, prompt tokens).

    Returns:
      ``[...]`` per-position values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, bad ``axis``, ``beta`` outside ``[0, 1]``,
        ``temperature <= 0``, unknown ``reduction``.
      TypeError: non-float logits.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> student = jnp.log(jnp.array([[0.5, 0.5]]))
      >>> teacher = jnp.log(jnp.array([[0.75, 0.25]]))
      >>> gjsd = jaxloss.distillation.generalized_jsd_loss
      >>> gjsd(student, teacher, beta=0.0, reduction="none").round(6)  # KL(teacher || student)
      Array([0.130812], dtype=float32)
      >>> gjsd(student, teacher, beta=0.5, reduction="none").round(6)  # the Jensen-Shannon divergence
      Array([0.033822], dtype=float32)

    References:
      Agarwal et al., "On-Policy Distillation of Language Models: Learning from
      Self-Generated Mistakes" (GKD), ICLR 2024, https://arxiv.org/abs/2306.13649;
      TRL ``trl/experimental/gkd/gkd_trainer.py`` ``GKDTrainer.generalized_jsd_loss``,
      https://github.com/huggingface/trl
    """
    fn = "generalized_jsd_loss"
    _checks.in_range(fn, "beta", beta, low=0.0, high=1.0)
    mode = _jsd_mode(beta)
    if mode in ("forward_kl", "reverse_kl"):  # the ends are plain KLs, computed from the logits
        s, t, where, ax, _ = _logit_pair(fn, student_logits, teacher_logits, axis, where, temperature,
                                         log_softmax=False)
        p, q = (t, s) if mode == "forward_kl" else (s, t)
        values = _kl_logits(p, q, ax, temperature)
        return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)
    if mode == "jsd" and _checks.is_concrete(temperature):
        s, t, where, ax, _ = _logit_pair(fn, student_logits, teacher_logits, axis, where, temperature,
                                         log_softmax=False)
        values = _skewed_jsd_rows(float(np.asarray(temperature)), float(np.asarray(beta)))(s, t, ax)
        return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)
    log_s, log_t, where, ax, _ = _logit_pair(fn, student_logits, teacher_logits, axis, where, temperature)
    if mode == "jsd":
        values = _skewed_jsd(log_s, log_t, jnp.asarray(beta).astype(log_s.dtype), ax)
    else:
        b = jnp.asarray(beta).astype(log_s.dtype)
        inside = (b > 0) & (b < 1)
        # Double-where: the mixed formula sees 1/2 at the ends, where log(beta) or log1p(-beta) is -inf.
        mixed = _skewed_jsd(log_s, log_t, jnp.where(inside, b, 0.5), ax)
        values = jnp.where(b == 0, _kl(log_t, log_s, ax), jnp.where(b == 1, _kl(log_s, log_t, ax), mixed))
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


# ------------------------------------------------- fused (linear) distillation
# The two losses below fuse the output projections of a student and a teacher
# language model with the divergence between their token distributions. The
# vocabulary is walked ``chunk_size`` columns at a time, so the ``[N, V]``
# logits exist nowhere, forward or backward:
#
# * pass 1: an online log-sum-exp (Milakov and Gimelshein) of the student's
#   and the teacher's tempered logits;
# * pass 2: the per-token divergence terms from the chunk's log-probabilities
#   ``log p = z / T - lse``, summed over the vocabulary (a plain KL divergence
#   is accumulated during pass 1 instead: no second pass);
# * backward (a ``jax.custom_vjp``): each chunk's logits are recomputed and
#   turned straight into the gradients of both hidden states and weights, with
#   the closed-form derivatives of the divergence w.r.t. the logits (below).
#
# With ``axis_name`` the vocabulary is split over devices (tensor parallel):
# the log-sum-exps and the per-token sums are combined with one ``pmax`` and
# two ``psum`` of small ``[k, N]`` arrays inside the forward rule.

# The divergence a fused call computes (static): KL(teacher || student),
# KL(student || teacher), the skewed JSD at a fixed 0 < beta < 1, or all three
# selected by a traced beta.
_MODES = ("forward_kl", "reverse_kl", "jsd", "traced_beta")


# The columns of bfloat16 weights are walked in groups of about this many bytes
# (both weights' columns together; ``_numerics.column_groups``).
_GROUP_BYTES = _numerics.COLUMN_GROUP_BYTES


def _over_chunks(body: Any, carry: Any, weights: tuple[Array, Array], chunk: int) -> Any:
    """``carry = body(begin, (ws_c, wt_c), new, carry)`` over the vocabulary's chunks of both weights.

    One ``fori_loop`` per group of columns (``_numerics.column_groups``: a
    bfloat16 weight is bit-cast one group at a time, never whole) over its full
    chunks. A last partial chunk is moved back to end at ``V`` (no padded copy
    of the weights) and walked once after the loop, so that only it pays for
    ``new``, the columns that the previous chunk did not have, the only ones
    ``body`` may count (``None`` for a full chunk).
    """
    def step(group: _numerics.ColumnGroup, i: Array, c: Any) -> Any:
        return body(*_numerics.group_chunk(i, chunk, group), c)

    for group in _numerics.column_groups(weights, chunk, lambda: jax.tree_util.tree_leaves(carry)[0], _GROUP_BYTES):
        full = group.num_chunks - int(group.partial)
        if full:
            carry = jax.lax.fori_loop(0, full, functools.partial(step, group._replace(partial=False)), carry)
        if group.partial:
            carry = step(group, jnp.asarray(full, jnp.int32), carry)
    return carry


def _only(new: Array | None, x: Array, fill: float) -> Array:
    """``x`` ``[rows, chunk]`` with ``fill`` in the columns that are not ``new`` (counted by the previous chunk)."""
    return x if new is None else jnp.where(new[None, :], x, fill)


def _matmul_dtype(h: Array, w: Array, acc: Any) -> Any:
    """The dtype of the chunk products: the inputs' own when they agree, else the compute dtype.

    A bfloat16 weight is widened chunk by chunk to float32 (below), so its
    products are float32 products of exactly widened values.
    """
    return h.dtype if h.dtype == w.dtype and w.dtype != jnp.bfloat16 else acc


def _chunk_logits(h: Array, w_c: Array, acc: Any) -> tuple[Array, Array]:
    """``h @ w_c`` accumulated in ``acc``, and the weight chunk in ``h``'s dtype.

    ``h`` is already in the product dtype; ``w_c`` is a chunk of the weight
    (a bfloat16 one already widened to float32); a weight of another dtype
    than ``h`` is cast one chunk at a time, never whole.
    """
    if w_c.dtype != h.dtype:
        w_c = w_c.astype(h.dtype)
    return jnp.matmul(h, w_c, preferred_element_type=acc), w_c


def _divergence_terms(mode: str, ls: Array, lt: Array, beta: Array) -> dict[str, Array]:
    """Per-class terms of the divergences (to be summed over the vocabulary) from log-probabilities.

    ``kl_ts``: KL(t || s); ``kl_st``: KL(s || t); ``kl_tm``, ``kl_sm``:
    KL(t || m) and KL(s || m) with ``m = (1 - beta) s + beta t``. Log-probabilities
    of finite logits are finite, so ``p (log p - log q)`` needs no ``0 log 0`` guard.
    """
    out = {}
    if mode in ("forward_kl", "traced_beta"):
        out["kl_ts"] = jnp.exp(lt) * (lt - ls)
    if mode in ("reverse_kl", "traced_beta"):
        out["kl_st"] = jnp.exp(ls) * (ls - lt)
    if mode in ("jsd", "traced_beta"):
        # log m = logaddexp(log s + log(1 - beta), log t + log beta)
        lm = jnp.logaddexp(ls + jnp.log1p(-beta), lt + jnp.log(beta))
        out["kl_tm"] = jnp.exp(lt) * (lt - lm)
        out["kl_sm"] = jnp.exp(ls) * (ls - lm)
    return out


def _combine(mode: str, sums: dict[str, Array], beta: Array, safe_beta: Array) -> Array:
    """The per-token loss from the per-token divergences."""
    if mode == "forward_kl":
        return sums["kl_ts"]
    if mode == "reverse_kl":
        return sums["kl_st"]
    mixed = safe_beta * sums["kl_tm"] + (1.0 - safe_beta) * sums["kl_sm"]
    if mode == "jsd":
        return mixed
    return jnp.where(beta == 0, sums["kl_ts"], jnp.where(beta == 1, sums["kl_st"], mixed))


def _safe_beta(mode: str, beta: Array) -> tuple[Array, Array]:
    """``beta`` for the mixed formula (1/2 at the ends for a traced beta: double-where) and whether it applies."""
    if mode != "traced_beta":
        return beta, jnp.ones((), beta.dtype)
    inside = (beta > 0) & (beta < 1)
    return jnp.where(inside, beta, 0.5), inside.astype(beta.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8))
def _fused_divergence(hs: Array, ws: Array, ht: Array, wt: Array, inv_t: Array, beta: Array,
                      chunk: int, mode: str, axis_name: Any) -> Array:
    """Per token ``[N]``: the divergence of ``softmax(ht @ wt * inv_t)`` and ``softmax(hs @ ws * inv_t)``."""
    value: Array = _fused_forward(hs, ws, ht, wt, inv_t, beta, chunk, mode, axis_name)[0]
    return value


def _fused_forward(hs: Array, ws: Array, ht: Array, wt: Array, inv_t: Array, beta: Array, chunk: int, mode: str,
                   axis_name: Any) -> tuple[Array, Any]:
    n = hs.shape[0]
    acc = _numerics.compute_dtype(hs, ws, ht, wt)
    axes = frozenset().union(*(_numerics.varying_axes(x) for x in (hs, ws, ht, wt)))
    hs_mm = hs.astype(_matmul_dtype(hs, ws, acc))
    ht_mm = ht.astype(_matmul_dtype(ht, wt, acc))

    def logits(columns: tuple[Array, Array]) -> tuple[Array, Array]:
        us, _ = _chunk_logits(hs_mm, columns[0], acc)
        ut, _ = _chunk_logits(ht_mm, columns[1], acc)
        return us * inv_t, ut * inv_t

    # A plain KL divergence needs one pass: KL(p || q) = E_p[z_p - z_q] - lse_p + lse_q, with
    # E_p[.] from a running sum of exp(z_p - m_p)(z_p - z_q) rescaled like the log-sum-exp's.
    one_pass = mode in ("forward_kl", "reverse_kl")
    ref = 1 if mode == "forward_kl" else 0  # p is the teacher (1) or the student (0)

    def lse_body(begin: Array, columns: tuple[Array, Array], new: Array | None, carry: Any) -> Any:
        (m_s, s_s), (m_t, s_t), c = carry
        a, b = logits(columns)
        out = []
        for z, m, s in ((a, m_s, s_s), (b, m_t, s_t)):
            # Online log-sum-exp: rescale the running sum to the new (stop-gradient) maximum.
            z = _only(new, z, -jnp.inf)
            top = jnp.maximum(m, jnp.max(z, axis=1))
            out.append((top, s * jnp.exp(m - top) + jnp.sum(jnp.exp(z - top[:, None]), axis=1)))
        if one_pass:
            z_p, z_q = (b, a) if ref else (a, b)
            m_old, m_new = carry[ref][0], out[ref][0]
            terms = _only(new, jnp.exp(z_p - m_new[:, None]) * (z_p - z_q), 0.0)
            c = c * jnp.exp(m_old - m_new) + jnp.sum(terms, axis=1)
        return out[0], out[1], c

    def fresh(value: float) -> Any:
        return _numerics.vary(jnp.full((n,), value, acc), axes)

    init = ((fresh(-jnp.inf), fresh(0.0)), (fresh(-jnp.inf), fresh(0.0)), fresh(0.0) if one_pass else None)
    (m_s, s_s), (m_t, s_t), c = _over_chunks(lse_body, init, (ws, wt), chunk)
    lse = jnp.stack([m_s + jnp.log(s_s), m_t + jnp.log(s_t)])  # [2, N]
    if axis_name is not None:
        # Global log-sum-exp over the vocabulary slices: M + log sum_i exp(lse_i - M).
        top = jax.lax.pmax(lse, axis_name)
        lse = top + jnp.log(jax.lax.psum(jnp.exp(lse - top), axis_name))
    lse_s, lse_t = lse[0], lse[1]
    safe_beta, _ = _safe_beta(mode, beta)
    if one_pass:
        # E_p[z_p - z_q] = sum over slices of c_i exp(m_i - lse_p) (one term without axis_name).
        m_p, lse_p, lse_q = (m_t, lse_t, lse_s) if ref else (m_s, lse_s, lse_t)
        expectation = c * jnp.exp(m_p - lse_p)
        if axis_name is not None:
            expectation = jax.lax.psum(expectation, axis_name)
        sums = {"kl_ts" if ref else "kl_st": expectation - lse_p + lse_q}
        return _combine(mode, sums, beta, safe_beta), (hs, ws, ht, wt, inv_t, beta, lse_s, lse_t, sums)

    def terms_body(begin: Array, columns: tuple[Array, Array], new: Array | None, sums: Any) -> Any:
        a, b = logits(columns)
        terms = _divergence_terms(mode, a - lse_s[:, None], b - lse_t[:, None], safe_beta)
        return {k: sums[k] + jnp.sum(_only(new, v, 0.0), axis=1) for k, v in terms.items()}

    names = _divergence_terms(mode, jnp.zeros((1, 1), acc), jnp.zeros((1, 1), acc), safe_beta).keys()
    zero = _numerics.vary(jnp.zeros((n,), acc), axes | _numerics.varying_axes(lse_s))
    sums = _over_chunks(terms_body, {k: zero for k in names}, (ws, wt), chunk)
    if axis_name is not None:
        keys = sorted(sums)
        summed = jax.lax.psum(jnp.stack([sums[k] for k in keys]), axis_name)
        sums = dict(zip(keys, summed))
    value = _combine(mode, sums, beta, safe_beta)
    return value, (hs, ws, ht, wt, inv_t, beta, lse_s, lse_t, sums)


def _fused_backward(chunk: int, mode: str, axis_name: Any, residuals: Any, g: Array) -> Any:
    (hs, ws, ht, wt, inv_t, beta, lse_s, lse_t, sums), flags = residuals
    want_s, want_t = flags
    acc = _numerics.compute_dtype(hs, ws, ht, wt)
    hs_dtype, ht_dtype = hs.dtype, ht.dtype
    hs = hs.astype(_matmul_dtype(hs, ws, acc))
    ht = ht.astype(_matmul_dtype(ht, wt, acc))
    safe_beta, inside = _safe_beta(mode, beta)
    # Per-token coefficients of each divergence in the loss (the traced-beta select).
    if mode == "traced_beta":
        c_ts, c_st, c_mix = (g * (beta == 0).astype(g.dtype), g * (beta == 1).astype(g.dtype), g * inside)
    else:
        c_ts = c_st = c_mix = g

    def body(begin: Array, columns: tuple[Array, Array], new: Array | None, carry: Any) -> Any:
        d_hs, d_ws, d_ht, d_wt, d_inv = carry
        us, ws_c = _chunk_logits(hs, columns[0], acc)
        ut, wt_c = _chunk_logits(ht, columns[1], acc)
        ls, lt = us * inv_t - lse_s[:, None], ut * inv_t - lse_t[:, None]
        ps, pt = jnp.exp(ls), jnp.exp(lt)
        # d loss / d (z / T) for each divergence; with G = d loss / d log p the softmax
        # Jacobian gives G - p sum(G):
        #   KL(t||s):        d/ds = p_s - p_t                 d/dt = p_t (log t - log s - KL(t||s))
        #   KL(s||t):        d/ds = p_s (log s - log t - KL(s||t))   d/dt = p_t - p_s
        #   b KL(t||m) + (1-b) KL(s||m): d/ds = (1-b) p_s (log s - log m - KL(s||m)),
        #                                d/dt = b p_t (log t - log m - KL(t||m))
        # (the terms through log m cancel: d/dlog m of the loss is -m).
        d_a = jnp.zeros_like(ls)
        d_b = jnp.zeros_like(lt)
        if mode in ("forward_kl", "traced_beta"):
            d_a = d_a + c_ts[:, None] * (ps - pt)
            d_b = d_b + c_ts[:, None] * pt * (lt - ls - sums["kl_ts"][:, None])
        if mode in ("reverse_kl", "traced_beta"):
            d_a = d_a + c_st[:, None] * ps * (ls - lt - sums["kl_st"][:, None])
            d_b = d_b + c_st[:, None] * (pt - ps)
        if mode in ("jsd", "traced_beta"):
            lm = jnp.logaddexp(ls + jnp.log1p(-safe_beta), lt + jnp.log(safe_beta))
            d_a = d_a + (c_mix * (1.0 - safe_beta))[:, None] * ps * (ls - lm - sums["kl_sm"][:, None])
            d_b = d_b + (c_mix * safe_beta)[:, None] * pt * (lt - lm - sums["kl_tm"][:, None])
        # z / T = u * inv_t: d/du = inv_t d/dz, d/dinv_t = sum u d/dz.
        # Columns of the previous chunk (``new``) were counted there in d_inv and d_h.
        d_inv = d_inv + jnp.sum(_only(new, d_a * us, 0.0)) + jnp.sum(_only(new, d_b * ut, 0.0))
        d_us, d_ut = d_a * inv_t, d_b * inv_t
        if want_s:
            d_hs, d_ws = _accumulate(hs, ws_c, d_us, d_hs, d_ws, begin, new)
        if want_t:
            d_ht, d_wt = _accumulate(ht, wt_c, d_ut, d_ht, d_wt, begin, new)
        return d_hs, d_ws, d_ht, d_wt, d_inv

    axes = frozenset().union(*(_numerics.varying_axes(x) for x in (hs, ws, ht, wt)))

    def zeros(shape: tuple[int, ...], dtype: Any, wanted: bool) -> Any:
        return _numerics.vary(jnp.zeros(shape, dtype), axes) if wanted else None

    init = (zeros(hs.shape, acc, want_s), zeros(ws.shape, ws.dtype, want_s), zeros(ht.shape, acc, want_t),
            zeros(wt.shape, wt.dtype, want_t), _numerics.vary(jnp.zeros((), acc), axes))
    d_hs, d_ws, d_ht, d_wt, d_inv = _over_chunks(body, init, (ws, wt), chunk)
    d_beta = None
    if mode in ("jsd", "traced_beta"):
        # d/dbeta [b KL(t||m) + (1-b) KL(s||m)] = KL(t||m) - KL(s||m) (the terms through m cancel).
        d_beta = _cotangent_like(jnp.sum(c_mix * (sums["kl_tm"] - sums["kl_sm"])), beta)
    return (None if d_hs is None else d_hs.astype(hs_dtype), d_ws,
            None if d_ht is None else d_ht.astype(ht_dtype), d_wt, _cotangent_like(d_inv, inv_t), d_beta)


def _cotangent_like(d: Array, primal: Array) -> Array:
    """A scalar hyper-parameter's cotangent with the primal's dtype and mesh axes.

    Inside ``shard_map`` a hyper-parameter replicated over an axis gets the sum
    of the per-device partial derivatives over that axis.
    """
    extra = tuple(sorted(_numerics.varying_axes(d) - _numerics.varying_axes(primal), key=str))
    if extra:
        d = jax.lax.psum(d, extra)
    out: Array = _numerics.vary(d.astype(primal.dtype), _numerics.varying_axes(primal))
    return out


def _accumulate(h: Array, w_c: Array, d_u: Array, d_h: Array, d_w: Array, start: Array,
                new: Array | None) -> tuple[Array, Array]:
    """Adds one chunk's gradients: ``d_h += d_u w_c^T``; writes ``d_w[:, chunk] = h^T d_u`` (in place).

    Columns that are not ``new`` were the previous chunk's: they add nothing to
    ``d_h`` and their ``d_w`` columns are written again with the same numbers.
    """
    acc = d_h.dtype
    d_h = d_h + jnp.matmul(d_u.astype(w_c.dtype), _only(new, w_c, 0.0).T, preferred_element_type=acc)
    h_mm = h if h.dtype == w_c.dtype else h.astype(w_c.dtype)
    block = jnp.matmul(h_mm.T, d_u.astype(w_c.dtype), preferred_element_type=acc)
    d_w = jax.lax.dynamic_update_slice_in_dim(d_w, block.astype(d_w.dtype), start, axis=1)
    return d_h, d_w


def _fused_forward_rule(hs: Any, ws: Any, ht: Any, wt: Any, inv_t: Any, beta: Any, chunk: int, mode: str,
                       axis_name: Any) -> Any:
    value, residuals = _fused_forward(hs.value, ws.value, ht.value, wt.value, inv_t.value, beta.value,
                                      chunk, mode, axis_name)
    # Which side is differentiated (static): a frozen teacher (stop_gradient, or not
    # an argument of jax.grad) costs no teacher-gradient matmuls.
    flags = (hs.perturbed or ws.perturbed, ht.perturbed or wt.perturbed)
    return value, (residuals, flags)


_fused_divergence.defvjp(_fused_forward_rule, _fused_backward, symbolic_zeros=True)


def _fused_inputs(fn: str, student_hidden: Any, student_weight: Any, teacher_hidden: Any, teacher_weight: Any,
                  temperature: Any, chunk_size: Any, where: Any
                  ) -> tuple[Array, Array, Array, Array, Array | None, tuple[int, ...], int]:
    """Validated, flattened ``[N, D]`` hidden states (masked rows zeroed), weights, ``where`` and the chunk."""
    _checks.in_range(fn, "temperature", temperature, low=0.0, low_open=True)
    if chunk_size is not None:
        _checks.integer_option(fn, "chunk_size", chunk_size, allow_none=False)
        _checks.in_range(fn, "chunk_size", chunk_size, low=1)
    hs = _checks.floating(fn, "student_hidden", student_hidden)
    ws = _checks.floating(fn, "student_weight", student_weight)
    ht = _checks.floating(fn, "teacher_hidden", teacher_hidden)
    wt = _checks.floating(fn, "teacher_weight", teacher_weight)
    _checks.rank_at_least(fn, "student_hidden", hs, 1, "[..., Ds]")
    _checks.rank_at_least(fn, "teacher_hidden", ht, 1, "[..., Dt]")
    batch_shape = hs.shape[:-1]
    _checks.shape(fn, "teacher_hidden", ht, (*batch_shape, None),
                  f"[..., Dt] with [...] = {batch_shape} (student_hidden without its last axis)")
    ds, dt = hs.shape[-1], ht.shape[-1]
    _checks.shape(fn, "student_weight", ws, (ds, None), f"[Ds, V] with Ds = {ds} (student_hidden's last axis)")
    vocab = ws.shape[1]
    _checks.shape(fn, "teacher_weight", wt, (dt, vocab),
                  f"[Dt, V] = ({dt}, {vocab}) (teacher_hidden's last axis, student_weight's V)")
    if vocab == 0:
        raise ValueError(_checks.message(fn, "student_weight", "must have at least one column (V >= 1)",
                                         f"shape {ws.shape}"))
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), batch_shape,
                                      "the per-token shape")
    # First half of the double-where: masked tokens read zero hidden states.
    mask = None if where is None else where[..., None]
    n = 1
    for size in batch_shape:
        n *= size
    hs = _numerics.mask_inputs(mask, hs).reshape(n, ds)
    ht = _numerics.mask_inputs(mask, ht).reshape(n, dt)
    chunk = int(min(_numerics.vocab_chunk(n) if chunk_size is None else chunk_size, max(vocab, 1)))
    return hs, ws, ht, wt, where, batch_shape, chunk


def _fused_values(hs: Array, ws: Array, ht: Array, wt: Array, inv_t: Array, beta: Array, chunk: int, mode: str,
                  axis_name: Any) -> Array:
    """Per-token ``[N]`` divergences; inside ``shard_map`` the arrays are first cast to common mesh axes."""
    assert mode in _MODES, mode
    axes = frozenset().union(*(_numerics.varying_axes(x) for x in (hs, ws, ht, wt)))
    hs, ws, ht, wt = (_numerics.vary(x, axes) for x in (hs, ws, ht, wt))
    return _fused_divergence(hs, ws, ht, wt, inv_t, beta, chunk, mode, axis_name)


@_registry.builtin(tags=("distillation", "large_vocab"))
def linear_knowledge_distillation_loss(
    student_hidden: Any, student_weight: Any, teacher_hidden: Any, teacher_weight: Any, *,
    temperature: Any = 1.0, chunk_size: int | None = None, axis_name: Any = None,
    reduction: str = "mean", weights: Any = None, where: Any = None,
) -> Array:
    r"""Knowledge distillation of ``student_hidden @ student_weight`` from a teacher's, without materialising logits.

    With student logits :math:`s = h_S W_S`, teacher logits :math:`t = h_T W_T`
    and :math:`p^S = \operatorname{softmax}(s / T)`, :math:`p^T = \operatorname{softmax}(t / T)`:

    .. math::

        \ell = T^2 \sum_v p^T_v \big(\log p^T_v - \log p^S_v\big)

    per token, the same value and gradients as
    ``knowledge_distillation_loss(student_hidden @ student_weight,
    teacher_hidden @ teacher_weight, temperature=T)``. The vocabulary is walked
    ``chunk_size`` columns at a time: one forward pass for the two log-sum-exps
    and the divergence (online, rescaled to a running maximum:
    :math:`\mathrm{KL} = \mathbb{E}_{p^T}[(t - s)/T] - \mathrm{lse}_T + \mathrm{lse}_S`),
    and a backward pass (a ``jax.custom_vjp``) that recomputes each chunk's
    logits and turns them into gradients with :math:`\partial \ell / \partial s = T (p^S - p^T)` and
    :math:`\partial \ell / \partial t = T\, p^T (\log p^T - \log p^S - \mathrm{KL})`.
    Temporary memory is ``O(N * chunk_size)`` instead of ``O(N * V)``.

    Gradients flow into all four arrays (and a traced ``temperature``), like
    the unfused loss. When the teacher is not differentiated (frozen: wrapped
    in ``jax.lax.stop_gradient`` or simply not an argument of ``jax.grad``),
    the teacher's gradient matmuls are skipped (``custom_vjp`` symbolic
    zeros), so a frozen teacher costs one recomputed teacher product per chunk
    in the backward pass and nothing more. Matrix products accumulate in float32:
    bfloat16 weights stay bfloat16 and a weight of another dtype than its
    hidden states is cast one chunk at a time.

    Args:
      student_hidden: ``[..., Ds]`` float student activations (e.g. ``[B, T, Ds]``).
      student_weight: ``[Ds, V]`` float student output projection.
      teacher_hidden: ``[..., Dt]`` float teacher activations, same ``[...]``.
      teacher_weight: ``[Dt, V]`` float teacher output projection.
      temperature: :math:`T > 0` (Python float or traced array).
      chunk_size: vocabulary columns per chunk (a Python int >= 1), or
        ``None`` (default): about 2^21 logits per chunk and model (256 columns
        for 8192 tokens), between 128 and 4096 columns.
      axis_name: inside ``shard_map`` (or ``pmap``/``vmap`` with an axis name),
        the mesh axis (or tuple of axes) over which the vocabulary is split;
        ``None`` (default) when the weights hold the whole vocabulary. Device
        ``i`` holds columns ``[i * V_local, (i + 1) * V_local)`` of *both*
        weights; the hidden states are the same on every device of the axis
        (their gradients are summed over it). The batch is reduced locally:
        for a data axis use ``reduction="none"`` and
        ``jaxloss.reduce(..., axis_name="data")``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]`` (padding, prompt tokens).

    Returns:
      ``[...]`` per-token values for ``reduction="none"``, else a scalar;
      float32 for 16/32-bit inputs (float64 under ``jax_enable_x64``).

    Raises:
      ValueError: a hidden state of rank 0, mismatched ``[...]``, a weight not
        ``[D, V]`` matching its hidden state, different vocabulary sizes,
        ``temperature <= 0``, a bad ``chunk_size``, unknown ``reduction``.
      TypeError: non-float arrays, non-boolean ``where``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> keys = jax.random.split(jax.random.key(0), 4)
      >>> hs, ws = jax.random.normal(keys[0], (6, 8)), jax.random.normal(keys[1], (8, 100))
      >>> ht, wt = jax.random.normal(keys[2], (6, 16)), jax.random.normal(keys[3], (16, 100))
      >>> fused = jaxloss.distillation.linear_knowledge_distillation_loss(hs, ws, ht, wt, temperature=2.0,
      ...                                                                 chunk_size=32)
      >>> naive = jaxloss.distillation.knowledge_distillation_loss(hs @ ws, ht @ wt, temperature=2.0)
      >>> bool(jnp.allclose(fused, naive, rtol=1e-5))
      True

    References:
      Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network",
      2015, https://arxiv.org/abs/1503.02531;
      Milakov and Gimelshein, "Online normalizer calculation for softmax",
      2018, https://arxiv.org/abs/1805.02867;
      Hsu et al., "Liger Kernel: Efficient Triton Kernels for LLM Training"
      (fused linear distillation, ``src/liger_kernel/chunked_loss/fused_linear_distillation.py``),
      2024, https://arxiv.org/abs/2410.10989
    """
    fn = "linear_knowledge_distillation_loss"
    hs, ws, ht, wt, where, batch_shape, chunk = _fused_inputs(fn, student_hidden, student_weight, teacher_hidden,
                                                              teacher_weight, temperature, chunk_size, where)
    acc = _numerics.compute_dtype(hs, ws, ht, wt)
    temperature = jnp.asarray(temperature).astype(acc)
    values = _fused_values(hs, ws, ht, wt, 1.0 / temperature, jnp.zeros((), acc), chunk, "forward_kl", axis_name)
    values = jnp.square(temperature) * values.reshape(batch_shape)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(tags=("distillation", "large_vocab"))
def linear_generalized_jsd_loss(
    student_hidden: Any, student_weight: Any, teacher_hidden: Any, teacher_weight: Any, *,
    beta: Any = 0.5, temperature: Any = 1.0, chunk_size: int | None = None, axis_name: Any = None,
    reduction: str = "mean", weights: Any = None, where: Any = None,
) -> Array:
    r"""GKD's generalized Jensen-Shannon divergence of fused student and teacher projections, chunked over the vocabulary.

    With :math:`S = \operatorname{softmax}(h_S W_S / T)`, :math:`P = \operatorname{softmax}(h_T W_T / T)`
    (teacher) and :math:`M = (1 - \beta) S + \beta P`:

    .. math::

        \ell = \begin{cases}
            \mathrm{KL}(P \,\|\, S) & \beta = 0 \\
            \beta \, \mathrm{KL}(P \,\|\, M) + (1 - \beta) \, \mathrm{KL}(S \,\|\, M) & 0 < \beta < 1 \\
            \mathrm{KL}(S \,\|\, P) & \beta = 1
        \end{cases}

    per token, the same value and gradients as
    ``generalized_jsd_loss(student_hidden @ student_weight,
    teacher_hidden @ teacher_weight, beta=beta, temperature=T)`` (TRL's
    ``GKDTrainer.generalized_jsd_loss`` semantics), computed like
    :func:`linear_knowledge_distillation_loss`: two chunked passes over the
    vocabulary forward (log-sum-exps, then the divergence with
    :math:`\log M` a ``logaddexp`` of the log-probabilities) and one backward
    with the closed-form logit gradients
    :math:`\partial \ell / \partial (s/T) = (1 - \beta) S (\log S - \log M - \mathrm{KL}(S \| M))`,
    :math:`\partial \ell / \partial (t/T) = \beta P (\log P - \log M - \mathrm{KL}(P \| M))`
    and :math:`\partial \ell / \partial \beta = \mathrm{KL}(P \| M) - \mathrm{KL}(S \| M)`.
    Never materialises ``[N, V]``. Gradients flow into all four arrays, and
    into a traced ``beta`` or ``temperature``; a frozen teacher (not
    differentiated) skips the teacher's gradient matmuls.

    Liger's ``LigerFusedLinearJSDLoss`` (the peer) chunks over tokens instead,
    gives the teacher no gradient and mixes :math:`M = \beta S + (1 - \beta) P`
    while weighting :math:`\beta \mathrm{KL}(P \| M) + (1 - \beta) \mathrm{KL}(S \| M)`;
    here the mixture follows TRL and GKD: at ``beta=0.5`` the two agree.

    Args:
      student_hidden: ``[..., Ds]`` float student activations (e.g. ``[B, T, Ds]``).
      student_weight: ``[Ds, V]`` float student output projection.
      teacher_hidden: ``[..., Dt]`` float teacher activations, same ``[...]``.
      teacher_weight: ``[Dt, V]`` float teacher output projection.
      beta: :math:`\beta` in ``[0, 1]`` (a traced ``beta`` computes the three
        cases in the same two passes and selects).
      temperature: :math:`T > 0`; both logits are divided by it.
      chunk_size: vocabulary columns per chunk (a Python int >= 1), or
        ``None`` (default) for about 2^21 logits per chunk and model.
      axis_name: the mesh axis (or axes) over which both weights' vocabulary is
        split, as in :func:`linear_knowledge_distillation_loss`.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``; ``False`` drops a token.

    Returns:
      ``[...]`` per-token values for ``reduction="none"``, else a scalar;
      float32 for 16/32-bit inputs (float64 under ``jax_enable_x64``).

    Raises:
      ValueError: mismatched shapes (as in
        :func:`linear_knowledge_distillation_loss`), ``beta`` outside
        ``[0, 1]``, ``temperature <= 0``, a bad ``chunk_size``, unknown ``reduction``.
      TypeError: non-float arrays, non-boolean ``where``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxloss
      >>> keys = jax.random.split(jax.random.key(0), 4)
      >>> hs, ws = jax.random.normal(keys[0], (6, 8)), jax.random.normal(keys[1], (8, 100))
      >>> ht, wt = jax.random.normal(keys[2], (6, 16)), jax.random.normal(keys[3], (16, 100))
      >>> fused = jaxloss.distillation.linear_generalized_jsd_loss(hs, ws, ht, wt, beta=0.3, chunk_size=32)
      >>> naive = jaxloss.distillation.generalized_jsd_loss(hs @ ws, ht @ wt, beta=0.3)
      >>> bool(jnp.allclose(fused, naive, rtol=1e-5))
      True

    References:
      Agarwal et al., "On-Policy Distillation of Language Models: Learning from
      Self-Generated Mistakes" (GKD), ICLR 2024, https://arxiv.org/abs/2306.13649;
      Hsu et al., "Liger Kernel: Efficient Triton Kernels for LLM Training"
      (``src/liger_kernel/chunked_loss/jsd_loss.py``), 2024, https://arxiv.org/abs/2410.10989;
      Milakov and Gimelshein, "Online normalizer calculation for softmax",
      2018, https://arxiv.org/abs/1805.02867
    """
    fn = "linear_generalized_jsd_loss"
    _checks.in_range(fn, "beta", beta, low=0.0, high=1.0)
    hs, ws, ht, wt, where, batch_shape, chunk = _fused_inputs(fn, student_hidden, student_weight, teacher_hidden,
                                                              teacher_weight, temperature, chunk_size, where)
    acc = _numerics.compute_dtype(hs, ws, ht, wt)
    mode = _jsd_mode(beta)
    inv_t = 1.0 / jnp.asarray(temperature).astype(acc)
    values = _fused_values(hs, ws, ht, wt, inv_t, jnp.asarray(beta).astype(acc), chunk, mode, axis_name)
    return reduce_values(values.reshape(batch_shape), reduction=reduction, weights=weights, where=where, fn=fn)
