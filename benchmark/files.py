"""Safe writes: atomic (a reader or an interrupted run never sees a half-written file) and inside their root."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd

from benchmark.errors import BenchError

#: names of suites, architectures, labels and post-processing steps: they become folder names.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def inside(root: Path, *parts: str) -> Path:
    """`root` joined with `parts`, refused unless the resolved path stays inside the resolved root."""
    path = Path(root, *parts)
    if not path.resolve().is_relative_to(Path(root).resolve()):
        raise BenchError(f"'{Path(*parts)}' would write outside {root}; names must be plain folder names")
    return path


def write_text(path: Path, text: str) -> None:
    """Write text to a temporary sibling, then rename it over `path`; a failure is one line naming the file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        tmp.replace(path)
    except OSError as err:
        raise BenchError(
            f"cannot write {path} ({err.strerror or err}); make its folder writable or free space"
        ) from None


def write_json(path: Path, data: object) -> None:
    """Write pretty JSON atomically."""
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_csv(path: Path, table: pd.DataFrame) -> None:
    """Write a CSV (no index) atomically."""
    write_text(path, table.to_csv(index=False))
