"""Text metrics on integer token ids, and the minimum-risk loss that trains on them.

The metrics (:func:`bleu`, :func:`corpus_bleu`, :func:`rouge_n`,
:func:`rouge_l`, :func:`meteor`) work on padded integer token ids with fixed
shapes and no host callbacks, so they run under ``jax.jit`` and ``jax.vmap``
(for example inside a training step, on sampled sequences). They are metrics,
not losses: they return scores in ``[0, 1]`` (higher is better), are not
differentiable in the token ids, and are not in the loss registry. Turn them
into a training signal with :func:`minimum_risk_loss`.

Conventions shared by every metric:

* ``candidates`` ``[..., L]`` and ``references`` ``[..., R, L]`` (``R``
  references per candidate, same leading shape and length ``L``).
* Tokens equal to ``pad_id`` are removed wherever they occur; the remaining
  tokens keep their order. A candidate of only padding is the empty sentence.
* A reference row of only padding is *absent* (not an empty reference), so
  examples with fewer than ``R`` references are padded with all-``pad_id``
  rows. An example with no reference scores 0.
* Each metric equals its reference implementation run on the ids joined by
  single spaces (``" ".join(map(str, ids))``): sacrebleu with
  ``tokenize="none"`` for BLEU, Google's ``rouge-score`` without stemming for
  ROUGE, nltk's ``meteor_score`` with stemming and synonyms off for METEOR,
  each given the present references only.
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array

_SMOOTHINGS = ("none", "floor", "add-k", "exp")
_SMOOTHING_DEFAULTS = {"none": 0.0, "floor": 0.1, "add-k": 1.0, "exp": 0.0}


class RougeScore(NamedTuple):
    """Precision, recall and F-measure, each ``[...]`` (the candidates' batch shape)."""

    precision: Array
    recall: Array
    fmeasure: Array


# --------------------------------------------------------------------- helpers
def _token_inputs(fn: str, candidates: ArrayLike, references: ArrayLike, pad_id: int) -> tuple[Array, Array]:
    c = _checks.integer(fn, "candidates", candidates)
    r = _checks.integer(fn, "references", references)
    _checks.rank_at_least(fn, "candidates", c, 1, "[..., length]")
    expected = c.shape[:-1] + (None, c.shape[-1])
    _checks.shape(fn, "references", r, expected,
                  f"[..., num_references, length] = {c.shape[:-1]} + [R, {c.shape[-1]}] (candidates {c.shape})")
    _checks.integer_option(fn, "pad_id", pad_id, allow_none=False)
    return c, r


def _compact(tokens: Array, pad_id: int) -> tuple[Array, Array]:
    """Moves the non-pad tokens of ``[L]`` to the front (order kept); returns them and their count."""
    valid = tokens != pad_id
    order = jnp.argsort(~valid, stable=True)
    return tokens[order], jnp.sum(valid, dtype=jnp.int32)


def _shift_left(x: Array, k: int) -> Array:
    """``x[k:]`` padded back to length ``L`` (the padding is masked by callers)."""
    if k == 0:
        return x
    # An order above the length has no n-grams: every position is padding.
    k = min(k, x.shape[0])
    return jnp.concatenate([x[k:], jnp.zeros((k,), x.dtype)])


def _ngram_equal(a: Array, la: Array, b: Array, lb: Array, max_order: int) -> list[Array]:
    """``eq[n-1][i, j]``: the n-gram of ``a`` at ``i`` equals that of ``b`` at ``j``, both inside the sequences."""
    out = []
    eq = jnp.ones((a.shape[0], b.shape[0]), bool)
    i = jnp.arange(a.shape[0])
    j = jnp.arange(b.shape[0])
    for n in range(1, max_order + 1):
        eq = eq & (_shift_left(a, n - 1)[:, None] == _shift_left(b, n - 1)[None, :])
        inside = ((i + n) <= la)[:, None] & ((j + n) <= lb)[None, :]
        out.append(eq & inside)
    return out


def _flatten_batch(c: Array, r: Array) -> tuple[Array, Array, tuple[int, ...]]:
    batch_shape = c.shape[:-1]
    return c.reshape((-1, c.shape[-1])), r.reshape((-1,) + r.shape[-2:]), batch_shape


def _safe_ratio(num: Array, den: Array) -> Array:
    return _numerics.safe_div(num.astype(jnp.float32), den.astype(jnp.float32))


def _f_measure(p: Array, r: Array) -> Array:
    return _numerics.safe_div(2.0 * p * r, p + r)


# ------------------------------------------------------------------------ BLEU
def _bleu_statistics(candidate: Array, references: Array, pad_id: int, max_order: int) -> Array:
    """sacrebleu's sufficient statistics of one segment, ``[2 + 2 * max_order]`` int32:

    ``hyp_len, ref_len, correct_1..N, total_1..N`` with ``ref_len`` the closest
    present reference length (ties to the shorter) and ``correct_n`` the
    clipped n-gram matches against the per-n-gram maximum over references.
    """
    a, la = _compact(candidate, pad_id)
    refs, lens = jax.vmap(_compact, in_axes=(0, None))(references, pad_id)
    self_eq = _ngram_equal(a, la, a, la, max_order)
    ref_eq = jax.vmap(lambda b, lb: _ngram_equal(a, la, b, lb, max_order))(refs, lens)
    positions = jnp.arange(a.shape[0])
    correct, total = [], []
    for n in range(1, max_order + 1):
        same = self_eq[n - 1]
        inside = (positions + n) <= la
        # Clipping without building a dictionary: the k-th occurrence (k from 0)
        # of an n-gram in the candidate counts if k < max_r count_r(n-gram).
        earlier = jnp.sum(same & (positions[:, None] < positions[None, :]), axis=0)
        in_refs = jnp.max(jnp.sum(ref_eq[n - 1], axis=2), axis=0) if references.shape[0] else 0
        correct.append(jnp.sum(inside & (earlier < in_refs), dtype=jnp.int32))
        total.append(jnp.maximum(la - n + 1, 0).astype(jnp.int32))
    present = lens > 0
    length_of_l = references.shape[-1]
    key = jnp.where(present, jnp.abs(la - lens) * (2 * length_of_l + 2) + lens, jnp.iinfo(jnp.int32).max)
    ref_len = jnp.where(jnp.any(present), lens[jnp.argmin(key)], 0).astype(jnp.int32)
    return jnp.stack([la, ref_len] + correct + total)


@functools.partial(jax.jit, static_argnames=("max_order", "smoothing", "smoothing_value", "effective_order"))
def _bleu_from_statistics(stats: Array, *, max_order: int, smoothing: str, smoothing_value: float,
                          effective_order: bool) -> Array:
    """sacrebleu's ``compute_bleu`` on statistics ``[..., 2 + 2N]``, as a fraction."""
    stats = stats.astype(jnp.float32)
    sys_len, ref_len = stats[..., 0], stats[..., 1]
    correct = stats[..., 2:2 + max_order]
    total = stats[..., 2 + max_order:]
    if smoothing == "add-k":
        k = jnp.concatenate([jnp.zeros((1,), jnp.float32), jnp.full((max_order - 1,), smoothing_value, jnp.float32)])
        k = jnp.broadcast_to(k, correct.shape)
        correct_s, total_s = correct + k, total + k
    else:
        correct_s, total_s = correct, total
    # sacrebleu stops at the first order with no n-grams: with effective order
    # the mean runs over the orders before it, without it the score is 0.
    used = jnp.cumprod(total_s > 0, axis=-1).astype(bool)
    eff_order = jnp.sum(used, axis=-1)
    zero_correct = correct_s == 0
    if smoothing == "exp":
        # NIST: the k-th order without a match gets precision 1 / (2^k * total).
        doubling = jnp.cumsum(zero_correct & used, axis=-1).astype(jnp.float32)
        fallback = _numerics.safe_div(jnp.ones_like(total_s), jnp.exp2(doubling) * total_s)
    elif smoothing == "floor":
        fallback = _numerics.safe_div(jnp.full_like(total_s, smoothing_value), total_s)
    else:
        fallback = jnp.zeros_like(total_s)
    precision = jnp.where(zero_correct, fallback, _numerics.safe_div(correct_s, total_s))
    log_p = _numerics.safe_log(precision)
    ok = jnp.all(jnp.where(used, precision > 0, True), axis=-1) & (correct[..., 0] > 0)
    if effective_order:
        ok = ok & (eff_order > 0)
        n = jnp.maximum(eff_order, 1).astype(jnp.float32)
    else:
        ok = ok & (eff_order == max_order)
        n = jnp.float32(max_order)
    mean_log = jnp.sum(jnp.where(used, log_p, 0.0), axis=-1) / n
    brevity = jnp.where(sys_len < ref_len, jnp.exp(1.0 - _numerics.safe_div(ref_len, sys_len, fill=jnp.inf)), 1.0)
    brevity = jnp.where(sys_len > 0, brevity, 0.0)
    return jnp.where(ok, brevity * jnp.exp(jnp.where(ok, mean_log, 0.0)), 0.0)


def _bleu_options(fn: str, max_order: int, smoothing: str, smoothing_value: float | None) -> float:
    _checks.integer_option(fn, "max_order", max_order, allow_none=False)
    if max_order < 1:
        _checks._fail(ValueError, _checks.message(fn, "max_order", "must be >= 1", max_order))
    _checks.choice(fn, "smoothing", smoothing, _SMOOTHINGS)
    if smoothing_value is None:
        return _SMOOTHING_DEFAULTS[smoothing]
    _checks.in_range(fn, "smoothing_value", smoothing_value, low=0.0)
    return float(smoothing_value)


def _segment_statistics(fn: str, candidates: ArrayLike, references: ArrayLike, pad_id: int, max_order: int
                        ) -> tuple[Array, tuple[int, ...]]:
    c, r = _token_inputs(fn, candidates, references, pad_id)
    flat_c, flat_r, batch_shape = _flatten_batch(c, r)
    return _batch_bleu_statistics(flat_c, flat_r, pad_id=pad_id, max_order=max_order), batch_shape


# Jitted batch kernels: an eager call compiles once per shape instead of op by op.
@functools.partial(jax.jit, static_argnames=("pad_id", "max_order"))
def _batch_bleu_statistics(c: Array, r: Array, *, pad_id: int, max_order: int) -> Array:
    return jax.vmap(lambda a, b: _bleu_statistics(a, b, pad_id, max_order))(c, r)


def bleu(candidates: ArrayLike, references: ArrayLike, *, pad_id: int = 0, max_order: int = 4,
         smoothing: Literal["none", "floor", "add-k", "exp"] = "none", smoothing_value: float | None = None,
         effective_order: bool = True) -> Array:
    r"""Sentence-level BLEU on token ids, per example (sacrebleu's, as a fraction).

    .. math::

        \mathrm{BLEU} = \mathrm{BP} \cdot \exp\Big(\frac1{N'} \sum_{n=1}^{N'} \log p_n\Big),
        \qquad \mathrm{BP} = \min\big(1, e^{1 - r / c}\big)

    with :math:`p_n` the clipped n-gram precision (each candidate n-gram
    counts at most as often as in the reference where it is most frequent),
    :math:`c` the candidate length, :math:`r` the closest reference length
    (ties to the shorter) and :math:`N'` the effective order (the largest
    :math:`n \le N` for which the candidate has n-grams) when
    ``effective_order`` is true, else :math:`N`. Equals
    ``sacrebleu.sentence_bleu(hyp, refs, tokenize="none", smooth_method=smoothing,
    smooth_value=smoothing_value, use_effective_order=effective_order).score / 100``
    on the ids joined by spaces.

    Smoothing (Chen and Cherry 2014), applied where a precision is 0:
    ``"none"`` (the score is 0), ``"floor"`` (method 1, :math:`p_n =
    \epsilon / \text{total}_n`, ``smoothing_value`` 0.1), ``"add-k"`` (method
    2, add ``smoothing_value`` (1) to matches and totals for :math:`n > 1`),
    ``"exp"`` (method 3, NIST: the k-th zero precision becomes
    :math:`1 / (2^k \, \text{total}_n)`). As in sacrebleu, a candidate without
    a single unigram match scores 0 under every smoothing.

    Args:
      candidates: ``[..., L]`` integer token ids, padded with ``pad_id``.
      references: ``[..., R, L]`` integer token ids; all-padding rows are absent
        references.
      pad_id: the padding id, removed wherever it occurs.
      max_order: the largest n-gram order ``N``.
      smoothing: ``"none"``, ``"floor"``, ``"add-k"`` or ``"exp"``.
      smoothing_value: the ``"floor"``/``"add-k"`` constant (default 0.1 / 1).
      effective_order: average over the orders the candidate has (sacrebleu's
        sentence-level default).

    Returns:
      ``[...]`` float32 scores in ``[0, 1]``.

    Raises:
      ValueError: shapes that do not pair up, a bad ``max_order``,
        ``smoothing`` or ``smoothing_value``.
      TypeError: non-integer token ids.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.text import bleu
      >>> candidates = jnp.array([[5, 6, 7, 8, 0], [5, 6, 0, 0, 0]])
      >>> references = jnp.array([[[5, 6, 7, 8, 9]], [[5, 6, 7, 8, 9]]])
      >>> [round(float(x), 4) for x in bleu(candidates, references)]  # brevity penalties e^(1-5/4), e^(1-5/2)
      [0.7788, 0.2231]

    References:
      Papineni, Roukos, Ward and Zhu, "BLEU: a Method for Automatic Evaluation
      of Machine Translation", ACL 2002, https://aclanthology.org/P02-1040;
      Post, "A Call for Clarity in Reporting BLEU Scores", WMT 2018,
      https://aclanthology.org/W18-6319; Chen and Cherry, "A Systematic
      Comparison of Smoothing Techniques for Sentence-Level BLEU", WMT 2014,
      https://aclanthology.org/W14-3346
    """
    fn = "bleu"
    _checks.choice(fn, "effective_order", effective_order, (True, False))
    value = _bleu_options(fn, max_order, smoothing, smoothing_value)
    stats, batch_shape = _segment_statistics(fn, candidates, references, pad_id, max_order)
    scores: Array = _bleu_from_statistics(stats, max_order=max_order, smoothing=smoothing, smoothing_value=value,
                                          effective_order=effective_order)
    return scores.reshape(batch_shape)


def corpus_bleu(candidates: ArrayLike, references: ArrayLike, *, pad_id: int = 0, max_order: int = 4,
                smoothing: Literal["none", "floor", "add-k", "exp"] = "none", smoothing_value: float | None = None,
                effective_order: bool = False, where: ArrayLike | None = None) -> Array:
    r"""Corpus-level BLEU on token ids, a scalar (sacrebleu's, as a fraction).

    The n-gram matches, n-gram totals, candidate lengths and closest
    reference lengths of every example are summed first and BLEU is computed
    once from the sums (Papineni et al. 2002), so it is *not* the mean of
    :func:`bleu`. Equals ``sacrebleu.corpus_bleu(hyps, refs, tokenize="none",
    smooth_method=smoothing, smooth_value=smoothing_value,
    use_effective_order=effective_order).score / 100``. With :math:`m_n`, :math:`t_n`
    the clipped n-gram matches and n-gram totals summed over the corpus, :math:`c`
    the summed candidate lengths and :math:`r` the summed closest reference lengths:

    .. math::

        \mathrm{BLEU} = \min\big(1, e^{1 - r / c}\big)
                        \exp\Big(\frac{1}{N} \sum_{n=1}^{N} \log \frac{m_n}{t_n}\Big)

    Args:
      candidates: ``[..., L]`` integer token ids, padded with ``pad_id``.
      references: ``[..., R, L]`` integer token ids; all-padding rows are absent.
      pad_id: the padding id.
      max_order: the largest n-gram order.
      smoothing: ``"none"``, ``"floor"``, ``"add-k"`` or ``"exp"`` (see :func:`bleu`).
      smoothing_value: the ``"floor"``/``"add-k"`` constant.
      effective_order: as in :func:`bleu` (sacrebleu's corpus default is off).
      where: boolean ``[...]``: examples to include (e.g. to drop padded
        batch rows); ``None`` includes all.

    Returns:
      A float32 scalar in ``[0, 1]``.

    Raises:
      ValueError: as :func:`bleu`, or a ``where`` that does not broadcast to ``[...]``.
      TypeError: non-integer token ids or a non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.text import corpus_bleu
      >>> candidates = jnp.array([[5, 6, 7, 8, 0], [5, 6, 0, 0, 0]])
      >>> references = jnp.array([[[5, 6, 7, 8, 9]], [[5, 6, 7, 8, 9]]])
      >>> round(float(corpus_bleu(candidates, references)), 4)  # every precision 1, e^(1 - 10/6)
      0.5134

    References:
      Papineni, Roukos, Ward and Zhu, "BLEU: a Method for Automatic Evaluation
      of Machine Translation", ACL 2002, https://aclanthology.org/P02-1040;
      Post, "A Call for Clarity in Reporting BLEU Scores", WMT 2018,
      https://aclanthology.org/W18-6319
    """
    fn = "corpus_bleu"
    _checks.choice(fn, "effective_order", effective_order, (True, False))
    value = _bleu_options(fn, max_order, smoothing, smoothing_value)
    stats, batch_shape = _segment_statistics(fn, candidates, references, pad_id, max_order)
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), batch_shape,
                                      "the candidates' batch shape")
        stats = jnp.where(where.reshape(-1, 1), stats, 0)
    score: Array = _bleu_from_statistics(jnp.sum(stats, axis=0), max_order=max_order, smoothing=smoothing,
                                         smoothing_value=value, effective_order=effective_order)
    return score


