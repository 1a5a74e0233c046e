"""What the runner and a job process tell each other: the job's spec, its budget, and the phase it is in."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from benchmark.files import write_json
from benchmark.interface import Architecture, Budget
from benchmark.suite import ArchitectureSpec, Suite

PHASE = "phase.json"  # the job's phase and since when, read by the runner to enforce the budget
PHASES = ("setup", "fit", "predict", "score")
RESULT = "result.json"  # the job's result (or failure), written once at its end
MODEL = "model"  # the job's saved model: jobs/<key>/model/ (bench predict loads it; --no-keep-models drops it)


@dataclass(frozen=True)
class JobSpec:
    """What the runner tells a job process."""

    key: str
    folder: str  # the job's working folder
    predictions: str  # where per-run CSVs go
    suite: str  # path of the suite file
    config: str  # copick config
    architecture: dict
    module: str  # the module that registers the architecture: the job imports only that plug-in
    seed: int
    fold: str
    device: str
    repeats: int  # timed predictions of each evaluated tomogram
    session_id: str | None  # copick session for write-back; None to skip it
    runner_pid: int = 0  # the bench run process: the job dies with it (0: run alone, or by a scheduler)
    parallel_jobs: int = 1  # jobs sharing this machine's cores with this one, itself included, at most
    #: saved models of other entries this job reuses: index (into its reusable entries), label, folder, train_seconds,
    #: and for an entry without post-processing steps its job's predictions folder and median latency per run
    reuse: list[dict] = field(default_factory=list)
    #: the modules registering the plug-ins of the entries it is built from (an ensemble's members), by name: imported
    #: with its own, rather than by discovering every plug-in
    part_modules: dict[str, str] = field(default_factory=dict)

    def work(self) -> tuple:
        """What the job computes (not where it writes or who started it): equal work gives equal results."""
        return (self.architecture, self.seed, self.fold, self.device, self.repeats, self.config)

    def save(self, path: Path) -> None:
        """Write the spec as JSON."""
        write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> JobSpec:
        """Read a spec written by save."""
        return cls(**json.loads(path.read_text()))


def reusable_entries(factory: object, config: dict) -> list[dict]:
    """The entries an architecture trains as parts of itself (none for a plain factory)."""
    return factory.reusable_entries(config) if isinstance(factory, type) and issubclass(factory, Architecture) else []


def job_budget(suite: Suite, spec: ArchitectureSpec, factory: object, reused: int) -> Budget:
    """The suite's budget for one entry. An entry that trains k > 0 of its parts itself (an ensemble's members not
    reused) has the cap (and the whole job's limit) k + 1 times, once per part and once for its own fitting; the
    epoch bound is unchanged."""
    budget = suite.budget_for(spec)
    trained_here = len(reusable_entries(factory, spec.config)) - reused
    if trained_here <= 0:
        return budget
    whole = budget.job_minutes and budget.job_minutes * (trained_here + 1)
    return replace(budget, minutes=budget.minutes * (trained_here + 1), job_minutes=whole)


def mark_phase(folder: Path, phase: str) -> None:
    """Tell the runner which phase the job is in and since when (wall clock): it enforces each phase's limit."""
    write_json(folder / PHASE, {"phase": phase, "since": time.time(), "pid": os.getpid()})


def read_phase(folder: Path) -> dict | None:
    """The phase a job last marked, with since when; None before it marked one."""
    try:
        return json.loads((folder / PHASE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
