"""Atomic writes: a reader (or an interrupted run) never sees a half-written file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd


def write_text(path: Path, text: str) -> None:
    """Write text to a temporary sibling, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_json(path: Path, data: object) -> None:
    """Write pretty JSON atomically."""
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_csv(path: Path, table: pd.DataFrame) -> None:
    """Write a CSV (no index) atomically."""
    write_text(path, table.to_csv(index=False))
