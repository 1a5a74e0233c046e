"""Formatting of report cells and tables: numbers in, markdown text out."""

from __future__ import annotations

import json

import pandas as pd


def mean_std(values: pd.Series, digits: int = 3) -> str:
    """'mean' for one run, 'mean ± std' for several."""
    values = values.dropna().astype(float)
    if values.empty:
        return "n/a"
    if len(values) == 1:
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def median_iqr(medians: pd.Series, iqrs: pd.Series, digits: int) -> str:
    """A median with its IQR (one run), or the mean ± std of the medians over runs."""
    if len(medians.dropna()) != 1:
        return mean_std(medians, digits)
    iqr = iqrs.dropna()
    return f"{medians.dropna().iloc[0]:.{digits}f}" + (f" ± {iqr.iloc[0]:.{digits}f}" if len(iqr) else "")


def interval(low: float, high: float, signed: bool = False) -> str:
    """An interval as '[low, high]'."""
    sign = "+" if signed else ""
    return f"[{low:{sign}.3f}, {high:{sign}.3f}]"


def steps(stored: str) -> str:
    """A variant's steps (stored as JSON) as `name(param=value, ...)` in order."""
    parts = []
    for step in json.loads(stored):
        params = ", ".join(f"{k}={v}" for k, v in step.items() if k != "step")
        parts.append(f"`{step['step']}({params})`")
    return " → ".join(parts) or "none"


def table(rows: list[list[str]], header: list[str]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
