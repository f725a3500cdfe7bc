"""The string registry: ``get``, ``register``, ``available``."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import numpy as np

from jaxloss import _checks

F = TypeVar("F", bound=Callable[..., Any])

_LOSSES: dict[str, Callable[..., Any]] = {}
_ALIASES: dict[str, str] = {}
_TAGS: dict[str, frozenset[str]] = {}
_BUILTIN: set[str] = set()

# Label domains `jaxloss.checked` enforces for float labels, by loss name.
LABEL_DOMAINS: dict[str, str] = {}


# ----------------------------------------------------------- argument roles
@dataclasses.dataclass(frozen=True)
class Argument:
    """What one data argument of a loss is.

    The one source of truth that ``jaxloss.checked``, ``jaxloss.testing.check_loss``,
    the test specs and the docs read.

    role:
      ``"logits"`` (unbounded scores: edge case magnitude 1e4),
      ``"probabilities"`` (in [0, 1]), ``"log_probabilities"`` (<= 0),
      ``"class_indices"`` (integers in ``[0, C)``; out of range gives NaN),
      ``"ids"`` (integers compared for equality only, any value),
      ``"flags"`` (booleans per example), ``"paddings"`` (1.0 marks a padded
      position of the argument named in ``PADDED``), ``"parameters"`` (learned arrays
      shared by the batch, such as class centres or proxies: ``where`` does
      not mask them), ``"data"`` (anything else, per example).
    classes: for ``"class_indices"``, where ``C`` is read: ``(argument, axis)``
      with ``axis`` an int or the name of the keyword holding it, and an
      optional keyword whose value divides the size (sub-centres per class).
    stop_gradient: the loss stops the gradient at this argument by design
      (BYOL/SimSiam targets, the DINO teacher): its gradient is exactly 0.
    """

    role: str
    classes: tuple[Any, ...] | None = None
    stop_gradient: bool = False

    @property
    def masked(self) -> bool:
        """Whether ``where`` masks this argument (everything but shared parameters)."""
        return self.role != "parameters"


# Keras loss names whose Keras call differs from the jaxloss function of the same
# meaning (argument order (y_true, y_pred), probabilities instead of logits, a
# different formula): ``jaxloss.get`` refuses them rather than return a silently
# different number, and names both ways to get what the user meant.
KERAS_ONLY: dict[str, str] = {
    "binary_crossentropy": "binary_cross_entropy(probabilities, labels) or sigmoid_binary_cross_entropy(logits, labels)",
    "binary_focal_crossentropy": "sigmoid_focal_loss(logits, labels)",
    "categorical_crossentropy": "softmax_cross_entropy(logits, labels)",
    "sparse_categorical_crossentropy": "softmax_cross_entropy_with_integer_labels(logits, labels)",
    "categorical_focal_crossentropy": "softmax_focal_loss(logits, labels)",
    "hinge": "hinge_loss(scores, labels)",
    "squared_hinge": "squared_hinge_loss(scores, labels)",
    "categorical_hinge": "multiclass_hinge_loss(scores, labels)",
    "kld": "kl_divergence(log_predictions, targets)",
    "kullback_leibler_divergence": "kl_divergence(log_predictions, targets)",
    "mape": "absolute_percentage_error(predictions, targets)",
    "mean_absolute_percentage_error": "absolute_percentage_error(predictions, targets)",
    "poisson": "poisson_loss(predictions, targets)",
    "cosine_similarity": "cosine_distance(predictions, targets)",
    "ctc": "ctc_loss(logits, logit_paddings, labels, label_paddings)",
    "dice": "dice_loss(predictions, targets)",
    "tversky": "tversky_loss(predictions, targets)",
}

_ROLE_BY_NAME = {
    "logits": "logits", "scores": "logits", "positive_scores": "logits", "negative_scores": "logits",
    "student_logits": "logits", "teacher_logits": "logits", "router_logits": "logits",
    "probabilities": "probabilities",
    "log_probabilities": "log_probabilities", "log_predictions": "log_probabilities",
    "log_targets": "log_probabilities",
    **{name: "log_probabilities" for name in (
        "policy_chosen_logps", "policy_rejected_logps", "reference_chosen_logps", "reference_rejected_logps",
        "chosen_logps", "rejected_logps", "policy_logps", "reference_logps")},
    "class_centers": "parameters", "proxies": "parameters", "centers": "parameters", "center": "parameters",
    "weight": "parameters", "student_weight": "parameters", "teacher_weight": "parameters",
    "desirable": "flags",
    "logit_paddings": "paddings", "label_paddings": "paddings",
}
# Which argument a ``"paddings"`` argument pads (1.0 marks a padded position).
PADDED = {"logit_paddings": "logits", "label_paddings": "labels"}
# Per-loss exceptions to the rules above (integer labels read as class indices
# against the first argument's class axis).
_OVERRIDES: dict[str, dict[str, Argument]] = {
    "arcface_loss": {"labels": Argument("class_indices", ("class_centers", 0))},
    "cosface_loss": {"labels": Argument("class_indices", ("class_centers", 0))},
    "sub_center_arcface_loss": {"labels": Argument("class_indices", ("class_centers", 0, "sub_centers"))},
    "soft_triple_loss": {"labels": Argument("class_indices", ("centers", 0, "centers_per_class"))},
    "proxy_anchor_loss": {"labels": Argument("class_indices", ("proxies", 0))},
    "proxy_nca_loss": {"labels": Argument("class_indices", ("proxies", 0))},
    "linear_softmax_cross_entropy": {"labels": Argument("class_indices", ("weight", 1))},
    "ctc_loss": {"labels": Argument("class_indices", ("logits", -1))},
    # Targets behind a stop_gradient, where the papers put it.
    "byol_loss": {"target_projections": Argument("data", stop_gradient=True)},
    "simsiam_loss": {"z1": Argument("data", stop_gradient=True), "z2": Argument("data", stop_gradient=True)},
    "dino_loss": {"teacher_logits": Argument("logits", stop_gradient=True),
                  "center": Argument("parameters", stop_gradient=True)},
    # Target lists ended by -1 (torch's layout): checked by the loss itself.
    "multilabel_margin_loss": {"labels": Argument("ids")},
    # Metric-learning labels only say which examples share a class.
    **{name: {"labels": Argument("ids")} for name in (
        "ntxent_loss", "supervised_contrastive_loss", "circle_loss", "batch_hard_triplet_loss",
        "multi_similarity_loss", "lifted_structure_loss")},
    # Token ids are compared, never indexed.
    **{name: {"hypotheses": Argument("ids"), "references": Argument("ids")} for name in (
        "bleu", "corpus_bleu", "rouge_n", "rouge_l", "meteor")},
}


def arguments(fn_or_name: Any, dtypes: dict[str, Any] | None = None) -> dict[str, Argument]:
    """The role of every positional data argument of a loss, by parameter name.

    Args:
      fn_or_name: a registered name or a loss function (user functions get
        the rules by parameter name).
      dtypes: optional ``{argument: dtype}``; an integer ``labels``/``targets``
        is then read as class indices, a float one as data.

    Returns:
      ``{argument name: Argument}`` in signature order.
    """
    fn = get(fn_or_name) if isinstance(fn_or_name, str) else fn_or_name
    name = canonical(fn_or_name) if isinstance(fn_or_name, str) else getattr(fn, "__name__", "")
    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    overrides = _OVERRIDES.get(name, {})
    out: dict[str, Argument] = {}
    for i, p in enumerate(params):
        if p in overrides:
            out[p] = overrides[p]
            continue
        role = _ROLE_BY_NAME.get(p)
        if role is None and p.endswith("_logits"):
            role = "logits"
        if p == "labels" and name in LABEL_DOMAINS:
            out[p] = Argument("data")  # binary or sign labels, checked against their domain
            continue
        if role is None and p in ("labels", "targets") and dtypes is not None and p in dtypes:
            if np.issubdtype(np.dtype(dtypes[p]), np.integer) and i > 0:
                out[p] = Argument("class_indices", (params[0], ("axis", "channel_axis")))
                continue
        out[p] = Argument(role or "data")
    return out


def num_classes(argument: Argument, values: dict[str, Any], keywords: dict[str, Any]) -> int | None:
    """``C`` for a ``"class_indices"`` argument, from the arrays and keywords of one call."""
    if argument.role != "class_indices" or argument.classes is None:
        return None
    source, axis, *divisor = argument.classes
    if source not in values or not hasattr(values[source], "shape"):
        return None
    if isinstance(axis, tuple):  # names of the keyword holding the class axis
        axis = next((keywords[k] for k in axis if keywords.get(k) is not None), -1)
    shape = values[source].shape
    if not shape or not -len(shape) <= axis < len(shape):
        return None
    size = int(shape[axis])
    if divisor and keywords.get(divisor[0]):
        size //= int(keywords[divisor[0]])
    return size


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
        if caller == "builtin" and alias in KERAS_ONLY:
            continue  # a Keras name with other semantics: get() explains instead
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
        # Every built-in carries its family (module) as a tag: available(tag="classification").
        family = fn.__module__.rsplit(".", 1)[-1]
        _add(fn.__name__, fn, tuple(aliases), (family, *tags), overwrite=False, caller="builtin")
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

    The function returned keeps jaxloss's semantics: predictions first, then
    targets, and jaxloss's reductions. A Keras name resolves here only where
    the Keras call ``loss(y_true, y_pred)`` gives the same number (``"mse"``,
    ``"mae"``, ``"huber"``, ``"logcosh"``, ``"msle"``: symmetric in their two
    arguments). Keras names whose call differs (``"binary_crossentropy"``
    takes ``(y_true, y_pred)`` probabilities, ``"kld"`` probabilities, ...)
    raise an error naming the jaxloss function to use instead and the Keras
    adapter ``jaxloss.keras.get(name)``, which keeps Keras's semantics. A
    canonical jaxloss name always means the jaxloss function, even where Keras
    has a function of the same name (``"kl_divergence"``: optax's argument
    order, log-predictions first; Keras's is ``jaxloss.keras.get("kl_divergence")``).

    Args:
      name: e.g. ``"huber_loss"`` or an alias such as ``"mse"``.

    Returns:
      The loss function.

    Raises:
      ValueError: no loss has that name (the message lists close matches), or
        a Keras name whose Keras semantics differ from jaxloss's.

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
        if name in KERAS_ONLY:
            _checks._fail(ValueError, _checks.message(
                "get", "name", "must not be a Keras loss name whose Keras call gives a different number "
                f"than jaxloss; for jaxloss semantics use jaxloss.{KERAS_ONLY[name]}, for Keras semantics "
                f"(y_true, y_pred) use jaxloss.keras.get({name!r})", repr(name)))
    close = difflib.get_close_matches(str(name), list(_LOSSES) + list(_ALIASES), n=3)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    _checks._fail(ValueError, _checks.message(
        "get", "name", "must be a registered loss name or alias; see jaxloss.available()", repr(name) + hint))
    raise AssertionError  # unreachable


def available(*, tag: str | None = None, aliases: bool = True) -> list[str]:
    """Lists every name :func:`get` accepts, sorted.

    Args:
      tag: only names carrying this tag: a family (``"classification"``,
        ``"regression"``, ``"segmentation"``, ...: every built-in carries its
        module's name) or a finer tag (``"integer_labels"``, ``"binary"``).
      aliases: include aliases (such as ``"mse"``); ``False`` lists canonical
        names only.

    Returns:
      A sorted list of names.

    Raises:
      Nothing: an unknown tag gives an empty list.

    Example:
      >>> import jaxloss
      >>> "huber_loss" in jaxloss.available()
      True
      >>> "mse" in jaxloss.available(), "mse" in jaxloss.available(aliases=False)
      (True, False)
      >>> "softmax_cross_entropy" in jaxloss.available(tag="classification")
      True

    References:
      Chollet et al., "Keras", 2015, https://keras.io/api/losses/
    """
    names = [n for n in _LOSSES if tag is None or tag in _TAGS[n]]
    if aliases:
        names += [a for a, n in _ALIASES.items() if tag is None or tag in _TAGS[n]]
    return sorted(names)


def tags_of(name: str) -> frozenset[str]:
    """The tags of a registered loss (empty for an unknown name)."""
    return _TAGS.get(canonical(name), frozenset())


def canonical(name: str) -> str:
    """The canonical name behind ``name`` (an alias or itself)."""
    return _ALIASES.get(name, name)


def is_builtin(name: str) -> bool:
    return name in _BUILTIN
