"""`bench run`: every (architecture, seed) of a suite under identical conditions, one process per job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from tqdm.auto import tqdm

from benchmark.data import Project
from benchmark.environment import environment
from benchmark.errors import BenchError
from benchmark.job import JobSpec, load_samples
from benchmark.registry import ARCHITECTURES, POSTPROCESSING
from benchmark.results import RESULTS_ROOT, ResultsStore, job_id, utc_now
from benchmark.suite import ArchitectureSpec, Suite

Echo = Callable[[str], None]


def synthetic_cache() -> Path:
    """Where embedded synthetic datasets are generated on first use ($CRYOET_BENCH_CACHE overrides)."""
    return Path(os.environ.get("CRYOET_BENCH_CACHE", Path.home() / ".cache" / "cryoet-bench")) / "synthetic"


def resolve_data(suite: Suite, config: str | None, echo: Echo) -> dict:
    """The data source of a run: the user's copick config, or the suite's synthetic preset (generated once)."""
    if config is not None:
        path = Path(config).resolve()
        Project(path)  # fail now, with one line, if the config is unusable
        return {"config": str(path), "synthetic": False}
    from benchmark.synth import generate
    from benchmark.synth.project import VERSION

    preset, seed = suite.data.synthetic, suite.data.synthetic_seed
    folder = synthetic_cache() / f"{preset}-seed{seed}-v{VERSION}"
    if (folder / "copick.json").is_file():
        echo(f"data: the embedded synthetic '{preset}' dataset (seed {seed}), cached in {folder}")
    else:
        echo(f"data: generating the embedded synthetic '{preset}' dataset (seed {seed}) into {folder} (first use)")
        generate(folder, preset=preset, seed=seed, overwrite=True)
    return {"config": str(folder / "copick.json"), "synthetic": True, "preset": preset, "seed": seed}


def check_device(device: str) -> None:
    """Refuse a device this machine does not have."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise BenchError(f"device '{device}' requested but CUDA is not available here; use --device cpu")
    elif device != "cpu":
        raise BenchError(f"unknown device '{device}'; use cpu or cuda")


def check_plugins(specs: list[ArchitectureSpec]) -> None:
    """Every architecture and post-processing step of the suite must be registered before anything runs."""
    for spec in specs:
        ARCHITECTURES.get(spec.name)
        for step in spec.postprocess:
            POSTPROCESSING.get(step["step"])


def run_suite(
    suite: Suite,
    config: str | None = None,
    pattern: str | None = None,
    device: str | None = None,
    seeds: list[int] | None = None,
    resume: str | None = None,
    root: Path = RESULTS_ROOT,
    write_picks: bool = True,
    command: str = "",
    echo: Echo = print,
) -> tuple[ResultsStore, dict[str, str]]:
    """Run the suite's jobs not yet done; returns the results store and the failed jobs with their errors."""
    specs = suite.select(pattern)
    check_plugins(specs)
    if resume is not None:
        store, manifest = _resumed(suite, resume, config, device, root)
        device, data = manifest["device"], manifest["data"]
    else:
        device = device or suite.device
        check_device(device)
        data = resolve_data(suite, config, echo)
        manifest = None
    project = Project(data["config"])
    load_samples(project, suite.split.runs(), suite.data)  # every run and tomogram must exist before training starts
    seeds = seeds or (manifest["seeds"] if manifest else suite.seeds)
    if manifest is None:
        manifest = _new_manifest(suite, data, device, seeds, command)
        store = ResultsStore.create(suite.name, manifest["environment"]["git"]["short"], root)
    else:
        manifest["seeds"] = sorted({*manifest["seeds"], *seeds})
    jobs = [(spec, seed) for seed in seeds for spec in specs]
    for spec, seed in jobs:
        manifest["jobs"].setdefault(
            job_id(spec.name, seed), {"architecture": spec.name, "seed": seed, "status": "pending"}
        )
    store.write_manifest(manifest)
    echo(f"results: {store.folder}")

    todo = [(spec, seed) for spec, seed in jobs if manifest["jobs"][job_id(spec.name, seed)]["status"] != "ok"]
    failures = {}
    session = store.folder.name.split("_")[0]
    for spec, seed in tqdm(todo, desc=f"suite {suite.name}", unit="job"):
        error = _run_job(store, suite, data, spec, seed, device, f"{session}-s{seed}" if write_picks else None)
        if error is not None:
            failures[job_id(spec.name, seed)] = error
            echo(f"failed: {spec.name} seed {seed}: {error}")
    manifest = store.manifest
    store.write_manifest({**manifest, "finished": utc_now()})
    return store, failures


