"""Reference tests for the fused (linear) distillation losses.

``linear_knowledge_distillation_loss`` and ``linear_generalized_jsd_loss``
take student and teacher ``(hidden, weight)`` pairs and must equal the
distillation losses on ``hidden @ weight`` in value and gradients. Expected
numbers come from outside jaxloss: NumPy (float64) transcriptions of
RepDistiller's ``distiller_zoo/KD.py`` ``DistillKL`` and of TRL's
``trl/experimental/gkd/gkd_trainer.py`` ``GKDTrainer.generalized_jsd_loss``
applied to the materialised logits, gradients from PyTorch autograd through the
same lines (when torch is installed), and Liger-Kernel's
``src/liger_kernel/chunked_loss/jsd_loss.py``
``LigerFusedLinearJSDFunction.distillation_loss_fn`` (the fused peer) where
its conventions agree with TRL's (``beta = 0.5``). All random inputs are seeded.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss.distillation as distill

N, DS, DT, V = 6, 5, 7, 37  # V = 37: no chunk size below divides it


def _inputs(seed=0, n=N, v=V, scale=0.7, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return tuple(a.astype(dtype) for a in (rng.normal(size=(n, DS)), rng.normal(size=(DS, v)) * scale,
                                            rng.normal(size=(n, DT)), rng.normal(size=(DT, v)) * scale))


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


# ------------------------------------------------------------------ NumPy refs
def np_log_softmax(x):
    x = np.asarray(x, np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def np_distill_kl(y_s, y_t, T):
    """RepDistiller distiller_zoo/KD.py DistillKL.forward per example: kl_div(log_softmax(y_s / T),
    softmax(y_t / T)) summed over classes, times T**2."""
    log_s, log_t = np_log_softmax(y_s / T), np_log_softmax(y_t / T)
    return (np.exp(log_t) * (log_t - log_s)).sum(-1) * T ** 2


def np_trl_generalized_jsd(y_s, y_t, beta, T):
    """TRL GKDTrainer.generalized_jsd_loss (reduction="none", summed over the vocabulary):
    beta 0 / 1 are kl_div(student, teacher) / kl_div(teacher, student); otherwise
    mixture = logsumexp([s + log(1 - beta), t + log(beta)]),
    beta kl_div(mixture, t) + (1 - beta) kl_div(mixture, s)."""
    s, t = np_log_softmax(y_s / T), np_log_softmax(y_t / T)
    if beta == 0:
        return (np.exp(t) * (t - s)).sum(-1)
    if beta == 1:
        return (np.exp(s) * (s - t)).sum(-1)
    m = np.logaddexp(s + np.log1p(-beta), t + np.log(beta))
    return (beta * np.exp(t) * (t - m) + (1 - beta) * np.exp(s) * (s - m)).sum(-1)


def np_liger_jsd(y_s, y_t, beta):
    """Liger-Kernel chunked_loss/jsd_loss.py distillation_loss_fn: mean_probs = beta exp(s) + (1 - beta) exp(t),
    beta kl_div(log mean, t, sum, log_target) + (1 - beta) kl_div(log mean, s, sum, log_target)
    (a sum over the chunk's tokens; the base class divides by the number of tokens)."""
    s, t = np_log_softmax(y_s), np_log_softmax(y_t)
    log_m = np.log(beta * np.exp(s) + (1 - beta) * np.exp(t))
    return beta * (np.exp(t) * (t - log_m)).sum() + (1 - beta) * (np.exp(s) * (s - log_m)).sum()


CASES = [  # (name, fused kwargs, reference per token)
    ("kd T=2", dict(temperature=2.0), lambda s, t: np_distill_kl(s, t, 2.0)),
    ("gjsd beta=0", dict(beta=0.0, temperature=1.5), lambda s, t: np_trl_generalized_jsd(s, t, 0.0, 1.5)),
    ("gjsd beta=0.3", dict(beta=0.3, temperature=1.5), lambda s, t: np_trl_generalized_jsd(s, t, 0.3, 1.5)),
    ("gjsd beta=1", dict(beta=1.0), lambda s, t: np_trl_generalized_jsd(s, t, 1.0, 1.0)),
]


def _fused(kwargs):
    return distill.linear_generalized_jsd_loss if "beta" in kwargs else distill.linear_knowledge_distillation_loss


@pytest.mark.parametrize("name, kwargs, reference", CASES, ids=[c[0] for c in CASES])
def test_values_match_numpy_transcriptions(name, kwargs, reference):
    hs, ws, ht, wt = _inputs()
    expected = reference(hs.astype(np.float64) @ ws, ht.astype(np.float64) @ wt)
    # chunk 1, a chunk that leaves a shifted last chunk (37 = 4 x 8 + 5), more than the vocabulary.
    for chunk in (1, 8, 1000):
        got = jax.jit(lambda *a, c=chunk: _fused(kwargs)(*a, chunk_size=c, reduction="none", **kwargs))(
            hs, ws, ht, wt)
        np.testing.assert_allclose(np.asarray(got, np.float64), expected, rtol=2e-5, atol=1e-6, err_msg=str(chunk))
    mean = _fused(kwargs)(hs, ws, ht, wt, chunk_size=8, **kwargs)
    np.testing.assert_allclose(float(mean), expected.mean(), rtol=2e-5)


def test_jsd_at_half_matches_liger_fused_linear_jsd():
    # At beta = 0.5 Liger's mixture (beta S + (1 - beta) P) and TRL's ((1 - beta) S + beta P) coincide.
    hs, ws, ht, wt = _inputs(1)
    expected = np_liger_jsd(hs.astype(np.float64) @ ws, ht.astype(np.float64) @ wt, 0.5) / N
    got = distill.linear_generalized_jsd_loss(hs, ws, ht, wt, beta=0.5, chunk_size=8)
    np.testing.assert_allclose(float(got), expected, rtol=2e-5)


def _torch_loss(torch, hs, ws, ht, wt, kind, beta, temperature, weights):
    """The TRL / DistillKL lines in PyTorch on the materialised logits (float64)."""
    F = torch.nn.functional
    s = F.log_softmax(hs @ ws / temperature, dim=-1)
    t = F.log_softmax(ht @ wt / temperature, dim=-1)
    if kind == "kd":
        per = F.kl_div(s, t, reduction="none", log_target=True).sum(-1) * temperature ** 2
    elif beta == 0:
        per = F.kl_div(s, t, reduction="none", log_target=True).sum(-1)
    elif beta == 1:
        per = F.kl_div(t, s, reduction="none", log_target=True).sum(-1)
    else:
        m = torch.logsumexp(torch.stack([s + torch.log1p(-beta), t + torch.log(beta)]), dim=0)
        per = (beta * F.kl_div(m, t, reduction="none", log_target=True)
               + (1 - beta) * F.kl_div(m, s, reduction="none", log_target=True)).sum(-1)
    return (per * weights).sum() / weights.sum()


@pytest.mark.parametrize("kind, beta", [("kd", None), ("gjsd", 0.0), ("gjsd", 0.3), ("gjsd", 1.0)])
def test_gradients_match_torch_autograd(kind, beta):
    """Gradients w.r.t. all four arrays and a learned temperature (and beta) equal PyTorch autograd."""
    torch = pytest.importorskip("torch")
    arrays = _inputs(2, dtype=np.float64)
    weights = np.random.default_rng(3).uniform(0.5, 2.0, size=N)
    temperature = 1.7
    tt = [torch.tensor(a, requires_grad=True) for a in arrays]
    t_temp = torch.tensor(temperature, dtype=torch.float64, requires_grad=True)
    t_beta = None if beta is None else torch.tensor(beta, dtype=torch.float64, requires_grad=True)
    loss = _torch_loss(torch, *tt, kind, t_beta, t_temp, torch.tensor(weights))
    loss.backward()
    expected = [t.grad.numpy() for t in tt] + [t_temp.grad.item()]
    if t_beta is not None and 0 < beta < 1:
        expected.append(t_beta.grad.item())

    with jax.enable_x64(True):
        def f(hs, ws, ht, wt, temperature, b):
            if kind == "kd":
                return distill.linear_knowledge_distillation_loss(hs, ws, ht, wt, temperature=temperature,
                                                                  chunk_size=8, weights=weights)
            # A traced beta only where the mixed formula's derivative in beta is defined.
            return distill.linear_generalized_jsd_loss(hs, ws, ht, wt, beta=b if 0 < beta < 1 else beta,
                                                       temperature=temperature, chunk_size=8, weights=weights)

        argnums = (0, 1, 2, 3, 4) + ((5,) if len(expected) == 6 else ())
        value, grads = jax.jit(jax.value_and_grad(f, argnums=argnums))(*map(jnp.asarray, arrays), jnp.float64(temperature),
                                                              jnp.float64(0.0 if beta is None else beta))
    np.testing.assert_allclose(float(value), loss.item(), rtol=1e-12)
    for g, e in zip(grads, expected):
        assert _rel(g, e) < 1e-10, (_rel(g, e), np.shape(e))


def test_gradients_equal_unfused_with_mask_and_weights():
    hs, ws, ht, wt = _inputs(4)
    where = np.array([True, True, False, True, True, False])
    weights = np.linspace(0.5, 2.0, N).astype(np.float32)
    hs[2] = np.nan  # a masked token with NaN inputs contributes nothing
    for kwargs, naive in ((dict(temperature=2.0), distill.knowledge_distillation_loss),
                          (dict(beta=0.7, temperature=0.8), distill.generalized_jsd_loss)):
        fused = jax.jit(jax.value_and_grad(lambda *a: _fused(kwargs)(*a, chunk_size=8, where=where, weights=weights,
                                                                     **kwargs), argnums=(0, 1, 2, 3)))(hs, ws, ht, wt)
        safe = np.where(where[:, None], hs, 0.0)
        ref = jax.jit(jax.value_and_grad(lambda hs, ws, ht, wt: naive(hs @ ws, ht @ wt, where=where,
                                                                      weights=weights, **kwargs),
                                         argnums=(0, 1, 2, 3)))(safe, ws, ht, wt)
        assert _rel(fused[0], ref[0]) < 1e-5
        for a, b in zip(fused[1], ref[1]):
            assert np.all(np.isfinite(a)) and _rel(a, b) < 1e-5
        assert np.all(np.asarray(fused[1][0])[~where] == 0) and np.all(np.asarray(fused[1][2])[~where] == 0)


def _count(jaxpr, *names) -> int:
    """Equations of the primitives ``names`` in a jaxpr, nested ones included."""
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name in names
        for sub in jax.core.subjaxprs(eqn) if hasattr(jax.core, "subjaxprs") else ():
            count += _count(sub, *names)
        for p in eqn.params.values():
            inner = getattr(p, "jaxpr", None)
            if inner is not None and hasattr(inner, "eqns"):
                count += _count(inner, *names)
            elif hasattr(p, "eqns"):
                count += _count(p, *names)
    return count


def _count_dots(jaxpr) -> int:
    return _count(jaxpr, "dot_general")


def test_frozen_teacher_skips_teacher_gradient_matmuls():
    hs, ws, ht, wt = _inputs(5)

    def loss(hs, ws, ht, wt):  # one chunk loop, no tail: each product appears once in the program
        return distill.linear_generalized_jsd_loss(hs, ws, ht, wt, chunk_size=V)

    both = _count_dots(jax.make_jaxpr(jax.grad(loss, argnums=(0, 1, 2, 3)))(hs, ws, ht, wt).jaxpr)
    student = _count_dots(jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(hs, ws, ht, wt).jaxpr)
    stopped = _count_dots(jax.make_jaxpr(jax.grad(
        lambda *a: loss(a[0], a[1], jax.lax.stop_gradient(a[2]), jax.lax.stop_gradient(a[3])),
        argnums=(0, 1, 2, 3)))(hs, ws, ht, wt).jaxpr)
    # forward: 2 passes x 2 products; backward: 2 recomputed products + 2 gradient products per side.
    assert (both, student, stopped) == (10, 8, 8)
    g_frozen = jax.grad(loss, argnums=(0, 1))(hs, ws, ht, wt)
    g_all = jax.grad(loss, argnums=(0, 1, 2, 3))(hs, ws, ht, wt)
    for a, b in zip(g_frozen, g_all[:2]):
        np.testing.assert_array_equal(a, b)


def test_bfloat16_weights_cast_chunk_by_chunk():
    hs, ws, ht, wt = _inputs(6)
    ws16, wt16 = jnp.asarray(ws, jnp.bfloat16), jnp.asarray(wt, jnp.bfloat16)
    # The float32 reference on the same (bfloat16-rounded) weights.
    ws32, wt32 = np.asarray(ws16, np.float32), np.asarray(wt16, np.float32)
    expected = np_trl_generalized_jsd(hs.astype(np.float64) @ ws32, ht.astype(np.float64) @ wt32, 0.4, 1.0)
    # float32 hidden states with bfloat16 weights: each weight chunk is cast exactly to float32.
    got = distill.linear_generalized_jsd_loss(hs, ws16, ht, wt16, beta=0.4, chunk_size=8, reduction="none")
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got, np.float64), expected, rtol=2e-5, atol=1e-6)
    # All bfloat16: products accumulate in float32 (bfloat16 x bfloat16 is exact in float32).
    hs16, ht16 = jnp.asarray(hs, jnp.bfloat16), jnp.asarray(ht, jnp.bfloat16)
    expected16 = np_trl_generalized_jsd(np.asarray(hs16, np.float64) @ ws32, np.asarray(ht16, np.float64) @ wt32,
                                        0.4, 1.0)
    got16 = distill.linear_generalized_jsd_loss(hs16, ws16, ht16, wt16, beta=0.4, chunk_size=8, reduction="none")
    assert got16.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got16, np.float64), expected16, rtol=2e-5, atol=1e-6)
    grads = jax.jit(jax.grad(lambda *a: distill.linear_generalized_jsd_loss(*a, beta=0.4, chunk_size=8),
                             argnums=(0, 1, 2, 3)))(hs16, ws16, ht16, wt16)
    assert [g.dtype for g in grads] == [jnp.bfloat16] * 4
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


