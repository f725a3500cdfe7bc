"""Timing, compilation and memory measurement shared by ``benchmarks/run.py``.

* JAX implementations are compiled ahead of time
  (``jax.jit(f).lower(*args).compile()``); the wall time of lowering plus
  compiling is the *compile time*, the executable's ``memory_analysis()``
  gives the *peak memory* (temp + output bytes), and the same executable is
  what is timed.
* Implementations that are compared are timed in the same run, alternating:
  repeat ``r`` runs every implementation once, in an order rotated by ``r``,
  so slow drifts of a shared machine hit all of them alike. Each sample is a
  small batch of back-to-back calls (enough to last ~``target_s``), divided by
  the batch size; the figure is the median over the samples.
* glibc's mmap and trim thresholds are fixed first (:func:`fix_allocator`):
  otherwise a program's large buffers are mapped afresh, and page-faulted,
  on some calls or runs and not on others.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import re
import statistics
import time
from typing import Any, Callable

import jax
import numpy as np


def block(x: Any) -> Any:
    return jax.block_until_ready(x)


# glibc's mallopt parameters (malloc.h) and the values the benchmark fixes them at.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -3, -4, -8
MMAP_THRESHOLD = 32 << 20   # glibc's largest (the ceiling of its adaptive threshold)
TRIM_THRESHOLD = 1 << 30


def fix_allocator(no_mmap: bool = False) -> str:
    """Fixes glibc's mmap and trim thresholds, so timings do not depend on the allocation history.

    XLA:CPU allocates each call's temporary and output buffers with ``malloc``.
    glibc serves a large block with a fresh ``mmap``, whose pages fault in on first
    touch, unless its adaptive threshold has grown past the block's size, which
    depends on what the process freed before. So one program measured
    25-30 ms or 9-13 ms per call (softmax cross-entropy 8192x1000, value and
    gradient: 62 MiB of page faults per call, or none), and a ratio against a peer
    swung between 0.73 and 1.6 with the order of earlier allocations. Fixed at
    glibc's ceiling (32 MiB) with a high trim threshold, blocks up to 32 MiB
    are reused from the heap in every run, for every implementation alike.
    With ``no_mmap`` every thread also shares one arena and nothing is
    mmapped (``M_ARENA_MAX=1``, ``M_MMAP_MAX=0``): buffers of 32 MiB and more
    are then reused too, and worker threads' arenas are not unmapped when
    they empty, so no page faults remain after warm-up (the loss's compute
    alone; XLA:CPU's temporary buffer of a whole training step is usually
    larger than 32 MiB and mapped afresh otherwise). Returns what was done
    (for the report); does nothing off glibc.
    """
    settings = [(_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD)]
    if no_mmap:
        settings += [(_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0)]
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = all(libc.mallopt(param, value) == 1 for param, value in settings)
    except (OSError, AttributeError):
        return "default allocator (not glibc)"
    if not ok:
        return "glibc defaults (mallopt refused)"
    what = f"glibc mmap threshold fixed at {MMAP_THRESHOLD >> 20} MiB, trim threshold {TRIM_THRESHOLD >> 20} MiB"
    return what + ("; one arena, no mmap" if no_mmap else "")


def compile_jax(fn: Callable, args: tuple) -> tuple[Any, float, int | None]:
    """AOT-compiles ``fn`` for ``args``: (executable, lower+compile seconds, temp+output bytes or None)."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    seconds = time.perf_counter() - start
    return compiled, seconds, memory_bytes(compiled)


_OPCODE = re.compile(r"^\s*(?:ROOT\s+)?%\S+\s*=\s*.*?\s([a-z][a-z0-9-]*)\(")
_FREE = {"parameter", "constant", "tuple", "get-tuple-element", "bitcast"}
# An entry-computation fusion that only broadcasts (XLA:CPU names it wrapped_broadcast): an array written out so
# that another fusion (on CPU often a YNN fusion, which takes a broadcast operand it cannot share) reads it back.
_BROADCAST = re.compile(r"=\s*[a-z0-9]+\[([\d,]*)\]\S*\s+fusion\(.*calls=%wrapped_broadcast_computation")
# Broadcasts of fewer elements than this are not counted (a short vector costs little; [4096, 1] counts).
_BROADCAST_MIN_ELEMENTS = 4096


def hlo_profile(compiled: Any) -> dict[str, Any]:
    """A noise-free summary of the optimised program: the multiset of HLO opcodes and the launches.

    ``kernels`` counts the instructions of the entry computation that do work
    (fusions, custom calls, ...; not parameters, constants, tuples or bitcasts):
    each is a separate pass over memory or a separate launch. Two programs with
    equal ``opcodes`` do the same arithmetic; their timing difference is noise.
    ``broadcasts`` counts the entry fusions that only write out a broadcast of
    at least ``_BROADCAST_MIN_ELEMENTS`` elements (a constant or a row vector
    that several fusions share: the triplet loss's epsilon was one).
    """
    try:
        text = compiled.as_text()
    except Exception:  # pylint: disable=broad-except
        return {}
    opcodes: dict[str, int] = {}
    kernels, broadcasts, in_entry = 0, 0, False
    for line in text.splitlines():
        if line.startswith("ENTRY"):
            in_entry = True
            continue
        if in_entry and line.startswith("}"):
            in_entry = False
        written = _BROADCAST.search(line) if in_entry else None
        if written and math.prod(int(d) for d in written.group(1).split(",") if d) >= _BROADCAST_MIN_ELEMENTS:
            broadcasts += 1
        match = _OPCODE.match(line)
        if not match:
            continue
        op = match.group(1)
        opcodes[op] = opcodes.get(op, 0) + 1
        if in_entry and op not in _FREE:
            kernels += 1
    digest = hashlib.sha1(repr(sorted(opcodes.items())).encode()).hexdigest()[:12]
    return {"kernels": kernels, "broadcasts": broadcasts, "instructions": sum(opcodes.values()),
            "opcodes_digest": digest}


