"""Hugging Face Hub folders: ``model.safetensors`` + ``config.json`` + a model card.

:class:`cpc.models.cpc.CPCModel` inherits ``huggingface_hub.ModelHubMixin``, which
gives ``save_pretrained(dir)``, ``CPCModel.from_pretrained(dir or "user/repo")`` and
``push_to_hub(repo)``; the files are written and read here. ``config.json`` holds:

- ``model``: the :class:`cpc.config.ModelConfig` the model was built from (enough to
  rebuild it; nothing is executed when loading, the weights are safetensors);
- ``training``: the whole training config, when the model came from a checkpoint;
- ``data``: the data facts saved with it (channels, rates, normalisation statistics);
- ``imported``: where a converted model came from (:mod:`cpc.convert`).

A local folder is read without any network access (``HF_HUB_OFFLINE=1`` is not even
needed); a repo id is fetched with ``hf_hub_download`` (from the cache when offline).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import safetensors.torch
import yaml

if TYPE_CHECKING:
    from cpc.models.cpc import CPCModel

# cpc.models.cpc imports this module for CARD, so the package's own modules are
# imported inside the functions.
CONFIG = "config.json"
WEIGHTS = "model.safetensors"  # as a training checkpoint names them

CARD = """---
{{ card_data }}
---

# {{ title }}

A Contrastive Predictive Coding model saved by the `cpc` package ({{ cpc_version }}):
{{ summary }}

```python
from cpc import CPCModel
model = CPCModel.from_pretrained("{{ repo_hint }}")       # or a local folder
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


def hub_config(model_config: dict[str, Any], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``config.json`` contents for a model config and (optionally) checkpoint meta."""
    from cpc.version import __version__

    out: dict[str, Any] = {"cpc_version": __version__, "model": model_config}
    if meta:
        out["training"] = meta.get("config")
        out["step"] = meta.get("step")
        out["data"] = meta.get("data", {})
        if "imported" in meta:
            out["imported"] = meta["imported"]
    return out


def save_folder(model: CPCModel, folder: Path) -> None:
    """Write ``model.safetensors`` and ``config.json`` into ``folder``."""
    from cpc.train.checkpoint import state_dict_cpu

    if model.hub_config is None:
        raise ValueError(
            "this model does not know its config: build it with cpc.config.build_model or "
            "load it with cpc.load / CPCModel.from_pretrained before save_pretrained"
        )
    safetensors.torch.save_file(state_dict_cpu(model), str(folder / WEIGHTS))
    (folder / CONFIG).write_text(json.dumps(model.hub_config, indent=2, default=str))


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


def load_folder(model_id: str, config: dict[str, Any] | None, **hub: Any) -> CPCModel:
    """Rebuild a model from a folder or repo id (``config`` as the mixin read it)."""
    from cpc.config import Config, ConfigError, build_model
    from cpc.loading import CheckpointError, load_weights

    local = Path(model_id)
    weights = local / WEIGHTS if local.is_dir() else _download(model_id, WEIGHTS, **hub)
    if config is None:
        path = local / CONFIG if local.is_dir() else _download(model_id, CONFIG, **hub)
        if not path.is_file():
            raise CheckpointError(f"{path}: missing; it holds the config the model needs")
        config = json.loads(path.read_text())
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{model_id}: {CONFIG} has no 'model' section")
    try:
        modality = config["model"].get("modality", "audio")
        model_config = Config.from_dict(
            {"model": dict(config["model"]), "data": {"kind": modality}}
        )
    except ConfigError as err:
        raise CheckpointError(f"{model_id}: bad model config: {err}") from err
    model = build_model(model_config.model)
    load_weights(model, weights)
    model.hub_config = config
    return model.eval()
