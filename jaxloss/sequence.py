"""Sequence losses: connectionist temporal classification (CTC).

:func:`ctc_loss` takes optax's argument layout (batch-major logits with
padding indicators instead of lengths) and returns torch's numbers: the
negative log-likelihood of each label sequence, per sequence ``[B]``, ``inf``
for an alignment that cannot exist, never negative.
"""

from __future__ import annotations

import functools
from typing import Literal, overload

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

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


def _logaddexp(a: Array, b: Array) -> Array:
    # log(e^a + e^b) = max + log(1 + e^-|a-b|); two log(0) stand-ins stay one.
    hi = jnp.maximum(a, b)
    return hi + jnp.log(1 + jnp.exp(jnp.minimum(a, b) - hi))


def _logaddexp3(a: Array, b: Array, c: Array) -> Array:
    # With hi >= mid >= lo sorted by min/max: hi + log(1 + e^(mid-hi) + e^(lo-hi)),
    # two exponentials instead of three.
    ab_hi, ab_lo = jnp.maximum(a, b), jnp.minimum(a, b)
    hi = jnp.maximum(ab_hi, c)
    lo = jnp.minimum(ab_lo, c)
    mid = jnp.maximum(ab_lo, jnp.minimum(ab_hi, c))
    return hi + jnp.log(1 + jnp.exp(mid - hi) + jnp.exp(lo - hi))


_Alphas = tuple[Array, Array]  # blank states [..., N + 1], label states [..., N]


@overload
def _forward(blank_emit: Array, label_emit: Array, valid: Array, skip_bias: Array, start: Array,
             keep: Literal[True]) -> tuple[_Alphas, Array, _Alphas]: ...
@overload
def _forward(blank_emit: Array, label_emit: Array, valid: Array, skip_bias: Array, start: Array,
             keep: Literal[False]) -> tuple[_Alphas, Array, None]: ...
def _forward(blank_emit: Array, label_emit: Array, valid: Array, skip_bias: Array, start: Array, keep: bool
             ) -> tuple[_Alphas, Array, _Alphas | None]:
    """Scaled forward variables of the CTC recursion (Graves et al. 2006, eq. 6-7).

    The extended states (blank, l1, blank, l2, ..., blank) are kept as two
    arrays: blank states ``[R, N + 1]`` and label states ``[R, N]``. Blank
    ``n`` is entered from blank ``n`` and label ``n - 1``; label ``n`` from
    label ``n``, blank ``n`` and (the skip) label ``n - 1`` where the two
    labels differ, so blanks need one log-add and labels two.

    ``blank_emit`` ``[T, R]`` and ``label_emit`` ``[T, R, N]`` are the
    frames' log-probabilities of the blank and of each label; ``valid``
    ``[T, R]`` marks real frames (others leave the state unchanged, so padding
    may sit anywhere); ``skip_bias`` ``[R, N]`` is 0 where the skip into label
    ``n`` is allowed and log(0) elsewhere; ``start`` ``[R]`` is the first blank
    of each row (0, or an offset for right-aligned rows).

    The carry is ``alpha_t - c_t`` with ``c_t`` the frame's largest alpha
    (Rabiner's scaling, in log space): it stays near 0, so adding a frame's
    log-probability never loses the digits that a running total of a few
    thousand would (float32 keeps ~3e-4 absolute at 4000). ``sum_t c_t`` is
    kept apart. Returns the last scaled alphas (blank, label), the log scale
    ``[R]`` and, if ``keep``, every scaled alpha ``([T, R, N + 1], [T, R, N])``.
    """
    rows, n = label_emit.shape[1:]
    dtype = label_emit.dtype
    log_zero = jnp.asarray(_LOG_ZERO, dtype)
    no_label = jnp.full((rows, 1), log_zero)
    # Before the first frame all mass sits on blank ``start`` (log 1): the
    # first real frame stays there or advances to the label after it, giving
    # alpha_0 = (log y_blank, log y_l1, log 0, ...) from ``start`` on.
    index = jnp.arange(n + 1, dtype=start.dtype)[None, :]
    blank = jnp.where(index == start[:, None], jnp.zeros((), dtype), log_zero)
    label = jnp.full((rows, n), log_zero)
    scale = jnp.zeros((rows,), dtype)

    def step(carry: tuple[Array, Array, Array],
             xs: tuple[Array, Array, Array]) -> tuple[tuple[Array, Array, Array], _Alphas | None]:
        blank, label, scale = carry
        blank_t, label_t, valid_t = xs
        before = jnp.concatenate([no_label, label], axis=1)          # label n - 1 for blank n
        new_blank = _logaddexp(blank, before) + blank_t[:, None]
        new_label = _logaddexp3(label, blank[:, :n], before[:, :n] + skip_bias) + label_t
        top = jnp.max(new_blank, axis=-1)
        if n:
            top = jnp.maximum(top, jnp.max(new_label, axis=-1))
        keep_t = valid_t[:, None]
        blank = jnp.where(keep_t, new_blank - top[:, None], blank)  # padded frames: unchanged
        label = jnp.where(keep_t, new_label - top[:, None], label)
        scale = scale + jnp.where(valid_t, top, jnp.zeros_like(top))
        return (blank, label, scale), ((blank, label) if keep else None)

    (blank, label, scale), alphas = jax.lax.scan(step, (blank, label, scale), (blank_emit, label_emit, valid))
    return (blank, label), scale, alphas


