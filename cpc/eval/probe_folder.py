"""Probes on feature folders written by ``cpc extract``, with labels from files.

Labels come from two places:

- *sequence labels*: a column of a CSV manifest (``path`` plus any columns, such as
  ``speaker`` or ``language``); each file's features are mean-pooled into one vector;
- *frame labels*: one integer array per file (a folder of ``<file stem>.npy``, searched
  recursively, as the built-in corpus's ``phones/``; or one ``.npz`` keyed by file stem);
  feature frame ``j`` is paired with label frame ``j + label_offset``
  (:func:`cpc.eval.probes.frames_from_sequences`).

Splits are by file: with ``split_by`` (a manifest column such as ``speaker``) whole
groups are held out (:func:`cpc.eval.splits.split_by_group`); without it, the files of
each sequence label are split between train and test
(:func:`cpc.eval.splits.split_within_groups`; frame tasks: one random file split).
Verification EER (sequence labels as identities) needs no training, so it uses every
file. Each feature folder is one row of the table; each task and probe is a column.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cpc.data.audio import audio_records
from cpc.data.formats import detect_format
from cpc.data.seeds import check_seed
from cpc.errors import ConfigError, CPCError, DataError
from cpc.eval.plots import plot_confusion, plot_projection
from cpc.eval.probes import frames_from_sequences, knn_probe, linear_probe
from cpc.eval.report import collect_provenance, write_report
from cpc.eval.splits import split_by_group, split_within_groups
from cpc.eval.verification import verification_eer
from cpc.features.folder import FeatureFolder, read_feature_folder

PROBES = ("linear", "knn", "eer")
MAX_K = 10_000
MAX_EPOCHS = 10_000
MAX_OFFSET = 1_000_000
#: Frame-label classes accepted (a label of 10**9 would size a 10**9-class linear layer).
MAX_CLASSES = 100_000


@dataclass
class ProbeSpec:
    """What to probe: labels, splits and probe settings."""

    manifest: Path
    label: str | None = None
    """Manifest column of sequence labels."""
    frame_labels: Path | None = None
    """Folder of ``<stem>.npy`` frame labels, or one ``.npz`` keyed by stem."""
    label_offset: int = 0
    label_names: list[str] | None = None
    split_by: str | None = None
    test_fraction: float = 0.3
    probes: tuple[str, ...] = PROBES
    k: int = 5
    epochs: int = 50
    seed: int = 0
    tolerance: int = 5
    """Frames by which features and frame labels may differ in length."""
    extra: dict[str, Any] = field(default_factory=dict)


def corpus_rows(path: Path) -> list[dict[str, str]]:
    """Rows (``path``, ``speaker``) of a corpus in a toolkit's format
    (:mod:`cpc.data.formats`): what ``cpc extract --input`` wrote features for.
    """
    records = audio_records(path)
    return [{"path": r.path, "speaker": r.group} for r in records if r.problem is None]


def check_spec(spec: ProbeSpec) -> None:
    """Refuse settings that cannot give an honest result, before anything is read.

    Raises:
        ConfigError: Naming the setting (as its command-line flag) and its range.

    """
    if not 0.0 < spec.test_fraction < 1.0:  # NaN fails too
        raise ConfigError(f"--test-fraction must be in (0, 1), got {spec.test_fraction}")
    if not 1 <= spec.k <= MAX_K:
        raise ConfigError(f"--k must be in [1, {MAX_K}], got {spec.k}")
    if not 1 <= spec.epochs <= MAX_EPOCHS:
        raise ConfigError(f"--epochs must be in [1, {MAX_EPOCHS}], got {spec.epochs}")
    if abs(spec.label_offset) > MAX_OFFSET:
        raise ConfigError(f"--label-offset must be within +-{MAX_OFFSET}, got {spec.label_offset}")
    check_seed(spec.seed, "--seed")


def check_task(task: str, train_labels: np.ndarray | torch.Tensor, spec: ProbeSpec) -> None:
    """Refuse a task whose training split cannot support the probes asked for.

    One class makes every probe 100 % right by construction; ``k`` above the training
    set's size would silently become a vote of every training example.

    Raises:
        DataError: Naming the task, the classes found and the training size.

    """
    classes = len(np.unique(np.asarray(train_labels)))
    if classes < 2:
        raise DataError(
            task, f"the training split holds {classes} class(es): a probe needs at least two"
        )
    if "knn" in spec.probes and spec.k > len(train_labels):
        raise DataError(
            task, f"--k {spec.k} is larger than the {len(train_labels)} training examples"
        )


def read_manifest(path: Path, columns: list[str]) -> list[dict[str, str]]:
    """Rows of a CSV manifest, or of a corpus in a toolkit's format (:func:`corpus_rows`);
    each of ``columns`` (and ``path``) must be present.
    """
    if detect_format(str(path)) not in ("manifest", "folder"):
        rows = corpus_rows(path)
        missing = [c for c in columns if c not in ("path", "speaker")]
        if missing:
            raise DataError(str(path), f"no column {missing[0]!r} (a corpus gives speaker)")
        if not rows:
            raise DataError(str(path), "empty corpus")
        return rows
    if not path.is_file():
        raise FileNotFoundError(f"no manifest {path}")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(str(path), f"not a readable CSV manifest ({err})") from None
    for column in ["path", *columns]:
        if column not in header:
            raise DataError(str(path), f"no column {column!r} (columns: {', '.join(header)})")
    if not rows:
        raise DataError(str(path), "empty manifest")
    for number, row in enumerate(rows, start=2):
        if any(row.get(column) is None for column in ["path", *columns]):
            raise DataError(str(path), f"line {number}: fewer fields than the header")
    return rows


def _match(folder: FeatureFolder, rows: list[dict[str, str]], manifest: Path) -> list[np.ndarray]:
    """Features of each manifest row: by path as written, resolved, or by file stem."""
    by_path = dict(folder.features)
    by_resolved = {str(Path(k).resolve()): v for k, v in folder.features.items()}
    by_stem = folder.by_stem
    out = []
    for row in rows:
        p = row["path"]
        resolved = str((manifest.parent / p).resolve())
        found = by_path.get(p)
        if found is None:
            found = by_resolved.get(resolved)
        if found is None:
            found = by_stem.get(Path(p).stem)
        if found is None:
            raise DataError(str(folder.root), f"no features for manifest file {p}")
        out.append(found)
    return out


def _frame_label_source(path: Path) -> dict[str, np.ndarray]:
    if path.is_dir():
        arrays = {p.stem: p for p in sorted(path.rglob("*.npy"))}
        if not arrays:
            raise DataError(str(path), "no .npy frame labels in this folder")
        return {stem: _label_array(p, np.load, p) for stem, p in arrays.items()}
    if path.suffix == ".npz" and path.is_file():
        with _label_array(path, np.load, path) as data:
            return {k: _label_array(path, data.__getitem__, k) for k in data.files}
    raise FileNotFoundError(f"no frame labels {path} (a folder of .npy files or a .npz)")


def _label_array(where: Path, read: Any, key: Any) -> Any:
    """``read(key)``, its failures (damaged file, pickled objects) named as ``where``."""
    try:
        return read(key)
    except (OSError, ValueError, EOFError, KeyError) as err:
        raise DataError(str(where), f"unreadable frame labels ({err})") from None


def _split(groups: list[str] | None, labels: np.ndarray | None, n: int, spec: ProbeSpec):
    if groups is not None:
        return split_by_group(groups, spec.test_fraction, spec.seed)
    if labels is not None:
        return split_within_groups(labels, spec.test_fraction, spec.seed)
    return split_by_group(np.arange(n), spec.test_fraction, spec.seed)


def _codes(values: list[str]) -> tuple[np.ndarray, list[str]]:
    names, codes = np.unique(np.asarray(values), return_inverse=True)
    return codes.reshape(-1), [str(n) for n in names]


def _sequence_probes(
    name: str,
    feats: list[np.ndarray],
    values: list[str],
    groups: list[str] | None,
    spec: ProbeSpec,
    results: dict[str, dict[str, Any]],
    out_dir: Path | None,
) -> None:
    """Linear, kNN and EER on mean-pooled features; adds ``{task: {name: result}}``."""
    y, names = _codes(values)
    pooled = torch.stack([torch.from_numpy(f).mean(0) for f in feats])  # (files, d)
    task = str(spec.label)
    if len(names) < 2:
        raise DataError(task, f"one label ({names[0]!r}) in the manifest: a probe needs two")
    tr, te = _split(groups, y, len(values), spec)
    check_task(task, y[tr], spec)
    if "linear" in spec.probes:
        res = linear_probe(
            pooled[tr],
            y[tr],
            pooled[te],
            y[te],
            num_classes=len(names),
            epochs=spec.epochs,
            seed=spec.seed,
        )
        results.setdefault(f"{task} (linear)", {})[name] = res
        if out_dir is not None and len(names) <= 60:
            plot_confusion(res.confusion, names, out_dir / f"{name}_{task}_confusion.png")
    if "knn" in spec.probes:
        results.setdefault(f"{task} (kNN, k={spec.k})", {})[name] = knn_probe(
            pooled[tr], y[tr], pooled[te], y[te], k=spec.k, num_classes=len(names)
        )
    if "eer" in spec.probes:
        try:
            eer: Any = verification_eer(pooled, y, seed=spec.seed)
        except ValueError as err:  # too few files per identity: say so in the cell
            eer = {"eer": None, "skipped": str(err)}
        results.setdefault(f"{task} verification EER", {})[name] = eer
    if out_dir is not None:
        plot_projection(
            pooled.numpy(), y, out_dir / f"{name}_{task}_pca.png", title=f"{name}, pooled"
        )


def _frame_labels(
    source: dict[str, np.ndarray], rows: list[dict[str, str]], spec: ProbeSpec
) -> list[np.ndarray]:
    labels = []
    for r in rows:
        stem = Path(r["path"]).stem
        if stem not in source:
            raise DataError(str(spec.frame_labels), f"no frame labels for {r['path']}")
        found = np.asarray(source[stem])
        if found.ndim != 1 or not np.issubdtype(found.dtype, np.integer):
            raise DataError(
                str(spec.frame_labels),
                f"{stem}: frame labels must be 1-D integers, got "
                f"{found.dtype} of shape {found.shape}",
            )
        if found.size and not 0 <= int(found.min()) <= int(found.max()) < MAX_CLASSES:
            raise DataError(
                str(spec.frame_labels), f"{stem}: frame labels must lie in [0, {MAX_CLASSES})"
            )
        labels.append(found.astype(np.int64))
    return labels


def _frame_probes(
    name: str,
    feats: list[np.ndarray],
    labels: list[np.ndarray],
    stems: list[str],
    groups: list[str] | None,
    spec: ProbeSpec,
    results: dict[str, dict[str, Any]],
    out_dir: Path | None,
) -> None:
    """Linear and kNN probes of frame labels; adds ``{task: {name: result}}``."""
    num_classes = max(int(lab.max()) for lab in labels if lab.size) + 1
    if spec.label_names is not None:
        if len(spec.label_names) < num_classes:
            raise DataError(
                "--label-names", f"{len(spec.label_names)} names for {num_classes} classes"
            )
        num_classes = len(spec.label_names)
    tr, te = _split(groups, None, len(labels), spec)
    xtr, ytr = frames_from_sequences(
        [feats[i] for i in tr],
        [labels[i] for i in tr],
        offset=spec.label_offset,
        tolerance=spec.tolerance,
        names=[stems[i] for i in tr],
    )
    xte, yte = frames_from_sequences(
        [feats[i] for i in te],
        [labels[i] for i in te],
        offset=spec.label_offset,
        tolerance=spec.tolerance,
        names=[stems[i] for i in te],
    )
    check_task("frames", ytr, spec)
    if "linear" in spec.probes:
        res = linear_probe(
            xtr, ytr, xte, yte, num_classes=num_classes, epochs=spec.epochs, seed=spec.seed
        )
        results.setdefault("frames (linear)", {})[name] = res
        if out_dir is not None and spec.label_names is not None:
            plot_confusion(
                res.confusion, spec.label_names, out_dir / f"{name}_frames_confusion.png"
            )
    if "knn" in spec.probes:
        results.setdefault(f"frames (kNN, k={spec.k})", {})[name] = knn_probe(
            xtr, ytr, xte, yte, k=spec.k, num_classes=num_classes
        )


def run_probes(
    folders: dict[str, Path], spec: ProbeSpec, out_dir: Path | None, command: str = ""
) -> dict[str, dict[str, Any]]:
    """Probe every feature folder (a row each); write the report when ``out_dir`` is set.

    Returns:
        ``{task: {row: result}}`` as :func:`cpc.eval.report.write_report` takes it.

    """
    if spec.label is None and spec.frame_labels is None:
        raise DataError(str(spec.manifest), "nothing to probe: give a label column or frame labels")
    for probe in spec.probes:
        if probe not in PROBES:
            raise DataError(probe, f"unknown probe (choose from {', '.join(PROBES)})")
    check_spec(spec)
    columns = [c for c in (spec.label, spec.split_by) if c]
    rows = read_manifest(spec.manifest, columns)
    groups = [r[spec.split_by] for r in rows] if spec.split_by else None
    frame_source = _frame_label_source(spec.frame_labels) if spec.frame_labels else None
    frame_labels = _frame_labels(frame_source, rows, spec) if frame_source is not None else None
    results: dict[str, dict[str, Any]] = {}
    created = out_dir is not None and not out_dir.exists()
    try:
        _probe_folders(folders, rows, groups, frame_labels, spec, results, out_dir)
    except BaseException:
        if created and out_dir is not None:  # a refused probe leaves no report folder
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    if out_dir is not None:
        _write(results, folders, rows, spec, out_dir, command)
    return results


def _probe_folders(
    folders: dict[str, Path],
    rows: list[dict[str, str]],
    groups: list[str] | None,
    frame_labels: list[np.ndarray] | None,
    spec: ProbeSpec,
    results: dict[str, dict[str, Any]],
    out_dir: Path | None,
) -> None:
    """Every probe of every folder into ``results`` (plots into ``out_dir``)."""
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    for name, root in folders.items():
        feats = _match(read_feature_folder(root), rows, spec.manifest)
        try:
            if spec.label:
                values = [r[spec.label] for r in rows]
                _sequence_probes(name, feats, values, groups, spec, results, out_dir)
            if frame_labels is not None:
                stems = [Path(r["path"]).stem for r in rows]
                _frame_probes(name, feats, frame_labels, stems, groups, spec, results, out_dir)
        except ValueError as err:  # the probes' and splits' own checks (lengths, groups)
            if isinstance(err, CPCError):
                raise
            raise DataError(str(root), f"cannot probe against {spec.manifest}: {err}") from None


def _write(
    results: dict[str, dict[str, Any]],
    folders: dict[str, Path],
    rows: list[dict[str, str]],
    spec: ProbeSpec,
    out_dir: Path,
    command: str,
) -> None:
    """The report: ``probe.md`` and ``probe.json`` with the settings and provenance."""
    split = (
        f"whole '{spec.split_by}' groups held out"
        if spec.split_by
        else "each label's files split"
        if spec.label
        else "random file split"
    )
    notes = "\n".join(
        f"- {line}"
        for line in [
            f"rows: {', '.join(f'{n} = {p}' for n, p in folders.items())}",
            f"manifest: {spec.manifest}; {len(rows)} files; split: {split}, "
            f"test fraction {spec.test_fraction}, seed {spec.seed}",
            "sequence tasks: mean-pooled features; EER: every file, cosine scores "
            "against 3-file templates (no training)",
            f"frame tasks: feature frame j <-> label frame j+{spec.label_offset}",
        ]
    )
    write_report(
        results,
        out_dir,
        "Probes on extracted features",
        provenance=collect_provenance(command),
        notes=notes,
        stem="probe",
    )


def load_label_names(path: Path) -> list[str]:
    """Class names from a JSON list, or a JSON object's ``phones`` / ``names`` list."""
    if not path.is_file():
        raise FileNotFoundError(f"no label names file {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError, JSONDecodeError
        raise DataError(str(path), f"not readable JSON ({err})") from None
    if isinstance(data, dict):
        data = data.get("phones", data.get("names"))
    if not isinstance(data, list):
        raise DataError(str(path), "expected a JSON list of names (or an object with 'phones')")
    return [str(x) for x in data]
