"""`bench suite`: the JSON schema of suite files, and a check of one."""

from __future__ import annotations

import json

import click


@click.group()
def suite() -> None:
    """Suite files: their JSON schema, and a check of one."""


@suite.command()
def schema() -> None:
    """Print the JSON schema of a suite file, for editors to complete and check suite YAML (e.g. save it as
    suite.schema.json and start a suite file with `# yaml-language-server: $schema=suite.schema.json`)."""
    from benchmark.suite import suite_schema

    click.echo(json.dumps(suite_schema(), indent=2))


@suite.command()
@click.argument("file")
def check(file: str) -> None:
    """Load the suite FILE (a path, or a name in suites/) as bench run would: OK, or what is wrong in one line."""
    from benchmark.suite import load_suite

    loaded = load_suite(file)
    count = len(loaded.architectures)
    click.echo(f"OK: {loaded.path} (suite '{loaded.name}', {count} architecture{'s' * (count != 1)})")