def _log_likelihood_from(alphas: tuple[Array, Array], scale: Array, label_lengths: Array) -> Array:
    """log p = sum_t c_t + log(alpha(last blank) + alpha(last label))."""
    blank, label = alphas
    log_zero = jnp.asarray(_LOG_ZERO, blank.dtype)
    # A complete path ends in the last label or in the blank after it.
    end_blank = jnp.take_along_axis(blank, label_lengths[:, None], axis=1)[:, 0]
    if label.shape[1]:
        end_label = jnp.take_along_axis(label, jnp.maximum(label_lengths - 1, 0)[:, None], axis=1)[:, 0]
        end_label = jnp.where(label_lengths > 0, end_label, log_zero)
    else:
        end_label = jnp.full_like(end_blank, log_zero)
    return scale + _logaddexp(end_blank, end_label)


def _skip_bias(labels: Array, dtype: jnp.dtype) -> Array:
    """``[B, N]``: 0 where label ``n`` may be entered from label ``n - 1``, log(0) elsewhere.

    The skip over the blank is allowed between different labels (Graves et
    al. 2006, eq. 7); label 0 has no predecessor.
    """
    differs = labels[:, 1:] != labels[:, :-1]
    can_skip = jnp.concatenate([jnp.zeros((labels.shape[0], 1), bool), differs], axis=1)
    return jnp.where(can_skip, jnp.zeros((), dtype), jnp.asarray(_LOG_ZERO, dtype))


def _emissions(log_probs: Array, labels: Array, blank_id: int) -> tuple[Array, Array]:
    """Time-major log-probabilities of the blank ``[T, B]`` and of each label ``[T, B, N]``."""
    batch, frames, _ = log_probs.shape
    n = labels.shape[1]
    label_emit = jnp.take_along_axis(log_probs, jnp.broadcast_to(labels[:, None, :], (batch, frames, n)), axis=2)
    blank_emit = log_probs[:, :, blank_id]
    # A -inf log-probability (a class masked out upstream) becomes log(0).
    log_zero = jnp.asarray(_LOG_ZERO, log_probs.dtype)
    return jnp.maximum(blank_emit, log_zero).T, jnp.moveaxis(jnp.maximum(label_emit, log_zero), 1, 0)


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
    blank_emit, label_emit = _emissions(log_probs, labels, blank_id)
    skip_bias = _skip_bias(labels, log_probs.dtype)
    alphas, scale, _ = _forward(blank_emit, label_emit, valid.T, skip_bias, jnp.zeros_like(label_lengths), keep=False)
    return _log_likelihood_from(alphas, scale, label_lengths)


# What the forward pass keeps for the backward one: the forward variables of
# both directions [T, 2B, ...], the emissions, the frame mask, the labels one-hot
# and the log-likelihood.
_Residuals = tuple[_Alphas, Array, Array, Array, Array, Array]


