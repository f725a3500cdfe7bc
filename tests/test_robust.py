"""Reference tests for ``jaxloss.robust``.

References: Barron, "A General and Adaptive Robust Loss Function", CVPR 2019,
https://arxiv.org/abs/1701.03077 (equation 1 for rho, the special cases of
section 2, psi = d rho / d x, the density and its partition function of
section 3); Kendall, Gal and Cipolla, CVPR 2018, https://arxiv.org/abs/1705.07115
(the uncertainty weighting). Expected values are the paper's closed forms in
NumPy, its formula transcribed in float64, and ``scipy.integrate.quad``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from jaxloss.robust import adaptive_robust_nll, general_robust_loss, uncertainty_weighted_sum
from jaxloss.testing import check_loss

# The alpha-dependent checks of check_loss (reduction/where/shape rules do not
# depend on alpha and run once in tests/test_invariants.py).
ALPHA_CHECKS = ["call", "jit", "trace", "vmap", "grad", "edge", "dtype"]


# Compiled programs shared by the tests: alpha and scale are traced arguments, so
# one program per input shape and dtype serves every alpha (the loss has no
# Python branch on their values; a concrete alpha only adds the trace-time
# checks, which tests of their own cover). Compiling a program per alpha, or
# running the loss op by op, was most of this file's time.
def _general_none(x, alpha, scale):
    return general_robust_loss(x, alpha=alpha, scale=scale, reduction="none")


def _general_sum(x, alpha, scale):
    return general_robust_loss(x, alpha=alpha, scale=scale, reduction="sum")


def _nll_none(x, alpha, scale):
    return adaptive_robust_nll(x, alpha=alpha, scale=scale, reduction="none")


_RHO = jax.jit(_general_none)
_PSI = jax.jit(jax.vmap(jax.grad(_general_sum), in_axes=(0, None, None)))   # d rho / d x, one residual at a time
_D_ALPHA = jax.jit(jax.jacfwd(_general_none, argnums=1))                     # forward mode
_D_SCALE = jax.jit(jax.jacrev(_general_none, argnums=2))                     # reverse mode
_PARTS = jax.jit(lambda x, a, s: (_general_sum(x, a, s), jax.grad(_general_sum, argnums=(0, 1, 2))(x, a, s)))
_NLL = jax.jit(_nll_none)
_NLL_DENSITY = jax.jit(lambda x, a, s: jnp.exp(-adaptive_robust_nll(x[None], alpha=a, scale=s, reduction="sum")))
_NLL_D_ALPHA = jax.jit(jax.grad(lambda a, x: adaptive_robust_nll(x, alpha=a, scale=1.0, reduction="sum")))


# ------------------------------------------------------------------ references
def rho_closed_form(x, alpha, c):
    """Barron section 2: the named special cases of rho."""
    z = np.square(np.asarray(x, np.float64) / c)
    forms = {
        2.0: lambda: 0.5 * z,                                  # L2
        1.0: lambda: np.sqrt(z + 1.0) - 1.0,                   # pseudo-Huber / Charbonnier
        0.0: lambda: np.log(0.5 * z + 1.0),                    # Cauchy / Lorentzian
        -2.0: lambda: 2.0 * z / (z + 4.0),                     # Geman-McClure
        -np.inf: lambda: 1.0 - np.exp(-0.5 * z),               # Welsch / Leclerc
        np.inf: lambda: np.exp(0.5 * z) - 1.0,
    }
    return forms[alpha]()


def rho_formula(x, alpha, c):
    """Barron equation 1 in float64 (alpha not in {0, 2, +-inf}).

    ``(1 + z/b)^(alpha/2) - 1`` is written ``expm1(alpha/2 * log1p(z/b))`` so
    the reference keeps full precision for small alpha.
    """
    z = np.square(np.asarray(x, np.float64) / c)
    b = abs(alpha - 2.0)
    return b / alpha * np.expm1(0.5 * alpha * np.log1p(z / b))


def psi_formula(x, alpha, c):
    """Barron's derivative d rho / d x = x / c^2 ((x/c)^2 / |alpha - 2| + 1)^(alpha/2 - 1)."""
    x = np.asarray(x, np.float64)
    b = abs(alpha - 2.0)
    return x / c**2 * ((x / c) ** 2 / b + 1.0) ** (alpha / 2.0 - 1.0)


