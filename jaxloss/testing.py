"""``check_loss``: verifies that any loss, built-in or user-written, keeps the contract.

Each check has a short name; ``check_loss`` runs them all (or those in
``only``) and reports every failure in plain words:

========== ==================================================================
call       the loss runs on the example and gives finite float values
reduction  ``"sum"``/``"mean"``/weights agree with ``"none"``; unknown
           reductions raise ``ValueError``
jit        ``jax.jit`` gives the same numbers as eager execution
trace      float hyper-parameters can be traced arrays; one trace per shape
vmap       ``jax.vmap`` over a new leading axis equals calling per slice
grad       gradients match finite differences in float64 (inputs behind a
           ``stop_gradient`` by design get exactly zero gradients)
edge       value and gradient stay finite at the contract's edge cases
           (zeros, identical inputs, logits of 1e4, probabilities 0 and 1,
           bfloat16 logits of 60, log-probabilities of -1e4 and exactly 0)
where      masking the last example equals slicing it off, even when its
           inputs are NaN, and its gradient is exactly 0
all_masked an all-``False`` mask gives 0 with finite, zero gradients
dtype      bfloat16/float16 inputs give float32 results and input-dtype
           gradients
shapes     mismatched shapes and wrong dtypes raise ``ValueError``/``TypeError``
           instead of broadcasting silently
nan        a NaN in any unmasked float input gives a NaN loss (a diverged
           model shows in the logs), never a healthy-looking number
empty      a batch of size 0 gives 0.0 with zero, finite gradients
labels     an integer class index outside ``[0, C)`` (-1, C, 255 as uint8,
           2**32 - 1 as uint32) gives NaN, never a wrapped or clamped value
========== ==================================================================

Which argument is logits, probabilities, class indices or shared parameters
is read from the registry (:func:`jaxloss._registry.arguments`), the one
place that knows it.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _registry

CHECKS = ("call", "reduction", "jit", "trace", "vmap", "grad", "edge", "where",
          "all_masked", "dtype", "shapes", "nan", "empty", "labels")


@dataclasses.dataclass
class CheckReport:
    """What ``check_loss`` found: checks passed, failed (with reasons), skipped."""

    name: str
    passed: list[str] = dataclasses.field(default_factory=list)
    failures: dict[str, str] = dataclasses.field(default_factory=dict)
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        lines = [f"check_loss({self.name}): {len(self.passed)} passed, {len(self.failures)} failed, "
                 f"{len(self.skipped)} skipped"]
        lines += [f"  FAILED {k}: {v}" for k, v in self.failures.items()]
        lines += [f"  skipped {k}: {v}" for k, v in self.skipped.items()]
        return "\n".join(lines)


class _CheckFailed(Exception):
    pass


# Compiled programs shared by every check of one loss (and every check_loss call
# on the same loss and hyper-parameters in a process): only the "jit" check runs
# op by op, everything else runs one compiled program per input shape. This is
# what keeps the invariants suite over every registered loss fast.
_COMPILED: dict[Any, Any] = {}


# What the compiled programs of ``_Context.outputs`` return, by check: values and
# gradients on the example (call, reduction, jit, trace, vmap, edge, nan) and
# with a ``where`` mask (where, all_masked).
_BASE = ("none", "sum", "mean", "none_w", "mean_w", "grad_mean")
_MASKED = ("sum_where", "mean_where", "grad_sum_where", "grad_mean_where")


def _output(name: str, weights: Any, where: Any) -> tuple[bool, str, dict[str, Any]]:
    """``"grad_mean_where"`` -> (gradient?, reduction, the keyword inputs)."""
    grad = name.startswith("grad_")
    reduction, _, suffix = name.removeprefix("grad_").partition("_")
    extra = {"w": {"weights": weights}, "where": {"where": where}, "": {}}[suffix]
    return grad, reduction, extra


class _OneByOne(Mapping[str, Any]):
    """Outputs computed one at a time when read (after a combined program failed)."""

    def __init__(self, compute: Callable[[str], Any]) -> None:
        self._compute = compute
        self._done: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._done:
            self._done[name] = self._compute(name)
        return self._done[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._done)

    def __len__(self) -> int:
        return len(self._done)


def _freeze(value: Any) -> Any:
    """A hashable stand-in for hyper-parameters (arrays by dtype, shape and bytes)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, (np.ndarray, jax.Array)):
        a = np.asarray(value)
        return ("array", a.dtype.str, a.shape, a.tobytes())
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return value


