"""Reference tests for the second metric-learning part of ``jaxloss.embedding`` (issue 13).

Every loss equals pytorch-metric-learning 2.x with its default hyper-parameters,
distance and reducer. Two kinds of reference numbers, none computed with our
code: a NumPy transcription of PML's formula (always run; each names the PML
source file it follows), and PML itself through ``pytest.importorskip``
(``pip install pytorch-metric-learning``; not a project dependency).
Tolerance: 1e-5 relative in float32.

Every call of a jaxloss function goes through ``jax.jit`` (``E`` below): the
suite's cost is XLA compilation, and an eager call compiles each primitive on
its own. Python-valued options stay static, so each call takes the code path of
a concrete hyper-parameter.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxloss import embedding
from tests.jitted import Jitted, jit_static


E = Jitted(embedding)

RTOL, ATOL = 1e-5, 1e-6


def _rng(seed):
    return np.random.default_rng(seed)


def _normalize(x):
    # torch.nn.functional.normalize(p=2, eps=1e-12), PML's BaseDistance.maybe_normalize.
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _log1p_sum_exp(values):
    # PML utils/loss_and_miner_utils.py logsumexp(add_one=True): log(1 + sum exp); 0 without entries.
    values = np.asarray(values, np.float64)
    return float(np.logaddexp.reduce(np.concatenate([values, [0.0]]))) if values.size else 0.0


def _logsumexp(values):
    # PML logsumexp(add_one=False) with keep_mask: 0 when the mask is empty.
    values = np.asarray(values, np.float64)
    return float(np.logaddexp.reduce(values)) if values.size else 0.0


def _cross_entropy(logits, labels):
    logits = np.asarray(logits, np.float64)
    m = logits.max(-1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(-1))
    return lse - logits[np.arange(len(labels)), labels]


def _f32(*arrays):
    return [np.asarray(a, np.float32) for a in arrays]


def _batch(seed, n, dim, num_classes):
    rng = _rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = rng.integers(0, num_classes, size=n).astype(np.int32)
    return x, y


SIZES = [(0, 8, 4, 3), (1, 16, 6, 5), (2, 12, 3, 2)]  # (seed, batch, dim, classes)


def _pml():
    torch = pytest.importorskip("torch")
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    return torch, losses


def _t(torch, x):
    return torch.tensor(np.asarray(x))


def _finite(tree):
    return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(tree))


# ------------------------------------------------------------ multi-similarity
def _np_multi_similarity(x, y, alpha=2.0, beta=50.0, base=0.5):
    # PML src/pytorch_metric_learning/losses/multi_similarity_loss.py with CosineSimilarity
    # (distance.margin(x, y) = y - x for a similarity) and MeanReducer over all anchors.
    s = _normalize(x) @ _normalize(x).T
    out = []
    for i in range(len(x)):
        pos = [s[i, j] for j in range(len(x)) if j != i and y[j] == y[i]]
        neg = [s[i, k] for k in range(len(x)) if y[k] != y[i]]
        out.append(_log1p_sum_exp(alpha * (base - np.array(pos))) / alpha
                   + _log1p_sum_exp(beta * (np.array(neg) - base)) / beta)
    return np.array(out)


@pytest.mark.parametrize("seed,n,dim,c", SIZES)
def test_multi_similarity_numpy(seed, n, dim, c):
    x, y = _batch(seed, n, dim, c)
    none, mean, other = jax.jit(lambda x, y: (  # one program for the three calls
        embedding.multi_similarity_loss(x, y, reduction="none"), embedding.multi_similarity_loss(x, y),
        embedding.multi_similarity_loss(x, y, alpha=1.0, beta=20.0, base=0.2, reduction="none")))(x, y)
    ref = _np_multi_similarity(x, y)
    np.testing.assert_allclose(none, ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(mean, ref.mean(), rtol=RTOL, atol=ATOL)
    ref = _np_multi_similarity(x, y, alpha=1.0, beta=20.0, base=0.2)
    np.testing.assert_allclose(other, ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("seed,n,dim,c", SIZES)
def test_multi_similarity_pml(seed, n, dim, c):
    torch, losses = _pml()
    x, y = _batch(seed + 10, n, dim, c)
    ref = float(losses.MultiSimilarityLoss()(_t(torch, x), _t(torch, y).long()))
    np.testing.assert_allclose(E.multi_similarity_loss(x, y), ref, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------ lifted structure
def _np_lifted(x, y, pos_margin=0.0, neg_margin=1.0):
    # PML src/pytorch_metric_learning/losses/lifted_structure_loss.py, GeneralizedLiftedStructureLoss
    # with LpDistance (Euclidean on L2-normalised embeddings) and MeanReducer over all anchors.
    z = _normalize(x)
    d = np.linalg.norm(z[:, None] - z[None], axis=-1)
    out = []
    for i in range(len(x)):
        pos = [d[i, j] - pos_margin for j in range(len(x)) if j != i and y[j] == y[i]]
        neg = [neg_margin - d[i, k] for k in range(len(x)) if y[k] != y[i]]
        out.append(max(_logsumexp(pos) + _logsumexp(neg), 0.0))
    return np.array(out)


@pytest.mark.parametrize("seed,n,dim,c", SIZES)
def test_lifted_structure_numpy(seed, n, dim, c):
    x, y = _batch(seed, n, dim, c)
    default, other = jax.jit(lambda x, y: (  # one program for both calls
        embedding.lifted_structure_loss(x, y, reduction="none"),
        embedding.lifted_structure_loss(x, y, positive_margin=0.3, negative_margin=1.5, reduction="none")))(x, y)
    np.testing.assert_allclose(default, _np_lifted(x, y), rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(other, _np_lifted(x, y, 0.3, 1.5), rtol=RTOL, atol=1e-5)


@pytest.mark.parametrize("seed,n,dim,c", SIZES)
def test_lifted_structure_pml(seed, n, dim, c):
    torch, losses = _pml()
    x, y = _batch(seed + 20, n, dim, c)
    ref = float(losses.GeneralizedLiftedStructureLoss()(_t(torch, x), _t(torch, y).long()))
    np.testing.assert_allclose(E.lifted_structure_loss(x, y), ref, rtol=RTOL, atol=1e-5)


# ---------------------------------------------------------------------- npairs
def _np_npairs(a, p):
    # PML src/pytorch_metric_learning/losses/n_pairs_loss.py: DotProductSimilarity (normalised
    # embeddings), cross entropy against arange, MeanReducer.
    return _cross_entropy(_normalize(a) @ _normalize(p).T, np.arange(len(a)))


@pytest.mark.parametrize("seed,n,dim,c", SIZES)
def test_npairs_numpy_and_pml(seed, n, dim, c):
    rng = _rng(seed)
    a, p = _f32(rng.normal(size=(n, dim)), rng.normal(size=(n, dim)))
    ref = _np_npairs(a, p)
    np.testing.assert_allclose(E.npairs_loss(a, p, reduction="none"), ref, rtol=RTOL, atol=ATOL)
    torch, losses = _pml()
    # PML takes one batch with labels and keeps one (anchor, positive) pair per label.
    emb = np.concatenate([a, p])
    labels = np.concatenate([np.arange(n), np.arange(n)])
    ref_pml = float(losses.NPairsLoss()(_t(torch, emb), _t(torch, labels).long()))
    np.testing.assert_allclose(E.npairs_loss(a, p), ref_pml, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------- proxy NCA
def _np_proxy_nca(x, w, y, scale=1.0):
    # PML src/pytorch_metric_learning/losses/proxy_losses.py (ProxyNCALoss) and nca_loss.py:
    # LpDistance(power=2) on normalised vectors, softmax(-scale * d^2) over proxies, -log of the
    # label's probability, MeanReducer.
    d2 = np.sum((_normalize(x)[:, None] - _normalize(w)[None]) ** 2, axis=-1)
    return _cross_entropy(-scale * d2, y)


@pytest.mark.parametrize("seed,n,dim,c", SIZES)
def test_proxy_nca_numpy_and_pml(seed, n, dim, c):
    x, y = _batch(seed, n, dim, c)
    w = _f32(_rng(seed + 1).normal(size=(c, dim)))[0]
    ours = jax.jit(lambda x, w, y: {  # one program for every call
        scale: (embedding.proxy_nca_loss(x, w, y, softmax_scale=scale, reduction="none"),
                embedding.proxy_nca_loss(x, w, y, softmax_scale=scale)) for scale in (1.0, 8.0)})(x, w, y)
    for scale in (1.0, 8.0):
        np.testing.assert_allclose(ours[scale][0], _np_proxy_nca(x, w, y, scale), rtol=RTOL, atol=1e-5)
    torch, losses = _pml()
    for scale in (1.0, 8.0):
        loss = losses.ProxyNCALoss(num_classes=c, embedding_size=dim, softmax_scale=scale)
        loss.proxies.data = _t(torch, w)
        ref = float(loss(_t(torch, x), _t(torch, y).long()).detach())
        np.testing.assert_allclose(ours[scale][1], ref, rtol=RTOL, atol=1e-5)


# ---------------------------------------------------------------- proxy anchor
def _np_proxy_anchor(x, w, y, margin=0.1, alpha=32.0):
    # PML src/pytorch_metric_learning/losses/proxy_anchor_loss.py with CosineSimilarity and
    # DivisorReducer: sum of positive terms / proxies with a positive + sum of negative terms / C.
    cos = _normalize(x) @ _normalize(w).T
    c = len(w)
    pos = np.array([_log1p_sum_exp(-alpha * (cos[y == k, k] - margin)) for k in range(c)])
    neg = np.array([_log1p_sum_exp(alpha * (cos[y != k, k] + margin)) for k in range(c)])
    with_pos = len(set(y.tolist()))
    return pos, neg, pos.sum() / with_pos + neg.sum() / c


@pytest.mark.parametrize("seed,n,dim,c", SIZES + [(3, 6, 4, 8)])  # the last: proxies without examples
def test_proxy_anchor_numpy(seed, n, dim, c):
    x, y = _batch(seed, n, dim, c)
    w = _f32(_rng(seed + 2).normal(size=(c, dim)))[0]
    options = ((0.1, 32.0), (0.3, 8.0))
    values = jax.jit(lambda x, w, y: {  # one program for every call
        (margin, alpha): (embedding.proxy_anchor_loss(x, w, y, margin=margin, alpha=alpha),
                          embedding.proxy_anchor_loss(x, w, y, margin=margin, alpha=alpha, reduction="none"))
        for margin, alpha in options})(x, w, y)
    for margin, alpha in options:
        pos, neg, ref = _np_proxy_anchor(x, w, y, margin, alpha)
        mean, ours = values[margin, alpha]
        np.testing.assert_allclose(mean, ref, rtol=RTOL, atol=1e-5)
        with_pos = len(set(y.tolist()))
        np.testing.assert_allclose(ours, c / with_pos * pos + neg, rtol=RTOL, atol=1e-5)


@pytest.mark.parametrize("seed,n,dim,c", SIZES + [(3, 6, 4, 8)])
def test_proxy_anchor_pml(seed, n, dim, c):
    torch, losses = _pml()
    x, y = _batch(seed + 30, n, dim, c)
    w = _f32(_rng(seed + 3).normal(size=(c, dim)))[0]
    loss = losses.ProxyAnchorLoss(num_classes=c, embedding_size=dim)
    loss.proxies.data = _t(torch, w)
    ref = float(loss(_t(torch, x), _t(torch, y).long()).detach())
    np.testing.assert_allclose(E.proxy_anchor_loss(x, w, y), ref, rtol=RTOL, atol=1e-5)


def test_proxy_anchor_where_masks_examples_and_bad_label_is_nan():
    x, y = _batch(4, 10, 4, 3)
    w = _f32(_rng(5).normal(size=(3, 4)))[0]
    where = np.arange(10) % 3 != 1
    x_nan = x.copy()
    x_nan[~where] = np.nan
    above, below = y.copy(), y.copy()
    above[0], below[0] = 3, -1
    loss = embedding.proxy_anchor_loss

    @jax.jit
    def run(x_nan, sliced, sliced_labels, above, below):  # one program
        masked, g = jax.value_and_grad(lambda e: loss(e, w, y, where=where))(x_nan)
        return (masked, g, loss(sliced, w, sliced_labels), loss(x, w, y, where=np.zeros(10, bool)),
                loss(x, w, above, reduction="none"), loss(x, w, below), loss(x, w, below, where=np.arange(10) > 0))

    masked, g, sliced, all_masked, above_none, below_mean, below_masked = run(x_nan, x[where], y[where], above, below)
    np.testing.assert_allclose(masked, sliced, rtol=RTOL, atol=ATOL)
    assert _finite(g) and np.all(np.asarray(g)[~where] == 0)
    assert float(all_masked) == 0.0
    assert np.all(np.isnan(above_none))
    assert np.isnan(float(below_mean))
    # ...unless that example is masked.
    assert np.isfinite(float(below_masked))


# ----------------------------------------------------------------- SoftTriple
def _np_soft_triple(x, centers, y, k, la=20.0, gamma=0.1, margin=0.01):
    # PML src/pytorch_metric_learning/losses/soft_triple_loss.py: cosine to every center, viewed
    # [B, C, K] (center c * K + k), softmax(sim / gamma) over K, weighted sum, cross entropy of
    # la * (S - margin at the label), MeanReducer.
    sim = (_normalize(x) @ _normalize(centers).T).reshape(len(x), -1, k)
    e = np.exp(sim / gamma - (sim / gamma).max(-1, keepdims=True))
    s = np.sum(e / e.sum(-1, keepdims=True) * sim, axis=-1)
    s[np.arange(len(x)), y] -= margin
    return _cross_entropy(la * s, y)


@pytest.mark.parametrize("seed,n,dim,c", SIZES)
def test_soft_triple_numpy(seed, n, dim, c):
    x, y = _batch(seed, n, dim, c)
    centers = {k: _f32(_rng(seed + 4).normal(size=(c * k, dim)))[0] for k in (1, 3, 10)}
    ours, other = jax.jit(lambda x, centers, y: (  # one program for every call
        {k: embedding.soft_triple_loss(x, centers[k], y, centers_per_class=k, reduction="none") for k in centers},
        embedding.soft_triple_loss(x, centers[10], y, centers_per_class=10, la=8.0, gamma=0.5, margin=0.2,
                                   reduction="none")))(x, centers, y)
    for k in (1, 3, 10):
        np.testing.assert_allclose(ours[k], _np_soft_triple(x, centers[k], y, k), rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(other, _np_soft_triple(x, centers[10], y, 10, 8.0, 0.5, 0.2), rtol=RTOL, atol=1e-5)


@pytest.mark.parametrize("seed,n,dim,c", SIZES)
def test_soft_triple_pml(seed, n, dim, c):
    torch, losses = _pml()
    x, y = _batch(seed + 40, n, dim, c)
    centers = _f32(_rng(seed + 5).normal(size=(c * 10, dim)))[0]
    loss = losses.SoftTripleLoss(num_classes=c, embedding_size=dim)
    loss.fc.data = _t(torch, centers.T.copy())
    ref = float(loss(_t(torch, x), _t(torch, y).long()).detach())
    np.testing.assert_allclose(E.soft_triple_loss(x, centers, y), ref, rtol=RTOL, atol=1e-5)


# ----------------------------------------------------------- sub-center ArcFace
def _np_sub_center_arcface(x, centers, y, k, scale=64.0, margin=0.5):
    # PML src/pytorch_metric_learning/losses/subcenter_arcface_loss.py (get_cosine: max over the K
    # sub-centers of a class, center c * K + k) and arcface_loss.py (cos(theta + m) up to
    # theta = pi - m, then cos(theta) - m sin(m)), cross entropy of scale * logits, MeanReducer.
    cos = (_normalize(x) @ _normalize(centers).T).reshape(len(x), -1, k).max(-1)
    theta = np.arccos(np.clip(cos[np.arange(len(x)), y], -1, 1))
    target = np.where(theta <= np.pi - margin, np.cos(theta + margin), np.cos(theta) - margin * np.sin(margin))
    logits = cos.copy()
    logits[np.arange(len(x)), y] = target
    return _cross_entropy(scale * logits, y)


@pytest.mark.parametrize("seed,n,dim,c", SIZES)
def test_sub_center_arcface_numpy(seed, n, dim, c):
    x, y = _batch(seed, n, dim, c)
    x[0] = -x[0]  # at least one angle beyond pi - m is likely; the formula covers both branches
    centers = {k: _f32(_rng(seed + 6).normal(size=(c * k, dim)))[0] for k in (1, 3)}
    options = ((64.0, 0.5), (16.0, 0.2))
    arcface_centers = _f32(_rng(seed + 7).normal(size=(c, dim)))[0]
    ours, (sub1, arcface) = jax.jit(lambda x, centers, y, w: (  # one program for every call
        {(k, scale, margin): embedding.sub_center_arcface_loss(x, centers[k], y, sub_centers=k, scale=scale,
                                                               margin=margin, reduction="none")
         for k in centers for scale, margin in options},
        (embedding.sub_center_arcface_loss(x, w, y, sub_centers=1, reduction="none"),
         embedding.arcface_loss(x, w, y, reduction="none"))))(x, centers, y, arcface_centers)
    for k in (1, 3):
        for scale, margin in options:
            ref = _np_sub_center_arcface(x, centers[k], y, k, scale, margin)
            np.testing.assert_allclose(ours[k, scale, margin], ref, rtol=RTOL, atol=1e-4)
    # With one sub-center it is ArcFace.
    np.testing.assert_allclose(sub1, arcface, rtol=1e-6)


def test_sub_center_arcface_beyond_threshold():
    # An embedding opposite to all sub-centers of its class: theta near pi, beyond pi - m.
    centers = np.array([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0], [0.0, 0.1, 1.0]], np.float32)
    x = np.array([[-1.0, 0.05, 0.0], [0.0, 0.0, 1.0]], np.float32)
    y = np.array([0, 1], np.int32)
    ref = _np_sub_center_arcface(x, centers, y, 2, 16.0, 0.5)
    np.testing.assert_allclose(E.sub_center_arcface_loss(x, centers, y, sub_centers=2, scale=16.0,
                                                         reduction="none"), ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("seed,n,dim,c", SIZES)
def test_sub_center_arcface_pml(seed, n, dim, c):
    torch, losses = _pml()
    x, y = _batch(seed + 50, n, dim, c)
    centers = _f32(_rng(seed + 8).normal(size=(c * 3, dim)))[0]
    ours = jax.jit(lambda x, centers, y: {margin: embedding.sub_center_arcface_loss(x, centers, y, margin=margin)
                                          for margin in (0.5, 0.2)})(x, centers, y)
    for margin in (0.5, 0.2):
        loss = losses.SubCenterArcFaceLoss(num_classes=c, embedding_size=dim, margin=np.degrees(margin))
        loss.W.data = _t(torch, centers.T.copy())
        ref = float(loss(_t(torch, x), _t(torch, y).long()).detach())
        np.testing.assert_allclose(ours[margin], ref, rtol=RTOL, atol=1e-4)


# ------------------------------------------------------- edges, masks, errors
def _call(name, x, y, **kw):
    rng = _rng(9)
    d = x.shape[-1]
    if name == "multi_similarity_loss":
        return E.multi_similarity_loss(x, y, **kw)
    if name == "lifted_structure_loss":
        return E.lifted_structure_loss(x, y, **kw)
    if name == "npairs_loss":
        return E.npairs_loss(x, x[::-1], **kw)
    if name == "proxy_nca_loss":
        return E.proxy_nca_loss(x, jnp.asarray(rng.normal(size=(3, d)), x.dtype), y, **kw)
    if name == "proxy_anchor_loss":
        return E.proxy_anchor_loss(x, jnp.asarray(rng.normal(size=(3, d)), x.dtype), y, **kw)
    if name == "soft_triple_loss":
        return E.soft_triple_loss(x, jnp.asarray(rng.normal(size=(6, d)), x.dtype), y, centers_per_class=2, **kw)
    return E.sub_center_arcface_loss(x, jnp.asarray(rng.normal(size=(9, d)), x.dtype), y, **kw)


NAMES = ["multi_similarity_loss", "lifted_structure_loss", "npairs_loss", "proxy_nca_loss", "proxy_anchor_loss",
         "soft_triple_loss", "sub_center_arcface_loss"]


@functools.cache
def _value_and_grad(name):
    # One program per loss, shared by the three cases (same shapes).
    return jax.jit(jax.value_and_grad(lambda e, y: _call(name, e, y)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", ["zeros", "single_class", "duplicates"])
def test_finite_at_edge_cases(name, case):
    x = _f32(_rng(10).normal(size=(6, 4)))[0]
    y = np.array([0, 0, 1, 1, 2, 2], np.int32)
    if case == "zeros":
        x = np.zeros_like(x)
    elif case == "single_class":
        y = np.zeros(6, np.int32)
    else:
        x = np.repeat(x[:3], 2, axis=0)  # each example identical to its positive
    value, grad = _value_and_grad(name)(x, y)
    assert np.isfinite(value) and _finite(grad), (name, case, value)


@pytest.mark.parametrize("name", ["multi_similarity_loss", "lifted_structure_loss", "npairs_loss"])
def test_where_removes_example_as_anchor_and_candidate(name):
    x = _f32(_rng(11).normal(size=(8, 4)))[0]
    y = np.array([0, 0, 1, 1, 2, 2, 0, 1], np.int32)
    where = np.array([True, False, True, True, False, True, True, True])
    if name == "npairs_loss":
        masked, sliced = E.npairs_loss(x, x[::-1], where=where), E.npairs_loss(x[where], x[::-1][where])
    else:
        fn = jit_static(getattr(embedding, name))
        masked, sliced = fn(x, y, where=where), fn(x[where], y[where])
    np.testing.assert_allclose(masked, sliced, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ["proxy_nca_loss", "soft_triple_loss", "sub_center_arcface_loss"])
def test_out_of_range_label_is_nan(name):
    x = _f32(_rng(12).normal(size=(4, 4)))[0]
    for bad in (-1, 3):
        y = np.array([0, 1, 2, bad], np.int32)
        values = np.asarray(_call(name, x, y, reduction="none"))
        assert np.isnan(values[3]) and np.all(np.isfinite(values[:3])), (name, values)


def test_errors_name_function_and_argument():
    # Called eagerly, as a user would: the checks raise before any computation.
    x = np.zeros((4, 3), np.float32)
    y = np.zeros(4, np.int32)
    with pytest.raises(ValueError, match="jaxloss.soft_triple_loss: centers must have a multiple of 10 rows"):
        embedding.soft_triple_loss(x, np.zeros((15, 3), np.float32), y)
    with pytest.raises(ValueError, match="jaxloss.soft_triple_loss: centers_per_class must be >= 1"):
        embedding.soft_triple_loss(x, np.zeros((15, 3), np.float32), y, centers_per_class=0)
    with pytest.raises(ValueError, match="jaxloss.sub_center_arcface_loss: sub_centers"):
        embedding.sub_center_arcface_loss(x, np.zeros((6, 3), np.float32), y, sub_centers=1.5)
    with pytest.raises(ValueError, match="jaxloss.sub_center_arcface_loss: class_centers"):
        embedding.sub_center_arcface_loss(x, np.zeros((6, 2), np.float32), y)
    with pytest.raises(ValueError, match="jaxloss.multi_similarity_loss: alpha"):
        embedding.multi_similarity_loss(x, y, alpha=0.0)
    with pytest.raises(ValueError, match="jaxloss.proxy_anchor_loss: proxies"):
        embedding.proxy_anchor_loss(x, np.zeros((3, 2), np.float32), y)
    with pytest.raises(TypeError, match="jaxloss.proxy_nca_loss: labels"):
        embedding.proxy_nca_loss(x, np.zeros((3, 3), np.float32), y.astype(np.float32))
    with pytest.raises(ValueError, match="jaxloss.npairs_loss: anchors .* and positives"):
        embedding.npairs_loss(x, np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match="jaxloss.lifted_structure_loss: labels"):
        embedding.lifted_structure_loss(x, np.zeros(5, np.int32))
