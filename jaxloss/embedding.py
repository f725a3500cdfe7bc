"""Embedding and self-supervision losses (``jaxloss.embedding``).

Pairwise losses (:func:`cosine_distance`, :func:`cosine_embedding_loss`,
:func:`hinge_embedding_loss`, :func:`triplet_margin_loss`,
:func:`contrastive_loss`) return one value per example (the input shape minus
the feature axis). Batch-global losses (:func:`batch_hard_triplet_loss`,
:func:`ntxent_loss`, :func:`supervised_contrastive_loss`, :func:`info_nce_loss`,
:func:`clip_loss`, :func:`siglip_loss`, :func:`circle_loss`) compare every
example with every other one of the batch; they return one value per anchor
``[B]`` and take ``axis_name``: inside ``jax.shard_map`` (or ``pmap``) they
``all_gather`` the embeddings of every device, so all examples of the global
batch serve as candidates, and the value and gradients equal the single-device
computation on the full batch.

For the batch-global losses ``where`` (shape ``[B]``) removes an example both
as an anchor and as a candidate (positive or negative) of the other anchors,
so masking an example equals slicing it off the batch.

Contrastive losses compare L2-normalised embeddings (cosine similarity);
Euclidean distances use a square root with a finite gradient at 0.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _checks, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array


# ------------------------------------------------------------ private helpers
def _unit_norm(x: Array, axis: int, epsilon: Any) -> Array:
    """``sqrt(max(|x|^2, epsilon))`` along ``axis`` (kept), optax's clipped norm.

    The clip has zero gradient below ``epsilon``; ``epsilon = 0`` at the zero
    vector would divide by 0, so callers divide with :func:`_numerics.safe_div`.
    """
    squared = jnp.sum(x * x, axis=axis, keepdims=True)
    return _numerics.safe_sqrt(jnp.maximum(squared, jnp.asarray(epsilon, x.dtype)))


def _cosine(fn: str, predictions: Any, targets: Any, axis: int, epsilon: Any,
            where: Any) -> tuple[Array, Any]:
    """Cosine similarity along ``axis`` and the per-example ``where``."""
    _checks.in_range(fn, "epsilon", epsilon, low=0.0)
    p = _checks.floating(fn, "predictions", predictions)
    t = _checks.floating(fn, "targets", targets)
    _checks.same_shape(fn, ("predictions", p), ("targets", t))
    _checks.rank_at_least(fn, "predictions", p, 1, "[..., features]")
    axis = _checks.normalize_axis(fn, axis, p.ndim)
    dtype = _numerics.compute_dtype(p, t)
    p, t = p.astype(dtype), t.astype(dtype)
    out_shape = p.shape[:axis] + p.shape[axis + 1:]
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), out_shape,
                                      "the unreduced loss shape")
        mask = _numerics.expand_where(where, axis)
        p, t = _numerics.mask_inputs(mask, p), _numerics.mask_inputs(mask, t)
    p_unit = _numerics.safe_div(p, _unit_norm(p, axis, epsilon))
    t_unit = _numerics.safe_div(t, _unit_norm(t, axis, epsilon))
    return jnp.sum(p_unit * t_unit, axis=axis), where


# ---------------------------------------------------------- cosine similarity
def cosine_similarity(predictions: Any, targets: Any, *, axis: int = -1, epsilon: Any = 1e-8,
                      reduction: str = "mean", weights: Any = None, where: Any = None) -> Array:
    r"""Cosine similarity of two batches of vectors (a similarity, not a loss).

    .. math::

        s = \frac{\langle p, t \rangle}
                 {\sqrt{\max(\|p\|^2, \epsilon)}\,\sqrt{\max(\|t\|^2, \epsilon)}}

    optax ``cosine_similarity`` semantics: ``epsilon`` bounds the *squared*
    norms from below, so the zero vector has similarity 0 with anything, with
    finite gradients. Being a similarity (to be maximised) it is not in the
    loss registry; the minimisable form is :func:`cosine_distance`.

    Args:
      predictions: ``[..., D]`` float vectors (features on ``axis``).
      targets: float vectors of the same shape.
      axis: the feature axis (a Python int).
      epsilon: lower bound of the squared norms, ``>= 0``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (see :func:`jaxloss.reduce`);
        ``"none"`` gives optax's per-example values.
      weights: float weights broadcastable to the per-example shape.
      where: boolean mask broadcastable to the per-example shape.

    Returns:
      Per example, the input shape without ``axis``, for ``reduction="none"``;
      else a scalar. Values lie in ``[-1, 1]``.

    Raises:
      ValueError: shapes differ, ``axis`` out of range, ``epsilon < 0``, or an
        unknown ``reduction``.
      TypeError: non-float ``predictions`` or ``targets``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import embedding
      >>> x = jnp.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
      >>> y = jnp.array([[2.0, 0.0], [0.0, -3.0], [1.0, 0.0]])
      >>> embedding.cosine_similarity(x, y, reduction="none")
      Array([ 1., -1.,  0.], dtype=float32)

    References:
      optax ``cosine_similarity``, https://optax.readthedocs.io/en/latest/api/losses.html;
      Salton and McGill, "Introduction to Modern Information Retrieval", 1983.
    """
    fn = "cosine_similarity"
    values, where = _cosine(fn, predictions, targets, axis, epsilon, where)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(aliases=("cosine_similarity",), tags=("embedding",))
def cosine_distance(predictions: Any, targets: Any, *, axis: int = -1, epsilon: Any = 1e-8,
                    reduction: str = "mean", weights: Any = None, where: Any = None) -> Array:
    r"""Cosine distance, one minus the cosine similarity.

    .. math::

        \ell = 1 - \frac{\langle p, t \rangle}
                        {\sqrt{\max(\|p\|^2, \epsilon)}\,\sqrt{\max(\|t\|^2, \epsilon)}}

    optax ``cosine_distance`` semantics. The Keras loss identifier
    ``"cosine_similarity"`` resolves to this function in the registry: Keras's
    ``CosineSimilarity`` loss is :math:`-\cos`, this one :math:`1 - \cos`, so
    the values differ by the constant 1 and the gradients are identical.

    Args:
      predictions: ``[..., D]`` float vectors (features on ``axis``).
      targets: float vectors of the same shape.
      axis: the feature axis (a Python int).
      epsilon: lower bound of the squared norms, ``>= 0``.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float weights broadcastable to the per-example shape.
      where: boolean mask broadcastable to the per-example shape.

    Returns:
      Per example, the input shape without ``axis``, for ``reduction="none"``;
      else a scalar. Values lie in ``[0, 2]``.

    Raises:
      ValueError: shapes differ, ``axis`` out of range, ``epsilon < 0``, or an
        unknown ``reduction``.
      TypeError: non-float ``predictions`` or ``targets``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> from jaxloss import embedding
      >>> x = jnp.array([[1.0, 0.0], [0.0, 2.0]])
      >>> y = jnp.array([[2.0, 0.0], [0.0, -3.0]])
      >>> embedding.cosine_distance(x, y, reduction="none")
      Array([0., 2.], dtype=float32)
      >>> jaxloss.get("cosine_similarity") is embedding.cosine_distance
      True
      >>> float(embedding.cosine_distance(x, y))
      1.0

    References:
      optax ``cosine_distance``, https://optax.readthedocs.io/en/latest/api/losses.html;
      Keras ``CosineSimilarity``, https://keras.io/api/losses/regression_losses/
    """
    fn = "cosine_distance"
    values, where = _cosine(fn, predictions, targets, axis, epsilon, where)
    return reduce_values(1.0 - values, reduction=reduction, weights=weights, where=where, fn=fn)