def _compiled(key: Any, make: Callable[[], Any]) -> Any:
    if key not in _COMPILED:
        _COMPILED[key] = make()
    return _COMPILED[key]


def _float_positions(args: tuple[Any, ...]) -> list[int]:
    return [i for i, a in enumerate(args) if np.issubdtype(np.asarray(a).dtype, np.floating)]


def _array_positions(args: tuple[Any, ...]) -> list[int]:
    return [i for i, a in enumerate(args) if np.ndim(a) > 0]


def _param_names(fn: Callable[..., Any], n: int) -> list[str]:
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        names = [p.name for p in params]
    except (TypeError, ValueError):
        names = []
    return (names + [f"arg{i}" for i in range(len(names), n)])[:n]


def _max_diff(a: Any, b: Any) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    both_nan = np.isnan(a) & np.isnan(b)
    d = np.where(both_nan, 0.0, np.abs(a - b))
    return float(np.max(d)) if d.size else 0.0


def _close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))


def _all_finite(tree: Any) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x, np.float64)))) for x in jax.tree_util.tree_leaves(tree))


def check_loss(
    fn: Callable[..., Any],
    *example_args: Any,
    only: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    rtol: float = 1e-5,
    atol: float = 1e-6,
    grad_tolerance: float = 1e-4,
    raise_on_failure: bool = True,
    **kwargs: Any,
) -> CheckReport:
    """Checks a loss for the jaxloss contract and reports failures in plain words.

    The loss must take its data arrays positionally, keyword-only
    hyper-parameters, and ``reduction``/``weights``/``where`` keywords (as
    every jaxloss loss and every :func:`jaxloss.make_loss` loss does). The
    example arrays should be small (a batch of 3 to 8), float64 or float32
    for float inputs, with the batch on axis 0. Inputs are recognised by
    parameter name for the edge cases: ``logits``/``scores`` are pushed to
    magnitude 1e4, ``probabilities`` to exactly 0 and 1.

    Args:
      fn: the loss function.
      *example_args: example data arrays (NumPy or JAX), passed positionally.
      only: run only these checks (names in :data:`CHECKS`).
      skip: skip these checks.
      rtol, atol: tolerances for the equality checks (float32).
      grad_tolerance: tolerance of the float64 finite-difference check.
      raise_on_failure: raise ``AssertionError`` with the report if any check
        fails (default); else just return the report.
      **kwargs: keyword hyper-parameters passed to every call of ``fn``.

    Returns:
      A :class:`CheckReport`.

    Raises:
      AssertionError: some check failed and ``raise_on_failure`` is true.
      ValueError: an unknown check name in ``only`` or ``skip``.

    Example:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxloss
      >>> from jaxloss.testing import check_loss
      >>> @jaxloss.make_loss
      ... def sqrt_error(predictions, targets):
      ...     return jnp.sqrt(jnp.abs(predictions - targets))  # NaN gradient at 0
      >>> x = np.linspace(-1.0, 1.0, 6)
      >>> report = check_loss(sqrt_error, x, x[::-1], only=["edge"], raise_on_failure=False)
      >>> report.ok
      False
      >>> "gradient is not finite at identical inputs" in report.failures["edge"]
      True

    References:
      Bradbury et al., "JAX: composable transformations of Python+NumPy
      programs", 2018 (the finite-difference test follows ``jax.test_util.check_grads``),
      https://github.com/jax-ml/jax
    """
    selected = list(CHECKS if only is None else only)
    skip = list(skip)
    for c in selected + skip:
        if c not in CHECKS:
            raise ValueError(f"jaxloss.testing.check_loss: check names must be in {CHECKS}, got {c!r}")
    name = getattr(fn, "__name__", repr(fn))
    report = CheckReport(name=name)
    args = tuple(example_args)
    ctx = _Context(fn, args, kwargs, rtol, atol, grad_tolerance)
    for check in selected:
        if check in skip:
            report.skipped[check] = "skipped by the caller"
            continue
        try:
            note = getattr(ctx, "check_" + check)()
        except _CheckFailed as e:
            report.failures[check] = str(e)
        except Exception as e:  # pylint: disable=broad-except
            report.failures[check] = f"raised {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        else:
            if note:
                report.skipped[check] = note
            else:
                report.passed.append(check)
    if raise_on_failure and report.failures:
        raise AssertionError(str(report))
    return report


