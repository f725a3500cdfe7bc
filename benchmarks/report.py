"""Markdown, progress lines and the PNG chart of a benchmark run (see ``run.py``)."""

from __future__ import annotations

import math
from typing import Any

PEERS = ("optax", "torch")
MODES = ("fwd", "fwd+bwd")
SLOW = 1.10  # issue 6, item 6: no loss more than 10% slower than optax


def ratio(row: dict, mode: str, peer: str) -> float | None:
    meta = row.get(mode, {})
    if "jaxloss" not in meta or peer not in meta:
        return None
    return meta["jaxloss"]["median_s"] / meta[peer]["median_s"]


def _min_ratio(row: dict, mode: str, peer: str = "optax") -> float:
    meta = row[mode]
    return meta["jaxloss"]["min_s"] / meta[peer]["min_s"]


def _fmt_ratio(r: float | None, flag: bool = False) -> str:
    if r is None:
        return "—"
    text = f"{r:.2f}"
    return f"**{text}**" if flag and r > SLOW else text


def _fmt_bytes(b: float | None) -> str:
    if b is None:
        return "—"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= scale:
            return f"{b / scale:.1f} {unit}"
    return f"{int(b)} B"


def _ms(s: float) -> str:
    return f"{1e3 * s:.3f}" if s < 0.01 else f"{1e3 * s:.1f}"


def progress_line(row: dict, seconds: float) -> str:
    parts = [f"{row['case']:>44} {row['size']:>6}"]
    for mode in MODES:
        for peer in PEERS:
            r = ratio(row, mode, peer)
            if r is not None:
                parts.append(f"{mode}/{peer} {r:5.2f}")
    return "  ".join(parts) + f"   ({seconds:.1f} s)"


def _geomean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def _value_gap(row: dict, mode: str, peer: str) -> float | None:
    meta = row.get(mode, {})
    if "jaxloss" not in meta or peer not in meta:
        return None
    a, b = meta["jaxloss"]["value"], meta[peer]["value"]
    return abs(a - b) / max(abs(b), 1e-12)


def same_hlo(row: dict, mode: str, peer: str = "optax") -> bool | None:
    """Whether jaxloss and the peer compiled to the same HLO opcode multiset (None: unknown)."""
    meta = row.get(mode, {})
    a = meta.get("jaxloss", {}).get("hlo", {}).get("opcodes_digest")
    b = meta.get(peer, {}).get("hlo", {}).get("opcodes_digest")
    return None if a is None or b is None else a == b


def _kernels(row: dict, mode: str) -> str:
    meta = row.get(mode, {})
    ours = meta.get("jaxloss", {}).get("hlo", {}).get("kernels")
    if ours is None:
        return "—"
    theirs = meta.get("optax", {}).get("hlo", {}).get("kernels")
    if theirs is None:
        return str(ours)
    return f"{ours} / {theirs}" + (" =" if same_hlo(row, mode) else "")


def slow_rows(results: dict) -> list[tuple[dict, str, float]]:
    out = []
    for row in results["rows"]:
        for mode in MODES:
            r = ratio(row, mode, "optax")
            if r is not None and r > SLOW:
                out.append((row, mode, r))
    return out


def _header(env: dict) -> list[str]:
    mode = ("`--quick` run (medium size, 10 repeats, fused-vs-naive speed at a reduced N)"
            if env["mode"] == "quick" else f"full run ({', '.join(env['sizes'])} sizes, {env['repeats']} repeats)")
    torch = env["torch"] or f"not measured ({env['torch_note']})"
    return [
        f"# jaxloss benchmarks: {env['device_kind']} ({env['platform']})",
        "",
        f"* {mode}: `{env['command'].strip()}`",
        f"* date {env['date']}; CPU {env['cpu']} ({env['cpu_count']} cores visible, shared with other jobs"
        + (f"; load average {env['load_average'][0]} at the start" if env.get("load_average") else "") + ")",
        *[f"* rows re-measured after a code change (marked † in the table), {r}" for r in env.get("reruns", [])],
        f"* jax {env['jax']} (jaxlib {env['jaxlib']}), optax {env['optax']}, torch {torch}"
        + (f" ({env['torch_threads']} threads, eager)" if env["torch"] else "")
        + f", numpy {env['numpy']}, Python {env['python']}",
        "* ratios are jaxloss time / peer time, medians of alternating warm repeats after compilation;"
        " **< 1 means jaxloss is faster**; bold marks > 1.10 against optax. Memory is"
        " `memory_analysis()` temp + output bytes of the compiled JAX function (forward+backward);"
        " kernels counts the entry-computation launches of the optimised HLO, `=` marks a program"
        " identical to optax's in its opcode multiset (then any ratio away from 1 is noise).",
        "",
    ]


