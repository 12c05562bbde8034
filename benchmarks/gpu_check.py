"""CUDA smoke checks on a real GPU: ``python -m benchmarks.gpu_check --out DIR``.

What ``tests/test_fake_cuda.py`` checks on a CPU that pretends to be CUDA, run on the
real device, plus what only a device shows:

- every builder of :data:`CASES`: forward + backward on ``cuda``, loss against the same
  model on the CPU (TF32 off), every gradient on the device and finite;
- extraction (:func:`cpc.features.extract.extract_sequence`) against the CPU;
- host syncs of one training step (``micro_step`` + ``optimizer_step``), counted by
  ``torch.cuda.set_sync_debug_mode`` (the fake-CUDA test predicts them);
- ``train()`` on ``cuda``: a tiny signal run (``.npy`` files, so no audio library),
  ``run.precision=auto`` decided and cached here, a resume that keeps it, and the
  loader's pinned memory and non-blocking copies on the way;
- bf16 autocast training steps.

Writes ``DIR/gpu_check.json`` (every check, pass or fail, with its error) and exits 1
if any failed. Needs only torch, numpy, einops, safetensors and pyyaml at run time.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cpc.config import load_config
from cpc.features.extract import extract_sequence
from cpc.models.builders import cpc_audio, cpc_image, cpc_signal
from cpc.models.cpc import CPCModel
from cpc.train import steps, train

TINY: dict[str, Any] = {"context_dim": 16, "num_offsets": 3, "num_negatives": 6}

Case = tuple[Callable[[], CPCModel], Callable[[], tuple[Tensor, Tensor | None]]]

#: One small model per builder and per context/predictor kind, with its inputs.
CASES: dict[str, Case] = {
    "audio waveform, GRU": (
        lambda: cpc_audio(channels=16, kernels=(10, 8, 4), strides=(5, 4, 2), **TINY),
        lambda: (torch.randn(2, 1200), torch.tensor([1200, 900])),
    ),
    "audio, CPC_audio's padded layer-norm encoder, 2-layer LSTM": (
        lambda: cpc_audio(
            channels=16,
            kernels=(10, 8, 4),
            strides=(5, 4, 2),
            padding=(3, 2, 1),
            norm="layer_unbiased",
            context="lstm",
            context_layers=2,
            **TINY,
        ),
        lambda: (torch.randn(2, 1200), torch.tensor([1200, 1000])),
    ),
    "audio, transformer context, mlp predictor": (
        lambda: cpc_audio(
            channels=16,
            kernels=(10, 8),
            strides=(5, 4),
            context="transformer",
            predictor="mlp",
            **TINY,
        ),
        lambda: (torch.randn(2, 800), None),
    ),
    "audio, conv context, transformer predictor": (
        lambda: cpc_audio(
            channels=16,
            kernels=(10, 8),
            strides=(5, 4),
            context="conv",
            predictor="transformer",
            norm="batch",
            **TINY,
        ),
        lambda: (torch.randn(2, 800), torch.tensor([800, 700])),
    ),
    "signal, GRU, sequence negatives": (
        lambda: cpc_signal(3, channels=16, negatives="sequence", **TINY),
        lambda: (torch.randn(2, 96, 3), torch.tensor([96, 80])),
    ),
    "image grid, masked conv, full softmax": (
        lambda: cpc_image(
            1,
            patch_size=8,
            patch_stride=4,
            widths=(8,),
            dim=16,
            context="masked_conv",
            context_dim=16,
            num_offsets=2,
            negatives="all",
        ),
        lambda: (torch.randn(2, 1, 20, 20), None),
    ),
}

#: The log-mel front-end needs torchaudio, which a bare GPU machine may lack.
SPECTRAL: Case = (
    lambda: cpc_audio(frontend="logmel", channels=16, kernels=(3,), strides=(1,), **TINY),
    lambda: (torch.randn(2, 3200), torch.tensor([3200, 2800])),
)

CUDA = torch.device("cuda")


def _generator(device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(0)


def check_case(case: Case) -> dict[str, Any]:
    """Forward + backward on CUDA against the CPU (no TF32: same arithmetic)."""
    build, inputs = case
    torch.manual_seed(0)
    model = build()
    x, lengths = inputs()
    reference = copy.deepcopy(model)
    # the same negatives on both devices: draw them on the CPU, pass them to both
    out_cpu = reference(x, lengths, generator=_generator(torch.device("cpu")))
    model.to(CUDA)
    lc = None if lengths is None else lengths.to(CUDA)
    out = model(x.to(CUDA), lc, generator=_generator(CUDA))
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads, "no gradient reached the parameters"
    assert all(g.device.type == "cuda" for g in grads), "a gradient is not on the GPU"
    assert all(bool(torch.isfinite(g).all()) for g in grads), "a gradient is not finite"
    # negatives differ between the devices' generators: compare with a loose bound
    difference = abs(float(out.loss) - float(out_cpu.loss)) / abs(float(out_cpu.loss))
    return {"loss_cuda": float(out.loss), "loss_cpu": float(out_cpu.loss), "rel": difference}


def check_extraction() -> dict[str, Any]:
    build, _ = CASES["audio waveform, GRU"]
    torch.manual_seed(0)
    model = build().eval()
    x = torch.randn(16000)
    expected = extract_sequence(model, x, chunk_steps=50)
    got = extract_sequence(model.to(CUDA), x.to(CUDA), chunk_steps=50)
    assert got.device.type == "cuda"
    error = float((got.cpu() - expected).norm() / expected.norm())
    assert error < 1e-4, f"relative error {error}"
    return {"relative_error": error, "steps": int(got.shape[0])}


def check_step_syncs() -> dict[str, Any]:
    """Host syncs of one training step, as CUDA reports them (the sync debug mode)."""
    build, inputs = CASES["audio waveform, GRU"]
    torch.manual_seed(0)
    model = build().to(CUDA)
    x, lengths = inputs()
    batch = {"x": x.pin_memory(), "lengths": lengths.pin_memory()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    for _ in range(2):  # warm-up: allocator, cuBLAS handles, Adam's state
        steps.micro_step(model, batch, device=CUDA, precision="fp32",
                         generator=_generator(CUDA), scale=1.0)  # fmt: skip
        steps.optimizer_step(model, optimizer, grad_clip=1.0)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            steps.micro_step(model, batch, device=CUDA, precision="fp32",
                             generator=_generator(CUDA), scale=1.0)  # fmt: skip
            steps.optimizer_step(model, optimizer, grad_clip=1.0)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    lines = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
    where = [_cpc_line(w) for w in caught if "synchroniz" in str(w.message)]
    return {"syncs": len(lines), "where": where}


def _cpc_line(w: warnings.WarningMessage) -> str:
    return f"{Path(w.filename).name}:{w.lineno}"


def _signal_corpus(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    writer = folder / "w1"
    writer.mkdir(parents=True, exist_ok=True)
    for i in range(8):
        t = np.arange(300)[:, None]
        signal = np.sin(t / (5 + i) + rng.random(3)) + 0.1 * rng.random((300, 3))
        np.save(writer / f"s{i}.npy", signal.astype(np.float32))
    return folder


def check_training(folder: Path) -> dict[str, Any]:
    """train() on CUDA with auto precision, then a resume that keeps it; bf16 too."""
    data = _signal_corpus(folder / "signals")
    base = [
        "model.modality=signal", "data.kind=signal", f"data.train={data}",
        "model.in_channels=3", "model.kernels=[4, 4]", "model.strides=[2, 2]",
        "model.channels=16", "model.context_dim=16", "model.num_offsets=3",
        "model.num_negatives=6", "data.window=64", "data.batch_size=4",
        "data.normalize=dataset", "data.num_workers=1", "run.device=cuda",
        "run.progress=false", "run.val_every=1000", "run.ckpt_every=1000",
        "optim.warmup_steps=1",
    ]  # fmt: skip
    first = train(load_config(None, [*base, f"run.out_dir={folder / 'auto'}",
                                      "run.precision=auto", "optim.max_steps=3"]))  # fmt: skip
    resumed = train(load_config(None, [*base, f"run.out_dir={folder / 'auto'}",
                                        "run.precision=auto", "optim.max_steps=5"]))  # fmt: skip
    assert resumed.summary["precision"] == first.summary["precision"]
    assert resumed.summary["resumed_from"] is not None
    bf16 = train(load_config(None, [*base, f"run.out_dir={folder / 'bf16'}",
                                     "run.precision=bf16", "optim.max_steps=3"]))  # fmt: skip
    for result in (first, resumed, bf16):
        assert np.isfinite(result.summary["train"]["loss"])
    return {
        "auto_chose": first.summary["precision"],
        "resumed_with": resumed.summary["precision"],
        "bf16": bf16.summary["precision"],
        "items_per_s": first.summary["items_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CPC_CACHE_DIR", str(args.out / "cache"))  # auto's cache, kept
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    checks: dict[str, Callable[[], dict[str, Any]]] = {
        f"builder: {name}": (lambda case=case: check_case(case)) for name, case in CASES.items()
    }
    if "torchaudio" not in os.environ.get("CPC_GPU_CHECK_STUBS", ""):
        checks["builder: audio log-mel"] = lambda: check_case(SPECTRAL)
    checks["extraction"] = check_extraction
    checks["host syncs of a training step"] = check_step_syncs
    checks["train() on cuda: auto precision, resume, bf16"] = lambda: check_training(args.out)
    report: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "bf16_supported": torch.cuda.is_bf16_supported(),
        "stubbed_modules": os.environ.get("CPC_GPU_CHECK_STUBS", ""),
        "checks": {},
    }
    for name, check in checks.items():
        start = time.perf_counter()
        try:
            result = {"ok": True, **check()}
        except Exception as error:  # every check runs; the report says which failed
            result = {"ok": False, "error": f"{type(error).__name__}: {error}",
                      "traceback": traceback.format_exc(limit=6)}  # fmt: skip
        result["seconds"] = round(time.perf_counter() - start, 2)
        report["checks"][name] = result
        print(f"{'ok  ' if result['ok'] else 'FAIL'} {name}: "
              f"{ {k: v for k, v in result.items() if k != 'traceback'} }", flush=True)  # fmt: skip
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
    failed = [n for n, r in report["checks"].items() if not r["ok"]]
    print(f"{len(checks) - len(failed)} of {len(checks)} checks passed", flush=True)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
