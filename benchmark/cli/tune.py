"""`bench tune`: the same number of hyper-parameter trials for every architecture of a suite, chosen on val only."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--suite", "suite_name", required=True, help="Suite name (suites/NAME.yaml) or path to a suite file.")
@click.option("--trials", type=click.IntRange(min=1), help="Trials per architecture (not needed to resume).")
@click.option("--arch", "pattern", help="Only the suite's architectures matching this wildcard pattern.")
@click.option(
    "--data", "config", type=click.Path(dir_okay=False), help="Copick config; default: the suite's synthetic preset."
)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Override the suite's device.")
@click.option(
    "--resume",
    type=click.Path(file_okay=False, path_type=Path),
    help="Complete a stopped tuning in this folder, with the trials and architectures it was started with.",
)
@click.option(
    "--results", "root", default="results", show_default=True, type=click.Path(file_okay=False, path_type=Path)
)
def tune(
    suite_name: str,
    trials: int | None,
    pattern: str | None,
    config: str | None,
    device: str | None,
    resume: Path | None,
    root: Path,
) -> None:
    """Search each architecture's hyper-parameters on val with Optuna (TPE, a median pruner on the learning curve),
    the same trials for each; writes a suite file with the chosen configs (tuned.yaml) into the tuning folder."""
    from benchmark.processes import wait_as_jobs_do

    wait_as_jobs_do()  # before torch loads: epochs timed here as long as a job's
    import json

    from benchmark.data import Project
    from benchmark.environment import git_state
    from benchmark.errors import BenchError
    from benchmark.runner import resolve_data
    from benchmark.suite import load_suite
    from benchmark.tune import RECORD, TUNED, resume_tuning, search_space, start

    suite = load_suite(suite_name)
    if resume is not None:
        if trials is not None or pattern is not None:
            raise BenchError("a resume keeps the trials and architectures it was started with; drop --trials/--arch")
        tuning = resume_tuning(resume, suite)
        pattern = json.loads((resume / RECORD).read_text())["arch"]
    elif trials is None:
        raise BenchError("give the number of trials per architecture: --trials N")
    specs = [spec for spec in suite.select(pattern) if search_space(spec, suite)]
    if not specs:
        raise BenchError(f"no architecture of suite {suite.name} has a search space; add a tune: section")
    if resume is None:
        tuning = start(suite, trials, pattern, root, device or suite.device, git_state()["short"])
    click.echo(f"tuning: {tuning.folder} ({tuning.trials} trials for each of {', '.join(s.label for s in specs)})")
    project = Project(resolve_data(suite, config, click.echo)["config"], suite.metric)
    tuning.tune(specs, project, click.echo)
    click.echo(f"tuned suite: {tuning.folder / TUNED}  (next: bench report --results {tuning.folder})")