def _density_formula(x, alpha):
    """exp(-rho(x, alpha, 1)) by Barron equation 1 for one Python float (``rho_formula`` with ``math``:
    quad calls it thousands of times, and NumPy's per-call overhead on scalars dominated)."""
    b = abs(alpha - 2.0)
    t = 0.5 * alpha * math.log1p(x * x / b)
    return 0.0 if t > 700.0 else math.exp(-b / alpha * math.expm1(t))


def log_partition_quad(alpha):
    """log of the integral of exp(-rho(x, alpha, 1)) over the real line, by quadrature."""
    if alpha == 2.0:
        f = lambda x: math.exp(-0.5 * x * x)  # noqa: E731
    elif alpha == 0.0:
        f = lambda x: 1.0 / (0.5 * x * x + 1.0)  # noqa: E731
    else:
        f = lambda x: _density_formula(x, alpha)  # noqa: E731
    head = integrate.quad(f, 0.0, 1.0, epsabs=0.0, epsrel=1e-12, limit=200)[0]
    tail = integrate.quad(f, 1.0, np.inf, epsabs=0.0, epsrel=1e-12, limit=200)[0]
    return math.log(2.0 * (head + tail))


def rho(x, alpha, c=1.0):
    return np.asarray(_RHO(x, float(alpha), float(c)), np.float64)


X = np.linspace(-6.0, 6.0, 49)


