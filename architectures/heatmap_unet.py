"""heatmap-unet: the CZII competition winners' approach, a MONAI 3D U-Net trained on per-class Gaussian heatmaps,
its picks the peaks of a 3D max-pool.

Network: MONAI's `SegResNet`, one output channel per particle class (no background). Chosen over `DynUNet` and
`FlexibleUNet`, the two other MONAI families the top teams trained: SegResNet (the 1st place's point-detection
backbone beside DynUNet) is encoder-heavy, with residual blocks growing towards the bottom and a single light block per
decoder level, so the full-resolution output a point heatmap needs costs little; DynUNet's nnU-Net decoder mirrors
its encoder (twice the full-resolution convolutions for the same width) and brings deep supervision the harness
would have to wire; FlexibleUNet's strength is an ImageNet-pretrained encoder, and nothing can be downloaded here.
Normalisation is batch norm, not SegResNet's group norm, for the reason `unet3d` gives: small particle-centred
training patches and large background-heavy inference windows would shift per-window statistics. The network runs
channels-last, as the segmenters do.

Targets and loss: a Gaussian per particle on its class's channel, sigma `sigma_fraction` x the particle's radius, peak
1 at the exact centre (overlaps combined by their maximum); binary cross-entropy on the logits, each voxel's positive
term weighted `pos_weight` times against the background's majority (the 1st place weighted its cross-entropy 256:1).
Patches are class-balanced and rotated only about z (90-degree turns and an x flip: the missing wedge keeps its
orientation), cut on the device by the shared `PatchNetwork` (`architectures.parts.patch_network`).

Inference: whole-volume sliding windows (batched on the device, tiled where `tile_size` is smaller than the volume),
sigmoid heatmaps, optionally averaged over flips of the slice plane (`tta_flips`: any of "x", "y", "yx"; a flip of z
would put the missing wedge's artefacts where training never saw them); picks are the voxels that are the maximum of
a cube `2 * round(peak_fraction * radius) + 1` voxels wide on their class's map (a per-class kernel) and above
`min_score`, at most `max_peaks` per class, scored by the peak value. A peak's position is then the map-weighted
mean over the cube of half-width `refine_fraction` x radius around it: a single maximum voxel of a noisy map is off by
a voxel or two, a third of a small particle's scoring radius. Thresholds are tuned on val by the harness.

The option defaults below are untuned, sized for a GPU and the CZII volumes: suites set CPU-sized values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from monai.networks.nets import SegResNet
from torch import nn

from architectures.parts.patch_network import PatchNetwork
from architectures.parts.peaks import picks_from_voxels, pooled_maxima, refined_centres
from architectures.parts.training import SCHEDULE_DEFAULTS
from architectures.parts.volumes import class_count, paint_gaussians, window_outputs
from benchmark.data import Tomogram
from benchmark.errors import BenchError
from benchmark.interface import Sample
from benchmark.registry import register

DEFAULTS = {
    "init_filters": 16,  # channels of the first level, doubled at each level down
    "blocks_down": [1, 2, 2, 4],  # residual blocks per encoder level
    "blocks_up": [1, 1, 1],  # residual blocks per decoder level
    "norm": "batch",  # MONAI's name, or [name, {arguments}]
    "upsample_mode": "deconv",  # deconv, nontrainable (trilinear) or pixelshuffle
    "patch_size": 96,  # cubic training patch, a multiple of 2 ** (levels - 1)
    "batch_size": 8,
    "lr": 1.0e-3,  # Adam
    "steps_per_epoch": 100,  # optimisation steps per epoch
    "sigma_fraction": 0.25,  # Gaussian sigma, x the particle radius
    "pos_weight": 64.0,  # weight of a heatmap's positive term in the binary cross-entropy
    "particle_share": 0.9,  # share of patches centred near a particle (class drawn uniformly), the rest anywhere
    "jitter": 24,  # voxels: random shift of a particle-centred patch
    "roi_size": 96,  # sliding window (an int or [z, y, x]), multiples of 2 ** (levels - 1)
    "overlap": 0.25,
    "sw_batch_size": 4,
    "mode": "gaussian",  # blending of overlapping windows: gaussian or constant
    "tile_size": [184, 630, 630],  # the largest region (z, y, x) inferred at once: a whole CZII volume on a GPU
    "tta_flips": ["x", "y", "yx"],  # slice-plane flips averaged with the plain pass; [] for none
    "peak_fraction": 0.5,  # half-width of the peak-finding cube, x the particle radius
    "refine_fraction": 0.5,  # half-width of the cube a peak's centre is averaged over, x the radius; 0: the voxel
    "min_score": 0.01,  # lowest peak kept as a candidate
    "max_peaks": 2000,  # most candidates per class and tomogram
    "pretrained": None,  # path of a saved state dict to start from
    **SCHEDULE_DEFAULTS,  # warm-up and decay sized to the epoch bound, clipping, EMA (architectures.parts.training)
}
SEARCH_SPACE = {  # what bench tune searches: settings a step's cost does not depend on
    "lr": {"low": 3.0e-4, "high": 1.0e-2, "log": True},
    "pos_weight": {"low": 2.0, "high": 128.0, "log": True},
    "sigma_fraction": {"low": 0.15, "high": 0.5},
}
FLIPS = {"x": (-1,), "y": (-2,), "yx": (-2, -1)}


@register("heatmap-unet")
class HeatmapUNet(PatchNetwork):
    """MONAI's SegResNet on per-class Gaussian heatmaps, picks at 3D max-pool peaks, optional flip TTA."""

    kind = "point-detector"
    defaults = DEFAULTS
    search_space = SEARCH_SPACE
    memory_format = torch.channels_last_3d

    @classmethod
    def check_config(cls, config: dict) -> None:
        """Unknown options (as every plug-in), and flips that are not a list of FLIPS' names: before any job runs."""
        super().check_config(config)
        flips = config.get("tta_flips", [])
        if not isinstance(flips, list) or any(flip not in FLIPS for flip in flips):
            raise BenchError(f"heatmap-unet: tta_flips {flips!r} must be a list of any of {', '.join(FLIPS)}")

    def network_for(self) -> SegResNet:
        """MONAI's SegResNet of the config: one input channel, one output per particle class."""
        c = self.config
        return SegResNet(
            spatial_dims=3,
            init_filters=c["init_filters"],
            in_channels=1,
            out_channels=class_count(self.particles) - 1,
            norm=c["norm"],
            blocks_down=tuple(c["blocks_down"]),
            blocks_up=tuple(c["blocks_up"]),
            upsample_mode=c["upsample_mode"],
        )

    def loss_function(self) -> nn.Module:
        """Binary cross-entropy on the logits, each voxel's positive term weighted `pos_weight` times."""
        return nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(self.config["pos_weight"]), device=self.device))

    def target_for(self, sample: Sample) -> np.ndarray:
        """The sample's per-class Gaussian heatmaps."""
        t = sample.tomogram
        return paint_gaussians(t.shape, sample.picks, self.particles, t.voxel_size, self.config["sigma_fraction"])

    def downsampling(self) -> int:
        """One halving per encoder level below the first."""
        return 2 ** (len(self.config["blocks_down"]) - 1)

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        """Heatmaps in [0, 1]."""
        return torch.sigmoid(logits)

    def heatmaps(self, tomogram: Tomogram) -> torch.Tensor:
        """The whole tomogram's per-class heatmaps (classes, z, y, x), float32 on the device, averaged over the
        configured flips."""
        flips = [(), *(FLIPS[f] for f in self.config["tta_flips"])]

        def averaged(images: torch.Tensor) -> torch.Tensor:
            total = self._outputs(images)
            for dims in flips[1:]:
                total += self._outputs(images.flip(dims)).flip(dims)
            return total / len(flips)

        maps = torch.zeros((class_count(self.particles) - 1, *tomogram.shape), device=self.device)
        for place, output in window_outputs(tomogram, averaged, self._window(), self.device):
            maps[(slice(None), *place)] = output
        return maps

    def predict(self, tomogram: Tomogram) -> pd.DataFrame:
        """Every class's max-pool peaks above `min_score`, scored by the peak value."""
        c = self.config
        self.network.eval()
        frames = []
        with torch.inference_mode():
            maps = self.heatmaps(tomogram)
            for particle in self.particles:
                half = max(1, round(c["peak_fraction"] * particle.radius / tomogram.voxel_size))
                zyx, values = pooled_maxima(maps[particle.label - 1], 2 * half + 1, c["min_score"], c["max_peaks"])
                refine = round(c["refine_fraction"] * particle.radius / tomogram.voxel_size)
                if refine:
                    zyx = refined_centres(maps[particle.label - 1], zyx, refine)
                frames.append(picks_from_voxels(zyx, values, particle.name, tomogram.voxel_size))
        return pd.concat(frames, ignore_index=True)
