"""The ``cpc`` command line: ``pretrain``, ``extract``, ``info``, ``data``, ``demo``.

Every sub-command is a thin shell over the Python API; errors about the user's input
(a bad config key, a missing file, an empty data set) are printed as one line naming
what is wrong, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

#: ``cpc table1``'s prediction-step ablation: the CPC paper's Table 1 compares these.
ABLATION = (2, 4, 8, 12)


def _pretrain(args: argparse.Namespace) -> int:
    import logging

    from cpc.config import load_config
    from cpc.train.trainer import train

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = load_config(args.config, args.overrides)
    result = train(config)
    print(json.dumps(result.summary, indent=2, default=str))
    return 0


def _extract(args: argparse.Namespace) -> int:
    from cpc.cli_checks import check_output_dir, parse_device, prepare_output_dir
    from cpc.config import ConfigError
    from cpc.data.recipe import DataInfo, ExtractOptions
    from cpc.data.registry import get_recipe
    from cpc.loading import CheckpointError, load_model, read_meta, resolve

    device = parse_device(args.device)
    check_output_dir(args.output, overwrite=args.overwrite)
    model = load_model(args.checkpoint).to(device)
    meta = read_meta(args.checkpoint)
    recipe = get_recipe(meta["config"]["model"]["modality"])
    # The training data's facts (rate, channels, statistics, image size) are saved in
    # the checkpoint; the recipe reads the new files the same way.
    try:
        info = DataInfo.from_dict(meta.get("data") or {}, recipe.name)
    except ConfigError as err:
        raise CheckpointError(f"{resolve(args.checkpoint)[1]}: {err}") from None
    dataset = recipe.file_dataset(args.input, info, model.receptive_field, args.strict)
    chunk = None if args.chunk_steps <= 0 else args.chunk_steps
    try:
        model.context_layer(args.layer)
    except ValueError as err:
        print(f"cpc extract: error: --layer: {err}", file=sys.stderr)
        return 2
    piece = None
    if args.stream is not None:
        try:
            if info.seconds_per_sample is None:
                raise ValueError("the data has no sampling rate to convert MS into samples")
            model.streamer(args.layer)  # refuses what cannot be streamed
        except ValueError as err:
            print(f"cpc extract: error: --stream: {err}", file=sys.stderr)
            return 2
        piece = max(1, round(args.stream / 1000 / info.seconds_per_sample))
    options = ExtractOptions(info, args.layer, chunk, args.single_array, stream_samples=piece)
    prepare_output_dir(args.output, overwrite=args.overwrite)
    start = time.perf_counter()
    index = recipe.extract(model, dataset, args.output, options)
    written = len(index.read_text().splitlines()) - 1  # rows, never more than files read
    print(f"features of {written} files written; index: {index}")
    if piece is not None:
        print(f"streamed in pieces of {piece} samples: {time.perf_counter() - start:.2f} s")
    if dataset.report.skipped:
        print(dataset.report.summary())
    return 0


def _info(args: argparse.Namespace) -> int:
    from cpc.loading import checked_config
    from cpc.safe_load import skeleton

    # Nothing is allocated: the config is validated and matched with the weight file's
    # header, and the model is described from a meta-device skeleton.
    config, meta = checked_config(args.checkpoint)
    model = skeleton(config.model)
    params = sum(p.numel() for p in model.parameters())
    print(f"checkpoint: {meta.get('path', args.checkpoint)}")
    print(f"step: {meta.get('step')}   cpc version: {meta.get('cpc_version')}")
    print(f"model: {config.model.modality}  parameters: {params:,}")
    print(f"offsets: {model.offsets}   downsampling: {model.downsampling}")
    print(f"encoder out_dim: {model.encoder.out_dim}   context out_dim: {model.context.out_dim}")
    if args.json:
        print(json.dumps(meta, indent=2, default=str))
    return 0


def _data_espeak(args: argparse.Namespace) -> int:
    from cpc.data.corpora.espeak import build_espeak_corpus

    info = build_espeak_corpus(
        args.out,
        minutes=args.minutes,
        num_speakers=args.speakers,
        seed=args.seed,
        languages=tuple(args.languages),
        overwrite=args.overwrite,
    )
    print(
        f"{info.num_utterances} utterances, {info.total_seconds / 60:.1f} min, "
        f"{len(info.speakers)} speakers, {len(info.phones)} phones in {info.build_seconds:.1f} s"
        f"\nmanifest: {Path(info.root) / 'manifest.csv'}"
    )
    return 0


def _data_pen(args: argparse.Namespace) -> int:
    from cpc.data.corpora.pen import generate_pen_corpus
    from cpc.data.corpora.pen_sessions import generate_session_corpus

    for flag, value, least in (
        ("--writers", args.writers, 1),
        ("--samples", args.samples, 1),
        ("--sessions", args.sessions, 1),
        ("--forgeries", args.forgeries, 0),
    ):
        if value < least:
            print(f"error: {flag} must be at least {least}, got {value}", file=sys.stderr)
            return 2
    if args.setting == "easy":
        manifest = generate_pen_corpus(
            args.out,
            num_writers=args.writers,
            samples_per_writer=args.samples,
            seed=args.seed,
            fmt=args.format,
            forgeries_per_writer=args.forgeries,
        )
    else:
        if args.samples % args.sessions:
            print(
                f"error: --samples {args.samples} is not a multiple of --sessions {args.sessions}",
                file=sys.stderr,
            )
            return 2
        manifest = generate_session_corpus(
            args.out,
            num_writers=args.writers,
            sessions=args.sessions,
            per_session=args.samples // args.sessions,
            forgeries_per_writer=args.forgeries,
            seed=args.seed,
            fmt=args.format,
        )
    print(f"pen corpus written; manifest: {manifest}")
    return 0


def _table(args: argparse.Namespace, settings: object) -> int:
    import logging

    from cpc.eval.speech_table import run_speech_table

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    command = "cpc " + " ".join(sys.argv[1:])
    run_speech_table(args.out, settings, command)  # type: ignore[arg-type]
    out = Path(args.out)
    print((out / "table1.md").read_text())
    if (out / "table1_steps.md").is_file():
        print((out / "table1_steps.md").read_text().split("## Provenance")[0])
    print("plots:")
    for png in sorted(out.glob("*.png")):
        print(f"  {png}")
    return 0


def _table1(args: argparse.Namespace) -> int:
    from cpc.eval.speech_table import TableSettings

    settings = TableSettings(
        corpus_minutes=args.corpus_minutes,
        corpus_speakers=args.speakers,
        max_steps=args.steps,
        max_time=args.max_time,
        ablation_offsets=[] if args.no_ablation else (args.ablation or list(ABLATION)),
        seed=args.seed,
        overrides=args.overrides,
        rows={row[0]: row[1:] for row in args.row or []},
    )
    return _table(args, settings)


def _quickstart(args: argparse.Namespace) -> int:
    from cpc.eval.speech_table import TableSettings

    settings = TableSettings(
        corpus_minutes=20,
        corpus_speakers=10,
        speaker_corpus_minutes=16,
        speaker_corpus_speakers=32,
        max_steps=100_000,
        max_time=args.minutes * 60,
        seed=args.seed,
    )
    return _table(args, settings)


def _data_ucr(args: argparse.Namespace) -> int:
    from cpc.data.ucr import bundled_ts, export_ts

    source = Path(args.ts) if args.ts else bundled_ts(args.name, args.split)
    print(f"series of {source} written; manifest: {export_ts(source, args.out)}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    """Train a small signal model on synthetic streams and print per-offset accuracy."""
    from cpc.models.builders import cpc_signal

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    model = cpc_signal(2, channels=64, context_dim=64, num_offsets=6, num_negatives=32)
    opt = torch.optim.AdamW(model.parameters(), 2e-3)
    n = torch.arange(512, dtype=torch.float32)
    start, step = time.monotonic(), 0
    print(f"training {sum(p.numel() for p in model.parameters()):,} parameters for {args.seconds}s")
    while time.monotonic() - start < args.seconds:
        f = torch.rand(32, 1, generator=g) * 0.08 + 0.02
        ph = torch.rand(32, 1, generator=g) * 2 * math.pi
        x = torch.sin(2 * math.pi * f * n + ph) + 0.1 * torch.randn(32, 512, generator=g)
        out = model(torch.stack([x, torch.cos(2 * math.pi * f * n)], -1))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        if step % 20 == 0:
            acc = " ".join(f"{a:.2f}" for a in out.accuracy.tolist())
            print(f"step {step:4d}  loss {out.loss.item():.3f}  accuracy per offset [{acc}]")
        step += 1
    print(f"chance level: {1 / 33:.3f}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from cpc.convert import convert_cpc_audio

    out = convert_cpc_audio(args.checkpoint, args.out)
    print(f"converted {args.checkpoint} -> {out} (load with cpc.load({str(out)!r}))")
    return 0


def _units_fit(args: argparse.Namespace) -> int:
    from cpc.units import cli_fit

    return cli_fit(args)


def _units_apply(args: argparse.Namespace) -> int:
    from cpc.units import cli_apply

    return cli_apply(args)


def _export(args: argparse.Namespace) -> int:
    from cpc.export import cli_export

    return cli_export(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="cpc", description="Contrastive Predictive Coding for speech, signals and images."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="pretrain a model from a YAML config")
    p.add_argument("config", help="YAML config file, or a shipped preset: speech_small_cpu, ...")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides")
    p.set_defaults(func=_pretrain)

    p = sub.add_parser("extract", help="write features of every file of a folder or manifest")
    p.add_argument("--checkpoint", required=True, help="run dir, checkpoint dir or weights file")
    p.add_argument(
        "--input",
        required=True,
        help="folder (recursive) or CSV/TSV manifest; images: a folder, idx:DIR or idx-t10k:DIR",
    )
    p.add_argument("--output", required=True, type=Path)
    p.add_argument(
        "--layer",
        default="context",
        help="encoder, context, or context.N: layer N (1-based) of a GRU/LSTM context",
    )
    p.add_argument(
        "--chunk-steps",
        type=int,
        default=1000,
        help="latent steps per chunk (result equals whole-file features; 0: whole files)",
    )
    p.add_argument(
        "--single-array",
        action="store_true",
        help="images: every grid in one grids.npy (n, rows, cols, d) instead of one file each",
    )
    p.add_argument(
        "--stream",
        type=float,
        metavar="MS",
        help="push each file through the streaming extractor in pieces of MS milliseconds "
        "(same features; see benchmarks/streaming.py for its timing)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--strict", action="store_true", help="stop at the first bad file")
    p.add_argument(
        "--overwrite", action="store_true", help="write into a folder holding earlier features"
    )
    p.set_defaults(func=_extract)

    convert = sub.add_parser("convert", help="import a model trained elsewhere").add_subparsers(
        dest="source", required=True
    )
    p = convert.add_parser("cpc_audio", help="a CPC_audio hub file or training folder")
    p.add_argument("checkpoint", help="hub .pt file, checkpoint_N.pt, or a training folder")
    p.add_argument("--out", required=True, type=Path, help="run directory to write (new)")
    p.set_defaults(func=_convert)

    units = sub.add_parser("units", help="discrete units: k-means over features").add_subparsers(
        dest="action", required=True
    )
    p = units.add_parser("fit", help="fit k-means on the frames of a features folder")
    p.add_argument("features", help="folder written by `cpc extract`")
    p.add_argument("--k", type=int, required=True, help="number of units (e.g. 50, 100, 200)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--normalize", choices=["standard", "l2", "none"], default="standard")
    p.add_argument("--max-frames", type=int, default=500_000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_units_fit)
    p = units.add_parser("apply", help="write per-file unit sequences")
    p.add_argument("features", help="folder written by `cpc extract`")
    p.add_argument("--units", required=True, type=Path, help="folder written by `units fit`")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--dedup", action="store_true", help="collapse runs of the same unit")
    p.set_defaults(func=_units_apply)

    p = sub.add_parser("export", help="export the feature extractor to ONNX")
    p.add_argument("checkpoint", help="run dir, checkpoint dir or weights file")
    p.add_argument("out", type=Path, help="the .onnx file to write")
    p.add_argument("--layer", default="context", help="encoder, context or context.N")
    p.set_defaults(func=_export)

    p = sub.add_parser("info", help="describe a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--json", action="store_true", help="also print the metadata as JSON")
    p.set_defaults(func=_info)

    data = sub.add_parser("data", help="build a built-in data set").add_subparsers(
        dest="corpus", required=True
    )
    p = data.add_parser("espeak", help="synthetic multi-speaker speech with phone labels")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--minutes", type=float, default=1.0)
    p.add_argument("--speakers", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--languages", nargs="+", default=["en"])
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_data_espeak)
    p = data.add_parser("pen", help="synthetic pen trajectories (sigma-lognormal writers)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--writers", type=int, default=10)
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--forgeries", type=int, default=0)
    p.add_argument("--format", choices=["npy", "svc"], default="npy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--setting",
        choices=["hard", "easy"],
        default="hard",
        help="hard: sessions, complex signatures, forgers with their own timing "
        "(cpc.data.corpora.pen_sessions); easy: the first generator (cpc.data.corpora.pen)",
    )
    p.add_argument("--sessions", type=int, default=4, help="hard: sessions per writer")
    p.set_defaults(func=_data_pen)
    p = data.add_parser("ucr", help="a UCR/UEA .ts file (or one aeon bundles) as .npy + manifest")
    p.add_argument("--out", required=True, type=Path)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--ts", help="path of a .ts file")
    source.add_argument("--name", help="a data set aeon bundles, e.g. BasicMotions")
    p.add_argument("--split", choices=["train", "test"], default="train")
    p.set_defaults(func=_data_ucr)

    p = sub.add_parser(
        "quickstart",
        help="build the built-in corpus, pretrain the small preset for a bounded time, probe",
    )
    p.add_argument("--out", type=Path, default=Path("runs/quickstart"))
    p.add_argument("--minutes", type=float, default=12.0, help="pretraining time budget")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_quickstart)

    p = sub.add_parser("table1", help="the CPC paper's Table 1 in miniature (espeak corpus)")
    p.add_argument("--out", type=Path, default=Path("results/table1"))
    p.add_argument("--corpus-minutes", type=float, default=30.0)
    p.add_argument("--speakers", type=int, default=12)
    p.add_argument("--steps", type=int, default=1500, help="pretraining steps per model")
    p.add_argument("--max-time", type=float, default=0.0, help="seconds per model (0: none)")
    p.add_argument(
        "--ablation",
        type=int,
        nargs="*",
        default=list(ABLATION),
        metavar="K",
        help="numbers of prediction steps to compare, one more model each (default, and "
        "--ablation alone: 2 4 8 12)",
    )
    p.add_argument("--no-ablation", action="store_true", help="skip the prediction-step models")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--row",
        nargs="+",
        action="append",
        metavar="NAME OVERRIDE",
        help="an extra CPC row: its name, then config overrides (repeatable), e.g. "
        "--row 'transformer head' model.predictor=transformer",
    )
    p.add_argument("overrides", nargs="*", help="config overrides (section.key=value)")
    p.set_defaults(func=_table1)

    p = sub.add_parser("demo", help="train a small model on synthetic streams for a minute")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_demo)

    from cpc.commands import abx as abx_command
    from cpc.commands import probe as probe_command

    abx_command.register(sub, data)
    probe_command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cpc`` command."""
    from cpc.config import ConfigError
    from cpc.data.errors import DataError
    from cpc.loading import CheckpointError
    from cpc.train.steps import NonFiniteLossError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, DataError, CheckpointError, NonFiniteLossError) as err:
        message = str(err)
    except OSError as err:  # a path the user gave: missing, a folder, not writable...
        where = f"{err.filename}: " if err.filename else ""
        message = f"{where}{err.strerror or err}"
    line = " ".join(part.strip() for part in message.splitlines())
    print(f"cpc {args.command}: error: {line}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
