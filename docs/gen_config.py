"""MkDocs hook: the configuration reference, generated from the config dataclasses.

``docs/configuration.md`` holds a marker line, ``<!-- config-reference -->``; at build
time this hook replaces it with one table per section of :class:`cpc.config.Config`
(field, type, default, allowed range, and the field's docstring). Nothing is listed by
hand: a field added to a section appears on the next build, and a section added to
``Config`` gets its own table.

The field docstrings (a string literal right below a field, as in the config module)
are not kept by Python at run time, so they are read from the class's source with
:mod:`ast`. Run ``python docs/gen_config.py`` to print the generated Markdown.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import itertools
import textwrap
from typing import Any

MARKER = "<!-- config-reference -->"

# Names that stay importable from cpc.config whatever module defines them.
SECTION_NAMES = ("Config", "ModelConfig", "DataConfig", "OptimConfig", "RunConfig")


def load_config_classes() -> dict[str, type]:
    """The config dataclasses, by name, as ``cpc.config`` exports them."""
    module = importlib.import_module("cpc.config")
    found = {name: getattr(module, name) for name in SECTION_NAMES if hasattr(module, name)}
    if "Config" not in found:
        raise RuntimeError("cpc.config has no Config: cannot generate the reference")
    return found


def load_ranges() -> dict[str, Any]:
    """The range rules (``"section.field" -> Range``) if the package has them, else {}."""
    for name in ("cpc.config.ranges",):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        rules = getattr(module, "RULES", None)
        if isinstance(rules, dict):
            return rules
    return {}


def field_docs(cls: type) -> dict[str, str]:
    """Docstrings of a dataclass's fields: the string literal right after each field."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass's docstring wins
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0]
        assert isinstance(body, ast.ClassDef)
        statements = body.body
        for here, after in itertools.pairwise(statements):
            if (
                isinstance(here, ast.AnnAssign)
                and isinstance(here.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[here.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if dataclasses.is_dataclass(value):
        return "see its section"
    if value is None:
        return "builder's default"
    return f"`{value!r}`"


def _type(f: dataclasses.Field[Any]) -> str:
    text = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", repr(f.type))
    return f"`{text}`"


def _cell(text: str) -> str:
    """One Markdown table cell: one line, Sphinx roles and ``double`` backticks as code."""
    text = " ".join(text.split())
    # :class:`~a.b.C` / :mod:`a.b` -> `C` / `a.b` (the docstrings are written for Sphinx)
    for role in (":class:", ":mod:", ":func:", ":meth:", ":attr:", ":data:"):
        text = text.replace(role + "`~", "`").replace(role, "")
    text = text.replace("``", "`")
    # escape pipes outside code spans only: inside them the table parser leaves them alone
    parts = text.split("`")
    return "`".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def _first_line(doc: str | None) -> str:
    return _cell(inspect.cleandoc(doc).split("\n\n")[0]) if doc else ""


def render() -> str:
    """The Markdown of the whole reference: one table per section of ``Config``."""
    classes = load_config_classes()
    ranges = load_ranges()
    root = classes["Config"]
    lines: list[str] = []
    for section in dataclasses.fields(root):
        kind = _section_type(section, classes)
        lines += [f"## `{section.name}`", ""]
        if kind is None:
            lines += [f"{_type(section)}: not a dataclass; no table.", ""]
            continue
        lines += [f"`{kind.__name__}`: {_first_line(kind.__doc__)}", ""]
        lines += [
            "| field | type | default | allowed | what |",
            "| --- | --- | --- | --- | --- |",
        ]
        docs = field_docs(kind)
        for f in dataclasses.fields(kind):
            rule = ranges.get(f"{section.name}.{f.name}")
            allowed = _cell(rule.describe()) if rule is not None else ""
            lines.append(
                f"| `{section.name}.{f.name}` | {_cell(_type(f))} | {_cell(_default(f))} "
                f"| {allowed} | {_cell(docs.get(f.name, ''))} |"
            )
        lines.append("")
    return "\n".join(lines)


def _section_type(section: dataclasses.Field[Any], classes: dict[str, type]) -> type | None:
    """The dataclass of one section of ``Config``, from its default or its annotation."""
    if section.default_factory is not dataclasses.MISSING:
        value = section.default_factory()
        if dataclasses.is_dataclass(value):
            return type(value)
    name = section.type if isinstance(section.type, str) else getattr(section.type, "__name__", "")
    kind = classes.get(name)
    return kind if kind is not None and dataclasses.is_dataclass(kind) else None


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """MkDocs hook: replace the marker of the configuration page with the tables."""
    if MARKER in markdown:
        return markdown.replace(MARKER, render())
    return markdown


if __name__ == "__main__":
    print(render())