def _issue6(issue6: dict, platform: str = "") -> list[str]:
    if not issue6:
        return []
    lines = ["## Issue 6 figures", "", "| figure | measured | target | |", "| --- | --- | --- | --- |"]

    def add(name: str, value: str, target: str, ok: bool | None) -> None:
        lines.append(f"| {name} | {value} | {target} | {'' if ok is None else ('pass' if ok else 'FAIL')} |")

    ce = issue6.get("ce")
    if ce:
        for mode in MODES:
            m = ce[mode]
            add(f"`softmax_cross_entropy_with_integer_labels` / optax, {mode}, N={ce['n']}, V={ce['v']} f32",
                f"{m['ratio']:.3f} ({_ms(m['jaxloss']['median_s'])} vs {_ms(m['optax']['median_s'])} ms)",
                "<= 1.05", m["ratio"] <= 1.05)
    fs = issue6.get("fused_speed")
    if fs:
        reduced = "" if fs["n"] == 8192 else " (reduced N: `--quick`)"
        add(f"`linear_softmax_cross_entropy` / naive value_and_grad, N={fs['n']}, D={fs['d']}, V={fs['v']} "
            f"f32, chunk {fs['chunk_size']}{reduced}",
            f"{fs['ratio']:.3f} ({_ms(fs['fused']['median_s'])} vs {_ms(fs['naive']['median_s'])} ms)",
            "<= 1.25", fs["ratio"] <= 1.25)
    mem = issue6.get("memory", {})
    if "ratio_net" in mem:
        add("fused / naive memory, N=8192, D=512, V=32768 f32 (net of the weight gradient)",
            f"{mem['ratio_net']:.4f} ({_fmt_bytes(mem['fused']['net_bytes'])} vs "
            f"{_fmt_bytes(mem['naive']['net_bytes'])})", "<= 0.10", mem["ratio_net"] <= 0.10)
        add("fused / naive memory, same shape, temp + output incl. weight gradient",
            f"{mem['ratio_total']:.4f} ({_fmt_bytes(mem['fused']['total_bytes'])} vs "
            f"{_fmt_bytes(mem['naive']['total_bytes'])})", "—", None)
        add("fused memory growth when V doubles (65536), chunk fixed, net",
            f"{100 * mem['growth_2v_net']:+.1f}% ({_fmt_bytes(mem['fused_2v']['net_bytes'])})",
            "< +10%", mem["growth_2v_net"] < 0.10)
    for key, label in (("gemma_fused", "fused"), ("gemma_naive", "naive")):
        g = mem.get(key)
        if g is None:
            continue
        if "total_bytes" in g:
            add(f"Gemma-2 2B shape (N=8192, D=2304, V=256000, bf16), {label}, compile only",
                f"temp+output {_fmt_bytes(g['total_bytes'])}, net {_fmt_bytes(g['net_bytes'])} "
                f"(compiled in {g['compile_s']:.1f} s)", "report", None)
        else:
            add(f"Gemma-2 2B shape, {label}", f"lower() only ({g['lowered_ops']} HLO lines): {g['error']}",
                "report", None)
    if "gemma_ratio_net" in mem:
        add("Gemma-2 2B shape fused / naive (net)", f"{mem['gemma_ratio_net']:.4f}", "—", None)
    g = mem.get("gemma_fused", {})
    if platform == "cpu" and "temp_bytes" in g:
        f32_weight = g["d"] * g["v"] * 4
        lines += ["", f"At the Gemma shape on CPU, {_fmt_bytes(f32_weight)} of the fused path's "
                  f"{_fmt_bytes(g['temp_bytes'])} temp is one float32 copy of the whole bfloat16 `[D, V]` weight: "
                  "XLA:CPU computes bf16 dots in float32 and hoists that conversion out of the chunk loop. "
                  "Accelerators multiply bfloat16 natively, so the figure to expect there is the rest."]
    bw = issue6.get("bandwidth")
    if bw:
        lines += ["", f"GPU bandwidth (device-to-device copy: {bw['copy_bytes_per_s'] / 1e9:.0f} GB/s):", ""]
        for key, value in bw.items():
            if key != "copy_bytes_per_s":
                lines.append(f"* cross-entropy {key}: {value['bytes_per_s'] / 1e9:.0f} GB/s = "
                             f"{value['fraction_of_copy']:.2f} of copy")
    return lines + [""]


