"""The deepfindet plug-in's network, loss and configuration."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from architectures.deepfindet import DEFAULTS, DeepFindET, ResidualBlock, ResidualUNet, tversky_loss
from benchmark.errors import BenchError
from benchmark.particles import ParticleTable

PARTICLES = ParticleTable.czii()


def test_the_network_gives_seven_class_maps_of_the_patch():
    network = ResidualUNet(7, [8, 12, 16], 2, 0.3).eval()
    with torch.no_grad():
        logits = network(torch.randn(2, 1, 16, 24, 32))
    assert logits.shape == (2, 7, 16, 24, 32)


def test_the_loss_is_deepfindets_tversky_with_alpha_on_false_positives_and_beta_on_false_negatives():
    torch.manual_seed(1)
    logits, targets = torch.randn(2, 7, 6, 6, 6), torch.randint(0, 7, (2, 1, 6, 6, 6))
    probability = torch.softmax(logits, dim=1)
    truth = torch.nn.functional.one_hot(targets[:, 0], 7).permute(0, 4, 1, 2, 3).float()
    tp, fp, fn = (
        (a * b).sum(dim=(0, 2, 3, 4))
        for a, b in ((probability, truth), (probability, 1 - truth), (1 - probability, truth))
    )
    expected = 1 - (tp / (tp + 0.3 * fp + 0.7 * fn + 1e-3)).mean()
    torch.testing.assert_close(tversky_loss(DEFAULTS)(logits, targets), expected)


def test_a_few_adam_steps_lower_the_tversky_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    network = ResidualUNet(7, [8, 12, 16], 2, 0.3)
    images = torch.randn(2, 1, 16, 16, 16)
    targets = (images > 1.0).long() * 4  # "ribosome" where the image is bright
    loss_function = tversky_loss(DEFAULTS)
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-2)
    losses = []
    for _ in range(6):
        optimiser.zero_grad()
        loss = loss_function(network(images), targets)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses


def test_residual_blocks_have_a_one_voxel_convolution_shortcut_exactly_where_the_channels_change():
    blocks = [m for m in ResidualUNet(7, [8, 12, 16], 4, 0.3).modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 2 + 4 + 2 * 2
    changing = 0
    for block in blocks:
        first = block.body[0].conv
        if first.in_channels != first.out_channels:
            changing += 1
            assert isinstance(block.shortcut.conv, nn.Conv3d)
            assert block.shortcut.conv.kernel_size == (1, 1, 1)
            assert (block.shortcut.conv.in_channels, block.shortcut.conv.out_channels) == (
                first.in_channels,
                first.out_channels,
            )
        else:
            assert isinstance(block.shortcut, nn.Identity)
    assert changing == 2 + 1 + 2  # encoder levels, bottleneck entry, decoder entries


def test_config_overrides_reach_the_network():
    model = DeepFindET({"filters": [4, 6, 10], "bottleneck_blocks": 3, "batch_norm_momentum": 0.2}, PARTICLES, "cpu", 0)
    network = model.network
    norms = [m for m in network.modules() if isinstance(m, nn.BatchNorm3d)]
    assert norms and all(m.momentum == 0.2 and m.eps == 1e-3 for m in norms)
    assert [block.body[0].conv.out_channels for block in network.encoder] == [4, 6]
    assert len(network.bottleneck) == 3
    assert network.bottleneck[0].body[0].conv.out_channels == 10
    assert network.head.conv.out_channels == 7


def test_patch_and_window_sizes_must_survive_the_poolings_and_fit_a_tile():
    with pytest.raises(BenchError, match="multiples of 4"):
        DeepFindET({"patch_size": 30}, PARTICLES, "cpu", 0)
    with pytest.raises(BenchError, match="tile_size"):
        DeepFindET({"roi_size": [32, 64, 64], "tile_size": [64, 64, 48]}, PARTICLES, "cpu", 0)


def test_an_unknown_config_option_is_refused_with_the_known_ones():
    with pytest.raises(BenchError, match=r"'learning_rate'.*known options: filters"):
        DeepFindET({"learning_rate": 1e-3}, PARTICLES, "cpu", 0)
