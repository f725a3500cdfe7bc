"""Ranking, second part (issue 13): new losses, ``segments``, ``lambdaweight`` and metrics against rax.

References, none computed with our code:

* rax 0.4 itself (``pytest.importorskip("rax")``), called with the same
  ``where``/``segments`` and ``reduce_fn=None`` / ``jnp.mean``.
* NumPy float64 transcriptions of rax's definitions, one list (or segment) at a
  time with plain loops: ``rax/_src/losses.py`` (``softmax_loss``,
  ``poly1_softmax_loss``, ``unique_softmax_loss``, ``listmle_loss``,
  ``pairwise_*_loss``, ``pointwise_*_loss``), ``rax/_src/lambdaweights.py``
  (``labeldiff_lambdaweight``, ``dcg_lambdaweight``, ``dcg2_lambdaweight``) and
  ``rax/_src/metrics.py`` (``dcg_metric``, ``ndcg_metric``, ``mrr_metric``,
  ``ap_metric``, ``precision_metric``, ``recall_metric``), with
  ``rax/_src/utils.py`` ``ranks`` (valid items first, by decreasing score, ties
  by position) and ``normalize_probabilities``.

Inputs have masked items, tied labels, a list without any relevant item and a
list without any valid item.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxloss import ranking

RTOL = 1e-5
ATOL = 1e-6


# ------------------------------------------------------------ compiled once, shared
# XLA compilation is most of this file's run time: an eager call compiles every
# primitive for every new shape, and a gradient of an eager call dozens more.
# The losses (or rax functions) a group of tests compares are therefore traced
# together into one jitted program per (options, argument shapes and dtypes),
# which returns the values a test reads and the gradient of the mean; each test
# reads its own entry. Eager execution equals jit for every registered loss
# (tests/test_invariants.py; metrics: test_metrics_jit_vmap_and_errors).
GRAD = ("none", "mean", "grad")  # values and the mean's gradient w.r.t. the scores
VALUES = ("none", "mean")


def _is_static(value):
    return value is None or callable(value) or isinstance(value, (str, bool, int, float))


def _split(kwargs):
    static = tuple(sorted((k, v) for k, v in kwargs.items() if _is_static(v)))
    return static, {k: v for k, v in kwargs.items() if not _is_static(v)}


def _ours(fn, args, arrays, options, outputs):
    out = {"none": fn(*args, reduction="none", **arrays, **options)}
    if "grad" in outputs:
        out["mean"], out["grad"] = jax.value_and_grad(lambda x: fn(x, *args[1:], **arrays, **options))(args[0])
    else:
        out["mean"] = fn(*args, **arrays, **options)
    return out


def _theirs(fn, args, arrays, options, outputs):
    out = {"none": fn(*args, reduce_fn=None, **arrays, **options)}
    if "grad" in outputs:
        out["mean"], out["grad"] = jax.value_and_grad(
            lambda x: fn(x, *args[1:], reduce_fn=jnp.mean, **arrays, **options))(args[0])
    elif "mean" in outputs:
        out["mean"] = fn(*args, reduce_fn=jnp.mean, **arrays, **options)
    return out


@functools.cache
def _program(side, entries, outputs):
    """One jitted program for ``entries``: ``(name, static options)`` pairs; ``side`` "ours" or "rax"."""
    def run(*args, **arrays):
        if side == "ours":
            return [_ours(getattr(ranking, name), args, arrays, dict(static), outputs) for name, static in entries]
        return [_theirs(_rax_loss(name), args, arrays, dict(static), outputs) for name, static in entries]
    return jax.jit(run)


def _entries(name, static, together):
    entries = [(name, static)]
    for other in together:
        other_name, other_options = other if isinstance(other, tuple) else (other, dict(static))
        entry = (other_name, _split(other_options)[0])
        if entry not in entries:
            entries.append(entry)
    return tuple(sorted(entries, key=repr))


def _eval(name, *args, outputs=GRAD, together=(), **kwargs):
    """Ours: ``{"none", "mean", "grad"}`` of ``ranking.<name>(*args, **kwargs)``, compiled with the
    losses of ``together`` (names sharing these options, or ``(name, options)`` pairs)."""
    static, arrays = _split(kwargs)
    entries = _entries(name, static, together)
    return _program("ours", entries, outputs)(*args, **arrays)[entries.index((name, static))]


def _eval_rax(name, *args, outputs=GRAD, together=(), **kwargs):
    """rax's ``name`` (``reduce_fn`` None and mean, the mean's gradient), compiled as :func:`_eval`."""
    static, arrays = _split(kwargs)
    entries = _entries(name, static, together)
    # rax mixes int32 ranks with float32 scores and broadcasts ranks implicitly: JAX's defaults.
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        return _program("rax", entries, outputs)(*args, **arrays)[entries.index((name, static))]


def _inputs(seed=0, shape=(5, 7), levels=4, segments=False):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=shape).astype(np.float32)
    labels = rng.integers(0, levels, size=shape).astype(np.float32)  # ties on purpose
    labels[0] = 0.0  # a list without any relevant item
    where = rng.random(shape) > 0.25
    where[1] = False  # a list without any valid item
    where[2, :3] = True
    seg = rng.integers(0, 3, size=shape).astype(np.int32) if segments else None
    return scores, labels, where, seg


# ------------------------------------------------------------ NumPy transcriptions
def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def _log_softmax(x):
    return x - x.max() - np.log(np.sum(np.exp(x - x.max())))


def np_softmax_unit(s, y):
    # rax/_src/losses.py softmax_loss: -sum_i y_i log softmax(s)_i
    return -np.sum(y * _log_softmax(s))


def np_poly1_unit(s, y, epsilon=1.0):
    # rax/_src/losses.py poly1_softmax_loss: ce + epsilon (1 - pt), labels
    # normalised by utils.normalize_probabilities (uniform if they sum to 0).
    yn = y / y.sum() if y.sum() != 0 else np.full_like(y, 1.0 / len(y))
    return np_softmax_unit(s, y) + epsilon * (1.0 - np.sum(yn * _softmax(s)))


def np_unique_unit(s, y):
    # rax/_src/losses.py unique_softmax_loss: item i against itself and the items labelled below it.
    total = 0.0
    for i in range(len(s)):
        group = [i] + [j for j in range(len(s)) if y[j] < y[i]]
        total -= (2.0 ** y[i] - 1.0) * (s[i] - np.log(np.sum(np.exp(s[group]))))
    return total


def np_listmle_unit(s, y):
    # rax/_src/losses.py listmle_loss: stable sort by decreasing label, Plackett-Luce NLL.
    order = sorted(range(len(s)), key=lambda i: -y[i])
    ss = s[order]
    return -sum(ss[k] - np.log(np.sum(np.exp(ss[k:]))) for k in range(len(ss)))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_approx_ndcg_unit(s, y, temperature=1.0):
    # rax approx_t12n(ndcg_metric): sigmoid ranks, gain 2^y - 1, discount 1 / log2(1 + rank).
    ranks = np.array([1.0 + sum(_sigmoid((s[j] - s[i]) / temperature) for j in range(len(s)) if j != i)
                      for i in range(len(s))])
    gains = 2.0 ** y - 1.0
    ideal = np.sort(gains)[::-1]
    idcg = np.sum(ideal / np.log2(2.0 + np.arange(len(ideal))))
    return -np.sum(gains / np.log2(1.0 + ranks)) / (idcg if idcg != 0 else 1.0)


UNITS = {
    "ranking_softmax_loss": np_softmax_unit,
    "poly1_softmax_loss": np_poly1_unit,
    "unique_softmax_loss": np_unique_unit,
    "listmle_loss": np_listmle_unit,
    "approx_ndcg_loss": np_approx_ndcg_unit,
}


def np_listwise(name, s, y, where, segments):
    """rax layout: ``[B]`` per list, or ``[B, n]`` with each segment's value at its first valid item."""
    s, y = s.astype(np.float64), y.astype(np.float64)
    unit = UNITS[name]
    b, n = s.shape
    if segments is None:
        out = np.zeros(b)
        for k in range(b):
            if where[k].any():
                out[k] = unit(s[k][where[k]], y[k][where[k]])
        return out, where.any(-1)
    out, first = np.zeros((b, n)), np.zeros((b, n), bool)
    for k in range(b):
        for seg in np.unique(segments[k]):
            items = np.flatnonzero((segments[k] == seg) & where[k])
            if len(items):
                out[k, items[0]] = unit(s[k][items], y[k][items])
                first[k, items[0]] = True
    return out, first


