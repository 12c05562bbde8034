"""``cpc export RUN OUT.onnx``: the feature extractor as an ONNX graph."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cpc.checkpoints.export import OPSET, export_onnx
from cpc.checkpoints.loading import load_model
from cpc.checkpoints.outputs import atomic_file


def run(args: argparse.Namespace) -> int:
    """``cpc export RUN OUT.onnx [--layer context]``."""
    model = load_model(args.checkpoint)
    try:
        model.context_layer(args.layer)
        with atomic_file(args.out) as tmp:  # whole or absent
            export_onnx(model, tmp, args.layer)
        path = args.out
    except ValueError as err:
        print(f"cpc export: error: {err}", file=sys.stderr)
        return 2
    info = {"layer": args.layer, "opset": OPSET, "downsampling": model.downsampling}
    info["receptive_field"] = model.receptive_field
    print(f"exported {args.layer} features to {path}: {json.dumps(info)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``export``."""
    p = sub.add_parser("export", help="export the feature extractor to ONNX")
    p.add_argument("checkpoint", help="run dir, checkpoint dir or weights file")
    p.add_argument("out", type=Path, help="the .onnx file to write")
    p.add_argument("--layer", default="context", help="encoder, context or context.N")
    p.set_defaults(func=run)