# ------------------------------------------------------------ special cases
@pytest.mark.parametrize("alpha", [2.0, 1.0, 0.0, -2.0, -np.inf, np.inf])
@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_special_cases_match_closed_forms(alpha, scale):
    """Barron section 2: alpha = 2, 1, 0, -2, -inf, +inf are L2, Charbonnier, Cauchy, Geman-McClure, Welsch."""
    x = X if alpha != np.inf else X / 2.0  # keep exp(z / 2) moderate
    expect = rho_closed_form(x, alpha, scale)
    np.testing.assert_allclose(rho(jnp.asarray(x, jnp.float32), alpha, scale), expect, rtol=2e-6, atol=1e-7)
    with jax.enable_x64(True):
        np.testing.assert_allclose(rho(jnp.asarray(x, jnp.float64), alpha, scale), expect, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("alpha", [-50.0, -7.0, -1.0, -0.3, 1e-3, 0.5, 1.5, 1.8, 1.95, 2.05, 2.5, 3.0, 4.0])
def test_general_formula_float64(alpha):
    """Barron equation 1 in float64, residuals up to 10 scales."""
    x = np.linspace(-10.0, 10.0, 81) if alpha <= 2.5 else np.linspace(-4.0, 4.0, 81)
    with jax.enable_x64(True):
        got = rho(jnp.asarray(x, jnp.float64), alpha, 1.7)
    np.testing.assert_allclose(got, rho_formula(x, alpha, 1.7), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("alpha", [-np.inf, -2.0, 0.0, 1e-5, 1.0, 1.5, 2.0 - 1e-4, 2.0, 2.5, 3.0])
def test_gradient_wrt_residuals_is_psi(alpha):
    """d rho / d x equals Barron's psi (limits at alpha = 2, 0, -inf: x/c^2 e^{-z/2} etc.)."""
    c = 1.4
    x = np.linspace(-5.0, 5.0, 41)
    if alpha == -np.inf:
        expect = x / c**2 * np.exp(-0.5 * (x / c) ** 2)
    elif alpha == 2.0:
        expect = x / c**2
    else:
        expect = psi_formula(x, alpha, c)
    with jax.enable_x64(True):
        got = _PSI(jnp.asarray(x, jnp.float64), alpha, c)
    np.testing.assert_allclose(got, expect, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("alpha", [-5.0, -2.0, -0.5, 3e-6, 0.3, 1.0, 1.7, 1.99, 2.01, 3.0])
def test_gradients_wrt_alpha_and_scale_match_finite_differences(alpha):
    """Gradients w.r.t. alpha and scale against central differences of the float64 transcription."""
    x = np.array([-3.0, -0.7, 0.2, 1.1, 4.0])
    c, h = 1.3, 1e-6
    da = (rho_formula(x, alpha + h, c) - rho_formula(x, alpha - h, c)) / (2 * h)
    dc = (rho_formula(x, alpha, c + h) - rho_formula(x, alpha, c - h)) / (2 * h)
    with jax.enable_x64(True):
        xs = jnp.asarray(x, jnp.float64)
        ga = _D_ALPHA(xs, jnp.float64(alpha), jnp.float64(c))   # jax.jacfwd
        gc = _D_SCALE(xs, jnp.float64(alpha), jnp.float64(c))   # jax.jacrev
    np.testing.assert_allclose(ga, da, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(gc, dc, rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------ paper identities
@pytest.mark.parametrize("alpha", [-np.inf, -1e6, -2.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0])
def test_monotonic_in_abs_residual_and_zero_at_zero(alpha):
    """rho(0) = 0, rho >= 0, and rho increases with |x| (Barron section 2)."""
    x = np.linspace(0.0, 8.0, 161)
    values = rho(jnp.asarray(x, jnp.float32), alpha)
    assert values[0] == 0.0
    assert np.all(np.diff(values) >= 0.0)
    np.testing.assert_array_equal(values, rho(jnp.asarray(-x, jnp.float32), alpha))  # even in x


@pytest.mark.parametrize("alpha", [-np.inf, -1e6, -8.0, -2.0, -0.5, -1e-3])
def test_bounded_for_negative_alpha(alpha):
    """For alpha < 0, rho < |alpha - 2| / |alpha| (the limit as |x| -> inf); 1 for alpha = -inf."""
    bound = 1.0 if np.isinf(alpha) else abs(alpha - 2.0) / abs(alpha)
    with jax.enable_x64(True):
        values = rho(jnp.asarray(np.geomspace(1e-3, 1e30, 200)), alpha)
    assert np.all(values <= bound * (1 + 1e-12))
    if alpha <= -0.5:
        np.testing.assert_allclose(values[-1], bound, rtol=1e-6)


def test_monotonic_in_alpha():
    """rho is increasing in alpha at every x (Barron section 2)."""
    alphas = np.concatenate([[-np.inf, -1e4], np.linspace(-10.0, 4.0, 141)])
    with jax.enable_x64(True):
        x = jnp.asarray([0.1, 0.5, 1.0, 2.0, 5.0], jnp.float64)
        table = np.stack([rho(x, a) for a in alphas])
    assert np.all(np.diff(table, axis=0) >= -1e-15 * table[1:])


def test_very_negative_alpha_approaches_welsch():
    x = np.linspace(-4.0, 4.0, 17)
    welsch = rho_closed_form(x, -np.inf, 1.0)
    for alpha, tol in [(-1e4, 1e-3), (-1e6, 1e-5), (-1e30, 1e-6)]:
        np.testing.assert_allclose(rho(jnp.asarray(x, jnp.float32), alpha), welsch, atol=tol)


# ------------------------------------------------------------ continuity
@pytest.mark.parametrize("point", [0.0, 2.0])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_continuous_across_zero_and_two(point, dtype):
    """Value and gradients (w.r.t. x, alpha, scale) at alpha and alpha +- 1e-4 / 1e-6 agree: no 0/0."""
    with jax.enable_x64(dtype == jnp.float64):
        x = jnp.asarray([-3.0, -0.4, 0.0, 0.9, 2.5], dtype)

        def parts(alpha):
            value, grads = _PARTS(x, jnp.asarray(alpha, dtype), jnp.asarray(1.2, dtype))
            return [np.asarray(value, np.float64)] + [np.asarray(g, np.float64) for g in grads]

        at = parts(point)
        assert all(np.all(np.isfinite(p)) for p in at)
        for delta in (1e-4, -1e-4, 1e-6, -1e-6):
            near = parts(point + delta)
            assert all(np.all(np.isfinite(p)) for p in near)
            # the value moves by at most |delta| times the (finite) alpha-gradient
            slope = max(abs(float(at[2])), abs(float(near[2])))
            np.testing.assert_allclose(near[0], at[0], rtol=0, atol=2 * abs(delta) * slope + 2e-6)
            # d/dx and d/dscale: their alpha-derivative is at most logarithmic at 2
            for i in (1, 3):
                np.testing.assert_allclose(near[i], at[i], rtol=0, atol=100 * abs(delta) + 2e-6)
            if point == 0.0:  # rho is smooth in alpha at 0: the alpha-gradient is continuous
                np.testing.assert_allclose(near[2], at[2], rtol=0, atol=20 * abs(delta) + 2e-6)
        if point == 2.0:
            # At 2 the exact d rho / d alpha diverges like -(z/4) log|alpha - 2| (Barron's |alpha - 2|);
            # both sides agree with each other and with that asymptote, and stay finite at 2.
            above, below = parts(2.0 + 1e-4)[2], parts(2.0 - 1e-4)[2]
            np.testing.assert_allclose(above, below, rtol=2e-3)
            z = float(jnp.sum(jnp.square(x / 1.2)))
            zlogz = float(jnp.sum(jax.scipy.special.xlogy(jnp.square(x / 1.2), jnp.square(x / 1.2))))
            asymptote = 0.25 * (zlogz - 2.0 * z - z * math.log(1e-4))
            np.testing.assert_allclose(0.5 * (above + below), asymptote, rtol=2e-3)
            assert at[2] > above  # the capped gradient at exactly 2 continues the growth


# ------------------------------------------------------------ contract variants
VARIANTS = [0.0, 1e-6, -1e-6, 2.0, 2.0 - 1e-4, 2.0 + 1e-4, 1.0, -2.0, -1e6, -np.inf, np.inf, 3.5]


NLL_VARIANTS = [0.0, 1e-4, 2.0 - 1e-4, 2.0, 2.0 + 1e-4, 4.0]

# Every alpha variant goes through check_loss in one call: a block of output
# columns per variant (alpha is an array broadcast over the batch, Barron's
# per-dimension setting), so the checks compile once instead of once per alpha.
# Both losses use one 6 x 36 example, so they also share the op-by-op programs
# of the "jit" check. Each check is elementwise except the finite-difference
# one, which compares one random directional derivative of the mean over all
# columns: a wrong gradient in one variant moves it at most 12 times less than
# in a 6 x 3 example of that variant alone (the 12 blocks of 6 x 3), so its
# tolerance is 12 times tighter than the default 1e-4 (float64 differences are
# good to about 1e-9 here).
_COLUMNS = 36


def test_check_loss_general_alpha_variants_and_array_scale():
    """Every alpha variant passes the alpha-dependent checks, with one alpha and one scale per output
    dimension broadcast over the batch (Barron's adaptive setting): scales 0.5, 1.3 and 2.0 per variant."""
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.5, (6, _COLUMNS))
    alpha = np.repeat(np.asarray(VARIANTS), _COLUMNS // len(VARIANTS))
    scale = np.tile([0.5, 1.3, 2.0], len(VARIANTS))
    check_loss(general_robust_loss, x, alpha=alpha, scale=scale, only=ALPHA_CHECKS, grad_tolerance=1e-4 / 12)


def test_check_loss_nll_alpha_variants():
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 1.5, (6, _COLUMNS))
    alpha = np.repeat(np.asarray(NLL_VARIANTS), _COLUMNS // len(NLL_VARIANTS))
    check_loss(adaptive_robust_nll, x, alpha=alpha, scale=0.8, only=ALPHA_CHECKS, grad_tolerance=1e-4 / 12)


_TRACED_MEAN = {
    "general": (general_robust_loss, 1.3, jax.jit(lambda x, a, s: general_robust_loss(x, alpha=a, scale=s))),
    "nll": (adaptive_robust_nll, 0.8, jax.jit(lambda x, a, s: adaptive_robust_nll(x, alpha=a, scale=s))),
}


@pytest.mark.parametrize("loss,alpha", [("general", a) for a in VARIANTS] + [("nll", a) for a in NLL_VARIANTS],
                         ids=[f"general-{a!r}" for a in VARIANTS] + [f"nll-{a!r}" for a in NLL_VARIANTS])
def test_traced_scalar_alpha_and_scale_equal_python_floats(loss, alpha):
    """check_loss's "trace" check per alpha variant: traced scalar alpha and scale give the value of Python floats."""
    fn, scale, traced = _TRACED_MEAN[loss]
    x = np.random.default_rng(3).normal(0.0, 1.5, (6, _COLUMNS)).astype(np.float32)
    eager = fn(x, alpha=alpha, scale=scale)   # Python floats, op by op
    np.testing.assert_allclose(traced(x, jnp.float32(alpha), jnp.float32(scale)), eager, rtol=1e-5, atol=1e-6)


def test_masked_hyper_parameters_do_not_leak():
    """A NaN alpha or scale at a masked position gives exactly 0 value and gradient there."""
    x = jnp.asarray([0.5, -1.0, 2.0])
    alpha = jnp.asarray([1.0, 0.0, jnp.nan])
    scale = jnp.asarray([1.0, 2.0, jnp.nan])
    where = jnp.asarray([True, True, False])
    # traced: a concrete NaN alpha is rejected as a bad hyper-parameter
    f = jax.jit(lambda a, s: general_robust_loss(x, alpha=a, scale=s, where=where))
    value = f(alpha, scale)
    np.testing.assert_allclose(value, np.mean(rho_closed_form([0.5], 1.0, 1.0).tolist()
                                              + rho_closed_form([-1.0], 0.0, 2.0).tolist()), rtol=1e-6)
    ga, gs = jax.grad(f, argnums=(0, 1))(alpha, scale)
    assert np.all(np.isfinite(ga)) and np.all(np.isfinite(gs)) and ga[2] == 0.0 and gs[2] == 0.0


# ------------------------------------------------------------ errors
def test_errors_name_the_function_and_argument():
    x = jnp.ones(4)
    with pytest.raises(ValueError, match=r"jaxloss.general_robust_loss: scale must be > 0"):
        general_robust_loss(x, alpha=1.0, scale=0.0)
    with pytest.raises(ValueError, match=r"jaxloss.general_robust_loss: alpha must broadcast"):
        general_robust_loss(x, alpha=jnp.ones(3), scale=1.0)
    with pytest.raises(ValueError, match=r"jaxloss.general_robust_loss: alpha"):
        general_robust_loss(x, alpha=float("nan"), scale=1.0)
    with pytest.raises(TypeError, match=r"jaxloss.general_robust_loss: residuals"):
        general_robust_loss(jnp.ones(4, jnp.int32), alpha=1.0, scale=1.0)
    with pytest.raises(ValueError, match=r"jaxloss.adaptive_robust_nll: alpha must be >= 0.0 and <= 4.0"):
        adaptive_robust_nll(x, alpha=-0.5, scale=1.0)
    with pytest.raises(ValueError, match=r"jaxloss.adaptive_robust_nll: alpha"):
        adaptive_robust_nll(x, alpha=4.5, scale=1.0)


# ------------------------------------------------------------ log partition and NLL
def _log_z(alphas):
    """log Z(alpha) through the public NLL: at x = 0, scale = 1 it is exactly log Z (one value per alpha)."""
    with jax.enable_x64(True):
        alphas = jnp.asarray(alphas, jnp.float64)
        return np.asarray(_NLL(jnp.zeros_like(alphas), alphas, 1.0), np.float64)


def test_log_partition_matches_quadrature():
    """Barron section 3: log Z(alpha) to 1e-4 relative (1e-6 observed) over [0, 4], checked by scipy quad."""
    rng = np.random.default_rng(0)
    alphas = np.concatenate([[0.0, 1e-3, 0.5, 1.0, 2.0 - 1e-3, 2.0 - 1e-5, 2.0, 2.0 + 1e-5, 2.0 + 1e-3, 3.0, 4.0],
                             rng.uniform(0.0, 4.0, 20),
                             (np.arange(12) + 0.5) / 256.0 + 1.95])  # knot midpoints around 2
    got = _log_z(alphas)
    for alpha, log_z in zip(alphas, got):
        expect = log_partition_quad(float(alpha))
        assert abs(log_z - expect) <= 1e-6 * abs(expect), (alpha, log_z, expect)


def test_log_partition_closed_forms():
    """Z(2) = sqrt(2 pi) (Gaussian), Z(0) = pi sqrt(2) (Cauchy with scale sqrt(2))."""
    np.testing.assert_allclose(_log_z([2.0, 0.0]), [0.5 * math.log(2.0 * math.pi), math.log(math.pi * math.sqrt(2.0))],
                               rtol=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 1.9999, 2.0, 3.0, 4.0])
@pytest.mark.parametrize("scale", [0.3, 2.0])
def test_nll_is_a_normalised_density(alpha, scale):
    """The integral of exp(-nll(x)) over the real line is 1."""
    with jax.enable_x64(True):
        density = lambda x: float(_NLL_DENSITY(np.float64(x), np.float64(alpha), np.float64(scale)))  # noqa: E731
        total = 2.0 * (integrate.quad(density, 0.0, scale, epsrel=1e-10, limit=200)[0]
                       + integrate.quad(density, scale, np.inf, epsrel=1e-10, limit=200)[0])
    np.testing.assert_allclose(total, 1.0, rtol=2e-6)


def test_nll_special_cases_are_gaussian_and_cauchy():
    """alpha = 2: Normal(0, c); alpha = 0: Cauchy with scale sqrt(2) c (scipy.stats)."""
    x = np.linspace(-5.0, 5.0, 21)
    with jax.enable_x64(True):
        gauss = _NLL(jnp.asarray(x), 2.0, 1.5)
        cauchy = _NLL(jnp.asarray(x), 0.0, 1.5)
    np.testing.assert_allclose(gauss, -stats.norm.logpdf(x, scale=1.5), rtol=1e-10)
    np.testing.assert_allclose(cauchy, -stats.cauchy.logpdf(x, scale=math.sqrt(2.0) * 1.5), rtol=1e-10)


def test_nll_gradient_wrt_alpha_matches_finite_differences():
    """d nll / d alpha = d rho / d alpha + d log Z / d alpha, the latter from quadrature differences."""
    x = np.array([-2.0, 0.3, 1.5])
    for alpha in (0.3, 1.0, 1.5, 2.7, 3.6):
        h = 1e-5
        dlogz = (log_partition_quad(alpha + h) - log_partition_quad(alpha - h)) / (2 * h)
        drho = (rho_formula(x, alpha + h, 1.0) - rho_formula(x, alpha - h, 1.0)) / (2 * h)
        with jax.enable_x64(True):
            g = _NLL_D_ALPHA(jnp.float64(alpha), jnp.asarray(x))
        np.testing.assert_allclose(g, np.sum(drho) + 3 * dlogz, rtol=1e-5)


def test_nll_traced_alpha_outside_range_is_clamped_with_zero_gradient():
    x = jnp.asarray([0.5, -2.0])
    f = jax.jit(jax.value_and_grad(lambda a: adaptive_robust_nll(x, alpha=a, scale=1.0)))
    (v_below, g_below), (v_low, g_low) = f(-0.5), f(0.0)
    (v_above, g_above), (v_high, _) = f(7.0), f(4.0)
    np.testing.assert_allclose(v_below, v_low, rtol=1e-7)
    np.testing.assert_allclose(v_above, v_high, rtol=1e-7)
    assert float(g_below) == 0.0 and float(g_above) == 0.0
    assert float(g_low) != 0.0  # one-sided gradient kept at the end point


def test_nll_maximum_likelihood_recovers_the_shape():
    """Profile likelihood over alpha: Gaussian data prefers alpha near 2, Cauchy data alpha near 0."""
    rng = np.random.default_rng(0)
    alphas = np.linspace(0.0, 4.0, 21)

    @jax.jit
    def nll_grid(x, alphas, scales):
        return jax.vmap(jax.vmap(lambda a, c: adaptive_robust_nll(x, alpha=a, scale=c), (None, 0)), (0, None))(
            alphas, scales)

    def best_alpha(x):
        scales = np.geomspace(0.3, 3.0, 24)
        grid = nll_grid(x, jnp.asarray(alphas, jnp.float32), jnp.asarray(scales, jnp.float32))
        return alphas[int(np.argmin(np.min(np.asarray(grid), axis=1)))]

    assert abs(best_alpha(jnp.asarray(rng.normal(size=4000), jnp.float32)) - 2.0) <= 0.2
    assert best_alpha(jnp.asarray(rng.standard_cauchy(size=4000), jnp.float32)) <= 0.2


# ------------------------------------------------------------ uncertainty weighting
def test_uncertainty_weighted_sum_closed_form_and_gradient():
    """Kendall et al. 2018 (common form): sum_k exp(-s_k) L_k + s_k; d/ds_k = 1 - exp(-s_k) L_k."""
    losses = np.array([0.4, 2.5, 7.0])
    s = np.array([-0.3, 0.0, 1.2])
    expect = np.sum(np.exp(-s) * losses + s)
    np.testing.assert_allclose(uncertainty_weighted_sum(jnp.asarray(losses), jnp.asarray(s)), expect, rtol=1e-6)
    for reduction in ("none", "sum", "mean"):  # one [K] vector is one example: every reduction is the sum
        np.testing.assert_allclose(
            uncertainty_weighted_sum(jnp.asarray(losses), jnp.asarray(s), reduction=reduction), expect, rtol=1e-6)
    gl, gs = jax.grad(uncertainty_weighted_sum, argnums=(0, 1))(jnp.asarray(losses), jnp.asarray(s))
    np.testing.assert_allclose(gl, np.exp(-s), rtol=1e-6)
    np.testing.assert_allclose(gs, 1.0 - np.exp(-s) * losses, rtol=1e-6)
    # the optimum over s is s_k = log L_k, where the value is K + sum(log L_k)
    at_opt = uncertainty_weighted_sum(jnp.asarray(losses), jnp.log(jnp.asarray(losses)))
    np.testing.assert_allclose(at_opt, 3 + np.sum(np.log(losses)), rtol=1e-6)


def test_uncertainty_weighted_sum_paper_variants():
    """Kendall et al. eq. 7 (regression 1/(2 sigma^2) L + log sigma, classification 1/sigma^2 L + log sigma)."""
    l_reg, l_cls, s_reg, s_cls = 1.7, 0.6, 0.4, -0.2
    paper = (0.5 * np.exp(-s_reg) * l_reg + 0.5 * s_reg) + (np.exp(-s_cls) * l_cls + 0.5 * s_cls)
    ours = 0.5 * uncertainty_weighted_sum(jnp.asarray([l_reg, 2.0 * l_cls]), jnp.asarray([s_reg, s_cls]))
    np.testing.assert_allclose(ours, paper, rtol=1e-6)


def test_uncertainty_weighted_sum_batched_and_shared_log_variances():
    rng = np.random.default_rng(0)
    losses = rng.uniform(0.1, 3.0, (4, 3))
    s = rng.normal(size=3)
    none = uncertainty_weighted_sum(jnp.asarray(losses), jnp.asarray(s), reduction="none")
    np.testing.assert_allclose(none, np.sum(np.exp(-s) * losses + s, axis=-1), rtol=1e-6)
    np.testing.assert_allclose(uncertainty_weighted_sum(jnp.asarray(losses), jnp.asarray(s)), np.mean(none),
                               rtol=1e-6)
    with pytest.raises(ValueError, match=r"jaxloss.uncertainty_weighted_sum: log_variances must have the shape"):
        uncertainty_weighted_sum(jnp.asarray(losses), jnp.zeros(4))
    with pytest.raises(ValueError, match=r"jaxloss.uncertainty_weighted_sum: losses must have rank >= 1"):
        uncertainty_weighted_sum(jnp.asarray(1.0), jnp.asarray(0.0))
    with pytest.raises(TypeError, match=r"jaxloss.uncertainty_weighted_sum: log_variances"):
        uncertainty_weighted_sum(jnp.asarray(losses), jnp.zeros(3, jnp.int32))


def test_uncertainty_weighted_sum_is_registered():
    import jaxloss
    assert jaxloss.get("uncertainty_weighted_sum") is uncertainty_weighted_sum
    assert {"general_robust_loss", "adaptive_robust_nll", "uncertainty_weighted_sum"} <= set(
        jaxloss.available(tag="robust"))
