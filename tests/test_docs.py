"""The README and the docs site stay true: links resolve, commands parse, the site builds.

- Every relative link in ``README.md`` and ``docs/**/*.md`` points at a file that exists,
  and every ``#anchor`` at a heading of the target page (MkDocs' slugs).
- Every ``cpc ...`` command in a shell code block (also ``python -m cpc.cli`` and
  ``torchrun ... -m cpc.cli``) parses with the real parser, ``cpc.cli.build_parser()``,
  and each ``section.key=value`` override it passes names a real config field: a renamed
  flag or field fails here. Lines with ``...`` are placeholders and are skipped.
- Every test a page names as proof (``tests/x.py::test_y``) exists.
- ``mkdocs build --strict`` passes (skipped where the ``docs`` extra is not installed).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
import typing
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest

from cpc.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]

FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
SHELL_LANGUAGES = {"bash", "sh", "shell", "console", "zsh"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
TEST_REFERENCE = re.compile(r"(tests/[\w/]+\.py)::(test_\w+\*?)")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# --------------------------------------------------------------------------------------
# Reading pages: prose lines and shell code blocks
# --------------------------------------------------------------------------------------


@dataclass
class Block:
    """One fenced code block: its language, first line number and lines."""

    page: Path
    language: str
    start: int
    lines: list[str]


def _split(page: Path) -> tuple[list[tuple[int, str]], list[Block]]:
    """The prose lines (number, text) and the fenced code blocks of one page."""
    prose: list[tuple[int, str]] = []
    blocks: list[Block] = []
    fence: str | None = None
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(2)
            blocks.append(Block(page, match.group(3).lower(), number + 1, []))
        elif fence is not None and re.fullmatch(
            f"{re.escape(fence[0])}{{{len(fence)},}}", line.strip()
        ):
            fence = None
        elif fence is not None:
            blocks[-1].lines.append(line)
        else:
            prose.append((number, line))
    return prose, blocks


# --------------------------------------------------------------------------------------
# Links and anchors
# --------------------------------------------------------------------------------------


def slugify(text: str) -> str:
    """A heading's anchor as Python-Markdown's ``toc`` extension (MkDocs) makes it."""
    text = re.sub(r"<[^>]+>", "", text.replace("`", ""))
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a page (code blocks are not headings)."""
    prose, _ = _split(page)
    found = set()
    for _, line in prose:
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            found.add(slugify(heading.group(1)))
    return found


def _links(page: Path) -> list[tuple[int, str]]:
    prose, _ = _split(page)
    found = []
    for number, line in prose:
        line = re.sub(r"`[^`]*`", "", line)  # inline code is not a link
        found += [(number, target) for target in LINK.findall(line)]
    return found


LINKS = [
    pytest.param(page, number, target, id=f"{_rel(page)}:{number}:{target}")
    for page in PAGES
    for number, target in _links(page)
    if not re.match(r"^[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto: ...
]


def test_the_pages_have_links_to_check() -> None:
    assert len(LINKS) > 20, "the link finder found almost nothing: is it broken?"


@pytest.mark.parametrize(("page", "number", "target"), LINKS)
def test_internal_link_resolves(page: Path, number: int, target: str) -> None:
    path, _, anchor = target.partition("#")
    where = f"{_rel(page)}:{number}: link {target!r}"
    resolved = (page.parent / path).resolve() if path else page
    assert resolved.exists(), f"{where}: {path} does not exist"
    if page.is_relative_to(DOCS):
        assert resolved.is_relative_to(DOCS), f"{where}: the docs site cannot link outside docs/"
        assert resolved.is_file(), f"{where}: link the page (index.md), not the folder"
    if anchor:
        assert resolved.suffix == ".md", f"{where}: an anchor into a file that is not a page"
        assert anchor in anchors(resolved), (
            f"{where}: no heading with anchor #{anchor} in {_rel(resolved)}; "
            f"there are {sorted(anchors(resolved))}"
        )


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------


@dataclass
class Command:
    """One ``cpc`` command of a code block: where it is, and its argv after ``cpc``."""

    page: Path
    line: int
    text: str
    argv: list[str]


def _logical_lines(block: Block) -> list[tuple[int, str]]:
    """The block's lines with backslash continuations joined, numbered by their first."""
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for offset, line in enumerate(block.lines):
        number = block.start + offset
        if pending is not None:
            number, line = pending[0], pending[1] + " " + line.strip()
        if line.rstrip().endswith("\\"):
            pending = (number, line.rstrip()[:-1])
            continue
        pending = None
        joined.append((number, line))
    if pending is not None:
        joined.append(pending)
    return joined


def _tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def _cpc_argv(words: list[str]) -> list[str] | None:
    """The argv after ``cpc`` of one simple command, or None if it does not run cpc."""
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):  # VAR=value cmd
        words = words[1:]
    if not words:
        return None
    if Path(words[0]).name == "cpc":
        return words[1:]
    for i in range(len(words) - 1):  # python -m cpc.cli, torchrun ... -m cpc.cli
        if words[i] == "-m" and words[i + 1] == "cpc.cli":
            return words[i + 2 :]
    return None


