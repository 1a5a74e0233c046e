"""The unet3d plug-in: MONAI's UNet on the shared segmenter body, its loss, configuration, training and weights."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from monai.networks.blocks import ResidualUnit
from monai.networks.nets import UNet
from torch import nn

from architectures.deepfindet import DeepFindET
from architectures.parts.training import Optimisation
from architectures.unet3d import DEFAULTS, UNet3D
from benchmark.data import Project
from benchmark.errors import BenchError
from benchmark.interface import Budget, Tracker
from benchmark.job import load_samples
from benchmark.particles import ParticleTable
from benchmark.suite import load_suite

PARTICLES = ParticleTable.czii()
TINY = {"channels": [4, 8, 8], "strides": [2, 1], "patch_size": 16, "roi_size": 16, "tile_size": 16}


def test_the_network_is_monais_residual_unet_giving_seven_class_maps_of_the_input():
    network = UNet3D(TINY, PARTICLES, "cpu", 0).network
    assert isinstance(network, UNet)
    assert any(isinstance(m, ResidualUnit) for m in network.modules())
    assert any(isinstance(m, nn.BatchNorm3d) for m in network.modules())
    kernels = [p for p in network.parameters() if p.dim() == 5]
    assert kernels and all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in kernels)
    with torch.no_grad():
        logits = network(torch.randn(2, 1, 16, 24, 32))
    assert logits.shape == (2, 7, 16, 24, 32)


def test_config_overrides_reach_the_network():
    config = {**TINY, "channels": [4, 6, 10], "norm": "instance", "act": "relu", "dropout": 0.2, "num_res_units": 2}
    network = UNet3D(config, PARTICLES, "cpu", 0).network
    convolutions = [m for m in network.modules() if isinstance(m, nn.Conv3d)]
    assert {m.out_channels for m in convolutions} >= {4, 6, 10}
    assert not any(isinstance(m, nn.BatchNorm3d) for m in network.modules())
    assert any(isinstance(m, nn.InstanceNorm3d) for m in network.modules())
    assert any(isinstance(m, nn.ReLU) for m in network.modules())
    assert any(isinstance(m, nn.Dropout) and m.p == 0.2 for m in network.modules())
    units = [m for m in network.modules() if isinstance(m, ResidualUnit)]
    assert any(len(unit.conv) == 2 for unit in units)  # two convolutions per encoder unit


def test_the_loss_is_particle_class_dice_summed_over_the_batch_plus_cross_entropy():
    torch.manual_seed(1)
    logits, targets = torch.randn(2, 7, 6, 6, 6), torch.randint(0, 7, (2, 1, 6, 6, 6))
    probability = torch.softmax(logits, dim=1)[:, 1:]
    truth = torch.nn.functional.one_hot(targets[:, 0], 7).permute(0, 4, 1, 2, 3).float()[:, 1:]
    overlap, total = (probability * truth).sum(dim=(0, 2, 3, 4)), (probability + truth).sum(dim=(0, 2, 3, 4))
    dice = 1 - ((2 * overlap + 1e-5) / (total + 1e-5)).mean()
    cross_entropy = torch.nn.functional.cross_entropy(logits, targets[:, 0])
    model = UNet3D({**TINY, "lambda_dice": 0.5, "lambda_ce": 2.0}, PARTICLES, "cpu", 0)
    torch.testing.assert_close(model.loss_function()(logits, targets), 0.5 * dice + 2.0 * cross_entropy)


def test_a_few_training_steps_lower_the_loss_on_a_fixed_batch():
    model = UNet3D({**TINY, "lr": 1e-2}, PARTICLES, "cpu", 0)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2, 1, 16, 16, 16, generator=generator)
    targets = (images > 1.0).long() * 4  # "ribosome" where the image is bright
    optimisation = Optimisation(model.network, torch.optim.Adam(model.network.parameters(), lr=model.config["lr"]))
    loss_function = model.loss_function()
    model.network.train()
    losses = [model.training_step(images.numpy(), targets.numpy(), optimisation, loss_function) for _ in range(8)]
    assert losses[-1] < losses[0] - 0.1, losses


@pytest.mark.parametrize(("factory", "config"), [(UNet3D, TINY), (DeepFindET, {"filters": [4, 6, 8]})])
def test_the_seed_fixes_the_initial_weights_and_pretrained_weights_are_loaded(tmp_path, factory, config):
    """Both segmenters, through their shared PatchSegmenter body."""
    first, same, other = (factory(config, PARTICLES, "cpu", seed).network.state_dict() for seed in (1, 1, 2))
    assert all(torch.equal(first[k], same[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    torch.save(other, tmp_path / "weights.pt")
    loaded = factory({**config, "pretrained": str(tmp_path / "weights.pt")}, PARTICLES, "cpu", 1).network
    assert all(torch.equal(loaded.state_dict()[k], other[k]) for k in other)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"channels": [8, 16, 16], "strides": [2, 2], "patch_size": 30}, r"UNet3D: .* multiples of 4.*got \[30, 96"),
        ({"strides": [2, 2, 2], "roi_size": [92, 96, 96]}, r"multiples of 8.*got \[96, 92, 96, 96\]"),
        ({"roi_size": [32, 64, 64], "tile_size": [64, 64, 48]}, r"tile_size \[64, 64, 48\] must be at least roi_size"),
    ],
)
def test_sizes_the_network_cannot_take_are_refused_in_one_line(config, message):
    with pytest.raises(BenchError, match=message) as error:
        UNet3D(config, PARTICLES, "cpu", 0)
    assert "\n" not in str(error.value)


def test_an_unknown_config_option_is_refused_with_the_known_ones():
    with pytest.raises(BenchError, match=r"'features'.*known options: channels, strides"):
        UNet3D({"features": [8, 16]}, PARTICLES, "cpu", 0)


def test_a_segmenter_whose_defaults_lack_a_shared_option_is_refused_when_defined():
    partial = {k: v for k, v in DEFAULTS.items() if k != "tile_size"}
    with pytest.raises(TypeError, match=r"Partial\.defaults lacks the option\(s\) tile_size$"):

        class Partial(UNet3D):
            defaults = partial


def test_a_short_fit_on_the_smoke_data_logs_its_epochs_and_saved_weights_predict_identically(smoke_config, tmp_path):
    suite = load_suite("smoke")
    project = Project(smoke_config)
    train = load_samples(project, suite.split.train[:2], suite.data)
    test = load_samples(project, suite.split.test[:1], suite.data)[0].tomogram
    sizes = {"patch_size": 24, "roi_size": 32, "tile_size": [48, 64, 64]}
    config = {**TINY, **sizes, "batch_size": 2, "steps_per_epoch": 3, "jitter": 4}
    model = UNet3D(config, project.particles, "cpu", 0)
    initial = {k: v.clone() for k, v in model.network.state_dict().items()}
    budget = Budget(minutes=1, epochs=2)
    tracker = Tracker(budget)
    tracker.start()
    model.fit(train, [], budget, tracker)
    assert len(tracker.epoch_seconds) == 2 and tracker.stopped_by == "epochs"
    assert (tracker.epoch_samples, tracker.epoch_unit) == (6, "24x24x24 patches")
    assert all(0 < log["loss"] < 10 for log in tracker.logs)
    assert not all(torch.equal(initial[k], v) for k, v in model.network.state_dict().items())
    assert not model.network.training
    picks = model.predict(test)

    model.save(tmp_path / "model")
    restored = UNet3D({}, project.particles, "cpu", seed=5)  # the defaults' network: load rebuilds the saved one
    restored.load(tmp_path / "model")
    assert restored.config == model.config
    pd.testing.assert_frame_equal(restored.predict(test), picks)
