"""The synthetic CZII generator: layout, read-back through the data layer, determinism and the physics."""

from __future__ import annotations

import json
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import zarr
from scipy.spatial.distance import cdist
from scipy.spatial.transform import Rotation

from benchmark.coords import XYZ, inside_volume
from benchmark.data import Project
from benchmark.errors import BenchError
from benchmark.particles import ParticleTable
from benchmark.synth import PRESETS, generate
from benchmark.synth.physics import AMPLITUDE_CONTRAST, WAVELENGTH, Imaging, ctf, reconstruct
from benchmark.synth.presets import REAL_FIELD, REAL_MEDIANS
from benchmark.synth.project import RUN_NAMES, _keep_freed_memory
from benchmark.synth.render import render, render_body
from benchmark.synth.scene import Placed, draw_counts
from benchmark.synth.shapes import DECOYS, PARTICLE_BODIES, PROTEIN_DENSITY

SMOKE = PRESETS["smoke"]
VOXEL = 10.012
PARTICLES = ParticleTable.czii()


def _generate(root: Path, seed: int) -> Path:
    """The smoke project of a seed, written under root."""
    return generate(root / f"seed{seed}", "smoke", seed=seed, progress=False)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    """Config of the smoke project, seed 0."""
    return _generate(tmp_path_factory.mktemp("synth"), 0)


@pytest.fixture(scope="module")
def project(smoke: Path) -> Project:
    """The smoke project opened through the data layer."""
    return Project(smoke)


def test_layout_is_the_kaggle_one(smoke: Path) -> None:
    out = smoke.parent
    config = json.loads(smoke.read_text())
    assert config["config_type"] == "filesystem"
    assert config["static_root"] == str(out / "static") and config["overlay_root"] == str(out / "overlay")
    assert Path(config["static_root"]).is_absolute()
    assert config["overlay_fs_args"] == {"auto_mkdir": True}
    objects = {o["name"]: o for o in config["pickable_objects"]}
    assert objects["ribosome"]["pdb_id"] == "6EK0" and objects["virus-like-particle"]["radius"] == 135
    assert all(o["is_particle"] for o in objects.values()) and set(objects) == set(PARTICLES.names)
    assert "SYNTHETIC" in config["description"]
    provenance = json.loads((out / "synth.json").read_text())
    assert provenance["synthetic"] and provenance["preset"] == "smoke" and provenance["seed"] == 0
    assert sorted(p.name for p in (out / "static" / "ExperimentRuns").iterdir()) == sorted(RUN_NAMES)
    for run in RUN_NAMES:
        spacings = [p for p in (out / "static" / "ExperimentRuns" / run).iterdir() if not p.name.startswith(".")]
        assert [p.name for p in spacings] == ["VoxelSpacing10.000"]  # copick keeps hidden .meta markers
        tomogram = zarr.open_group(str(spacings[0] / "denoised.zarr"), mode="r")
        datasets = tomogram.attrs["multiscales"][0]["datasets"]
        assert [d["path"] for d in datasets] == ["0", "1", "2"]
        assert datasets[0]["coordinateTransformations"][0]["scale"] == [VOXEL] * 3
        assert tomogram["0"].dtype == np.float32
        picks = sorted(p.name for p in (out / "overlay" / "ExperimentRuns" / run / "Picks").iterdir())
        assert picks == sorted(f"curation_0_{name}.json" for name in PARTICLES.names)


def test_reads_back_through_the_data_layer(project: Project) -> None:
    assert project.run_names == sorted(RUN_NAMES)
    tomogram = project.tomogram("TS_5_4")
    assert tomogram.voxel_size == pytest.approx(VOXEL)
    assert tomogram.shape == SMOKE.shape
    assert [level.shape for level in tomogram.levels] == [(48, 128, 128), (24, 64, 64), (12, 32, 32)]
    volume = tomogram.read()
    assert abs(volume.mean()) < 1e-3 and volume.std() == pytest.approx(1.0, abs=1e-3)
    truth = project.solution(project.run_names)
    assert truth.groupby("particle_type").size().reindex(PARTICLES.names).min() > 0
    assert truth.groupby("experiment").size().min() >= len(PARTICLES.names)