# ----------------------------------------------------------------------- ROUGE
def _best_by_f(overlap: Array, pred_total: Array, ref_total: Array, present: Array) -> RougeScore:
    """rouge-score's ``score_multi``: the present reference with the highest F, the first on ties.

    ``P = o / p`` and ``R = o / r`` give ``F = 2 o / (p + r)``, so references
    are compared exactly in integers (``o_i (p + r_j)`` against
    ``o_j (p + r_i)``) and mathematical ties go to the first reference.
    """
    p = jnp.maximum(pred_total, 1)
    r = jnp.maximum(ref_total, 1)
    o = jnp.where(present, overlap, 0)
    score_num, score_den = o[:, None] * (p + r)[None, :], o[None, :] * (p + r)[:, None]
    beats_all = jnp.all((score_num >= score_den) | ~present[None, :], axis=1) & present
    best = jnp.argmax(beats_all)
    any_present = jnp.any(present)
    precision = _safe_ratio(o[best], p)
    recall = _safe_ratio(o[best], r[best])

    def pick(x: Array) -> Array:
        return jnp.where(any_present, x, 0.0)

    return RougeScore(pick(precision), pick(recall), pick(_f_measure(precision, recall)))


def _rouge_n_single(candidate: Array, references: Array, pad_id: int, n: int) -> RougeScore:
    a, la = _compact(candidate, pad_id)
    refs, lens = jax.vmap(_compact, in_axes=(0, None))(references, pad_id)
    positions = jnp.arange(a.shape[0])
    same = _ngram_equal(a, la, a, la, n)[n - 1]
    earlier = jnp.sum(same & (positions[:, None] < positions[None, :]), axis=0)
    inside = (positions + n) <= la

    def one(b: Array, lb: Array) -> tuple[Array, Array]:
        in_ref = jnp.sum(_ngram_equal(a, la, b, lb, n)[n - 1], axis=1)
        overlap = jnp.sum(inside & (earlier < in_ref), dtype=jnp.int32)
        return overlap, jnp.maximum(lb - n + 1, 0)

    overlap, ref_total = jax.vmap(one)(refs, lens)
    return _best_by_f(overlap, jnp.maximum(la - n + 1, 0), ref_total, lens > 0)