def _ctc_fwd(log_probs: Array, valid: Array, labels: Array, label_lengths: Array,
             blank_id: int) -> tuple[Array, _Residuals]:
    # The backward variables are the forward variables of the reversed
    # problem: beta_t(s) + log y_t(s) of a row is alpha of the row with frames
    # and extended states flipped, at frame T-1-t and state S-1-s (a flipped
    # row is right-aligned: its blanks start at N - L). Both directions then
    # run as one scan over 2B rows, and flipping back reverses two axes.
    batch, n = labels.shape
    blank_emit, label_emit = _emissions(log_probs, labels, blank_id)
    skip_bias = _skip_bias(labels, log_probs.dtype)
    # Into label n' of the flipped row from n' - 1 is, unflipped, label n from n + 1.
    skip_back = jnp.flip(jnp.concatenate([skip_bias[:, 1:], skip_bias[:, :1]], axis=1), axis=1)
    start = jnp.concatenate([jnp.zeros_like(label_lengths), n - label_lengths])
    alphas, scale, kept = _forward(
        jnp.concatenate([blank_emit, jnp.flip(blank_emit, axis=0)], axis=1),
        jnp.concatenate([label_emit, jnp.flip(label_emit, axis=(0, 2))], axis=1),
        jnp.concatenate([valid.T, jnp.flip(valid.T, axis=0)], axis=1),
        jnp.concatenate([skip_bias, skip_back]), start, keep=True)
    log_likelihood = _log_likelihood_from((alphas[0][:batch], alphas[1][:batch]), scale[:batch], label_lengths)
    one_hot = jax.nn.one_hot(labels, log_probs.shape[-1], dtype=log_probs.dtype)
    return log_likelihood, (kept, blank_emit, label_emit, valid, one_hot, log_likelihood)


def _ctc_bwd(blank_id: int, residuals: _Residuals, cotangent: Array) -> tuple[Array, None, None, None]:
    (blank_alphas, label_alphas), blank_emit, label_emit, valid, one_hot, log_likelihood = residuals
    batch = blank_emit.shape[1]
    # log alpha_t(s) + log beta_t(s), up to one constant per frame (the two
    # scales): alpha + (beta + log y) - log y.
    joint_blank = blank_alphas[:, :batch] + jnp.flip(blank_alphas[:, batch:], axis=(0, 2)) - blank_emit[:, :, None]
    joint_label = label_alphas[:, :batch] + jnp.flip(label_alphas[:, batch:], axis=(0, 2)) - label_emit
    # Every path visits exactly one state per real frame, so the posteriors of
    # a frame sum to 1: normalising per frame removes the scales and the
    # rounding that a division by p would carry over all frames.
    top = jnp.max(joint_blank, axis=-1, keepdims=True)
    if joint_label.shape[-1]:
        top = jnp.maximum(top, jnp.max(joint_label, axis=-1, keepdims=True))
    post_blank = jnp.exp(joint_blank - top)
    post_label = jnp.exp(joint_label - top)
    total = jnp.sum(post_blank, axis=-1, keepdims=True) + jnp.sum(post_label, axis=-1, keepdims=True)
    # An impossible alignment has log p at the log(0) stand-in; the caller
    # replaces its value, and its gradient here is 0 rather than garbage.
    possible = log_likelihood > 0.5 * _LOG_ZERO
    scale = jnp.where(possible, cotangent, jnp.zeros_like(cotangent))
    factor = jnp.where(valid.T[:, :, None], scale[None, :, None] / total, jnp.zeros_like(total))
    # Per class: labels through a one-hot product (much faster on CPU than the
    # scatter-add that transposes a gather), blanks summed.
    grad = jnp.einsum("tbn,bnk->btk", post_label * factor, one_hot)
    blank = (jnp.sum(post_blank, axis=-1, keepdims=True) * factor)[:, :, 0].T
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
def ctc_loss(logits: ArrayLike, logit_paddings: ArrayLike, labels: ArrayLike, label_paddings: ArrayLike, *,
             blank_id: int = 0, zero_infinity: bool = False, normalize_by_label_length: bool = False,
             reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
             where: ArrayLike | None = None) -> Array:
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
