"""`bench calibrate`: measure on this machine each learned entry's set-up, first-epoch and epoch seconds, each in a
fresh process as a job trains, and derive the epoch bounds that give every one of them the suite's `train_seconds`
of training (`benchmark.calibration`)."""

from __future__ import annotations

import multiprocessing
import os
import platform
import statistics
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmark.calibration import epochs_for, fingerprint
from benchmark.data import Project
from benchmark.environment import git_state, library_versions, torch_state
from benchmark.errors import BenchError
from benchmark.interface import Tracker
from benchmark.job import fit_timed, load_samples, seeded_model
from benchmark.learning_curve import LearningCurve, predicts_mid_fit
from benchmark.preflight import learned_entries
from benchmark.results import utc_now
from benchmark.runner import resolve_data
from benchmark.suite import SPLIT_FOLD, ArchitectureSpec, Suite, load_suite
from metrics.resources import synchronizer

MEASURED_EPOCHS = 4  # a first epoch (warm-up included) and three more, whose median is the epoch time
SLOWER = 3  # the cap must leave a machine this many times slower than the reference time to finish


def measure(spec: ArchitectureSpec, suite: Suite, project: Project, samples: dict, device: str, epochs: int) -> dict:
    """Fit one entry for `epochs` epochs as a job does (seeded, timed from the call of fit) and split its seconds.

    When the suite measures learning curves, a curve point follows the measured epochs and one more epoch is timed:
    what it takes over the epoch time is what each point costs the training clock (the evaluation itself stops the
    clock, but the epoch after it starts cold: its kernels and caches were the inference's).
    """
    seed = suite.seeds[0]
    model = seeded_model(spec, suite, project, device, seed)
    curved = bool(suite.learning_curve) and predicts_mid_fit(model)
    sync = synchronizer(device)
    tracker = Tracker(replace(suite.budget, epochs=epochs + curved), sync)
    if curved:
        tracker.curve_epochs = (epochs,)
        tracker.at_curve_point = LearningCurve(model, spec, project, samples, tracker, sync)
    with tempfile.TemporaryDirectory() as work:
        model.workdir = Path(work)
        fit_timed(model, samples, tracker, f"{spec.label} calibration")
    seconds = tracker.epoch_seconds
    if len(seconds) < 2 + curved:
        raise BenchError(f"calibration: {spec.label} ran {len(seconds)} epoch(s) in the cap; raise budget.minutes")
    epoch = statistics.median(seconds[1:epochs])
    return {
        "setup_seconds": tracker.train_seconds - sum(seconds),
        "first_epoch_seconds": seconds[0],
        "epoch_seconds": epoch,
        "curve_point_seconds": max(0.0, seconds[epochs] - epoch) if curved else 0.0,
    }


def measure_apart(suite_path: Path, config: str, label: str, device: str, epochs: int) -> dict:
    """`measure` one entry in a process of its own, started afresh as a job's is: its imports, threads and first
    epoch's warm-up are a job's, not those left by the entries measured before it."""
    suite = load_suite(str(suite_path), calibrated=False)
    project = Project(config, suite.metric)
    split = suite.folds[SPLIT_FOLD]
    samples = {name: load_samples(project, getattr(split, name), suite.data) for name in ("train", "val")}
    spec = next(spec for spec in suite.architectures if spec.label == label)
    return measure(spec, suite, project, samples, device, epochs)


def machine(device: str) -> dict[str, Any]:
    """The machine a calibration ran on, as a reader compares it with theirs."""
    state = torch_state(device)
    return {
        "host": platform.node(),
        "device": state["device"],
        "device_name": state["device_name"],
        "cpu_capability": state["cpu_capability"],
        "cores": os.cpu_count(),
        "torch_threads": state["num_threads"],
        "torch": library_versions()["torch"],
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),  # as jobs run: PASSIVE
    }


def calibrate(
    suite: Suite, config: str | None, device: str, echo: Callable[[str], None], epochs: int = MEASURED_EPOCHS
) -> dict[str, Any]:
    """The calibration of a suite on this machine: per learned entry its measured seconds and derived bound."""
    if suite.train_seconds is None:
        raise BenchError(f"suite {suite.name} has no budget.train_seconds; set the training time to calibrate for")
    config = str(resolve_data(suite, config, echo)["config"])
    entries = {}
    for spec in learned_entries(suite):
        echo(f"calibrate: {spec.label}: {epochs} epochs on {device}, in a fresh process")
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as apart:
            measured = apart.submit(measure_apart, suite.path, config, spec.label, device, epochs).result()
        curve = len(suite.learning_curve) * measured["curve_point_seconds"]  # the points' cost to the clock
        fixed = measured["setup_seconds"] + measured["first_epoch_seconds"] + curve
        bound = epochs_for(suite.train_seconds, fixed, measured["epoch_seconds"])
        expected = fixed + (bound - 1) * measured["epoch_seconds"]
        entries[spec.label] = {
            "fingerprint": fingerprint(spec.name, spec.config),
            "epochs": bound,
            "expected_seconds": round(expected, 1),
            **{name: round(value, 2) for name, value in measured.items()},
        }
        echo(
            f"calibrate: {spec.label}: {bound} epochs, about {expected:.0f} s ({measured['epoch_seconds']:.1f} s each)"
        )
    longest = max((e["expected_seconds"] for e in entries.values()), default=0.0)
    if suite.budget.seconds < SLOWER * longest:
        echo(f"warning: the cap ({suite.budget.minutes:g} min) is under {SLOWER}x the longest fit ({longest:.0f} s): "
             "a slower machine would be cut; raise budget.minutes")  # fmt: skip
    return {
        "suite": suite.name,
        "train_seconds": suite.train_seconds,
        "measured": utc_now(),
        "git": git_state()["short"],
        "machine": machine(device),
        "measured_epochs": epochs,
        "seed": suite.seeds[0],
        "entries": entries,
    }
