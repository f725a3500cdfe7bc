"""Reference tests for ``jaxloss.text``.

BLEU against sacrebleu (``tokenize="none"``), ROUGE against Google's
``rouge-score`` (no stemming), METEOR against nltk's ``meteor_score`` with an
identity stemmer and a WordNet without synsets, all on the token ids joined by
spaces with the present (non-padding) references; plus closed forms that run
without those packages, and jit/vmap agreement of every metric.
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxloss.text import bleu, corpus_bleu, meteor, minimum_risk_loss, rouge_l, rouge_n

SMOOTHINGS = ["none", "floor", "add-k", "exp"]


# ------------------------------------------------------------ compiled once, shared
# XLA compilation is most of this file's run time (each static option and each
# shape is a new program). The calls a test compares are therefore traced
# together into one jitted program per argument shapes; the eager path is
# checked in test_metric_jit_equals_eager_and_vmap_equals_batched.
def _is_static(value):
    return value is None or isinstance(value, (str, bool, int, float))


@functools.cache
def _program(entries):
    return jax.jit(lambda *args, **arrays: [fn(*args, **arrays, **dict(options)) for fn, options in entries])


def _each(calls, *args, **arrays):
    """``[fn(*args, **arrays, **options) for fn, options in calls]`` in one jitted program
    (``options``: dicts of static options)."""
    return _program(tuple((fn, tuple(sorted(options.items()))) for fn, options in calls))(*args, **arrays)


def _jit(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` jitted, Python scalars and strings static."""
    static = {k: v for k, v in kwargs.items() if _is_static(v)}
    return _each([(fn, static)], *args, **{k: v for k, v in kwargs.items() if not _is_static(v)})[0]


def _random_batch(seed, batch=300, refs=3, length=10, vocab=6):
    rng = np.random.default_rng(seed)
    cand = rng.integers(1, vocab, size=(batch, length))
    ref = rng.integers(1, vocab, size=(batch, refs, length))
    cand_len = rng.integers(0, length + 1, size=batch)
    ref_len = rng.integers(0, length + 1, size=(batch, refs))
    ref_len[:, 0] = np.maximum(ref_len[:, 0], 1)  # at least one present reference
    cand[np.arange(length)[None] >= cand_len[:, None]] = 0
    ref[np.arange(length)[None, None] >= ref_len[:, :, None]] = 0
    return cand.astype(np.int32), ref.astype(np.int32)


def _text(ids):
    return " ".join(str(int(t)) for t in ids if t != 0)


def _strings(cand, ref):
    hyps = [_text(c) for c in cand]
    refs = [[_text(r) for r in rr if _text(r)] for rr in ref]
    return hyps, refs


# ------------------------------------------------------------------------ BLEU
@pytest.mark.parametrize("smoothing", SMOOTHINGS)
@pytest.mark.parametrize("vocab", [6, 40])  # many matches / many zero precisions
def test_bleu_matches_sacrebleu(smoothing, vocab):
    sacrebleu = pytest.importorskip("sacrebleu")
    logging.getLogger("sacrebleu").setLevel(logging.ERROR)
    cand, ref = _random_batch(0, vocab=vocab)
    hyps, refs = _strings(cand, ref)
    calls = [(bleu, {"smoothing": s, "effective_order": e}) for s in SMOOTHINGS for e in (True, False)]
    every = _each(calls, cand, ref)  # one program for all the parametrizations
    for effective_order in (True, False):
        got = every[calls.index((bleu, {"smoothing": smoothing, "effective_order": effective_order}))]
        expect = [sacrebleu.sentence_bleu(h, r, smooth_method=smoothing, tokenize="none",
                                          use_effective_order=effective_order).score / 100
                  for h, r in zip(hyps, refs)]
        np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
def test_corpus_bleu_matches_sacrebleu(smoothing):
    sacrebleu = pytest.importorskip("sacrebleu")
    cand, ref = _random_batch(1, vocab=8)
    ref[:, 1:] = ref[:, :1]  # sacrebleu needs every reference stream complete: use R copies of one
    hyps = [_text(c) for c in cand]
    streams = [[_text(r) for r in ref[:, k]] for k in range(ref.shape[1])]
    expect = sacrebleu.corpus_bleu(hyps, streams, smooth_method=smoothing, tokenize="none").score / 100
    calls = [(corpus_bleu, {"smoothing": s}) for s in SMOOTHINGS]  # one program for all the parametrizations
    index = SMOOTHINGS.index(smoothing)
    np.testing.assert_allclose(_each(calls, cand, ref)[index], expect, rtol=1e-5)
    # two distinct reference streams
    ref2 = _random_batch(2, vocab=8)[1][:, :2]
    ref2[:, 1, 0] = np.where(ref2[:, 1, 0] == 0, 3, ref2[:, 1, 0])
    streams2 = [[_text(r) for r in ref2[:, k]] for k in range(2)]
    expect2 = sacrebleu.corpus_bleu(hyps, streams2, smooth_method=smoothing, tokenize="none").score / 100
    np.testing.assert_allclose(_each(calls, cand, ref2)[index], expect2, rtol=1e-5)