def np_ranks(s, where, segments=None):
    # rax/_src/utils.py ranks: valid items first, then by decreasing score, ties by position; per segment.
    n = len(s)
    seg = np.zeros(n, int) if segments is None else segments
    order = sorted(range(n), key=lambda i: (not where[i], -s[i], i))
    ranks = np.zeros(n)
    for i in range(n):
        ranks[i] = 1 + sum(1 for j in order[:order.index(i)] if seg[j] == seg[i])
    return ranks


def np_lambdaweight(kind, s, y, where, segments):
    # rax/_src/lambdaweights.py with default options (topn=None, normalize=False).
    n = len(s)
    if kind == "labeldiff":
        return np.abs(y[:, None] - y[None, :])
    r = np_ranks(s, where, segments)
    g = 2.0 ** y - 1.0
    d = lambda x: 1.0 / np.log2(x + 1.0)  # noqa: E731
    if kind == "dcg":
        disc = np.abs(d(r)[:, None] - d(r)[None, :])
    else:
        gap = np.abs(r[:, None] - r[None, :])
        with np.errstate(divide="ignore", invalid="ignore"):
            disc = np.where(gap != 0, np.abs(d(gap) - d(gap + 1.0)), 0.0)
    return disc * n * np.abs(g[:, None] - g[None, :])


