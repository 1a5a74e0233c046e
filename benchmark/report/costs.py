"""The report's tables of costs: training under the budget, memory, inference latency and the harness's overhead,
per row, from the stored resources table."""

from __future__ import annotations

import pandas as pd

from benchmark.report.markdown import mean_std, median_iqr, table
from benchmark.resource_columns import CANDIDATES_REUSED

PARTS = {"read": "infer_read_seconds", "model": "infer_model_seconds", "post-processing": "infer_postprocess_seconds"}
OVERHEAD_TARGET = 0.05  # the harness's share of a job it aims to stay under


def training_table(resources: pd.DataFrame, order: list[str]) -> str:
    """The budget each architecture had, what ended its training, what an epoch is, and how long it took."""
    rows = []
    for arch in order:
        found = resources[resources["architecture"] == arch]
        bound = found["epoch_bound"].dropna()
        low, high = int(found["epochs"].min()), int(found["epochs"].max())
        epochs = (f"{low}" if low == high else f"{low}-{high}") + (f" / {int(bound.iloc[0])}" if len(bound) else "")
        rows.append([
            arch,
            f"{found['minutes'].iloc[0]:g}",
            epochs + _cut_note(found),
            _epoch_definition(found),
            median_iqr(found["epoch_seconds_median"], found["epoch_seconds_iqr"], 1),
            _data_wait(found),
            mean_std(found["train_seconds"], 0),
        ])  # fmt: skip
    header = ["Architecture", "Budget (min)", "Epochs run / bound", "One epoch", "Time per epoch (s)",
              "Data wait", "Training (s)"]  # fmt: skip
    return table(rows, header)


def training_seconds(resources: pd.DataFrame) -> pd.Series:
    """Per row, the median over its jobs of all the training it cost: an ensemble's stored `train_seconds` already
    sums its own fit (members it trained itself included) and the training of the members it reused from other
    entries (`reused_train_seconds`, see `benchmark.resource_columns.training_columns`), so the sum of its members'."""
    return resources.groupby("architecture")["train_seconds"].median()


def parts_notes(resources: pd.DataFrame, order: list[str]) -> list[str]:
    """For entries built from other entries (ensembles), which parts they reused and which they trained, per
    seed: their training time above includes the parts'."""
    notes = []
    for arch in order:
        found = resources[resources["architecture"] == arch].dropna(subset=["members"])
        for _, row in found.iterrows():
            notes.append(f"- `{arch}` seed {row['seed']}, fold {row['fold']}: {row['members']}")
    if not notes:
        return []
    lead = ("Entries built from others (ensembles): their training time includes their parts', whether reused "
            "from the entry that trained them in this run or trained in their own job.")  # fmt: skip
    return ["", lead, "", *notes]


def memory_table(resources: pd.DataFrame, order: list[str]) -> str:
    """Peak memory above the job's baseline and of the whole process, in training and in inference."""
    gpu = (resources["memory_kind"] == "cuda-allocator").any()
    rows = []
    for arch in order:
        found = resources[resources["architecture"] == arch]
        row = [arch, found["memory_kind"].iloc[0]]
        for prefix in ("", "infer_"):
            row += [mean_std(found[f"{prefix}{c}"], 2) for c in ("peak_memory_gb", "process_peak_memory_gb")]
            if gpu:
                row += [mean_std(found[f"{prefix}reserved_peak_memory_gb"], 2), _nvml(found, prefix)]
        rows.append(row)
    extra = ["reserved", "NVML process"] if gpu else []
    header = ["Architecture", "Kind"]
    for phase in ("training", "inference"):
        header += [f"{phase}: above baseline", f"{phase}: whole process", *(f"{phase}: {e}" for e in extra)]
    return table(rows, header)


def latency_table(resources: pd.DataFrame, order: list[str]) -> str:
    """Inference seconds per tomogram split into read, model and post-processing, and per z-slice; a row that took
    its parts' stored candidates is the whole pipeline's cost (the parts' own latencies added to its fusion), named
    so."""
    rows = []
    for arch in order:
        found = resources[resources["architecture"] == arch]
        reused = found["members"].fillna("").str.contains(CANDIDATES_REUSED).any()
        rows.append([
            f"{arch} (reused members' stored latencies added)" if reused else arch,
            *[mean_std(found[column], 2) for column in PARTS.values()],
            median_iqr(found["infer_seconds_per_tomogram"], found["infer_seconds_per_tomogram_iqr"], 2),
            median_iqr(found["infer_seconds_per_slice"], found["infer_seconds_per_slice_iqr"], 4),
        ])  # fmt: skip
    header = ["Architecture", "Read (s)", "Model (s)", "Post-processing (s)", "Total per tomogram (s)",
              "Model per slice (s)"]  # fmt: skip
    return table(rows, header)


def overhead_table(resources: pd.DataFrame, order: list[str]) -> str:
    """The job's wall time split into fit, learning-curve evaluation (when any job evaluated one), predict, scoring
    and the harness's own overhead."""
    curves = resources["curve_seconds"].notna().any()
    work = ["job_seconds", "own_fit", *(["curve_seconds"] if curves else []), "predict_seconds",
            "postprocess_seconds", "score_seconds", "overhead_seconds", "import_seconds"]  # fmt: skip
    rows = []
    for arch in order:
        found = resources[resources["architecture"] == arch]
        found = found.assign(own_fit=found["train_seconds"] - found["reused_train_seconds"].fillna(0))
        share = (found["overhead_seconds"] / found["job_seconds"]).mean()
        rows.append([
            arch,
            *[mean_std(found[c], 1) for c in work],
            f"{share:.1%}" + ("" if share <= OVERHEAD_TARGET else " (over target)"),
        ])  # fmt: skip
    header = ["Architecture", "Job (s)", "Fit (s)", *(["Curve evaluation (s)"] if curves else []), "Predict (s)",
              "Post-processing (s)", "Scoring (s)", "Harness overhead (s)", "Of it, start and imports (s)",
              "Share"]  # fmt: skip
    return table(rows, header)


def _cut_note(found: pd.DataFrame) -> str:
    """How many of an architecture's jobs the minutes cap cut short, and how many of those shared the cores."""
    cut = found["stopped_by"] == "minutes"
    if not cut.any():
        return ""
    shared = int((cut & (found["parallel_jobs"].fillna(1) > 1)).sum())
    sharing = f"; {shared} of them sharing the cores with other jobs, so trained less than alone" if shared else ""
    return f" (cut by the cap in {int(cut.sum())} of {len(found)}{sharing})"


def _data_wait(found: pd.DataFrame) -> str:
    """The share of the epochs' time the steps waited for data (mean over jobs), with the precision they ran in."""
    shares = found["data_wait_share"].dropna()
    precision = ", ".join(sorted(set(found["compute_precision"].dropna())))
    share = f"{100 * shares.mean():.1f}%" if len(shares) else "-"
    return f"{share} ({precision})" if precision else share


def _epoch_definition(found: pd.DataFrame) -> str:
    """What one epoch is, as the plug-in told the tracker."""
    row = found.iloc[0]
    if pd.isna(row["epoch_samples"]):
        return "not stated"
    return f"{int(row['epoch_samples'])} {row['epoch_unit']}"


def _nvml(found: pd.DataFrame, prefix: str) -> str:
    """The NVML process peak, or why NVML gave none."""
    values = found[f"{prefix}nvml_peak_memory_gb"].dropna()
    return mean_std(values, 2) if len(values) else str(found["nvml_status"].iloc[0])
