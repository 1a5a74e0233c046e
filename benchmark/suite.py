"""Suites: data files in suites/ that fix the data, split, budget, seeds and architectures of a comparison."""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmark.conventions import CZII_VOXEL_SIZE, DEFAULT_TOMO_TYPE, GROUND_TRUTH
from benchmark.errors import BenchError
from benchmark.interface import Budget

SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"
EXAMPLE = "suites/smoke.yaml"


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


@dataclass(frozen=True)
class ArchitectureSpec:
    """One architecture of a suite: its registered name, config and post-processing steps."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    postprocess: list[dict[str, Any]] = field(default_factory=list)


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

    @property
    def sha256(self) -> str:
        """Hash of the suite file's bytes, recorded in the manifest."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def select(self, pattern: str | None) -> list[ArchitectureSpec]:
        """The architectures whose names match a wildcard pattern (all when None)."""
        if pattern is None:
            return self.architectures
        chosen = [a for a in self.architectures if fnmatch.fnmatchcase(a.name, pattern)]
        if not chosen:
            names = [a.name for a in self.architectures]
            close = difflib.get_close_matches(pattern, names, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise BenchError(
                f"no architecture of suite '{self.name}' matches '{pattern}'{hint}; it has: {', '.join(names)}"
            )
        return chosen


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
    return _parse(raw, path)


def _parse(raw: Any, path: Path) -> Suite:
    """Build a Suite, naming the first missing or unknown field."""
    reader = _Fields(raw, path, "")
    data = reader.section("data")
    split = reader.section("split")
    budget = reader.section("budget")
    suite = Suite(
        name=reader.get("name", str),
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
        split=Split(train=split.names("train"), val=split.names("val"), test=split.names("test")),
        budget=Budget(epochs=budget.get("epochs", int, None), minutes=budget.get("minutes", float, None)),
        seeds=reader.seeds("seeds"),
        device=reader.get("device", str, "cpu"),
        architectures=[_architecture(entry, path, i) for i, entry in enumerate(reader.get("architectures", list))],
    )
    for section in (reader, data, split, budget):
        section.refuse_unknown()
    if not suite.architectures:
        raise BenchError(f"suite file {path}: 'architectures' is empty; list at least one (see {EXAMPLE})")
    names = [a.name for a in suite.architectures]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise BenchError(
            f"suite file {path} lists architecture '{twice[0]}' twice; results are keyed on the name, "
            "so keep one entry (or copy the suite to compare two configurations)"
        )
    return suite


def _architecture(entry: Any, path: Path, index: int) -> ArchitectureSpec:
    """Parse one entry of the architectures list."""
    reader = _Fields(entry, path, f"architectures[{index}].")
    spec = ArchitectureSpec(
        name=reader.get("name", str),
        config=reader.get("config", dict, {}),
        postprocess=reader.get("postprocess", list, []),
    )
    reader.refuse_unknown()
    for step in spec.postprocess:
        if not isinstance(step, dict) or "step" not in step:
            raise BenchError(
                f"suite file {path}: each postprocess entry of '{spec.name}' needs a 'step' name; see {EXAMPLE}"
            )
    return spec


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
        """A non-empty list of run names."""
        value = [str(v) for v in self.get(key, list)]
        if not value:
            raise BenchError(f"suite file {self.path}: '{self.prefix}{key}' is empty; list at least one run")
        return value

    def seeds(self, key: str) -> list[int]:
        """A non-empty list of integer seeds."""
        value = self.get(key, list, [0])
        if not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise BenchError(
                f"suite file {self.path}: '{self.prefix}{key}' must be a non-empty list of integers, e.g. [0, 1, 2]"
            )
        return value

    def refuse_unknown(self) -> None:
        """Unknown keys are typos until proven otherwise."""
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            raise BenchError(f"suite file {self.path}: unknown field(s) {', '.join(self.prefix + k for k in unknown)}")
