"""Regression losses: elementwise, ``(predictions, targets)`` of equal shape.

Every loss here returns elementwise values (the shape of ``predictions``)
before reduction, accepts the common ``reduction``/``weights``/``where``
keywords, computes in at least float32 and stays finite, value and gradient,
at zero residual.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array



def _abs(x: Array) -> Array:
    """``|x|`` with the subgradient 0 at ``x = 0``, as torch ``l1_loss``.

    ``jnp.abs`` differentiates to 1 at 0, so a perfect prediction would still be
    pushed; ``sign`` has a zero derivative, so ``x * sign(x)`` has derivative
    ``sign(x)``.
    """
    return x * jnp.sign(x)


def _absolute_partials(p: Array, t: Array) -> tuple[Array, Array]:
    s = jnp.sign(p - t)  # subgradient 0 at p = t, as torch l1_loss
    return s, -s


_absolute_error = _numerics.elementwise(lambda p, t: jnp.abs(p - t), _absolute_partials)


def _squared_partials(p: Array, t: Array) -> tuple[Array, Array]:
    slope = 2.0 * (p - t)
    return slope, -slope


_squared = _numerics.elementwise(lambda p, t: jnp.square(p - t), _squared_partials)


def _squared_difference(p: Array, t: Array) -> Array:
    """``(p - t)^2``; its derivative read from the inputs again (from ``SPLIT_DERIVATIVE_MIN_SIZE``, last axis > 2).

    With :func:`_numerics.elementwise`'s derivative the value fuses into XLA:CPU's
    YNN reduction and the gradient is one pass over the inputs, instead of the
    difference ``p - t`` being written out for both (value and gradient against
    optax: 2048x128 0.65-0.84x, 512x512 0.80x, [2^18] 0.83x). On a last axis of
    1 or 2 elements it cost 1.4x (``[32768, 1]``), and at 32x128 it measured the
    same as autodiff, so those keep optax's program.
    """
    if p.ndim and p.shape[-1] > 2 and p.size >= _numerics.SPLIT_DERIVATIVE_MIN_SIZE:
        return _squared(p, t)
    return jnp.square(p - t)


def _huber_value(p: Array, t: Array, delta: Array) -> Array:
    # min(|r|, delta) splits |r| into a quadratic and a linear part; the value is
    # 0.5 q^2 + delta (|r| - q), smooth at |r| = delta.
    abs_r = jnp.abs(p - t)
    quadratic = jnp.minimum(abs_r, delta)
    return 0.5 * jnp.square(quadratic) + delta * (abs_r - quadratic)


def _huber_partials(p: Array, t: Array, delta: Array) -> tuple[Array, Array, Array]:
    r = p - t
    slope = jnp.clip(r, -delta, delta)  # torch's huber backward; 0 at r = 0
    abs_r = jnp.abs(r)
    return slope, -slope, abs_r - jnp.minimum(abs_r, delta)


_huber = _numerics.elementwise(_huber_value, _huber_partials)


def _smooth_l1_value(p: Array, t: Array, beta: Array) -> Array:
    # Huber divided by beta > 0: with q = min(|r|, beta), q^2 / (2 beta) + (|r| - q).
    abs_r = jnp.abs(p - t)
    quadratic = jnp.minimum(abs_r, beta)
    return jnp.square(quadratic) * (0.5 / beta) + (abs_r - quadratic)


def _smooth_l1_partials(p: Array, t: Array, beta: Array) -> tuple[Array, Array, Array]:
    slope = jnp.clip(p - t, -beta, beta) / beta  # torch's smooth_l1 backward: r / beta inside, sign(r) outside
    quadratic = jnp.minimum(jnp.abs(p - t), beta)
    return slope, -slope, -0.5 * jnp.square(quadratic / beta)


_smooth_l1 = _numerics.elementwise(_smooth_l1_value, _smooth_l1_partials)


def _poisson_value(p: Array, t: Array, eps: Array) -> Array:
    return p - t * jnp.log(jnp.maximum(p + eps, eps))


def _poisson_partials(p: Array, t: Array, eps: Array) -> tuple[Array, Array, Array]:
    # jnp.maximum's derivative: 1 to the larger argument, half to each at a tie (p = 0); d/deps is 1 either way.
    floor = jnp.maximum(p + eps, eps)
    ratio = t / floor
    above = jnp.where(p > 0, jnp.ones_like(p), jnp.where(p == 0, jnp.full_like(p, 0.5), jnp.zeros_like(p)))
    return 1.0 - ratio * above, -jnp.log(floor), -ratio


# Written derivatives (:func:`jaxloss._numerics.elementwise`): autodiff shared the floor and its log with the
# value, which XLA:CPU wrote out (32768x128 value and gradient 5.3 -> 3.3 ms; Keras 5.8 ms).
_poisson = _numerics.elementwise(_poisson_value, _poisson_partials)


def _log_cosh_value(p: Array, t: Array) -> Array:
    # log cosh is even: with a = |r|, log cosh r = a + log1p(exp(-2a)) - log 2. exp(-2a) <= 1 never
    # overflows, and the whole expression fuses into the reduction (no [...]-sized temporary).
    abs_r = jnp.abs(p - t)
    return abs_r + jnp.log1p(jnp.exp(-2.0 * abs_r)) - math.log(2.0)


def _log_cosh_partials(p: Array, t: Array) -> tuple[Array, Array]:
    slope = jnp.tanh(p - t)  # 0 at r = 0
    return slope, -slope


_log_cosh = _numerics.elementwise(_log_cosh_value, _log_cosh_partials)


def _pair(fn: str, predictions: ArrayLike, targets: ArrayLike,
          where: ArrayLike | None) -> tuple[Array, Array, Array | None]:
    (p, t), where = _checks.elementwise_inputs(fn, where, [("predictions", predictions)], [("targets", targets)])
    return p, t, where


@_registry.builtin(aliases=("mse", "mean_squared_error"), tags=("regression",))
def squared_error(predictions: ArrayLike, targets: ArrayLike, *, reduction: Literal["none", "sum", "mean"] = "mean",
                  weights: ArrayLike | None = None, where: ArrayLike | None = None) -> Array:
    r"""Squared error (the summand of MSE).

    .. math::

        \ell = (\hat y - y)^2

    Args:
      predictions: ``[...]`` float predictions.
      targets: ``[...]`` real targets, same shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, or an unknown ``reduction``.
      TypeError: non-float ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.squared_error(jnp.array([1.0, 3.0]), jnp.array([0.0, 1.0])))
      2.5

    References:
      Gauss, "Theoria motus corporum coelestium", 1809 (least squares);
      optax ``squared_error``, https://optax.readthedocs.io/en/latest/api/losses.html
    """
    p, t, where = _pair("squared_error", predictions, targets, where)
    return reduce_values(_squared_difference(p, t), reduction=reduction, weights=weights, where=where,
                         fn="squared_error", narrow_apart=False)


@_registry.builtin(tags=("regression",))
def l2_loss(predictions: ArrayLike, targets: ArrayLike, *, reduction: Literal["none", "sum", "mean"] = "mean",
            weights: ArrayLike | None = None, where: ArrayLike | None = None) -> Array:
    r"""Half squared error, as in optax ``l2_loss``.

    .. math::

        \ell = \tfrac12 (\hat y - y)^2

    Args:
      predictions: ``[...]`` float predictions.
      targets: ``[...]`` real targets, same shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, or an unknown ``reduction``.
      TypeError: non-float ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.l2_loss(jnp.array([2.0]), jnp.array([0.0])))
      2.0

    References:
      optax ``l2_loss``, https://optax.readthedocs.io/en/latest/api/losses.html
    """
    p, t, where = _pair("l2_loss", predictions, targets, where)
    return reduce_values(0.5 * _squared_difference(p, t), reduction=reduction, weights=weights, where=where,
                         fn="l2_loss", narrow_apart=False)


@_registry.builtin(aliases=("mae", "mean_absolute_error", "l1_loss"), tags=("regression",))
def absolute_error(predictions: ArrayLike, targets: ArrayLike, *, reduction: Literal["none", "sum", "mean"] = "mean",
                   weights: ArrayLike | None = None, where: ArrayLike | None = None) -> Array:
    r"""Absolute error (the summand of MAE, torch ``l1_loss``).

    .. math::

        \ell = |\hat y - y|

    The gradient at zero residual is 0 (torch's subgradient; ``jnp.abs`` gives 1).

    Args:
      predictions: ``[...]`` float predictions.
      targets: ``[...]`` real targets, same shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, or an unknown ``reduction``.
      TypeError: non-float ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.absolute_error(jnp.array([1.0, -3.0]), jnp.array([0.0, 0.0])))
      2.0

    References:
      Laplace, "Mémoire sur la probabilité des causes par les événements",
      1774 (least absolute deviations); torch ``l1_loss``,
      https://pytorch.org/docs/stable/generated/torch.nn.L1Loss.html
    """
    p, t, where = _pair("absolute_error", predictions, targets, where)
    # The derivative in a rule of its own (_numerics.elementwise): 32768x128 value and gradient 5 -> 3 kernels.
    return reduce_values(_absolute_error(p, t), reduction=reduction, weights=weights, where=where, fn="absolute_error")


@_registry.builtin(aliases=("huber",), tags=("regression",))
def huber_loss(predictions: ArrayLike, targets: ArrayLike, *, delta: ArrayLike = 1.0,
               reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
               where: ArrayLike | None = None) -> Array:
    r"""Huber loss: quadratic for small residuals, linear beyond ``delta``.

    .. math::

        \ell = \begin{cases} \tfrac12 r^2 & |r| \le \delta \\
               \delta (|r| - \tfrac12 \delta) & |r| > \delta \end{cases},
        \qquad r = \hat y - y

    Equals optax ``huber_loss``, Keras ``Huber`` and torch ``huber_loss``.

    Args:
      predictions: ``[...]`` float predictions.
      targets: ``[...]`` real targets, same shape.
      delta: the threshold between the quadratic and linear parts, ``>= 0``
        (Python float, or a traced array).
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, ``delta < 0``, or an unknown ``reduction``.
      TypeError: non-float ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> jaxloss.huber_loss(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0]), reduction="none")
      Array([0.125, 2.5  ], dtype=float32)

    References:
      Huber, "Robust Estimation of a Location Parameter", Annals of
      Mathematical Statistics, 1964, https://doi.org/10.1214/aoms/1177703732
    """
    _checks.in_range("huber_loss", "delta", delta, low=0.0)
    p, t, where = _pair("huber_loss", predictions, targets, where)
    # The derivative in a rule of its own (_numerics.elementwise): 32768x128 value and gradient 5 -> 3 kernels.
    values = _huber(p, t, jnp.asarray(delta, p.dtype))
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn="huber_loss")


@_registry.builtin(tags=("regression",))
def smooth_l1_loss(predictions: ArrayLike, targets: ArrayLike, *, beta: ArrayLike = 1.0,
                   reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                   where: ArrayLike | None = None) -> Array:
    r"""Smooth L1 loss with torch semantics (Huber divided by ``beta``).

    .. math::

        \ell = \begin{cases} \tfrac{1}{2\beta} r^2 & |r| < \beta \\
               |r| - \tfrac12 \beta & |r| \ge \beta \end{cases}

    ``beta = 0`` gives the absolute error (no division by zero).

    Args:
      predictions: ``[...]`` float predictions.
      targets: ``[...]`` real targets, same shape.
      beta: the threshold, ``>= 0``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, ``beta < 0``, or an unknown ``reduction``.
      TypeError: non-float ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> jaxloss.smooth_l1_loss(jnp.array([0.5, 3.0]), jnp.zeros(2), beta=1.0, reduction="none")
      Array([0.125, 2.5  ], dtype=float32)

    References:
      Girshick, "Fast R-CNN", ICCV 2015, https://arxiv.org/abs/1504.08083;
      torch ``smooth_l1_loss``, https://pytorch.org/docs/stable/generated/torch.nn.SmoothL1Loss.html
    """
    _checks.in_range("smooth_l1_loss", "beta", beta, low=0.0)
    p, t, where = _pair("smooth_l1_loss", predictions, targets, where)
    if _checks.is_concrete(beta) and float(np.asarray(beta)) > 0.0:
        # Huber's select-free form and written derivative: 32768x128 forward 4.6 -> 3.4 ms, value and
        # gradient 6.5 -> 4.4 ms (torch 2.2-2.7 and 4.1-4.5 ms).
        values = _smooth_l1(p, t, jnp.asarray(beta, p.dtype))
    else:
        beta = jnp.asarray(beta, p.dtype)
        abs_r = _abs(p - t)
        quadratic = 0.5 * _numerics.safe_div(jnp.square(abs_r), beta)
        values = jnp.where(abs_r < beta, quadratic, abs_r - 0.5 * beta)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn="smooth_l1_loss")


@_registry.builtin(aliases=("logcosh",), tags=("regression",))
def log_cosh(predictions: ArrayLike, targets: ArrayLike, *, reduction: Literal["none", "sum", "mean"] = "mean",
             weights: ArrayLike | None = None, where: ArrayLike | None = None) -> Array:
    r"""Logarithm of the hyperbolic cosine of the residual.

    .. math::

        \ell = \log\cosh(r) = r + \operatorname{softplus}(-2r) - \log 2

    The right-hand side is exact for every ``r`` and never overflows (``cosh``
    does beyond ``|r| > 89`` in float32).

    Args:
      predictions: ``[...]`` float predictions.
      targets: ``[...]`` real targets, same shape.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, or an unknown ``reduction``.
      TypeError: non-float ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> round(float(jaxloss.log_cosh(jnp.array([1.0]), jnp.array([0.0]))), 6)
      0.433781

    References:
      Chen et al., "Log Hyperbolic Cosine Loss Improves Variational
      Auto-Encoder", 2019, https://openreview.net/forum?id=rkglvsC9Ym;
      optax ``log_cosh``, Keras ``LogCosh``.
    """
    p, t, where = _pair("log_cosh", predictions, targets, where)
    # The derivative tanh(r) in a rule of its own (_numerics.elementwise): 32768x128 value and gradient
    # 5 -> 3 kernels, 0.61x the time.
    return reduce_values(_log_cosh(p, t), reduction=reduction, weights=weights, where=where, fn="log_cosh")


@_registry.builtin(aliases=("mape", "mean_absolute_percentage_error"), tags=("regression",))
def absolute_percentage_error(predictions: ArrayLike, targets: ArrayLike, *, epsilon: ArrayLike = 1e-7,
                              reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                              where: ArrayLike | None = None) -> Array:
    r"""Absolute percentage error, in percent (Keras MAPE).

    .. math::

        \ell = 100 \, \frac{|y - \hat y|}{\max(|y|, \epsilon)}

    Args:
      predictions: ``[...]`` float predictions.
      targets: ``[...]`` real targets, same shape.
      epsilon: lower bound on ``|targets|`` in the denominator, ``> 0``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values (percent) for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, ``epsilon <= 0``, or an unknown ``reduction``.
      TypeError: non-float ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.absolute_percentage_error(jnp.array([110.0]), jnp.array([100.0])))
      10.0

    References:
      Keras ``MeanAbsolutePercentageError``,
      https://keras.io/api/losses/regression_losses/
    """
    _checks.in_range("absolute_percentage_error", "epsilon", epsilon, low=0.0, low_open=True)
    p, t, where = _pair("absolute_percentage_error", predictions, targets, where)
    eps = jnp.asarray(epsilon, p.dtype)
    if p.size >= _numerics.SPLIT_DERIVATIVE_MIN_SIZE:
        # The derivatives in a rule of their own (_numerics.elementwise), so the value stays inside XLA:CPU's
        # fused sum instead of r and its sign being written out for the gradient (2048x128 forward 0.84-0.87x,
        # value and gradient 0.76-0.80x; 32768x128 0.85x and 0.26-0.29x the autodiff form; at 32x128 the same).
        values = _percentage_error(p, t, eps)
    else:  # _abs: autodiff's derivative of |r| is then 0 at r = 0, as the rule's (jnp.abs there: 3.6x faster fused)
        values = 100.0 * _abs(t - p) / jnp.maximum(jnp.abs(t), eps)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn="absolute_percentage_error")


def _percentage_error_value(p: Array, t: Array, eps: Array) -> Array:
    return 100.0 * jnp.abs(t - p) / jnp.maximum(jnp.abs(t), eps)


def _percentage_error_partials(p: Array, t: Array, eps: Array) -> tuple[Array, Array, Array]:
    # |r| differentiates to sign(r) (0 at r = 0, torch's l1 convention); max(|t|, eps) to sign(t) above eps,
    # 0 below and half of each at the tie (jnp.maximum's rule), and to eps the other way round.
    r = t - p
    den = jnp.maximum(jnp.abs(t), eps)
    above = 0.5 + 0.5 * jnp.sign(jnp.abs(t) - eps)
    # The percent as a division by 0.01: a constant 100 here would be the same broadcast as the value's,
    # which XLA:CPU then wrote out for both (32768x128 value and gradient: a 16 MiB array of 100s).
    hundredth_den = 0.01 * den
    slope = jnp.sign(r) / hundredth_den
    quotient = jnp.abs(r) / (hundredth_den * den)
    return -slope, slope - quotient * jnp.sign(t) * above, -quotient * (1.0 - above)


_percentage_error = _numerics.elementwise(_percentage_error_value, _percentage_error_partials)


@_registry.builtin(aliases=("msle", "mean_squared_logarithmic_error"), tags=("regression",))
def squared_log_error(predictions: ArrayLike, targets: ArrayLike, *, epsilon: ArrayLike = 1e-7,
                      reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                      where: ArrayLike | None = None) -> Array:
    r"""Squared logarithmic error (Keras MSLE).

    .. math::

        \ell = \big(\log(1 + \max(\hat y, \epsilon)) - \log(1 + \max(y, \epsilon))\big)^2

    Args:
      predictions: ``[...]`` float predictions (negative values are clipped
        to ``epsilon``).
      targets: ``[...]`` real targets, same shape.
      epsilon: the clipping floor, ``> 0``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, ``epsilon <= 0``, or an unknown ``reduction``.
      TypeError: non-float ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> x = jnp.array([jnp.e - 1.0])
      >>> round(float(jaxloss.squared_log_error(x, jnp.array([0.0]))), 5)
      1.0

    References:
      Keras ``MeanSquaredLogarithmicError``,
      https://keras.io/api/losses/regression_losses/
    """
    _checks.in_range("squared_log_error", "epsilon", epsilon, low=0.0, low_open=True)
    p, t, where = _pair("squared_log_error", predictions, targets, where)
    values = _squared_log(p, t, jnp.asarray(epsilon, p.dtype))
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn="squared_log_error")


def _squared_log_guarded(p: Array, t: Array, eps: Array) -> Array:
    """``(log1p(max(p, eps)) - log1p(max(t, eps)))^2`` with floors that keep a NaN inside XLA:CPU's fused sums."""
    return jnp.square(jnp.log1p(_numerics.floor_keeping_nan(p, eps)) - jnp.log1p(_numerics.floor_keeping_nan(t, eps)))