def test_bleu_max_order_and_smoothing_value_match_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    from sacrebleu.metrics import BLEU
    cand, ref = _random_batch(3, batch=100, vocab=12)
    hyps, refs = _strings(cand, ref)
    options = [(2, "floor", 0.3), (3, "add-k", 0.5), (6, "exp", None)]
    every = _each([(bleu, {"max_order": o, "smoothing": m, "smoothing_value": v}) for o, m, v in options], cand, ref)
    for (order, method, value), got in zip(options, every):
        metric = BLEU(tokenize="none", smooth_method=method, smooth_value=value, max_ngram_order=order,
                      effective_order=True)
        expect = [metric.sentence_score(h, r).score / 100 for h, r in zip(hyps, refs)]
        np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)


def test_bleu_closed_forms_and_edge_cases():
    # Papineni et al. (2002): clipped precision; the repeated "7" counts once.
    ref = np.array([[[7, 8, 9, 10]]], np.int32)
    assert float(_jit(bleu, np.array([[7, 7, 7, 7]], np.int32), ref, max_order=1)[0]) == pytest.approx(0.25)
    # exact match is 1; empty candidate is 0; no reference is 0
    assert float(_jit(bleu, ref[:, 0], ref)[0]) == pytest.approx(1.0)
    assert float(_jit(bleu, np.zeros((1, 4), np.int32), ref)[0]) == 0.0
    assert float(_jit(bleu, ref[:, 0], np.zeros((1, 1, 4), np.int32))[0]) == 0.0
    # candidate longer than every reference: no brevity penalty, precision 4/6 for unigrams
    long = np.array([[7, 8, 9, 10, 11, 12]], np.int32)
    ref6 = np.concatenate([ref, np.zeros((1, 1, 2), np.int32)], axis=2)
    expect = np.exp(np.mean(np.log([4 / 6, 3 / 5, 2 / 4, 1 / 3])))
    np.testing.assert_allclose(_jit(bleu, long, ref6)[0], expect, rtol=1e-6)
    # padding in the middle is removed, not a token
    mid = np.array([[7, 0, 8, 9, 0, 10]], np.int32)
    assert float(_jit(bleu, mid, ref6)[0]) == pytest.approx(1.0)
    # all-padding reference rows are absent: adding one changes nothing
    two = np.concatenate([ref6, np.zeros((1, 1, 6), np.int32)], axis=1)
    np.testing.assert_allclose(_jit(bleu, long, two), _jit(bleu, long, ref6))


@pytest.mark.parametrize("length", [1, 2])
def test_bleu_on_rows_shorter_than_the_order_matches_sacrebleu(length):
    # Issue 11 item 2: an n-gram order above the padded length has no n-grams
    # (it used to fail to trace). Every order up to 5 on every length.
    pytest.importorskip("sacrebleu")
    from sacrebleu.metrics import BLEU
    logging.getLogger("sacrebleu").setLevel(logging.ERROR)
    cand, ref = _random_batch(20 + length, batch=40, refs=2, length=length, vocab=3)
    hyps, refs = _strings(cand, ref)
    single = ref[:, :1]  # present in every example (_random_batch): a complete reference stream
    stream = [_text(r[0]) for r in single]
    # Every option below in two programs (sentence and corpus BLEU).
    sentence = [(o, s, e) for o in range(1, 6) for s in ("none", "exp") for e in (True, False)]
    corpus = [(o, e) for o in range(1, 6) for e in (True, False)]
    sentence_got = _each([(bleu, {"max_order": o, "smoothing": s, "effective_order": e}) for o, s, e in sentence],
                         cand, ref)
    corpus_got = _each([(corpus_bleu, {"max_order": o, "effective_order": e}) for o, e in corpus], cand, single)
    for (order, smoothing, effective_order), got in zip(sentence, sentence_got):
        metric = BLEU(tokenize="none", smooth_method=smoothing, max_ngram_order=order,
                      effective_order=effective_order)
        expect = [metric.sentence_score(h, r).score / 100 for h, r in zip(hyps, refs)]
        np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)
    for (order, effective_order), got in zip(corpus, corpus_got):
        metric = BLEU(tokenize="none", max_ngram_order=order, effective_order=effective_order)
        expect = metric.corpus_score(hyps, [stream]).score / 100
        np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)


