"""Reference tests for ``jaxloss.distillation``.

Expected numbers come from outside jaxloss: NumPy (float64) transcriptions of
RepDistiller's ``distiller_zoo/KD.py`` ``DistillKL`` (Hinton's loss as PyTorch
users write it) and of Hugging Face TRL's ``GKDTrainer.generalized_jsd_loss``
(``trl/experimental/gkd/gkd_trainer.py`` at commit
f2cd57710ae345ea6428ae95363267fcf38a3dc8, which has the mixture
``(1 - beta) student + beta teacher`` since TRL #3043, March 2025), closed
forms, and, when installed, the same lines in PyTorch. All random inputs are seeded.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss.distillation as distill
from jaxloss.testing import check_loss

RTOL, ATOL = 1e-5, 1e-6


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _logits(rng, shape=(3, 4, 7), scale=2.0):
    return (rng.normal(size=shape) * scale).astype(np.float32)


def _all_finite(tree):
    return all(bool(np.all(np.isfinite(np.asarray(x, np.float64)))) for x in jax.tree_util.tree_leaves(tree))


# ------------------------------------------------------------------ NumPy refs
def np_log_softmax(x):
    x = np.asarray(x, np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def np_kl_div_log_target(input_log, target_log):
    """torch F.kl_div(input, target, reduction="none", log_target=True) = exp(target) (target - input)."""
    return np.exp(target_log) * (target_log - input_log)


def np_distill_kl(y_s, y_t, T):
    """RepDistiller distiller_zoo/KD.py DistillKL.forward, per example: p_s = log_softmax(y_s / T),
    p_t = softmax(y_t / T), kl_div(p_s, p_t) summed over classes, times T**2 (the class divides by batch)."""
    p_s = np_log_softmax(np.asarray(y_s, np.float64) / T)
    log_p_t = np_log_softmax(np.asarray(y_t, np.float64) / T)
    return (np.exp(log_p_t) * (log_p_t - p_s)).sum(-1) * T ** 2


def np_trl_generalized_jsd(student_logits, teacher_logits, beta, temperature):
    """TRL trl/experimental/gkd/gkd_trainer.py GKDTrainer.generalized_jsd_loss with reduction="none",
    summed over the vocabulary: beta == 0 -> kl_div(student_log_probs, teacher_log_probs), beta == 1 ->
    kl_div(teacher_log_probs, student_log_probs), else mixture = logsumexp([s + log1p(-beta), t + log(beta)])
    and beta kl_div(mixture, teacher) + (1 - beta) kl_div(mixture, student)."""
    s = np_log_softmax(np.asarray(student_logits, np.float64) / temperature)
    t = np_log_softmax(np.asarray(teacher_logits, np.float64) / temperature)
    if beta == 0:
        jsd = np_kl_div_log_target(s, t)
    elif beta == 1:
        jsd = np_kl_div_log_target(t, s)
    else:
        mixture = np.logaddexp(s + np.log1p(-beta), t + np.log(beta))
        jsd = beta * np_kl_div_log_target(mixture, t) + (1 - beta) * np_kl_div_log_target(mixture, s)
    return jsd.sum(-1)


# ----------------------------------------------------------------- references
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_knowledge_distillation_matches_repdistiller(temperature):
    rng = np.random.default_rng(0)
    s, t = _logits(rng), _logits(rng)
    _close(distill.knowledge_distillation_loss(s, t, temperature=temperature, reduction="none"),
           np_distill_kl(s, t, temperature))
    # DistillKL on [N, C] (size_average=False, / batch) is the "mean" over examples.
    s2, t2 = s.reshape(-1, 7), t.reshape(-1, 7)
    _close(distill.knowledge_distillation_loss(s2, t2, temperature=temperature),
           np_distill_kl(s2, t2, temperature).sum() / s2.shape[0])


def test_knowledge_distillation_class_axis():
    rng = np.random.default_rng(1)
    s, t = _logits(rng, (2, 5, 3)), _logits(rng, (2, 5, 3))
    got = distill.knowledge_distillation_loss(s, t, temperature=2.0, axis=1, reduction="none")
    _close(got, np_distill_kl(np.moveaxis(s, 1, -1), np.moveaxis(t, 1, -1), 2.0))


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_generalized_jsd_matches_trl(beta):
    rng = np.random.default_rng(2)
    s, t = _logits(rng), _logits(rng)
    got = distill.generalized_jsd_loss(s, t, beta=beta, temperature=1.7, reduction="none")
    _close(got, np_trl_generalized_jsd(s, t, beta, 1.7))


def test_generalized_jsd_batchmean_with_ignored_labels_is_masked_mean():
    rng = np.random.default_rng(3)
    s, t = _logits(rng), _logits(rng)
    labels = rng.integers(0, 7, size=(3, 4))
    labels[0, :2] = -100
    labels[2, 3] = -100
    keep = labels != -100
    # TRL reduction="batchmean" with labels: jsd[mask].sum() / mask.sum()
    per_position = np_trl_generalized_jsd(s, t, 0.5, 1.0)
    _close(distill.generalized_jsd_loss(s, t, where=keep), per_position[keep].sum() / keep.sum())
    # and the beta ends are the two KL divergences, knowledge_distillation_loss at T = 1 being the forward one
    _close(distill.generalized_jsd_loss(s, t, beta=0.0, reduction="none"),
           distill.knowledge_distillation_loss(s, t, reduction="none"))
    _close(distill.generalized_jsd_loss(s, t, beta=1.0, reduction="none"),
           distill.knowledge_distillation_loss(t, s, reduction="none"))


def test_closed_forms():
    s = np.log(np.array([[0.5, 0.5]], np.float32))
    t = np.log(np.array([[0.9, 0.1]], np.float32))
    forward = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    reverse = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    m = [0.7, 0.3]  # (1 - 1/2) student + 1/2 teacher
    js = 0.5 * (0.9 * math.log(0.9 / m[0]) + 0.1 * math.log(0.1 / m[1])) + \
        0.5 * (0.5 * math.log(0.5 / m[0]) + 0.5 * math.log(0.5 / m[1]))
    _close(distill.knowledge_distillation_loss(s, t), forward)
    _close(distill.generalized_jsd_loss(s, t, beta=0.0), forward)
    _close(distill.generalized_jsd_loss(s, t, beta=1.0), reverse)
    _close(distill.generalized_jsd_loss(s, t, beta=0.5), js)
    # T^2 factor: at a large temperature the softened KL shrinks like 1/T^2, the loss stays O(1)
    _close(distill.knowledge_distillation_loss(s, t, temperature=2.0), 4.0 * float(
        distill.knowledge_distillation_loss(s / 2.0, t / 2.0)))
    # identical distributions: 0 for every beta
    for beta in (0.0, 0.3, 1.0):
        _close(distill.generalized_jsd_loss(t, t, beta=beta), 0.0)


def test_torch_lines_float32():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(4)
    s, t = _logits(rng), _logits(rng)
    ts, tt = torch.tensor(s), torch.tensor(t)
    kd = F.kl_div(F.log_softmax(ts / 3.0, -1), F.softmax(tt / 3.0, -1), reduction="none").sum(-1) * 9.0
    _close(distill.knowledge_distillation_loss(s, t, temperature=3.0, reduction="none"), kd.numpy())
    beta = torch.tensor(0.3)
    ls, lt = F.log_softmax(ts, -1), F.log_softmax(tt, -1)
    mixture = torch.logsumexp(torch.stack([ls + torch.log1p(-beta), lt + torch.log(beta)]), dim=0)
    jsd = beta * F.kl_div(mixture, lt, reduction="none", log_target=True) + \
        (1 - beta) * F.kl_div(mixture, ls, reduction="none", log_target=True)
    _close(distill.generalized_jsd_loss(s, t, beta=0.3, reduction="none"), jsd.sum(-1).numpy())


# ---------------------------------------------------------------------- edge cases
LOSSES = [("kd", lambda s, t: distill.knowledge_distillation_loss(s, t, temperature=2.0))] + [
    (f"gjsd_beta{b}", lambda s, t, b=b: distill.generalized_jsd_loss(s, t, beta=b)) for b in (0.0, 0.5, 1.0)]


@pytest.mark.parametrize("name,loss", LOSSES, ids=[n for n, _ in LOSSES])
def test_edges_finite_value_and_gradient(name, loss):
    rng = np.random.default_rng(5)
    s, t = _logits(rng, (2, 3, 5)), _logits(rng, (2, 3, 5))
    big_s, big_t = np.where(s >= 0, 1e4, -1e4).astype(np.float32), np.where(t >= 0, 1e4, -1e4).astype(np.float32)
    grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    cases = {
        "logits of magnitude 1e4": (big_s, big_t),
        "identical logits": (s, s),
        "zero logits": (np.zeros_like(s), np.zeros_like(t)),
        "bfloat16 logits of magnitude 60": (jnp.asarray(big_s * 0.006, jnp.bfloat16),
                                            jnp.asarray(big_t * 0.006, jnp.bfloat16)),
    }
    for what, (a, b) in cases.items():
        value, grads = grad(jnp.asarray(a), jnp.asarray(b))
        assert value.dtype == jnp.float32
        assert _all_finite(value), f"{name}: value not finite at {what}"
        assert _all_finite(grads), f"{name}: gradient not finite at {what}"


def test_large_logits_value_is_exact():
    # Teacher certain of class 0, student certain of class 1, logits +-1e4: KL(t || s) = 2e4 (T = 1).
    s = np.array([[-1e4, 1e4]], np.float32)
    t = np.array([[1e4, -1e4]], np.float32)
    _close(distill.knowledge_distillation_loss(s, t), 2e4)
    _close(distill.generalized_jsd_loss(s, t, beta=0.0), 2e4)
    _close(distill.generalized_jsd_loss(s, t, beta=1.0), 2e4)
    _close(distill.generalized_jsd_loss(s, t, beta=0.5), math.log(2.0))


@pytest.mark.parametrize("name", ["kd", "forward_kl", "reverse_kl"])
def test_kl_from_logits_gradients_match_torch(name):
    # knowledge_distillation_loss and the generalized JSD's ends compute the KL from the logits
    # (lse(q) - lse(p) + sum softmax(p) (p - q)); reference: float64 torch autograd of
    # F.kl_div(log_softmax(s / T), log_softmax(t / T), log_target=True) (times T^2 for KD), with respect to
    # both logits and the temperature, logits up to +-30.
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    s, t = (rng.normal(size=(6, 9)) * 10).astype(np.float32), (rng.normal(size=(6, 9)) * 10).astype(np.float32)
    ts, tt = (torch.tensor(a.astype(np.float64), requires_grad=True) for a in (s, t))
    temp = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    ls, lt = torch.log_softmax(ts / temp, -1), torch.log_softmax(tt / temp, -1)
    if name == "reverse_kl":
        ref = torch.nn.functional.kl_div(lt, ls, log_target=True, reduction="sum")
    else:
        ref = torch.nn.functional.kl_div(ls, lt, log_target=True, reduction="sum")
    if name == "kd":
        ref = ref * temp ** 2
    ref.backward()
    beta = {"forward_kl": 0.0, "reverse_kl": 1.0}.get(name)
    if name == "kd":
        fn = lambda a, b, T: distill.knowledge_distillation_loss(a, b, temperature=T, reduction="sum")  # noqa: E731
    else:
        fn = lambda a, b, T: distill.generalized_jsd_loss(a, b, beta=beta, temperature=T,  # noqa: E731
                                                          reduction="sum")
    value, grads = jax.value_and_grad(fn, argnums=(0, 1, 2))(s, t, np.float32(2.0))
    _close(value, ref.item(), rtol=1e-5, atol=1e-5)
    for ours, theirs in zip(grads, (ts.grad, tt.grad, temp.grad)):
        _close(ours, theirs.numpy(), rtol=1e-4, atol=1e-5)


def test_teacher_with_minus_inf_logits():
    # A vocabulary entry the teacher rules out (-inf logit) adds 0 log 0 = 0, value and gradient.
    s = jnp.array([[0.3, -0.2, 1.0]])
    t = jnp.array([[1.0, 0.5, -jnp.inf]])
    for loss in (lambda s, t: distill.knowledge_distillation_loss(s, t),
                 lambda s, t: distill.generalized_jsd_loss(s, t, beta=0.0),
                 lambda s, t: distill.generalized_jsd_loss(s, t, beta=0.5)):
        value, grads = jax.value_and_grad(loss, argnums=(0, 1))(s, t)
        assert _all_finite(value) and _all_finite(grads)


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_kl_from_logits_fused_cpu_path(temperature):
    # From 4096 elements, with a concrete temperature, the CPU sums the unguarded terms in one fused pass and
    # recomputes the batch guarded only when a row is not finite (distillation._kl_logits_rows). Values
    # against RepDistiller's and TRL's formulas (NumPy, float64), a batch with a teacher -inf logit (the
    # guarded recomputation: finite, 0 log 0 = 0) and one with a NaN row; values and gradients equal to a
    # traced temperature's (the guarded form).
    rng = np.random.default_rng(8)
    s, t = _logits(rng, (64, 100)), _logits(rng, (64, 100))          # 6400 elements
    kd = jax.jit(lambda s, t: distill.knowledge_distillation_loss(s, t, temperature=temperature, reduction="none"))
    rkl = jax.jit(lambda s, t: distill.generalized_jsd_loss(s, t, beta=1.0, temperature=temperature,
                                                             reduction="none"))
    _close(kd(s, t), np_distill_kl(s, t, temperature))
    _close(rkl(s, t), np_trl_generalized_jsd(s, t, 1.0, temperature))
    t_inf = t.copy()
    t_inf[3, 7] = -np.inf
    got = np.asarray(kd(s, t_inf))
    assert np.isfinite(got).all()
    log_p_t, log_p_s = np_log_softmax(t_inf / temperature), np_log_softmax(s / temperature)
    with np.errstate(invalid="ignore"):
        terms = np.where(np.isneginf(log_p_t), 0.0, np.exp(log_p_t) * (log_p_t - log_p_s))
    _close(got, terms.sum(-1) * temperature ** 2)
    s_nan = s.copy()
    s_nan[5, 2] = np.nan
    got = np.asarray(kd(s_nan, t))
    assert np.isnan(got[5]) and np.isfinite(np.delete(got, 5)).all()
    _close(np.delete(got, 5), np.delete(np_distill_kl(s, t, temperature), 5))
    concrete = jax.value_and_grad(lambda s, t: distill.knowledge_distillation_loss(s, t, temperature=temperature),
                                  argnums=(0, 1))(s, t)
    traced = jax.jit(jax.value_and_grad(lambda s, t, temp: distill.knowledge_distillation_loss(s, t, temperature=temp),
                                        argnums=(0, 1)))(s, t, np.float32(temperature))
    jax.tree_util.tree_map(lambda a, b: _close(a, b), concrete, traced)


@pytest.mark.parametrize("beta,temperature", [(0.5, 1.0), (0.1, 2.0), (0.9, 1.0)])
def test_generalized_jsd_fused_cpu_path(beta, temperature):
    # From 4096 elements, with concrete beta and temperature, the CPU sums the unguarded mixture terms in one
    # fused pass (distillation._skewed_jsd_rows). Values against TRL's formula (NumPy, float64), a batch with
    # a teacher -inf logit (guarded recomputation: finite) and one with a NaN row; values and gradients equal
    # to a traced temperature's (the guarded form).
    rng = np.random.default_rng(9)
    s, t = _logits(rng, (64, 100)), _logits(rng, (64, 100))
    jsd = jax.jit(lambda s, t: distill.generalized_jsd_loss(s, t, beta=beta, temperature=temperature,
                                                             reduction="none"))
    _close(jsd(s, t), np_trl_generalized_jsd(s, t, beta, temperature))
    t_inf = t.copy()
    t_inf[3, 7] = -np.inf
    got = np.asarray(jsd(s, t_inf))
    assert np.isfinite(got).all()
    log_s, log_t = np_log_softmax(s / temperature), np_log_softmax(t_inf / temperature)
    log_m = np.logaddexp(log_s + np.log1p(-beta), log_t + np.log(beta))
    with np.errstate(invalid="ignore"):
        kl_t = np.where(np.isneginf(log_t), 0.0, np.exp(log_t) * (log_t - log_m)).sum(-1)
    _close(got, beta * kl_t + (1 - beta) * (np.exp(log_s) * (log_s - log_m)).sum(-1))
    s_nan = s.copy()
    s_nan[5, 2] = np.nan
    got = np.asarray(jsd(s_nan, t))
    assert np.isnan(got[5]) and np.isfinite(np.delete(got, 5)).all()
    concrete = jax.value_and_grad(lambda s, t: distill.generalized_jsd_loss(s, t, beta=beta, temperature=temperature),
                                  argnums=(0, 1))(s, t)
    traced = jax.jit(jax.value_and_grad(
        lambda s, t, temp: distill.generalized_jsd_loss(s, t, beta=beta, temperature=temp), argnums=(0, 1)))(
        s, t, np.float32(temperature))
    jax.tree_util.tree_map(lambda a, b: _close(a, b), concrete, traced)


@pytest.mark.parametrize("beta", [0.0, 0.4, 1.0])
def test_traced_beta_and_temperature_equal_concrete(beta):
    rng = np.random.default_rng(6)
    s, t = _logits(rng), _logits(rng)
    f = jax.jit(lambda b, temp: distill.generalized_jsd_loss(s, t, beta=b, temperature=temp, reduction="none"))
    _close(f(beta, 1.3), np_trl_generalized_jsd(s, t, beta, 1.3))
    g = jax.grad(lambda st: distill.generalized_jsd_loss(st, t, beta=jnp.float32(beta)))(jnp.asarray(s))
    assert _all_finite(g)
    kd = jax.jit(lambda temp: distill.knowledge_distillation_loss(s, t, temperature=temp, reduction="none"))
    _close(kd(2.5), np_distill_kl(s, t, 2.5))


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_generalized_jsd_ends_keep_the_contract(beta):
    rng = np.random.default_rng(7)
    s, t = rng.normal(size=(4, 3, 5)), rng.normal(size=(4, 3, 5))
    check_loss(distill.generalized_jsd_loss, s, t, only=["grad", "where", "all_masked"], beta=beta)


# --------------------------------------------------------------------------- errors
def test_errors():
    s = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"^jaxloss.generalized_jsd_loss: temperature must be > 0"):
        distill.generalized_jsd_loss(s, s, temperature=0.0)
    with pytest.raises(ValueError, match=r"^jaxloss.knowledge_distillation_loss: temperature must be > 0"):
        distill.knowledge_distillation_loss(s, s, temperature=-1.0)
    with pytest.raises(ValueError, match=r"^jaxloss.generalized_jsd_loss: beta must be >= 0.0 and <= 1.0"):
        distill.generalized_jsd_loss(s, s, beta=1.5)
    with pytest.raises(ValueError, match=r"^jaxloss.knowledge_distillation_loss: student_logits \(2, 3\) and "
                                         r"teacher_logits \(2, 4\) must have the same shape"):
        distill.knowledge_distillation_loss(s, np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match=r"^jaxloss.generalized_jsd_loss: teacher_logits must have a floating dtype"):
        distill.generalized_jsd_loss(s, s.astype(np.int32))
    with pytest.raises(ValueError, match=r"^jaxloss.generalized_jsd_loss: where must broadcast"):
        distill.generalized_jsd_loss(s, s, where=np.ones(3, bool))
