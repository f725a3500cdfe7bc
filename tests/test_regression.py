"""Reference tests for ``jaxloss.regression``.

Every number compared here comes from outside jaxloss: closed forms written as
expressions, NumPy transcriptions of the reference library's documented
formula, optax, Keras 3 (JAX backend) and, only when installed, PyTorch. Each
test names its reference. All random inputs are seeded.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from jaxloss import regression
from jaxloss.testing import check_loss
from tests.specs import regression as regression_specs

RTOL, ATOL = 1e-5, 1e-6

REGRESSION = ["squared_error", "l2_loss", "absolute_error", "huber_loss", "smooth_l1_loss", "log_cosh",
              "absolute_percentage_error", "squared_log_error", "quantile_loss", "poisson_loss",
              "poisson_nll_loss", "gaussian_nll_loss"]


def _rng(seed=0):
    return np.random.default_rng(seed)


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol, atol=atol)


def _args(name, rng):
    """The invariant-suite inputs of ``name`` (tests/specs/regression.py), float32."""
    return tuple(np.asarray(a, np.float32) for a in regression_specs.SPECS[name].make_args(rng))


def _kwargs(name):
    return dict(regression_specs.SPECS[name].kwargs)


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras")


def _huber_residuals(rng, shape=(5, 4), delta=1.0):
    """Residuals on both sides of delta, none within 0.1 of a kink."""
    targets = rng.normal(size=shape).astype(np.float32)
    small = rng.uniform(0.1, delta - 0.1, size=shape)
    large = rng.uniform(delta + 0.1, delta + 3.0, size=shape)
    sign = np.where(rng.uniform(size=shape) < 0.5, -1.0, 1.0)
    pick = rng.uniform(size=shape) < 0.5
    return (targets + sign * np.where(pick, small, large)).astype(np.float32), targets


# ------------------------------------------------------------------ NumPy refs
def np_smooth_l1(x, y, beta):
    """torch.nn.SmoothL1Loss docs: 0.5 (x-y)^2 / beta if |x-y| < beta else |x-y| - 0.5 beta."""
    d = np.abs(x - y)
    if beta == 0:
        return d
    return np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)


def np_poisson_nll(x, y, log_input, full, eps=1e-8):
    """torch.nn.PoissonNLLLoss docs: exp(x) - y x (log_input) or x - y log(x + eps);
    full adds the Stirling term y log y - y + 0.5 log(2 pi y) where y > 1."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    loss = np.exp(x) - y * x if log_input else x - y * np.log(x + eps)
    if full:
        with np.errstate(divide="ignore", invalid="ignore"):
            stirling = y * np.log(y) - y + 0.5 * np.log(2 * np.pi * y)
        loss = loss + np.where(y > 1, stirling, 0.0)
    return loss


def np_gaussian_nll(x, y, var, full, eps=1e-6):
    """torch.nn.GaussianNLLLoss docs: 0.5 (log max(var, eps) + (x-y)^2 / max(var, eps)) [+ 0.5 log 2 pi]."""
    v = np.maximum(np.asarray(var, np.float64), eps)
    loss = 0.5 * (np.log(v) + (np.asarray(x, np.float64) - y) ** 2 / v)
    return loss + (0.5 * np.log(2 * np.pi) if full else 0.0)


def np_gaussian_nll_grad(x, y, var, eps=1e-6):
    """d/dx and d/dvar of the elementwise torch GaussianNLL; torch clamps var in place
    under no_grad, so the derivative is the formula's at the clamped value."""
    v = np.maximum(np.asarray(var, np.float64), eps)
    r = np.asarray(x, np.float64) - y
    return r / v, 0.5 * (1.0 / v - r * r / (v * v))


# ======================================================= smooth_l1_loss (torch)
@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0, 0.0])
def test_smooth_l1_matches_torch_formula(beta):
    # Reference: torch.nn.SmoothL1Loss documentation formula (NumPy transcription).
    rng = _rng(1)
    p, t = _huber_residuals(rng, delta=max(beta, 0.5))
    values = jaxloss.smooth_l1_loss(p, t, beta=beta, reduction="none")
    _close(values, np_smooth_l1(p.astype(np.float64), t, beta))
    _close(jaxloss.smooth_l1_loss(p, t, beta=beta), np_smooth_l1(p.astype(np.float64), t, beta).mean())


@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0, 0.0])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_smooth_l1_matches_torch(beta, reduction):
    # Reference: torch.nn.functional.smooth_l1_loss.
    torch = pytest.importorskip("torch")
    rng = _rng(2)
    p, t = _huber_residuals(rng, delta=max(beta, 0.5))
    expected = torch.nn.functional.smooth_l1_loss(torch.tensor(p, dtype=torch.float64),
                                                  torch.tensor(t, dtype=torch.float64),
                                                  reduction=reduction, beta=beta).numpy()
    _close(jaxloss.smooth_l1_loss(p, t, beta=beta, reduction=reduction), expected)


@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0])
def test_smooth_l1_gradients_match_torch_backward(beta):
    # A concrete beta > 0 takes Huber's select-free form with written derivatives (regression._smooth_l1):
    # d/dp against torch's smooth_l1_loss_backward (aten/src/ATen/native/PointwiseOps.cpp: r / beta for
    # |r| < beta, sign(r) beyond; NumPy), and d/dp, d/dbeta equal to a traced beta's (autodiff of the select).
    rng = _rng(3)
    p, t = _huber_residuals(rng, delta=beta)
    r = p.astype(np.float64) - t
    expected = np.where(np.abs(r) < beta, r / beta, np.sign(r)) / r.size
    grad = jax.grad(lambda x: jaxloss.smooth_l1_loss(x, t, beta=beta))(p)
    _close(grad, expected)
    concrete = jax.grad(lambda x, b: jaxloss.smooth_l1_loss(x, t, beta=b), argnums=0)(p, beta)
    traced = jax.jit(jax.grad(lambda x, b: jaxloss.smooth_l1_loss(x, t, beta=b), argnums=(0, 1)))(p, np.float32(beta))
    _close(concrete, traced[0])
    # d/dbeta of the written rule (beta concrete inside, so compare through elementwise directly).
    d_beta = jax.grad(lambda b: jnp.mean(regression._smooth_l1(jnp.asarray(p), jnp.asarray(t), b)))(np.float32(beta))
    _close(d_beta, traced[1])


