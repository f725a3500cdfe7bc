"""jaxloss against optax and PyTorch: speed, compile time and memory, same device, same run.

    python benchmarks/run.py            # every case, small/medium/large, 20 repeats, issue-6/15 figures
    python benchmarks/run.py --quick    # medium size, 10 repeats (< 5 minutes on 2 CPU cores)
    python benchmarks/run.py --only huber_loss,ctc_loss --sizes small --repeats 15
    python benchmarks/run.py --device gpu  # the whole benchmark on the GPU: results/gpu.md (tpu: tpu.md)

Every ratio is jaxloss / peer on the median of warm repeats (< 1: jaxloss is
faster). Writes ``benchmarks/results/<device>.md``, ``.json`` and ``.png``, where
``<device>`` is ``--device`` (``cpu``, the default, ``gpu`` or ``tpu``; ``--out``
picks another folder). See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import sys
import time
from typing import Any

# OpenMP threads (torch's CPU pool) spin after each parallel region by default; alternating with
# XLA's own thread pool on the same cores, the spinning threads of one steal the cores of the other
# and distort both timings. Passive waiting makes them yield at once. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# On a GPU, XLA would otherwise reserve 75% of the memory up front and leave torch too little.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
try:
    import jaxloss  # noqa: F401
except ImportError:  # run from a clone without installing: use the checkout
    sys.path.insert(0, os.path.dirname(_HERE))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxloss  # noqa: E402,F811
import cases as cases_lib  # noqa: E402
import harness  # noqa: E402
import report  # noqa: E402

MODES = ("fwd", "fwd+bwd")


# ----------------------------------------------------------------- torch peer
def torch_setup(device: Any) -> tuple[Any, str | None, str]:
    """(torch module or None, torch device string or None, why not) for ``device``'s platform."""
    try:
        import torch  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None, None, "torch not installed"
    if device.platform == "cpu":
        return torch, "cpu", ""
    if device.platform == "gpu" and torch.cuda.is_available():
        return torch, "cuda", ""
    return None, None, f"torch has no {device.platform} device here"


def _torch_sync(torch: Any, torch_device: str) -> None:
    if torch_device == "cuda":
        torch.cuda.synchronize()


def _to_torch(torch: Any, torch_device: str, arrays: tuple, diff: tuple[int, ...], grad: bool) -> list:
    out = []
    for i, a in enumerate(arrays):
        t = torch.from_numpy(np.array(a, np.int64 if np.issubdtype(a.dtype, np.integer) else np.float32))
        t = t.to(torch_device)
        if grad and i in diff:
            t.requires_grad_(True)
        out.append(t)
    return out


def _torch_call(torch: Any, torch_device: str, fn: Any, targs: list, diff: tuple[int, ...], mode: str):
    if mode == "fwd":
        def call():
            with torch.no_grad():
                value = fn(*targs)
            _torch_sync(torch, torch_device)
            return value
    else:
        inputs = [targs[i] for i in diff]

        def call():
            value = fn(*targs)
            grads = torch.autograd.grad(value, inputs)
            _torch_sync(torch, torch_device)
            return value, grads
    return call


# ----------------------------------------------------------------- loss table
def _jax_fn(fn: Any, diff: tuple[int, ...], mode: str) -> Any:
    return fn if mode == "fwd" else jax.value_and_grad(fn, argnums=diff)


def _scalar(x: Any) -> float:
    if isinstance(x, tuple):
        x = x[0]
    return float(np.asarray(x.detach().cpu() if hasattr(x, "detach") else x))


