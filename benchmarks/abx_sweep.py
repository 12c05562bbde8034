r"""Which pretraining choices lower CPC's across-speaker ABX? Table 1's corpus, one row each.

    python -m benchmarks.abx_sweep OUT --steps 1000 \
        --variant base --variant "sequence negatives" model.negatives=sequence ...

``OUT`` holds (or gets) Table 1's corpus (``OUT/corpus``, the same 30 minutes, 12 speakers,
seed 0 that ``cpc table1`` builds). Each variant is pretrained from seed 0 with the speech
preset plus its overrides (``OUT/sweep/<name>/``, reused when its final checkpoint exists),
then scored exactly as a Table 1 row: phone probes on seen and unseen speakers and phone
ABX within and across speakers on the held-out utterances. Prints one line per variant
and writes ``OUT/sweep/results.json``. A diagnosis tool: the committed table is
``cpc table1``'s.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from cpc.checkpoints.store import load_model
from cpc.data.corpora.espeak import read_phone_inventory
from cpc.eval.abx import items_from_espeak_corpus
from cpc.eval.probes import linear_probe
from cpc.experiments.speech_table import (
    TableSettings,
    _abx,
    _corpus,
    _features,
    _model_features,
    _phone_data,
    _pretrain,
    _slug,
    _split,
    _write_manifest,
)


def main() -> None:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variant",
        nargs="+",
        action="append",
        required=True,
        metavar=("NAME", "OVERRIDE"),
        help="a row: its name, then config overrides",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = args.out.resolve()
    settings = TableSettings(max_steps=args.steps, seed=args.seed)
    utts = _corpus(out / "corpus", settings.corpus_minutes, settings.corpus_speakers, settings.seed)
    split = _split(utts, settings.unseen_speakers, settings.test_fraction, settings.seed)
    (out / "sweep").mkdir(parents=True, exist_ok=True)
    manifest = _write_manifest(split["train"], out / "sweep" / "pretrain_manifest.csv")
    held = split["test_seen"] + split["test_unseen"]
    items = items_from_espeak_corpus(
        out / "corpus", [str(u.path.relative_to(out / "corpus")) for u in held]
    )
    num_phones = len(read_phone_inventory(out / "corpus")["phones"])
    results_path = out / "sweep" / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for name, *overrides in args.variant:
        run_dir = out / "sweep" / _slug(name)
        t0 = time.monotonic()
        if not (run_dir / "checkpoints" / f"step_{args.steps:08d}").exists():
            _pretrain(settings, manifest, run_dir, overrides)
        pretrain_s = time.monotonic() - t0
        fn = _model_features(load_model(run_dir))
        cache = _features(fn, split["train"] + held)
        xtr, ytr = _phone_data(fn, split["train"], cache)
        row: dict[str, object] = {"overrides": overrides, "steps": args.steps}
        for part in ("test_seen", "test_unseen"):
            xte, yte = _phone_data(fn, split[part], cache)
            res = linear_probe(xtr, ytr, xte, yte, num_classes=num_phones, seed=args.seed)
            row[f"phone {part}"] = 100 * res.accuracy
        abx = _abx({u.path: cache[u.path] for u in held}, items, settings)
        row["abx within"] = 100 * abx["within"]
        row["abx across"] = 100 * abx["across"]
        row["pretrain_s"] = pretrain_s
        results[name] = row
        results_path.write_text(json.dumps(results, indent=1))
        print(
            f"{name:>32}: phone {row['phone test_seen']:5.1f} / {row['phone test_unseen']:5.1f}"
            f"  ABX {row['abx within']:5.2f} / {row['abx across']:5.2f}"
            f"  ({pretrain_s:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    import sys

    from cpc.config import ConfigError

    try:
        main()
    except ConfigError as err:  # a bad override: one line and exit 2, as cpc commands give
        print(f"abx_sweep: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
