r"""Robust, adaptive and multi-task losses.

* :func:`general_robust_loss`: Barron's general robust loss :math:`\rho(x, \alpha, c)`,
  one smooth function of the residual whose shape parameter :math:`\alpha`
  moves continuously through L2 (:math:`\alpha = 2`), pseudo-Huber/Charbonnier
  (1), Cauchy/log (0), Geman-McClure (-2) and Welsch (:math:`-\infty`).
  Elementwise.
* :func:`adaptive_robust_nll`: the negative log-likelihood of Barron's
  distribution, :math:`\rho + \log c + \log Z(\alpha)`, so that :math:`\alpha`
  and :math:`c` can be learned by gradient descent. Elementwise.
* :func:`uncertainty_weighted_sum`: Kendall et al.'s homoscedastic-uncertainty
  weighting of several task losses with learned log variances. Per example
  (sums the task axis).

The log partition function :math:`\log Z(\alpha)` is tabulated over
:math:`\alpha \in [0, 4]` in ``jaxloss/data/robust_log_partition.npz`` by
``scripts/robust_log_partition.py`` (``scipy.integrate.quad`` in float64) and
interpolated with a cubic Hermite spline (relative error below 1e-6).
"""

from __future__ import annotations

import functools
import importlib.resources
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from jaxloss import _checks, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array

# |alpha - 2| below which rho is evaluated in the form that is exact at alpha = 2.
_NEAR_TWO = 0.1
# Taylor coefficients of expm1(t) / t = sum_k t^k / (k + 1)!, used for |t| < 0.25.
_EXPREL_COEFFS = tuple(1.0 / float(np.prod(np.arange(1, k + 2))) for k in range(11))
_EXPREL_SWITCH = 0.25
# Taylor coefficients of log1p(y) / y = sum_k (-y)^k / (k + 1), used for 0 <= y < 0.1.
_LOG1P_COEFFS = tuple((-1.0) ** k / (k + 1) for k in range(16))
_LOG1P_SWITCH = 0.1
# Range of alpha covered by the log-partition table.
_NLL_ALPHA_MIN, _NLL_ALPHA_MAX = 0.0, 4.0


# --------------------------------------------------------------------- helpers
def _horner(coeffs: tuple[float, ...], t: Array) -> Array:
    out = jnp.full_like(t, coeffs[-1])
    for c in coeffs[-2::-1]:
        out = out * t + c
    return out


@jax.custom_jvp
def _expm1(t: Array) -> Array:
    """``expm1`` whose derivative is ``exp(t)``.

    ``jnp.expm1`` differentiates as ``expm1(t) + 1``, which loses all relative
    accuracy for ``t << 0`` (float32: 2.6% at ``t = -15``), exactly where the
    bounded losses (``alpha < 0``) are nearly flat.
    """
    return jnp.expm1(t)


@_expm1.defjvp
def _expm1_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (t,), (dt,) = primals, tangents
    return jnp.expm1(t), jnp.exp(t) * dt


def _scaled_expm1(h: Array, ratio: Array) -> Array:
    """``expm1(ratio * h) / ratio`` (``= h`` at ``ratio = 0``), accurate with accurate derivatives.

    For small ``t = ratio * h`` it is ``h * exprel(t)`` with the Taylor series of
    ``exprel(t) = expm1(t) / t`` (autodiff of ``expm1(t) / t`` cancels
    catastrophically there); otherwise ``expm1(t) / ratio``, whose derivative
    ``e^t`` w.r.t. ``h`` does not cancel even where ``rho`` is nearly flat.
    Double-where: neither branch ever divides by 0.
    """
    t = ratio * h
    small = jnp.abs(t) < _EXPREL_SWITCH
    series = h * _horner(_EXPREL_COEFFS, jnp.where(small, t, jnp.zeros_like(t)))
    safe_ratio = jnp.where(small, jnp.ones_like(ratio), ratio)
    direct = _expm1(jnp.where(small, jnp.zeros_like(t), t)) / safe_ratio
    return jnp.where(small, series, direct)


