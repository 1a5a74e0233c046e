"""`bench gpu-check`: every architecture's speed and memory on this machine's GPU in minutes, as one command."""

from __future__ import annotations

from pathlib import Path

import click

from benchmark.cli.options import command_line
from benchmark.synth.presets import PRESETS


@click.command("gpu-check")
@click.option("--suite", "suite_name", default="full", show_default=True, help="The suite whose entries are measured.")
@click.option("--device", type=click.Choice(["cuda", "cpu"]), default="cuda", show_default=True,
              help="cpu tests the command's plumbing (with --suite smoke) where there is no GPU.")  # fmt: skip
@click.option("--preset", type=click.Choice(sorted(PRESETS)), help="The synthetic preset [default: the suite's].")
@click.option("--arch", "pattern", help="Only the suite's entries matching this wildcard pattern.")
@click.option("--minutes", type=click.FloatRange(min=1), default=8.0, show_default=True,
              help="The whole check's wall clock, data generation included; rows share it.")  # fmt: skip
@click.option("--fit-seconds", type=click.FloatRange(min=1), help="Each row's fit cap [default: 40% of its share].")
@click.option("--predict-seconds", type=click.FloatRange(min=1),
              help="Each row's cap on a warm-up and three timed predictions [default: 40% of its share].")  # fmt: skip
@click.option("--results", "root", default="results", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Report folder [reports/gpu-check].")
@click.pass_context
def gpu_check(ctx: click.Context, suite_name: str, device: str, preset: str | None, pattern: str | None,
              minutes: float, fit_seconds: float | None, predict_seconds: float | None, root: Path,
              out: Path | None) -> None:  # fmt: skip
    """Check the machine in seconds (CUDA, bf16, NVML, disk), then per architecture a short capped fit and three
    timed predictions of one full-size tomogram, each row under its own time limit; writes a results folder and a
    short report (speed and memory, beside the reference study's; not scores)."""
    from benchmark.gpu_check import CHECK, CheckOptions
    from benchmark.gpu_check import gpu_check as check
    from benchmark.report import build_report

    options = CheckOptions(suite_name, device, preset, pattern, minutes, fit_seconds, predict_seconds, root)
    store, failures = check(options, click.echo, command=command_line(ctx))
    written = build_report(store, out or Path("reports") / CHECK)
    click.echo(written[0].read_text())
    for path in written:
        click.echo(f"wrote {path}")
    if failures:
        raise click.ClickException(f"{len(failures)} row(s) failed: {', '.join(failures)}; the rest were measured")
