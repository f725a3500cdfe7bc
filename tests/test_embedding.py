"""Reference tests for ``jaxloss.embedding``.

Every loss is compared with numbers we did not compute with our code: NumPy
transcriptions of the reference formula (always run), and where available the
reference library itself (torch via ``pytest.importorskip``, optax, Keras 3 on
the JAX backend). Tolerance: 1e-5 relative in float32.

Every call of a jaxloss function goes through ``jax.jit`` (``E`` below): the
suite's cost is XLA compilation, and an eager call compiles each primitive on
its own. Python-valued options (``reduction``, ``margin``, ``scale``, ...) stay
static, so each call takes the code path of a concrete hyper-parameter.
"""

from __future__ import annotations

import functools
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxloss import embedding
from tests.jitted import Jitted, jit_static


E = Jitted(embedding)

RTOL, ATOL = 1e-5, 1e-6


def _rng(seed=0):
    return np.random.default_rng(seed)


def _f32(*arrays):
    return [np.asarray(a, np.float32) for a in arrays]


def _normalize(x):
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


def _logsumexp(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def _softplus(x):
    return np.logaddexp(0.0, x)


def _finite(tree):
    return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(tree))


# --------------------------------------------------------------------- cosine
def test_cosine_similarity_and_distance_equal_optax():
    # optax.losses.cosine_similarity / cosine_distance (epsilon clips the squared norms).
    x, y = _f32(*_rng().normal(size=(2, 5, 7, 3)))
    for axis in (-1, 1):
        ours = E.cosine_similarity(x, y, axis=axis, reduction="none")
        ref = jit_static(optax.losses.cosine_similarity)(x, y, axis=axis, epsilon=1e-8)
        np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)
        ours = E.cosine_distance(x, y, axis=axis, reduction="none")
        ref = jit_static(optax.losses.cosine_distance)(x, y, axis=axis, epsilon=1e-8)
        np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)


def test_cosine_with_many_rows_normalises_first_with_the_same_values_and_gradients():
    # From 4096 rows on the value normalises both inputs first (optax's order, faster there on XLA:CPU);
    # the gradient is always that of <p, t> / sqrt(max(|p|^2, eps) max(|t|^2, eps)). Reference: a float64
    # NumPy transcription of optax.losses.cosine_similarity (optax/losses/_regression.py), whose gradient
    # is written out: d cos / d p = t / (|p| |t|) - cos p / |p|^2 (no clipping at these norms).
    rng = _rng(7)
    x, y = rng.normal(size=(2, 4096, 6))
    x[0] = 0.0                 # a zero vector: clipped norm, similarity 0, finite gradient
    x[1, 2] = np.nan           # NaN propagates to its row only
    x32, y32 = _f32(x, y)
    nx, ny = (np.sqrt(np.maximum((v.astype(np.float64) ** 2).sum(-1, keepdims=True), 1e-8)) for v in (x32, y32))
    cos = ((x32 / nx) * (y32 / ny)).sum(-1)
    for got in (E.cosine_similarity(x32, y32, reduction="none"),
                jax.jit(lambda a, b: E.cosine_similarity(a, b, reduction="none"))(x32, y32)):
        got = np.asarray(got)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(cos))
        np.testing.assert_allclose(got[2:], cos[2:], rtol=RTOL, atol=ATOL)
        assert got[0] == 0.0
    rows = slice(2, None)
    value, (gx, gy) = jax.jit(jax.value_and_grad(lambda a, b: E.cosine_similarity(a, b, reduction="sum"),
                                                 argnums=(0, 1)))(x32[rows], y32[rows])
    np.testing.assert_allclose(float(value), cos[rows].sum(), rtol=1e-5)
    c = cos[rows][:, None]
    np.testing.assert_allclose(np.asarray(gx), y32[rows] / (nx[rows] * ny[rows]) - c * x32[rows] / nx[rows] ** 2,
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(gy), x32[rows] / (nx[rows] * ny[rows]) - c * y32[rows] / ny[rows] ** 2,
                               rtol=1e-4, atol=1e-6)
    g_zero = jax.grad(lambda a, b: E.cosine_similarity(a, b, reduction="sum"))(x32[:2048], y32[:2048])
    assert np.isfinite(np.asarray(g_zero)[0]).all()


def test_cosine_similarity_alias_has_keras_gradients():
    # Keras 3 cosine_similarity loss is -cos; ours (the registry alias) is 1 - cos.
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("Keras must run on the JAX backend (KERAS_BACKEND=jax)")
    fn = E.cosine_distance
    x, y = _f32(*_rng(1).normal(size=(2, 6, 4)))
    ours = fn(x, y, reduction="none")
    ref = np.asarray(jax.jit(keras.losses.cosine_similarity)(y, x))
    np.testing.assert_allclose(ours, 1.0 + ref, rtol=RTOL, atol=ATOL)
    g_ours = jax.jit(jax.grad(lambda p: fn(p, y)))(x)
    g_ref = jax.jit(jax.grad(lambda p: jnp.mean(keras.losses.cosine_similarity(y, p))))(x)
    np.testing.assert_allclose(g_ours, g_ref, rtol=1e-4, atol=1e-6)


