"""Ranking and recommendation losses.

Three groups live here:

* **Sampled recommendation losses** (GRU4Rec family): ``bpr_loss``,
  ``top1_loss``, ``bpr_max_loss``, ``top1_max_loss`` take the score of the
  positive item ``[...]`` and the scores of ``K`` sampled negatives
  ``[..., K]``; the unreduced values are per example ``[...]``.
* **Pairs of scores**: ``margin_ranking_loss`` (torch), elementwise.
* **Listwise and pairwise learning to rank** over ``[..., list_size]``:
  ``ranking_softmax_loss``, ``listmle_loss``, ``approx_ndcg_loss`` (per list,
  ``[...]``) and ``pairwise_hinge_loss``, ``pairwise_logistic_loss`` (per pair,
  ``[..., list_size * list_size]``, as rax returns them). They equal rax's
  losses of the same name with the default options: the unreduced values equal
  rax's with ``reduce_fn=None`` and ``reduction="mean"`` equals
  ``reduce_fn=jnp.mean``.

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
from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _checks, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array


# ------------------------------------------------------------------ private helpers
def _split_where(fn: str, where: Any, item_shape: tuple[int, ...], items: str,
                 pair_size: int | None = None) -> tuple[Any, Any, Any]:
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


def _item_validity(item_mask: Any, list_mask: Any, item_shape: tuple[int, ...]) -> Any:
    """Combines an item and a list mask into one ``[..., n]`` item mask (or ``None``)."""
    if list_mask is None:
        return item_mask
    expanded = jnp.broadcast_to(list_mask[..., None], item_shape)
    return expanded if item_mask is None else expanded & item_mask


def _masked_max(x: Array, valid: Any, axis: int = -1) -> Array:
    """``stop_gradient`` of the maximum over valid entries (0 where none is valid)."""
    if valid is None:
        m = jnp.max(x, axis=axis, keepdims=True)
    else:
        m = jnp.max(jnp.where(valid, x, -jnp.inf), axis=axis, keepdims=True)
        # Only "nothing valid" (-inf) becomes 0: a NaN maximum propagates.
        m = jnp.where(m == -jnp.inf, jnp.zeros_like(m), m)
    return jax.lax.stop_gradient(m)


def _shifted_and_log_total(x: Array, valid: Any, axis: int = -1) -> tuple[Array, Array]:
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
    positive = ~(total <= 0)
    log_total = jnp.where(positive, jnp.log(jnp.where(positive, total, jnp.ones_like(total))),
                          jnp.zeros_like(total))
    return shifted, log_total


def _masked_logsumexp(x: Array, valid: Any, axis: int = -1) -> Array:
    """``log sum_{valid} exp(x)`` along ``axis`` (keepdims); 0 with zero gradient if none is valid."""
    m = _masked_max(x, valid, axis)
    _, log_total = _shifted_and_log_total(x, valid, axis)
    return m + log_total


def _masked_log_softmax(x: Array, valid: Any, axis: int = -1) -> Array:
    """Log-softmax over the valid entries; finite (and unused) at invalid ones.

    Computed as ``(x - max) - log sum exp(x - max)``, the rounding of
    ``jax.nn.log_softmax`` (and so of rax), not ``x - logsumexp(x)``.
    """
    shifted, log_total = _shifted_and_log_total(x, valid, axis)
    return shifted - log_total


def _label_nan(labels: Array, valid: Any) -> Array:
    """``[...]``: NaN for a list with a NaN label at a valid item, else 0 (added to its value).

    Losses that only compare labels (sorts, ``y_i > y_j``) would otherwise
    drop a NaN label silently.
    """
    bad = jnp.isnan(labels) if valid is None else jnp.isnan(labels) & valid
    return jnp.where(jnp.any(bad, axis=-1), jnp.asarray(jnp.nan, labels.dtype), jnp.zeros((), labels.dtype))


def _masked_mean(values: Array, valid: Any, axis: int = -1) -> Array:
    if valid is None:
        return jnp.mean(values, axis=axis)
    total = jnp.sum(jnp.where(valid, values, jnp.zeros_like(values)), axis=axis)
    count = jnp.sum(valid, axis=axis).astype(values.dtype)
    return _numerics.safe_div(total, count)


def _masked_sum(values: Array, valid: Any, axis: int = -1) -> Array:
    if valid is None:
        return jnp.sum(values, axis=axis)
    return jnp.sum(jnp.where(valid, values, jnp.zeros_like(values)), axis=axis)


# ---------------------------------------------------------------- sampled (GRU4Rec)
def _sampled_inputs(fn: str, positive_scores: Any, negative_scores: Any, where: Any):
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
def bpr_loss(positive_scores: Any, negative_scores: Any, *, reduction: str = "mean", weights: Any = None,
             where: Any = None) -> Array:
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
def top1_loss(positive_scores: Any, negative_scores: Any, *, reduction: str = "mean", weights: Any = None,
              where: Any = None) -> Array:
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
def bpr_max_loss(positive_scores: Any, negative_scores: Any, *, regularization: Any = 1.0,
                 reduction: str = "mean", weights: Any = None, where: Any = None) -> Array:
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
def top1_max_loss(positive_scores: Any, negative_scores: Any, *, reduction: str = "mean", weights: Any = None,
                  where: Any = None) -> Array:
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
def margin_ranking_loss(x1: Any, x2: Any, labels: Any, *, margin: Any = 0.0, reduction: str = "mean",
                        weights: Any = None, where: Any = None) -> Array:
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
    values = jax.nn.relu(m - y * (a - b))
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


# ------------------------------------------------------------------- listwise (rax)
def _list_inputs(fn: str, scores: Any, labels: Any, where: Any, pairwise: bool = False):
    """Validates ``[..., list_size]`` scores and labels and reads ``where``.

    Returns ``(scores, labels, item_valid, list_valid, pair_mask)``: inputs in
    the compute dtype with invalid items replaced by 0, the ``[..., n]`` item
    mask (or ``None``), the ``[...]`` mask of lists with a valid item (or
    ``None``) and, for pairwise losses, a ``[..., n*n]`` pair mask (or ``None``).
    """
    s = _checks.floating(fn, "scores", scores)
    y = _checks.real(fn, "labels", labels)
    _checks.rank_at_least(fn, "scores", s, 1, "[..., list_size]")
    _checks.same_shape(fn, ("scores", s), ("labels", y))
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
    return s, y, valid, list_valid, pair_mask


@_registry.builtin(tags=("ranking",))
def ranking_softmax_loss(scores: Any, labels: Any, *, reduction: str = "mean", weights: Any = None,
                         where: Any = None) -> Array:
    r"""Listwise softmax cross-entropy of rax (``rax.softmax_loss``), per list.

    .. math::

        \ell(s, y) = -\sum_{i} y_i \log \frac{\exp s_i}{\sum_{j} \exp s_j}

    with both sums over the valid items. Labels are used as they are (not
    normalised to a distribution), as rax does by default.

    Args:
      scores: ``[..., list_size]`` float scores.
      labels: ``[..., list_size]`` real relevance labels (graded or binary).
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`);
        ``"mean"`` equals rax's ``reduce_fn=jnp.mean``.
      weights: float per-list weights broadcastable to ``[...]``.
      where: boolean mask. With the rank of ``scores`` it marks valid items
        ``[..., list_size]`` (rax's ``where``; a list without a valid item is
        left out of the ``"mean"``); of lower rank it marks whole lists ``[...]``.

    Returns:
      ``[...]`` per-list values for ``reduction="none"`` (rax's
      ``reduce_fn=None``), else a scalar.

    Raises:
      ValueError: ``scores`` and ``labels`` shapes differ, rank 0 ``scores``, a
        ``where`` that fits neither reading, or an unknown ``reduction``.
      TypeError: non-float ``scores``, complex ``labels`` or non-boolean ``where``.

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
    s, y, valid, list_valid, _ = _list_inputs(fn, scores, labels, where)
    log_p = _masked_log_softmax(s, valid)
    values = -_masked_sum(y * log_p, valid)
    return reduce_values(values, reduction=reduction, weights=weights, where=list_valid, fn=fn)


@_registry.builtin(tags=("ranking",))
def listmle_loss(scores: Any, labels: Any, *, reduction: str = "mean", weights: Any = None,
                 where: Any = None) -> Array:
    r"""ListMLE: negative Plackett-Luce log-likelihood of the order given by the labels (rax).

    With :math:`\pi` the valid items sorted by decreasing label (ties keep
    their order in the list, as rax without a ``key``):

    .. math::

        \ell(s, y) = -\sum_{k} \Big(s_{\pi_k} - \log \sum_{l \ge k} \exp s_{\pi_l}\Big)

    The suffix sums are a reverse cumulative ``logsumexp`` (``O(list_size)``
    memory). Equals ``rax.listmle_loss``.

    Args:
      scores: ``[..., list_size]`` float scores.
      labels: ``[..., list_size]`` real relevance labels; only their order matters.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float per-list weights broadcastable to ``[...]``.
      where: boolean mask. With the rank of ``scores`` it marks valid items
        ``[..., list_size]`` (rax's ``where``; a list without a valid item is
        left out of the ``"mean"``); of lower rank it marks whole lists ``[...]``.

    Returns:
      ``[...]`` per-list values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: ``scores`` and ``labels`` shapes differ, rank 0 ``scores``, a
        ``where`` that fits neither reading, or an unknown ``reduction``.
      TypeError: non-float ``scores``, complex ``labels`` or non-boolean ``where``.

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
    s, y, valid, list_valid, _ = _list_inputs(fn, scores, labels, where)
    invalid = jnp.zeros(s.shape, jnp.int32) if valid is None else (~valid).astype(jnp.int32)
    index = jax.lax.broadcasted_iota(jnp.int32, s.shape, s.ndim - 1)
    # Valid items first, then by decreasing label; lax.sort is stable, so ties
    # keep their order in the list (rax's sort_by without a key).
    _, _, order = jax.lax.sort((invalid, -y, index), dimension=s.ndim - 1, num_keys=2)
    s_sorted = jnp.take_along_axis(s, order, axis=-1)
    v_sorted = None if valid is None else jnp.take_along_axis(valid, order, axis=-1)
    # Invalid items sit at the end; the lowest finite value keeps them out of
    # every suffix logsumexp (exp underflows to exactly 0) with finite gradients.
    fill = jnp.finfo(s.dtype).min
    x = s_sorted if v_sorted is None else jnp.where(v_sorted, s_sorted, jnp.asarray(fill, s.dtype))
    suffix_lse = jax.lax.cumlogsumexp(x, axis=s.ndim - 1, reverse=True)
    values = -_masked_sum(s_sorted - suffix_lse, v_sorted) + _label_nan(y, valid)
    return reduce_values(values, reduction=reduction, weights=weights, where=list_valid, fn=fn)


def _pairwise(fn: str, scores: Any, labels: Any, where: Any, pair_fn, reduction: str, weights: Any) -> Array:
    s, y, valid, _, pair_mask = _list_inputs(fn, scores, labels, where, pairwise=True)
    n = s.shape[-1]
    batch = s.shape[:-1]
    diff = (s[..., :, None] - s[..., None, :]).reshape(batch + (n * n,))
    label_diff = y[..., :, None] - y[..., None, :]
    # A NaN label makes its pairs NaN (and counted) instead of silently invalid.
    ok = (label_diff > 0) | jnp.isnan(label_diff)
    if valid is not None:
        ok = ok & valid[..., :, None] & valid[..., None, :]
    ok = ok.reshape(batch + (n * n,))
    if pair_mask is not None:
        ok = ok & pair_mask
    values = pair_fn(diff) + 0.0 * jnp.where(jnp.isnan(label_diff), label_diff, 0.0).reshape(batch + (n * n,))
    return reduce_values(values, reduction=reduction, weights=weights, where=ok, fn=fn)


@_registry.builtin(tags=("ranking",))
def pairwise_hinge_loss(scores: Any, labels: Any, *, reduction: str = "mean", weights: Any = None,
                        where: Any = None) -> Array:
    r"""Pairwise hinge loss (rax ``pairwise_hinge_loss``), one value per pair.

    For every pair of valid items :math:`(i, j)` of one list with
    :math:`y_i > y_j`:

    .. math::

        \ell_{ij} = \max(0, 1 - (s_i - s_j))

    Other pairs are 0 in the unreduced values and left out of the ``"mean"``,
    which is the mean over all valid pairs of the batch (rax's
    ``reduce_fn=jnp.mean``; 0 if there is none). Memory is
    ``O(list_size**2)`` per list.

    Args:
      scores: ``[..., list_size]`` float scores.
      labels: ``[..., list_size]`` real relevance labels.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to the pairs
        ``[..., list_size * list_size]`` (e.g. ``[..., 1]`` per list).
      where: boolean mask: valid items ``[..., list_size]`` (rank of
        ``scores``), pairs ``[..., list_size**2]``, or whole lists ``[...]``
        (lower rank).

    Returns:
      ``[..., list_size * list_size]`` per-pair values (pair ``(i, j)`` at
      ``i * list_size + j``) for ``reduction="none"``, as rax's
      ``reduce_fn=None``; else a scalar.

    Raises:
      ValueError: ``scores`` and ``labels`` shapes differ, rank 0 ``scores``, a
        ``where`` that fits no reading, or an unknown ``reduction``.
      TypeError: non-float ``scores``, complex ``labels`` or non-boolean ``where``.

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
    return _pairwise("pairwise_hinge_loss", scores, labels, where, lambda d: jax.nn.relu(1.0 - d),
                     reduction, weights)


@_registry.builtin(tags=("ranking",))
def pairwise_logistic_loss(scores: Any, labels: Any, *, reduction: str = "mean", weights: Any = None,
                           where: Any = None) -> Array:
    r"""Pairwise logistic (RankNet) loss (rax ``pairwise_logistic_loss``), one value per pair.

    For every pair of valid items :math:`(i, j)` of one list with
    :math:`y_i > y_j`:

    .. math::

        \ell_{ij} = \log(1 + \exp(-(s_i - s_j)))

    computed with ``softplus``. Other pairs are 0 in the unreduced values and
    left out of the ``"mean"`` (the mean over all valid pairs of the batch, as
    rax's ``reduce_fn=jnp.mean``). Memory is ``O(list_size**2)`` per list.

    Args:
      scores: ``[..., list_size]`` float scores.
      labels: ``[..., list_size]`` real relevance labels.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to the pairs ``[..., list_size * list_size]``.
      where: boolean mask: valid items ``[..., list_size]`` (rank of
        ``scores``), pairs ``[..., list_size**2]``, or whole lists ``[...]``
        (lower rank).

    Returns:
      ``[..., list_size * list_size]`` per-pair values (pair ``(i, j)`` at
      ``i * list_size + j``) for ``reduction="none"``; else a scalar.

    Raises:
      ValueError: ``scores`` and ``labels`` shapes differ, rank 0 ``scores``, a
        ``where`` that fits no reading, or an unknown ``reduction``.
      TypeError: non-float ``scores``, complex ``labels`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import ranking
      >>> round(float(ranking.pairwise_logistic_loss(jnp.array([0.0, 0.0]), jnp.array([1.0, 0.0]))), 6)
      0.693147

    References:
      Burges, Shaked, Renshaw, Lazier, Deeds, Hamilton, Hullender, "Learning to
      Rank using Gradient Descent", ICML 2005,
      https://doi.org/10.1145/1102351.1102363;
      rax ``pairwise_logistic_loss``, https://github.com/google/rax
    """
    return _pairwise("pairwise_logistic_loss", scores, labels, where, lambda d: jax.nn.softplus(-d),
                     reduction, weights)


@_registry.builtin(tags=("ranking",))
def approx_ndcg_loss(scores: Any, labels: Any, *, temperature: Any = 1.0, reduction: str = "mean",
                     weights: Any = None, where: Any = None) -> Array:
    r"""ApproxNDCG: minus NDCG with sigmoid-smoothed ranks (rax ``approx_t12n(ndcg_metric)``).

    .. math::

        \hat r_i = 1 + \sum_{j \ne i} \sigma\Big(\frac{s_j - s_i}{T}\Big), \qquad
        \ell = -\frac{1}{\mathrm{IDCG}(y)} \sum_i \frac{2^{y_i} - 1}{\log_2(1 + \hat r_i)}

    with sums over valid items and :math:`\mathrm{IDCG}` the DCG of the items
    sorted by label (replaced by 1 when it is 0, so such lists give 0). Values
    lie in ``[-1, 0]`` for non-negative labels. Memory is ``O(list_size**2)``
    per list.

    Args:
      scores: ``[..., list_size]`` float scores.
      labels: ``[..., list_size]`` real relevance labels (gain ``2**y - 1``).
      temperature: :math:`T > 0` of the sigmoid; smaller is closer to exact
        ranks (Python float or traced array).
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float per-list weights broadcastable to ``[...]``.
      where: boolean mask. With the rank of ``scores`` it marks valid items
        ``[..., list_size]`` (rax's ``where``; a list without a valid item is
        left out of the ``"mean"``); of lower rank it marks whole lists ``[...]``.

    Returns:
      ``[...]`` per-list values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: ``scores`` and ``labels`` shapes differ, rank 0 ``scores``,
        ``temperature <= 0``, a ``where`` that fits neither reading, or an
        unknown ``reduction``.
      TypeError: non-float ``scores``, complex ``labels`` or non-boolean ``where``.

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
    s, y, valid, list_valid, _ = _list_inputs(fn, scores, labels, where)
    n = s.shape[-1]
    t = jnp.asarray(temperature, s.dtype)
    # Smoothed 1-based ranks: 1 + sum over other valid items of sigma((s_j - s_i) / T).
    step = jax.nn.sigmoid((s[..., None, :] - s[..., :, None]) / t)
    others = jnp.broadcast_to(~jnp.eye(n, dtype=bool), step.shape)
    if valid is not None:
        others = others & valid[..., :, None] & valid[..., None, :]
    ranks = 1.0 + jnp.sum(jnp.where(others, step, jnp.zeros_like(step)), axis=-1)
    gains = jnp.expm1(y * math.log(2.0))
    inv_log2 = math.log(2.0)
    dcg = _masked_sum(gains * inv_log2 / jnp.log1p(ranks), valid)
    # Ideal DCG: valid items sorted by decreasing gain, exact ranks 1..n.
    invalid = jnp.zeros(s.shape, jnp.int32) if valid is None else (~valid).astype(jnp.int32)
    _, _, ideal_gains = jax.lax.sort((invalid, -gains, gains), dimension=s.ndim - 1, num_keys=2)
    positions = jnp.arange(n, dtype=s.dtype)
    discounts = jnp.broadcast_to(inv_log2 / jnp.log(positions + 2.0), s.shape)
    ideal_valid = None if valid is None else jnp.sort(invalid, axis=-1) == 0
    idcg = _masked_sum(ideal_gains * discounts, ideal_valid)
    # rax replaces an ideal DCG of 0 by 1 (double-where: no gradient through it).
    nonzero = idcg != 0
    values = -dcg / jnp.where(nonzero, idcg, jnp.ones_like(idcg))
    return reduce_values(values, reduction=reduction, weights=weights, where=list_valid, fn=fn)