def test_picks_lie_in_the_ice_slab_and_keep_apart(project: Project) -> None:
    shape = np.array(SMOKE.shape)
    slab = np.array([1 - SMOKE.slab_fraction, 1 + SMOKE.slab_fraction]) / 2 * (shape[0] - 1) * VOXEL
    for run in project.run_names:
        truth = project.ground_truth(run)
        xyz = truth[XYZ].to_numpy()
        radii = truth["particle_type"].map(lambda name: PARTICLE_BODIES[name].radius).to_numpy()
        assert inside_volume(xyz, SMOKE.shape, VOXEL).all()
        assert np.all(xyz[:, 2] - radii >= slab[0] - 1e-6) and np.all(xyz[:, 2] + radii <= slab[1] + 1e-6)
        gaps = cdist(xyz, xyz) - (radii[:, None] + radii[None, :])
        np.fill_diagonal(gaps, 0.0)
        assert gaps.min() >= -1e-6


def test_same_seed_same_data_other_seed_other_data(smoke: Path, tmp_path: Path) -> None:
    same, other = Project(_generate(tmp_path, 0)), Project(_generate(tmp_path, 1))
    first = Project(smoke)
    for run in RUN_NAMES:
        volume = first.tomogram(run).read()
        assert np.array_equal(volume, same.tomogram(run).read())
        assert not np.allclose(volume, other.tomogram(run).read())
        assert first.ground_truth(run).equals(same.ground_truth(run))
    assert not first.solution(RUN_NAMES).equals(other.solution(RUN_NAMES))


def test_existing_project_is_reused_or_refused(smoke: Path, tmp_path: Path) -> None:
    written = (smoke.parent / "synth.json").stat().st_mtime_ns
    assert generate(smoke.parent, "smoke", seed=0, progress=False) == smoke
    assert (smoke.parent / "synth.json").stat().st_mtime_ns == written
    tiny = replace(SMOKE, name="tiny", shape=(16, 24, 24))
    generate(tmp_path, tiny, seed=0, progress=False)
    with pytest.raises(BenchError, match="--overwrite"):
        generate(tmp_path, tiny, seed=1, progress=False)
    generate(tmp_path, tiny, seed=1, overwrite=True, progress=False)
    assert json.loads((tmp_path / "synth.json").read_text())["seed"] == 1


def test_ctf_is_dark_at_low_frequency_with_its_first_zero_inside_nyquist() -> None:
    k = np.linspace(0.0, 1 / (2 * VOXEL), 20001)
    for defocus in (2.5, 5.0):
        transfer = ctf(k**2, defocus)
        assert transfer[0] == pytest.approx(-AMPLITUDE_CONTRAST)
        first_zero = k[np.argmax(transfer > 0)]
        expected = math.sqrt((math.pi - math.asin(AMPLITUDE_CONTRAST)) / (math.pi * WAVELENGTH * defocus * 1e4))
        assert first_zero == pytest.approx(expected, rel=2e-3)
    assert 1 / k[np.argmax(ctf(k**2, 2.5) > 0)] == pytest.approx(22.4, abs=0.5)
    assert 1 / k[np.argmax(ctf(k**2, 5.0) > 0)] == pytest.approx(31.7, abs=0.5)


def _scene(*names: str, shape: tuple[int, int, int] = (48, 96, 96)) -> list[Placed]:
    """One particle of each name, spread along x at mid z and y, each randomly rotated."""
    rotations = Rotation.random(len(names), rng=np.random.default_rng(3)).as_matrix()
    return [
        Placed(
            name, PARTICLE_BODIES[name], np.array([shape[0] / 2, shape[1] / 2, (i + 0.5) * shape[2] / len(names)]), r
        )
        for i, (name, r) in enumerate(zip(names, rotations, strict=True))
    ]


