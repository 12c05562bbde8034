"""The ``cpc`` command line."""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import torch


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="cpc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a small model on synthetic streams for a minute")
    demo.add_argument("--seconds", type=float, default=60.0)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cpc`` command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