def test_cosine_zero_vector_is_zero_with_finite_gradient():
    x = jnp.zeros((3, 4))
    y = jnp.ones((3, 4))
    np.testing.assert_array_equal(E.cosine_similarity(x, y, reduction="none"), 0.0)
    assert _finite(jax.jit(jax.grad(lambda a, b: E.cosine_distance(a, b), argnums=(0, 1)))(x, y))


# ---------------------------------------------------------- torch-named losses
def _np_cosine_embedding(x1, x2, y, margin):
    # torch aten cosine_embedding_loss: EPSILON = 1e-12 inside both squared magnitudes.
    x1, x2 = np.float64(x1), np.float64(x2)
    cos = (x1 * x2).sum(-1) / np.sqrt(((x1 * x1).sum(-1) + 1e-12) * ((x2 * x2).sum(-1) + 1e-12))
    return np.where(y == 1, 1 - cos, 0.0) + np.where(y == -1, np.maximum(cos - margin, 0.0), 0.0)


def _np_hinge_embedding(x, y, margin):
    # torch aten hinge_embedding_loss: margin term where y != 1, self term where y != -1.
    return np.where(y != 1, np.maximum(margin - x, 0.0), 0.0) + np.where(y != -1, x, 0.0)


def _np_triplet(a, p, n, margin, pnorm, eps, swap):
    # torch pairwise_distance: ||x1 - x2 + eps||_p.
    def dist(u, v):
        return np.linalg.norm(np.float64(u) - np.float64(v) + eps, ord=pnorm, axis=-1)

    d_an = dist(a, n)
    if swap:
        d_an = np.minimum(d_an, dist(p, n))
    return np.maximum(dist(a, p) - d_an + margin, 0.0)


def _cosine_embedding_case(seed=0):
    rng = _rng(seed)
    x1, x2 = _f32(*rng.normal(size=(2, 8, 5)))
    y = np.where(rng.uniform(size=8) < 0.5, -1.0, 1.0).astype(np.float32)
    return x1, x2, y


@pytest.mark.parametrize("margin", [0.0, 0.3, -0.2])
def test_cosine_embedding_loss_numpy(margin):
    x1, x2, y = _cosine_embedding_case()
    ours = E.cosine_embedding_loss(x1, x2, y, margin=margin, reduction="none")
    np.testing.assert_allclose(ours, _np_cosine_embedding(x1, x2, y, margin), rtol=RTOL, atol=ATOL)


def test_cosine_embedding_loss_torch():
    torch = pytest.importorskip("torch")
    x1, x2, y = _cosine_embedding_case(1)
    ref = torch.nn.functional.cosine_embedding_loss(torch.tensor(x1), torch.tensor(x2), torch.tensor(y),
                                                    margin=0.2, reduction="none").numpy()
    np.testing.assert_allclose(E.cosine_embedding_loss(x1, x2, y, margin=0.2, reduction="none"), ref,
                               rtol=RTOL, atol=ATOL)


def _hinge_case(seed=0):
    rng = _rng(seed)
    x = rng.uniform(0.0, 3.0, size=(4, 6)).astype(np.float32)
    y = np.where(rng.uniform(size=(4, 6)) < 0.5, -1.0, 1.0).astype(np.float32)
    return x, y


def test_hinge_embedding_loss_numpy_and_torch():
    x, y = _hinge_case()
    ours = E.hinge_embedding_loss(x, y, margin=1.5, reduction="none")
    np.testing.assert_allclose(ours, _np_hinge_embedding(x, y, 1.5), rtol=RTOL, atol=ATOL)
    torch = pytest.importorskip("torch")
    ref = torch.nn.functional.hinge_embedding_loss(torch.tensor(x), torch.tensor(y), margin=1.5,
                                                   reduction="none").numpy()
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)


TRIPLET_CASES = [dict(margin=1.0, p=2.0, epsilon=1e-6, swap=False), dict(margin=0.5, p=1.0, epsilon=1e-6, swap=True),
                 dict(margin=2.0, p=3.0, epsilon=0.0, swap=False), dict(margin=1.0, p=2.0, epsilon=1e-3, swap=True)]


