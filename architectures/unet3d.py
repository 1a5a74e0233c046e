"""unet3d: MONAI's residual `UNet` on the shared sphere targets, trained with MONAI's Dice + cross-entropy loss.

Network: `monai.networks.nets.UNet` with residual units, strided-convolution down-sampling and transposed-convolution
up-sampling. Chosen over `BasicUNet` because its depth and per-level strides are settings (BasicUNet always pools four
times, so every patch and window side would have to be a multiple of 16, and a CPU-sized patch of 32 would reach a
2-voxel bottom) and because its learned down- and up-sampling make it a second design point beside DeepFindET's
max-pooling, nearest-neighbour residual U-Net rather than a near-twin of it. The defaults follow the MONAI U-Net of the
CZII challenge's public baseline: channels 48/64/80/80, strides 2/2/1 (the third level keeps its resolution: two
halvings), one convolution per residual unit, PReLU, Adam at 1e-3 on 96^3 patches. Each level strides in its first
convolution, so only the last up-sampling block works at full resolution: wider channels cost less here than in
DeepFindET. Normalisation is batch norm, not MONAI's instance norm: training patches are small and particle-centred
while inference windows are large and mostly background, so per-window statistics would shift between the two; batch
norm's running statistics do not. The network runs channels-last, as DeepFindET's does: on 2 CPU cores a training step
at 32^3 is about 15% faster, and whole-volume inference faster too.

Loss: MONAI's `DiceCELoss` on the softmax of the logits and one-hot targets. Cross-entropy gives every voxel a
gradient from the first step, which a network trained from scratch for a few CPU minutes needs; the soft Dice, over
the particle classes only (background excluded) and summed over the batch (`batch=True`, so a class missing from one
patch is not scored on that patch alone), weighs each class equally whatever its voxel share, against the
background's majority. Several top CZII solutions trained on cross-entropy or Dice + cross-entropy; DeepFindET's
Tversky loss already stands for the region-only losses in the benchmark.

Targets, patch sampling, tiled sliding-window inference, picks (one per large-enough connected component, scored by
its mean class probability) and saved or `pretrained` weights are the shared `PatchSegmenter`'s
(`architectures.parts.segmenter`); the option defaults below are untuned, sized for a GPU and the CZII volumes:
suites set CPU-sized values.
"""

from __future__ import annotations

import math

import torch
from monai.losses import DiceCELoss
from monai.networks.nets import UNet

from architectures.parts.augmentation import WEDGE_KEEPING
from architectures.parts.segmenter import PatchSegmenter
from architectures.parts.training import SCHEDULE_DEFAULTS
from benchmark.registry import register

DEFAULTS = {
    "channels": [48, 64, 80, 80],  # per level, the last one the bottom's
    "strides": [2, 2, 1],  # down-sampling of every level but the bottom (ints): sizes divide by their product
    "num_res_units": 1,  # convolutions per residual unit; 0 gives plain convolution blocks
    "norm": "batch",  # MONAI's name, or [name, {arguments}]: batch, instance, group, ...
    "act": "prelu",  # MONAI's name, or [name, {arguments}]
    "dropout": 0.0,
    "patch_size": 96,  # cubic training patch, a multiple of the strides' product
    "batch_size": 8,
    "lr": 1.0e-3,  # Adam
    "steps_per_epoch": 100,  # optimisation steps per epoch
    "lambda_dice": 1.0,  # weight of the Dice term
    "lambda_ce": 1.0,  # weight of the cross-entropy term
    "target_radius_fraction": 0.5,  # target sphere radius, x the particle radius
    "particle_share": 0.9,  # share of patches centred near a particle (class drawn uniformly), the rest anywhere
    "jitter": 24,  # voxels: random shift of a particle-centred patch, a quarter of the patch
    "augment": list(WEDGE_KEEPING),  # flips of z, y and x: the symmetries that keep the missing wedge
    "roi_size": 96,  # sliding window (an int or [z, y, x]), multiples of the strides' product
    "overlap": 0.25,
    "sw_batch_size": 1,
    "mode": "gaussian",  # blending of overlapping windows: gaussian or constant
    "tile_size": [184, 240, 240],  # the largest region (z, y, x) inferred at once, 36 bytes per voxel
    "min_size_fraction": 0.2,  # smallest component kept, x the target sphere's volume
    "pretrained": None,  # path of a saved state dict to start from
    **SCHEDULE_DEFAULTS,  # warm-up and decay sized to the epoch bound, clipping, EMA (architectures.parts.training)
}
SEARCH_SPACE = {  # what bench tune searches: settings a step's cost does not depend on
    "lr": {"low": 3.0e-4, "high": 1.0e-2, "log": True},
    "particle_share": {"low": 0.5, "high": 0.95},
    "lambda_dice": {"low": 0.25, "high": 2.0, "log": True},
}


@register("unet3d")
class UNet3D(PatchSegmenter):
    """MONAI's residual UNet with Dice + cross-entropy on sphere targets, tiled sliding-window inference."""

    defaults = DEFAULTS
    search_space = SEARCH_SPACE
    memory_format = torch.channels_last_3d

    def network_for(self) -> UNet:
        """MONAI's UNet of the config, one input channel."""
        c = self.config
        return UNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=self.classes,
            channels=c["channels"],
            strides=c["strides"],
            num_res_units=c["num_res_units"],
            norm=c["norm"],
            act=c["act"],
            dropout=c["dropout"],
        )

    def loss_function(self) -> DiceCELoss:
        """Soft Dice over the particle classes (summed over the batch) plus cross-entropy over all classes."""
        c = self.config
        return DiceCELoss(
            include_background=False,
            to_onehot_y=True,
            softmax=True,
            batch=True,
            lambda_dice=c["lambda_dice"],
            lambda_ce=c["lambda_ce"],
        )

    def downsampling(self) -> int:
        """The product of the strides."""
        return math.prod(self.config["strides"])
