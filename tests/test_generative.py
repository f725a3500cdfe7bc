"""Reference tests for ``jaxloss.generative`` against closed forms and NumPy transcriptions."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxloss import generative
from jaxloss.testing import check_loss
from tests.jitted import jit_static


elbo_loss = jit_static(generative.elbo_loss)
gaussian_kl_divergence = jit_static(generative.gaussian_kl_divergence)
reconstruction_error = jit_static(generative.reconstruction_error)


def _np_bernoulli_nll(logits, x):
    # -[x log p + (1 - x) log(1 - p)], p = sigmoid(logits), in float64.
    p = 1.0 / (1.0 + np.exp(-logits))
    return -(x * np.log(p) + (1.0 - x) * np.log1p(-p))


@pytest.mark.parametrize("kind", ["squared", "absolute", "bernoulli"])
def test_reconstruction_error_matches_numpy(kind):
    rng = np.random.default_rng(1)
    r = rng.normal(size=(5, 4, 3))
    x = rng.uniform(size=(5, 4, 3))
    expect = {"squared": (r - x) ** 2, "absolute": np.abs(r - x),
              "bernoulli": _np_bernoulli_nll(r, x)}[kind].reshape(5, -1).sum(axis=1)
    got = reconstruction_error(jnp.asarray(r, jnp.float32), jnp.asarray(x, jnp.float32), kind=kind,
                               reduction="none")
    np.testing.assert_allclose(got, expect, rtol=1e-5)
    np.testing.assert_allclose(reconstruction_error(r.astype(np.float32), x.astype(np.float32), kind=kind),
                               expect.mean(), rtol=1e-5)


def test_bernoulli_matches_torch_bce_with_logits():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    r = rng.normal(scale=3.0, size=(3, 7))
    x = rng.uniform(size=(3, 7))
    expect = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(r), torch.tensor(x), reduction="none").sum(dim=1).numpy()
    got = reconstruction_error(r.astype(np.float32), x.astype(np.float32), kind="bernoulli", reduction="none")
    np.testing.assert_allclose(got, expect, rtol=1e-5)


def test_bernoulli_is_finite_for_huge_logits():
    r = jnp.array([[1e4, -1e4, 1e4]])
    x = jnp.array([[1.0, 0.0, 0.0]])
    value, grad = jax.jit(jax.value_and_grad(lambda r: reconstruction_error(r, x, kind="bernoulli")))(r)
    np.testing.assert_allclose(value, 1e4)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, [[0.0, 0.0, 1.0]])


@pytest.mark.parametrize("kind", ["absolute", "bernoulli"])
def test_reconstruction_error_other_kinds_keep_the_contract(kind):
    rng = np.random.default_rng(3)
    r = rng.normal(size=(4, 5))
    x = r + rng.choice([-1.0, 1.0], size=(4, 5)) * rng.uniform(0.2, 1.0, size=(4, 5))
    if kind == "bernoulli":
        x = rng.uniform(size=(4, 5))
    check_loss(generative.reconstruction_error, r, x, kind=kind)


def test_gaussian_kl_closed_form():
    # Closed form (Kingma and Welling 2014, appendix B):
    # KL = 0.5 sum(sigma^2 + mu^2 - 1 - log sigma^2).
    rng = np.random.default_rng(4)
    mean = rng.normal(size=(2, 3, 6))
    log_var = rng.normal(size=(2, 3, 6))
    expect = 0.5 * np.sum(np.exp(log_var) + mean ** 2 - 1.0 - log_var, axis=-1)
    got = gaussian_kl_divergence(mean.astype(np.float32), log_var.astype(np.float32), reduction="none")
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)


def test_gaussian_kl_matches_monte_carlo():
    # KL(q || p) = E_q[log q(z) - log p(z)], estimated with 400k samples.
    rng = np.random.default_rng(5)
    mean, log_var = np.array([0.7, -0.3]), np.array([-0.5, 0.4])
    sd = np.exp(0.5 * log_var)
    z = mean + sd * rng.normal(size=(400_000, 2))
    log_q = -0.5 * ((z - mean) / sd) ** 2 - np.log(sd) - 0.5 * math.log(2 * math.pi)
    log_p = -0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)
    mc = np.mean(np.sum(log_q - log_p, axis=1))
    got = float(gaussian_kl_divergence(mean[None].astype(np.float32), log_var[None].astype(np.float32)))
    assert abs(got - mc) < 0.01


def test_gaussian_kl_zero_at_prior_and_gradient():
    mean = jnp.zeros((3, 4))
    log_var = jnp.zeros((3, 4))
    value, (gm, gl) = jax.jit(jax.value_and_grad(gaussian_kl_divergence, argnums=(0, 1)))(mean, log_var)
    assert float(value) == 0.0
    assert np.all(np.asarray(gm) == 0) and np.all(np.asarray(gl) == 0)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_elbo_matches_numpy(likelihood):
    rng = np.random.default_rng(6)
    r = rng.normal(size=(4, 8, 8))
    x = rng.uniform(size=(4, 8, 8))
    mean = rng.normal(size=(4, 5))
    log_var = rng.normal(scale=0.3, size=(4, 5))
    if likelihood == "bernoulli":
        nll = _np_bernoulli_nll(r, x).reshape(4, -1).sum(1)
    else:
        # unit-variance Gaussian log density, summed over pixels
        nll = (0.5 * (r - x) ** 2 + 0.5 * math.log(2 * math.pi)).reshape(4, -1).sum(1)
    kl = 0.5 * np.sum(np.exp(log_var) + mean ** 2 - 1.0 - log_var, axis=-1)
    for beta in (0.0, 1.0, 4.0):
        got = elbo_loss(*(a.astype(np.float32) for a in (r, x, mean, log_var)), likelihood=likelihood,
                        beta=beta, reduction="none")
        np.testing.assert_allclose(got, nll + beta * kl, rtol=1e-5)


def test_elbo_gaussian_keeps_the_contract():
    rng = np.random.default_rng(7)
    check_loss(generative.elbo_loss, rng.normal(size=(4, 6)), rng.normal(size=(4, 6)), rng.normal(size=(4, 2)),
               rng.normal(size=(4, 2)), likelihood="gaussian", beta=2.0)


def test_errors():
    # Called eagerly, as a user would: the checks raise before any computation.
    x = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match="jaxloss.reconstruction_error: kind"):
        generative.reconstruction_error(x, x, kind="cubic")
    with pytest.raises(ValueError, match="reconstructions"):
        generative.reconstruction_error(x, jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="jaxloss.elbo_loss: beta"):
        generative.elbo_loss(x, x, x, x, beta=-1.0)
    with pytest.raises(ValueError, match="jaxloss.elbo_loss: mean"):
        generative.elbo_loss(x, x, jnp.zeros((3, 2)), jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match="likelihood"):
        generative.elbo_loss(x, x, x, x, likelihood="poisson")
    with pytest.raises(TypeError, match="log_variance"):
        generative.gaussian_kl_divergence(x, jnp.zeros((2, 3), jnp.int32))
