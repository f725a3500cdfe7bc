"""Reference tests for the self-supervised losses (``jaxloss.self_supervised``).

Expected values are NumPy transcriptions of the reference implementations,
each cited at its test, and the peers themselves where installed
(torch for SimSiam's ``nn.CosineSimilarity`` and Barlow Twins'
``nn.BatchNorm1d``, pytorch-metric-learning for ``VICRegLoss``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxloss import self_supervised as ssl


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


# ----------------------------------------------------------------- references
def _byol_reference(x, y):
    """deepmind-research byol/utils/helpers.py: regression_loss with l2_normalize(epsilon=1e-12)."""
    def l2_normalize(v):
        return v / np.sqrt(np.maximum(np.sum(v * v, axis=-1, keepdims=True), 1e-12))
    return np.sum((l2_normalize(x) - l2_normalize(y)) ** 2, axis=-1)


def _cosine_similarity(x, y, eps=1e-8):
    """torch.nn.CosineSimilarity(dim=1) (torch/nn/modules/distance.py), eps 1e-8."""
    return np.sum(x * y, -1) / np.maximum(np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1), eps)


def _simsiam_reference(p1, p2, z1, z2):
    """facebookresearch/simsiam main_simsiam.py: -(criterion(p1, z2).mean() + criterion(p2, z1).mean()) * 0.5."""
    return -(_cosine_similarity(p1, z2) + _cosine_similarity(p2, z1)) * 0.5


def _barlow_reference(z1, z2, lambd):
    """facebookresearch/barlowtwins main.py, BarlowTwins.forward (bn = BatchNorm1d(affine=False), training mode)."""
    def bn(z):
        return (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)          # biased variance, eps 1e-5
    c = bn(z1).T @ bn(z2) / z1.shape[0]
    on_diag = np.sum((np.diagonal(c) - 1) ** 2)
    off_diag = np.sum(c ** 2) - np.sum(np.diagonal(c) ** 2)
    return on_diag + lambd * off_diag


def _vicreg_reference(emb, ref, inv=25.0, var=25.0, cov=1.0, eps=1e-4):
    """pytorch-metric-learning src/pytorch_metric_learning/losses/vicreg_loss.py, VICRegLoss.compute_loss,
    with the default MeanReducer ("element" losses averaged, "already_reduced" kept) and sub-losses summed."""
    n, d = emb.shape
    invariance = inv * np.mean(np.mean((emb - ref) ** 2, axis=1))
    std1 = np.sqrt(emb.var(axis=0, ddof=1) + eps)
    std2 = np.sqrt(ref.var(axis=0, ddof=1) + eps)
    variance = var * np.mean(np.maximum(1 - std1, 0) / 2) + var * np.mean(np.maximum(1 - std2, 0) / 2)
    e, r = emb - emb.mean(0), ref - ref.mean(0)
    cov_e, cov_r = e.T @ e / (n - 1), r.T @ r / (n - 1)
    off = ~np.eye(d, dtype=bool)
    covariance = cov * (np.sum(cov_e[off] ** 2) / d + np.sum(cov_r[off] ** 2) / d)
    return invariance + variance + covariance


def _dino_reference(student_output, teacher_output, center, ncrops, student_temp=0.1, temp=0.04):
    """facebookresearch/dino main_dino.py, DINOLoss.forward (crop-major [ncrops * B, K] inputs)."""
    student_out = np.split(student_output / student_temp, ncrops)
    teacher_out = np.split(_softmax((teacher_output - center) / temp), 2)
    total_loss, n_loss_terms = 0.0, 0
    for iq, q in enumerate(teacher_out):
        for v in range(len(student_out)):
            if v == iq:
                continue
            total_loss += np.sum(-q * _log_softmax(student_out[v]), axis=-1).mean()
            n_loss_terms += 1
    return total_loss / n_loss_terms


def _dino_center_reference(center, teacher_output, momentum=0.9, world_size=1):
    """facebookresearch/dino main_dino.py, DINOLoss.update_center (all_reduce of the sum)."""
    batch_center = np.sum(teacher_output, axis=0, keepdims=True) / (len(teacher_output) * world_size)
    return center * momentum + batch_center * (1 - momentum)


# ---------------------------------------------------------------- BYOL, SimSiam
def test_byol_equals_reference_and_stops_target_gradient():
    rng = np.random.default_rng(0)
    q, z = rng.normal(size=(2, 5, 6)).astype(np.float32), rng.normal(size=(2, 5, 6)).astype(np.float32)
    got = jax.jit(lambda a, b: ssl.byol_loss(a, b, reduction="none"))(jnp.asarray(q), jnp.asarray(z))
    assert got.shape == (2, 5)
    assert _rel(got, _byol_reference(q.astype(np.float64), z.astype(np.float64))) < 1e-5
    g_target = jax.jit(jax.grad(lambda t: ssl.byol_loss(jnp.asarray(q), t)))(jnp.asarray(z))
    assert np.all(np.asarray(g_target) == 0)
    with jax.enable_x64(True):
        z64 = jnp.asarray(z, jnp.float64)
        check_grads(jax.jit(lambda p: ssl.byol_loss(p, z64)), (jnp.asarray(q, jnp.float64),), order=1, modes=("rev",),
                    atol=1e-5, rtol=1e-5, eps=1e-6)


def test_simsiam_equals_reference_and_stops_projection_gradient():
    rng = np.random.default_rng(1)
    p1, p2, z1, z2 = (rng.normal(size=(7, 5)).astype(np.float32) for _ in range(4))
    args = tuple(map(jnp.asarray, (p1, p2, z1, z2)))
    got, g = jax.jit(lambda *a: (ssl.simsiam_loss(*a, reduction="none"),
                                 jax.grad(ssl.simsiam_loss, argnums=(0, 1, 2, 3))(*a)))(*args)
    ref = _simsiam_reference(*(a.astype(np.float64) for a in (p1, p2, z1, z2)))
    # Values near 0 (cosines of random vectors): relative to 1e-5 with an absolute floor.
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(g[2]) == 0) and np.all(np.asarray(g[3]) == 0)
    assert np.any(np.asarray(g[0]) != 0) and np.any(np.asarray(g[1]) != 0)
    with jax.enable_x64(True):
        a64 = tuple(jnp.asarray(a, jnp.float64) for a in (p1, p2, z1, z2))
        check_grads(jax.jit(lambda a, b: ssl.simsiam_loss(a, b, a64[2], a64[3])), a64[:2], order=1, modes=("rev",),
                    atol=1e-5, rtol=1e-5, eps=1e-6)


def test_simsiam_equals_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    p1, p2, z1, z2 = (rng.normal(size=(6, 4)).astype(np.float32) for _ in range(4))
    criterion = torch.nn.CosineSimilarity(dim=1)
    t = [torch.tensor(a) for a in (p1, p2, z1, z2)]
    ref = (-(criterion(t[0], t[3].detach()).mean() + criterion(t[1], t[2].detach()).mean()) * 0.5).item()
    assert _rel(ssl.simsiam_loss(*map(jnp.asarray, (p1, p2, z1, z2))), ref) < 1e-5


# ----------------------------------------------------------------- Barlow Twins
def test_barlow_twins_equals_reference():
    rng = np.random.default_rng(3)
    z1 = rng.normal(size=(16, 6)).astype(np.float32)
    z2 = (z1 + 0.5 * rng.normal(size=(16, 6))).astype(np.float32)
    barlow = jax.jit(lambda a, b, lambd: ssl.barlow_twins_loss(a, b, lambda_offdiagonal=lambd))  # one program
    for lambd in (5e-3, 0.5):
        got = barlow(jnp.asarray(z1), jnp.asarray(z2), lambd)
        assert got.shape == ()
        assert _rel(got, _barlow_reference(z1.astype(np.float64), z2.astype(np.float64), lambd)) < 1e-5


def test_barlow_twins_equals_torch_batchnorm():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    z1, z2 = (rng.normal(size=(12, 5)).astype(np.float32) for _ in range(2))
    bn = torch.nn.BatchNorm1d(5, affine=False).train()
    c = bn(torch.tensor(z1)).T @ bn(torch.tensor(z2)) / 12
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = c.flatten()[:-1].view(4, 6)[:, 1:].flatten().pow(2).sum()   # the reference's off_diagonal
    ref = (on_diag + 5e-3 * off_diag).item()
    assert _rel(ssl.barlow_twins_loss(jnp.asarray(z1), jnp.asarray(z2)), ref) < 1e-5


# ------------------------------------------------------------------------ VICReg
def test_vicreg_equals_reference():
    rng = np.random.default_rng(5)
    z1 = (0.7 * rng.normal(size=(10, 6))).astype(np.float32)
    z1[:, 0] *= 3.0                                         # one feature with std above 1 (relu inactive)
    z2 = (z1 + 0.3 * rng.normal(size=(10, 6))).astype(np.float32)
    vicreg = jax.jit(lambda a, b, inv, var, cov, eps: ssl.vicreg_loss(
        a, b, invariance_weight=inv, variance_weight=var, covariance_weight=cov, epsilon=eps))  # one program
    got = jax.jit(ssl.vicreg_loss)(jnp.asarray(z1), jnp.asarray(z2))   # the defaults
    assert _rel(got, _vicreg_reference(z1.astype(np.float64), z2.astype(np.float64))) < 1e-5
    got = vicreg(jnp.asarray(z1), jnp.asarray(z2), 1.0, 2.0, 0.5, 1e-3)
    ref = _vicreg_reference(z1.astype(np.float64), z2.astype(np.float64), 1.0, 2.0, 0.5, 1e-3)
    assert _rel(got, ref) < 1e-5


def test_vicreg_equals_pytorch_metric_learning():
    torch = pytest.importorskip("torch")
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    rng = np.random.default_rng(6)
    z1 = (0.7 * rng.normal(size=(10, 6))).astype(np.float32)
    z1[:, 0] *= 3.0
    z2 = (z1 + 0.3 * rng.normal(size=(10, 6))).astype(np.float32)
    ref = losses.VICRegLoss()(torch.tensor(z1), ref_emb=torch.tensor(z2)).item()
    assert _rel(ssl.vicreg_loss(jnp.asarray(z1), jnp.asarray(z2)), ref) < 1e-5


# -------------------------------------------------------------- batch-global masking
@pytest.mark.parametrize("name", ["barlow_twins_loss", "vicreg_loss"])
def test_batch_global_where_equals_slicing(name):
    fn = getattr(ssl, name)
    rng = np.random.default_rng(7)
    z1, z2 = (0.5 * rng.normal(size=(9, 4))).astype(np.float32), (0.5 * rng.normal(size=(9, 4))).astype(np.float32)
    keep = np.array([True, False, True, True, False, True, True, True, False])
    p1, p2 = z1.copy(), z2.copy()
    p1[~keep], p2[~keep] = np.nan, np.inf
    # One compiled value-and-gradient program for the masked batches, one for the sliced one.
    masked_vg = jax.jit(jax.value_and_grad(lambda a, b, w: fn(a, b, where=w), argnums=(0, 1)))
    value, grads = masked_vg(jnp.asarray(p1), jnp.asarray(p2), jnp.asarray(keep))
    expect, sliced = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))(jnp.asarray(z1[keep]), jnp.asarray(z2[keep]))
    np.testing.assert_allclose(value, expect, rtol=1e-5)
    for g, s in zip(grads, sliced):
        assert np.all(np.asarray(g)[~keep] == 0)
        np.testing.assert_allclose(np.asarray(g)[keep], s, rtol=1e-4, atol=1e-6)
    # Nothing left: 0 with zero gradient.
    value, grads = masked_vg(jnp.asarray(z1), jnp.asarray(z2), jnp.zeros(9, bool))
    assert float(value) == 0.0 and not any(np.any(g) for g in grads)


@pytest.mark.parametrize("name", ["barlow_twins_loss", "vicreg_loss"])
def test_zero_variance_embeddings_are_finite(name):
    fn = getattr(ssl, name)
    constant = jnp.tile(jnp.arange(4.0, dtype=jnp.float32), (6, 1))   # every example the same
    value_and_grad = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))
    for a, b in ((constant, constant), (constant, jnp.zeros((6, 4))),
                 (constant, jnp.asarray(np.random.default_rng(8).normal(size=(6, 4)), jnp.float32))):
        value, grads = value_and_grad(a, b)
        assert np.isfinite(float(value)) and all(np.all(np.isfinite(g)) for g in grads)
    collapsed = value_and_grad(constant, constant)[0]
    if name == "vicreg_loss":
        # A collapsed encoder pays the full variance term, 25 * (1 - sqrt(1e-4)) / 2 per view.
        np.testing.assert_allclose(collapsed, 25.0 * (1.0 - 0.01), rtol=1e-6)
    else:
        # Barlow Twins of a collapsed encoder: C = 0, so the loss is the on-diagonal D.
        np.testing.assert_allclose(collapsed, 4.0, rtol=1e-6)


def test_batch_global_losses_raise_on_bad_shapes():
    with pytest.raises(ValueError, match=r"jaxloss.barlow_twins_loss: z1 must have shape \[batch, features\]"):
        ssl.barlow_twins_loss(jnp.zeros((2, 3, 4)), jnp.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="jaxloss.vicreg_loss: z1 .* and z2 .* must have the same shape"):
        ssl.vicreg_loss(jnp.zeros((4, 3)), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="jaxloss.vicreg_loss: variance_weight must be >= 0.0"):
        ssl.vicreg_loss(jnp.zeros((4, 3)), jnp.zeros((4, 3)), variance_weight=-1.0)
    with pytest.raises(ValueError, match="jaxloss.barlow_twins_loss: lambda_offdiagonal must be >= 0.0"):
        ssl.barlow_twins_loss(jnp.zeros((4, 3)), jnp.zeros((4, 3)), lambda_offdiagonal=-0.1)


# -------------------------------------------------------------------------- DINO
def test_dino_equals_reference():
    rng = np.random.default_rng(9)
    crops, batch, k = 4, 6, 8
    student = rng.normal(size=(crops, batch, k)).astype(np.float32)
    teacher = (2.0 * rng.normal(size=(2, batch, k))).astype(np.float32)
    center = (0.3 * rng.normal(size=k)).astype(np.float32)
    dino = jax.jit(lambda s, t, c, ts, tt: ssl.dino_loss(s, t, c, student_temperature=ts, teacher_temperature=tt))
    for ts, tt in ((0.1, 0.04), (0.2, 0.07)):
        got = dino(jnp.asarray(student), jnp.asarray(teacher), jnp.asarray(center), ts, tt)
        ref = _dino_reference(student.reshape(-1, k).astype(np.float64), teacher.reshape(-1, k).astype(np.float64),
                              center.astype(np.float64), crops, ts, tt)
        assert _rel(got, ref) < 1e-5


def test_dino_gradient_reaches_the_student_only():
    rng = np.random.default_rng(10)
    s, t, c = (jnp.asarray(rng.normal(size=shape), jnp.float32) for shape in ((3, 4, 5), (2, 4, 5), (5,)))
    gs, gt, gc = jax.jit(jax.grad(ssl.dino_loss, argnums=(0, 1, 2)))(s, t, c)
    assert np.any(np.asarray(gs) != 0) and not np.any(gt) and not np.any(gc)
    with jax.enable_x64(True):
        t64, c64 = jnp.asarray(t, jnp.float64), jnp.asarray(c, jnp.float64)
        check_grads(jax.jit(lambda x: ssl.dino_loss(x, t64, c64)), (jnp.asarray(s, jnp.float64),), order=1,
                    modes=("rev",), atol=1e-5, rtol=1e-5, eps=1e-6)


def test_dino_where_equals_slicing():
    rng = np.random.default_rng(11)
    s = rng.normal(size=(3, 5, 4)).astype(np.float32)
    t = rng.normal(size=(2, 5, 4)).astype(np.float32)
    c = np.zeros(4, np.float32)
    keep = np.array([True, True, False, True, False])
    ps, pt = s.copy(), t.copy()
    ps[:, ~keep], pt[:, ~keep] = np.nan, np.nan
    masked, g = jax.jit(jax.value_and_grad(lambda x, y, w: ssl.dino_loss(x, y, jnp.asarray(c), where=w)))(
        jnp.asarray(ps), jnp.asarray(pt), jnp.asarray(keep))
    sliced = jax.jit(ssl.dino_loss)(jnp.asarray(s[:, keep]), jnp.asarray(t[:, keep]), jnp.asarray(c))
    np.testing.assert_allclose(masked, sliced, rtol=1e-6)
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[:, ~keep] == 0)


def test_dino_large_logits_are_finite():
    s = jnp.asarray(np.random.default_rng(12).choice([-1e4, 1e4], size=(3, 4, 5)), jnp.float32)
    value, g = jax.jit(jax.value_and_grad(ssl.dino_loss))(s, -s[:2], jnp.zeros(5))
    assert np.isfinite(float(value)) and np.all(np.isfinite(g))


def test_dino_needs_a_pair_of_different_views():
    with pytest.raises(ValueError, match="jaxloss.dino_loss: student_logits must give at least one pair"):
        ssl.dino_loss(jnp.zeros((1, 2, 3)), jnp.zeros((1, 2, 3)), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"jaxloss.dino_loss: center must have shape \[3\]"):
        ssl.dino_loss(jnp.zeros((2, 2, 3)), jnp.zeros((2, 2, 3)), jnp.zeros(4))


def test_dino_center_update_equals_reference():
    rng = np.random.default_rng(13)
    teacher = rng.normal(size=(2, 6, 5)).astype(np.float32)
    center = rng.normal(size=5).astype(np.float32)
    got = ssl.dino_center_update(jnp.asarray(center), jnp.asarray(teacher), momentum=0.8)
    ref = _dino_center_reference(center[None].astype(np.float64), teacher.reshape(-1, 5).astype(np.float64), 0.8)[0]
    assert _rel(got, ref) < 1e-5
    keep = np.array([True, False, True, True, True, False])
    poisoned = teacher.copy()
    poisoned[:, ~keep] = np.nan
    got = ssl.dino_center_update(jnp.asarray(center), jnp.asarray(poisoned), momentum=0.8, where=jnp.asarray(keep))
    ref = _dino_center_reference(center[None].astype(np.float64),
                                 teacher[:, keep].reshape(-1, 5).astype(np.float64), 0.8)[0]
    assert _rel(got, ref) < 1e-5
    # No example left: the center is unchanged.
    same = ssl.dino_center_update(jnp.asarray(center), jnp.asarray(poisoned), where=jnp.zeros(6, bool))
    np.testing.assert_array_equal(same, center)
    with pytest.raises(ValueError, match="jaxloss.dino_center_update: momentum must be >= 0.0 and <= 1.0"):
        ssl.dino_center_update(jnp.asarray(center), jnp.asarray(teacher), momentum=1.5)


def test_per_example_losses_finite_at_zero_vectors():
    zero = jnp.zeros((3, 4))
    x = jnp.asarray(np.random.default_rng(14).normal(size=(3, 4)), jnp.float32)
    fs = (lambda a: ssl.byol_loss(a, x), lambda a: ssl.byol_loss(x, a),
          lambda a: ssl.simsiam_loss(a, x, x, a), lambda a: ssl.simsiam_loss(x, a, a, x))
    # One compiled program for the four value-and-gradient pairs.
    for value, g in jax.jit(lambda a: [jax.value_and_grad(f)(a) for f in fs])(zero):
        assert np.isfinite(float(value)) and np.all(np.isfinite(g))


def test_single_example_batch_is_finite():
    # One example: biased statistics are 0 (Barlow Twins: C = 0, loss D); VICReg's unbiased ones
    # divide by N - 1 = 0 and are taken as 0 (torch would give NaN), leaving invariance + variance.
    z1, z2 = jnp.array([[1.0, 2.0, 3.0]]), jnp.array([[1.0, 2.0, 4.0]])
    for fn, expected in ((ssl.barlow_twins_loss, 3.0), (ssl.vicreg_loss, 25.0 / 3.0 + 25.0 * 0.99)):
        value, grads = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))(z1, z2)
        np.testing.assert_allclose(value, expected, rtol=1e-6)
        assert all(np.all(np.isfinite(g)) for g in grads)
