"""Building your own losses: ``make_loss``, ``combine`` and ``checked``."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from jaxloss import _checks, _numerics, _registry
from jaxloss._reduction import reduce_values


def make_loss(fn: Callable[..., Any] | None = None, *, axis: int | None = None,
              name: str | None = None) -> Any:
    r"""Turns a function returning unreduced values into a loss that keeps the contract.

    The wrapped function takes the data arrays positionally and returns the
    unreduced values: elementwise (``axis=None``, all data arrays of one shape)
    or per example (``axis`` given: float arrays share a shape ``[..., C]``,
    integer arrays have that shape without ``axis``, values have shape
    ``[...]``). The loss returned adds the common keywords and, around ``fn``:
    shape and dtype checks naming the loss and the argument, the dtype policy
    (16-bit floats computed and returned in float32), the double-where that
    replaces masked inputs by 0 before ``fn`` sees them, and
    :func:`jaxloss.reduce`.

    .. math::

        \mathcal{L}(x, y) = \operatorname{reduce}(f(x, y); \text{reduction}, w, m)

    Args:
      fn: ``fn(*data_arrays, **hyper_parameters) -> values``. Used bare
        (``@make_loss``) or with options (``@make_loss(axis=-1)``).
      axis: ``None`` for an elementwise loss, else the axis ``fn`` reduces.
      name: the name used in error messages (default ``fn.__name__``).

    Returns:
      ``loss(*data_arrays, reduction="mean", weights=None, where=None,
      **hyper_parameters)``.

    Raises:
      ValueError: (from the loss) mismatched shapes, a bad reduction, or
        ``fn`` returning values of the wrong shape.
      TypeError: (from the loss) a first data array that is not floating, or
        a complex one.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> @jaxloss.make_loss
      ... def fourth_power_error(predictions, targets):
      ...     return (predictions - targets) ** 4
      >>> float(fourth_power_error(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0])))
      8.5
      >>> fourth_power_error(jnp.ones(2), jnp.ones(2), reduction="none").shape
      (2,)

    References:
      Chollet et al., "Keras", 2015, ``keras.losses.LossFunctionWrapper``,
      https://keras.io/api/losses/
    """
    if fn is None:
        return functools.partial(make_loss, axis=axis, name=name)
    loss_name = name or getattr(fn, "__name__", "custom_loss")

    @functools.wraps(fn)
    def loss(*data: Any, reduction: str = "mean", weights: Any = None, where: Any = None,
             **hyper_parameters: Any) -> jax.Array:
        _checks.reduction(loss_name, reduction)
        names = _data_names(fn, len(data))
        arrays = []
        for n, x in zip(names, data):
            x = _checks.real(loss_name, n, x)
            if jnp.issubdtype(x.dtype, jnp.floating):
                x = _checks.floating(loss_name, n, x)
            arrays.append(x)
        floats = [(n, x) for n, x in zip(names, arrays) if jnp.issubdtype(x.dtype, jnp.floating)]
        ints = [(n, x) for n, x in zip(names, arrays) if not jnp.issubdtype(x.dtype, jnp.floating)]
        if not arrays or not jnp.issubdtype(arrays[0].dtype, jnp.floating):
            _checks._fail(TypeError, _checks.message(loss_name, names[0] if names else "inputs",
                                                     "(the first data array) must have a floating dtype",
                                                     arrays[0].dtype if arrays else "no arrays"))
        if axis is None:
            _checks.same_shape(loss_name, *zip(names, arrays))
            value_shape = arrays[0].shape
        else:
            _checks.same_shape(loss_name, *floats)
            ax = _checks.normalize_axis(loss_name, axis, floats[0][1].ndim)
            value_shape = tuple(d for i, d in enumerate(floats[0][1].shape) if i != ax)
            for n, x in ints:
                _checks.shape(loss_name, n, x, value_shape, f"{value_shape} (the float inputs without axis {axis})")
        dtype = _numerics.compute_dtype(*(x for _, x in floats))
        where_in = None
        if where is not None:
            where_in = _checks.boolean(loss_name, "where", where)
            where_in = _checks.broadcastable(loss_name, "where", where_in, value_shape, "the unreduced loss shape")
        prepared = []
        for x in arrays:
            if jnp.issubdtype(x.dtype, jnp.floating):
                x = x.astype(dtype)
                mask = where_in if axis is None or x.ndim == len(value_shape) else jnp.expand_dims(where_in, ax) \
                    if where_in is not None else None
                x = _numerics.mask_inputs(mask, x)
            prepared.append(x)
        values = jnp.asarray(fn(*prepared, **hyper_parameters))
        if values.shape != tuple(value_shape):
            _checks._fail(ValueError, _checks.message(loss_name, "values returned by the wrapped function",
                                                      f"must have the unreduced shape {tuple(value_shape)}",
                                                      values.shape))
        return reduce_values(values, reduction=reduction, weights=weights, where=where_in, fn=loss_name)

    params = list(inspect.signature(fn).parameters.values())
    extra = [inspect.Parameter("reduction", inspect.Parameter.KEYWORD_ONLY, default="mean"),
             inspect.Parameter("weights", inspect.Parameter.KEYWORD_ONLY, default=None),
             inspect.Parameter("where", inspect.Parameter.KEYWORD_ONLY, default=None)]
    keep = [p for p in params if p.kind != inspect.Parameter.VAR_KEYWORD]
    positional = [p for p in keep if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in keep
               if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.kind != p.VAR_POSITIONAL]
    loss.__signature__ = inspect.Signature(positional + keyword + extra)  # type: ignore[attr-defined]
    return loss


def _data_names(fn: Callable[..., Any], n: int) -> list[str]:
    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return (params + [f"arg{i}" for i in range(len(params), n)])[:n]


def combine(**terms: tuple[Callable[..., Any], Any]) -> Callable[..., tuple[jax.Array, dict[str, jax.Array]]]:
    r"""Weighted sum of losses that also returns the named parts for logging.

    .. math::

        \mathcal{L} = \sum_k \lambda_k \mathcal{L}_k

    Args:
      **terms: ``name=(loss_fn, weight)``; every ``loss_fn`` is called with
        the same positional and keyword arguments. ``weight`` is a number or
        a scalar array (it may be traced, e.g. a schedule).

    Returns:
      ``fn(*args, **kwargs) -> (total, {name: unweighted value})``, ready for
      ``jax.value_and_grad(fn, has_aux=True)``.

    Raises:
      ValueError: no terms, a term that is not a ``(callable, weight)`` pair,
        or a concrete negative or non-finite weight.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> loss_fn = jaxloss.combine(mse=(jaxloss.squared_error, 1.0),
      ...                           mae=(jaxloss.absolute_error, 0.5))
      >>> total, parts = loss_fn(jnp.array([2.0]), jnp.array([0.0]))
      >>> float(total), float(parts["mse"]), float(parts["mae"])
      (5.0, 4.0, 2.0)

    References:
      Kendall, Gal and Cipolla, "Multi-Task Learning Using Uncertainty to
      Weigh Losses", 2018 (fixed-weight baseline), https://arxiv.org/abs/1705.07115
    """
    if not terms:
        _checks._fail(ValueError, _checks.message("combine", "terms", "must name at least one (loss, weight) pair",
                                                  "nothing"))
    for key, term in terms.items():
        if not (isinstance(term, tuple) and len(term) == 2 and callable(term[0])):
            _checks._fail(ValueError, _checks.message("combine", key, "must be a (loss_fn, weight) pair", repr(term)))
        _checks.in_range("combine", f"weight of {key}", term[1], low=0.0)
        if _checks.is_concrete(term[1]) and not np.all(np.isfinite(np.asarray(term[1], np.float64))):
            _checks._fail(ValueError, _checks.message("combine", f"weight of {key}", "must be finite", term[1]))

    def combined(*args: Any, **kwargs: Any) -> tuple[jax.Array, dict[str, jax.Array]]:
        parts = {key: loss_fn(*args, **kwargs) for key, (loss_fn, _) in terms.items()}
        total = sum(jnp.asarray(weight) * parts[key] for key, (_, weight) in terms.items())
        return total, parts

    return combined


# --------------------------------------------------------------------- checked
def _first_bad(bad: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    flat = jnp.ravel(bad)
    index = jnp.argmax(flat)
    return index, jnp.ravel(x)[index]


def _kept(where: Any, x: jax.Array, unreduced_shape: tuple[int, ...], axis: int) -> jax.Array | None:
    """``where`` broadcast to ``x`` (None: check every entry of ``x``)."""
    if where is None:
        return None
    m = jnp.broadcast_to(jnp.asarray(where, bool), unreduced_shape)
    if x.shape == tuple(unreduced_shape):
        return m
    if x.ndim == len(unreduced_shape) + 1:  # per-example loss: add back the reduced axis
        return jnp.broadcast_to(jnp.expand_dims(m, axis), x.shape)
    return None


def _data_checks(fn_name: str, bound: inspect.BoundArguments, unreduced_shape: tuple[int, ...] = ()) -> None:
    """Adds checkify checks for the data-dependent conditions of the contract."""
    arguments = bound.arguments
    where = arguments.get("where")
    class_axis = arguments.get("axis", -1)

    def unmasked(bad: jax.Array, x: jax.Array) -> jax.Array:
        kept = _kept(where, x, unreduced_shape, class_axis)
        return bad if kept is None else bad & kept
    positional = [(k, v) for k, v in arguments.items()
                  if k not in ("reduction", "weights", "where") and hasattr(v, "shape") or isinstance(v, np.ndarray)]
    for key, value in positional:
        x = jnp.asarray(value)
        if jnp.issubdtype(x.dtype, jnp.floating) and x.size:
            bad = unmasked(~jnp.isfinite(x), x)
            index, first = _first_bad(bad, x)
            checkify.check(~jnp.any(bad), f"jaxloss.{fn_name}: {key} must be finite, got {{}} at flat index {{}}",
                           first, index)
    weights = arguments.get("weights")
    if weights is not None:
        w = jnp.asarray(weights)
        if where is not None and w.shape != tuple(unreduced_shape):
            w = jnp.broadcast_to(w, unreduced_shape)
        bad = unmasked(w < 0, w)
        index, first = _first_bad(bad, w)
        checkify.check(~jnp.any(bad), f"jaxloss.{fn_name}: weights must be >= 0, got {{}} at flat index {{}}",
                       first, index)
    probabilities = arguments.get("probabilities")
    if probabilities is not None:
        p = jnp.asarray(probabilities)
        bad = unmasked((p < 0) | (p > 1), p)
        index, first = _first_bad(bad, p)
        checkify.check(~jnp.any(bad),
                       f"jaxloss.{fn_name}: probabilities must be in [0, 1], got {{}} at flat index {{}}",
                       first, index)
    labels = arguments.get("labels")
    if labels is None:
        return
    y = jnp.asarray(labels)
    if jnp.issubdtype(y.dtype, jnp.integer):
        first_name, first_value = next(iter(arguments.items()))
        axis = arguments.get("axis", -1)
        ref = jnp.asarray(first_value)
        if first_name == "labels" or ref.ndim != y.ndim + 1:
            return
        num_classes = ref.shape[axis]
        ok = ~unmasked(~((y >= 0) & (y < num_classes)), y)
        ignore_index = arguments.get("ignore_index")
        if ignore_index is not None:
            ok = ok | (y == ignore_index)
        index, first = _first_bad(~ok, y)
        allowed = f"[0, {num_classes})" + (f" or ignore_index={ignore_index}" if ignore_index is not None else "")
        checkify.check(jnp.all(ok), f"jaxloss.{fn_name}: labels must be in {allowed}, got {{}} at flat index {{}}",
                       first, index)
        return
    domain = _registry.LABEL_DOMAINS.get(fn_name)
    if domain == "unit":
        bad = (y < 0) | (y > 1)
        expected = "in [0, 1]"
    elif domain == "sign":
        bad = (y != -1) & (y != 1)
        expected = "-1 or +1"
    elif domain == "binary":
        bad = (y != 0) & (y != 1)
        expected = "0 or 1"
    else:
        return
    bad = unmasked(bad, y)
    index, first = _first_bad(bad, y)
    checkify.check(~jnp.any(bad), f"jaxloss.{fn_name}: labels must be {expected}, got {{}} at flat index {{}}",
                   first, index)


def checked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a loss so bad data values raise a clear error, also under ``jax.jit``.

    Checks, by argument name: every float data array is finite; ``weights``
    are non-negative; ``probabilities`` lie in ``[0, 1]``; integer ``labels``
    lie in ``[0, C)`` (or equal ``ignore_index``), ``C`` being the size of the
    first argument's class ``axis``; float ``labels`` lie in the loss's label
    domain (``[0, 1]`` for binary cross-entropies, ``{-1, +1}`` for hinge
    losses). Built on :mod:`jax.experimental.checkify`: called eagerly the
    error is raised directly; inside ``jax.jit`` it is raised when the
    computation runs (as a ``JaxRuntimeError`` carrying the same message).

    Args:
      fn: any jaxloss loss (or a loss with the same argument names).

    Returns:
      A function with ``fn``'s signature and values.

    Raises:
      jax.experimental.checkify.JaxRuntimeError: (from the returned function)
        the first bad value, naming the loss, the argument and the value.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> safe_ce = jaxloss.checked(jaxloss.softmax_cross_entropy_with_integer_labels)
      >>> logits = jnp.zeros((2, 3))
      >>> safe_ce(logits, jnp.array([0, 3]))  # doctest: +IGNORE_EXCEPTION_DETAIL
      Traceback (most recent call last):
      JaxRuntimeError: jaxloss.softmax_cross_entropy_with_integer_labels: labels must be in [0, 3), got 3 ...

    References:
      The JAX authors, "The checkify transformation",
      https://docs.jax.dev/en/latest/debugging/checkify_guide.html
    """
    signature = inspect.signature(fn)
    fn_name = getattr(fn, "__name__", "loss")

    def body(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        unreduced: tuple[int, ...] = ()
        if bound.arguments.get("where") is not None:  # masked entries are not checked
            unreduced = jax.eval_shape(lambda *a: fn(*a, **{**kwargs, "reduction": "none", "where": None}), *args).shape
        _data_checks(fn_name, bound, tuple(unreduced))
        return fn(*args, **kwargs)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        leaves = jax.tree_util.tree_leaves((args, kwargs))
        dynamic = {k: v for k, v in kwargs.items() if isinstance(v, (jax.Array, np.ndarray))}
        static = {k: v for k, v in kwargs.items() if k not in dynamic}
        checked_body = checkify.checkify(lambda a, kw: body(*a, **kw, **static))
        error, out = checked_body(args, dynamic)
        if any(isinstance(x, jax.core.Tracer) for x in leaves):
            # Under an outer transformation the values are not known yet: raise
            # when the computation runs.
            jax.debug.callback(lambda err: err.throw(), error)
        else:
            error.throw()
        return out

    return wrapper