def _lcs_length(a: Array, la: Array, b: Array, lb: Array) -> Array:
    """Longest common subsequence of two compacted sequences by a row scan.

    Row ``i`` of the LCS table is the running maximum over ``j`` of
    ``max(prev[j], prev[j-1] + 1 if a_i == b_j)``, so each row is one
    ``cummax`` and the whole table one ``lax.scan``.
    """
    j = jnp.arange(b.shape[0])

    def row(prev: Array, xs: tuple[Array, Array]) -> tuple[Array, None]:
        token, i = xs
        match = (token == b) & (j < lb) & (i < la)
        diagonal = jnp.concatenate([jnp.zeros((1,), prev.dtype), prev[:-1]]) + 1
        x = jnp.maximum(prev, jnp.where(match, diagonal, 0))
        return jax.lax.cummax(x), None

    last, _ = jax.lax.scan(row, jnp.zeros(b.shape, jnp.int32), (a, jnp.arange(a.shape[0])))
    return jnp.max(last) if b.shape[0] else jnp.int32(0)


def _rouge_l_single(candidate: Array, references: Array, pad_id: int) -> RougeScore:
    a, la = _compact(candidate, pad_id)
    refs, lens = jax.vmap(_compact, in_axes=(0, None))(references, pad_id)

    lcs = jax.vmap(lambda b, lb: _lcs_length(a, la, b, lb))(refs, lens)
    # rouge-score gives 0 when either sentence is empty; LCS is 0 then anyway.
    return _best_by_f(lcs, la, lens, lens > 0)


