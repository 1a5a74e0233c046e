"""DeepFindET: DeepFinder's residual encoder-decoder 3D segmenter, in PyTorch with MONAI blocks, as the seed trains it.

Network (DeepFindET's `res_unet`): per encoder level a residual block then 2x max pooling, a bottleneck of
residual blocks, per decoder level nearest-neighbour 2x up-sampling (Keras' UpSampling3D: no weights, so no
transposed convolution), concatenation with the skip and two residual blocks, then a 1x1x1 convolution to
background + one class per copick label. A residual block is (conv3 - BN - LeakyReLU - conv3 - BN) + shortcut, then
LeakyReLU; the shortcut is a 1x1x1 convolution where the channel count changes, else the identity. It is built from
MONAI `Convolution` blocks rather than MONAI's `ResidualUnit`, which activates inside the branch before the addition
(or, with `last_conv_only`, drops the last normalisation) where DeepFindET adds first and activates after; MONAI's
`UNet` down-samples with strided convolutions where DeepFindET max-pools. LeakyReLU keeps Keras' slope 0.3, batch
normalisation Keras' epsilon and (by default) momentum; weights keep torch's Kaiming initialisation where Keras draws
Glorot. The network runs channels-last with in-place additions and activations: on CPU that avoids oneDNN's layout
copies and keeps a 72^3 window's inference near 0.45 GB.

Loss: MONAI's TverskyLoss, whose `alpha` weights false positives and `beta` false negatives (DeepFindET's
convention too): alpha 0.3, beta 0.7 favour recall, as F4 does. Sums run over the batch (`batch=True`) and the
numerator is not smoothed, as in DeepFindET (see `tversky_loss`); MONAI averages the classes where DeepFindET sums
them, a constant factor Adam does not see.

Picks: one per connected component of each class in the argmax segmentation that holds at least
`min_size_fraction` of the target sphere's volume; the score is the component's mean class probability (its size
or maximum ranked no better on the demo data).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.losses import TverskyLoss
from monai.networks.blocks import Convolution
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
from benchmark.registry import register

DEFAULTS = {
    "filters": [48, 64, 80],  # channels of each encoder level, the last one the bottleneck's
    "bottleneck_blocks": 4,  # residual blocks at the bottleneck
    "negative_slope": 0.3,  # LeakyReLU slope (Keras' default, which DeepFindET keeps)
    "batch_norm_momentum": 0.01,  # torch's convention: Keras' 0.99; its running statistics lag a fast-learning network
    "patch_size": 72,  # cubic training patch, a multiple of 2 ** (levels - 1)
    "batch_size": 5,
    "lr": 1.0e-4,  # Adam
    "steps_per_epoch": 100,  # optimisation steps per epoch
    "tversky_alpha": 0.3,  # weight of false positives
    "tversky_beta": 0.7,  # weight of false negatives
    "target_radius_fraction": 0.5,  # target sphere radius, x the particle radius
    "particle_share": 0.8,  # share of patches centred near a particle (class drawn uniformly), the rest anywhere
    "jitter": 15,  # voxels: random shift of a particle-centred patch (DeepFindET's Lrnd)
    "roi_size": 72,  # sliding window (an int or [z, y, x]), multiples of 2 ** (levels - 1)
    "overlap": 0.25,
    "sw_batch_size": 1,
    "mode": "gaussian",  # blending of overlapping windows: gaussian or constant
    "tile_size": [184, 234, 180],  # the largest region (z, y, x) inferred at once, 36 bytes per voxel
    "min_size_fraction": 0.2,  # smallest component kept, x the target sphere's volume
    "pretrained": None,  # path of a saved state dict to start from
}
WEIGHTS = "network.pt"
CONFIG = "config.json"


class ResidualBlock(nn.Module):
    """DeepFindET's residual block: (conv3-BN-LeakyReLU-conv3-BN) + shortcut, then LeakyReLU."""

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float, momentum: float):
        super().__init__()
        act = ("leakyrelu", {"negative_slope": negative_slope, "inplace": True})
        norm = ("batch", {"momentum": momentum, "eps": 1e-3})  # Keras' epsilon
        self.body = nn.Sequential(
            Convolution(3, in_channels, out_channels, kernel_size=3, norm=norm, act=act),
            Convolution(3, out_channels, out_channels, kernel_size=3, norm=norm, act=None),
        )
        self.shortcut = (
            Convolution(3, in_channels, out_channels, kernel_size=1, conv_only=True)
            if in_channels != out_channels
            else nn.Identity()
        )
        self.act = nn.LeakyReLU(negative_slope, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add the shortcut in place (the batch-norm output is not needed backwards), then activate."""
        out = self.body(x)
        out += self.shortcut(x)
        return self.act(out)


class ResidualUNet(nn.Module):
    """DeepFindET's encoder-decoder: max-pooled residual encoder, residual bottleneck, up-sampled residual decoder."""

    def __init__(
        self,
        classes: int,
        filters: Sequence[int],
        bottleneck_blocks: int,
        negative_slope: float = 0.3,
        batch_norm_momentum: float = 0.01,
    ):
        super().__init__()
        block = partial(ResidualBlock, negative_slope=negative_slope, momentum=batch_norm_momentum)
        *levels, bottom = filters
        channels = [1, *levels]
        self.encoder = nn.ModuleList(block(a, b) for a, b in pairwise(channels))
        self.bottleneck = nn.Sequential(
            *(block(levels[-1] if i == 0 else bottom, bottom) for i in range(bottleneck_blocks))
        )
        self.decoder = nn.ModuleList()
        below = bottom
        for channels_out in reversed(levels):
            self.decoder.append(
                nn.Sequential(
                    block(below + channels_out, channels_out),
                    block(channels_out, channels_out),
                )
            )
            below = channels_out
        self.pool = nn.MaxPool3d(2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.head = Convolution(3, levels[0], classes, kernel_size=1, conv_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (n, classes, *spatial) of images (n, 1, *spatial); softmax gives the probabilities."""
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for blocks in self.decoder:
            x = blocks(torch.cat([self.up(x), skips.pop()], dim=1))  # pop: the skip is freed once used
        return self.head(x)


@register("deepfindet")
class DeepFindET(Architecture):
    """DeepFindET's residual U-Net on sphere targets, class-balanced patches, tiled sliding-window inference."""

    kind = "3d-segmenter"
    defaults = DEFAULTS

    def __init__(self, config, particles, device, seed):
        super().__init__(config, particles, device, seed)
        self._check_sizes()
        self.network = self._build()
        if self.config["pretrained"]:
            self.network.load_state_dict(torch.load(self.config["pretrained"], map_location=device, weights_only=True))

    def fit(self, train: Sequence[Sample], val: Sequence[Sample], budget: Budget, tracker: Tracker) -> None:
        """Adam on the Tversky loss, `steps_per_epoch` batches of augmented class-balanced patches per epoch."""
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
        loss_function = tversky_loss(c)
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
        loss = loss_function(self.network(images.to(memory_format=torch.channels_last_3d)), targets)
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
        """Patches and windows must halve cleanly at every pooling; a tile must hold a window."""
        factor = 2 ** (len(self.config["filters"]) - 1)
        roi, tile = _triple(self.config["roi_size"]), _triple(self.config["tile_size"])
        sizes = [self.config["patch_size"], *roi]
        if any(size % factor for size in sizes):
            raise BenchError(
                f"deepfindet: patch_size and roi_size must be multiples of {factor} with "
                f"{len(self.config['filters'])} filter levels; got {sizes}"
            )
        if any(t < r for t, r in zip(tile, roi, strict=True)):
            raise BenchError(f"deepfindet: tile_size {list(tile)} must be at least roi_size {list(roi)} on every axis")

    def _build(self) -> ResidualUNet:
        """The network in evaluation mode on the device, its weights drawn from the architecture's seed."""
        c = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            network = ResidualUNet(
                class_count(self.particles),
                c["filters"],
                c["bottleneck_blocks"],
                c["negative_slope"],
                c["batch_norm_momentum"],
            )
        return network.to(self.device, memory_format=torch.channels_last_3d).eval()

    def _probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities of a batch of image windows."""
        return torch.softmax(self.network(images.to(memory_format=torch.channels_last_3d)), dim=1)

    def _window(self) -> SlidingWindow:
        """The sliding-window settings of the config."""
        c = self.config
        return SlidingWindow(
            _triple(c["roi_size"]), c["overlap"], c["sw_batch_size"], c["mode"], _triple(c["tile_size"])
        )


def tversky_loss(config: dict) -> TverskyLoss:
    """DeepFindET's loss on logits and class-index targets: sums over the batch, tp / (tp + a fp + b fn + 1e-3).

    DeepFindET's numerator has no smoothing term. MONAI's default (1e-5 on both sides) scores a class absent from
    the batch as perfect once its probability is exactly zero everywhere, which rewards collapsing to background.
    """
    return TverskyLoss(
        alpha=config["tversky_alpha"],
        beta=config["tversky_beta"],
        softmax=True,
        to_onehot_y=True,
        batch=True,
        smooth_nr=0.0,
        smooth_dr=1e-3,
    )


def _triple(value: int | Sequence[int]) -> tuple[int, int, int]:
    """A (z, y, x) size from an int or a list of three."""
    return (value,) * 3 if isinstance(value, int) else tuple(value)
