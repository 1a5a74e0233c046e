"""`bench score` (placeholder until the metric lands)."""

import click


@click.command()
def score() -> None:
    """Score a submission CSV against a solution CSV."""
