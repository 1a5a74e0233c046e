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
or maximum ranked no better on the demo data). Training (Adam on class-balanced sphere-target patches), the tiled
sliding-window inference, the picks and the saved weights are the 3D segmenters' shared `PatchSegmenter`'s
(`architectures.parts.segmenter`); this module gives it DeepFindET's network, loss and defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from itertools import pairwise

import torch
from monai.losses import TverskyLoss
from monai.networks.blocks import Convolution
from torch import nn

from architectures.parts.augmentation import WEDGE_KEEPING
from architectures.parts.segmenter import PatchSegmenter
from architectures.parts.training import SCHEDULE_DEFAULTS
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
    "augment": list(WEDGE_KEEPING),  # flips of z, y and x: the symmetries that keep the missing wedge
    "roi_size": 72,  # sliding window (an int or [z, y, x]), multiples of 2 ** (levels - 1)
    "overlap": 0.25,
    "sw_batch_size": 1,
    "mode": "gaussian",  # blending of overlapping windows: gaussian or constant
    "tile_size": [184, 234, 180],  # the largest region (z, y, x) inferred at once, 36 bytes per voxel
    "min_size_fraction": 0.2,  # smallest component kept, x the target sphere's volume
    "pretrained": None,  # path of a saved state dict to start from
    **SCHEDULE_DEFAULTS,  # warm-up and decay sized to the epoch bound, clipping, EMA (architectures.parts.training)
}
SEARCH_SPACE = {  # what bench tune searches: settings a step's cost does not depend on
    "lr": {"low": 3.0e-4, "high": 1.0e-2, "log": True},
    "particle_share": {"low": 0.5, "high": 0.95},
    "warmup_fraction": {"choices": [0.0, 0.05, 0.2]},
}


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
class DeepFindET(PatchSegmenter):
    """DeepFindET's residual U-Net on sphere targets, class-balanced patches, tiled sliding-window inference."""

    defaults = DEFAULTS
    search_space = SEARCH_SPACE
    memory_format = torch.channels_last_3d

    def network_for(self) -> ResidualUNet:
        """DeepFindET's residual U-Net of the config."""
        c = self.config
        return ResidualUNet(
            self.classes, c["filters"], c["bottleneck_blocks"], c["negative_slope"], c["batch_norm_momentum"]
        )

    def loss_function(self) -> TverskyLoss:
        """DeepFindET's Tversky loss of the config."""
        return tversky_loss(self.config)

    def downsampling(self) -> int:
        """One halving per max pooling, between every two filter levels."""
        return 2 ** (len(self.config["filters"]) - 1)


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
