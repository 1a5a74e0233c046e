"""The optimisation every deep plug-in's training loop shares: a learning-rate schedule sized to the budget's epoch
bound, gradient clipping and an exponential moving average (EMA) of the weights.

The schedule warms up linearly over `warmup_fraction` of its steps, then decays to `final_lr` x lr exactly where the
epoch bound ends (cosine or linear), so that a row trained for a short budget still ends its schedule: "budget-aware"
decay, which Li, Yumer and Ramanan ("Budgeted training", ICLR 2020) found to matter more than the budget's length
itself. Without an epoch bound the schedule spans `schedule_epochs`. Clipping bounds the gradients' global norm, and
the EMA (torch's `AveragedModel`, buffers included so batch-norm statistics follow) replaces the weights at the end
of training and whenever the model predicts mid-training.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from benchmark.errors import BenchError
from benchmark.interface import Budget

SCHEDULES = ("cosine", "linear", "constant")
#: the options a plug-in using `Optimisation` adds to its `DEFAULTS`
SCHEDULE_DEFAULTS: dict[str, Any] = {
    "schedule": "cosine",  # decay after the warm-up: cosine, linear or constant
    "warmup_fraction": 0.05,  # share of the scheduled steps over which the learning rate ramps up from zero
    "final_lr": 0.01,  # the learning rate at the epoch bound, x lr
    "schedule_epochs": 100,  # the schedule's length when the budget has no epoch bound
    "grad_clip": 0.0,  # largest global gradient norm; 0: no clipping
    "ema": 0.0,  # decay of the weights' exponential moving average per step; 0: no EMA
}


def lr_factor(step: int, total: int, warmup: float, schedule: str, final: float) -> float:
    """The learning rate of step `step` (from 0) of `total`, as a fraction of the base rate."""
    ramp = round(warmup * total)
    if step < ramp:
        return (step + 1) / ramp
    progress = min(1.0, (step - ramp) / max(1, total - ramp))
    if schedule == "cosine":
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1 - (1 - final) * progress
    return 1.0


def check_schedule(config: dict[str, Any], where: str) -> None:
    """Refuse schedule options out of range, before any job runs."""
    c = {**SCHEDULE_DEFAULTS, **config}
    problems = {
        "schedule": (c["schedule"] in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
        "warmup_fraction": (0 <= c["warmup_fraction"] < 1, "in [0, 1)"),
        "final_lr": (0 <= c["final_lr"] <= 1, "in [0, 1]"),
        "ema": (0 <= c["ema"] < 1, "in [0, 1): 0 for none, else a decay such as 0.99"),
        "grad_clip": (c["grad_clip"] >= 0, "0 (none) or a positive norm"),
        "schedule_epochs": (isinstance(c["schedule_epochs"], int) and c["schedule_epochs"] > 0, "a positive integer"),
    }
    for name, (good, what) in problems.items():
        if not good:
            raise BenchError(f"{where}: {name} {c[name]!r} must be {what}; fix the suite's config")


class Optimisation:
    """An optimiser with its budget-sized schedule, gradient clipping and weight EMA: one `step` per batch."""

    def __init__(
        self,
        network: nn.Module,
        optimiser: torch.optim.Optimizer,
        config: dict[str, Any] | None = None,
        budget: Budget | None = None,
        steps_per_epoch: int = 1,
    ):
        c = {**SCHEDULE_DEFAULTS, "schedule": "constant", **(config or {})}
        epochs = (budget.epochs if budget is not None else None) or c["schedule_epochs"]
        self.total_steps = epochs * steps_per_epoch
        self.network, self.optimiser, self.clip = network, optimiser, c["grad_clip"]
        factor = (c["warmup_fraction"], c["schedule"], c["final_lr"])
        self.scheduler = LambdaLR(optimiser, lambda step: lr_factor(step, self.total_steps, *factor))
        multi = get_ema_multi_avg_fn(c["ema"]) if c["ema"] else None
        self.average = AveragedModel(network, multi_avg_fn=multi, use_buffers=True) if c["ema"] else None

    def step(self, loss: torch.Tensor) -> None:
        """Back-propagate the loss, clip, step the optimiser and the schedule, and update the average."""
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip:
            nn.utils.clip_grad_norm_(self.network.parameters(), self.clip)
        self.optimiser.step()
        self.scheduler.step()
        if self.average is not None:
            self.average.update_parameters(self.network)

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """The network holds the averaged weights inside the block (a prediction mid-training), its own after."""
        if self.average is None:
            yield
            return
        own = {name: value.clone() for name, value in self.network.state_dict().items()}
        self.network.load_state_dict(self.average.module.state_dict())
        try:
            yield
        finally:
            self.network.load_state_dict(own)

    @contextmanager
    def predicting(self) -> Iterator[None]:
        """The network ready to predict mid-training (a learning-curve point): in evaluation mode with the averaged
        weights inside the block, training with its own after."""
        with self.averaged():
            self.network.eval()
            try:
                yield
            finally:
                self.network.train()

    def finish(self) -> None:
        """End training: the network keeps the averaged weights, when there is an average."""
        if self.average is not None:
            self.network.load_state_dict(self.average.module.state_dict())
