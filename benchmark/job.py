"""One (architecture, seed) job: fit, predict, tune thresholds on val, score, measure.

Run as `python -m benchmark.job SPEC.json` in its own process, so that a crash, its memory peak and its CUDA
state stay its own; the result (or the error) goes to result.json next to the spec.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from benchmark.data import Project
from benchmark.environment import torch_state
from benchmark.errors import BenchError
from benchmark.files import write_csv, write_json
from benchmark.interface import Architecture, Sample, Tracker, check_predictions
from benchmark.postprocessing import apply_steps
from benchmark.registry import ARCHITECTURES
from benchmark.submission import write_submission
from benchmark.suite import ArchitectureSpec, DataSpec, Suite, load_suite
from metrics.fbeta import score_picks
from metrics.resources import MemoryReading, PeakMemory, synchronizer
from metrics.thresholds import apply_thresholds, tune_thresholds


@dataclass(frozen=True)
class JobSpec:
    """What the runner tells a job process."""

    key: str
    folder: str  # the job's working folder
    predictions: str  # where per-run CSVs go
    suite: str  # path of the suite file
    config: str  # copick config
    architecture: dict
    seed: int
    device: str
    session_id: str | None  # copick session for write-back; None to skip it

    def save(self, path: Path) -> None:
        """Write the spec as JSON."""
        write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> JobSpec:
        """Read a spec written by save."""
        return cls(**json.loads(path.read_text()))


def load_samples(project: Project, runs: list[str], data: DataSpec) -> list[Sample]:
    """Lazy tomograms of the runs with their ground truth (picks outside a volume are warned about)."""
    samples = []
    for run in runs:
        tomogram = project.tomogram(run, data.tomo_type, data.voxel_size)
        samples.append(Sample(tomogram, project.ground_truth(run, data.user_id, data.session_id, tomogram)))
    return samples


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels."""
    import torch
    from monai.utils import set_determinism

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    set_determinism(seed=seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def build(spec: ArchitectureSpec, project: Project, device: str, seed: int) -> Architecture:
    """Instantiate a registered architecture."""
    return ARCHITECTURES.get(spec.name)(spec.config, project.particles, device, seed)


def predict_picks(model: Architecture, spec: ArchitectureSpec, sample: Sample, project: Project) -> pd.DataFrame:
    """Checked, post-processed candidate picks of one tomogram, tagged with its run."""
    picks = check_predictions(model.predict(sample.tomogram), spec.name, sample.tomogram, project.particles)
    picks = apply_steps(picks, spec.postprocess, sample.tomogram, project.particles)
    return picks.assign(experiment=sample.run)


def run_job(job: JobSpec) -> dict:
    """Fit, predict val (also the warm-up) then test (timed), tune on val, score; return the result rows."""
    suite = load_suite(job.suite)
    spec = ArchitectureSpec(**job.architecture)
    project = Project(job.config)
    seed_everything(job.seed)
    splits = {name: load_samples(project, getattr(suite.split, name), suite.data) for name in ("train", "val", "test")}
    model = build(spec, project, job.device, job.seed)
    tracker = Tracker(suite.budget, synchronizer(job.device))
    fit_memory, train_seconds = _fit(model, splits, suite, tracker, job.key)
    model.save(Path(job.folder) / "model")
    candidates, seconds, infer_memory = _predict(model, spec, splits, project, job)
    thresholds = tune_thresholds(_truth(splits["val"]), candidates["val"], project.particles)
    scores = _score_and_write(candidates, thresholds, splits, project, spec, job)
    epochs = np.asarray(tracker.epoch_seconds)
    per_slice = [t / s.tomogram.shape[0] for t, s in zip(seconds, splits["test"], strict=True)]
    resources = {
        "device": job.device,
        "epochs": len(epochs),
        "epoch_seconds_median": float(np.median(epochs)) if len(epochs) else None,
        "epoch_seconds_iqr": _iqr(epochs),
        "infer_seconds_per_tomogram": float(np.median(seconds)),
        "infer_seconds_per_tomogram_iqr": _iqr(np.asarray(seconds)),
        "infer_seconds_per_slice": float(np.median(per_slice)),
        "peak_memory_gb": fit_memory.peak_gb,
        "memory_kind": fit_memory.kind,
        "infer_peak_memory_gb": infer_memory.peak_gb,
        "nvml_peak_memory_gb": _max_known(fit_memory.nvml_peak_gb, infer_memory.nvml_peak_gb),
        "train_seconds": train_seconds,
    }
    return {
        "status": "ok",
        "scores": scores,
        "resources": resources,
        "thresholds": thresholds.rename(columns={"f4": "val_f4"}).to_dict("records"),
        "epoch_logs": tracker.logs,
        "environment": torch_state(job.device),
    }


def _truth(samples: list[Sample]) -> pd.DataFrame:
    """The ground truth of several samples in the competition's solution layout."""
    return pd.concat([s.picks for s in samples], ignore_index=True)


def _fit(model: Architecture, splits: dict, suite: Suite, tracker: Tracker, key: str) -> tuple[MemoryReading, float]:
    """Fit under the memory probe with an epoch progress bar; returns the memory reading and the seconds."""
    with tqdm(total=suite.budget.epochs, desc=f"{key} fit", unit="epoch", leave=False) as bar:

        def show(epoch: int, logs: dict[str, float]) -> None:
            bar.set_postfix(logs, refresh=False)
            bar.update()

        tracker.progress = show
        sync = synchronizer(model.device)
        with PeakMemory(model.device) as memory:
            started = time.perf_counter()
            model.fit(splits["train"], splits["val"], suite.budget, tracker)
            sync()
            seconds = time.perf_counter() - started
    return memory.reading, seconds


def _predict(model: Architecture, spec: ArchitectureSpec, splits: dict, project: Project, job: JobSpec) -> tuple:
    """Candidates of the val runs (which double as the warm-up), then of the test runs, each one timed."""
    sync = synchronizer(job.device)
    candidates, seconds = {"val": [], "test": []}, []
    with tqdm(total=len(splits["val"]) + len(splits["test"]), desc=f"{job.key} predict", leave=False) as bar:
        for sample in splits["val"]:
            candidates["val"].append(predict_picks(model, spec, sample, project))
            bar.update()
        with PeakMemory(job.device) as memory:
            for sample in splits["test"]:
                sync()
                started = time.perf_counter()
                candidates["test"].append(predict_picks(model, spec, sample, project))
                sync()
                seconds.append(time.perf_counter() - started)
                bar.update()
    return {k: pd.concat(v, ignore_index=True) for k, v in candidates.items()}, seconds, memory.reading


def _score_and_write(candidates, thresholds, splits, project, spec, job) -> list[dict]:
    """Score the thresholded picks of val and test; write per-run CSVs, the candidates and the copick picks."""
    scores = []
    out = Path(job.predictions)
    for name in ("val", "test"):
        picks = apply_thresholds(candidates[name], thresholds)
        result = score_picks(_truth(splits[name]), picks, project.particles)
        totals = result.per_type[["tp", "fp", "fn"]].sum().to_dict()
        weighted = {"particle_type": "weighted", "f4": result.weighted, **totals}
        scores += [{"split": name, **row} for row in [*result.per_type.to_dict("records"), weighted]]
        for sample in splits[name]:
            mine = picks[picks["experiment"] == sample.run]
            write_submission(mine, out / f"{sample.run}.csv")
            if job.session_id is not None:
                project.write_picks(sample.run, mine, spec.name, job.session_id)
    write_csv(out / "candidates.csv", pd.concat(candidates.values(), ignore_index=True))
    return scores


def _iqr(values: np.ndarray) -> float | None:
    """Interquartile range, the spread reported next to a median."""
    return float(np.subtract(*np.percentile(values, [75, 25]))) if len(values) else None


def _max_known(*values: float | None) -> float | None:
    """The largest of the values that are known."""
    known = [v for v in values if v is not None]
    return max(known) if known else None


def main(argv: list[str]) -> int:
    """Process entry point: run the job and write result.json whatever happens."""
    spec_path = Path(argv[0])
    job = JobSpec.read(spec_path)
    try:
        result = run_job(job)
    except BenchError as err:
        result = {"status": "failed", "error": str(err)}
    except Exception as err:  # any plug-in failure is recorded, never fatal to the suite
        (spec_path.parent / "traceback.txt").write_text(traceback.format_exc())
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        result = {"status": "failed", "error": f"{type(err).__name__}: {first_line}".rstrip(": ")}
    write_json(spec_path.parent / "result.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
