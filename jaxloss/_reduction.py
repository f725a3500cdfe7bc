"""The one reduction path: ``reduction``, ``weights`` and ``where``."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _checks, _numerics


def reduce_values(
    values: jax.Array,
    *,
    reduction: str,
    weights: Any,
    where: Any,
    fn: str,
    normalizer: jax.Array | None = None,
    axis_name: Any = None,
    narrow_apart: bool = True,
) -> jax.Array:
    """Implementation of :func:`jaxloss.reduce`, naming ``fn`` in its errors.

    ``normalizer`` (broadcastable to ``values``) is the per-position weight a
    loss adds to the ``"mean"`` denominator only: the integer-label losses put
    ``class_weights[label]`` here and fold it into ``values`` themselves, which
    reproduces ``torch.nn.functional.cross_entropy`` (a weighted mean divided by
    the sum of the class weights of the unmasked positions).

    ``narrow_apart``: values whose last axis has one or two elements are
    computed apart from the sum (:func:`_numerics.reduction_input`); a loss
    whose values are plain differences and products (the squared error) passes
    ``False``, since XLA:CPU's fused reduction runs those at full speed and the
    extra pass would only cost (``[2^20, 1]`` value and gradient: 1.11x optax).
    """
    _checks.reduction(fn, reduction)
    values = jnp.asarray(values)
    shape = values.shape
    dtype = _numerics.compute_dtype(values)
    values = values.astype(dtype)
    if where is not None:
        where = _checks.boolean(fn, "where", where)
        where = _checks.broadcastable(fn, "where", where, shape, "the unreduced loss shape")
    if weights is not None:
        weights = _checks.floating(fn, "weights", weights)
        weights = _checks.broadcastable(fn, "weights", weights, shape, "the unreduced loss shape").astype(dtype)
    if normalizer is not None:
        normalizer = jnp.broadcast_to(jnp.asarray(normalizer, dtype), shape)

    # Second half of the double-where: a masked value is exactly 0, even when it
    # is nan or inf (the loss has already replaced masked inputs by safe ones).
    if where is not None:
        values = jnp.where(where, values, jnp.zeros_like(values))
    weighted = values if weights is None else values * weights
    if where is not None and weights is not None:
        weighted = jnp.where(where, weighted, jnp.zeros_like(weighted))

    if reduction == "none":
        return weighted
    total = jnp.sum(weighted if where is not None or not narrow_apart else _numerics.reduction_input(weighted))
    if axis_name is not None:
        total = jax.lax.psum(total, axis_name)
    if reduction == "sum":
        return total

    # "mean": sum(w * l) / sum(w) over unmasked positions.
    denom_terms = jnp.ones(shape, dtype) if weights is None else weights
    if normalizer is not None:
        denom_terms = denom_terms * normalizer
    if where is not None:
        denom_terms = jnp.where(where, denom_terms, jnp.zeros_like(denom_terms))
    denominator = jnp.sum(denom_terms)
    if axis_name is not None:
        denominator = jax.lax.psum(denominator, axis_name)
    # An empty denominator gives 0 with zero gradient, never nan.
    return _numerics.safe_div(total, denominator)


def reduce(
    values: jax.Array,
    *,
    reduction: str = "mean",
    weights: jax.Array | None = None,
    where: jax.Array | None = None,
    axis_name: Any = None,
) -> jax.Array:
    r"""Reduces unreduced loss values by the rules every jaxloss loss follows.

    With :math:`l` the unreduced values, :math:`w` the weights (1 if ``None``)
    and :math:`m` the mask (``True`` if ``None``):

    .. math::

        \text{none}: m \, w \, l \qquad
        \text{sum}: \sum m \, w \, l \qquad
        \text{mean}: \frac{\sum m \, w \, l}{\sum m \, w}

    An empty denominator (everything masked, or weights summing to 0) gives
    ``0.0`` with zero gradient, never NaN. A masked value is exactly 0 in the
    result even when it is ``nan`` or ``inf``.

    Args:
      values: unreduced loss values, any shape ``[...]``, any float dtype.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to ``values.shape`` (sample or
        element weights), or ``None``.
      where: boolean mask broadcastable to ``values.shape``; ``False`` removes a
        position from the value, the denominator and every gradient.
      axis_name: inside ``shard_map``/``pmap``, the mapped axis name(s) over
        which numerator and denominator are summed (``psum``), so the result is
        the global-batch value on every device.

    Returns:
      ``values.shape`` for ``"none"``, else a scalar; float32 for 16-bit input,
      else the input's float dtype.

    Raises:
      ValueError: unknown ``reduction``, or ``weights``/``where`` that do not
        broadcast to ``values.shape``.
      TypeError: non-float ``weights`` or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> values = jnp.array([1.0, 2.0, 3.0, 4.0])
      >>> float(jaxloss.reduce(values))
      2.5
      >>> float(jaxloss.reduce(values, where=jnp.array([True, True, False, False])))
      1.5
      >>> float(jaxloss.reduce(values, weights=jnp.array([1.0, 0.0, 0.0, 1.0])))
      2.5
      >>> float(jaxloss.reduce(values, where=jnp.zeros(4, bool)))
      0.0

    References:
      Paszke et al., "PyTorch: An Imperative Style, High-Performance Deep
      Learning Library", 2019 (weighted-mean semantics of ``reduction="mean"``),
      https://arxiv.org/abs/1912.01703
    """
    return reduce_values(values, reduction=reduction, weights=weights, where=where,
                         fn="reduce", axis_name=axis_name)
