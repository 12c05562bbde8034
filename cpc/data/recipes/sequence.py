"""What the sequence modalities (audio, signals) share: windows, padding, chunked extraction."""

from __future__ import annotations

from cpc.data.recipe import Recipe


class SequenceRecipe(Recipe):
    """A recipe whose items are variable-length streams along time.

    Training items are :class:`~cpc.data.windows.WindowDataset` windows collated by
    :func:`~cpc.data.collate.pad_collate`; extraction writes one ``.npy`` of features
    per file, computed in chunks (:func:`cpc.features.extract.extract_dataset`).
    """

    layout = "sequence"
