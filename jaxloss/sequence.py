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
# arithmetic meets inf - inf; so far below any real path log-probability that
# it never changes a reachable state (exp(_LOG_ZERO - m) underflows to 0),
# and absorbing: _LOG_ZERO + any log-probability rounds back to _LOG_ZERO.
_LOG_ZERO = -1e30


def _shift(x: Array, k: int, fill: Array) -> Array:
    """``x`` moved ``k`` states along the last axis (right if ``k > 0``), filled."""
    pad = jnp.broadcast_to(fill, x.shape[:-1] + (abs(k),))
    if k > 0:
        return jnp.concatenate([pad, x[..., :-k]], axis=-1)
    return jnp.concatenate([x[..., -k:], pad], axis=-1)


def _forward(emit: Array, valid: Array, skip_bias: Array, start: Array, keep: bool
             ) -> tuple[Array, Array, Array | None]:
    """Scaled forward variables of the CTC recursion (Graves et al. 2006, eq. 6-7).

    ``emit`` ``[T, R, S]`` log-probabilities of each extended state's symbol,
    ``valid`` ``[T, R]`` real frames (others leave the state unchanged, so
    padding may sit anywhere), ``skip_bias`` ``[R, S]`` 0 where the skip
    ``s - 2 -> s`` is allowed and log(0) elsewhere, ``start`` ``[R]`` the
    first state of each row (0, or an offset for right-aligned rows).

    The carry is ``alpha_t(s) - c_t`` with ``c_t = max_s alpha_t(s)``
    (Rabiner's scaling, in log space): it stays near 0, so adding a frame's
    log-probability never loses the digits that a running total of a few
    thousand would (float32 keeps ~3e-4 absolute at 4000). ``sum_t c_t`` is
    kept apart. Returns the last scaled alpha ``[R, S]``, the log scale
    ``[R]`` and, if ``keep``, every scaled alpha ``[T, R, S]``.
    """
    _, rows, num_states = emit.shape
    dtype = emit.dtype
    log_zero = jnp.asarray(_LOG_ZERO, dtype)
    # Before the first frame all mass sits on a virtual state that feeds
    # ``start`` and ``start + 1``: the recursion from there gives
    # alpha_0 = (log y_blank, log y_l1, log 0, ...) shifted by ``start``.
    states = jnp.arange(num_states, dtype=start.dtype)[None, :]
    alpha = jnp.where(states == start[:, None], jnp.zeros((), dtype), log_zero)
    scale = jnp.zeros((rows,), dtype)

    def step(carry, xs):
        alpha, scale = carry
        emit_t, valid_t = xs
        advance = _shift(alpha, 1, log_zero)
        skip = _shift(alpha, 2, log_zero) + skip_bias
        m = jnp.maximum(jnp.maximum(alpha, advance), skip)
        # log(e^a + e^b + e^c) = m + log(e^(a-m) + e^(b-m) + e^(c-m)), m = max.
        new = m + jnp.log(jnp.exp(alpha - m) + jnp.exp(advance - m) + jnp.exp(skip - m)) + emit_t
        top = jnp.max(new, axis=-1)
        alpha = jnp.where(valid_t[:, None], new - top[:, None], alpha)  # padded frames: unchanged
        scale = scale + jnp.where(valid_t, top, jnp.zeros_like(top))
        return (alpha, scale), (alpha if keep else None)

    (alpha, scale), alphas = jax.lax.scan(step, (alpha, scale), (emit, valid))
    return alpha, scale, alphas


def _log_likelihood_from(alpha_last: Array, scale: Array, final: Array) -> Array:
    """log p = sum_t c_t + log sum over the final states of the scaled alpha."""
    log_zero = jnp.asarray(_LOG_ZERO, alpha_last.dtype)
    ends = jnp.where(final, alpha_last, log_zero)
    m = jnp.max(ends, axis=-1, keepdims=True)
    return scale + (m + jnp.log(jnp.sum(jnp.exp(ends - m), axis=-1, keepdims=True)))[:, 0]


