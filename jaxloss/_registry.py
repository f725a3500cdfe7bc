"""The string registry: ``get``, ``register``, ``available``."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from jaxloss import _checks

F = TypeVar("F", bound=Callable[..., Any])

_LOSSES: dict[str, Callable[..., Any]] = {}
_ALIASES: dict[str, str] = {}
_TAGS: dict[str, frozenset[str]] = {}
_BUILTIN: set[str] = set()

# Label domains `jaxloss.checked` enforces for float labels, by loss name.
LABEL_DOMAINS: dict[str, str] = {}


def _add(name: str, fn: Callable[..., Any], aliases: Iterable[str], tags: Iterable[str],
         overwrite: bool, caller: str) -> None:
    if not isinstance(name, str) or not name:
        _checks._fail(ValueError, _checks.message(caller, "name", "must be a non-empty string", repr(name)))
    if not callable(fn):
        _checks._fail(ValueError, _checks.message(caller, "fn", "must be callable", repr(fn)))
    for key in (name, *aliases):
        if key in _BUILTIN:
            _checks._fail(ValueError, _checks.message(caller, "name", "must not replace a built-in loss", repr(key)))
        if (key in _LOSSES or key in _ALIASES) and not overwrite:
            _checks._fail(ValueError, _checks.message(
                caller, "name", "must not be registered already (pass overwrite=True to replace it)", repr(key)))
    _LOSSES[name] = fn
    _TAGS[name] = frozenset(tags)
    for alias in aliases:
        _ALIASES[alias] = name


def builtin(*, aliases: Iterable[str] = (), tags: Iterable[str] = (),
            labels: str | None = None) -> Callable[[F], F]:
    """Registers a built-in loss under its ``__name__`` (used by family modules).

    ``labels`` names the domain ``jaxloss.checked`` enforces on float labels:
    ``"unit"`` (in [0, 1]), ``"sign"`` (in {-1, +1}), ``"binary"`` (in {0, 1}).
    """
    def decorator(fn: F) -> F:
        previous = _LOSSES.get(fn.__name__)
        if previous is not None and previous.__module__ == fn.__module__:
            # The same module imported a second time (e.g. pytest's importlib mode
            # collecting doctests): keep the first registration.
            return fn
        _add(fn.__name__, fn, tuple(aliases), tuple(tags), overwrite=False, caller="register")
        _BUILTIN.add(fn.__name__)
        _BUILTIN.update(aliases)
        if labels is not None:
            LABEL_DOMAINS[fn.__name__] = labels
        return fn
    return decorator


def register(name: str, fn: Callable[..., Any] | None = None, *, aliases: Iterable[str] = (),
             tags: Iterable[str] = (), overwrite: bool = False) -> Any:
    """Registers a user loss under ``name`` so ``jaxloss.get(name)`` returns it.

    Args:
      name: the registry name.
      fn: the loss; if omitted, ``register`` returns a decorator.
      aliases: further names for the same loss.
      tags: free-form labels that ``available(tag=...)`` filters on.
      overwrite: replace an earlier *user* registration of the same name.

    Returns:
      ``fn`` (or a decorator that registers and returns its argument).

    Raises:
      ValueError: the name is taken (or is a built-in), or ``fn`` is not callable.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxloss
      >>> @jaxloss.register("my_cubic_error")
      ... @jaxloss.make_loss
      ... def cubic(predictions, targets):
      ...     return jnp.abs(predictions - targets) ** 3
      >>> float(jaxloss.get("my_cubic_error")(jnp.array([2.0]), jnp.array([0.0])))
      8.0

    References:
      Chollet et al., "Keras", 2015, string identifiers for losses,
      https://keras.io/api/losses/
    """
    if fn is None:
        def decorator(f: F) -> F:
            _add(name, f, tuple(aliases), tuple(tags), overwrite, caller="register")
            return f
        return decorator
    _add(name, fn, tuple(aliases), tuple(tags), overwrite, caller="register")
    return fn


def get(name: str) -> Callable[..., Any]:
    """Returns the loss registered under ``name`` (canonical name or alias).

    Args:
      name: e.g. ``"huber_loss"`` or a Keras alias such as ``"mse"``.

    Returns:
      The loss function.

    Raises:
      ValueError: no loss has that name (the message lists close matches).

    Example:
      >>> import jaxloss
      >>> jaxloss.get("mse") is jaxloss.squared_error
      True

    References:
      Chollet et al., "Keras", 2015, ``keras.losses.get``,
      https://keras.io/api/losses/
    """
    if isinstance(name, str):
        if name in _LOSSES:
            return _LOSSES[name]
        if name in _ALIASES:
            return _LOSSES[_ALIASES[name]]
    close = difflib.get_close_matches(str(name), list(_LOSSES) + list(_ALIASES), n=3)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    _checks._fail(ValueError, _checks.message(
        "get", "name", "must be a registered loss name or alias; see jaxloss.available()", repr(name) + hint))
    raise AssertionError  # unreachable


def available(*, tag: str | None = None, aliases: bool = False) -> list[str]:
    """Lists registered loss names, sorted.

    Args:
      tag: only names carrying this tag (e.g. ``"integer_labels"``,
        ``"regression"``, ``"binary"``).
      aliases: also list aliases (such as ``"mse"``).

    Returns:
      A sorted list of names.

    Raises:
      Nothing: an unknown tag gives an empty list.

    Example:
      >>> import jaxloss
      >>> "huber_loss" in jaxloss.available()
      True
      >>> "mse" in jaxloss.available(aliases=True)
      True

    References:
      Chollet et al., "Keras", 2015, https://keras.io/api/losses/
    """
    names = [n for n in _LOSSES if tag is None or tag in _TAGS[n]]
    if aliases:
        names += [a for a, n in _ALIASES.items() if tag is None or tag in _TAGS[n]]
    return sorted(names)


def canonical(name: str) -> str:
    """The canonical name behind ``name`` (an alias or itself)."""
    return _ALIASES.get(name, name)


def is_builtin(name: str) -> bool:
    return name in _BUILTIN
