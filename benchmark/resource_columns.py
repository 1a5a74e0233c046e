"""A job's row of resources.csv: what bounded its training, its epoch and training times, memory peaks and
prediction latency, as the columns the results store keeps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.interface import Tracker
from metrics.resources import MemoryReading

CANDIDATES_REUSED = " and its stored candidates"  # a members note: the part's predictions were taken, not redone


def members_note(entries: list[dict], reuse: list[dict], served: dict[int, set[str]]) -> str | None:
    """Which parts an entry reused from other entries (with their training seconds, and whether it took their stored
    candidates: `served`, by part index) and which it trained itself."""
    reused = {r["index"]: r for r in reuse}
    notes = [
        f"{entry.get('label', entry['name'])}: reused {reused[i]['label']} ({reused[i]['train_seconds']:.0f} s)"
        + (CANDIDATES_REUSED if served.get(i) else "")
        if i in reused
        else f"{entry.get('label', entry['name'])}: trained here"
        for i, entry in enumerate(entries)
    ]
    return "; ".join(notes) or None


def training_columns(tracker: Tracker, reused_seconds: float = 0.0) -> dict[str, object]:
    """The budget, what ended training, what an epoch is, and the epoch and training times; the training time
    includes the seconds other entries spent training the parts this one reused."""
    epochs = np.asarray(tracker.epoch_seconds)
    return {
        "minutes": tracker.budget.minutes,
        "epoch_bound": tracker.budget.epochs,
        "epochs": len(epochs),
        "stopped_by": tracker.stopped_by,
        "epoch_samples": tracker.epoch_samples,
        "epoch_unit": tracker.epoch_unit,
        "epoch_seconds_median": float(np.median(epochs)) if len(epochs) else None,
        "epoch_steps": epoch_steps(tracker),
        "epoch_seconds_iqr": iqr(epochs),
        "data_wait_share": data_wait_share(tracker),
        "train_seconds": tracker.train_seconds + reused_seconds,
        "reused_train_seconds": reused_seconds,
    }


def epoch_steps(tracker: Tracker) -> float | None:
    """The median number of steps the plug-in timed a data wait for, over the epochs it timed them in; None when it
    timed none."""
    timed = [steps for steps, wait in zip(tracker.data_steps, tracker.data_seconds, strict=False) if np.isfinite(wait)]
    return float(np.median(timed)) if timed else None


def data_wait_share(tracker: Tracker) -> float | None:
    """The share of the timed epochs' seconds their steps waited for data; None when the plug-in did not time it."""
    timed = [(w, e) for w, e in zip(tracker.data_seconds, tracker.epoch_seconds, strict=False) if np.isfinite(w)]
    if not timed:
        return None
    waits, seconds = np.asarray(timed).T
    return float(waits.sum() / seconds.sum()) if seconds.sum() > 0 else None


def memory_columns(reading: MemoryReading, prefix: str) -> dict[str, object]:
    """A memory reading as resources columns; the kind and NVML's status are the training block's."""
    columns = {
        f"{prefix}peak_memory_gb": reading.peak_gb,
        f"{prefix}process_peak_memory_gb": reading.process_peak_gb,
        f"{prefix}reserved_peak_memory_gb": reading.reserved_peak_gb,
        f"{prefix}nvml_peak_memory_gb": reading.nvml_peak_gb,
    }
    return columns if prefix else {**columns, "memory_kind": reading.kind, "nvml_status": reading.nvml_status}


def latency_columns(latency: pd.DataFrame) -> dict[str, float | None]:
    """Medians over the timed predictions: read, model, post-processing and total seconds per tomogram, and model
    seconds per z-slice, with the spread (IQR) of the total and of the per-slice figure."""
    per_slice = (latency["model_seconds"] / latency["z_slices"]).to_numpy()
    return {
        "infer_read_seconds": float(latency["read_seconds"].median()),
        "infer_model_seconds": float(latency["model_seconds"].median()),
        "infer_postprocess_seconds": float(latency["postprocess_seconds"].median()),
        "infer_seconds_per_tomogram": float(latency["total_seconds"].median()),
        "infer_seconds_per_tomogram_iqr": iqr(latency["total_seconds"].to_numpy()),
        "infer_seconds_per_slice": float(np.median(per_slice)),
        "infer_seconds_per_slice_iqr": iqr(per_slice),
    }


def iqr(values: np.ndarray) -> float | None:
    """Interquartile range, the spread reported next to a median (None for no values); numpy's percentiles, as
    scipy.stats.iqr computes it, without the second that importing scipy.stats adds to every job."""
    return float(np.subtract(*np.percentile(values, [75, 25]))) if len(values) else None