@functools.partial(jax.jit, static_argnames=("kind", "pad_id", "n"))
def _batch_rouge(c: Array, r: Array, *, kind: str, pad_id: int, n: int) -> RougeScore:
    if kind == "n":
        return jax.vmap(lambda a, b: _rouge_n_single(a, b, pad_id, n))(c, r)
    return jax.vmap(lambda a, b: _rouge_l_single(a, b, pad_id))(c, r)


def _map_examples(c: Array, r: Array, *, kind: str, pad_id: int, n: int = 0) -> RougeScore:
    flat_c, flat_r, batch_shape = _flatten_batch(c, r)
    out = _batch_rouge(flat_c, flat_r, kind=kind, pad_id=pad_id, n=n)
    return RougeScore(*(x.reshape(batch_shape) for x in out))


def rouge_n(candidates: ArrayLike, references: ArrayLike, *, n: int = 1, pad_id: int = 0) -> RougeScore:
    r"""ROUGE-N on token ids, per example: n-gram precision, recall and F-measure.

    .. math::

        P = \frac{\sum_g \min(c_g, r_g)}{\max(\sum_g c_g, 1)}, \quad
        R = \frac{\sum_g \min(c_g, r_g)}{\max(\sum_g r_g, 1)}, \quad
        F = \frac{2PR}{P + R}

    with :math:`c_g`, :math:`r_g` the counts of n-gram :math:`g` in the
    candidate and the reference. With several references the one with the
    highest F is reported (the first on ties), as ``rouge-score``'s
    ``score_multi``. Equals ``rouge_scorer.RougeScorer(["rouge{n}"],
    use_stemmer=False)`` on the ids joined by spaces.

    Args:
      candidates: ``[..., L]`` integer token ids, padded with ``pad_id``.
      references: ``[..., R, L]`` integer token ids; all-padding rows are absent.
      n: the n-gram order, a positive Python int (1 and 2 are the usual ones).
      pad_id: the padding id.

    Returns:
      A :class:`RougeScore` ``(precision, recall, fmeasure)`` of ``[...]``
      float32 arrays in ``[0, 1]``.

    Raises:
      ValueError: shapes that do not pair up, or ``n < 1``.
      TypeError: non-integer token ids.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.text import rouge_n
      >>> score = rouge_n(jnp.array([[3, 4, 5, 0]]), jnp.array([[[3, 4, 6, 7]]]), n=1)
      >>> [round(float(x[0]), 4) for x in score]
      [0.6667, 0.5, 0.5714]

    References:
      Lin, "ROUGE: A Package for Automatic Evaluation of Summaries", ACL
      Workshop 2004, https://aclanthology.org/W04-1013; Google Research
      ``rouge-score``, https://github.com/google-research/google-research/tree/master/rouge
    """
    fn = "rouge_n"
    _checks.integer_option(fn, "n", n, allow_none=False)
    if n < 1:
        _checks._fail(ValueError, _checks.message(fn, "n", "must be >= 1", n))
    c, r = _token_inputs(fn, candidates, references, pad_id)
    return _map_examples(c, r, kind="n", pad_id=pad_id, n=n)