def test_poisson_gradients_equal_autodiff_of_the_formula_at_the_floor():
    # poisson_loss has written derivatives (regression._poisson); they must be autodiff's of
    # p - t log(max(p + eps, eps)) (jnp.maximum's half-and-half at p = 0) for predictions below, at and above
    # the floor, for p, t and epsilon.
    p = np.array([-1.0, -1e-8, 0.0, 1e-9, 0.5, 2.0], np.float32)
    t = np.array([1.0, 2.0, 3.0, 0.0, 1.5, 4.0], np.float32)
    eps = np.float32(1e-7)

    def formula(p, t, eps):
        return jnp.sum(p - t * jnp.log(jnp.maximum(p + eps, eps)))

    expected = jax.grad(formula, argnums=(0, 1, 2))(p, t, eps)
    got = jax.grad(lambda p, t, eps: jnp.sum(regression._poisson(p, t, eps)), argnums=(0, 1, 2))(p, t, eps)
    for g, e in zip(got, expected):
        _close(g, e)
    _close(jax.grad(lambda x: jaxloss.poisson_loss(x, t, reduction="sum"))(p), expected[0])


def test_smooth_l1_hand_values():
    # Closed form with beta = 2: |r| = 1 < 2 -> 0.5 * 1 / 2; |r| = 3 -> 3 - 0.5 * 2.
    values = jaxloss.smooth_l1_loss(jnp.array([1.0, -3.0]), jnp.zeros(2), beta=2.0, reduction="none")
    _close(values, [0.5 * 1.0 ** 2 / 2.0, 3.0 - 0.5 * 2.0])


def test_smooth_l1_beta_zero_is_absolute_error_with_finite_gradient():
    # torch docs: "if beta == 0, SmoothL1Loss is equivalent to L1Loss".
    p = jnp.array([0.0, 1.5, -2.0])
    t = jnp.array([0.0, 0.0, 0.0])
    _close(jaxloss.smooth_l1_loss(p, t, beta=0.0, reduction="none"), [0.0, 1.5, 2.0])
    g = jax.grad(lambda x: jaxloss.smooth_l1_loss(x, t, beta=0.0, reduction="sum"))(p)
    assert np.all(np.isfinite(g))
    _close(g, [0.0, 1.0, -1.0])


@pytest.mark.parametrize("name", ["absolute_error", "absolute_percentage_error", "huber_loss", "smooth_l1_loss"])
def test_gradient_at_zero_residual_is_zero(name):
    # torch.nn.functional.l1_loss / smooth_l1_loss use the subgradient sign(0) = 0 at a perfect
    # prediction (jnp.abs alone differentiates to 1 there, and MAPE would push with 100 / eps).
    x = jnp.array([0.0, 1.0, 2.0])
    g = jax.grad(lambda p: jaxloss.get(name)(p, x, reduction="sum"))(x)
    np.testing.assert_array_equal(np.asarray(g), np.zeros(3))


def test_absolute_error_matches_torch_l1_gradient_at_zero():
    # Reference: torch.nn.functional.l1_loss autograd (value and subgradient at r = 0).
    torch = pytest.importorskip("torch")
    p = np.array([0.0, 1.5, -2.0], np.float32)
    t = np.array([0.0, 0.0, -1.0], np.float32)
    tp = torch.tensor(p, requires_grad=True)
    out = torch.nn.functional.l1_loss(tp, torch.tensor(t), reduction="mean")
    out.backward()
    _close(jaxloss.absolute_error(p, t), out.item())
    _close(jax.grad(jaxloss.absolute_error)(p, t), tp.grad.numpy())



# Losses whose derivative is a rule of their own (_numerics.elementwise), not autodiff of the value:
# the rule is checked against the peer's autograd and a NumPy transcription of the derivative, with
# respect to predictions and targets, at the kinks (r = 0, |r| = delta) and away from them.
_KINK_P = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 1.5, -3.0, 2.25, 1e-3, 40.0], np.float64)
_KINK_T = np.array([0.0, 0.0, 0.0, 0.0, 0.0, -0.5, 0.0, 0.25, 0.0, 0.0], np.float64)
_DERIVATIVES = {  # d loss / d prediction, NumPy
    "absolute_error": lambda r: np.sign(r),  # torch l1_loss backward: sign(r), 0 at r = 0
    "huber_loss": lambda r: np.clip(r, -0.5, 0.5),  # torch huber_loss backward (delta = 0.5)
    "log_cosh": lambda r: np.tanh(r),  # d/dr log cosh r
}
_TORCH = {"absolute_error": lambda F, a, b: F.l1_loss(a, b, reduction="sum"),
          "huber_loss": lambda F, a, b: F.huber_loss(a, b, reduction="sum", delta=0.5)}