def _new_manifest(suite: Suite, data: dict, device: str, seeds: list[int], command: str) -> dict:
    """The manifest of a new results folder."""
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
        "budget": asdict(suite.budget),
        "seeds": seeds,
        "device": device,
        "environment": environment(device),
        "command": command,
        "created": utc_now(),
        "jobs": {},
    }


def _resumed(suite: Suite, resume: str, config: str | None, device: str | None, root: Path) -> tuple:
    """The results folder to complete, after checking it belongs to this suite and these conditions."""
    store = ResultsStore.latest(suite.name, root) if resume == "latest" else ResultsStore.open(Path(resume))
    manifest = store.manifest
    if manifest["suite"]["name"] != suite.name:
        raise BenchError(
            f"{store.folder} holds results of suite '{manifest['suite']['name']}', not '{suite.name}'; "
            f"resume it with --suite {manifest['suite']['name']}"
        )
    if manifest["suite"]["sha256"] != suite.sha256:
        raise BenchError(f"suite file {suite.path} changed since {store.folder} was started; start a new run")
    if config is not None and str(Path(config).resolve()) != manifest["data"]["config"]:
        raise BenchError(f"{store.folder} was run on {manifest['data']['config']}; resume without --data")
    if device is not None and device != manifest["device"]:
        raise BenchError(f"{store.folder} was run on device {manifest['device']}; resume without --device")
    return store, manifest


def _run_job(
    store: ResultsStore, suite: Suite, data: dict, spec: ArchitectureSpec, seed: int, device: str, session: str | None
) -> str | None:
    """Run one job in its own process and store its rows; returns its error, or None when it succeeded."""
    key = job_id(spec.name, seed)
    folder = store.job_dir(key)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("result.json", "traceback.txt"):
        (folder / stale).unlink(missing_ok=True)
    job = JobSpec(
        key=key,
        folder=str(folder),
        predictions=str(store.predictions_dir(spec.name, seed)),
        suite=str(suite.path),
        config=data["config"],
        architecture=asdict(spec),
        seed=seed,
        device=device,
        session_id=session,
    )
    job.save(folder / "job.json")
    store.update_job(key, status="running", started=utc_now())
    try:
        process = subprocess.run([sys.executable, "-m", "benchmark.job", str(folder / "job.json")], check=False)
    except KeyboardInterrupt:
        store.update_job(key, status="interrupted", finished=utc_now())
        raise BenchError(
            f"interrupted; finished jobs are kept in {store.folder}; "
            f"complete them with: bench run --suite {suite.name} --resume {store.folder}"
        ) from None
    result = _read_result(folder, process.returncode)
    if result["status"] == "ok":
        for table in ("scores", "resources", "thresholds"):
            rows = result[table] if isinstance(result[table], list) else [result[table]]
            store.replace_rows(table, spec.name, seed, [{"architecture": spec.name, "seed": seed, **r} for r in rows])
    store.update_job(
        key,
        status=result["status"],
        error=result.get("error"),
        finished=utc_now(),
        environment=result.get("environment"),
        epoch_logs=result.get("epoch_logs"),
    )
    return result.get("error") if result["status"] != "ok" else None


def _read_result(folder: Path, returncode: int) -> dict:
    """The job's result.json, or a failure describing how its process died."""
    try:
        return json.loads((folder / "result.json").read_text())
    except (OSError, json.JSONDecodeError):
        if returncode < 0:
            try:
                name = signal.Signals(-returncode).name
            except ValueError:  # real-time signals have no name
                name = f"signal {-returncode}"
            hint = " (out of memory?)" if -returncode == signal.SIGKILL else ""
            return {"status": "failed", "error": f"job process killed by {name}{hint}"}
        return {"status": "failed", "error": f"job process exited with code {returncode} without a result"}
