"""Griffe extension: render the reStructuredText bits of jaxloss docstrings as Markdown.

jaxloss docstrings are Google style, but their formulas use reStructuredText
(``.. math::`` blocks and ``:math:`` roles) and their cross-references use
``:func:`` / ``:class:`` / ``:mod:`` / ``:data:`` roles. mkdocstrings renders
docstrings as Markdown, where those would show up as literal text or as code
blocks. This extension rewrites them, in memory only, before the docstrings are
parsed:

* ``.. math::`` followed by an indented block (or text on the same line) becomes
  a ``\\[ ... \\]`` display block, which ``pymdownx.arithmatex`` (generic mode)
  hands to MathJax;
* ``:math:`x``` becomes ``\\( x \\)``;
* reStructuredText simple tables (``====  ====`` borders) become Markdown
  tables;
* the ``Example:`` section title becomes ``Examples:``, the title griffe's
  Google parser reads as doctest examples (otherwise ``>>>`` lines would be
  rendered as nested block quotes);
* an ``Args`` entry documenting several parameters at once (``rtol, atol:``)
  becomes one entry per parameter;
* ``:func:`name``` becomes a cross-reference to the documented object when
  ``name`` (or its last dotted component) is one of the objects rendered in
  ``docs/api/*.md``, else inline code.

The library's source is never modified. Loaded by mkdocstrings through
``mkdocs.yml`` (``extensions: - docs/scripts/griffe_rst.py:RstToMarkdown``).
"""

from __future__ import annotations

import pathlib
import re
from typing import Any

import griffe

_API_DIR = pathlib.Path(__file__).resolve().parent.parent / "api"
_DIRECTIVE = re.compile(r"^:::\s+(jaxloss(?:\.\w+)+)\s*$", re.MULTILINE)
_MATH_ROLE = re.compile(r":math:`([^`]+)`", re.DOTALL)
_XREF_ROLE = re.compile(r":(?:func|class|mod|data|meth|attr|obj):`~?([^`]+)`")


def documented_objects(api_dir: pathlib.Path = _API_DIR) -> dict[str, str]:
    """Maps short and full names to the identifiers rendered in the API pages."""
    targets: dict[str, str] = {}
    for page in sorted(api_dir.glob("*.md")):
        for path in _DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            targets.setdefault(path, path)
            targets.setdefault(path.rsplit(".", 1)[-1], path)
            if path.count(".") >= 2:  # jaxloss.<family>.name is also reachable as jaxloss.name
                targets.setdefault("jaxloss." + path.rsplit(".", 1)[-1], path)
    return targets