@pytest.mark.parametrize("name", sorted(_DERIVATIVES))
def test_written_derivatives_match_formula_and_torch(name):
    kw = {"delta": 0.5} if name == "huber_loss" else {}
    fn = getattr(jaxloss, name)
    with jax.enable_x64():
        gp, gt = jax.grad(lambda a, b: fn(a, b, reduction="sum", **kw), argnums=(0, 1))(_KINK_P, _KINK_T)
    expected = _DERIVATIVES[name](_KINK_P - _KINK_T)
    _close(gp, expected, rtol=1e-12, atol=0)
    _close(gt, -expected, rtol=1e-12, atol=0)
    if name in _TORCH:
        torch = pytest.importorskip("torch")
        tp = torch.tensor(_KINK_P, requires_grad=True)
        tt = torch.tensor(_KINK_T, requires_grad=True)
        _TORCH[name](torch.nn.functional, tp, tt).backward()
        _close(gp, tp.grad.numpy(), rtol=1e-12, atol=0)
        _close(gt, tt.grad.numpy(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name,scale", [("squared_error", 1.0), ("l2_loss", 0.5)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_squared_losses_at_the_written_derivative_sizes_match_numpy(name, scale, reduction):
    # From 2^14 elements (last axis > 2) the derivative is a rule of its own (regression._squared_difference).
    # Reference: NumPy transcription of optax's squared_error / l2_loss, value scale (p - t)^2 and
    # derivatives 2 scale (p - t) for predictions, the negative for targets, with weights and where; the
    # second derivative 2 scale; optax itself unweighted.
    rng = np.random.default_rng(81)
    shape = (128, 160)
    p = rng.normal(size=shape).astype(np.float32)
    t = rng.normal(size=shape).astype(np.float32)
    w = rng.uniform(0.5, 2.0, size=shape).astype(np.float32)
    where = rng.uniform(size=shape) < 0.8
    r = p.astype(np.float64) - t
    scale_w = np.where(where, w, 0.0)
    norm = scale_w.sum() if reduction == "mean" else 1.0
    fn = getattr(jaxloss, name)

    def loss(a, b):
        return fn(a, b, reduction=reduction, weights=w, where=where)

    expected = scale * r ** 2 * scale_w / norm
    _close(jax.jit(loss)(p, t), expected if reduction == "none" else expected.sum())
    if reduction == "none":
        return
    gp, gt = jax.jit(jax.grad(loss, argnums=(0, 1)))(p, t)
    _close(gp, 2 * scale * r * scale_w / norm)
    _close(gt, -2 * scale * r * scale_w / norm)
    diag = jax.jit(jax.grad(lambda a: jnp.sum(jax.grad(lambda x: fn(x, t, reduction="sum"))(a))))(p)
    _close(diag, np.full(shape, 2 * scale))
    optax_fn = getattr(optax.losses, name)
    plain = optax_fn(p, t).mean() if reduction == "mean" else optax_fn(p, t).sum()
    _close(jax.jit(lambda a, b: fn(a, b, reduction=reduction))(p, t), plain)


@pytest.mark.parametrize("per_element", [False, True])
def test_quantile_loss_derivatives_match_numpy(per_element):
    # The pinball loss has a derivative rule of its own (regression._pinball). Reference: NumPy transcription
    # of max(q r, (q - 1) r), r = t - p: d/dp = -(q, q - 1, q - 1/2 at r = 0), d/dt the negative, d/dq = r;
    # with a scalar quantile and with one per element.
    rng = np.random.default_rng(82)
    shape = (64, 40)
    p = rng.normal(size=shape).astype(np.float32)
    t = rng.normal(size=shape).astype(np.float32)
    t[0, :3] = p[0, :3]  # r = 0: the kink
    q = rng.uniform(0.1, 0.9, size=shape).astype(np.float32) if per_element else np.float32(0.3)
    r = t.astype(np.float64) - p
    slope = np.where(r > 0, q, np.where(r < 0, q - 1.0, q - 0.5))

    def loss(a, b, qq):
        return jaxloss.quantile_loss(a, b, quantile=qq, reduction="sum")

    _close(jax.jit(loss)(p, t, q), np.maximum(q * r, (q - 1.0) * r).sum())
    gp, gt, gq = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(p, t, q)
    _close(gp, -slope)
    _close(gt, slope)
    _close(gq, r if per_element else r.sum(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_poisson_nll_at_the_written_derivative_sizes_matches_numpy(reduction):
    # From 2^14 elements poisson_nll_loss (log_input=True) has a derivative rule of its own. Reference:
    # torch's poisson_nll_loss formula exp(p) - t p transcribed in NumPy, d/dp = exp(p) - t, d/dt = -p.
    rng = np.random.default_rng(83)
    shape = (128, 160)
    p = (0.5 * rng.normal(size=shape)).astype(np.float32)
    t = rng.poisson(1.5, size=shape).astype(np.float32)
    w = rng.uniform(0.5, 2.0, size=shape).astype(np.float32)
    scale = w / (w.sum() if reduction == "mean" else 1.0)

    def loss(a, b):
        return jaxloss.poisson_nll_loss(a, b, reduction=reduction, weights=w)

    pd = p.astype(np.float64)
    _close(jax.jit(loss)(p, t), ((np.exp(pd) - t * pd) * scale).sum())
    gp, gt = jax.jit(jax.grad(loss, argnums=(0, 1)))(p, t)
    _close(gp, (np.exp(pd) - t) * scale)
    _close(gt, -pd * scale)


def test_absolute_percentage_error_at_the_written_derivative_sizes_matches_numpy():
    # From 2^14 elements the derivatives are a rule of their own (regression._percentage_error). Reference:
    # NumPy transcription of Keras' MAPE 100 |t - p| / max(|t|, eps): d/dp = -100 sign(r) / den, d/dt =
    # 100 sign(r) / den - 100 |r| sign(t) 1[|t| > eps] / den^2, with zero targets, targets below eps and r = 0.
    rng = np.random.default_rng(84)
    shape = (128, 160)
    p = rng.normal(size=shape).astype(np.float32)
    t = rng.normal(size=shape).astype(np.float32)
    t[0, :3] = [0.0, 1e-3, -2e-3]
    p[0, 3] = t[0, 3]
    eps = 1e-2

    def loss(a, b):
        return jaxloss.absolute_percentage_error(a, b, epsilon=eps, reduction="sum")

    r = t.astype(np.float64) - p
    den = np.maximum(np.abs(t), eps)
    _close(jax.jit(loss)(p, t), (100.0 * np.abs(r) / den).sum())
    gp, gt = jax.jit(jax.grad(loss, argnums=(0, 1)))(p, t)
    _close(gp, -100.0 * np.sign(r) / den)
    # float32: the two terms of d/dt are each ~100 / den and cancel where |r| ~ |t|, hence the absolute tolerance.
    _close(gt, 100.0 * np.sign(r) / den - 100.0 * np.abs(r) * np.sign(t) * (np.abs(t) > eps) / den ** 2, atol=1e-3)


def test_huber_delta_gradient_and_second_derivative():
    # d/d delta of the Huber value (the linear part's |r| - delta, else 0) and d2/dr2 (1 inside the
    # quadratic part, 0 outside), from the piecewise formula.
    r = np.array([0.1, -0.3, 0.9, -2.0, 3.0])
    with jax.enable_x64():
        g_delta = jax.grad(lambda d: jaxloss.huber_loss(r, np.zeros(5), delta=d, reduction="sum"))(0.5)
        hess = jax.hessian(lambda p: jaxloss.huber_loss(p, np.zeros(5), delta=0.5, reduction="sum"))(r)
    _close(g_delta, np.sum(np.maximum(np.abs(r) - 0.5, 0.0)), rtol=1e-12, atol=0)
    _close(np.diag(hess), (np.abs(r) < 0.5).astype(np.float64), rtol=1e-12, atol=0)

# ===================================================== poisson_nll_loss (torch)
def _poisson_inputs(rng, log_input):
    shape = (4, 5)
    targets = np.concatenate([np.array([0.0, 1.0, 2.0, 0.5, 7.0]),
                              rng.integers(0, 9, size=15).astype(np.float64)]).reshape(shape)
    if log_input:
        preds = rng.normal(scale=0.8, size=shape)
    else:
        preds = rng.uniform(0.1, 5.0, size=shape)
    return preds.astype(np.float32), targets.astype(np.float32)


@pytest.mark.parametrize("log_input", [True, False])
@pytest.mark.parametrize("full", [False, True])
def test_poisson_nll_matches_torch_formula(log_input, full):
    # Reference: torch.nn.PoissonNLLLoss documentation formula (NumPy transcription).
    p, t = _poisson_inputs(_rng(3), log_input)
    expected = np_poisson_nll(p, t, log_input, full)
    _close(jaxloss.poisson_nll_loss(p, t, log_input=log_input, full=full, reduction="none"), expected)
    _close(jaxloss.poisson_nll_loss(p, t, log_input=log_input, full=full), expected.mean())


@pytest.mark.parametrize("log_input", [True, False])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_poisson_nll_matches_torch(log_input, full, reduction):
    # Reference: torch.nn.functional.poisson_nll_loss (eps=1e-8 as our default).
    torch = pytest.importorskip("torch")
    p, t = _poisson_inputs(_rng(3), log_input)
    expected = torch.nn.functional.poisson_nll_loss(
        torch.tensor(p, dtype=torch.float64), torch.tensor(t, dtype=torch.float64),
        log_input=log_input, full=full, eps=1e-8, reduction=reduction).numpy()
    _close(jaxloss.poisson_nll_loss(p, t, log_input=log_input, full=full, reduction=reduction), expected)


@pytest.mark.parametrize("log_input", [True, False])
def test_poisson_nll_gradient_matches_torch(log_input):
    # Reference: torch autograd through torch.nn.functional.poisson_nll_loss (full=True).
    torch = pytest.importorskip("torch")
    p, t = _poisson_inputs(_rng(4), log_input)
    tp = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.poisson_nll_loss(tp, torch.tensor(t, dtype=torch.float64), log_input=log_input,
                                         full=True, reduction="mean").backward()
    g = jax.grad(lambda x: jaxloss.poisson_nll_loss(x, t, log_input=log_input, full=True))(p)
    _close(g, tp.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_poisson_nll_hand_values():
    # log_input: exp(0) - 3 * 0 = 1; exp(log 2) - 2 log 2 = 2 - 2 log 2.
    values = jaxloss.poisson_nll_loss(jnp.array([0.0, math.log(2.0)]), jnp.array([3.0, 2.0]), reduction="none")
    _close(values, [1.0, 2.0 - 2.0 * math.log(2.0)])
    # full adds y log y - y + 0.5 log(2 pi y) for y = 3 only (y > 1), nothing for y = 1.
    values = jaxloss.poisson_nll_loss(jnp.array([0.0, 0.0]), jnp.array([3.0, 1.0]), full=True, reduction="none")
    _close(values, [1.0 + 3.0 * math.log(3.0) - 3.0 + 0.5 * math.log(2 * math.pi * 3.0), 1.0])
    # rates: 2 - 4 log(2 + 1e-8).
    _close(jaxloss.poisson_nll_loss(jnp.array([2.0]), jnp.array([4.0]), log_input=False),
           2.0 - 4.0 * math.log(2.0 + 1e-8))


def test_poisson_nll_zero_rate_is_finite():
    # torch: 0 - y log(0 + eps) is finite for log_input=False at rate 0.
    p, t = jnp.array([0.0, 0.0]), jnp.array([0.0, 2.0])
    values = jaxloss.poisson_nll_loss(p, t, log_input=False, reduction="none")
    _close(values, [0.0, -2.0 * math.log(1e-8)], rtol=1e-5)
    g = jax.grad(lambda x: jaxloss.poisson_nll_loss(x, t, log_input=False, reduction="sum"))(p)
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("variant", sorted(regression_specs.VARIANTS))
def test_variants_pass_check_loss(variant):
    # The registry holds each loss once; its other modes go through every check here.
    name, spec = regression_specs.VARIANTS[variant]
    args = spec.make_args(np.random.default_rng(0))
    report = check_loss(jaxloss.get(name), *args, grad_tolerance=spec.grad_tolerance, raise_on_failure=False,
                        **spec.kwargs)
    assert report.ok, str(report)


# ==================================================== gaussian_nll_loss (torch)
def _gaussian_inputs(rng, shape=(4, 5)):
    p = rng.normal(size=shape).astype(np.float32)
    t = rng.normal(size=shape).astype(np.float32)
    v = rng.uniform(0.2, 3.0, size=shape).astype(np.float32)
    # A few variances below the 1e-6 floor, and one exactly 0: the clamp is active there.
    v.flat[[0, 3, 7]] = [0.0, 1e-8, 5e-7]
    return p, t, v


@pytest.mark.parametrize("full", [False, True])
def test_gaussian_nll_matches_torch_formula(full):
    # Reference: torch.nn.GaussianNLLLoss documentation formula (NumPy transcription), incl. the eps clamp.
    p, t, v = _gaussian_inputs(_rng(5))
    expected = np_gaussian_nll(p, t, v, full)
    _close(jaxloss.gaussian_nll_loss(p, t, v, full=full, reduction="none"), expected, rtol=1e-5)
    _close(jaxloss.gaussian_nll_loss(p, t, v, full=full), expected.mean(), rtol=1e-5)


def test_gaussian_nll_clamp_value_and_gradient_semantics():
    # Reference: torch's F.gaussian_nll_loss clamps var in place under no_grad, so the value
    # AND the gradient are the formula's at max(var, eps), passed straight through to var
    # (not the zero gradient a jnp.maximum would give below eps). NumPy transcription.
    eps = 1e-3
    p = jnp.array([1.0, 0.5, 2.0, -1.0])
    t = jnp.array([0.0, 0.0, 0.0, 0.0])
    v = jnp.array([0.0, 1e-4, 0.5, 2.0])  # two below eps, two above
    values = jaxloss.gaussian_nll_loss(p, t, v, epsilon=eps, reduction="none")
    _close(values, np_gaussian_nll(p, t, v, False, eps=eps), rtol=1e-5)
    # The first two values use var = eps exactly: 0.5 (log eps + r^2 / eps).
    _close(values[:2], 0.5 * (np.log(eps) + np.array([1.0, 0.25]) / eps), rtol=1e-5)
    gp, gv = jax.grad(lambda a, b: jaxloss.gaussian_nll_loss(a, t, b, epsilon=eps, reduction="sum"),
                      argnums=(0, 1))(p, v)
    ep, ev = np_gaussian_nll_grad(p, t, v, eps=eps)
    _close(gp, ep, rtol=1e-5)
    _close(gv, ev, rtol=1e-5)
    assert np.all(np.asarray(gv[:2]) != 0.0)


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_gaussian_nll_matches_torch(full, reduction):
    # Reference: torch.nn.functional.gaussian_nll_loss (eps=1e-6), value and autograd gradients.
    torch = pytest.importorskip("torch")
    p, t, v = _gaussian_inputs(_rng(6))
    tp = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    tv = torch.tensor(v, dtype=torch.float64, requires_grad=True)
    out = torch.nn.functional.gaussian_nll_loss(tp, torch.tensor(t, dtype=torch.float64), tv, full=full,
                                                eps=1e-6, reduction=reduction)
    _close(jaxloss.gaussian_nll_loss(p, t, v, full=full, reduction=reduction), out.detach().numpy(), rtol=1e-5)
    out.sum().backward()
    gp, gv = jax.grad(lambda a, b: jnp.sum(jaxloss.gaussian_nll_loss(a, t, b, full=full, reduction=reduction)),
                      argnums=(0, 1))(p, v)
    _close(gp, tp.grad.numpy(), rtol=1e-4, atol=1e-6)
    # Clamped entries have gradients of order 1/eps^2: compare relatively.
    _close(gv, tv.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_gaussian_nll_hand_values():
    # 0.5 (log 1 + 4 / 1) = 2; 0.5 (log 4 + 4 / 4) ; full adds 0.5 log(2 pi).
    p, t, v = jnp.array([2.0, 2.0]), jnp.zeros(2), jnp.array([1.0, 4.0])
    _close(jaxloss.gaussian_nll_loss(p, t, v, reduction="none"), [2.0, 0.5 * (math.log(4.0) + 1.0)])
    _close(jaxloss.gaussian_nll_loss(p, t, v, full=True, reduction="none"),
           [2.0 + 0.5 * math.log(2 * math.pi), 0.5 * (math.log(4.0) + 1.0) + 0.5 * math.log(2 * math.pi)])


# ============================================================== Keras 3 refs
# Keras loss functions average over the last axis: compare with our elementwise
# values averaged over the last axis.
_KERAS = {
    # our name: (keras.losses function name, inputs maker)
    "squared_error": "mean_squared_error",
    "absolute_error": "mean_absolute_error",
    "absolute_percentage_error": "mean_absolute_percentage_error",
    "squared_log_error": "mean_squared_logarithmic_error",
    "poisson_loss": "poisson",
    "huber_loss": "huber",
    "log_cosh": "log_cosh",
}


def _keras_inputs(name, rng):
    shape = (5, 4)
    if name == "absolute_percentage_error":
        t = np.where(rng.uniform(size=shape) < 0.5, -1.0, 1.0) * rng.uniform(0.5, 3.0, size=shape)
        t[0, 0] = 0.0  # the epsilon floor of the denominator
        return (t + rng.normal(size=shape)).astype(np.float32), t.astype(np.float32)
    if name == "squared_log_error":
        p = rng.uniform(0.0, 4.0, size=shape)
        p[0, :2] = [-0.5, 0.0]  # clipped to epsilon
        return p.astype(np.float32), rng.uniform(0.0, 4.0, size=shape).astype(np.float32)
    if name == "poisson_loss":
        return (rng.uniform(0.1, 4.0, size=shape).astype(np.float32),
                rng.integers(0, 6, size=shape).astype(np.float32))
    if name == "huber_loss":
        return _huber_residuals(rng, shape)
    return rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("name", sorted(_KERAS))
def test_matches_keras(name):
    # Reference: keras.losses.<function> (Keras 3, JAX backend); Keras averages the last axis.
    keras = _keras()
    p, t = _keras_inputs(name, _rng(7))
    expected = getattr(keras.losses, _KERAS[name])(t, p)  # Keras order: (y_true, y_pred)
    ours = jaxloss.get(name)(p, t, reduction="none")
    _close(jnp.mean(ours, axis=-1), np.asarray(expected), rtol=1e-5, atol=1e-5)
    _close(jaxloss.get(name)(p, t), np.mean(np.asarray(expected)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("delta", [0.5, 2.0])
def test_huber_matches_keras_class_with_delta_and_sample_weight(delta):
    # Reference: keras.losses.Huber(delta)(y_true, y_pred, sample_weight): per-sample means
    # over the last axis, times sample_weight, summed over the batch / batch size.
    keras = _keras()
    rng = _rng(8)
    p, t = _huber_residuals(rng, (6, 3), delta=delta)
    sw = rng.uniform(0.5, 2.0, size=(6,)).astype(np.float32)
    expected = keras.losses.Huber(delta=delta)(t, p, sample_weight=sw)
    per_sample = jnp.mean(jaxloss.huber_loss(p, t, delta=delta, reduction="none"), axis=-1)
    _close(jaxloss.reduce(per_sample, weights=jnp.asarray(sw), reduction="sum") / 6, np.asarray(expected),
           rtol=1e-5, atol=1e-6)


def test_keras_aliases_resolve():
    # Keras string identifiers resolve where Keras's call loss(y_true, y_pred) gives the same number (the
    # loss is symmetric in its two arguments); "mape" and "poisson" are not symmetric and are refused.
    for alias, name in [("mse", "squared_error"), ("mae", "absolute_error"), ("msle", "squared_log_error"),
                        ("huber", "huber_loss"), ("log_cosh", "log_cosh")]:
        assert jaxloss.get(alias) is getattr(jaxloss, name)
    for alias in ("mape", "poisson"):
        with pytest.raises(ValueError, match=r"jaxloss\.get: name .*jaxloss\.keras\.get"):
            jaxloss.get(alias)


# ================================================================ optax refs
@pytest.mark.parametrize("name", ["squared_error", "l2_loss", "huber_loss", "log_cosh"])
def test_matches_optax(name):
    # Reference: optax.losses.<name> (elementwise).
    rng = _rng(9)
    p, t = _huber_residuals(rng) if name == "huber_loss" else (rng.normal(size=(5, 4)).astype(np.float32),
                                                                rng.normal(size=(5, 4)).astype(np.float32))
    expected = getattr(optax.losses, name)(p, t)
    _close(jaxloss.get(name)(p, t, reduction="none"), expected)
    _close(jaxloss.get(name)(p, t), jnp.mean(expected))


@pytest.mark.parametrize("delta", [0.3, 1.0, 2.5])
def test_huber_matches_optax_delta(delta):
    # Reference: optax.losses.huber_loss(predictions, targets, delta).
    p, t = _huber_residuals(_rng(10), delta=delta)
    _close(jaxloss.huber_loss(p, t, delta=delta, reduction="none"), optax.losses.huber_loss(p, t, delta=delta))


def test_log_cosh_large_residual_is_finite():
    # log cosh(r) = |r| - log 2 + log(1 + exp(-2|r|)); cosh(100) overflows float32.
    p = jnp.array([100.0, -100.0, 0.0])
    values = jaxloss.log_cosh(p, jnp.zeros(3), reduction="none")
    _close(values, [100.0 - math.log(2.0), 100.0 - math.log(2.0), 0.0], rtol=1e-6)
    g = jax.grad(lambda x: jaxloss.log_cosh(x, jnp.zeros(3), reduction="sum"))(p)
    _close(g, [1.0, -1.0, 0.0], atol=1e-6)  # d/dr log cosh r = tanh r


# ========================================================== closed forms
@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_quantile_loss_pinball_closed_form(q):
    # Reference: Koenker and Bassett 1978, rho_q(r) = r (q - 1[r < 0]), r = y - yhat.
    rng = _rng(11)
    p = rng.normal(size=(5, 4)).astype(np.float32)
    t = rng.normal(size=(5, 4)).astype(np.float32)
    r = t.astype(np.float64) - p
    expected = r * (q - (r < 0))
    _close(jaxloss.quantile_loss(p, t, quantile=q, reduction="none"), expected)
    _close(jaxloss.quantile_loss(p, t, quantile=q), expected.mean())


def test_quantile_loss_hand_values_and_median():
    # q = 0.25: under-prediction by 2 costs 0.25 * 2, over-prediction by 2 costs 0.75 * 2.
    values = jaxloss.quantile_loss(jnp.zeros(2), jnp.array([2.0, -2.0]), quantile=0.25, reduction="none")
    _close(values, [0.25 * 2.0, (1 - 0.25) * 2.0])
    # q = 0.5 is half the absolute error.
    rng = _rng(12)
    p, t = rng.normal(size=8).astype(np.float32), rng.normal(size=8).astype(np.float32)
    _close(jaxloss.quantile_loss(p, t, quantile=0.5, reduction="none"), 0.5 * np.abs(p - t))


def test_quantile_loss_is_minimised_by_the_empirical_quantile():
    # Koenker and Bassett 1978: the mean pinball loss over a sample is minimised at its
    # q-th order statistic y_(ceil(q n)) when q n is not an integer.
    rng = _rng(13)
    y = np.sort(rng.normal(size=101)).astype(np.float32)
    q = 0.3
    candidates = y[:, None] * np.ones((1, y.size), np.float32)  # [candidate, sample]
    targets = np.broadcast_to(y[None, :], candidates.shape)
    means = jnp.mean(jaxloss.quantile_loss(candidates, targets, quantile=q, reduction="none"), axis=1)
    assert int(jnp.argmin(means)) == math.ceil(q * y.size) - 1


def test_quantile_loss_array_of_quantiles_broadcasts():
    # Several quantiles at once: quantile [3] broadcasts over predictions [4, 3].
    rng = _rng(14)
    p, t = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    qs = np.array([0.1, 0.5, 0.9], np.float32)
    values = jaxloss.quantile_loss(p, t, quantile=qs, reduction="none")
    for j, q in enumerate(qs):
        _close(values[:, j], jaxloss.quantile_loss(p[:, j], t[:, j], quantile=float(q), reduction="none"))


@pytest.mark.parametrize("name,p,t,kwargs,expected", [
    ("squared_error", [1.0, 3.0], [0.0, 1.0], {}, [1.0, 2.0 ** 2]),
    ("l2_loss", [2.0, -1.0], [0.0, 0.0], {}, [0.5 * 2.0 ** 2, 0.5 * 1.0]),
    ("absolute_error", [1.0, -3.0], [0.0, 0.5], {}, [1.0, 3.5]),
    ("huber_loss", [0.5, 3.0], [0.0, 0.0], {"delta": 1.0}, [0.5 * 0.5 ** 2, 1.0 * (3.0 - 0.5 * 1.0)]),
    ("huber_loss", [1.0, -4.0], [0.0, 0.0], {"delta": 2.0}, [0.5 * 1.0, 2.0 * (4.0 - 0.5 * 2.0)]),
    ("log_cosh", [1.0, -2.0], [0.0, 0.0], {}, [math.log(math.cosh(1.0)), math.log(math.cosh(2.0))]),
    ("absolute_percentage_error", [110.0, 45.0], [100.0, -50.0], {}, [100.0 * 10.0 / 100.0, 100.0 * 95.0 / 50.0]),
    ("absolute_percentage_error", [0.5], [0.0], {"epsilon": 0.1}, [100.0 * 0.5 / 0.1]),
    ("squared_log_error", [math.e - 1.0, 3.0], [0.0, 1.0], {},
     [(1.0 - math.log1p(1e-7)) ** 2, (math.log(4.0) - math.log(2.0)) ** 2]),
    ("poisson_loss", [1.0, math.e], [2.0, 1.0], {},
     [1.0 - 2.0 * math.log(1.0 + 1e-7), math.e - math.log(math.e + 1e-7)]),
])
def test_hand_values(name, p, t, kwargs, expected):
    # Closed forms from each loss's defining formula (Keras/optax docs).
    _close(jaxloss.get(name)(jnp.array(p), jnp.array(t), reduction="none", **kwargs), expected, rtol=1e-6)


# ================================================================== errors
@pytest.mark.parametrize("name,kwargs,argument", [
    ("huber_loss", {"delta": -1.0}, "delta"),
    ("smooth_l1_loss", {"beta": -0.5}, "beta"),
    ("quantile_loss", {"quantile": 1.5}, "quantile"),
    ("quantile_loss", {"quantile": -0.1}, "quantile"),
    ("quantile_loss", {"quantile": np.array([0.2, 1.2])}, "quantile"),
    ("absolute_percentage_error", {"epsilon": 0.0}, "epsilon"),
    ("squared_log_error", {"epsilon": -1e-7}, "epsilon"),
    ("poisson_loss", {"epsilon": 0.0}, "epsilon"),
    ("poisson_nll_loss", {"epsilon": 0.0}, "epsilon"),
    ("gaussian_nll_loss", {"epsilon": -1.0}, "epsilon"),
    ("huber_loss", {"delta": float("nan")}, "delta"),
])
def test_bad_hyper_parameters_raise_value_error(name, kwargs, argument):
    # docs/conventions.md: concrete bad hyper-parameters raise ValueError naming function and argument.
    args = _args(name, _rng(0))
    with pytest.raises(ValueError, match=rf"jaxloss\.{name}: {argument} must be"):
        jaxloss.get(name)(*args, **kwargs)


@pytest.mark.parametrize("name", REGRESSION)
@pytest.mark.parametrize("reduction", ["average", "MEAN", None])
def test_unknown_reduction_raises(name, reduction):
    args = _args(name, _rng(0))
    with pytest.raises(ValueError, match=rf"jaxloss\.{name}: reduction must be one of 'none', 'sum', 'mean'"):
        jaxloss.get(name)(*args, reduction=reduction)


def test_bad_flags_raise():
    p, t = jnp.zeros(3), jnp.ones(3)
    with pytest.raises(ValueError, match=r"jaxloss\.poisson_nll_loss: log_input must be one of"):
        jaxloss.poisson_nll_loss(p, t, log_input="yes")
    with pytest.raises(ValueError, match=r"jaxloss\.gaussian_nll_loss: full must be one of"):
        jaxloss.gaussian_nll_loss(p, t, jnp.ones(3), full="yes")


def test_shape_mismatch_message():
    # docs/conventions.md, verbatim example.
    with pytest.raises(ValueError, match=r"jaxloss\.huber_loss: predictions \(4,\) and targets \(4, 1\) "
                                         r"must have the same shape"):
        jaxloss.huber_loss(jnp.zeros(4), jnp.zeros((4, 1)))


@pytest.mark.parametrize("name", REGRESSION)
def test_shape_mismatch_raises_for_every_argument(name):
    args = _args(name, _rng(0))
    names = ["predictions", "targets", "variance"][: len(args)]
    for i, arg_name in enumerate(names[1:], start=1):
        bad = list(args)
        bad[i] = bad[i][..., None]
        with pytest.raises(ValueError, match=rf"jaxloss\.{name}: predictions \(6, 3\) and {arg_name} \(6, 3, 1\) "
                                             r"must have the same shape"):
            jaxloss.get(name)(*bad, **_kwargs(name))


@pytest.mark.parametrize("name", REGRESSION)
def test_integer_predictions_raise_type_error(name):
    args = list(_args(name, _rng(0)))
    args[0] = np.arange(args[0].size).reshape(args[0].shape).astype(np.int32)
    with pytest.raises(TypeError, match=rf"jaxloss\.{name}: predictions must have a floating dtype"):
        jaxloss.get(name)(*args, **_kwargs(name))


def test_integer_variance_raises_type_error():
    with pytest.raises(TypeError, match=r"jaxloss\.gaussian_nll_loss: variance must have a floating dtype"):
        jaxloss.gaussian_nll_loss(jnp.zeros(3), jnp.zeros(3), jnp.ones(3, jnp.int32))


def test_integer_targets_are_accepted():
    # Targets may be any real dtype (counts, class-valued regressands).
    _close(jaxloss.squared_error(jnp.array([1.0, 2.0]), jnp.array([1, 0], jnp.int32)), (0.0 + 4.0) / 2)
    _close(jaxloss.poisson_nll_loss(jnp.array([0.0]), jnp.array([3], jnp.int32)), 1.0)


@pytest.mark.parametrize("kwargs,pattern", [
    ({"weights": jnp.ones(3)}, r"jaxloss\.huber_loss: weights must broadcast to the unreduced loss shape \(4,\)"),
    ({"where": jnp.ones(4)}, r"jaxloss\.huber_loss: where must be a boolean mask"),
    ({"weights": jnp.ones(4, jnp.int32)}, r"jaxloss\.huber_loss: weights must have a floating dtype"),
])
def test_bad_weights_and_where(kwargs, pattern):
    exc = ValueError if "broadcast" in pattern else TypeError
    with pytest.raises(exc, match=pattern):
        jaxloss.huber_loss(jnp.zeros(4), jnp.ones(4), **kwargs)


# ======================================================= traced hyper-params
def test_traced_delta_under_jit():
    # docs/conventions.md: jax.jit(huber_loss)(p, t, delta=1.0) traces delta and works.
    p, t = _huber_residuals(_rng(15))
    jitted = jax.jit(jaxloss.huber_loss)(p, t, delta=1.0)
    _close(jitted, jaxloss.huber_loss(p, t, delta=1.0))
    _close(jax.jit(jaxloss.huber_loss)(p, t, delta=2.0), jaxloss.huber_loss(p, t, delta=2.0))


@pytest.mark.parametrize("name,kwarg,value", [
    ("huber_loss", "delta", 1.5), ("smooth_l1_loss", "beta", 0.8), ("quantile_loss", "quantile", 0.3),
    ("absolute_percentage_error", "epsilon", 1e-3), ("squared_log_error", "epsilon", 1e-3),
    ("poisson_loss", "epsilon", 1e-3), ("poisson_nll_loss", "epsilon", 1e-3), ("gaussian_nll_loss", "epsilon", 1e-3),
])
def test_traced_hyper_parameter_equals_python_float(name, kwarg, value):
    args = _args(name, _rng(16))
    fn = jaxloss.get(name)
    kwargs = {**_kwargs(name), kwarg: value}
    traced = jax.jit(lambda a, h: fn(*a, **{**kwargs, kwarg: h}))(args, jnp.float32(value))
    _close(traced, fn(*args, **kwargs))


def test_learned_delta_has_the_huber_gradient():
    # d/d delta of delta (|r| - delta / 2) is |r| - delta; of r^2 / 2 it is 0.
    r = jnp.array([0.5, 3.0, -4.0])
    g = jax.grad(lambda d: jaxloss.huber_loss(r, jnp.zeros(3), delta=d, reduction="sum"))(jnp.float32(1.0))
    _close(g, (3.0 - 1.0) + (4.0 - 1.0))
    q = jax.grad(lambda q: jaxloss.quantile_loss(jnp.zeros(2), jnp.array([2.0, -1.0]), quantile=q,
                                                 reduction="sum"))(jnp.float32(0.3))
    _close(q, 2.0 + (-1.0))  # d/dq max(q r, (q - 1) r) = r


# ================================================================ edge cases
@pytest.mark.parametrize("name", REGRESSION)
def test_nan_at_masked_positions_contributes_exactly_zero(name):
    # docs/conventions.md: double-where; masked inf/NaN inputs give exactly 0 value and gradient.
    args = [np.array(a) for a in _args(name, _rng(17))]
    kwargs = _kwargs(name)
    where = np.ones(args[0].shape, bool)
    where[1, :] = False
    where[3, 2] = False
    clean = jaxloss.get(name)(*args, reduction="none", **kwargs)
    for a in args:
        a[~where] = np.nan
    args[0][1, 0] = np.inf
    fn = jaxloss.get(name)
    none = fn(*args, reduction="none", where=where, **kwargs)
    assert np.all(np.asarray(none)[~where] == 0.0)
    _close(np.asarray(none)[where], np.asarray(clean)[where])
    for reduction in ("sum", "mean"):
        value = fn(*args, reduction=reduction, where=where, **kwargs)
        expected = np.asarray(clean)[where].sum() / (where.sum() if reduction == "mean" else 1)
        _close(value, expected, rtol=1e-5, atol=1e-5)
    grads = jax.grad(lambda *a: fn(*a, where=where, **kwargs), argnums=tuple(range(len(args))))(*args)
    for g in grads:
        g = np.asarray(g)
        assert np.all(np.isfinite(g))
        assert np.all(g[~where] == 0.0)


@pytest.mark.parametrize("name", REGRESSION)
def test_bfloat16_in_float32_out(name):
    # docs/conventions.md: 16-bit inputs compute and return float32; gradients in the input dtype.
    # Result dtypes are fixed when the loss is traced: jax.eval_shape answers without compiling.
    args = tuple(jnp.asarray(a, jnp.bfloat16) for a in _args(name, _rng(18)))
    fn = jaxloss.get(name)
    for reduction in ("none", "sum", "mean"):
        assert jax.eval_shape(lambda *a, r=reduction: fn(*a, reduction=r, **_kwargs(name)), *args).dtype == jnp.float32
    g = jax.eval_shape(jax.grad(lambda x: fn(x, *args[1:], **_kwargs(name))), args[0])
    assert g.dtype == jnp.bfloat16
    # The float32 result equals the float32 computation on the bfloat16-rounded inputs.
    f32 = tuple(jnp.asarray(a, jnp.float32) for a in args)
    _close(fn(*args, **_kwargs(name)), fn(*f32, **_kwargs(name)))


@pytest.mark.parametrize("name", REGRESSION)
def test_float64_kept_under_x64(name):
    # Result dtypes are fixed when the loss is traced: jax.eval_shape answers without compiling.
    with jax.enable_x64(True):
        args = tuple(jnp.asarray(a, jnp.float64) for a in regression_specs.SPECS[name].make_args(_rng(19)))
        fn = jaxloss.get(name)
        assert jax.eval_shape(lambda *a: fn(*a, **_kwargs(name)), *args).dtype == jnp.float64
        assert jax.eval_shape(lambda *a: fn(*a, reduction="none", **_kwargs(name)), *args).dtype == jnp.float64
        assert jax.eval_shape(jax.grad(lambda x: fn(x, *args[1:], **_kwargs(name))), args[0]).dtype == jnp.float64


@pytest.mark.parametrize("name", REGRESSION)
def test_identical_inputs_have_finite_zero_residual_gradient(name):
    # docs/conventions.md: identical inputs (zero residual) give finite values and gradients.
    args = list(_args(name, _rng(20)))
    args[1] = args[0].copy()
    fn = jaxloss.get(name)
    grads = jax.grad(lambda *a: fn(*a, **_kwargs(name)), argnums=tuple(range(len(args))))(*args)
    assert np.isfinite(float(fn(*args, **_kwargs(name))))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)
