"""The shared 3D-segmenter pieces: sphere targets, balanced patches, tiled inference, picks."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from monai.inferers import sliding_window_inference
from scipy import ndimage

from architectures.parts.volumes import (
    PatchSampler,
    SlidingWindow,
    class_count,
    component_statistics,
    intensity_statistics,
    min_component_sizes,
    paint_spheres,
    picks_from_segmentation,
    segment,
)
from benchmark.coords import XYZ
from benchmark.data import Tomogram
from benchmark.errors import BenchError
from benchmark.particles import ParticleTable, ParticleType

PARTICLES = ParticleTable.czii()
VOXEL = 10.012


def picks(rows: list[tuple[str, float, float, float]]) -> pd.DataFrame:
    """A ground-truth table from (particle_type, x, y, z) rows in Å."""
    return pd.DataFrame(rows, columns=["particle_type", *XYZ])


def ball(shape: tuple[int, int, int], centre_zyx: np.ndarray, radius: float) -> np.ndarray:
    """Voxels of a volume within `radius` of a (z, y, x) point."""
    grid = np.indices(shape).reshape(3, -1).T
    return (np.linalg.norm(grid - centre_zyx, axis=1) <= radius).reshape(shape)


def test_class_count_is_the_largest_label_plus_background():
    assert class_count(PARTICLES) == 7
    twins = ParticleTable([ParticleType("a", 50.0, 1, 1.0), ParticleType("b", 60.0, 1, 1.0)])
    with pytest.raises(BenchError, match="distinct label"):
        class_count(twins)


@pytest.mark.parametrize("xyz", [(150.18, 120.144, 100.12), (153.0, 118.0, 104.5)])
def test_a_pick_paints_a_ball_of_the_radius_fraction_with_its_label_and_nothing_else(xyz):
    shape = (20, 30, 32)
    labels = paint_spheres(shape, picks([("ribosome", *xyz)]), PARTICLES, VOXEL, 0.5)
    centre = np.asarray(xyz[::-1]) / VOXEL
    expected = ball(shape, centre, 0.5 * 150.0 / VOXEL)
    assert labels.dtype == np.uint8
    assert expected.sum() > 100
    np.testing.assert_array_equal(labels, np.where(expected, 4, 0))


def test_smaller_particles_are_painted_over_larger_ones_and_balls_are_clipped_at_the_border():
    shape = (16, 24, 24)
    table = picks([("apo-ferritin", 100.12, 100.12, 80.1), ("ribosome", 110.0, 100.12, 80.1), ("ribosome", 0, 0, 0)])
    labels = paint_spheres(shape, table, PARTICLES, VOXEL, 1.0)
    apo = ball(shape, np.array([8.0, 10.0, 10.0]), 60.0 / VOXEL)
    assert (labels[apo] == 1).all()
    assert labels[0, 0, 0] == 4 and (labels == 4).sum() > 0


def test_intensity_statistics_match_the_whole_volume():
    volume = np.random.default_rng(1).normal(3.0, 2.0, size=(37, 20, 18)).astype(np.float32)
    mean, std = intensity_statistics(Tomogram("TS", "denoised", VOXEL, (volume,)), slab=5)
    assert mean == pytest.approx(volume.mean(dtype=np.float64), rel=1e-9)
    assert std == pytest.approx(volume.std(dtype=np.float64), rel=1e-9)


def sampler(sites: dict[int, list[tuple[int, int, int]]], shape=(30, 40, 40), **options) -> PatchSampler:
    """A sampler over one volume whose target marks each site's centre voxel with its class."""
    target = np.zeros(shape, dtype=np.uint8)
    rows = {}
    for label, centres in sites.items():
        target[tuple(np.asarray(centres).T)] = label
        rows[label] = np.column_stack([np.zeros(len(centres), int), centres])
    volume = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    settings = {"size": 9, "particle_share": 1.0, "jitter": 0, "seed": 0, **options}
    return PatchSampler([volume], [target], rows, **settings)


def test_classes_are_centred_about_equally_often_however_many_particles_each_has():
    interior = np.argwhere(np.ones((20, 30, 30), dtype=bool)) + 5
    chosen = iter(np.random.default_rng(2).permutation(interior)[:69])
    sites = {label: [tuple(next(chosen)) for _ in range(n)] for label, n in {1: 60, 4: 2, 6: 7}.items()}
    _, targets = sampler(sites).batch(3000)
    centre_classes = targets[:, 0, 4, 4, 4].numpy()
    share = {label: np.mean(centre_classes == label) for label in sites}
    assert all(abs(s - 1 / 3) < 0.04 for s in share.values()), share


def test_background_patch_corners_are_uniform_not_piled_at_the_faces():
    patches = sampler({}, shape=(20, 30, 30), size=10, particle_share=0.0)
    corners = np.array([patches.origin()[1] for _ in range(4000)])
    assert corners[:, 0].min() == 0 and corners[:, 0].max() == 10
    counts = np.bincount(corners[:, 0], minlength=11) / len(corners)
    np.testing.assert_allclose(counts, 1 / 11, atol=0.025)  # 11 possible z corners, each equally likely


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_patch_corners_keep_patches_inside_the_volume(share):
    shape = (20, 33, 41)
    border_sites = {1: [(0, 0, 0), (19, 32, 40)], 2: [(10, 0, 40)]}
    patches = sampler(border_sites, shape, size=12, particle_share=share, jitter=20)
    corners = np.array([patches.origin()[1] for _ in range(500)])
    assert (corners >= 0).all() and (corners <= np.asarray(shape) - 12).all()
    images, targets = patches.batch(3)
    assert images.shape == targets.shape == (3, 1, 12, 12, 12)
    assert images.dtype == torch.float32 and targets.dtype == torch.int64


