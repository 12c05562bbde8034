"""How much of the phones discrete units capture: purities and PNMI (Hsu et al. 2021).

With ``p(y, z)`` the joint frequency of phone ``y`` and unit ``z`` over aligned frames:

- phone purity ``= sum_z p(z) max_y p(y | z)``: the accuracy of labelling each unit with
  its most frequent phone (grows with k);
- cluster purity ``= sum_y p(y) max_z p(z | y)``: how concentrated each phone is on one
  unit (shrinks with k);
- PNMI ``= I(y; z) / H(y)``: the share of the phone entropy the units explain.

:func:`compare_units` (``cpc units quality``) measures them on the built-in espeak corpus
for CPC features of a checkpoint against MFCC units (13 coefficients + deltas +
delta-deltas), with k-means fitted by :mod:`cpc.features.units` on the training
utterances and scored on held-out ones (every fifth utterance). Alignment as in
:mod:`cpc.experiments.speech_table`: feature frame ``j`` with label frame ``j + 1``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from cpc.data.corpora.espeak import load_phone_labels
from cpc.errors import DataError
from cpc.eval.baselines import mfcc_features
from cpc.eval.probes import frames_from_sequences
from cpc.features.units import entropy, fit_units, read_features

LABEL_OFFSET = 1  # the rule of cpc.experiments.speech_table


@dataclass
class UnitQuality:
    """Phone purity, cluster purity, PNMI and the units' entropy (nats) on some frames."""

    phone_purity: float
    cluster_purity: float
    pnmi: float
    unit_entropy: float
    frames: int


def unit_quality(phones: np.ndarray, units: np.ndarray, k: int) -> UnitQuality:
    """The measures of the module docstring for aligned ``phones`` and ``units`` (s,)."""
    if phones.shape != units.shape or phones.ndim != 1:
        raise ValueError(f"phones {phones.shape} and units {units.shape} must be aligned (s,)")
    units = units.astype(np.int64)
    _, y = np.unique(phones, return_inverse=True)
    joint = np.zeros((int(y.max()) + 1, k))
    np.add.at(joint, (y, units), 1.0)
    joint /= joint.sum()
    py, pz = joint.sum(1), joint.sum(0)
    phone_purity = float(joint.max(0).sum())  # sum_z p(z) max_y p(y|z) = sum_z max_y p(y,z)
    cluster_purity = float(joint.max(1).sum())
    nz = joint > 0
    mutual = float((joint[nz] * np.log(joint[nz] / np.outer(py, pz)[nz])).sum())
    h_y = float(-(py[py > 0] * np.log(py[py > 0])).sum())
    pnmi = mutual / h_y if h_y > 0 else 0.0
    return UnitQuality(phone_purity, cluster_purity, pnmi, entropy(units, k), len(units))


def write_mfcc_features(corpus: Path, out: Path) -> Path:
    """MFCC + deltas of every utterance of ``corpus``, in the layout of ``cpc extract``."""
    out.mkdir(parents=True, exist_ok=True)
    with open(corpus / "manifest.csv", newline="") as f:
        paths = [row["path"] for row in csv.DictReader(f)]
    rows = []
    for n, rel in enumerate(paths):
        wave, rate = sf.read(corpus / rel, dtype="float32", always_2d=True)
        feats = mfcc_features(wave.mean(1), rate, n_mfcc=13, deltas=True).numpy()
        name = f"{n:06d}_{Path(rel).stem}.npy"
        np.save(out / name, feats)
        rows.append((str(corpus / rel), name, feats.shape[0], feats.shape[1]))
    with open(out / "index.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "features", "steps", "dim"])
        writer.writerows(rows)
    return out


def score_units(
    features_dir: Path, corpus: Path, ks: list[int], normalize: str, seed: int = 0
) -> dict[int, UnitQuality]:
    """Fit units on 4/5 of the utterances, score on the rest, for every k."""
    labels = {Path(p).name: v for p, v in load_phone_labels(corpus).items()}
    files = read_features(features_dir)
    held = [i % 5 == 4 for i in range(len(files))]
    train = [feats for (_, feats), h in zip(files, held, strict=True) if not h]
    test = [(Path(path).name, feats) for (path, feats), h in zip(files, held, strict=True) if h]
    results = {}
    for k in ks:
        model = fit_units(train, k, normalize, seed)  # type: ignore[arg-type]
        units = [model.assign(feats) for _, feats in test]
        phones = [labels[name].astype(np.int64) for name, _ in test]
        u, y = frames_from_sequences(
            [torch.from_numpy(a)[:, None] for a in units],
            [torch.from_numpy(p) for p in phones],
            offset=LABEL_OFFSET,
            tolerance=5,
            names=[name for name, _ in test],
        )
        results[k] = unit_quality(y.numpy(), u[:, 0].numpy(), k)
    return results


def compare_units(
    corpus: Path, cpc_features: Path, work: Path, *, ks: list[int], normalize: list[str]
) -> list[dict[str, Any]]:
    """Score CPC units against MFCC units (written to ``work/mfcc``) for every k and norm.

    Returns one row per (features, normalize, k) with the fields of :class:`UnitQuality`;
    each row is printed as JSON as soon as it is measured. The inputs are checked before
    ``work`` is written: a refused call writes nothing.

    Raises:
        DataError: ``corpus`` has no ``manifest.csv`` or ``cpc_features`` is not a
            feature folder.

    """
    if not (Path(corpus) / "manifest.csv").is_file():
        raise DataError(str(corpus), "no manifest.csv: the corpus is a `cpc data espeak` folder")
    read_features(cpc_features)
    mfcc = write_mfcc_features(corpus, work / "mfcc")
    rows = []
    for name, folder in [("CPC", cpc_features), ("MFCC", mfcc)]:
        for norm in normalize:
            for k, q in score_units(folder, corpus, ks, norm).items():
                rows.append({"features": name, "normalize": norm, "k": k, **asdict(q)})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def write_unit_report(
    rows: list[dict[str, Any]], out: Path, *, command: str, note: str, seconds: float
) -> str:
    """Write ``units.json`` (rows, command, note, seconds) and ``table.md``; return the table."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {"command": command, "note": note, "seconds": seconds, "rows": rows}
    (out / "units.json").write_text(json.dumps(meta, indent=2))
    lines = [
        "| features | normalize | k | phone purity | cluster purity | PNMI "
        "| unit entropy / log k |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['features']} | {r['normalize']} | {r['k']} | {r['phone_purity']:.3f} "
            f"| {r['cluster_purity']:.3f} | {r['pnmi']:.3f} "
            f"| {r['unit_entropy'] / np.log(r['k']):.2f} |"
        )
    table = "\n".join(lines)
    (out / "table.md").write_text(table + "\n")
    return table
