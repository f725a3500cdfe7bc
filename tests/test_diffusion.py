"""Reference tests for the diffusion loss (``jaxloss.diffusion``).

Expected values are NumPy transcriptions of
* diffusers' training scripts: ``examples/text_to_image/train_text_to_image.py``
  (target per ``prediction_type`` and the min-SNR-gamma weights) with
  ``compute_snr`` from ``src/diffusers/training_utils.py`` and
  ``DDPMScheduler.get_velocity`` from
  ``src/diffusers/schedulers/scheduling_ddpm.py``, on a DDPM linear schedule;
* NVlabs/edm ``training/loss.py`` ``EDMLoss`` for the EDM weighting (its
  elementwise loss averaged over the non-batch axes, as our per-example value).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxloss import diffusion
from tests.jitted import jit_static


_diffusion_loss = jit_static(diffusion.diffusion_loss)

_BETAS = np.linspace(1e-4, 0.02, 1000)          # DDPMScheduler(beta_schedule="linear") defaults
_ALPHAS_CUMPROD = np.cumprod(1.0 - _BETAS)


def _diffusers_reference(model_pred, latents, noise, timesteps, prediction_type, snr_gamma):
    """train_text_to_image.py's loss, per example (before the final .mean()), in NumPy."""
    sqrt_alpha_prod = _ALPHAS_CUMPROD[timesteps] ** 0.5
    sqrt_one_minus_alpha_prod = (1.0 - _ALPHAS_CUMPROD[timesteps]) ** 0.5
    expand = (-1,) + (1,) * (latents.ndim - 1)
    if prediction_type == "epsilon":
        target = noise
    elif prediction_type == "v_prediction":                    # DDPMScheduler.get_velocity
        target = sqrt_alpha_prod.reshape(expand) * noise - sqrt_one_minus_alpha_prod.reshape(expand) * latents
    else:
        target = latents
    loss = ((model_pred - target) ** 2).mean(axis=tuple(range(1, latents.ndim)))
    if snr_gamma is None:
        return loss
    snr = (sqrt_alpha_prod / sqrt_one_minus_alpha_prod) ** 2    # compute_snr
    mse_loss_weights = np.stack([snr, snr_gamma * np.ones_like(snr)], axis=1).min(axis=1)
    if prediction_type == "epsilon":
        mse_loss_weights = mse_loss_weights / snr
    elif prediction_type == "v_prediction":
        mse_loss_weights = mse_loss_weights / (snr + 1)
    return loss * mse_loss_weights


def _edm_reference(d_yn, y, sigma, sigma_data=0.5):
    """NVlabs/edm training/loss.py, EDMLoss: weight * ((D_yn - y) ** 2), averaged per example."""
    weight = (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2
    return (weight.reshape(-1, 1, 1) * (d_yn - y) ** 2).mean(axis=(1, 2))


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def _batch(seed, batch=8):
    rng = np.random.default_rng(seed)
    shape = (batch, 3, 4, 2)
    pred, latents, noise = (rng.normal(size=shape).astype(np.float32) for _ in range(3))
    timesteps = rng.integers(0, 1000, size=batch)
    return pred, latents, noise, timesteps


@pytest.mark.parametrize("prediction_type,snr_gamma",
                         list(itertools.product(["epsilon", "v_prediction", "sample"], [None, 5.0])))
def test_equals_diffusers_training_script(prediction_type, snr_gamma):
    seed = 2 * ["epsilon", "v_prediction", "sample"].index(prediction_type) + (snr_gamma is None)
    pred, latents, noise, timesteps = _batch(seed)
    alphas = np.sqrt(_ALPHAS_CUMPROD[timesteps]).astype(np.float32)
    sigmas = np.sqrt(1.0 - _ALPHAS_CUMPROD[timesteps]).astype(np.float32)
    kwargs = {"weighting": "uniform"} if snr_gamma is None else {"weighting": "min_snr", "snr_gamma": snr_gamma}
    got, mean = jax.jit(lambda *a: tuple(  # one program for both reductions
        diffusion.diffusion_loss(*a, prediction_type=prediction_type, reduction=r, **kwargs)
        for r in ("none", "mean")))(pred, latents, noise, alphas, sigmas)
    ref = _diffusers_reference(*(a.astype(np.float64) for a in (pred, latents, noise)), timesteps,
                               prediction_type, snr_gamma)
    assert _rel(got, ref) < 1e-5
    assert _rel(mean, ref.mean()) < 1e-5


def test_edm_weighting_equals_edm_loss():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(6, 4, 3)).astype(np.float32)
    d_yn = (y + 0.2 * rng.normal(size=(6, 4, 3))).astype(np.float32)
    sigma = np.exp(rng.normal(-1.2, 1.2, size=6)).astype(np.float32)     # EDM's P_mean, P_std
    noise = rng.normal(size=(6, 4, 3)).astype(np.float32)
    for sigma_data in (0.5, 1.0):
        got = _diffusion_loss(jnp.asarray(d_yn), jnp.asarray(y), jnp.asarray(noise), jnp.ones(6),
                              jnp.asarray(sigma), prediction_type="sample", weighting="edm",
                              sigma_data=sigma_data, reduction="none")
        ref = _edm_reference(d_yn.astype(np.float64), y.astype(np.float64), sigma.astype(np.float64), sigma_data)
        assert _rel(got, ref) < 1e-5


