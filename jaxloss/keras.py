"""Keras 3 adapter: jaxloss losses in ``model.compile``, and Keras's own loss names with Keras's numbers.

Keras 3 runs on JAX (``KERAS_BACKEND=jax``), and a Keras loss is called
``loss(y_true, y_pred, sample_weight=None)`` and reduced the Keras way. This
module bridges the two conventions:

* :class:`Loss` wraps any jaxloss loss (by name or function) as a
  ``keras.losses.Loss``: Keras's ``(y_true, y_pred)`` order, ``sample_weight``,
  and Keras's reductions (``"sum_over_batch_size"`` by default, ``"sum"``,
  ``"mean"``, ``"mean_with_sample_weight"``, ``"none"``). The numbers are
  jaxloss's (its formula, defaults and dtype policy).
* :func:`get` resolves every Keras built-in loss identifier (``"mse"``,
  ``"binary_crossentropy"``, ``"BinaryCrossentropy"``, ...) to an object that
  gives **Keras's** number on the same inputs, with Keras's defaults
  (``from_logits=False``: probabilities in). Use it when porting a Keras model
  whose numbers must not move. ``jaxloss.get`` keeps jaxloss's semantics and
  refuses Keras names whose meaning differs.

Keras is an optional dependency (``pip install "jaxloss[keras]"``). Importing
this module selects the JAX backend when Keras has not been imported yet
(``KERAS_BACKEND`` defaults to ``"jax"`` here); a Keras already running on
another backend is an ``ImportError``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")

try:
    import keras
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError('jaxloss.keras needs Keras 3: pip install "jaxloss[keras]"') from err

if keras.backend.backend() != "jax":  # pragma: no cover - depends on the environment
    raise ImportError(
        f"jaxloss.keras needs Keras on the JAX backend, but Keras runs on {keras.backend.backend()!r}: "
        "set KERAS_BACKEND=jax before Keras is first imported")

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _numerics, _registry
from jaxloss import classification as _cls
from jaxloss import embedding as _emb
from jaxloss import regression as _reg
from jaxloss import sequence as _seq

__all__ = ["Loss", "get", "KERAS_NAMES"]

_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


# ------------------------------------------------------------------ the adapter
def _labels_for(fn: Callable[..., Any], y_true: jax.Array, y_pred: jax.Array) -> jax.Array:
    """Keras casts ``y_true`` to a float; give integer-label losses their integers back.

    A loss whose second argument must be integer (class indices) gets ``y_true``
    rounded to ``int32``, with a trailing axis of size 1 squeezed as Keras's
    sparse losses do (``[B, 1]`` labels for ``[B, C]`` logits).
    """
    if not jnp.issubdtype(y_true.dtype, jnp.floating):
        return y_true
    try:
        jax.eval_shape(lambda p, t: fn(p, t, reduction="none"), y_pred, y_true)
        return y_true
    except TypeError as err:
        if "integer" not in str(err):
            raise
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1 and y_pred.shape[-1] != 1:
        y_true = jnp.squeeze(y_true, -1)
    return jnp.round(y_true).astype(jnp.int32)


class Loss(keras.losses.Loss):  # type: ignore[misc]  # Keras ships no type information
    """A jaxloss loss as a ``keras.losses.Loss``, for ``model.compile(loss=...)``.

    Keras calls ``loss(y_true, y_pred, sample_weight)``; this calls the jaxloss
    function as ``fn(y_pred, y_true, **kwargs, reduction="none")`` (jaxloss
    puts the predictions first) and lets Keras apply ``sample_weight`` and the
    reduction. An elementwise loss's values (the shape of ``y_pred``, rank 2 or
    more) are first averaged over the last axis, as Keras's built-in losses do,
    so ``sample_weight`` of shape ``[batch]`` weights examples; the overall
    ``"sum_over_batch_size"`` is then the mean over every element, as in
    jaxloss. The values are jaxloss's: for example
    ``Loss("softmax_cross_entropy_with_integer_labels")`` takes logits and
    integer labels (Keras hands labels over as floats; they are cast back to
    ``int32``, and ``[B, 1]`` labels are squeezed), and
    ``Loss("sigmoid_binary_cross_entropy", label_smoothing=0.1)`` takes logits.

    .. math::

        \\text{loss} = \\frac{\\sum_i s_i\\, \\ell_i}{N}\\quad(\\texttt{"sum\\_over\\_batch\\_size"})

    with :math:`\\ell` the jaxloss function's unreduced values (per example),
    :math:`s` the ``sample_weight`` (1 when not given) and :math:`N` the number
    of values.

    Args:
      name_or_fn: a registered jaxloss name (``"huber_loss"``,
        ``"softmax_focal_loss_with_integer_labels"``; see
        ``jaxloss.available()``) or a function
        ``fn(predictions, targets, *, reduction, **kwargs)`` following jaxloss's
        conventions (every jaxloss loss of two data arrays does).
      reduction: Keras's reduction: ``"sum_over_batch_size"`` (default: the sum
        of the weighted values over their number), ``"sum"``, ``"mean"``
        (as ``"sum_over_batch_size"``), ``"mean_with_sample_weight"`` (divided by
        the sum of the sample weights) or ``"none"``/``None``.
      name: the loss's name in Keras logs (default: the function's name).
      dtype: Keras's dtype policy for the inputs (default ``keras.config.floatx()``).
      **kwargs: the jaxloss function's keyword hyper-parameters
        (``delta=2.0``, ``label_smoothing=0.1``, ``class_weights=...``).

    Returns:
      jax.Array: calling the instance returns a scalar, or the per-example
      values ``[batch, ...]`` with ``reduction="none"``.

    Raises:
      ValueError: an unknown reduction, or a name that ``jaxloss.get`` does not
        resolve (the message names the close matches and, for Keras names,
        :func:`get`).
      TypeError: ``name_or_fn`` is neither a string nor callable.

    Example:
      >>> import numpy as np
      >>> import jaxloss.keras
      >>> loss = jaxloss.keras.Loss("huber_loss", delta=1.0)
      >>> y_true = np.array([[0.0, 1.0], [2.0, 0.0]], np.float32)
      >>> y_pred = np.array([[0.5, 1.0], [0.0, 0.0]], np.float32)
      >>> round(float(loss(y_true, y_pred)), 4)   # (0.125 + 0 + 1.5 + 0) / 4, as keras.losses.Huber()
      0.4062
      >>> round(float(loss(y_true, y_pred, sample_weight=np.array([1.0, 0.0]))), 4)
      0.0312

      In a model: ``model.compile(optimizer="adam",
      loss=jaxloss.keras.Loss("softmax_cross_entropy_with_integer_labels"))``
      on logits (a final ``Dense`` without softmax).

    References:
      Keras 3 loss API, https://keras.io/api/losses/ (``keras.losses.Loss``,
      reductions).
    """

    def __init__(self, name_or_fn: str | Callable[..., Any], *, reduction: str | None = "sum_over_batch_size",
                 name: str | None = None, dtype: Any = None, **kwargs: Any) -> None:
        if reduction not in _REDUCTIONS:
            raise ValueError(f"jaxloss.keras.Loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        if isinstance(name_or_fn, str):
            fn = _resolve(name_or_fn, "jaxloss.keras.Loss")
        elif callable(name_or_fn):
            fn = name_or_fn
        else:
            raise TypeError(f"jaxloss.keras.Loss: name_or_fn must be a loss name or a function, "
                            f"got {type(name_or_fn).__name__}")
        super().__init__(name=name or getattr(fn, "__name__", "jaxloss_loss"), reduction=reduction, dtype=dtype)
        self.name_or_fn = name_or_fn
        self.fn = fn
        self.kwargs = dict(kwargs)

    def call(self, y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
        y_pred = jnp.asarray(y_pred)
        y_true = _labels_for(self.fn, jnp.asarray(y_true), y_pred)
        values: jax.Array = self.fn(y_pred, y_true, reduction="none", **self.kwargs)
        if values.ndim >= 2 and values.shape == y_pred.shape:
            # Elementwise values are averaged over the last axis, as Keras's own losses do, so that a
            # sample_weight of shape [batch] (or [batch, time]) weights examples, not features.
            values = jnp.mean(values, axis=-1)
        return values

    def get_config(self) -> dict[str, Any]:
        if not isinstance(self.name_or_fn, str):
            raise NotImplementedError("jaxloss.keras.Loss: only a loss given by name can be serialised")
        config: dict[str, Any] = super().get_config()
        config.update(name_or_fn=self.name_or_fn, **self.kwargs)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        config = dict(config)
        return cls(config.pop("name_or_fn"), **config)


def _resolve(name: str, where: str) -> Callable[..., Any]:
    try:
        return _registry.get(name)
    except (KeyError, ValueError) as err:
        hint = f" (a Keras loss name: use jaxloss.keras.get({name!r}))" if name in KERAS_NAMES else ""
        raise ValueError(f"{where}: {err}{hint}") from None


# ------------------------------------------------------------ Keras's semantics
def _eps() -> float:
    return float(keras.config.epsilon())


def _same_rank(y_true: jax.Array, y_pred: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Keras's ``squeeze_or_expand_to_same_rank``: a trailing axis of 1 is dropped or added."""
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        if y_pred.ndim == 1:
            y_pred = y_pred[..., None]
        else:
            y_true = jnp.squeeze(y_true, -1)
    elif y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        if y_true.ndim == 1:
            y_true = y_true[..., None]
        else:
            y_pred = jnp.squeeze(y_pred, -1)
    return y_true, y_pred


