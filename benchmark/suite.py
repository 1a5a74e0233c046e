"""Suites: data files in suites/ that fix the data, split, budget, seeds and architectures of a comparison."""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from benchmark.conventions import CZII_VOXEL_SIZE, DEFAULT_TOMO_TYPE, GROUND_TRUTH
from benchmark.errors import BenchError
from benchmark.files import SAFE_NAME, file_name_problem
from benchmark.interface import Budget
from benchmark.particles import Metric

SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"
EXAMPLE = "suites/smoke.yaml"
SPLIT_FOLD = "ts"  # the fold name of the suite's own split
EVALUATE = ("test", "val")
PRECISIONS = ("auto", "bf16", "fp32")
MAX_SUITE_VALUES = 100_000  # values a suite may hold with its YAML aliases substituted (the shipped ones hold ~1,000)
SEEDS = (0, 2**32 - 1)  # the seeds numpy accepts (torch and Python accept these too)


@dataclass(frozen=True)
class DataSpec:
    """Where the tomograms come from and which of them count."""

    synthetic: str
    synthetic_seed: int = 0
    tomo_type: str = DEFAULT_TOMO_TYPE
    voxel_size: float = CZII_VOXEL_SIZE
    user_id: str = GROUND_TRUTH[0]
    session_id: str = GROUND_TRUTH[1]


@dataclass(frozen=True)
class Split:
    """Run names of the train, validation (threshold tuning) and test (reported) splits."""

    train: list[str]
    val: list[str]
    test: list[str]

    def runs(self) -> list[str]:
        """All runs of the split, train first."""
        return [*self.train, *self.val, *self.test]

    def check(self, where: str) -> None:
        """Refuse a run listed twice, within one list or across lists: the splits must be disjoint."""
        seen: dict[str, str] = {}
        for part in ("train", "val", "test"):
            for run in getattr(self, part):
                if run in seen:
                    place = f"twice in {part}" if seen[run] == part else f"in both {seen[run]} and {part}"
                    raise BenchError(
                        f"{where}: run '{run}' is listed {place}; train, val and test must be disjoint, "
                        "each run listed once"
                    )
                seen[run] = part


@dataclass(frozen=True)
class Compute:
    """The numerics every deep plug-in of a suite runs with: `precision` ("auto" is bf16 mixed precision on a GPU
    and fp32 on CPU), deterministic kernels, and cudnn's autotuner (faster convolutions for timing runs, not
    deterministic, so never with `deterministic`)."""

    precision: str = "auto"
    deterministic: bool = True
    cudnn_benchmark: bool = False

    def precision_on(self, device: str) -> str:
        """The precision a job on `device` runs in: "bf16" or "fp32"."""
        if self.precision != "auto":
            return self.precision
        return "bf16" if device.startswith("cuda") else "fp32"

    def on(self, device: str) -> dict[str, Any]:
        """The settings as a job on `device` applies them, for the manifest."""
        return {**asdict(self), "precision": self.precision_on(device)}