PAIR_FNS = {
    # rax/_src/losses.py: (pair loss of (s_i - s_j, y_i - y_j), counts every pair?)
    "pairwise_hinge_loss": (lambda d, t: max(0.0, 1.0 - d), False),
    "pairwise_logistic_loss": (lambda d, t: np.log1p(np.exp(-d)), False),
    "pairwise_soft_zero_one_loss": (lambda d, t: _sigmoid(-d), False),
    "pairwise_mse_loss": (lambda d, t: (d - t) ** 2, True),
    "pairwise_qr_loss": (lambda d, t: 0.5 * max(0.0, t - d) + 0.5 * max(0.0, d - t), False),
}


def np_pairwise(name, s, y, where, segments, lambdaweight=None, pair_fn=None):
    s, y = s.astype(np.float64), y.astype(np.float64)
    default_fn, every = PAIR_FNS[name]
    pair_fn = pair_fn or default_fn
    b, n = s.shape
    values, valid = np.zeros((b, n * n)), np.zeros((b, n * n), bool)
    for k in range(b):
        seg = None if segments is None else segments[k]
        lw = None if lambdaweight is None else np_lambdaweight(lambdaweight, s[k], y[k], where[k], seg)
        for i in range(n):
            for j in range(n):
                same = seg is None or seg[i] == seg[j]
                if where[k, i] and where[k, j] and same and (every or y[k, i] > y[k, j]):
                    v = pair_fn(s[k, i] - s[k, j], y[k, i] - y[k, j])
                    values[k, i * n + j] = v * (1.0 if lw is None else lw[i, j])
                    valid[k, i * n + j] = True
    return values, valid


# ------------------------------------------------------------------------ rax side
def _rax():
    return pytest.importorskip("rax")


def _rax_loss(name):
    rax = _rax()
    if name == "approx_ndcg_loss":
        # rax.approx_t12n(rax.ndcg_metric) spelled out (rax 0.4's approx_t12n
        # needs jax.util.wraps, gone from newer JAX).
        step = lambda x: jax.nn.sigmoid(x / 1.0)  # noqa: E731

        def approx_ndcg(scores, labels, **kwargs):
            segments = kwargs.get("segments")
            return -rax.ndcg_metric(scores, labels,
                                    rank_fn=functools.partial(rax.utils.approx_ranks, step_fn=step),
                                    cutoff_fn=functools.partial(rax.utils.approx_cutoff, step_fn=step,
                                                                segments=segments),
                                    **kwargs)
        return approx_ndcg
    return getattr(rax, {"ranking_softmax_loss": "softmax_loss"}.get(name, name))


def _lw_fn(kind):
    rax = _rax()
    return None if kind is None else getattr(rax, f"{kind}_lambdaweight")


LISTWISE = ["ranking_softmax_loss", "poly1_softmax_loss", "unique_softmax_loss", "listmle_loss",
            "approx_ndcg_loss"]
PAIRWISE = list(PAIR_FNS)


def _kw(where, seg, masked, segmented):
    kw = {}
    if masked:
        kw["where"] = jnp.asarray(where)
    if segmented:
        kw["segments"] = jnp.asarray(seg)
    return kw


