"""One (architecture, seed) job: fit, predict, tune thresholds on val, score, measure.

Run as `python -m benchmark.job SPEC.json` in its own process, so that a crash, its memory peak and its CUDA
state stay its own; the result (or the error) goes to result.json next to the spec.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from scipy import stats
from submitit.core.utils import UncompletedJobError
from tqdm.auto import tqdm

from benchmark.data import Project
from benchmark.environment import job_environment
from benchmark.errors import BenchError
from benchmark.files import inside, write_csv, write_json
from benchmark.interface import Architecture, Budget, Sample, SavedModel, Tracker, check_predictions
from benchmark.launchers import TIME_LIMIT
from benchmark.postprocessing import Pipeline, StepData
from benchmark.registry import ARCHITECTURES
from benchmark.submission import write_submission
from benchmark.suite import ArchitectureSpec, Compute, DataSpec, Suite, load_suite
from metrics.fbeta import score_picks
from metrics.resources import MemoryReading, PeakMemory, synchronizer
from metrics.thresholds import apply_thresholds, tune_thresholds

PHASE = "phase.json"  # the job's phase and since when, read by the runner to enforce the budget
PR_SET_PDEATHSIG = 1  # prctl option: a signal for this process when its parent dies


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
    #: saved models of other entries this job reuses: index (into its reusable entries), label, folder, train_seconds
    reuse: list[dict] = field(default_factory=list)

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


def load_samples(project: Project, runs: list[str], data: DataSpec) -> list[Sample]:
    """Lazy tomograms of the runs with their ground truth (picks outside a volume are warned about)."""
    samples = []
    for run in runs:
        tomogram = project.tomogram(run, data.tomo_type, data.voxel_size)
        samples.append(Sample(tomogram, project.ground_truth(run, data.user_id, data.session_id, tomogram)))
    return samples


DEFAULT_COMPUTE = Compute()


def seed_everything(seed: int, compute: Compute = DEFAULT_COMPUTE) -> None:
    """Seed Python and NumPy, and torch (when a plug-in has loaded it) with the suite's kernel choices."""
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        import torch

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.manual_seed(seed)
        torch.backends.cudnn.deterministic = compute.deterministic
        torch.backends.cudnn.benchmark = compute.cudnn_benchmark
        torch.use_deterministic_algorithms(compute.deterministic, warn_only=True)


def reusable_entries(factory: object, config: dict) -> list[dict]:
    """The entries an architecture trains as parts of itself (none for a plain factory)."""
    return factory.reusable_entries(config) if isinstance(factory, type) and issubclass(factory, Architecture) else []


def job_budget(suite: Suite, spec: ArchitectureSpec, factory: object, reused: int) -> Budget:
    """The suite's budget for one entry. An entry that trains k > 0 of its parts itself (an ensemble's members not
    reused) has the cap k + 1 times, once per part and once for its own fitting; the epoch bound is unchanged."""
    budget = suite.budget_for(spec)
    trained_here = len(reusable_entries(factory, spec.config)) - reused
    return replace(budget, minutes=budget.minutes * (trained_here + 1)) if trained_here > 0 else budget


def build(spec: ArchitectureSpec, project: Project, device: str, seed: int) -> Architecture:
    """Instantiate a registered architecture."""
    return ARCHITECTURES.get(spec.name)(spec.config, project.particles, device, seed)


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


def mark_phase(folder: Path, phase: str) -> None:
    """Tell the runner which phase the job is in and since when (wall clock): it enforces each phase's limit."""
    write_json(folder / PHASE, {"phase": phase, "since": time.time(), "pid": os.getpid()})