@pytest.mark.parametrize("chunk_size, loops", [(4, 5), (8, 2)])
def test_bfloat16_weights_walked_in_groups_equal_unfused(monkeypatch, chunk_size, loops):
    # bfloat16 weights are bit-cast and walked one group of columns at a time (both weights' columns:
    # (DS + DT) * 2 bytes each), here two chunks a group, one loop a group over its full chunks. V = 37:
    # chunk 4 gives 4 groups of 8 columns and a last group of 5 (a loop over one chunk, then a second
    # chunk moved back to end at 37); chunk 8 gives 2 groups of 16 and a last group of 5 columns,
    # narrower than a chunk (no loop: one chunk moved back over the previous group's columns).
    monkeypatch.setattr(distill, "_GROUP_BYTES", (DS + DT) * 2 * chunk_size * 2)
    hs, ws, ht, wt = _inputs(11)
    ws16, wt16 = jnp.asarray(ws, jnp.bfloat16), jnp.asarray(wt, jnp.bfloat16)
    ws32, wt32 = (np.asarray(w, np.float32) for w in (ws16, wt16))  # the same rounded weights, float32
    where = np.array([True, True, True, False, True, True])
    for kwargs, naive in ((dict(temperature=2.0), distill.knowledge_distillation_loss),
                          (dict(beta=0.3, temperature=1.5), distill.generalized_jsd_loss)):
        fused = lambda *a: _fused(kwargs)(*a, chunk_size=chunk_size, where=where, **kwargs)  # noqa: E731
        passes = 1 if "beta" not in kwargs else 2  # forward passes (a plain KL divergence needs one)
        jaxpr = jax.make_jaxpr(jax.grad(fused, argnums=(0, 1, 2, 3)))(hs, ws16, ht, wt16).jaxpr
        assert _count(jaxpr, "scan", "while") == loops * (passes + 1)  # forward passes and backward
        v1, g1 = jax.jit(jax.value_and_grad(fused, argnums=(0, 1, 2, 3)))(hs, ws16, ht, wt16)
        v2, g2 = jax.value_and_grad(lambda hs, ws, ht, wt: naive(hs @ ws, ht @ wt, where=where, **kwargs),
                                    argnums=(0, 1, 2, 3))(hs, ws32, ht, wt32)
        assert _rel(v1, v2) < 1e-5
        assert [g.dtype for g in g1] == [jnp.float32, jnp.bfloat16, jnp.float32, jnp.bfloat16]
        for i in (0, 2):  # float32 hidden-state gradients: float32 accuracy
            assert _rel(g1[i], g2[i]) < 1e-5, (i, _rel(g1[i], g2[i]))
        for i in (1, 3):  # bfloat16 weight gradients: the same numbers rounded to bfloat16 (8 bits)
            assert _rel(g1[i], g2[i]) < 2.0 ** -8, (i, _rel(g1[i], g2[i]))


