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


def _logaddexp(a: Array, b: Array) -> Array:
    # log(e^a + e^b) = max + log(1 + e^-|a-b|); two log(0) stand-ins stay one.
    hi = jnp.maximum(a, b)
    return hi + jnp.log(1 + jnp.exp(jnp.minimum(a, b) - hi))


# Which axis holds the extended states. The recursion is a chain of small
# elementwise passes, one per frame, and XLA's CPU loops vectorise the last
# (contiguous) axis. Measured (value and gradient, medians on 2 shared CPU
# cores): from 32 rows (both directions of a batch of 16) rows last is faster
# whatever N (0.8-0.95x the time of states last at B=16, N=10, 40, 100; 0.75x
# at B=32, N=10); at 16 rows states last is (0.85x at B=8, N=100; 0.5x at
# B=8, N=10).
_ROWS_LAST_MIN = 32

# Frames between two rescalings of the carry when rows come first, and the
# fewest frames for which that layout is used (see _forward).
_BLOCK = 16
_BLOCKED_MIN_FRAMES = 96
_BLOCKED_MIN_LABELS = 16


def _rows_last(rows: int) -> bool:
    return rows >= _ROWS_LAST_MIN


_Alphas = tuple[Array, Array]  # blank states, label states: [T, N + 1 or N, R] rows last, [T, R, ...] states last


@overload
def _forward(emit: Array, valid: Array, can_skip: Array, start: Array, *, both: bool,
             keep: Literal[True]) -> tuple[_Alphas, Array, _Alphas]: ...
@overload
def _forward(emit: Array, valid: Array, can_skip: Array, start: Array, *, both: bool,
             keep: Literal[False]) -> tuple[_Alphas, Array, None]: ...
