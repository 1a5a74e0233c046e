"""The one interface every architecture implements, and what the runner hands it."""

from __future__ import annotations

import abc
import functools
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from benchmark.coords import XYZ, inside_volume
from benchmark.data import Tomogram
from benchmark.errors import BenchError
from benchmark.particles import ParticleTable

PREDICTION_COLUMNS = ["particle_type", *XYZ, "score"]


@dataclass(frozen=True)
class Sample:
    """One tomogram of a split with its ground truth: picks (particle_type, x, y, z) in Å."""

    tomogram: Tomogram
    picks: pd.DataFrame

    @property
    def run(self) -> str:
        """The run (experiment) name."""
        return self.tomogram.run


@dataclass(frozen=True)
class Budget:
    """How long training may go: wall-clock minutes from the call of `fit` to its return, and an epoch bound.

    `minutes` is the cap every architecture of a suite shares; `epochs`, when given, ends training earlier. The
    runner stops a job whose set-up or `fit` is still running `grace_minutes` after the cap, and one whose
    predictions (warm-up, evaluated runs, repeats) take longer than `predict_minutes` (default: `minutes`) plus grace,
    and, given `job_minutes`, one still running that long after its launch, whatever its phase.
    """

    minutes: float
    epochs: int | None = None
    grace_minutes: float = 1.0
    predict_minutes: float | None = None
    job_minutes: float | None = None

    def __post_init__(self) -> None:
        if self.minutes is None:
            raise BenchError("a budget needs 'minutes' (the wall-clock cap of every fit); set it in the suite file")
        minutes = [self.minutes, self.grace_minutes,
                   *(value for value in (self.predict_minutes, self.job_minutes) if value is not None)]  # fmt: skip
        if not all(math.isfinite(value) for value in minutes):
            raise BenchError(
                f"budget {self} has an infinite or NaN number of minutes; the cap guards against hangs, so give it a "
                "finite number (several times what the epochs take) in the suite file"
            )
        positive = self.minutes > 0 and all(value is None or value > 0 for value in (self.predict_minutes,
                                                                                      self.job_minutes))  # fmt: skip
        if not positive or self.grace_minutes < 0 or (self.epochs is not None and self.epochs < 1):
            raise BenchError(f"budget {self} must be positive; fix the suite file")

    @property
    def seconds(self) -> float:
        """The cap in seconds."""
        return 60.0 * self.minutes

    def limit(self, phase: str) -> float:
        """Seconds after which the runner stops a job still in `phase` (setup, fit, predict or score)."""
        minutes = (self.predict_minutes or self.minutes) if phase == "predict" else self.minutes
        return 60.0 * (minutes + self.grace_minutes)