def markdown(results: dict) -> str:
    env, rows = results["environment"], results["rows"]
    lines = _header(env) + _issue6(results.get("issue6", {}), env.get("platform", ""))
    if rows:
        lines += ["## Summary", ""]
        for peer in PEERS:
            for mode in MODES:
                rs = [ratio(r, mode, peer) for r in rows]
                rs = [r for r in rs if r is not None]
                g = _geomean(rs)
                if g is not None:
                    lines.append(f"* vs {peer}, {mode}: geometric mean {g:.2f} over {len(rs)} rows, "
                                 f"faster in {sum(r < 1 for r in rs)}, > 1.10 in {sum(r > SLOW for r in rs)}")
        lines += ["", "## Losses", "",
                  "| loss | size | shape | fwd / optax | f+b / optax | fwd / torch | f+b / torch "
                  "| jaxloss f+b ms | f+b memory jaxloss (/ optax) | f+b kernels jaxloss / optax "
                  "| compile s jaxloss / optax |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row in rows:
            fb = row["fwd+bwd"]
            ours = fb.get("jaxloss", {"median_s": float("nan"), "compile_s": float("nan")})
            mem = _fmt_bytes(ours.get("memory_bytes"))
            if "optax" in fb and ours.get("memory_bytes") and fb["optax"].get("memory_bytes"):
                mem += f" ({ours['memory_bytes'] / fb['optax']['memory_bytes']:.2f})"
            compile_s = f"{ours['compile_s']:.2f}"
            if "optax" in fb:
                compile_s += f" / {fb['optax']['compile_s']:.2f}"
            lines.append(
                f"| `{row['case']}`{' †' if row.get('rerun') else ''} | {row['size']} | {'x'.join(map(str, row['shape']))} | "
                f"{_fmt_ratio(ratio(row, 'fwd', 'optax'), True)} | {_fmt_ratio(ratio(row, 'fwd+bwd', 'optax'), True)} | "
                f"{_fmt_ratio(ratio(row, 'fwd', 'torch'))} | {_fmt_ratio(ratio(row, 'fwd+bwd', 'torch'))} | "
                f"{_ms(ours['median_s'])} | {mem} | {_kernels(row, 'fwd+bwd')} | {compile_s} |")
        skipped = [f"`{r['case']}` {r['size']}: " + "; ".join(r["skipped"]) for r in rows if r.get("skipped")]
        if skipped:
            lines += ["", "Not run (would not fit): " + ". ".join(skipped) + "."]
        notes = sorted({(r["case"], r["note"]) for r in rows if r["note"]})
        if notes:
            lines += ["", "Argument adaptations: " + "; ".join(f"`{c}`: {n}" for c, n in notes) + "."]
        gaps = []
        for row in rows:
            for peer in PEERS:
                gap = _value_gap(row, "fwd", peer)
                if gap is not None and gap > 1e-3:
                    gaps.append(f"`{row['case']}` {row['size']} vs {peer}: {gap:.1e}")
        lines += ["", "Values agree with the peer to 1e-3 relative in every row"
                  + ("" if not gaps else " except (different definitions, see notes): " + "; ".join(gaps)) + "."]
    slow = slow_rows(results)
    lines += ["", "## Slower than optax by more than 10%", ""]
    if not slow:
        lines.append("None in this run.")
    explanations = results.get("explanations", {})
    for row, mode, r in slow:
        if same_hlo(row, mode):
            why = ("same optimised program as optax (identical HLO opcode multiset and kernel count): "
                   "timing noise of the shared machine.")
        else:
            why = explanations.get(row["case"], "(no explanation recorded; timing noise unless it repeats)")
        lines.append(f"* `{row['case']}` {row['size']} {mode}: {r:.2f} "
                     f"(min-of-repeats ratio {_min_ratio(row, mode):.2f}). {why}")
    return "\n".join(lines) + "\n"


def chart(results: dict, path: str) -> None:
    """Bars of jaxloss / peer per loss at the largest size measured: forward and forward+backward."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    from matplotlib import ticker  # pylint: disable=import-outside-toplevel

    rows = results["rows"]
    if not rows:
        return
    order = ("small", "medium", "large")
    largest: dict[str, dict] = {}
    for row in rows:
        if row["case"] not in largest or order.index(row["size"]) > order.index(largest[row["case"]]["size"]):
            largest[row["case"]] = row
    names = list(largest)
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.3 * len(names) + 1.8), sharey=True)
    height = 0.4
    for ax, mode in zip(axes, MODES):
        for k, (peer, colour) in enumerate((("optax", "#1f77b4"), ("torch", "#ff7f0e"))):
            ys, vals = [], []
            for i, name in enumerate(names):
                r = ratio(largest[name], mode, peer)
                if r is not None:
                    ys.append(i + (k - 0.5) * height)
                    vals.append(min(max(r, 1e-2), 1e2))
            if vals:
                # Bars grow from 1 (parity) to the ratio, left for faster, right for slower.
                ax.barh(ys, [v - 1.0 for v in vals], left=1.0, height=height, color=colour, label=f"vs {peer}")
        ax.axvline(1.0, color="k", lw=1)
        ax.axvline(SLOW, color="r", lw=0.8, ls="--", label="1.10")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.FixedLocator([0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100]))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_title("forward" if mode == "fwd" else "forward + backward (value_and_grad)", fontsize=10)
        ax.set_xlabel("jaxloss time / peer time (< 1: jaxloss faster)")
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_yticks(range(len(names)))
    axes[0].set_yticklabels([f"{n} ({largest[n]['size']})" for n in names], fontsize=8)
    axes[0].invert_yaxis()
    env = results["environment"]
    fig.suptitle(f"jaxloss vs optax and torch on {env['device_kind']} ({env['mode']} run, {env['date']})",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
