"""ABX of one Table-1 run's features under variants: layer, centring, and MFCC for scale.

    python -m benchmarks.abx_variants RUN_OUT [--max-group-size 10]

``RUN_OUT`` is a ``cpc table1 --out`` folder (corpus, pretrained ``run/``). Uses the
table's held-out utterances (same split, same tokens, same alignment rule) and prints
within/across ABX errors for: CPC context and encoder features and MFCC, each as is,
centred (the training utterances' mean frame subtracted: a shared offset shrinks every
angle) and utterance-centred (each utterance's own mean frame subtracted, as cepstral mean
normalisation does: removes a per-speaker/per-recording offset). Diagnoses which choice drives the
ABX ordering; it changes nothing in the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from cpc.checkpoints.store import load_model
from cpc.eval.abx import abx_from_items, items_from_espeak_corpus
from cpc.eval.baselines import logmel_features
from cpc.experiments.speech_table import LABEL_OFFSET, _corpus, _mfcc, _split, _wave
from cpc.features.extract import extract_sequence


def main() -> None:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--max-group-size", type=int, default=10)
    parser.add_argument("--train-utterances", type=int, default=60)
    parser.add_argument("--only", nargs="*", help="feature sets to run (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    utts = _corpus(args.out / "corpus", 30.0, 12, 0)
    split = _split(utts, 2, 0.3, 0)
    held = split["test_seen"] + split["test_unseen"]
    items = items_from_espeak_corpus(
        args.out / "corpus", [str(u.path.relative_to(args.out / "corpus")) for u in held]
    )
    model = load_model(args.out / "run").eval()
    sets = {
        "CPC context": lambda w: extract_sequence(model, w, "context", None),
        "CPC encoder": lambda w: extract_sequence(model, w, "encoder", None),
        "MFCC": _mfcc,
        # Controls: is MFCC's edge its cepstral smoothing (no pitch harmonics)? Does
        # CPC's across-speaker error fall with training (an earlier checkpoint)?
        "log-mel 80": lambda w: logmel_features(w, 16000, n_mels=80),
    }
    for ckpt in sorted((args.out / "run" / "checkpoints").glob("step_*"))[:-1]:
        early = load_model(ckpt).eval()
        sets[f"CPC context @ {ckpt.name}"] = lambda w, m=early: extract_sequence(
            m, w, "context", None
        )
    if args.only:
        sets = {k: v for k, v in sets.items() if k in args.only}
    results = {}
    for name, fn in sets.items():
        feats = {u.path.stem: fn(_wave(u.path)) for u in held}
        mean = torch.cat([fn(_wave(u.path)) for u in split["train"][: args.train_utterances]]).mean(
            0
        )
        variants = {
            "": feats,
            " centred": {k: v - mean for k, v in feats.items()},
            " utterance-centred": {k: v - v.mean(0) for k, v in feats.items()},
        }
        for variant, data in variants.items():
            res = abx_from_items(
                data, items, 100.0, LABEL_OFFSET / 100.0, max_group_size=args.max_group_size
            )
            results[name + variant] = {"within": res.within, "across": res.across}
            print(
                f"{name + variant:>28}: within {100 * (res.within or 0):5.2f}  "
                f"across {100 * (res.across or 0):5.2f}",
                flush=True,
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
