"""Ranking and recommendation losses.

Three groups live here:

* **Sampled recommendation losses** (GRU4Rec family): ``bpr_loss``,
  ``top1_loss``, ``bpr_max_loss``, ``top1_max_loss`` take the score of the
  positive item ``[...]`` and the scores of ``K`` sampled negatives
  ``[..., K]``; the unreduced values are per example ``[...]``.
* **Pairs of scores**: ``margin_ranking_loss`` (torch), elementwise.
* **Learning to rank** over ``[..., list_size]``, equal to rax's losses of
  the same name with the default options (the unreduced values equal rax's with
  ``reduce_fn=None`` and ``reduction="mean"`` equals ``reduce_fn=jnp.mean``):

  - listwise, per list ``[...]``: ``ranking_softmax_loss``,
    ``poly1_softmax_loss``, ``unique_softmax_loss``, ``listmle_loss``,
    ``approx_ndcg_loss``;
  - pairwise, per pair ``[..., list_size * list_size]`` (as rax returns them):
    ``pairwise_hinge_loss``, ``pairwise_logistic_loss``,
    ``pairwise_soft_zero_one_loss``, ``pairwise_mse_loss``,
    ``pairwise_qr_loss``, each with ``lambdaweight=None | "dcg" | "dcg2" |
    "labeldiff"`` (rax's lambda weights);
  - pointwise, per item ``[..., list_size]``: ``pointwise_sigmoid_loss``,
    ``pointwise_mse_loss``.

  Listwise and pairwise losses take ``segments`` (rax's): integer ids
  ``[..., list_size]`` that pack several queries in one list; each segment is
  ranked on its own, and a listwise loss then returns ``[..., list_size]``
  with each segment's value at its first valid item.
* **Ranking metrics** (not losses, not registered): ``dcg_metric``,
  ``ndcg_metric``, ``mrr_metric``, ``ap_metric``, ``precision_metric``,
  ``recall_metric``, each ``(scores, labels, *, topn=None, where=None)`` ->
  ``[...]`` per list, jittable and vmappable, equal to rax's metrics.

A NaN score or label at a valid item makes its list NaN (its pairs, for the
pairwise losses), also where rax's comparisons would drop it silently.

**The** ``where`` **of the list losses.** Its rank decides what it marks:

* ``where`` with the rank of ``scores`` marks valid *items* ``[..., list_size]``
  (rax's ``where``). Invalid items take no part in any softmax, sort, rank or
  pair. A list without a valid item is left out of the ``"mean"``.
* ``where`` of lower rank marks whole *lists*: it broadcasts to the batch shape
  ``[...]``, like the ``where`` of every other jaxloss loss on the per-list
  unreduced values.
* For the pairwise losses a ``where`` of shape ``[..., list_size**2]`` marks
  pairs, the positions of the unreduced values.

The sampled losses read ``where`` the same way: of the rank of
``negative_scores`` it marks valid negatives ``[..., K]`` (an example without a
valid negative is left out), of lower rank whole examples ``[...]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array


# ------------------------------------------------------------------ private helpers
def _split_where(fn: str, where: ArrayLike | None, item_shape: tuple[int, ...], items: str,
                 pair_size: int | None = None) -> tuple[Array | None, Array | None, Array | None]:
    """Reads ``where`` as an item, list or pair mask (see the module docstring).

    Returns ``(item_mask [..., n] | None, list_mask [...] | None, pair_mask [..., n*n] | None)``.
    """
    if where is None:
        return None, None, None
    where = _checks.boolean(fn, "where", where)
    rank = len(item_shape)
    if where.ndim > rank:
        _checks._fail(ValueError, _checks.message(
            fn, "where", f"must have rank <= {rank} (items {items} {item_shape}, or lists [...] {item_shape[:-1]})",
            f"shape {where.shape}"))
    if where.ndim == rank:
        if pair_size is not None and where.shape[-1] == pair_size and pair_size != item_shape[-1]:
            pair_shape = item_shape[:-1] + (pair_size,)
            return None, None, _checks.broadcastable(fn, "where", where, pair_shape, "the pairs [..., list_size**2]")
        return _checks.broadcastable(fn, "where", where, item_shape, f"the items {items}"), None, None
    lists = _checks.broadcastable(fn, "where", where, item_shape[:-1],
                                  "the lists [...] (a mask of lower rank than the items masks whole lists)")
    return None, lists, None


def _item_validity(item_mask: Array | None, list_mask: Array | None, item_shape: tuple[int, ...]) -> Array | None:
    """Combines an item and a list mask into one ``[..., n]`` item mask (or ``None``)."""
    if list_mask is None:
        return item_mask
    expanded = jnp.broadcast_to(list_mask[..., None], item_shape)
    return expanded if item_mask is None else expanded & item_mask


def _masked_max(x: Array, valid: Array | None, axis: int = -1) -> Array:
    """``stop_gradient`` of the maximum over valid entries (0 where none is valid)."""
    if valid is None:
        m = jnp.max(x, axis=axis, keepdims=True)
    else:
        m = jnp.max(jnp.where(valid, x, -jnp.inf), axis=axis, keepdims=True)
        # Only "nothing valid" (-inf) becomes 0: a NaN maximum propagates.
        m = jnp.where(m == -jnp.inf, jnp.zeros_like(m), m)
    return jax.lax.stop_gradient(m)


def _shifted_and_log_total(x: Array, valid: Array | None, axis: int = -1) -> tuple[Array, Array]:
    """``x - max`` and ``log sum_{valid} exp(x - max)`` (keepdims), ``max`` over valid entries.

    The log of the sum is 0 with zero gradient where no entry is valid; a NaN
    entry makes it NaN (only a sum ``<= 0`` takes the safe branch).
    """
    m = _masked_max(x, valid, axis)
    shifted = x - m
    if valid is not None:
        shifted = jnp.where(valid, shifted, jnp.zeros_like(shifted))
    e = jnp.exp(shifted)
    if valid is not None:
        e = jnp.where(valid, e, jnp.zeros_like(e))
    total = jnp.sum(e, axis=axis, keepdims=True)
    if valid is None:
        # The maximum's own term is exp(0) = 1, so the sum is at least 1 (or
        # NaN): no guard, and no select for XLA to place beside the reduction.
        return shifted, jnp.log(total)
    positive = ~(total <= 0)
    log_total = jnp.where(positive, jnp.log(jnp.where(positive, total, jnp.ones_like(total))),
                          jnp.zeros_like(total))
    return shifted, log_total


def _masked_logsumexp(x: Array, valid: Array | None, axis: int = -1) -> Array:
    """``log sum_{valid} exp(x)`` along ``axis`` (keepdims); 0 with zero gradient if none is valid."""
    m = _masked_max(x, valid, axis)
    _, log_total = _shifted_and_log_total(x, valid, axis)
    return m + log_total


def _masked_log_softmax(x: Array, valid: Array | None, axis: int = -1) -> Array:
    """Log-softmax over the valid entries; finite (and unused) at invalid ones.

    Computed as ``(x - max) - log sum exp(x - max)``, the rounding of
    ``jax.nn.log_softmax`` (and so of rax), not ``x - logsumexp(x)``.
    """
    shifted, log_total = _shifted_and_log_total(x, valid, axis)
    return shifted - log_total


def _label_nan(labels: Array, valid: Array | None) -> Array:
    """``[...]``: NaN for a list with a NaN label at a valid item, else 0 (added to its value).

    Losses that only compare labels (sorts, ``y_i > y_j``) would otherwise
    drop a NaN label silently.
    """
    bad = jnp.isnan(labels) if valid is None else jnp.isnan(labels) & valid
    return jnp.where(jnp.any(bad, axis=-1), jnp.asarray(jnp.nan, labels.dtype), jnp.zeros((), labels.dtype))


def _masked_mean(values: Array, valid: Array | None, axis: int = -1) -> Array:
    if valid is None:
        return jnp.mean(values, axis=axis)
    total = jnp.sum(jnp.where(valid, values, jnp.zeros_like(values)), axis=axis)
    count = jnp.sum(valid, axis=axis).astype(values.dtype)
    return _numerics.safe_div(total, count)


def _masked_sum(values: Array, valid: Array | None, axis: int = -1) -> Array:
    if valid is None:
        return jnp.sum(values, axis=axis)
    return jnp.sum(jnp.where(valid, values, jnp.zeros_like(values)), axis=axis)


# ---------------------------------------------------------------- sampled (GRU4Rec)
def _sampled_inputs(fn: str, positive_scores: ArrayLike, negative_scores: ArrayLike,
                    where: ArrayLike | None) -> tuple[Array, Array, Array | None, Array | None]:
    pos = _checks.floating(fn, "positive_scores", positive_scores)
    neg = _checks.floating(fn, "negative_scores", negative_scores)
    _checks.rank_at_least(fn, "negative_scores", neg, 1, "[..., num_negatives]")
    if neg.shape[:-1] != pos.shape:
        _checks._fail(ValueError, (
            f"jaxloss.{fn}: positive_scores {pos.shape} and negative_scores {neg.shape} must have shapes "
            "[...] and [..., num_negatives] with the same batch shape [...]"))
    dtype = _numerics.compute_dtype(pos, neg)
    pos, neg = pos.astype(dtype), neg.astype(dtype)
    item_mask, list_mask, _ = _split_where(fn, where, neg.shape, "[..., num_negatives]")
    valid = _item_validity(item_mask, list_mask, neg.shape)
    example_valid = None if valid is None else jnp.any(valid, axis=-1)
    # First half of the double-where: masked inputs become safe values.
    pos = _numerics.mask_inputs(example_valid, pos)
    neg = _numerics.mask_inputs(valid, neg)
    return pos, neg, valid, example_valid


@_registry.builtin(tags=("ranking",))
def bpr_loss(positive_scores: ArrayLike, negative_scores: ArrayLike, *,
             reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
             where: ArrayLike | None = None) -> Array:
    r"""Bayesian personalised ranking (BPR) loss against sampled negatives.

    For an example with positive score :math:`r_i` and negatives
    :math:`r_1, \dots, r_K`:

    .. math::

        \ell = -\frac1K \sum_{j=1}^{K} \log \sigma(r_i - r_j)

    computed with ``log_sigmoid``. This is the per-session form of Hidasi et
    al. (2016) of Rendle et al.'s BPR-Opt criterion (2009).

    Args:
      positive_scores: ``[...]`` float scores of the positive (target) items.
      negative_scores: ``[..., K]`` float scores of ``K`` sampled negatives.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask. Of rank ``negative_scores.ndim`` it marks valid
        negatives ``[..., K]`` (the mean runs over valid negatives; an example
        without one is left out); of lower rank it marks examples ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: ``negative_scores.shape[:-1] != positive_scores.shape``, a
        ``where`` that fits neither reading, or an unknown ``reduction``.
      TypeError: non-float scores or a non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> ranking.bpr_loss(jnp.array([2.0, 0.0]), jnp.array([[0.0, 1.0], [0.0, 0.0]]),
      ...                  reduction="none")
      Array([0.22009484, 0.6931472 ], dtype=float32)

    References:
      Rendle, Freudenthaler, Gantner, Schmidt-Thieme, "BPR: Bayesian
      Personalized Ranking from Implicit Feedback", UAI 2009,
      https://arxiv.org/abs/1205.2618;
      Hidasi, Karatzoglou, Baltrunas, Tikk, "Session-based Recommendations with
      Recurrent Neural Networks", ICLR 2016, https://arxiv.org/abs/1511.06939
    """
    fn = "bpr_loss"
    pos, neg, valid, example_valid = _sampled_inputs(fn, positive_scores, negative_scores, where)
    per_negative = -jax.nn.log_sigmoid(pos[..., None] - neg)
    values = _masked_mean(per_negative, valid)
    return reduce_values(values, reduction=reduction, weights=weights, where=example_valid, fn=fn)


@_registry.builtin(tags=("ranking",))
def top1_loss(positive_scores: ArrayLike, negative_scores: ArrayLike, *,
              reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
              where: ArrayLike | None = None) -> Array:
    r"""TOP1 loss of GRU4Rec: a regularised approximation of the positive's relative rank.

    .. math::

        \ell = \frac1K \sum_{j=1}^{K} \sigma(r_j - r_i) + \sigma(r_j^2)

    with :math:`r_i` the positive score and :math:`r_j` the ``K`` negatives; the
    second term pushes negative scores towards 0.

    Args:
      positive_scores: ``[...]`` float scores of the positive (target) items.
      negative_scores: ``[..., K]`` float scores of ``K`` sampled negatives.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask: valid negatives ``[..., K]`` (rank of
        ``negative_scores``) or examples ``[...]`` (lower rank), as in
        :func:`bpr_loss`.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: ``negative_scores.shape[:-1] != positive_scores.shape``, a
        ``where`` that fits neither reading, or an unknown ``reduction``.
      TypeError: non-float scores or a non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> float(ranking.top1_loss(jnp.array([0.0]), jnp.array([[0.0, 0.0]])))
      1.0

    References:
      Hidasi, Karatzoglou, Baltrunas, Tikk, "Session-based Recommendations with
      Recurrent Neural Networks", ICLR 2016, https://arxiv.org/abs/1511.06939
    """
    fn = "top1_loss"
    pos, neg, valid, example_valid = _sampled_inputs(fn, positive_scores, negative_scores, where)
    per_negative = jax.nn.sigmoid(neg - pos[..., None]) + jax.nn.sigmoid(jnp.square(neg))
    values = _masked_mean(per_negative, valid)
    return reduce_values(values, reduction=reduction, weights=weights, where=example_valid, fn=fn)


@_registry.builtin(tags=("ranking",))
def bpr_max_loss(positive_scores: ArrayLike, negative_scores: ArrayLike, *, regularization: ArrayLike = 1.0,
                 reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                 where: ArrayLike | None = None) -> Array:
    r"""BPR-max loss (GRU4Rec with top-k gains): BPR against a softmax-weighted negative.

    With :math:`s_j = \mathrm{softmax}(r_1, \dots, r_K)_j` over the negatives:

    .. math::

        \ell = -\log \sum_{j=1}^{K} s_j \, \sigma(r_i - r_j)
               + \lambda \sum_{j=1}^{K} s_j \, r_j^2

    The first term is computed in log space,
    :math:`\operatorname{logsumexp}_j(r_j + \log\sigma(r_i - r_j)) -
    \operatorname{logsumexp}_j r_j`, so it stays finite where every
    :math:`\sigma(r_i - r_j)` underflows.

    Args:
      positive_scores: ``[...]`` float scores of the positive (target) items.
      negative_scores: ``[..., K]`` float scores of ``K`` sampled negatives.
      regularization: :math:`\lambda \ge 0`, the weight of the score
        regularisation (``bpreg`` in GRU4Rec); Python float or traced array.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask: valid negatives ``[..., K]`` (rank of
        ``negative_scores``; the softmax runs over valid ones) or examples
        ``[...]`` (lower rank), as in :func:`bpr_loss`.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: ``negative_scores.shape[:-1] != positive_scores.shape``,
        ``regularization < 0``, a ``where`` that fits neither reading, or an
        unknown ``reduction``.
      TypeError: non-float scores or a non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> round(float(ranking.bpr_max_loss(jnp.array([0.0]), jnp.array([[0.0, 0.0]]))), 6)
      0.693147

    References:
      Hidasi, Karatzoglou, "Recurrent Neural Networks with Top-k Gains for
      Session-based Recommendations", CIKM 2018, https://arxiv.org/abs/1706.03847
    """
    fn = "bpr_max_loss"
    _checks.in_range(fn, "regularization", regularization, low=0.0)
    pos, neg, valid, example_valid = _sampled_inputs(fn, positive_scores, negative_scores, where)
    lam = jnp.asarray(regularization, pos.dtype)
    log_s = _masked_log_softmax(neg, valid)
    log_hit = _masked_logsumexp(log_s + jax.nn.log_sigmoid(pos[..., None] - neg), valid)[..., 0]
    penalty = _masked_sum(jnp.exp(log_s) * jnp.square(neg), valid)
    values = -log_hit + lam * penalty
    return reduce_values(values, reduction=reduction, weights=weights, where=example_valid, fn=fn)


@_registry.builtin(tags=("ranking",))
def top1_max_loss(positive_scores: ArrayLike, negative_scores: ArrayLike, *,
                  reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                  where: ArrayLike | None = None) -> Array:
    r"""TOP1-max loss (GRU4Rec with top-k gains): TOP1 weighted by a softmax over negatives.

    .. math::

        \ell = \sum_{j=1}^{K} s_j \left(\sigma(r_j - r_i) + \sigma(r_j^2)\right),
        \qquad s_j = \mathrm{softmax}(r_1, \dots, r_K)_j

    Args:
      positive_scores: ``[...]`` float scores of the positive (target) items.
      negative_scores: ``[..., K]`` float scores of ``K`` sampled negatives.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask: valid negatives ``[..., K]`` (rank of
        ``negative_scores``; the softmax runs over valid ones) or examples
        ``[...]`` (lower rank), as in :func:`bpr_loss`.

    Returns:
      ``[...]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: ``negative_scores.shape[:-1] != positive_scores.shape``, a
        ``where`` that fits neither reading, or an unknown ``reduction``.
      TypeError: non-float scores or a non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> float(ranking.top1_max_loss(jnp.array([0.0]), jnp.array([[0.0, 0.0]])))
      1.0

    References:
      Hidasi, Karatzoglou, "Recurrent Neural Networks with Top-k Gains for
      Session-based Recommendations", CIKM 2018, https://arxiv.org/abs/1706.03847
    """
    fn = "top1_max_loss"
    pos, neg, valid, example_valid = _sampled_inputs(fn, positive_scores, negative_scores, where)
    s = jnp.exp(_masked_log_softmax(neg, valid))
    per_negative = jax.nn.sigmoid(neg - pos[..., None]) + jax.nn.sigmoid(jnp.square(neg))
    values = _masked_sum(s * per_negative, valid)
    return reduce_values(values, reduction=reduction, weights=weights, where=example_valid, fn=fn)


# ------------------------------------------------------------------------ torch pair
@_registry.builtin(tags=("ranking",), labels="sign")
def margin_ranking_loss(x1: ArrayLike, x2: ArrayLike, labels: ArrayLike, *, margin: ArrayLike = 0.0,
                        reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                        where: ArrayLike | None = None) -> Array:
    r"""Margin ranking loss with torch semantics: ``x1`` should rank above ``x2`` where ``labels = 1``.

    .. math::

        \ell = \max(0, -y (x_1 - x_2) + m)

    Equals ``torch.nn.functional.margin_ranking_loss``. The gradient at the
    kink is 0 (JAX's ``relu``).

    Args:
      x1: ``[...]`` float scores of the first items.
      x2: ``[...]`` float scores of the second items, same shape.
      labels: ``[...]`` real labels in ``{-1, +1}``, same shape (``+1``: ``x1``
        should be larger). Not checked; use :func:`jaxloss.checked`.
      margin: the margin :math:`m` (any sign, as in torch; Python float or
        traced array).
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, or an unknown ``reduction``.
      TypeError: non-float ``x1``/``x2`` or a complex ``labels``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> ranking.margin_ranking_loss(jnp.array([1.0, 1.0]), jnp.array([0.0, 0.0]),
      ...                             jnp.array([1.0, -1.0]), margin=0.5, reduction="none")
      Array([0. , 1.5], dtype=float32)

    References:
      PyTorch ``MarginRankingLoss``,
      https://pytorch.org/docs/stable/generated/torch.nn.MarginRankingLoss.html;
      Herbrich, Graepel, Obermayer, "Large Margin Rank Boundaries for Ordinal
      Regression", 2000
    """
    fn = "margin_ranking_loss"
    (a, b, y), where = _checks.elementwise_inputs(fn, where, [("x1", x1), ("x2", x2)], [("labels", labels)])
    m = jnp.asarray(margin, a.dtype)
    values = _numerics.floor_keeping_nan(m - y * (a - b), 0.0)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


# ------------------------------------------------------------------- listwise (rax)
_LAMBDAWEIGHTS = (None, "dcg", "dcg2", "labeldiff")


class _Lists(NamedTuple):
    """Prepared ``[..., n]`` inputs of a list loss (see :func:`_list_inputs`)."""

    scores: Array
    labels: Array
    valid: Array | None  # [..., n] item mask or None
    list_valid: Array | None  # [...] lists with a valid item, or None
    pair_mask: Array | None  # [..., n*n] pair mask or None (pairwise losses)
    segments: Array | None  # [..., n] integer segment ids or None
    group: Array | None  # [..., n, n]: both items valid and in one segment, or None (every pair)
    unit_valid: Array | None  # where of the per-unit values: list_valid, or the first item of each segment

    def segment_group(self) -> Array:
        """``group`` of lists with segments (never None then)."""
        assert self.group is not None, "segments always give a group"
        return self.group


def _list_inputs(fn: str, scores: ArrayLike, labels: ArrayLike, where: ArrayLike | None,
                 segments: ArrayLike | None = None, pairwise: bool = False) -> _Lists:
    """Validates ``[..., list_size]`` scores, labels and segments, and reads ``where``.

    Scores and labels come back in the compute dtype with invalid items
    replaced by 0 (first half of the double-where).
    """
    s = _checks.floating(fn, "scores", scores)
    y = _checks.real(fn, "labels", labels)
    _checks.rank_at_least(fn, "scores", s, 1, "[..., list_size]")
    _checks.same_shape(fn, ("scores", s), ("labels", y))
    if segments is not None:
        segments = _checks.integer(fn, "segments", segments)
        _checks.same_shape(fn, ("scores", s), ("segments", segments))
    dtype = _numerics.compute_dtype(s, y)
    s, y = s.astype(dtype), y.astype(dtype)
    n = s.shape[-1]
    item_mask, list_mask, pair_mask = _split_where(fn, where, s.shape, "[..., list_size]",
                                                   pair_size=n * n if pairwise else None)
    valid = _item_validity(item_mask, list_mask, s.shape)
    if pair_mask is not None:
        pairs = pair_mask.reshape(s.shape[:-1] + (n, n))
        # An item is used if it is in some unmasked pair; others are masked inputs.
        valid = jnp.any(pairs, axis=-1) | jnp.any(pairs, axis=-2)
    list_valid = None if valid is None else jnp.any(valid, axis=-1)
    s = _numerics.mask_inputs(valid, s)
    y = _numerics.mask_inputs(valid, y)
    group = _pair_group(valid, segments)  # never None with segments
    unit_valid = list_valid if segments is None or group is None else _first_of_segment(group, n)
    return _Lists(s, y, valid, list_valid, pair_mask, segments, group, unit_valid)


def _pair_group(valid: Array | None, segments: Array | None) -> Array | None:
    """``[..., n, n]``: items ``i`` and ``j`` both valid and (with segments) in one segment."""
    group = None if valid is None else valid[..., :, None] & valid[..., None, :]
    if segments is not None:
        same = segments[..., :, None] == segments[..., None, :]
        group = same if group is None else group & same
    return group


def _first_of_segment(group: Array, n: int) -> Array:
    """``[..., n]``: the first valid item of each segment (where rax puts a segment's value)."""
    earlier = jnp.broadcast_to(jnp.tril(jnp.ones((n, n), bool), k=-1), group.shape)  # [i, j]: j < i
    diagonal: Array = jnp.diagonal(group, axis1=-2, axis2=-1)  # item i valid
    return diagonal & ~jnp.any(group & earlier, axis=-1)


def _unit_sum(x: Array, lists: _Lists) -> Array:
    """Sum of per-item terms over each list ``[...]``, or each segment (at every item, ``[..., n]``)."""
    if lists.segments is None:
        return _masked_sum(x, lists.valid)
    group = lists.segment_group()
    rows = jnp.broadcast_to(x[..., None, :], group.shape)
    return jnp.sum(jnp.where(group, rows, jnp.zeros_like(rows)), axis=-1)


def _unit_label_nan(lists: _Lists) -> Array:
    """NaN for a list (or segment) with a NaN label at a valid item, else 0."""
    if lists.segments is None:
        return _label_nan(lists.labels, lists.valid)
    group = lists.segment_group()
    bad = jnp.broadcast_to(jnp.isnan(lists.labels)[..., None, :], group.shape) & group
    return jnp.where(jnp.any(bad, axis=-1), jnp.asarray(jnp.nan, lists.labels.dtype),
                     jnp.zeros((), lists.labels.dtype))


def _rows(x: Array) -> Array:
    """``[..., n] -> [..., n, n]`` with ``x[..., j]`` in column ``j`` of every row."""
    return jnp.broadcast_to(x[..., None, :], x.shape + (x.shape[-1],))


def _segment_log_softmax(lists: _Lists) -> Array:
    """Log-softmax of each item's score within its list (or segment), over valid items."""
    if lists.segments is None:
        return _masked_log_softmax(lists.scores, lists.valid)
    return _own_log_softmax(lists.scores, lists.group)


def _own_log_softmax(s: Array, mask: Array | None) -> Array:
    """``[..., n]``: row ``i``'s masked log-softmax of ``s`` at item ``i`` (``mask[..., i, i]`` true).

    The diagonal of ``_masked_log_softmax(_rows(s), mask)``, the same rounding,
    without its other ``[..., n, n]`` entries: ``(s_i - max_i) - log_total_i``
    (unique softmax 1024x64: forward 14.9 -> 6.1 ms, value and gradient 25 -> 13 ms).
    """
    shift = _masked_max(_rows(s), mask)[..., 0]
    _, log_total = _shifted_and_log_total(_rows(s), mask)
    out: Array = (s - shift) - log_total[..., 0]
    return out


def _exact_ranks(x: Array, valid: Array | None, segments: Array | None) -> Array:
    """1-based ranks by decreasing ``x`` (ties: the earlier item first), invalid items last.

    Within the list, or within each segment; this is ``rax.utils.ranks``.
    """
    x = jax.lax.stop_gradient(x)
    n = x.shape[-1]
    invalid = jnp.zeros(x.shape, jnp.int32) if valid is None else (~valid).astype(jnp.int32)
    index = jax.lax.broadcasted_iota(jnp.int32, x.shape, x.ndim - 1)
    if segments is None:
        _, _, order = jax.lax.sort((invalid, -x, index), dimension=x.ndim - 1, num_keys=3)
        return jnp.argsort(order, axis=-1).astype(jnp.int32) + 1
    # Count the items of the same segment that come first in the order
    # (valid first, then by decreasing x, then by position).
    inv_i, inv_j = invalid[..., :, None], invalid[..., None, :]
    x_i, x_j = x[..., :, None], x[..., None, :]
    earlier = jnp.broadcast_to(jnp.tril(jnp.ones((n, n), bool), k=-1), x.shape + (n,))  # [i, j]: j < i
    before = (inv_j < inv_i) | ((inv_j == inv_i) & ((x_j > x_i) | ((x_j == x_i) & earlier)))
    same = segments[..., :, None] == segments[..., None, :]
    return 1 + jnp.sum(before & same, axis=-1, dtype=jnp.int32)


@jax.custom_jvp
def _softmax_xent_unmasked(s: Array, y: Array) -> Array:
    """``-sum_i y_i log_softmax(s)_i`` per list, every item valid (the value of :func:`ranking_softmax_loss`).

    The derivatives are written out, ``sum(y) softmax(s) - y`` for the scores
    and ``-log_softmax(s)`` for the labels: differentiated through the masked
    log-softmax, the backward scaled the labels by the mean's cotangent before
    summing them, which XLA:CPU wrote out as an ``[N, n]`` array (8192x128
    forward+backward: 12 MiB against optax's 8 MiB, 1.06x its time).
    """
    return -jnp.sum(y * _masked_log_softmax(s, None), axis=-1)


@_softmax_xent_unmasked.defjvp
def _softmax_xent_unmasked_jvp(primals: tuple[Array, Array], tangents: tuple[Array, Array]) -> tuple[Array, Array]:
    (s, y), (ds, dy) = primals, tangents
    shifted, log_total = _shifted_and_log_total(s, None)
    # sum(y) log_total - sum(y shifted): the same value, but the [N, n] log_p
    # is not written out for the value's reduction (1024x64 value and
    # gradient 0.90 -> 0.72x optax, 8192x128 0.76 -> 0.61-0.63x in A/B runs).
    value = jnp.sum(y, axis=-1) * log_total[..., 0] - jnp.sum(y * shifted, axis=-1)
    log_p = shifted - log_total
    tangent = jnp.sum(y, axis=-1) * jnp.sum(jnp.exp(log_p) * ds, axis=-1) - jnp.sum(y * ds + log_p * dy, axis=-1)
    return value, tangent


@_registry.builtin(tags=("ranking",))
def ranking_softmax_loss(scores: ArrayLike, labels: ArrayLike, *, segments: ArrayLike | None = None,
                         reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                         where: ArrayLike | None = None) -> Array:
    r"""Listwise softmax cross-entropy of rax (``rax.softmax_loss``), per list.

    .. math::

        \ell(s, y) = -\sum_{i} y_i \log \frac{\exp s_i}{\sum_{j} \exp s_j}

    with both sums over the valid items (of one segment). Labels are used as
    they are (not normalised to a distribution), as rax does by default. The
    log-softmax is ``(s - max) - log sum exp(s - max)``, the rounding of
    ``jax.nn.log_softmax`` and rax.

    Args:
      scores: ``[..., list_size]`` float scores.
      labels: ``[..., list_size]`` real relevance labels (graded or binary).
      segments: ``[..., list_size]`` integer segment ids or ``None``. Items
        with equal ids form one query (several queries packed in one list, as
        rax's ``segments``); the loss treats each segment as its own list.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`);
        ``"mean"`` equals rax's ``reduce_fn=jnp.mean``.
      weights: float per-list weights broadcastable to the unreduced values.
      where: boolean mask. With the rank of ``scores`` it marks valid items
        ``[..., list_size]`` (rax's ``where``; a list without a valid item is
        left out of the ``"mean"``); of lower rank it marks whole lists ``[...]``.

    Returns:
      ``[...]`` per-list values for ``reduction="none"`` (rax's
      ``reduce_fn=None``); with ``segments``, ``[..., list_size]`` holding each
      segment's value at its first valid item (0 elsewhere), as rax. Else a scalar.

    Raises:
      ValueError: ``scores``, ``labels`` or ``segments`` shapes differ, rank 0
        ``scores``, a ``where`` that fits neither reading, or an unknown ``reduction``.
      TypeError: non-float ``scores``, complex ``labels``, non-integer
        ``segments`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> round(float(ranking.ranking_softmax_loss(jnp.array([2.0, 1.0, 3.0]),
      ...                                          jnp.array([1.0, 0.0, 0.0]))), 5)
      1.40761

    References:
      Cao, Qin, Liu, Tsai, Li, "Learning to Rank: From Pairwise Approach to
      Listwise Approach", ICML 2007, https://doi.org/10.1145/1273496.1273513;
      Jagerman, Qin, Wang, Bendersky, Najork, "Rax: Composable Learning-to-Rank
      using JAX", KDD 2022, https://github.com/google/rax
    """
    fn = "ranking_softmax_loss"
    lists = _list_inputs(fn, scores, labels, where, segments)
    if lists.valid is None and lists.segments is None:
        values = _softmax_xent_unmasked(lists.scores, lists.labels)
    else:
        values = -_unit_sum(lists.labels * _segment_log_softmax(lists), lists)
    return reduce_values(values, reduction=reduction, weights=weights, where=lists.unit_valid, fn=fn)


@_registry.builtin(tags=("ranking",))
def poly1_softmax_loss(scores: ArrayLike, labels: ArrayLike, *, epsilon: ArrayLike = 1.0,
                       segments: ArrayLike | None = None, reduction: Literal["none", "sum", "mean"] = "mean",
                       weights: ArrayLike | None = None, where: ArrayLike | None = None) -> Array:
    r"""Poly-1 softmax loss (rax ``poly1_softmax_loss``): softmax cross-entropy plus ``epsilon (1 - p_t)``.

    .. math::

        \ell(s, y) = -\sum_i y_i \log p_i + \epsilon \Big(1 - \sum_i \hat y_i \, p_i\Big),
        \qquad p = \mathrm{softmax}(s), \quad
        \hat y = \frac{y}{\sum_j y_j}

    over the valid items (of one segment); a list without relevant item
    (:math:`\sum_j y_j = 0`) takes :math:`\hat y_i = 1 / n_{valid}`, as rax's
    ``normalize_probabilities``.

    Args:
      scores: ``[..., list_size]`` float scores.
      labels: ``[..., list_size]`` real relevance labels.
      epsilon: the weight :math:`\epsilon` of the poly-1 term (Python float or
        traced array; rax's default 1).
      segments: ``[..., list_size]`` integer segment ids or ``None``. Items
        with equal ids form one query (several queries packed in one list, as
        rax's ``segments``); the loss treats each segment as its own list.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float per-list weights broadcastable to the unreduced values.
      where: boolean mask: valid items ``[..., list_size]`` or whole lists
        ``[...]`` (lower rank), as in :func:`ranking_softmax_loss`.

    Returns:
      ``[...]`` per-list values for ``reduction="none"`` (rax's
      ``reduce_fn=None``); with ``segments``, ``[..., list_size]`` holding each
      segment's value at its first valid item (0 elsewhere), as rax. Else a scalar.

    Raises:
      ValueError: shapes differ, rank 0 ``scores``, a ``where`` that fits
        neither reading, or an unknown ``reduction``.
      TypeError: non-float ``scores``, complex ``labels``, non-integer
        ``segments`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> # log 2 + (1 - 1/2) for two equal scores and one relevant item
      >>> round(float(ranking.poly1_softmax_loss(jnp.array([0.0, 0.0]), jnp.array([1.0, 0.0]))), 5)
      1.19315

    References:
      Leng, Xu, Tan, Li, Chen, Lu, Zhou, "PolyLoss: A Polynomial Expansion
      Perspective of Classification Loss Functions", ICLR 2022,
      https://arxiv.org/abs/2204.12511; rax ``poly1_softmax_loss``,
      https://github.com/google/rax
    """
    fn = "poly1_softmax_loss"
    lists = _list_inputs(fn, scores, labels, where, segments)
    y = lists.labels
    log_p = _segment_log_softmax(lists)
    p = jnp.exp(log_p)
    ce = -_unit_sum(y * log_p, lists)
    label_total = _unit_sum(y, lists)
    # p_t with labels normalised to a distribution; uniform over the valid
    # items when no label is positive (rax's normalize_probabilities).
    pt_labels = _numerics.safe_div(_unit_sum(y * p, lists), label_total)
    pt_uniform = _numerics.safe_div(_unit_sum(p, lists), _unit_sum(jnp.ones_like(p), lists))
    pt = jnp.where(label_total != 0, pt_labels, pt_uniform)
    values = ce + jnp.asarray(epsilon, ce.dtype) * (1.0 - pt)
    return reduce_values(values, reduction=reduction, weights=weights, where=lists.unit_valid, fn=fn)


@_registry.builtin(tags=("ranking",))
def unique_softmax_loss(scores: ArrayLike, labels: ArrayLike, *, segments: ArrayLike | None = None,
                        reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                        where: ArrayLike | None = None) -> Array:
    r"""Unique softmax loss (rax ``unique_softmax_loss``): each item against the items labelled below it.

    .. math::

        \ell(s, y) = -\sum_i (2^{y_i} - 1)
            \log \frac{\exp s_i}{\exp s_i + \sum_{j : y_j < y_i} \exp s_j}

    over the valid items (of one segment), so ties in the labels never compete
    (Zhu and Klabjan 2020).

    Args:
      scores: ``[..., list_size]`` float scores.
      labels: ``[..., list_size]`` real relevance labels (gain ``2**y - 1``).
      segments: ``[..., list_size]`` integer segment ids or ``None``. Items
        with equal ids form one query (several queries packed in one list, as
        rax's ``segments``); the loss treats each segment as its own list.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float per-list weights broadcastable to the unreduced values.
      where: boolean mask: valid items ``[..., list_size]`` or whole lists
        ``[...]`` (lower rank), as in :func:`ranking_softmax_loss`.

    Returns:
      ``[...]`` per-list values for ``reduction="none"`` (rax's
      ``reduce_fn=None``); with ``segments``, ``[..., list_size]`` holding each
      segment's value at its first valid item (0 elsewhere), as rax. Else a scalar.

    Raises:
      ValueError: shapes differ, rank 0 ``scores``, a ``where`` that fits
        neither reading, or an unknown ``reduction``.
      TypeError: non-float ``scores``, complex ``labels``, non-integer
        ``segments`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> # (2^1 - 1) * -log(e^0 / (e^0 + e^0)) = log 2; the label-0 item has gain 0
      >>> round(float(ranking.unique_softmax_loss(jnp.array([0.0, 0.0]), jnp.array([1.0, 0.0]))), 6)
      0.693147

    References:
      Zhu, Klabjan, "Listwise Learning to Rank by Exploring Unique Ratings",
      WSDM 2020, https://arxiv.org/abs/1906.09301; rax ``unique_softmax_loss``,
      https://github.com/google/rax
    """
    fn = "unique_softmax_loss"
    lists = _list_inputs(fn, scores, labels, where, segments)
    s, y = lists.scores, lists.labels
    n = s.shape[-1]
    lower = y[..., None, :] < y[..., :, None]  # [i, j]: y_j < y_i
    eye = jnp.broadcast_to(jnp.eye(n, dtype=bool), lower.shape)
    if lists.group is not None:
        lower = lower & lists.group
    if lists.valid is not None:
        eye = eye & lists.valid[..., :, None]
    log_p = _own_log_softmax(s, lower | eye)
    gains = jnp.exp2(y) - 1.0
    values = -_unit_sum(gains * log_p, lists)
    return reduce_values(values, reduction=reduction, weights=weights, where=lists.unit_valid, fn=fn)


@_registry.builtin(tags=("ranking",))
def listmle_loss(scores: ArrayLike, labels: ArrayLike, *, segments: ArrayLike | None = None,
                 reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                 where: ArrayLike | None = None) -> Array:
    r"""ListMLE: negative Plackett-Luce log-likelihood of the order given by the labels (rax).

    With :math:`\pi` the valid items sorted by decreasing label (ties keep
    their order in the list, as rax without a ``key``):

    .. math::

        \ell(s, y) = -\sum_{k} \Big(s_{\pi_k} - \log \sum_{l \ge k} \exp s_{\pi_l}\Big)

    Without segments the suffix sums are a reverse cumulative ``logsumexp``
    (``O(list_size)`` memory); with segments each item's suffix is found by
    comparing labels within its segment (``O(list_size**2)``). Equals
    ``rax.listmle_loss``. A NaN label at a valid item makes the list NaN.

    Args:
      scores: ``[..., list_size]`` float scores.
      labels: ``[..., list_size]`` real relevance labels; only their order matters.
      segments: ``[..., list_size]`` integer segment ids or ``None``. Items
        with equal ids form one query (several queries packed in one list, as
        rax's ``segments``); the loss treats each segment as its own list.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float per-list weights broadcastable to the unreduced values.
      where: boolean mask. With the rank of ``scores`` it marks valid items
        ``[..., list_size]`` (rax's ``where``; a list without a valid item is
        left out of the ``"mean"``); of lower rank it marks whole lists ``[...]``.

    Returns:
      ``[...]`` per-list values for ``reduction="none"`` (rax's
      ``reduce_fn=None``); with ``segments``, ``[..., list_size]`` holding each
      segment's value at its first valid item (0 elsewhere), as rax. Else a scalar.

    Raises:
      ValueError: ``scores``, ``labels`` or ``segments`` shapes differ, rank 0
        ``scores``, a ``where`` that fits neither reading, or an unknown ``reduction``.
      TypeError: non-float ``scores``, complex ``labels``, non-integer
        ``segments`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> round(float(ranking.listmle_loss(jnp.array([0.0, 0.0]), jnp.array([1.0, 0.0]))), 6)
      0.693147

    References:
      Xia, Liu, Wang, Zhang, Li, "Listwise Approach to Learning to Rank: Theory
      and Algorithm", ICML 2008, https://doi.org/10.1145/1390156.1390306;
      rax ``listmle_loss``, https://github.com/google/rax
    """
    fn = "listmle_loss"
    lists = _list_inputs(fn, scores, labels, where, segments)
    s, y, valid = lists.scores, lists.labels, lists.valid
    if lists.segments is not None:
        n = s.shape[-1]
        # The suffix of item i: items of its segment that do not come before it
        # in the label order (lower label, or equal label and not earlier).
        not_earlier = jnp.broadcast_to(jnp.triu(jnp.ones((n, n), bool)), s.shape + (n,))  # [i, j]: j >= i
        y_i, y_j = y[..., :, None], y[..., None, :]
        suffix = ((y_j < y_i) | ((y_j == y_i) & not_earlier)) & lists.segment_group()
        suffix_lse = _masked_logsumexp(_rows(s), suffix)[..., 0]
        values = -_unit_sum(s - suffix_lse, lists) + _unit_label_nan(lists)
        return reduce_values(values, reduction=reduction, weights=weights, where=lists.unit_valid, fn=fn)
    index = jax.lax.broadcasted_iota(jnp.int32, s.shape, s.ndim - 1)
    # Valid items first, then by decreasing label; the sort is stable, so ties
    # keep their order in the list (rax's sort_by without a key). Without a
    # mask, one key (XLA:CPU's sort: 1024x64 7.3 -> 6.1 ms).
    if valid is None:
        _, order = jax.lax.sort((-y, index), dimension=s.ndim - 1, num_keys=1, is_stable=True)
    else:
        _, _, order = jax.lax.sort(((~valid).astype(jnp.int32), -y, index), dimension=s.ndim - 1, num_keys=2,
                                   is_stable=True)
    s_sorted = jnp.take_along_axis(s, order, axis=-1)
    v_sorted = None if valid is None else jnp.take_along_axis(valid, order, axis=-1)
    # Invalid items sit at the end; the lowest finite value keeps them out of
    # every suffix logsumexp (exp underflows to exactly 0) with finite gradients.
    fill = jnp.finfo(s.dtype).min
    x = s_sorted if v_sorted is None else jnp.where(v_sorted, s_sorted, jnp.asarray(fill, s.dtype))
    # The suffix log-sum-exps as a parallel scan of logaddexp: XLA:CPU runs lax.cumlogsumexp's
    # reduce-window one element at a time (1024x64: 9.8 -> 1.7 ms); the gradient is the same program.
    suffix_lse = jax.lax.associative_scan(jnp.logaddexp, x, reverse=True, axis=s.ndim - 1)
    values = -_masked_sum(s_sorted - suffix_lse, v_sorted) + _label_nan(y, valid)
    return reduce_values(values, reduction=reduction, weights=weights, where=lists.unit_valid, fn=fn)


# ----------------------------------------------------------------------- pairwise
def _lambdaweights(kind: str, lists: _Lists) -> Array:
    """rax's ``labeldiff_lambdaweight``, ``dcg_lambdaweight``, ``dcg2_lambdaweight`` (defaults), ``[..., n, n]``.

    Ranks come from the scores (within segments) and carry no gradient, as in rax.
    """
    y = lists.labels
    n = y.shape[-1]
    if kind == "labeldiff":
        return jnp.abs(y[..., :, None] - y[..., None, :])
    ranks = _exact_ranks(lists.scores, lists.valid, lists.segments).astype(y.dtype)
    gains = jnp.exp2(y) - 1.0
    gain_diff = jnp.abs(gains[..., :, None] - gains[..., None, :])
    if kind == "dcg":
        # |1/log2(1 + r_i) - 1/log2(1 + r_j)|
        discounts = 1.0 / jnp.log2(ranks + 1.0)
        pair_discount = jnp.abs(discounts[..., :, None] - discounts[..., None, :])
    else:
        # dcg2: |d(|r_i - r_j|) - d(|r_i - r_j| + 1)|, 0 for equal ranks (double-where: d(0) = inf)
        gap = jnp.abs(ranks[..., :, None] - ranks[..., None, :])
        nonzero = gap != 0
        safe_gap = jnp.where(nonzero, gap, jnp.ones_like(gap))
        step = jnp.abs(1.0 / jnp.log2(safe_gap + 1.0) - 1.0 / jnp.log2(safe_gap + 2.0))
        pair_discount = jnp.where(nonzero, step, jnp.zeros_like(step))
    return pair_discount * float(n) * gain_diff


def _pairwise(fn: str, scores: ArrayLike, labels: ArrayLike, where: ArrayLike | None, segments: ArrayLike | None,
              lambdaweight: str | None, pair_fn: Callable[[Array, Array], Array], reduction: str,
              weights: ArrayLike | None, every_pair: bool = False) -> Array:
    """rax's ``pairwise_loss``: ``pair_fn(s_i - s_j, y_i - y_j)`` for pairs with ``y_i > y_j``.

    ``every_pair`` counts every pair of valid items (``pairwise_mse_loss``).
    """
    _checks.choice(fn, "lambdaweight", lambdaweight, _LAMBDAWEIGHTS)
    lists = _list_inputs(fn, scores, labels, where, segments, pairwise=True)
    s, y = lists.scores, lists.labels
    n = s.shape[-1]
    pairs_shape = s.shape[:-1] + (n * n,)
    score_diff = s[..., :, None] - s[..., None, :]
    label_diff = y[..., :, None] - y[..., None, :]
    # A NaN label makes its pairs NaN (and counted) instead of silently invalid: each item adds 0, or NaN
    # for a NaN label, to its pairs (two adds per pair; a select over the pairs had XLA:CPU write out the
    # [..., n, n] label differences, their select and a broadcast zero: pairwise MSE 1024x64 forward 2.5x rax).
    nan_label = jnp.isnan(y)
    nan_term = jnp.where(nan_label, y, jnp.zeros_like(y))
    ok = jnp.ones(label_diff.shape, bool) if every_pair else \
        (label_diff > 0) | nan_label[..., :, None] | nan_label[..., None, :]
    if lists.group is not None:
        ok = ok & lists.group
    values = pair_fn(score_diff, label_diff) + nan_term[..., :, None] + nan_term[..., None, :]
    if lambdaweight is not None:
        values = values * _lambdaweights(lambdaweight, lists)
    ok = ok.reshape(pairs_shape)
    if lists.pair_mask is not None:
        ok = ok & lists.pair_mask
    return reduce_values(values.reshape(pairs_shape), reduction=reduction, weights=weights, where=ok, fn=fn)


@_registry.builtin(tags=("ranking",))
def pairwise_hinge_loss(scores: ArrayLike, labels: ArrayLike, *, segments: ArrayLike | None = None,
                        lambdaweight: Literal["dcg", "dcg2", "labeldiff"] | None = None,
                        reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                        where: ArrayLike | None = None) -> Array:
    r"""Pairwise hinge loss (rax ``pairwise_hinge_loss``), one value per pair.

    For every pair of valid items :math:`(i, j)` of one list (segment) with
    :math:`y_i > y_j`:

    .. math::

        \ell_{ij} = \max(0, 1 - (s_i - s_j))

    Memory is ``O(list_size**2)`` per list.

    Args:
      scores: ``[..., list_size]`` float scores.
      labels: ``[..., list_size]`` real relevance labels.
      segments: ``[..., list_size]`` integer segment ids or ``None``. Items
        with equal ids form one query (several queries packed in one list, as
        rax's ``segments``); the loss treats each segment as its own list.
      lambdaweight: ``None``, ``"dcg"``, ``"dcg2"`` or ``"labeldiff"``: multiply
        each pair by rax's ``dcg_lambdaweight`` (LambdaRank:
        :math:`n |g_i - g_j| |d(r_i) - d(r_j)|` with gains :math:`g = 2^y - 1`,
        discounts :math:`d(r) = 1/\log_2(1 + r)` and :math:`r` the ranks by
        score), ``dcg2_lambdaweight`` (LambdaLoss:
        :math:`n |g_i - g_j| |d(|r_i - r_j|) - d(|r_i - r_j| + 1)|`) or
        ``labeldiff_lambdaweight`` (:math:`|y_i - y_j|`), each with rax's
        defaults. Ranks carry no gradient.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to the pairs
        ``[..., list_size * list_size]`` (e.g. ``[..., 1]`` per list).
      where: boolean mask: valid items ``[..., list_size]`` (rank of
        ``scores``), pairs ``[..., list_size**2]``, or whole lists ``[...]``
        (lower rank).

    Returns:
      ``[..., list_size * list_size]`` per-pair values (pair ``(i, j)`` at
      ``i * list_size + j``; pairs that do not count are 0) for
      ``reduction="none"``, as rax's ``reduce_fn=None``; else a scalar. The
      ``"mean"`` runs over the pairs that count, as rax's ``reduce_fn=jnp.mean``
      (0 if there is none).

    Raises:
      ValueError: ``scores``, ``labels`` or ``segments`` shapes differ, rank 0
        ``scores``, an unknown ``lambdaweight``, a ``where`` that fits no
        reading, or an unknown ``reduction``.
      TypeError: non-float ``scores``, complex ``labels``, non-integer
        ``segments`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> ranking.pairwise_hinge_loss(jnp.array([0.5, 0.0]), jnp.array([1.0, 0.0]),
      ...                             reduction="none")
      Array([0. , 0.5, 0. , 0. ], dtype=float32)

    References:
      Herbrich, Graepel, Obermayer, "Large Margin Rank Boundaries for Ordinal
      Regression", 2000; Joachims, "Optimizing Search Engines using
      Clickthrough Data", KDD 2002, https://doi.org/10.1145/775047.775067;
      rax ``pairwise_hinge_loss``, https://github.com/google/rax
    """
    return _pairwise("pairwise_hinge_loss", scores, labels, where, segments, lambdaweight,
                     lambda d, _: jax.nn.relu(1.0 - d), reduction, weights)


@_registry.builtin(tags=("ranking",))
def pairwise_logistic_loss(scores: ArrayLike, labels: ArrayLike, *, segments: ArrayLike | None = None,
                           lambdaweight: Literal["dcg", "dcg2", "labeldiff"] | None = None,
                           reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                           where: ArrayLike | None = None) -> Array:
    r"""Pairwise logistic (RankNet) loss (rax ``pairwise_logistic_loss``), one value per pair.

    For every pair of valid items :math:`(i, j)` of one list (segment) with
    :math:`y_i > y_j`:

    .. math::

        \ell_{ij} = \log(1 + \exp(-(s_i - s_j)))

    computed with ``softplus``; with ``lambdaweight="dcg"`` this is LambdaRank.

    Args:
      scores: ``[..., list_size]`` float scores.
      labels: ``[..., list_size]`` real relevance labels.
      segments: ``[..., list_size]`` integer segment ids or ``None``. Items
        with equal ids form one query (several queries packed in one list, as
        rax's ``segments``); the loss treats each segment as its own list.
      lambdaweight: ``None``, ``"dcg"``, ``"dcg2"`` or ``"labeldiff"``: multiply
        each pair by rax's ``dcg_lambdaweight`` (LambdaRank:
        :math:`n |g_i - g_j| |d(r_i) - d(r_j)|` with gains :math:`g = 2^y - 1`,
        discounts :math:`d(r) = 1/\log_2(1 + r)` and :math:`r` the ranks by
        score), ``dcg2_lambdaweight`` (LambdaLoss:
        :math:`n |g_i - g_j| |d(|r_i - r_j|) - d(|r_i - r_j| + 1)|`) or
        ``labeldiff_lambdaweight`` (:math:`|y_i - y_j|`), each with rax's
        defaults. Ranks carry no gradient.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to the pairs
        ``[..., list_size * list_size]`` (e.g. ``[..., 1]`` per list).
      where: boolean mask: valid items ``[..., list_size]`` (rank of
        ``scores``), pairs ``[..., list_size**2]``, or whole lists ``[...]``
        (lower rank).

    Returns:
      ``[..., list_size * list_size]`` per-pair values (pair ``(i, j)`` at
      ``i * list_size + j``; pairs that do not count are 0) for
      ``reduction="none"``, as rax's ``reduce_fn=None``; else a scalar. The
      ``"mean"`` runs over the pairs that count, as rax's ``reduce_fn=jnp.mean``
      (0 if there is none).

    Raises:
      ValueError: ``scores``, ``labels`` or ``segments`` shapes differ, rank 0
        ``scores``, an unknown ``lambdaweight``, a ``where`` that fits no
        reading, or an unknown ``reduction``.
      TypeError: non-float ``scores``, complex ``labels``, non-integer
        ``segments`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> round(float(ranking.pairwise_logistic_loss(jnp.array([0.0, 0.0]), jnp.array([1.0, 0.0]))), 6)
      0.693147

    References:
      Burges, Shaked, Renshaw, Lazier, Deeds, Hamilton, Hullender, "Learning to
      Rank using Gradient Descent", ICML 2005,
      https://doi.org/10.1145/1102351.1102363; Wang, Li, Golbandi, Bendersky,
      Najork, "The LambdaLoss Framework for Ranking Metric Optimization", CIKM
      2018, https://doi.org/10.1145/3269206.3271784;
      rax ``pairwise_logistic_loss``, https://github.com/google/rax
    """
    return _pairwise("pairwise_logistic_loss", scores, labels, where, segments, lambdaweight,
                     lambda d, _: jax.nn.softplus(-d), reduction, weights)


@_registry.builtin(tags=("ranking",))
def pairwise_soft_zero_one_loss(scores: ArrayLike, labels: ArrayLike, *, segments: ArrayLike | None = None,
                                lambdaweight: Literal["dcg", "dcg2", "labeldiff"] | None = None,
                                reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                                where: ArrayLike | None = None) -> Array:
    r"""Pairwise soft 0-1 loss (rax ``pairwise_soft_zero_one_loss``), one value per pair.

    For every pair of valid items :math:`(i, j)` of one list (segment) with
    :math:`y_i > y_j`, a smooth count of mis-ordered pairs:

    .. math::

        \ell_{ij} = \sigma(-(s_i - s_j))

    Args:
      scores: ``[..., list_size]`` float scores.
      labels: ``[..., list_size]`` real relevance labels.
      segments: ``[..., list_size]`` integer segment ids or ``None``. Items
        with equal ids form one query (several queries packed in one list, as
        rax's ``segments``); the loss treats each segment as its own list.
      lambdaweight: ``None``, ``"dcg"``, ``"dcg2"`` or ``"labeldiff"``: multiply
        each pair by rax's ``dcg_lambdaweight`` (LambdaRank:
        :math:`n |g_i - g_j| |d(r_i) - d(r_j)|` with gains :math:`g = 2^y - 1`,
        discounts :math:`d(r) = 1/\log_2(1 + r)` and :math:`r` the ranks by
        score), ``dcg2_lambdaweight`` (LambdaLoss:
        :math:`n |g_i - g_j| |d(|r_i - r_j|) - d(|r_i - r_j| + 1)|`) or
        ``labeldiff_lambdaweight`` (:math:`|y_i - y_j|`), each with rax's
        defaults. Ranks carry no gradient.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to the pairs
        ``[..., list_size * list_size]`` (e.g. ``[..., 1]`` per list).
      where: boolean mask: valid items ``[..., list_size]`` (rank of
        ``scores``), pairs ``[..., list_size**2]``, or whole lists ``[...]``
        (lower rank).

    Returns:
      ``[..., list_size * list_size]`` per-pair values (pair ``(i, j)`` at
      ``i * list_size + j``; pairs that do not count are 0) for
      ``reduction="none"``, as rax's ``reduce_fn=None``; else a scalar. The
      ``"mean"`` runs over the pairs that count, as rax's ``reduce_fn=jnp.mean``
      (0 if there is none).

    Raises:
      ValueError: ``scores``, ``labels`` or ``segments`` shapes differ, rank 0
        ``scores``, an unknown ``lambdaweight``, a ``where`` that fits no
        reading, or an unknown ``reduction``.
      TypeError: non-float ``scores``, complex ``labels``, non-integer
        ``segments`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> float(ranking.pairwise_soft_zero_one_loss(jnp.array([0.0, 0.0]), jnp.array([1.0, 0.0])))
      0.5

    References:
      Wang, Li, Golbandi, Bendersky, Najork, "The LambdaLoss Framework for
      Ranking Metric Optimization", CIKM 2018,
      https://doi.org/10.1145/3269206.3271784; rax
      ``pairwise_soft_zero_one_loss``, https://github.com/google/rax
    """
    return _pairwise("pairwise_soft_zero_one_loss", scores, labels, where, segments, lambdaweight,
                     lambda d, _: jax.nn.sigmoid(-d), reduction, weights)


@_registry.builtin(tags=("ranking",))
def pairwise_mse_loss(scores: ArrayLike, labels: ArrayLike, *, segments: ArrayLike | None = None,
                      lambdaweight: Literal["dcg", "dcg2", "labeldiff"] | None = None,
                      reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                      where: ArrayLike | None = None) -> Array:
    r"""Pairwise squared error of score and label differences (rax ``pairwise_mse_loss``).

    For *every* pair of valid items :math:`(i, j)` of one list (segment),
    :math:`i = j` included, as rax:

    .. math::

        \ell_{ij} = \big((s_i - s_j) - (y_i - y_j)\big)^2

    Args:
      scores: ``[..., list_size]`` float scores.
      labels: ``[..., list_size]`` real relevance labels.
      segments: ``[..., list_size]`` integer segment ids or ``None``. Items
        with equal ids form one query (several queries packed in one list, as
        rax's ``segments``); the loss treats each segment as its own list.
      lambdaweight: ``None``, ``"dcg"``, ``"dcg2"`` or ``"labeldiff"``: multiply
        each pair by rax's ``dcg_lambdaweight`` (LambdaRank:
        :math:`n |g_i - g_j| |d(r_i) - d(r_j)|` with gains :math:`g = 2^y - 1`,
        discounts :math:`d(r) = 1/\log_2(1 + r)` and :math:`r` the ranks by
        score), ``dcg2_lambdaweight`` (LambdaLoss:
        :math:`n |g_i - g_j| |d(|r_i - r_j|) - d(|r_i - r_j| + 1)|`) or
        ``labeldiff_lambdaweight`` (:math:`|y_i - y_j|`), each with rax's
        defaults. Ranks carry no gradient.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to the pairs
        ``[..., list_size * list_size]`` (e.g. ``[..., 1]`` per list).
      where: boolean mask: valid items ``[..., list_size]`` (rank of
        ``scores``), pairs ``[..., list_size**2]``, or whole lists ``[...]``
        (lower rank).

    Returns:
      ``[..., list_size * list_size]`` per-pair values (pair ``(i, j)`` at
      ``i * list_size + j``; pairs that do not count are 0) for
      ``reduction="none"``, as rax's ``reduce_fn=None``; else a scalar. The
      ``"mean"`` runs over the pairs that count, as rax's ``reduce_fn=jnp.mean``
      (0 if there is none).

    Raises:
      ValueError: ``scores``, ``labels`` or ``segments`` shapes differ, rank 0
        ``scores``, an unknown ``lambdaweight``, a ``where`` that fits no
        reading, or an unknown ``reduction``.
      TypeError: non-float ``scores``, complex ``labels``, non-integer
        ``segments`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> ranking.pairwise_mse_loss(jnp.array([1.0, 0.0]), jnp.array([3.0, 0.0]), reduction="none")
      Array([0., 4., 4., 0.], dtype=float32)

    References:
      Qin, Yan, Zhuang, Tay, Pasumarthi, Wang, Bendersky, Najork, "Are Neural
      Rankers still Outperformed by Gradient Boosted Decision Trees?", ICLR
      2021, https://openreview.net/forum?id=Ut1vF_q_vC; rax
      ``pairwise_mse_loss``, https://github.com/google/rax
    """
    return _pairwise("pairwise_mse_loss", scores, labels, where, segments, lambdaweight,
                     lambda d, t: jnp.square(d - t), reduction, weights, every_pair=True)


@_registry.builtin(tags=("ranking",))
def pairwise_qr_loss(scores: ArrayLike, labels: ArrayLike, *, tau: ArrayLike = 0.5, squared: bool = False,
                     segments: ArrayLike | None = None, lambdaweight: Literal["dcg", "dcg2", "labeldiff"] | None = None,
                     reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                     where: ArrayLike | None = None) -> Array:
    r"""Pairwise quantile-regression loss (rax ``pairwise_qr_loss``), one value per pair.

    For every pair of valid items :math:`(i, j)` of one list (segment) with
    :math:`y_i > y_j`, with :math:`e = (y_i - y_j) - (s_i - s_j)`:

    .. math::

        \ell_{ij} = \tau \max(0, e)^k + (1 - \tau) \max(0, -e)^k,
        \qquad k = 2 \text{ if squared else } 1

    Args:
      scores: ``[..., list_size]`` float scores.
      labels: ``[..., list_size]`` real relevance labels.
      tau: the quantile :math:`\tau \in (0, 1]` (Python float or traced array).
      squared: square the two hinge terms (a Python bool).
      segments: ``[..., list_size]`` integer segment ids or ``None``. Items
        with equal ids form one query (several queries packed in one list, as
        rax's ``segments``); the loss treats each segment as its own list.
      lambdaweight: ``None``, ``"dcg"``, ``"dcg2"`` or ``"labeldiff"``: multiply
        each pair by rax's ``dcg_lambdaweight`` (LambdaRank:
        :math:`n |g_i - g_j| |d(r_i) - d(r_j)|` with gains :math:`g = 2^y - 1`,
        discounts :math:`d(r) = 1/\log_2(1 + r)` and :math:`r` the ranks by
        score), ``dcg2_lambdaweight`` (LambdaLoss:
        :math:`n |g_i - g_j| |d(|r_i - r_j|) - d(|r_i - r_j| + 1)|`) or
        ``labeldiff_lambdaweight`` (:math:`|y_i - y_j|`), each with rax's
        defaults. Ranks carry no gradient.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to the pairs
        ``[..., list_size * list_size]`` (e.g. ``[..., 1]`` per list).
      where: boolean mask: valid items ``[..., list_size]`` (rank of
        ``scores``), pairs ``[..., list_size**2]``, or whole lists ``[...]``
        (lower rank).

    Returns:
      ``[..., list_size * list_size]`` per-pair values (pair ``(i, j)`` at
      ``i * list_size + j``; pairs that do not count are 0) for
      ``reduction="none"``, as rax's ``reduce_fn=None``; else a scalar. The
      ``"mean"`` runs over the pairs that count, as rax's ``reduce_fn=jnp.mean``
      (0 if there is none).

    Raises:
      ValueError: ``scores``, ``labels`` or ``segments`` shapes differ, rank 0
        ``scores``, ``tau`` outside ``(0, 1]``, a non-bool ``squared``, an
        unknown ``lambdaweight``, a ``where`` that fits no reading, or an
        unknown ``reduction``.
      TypeError: non-float ``scores``, complex ``labels``, non-integer
        ``segments`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> # e = 2 - 0.5: tau * 1.5
      >>> float(ranking.pairwise_qr_loss(jnp.array([0.5, 0.0]), jnp.array([2.0, 0.0]), tau=0.8))
      1.2000000476837158

    References:
      Koenker, Bassett, "Regression Quantiles", Econometrica 1978,
      https://doi.org/10.2307/1913643; rax ``pairwise_qr_loss``,
      https://github.com/google/rax
    """
    fn = "pairwise_qr_loss"
    _checks.in_range(fn, "tau", tau, low=0.0, high=1.0, low_open=True)
    _checks.choice(fn, "squared", squared, (True, False))

    def pair_fn(d: Array, t: Array) -> Array:
        dtype = d.dtype
        under = jax.nn.relu(t - d)
        over = jax.nn.relu(d - t)
        if squared:
            under, over = jnp.square(under), jnp.square(over)
        q = jnp.asarray(tau, dtype)
        return q * under + (1.0 - q) * over

    return _pairwise(fn, scores, labels, where, segments, lambdaweight, pair_fn, reduction, weights)


# ---------------------------------------------------------------------- pointwise
@_registry.builtin(tags=("ranking",))
def pointwise_sigmoid_loss(scores: ArrayLike, labels: ArrayLike, *, reduction: Literal["none", "sum", "mean"] = "mean",
                           weights: ArrayLike | None = None, where: ArrayLike | None = None) -> Array:
    r"""Pointwise sigmoid cross-entropy of each item's score (rax ``pointwise_sigmoid_loss``).

    .. math::

        \ell_i = -\bar y_i \log \sigma(s_i) - (1 - \bar y_i) \log(1 - \sigma(s_i)),
        \qquad \bar y_i = \min(\max(y_i, 0), 1)

    computed as :math:`\max(s_i, 0) - s_i \bar y_i + \log(1 + e^{-|s_i|})`
    (graded labels above 1 count as relevant, as rax clips them).

    Args:
      scores: ``[..., list_size]`` float scores.
      labels: ``[..., list_size]`` real labels, same shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`);
        ``"mean"`` is over the valid items, as rax's ``reduce_fn=jnp.mean``.
      weights: float weights broadcastable to ``[..., list_size]``.
      where: boolean mask: valid items ``[..., list_size]`` (rank of
        ``scores``) or whole lists ``[...]`` (lower rank).

    Returns:
      ``[..., list_size]`` per-item values for ``reduction="none"`` (0 at
      invalid items), else a scalar.

    Raises:
      ValueError: shapes differ, rank 0 ``scores``, a ``where`` that fits
        neither reading, or an unknown ``reduction``.
      TypeError: non-float ``scores``, complex ``labels`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> round(float(ranking.pointwise_sigmoid_loss(jnp.array([0.0, 0.0]), jnp.array([2.0, 0.0]))), 6)
      0.693147

    References:
      Jagerman, Qin, Wang, Bendersky, Najork, "Rax: Composable Learning-to-Rank
      using JAX", KDD 2022, https://github.com/google/rax
    """
    fn = "pointwise_sigmoid_loss"
    lists = _list_inputs(fn, scores, labels, where)
    s, y = lists.scores, jnp.clip(lists.labels, 0.0, 1.0)
    # -y log sigma(s) - (1 - y) log sigma(-s) = relu(s) - s y + log1p(exp(-|s|)), with the binary
    # cross-entropy's written-out derivative (value and gradient against rax: 1024x64 1.12 -> 0.98x,
    # 8192x128 1.12 -> 0.82x).
    values = _numerics.bce_with_logits(s, y)
    return reduce_values(values, reduction=reduction, weights=weights, where=lists.valid, fn=fn)


@_registry.builtin(tags=("ranking",))
def pointwise_mse_loss(scores: ArrayLike, labels: ArrayLike, *, reduction: Literal["none", "sum", "mean"] = "mean",
                       weights: ArrayLike | None = None, where: ArrayLike | None = None) -> Array:
    r"""Pointwise squared error of each item's score against its label (rax ``pointwise_mse_loss``).

    .. math::

        \ell_i = (s_i - y_i)^2

    Args:
      scores: ``[..., list_size]`` float scores.
      labels: ``[..., list_size]`` real labels, same shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`);
        ``"mean"`` is over the valid items, as rax's ``reduce_fn=jnp.mean``.
      weights: float weights broadcastable to ``[..., list_size]``.
      where: boolean mask: valid items ``[..., list_size]`` (rank of
        ``scores``) or whole lists ``[...]`` (lower rank).

    Returns:
      ``[..., list_size]`` per-item values for ``reduction="none"`` (0 at
      invalid items), else a scalar.

    Raises:
      ValueError: shapes differ, rank 0 ``scores``, a ``where`` that fits
        neither reading, or an unknown ``reduction``.
      TypeError: non-float ``scores``, complex ``labels`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> ranking.pointwise_mse_loss(jnp.array([[1.0, 0.0]]), jnp.array([[3.0, 0.0]]), reduction="none")
      Array([[4., 0.]], dtype=float32)

    References:
      Jagerman, Qin, Wang, Bendersky, Najork, "Rax: Composable Learning-to-Rank
      using JAX", KDD 2022, https://github.com/google/rax
    """
    fn = "pointwise_mse_loss"
    lists = _list_inputs(fn, scores, labels, where)
    values = jnp.square(lists.scores - lists.labels)
    return reduce_values(values, reduction=reduction, weights=weights, where=lists.valid, fn=fn)


@_registry.builtin(tags=("ranking",))
def approx_ndcg_loss(scores: ArrayLike, labels: ArrayLike, *, temperature: ArrayLike = 1.0,
                     segments: ArrayLike | None = None, reduction: Literal["none", "sum", "mean"] = "mean",
                     weights: ArrayLike | None = None, where: ArrayLike | None = None) -> Array:
    r"""ApproxNDCG: minus NDCG with sigmoid-smoothed ranks (rax ``approx_t12n(ndcg_metric)``).

    .. math::

        \hat r_i = 1 + \sum_{j \ne i} \sigma\Big(\frac{s_j - s_i}{T}\Big), \qquad
        \ell = -\frac{1}{\mathrm{IDCG}(y)} \sum_i \frac{2^{y_i} - 1}{\log_2(1 + \hat r_i)}

    with sums over valid items (of one segment) and :math:`\mathrm{IDCG}` the
    DCG of the items sorted by label (replaced by 1 when it is 0, so such
    lists give 0). Values lie in ``[-1, 0]`` for non-negative labels. Memory is
    ``O(list_size**2)`` per list.

    Args:
      scores: ``[..., list_size]`` float scores.
      labels: ``[..., list_size]`` real relevance labels (gain ``2**y - 1``).
      temperature: :math:`T > 0` of the sigmoid; smaller is closer to exact
        ranks (Python float or traced array).
      segments: ``[..., list_size]`` integer segment ids or ``None``. Items
        with equal ids form one query (several queries packed in one list, as
        rax's ``segments``); the loss treats each segment as its own list.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float per-list weights broadcastable to the unreduced values.
      where: boolean mask. With the rank of ``scores`` it marks valid items
        ``[..., list_size]`` (rax's ``where``; a list without a valid item is
        left out of the ``"mean"``); of lower rank it marks whole lists ``[...]``.

    Returns:
      ``[...]`` per-list values for ``reduction="none"`` (rax's
      ``reduce_fn=None``); with ``segments``, ``[..., list_size]`` holding each
      segment's value at its first valid item (0 elsewhere), as rax. Else a scalar.

    Raises:
      ValueError: ``scores``, ``labels`` or ``segments`` shapes differ, rank 0
        ``scores``, ``temperature <= 0``, a ``where`` that fits neither
        reading, or an unknown ``reduction``.
      TypeError: non-float ``scores``, complex ``labels``, non-integer
        ``segments`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> round(float(ranking.approx_ndcg_loss(jnp.array([0.0, 1.0, 3.0, 2.0]),
      ...                                      jnp.array([0.0, 0.0, 1.0, 2.0]))), 5)
      -0.71789

    References:
      Qin, Liu, Li, "A General Approximation Framework for Direct Optimization
      of Information Retrieval Measures", Information Retrieval 2010,
      https://doi.org/10.1007/s10791-009-9124-x;
      Järvelin, Kekäläinen, "Cumulated Gain-based Evaluation of IR Techniques",
      TOIS 2002; rax ``approx_t12n``, https://github.com/google/rax
    """
    fn = "approx_ndcg_loss"
    _checks.in_range(fn, "temperature", temperature, low=0.0, low_open=True)
    lists = _list_inputs(fn, scores, labels, where, segments)
    s, y = lists.scores, lists.labels
    n = s.shape[-1]
    t = jnp.asarray(temperature, s.dtype)
    # Smoothed 1-based ranks: 1 + sum over other valid items (of the segment) of sigma((s_j - s_i) / T).
    step = jax.nn.sigmoid((s[..., None, :] - s[..., :, None]) / t)
    others = jnp.broadcast_to(~jnp.eye(n, dtype=bool), step.shape)
    if lists.group is not None:
        others = others & lists.group
    ranks = 1.0 + jnp.sum(jnp.where(others, step, jnp.zeros_like(step)), axis=-1)
    gains = jnp.expm1(y * math.log(2.0))
    ln2 = math.log(2.0)  # 1 / log2(1 + r) = ln 2 / log1p(r)
    dcg = _unit_sum(gains * ln2 / jnp.log1p(ranks), lists)
    # Ideal DCG: exact ranks of the gains (within the segment).
    ideal_ranks = _exact_ranks(gains, lists.valid, lists.segments).astype(s.dtype)
    idcg = _unit_sum(gains * ln2 / jnp.log1p(ideal_ranks), lists)
    # rax replaces an ideal DCG of 0 by 1 (double-where: no gradient through it).
    nonzero = idcg != 0
    values = -dcg / jnp.where(nonzero, idcg, jnp.ones_like(idcg))
    return reduce_values(values, reduction=reduction, weights=weights, where=lists.unit_valid, fn=fn)


# ------------------------------------------------------------------------ metrics
def _metric_inputs(fn: str, scores: ArrayLike, labels: ArrayLike, topn: int | None,
                   where: ArrayLike | None) -> tuple[_Lists, Array, Array]:
    """Scores, labels, item mask, ranks ``[..., n]`` and the retrieved items (rank ``<= topn``)."""
    if topn is not None:
        _checks.integer_option(fn, "topn", topn)
        if topn < 1:
            _checks._fail(ValueError, _checks.message(fn, "topn", "must be >= 1 or None", topn))
    lists = _list_inputs(fn, scores, labels, where)
    s, valid = lists.scores, lists.valid
    ranks = _exact_ranks(s, valid, None)
    # rax's _retrieved_items: valid, a score that is not -inf, within the top n.
    retrieved = ~jnp.isneginf(jax.lax.stop_gradient(s))
    if valid is not None:
        retrieved = retrieved & valid
    if topn is not None:
        retrieved = retrieved & (ranks <= topn)
    return lists, ranks.astype(s.dtype), retrieved


def _per_list(values: Array, lists: _Lists) -> Array:
    """Lists without a valid item are 0, as rax's ``reduce_fn=None``."""
    if lists.list_valid is None:
        return values
    return jnp.where(lists.list_valid, values, jnp.zeros_like(values))


def _dcg(gains: Array, ranks: Array, retrieved: Array, valid: Array | None) -> Array:
    # 1 / log2(1 + r) = ln 2 / log1p(r)
    return _masked_sum(jnp.where(retrieved, gains * math.log(2.0) / jnp.log1p(ranks), 0.0), valid)


def dcg_metric(scores: ArrayLike, labels: ArrayLike, *, topn: int | None = None,
               where: ArrayLike | None = None) -> Array:
    r"""Discounted cumulative gain per list (rax ``dcg_metric``); a metric, not a loss.

    .. math::

        \mathrm{DCG@}k = \sum_{i : r_i \le k} \frac{2^{y_i} - 1}{\log_2(1 + r_i)}

    with :math:`r_i` the 1-based rank of item :math:`i` by score. Jittable
    and vmappable; rank-based, so its gradient w.r.t. the scores is 0 (use a
    loss such as :func:`approx_ndcg_loss` to train).

    Args:
      scores: ``[..., list_size]`` float scores; items are ranked by decreasing
        score, ties broken by position (rax's ``utils.ranks``); an item with
        score ``-inf`` is never retrieved.
      labels: ``[..., list_size]`` real relevance labels, same shape.
      topn: count only the ``topn`` best-ranked items (a Python int ``>= 1``),
        or ``None`` for all.
      where: boolean mask: valid items ``[..., list_size]`` (rank of
        ``scores``) or whole lists ``[...]`` (lower rank); invalid items are
        neither ranked nor counted.

    Returns:
      ``[...]`` per-list values (0 for a list without a valid item), in the
      compute dtype (float32 for 16-bit scores).

    Raises:
      ValueError: shapes differ, rank 0 ``scores``, ``topn`` not a positive
        int or ``None``, or a ``where`` that fits neither reading.
      TypeError: non-float ``scores``, complex ``labels`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> # ranks 2, 1, 3: (2^1 - 1) / log2(3) + (2^2 - 1) / log2(2)
      >>> round(float(ranking.dcg_metric(jnp.array([0.5, 0.9, 0.1]), jnp.array([1.0, 2.0, 0.0]))), 5)
      3.63093

    References:
      Järvelin, Kekäläinen, "Cumulated Gain-based Evaluation of IR
      Techniques", TOIS 2002, https://doi.org/10.1145/582415.582418; rax
      ``dcg_metric``, https://github.com/google/rax
    """
    lists, ranks, retrieved = _metric_inputs("dcg_metric", scores, labels, topn, where)
    gains = jnp.exp2(lists.labels) - 1.0
    return _per_list(_dcg(gains, ranks, retrieved, lists.valid), lists)


def ndcg_metric(scores: ArrayLike, labels: ArrayLike, *, topn: int | None = None,
                where: ArrayLike | None = None) -> Array:
    r"""Normalised DCG per list (rax ``ndcg_metric``); a metric, not a loss.

    .. math::

        \mathrm{NDCG@}k = \frac{\mathrm{DCG@}k(s, y)}{\mathrm{DCG@}k(y^*, y)}

    the DCG of the ranking by score (see :func:`dcg_metric`) divided by the
    DCG of the ideal ranking (by gain); an ideal DCG of 0 (no relevant item)
    is replaced by 1, so such lists score 0, as rax.

    Args:
      scores: ``[..., list_size]`` float scores; items are ranked by decreasing
        score, ties broken by position (rax's ``utils.ranks``); an item with
        score ``-inf`` is never retrieved.
      labels: ``[..., list_size]`` real relevance labels, same shape.
      topn: count only the ``topn`` best-ranked items (a Python int ``>= 1``),
        or ``None`` for all.
      where: boolean mask: valid items ``[..., list_size]`` (rank of
        ``scores``) or whole lists ``[...]`` (lower rank); invalid items are
        neither ranked nor counted.

    Returns:
      ``[...]`` per-list values (0 for a list without a valid item), in the
      compute dtype (float32 for 16-bit scores).

    Raises:
      ValueError: shapes differ, rank 0 ``scores``, ``topn`` not a positive
        int or ``None``, or a ``where`` that fits neither reading.
      TypeError: non-float ``scores``, complex ``labels`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> scores = jnp.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
      >>> labels = jnp.array([[2.0, 1.0, 0.0], [2.0, 1.0, 0.0]])
      >>> # the ideal order; then the reverse: (3/log2(4) + 1/log2(3)) / (3/log2(2) + 1/log2(3))
      >>> ranking.ndcg_metric(scores, labels)
      Array([1.        , 0.58688265], dtype=float32)

    References:
      Järvelin, Kekäläinen, "Cumulated Gain-based Evaluation of IR
      Techniques", TOIS 2002, https://doi.org/10.1145/582415.582418; rax
      ``ndcg_metric``, https://github.com/google/rax
    """
    lists, ranks, retrieved = _metric_inputs("ndcg_metric", scores, labels, topn, where)
    gains = jnp.exp2(lists.labels) - 1.0
    dcg = _dcg(gains, ranks, retrieved, lists.valid)
    ideal_ranks = _exact_ranks(gains, lists.valid, None).astype(gains.dtype)
    ideal_retrieved = ~jnp.isneginf(gains)
    if lists.valid is not None:
        ideal_retrieved = ideal_retrieved & lists.valid
    if topn is not None:
        ideal_retrieved = ideal_retrieved & (ideal_ranks <= topn)
    idcg = _dcg(gains, ideal_ranks, ideal_retrieved, lists.valid)
    nonzero = idcg != 0
    return _per_list(dcg / jnp.where(nonzero, idcg, jnp.ones_like(idcg)), lists)


def mrr_metric(scores: ArrayLike, labels: ArrayLike, *, topn: int | None = None,
               where: ArrayLike | None = None) -> Array:
    r"""Reciprocal rank of the first relevant item per list (rax ``mrr_metric``); a metric.

    .. math::

        \mathrm{RR@}k = \max_{i : y_i \ge 1,\ r_i \le k} \frac{1}{r_i}

    (0 if no relevant item is retrieved); relevant means label ``>= 1``. The
    mean over lists is the MRR.

    Args:
      scores: ``[..., list_size]`` float scores; items are ranked by decreasing
        score, ties broken by position (rax's ``utils.ranks``); an item with
        score ``-inf`` is never retrieved.
      labels: ``[..., list_size]`` real relevance labels, same shape.
      topn: count only the ``topn`` best-ranked items (a Python int ``>= 1``),
        or ``None`` for all.
      where: boolean mask: valid items ``[..., list_size]`` (rank of
        ``scores``) or whole lists ``[...]`` (lower rank); invalid items are
        neither ranked nor counted.

    Returns:
      ``[...]`` per-list values (0 for a list without a valid item), in the
      compute dtype (float32 for 16-bit scores).

    Raises:
      ValueError: shapes differ, rank 0 ``scores``, ``topn`` not a positive
        int or ``None``, or a ``where`` that fits neither reading.
      TypeError: non-float ``scores``, complex ``labels`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> float(ranking.mrr_metric(jnp.array([0.9, 0.5, 0.1]), jnp.array([0.0, 0.0, 1.0])))
      0.3333333432674408

    References:
      Voorhees, "The TREC-8 Question Answering Track Report", TREC 1999; rax
      ``mrr_metric``, https://github.com/google/rax
    """
    lists, ranks, retrieved = _metric_inputs("mrr_metric", scores, labels, topn, where)
    hit = retrieved & (lists.labels >= 1)
    reciprocal = jnp.where(hit, 1.0 / ranks, jnp.zeros_like(ranks))
    return _per_list(jnp.max(reciprocal, axis=-1, initial=0.0), lists)


def _relevant_counts(fn: str, scores: ArrayLike, labels: ArrayLike, topn: int | None, where: ArrayLike | None
                     ) -> tuple[_Lists, Array, Array, Array, Array, Array, Array]:
    lists, ranks, retrieved = _metric_inputs(fn, scores, labels, topn, where)
    relevant = lists.labels >= 1
    if lists.valid is not None:
        relevant = relevant & lists.valid
    def count(mask: Array) -> Array:
        return jnp.sum(mask, axis=-1).astype(lists.scores.dtype)

    hits, n_relevant, n_retrieved = count(retrieved & relevant), count(relevant), count(retrieved)
    return lists, ranks, retrieved, relevant, hits, n_relevant, n_retrieved


def _at_least_one(x: Array) -> Array:
    """rax replaces a count of 0 by 1 in the denominators."""
    return jnp.where(x == 0, jnp.ones_like(x), x)


def precision_metric(scores: ArrayLike, labels: ArrayLike, *, topn: int | None = None,
                     where: ArrayLike | None = None) -> Array:
    r"""Precision per list (rax ``precision_metric``): relevant retrieved over retrieved; a metric.

    .. math::

        \mathrm{P@}k = \frac{|\{i : y_i \ge 1,\ r_i \le k\}|}{|\{i : r_i \le k\}|}

    over valid items (a denominator of 0 counts as 1).

    Args:
      scores: ``[..., list_size]`` float scores; items are ranked by decreasing
        score, ties broken by position (rax's ``utils.ranks``); an item with
        score ``-inf`` is never retrieved.
      labels: ``[..., list_size]`` real relevance labels, same shape.
      topn: count only the ``topn`` best-ranked items (a Python int ``>= 1``),
        or ``None`` for all.
      where: boolean mask: valid items ``[..., list_size]`` (rank of
        ``scores``) or whole lists ``[...]`` (lower rank); invalid items are
        neither ranked nor counted.

    Returns:
      ``[...]`` per-list values (0 for a list without a valid item), in the
      compute dtype (float32 for 16-bit scores).

    Raises:
      ValueError: shapes differ, rank 0 ``scores``, ``topn`` not a positive
        int or ``None``, or a ``where`` that fits neither reading.
      TypeError: non-float ``scores``, complex ``labels`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> float(ranking.precision_metric(jnp.array([0.9, 0.5, 0.1]), jnp.array([1.0, 0.0, 1.0]), topn=2))
      0.5

    References:
      Manning, Raghavan, Schütze, "Introduction to Information Retrieval",
      2008, ch. 8, https://nlp.stanford.edu/IR-book/; rax ``precision_metric``,
      https://github.com/google/rax
    """
    lists, _, _, _, hits, _, n_retrieved = _relevant_counts("precision_metric", scores, labels, topn, where)
    return _per_list(hits / _at_least_one(n_retrieved), lists)


def recall_metric(scores: ArrayLike, labels: ArrayLike, *, topn: int | None = None,
                  where: ArrayLike | None = None) -> Array:
    r"""Recall per list (rax ``recall_metric``): relevant retrieved over relevant; a metric.

    .. math::

        \mathrm{R@}k = \frac{|\{i : y_i \ge 1,\ r_i \le k\}|}{|\{i : y_i \ge 1\}|}

    over valid items (a list without relevant item scores 0).

    Args:
      scores: ``[..., list_size]`` float scores; items are ranked by decreasing
        score, ties broken by position (rax's ``utils.ranks``); an item with
        score ``-inf`` is never retrieved.
      labels: ``[..., list_size]`` real relevance labels, same shape.
      topn: count only the ``topn`` best-ranked items (a Python int ``>= 1``),
        or ``None`` for all.
      where: boolean mask: valid items ``[..., list_size]`` (rank of
        ``scores``) or whole lists ``[...]`` (lower rank); invalid items are
        neither ranked nor counted.

    Returns:
      ``[...]`` per-list values (0 for a list without a valid item), in the
      compute dtype (float32 for 16-bit scores).

    Raises:
      ValueError: shapes differ, rank 0 ``scores``, ``topn`` not a positive
        int or ``None``, or a ``where`` that fits neither reading.
      TypeError: non-float ``scores``, complex ``labels`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> float(ranking.recall_metric(jnp.array([0.9, 0.5, 0.1]), jnp.array([1.0, 0.0, 1.0]), topn=2))
      0.5

    References:
      Manning, Raghavan, Schütze, "Introduction to Information Retrieval",
      2008, ch. 8, https://nlp.stanford.edu/IR-book/; rax ``recall_metric``,
      https://github.com/google/rax
    """
    lists, _, _, _, hits, n_relevant, _ = _relevant_counts("recall_metric", scores, labels, topn, where)
    return _per_list(hits / _at_least_one(n_relevant), lists)


def ap_metric(scores: ArrayLike, labels: ArrayLike, *, topn: int | None = None,
              where: ArrayLike | None = None) -> Array:
    r"""Average precision per list (rax ``ap_metric``); a metric. Its mean over lists is MAP.

    .. math::

        \mathrm{AP@}k = \frac{1}{|\{j : y_j \ge 1\}|}
            \sum_{i : y_i \ge 1,\ r_i \le k} \frac{|\{j : y_j \ge 1,\ r_j \le r_i\}|}{r_i}

    over valid items (a list without relevant item scores 0).

    Args:
      scores: ``[..., list_size]`` float scores; items are ranked by decreasing
        score, ties broken by position (rax's ``utils.ranks``); an item with
        score ``-inf`` is never retrieved.
      labels: ``[..., list_size]`` real relevance labels, same shape.
      topn: count only the ``topn`` best-ranked items (a Python int ``>= 1``),
        or ``None`` for all.
      where: boolean mask: valid items ``[..., list_size]`` (rank of
        ``scores``) or whole lists ``[...]`` (lower rank); invalid items are
        neither ranked nor counted.

    Returns:
      ``[...]`` per-list values (0 for a list without a valid item), in the
      compute dtype (float32 for 16-bit scores).

    Raises:
      ValueError: shapes differ, rank 0 ``scores``, ``topn`` not a positive
        int or ``None``, or a ``where`` that fits neither reading.
      TypeError: non-float ``scores``, complex ``labels`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> # relevant at ranks 1 and 3: (1/1 + 2/3) / 2
      >>> round(float(ranking.ap_metric(jnp.array([0.9, 0.5, 0.1]), jnp.array([1.0, 0.0, 1.0]))), 6)
      0.833333

    References:
      Manning, Raghavan, Schütze, "Introduction to Information Retrieval",
      2008, ch. 8, https://nlp.stanford.edu/IR-book/; rax ``ap_metric``,
      https://github.com/google/rax
    """
    lists, ranks, retrieved, relevant, _, n_relevant, _ = _relevant_counts("ap_metric", scores, labels, topn,
                                                                         where)
    # Relevant items ranked at or above each item (invalid items rank last, so never above a valid one).
    above = relevant[..., None, :] & (ranks[..., None, :] <= ranks[..., :, None])
    precision_at = jnp.sum(above, axis=-1).astype(ranks.dtype) / ranks
    total = jnp.sum(jnp.where(retrieved & relevant, precision_at, 0.0), axis=-1)
    return _per_list(total / _at_least_one(n_relevant), lists)
