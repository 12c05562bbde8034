"""MkDocs hook: the configuration reference, generated from the config dataclasses.

``docs/configuration.md`` holds a marker line, ``<!-- config-reference -->``; at build
time this hook replaces it with one table per section of :class:`cpc.config.Config`
(field, type, default, allowed range, and the field's docstring), then, for ``model``
and ``data``, one table per registered modality of the keys its recipe owns
(:attr:`cpc.config.Modality.model_fields` / ``data_fields``). Nothing is listed by hand:
a field added to a section or to a recipe appears on the next build, a section added to
``Config`` and a modality registered by :mod:`cpc.data.registry` get their own tables.

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
import types
import typing
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


def load_ranges() -> Any:
    """``rule(section, field) -> Range | None``: a field's own rule, else ``RULES``'s."""
    try:
        module = importlib.import_module("cpc.config.ranges")
    except ImportError:
        return lambda section, f: None
    rule_of = getattr(module, "rule_of", None)
    if rule_of is not None:
        return rule_of
    rules = getattr(module, "RULES", {})
    return lambda section, f: rules.get(f"{section}.{f.name}")


def load_modalities() -> list[Any]:
    """The registered modalities (:class:`cpc.config.Modality`), registering the shipped
    ones first (:mod:`cpc.data.registry`); [] for a package without them.
    """
    try:
        importlib.import_module("cpc.data.registry")
        config = importlib.import_module("cpc.config")
    except ImportError:
        return []
    if not hasattr(config, "known_modalities"):
        return []
    return [config.modality(name) for name in config.known_modalities()]


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


def _default(f: dataclasses.Field[Any], section: str) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if dataclasses.is_dataclass(value):
        return "see its section"
    if value is None:
        return "builder's default" if section == "model" else "`None`"
    return f"`{value!r}`"


def _type(f: dataclasses.Field[Any], hints: dict[str, Any] | None = None) -> str:
    """The field's type as written, with aliases (``Norm``) resolved when ``hints`` has it."""
    if hints and f.name in hints:
        return f"`{_hint(hints[f.name])}`"
    text = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", repr(f.type))
    return f"`{text}`"


def _hint(hint: Any) -> str:
    """``Literal['a', 'b'] | None``, ``list[int]``: a resolved type hint as one writes it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_hint(a) for a in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if origin is not None:
        name = getattr(origin, "__name__", repr(origin))
        return f"{name}[{', '.join(_hint(a) for a in args)}]"
    if hint is type(None):
        return "None"
    return getattr(hint, "__name__", repr(hint))


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


#: The field of a section that holds the modality's own keys (listed per modality).
OWN_FIELDS = "modality_fields"


def _table(section: str, kind: type, rule: Any) -> list[str]:
    """One table: a row per field of dataclass ``kind``, keys written ``section.field``."""
    lines = [
        "| field | type | default | allowed | what |",
        "| --- | --- | --- | --- | --- |",
    ]
    docs = field_docs(kind)
    try:
        hints = typing.get_type_hints(kind)
    except (NameError, TypeError):  # an annotation that does not resolve: show it as written
        hints = {}
    for f in dataclasses.fields(kind):
        if f.name == OWN_FIELDS:
            continue
        found = rule(section, f)
        allowed = _cell(found.describe()) if found is not None else ""
        lines.append(
            f"| `{section}.{f.name}` | {_cell(_type(f, hints))} | {_cell(_default(f, section))} "
            f"| {allowed} | {_cell(docs.get(f.name, ''))} |"
        )
    return [*lines, ""]


def _own_tables(section: str, modalities: list[Any], rule: Any) -> list[str]:
    """The keys each modality owns in ``section``, one table per modality that has any."""
    lines: list[str] = []
    for entry in modalities:
        kind = getattr(entry, f"{section}_fields", None)
        if kind is None or not dataclasses.fields(kind):
            continue
        lines += [f"### `{section}` keys of `{entry.name}`", ""]
        lines += [f"`{kind.__name__}`: {_first_line(kind.__doc__)}", ""]
        lines += _table(section, kind, rule)
    return lines


def render() -> str:
    """The Markdown of the whole reference: one table per section of ``Config``, and one
    per modality of the keys it owns in that section.
    """
    classes = load_config_classes()
    rule = load_ranges()
    modalities = load_modalities()
    root = classes["Config"]
    lines: list[str] = []
    for section in dataclasses.fields(root):
        kind = _section_type(section, classes)
        lines += [f"## `{section.name}`", ""]
        if kind is None:
            lines += [f"{_type(section)}: not a dataclass; no table.", ""]
            continue
        lines += [f"`{kind.__name__}`: {_first_line(kind.__doc__)}", ""]
        owned = OWN_FIELDS in {f.name for f in dataclasses.fields(kind)}
        if owned and modalities:
            lines += [
                "Keys common to every modality; the keys each modality owns follow, and "
                "sit flat beside these in YAML.",
                "",
            ]
        lines += _table(section.name, kind, rule)
        if owned:
            lines += _own_tables(section.name, modalities, rule)
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
