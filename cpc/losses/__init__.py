"""The prediction core: InfoNCE over prediction offsets."""

from cpc.losses.infonce import InfoNCE, InfoNCEOutput, Layout, build_layout, sample_candidates

__all__ = ["InfoNCE", "InfoNCEOutput", "Layout", "build_layout", "sample_candidates"]