def _time_against_peers(calls: dict, repeats: int) -> dict:
    """Timings of jaxloss and each peer: optax alternates with jaxloss, torch with jaxloss in its own loop.

    torch's CPU threads keep spinning for a while after each call and slow whichever
    JAX call comes next; in one three-way rotation jaxloss followed torch in two
    repeats out of three and optax in one (kl_divergence_with_log_targets, 8192x1000
    forward: 1.16x optax with torch in the rotation, 1.00x without). So the optax
    ratio never sees torch, and the torch ratio uses the jaxloss timing of its own
    loop (``paired_jaxloss``).
    """
    jax_calls = {peer: call for peer, call in calls.items() if peer != "torch"}
    timing = harness.time_alternating(jax_calls, repeats) if len(jax_calls) > 1 else {}
    if "torch" in calls:
        vs_torch = harness.time_alternating({"jaxloss": calls["jaxloss"], "torch": calls["torch"]}, repeats)
        timing["torch"] = dict(vs_torch["torch"], paired_jaxloss=vs_torch["jaxloss"])
        timing.setdefault("jaxloss", vs_torch["jaxloss"])
    elif not timing:
        timing = harness.time_alternating(jax_calls, repeats)
    return timing


def run_case(case: cases_lib.Case, size: str, repeats: int, device: Any, torch_peer: tuple) -> dict:
    torch, torch_device, _ = torch_peer
    np_args = case.make(size, np.random.default_rng(0))
    jargs = tuple(jax.device_put(a, device) for a in np_args)
    row: dict[str, Any] = {"case": case.name, "size": size, "shape": list(case.size_of[size]), "note": case.note}
    for mode in MODES:
        calls, meta, values = {}, {}, {}
        for peer, fn in (("jaxloss", case.ours), ("optax", case.optax)):
            if fn is None:
                continue
            compiled, compile_s, mem = harness.compile_jax(_jax_fn(fn, case.diff, mode), jargs)
            budget = harness.memory_budget(device)
            if mem is not None and budget is not None and mem > budget:
                row.setdefault("skipped", []).append(
                    f"{peer} {mode}: needs {mem / 2**30:.1f} GiB (memory_analysis), more than the "
                    f"{budget / 2**30:.1f} GiB budget")
                continue
            calls[peer] = (lambda c=compiled: harness.block(c(*jargs)))
            meta[peer] = {"compile_s": compile_s, "memory_bytes": mem, "hlo": harness.hlo_profile(compiled)}
            values[peer] = _scalar(calls[peer]())
        if case.torch is not None and torch is not None:
            targs = _to_torch(torch, torch_device, np_args, case.diff, mode != "fwd")
            calls["torch"] = _torch_call(torch, torch_device, case.torch, targs, case.diff, mode)
            meta["torch"] = {}
            values["torch"] = _scalar(calls["torch"]())
        timing = _time_against_peers(calls, repeats)
        for peer in calls:
            meta[peer].update(timing[peer])
            meta[peer]["value"] = values[peer]
        row[mode] = meta
    return row


# ------------------------------------------------------------ issue-6 figures
def _ce_vs_optax(n: int, v: int, repeats: int, device: Any) -> dict:
    """softmax_cross_entropy_with_integer_labels vs optax's at [n, v] float32, value and gradient."""
    rng = np.random.default_rng(0)
    logits = jax.device_put(np.asarray(rng.normal(size=(n, v)) * 2, np.float32), device)
    labels = jax.device_put(rng.integers(0, v, size=n).astype(np.int32), device)
    ours = jaxloss.softmax_cross_entropy_with_integer_labels
    theirs = lambda x, y: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(x, y))  # noqa: E731
    out = {"n": n, "v": v, "dtype": "float32"}
    for mode in MODES:
        calls, meta = {}, {}
        for peer, fn in (("jaxloss", ours), ("optax", theirs)):
            compiled, compile_s, mem = harness.compile_jax(_jax_fn(fn, (0,), mode), (logits, labels))
            calls[peer] = (lambda c=compiled: harness.block(c(logits, labels)))
            meta[peer] = {"compile_s": compile_s, "memory_bytes": mem, "hlo": harness.hlo_profile(compiled)}
        timing = harness.time_alternating(calls, repeats, warmup=1, target_s=0.0)
        for peer in calls:
            meta[peer].update(timing[peer])
        meta["ratio"] = meta["jaxloss"]["median_s"] / meta["optax"]["median_s"]
        out[mode] = meta
    return out