@pytest.mark.parametrize("kw", TRIPLET_CASES)
def test_triplet_margin_loss_numpy(kw):
    a, p, n = _f32(*_rng(2).normal(size=(3, 10, 4)))
    ours = E.triplet_margin_loss(a, p, n, reduction="none", **kw)
    ref = _np_triplet(a, p, n, kw["margin"], kw["p"], kw["epsilon"], kw["swap"])
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kw", TRIPLET_CASES)
def test_triplet_margin_loss_torch(kw):
    torch = pytest.importorskip("torch")
    a, p, n = _f32(*_rng(3).normal(size=(3, 10, 4)))
    ref = torch.nn.functional.triplet_margin_loss(torch.tensor(a), torch.tensor(p), torch.tensor(n),
                                                  margin=kw["margin"], p=kw["p"], eps=kw["epsilon"],
                                                  swap=kw["swap"], reduction="mean").numpy()
    np.testing.assert_allclose(E.triplet_margin_loss(a, p, n, **kw), ref, rtol=RTOL, atol=ATOL)


def test_triplet_traced_p_equals_concrete_p():
    a, p, n = _f32(*_rng(4).normal(size=(3, 6, 4)))
    for pnorm in (1.0, 2.0, 3.0):
        traced = jax.jit(lambda q: E.triplet_margin_loss(a, p, n, p=q, reduction="none"))(pnorm)
        np.testing.assert_allclose(traced, E.triplet_margin_loss(a, p, n, p=pnorm, reduction="none"),
                                   rtol=RTOL, atol=ATOL)


def test_triplet_gradients_traced_epsilon_and_second_derivatives():
    # The p = 2 distance takes its derivative from a custom JVP (`embedding._shifted_distance`) with epsilon as a
    # Python constant; a traced epsilon takes the plain path. Both give the same values and gradients, the
    # gradients equal the closed form s_p (a - p + eps) / d_p - s_n (a - n + eps) / d_n over active triplets
    # (float64 NumPy), and Hessian-vector products equal central finite differences of the gradient.
    a, p, n = _f32(*_rng(7).normal(size=(3, 8, 5)))
    for swap in (False, True):
        def loss(x, y, z, eps):
            return embedding.triplet_margin_loss(x, y, z, margin=1.0, epsilon=eps, swap=swap, reduction="sum")
        concrete = jax.jit(jax.value_and_grad(lambda x, y, z: loss(x, y, z, 1e-3), argnums=(0, 1, 2)))(a, p, n)
        traced = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(a, p, n, jnp.float32(1e-3))
        for ours, other in zip(jax.tree_util.tree_leaves(concrete), jax.tree_util.tree_leaves(traced)):
            np.testing.assert_allclose(ours, other, rtol=RTOL, atol=ATOL)
    a64, p64, n64 = (np.float64(x) for x in (a, p, n))
    dp, dn = a64 - p64 + 1e-3, a64 - n64 + 1e-3
    up = dp / np.linalg.norm(dp, axis=-1, keepdims=True)
    un = dn / np.linalg.norm(dn, axis=-1, keepdims=True)
    active = (np.linalg.norm(dp, axis=-1) - np.linalg.norm(dn, axis=-1) + 1.0 > 0)[:, None].astype(np.float64)
    grads = jax.jit(jax.grad(lambda x, y, z: embedding.triplet_margin_loss(x, y, z, epsilon=1e-3, reduction="sum"),
                             argnums=(0, 1, 2)))(a, p, n)
    for ours, ref in zip(grads, (active * (up - un), -active * up, active * un)):
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
    with jax.enable_x64(True):
        x, v = jnp.asarray(a64), jnp.asarray(_rng(8).normal(size=a.shape))
        grad = jax.grad(lambda x: embedding.triplet_margin_loss(x, p64, n64, epsilon=1e-3, reduction="sum"))
        hvp = jax.jvp(grad, (x,), (v,))[1]
        step = 1e-6
        fd = (grad(x + step * v) - grad(x - step * v)) / (2 * step)
        np.testing.assert_allclose(np.asarray(hvp), np.asarray(fd), rtol=1e-5, atol=1e-7)


def test_triplet_identical_anchor_positive_is_finite():
    a = _f32(_rng(5).normal(size=(4, 3)))[0]
    for eps in (1e-6, 0.0):
        value, grads = jax.jit(jax.value_and_grad(
            lambda x, y, z: E.triplet_margin_loss(x, y, z, epsilon=eps), argnums=(0, 1, 2)))(a, a, a + 0.1)
        assert np.isfinite(value) and _finite(grads)


def test_contrastive_loss_numpy():
    # Hadsell et al. 2006, eq. (4) with L_S = d^2 / 2 and L_D = max(0, m - d)^2 / 2.
    rng = _rng(6)
    x1, x2 = _f32(*rng.normal(size=(2, 12, 3)))
    y = (rng.uniform(size=12) < 0.5).astype(np.float32)
    d = np.linalg.norm(np.float64(x1) - x2, axis=-1)
    ref = 0.5 * (y * d ** 2 + (1 - y) * np.maximum(2.0 - d, 0.0) ** 2)
    np.testing.assert_allclose(E.contrastive_loss(x1, x2, y, margin=2.0, reduction="none"), ref,
                               rtol=RTOL, atol=ATOL)
    g = jax.jit(jax.grad(lambda a: E.contrastive_loss(a, a, y)))(x1)  # zero distance
    assert _finite(g)


