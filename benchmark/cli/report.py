"""`bench report`: regenerate reports/<suite>/ from stored results."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--suite", "suite_name", default="demo", show_default=True, help="Suite whose latest results to report.")
@click.option("--results", "folder", type=click.Path(file_okay=False, path_type=Path), help="A results folder instead.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output folder [reports/<suite>].")
@click.option("--results-root", default="results", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--readme",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also refresh the summary between this file's <!-- bench-report:SUITE:start/end --> markers.",
)
def report(suite_name: str, folder: Path | None, out: Path | None, results_root: Path, readme: Path | None) -> None:
    """Write the markdown tables and PNG plots of a suite's results."""
    from benchmark.report import build_report
    from benchmark.results import ResultsStore

    store = ResultsStore.open(folder) if folder else ResultsStore.latest(suite_name, results_root)
    suite = store.manifest["suite"]["name"]
    for path in build_report(store, out or Path("reports") / suite, readme):
        click.echo(f"wrote {path}")
