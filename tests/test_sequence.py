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


@pytest.mark.parametrize("frames,max_labels", [(12, 5), (100, 16)])  # per-frame and blocked rescaling
def test_gradients_match_finite_differences_float64(frames, max_labels):
    from jax.test_util import check_grads
    logits, lp, labels, yp, _, _ = _batch(seed=5, T=frames, N=max_labels)
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


# --- optax's own CTC test cases (optax/losses/_classification_test.py, CTCTest), value and gradient ---

def _lengths_to_paddings(lengths, maxlength):
    return (np.arange(maxlength)[None, :] >= np.asarray(lengths)[:, None]).astype(np.float32)


def _optax_cases():
    """The three CTCTest cases of optax, drawn from a seeded generator."""
    rng = np.random.default_rng(1234)
    # test_with_one_to_one_alignment: T == N, no repeats, so the only path is the labels.
    batch, steps, classes = 8, 50, 40
    logits = rng.normal(size=(batch, steps, classes)).astype(np.float32)
    labels = rng.integers(1, classes, size=(batch, steps)).astype(np.int32)
    for n in range(batch):
        for t in range(1, steps):
            while labels[n, t] == labels[n, t - 1]:
                labels[n, t] = rng.integers(1, classes)
    yield ("one_to_one", logits, np.zeros((batch, steps), np.float32), labels, np.zeros((batch, steps), np.float32),
           [list(range(steps))] * batch)
    # test_with_one_to_one_alignment_and_paddings: frames and labels padded alike.
    batch, classes, steps = 5, 13, 7
    logits = rng.normal(size=(batch, steps, classes)).astype(np.float32)
    labels = np.array([rng.permutation(np.arange(1, classes))[:steps] for _ in range(batch)], np.int32)
    lengths = rng.integers(3, 6, size=batch)
    paddings = _lengths_to_paddings(lengths, steps)
    yield "paddings", logits, paddings, labels, paddings, [list(range(n)) for n in lengths]
    # test_repeat_with_one_to_one_alignment: repeats need a blank in between; 2 padded labels.
    labels = np.pad(np.array([[1, 2, 2, 3], [2, 3, 4, 4], [1, 1, 1, 1], [1, 1, 2, 3], [1, 1, 1, 2]]), [(0, 0), (0, 2)])
    alignments = [[1, 2, 0, 2, 3], [2, 3, 4, 0, 4], [1, 0, 1, 0, 1, 0, 1], [1, 0, 1, 2, 3], [1, 0, 1, 0, 1, 2]]
    frame_lengths = np.array([len(a) for a in alignments])
    logits = rng.normal(size=(5, frame_lengths.max(), 5)).astype(np.float32)
    yield ("repeats", logits, _lengths_to_paddings(frame_lengths, frame_lengths.max()), labels.astype(np.int32),
           _lengths_to_paddings([4] * 5, 6), alignments)


@pytest.mark.parametrize("case", ["one_to_one", "paddings", "repeats"])
def test_optax_test_cases_value_and_gradient(case):
    name, logits, lp, labels, yp, paths = next(c for c in _optax_cases() if c[0] == case)
    batch = logits.shape[0]
    value, grad = jax.value_and_grad(lambda z: ctc_loss(z, lp, labels, yp))(jnp.asarray(logits))
    # optax's expectations: a single alignment, so -log p is the path's sum and
    # the gradient of the mean is (softmax - onehot(path)) / B on real frames.
    lps = _np_log_softmax(logits.astype(np.float64))
    if case == "repeats":
        symbols = paths
        paths = [list(range(len(a))) for a in paths]
    else:
        symbols = [[labels[b, t] for t in p] for b, p in enumerate(paths)]
    per_seq = [-sum(lps[b, t, k] for t, k in zip(paths[b], symbols[b])) for b in range(batch)]
    np.testing.assert_allclose(value, np.mean(per_seq), rtol=1e-6)
    expect = np.exp(lps)
    for b in range(batch):
        expect[b, len(paths[b]):] = 0.0
        for t, k in zip(paths[b], symbols[b]):
            expect[b, t, k] -= 1.0
    np.testing.assert_allclose(grad, expect / batch, rtol=1e-6, atol=1e-9)
    optax = pytest.importorskip("optax")
    theirs = jax.grad(lambda z: jnp.mean(optax.ctc_loss(z, lp, labels, yp)))(jnp.asarray(logits))
    # One alignment: the posteriors are exactly 0 and 1, and the softmax part is formed as autodiff
    # forms it, so the gradient equals optax's to the last bits: bit for bit with XLA's default
    # compiler, within 2 float32 ulps with the suite's fast-compile flags (tests/conftest.py),
    # which fuse optax's program differently (measured 6.6e-8 relative at 7 of 16000 entries).
    np.testing.assert_allclose(grad, theirs, rtol=2.5e-7, atol=0)