def _floats(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[jax.Array, jax.Array]:
    y_pred = jnp.asarray(y_pred)
    if not jnp.issubdtype(y_pred.dtype, jnp.floating):
        y_pred = y_pred.astype(jnp.float32)
    return _same_rank(jnp.asarray(y_true).astype(y_pred.dtype), y_pred)


def _mean_last(values: jax.Array, axis: int = -1) -> jax.Array:
    """Keras' mean over the last axis.

    On a ``[rows, 1]`` (or ``[rows, 2]``) output, a Keras binary classifier's,
    the values are computed apart from the mean
    (:func:`_numerics.reduction_input`): fused into it, XLA:CPU ran them row
    by row (``[2^20, 1]`` forward: ``binary_crossentropy`` 12.9 -> 1.2 ms,
    ``huber`` 12.3 -> 0.6 ms, ``mean_squared_error`` 1.43 -> 0.76 ms).
    """
    if axis in (-1, values.ndim - 1):
        values = _numerics.reduction_input(values)
    return jnp.mean(values, axis=axis)


def mean_squared_error(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    t, p = _floats(y_true, y_pred)
    return _mean_last(_reg.squared_error(p, t, reduction="none"))


def mean_absolute_error(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    t, p = _floats(y_true, y_pred)
    return _mean_last(_reg.absolute_error(p, t, reduction="none"))


def mean_absolute_percentage_error(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    t, p = _floats(y_true, y_pred)
    return _mean_last(_reg.absolute_percentage_error(p, t, epsilon=_eps(), reduction="none"))


def mean_squared_logarithmic_error(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    t, p = _floats(y_true, y_pred)
    return _mean_last(_reg.squared_log_error(p, t, epsilon=_eps(), reduction="none"))


def huber(y_true: ArrayLike, y_pred: ArrayLike, delta: float = 1.0) -> jax.Array:
    t, p = _floats(y_true, y_pred)
    return _mean_last(_reg.huber_loss(p, t, delta=delta, reduction="none"))


def log_cosh(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    t, p = _floats(y_true, y_pred)
    return _mean_last(_reg.log_cosh(p, t, reduction="none"))


def poisson(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    t, p = _floats(y_true, y_pred)
    return _mean_last(_reg.poisson_loss(p, t, epsilon=_eps(), reduction="none"))


def kl_divergence(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    # Keras clips both distributions to [eps, 1] and sums t log(t / p) over the last axis.
    t, p = _floats(y_true, y_pred)
    t, p = jnp.clip(t, _eps(), 1.0), jnp.clip(p, _eps(), 1.0)
    return _cls.kl_divergence(jnp.log(p), t, reduction="none")


def cosine_similarity(y_true: ArrayLike, y_pred: ArrayLike, axis: int = -1) -> jax.Array:
    # Keras's value is the negative cosine similarity (so that minimising aligns the vectors).
    t, p = _floats(y_true, y_pred)
    return -_emb.cosine_similarity(p, t, axis=axis, reduction="none")


def _hinge_labels(t: jax.Array) -> jax.Array:
    # Keras: labels that are all 0/1 are mapped to -1/+1; other labels are used as given.
    binary = jnp.all((t == 0) | (t == 1))
    return jnp.where(binary, 2.0 * t - 1.0, t)


def hinge(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    t, p = _floats(y_true, y_pred)
    return _mean_last(_cls.hinge_loss(p, _hinge_labels(t), reduction="none"))


def squared_hinge(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    t, p = _floats(y_true, y_pred)
    return _mean_last(_cls.squared_hinge_loss(p, _hinge_labels(t), reduction="none"))


def categorical_hinge(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    # Keras: max(0, 1 + max((1 - t) * p) - sum(t * p)); the max includes the 0 at the true class,
    # which jaxloss.multiclass_hinge_loss (Crammer-Singer, optax) does not.
    t, p = _floats(y_true, y_pred)
    positive = jnp.sum(t * p, axis=-1)
    negative = jnp.max((1.0 - t) * p, axis=-1)
    return jnp.maximum(negative - positive + 1.0, 0.0)


def _binary_smooth(t: jax.Array, label_smoothing: float) -> jax.Array:
    return t * (1.0 - label_smoothing) + 0.5 * label_smoothing if label_smoothing else t


def binary_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False, label_smoothing: float = 0.0,
                        axis: int = -1) -> jax.Array:
    t, p = _floats(y_true, y_pred)
    if from_logits:
        values = _cls.sigmoid_binary_cross_entropy(p, t, label_smoothing=label_smoothing, reduction="none")
    else:
        values = _cls.binary_cross_entropy(p, t, label_smoothing=label_smoothing, epsilon=_eps(),
                                           reduction="none")
    return _mean_last(values, axis)


def binary_focal_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, apply_class_balancing: bool = False,
                              alpha: float = 0.25,
                              gamma: float = 2.0, from_logits: bool = False, label_smoothing: float = 0.0,
                              axis: int = -1) -> jax.Array:
    # Keras: the clipped binary cross-entropy times (1 - p_t)**gamma, p_t from the unclipped
    # probabilities, times the alpha balance when asked; label smoothing applies to both terms.
    t, p = _floats(y_true, y_pred)
    t = _binary_smooth(t, label_smoothing)
    if from_logits:
        p = jax.nn.sigmoid(p)
    bce = _cls.binary_cross_entropy(p, t, epsilon=_eps(), reduction="none")
    p_t = t * p + (1.0 - t) * (1.0 - p)
    values = (1.0 - p_t) ** gamma * bce
    if apply_class_balancing:
        values = (t * alpha + (1.0 - t) * (1.0 - alpha)) * values
    return _mean_last(values, axis)


def _log_probabilities(p: jax.Array, from_logits: bool, axis: int) -> jax.Array:
    # Keras: logits -> log_softmax; probabilities -> renormalised, clipped to [eps, 1 - eps], log.
    if from_logits:
        return jax.nn.log_softmax(p, axis=axis)
    p = p / jnp.sum(p, axis=axis, keepdims=True)
    return jnp.log(jnp.clip(p, _eps(), 1.0 - _eps()))


def categorical_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False,
                             label_smoothing: float = 0.0,
                             axis: int = -1) -> jax.Array:
    t, p = _floats(y_true, y_pred)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + label_smoothing / t.shape[-1]
    if from_logits:
        return _cls.softmax_cross_entropy(p, t, axis=axis, reduction="none")
    return -jnp.sum(t * _log_probabilities(p, False, axis), axis=axis)


def sparse_categorical_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False,
                                    ignore_class: int | None = None, axis: int = -1) -> jax.Array:
    # Keras on valid labels; an ignored label gives 0 (and Keras's masked mean leaves it out).
    # Unlike Keras (whose one-hot of an out-of-range label is all zeros, so the loss is 0), a label
    # outside [0, C) gives NaN here, as everywhere in jaxloss.
    p = jnp.asarray(y_pred)
    t = jnp.asarray(y_true)
    if t.ndim == p.ndim and t.shape[axis] == 1:
        t = jnp.squeeze(t, axis)
    t = jnp.round(t).astype(jnp.int32) if jnp.issubdtype(t.dtype, jnp.floating) else t.astype(jnp.int32)
    log_p = _log_probabilities(p.astype(jnp.promote_types(p.dtype, jnp.float32)), from_logits, axis)
    values = _cls.nll_loss(log_p, t, axis=axis, ignore_index=ignore_class, reduction="none")
    if ignore_class is not None:
        _set_keras_mask(values, t != ignore_class)
    return values


def categorical_focal_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, alpha: float = 0.25, gamma: float = 2.0,
                                   from_logits: bool = False, label_smoothing: float = 0.0,
                                   axis: int = -1) -> jax.Array:
    t, p = _floats(y_true, y_pred)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + label_smoothing / t.shape[-1]
    if from_logits:
        p = jax.nn.softmax(p, axis=axis)
    p = jnp.clip(p / jnp.sum(p, axis=axis, keepdims=True), _eps(), 1.0 - _eps())
    return jnp.sum(alpha * (1.0 - p) ** gamma * (-t * jnp.log(p)), axis=axis)


def ctc(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    # Keras: labels [B, N] padded with 0 (also the blank), logits [B, T, K], every frame valid.
    labels = jnp.asarray(y_true)
    labels = jnp.round(labels).astype(jnp.int32) if jnp.issubdtype(labels.dtype, jnp.floating) else labels
    logits = jnp.asarray(y_pred)
    if labels.ndim != 2 or logits.ndim != 3:
        raise ValueError(f"jaxloss.keras ctc: y_true must be [batch, max_length] and y_pred "
                         f"[batch, time, classes], got {labels.shape} and {logits.shape}")
    logit_paddings = jnp.zeros(logits.shape[:2], logits.dtype)
    label_paddings = (labels == 0).astype(logits.dtype)
    return _seq.ctc_loss(logits, logit_paddings, labels, label_paddings, blank_id=0, reduction="none")


def dice(y_true: ArrayLike, y_pred: ArrayLike, axis: Any = None) -> jax.Array:
    # Keras: 1 - 2 sum(t p) / (sum t + sum p + eps), summed over `axis` (everything by default).
    t, p = _floats(y_true, y_pred)
    return 1.0 - 2.0 * jnp.sum(t * p, axis=axis) / (jnp.sum(t, axis=axis) + jnp.sum(p, axis=axis) + _eps())


def tversky(y_true: ArrayLike, y_pred: ArrayLike, alpha: float = 0.5, beta: float = 0.5,
            axis: Any = None) -> jax.Array:
    # Keras: 1 - TP / (TP + alpha FP + beta FN + eps), with FP = sum((1 - p) t), FN = sum(p (1 - t))
    # as Keras writes them (its alpha weights sum((1 - y_pred) * y_true)).
    t, p = _floats(y_true, y_pred)
    tp = jnp.sum(t * p, axis=axis)
    fp = jnp.sum((1.0 - p) * t, axis=axis)
    fn = jnp.sum(p * (1.0 - t), axis=axis)
    return 1.0 - tp / (tp + alpha * fp + beta * fn + _eps())


def circle(y_true: ArrayLike, y_pred: ArrayLike, ref_labels: ArrayLike | None = None,
           ref_embeddings: ArrayLike | None = None,
           remove_diagonal: bool = True, gamma: float = 80.0, margin: float = 0.4) -> jax.Array:
    # Keras's circle loss on the embeddings as given (Keras does not normalise them;
    # jaxloss.circle_loss does), per example, masked to the positive values.
    x = jnp.asarray(y_pred)
    labels = jnp.asarray(y_true).astype(jnp.int32).reshape(-1)
    refs = x if ref_embeddings is None else jnp.asarray(ref_embeddings)
    ref_labels = labels if ref_labels is None else jnp.asarray(ref_labels).astype(jnp.int32).reshape(-1)
    distances = jnp.maximum(1.0 - x @ refs.T, 0.0)
    same = labels[:, None] == ref_labels[None, :]
    positive, negative = same, ~same
    if remove_diagonal:
        positive = positive & ~jnp.eye(labels.shape[0], refs.shape[0], dtype=bool)
    pos_weights = jnp.maximum(jnp.where(positive, margin + distances, 0.0), 0.0)
    neg_weights = jnp.maximum(jnp.where(negative, 1.0 + margin - distances, 0.0), 0.0)
    pos = jnp.where(positive, -gamma * pos_weights * (margin - distances), -jnp.inf)
    neg = jnp.where(negative, gamma * neg_weights * (1.0 - margin - distances), -jnp.inf)
    values = jax.nn.softplus(jax.nn.logsumexp(pos, axis=1) + jax.nn.logsumexp(neg, axis=1))
    _set_keras_mask(values, values > 0)
    return values


def _set_keras_mask(values: jax.Array, mask: jax.Array) -> None:
    """Marks ``values`` with a Keras mask, as Keras's own function does (its mean leaves masked values out)."""
    try:
        from keras.src import backend as keras_backend
    except ImportError:  # pragma: no cover - a Keras without the private module
        return
    keras_backend.set_keras_mask(values, mask)


# name -> (function, Keras class name or None for the function form, class defaults)
_FUNCTIONS: dict[str, Callable[..., jax.Array]] = {
    "mean_squared_error": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "mean_absolute_percentage_error": mean_absolute_percentage_error,
    "mean_squared_logarithmic_error": mean_squared_logarithmic_error,
    "huber": huber,
    "log_cosh": log_cosh,
    "poisson": poisson,
    "kl_divergence": kl_divergence,
    "cosine_similarity": cosine_similarity,
    "hinge": hinge,
    "squared_hinge": squared_hinge,
    "categorical_hinge": categorical_hinge,
    "binary_crossentropy": binary_crossentropy,
    "binary_focal_crossentropy": binary_focal_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "categorical_focal_crossentropy": categorical_focal_crossentropy,
    "ctc": ctc,
    "dice": dice,
    "tversky": tversky,
    "circle": circle,
}
_FUNCTION_ALIASES = {
    "mse": "mean_squared_error", "MSE": "mean_squared_error",
    "mae": "mean_absolute_error", "MAE": "mean_absolute_error",
    "mape": "mean_absolute_percentage_error", "MAPE": "mean_absolute_percentage_error",
    "msle": "mean_squared_logarithmic_error", "MSLE": "mean_squared_logarithmic_error",
    "kld": "kl_divergence", "KLD": "kl_divergence",
    "bce": "binary_crossentropy", "BCE": "binary_crossentropy",
}
# Keras class name -> (function, the class's own default keywords, Keras's default display name)
_CLASSES: dict[str, tuple[str, dict[str, Any], str]] = {
    "MeanSquaredError": ("mean_squared_error", {}, "mean_squared_error"),
    "MeanAbsoluteError": ("mean_absolute_error", {}, "mean_absolute_error"),
    "MeanAbsolutePercentageError": ("mean_absolute_percentage_error", {}, "mean_absolute_percentage_error"),
    "MeanSquaredLogarithmicError": ("mean_squared_logarithmic_error", {}, "mean_squared_logarithmic_error"),
    "Huber": ("huber", {"delta": 1.0}, "huber_loss"),
    "LogCosh": ("log_cosh", {}, "log_cosh"),
    "Poisson": ("poisson", {}, "poisson"),
    "KLDivergence": ("kl_divergence", {}, "kl_divergence"),
    "CosineSimilarity": ("cosine_similarity", {"axis": -1}, "cosine_similarity"),
    "Hinge": ("hinge", {}, "hinge"),
    "SquaredHinge": ("squared_hinge", {}, "squared_hinge"),
    "CategoricalHinge": ("categorical_hinge", {}, "categorical_hinge"),
    "BinaryCrossentropy": ("binary_crossentropy", {"from_logits": False, "label_smoothing": 0.0, "axis": -1},
                           "binary_crossentropy"),
    "BinaryFocalCrossentropy": ("binary_focal_crossentropy",
                                {"apply_class_balancing": False, "alpha": 0.25, "gamma": 2.0,
                                 "from_logits": False, "label_smoothing": 0.0, "axis": -1},
                                "binary_focal_crossentropy"),
    "CategoricalCrossentropy": ("categorical_crossentropy",
                                {"from_logits": False, "label_smoothing": 0.0, "axis": -1},
                                "categorical_crossentropy"),
    "SparseCategoricalCrossentropy": ("sparse_categorical_crossentropy",
                                      {"from_logits": False, "ignore_class": None, "axis": -1},
                                      "sparse_categorical_crossentropy"),
    "CategoricalFocalCrossentropy": ("categorical_focal_crossentropy",
                                     {"alpha": 0.25, "gamma": 2.0, "from_logits": False, "label_smoothing": 0.0,
                                      "axis": -1},
                                     "categorical_focal_crossentropy"),
    "CTC": ("ctc", {}, "ctc"),
    "Dice": ("dice", {"axis": None}, "dice"),
    "Tversky": ("tversky", {"alpha": 0.5, "beta": 0.5, "axis": None}, "tversky"),
    "Circle": ("circle", {"gamma": 80.0, "margin": 0.4, "remove_diagonal": True}, "circle"),
}

#: Every Keras 3 built-in loss identifier :func:`get` accepts (function names, their
#: aliases and class names; Keras's abstract ``Loss`` and ``LossFunctionWrapper`` are not losses).
KERAS_NAMES: tuple[str, ...] = tuple(sorted({*_FUNCTIONS, *_FUNCTION_ALIASES, *_CLASSES}))


class KerasEquivalentLoss(keras.losses.Loss):  # type: ignore[misc]
    """A Keras built-in loss computed with jaxloss, equal to Keras's class of the same name.

    Built by :func:`get` from a Keras class name; ``self.fn`` is the per-example
    function with Keras's semantics and ``self.config`` its keywords.
    """

    def __init__(self, keras_name: str, *, reduction: str | None = "sum_over_batch_size", name: str | None = None,
                 dtype: Any = None, **config: Any) -> None:
        fn_name, defaults, default_name = _CLASSES[keras_name]
        unknown = set(config) - set(defaults)
        if unknown:
            raise ValueError(f"jaxloss.keras.get: {keras_name} takes {sorted(defaults) or 'no options'}, "
                             f"got {sorted(unknown)}")
        super().__init__(name=name or default_name, reduction=reduction, dtype=dtype)
        self.keras_name = keras_name
        self.fn = _FUNCTIONS[fn_name]
        self.config = {**defaults, **config}

    def call(self, y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
        return self.fn(y_true, y_pred, **self.config)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "keras_name": self.keras_name, **self.config}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> KerasEquivalentLoss:
        config = dict(config)
        return cls(config.pop("keras_name"), **config)


def get(name: str, **config: Any) -> Any:
    """Keras's built-in loss ``name``, computed with jaxloss, with Keras's number.

    Mirrors ``keras.losses.get``: a Keras function name or alias
    (``"mse"``, ``"binary_crossentropy"``, ``"kld"``, ...) gives a function
    ``fn(y_true, y_pred) -> [batch]`` of per-example values (Keras's mean over
    the last axis where Keras takes it); a Keras class name
    (``"BinaryCrossentropy"``, ``"Huber"``, ...) gives a ``keras.losses.Loss``
    that reduces as Keras does (``"sum_over_batch_size"``). Either goes into
    ``model.compile(loss=...)``. Defaults are Keras's: the cross-entropies take
    probabilities (``from_logits=False``), probabilities are clipped to
    ``[eps, 1 - eps]`` with ``eps = keras.config.epsilon()``, labels all in
    ``{0, 1}`` become ``{-1, +1}`` for the hinge losses.

    .. math::

        \\texttt{jaxloss.keras.get(name)(y\\_true, y\\_pred)} =
        \\texttt{keras.losses.get(name)(y\\_true, y\\_pred)}

    The one deliberate difference: a class index outside ``[0, C)`` in
    ``sparse_categorical_crossentropy`` gives NaN (Keras gives 0).

    Args:
      name: a Keras loss identifier: one of :data:`KERAS_NAMES`.
      **config: keywords of the Keras function or class
        (``from_logits=True``, ``label_smoothing=0.1``, ``delta=2.0``; for a
        class also ``reduction``, ``name``, ``dtype``), bound into the result.

    Returns:
      A function ``(y_true, y_pred) -> [batch]`` for a function name, a
      ``keras.losses.Loss`` returning a scalar for a class name.

    Raises:
      ValueError: ``name`` is not a Keras built-in loss (the message lists close
        matches and points to :class:`Loss` for jaxloss names), or a keyword the
        class does not take.

    Example:
      >>> import numpy as np
      >>> import jaxloss.keras
      >>> y_true = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
      >>> y_pred = np.array([[0.2, 0.7], [0.6, 0.1]], np.float32)    # probabilities, as Keras
      >>> bce = jaxloss.keras.get("BinaryCrossentropy")
      >>> round(float(bce(y_true, y_pred)), 4)     # keras.losses.BinaryCrossentropy() gives 0.299
      0.299
      >>> np.round(np.asarray(jaxloss.keras.get("binary_crossentropy")(y_true, y_pred)), 4)
      array([0.2899, 0.3081], dtype=float32)

    References:
      Keras 3 losses, https://keras.io/api/losses/ (``keras/src/losses/losses.py``).
    """
    if name in _CLASSES:
        return KerasEquivalentLoss(name, **config)
    fn_name = _FUNCTION_ALIASES.get(name, name)
    if fn_name in _FUNCTIONS:
        fn = _FUNCTIONS[fn_name]
        if not config:
            return fn

        def bound(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
            return fn(y_true, y_pred, **config)

        bound.__name__ = fn.__name__
        return bound
    import difflib

    close = difflib.get_close_matches(name, KERAS_NAMES, n=3)
    hint = f"; close matches: {close}" if close else ""
    try:
        _registry.get(name)
        hint += f"; {name!r} is a jaxloss name: use jaxloss.keras.Loss({name!r}) for jaxloss's semantics"
    except (KeyError, ValueError):
        pass
    raise ValueError(f"jaxloss.keras.get: {name!r} is not a Keras built-in loss{hint}")
