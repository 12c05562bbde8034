"""Property: any override string and any YAML document either loads or raises ConfigError.

Nothing a user can type (or a file can hold) may escape the config layer as another
exception, which the command line would show as a traceback.
"""

from __future__ import annotations

import dataclasses
import string
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpc.config import Config, ConfigError, load_config

SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}
KEYS = [
    f"{name}.{f.name}" for name in SECTIONS for f in dataclasses.fields(getattr(Config(), name))
]

# YAML-ish fragments that reach the interesting parsers: numbers in every spelling,
# flow collections (open and closed), anchors, tags, quotes, nesting.
FRAGMENTS = st.sampled_from(
    ["[", "]", "{", "}", ",", ":", " ", "-", "1", "0", "1e-3", "1e400", ".nan", ".inf",
     "-1", "1_0", "0x1F", "true", "~", "null", "'", '"', "&a", "*a", "!!python/object",
     "!!binary", "10" * 30, "\n", "#", "|", ">", "%", "@", "`", "\t", "é", "\x00"]
)  # fmt: skip
VALUES = st.one_of(
    st.text(max_size=30),
    st.lists(FRAGMENTS, max_size=12).map("".join),
    st.integers().map(str),
    st.floats().map(str),
)
OVERRIDES = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), VALUES),
    st.text(alphabet=string.printable, max_size=40),
)

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
TREES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS + list(SECTIONS)), SCALARS), inner,
                        max_size=4),
    ),
    max_leaves=20,
)  # fmt: skip
# Documents shaped like configs (a section of known keys with arbitrary values).
SECTION_DOCS = st.builds(
    lambda key, value: {key.split(".")[0]: {key.split(".")[1]: value}},
    st.sampled_from(KEYS),
    TREES,
)

PROPERTY = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def loads_or_config_error(path: str | Path | None, overrides: list[str]) -> None:
    try:
        config = load_config(path, overrides)
    except ConfigError as err:
        assert "\n" not in str(err)
        return
    assert isinstance(config, Config)


@PROPERTY
@given(st.lists(OVERRIDES, max_size=3))
def test_any_overrides_load_or_raise_config_error(overrides: list[str]) -> None:
    loads_or_config_error(None, overrides)


@PROPERTY
@given(st.one_of(TREES, SECTION_DOCS))
def test_any_yaml_document_loads_or_raises_config_error(tmp_path: Path, document) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    loads_or_config_error(path, [])


@PROPERTY
@given(st.one_of(st.binary(max_size=200), st.lists(FRAGMENTS, max_size=30).map("".join)))
def test_any_bytes_load_or_raise_config_error(tmp_path: Path, raw) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
    loads_or_config_error(path, [])
