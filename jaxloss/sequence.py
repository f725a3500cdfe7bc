"""Sequence losses: connectionist temporal classification (CTC).

:func:`ctc_loss` takes optax's argument layout (batch-major logits with
padding indicators instead of lengths) and returns torch's numbers: the
negative log-likelihood of each label sequence, per sequence ``[B]``, ``inf``
for an alignment that cannot exist, never negative.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _checks, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array

# A finite stand-in for log(0) inside the recursion. Finite so that no
# gradient meets inf - inf; so far below any real path log-probability that
# it never changes a reachable state (exp(_LOG_ZERO - m) underflows to 0),
# and absorbing: _LOG_ZERO + any log-probability rounds back to _LOG_ZERO.
_LOG_ZERO = -1e30


def _logsumexp3(a: Array, b: Array, c: Array) -> Array:
    m = jnp.maximum(jnp.maximum(a, b), c)
    return m + jnp.log(jnp.exp(a - m) + jnp.exp(b - m) + jnp.exp(c - m))


def _shift(x: Array, k: int, fill: Array) -> Array:
    """``x`` moved ``k`` states along the last axis (right if ``k > 0``), filled."""
    pad = jnp.broadcast_to(fill, x.shape[:-1] + (abs(k),))
    if k > 0:
        return jnp.concatenate([pad, x[..., :-k]], axis=-1)
    return jnp.concatenate([x[..., -k:], pad], axis=-1)


def _forward(emit: Array, valid: Array, can_skip: Array, keep: bool) -> tuple[Array, Array | None]:
    """Forward variables: alpha_t(s) = log P(prefix of length t+1 ending in s).

    ``emit`` ``[T, B, S]``, ``valid`` ``[T, B]``, ``can_skip`` ``[B, S]``.
    Returns the last alpha ``[B, S]`` and, if ``keep``, all of them ``[T, B, S]``.
    """
    _, batch, num_states = emit.shape
    log_zero = jnp.asarray(_LOG_ZERO, emit.dtype)
    # Before the first frame all mass sits on a virtual state that feeds s = 0
    # and s = 1: alpha_{-1} = (log 1, log 0, ...) and the recursion run from
    # t = 0 gives alpha_0 = (log y_blank, log y_l1, log 0, ...).
    alpha0 = jnp.full((batch, num_states), log_zero).at[:, 0].set(0.0)

    def step(alpha, xs):
        emit_t, valid_t = xs
        skip = jnp.where(can_skip, _shift(alpha, 2, log_zero), log_zero)
        new = _logsumexp3(alpha, _shift(alpha, 1, log_zero), skip) + emit_t
        alpha = jnp.where(valid_t[:, None], new, alpha)  # padded frames leave alpha unchanged
        return alpha, (alpha if keep else None)

    return jax.lax.scan(step, alpha0, (emit, valid))


def _final_mask(label_lengths: Array, num_states: int) -> Array:
    """The states a complete path may end in: the last label or the blank after it."""
    s = jnp.arange(num_states)[None, :]
    return (s == 2 * label_lengths[:, None]) | ((s == 2 * label_lengths[:, None] - 1) & (label_lengths[:, None] > 0))


def _log_likelihood_from(alpha_last: Array, label_lengths: Array) -> Array:
    log_zero = jnp.asarray(_LOG_ZERO, alpha_last.dtype)
    ends = jnp.where(_final_mask(label_lengths, alpha_last.shape[-1]), alpha_last, log_zero)
    m = jnp.max(ends, axis=-1, keepdims=True)
    return (m + jnp.log(jnp.sum(jnp.exp(ends - m), axis=-1, keepdims=True)))[:, 0]


@jax.custom_vjp
def _ctc_log_likelihood(emit: Array, valid: Array, can_skip: Array, label_lengths: Array) -> Array:
    """log p(labels | inputs) by the CTC forward recursion, ``[B]``.

    ``emit`` ``[T, B, S]``: the log-probability of each extended state's
    symbol at each frame (states of Graves et al. 2006: the labels with blanks
    between and around, ``S = 2N + 1``, blank at even ``s``); ``valid``
    ``[T, B]`` marks real frames (right padding); ``can_skip`` ``[B, S]``
    marks label states reachable from ``s - 2``; ``label_lengths`` ``[B]``.

    The gradient is the forward-backward one (Graves et al. 2006, eq. 14):
    ``d log p / d emit_t(s) = exp(alpha_t(s) + beta_t(s) - log p)``, the
    posterior probability of state ``s`` at frame ``t``, which costs one extra
    scan instead of differentiating through the forward scan.
    """
    alpha_last, _ = _forward(emit, valid, can_skip, keep=False)
    return _log_likelihood_from(alpha_last, label_lengths)


def _ctc_fwd(emit, valid, can_skip, label_lengths):
    alpha_last, alphas = _forward(emit, valid, can_skip, keep=True)
    log_likelihood = _log_likelihood_from(alpha_last, label_lengths)
    return log_likelihood, (emit, valid, can_skip, label_lengths, alphas, log_likelihood)


def _ctc_bwd(residuals, cotangent):
    emit, valid, can_skip, label_lengths, alphas, log_likelihood = residuals
    _, batch, num_states = emit.shape
    log_zero = jnp.asarray(_LOG_ZERO, emit.dtype)
    # beta_t(s) = log P(suffix after frame t | state s at t), emissions after t only.
    beta_last = jnp.where(_final_mask(label_lengths, num_states), jnp.zeros((), emit.dtype), log_zero)
    # Into s at t+1 from s (stay), s-1 (advance), s-2 (skip if allowed at s):
    # backwards, beta_t(s) collects from s, s+1 and s+2 (if s+2 may skip).
    skip_from = _shift(can_skip, -2, jnp.asarray(False))

    def step(beta, xs):
        emit_t, valid_t, alpha_t = xs
        # occupancy at t uses beta_t (the carry), then beta_{t-1} is formed
        # from beta_t and emit_t.
        posterior = jnp.exp(alpha_t + beta - log_likelihood[:, None])
        posterior = jnp.where(valid_t[:, None], posterior, jnp.zeros_like(posterior))
        after = beta + emit_t
        skip = jnp.where(skip_from, _shift(after, -2, log_zero), log_zero)
        previous = _logsumexp3(after, _shift(after, -1, log_zero), skip)
        return jnp.where(valid_t[:, None], previous, beta), posterior

    _, posteriors = jax.lax.scan(step, beta_last, (emit, valid, alphas), reverse=True)
    # An impossible alignment has log p at the log(0) stand-in; the caller
    # replaces its value, and its gradient here is 0 rather than garbage.
    possible = log_likelihood > 0.5 * _LOG_ZERO
    scale = jnp.where(possible, cotangent, jnp.zeros_like(cotangent))
    return scale[None, :, None] * posteriors, None, None, None


_ctc_log_likelihood.defvjp(_ctc_fwd, _ctc_bwd)


def _ctc_states(labels: Array, blank_id: int) -> tuple[Array, Array]:
    """Extended state symbols ``[B, 2N + 1]`` and where the skip is allowed."""
    batch, n = labels.shape
    blanks = jnp.full((batch, n), blank_id, labels.dtype)
    extended = jnp.stack([blanks, labels], axis=-1).reshape(batch, 2 * n)
    extended = jnp.concatenate([extended, jnp.full((batch, 1), blank_id, labels.dtype)], axis=1)
    # The skip s-2 -> s is allowed into a label state whose label differs from
    # the label two states back (Graves et al. 2006, eq. 6-7).
    previous = _shift(extended, 2, jnp.asarray(blank_id, labels.dtype))
    is_label = (jnp.arange(2 * n + 1) % 2 == 1)[None, :]
    return extended, is_label & (extended != previous)


@functools.partial(jax.jit, static_argnames=("blank_id", "zero_infinity", "normalize_by_label_length"))
def _ctc_values(z: Array, lp: Array, y: Array, yp: Array, where: Array | None, *, blank_id: int,
                zero_infinity: bool, normalize_by_label_length: bool) -> Array:
    """Per-sequence CTC values ``[B]`` (jitted so eager calls compile once per shape)."""
    batch, frames, num_classes = z.shape
    dtype = z.dtype
    rows = None if where is None else where[:, None]
    z = _numerics.mask_inputs(None if rows is None else rows[:, :, None], z)
    frame_valid = ~(_numerics.mask_inputs(rows, lp, 0) > 0.5)
    label_valid = ~(_numerics.mask_inputs(rows, yp, 1) > 0.5)

    # Right padding: the valid labels are the first label_length positions.
    label_lengths = jnp.sum(label_valid, axis=1, dtype=jnp.int32)
    frame_lengths = jnp.sum(frame_valid, axis=1, dtype=jnp.int32)
    in_label = jnp.arange(y.shape[1])[None, :] < label_lengths[:, None]
    out_of_range = jnp.any(in_label & ((y < 0) | (y >= num_classes)), axis=1)
    safe_labels = jnp.where(in_label & ~out_of_range[:, None], y, blank_id).astype(jnp.int32)

    log_probs = jax.nn.log_softmax(z, axis=-1)
    extended, can_skip = _ctc_states(safe_labels, blank_id)
    # [T, B, S] log-probability of each state's symbol, time-major for the scans.
    emit = jnp.take_along_axis(log_probs, jnp.broadcast_to(extended[:, None, :], (batch, frames, extended.shape[1])),
                               axis=2)
    nll = -_ctc_log_likelihood(jnp.moveaxis(emit, 1, 0), frame_valid.T, can_skip, label_lengths)
    # Rounding can leave -log p a few ulps below 0 for a certain path; a
    # likelihood is at most 1.
    nll = jnp.where(nll > 0, nll, jnp.zeros_like(nll))

    # A path needs one frame per label plus a blank between equal neighbours.
    repeats = jnp.sum(in_label[:, 1:] & (safe_labels[:, 1:] == safe_labels[:, :-1]), axis=1)
    impossible = frame_lengths < label_lengths + repeats
    fill = jnp.asarray(0.0 if zero_infinity else jnp.inf, dtype)
    values = jnp.where(impossible, fill, nll)
    if normalize_by_label_length:
        values = values / jnp.maximum(label_lengths, 1).astype(dtype)
    values = jnp.where(out_of_range, jnp.asarray(jnp.nan, dtype), values)
    return values


@_registry.builtin(aliases=("ctc",), tags=("sequence",))
def ctc_loss(logits: Any, logit_paddings: Any, labels: Any, label_paddings: Any, *, blank_id: int = 0,
             zero_infinity: bool = False, normalize_by_label_length: bool = False, reduction: str = "mean",
             weights: Any = None, where: Any = None) -> Array:
    r"""Connectionist temporal classification loss, per sequence.

    The negative log-likelihood of the label sequence :math:`l` summed over
    every alignment :math:`\pi` (a frame-level path with blanks and repeats
    that collapses to :math:`l`):

    .. math::

        \ell = -\log \sum_{\pi \in \mathcal B^{-1}(l)} \prod_{t=1}^{T} y_{\pi_t}^t,
        \qquad y^t = \operatorname{softmax}(z^t)

    computed by the forward recursion of Graves et al. (2006) in log space
    with ``lax.scan`` over frames. With ``normalize_by_label_length=True`` the
    value is divided by ``max(label_length, 1)``, so ``reduction="mean"``
    equals torch's ``ctc_loss(reduction="mean")``.

    Unlike ``optax.ctc_loss`` the value is never negative and an impossible
    alignment (fewer valid frames than labels plus repeated neighbours) gives
    ``inf`` as torch does; ``zero_infinity=True`` turns it into ``0`` with
    zero gradient. Every other value and gradient is finite, also for logits of
    magnitude 1e4.

    Padding is right padding, as in optax: ``logit_paddings[b, t] = 1`` marks a
    padded frame (any value above 0.5 counts as padding), ``label_paddings`` the
    same for labels; the valid label length is the number of zeros.

    Args:
      logits: ``[B, T, K]`` float unnormalised scores over ``K`` classes, blank
        included.
      logit_paddings: ``[B, T]`` real, 1 at padded frames, 0 at valid frames.
      labels: ``[B, N]`` integer label ids in ``[0, K)``; values at padded
        positions are ignored. A valid label outside ``[0, K)`` gives NaN.
      label_paddings: ``[B, N]`` real, 1 at padded labels, 0 at valid labels.
      blank_id: the blank class, a Python int in ``[0, K)``.
      zero_infinity: give ``0`` (and zero gradient) instead of ``inf`` for
        impossible alignments.
      normalize_by_label_length: divide each value by ``max(label_length, 1)``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to ``[B]``.
      where: boolean mask broadcastable to ``[B]``.

    Returns:
      ``[B]`` per-sequence values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: wrong ranks or mismatched shapes, ``blank_id`` outside
        ``[0, K)``, non-bool ``zero_infinity``/``normalize_by_label_length``,
        or an unknown ``reduction``.
      TypeError: non-float ``logits`` or non-integer ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.sequence import ctc_loss
      >>> logits = jnp.zeros((1, 3, 3))            # uniform over {blank, a, b}
      >>> labels = jnp.array([[1, 2]])             # "ab"
      >>> loss = ctc_loss(logits, jnp.zeros((1, 3)), labels, jnp.zeros((1, 2)), reduction="none")
      >>> round(float(loss[0]), 4)                 # 5 alignments of 3^3: -log(5/27)
      1.6864
      >>> ctc_loss(logits, jnp.zeros((1, 3)), jnp.array([[1, 1, 1]]), jnp.zeros((1, 3)),
      ...          reduction="none")                # "aaa" needs 5 frames
      Array([inf], dtype=float32)

    References:
      Graves, Fernández, Gomez and Schmidhuber, "Connectionist Temporal
      Classification: Labelling Unsegmented Sequence Data with Recurrent
      Neural Networks", ICML 2006, https://doi.org/10.1145/1143844.1143891;
      torch ``ctc_loss``, https://pytorch.org/docs/stable/generated/torch.nn.CTCLoss.html
    """
    fn = "ctc_loss"
    _checks.choice(fn, "zero_infinity", zero_infinity, (True, False))
    _checks.choice(fn, "normalize_by_label_length", normalize_by_label_length, (True, False))
    z = _checks.floating(fn, "logits", logits)
    lp = _checks.real(fn, "logit_paddings", logit_paddings)
    y = _checks.integer(fn, "labels", labels)
    yp = _checks.real(fn, "label_paddings", label_paddings)
    _checks.shape(fn, "logits", z, (None, None, None), "[batch, frames, classes]")
    batch, frames, num_classes = z.shape
    _checks.shape(fn, "logit_paddings", lp, (batch, frames), f"[batch, frames] = {(batch, frames)}")
    _checks.shape(fn, "labels", y, (batch, None), f"[batch, labels] with batch {batch}")
    _checks.same_shape(fn, ("labels", y), ("label_paddings", yp))
    _checks.integer_option(fn, "blank_id", blank_id, allow_none=False)
    if not 0 <= blank_id < num_classes:
        _checks._fail(ValueError, _checks.message(fn, "blank_id", f"must be in [0, {num_classes})", blank_id))

    dtype = _numerics.compute_dtype(z)
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), (batch,),
                                      "the unreduced loss shape")
    values = _ctc_values(z.astype(dtype), lp, y, yp, where, blank_id=blank_id, zero_infinity=zero_infinity,
                         normalize_by_label_length=normalize_by_label_length)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)
