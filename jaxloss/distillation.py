"""Knowledge-distillation losses over a class axis.

``student_logits`` and ``teacher_logits`` are ``[..., V]`` logits of one shape
(classes, or a vocabulary at every position of ``[B, T, V]`` sequences); the
losses are per example (per position), ``[...]``, and ``where`` masks positions
(padding, prompt tokens). Everything stays in log space (``log_softmax``,
``logaddexp``), so logits of magnitude ``1e4`` give finite values and
gradients. Gradients flow into both logits; wrap the teacher's in
``jax.lax.stop_gradient`` (or compute them outside the differentiated function)
for a frozen teacher.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _checks, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array


# ----------------------------------------------------------------- helpers
def _logit_pair(fn: str, student_logits: Any, teacher_logits: Any, axis: int, where: Any,
                temperature: Any) -> tuple[Array, Array, Any, int]:
    """Validates the two logit arrays and ``temperature``; returns their temperature-scaled log-softmax.

    Masked positions read logits 0 (the first half of the double-where).
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
    # log_softmax shifts by the stop-gradient maximum: exact for logits of magnitude 1e4.
    return jax.nn.log_softmax(s * inv_t, axis=ax), jax.nn.log_softmax(t * inv_t, axis=ax), where, ax


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


def _skewed_jsd(log_s: Array, log_t: Array, beta: Array, axis: int) -> Array:
    """``beta KL(t || m) + (1 - beta) KL(s || m)`` with ``m = (1 - beta) s + beta t``, for ``0 < beta < 1``."""
    # log m = log((1 - beta) e^{log s} + beta e^{log t}) = logaddexp(log s + log1p(-beta), log t + log beta)
    log_m = jnp.logaddexp(log_s + jnp.log1p(-beta), log_t + jnp.log(beta))
    return beta * _kl(log_t, log_m, axis) + (1.0 - beta) * _kl(log_s, log_m, axis)


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
    log_s, log_t, where, ax = _logit_pair(fn, student_logits, teacher_logits, axis, where, temperature)
    temperature = jnp.asarray(temperature).astype(log_s.dtype)
    values = jnp.square(temperature) * _kl(log_t, log_s, ax)
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
    log_s, log_t, where, ax = _logit_pair(fn, student_logits, teacher_logits, axis, where, temperature)
    if _checks.is_concrete(beta) and float(beta) == 0.0:
        values = _kl(log_t, log_s, ax)
    elif _checks.is_concrete(beta) and float(beta) == 1.0:
        values = _kl(log_s, log_t, ax)
    elif _checks.is_concrete(beta):
        values = _skewed_jsd(log_s, log_t, jnp.asarray(beta).astype(log_s.dtype), ax)
    else:
        b = jnp.asarray(beta).astype(log_s.dtype)
        inside = (b > 0) & (b < 1)
        # Double-where: the mixed formula sees 1/2 at the ends, where log(beta) or log1p(-beta) is -inf.
        mixed = _skewed_jsd(log_s, log_t, jnp.where(inside, b, 0.5), ax)
        values = jnp.where(b == 0, _kl(log_t, log_s, ax), jnp.where(b == 1, _kl(log_s, log_t, ax), mixed))
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)