def rouge_l(candidates: ArrayLike, references: ArrayLike, *, pad_id: int = 0) -> RougeScore:
    r"""ROUGE-L on token ids, per example: longest-common-subsequence P, R and F.

    .. math::

        P = \frac{\mathrm{LCS}(c, r)}{|c|}, \quad
        R = \frac{\mathrm{LCS}(c, r)}{|r|}, \quad F = \frac{2PR}{P + R}

    (0 when either sentence is empty). With several references the one with
    the highest F is reported (the first on ties). Equals
    ``rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)`` on the ids
    joined by spaces. The LCS table is a ``lax.scan`` over candidate tokens
    whose rows are running maxima, ``O(L^2)`` work.

    Args:
      candidates: ``[..., L]`` integer token ids, padded with ``pad_id``.
      references: ``[..., R, L]`` integer token ids; all-padding rows are absent.
      pad_id: the padding id.

    Returns:
      A :class:`RougeScore` ``(precision, recall, fmeasure)`` of ``[...]``
      float32 arrays in ``[0, 1]``.

    Raises:
      ValueError: shapes that do not pair up.
      TypeError: non-integer token ids.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.text import rouge_l
      >>> score = rouge_l(jnp.array([[3, 9, 4, 5]]), jnp.array([[[3, 4, 6, 5]]]))
      >>> [round(float(x[0]), 4) for x in score]
      [0.75, 0.75, 0.75]

    References:
      Lin, "ROUGE: A Package for Automatic Evaluation of Summaries", ACL
      Workshop 2004, https://aclanthology.org/W04-1013; Google Research
      ``rouge-score``, https://github.com/google-research/google-research/tree/master/rouge
    """
    fn = "rouge_l"
    c, r = _token_inputs(fn, candidates, references, pad_id)
    return _map_examples(c, r, kind="l", pad_id=pad_id)