def test_bleu_issue_example_two_tokens():
    # The example of issue 11: sacrebleu gives 1.0 with effective order (the
    # mean runs over unigrams and bigrams) and 0 without (no 3- or 4-grams).
    cand, ref = jnp.array([[1, 2]]), jnp.array([[[1, 2]]])
    with_effective, without = _each([(bleu, {}), (bleu, {"effective_order": False})], cand, ref)
    assert float(with_effective[0]) == pytest.approx(1.0)
    assert float(without[0]) == 0.0
    assert float(_jit(bleu, jnp.array([[7]]), jnp.array([[[7]]]))[0]) == pytest.approx(1.0)


@pytest.mark.parametrize("length", [1, 2, 3])
def test_rouge_n_on_rows_shorter_than_n_matches_rouge_score(length):
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    cand, ref = _random_batch(30 + length, batch=40, refs=1, length=length, vocab=3)
    hyps, refs = _strings(cand, ref)
    every = _each([(rouge_n, {"n": n}) for n in range(1, 5)], cand, ref)
    for n in range(1, 5):
        scorer = rouge_scorer.RougeScorer([f"rouge{n}"], use_stemmer=False)
        expect = np.array([[getattr(scorer.score(_text(r[0]), h)[f"rouge{n}"], k)
                            for k in ("precision", "recall", "fmeasure")] for h, r in zip(hyps, ref)])
        got = np.stack(every[n - 1], axis=1)
        np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)
        if n > length:
            assert not np.any(got)  # no n-grams on either side


def test_corpus_bleu_where_drops_examples():
    cand, ref = _random_batch(4, batch=20, vocab=6)
    where = np.arange(20) < 12
    np.testing.assert_allclose(_jit(corpus_bleu, cand, ref, where=where), _jit(corpus_bleu, cand[:12], ref[:12]),
                               rtol=1e-6)


# ----------------------------------------------------------------------- ROUGE
def _exact_f_ties(hyps, refs, rouge_type):
    """Examples where two present references tie exactly in F: rouge-score's pick
    among them depends on float64 rounding (ours takes the first); F agrees anyway."""
    from rouge_score import rouge_scorer
    scorer = rouge_scorer.RougeScorer([rouge_type])
    out = []
    for h, rr in zip(hyps, refs):
        fs = [round(scorer.score(r, h)[rouge_type].fmeasure, 9) for r in rr]
        out.append(len(fs) > 1 and fs.count(max(fs)) > 1)
    return np.array(out)


@pytest.mark.parametrize("rouge_type", ["rouge1", "rouge2", "rougeL"])
def test_rouge_matches_rouge_score(rouge_type):
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    cand, ref = _random_batch(5, vocab=7)
    hyps, refs = _strings(cand, ref)
    scorer = rouge_scorer.RougeScorer([rouge_type], use_stemmer=False)
    expect = np.array([[getattr(s[rouge_type], k) for k in ("precision", "recall", "fmeasure")]
                       for s in (scorer.score_multi(r, h) for h, r in zip(hyps, refs))])
    calls = [(rouge_n, {"n": 1}), (rouge_n, {"n": 2}), (rouge_l, {})]  # one program for all the parametrizations
    index = ["rouge1", "rouge2", "rougeL"].index(rouge_type)
    got = np.stack(_each(calls, cand, ref)[index], axis=1)
    np.testing.assert_allclose(got[:, 2], expect[:, 2], rtol=1e-5, atol=1e-6)
    untied = ~_exact_f_ties(hyps, refs, rouge_type)
    assert untied.mean() > 0.5
    np.testing.assert_allclose(got[untied], expect[untied], rtol=1e-5, atol=1e-6)
    # one reference: no ties possible, everything equal
    single = ref[:, :1]
    expect1 = np.array([[getattr(scorer.score(_text(r[0]), h)[rouge_type], k)
                         for k in ("precision", "recall", "fmeasure")] for h, r in zip(hyps, single)])
    got1 = _each(calls, cand, single)[index]
    np.testing.assert_allclose(np.stack(got1, axis=1), expect1, rtol=1e-5, atol=1e-6)


