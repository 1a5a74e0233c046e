"""Calibration files: the epoch bounds that give every learned entry of a suite the same training time on a reference
machine, written there by `bench calibrate` and read by the suite that names the file (`budget.calibration`).

Runs elsewhere train the same epochs, so their scores reproduce whatever the machine's speed; only on the reference
machine (recorded in the file) do the rows get equal seconds. A suite reads its entries' bounds from the file, and
refuses an entry whose architecture or config changed since (its fingerprint), a hand-set bound on a calibrated
entry, and a file made for another training time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from benchmark.errors import BenchError

if TYPE_CHECKING:
    from benchmark.suite import ArchitectureSpec, Suite

HEADER = "# Written by `{command}`; do not edit: run it again on the reference machine.\n"


def fingerprint(name: str, config: dict[str, Any]) -> str:
    """What a calibration was measured for: the architecture and its config (a changed one needs a new one)."""
    text = json.dumps({"name": name, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def epochs_for(seconds: float, fixed: float, epoch: float) -> int:
    """The epoch bound whose training time (`fixed` seconds: set-up, the first epoch, learning-curve points; then
    `epoch` each) is nearest `seconds`."""
    return max(1, 1 + round((seconds - fixed) / epoch))


def write_calibration(path: Path, command: str, content: dict[str, Any]) -> None:
    """Write a calibration file: the command that made it, then its YAML."""
    path.write_text(HEADER.format(command=command) + yaml.safe_dump(content, sort_keys=False))


def read_calibration(path: Path, suite: str) -> dict[str, Any]:
    """A calibration file's content; a missing or damaged one is refused in one line."""
    again = f"run: bench calibrate --suite {suite} (on the reference machine)"
    try:
        content = yaml.safe_load(path.read_text())
    except OSError as err:
        raise BenchError(f"calibration {path} cannot be read ({err.strerror or err}); {again}") from None
    except yaml.YAMLError as err:
        raise BenchError(f"calibration {path} is damaged ({str(err).splitlines()[0]}); {again}") from None
    if not isinstance(content, dict) or not isinstance(content.get("entries"), dict):
        raise BenchError(f"calibration {path} is damaged (no entries); {again}")
    return content


def calibrated(suite: Suite) -> Suite:
    """The suite with its calibrated entries' epoch bounds, and those of ensemble members equal to them, from its
    calibration file."""
    content = read_calibration(suite.calibration, suite.name)
    again = f"run: bench calibrate --suite {suite.name}"
    if content.get("train_seconds") != suite.train_seconds:
        raise BenchError(
            f"calibration {suite.calibration} was made for {content.get('train_seconds')} s of training, the suite "
            f"asks for {suite.train_seconds} s; {again}"
        )
    specs = {spec.label: spec for spec in suite.architectures}
    bounds: dict[tuple[str, str], int] = {}
    for label, entry in content["entries"].items():
        spec = specs.get(label)
        if spec is None or entry.get("fingerprint") != fingerprint(spec.name, spec.config):
            what = "is no longer in the suite" if spec is None else "changed since it was calibrated"
            raise BenchError(f"calibration {suite.calibration}: entry {label} {what}; {again}")
        if spec.epochs is not None:
            raise BenchError(
                f"suite {suite.name}: entry {label} sets epochs {spec.epochs}, but its bound comes from calibration "
                f"{suite.calibration}; remove its epochs"
            )
        bounds[(spec.name, entry["fingerprint"])] = int(entry["epochs"])
    entries = [
        replace(spec, epochs=int(content["entries"][spec.label]["epochs"]))
        if spec.label in content["entries"]
        else _with_member_bounds(spec, bounds)
        for spec in suite.architectures
    ]
    return replace(suite, architectures=entries)


def calibration_record(suite: Suite) -> dict[str, Any] | None:
    """What a run's manifest keeps of its suite's calibration: the time, the file, where and when it was measured."""
    if suite.calibration is None:
        return None
    content = read_calibration(suite.calibration, suite.name)
    return {"train_seconds": suite.train_seconds, "file": str(suite.calibration),
            **{key: content.get(key) for key in ("measured", "git", "machine")}}  # fmt: skip


def _with_member_bounds(spec: ArchitectureSpec, bounds: dict[tuple[str, str], int]) -> ArchitectureSpec:
    """An entry whose members (an ensemble's config `members`) without an epoch bound take their calibrated one."""
    members = spec.config.get("members")
    if not isinstance(members, list):
        return spec
    filled = [
        {**m, "epochs": bounds[key]}
        if isinstance(m, dict)
        and m.get("epochs") is None
        and (key := (m.get("name"), fingerprint(m.get("name"), m.get("config") or {}))) in bounds
        else m
        for m in members
    ]
    return replace(spec, config={**spec.config, "members": filled})