def _lm_inputs(n: int, d: int, v: int, dtype: Any, device: Any) -> tuple:
    rng = np.random.default_rng(0)
    hidden = jax.device_put(jnp.asarray(rng.normal(size=(n, d)) / np.sqrt(d), dtype), device)
    weight = jax.device_put(jnp.asarray(rng.normal(size=(d, v)), dtype), device)
    labels = jax.device_put(rng.integers(0, v, size=n).astype(np.int32), device)
    return hidden, weight, labels


def _fused(chunk: int | None):
    return lambda h, w, y: jaxloss.linear_softmax_cross_entropy(h, w, y, chunk_size=chunk)


def default_chunk(n: int) -> int | None:
    """The vocabulary chunk ``linear_softmax_cross_entropy`` picks for ``n`` tokens with ``chunk_size=None``."""
    try:
        from jaxloss import _numerics, large_vocab  # pylint: disable=import-outside-toplevel
        return int(max(_numerics.vocab_chunk(n), getattr(large_vocab, "_DEFAULT_MIN_CHUNK", 0)))
    except (ImportError, AttributeError, TypeError):
        return None


def _naive(h, w, y):
    return jaxloss.softmax_cross_entropy_with_integer_labels(h @ w, y)


def _fused_vs_naive_speed(n: int, d: int, v: int, chunk: int | None, repeats: int, device: Any) -> dict:
    args = _lm_inputs(n, d, v, jnp.float32, device)
    calls, meta = {}, {}
    for peer, fn in (("fused", _fused(chunk)), ("naive", _naive)):
        compiled, compile_s, mem = harness.compile_jax(jax.value_and_grad(fn, argnums=(0, 1)), args)
        calls[peer] = (lambda c=compiled: harness.block(c(*args)))
        meta[peer] = {"compile_s": compile_s, "memory_bytes": mem}
    timing = harness.time_alternating(calls, repeats, warmup=1, target_s=0.0)
    for peer in calls:
        meta[peer].update(timing[peer])
    return {"n": n, "d": d, "v": v, "chunk_size": chunk if chunk is not None else default_chunk(n),
            "default_chunk": chunk is None, "dtype": "float32", **meta,
            "ratio": meta["fused"]["median_s"] / meta["naive"]["median_s"]}


def _memory_of(fn: Any, n: int, d: int, v: int, dtype: Any, device: Any = None) -> dict:
    """Compile-only memory of jit(value_and_grad) w.r.t. hidden and weight; nothing is allocated."""
    sharding = None if device is None else jax.sharding.SingleDeviceSharding(device)
    args = (jax.ShapeDtypeStruct((n, d), dtype, sharding=sharding),
            jax.ShapeDtypeStruct((d, v), dtype, sharding=sharding),
            jax.ShapeDtypeStruct((n,), jnp.int32, sharding=sharding))
    start = time.perf_counter()
    lowered = jax.jit(jax.value_and_grad(fn, argnums=(0, 1))).lower(*args)
    lower_s = time.perf_counter() - start
    out: dict[str, Any] = {"n": n, "d": d, "v": v, "dtype": jnp.dtype(dtype).name, "lower_s": lower_s}
    try:
        start = time.perf_counter()
        compiled = lowered.compile()
        out["compile_s"] = time.perf_counter() - start
        memory = compiled.memory_analysis()
        total = int(memory.temp_size_in_bytes + memory.output_size_in_bytes)
        weight_grad = d * v * jnp.dtype(dtype).itemsize
        out.update(temp_bytes=int(memory.temp_size_in_bytes), output_bytes=int(memory.output_size_in_bytes),
                   total_bytes=total, net_bytes=total - weight_grad)
    except Exception as error:  # pylint: disable=broad-except  # report what lower() gave
        out["error"] = f"{type(error).__name__}: {error}"[:300]
        out["lowered_ops"] = lowered.as_text().count("\n")
    return out


