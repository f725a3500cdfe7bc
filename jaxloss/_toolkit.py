"""Building your own losses: ``make_loss``, ``combine`` and ``checked``."""

from __future__ import annotations

import functools
import inspect
import sys
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
    unreduced values: elementwise (``axis=None``, all data arrays of one
    shape), per example over a class ``axis`` (``axis`` given: float arrays
    share a shape ``[..., C]``, integer arrays have that shape without
    ``axis``, values have shape ``[...]``), or, with ``axis=None`` and inputs
    of different shapes, whatever the function returns, provided its output
    shape is a leading prefix of every input's shape (``nll(logits [B, C],
    labels [B]) -> [B]``); ``weights``/``where`` then broadcast to that output
    shape. Any other shape mismatch is a ``ValueError``, never broadcasting. The loss returned adds the common keywords and, around ``fn``:
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
    loss_name: str = name or str(getattr(fn, "__name__", "custom_loss"))

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
        if axis is None and len({x.shape for x in arrays}) > 1:
            # Inputs of different shapes (nll(logits [B, C], labels [B]) -> [B]): the
            # unreduced shape is the function's output shape, a leading prefix of
            # every input's shape; anything else is a shape error, never broadcasting.
            value_shape = _output_shape(fn, arrays, hyper_parameters)
            if value_shape is None or any(x.shape[:len(value_shape)] != value_shape for x in arrays):
                _checks.same_shape(loss_name, *zip(names, arrays))
        elif axis is None:
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
                mask = None
                if where_in is not None:
                    mask = (jnp.expand_dims(where_in, ax) if axis is not None and x.ndim != len(value_shape)
                            else _align(where_in, tuple(x.shape)))
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


def _output_shape(fn: Callable[..., Any], arrays: list[jax.Array], hyper_parameters: dict[str, Any]) -> Any:
    """The shape ``fn`` returns on these inputs, or ``None`` if it fails to trace."""
    try:
        with jax.numpy_rank_promotion("allow"):
            return tuple(jax.eval_shape(lambda *a: fn(*a, **hyper_parameters), *arrays).shape)
    except Exception:  # pylint: disable=broad-except
        return None


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


def _align(mask: jax.Array, shape: tuple[int, ...], axis: Any = None) -> jax.Array | None:
    """A mask broadcast to an input's ``shape`` by jaxloss's mask conventions, or ``None``.

    Tried in order: the same shape; the input's shape without its class axis
    ``axis`` (per-example losses, channels-first included); a leading prefix
    (per-example or per-pixel masks of ``[B, ..., D]`` inputs); the input's
    shape without any one axis; numpy's right-aligned broadcasting.
    """
    m = tuple(mask.shape)
    if m == shape:
        return mask
    candidates = []
    if len(m) == len(shape) - 1:
        if isinstance(axis, int) and -len(shape) <= axis < len(shape):
            candidates.append(axis % len(shape))
    if len(m) < len(shape) and shape[:len(m)] == m:
        return jnp.broadcast_to(jnp.reshape(mask, m + (1,) * (len(shape) - len(m))), shape)
    if len(m) == len(shape) - 1:
        candidates += list(range(len(shape)))
    for k in candidates:
        if shape[:k] + shape[k + 1:] == m:
            return jnp.broadcast_to(jnp.expand_dims(mask, k), shape)
    try:
        if np.broadcast_shapes(m, shape) == shape:
            return jnp.broadcast_to(mask, shape)
    except ValueError:
        pass
    return None


def _check(ok: jax.Array, x: jax.Array, msg: str) -> None:
    index, first = _first_bad(~ok, x)
    checkify.check(jnp.all(ok), msg + ", got {} at flat index {}", first, index)


