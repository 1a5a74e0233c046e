"""`bench predict`: pick a copick project's runs with the model a benchmark job saved."""

from __future__ import annotations

from pathlib import Path

import click

from benchmark.cli.options import data_option


@click.command()
@click.option(
    "--results",
    "folder",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A results folder of bench run (results/<suite>/<time>_<sha>).",
)
@click.option("--arch", "label", required=True, help="The suite entry's label whose model picks.")
@click.option("--seed", type=int, help="The job's seed [default: the lowest seed with a saved model].")
@click.option("--fold", help="The job's fold [default: the only fold].")
@data_option
@click.option("--runs", "runs", multiple=True, metavar="NAME", help="A run to pick (repeatable).")
@click.option("--all", "every_run", is_flag=True, help="Pick every run of the project.")
@click.option("--user-id", help="Copick user id of the picks [default: bench-<label>].")
@click.option("--session-id", help="Copick session id of the picks [default: predict-<UTC time>]; never 0.")
@click.option("--overwrite", is_flag=True, help="Replace picks already stored under that user and session.")
@click.option("--keep-all", is_flag=True, help="Every candidate with its score: no thresholds.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option(
    "--csv",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Competition-format CSV of the picks (with a score column under --keep-all) [default: "
    "picks-<label>-seed<N>.csv here].",
)
def predict(
    folder: Path,
    label: str,
    seed: int | None,
    fold: str | None,
    config: str,
    runs: tuple[str, ...],
    every_run: bool,
    user_id: str | None,
    session_id: str | None,
    overwrite: bool,
    keep_all: bool,
    device: str,
    csv: Path | None,
) -> None:
    """Pick runs of a copick project with a saved model, as its job picked the test runs: the same model, its
    post-processing as fitted, and its val-tuned thresholds (or, with --keep-all, every candidate with its score).
    Writes copick picks and a competition-format CSV."""
    from benchmark.processes import wait_as_jobs_do

    wait_as_jobs_do()  # before torch loads: as a job's threads wait, robust to other work on the machine
    from benchmark.predict import PredictOptions
    from benchmark.predict import predict as pick

    if bool(runs) == every_run:
        raise click.UsageError("pass the runs to pick with --runs NAME (repeatable), or --all; one of the two")
    options = PredictOptions(
        results=folder,
        label=label,
        config=config,
        runs=None if every_run else list(runs),
        seed=seed,
        fold=fold,
        user_id=user_id,
        session_id=session_id,
        overwrite=overwrite,
        keep_all=keep_all,
        device=device,
        csv=csv,
    )
    pick(options, click.echo)