def memory_figures(chunk: int | None, gemma: bool, device: Any = None) -> dict:
    n, d, v = 8192, 512, 32768
    out = {"chunk_size": chunk if chunk is not None else default_chunk(n), "default_chunk": chunk is None,
           "naive": _memory_of(_naive, n, d, v, jnp.float32, device),
           "fused": _memory_of(_fused(chunk), n, d, v, jnp.float32, device),
           "fused_2v": _memory_of(_fused(chunk), n, d, 2 * v, jnp.float32, device)}
    if "net_bytes" in out["naive"] and "net_bytes" in out["fused"]:
        out["ratio_total"] = out["fused"]["total_bytes"] / out["naive"]["total_bytes"]
        out["ratio_net"] = out["fused"]["net_bytes"] / out["naive"]["net_bytes"]
        out["growth_2v_net"] = out["fused_2v"]["net_bytes"] / out["fused"]["net_bytes"] - 1.0
    if gemma:
        gn, gd, gv = 8192, 2304, 256000
        out["gemma_fused"] = _memory_of(_fused(chunk), gn, gd, gv, jnp.bfloat16, device)
        out["gemma_naive"] = _memory_of(_naive, gn, gd, gv, jnp.bfloat16, device)
        if "net_bytes" in out["gemma_fused"] and "net_bytes" in out["gemma_naive"]:
            out["gemma_ratio_net"] = out["gemma_fused"]["net_bytes"] / out["gemma_naive"]["net_bytes"]
            out["gemma_ratio_total"] = out["gemma_fused"]["total_bytes"] / out["gemma_naive"]["total_bytes"]
    return out


# ----------------------------------------------------------- issue-15 figures
def distillation_memory(device: Any = None) -> dict:
    """Fused / naive memory of the fused distillation losses (``benchmarks/fused_distillation.py``), compile only."""
    import fused_distillation  # pylint: disable=import-outside-toplevel
    n, ds, dt, v, dtype = fused_distillation.SHAPES["float32"]
    out: dict[str, Any] = {"n": n, "d": ds, "v": v, "dtype": "float32", "losses": {}}
    for name, (fused, naive) in fused_distillation.LOSSES.items():
        for grads, argnums in (("student", (0, 1)), ("all four", (0, 1, 2, 3))):
            try:
                f = fused_distillation.memory_bytes(fused, n, ds, dt, v, dtype, argnums)
                m = fused_distillation.memory_bytes(naive, n, ds, dt, v, dtype, argnums)
            except Exception as error:  # pylint: disable=broad-except  # report, do not lose the run
                out["losses"][f"{name}, gradients: {grads}"] = {"error": f"{type(error).__name__}: {error}"[:300]}
                continue
            out["losses"][f"{name}, gradients: {grads}"] = {"fused_bytes": f, "naive_bytes": m, "ratio": f / m}
    return out


def ctc_figures(repeats: int, device: Any) -> list[dict]:
    """``ctc_loss`` vs optax at issue 15's two shapes (``benchmarks/ctc.py``): time ratios and agreement."""
    import ctc  # pylint: disable=import-outside-toplevel

    def ours(*a):
        return ctc.ctc_loss(*a, reduction="mean")

    def theirs(*a):
        return jnp.mean(optax.ctc_loss(*a))

    out = []
    for config in ctc.CONFIGS[:2]:
        inputs = tuple(jax.device_put(a, device) for a in ctc.make_inputs(*config))
        (v1, g1), (v2, g2) = (jax.jit(jax.value_and_grad(f))(*inputs) for f in (ours, theirs))
        figure: dict[str, Any] = {"config": list(config), "value_rel_diff": ctc.max_relative_difference(v1, v2),
                                  "grad_rel_diff": ctc.max_relative_difference(g1, g2)}
        for mode in MODES:
            calls, meta = {}, {}
            for peer, fn in (("jaxloss", ours), ("optax", theirs)):
                compiled, compile_s, mem = harness.compile_jax(_jax_fn(fn, (0,), mode), inputs)
                calls[peer] = (lambda c=compiled: harness.block(c(*inputs)))
                meta[peer] = {"compile_s": compile_s, "memory_bytes": mem}
            timing = harness.time_alternating(calls, repeats)
            for peer in calls:
                meta[peer].update(timing[peer])
            meta["ratio"] = meta["jaxloss"]["median_s"] / meta["optax"]["median_s"]
            figure[mode] = meta
        out.append(figure)
    return out


