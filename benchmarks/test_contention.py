"""One architecture's epoch time alone and beside a CPU-bound process, with OpenMP threads that wait passively (what
every job of the harness gets) or as OpenMP's runtime does by default (spin a while, then sleep).

A job's torch threads that spin while they wait for work take cycles from any other process on the cores, and lose
them back: beside one busy process, the epochs of a spinning job slow down far more than a fair share of the cores
explains. Each test trains deepfindet at the demo suite's settings (fewer steps per epoch) for a few epochs in a
fresh process, since OpenMP reads its wait policy when it starts, optionally beside `python -c "while True: pass"`,
and records the median epoch seconds in `extra_info`; the timed figure is the whole process (start and imports
included). CPU figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from statistics import median

import pytest

EPOCHS = 3
STEPS = 20  # steps per epoch (the demo's deepfindet takes 50)
WAITS = {"passive": "PASSIVE", "default": None}  # OMP_WAIT_POLICY: None leaves it unset


def train_epochs() -> list[float]:
    """In the worker process: deepfindet at the demo's settings, EPOCHS short epochs on noise runs; epoch seconds."""
    from test_throughput import noise_runs

    from benchmark.interface import Budget, Tracker
    from benchmark.particles import ParticleTable
    from benchmark.registry import ARCHITECTURES
    from benchmark.suite import load_suite

    spec = next(s for s in load_suite("demo").architectures if s.name == "deepfindet")
    model = ARCHITECTURES.get("deepfindet")({**spec.config, "steps_per_epoch": STEPS}, ParticleTable.czii(), "cpu", 0)
    runs = noise_runs((92, 160, 160))
    tracker = Tracker(Budget(minutes=30.0, epochs=EPOCHS))
    tracker.start()
    model.fit(runs[:1], runs[1:], tracker.budget, tracker)
    return tracker.epoch_seconds


def environment(policy: str | None) -> dict[str, str]:
    """This process's environment with OMP_WAIT_POLICY set to `policy`, or unset."""
    unset = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    return unset if policy is None else {**unset, "OMP_WAIT_POLICY": policy}


def epochs_in_a_process(wait: str, beside_a_busy_process: bool) -> list[float]:
    """Run `train_epochs` in a fresh process with OpenMP's wait policy, alone or beside a busy loop."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if beside_a_busy_process else None
    try:
        done = subprocess.run(
            [sys.executable, __file__],
            env=environment(WAITS[wait]),
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("load", ["alone", "beside a busy process"])
@pytest.mark.parametrize("wait", list(WAITS))
def test_epoch_time_alone_and_beside_a_cpu_bound_process(benchmark, wait, load):
    seconds = benchmark.pedantic(epochs_in_a_process, args=(wait, load != "alone"), rounds=1, iterations=1)
    benchmark.extra_info.update(wait=wait, load=load, epoch_seconds=seconds, median_epoch_seconds=median(seconds))
    assert len(seconds) == EPOCHS


if __name__ == "__main__":
    print(json.dumps(train_epochs()))
