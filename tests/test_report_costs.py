"""The report's costs of training: every row at the training it cost (an ensemble at its members' sum, reused or not),
learning curves of val score against training seconds, and the curves' evaluation time among the job's overheads,
from a small results folder written here (no job runs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.report import build_report
from benchmark.report.costs import overhead_table
from benchmark.report.curves import END, Pace, curve_points
from benchmark.report.document import Report
from benchmark.results import TABLES, ResultsStore
from metrics.fbeta import BETA, f_beta

SPLIT = {"train": ["TS_6_4", "TS_73_6"], "val": ["TS_86_3"], "test": ["TS_5_4", "TS_69_2"]}
PARTICLES = ["apo-ferritin", "ribosome"]
REFERENCES = 10  # per tomogram and type
SEEDS = (0, 1)
#: per row: the share of references it finds, its own fit's seconds and the seconds of the members it reused
ROWS = {
    "matched-filter": (0.3, 15.0, 0.0),
    "unet3d": (0.7, 80.0, 0.0),
    "yolov8": (0.5, 100.0, 0.0),
    "ensemble": (0.8, 10.0, 180.0),  # reused unet3d (80 s) and yolov8 (100 s): 190 s of training in all
}
#: per deep row: its epoch bound and its (epochs, training seconds, mean val score) at each curve point
CURVES = {
    "unet3d": (4, [(1, 20.0, 0.3), (2, 40.0, 0.5), (4, 80.0, 0.6)]),
    "yolov8": (10, [(2, 25.0, 0.2), (5, 50.0, 0.3), (10, 100.0, 0.5)]),  # slower, but still climbing faster at its end
}


def write_results(folder: Path, curves: bool = True) -> ResultsStore:
    """A finished results folder of the four rows, two seeds, one fold; with `curves`, the deep rows' learning
    curves and their evaluation seconds, else as results from before curves were kept (no curves.csv, no
    curve_seconds column)."""
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(_manifest()))
    counts = pd.DataFrame([row for arch in ROWS for seed in SEEDS for row in _counts(arch, seed)])
    tables = {
        "counts": counts,
        "matches": _matches(counts),
        "scores": _scores(counts),
        "thresholds": _thresholds(),
        "latency": _latency(),
        "resources": _resources(curves),
        **({"curves": _curves()} if curves else {}),
    }
    for name, frame in tables.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    return ResultsStore(folder)


def _manifest() -> dict:
    """A manifest with the fields a report reads."""
    git = {"commit": "0" * 40, "short": "0000000", "dirty": False}
    environment = {"git": git, "device_name": "test CPU", "num_threads": 2, "libraries": {"torch": "2"}}
    jobs = {f"{arch}-seed{seed}-ts": {"architecture": arch, "seed": seed, "fold": "ts", "status": "ok",
                                      "environment": environment} for arch in ROWS for seed in SEEDS}  # fmt: skip
    return {
        "suite": {"name": "costs", "path": "costs.yaml", "sha256": "0"},
        "data": {
            "config": "copick.json",
            "tomo_type": "denoised",
            "voxel_size": 10.012,
            "ground_truth": ["curation", "0"],
        },
        "split": SPLIT,
        "folds": {"ts": SPLIT},
        "budget": {"minutes": 5.0, "epochs": None, "grace_minutes": 1.0},
        "epoch_bounds": {arch: 4 for arch in ROWS},
        "entries": {arch: {"architecture": arch, "differences": {}} for arch in ROWS},
        "particles": [{"name": name, "radius": 60.0, "weight": 1.0, "hard": False} for name in PARTICLES],
        "repeats": 1,
        "seeds": list(SEEDS),
        "device": "cpu",
        "compute": {"precision": "fp32", "deterministic": True, "cudnn_benchmark": False},
        "environment": environment,
        "created": "2026-12-03T00:00:00+00:00",
        "finished": "2026-12-03T01:00:00+00:00",
        "jobs": jobs,
    }


def _counts(arch: str, seed: int) -> list[dict]:
    """One job's counts per split, tomogram and type: it finds about its share of the references."""
    share = ROWS[arch][0]
    rows = []
    for split in ("val", "test"):
        for i, run in enumerate(SPLIT[split]):
            for j, particle in enumerate(PARTICLES):
                tp = int(np.clip(round(share * REFERENCES) + (seed + i + j) % 3 - 1, 0, REFERENCES))
                fp = 2 + (seed + j) % 2
                rows.append({"architecture": arch, "seed": seed, "fold": "ts", "split": split, "run": run,
                             "particle_type": particle, "references": REFERENCES, "candidates": tp + fp, "tp": tp,
                             "fp": fp, "fn": REFERENCES - tp})  # fmt: skip
    return rows


