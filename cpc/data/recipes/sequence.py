"""What the sequence modalities (audio, signals) share: windows, padding, chunked extraction."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cpc.data.recipe import ExtractOptions, FileItems, Recipe

if TYPE_CHECKING:
    from cpc.models.cpc import CPCModel


class SequenceRecipe(Recipe):
    """A recipe whose items are variable-length streams along time.

    Training items are :class:`~cpc.data.windows.WindowDataset` windows collated by
    :func:`~cpc.data.collate.pad_collate`; extraction writes one ``.npy`` of features
    per file, computed in chunks (:func:`cpc.extract.extract_dataset`).
    """

    def extract(
        self, model: CPCModel, dataset: FileItems, out: Path, options: ExtractOptions
    ) -> Path:
        """Features of every file (a file that fails is reported and has no row)."""
        from cpc.extract import extract_dataset

        seconds = options.info.seconds_per_sample
        step_seconds = None if seconds is None else model.downsampling * seconds
        return extract_dataset(
            model,
            dataset,
            out,
            options.layer,
            options.chunk_steps,
            step_seconds,
            stream_samples=options.stream_samples,
        )
