"""Reference tests for the router regularisers (``jaxloss.routing``).

Expected values come from NumPy transcriptions of Hugging Face transformers:
``load_balancing_loss_func`` in
``src/transformers/models/mixtral/modeling_mixtral.py`` and
``router_z_loss_func`` in
``src/transformers/models/switch_transformers/modeling_switch_transformers.py``,
and from transformers itself where it is installed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxloss import routing


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _hf_load_balancing(gate_logits, num_experts, top_k, attention_mask=None):
    """transformers/models/mixtral/modeling_mixtral.py, load_balancing_loss_func, one layer, in NumPy."""
    routing_weights = _softmax(gate_logits.astype(np.float64))
    selected = np.argsort(-routing_weights, axis=-1, kind="stable")[:, :top_k]   # torch.topk
    counts = np.zeros(num_experts)
    mask = np.ones(gate_logits.shape[0]) if attention_mask is None else attention_mask.reshape(-1).astype(np.float64)
    for k in range(top_k):                                   # scatter_add_ of the mask per assignment
        np.add.at(counts, selected[:, k], mask)
    tokens_per_expert = counts / mask.sum()
    router_prob_per_expert = (routing_weights * mask[:, None]).sum(axis=0) / mask.sum()
    return np.sum(tokens_per_expert * router_prob_per_expert[None]) * num_experts


def _hf_router_z_loss(router_logits):
    """transformers/models/switch_transformers/modeling_switch_transformers.py, router_z_loss_func, in NumPy."""
    num_groups, tokens_per_group, _ = router_logits.shape
    x = router_logits.astype(np.float64)
    m = x.max(axis=-1)
    log_z = m + np.log(np.exp(x - m[..., None]).sum(axis=-1))
    return np.sum(log_z ** 2) / (num_groups * tokens_per_group)


# Compiled once per top_k, input shape and mask presence (the tests share them; op-by-op evaluation
# of the loss and its gradient was most of this file's time).
_LOAD_BALANCING = jax.jit(routing.load_balancing_loss, static_argnames=("top_k",))
_LOAD_BALANCING_VG = jax.jit(jax.value_and_grad(routing.load_balancing_loss), static_argnames=("top_k",))


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b) / np.maximum(np.abs(b), 1e-12)))


@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_load_balancing_loss_equals_transformers_transcription(top_k):
    rng = np.random.default_rng(top_k)
    logits = rng.normal(size=(24, 4)).astype(np.float32)
    mask = rng.uniform(size=24) < 0.7
    got = _LOAD_BALANCING(jnp.asarray(logits), top_k=top_k)
    assert _rel(got, _hf_load_balancing(logits, 4, top_k)) < 1e-5
    got = _LOAD_BALANCING(jnp.asarray(logits), top_k=top_k, where=jnp.asarray(mask))
    assert _rel(got, _hf_load_balancing(logits, 4, top_k, mask)) < 1e-5
    if top_k == 4:  # every expert chosen by every token: f_e = 1, sum_e P_e = 1, loss = E
        np.testing.assert_allclose(float(got), 4.0, rtol=1e-6)


def test_load_balancing_loss_equals_transformers():
    torch = pytest.importorskip("torch")
    mixtral = pytest.importorskip("transformers.models.mixtral.modeling_mixtral")
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(2, 10, 8)).astype(np.float32)      # [batch, sequence, experts]
    mask = (rng.uniform(size=(2, 10)) < 0.8).astype(np.int64)
    for top_k in (1, 2, 3):
        ref = mixtral.load_balancing_loss_func((torch.tensor(logits.reshape(20, 8)),), 8, top_k).item()
        assert _rel(_LOAD_BALANCING(jnp.asarray(logits), top_k=top_k), ref) < 1e-5
        ref = mixtral.load_balancing_loss_func((torch.tensor(logits.reshape(20, 8)),), 8, top_k,
                                               torch.tensor(mask)).item()
        got = _LOAD_BALANCING(jnp.asarray(logits), top_k=top_k, where=jnp.asarray(mask, bool))
        assert _rel(got, ref) < 1e-5


def test_router_z_loss_equals_transformers_transcription():
    rng = np.random.default_rng(1)
    logits = (3.0 * rng.normal(size=(2, 6, 5))).astype(np.float32)   # [groups, tokens, experts]
    mean, none = jax.jit(lambda x: (routing.router_z_loss(x), routing.router_z_loss(x, reduction="none")))(
        jnp.asarray(logits))
    assert _rel(mean, _hf_router_z_loss(logits)) < 1e-5
    by_hand = np.log(np.exp(logits.astype(np.float64)).sum(-1)) ** 2
    np.testing.assert_allclose(none, by_hand, rtol=1e-5)


def test_router_z_loss_equals_transformers():
    torch = pytest.importorskip("torch")
    switch = pytest.importorskip("transformers.models.switch_transformers.modeling_switch_transformers")
    logits = (3.0 * np.random.default_rng(2).normal(size=(2, 6, 5))).astype(np.float32)
    ref = switch.router_z_loss_func(torch.tensor(logits)).item()
    assert _rel(jax.jit(routing.router_z_loss)(jnp.asarray(logits)), ref) < 1e-5


def test_load_balancing_gradient_flows_through_probabilities_only():
    rng = np.random.default_rng(3)
    logits = jnp.asarray(rng.normal(size=(16, 4)), jnp.float32)
    fraction = np.zeros(4)
    np.add.at(fraction, np.argmax(np.asarray(logits), -1), 1.0 / 16)
    # d/dz of E * sum_e f_e * mean_t softmax(z_t)_e with f constant.
    p = np.asarray(logits, np.float64)
    p = np.exp(p - p.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    expected = 4 * p * (fraction[None] - (p * fraction[None]).sum(-1, keepdims=True)) / 16
    np.testing.assert_allclose(_LOAD_BALANCING_VG(logits, top_k=1)[1], expected, rtol=1e-4, atol=1e-7)


def test_load_balancing_where_equals_slicing_and_masks_nan():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(10, 4)).astype(np.float32)
    keep = np.array([True] * 7 + [False] * 3)
    poisoned = logits.copy()
    poisoned[~keep] = np.nan
    sliced = _LOAD_BALANCING(jnp.asarray(logits[keep]), top_k=2)
    masked, grad = _LOAD_BALANCING_VG(jnp.asarray(poisoned), top_k=2, where=jnp.asarray(keep))
    np.testing.assert_allclose(masked, sliced, rtol=1e-6)
    assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad)[~keep] == 0)
    # Nothing left: 0 with zero gradient.
    value, grad = _LOAD_BALANCING_VG(jnp.asarray(logits), top_k=1, where=jnp.zeros(10, bool))
    assert float(value) == 0.0 and not np.any(grad)


def test_load_balancing_balanced_and_collapsed_router():
    # Balanced routing gives 1 (= top_k); a router sending every token to one expert
    # with probability ~1 gives E.
    balanced = jnp.asarray(np.tile(np.eye(4) * 20.0, (3, 1)), jnp.float32)
    np.testing.assert_allclose(_LOAD_BALANCING(balanced), 1.0, rtol=1e-6)
    collapsed = jnp.zeros((12, 4)).at[:, 0].set(30.0)
    np.testing.assert_allclose(_LOAD_BALANCING(collapsed), 4.0, rtol=1e-6)


@pytest.mark.parametrize("top_k", [0, 5, -1])
def test_load_balancing_top_k_out_of_range_raises(top_k):
    with pytest.raises(ValueError, match=r"jaxloss.load_balancing_loss: top_k must be in \[1, 4\]"):
        routing.load_balancing_loss(jnp.zeros((3, 4)), top_k=top_k)


def test_load_balancing_top_k_must_be_an_int():
    with pytest.raises(ValueError, match="jaxloss.load_balancing_loss: top_k must be a Python int"):
        routing.load_balancing_loss(jnp.zeros((3, 4)), top_k=1.0)


def test_router_losses_stay_finite_at_large_logits():
    logits = jnp.asarray(np.random.default_rng(5).choice([-1e4, 1e4], size=(6, 4)), jnp.float32)
    for value, grad in (jax.jit(jax.value_and_grad(routing.router_z_loss))(logits),
                        _LOAD_BALANCING_VG(logits, top_k=2)):
        assert np.isfinite(float(value)) and np.all(np.isfinite(grad))
