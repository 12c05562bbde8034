"""Hugging Face Hub folders: ``model.safetensors`` + ``config.json`` + a model card.

``cpc.save_pretrained(model, dir)``, ``cpc.from_pretrained(dir or "user/repo")`` and
``cpc.push_to_hub(model, repo)`` write and read them (the model itself knows no files).
A model saves only when it carries the record of what it was built from
(``model.hub_config``: set by :func:`cpc.data.registry.build_model`, :func:`cpc.load`
and :func:`from_pretrained`). ``config.json`` holds:

- ``model``: the :class:`cpc.config.ModelConfig` the model was built from (enough to
  rebuild it; nothing is executed when loading, the weights are safetensors);
- ``training``: the whole training config, when the model came from a checkpoint;
- ``data``: the data facts saved with it (channels, rates, normalisation statistics);
- ``imported``: where a converted model came from (:mod:`cpc.checkpoints.convert`).

A local folder is read without any network access (``HF_HUB_OFFLINE=1`` is not even
needed); a repo id is fetched with ``hf_hub_download`` (from the cache when offline).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import safetensors.torch
import yaml
from huggingface_hub import ModelCard, ModelCardData

from cpc.checkpoints.loading import MAX_META_BYTES, config_matching_weights, load_weights
from cpc.checkpoints.store import state_dict_cpu
from cpc.data.registry import build_model
from cpc.errors import CheckpointError
from cpc.models.cpc import CPCModel

#: What :func:`from_pretrained` passes on to ``hf_hub_download``.
DOWNLOAD_ARGS = ("revision", "cache_dir", "force_download", "local_files_only", "token")
TAGS = ["contrastive-predictive-coding", "self-supervised", "feature-extraction"]
CONFIG = "config.json"
WEIGHTS = "model.safetensors"  # as a training checkpoint names them

CARD = """---
{{ card_data }}
---

# {{ title }}

A Contrastive Predictive Coding model saved by the `cpc` package ({{ cpc_version }}):
{{ summary }}

```python
import cpc
model = cpc.from_pretrained("{{ repo_hint }}")            # or a local folder
feats, steps = model.features(wave[None], layer="context")  # (1, s, 1, {{ context_dim }})
```

## Model

```yaml
{{ model_yaml }}
```

## Training

{{ training }}

## Data facts

```json
{{ data_json }}
```
"""


def save_pretrained(model: CPCModel, folder: str | Path) -> Path:
    """Write ``model.safetensors``, ``config.json`` and a model card (``README.md``).

    Raises:
        ValueError: The model carries no record of its config (a bare builder call).

    """
    if model.hub_config is None:
        raise ValueError(
            "this model does not know its config: build it with cpc.data.registry.build_model "
            "or load it with cpc.load / cpc.from_pretrained before save_pretrained"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(state_dict_cpu(model), str(folder / WEIGHTS))
    (folder / CONFIG).write_text(json.dumps(model.hub_config, indent=2, default=str))
    card = ModelCard.from_template(
        ModelCardData(library_name="cpc", tags=TAGS),
        template_str=CARD,
        **model_card_fields(model.hub_config),
    )
    card.save(folder / "README.md")
    return folder


def push_to_hub(model: CPCModel, repo_id: str, **hub: Any) -> str:
    """Save the model's Hub folder and upload it to ``repo_id`` (needs a token)."""
    from huggingface_hub import HfApi  # the network client: only when pushing

    api = HfApi()
    api.create_repo(repo_id, exist_ok=True, **hub)
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp)
        return str(api.upload_folder(repo_id=repo_id, folder_path=tmp))


def model_card_fields(config: dict[str, Any]) -> dict[str, Any]:
    """Template values of :data:`CARD` from a ``config.json``."""
    model = config["model"]
    imported = config.get("imported")
    training = config.get("training")
    if imported:
        summary = f"imported from {imported.get('from')} ({imported.get('source')})."
        text = "Not trained by `cpc`: converted; the prediction head is not imported."
    elif training:
        summary = f"pretrained for {config.get('step')} steps."
        text = "```yaml\n" + yaml.safe_dump(training, sort_keys=False).strip() + "\n```"
    else:
        summary = "no training record was saved with it."
        text = "No training config was saved with this model."
    return {
        "title": f"CPC ({model.get('modality')}, {model.get('context')} context)",
        "cpc_version": config.get("cpc_version"),
        "summary": summary,
        "repo_hint": "user/repo",
        "context_dim": model.get("context_dim"),
        "model_yaml": yaml.safe_dump(model, sort_keys=False).strip(),
        "training": text,
        "data_json": json.dumps(config.get("data", {}), indent=2, default=str),
    }


def _download(model_id: str, filename: str, **hub: Any) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id=model_id, filename=filename, **hub))


def _read_config(path: Path) -> dict[str, Any]:
    """``config.json``, refused in one line unless it is a JSON object with ``model``."""
    if path.stat().st_size > MAX_META_BYTES:
        raise CheckpointError(f"{path}: {path.stat().st_size} bytes is too large for a config")
    try:
        config = json.loads(path.read_text())
    except RecursionError:
        raise CheckpointError(f"{path}: nested too deeply to be a model config") from None
    except ValueError as err:  # UnicodeDecodeError, JSONDecodeError
        raise CheckpointError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{path}: no 'model' section")
    return config


def from_pretrained(model_id: str | Path, **hub: Any) -> CPCModel:
    """Rebuild a model from a Hub folder or repo id (eval mode).

    A local folder is read with no network access; a repo id goes through
    ``hf_hub_download`` (``revision``, ``cache_dir``, ``token``... are passed on).

    The weights' header is compared with the model ``config.json`` describes before
    the model is built (as :func:`cpc.load` does), and the weights must be finite.

    Raises:
        CheckpointError: A missing or malformed ``config.json``, weights that do not
            match it, or weights holding NaN or infinite values (the tensor is named).

    """
    hub = {k: v for k, v in hub.items() if k in DOWNLOAD_ARGS and v is not None}
    model_id = str(model_id)
    local = Path(model_id)
    weights = local / WEIGHTS if local.is_dir() else _download(model_id, WEIGHTS, **hub)
    path = local / CONFIG if local.is_dir() else _download(model_id, CONFIG, **hub)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; it holds the config the model needs")
    config = _read_config(path)
    modality = config["model"].get("modality", "audio")
    # Names and shapes against the weights' header before anything is allocated:
    # config.json alone must not decide how much memory is taken.
    model_config = config_matching_weights(
        {"model": dict(config["model"]), "data": {"kind": modality}}, weights, model_id
    )
    model = build_model(model_config.model)
    load_weights(model, weights)
    model.hub_config = config
    return model.eval()
