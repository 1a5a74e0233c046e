"""`bench gpu-check`: every architecture of a suite measured on one device in minutes, ready to run the moment a GPU
machine is lent: machine checks first (seconds), then each row a short capped fit and timed predictions of one
full-size tomogram, under its own time limit, recorded as a results folder with a short report.

It is a generated suite run by the ordinary runner: the source suite's entries (their configs, post-processing and
precision) with one train, one val and one test run, short epochs, a few capped seconds, three timed predictions
after the warm-up, cudnn's autotuner on, no ablation and no learning curve. Each row may run an equal share of the
check's minutes (`budget.job_minutes`), its fit and its predictions each about two fifths of it. Scores are not its
point.
"""

from __future__ import annotations

import copy
import math
import multiprocessing
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import yaml

from benchmark.errors import BenchError
from benchmark.files import write_text
from benchmark.results import RESULTS_ROOT, ResultsStore
from benchmark.run_options import RunOptions
from benchmark.suite import Suite, load_suite

CHECK = "gpu-check"  # the generated suite's name: results/gpu-check/, reports/gpu-check/
EPOCHS = 5  # the epoch bound of every learned row: the median epoch then leaves out the first's warm-up
STEPS = 20  # optimisation steps per epoch, for plug-ins that take `steps_per_epoch` (never more than configured)
START_MINUTES = 0.25  # the check's own start: machine checks, suite, data opened and checked
GENERATE_MINUTES_PER_GB = 0.5  # synthetic data generated when missing (the full preset's 2.3 GB in about a minute)
SPARE_GB = 2.0  # disk the check needs besides the data it generates: results, models for the run, the report
CAP_SHARE = 0.4  # each of a row's fit cap and prediction cap, as a share of its whole limit (start, scoring: the rest)
MIN_ROW_SECONDS = 20.0  # a row's limit below this cannot start a job: the check refuses to run

Echo = Callable[[str], None]


@dataclass(frozen=True)
class CheckOptions:
    """What `bench gpu-check` was asked for."""

    suite: str = "full"  # the suite whose entries are measured
    device: str = "cuda"
    preset: str | None = None  # the synthetic preset (default: the suite's)
    arch: str | None = None  # a wildcard pattern of the entries to measure
    minutes: float = 8.0  # the whole check's wall clock after set-up: each row may run an equal share of it
    fit_seconds: float | None = None  # each row's fit cap (default: CAP_SHARE of its share)
    predict_seconds: float | None = None  # each row's cap on its predictions (default: CAP_SHARE of its share)
    root: Path = RESULTS_ROOT


def data_gb(preset: str) -> float:
    """The disk a synthetic preset takes: float32 voxels of every run, in its pyramid's levels."""
    from benchmark.synth.presets import PRESETS
    from benchmark.synth.project import LEVELS, RUN_NAMES

    pyramid = sum(8.0**-level for level in range(LEVELS))
    return math.prod(PRESETS[preset].shape) * 4 * pyramid * len(RUN_NAMES) / 1e9


def machine_lines(device: str, precision: str, folders: list[Path], data: float) -> list[str]:
    """Check in seconds that the machine can run the check, and say what it is: device, driver, CUDA, torch and
    cuDNN versions. A machine that cannot (no CUDA, no bf16 for a bf16 suite, too little disk) is one BenchError
    line; NVML that cannot see the process is said, not fatal (the allocator's figures stand alone). `data`: the
    GB of synthetic data still to generate."""
    import torch

    from benchmark.environment import torch_state

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError("no CUDA device here (torch.cuda.is_available() is False); run gpu-check on a GPU machine, "
                         "or pass --device cpu to test its plumbing")  # fmt: skip
    need = SPARE_GB + data
    for folder in folders:
        free = shutil.disk_usage(_existing(folder)).free / 1e9
        if free < need:
            raise BenchError(f"only {free:.1f} GB free under {folder}, and the check needs {need:.1f} GB; free space")
    state = torch_state(device)
    lines = [f"device: {state['device_name']}; torch {torch.__version__}, precision {precision}"]
    if device.startswith("cuda"):
        # bf16 in hardware from compute capability 8 (Ampere) on; torch's is_bf16_supported also counts emulation
        if precision == "bf16" and torch.cuda.get_device_properties(torch.device(device)).major < 8:
            raise BenchError(f"{state['device_name']} has no bf16 in hardware, the suite's precision; set the "
                             "suite's compute.precision to fp32 or use another GPU")  # fmt: skip
        torch.ones(8, device=device).sum().item()  # a kernel runs, not only the driver answers
        lines.append(f"driver {state['driver_version']}, CUDA {torch.version.cuda}, cuDNN {state['cudnn_version']}")
        lines.append(f"NVML: {_nvml_status(device)}")
    return lines


