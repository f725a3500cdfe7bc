"""Reconstruction and generative losses: autoencoders, anomaly scores, VAEs.

Every loss here is *per example*: the data arrays carry the batch on axis 0
and every other axis is summed, so the unreduced values have shape ``[B]``
(one anomaly score, one KL term, one negative ELBO per example). Summing
(rather than averaging) over the feature axes makes each value a proper
negative log-likelihood in nats, so the terms of :func:`elbo_loss` are on the
scale the ELBO defines and ``beta`` means what Higgins et al. meant by it.
Divide by the number of features yourself if you want a per-pixel score.

:func:`gaussian_kl_divergence` is the exception in shape only: it sums the
last (latent) axis and keeps every leading axis, ``[..., D] -> [...]``.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array

_KINDS = ("squared", "absolute", "bernoulli")
_LIKELIHOODS = ("bernoulli", "gaussian")
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# --------------------------------------------------------------------- helpers
def _batch_where(fn: str, where: ArrayLike | None, batch: int) -> Array | None:
    """``where`` checked and broadcast to the per-example shape ``[B]``."""
    if where is None:
        return None
    where = _checks.boolean(fn, "where", where)
    return _checks.broadcastable(fn, "where", where, (batch,), "the unreduced loss shape")


def _mask_rows(where: Array | None, x: Array, safe_value: float = 0.0) -> Array:
    """Replaces the rows (axis 0) of masked examples by a safe value."""
    if where is None:
        return x
    return _numerics.mask_inputs(where.reshape(where.shape + (1,) * (x.ndim - 1)), x, safe_value)


def _sum_features(x: Array) -> Array:
    """Sums every axis but the first (a rank-1 array is returned as is)."""
    return jnp.sum(x, axis=tuple(range(1, x.ndim))) if x.ndim > 1 else x


def _bernoulli_nll(logits: Array, targets: Array) -> Array:
    # -[y log sigmoid(z) + (1 - y) log sigmoid(-z)] in the binary cross-entropy's stable form:
    # finite for |z| = 1e4 and exact for targets 0 and 1.
    return _numerics.bce_with_logits(logits, targets)


def _reconstruction_terms(kind: str, reconstructions: Array, inputs: Array) -> Array:
    if kind == "squared":
        return jnp.square(reconstructions - inputs)
    if kind == "absolute":
        return jnp.abs(reconstructions - inputs)
    return _bernoulli_nll(reconstructions, inputs)


def _kl_terms(mean: Array, log_variance: Array) -> Array:
    # KL(N(m, s^2) || N(0, 1)) per coordinate = 0.5 (s^2 + m^2 - 1 - log s^2).
    # expm1 keeps the s^2 - 1 - log s^2 part accurate (and exactly 0) near s = 1.
    return 0.5 * (jnp.expm1(log_variance) - log_variance + jnp.square(mean))


def _pair_inputs(fn: str, reconstructions: ArrayLike, inputs: ArrayLike) -> tuple[Array, Array]:
    r = _checks.floating(fn, "reconstructions", reconstructions)
    x = _checks.real(fn, "inputs", inputs)
    _checks.same_shape(fn, ("reconstructions", r), ("inputs", x))
    _checks.rank_at_least(fn, "reconstructions", r, 1, "a batch axis first")
    return r, x


# ---------------------------------------------------------------------- losses
@_registry.builtin(tags=("generative", "reconstruction"))
def reconstruction_error(reconstructions: ArrayLike, inputs: ArrayLike, *,
                         kind: Literal["squared", "absolute", "bernoulli"] = "squared",
                         reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                         where: ArrayLike | None = None) -> Array:
    r"""Per-example reconstruction error of an autoencoder (an anomaly score).

    With :math:`\hat x` the reconstruction and :math:`x` the input of one
    example, summed over every feature (every axis but the first):

    .. math::

        \text{squared}: \sum_j (\hat x_j - x_j)^2 \qquad
        \text{absolute}: \sum_j |\hat x_j - x_j|

        \text{bernoulli}: -\sum_j \big[x_j \log \sigma(\hat x_j)
                          + (1 - x_j) \log \sigma(-\hat x_j)\big]

    For ``kind="bernoulli"`` the reconstructions are *logits* and the value
    is the Bernoulli negative log-likelihood of ``inputs`` in ``[0, 1]``,
    computed in log space (``softplus``), so it stays finite for logits of any
    magnitude and for inputs exactly 0 or 1.

    Args:
      reconstructions: ``[B, ...]`` float reconstructions (logits for
        ``kind="bernoulli"``).
      inputs: ``[B, ...]`` real inputs, same shape (in ``[0, 1]`` for
        ``kind="bernoulli"``).
      kind: ``"squared"``, ``"absolute"`` or ``"bernoulli"``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to ``[B]``.
      where: boolean mask broadcastable to ``[B]``.

    Returns:
      ``[B]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, a rank-0 input, an unknown ``kind`` or
        ``reduction``.
      TypeError: non-float ``reconstructions``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.generative import reconstruction_error
      >>> x = jnp.array([[0.0, 1.0], [1.0, 1.0]])
      >>> r = jnp.array([[0.0, 3.0], [1.0, 0.0]])
      >>> reconstruction_error(r, x, reduction="none")
      Array([4., 1.], dtype=float32)
      >>> float(reconstruction_error(r, x, kind="absolute"))
      1.5
      >>> round(float(reconstruction_error(jnp.zeros((1, 3)), jnp.ones((1, 3)),
      ...                                          kind="bernoulli")), 4)
      2.0794

    References:
      Hinton and Salakhutdinov, "Reducing the Dimensionality of Data with
      Neural Networks", Science 2006, https://doi.org/10.1126/science.1127647;
      Sakurada and Yairi, "Anomaly Detection Using Autoencoders with Nonlinear
      Dimensionality Reduction", MLSDA 2014, https://doi.org/10.1145/2689746.2689747
    """
    fn = "reconstruction_error"
    _checks.choice(fn, "kind", kind, _KINDS)
    r, x = _pair_inputs(fn, reconstructions, inputs)
    dtype = _numerics.compute_dtype(r)
    where = _batch_where(fn, where, r.shape[0])
    r = _mask_rows(where, r.astype(dtype))
    x = _mask_rows(where, x.astype(dtype))
    values = _sum_features(_reconstruction_terms(kind, r, x))
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(tags=("generative", "kl"))
def gaussian_kl_divergence(mean: ArrayLike, log_variance: ArrayLike, *,
                           reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                           where: ArrayLike | None = None) -> Array:
    r"""KL divergence of a diagonal Gaussian to the standard normal, per example.

    .. math::

        \mathrm{KL}\big(\mathcal N(\mu, \operatorname{diag}\sigma^2) \,\|\,
        \mathcal N(0, I)\big) = \tfrac12 \sum_{d=1}^{D}
        \big(\sigma_d^2 + \mu_d^2 - 1 - \log \sigma_d^2\big)

    the closed form of Kingma and Welling (2014, appendix B), with
    :math:`\log \sigma^2` as input (the usual encoder output) and
    :math:`\sigma^2 - 1` computed by ``expm1`` so the value is exactly 0 at
    the prior.

    Args:
      mean: ``[..., D]`` float posterior means.
      log_variance: ``[..., D]`` float posterior log-variances, same shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values (the latent axis ``D`` summed) for
      ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, a rank-0 input, or an unknown ``reduction``.
      TypeError: non-float ``mean`` or ``log_variance``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.generative import gaussian_kl_divergence
      >>> mean = jnp.array([[0.0, 0.0], [1.0, 2.0]])
      >>> log_variance = jnp.array([[0.0, 0.0], [0.0, 0.0]])
      >>> gaussian_kl_divergence(mean, log_variance, reduction="none")
      Array([0. , 2.5], dtype=float32)

    References:
      Kingma and Welling, "Auto-Encoding Variational Bayes", ICLR 2014,
      https://arxiv.org/abs/1312.6114
    """
    fn = "gaussian_kl_divergence"
    (m, lv), _ = _checks.elementwise_inputs(fn, None, [("mean", mean), ("log_variance", log_variance)])
    _checks.rank_at_least(fn, "mean", m, 1, "a latent axis last")
    out_shape = m.shape[:-1]
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), out_shape,
                                      "the unreduced loss shape")
        m = _numerics.mask_inputs(where[..., None], m)
        lv = _numerics.mask_inputs(where[..., None], lv)
    values = jnp.sum(_kl_terms(m, lv), axis=-1)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(aliases=("vae_loss",), tags=("generative",))
def elbo_loss(reconstructions: ArrayLike, inputs: ArrayLike, mean: ArrayLike, log_variance: ArrayLike, *,
              likelihood: Literal["bernoulli", "gaussian"] = "bernoulli", beta: ArrayLike = 1.0,
              reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
              where: ArrayLike | None = None) -> Array:
    r"""Negative evidence lower bound of a VAE with a diagonal Gaussian posterior.

    .. math::

        \ell = -\log p(x \mid z) + \beta\,
               \mathrm{KL}\big(\mathcal N(\mu, \operatorname{diag}\sigma^2)
               \,\|\, \mathcal N(0, I)\big)

    with the reconstruction term summed over every feature of the example:

    * ``likelihood="bernoulli"``: ``reconstructions`` are logits,
      :math:`-\log p(x \mid z) = -\sum_j [x_j \log\sigma(\hat x_j) +
      (1 - x_j)\log\sigma(-\hat x_j)]` in log space (``softplus``); ``inputs``
      in ``[0, 1]``.
    * ``likelihood="gaussian"``: ``reconstructions`` are the means of a unit
      variance Gaussian, :math:`-\log p(x \mid z) = \sum_j \tfrac12
      (\hat x_j - x_j)^2 + \tfrac12 \log 2\pi`.

    and the KL term summed over every latent coordinate (every axis of
    ``mean`` but the first), as in :func:`gaussian_kl_divergence`. With
    ``beta=1`` the value is the negative ELBO in nats, an upper bound on
    :math:`-\log p(x)`; ``beta != 1`` is the beta-VAE objective.

    Args:
      reconstructions: ``[B, ...]`` float decoder outputs for one sample
        :math:`z \sim q(z \mid x)` (logits for ``"bernoulli"``).
      inputs: ``[B, ...]`` real inputs, same shape.
      mean: ``[B, ..., D]`` float posterior means.
      log_variance: ``[B, ..., D]`` float posterior log-variances, same shape
        as ``mean``.
      likelihood: ``"bernoulli"`` or ``"gaussian"``.
      beta: weight of the KL term, ``>= 0`` (may be traced, e.g. annealed).
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[B]``.
      where: boolean mask broadcastable to ``[B]``.

    Returns:
      ``[B]`` per-example values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ (or the batch sizes of inputs and latents),
        an unknown ``likelihood`` or ``reduction``, or ``beta < 0``.
      TypeError: non-float ``reconstructions``, ``mean`` or ``log_variance``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.generative import elbo_loss
      >>> x = jnp.array([[1.0, 0.0]])
      >>> logits = jnp.array([[0.0, 0.0]])
      >>> mean, log_variance = jnp.array([[1.0]]), jnp.array([[0.0]])
      >>> round(float(elbo_loss(logits, x, mean, log_variance)), 4)  # 2 log 2 + 0.5
      1.8863
      >>> round(float(elbo_loss(logits, x, mean, log_variance, beta=0.0)), 4)
      1.3863

    References:
      Kingma and Welling, "Auto-Encoding Variational Bayes", ICLR 2014,
      https://arxiv.org/abs/1312.6114; Higgins et al., "beta-VAE: Learning
      Basic Visual Concepts with a Constrained Variational Framework", ICLR
      2017, https://openreview.net/forum?id=Sy2fzU9gl
    """
    fn = "elbo_loss"
    _checks.choice(fn, "likelihood", likelihood, _LIKELIHOODS)
    _checks.in_range(fn, "beta", beta, low=0.0)
    r, x = _pair_inputs(fn, reconstructions, inputs)
    m = _checks.floating(fn, "mean", mean)
    lv = _checks.floating(fn, "log_variance", log_variance)
    _checks.same_shape(fn, ("mean", m), ("log_variance", lv))
    _checks.rank_at_least(fn, "mean", m, 2, "[batch, ..., latent]")
    if m.shape[0] != r.shape[0]:
        _checks._fail(ValueError, _checks.message(
            fn, "mean", f"must have the batch size of reconstructions ({r.shape[0]})", f"shape {m.shape}"))
    dtype = _numerics.compute_dtype(r, m, lv)
    where = _batch_where(fn, where, r.shape[0])
    r, x, m, lv = (_mask_rows(where, a.astype(dtype)) for a in (r, x, m, lv))
    if likelihood == "bernoulli":
        nll = _sum_features(_bernoulli_nll(r, x))
    else:
        nll = _sum_features(0.5 * jnp.square(r - x) + _HALF_LOG_2PI)
    kl = _sum_features(_kl_terms(m, lv))
    values = nll + jnp.asarray(beta, dtype) * kl
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)
