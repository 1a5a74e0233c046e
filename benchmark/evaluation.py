"""What a job does with a fitted model's candidates: time its predictions, apply the suite's post-processing, tune
thresholds on val, score every split, and write the picks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.coords import XYZ
from benchmark.data import Project
from benchmark.files import inside, write_csv
from benchmark.interface import Architecture, Sample, check_predictions
from benchmark.postprocessing import Pipeline, StepData
from benchmark.results import LATENCY_PARTS
from benchmark.submission import write_submission
from benchmark.suite import ArchitectureSpec
from metrics.fbeta import matched_references, reach, score_picks
from metrics.thresholds import apply_thresholds, tune_thresholds


def predict_picks(
    model: Architecture, spec: ArchitectureSpec, sample: Sample, project: Project, sync: Callable[[], None]
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Checked candidate picks of one tomogram, tagged with its run, and the seconds spent reading it, in the model
    (predict less its reads), in the checks, and in all; the suite's steps are applied (and timed) afterwards."""
    clock = sample.tomogram.reads
    clock.seconds = 0.0
    sync()
    started = time.perf_counter()
    raw = model.predict(sample.tomogram)
    sync()
    predicted = time.perf_counter()
    picks = check_predictions(raw, spec.label, sample.tomogram, project.particles).assign(experiment=sample.run)
    done = time.perf_counter()
    seconds = {
        "read_seconds": clock.seconds,
        "model_seconds": predicted - started - clock.seconds,
        "postprocess_seconds": done - predicted,
        "total_seconds": done - started,
    }
    return picks, seconds


@dataclass
class Processed:
    """Candidates after a list of post-processing steps: per split, with the seconds the fit took, the seconds per
    tomogram the steps took, and what each step's fit chose."""

    candidates: dict[str, pd.DataFrame]
    fit_seconds: float
    seconds: dict[str, float]  # run -> seconds
    fitted: list[dict]


def post_process(
    steps: list[dict], candidates: dict[str, pd.DataFrame], samples: dict[str, list[Sample]], project: Project
) -> Processed:
    """Fit the steps (train runs, val candidates), then apply them to every split's candidates, tomogram by tomogram,
    timed."""
    pipeline = Pipeline.build(steps, project.particles)
    started = time.perf_counter()
    pipeline.fit(StepData(samples["train"], samples["val"], candidates["val"]))
    fit_seconds = time.perf_counter() - started
    processed, seconds = {}, {}
    for split, found in candidates.items():
        parts = []
        for sample in samples[split]:
            started = time.perf_counter()
            mine = found[found["experiment"] == sample.run].reset_index(drop=True)
            parts.append(pipeline(mine, sample.tomogram).assign(experiment=sample.run))
            seconds[sample.run] = time.perf_counter() - started
        processed[split] = pd.concat(parts, ignore_index=True)
    return Processed(processed, fit_seconds, seconds, [step.fitted() for step in pipeline.steps])


@dataclass
class Evaluated:
    """Thresholds tuned on val (with the oracle's on the evaluated split beside them), the thresholded picks of every
    split, their score rows, and per tomogram and type their counts and which references they found."""

    thresholds: pd.DataFrame
    picks: dict[str, pd.DataFrame]
    scores: list[dict]
    counts: list[dict]
    matches: list[dict]

    def rows(self) -> dict[str, list[dict]]:
        """The rows of the tables a job (or an ablation variant) stores."""
        return {"scores": self.scores, "thresholds": self.thresholds.to_dict("records"), "counts": self.counts,
                "matches": self.matches}  # fmt: skip


def evaluate(
    candidates: dict[str, pd.DataFrame], samples: dict[str, list[Sample]], project: Project, evaluated: str
) -> Evaluated:
    """Tune thresholds on val, apply them to every split and score it; the oracle thresholds (the best on the
    evaluated split, for the report's price of tuning on val: never used for a choice) are stored beside them."""
    thresholds = tune_thresholds(truth_of(samples["val"]), candidates["val"], project.particles)
    oracle = tune_thresholds(truth_of(samples[evaluated]), candidates[evaluated], project.particles)
    picks = {name: apply_thresholds(found, thresholds) for name, found in candidates.items()}
    scores = [row for name in picks for row in score_rows(name, picks[name], samples[name], project)]
    counts, matches = [], []
    for name, kept in picks.items():
        for sample in samples[name]:
            found, flags = tomogram_evidence(kept[kept["experiment"] == sample.run], sample, project)
            counts += [{"split": name, **row} for row in found]
            matches += [{"split": name, **row} for row in flags]
    thresholds = thresholds.rename(columns={"f4": "val_f4"}).assign(
        oracle_threshold=oracle["threshold"], oracle_f4=oracle["f4"]
    )
    return Evaluated(thresholds, picks, scores, counts, matches)


