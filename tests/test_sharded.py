"""Every registered loss under ``jax.jit`` with its batch sharded over 8 simulated CPU devices.

docs/conventions.md: every loss "runs under ``jax.jit`` with sharded inputs, and
gives the same numbers". For each spec of ``tests/specs`` (so a newly
registered loss is covered without touching this file) the batch is grown to a
multiple of 8 by concatenating independent draws of the spec's ``make_args``,
then one jitted function computes, in float32,

* the ``"mean"`` value and its gradients w.r.t. every float positional input,
* the ``"none"`` values,
* a weighted and masked ``"mean"`` (per-example ``weights`` and ``where``,
  sharded with the batch), when the unreduced values keep the batch on axis 0,

once with every input on one device and once with the batch axis (axis 0) of
the data arrays sharded over a data-parallel ``Mesh`` of 8 devices, parameters
without a batch axis (``class_centers``, ``weight [D, V]``) replicated. Both
must agree to 1e-5 relative (elementwise; entries below 1e-2 of an array's
largest magnitude are measured against that floor). A disagreement above that
is re-judged against a float64 run on one device: it passes only if the sharded
result is no further from float64 than twice the one-device float32 result is,
or than 2e-5 relative (reduction-order roundoff: a replicated parameter's
gradient is a sum over the 8 devices' partial sums), and the report records
both distances.

All losses run in ONE subprocess (the device count is fixed when JAX starts,
and a single interpreter pays JAX's start-up once); it prints a JSON report,
and each loss is a parametrized test that reads its entry. The same run checks
``jaxloss.reduce(..., axis_name="data")`` inside ``shard_map``: value and
gradient equal the global ones (an entirely masked shard included).
"""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.devices import run_with_devices
from tests.specs import all_specs

RTOL = 1e-5

