"""The common body of the patch-trained 3D networks: training on device-cut patches under the runner's tracker,
whole-volume sliding-window inference, sizes, seeded networks and saved or pretrained weights.

A subclass gives its `defaults` (every name of its `options` among them), its network, loss, training target and
down-sampling factor, what its outputs become (`activation`) and its picks (`predict`); the 3D segmenters
(`architectures.parts.segmenter`) and the heatmap point detector (`architectures.heatmap_unet`) are its two kinds.

The data path is built to keep a GPU busy: the train volumes and their targets are held on the device and patches
are cut there (`PatchSampler`), the step's loss stays on the device (one host sync per epoch, for its log), mixed
precision follows the runner's `precision` (bf16 autocast on a GPU by default), and inference copies each tile to
the device once and runs MONAI's batched windows there. The tracker times each step's wait for its batch.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from architectures.parts.augmentation import check_augmentations
from architectures.parts.device import autocast
from architectures.parts.training import SCHEDULE_DEFAULTS, Optimisation, check_schedule
from architectures.parts.volumes import PatchSampler, SlidingWindow
from benchmark.errors import BenchError
from benchmark.interface import Architecture, Budget, Sample, Tracker

WEIGHTS = "network.pt"
CONFIG = "config.json"


class PatchNetwork(Architecture):
    """A 3D network trained on augmented patches cut on the device, inferred by whole-volume sliding windows."""

    #: the config options this class reads; a subclass's `defaults` holds them beside its network's and loss's own.
    options: ClassVar[tuple[str, ...]] = (
        "patch_size",  # cubic training patch, a multiple of the down-sampling factor
        "batch_size",
        "lr",  # Adam
        "steps_per_epoch",
        "particle_share",  # share of patches centred near a particle (class drawn uniformly), the rest anywhere
        "jitter",  # voxels: random shift of a particle-centred patch
        "augment",  # the patches' augmentations, by name (`architectures.parts.augmentation`)
        "roi_size",  # sliding window (an int or [z, y, x]), multiples of the down-sampling factor
        "overlap",
        "sw_batch_size",  # windows per forward pass
        "mode",  # blending of overlapping windows: gaussian or constant
        "tile_size",  # the largest region (z, y, x) inferred at once
        "pretrained",  # path of a saved state dict to start from
        *SCHEDULE_DEFAULTS,  # the learning-rate schedule, clipping and EMA (`architectures.parts.training`)
    )
    #: the layout the network and its inputs run in (channels-last spares some networks oneDNN's copies on CPU).
    memory_format: ClassVar[torch.memory_format] = torch.contiguous_format

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        missing = [option for option in cls.options if cls.defaults and option not in cls.defaults]
        if missing:
            raise TypeError(f"{cls.__name__}.defaults lacks the option(s) {', '.join(missing)}")

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        """Unknown options (as every plug-in), schedule options out of range and unknown augmentations: before any job
        runs."""
        super().check_config(config)
        check_schedule(config, cls.__name__)
        check_augmentations(config.get("augment", []), cls.__name__)

    def __init__(self, config: dict[str, Any], particles, device: str, seed: int):
        super().__init__(config, particles, device, seed)
        self.optimisation: Optimisation | None = None  # set by fit
        self._check_sizes()
        self.network = self._build()
        if self.config["pretrained"]:
            self.network.load_state_dict(torch.load(self.config["pretrained"], map_location=device, weights_only=True))

    @abc.abstractmethod
    def network_for(self) -> nn.Module:
        """The untrained network of the config: (n, 1, *spatial) images to (n, channels, *spatial) logits."""

    @abc.abstractmethod
    def loss_function(self) -> nn.Module:
        """The training loss of logits and a batch of the sampler's targets."""

    @abc.abstractmethod
    def target_for(self, sample: Sample) -> np.ndarray:
        """A train sample's target: class indices (z, y, x), uint8, or per-channel maps (channels, z, y, x)."""

    @abc.abstractmethod
    def downsampling(self) -> int:
        """The factor the network divides every side by: patch and window sides must be multiples of it."""

    @abc.abstractmethod
    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        """What the logits become for inference (softmax, sigmoid)."""

    def fit(self, train: Sequence[Sample], val: Sequence[Sample], budget: Budget, tracker: Tracker) -> None:
        """Adam on the loss, `steps_per_epoch` batches of augmented patches per epoch, the schedule sized to the
        budget's epoch bound."""
        c = self.config
        sampler = PatchSampler.from_samples(
            train,
            self.target_for,
            self.particles,
            size=c["patch_size"],
            particle_share=c["particle_share"],
            jitter=c["jitter"],
            seed=self.seed,
            device=self.device,
            augment=c["augment"],
        )
        loss_function = self.loss_function()
        optimiser = torch.optim.Adam(self.network.parameters(), lr=c["lr"])
        self.optimisation = Optimisation(self.network, optimiser, c, budget, c["steps_per_epoch"])
        unit = "x".join(map(str, [c["patch_size"]] * 3)) + " patches"
        for _ in tracker.epochs(samples=c["steps_per_epoch"] * c["batch_size"], unit=unit):
            self.network.train()  # again after a learning-curve point's predictions
            total, steps = torch.zeros((), device=self.device), 0
            for _ in range(c["steps_per_epoch"]):
                if tracker.exhausted():  # an epoch longer than the minutes left ends early
                    break
                with tracker.waiting():
                    images, targets = sampler.batch(c["batch_size"])
                total += self.training_step(images, targets, self.optimisation, loss_function)
                steps += 1
            tracker.log(loss=total.item() / steps if steps else float("nan"))  # the epoch's one host sync
        self.optimisation.finish()
        self.network.eval()

    def interim(self) -> AbstractContextManager[None]:
        """`predict` on the network trained so far (its weight average, when there is one), mid-`fit`."""
        return self.optimisation.predicting()

    def training_step(
        self,
        images: torch.Tensor | np.ndarray,
        targets: torch.Tensor | np.ndarray,
        optimisation: Optimisation,
        loss_function: nn.Module,
    ) -> torch.Tensor:
        """One optimisation step on a batch; returns the loss, detached, on the device (reading it syncs)."""
        images, targets = (torch.as_tensor(a).to(self.device, non_blocking=True) for a in (images, targets))
        with self.autocast():
            logits = self.network(images.to(memory_format=self.memory_format))
        loss = loss_function(logits.float(), targets)
        optimisation.step(loss)
        return loss.detach()

    def autocast(self) -> torch.autocast:
        """Mixed precision as the runner chose it: bf16 autocast, or none for fp32."""
        return autocast(self.device, self.precision)

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
            network = self.network_for()
        return network.to(self.device, memory_format=self.memory_format).eval()

    def _outputs(self, images: torch.Tensor) -> torch.Tensor:
        """The activated outputs of a batch of image windows, in float32 for MONAI's blending."""
        with self.autocast():
            logits = self.network(images.to(memory_format=self.memory_format))
        return self.activation(logits.float())

    def _window(self) -> SlidingWindow:
        """The sliding-window settings of the config."""
        c = self.config
        return SlidingWindow(triple(c["roi_size"]), c["overlap"], c["sw_batch_size"], c["mode"], triple(c["tile_size"]))


def triple(value: int | Sequence[int]) -> tuple[int, int, int]:
    """A (z, y, x) size from an int or a list of three."""
    return (value,) * 3 if isinstance(value, int) else tuple(value)