class _Context:
    """Holds the example and runs each check."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], rtol: float,
                 atol: float, grad_tolerance: float) -> None:
        self.fn = fn
        self.args = tuple(np.asarray(a) if not isinstance(a, jax.Array) else np.asarray(a) for a in args)
        self.kwargs = kwargs
        self.rtol, self.atol, self.grad_tolerance = rtol, atol, grad_tolerance
        self.names = _param_names(fn, len(args))
        self.roles = _registry.arguments(fn, {n: np.asarray(a).dtype for n, a in zip(self.names, self.args)})
        self.float_pos = _float_positions(self.args)
        self.f32_args = tuple(a.astype(np.float32) if i in self.float_pos else a
                              for i, a in enumerate(self.args))
        self._unreduced_shape: Any = None

    # ---------------------------------------------------------------- helpers
    def eager(self, args: tuple[Any, ...], **extra: Any) -> Any:
        """Eager call (op by op)."""
        return self.fn(*args, **{**self.kwargs, **extra})

    def call(self, args: tuple[Any, ...], **extra: Any) -> Any:
        """Compiled call: one program per loss, hyper-parameters, options and input shapes."""
        arrays = {k: v for k, v in extra.items() if v is not None and not isinstance(v, (str, bool, int, float))}
        static = {k: v for k, v in extra.items() if k not in arrays}
        key = ("call", self.fn, _freeze(self.kwargs), _freeze(static), tuple(sorted(arrays)))
        compiled = _compiled(key, lambda: jax.jit(lambda a, kw: self.fn(*a, **self.kwargs, **static, **kw)))
        return compiled(tuple(args), arrays)

    def value_and_grads(self, args: tuple[Any, ...], **options: Any) -> Any:
        """The loss (with ``options``) and its gradients w.r.t. every float positional input (traced or eager)."""
        pos = list(self.float_pos)

        def f(*float_args: Any) -> Any:
            full = list(args)
            for i, a in zip(pos, float_args):
                full[i] = a
            return self.fn(*full, **self.kwargs, **options)

        return jax.value_and_grad(f, argnums=tuple(range(len(pos))))(*[args[i] for i in pos])

    def grads(self, args: tuple[Any, ...], reduction: str = "mean", **extra: Any) -> Any:
        """Gradient of the reduced loss w.r.t. every float positional input (traced or eager)."""
        return self.value_and_grads(args, reduction=reduction, **extra)[1]

    def _program(self, outputs: tuple[str, ...]) -> Callable[..., dict[str, Any]]:
        def run(args: tuple[Any, ...], weights: Any, where: Any) -> dict[str, Any]:
            result = {}
            for name in outputs:
                grad, reduction, extra = _output(name, weights, where)
                result[name] = (self.grads(args, reduction, **extra) if grad
                                else self.fn(*args, **self.kwargs, reduction=reduction, **extra))
            return result

        return run

    def outputs(self, args: tuple[Any, ...], outputs: tuple[str, ...], weights: Any = None,
                where: Any = None) -> Mapping[str, Any]:
        """Several values and gradients of the loss from one compiled program.

        ``outputs`` names what to compute: a reduction (``"none"``, ``"sum"``,
        ``"mean"``), optionally with ``"_w"`` (``weights``) or ``"_where"``
        (``where``), optionally prefixed by ``"grad_"`` (the gradients w.r.t.
        every float input). Compiling one program for all the outputs a group
        of checks reads, instead of one per output, is most of what keeps the
        invariants suite fast (XLA's cost per compiled program is mostly fixed
        at these sizes). If the program fails (say, the loss cannot be
        differentiated), each output is computed on its own when read, so the
        error belongs to the check that reads it.
        """
        key = ("outputs", self.fn, _freeze(self.kwargs), outputs, tuple(self.float_pos))
        compiled = _compiled(key, lambda: jax.jit(self._program(outputs)))
        try:
            return compiled(tuple(args), weights, where)  # type: ignore[no-any-return]
        except Exception:  # pylint: disable=broad-except
            if len(outputs) == 1:
                raise
            return _OneByOne(lambda name: self.outputs(args, (name,), weights, where)[name])

    def base(self, args: tuple[Any, ...]) -> Mapping[str, Any]:
        """The outputs most checks read, for inputs shaped like the example (unit weights)."""
        weights = np.ones(self.unreduced_shape(), np.float32)
        return self.outputs(args, _BASE, weights=weights)

    def unreduced_shape(self) -> Any:
        if self._unreduced_shape is None:
            self._unreduced_shape = jax.eval_shape(lambda *a: self.call(a, reduction="none"), *self.f32_args).shape
        return self._unreduced_shape

    def example_shape(self) -> Any:
        """The shape ``where`` masks: the unreduced shape, or ``[B]`` for batch-global losses.

        A batch-global loss (tag ``"batch_global"`` in the registry: Barlow
        Twins, VICReg, load balancing) returns one value per batch; its
        ``where`` removes examples (axis 0 of its inputs) from the statistics.
        """
        shape = self.unreduced_shape()
        if len(shape) == 0 and "batch_global" in _registry.tags_of(getattr(self.fn, "__name__", "")):
            return tuple(np.shape(self.f32_args[0])[:1])
        return shape

    def fail(self, msg: str) -> None:
        raise _CheckFailed(msg)

    def _batch_positions(self, n: int) -> list[int]:
        """Inputs whose axis 0 is the batch of ``n`` examples (shared parameters never are)."""
        return [i for i in _array_positions(self.f32_args) if np.shape(self.f32_args[i])[0] == n
                and self.roles.get(self.names[i], _registry.Argument("data")).masked]

    def _stopped(self, i: int) -> bool:
        arg = self.roles.get(self.names[i])
        return arg is not None and arg.stop_gradient

    def _role(self, i: int) -> str:
        arg = self.roles.get(self.names[i])
        return arg.role if arg is not None else "data"

    # ----------------------------------------------------------------- checks
    def check_call(self) -> Any:
        base = self.base(self.f32_args)
        out = base["mean"]
        if jnp.ndim(out) != 0:
            self.fail(f"reduction='mean' returned shape {jnp.shape(out)}, expected a scalar")
        if jnp.result_type(out) != jnp.float32:
            self.fail(f"float32 inputs gave a {jnp.result_type(out)} result, expected float32")
        if not _all_finite(base["none"]):
            self.fail("unreduced values are not finite on the example inputs")

    def check_reduction(self) -> Any:
        base = self.base(self.f32_args)
        none = np.asarray(base["none"], np.float64)
        total, mean = base["sum"], base["mean"]
        if not _close(total, none.sum(), self.rtol * 10, self.atol * max(1, none.size)):
            self.fail(f"reduction='sum' gave {float(total)}, but the sum of reduction='none' is {none.sum()}")
        if not _close(mean, none.mean() if none.size else 0.0, self.rtol * 10, self.atol):
            self.fail(f"reduction='mean' gave {float(mean)}, but the mean of reduction='none' is {none.mean()}")
        rng = np.random.default_rng(0)
        w = rng.uniform(0.5, 2.0, none.shape).astype(np.float32)
        weighted = self.outputs(self.f32_args, _BASE, weights=w)
        none_w = np.asarray(weighted["none_w"], np.float64)
        if not _close(none_w, w * none, self.rtol * 10, self.atol):
            self.fail(f"reduction='none' with weights is not weights * values (max diff {_max_diff(none_w, w * none):.3g})")
        mean_w = weighted["mean_w"]
        expect = (w * none).sum() / w.sum()
        if not _close(mean_w, expect, self.rtol * 10, self.atol):
            self.fail(f"weighted reduction='mean' gave {float(mean_w)}, expected sum(w*l)/sum(w) = {expect}")
        try:
            self.call(self.f32_args, reduction="average")
        except ValueError:
            pass
        else:
            self.fail("reduction='average' did not raise ValueError")

    def check_jit(self) -> Any:
        base = self.base(self.f32_args)
        # The eager mean comes with the eager gradient (one op-by-op pass instead of two).
        mean_eager, g_eager = self.value_and_grads(self.f32_args, reduction="mean")
        for reduction, eager in (("none", self.eager(self.f32_args, reduction="none")), ("mean", mean_eager)):
            jitted = base[reduction]
            if not _close(eager, jitted, self.rtol, self.atol):
                self.fail(f"jax.jit disagrees with eager execution for reduction={reduction!r} "
                          f"(max abs diff {_max_diff(eager, jitted):.3g})")
        g_jit = base["grad_mean"]
        for a, b in zip(g_eager, g_jit):
            if not _close(a, b, self.rtol * 10, self.atol * 10):
                self.fail(f"gradient under jax.jit disagrees with eager (max abs diff {_max_diff(a, b):.3g})")

    def check_trace(self) -> Any:
        try:
            defaults = {p.name: p.default for p in inspect.signature(self.fn).parameters.values()
                        if p.kind == p.KEYWORD_ONLY and isinstance(p.default, float)}
        except (TypeError, ValueError):
            defaults = {}
        float_kw = {k: v for k, v in {**defaults, **self.kwargs}.items() if isinstance(v, float)}
        traces = []

        def traced(args: tuple[Any, ...], hp: dict[str, Any]) -> Any:
            traces.append(1)
            return self.fn(*args, **{**self.kwargs, **hp})

        jitted = jax.jit(traced)
        first = jitted(self.f32_args, float_kw)
        other = tuple(np.roll(a, 1, axis=0) if np.ndim(a) else a for a in self.f32_args)
        jitted(other, {k: v * 1.1 for k, v in float_kw.items()})
        if len(traces) != 1:
            self.fail(f"the loss was traced {len(traces)} times for two calls with the same shapes")
        eager = self.base(self.f32_args)["mean"]
        if not _close(first, eager, self.rtol, self.atol):
            self.fail("traced float hyper-parameters give a different value than Python floats "
                      f"({float(first)} vs {float(eager)})")
        return None

    def check_vmap(self) -> Any:
        other = tuple(np.roll(a, 1, axis=0) if np.ndim(a) else a for a in self.f32_args)
        stacked = tuple(np.stack([a, b]) for a, b in zip(self.f32_args, other))
        program = self._program(("none", "mean"))
        key = ("vmap", self.fn, _freeze(self.kwargs))
        vmapped = _compiled(key, lambda: jax.jit(jax.vmap(lambda a: program(a, None, None))))(stacked)
        first, second = self.base(self.f32_args), self.base(other)
        for reduction in ("none", "mean"):
            mapped = vmapped[reduction]
            each = np.stack([np.asarray(first[reduction]), np.asarray(second[reduction])])
            if not _close(mapped, each, self.rtol * 10, self.atol * 10):
                self.fail(f"jax.vmap disagrees with per-slice calls for reduction={reduction!r} "
                          f"(max abs diff {_max_diff(mapped, each):.3g})")

    def check_grad(self) -> Any:
        stopped = [i for i in self.float_pos if self._stopped(i)]
        pos = [i for i in self.float_pos if i not in stopped]
        with jax.enable_x64(True):
            # NumPy inputs: the finite-difference points below are computed without compiling.
            args64 = tuple(np.asarray(a, np.float64) if i in self.float_pos else np.asarray(a)
                           for i, a in enumerate(self.args))
            fp = list(self.float_pos)
            # One compiled program gives the value, the gradients and the values at the
            # finite-difference points (``jax.test_util.check_grads``'s rev-mode test, order 1:
            # the directional derivative along random tangents against central differences).
            program = _compiled(("grad64", self.fn, _freeze(self.kwargs), tuple(fp)),
                                lambda: jax.jit(self.value_and_grads))
            out, grads = program(args64)
            if jnp.result_type(out) != jnp.float64:
                self.fail(f"float64 inputs under jax_enable_x64 gave a {jnp.result_type(out)} result")
            if not pos:
                return "no float inputs to differentiate"
            rng = np.random.default_rng(0)
            eps, tol = 1e-6, self.grad_tolerance
            for _ in range(2):
                tangents = {i: rng.standard_normal(np.shape(args64[i])) if i in pos else np.zeros(np.shape(args64[i]))
                            for i in fp}
                plus = tuple(a + eps * tangents[i] if i in tangents else a for i, a in enumerate(args64))
                minus = tuple(a - eps * tangents[i] if i in tangents else a for i, a in enumerate(args64))
                numerical = (float(program(plus)[0]) - float(program(minus)[0])) / (2 * eps)
                analytic = sum(float(np.sum(np.asarray(g) * tangents[i])) for i, g in zip(fp, grads))
                if not abs(analytic - numerical) <= tol + tol * abs(numerical):
                    self.fail("gradients do not match finite differences in float64: the derivative along a "
                              f"random direction is {analytic!r} from the gradients and {numerical!r} from "
                              f"central differences (eps {eps:g}, tolerance {tol:g})")
            for i, g in zip(fp, grads):
                if i in stopped and np.any(np.asarray(g) != 0):
                    self.fail(f"{self.names[i]} is behind a stop_gradient (registry) but its gradient is "
                              f"not 0 (max {float(np.max(np.abs(g))):.3g})")
        return None

    def _edge_cases(self) -> Any:
        cases: list[tuple[str, tuple[Any, ...]]] = []
        fp = self.float_pos
        zeros = tuple(np.zeros_like(a) if i in fp else a for i, a in enumerate(self.f32_args))
        cases.append(("all float inputs zero (zero vectors)", zeros))
        same = [i for i in fp if np.shape(self.f32_args[i]) == np.shape(self.f32_args[fp[0]])] if fp else []
        if len(same) >= 2:
            first = self.f32_args[same[0]]
            ident = tuple(first if i in same else a for i, a in enumerate(self.f32_args))
            cases.append(("identical inputs (zero residual, zero distance)", ident))
        large = [i for i in fp if self._role(i) == "logits"]
        if large:
            big = tuple(np.where(a >= 0, 1e4, -1e4).astype(np.float32) if i in large else a
                        for i, a in enumerate(self.f32_args))
            cases.append(("logits of magnitude 1e4 (float32)", big))
            b16 = tuple((np.asarray(b) * 60.0 / 1e4).astype(jnp.bfloat16) if i in large else
                        (np.asarray(a).astype(jnp.bfloat16) if i in fp else a) for i, (a, b) in enumerate(zip(self.f32_args, big)))
            cases.append(("logits of magnitude 60 (bfloat16)", b16))
        logps = [i for i in fp if self._role(i) == "log_probabilities"]
        if logps:
            for label, value in (("log-probabilities of -1e4", -1e4), ("log-probabilities exactly 0", 0.0)):
                cases.append((label, tuple(np.full_like(a, value) if i in logps else a
                                           for i, a in enumerate(self.f32_args))))
        probs = [i for i in fp if self._role(i) == "probabilities"]
        if probs:
            exact = tuple((np.arange(a.size).reshape(a.shape) % 2).astype(np.float32) if i in probs else a
                          for i, a in enumerate(self.f32_args))
            cases.append(("probabilities exactly 0 and 1", exact))
        return cases

    def check_edge(self) -> Any:
        problems = []
        for label, case in self._edge_cases():
            out = self.base(case)
            value, none, grads = out["mean"], out["none"], out["grad_mean"]
            if not _all_finite(value) or not _all_finite(none):
                problems.append(f"value is not finite at {label}")
            if not _all_finite(grads):
                problems.append(f"gradient is not finite at {label} (NaN or inf in d loss / d input)")
        if problems:
            self.fail("; ".join(problems))

    def _mask_and_slice(self) -> Any:
        """Masks the last example; slices it off every array whose axis 0 is the batch."""
        shape = self.example_shape()
        if len(shape) == 0 or shape[0] < 2:
            return None
        batched = self._batch_positions(shape[0])
        if not batched:
            return None
        where = np.ones(shape, bool)
        where[-1] = False
        sliced = tuple(a[:-1] if i in batched else a for i, a in enumerate(self.f32_args))
        poisoned = tuple(np.concatenate([a[:-1], np.full_like(a[-1:], np.nan)]) if i in self.float_pos and i in batched
                         else a for i, a in enumerate(self.f32_args))
        return where, sliced, poisoned

    def check_where(self) -> Any:
        setup = self._mask_and_slice()
        if setup is None:
            return "the unreduced loss has no batch axis 0 shared with an input; where-vs-slicing not applicable"
        where, sliced, poisoned = setup
        masked_out = self.outputs(self.f32_args, _MASKED, where=where)
        sliced_out = self.outputs(sliced, ("sum", "mean"))
        poisoned_out = self.outputs(poisoned, _MASKED, where=where)
        for reduction in ("sum", "mean"):
            masked = masked_out[reduction + "_where"]
            expect = sliced_out[reduction]
            if not _close(masked, expect, self.rtol * 10, self.atol * 10):
                self.fail(f"where masking the last example gives {float(masked)} with reduction={reduction!r}, "
                          f"but slicing it off gives {float(expect)}")
            nan_masked = poisoned_out[reduction + "_where"]
            if not _close(nan_masked, expect, self.rtol * 10, self.atol * 10):
                self.fail(f"NaN inputs at a masked position leak into the value ({float(nan_masked)} "
                          f"instead of {float(expect)}, reduction={reduction!r})")
        grads = poisoned_out["grad_mean_where"]
        if not _all_finite(grads):
            self.fail("NaN inputs at a masked position leak NaN into the gradients (missing double-where)")
        for i, g in zip(self.float_pos, grads):
            if np.ndim(g) and np.shape(g)[0] == where.shape[0] and np.any(np.asarray(g)[-1] != 0):
                self.fail(f"masked position has a non-zero gradient w.r.t. {self.names[i]}")

    def check_all_masked(self) -> Any:
        shape = self.example_shape()
        where = np.zeros(shape, bool)
        out = self.outputs(self.f32_args, _MASKED, where=where)
        for reduction in ("sum", "mean"):
            value = out[reduction + "_where"]
            if not float(value) == 0.0:
                self.fail(f"all-masked input gives {float(value)} for reduction={reduction!r}, expected 0")
            grads = out["grad_" + reduction + "_where"]
            if not _all_finite(grads):
                self.fail(f"all-masked input has non-finite gradients for reduction={reduction!r}")
            if any(np.any(np.asarray(g) != 0) for g in grads):
                self.fail(f"all-masked input has non-zero gradients for reduction={reduction!r}")

    def check_dtype(self) -> Any:
        if not self.float_pos:
            return "no float inputs"
        # Result dtypes are decided when the loss is traced: abstract evaluation
        # (``jax.eval_shape``) answers without compiling; running 16-bit inputs is
        # the edge check's job (logits of magnitude 60 in bfloat16).
        for low in (jnp.bfloat16, jnp.float16):
            args = tuple(jax.ShapeDtypeStruct(np.shape(a), low) if i in self.float_pos else a
                         for i, a in enumerate(self.f32_args))
            for reduction in ("none", "mean"):
                out = jax.eval_shape(lambda *a, r=reduction: self.fn(*a, **self.kwargs, reduction=r), *args)
                if out.dtype != jnp.float32:
                    self.fail(f"{jnp.dtype(low).name} inputs gave a {out.dtype} result "
                              f"for reduction={reduction!r}, expected float32")
            grads = jax.eval_shape(lambda *a: self.grads(a), *args)
            for i, g in zip(self.float_pos, grads):
                if g.dtype != jnp.dtype(low):
                    self.fail(f"gradient w.r.t. {self.names[i]} is {g.dtype}, "
                              f"expected the input's {jnp.dtype(low).name}")

    def check_shapes(self) -> Any:
        arrays = _array_positions(self.f32_args)
        problems, notes = [], []
        if len(arrays) >= 2:
            # Probes that numpy broadcasting accepts (a new leading axis of size 1) and one it
            # may not (a new trailing axis); run with rank promotion allowed, so that a
            # jax_numpy_rank_promotion="raise" setting cannot hide a missing shape check.
            probes: tuple[tuple[str, Callable[[Any], Any]], ...] = (
                ("an extra leading axis", lambda a: a[None]),
                ("an extra trailing axis", lambda a: a[..., None]))
            with jax.numpy_rank_promotion("allow"):
                for i in arrays:
                    for what, make in probes:
                        bad = list(self.f32_args)
                        bad[i] = make(bad[i])
                        try:
                            self.call(tuple(bad))
                        except (ValueError, TypeError) as e:
                            if "jaxloss" not in str(e) and self.names[i] not in str(e):
                                notes.append(f"the error for {self.names[i]} with {what} names neither the "
                                             "function nor the argument")
                        else:
                            problems.append(f"{self.names[i]} with {what} {np.shape(bad[i])} was silently "
                                            "broadcast instead of raising ValueError")
        if self.float_pos:
            i = self.float_pos[0]
            bad = list(self.f32_args)
            bad[i] = np.asarray(bad[i]).astype(np.int32)
            try:
                self.call(tuple(bad))
            except TypeError:
                pass
            else:
                problems.append(f"an integer {self.names[i]} did not raise TypeError")
        if problems or notes:
            self.fail("; ".join(problems + notes))

    def check_nan(self) -> Any:
        if not self.float_pos:
            return "no float inputs"
        problems = []
        for i in self.float_pos:
            if np.size(self.f32_args[i]) == 0:
                continue
            poisoned = list(self.f32_args)
            a = np.array(poisoned[i], copy=True)
            a.reshape(-1)[0] = np.nan
            poisoned[i] = a
            value = self.base(tuple(poisoned))["mean"]
            if not np.isnan(float(value)):
                problems.append(f"a NaN in {self.names[i]} gives the finite loss {float(value)!r} instead of NaN")
        if problems:
            self.fail("; ".join(problems))

    def check_empty(self) -> Any:
        shape = self.example_shape()
        if len(shape) == 0:
            return "the unreduced loss has no batch axis"
        batched = self._batch_positions(shape[0])
        if not batched:
            return "no input shares the batch axis of the unreduced loss"
        empty = tuple(a[:0] if i in batched else a for i, a in enumerate(self.f32_args))
        out = self.outputs(empty, ("none", "sum", "mean", "grad_sum", "grad_mean"))
        for reduction in ("sum", "mean"):
            value = out[reduction]
            if not float(value) == 0.0:
                self.fail(f"an empty batch gives {float(value)!r} for reduction={reduction!r}, expected 0.0")
            grads = out["grad_" + reduction]
            if not _all_finite(grads):
                self.fail(f"an empty batch has non-finite gradients for reduction={reduction!r}")
            if any(np.any(np.asarray(g) != 0) for g in grads):
                self.fail(f"an empty batch has non-zero gradients for reduction={reduction!r}")
        none = out["none"]
        if np.ndim(none) and np.shape(none)[:1] != (0,):
            self.fail(f"an empty batch gives unreduced values of shape {np.shape(none)}, expected a leading 0")

    def check_labels(self) -> Any:
        values = dict(zip(self.names, self.f32_args))
        targets = [(i, self.roles[n]) for i, n in enumerate(self.names)
                   if n in self.roles and self.roles[n].role == "class_indices"
                   and np.issubdtype(np.asarray(self.args[i]).dtype, np.integer)]
        if not targets:
            return "no integer class-index input"
        problems = []
        for i, arg in targets:
            num_classes = _registry.num_classes(arg, values, self.kwargs)
            if num_classes is None:
                problems.append(f"the registry cannot tell the number of classes of {self.names[i]}")
                continue
            probes: list[tuple[int, Any]] = [(-1, np.int32), (num_classes, np.int32)]
            if num_classes <= 255:
                probes.append((255, np.uint8))
            probes.append((2**32 - 1, np.uint32))
            for bad, dtype in probes:
                if bad == self.kwargs.get("ignore_index"):
                    continue
                labels = np.array(self.args[i], copy=True).astype(dtype)
                labels.reshape(-1)[0] = bad
                args = list(self.f32_args)
                args[i] = labels
                try:
                    # Labels of the example's dtype reuse its compiled program.
                    value = (self.base(tuple(args))["mean"] if labels.dtype == np.asarray(self.args[i]).dtype
                             else self.call(tuple(args)))
                except (ValueError, TypeError) as e:
                    problems.append(f"{self.names[i]} as {np.dtype(dtype).name} raised {type(e).__name__}: "
                                    f"{str(e).splitlines()[0] if str(e) else ''}")
                    continue
                if not np.isnan(float(value)):
                    problems.append(f"{self.names[i]} = {bad} ({np.dtype(dtype).name}, C = {num_classes}) gives "
                                    f"the finite loss {float(value)!r} instead of NaN")
        if problems:
            self.fail("; ".join(problems))