def run_job(job: JobSpec) -> dict:
    """Fit on train; predict val (thresholds, warm-up); only then read the test runs, predict them timed, score."""
    folder = Path(job.folder)
    mark_phase(folder, "setup")
    suite = load_suite(job.suite)
    spec = ArchitectureSpec(**job.architecture)
    project = Project(job.config)
    factory = ARCHITECTURES.load(spec.name, job.module)
    split, budget = suite.folds[job.fold], job_budget(suite, spec, factory, len(job.reuse))
    seed_everything(job.seed, suite.compute)
    samples = {name: load_samples(project, getattr(split, name), suite.data) for name in ("train", "val")}
    tracker = Tracker(budget, synchronizer(job.device))
    with PeakMemory(job.device) as fit_memory:  # the baseline: imports and opened data, before the model is built
        model = factory(spec.config, project.particles, job.device, job.seed)
        model.workdir = folder / "work"
        model.precision = suite.compute.precision_on(job.device)
        model.saved_models = {
            r["index"]: SavedModel(r["label"], Path(r["folder"]), r["train_seconds"]) for r in job.reuse
        }
        mark_phase(folder, "fit")
        _fit(model, samples, tracker, job.key)
    mark_phase(folder, "predict")
    model.save(folder / "model")

    started = time.perf_counter()
    candidates, latency, infer_memory = _predict(model, spec, project, job, suite, samples)
    predict_seconds = time.perf_counter() - started
    mark_phase(folder, "score")
    started = time.perf_counter()
    base = post_process(spec.postprocess, candidates, samples, project)
    latency = _with_steps(latency, base.seconds)
    variants = {v["name"]: post_process(v["steps"], base.candidates, samples, project) for v in spec.ablation}
    postprocess_seconds = time.perf_counter() - started
    started = time.perf_counter()
    thresholds, picks, scores = _evaluate(base.candidates, samples, project)
    ablation = [_variant(spec, v, variants[v["name"]], base, samples, project, suite.evaluate) for v in spec.ablation]
    score_seconds = time.perf_counter() - started
    out = Path(job.predictions)
    _write_predictions(base.candidates, picks, samples, project, out, spec.label, job.session_id)
    for variant, row in zip(spec.ablation, ablation, strict=True):
        found = variants[variant["name"]].candidates
        _write_predictions(found, row.pop("picks"), samples, project, out / "ablation" / variant["name"], "", None)
    return {
        "status": "ok",
        "scores": scores,
        "resources": {
            "device": job.device,
            "compute_precision": model.precision,  # what it ran in: the suite's, or its own where it says so
            "parallel_jobs": job.parallel_jobs,
            **_training_columns(tracker, sum(r["train_seconds"] for r in job.reuse)),
            "members": _members(reusable_entries(factory, spec.config), job.reuse),
            **_memory_columns(fit_memory.reading, ""),
            **_memory_columns(infer_memory, "infer_"),
            **_latency_columns(latency),
            "timed_split": suite.evaluate,
            "repeats": job.repeats,
            "predict_seconds": predict_seconds,
            "postprocess_seconds": postprocess_seconds,
            "score_seconds": score_seconds,
        },
        "thresholds": thresholds.rename(columns={"f4": "val_f4"}).to_dict("records"),
        "variants": ablation,
        "postprocess_fitted": json.loads(json.dumps(base.fitted, default=_plain)),
        "latency": latency.to_dict("records"),
        "epoch_logs": tracker.logs,
        "environment": job_environment(job.device),
    }


def _evaluate(
    candidates: dict[str, pd.DataFrame], samples: dict[str, list[Sample]], project: Project
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], list[dict]]:
    """Thresholds tuned on val, the thresholded picks of every split, and their score rows."""
    thresholds = tune_thresholds(_truth(samples["val"]), candidates["val"], project.particles)
    picks = {name: apply_thresholds(found, thresholds) for name, found in candidates.items()}
    scores = [row for name in picks for row in _score(name, picks[name], samples[name], project)]
    return thresholds, picks, scores


def _variant(
    spec: ArchitectureSpec,
    variant: dict,
    processed: Processed,
    base: Processed,
    samples: dict[str, list[Sample]],
    project: Project,
    evaluated: str,
) -> dict:
    """One ablation variant's rows: scores and thresholds under the label `<label>+<name>`, its ablation row (steps,
    what they fitted, their extra seconds, and the evaluated split's candidates before and after), and its picks."""
    thresholds, picks, scores = _evaluate(processed.candidates, samples, project)
    runs = [sample.run for sample in samples[evaluated]]
    return {
        "label": f"{spec.label}+{variant['name']}",
        "scores": scores,
        "thresholds": thresholds.rename(columns={"f4": "val_f4"}).to_dict("records"),
        "picks": picks,
        "ablation": {
            "base": spec.label,
            "variant": variant["name"],
            "steps": json.dumps(variant["steps"]),
            "fitted": json.dumps(processed.fitted, default=_plain),
            "fit_seconds": processed.fit_seconds,
            "postprocess_seconds": float(np.median([processed.seconds[run] for run in runs])),
            "candidates_before": len(base.candidates[evaluated]),
            "candidates_after": len(processed.candidates[evaluated]),
        },
    }


def _plain(value: object) -> object:
    """A value JSON cannot write (numpy scalars and arrays a step's `fitted` may hold) as plain Python."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _with_steps(latency: pd.DataFrame, seconds: dict[str, float]) -> pd.DataFrame:
    """The latency rows with each run's post-processing seconds (timed once per tomogram) added to every repeat."""
    extra = latency["run"].map(seconds).fillna(0.0)
    return latency.assign(
        postprocess_seconds=latency["postprocess_seconds"] + extra, total_seconds=latency["total_seconds"] + extra
    )


