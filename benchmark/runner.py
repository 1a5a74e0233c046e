"""`bench run`: every (architecture, seed) of a suite under identical conditions, one process per job."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tqdm.auto import tqdm

from benchmark.calibration import calibration_record
from benchmark.data import BenchWarning, Project
from benchmark.environment import environment
from benchmark.errors import BenchError, Interrupted
from benchmark.interface import Budget
from benchmark.jobspec import MODEL, PHASE, RESULT, JobSpec, job_budget, read_phase, reusable_entries
from benchmark.launchers import Launcher, Running, Slot, make_launcher, still_running
from benchmark.particles import ParticleTable
from benchmark.preflight import check_calibrated, check_device, check_name_lengths, check_plugins, preflight
from benchmark.processes import Orphanage
from benchmark.reference import reference_line
from benchmark.registry import ARCHITECTURES
from benchmark.results import EVERY_JOB, LATENCY_PARTS, RESULTS_ROOT, VARIANT_TABLES, ResultsStore, job_id, utc_now
from benchmark.run_options import RunOptions, kept_options
from benchmark.suite import SUITES_DIR, ArchitectureSpec, Launch, Suite

Echo = Callable[[str], None]
POLL_SECONDS = 0.5  # how often the runner looks at its running jobs


def synthetic_cache() -> Path:
    """Where embedded synthetic datasets are generated on first use ($CRYOET_BENCH_CACHE overrides)."""
    return Path(os.environ.get("CRYOET_BENCH_CACHE", Path.home() / ".cache" / "cryoet-bench")) / "synthetic"


def synthetic_folder(suite: Suite) -> Path:
    """Where the suite's synthetic preset is (or will be) generated."""
    from benchmark.synth.project import VERSION

    return synthetic_cache() / f"{suite.data.synthetic}-seed{suite.data.synthetic_seed}-v{VERSION}"


def resolve_data(suite: Suite, config: str | None, echo: Echo) -> dict:
    """The data source of a run: the user's copick config, or the suite's synthetic preset (generated once)."""
    if config is not None:
        path = Path(config).resolve()
        Project(path)  # fail now, with one line, if the config is unusable
        return {"config": str(path), "synthetic": False}
    from benchmark.synth import generate

    preset, seed = suite.data.synthetic, suite.data.synthetic_seed
    folder = synthetic_folder(suite)
    if (folder / "copick.json").is_file():
        echo(f"data: the embedded synthetic '{preset}' dataset (seed {seed}), cached in {folder}")
    else:
        echo(f"data: generating the embedded synthetic '{preset}' dataset (seed {seed}) into {folder} (first use)")
        generate(folder, preset=preset, seed=seed, overwrite=True)
    return {"config": str(folder / "copick.json"), "synthetic": True, "preset": preset, "seed": seed}


def run_suite(
    suite: Suite,
    given: RunOptions,
    resume: str | None = None,
    root: Path = RESULTS_ROOT,
    command: str = "",
    echo: Echo = print,
    launcher: str | None = None,
    jobs: int | None = None,
    launch_options: dict | None = None,
) -> tuple[ResultsStore, dict[str, str]]:
    """Run the suite's jobs not yet done, up to `jobs` at once through `launcher` (default: one at a time in child
    processes; on resume, as the last run did), with the suite's launcher settings updated by `launch_options`;
    returns the results store and the failed jobs with their errors.

    Everything that can be checked is checked before a results folder is created (or, on resume, before a job
    runs); the folder is locked for the whole run. A resume runs with the options of the run it completes.
    """
    with contextlib.ExitStack() as held:
        manifest = None
        if resume is not None:
            store = ResultsStore.latest(suite.name, root) if resume == "latest" else ResultsStore.open(Path(resume))
            held.enter_context(store.lock())
            manifest = _resumable(store, suite)
            options = kept_options(store, manifest, given)
        else:
            config = None if given.data is None else str(Path(given.data).resolve())
            options = replace(
                given,
                data=config,
                device=given.device or suite.device,
                seeds=given.seeds or suite.seeds,
                write_picks=given.write_picks is not False,
                keep_models=given.keep_models is not False,
            )
        specs = suite.select(options.arch)
        check_plugins(specs)
        check_calibrated(suite)
        launcher, jobs, settings = _launcher(suite, manifest, launcher, jobs, dict(launch_options or {}), echo)
        if manifest is None:
            check_device(options.device, here=launcher != "slurm")
        launch = make_launcher(launcher, jobs, options.device, settings)
        data = manifest["data"] if manifest else resolve_data(suite, options.data, echo)
        project = Project(data["config"], suite.metric)
        check_name_lengths(suite, specs, options, project, root)
        preflight(project, suite)
        if manifest is None:
            manifest = _new_manifest(suite, data, options, command, project.particles)
            echo(reference_line(suite, manifest["environment"]))
            store = ResultsStore.create(suite.name, manifest["environment"]["git"]["short"], root)
            held.enter_context(store.lock())
        manifest.pop("finished", None)  # running again: reports take the previous finished run meanwhile
        manifest["launches"] = [*manifest.get("launches", []), {**launch.record(), "started": utc_now()}]
        ordered = sorted(specs, key=lambda spec: bool(reusable_entries(ARCHITECTURES.get(spec.name), spec.config)))
        jobs = [(spec, seed, fold) for seed in options.seeds for fold in suite.folds for spec in ordered]  # parts 1st
        for spec, seed, fold in jobs:
            manifest["jobs"].setdefault(
                job_id(spec.label, seed, fold),
                {"architecture": spec.label, "name": spec.name, "seed": seed, "fold": fold, "status": "pending"},
            )
        store.write_manifest(manifest)
        echo(f"results: {store.folder}")
        orphans = held.enter_context(Orphanage(here=launch.runs_here))
        hint = f"bench run --suite {shlex.quote(given.suite)} --resume {shlex.quote(str(store.folder))}"
        failures = _run_jobs(store, suite, data, jobs, options, launch, orphans, hint, echo)
        if not options.keep_models:  # only now: an ensemble job loads its members' saved models during the run
            _drop_models(store)
        store.write_manifest({**store.manifest, "finished": utc_now()})
    return store, failures