def test_rouge_closed_forms():
    # Lin (2004): ROUGE-1 with clipped counts; ROUGE-L by LCS.
    cand = np.array([[1, 1, 1, 2, 0]], np.int32)
    ref = np.array([[[1, 2, 1, 3, 0]]], np.int32)
    (p, r, f), rouge_lcs = _each([(rouge_n, {"n": 1}), (rouge_l, {})], cand, ref)
    np.testing.assert_allclose([p[0], r[0], f[0]], [3 / 4, 3 / 4, 3 / 4], rtol=1e-6)
    p, r, f = rouge_lcs  # LCS "1 1" or "1 2" ... length 3: "1 (2) 1"? -> "1 1" + ... = 3? (1,2 / 1,1)
    # LCS of [1,1,1,2] and [1,2,1,3] is 2 ("1 2" or "1 1")
    np.testing.assert_allclose([p[0], r[0]], [2 / 4, 2 / 4], rtol=1e-6)
    empty = _jit(rouge_l, np.zeros((1, 5), np.int32), ref)
    assert all(float(x[0]) == 0.0 for x in empty)
    assert all(float(x[0]) == 0.0 for x in _jit(rouge_n, cand, np.zeros((1, 2, 5), np.int32), n=2))


# ---------------------------------------------------------------------- METEOR
class _IdentityStemmer:
    def stem(self, word):
        return word


class _NoSynonyms:
    def synsets(self, word):
        return []


def test_meteor_matches_nltk():
    meteor_score = pytest.importorskip("nltk.translate.meteor_score")
    for seed, vocab in ((6, 5), (7, 12)):
        cand, ref = _random_batch(seed, vocab=vocab)
        hyps, refs = _strings(cand, ref)
        expect = [meteor_score.meteor_score([r.split() for r in rr], h.split(), stemmer=_IdentityStemmer(),
                                            wordnet=_NoSynonyms()) for h, rr in zip(hyps, refs)]
        np.testing.assert_allclose(_jit(meteor, cand, ref), expect, rtol=1e-5, atol=1e-6)
    h, rr = hyps[0], refs[0]
    expect = meteor_score.meteor_score([r.split() for r in rr], h.split(), stemmer=_IdentityStemmer(),
                                       wordnet=_NoSynonyms(), alpha=0.5, beta=2.0, gamma=0.3)
    np.testing.assert_allclose(_jit(meteor, cand[:1], ref[:1], alpha=0.5, beta=2.0, gamma=0.3)[0], expect, rtol=1e-5)


def test_meteor_closed_form():
    # Lavie and Agarwal (2007): 4 matches in 2 chunks, |c| = 4, |r| = 5.
    cand = np.array([[1, 2, 9, 3, 4]], np.int32)
    ref = np.array([[[1, 2, 5, 3, 4]]], np.int32)
    p, r = 4 / 5, 4 / 5
    fmean = p * r / (0.9 * p + 0.1 * r)
    expect = (1 - 0.5 * (2 / 4) ** 3) * fmean
    np.testing.assert_allclose(_jit(meteor, cand, ref)[0], expect, rtol=1e-6)
    assert float(_jit(meteor, np.zeros((1, 5), np.int32), ref)[0]) == 0.0


# --------------------------------------------------------------- jit and vmap
METRICS = {
    "bleu": lambda c, r: bleu(c, r, smoothing="exp"),
    "corpus_bleu": lambda c, r: corpus_bleu(c, r),
    "rouge_1": lambda c, r: rouge_n(c, r, n=1),
    "rouge_2": lambda c, r: rouge_n(c, r, n=2),
    "rouge_l": rouge_l,
    "meteor": meteor,
}


@pytest.mark.parametrize("name", sorted(METRICS))
def test_metric_jit_equals_eager_and_vmap_equals_batched(name):
    fn = METRICS[name]
    cand, ref = _random_batch(8, batch=12, vocab=6)
    stacked_c, stacked_r = cand.reshape(3, 4, -1), ref.reshape((3, 4) + ref.shape[1:])
    # Eager calls compile op by op: all of them on one batch shape [4, ...] (and [...] per example).
    each = [fn(stacked_c[i], stacked_r[i]) for i in range(3)]
    eager = each[0]
    jitted, mapped = jax.jit(lambda c, r: (fn(c[0], r[0]), jax.vmap(fn)(c, r)))(stacked_c, stacked_r)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), eager, jitted)
    jax.tree_util.tree_map(lambda m, *e: np.testing.assert_allclose(m, np.stack(e), rtol=1e-6), mapped, *each)
    if name != "corpus_bleu":  # sentence metrics: a batched call equals per-example calls
        per_example = [fn(stacked_c[0, i], stacked_r[0, i]) for i in range(4)]
        jax.tree_util.tree_map(lambda b, *e: np.testing.assert_allclose(b, np.stack(e), rtol=1e-6),
                               eager, *per_example)