_SCRIPT = textwrap.dedent(
    r'''
    import os
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
    import json, math, sys, time, traceback
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    import jaxloss
    from tests import specs
    from tests.specs import all_specs

    RTOL = float(sys.argv[1])
    MIN_BATCH = 16

    assert jax.device_count() == 8, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("data",))
    one = jax.devices()[0]

    def to32(a):
        a = np.asarray(a)
        return a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) else a

    def copies_for_eight(x):
        """Independent draws to concatenate: the batch a multiple of 8, and at least MIN_BATCH."""
        b = x.shape[0]
        copies = math.lcm(b, 8) // b
        while copies * b < MIN_BATCH:
            copies *= 2
        return copies

    def grow(spec, name):
        args, batched = specs.grow(name, spec, copies_for_eight)
        return [to32(a) for a in args], batched, args[0].shape[0]

    def rel_error(got, ref):
        """Largest elementwise relative error; entries far below the array's largest
        magnitude are measured against 1e-2 of it (cancellation noise, not a bug)."""
        got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
        if got.shape != ref.shape:
            return np.inf
        if not np.array_equal(np.isfinite(got), np.isfinite(ref)):
            return np.inf
        if not ref.size:
            return 0.0
        scale = float(np.max(np.abs(np.where(np.isfinite(ref), ref, 0.0))))
        err = np.abs(got - ref) / np.maximum(np.abs(ref), 1e-2 * scale + 1e-30)
        return float(np.max(np.where(np.isfinite(ref), err, 0.0)))

    def program_for(loss, kwargs, floats, has_extra):
        def program(args, extra):
            def mean(*f):
                full = list(args)
                for i, v in zip(floats, f):
                    full[i] = v
                return loss(*full, **kwargs)

            out = {"none": loss(*args, reduction="none", **kwargs)}
            out["mean"], g = jax.value_and_grad(mean, argnums=tuple(range(len(floats))))(*[args[i] for i in floats])
            out.update({f"grad[{i}]": gi for i, gi in zip(floats, g)})
            if has_extra:
                out["weighted masked mean"] = loss(*args, **extra, **kwargs)
            return out
        return program

    report = {}
    start_all = time.perf_counter()
    data, rep = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
    for name, spec in sorted(all_specs().items()):
        t0 = time.perf_counter()
        entry = report.setdefault(name, {})
        try:
            loss = jaxloss.get(name)
            kwargs = dict(spec.kwargs)
            args, batched, batch = grow(spec, name)
            entry.update(batch=batch, sharded_args=[i for i, s in enumerate(batched) if s],
                         replicated_args=[i for i, s in enumerate(batched) if not s])
            floats = tuple(i for i, a in enumerate(args) if np.issubdtype(a.dtype, np.floating))
            unreduced = jax.eval_shape(lambda *a: loss(*a, reduction="none", **kwargs), *args).shape
            extra = {}
            if len(unreduced) >= 1 and unreduced[0] == batch:
                r = np.random.default_rng(1)
                per_example = (batch,) + (1,) * (len(unreduced) - 1)
                extra = {"weights": r.uniform(0.5, 2.0, per_example).astype(np.float32),
                         "where": r.uniform(size=per_example) < 0.75}
            fn = jax.jit(program_for(loss, kwargs, floats, bool(extra)))
            ref = jax.device_get(fn(jax.device_put(args, one), jax.device_put(extra, one)))
            sharded_args = [jax.device_put(a, data if s else rep) for a, s in zip(args, batched)]
            out = fn(sharded_args, jax.device_put(extra, data))
            # The program really ran partitioned: the per-example values come back split over
            # the 8 devices (GSPMD propagated the batch sharding), not gathered onto one.
            entry["none_sharding"] = str(out["none"].sharding.spec) if hasattr(out["none"].sharding, "spec") else ""
            entry["none_devices"] = len(out["none"].sharding.device_set)
            got = jax.device_get(out)
            errors = {key: rel_error(got[key], ref[key]) for key in ref}
            failures = [key for key, e in errors.items() if not e <= RTOL]
            arbitrated = {}
            if failures:
                # Arbiter: float64 on one device. A disagreement no larger than the
                # one-device float32 result's own distance from float64 is roundoff
                # (reduction order), not a sharding bug.
                with jax.enable_x64(True):
                    args64 = [np.asarray(a, np.float64) if np.issubdtype(a.dtype, np.floating) else a for a in args]
                    extra64 = {k: (np.asarray(v, np.float64) if k == "weights" else v) for k, v in extra.items()}
                    truth = jax.device_get(jax.jit(program_for(loss, kwargs, floats, bool(extra)))(
                        jax.device_put(args64, one), jax.device_put(extra64, one)))
                for key in list(failures):
                    own, sharded = rel_error(ref[key], truth[key]), rel_error(got[key], truth[key])
                    arbitrated[key] = {"one_device_vs_float64": own, "sharded_vs_float64": sharded}
                    if sharded <= max(2.0 * own, 2.0 * RTOL):
                        failures.remove(key)
            entry.update(ok=not failures, errors=errors, arbitrated=arbitrated, checked=sorted(ref),
                         failures=[f"{key}: relative error {errors[key]:.3g} > {RTOL}"
                                   + (f" (float64 arbiter: {arbitrated[key]})" if key in arbitrated else "")
                                   for key in failures])
        except Exception:
            entry.update(ok=False, failures=[traceback.format_exc()[-2500:]])
        entry["seconds"] = round(time.perf_counter() - t0, 2)
    # jaxloss.reduce(axis_name=...) inside shard_map: value AND gradient equal the global ones
    # (tests/test_reduce.py checks the value on 4 devices, and the gradient under vmap only).
    reduce_errors = {}
    try:
        r = np.random.default_rng(2)
        v = r.normal(size=(16, 3)).astype(np.float32)
        wts = r.uniform(0.5, 2.0, size=(16, 3)).astype(np.float32)
        m = r.uniform(size=(16, 3)) < 0.6
        m[:2] = False  # device 0's shard entirely masked
        for reduction in ("sum", "mean"):
            def local(a, b, c):
                return jax.value_and_grad(lambda x: jaxloss.reduce(x, weights=b, where=c, reduction=reduction,
                                                                   axis_name="data"))(a)
            val, grad = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P("data"),) * 3,
                                              out_specs=(P(), P("data"))))(v, wts, m)
            ref_val, ref_grad = jax.value_and_grad(
                lambda x: jaxloss.reduce(x, weights=wts, where=m, reduction=reduction))(v)
            reduce_errors[f"{reduction} value"] = rel_error(val, ref_val)
            reduce_errors[f"{reduction} grad"] = rel_error(grad, ref_grad)
    except Exception:
        reduce_errors["error"] = traceback.format_exc()[-2500:]
    print("REPORT-JSON " + json.dumps({"losses": report, "reduce": reduce_errors,
                                      "seconds": round(time.perf_counter() - start_all, 1),
                                      "devices": jax.device_count()}))
    '''
)

_NAMES = sorted(all_specs())


@pytest.fixture(scope="module")
def report():
    proc = run_with_devices(_SCRIPT, str(RTOL))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT-JSON ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(lines[-1][len("REPORT-JSON "):])


def test_report_covers_every_spec_on_eight_devices(report):
    assert report["devices"] == 8
    assert sorted(report["losses"]) == _NAMES


def test_reduce_with_axis_name_inside_shard_map_value_and_gradient(report):
    errors = report["reduce"]
    assert "error" not in errors, errors.get("error")
    bad = {k: v for k, v in errors.items() if not v <= RTOL}
    assert len(errors) == 4 and not bad, f"jaxloss.reduce(axis_name='data') on 8 devices differs: {bad}"


@pytest.mark.parametrize("name", _NAMES)
def test_sharded_batch_equals_one_device(report, name):
    entry = report["losses"][name]
    assert entry.get("ok"), (
        f"{name}: jit with the batch sharded over 8 devices differs from one device "
        f"(rtol {RTOL}; batch {entry.get('batch')}, sharded args {entry.get('sharded_args')}, "
        f"replicated args {entry.get('replicated_args')}):\n" + "\n".join(entry.get("failures", [])))
    assert entry["sharded_args"], f"{name}: no argument had the batch on axis 0, nothing was sharded"