def _states(labels: Array, label_lengths: Array, blank_id: int, dtype: jnp.dtype) -> tuple[Array, Array, Array]:
    """Extended symbols ``[B, S]`` (``S = 2N + 1``), skip bias ``[B, S]`` and final states ``[B, S]``."""
    batch, n = labels.shape
    blanks = jnp.full((batch, n), blank_id, labels.dtype)
    extended = jnp.stack([blanks, labels], axis=-1).reshape(batch, 2 * n)
    extended = jnp.concatenate([extended, jnp.full((batch, 1), blank_id, labels.dtype)], axis=1)
    # The skip s-2 -> s is allowed into a label state whose label differs from
    # the label two states back (Graves et al. 2006, eq. 6-7).
    previous = _shift(extended, 2, jnp.asarray(blank_id, labels.dtype))
    s = jnp.arange(2 * n + 1, dtype=label_lengths.dtype)[None, :]
    can_skip = (s % 2 == 1) & (extended != previous)
    skip_bias = jnp.where(can_skip, jnp.zeros((), dtype), jnp.asarray(_LOG_ZERO, dtype))
    # A complete path ends in the last label or in the blank after it.
    last = 2 * label_lengths[:, None]
    final = (s == last) | ((s == last - 1) & (label_lengths[:, None] > 0))
    return extended, skip_bias, final


