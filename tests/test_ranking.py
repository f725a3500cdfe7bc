"""Reference tests for ``jaxloss.ranking``.

References, none computed with our code:

* GRU4Rec losses: the formulas of Hidasi et al., "Session-based Recommendations
  with Recurrent Neural Networks" (ICLR 2016; BPR, TOP1) and Hidasi &
  Karatzoglou, "Recurrent Neural Networks with Top-k Gains for Session-based
  Recommendations" (CIKM 2018; BPR-max, TOP1-max), transcribed in float64
  NumPy straight from the papers (not in log space).
* ``margin_ranking_loss``: the formula of ``torch.nn.MarginRankingLoss``
  transcribed in NumPy, and torch itself when installed.
* Listwise/pairwise losses: NumPy transcriptions of the definitions of rax
  (``softmax_loss``, ``listmle_loss``, ``pairwise_hinge_loss``,
  ``pairwise_logistic_loss``, ``approx_t12n(ndcg_metric)``), and rax itself
  when installed (``pytest.importorskip("rax")``).
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

SAMPLED = [ranking.bpr_loss, ranking.top1_loss, ranking.bpr_max_loss, ranking.top1_max_loss]
LISTWISE = [ranking.ranking_softmax_loss, ranking.listmle_loss, ranking.approx_ndcg_loss]
PAIRWISE = [ranking.pairwise_hinge_loss, ranking.pairwise_logistic_loss]
LISTS = LISTWISE + PAIRWISE


# ------------------------------------------------------------ compiled once, shared
# XLA compilation is most of this file's run time: an eager call compiles every
# primitive for every new shape, and a gradient of an eager call dozens more.
# The losses of one family are therefore compiled together, once per (static
# options, argument shapes and dtypes), into one program that returns the
# reductions a test reads and, for the tests that need it, the gradient of the
# mean. The tests parametrized over the family run that program and read their
# loss's entry; tests with the same shapes reuse it. Eager execution equals jit
# for every registered loss (tests/test_invariants.py).
VALUES = ("none", "sum", "mean")  # values only
GRAD = ("none", "mean", "grad")  # values and the mean's gradient
FULL = ("none", "sum", "mean", "grad")


def _is_static(value):
    return value is None or callable(value) or isinstance(value, (str, bool, int, float))


def _outputs(fn, args, arrays, options, outputs, argnums):
    out = {r: fn(*args, reduction=r, **arrays, **options) for r in outputs if r in ("none", "sum")}
    if "grad" in outputs:
        out["mean"], out["grad"] = jax.value_and_grad(lambda *a: fn(*a, **arrays, **options), argnums)(*args)
    elif "mean" in outputs:
        out["mean"] = fn(*args, **arrays, **options)
    return out


@functools.cache
def _program(group, static, outputs, argnums):
    options = dict(static)
    return jax.jit(lambda *args, **arrays: {fn.__name__: _outputs(fn, args, arrays, options, outputs, argnums)
                                            for fn in group})


def _family(fn, kwargs):
    if set(kwargs) <= {"where", "weights"}:
        for family in (SAMPLED, LISTS):
            if fn in family:
                return tuple(family)
    return (fn,)  # options of this loss only


def _eval(fn, *args, outputs=VALUES, argnums=0, group=None, **kwargs):
    """``{"none", "sum", "mean": fn(*args, reduction=..., **kwargs), "grad": gradient of the mean}``.

    Computed in one program with the other losses of ``group`` (by default the
    family of ``fn`` when ``kwargs`` are only ``where``/``weights``). Python
    scalars, strings and ``None`` are static options; arrays are traced.
    """
    group = _family(fn, kwargs) if group is None else tuple(group)
    static = tuple(sorted((k, v) for k, v in kwargs.items() if _is_static(v)))
    arrays = {k: v for k, v in kwargs.items() if not _is_static(v)}
    return _program(group, static, outputs, argnums)(*args, **arrays)[fn.__name__]


def _sampled(fn, pos, neg, **kwargs):
    """Sampled losses: every reduction and the mean's gradient w.r.t. both inputs (one program per shape)."""
    return _eval(fn, pos, neg, outputs=FULL, argnums=(0, 1), **kwargs)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ----------------------------------------------------------- GRU4Rec paper formulas