def _math_blocks(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if not stripped.startswith(".. math::"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(stripped)]
        body: list[str] = []
        first = stripped[len(".. math::"):].strip()
        if first:
            body.append(first)
        i += 1
        # The block is every following line that is blank or indented deeper than the directive.
        while i < len(lines) and (not lines[i].strip() or
                                  len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
            body.append(lines[i].strip())
            i += 1
        while body and not body[-1]:
            body.pop()
        while body and not body[0]:
            body.pop(0)
        if out and out[-1].strip():
            out.append("")
        out.append(indent + "\\[")
        out.extend(indent + b for b in body if b)
        out.append(indent + "\\]")
        if i < len(lines) and lines[i].strip():
            out.append("")
    return "\n".join(out)


_BORDER = re.compile(r"^(\s*)=+(?: +=+)+\s*$")


def _simple_tables(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _BORDER.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent = match.group(1)
        border = lines[i]
        starts = [m.start() for m in re.finditer(r"=+", border)]
        borders = [i]
        j = i + 1
        while j < len(lines) and len(borders) < 3:
            if lines[j].strip() == border.strip():
                borders.append(j)
                if len(borders) == 2 and (j + 1 >= len(lines) or not lines[j + 1].strip()):
                    break  # a table without a header: two borders
            elif not lines[j].strip():
                break
            j += 1
        if len(borders) < 2:
            out.append(lines[i])
            i += 1
            continue

        def cells(row: str) -> list[str]:
            bounds = starts[1:] + [None]
            return [row[a:b].strip() if len(row) > a else "" for a, b in zip(starts, bounds)]

        def rows(block: list[str]) -> list[list[str]]:
            result: list[list[str]] = []
            for row in block:
                parts = cells(row)
                if result and not parts[0]:  # continuation line of the previous row
                    result[-1] = [(a + " " + b).strip() for a, b in zip(result[-1], parts)]
                else:
                    result.append(parts)
            return result

        if len(borders) == 3:
            header = rows(lines[borders[0] + 1:borders[1]])[0]
            body = rows(lines[borders[1] + 1:borders[2]])
            end = borders[2]
        else:
            header = [""] * len(starts)
            body = rows(lines[borders[0] + 1:borders[1]])
            end = borders[1]
        table = [header, ["---"] * len(starts), *body]
        out.extend(indent + "| " + " | ".join(row) + " |" for row in table)
        i = end + 1
    return "\n".join(out)


_SECTION = re.compile(r"^(\s*)(\w[\w ]*):\s*$")
_MULTI_ARG = re.compile(r"^(\s+)(\*{0,2}\w+(?:,\s*\*{0,2}\w+)+):\s+(.*)$")


def _sections(text: str) -> str:
    lines = text.split("\n")
    section = None
    for k, line in enumerate(lines):
        header = _SECTION.match(line)
        if header and not line.startswith((" ", "\t")):
            section = header.group(2)
            if section == "Example":
                lines[k] = "Examples:"
            continue
        if section in ("Args", "Arguments", "Parameters"):
            multi = _MULTI_ARG.match(line)
            if multi:
                indent, names, desc = multi.groups()
                lines[k] = "\n".join(f"{indent}{name.strip()}: {desc}" for name in names.split(","))
    text = "\n".join(lines)
    # reStructuredText literal-block markers: "Run::" -> "Run:", "text ::" -> "text".
    return re.sub(r"(?m)^(?!\s*\.\.)(.*?)\s?::[ \t]*$", lambda m: m.group(1) + (":" if m.group(1)[-1:].isalnum() or m.group(1)[-1:] in "`)" else ""), text)


def rst_to_markdown(text: str, targets: dict[str, str]) -> str:
    """Converts the reStructuredText constructs jaxloss docstrings use into Markdown."""
    text = _sections(text)
    text = _math_blocks(text)
    text = _simple_tables(text)
    text = _MATH_ROLE.sub(lambda m: "\\(" + m.group(1) + "\\)", text)

    def xref(match: re.Match[str]) -> str:
        name = match.group(1)
        target = targets.get(name) or targets.get(name.rsplit(".", 1)[-1]) if not name.startswith("_") else None
        if target is not None and name.rsplit(".", 1)[-1] == target.rsplit(".", 1)[-1]:
            return f"[`{name}`][{target}]"
        return f"`{name}`"

    return _XREF_ROLE.sub(xref, text)


class RstToMarkdown(griffe.Extension):
    """Rewrites ``.. math::``, ``:math:`` and cross-reference roles in every docstring."""

    def __init__(self) -> None:
        super().__init__()
        self._targets = documented_objects()

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            if _TEMPLATE_FIELD.search(obj.docstring.value):
                obj.docstring.value = _runtime_docstring(obj.path) or obj.docstring.value
            obj.docstring.value = rst_to_markdown(obj.docstring.value, self._targets)


# A docstring completed at import time (``fn.__doc__ = fn.__doc__.replace("{args}", ...)``, shared
# argument text of a family): griffe reads the source, so such a docstring is taken from the object.
_TEMPLATE_FIELD = re.compile(r"^\s*\{[a-z_]+\}\s*$", re.MULTILINE)


def _runtime_docstring(path: str) -> str | None:
    import importlib
    import inspect

    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return inspect.getdoc(obj)
    return None