def _emissions(log_probs: Array, labels: Array, blank_id: int) -> Array:
    """``[T, B, S]`` log-probability of each extended state's symbol at each frame."""
    batch, frames, _ = log_probs.shape
    n = labels.shape[1]
    # Gather the N labels once and interleave them with the blank column
    # (a gather of N per frame instead of 2N + 1).
    label_emit = jnp.take_along_axis(log_probs, jnp.broadcast_to(labels[:, None, :], (batch, frames, n)), axis=2)
    blank_emit = log_probs[:, :, blank_id:blank_id + 1]
    emit = jnp.stack([jnp.broadcast_to(blank_emit, label_emit.shape), label_emit], axis=-1).reshape(batch, frames, 2 * n)
    emit = jnp.concatenate([emit, blank_emit], axis=-1)
    # A -inf log-probability (a class masked out upstream) becomes log(0).
    emit = jnp.maximum(emit, jnp.asarray(_LOG_ZERO, emit.dtype))
    return jnp.moveaxis(emit, 1, 0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _ctc_log_likelihood(log_probs: Array, valid: Array, labels: Array, label_lengths: Array, blank_id: int) -> Array:
    """log p(labels | inputs) by the CTC forward recursion, ``[B]``.

    ``log_probs`` ``[B, T, K]`` (log-softmax over classes), ``valid``
    ``[B, T]`` real frames, ``labels`` ``[B, N]`` in ``[0, K)`` (right padded),
    ``label_lengths`` ``[B]``.

    The gradient is the forward-backward one (Graves et al. 2006, eq. 14-16):
    ``d log p / d log y_t(k)`` is the posterior probability that frame ``t``
    emits ``k``, ``sum over states s with symbol k of alpha_t(s) beta_t(s) / p``.
    See :func:`_ctc_fwd` for how it is computed.
    """
    emit = _emissions(log_probs, labels, blank_id)
    _, skip_bias, final = _states(labels, label_lengths, blank_id, log_probs.dtype)
    alpha, scale, _ = _forward(emit, valid.T, skip_bias, jnp.zeros_like(label_lengths), keep=False)
    return _log_likelihood_from(alpha, scale, final)


def _ctc_fwd(log_probs, valid, labels, label_lengths, blank_id):
    # The backward variables are the forward variables of the reversed
    # problem: beta_t(s) + log y_t(s) of a row is alpha of the row with frames
    # and extended states flipped, at frame T-1-t and state S-1-s (a flipped
    # row is right-aligned: its states start at S - S_b). Both directions then
    # run as one scan over 2B rows, and flipping back is a reversal of two axes.
    batch = log_probs.shape[0]
    emit = _emissions(log_probs, labels, blank_id)
    num_states = emit.shape[-1]
    _, skip_bias, final = _states(labels, label_lengths, blank_id, log_probs.dtype)
    # Into state s' of the flipped row from s' - 2 is, unflipped, s from s + 2.
    skip_bias_back = jnp.flip(_shift(skip_bias, -2, jnp.asarray(_LOG_ZERO, skip_bias.dtype)), axis=-1)
    start = jnp.concatenate([jnp.zeros_like(label_lengths), num_states - 1 - 2 * label_lengths])
    both = jnp.concatenate([emit, jnp.flip(emit, axis=(0, 2))], axis=1)
    valid_both = jnp.concatenate([valid.T, jnp.flip(valid.T, axis=0)], axis=1)
    alpha, scale, alphas = _forward(both, valid_both, jnp.concatenate([skip_bias, skip_bias_back]), start, keep=True)
    log_likelihood = _log_likelihood_from(alpha[:batch], scale[:batch], final)
    one_hot = jax.nn.one_hot(labels, log_probs.shape[-1], dtype=log_probs.dtype)
    return log_likelihood, (alphas, emit, valid, one_hot, log_likelihood)


def _ctc_bwd(blank_id, residuals, cotangent):
    alphas, emit, valid, one_hot, log_likelihood = residuals
    batch = emit.shape[1]
    # log alpha_t(s) + log beta_t(s), up to one constant per frame (the two
    # scales): alpha + (beta + log y) - log y.
    joint = alphas[:, :batch] + jnp.flip(alphas[:, batch:], axis=(0, 2)) - emit
    # Every path visits exactly one state per real frame, so the posteriors of
    # a frame sum to 1: normalising per frame removes the scales and the
    # rounding that a division by p would carry over all frames.
    top = jnp.max(joint, axis=-1, keepdims=True)
    posterior = jnp.exp(joint - top)
    posterior = posterior / jnp.sum(posterior, axis=-1, keepdims=True)
    # An impossible alignment has log p at the log(0) stand-in; the caller
    # replaces its value, and its gradient here is 0 rather than garbage.
    possible = log_likelihood > 0.5 * _LOG_ZERO
    scale = jnp.where(possible, cotangent, jnp.zeros_like(cotangent))
    posterior = jnp.where(valid.T[:, :, None], posterior, jnp.zeros_like(posterior)) * scale[None, :, None]
    # Per class: label states through a one-hot product (much faster on CPU
    # than the scatter-add that transposes the gather), blank states summed.
    grad = jnp.einsum("tbn,bnk->btk", posterior[:, :, 1::2], one_hot)
    blank = jnp.sum(posterior[:, :, 0::2], axis=-1).T
    grad = grad.at[:, :, blank_id].add(blank)
    return grad, None, None, None


_ctc_log_likelihood.defvjp(_ctc_fwd, _ctc_bwd)


@functools.partial(jax.jit, static_argnames=("blank_id", "zero_infinity", "normalize_by_label_length"))
def _ctc_values(z: Array, lp: Array, y: Array, yp: Array, where: Array | None, *, blank_id: int,
                zero_infinity: bool, normalize_by_label_length: bool) -> Array:
    """Per-sequence CTC values ``[B]`` (jitted so eager calls compile once per shape)."""
    num_classes = z.shape[-1]
    dtype = z.dtype
    rows = None if where is None else where[:, None]
    lp = _numerics.mask_inputs(rows, lp, 0)
    yp = _numerics.mask_inputs(rows, yp, 1)
    frame_valid = ~(lp > 0.5)
    label_valid = ~(yp > 0.5)
    # Double-where on padded frames too: their logits never reach a value or
    # a gradient, even when they are NaN.
    keep = frame_valid if rows is None else frame_valid & rows
    z = jnp.where(keep[:, :, None], z, jnp.zeros_like(z))

    # Right padding: the valid labels are the first label_length positions.
    label_lengths = jnp.sum(label_valid, axis=1, dtype=jnp.int32)
    frame_lengths = jnp.sum(frame_valid, axis=1, dtype=jnp.int32)
    in_label = jnp.arange(y.shape[1], dtype=jnp.int32)[None, :] < label_lengths[:, None]
    out_of_range = jnp.any(in_label & ((y < 0) | (y >= num_classes)), axis=1)
    safe_labels = jnp.where(in_label & ~out_of_range[:, None], y, blank_id).astype(jnp.int32)

    log_probs = jax.nn.log_softmax(z, axis=-1)
    nll = -_ctc_log_likelihood(log_probs, frame_valid, safe_labels, label_lengths, blank_id)
    # Rounding can leave -log p a few ulps below 0 for a certain path; a
    # likelihood is at most 1. (Written so that NaN passes through.)
    nll = jnp.where(nll < 0, jnp.zeros_like(nll), nll)

    # A path needs one frame per label plus a blank between equal neighbours.
    repeats = jnp.sum(in_label[:, 1:] & (safe_labels[:, 1:] == safe_labels[:, :-1]), axis=1, dtype=jnp.int32)
    impossible = (frame_lengths < label_lengths + repeats) & ~jnp.isnan(nll)
    fill = jnp.asarray(0.0 if zero_infinity else jnp.inf, dtype)
    values = jnp.where(impossible, fill, nll)
    if normalize_by_label_length:
        values = values / jnp.maximum(label_lengths, 1).astype(dtype)
    # A NaN padding indicator or an out-of-range label is a broken input: NaN.
    broken = out_of_range | jnp.any(jnp.isnan(lp), axis=1) | jnp.any(jnp.isnan(yp), axis=1)
    return jnp.where(broken, jnp.asarray(jnp.nan, dtype), values)


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
