"""Shared fixtures: small copick projects built with copick's own API, and the smoke synthetic dataset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import copick
import numpy as np
import pytest
from copick.util.ome import volume_pyramid, write_ome_zarr_3d

from benchmark.particles import CZII_PARTICLES

PLUGINS = Path(__file__).parent / "tests" / "plugins"
END_TO_END = {"smoke_run", "two_at_once", "finished", "alone"}  # fixtures that run a suite with `bench run`
CZII_OBJECTS = [
    {"name": p.name, "is_particle": True, "label": p.label, "color": list(p.color), "radius": p.radius}
    for p in CZII_PARTICLES
]


def write_config(folder: Path, objects: list[dict] | None = None) -> Path:
    """Write a static + overlay copick config (the Kaggle layout) and return its path."""
    config = folder / "copick.json"
    folder.mkdir(parents=True, exist_ok=True)
    config.write_text(
        json.dumps(
            {
                "config_type": "filesystem",
                "name": "test project",
                "pickable_objects": CZII_OBJECTS if objects is None else objects,
                "static_root": f"local://{folder / 'static'}",
                "overlay_root": f"local://{folder / 'overlay'}",
                "overlay_fs_args": {"auto_mkdir": True},
            }
        )
    )
    return config


def add_run(
    config: Path,
    name: str,
    volume: np.ndarray,
    picks: dict[str, np.ndarray],
    folder_voxel_size: float = 10.0,
    true_voxel_size: float = 10.012,
    tomo_type: str = "denoised",
) -> None:
    """Add a run through copick: a 3-level OME-Zarr tomogram in the static tree, curation/0 picks in the overlay."""
    static = json.loads(config.read_text())
    writer = copick.from_string(json.dumps({**static, "overlay_root": static["static_root"], "static_root": None}))
    spacing = writer.new_run(name, exist_ok=True).new_voxel_spacing(folder_voxel_size, exist_ok=True)
    tomogram = spacing.new_tomogram(tomo_type, exist_ok=True)
    write_ome_zarr_3d(tomogram.zarr(), volume_pyramid(volume.astype(np.float32), true_voxel_size, 3))
    run = copick.from_file(str(config)).get_run(name)
    for particle, xyz in picks.items():
        run.new_picks(particle, session_id="0", user_id="curation", exist_ok=True).from_numpy(np.asarray(xyz))


@pytest.fixture
def copick_project(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a copick project with one run TS_1 (16x32x32 noise, two particles) unless told otherwise."""

    def build(
        runs: tuple[str, ...] = ("TS_1",),
        shape: tuple[int, int, int] = (16, 32, 32),
        picks: dict[str, np.ndarray] | None = None,
        objects: list[dict] | None = None,
        **run_options,
    ) -> Path:
        config = write_config(tmp_path / "project", objects)
        rng = np.random.default_rng(0)
        default = {
            "ribosome": [[100.0, 150.0, 80.0]],
            "apo-ferritin": [[200.0, 100.0, 60.0], [50.0, 50.0, 50.0]],
        }
        for name in runs:
            add_run(config, name, rng.normal(size=shape), default if picks is None else picks, **run_options)
        return config

    return build


@pytest.fixture(scope="session", autouse=True)
def synthetic_cache(tmp_path_factory) -> Path:
    """Generate embedded datasets into a per-session cache, never the user's (subprocesses inherit it)."""
    cache = tmp_path_factory.mktemp("cryoet-bench-cache")
    os.environ["CRYOET_BENCH_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def smoke_config(synthetic_cache) -> Path:
    """The smoke suite's synthetic project, generated once per session where `bench run` looks for it."""
    from benchmark.runner import resolve_data
    from benchmark.suite import load_suite

    return Path(resolve_data(load_suite("smoke"), None, echo=lambda line: None)["config"])


@pytest.fixture(scope="session")
def plugin_path(tmp_path_factory) -> str:
    """The example, faulty and counting plug-ins of tests/plugins, pip-installed into a folder for PYTHONPATH."""
    target, sources = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("sources")
    for package in ("example_plugin", "faulty_plugin", "counting_plugin"):
        source = shutil.copytree(PLUGINS / package, sources / package)  # keep build debris out of the checkout
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
             "--target", str(target), str(source)],
            check=True,
        )  # fmt: skip
    return str(target)


@pytest.fixture(scope="session")
def smoke_run(smoke_config, tmp_path_factory):
    """One finished smoke suite run with two seeds, by the default launcher, one job at a time."""
    from commands import bench

    from benchmark.results import ResultsStore

    root = tmp_path_factory.mktemp("results")
    result = bench("run", "--suite", "smoke", "--results", root, "--seeds", "0,1")
    assert result.exit_code == 0, result.output
    return ResultsStore.latest("smoke", root)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests of a suite run's results are end-to-end: marked slow, so the quick set (-m "not slow") leaves them out."""
    for item in items:
        if END_TO_END & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
