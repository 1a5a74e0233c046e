"""The `bench` command: user mistakes end in one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import warnings

import click

from benchmark.cli.data import data
from benchmark.cli.listing import list_
from benchmark.cli.report import report
from benchmark.cli.run import run
from benchmark.cli.score import score
from benchmark.errors import BenchError


class BenchGroup(click.Group):
    """A click group that reports a BenchError raised anywhere below it as one line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BenchError as err:
            raise click.ClickException(str(err)) from None


@click.group(cls=BenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cryoet-bench")
def cli() -> None:
    """Benchmark cryo-ET particle-picking architectures on copick projects."""


for command in (data, score, list_, run, report):
    cli.add_command(command)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Show warnings as a single 'warning:' line on stderr."""
    click.echo(f"warning: {message}", err=True)


def main() -> None:
    """Console-script entry point."""
    warnings.showwarning = _one_line_warning
    cli()
