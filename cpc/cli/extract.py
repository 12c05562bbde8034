"""``cpc extract --checkpoint RUN --input DATA --output DIR``: features of every file."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from cpc.checkpoints.loading import checkpoint_files, load_model, read_meta
from cpc.cli.checks import check_output_dir, parse_device, prepare_output_dir
from cpc.cli.outputs import writes_folder
from cpc.config import ConfigError
from cpc.data.recipe import DataInfo
from cpc.data.registry import get_recipe
from cpc.errors import CheckpointError
from cpc.features.extract import ExtractOptions, extract_items
from cpc.features.streaming import Streamer

#: Bounds of --stream (milliseconds: an hour) and --chunk-steps.
MAX_STREAM_MS = 3_600_000.0
MAX_CHUNK_STEPS = 10**9


def check_numbers(args: argparse.Namespace) -> None:
    """Refuse --stream and --chunk-steps values that mean nothing, before any work.

    Raises:
        ConfigError: Naming the flag and its range.

    """
    if args.stream is not None and not (
        math.isfinite(args.stream) and 0 < args.stream <= MAX_STREAM_MS
    ):
        raise ConfigError(
            f"--stream must be a number of milliseconds in (0, {MAX_STREAM_MS:g}], "
            f"got {args.stream}"
        )
    if not 0 <= args.chunk_steps <= MAX_CHUNK_STEPS:
        raise ConfigError(
            f"--chunk-steps must be in [0, {MAX_CHUNK_STEPS}] (0: whole files), "
            f"got {args.chunk_steps}"
        )


@writes_folder("output", "--output")
def run(args: argparse.Namespace) -> int:
    """Write the features of every file of ``--input`` into ``--output``."""
    device = parse_device(args.device)
    check_numbers(args)
    check_output_dir(args.output, overwrite=args.overwrite)
    model = load_model(args.checkpoint).to(device)
    meta = read_meta(args.checkpoint)
    recipe = get_recipe(meta["config"]["model"]["modality"])
    # The training data's facts (rate, channels, statistics, image size) are saved in
    # the checkpoint; the recipe reads the new files the same way.
    try:
        info = DataInfo.from_dict(meta.get("data") or {}, recipe.name)
    except ConfigError as err:
        raise CheckpointError(f"{checkpoint_files(args.checkpoint)[1]}: {err}") from None
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
            Streamer(model, args.layer)  # refuses what cannot be streamed
        except ValueError as err:
            print(f"cpc extract: error: --stream: {err}", file=sys.stderr)
            return 2
        piece = max(1, round(args.stream / 1000 / info.seconds_per_sample))
    options = ExtractOptions(info, args.layer, chunk, args.single_array, stream_samples=piece)
    prepare_output_dir(args.output, overwrite=args.overwrite)
    start = time.perf_counter()
    index = extract_items(model, dataset, args.output, options, recipe.layout)
    written = len(index.read_text().splitlines()) - 1  # rows, never more than files read
    print(f"features of {written} files written; index: {index}")
    if piece is not None:
        print(f"streamed in pieces of {piece} samples: {time.perf_counter() - start:.2f} s")
    if dataset.report.skipped:
        print(dataset.report.summary())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``extract``."""
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
    p.set_defaults(func=run)
