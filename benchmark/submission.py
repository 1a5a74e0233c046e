"""The competition's CSV formats: submissions (id, experiment, particle_type, x, y, z) and solutions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.coords import XYZ
from benchmark.errors import BenchError
from benchmark.files import write_csv

SOLUTION_COLUMNS = ["experiment", "particle_type", *XYZ]
#: the largest coordinate taken, in Å (10 cm: no tomogram is larger; the metric's squared distances overflow past
#: about 1e154 Å)
MAX_ANGSTROM = 1e9


def write_submission(picks: pd.DataFrame, path: str | Path) -> None:
    """Write picks (experiment, particle_type, x, y, z in Å) as a competition submission, atomically."""
    table = picks[SOLUTION_COLUMNS].reset_index(drop=True)
    table.insert(0, "id", range(len(table)))
    write_csv(Path(path), table)


def read_table(path: str | Path, columns: list[str], what: str) -> pd.DataFrame:
    """Read a competition CSV, checking that it has the columns and numeric Å coordinates."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{what} file '{path}' not found; pass the path to a competition-format CSV")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise BenchError(f"{what} file '{path}' is not a readable CSV ({err}); fix the file") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise BenchError(f"{what} file '{path}' lacks column(s) {', '.join(missing)}; expected {','.join(columns)}")
    table = table[columns].copy()
    try:
        table[XYZ] = table[XYZ].astype(float)
    except ValueError:
        raise BenchError(f"{what} file '{path}' has non-numeric x, y or z values; fix the file") from None
    far = ~(table[XYZ].abs() <= MAX_ANGSTROM).all(axis=1)  # NaN compares false: caught here too
    if far.any():
        row = int(far.to_numpy().argmax())
        values = ", ".join(f"{value:g}" for value in table[XYZ].iloc[row])
        raise BenchError(
            f"{what} file '{path}' row {row + 1} has (x, y, z) = ({values}), not a position in a tomogram in Å "
            f"(finite, within {MAX_ANGSTROM:g}); fix the file"
        )
    table["experiment"] = table["experiment"].astype(str)
    table["particle_type"] = table["particle_type"].astype(str)
    return table


def read_submission(path: str | Path) -> pd.DataFrame:
    """Read a submission CSV (the id column is optional)."""
    return read_table(path, SOLUTION_COLUMNS, "submission")


def read_solution(path: str | Path) -> pd.DataFrame:
    """Read a solution CSV (experiment, particle_type, x, y, z)."""
    return read_table(path, SOLUTION_COLUMNS, "solution")
