"""Reference tests for ``jaxloss.preference``.

Every expected number comes from outside jaxloss: NumPy (float64) transcriptions
of Hugging Face TRL's trainer functions, each citing the file it transcribes at
commit 763738f457f283270772ac9bd5b3e4027fd424d5 (December 2024, before the 2025
DPO refactor), closed forms written as expressions, and, when installed, the
same TRL lines run in PyTorch. All random inputs are seeded. Losses are called
under ``jax.jit`` (``pref`` below; Python-valued options static): eager calls
compile each primitive on their own, and compilation is the suite's cost.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss.preference as preference
from jaxloss.testing import check_loss
from tests.jitted import Jitted


pref = Jitted(preference)

RTOL, ATOL = 1e-5, 1e-6
B = 7


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _summed(rng, n=B):
    return (-rng.uniform(5.0, 60.0, size=(n,))).astype(np.float32)


def _averaged(rng, n=B):
    return (-rng.uniform(0.05, 4.0, size=(n,))).astype(np.float32)


def _all_finite(tree):
    return all(bool(np.all(np.isfinite(np.asarray(x, np.float64)))) for x in jax.tree_util.tree_leaves(tree))


# ------------------------------------------------------------------ NumPy refs
def np_log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_trl_dpo_loss(pc, pr, rc, rr, beta, label_smoothing, loss_type):
    """TRL trl/trainer/dpo_trainer.py, DPOTrainer.dpo_loss (reverse-KL, not reference-free):
    logits = (chosen_logps - rejected_logps) - (ref_chosen_logps - ref_rejected_logps), then per loss_type."""
    pc, pr, rc, rr = (np.asarray(a, np.float64) for a in (pc, pr, rc, rr))
    logits = (pc - pr) - (rc - rr)
    e = label_smoothing
    if loss_type == "sigmoid":
        return -np_log_sigmoid(beta * logits) * (1 - e) - np_log_sigmoid(-beta * logits) * e
    if loss_type == "robust":
        return (-np_log_sigmoid(beta * logits) * (1 - e) + np_log_sigmoid(-beta * logits) * e) / (1 - 2 * e)
    if loss_type == "hinge":
        return np.maximum(0.0, 1 - beta * logits)
    if loss_type == "ipo":
        return (logits - 1 / (2 * beta)) ** 2
    raise ValueError(loss_type)


def np_trl_cpo_loss(c, r, beta, label_smoothing, loss_type, simpo_gamma=0.5):
    """TRL trl/trainer/cpo_trainer.py, CPOTrainer.cpo_loss: logits = chosen - rejected; for "simpo"
    logits -= simpo_gamma / beta; losses = -logsigmoid(beta logits)(1 - e) - logsigmoid(-beta logits) e."""
    logits = np.asarray(c, np.float64) - np.asarray(r, np.float64)
    if loss_type == "simpo":
        logits = logits - simpo_gamma / beta
    e = label_smoothing
    return -np_log_sigmoid(beta * logits) * (1 - e) - np_log_sigmoid(-beta * logits) * e


def np_trl_odds_ratio_loss(c, r, beta):
    """TRL trl/trainer/orpo_trainer.py, ORPOTrainer.odds_ratio_loss: log_odds = (c - r) -
    (log1p(-exp(c)) - log1p(-exp(r))); returns beta * logsigmoid(log_odds) (which TRL subtracts)."""
    c, r = np.asarray(c, np.float64), np.asarray(r, np.float64)
    log_odds = (c - r) - (np.log1p(-np.exp(c)) - np.log1p(-np.exp(r)))
    return beta * np_log_sigmoid(log_odds)


def np_trl_kto_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, kl, beta, desirable_weight,
                    undesirable_weight):
    """TRL trl/trainer/kto_trainer.py, KTOTrainer.kto_loss (loss_type="kto"): chosen 1 - sigmoid(beta
    (chosen_logratios - kl)), rejected 1 - sigmoid(beta (kl - rejected_logratios)), concatenated
    (desirable_weight * chosen, undesirable_weight * rejected)."""
    chosen = 1 - np_sigmoid(beta * ((np.float64(policy_chosen) - ref_chosen) - kl))
    rejected = 1 - np_sigmoid(beta * (kl - (np.float64(policy_rejected) - ref_rejected)))
    return np.concatenate([desirable_weight * chosen, undesirable_weight * rejected])


def np_trl_get_batch_logps(logits, labels, average_log_prob, label_pad_token_id=-100):
    """TRL trl/trainer/cpo_trainer.py, CPOTrainer.get_batch_logps after its shift (the caller here passes
    already aligned logits and labels): loss_mask = labels != pad; gather log_softmax; sum or mean."""
    logits = np.asarray(logits, np.float64)
    loss_mask = labels != label_pad_token_id
    labels = np.where(loss_mask, labels, 0)
    log_softmax = logits - logits.max(-1, keepdims=True)
    log_softmax = log_softmax - np.log(np.exp(log_softmax).sum(-1, keepdims=True))
    per_token = np.take_along_axis(log_softmax, labels[..., None], axis=-1)[..., 0]
    total = (per_token * loss_mask).sum(-1)
    return total / loss_mask.sum(-1) if average_log_prob else total


# ----------------------------------------------------------- against TRL (NumPy)
DPO_CASES = [("sigmoid", 0.0), ("sigmoid", 0.2), ("hinge", 0.0), ("ipo", 0.0), ("robust", 0.0), ("robust", 0.2)]


@pytest.mark.parametrize("loss_type,label_smoothing", DPO_CASES)
def test_dpo_matches_trl(loss_type, label_smoothing):
    rng = np.random.default_rng(1)
    args = tuple(_summed(rng) for _ in range(4))
    beta = 0.1 if loss_type != "ipo" else 0.5
    got, mean = jax.jit(lambda *a: tuple(  # one program for both reductions
        preference.dpo_loss(*a, beta=beta, label_smoothing=label_smoothing, loss_type=loss_type, reduction=r)
        for r in ("none", "mean")))(*args)
    expect = np_trl_dpo_loss(*args, beta, label_smoothing, loss_type)
    _close(got, expect)
    _close(mean, expect.mean())


@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
def test_simpo_matches_trl_cpo_simpo(label_smoothing):
    rng = np.random.default_rng(2)
    c, r = _averaged(rng), _averaged(rng)
    beta, ratio = 2.5, 0.55
    got = pref.simpo_loss(c, r, beta=beta, gamma_beta_ratio=ratio, label_smoothing=label_smoothing, reduction="none")
    # TRL's simpo_gamma is the margin gamma itself: gamma_beta_ratio * beta.
    _close(got, np_trl_cpo_loss(c, r, beta, label_smoothing, "simpo", simpo_gamma=ratio * beta))


@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
def test_cpo_matches_trl(label_smoothing):
    rng = np.random.default_rng(3)
    c, r = _summed(rng), _summed(rng)
    got = pref.cpo_loss(c, r, beta=0.2, label_smoothing=label_smoothing, reduction="none")
    _close(got, np_trl_cpo_loss(c, r, 0.2, label_smoothing, "sigmoid"))


def test_orpo_is_minus_trl_odds_ratio_loss():
    rng = np.random.default_rng(4)
    c, r = _averaged(rng), _averaged(rng)
    c[0] = -1e-3  # near probability 1: log1p(-exp(c)) is steep here
    got = pref.orpo_loss(c, r, beta=0.25, reduction="none")
    _close(got, -np_trl_odds_ratio_loss(c, r, 0.25))


def test_kto_matches_trl_in_its_concatenated_order():
    rng = np.random.default_rng(5)
    policy, reference = _summed(rng), _summed(rng)
    desirable = np.array([True, False, True, True, False, False, True])
    kl, beta, wd, wu = 0.7, 0.1, 1.0, 1.33
    got = np.asarray(pref.kto_loss(policy, reference, desirable, beta=beta, kl=kl, desirable_weight=wd,
                                   undesirable_weight=wu, reduction="none"))
    expect = np_trl_kto_loss(policy[desirable], policy[~desirable], reference[desirable], reference[~desirable],
                             kl, beta, wd, wu)
    _close(np.concatenate([got[desirable], got[~desirable]]), expect)
    # TRL's loss is the mean of the concatenation, as reduction="mean".
    _close(pref.kto_loss(policy, reference, desirable, beta=beta, kl=kl, desirable_weight=wd,
                         undesirable_weight=wu), expect.mean())


@pytest.mark.parametrize("average", [False, True])
def test_sequence_log_probs_matches_trl_get_batch_logps(average):
    rng = np.random.default_rng(6)
    logits = (rng.normal(size=(3, 5, 11)) * 3.0).astype(np.float32)
    labels = rng.integers(0, 11, size=(3, 5)).astype(np.int32)
    labels[0, :2] = -100  # prompt tokens
    labels[2, 3:] = -100  # padding
    got = pref.sequence_log_probs(logits, labels, ignore_index=-100, average=average)
    _close(got, np_trl_get_batch_logps(logits, labels, average))
    # where masks the same positions as ignore_index
    got_where = pref.sequence_log_probs(logits, np.where(labels < 0, 0, labels), where=labels >= 0, average=average)
    _close(got_where, np_trl_get_batch_logps(logits, labels, average))


def test_closed_forms():
    # DPO sigmoid at margin x: softplus(-beta x) = log(1 + exp(-beta x)).
    pc, pr, rc, rr = (np.array([v], np.float32) for v in (-10.0, -14.0, -12.0, -12.0))
    _close(pref.dpo_loss(pc, pr, rc, rr, beta=0.25), math.log1p(math.exp(-1.0)))
    # cDPO with e = 1/2 is symmetric in the margin: log(1 + e^{-1}) / 2 + log(1 + e^{1}) / 2.
    _close(pref.dpo_loss(pc, pr, rc, rr, beta=0.25, label_smoothing=0.5),
           0.5 * math.log1p(math.exp(-1.0)) + 0.5 * math.log1p(math.exp(1.0)))
    # IPO: (4 - 1/(2 * 0.25))^2 = 4; hinge: max(0, 1 - 1) = 0.
    _close(pref.dpo_loss(pc, pr, rc, rr, beta=0.25, loss_type="ipo"), 4.0)
    _close(pref.dpo_loss(pc, pr, rc, rr, beta=0.25, loss_type="hinge"), 0.0)
    # ORPO with probabilities 0.5 and 0.25: odds 1 and 1/3, log odds ratio log 3.
    _close(pref.orpo_loss(np.log(np.float32([0.5])), np.log(np.float32([0.25])), beta=1.0),
           math.log1p(math.exp(-math.log(3.0))))
    # KTO at zero log-ratio and kl = 0: 1 - sigmoid(0) = 1/2 for both kinds, times their weights.
    z = np.zeros(2, np.float32)
    _close(pref.kto_loss(z, z, np.array([True, False]), desirable_weight=2.0, undesirable_weight=3.0,
                         reduction="none"), [1.0, 1.5])


def test_dpo_rewards():
    rng = np.random.default_rng(7)
    pc, pr, rc, rr = (_summed(rng) for _ in range(4))
    chosen, rejected = pref.dpo_rewards(pc, pr, rc, rr, beta=0.3)
    _close(chosen, 0.3 * (np.float64(pc) - rc))
    _close(rejected, 0.3 * (np.float64(pr) - rr))
    # Logged metrics, not a training signal: no gradient flows through them (TRL detaches them).
    g = jax.jit(jax.grad(lambda p: jnp.sum(pref.dpo_rewards(p, pr, rc, rr)[0])))(jnp.asarray(pc))
    assert np.all(np.asarray(g) == 0)


# -------------------------------------------------------------- PyTorch (TRL's lines)
def test_trl_lines_in_torch_float32():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(8)
    pc, pr, rc, rr = (_summed(rng) for _ in range(4))
    t = [torch.tensor(a) for a in (pc, pr, rc, rr)]
    logits = (t[0] - t[1]) - (t[2] - t[3])
    beta, e = 0.1, 0.1
    sigmoid = -F.logsigmoid(beta * logits) * (1 - e) - F.logsigmoid(-beta * logits) * e
    robust = (-F.logsigmoid(beta * logits) * (1 - e) + F.logsigmoid(-beta * logits) * e) / (1 - 2 * e)
    _close(pref.dpo_loss(pc, pr, rc, rr, beta=beta, label_smoothing=e, reduction="none"), sigmoid.numpy())
    _close(pref.dpo_loss(pc, pr, rc, rr, beta=beta, label_smoothing=e, loss_type="robust", reduction="none"),
           robust.numpy())
    c, r = _averaged(rng), _averaged(rng)
    tc, tr = torch.tensor(c), torch.tensor(r)
    log_odds = (tc - tr) - (torch.log1p(-torch.exp(tc)) - torch.log1p(-torch.exp(tr)))
    _close(pref.orpo_loss(c, r, beta=0.1, reduction="none"), (-0.1 * F.logsigmoid(log_odds)).numpy(), rtol=1e-4)
    seq_logits = (rng.normal(size=(2, 4, 9)) * 2.0).astype(np.float32)
    labels = rng.integers(0, 9, size=(2, 4))
    per_token = torch.gather(torch.tensor(seq_logits).log_softmax(-1), 2, torch.tensor(labels)[..., None])[..., 0]
    _close(pref.sequence_log_probs(seq_logits, labels.astype(np.int32)), per_token.sum(-1).numpy())


# --------------------------------------------------------------------- edge cases
def _losses():
    """(name, function of (chosen, rejected) summed or averaged log-probs) for every preference loss."""
    ref = np.full(B, -20.0, np.float32)
    desirable = np.arange(B) % 2 == 0
    cases = [(f"dpo_{lt}", lambda c, r, lt=lt, e=e: pref.dpo_loss(c, r, ref, ref, loss_type=lt, label_smoothing=e))
             for lt, e in DPO_CASES]
    cases += [("simpo", lambda c, r: pref.simpo_loss(c, r, label_smoothing=0.1)),
              ("cpo", lambda c, r: pref.cpo_loss(c, r, label_smoothing=0.1)),
              ("orpo", pref.orpo_loss),
              ("kto", lambda c, r: pref.kto_loss(c, r, desirable, kl=0.5))]
    return cases


@pytest.mark.parametrize("name,loss", _losses(), ids=[n for n, _ in _losses()])
def test_edges_finite_value_and_gradient(name, loss):
    rng = np.random.default_rng(9)
    c = _averaged(rng)
    grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))  # one program for every case
    cases = {
        "equal chosen and rejected": (c, c),
        "log-probs of -1e4": (np.full(B, -1e4, np.float32), np.full(B, -1e4, np.float32)),
        "-1e4 against 0": (np.full(B, -1e4, np.float32), np.zeros(B, np.float32)),
        "0 against -1e4": (np.zeros(B, np.float32), np.full(B, -1e4, np.float32)),
        "log-probs of exactly 0 (probability 1)": (np.zeros(B, np.float32), np.zeros(B, np.float32)),
        "tiny negative log-probs": (np.full(B, -1e-9, np.float32), np.full(B, -3e-8, np.float32)),
    }
    for what, (a, b) in cases.items():
        value, grads = grad(jnp.asarray(a), jnp.asarray(b))
        assert _all_finite(value), f"{name}: value not finite at {what}"
        assert _all_finite(grads), f"{name}: gradient not finite at {what}"


def test_edges_bfloat16_gives_float32():
    c = jnp.asarray(np.full(B, -60.0), jnp.bfloat16)
    r = jnp.asarray(np.full(B, -2.0), jnp.bfloat16)
    for value in (pref.dpo_loss(c, r, r, c), pref.orpo_loss(r, c), pref.simpo_loss(c, r), pref.cpo_loss(c, r)):
        assert value.dtype == jnp.float32 and np.isfinite(float(value))


def test_fully_masked_sequences_stay_finite():
    rng = np.random.default_rng(10)
    logits = jnp.asarray(rng.normal(size=(2, 2, 4, 6)), jnp.float32)  # [chosen/rejected, B, T, V]
    labels = jnp.asarray(rng.integers(0, 6, size=(2, 2, 4)), jnp.int32)
    mask = np.ones((2, 2, 4), bool)
    mask[:, 1] = False  # the second pair has no completion token at all
    mask[0, 0, 0] = False  # and the first has a NaN logit at a skipped position
    logits = logits.at[0, 0, 0, 0].set(jnp.nan)
    ref = jnp.array([-3.0, -3.0])

    def loss(logits, average):
        logps = pref.sequence_log_probs(logits, labels, where=mask, average=average)
        if average:
            return pref.orpo_loss(logps[0], logps[1]) + pref.simpo_loss(logps[0], logps[1])
        return pref.dpo_loss(logps[0], logps[1], ref, ref)

    for average in (False, True):
        logps = pref.sequence_log_probs(logits, labels, where=mask, average=average)
        assert np.all(np.asarray(logps)[:, 1] == 0.0)
        value, g = jax.jit(jax.value_and_grad(loss), static_argnums=1)(logits, average)
        assert np.isfinite(float(value)) and _all_finite(g)
        assert np.all(np.asarray(g)[:, 1] == 0) and np.all(np.asarray(g)[0, 0, 0] == 0)


def test_sequence_log_probs_edges():
    labels = jnp.array([[1, 0, 2]], jnp.int32)
    big = jnp.array([[[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [0.0, 0.0, 1e4]]], jnp.float32)
    value, g = jax.jit(jax.value_and_grad(lambda x: jnp.sum(pref.sequence_log_probs(x, labels))))(big)
    # tokens 1 and 0 are at -2e4 and -2e4 below their row's maximum; token 2 is the maximum
    _close(value, -4e4, rtol=1e-6)
    assert _all_finite(g)
    out = pref.sequence_log_probs(big.astype(jnp.bfloat16) * 0 + 60.0, labels)
    assert out.dtype == jnp.float32
    # A label outside [0, V) gives NaN for its sequence (never a wrapped class) ...
    bad = pref.sequence_log_probs(big, jnp.array([[1, 3, 2]], jnp.int32))
    assert np.isnan(float(bad[0]))
    # ... unless the position is skipped.
    ok = pref.sequence_log_probs(big, jnp.array([[1, 3, 2]], jnp.int32), where=jnp.array([[True, False, True]]))
    assert np.isfinite(float(ok[0]))
    # A NaN logit at a kept position shows (a diverged model is never a healthy number).
    nan_logits = big.at[0, 1, 2].set(jnp.nan)
    assert np.isnan(float(pref.sequence_log_probs(nan_logits, labels)[0]))
    assert np.isfinite(float(pref.sequence_log_probs(nan_logits, labels, where=jnp.array([[True, False, True]]))[0]))


def test_traced_hyper_parameters():
    rng = np.random.default_rng(11)
    pc, pr, rc, rr = (_summed(rng) for _ in range(4))
    for loss_type in ("sigmoid", "robust", "ipo", "hinge"):
        e = 0.1 if loss_type in ("sigmoid", "robust") else 0.0
        f = jax.jit(lambda b, s, lt=loss_type: pref.dpo_loss(pc, pr, rc, rr, beta=b, label_smoothing=s, loss_type=lt))
        _close(f(0.3, e), np_trl_dpo_loss(pc, pr, rc, rr, 0.3, e, loss_type).mean())
    # kl is a constant: no gradient flows into it, and the learned beta gets one
    policy, reference = _summed(rng), _summed(rng)
    desirable = np.arange(B) % 3 == 0
    g_kl = jax.jit(jax.grad(lambda kl: pref.kto_loss(policy, reference, desirable, kl=kl)))(0.5)
    assert float(g_kl) == 0.0
    g_beta = jax.jit(jax.grad(lambda b: pref.kto_loss(policy, reference, desirable, beta=b)))(0.1)
    assert np.isfinite(float(g_beta)) and float(g_beta) != 0.0


# --------------------------------------------------------------------- other loss types under check_loss
@pytest.mark.parametrize("loss_type,label_smoothing", [("hinge", 0.0), ("ipo", 0.0), ("robust", 0.2)])
def test_dpo_other_loss_types_keep_the_contract(loss_type, label_smoothing):
    rng = np.random.default_rng(12)
    args = tuple(-rng.uniform(5.0, 40.0, size=(6,)) for _ in range(4))
    check_loss(preference.dpo_loss, *args, only=["grad", "edge", "where", "all_masked"], beta=0.1,
               loss_type=loss_type, label_smoothing=label_smoothing)


# ------------------------------------------------------------------------------ errors
def test_errors():
    # Called eagerly, as a user would: the checks raise before any computation.
    x = np.full(3, -5.0, np.float32)
    with pytest.raises(ValueError, match=r"^jaxloss.dpo_loss: loss_type must be one of"):
        preference.dpo_loss(x, x, x, x, loss_type="exo_pair")
    with pytest.raises(ValueError, match=r"^jaxloss.dpo_loss: beta must be > 0"):
        preference.dpo_loss(x, x, x, x, beta=0.0)
    with pytest.raises(ValueError, match=r"^jaxloss.dpo_loss: label_smoothing must be >= 0.0 and < 0.5"):
        preference.dpo_loss(x, x, x, x, loss_type="robust", label_smoothing=0.5)
    with pytest.raises(ValueError, match=r"^jaxloss.dpo_loss: label_smoothing must be 0 for loss_type='hinge'"):
        preference.dpo_loss(x, x, x, x, loss_type="hinge", label_smoothing=0.1)
    with pytest.raises(ValueError, match=r"^jaxloss.dpo_loss: policy_chosen_logps \(3,\) and reference_rejected_logps"):
        preference.dpo_loss(x, x, x, x[:2])
    with pytest.raises(TypeError, match=r"^jaxloss.simpo_loss: chosen_logps must have a floating dtype"):
        preference.simpo_loss(x.astype(np.int32), x)
    with pytest.raises(ValueError, match=r"^jaxloss.orpo_loss: beta must be >= 0"):
        preference.orpo_loss(x, x, beta=-0.1)
    with pytest.raises(TypeError, match=r"^jaxloss.kto_loss: desirable must be a boolean array"):
        preference.kto_loss(x, x, np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"^jaxloss.kto_loss: policy_logps \(3,\) and desirable \(2,\)"):
        preference.kto_loss(x, x, np.ones(2, bool))
    with pytest.raises(ValueError, match=r"^jaxloss.kto_loss: undesirable_weight must be >= 0"):
        preference.kto_loss(x, x, np.ones(3, bool), undesirable_weight=-1.0)
    logits, labels = np.zeros((2, 3, 4), np.float32), np.zeros((2, 3), np.int32)
    with pytest.raises(ValueError, match=r"^jaxloss.sequence_log_probs: labels must have shape \(2, 3\)"):
        preference.sequence_log_probs(logits, labels[:, :2])
    with pytest.raises(TypeError, match=r"^jaxloss.sequence_log_probs: labels must have an integer dtype"):
        preference.sequence_log_probs(logits, labels.astype(np.float32))
    with pytest.raises(ValueError, match=r"^jaxloss.sequence_log_probs: logits must have rank >= 2"):
        preference.sequence_log_probs(logits[0, 0], labels[0, :1])