# ---------------------------------------------------------- batch-hard triplet
def _np_batch_hard(x, labels, margin, soft):
    # Hermans et al. 2017, eq. (5) and the soft-margin variant, one anchor at a time.
    x = np.float64(x)
    out, valid = [], []
    for i in range(len(x)):
        d = np.linalg.norm(x - x[i], axis=-1)
        pos = [d[j] for j in range(len(x)) if labels[j] == labels[i] and j != i]
        neg = [d[k] for k in range(len(x)) if labels[k] != labels[i]]
        if not pos or not neg:
            out.append(0.0)
            valid.append(False)
            continue
        gap = max(pos) - min(neg)
        out.append(_softplus(gap) if soft else max(margin + gap, 0.0))
        valid.append(True)
    return np.array(out), np.array(valid)


@pytest.mark.parametrize("soft", [False, True])
def test_batch_hard_triplet_numpy(soft):
    rng = _rng(7)
    x = _f32(rng.normal(size=(12, 5)))[0]
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 4], np.int32)  # class 4 has no positive
    ref, valid = _np_batch_hard(x, labels, 0.5, soft)
    none = E.batch_hard_triplet_loss(x, labels, margin=0.5, soft=soft, reduction="none")
    np.testing.assert_allclose(none, ref, rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(E.batch_hard_triplet_loss(x, labels, margin=0.5, soft=soft),
                               ref[valid].mean(), rtol=RTOL, atol=1e-5)


# -------------------------------------------------------------------- NT-Xent
def _np_ntxent_pairs(x, labels, t):
    # optax ntxent / pytorch-metric-learning NTXentLoss: per positive pair, the
    # positive against the anchor's negatives only; mean over positive pairs.
    z = _normalize(x)
    s = z @ z.T / t
    losses = []
    for i in range(len(x)):
        neg = [s[i, k] for k in range(len(x)) if labels[k] != labels[i]]
        for j in range(len(x)):
            if j != i and labels[j] == labels[i]:
                losses.append(-(s[i, j] - _logsumexp(np.array([s[i, j]] + neg))))
    return np.array(losses)


# 0.07 and 0.5 take the shift by 1/t (`embedding._cosine_logit_bound`), 0.01 the shift by the maximum.
NTXENT_TEMPERATURES = (0.01, 0.07, 0.5)


@jax.jit
def _ntxent_ours_and_optax(x, labels):
    """Values and gradients at every temperature, ours and optax's: one program for every label set."""
    ours = {t: jax.value_and_grad(lambda e, t=t: embedding.ntxent_loss(e, labels, temperature=t))(x)
            for t in NTXENT_TEMPERATURES}
    with jax.numpy_dtype_promotion("standard"):  # optax's ntxent promotes bool with int implicitly
        ref = {t: jax.value_and_grad(lambda e, t=t: optax.losses.ntxent(e, labels, t))(x) for t in NTXENT_TEMPERATURES}
    return ours, ref


@pytest.mark.parametrize("labels", [[0, 0, 1, 1, 2, 2, 3, 3], [0, 0, 0, 1, 1, 2, 3, 3], [5, 5, 5, 5, 1, 1, 1, 1]])
def test_ntxent_equals_optax_and_numpy(labels):
    labels = np.array(labels, np.int32)
    x = _f32(_rng(8).normal(size=(8, 6)))[0]
    ours, ref = _ntxent_ours_and_optax(x, labels)
    for t in NTXENT_TEMPERATURES:
        np.testing.assert_allclose(ours[t][0], ref[t][0], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(ours[t][0], _np_ntxent_pairs(x, labels, t).mean(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(ours[t][1], ref[t][1], rtol=1e-4, atol=1e-6 / t)


# -------------------------------------------------------------------- SupCon
def _np_supcon(x, labels, t):
    # pytorch-metric-learning SupConLoss with CosineSimilarity and AvgNonZeroReducer.
    z = _normalize(x)
    s = z @ z.T / t
    n = len(x)
    losses = []
    if len(set(labels.tolist())) < 2:
        return 0.0
    for i in range(n):
        others = [k for k in range(n) if k != i]
        pos = [j for j in others if labels[j] == labels[i]]
        if not pos:
            continue
        denom = _logsumexp(s[i, others])
        losses.append(-np.mean([s[i, j] - denom for j in pos]))
    return float(np.mean(losses)) if losses else 0.0


@pytest.mark.parametrize("labels", [[0, 0, 1, 1, 2, 2, 2, 3], [1, 1, 1, 1, 1, 1, 1, 1], [0, 1, 2, 3, 4, 5, 6, 7]])
def test_supervised_contrastive_numpy(labels):
    labels = np.array(labels, np.int32)
    x = _f32(_rng(9).normal(size=(8, 5)))[0]
    for t in (0.01, 0.1, 0.5):  # 0.01 shifts by the maximum, the others by 1/t
        ours = E.supervised_contrastive_loss(x, labels, temperature=t)
        np.testing.assert_allclose(ours, _np_supcon(x, labels, t), rtol=RTOL, atol=ATOL)


# ------------------------------------------------------ InfoNCE, CLIP, SigLIP
def _np_pair_logits(u, v, t):
    return _normalize(u) @ _normalize(v).T / t


def test_info_nce_numpy_and_torch():
    q, k = _f32(*_rng(10).normal(size=(2, 9, 4)))
    logits = _np_pair_logits(q, k, 0.2)
    ref = _logsumexp(logits) - np.diag(logits)
    ours = E.info_nce_loss(q, k, temperature=0.2, reduction="none")
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)
    torch = pytest.importorskip("torch")
    tq = torch.nn.functional.normalize(torch.tensor(q), dim=-1)
    tk = torch.nn.functional.normalize(torch.tensor(k), dim=-1)
    ref_t = torch.nn.functional.cross_entropy(tq @ tk.T / 0.2, torch.arange(9), reduction="none").numpy()
    np.testing.assert_allclose(ours, ref_t, rtol=RTOL, atol=ATOL)


def test_clip_loss_numpy():
    # Radford et al. 2021, Figure 3: (CE(logits, arange) + CE(logits.T, arange)) / 2.
    u, v = _f32(*_rng(11).normal(size=(2, 7, 5)))
    logits = _np_pair_logits(u, v, 0.07)
    i2t = _logsumexp(logits, axis=1) - np.diag(logits)
    t2i = _logsumexp(logits, axis=0) - np.diag(logits)
    np.testing.assert_allclose(E.clip_loss(u, v, temperature=0.07, reduction="none"), 0.5 * (i2t + t2i),
                               rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(E.clip_loss(u, v, temperature=0.07), 0.5 * (i2t.mean() + t2i.mean()),
                               rtol=RTOL, atol=1e-5)



def test_clip_loss_value_and_gradients_match_torch():
    # open_clip ClipLoss (local batch): (CE(logits_per_image, arange) + CE(logits_per_text, arange)) / 2 with
    # logits_per_text = logits_per_image.T; gradients through torch's normalize.
    torch = pytest.importorskip("torch")
    u, v = _f32(*_rng(14).normal(size=(2, 33, 6)))
    tu, tv = torch.tensor(u, requires_grad=True), torch.tensor(v, requires_grad=True)
    logits = torch.nn.functional.normalize(tu, dim=-1) @ torch.nn.functional.normalize(tv, dim=-1).T / 0.07
    target = torch.arange(33)
    ce = torch.nn.functional.cross_entropy
    ref = 0.5 * (ce(logits, target) + ce(logits.T, target))
    ref.backward()
    value, (gu, gv) = jax.value_and_grad(lambda a, b: E.clip_loss(a, b, temperature=0.07), argnums=(0, 1))(u, v)
    np.testing.assert_allclose(value, ref.item(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(gu, tu.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gv, tv.grad.numpy(), rtol=1e-4, atol=1e-6)

def test_siglip_loss_numpy():
    # big_vision sigmoid loss: -sum(log_sigmoid(z * (t <u, v> + b))) / batch.
    u, v = _f32(*_rng(12).normal(size=(2, 7, 5)))
    logits = 10.0 * _np_pair_logits(u, v, 1.0) - 10.0
    z = 2 * np.eye(7) - 1
    ref = -np.sum(-_softplus(-z * logits), axis=1)
    np.testing.assert_allclose(E.siglip_loss(u, v, logit_scale=10.0, logit_bias=-10.0, reduction="none"), ref,
                               rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(E.siglip_loss(u, v, logit_scale=10.0, logit_bias=-10.0), ref.sum() / 7,
                               rtol=RTOL, atol=1e-5)


def test_learned_temperature_and_scale_are_differentiable():
    u, v = _f32(*_rng(13).normal(size=(2, 5, 3)))
    g = jax.jit(jax.grad(lambda t: E.clip_loss(u, v, temperature=jnp.exp(t))))(jnp.log(0.07))
    assert np.isfinite(g) and g != 0
    g = jax.jit(jax.grad(lambda s, b: E.siglip_loss(u, v, logit_scale=jnp.exp(s), logit_bias=b), argnums=(0, 1)))(
        jnp.log(10.0), -10.0)
    assert _finite(g)


# ------------------------------------------------------------ ArcFace, CosFace
def _np_margin_softmax(x, w, labels, scale, modify):
    # pytorch-metric-learning LargeMarginSoftmaxLoss.compute_loss: replace the target
    # cosine, scale, cross entropy per example (MeanReducer for the mean).
    cos = _normalize(x) @ _normalize(w).T
    target = cos[np.arange(len(x)), labels]
    logits = cos.copy()
    logits[np.arange(len(x)), labels] = modify(target)
    logits *= scale
    return _logsumexp(logits) - logits[np.arange(len(x)), labels]


def _centers_case(seed):
    rng = _rng(seed)
    x, w = _f32(rng.normal(size=(10, 6)), rng.normal(size=(4, 6)))
    return x, w, rng.integers(0, 4, size=10).astype(np.int32)


def _np_arcface_target(c, margin):
    # pytorch-metric-learning src/pytorch_metric_learning/losses/arcface_loss.py,
    # ArcFaceLoss.modify_cosine_of_target_classes: cos(theta + m) while theta <= pi - m,
    # else cos(theta) - m * sin(m) (the margin is in degrees there, radians here).
    theta = np.arccos(np.clip(c, -1, 1))
    return np.where(theta <= np.pi - margin, np.cos(theta + margin), np.cos(theta) - margin * np.sin(margin))


def _angles_case(seed, angles, num_classes=4, dim=5):
    # Embeddings at the given angles (radians) from their target class center, in random directions.
    rng = _rng(seed)
    w = rng.normal(size=(num_classes, dim))
    y = rng.integers(0, num_classes, size=len(angles)).astype(np.int32)
    u = _normalize(w[y])
    v = rng.normal(size=(len(angles), dim))
    v = _normalize(v - np.sum(v * u, axis=-1, keepdims=True) * u)  # orthogonal to the center
    x = np.cos(angles)[:, None] * u + np.sin(angles)[:, None] * v
    x *= rng.uniform(0.5, 2.0, size=(len(angles), 1))
    return _f32(x, w)[0], _f32(w)[0], y


# Both sides of the threshold pi - m (2.64 for m = 0.5, 2.94 for m = 0.2).
ARC_ANGLES = np.array([0.1, 0.8, 1.6, 2.3, 2.6, 2.7, 2.9, 3.0, 3.1])


@pytest.mark.parametrize("scale,margin", [(64.0, 0.5), (30.0, 0.2)])
def test_arcface_numpy_both_sides_of_threshold(scale, margin):
    x, w, y = _centers_case(14)
    ref = _np_margin_softmax(x, w, y, scale, lambda c: _np_arcface_target(c, margin))
    ours = E.arcface_loss(x, w, y, scale=scale, margin=margin, reduction="none")
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=1e-5)
    x, w, y = _angles_case(22, ARC_ANGLES)
    ref = _np_margin_softmax(x, w, y, scale, lambda c: _np_arcface_target(c, margin))
    ours = E.arcface_loss(x, w, y, scale=scale, margin=margin, reduction="none")
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=1e-4)
    # The old formula cos(theta + m) everywhere differs beyond the threshold (the issue-11 defect).
    old = _np_margin_softmax(x, w, y, scale, lambda c: np.cos(np.arccos(np.clip(c, -1, 1)) + margin))
    beyond = ARC_ANGLES > np.pi - margin
    assert np.all(np.abs(old - ref)[beyond] > 1e-2) and np.allclose(old[~beyond], ref[~beyond], rtol=1e-6)


def test_arcface_target_logit_decreases_through_threshold():
    # Loss of one embedding against its own center rises monotonically with the angle.
    # The other center is orthogonal to the plane of rotation, so only the target logit moves.
    w = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    angles = np.linspace(2.2, 3.14, 50)
    x = np.stack([np.cos(angles), np.sin(angles), np.zeros(50)], -1).astype(np.float32)
    values = np.asarray(E.arcface_loss(x, w, np.zeros(50, np.int32), scale=8.0, margin=0.5, reduction="none"))
    assert np.all(np.diff(values) > 0)


def test_arcface_equals_pytorch_metric_learning():
    torch = pytest.importorskip("torch")
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    for margin in (0.5, 0.2):
        x, w, y = _angles_case(23, np.concatenate([ARC_ANGLES, ARC_ANGLES[::-1]]))
        loss = pml.ArcFaceLoss(num_classes=4, embedding_size=5, margin=np.degrees(margin), scale=30.0)
        loss.W.data = torch.tensor(w.T.copy())
        ref = float(loss(torch.tensor(x), torch.tensor(y, dtype=torch.long)).detach())
        np.testing.assert_allclose(E.arcface_loss(x, w, y, scale=30.0, margin=margin), ref, rtol=1e-5)


@pytest.mark.parametrize("scale,margin", [(64.0, 0.35), (30.0, 0.1)])
def test_cosface_numpy(scale, margin):
    x, w, y = _centers_case(15)
    ref = _np_margin_softmax(x, w, y, scale, lambda c: c - margin)
    ours = E.cosface_loss(x, w, y, scale=scale, margin=margin, reduction="none")
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=1e-5)


@pytest.mark.parametrize("fn", [E.arcface_loss, E.cosface_loss])
def test_margin_softmax_where_equals_slicing_and_bad_labels_nan(fn):
    x, w, y = _centers_case(16)
    where = np.arange(10) < 7
    x_nan = x.copy()
    x_nan[7:] = np.nan
    bad = y.copy()
    bad[0] = 4

    @jax.jit
    def run(x_nan, sliced, sliced_labels, bad):  # one program
        masked, g = jax.value_and_grad(lambda e: fn(e, w, y, where=where))(x_nan)
        return masked, g, fn(sliced, w, sliced_labels), fn(x, w, bad, reduction="none")

    masked, g, sliced, values = run(x_nan, x[:7], y[:7], bad)
    np.testing.assert_allclose(masked, sliced, rtol=RTOL)
    assert _finite(g) and np.all(np.asarray(g)[7:] == 0)
    assert np.isnan(values[0]) and np.all(np.isfinite(values[1:]))


def test_arcface_target_cosine_one_is_finite():
    w = np.eye(3, dtype=np.float32)
    x = np.array([[2.0, 0.0, 0.0], [0.0, -1.0, 0.0]], np.float32)  # cos = +1 and -1 with the target
    value, grads = jax.jit(jax.value_and_grad(lambda a, b: E.arcface_loss(a, b, np.array([0, 1])),
                                              argnums=(0, 1)))(x, w)
    assert np.isfinite(value) and _finite(grads)


# --------------------------------------------------------------------- Circle
def _np_circle(x, labels, gamma, margin):
    # Keras 3 keras.losses.circle with remove_diagonal=True; losses that are 0
    # (no positive or no negative) are masked out of the mean.
    z = _normalize(x)
    d = np.maximum(1 - z @ z.T, 0.0)
    n = len(x)
    out = []
    for i in range(n):
        pos = [j for j in range(n) if j != i and labels[j] == labels[i]]
        neg = [k for k in range(n) if labels[k] != labels[i]]
        if not pos or not neg:
            continue
        lp = _logsumexp(np.array([-gamma * max(margin + d[i, j], 0) * (margin - d[i, j]) for j in pos]))
        ln = _logsumexp(np.array([gamma * max(1 + margin - d[i, k], 0) * (1 - margin - d[i, k]) for k in neg]))
        out.append(_softplus(lp + ln))
    return float(np.mean(out)) if out else 0.0


CIRCLE_LABELS = [[0, 0, 1, 1, 2, 2, 3, 3], [0, 0, 0, 1, 1, 2, 3, 3], [4, 4, 4, 4, 4, 4, 4, 4]]


@pytest.mark.parametrize("labels", CIRCLE_LABELS)
def test_circle_numpy(labels):
    labels = np.array(labels, np.int32)
    x = _f32(_rng(17).normal(size=(8, 5)))[0]
    for gamma, margin in ((80.0, 0.4), (16.0, 0.25)):
        np.testing.assert_allclose(E.circle_loss(x, labels, gamma=gamma, margin=margin),
                                   _np_circle(x, labels, gamma, margin), rtol=RTOL, atol=1e-5)


@pytest.mark.parametrize("labels", CIRCLE_LABELS[:2])
def test_circle_keras(labels):
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("Keras must run on the JAX backend (KERAS_BACKEND=jax)")
    labels = np.array(labels, np.int32)
    x = _f32(_rng(18).normal(size=(8, 5)))[0]
    unit = (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)
    options = ((80.0, 0.4), (16.0, 0.25))

    @jax.jit
    def ours_and_keras(x, unit, labels):  # one program
        values = {(g, m): (embedding.circle_loss(x, labels, gamma=g, margin=m),
                           keras.losses.Circle(gamma=g, margin=m)(labels, unit)) for g, m in options}
        g_ours = jax.grad(lambda e: embedding.circle_loss(e, labels))(unit)
        g_ref = jax.grad(lambda e: keras.losses.Circle()(labels, e / jnp.linalg.norm(e, axis=-1, keepdims=True)))(unit)
        return values, g_ours, g_ref

    values, g_ours, g_ref = ours_and_keras(x, unit, labels)
    for ours, ref in values.values():
        np.testing.assert_allclose(ours, float(ref), rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(g_ours, g_ref, rtol=1e-4, atol=1e-5)


# -------------------------------------------------------- edge cases, masking
GLOBAL = {
    "batch_hard_triplet_loss": lambda x, y, **k: E.batch_hard_triplet_loss(x, y, **k),
    "ntxent_loss": lambda x, y, **k: E.ntxent_loss(x, y, **k),
    "supervised_contrastive_loss": lambda x, y, **k: E.supervised_contrastive_loss(x, y, **k),
    "circle_loss": lambda x, y, **k: E.circle_loss(x, y, **k),
    "info_nce_loss": lambda x, y, **k: E.info_nce_loss(x, x[::-1], **k),
    "clip_loss": lambda x, y, **k: E.clip_loss(x, x[::-1], **k),
    "siglip_loss": lambda x, y, **k: E.siglip_loss(x, x[::-1], logit_scale=10.0, logit_bias=-10.0, **k),
}


@functools.cache
def _value_and_grad(name):
    # One program per loss, shared by the edge cases and the single-class batch (same shapes).
    return jax.jit(jax.value_and_grad(lambda e, y: GLOBAL[name](e, y)))


@pytest.mark.parametrize("name", sorted(GLOBAL))
@pytest.mark.parametrize("case", ["zeros", "single_class", "duplicates"])
def test_batch_losses_finite_at_edge_cases(name, case):
    rng = _rng(19)
    x = _f32(rng.normal(size=(6, 4)))[0]
    labels = np.array([0, 0, 1, 1, 2, 2], np.int32)
    if case == "zeros":
        x = np.zeros_like(x)
    elif case == "single_class":
        labels = np.zeros(6, np.int32)
    else:
        x = np.repeat(x[:3], 2, axis=0)  # each anchor identical to its positive
    value, grad = _value_and_grad(name)(x, labels)
    assert np.isfinite(value) and _finite(grad), (name, case, value)


@pytest.mark.parametrize("name", ["batch_hard_triplet_loss", "supervised_contrastive_loss", "circle_loss"])
def test_single_class_batch_gives_zero(name):
    x = _f32(_rng(20).normal(size=(6, 4)))[0]
    value, grad = _value_and_grad(name)(x, np.zeros(6, np.int32))
    assert float(value) == 0.0 and np.all(np.asarray(grad) == 0)


@pytest.mark.parametrize("name", sorted(GLOBAL))
def test_where_removes_example_as_anchor_and_candidate(name):
    x = _f32(_rng(21).normal(size=(8, 4)))[0]
    labels = np.array([0, 0, 1, 1, 2, 2, 0, 1], np.int32)
    where = np.array([True, False, True, True, False, True, True, True])
    kw = {"margin": 0.3} if name == "batch_hard_triplet_loss" else {}
    if name in ("info_nce_loss", "clip_loss", "siglip_loss"):
        fn = {"info_nce_loss": embedding.info_nce_loss, "clip_loss": embedding.clip_loss,
              "siglip_loss": lambda a, b, **k: embedding.siglip_loss(a, b, logit_scale=5.0, logit_bias=-2.0,
                                                                     **k)}[name]
        masked, sliced = jax.jit(lambda x, xs, ys: (  # one program
            fn(x, x[::-1], where=where), fn(xs, ys)))(x, x[where], x[::-1][where])
    else:
        masked, sliced = jax.jit(lambda x, y, xs, ys: (  # one program
            GLOBAL[name](x, y, where=where, **kw), GLOBAL[name](xs, ys, **kw)))(x, labels, x[where], labels[where])
    np.testing.assert_allclose(masked, sliced, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------- errors
def test_errors_name_function_and_argument():
    # Called eagerly, as a user would: the checks raise before any computation.
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="jaxloss.ntxent_loss: labels"):
        embedding.ntxent_loss(x, np.zeros(5, np.int32))
    with pytest.raises(TypeError, match="jaxloss.ntxent_loss: labels"):
        embedding.ntxent_loss(x, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="jaxloss.ntxent_loss: temperature"):
        embedding.ntxent_loss(x, np.zeros(4, np.int32), temperature=0.0)
    with pytest.raises(ValueError, match="jaxloss.clip_loss: image_embeddings"):
        embedding.clip_loss(x[None], x[None])
    with pytest.raises(ValueError, match="jaxloss.triplet_margin_loss: margin"):
        embedding.triplet_margin_loss(x, x, x, margin=-1.0)
    with pytest.raises(ValueError, match="jaxloss.triplet_margin_loss: swap"):
        embedding.triplet_margin_loss(x, x, x, swap="yes")
    with pytest.raises(ValueError, match="jaxloss.arcface_loss: class_centers"):
        embedding.arcface_loss(x, np.zeros((3, 2), np.float32), np.zeros(4, np.int32))
    with pytest.raises(ValueError, match="jaxloss.cosine_embedding_loss: margin"):
        embedding.cosine_embedding_loss(x, x, np.ones(4, np.float32), margin=2.0)
    with pytest.raises(ValueError, match="jaxloss.cosine_similarity: axis"):
        embedding.cosine_similarity(x, x, axis=2)
    with pytest.raises(ValueError, match="jaxloss.siglip_loss: logit_scale"):
        embedding.siglip_loss(x, x, logit_scale=np.ones(2, np.float32), logit_bias=0.0)
