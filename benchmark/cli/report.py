"""`bench report`: regenerate reports/<suite>/ from stored results, for every suite or the one asked for."""

from __future__ import annotations

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
    """Write the markdown tables and PNG plots of stored results."""
    from benchmark.errors import BenchError
    from benchmark.files import SAFE_NAME, inside
    from benchmark.report import build_report, suites_with_results
    from benchmark.results import ResultsStore

    if folder is not None:
        stores = [ResultsStore.open(folder)]
    elif suite_name is not None:
        stores = [ResultsStore.latest(suite_name, results_root)]
    else:
        names = suites_with_results(results_root)
        if not names:
            raise BenchError(f"no results under {results_root}/; run: bench run --suite demo")
        stores = [ResultsStore.latest(name, results_root) for name in names]
    if out is not None and len(stores) > 1:
        raise BenchError("--out names one folder; add --suite or --results to report a single suite there")
    for store in stores:
        suite = store.manifest["suite"]["name"]
        if out is None and not SAFE_NAME.match(str(suite)):
            raise BenchError(
                f"{store.folder}/manifest.json names its suite {suite!r}, not a plain folder name; "
                "a report for it is refused (pass --out to choose the folder)"
            )
        # with every suite, those with a marker block in the README refresh it; one suite without one is an error
        wanted = readme is not None and (len(stores) == 1 or f":{suite}:start" in readme.read_text())
        refresh = readme if wanted else None
        for path in build_report(store, out or inside(Path("reports"), suite), refresh):
            click.echo(f"wrote {path}")
