"""`bench predict`: pick the runs of any copick project with a model a benchmark job saved, as that job picked its
test runs: the same model, its post-processing as fitted, and its val-tuned thresholds (or every candidate)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from copick.util.escape import sanitize_name
from tqdm.auto import tqdm

from benchmark.conventions import VOXEL_TOLERANCE
from benchmark.data import Project, Tomogram
from benchmark.errors import BenchError
from benchmark.evaluation import predict_picks
from benchmark.files import write_csv
from benchmark.interface import Architecture, Sample
from benchmark.job import seeded_model
from benchmark.jobspec import MODEL, JobSpec
from benchmark.particles import ParticleTable
from benchmark.postprocessing import Pipeline
from benchmark.preflight import check_device
from benchmark.registry import ARCHITECTURES
from benchmark.results import ResultsStore, job_id
from benchmark.submission import SOLUTION_COLUMNS, write_submission
from benchmark.suite import ArchitectureSpec, Compute, load_suite
from metrics.resources import synchronizer
from metrics.thresholds import apply_thresholds

Echo = Callable[[str], None]


@dataclass(frozen=True)
class PredictOptions:
    """What `bench predict` was asked for (None: the default)."""

    results: Path  # a results folder of `bench run`
    label: str  # the suite entry's label
    config: str  # the copick project to pick
    runs: list[str] | None = None  # None: every run of the project
    seed: int | None = None  # default: the lowest seed with a saved model
    fold: str | None = None  # default: the only fold
    user_id: str | None = None  # default: bench-<label>
    session_id: str | None = None  # default: predict-<UTC time>
    overwrite: bool = False  # replace picks already stored under (user_id, session_id)
    keep_all: bool = False  # every candidate with its score, no thresholds
    device: str = "cpu"
    csv: Path | None = None  # default: picks-<label>-seed<N>.csv here


@dataclass(frozen=True)
class SavedJob:
    """A finished job whose model was kept: its spec, model folder, the run's manifest, what its post-processing
    steps fitted, and its val-tuned thresholds."""

    spec: JobSpec
    model: Path
    manifest: dict
    fitted: list[dict]
    thresholds: pd.DataFrame

    @property
    def architecture(self) -> ArchitectureSpec:
        """The suite entry the job ran."""
        return ArchitectureSpec(**self.spec.architecture)


def predict(options: PredictOptions, echo: Echo) -> pd.DataFrame:
    """Check everything, then pick every run (a progress bar over runs, one line per run), write the copick picks
    and the CSV, and return the picks."""
    saved, options, project, tomograms = checked(options)
    model, pipeline = picker(saved, project, options.device)
    found = []
    with tqdm(total=len(tomograms), desc=f"predict {options.label}", unit="run") as bar:
        for run, tomogram in tomograms.items():
            picks = pick_run(model, pipeline, saved, project, tomogram, options)
            project.write_picks(run, picks, options.label, options.session_id, options.user_id)
            with tqdm.external_write_mode():
                echo(_summary(run, picks, project.particles))
            found.append(picks)
            bar.update()
    picks = pd.concat(found, ignore_index=True)
    write_picks_csv(picks, options.csv, options.keep_all)
    echo(f"copick picks: user {options.user_id}, session {options.session_id} in {options.config}")
    echo(f"CSV: {options.csv}")
    return picks


def checked(options: PredictOptions) -> tuple[SavedJob, PredictOptions, Project, dict[str, Tomogram]]:
    """The saved job, the options with their defaults, the project with the model's particle table and the runs'
    tomograms, after every check that can fail before a model runs."""
    store = ResultsStore.open(options.results)
    saved = saved_job(store, options.label, options.seed, options.fold)
    options = _with_defaults(options, saved)
    if saved.thresholds.empty and not options.keep_all:
        raise BenchError(f"{store.folder}/thresholds.csv holds no thresholds of '{options.label}' seed "
                         f"{options.seed}; pass --keep-all to keep every candidate with its score")  # fmt: skip
    project = Project(options.config)
    project.particles = trained_particles(project, saved.manifest, options.label)
    runs = project.run_names if options.runs is None else list(dict.fromkeys(options.runs))
    tomograms = {run: input_tomogram(project, run, saved.manifest["data"], options.label) for run in runs}
    for run in runs:
        check_free(project, run, options.user_id, options.session_id, options.overwrite)
    if not options.csv.resolve().parent.is_dir():
        raise BenchError(f"--csv {options.csv}: folder {options.csv.parent} does not exist; create it or pass another")
    check_device(options.device)
    return saved, options, project, tomograms


def saved_job(store: ResultsStore, label: str, seed: int | None, fold: str | None) -> SavedJob:
    """The job of (label, seed, fold) with its saved model, fitted steps and thresholds; refused in one line when
    the entry, fold, seed or model is not there."""
    manifest = store.manifest
    entries = list(manifest["entries"])
    if label not in entries:
        close = difflib.get_close_matches(label, entries, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise BenchError(f"{store.folder} has no entry '{label}'{hint}; entries: {', '.join(entries)}")
    fold = _fold(store, manifest, fold)
    missing = {s: _no_model(store, manifest, job_id(label, s, fold)) for s in sorted(manifest["seeds"])}
    usable = [s for s, why in missing.items() if why is None]
    if seed is None and not usable:
        raise BenchError(missing[min(missing)])
    seed = usable[0] if seed is None else seed
    why = missing.get(seed, f"'{label}' has no job of seed {seed} in {store.folder}")
    if why is not None:
        raise BenchError(f"{why}; seeds with a saved model: {', '.join(map(str, usable)) or 'none'}")
    key = job_id(label, seed, fold)
    thresholds = store.table("thresholds")
    mine = thresholds[(thresholds["architecture"] == label) & (thresholds["seed"] == seed)]
    mine = mine[mine["fold"].astype(str) == fold]
    spec = JobSpec.read(store.job_dir(key) / "job.json")
    fitted = manifest["jobs"][key].get("postprocess_fitted") or []
    if len(fitted) != len(spec.architecture["postprocess"]):
        raise BenchError(f"{store.folder}/manifest.json does not hold what the post-processing of job {key} fitted")
    return SavedJob(spec, store.job_dir(key) / MODEL, manifest, fitted, mine[["particle_type", "threshold"]])


def _fold(store: ResultsStore, manifest: dict, fold: str | None) -> str:
    """The fold asked for, or the only one."""
    folds = list(manifest["folds"])
    if fold is None and len(folds) > 1:
        raise BenchError(f"{store.folder} has folds {', '.join(folds)}; pass --fold with one of them")
    if fold is not None and fold not in folds:
        raise BenchError(f"{store.folder} has no fold '{fold}'; folds: {', '.join(folds)}")
    return folds[0] if fold is None else fold


def _no_model(store: ResultsStore, manifest: dict, key: str) -> str | None:
    """Why job `key` has no saved model to load (None: it has one)."""
    job = manifest["jobs"].get(key)
    if job is None:
        return f"{store.folder} has no job {key}"
    if job["status"] != "ok":
        return f"job {key} did not finish (status {job['status']}: {job.get('error')})"
    if (store.job_dir(key) / MODEL).is_dir():
        return None
    if (manifest.get("options") or {}).get("keep_models") is False:
        return (
            f"job {key} kept no model: {store.folder} was run with bench run --no-keep-models; run the suite again "
            "without it to pick with its models"
        )
    return f"job {key} has no saved model ({store.job_dir(key) / MODEL} is missing)"


def _with_defaults(options: PredictOptions, saved: SavedJob) -> PredictOptions:
    """The options with their defaults filled in and the copick names checked."""
    label, seed = options.label, saved.spec.seed
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    options = replace(
        options,
        seed=seed,
        fold=saved.spec.fold,
        user_id=options.user_id or f"bench-{label}",
        session_id=options.session_id or f"predict-{stamp}",
        csv=options.csv or Path(f"picks-{label}-seed{seed}.csv"),
    )
    if options.session_id == "0":
        raise BenchError("--session-id 0 is reserved for ground truth by copick tools; pass another session id")
    for flag, name in (("--user-id", options.user_id), ("--session-id", options.session_id)):
        allowed = sanitize_name(name, suppress_warnings=True)
        if allowed != name:
            raise BenchError(f"{flag} '{name}' holds characters copick does not allow in names ('_', spaces, "
                             f"'/', ...); use e.g. '{allowed}'")  # fmt: skip
    return options


def trained_particles(project: Project, manifest: dict, label: str) -> ParticleTable:
    """The project's particle table with the radii, weights and hard types the model was trained with; a project
    with other particle types, or the same ones in another copick label order (a model's classes), is refused."""
    trained = {p["name"]: p for p in manifest["particles"]}
    names = project.particles.names
    if set(names) != set(trained):
        missing = [name for name in trained if name not in names]
        extra = [name for name in names if name not in trained]
        raise BenchError(
            f"copick project '{project.config}' has other particle types than the model of '{label}': missing "
            f"{', '.join(missing) or 'none'}; extra {', '.join(extra) or 'none'} (the model picks "
            f"{', '.join(trained)})"
        )
    if names != list(trained):
        raise BenchError(
            f"copick project '{project.config}' orders its particle types by copick label as {', '.join(names)}, "
            f"the model of '{label}' as {', '.join(trained)}; give them the labels the model was trained with"
        )
    return ParticleTable(
        replace(p, radius=trained[p.name]["radius"], weight=trained[p.name]["weight"], hard=trained[p.name]["hard"])
        for p in project.particles
    )


def input_tomogram(project: Project, run: str, data: dict, label: str) -> Tomogram:
    """The run's tomogram of the type and voxel size the model was trained on; refused in one line naming what the
    run has instead."""
    voxel_size, tomo_type = data["voxel_size"], data["tomo_type"]
    spacings = project.run(run).voxel_spacings
    near = [vs for vs in spacings if abs(vs.voxel_size - voxel_size) <= VOXEL_TOLERANCE * voxel_size]
    if not near:
        have = ", ".join(f"{vs.voxel_size:g}" for vs in spacings) or "none"
        raise BenchError(
            f"run '{run}' has no tomograms at {voxel_size:g} Å (within {VOXEL_TOLERANCE:.0%}), the voxel size the "
            f"model of '{label}' was trained at; its voxel sizes: {have} Å"
        )
    types = sorted({t.tomo_type for vs in near for t in vs.tomograms})
    if tomo_type not in types:
        raise BenchError(
            f"run '{run}' has no '{tomo_type}' tomogram, the type the model of '{label}' was trained on; its "
            f"tomograms at {voxel_size:g} Å: {', '.join(types) or 'none'}"
        )
    return project.tomogram(run, tomo_type, voxel_size)


def check_free(project: Project, run: str, user_id: str, session_id: str, overwrite: bool) -> None:
    """Refuse to write over picks already stored for (user, session) in a run, unless told to."""
    if not overwrite and project.run(run).get_picks(user_id=user_id, session_id=session_id):
        raise BenchError(
            f"run '{run}' already has picks of user {user_id}, session {session_id}; pass --overwrite to replace "
            "them, or another --session-id"
        )


def picker(saved: SavedJob, project: Project, device: str) -> tuple[Architecture, Pipeline]:
    """The job's model, built as the job built it (seeded, with the kernel choices the run recorded, in its precision
    on the device it ran on, else the suite's rule for `device`) and loaded from its folder, and its post-processing
    steps with what they fitted."""
    spec = saved.architecture
    ARCHITECTURES.load(spec.name, saved.spec.module)  # imports only the plug-in that registers it
    suite_file = saved.spec.suite if Path(saved.spec.suite).is_file() else saved.manifest["suite"]["name"]
    suite = load_suite(suite_file, calibrated=False)  # the file may have changed since: the run's record decides
    ran = saved.manifest.get("compute") or asdict(suite.compute)
    same_kind = saved.manifest["device"].startswith("cuda") == device.startswith("cuda")
    compute = Compute(ran["precision"] if same_kind else suite.compute.precision, ran["deterministic"],
                      ran["cudnn_benchmark"])  # fmt: skip
    model = seeded_model(spec, replace(suite, compute=compute), project, device, saved.spec.seed)
    model.load(saved.model)
    pipeline = Pipeline.build(spec.postprocess, project.particles)
    for step, fitted in zip(pipeline.steps, saved.fitted, strict=True):
        step.restore(fitted)
    return model, pipeline


def pick_run(
    model: Architecture,
    pipeline: Pipeline,
    saved: SavedJob,
    project: Project,
    tomogram: Tomogram,
    options: PredictOptions,
) -> pd.DataFrame:
    """One run's picks: the model's checked candidates after the job's post-processing, thresholded unless
    `keep_all`."""
    sample = Sample(tomogram, pd.DataFrame(columns=SOLUTION_COLUMNS))
    candidates, _ = predict_picks(model, saved.architecture, sample, project, synchronizer(options.device))
    candidates = pipeline(candidates, tomogram).assign(experiment=tomogram.run)
    return candidates if options.keep_all else apply_thresholds(candidates, saved.thresholds)


def write_picks_csv(picks: pd.DataFrame, path: Path, with_score: bool) -> None:
    """The picks as a competition CSV, with the score column after the competition's when asked."""
    if not with_score:
        write_submission(picks, path)
        return
    table = picks[[*SOLUTION_COLUMNS, "score"]].reset_index(drop=True)
    write_csv(path, table.rename_axis("id").reset_index())


def _summary(run: str, picks: pd.DataFrame, particles: ParticleTable) -> str:
    """One line: the run's picks per particle type."""
    counts = picks["particle_type"].value_counts()
    return f"{run}: {len(picks)} picks (" + ", ".join(f"{p} {counts.get(p, 0)}" for p in particles.names) + ")"