@dataclass(frozen=True)
class Launch:
    """Where a suite's jobs run beyond this machine: a SLURM cluster's partition, account, the GPUs, CPUs and memory
    of each job, extra sbatch options (name: value, written as `#SBATCH --name=value`), and shell lines run before
    each job (modules, environments). The time limit is derived from the budget."""

    partition: str | None = None
    account: str | None = None
    gpus_per_job: int | None = None  # None: 1 when the suite runs on cuda, else none
    cpus_per_job: int | None = None
    mem_gb: int | None = None
    sbatch: dict[str, str | bool] = field(default_factory=dict)  # a flag (no value) is true
    setup: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ArchitectureSpec:
    """One architecture of a suite: its registered name, the label that keys its results, config, epoch bound,
    post-processing steps and ablation variants (each {"name", "steps"}: more steps applied to the same candidates,
    scored as `<label>+<name>`)."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    postprocess: list[dict[str, Any]] = field(default_factory=list)
    label: str = ""
    epochs: int | None = None
    ablation: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.name)


@dataclass(frozen=True)
class Suite:
    """A parsed suite file."""

    name: str
    path: Path
    description: str
    data: DataSpec
    split: Split
    budget: Budget
    seeds: list[int]
    device: str
    architectures: list[ArchitectureSpec]
    folds: dict[str, Split] = field(default_factory=dict)  # fold name -> split; "ts" is the split itself
    evaluate: str = "test"  # the split scored and reported: "test", or "val" for a selection suite
    repeats: int | None = None  # timed predictions per tomogram; None: 1 on CPU, 3 on GPU
    compute: Compute = Compute()
    launch: Launch = Launch()
    metric: Metric = field(default_factory=Metric)  # weights and hard types, checked against the project

    @property
    def sha256(self) -> str:
        """Hash of the suite file's bytes, recorded in the manifest."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def budget_for(self, spec: ArchitectureSpec) -> Budget:
        """The suite's budget with the architecture's own epoch bound, when it has one."""
        return replace(self.budget, epochs=spec.epochs) if spec.epochs is not None else self.budget

    def select(self, pattern: str | None) -> list[ArchitectureSpec]:
        """The architectures whose labels match a wildcard pattern (all when None)."""
        if pattern is None:
            return self.architectures
        chosen = [a for a in self.architectures if fnmatch.fnmatchcase(a.label, pattern)]
        if not chosen:
            names = [a.label for a in self.architectures]
            close = difflib.get_close_matches(pattern, names, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise BenchError(
                f"no architecture of suite '{self.name}' matches '{pattern}'{hint}; it has: {', '.join(names)}"
            )
        return chosen


def check_seeds(seeds: list[int], where: str) -> None:
    """Refuse seeds that numpy (or torch) cannot take, and a seed listed twice (its jobs would run twice)."""
    bad = [seed for seed in seeds if not SEEDS[0] <= seed <= SEEDS[1]]
    if bad:
        raise BenchError(f"{where}: seed {bad[0]} is outside {SEEDS[0]}..{SEEDS[1]}, the seeds numpy accepts; pick one")
    twice = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if twice:
        raise BenchError(f"{where}: seed {twice[0]} is listed twice; list each seed once")


def list_suites(pattern: str = "*") -> list[str]:
    """Names of the suites shipped in suites/, matching a wildcard pattern."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml") if fnmatch.fnmatchcase(p.stem, pattern))


def load_suite(name_or_path: str) -> Suite:
    """Load a suite by name (suites/NAME.yaml) or by path to a YAML file."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        close = difflib.get_close_matches(name_or_path, list_suites(), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise BenchError(
            f"unknown suite '{name_or_path}'{hint}; suites: {', '.join(list_suites())}, or a path to a YAML file"
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise BenchError(f"suite file {path} is not valid YAML ({str(err).splitlines()[0]}); fix it") from None
    except (OSError, UnicodeDecodeError) as err:
        raise BenchError(f"suite file {path} cannot be read ({err}); fix it") from None
    except RecursionError:
        raise BenchError(f"suite file {path} is nested too deeply to read; flatten it") from None
    values = expanded_size(raw)
    if values > MAX_SUITE_VALUES:
        raise BenchError(
            f"suite file {path} expands to more than {MAX_SUITE_VALUES:,} values once its YAML aliases are "
            "substituted (aliases of aliases, or one that contains itself); write the entries out or use fewer aliases"
        )
    return _parse(raw, path)


def expanded_size(value: Any, limit: int = MAX_SUITE_VALUES) -> int:
    """How many values a parsed YAML document holds with every alias substituted where it is used (what a job spec
    written as JSON holds), counted without substituting: each shared node once, its size reused. Stops counting past
    `limit`; a node that contains itself counts as past it."""
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = limit + 1  # while counting: a node reached again inside itself is a cycle
        children = [part for pair in node.items() for part in pair] if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                break
        sizes[id(node)] = total
        return total

    try:
        return size(value)
    except RecursionError:
        return limit + 1


def _parse(raw: Any, path: Path) -> Suite:
    """Build a Suite, naming the first missing, unknown or inconsistent field."""
    reader = _Fields(raw, path, "")
    data = reader.section("data")
    budget = reader.section("budget")
    compute = reader.section("compute") if "compute" in reader.raw else _Fields({}, path, "compute.")
    launcher = reader.section("launcher") if "launcher" in reader.raw else _Fields({}, path, "launcher.")
    metric = reader.section("metric") if "metric" in reader.raw else _Fields({}, path, "metric.")
    split = _split(reader.section("split"))
    suite = Suite(
        name=reader.name("name"),
        path=path,
        description=reader.get("description", str, ""),
        data=DataSpec(
            synthetic=data.get("synthetic", str),
            synthetic_seed=data.get("synthetic_seed", int, 0),
            tomo_type=data.get("tomo_type", str, DataSpec.tomo_type),
            voxel_size=data.get("voxel_size", float, DataSpec.voxel_size),
            user_id=data.get("user_id", str, DataSpec.user_id),
            session_id=str(data.get("session_id", (str, int), DataSpec.session_id)),
        ),
        split=split,
        budget=Budget(
            minutes=budget.get("minutes", float),
            epochs=budget.get("epochs", int, None),
            grace_minutes=budget.get("grace_minutes", float, Budget.grace_minutes),
            predict_minutes=budget.get("predict_minutes", float, None),
        ),
        seeds=reader.seeds("seeds"),
        device=reader.get("device", str, "cpu"),
        architectures=[_architecture(entry, path, i) for i, entry in enumerate(reader.get("architectures", list))],
        folds={SPLIT_FOLD: split, **_folds(reader, split)},
        evaluate=reader.choice("evaluate", EVALUATE, "test"),
        repeats=reader.positive("repeats", None),
        compute=Compute(
            precision=compute.choice("precision", PRECISIONS, Compute.precision),
            deterministic=compute.get("deterministic", bool, Compute.deterministic),
            cudnn_benchmark=compute.get("cudnn_benchmark", bool, Compute.cudnn_benchmark),
        ),
        launch=_launch(launcher),
        metric=_metric(metric),
    )
    for section in (reader, data, budget, compute, launcher, metric):
        section.refuse_unknown()
    for fold, fold_split in suite.folds.items():
        fold_split.check(f"suite file {path}, " + ("split" if fold == SPLIT_FOLD else f"fold '{fold}'"))
    if suite.compute.deterministic and suite.compute.cudnn_benchmark:
        raise BenchError(
            f"suite file {path}: 'compute.cudnn_benchmark' picks kernels that are not deterministic; set "
            "'compute.deterministic: false' with it, or leave it off"
        )
    if not suite.architectures:
        raise BenchError(f"suite file {path}: 'architectures' is empty; list at least one (see {EXAMPLE})")
    labels = [a.label for a in suite.architectures]
    twice = sorted({n for n in labels if labels.count(n) > 1})
    if twice:
        raise BenchError(
            f"suite file {path} lists '{twice[0]}' twice; results are keyed on the label, "
            "so give each entry a distinct 'label'"
        )
    return suite


def _launch(reader: _Fields) -> Launch:
    """The `launcher:` section: SLURM settings of every job."""
    sbatch = sbatch_options(reader.get("sbatch", dict, {}), f"suite file {reader.path}: 'launcher.sbatch'")
    setup = reader.get("setup", list, [])
    if not all(isinstance(line, str) for line in setup):
        raise BenchError(f"suite file {reader.path}: 'launcher.setup' is a list of shell lines")
    gpus = reader.get("gpus_per_job", int, None)
    if gpus is not None and gpus < 0:
        raise BenchError(f"suite file {reader.path}: 'launcher.gpus_per_job' must be 0 or more, not {gpus}")
    return Launch(
        partition=reader.get("partition", str, None),
        account=reader.get("account", str, None),
        gpus_per_job=gpus,
        cpus_per_job=reader.positive("cpus_per_job", None),
        mem_gb=reader.positive("mem_gb", None),
        sbatch=sbatch,
        setup=setup,
    )


def _metric(reader: _Fields) -> Metric:
    """The `metric:` section: `weights` (particle name: weight >= 0) and `hard` (the names of the hard types)."""
    weights = reader.get("weights", dict, {})
    hard = reader.get("hard", list, None)
    if not all(isinstance(name, str) for name in [*weights, *(hard or [])]):
        raise BenchError(f"suite file {reader.path}: 'metric' names particle types by their copick names (strings)")
    return Metric(weights=weights, hard=hard, source=f"suite file {reader.path}: 'metric'")


#: sbatch options the launcher sets itself, from its own settings or the budget
SBATCH_OWN = {"partition", "account", "gpus-per-node", "cpus-per-task", "mem", "time", "job-name", "output", "error"}


def sbatch_options(given: dict, where: str) -> dict[str, str | bool]:
    """Extra sbatch options by their long names (no dashes; a flag is true), refusing those the launcher sets."""
    options = {}
    for name, value in given.items():
        key = str(name).strip().lstrip("-").replace("_", "-")
        if not key or not isinstance(value, (str, int, float, bool)) or value is False:
            raise BenchError(f"{where}: '{name}: {value}' is not an sbatch option NAME=VALUE (or a flag's NAME)")
        if key in SBATCH_OWN:
            raise BenchError(
                f"{where}: '{key}' is set by the launcher (from its settings or the budget); use its own option"
            )
        options[key] = value if value is True else str(value)
    return options


def _split(reader: _Fields) -> Split:
    """A train/val/test mapping of run names."""
    split = Split(train=reader.names("train"), val=reader.names("val"), test=reader.names("test"))
    reader.refuse_unknown()
    return split


def _folds(reader: _Fields, split: Split) -> dict[str, Split]:
    """Extra folds: `leave-one-out` (each run of the split in turn as test, the next one as val, the rest train)
    or an explicit list of train/val/test mappings; named f1, f2, ..."""
    value = reader.get("folds", (str, list), [])
    if value == "leave-one-out":
        runs = split.runs()
        value = [
            {"train": [r for r in runs if r not in (test, val)], "val": [val], "test": [test]}
            for test, val in zip(runs, runs[1:] + runs[:1], strict=True)
        ]
    elif isinstance(value, str):
        raise BenchError(f"suite file {reader.path}: 'folds' is 'leave-one-out' or a list of train/val/test mappings")
    return {f"f{i + 1}": _split(_Fields(entry, reader.path, f"folds[{i}].")) for i, entry in enumerate(value)}


def _architecture(entry: Any, path: Path, index: int) -> ArchitectureSpec:
    """Parse one entry of the architectures list."""
    reader = _Fields(entry, path, f"architectures[{index}].")
    name = reader.name("name")
    spec = ArchitectureSpec(
        name=name,
        label=reader.name("label", name),
        config=reader.get("config", dict, {}),
        postprocess=reader.get("postprocess", list, []),
        epochs=reader.positive("epochs", None),
        ablation=[_variant(entry, path, f"architectures[{index}].ablation[{i}].") for i, entry in
                  enumerate(reader.get("ablation", list, []))],
    )  # fmt: skip
    reader.refuse_unknown()
    _check_steps(spec.postprocess, path, f"postprocess entry of '{spec.label}'")
    names = [variant["name"] for variant in spec.ablation]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise BenchError(f"suite file {path}: '{spec.label}' lists ablation variant '{twice[0]}' twice; rename one")
    return spec


def _variant(entry: Any, path: Path, prefix: str) -> dict[str, Any]:
    """One ablation variant: a name and the steps it adds after the entry's own."""
    reader = _Fields(entry, path, prefix)
    variant = {"name": reader.name("name"), "steps": reader.get("steps", list)}
    reader.refuse_unknown()
    _check_steps(variant["steps"], path, f"step of ablation variant '{variant['name']}'")
    return variant


def _check_steps(steps: list, path: Path, what: str) -> None:
    """Every step is a mapping with a 'step' name."""
    for step in steps:
        if not isinstance(step, dict) or "step" not in step:
            raise BenchError(f"suite file {path}: each {what} needs a 'step' name; see {EXAMPLE}")


_MISSING = object()


class _Fields:
    """Typed access to one mapping of a suite file, with errors that name the field and the file."""

    def __init__(self, raw: Any, path: Path, prefix: str):
        if not isinstance(raw, dict):
            raise BenchError(
                f"suite file {path}: '{prefix.rstrip('.') or 'the file'}' must be a mapping; see {EXAMPLE}"
            )
        self.raw, self.path, self.prefix, self.used = raw, path, prefix, set()

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        """The value of `key`, checked against `kind`; missing without a default is an error."""
        self.used.add(key)
        if key not in self.raw or self.raw[key] is None:
            if default is _MISSING:
                raise BenchError(f"suite file {self.path}: missing field '{self.prefix}{key}'; add it (see {EXAMPLE})")
            return default
        value = self.raw[key]
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            raise BenchError(f"suite file {self.path}: field '{self.prefix}{key}' has the wrong type ({value!r})")
        return value

    def section(self, key: str) -> _Fields:
        """A nested mapping."""
        return _Fields(self.get(key, dict), self.path, f"{self.prefix}{key}.")

    def names(self, key: str) -> list[str]:
        """A non-empty list of run names (they name prediction files, so plain names only)."""
        value = [str(v) for v in self.get(key, list)]
        if not value:
            raise BenchError(f"suite file {self.path}: '{self.prefix}{key}' is empty; list at least one run")
        for run in value:
            problem = file_name_problem(run)
            if problem:
                raise BenchError(
                    f"suite file {self.path}: '{self.prefix}{key}' lists {run!r}, which {problem}; run names become "
                    "file names: rename the run in the copick project"
                )
        return value

    def name(self, key: str, default: Any = _MISSING) -> str:
        """A name that becomes part of a path: letters, digits, '.', '_' and '-', not starting with a symbol."""
        value = self.get(key, str, default)
        if not SAFE_NAME.match(value):
            raise BenchError(
                f"suite file {self.path}: '{self.prefix}{key}' is {value!r}; use letters, digits, '.', '_' and '-' "
                "only, starting with a letter or digit"
            )
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        """One of a few words."""
        value = self.get(key, str, default)
        if value not in choices:
            raise BenchError(f"suite file {self.path}: '{self.prefix}{key}' is {value!r}; use {' or '.join(choices)}")
        return value

    def positive(self, key: str, default: int | None) -> int | None:
        """A positive integer."""
        value = self.get(key, int, default)
        if value is not None and value < 1:
            raise BenchError(f"suite file {self.path}: '{self.prefix}{key}' must be a positive integer, not {value}")
        return value

    def seeds(self, key: str) -> list[int]:
        """A non-empty list of integer seeds."""
        value = self.get(key, list, [0])
        if not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise BenchError(
                f"suite file {self.path}: '{self.prefix}{key}' must be a non-empty list of integers, e.g. [0, 1, 2]"
            )
        check_seeds(value, f"suite file {self.path}: '{self.prefix}{key}'")
        return value

    def refuse_unknown(self) -> None:
        """Unknown keys are typos until proven otherwise."""
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            raise BenchError(f"suite file {self.path}: unknown field(s) {', '.join(self.prefix + k for k in unknown)}")