def _log1p_ratio(y: Array) -> Array:
    """``log1p(y) / y`` for ``y >= 0``, 1 at ``y = 0``, by its Taylor series near 0."""
    small = y < _LOG1P_SWITCH
    safe = jnp.where(small, jnp.ones_like(y), y)
    return jnp.where(small, _horner(_LOG1P_COEFFS, jnp.where(small, y, jnp.zeros_like(y))),
                     jnp.log1p(safe) / safe)


def _rho(z: Array, alpha: Array) -> Array:
    r"""Barron's :math:`\rho` as a function of ``z = (x / c)^2 >= 0`` and ``alpha`` (same shape).

    With :math:`b = |\alpha - 2|`, :math:`y = z / b` and :math:`L = \log(1 + y)`:

    .. math::

        \rho = \frac{b}{\alpha}\big((1 + y)^{\alpha/2} - 1\big)
             = \underbrace{\tfrac{z}{2}\tfrac{L}{y}}_{h}\,
               \operatorname{exprel}\!\big(\tfrac{\alpha}{b} h\big)
             = \frac{z + (b + z)\operatorname{expm1}\big(\tfrac{\alpha - 2}{2} L\big)}{\alpha}.

    The second form (``exprel(t) = expm1(t) / t``, evaluated by
    :func:`_scaled_expm1`) has no 0/0 at
    :math:`\alpha = 0` and tends to Welsch's :math:`1 - e^{-z/2}` (or
    :math:`e^{z/2} - 1`) as :math:`\alpha/b \to \mp 1`, so :math:`\pm\infty`
    need no special case. The third form is exact at :math:`\alpha = 2`
    (:math:`z / 2`); it is used for :math:`|\alpha - 2| < 0.1`, where
    :math:`b` is smoothed to :math:`\sqrt{(\alpha - 2)^2 + \epsilon^2}`
    (:math:`\epsilon` the machine epsilon) so the gradient w.r.t. alpha stays
    finite: the exact one diverges like :math:`-\tfrac{z}{4}\log|\alpha - 2|`.
    """
    eps = jnp.finfo(z.dtype).eps
    finite = jnp.isfinite(alpha)
    near_two = finite & (jnp.abs(alpha - 2.0) < _NEAR_TWO)

    # Away from alpha = 2 (and at +-inf): h * exprel(alpha / b * h). Safe inputs
    # (alpha = 0) at the positions the other branch takes.
    a = jnp.where(near_two | ~finite, jnp.zeros_like(alpha), alpha)
    b = jnp.abs(a - 2.0)
    y = jnp.where(finite, z / b, jnp.zeros_like(z))                 # y = 0 at alpha = +-inf
    ratio = jnp.where(finite, a / b, jnp.sign(alpha))               # alpha / |alpha - 2| -> +-1
    h = 0.5 * z * _log1p_ratio(y)                                   # = b log(1 + z / b) / 2
    far = _scaled_expm1(h, ratio)                                   # (b / alpha) expm1(alpha L / 2)

    # Near alpha = 2: (1 + y)^(a/2) = (1 + y) exp((a - 2) L / 2), exact at a = 2.
    a2 = jnp.where(near_two, alpha, jnp.full_like(alpha, 2.0))
    d2 = a2 - 2.0
    b2 = jnp.sqrt(d2 * d2 + eps * eps)
    log_term = jnp.log1p(z / b2)
    near = (z + (b2 + z) * _expm1(0.5 * d2 * log_term)) / a2
    return jnp.where(near_two, near, far)


def _hyper(fn: str, name: str, value: ArrayLike, shape: tuple[int, ...], dtype: DTypeLike, where: Array | None,
           safe_value: float) -> Array:
    """A scalar-or-array hyper-parameter broadcast to ``shape``, masked like the data."""
    value = _checks.real(fn, name, value)
    value = _checks.broadcastable(fn, name, value, shape, "residuals").astype(dtype)
    return _numerics.mask_inputs(where, value, safe_value)


