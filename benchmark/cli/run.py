"""`bench run`: train and evaluate a suite's architectures under identical conditions."""

from __future__ import annotations

import shlex
from pathlib import Path

import click
from click.core import ParameterSource


def _seeds(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    """Parse '0,1,2' into seeds."""
    if value is None:
        return None
    try:
        return [int(s) for s in value.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of integers, e.g. 0,1,2") from None


@click.command()
@click.option("--suite", "suite_name", required=True, help="Suite name (suites/NAME.yaml) or path to a suite file.")
@click.option(
    "--data", "config", type=click.Path(dir_okay=False), help="Copick config; default: the suite's synthetic preset."
)
@click.option("--arch", "pattern", help="Only the suite's architectures matching this wildcard pattern.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Override the suite's device.")
@click.option("--seeds", callback=_seeds, help="Override the suite's seeds, e.g. 0,1,2.")
@click.option(
    "--resume",
    is_flag=False,
    flag_value="latest",
    default=None,
    metavar="[DIR]",
    help="Complete an interrupted run: the suite's latest results folder, or DIR.",
)
@click.option(
    "--results", "root", default="results", show_default=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.option("--no-write-picks", is_flag=True, help="Do not write predictions back into the copick project.")
@click.pass_context
def run(ctx, suite_name, config, pattern, device, seeds, resume, root, no_write_picks) -> None:
    """Train, tune thresholds on val, and evaluate on test every architecture of a suite."""
    from benchmark.runner import run_suite
    from benchmark.suite import load_suite

    suite = load_suite(suite_name)
    store, failures = run_suite(
        suite,
        config=config,
        pattern=pattern,
        device=device,
        seeds=seeds,
        resume=resume,
        root=root,
        write_picks=not no_write_picks,
        command=_command_line(ctx),
        echo=click.echo,
    )
    scores, split = store.table("scores"), suite.evaluate
    evaluated = scores[(scores["split"] == split) & (scores["particle_type"] == "weighted")]
    if not evaluated.empty:
        summary = evaluated.groupby("architecture")["f4"].agg(["mean", "std", "count"])
        summary = summary.sort_values("mean", ascending=False)
        click.echo(f"{split} weighted F4 (competition score):")
        table = summary.rename(columns={"count": "runs"}).to_string(float_format="{:.4f}".format, na_rep="-")
        click.echo(table)
    click.echo(f"results: {store.folder}  (next: bench report --results {store.folder})")
    if failures:
        raise click.ClickException(
            f"{len(failures)} job(s) failed: {', '.join(failures)}; see {store.folder}/manifest.json"
        )


def _command_line(ctx: click.Context) -> str:
    """The command as typed, rebuilt from the parameters not left at their defaults (for the manifest)."""
    parts = ["bench", ctx.info_name]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if ctx.get_parameter_source(param.name) is ParameterSource.DEFAULT:
            continue
        if isinstance(value, list):
            value = ",".join(map(str, value))
        parts += [param.opts[0]] if value is True else [param.opts[0], str(value)]
    return shlex.join(parts)
