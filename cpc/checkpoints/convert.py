"""Import CPC_audio checkpoints (facebookresearch/CPC_audio) as ``cpc`` models.

Two on-disk layouts are read, both with ``torch.load(weights_only=True)`` only (a file
holding other pickled objects is refused, never executed):

- the hub file of its published models: one ``.pt`` holding ``{"config": its command-line
  arguments, "weights": the model's state dict}``;
- a training folder: ``checkpoint_N.pt`` (``{"gEncoder": state dict, "cpcCriterion": ...}``)
  beside ``checkpoint_args.json``; the highest ``N`` is taken.

What is reproduced (facts from the CPC_audio paper and repository): the waveform
encoder's five convolutions (kernels 10, 8, 4, 4, 4; strides 5, 4, 2, 2, 2) padded by
3, 2, 1, 1, 1; its ``layerNorm`` (per step over channels, unbiased variance, eps 1e-5,
``(1, C, 1)`` affine: our ``norm="layer_unbiased"``), ``batchNorm`` (BatchNorm1d with its
running statistics) or ``ID`` (no norm), each followed by a ReLU; and the context, an
LSTM or GRU of ``nLevelsGRU`` layers. The prediction head is not imported (the hub
file does not hold it, and CPC_audio's default transformer head has no counterpart
here): the converted model is a feature extractor whose predictor starts from a fixed
random initialisation. Options that change ``z`` or ``c`` and cannot be represented are
refused with one line naming the option.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import Tensor

from cpc.checkpoints.loading import META, WEIGHTS, file_sha256, load_plain_torch
from cpc.checkpoints.store import state_dict_cpu
from cpc.config import Config, ModelConfig, save_config
from cpc.data.recipes.audio import AudioModel
from cpc.data.registry import build_model
from cpc.errors import CheckpointError
from cpc.models.cpc import CPCModel
from cpc.version import __version__

#: CPC_audio's encoder: kernels, strides and padding of its five convolutions.
KERNELS = (10, 8, 4, 4, 4)
STRIDES = (5, 4, 2, 2, 2)
PADDING = (3, 2, 1, 1, 1)
SAMPLE_RATE = 16000
NORMS = {"layerNorm": "layer_unbiased", "batchNorm": "batch", "ID": "none"}
CONTEXTS = {"LSTM": "lstm", "GRU": "gru"}
#: Options that change z or c, with the values that can be imported.
SUPPORTED = {
    "encoder_type": ("cpc",),
    "arMode": tuple(CONTEXTS),
    "normMode": tuple(NORMS),
    "cpc_mode": (None, "none"),
    "speakerEmbedding": (0, None),
}
_TRAIN_FILE = re.compile(r"^checkpoint_(\d+)\.pt$")


@dataclass
class CPCAudioCheckpoint:
    """What a CPC_audio checkpoint holds that the import needs.

    Attributes:
        source: the ``.pt`` file read.
        layout: ``"hub"`` or ``"train"``.
        args: its arguments (the hub file's ``config`` or ``checkpoint_args.json``).
        weights: the model's state dict (``gEncoder.*`` and ``gAR.*``).
        epoch: ``N`` of ``checkpoint_N.pt`` (None for a hub file).

    """

    source: Path
    layout: str
    args: dict[str, Any]
    weights: dict[str, Tensor]
    epoch: int | None


def _torch_load(path: Path) -> Any:
    return load_plain_torch(path, "torch file")


def _training_file(folder: Path) -> tuple[Path, int]:
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _TRAIN_FILE.match(p.name))]
    if not found:
        raise CheckpointError(f"{folder}: no checkpoint_N.pt (not a CPC_audio training folder)")
    epoch, path = max(found)
    return path, epoch


def _read_args(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; it holds the arguments the model was built with")
    try:
        args = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not readable JSON ({err})") from err
    if not isinstance(args, dict):
        raise CheckpointError(f"{path}: expected a JSON object of arguments")
    return args


def read_cpc_audio(path: str | Path) -> CPCAudioCheckpoint:
    """Read a CPC_audio hub file, training checkpoint file or training folder."""
    path = Path(path)
    epoch: int | None
    if path.is_dir():
        file, epoch = _training_file(path)
    elif path.is_file():
        file = path
        match = _TRAIN_FILE.match(path.name)
        epoch = int(match.group(1)) if match else None
    else:
        raise CheckpointError(f"{path}: no such CPC_audio checkpoint file or training folder")
    data = _torch_load(file)
    if not isinstance(data, dict):
        raise CheckpointError(f"{file}: not a CPC_audio checkpoint (not a dict)")
    if "weights" in data and "config" in data:
        if not isinstance(data["config"], dict) or not isinstance(data["weights"], dict):
            raise CheckpointError(f"{file}: 'config' and 'weights' must be dicts")
        return CPCAudioCheckpoint(
            file, "hub", data["config"], _tensors(file, data["weights"]), None
        )
    if "gEncoder" in data:
        args = _read_args(file.parent / "checkpoint_args.json")
        return CPCAudioCheckpoint(file, "train", args, _tensors(file, data["gEncoder"]), epoch)
    raise CheckpointError(
        f"{file}: neither a hub file (config, weights) nor a training checkpoint (gEncoder); "
        f"keys: {sorted(map(str, data))[:6]}"
    )


def _tensors(file: Path, weights: object) -> dict[str, Tensor]:
    """The state dict, refused unless every entry is a finite floating-point tensor."""
    if not isinstance(weights, dict):
        raise CheckpointError(f"{file}: the weights are a {type(weights).__name__}, not a dict")
    for key, value in weights.items():
        if not isinstance(value, Tensor):
            raise CheckpointError(
                f"{file}: weight {key!r} is a {type(value).__name__}, not a tensor"
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{file}: weight {key!r} holds NaN or infinite values")
    return weights


def _int_arg(ckpt: CPCAudioCheckpoint, key: str, default: int) -> int:
    """An integer argument of the checkpoint, refused naming the key when it is not one."""
    value = ckpt.args.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        value = str(value)
    try:
        number = int(value)
    except ValueError:
        raise CheckpointError(f"{ckpt.source}: {key}={value!r} is not an integer") from None
    if not 1 <= number <= 10_000:
        raise CheckpointError(f"{ckpt.source}: {key}={number} is out of range [1, 10000]")
    return number


def _check_options(ckpt: CPCAudioCheckpoint) -> None:
    for key, allowed in SUPPORTED.items():
        value = ckpt.args.get(key, allowed[0])
        if value not in allowed:
            shown = [a for a in allowed if a is not None]
            raise CheckpointError(
                f"{ckpt.source}: {key}={value!r} cannot be imported (supported: {shown})"
            )


def model_config(ckpt: CPCAudioCheckpoint) -> ModelConfig:
    """The ``cpc`` model config equivalent to a CPC_audio checkpoint (sizes from weights)."""
    _check_options(ckpt)
    w = ckpt.weights
    for i, kernel in enumerate(KERNELS):
        key = f"gEncoder.conv{i}.weight"
        if key not in w:
            raise CheckpointError(f"{ckpt.source}: {key} missing (not CPC_audio's encoder)")
        if w[key].dim() != 3:
            raise CheckpointError(f"{ckpt.source}: {key} has shape {tuple(w[key].shape)}, not 3-D")
        if w[key].shape[-1] != kernel:
            raise CheckpointError(
                f"{ckpt.source}: {key} has kernel {w[key].shape[-1]}, CPC_audio's is {kernel}"
            )
    layers = sum(1 for k in w if re.fullmatch(r"gAR\.baseNet\.weight_ih_l\d+", k))
    if layers == 0:
        raise CheckpointError(f"{ckpt.source}: gAR.baseNet.weight_ih_l0 missing (no LSTM/GRU)")
    kind = CONTEXTS[ckpt.args.get("arMode", "GRU")]
    for key in ("gAR.baseNet.weight_ih_l0", "gAR.baseNet.weight_hh_l0"):
        if key not in w or w[key].dim() != 2:
            raise CheckpointError(f"{ckpt.source}: {key} missing or not a matrix")
    hidden = int(w["gAR.baseNet.weight_hh_l0"].shape[1])
    gates = {"lstm": 4, "gru": 3}[kind]
    if w["gAR.baseNet.weight_ih_l0"].shape[0] != gates * hidden:
        raise CheckpointError(
            f"{ckpt.source}: arMode={ckpt.args.get('arMode')!r} does not match the weights "
            f"(gAR.baseNet.weight_ih_l0 {tuple(w['gAR.baseNet.weight_ih_l0'].shape)})"
        )
    declared = ckpt.args.get("nLevelsGRU", layers)
    if declared != layers:
        raise CheckpointError(f"{ckpt.source}: nLevelsGRU={declared} but the weights have {layers}")
    encoder = AudioModel(
        frontend="waveform",
        sample_rate=SAMPLE_RATE,
        channels=int(w["gEncoder.conv0.weight"].shape[0]),
        kernels=list(KERNELS),
        strides=list(STRIDES),
        padding=list(PADDING),
        norm=NORMS[ckpt.args.get("normMode", "layerNorm")],  # type: ignore[arg-type]
    )
    return ModelConfig(
        modality="audio",
        modality_fields=encoder,
        context=kind,  # type: ignore[arg-type]
        context_dim=hidden,
        context_layers=layers,
        num_offsets=_int_arg(ckpt, "nPredicts", 12),
        num_negatives=_int_arg(ckpt, "negativeSamplingExt", 128),
        # CPC_audio draws negatives from the batch unless it sampled within sequences;
        # said explicitly, since this package's speech default is the anchor's sequence.
        negatives="sequence" if ckpt.args.get("samplingType") == "samesequence" else "batch",
    )


def _state_dict(ckpt: CPCAudioCheckpoint, model: CPCModel) -> dict[str, Tensor]:
    """CPC_audio's encoder and context weights under this package's names."""
    ours = model.state_dict()
    mapped: dict[str, Tensor] = {}
    for key, value in ckpt.weights.items():
        if m := re.fullmatch(r"gEncoder\.conv(\d)\.(weight|bias)", key):
            name = f"encoder.layers.{3 * int(m.group(1))}.{m.group(2)}"
        elif m := re.fullmatch(r"gEncoder\.batchNorm(\d)\.(\w+)", key):
            name = f"encoder.layers.{3 * int(m.group(1)) + 1}.{m.group(2)}"
        elif m := re.fullmatch(r"gAR\.baseNet\.(\w+)", key):
            name = f"context.rnn.{m.group(1)}"
        else:
            raise CheckpointError(f"{ckpt.source}: weight {key!r} has no counterpart here")
        if name not in ours:
            raise CheckpointError(f"{ckpt.source}: weight {key!r} does not fit the model")
        if value.numel() != ours[name].numel():
            raise CheckpointError(
                f"{ckpt.source}: {key} has shape {tuple(value.shape)}, "
                f"expected {tuple(ours[name].shape)}"
            )
        mapped[name] = value.reshape(ours[name].shape).to(ours[name].dtype)  # (1, C, 1) -> (C,)
    missing = [k for k in ours if k.startswith(("encoder.", "context.")) and k not in mapped]
    if missing:
        raise CheckpointError(f"{ckpt.source}: weights missing for {missing[:4]}")
    return mapped


def from_cpc_audio(path: str | Path) -> CPCModel:
    """A ``cpc`` model (eval mode) with the weights of a CPC_audio checkpoint.

    ``model.features(wave)`` gives CPC_audio's ``z`` (``layer="encoder"``) and ``c``.
    The predictor is not imported (see the module docstring).
    """
    return _convert(read_cpc_audio(path))[0]


def _convert(ckpt: CPCAudioCheckpoint) -> tuple[CPCModel, ModelConfig]:
    config = model_config(ckpt)
    with torch.random.fork_rng():  # the predictor's initialisation is the same every time
        torch.manual_seed(0)
        model = build_model(config)
    model.load_state_dict(_state_dict(ckpt, model), strict=False)
    return model.eval(), config


def convert_cpc_audio(path: str | Path, out: str | Path) -> Path:
    """Write a ``cpc`` run directory (weights, ``meta.json``, ``config.yaml``) for ``path``.

    ``cpc.load(out)``, ``cpc info``, ``cpc extract`` then work on it. ``out`` must not
    exist or be empty; it is written in a temporary folder and renamed into place.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointError(f"{out}: exists and is not an empty folder; choose another --out")
    ckpt = read_cpc_audio(path)
    model, model_cfg = _convert(ckpt)
    config = Config(model=model_cfg)
    config.run.out_dir = str(out)
    meta = {
        "format": 1,
        "step": None,
        "config": config.to_dict(),
        "cpc_version": __version__,
        "torch_version": torch.__version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data": {"sample_rate": SAMPLE_RATE},
        "imported": {
            "from": "CPC_audio",
            "source": str(ckpt.source.resolve()),
            "layout": ckpt.layout,
            "epoch": ckpt.epoch,
            "args": ckpt.args,
            "predictor": "not imported: random initialisation (seed 0)",
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".tmp-{out.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    safetensors.torch.save_file(state_dict_cpu(model), str(tmp / WEIGHTS))
    meta["sha256"] = {WEIGHTS: file_sha256(tmp / WEIGHTS)}  # cpc.load verifies it
    (tmp / META).write_text(json.dumps(meta, indent=2, default=str))
    save_config(config, tmp / "config.yaml")
    if out.exists():
        out.rmdir()
    os.replace(tmp, out)
    return out