def _drop_models(store: ResultsStore) -> None:
    """Delete every job's saved model (`bench run --no-keep-models`)."""
    for folder in (store.folder / "jobs").glob(f"*/{MODEL}"):
        shutil.rmtree(folder)


def _launcher(
    suite: Suite, manifest: dict | None, name: str | None, jobs: int | None, options: dict, echo: Echo
) -> tuple[str, int, Launch]:
    """The launcher, jobs at once and launcher settings of a run: as given, else (on resume) as the last run of the
    folder had them, else one job at a time in child processes with the suite's settings. They say where jobs run,
    not what they compute, so a resume may change them: it says so."""
    last = ((manifest or {}).get("launches") or [{}])[-1]
    before = (last.get("launcher", "process"), last.get("jobs", 1))
    name, jobs = name or before[0], jobs or before[1]
    if manifest and ((name, jobs) != before or options):
        changed = f" and SLURM settings {options}" if options else ""
        echo(
            f"note: this resume runs with --launcher {name} --jobs {jobs}{changed}; the folder's last run had "
            f"--launcher {before[0]} --jobs {before[1]}"
        )
    settings = Launch(**last["slurm"]) if name == "slurm" and last.get("launcher") == "slurm" else suite.launch
    sbatch = {**settings.sbatch, **options.pop("sbatch", {})}
    return name, jobs, replace(settings, sbatch=sbatch, **options)


@dataclass
class _Active:
    """A job the runner has started and watches."""

    job: JobSpec
    budget: Budget
    slot: Slot
    running: Running
    ended_at: float | None = None  # when it was first seen over without a result
    launched: float = field(default_factory=time.monotonic)  # when it was launched, or last seen queued


