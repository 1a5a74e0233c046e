"""`bench score`: the CZII competition metric of a submission CSV against a solution CSV, with the weights and hard
types given."""

from __future__ import annotations

import json
from pathlib import Path

import click

from benchmark.cli.options import json_option
from benchmark.errors import BenchError

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
@click.option(
    "--weight",
    "weights",
    multiple=True,
    metavar="NAME=W",
    help="Metric weight of a particle type (repeatable; default: the CZII weight, else the config's, else 1).",
)
@click.option(
    "--hard",
    multiple=True,
    metavar="NAME",
    help="A hard particle type (repeatable; given: exactly these are hard).",
)
@json_option
def score(
    solution: Path, submission: Path, config: str | None, weights: tuple[str, ...], hard: tuple[str, ...], as_json: bool
) -> None:
    """Score SUBMISSION against SOLUTION (competition CSVs, Å) with the weighted F4 metric (CZII weights by default)."""
    from benchmark.particles import Metric, ParticleTable
    from benchmark.submission import read_solution, read_submission
    from metrics import score_picks

    if config is None:
        particles = ParticleTable.czii()
    else:
        from benchmark.data import Project

        particles = Project(config).particles
    metric = Metric(weights=_weights(weights), hard=list(hard) or None, source="bench score --weight/--hard")
    particles = particles.with_metric(metric)
    particles.warn_unweighted("pass --weight NAME=W (and --hard NAME)")
    result = score_picks(read_solution(solution), read_submission(submission), particles)
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "hard": particles.hard}, indent=2))
        return
    formatters = {c: "{:.3f}".format for c in RATIO_COLUMNS} | {"weight": "{:g}".format}
    click.echo(result.per_type.to_string(index=False, formatters=formatters))
    click.echo(f"weighted F4 (competition score): {result.weighted:.6f}   mean F4: {result.mean:.6f}")
    click.echo(f"hard types: {', '.join(particles.hard) or 'none'}")
    if result.ignored_experiments:
        click.echo(
            f"note: ignored submission rows of experiments not in the solution: "
            f"{', '.join(result.ignored_experiments)}",
            err=True,
        )


def _weights(given: tuple[str, ...]) -> dict[str, float]:
    """The --weight NAME=W options as a mapping, refusing one that is not NAME=number."""
    weights = {}
    for item in given:
        name, _, value = item.partition("=")
        try:
            weights[name] = float(value)
        except ValueError:
            raise BenchError(f"--weight {item!r} is not NAME=W with W a number, e.g. --weight ribosome=2") from None
    return weights