def _commands(block: Block) -> list[Command]:
    found = []
    for number, line in _logical_lines(block):
        if "..." in line or line.lstrip().startswith("#"):
            continue  # a placeholder, or a comment
        words: list[str] = []
        for token in [*_tokens(line), ";"]:
            if token in {"&&", "||", ";", "|", "&"}:
                argv = _cpc_argv(words)
                if argv is not None:
                    found.append(Command(block.page, number, line.strip(), argv))
                words = []
            else:
                words.append(token)
    return found


COMMANDS = [
    command
    for page in PAGES
    for block in _split(page)[1]
    if block.language in SHELL_LANGUAGES
    for command in _commands(block)
]


def test_the_pages_show_commands_to_check() -> None:
    verbs = {command.argv[0] for command in COMMANDS if command.argv}
    assert len(COMMANDS) > 20 and {"pretrain", "extract", "abx", "probe"} <= verbs, verbs


def _config_fields() -> dict[str, set[str]]:
    """Every key of every section: the common ones and those of every registered modality."""
    import cpc.data.registry  # noqa: F401  (registers the shipped modalities)
    from cpc.config import Config, known_modalities, modality

    sections = {}
    for section in dataclasses.fields(Config):
        kind = typing.get_type_hints(Config)[section.name]
        sections[section.name] = {f.name for f in dataclasses.fields(kind)} - {"modality_fields"}
        for name in known_modalities():
            own = getattr(modality(name), f"{section.name}_fields", None)
            sections[section.name] |= {f.name for f in dataclasses.fields(own)} if own else set()
    return sections


def _strict_parser() -> argparse.ArgumentParser:
    """The CLI's parser with abbreviations off in every sub-parser.

    argparse accepts any unambiguous prefix of an option by default, so a page showing
    ``--out`` would still parse after the option were renamed ``--output``.
    """
    parser = build_parser()
    todo = [parser]
    while todo:
        current = todo.pop()
        current.allow_abbrev = False
        for action in current._actions:  # argparse offers no public walk of sub-parsers
            if isinstance(action, argparse._SubParsersAction):
                todo += list(action.choices.values())
    return parser


@pytest.mark.parametrize(
    "command", COMMANDS, ids=[f"{_rel(c.page)}:{c.line}:{' '.join(c.argv[:2])}" for c in COMMANDS]
)
def test_command_parses_with_the_cli(command: Command) -> None:
    where = f"{_rel(command.page)}:{command.line}: {command.text}"
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        try:
            args = _strict_parser().parse_args(command.argv)
        except SystemExit as exit:
            pytest.fail(f"{where}\n  does not parse (exit {exit.code}):\n{errors.getvalue()}")
    overrides = list(getattr(args, "overrides", None) or [])
    for row in getattr(args, "row", None) or []:
        overrides += row[1:]
    fields = _config_fields()
    for override in overrides:
        key, equals, _ = override.partition("=")
        section, _, name = key.partition(".")
        if not (equals and section in fields and name in fields[section]):
            pytest.fail(f"{where}\n  override {override!r} names no config field (section.key)")


