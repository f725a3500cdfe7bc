"""Calls under ``jax.jit`` with one compiled program per function, static options and shapes.

Eager calls compile each primitive on its own, and compilation is the suite's cost:
reference tests call losses through :func:`jit_static` (or a :class:`Jitted` module
proxy), so tests of a file that share shapes and options share one program.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import numpy as np

_COMPILED: dict[Any, Any] = {}


def _is_array(value: Any) -> bool:
    return isinstance(value, (np.ndarray, jax.Array))


def jit_static(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` under ``jax.jit``: positional and array keyword arguments traced, every other keyword static."""
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        static = tuple(sorted((k, v) for k, v in kwargs.items() if not _is_array(v)))
        arrays = {k: v for k, v in kwargs.items() if _is_array(v)}
        key = (fn, static)
        if key not in _COMPILED:
            _COMPILED[key] = jax.jit(functools.partial(fn, **dict(static)))
        return _COMPILED[key](*args, **arrays)
    return call


class Jitted:
    """``Jitted(module).name`` is ``module.name`` under :func:`jit_static`."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return jit_static(getattr(self._module, name))