@pytest.mark.parametrize("noise_std", [0.0, 0.5])
def test_missing_wedge_is_empty_in_fourier_space(noise_std: float) -> None:
    density = render(_scene("ribosome", "apo-ferritin", "thyroglobulin"), (48, 96, 96), VOXEL)
    imaging = Imaging(VOXEL, 3.0, noise_std=noise_std, denoise_sigma=0.0)
    power = np.abs(scipy.fft.rfftn(reconstruct(density, imaging, np.random.default_rng(0)))) ** 2
    kz = np.abs(scipy.fft.fftfreq(48))[:, None, None]
    kx = scipy.fft.rfftfreq(96)[None, None, :]
    missing = np.broadcast_to(kz > kx + 1e-9, power.shape)
    assert power[missing].sum() < 1e-9 * power[~missing].sum()
    assert power[~missing].sum() > 0


def test_heavy_particles_come_out_darker_than_light_ones() -> None:
    scene = _scene("ribosome", "beta-amylase")
    volume = reconstruct(render(scene, (48, 96, 96), VOXEL), Imaging(VOXEL, 3.5), np.random.default_rng(0))
    grid = np.indices(volume.shape).reshape(3, -1).T
    means = {}
    for placed in scene:
        near = np.linalg.norm(grid - placed.centre, axis=1) * VOXEL <= 0.5 * PARTICLES[placed.kind].radius
        means[placed.kind] = volume.reshape(-1)[near].mean()
    assert means["ribosome"] < means["beta-amylase"] < 0


@pytest.mark.parametrize("name", sorted(PARTICLE_BODIES))
def test_particle_density_carries_its_mass_within_its_radius(name: str) -> None:
    body = PARTICLE_BODIES[name]
    centre = np.array([20.3, 21.6, 19.8])
    origin, block = render_body(Placed(name, body, centre, Rotation.random(rng=1).as_matrix()), VOXEL)
    assert block.sum() * PROTEIN_DENSITY * VOXEL**3 / 1000 == pytest.approx(body.mass_kda, rel=1e-4)
    occupied = np.argwhere(block > 0) + origin
    assert np.linalg.norm(occupied - centre, axis=1).max() * VOXEL <= body.radius
    for face in (block[0], block[-1], block[:, 0], block[:, -1], block[..., 0], block[..., -1]):
        assert not face.any()


def test_decoys_stay_within_their_radius() -> None:
    rng = np.random.default_rng(0)
    for name, factory in DECOYS.items():
        body = factory(rng, 400.0)
        centre = np.full(3, 50.5)
        origin, block = render_body(Placed(name, body, centre, Rotation.random(rng=rng).as_matrix()), VOXEL)
        assert block.sum() > 0
        occupied = np.argwhere(block > 0) + origin
        assert np.linalg.norm(occupied - centre, axis=1).max() * VOXEL <= body.radius, name


def test_counts_are_heavy_tailed_around_the_real_medians() -> None:
    full = replace(PRESETS["full"], min_count=0)
    rng = np.random.default_rng(0)
    draws = [draw_counts(full, rng) for _ in range(400)]
    for name, median in REAL_MEDIANS.items():
        counts = np.array([d[name] for d in draws])
        assert abs(np.median(counts) - median) <= max(1, 0.2 * median), name
        assert np.percentile(counts, 95) > 2 * median, name


def test_counts_scale_with_the_field_of_view() -> None:
    demo, full = (replace(PRESETS[name], min_count=0, crowding=1.0) for name in ("demo", "full"))
    rng = np.random.default_rng(1)
    ribosomes = [np.mean([draw_counts(p, rng)["ribosome"] for _ in range(300)]) for p in (demo, full)]
    field = demo.shape[1] * demo.shape[2] / (REAL_FIELD[0] * REAL_FIELD[1])
    assert ribosomes[0] / ribosomes[1] == pytest.approx(field, rel=0.15)


def _big_array_sum() -> float:
    """Allocate, fill and free a 64 MB array (past glibc's largest mmap threshold); its sum."""
    return float(np.ones(16_000_000, dtype=np.float32).sum())


def test_workers_that_keep_freed_memory_still_allocate_big_arrays() -> None:
    with ProcessPoolExecutor(1, initializer=_keep_freed_memory) as pool:
        assert [pool.submit(_big_array_sum).result() for _ in range(3)] == [16e6] * 3
