"""The reference machine: the one that made a suite's committed results. What its run tells a new run of the suite:
how long it took, and whether this machine differs in what decides how sums round."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from benchmark.environment import REPO, tracked
from benchmark.errors import BenchError
from benchmark.results import RESULTS_ROOT, ResultsStore
from benchmark.suite import Suite

REFERENCE_ROOT = REPO / RESULTS_ROOT  # the committed results: the machine that made them is the reference


def reference_line(suite: Suite, here: dict, root: Path = REFERENCE_ROOT) -> str:
    """What the newest committed run of this suite (finished, from a clean tree, every entry) tells a new run: how
    long it took on the reference machine, and where this machine differs in what decides how sums round."""
    runs = [ResultsStore(folder) for folder in sorted((root / suite.name).glob("*_*"), reverse=True)]
    reference = next((store for store in runs if _is_reference(store)), None)
    if reference is None:
        return f"reference: no committed run of suite '{suite.name}'"
    manifest = reference.manifest
    if manifest["suite"]["sha256"] != suite.sha256:
        return f"reference: {reference.folder} ran another version of this suite file, so its time is not this one's"
    try:
        took = datetime.fromisoformat(manifest["finished"]) - datetime.fromisoformat(manifest["created"])
    except (TypeError, ValueError):
        return f"reference: {reference.folder} does not record when it started and finished"
    minutes, seconds = divmod(round(took.total_seconds()), 60)
    there = manifest["environment"]
    line = (
        f"reference: this suite took {minutes} min {seconds} s on {there['device_name']} (torch CPU capability "
        f"{there.get('cpu_capability') or 'not recorded'}; {reference.folder}); a slower or busier machine takes longer"
    )
    differs = [what for what, value in ROUNDING.items() if value(there) != value(here)]
    if not differs:
        return f"{line}, and scores the same"
    return (
        f"{line}; this machine differs in {', '.join(differs)}, so its learned rows may round differently and not "
        "match the committed scores exactly"
    )


#: what decides how a run's sums round, as the manifest's environment records it
ROUNDING = {
    "device": lambda env: env.get("device"),
    "torch CPU capability": lambda env: env.get("cpu_capability"),
    "CPU flags": lambda env: env.get("cpu_flags"),
    "threads": lambda env: env.get("num_threads"),
    "torch version": lambda env: (env.get("libraries") or {}).get("torch"),
}


def _is_reference(store: ResultsStore) -> bool:
    """Whether a results folder can be the reference: tracked by git (committed), finished, from a clean tree, every
    entry run."""
    path = store.folder / "manifest.json"
    if not path.is_file() or not tracked(path):
        return False
    try:
        manifest = store.manifest
    except BenchError:
        return False
    clean = manifest["environment"]["git"]["dirty"] is False
    return clean and bool(manifest.get("finished")) and (manifest.get("options") or {}).get("arch") is None
