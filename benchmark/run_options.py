"""The options of a `bench run` besides its suite file: recorded in the manifest, kept by a resume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import BenchError
from benchmark.results import ResultsStore


@dataclass(frozen=True)
class RunOptions:
    """What a `bench run` was asked for besides its suite file, each None where not given. A new run records them
    in its manifest (`options`) with the suite's defaults filled in; a resume keeps them and refuses a change."""

    suite: str  # the --suite argument as typed (a name, or a path as given): the resume hint repeats it
    data: str | None = None  # a copick config (resolved); None: the suite's synthetic preset
    arch: str | None = None  # a wildcard pattern of the entries to run; None: every entry
    device: str | None = None
    seeds: list[int] | None = None
    write_picks: bool | None = None
    keep_models: bool | None = None  # keep each job's saved model (jobs/<key>/model/) after the run, for bench predict

    def recorded(self) -> dict:
        """The options as the manifest keeps them."""
        return {field: getattr(self, field) for field in KEPT}


KEPT = ("data", "arch", "device", "seeds", "write_picks", "keep_models")  # the options a resume keeps
#: the options given as --NAME / --no-NAME, with what their default (on) does
FLAGS = {"write_picks": "writing picks into the project", "keep_models": "keeping the jobs' saved models"}


def kept_options(store: ResultsStore, manifest: dict, given: RunOptions) -> RunOptions:
    """The options of the run a resume completes (a folder from before they were recorded: its device and seeds,
    every entry, picks written, models kept); an option given again with another value is refused."""
    data = manifest["data"]
    recorded = {
        "keep_models": True,  # a folder from before the option: its models were kept
        **(
            manifest.get("options")
            or {
                "data": None if data.get("synthetic") else data["config"],
                "arch": None,
                "device": manifest["device"],
                "seeds": manifest["seeds"],
                "write_picks": True,
            }
        ),
    }
    wanted = {**given.recorded(), "data": None if given.data is None else str(Path(given.data).resolve())}
    for field in KEPT:
        value, kept = wanted[field], recorded[field]
        if field == "seeds" and value is not None:  # the same seeds in another order are no change
            value, kept = sorted(value), sorted(kept)
        if value is not None and value != kept:
            raise BenchError(
                f"{store.folder} was run {_described(field, recorded[field])}, and a resume keeps every setting of "
                f"its run; resume without {_described(field, wanted[field], flag_only=True)}, or start a new run"
            )
    return RunOptions(given.suite, **recorded)


def _described(field: str, value: object, flag_only: bool = False) -> str:
    """An option's value in the words of the command line."""
    flag = f"--{field.replace('_', '-')}"
    if field in FLAGS:
        return f"--no-{flag[2:]}" if not value else flag if flag_only else FLAGS[field]
    if flag_only:
        return flag
    if value is None:
        return {"data": "on the suite's synthetic data", "arch": "with every entry of the suite"}[field]
    shown = ",".join(map(str, value)) if isinstance(value, list) else value
    return f"with {flag} {shown}"
