"""The common body of the 3D segmenters: patch training under the runner's tracker, tiled sliding-window picks.

A subclass gives its `defaults` (every option of `OPTIONS` among them), its network, its loss, the network's
down-sampling factor and, where it runs faster so, a memory format; training (Adam on batches of class-balanced
sphere-target patches), inference (`segment` then one pick per large-enough component), the size checks, the seeded
network and its saved or pretrained weights are this module's.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from architectures.parts.volumes import (
    PatchSampler,
    SlidingWindow,
    class_count,
    min_component_sizes,
    picks_from_segmentation,
    segment,
)
from benchmark.data import Tomogram
from benchmark.errors import BenchError
from benchmark.interface import Architecture, Budget, Sample, Tracker
from benchmark.particles import ParticleTable

#: the config options this module reads; a subclass's `defaults` holds them beside its network's and loss's own.
OPTIONS = (
    "patch_size",  # cubic training patch, a multiple of the down-sampling factor
    "batch_size",
    "lr",  # Adam
    "steps_per_epoch",
    "target_radius_fraction",  # target sphere radius, x the particle radius
    "particle_share",  # share of patches centred near a particle (class drawn uniformly), the rest anywhere
    "jitter",  # voxels: random shift of a particle-centred patch
    "roi_size",  # sliding window (an int or [z, y, x]), multiples of the down-sampling factor
    "overlap",
    "sw_batch_size",
    "mode",  # blending of overlapping windows: gaussian or constant
    "tile_size",  # the largest region (z, y, x) inferred at once, 36 bytes per voxel
    "min_size_fraction",  # smallest component kept, x the target sphere's volume
    "pretrained",  # path of a saved state dict to start from
)
WEIGHTS = "network.pt"
CONFIG = "config.json"


class PatchSegmenter(Architecture):
    """A 3D segmenter trained on sphere-target patches, picking components of its tiled sliding-window segmentation."""

    kind = "3d-segmenter"
    #: the layout the network and its inputs run in (channels-last spares some networks oneDNN's copies on CPU).
    memory_format: ClassVar[torch.memory_format] = torch.contiguous_format

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        missing = [option for option in OPTIONS if option not in cls.defaults]
        if missing:
            raise TypeError(f"{cls.__name__}.defaults lacks the segmenter option(s) {', '.join(missing)}")

    def __init__(self, config: dict[str, Any], particles: ParticleTable, device: str, seed: int):
        super().__init__(config, particles, device, seed)
        self._check_sizes()
        self.network = self._build()
        if self.config["pretrained"]:
            self.network.load_state_dict(torch.load(self.config["pretrained"], map_location=device, weights_only=True))

    @abc.abstractmethod
    def network_for(self, classes: int) -> nn.Module:
        """The untrained network of the config: (n, 1, *spatial) images to (n, classes, *spatial) logits."""

    @abc.abstractmethod
    def loss_function(self) -> nn.Module:
        """The training loss of (n, classes, *patch) logits and (n, 1, *patch) class-index targets."""

    @abc.abstractmethod
    def downsampling(self) -> int:
        """The factor the network divides every side by: patch and window sides must be multiples of it."""

    def fit(self, train: Sequence[Sample], val: Sequence[Sample], budget: Budget, tracker: Tracker) -> None:
        """Adam on the loss, `steps_per_epoch` batches of augmented class-balanced patches per epoch."""
        c = self.config
        sampler = PatchSampler.from_samples(
            train,
            self.particles,
            c["target_radius_fraction"],
            size=c["patch_size"],
            particle_share=c["particle_share"],
            jitter=c["jitter"],
            seed=self.seed,
        )
        loss_function = self.loss_function()
        optimiser = torch.optim.Adam(self.network.parameters(), lr=c["lr"])
        self.network.train()
        unit = "x".join(map(str, [c["patch_size"]] * 3)) + " patches"
        for _ in tracker.epochs(samples=c["steps_per_epoch"] * c["batch_size"], unit=unit):
            losses = []
            for _ in range(c["steps_per_epoch"]):
                if tracker.exhausted():  # an epoch longer than the minutes left ends early
                    break
                images, targets = sampler.batch(c["batch_size"])
                losses.append(self.training_step(images, targets, optimiser, loss_function))
            tracker.log(loss=float(np.mean(losses)) if losses else float("nan"))
        self.network.eval()

    def training_step(
        self, images: np.ndarray, targets: np.ndarray, optimiser: torch.optim.Optimizer, loss_function: nn.Module
    ) -> float:
        """One optimisation step on a batch of images (n, 1, *patch) and class targets; returns the loss."""
        images, targets = (torch.from_numpy(a).to(self.device) for a in (images, targets))
        optimiser.zero_grad(set_to_none=True)
        loss = loss_function(self.network(images.to(memory_format=self.memory_format)), targets)
        loss.backward()
        optimiser.step()
        return loss.item()

    def predict(self, tomogram: Tomogram) -> pd.DataFrame:
        """One pick per large-enough connected component of each class in the tiled argmax segmentation."""
        c = self.config
        self.network.eval()
        with torch.inference_mode():
            labels, probability = segment(tomogram, self._probabilities, self._window(), self.device)
        sizes = min_component_sizes(
            self.particles, tomogram.voxel_size, c["target_radius_fraction"], c["min_size_fraction"]
        )
        return picks_from_segmentation(labels, probability, self.particles, tomogram.voxel_size, sizes)

    def save(self, directory: Path) -> None:
        """Write the network weights and the config."""
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.network.state_dict(), directory / WEIGHTS)
        (directory / CONFIG).write_text(json.dumps(self.config, indent=2))

    def load(self, directory: Path) -> None:
        """Rebuild the network from the saved config and restore its weights."""
        self.config = json.loads((directory / CONFIG).read_text())
        self.network = self._build()
        self.network.load_state_dict(torch.load(directory / WEIGHTS, map_location=self.device, weights_only=True))

    def _check_sizes(self) -> None:
        """Patches and windows must divide by the network's down-sampling; a tile must hold a window."""
        factor = self.downsampling()
        roi, tile = triple(self.config["roi_size"]), triple(self.config["tile_size"])
        sizes = [self.config["patch_size"], *roi]
        if any(size % factor for size in sizes):
            raise BenchError(
                f"{type(self).__name__}: patch_size and roi_size must be multiples of {factor}, the network's "
                f"down-sampling; got {sizes}"
            )
        if any(t < r for t, r in zip(tile, roi, strict=True)):
            raise BenchError(
                f"{type(self).__name__}: tile_size {list(tile)} must be at least roi_size {list(roi)} on every axis"
            )

    def _build(self) -> nn.Module:
        """The network in evaluation mode on the device, its weights drawn from the architecture's seed."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            network = self.network_for(class_count(self.particles))
        return network.to(self.device, memory_format=self.memory_format).eval()

    def _probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities of a batch of image windows."""
        return torch.softmax(self.network(images.to(memory_format=self.memory_format)), dim=1)

    def _window(self) -> SlidingWindow:
        """The sliding-window settings of the config."""
        c = self.config
        return SlidingWindow(triple(c["roi_size"]), c["overlap"], c["sw_batch_size"], c["mode"], triple(c["tile_size"]))


def triple(value: int | Sequence[int]) -> tuple[int, int, int]:
    """A (z, y, x) size from an int or a list of three."""
    return (value,) * 3 if isinstance(value, int) else tuple(value)
