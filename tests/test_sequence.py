"""Reference tests for ``jaxloss.sequence.ctc_loss``.

References: a NumPy transcription of the CTC forward recursion of Graves et
al. (2006), eq. 6-8 (always runs), brute-force enumeration of alignments on
tiny problems, and ``torch.nn.functional.ctc_loss`` (when torch is installed).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxloss.sequence import ctc_loss


def _np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _np_ctc_nll(log_probs, labels, blank=0):
    """Graves et al. (2006) eq. 6-8 in float64 log space for one sequence [T, K]."""
    ext = [blank]
    for c in labels:
        ext += [c, blank]
    S, T = len(ext), log_probs.shape[0]
    if T == 0:
        return 0.0 if len(labels) == 0 else np.inf
    alpha = np.full(S, -np.inf)
    alpha[0] = log_probs[0, blank]
    if S > 1:
        alpha[1] = log_probs[0, ext[1]]
    for t in range(1, T):
        new = np.full(S, -np.inf)
        for s in range(S):
            terms = [alpha[s]]
            if s >= 1:
                terms.append(alpha[s - 1])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                terms.append(alpha[s - 2])
            new[s] = np.logaddexp.reduce(terms) + log_probs[t, ext[s]]
        alpha = new
    ends = [alpha[S - 1]] + ([alpha[S - 2]] if S > 1 else [])
    return -np.logaddexp.reduce(ends)


def _collapse(path, blank=0):
    out, prev = [], None
    for p in path:
        if p != prev and p != blank:
            out.append(p)
        prev = p
    return out


def _brute_force_nll(log_probs, labels, blank=0):
    T, K = log_probs.shape
    total = -np.inf
    for path in itertools.product(range(K), repeat=T):
        if _collapse(path, blank) == list(labels):
            total = np.logaddexp(total, sum(log_probs[t, p] for t, p in enumerate(path)))
    return -total


def _batch(seed=0, B=6, T=12, K=6, N=5):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(B, T, K))
    frame_lengths = rng.integers(N + 3, T + 1, size=B)
    label_lengths = rng.integers(0, N + 1, size=B)
    labels = rng.integers(1, K, size=(B, N))
    labels[0, :3] = [2, 2, 2]  # repeats
    label_lengths[0] = max(label_lengths[0], 3)
    logit_paddings = (np.arange(T)[None] >= frame_lengths[:, None]).astype(np.float32)
    label_paddings = (np.arange(N)[None] >= label_lengths[:, None]).astype(np.float32)
    return logits, logit_paddings, labels.astype(np.int32), label_paddings, frame_lengths, label_lengths


def test_matches_numpy_forward_recursion():
    logits, lp, labels, yp, tl, ll = _batch()
    got = ctc_loss(logits.astype(np.float32), lp, labels, yp, reduction="none")
    lps = _np_log_softmax(logits)
    expect = [_np_ctc_nll(lps[b, :tl[b]], labels[b, :ll[b]]) for b in range(len(tl))]
    np.testing.assert_allclose(got, expect, rtol=1e-5)


def test_matches_brute_force_enumeration():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1, 5, 3))
    lps = _np_log_softmax(logits[0])
    for labels in ([1], [1, 2], [1, 1], [2, 1, 2], []):
        n = max(len(labels), 1)
        y = np.array([labels + [0] * (n - len(labels))], np.int32)
        yp = np.array([[0.0] * len(labels) + [1.0] * (n - len(labels))])
        got = float(ctc_loss(logits.astype(np.float32), np.zeros((1, 5)), y, yp))
        np.testing.assert_allclose(got, _brute_force_nll(lps, labels), rtol=1e-5)


def test_blank_id_other_than_zero():
    logits, lp, labels, yp, tl, ll = _batch(seed=2)
    blank = 5
    labels = np.where(labels == blank, 1, labels)
    got = ctc_loss(logits.astype(np.float32), lp, labels, yp, blank_id=blank, reduction="none")
    lps = _np_log_softmax(logits)
    expect = [_np_ctc_nll(lps[b, :tl[b]], labels[b, :ll[b]], blank=blank) for b in range(len(tl))]
    np.testing.assert_allclose(got, expect, rtol=1e-5)


def test_matches_torch_value_and_gradient():
    torch = pytest.importorskip("torch")
    logits, lp, labels, yp, tl, ll = _batch(seed=3, B=8, T=30, K=10, N=8)
    # torch takes [T, B, K] log-probabilities and lengths.
    tz = torch.tensor(logits, requires_grad=True)
    tlogp = torch.log_softmax(tz, -1).transpose(0, 1)
    args = (torch.tensor(labels, dtype=torch.long), torch.tensor(tl), torch.tensor(ll))
    expect = torch.nn.functional.ctc_loss(tlogp, *args, reduction="none").detach().numpy()
    got = ctc_loss(logits.astype(np.float32), lp, labels, yp, reduction="none")
    np.testing.assert_allclose(got, expect, rtol=1e-5)

    mean = torch.nn.functional.ctc_loss(tlogp, *args, reduction="mean")
    mean.backward()
    f = lambda z: ctc_loss(z, lp, labels, yp, normalize_by_label_length=True)  # noqa: E731
    value, grad = jax.value_and_grad(f)(jnp.asarray(logits, jnp.float32))
    np.testing.assert_allclose(value, mean.item(), rtol=1e-5)
    np.testing.assert_allclose(grad, tz.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_impossible_alignments_match_torch_semantics():
    # "aaa" needs 5 frames (a, blank, a, blank, a); 4 are not enough.
    logits = np.random.default_rng(4).normal(size=(2, 4, 3)).astype(np.float32)
    labels = np.array([[1, 1, 1], [1, 2, 0]], np.int32)
    yp = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    lp = np.zeros((2, 4))
    values = ctc_loss(logits, lp, labels, yp, reduction="none")
    assert np.isinf(values[0]) and values[0] > 0 and np.isfinite(values[1])
    zeroed, grad = jax.value_and_grad(
        lambda z: ctc_loss(z, lp, labels, yp, zero_infinity=True, reduction="sum"))(jnp.asarray(logits))
    np.testing.assert_allclose(zeroed, values[1], rtol=1e-6)
    assert np.all(np.asarray(grad[0]) == 0) and np.all(np.isfinite(grad))
    torch = pytest.importorskip("torch")
    tlogp = torch.log_softmax(torch.tensor(logits), -1).transpose(0, 1)
    ref = torch.nn.functional.ctc_loss(tlogp, torch.tensor(labels, dtype=torch.long), torch.tensor([4, 4]),
                                       torch.tensor([3, 2]), reduction="none")
    assert np.isinf(ref[0].item())


def test_never_negative_for_a_certain_path():
    # One path with probability ~1: -log p is ~0 and must not round below 0.
    logits = np.full((3, 6, 4), -1e4, np.float32)
    path = [1, 0, 2, 2, 0, 3]
    for t, c in enumerate(path):
        logits[:, t, c] = 1e4
    labels = np.tile(np.array([[1, 2, 3]], np.int32), (3, 1))
    values = ctc_loss(logits, np.zeros((3, 6)), labels, np.zeros((3, 3)), reduction="none")
    assert np.all(np.asarray(values) >= 0) and np.all(np.asarray(values) < 1e-3)


def test_gradients_match_finite_differences_float64():
    from jax.test_util import check_grads
    logits, lp, labels, yp, _, _ = _batch(seed=5)
    with jax.enable_x64(True):
        check_grads(lambda z: ctc_loss(z, lp, labels, yp), (jnp.asarray(logits, jnp.float64),), order=1,
                    modes=("rev",), atol=1e-6, rtol=1e-6, eps=1e-6)


def test_empty_labels_and_all_padding():
    logits = np.random.default_rng(6).normal(size=(2, 5, 4)).astype(np.float32)
    lps = _np_log_softmax(logits.astype(np.float64))
    labels = np.zeros((2, 2), np.int32)
    # Example 0: empty label (all blanks); example 1: every frame padded and empty label -> log 1 = 0.
    lp = np.array([[0.0] * 5, [1.0] * 5])
    values = ctc_loss(logits, lp, labels, np.ones((2, 2)), reduction="none")
    np.testing.assert_allclose(values, [-lps[0, :, 0].sum(), 0.0], rtol=1e-5, atol=1e-6)


def test_out_of_range_label_gives_nan():
    logits = np.zeros((2, 4, 3), np.float32)
    labels = np.array([[1, 3], [1, 7]], np.int32)   # 3 is out of range; 7 is padding
    values = ctc_loss(logits, np.zeros((2, 4)), labels, np.array([[0.0, 0.0], [0.0, 1.0]]), reduction="none")
    assert np.isnan(values[0]) and np.isfinite(values[1])


def test_errors():
    z = np.zeros((2, 4, 3), np.float32)
    ok = (z, np.zeros((2, 4)), np.ones((2, 2), np.int32), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="jaxloss.ctc_loss: blank_id"):
        ctc_loss(*ok, blank_id=3)
    with pytest.raises(ValueError, match="logit_paddings"):
        ctc_loss(z, np.zeros((2, 5)), *ok[2:])
    with pytest.raises(ValueError, match="label_paddings"):
        ctc_loss(*ok[:3], np.zeros((2, 3)))
    with pytest.raises(TypeError, match="labels"):
        ctc_loss(*ok[:2], np.ones((2, 2), np.float32), ok[3])
    with pytest.raises(ValueError, match="logits"):
        ctc_loss(z[0], *ok[1:])