@dataclass
class Tracker:
    """Owned by the runner: times the epochs a plug-in runs and ends them when the budget is spent.

    The clock starts when the runner calls `start`, just before `fit` (data preparation counts). An epoch starts
    only while the epoch bound is not reached and the longest epoch so far still fits in the minutes left; the first
    epoch starts unless the minutes are already spent. Plug-ins with long epochs may also poll `exhausted`, and time
    what their steps wait for data with `waiting` (or report it with `waited`).
    """

    budget: Budget
    synchronize: Callable[[], None] = lambda: None
    epoch_seconds: list[float] = field(default_factory=list)
    logs: list[dict[str, float]] = field(default_factory=list)
    progress: Callable[[int, dict[str, float]], None] | None = None
    started: float | None = None
    #: why the epoch loop ended: "epochs" (the bound), "minutes" (the cap cut it short) or "plug-in" (it broke out).
    stopped_by: str | None = None
    #: what one epoch is, as the plug-in declared it: how many samples of which unit.
    epoch_samples: int | None = None
    epoch_unit: str | None = None
    train_seconds: float | None = None  # from the call of fit to its return, set by the runner
    #: per epoch, the seconds its steps waited for their data, and how many waits (steps) it timed; empty when the
    #: plug-in does not time them.
    data_seconds: list[float] = field(default_factory=list)
    data_steps: list[int] = field(default_factory=list)
    #: epoch counts after which `at_curve_point` is called with the count (a learning-curve point); the seconds it
    #: takes stop the budget's clock (they are not training) and add up in `curve_seconds`
    curve_epochs: tuple[int, ...] = ()
    at_curve_point: Callable[[int], None] | None = None
    curve_seconds: float = 0.0
    clock: Callable[[], float] = time.perf_counter
    _waited: float | None = field(default=None, init=False, repr=False)  # this epoch's wait; None until one is timed
    _steps: int = field(default=0, init=False, repr=False)  # this epoch's timed waits

    def start(self) -> None:
        """Start the budget's clock (the runner calls this just before `fit`)."""
        self.started = self.clock()

    def elapsed(self) -> float:
        """Seconds since the clock started."""
        if self.started is None:
            self.start()
        return self.clock() - self.started

    def exhausted(self) -> bool:
        """Whether the minutes are spent."""
        return self.elapsed() >= self.budget.seconds

    def epochs(self, samples: int | None = None, unit: str = "samples") -> Iterator[int]:
        """Yield epoch indices while the budget lasts, timing each loop body as one epoch.

        `samples` and `unit` say what one epoch is (e.g. 720, "32^3 patches"), for the results.
        """
        self.epoch_samples, self.epoch_unit = samples, unit if samples is not None else None
        self.stopped_by = "plug-in"
        epoch = len(self.epoch_seconds)  # a second loop continues the count: the bound is on all epochs
        while True:
            if self.budget.epochs is not None and epoch >= self.budget.epochs:
                self.stopped_by = "epochs"
                return
            longest = max(self.epoch_seconds, default=0.0)
            if self.exhausted() or self.elapsed() + longest > self.budget.seconds:
                self.stopped_by = "minutes"
                return
            self.synchronize()
            begin = self.clock()
            self._waited = 0.0 if self._waited is not None else None
            self._steps = 0
            try:
                yield epoch
            finally:  # a loop body that breaks out still counts as an epoch
                self.synchronize()
                self.epoch_seconds.append(self.clock() - begin)
                if self._waited is not None:
                    self.data_seconds.append(self._waited)
                    self.data_steps.append(self._steps)
            if len(self.epoch_seconds) in self.curve_epochs and self.at_curve_point is not None:
                self._pause_for(self.at_curve_point, len(self.epoch_seconds))
            if self.progress is not None:
                self.progress(epoch, self.logs[-1] if len(self.logs) > epoch else {})
            epoch += 1

    def _pause_for(self, evaluate: Callable[[int], None], epochs: int) -> None:
        """Run a learning-curve evaluation with the budget's clock stopped."""
        self.synchronize()
        begin = self.clock()
        evaluate(epochs)
        self.synchronize()
        spent = self.clock() - begin
        self.started = (begin if self.started is None else self.started) + spent
        self.curve_seconds += spent

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Time a wait for training data (a batch cut, loaded or copied) as part of the current epoch's data wait.

        Host time, not synchronised: on a GPU a batch cut on the device counts the time to queue its work, and once
        the host runs ahead of the device by a full launch queue, the time it blocks for a free slot (then the
        device, not the data, is the bottleneck). A host-side stall that starves the device counts in full.
        """
        begin = self.clock()
        try:
            yield
        finally:
            self.waited(self.clock() - begin)

    def waited(self, seconds: float) -> None:
        """Add seconds of data wait the plug-in measured itself (e.g. between a library's batch callbacks)."""
        if self._waited is None and self.epoch_seconds:  # the first timed wait falls in a running epoch
            self.data_seconds.extend([float("nan")] * len(self.epoch_seconds))
            self.data_steps.extend([0] * len(self.epoch_seconds))
        self._waited = (self._waited or 0.0) + seconds
        self._steps += 1

    def log(self, **values: float) -> None:
        """Record the current epoch's figures (loss, ...) for the progress display and the results."""
        self.logs.append({k: float(v) for k, v in values.items()})


@dataclass(frozen=True)
class SavedModel:
    """A model that another entry of the same suite run trained and saved: the entry's label, the folder its `save`
    wrote, the seconds its fit took and, where its job kept the model's own candidates (an entry without
    post-processing steps), the folder of its per-run predictions: `candidates(run)` gives them for the runs it
    predicted, so that a plug-in need not predict them again."""

    label: str
    folder: Path
    train_seconds: float
    predictions: Path | None = None
    #: the runs whose stored candidates `candidates` gave: the job adds their stored latency to its own
    served: set[str] = field(default_factory=set, compare=False)

    def candidates(self, run: str) -> pd.DataFrame | None:
        """The saved model's candidates of a run its job predicted (columns particle_type, x, y, z, score), or None."""
        if self.predictions is None or not (self.predictions / f"{run}.csv").is_file():
            return None
        stored = _stored_candidates(self.predictions / "candidates.csv")
        self.served.add(run)
        return stored[stored["experiment"] == run].drop(columns="experiment").reset_index(drop=True)


@functools.cache
def _stored_candidates(path: Path) -> pd.DataFrame:
    """A job's stored candidates, read once per process (run names as text, even those that look like numbers)."""
    return pd.read_csv(path, dtype={"experiment": str, "particle_type": str})


class Architecture(abc.ABC):
    """A particle picker: fit on train (and val) samples, predict Å picks with a score for a tomogram."""

    #: what it is, for listings: "3d-segmenter", "2d-detector", "ensemble" or "classical".
    kind: ClassVar[str] = "other"
    #: every config option with its default; when given, a suite's unknown option is an error, not ignored.
    defaults: ClassVar[dict[str, Any]] = {}
    #: what `bench tune` searches: option -> {low, high, log} (floats), {low, high, step} (integers: both bounds
    #: integers) or {choices: [...]}; settings a step's cost does not depend on, so that every trial gets the compute
    #: of the row. A suite's `tune:` section replaces it for an entry.
    search_space: ClassVar[dict[str, dict[str, Any]]] = {}
    #: a folder of the job's own for files a plug-in needs while it trains or predicts (datasets in a library's
    #: layout, a library's settings and runs); the runner sets it before `fit`, None when run outside a job.
    workdir: Path | None = None
    #: the saved models of other entries of this suite run that `reusable_entries` matched, by entry index; the
    #: runner sets them before `fit`, which loads them instead of training those entries again.
    saved_models: Mapping[int, SavedModel] = MappingProxyType({})
    #: the suite's compute precision on this device, set by the runner before `fit`: "bf16" (mixed precision:
    #: autocast to bfloat16) or "fp32". A plug-in that runs in another (or none of torch's) sets what it ran in
    #: during `fit`: the results record this attribute as the job's `compute_precision`.
    precision: str = "fp32"

    def __init__(self, config: dict[str, Any], particles: ParticleTable, device: str, seed: int):
        self.check_config(config)
        self.config = {**self.defaults, **config}
        self.particles = particles
        self.device = device
        self.seed = seed

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        """Refuse options the architecture does not have (when it declares its `defaults`)."""
        unknown = sorted(set(config) - set(cls.defaults)) if cls.defaults else []
        if unknown:
            raise BenchError(
                f"{cls.__name__} has no config option(s) {', '.join(map(repr, unknown))}; "
                f"known options: {', '.join(cls.defaults)}"
            )

    @classmethod
    def reusable_entries(cls, config: dict[str, Any]) -> list[dict[str, Any]]:
        """Suite-style entries (name, config, epochs) this architecture trains as parts of itself (an ensemble's
        members): the runner runs the suite's equal entries first and hands their models over in `saved_models`."""
        return []

    @abc.abstractmethod
    def fit(self, train: Sequence[Sample], val: Sequence[Sample], budget: Budget, tracker: Tracker) -> None:
        """Train; loop over `tracker.epochs()` so the runner can time and stop the epochs."""

    @abc.abstractmethod
    def predict(self, tomogram: Tomogram) -> pd.DataFrame:
        """All candidate picks with columns particle_type, x, y, z (Å) and score; the runner thresholds them."""

    def interim(self) -> AbstractContextManager[None] | None:
        """A context in which `predict` works on the model trained so far, entered between two epochs of `fit` for a
        learning-curve point; None (the default) when the plug-in cannot predict mid-training: it has no curve."""
        return None

    @abc.abstractmethod
    def save(self, directory: Path) -> None:
        """Write everything predict needs into `directory`."""

    @abc.abstractmethod
    def load(self, directory: Path) -> None:
        """Restore what `save` wrote."""


def check_predictions(picks: object, architecture: str, tomogram: Tomogram, particles: ParticleTable) -> pd.DataFrame:
    """Validate a plug-in's predictions; a wrong shape is the plug-in's fault and says so in one line."""
    if not isinstance(picks, pd.DataFrame):
        raise BenchError(f"architecture '{architecture}' predict() returned {type(picks).__name__}, not a DataFrame")
    missing = [c for c in PREDICTION_COLUMNS if c not in picks.columns]
    if missing:
        raise BenchError(
            f"architecture '{architecture}' predict() returned columns {list(picks.columns)}; "
            f"missing {', '.join(missing)} (expected {', '.join(PREDICTION_COLUMNS)})"
        )
    picks = picks[PREDICTION_COLUMNS].reset_index(drop=True)
    particles.check_names(picks["particle_type"].unique(), f"architecture '{architecture}' predict()")
    picks = picks.astype({c: float for c in [*XYZ, "score"]})
    if not np.isfinite(picks[[*XYZ, "score"]].to_numpy()).all():
        raise BenchError(f"architecture '{architecture}' predict() returned non-finite coordinates or scores")
    outside = int((~inside_volume(picks[XYZ].to_numpy(), tomogram.shape, tomogram.voxel_size)).sum())
    if outside:
        raise BenchError(
            f"architecture '{architecture}' predict() returned {outside} picks outside the {tomogram.run} volume; "
            "coordinates must be (x, y, z) in Å"
        )
    return picks
