"""The recipe layer: modality defaults follow the builders, groups follow corpus layouts."""

import dataclasses
import inspect
import types
import typing
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cpc.config import Config, ConfigError, ModelConfig, load_config
from cpc.data.audio import audio_records
from cpc.data.registry import RECIPES, build_model, get_recipe
from cpc.models.builders import (
    AUDIO_HEAD,
    HEAD_FIELDS,
    IMAGE_HEAD,
    SIGNAL_HEAD,
    HeadSettings,
    cpc_audio,
    cpc_image,
    cpc_signal,
)

BUILDERS = {"audio": cpc_audio, "signal": cpc_signal, "image": cpc_image}
HEADS = {"audio": AUDIO_HEAD, "signal": SIGNAL_HEAD, "image": IMAGE_HEAD}


def _architecture(model):
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    loss = model.loss
    return (
        repr(model),
        shapes,
        model.offsets,
        (loss.num_negatives, loss.negatives, loss.temperature, loss.gather_distributed),
    )


@pytest.mark.parametrize("modality", sorted(RECIPES))
def test_config_naming_only_the_modality_builds_the_builder_default(modality):
    assert set(BUILDERS) == set(RECIPES)
    config = Config.from_dict({"model": {"modality": modality}})
    assert config.data.kind == modality
    assert _architecture(build_model(config.model)) == _architecture(BUILDERS[modality]())


def test_a_set_field_reaches_the_builder_and_others_keep_its_defaults():
    config = Config.from_dict({"model": {"modality": "image", "num_offsets": 2, "dim": 32}})
    model = build_model(config.model)
    assert _architecture(model) == _architecture(cpc_image(num_offsets=2, dim=32))
    assert model.offsets == [2, 3]  # k_min = 2 still follows the overlapping patches


def _values(hint) -> frozenset:
    """A type hint as the set of what it allows: Literal words, types (unions flattened)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return frozenset().union(*map(_values, typing.get_args(hint)))
    if typing.get_origin(hint) is typing.Literal:
        return frozenset(("word", v) for v in typing.get_args(hint))
    return frozenset({hint})


def test_the_config_head_keys_are_the_builders_head_settings():
    """One source: the common model keys are HeadSettings' fields, of the same types
    (None added: the builder's default), so neither can gain or change one alone."""
    common = [f.name for f in dataclasses.fields(ModelConfig)]
    assert common == ["modality", *HEAD_FIELDS, "modality_fields"]
    ours, theirs = typing.get_type_hints(ModelConfig), typing.get_type_hints(HeadSettings)
    for name in HEAD_FIELDS:
        assert _values(ours[name]) == _values(theirs[name]) | {type(None)}, name


def _builder_defaults(modality: str) -> dict:
    """Every argument of a builder with its default: its signature's and its head's."""
    params = inspect.signature(BUILDERS[modality]).parameters.values()
    own = {p.name: p.default for p in params if p.kind is not p.VAR_KEYWORD and p.name != "head"}
    return {**own, **dataclasses.asdict(HEADS[modality])}


@pytest.mark.parametrize("modality", sorted(BUILDERS))
def test_every_builder_argument_is_a_config_key_and_reaches_the_builder(modality, monkeypatch):
    defaults = _builder_defaults(modality)
    keys = Config.from_dict({"model": {"modality": modality}}).model.to_dict()
    assert set(keys) - {"modality"} == set(defaults)  # no argument unreachable, no dead key
    # Every key written out at the builder's default reaches the builder as written and
    # builds exactly the default model (None: no value to write, the builder decides).
    written = {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}
    written = {k: v for k, v in written.items() if v is not None}
    seen: dict = {}
    recipe = get_recipe(modality)

    def spy(**kwargs):
        seen.update(kwargs)
        return BUILDERS[modality](**kwargs)

    monkeypatch.setattr(recipe, "builder", spy)
    model = build_model(Config.from_dict({"model": {"modality": modality, **written}}).model)
    assert seen == written
    assert _architecture(model) == _architecture(BUILDERS[modality]())


def _librispeech(root: Path) -> None:
    """LibriSpeech's layout: speaker/chapter/speaker-chapter-utterance.flac."""
    for speaker, chapter in [("19", "198"), ("19", "227"), ("26", "495")]:
        for utt in range(2):
            path = root / speaker / chapter / f"{speaker}-{chapter}-{utt:04d}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, np.zeros(1600, np.float32), 16000)


def test_group_from_follows_the_corpus_layout(tmp_path):
    _librispeech(tmp_path)
    groups = {
        rule: {r.group for r in audio_records(tmp_path, group_from=rule)}
        for rule in ("auto", "parent", "grandparent", r"regex:/(\d+)-\d+-\d+\.flac$")
    }
    assert groups["auto"] == groups["parent"] == {"198", "227", "495"}  # chapters
    assert groups["grandparent"] == groups[r"regex:/(\d+)-\d+-\d+\.flac$"] == {"19", "26"}
    (tmp_path / "m.csv").write_text("path,reader\n19/198/19-198-0000.flac,ann\n")
    only = audio_records(tmp_path / "m.csv", group_from="column:reader")
    assert [r.group for r in only] == ["ann"]


def test_group_from_reaches_the_training_set(tmp_path):
    _librispeech(tmp_path / "corpus")
    config = load_config(
        None,
        [f"data.train={tmp_path / 'corpus'}", "data.group_from=grandparent", "data.window=800"],
    )
    splits = get_recipe("audio").datasets(config, min_length=400)
    assert splits.info.groups == ["19", "26"]
    assert sorted(splits.train.groups) == [0] * 8 + [1] * 4  # two windows a file


@pytest.mark.parametrize(
    ("spec", "message"), [("uncle", "data.group_from='uncle'"), ("regex:(", "bad regular")]
)
def test_bad_group_from_is_named(spec, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [f"data.group_from={spec}"])
