"""Folder scans report what they cannot use: folders named x.wav, link loops, dangling links."""

from __future__ import annotations

import os

from cpc.data.scan import scan_folder


def test_scan_reports_what_it_cannot_use(tmp_path) -> None:
    root = tmp_path / "corpus"
    (root / "spk1").mkdir(parents=True)
    (root / "spk1" / "a.wav").write_bytes(b"x")
    (root / "spk1" / "B.WAV").write_bytes(b"x")
    (root / "spk1" / "notes.txt").write_text("x")
    (root / "folder.wav").mkdir()  # a folder named like a file
    (root / "folder.wav" / "inner.flac").write_bytes(b"x")
    os.symlink(root / "missing.wav", root / "dangling.wav")
    os.symlink(root / "self.wav", root / "self.wav")  # a link to itself
    os.symlink(root, root / "spk1" / "back")  # a folder link back to the root
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "c.ogg").write_bytes(b"x")
    os.symlink(outside, root / "linked")  # a linked folder: followed

    scan = scan_folder(root, [".wav", ".flac", ".ogg"])
    names = sorted(p.relative_to(root).as_posix() for p in scan.files)
    assert names == ["folder.wav/inner.flac", "linked/c.ogg", "spk1/B.WAV", "spk1/a.wav"]
    reasons = {os.path.relpath(path, root): why for path, why in scan.skipped}
    assert reasons == {
        "folder.wav": "not a file: a folder named like an audio/signal file",
        "dangling.wav": "not a file: a link whose target is missing",
        "self.wav": "not a file: a symbolic link loop",
        "spk1/back": "not followed: a symbolic link loop",
    }


def test_two_links_to_one_folder_list_it_once(tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.wav").write_bytes(b"x")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(data, root / "one")
    os.symlink(data, root / "two")
    scan = scan_folder(root, [".wav"])
    assert [p.name for p in scan.files] == ["a.wav"]
    assert len(scan.skipped) == 1 and "already listed" in scan.skipped[0][1]
