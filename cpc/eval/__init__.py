"""Evaluation of frozen features: probes, ABX, verification, baselines, reports, figures.

Nothing here pretrains a model (:mod:`cpc.experiments` does, then evaluates); the
probes train only their classifier.

- :mod:`cpc.eval.probes`: linear and kNN probes, frame alignment, pooling.
- :mod:`cpc.eval.probe_folder`: those probes on ``cpc extract`` folders with labels from
  a manifest or frame-label files (``cpc probe``).
- :mod:`cpc.eval.abx`: phone ABX within and across speakers, ``.item`` files
  (``cpc abx``).
- :mod:`cpc.eval.splits`: train/test splits by speaker or writer.
- :mod:`cpc.eval.verification`: writer verification and its equal error rate.
- :mod:`cpc.eval.signatures`: online signature verification (local features, the
  enrolment protocol, scoring); :mod:`cpc.eval.dtw`: batched dynamic time warping.
- :mod:`cpc.eval.unit_quality`: phone purity and PNMI of discrete units
  (``cpc units quality``).
- :mod:`cpc.eval.baselines`: MFCC, log-mel, raw-pixel and signal-statistics features.
- :mod:`cpc.eval.report`: JSON and Markdown result tables with provenance.
- :mod:`cpc.eval.plots`: training curves, accuracy by offset, confusion, projections.
"""

from cpc.eval.baselines import (
    logmel_features,
    mfcc_features,
    num_frames,
    raw_pixel_features,
    signal_statistics,
)
from cpc.eval.plots import (
    plot_accuracy_vs_offset,
    plot_confusion,
    plot_projection,
    plot_training_curves,
)
from cpc.eval.probes import (
    FeatureExtractor,
    ProbeResult,
    extract,
    frames_from_sequences,
    knn_probe,
    linear_probe,
    pool_sequences,
)
from cpc.eval.report import collect_provenance, write_report
from cpc.eval.splits import split_by_group, split_within_groups
from cpc.eval.verification import EERResult, equal_error_rate, verification_eer

__all__ = [
    "EERResult",
    "FeatureExtractor",
    "ProbeResult",
    "collect_provenance",
    "equal_error_rate",
    "extract",
    "frames_from_sequences",
    "knn_probe",
    "linear_probe",
    "logmel_features",
    "mfcc_features",
    "num_frames",
    "plot_accuracy_vs_offset",
    "plot_confusion",
    "plot_projection",
    "plot_training_curves",
    "pool_sequences",
    "raw_pixel_features",
    "signal_statistics",
    "split_by_group",
    "split_within_groups",
    "verification_eer",
    "write_report",
]
