"""Safe writes: atomic (a reader or an interrupted run never sees a half-written file) and inside their root."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from tempfile import NamedTemporaryFile
from typing import TYPE_CHECKING

import pandas as pd

from benchmark.errors import BenchError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _umask() -> int:
    """This process's umask (reading it means setting it: set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FIGURE_DPI = 120
FILE_MODE = 0o666 & ~_umask()  # the mode open() gives a new file under this process's umask
NAME_MAX = 255  # bytes in a file name on the common file systems, when the file system does not say
#: names of suites, architectures, labels and post-processing steps: they become folder names.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def file_name_problem(name: str) -> str | None:
    """Why a name taken from the user's data (a run's) cannot be a file name, or None: any other name is kept as it
    is, non-ASCII included."""
    if name in ("", ".", ".."):
        return "is not a file name"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        return "contains a control character"
    return None


def name_limit(path: Path) -> int:
    """The longest file name, in bytes, that the file system holding `path` (or its nearest existing folder) takes."""
    for folder in [Path(path), *Path(path).resolve().parents]:
        if folder.exists():
            try:
                return os.pathconf(folder, "PC_NAME_MAX")
            except (OSError, ValueError):
                break
    return NAME_MAX


def inside(root: Path, *parts: str) -> Path:
    """`root` joined with `parts`, refused unless the resolved path stays inside the resolved root."""
    path = Path(root, *parts)
    if not path.resolve().is_relative_to(Path(root).resolve()):
        raise BenchError(f"'{Path(*parts)}' would write outside {root}; names must be plain folder names")
    return path


def write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary sibling (a short name, whatever the length of `path`'s), then rename it over `path`; a
    failure (a full disk) removes the temporary file and is one line naming the file."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with NamedTemporaryFile("wb", dir=path.parent, prefix=".", suffix=".tmp", delete=False) as handle:
            tmp = Path(handle.name)
            handle.write(data)
        tmp.chmod(FILE_MODE)  # a temporary file is private (0600); the file it becomes is as open() would make it
        tmp.replace(path)
    except OSError as err:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise BenchError(
            f"cannot write {path} ({err.strerror or err}); make its folder writable or free space"
        ) from None


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (see write_bytes)."""
    write_bytes(path, text.encode())


def write_figure(path: Path, figure: Figure) -> None:
    """Save a matplotlib figure as a PNG atomically (see write_bytes)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    write_bytes(path, buffer.getvalue())


def write_json(path: Path, data: object) -> None:
    """Write pretty JSON atomically."""
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_csv(path: Path, table: pd.DataFrame) -> None:
    """Write a CSV (no index) atomically."""
    write_text(path, table.to_csv(index=False))