# ---------------------------------------------------------------------- METEOR
def _meteor_single(candidate: Array, references: Array, pad_id: int, alpha: Array, beta: Array,
                   gamma: Array) -> Array:
    a, la = _compact(candidate, pad_id)
    refs, lens = jax.vmap(_compact, in_axes=(0, None))(references, pad_id)
    i = jnp.arange(a.shape[0])
    # Occurrences of the same token after each candidate position.
    later_a = jnp.sum((a[:, None] == a[None, :]) & (i[None, :] > i[:, None]) & (i[None, :] < la), axis=1)

    def one(b: Array, lb: Array) -> Array:
        j = jnp.arange(b.shape[0])
        later_b = jnp.sum((b[:, None] == b[None, :]) & (j[None, :] > j[:, None]) & (j[None, :] < lb), axis=1)
        # nltk aligns from the last candidate word backwards, each to the last
        # unused equal reference word: the k-th occurrence from the end of a
        # token in the candidate pairs with its k-th occurrence from the end in
        # the reference.
        align = ((a[:, None] == b[None, :]) & (i < la)[:, None] & (j < lb)[None, :]
                 & (later_a[:, None] == later_b[None, :]))
        matched = jnp.any(align, axis=1)
        target = jnp.sum(jnp.where(align, j[None, :], 0), axis=1)
        # A chunk continues when consecutive candidate words align to
        # consecutive reference words (nltk's _count_chunks).
        continues = matched[1:] & matched[:-1] & (target[1:] == target[:-1] + 1)
        matches = jnp.sum(matched).astype(jnp.float32)
        chunks = matches - jnp.sum(continues).astype(jnp.float32)
        precision = _numerics.safe_div(matches, la.astype(jnp.float32))
        recall = _numerics.safe_div(matches, lb.astype(jnp.float32))
        fmean = _numerics.safe_div(precision * recall, alpha * precision + (1.0 - alpha) * recall)
        fragmentation = _numerics.safe_div(chunks, matches)
        penalty = gamma * _numerics.safe_pow(fragmentation, beta)
        return jnp.where(matches > 0, (1.0 - penalty) * fmean, 0.0)

    scores = jax.vmap(one)(refs, lens)
    return jnp.max(jnp.where(lens > 0, scores, 0.0), initial=0.0)


