"""`bench score`: the CZII competition metric of a submission CSV against a solution CSV."""

from __future__ import annotations

import json
from pathlib import Path

import click

from benchmark.cli.options import json_option

RATIO_COLUMNS = ("precision", "recall", "f1", "f4")


@click.command()
@click.argument("solution", type=click.Path(path_type=Path))
@click.argument("submission", type=click.Path(path_type=Path))
@click.option(
    "--data",
    "config",
    type=click.Path(path_type=str),
    help="Copick JSON config whose particle radii to use (default: the CZII competition's particles).",
)
@json_option
def score(solution: Path, submission: Path, config: str | None, as_json: bool) -> None:
    """Score SUBMISSION against SOLUTION (competition CSVs, Å) with the CZII weighted F4 metric."""
    from benchmark.particles import ParticleTable
    from benchmark.submission import read_solution, read_submission
    from metrics import score_picks

    if config is None:
        particles = ParticleTable.czii()
    else:
        from benchmark.data import Project

        particles = Project(config).particles
    result = score_picks(read_solution(solution), read_submission(submission), particles)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    formatters = {c: "{:.3f}".format for c in RATIO_COLUMNS} | {"weight": "{:g}".format}
    click.echo(result.per_type.to_string(index=False, formatters=formatters))
    click.echo(f"weighted F4 (competition score): {result.weighted:.6f}   mean F4: {result.mean:.6f}")
    if result.ignored_experiments:
        click.echo(
            f"note: ignored submission rows of experiments not in the solution: "
            f"{', '.join(result.ignored_experiments)}",
            err=True,
        )
