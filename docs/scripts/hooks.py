"""MkDocs hooks for the jaxloss docs (``hooks:`` in ``mkdocs.yml``; no plugin to install).

``on_pre_build`` regenerates the figures in ``docs/figures/`` from the library's
code by running ``docs/scripts/make_figures.py``, before MkDocs collects the
pages, so every build shows the current functions. Figures are regenerated only
when a figure is missing or older than the figure script or a source file of
``jaxloss``, so that ``mkdocs serve`` does not rebuild forever on its own output.
"""

from __future__ import annotations

import logging
import re
import pathlib
import runpy
import time

log = logging.getLogger("mkdocs.hooks.jaxloss")

_ROOT = pathlib.Path(__file__).resolve().parents[2]
_SCRIPT = _ROOT / "docs" / "scripts" / "make_figures.py"


def _stale(out_dir: pathlib.Path, names: list[str]) -> bool:
    figures = [out_dir / n for n in names]
    if not figures or not all(f.exists() for f in figures):
        return True
    sources = [_SCRIPT, *(_ROOT / "jaxloss").glob("*.py")]
    newest_source = max(s.stat().st_mtime for s in sources)
    return min(f.stat().st_mtime for f in figures) < newest_source


def on_pre_build(config, **kwargs) -> None:
    module = runpy.run_path(str(_SCRIPT), run_name="make_figures")
    out_dir = pathlib.Path(config["docs_dir"]) / "figures"
    if not _stale(out_dir, module["FIGURES"]):
        log.info("jaxloss figures are up to date")
        return
    start = time.perf_counter()
    module["main"](out_dir)
    log.info("jaxloss figures written to %s in %.1f s", out_dir, time.perf_counter() - start)


_FIGURE = re.compile(r"\{\{ figure:(\w+) \}\}")


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    """Replaces ``{{ figure:<example> }}`` with the committed copies of that example's figures."""

    def figures(match: re.Match) -> str:
        stem = match.group(1)
        found = sorted((pathlib.Path(config["docs_dir"]) / "figures" / "examples").glob(f"{stem}*.png"))
        if not found:
            return ("No copy of this figure is committed to the docs; run the command above to "
                    "produce it.")
        return "\n\n".join(f"![{f.stem}](../figures/examples/{f.name})" for f in found)

    return _FIGURE.sub(figures, markdown)