def _data_checks(fn: Callable[..., Any], fn_name: str, bound: inspect.BoundArguments,
                 unreduced_shape: tuple[int, ...] | None) -> None:
    """Adds checkify checks for the data-dependent conditions of the contract.

    What each argument is (logits, probabilities, class indices, shared
    parameters, paddings) comes from the registry, the one place that knows.
    Masked positions (``where``) and padded positions are never checked.
    """
    arguments = bound.arguments
    names = [p for p in inspect.signature(fn).parameters.values()
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    data = {p.name: jnp.asarray(arguments[p.name]) for p in names
            if p.name in arguments and hasattr(arguments[p.name], "shape")}
    keywords = {k: v for k, v in arguments.items() if k not in data}
    roles = _registry.arguments(fn, {k: v.dtype for k, v in data.items()})
    class_axis = next((keywords[k] for k in ("axis", "channel_axis") if isinstance(keywords.get(k), int)), -1)
    where = arguments.get("where")
    where = None if where is None else jnp.asarray(where, bool)
    if where is not None and unreduced_shape is not None:
        try:
            where = jnp.broadcast_to(where, unreduced_shape)
        except ValueError:
            pass

    def kept(name: str, x: jax.Array) -> jax.Array | None:
        """Positions of ``x`` to check; ``None`` when they cannot be told apart."""
        keep = jnp.ones(x.shape, bool)
        role = roles.get(name)
        if where is not None and (role is None or role.masked):
            aligned = _align(where, tuple(x.shape), class_axis)
            if aligned is None:
                return None
            keep = keep & aligned
        for pad_name, padded in _registry.PADDED.items():
            if padded == name and pad_name in data:
                pads = _align(data[pad_name] <= 0, tuple(x.shape))
                if pads is not None:
                    keep = keep & pads
        return keep

    for name, x in data.items():
        role = roles.get(name, _registry.Argument("data"))
        if x.size == 0 or role.role in ("paddings", "flags"):
            continue
        keep = kept(name, x)
        if keep is None:
            continue
        if jnp.issubdtype(x.dtype, jnp.floating):
            _check(~keep | jnp.isfinite(x), x, f"jaxloss.{fn_name}: {name} must be finite")
        if role.role == "probabilities":
            _check(~keep | ((x >= 0) & (x <= 1)), x, f"jaxloss.{fn_name}: {name} must be in [0, 1]")
        domain = _registry.LABEL_DOMAINS.get(fn_name) if name == "labels" else None
        if domain is not None:
            y = x.astype(jnp.float32) if not jnp.issubdtype(x.dtype, jnp.floating) else x
            if domain == "unit":
                good, expected = (y >= 0) & (y <= 1), "in [0, 1]"
            elif domain == "sign":
                good, expected = (y == -1) | (y == 1), "-1 or +1"
            else:
                good, expected = (y == 0) | (y == 1), "0 or 1"
            _check(~keep | good, x, f"jaxloss.{fn_name}: {name} must be {expected}")
        elif role.role == "class_indices" and jnp.issubdtype(x.dtype, jnp.integer):
            num_classes = _registry.num_classes(role, data, keywords)
            if num_classes is None:
                continue
            unsigned = x.dtype.kind == "u"
            good = (x < num_classes) if unsigned else (x >= 0) & (x < num_classes)
            ignore_index = keywords.get("ignore_index")
            allowed = f"[0, {num_classes})"
            if ignore_index is not None:
                allowed += f" or ignore_index={ignore_index}"
                if not unsigned or ignore_index >= 0:
                    good = good | (x == ignore_index)
            _check(~keep | good, x, f"jaxloss.{fn_name}: {name} must be in {allowed}")

    weights = arguments.get("weights")
    if weights is not None:
        w = jnp.asarray(weights)
        keep = jnp.ones(w.shape, bool)
        if where is not None:
            if unreduced_shape is not None:
                w = jnp.broadcast_to(w, unreduced_shape)
            aligned = _align(where, tuple(w.shape))
            keep = aligned if aligned is not None else keep
        _check(~keep | (w >= 0), w, f"jaxloss.{fn_name}: weights must be >= 0")


def _raise_first(error: Any) -> None:
    """Runs on the host under ``jit``: our message is the first line the user reads."""
    message = error.get()
    if message:
        print(message.splitlines()[0], file=sys.stderr, flush=True)
        error.throw()


def checked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a loss so bad data values raise a clear error, also under ``jax.jit``.

    Checks, for what the registry says each argument is: every float data
    array is finite; ``weights`` are non-negative; probabilities lie in
    ``[0, 1]``; integer class indices (``labels``, or integer ``targets`` of
    the segmentation losses) lie in ``[0, C)`` or equal ``ignore_index``,
    ``C`` read from the class axis (``axis``/``channel_axis``) or from the
    class centres, proxies or output weight the loss takes; labels lie in the
    loss's label domain (``[0, 1]`` for binary cross-entropies, ``{-1, +1}``
    for hinge losses, ``{0, 1}`` for the Lovasz hinge). Positions that
    ``where`` masks (per example, per pixel, per item) and padded positions
    (``logit_paddings``) are not checked: a masked NaN is valid input.

    Built on :mod:`jax.experimental.checkify`. Called eagerly (concrete
    inputs), the error is raised directly and its text is our message. Under
    ``jax.jit`` the values are known only when the computation runs: the error
    is raised then, and our message is printed to stderr first, so it is the
    first line the user reads, above XLA's callback traceback (whose last
    line repeats it).

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
        unreduced: tuple[int, ...] | None = None
        if bound.arguments.get("where") is not None or bound.arguments.get("weights") is not None:
            try:
                unreduced = tuple(jax.eval_shape(
                    lambda *a: fn(*a, **{**kwargs, "reduction": "none", "where": None, "weights": None}),
                    *args).shape)
            except Exception:  # pylint: disable=broad-except
                unreduced = None  # the loss itself reports bad shapes below
        _data_checks(fn, fn_name, bound, unreduced)
        return fn(*args, **kwargs)

    def checkified(static: dict[str, Any]) -> Callable[..., Any]:
        """``(args, array kwargs) -> (error, value)`` with the static options bound."""
        return checkify.checkify(lambda a, kw: body(*a, **kw, **static))

    @functools.lru_cache(maxsize=32)
    def compiled(static_items: tuple[tuple[str, Any], ...]) -> Callable[..., Any]:
        # Concrete inputs: one compiled program per set of static options, instead of
        # running the checks and the loss op by op (each op compiled on its own).
        return jax.jit(checkified(dict(static_items)))

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        leaves = jax.tree_util.tree_leaves((args, kwargs))
        dynamic = {k: v for k, v in kwargs.items() if isinstance(v, (jax.Array, np.ndarray))}
        static = {k: v for k, v in kwargs.items() if k not in dynamic}
        if any(isinstance(x, jax.core.Tracer) for x in leaves):
            # Under jax.jit (or another transformation) the values are not known
            # yet: raise when the computation runs, our message printed first.
            error, out = checkified(static)(args, dynamic)
            jax.debug.callback(_raise_first, error)
            return out
        try:
            program = compiled(tuple(sorted(static.items())))
        except TypeError:  # an unhashable option (a list): op by op
            program = checkified(static)
        error, out = program(args, dynamic)
        error.throw()
        return out

    return wrapper