def _forward(emit: Array, valid: Array, can_skip: Array, start: Array, *, both: bool, keep: bool
             ) -> tuple[_Alphas, Array, _Alphas | None]:
    """Scaled forward variables of the CTC recursion (Graves et al. 2006, eq. 6-7).

    The extended states (blank, l1, blank, l2, ..., blank) are kept as two
    arrays, blank states (``N + 1``) and label states (``N``), each with the
    ``R`` rows on the last axis (``[states, R]``) if :func:`_rows_last` else
    first (``[R, states]``). Blank ``n`` is entered from blank ``n`` and label
    ``n - 1``; label ``n`` from label ``n``, blank ``n`` and (the skip) label
    ``n - 1`` where the two labels differ. Where the skip is allowed, blank
    ``n`` and label ``n - 1`` are the two terms already log-added into blank
    ``n``, so each state costs one log-add (one exponential, one logarithm).

    ``emit`` ``[T, N + 1, B]`` (rows last) or ``[T, B, N + 1]`` holds the
    frames' log-probabilities of the blank (state 0) and of each label;
    ``valid`` ``[T, B]`` marks real frames (others leave the state unchanged,
    so padding may sit anywhere). With ``both``, the ``R = 2B`` rows are the
    ``B`` rows followed by the same rows reversed in frames and extended
    states (see :func:`_ctc_fwd`). ``can_skip`` (``[N, R]`` or ``[R, N]``) is
    True where the skip into label ``n`` is allowed; ``start`` ``[R]`` is the
    first blank of each row (0, or an offset for right-aligned rows).

    The carry is ``alpha_t - c_t`` with ``c_t`` the frame's largest alpha
    (Rabiner's scaling, in log space): it stays near 0, so adding a frame's
    log-probability never loses the digits that a running total of a few
    thousand would (float32 keeps ~3e-4 absolute at 4000). ``sum_t c_t`` is
    kept apart. With rows first on long inputs, ``c_t`` is instead the
    frame's largest emission plus, every ``_BLOCK`` frames, the carry's
    largest value (see the comment in the body). Returns the last scaled
    alphas (blank, label), the log scale ``[R]`` and, if ``keep``, every
    scaled alpha (a leading ``T`` axis).
    """
    rows = start.shape[0]
    rows_last = _rows_last(rows)
    ax = 0 if rows_last else 1                       # the state axis of one frame's arrays
    n = can_skip.shape[ax]
    dtype = emit.dtype
    log_zero = jnp.asarray(_LOG_ZERO, dtype)

    def states(size: int, fill: Array) -> Array:
        return jnp.full((size, rows) if rows_last else (rows, size), fill)

    def take(x: Array, stop: int, begin: int = 0) -> Array:
        return jax.lax.slice_in_dim(x, begin, stop, axis=ax)

    no_label = states(1, log_zero)
    # Before the first frame all mass sits on blank ``start`` (log 1): the
    # first real frame stays there or advances to the label after it, giving
    # alpha_0 = (log y_blank, log y_l1, log 0, ...) from ``start`` on.
    index = jnp.expand_dims(jnp.arange(n + 1, dtype=start.dtype), 1 - ax)
    blank = jnp.where(index == jnp.expand_dims(start, ax), jnp.zeros((), dtype), log_zero)
    label = states(n, log_zero)
    scale = jnp.zeros((rows,), dtype)
    if both:
        # The reversed rows: frames reversed, the blank first, labels reversed.
        rev = jnp.flip(emit, axis=0)
        rev = jnp.concatenate([jax.lax.slice_in_dim(rev, 0, 1, axis=1 + ax),
                               jnp.flip(jax.lax.slice_in_dim(rev, 1, n + 1, axis=1 + ax), axis=1 + ax)], axis=1 + ax)
        emit = jnp.concatenate([emit, rev], axis=2 - ax)
        valid = jnp.concatenate([valid, jnp.flip(valid, axis=0)], axis=1)

    def advance(blank: Array, label: Array, emit_t: Array, valid_t: Array) -> tuple[Array, Array]:
        into_blank = _logaddexp(blank, jnp.concatenate([no_label, label], axis=ax))  # blank n, label n - 1
        into_label = _logaddexp(label, jnp.where(can_skip, take(into_blank, n), take(blank, n)))
        keep_t = jnp.expand_dims(valid_t, ax)                                        # padded frames: unchanged
        return (jnp.where(keep_t, into_blank + take(emit_t, 1), blank),
                jnp.where(keep_t, into_label + take(emit_t, n + 1, 1), label))

    def largest(blank: Array, label: Array) -> Array:
        top = jnp.max(blank, axis=ax, keepdims=True)
        return jnp.maximum(top, jnp.max(label, axis=ax, keepdims=True)) if n else top

    if rows_last or emit.shape[0] < _BLOCKED_MIN_FRAMES or n < _BLOCKED_MIN_LABELS:
        def step(carry: tuple[Array, Array, Array],
                 xs: tuple[Array, Array]) -> tuple[tuple[Array, Array, Array], _Alphas | None]:
            blank, label, scale = carry
            new_blank, new_label = advance(blank, label, *xs)
            top = jnp.where(jnp.expand_dims(xs[1], ax), largest(new_blank, new_label), jnp.zeros((), dtype))
            blank, label = new_blank - top, new_label - top
            return (blank, label, scale + jnp.squeeze(top, ax)), ((blank, label) if keep else None)

        (blank, label, scale), alphas = jax.lax.scan(step, (blank, label, scale), (emit, valid))
        return (blank, label), scale, alphas

    # Rows first: each frame is shifted by its largest emission, computed for
    # all frames before the loop, and the carry is rescaled by its own maximum
    # once every _BLOCK frames (an inner scan inside an outer one). A frame
    # then runs 9 loops instead of 14 (the two maxima are 4 of them). Against
    # scaling every frame, value and gradient: 8x1000 (N = 100) 0.81-0.88x,
    # 4x1000 0.86x, 8x400 0.97x, 8x100 and 8x200 1.00-1.02x; value alone
    # 0.74-0.89x from 100 frames on. At 50 frames the nested loops took 1.5x
    # as long, and with 5-10 labels up to 1.5x (the maxima are cheap there),
    # hence _BLOCKED_MIN_FRAMES and _BLOCKED_MIN_LABELS.
    # Between rescalings the carry drifts by the block's shortfall of the
    # path's emissions below the largest ones, so it stays near 0. Gradient
    # error against torch in float64 (largest over the gradient's scale):
    # 8x1000, N = 100: 4.5e-5 (7.3e-5 with every frame scaled; optax 2e-3);
    # 4x4000, N = 200: 2.4e-4 (1.0e-4; optax 4.5e-2); 4x150, N = 20: 4.0e-6
    # (1.5e-6). Blocks of 8 gave the same errors, so they come from the
    # shifted emissions' rounding, not the drift. With rows last (the state
    # axis first) neither the shift (1.02x) nor the blocks (1.15-1.2x) gained.
    shift = jnp.where(valid, jnp.max(emit, axis=2), jnp.zeros((), dtype))         # [T, R]
    emit = emit - shift[:, :, None]
    frames = emit.shape[0]
    blocks = -(-frames // _BLOCK)
    emit = jnp.pad(emit, ((0, blocks * _BLOCK - frames), (0, 0), (0, 0))).reshape((blocks, _BLOCK) + emit.shape[1:])
    valid = jnp.pad(valid, ((0, blocks * _BLOCK - frames), (0, 0))).reshape((blocks, _BLOCK) + valid.shape[1:])

    def frame(carry: tuple[Array, Array], xs: tuple[Array, Array]) -> tuple[tuple[Array, Array], _Alphas | None]:
        blank, label = advance(*carry, *xs)
        return (blank, label), ((blank, label) if keep else None)

    def block(carry: tuple[Array, Array, Array],
              xs: tuple[Array, Array]) -> tuple[tuple[Array, Array, Array], _Alphas | None]:
        blank, label, scale = carry
        (blank, label), kept = jax.lax.scan(frame, (blank, label), xs)
        top = largest(blank, label)
        return (blank - top, label - top, scale + jnp.squeeze(top, ax)), kept

    (blank, label, scale), alphas = jax.lax.scan(block, (blank, label, jnp.sum(shift, axis=0)), (emit, valid))
    if alphas is not None:
        alphas = (alphas[0].reshape((-1,) + alphas[0].shape[2:])[:frames],
                  alphas[1].reshape((-1,) + alphas[1].shape[2:])[:frames])
    return (blank, label), scale, alphas


def _log_likelihood_from(alphas: _Alphas, scale: Array, label_lengths: Array, rows_last: bool) -> Array:
    """log p = sum_t c_t + log(alpha(last blank) + alpha(last label)) from the last alphas of ``B`` rows."""
    blank, label = alphas
    ax = 0 if rows_last else 1
    log_zero = jnp.asarray(_LOG_ZERO, blank.dtype)

    def at(x: Array, index: Array) -> Array:
        return jnp.squeeze(jnp.take_along_axis(x, jnp.expand_dims(index, ax), axis=ax), ax)

    # A complete path ends in the last label or in the blank after it.
    end_blank = at(blank, label_lengths)
    if label.shape[ax]:
        end_label = jnp.where(label_lengths > 0, at(label, jnp.maximum(label_lengths - 1, 0)), log_zero)
    else:
        end_label = jnp.full_like(end_blank, log_zero)
    return scale + _logaddexp(end_blank, end_label)


def _can_skip(labels: Array) -> Array:
    """``[B, N]``: True where label ``n`` may be entered from label ``n - 1``.

    The skip over the blank is allowed between different labels (Graves et
    al. 2006, eq. 7); label 0 has no predecessor.
    """
    differs = labels[:, 1:] != labels[:, :-1]
    return jnp.concatenate([jnp.zeros((labels.shape[0], 1), bool), differs], axis=1)


def _symbols(labels: Array, num_classes: int, blank_id: int, dtype: jnp.dtype) -> Array:
    """``[B, N + 1, K]`` one-hot rows of the blank (row 0) and of each label (rows 1 to N)."""
    blank = jnp.full((labels.shape[0], 1), blank_id, labels.dtype)
    return jax.nn.one_hot(jnp.concatenate([blank, labels], axis=1), num_classes, dtype=dtype)


def _emissions(log_probs: Array, symbols: Array, rows_last: bool) -> Array:
    """Time-major log-probabilities of the blank (state 0) and of each label, ``[T, N + 1, B]`` or ``[T, B, N + 1]``.

    A product with the one-hot ``symbols``: every sum has one term ``x * 1``
    and zeros, so it is exact (at full matmul precision), and much faster on
    CPU than a gather.
    """
    # A -inf log-probability (a class masked out upstream) becomes log(0),
    # which also keeps the product's ``x * 0`` terms at 0 (NaN stays NaN).
    log_probs = jnp.maximum(log_probs, jnp.asarray(_LOG_ZERO, log_probs.dtype))
    return jnp.einsum("btk,bsk->tsb" if rows_last else "btk,bsk->tbs", log_probs, symbols,
                      precision=jax.lax.Precision.HIGHEST)


def _log_softmax(logits: Array) -> tuple[Array, Array, Array]:
    """``jax.nn.log_softmax`` over classes, its ``exp(z - max z)`` and their sum (for the softmax in the VJP)."""
    shifted = logits - jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    exp_shifted = jnp.exp(shifted)
    total = jnp.sum(exp_shifted, axis=-1, keepdims=True)
    return shifted - jnp.log(total), exp_shifted, total


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _ctc_log_likelihood(logits: Array, valid: Array, labels: Array, label_lengths: Array, blank_id: int) -> Array:
    """log p(labels | inputs) by the CTC forward recursion, ``[B]``.

    ``logits`` ``[B, T, K]`` (log-softmax is taken over classes), ``valid``
    ``[B, T]`` real frames, ``labels`` ``[B, N]`` in ``[0, K)`` (right padded),
    ``label_lengths`` ``[B]``.

    The gradient is the forward-backward one (Graves et al. 2006, eq. 14-16):
    ``d log p / d log y_t(k)`` is the posterior probability ``gamma_t(k)``
    that frame ``t`` emits ``k``, ``sum over states s with symbol k of
    alpha_t(s) beta_t(s) / p``; through the softmax, ``d log p / d z_t(k) =
    gamma_t(k) - y_t(k)`` on real frames (the posteriors of a frame sum to 1).
    See :func:`_ctc_fwd` for how it is computed.
    """
    rows_last = _rows_last(labels.shape[0])
    log_probs = _log_softmax(logits)[0]
    emit = _emissions(log_probs, _symbols(labels, logits.shape[-1], blank_id, logits.dtype), rows_last)
    can_skip = _can_skip(labels)
    alphas, scale, _ = _forward(emit, valid.T, can_skip.T if rows_last else can_skip, jnp.zeros_like(label_lengths),
                                both=False, keep=False)
    return _log_likelihood_from(alphas, scale, label_lengths, rows_last)


# What the forward pass keeps for the backward one: the forward variables of
# both directions (T first, 2B rows), the emissions, the frame mask, the
# symbols' one-hot rows, the log-likelihood and the softmax's exp(z - max z)
# and sum.
_Residuals = tuple[_Alphas, Array, Array, Array, Array, tuple[Array, Array]]


def _ctc_fwd(logits: Array, valid: Array, labels: Array, label_lengths: Array,
             blank_id: int) -> tuple[Array, _Residuals]:
    # The backward variables are the forward variables of the reversed
    # problem: beta_t(s) + log y_t(s) of a row is alpha of the row with frames
    # and extended states flipped, at frame T-1-t and state S-1-s (a flipped
    # row is right-aligned: its blanks start at N - L). Both directions then
    # run as one scan over 2B rows, and flipping back reverses two axes.
    batch, n = labels.shape
    rows_last = _rows_last(2 * batch)
    log_probs, exp_shifted, exp_total = _log_softmax(logits)
    symbols = _symbols(labels, logits.shape[-1], blank_id, logits.dtype)
    emit = _emissions(log_probs, symbols, rows_last)
    can_skip = _can_skip(labels)
    # Into label n' of the flipped row from n' - 1 is, unflipped, label n from n + 1.
    skip_back = jnp.flip(jnp.concatenate([can_skip[:, 1:], can_skip[:, :1]], axis=1), axis=1)
    can_skip = jnp.concatenate([can_skip, skip_back])
    start = jnp.concatenate([jnp.zeros_like(label_lengths), n - label_lengths])
    alphas, scale, kept = _forward(emit, valid.T, can_skip.T if rows_last else can_skip, start, both=True, keep=True)
    rows_axis = 1 if rows_last else 0
    forward_rows = (jax.lax.slice_in_dim(alphas[0], 0, batch, axis=rows_axis),
                    jax.lax.slice_in_dim(alphas[1], 0, batch, axis=rows_axis))
    log_likelihood = _log_likelihood_from(forward_rows, scale[:batch], label_lengths, rows_last)
    return log_likelihood, (kept, emit, valid, symbols, log_likelihood, (exp_shifted, exp_total))


def _ctc_bwd(blank_id: int, residuals: _Residuals, cotangent: Array) -> tuple[Array, None, None, None]:
    del blank_id  # in the symbols' one-hot rows
    (blank_alphas, label_alphas), emit, valid, symbols, log_likelihood, (exp_shifted, exp_total) = residuals
    batch = cotangent.shape[0]
    # Arrays [T, S, B] (rows last) or [T, B, S], in the layout the recursion ran.
    rows_last = _rows_last(2 * batch)
    ax, rows_ax = (1, 2) if rows_last else (2, 1)

    def joint(alphas: Array, log_y: Array) -> Array:
        # log alpha_t(s) + log beta_t(s), up to one constant per frame (the
        # two scales): alpha + (beta + log y) - log y.
        alpha = jax.lax.slice_in_dim(alphas, 0, batch, axis=rows_ax)
        beta = jnp.flip(jax.lax.slice_in_dim(alphas, batch, 2 * batch, axis=rows_ax), axis=(0, ax))
        return alpha + beta - log_y

    joint_blank = joint(blank_alphas, jax.lax.slice_in_dim(emit, 0, 1, axis=ax))
    joint_label = joint(label_alphas, jax.lax.slice_in_dim(emit, 1, emit.shape[ax], axis=ax))
    # Every path visits exactly one state per real frame, so the posteriors of
    # a frame sum to 1: normalising per frame removes the scales and the
    # rounding that a division by p would carry over all frames.
    top = jnp.max(joint_blank, axis=ax, keepdims=True)
    if joint_label.shape[ax]:
        top = jnp.maximum(top, jnp.max(joint_label, axis=ax, keepdims=True))
    post_blank = jnp.sum(jnp.exp(joint_blank - top), axis=ax, keepdims=True)   # all blank states: one symbol
    post_label = jnp.exp(joint_label - top)
    total = post_blank + jnp.sum(post_label, axis=ax, keepdims=True)
    # An impossible alignment has log p at the log(0) stand-in; the caller
    # replaces its value, and its gradient here is 0 rather than garbage.
    possible = log_likelihood > 0.5 * _LOG_ZERO
    scale = jnp.where(possible, cotangent, jnp.zeros_like(cotangent))
    # [T, B] -> [T, 1, B] or [T, B, 1]
    factor = jnp.where(jnp.expand_dims(valid.T, ax), jnp.expand_dims(scale[None], ax) / total, jnp.zeros_like(total))
    # Per class, gamma through the symbols' one-hot rows (much faster on CPU
    # than the scatter-add that transposes a gather), minus y times the
    # frame's total posterior weight (scale on real frames), y as the
    # softmax's autodiff forms it (exp(z - max z) / sum), in the same order
    # of operations: a single alignment gives autodiff's gradient bit for bit.
    posterior = jnp.concatenate([post_blank, post_label], axis=ax) * factor
    grad = jnp.einsum("tsb,bsk->btk" if rows_last else "tbs,bsk->btk", posterior, symbols,
                      precision=jax.lax.Precision.HIGHEST)
    weight = jnp.where(valid, scale[:, None], jnp.zeros_like(scale[:, None]))
    grad = grad + (-weight[:, :, None] / exp_total) * exp_shifted
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

    nll = -_ctc_log_likelihood(z, frame_valid, safe_labels, label_lengths, blank_id)
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