def _robust_inputs(fn: str, residuals: ArrayLike, alpha: ArrayLike, scale: ArrayLike, where: ArrayLike | None
                   ) -> tuple[Array, Array, Array, Array | None]:
    _checks.in_range(fn, "scale", scale, low=0.0, low_open=True)
    (x,), where = _checks.elementwise_inputs(fn, where, [("residuals", residuals)])
    alpha = _hyper(fn, "alpha", alpha, x.shape, x.dtype, where, 1.0)
    scale = _hyper(fn, "scale", scale, x.shape, x.dtype, where, 1.0)
    return x, alpha, scale, where


@functools.lru_cache(maxsize=None)
def _partition_table() -> tuple[float, float, np.ndarray, np.ndarray]:
    path = importlib.resources.files("jaxloss") / "data" / "robust_log_partition.npz"
    with path.open("rb") as f, np.load(f) as data:
        return (float(data["alpha_min"]), float(data["alpha_max"]),
                np.asarray(data["values"], np.float64), np.asarray(data["slopes"], np.float64))


def _log_partition(alpha: Array) -> Array:
    r""":math:`\log Z(\alpha)` for ``alpha`` in ``[0, 4]`` (clamped outside).

    The table holds the smooth part :math:`R = \log Z - S` and its slope, with
    :math:`S(\alpha) = \tfrac14 (\alpha - 2) \log|\alpha - 2|` the weak
    singularity at :math:`\alpha = 2` (see ``scripts/robust_log_partition.py``);
    :math:`R` is interpolated with a cubic Hermite spline (C1, jittable,
    differentiable) and :math:`S` is added back with :math:`|\alpha - 2|`
    smoothed as in :func:`_rho`.
    """
    lo, hi, values, slopes = _partition_table()
    dtype = alpha.dtype
    n = values.shape[0] - 1
    step = (hi - lo) / n
    alpha = jnp.clip(alpha, lo, hi)
    u = (alpha - lo) / step
    i = jnp.clip(jnp.floor(jax.lax.stop_gradient(u)), 0, n - 1)
    t = u - i
    i = i.astype(jnp.int32)
    v = jnp.asarray(values, dtype)
    m = jnp.asarray(slopes * step, dtype)
    h00 = (1.0 + 2.0 * t) * jnp.square(1.0 - t)
    h10 = t * jnp.square(1.0 - t)
    h01 = jnp.square(t) * (3.0 - 2.0 * t)
    h11 = jnp.square(t) * (t - 1.0)
    smooth: Array = h00 * v[i] + h10 * m[i] + h01 * v[i + 1] + h11 * m[i + 1]
    d = alpha - 2.0
    eps = jnp.finfo(dtype).eps
    singular: Array = 0.125 * d * jnp.log(d * d + eps * eps)   # (d / 4) log sqrt(d^2 + eps^2)
    return smooth + singular