def gpu_bandwidth(device: Any, ce: dict) -> dict | None:
    """Achieved bandwidth of the cross-entropy kernels as a fraction of a device-to-device copy (GPU only)."""
    if device.platform != "gpu":
        return None
    copy_bps = harness.copy_bandwidth(device)
    logits_bytes = ce["n"] * ce["v"] * 4
    out = {"copy_bytes_per_s": copy_bps}
    # The least traffic each kernel needs: the forward reads the logits once; value-and-grad reads
    # them and writes a gradient of the same size (labels and scalars are negligible).
    for mode, traffic in (("fwd", logits_bytes), ("fwd+bwd", 2 * logits_bytes)):
        for peer in ("jaxloss", "optax"):
            bps = traffic / ce[mode][peer]["median_s"]
            out[f"{mode}/{peer}"] = {"bytes_per_s": bps, "fraction_of_copy": bps / copy_bps}
    return out


# ----------------------------------------------------------------------- main
DEVICES = ("cpu", "gpu", "tpu")


def select_device(kind: str) -> Any:
    """The first device of JAX's ``kind`` backend (``cpu``, ``gpu`` or ``tpu``); SystemExit if there is none."""
    try:
        devices = jax.devices(kind)
    except RuntimeError as error:  # unknown backend, or a plugin that failed to initialise
        try:
            available = sorted({d.platform for d in jax.devices()})
        except RuntimeError:
            available = []
        raise SystemExit(
            f"benchmarks/run.py: --device {kind}: JAX has no {kind} backend here "
            f"(available: {', '.join(available) or 'none'}; jax {jax.__version__}). "
            f"Install the matching jaxlib plugin (e.g. pip install 'jax[cuda12]' or 'jax[tpu]') "
            f"or pick another --device. JAX said: {str(error).splitlines()[0] if str(error) else error!r}"
        ) from None
    if not devices:
        raise SystemExit(f"benchmarks/run.py: --device {kind}: the {kind} backend has no devices")
    return devices[0]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: Any, torch_peer: tuple, args: argparse.Namespace) -> dict:
    torch = torch_peer[0]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device_kind": device.device_kind, "platform": device.platform,
        "jax": jax.__version__, "jaxlib": getattr(__import__("jaxlib"), "__version__", "?"),
        "optax": optax.__version__, "torch": None if torch is None else torch.__version__,
        "torch_note": torch_peer[2], "torch_threads": None if torch is None else torch.get_num_threads(),
        "numpy": np.__version__, "python": platform.python_version(),
        "cpu": cpu_model(), "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "mode": "quick" if args.quick else "full", "repeats": args.repeats, "sizes": args.sizes,
        "rounds": args.rounds,
        "command": "python benchmarks/run.py " + " ".join(sys.argv[1:]),
    }