def checked_apart(device: str, precision: str, folders: list[Path], data: float) -> list[str]:
    """`machine_lines` in a child process, so that the CUDA context it makes is gone before the jobs need the GPU
    (on a GPU in exclusive-process mode they could not make theirs)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as child:
        return child.submit(machine_lines, device, precision, folders, data).result()


def _existing(folder: Path) -> Path:
    """The folder, or its nearest existing parent (disk_usage needs one that exists)."""
    while not folder.exists():
        folder = folder.parent
    return folder


def _nvml_status(device: str) -> str:
    """Whether NVML sees this process's memory on the device (after a small allocation)."""
    import torch

    from metrics.resources import NvmlProcess

    held = torch.empty(64 << 20, dtype=torch.uint8, device=device)  # 64 MB: a context and an allocation to see
    nvml = NvmlProcess.open(device)
    if nvml.handle is not None:
        nvml.read()
    del held
    return "sees this process" if nvml.status() == "ok" else f"{nvml.status()}; the NVML column will be empty"


def row_seconds(source: Suite, options: CheckOptions, start_minutes: float) -> float:
    """Each row's share of the check's minutes left after its start (and the data it generates)."""
    rows = len(source.select(options.arch))
    seconds = 60 * (options.minutes - start_minutes) / rows
    if seconds < MIN_ROW_SECONDS:
        raise BenchError(f"--minutes {options.minutes:g} leaves {seconds:.0f} s for each of {rows} rows after "
                         f"{start_minutes:.1f} min of start and data; give more minutes or fewer rows")  # fmt: skip
    return seconds


def check_suite(source: Suite, options: CheckOptions, share: float) -> dict:
    """The generated suite (as the YAML mapping a suite file holds) from the source suite's file, each row limited
    to `share` seconds."""
    raw = yaml.safe_load(source.path.read_text())
    split = source.split
    epochs = raw.get("budget", {}).get("epochs")
    raw.update(
        name=CHECK,
        description=f"bench gpu-check of suite '{source.name}' on {options.device}: short capped fits and three timed "
        "predictions of one tomogram per architecture; not a benchmark of scores",
        split={"train": split.train[:1], "val": split.val[:1], "test": split.test[:1]},
        budget={
            "minutes": (options.fit_seconds or CAP_SHARE * share) / 60,
            "epochs": EPOCHS,
            "predict_minutes": (options.predict_seconds or CAP_SHARE * share) / 60,
            "grace_minutes": 0.25,
            "job_minutes": share / 60,
        },
        seeds=[source.seeds[0]],
        device=options.device,
        repeats=3,
        evaluate="test",
        compute={**raw.get("compute", {}), "deterministic": False, "cudnn_benchmark": True},
    )
    raw["data"] = {**raw["data"], **({"synthetic": options.preset} if options.preset else {})}
    for key in ("learning_curve", "tune", "folds", "launcher"):
        raw.pop(key, None)
    raw["architectures"] = [_short(entry, epochs) for entry in raw["architectures"]]
    return raw


def _short(entry: dict, epochs: int | None) -> dict:
    """A copy of an entry with short epochs (its members' too: they stay equal to the entries they reuse, whether
    their bound is their own or the suite's `epochs`), no ablation."""
    entry = copy.deepcopy({key: value for key, value in entry.items() if key != "ablation"})
    entry["epochs"] = min(entry.get("epochs") or epochs or EPOCHS, EPOCHS)
    config = entry.setdefault("config", {}) or {}
    steps = config.get("steps_per_epoch", _defaults(entry["name"]).get("steps_per_epoch"))
    if steps is not None:
        config["steps_per_epoch"] = min(steps, STEPS)
    if "members" in config:
        config["members"] = [_short(member, epochs) for member in config["members"]]
    entry["config"] = config
    return entry


def _defaults(name: str) -> dict:
    """A registered plug-in's default options (none for one without)."""
    from benchmark.registry import ARCHITECTURES

    ARCHITECTURES.discover()
    return getattr(ARCHITECTURES.factories.get(name), "defaults", {}) or {}


class _Plain(yaml.SafeDumper):
    """A YAML dumper that writes every value out, never an anchor and its aliases."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def gpu_check(options: CheckOptions, echo: Echo, command: str = "") -> tuple[ResultsStore, dict[str, str]]:
    """Check the machine, write the generated suite, run every row (generating the data if missing); the results
    store and the rows that failed with their errors."""
    from benchmark.runner import run_suite, synthetic_cache, synthetic_folder

    source = load_suite(options.suite, calibrated=False)
    data = replace(source.data, synthetic=options.preset or source.data.synthetic)
    cached = (synthetic_folder(replace(source, data=data)) / "copick.json").is_file()
    missing = 0.0 if cached else data_gb(data.synthetic)
    share = row_seconds(source, options, START_MINUTES + missing * GENERATE_MINUTES_PER_GB)
    precision = source.compute.precision_on(options.device)
    for line in checked_apart(options.device, precision, [synthetic_cache(), options.root], missing):
        echo(f"check: {line}")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = (options.root / CHECK / "suites" / f"{stamp}_{source.name}-{options.device}.yaml").resolve()
    header = f"# Generated by `{command or 'bench gpu-check'}` from {source.path.name}.\n"
    write_text(path, header + yaml.dump(check_suite(source, options, share), Dumper=_Plain, sort_keys=False, width=120))
    suite = load_suite(str(path), calibrated=False)  # run_suite generates its preset when missing
    given = RunOptions(suite=str(path), arch=options.arch, device=options.device, write_picks=False, keep_models=False)
    return run_suite(suite, given, root=options.root, command=command, echo=echo)