def memory_bytes(compiled: Any) -> int | None:
    """``temp_size_in_bytes + output_size_in_bytes`` of a compiled executable, if the backend reports it."""
    try:
        memory = compiled.memory_analysis()
    except Exception:  # pylint: disable=broad-except  # some backends do not implement it
        return None
    if memory is None:
        return None
    return int(memory.temp_size_in_bytes + memory.output_size_in_bytes)


def memory_budget(device: Any) -> int | None:
    """Bytes a benchmark may let XLA allocate on ``device``: half of what is free (None: unknown)."""
    try:
        stats = device.memory_stats()
    except Exception:  # pylint: disable=broad-except
        stats = None
    if stats and "bytes_limit" in stats:
        return int(0.5 * (stats["bytes_limit"] - stats.get("bytes_in_use", 0)))
    try:
        import os  # pylint: disable=import-outside-toplevel
        return int(0.5 * os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _batch_size(call: Callable[[], Any], target_s: float) -> int:
    if target_s <= 0:
        return 1
    times = []
    for _ in range(3):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    once = max(min(times), 1e-7)
    return int(max(1, min(2000, round(target_s / once))))


def time_alternating(calls: dict[str, Callable[[], Any]], repeats: int, *, warmup: int = 2,
                     target_s: float = 1e-2) -> dict[str, dict[str, float]]:
    """Median seconds per call of each no-argument, blocking ``call``, measured alternately.

    Returns ``{name: {"median_s", "min_s", "iqr_s", "samples", "batch", "samples_s"}}``; ``samples_s``
    lists the per-repeat seconds in repeat order, so sample ``r`` of two names was taken in the same
    repeat (see :func:`paired_ratio_interval`).
    """
    names = list(calls)
    for name in names:
        for _ in range(warmup):
            calls[name]()
    batch = {name: _batch_size(calls[name], target_s) for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            call, n = calls[name], batch[name]
            start = time.perf_counter()
            for _ in range(n):
                call()
            samples[name].append((time.perf_counter() - start) / n)
    return {name: timing_from_samples(samples[name], batch[name]) for name in names}


def timing_from_samples(samples: list[float], batch: int) -> dict[str, Any]:
    """The summary :func:`time_alternating` reports for one implementation's per-call ``samples`` (seconds)."""
    q = np.percentile(samples, [25, 75])
    return {"median_s": statistics.median(samples), "min_s": min(samples), "iqr_s": float(q[1] - q[0]),
            "samples": len(samples), "batch": batch,
            "samples_s": [float(f"{t:.4g}") for t in samples]}  # 4 significant digits: timing noise is larger


def pooled(first: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """Two timings of one implementation (``time_alternating`` entries) as one, their samples concatenated.

    Sample ``r`` of two implementations stays paired (both lists grow by the
    same rounds), so :func:`paired_ratio_interval` still applies.
    """
    return {**first, **timing_from_samples(first["samples_s"] + later["samples_s"], first["batch"])}


def paired_ratio_interval(a: list[float], b: list[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free interval for the median of the paired ratios ``a[r] / b[r]``.

    Samples ``r`` of two implementations come from the same repeat of
    :func:`time_alternating`, so a drift of the shared machine's load hits both;
    the ratios are sorted and the interval is the order statistics
    ``(k, n + 1 - k)`` with ``k`` the largest rank whose binomial(n, 1/2) tail
    stays within ``(1 - confidence) / 2`` (the sign-test interval of a median).
    ``None`` below 6 pairs (no such ``k`` at 95%).
    """
    ratios = sorted(x / y for x, y in zip(a, b) if y > 0)
    n = len(ratios)
    tail, k, cumulative = (1.0 - confidence) / 2.0, 0, 0.0
    for i in range(n):
        cumulative += math.comb(n, i) / 2.0 ** n  # P(Binomial(n, 1/2) <= i)
        if cumulative > tail:
            break
        k = i + 1
    if k == 0:
        return None
    return ratios[k - 1], ratios[n - k]


def interleaved_medians(fns: list[Callable[..., Any]], args: tuple, repeats: int) -> list[float]:
    """Median seconds of each of ``fns`` on ``args``: warmed up twice, then calls interleaved.

    The order alternates each repeat (forward, then reversed), so a drift of
    the machine's load affects every function alike.
    """
    for fn in fns:  # compile and warm up
        jax.block_until_ready(fn(*args))
        jax.block_until_ready(fn(*args))
    times: list[list[float]] = [[] for _ in fns]
    for r in range(repeats):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            start = time.perf_counter()
            jax.block_until_ready(fns[i](*args))
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def copy_bandwidth(device: Any, nbytes: int = 1 << 28, repeats: int = 20) -> float:
    """Bytes per second of a device-to-device copy (read + write) of ``nbytes``, measured on ``device``."""
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
    x = jax.device_put(jnp.zeros((nbytes // 4,), jnp.float32), device)
    copy = jax.jit(lambda a: a.copy()).lower(x).compile()
    result = time_alternating({"copy": lambda: block(copy(x))}, repeats)
    return 2.0 * nbytes / result["copy"]["median_s"]