def np_bpr(pos, neg):
    # Hidasi et al. 2016, Sec. 3.1.2: L = -1/N_S sum_j log sigma(r_i - r_j).
    return -np.mean(np.log(_sigmoid(pos[..., None] - neg)), -1)


def np_top1(pos, neg):
    # Hidasi et al. 2016, Sec. 3.1.2: L = 1/N_S sum_j sigma(r_j - r_i) + sigma(r_j^2).
    return np.mean(_sigmoid(neg - pos[..., None]) + _sigmoid(neg ** 2), -1)


def np_bpr_max(pos, neg, lam):
    # Hidasi & Karatzoglou 2018, Eq. (7): -log sum_j s_j sigma(r_i - r_j) + lambda sum_j s_j r_j^2.
    s = _softmax(neg)
    return -np.log(np.sum(s * _sigmoid(pos[..., None] - neg), -1)) + lam * np.sum(s * neg ** 2, -1)


def np_top1_max(pos, neg):
    # Hidasi & Karatzoglou 2018, Eq. (5): sum_j s_j (sigma(r_j - r_i) + sigma(r_j^2)).
    s = _softmax(neg)
    return np.sum(s * (_sigmoid(neg - pos[..., None]) + _sigmoid(neg ** 2)), -1)


def _sampled_inputs(seed=0, shape=(3, 4), k=6):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape).astype(np.float32), rng.normal(size=shape + (k,)).astype(np.float32)


