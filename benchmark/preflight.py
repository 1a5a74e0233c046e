"""What `bench run` checks before a results folder exists: the device, the plug-ins and their options, every run's
ground truth and tomogram, and the names the run will derive file names from."""

from __future__ import annotations

import itertools
from pathlib import Path

from tqdm.auto import tqdm

from benchmark.calibration import read_calibration
from benchmark.data import Project
from benchmark.errors import BenchError
from benchmark.files import name_limit
from benchmark.interface import Architecture
from benchmark.job import load_samples
from benchmark.jobspec import reusable_entries
from benchmark.postprocessing import Pipeline
from benchmark.registry import ARCHITECTURES, POSTPROCESSING
from benchmark.results import job_id
from benchmark.run_options import RunOptions
from benchmark.suite import ArchitectureSpec, Suite


def check_device(device: str, here: bool = True) -> None:
    """Refuse an unknown device, or (`here`: the jobs run on this machine) one this machine does not have."""
    if device.startswith("cuda") and here:
        import torch

        if not torch.cuda.is_available():
            raise BenchError(f"device '{device}' requested but CUDA is not available here; use --device cpu")
    elif device != "cpu" and not device.startswith("cuda"):
        raise BenchError(f"unknown device '{device}'; use cpu or cuda")


def learned_entries(suite: Suite) -> list[ArchitectureSpec]:
    """The entries that train a model of their own for a number of epochs: neither classical nor ensembles."""
    return [
        spec
        for spec in suite.architectures
        if getattr(factory := ARCHITECTURES.get(spec.name), "kind", "other") != "classical"
        and not reusable_entries(factory, spec.config)
    ]


def check_calibrated(suite: Suite) -> None:
    """A suite that promises equal training time has a calibrated bound for every learned entry."""
    if suite.calibration is None:
        return
    calibrated = read_calibration(suite.calibration, suite.name)["entries"]
    missing = [spec.label for spec in learned_entries(suite) if spec.label not in calibrated]
    if missing:
        raise BenchError(
            f"suite {suite.name}: {', '.join(missing)} not in calibration {suite.calibration}, so not given "
            f"{suite.train_seconds:g} s of training like the others; run: bench calibrate --suite {suite.name}"
        )


def check_plugins(specs: list[ArchitectureSpec]) -> None:
    """Every architecture and post-processing step of the suite is registered and every config option known."""
    for spec in specs:
        factory = ARCHITECTURES.get(spec.name)
        if isinstance(factory, type) and issubclass(factory, Architecture):
            try:
                factory.check_config(spec.config)
            except BenchError as err:
                raise BenchError(f"suite entry '{spec.label}': {err}") from None
        for step in [*spec.postprocess, *(step for variant in spec.ablation for step in variant["steps"])]:
            POSTPROCESSING.get(step["step"])


UNWEIGHTED_FIX = "set metric.weights (and metric.hard) in the suite file, or metric in the copick object's metadata"


def preflight(project: Project, suite: Suite) -> None:
    """Before anything runs: a warning names the particle types without a metric weight, every post-processing step
    takes its parameters, and every run of the suite has ground truth and a tomogram whose every pyramid level reads
    clean (all chunks present, decodable and finite), checked chunk by chunk so no volume is held whole."""
    project.particles.warn_unweighted(UNWEIGHTED_FIX)
    for spec in suite.architectures:
        for what, steps in [
            ("postprocess", spec.postprocess),
            *((f"ablation variant '{v['name']}'", v["steps"]) for v in spec.ablation),
        ]:
            try:
                Pipeline.build(steps, project.particles)
            except BenchError as err:
                raise BenchError(f"suite entry '{spec.label}', {what}: {err}") from None
    runs = sorted({run for split in suite.folds.values() for run in split.runs()})
    for run in tqdm(runs, desc="checking tomograms", unit="run", leave=False):
        project.require_ground_truth(run, suite.data.user_id, suite.data.session_id)
        (sample,) = load_samples(project, [run], suite.data)
        for level in range(len(sample.tomogram.levels)):
            sample.tomogram.check(level)


def check_name_lengths(suite: Suite, specs: list[ArchitectureSpec], options: RunOptions, project: Project,
                       root: Path) -> None:  # fmt: skip
    """Refuse names (of runs, labels, ablation variants, particles) that would make a file or folder name longer than
    its file system takes, before anything is written: the names a run derives from them, in bytes, against the
    results root's file system and (for copick picks) the project's overlay's."""
    stamp = "00000000T000000Z"  # a results folder's time stamp: a session's width
    results, picks = name_limit(root), name_limit(project.overlay_folder() or root)
    runs = {run for split in suite.folds.values() for run in split.runs()}
    derived = [(f"{run}.csv", results, f"run name {run!r}", "rename the run in the copick project") for run in runs]
    for spec in specs:
        fix = "give the entry a shorter label"
        derived += [(variant["name"], results, f"ablation variant {variant['name']!r}", "give it a shorter name")
                    for variant in spec.ablation]  # fmt: skip
        for seed, fold in itertools.product(options.seeds, suite.folds):
            derived.append((job_id(spec.label, seed, fold), results, f"label {spec.label!r}", fix))
            derived += [
                (f"bench-{spec.label}_{stamp}-s{seed}-{fold}_{particle.name}.json", picks,
                 f"label {spec.label!r} with particle {particle.name!r}", f"{fix}, or pass --no-write-picks")
                for particle in project.particles if options.write_picks
            ]  # fmt: skip
    for name, limit, source, fix in derived:
        if len(name.encode()) > limit:
            raise BenchError(
                f"{source} makes the file name {name[:40]}... ({len(name.encode())} bytes), longer than its file "
                f"system takes ({limit}); {fix}"
            )
