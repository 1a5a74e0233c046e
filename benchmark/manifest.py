"""The shape of a results folder's manifest: the fields the harness reads back, checked with pydantic so that a
damaged manifest is named in one line rather than failing later in a traceback. Other fields are kept as they are."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class _Record(BaseModel):
    """A mapping with these fields at least."""

    model_config = ConfigDict(extra="allow")


class SuiteRecord(_Record):
    name: str
    path: str
    sha256: str
    description: str = ""


class DataRecord(_Record):
    config: str
    synthetic: bool = False
    tomo_type: str
    voxel_size: float
    ground_truth: list[str]


class SplitRecord(_Record):
    train: list[str]
    val: list[str]
    test: list[str]


class GitRecord(_Record):
    commit: str | None = None
    short: str | None = None
    dirty: bool | None = None


class EnvironmentRecord(_Record):
    git: GitRecord
    device_name: str | None = None
    num_threads: int | None = None


class JobRecord(_Record):
    status: str
    error: str | None = None
    environment: dict[str, Any] | None = None


class BudgetRecord(_Record):
    minutes: float
    epochs: int | None = None
    grace_minutes: float = 1.0
    predict_minutes: float | None = None


class ComputeRecord(_Record):
    precision: str
    deterministic: bool
    cudnn_benchmark: bool


class SlotRecord(_Record):
    shared: bool = False


class LaunchRecord(_Record):
    launcher: str
    jobs: int
    slots: list[SlotRecord]


class OptionsRecord(BaseModel):
    """What the run was asked for besides its suite file (run_options.RunOptions): a resume runs with exactly these."""

    model_config = ConfigDict(extra="forbid", strict=True)
    data: str | None
    arch: str | None
    device: str
    seeds: list[int]
    write_picks: bool
    keep_models: bool = True  # recorded since bench run --no-keep-models: an older run kept its models


class Manifest(_Record):
    suite: SuiteRecord
    data: DataRecord
    split: SplitRecord
    folds: dict[str, SplitRecord] = {}
    evaluate: str = "test"
    budget: BudgetRecord
    epoch_bounds: dict[str, int | None] = {}
    repeats: int = 1
    seeds: list[int]
    device: str
    compute: ComputeRecord | None = None
    environment: EnvironmentRecord
    command: str = ""
    created: str = ""
    finished: str | None = None
    jobs: dict[str, JobRecord]
    launches: list[LaunchRecord] = []
    options: OptionsRecord | None = None


def manifest_problem(raw: Any) -> str | None:
    """What is wrong with a parsed manifest (its first problem, with the field), or None."""
    try:
        Manifest.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(map(str, first["loc"])) or "the file"
        return f"missing {field}" if first["type"] == "missing" else f"{field}: {first['msg']}"
    return None