def _matches(counts: pd.DataFrame) -> pd.DataFrame:
    """Per reference: the first `tp` of each tomogram and type were found."""
    rows = [{**row[["architecture", "seed", "fold", "split", "run", "particle_type"]].to_dict(), "reference": k,
             "matched": int(k < row["tp"])} for _, row in counts.iterrows() for k in range(REFERENCES)]  # fmt: skip
    return pd.DataFrame(rows)


def _scores(counts: pd.DataFrame) -> pd.DataFrame:
    """Per job and split: each type's scores from its pooled counts, and the weighted F4 (equal weights)."""
    pooled = counts.groupby(["architecture", "seed", "fold", "split", "particle_type"])[["tp", "fp", "fn"]].sum()
    precision = pooled["tp"] / (pooled["tp"] + pooled["fp"])
    recall = pooled["tp"] / (pooled["tp"] + pooled["fn"])
    per_type = pooled.assign(precision=precision, recall=recall, f1=f_beta(precision, recall, 1),
                             f4=f_beta(precision, recall, BETA)).reset_index()  # fmt: skip
    weighted = per_type.groupby(["architecture", "seed", "fold", "split"])[["f4", "tp", "fp", "fn"]].agg(
        {"f4": "mean", "tp": "sum", "fp": "sum", "fn": "sum"}
    )
    return pd.concat([per_type, weighted.reset_index().assign(particle_type="weighted")])[TABLES["scores"]]


def _thresholds() -> pd.DataFrame:
    """A frozen threshold per job and type."""
    rows = [{"architecture": arch, "seed": seed, "fold": "ts", "particle_type": particle, "threshold": 0.5,
             "val_f4": 0.5, "references": REFERENCES, "oracle_threshold": 0.5, "oracle_f4": 0.6}
            for arch in ROWS for seed in SEEDS for particle in PARTICLES]  # fmt: skip
    return pd.DataFrame(rows)


def _latency() -> pd.DataFrame:
    """One timed prediction per job and test tomogram."""
    rows = [{"architecture": arch, "seed": seed, "fold": "ts", "run": run, "repeat": 0, "z_slices": 50,
             "read_seconds": 0.1, "model_seconds": 1.0, "postprocess_seconds": 0.01, "total_seconds": 1.11}
            for arch in ROWS for seed in SEEDS for run in SPLIT["test"]]  # fmt: skip
    return pd.DataFrame(rows)