@pytest.mark.parametrize("fn,ref", [
    (ranking.bpr_loss, np_bpr),
    (ranking.top1_loss, np_top1),
    (ranking.bpr_max_loss, lambda p, n: np_bpr_max(p, n, 1.0)),
    (ranking.top1_max_loss, np_top1_max),
])
def test_sampled_losses_match_paper_formulas(fn, ref):
    pos, neg = _sampled_inputs(0)
    expect = ref(pos.astype(np.float64), neg.astype(np.float64))
    out = _sampled(fn, pos, neg)
    got = out["none"]
    assert got.shape == pos.shape and got.dtype == jnp.float32
    np.testing.assert_allclose(got, expect, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["mean"], expect.mean(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["sum"], expect.sum(), rtol=RTOL, atol=ATOL)


def test_bpr_max_regularization():
    pos, neg = _sampled_inputs(1)
    lams = (0.0, 0.3, 2.0)
    for lam in lams:
        np.testing.assert_allclose(_eval(ranking.bpr_max_loss, pos, neg, regularization=lam)["none"],
                                   np_bpr_max(pos.astype(np.float64), neg.astype(np.float64), lam),
                                   rtol=RTOL, atol=ATOL)
    # Traced (a learned lambda), every value in one program: the same numbers.
    traced = jax.jit(jax.vmap(lambda lam: ranking.bpr_max_loss(pos, neg, regularization=lam)))(
        jnp.asarray(lams, jnp.float32))
    for lam, got in zip(lams, traced):
        np.testing.assert_allclose(got, _eval(ranking.bpr_max_loss, pos, neg, regularization=lam)["mean"], rtol=RTOL)
    with pytest.raises(ValueError, match="bpr_max_loss: regularization"):
        ranking.bpr_max_loss(pos, neg, regularization=-1.0)


def test_bpr_gradient_matches_closed_form():
    # d/dr_i of -1/K sum_j log sigma(r_i - r_j) is -1/K sum_j sigma(r_j - r_i) (Rendle et al. 2009).
    pos, neg = _sampled_inputs(2, shape=(5,), k=3)
    g = jax.jit(jax.grad(lambda p, n: ranking.bpr_loss(p, n, reduction="sum")))(pos, neg)
    expect = -np.mean(_sigmoid(neg.astype(np.float64) - pos[:, None]), -1)
    np.testing.assert_allclose(g, expect, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("fn", SAMPLED)
def test_sampled_negative_mask_equals_dropping_negatives(fn):
    pos, neg = _sampled_inputs(3, shape=(2,), k=5)
    where = np.array([[True, True, False, True, False], [False] * 5])
    poisoned = neg.copy()
    poisoned[~where] = np.nan
    out = _sampled(fn, pos, poisoned, where=where)
    got = out["none"]
    np.testing.assert_allclose(got[0], _sampled(fn, pos[:1], neg[:1, where[0]])["none"][0], rtol=RTOL, atol=ATOL)
    assert float(got[1]) == 0.0  # no valid negative: left out
    np.testing.assert_allclose(out["mean"], got[0], rtol=RTOL, atol=ATOL)
    gp, gn = out["grad"]
    assert np.all(np.isfinite(gp)) and np.all(np.isfinite(gn))
    assert np.all(np.asarray(gn)[~where] == 0) and float(gp[1]) == 0.0


@pytest.mark.parametrize("fn", SAMPLED)
@pytest.mark.parametrize("magnitude,dtype", [(1e4, jnp.float32), (60.0, jnp.bfloat16)])
def test_sampled_losses_finite_at_large_scores(fn, magnitude, dtype):
    pos = jnp.asarray([magnitude, -magnitude, magnitude], dtype)
    neg = jnp.asarray([[-magnitude, magnitude], [magnitude, magnitude], [magnitude, -magnitude]], dtype)
    out = _sampled(fn, pos, neg)
    value, grads = out["mean"], out["grad"]
    assert np.isfinite(float(value)) and value.dtype == jnp.float32
    assert all(np.all(np.isfinite(np.asarray(g, np.float32))) for g in grads)
    assert grads[0].dtype == dtype


def test_bpr_max_large_gap_stays_finite_and_correct():
    # sigma(r_i - r_j) underflows in float32 for every negative; the log-space form
    # keeps the closed form. Equal negatives: -log sigma(-200) = 200 (+ 1e-87).
    got = _eval(ranking.bpr_max_loss, jnp.array([-100.0]), jnp.array([[100.0, 100.0]]), regularization=0.0)["mean"]
    np.testing.assert_allclose(got, 200.0, rtol=RTOL)
    # Negatives 100 and 0: sum_j s_j sigma(r_i - r_j) = 2 e^-200 (1 + O(e^-100)), so 200 - log 2.
    got = _eval(ranking.bpr_max_loss, jnp.array([-100.0]), jnp.array([[100.0, 0.0]]), regularization=0.0)["mean"]
    np.testing.assert_allclose(got, 200.0 - np.log(2.0), rtol=RTOL)


def test_sampled_shape_errors():
    with pytest.raises(ValueError, match="jaxloss.bpr_loss: positive_scores"):
        ranking.bpr_loss(jnp.zeros(3), jnp.zeros((4, 2)))
    with pytest.raises(TypeError, match="negative_scores"):
        ranking.top1_loss(jnp.zeros(3), jnp.zeros((3, 2), jnp.int32))
    with pytest.raises(ValueError, match="where"):
        ranking.bpr_loss(jnp.zeros(3), jnp.zeros((3, 2)), where=jnp.ones((3, 2, 1), bool))


# ------------------------------------------------------------------- margin ranking
def np_margin_ranking(x1, x2, y, margin):
    # torch.nn.MarginRankingLoss: max(0, -y * (x1 - x2) + margin).
    return np.maximum(0.0, -y * (x1 - x2) + margin)


@pytest.mark.parametrize("margin", [0.0, 0.5, -0.2])
def test_margin_ranking_matches_torch_formula(margin):
    rng = np.random.default_rng(4)
    x1, x2 = rng.normal(size=(2, 7)).astype(np.float32)
    y = rng.choice([-1.0, 1.0], size=7).astype(np.float32)
    expect = np_margin_ranking(x1.astype(np.float64), x2, y, margin)
    out = _eval(ranking.margin_ranking_loss, x1, x2, y, margin=margin)
    np.testing.assert_allclose(out["none"], expect, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["mean"], expect.mean(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["sum"], expect.sum(), rtol=RTOL, atol=ATOL)


def test_margin_ranking_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x1, x2 = rng.normal(size=(2, 9)).astype(np.float32)
    y = rng.choice([-1.0, 1.0], size=9).astype(np.float32)
    out = _eval(ranking.margin_ranking_loss, x1, x2, y, margin=0.3)
    for reduction in ("none", "sum", "mean"):
        expect = torch.nn.functional.margin_ranking_loss(torch.tensor(x1), torch.tensor(x2), torch.tensor(y),
                                                         margin=0.3, reduction=reduction).numpy()
        np.testing.assert_allclose(out[reduction], expect, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------ NumPy transcriptions of rax
def np_softmax_loss(s, y, where):
    # rax.softmax_loss: -sum_i y_i log softmax(s)_i over valid items, per list.
    out = np.zeros(s.shape[:-1])
    for idx in np.ndindex(*s.shape[:-1]):
        v = where[idx]
        if v.any():
            ls = s[idx][v] - np.log(np.sum(np.exp(s[idx][v] - s[idx][v].max()))) - s[idx][v].max()
            out[idx] = -np.sum(y[idx][v] * ls)
    return out


def np_listmle_loss(s, y, where):
    # rax.listmle_loss: sort valid items by decreasing label (stable), Plackett-Luce NLL.
    out = np.zeros(s.shape[:-1])
    for idx in np.ndindex(*s.shape[:-1]):
        v = where[idx]
        order = sorted(np.flatnonzero(v), key=lambda i: -y[idx][i])  # Python's sort is stable
        ss = s[idx][order]
        out[idx] = -sum(ss[k] - np.log(np.sum(np.exp(ss[k:]))) for k in range(len(ss)))
    return out


def np_pairwise(s, y, where, pair_fn):
    # rax.pairwise_loss: value of pair (i, j) at i * n + j, valid if y_i > y_j and both valid.
    n = s.shape[-1]
    values = np.zeros(s.shape[:-1] + (n * n,))
    valid = np.zeros(values.shape, bool)
    for idx in np.ndindex(*s.shape[:-1]):
        for i in range(n):
            for j in range(n):
                if y[idx][i] > y[idx][j] and where[idx][i] and where[idx][j]:
                    values[idx + (i * n + j,)] = pair_fn(s[idx][i] - s[idx][j])
                    valid[idx + (i * n + j,)] = True
    return values, valid


def np_approx_ndcg_loss(s, y, where, temperature=1.0):
    # rax.approx_t12n(rax.ndcg_metric): sigmoid ranks, gain 2^y - 1, discount 1 / log2(1 + rank).
    out = np.zeros(s.shape[:-1])
    for idx in np.ndindex(*s.shape[:-1]):
        v = where[idx]
        ss, yy = s[idx][v], y[idx][v]
        if not v.any():
            continue
        ranks = np.array([1.0 + sum(_sigmoid((ss[j] - ss[i]) / temperature) for j in range(len(ss)) if j != i)
                          for i in range(len(ss))])
        gains = 2.0 ** yy - 1.0
        dcg = np.sum(gains / np.log2(1.0 + ranks))
        ideal = np.sort(gains)[::-1]
        idcg = np.sum(ideal / np.log2(2.0 + np.arange(len(ideal))))
        out[idx] = -dcg / (idcg if idcg != 0 else 1.0)
    return out


def _list_inputs(seed=0, shape=(4, 6), levels=4):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=shape).astype(np.float32)
    labels = rng.integers(0, levels, size=shape).astype(np.float32)  # ties on purpose
    where = rng.random(shape) > 0.25
    where[1] = False  # one list without any valid item
    where[2, :2] = True
    return scores, labels, where


def _np_reference(fn, s, y, where):
    s, y = s.astype(np.float64), y.astype(np.float64)
    if fn is ranking.ranking_softmax_loss:
        return np_softmax_loss(s, y, where), None
    if fn is ranking.listmle_loss:
        return np_listmle_loss(s, y, where), None
    if fn is ranking.approx_ndcg_loss:
        return np_approx_ndcg_loss(s, y, where), None
    if fn is ranking.pairwise_hinge_loss:
        return np_pairwise(s, y, where, lambda d: max(0.0, 1.0 - d))
    return np_pairwise(s, y, where, lambda d: np.log1p(np.exp(-d)))


@pytest.mark.parametrize("fn", LISTS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("masked", [False, True])
def test_lists_match_numpy_transcription_of_rax(fn, masked):
    s, y, where = _list_inputs(6)
    w = where if masked else np.ones_like(where)
    values, pair_valid = _np_reference(fn, s, y, w)
    out = _eval(fn, s, y, where=where if masked else None)
    np.testing.assert_allclose(out["none"], values, rtol=RTOL, atol=ATOL)
    if pair_valid is None:  # per list: the mean over lists with a valid item
        expect_mean = values[w.any(-1)].mean()
    else:  # per pair: the mean over valid pairs
        expect_mean = values[pair_valid].mean()
    np.testing.assert_allclose(out["mean"], expect_mean, rtol=RTOL, atol=ATOL)


def test_approx_ndcg_temperature_matches_transcription():
    s, y, where = _list_inputs(7)
    for t in (0.1, 2.0):
        np.testing.assert_allclose(_eval(ranking.approx_ndcg_loss, s, y, temperature=t, where=where)["none"],
                                   np_approx_ndcg_loss(s.astype(np.float64), y, where, t), rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="approx_ndcg_loss: temperature"):
        ranking.approx_ndcg_loss(s, y, temperature=0.0)


def test_approx_ndcg_perfect_ranking_tends_to_minus_one():
    # Closed form: scores in the label order, far apart, at low temperature -> NDCG -> 1.
    y = jnp.array([[3.0, 0.0, 1.0, 2.0]])
    s = 10.0 * y
    np.testing.assert_allclose(_eval(ranking.approx_ndcg_loss, s, y, temperature=0.1)["mean"], -1.0, rtol=1e-5)


# --------------------------------------------------------------------- against rax
@functools.cache
def _rax_fns():
    rax = pytest.importorskip("rax")

    def approx_ndcg(scores, labels, **kwargs):
        # rax.approx_t12n(rax.ndcg_metric) spelled out: rax 0.4.0's approx_t12n uses
        # jax.util.wraps, which newer JAX no longer has; the transformation only
        # swaps in sigmoid ranks/cutoffs and negates.
        step = lambda x: jax.nn.sigmoid(x / 1.0)  # noqa: E731
        return -rax.ndcg_metric(scores, labels,
                                rank_fn=functools.partial(rax.utils.approx_ranks, step_fn=step),
                                cutoff_fn=functools.partial(rax.utils.approx_cutoff, step_fn=step), **kwargs)

    fns = {
        "ranking_softmax_loss": rax.softmax_loss,
        "listmle_loss": rax.listmle_loss,
        "pairwise_hinge_loss": rax.pairwise_hinge_loss,
        "pairwise_logistic_loss": rax.pairwise_logistic_loss,
        "approx_ndcg_loss": approx_ndcg,
    }
    return {name: _standard_promotion(f) for name, f in fns.items()}


def _standard_promotion(f):
    """rax mixes int32 ranks with float32 scores: run it under JAX's default promotion."""
    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        with jax.numpy_dtype_promotion("standard"):
            return f(*args, **kwargs)
    return wrapped


def _rax_outputs(ref, s, y, arrays, outputs):
    out = {"none": ref(s, y, reduce_fn=None, **arrays)}
    if "sum" in outputs:
        out["sum"] = ref(s, y, reduce_fn=jnp.sum, **arrays)
    if "grad" in outputs:
        out["mean"], out["grad"] = jax.value_and_grad(lambda x: ref(x, y, reduce_fn=jnp.mean, **arrays))(s)
    return out


@functools.cache
def _rax_program(names, outputs):
    refs = _rax_fns()
    return jax.jit(lambda s, y, **arrays: {n: _rax_outputs(refs[n], s, y, arrays, outputs) for n in names})


def _rax_eval(name, s, y, outputs=FULL, names=None, **arrays):
    """rax's loss ``name``, compiled with those of ``names`` (default: all five): ``reduce_fn`` None
    (and sum, mean, the mean's gradient)."""
    names = tuple(f.__name__ for f in LISTS) if names is None else names
    with jax.numpy_dtype_promotion("standard"):
        return _rax_program(names, outputs)(s, y, **arrays)[name]


@pytest.mark.parametrize("fn", LISTS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("masked", [False, True])
def test_lists_match_rax(fn, masked):
    s, y, where = _list_inputs(8, shape=(3, 5, 7))
    kw = {"where": jnp.asarray(where)} if masked else {}
    out, expect = _eval(fn, s, y, outputs=FULL, **kw), _rax_eval(fn.__name__, s, y, **kw)
    np.testing.assert_allclose(out["none"], expect["none"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["mean"], expect["mean"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["sum"], expect["sum"], rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(out["grad"], expect["grad"], rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------- masks and reductions
@functools.cache
def _sum_value_and_grad(group):
    return jax.jit(lambda x, y, where: {
        fn.__name__: jax.value_and_grad(lambda x: fn(x, y, where=where, reduction="sum"))(x) for fn in group})


@pytest.mark.parametrize("fn", LISTS, ids=lambda f: f.__name__)
def test_all_masked_lists(fn):
    s, y, where = _list_inputs(9)
    poisoned = s.copy()
    poisoned[~where] = np.nan
    out = _eval(fn, poisoned, y, where=where, outputs=GRAD)
    none = out["none"]
    assert np.all(np.isfinite(none)) and np.all(np.asarray(none)[1] == 0)
    # The empty list is left out of the mean: same as slicing it off.
    keep = np.array([True, False, True, True])
    np.testing.assert_allclose(out["mean"], _eval(fn, s[keep], y[keep], where=where[keep])["mean"],
                               rtol=RTOL, atol=ATOL)
    g = out["grad"]
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~where] == 0)
    everything = np.zeros_like(where)
    value, g = _sum_value_and_grad(tuple(LISTS))(poisoned, y, everything)[fn.__name__]
    assert float(value) == 0.0 and np.all(np.asarray(g) == 0)
    out = _eval(fn, poisoned, y, where=everything, outputs=GRAD)
    assert float(out["mean"]) == 0.0 and np.all(np.asarray(out["grad"]) == 0)


@pytest.mark.parametrize("fn", LISTS, ids=lambda f: f.__name__)
def test_list_mask_of_lower_rank_masks_whole_lists(fn):
    s, y, _ = _list_inputs(10)
    lists = np.array([True, False, True, True])
    items = np.broadcast_to(lists[:, None], s.shape)
    by_list, by_item = _eval(fn, s, y, where=lists), _eval(fn, s, y, where=items)
    for reduction in ("none", "sum", "mean"):
        np.testing.assert_allclose(by_list[reduction], by_item[reduction], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("fn", PAIRWISE, ids=lambda f: f.__name__)
def test_pairwise_reduction_semantics(fn):
    s, y, where = _list_inputs(11)
    n = s.shape[-1]
    values, valid = _np_reference(fn, s, y, where)
    # Per-list weights broadcast over the pairs; "mean" is sum(w l) / sum(w) over valid pairs.
    w = np.array([[0.5], [2.0], [1.0], [3.0]], np.float32)
    wb = np.broadcast_to(w, values.shape)
    out = _eval(fn, s, y, where=where, weights=w, group=PAIRWISE)
    np.testing.assert_allclose(out["none"], wb * values, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["sum"], np.sum(wb * values), rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(out["mean"], np.sum(wb * values) / np.sum(wb[valid]), rtol=RTOL, atol=ATOL)
    # A pair mask [..., n * n] (the unreduced shape) masking whole lists equals slicing them off.
    keep = np.zeros((4, n * n), bool)
    keep[[0, 2]] = True
    np.testing.assert_allclose(_eval(fn, s, y, where=keep, group=PAIRWISE)["mean"], _eval(fn, s[[0, 2]], y[[0, 2]])["mean"],
                               rtol=RTOL, atol=ATOL)
    # No valid pair at all (all labels equal): 0, not NaN.
    assert float(_eval(fn, s, np.ones_like(y))["mean"]) == 0.0


@pytest.mark.parametrize("fn", PAIRWISE, ids=lambda f: f.__name__)
def test_pairwise_pair_mask(fn):
    s, y, _ = _list_inputs(12)
    ones = np.ones_like(s, bool)
    values, valid = _np_reference(fn, s, y, ones)
    pair_where = np.random.default_rng(1).random(values.shape) > 0.5
    expect = values[valid & pair_where].mean()
    np.testing.assert_allclose(_eval(fn, s, y, where=pair_where, group=PAIRWISE)["mean"], expect, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("fn", LISTWISE, ids=lambda f: f.__name__)
def test_listwise_weights_are_per_list(fn):
    s, y, where = _list_inputs(13)
    values = np.asarray(_eval(fn, s, y, where=where)["none"], np.float64)
    w = np.array([0.5, 2.0, 1.0, 3.0], np.float32)
    keep = where.any(-1)
    np.testing.assert_allclose(_eval(fn, s, y, where=where, weights=w, group=LISTWISE)["mean"],
                               np.sum((w * values)[keep]) / np.sum(w[keep]), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("fn", LISTS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("magnitude,dtype", [(1e4, jnp.float32), (60.0, jnp.bfloat16)])
def test_lists_finite_at_large_scores(fn, magnitude, dtype):
    s, y, where = _list_inputs(14)
    big = jnp.asarray(np.sign(s) * magnitude, dtype)
    for kw in ({}, {"where": where}):
        out = _eval(fn, big, y, outputs=GRAD, **kw)
        value, g = out["mean"], out["grad"]
        assert np.isfinite(float(value)) and value.dtype == jnp.float32
        assert np.all(np.isfinite(np.asarray(g, np.float32))) and g.dtype == dtype


def test_listmle_large_scores_value():
    # Closed form: with scores far apart in the wrong order, each step of the
    # Plackett-Luce likelihood costs the gap: -log softmax([-1e4, 1e4])[0] = 2e4.
    got = _eval(ranking.listmle_loss, jnp.array([-1e4, 1e4]), jnp.array([1.0, 0.0]))["mean"]
    np.testing.assert_allclose(got, 2e4, rtol=RTOL)


@pytest.mark.parametrize("fn", LISTS, ids=lambda f: f.__name__)
def test_list_shape_errors(fn):
    s, y, _ = _list_inputs(15)
    name = fn.__name__
    with pytest.raises(ValueError, match=f"jaxloss.{name}: scores"):
        fn(s, y[:, :-1])
    with pytest.raises(TypeError, match=f"jaxloss.{name}: scores"):
        fn(s.astype(np.int32), y)
    with pytest.raises(ValueError, match=f"jaxloss.{name}: where"):
        fn(s, y, where=np.ones(s.shape + (1,), bool))
    with pytest.raises(ValueError, match=f"jaxloss.{name}: where"):
        fn(s, y, where=np.ones((s.shape[0], 3), bool))
    with pytest.raises(TypeError, match=f"jaxloss.{name}: where"):
        fn(s, y, where=np.ones(s.shape, np.float32))


def test_integer_and_bool_labels():
    s, y, where = _list_inputs(16)
    for fn in LISTS:
        np.testing.assert_allclose(_eval(fn, s, y.astype(np.int32), where=where)["mean"],
                                   _eval(fn, s, y, where=where)["mean"], rtol=RTOL)
    np.testing.assert_allclose(_eval(ranking.ranking_softmax_loss, s, y > 1, group=[ranking.ranking_softmax_loss])["none"],
                               _eval(ranking.ranking_softmax_loss, s, (y > 1) * 1.0)["none"], rtol=RTOL)


# ------------------------------------------------- NaN, empty batches, precision
def _poison(a, index):
    a = a.copy()
    a[index] = np.nan
    return a


@pytest.mark.parametrize("fn", SAMPLED, ids=lambda f: f.__name__)
@pytest.mark.parametrize("where", [None, "items"])
def test_sampled_nan_input_gives_nan_at_that_example(fn, where):
    # Issue 11 item 4: a NaN in an unmasked input is NaN in the value, never a
    # healthy number (bpr_max_loss with a negative mask returned 0.83 for a NaN
    # positive score); the other examples are unchanged.
    pos, neg = _sampled_inputs(20, shape=(3,), k=2)  # the shapes of test_sampled_losses_finite_at_large_scores
    w = None if where is None else np.ones(neg.shape, bool)
    clean = np.asarray(_sampled(fn, pos, neg, where=w)["none"])
    for p, n in ((_poison(pos, 1), neg), (pos, _poison(neg, (1, 1)))):
        out = _sampled(fn, p, n, where=w)
        got = np.asarray(out["none"])
        assert np.isnan(got[1]), (fn.__name__, got)
        np.testing.assert_array_equal(got[[0, 2]], clean[[0, 2]])
        assert np.isnan(float(out["mean"]))


@pytest.mark.parametrize("fn", LISTS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("masked", [False, True])
def test_lists_nan_score_or_label_gives_nan_for_that_list(fn, masked):
    # A NaN label used to drop its pairs (pairwise) or sort last (ListMLE) silently.
    s, y, where = _list_inputs(21)
    w = where if masked else None
    item = (2, 0)  # valid in both cases
    clean = np.asarray(_eval(fn, s, y, where=w)["none"])
    for a, b in ((_poison(s, item), y), (s, _poison(y, item))):
        out = _eval(fn, a, b, where=w)
        got = np.asarray(out["none"]).reshape(4, -1)
        assert np.any(np.isnan(got[2])), fn.__name__
        np.testing.assert_array_equal(got[[0, 1, 3]], clean.reshape(4, -1)[[0, 1, 3]])
        assert np.isnan(float(out["mean"]))
    # NaN at a masked item changes nothing
    if masked:
        hidden = tuple(np.argwhere(~where)[0])
        np.testing.assert_array_equal(_eval(fn, _poison(s, hidden), _poison(y, hidden), where=w)["none"], clean)


@functools.cache
def _empty_program(group):
    def run(fn, args):
        out = {r: jax.value_and_grad(lambda *a: fn(*a, reduction=r), argnums=(0, 1))(*args) for r in ("mean", "sum")}
        return dict(out, none=fn(*args, reduction="none"))
    return jax.jit(lambda *args: {fn.__name__: run(fn, args) for fn in group})


@pytest.mark.parametrize("fn", SAMPLED + LISTS, ids=lambda f: f.__name__)
def test_empty_batch_gives_zero_with_zero_gradients(fn):
    # Issue 11 item 5: a size-0 batch is an empty denominator: 0.0, zero gradients.
    if fn in SAMPLED:
        args = (np.zeros((0,), np.float32), np.zeros((0, 4), np.float32))
    else:
        args = (np.zeros((0, 5), np.float32), np.zeros((0, 5), np.float32))
    out = _empty_program(tuple(SAMPLED if fn in SAMPLED else LISTS))(*args)[fn.__name__]
    for reduction in ("mean", "sum"):
        value, grads = out[reduction]
        assert float(value) == 0.0
        assert all(g.shape == a.shape for g, a in zip(grads, args))
    assert out["none"].shape[0] == 0


@pytest.mark.parametrize("masked", [False, True])
def test_ranking_softmax_rounds_as_rax(masked):
    # Issue 11 item 9: (x - max) - log(sum), as jax.nn.log_softmax and so
    # rax.softmax_loss; x - (max + log(sum)) was up to 2e-7 relative off.
    rax = pytest.importorskip("rax")
    rng = np.random.default_rng(22)
    s = (3.0 * rng.normal(size=(40, 16))).astype(np.float32)
    y = rng.integers(0, 3, size=s.shape).astype(np.float32)
    kw = {"where": jnp.asarray(rng.random(s.shape) > 0.3)} if masked else {}
    np.testing.assert_allclose(_eval(ranking.ranking_softmax_loss, s, y, outputs=("none",),
                                     group=[ranking.ranking_softmax_loss], **kw)["none"],
                               _rax_eval("ranking_softmax_loss", s, y, outputs=("none",), names=("ranking_softmax_loss",),
                                         **kw)["none"],
                               rtol=1e-7, atol=0)
