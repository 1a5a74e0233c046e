"""The 3D segmenters' kind of patch network: class-index sphere targets, softmax, one pick per component.

A subclass gives its `defaults` (every option of `options` among them), its network (`network_for`, with
`classes` outputs), its loss of logits and class-index targets, and the network's down-sampling factor; training,
inference, sizes and weights are `PatchNetwork`'s (`architectures.parts.patch_network`).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from architectures.parts.patch_network import PatchNetwork
from architectures.parts.volumes import (
    class_count,
    min_component_sizes,
    paint_spheres,
    picks_from_segmentation,
    segment,
)
from benchmark.data import Tomogram
from benchmark.interface import Sample


class PatchSegmenter(PatchNetwork):
    """A 3D segmenter trained on sphere-target patches, picking components of its tiled sliding-window segmentation."""

    kind = "3d-segmenter"
    options: ClassVar[tuple[str, ...]] = (
        *PatchNetwork.options,
        "target_radius_fraction",  # target sphere radius, x the particle radius
        "min_size_fraction",  # smallest component kept, x the target sphere's volume
    )

    @property
    def classes(self) -> int:
        """Output channels: background plus one per copick label."""
        return class_count(self.particles)

    def target_for(self, sample: Sample) -> np.ndarray:
        """The sample's class-index volume: a ball of `target_radius_fraction` x radius per particle."""
        fraction = self.config["target_radius_fraction"]
        return paint_spheres(sample.tomogram.shape, sample.picks, self.particles, sample.tomogram.voxel_size, fraction)

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities."""
        return torch.softmax(logits, dim=1)

    def predict(self, tomogram: Tomogram) -> pd.DataFrame:
        """One pick per large-enough connected component of each class in the tiled argmax segmentation."""
        c = self.config
        self.network.eval()
        with torch.inference_mode():
            labels, probability = segment(tomogram, self._outputs, self._window(), self.device)
        sizes = min_component_sizes(
            self.particles, tomogram.voxel_size, c["target_radius_fraction"], c["min_size_fraction"]
        )
        return picks_from_segmentation(labels, probability, self.particles, tomogram.voxel_size, sizes)
