"""heatmap-unet: the CZII competition winners' approach, as the 1st place trained it: a MONAI 3D U-Net on per-class
point targets at a coarser output stride, a softmax cross-entropy weighted towards the particles, picks at peaks
suppressed within about a radius, flip test-time augmentation on all three axes.

What the 1st place's segmentation models did (their public training code, `configs/common_config.py`,
`models/mdl_1.py`, `postprocess/pp_1.py`): a 1 at each particle's centre voxel on its class's channel, max-pooled to
the decoder's stride-2 output; a softmax over the classes and a background channel (1 less the particles), the
cross-entropy's mean per channel weighted 256 for each particle class and 1 for the background; MONAI's
FlexibleUNet with a ResNet-34 encoder (and an EfficientNet-B3 one); Adam with a cosine schedule; flips of all three
axes, 90-degree turns about z and rotations up to 45 degrees about x, with mixup; peaks of a max-pool whose
half-width is half the radius at stride 2 (one radius at full resolution), above 0.01.

Here: `backbone` is MONAI's `SegResNet` (by default: cheapest at full resolution, batch norm), `FlexibleUNet`
(`encoder` resnet10..200 or efficientnet-b0..b8, built offline) or `DynUNet`; `output_stride` 2 averages the logits
over 2-voxel cubes (and max-pools the targets to them, as the 1st place), where their decoder stopped a level early,
so every backbone trains the same targets; inference upsamples the stride's probabilities back (trilinear, so a
coarse voxel's value sits at its cube's centre, not its corner). `loss` "weighted-ce" is the winners' (the
default), "focal" (MONAI's, on sigmoid maps) and "bce" (`pos_weight` on the positives) are the options; `target`
"point" is the winners', "gaussian" (sigma `sigma_fraction` x the radius) the option. Patches get the patch
networks' augmentations (`architectures.parts.augmentation`: by default the flips that keep the missing wedge); the
schedule, clipping and EMA are the shared `Optimisation`'s; mixup is not offered. Normalisation is batch norm, for
the reason `unet3d` gives: small particle-centred training patches and large background-heavy inference windows would
shift per-window statistics.

Inference: whole-volume sliding windows (batched on the device, tiled where `tile_size` is smaller than the volume),
averaged over the flips in `tta_flips` (strings of the axes flipped together: flips keep the missing wedge, so z
may flip too); picks are the voxels that are the maximum of a cube `2 * round(peak_fraction * radius) + 1` voxels
wide on their class's map and above `min_score`, ties broken (the first in row-major order kept), at most
`max_peaks` per class, scored by the peak value; a peak's position is the map-weighted mean over the cube of
half-width `refine_fraction` x radius around it. Thresholds are tuned on val by the harness.

The option defaults below are sized for a GPU and the CZII volumes: suites set CPU-sized values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from monai.losses import FocalLoss
from monai.networks.nets import DynUNet, FlexibleUNet, SegResNet
from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE
from torch import nn
from torch.nn import functional

from architectures.parts.augmentation import WEDGE_KEEPING
from architectures.parts.patch_network import PatchNetwork
from architectures.parts.peaks import break_ties, picks_from_voxels, pooled_maxima, refined_centres
from architectures.parts.training import SCHEDULE_DEFAULTS
from architectures.parts.volumes import class_count, paint_gaussians, paint_points, window_outputs
from benchmark.data import Tomogram
from benchmark.errors import BenchError
from benchmark.interface import Sample
from benchmark.registry import register

DEFAULTS = {
    "backbone": "segresnet",  # segresnet, flexible-unet or dynunet (MONAI's networks)
    "init_filters": 16,  # segresnet: channels of the first level, doubled at each level down
    "blocks_down": [1, 2, 2, 4],  # segresnet: residual blocks per encoder level
    "blocks_up": [1, 1, 1],  # segresnet: residual blocks per decoder level
    "upsample_mode": "deconv",  # segresnet: deconv, nontrainable (trilinear) or pixelshuffle
    "encoder": "resnet34",  # flexible-unet: the 1st place's encoder (any of MONAI's FLEXUNET_BACKBONE)
    "decoder_channels": [256, 128, 64, 32, 16],  # flexible-unet: one per encoder level
    "filters": [32, 64, 128, 256],  # dynunet: channels per level, halved in size at each level down
    "norm": "batch",  # MONAI's name, or [name, {arguments}]
    "output_stride": 2,  # 1 or 2: the logits' voxel, in input voxels (the 1st place: 2)
    "target": "point",  # point (the centre voxel) or gaussian
    "sigma_fraction": 0.25,  # gaussian targets: sigma, x the particle radius
    "loss": "weighted-ce",  # weighted-ce (the 1st place's), focal or bce
    "class_weight": 256.0,  # weighted-ce: a particle channel's weight against the background's 1
    "pos_weight": 64.0,  # bce: weight of a map's positive term
    "patch_size": 96,  # cubic training patch, a multiple of the down-sampling
    "batch_size": 8,
    "lr": 1.0e-3,  # Adam
    "steps_per_epoch": 100,  # optimisation steps per epoch
    "particle_share": 0.9,  # share of patches centred near a particle (class drawn uniformly), the rest anywhere
    "jitter": 24,  # voxels: random shift of a particle-centred patch
    "augment": list(WEDGE_KEEPING),  # flips of z, y and x: the symmetries that keep the missing wedge
    "roi_size": 96,  # sliding window (an int or [z, y, x]), multiples of the down-sampling
    "overlap": 0.25,
    "sw_batch_size": 4,
    "mode": "gaussian",  # blending of overlapping windows: gaussian or constant
    "tile_size": [184, 630, 630],  # the largest region (z, y, x) inferred at once: a whole CZII volume on a GPU
    "tta_flips": ["z", "y", "x"],  # flips averaged with the plain pass, each a string of the axes flipped together
    "peak_fraction": 1.0,  # half-width of the peak-finding cube, x the particle radius
    "refine_fraction": 0.5,  # half-width of the cube a peak's centre is averaged over, x the radius; 0: the voxel
    "min_score": 0.01,  # lowest peak kept as a candidate
    "max_peaks": 2000,  # most candidates per class and tomogram
    "pretrained": None,  # path of a saved state dict to start from
    **SCHEDULE_DEFAULTS,  # warm-up and decay sized to the epoch bound, clipping, EMA (architectures.parts.training)
    "ema": 0.99,  # decay of the weights' moving average per step
}
SEARCH_SPACE = {  # what bench tune searches: settings a step's cost does not depend on
    "lr": {"low": 3.0e-4, "high": 1.0e-2, "log": True},
    "class_weight": {"low": 16.0, "high": 512.0, "log": True},
    "output_stride": {"choices": [1, 2]},
    "ema": {"choices": [0.0, 0.9, 0.99]},
}
BACKBONES = ("segresnet", "flexible-unet", "dynunet")
LOSSES = ("weighted-ce", "focal", "bce")
TARGETS = ("point", "gaussian")
AXES = {"z": -3, "y": -2, "x": -1}


def flip_dims(flip: str) -> tuple[int, ...]:
    """The tensor dimensions of a flip named by its axes ("z", "yx"...)."""
    return tuple(AXES[axis] for axis in flip)


class WeightedCrossEntropy(nn.Module):
    """The 1st place's loss: softmax cross-entropy on soft targets over the particle channels and a background
    channel (last), each channel's mean over the batch and voxels weighted (particles `class_weight`, background 1)
    and summed."""

    def __init__(self, classes: int, class_weight: float):
        super().__init__()
        self.register_buffer("weights", torch.tensor([class_weight] * classes + [1.0]))

    def forward(self, logits: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """The loss of (n, classes + 1, ...) logits against (n, classes, ...) maps in [0, 1]."""
        background = 1 - maps.sum(1, keepdim=True).clamp(0, 1)
        target = torch.cat([maps, background], 1)
        target = target / target.sum(1, keepdim=True)
        per_channel = -(functional.log_softmax(logits, dim=1) * target).mean(dim=(0, *range(2, logits.dim())))
        return (per_channel * self.weights).sum()


class StridedLoss(nn.Module):
    """A loss of logits at an output stride: the targets max-pooled to the logits' size first."""

    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss = loss

    def forward(self, logits: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """The wrapped loss against maps pooled to the logits' voxels (one hot voxel per point survives)."""
        if maps.shape[2:] != logits.shape[2:]:
            maps = functional.adaptive_max_pool3d(maps, logits.shape[2:])
        return self.loss(logits, maps)


@register("heatmap-unet")
class HeatmapUNet(PatchNetwork):
    """A MONAI U-Net on per-class point (or Gaussian) maps at an output stride, the winners' weighted softmax
    cross-entropy, tie-broken max-pool peaks and flip TTA."""

    kind = "point-detector"
    defaults = DEFAULTS
    search_space = SEARCH_SPACE
    memory_format = torch.channels_last_3d

    @classmethod
    def check_config(cls, config: dict) -> None:
        """Unknown options (as every plug-in) and choices out of their sets: before any job runs."""
        super().check_config(config)
        c = {**DEFAULTS, **config}
        choices = {"backbone": BACKBONES, "loss": LOSSES, "target": TARGETS, "output_stride": (1, 2)}
        for name, allowed in choices.items():
            if c[name] not in allowed:
                raise BenchError(f"heatmap-unet: {name} {c[name]!r} must be one of {', '.join(map(str, allowed))}")
        if c["backbone"] == "flexible-unet" and c["encoder"] not in FLEXUNET_BACKBONE.register_dict:
            raise BenchError(f"heatmap-unet: encoder {c['encoder']!r} must be one of MONAI's FlexibleUNet backbones")
        flips = c["tta_flips"]
        if not isinstance(flips, list) or any(
            not isinstance(f, str) or not f or set(f) - set(AXES) or len(set(f)) != len(f) for f in flips
        ):
            raise BenchError(
                f'heatmap-unet: tta_flips {flips!r} must be a list of strings of distinct axes z, y, x (as "yx")'
            )

    @property
    def softmax(self) -> bool:
        """Whether the network has a background channel under a softmax (the weighted cross-entropy)."""
        return self.config["loss"] == "weighted-ce"

    def network_for(self) -> nn.Module:
        """The config's MONAI network, one input channel, one output per particle class (and background under a
        softmax), its logits averaged down to the output stride."""
        c = self.config
        out = class_count(self.particles) - 1 + self.softmax
        if c["backbone"] == "flexible-unet":
            levels = FLEXUNET_BACKBONE.register_dict[c["encoder"]]["feature_number"]
            network = FlexibleUNet(
                in_channels=1,
                out_channels=out,
                backbone=c["encoder"],
                pretrained=False,  # nothing is downloaded: `pretrained` loads a local state dict instead
                decoder_channels=tuple(c["decoder_channels"][:levels]),
                spatial_dims=3,
                norm=c["norm"],
            )
        elif c["backbone"] == "dynunet":
            strides = [1] + [2] * (len(c["filters"]) - 1)
            network = DynUNet(
                spatial_dims=3,
                in_channels=1,
                out_channels=out,
                kernel_size=[3] * len(strides),
                strides=strides,
                upsample_kernel_size=strides[1:],
                filters=c["filters"],
                norm_name=c["norm"],
                res_block=True,
            )
        else:
            network = SegResNet(
                spatial_dims=3,
                init_filters=c["init_filters"],
                in_channels=1,
                out_channels=out,
                norm=c["norm"],
                blocks_down=tuple(c["blocks_down"]),
                blocks_up=tuple(c["blocks_up"]),
                upsample_mode=c["upsample_mode"],
            )
        stride = c["output_stride"]
        return nn.Sequential(network, nn.AvgPool3d(stride)) if stride > 1 else network

    def loss_function(self) -> nn.Module:
        """The configured loss of the strided logits against the pooled maps."""
        c = self.config
        if c["loss"] == "weighted-ce":
            loss = WeightedCrossEntropy(class_count(self.particles) - 1, float(c["class_weight"]))
        elif c["loss"] == "focal":
            loss = FocalLoss(use_softmax=False, gamma=2.0)
        else:
            loss = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(c["pos_weight"])))
        return StridedLoss(loss).to(self.device)

    def target_for(self, sample: Sample) -> np.ndarray:
        """The sample's per-class point maps, or Gaussian heatmaps."""
        t, c = sample.tomogram, self.config
        if c["target"] == "point":
            return paint_points(t.shape, sample.picks, self.particles, t.voxel_size)
        return paint_gaussians(t.shape, sample.picks, self.particles, t.voxel_size, c["sigma_fraction"])

    def downsampling(self) -> int:
        """The network's factor (a halving per level below the first), at least the output stride."""
        c = self.config
        if c["backbone"] == "flexible-unet":
            factor = 2 ** FLEXUNET_BACKBONE.register_dict[c["encoder"]]["feature_number"]
        else:
            factor = 2 ** (len(c["filters" if c["backbone"] == "dynunet" else "blocks_down"]) - 1)
        return max(factor, c["output_stride"])

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-class maps in [0, 1] (softmax less its background, or sigmoid) at the input's resolution."""
        maps = torch.softmax(logits, dim=1)[:, :-1] if self.softmax else torch.sigmoid(logits)
        stride = self.config["output_stride"]
        if stride > 1:
            maps = functional.interpolate(maps, scale_factor=stride, mode="trilinear", align_corners=False)
        return maps

    def heatmaps(self, tomogram: Tomogram) -> torch.Tensor:
        """The whole tomogram's per-class heatmaps (classes, z, y, x), float32 on the device, averaged over the
        configured flips."""
        flips = [flip_dims(f) for f in self.config["tta_flips"]]

        def averaged(images: torch.Tensor) -> torch.Tensor:
            total = self._outputs(images)
            for dims in flips:
                total += self._outputs(images.flip(dims)).flip(dims)
            return total / (1 + len(flips))

        maps = torch.zeros((class_count(self.particles) - 1, *tomogram.shape), device=self.device)
        for place, output in window_outputs(tomogram, averaged, self._window(), self.device):
            maps[(slice(None), *place)] = output
        return maps

    def predict(self, tomogram: Tomogram) -> pd.DataFrame:
        """Every class's max-pool peaks above `min_score`, ties broken, scored by the peak value."""
        c = self.config
        self.network.eval()
        frames = []
        with torch.inference_mode():
            maps = self.heatmaps(tomogram)
            for particle in self.particles:
                half = max(1, round(c["peak_fraction"] * particle.radius / tomogram.voxel_size))
                zyx, values = pooled_maxima(maps[particle.label - 1], 2 * half + 1, c["min_score"], c["max_peaks"])
                zyx, values = break_ties(zyx, values, half)
                refine = round(c["refine_fraction"] * particle.radius / tomogram.voxel_size)
                if refine:
                    zyx = refined_centres(maps[particle.label - 1], zyx, refine)
                frames.append(picks_from_voxels(zyx, values, particle.name, tomogram.voxel_size))
        return pd.concat(frames, ignore_index=True)
