"""`bench calibrate`: the epoch bounds that give a suite's learned entries equal training time on this machine."""

from __future__ import annotations

import shlex

import click


@click.command()
@click.option("--suite", "suite_name", required=True, help="Suite name (suites/NAME.yaml) or path to a suite file.")
@click.option(
    "--data", "config", type=click.Path(dir_okay=False), help="Copick config; default: the suite's synthetic preset."
)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Override the suite's device.")
@click.option("--epochs", type=click.IntRange(min=2), default=4, show_default=True, help="Epochs measured per entry.")
def calibrate(suite_name: str, config: str | None, device: str | None, epochs: int) -> None:
    """Measure each learned entry's epoch time here and write the bounds that give each the suite's
    budget.train_seconds into its budget.calibration file (run it on the reference machine)."""
    from benchmark.processes import wait_as_jobs_do

    wait_as_jobs_do()  # before torch loads: epochs timed here as long as a job's
    from benchmark.calibrate import calibrate as measure
    from benchmark.calibration import write_calibration
    from benchmark.errors import BenchError
    from benchmark.suite import load_suite

    suite = load_suite(suite_name, calibrated=False)
    if suite.calibration is None:
        raise BenchError(f"suite {suite.name} names no budget.calibration file; add one to write the bounds into")
    content = measure(suite, config, device or suite.device, click.echo, epochs)
    command = shlex.join(["bench", "calibrate", "--suite", suite_name, *(["--epochs", str(epochs)] * (epochs != 4))])
    write_calibration(suite.calibration, command, content)
    click.echo(f"calibration: {suite.calibration}")