def test_bfloat16_weights_never_copied_whole():
    """Compiled temporaries of value-and-gradient stay below half a bfloat16 weight (8 MiB here): the weights'
    bits are taken one group (1 MiB, both weights) at a time, not whole."""
    n, d, v = 256, 128, 32768
    spec = [jax.ShapeDtypeStruct(s, t) for s, t in (((n, d), jnp.float32), ((d, v), jnp.bfloat16),
                                                    ((n, d), jnp.float32), ((d, v), jnp.bfloat16))]
    loss = functools.partial(distill.linear_generalized_jsd_loss, chunk_size=256)
    old = distill._GROUP_BYTES
    try:
        distill._GROUP_BYTES = 2 ** 20
        memory = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3))).lower(*spec).compile().memory_analysis()
    finally:
        distill._GROUP_BYTES = old
    assert memory.temp_size_in_bytes < 0.5 * d * v * 2, memory.temp_size_in_bytes


def test_logits_of_magnitude_1e4_are_finite_and_exact():
    hs, ws, ht, wt = _inputs(7)
    hs, ht = hs * 3e3, ht * 3e3  # logits of order 1e4
    s, t = hs.astype(np.float64) @ ws, ht.astype(np.float64) @ wt
    assert np.abs(s).max() > 5e3
    got = distill.linear_knowledge_distillation_loss(hs, ws, ht, wt, chunk_size=8, reduction="none")
    np.testing.assert_allclose(np.asarray(got, np.float64), np_distill_kl(s, t, 1.0), rtol=1e-3)
    grads = jax.jit(jax.grad(lambda *a: distill.linear_generalized_jsd_loss(*a, chunk_size=8),
                             argnums=(0, 1, 2, 3)))(hs, ws, ht, wt)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


