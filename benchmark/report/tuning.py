"""The report of a `bench tune` folder: every trial of every architecture, the choice, and a slice plot per study
(val score against each searched option, Optuna's)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import optuna
import pandas as pd
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from benchmark.errors import BenchError
from benchmark.files import write_figure, write_text
from benchmark.report.markdown import table
from benchmark.tune import RECORD, STUDY, TRIALS, TUNED

matplotlib.use("Agg")


def is_tuning(folder: Path) -> bool:
    """Whether a folder is one `bench tune` made."""
    return (folder / RECORD).is_file()


def tuning_report(folder: Path, out: Path) -> list[Path]:
    """Write README.md and one slice plot per architecture for a tuning folder into `out`."""
    record = json.loads((folder / RECORD).read_text())
    if not (folder / TRIALS).is_file():
        raise BenchError(f"{folder} has no {TRIALS}: the tuning has not finished; resume it: bench tune "
                         f"--suite {record['suite']} --resume {folder}")  # fmt: skip
    trials = pd.read_csv(folder / TRIALS)
    written, lines = [], _heading(folder, record, trials)
    for label, rows in trials.groupby("architecture", sort=False):
        figure = slice_figure(folder, str(label))
        name = f"slice_{label}.png"
        if figure is not None:
            write_figure(out / name, figure)
            written.append(out / name)
        lines += _section(str(label), rows, name if figure is not None else None)
    write_text(out / "README.md", "\n".join(lines) + "\n")
    return [*written, out / "README.md"]


def slice_figure(folder: Path, label: str):
    """Optuna's slice plot of one study (val score against each option, a point per finished trial), or None
    before any trial completed."""
    study = optuna.load_study(study_name=label, storage=f"sqlite:///{(folder / STUDY).resolve()}")
    if not any(t.state.name == "COMPLETE" for t in study.trials):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        axes = optuna.visualization.matplotlib.plot_slice(study, target_name="val competition score")
    figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
    for axis in figure.axes:
        if axis.get_xscale() == "log":  # plain tick labels: matplotlib's 2x10^-3 labels run together
            low, high = axis.get_xlim()  # three ticks evenly spaced on the log axis, at two significant figures
            axis.xaxis.set_major_locator(FixedLocator([float(f"{v:.2g}") for v in np.geomspace(low, high, 5)[1:-1]]))
            axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            axis.xaxis.set_minor_formatter(NullFormatter())
            axis.tick_params(axis="x", labelrotation=30)
    figure.suptitle(f"{label}: val score against each searched option ({len(study.trials)} trials)")
    return figure


def _heading(folder: Path, record: dict, trials: pd.DataFrame) -> list[str]:
    """The title, what ran and the cost."""
    hours = trials["seconds"].sum() / 3600
    return [
        f"# Tuning of suite `{record['suite']}`",
        "",
        f"`bench tune --suite {record['suite']} --trials {record['trials']}` on {record['device']}, seed "
        f"{record['seed']}, started {record['started']}; results in `{folder}`. Each architecture had "
        f"{record['trials']} trials (TPE, median pruner on the learning-curve points), each trained for the "
        "architecture's calibrated epoch bound and scored on val at thresholds tuned on val; test runs were never "
        f"read. {len(trials)} trials took {hours:.2f} h in all. The chosen configs are in `{TUNED}`.",
        "",
    ]


def _section(label: str, rows: pd.DataFrame, plot: str | None) -> list[str]:
    """One architecture's trials, best first, and its slice plot."""
    rows = rows.sort_values("val_score", ascending=False, na_position="last")
    header = ["Trial", "State", "Val score", "Options", "Pruned after epoch", "Training (s)", "Trial (s)"]
    body = [
        [
            str(int(r.trial)),
            r.state.lower(),
            _number(r.val_score, ".3f"),
            ", ".join(f"{k}={_short(v)}" for k, v in json.loads(r.params).items()),
            _number(r.pruned_at, ".0f"),
            _number(r.train_seconds, ".0f"),
            _number(r.seconds, ".0f"),
        ]
        for r in rows.itertuples()
    ]
    complete = rows[rows["state"] == "COMPLETE"]
    lines = [f"## {label}", ""]
    if len(complete):
        chosen = complete.iloc[0]
        lines += [f"Chosen: trial {int(chosen['trial'])}, val {chosen['val_score']:.3f}.", ""]
    lines += [table(body, header), ""]
    return lines + ([f"![{label}]({plot})", ""] if plot else [])


def _number(value: float, spec: str) -> str:
    """A number, or a dash where there is none."""
    return "-" if pd.isna(value) else format(value, spec)


def _short(value: object) -> str:
    """A param value in a few characters."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)
