"""The shared optimisation: a schedule that ends where the epoch bound ends, clipping and the weights' average; and
host arrays on their way to the device."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from architectures.parts.device import to_device
from architectures.parts.training import SCHEDULE_DEFAULTS, Optimisation, check_schedule, lr_factor
from benchmark.errors import BenchError
from benchmark.interface import Budget


def rates(schedule: str, epochs: int = 4, steps: int = 25, warmup: float = 0.1, final: float = 0.01) -> list[float]:
    """The learning rate of every step of a training run of `epochs` x `steps` on a one-weight network."""
    network = nn.Linear(1, 1)
    optimiser = torch.optim.SGD(network.parameters(), lr=0.5)
    config = {**SCHEDULE_DEFAULTS, "schedule": schedule, "warmup_fraction": warmup, "final_lr": final}
    optimisation = Optimisation(network, optimiser, config, Budget(minutes=1, epochs=epochs), steps)
    seen = []
    for _ in range(epochs * steps):
        seen.append(optimiser.param_groups[0]["lr"])
        optimisation.step(network(torch.ones(1, 1)).sum())
    return seen


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_the_schedule_warms_up_then_decays_to_its_final_rate_at_the_epoch_bound(schedule):
    seen = rates(schedule)
    assert len(seen) == 100
    assert seen[0] == pytest.approx(0.5 / 10) and seen[9] == pytest.approx(0.5)  # ten warm-up steps, up to lr
    assert all(a >= b for a, b in itertools.pairwise(seen[9:]))  # then never up again
    assert seen[-1] == pytest.approx(0.5 * (0.01 + 0.99 * (1 / 90 if schedule == "linear" else 0)), abs=2e-3)
    middle = seen[10 + 45]
    expected = 0.5 * (0.01 + 0.99 * (0.5 * (1 + math.cos(math.pi * 0.5)) if schedule == "cosine" else 0.5))
    assert middle == pytest.approx(expected, rel=1e-6)


def test_a_longer_bound_stretches_the_schedule_rather_than_repeating_it():
    short, long = rates("cosine", epochs=2), rates("cosine", epochs=8)
    assert short[-1] == pytest.approx(long[-1], rel=0.2)  # both end near the final rate
    assert long[len(short) - 1] > 10 * short[-1]  # where the short run ended, the long one is still high


def test_a_constant_schedule_keeps_the_rate_after_the_warm_up():
    assert set(rates("constant")[10:]) == {0.5}


def test_without_an_epoch_bound_the_schedule_spans_schedule_epochs():
    optimisation = Optimisation(nn.Linear(1, 1), torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1), {
        "schedule_epochs": 7}, Budget(minutes=1), steps_per_epoch=3)  # fmt: skip
    assert optimisation.total_steps == 21
    assert lr_factor(20, 21, 0.0, "cosine", 0.0) == pytest.approx(0.0, abs=0.01)


def test_clipping_bounds_the_gradient_norm_of_each_step():
    network = nn.Linear(4, 1, bias=False)
    before = network.weight.detach().clone()
    optimisation = Optimisation(
        network, torch.optim.SGD(network.parameters(), lr=1.0), {"grad_clip": 0.1, "warmup_fraction": 0.0}
    )
    optimisation.step((network(torch.full((1, 4), 100.0)) ** 2).sum())  # a huge gradient
    assert torch.linalg.norm(network.weight.detach() - before) == pytest.approx(0.1, rel=1e-4)


def test_the_average_of_the_weights_is_used_mid_training_and_kept_at_the_end():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    optimisation = Optimisation(network, torch.optim.SGD(network.parameters(), lr=0.5), {"ema": 0.9})
    for _ in range(5):
        optimisation.step(network(torch.randn(8, 2)).pow(2).sum())
    own = {name: value.clone() for name, value in network.state_dict().items()}
    average = optimisation.average.module.state_dict()
    assert not torch.equal(own["0.weight"], average["0.weight"])
    with optimisation.averaged():
        assert torch.equal(network.state_dict()["0.weight"], average["0.weight"])
        assert torch.equal(network.state_dict()["1.running_mean"], average["1.running_mean"])  # buffers follow
    assert torch.equal(network.state_dict()["0.weight"], own["0.weight"])  # training goes on with its own weights
    optimisation.finish()
    assert torch.equal(network.state_dict()["0.weight"], average["0.weight"])


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("schedule", "step", "schedule 'step' must be one of cosine, linear, constant"),
        ("warmup_fraction", 1.0, "warmup_fraction 1.0 must be in [0, 1)"),
        ("final_lr", 2.0, "final_lr 2.0 must be in [0, 1]"),
        ("ema", 1.0, "ema 1.0 must be in [0, 1)"),
        ("grad_clip", -1.0, "grad_clip -1.0 must be 0 (none)"),
        ("schedule_epochs", 0, "schedule_epochs 0 must be a positive integer"),
    ],
)
def test_schedule_options_out_of_range_are_refused_in_one_line(option, value, message):
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        check_schedule({option: value}, "unet3d")


def test_a_read_only_array_reaches_the_device_as_a_copy_without_warning():
    values = pd.Series([1, 2, 3]).to_numpy(dtype=np.int64)
    values.flags.writeable = False  # as pandas hands out a column's values under copy-on-write
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tensor = to_device(values, "cpu")
    tensor[0] = 7
    assert values[0] == 1 and tensor.tolist() == [7, 2, 3]