def test_vocabulary_split_under_vmap_axis_name_equals_whole():
    """``axis_name`` with the vocabulary slices on a vmapped axis (the multi-device mesh is in
    tests/test_distillation_fused_sharded.py)."""
    hs, ws, ht, wt = _inputs(8, v=36)
    slices = lambda w: w.reshape(w.shape[0], 4, 9).transpose(1, 0, 2)  # noqa: E731  [4, D, 9] column blocks
    whole = lambda w: w.transpose(1, 0, 2).reshape(w.shape[1], 36)  # noqa: E731

    def split(hs, ws_s, ht, wt_s):
        return jax.vmap(lambda ws, wt: distill.linear_generalized_jsd_loss(
            hs, ws, ht, wt, beta=0.3, chunk_size=4, axis_name="v"), axis_name="v")(ws_s, wt_s)

    ref_fn = lambda *a: distill.linear_generalized_jsd_loss(*a, beta=0.3, chunk_size=4)  # noqa: E731
    np.testing.assert_allclose(split(hs, slices(ws), ht, slices(wt)), np.full(4, ref_fn(hs, ws, ht, wt)), rtol=1e-5)
    g = jax.jit(jax.grad(lambda *a: split(*a)[0], argnums=(0, 1, 2, 3)))(hs, slices(ws), ht, slices(wt))
    r = jax.jit(jax.grad(ref_fn, argnums=(0, 1, 2, 3)))(hs, ws, ht, wt)
    for a, b in zip((g[0], whole(g[1]), g[2], whole(g[3])), r):
        assert _rel(a, b) < 1e-5


