"""Click options and helpers shared by several commands."""

import shlex

import click
from click.core import ParameterSource

data_option = click.option(
    "--data",
    "config",
    required=True,
    type=click.Path(dir_okay=False, path_type=str),
    help="Path to a copick JSON config (the Kaggle download's, a Data Portal one, or bench data synth's).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def command_line(ctx: click.Context) -> str:
    """The command as typed, rebuilt from the parameters not left at their defaults (for the manifest)."""
    parts = ["bench", ctx.info_name]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if ctx.get_parameter_source(param.name) is ParameterSource.DEFAULT:
            continue
        if isinstance(value, dict):
            for name, setting in value.items():
                parts += [param.opts[0], name if setting is True else f"{name}={setting}"]
            continue
        if isinstance(value, bool):
            parts.append(param.opts[0] if value else param.secondary_opts[0])
            continue
        if isinstance(value, list):
            value = ",".join(map(str, value))
        parts += [param.opts[0], str(value)]
    return shlex.join(parts)