# rax 0.4 diverges from its own definition in two masked-and-segmented cases,
# where we keep the definition (and the transcription): poly1_softmax_loss
# fails to broadcast (``jnp.all(~where, -1)`` against per-item values), and
# listmle_loss puts a segment's value at its first valid item *after* sorting
# the segment, where an invalid item may now sit, so the value is lost (see
# test_listmle_segments_keep_every_segment).
RAX_DIVERGES = {("poly1_softmax_loss", True, True), ("listmle_loss", True, True)}


@pytest.mark.parametrize("name", LISTWISE)
@pytest.mark.parametrize("masked,segmented", [(False, False), (True, False), (False, True), (True, True)])
def test_listwise_match_rax_and_transcription(name, masked, segmented):
    s, y, where, seg = _inputs(1, segments=True)
    w = where if masked else np.ones_like(where)
    kw = _kw(where, seg, masked, segmented)
    expect, units = np_listwise(name, s, y, w, seg if segmented else None)
    out = _eval(name, s, y, together=LISTWISE, **kw)
    got = out["none"]
    np.testing.assert_allclose(got, expect, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["mean"], expect[units].mean(), rtol=RTOL, atol=ATOL)
    if (name, masked, segmented) in RAX_DIVERGES:
        return
    ref = _eval_rax(name, s, y, together=[n for n in LISTWISE if (n, masked, segmented) not in RAX_DIVERGES], **kw)
    np.testing.assert_allclose(got, ref["none"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["mean"], ref["mean"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["grad"], ref["grad"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", PAIRWISE)
@pytest.mark.parametrize("masked,segmented", [(False, False), (True, True)])
def test_pairwise_match_rax_and_transcription(name, masked, segmented):
    s, y, where, seg = _inputs(2, segments=True)
    w = where if masked else np.ones_like(where)
    kw = _kw(where, seg, masked, segmented)
    expect, valid = np_pairwise(name, s, y, w, seg if segmented else None)
    out = _eval(name, s, y, together=PAIRWISE, **kw)
    got = out["none"]
    np.testing.assert_allclose(got, expect, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["mean"], expect[valid].mean(), rtol=RTOL, atol=ATOL)
    ref = _eval_rax(name, s, y, together=PAIRWISE, **kw)
    np.testing.assert_allclose(got, ref["none"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["mean"], ref["mean"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["grad"], ref["grad"], rtol=1e-4, atol=1e-6)


LAMBDAWEIGHTS = ["dcg", "dcg2", "labeldiff"]
LAMBDA_LOSSES = ["pairwise_logistic_loss", "pairwise_hinge_loss", "pairwise_mse_loss"]


@pytest.mark.parametrize("lambdaweight", LAMBDAWEIGHTS)
@pytest.mark.parametrize("name", LAMBDA_LOSSES)
def test_lambdaweights_match_rax_and_transcription(name, lambdaweight):
    s, y, where, seg = _inputs(3, segments=True)
    s[3, 4] = s[3, 2]  # a score tie: ranks break it by position
    # Every (loss, lambdaweight) of this test in one program per mask/segments layout.
    ours = [(n, {"lambdaweight": k}) for n in LAMBDA_LOSSES for k in LAMBDAWEIGHTS]
    theirs = [(n, {"lambdaweight_fn": _lw_fn(k)}) for n in LAMBDA_LOSSES for k in LAMBDAWEIGHTS]
    for masked, segmented in ((False, False), (True, True)):
        kw = _kw(where, seg, masked, segmented)
        w = where if masked else np.ones_like(where)
        expect, valid = np_pairwise(name, s, y, w, seg if segmented else None, lambdaweight=lambdaweight)
        out = _eval(name, s, y, lambdaweight=lambdaweight, together=ours, **kw)
        got = out["none"]
        np.testing.assert_allclose(got, expect, rtol=RTOL, atol=1e-5)
        ref = _eval_rax(name, s, y, lambdaweight_fn=_lw_fn(lambdaweight), together=theirs, **kw)
        np.testing.assert_allclose(got, ref["none"], rtol=RTOL, atol=1e-5)
        np.testing.assert_allclose(out["mean"], expect[valid].mean(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(out["grad"], ref["grad"], rtol=1e-4, atol=1e-5)


def test_pairwise_qr_options_match_rax():
    s, y, where, _ = _inputs(4)
    options = ((0.2, False), (0.7, True), (1.0, True))
    together = [("pairwise_qr_loss", {"tau": tau, "squared": squared}) for tau, squared in options]
    for tau, squared in options:
        def pair_fn(d, t, tau=tau, squared=squared):
            a, b = max(0.0, t - d), max(0.0, d - t)
            if squared:
                a, b = a * a, b * b
            return tau * a + (1 - tau) * b
        expect, valid = np_pairwise("pairwise_qr_loss", s, y, where, None, pair_fn=pair_fn)
        got = _eval("pairwise_qr_loss", s, y, tau=tau, squared=squared, where=where, outputs=VALUES,
                    together=together)["none"]
        np.testing.assert_allclose(got, expect, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(got, _eval_rax("pairwise_qr_loss", s, y, tau=tau, squared=squared,
                                                  where=jnp.asarray(where), outputs=("none",),
                                                  together=together)["none"], rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="jaxloss.pairwise_qr_loss: tau"):
        ranking.pairwise_qr_loss(s, y, tau=0.0)
    with pytest.raises(ValueError, match="jaxloss.pairwise_hinge_loss: lambdaweight"):
        ranking.pairwise_hinge_loss(s, y, lambdaweight="ndcg")


def test_poly1_epsilon_matches_rax():
    s, y, where, _ = _inputs(5)
    together = [("poly1_softmax_loss", {"epsilon": eps}) for eps in (-0.5, 2.0)]
    for eps in (-0.5, 2.0):
        expect, _ = np_listwise("poly1_softmax_loss", s, y, where, None)
        expect_eps = np.array([0.0 if not where[k].any() else
                               np_poly1_unit(s[k][where[k]].astype(np.float64), y[k][where[k]], eps)
                               for k in range(len(s))])
        got = _eval("poly1_softmax_loss", s, y, epsilon=eps, where=where, outputs=VALUES, together=together)["none"]
        np.testing.assert_allclose(got, expect_eps, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(got, _eval_rax("poly1_softmax_loss", s, y, epsilon=eps, where=jnp.asarray(where),
                                                  outputs=("none",), together=together)["none"], rtol=RTOL, atol=ATOL)


POINTWISE = ["pointwise_sigmoid_loss", "pointwise_mse_loss"]


@pytest.mark.parametrize("name", POINTWISE)
def test_pointwise_match_rax_and_transcription(name):
    s, y, where, _ = _inputs(6)
    s64, y64 = s.astype(np.float64), y.astype(np.float64)
    if name == "pointwise_sigmoid_loss":
        # rax/_src/losses.py: relu(s) - s * clip(y, 0, 1) + log(1 + exp(-|s|))
        expect = np.maximum(s64, 0) - s64 * np.clip(y64, 0, 1) + np.log1p(np.exp(-np.abs(s64)))
    else:
        expect = (s64 - y64) ** 2
    for w in (None, where):
        kw = {} if w is None else {"where": jnp.asarray(w)}
        mask = np.ones_like(where) if w is None else w
        out = _eval(name, s, y, outputs=VALUES, together=POINTWISE, **kw)
        ref = _eval_rax(name, s, y, outputs=VALUES, together=POINTWISE, **kw)
        got = out["none"]
        np.testing.assert_allclose(got, np.where(mask, expect, 0.0), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(got, ref["none"], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(out["mean"], expect[mask].mean(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(out["mean"], ref["mean"], rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------------ metrics
def np_metric(name, s, y, where, topn):
    # rax/_src/metrics.py, one list at a time; relevant means label >= 1.
    out = np.zeros(len(s))
    for k in range(len(s)):
        if not where[k].any():
            continue
        r = np_ranks(s[k], where[k])
        valid = where[k]
        retrieved = valid & ~np.isneginf(s[k]) & ((r <= topn) if topn else True)
        rel = (y[k] >= 1) & valid
        gains = 2.0 ** y[k].astype(np.float64) - 1.0
        dcg = np.sum(np.where(retrieved, gains / np.log2(1.0 + r), 0.0))
        if name == "dcg_metric":
            out[k] = dcg
        elif name == "ndcg_metric":
            ir = np_ranks(gains, valid)
            ideal_retrieved = valid & ((ir <= topn) if topn else True)
            idcg = np.sum(np.where(ideal_retrieved, gains / np.log2(1.0 + ir), 0.0))
            out[k] = dcg / (idcg if idcg != 0 else 1.0)
        elif name == "mrr_metric":
            out[k] = max([1.0 / r[i] for i in range(len(r)) if retrieved[i] and rel[i]], default=0.0)
        elif name == "precision_metric":
            out[k] = np.sum(retrieved & rel) / max(np.sum(retrieved), 1)
        elif name == "recall_metric":
            out[k] = np.sum(retrieved & rel) / max(np.sum(rel), 1)
        else:  # ap_metric
            total = sum(np.sum(rel & (r <= r[i])) / r[i] for i in range(len(r)) if retrieved[i] and rel[i])
            out[k] = total / max(np.sum(rel), 1)
    return out


METRICS = ["dcg_metric", "ndcg_metric", "mrr_metric", "ap_metric", "precision_metric", "recall_metric"]


TOPNS = (None, 1, 3)


@functools.cache
def _metrics_program(side, with_where):
    """Every metric at every ``topn`` of TOPNS in one program (ours, or rax's with ``reduce_fn=None``)."""
    def run(s, y, where=None):
        kw = {"where": where} if with_where else {}
        if side == "ours":
            return {name: [getattr(ranking, name)(s, y, topn=t, **kw) for t in TOPNS] for name in METRICS}
        rax = _rax()
        return {name: [getattr(rax, name)(s, y, topn=t, reduce_fn=None, **kw) for t in TOPNS] for name in METRICS}
    return jax.jit(run)


@pytest.mark.parametrize("name", METRICS)
def test_metrics_match_rax_and_transcription(name):
    _rax()
    s, y, where, _ = _inputs(7, shape=(6, 9))
    s[3, 5] = s[3, 1]  # a score tie
    s[4, 2] = -np.inf  # never retrieved
    for w in (None, where):
        kw = {} if w is None else {"where": jnp.asarray(w)}
        mask = np.ones_like(where) if w is None else w
        ours = _metrics_program("ours", w is not None)(s, y, **kw)[name]
        with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
            theirs = _metrics_program("rax", w is not None)(s, y, **kw)[name]
        for topn, got, ref in zip(TOPNS, ours, theirs):
            assert got.shape == (6,) and got.dtype == jnp.float32
            np.testing.assert_allclose(got, np_metric(name, s, y, mask, topn), rtol=RTOL, atol=ATOL)
            np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)


def test_metrics_jit_vmap_and_errors():
    s, y, where, _ = _inputs(8, shape=(3, 2, 5))  # small: the eager calls compile op by op

    @jax.jit  # every metric jitted, and vmapped over the leading axis, in one program
    def transformed(s, y, where):
        return {name: (getattr(ranking, name)(s, y, topn=2, where=where),
                       jax.vmap(lambda a, b, c, f=getattr(ranking, name): f(a, b, topn=2, where=c))(s, y, where))
                for name in METRICS}

    out = transformed(s, y, where)
    for name in METRICS:
        eager = getattr(ranking, name)(s, y, topn=2, where=where)
        assert eager.shape == (3, 2)
        jitted, mapped = out[name]
        np.testing.assert_allclose(jitted, eager, rtol=1e-6)
        np.testing.assert_allclose(mapped, eager, rtol=1e-6)
    with pytest.raises(ValueError, match="jaxloss.ndcg_metric: topn"):
        ranking.ndcg_metric(s, y, topn=0)
    with pytest.raises(ValueError, match="jaxloss.mrr_metric: scores"):
        ranking.mrr_metric(s, y[..., :-1])
    import jaxloss
    assert not any(name in jaxloss.available() for name in METRICS)  # metrics, not registered losses


def test_listmle_segments_keep_every_segment():
    # Segment 2 = items {0, 1, 4, 5} with 0 and 1 masked: rax 0.4 returns 0 for
    # it (its value sits at item 4, where the sorted segment has an invalid
    # item); the definition gives the ListMLE of items 4 and 5 with tied labels,
    # log(1 + exp(s_5 - s_4)).
    s = np.array([[0.3, 0.8, 0.3, -1.3, 0.9, 0.4, -0.5]], np.float32)
    y = np.zeros_like(s)
    where = np.array([[False, False, True, True, True, True, True]])
    seg = np.array([[2, 2, 0, 0, 2, 2, 0]], np.int32)
    got = _eval("listmle_loss", s, y, where=where, segments=seg, outputs=VALUES)["none"]
    np.testing.assert_allclose(got[0, 4], np.log1p(np.exp(0.4 - 0.9)), rtol=RTOL)
    expect, _ = np_listwise("listmle_loss", s, y, where, seg)
    np.testing.assert_allclose(got, expect, rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------- segments, where
@pytest.mark.parametrize("name", LISTWISE + PAIRWISE)
def test_segments_equal_separate_lists(name):
    # Two queries packed in one list with segments equal the two lists apart.
    rng = np.random.default_rng(9)
    a_s, b_s = rng.normal(size=4).astype(np.float32), rng.normal(size=3).astype(np.float32)
    a_y, b_y = np.array([2.0, 0.0, 1.0, 1.0], np.float32), np.array([0.0, 1.0, 3.0], np.float32)
    packed_s = np.concatenate([a_s, b_s])[None]
    packed_y = np.concatenate([a_y, b_y])[None]
    seg = np.array([[0, 0, 0, 0, 1, 1, 1]], np.int32)
    pad = np.zeros(1, np.float32)
    lists_s = np.stack([a_s, np.concatenate([b_s, pad])])
    lists_y = np.stack([a_y, np.concatenate([b_y, pad])])
    lists_w = np.array([[True] * 4, [True] * 3 + [False]])
    packed = _eval(name, packed_s, packed_y, segments=seg, outputs=VALUES, together=LISTWISE + PAIRWISE)
    apart = _eval(name, lists_s, lists_y, where=lists_w, outputs=VALUES, together=LISTWISE + PAIRWISE)
    np.testing.assert_allclose(packed["mean"], apart["mean"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", LISTWISE + PAIRWISE + ["pointwise_sigmoid_loss", "pointwise_mse_loss"])
def test_new_losses_masked_nan_empty_and_large(name):
    s, y, where, seg = _inputs(10, segments=True)
    kw = {"segments": seg} if name in LISTWISE + PAIRWISE else {}
    family = LISTWISE + PAIRWISE if kw else POINTWISE

    def value_and_grad(x, labels, where, **kwargs):
        out = _eval(name, x, labels, where=where, together=family, **kwargs)
        return out["mean"], out["grad"]
    # NaN at masked items changes nothing, value or gradient.
    poisoned_s, poisoned_y = s.copy(), y.copy()
    poisoned_s[~where], poisoned_y[~where] = np.nan, np.nan
    clean, g_clean = value_and_grad(s, y, where, **kw)
    value, g = value_and_grad(poisoned_s, poisoned_y, where, **kw)
    np.testing.assert_allclose(value, clean, rtol=1e-6)
    np.testing.assert_allclose(g, g_clean, rtol=1e-6)
    assert np.all(np.asarray(g)[~where] == 0)
    # NaN at a valid item that takes part in a counted pair (item 1 of list 3,
    # label 3, shares segment 1 with item 2, label 2): NaN.
    item = (3, 1)
    assert where[3, 1] and where[3, 2] and seg[3, 1] == seg[3, 2] and y[3, 1] > y[3, 2]
    bad = s.copy()
    bad[item] = np.nan
    assert np.isnan(float(value_and_grad(bad, y, where, **kw)[0]))
    bad_y = y.copy()
    bad_y[item] = np.nan
    assert np.isnan(float(value_and_grad(s, bad_y, where, **kw)[0]))
    # All masked and empty batch: 0 with zero gradients.
    value, g = value_and_grad(s, y, np.zeros_like(where), **kw)
    assert float(value) == 0.0 and not np.any(g)
    empty = np.zeros((0, 5), np.float32)
    out = _eval(name, empty, empty, together=LISTWISE + PAIRWISE + POINTWISE)
    value, g = out["mean"], out["grad"]
    assert float(value) == 0.0 and g.shape == (0, 5)
    # Large scores stay finite.
    for magnitude, dtype in ((1e4, jnp.float32), (60.0, jnp.bfloat16)):
        big = jnp.asarray(np.sign(s) * magnitude, dtype)
        value, g = value_and_grad(big, y, where, **kw)
        assert np.isfinite(float(value)) and value.dtype == jnp.float32
        assert np.all(np.isfinite(np.asarray(g, np.float32))) and g.dtype == dtype


def test_segments_shape_and_dtype_errors():
    s, y, _, seg = _inputs(11, segments=True)
    with pytest.raises(ValueError, match="jaxloss.listmle_loss: scores"):
        ranking.listmle_loss(s, y, segments=seg[:, :-1])
    with pytest.raises(TypeError, match="jaxloss.pairwise_hinge_loss: segments"):
        ranking.pairwise_hinge_loss(s, y, segments=seg.astype(np.float32))