def test_batch_shape_and_errors():
    hs, ws, ht, wt = _inputs(9)
    flat = distill.linear_knowledge_distillation_loss(hs, ws, ht, wt, reduction="none")
    shaped = distill.linear_knowledge_distillation_loss(hs.reshape(2, 3, DS), ws, ht.reshape(2, 3, DT), wt,
                                                        reduction="none")
    np.testing.assert_allclose(shaped, flat.reshape(2, 3), rtol=1e-6)
    fn = distill.linear_generalized_jsd_loss
    with pytest.raises(ValueError, match=r"jaxloss.linear_generalized_jsd_loss: teacher_weight must have shape"):
        fn(hs, ws, ht, wt[:, :-1])
    with pytest.raises(ValueError, match=r"student_weight must have shape \[Ds, V\] with Ds = 5"):
        fn(hs, ws.T, ht, wt)
    with pytest.raises(ValueError, match=r"teacher_hidden must have shape"):
        fn(hs, ws, ht[:-1], wt)
    with pytest.raises(ValueError, match=r"beta must be >= 0.0 and <= 1.0"):
        fn(hs, ws, ht, wt, beta=1.5)
    with pytest.raises(ValueError, match=r"temperature must be > 0.0"):
        fn(hs, ws, ht, wt, temperature=0.0)
    with pytest.raises(ValueError, match=r"chunk_size must be >= 1"):
        fn(hs, ws, ht, wt, chunk_size=0)
    with pytest.raises(TypeError, match=r"student_hidden must have a floating dtype"):
        fn(hs.astype(np.int32), ws, ht, wt)


def test_memory_far_below_the_materialised_path():
    """Compiled temporaries + outputs of value-and-gradient (student side), at N=2048, D=64, V=8192."""
    n, d, v = 2048, 64, 8192
    spec = [jax.ShapeDtypeStruct(s, jnp.float32) for s in ((n, d), (d, v), (n, d), (d, v))]

    def measure(loss):
        compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(*spec).compile()
        m = compiled.memory_analysis()
        return m.temp_size_in_bytes + m.output_size_in_bytes

    fused = measure(lambda *a: distill.linear_generalized_jsd_loss(*a, chunk_size=256))
    naive = measure(lambda hs, ws, ht, wt: distill.generalized_jsd_loss(hs @ ws, ht @ wt))
    assert fused < 0.1 * naive, (fused, naive)
