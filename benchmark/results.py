"""The results store: results/<suite>/<UTC timestamp>_<git sha>/ with a manifest and tidy tables."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from benchmark.errors import BenchError
from benchmark.files import inside, write_csv, write_json
from benchmark.manifest import manifest_problem

RESULTS_ROOT = Path("results")
LOCK = ".lock"  # held by the bench run that owns the folder; it names that run's pid
LATENCY_PARTS = ("read_seconds", "model_seconds", "postprocess_seconds", "total_seconds")  # of one prediction
JOB = ["architecture", "seed", "fold"]  # the key of a job's rows; "architecture" holds the suite entry's label
MEMORY = ["peak_memory_gb", "process_peak_memory_gb", "reserved_peak_memory_gb", "nvml_peak_memory_gb"]
TABLES = {
    "scores": [*JOB, "split", "particle_type", "precision", "recall", "f1", "f4", "tp", "fp", "fn"],
    "resources": [
        *JOB, "device", "compute_precision", "parallel_jobs", "minutes", "epoch_bound", "epochs", "stopped_by",
        "epoch_samples", "epoch_unit", "epoch_seconds_median", "epoch_seconds_iqr", "epoch_steps", "data_wait_share",
        "train_seconds",
        "members", "reused", "reused_train_seconds",
        *MEMORY, "memory_kind", "nvml_status", *(f"infer_{column}" for column in MEMORY),
        "timed_split", "repeats", "infer_read_seconds", "infer_model_seconds", "infer_postprocess_seconds",
        "infer_seconds_per_tomogram", "infer_seconds_per_tomogram_iqr", "infer_seconds_per_slice",
        "infer_seconds_per_slice_iqr", "job_seconds", "predict_seconds", "postprocess_seconds", "score_seconds",
        "overhead_seconds", "import_seconds", "curve_seconds",
    ],
    # per type: the val-tuned threshold and its val F4, and the oracle's on the evaluated split (never used to choose)
    "thresholds": [*JOB, "particle_type", "threshold", "val_f4", "references", "oracle_threshold", "oracle_f4"],
    # per split, tomogram and type at the frozen thresholds: the evidence every interval and comparison is drawn from
    "counts": [*JOB, "split", "run", "particle_type", "references", "candidates", "tp", "fp", "fn"],
    # per reference (its index among its run's references of its type): whether a kept pick found it, and where it is
    "matches": [*JOB, "split", "run", "particle_type", "reference", "matched", "x", "y", "z"],
    # one row per ablation variant; "architecture" holds `<label>+<variant>`, "base" the entry's label
    "ablation": [*JOB, "base", "variant", "steps", "fitted", "fit_seconds", "postprocess_seconds",
                 "candidates_before", "candidates_after"],
    # per learning-curve point of a deep job: the val competition score (thresholds tuned on val at that point)
    # after `epoch` epochs, `fraction` of its bound, and the training seconds spent by then (evaluation excluded)
    "curves": [*JOB, "fraction", "epoch", "train_seconds", "val_score", "eval_seconds"],
    "latency": [*JOB, "run", "repeat", "z_slices", *LATENCY_PARTS],
}  # fmt: skip
#: the columns of words; every other column holds numbers (or nothing)
TEXT = [
    "architecture", "fold", "split", "particle_type", "device", "compute_precision", "stopped_by", "epoch_unit",
    "members", "reused", "memory_kind", "nvml_status", "timed_split", "run", "base", "variant", "steps", "fitted",
]  # fmt: skip
RESTORE = "restore it (e.g. git checkout) or start a new run"
#: what every successful job adds to (curves: no rows for a job without learning-curve points)
EVERY_JOB = ("scores", "resources", "thresholds", "latency", "counts", "matches", "curves")
KEPT_SINCE_FIRST = ("scores", "resources", "thresholds", "latency")  # every job stored these; older ones not the rest
VARIANT_TABLES = ("scores", "thresholds", "counts", "matches")  # what each ablation variant adds to, beside its row
#: columns added after results were first committed: a stored table without them reads them as empty
ADDED = {
    "resources": [
        "members",
        "reused",
        "reused_train_seconds",
        "postprocess_seconds",
        "compute_precision",
        "data_wait_share",
        "parallel_jobs",
        "curve_seconds",
        "epoch_steps",
        "import_seconds",
    ],
    "thresholds": ["oracle_threshold", "oracle_f4"],
    "matches": ["x", "y", "z"],
}


def _not_numeric(table: pd.DataFrame) -> str | None:
    """The first value of a numeric column that is not a number (rows counted from 1 below the header), or None."""
    for column in table.columns.difference(TEXT, sort=False):
        values = table[column]
        bad = pd.to_numeric(values, errors="coerce").isna() & values.notna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            return f"column {column}, row {row + 1}: {values.iloc[row]!r} is not a number"
    return None


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def job_id(label: str, seed: int, fold: str) -> str:
    """The key of one (architecture label, seed, fold) job."""
    return f"{label}-seed{seed}-{fold}"


class ResultsStore:
    """One results folder: manifest.json, the tidy tables (scores, resources, thresholds, counts, matches, ablation,
    latency: one CSV each), predictions/, jobs/."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @classmethod
    def create(cls, suite: str, short_sha: str | None, root: Path = RESULTS_ROOT) -> ResultsStore:
        """A new, empty folder named by the UTC time and the git short sha, inside `root`."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        folder = inside(root, suite, f"{stamp}_{short_sha or 'nogit'}")
        try:
            folder.mkdir(parents=True, exist_ok=False)
        except OSError as err:
            raise BenchError(
                f"cannot create results folder {folder} ({err.strerror or err}); pass --results a folder you can write"
            ) from None
        return cls(folder)

    @classmethod
    def open(cls, folder: Path) -> ResultsStore:
        """An existing folder, which must hold a manifest."""
        store = cls(folder)
        if not (store.folder / "manifest.json").is_file():
            raise BenchError(f"'{folder}' is not a results folder (no manifest.json); pass one made by bench run")
        return store

    @classmethod
    def latest(cls, suite: str, root: Path = RESULTS_ROOT, finished: bool = False) -> ResultsStore:
        """The newest results folder of a suite (with `finished`, the newest whose run has ended: a report never
        reads a run still going or one that was interrupted)."""
        folders = sorted(p for p in (root / suite).glob("*_*") if (p / "manifest.json").is_file())
        if finished:
            folders = [folder for folder in folders if "finished" in cls(folder).manifest]
        if not folders:
            what = "finished results" if finished else "results"
            raise BenchError(f"no {what} for suite '{suite}' under {root}/; run: bench run --suite {suite}")
        return cls(folders[-1])

    @property
    def manifest(self) -> dict:
        """The manifest as stored."""
        path = self.folder / "manifest.json"
        try:
            manifest = json.loads(path.read_text())
            problem = manifest_problem(manifest)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            problem = "nested too deeply" if isinstance(err, RecursionError) else f"unreadable: {err}"
        if problem:
            raise BenchError(f"{path} is damaged ({problem}); {RESTORE}")
        return manifest

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder for one run: a second `bench run` on it is refused while this one lives."""
        path = self.folder / LOCK
        try:
            handle = path.open("a+")
        except OSError as err:
            raise BenchError(
                f"results folder {self.folder} is not writable ({err.strerror or err}); copy it somewhere writable "
                "to resume it"
            ) from None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                owner = handle.read().strip() or "?"
                raise BenchError(
                    f"results folder {self.folder} is in use by pid {owner} (another bench run); "
                    "wait for it to end or stop it"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            try:
                yield
            finally:  # the file stays (deleting it would let a waiting opener lock a stale inode): only emptied
                handle.truncate(0)

    def check_tables(self) -> None:
        """Read every stored table once, so that a damaged one is named before anything runs."""
        for name in TABLES:
            self.table(name)

    def write_manifest(self, manifest: dict) -> None:
        """Replace the manifest atomically, stamping the update time."""
        write_json(self.folder / "manifest.json", {**manifest, "updated": utc_now()})

    def update_job(self, key: str, **fields: object) -> None:
        """Merge fields into one job's manifest entry."""
        manifest = self.manifest
        manifest["jobs"][key] = {**manifest["jobs"].get(key, {}), **fields}
        self.write_manifest(manifest)

    def job_dir(self, key: str) -> Path:
        """Working folder of one job: its spec, result, log and saved model."""
        return inside(self.folder / "jobs", key)

    def predictions_dir(self, label: str, seed: int, fold: str) -> Path:
        """Where a job's per-run competition CSVs and scored candidates go."""
        return inside(self.folder / "predictions", label, f"seed{seed}", fold)

    def table(self, name: str) -> pd.DataFrame:
        """One of the tidy tables (empty with its columns when nothing is stored yet); a damaged one is named: missing
        though jobs stored rows in it, a folder, unreadable, without its columns, or words where numbers belong."""
        path = self.folder / f"{name}.csv"
        if not path.exists():
            finished = sum(job.get("status") == "ok" for job in self.manifest["jobs"].values())
            if finished and name in KEPT_SINCE_FIRST:
                raise BenchError(f"{path} is missing, though {finished} finished job(s) stored rows in it; {RESTORE}")
            return pd.DataFrame(columns=TABLES[name])
        if path.is_dir():
            raise BenchError(f"{path} is a folder, not a table; {RESTORE}")
        try:
            table = pd.read_csv(path, dtype=dict.fromkeys(TEXT, str))  # run and fold names stay text
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            reason = (err.strerror if isinstance(err, OSError) else str(err).strip().split("\n")[0]) or "unreadable"
            raise BenchError(f"{path} is damaged ({reason}); {RESTORE}") from None
        table = table.reindex(columns=[*table.columns, *(c for c in ADDED.get(name, []) if c not in table.columns)])
        missing = [column for column in TABLES[name] if column not in table.columns]
        problem = f"missing columns {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}" if missing else None
        problem = problem or _not_numeric(table[TABLES[name]])
        if problem:
            raise BenchError(f"{path} is damaged ({problem}); {RESTORE}")
        return table

    def replace_rows(self, name: str, key: dict, rows: list[dict]) -> None:
        """Store a job's rows of a table (`key`: its architecture, seed and fold), replacing earlier rows of the job."""
        table = self.table(name)
        same = (table[JOB].astype(str) == pd.Series({k: str(key[k]) for k in JOB})).all(axis=1)
        new = pd.DataFrame([{**key, **row} for row in rows], columns=TABLES[name])
        table = new if table[~same].empty else pd.concat([table[~same], new], ignore_index=True)
        write_csv(self.folder / f"{name}.csv", table.sort_values(JOB, kind="stable"))
