"""Learning curves: a deep job's val score at points of its epoch bound, measured between two epochs with the
budget's clock stopped (the seconds are the job's `curve_seconds`, not training)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from benchmark.data import Project
from benchmark.evaluation import post_process, predict_picks, truth_of
from benchmark.interface import Architecture, Sample, Tracker
from benchmark.suite import ArchitectureSpec
from metrics.fbeta import score_picks
from metrics.thresholds import apply_thresholds, tune_thresholds


def curve_epochs(fractions: Sequence[float], bound: int | None) -> tuple[int, ...]:
    """The epoch counts nearest the fractions of the bound, before its last epoch (the job's own evaluation scores
    the end); none without a bound."""
    if not bound or bound < 2:
        return ()
    return tuple(sorted({min(bound - 1, max(1, round(f * bound))) for f in fractions}))


def predicts_mid_fit(model: Architecture | type) -> bool:
    """Whether a plug-in (or its class) can predict between two epochs of its fit: it overrides `interim`."""
    kind = model if isinstance(model, type) else type(model)
    return issubclass(kind, Architecture) and kind.interim is not Architecture.interim


def val_score(candidates: pd.DataFrame, val: list[Sample], project: Project) -> float:
    """The competition score of val candidates at the thresholds tuned on val itself (the selection figure)."""
    truth = truth_of(val)
    kept = apply_thresholds(candidates, tune_thresholds(truth, candidates, project.particles))
    return float(score_picks(truth, kept, project.particles).weighted)


@dataclass
class LearningCurve:
    """Called by the tracker after the curve's epochs: predicts val on the model so far, post-processes it as the
    suite says, and records the val score with the training seconds spent by then."""

    model: Architecture
    spec: ArchitectureSpec
    project: Project
    samples: dict[str, list[Sample]]
    tracker: Tracker
    sync: Callable[[], None]
    rows: list[dict] = field(default_factory=list)

    def __call__(self, epochs: int) -> None:
        trained = self.tracker.elapsed()
        started = time.perf_counter()
        with self.model.interim():
            found = [predict_picks(self.model, self.spec, s, self.project, self.sync)[0] for s in self.samples["val"]]
        processed = post_process(self.spec.postprocess, {"val": pd.concat(found)}, self.samples, self.project)
        score = val_score(processed.candidates["val"], self.samples["val"], self.project)
        self.add(epochs, trained, score, time.perf_counter() - started)

    def add(self, epochs: int, trained: float, score: float, seconds: float | None) -> None:
        """Record one point."""
        bound = self.tracker.budget.epochs
        self.rows.append({"fraction": epochs / bound, "epoch": epochs, "train_seconds": trained, "val_score": score,
                          "eval_seconds": seconds})  # fmt: skip

    def finish(self, scores: list[dict]) -> list[dict]:
        """The points with the end of training added (the job's own val score, no extra evaluation); none when no
        point was measured."""
        if not self.rows:
            return []
        final = next(r["f4"] for r in scores if r["split"] == "val" and r["particle_type"] == "weighted")
        self.add(len(self.tracker.epoch_seconds), self.tracker.train_seconds, final, None)
        return self.rows