def _write(stem: str, results: dict) -> None:
    markdown = report.markdown(results)
    print(markdown)
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write(markdown)
    text = json.dumps(results, indent=1)
    # Lists of numbers (each repeat's samples) on one line each, not one number per line.
    text = re.sub(r"\[\s*(-?[0-9][-0-9.e+]*(?:,\s*-?[0-9][-0-9.e+]*)*)\s*\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
    with open(stem + ".json", "w", encoding="utf-8") as f:
        f.write(text + "\n")
    report.chart(results, stem + ".png")
    print(f"wrote {stem}.md, .json, .png")


def rewrite_report(stem: str) -> dict:
    """Regenerates the Markdown and the chart of a stored run with the current explanations."""
    with open(stem + ".json", encoding="utf-8") as f:
        results = json.load(f)
    results["explanations"] = cases_lib.EXPLANATIONS
    _write(stem, results)
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="medium size only, 10 repeats, a reduced fused-vs-naive shape (< 5 min on 2 cores)")
    parser.add_argument("--sizes", default=None, help="comma-separated subset of small,medium,large")
    parser.add_argument("--repeats", type=int, default=None, help="warm repeats per figure (>= 10 recommended)")
    parser.add_argument("--only", default=None, help="comma-separated case names (default: every case)")
    parser.add_argument("--skip-issue6", action="store_true", help="skip the headline figures (issues 6 and 15: cross-entropy at V=32768, "
                        "fused large-vocabulary and distillation memory, CTC)")
    parser.add_argument("--no-gemma", action="store_true", help="skip compiling the Gemma-2 2B shape")
    parser.add_argument("--device", default="cpu", choices=DEVICES,
                        help="backend to run everything on (default cpu); results go to <out>/<device>.md")
    parser.add_argument("--out", default=os.path.join(_HERE, "results"), help="output folder")
    parser.add_argument("--merge", action="store_true",
                        help="update <device>.json: replace the rows (and issue-6 figures) measured now, keep the rest")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure the whole table this many times, pooling each row's samples (default 1)")
    parser.add_argument("--allocator", default="fixed", choices=("fixed", "no-mmap", "default"),
                        help="glibc malloc settings (harness.fix_allocator): 'fixed' thresholds (default), 'no-mmap' "
                        "(also one arena and no mmap at all: no page faults after warm-up), or glibc's 'default'")
    parser.add_argument("--report-only", action="store_true",
                        help="measure nothing: rewrite <device>.md and .png from <device>.json")
    args = parser.parse_args(argv)
    stem = os.path.join(args.out, args.device)
    if args.report_only:
        return rewrite_report(stem)
    args.sizes = (args.sizes or ("medium" if args.quick else ",".join(cases_lib.SIZES))).split(",")
    args.repeats = args.repeats or (10 if args.quick else 20)

    allocator = ("glibc defaults (--allocator default)" if args.allocator == "default"
                 else harness.fix_allocator(no_mmap=args.allocator == "no-mmap"))
    device = select_device(args.device)
    # Inputs are placed on `device` explicitly; the default device also covers any array or compilation
    # without one (a GPU machine would otherwise run parts of a `--device cpu` run on its GPU).
    with jax.default_device(device):
        results = _measure(args, device)
    results["environment"]["allocator"] = allocator
    os.makedirs(args.out, exist_ok=True)
    if args.merge and os.path.exists(stem + ".json"):
        results = _merged(stem, results)
    _write(stem, results)
    return results


