"""The `bench` command: user mistakes end in one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import signal

import click

from benchmark.cli.calibrate import calibrate
from benchmark.cli.data import data
from benchmark.cli.gpu_check import gpu_check
from benchmark.cli.listing import list_
from benchmark.cli.predict import predict
from benchmark.cli.report import report
from benchmark.cli.run import run
from benchmark.cli.score import score
from benchmark.cli.suite import suite
from benchmark.cli.tune import tune
from benchmark.errors import BenchError, Interrupted, one_line_warnings


class BenchGroup(click.Group):
    """A click group that reports a BenchError raised anywhere below it as one line, and an interruption too."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Interrupted as err:
            click.echo(f"Error: {err}", err=True)
            ctx.exit(STOPPED_BY[0])
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            ctx.exit(STOPPED_BY[0])
        except BenchError as err:
            raise click.ClickException(str(err)) from None


STOPPED_BY = [130]  # the exit status of an interrupted command: 130 for Ctrl-C, 143 for SIGTERM


def _terminate(signum: int, frame) -> None:
    """SIGTERM stops a run as Ctrl-C does: the running job is stopped, finished work kept."""
    STOPPED_BY[0] = 128 + signum
    raise KeyboardInterrupt


@click.group(cls=BenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cryoet-bench")
def cli() -> None:
    """Benchmark cryo-ET particle-picking architectures on copick projects."""


for command in (data, score, list_, run, report, calibrate, tune, suite, predict, gpu_check):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    one_line_warnings()
    signal.signal(signal.SIGTERM, _terminate)
    cli()
