"""`bench run`: train and evaluate a suite's architectures under identical conditions."""

from __future__ import annotations

from pathlib import Path

import click

from benchmark.cli.options import command_line


def _seeds(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    """Parse '0,1,2' into seeds."""
    from benchmark.errors import BenchError
    from benchmark.suite import check_seeds

    if value is None:
        return None
    try:
        seeds = [int(s) for s in value.split(",") if s.strip()]
        check_seeds(seeds, f"--seeds {value}")
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of integers, e.g. 0,1,2") from None
    except BenchError as err:
        raise click.BadParameter(str(err)) from None
    return seeds


def _sbatch(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str | bool]:
    """Parse NAME=VALUE (or a flag's NAME) sbatch options."""
    from benchmark.errors import BenchError
    from benchmark.suite import sbatch_options

    given = {}
    for item in value:
        name, equals, setting = item.partition("=")
        given[name] = setting if equals else True
    try:
        return sbatch_options(given, "--sbatch")
    except BenchError as err:
        raise click.BadParameter(str(err)) from None


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
@click.option(
    "--write-picks/--no-write-picks",
    default=None,
    help="Write predictions back into the copick project as picks of user bench-<label> (default: write).",
)
@click.option(
    "--keep-models/--no-keep-models",
    default=None,
    help="Keep each job's saved model in jobs/<label>-seed<N>-<fold>/model/ for bench predict (default: keep); "
    "--no-keep-models deletes them when the run ends.",
)
@click.option(
    "--launcher",
    type=click.Choice(["process", "local", "slurm"]),
    help="Where jobs run: child processes of this command (default), submitit's local executor, or SLURM via "
    "submitit. A resume keeps the last run's launcher, jobs and SLURM settings unless given.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    help="Jobs at once (default 1): each on its own GPU on cuda, sharing the cores on CPU; on SLURM, jobs submitted "
    "at once.",
)
@click.option("--partition", help="SLURM partition (overrides the suite's launcher.partition).")
@click.option("--account", help="SLURM account to charge.")
@click.option("--gpus-per-job", type=click.IntRange(min=0), help="SLURM GPUs per job (default: 1 on cuda, else 0).")
@click.option("--cpus-per-job", type=click.IntRange(min=1), help="SLURM CPUs per job (its threads).")
@click.option("--mem-gb", type=click.IntRange(min=1), help="SLURM memory per job, GB.")
@click.option("--sbatch", multiple=True, callback=_sbatch, metavar="NAME[=VALUE]", help="Extra sbatch option (repeat).")
@click.pass_context
def run(
    ctx, suite_name, config, pattern, device, seeds, resume, root, write_picks, keep_models, launcher, jobs, **slurm
) -> None:
    """Train, tune thresholds on val, and evaluate on test every architecture of a suite. A resume completes a run
    with the options it was started with (--data, --arch, --device, --seeds, --write-picks, --keep-models)."""
    from benchmark.runner import RunOptions, run_suite
    from benchmark.suite import load_suite

    suite = load_suite(suite_name)
    given = {name: value for name, value in slurm.items() if value not in (None, {})}
    if given and launcher != "slurm":
        option = "--" + next(iter(given)).replace("_", "-")
        raise click.UsageError(f"{option} is a SLURM setting; add --launcher slurm, or drop it")
    store, failures = run_suite(
        suite,
        RunOptions(suite_name, config, pattern, device, seeds, write_picks, keep_models),
        resume=resume,
        root=root,
        command=command_line(ctx),
        echo=click.echo,
        launcher=launcher,
        jobs=jobs,
        launch_options=given,
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
