"""``cpc info CHECKPOINT``: describe a checkpoint without allocating its model."""

from __future__ import annotations

import argparse
import json

from cpc.checkpoints.loading import checked_config
from cpc.checkpoints.safe_load import skeleton


def run(args: argparse.Namespace) -> int:
    """Print what a checkpoint holds."""
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


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``info``."""
    p = sub.add_parser("info", help="describe a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--json", action="store_true", help="also print the metadata as JSON")
    p.set_defaults(func=run)