def _resources(curves: bool) -> pd.DataFrame:
    """One row per job; an ensemble's train_seconds holds its own fit and its reused members' training, as
    `benchmark.resource_columns.training_columns` stores it."""
    rows = []
    for arch, (_, own, reused) in ROWS.items():
        for seed in SEEDS:
            train = own + reused + 10 * seed
            rows.append({
                "architecture": arch, "seed": seed, "fold": "ts", "device": "cpu", "compute_precision": "fp32",
                "parallel_jobs": 1, "minutes": 5.0, "epoch_bound": 4, "epochs": 4, "stopped_by": "epochs",
                "epoch_samples": 10, "epoch_unit": "patches", "epoch_seconds_median": train / 4,
                "epoch_seconds_iqr": 0.1, "train_seconds": train,
                "members": "yolov8: reused yolov8 (100 s); unet3d: reused unet3d (80 s)" if reused else None,
                "reused": "yolov8;unet3d" if reused else None, "reused_train_seconds": reused,
                "peak_memory_gb": 0.5, "process_peak_memory_gb": 1.0, "memory_kind": "cpu-rss",
                "nvml_status": "not a GPU", "infer_peak_memory_gb": 0.4, "infer_process_peak_memory_gb": 0.9,
                "timed_split": "test", "repeats": 1, "infer_read_seconds": 0.1, "infer_model_seconds": 1.0,
                "infer_postprocess_seconds": 0.01, "infer_seconds_per_tomogram": 1.11,
                "infer_seconds_per_tomogram_iqr": 0.01, "infer_seconds_per_slice": 0.02,
                "infer_seconds_per_slice_iqr": 0.001, "job_seconds": train - reused + 20, "predict_seconds": 3.0,
                "postprocess_seconds": 0.1, "score_seconds": 0.5, "overhead_seconds": 1.0,
                "curve_seconds": 6.0 + seed if arch in CURVES else None,
            })  # fmt: skip
    frame = pd.DataFrame(rows, columns=TABLES["resources"])
    return frame if curves else frame.drop(columns="curve_seconds")


def _curves() -> pd.DataFrame:
    """The deep rows' curve points, seed 0 above and seed 1 below the mean by 0.02 (and 1 s)."""
    rows = [{"architecture": arch, "seed": seed, "fold": "ts", "fraction": epoch / bound, "epoch": epoch,
             "train_seconds": seconds + (1 if seed == 0 else -1), "val_score": score + (0.02 if seed == 0 else -0.02),
             "eval_seconds": 2.0} for arch, (bound, points) in CURVES.items() for seed in SEEDS
            for epoch, seconds, score in points]  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ResultsStore:
    """The results folder with learning curves."""
    return write_results(tmp_path_factory.mktemp("costs") / "run")


@pytest.fixture(scope="module")
def report(store) -> Report:
    """Its report."""
    return Report(store)


def test_an_ensemble_costs_the_training_of_the_members_it_reused(report):
    summary = report.summary().set_index("architecture")["train_seconds_total"]
    assert summary["ensemble"] == pytest.approx(195.0)  # median over seeds of 10 s own fit + 180 s reused (+ 0, 10)
    assert summary["unet3d"] == pytest.approx(85.0) and summary["matched-filter"] == pytest.approx(20.0)
    line = next(line for line in report.summary_table().splitlines() if "| ensemble |" in line)
    assert "| 195 |" in line
    assert "Training (s)" in report.summary_table()
    assert "an ensemble's is the sum of its members' training, reused" in report.training_note()


def test_every_row_stands_at_its_whole_training_in_the_score_against_training_plot(report):
    figure = report.plots()["f4_vs_training.png"]
    ax = figure.axes[0]
    placed = {c.get_label(): float(c.lines[0].get_xdata()[0]) for c in ax.containers}
    assert placed["ensemble"] == pytest.approx(195.0) and placed["yolov8"] == pytest.approx(105.0)
    assert "sum of its members'" in ax.get_xlabel() and "CPU" in ax.get_xlabel()


def test_summary_csv_holds_the_total_training(store, tmp_path):
    build_report(store, tmp_path)
    summary = pd.read_csv(tmp_path / "summary.csv").set_index("architecture")
    assert summary.loc["ensemble", "train_seconds_total"] == pytest.approx(195.0)


def test_learning_curves_plot_only_the_rows_with_curves_at_their_mean_over_seeds(report):
    ax = report.plots()["learning_curves.png"].axes[0]
    means = {line.get_label(): line for line in ax.lines if not line.get_label().startswith("_")}
    assert set(means) == {"unet3d", "yolov8", "one training run"}  # no curve for matched-filter or the ensemble
    assert list(means["unet3d"].get_xdata()) == pytest.approx([20.0, 40.0, 80.0])
    assert list(means["unet3d"].get_ydata()) == pytest.approx([0.3, 0.5, 0.6])
    assert len([line for line in ax.lines if line.get_label().startswith("_")]) == 4  # two runs of two rows
    assert ax.get_legend().get_bbox_to_anchor().y1 < ax.get_window_extent().y0  # below the axes, off the data