@jax.custom_jvp
def _squared_log(p: Array, t: Array, eps: Array) -> Array:
    """:func:`_squared_log_guarded`, its value computed with plain floors and the NaNs put back at the end.

    The guarded floors' two selects were written out before the fused sum
    (32768x128 forward 8.4 -> 4.7 ms, 32 -> 16 MiB of temporaries).
    Differentiated, value and derivative are the guarded form's, whose value
    and gradient program writes nothing out (7.6 ms; this value's 13 ms).
    """
    v = jnp.square(jnp.log1p(jnp.maximum(p, eps)) - jnp.log1p(jnp.maximum(t, eps)))
    return jnp.where(jnp.isnan(p) | jnp.isnan(t), jnp.asarray(jnp.nan, p.dtype), v)


@_squared_log.defjvp
def _squared_log_jvp(primals: tuple[Array, Array, Array], tangents: tuple[Array, Array, Array]
                     ) -> tuple[Array, Array]:
    out: tuple[Array, Array] = jax.jvp(_squared_log_guarded, primals, tangents)
    return out


@_registry.builtin(aliases=("pinball_loss",), tags=("regression",))
def quantile_loss(predictions: ArrayLike, targets: ArrayLike, *, quantile: ArrayLike = 0.5,
                  reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                  where: ArrayLike | None = None) -> Array:
    r"""Quantile (pinball) loss, minimised by the ``quantile``-th conditional quantile.

    .. math::

        \ell = \max(q\, r, (q - 1)\, r), \qquad r = y - \hat y

    Args:
      predictions: ``[...]`` float predictions.
      targets: ``[...]`` real targets, same shape.
      quantile: ``q`` in ``[0, 1]``; a scalar or an array broadcastable to
        ``[...]`` (several quantiles at once).
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, ``quantile`` outside ``[0, 1]`` or not
        broadcastable, or an unknown ``reduction``.
      TypeError: non-float ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> jaxloss.quantile_loss(jnp.array([0.0, 0.0]), jnp.array([1.0, -1.0]), quantile=0.75,
      ...                       reduction="none")
      Array([0.75, 0.25], dtype=float32)

    References:
      Koenker and Bassett, "Regression Quantiles", Econometrica, 1978,
      https://doi.org/10.2307/1913643
    """
    _checks.in_range("quantile_loss", "quantile", quantile, low=0.0, high=1.0)
    p, t, where = _pair("quantile_loss", predictions, targets, where)
    q = _checks.broadcastable("quantile_loss", "quantile", jnp.asarray(quantile, p.dtype), p.shape, "predictions")
    if jnp.ndim(quantile) == 0:
        q = jnp.asarray(quantile, p.dtype)  # a scalar stays one inside the rule (no [...]-sized broadcast)
    values = _pinball(p, t, q)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn="quantile_loss")