def _measure(args: argparse.Namespace, device: Any) -> dict:
    torch_peer = torch_setup(device)
    env = environment(device, torch_peer, args)
    env["device"] = args.device
    print(f"# {env['device_kind']} ({env['platform']}), jax {env['jax']}, optax {env['optax']}, "
          f"torch {env['torch'] or '-'}; {env['mode']} run, {args.repeats} repeats, sizes {args.sizes}", flush=True)

    selected = set(args.only.split(",")) if args.only else None
    rows: list[dict] = []
    index: dict[tuple[str, str], int] = {}
    # Rounds: the whole table again, its samples pooled with the earlier rounds' (paired by repeat). The
    # load of this shared machine drifts over minutes, which moves a row's ratio by up to ~10% between
    # runs, more than one run's paired interval shows; rounds minutes apart sample several load regimes.
    for _ in range(args.rounds):
        for case in cases_lib.build_cases():
            if selected and case.name not in selected:
                continue
            for size in args.sizes:
                start = time.perf_counter()
                row = run_case(case, size, args.repeats, device, torch_peer)
                key = (case.name, size)
                if key in index:
                    row = rows[index[key]] = _pooled_row(rows[index[key]], row)
                else:
                    index[key] = len(rows)
                    rows.append(row)
                print(report.progress_line(row, time.perf_counter() - start), flush=True)

    issue6: dict[str, Any] = {}
    if not args.skip_issue6:
        print("# issue 6: softmax_cross_entropy_with_integer_labels vs optax at N=8192, V=32768", flush=True)
        issue6["ce"] = _ce_vs_optax(8192, 32768, args.repeats, device)
        fused_n = 512 if args.quick else 8192
        print(f"# issue 6: linear_softmax_cross_entropy vs naive at N={fused_n}, D=512, V=32768", flush=True)
        # ~10 s a call on 2 busy CPU cores: the required minimum of 10 repeats, not --repeats.
        # The library's default chunk (chunk_size=None): the figure a user gets.
        issue6["fused_speed"] = _fused_vs_naive_speed(fused_n, 512, 32768, None, min(args.repeats, 10), device)
        print("# issue 6: memory from memory_analysis (compile only)", flush=True)
        issue6["memory"] = memory_figures(None, gemma=not args.no_gemma, device=device)
        issue6["bandwidth"] = gpu_bandwidth(device, issue6["ce"])
        print("# issue 15: fused distillation memory (compile only)", flush=True)
        issue6["distillation"] = distillation_memory(device)
        print("# issue 15: ctc_loss vs optax at (16, 200, 32, 40) and (8, 1000, 64, 100)", flush=True)
        try:
            issue6["ctc"] = ctc_figures(args.repeats, device)
        except Exception as error:  # pylint: disable=broad-except  # keep the rest of a long run
            issue6["ctc_error"] = f"{type(error).__name__}: {error}"[:300]
    env["load_average_end"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None

    return {"environment": env, "rows": rows, "issue6": issue6, "explanations": cases_lib.EXPLANATIONS}


def _pooled_row(first: dict, later: dict) -> dict:
    """``first`` with every timing's samples pooled with ``later``'s (the same row, measured in a later round)."""
    out = dict(first)
    for mode in MODES:
        if mode not in first or mode not in later:
            continue
        meta = {}
        for peer, timing in first[mode].items():
            again = later[mode].get(peer)
            if not isinstance(timing, dict) or not isinstance(again, dict) or "samples_s" not in timing:
                meta[peer] = timing
                continue
            meta[peer] = harness.pooled(timing, again)
            if "paired_jaxloss" in timing and "paired_jaxloss" in again:
                meta[peer]["paired_jaxloss"] = harness.pooled(timing["paired_jaxloss"], again["paired_jaxloss"])
        out[mode] = meta
    return out


def _merged(stem: str, new: dict) -> dict:
    """The stored run with the rows and figures of ``new`` replacing theirs; the header records both runs."""
    with open(stem + ".json", encoding="utf-8") as f:
        old = json.load(f)
    fresh = {(r["case"], r["size"]) for r in new["rows"]}
    for row in new["rows"]:
        row["rerun"] = new["environment"]["date"]
    by_key = {(r["case"], r["size"]): r for r in new["rows"]}
    rows = [by_key.pop((r["case"], r["size"]), r) if (r["case"], r["size"]) in fresh else r for r in old["rows"]]
    rows += list(by_key.values())
    issue6 = {**old.get("issue6", {}), **new.get("issue6", {})}
    env = old["environment"]
    env.setdefault("reruns", []).append(f"{new['environment']['date']}: {new['environment']['command']}")
    return {"environment": env, "rows": rows, "issue6": issue6, "explanations": new["explanations"]}


if __name__ == "__main__":
    main()
