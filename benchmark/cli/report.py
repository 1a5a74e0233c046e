"""`bench report`: regenerate reports/<suite>/ from stored results, for every suite or the one asked for."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import click


@click.command()
@click.option("--suite", "suite_name", help="Only this suite's latest results [default: every suite with results].")
@click.option("--results", "folder", type=click.Path(file_okay=False, path_type=Path), help="Only this results folder.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder [reports/<suite>].")
@click.option("--results-root", default="results", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--readme",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Also refresh the summary between this file's <!-- bench-report:SUITE:start/end --> markers.",
)
def report(
    suite_name: str | None, folder: Path | None, out: Path | None, results_root: Path, readme: Path | None
) -> None:
    """Write the markdown tables and PNG plots of stored results (the latest finished run of each suite)."""
    from benchmark.errors import BenchError
    from benchmark.files import inside
    from benchmark.report.tuning import is_tuning, tuning_report
    from benchmark.results import ResultsStore
    from benchmark.tune import RECORD

    if folder is not None and is_tuning(folder):
        suite = json.loads((folder / RECORD).read_text())["suite"]
        for path in tuning_report(folder, out or inside(Path("reports"), f"{suite}-tune")):
            click.echo(f"wrote {path}")
        return
    if folder is not None or suite_name is not None:
        store = ResultsStore.open(folder) if folder else ResultsStore.latest(suite_name, results_root, finished=True)
        _report(store, out, readme)
        return
    if out is not None:
        raise BenchError("--out names one folder; add --suite or --results to report a single suite there")
    reported = 0
    for store in _every_suite(results_root):
        suite = store.manifest["suite"]["name"]
        try:  # one suite's damaged results do not stop the others' reports
            _report(store, None, readme if readme and f":{suite}:start" in readme.read_text() else None)
            reported += 1
        except BenchError as err:
            _skipped(suite, err)
    if not reported:
        raise BenchError(f"no finished results to report under {results_root}/; run: bench run --suite demo")


def _report(store, out: Path | None, readme: Path | None) -> None:
    """Write one results folder's report into `out`, by default reports/<suite> (a plain folder name only)."""
    from benchmark.errors import BenchError
    from benchmark.files import SAFE_NAME, inside
    from benchmark.report import build_report

    suite = store.manifest["suite"]["name"]
    if out is None and not SAFE_NAME.match(str(suite)):
        raise BenchError(
            f"{store.folder}/manifest.json names its suite {suite!r}, not a plain folder name; "
            "a report for it is refused (pass --out to choose the folder)"
        )
    for path in build_report(store, out or inside(Path("reports"), suite), readme):
        click.echo(f"wrote {path}")


def _every_suite(root: Path) -> list:
    """The latest finished results folder of every suite under `root` that has one."""
    from benchmark.errors import BenchError
    from benchmark.report import suites_with_results
    from benchmark.results import ResultsStore

    stores = []
    for suite in suites_with_results(root):
        try:
            stores.append(ResultsStore.latest(suite, root, finished=True))
        except BenchError as err:
            _skipped(suite, err)
    return stores


def _skipped(suite: str, err: Exception) -> None:
    """Say in one warning line why a suite has no report."""
    from benchmark.data import BenchWarning

    warnings.warn(f"suite '{suite}' skipped: {err}", BenchWarning, stacklevel=1)