def _run_jobs(
    store: ResultsStore,
    suite: Suite,
    data: dict,
    jobs: list,
    options: RunOptions,
    launcher: Launcher,
    orphans: Orphanage,
    hint: str,
    echo: Echo,
) -> dict[str, str]:
    """Run (or recover) every job not yet done, as many at once as the launcher has slots; a job that reuses other
    entries' models waits for the jobs that train them; whatever an ended job left running is stopped. Returns the
    failed jobs with their errors; an interruption says how to resume (`hint`)."""
    manifest = store.manifest
    waiting = [job for job in jobs if manifest["jobs"][job_id(job[0].label, *job[1:])]["status"] != "ok"]
    failures, active, free = {}, {}, launcher.slots()
    session = store.folder.name.split("_")[0]
    bar = tqdm(total=len(waiting), desc=f"suite {suite.name}", unit="job")
    try:
        while waiting or active:
            pending = {job_id(spec.label, seed, fold) for spec, seed, fold in waiting} | set(active)
            before = len(waiting)
            for spec, seed, fold in list(waiting):
                if not free or pending & {job_id(part.label, seed, fold) for _, part in _parts(suite, spec)}:
                    continue
                waiting.remove((spec, seed, fold))
                picks_session = f"{session}-s{seed}-{fold}" if options.write_picks else None
                job = _job_spec(store, suite, data, spec, (seed, fold), options.device, manifest["repeats"],
                                picks_session)  # fmt: skip
                job = replace(job, reuse=_reusable_models(store, suite, spec, seed, fold))
                if _recovered(store, job):
                    echo(f"recovered: {job.key} had finished before the last run stopped; its result is kept")
                    bar.update()
                    continue
                active[job.key] = _start(store, suite, job, launcher, free.pop(0))
            if waiting and not active and len(waiting) == before:
                blocked = ", ".join(job_id(spec.label, seed, fold) for spec, seed, fold in waiting)
                raise BenchError(f"jobs {blocked} wait for each other's models; an entry cannot be a part of its parts")
            for key, started in list(active.items()):
                result = _outcome(started)
                if result is None:
                    continue
                started.running.stop()  # whatever the job started and left behind
                del active[key]
                orphans.sweep({other.running.pid for other in active.values()})
                free.append(started.slot)
                _store(store, started.job, result)
                bar.update()
                if result["status"] != "ok":
                    failures[key] = result.get("error")
                    job = started.job
                    echo(f"failed: {job.architecture['label']} seed {job.seed} fold {job.fold}: {result.get('error')}")
            time.sleep(POLL_SECONDS if active else 0)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; finished jobs are kept in {store.folder}; complete them with: {hint}"
        ) from None
    finally:
        bar.close()
        for key, started in active.items():  # interrupted, or a result that could not be stored: nothing left running
            started.running.stop()
            store.update_job(key, status="interrupted", finished=utc_now())
    return failures


def _parts(suite: Suite, spec: ArchitectureSpec) -> list[tuple[int, ArchitectureSpec]]:
    """The suite's other entries equal (name, config, epoch bound) to a part `spec` trains, with the part's index."""
    entries = reusable_entries(ARCHITECTURES.get(spec.name), spec.config)
    return [
        (index, other)
        for index, entry in enumerate(entries)
        for other in suite.architectures
        if other is not spec
        and (other.name, other.config, suite.budget_for(other).epochs)
        == (entry["name"], entry.get("config") or {}, entry.get("epochs") or suite.budget.epochs)
    ]


def _reusable_models(store: ResultsStore, suite: Suite, spec: ArchitectureSpec, seed: int, fold: str) -> list[dict]:
    """The saved models of the suite's entries equal to the parts `spec` trains, from the jobs of the same seed and
    fold that succeeded (the first per part); a part without one is trained by the job itself."""
    parts = _parts(suite, spec)
    reuse, resources = {}, store.table("resources") if parts else None
    for index, other in parts:
        key = job_id(other.label, seed, fold)
        folder = store.job_dir(key) / MODEL
        if index in reuse or store.manifest["jobs"].get(key, {}).get("status") != "ok":
            continue
        row = resources[(resources["architecture"] == other.label) & (resources["seed"] == seed)]
        row = row[row["fold"] == fold]
        if folder.is_dir() and len(row):
            seconds = float(row["train_seconds"].iloc[0])
            reuse[index] = {"index": index, "label": other.label, "folder": str(folder), "train_seconds": seconds,
                            **_stored_predictions(store, other, seed, fold)}  # fmt: skip
    return list(reuse.values())


def _stored_predictions(store: ResultsStore, entry: ArchitectureSpec, seed: int, fold: str) -> dict:
    """Where a reused entry's job stored its model's own candidates (an entry with post-processing steps stored
    theirs, so none), and that job's median latency per tomogram, which a job reusing them adds to its own."""
    if entry.postprocess:
        return {}
    latency = store.table("latency")
    mine = latency[(latency["architecture"] == entry.label) & (latency["seed"] == seed) & (latency["fold"] == fold)]
    medians = mine.groupby("run")[list(LATENCY_PARTS)].median()
    return {"predictions": str(store.predictions_dir(entry.label, seed, fold)),
            "latency": {run: row.to_dict() for run, row in medians.iterrows()}}  # fmt: skip