def _truth(samples: list[Sample]) -> pd.DataFrame:
    """The ground truth of several samples in the competition's solution layout."""
    return pd.concat([s.picks for s in samples], ignore_index=True)


def _fit(model: Architecture, samples: dict[str, list[Sample]], tracker: Tracker, key: str) -> None:
    """Fit with an epoch progress bar; the budget's clock starts with the call."""
    with tqdm(total=tracker.budget.epochs, desc=f"{key} fit", unit="epoch", leave=False) as bar:

        def show(epoch: int, logs: dict[str, float]) -> None:
            bar.set_postfix(logs, refresh=False)
            bar.update()

        tracker.progress = show
        tracker.start()
        model.fit(samples["train"], samples["val"], tracker.budget, tracker)
        tracker.synchronize()
        tracker.train_seconds = tracker.elapsed()


def _predict(
    model: Architecture,
    spec: ArchitectureSpec,
    project: Project,
    job: JobSpec,
    suite: Suite,
    samples: dict[str, list[Sample]],
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, MemoryReading]:
    """Candidates of val and of the evaluated split, each evaluated tomogram timed `repeats` times after a warm-up.

    When the suite evaluates test, the val predictions are the warm-up and the test runs are read (and added to
    `samples`) only now, after fit has returned; a selection suite (evaluate: val) warms up on the first val run and
    never reads test.
    """
    sync = synchronizer(job.device)
    testing = suite.evaluate == "test"
    warm_up = samples["val"] if testing else samples["val"][:1]
    timed_count = (len(suite.folds[job.fold].test) if testing else len(samples["val"])) * job.repeats
    candidates, rows = {}, []
    bar = tqdm(total=len(warm_up) + timed_count, desc=f"{job.key} predict", leave=False)
    with bar, PeakMemory(job.device) as memory:  # the baseline: the fitted model, before any prediction
        warm = []
        for sample in warm_up:
            warm.append(predict_picks(model, spec, sample, project, sync)[0])
            bar.update()
        if testing:
            candidates["val"] = pd.concat(warm, ignore_index=True)
            samples["test"] = load_samples(project, suite.folds[job.fold].test, suite.data)
        found = []
        for sample in samples[suite.evaluate]:
            for repeat in range(job.repeats):
                picks, seconds = predict_picks(model, spec, sample, project, sync)
                found += [picks] if repeat == 0 else []
                rows.append({"run": sample.run, "repeat": repeat, "z_slices": sample.tomogram.shape[0], **seconds})
                bar.update()
        candidates[suite.evaluate] = pd.concat(found, ignore_index=True)
    return candidates, pd.DataFrame(rows), memory.reading


def _score(split: str, picks: pd.DataFrame, samples: list[Sample], project: Project) -> list[dict]:
    """Per-type rows and the weighted (competition) row of one split's thresholded picks."""
    result = score_picks(_truth(samples), picks, project.particles)
    totals = result.per_type[["tp", "fp", "fn"]].sum().to_dict()
    weighted = {"particle_type": "weighted", "f4": result.weighted, **totals}
    return [{"split": split, **row} for row in [*result.per_type.to_dict("records"), weighted]]


def _write_predictions(candidates, picks, samples, project, out: Path, label: str, session_id: str | None) -> None:
    """Per-run competition CSVs (and copick picks, given a session) of the thresholded picks; every scored candidate
    in one CSV."""
    for name, kept in picks.items():
        for sample in samples[name]:
            mine = kept[kept["experiment"] == sample.run]
            write_submission(mine, inside(out, f"{sample.run}.csv"))
            if session_id is not None:
                project.write_picks(sample.run, mine, label, session_id)
    write_csv(out / "candidates.csv", pd.concat(candidates.values(), ignore_index=True))


def _members(entries: list[dict], reuse: list[dict]) -> str | None:
    """Which parts an entry reused from other entries (with their training seconds) and which it trained itself."""
    reused = {r["index"]: r for r in reuse}
    notes = [
        f"{entry.get('label', entry['name'])}: reused {reused[i]['label']} ({reused[i]['train_seconds']:.0f} s)"
        if i in reused
        else f"{entry.get('label', entry['name'])}: trained here"
        for i, entry in enumerate(entries)
    ]
    return "; ".join(notes) or None


def _training_columns(tracker: Tracker, reused_seconds: float = 0.0) -> dict[str, object]:
    """The budget, what ended training, what an epoch is, and the epoch and training times; the training time
    includes the seconds other entries spent training the parts this one reused."""
    epochs = np.asarray(tracker.epoch_seconds)
    return {
        "minutes": tracker.budget.minutes,
        "epoch_bound": tracker.budget.epochs,
        "epochs": len(epochs),
        "stopped_by": tracker.stopped_by,
        "epoch_samples": tracker.epoch_samples,
        "epoch_unit": tracker.epoch_unit,
        "epoch_seconds_median": float(np.median(epochs)) if len(epochs) else None,
        "epoch_seconds_iqr": _iqr(epochs),
        "data_wait_share": _data_wait_share(tracker),
        "train_seconds": tracker.train_seconds + reused_seconds,
        "reused_train_seconds": reused_seconds,
    }