def _pinball_value(p: Array, t: Array, q: Array) -> Array:
    r = t - p
    return jnp.maximum(q * r, (q - 1.0) * r)


def _pinball_partials(p: Array, t: Array, q: Array) -> tuple[Array, Array, Array]:
    # d/dr is q above 0 and q - 1 below; at r = 0 it is q - 1/2, the mean of the two (what autodiff of the
    # maximum gave); d/dq is r on both sides.
    r = t - p
    slope = q - 0.5 + 0.5 * jnp.sign(r)
    return -slope, slope, r


# The pinball loss with its derivative read from the inputs again (_numerics.elementwise): the maximum
# stays inside XLA:CPU's fused sum instead of being written out for the gradient (value and gradient
# 32x128 0.68-0.74x, 2048x128 0.66-0.73x, 32768x128 0.75-0.92x the autodiff form).
_pinball = _numerics.elementwise(_pinball_value, _pinball_partials)


_poisson_log_input = _numerics.elementwise(lambda p, t: jnp.exp(p) - t * p, lambda p, t: (jnp.exp(p) - t, -p))


@_registry.builtin(aliases=("poisson",), tags=("regression",))
def poisson_loss(predictions: ArrayLike, targets: ArrayLike, *, epsilon: ArrayLike = 1e-7,
                 reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                 where: ArrayLike | None = None) -> Array:
    r"""Poisson loss on predicted rates (Keras ``Poisson``).

    .. math::

        \ell = \hat y - y \log(\hat y + \epsilon)

    Args:
      predictions: ``[...]`` predicted rates ``>= 0`` (the log argument is
        floored at ``epsilon`` so a negative rate cannot produce NaN).
      targets: ``[...]`` observed counts, same shape.
      epsilon: added inside the logarithm, ``> 0``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, ``epsilon <= 0``, or an unknown ``reduction``.
      TypeError: non-float ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> round(float(jaxloss.poisson_loss(jnp.array([1.0]), jnp.array([2.0]))), 5)
      1.0

    References:
      Keras ``Poisson``, https://keras.io/api/losses/probabilistic_losses/;
      Cameron and Trivedi, "Regression Analysis of Count Data", 1998.
    """
    _checks.in_range("poisson_loss", "epsilon", epsilon, low=0.0, low_open=True)
    p, t, where = _pair("poisson_loss", predictions, targets, where)
    eps = jnp.asarray(epsilon, p.dtype)
    # Floor the log argument at epsilon: Keras gives NaN for predictions < -eps.
    values = _poisson(p, t, eps)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn="poisson_loss")


