"""One (architecture, seed) job: fit, predict, tune thresholds on val, score, measure.

Run as `python -m benchmark.job SPEC.json` in its own process, so that a crash, its memory peak and its CUDA
state stay its own; the result (or the error) goes to result.json next to the spec.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from submitit.core.utils import UncompletedJobError
from tqdm.auto import tqdm

from benchmark.data import Project
from benchmark.endings import TIME_LIMIT, UNWRITTEN
from benchmark.environment import job_environment, use_deterministic_kernels
from benchmark.errors import BenchError
from benchmark.evaluation import (
    evaluate,
    plain,
    post_process,
    predict_picks,
    variant_rows,
    with_reused,
    with_steps,
    write_predictions,
)
from benchmark.files import write_json, write_text
from benchmark.interface import Architecture, Sample, SavedModel, Tracker
from benchmark.jobspec import MODEL, RESULT, JobSpec, job_budget, mark_phase, reusable_entries
from benchmark.learning_curve import LearningCurve, curve_epochs, predicts_mid_fit
from benchmark.processes import die_with, process_age, stop_descendants
from benchmark.registry import ARCHITECTURES
from benchmark.resource_columns import latency_columns, members_note, memory_columns, training_columns
from benchmark.suite import ArchitectureSpec, Compute, DataSpec, Suite, load_suite
from benchmark.views import store_view
from metrics.resources import MemoryReading, PeakMemory, synchronizer


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
        use_deterministic_kernels(compute.deterministic, warn_only=True)


def build(spec: ArchitectureSpec, project: Project, device: str, seed: int) -> Architecture:
    """Instantiate a registered architecture."""
    return ARCHITECTURES.get(spec.name)(spec.config, project.particles, device, seed)


def seeded_model(spec: ArchitectureSpec, suite: Suite, project: Project, device: str, seed: int) -> Architecture:
    """A fit outside a job (a calibration, a tuning trial) starts as a job's does: seeded, built, in the suite's
    precision."""
    seed_everything(seed, suite.compute)
    model = build(spec, project, device, seed)
    model.precision = suite.compute.precision_on(device)
    return model


def run_job(job: JobSpec) -> dict:
    """Fit on train; predict val (thresholds, warm-up); only then read the test runs, predict them timed, score."""
    folder = Path(job.folder)
    mark_phase(folder, "setup")
    suite = load_suite(job.suite)
    spec = ArchitectureSpec(**job.architecture)
    project = Project(job.config, suite.metric)  # the suite's metric weights and hard types
    started = time.perf_counter()
    for name, module in job.part_modules.items():
        ARCHITECTURES.load(name, module)
    factory = ARCHITECTURES.load(spec.name, job.module)
    plugin_import_seconds = time.perf_counter() - started
    split, budget = suite.folds[job.fold], job_budget(suite, spec, factory, len(job.reuse))
    seed_everything(job.seed, suite.compute)
    samples = {name: load_samples(project, getattr(split, name), suite.data) for name in ("train", "val")}
    tracker = Tracker(budget, synchronizer(job.device))
    with PeakMemory(job.device) as fit_memory:  # the baseline: imports and opened data, before the model is built
        model = factory(spec.config, project.particles, job.device, job.seed)
        model.workdir = folder / "work"
        model.precision = suite.compute.precision_on(job.device)
        model.saved_models = {
            r["index"]: SavedModel(
                r["label"],
                Path(r["folder"]),
                r["train_seconds"],
                Path(r["predictions"]) if r.get("predictions") else None,
            )
            for r in job.reuse
        }
        curve = LearningCurve(model, spec, project, samples, tracker, tracker.synchronize)
        if predicts_mid_fit(model):
            tracker.curve_epochs = curve_epochs(suite.learning_curve, budget.epochs)
            tracker.at_curve_point = curve
        mark_phase(folder, "fit")
        fit_timed(model, samples, tracker, job.key)
    mark_phase(folder, "predict")
    model.save(folder / MODEL)

    started = time.perf_counter()
    candidates, latency, infer_memory = _predict(model, spec, project, job, suite, samples)
    predict_seconds = time.perf_counter() - started
    mark_phase(folder, "score")
    started = time.perf_counter()
    base = post_process(spec.postprocess, candidates, samples, project)
    served = {index: saved.served for index, saved in model.saved_models.items()}  # parts' stored candidates taken
    latency = with_reused(with_steps(latency, base.seconds), job.reuse, served)
    variants = {v["name"]: post_process(v["steps"], base.candidates, samples, project) for v in spec.ablation}
    postprocess_seconds = time.perf_counter() - started
    started = time.perf_counter()
    evaluated = evaluate(base.candidates, samples, project, suite.evaluate)
    ablation = [
        variant_rows(spec, variant, variants[variant["name"]], base, samples, project, suite.evaluate)
        for variant in spec.ablation
    ]
    score_seconds = time.perf_counter() - started
    out = Path(job.predictions)
    write_predictions(base.candidates, evaluated.picks, samples, project, out, spec.label, job.session_id)
    for variant, row in zip(spec.ablation, ablation, strict=True):
        found = variants[variant["name"]].candidates
        write_predictions(found, row.pop("picks"), samples, project, out / "ablation" / variant["name"], "", None)
    for sample in samples[suite.evaluate]:  # the report's pictures of every pick and miss
        store_view(sample.tomogram, folder.parents[1])
    return {
        "status": "ok",
        **evaluated.rows(),
        "resources": {
            "device": job.device,
            "compute_precision": model.precision,  # what it ran in: the suite's, or its own where it says so
            "parallel_jobs": job.parallel_jobs,
            **training_columns(tracker, sum(r["train_seconds"] for r in job.reuse)),
            "members": members_note(reusable_entries(factory, spec.config), job.reuse, served),
            "reused": ";".join(r["label"] for r in job.reuse) or None,  # the entries whose fitted models it reused
            **memory_columns(fit_memory.reading, ""),
            **memory_columns(infer_memory, "infer_"),
            **latency_columns(latency),
            "timed_split": suite.evaluate,
            "repeats": job.repeats,
            "predict_seconds": predict_seconds,
            "postprocess_seconds": postprocess_seconds,
            "score_seconds": score_seconds,
            "curve_seconds": tracker.curve_seconds if tracker.curve_epochs else None,
            "import_seconds": plugin_import_seconds,  # the process's start and the harness's imports added in main
        },
        "curves": curve.finish(evaluated.scores),
        "variants": ablation,
        "postprocess_fitted": json.loads(json.dumps(base.fitted, default=plain)),
        "latency": latency.to_dict("records"),
        "epoch_logs": tracker.logs,
        "environment": job_environment(job.device),
    }


def fit_timed(model: Architecture, samples: dict[str, list[Sample]], tracker: Tracker, key: str) -> None:
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


def main(argv: list[str]) -> int:
    """Process entry point: run the job and write result.json whatever happens, then stop whatever the plug-in
    left running. A result that cannot be written (a full disk) is one line on stderr and exit status UNWRITTEN."""
    entered = process_age()  # the interpreter has started and imported the harness: what a job cannot work without
    spec_path = Path(argv[0])
    job = JobSpec.read(spec_path)
    die_with(job.runner_pid)
    try:
        with warnings.catch_warnings(record=True) as caught:  # the runner shows them, one line each, with the key
            result = _result(job, spec_path.parent, entered)
        result["warnings"] = list(dict.fromkeys(str(warning.message) for warning in caught))
        write_json(spec_path.parent / RESULT, result)
    except BenchError as err:
        print(f"error: {job.key}: {err}", file=sys.stderr)
        return UNWRITTEN
    finally:
        stop_descendants()
    return 0


def _result(job: JobSpec, folder: Path, entered: float) -> dict:
    """The job's result, its failure, or any plug-in's exception recorded (never fatal to the suite): a plug-in
    that raises KeyboardInterrupt or SystemExit fails with its message, as one that raises anything else."""
    try:
        result = run_job(job)
    except BenchError as err:
        return {"status": "failed", "error": str(err)}
    except UncompletedJobError:  # submitit's warning signal, shortly before SLURM's time limit
        return {"status": "failed", "error": TIME_LIMIT.format(job_id=os.environ.get("SLURM_JOB_ID", "?"))}
    except (Exception, KeyboardInterrupt, SystemExit) as err:
        write_text(folder / "traceback.txt", traceback.format_exc())
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return {"status": "failed", "error": f"{type(err).__name__}: {first_line}".rstrip(": ")}
    resources = result["resources"]
    seconds = process_age()  # the whole process: start, imports, work, writes
    resources["import_seconds"] += entered
    fit = resources["train_seconds"] - resources["reused_train_seconds"]  # this process's own fit
    work = fit + resources["predict_seconds"] + resources["postprocess_seconds"] + resources["score_seconds"]
    work += resources["curve_seconds"] or 0.0
    result["resources"] = {**resources, "job_seconds": seconds, "overhead_seconds": seconds - work}
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
