"""The slice pipeline shared by 2D detectors: images, box targets, augmentation and the merge into 3D picks."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pandas as pd
import pytest

from architectures.parts.merge import clusters_to_picks, merge_detections
from architectures.parts.slices import SliceSpec, augment_slice, box_targets, normalised_volume, slice_images
from benchmark.data import Project, Tomogram
from benchmark.errors import BenchError
from benchmark.particles import ParticleTable

PARTICLES = ParticleTable.czii()


@pytest.fixture
def tomogram(copick_project):
    """A 32x64x80 tomogram at exactly 10 Å a voxel (so the arithmetic below is by hand)."""
    config = copick_project(shape=(32, 64, 80), true_voxel_size=10.0)
    return Project(config).tomogram("TS_1", voxel_size=10.0)


def ribosome_at(x: float, y: float, z: float) -> pd.DataFrame:
    """One ribosome pick (radius 150 Å) at Å coordinates."""
    return pd.DataFrame({"particle_type": ["ribosome"], "x": [x], "y": [y], "z": [z]})


def test_a_particle_has_section_boxes_on_the_slices_within_half_its_radius(tomogram):
    boxes = box_targets(ribosome_at(300.0, 200.0, 100.0), PARTICLES, tomogram, level=0)  # voxel (z 10, y 20, x 30)
    assert boxes["z"].tolist() == list(range(3, 18))  # |dz| <= 0.5 x 15 voxels
    assert (boxes["label"] == 4).all()
    centre = boxes[boxes["z"] == 10].iloc[0]
    assert centre[["x1", "y1", "x2", "y2"]].tolist() == [15.5, 5.5, 45.5, 35.5]  # the 30-voxel diameter, mid-pixel
    six_off = boxes[boxes["z"] == 16].iloc[0]
    half = np.sqrt(15**2 - 6**2)
    assert six_off[["x1", "x2"]].tolist() == pytest.approx([30.5 - half, 30.5 + half])


def test_square_boxes_keep_the_diameter_and_boxes_are_clipped_to_the_slice(tomogram):
    boxes = box_targets(ribosome_at(50.0, 200.0, 100.0), PARTICLES, tomogram, level=0, z_fraction=1.0, box="square")
    assert boxes["z"].tolist() == list(range(0, 26))  # 10 +- 15, cut at the first slice
    assert (boxes["x1"] == 0).all() and (boxes["x2"] == 20.5).all() and (boxes["y2"] - boxes["y1"] == 30).all()


def test_boxes_at_a_coarser_level_are_in_its_pixels(tomogram):
    boxes = box_targets(ribosome_at(300.0, 200.0, 100.0), PARTICLES, tomogram, level=1)
    # level 1: voxel 20 Å, radius 7.5 px, centre index (10 - 0.5) / 2 = 4.75 in z, 9.75 in y, 14.75 in x
    assert boxes["z"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]  # |z - 4.75| <= 3.75
    middle = boxes[boxes["z"] == 5].iloc[0]
    half = np.sqrt(7.5**2 - 0.25**2)
    assert middle[["x1", "x2"]].tolist() == pytest.approx([15.25 - half, 15.25 + half])


def test_an_unknown_box_kind_is_named(tomogram):
    with pytest.raises(BenchError, match="box 'circle'"):
        box_targets(ribosome_at(300.0, 200.0, 100.0), PARTICLES, tomogram, level=0, box="circle")


@pytest.mark.parametrize("seed", range(8))
def test_augmentation_moves_boxes_with_their_pixels(seed):
    image = np.zeros((2, 20, 30), dtype=np.float32)  # not square: a swapped axis would show
    box = np.array([[4.0, 3.0, 11.0, 8.0]])  # x1, y1, x2, y2
    image[:, 3:8, 4:11] = 1.0
    turned, moved = augment_slice(image, box, np.random.default_rng(seed))
    assert turned.shape == image.shape  # flips only: a turn would swap y and x and move the missing wedge
    ys, xs = np.nonzero(turned[0])
    assert moved[0].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert np.array_equal(turned[0], turned[1])


def test_slices_stack_their_neighbours_as_channels_and_repeat_at_the_edges():
    volume = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 2, 3), dtype=np.float32)
    stacked = slice_images(volume, np.array([0, 2, 4]), SliceSpec(neighbours=1, channels=3))
    assert stacked.shape == (3, 3, 2, 3)
    assert stacked[:, :, 0, 0].tolist() == [[0, 0, 1], [1, 2, 3], [3, 4, 4]]
    repeated = slice_images(volume, np.array([2]), SliceSpec(channels=3))
    assert repeated[0, :, 0, 0].tolist() == [2, 2, 2]


def test_normalised_volume_is_clipped_at_the_percentiles_into_zero_one(tomogram):
    volume = normalised_volume(tomogram, SliceSpec(percentiles=(5.0, 95.0)))
    assert volume.dtype == np.float32 and volume.shape == (32, 64, 80)
    assert volume.min() == 0.0 and volume.max() == pytest.approx(1.0)
    assert 0.045 < (volume == 0.0).mean() < 0.055  # both tails clipped: 5% each
    assert 0.045 < (volume >= 1.0 - 1e-6).mean() < 0.055


def test_normalising_an_in_memory_tomogram_leaves_its_data_as_it_was():
    data = np.random.default_rng(0).normal(size=(8, 16, 16)).astype(np.float32)
    normalised_volume(Tomogram("TS", "denoised", 10.0, (data,)), SliceSpec())
    np.testing.assert_array_equal(data, np.random.default_rng(0).normal(size=(8, 16, 16)).astype(np.float32))


@pytest.mark.parametrize(
    "spec", [{"channels": 2}, {"neighbours": 1, "channels": 1}, {"neighbours": -1}, {"percentiles": (90.0, 10.0)}]
)
def test_impossible_slice_specs_are_refused(spec):
    with pytest.raises(BenchError):
        SliceSpec(**spec)


def detections(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["particle_type", "z", "y", "x", "score"])


def test_a_track_of_detections_merges_into_one_pick_at_its_weighted_centre_and_outranks_a_blip():
    rng = np.random.default_rng(0)
    track = [("ribosome", z, 30 + rng.uniform(-0.5, 0.5), 40 + rng.uniform(-0.5, 0.5), 0.9) for z in range(5, 16)]
    blip = [("ribosome", 20, 10.0, 10.0, 0.95)]
    other_type = [("apo-ferritin", z, 30.0, 40.0, 0.8) for z in range(8, 12)]
    gap_then_track = [("ribosome", z, 30.0, 40.0, 0.7) for z in range(22, 26)]  # same place, 6 slices later
    found = merge_detections(
        detections(track + blip + other_type + gap_then_track),
        reach_xy={"ribosome": 3.0, "apo-ferritin": 2.0},
        reach_z=2.0,
        expected_slices={"ribosome": 11.0, "apo-ferritin": 4.0},
    ).sort_values("score", ascending=False, ignore_index=True)
    assert found["particle_type"].tolist() == ["ribosome", "apo-ferritin", "ribosome", "ribosome"]
    first = found.iloc[0]
    assert (first["z"], first["y"], first["x"], first["slices"]) == (pytest.approx(10), pytest.approx(30, abs=0.2),
                                                                    pytest.approx(40, abs=0.2), 11)  # fmt: skip
    assert first["score"] == pytest.approx(0.9)  # as deep as a ribosome: its mean confidence
    ribosomes = found[found["particle_type"] == "ribosome"]
    assert ribosomes["score"].tolist() == pytest.approx([0.9, 0.7 * 4 / 11, 0.95 / 11])  # the blip last


def test_a_chain_links_across_one_missing_slice_and_a_weighted_centre_follows_confidence():
    found = merge_detections(
        detections([("ribosome", 4, 10.0, 10.0, 0.2), ("ribosome", 6, 10.0, 12.0, 0.6)]),  # slice 5 missed
        reach_xy={"ribosome": 3.0}, reach_z=2.0, expected_slices={"ribosome": 2.0},
    )  # fmt: skip
    assert len(found) == 1
    assert found.iloc[0][["z", "x"]].tolist() == pytest.approx([5.5, 11.5])


def test_clusters_become_angstrom_picks_and_no_detections_no_picks(tomogram):
    clusters = pd.DataFrame({"particle_type": ["ribosome"], "z": [10.0], "y": [20.0], "x": [30.0], "score": [0.5]})
    picks = clusters_to_picks(clusters, tomogram, level=0)
    assert picks[["x", "y", "z", "score"]].iloc[0].tolist() == [300.0, 200.0, 100.0, 0.5]
    empty = merge_detections(detections([]), {}, 2.0, {})
    assert clusters_to_picks(empty, tomogram, level=0).empty


def test_the_old_peaks_module_still_works_and_says_where_it_moved():
    sys.modules.pop("benchmark.peaks", None)
    with pytest.warns(DeprecationWarning, match="moved to architectures.parts.peaks"):
        old = importlib.import_module("benchmark.peaks")
    from architectures.parts.peaks import local_maxima

    assert old.local_maxima is local_maxima
