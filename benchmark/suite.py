"""Suites: data files in suites/ that fix the data, split, budget, seeds and architectures of a comparison.

A suite file is checked by the pydantic models below (`SuiteFile`; `bench suite schema` prints its JSON schema), then
turned into the `Suite` the harness uses; the first problem is reported in one line naming the file, the key and the
fix, never as a pydantic ValidationError."""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import itertools
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    Tag,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import TaggedUnionSchema

from benchmark.conventions import CZII_VOXEL_SIZE, DEFAULT_TOMO_TYPE, GROUND_TRUTH
from benchmark.errors import BenchError
from benchmark.files import SAFE_NAME, file_name_problem
from benchmark.interface import Budget
from benchmark.particles import Metric

CALIBRATION_SUFFIX = ".calibration.yaml"  # a suite's calibration file beside it (`bench calibrate`), not a suite
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
    train_seconds: float | None = None  # the equal training time per learned row a calibration sizes the bounds to
    calibration: Path | None = None  # the file holding those bounds, beside the suite file
    learning_curve: tuple[float, ...] = ()  # fractions of each deep job's epoch bound where its val score is measured
    #: entry label -> config option -> search space: {low, high, log} (floats), {low, high, step} (integers), {choices}
    tune: dict[str, dict[str, dict]] = field(default_factory=dict)

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
            raise BenchError(
                f"no architecture of suite '{self.name}' matches '{pattern}'{_did_you_mean(pattern, names)}; "
                f"it has: {', '.join(names)}"
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
    names = (p.stem for p in SUITES_DIR.glob("*.yaml") if not p.name.endswith(CALIBRATION_SUFFIX))
    return sorted(name for name in names if fnmatch.fnmatchcase(name, pattern))


def load_suite(name_or_path: str, calibrated: bool = True) -> Suite:
    """Load a suite by name (suites/NAME.yaml) or by path to a YAML file; with `calibrated`, the epoch bounds of its
    `budget.calibration` file (when it names one) replace the entries' own."""
    path = _suite_path(name_or_path)
    raw = _read(path)
    try:
        suite = _suite(SuiteFile.model_validate(raw), path)
    except ValidationError as error:
        raise _one_line(error, raw, path) from None
    if calibrated and suite.calibration is not None:
        from benchmark.calibration import calibrated as with_calibrated_bounds

        return with_calibrated_bounds(suite)
    return suite


def suite_schema() -> dict[str, Any]:
    """The JSON schema of a suite file, for editors to complete and check suite YAML."""
    schema = SuiteFile.model_json_schema(schema_generator=_SchemaOfOverlappingUnions)
    return {"$schema": _SchemaOfOverlappingUnions.schema_dialect, **schema}


def _suite_path(name_or_path: str) -> Path:
    """The file of a suite given by name (suites/NAME.yaml) or path, suggesting close names for an unknown one."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise BenchError(
            f"unknown suite '{name_or_path}'{_did_you_mean(name_or_path, list_suites())}; suites: "
            f"{', '.join(list_suites())}, or a path to a YAML file"
        )
    return path


def _read(path: Path) -> dict[str, Any]:
    """The mapping a suite file holds, refusing a file that is not YAML, not a mapping, or too big once expanded."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise BenchError(f"suite file {path} is not valid YAML ({str(err).splitlines()[0]}); fix it") from None
    except (OSError, UnicodeDecodeError) as err:
        raise BenchError(f"suite file {path} cannot be read ({err}); fix it") from None
    except RecursionError:
        raise BenchError(f"suite file {path} is nested too deeply to read; flatten it") from None
    if not isinstance(raw, dict):
        raise BenchError(f"suite file {path} must be a mapping of suite fields (name, data, ...); see {EXAMPLE}")
    if expanded_size(raw) > MAX_SUITE_VALUES:
        raise BenchError(
            f"suite file {path} expands to more than {MAX_SUITE_VALUES:,} values once its YAML aliases are "
            "substituted (aliases of aliases, or one that contains itself); write the entries out or use fewer aliases"
        )
    return raw


def _did_you_mean(word: str, choices: list[str], prefix: str = "") -> str:
    """' (did you mean A, B?)' with the choices closest to a misspelt word, or nothing when none is close."""
    close = difflib.get_close_matches(word, choices, n=3)
    return f" (did you mean {', '.join(prefix + c for c in close)}?)" if close else ""


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


class SuiteSection(BaseModel):
    """One mapping of a suite file: strict types, a null value is a missing one, and unknown keys are refused once the
    known ones are fine (an unknown key is often a misspelt missing one)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    @model_validator(mode="wrap")
    @classmethod
    def _known_keys(cls, data: Any, handler: ModelWrapValidatorHandler[SuiteSection]) -> SuiteSection:
        """Validate the known keys, then refuse the unknown ones, naming the known ones for a suggestion."""
        if not isinstance(data, dict):
            return handler(data)
        section = handler({key: value for key, value in data.items() if key in cls.model_fields and value is not None})
        unknown = [key for key in data if key not in cls.model_fields]
        if unknown:
            raise PydanticCustomError(
                "unknown_fields", "unknown field(s)", {"names": unknown, "known": [*cls.model_fields]}
            )
        return section


def _problem(clause: str) -> PydanticCustomError:
    """A problem of a value, told as the clause that follows its key ("'<key>' <clause>")."""
    return PydanticCustomError("suite", clause)


def _instead(clause: str) -> WrapValidator:
    """Any problem of a value told as one clause, for values whose parts are best explained together."""

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise _problem(clause) from None

    return WrapValidator(validate)


def _int_as_text(value: Any) -> Any:
    """An integer where a name is expected (run 123, session 0) is that name."""
    return str(value) if type(value) is int else value


def _file_names(runs: list[str]) -> list[str]:
    """Run names become file names: refuse one that cannot be."""
    for run in runs:
        problem = file_name_problem(run)
        if problem:
            raise _problem(
                f"lists {run!r}, which {problem}; run names become file names: rename the run in the copick project"
            )
    return runs


def _named_step(step: dict[str, Any]) -> dict[str, Any]:
    """A post-processing step is a mapping with its registered name under 'step'."""
    if "step" not in step:
        raise _problem(f"needs a 'step' name (a registered post-processing step, bench list); see {EXAMPLE}")
    return step


def _increasing(fractions: list[float]) -> list[float]:
    """Each fraction larger than the one before."""
    if any(later <= earlier for earlier, later in itertools.pairwise(fractions)):
        raise _problem(f"is {fractions}; list the fractions in increasing order, each once, e.g. [0.25, 0.5, 0.75]")
    return fractions


class _SchemaOfOverlappingUnions(GenerateJsonSchema):
    """JSON schema whose unions are `anyOf`: a value may match several alternatives (an integer range is a range of
    numbers too); which one it is, is decided by the discriminator, not the schema."""

    def tagged_union_schema(self, schema: TaggedUnionSchema) -> JsonSchemaValue:
        """The alternatives as anyOf, not oneOf."""
        generated = super().tagged_union_schema(schema)
        if "oneOf" in generated:
            generated["anyOf"] = generated.pop("oneOf")
        return generated


def _folds_kind(value: Any) -> str:
    """Whether folds are named (leave-one-out) or listed."""
    return "listed" if isinstance(value, list) else "named"


def _space_kind(value: Any) -> str:
    """The kind of a tune search space: choices, integers (both bounds integers) or floats."""
    if isinstance(value, dict) and "choices" in value:
        return "choices"
    if isinstance(value, dict) and all(type(value.get(bound)) is int for bound in ("low", "high")):
        return "int"
    return "float"


#: a name that becomes part of a path: letters, digits, '.', '_' and '-', not starting with a symbol
Name = Annotated[str, Field(pattern=SAFE_NAME.pattern)]
Text = Annotated[str, BeforeValidator(_int_as_text, json_schema_input_type=str | int)]
Runs = Annotated[list[Text], Field(min_length=1), AfterValidator(_file_names)]
Seeds = Annotated[list[int], Field(min_length=1), _instead("must be a non-empty list of integers, e.g. [0, 1, 2]")]
LeaveOneOut = Annotated[Literal["leave-one-out"], _instead("is 'leave-one-out' or a list of train/val/test mappings")]
STEP_SCHEMA = {
    "type": "object",
    "required": ["step"],
    "properties": {"step": {"type": "string", "description": "a registered post-processing step (bench list)"}},
    "additionalProperties": True,
    "description": "a post-processing step: its name under 'step', its parameters beside it",
}
Step = Annotated[dict[str, Any], AfterValidator(_named_step), WithJsonSchema(STEP_SCHEMA)]
Fraction = Annotated[float, Field(gt=0, lt=1)]


class DataSection(SuiteSection):
    """Where the tomograms come from and which of them count."""

    synthetic: str = Field(description="the synthetic preset generated into the cache when `bench run` gets no --data")
    synthetic_seed: int = Field(DataSpec.synthetic_seed, description="the seed of the synthetic preset")
    tomo_type: str = Field(DataSpec.tomo_type, description="the copick tomogram type read")
    voxel_size: float = Field(DataSpec.voxel_size, description="Å; matched to the project's spacings within 1%")
    user_id: str = Field(DataSpec.user_id, description="the copick user id of the ground-truth picks")
    session_id: Text = Field(DataSpec.session_id, description="the copick session id of the ground-truth picks")


class SplitSection(SuiteSection):
    """Run names of the train, val (threshold tuning) and test (reported) splits: disjoint, each run listed once."""

    train: Runs = Field(description="the runs fitted on")
    val: Runs = Field(description="the runs thresholds (and every setting of the suite) are tuned on")
    test: Runs = Field(description="the runs scored and reported")


Folds = Annotated[
    Annotated[LeaveOneOut, Tag("named")] | Annotated[list[SplitSection], Tag("listed")], Discriminator(_folds_kind)
]


class BudgetSection(SuiteSection):
    """How long training may go, the same for every architecture."""

    minutes: float = Field(description="the wall-clock cap of every fit, from the call of fit to its return")
    epochs: int | None = Field(None, ge=1, description="the epoch bound of entries without their own `epochs`")
    grace_minutes: float = Field(
        Budget.grace_minutes, description="how long past a cap a job may run before it is stopped"
    )
    predict_minutes: float | None = Field(None, description="the cap of a job's predictions (default: minutes)")
    job_minutes: float | None = Field(
        None, description="the limit of a whole job from its launch, whatever its phase (default: none)"
    )
    train_seconds: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="the equal training time per learned row that a calibration sizes the epoch bounds to",
    )
    calibration: str | None = Field(
        None,
        min_length=1,
        description="the file (relative to the suite file's folder) holding the epoch bounds measured for "
        "train_seconds, written by bench calibrate; needs train_seconds",
    )

    @field_validator("calibration")
    @classmethod
    def _needs_train_seconds(cls, calibration: str, info: ValidationInfo) -> str:
        """A calibration sizes the epoch bounds to a training time: the budget must give it."""
        if info.data.get("train_seconds") is None:
            raise _problem("needs 'budget.train_seconds', the training time it sizes the epoch bounds to; add it")
        return calibration


class ComputeSection(SuiteSection):
    """The numerics every deep plug-in runs with."""

    precision: Literal[PRECISIONS] = Field(
        Compute.precision, description="auto: bf16 mixed precision on a GPU, fp32 on CPU"
    )
    deterministic: bool = Field(Compute.deterministic, description="deterministic kernels")
    cudnn_benchmark: bool = Field(
        Compute.cudnn_benchmark, description="cudnn's autotuner: faster convolutions, not deterministic"
    )


class LauncherSection(SuiteSection):
    """SLURM settings of every job when the suite runs with --launcher slurm (the time limit comes from the budget)."""

    partition: str | None = Field(None, description="the SLURM partition")
    account: str | None = Field(None, description="the SLURM account charged")
    gpus_per_job: int | None = Field(None, ge=0, description="default: 1 when the suite runs on cuda, else none")
    cpus_per_job: int | None = Field(None, ge=1, description="CPUs of each job")
    mem_gb: int | None = Field(None, ge=1, description="memory of each job, GB")
    sbatch: dict[str, Any] = Field({}, description="extra options, name: value (a flag: true), as #SBATCH --name=value")
    setup: list[str] = Field([], description="shell lines run before each job (modules, environments)")


class MetricSection(SuiteSection):
    """The metric's weights and hard types, checked against the project's particles."""

    weights: dict[Any, Any] = Field({}, description="particle name: weight >= 0 (default: the copick config's)")
    hard: list[Any] | None = Field(None, description="the names of the hard types (default: the copick config's)")

    @model_validator(mode="after")
    def _names(self) -> MetricSection:
        """Particle types are named by their copick names."""
        if not all(isinstance(name, str) for name in [*self.weights, *(self.hard or [])]):
            raise _problem("names particle types by their copick names (strings)")
        return self


class AblationVariant(SuiteSection):
    """More post-processing steps applied to an entry's candidates (no retraining), scored as `<label>+<name>`."""

    name: Name
    steps: list[Step]


class ArchitectureEntry(SuiteSection):
    """One architecture of the suite."""

    name: Name = Field(description="a registered architecture (bench list)")
    label: Name | None = Field(None, description="the name that keys its results (default: name); one per entry")
    config: dict[str, Any] = Field({}, description="the plug-in's config options")
    postprocess: list[Step] = Field([], description="post-processing steps applied to its candidates, in order")
    epochs: int | None = Field(None, ge=1, description="its epoch bound (default: budget.epochs)")
    ablation: list[AblationVariant] = Field([], description="variants scored beside it")


class FloatRange(SuiteSection):
    """A range of floats (with both bounds written as integers it is a range of integers: write 1.0, not 1)."""

    low: float
    high: float
    log: bool = Field(False, description="sample on a log scale (low > 0)")

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        """low below high, and above 0 on a log scale."""
        if not self.low < self.high or (self.log and self.low <= 0):
            raise _problem("needs low < high (and low > 0 with log: true)")
        return self


class IntRange(SuiteSection):
    """A range of integers: both bounds written as integers."""

    low: int
    high: int
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        """low below high."""
        if not self.low < self.high:
            raise _problem("needs low < high")
        return self


class Choices(SuiteSection):
    """A list of values to choose from."""

    choices: Annotated[list[Any], Field(min_length=1)]


SearchSpace = Annotated[
    Annotated[FloatRange, Tag("float")] | Annotated[IntRange, Tag("int")] | Annotated[Choices, Tag("choices")],
    Discriminator(_space_kind),
]


class SuiteFile(SuiteSection):
    """A suite file (suites/*.yaml): the data, split, budget, seeds and architectures of one comparison."""

    name: Name = Field(description="the suite's name; its results folder is named after it")
    description: str = Field("", description="what the suite compares, in a line")
    data: DataSection
    split: SplitSection
    folds: Folds = Field(
        [],
        description="more folds: leave-one-out (each run of the split in turn as test, the next one as val, the "
        "rest train) or a list of train/val/test mappings; named f1, f2, ...",
    )
    budget: BudgetSection
    seeds: Seeds = Field([0], description="the seeds every architecture runs with")
    device: str = Field("cpu", description="cpu or cuda")
    evaluate: Literal[EVALUATE] = Field("test", description="the split scored and reported: val for a selection suite")
    repeats: int | None = Field(None, ge=1, description="timed predictions per tomogram (default: 1 on CPU, 3 on GPU)")
    compute: ComputeSection = Field(default_factory=ComputeSection)
    launcher: LauncherSection = Field(default_factory=LauncherSection)
    metric: MetricSection = Field(default_factory=MetricSection)
    learning_curve: Annotated[list[Fraction], AfterValidator(_increasing)] = Field(
        [], description="fractions of each deep job's epoch bound where its val score is measured, e.g. [0.25, 0.5]"
    )
    tune: dict[str, dict[str, SearchSpace]] = Field(
        {},
        description="entry label: {config option: search space} for bench tune; a search space is {low, high, log} "
        "(floats), {low, high, step} (integers: both bounds written as integers) or {choices: [...]}",
    )
    architectures: Annotated[list[ArchitectureEntry], Field(min_length=1, description="the entries compared")]


def _suite(file: SuiteFile, path: Path) -> Suite:
    """The Suite a checked suite file describes, refusing what is inconsistent across its fields."""
    where = f"suite file {path}"
    check_seeds(file.seeds, f"{where}: 'seeds'")
    split, budget = _split(file.split), file.budget
    suite = Suite(
        name=file.name,
        path=path,
        description=file.description,
        data=DataSpec(**dict(file.data)),
        split=split,
        budget=Budget(
            minutes=budget.minutes,
            epochs=budget.epochs,
            grace_minutes=budget.grace_minutes,
            predict_minutes=budget.predict_minutes,
            job_minutes=budget.job_minutes,
        ),
        seeds=file.seeds,
        device=file.device,
        architectures=[_architecture(entry, where) for entry in file.architectures],
        folds={SPLIT_FOLD: split, **_folds(file.folds, split)},
        evaluate=file.evaluate,
        repeats=file.repeats,
        compute=Compute(**dict(file.compute)),
        launch=_launch(file.launcher, where),
        metric=Metric(weights=file.metric.weights, hard=file.metric.hard, source=f"{where}: 'metric'"),
        train_seconds=budget.train_seconds,
        calibration=None if budget.calibration is None else path.parent / budget.calibration,
        learning_curve=tuple(file.learning_curve),
        tune={label: {name: dict(space) for name, space in spaces.items()} for label, spaces in file.tune.items()},
    )
    _check(suite, where)
    return suite


def _check(suite: Suite, where: str) -> None:
    """Refuse folds sharing a run, kernels both autotuned and deterministic, a label twice and tuning of no entry."""
    for fold, fold_split in suite.folds.items():
        fold_split.check(f"{where}, " + ("split" if fold == SPLIT_FOLD else f"fold '{fold}'"))
    if suite.compute.deterministic and suite.compute.cudnn_benchmark:
        raise BenchError(
            f"{where}: 'compute.cudnn_benchmark' picks kernels that are not deterministic; set "
            "'compute.deterministic: false' with it, or leave it off"
        )
    labels = [a.label for a in suite.architectures]
    twice = sorted({n for n in labels if labels.count(n) > 1})
    if twice:
        raise BenchError(
            f"{where} lists '{twice[0]}' twice; results are keyed on the label, so give each entry a distinct 'label'"
        )
    for label in suite.tune:
        if label not in labels:
            raise BenchError(
                f"{where}: 'tune.{label}' names no entry{_did_you_mean(label, labels)}; tune is keyed on the labels "
                f"of the architectures: {', '.join(labels)}"
            )


def _split(section: SplitSection) -> Split:
    """A train/val/test split."""
    return Split(train=section.train, val=section.val, test=section.test)


def _folds(folds: str | list[SplitSection], split: Split) -> dict[str, Split]:
    """Extra folds, named f1, f2, ...: each run of the split in turn as test with the next one as val and the rest
    train (leave-one-out), or the listed ones."""
    if folds == "leave-one-out":
        runs = split.runs()
        splits = [
            Split(train=[r for r in runs if r not in (test, val)], val=[val], test=[test])
            for test, val in zip(runs, runs[1:] + runs[:1], strict=True)
        ]
    else:
        splits = [_split(section) for section in folds]
    return {f"f{i + 1}": fold for i, fold in enumerate(splits)}


def _architecture(entry: ArchitectureEntry, where: str) -> ArchitectureSpec:
    """One entry of the architectures list, refusing an ablation variant named twice."""
    spec = ArchitectureSpec(
        name=entry.name,
        label=entry.label or entry.name,
        config=entry.config,
        postprocess=entry.postprocess,
        epochs=entry.epochs,
        ablation=[{"name": variant.name, "steps": variant.steps} for variant in entry.ablation],
    )
    names = [variant["name"] for variant in spec.ablation]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise BenchError(f"{where}: '{spec.label}' lists ablation variant '{twice[0]}' twice; rename one")
    return spec


def _launch(section: LauncherSection, where: str) -> Launch:
    """The SLURM settings of every job."""
    return Launch(
        partition=section.partition,
        account=section.account,
        gpus_per_job=section.gpus_per_job,
        cpus_per_job=section.cpus_per_job,
        mem_gb=section.mem_gb,
        sbatch=sbatch_options(section.sbatch, f"{where}: 'launcher.sbatch'"),
        setup=section.setup,
    )


#: what a value of each pydantic type error should have been
KINDS = {
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
#: the messages of pydantic's other problems that need only the key and the value
MESSAGES = {
    "missing": "missing field '{key}'; add it (see {example})",
    "too_short": "'{key}' is empty; list at least one (see {example})",
    "finite_number": "'{key}' must be a finite number, not {value}",
    "string_pattern_mismatch": "'{key}' is {value!r}; use letters, digits, '.', '_' and '-' only, starting with a "
    "letter or digit",
}
#: the bounds of numbers, as a sentence says them: a few by name, the others by their limit
BOUNDS = {
    ("greater_than", 0): "a positive number",
    ("greater_than_equal", 0): "0 or more",
    ("greater_than_equal", 1): "a positive integer",
}
LIMITS = {
    "greater_than": "more than {:g}",
    "greater_than_equal": "{:g} or more",
    "less_than": "less than {:g}",
    "less_than_equal": "{:g} or less",
}


def _one_line(error: ValidationError, raw: dict[str, Any], path: Path) -> BenchError:
    """The first problem of a suite file as one line naming the file, the key and the fix; unknown keys only when
    no known key has a problem."""
    problems = error.errors()
    first = next((p for p in problems if p["type"] != "unknown_fields"), problems[0])
    return BenchError(f"suite file {path}: {_explain(first, _key(first, raw))}")


def _key(problem: dict[str, Any], raw: dict[str, Any]) -> str:
    """Where a problem is, as the file writes it (`architectures[2].epochs`), without pydantic's union tags: the
    parts of its location that are not in the file, but for a missing key."""
    key, node, loc = "", raw, problem["loc"]
    for i, part in enumerate(loc):
        if isinstance(node, list) and type(part) is int and 0 <= part < len(node):
            key, node = f"{key}[{part}]", node[part]
        elif isinstance(node, dict) and part in node:
            key, node = _dotted(key, part), node[part]
        elif i == len(loc) - 1 and problem["type"] == "missing":
            key = _dotted(key, part)
    return key


def _dotted(key: str, part: Any) -> str:
    """A key of a mapping at `key`."""
    return f"{key}.{part}" if key else str(part)


def _explain(problem: dict[str, Any], key: str) -> str:
    """What is wrong at `key`, and the fix."""
    kind, value, context = problem["type"], problem.get("input"), problem.get("ctx", {})
    if kind in MESSAGES:
        return MESSAGES[kind].format(key=key, value=value, example=EXAMPLE)
    if kind in KINDS:
        return f"field '{key}' has the wrong type ({value!r}); it takes {KINDS[kind]}{_number_hint(value)}"
    if kind in LIMITS:
        limit = next(iter(context.values()))
        return f"'{key}' must be {BOUNDS.get((kind, limit)) or LIMITS[kind].format(limit)}, not {value}"
    if kind == "literal_error":
        return f"'{key}' is {value!r}; use {context['expected'].replace(chr(39), '')}"
    if kind == "unknown_fields":
        return _unknown(key, context["names"], context["known"])
    if kind == "suite":
        return f"'{key}' {problem['msg']}"
    return f"'{key}': {problem['msg']} (bench suite schema prints what each key takes)"


def _unknown(section: str, names: list[Any], known: list[str]) -> str:
    """Unknown keys of a section, each with the closest known key when one is close, and the known keys."""
    prefix = f"{section}." if section else ""
    listed = ", ".join(f"{prefix}{name}{_did_you_mean(str(name), known, prefix)}" for name in names)
    return f"unknown field(s) {listed}; {f'{section!r}' if section else 'a suite file'} takes {', '.join(known)}"


def _number_hint(value: Any) -> str:
    """For a number in e-notation without a point, which YAML reads as text: how to write it."""
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d+[eE][-+]?\d+", value):
        mantissa, exponent = re.split("[eE]", value)
        return f" (YAML reads {value} as text: write {mantissa}.0e{exponent})"
    return ""


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