@pytest.mark.parametrize(
    "line",
    [
        "cpc extract --checkpoint runs/x --input data/ --outptu feats/",  # no such option
        "cpc extract --checkpoint runs/x --input data/ --output feats/ --chunk-step 5",  # prefix
        "cpc extract --checkpoint runs/x --input data/",  # a required option left out
        "cpc pretrain speech_small_cpu optim.learning_rate=1e-3",  # no such config field
    ],
)
def test_a_wrong_or_renamed_flag_fails(line: str) -> None:
    """The check above has teeth."""
    (command,) = _commands(Block(ROOT / "README.md", "bash", 1, [line]))
    with pytest.raises(pytest.fail.Exception):
        test_command_parses_with_the_cli(command)


def test_continuations_comments_and_chains_are_read_as_the_shell_reads_them() -> None:
    block = Block(
        ROOT / "README.md",
        "bash",
        10,
        [
            "python3 -m venv .venv && .venv/bin/cpc quickstart --minutes 1   # a comment",
            "cpc probe a=feats/ --manifest m.csv \\",
            "    --label speaker",
            "torchrun --standalone --nproc_per_node 4 -m cpc.cli pretrain configs/x.yaml",
            "cpc pretrain configs/x.yaml ...",
            "# cpc not-a-command",
        ],
    )
    found = [(c.line, c.argv) for c in _commands(block)]
    assert found == [
        (10, ["quickstart", "--minutes", "1"]),
        (11, ["probe", "a=feats/", "--manifest", "m.csv", "--label", "speaker"]),
        (13, ["pretrain", "configs/x.yaml"]),
    ]


# --------------------------------------------------------------------------------------
# Named tests, the README's promises, the generated reference, the build
# --------------------------------------------------------------------------------------


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


TEST_REFERENCES = sorted(
    {
        (page, file, name)
        for page in PAGES
        for file, name in TEST_REFERENCE.findall(page.read_text())
    }
)


def test_pages_name_tests() -> None:
    assert len(TEST_REFERENCES) > 30


@pytest.mark.parametrize(
    ("page", "file", "name"),
    TEST_REFERENCES,
    ids=[f"{file}::{name}" for _, file, name in TEST_REFERENCES],
)
def test_named_test_exists(page: Path, file: str, name: str) -> None:
    path = ROOT / file
    assert path.is_file(), f"{_rel(page)} names {file}, which does not exist"
    names = _test_names(path)
    if name.endswith("*"):
        assert any(n.startswith(name[:-1]) for n in names), f"{_rel(page)}: no {file}::{name}"
    else:
        assert name in names, f"{_rel(page)} names {file}::{name}, which does not exist"


def test_readme_fits_a_screen_and_keeps_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme) < 12_000, f"README.md has {len(readme)} characters; move detail to docs/"
    for command in (
        "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/cpc quickstart",
        'python3 -m venv .venv && .venv/bin/pip install -q -e ".[dev]" && '
        ".venv/bin/python -m pytest -q",
    ):
        assert f"\n{command}\n" in readme, f"the README lost its set-up command: {command}"


def _gen_config():  # the hook is a script of the docs, not a module of the package
    spec = importlib.util.spec_from_file_location("gen_config", DOCS / "gen_config.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_reference_lists_every_field() -> None:
    gen_config = _gen_config()
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert gen_config.MARKER in page
    text = gen_config.render()
    for section, names in _config_fields().items():
        for name in names:
            assert f"| `{section}.{name}` |" in text, f"{section}.{name} is not in the reference"
    # the field docstrings are read from the source, not lost
    assert "CPC paper: 20480 = 1.28 s at 16 kHz" in text


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    for package in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed (the docs extra)")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert (tmp_path / "configuration" / "index.html").is_file()
