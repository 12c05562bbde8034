"""Feature extraction speed: the paper model's real-time factor on long recordings.

The real-time factor is seconds of audio per second of compute, for
:func:`cpc.features.extract.extract_sequence` (what ``cpc extract`` runs on every file: one
recording at a time, in chunks of 1000 latents with the recurrent state carried over).
bf16 runs the same call under ``torch.autocast(dtype=torch.bfloat16)``; it is timed
only where the device has native bf16 matrix products (without them oneDNN emulates
bf16, slower than float32), and its features are compared with float32's.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.common import MatmulProbe, bf16_support, count_flops, versus_ceiling
from cpc.features.extract import Layer, extract_sequence
from cpc.models.cpc import CPCModel

#: bf16 features must stay within this of float32: relative Frobenius error over the
#: whole recording, and cosine similarity of every step's feature vector.
BF16_MAX_RELATIVE_ERROR = 0.02
BF16_MIN_COSINE = 0.999


def _features(model: CPCModel, x: torch.Tensor, layer: Layer, bf16: bool) -> torch.Tensor:
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        return extract_sequence(model, x, layer).float()


def extraction(
    model: CPCModel,
    device: torch.device,
    seconds: float = 60.0,
    sample_rate: int = 16000,
    repeats: int = 3,
) -> dict[str, Any]:
    """Real-time factors per layer and dtype, and the bf16 error against float32."""
    model = model.to(device).eval()
    gen = torch.Generator().manual_seed(0)
    x = (0.1 * torch.randn(int(seconds * sample_rate), generator=gen)).to(device)
    native, how = bf16_support(device)
    probes = {"float32": MatmulProbe(device)}
    if native:
        probes["bf16"] = MatmulProbe(device, torch.bfloat16)
    rows = []
    layers: tuple[Layer, ...] = ("context", "encoder")
    for layer in layers:
        flops = count_flops(lambda: _features(model, x, layer, False))  # noqa: B023
        for dtype, probe in probes.items():
            bf16 = dtype == "bf16"
            r = versus_ceiling(lambda: _features(model, x, layer, bf16), flops, probe, repeats)  # noqa: B023
            best = max(probe.measure(3)["gflops_max"], r["ceiling_gflops"])
            rows.append(
                {
                    "layer": layer,
                    "dtype": dtype,
                    "time_s": r["time_s"],
                    "realtime_factor": seconds / r["time_s"],
                    "gflop_per_audio_second": flops / 1e9 / seconds,
                    "ceiling_gflops": r["ceiling_gflops"],
                    "ratio_to_ceiling": r["ratio_to_ceiling"],
                    # what the same ratio gives at the best rate this run saw: an estimate
                    # of the factor on an idle machine, for a run shared with other jobs
                    "realtime_factor_at_best_ceiling": r["ratio_to_ceiling"]
                    * best
                    / (flops / 1e9 / seconds),
                }
            )
    out: dict[str, Any] = {
        "recording_s": seconds,
        "sample_rate": sample_rate,
        "batch": 1,
        "rows": rows,
        "bf16_native": native,
        "bf16_check": how,
    }
    if native:
        ref = _features(model, x, "context", False)
        low = _features(model, x, "context", True)
        out["bf16_error"] = {
            "relative_error": float((low - ref).norm() / ref.norm()),
            "min_cosine": float(F.cosine_similarity(low, ref, dim=-1).min()),
            "max_relative_error_allowed": BF16_MAX_RELATIVE_ERROR,
            "min_cosine_allowed": BF16_MIN_COSINE,
        }
    return out