@_registry.builtin(tags=("regression",))
def poisson_nll_loss(predictions: ArrayLike, targets: ArrayLike, *, log_input: bool = True, full: bool = False,
                     epsilon: ArrayLike = 1e-8, reduction: Literal["none", "sum", "mean"] = "mean",
                     weights: ArrayLike | None = None, where: ArrayLike | None = None) -> Array:
    r"""Poisson negative log-likelihood with torch semantics.

    .. math::

        \ell = \begin{cases} e^{\hat y} - y \hat y & \text{log\_input} \\
               \hat y - y \log(\hat y + \epsilon) & \text{otherwise} \end{cases}
        \; + \; [\text{full}]\,[y > 1]\,\big(y \log y - y + \tfrac12 \log(2\pi y)\big)

    Args:
      predictions: ``[...]`` log-rates (``log_input=True``) or rates.
      targets: ``[...]`` observed counts, same shape.
      log_input: whether ``predictions`` are log-rates.
      full: add the Stirling approximation of ``log(y!)``.
      epsilon: added inside the logarithm when ``log_input=False``, ``> 0``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, ``epsilon <= 0``, non-bool flags, or an
        unknown ``reduction``.
      TypeError: non-float ``predictions``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.poisson_nll_loss(jnp.array([0.0]), jnp.array([3.0])))
      1.0

    References:
      torch ``poisson_nll_loss``,
      https://pytorch.org/docs/stable/generated/torch.nn.PoissonNLLLoss.html
    """
    fn = "poisson_nll_loss"
    _checks.choice(fn, "log_input", log_input, (True, False))
    _checks.choice(fn, "full", full, (True, False))
    _checks.in_range(fn, "epsilon", epsilon, low=0.0, low_open=True)
    p, t, where = _pair(fn, predictions, targets, where)
    if log_input:
        # From 2^14 elements the derivative exp(p) - t is read from the inputs again (_numerics.elementwise),
        # so exp(p) stays inside XLA:CPU's fused sum instead of being written out for the gradient (value and
        # gradient 2048x128 0.65-0.67x, 32768x128 0.72-0.83x; at 32x128 it cost 1.05x).
        split = p.size >= _numerics.SPLIT_DERIVATIVE_MIN_SIZE
        values = _poisson_log_input(p, t) if split else jnp.exp(p) - t * p
    else:
        values = p - t * jnp.log(jnp.maximum(p + jnp.asarray(epsilon, p.dtype), jnp.asarray(epsilon, p.dtype)))
    if full:
        big = t > 1
        safe_t = jnp.where(big, t, jnp.ones_like(t))
        stirling = safe_t * jnp.log(safe_t) - safe_t + 0.5 * jnp.log(2.0 * math.pi * safe_t)
        values = values + jnp.where(big, stirling, jnp.zeros_like(stirling))
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(tags=("regression",))
def gaussian_nll_loss(predictions: ArrayLike, targets: ArrayLike, variance: ArrayLike, *, full: bool = False,
                      epsilon: ArrayLike = 1e-6, reduction: Literal["none", "sum", "mean"] = "mean",
                      weights: ArrayLike | None = None, where: ArrayLike | None = None) -> Array:
    r"""Gaussian negative log-likelihood with a predicted variance (torch semantics).

    .. math::

        \ell = \tfrac12 \Big(\log \max(\sigma^2, \epsilon)
               + \frac{(\hat y - y)^2}{\max(\sigma^2, \epsilon)}\Big)
               + [\text{full}]\, \tfrac12 \log 2\pi

    As in torch, the clamp at ``epsilon`` changes the value but not the
    gradient path: the gradient w.r.t. ``variance`` is that of the formula at
    the clamped value (a straight-through clamp).

    Args:
      predictions: ``[...]`` predicted means.
      targets: ``[...]`` targets, same shape.
      variance: ``[...]`` predicted variances ``>= 0``, same shape (broadcast
        it explicitly, e.g. ``jnp.broadcast_to``, for a shared variance).
      full: add the constant ``0.5 log(2 pi)``.
      epsilon: the variance floor, ``> 0``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: shapes differ, ``epsilon <= 0``, or an unknown ``reduction``.
      TypeError: non-float ``predictions`` or ``variance``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> float(jaxloss.gaussian_nll_loss(jnp.array([2.0]), jnp.array([0.0]), jnp.array([1.0])))
      2.0

    References:
      Nix and Weigend, "Estimating the mean and variance of the target
      probability distribution", ICNN 1994, https://doi.org/10.1109/ICNN.1994.374138;
      torch ``gaussian_nll_loss``.
    """
    fn = "gaussian_nll_loss"
    _checks.choice(fn, "full", full, (True, False))
    _checks.in_range(fn, "epsilon", epsilon, low=0.0, low_open=True)
    (p, v, t), where = _checks.elementwise_inputs(
        fn, where, [("predictions", predictions), ("variance", variance)], [("targets", targets)],
        safe_values=[0.0, 1.0, 0.0])
    # torch clamps under no_grad: value at the clamped variance, gradient as if unclamped.
    v = v + jax.lax.stop_gradient(jnp.maximum(v, jnp.asarray(epsilon, v.dtype)) - v)
    values = 0.5 * (jnp.log(v) + jnp.square(p - t) / v)
    if full:
        values = values + 0.5 * math.log(2.0 * math.pi)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)
