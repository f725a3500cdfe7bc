"""MkDocs hooks for the jaxloss docs (``hooks:`` in ``mkdocs.yml``; no plugin to install).

``on_pre_build`` regenerates the figures in ``docs/figures/`` from the library's
code by running ``docs/scripts/make_figures.py``, before MkDocs collects the
pages, so every build shows the current functions. Figures are regenerated only
when a figure is missing or older than the figure script or a source file of
``jaxloss``, so that ``mkdocs serve`` does not rebuild forever on its own output.

``on_config`` adds every page of ``docs/examples/`` and ``docs/api/`` that the
nav of ``mkdocs.yml`` does not list yet to its section.

``on_files`` bundles the MathJax renderer from the ``django-static-mathjax``
package (installed by the ``docs`` extra) into the site under
``javascripts/mathjax/``, so formulas render with no network.

``on_page_markdown`` fills ``{{ figure:<example> }}`` with an example's committed
figures and ``{{ families }}`` with the table of loss families counted from the
registry.

``on_post_build`` checks the built site (:func:`site_problems`): no page is empty
or holds a placeholder, and no page loads a script or stylesheet from another
host. A problem fails the build.
"""

from __future__ import annotations

import collections
import html.parser
import logging
import re
import pathlib
import runpy
import time
import urllib.parse

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

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


# --------------------------------------------------------------------- navigation
def _title(page: pathlib.Path) -> str:
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return page.stem.replace("_", " ").capitalize()


def _nav_pages(items) -> set[str]:
    found: set[str] = set()
    for item in items or []:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            found |= _nav_pages(value)
        elif isinstance(value, str):
            found.add(value)
    return found


def on_config(config, **kwargs):
    """Adds to the "Examples" and "API reference" sections every page of ``docs/examples/`` and
    ``docs/api/`` that ``mkdocs.yml`` does not list yet (titled by its first heading), so a new
    example or family page is never left out of the navigation."""
    docs_dir = pathlib.Path(config["docs_dir"])
    listed = _nav_pages(config["nav"])
    for section, folder in (("Examples", "examples"), ("API reference", "api")):
        entries = next((item[section] for item in config["nav"] or []
                        if isinstance(item, dict) and section in item), None)
        if entries is None:
            continue
        for page in sorted((docs_dir / folder).glob("*.md")):
            uri = f"{folder}/{page.name}"
            if uri not in listed:
                entries.append({_title(page): uri})
                log.info("nav: added %s", uri)
    return config


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

    return _fill_families(_FIGURE.sub(figures, markdown), config)


# --------------------------------------------------------------------- MathJax, bundled
# The parts of MathJax 3's es5 build the site needs: the TeX-to-CHTML component,
# the TeX extensions it autoloads, its fonts, and the menu and accessibility
# components it loads on demand (all resolved relative to the component's URL).
MATHJAX_DIR = "javascripts/mathjax"
_MATHJAX_PARTS = ("tex-chtml.js", "input/tex/extensions", "output/chtml/fonts/woff-v2", "ui", "a11y")


def mathjax_root() -> pathlib.Path:
    """The ``es5`` folder of the installed MathJax package, or a build error saying how to get it."""
    try:
        import mathjax  # django-static-mathjax: MathJax 3's files as package data
    except ImportError:
        raise PluginError("the docs bundle MathJax from the 'django-static-mathjax' package: "
                          'pip install -e ".[docs]"') from None
    root = pathlib.Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (root / "tex-chtml.js").exists():
        raise PluginError(f"no MathJax es5 build under {root}; reinstall django-static-mathjax")
    return root


def on_files(files, config, **kwargs):
    root = mathjax_root()
    for part in _MATHJAX_PARTS:
        path = root / part
        for source in sorted([path] if path.is_file() else path.rglob("*")):
            if source.is_file():
                uri = f"{MATHJAX_DIR}/{source.relative_to(root).as_posix()}"
                files.append(File.generated(config, uri, abs_src_path=str(source)))
    return files


# --------------------------------------------------------------------- family table
_FAMILIES = re.compile(r"\{\{ families \}\}")


def families_table(docs_dir: pathlib.Path) -> str:
    """Markdown table: each family module, its number of registered losses, its API page."""
    import jaxloss

    counts: collections.Counter[str] = collections.Counter()
    for name in jaxloss.available(aliases=False):
        counts[jaxloss.get(name).__module__.rpartition(".")[2]] += 1
    rows = ["| family | losses | reference |", "| --- | ---: | --- |"]
    for family, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        page = docs_dir / "api" / f"{family}.md"
        link = f"[`jaxloss.{family}`](api/{family}.md)" if page.exists() else f"`jaxloss.{family}`"
        rows.append(f"| {family.replace('_', ' ')} | {count} | {link} |")
    rows.append(f"| **all** | **{sum(counts.values())}** | [API reference](api/index.md) |")
    return "\n".join(rows)


def _fill_families(markdown: str, config) -> str:
    if not _FAMILIES.search(markdown):
        return markdown
    return _FAMILIES.sub(lambda _: families_table(pathlib.Path(config["docs_dir"])), markdown)


# --------------------------------------------------------------------- site checks
_PLACEHOLDER = re.compile(r"\b(TODO|TBD|FIXME|XXX)\b|lorem ipsum", re.IGNORECASE)
_MIN_TEXT = 80  # characters of text an article needs to count as a page


class _PageScan(html.parser.HTMLParser):
    """Collects the external resources a page loads and the text of its article."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.loads: list[str] = []
        self.text: list[str] = []
        self._depth = 0  # nesting inside <article>
        self._skip = 0   # inside <script>/<style>

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.loads.append(a["src"])
        if tag == "link" and a.get("href"):
            rel = (a.get("rel") or "").lower().split()
            if {"stylesheet", "preload", "modulepreload", "preconnect", "icon"} & set(rel):
                self.loads.append(a["href"])
        if tag in ("img", "iframe", "source", "embed") and a.get("src"):
            self.loads.append(a["src"])
        if tag == "article":
            self._depth += 1
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag == "article" and self._depth:
            self._depth -= 1
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if self._depth and not self._skip:
            self.text.append(data)


def _external(url: str) -> bool:
    parsed = urllib.parse.urlparse(url)
    return bool(parsed.netloc) or parsed.scheme not in ("", "data")


def page_problems(name: str, page_html: str) -> list[str]:
    """What is wrong with one built HTML page (empty, a placeholder, a resource from another host)."""
    scan = _PageScan()
    scan.feed(page_html)
    problems = [f"{name}: loads {url} from another host" for url in scan.loads if _external(url)]
    text = " ".join(" ".join(scan.text).split())
    if name != "404.html":
        # The text of the article minus headings' permalink signs.
        body = text.replace("¶", "").strip()
        if len(body) < _MIN_TEXT:
            problems.append(f"{name}: the page is empty or nearly so ({len(body)} characters of text)")
        found = _PLACEHOLDER.search(body)
        if found:
            problems.append(f"{name}: holds the placeholder {found.group(0)!r}")
    return problems


def site_problems(site_dir: pathlib.Path) -> list[str]:
    """Every problem of every HTML page under ``site_dir``."""
    problems: list[str] = []
    for page in sorted(site_dir.rglob("*.html")):
        problems += page_problems(page.relative_to(site_dir).as_posix(), page.read_text(encoding="utf-8"))
    return problems


def on_post_build(config, **kwargs) -> None:
    problems = site_problems(pathlib.Path(config["site_dir"]))
    if problems:
        raise PluginError("the built site has problems:\n  " + "\n  ".join(problems))