def _new_manifest(suite: Suite, data: dict, options: RunOptions, command: str, particles: ParticleTable) -> dict:
    """The manifest of a new results folder, with the particle types as scored (label order) and what each entry
    changed from its plug-in's defaults."""
    device = options.device
    return {
        "suite": {
            "name": suite.name,
            "path": str(suite.path),
            "sha256": suite.sha256,
            "description": suite.description,
        },
        "data": {
            **data,
            "tomo_type": suite.data.tomo_type,
            "voxel_size": suite.data.voxel_size,
            "ground_truth": [suite.data.user_id, suite.data.session_id],
        },
        "split": asdict(suite.split),
        "folds": {name: asdict(split) for name, split in suite.folds.items()},
        "evaluate": suite.evaluate,
        "budget": asdict(suite.budget),
        "epoch_bounds": {spec.label: suite.budget_for(spec).epochs for spec in suite.architectures},
        "calibration": calibration_record(suite),
        "entries": {spec.label: _entry(spec) for spec in suite.architectures},
        "particles": [{"name": p.name, "radius": p.radius, "weight": p.weight, "hard": p.hard} for p in particles],
        "repeats": suite.repeats or (3 if device.startswith("cuda") else 1),
        "seeds": options.seeds,
        "device": device,
        "compute": suite.compute.on(device),
        "environment": environment(device),
        "command": command,
        "options": options.recorded(),
        "created": utc_now(),
        "jobs": {},
    }


def _entry(spec: ArchitectureSpec) -> dict:
    """A suite entry's plug-in and its config options that differ from the plug-in's `defaults` (default None where
    it has none, as for a plug-in that is not installed), as JSON."""
    ARCHITECTURES.discover()
    defaults = getattr(ARCHITECTURES.factories.get(spec.name), "defaults", {})
    differences = {
        option: {"default": _as_json(defaults.get(option)), "value": _as_json(value)}
        for option, value in spec.config.items()
        if option not in defaults or _as_json(value) != _as_json(defaults[option])
    }
    return {"architecture": spec.name, "differences": differences}


def _as_json(value: object) -> object:
    """A value as JSON reads it back: tuples as lists, anything JSON cannot hold as its text."""
    return json.loads(json.dumps(value, default=str))


def _resumable(store: ResultsStore, suite: Suite) -> dict:
    """The manifest of a folder to complete, after checking it belongs to this suite file, that none of its jobs
    still runs, and that its stored tables read."""
    manifest = store.manifest
    if manifest["suite"]["name"] != suite.name:
        shipped = SUITES_DIR / f"{manifest['suite']['name']}.yaml"
        other = manifest["suite"]["name"] if str(shipped) == manifest["suite"]["path"] else manifest["suite"]["path"]
        raise BenchError(
            f"{store.folder} holds results of suite '{manifest['suite']['name']}', not '{suite.name}'; "
            f"resume it with --suite {shlex.quote(other)}"
        )
    if manifest["suite"]["sha256"] != suite.sha256:
        raise BenchError(f"suite file {suite.path} changed since {store.folder} was started; start a new run")
    for key, job in manifest["jobs"].items():
        running = still_running(job, store.job_dir(key)) if job["status"] == "running" else None
        if running is not None:
            raise BenchError(
                f"job {key} of {store.folder} is still running as {running}; wait for it or stop it, then resume"
            )
    store.check_tables()
    return manifest


def _job_spec(
    store: ResultsStore,
    suite: Suite,
    data: dict,
    spec: ArchitectureSpec,
    seed_fold: tuple[int, str],
    device: str,
    repeats: int,
    session: str | None,
) -> JobSpec:
    """The spec of one job."""
    seed, fold = seed_fold
    key = job_id(spec.label, seed, fold)
    return JobSpec(
        key=key,
        folder=str(store.job_dir(key)),
        predictions=str(store.predictions_dir(spec.label, seed, fold)),
        suite=str(suite.path),
        config=data["config"],
        architecture=asdict(spec),
        module=ARCHITECTURES.modules.get(spec.name, ""),
        part_modules=_part_modules(spec),
        seed=seed,
        fold=fold,
        device=device,
        repeats=repeats,
        session_id=session,
    )


def _part_modules(spec: ArchitectureSpec) -> dict[str, str]:
    """The modules registering the plug-ins of the entries an entry is built from, by name."""
    entries = reusable_entries(ARCHITECTURES.get(spec.name), spec.config)
    return {entry["name"]: ARCHITECTURES.modules.get(entry["name"], "") for entry in entries}


def _recovered(store: ResultsStore, job: JobSpec) -> bool:
    """Store the result a job left behind when the run that started it died before storing it (same spec only)."""
    folder = Path(job.folder)
    try:
        earlier = JobSpec.read(folder / "job.json")
        result = json.loads((folder / RESULT).read_text())
    except (OSError, json.JSONDecodeError, TypeError):
        return False
    if result.get("status") != "ok" or earlier.work() != job.work():
        return False
    _store(store, job, result)
    return True


