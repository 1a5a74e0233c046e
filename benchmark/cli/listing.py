"""`bench list`: registered architectures (with their source package), post-processing steps and suites."""

from __future__ import annotations

import click


@click.command(name="list")
@click.argument("pattern", default="*")
def list_(pattern: str) -> None:
    """List architectures, post-processing steps and suites whose names match PATTERN (wildcards allowed)."""
    from benchmark.registry import ARCHITECTURES, POSTPROCESSING
    from benchmark.suite import list_suites

    click.echo("architectures:")
    for name in ARCHITECTURES.names(pattern):
        factory = ARCHITECTURES.factories[name]
        kind = getattr(factory, "kind", "")
        click.echo(f"  {name:<24} {kind:<14} from {ARCHITECTURES.sources[name]}")
    click.echo("post-processing steps:")
    for name in POSTPROCESSING.names(pattern):
        click.echo(f"  {name:<24} {'':<14} from {POSTPROCESSING.sources[name]}")
    click.echo("suites:")
    for name in list_suites(pattern):
        click.echo(f"  {name}")
    for registry in (ARCHITECTURES, POSTPROCESSING):
        for plugin, error in registry.failures.items():
            click.echo(
                f"warning: {registry.kind} plug-in '{plugin}' failed to import and was skipped: {error}", err=True
            )