def tomogram_evidence(kept: pd.DataFrame, sample: Sample, project: Project) -> tuple[list[dict], list[dict]]:
    """One tomogram's rows per particle type (references, kept candidates, TP, FP, FN) and one row per reference
    (its index among the run's references of its type, in ground-truth order, whether a kept pick found it, and where
    it is, in Å)."""
    counts, matches = [], []
    for particle in project.particles:
        references = sample.picks.loc[sample.picks["particle_type"] == particle.name, XYZ].to_numpy(float)
        candidates = kept.loc[kept["particle_type"] == particle.name, XYZ].to_numpy(float)
        found = matched_references(references, candidates, reach(project.particles, particle.name))
        tp = int(found.sum())
        key = {"run": sample.run, "particle_type": particle.name}
        counts.append({**key, "references": len(references), "candidates": len(candidates), "tp": tp,
                       "fp": len(candidates) - tp, "fn": len(found) - tp})  # fmt: skip
        matches += [{**key, "reference": i, "matched": int(hit), **dict(zip(XYZ, map(float, xyz), strict=True))}
                    for i, (hit, xyz) in enumerate(zip(found, references, strict=True))]  # fmt: skip
    return counts, matches


def variant_rows(
    spec: ArchitectureSpec,
    variant: dict,
    processed: Processed,
    base: Processed,
    samples: dict[str, list[Sample]],
    project: Project,
    evaluated: str,
) -> dict:
    """One ablation variant's rows: scores, thresholds, counts and matches under the label `<label>+<name>`, its
    ablation row (steps, what they fitted, their extra seconds, and the evaluated split's candidates before and
    after), and its picks."""
    result = evaluate(processed.candidates, samples, project, evaluated)
    runs = [sample.run for sample in samples[evaluated]]
    return {
        "label": f"{spec.label}+{variant['name']}",
        **result.rows(),
        "picks": result.picks,
        "ablation": {
            "base": spec.label,
            "variant": variant["name"],
            "steps": json.dumps(variant["steps"]),
            "fitted": json.dumps(processed.fitted, default=plain),
            "fit_seconds": processed.fit_seconds,
            "postprocess_seconds": float(np.median([processed.seconds[run] for run in runs])),
            "candidates_before": len(base.candidates[evaluated]),
            "candidates_after": len(processed.candidates[evaluated]),
        },
    }


def plain(value: object) -> object:
    """A value JSON cannot write (numpy scalars and arrays a step's `fitted` may hold) as plain Python."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def with_steps(latency: pd.DataFrame, seconds: dict[str, float]) -> pd.DataFrame:
    """The latency rows with each run's post-processing seconds (timed once per tomogram) added to every repeat."""
    extra = latency["run"].map(seconds).fillna(0.0)
    return latency.assign(
        postprocess_seconds=latency["postprocess_seconds"] + extra, total_seconds=latency["total_seconds"] + extra
    )


def with_reused(latency: pd.DataFrame, reuse: list[dict], served: dict[int, set[str]]) -> pd.DataFrame:
    """The latency rows with the median seconds the jobs of reused parts took on the runs whose stored candidates the
    job took (`served`, by part index) instead of predicting: they still cost their prediction, so each row is the
    whole pipeline's."""
    latency = latency.copy()
    for part in reuse:
        runs = served.get(part["index"], set())
        seconds = pd.DataFrame.from_dict(part.get("latency") or {}, orient="index", columns=list(LATENCY_PARTS))
        seconds = seconds[seconds.index.isin(runs)]
        latency[list(LATENCY_PARTS)] += seconds.reindex(latency["run"]).fillna(0.0).to_numpy()
    return latency


def truth_of(samples: list[Sample]) -> pd.DataFrame:
    """The ground truth of several samples in the competition's solution layout."""
    return pd.concat([s.picks for s in samples], ignore_index=True)


def score_rows(split: str, picks: pd.DataFrame, samples: list[Sample], project: Project) -> list[dict]:
    """Per-type rows and the weighted (competition) row of one split's thresholded picks."""
    result = score_picks(truth_of(samples), picks, project.particles)
    totals = result.per_type[["tp", "fp", "fn"]].sum().to_dict()
    weighted = {"particle_type": "weighted", "f4": result.weighted, **totals}
    return [{"split": split, **row} for row in [*result.per_type.to_dict("records"), weighted]]


def write_predictions(candidates, picks, samples, project, out: Path, label: str, session_id: str | None) -> None:
    """Per-run competition CSVs (and copick picks, given a session) of the thresholded picks; every scored candidate
    in one CSV."""
    for name, kept in picks.items():
        for sample in samples[name]:
            mine = kept[kept["experiment"] == sample.run]
            write_submission(mine, inside(out, f"{sample.run}.csv"))
            if session_id is not None:
                project.write_picks(sample.run, mine, label, session_id)
    write_csv(out / "candidates.csv", pd.concat(candidates.values(), ignore_index=True))
