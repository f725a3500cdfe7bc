"""Self-supervised pre-training losses (``jaxloss.self_supervised``).

* :func:`byol_loss` and :func:`simsiam_loss` compare two views per example and
  return one value per example ``[...]``; the targets pass through
  ``stop_gradient`` exactly where the papers put it, so their gradient is 0.
* :func:`barlow_twins_loss` and :func:`vicreg_loss` are statistics of the
  whole batch (feature means, variances, cross-correlations): their unreduced
  value is one scalar. ``where`` (shape ``[B]``) removes examples from those
  statistics (masking equals slicing them off), and inside
  ``jax.shard_map``/``pmap`` with ``axis_name`` the statistics are summed over
  devices (``psum``), so every device gets the full-batch value and gradients.
* :func:`dino_loss` is per example ``[B]`` given the teacher ``center``;
  :func:`dino_center_update` is the batch-global moving average of the teacher
  outputs that DINO keeps alongside it.

Zero-variance embeddings (a collapsed encoder) give finite values and finite
gradients everywhere: variances enter through ``sqrt(var + epsilon)``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics, _registry
from jaxloss._reduction import reduce_values

Array = jax.Array

# Lower bound of the squared norm when normalising (BYOL's ``l2_normalize``
# epsilon): norms below 1e-6 are clipped, so the zero vector stays finite.
_NORM_EPSILON = 1e-12


# ------------------------------------------------------------ private helpers
def _psum(x: Array, axis_name: Hashable | None) -> Array:
    return x if axis_name is None else jax.lax.psum(x, axis_name)


def _cosine(x: Array, y: Array) -> Array:
    """Cosine similarity along the last axis, ``<x, y> / (max(|x|, 1e-6) max(|y|, 1e-6))``."""
    eps = jnp.asarray(_NORM_EPSILON, x.dtype)
    norm_x = _numerics.safe_sqrt(jnp.maximum(jnp.sum(x * x, axis=-1), eps))
    norm_y = _numerics.safe_sqrt(jnp.maximum(jnp.sum(y * y, axis=-1), eps))
    return _numerics.safe_div(jnp.sum(x * y, axis=-1), norm_x * norm_y)


def _view_inputs(fn: str, vectors: list[tuple[str, ArrayLike]],
                 where: ArrayLike | None) -> tuple[list[Array], Array | None]:
    """Validates ``[..., D]`` float vectors of one shape; masked examples become zeros."""
    xs = [_checks.floating(fn, n, x) for n, x in vectors]
    _checks.same_shape(fn, *zip([n for n, _ in vectors], xs))
    _checks.rank_at_least(fn, vectors[0][0], xs[0], 1, "[..., features]")
    dtype = _numerics.compute_dtype(*xs)
    xs = [x.astype(dtype) for x in xs]
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), xs[0].shape[:-1],
                                      "the unreduced loss shape")
        xs = [_numerics.mask_inputs(where[..., None], x) for x in xs]
    return xs, where


def _batch_views(fn: str, z1: ArrayLike, z2: ArrayLike, where: ArrayLike | None) -> tuple[Array, Array, Array]:
    """Validates two ``[B, D]`` views; returns them masked and the ``[B, 1]`` validity as floats."""
    a = _checks.floating(fn, "z1", z1)
    b = _checks.floating(fn, "z2", z2)
    _checks.shape(fn, "z1", a, (None, None), "[batch, features]")
    _checks.same_shape(fn, ("z1", a), ("z2", b))
    dtype = _numerics.compute_dtype(a, b)
    a, b = a.astype(dtype), b.astype(dtype)
    if where is None:
        return a, b, jnp.ones((a.shape[0], 1), dtype)
    where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), (a.shape[0],),
                                  "the batch shape")
    mask = where[:, None]
    return _numerics.mask_inputs(mask, a), _numerics.mask_inputs(mask, b), mask.astype(dtype)


def _centered(z: Array, valid: Array, count: Array, axis_name: Hashable | None) -> Array:
    """``z`` minus its (global, unmasked) batch mean; masked rows are 0."""
    mean = _numerics.safe_div(_psum(jnp.sum(valid * z, axis=0, keepdims=True), axis_name), count)
    return valid * (z - mean)


def _off_diagonal_squares(c: Array) -> Array:
    """Sum of the squared off-diagonal entries of a square matrix."""
    off = ~jnp.eye(c.shape[0], dtype=bool)
    return jnp.sum(jnp.where(off, jnp.square(c), jnp.zeros_like(c)))


def _global_value(fn: str, value: Array, count: Array, reduction: str, weights: ArrayLike | None) -> Array:
    # The value is already the global one on every device (no axis_name in the
    # reduction); with no example left it is 0 with zero gradient.
    return reduce_values(value, reduction=reduction, weights=weights, where=count > 0, fn=fn)


# -------------------------------------------------------- per-example losses
@_registry.builtin(tags=("self_supervised",))
def byol_loss(online_predictions: ArrayLike, target_projections: ArrayLike, *,
              reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
              where: ArrayLike | None = None) -> Array:
    r"""BYOL regression loss between the online prediction and the target projection.

    Per example, with :math:`\mathrm{sg}` the stop-gradient:

    .. math::

        \ell = 2 - 2 \cos\bigl(q, \mathrm{sg}(z')\bigr)
             = \bigl\| \bar q - \mathrm{sg}(\bar z') \bigr\|_2^2

    where :math:`\bar x = x / \max(\|x\|, 10^{-6})`. The gradient with respect
    to ``target_projections`` is exactly 0 (the target network is updated by
    a moving average, not by this loss). BYOL symmetrises by adding the loss
    with the two views swapped; call it twice.

    Args:
      online_predictions: ``[..., D]`` float outputs :math:`q` of the online
        network's predictor.
      target_projections: ``[..., D]`` float outputs :math:`z'` of the target
        network's projector for the other view (same shape).
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[...]``.
      where: boolean per-example mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values in ``[0, 4]`` for ``reduction="none"``,
      else a scalar (float32 for 16-bit inputs).

    Raises:
      ValueError: inputs of different shapes or of rank 0, or an unknown
        ``reduction``.
      TypeError: non-float inputs.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import self_supervised
      >>> q = jnp.array([[1.0, 0.0], [1.0, 1.0]])
      >>> z = jnp.array([[0.0, 2.0], [3.0, 3.0]])
      >>> [round(float(v), 6) + 0.0 for v in self_supervised.byol_loss(q, z, reduction="none")]
      [2.0, 0.0]

    References:
      Grill et al., "Bootstrap Your Own Latent: A New Approach to
      Self-Supervised Learning", NeurIPS 2020 (eq. 2),
      https://arxiv.org/abs/2006.07733
    """
    fn = "byol_loss"
    (q, z), where = _view_inputs(fn, [("online_predictions", online_predictions),
                                      ("target_projections", target_projections)], where)
    values = 2.0 - 2.0 * _cosine(q, jax.lax.stop_gradient(z))
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


@_registry.builtin(tags=("self_supervised",))
def simsiam_loss(p1: ArrayLike, p2: ArrayLike, z1: ArrayLike, z2: ArrayLike, *,
                 reduction: Literal["none", "sum", "mean"] = "mean", weights: ArrayLike | None = None,
                 where: ArrayLike | None = None) -> Array:
    r"""SimSiam symmetric negative cosine similarity with stop-gradient.

    Per example, with predictions :math:`p_1, p_2` and projections
    :math:`z_1, z_2` of the two views and :math:`\mathrm{sg}` the stop-gradient:

    .. math::

        \ell = -\tfrac12 \Bigl(\cos\bigl(p_1, \mathrm{sg}(z_2)\bigr)
                              + \cos\bigl(p_2, \mathrm{sg}(z_1)\bigr)\Bigr)

    The gradient with respect to ``z1`` and ``z2`` through this loss is exactly 0;
    they still train the encoder through ``p1``/``p2`` (the predictor's input).

    Args:
      p1: ``[..., D]`` float predictor output of view 1.
      p2: ``[..., D]`` float predictor output of view 2.
      z1: ``[..., D]`` float projector output of view 1.
      z2: ``[..., D]`` float projector output of view 2.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[...]``.
      where: boolean per-example mask broadcastable to ``[...]``.

    Returns:
      ``[...]`` per-example values in ``[-1, 1]`` for ``reduction="none"``,
      else a scalar (float32 for 16-bit inputs).

    Raises:
      ValueError: inputs of different shapes or of rank 0, or an unknown
        ``reduction``.
      TypeError: non-float inputs.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import self_supervised
      >>> p = jnp.array([[1.0, 0.0]])
      >>> float(self_supervised.simsiam_loss(p, p, 2.0 * p, jnp.array([[0.0, 1.0]])))
      -0.5

    References:
      Chen and He, "Exploring Simple Siamese Representation Learning",
      CVPR 2021 (Algorithm 1), https://arxiv.org/abs/2011.10566
    """
    fn = "simsiam_loss"
    (a, b, c, d), where = _view_inputs(fn, [("p1", p1), ("p2", p2), ("z1", z1), ("z2", z2)], where)
    sg = jax.lax.stop_gradient
    values = -0.5 * (_cosine(a, sg(d)) + _cosine(b, sg(c)))
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn)


# ------------------------------------------------------ batch-global losses
_BN_EPSILON = 1e-5  # torch.nn.BatchNorm1d's default eps


@_registry.builtin(tags=("self_supervised", "batch_global"))
def barlow_twins_loss(z1: ArrayLike, z2: ArrayLike, *, lambda_offdiagonal: ArrayLike = 5e-3,
                      axis_name: Hashable | None = None, reduction: Literal["none", "sum", "mean"] = "mean",
                      weights: ArrayLike | None = None, where: ArrayLike | None = None) -> Array:
    r"""Barlow Twins redundancy-reduction loss between two views of a batch.

    Each view is normalised over the batch as ``BatchNorm1d(affine=False)``
    does in training (biased variance, :math:`\epsilon = 10^{-5}`), then with
    the cross-correlation :math:`C` of the :math:`N` (unmasked, all devices)
    examples:

    .. math::

        \hat z_{bi} = \frac{z_{bi} - \mu_i}{\sqrt{\sigma_i^2 + \epsilon}}, \qquad
        C_{ij} = \frac1N \sum_b \hat z^{(1)}_{bi} \hat z^{(2)}_{bj}, \qquad
        \ell = \sum_i (1 - C_{ii})^2 + \lambda \sum_{i \ne j} C_{ij}^2

    Args:
      z1: ``[B, D]`` float embeddings of the first view.
      z2: ``[B, D]`` float embeddings of the second view (row ``b`` pairs with
        row ``b`` of ``z1``).
      lambda_offdiagonal: :math:`\lambda \ge 0`, the weight of the
        redundancy-reduction term.
      axis_name: inside ``shard_map``/``pmap``, the mapped axis name(s) the
        batch is sharded over: means, variances and :math:`C` are summed over
        devices (as the reference's ``SyncBatchNorm`` and ``all_reduce``), so
        every device gets the global-batch value.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``; the loss is one value for
        the batch, so all three return it (times ``weights``).
      weights: a float scalar weight (the unreduced value is a scalar).
      where: boolean ``[B]`` (or broadcastable); ``False`` removes an example
        from every statistic (masking equals slicing it off). With no example
        left the loss is 0 with zero gradient.

    Returns:
      A scalar (float32 for 16-bit inputs), for every ``reduction``.

    Raises:
      ValueError: inputs not ``[B, D]`` of one shape, ``lambda_offdiagonal < 0``,
        or an unknown ``reduction``.
      TypeError: non-float inputs or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import self_supervised
      >>> z = jnp.array([[1.0, -1.0], [-1.0, 1.0]])
      >>> # C = [[1, -1], [-1, 1]] up to epsilon: only the off-diagonal term remains.
      >>> round(float(self_supervised.barlow_twins_loss(z, z)), 4)
      0.01

    References:
      Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy
      Reduction", ICML 2021 (eq. 1 and Algorithm 1),
      https://arxiv.org/abs/2103.03230
    """
    fn = "barlow_twins_loss"
    _checks.in_range(fn, "lambda_offdiagonal", lambda_offdiagonal, low=0.0)
    a, b, valid = _batch_views(fn, z1, z2, where)
    count = _psum(jnp.sum(valid), axis_name)
    eps = jnp.asarray(_BN_EPSILON, a.dtype)

    def normalise(z: Array) -> Array:
        centered = _centered(z, valid, count, axis_name)
        variance = _numerics.safe_div(_psum(jnp.sum(jnp.square(centered), axis=0, keepdims=True), axis_name),
                                      count)
        return centered / jnp.sqrt(variance + eps)

    c = _numerics.safe_div(_psum(normalise(a).T @ normalise(b), axis_name), count)
    on_diagonal = jnp.sum(jnp.square(1.0 - jnp.diagonal(c)))
    value = on_diagonal + jnp.asarray(lambda_offdiagonal, c.dtype) * _off_diagonal_squares(c)
    return _global_value(fn, value, count, reduction, weights)


@_registry.builtin(tags=("self_supervised", "batch_global"))
def vicreg_loss(z1: ArrayLike, z2: ArrayLike, *, invariance_weight: ArrayLike = 25.0,
                variance_weight: ArrayLike = 25.0, covariance_weight: ArrayLike = 1.0, epsilon: ArrayLike = 1e-4,
                axis_name: Hashable | None = None, reduction: Literal["none", "sum", "mean"] = "mean",
                weights: ArrayLike | None = None, where: ArrayLike | None = None) -> Array:
    r"""VICReg variance-invariance-covariance loss between two views of a batch.

    With :math:`N` (unmasked, all devices) examples of :math:`D` features, the
    unbiased variance :math:`\sigma_i^2` and covariance :math:`K` of each view:

    .. math::

        s = \frac{1}{N D} \sum_b \|z^{(1)}_b - z^{(2)}_b\|^2, \qquad
        v(z) = \frac{1}{2D} \sum_i \max\Bigl(0, 1 - \sqrt{\sigma_i^2 + \epsilon}\Bigr), \qquad
        c(z) = \frac1D \sum_{i \ne j} K_{ij}^2

    .. math::

        \ell = \lambda\, s + \mu \bigl(v(z^{(1)}) + v(z^{(2)})\bigr)
               + \nu \bigl(c(z^{(1)}) + c(z^{(2)})\bigr)

    with :math:`K = \frac{1}{N-1} \sum_b (z_b - \bar z)(z_b - \bar z)^\top`.
    This is pytorch-metric-learning's ``VICRegLoss`` (its ``v`` carries the
    factor 1/2 that averages the two views). With a single example the
    unbiased statistics are taken as 0 (torch gives NaN).

    Args:
      z1: ``[B, D]`` float embeddings of the first view.
      z2: ``[B, D]`` float embeddings of the second view (same shape).
      invariance_weight: :math:`\lambda \ge 0`.
      variance_weight: :math:`\mu \ge 0`.
      covariance_weight: :math:`\nu \ge 0`.
      epsilon: :math:`\epsilon \ge 0` inside the standard deviation.
      axis_name: inside ``shard_map``/``pmap``, the mapped axis name(s) the
        batch is sharded over: the statistics are summed over devices, so every
        device gets the global-batch value.
      reduction: ``"none"``, ``"sum"`` or ``"mean"``; the loss is one value for
        the batch, so all three return it (times ``weights``).
      weights: a float scalar weight (the unreduced value is a scalar).
      where: boolean ``[B]`` (or broadcastable); ``False`` removes an example
        from every statistic (masking equals slicing it off). With no example
        left the loss is 0 with zero gradient.

    Returns:
      A scalar (float32 for 16-bit inputs), for every ``reduction``.

    Raises:
      ValueError: inputs not ``[B, D]`` of one shape, a negative weight or
        ``epsilon``, or an unknown ``reduction``.
      TypeError: non-float inputs or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import self_supervised
      >>> z = jnp.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
      >>> # identical views, feature std above 1, uncorrelated features: 0.
      >>> float(self_supervised.vicreg_loss(z, z))
      0.0

    References:
      Bardes, Ponce and LeCun, "VICReg: Variance-Invariance-Covariance
      Regularization for Self-Supervised Learning", ICLR 2022,
      https://arxiv.org/abs/2105.04906
    """
    fn = "vicreg_loss"
    for name, value in (("invariance_weight", invariance_weight), ("variance_weight", variance_weight),
                        ("covariance_weight", covariance_weight), ("epsilon", epsilon)):
        _checks.in_range(fn, name, value, low=0.0)
    a, b, valid = _batch_views(fn, z1, z2, where)
    dtype = a.dtype
    features = a.shape[1]
    count = _psum(jnp.sum(valid), axis_name)
    dof = count - 1.0  # unbiased statistics (torch's var and the reference's N - 1)
    squared = _psum(jnp.sum(valid * jnp.square(a - b)), axis_name)
    invariance = _numerics.safe_div(squared, count * features)

    def variance_and_covariance(z: Array) -> tuple[Array, Array]:
        centered = _centered(z, valid, count, axis_name)
        covariance = _numerics.safe_div(_psum(centered.T @ centered, axis_name), dof)
        std = _numerics.safe_sqrt(jnp.diagonal(covariance) + jnp.asarray(epsilon, dtype))
        variance_term = jnp.mean(jax.nn.relu(1.0 - std)) / 2.0
        return variance_term, _off_diagonal_squares(covariance) / features

    v1, c1 = variance_and_covariance(a)
    v2, c2 = variance_and_covariance(b)
    value = (jnp.asarray(invariance_weight, dtype) * invariance
             + jnp.asarray(variance_weight, dtype) * (v1 + v2)
             + jnp.asarray(covariance_weight, dtype) * (c1 + c2))
    return _global_value(fn, value, count, reduction, weights)


# ------------------------------------------------------------------- DINO
@_registry.builtin(tags=("self_supervised",))
def dino_loss(student_logits: ArrayLike, teacher_logits: ArrayLike, center: ArrayLike, *,
              student_temperature: ArrayLike = 0.1, teacher_temperature: ArrayLike = 0.04,
              axis_name: Hashable | None = None, reduction: Literal["none", "sum", "mean"] = "mean",
              weights: ArrayLike | None = None, where: ArrayLike | None = None) -> Array:
    r"""DINO self-distillation loss between student crops and centred, sharpened teacher views.

    With :math:`S` student crops, :math:`V` teacher views (the first :math:`V`
    crops, DINO's global crops), teacher targets
    :math:`q_v = \mathrm{softmax}((t_v - c) / \tau_t)` (stop-gradient) and
    student log-probabilities :math:`\log p_s = \mathrm{log\_softmax}(s_s / \tau_s)`,
    per example :math:`b`:

    .. math::

        \ell_b = \frac{1}{|\mathcal P|} \sum_{(v, s) \in \mathcal P}
                 -\sum_k q_{v,b,k} \log p_{s,b,k}, \qquad
        \mathcal P = \{(v, s) : v < V,\ s < S,\ v \ne s\}

    so the ``"mean"`` over the batch is facebookresearch/dino's ``DINOLoss``
    (average over pairs of the batch mean). The gradient with respect to
    ``teacher_logits`` and ``center`` is exactly 0 (the teacher is an
    exponential moving average of the student; update ``center`` with
    :func:`dino_center_update`).

    Args:
      student_logits: ``[S, B, K]`` float student outputs, crop-major (DINO's
        ``student_output.chunk(ncrops)`` stacked).
      teacher_logits: ``[V, B, K]`` float teacher outputs of the global views;
        view ``v`` and crop ``v`` are the same image, so that pair is skipped.
      center: ``[K]`` float running center of the teacher outputs.
      student_temperature: :math:`\tau_s > 0`.
      teacher_temperature: :math:`\tau_t > 0` (DINO warms it up from 0.04 to
        0.07; pass the scheduled value).
      axis_name: inside ``shard_map``/``pmap``, the mapped axis name(s) the
        batch is sharded over: ``"sum"`` and ``"mean"`` run over the examples
        of every device (the values themselves are per example).
      reduction: ``"none"``, ``"sum"`` or ``"mean"``.
      weights: float per-example weights broadcastable to ``[B]``.
      where: boolean ``[B]`` (or broadcastable); ``False`` masks an example in
        every crop and view.

    Returns:
      ``[B]`` per-example values for ``reduction="none"``, else a scalar
      (float32 for 16-bit inputs).

    Raises:
      ValueError: ``student_logits``/``teacher_logits`` not of rank 3 with the
        same ``B`` and ``K``, ``center`` not ``[K]``, no pair of different views
        (``S = V = 1``), a temperature ``<= 0``, or an unknown ``reduction``.
      TypeError: non-float inputs.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import self_supervised
      >>> student = jnp.zeros((2, 1, 4))          # uniform student: CE = log 4 per pair
      >>> teacher = jnp.array([[[1.0, 2.0, 3.0, 4.0]], [[4.0, 3.0, 2.0, 1.0]]])
      >>> round(float(self_supervised.dino_loss(student, teacher, jnp.zeros(4))), 6)
      1.386294

    References:
      Caron et al., "Emerging Properties in Self-Supervised Vision
      Transformers", ICCV 2021 (Algorithm 1), https://arxiv.org/abs/2104.14294
    """
    fn = "dino_loss"
    for name, value in (("student_temperature", student_temperature),
                        ("teacher_temperature", teacher_temperature)):
        _checks.in_range(fn, name, value, low=0.0, low_open=True)
    s = _checks.floating(fn, "student_logits", student_logits)
    t = _checks.floating(fn, "teacher_logits", teacher_logits)
    c = _checks.floating(fn, "center", center)
    _checks.shape(fn, "student_logits", s, (None, None, None), "[crops, batch, classes]")
    crops, batch, classes = s.shape
    _checks.shape(fn, "teacher_logits", t, (None, batch, classes), f"[views, {batch}, {classes}] (views, batch, "
                  "classes of student_logits)")
    _checks.shape(fn, "center", c, (classes,), f"[{classes}] (the classes of student_logits)")
    views = t.shape[0]
    pairs = [(v, k) for v in range(views) for k in range(crops) if v != k]
    if not pairs:
        _checks._fail(ValueError, _checks.message(fn, "student_logits", "must give at least one pair of a student "
                                                  "crop and a different teacher view", f"{crops} crop(s) and "
                                                  f"{views} view(s)"))
    dtype = _numerics.compute_dtype(s, t, c)
    s, t, c = s.astype(dtype), t.astype(dtype), c.astype(dtype)
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), (batch,),
                                      "the unreduced loss shape")
        s = _numerics.mask_inputs(where[None, :, None], s)
        t = _numerics.mask_inputs(where[None, :, None], t)
    targets = jax.lax.stop_gradient(
        jax.nn.softmax((t - c[None, None, :]) / jnp.asarray(teacher_temperature, dtype), axis=-1))  # [V, B, K]
    log_probs = jax.nn.log_softmax(s / jnp.asarray(student_temperature, dtype), axis=-1)  # [S, B, K]
    # Cross-entropy of every (view, crop) pair [V, S, B]; same-view pairs are dropped.
    cross = -jnp.einsum("vbk,sbk->vsb", targets, log_probs)
    keep = jnp.asarray([[v != k for k in range(crops)] for v in range(views)], dtype)
    values = jnp.einsum("vsb,vs->b", cross, keep) / len(pairs)
    return reduce_values(values, reduction=reduction, weights=weights, where=where, fn=fn, axis_name=axis_name)


def dino_center_update(center: ArrayLike, teacher_logits: ArrayLike, *, momentum: ArrayLike = 0.9,
                       axis_name: Hashable | None = None, where: ArrayLike | None = None) -> Array:
    r"""DINO's moving-average update of the teacher center.

    With the mean :math:`\bar t` of the teacher outputs over all views and all
    (unmasked) examples of the global batch:

    .. math::

        c \leftarrow m\, c + (1 - m)\, \bar t

    as facebookresearch/dino's ``DINOLoss.update_center`` (which all-reduces
    the sum over processes). A utility that returns the new center, not a
    loss; it is differentiable, wrap it in ``jax.lax.stop_gradient`` to mirror
    the reference's ``no_grad``. With no unmasked example the center is
    returned unchanged.

    Args:
      center: ``[K]`` float current center.
      teacher_logits: ``[V, B, K]`` float teacher outputs (views, batch, classes).
      momentum: :math:`m` in ``[0, 1]``.
      axis_name: inside ``shard_map``/``pmap``, the mapped axis name(s) the
        batch is sharded over: the mean runs over every device's examples, so
        every device gets the same new center.
      where: boolean ``[B]`` (or broadcastable); ``False`` leaves an example out
        of the mean.

    Returns:
      ``[K]`` new center (float32 for 16-bit inputs).

    Raises:
      ValueError: ``teacher_logits`` not of rank 3, ``center`` not ``[K]``, or
        ``momentum`` outside ``[0, 1]``.
      TypeError: non-float inputs or non-boolean ``where``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss import self_supervised
      >>> teacher = jnp.array([[[1.0, 3.0], [3.0, 5.0]]])   # one view, two examples
      >>> self_supervised.dino_center_update(jnp.zeros(2), teacher, momentum=0.5).tolist()
      [1.0, 2.0]

    References:
      Caron et al., "Emerging Properties in Self-Supervised Vision
      Transformers", ICCV 2021 (Algorithm 1), https://arxiv.org/abs/2104.14294
    """
    fn = "dino_center_update"
    _checks.in_range(fn, "momentum", momentum, low=0.0, high=1.0)
    c = _checks.floating(fn, "center", center)
    t = _checks.floating(fn, "teacher_logits", teacher_logits)
    _checks.shape(fn, "teacher_logits", t, (None, None, None), "[views, batch, classes]")
    views, batch, classes = t.shape
    _checks.shape(fn, "center", c, (classes,), f"[{classes}] (the classes of teacher_logits)")
    dtype = _numerics.compute_dtype(c, t)
    c, t = c.astype(dtype), t.astype(dtype)
    valid = jnp.ones((batch,), dtype)
    if where is not None:
        where = _checks.broadcastable(fn, "where", _checks.boolean(fn, "where", where), (batch,), "the batch shape")
        t = _numerics.mask_inputs(where[None, :, None], t)
        valid = where.astype(dtype)
    total = _psum(jnp.einsum("vbk,b->k", t, valid), axis_name)
    count = _psum(views * jnp.sum(valid), axis_name)
    m = jnp.asarray(momentum, dtype)
    updated = m * c + (1.0 - m) * _numerics.safe_div(total, count)
    return jnp.where(count > 0, updated, c)
