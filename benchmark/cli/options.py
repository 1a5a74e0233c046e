"""Click options shared by several commands."""

import click

data_option = click.option(
    "--data",
    "config",
    required=True,
    type=click.Path(dir_okay=False, path_type=str),
    help="Path to a copick JSON config (the Kaggle download's, a Data Portal one, or bench data synth's).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