def test_metric_errors():
    c = np.ones((2, 5), np.int32)
    with pytest.raises(ValueError, match="jaxloss.bleu: references"):
        bleu(c, np.ones((2, 5), np.int32))
    with pytest.raises(TypeError, match="jaxloss.rouge_l: candidates"):
        rouge_l(c.astype(np.float32), np.ones((2, 1, 5), np.int32))
    with pytest.raises(ValueError, match="smoothing"):
        bleu(c, np.ones((2, 1, 5), np.int32), smoothing="add-one")
    with pytest.raises(ValueError, match="jaxloss.rouge_n: n"):
        rouge_n(c, np.ones((2, 1, 5), np.int32), n=0)
    with pytest.raises(ValueError, match="jaxloss.meteor: alpha"):
        meteor(c, np.ones((2, 1, 5), np.int32), alpha=1.5)


# ----------------------------------------------------------- minimum risk loss
def test_minimum_risk_loss_closed_form():
    # Shen et al. (2016), eq. 11-13: Q = softmax(alpha * log p) over samples, risk = sum Q (1 - r).
    rng = np.random.default_rng(9)
    log_p = -rng.uniform(1.0, 30.0, size=(5, 7))
    rewards = rng.uniform(size=(5, 7))
    alphas = (0.0, 0.005, 1.0)
    every = _each([(minimum_risk_loss, {"alpha": a, "reduction": "none"}) for a in alphas],
                  log_p.astype(np.float32), rewards.astype(np.float32))
    for alpha, got in zip(alphas, every):
        z = alpha * log_p
        q = np.exp(z - z.max(1, keepdims=True))
        q /= q.sum(1, keepdims=True)
        expect = (q * (1 - rewards)).sum(1)
        np.testing.assert_allclose(got, expect, rtol=1e-5)


def test_minimum_risk_loss_gradient_pushes_good_samples_up():
    log_p = jnp.array([[-3.0, -3.0, -3.0]])
    rewards = jnp.array([[0.9, 0.5, 0.1]])
    grad = jax.jit(jax.grad(lambda lp, r: minimum_risk_loss(lp, r, alpha=1.0)))(log_p, rewards)
    # d risk / d log p_s = alpha Q_s ((1 - r_s) - risk): negative for the best sample
    expect = (1 / 3) * ((1 - rewards) - jnp.mean(1 - rewards))
    np.testing.assert_allclose(grad, expect, rtol=1e-6, atol=1e-7)
    assert grad[0, 0] < 0 < grad[0, 2]


def test_minimum_risk_loss_trains_on_bleu_under_jit():
    # The metric is jittable, so reward and loss live in one jitted function.
    samples = jnp.array([[[5, 6, 7, 0], [9, 9, 9, 0]]], jnp.int32)  # [B=1, S=2, L]
    references = jnp.array([[[5, 6, 7, 0]]], jnp.int32)

    @jax.jit
    def loss(log_p):
        rewards = jax.vmap(lambda s: bleu(s, jnp.broadcast_to(references[:, None], (1, 2, 1, 4))[:, 0], max_order=2),
                           in_axes=1, out_axes=1)(samples)
        return minimum_risk_loss(log_p, rewards, alpha=1.0)

    np.testing.assert_allclose(loss(jnp.array([[0.0, -50.0]])), 0.0, atol=1e-6)
    np.testing.assert_allclose(loss(jnp.array([[-50.0, 0.0]])), 1.0, atol=1e-6)


def test_minimum_risk_loss_empty_batch_and_nan():
    # Issue 11 items 4 and 5: size-0 batch is 0.0 with zero gradients; NaN stays NaN.
    empty = np.zeros((0, 3), np.float32)
    value, (g_lp, g_r) = jax.jit(jax.value_and_grad(minimum_risk_loss, argnums=(0, 1)))(empty, empty)
    assert float(value) == 0.0 and g_lp.shape == (0, 3) and g_r.shape == (0, 3)
    log_p = -np.ones((2, 3), np.float32)
    rewards = np.full((2, 3), 0.5, np.float32)
    bad_lp = log_p.copy()
    bad_lp[1, 1] = np.nan
    bad_r = rewards.copy()
    bad_r[1, 0] = np.nan
    for lp, r in ((bad_lp, rewards), (log_p, bad_r)):
        got = np.asarray(_jit(minimum_risk_loss, lp, r, reduction="none"))
        assert np.isnan(got[1]) and got[0] == pytest.approx(0.5)
        # masked: exactly the clean value
        assert float(_jit(minimum_risk_loss, lp, r, where=np.array([True, False]))) == pytest.approx(0.5)
