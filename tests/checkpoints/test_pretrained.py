"""Published models by name: fetched with torch.hub's downloader, verified, converted once.

No network: entries are injected into the registry with ``file://`` URLs to the
CPC_audio fixtures (a hub file written by CPC_audio itself), and torch.hub's folder is a
temporary one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import cpc
from cpc.checkpoints import pretrained as pre
from cpc.checkpoints.pretrained import REGISTRY, PublishedModel
from cpc.cli import main

FIXTURE = Path(__file__).parents[1] / "fixtures" / "cpc_audio" / "default_hub"
HUB_FILE = FIXTURE / "checkpoint.pt"
DIGEST = hashlib.sha256(HUB_FILE.read_bytes()).hexdigest()

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """torch.hub's folder in ``tmp_path``; returns it."""
    folder = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "_hub_dir", str(folder))
    return folder


def inject(monkeypatch, name: str, file: Path, sha256: str | None) -> PublishedModel:
    entry = PublishedModel(name, file.resolve().as_uri(), sha256, "a fixture")
    monkeypatch.setitem(REGISTRY, name, entry)
    return entry


def cache_files(hub: Path) -> list[str]:
    return sorted(p.relative_to(hub).as_posix() for p in hub.rglob("*")) if hub.exists() else []


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_the_registry_points_where_cpc_audio_hubconf_does_and_knows_no_checksum():
    entry = REGISTRY["cpc_audio_60k"]
    assert entry.url == (
        "https://dl.fbaipublicfiles.com/librilight/CPC_checkpoints/60k_epoch4-d0f474de.pt"
    )
    assert entry.sha256 is None and entry.hash_prefix == "d0f474de"


def test_a_verified_model_is_fetched_and_converted_once(hub, monkeypatch):
    inject(monkeypatch, "fixture", HUB_FILE, DIGEST)
    model = cpc.pretrained("fixture", progress=False)
    wave = torch.from_numpy(np.load(FIXTURE / "input.npy"))
    c, _ = model.features(wave[:1])
    expected = torch.from_numpy(np.load(FIXTURE / "expected_c.npy"))[:1]
    torch.testing.assert_close(c[:, :, 0], expected, atol=1e-4, rtol=0)
    run = hub / "cpc" / f"fixture-{DIGEST[:12]}"
    assert (hub / "checkpoints" / "checkpoint.pt").is_file() and run.is_dir()
    source = json.loads((run / "pretrained.json").read_text())
    assert source["sha256"] == DIGEST and source["verified"] is True

    def no_network(*args, **kwargs):
        raise AssertionError("downloaded again")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(pre, "convert_cpc_audio", no_network)
    (hub / "checkpoints" / "checkpoint.pt").unlink()  # the converted run is enough
    again, _ = cpc.pretrained("fixture").features(wave[:1])
    assert torch.equal(again, c)


def test_a_cached_download_that_changed_is_refused(hub, monkeypatch, capsys):
    inject(monkeypatch, "fixture", HUB_FILE, DIGEST)
    run = pre.pretrained_run("fixture", progress=False)
    shutil.rmtree(run)
    cached = hub / "checkpoints" / "checkpoint.pt"
    cached.write_bytes(cached.read_bytes() + b"tampered")
    assert main(["pretrained", "fixture", "--quiet"]) == 2
    line = one_line_error(capsys)
    assert str(cached) in line and f"expected {DIGEST}" in line and "remove it" in line
    assert not run.exists()


def test_the_command_copies_the_run_where_asked(hub, monkeypatch, tmp_path, capsys):
    inject(monkeypatch, "fixture", HUB_FILE, DIGEST)
    out = tmp_path / "runs" / "cpc_fixture"
    assert main(["pretrained", "fixture", "--out", str(out), "--quiet"]) == 0
    assert str(out) in capsys.readouterr().out
    assert cpc.load(out).hub_config["imported"]["from"] == "CPC_audio"
    assert main(["pretrained", "fixture", "--out", str(out)]) == 2  # not over a run
    assert "not an empty folder" in one_line_error(capsys)
    assert main(["pretrained", "--list"]) == 0
    assert "cpc_audio_60k" in capsys.readouterr().out


def test_a_wrong_checksum_is_one_line_and_keeps_nothing(hub, monkeypatch, capsys):
    inject(monkeypatch, "fixture", HUB_FILE, "0" * 64)
    assert main(["pretrained", "fixture", "--quiet"]) == 2
    line = one_line_error(capsys)
    assert "wrong SHA-256" in line and DIGEST in line and "nothing was kept" in line
    assert cache_files(hub) == ["checkpoints"]  # no file, no .partial, no run


def test_an_unreachable_url_is_one_line_and_keeps_nothing(hub, monkeypatch, tmp_path, capsys):
    inject(monkeypatch, "fixture", tmp_path / "gone" / "model.pt", DIGEST)
    assert main(["pretrained", "fixture", "--quiet"]) == 2
    assert "cannot download file://" in one_line_error(capsys)
    assert cache_files(hub) == ["checkpoints"]


def test_an_unknown_checksum_needs_the_users_or_an_explicit_flag(
    hub, monkeypatch, tmp_path, capsys
):
    named = tmp_path / f"hub-{DIGEST[:8]}.pt"  # torch.hub's naming: the SHA-256 prefix
    shutil.copy(HUB_FILE, named)
    inject(monkeypatch, "unknown", named, None)
    assert main(["pretrained", "unknown", "--quiet"]) == 2
    assert "no SHA-256 is recorded" in one_line_error(capsys)
    assert cache_files(hub) == []  # refused before anything is fetched
    assert main(["pretrained", "cpc_audio_60k"]) == 2  # the real entry: refused offline too
    assert "--sha256 HEX" in one_line_error(capsys)
    assert main(["pretrained", "unknown", "--sha256", "ab" * 32, "--quiet"]) == 2
    assert "wrong SHA-256" in one_line_error(capsys)
    assert main(["pretrained", "unknown", "--sha256", DIGEST.upper(), "--quiet"]) == 0
    run = pre.pretrained_run("unknown", unverified=True)  # the same file, the same run
    assert json.loads((run / "pretrained.json").read_text())["verified"] is True


def test_unverified_still_checks_the_file_names_hash_prefix(hub, monkeypatch, tmp_path, capsys):
    bad = tmp_path / "hub-deadbeef.pt"
    shutil.copy(HUB_FILE, bad)
    inject(monkeypatch, "liar", bad, None)
    assert main(["pretrained", "liar", "--unverified", "--quiet"]) == 2
    assert 'expected "deadbeef"' in one_line_error(capsys)
    good = tmp_path / f"hub-{DIGEST[:8]}.pt"
    shutil.copy(HUB_FILE, good)
    inject(monkeypatch, "named", good, None)
    run = pre.pretrained_run("named", unverified=True, progress=False)
    assert json.loads((run / "pretrained.json").read_text())["verified"] is False


def test_a_failed_conversion_leaves_no_run_in_the_cache(hub, monkeypatch, capsys):
    inject(monkeypatch, "fixture", HUB_FILE, DIGEST)

    def half_then_fail(path, out):
        Path(out).mkdir()
        (Path(out) / "meta.json").write_text("{")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pre, "convert_cpc_audio", half_then_fail)
    assert main(["pretrained", "fixture", "--quiet"]) == 2
    assert "No space left on device" in one_line_error(capsys)
    assert cache_files(hub) == ["checkpoints", "checkpoints/checkpoint.pt", "cpc"]
