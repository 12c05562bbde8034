"""Published CPC_audio models by name: fetched once, verified, converted once, cached.

``cpc.pretrained(NAME)`` (and ``cpc pretrained NAME --out RUN``) downloads the
checkpoint of a :data:`REGISTRY` entry with torch.hub's downloader
(``torch.hub.download_url_to_file``, into ``torch.hub.get_dir()/checkpoints/`` under
the URL's file name: the file CPC_audio's own ``torch.hub`` entry point caches), checks
its SHA-256, converts it with :func:`cpc.checkpoints.convert.convert_cpc_audio` and keeps
the converted run in ``torch.hub.get_dir()/cpc/NAME-SHA256[:12]/``; later calls load that
run without touching the network.

The registry (its source: facebookresearch/CPC_audio ``hubconf.py``, whose
``CPCModel(pretrained=True)`` loads
``https://dl.fbaipublicfiles.com/librilight/CPC_checkpoints/60k_epoch4-d0f474de.pt``, the
CPC model trained on Libri-light's 60k hours; the same URL is in libri-light's
``eval`` tools) records the URL and the SHA-256 *when it was computed from the file*.
No full SHA-256 has been published for that file and none could be computed where
this module was written (no network), so the entry records it as unknown (``None``)
and such an entry is refused until the user gives the expected checksum
(``sha256=...``, ``--sha256 HEX``) or accepts the file unverified
(``unverified=True``, ``--unverified``). Its file name carries torch.hub's hash suffix
``-d0f474de`` (the first 8 hex digits of the file's SHA-256, by torch.hub's naming
rule): that prefix is always checked, as ``torch.hub.load_state_dict_from_url(...,
check_hash=True)`` would.

Failures are one line each (:class:`~cpc.errors.CheckpointError`): an unknown name, an
unreachable URL, a checksum that differs. The downloader writes to a temporary file
and moves it into place only once complete and verified, and the conversion is written
in a temporary folder renamed into place, so nothing half-written stays in the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.parse import unquote, urlparse

import torch.hub

from cpc.checkpoints.convert import convert_cpc_audio
from cpc.checkpoints.loading import load_model
from cpc.errors import CheckpointError
from cpc.models.cpc import CPCModel

#: torch.hub's rule: ``NAME-HASH.EXT`` where HASH starts the file's SHA-256.
_HASH_SUFFIX = re.compile(r"-([a-f0-9]{8,64})\.")
_HEX = re.compile(r"^[0-9a-f]{64}$")
#: A provenance note written beside the converted run.
SOURCE_JSON = "pretrained.json"


@dataclass(frozen=True)
class PublishedModel:
    """One entry of :data:`REGISTRY`.

    Attributes:
        name: What ``cpc.pretrained`` takes.
        url: Where the checkpoint is published.
        sha256: The file's SHA-256 in hex, or None when it has not been computed from
            the file (the entry then needs ``sha256=`` or ``unverified=True``).
        about: One line on what the model is.

    """

    name: str
    url: str
    sha256: str | None
    about: str

    @property
    def hash_prefix(self) -> str | None:
        """The SHA-256 prefix in the URL's file name (torch.hub's rule), if any."""
        match = _HASH_SUFFIX.search(Path(urlparse(self.url).path).name)
        return match.group(1) if match else None


#: The published models (module docstring: where each URL comes from).
REGISTRY: dict[str, PublishedModel] = {
    "cpc_audio_60k": PublishedModel(
        name="cpc_audio_60k",
        url="https://dl.fbaipublicfiles.com/librilight/CPC_checkpoints/60k_epoch4-d0f474de.pt",
        sha256=None,  # unknown: not published, not computable here (no network)
        about="CPC_audio trained on Libri-light 60k h (LSTM context of 256; hubconf.py)",
    ),
}


def _entry(name: str) -> PublishedModel:
    if name not in REGISTRY:
        raise CheckpointError(f"no published model {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name]


def _expected(entry: PublishedModel, sha256: str | None, unverified: bool) -> str | None:
    """The full SHA-256 to check, or None when the user accepted an unverified file."""
    given = sha256.strip().lower() if sha256 else None
    if given is not None and not _HEX.match(given):
        raise CheckpointError(f"{entry.name}: --sha256 {sha256!r} is not 64 hex digits")
    if given and entry.sha256 and given != entry.sha256:
        raise CheckpointError(
            f"{entry.name}: --sha256 {given} differs from the registry's {entry.sha256}"
        )
    expected = given or entry.sha256
    if expected is None and not unverified:
        raise CheckpointError(
            f"{entry.name}: no SHA-256 is recorded for {entry.url}; pass the expected one "
            "(--sha256 HEX, sha256=...) or accept the file unverified (--unverified)"
        )
    return expected


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check(entry: PublishedModel, file: Path, digest: str, expected: str | None) -> None:
    want = expected or entry.hash_prefix or ""
    if not digest.startswith(want):
        raise CheckpointError(
            f"{entry.name}: {file} has SHA-256 {digest}, expected {want}"
            f"{'' if expected else '... (the file name says)'}; remove it to download again"
        )


def fetch(entry: PublishedModel, expected: str | None, progress: bool = True) -> tuple[Path, str]:
    """The verified checkpoint file of an entry (downloaded once) and its SHA-256.

    Raises:
        CheckpointError: The URL cannot be read, or the file's SHA-256 is not the
            expected one (nothing is kept then).

    """
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    file = folder / unquote(Path(urlparse(entry.url).path).name)
    if not file.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        prefix = expected or entry.hash_prefix
        try:
            torch.hub.download_url_to_file(entry.url, str(file), prefix, progress=progress)
        except RuntimeError as err:  # torch.hub: 'invalid hash value (expected ..., got ...)'
            raise CheckpointError(
                f"{entry.name}: wrong SHA-256 for {entry.url}: {err}; nothing was kept"
            ) from None
        except (URLError, OSError, ValueError) as err:
            why = getattr(err, "reason", None) or err
            raise CheckpointError(f"{entry.name}: cannot download {entry.url}: {why}") from None
    digest = file_sha256(file)
    _check(entry, file, digest, expected)
    return file, digest


def _convert(entry: PublishedModel, file: Path, digest: str, run: Path, verified: bool) -> None:
    """Convert into a temporary folder beside ``run``, then rename it into place."""
    run.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run.name}-", dir=run.parent))
    try:
        convert_cpc_audio(file, tmp / "run")
        source = {"name": entry.name, "url": entry.url, "sha256": digest, "verified": verified}
        (tmp / "run" / SOURCE_JSON).write_text(json.dumps(source, indent=2) + "\n")
        try:
            os.replace(tmp / "run", run)
        except OSError:  # another process converted it first
            if not run.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pretrained_run(
    name: str, *, sha256: str | None = None, unverified: bool = False, progress: bool = True
) -> Path:
    """The cached run folder of a published model: fetched, verified, converted once.

    Args:
        name: A key of :data:`REGISTRY`.
        sha256: The file's expected SHA-256 (hex), required for entries whose registry
            checksum is unknown unless ``unverified``.
        unverified: Accept a file whose full checksum is known to no one here (its file
            name's hash prefix is still checked).
        progress: Show torch.hub's download progress bar.

    Raises:
        CheckpointError: See the module docstring (one line each).

    """
    entry = _entry(name)
    expected = _expected(entry, sha256, unverified)
    cache = Path(torch.hub.get_dir()) / "cpc"
    if expected is not None and (cache / f"{name}-{expected[:12]}").is_dir():
        return cache / f"{name}-{expected[:12]}"
    file, digest = fetch(entry, expected, progress)
    run = cache / f"{name}-{digest[:12]}"
    if not run.is_dir():
        _convert(entry, file, digest, run, verified=expected is not None)
    return run


def pretrained(
    name: str, *, sha256: str | None = None, unverified: bool = False, progress: bool = True
) -> CPCModel:
    """A published model by name, ready for ``model.features`` (eval mode).

    ``cpc.pretrained("cpc_audio_60k", sha256=...)``: see :func:`pretrained_run`.
    """
    run = pretrained_run(name, sha256=sha256, unverified=unverified, progress=progress)
    return load_model(run)
