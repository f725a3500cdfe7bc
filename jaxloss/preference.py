"""Preference optimisation losses for language-model post-training (DPO and its relatives).

Inputs are per-sequence log-probabilities ``[...]`` (usually ``[B]``): the sum
over a completion's tokens of the log-probability the model gives each token,
or their mean where the method says so (SimPO, ORPO, TRL's IPO).
:func:`sequence_log_probs` computes them from logits. Every loss is per
example, accepts ``reduction``, ``weights`` and ``where`` (see
:func:`jaxloss.reduce`), computes in at least float32 and stays finite, value
and gradient, at equal chosen and rejected log-probabilities and at
log-probabilities of ``-1e4``.

Each loss equals, per example, the function of Hugging Face TRL's trainer for
that method (``DPOTrainer.dpo_loss`` before its 2025 refactor,
``CPOTrainer.cpo_loss``, ``ORPOTrainer.odds_ratio_loss``,
``KTOTrainer.kto_loss``); TRL averages the per-example values, as
``reduction="mean"`` does.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from jaxloss import _checks, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array

_DPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo", "robust")


# ----------------------------------------------------------------- helpers
def _log_probs(fn: str, where: ArrayLike | None,
               named: list[tuple[str, ArrayLike]]) -> tuple[list[Array], Array | None]:
    """Validates same-shape float log-probabilities; masks them (first half of the double-where)."""
    return _checks.elementwise_inputs(fn, where, named)


def _param(value: ArrayLike, dtype: DTypeLike) -> Array:
    """A hyper-parameter (Python float or traced array) in the compute dtype, explicitly cast."""
    return jnp.asarray(value).astype(dtype)


def _smoothed_log_sigmoid(z: Array, label_smoothing: ArrayLike) -> Array:
    """``-(1 - e) log_sigmoid(z) - e log_sigmoid(-z)``: the (conservative) logistic loss of a margin ``z``.

    ``-log_sigmoid(z) = softplus(-z)`` is exact for any ``z`` (no ``log`` of a
    rounded probability), so a margin of ``1e4`` gives 0 and ``-1e4`` gives ``1e4``.
    """
    e = _param(label_smoothing, z.dtype)
    return (1.0 - e) * jax.nn.softplus(-z) + e * jax.nn.softplus(z)


def _log1mexp(x: Array) -> Array:
    """``log(1 - exp(x))`` for log-probabilities ``x <= 0``, finite in value and gradient everywhere.

    Maechler (2012): ``log(-expm1(x))`` above ``-log 2``, ``log1p(-exp(x))`` below; each branch
    sees only inputs of its own range (double-where), so the other branch's ``-inf`` at ``x = 0``
    cannot turn the gradient into NaN. ``x >= 0`` (probability 1) is clamped to ``-tiny``: the
    value is ``log(tiny)`` (about -87 in float32) and the gradient there is 0. NaN propagates.
    """
    tiny = jnp.finfo(x.dtype).tiny
    x = jnp.minimum(x, -tiny)
    near = x > -math.log(2.0)
    x_near = jnp.where(near, x, -1.0)
    x_far = jnp.where(near, -1.0, x)
    return jnp.where(near, jnp.log(-jnp.expm1(x_near)), jnp.log1p(-jnp.exp(x_far)))


def _select_zero(x: Array) -> Array:
    """``max(x, 0)`` as one select (gradient 0 at 0, NaN propagates), as ``jax.nn.relu``."""
    return jnp.where(x <= 0, jnp.asarray(0, x.dtype), x)


# ------------------------------------------------------------------ utility
def sequence_log_probs(logits: ArrayLike, labels: ArrayLike, *, ignore_index: int | None = None,
                       where: ArrayLike | None = None, average: bool = False) -> Array:
    r"""Per-sequence log-probability of ``labels`` under ``logits`` (sum or mean over kept tokens).

    .. math::

        s_b = \sum_{t \in K_b} \log \operatorname{softmax}(z_{b,t})_{y_{b,t}}
        \quad\text{or, with } \texttt{average=True}, \quad
        \frac{1}{|K_b|} \sum_{t \in K_b} \log \operatorname{softmax}(z_{b,t})_{y_{b,t}}

    where :math:`K_b` are the positions kept by ``where`` and ``ignore_index``.
    Position by position with no shift: ``logits[:, t]`` scores ``labels[:, t]``
    (a decoder-only caller passes ``logits[:, :-1]`` and ``labels[:, 1:]``). A
    utility, not a loss: it feeds the preference losses. Equals TRL's
    ``get_batch_logps`` (after its shift) with ``label_pad_token_id`` as
    ``ignore_index``, except that a sequence with no kept token gives 0 (with
    zero gradient) instead of NaN when ``average=True``.

    Args:
      logits: ``[..., T, V]`` float logits.
      labels: ``[..., T]`` integer token ids, the shape of ``logits`` without the
        last axis.
      ignore_index: a label value that marks positions to skip (e.g. ``-100``),
        or ``None``.
      where: boolean mask broadcastable to ``[..., T]``; ``False`` skips a
        position (prompt or padding tokens).
      average: return the mean over kept tokens instead of the sum (the
        length-normalised log-probability of SimPO and ORPO).

    Returns:
      ``[...]`` log-probabilities (float32 for 16-bit logits). A label outside
      ``[0, V)`` at a kept position gives NaN for its sequence.

    Raises:
      ValueError: ``logits`` of rank < 2, ``labels`` of the wrong shape, or
        ``where`` that does not broadcast.
      TypeError: non-float ``logits``, non-integer ``labels``, non-boolean
        ``where``, non-int ``ignore_index``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> logits = jnp.log(jnp.array([[[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]]))
      >>> labels = jnp.array([[0, 2]])
      >>> jaxloss.preference.sequence_log_probs(logits, labels).round(5)  # log 0.5 + log 0.8
      Array([-0.91629], dtype=float32)
      >>> jaxloss.preference.sequence_log_probs(logits, jnp.array([[0, -100]]), ignore_index=-100).round(5)
      Array([-0.69315], dtype=float32)

    References:
      Rafailov et al., "Direct Preference Optimization: Your Language Model is
      Secretly a Reward Model", 2023, https://arxiv.org/abs/2305.18290;
      von Werra et al., "TRL: Transformer Reinforcement Learning", 2020
      (``DPOTrainer.get_batch_logps``), https://github.com/huggingface/trl
    """
    fn = "sequence_log_probs"
    logits = _checks.floating(fn, "logits", logits)
    _checks.rank_at_least(fn, "logits", logits, 2, "[..., T, V]")
    labels = _checks.integer(fn, "labels", labels)
    _checks.integer_option(fn, "ignore_index", ignore_index)
    if not isinstance(average, bool):
        _checks._fail(ValueError, _checks.message(fn, "average", "must be a Python bool", repr(average)))
    token_shape = logits.shape[:-1]
    _checks.shape(fn, "labels", labels, token_shape, f"{token_shape} (logits {logits.shape} without the vocabulary axis)")
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), token_shape,
                                      "the token shape [..., T]")
    where = _numerics.ignore_mask(where, labels, ignore_index)
    dtype = _numerics.compute_dtype(logits)
    # First half of the double-where: a skipped token reads logits 0 and label 0.
    x = _numerics.mask_inputs(_numerics.expand_where(where, -1), logits.astype(dtype))
    y = labels if where is None else jnp.where(where, labels, 0)
    # log softmax(x)[y] = (x_y - m) - log sum exp(x - m) with m the stop-gradient maximum: exact for
    # logits of magnitude 1e4, and no [..., T, V] log-softmax array is needed.
    shift = jax.lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True))
    lse = jnp.log(jnp.sum(jnp.exp(x - shift), axis=-1))
    token_logps = (_numerics.take_class(x, y, -1) - jnp.squeeze(shift, -1)) - lse
    if where is not None:
        token_logps = jnp.where(where, token_logps, jnp.zeros_like(token_logps))
    total = jnp.sum(token_logps, axis=-1)
    if not average:
        return total
    count = jnp.sum(jnp.ones(token_shape, dtype) if where is None else where.astype(dtype), axis=-1)
    return _numerics.safe_div(total, count)


def dpo_rewards(policy_chosen_logps: ArrayLike, policy_rejected_logps: ArrayLike, reference_chosen_logps: ArrayLike,
                reference_rejected_logps: ArrayLike, *, beta: ArrayLike = 0.1) -> tuple[Array, Array]:
    r"""DPO's implicit rewards of the chosen and rejected completions (for logging, not a loss).

    .. math::

        r_c = \beta (\pi_c - \pi^{\text{ref}}_c), \qquad r_r = \beta (\pi_r - \pi^{\text{ref}}_r)

    As TRL's ``DPOTrainer`` logs them, the rewards carry no gradient
    (``stop_gradient``). The reward accuracy is ``mean(r_c > r_r)`` and the
    reward margin ``mean(r_c - r_r)``.

    Args:
      policy_chosen_logps: ``[...]`` policy log-probabilities of the chosen completions.
      policy_rejected_logps: ``[...]`` of the rejected completions, same shape.
      reference_chosen_logps: ``[...]`` reference-model log-probabilities of the chosen completions.
      reference_rejected_logps: ``[...]`` of the rejected completions.
      beta: the DPO temperature, ``> 0``.

    Returns:
      ``(chosen_rewards, rejected_rewards)``, each ``[...]``.

    Raises:
      ValueError: shapes differ, ``beta <= 0``.
      TypeError: non-float inputs.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> chosen, rejected = jaxloss.preference.dpo_rewards(
      ...     jnp.array([-10.0]), jnp.array([-12.0]), jnp.array([-11.0]), jnp.array([-11.0]), beta=0.5)
      >>> float(chosen[0]), float(rejected[0])
      (0.5, -0.5)

    References:
      Rafailov et al., "Direct Preference Optimization: Your Language Model is
      Secretly a Reward Model", 2023, https://arxiv.org/abs/2305.18290
    """
    fn = "dpo_rewards"
    _checks.in_range(fn, "beta", beta, low=0.0, low_open=True)
    (pc, pr, rc, rr), _ = _log_probs(fn, None, [
        ("policy_chosen_logps", policy_chosen_logps), ("policy_rejected_logps", policy_rejected_logps),
        ("reference_chosen_logps", reference_chosen_logps), ("reference_rejected_logps", reference_rejected_logps)])
    b = _param(beta, pc.dtype)
    return jax.lax.stop_gradient(b * (pc - rc)), jax.lax.stop_gradient(b * (pr - rr))


# -------------------------------------------------------------------- losses
@_registry.builtin(tags=("preference",))
def dpo_loss(policy_chosen_logps: ArrayLike, policy_rejected_logps: ArrayLike, reference_chosen_logps: ArrayLike,
             reference_rejected_logps: ArrayLike, *, beta: ArrayLike = 0.1, label_smoothing: ArrayLike = 0.0,
             loss_type: Literal["sigmoid", "hinge", "ipo", "robust"] = "sigmoid",
             reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
             where: ArrayLike | None = None) -> Array:
    r"""Direct Preference Optimization loss and its variants (cDPO, SLiC hinge, IPO, robust DPO).

    With the log-ratio margin :math:`x = (\pi_c - \pi^{\text{ref}}_c) - (\pi_r - \pi^{\text{ref}}_r)`
    and :math:`e` the label smoothing:

    .. math::

        \text{sigmoid: } -(1 - e) \log\sigma(\beta x) - e \log\sigma(-\beta x) \qquad
        \text{hinge: } \max(0, 1 - \beta x)

        \text{ipo: } \Big(x - \frac{1}{2\beta}\Big)^2 \qquad
        \text{robust: } \frac{-(1 - e) \log\sigma(\beta x) + e \log\sigma(-\beta x)}{1 - 2e}

    computed as ``softplus(-beta x)`` for :math:`-\log\sigma(\beta x)`, exact for
    any margin. Per example equal to TRL's ``DPOTrainer.dpo_loss`` (before its
    2025 refactor; ``f_divergence_type="reverse_kl"``, not reference-free).
    ``"ipo"`` works on the log-probabilities as given: TRL's IPO averages them
    over tokens first (``sequence_log_probs(..., average=True)``).

    Args:
      policy_chosen_logps: ``[...]`` policy log-probabilities of the chosen completions.
      policy_rejected_logps: ``[...]`` policy log-probabilities of the rejected completions.
      reference_chosen_logps: ``[...]`` frozen reference-model log-probabilities of the chosen completions.
      reference_rejected_logps: ``[...]`` of the rejected completions; all four of one shape.
      beta: the temperature (KL strength; IPO's :math:`\tau`), ``> 0``.
      label_smoothing: :math:`e`, the assumed probability that a preference
        label is flipped; ``[0, 1]`` for ``"sigmoid"`` (cDPO), ``[0, 0.5)`` for
        ``"robust"``; must be 0 for ``"hinge"`` and ``"ipo"``, which do not use it.
      loss_type: ``"sigmoid"``, ``"hinge"``, ``"ipo"`` or ``"robust"``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, unknown ``loss_type``, ``beta <= 0``,
        ``label_smoothing`` out of range for the loss type, unknown ``reduction``.
      TypeError: non-float inputs.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> pc, pr = jnp.array([-10.0, -12.0]), jnp.array([-12.0, -10.0])
      >>> rc, rr = jnp.array([-11.0, -11.0]), jnp.array([-11.0, -11.0])
      >>> jaxloss.preference.dpo_loss(pc, pr, rc, rr, beta=0.5, reduction="none").round(5)  # softplus(-/+1)
      Array([0.31326, 1.31326], dtype=float32)
      >>> jaxloss.preference.dpo_loss(pc, pr, rc, rr, beta=0.5, loss_type="ipo", reduction="none")
      Array([1., 9.], dtype=float32)

    References:
      Rafailov et al., "Direct Preference Optimization: Your Language Model is
      Secretly a Reward Model", 2023, https://arxiv.org/abs/2305.18290;
      Mitchell, "A note on DPO with noisy preferences and relationship to IPO"
      (cDPO), 2023, https://ericmitchell.ai/cdpo.pdf;
      Zhao et al., "SLiC-HF: Sequence Likelihood Calibration with Human
      Feedback", 2023, https://arxiv.org/abs/2305.10425;
      Azar et al., "A General Theoretical Paradigm to Understand Learning from
      Human Preferences" (IPO), 2023, https://arxiv.org/abs/2310.12036;
      Chowdhury et al., "Provably Robust DPO: Aligning Language Models with
      Noisy Feedback", 2024, https://arxiv.org/abs/2403.00409;
      TRL ``trl/trainer/dpo_trainer.py`` ``DPOTrainer.dpo_loss``,
      https://github.com/huggingface/trl
    """
    fn = "dpo_loss"
    _checks.choice(fn, "loss_type", loss_type, _DPO_LOSS_TYPES)
    _checks.in_range(fn, "beta", beta, low=0.0, low_open=True)
    if loss_type == "sigmoid":
        _checks.in_range(fn, "label_smoothing", label_smoothing, low=0.0, high=1.0)
    elif loss_type == "robust":
        _checks.in_range(fn, "label_smoothing", label_smoothing, low=0.0, high=0.5, high_open=True)
    elif _checks.is_concrete(label_smoothing) and float(np.asarray(label_smoothing)) != 0.0:
        _checks._fail(ValueError, _checks.message(
            fn, "label_smoothing", f"must be 0 for loss_type={loss_type!r} (only 'sigmoid' and 'robust' use it)",
            repr(label_smoothing)))
    (pc, pr, rc, rr), where = _log_probs(fn, where, [
        ("policy_chosen_logps", policy_chosen_logps), ("policy_rejected_logps", policy_rejected_logps),
        ("reference_chosen_logps", reference_chosen_logps), ("reference_rejected_logps", reference_rejected_logps)])
    b = _param(beta, pc.dtype)
    # TRL's grouping: (policy chosen - policy rejected) - (reference chosen - reference rejected).
    x = (pc - pr) - (rc - rr)
    if loss_type == "sigmoid":
        values = _smoothed_log_sigmoid(b * x, label_smoothing)
    elif loss_type == "hinge":
        values = _select_zero(1.0 - b * x)
    elif loss_type == "ipo":
        values = jnp.square(x - 1.0 / (2.0 * b))
    else:  # robust
        e = _param(label_smoothing, pc.dtype)
        # -log_sigmoid(z) = softplus(-z), log_sigmoid(-z) = -softplus(z).
        values = ((1.0 - e) * jax.nn.softplus(-b * x) - e * jax.nn.softplus(b * x)) / (1.0 - 2.0 * e)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(tags=("preference",))
def simpo_loss(chosen_logps: ArrayLike, rejected_logps: ArrayLike, *, beta: ArrayLike = 2.0,
               gamma_beta_ratio: ArrayLike = 0.5, label_smoothing: ArrayLike = 0.0,
               reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
               where: ArrayLike | None = None) -> Array:
    r"""Simple Preference Optimization: a reference-free, length-normalised margin loss.

    .. math::

        \ell = -(1 - e) \log\sigma(z) - e \log\sigma(-z), \qquad
        z = \beta (c - r) - \gamma, \quad \gamma = \text{gamma\_beta\_ratio} \cdot \beta

    with :math:`c, r` the *length-averaged* log-probabilities of the chosen and
    rejected completions (``sequence_log_probs(..., average=True)``). Per example
    equal to TRL's ``CPOTrainer.cpo_loss`` with ``loss_type="simpo"`` and
    ``simpo_gamma = gamma_beta_ratio * beta`` (TRL's ``simpo_gamma`` is
    :math:`\gamma` itself; this signature follows the SimPO paper's
    ``gamma_beta_ratio``).

    Args:
      chosen_logps: ``[...]`` length-averaged policy log-probabilities of the chosen completions.
      rejected_logps: ``[...]`` of the rejected completions, same shape.
      beta: the reward scale :math:`\beta`, ``> 0``.
      gamma_beta_ratio: the target reward margin divided by ``beta``.
      label_smoothing: :math:`e` in ``[0, 1]``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, ``beta <= 0``, ``label_smoothing`` outside
        ``[0, 1]``, unknown ``reduction``.
      TypeError: non-float inputs.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> # z = 2 * (-1 - (-1.5)) - 1 = 0: the margin is exactly gamma, loss log 2
      >>> jaxloss.preference.simpo_loss(jnp.array([-1.0]), jnp.array([-1.5]), reduction="none").round(5)
      Array([0.69315], dtype=float32)

    References:
      Meng, Xia and Chen, "SimPO: Simple Preference Optimization with a
      Reference-Free Reward", 2024, https://arxiv.org/abs/2405.14734;
      TRL ``trl/trainer/cpo_trainer.py`` ``CPOTrainer.cpo_loss``,
      https://github.com/huggingface/trl
    """
    fn = "simpo_loss"
    _checks.in_range(fn, "beta", beta, low=0.0, low_open=True)
    _checks.in_range(fn, "gamma_beta_ratio", gamma_beta_ratio)
    _checks.in_range(fn, "label_smoothing", label_smoothing, low=0.0, high=1.0)
    (c, r), where = _log_probs(fn, where, [("chosen_logps", chosen_logps), ("rejected_logps", rejected_logps)])
    b = _param(beta, c.dtype)
    # TRL: beta * ((c - r) - simpo_gamma / beta) with simpo_gamma = gamma_beta_ratio * beta.
    z = b * ((c - r) - _param(gamma_beta_ratio, c.dtype))
    values = _smoothed_log_sigmoid(z, label_smoothing)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(tags=("preference",))
def cpo_loss(chosen_logps: ArrayLike, rejected_logps: ArrayLike, *, beta: ArrayLike = 0.1,
             label_smoothing: ArrayLike = 0.0, reduction: Literal["none", "sum", "mean"] = "mean",
             weights: ArrayLike | None = None, where: ArrayLike | None = None) -> Array:
    r"""Contrastive Preference Optimization: the preference term of CPO (reference-free DPO).

    .. math::

        \ell = -(1 - e) \log\sigma(\beta (c - r)) - e \log\sigma(-\beta (c - r))

    Per example equal to the loss TRL's ``CPOTrainer.cpo_loss`` returns with
    ``loss_type="sigmoid"``. CPO's full objective adds the negative
    log-likelihood of the chosen completion (TRL's ``cpo_alpha`` times it);
    that term is the caller's: ``-cpo_alpha * chosen_logps`` (token-averaged
    as TRL does) added to this loss.

    Args:
      chosen_logps: ``[...]`` policy log-probabilities of the chosen completions.
      rejected_logps: ``[...]`` of the rejected completions, same shape.
      beta: the temperature, ``> 0``.
      label_smoothing: :math:`e` in ``[0, 1]``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, ``beta <= 0``, ``label_smoothing`` outside
        ``[0, 1]``, unknown ``reduction``.
      TypeError: non-float inputs.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> # beta (c - r) = 0.1 * 10 = 1: softplus(-1)
      >>> jaxloss.preference.cpo_loss(jnp.array([-20.0]), jnp.array([-30.0]), reduction="none").round(5)
      Array([0.31326], dtype=float32)

    References:
      Xu et al., "Contrastive Preference Optimization: Pushing the Boundaries of
      LLM Performance in Machine Translation", 2024, https://arxiv.org/abs/2401.08417;
      TRL ``trl/trainer/cpo_trainer.py`` ``CPOTrainer.cpo_loss``,
      https://github.com/huggingface/trl
    """
    fn = "cpo_loss"
    _checks.in_range(fn, "beta", beta, low=0.0, low_open=True)
    _checks.in_range(fn, "label_smoothing", label_smoothing, low=0.0, high=1.0)
    (c, r), where = _log_probs(fn, where, [("chosen_logps", chosen_logps), ("rejected_logps", rejected_logps)])
    values = _smoothed_log_sigmoid(_param(beta, c.dtype) * (c - r), label_smoothing)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(tags=("preference",))
def orpo_loss(chosen_logps: ArrayLike, rejected_logps: ArrayLike, *, beta: ArrayLike = 0.1,
              reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
              where: ArrayLike | None = None) -> Array:
    r"""Odds-Ratio Preference Optimization: the odds-ratio term of ORPO.

    .. math::

        \ell = -\beta \log\sigma\Big((c - r) - \big(\log(1 - e^{c}) - \log(1 - e^{r})\big)\Big)

    with :math:`c, r` the *length-averaged* log-probabilities of the chosen and
    rejected completions, so the argument of :math:`\sigma` is the log odds
    ratio :math:`\log \frac{\text{odds}(c)}{\text{odds}(r)}`. This is the negative
    of the term TRL's ``ORPOTrainer.odds_ratio_loss`` returns (TRL subtracts it
    from the NLL of the chosen completion, which is the caller's to add).
    :math:`\log(1 - e^x)` is computed as ``log1mexp`` (accurate near 0 and for
    large ``-x``); a log-probability of exactly 0 (probability 1, infinite
    odds) is clamped just below 0 and gets zero gradient through that term.

    Args:
      chosen_logps: ``[...]`` length-averaged policy log-probabilities (``<= 0``) of the chosen completions.
      rejected_logps: ``[...]`` of the rejected completions, same shape.
      beta: the weight :math:`\lambda` of the odds-ratio term, ``>= 0``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, ``beta < 0``, unknown ``reduction``.
      TypeError: non-float inputs.

    Example:
      >>> import jax.numpy as jnp
      >>> import math
      >>> import jaxloss
      >>> # equal odds: -0.1 * log_sigmoid(0) = 0.1 log 2
      >>> c = jnp.array([math.log(0.5)])
      >>> jaxloss.preference.orpo_loss(c, c, reduction="none").round(6)
      Array([0.069315], dtype=float32)

    References:
      Hong, Lee and Thorne, "ORPO: Monolithic Preference Optimization without
      Reference Model", 2024, https://arxiv.org/abs/2403.07691;
      Maechler, "Accurately Computing log(1 - exp(-|a|))", 2012,
      https://cran.r-project.org/package=Rmpfr/vignettes/log1mexp-note.pdf;
      TRL ``trl/trainer/orpo_trainer.py`` ``ORPOTrainer.odds_ratio_loss``,
      https://github.com/huggingface/trl
    """
    fn = "orpo_loss"
    _checks.in_range(fn, "beta", beta, low=0.0)
    (c, r), where = _log_probs(fn, where, [("chosen_logps", chosen_logps), ("rejected_logps", rejected_logps)],)
    log_odds = (c - r) - (_log1mexp(c) - _log1mexp(r))
    # -log_sigmoid(z) = softplus(-z)
    values = _param(beta, c.dtype) * jax.nn.softplus(-log_odds)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(tags=("preference",))
def kto_loss(policy_logps: ArrayLike, reference_logps: ArrayLike, desirable: ArrayLike, *, beta: ArrayLike = 0.1,
             kl: ArrayLike = 0.0, desirable_weight: ArrayLike = 1.0, undesirable_weight: ArrayLike = 1.0,
             reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
             where: ArrayLike | None = None) -> Array:
    r"""Kahneman-Tversky Optimization loss on unpaired desirable and undesirable completions.

    With the log-ratio :math:`x = \pi - \pi^{\text{ref}}` and :math:`z_0` the
    batch KL estimate (a constant: ``stop_gradient``):

    .. math::

        \ell = \begin{cases}
            \lambda_D \big(1 - \sigma(\beta (x - z_0))\big) & \text{desirable} \\
            \lambda_U \big(1 - \sigma(\beta (z_0 - x))\big) & \text{undesirable}
        \end{cases}

    computed as :math:`\sigma(-\cdot)`. Per example equal to TRL's
    ``KTOTrainer.kto_loss`` (``loss_type="kto"``), whose concatenation of the
    chosen and rejected losses is this loss's values in batch order. TRL
    estimates ``kl`` as ``max(mean(policy_kl_logps - reference_kl_logps), 0)``
    over mismatched (prompt, completion) pairs of the batch; pass that value
    (or 0, as TRL does with ``calculate_KL=False``).

    Args:
      policy_logps: ``[...]`` policy log-probabilities of the completions.
      reference_logps: ``[...]`` reference-model log-probabilities, same shape.
      desirable: ``[...]`` boolean, ``True`` for a desirable (chosen)
        completion, ``False`` for an undesirable one.
      beta: the temperature, ``> 0``.
      kl: the KL estimate :math:`z_0`, a scalar (or broadcastable to ``[...]``);
        no gradient flows into it.
      desirable_weight: :math:`\lambda_D`, ``>= 0``.
      undesirable_weight: :math:`\lambda_U`, ``>= 0``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, ``beta <= 0``, a negative class weight,
        unknown ``reduction``.
      TypeError: non-float log-probabilities or a non-boolean ``desirable``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> policy, reference = jnp.array([-10.0, -10.0]), jnp.array([-10.0, -10.0])
      >>> jaxloss.preference.kto_loss(policy, reference, jnp.array([True, False]), reduction="none")
      Array([0.5, 0.5], dtype=float32)

    References:
      Ethayarajh et al., "KTO: Model Alignment as Prospect Theoretic
      Optimization", 2024, https://arxiv.org/abs/2402.01306;
      TRL ``trl/trainer/kto_trainer.py`` ``KTOTrainer.kto_loss``,
      https://github.com/huggingface/trl
    """
    fn = "kto_loss"
    _checks.in_range(fn, "beta", beta, low=0.0, low_open=True)
    _checks.in_range(fn, "desirable_weight", desirable_weight, low=0.0)
    _checks.in_range(fn, "undesirable_weight", undesirable_weight, low=0.0)
    desirable = jnp.asarray(desirable)
    if desirable.dtype != jnp.bool_:
        _checks._fail(TypeError, _checks.message(
            fn, "desirable", "must be a boolean array (True for a desirable completion; cast with .astype(bool))",
            desirable.dtype))
    (p, r), where = _log_probs(fn, where, [("policy_logps", policy_logps), ("reference_logps", reference_logps)])
    _checks.same_shape(fn, ("policy_logps", p), ("desirable", desirable))
    dtype = p.dtype
    kl = _checks.broadcastable(fn, "kl", jax.lax.stop_gradient(_param(kl, dtype)), p.shape, "the per-example shape")
    # Desirable: 1 - sigmoid(beta (x - kl)) = sigmoid(-beta (x - kl)); undesirable:
    # 1 - sigmoid(beta (kl - x)) = sigmoid(beta (x - kl)). One margin, its sign chosen per example.
    z = _param(beta, dtype) * ((p - r) - kl)
    values = jax.nn.sigmoid(jnp.where(desirable, -z, z))
    values = values * jnp.where(desirable, _param(desirable_weight, dtype), _param(undesirable_weight, dtype))
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)