# ---------------------------------------------------------------------- losses
@_registry.builtin(tags=("robust",))
def general_robust_loss(residuals: ArrayLike, *, alpha: ArrayLike, scale: ArrayLike,
                        reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                        where: ArrayLike | None = None) -> Array:
    r"""Barron's general and adaptive robust loss :math:`\rho(x, \alpha, c)`.

    .. math::

        \rho(x, \alpha, c) = \frac{|\alpha - 2|}{\alpha}
            \left(\left(\frac{(x / c)^2}{|\alpha - 2|} + 1\right)^{\alpha / 2} - 1\right)

    with its limits and special cases (:math:`z = (x/c)^2`):

    ================  =====================================  =========================
    :math:`\alpha`    :math:`\rho`                           name
    ================  =====================================  =========================
    2                 :math:`z / 2`                          L2
    1                 :math:`\sqrt{z + 1} - 1`               pseudo-Huber, Charbonnier
    0                 :math:`\log(z / 2 + 1)`                Cauchy, Lorentzian
    -2                :math:`2 z / (z + 4)`                  Geman-McClure
    :math:`-\infty`   :math:`1 - e^{-z/2}`                   Welsch, Leclerc
    :math:`+\infty`   :math:`e^{z/2} - 1`
    ================  =====================================  =========================

    Every real ``alpha`` (and :math:`\pm\infty`) is handled by one jittable
    formula, with ``expm1``/``log1p`` and series where the closed form has a
    0/0: the value and the gradients w.r.t. ``residuals``, ``alpha`` and
    ``scale`` are finite and continuous in ``alpha``, including across 0 and 2.
    :math:`\rho` is smooth in :math:`\alpha` except at :math:`\alpha = 2`,
    where the exact :math:`\partial\rho/\partial\alpha` diverges slowly, like
    :math:`-\tfrac{z}{4}\log|\alpha - 2|`; there :math:`|\alpha - 2|` is
    smoothed to :math:`\sqrt{(\alpha - 2)^2 + \epsilon^2}` (:math:`\epsilon`
    the machine epsilon of the compute dtype), which changes the value by less
    than :math:`\epsilon z` and caps the gradient at
    :math:`\tfrac{z}{4}(\log(z/\epsilon) - 1)`. :math:`\rho \ge 0`, it is 0 at
    :math:`x = 0`, increasing in :math:`|x|`, increasing in :math:`\alpha`,
    and bounded by :math:`|\alpha - 2| / |\alpha|` for :math:`\alpha < 0`.
    For :math:`\alpha > 2` it grows faster than :math:`x^2` and overflows for
    large residuals, as the formula does.

    Args:
      residuals: ``[...]`` float residuals :math:`x` (e.g. ``predictions - targets``).
      alpha: shape parameter :math:`\alpha`, any real number or ``-inf``/``inf``; a
        scalar or an array broadcastable to ``[...]`` (a per-dimension shape);
        Python, NumPy or a traced (learned) array.
      scale: scale :math:`c > 0` (the width of the quadratic bowl near 0); a
        scalar or an array broadcastable to ``[...]``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`).
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: ``alpha``/``scale`` not broadcastable to ``residuals``, a
        concrete ``scale <= 0`` or NaN ``alpha``, or an unknown ``reduction``.
      TypeError: non-float ``residuals``, complex ``alpha`` or ``scale``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.robust import general_robust_loss
      >>> x = jnp.array([0.0, 1.0, 2.0, 5.0])
      >>> general_robust_loss(x, alpha=2.0, scale=1.0, reduction="none")  # x^2 / 2
      Array([ 0. ,  0.5,  2. , 12.5], dtype=float32)
      >>> [round(float(v), 5) for v in general_robust_loss(x, alpha=1.0, scale=1.0, reduction="none")]
      [0.0, 0.41421, 1.23607, 4.09902]
      >>> [round(float(v), 5) for v in general_robust_loss(x, alpha=-jnp.inf, scale=1.0, reduction="none")]
      [0.0, 0.39347, 0.86466, 1.0]
      >>> # alpha and scale can be learned: finite gradients, even at alpha = 0 and 2.
      >>> import jax
      >>> grad_alpha = jax.grad(lambda a: general_robust_loss(x, alpha=a, scale=1.0))
      >>> round(float(grad_alpha(0.0)), 4), bool(jnp.isfinite(grad_alpha(2.0)))
      (0.2365, True)

    References:
      Barron, "A General and Adaptive Robust Loss Function", CVPR 2019,
      https://arxiv.org/abs/1701.03077
    """
    fn = "general_robust_loss"
    _checks.in_range(fn, "alpha", alpha)
    x, alpha, scale, where = _robust_inputs(fn, residuals, alpha, scale, where)
    z = jnp.square(x / scale)
    return reduce_values(_rho(z, alpha), reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(tags=("robust",))
def adaptive_robust_nll(residuals: ArrayLike, *, alpha: ArrayLike, scale: ArrayLike,
                        reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                        where: ArrayLike | None = None) -> Array:
    r"""Negative log-likelihood of Barron's distribution: learnable robustness.

    .. math::

        -\log p(x \mid \alpha, c) = \rho(x, \alpha, c) + \log c + \log Z(\alpha),
        \qquad Z(\alpha) = \int_{-\infty}^{\infty} e^{-\rho(x, \alpha, 1)}\, dx

    Minimising :func:`general_robust_loss` over :math:`\alpha` always favours
    small :math:`\alpha` (:math:`\rho` increases with :math:`\alpha`); the log
    partition :math:`\log Z(\alpha)` is the price of robustness that makes
    :math:`\alpha` (and :math:`c`, through :math:`\log c`) learnable. At
    :math:`\alpha = 2` this is the Gaussian NLL with :math:`\sigma = c`, at
    :math:`\alpha = 0` a Cauchy NLL with scale :math:`\sqrt2 c`.

    :math:`\log Z` is tabulated on :math:`[0, 4]` (the distribution is not
    normalisable for :math:`\alpha < 0`) and interpolated by a cubic Hermite
    spline, relative error < 1e-6 against ``scipy.integrate.quad``
    (``scripts/robust_log_partition.py --check``). ``alpha`` outside
    ``[0, 4]`` raises ``ValueError`` when concrete and is clamped to
    ``[0, 4]`` when traced (with zero gradient outside), so keep a learned
    alpha inside, e.g. ``alpha = 4 * jax.nn.sigmoid(latent)``. Like
    :math:`\rho`, :math:`\log Z` has a weak :math:`(\alpha-2)\log|\alpha-2|`
    singularity at 2, smoothed the same way.

    Args:
      residuals: ``[...]`` float residuals :math:`x`.
      alpha: shape parameter in ``[0, 4]``; a scalar or an array broadcastable
        to ``[...]`` (one alpha per output dimension, as in Barron's adaptive loss).
      scale: scale :math:`c > 0`; a scalar or an array broadcastable to ``[...]``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` elementwise values (nats) for ``reduction="none"``, else a scalar.

    Raises:
      ValueError: concrete ``alpha`` outside ``[0, 4]``, concrete
        ``scale <= 0``, ``alpha``/``scale`` not broadcastable, or an unknown
        ``reduction``.
      TypeError: non-float ``residuals``.

    Example:
      >>> import math
      >>> import jax.numpy as jnp
      >>> from jaxloss.robust import adaptive_robust_nll
      >>> x = jnp.array([0.0, 1.0])
      >>> nll = adaptive_robust_nll(x, alpha=2.0, scale=1.0, reduction="none")
      >>> [round(float(v), 5) for v in nll]  # Gaussian NLL: x^2 / 2 + log(2 pi) / 2
      [0.91894, 1.41894]
      >>> round(0.5 * math.log(2 * math.pi), 5)
      0.91894
      >>> round(float(adaptive_robust_nll(x[:1], alpha=0.0, scale=1.0)), 5)  # log(pi sqrt 2)
      1.4913

    References:
      Barron, "A General and Adaptive Robust Loss Function", CVPR 2019,
      https://arxiv.org/abs/1701.03077 (section 3, the probability density
      and its partition function)
    """
    fn = "adaptive_robust_nll"
    _checks.in_range(fn, "alpha", alpha, low=_NLL_ALPHA_MIN, high=_NLL_ALPHA_MAX)
    x, alpha, scale, where = _robust_inputs(fn, residuals, alpha, scale, where)
    # Clamp with where (not clip): gradient 1 at the end points, 0 outside.
    alpha = jnp.where(alpha < _NLL_ALPHA_MIN, jnp.full_like(alpha, _NLL_ALPHA_MIN),
                      jnp.where(alpha > _NLL_ALPHA_MAX, jnp.full_like(alpha, _NLL_ALPHA_MAX), alpha))
    z = jnp.square(x / scale)
    values = _rho(z, alpha) + jnp.log(scale) + _log_partition(alpha)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(tags=("robust", "multitask"))
def uncertainty_weighted_sum(losses: ArrayLike, log_variances: ArrayLike, *,
                             reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                             where: ArrayLike | None = None) -> Array:
    r"""Multi-task loss weighted by learned homoscedastic uncertainty.

    .. math::

        \ell = \sum_{k=1}^{K} e^{-s_k} L_k + s_k, \qquad s_k = \log \sigma_k^2

    the form of Kendall et al. (2018) as commonly implemented, for every task.
    Train the log variances :math:`s_k` with the network: a task whose loss
    stays large gets a large :math:`\sigma_k^2` (a small weight
    :math:`e^{-s_k}`), and the :math:`+ s_k` term stops every weight from
    collapsing to 0. At the optimum :math:`e^{s_k} = L_k`.

    The paper derives slightly different constants per task type:

    * **regression** (Gaussian likelihood, :math:`L_k` the squared error):
      :math:`\tfrac{1}{2\sigma^2} L_k + \log\sigma = \tfrac12 (e^{-s_k} L_k + s_k)`,
      i.e. half of this function's term;
    * **classification** (softmax with temperature, :math:`L_k` the cross
      entropy): :math:`\tfrac{1}{\sigma^2} L_k + \log\sigma
      = \tfrac12 (e^{-s_k} (2 L_k) + s_k)`, i.e. half of this function's term
      applied to :math:`2 L_k`.

    The common form drops these factors (they rescale the tasks' effective
    learning rates only); to reproduce the paper exactly pass ``2 * L_k`` for
    classification tasks and multiply the result by 1/2.

    This is a loss in the library's sense (registered, with the common
    keywords): per example it sums the task axis, so for the usual input of
    ``K`` already-reduced task losses the unreduced value is the scalar above
    and every ``reduction`` returns it unchanged; given per-example task losses
    ``[..., K]`` it returns ``[...]`` values that ``reduction`` averages.

    Args:
      losses: ``[..., K]`` float task losses :math:`L_k` (usually ``[K]``, each
        already reduced over its batch).
      log_variances: ``[..., K]`` (same shape) or ``[K]`` (shared by every
        example) float log variances :math:`s_k`, usually a trainable parameter
        initialised to 0.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``[...]``.
      where: boolean mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values for ``reduction="none"`` (a scalar for
      ``[K]`` inputs), else a scalar.

    Raises:
      ValueError: ``losses`` of rank 0, ``log_variances`` neither of the shape
        of ``losses`` nor ``[K]``, or an unknown ``reduction``.
      TypeError: non-float ``losses`` or ``log_variances``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.robust import uncertainty_weighted_sum
      >>> task_losses = jnp.array([0.5, 2.0])
      >>> float(uncertainty_weighted_sum(task_losses, jnp.zeros(2)))  # plain sum at s = 0
      2.5
      >>> s = jnp.log(task_losses)  # the optimum: exp(s_k) = L_k
      >>> round(float(uncertainty_weighted_sum(task_losses, s)), 5)  # K + sum(log L_k)
      2.0

    References:
      Kendall, Gal and Cipolla, "Multi-Task Learning Using Uncertainty to
      Weigh Losses for Scene Geometry and Semantics", CVPR 2018,
      https://arxiv.org/abs/1705.07115
    """
    fn = "uncertainty_weighted_sum"
    losses = _checks.floating(fn, "losses", losses)
    log_variances = _checks.floating(fn, "log_variances", log_variances)
    _checks.rank_at_least(fn, "losses", losses, 1, "[..., K] task losses")
    shape = losses.shape
    if log_variances.shape != shape:
        if log_variances.ndim != 1 or log_variances.shape[0] != shape[-1]:
            _checks._fail(ValueError, _checks.message(
                fn, "log_variances", f"must have the shape of losses {shape} or [K] = ({shape[-1]},)",
                f"shape {log_variances.shape}"))
        log_variances = jnp.broadcast_to(log_variances, shape)
    dtype = _numerics.compute_dtype(losses, log_variances)
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), shape[:-1],
                                      "the unreduced loss shape")
    task_where = _numerics.expand_where(where, -1)
    l = _numerics.mask_inputs(task_where, losses.astype(dtype))
    s = _numerics.mask_inputs(task_where, log_variances.astype(dtype))
    values = jnp.sum(jnp.exp(-s) * l + s, axis=-1)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)