def _start(store: ResultsStore, suite: Suite, job: JobSpec, launcher: Launcher, slot: Slot) -> _Active:
    """Write a job's spec into its clean folder and launch it in `slot`."""
    folder = Path(job.folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (RESULT, "traceback.txt", PHASE):
        (folder / stale).unlink(missing_ok=True)
    job = replace(job, runner_pid=os.getpid() if launcher.owns_jobs else 0, parallel_jobs=launcher.sharing)
    job.save(folder / "job.json")
    spec = ArchitectureSpec(**job.architecture)
    budget = job_budget(suite, spec, ARCHITECTURES.get(spec.name), len(job.reuse))
    running = launcher.launch(folder / "job.json", slot, budget)
    try:
        store.update_job(
            job.key, status="running", started=utc_now(), launcher=launcher.name, launcher_job_id=running.job_id,
            slot=asdict(slot), error=None,
        )  # fmt: skip
    except BaseException:  # not yet watched: nothing may run on unrecorded
        running.stop()
        raise
    return _Active(job, budget, slot, running)


def _outcome(active: _Active) -> dict | None:
    """A job's result once it has ended, or its failure when it ran past a phase's limit (it is then stopped);
    None while it runs within its budget."""
    folder = Path(active.job.folder)
    if active.running.ended():
        try:
            return json.loads((folder / RESULT).read_text())
        except (OSError, json.JSONDecodeError):
            active.ended_at = active.ended_at or time.monotonic()
            if time.monotonic() - active.ended_at < active.running.result_grace:
                return None  # a shared file system may show the result later than the job's end
            return active.running.failure()
    if active.running.queued():  # (re)queued on a cluster: its clocks start when it runs again
        active.launched = time.monotonic()
        return None
    whole = active.budget.job_minutes
    if whole is not None and time.monotonic() - active.launched > 60 * whole:
        active.running.stop()
        return {"status": "over budget", "error": f"stopped {whole:g} min after it started (the job's limit)"}
    phase = read_phase(folder)
    if phase is None:  # not yet written (or queued on a cluster)
        return None
    if time.time() - phase["since"] <= active.budget.limit(phase["phase"]):
        return None
    active.running.stop()
    return {"status": "over budget", "error": _overrun(phase["phase"], active.budget)}


def _overrun(phase: str, budget: Budget) -> str:
    """What the runner says of a job it stopped in `phase`."""
    step = {
        "setup": "the job's set-up (imports, data, model) had not ended",
        "fit": "fit had not returned",
        "predict": "its predictions had not ended",
        "score": "its post-processing, scoring and write-back had not ended",
    }[phase]
    cap = (budget.predict_minutes or budget.minutes) if phase == "predict" else budget.minutes
    return (
        f"{step} {budget.limit(phase) / 60:g} minutes after it started (budget {cap:g} min + "
        f"{budget.grace_minutes:g} min grace); the job was stopped"
    )


def _store(store: ResultsStore, job: JobSpec, result: dict) -> None:
    """Store a job's rows (when it succeeded) and its manifest entry; a job on changed code marks the run dirty.
    The job's warnings are shown, one line each."""
    for message in result.get("warnings", []):
        warnings.warn(f"{job.key}: {message}", BenchWarning, stacklevel=2)
    if result["status"] == "ok":
        key = {"architecture": job.architecture["label"], "seed": job.seed, "fold": job.fold}
        try:
            for table in EVERY_JOB:
                rows = result[table] if isinstance(result[table], list) else [result[table]]
                store.replace_rows(table, key, rows)
            for variant in result.get("variants", []):
                variant_key = {**key, "architecture": variant["label"]}
                for table in VARIANT_TABLES:
                    store.replace_rows(table, variant_key, variant[table])
                store.replace_rows("ablation", variant_key, [variant["ablation"]])
        except BenchError as err:
            store.update_job(job.key, status="failed", error=f"finished, but its rows were not stored: {err}")
            raise
    manifest = store.manifest
    if (result.get("environment") or {}).get("git", {}).get("dirty"):
        manifest["environment"]["git"]["dirty"] = True
    manifest["jobs"][job.key] = {
        **manifest["jobs"].get(job.key, {}),
        "status": result["status"],
        "error": result.get("error"),
        "finished": utc_now(),
        "environment": result.get("environment"),
        "epoch_logs": result.get("epoch_logs"),
        "postprocess_fitted": result.get("postprocess_fitted"),
        "warnings": result.get("warnings"),
    }
    store.write_manifest(manifest)