def _data_wait_share(tracker: Tracker) -> float | None:
    """The share of the timed epochs' seconds their steps waited for data; None when the plug-in did not time it."""
    timed = [(w, e) for w, e in zip(tracker.data_seconds, tracker.epoch_seconds, strict=False) if np.isfinite(w)]
    if not timed:
        return None
    waits, seconds = np.asarray(timed).T
    return float(waits.sum() / seconds.sum()) if seconds.sum() > 0 else None


def _memory_columns(reading: MemoryReading, prefix: str) -> dict[str, object]:
    """A memory reading as resources columns; the kind and NVML's status are the training block's."""
    columns = {
        f"{prefix}peak_memory_gb": reading.peak_gb,
        f"{prefix}process_peak_memory_gb": reading.process_peak_gb,
        f"{prefix}reserved_peak_memory_gb": reading.reserved_peak_gb,
        f"{prefix}nvml_peak_memory_gb": reading.nvml_peak_gb,
    }
    return columns if prefix else {**columns, "memory_kind": reading.kind, "nvml_status": reading.nvml_status}


def _latency_columns(latency: pd.DataFrame) -> dict[str, float | None]:
    """Medians over the timed predictions: read, model, post-processing and total seconds per tomogram, and model
    seconds per z-slice, with the spread (IQR) of the total and of the per-slice figure."""
    per_slice = (latency["model_seconds"] / latency["z_slices"]).to_numpy()
    return {
        "infer_read_seconds": float(latency["read_seconds"].median()),
        "infer_model_seconds": float(latency["model_seconds"].median()),
        "infer_postprocess_seconds": float(latency["postprocess_seconds"].median()),
        "infer_seconds_per_tomogram": float(latency["total_seconds"].median()),
        "infer_seconds_per_tomogram_iqr": _iqr(latency["total_seconds"].to_numpy()),
        "infer_seconds_per_slice": float(np.median(per_slice)),
        "infer_seconds_per_slice_iqr": _iqr(per_slice),
    }


def _iqr(values: np.ndarray) -> float | None:
    """Interquartile range, the spread reported next to a median (None for no values)."""
    return float(stats.iqr(values)) if len(values) else None


def main(argv: list[str]) -> int:
    """Process entry point: run the job and write result.json whatever happens."""
    spec_path = Path(argv[0])
    job = JobSpec.read(spec_path)
    _die_with(job.runner_pid)
    with warnings.catch_warnings(record=True) as caught:  # the runner shows them, one line each, with the job's key
        result = _result(job, spec_path.parent)
    result["warnings"] = list(dict.fromkeys(str(warning.message) for warning in caught))
    write_json(spec_path.parent / "result.json", result)
    return 0


def _result(job: JobSpec, folder: Path) -> dict:
    """The job's result, its failure, or any plug-in's exception recorded (never fatal to the suite)."""
    try:
        result = run_job(job)
    except BenchError as err:
        return {"status": "failed", "error": str(err)}
    except UncompletedJobError:  # submitit's warning signal, shortly before SLURM's time limit
        return {"status": "failed", "error": TIME_LIMIT.format(job_id=os.environ.get("SLURM_JOB_ID", "?"))}
    except Exception as err:
        (folder / "traceback.txt").write_text(traceback.format_exc())
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return {"status": "failed", "error": f"{type(err).__name__}: {first_line}".rstrip(": ")}
    resources = result["resources"]
    seconds = time.time() - psutil.Process().create_time()  # the whole process: start, imports, work, writes
    fit = resources["train_seconds"] - resources["reused_train_seconds"]  # this process's own fit
    work = fit + resources["predict_seconds"] + resources["postprocess_seconds"] + resources["score_seconds"]
    result["resources"] = {**resources, "job_seconds": seconds, "overhead_seconds": seconds - work}
    return result


def _die_with(runner: int) -> None:
    """Have the kernel signal this job when the runner `bench run` process dies (Linux); the job then kills its
    whole process group (it leads one), its plug-in's children too, so nothing outlives the runner."""
    if not runner or not sys.platform.startswith("linux"):
        return
    import ctypes

    signal.signal(signal.SIGTERM, lambda signum, frame: os.killpg(0, signal.SIGKILL))
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != runner:  # the runner died before the request took effect
        os.killpg(0, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