@functools.partial(jax.jit, static_argnames=("pad_id",))
def _batch_meteor(c: Array, r: Array, alpha: Array, beta: Array, gamma: Array, *, pad_id: int) -> Array:
    return jax.vmap(lambda a, b: _meteor_single(a, b, pad_id, alpha, beta, gamma))(c, r)


def meteor(candidates: ArrayLike, references: ArrayLike, *, pad_id: int = 0, alpha: ArrayLike = 0.9,
           beta: ArrayLike = 3.0, gamma: ArrayLike = 0.5) -> Array:
    r"""Exact-match METEOR on token ids, per example (nltk's, without stems or synonyms).

    Candidate and reference tokens are aligned one to one on exact matches
    (as nltk does: from the last candidate token backwards, each to the last
    unused equal reference token); with :math:`m` matches, :math:`ch` chunks
    (maximal runs of matches adjacent in both sentences):

    .. math::

        P = \frac{m}{|c|}, \quad R = \frac{m}{|r|}, \quad
        F_{mean} = \frac{P R}{\alpha P + (1 - \alpha) R}, \quad
        \mathrm{METEOR} = \Big(1 - \gamma \big(\tfrac{ch}{m}\big)^{\beta}\Big) F_{mean}

    and 0 without matches. With several references the best score is taken.
    Equals ``nltk.translate.meteor_score.meteor_score(refs, hyp, alpha=alpha,
    beta=beta, gamma=gamma)`` with an identity stemmer and a WordNet without
    synsets, on the ids as strings.

    Args:
      candidates: ``[..., L]`` integer token ids, padded with ``pad_id``.
      references: ``[..., R, L]`` integer token ids; all-padding rows are absent.
      pad_id: the padding id.
      alpha: precision/recall balance in ``[0, 1]`` (0.9: mostly recall).
      beta: exponent of the fragmentation penalty, ``>= 0``.
      gamma: weight of the fragmentation penalty in ``[0, 1]``.

    Returns:
      ``[...]`` float32 scores in ``[0, 1]``.

    Raises:
      ValueError: shapes that do not pair up, or hyper-parameters out of range.
      TypeError: non-integer token ids.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.text import meteor
      >>> candidates = jnp.array([[1, 2, 3, 4, 0, 0], [4, 3, 2, 1, 0, 0]])
      >>> references = jnp.array([[[1, 2, 3, 4, 5, 6]], [[1, 2, 3, 4, 5, 6]]])
      >>> [round(float(x), 4) for x in meteor(candidates, references)]  # 1 chunk, then 4
      [0.6843, 0.3448]

    References:
      Banerjee and Lavie, "METEOR: An Automatic Metric for MT Evaluation with
      Improved Correlation with Human Judgments", ACL Workshop 2005,
      https://aclanthology.org/W05-0909; Lavie and Agarwal, "METEOR: An
      Automatic Metric for MT Evaluation with High Levels of Correlation with
      Human Judgments", WMT 2007, https://aclanthology.org/W07-0734; nltk
      ``meteor_score``, https://www.nltk.org/api/nltk.translate.meteor_score.html
    """
    fn = "meteor"
    _checks.in_range(fn, "alpha", alpha, low=0.0, high=1.0)
    _checks.in_range(fn, "beta", beta, low=0.0)
    _checks.in_range(fn, "gamma", gamma, low=0.0, high=1.0)
    c, r = _token_inputs(fn, candidates, references, pad_id)
    alpha, beta, gamma = (jnp.asarray(x, jnp.float32) for x in (alpha, beta, gamma))
    flat_c, flat_r, batch_shape = _flatten_batch(c, r)
    scores: Array = _batch_meteor(flat_c, flat_r, alpha, beta, gamma, pad_id=pad_id)
    return scores.reshape(batch_shape)