def test_min_snr_weights_by_hand():
    # alpha = 0.6, sigma = 0.8: snr = 0.5625 < gamma = 1; alpha = 0.8, sigma = 0.6: snr = 16/9 > 1.
    ones = jnp.ones((2, 3))
    alphas, sigmas = jnp.array([0.6, 0.8]), jnp.array([0.8, 0.6])
    snr = np.array([0.5625, 16.0 / 9.0])
    expected = {"epsilon": np.minimum(snr, 1.0) / snr, "v_prediction": np.minimum(snr, 1.0) / (snr + 1.0),
                "sample": np.minimum(snr, 1.0)}
    for prediction_type, weight in expected.items():
        target = {"epsilon": 0.0 * ones, "sample": ones, "v_prediction": -sigmas[:, None] * ones}
        out = target[prediction_type] + 2.0                      # squared error 4 everywhere
        got = _diffusion_loss(out, ones, 0.0 * ones, alphas, sigmas, prediction_type=prediction_type,
                              weighting="min_snr", snr_gamma=1.0, reduction="none")
        np.testing.assert_allclose(got, 4.0 * weight, rtol=1e-6)


@pytest.mark.parametrize("prediction_type,weighting",
                         [(p, w) for p in ("epsilon", "v_prediction", "sample") for w in ("uniform", "min_snr")]
                         + [("sample", "edm")])
def test_finite_at_vanishing_alphas_and_sigmas(prediction_type, weighting):
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
    # (alpha, sigma): pure noise, clean data, both tiny, both exactly 0, near-1 schedules.
    alphas = jnp.array([0.0, 1.0, 1e-20, 0.0, 1e-7, 0.9999999])
    sigmas = jnp.array([1.0, 0.0, 1e-20, 0.0, 0.9999999, 1e-7])

    def f(out, samples, noise, a, s):
        return diffusion.diffusion_loss(out, samples, noise, a, s, prediction_type=prediction_type,
                                        weighting=weighting)

    value, grads = jax.jit(lambda *a: (  # one program
        diffusion.diffusion_loss(*a, prediction_type=prediction_type, weighting=weighting, reduction="none"),
        jax.grad(f, argnums=(0, 1, 2, 3, 4))(*a)))(x, x[::-1], x + 1.0, alphas, sigmas)
    assert np.all(np.isfinite(value)), value
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_errors():
    # Called eagerly, as a user would: the checks raise before any computation.
    x, a = jnp.zeros((2, 3)), jnp.ones(2)
    with pytest.raises(ValueError, match="jaxloss.diffusion_loss: prediction_type must be 'sample' with "
                                         "weighting='edm'"):
        diffusion.diffusion_loss(x, x, x, a, a, weighting="edm")
    with pytest.raises(ValueError, match="jaxloss.diffusion_loss: prediction_type must be one of"):
        diffusion.diffusion_loss(x, x, x, a, a, prediction_type="flow")
    with pytest.raises(ValueError, match="jaxloss.diffusion_loss: weighting must be one of"):
        diffusion.diffusion_loss(x, x, x, a, a, weighting="p2")
    with pytest.raises(ValueError, match="jaxloss.diffusion_loss: snr_gamma must be > 0.0"):
        diffusion.diffusion_loss(x, x, x, a, a, weighting="min_snr", snr_gamma=0.0)
    with pytest.raises(ValueError, match=r"jaxloss.diffusion_loss: alphas must have shape \[batch\]"):
        diffusion.diffusion_loss(x, x, x, jnp.ones(3), a)
    with pytest.raises(ValueError, match="jaxloss.diffusion_loss: model_output .* and noise .* must have the same"):
        diffusion.diffusion_loss(x, x, jnp.zeros((2, 4)), a, a)


@pytest.mark.parametrize("kwargs", [{"prediction_type": "epsilon", "weighting": "min_snr"},
                                    {"prediction_type": "sample", "weighting": "min_snr"},
                                    {"prediction_type": "sample", "weighting": "edm"}])
def test_check_loss_on_the_other_weightings(kwargs):
    # The invariants suite runs v-prediction with min-SNR; the same inputs (snr 0.099 to 4.26,
    # away from the default snr_gamma = 5) under the gradient, edge, masking and NaN checks.
    from jaxloss.testing import check_loss
    from tests.specs.diffusion import _diffusion

    check_loss(diffusion.diffusion_loss, *_diffusion(np.random.default_rng(0)),
               only=["grad", "edge", "where", "nan"], **kwargs)


def test_single_feature_and_nan_schedule():
    # Rank-1 inputs: the mean over no non-batch axis is the squared error itself.
    out, x = jnp.array([1.0, 3.0]), jnp.zeros(2)
    np.testing.assert_allclose(_diffusion_loss(out, x, x, jnp.ones(2), jnp.ones(2), reduction="none"),
                               [1.0, 9.0])
    for prediction_type in ("epsilon", "sample", "v_prediction"):
        value = _diffusion_loss(out, x, x, jnp.array([jnp.nan, 0.5]), jnp.ones(2), weighting="min_snr",
                                prediction_type=prediction_type, reduction="none")
        assert np.isnan(value[0]) and np.isfinite(value[1])