def test_gradient_matches_torch_float64_to_float32_precision():
    # float32 recursion over 300 frames: the posteriors must not inherit the
    # rounding of log-likelihoods in the hundreds (scaled forward variables,
    # per-frame normalised posteriors).
    torch = pytest.importorskip("torch")
    logits, lp, labels, yp, tl, ll = _batch(seed=7, B=4, T=300, K=20, N=40)
    tz = torch.tensor(logits, requires_grad=True)
    args = (torch.tensor(labels, dtype=torch.long), torch.tensor(tl), torch.tensor(ll))
    torch.nn.functional.ctc_loss(torch.log_softmax(tz, -1).transpose(0, 1), *args, reduction="sum").backward()
    grad = jax.grad(lambda z: ctc_loss(z, lp, labels, yp, reduction="sum"))(jnp.asarray(logits, jnp.float32))
    # Measured when written: 1.2e-5 (jaxloss), 2.3e-4 (optax 0.2.8), 4.7e-4
    # (torch in float32), against torch in float64; the gradient's scale is 1.
    np.testing.assert_allclose(grad, tz.grad.numpy(), rtol=0, atol=3e-5)


def test_nan_in_a_real_frame_gives_nan_and_padding_stays_clean():
    logits, lp, labels, yp, tl, _ = _batch(seed=8)
    logits = logits.astype(np.float32)
    poisoned = logits.copy()
    poisoned[1, 0, 2] = np.nan                       # a real frame of example 1
    poisoned[2, tl[2]:, :] = np.nan                  # padded frames of example 2
    values = ctc_loss(poisoned, lp, labels, yp, reduction="none")
    clean = ctc_loss(logits, lp, labels, yp, reduction="none")
    assert np.isnan(values[1])
    others = np.arange(len(tl)) != 1
    np.testing.assert_allclose(np.asarray(values)[others], np.asarray(clean)[others], rtol=1e-6)
    # NaN at a padded frame reaches neither the value nor the gradient.
    keep = np.arange(len(tl)) != 1
    grad = jax.grad(lambda z: ctc_loss(z, lp, labels, yp, where=jnp.asarray(keep)))(jnp.asarray(poisoned))
    assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad[1]) == 0)
    # A NaN padding indicator is a broken input, not a padded frame.
    bad_lp = lp.copy()
    bad_lp[0, 0] = np.nan
    assert np.isnan(ctc_loss(logits, bad_lp, labels, yp, reduction="none")[0])


def test_empty_batch_gives_zero_and_zero_gradient():
    args = (np.zeros((0, 5), np.float32), np.zeros((0, 2), np.int32), np.zeros((0, 2), np.float32))
    for reduction in ("mean", "sum"):
        value, grad = jax.value_and_grad(lambda z: ctc_loss(z, *args, reduction=reduction))(jnp.zeros((0, 5, 4)))
        assert float(value) == 0.0 and grad.shape == (0, 5, 4)
    assert ctc_loss(jnp.zeros((0, 5, 4)), *args, reduction="none").shape == (0,)


@pytest.mark.parametrize("batch,frames,max_labels", [(16, 14, 5), (32, 14, 5), (16, 150, 20)])
def test_both_recursion_layouts_agree(batch, frames, max_labels):
    # The recursion keeps the extended states first and rows last when a scan
    # has at least 32 rows (the value of B >= 32 rows, the gradient's 2B rows
    # from B >= 16), and rows first below; rows first with >= 96 frames and
    # >= 16 labels, it rescales the carry once every 16 frames instead of
    # every frame (150 frames: 9 full blocks and a padded one). Rows are
    # independent, so the first 4 rows of a large batch must give the values
    # and gradients of the same 4 rows alone (the other layout), and the
    # values of the NumPy recursion.
    logits, lp, labels, yp, tl, ll = _batch(seed=11, B=batch, T=frames, K=7, N=max_labels)
    lp[1, 2:] = 1.0                                   # 2 frames for >= 1 label: impossible when ll[1] > 2
    ll[1] = 4
    yp[1] = (np.arange(max_labels) >= 4).astype(np.float32)
    logits[2, 0, 3] = -np.inf                         # a class masked out upstream
    z = jnp.asarray(logits, jnp.float32)

    def run(z, rows):
        f = lambda z: ctc_loss(z, lp[rows], labels[rows], yp[rows], reduction="sum")  # noqa: E731
        return ctc_loss(z, lp[rows], labels[rows], yp[rows], reduction="none"), jax.grad(f)(z)

    values, grad = run(z, slice(None))
    few_values, few_grad = run(z[:4], slice(0, 4))
    np.testing.assert_allclose(values[:4], few_values, rtol=2e-6)
    # 150 frames: each layout rounds differently along the recursion (against
    # torch in float64, rows 0 and 3: 1.5e-6 rows last, 4.0e-6 blocked).
    np.testing.assert_allclose(grad[:4], few_grad, rtol=2e-5, atol=1e-6 if frames < 96 else 1e-5)
    assert np.isinf(values[1]) and np.all(np.asarray(grad[1]) == 0)
    assert np.all(np.isfinite(np.asarray(grad)))
    lps = _np_log_softmax(logits)
    expect = [_np_ctc_nll(lps[b, :(lp[b] < 0.5).sum()], labels[b, :(yp[b] < 0.5).sum()]) for b in range(batch)]
    np.testing.assert_allclose(values, expect, rtol=1e-5)