# ------------------------------------------------------------------------ loss
@_registry.builtin(aliases=("mrt_loss", "expected_risk_loss"), tags=("sequence", "text"))
def minimum_risk_loss(sample_log_probs: ArrayLike, rewards: ArrayLike, *, alpha: ArrayLike = 0.005,
                      reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                      where: ArrayLike | None = None) -> Array:
    r"""Minimum risk training: expected ``1 - reward`` over sampled sequences.

    For each example, ``S`` sequences are sampled from the model; with
    :math:`\log p(y_s \mid x)` their log-probabilities and :math:`r_s` their
    rewards (a sentence metric such as :func:`bleu`, in ``[0, 1]``):

    .. math::

        Q_s = \frac{\exp(\alpha \log p(y_s \mid x))}{\sum_{s'} \exp(\alpha \log p(y_{s'} \mid x))},
        \qquad \ell = \sum_{s=1}^{S} Q_s \, (1 - r_s)

    the risk under the model's distribution renormalised over the samples and
    sharpened by :math:`\alpha` (Shen et al. 2016, eq. 11-13). The gradient
    w.r.t. the log-probabilities is :math:`\alpha Q_s (\bar\ell - (1 - r_s))`:
    samples better than the expected risk are pushed up. The softmax is
    computed stably in log space, so log-probabilities of any magnitude are
    fine; rewards are differentiable too (zero gradient if they come from a
    metric on token ids).

    Args:
      sample_log_probs: ``[..., S]`` float sequence log-probabilities of the
        ``S`` samples (sums of token log-probabilities).
      rewards: ``[..., S]`` real rewards in ``[0, 1]``, same shape.
      alpha: the sharpness :math:`\alpha \ge 0` (0.005 in the paper; 0 weighs
        the samples uniformly). May be traced.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example risks for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, a rank-0 input, ``alpha < 0``, or an unknown
        ``reduction``.
      TypeError: non-float ``sample_log_probs``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.text import minimum_risk_loss
      >>> log_probs = jnp.array([[-1.0, -1.0], [0.0, -1e9]])
      >>> rewards = jnp.array([[1.0, 0.0], [0.25, 1.0]])
      >>> minimum_risk_loss(log_probs, rewards, alpha=1.0, reduction="none")
      Array([0.5 , 0.75], dtype=float32)

    References:
      Shen, Cheng, He, He, Wu, Sun and Liu, "Minimum Risk Training for Neural
      Machine Translation", ACL 2016, https://aclanthology.org/P16-1159
    """
    fn = "minimum_risk_loss"
    _checks.in_range(fn, "alpha", alpha, low=0.0)
    (lp, r), _ = _checks.elementwise_inputs(fn, None, [("sample_log_probs", sample_log_probs)], [("rewards", rewards)])
    _checks.rank_at_least(fn, "sample_log_probs", lp, 1, "[..., num_samples]")
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), lp.shape[:-1],
                                      "the unreduced loss shape")
        lp = _numerics.mask_inputs(where[..., None], lp)
        r = _numerics.mask_inputs(where[..., None], r)
    q = jax.nn.softmax(jnp.asarray(alpha, lp.dtype) * lp, axis=-1)
    values = jnp.sum(q * (1.0 - r), axis=-1)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)

