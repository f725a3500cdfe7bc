"""Denoising-diffusion training losses (``jaxloss.diffusion``).

:func:`diffusion_loss` is the weighted mean-squared error of a denoiser for
any noise schedule written as ``x_t = alphas * samples + sigmas * noise``
(variance preserving: ``alphas**2 + sigmas**2 = 1``; EDM/variance exploding:
``alphas = 1``). It returns one value per example ``[B]``; the signal-to-noise
weightings are computed in a form that stays finite as ``sigmas`` or
``alphas`` reach 0.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array

_PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
_WEIGHTINGS = ("uniform", "min_snr", "edm")


def _min_snr_weight(alpha2: Array, sigma2: Array, gamma: Array, prediction_type: str) -> Array:
    """Min-SNR-gamma weight with ``snr = alpha2 / sigma2``, finite for ``alpha2`` or ``sigma2`` at 0."""
    if prediction_type == "v_prediction":
        # min(snr, g) / (snr + 1) = min(alpha2, g sigma2) / (alpha2 + sigma2)
        return _numerics.safe_div(jnp.minimum(alpha2, gamma * sigma2), alpha2 + sigma2)
    capped = alpha2 > gamma * sigma2  # snr > gamma; then alpha2 > 0
    if prediction_type == "epsilon":
        # min(snr, g) / snr = g sigma2 / alpha2 where snr > g, else 1
        safe_alpha2 = jnp.where(capped, alpha2, jnp.ones_like(alpha2))
        weight = jnp.where(capped, gamma * sigma2 / safe_alpha2, jnp.ones_like(alpha2))
    else:
        # "sample": min(snr, g) = alpha2 / sigma2 where snr <= g (then sigma2 > 0 unless both are 0), else g
        weight = jnp.where(capped, jnp.broadcast_to(gamma, alpha2.shape), _numerics.safe_div(alpha2, sigma2))
    return weight  # a NaN alpha or sigma, hidden by the comparison, is restored by the caller


@_registry.builtin(tags=("diffusion",))
def diffusion_loss(model_output: ArrayLike, samples: ArrayLike, noise: ArrayLike, alphas: ArrayLike,
                   sigmas: ArrayLike, *, prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon",
                   weighting: Literal["uniform", "min_snr", "edm"] = "uniform", snr_gamma: ArrayLike = 5.0,
                   sigma_data: ArrayLike = 0.5, reduction: Literal["none", "sum", "mean"] = "mean",
                   weights: ArrayLike | None = None, where: ArrayLike | None = None) -> Array:
    r"""Weighted denoising loss of a diffusion model, per example.

    With the noised input :math:`x_t = \alpha x_0 + \sigma \epsilon` (``samples``
    :math:`x_0`, ``noise`` :math:`\epsilon`), the regression target :math:`y`
    of the model output :math:`\hat y` and the weight :math:`w`, per example:

    .. math::

        \ell = w(\alpha, \sigma)\, \mathrm{mean}\bigl((\hat y - y)^2\bigr), \qquad
        y = \begin{cases}
            \epsilon & \text{epsilon} \\
            x_0 & \text{sample} \\
            \alpha \epsilon - \sigma x_0 & \text{v\_prediction}
        \end{cases}

    the mean running over the non-batch axes. With
    :math:`\mathrm{snr} = \alpha^2 / \sigma^2` and :math:`\gamma` = ``snr_gamma``:

    * ``"uniform"``: :math:`w = 1`;
    * ``"min_snr"`` (Hang et al. 2023, as diffusers' training scripts):
      :math:`\min(\mathrm{snr}, \gamma) / \mathrm{snr}` for epsilon,
      :math:`\min(\mathrm{snr}, \gamma) / (\mathrm{snr} + 1)` for v-prediction,
      :math:`\min(\mathrm{snr}, \gamma)` for sample prediction;
    * ``"edm"`` (Karras et al. 2022, sample prediction only):
      :math:`w = (\sigma^2 + \sigma_\text{data}^2) / (\sigma\, \sigma_\text{data})^2`.

    The weights are evaluated in forms that need no division by a vanishing
    quantity (e.g. :math:`\min(\alpha^2, \gamma\sigma^2) / (\alpha^2 + \sigma^2)`),
    so ``sigmas`` or ``alphas`` at or near 0 stay finite in value and gradient.
    At exactly :math:`\sigma = 0` the EDM weight (infinite in the limit) is 0:
    a noiseless example carries no signal there. A NaN in any input of an
    example, read by the chosen formula or not, makes that example NaN.

    Args:
      model_output: ``[B, ...]`` float model prediction :math:`\hat y`.
      samples: ``[B, ...]`` float clean data :math:`x_0` (same shape).
      noise: ``[B, ...]`` float noise :math:`\epsilon` used to build
        :math:`x_t` (same shape).
      alphas: ``[B]`` float signal scale :math:`\alpha` of each example
        (``sqrt(alphas_cumprod[t])`` for a DDPM scheduler, 1 for EDM).
      sigmas: ``[B]`` float noise scale :math:`\sigma` of each example
        (``sqrt(1 - alphas_cumprod[t])`` for DDPM, the noise level for EDM).
      prediction_type: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``.
      weighting: ``"uniform"``, ``"min_snr"`` or ``"edm"``.
      snr_gamma: :math:`\gamma > 0` of ``"min_snr"``.
      sigma_data: :math:`\sigma_\text{data} > 0` of ``"edm"``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[B]``.
      where: boolean ``[B]`` (or broadcastable); ``False`` masks an example.

    Returns:
      ``[B]`` per-example values for ``reduction="none"``, else a scalar
      (float32 for 16-bit inputs).

    Raises:
      ValueError: ``model_output``, ``samples``, ``noise`` of different shapes
        or of rank 0; ``alphas``/``sigmas`` not ``[B]``; an unknown
        ``prediction_type``, ``weighting`` or ``reduction``; ``weighting="edm"``
        with a prediction type other than ``"sample"``; ``snr_gamma <= 0`` or
        ``sigma_data <= 0``.
      TypeError: non-float inputs.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import diffusion
      >>> x0, eps = jnp.ones((2, 3)), jnp.zeros((2, 3))
      >>> alphas, sigmas = jnp.array([0.6, 0.8]), jnp.array([0.8, 0.6])
      >>> # epsilon prediction off by 1 everywhere; snr = 0.5625 and 1.778.
      >>> float(diffusion.diffusion_loss(eps + 1.0, x0, eps, alphas, sigmas))
      1.0
      >>> diffusion.diffusion_loss(eps + 1.0, x0, eps, alphas, sigmas, weighting="min_snr", snr_gamma=1.0,
      ...                          reduction="none").round(4).tolist()
      [1.0, 0.5625]

    References:
      Ho, Jain and Abbeel, "Denoising Diffusion Probabilistic Models",
      NeurIPS 2020, https://arxiv.org/abs/2006.11239;
      Salimans and Ho, "Progressive Distillation for Fast Sampling of Diffusion
      Models", ICLR 2022 (v-prediction), https://arxiv.org/abs/2202.00512;
      Hang et al., "Efficient Diffusion Training via Min-SNR Weighting
      Strategy", ICCV 2023, https://arxiv.org/abs/2303.09556;
      Karras et al., "Elucidating the Design Space of Diffusion-Based
      Generative Models", NeurIPS 2022, https://arxiv.org/abs/2206.00364
    """
    fn = "diffusion_loss"
    _checks.choice(fn, "prediction_type", prediction_type, _PREDICTION_TYPES)
    _checks.choice(fn, "weighting", weighting, _WEIGHTINGS)
    if weighting == "edm" and prediction_type != "sample":
        _checks._fail(ValueError, _checks.message(fn, "prediction_type", "must be 'sample' with weighting='edm' "
                                                  "(EDM's weight is defined for the denoiser's sample prediction)",
                                                  repr(prediction_type)))
    _checks.in_range(fn, "snr_gamma", snr_gamma, low=0.0, low_open=True)
    _checks.in_range(fn, "sigma_data", sigma_data, low=0.0, low_open=True)
    names = ("model_output", "samples", "noise")
    out, x0, eps = (_checks.floating(fn, n, x) for n, x in zip(names, (model_output, samples, noise)))
    _checks.same_shape(fn, *zip(names, (out, x0, eps)))
    _checks.rank_at_least(fn, "model_output", out, 1, "[batch, ...]")
    batch = out.shape[0]
    alpha = _checks.floating(fn, "alphas", alphas)
    sigma = _checks.floating(fn, "sigmas", sigmas)
    _checks.shape(fn, "alphas", alpha, (batch,), f"[batch] = ({batch},)")
    _checks.shape(fn, "sigmas", sigma, (batch,), f"[batch] = ({batch},)")
    dtype = _numerics.compute_dtype(out, x0, eps, alpha, sigma)
    out, x0, eps, alpha, sigma = _numerics.cast(dtype, out, x0, eps, alpha, sigma)
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), (batch,),
                                      "the unreduced loss shape")
        mask = where.reshape((batch,) + (1,) * (out.ndim - 1))
        out, x0, eps = (_numerics.mask_inputs(mask, x) for x in (out, x0, eps))
        alpha, sigma = _numerics.mask_inputs(where, alpha, 1.0), _numerics.mask_inputs(where, sigma, 1.0)

    expand = (batch,) + (1,) * (out.ndim - 1)
    if prediction_type == "epsilon":
        target = eps
    elif prediction_type == "sample":
        target = x0
    else:
        target = alpha.reshape(expand) * eps - sigma.reshape(expand) * x0
    error = jnp.mean(jnp.square(out - target), axis=tuple(range(1, out.ndim)))

    alpha2, sigma2 = jnp.square(alpha), jnp.square(sigma)
    if weighting == "uniform":
        values = error
    elif weighting == "min_snr":
        values = _min_snr_weight(alpha2, sigma2, jnp.asarray(snr_gamma, dtype), prediction_type) * error
    else:
        data2 = jnp.square(jnp.asarray(sigma_data, dtype))
        values = _numerics.safe_div(sigma2 + data2, sigma2 * data2) * error
    # Not every input enters every formula (epsilon prediction never reads ``samples``);
    # a NaN in any of them still marks the example NaN, never a healthy number.
    unread = jnp.isnan(alpha) | jnp.isnan(sigma)
    for x in (x0, eps):
        unread = unread | jnp.any(jnp.isnan(x), axis=tuple(range(1, x.ndim)))
    values = jnp.where(unread, jnp.asarray(jnp.nan, values.dtype), values)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)