def test_the_report_names_the_fastest_row_and_what_a_longer_budget_could_change(report):
    text = "\n".join(report.curve_lines())
    assert "## Learning curves" in text and "val score against training seconds" in text
    assert "- Fastest: `unet3d` first reached val score 0.500" in text  # yolov8's best, reached by unet3d at 40 s
    assert "`unet3d` 40 s, `yolov8` 100 s" in text
    assert "At the end of their bounds: `unet3d` 0.600 > `yolov8` 0.500" in text
    assert (
        "- A longer budget could change the order (gain of val score per training minute over the last step: "
        "`unet3d` +0.150, `yolov8` +0.240): `yolov8` passes `unet3d` after 1.1 more minutes" in text
    )  # 0.1 / 0.0015/s
    assert (
        "| unet3d | 0.300 ± 0.028 (epoch 1, 20 s) | 0.500 ± 0.028 (epoch 2, 40 s) | 0.600 ± 0.028 (epoch 4, 80 s) |"
        in text
    )
    assert "| Row | 20%-25% of the bound | 50% of the bound | End (100% of the bound) |" in text  # bounds 10 and 4


def test_curves_that_keep_their_order_give_no_sign_a_longer_budget_would_change_it():
    points = pd.DataFrame({"architecture": ["a", "a", "b", "b"], "fraction": [0.5, 1.0, 0.5, 1.0],
                           "seconds": [10.0, 20.0, 10.0, 20.0], "score": [0.4, 0.7, 0.3, 0.35]})  # fmt: skip
    pace = Pace.of(points)
    assert pace.target == pytest.approx(0.35) and pace.fastest == "a" and pace.closing() == []  # b gains slower
    assert pace.last_gain["b"] == pytest.approx(0.005)


def test_curve_points_average_the_runs_at_each_fraction(store):
    points = curve_points(Report(store).curves).set_index(["architecture", "fraction"])
    assert points.loc[("yolov8", 1.0), "seconds"] == pytest.approx(100.0)
    assert points.loc[("yolov8", 1.0), "jobs"] == 2
    assert list(points.loc["yolov8", "place"]) == [0, 1, END]  # its end is the end column, whatever its fraction
    assert list(points.index.get_level_values("architecture").unique()) == ["unet3d", "yolov8"]  # the verdict's order


def test_the_overhead_table_shows_the_curves_evaluation_seconds(report):
    text = overhead_table(report.resources, report.order)
    assert "Curve evaluation (s)" in text.splitlines()[0]
    assert "| unet3d | " in text and "| 6.5 ± 0.7 |" in next(line for line in text.splitlines() if "| unet3d |" in line)


def test_results_from_before_curves_still_report_without_them(tmp_path):
    store = write_results(tmp_path / "old", curves=False)
    written = build_report(store, tmp_path / "report")
    assert "learning_curves.png" not in {path.name for path in written}
    readme = (tmp_path / "report" / "README.md").read_text()
    assert "## Learning curves" not in readme and "Curve evaluation" not in readme
    assert "f4_vs_training.png" in readme and "| ensemble |" in readme


def test_the_report_names_a_row_that_trained_in_another_precision_than_the_suites(tmp_path):
    store = write_results(tmp_path / "results")
    assert "Every row trained in the suite's precision (fp32)." in Report(store).markdown([])
    resources = pd.read_csv(store.folder / "resources.csv")
    resources.loc[resources["architecture"] == "yolov8", "compute_precision"] = "bf16"
    resources.to_csv(store.folder / "resources.csv", index=False)
    note = Report(ResultsStore(store.folder)).precision_note()
    assert note.startswith("Not in the suite's precision (fp32): yolov8 in bf16;")
