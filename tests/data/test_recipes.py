"""The recipe layer: modality defaults follow the builders, groups follow corpus layouts."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cpc.config import Config, ConfigError, load_config
from cpc.data.audio import audio_records
from cpc.data.registry import RECIPES, build_model, get_recipe
from cpc.models.builders import cpc_audio, cpc_image, cpc_signal

BUILDERS = {"audio": cpc_audio, "signal": cpc_signal, "image": cpc_image}


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
