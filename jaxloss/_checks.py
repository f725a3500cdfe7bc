"""Static argument checks shared by every loss.

Every check runs at trace time (shapes, ranks and dtypes are static), so it is
free under ``jax.jit``. Shape and dtype checks are ``chex`` assertions with
``exception_type`` set to ``ValueError`` (shape, rank, Python value) or
``TypeError`` (dtype), and one message format::

        jaxloss.<function>: <argument> <what was expected>, got <what came>
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

_REDUCTIONS = ("none", "sum", "mean")


def message(fn: str, argument: str, expected: str, got: Any) -> str:
    """The one error message format of the library."""
    return f"jaxloss.{fn}: {argument} {expected}, got {got}"


def is_static_zero(value: Any) -> bool:
    """Whether a hyper-parameter is a concrete (Python, NumPy or committed JAX) scalar equal to 0.

    Losses drop the terms of such a hyper-parameter at trace time.
    """
    if isinstance(value, jax.core.Tracer) or np.ndim(value) != 0:
        return False
    return bool(value == 0)


def is_concrete(value: Any) -> bool:
    """Whether ``value`` is a Python/NumPy value that can be checked in Python."""
    if isinstance(value, jax.core.Tracer):
        return False
    try:
        np.asarray(value)
    except Exception:  # pylint: disable=broad-except
        return False
    return True


def _fail(exception_type: type[Exception], msg: str) -> None:
    """Raises a value or option error whose text starts with ``jaxloss.<fn>:``."""
    raise exception_type(msg)


class _ChexFailure(Exception):
    """What the chex assertions below raise internally; replaced by our message."""


def assert_with(assertion: Any, exception_type: type[Exception], msg: str, *args: Any, **kwargs: Any) -> None:
    """Runs a ``chex`` assertion; on failure raises ``exception_type(msg)``.

    chex does the shape, rank and dtype reasoning; the user reads only our
    message (``jaxloss.<fn>: ...``), not chex's prefix or its traceback.
    """
    try:
        assertion(*args, exception_type=_ChexFailure, **kwargs)
    except _ChexFailure:
        raise exception_type(msg) from None


# ---------------------------------------------------------------- Python values
def reduction(fn: str, value: Any) -> str:
    if not isinstance(value, str) or value not in _REDUCTIONS:
        _fail(ValueError, message(fn, "reduction", "must be one of 'none', 'sum', 'mean'", repr(value)))
    return str(value)


def choice(fn: str, argument: str, value: Any, options: Sequence[Any]) -> Any:
    if value not in options:
        _fail(ValueError, message(fn, argument, f"must be one of {', '.join(map(repr, options))}", repr(value)))
    return value


def in_range(fn: str, argument: str, value: Any, *, low: float | None = None,
                          high: float | None = None, low_open: bool = False,
                          high_open: bool = False) -> None:
    """Checks a numeric hyper-parameter when it is concrete; traced values pass.

    Arrays are checked elementwise. ``None`` passes (the caller decides whether
    ``None`` is allowed).
    """
    if value is None or not is_concrete(value):
        return
    arr = np.asarray(value, dtype=np.float64)
    ok = np.ones(arr.shape, dtype=bool)
    if low is not None:
        ok &= (arr > low) if low_open else (arr >= low)
    if high is not None:
        ok &= (arr < high) if high_open else (arr <= high)
    ok &= ~np.isnan(arr)
    if not np.all(ok):
        lo = "" if low is None else (f"> {low}" if low_open else f">= {low}")
        hi = "" if high is None else (f"< {high}" if high_open else f"<= {high}")
        expected = "must be " + " and ".join(s for s in (lo, hi) if s)
        bad = arr if arr.ndim == 0 else arr[~ok].ravel()[0]
        _fail(ValueError, message(fn, argument, expected, f"{float(bad)!r}"))


def integer_option(fn: str, argument: str, value: Any, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        _fail(ValueError, message(fn, argument, "must be a Python int" + (" or None" if allow_none else ""), repr(value)))


# ---------------------------------------------------------------------- arrays
def _dtype_name(x: Any) -> str:
    return str(jnp.result_type(x)) if hasattr(x, "dtype") else type(x).__name__


def floating(fn: str, argument: str, x: Any) -> jax.Array:
    """Checks that ``x`` is a real floating array and returns it as a jax array."""
    if not hasattr(x, "dtype") and not isinstance(x, (float, int)):
        x = np.asarray(x)
    dtype = jnp.result_type(x)
    if not jnp.issubdtype(dtype, jnp.floating):
        assert_with(chex.assert_type, TypeError, message(fn, argument, "must have a floating dtype", dtype),
                    jnp.zeros((), dtype), float)
    return jnp.asarray(x)


def real(fn: str, argument: str, x: Any) -> jax.Array:
    """Checks that ``x`` is a real (bool, integer or floating) array."""
    array = jnp.asarray(x)
    if jnp.issubdtype(array.dtype, jnp.complexfloating):
        _fail(TypeError, message(fn, argument, "must have a real dtype", array.dtype))
    return array


def integer(fn: str, argument: str, x: Any) -> jax.Array:
    """Checks that ``x`` is an integer array (class indices)."""
    if not hasattr(x, "dtype"):
        x = np.asarray(x)
    dtype = jnp.result_type(x)
    if not jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.bool_):
        _fail(TypeError, message(fn, argument, "must have an integer dtype (class indices)", dtype))
    return jnp.asarray(x)


def same_shape(fn: str, *named: tuple[str, jax.Array]) -> None:
    """Checks that all arrays have the same shape (no silent broadcasting)."""
    (n0, x0), *rest = named
    for n, x in rest:
        if jnp.shape(x) != jnp.shape(x0):
            assert_with(chex.assert_equal_shape, ValueError,
                        f"jaxloss.{fn}: {n0} {jnp.shape(x0)} and {n} {jnp.shape(x)} must have the same shape",
                        [x0, x])


def shape(fn: str, argument: str, x: jax.Array, expected: Sequence[int | None], what: str) -> None:
    """Checks ``x.shape`` against ``expected`` (``None`` is any size)."""
    assert_with(chex.assert_shape, ValueError, message(fn, argument, f"must have shape {what}", jnp.shape(x)),
                x, tuple(expected))


def rank_at_least(fn: str, argument: str, x: jax.Array, rank: int, what: str) -> None:
    if jnp.ndim(x) < rank:
        assert_with(chex.assert_rank, ValueError,
                    message(fn, argument, f"must have rank >= {rank} ({what})", f"shape {jnp.shape(x)}"),
                    x, set(range(rank, rank + 32)))


def normalize_axis(fn: str, axis: int, ndim: int, argument: str = "axis") -> int:
    integer_option(fn, argument, axis, allow_none=False)
    if not -ndim <= axis < ndim:
        _fail(ValueError, message(fn, argument, f"must be in [-{ndim}, {ndim}) for an input of rank {ndim}", axis))
    return axis % ndim


def broadcastable(fn: str, argument: str, x: Any, target_shape: Sequence[int], what: str) -> jax.Array:
    """Broadcasts ``x`` explicitly to ``target_shape`` or raises ``ValueError``.

    Used for ``weights``, ``where`` and array hyper-parameters, which may
    broadcast by design (numpy rules, right-aligned).
    """
    x = jnp.asarray(x)
    target_shape = tuple(target_shape)
    try:
        ok = jnp.ndim(x) <= len(target_shape) and np.broadcast_shapes(jnp.shape(x), target_shape) == target_shape
    except ValueError:
        ok = False
    if not ok:
        _fail(ValueError, message(fn, argument, f"must broadcast to {what} {target_shape}", f"shape {jnp.shape(x)}"))
    return jnp.broadcast_to(x, target_shape)


def boolean(fn: str, argument: str, x: Any) -> jax.Array:
    array = jnp.asarray(x)
    if array.dtype != jnp.bool_:
        _fail(TypeError, message(fn, argument, "must be a boolean mask", array.dtype))
    return array


def elementwise_inputs(fn: str, where: Any, floats: Sequence[tuple[str, Any]],
                       reals: Sequence[tuple[str, Any]] = (),
                       safe_values: Sequence[float] | None = None) -> tuple[list[jax.Array], jax.Array | None]:
    """Validates and prepares the data arrays of an elementwise loss.

    ``floats`` must have a floating dtype, ``reals`` any real dtype; all must
    have one shape. Returns them cast to the compute dtype (float32 for 16-bit
    inputs) with masked positions replaced by safe values (the first half of
    the double-where), and ``where`` as a boolean array of that shape.
    """
    from jaxloss import _numerics  # local import: _numerics does not depend on checks

    arrays = [floating(fn, n, x) for n, x in floats] + [real(fn, n, x) for n, x in reals]
    names = [n for n, _ in floats] + [n for n, _ in reals]
    same_shape(fn, *zip(names, arrays))
    dtype = _numerics.compute_dtype(*arrays[: len(floats)])
    shape_ = arrays[0].shape
    if where is not None:
        where = broadcastable(fn, "where", boolean(fn, "where", where), shape_, "the unreduced loss shape")
    safe_values = safe_values or [0.0] * len(arrays)
    out = [_numerics.mask_inputs(where, x.astype(dtype), s) for x, s in zip(arrays, safe_values)]
    return out, where
