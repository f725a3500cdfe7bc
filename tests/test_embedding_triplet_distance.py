"""Reference tests for ``jaxloss.embedding.triplet_margin_with_distance_loss``.

The reference is torch's ``torch.nn.functional.triplet_margin_with_distance_loss``
(``torch/nn/functional.py``): ``clamp_min(margin + d(a, p) - d(a, n), 0)``,
with ``d(a, n)`` replaced by ``minimum(d(a, n), d(p, n))`` when ``swap``, and
the default distance ``torch.pairwise_distance(x, y)`` = ``||x - y + 1e-6||_2``
over the last axis (``aten/src/ATen/native/Distance.cpp``, ``pairwise_distance``).
Each case runs against a float64 NumPy transcription of that formula (always)
and torch itself (``pytest.importorskip``). Tolerance: 1e-5 relative in float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxloss import embedding as E
from jaxloss.testing import check_loss
from tests.specs.embedding import _triplets

RTOL, ATOL = 1e-5, 1e-6
fn = E.triplet_margin_with_distance_loss


def _inputs(seed, shape=(12, 5)):
    rng = np.random.default_rng(seed)
    a, p, n = (rng.normal(size=shape).astype(np.float32) for _ in range(3))
    # Half the negatives next to the positive, so the swap picks d(p, n) there.
    n[::2] = p[::2] + 0.1 * rng.normal(size=p[::2].shape).astype(np.float32)
    return a, p, n


# ------------------------------------------------------- NumPy transcriptions
def _np_pairwise(x, y):
    return np.linalg.norm(np.float64(x) - np.float64(y) + 1e-6, axis=-1)


def _np_l1(x, y):
    return np.sum(np.abs(np.float64(x) - np.float64(y)), axis=-1)


def _np_cosine_distance(x, y):
    x, y = np.float64(x), np.float64(y)
    return 1.0 - np.sum(x * y, -1) / np.sqrt(np.sum(x * x, -1) * np.sum(y * y, -1))


def _np_reference(a, p, n, distance, margin, swap):
    """torch/nn/functional.py, triplet_margin_with_distance_loss with reduction="none"."""
    d_pos, d_neg = distance(a, p), distance(a, n)
    if swap:
        d_neg = np.minimum(d_neg, distance(p, n))
    return np.maximum(margin + d_pos - d_neg, 0.0)


def _l1(x, y):
    return jnp.sum(jnp.abs(x - y), axis=-1)


def _cosine_distance(x, y):
    return E.cosine_distance(x, y, reduction="none")


DISTANCES = {"default": (None, _np_pairwise), "l1": (_l1, _np_l1), "cosine": (_cosine_distance, _np_cosine_distance)}
CASES = [("default", 1.0, False), ("default", 0.5, True), ("l1", 2.0, True), ("cosine", 0.3, False),
         ("cosine", 0.3, True)]


@pytest.mark.parametrize("name,margin,swap", CASES)
def test_equals_numpy_transcription(name, margin, swap):
    a, p, n = _inputs(0)
    ours_fn, ref_fn = DISTANCES[name]
    ref = _np_reference(a, p, n, ref_fn, margin, swap)
    assert 0 < np.count_nonzero(ref) < ref.size  # both sides of the hinge are exercised
    ours = fn(a, p, n, distance_function=ours_fn, margin=margin, swap=swap, reduction="none")
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(fn(a, p, n, distance_function=ours_fn, margin=margin, swap=swap),
                               ref.mean(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(fn(a, p, n, distance_function=ours_fn, margin=margin, swap=swap, reduction="sum"),
                               ref.sum(), rtol=RTOL, atol=ATOL)


def test_swap_changes_the_value():
    # Guards the swap tests above against inputs where min(d(a, n), d(p, n)) is always d(a, n).
    a, p, n = _inputs(0)
    assert not np.allclose(_np_reference(a, p, n, _np_pairwise, 1.0, True),
                           _np_reference(a, p, n, _np_pairwise, 1.0, False))


@pytest.mark.parametrize("name,margin,swap", CASES)
def test_equals_torch_value_and_gradients(name, margin, swap):
    torch = pytest.importorskip("torch")
    torch_distances = {"default": None, "l1": lambda x, y: torch.sum(torch.abs(x - y), dim=-1),
                       "cosine": lambda x, y: 1.0 - torch.nn.functional.cosine_similarity(x, y)}
    a, p, n = _inputs(1)
    ta, tp, tn = (torch.tensor(x, requires_grad=True) for x in (a, p, n))
    ref = torch.nn.functional.triplet_margin_with_distance_loss(
        ta, tp, tn, distance_function=torch_distances[name], margin=margin, swap=swap, reduction="mean")
    ref.backward()
    value, grads = jax.value_and_grad(
        lambda x, y, z: fn(x, y, z, distance_function=DISTANCES[name][0], margin=margin, swap=swap),
        argnums=(0, 1, 2))(a, p, n)
    np.testing.assert_allclose(value, ref.detach().numpy(), rtol=RTOL, atol=ATOL)
    for g, t in zip(grads, (ta, tp, tn)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_distance_over_several_trailing_axes_equals_torch():
    # Image-like triplets [B, H, W]: the distance reduces (H, W), the values are per example [B].
    a, p, n = _inputs(2, shape=(6, 3, 4))

    def frobenius(x, y):
        return jnp.sqrt(jnp.sum((x - y) ** 2, axis=(-2, -1)))

    ref = _np_reference(a, p, n, lambda x, y: np.sqrt(np.sum((np.float64(x) - y) ** 2, axis=(-2, -1))), 1.0, True)
    ours = fn(a, p, n, distance_function=frobenius, swap=True, reduction="none")
    assert ours.shape == (6,)
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)
    where = np.array([True, False, True, True, False, True])
    np.testing.assert_allclose(fn(a, p, n, distance_function=frobenius, swap=True, where=where),
                               ref[where].mean(), rtol=RTOL, atol=ATOL)
    torch = pytest.importorskip("torch")
    t = torch.nn.functional.triplet_margin_with_distance_loss(
        *(torch.tensor(x) for x in (a, p, n)), swap=True, reduction="none",
        distance_function=lambda x, y: torch.sqrt(torch.sum((x - y) ** 2, dim=(-2, -1))))
    np.testing.assert_allclose(ours, t.numpy(), rtol=RTOL, atol=ATOL)


def test_default_equals_triplet_margin_loss_p2():
    # torch's default distance is pairwise_distance(p=2, eps=1e-6), triplet_margin_loss's default.
    a, p, n = _inputs(3)
    for swap in (False, True):
        np.testing.assert_allclose(fn(a, p, n, swap=swap, reduction="none"),
                                   E.triplet_margin_loss(a, p, n, swap=swap, reduction="none"), rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------ numerics
def test_zero_distance_gradient_is_finite_and_equals_torch():
    a = _inputs(4)[0]
    value, grads = jax.value_and_grad(lambda x, y, z: fn(x, y, z, swap=True), argnums=(0, 1, 2))(a, a, a)
    assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads)
    np.testing.assert_allclose(value, 1.0, rtol=RTOL)  # margin + 0 - 0 (torch: eps * sqrt(D) on both sides)
    torch = pytest.importorskip("torch")
    ts = [torch.tensor(a, requires_grad=True) for _ in range(3)]
    torch.nn.functional.triplet_margin_with_distance_loss(*ts, swap=True).backward()
    for g, t in zip(grads, ts):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_custom_distance_passes_check_loss():
    # The whole invariants suite with a user distance (squared Euclidean, smooth at 0):
    # d(a, p) = 0.25, d(a, n) in {1, 9}, so the hinge is clearly active or inactive.
    args = _triplets(np.random.default_rng(0))
    check_loss(fn, *args, distance_function=lambda x, y: jnp.sum((x - y) ** 2, axis=-1), margin=1.0)


def test_traced_margin_equals_concrete():
    a, p, n = _inputs(5)
    traced = jax.jit(lambda m: fn(a, p, n, margin=m, reduction="none"))(0.7)
    np.testing.assert_allclose(traced, fn(a, p, n, margin=0.7, reduction="none"), rtol=RTOL, atol=ATOL)


def test_bfloat16_computes_in_float32_and_distance_sees_float32():
    a, p, n = (jnp.asarray(x, jnp.bfloat16) for x in _inputs(6))
    seen = []

    def l1(x, y):
        seen.append(x.dtype)
        return _l1(x, y)

    out = fn(a, p, n, distance_function=l1)
    assert out.dtype == jnp.float32 and set(seen) == {jnp.dtype(jnp.float32)}


# -------------------------------------------------------------------- errors
def test_errors_name_function_and_argument():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"jaxloss.triplet_margin_with_distance_loss: margin must be > 0.0"):
        fn(x, x, x, margin=0.0)
    with pytest.raises(ValueError, match="jaxloss.triplet_margin_with_distance_loss: swap"):
        fn(x, x, x, swap="yes")
    with pytest.raises(ValueError, match="jaxloss.triplet_margin_with_distance_loss: distance_function must be a "
                                         "function"):
        fn(x, x, x, distance_function="euclidean")
    with pytest.raises(ValueError, match=r"distance_function must return distances .*got shape \(4, 1\)"):
        fn(x, x, x, distance_function=lambda u, v: jnp.sum(u - v, axis=-1, keepdims=True))
    with pytest.raises(ValueError, match=r"distance_function must return distances .*got shape \(4, 3\)"):
        fn(x, x, x, distance_function=lambda u, v: u - v)
    with pytest.raises(TypeError, match="distance_function must return one real array"):
        fn(x, x, x, distance_function=lambda u, v: jnp.sum(u, -1) > 0)
    with pytest.raises(ValueError, match=r"anchors \(4, 3\) and negatives \(4, 2\) must have the same shape"):
        fn(x, x, x[:, :2])
    with pytest.raises(TypeError, match="jaxloss.triplet_margin_with_distance_loss: positives"):
        fn(x, x.astype(np.int32), x)
    with pytest.raises(ValueError, match="jaxloss.triplet_margin_with_distance_loss: reduction"):
        fn(x, x, x, reduction="avg")