def test_heatmap_targets_come_as_float_maps_cut_and_turned_with_their_image():
    shape = (12, 16, 16)
    volume = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    maps = np.stack([volume, -volume]).astype(np.float16)  # two channels that are functions of the image
    patches = PatchSampler([volume], [maps], {1: np.array([[0, 6, 8, 8]])}, 8, 1.0, 3, seed=0)
    images, targets = patches.batch(20)
    assert targets.shape == (20, 2, 8, 8, 8) and targets.dtype == torch.float32
    torch.testing.assert_close(targets[:, 0], images[:, 0].half().float())
    torch.testing.assert_close(targets[:, 1], -targets[:, 0])


def small_predictor(classes: int = 4) -> torch.nn.Module:
    """A random 5x5x5 convolution + softmax: its output depends on where each window starts."""
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(1, classes, 5, padding=2)
    return torch.nn.Sequential(conv, torch.nn.Softmax(dim=1)).eval()


@pytest.mark.parametrize(
    ("overlap", "mode", "tile_size"),
    [(0.25, "gaussian", (12, 20, 26)), (0.5, "constant", (8, 16, 16)), (0.7, "gaussian", (16, 30, 24))],
)
def test_tiled_inference_equals_one_sliding_window_over_the_whole_volume(overlap, mode, tile_size):
    volume = np.random.default_rng(3).normal(size=(22, 45, 50)).astype(np.float32)
    tomogram = Tomogram("TS", "denoised", VOXEL, (volume,))
    predictor = small_predictor()
    tiled = SlidingWindow((8, 16, 16), overlap, 3, mode, tile_size)
    untiled = SlidingWindow((8, 16, 16), overlap, 3, mode, volume.shape)
    assert len(tiled.tiles(volume.shape)) > 8 and len(untiled.tiles(volume.shape)) == 1
    with torch.inference_mode():
        labels, probability = segment(tomogram, predictor, tiled, "cpu")
        whole_labels, whole_probability = segment(tomogram, predictor, untiled, "cpu")
        image = torch.from_numpy((volume - volume.mean()) / volume.std())[None, None]
        reference = sliding_window_inference(image, (8, 16, 16), 3, predictor, overlap=overlap, mode=mode)[0]
    np.testing.assert_array_equal(labels, whole_labels)
    np.testing.assert_array_equal(probability, whole_probability)
    best, index = reference.max(dim=0)  # and the single tile is MONAI's own sliding window
    np.testing.assert_array_equal(whole_labels, index.numpy())
    np.testing.assert_array_equal(whole_probability, best.numpy().astype(np.float16))


@pytest.mark.parametrize("length", [7, 16, 17, 63, 100])
def test_tile_spans_keep_a_partition_of_the_axis_and_read_whole_windows(length):
    window = SlidingWindow((16, 16, 16), 0.25, 1, "gaussian", (40, 40, 40))
    spans = window.spans(length, 0)
    assert spans[0][2] == 0 and spans[-1][3] == length
    assert all(before[3] == after[2] for before, after in itertools.pairwise(spans))
    assert all(
        read_start <= keep_start < keep_stop <= read_stop for read_start, read_stop, keep_start, keep_stop in spans
    )
    assert all(read_stop - read_start >= min(16, length) for read_start, read_stop, _, _ in spans)


def test_a_painted_sphere_becomes_one_pick_at_its_centre_and_small_components_are_dropped():
    shape = (24, 40, 40)
    centre_xyz = np.array([20.0, 18.0, 11.0]) * VOXEL  # voxel (z, y, x) = (11, 18, 20)
    labels = paint_spheres(shape, picks([("ribosome", *centre_xyz)]), PARTICLES, VOXEL, 0.5)
    labels[2, 2, 2:4] = 1  # a two-voxel apo-ferritin speck
    labels[20, 30:34, 30:34] = 1  # sixteen voxels of apo-ferritin
    probability = np.where(labels > 0, 0.75, 0.2).astype(np.float16)
    probability[labels == 1] = 0.5
    sizes = min_component_sizes(PARTICLES, VOXEL, 0.5, 0.1)
    assert 10 < sizes["apo-ferritin"] < 16
    found = picks_from_segmentation(labels, probability, PARTICLES, VOXEL, sizes)
    assert list(found["particle_type"]) == ["apo-ferritin", "ribosome"]
    ribosome = found.iloc[1]
    np.testing.assert_allclose(ribosome[XYZ].to_numpy(float), centre_xyz, atol=1e-6)
    assert ribosome["score"] == pytest.approx(0.75, abs=1e-3)
    np.testing.assert_allclose(found.iloc[0][XYZ].to_numpy(float), np.array([31.5, 31.5, 20.0]) * VOXEL)


def test_component_statistics_match_scipy():
    rng = np.random.default_rng(4)
    components, count = ndimage.label(rng.random((17, 12, 13)) > 0.7)
    values = rng.random(components.shape)
    sizes, centroids, means = component_statistics(components, count, values, slab=3)
    index = np.arange(1, count + 1)
    np.testing.assert_array_equal(sizes, ndimage.sum_labels(np.ones_like(values), components, index))
    np.testing.assert_allclose(centroids, ndimage.center_of_mass(np.ones_like(values), components, index))
    np.testing.assert_allclose(means, ndimage.mean(values, components, index))
