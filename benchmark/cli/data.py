"""`bench data`: inspect a copick project, generate the synthetic one, draw a tomogram."""

from __future__ import annotations

import json
from pathlib import Path

import click

from benchmark.cli.options import data_option, json_option
from benchmark.conventions import CZII_VOXEL_SIZE, DEFAULT_TOMO_TYPE, GROUND_TRUTH


@click.group()
def data() -> None:
    """Inspect copick projects and generate the embedded synthetic dataset."""


@data.command()
@data_option
@click.option("--user-id", default=GROUND_TRUTH[0], show_default=True, help="Ground-truth user id.")
@click.option(
    "--session-id", default=GROUND_TRUTH[1], show_default=True, help="Ground-truth session id (wildcards allowed)."
)
@json_option
def info(config: str, user_id: str, session_id: str, as_json: bool) -> None:
    """Per run: tomogram types and shapes, voxel size, ground-truth counts per particle type."""
    from benchmark.data import Project

    project = Project(config)
    described = project.describe(ground_truth=(user_id, session_id))
    if as_json:
        click.echo(json.dumps({"config": str(Path(config).resolve()), "runs": described}, indent=2))
        return
    click.echo(f"copick project {config}: {len(described)} runs, particles {', '.join(project.particles.names)}")
    click.echo(f"ground truth: {user_id}/{session_id}")
    click.echo(_info_table(described, project.particles.names))


def _info_table(described: list[dict], particles: list[str]) -> str:
    """Render `Project.describe` as an aligned text table, one row per run and tomogram, then totals."""
    import pandas as pd

    rows = []
    for run in described:
        tomograms = [(s, t) for s in run["voxel_spacings"] for t in s["tomograms"]] or [({}, {})]
        for spacing, tomo in tomograms:
            rows.append(
                {
                    "run": run["run"],
                    "tomogram": tomo.get("type", "-"),
                    "shape (z,y,x)": "x".join(map(str, tomo.get("shape", []))) or "-",
                    "levels": str(tomo.get("levels", "-")),
                    "voxel Å": f"{tomo['voxel_size']:.3f}" if tomo else "-",
                    "folder Å": f"{spacing['copick_voxel_size']:.3f}" if spacing else "-",
                    **run["ground_truth"],
                }
            )
    totals = {p: sum(run["ground_truth"][p] for run in described) for p in particles}
    rows.append(
        {
            "run": "total",
            "tomogram": "",
            "shape (z,y,x)": "",
            "levels": "",
            "voxel Å": "",
            "folder Å": "",
            **totals,
        }
    )
    return pd.DataFrame(rows).to_string(index=False)


@data.command()
@click.option("--preset", type=click.Choice(["smoke", "demo", "full"]), default="demo", show_default=True, help="Size.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed; same seed, same data.")
@click.option("--overwrite", is_flag=True, help="Replace an existing project in --out.")
def synth(preset: str, out: Path, seed: int, overwrite: bool) -> None:
    """Write a synthetic copick project in the CZII Kaggle layout."""
    import time

    from benchmark.synth import generate

    start = time.perf_counter()
    config = generate(out, preset=preset, seed=seed, overwrite=overwrite)
    click.echo(f"wrote {config} (preset {preset}, seed {seed}) in {time.perf_counter() - start:.1f} s")


@data.command()
@data_option
@click.option("--run", "run_name", required=True, help="Run (experiment) name, e.g. TS_5_4.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PNG to write.")
@click.option("--tomo-type", default=DEFAULT_TOMO_TYPE, show_default=True)
@click.option("--voxel-size", default=CZII_VOXEL_SIZE, show_default=True, type=float, help="Voxel size in Å.")
def show(config: str, run_name: str, out: Path, tomo_type: str, voxel_size: float) -> None:
    """Draw orthogonal central slices with ground-truth particles circled in their class colours."""
    from benchmark.data import Project
    from benchmark.show import draw_orthoslices

    project = Project(config)
    tomogram = project.tomogram(run_name, tomo_type, voxel_size)
    picks = project.ground_truth(run_name, shape_check=tomogram)
    draw_orthoslices(tomogram, picks, project.particles, out)
    click.echo(f"wrote {out}")
