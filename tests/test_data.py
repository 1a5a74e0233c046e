"""The copick data layer, on projects built with copick's own API."""

from __future__ import annotations

import json

import copick
import numpy as np
import pandas as pd
import pytest

from benchmark.coords import angstrom_to_voxel, inside_volume, voxel_to_angstrom
from benchmark.data import BenchWarning, Project
from benchmark.errors import BenchError
from benchmark.submission import read_submission, write_submission


def test_lists_runs_and_particles_from_the_config(copick_project):
    project = Project(copick_project(runs=("TS_b", "TS_a")))
    assert project.run_names == ["TS_a", "TS_b"]
    assert project.particles.names[0] == "apo-ferritin"
    assert project.particles["ribosome"].radius == 150.0
    assert project.particles["beta-amylase"].weight == 0.0


def test_tomogram_is_lazy_zyx_float32_with_the_ome_voxel_size(copick_project):
    project = Project(copick_project(shape=(16, 32, 48)))
    tomogram = project.tomogram("TS_1")
    assert tomogram.voxel_size == pytest.approx(10.012)
    assert tomogram.shape == (16, 32, 48)
    assert [level.shape for level in tomogram.levels] == [(16, 32, 48), (8, 16, 24), (4, 8, 12)]
    assert tomogram.level_voxel_size(2) == pytest.approx(4 * 10.012)
    full = tomogram.read()
    assert full.dtype == np.float32
    region = tomogram.read(region=(slice(2, 4), slice(0, 5), slice(10, 12)))
    np.testing.assert_array_equal(region, full[2:4, 0:5, 10:12])
    assert tomogram.read(level=1).shape == (8, 16, 24)


def test_voxel_spacing_matches_within_tolerance_and_picks_the_closest(copick_project):
    config = copick_project()
    from conftest import add_run

    add_run(config, "TS_1", np.zeros((8, 16, 16)), {}, folder_voxel_size=10.05, true_voxel_size=10.05)
    project = Project(config)
    assert project.voxel_spacing("TS_1", 10.012).voxel_size == 10.0
    assert project.voxel_spacing("TS_1", 10.06).voxel_size == 10.05
    with pytest.raises(BenchError, match="no voxel spacing within 1% of 20 Å"):
        project.tomogram("TS_1", voxel_size=20.0)


def test_ground_truth_reads_one_user_and_session_in_angstrom(copick_project):
    config = copick_project()
    run = copick.from_file(str(config)).get_run("TS_1")
    run.new_picks("ribosome", session_id="7", user_id="alice").from_numpy(np.array([[1.0, 2.0, 3.0]]))
    project = Project(config)
    truth = project.ground_truth("TS_1")
    assert sorted(truth["particle_type"]) == ["apo-ferritin", "apo-ferritin", "ribosome"]
    ribosome = truth[truth["particle_type"] == "ribosome"]
    assert ribosome[["x", "y", "z"]].to_numpy().tolist() == [[100.0, 150.0, 80.0]]
    alice = project.ground_truth("TS_1", user_id="alice", session_id="7")
    assert alice[["experiment", "particle_type", "x"]].to_numpy().tolist() == [["TS_1", "ribosome", 1.0]]
    run.new_picks("apo-ferritin", session_id="8", user_id="alice").from_numpy(np.array([[4.0, 5.0, 6.0]]))
    project = Project(config)
    assert len(project.ground_truth("TS_1", user_id="alice", session_id="8")) == 1
    assert sorted(project.ground_truth("TS_1", user_id="alice", session_id="*")["x"]) == [1.0, 4.0]


def test_solution_concatenates_runs(copick_project):
    project = Project(copick_project(runs=("TS_1", "TS_2")))
    solution = project.solution(["TS_1", "TS_2"])
    assert solution.groupby("experiment").size().to_dict() == {"TS_1": 3, "TS_2": 3}


def test_picks_outside_the_volume_are_kept_with_a_counted_warning(copick_project):
    project = Project(copick_project(picks={"ribosome": [[100.0, 100.0, 100.0], [100.0, 100.0, 900.0]]}))
    tomogram = project.tomogram("TS_1")
    with pytest.warns(BenchWarning, match="1 of 2 picks of curation/0 lie outside the 16x32x32 volume"):
        truth = project.ground_truth("TS_1", shape_check=tomogram)
    assert len(truth) == 2


def test_write_picks_stores_bench_user_and_refuses_session_zero(copick_project):
    config = copick_project()
    project = Project(config)
    predictions = pd.DataFrame(
        {
            "particle_type": ["ribosome", "ribosome"],
            "x": [1.0, 4.0],
            "y": [2.0, 5.0],
            "z": [3.0, 6.0],
            "score": [0.9, 0.4],
        }
    )
    project.write_picks("TS_1", predictions, "deepfindet", session_id="1")
    stored = copick.from_file(str(config)).get_run("TS_1").get_picks("ribosome", "bench-deepfindet", "1")[0]
    np.testing.assert_allclose(stored.full_positions(), [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_allclose(stored.scores(), [0.9, 0.4])
    again = Project(config).ground_truth("TS_1", user_id="bench-deepfindet", session_id="1")
    assert len(again) == 2
    with pytest.raises(BenchError, match="reserved for ground truth"):
        project.write_picks("TS_1", predictions, "deepfindet", session_id="0")


def test_submission_csv_round_trip(tmp_path):
    picks = pd.DataFrame(
        {
            "experiment": ["TS_1", "TS_2"],
            "particle_type": ["ribosome", "apo-ferritin"],
            "x": [1.5, 2.0],
            "y": [3.0, 4.0],
            "z": [5.0, 6.0],
            "score": [1.0, 0.5],
        }
    )
    path = tmp_path / "submission.csv"
    write_submission(picks, path)
    assert path.read_text().splitlines()[0] == "id,experiment,particle_type,x,y,z"
    pd.testing.assert_frame_equal(read_submission(path), picks.drop(columns="score"))


def test_angstrom_voxel_conversion_round_trips_and_flips_axes():
    xyz = np.array([[10.012, 20.024, 30.036]])
    np.testing.assert_allclose(angstrom_to_voxel(xyz, 10.012), [[3.0, 2.0, 1.0]])
    np.testing.assert_allclose(voxel_to_angstrom(angstrom_to_voxel(xyz, 10.012), 10.012), xyz)
    assert inside_volume(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 40.0]]), (4, 4, 4), 10.0).tolist() == [
        True,
        False,
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"name": "x"}), "malformed: pickable_objects: Field required"),
        (json.dumps({"pickable_objects": [], "overlay_root": "local:///tmp/x"}), "no pickable particles"),
    ],
)
def test_bad_configs_raise_one_clear_error(tmp_path, content, message):
    config = tmp_path / "copick.json"
    config.write_text(content)
    with pytest.raises(BenchError, match=message):
        Project(config)


def test_missing_config_names_the_fix(tmp_path):
    with pytest.raises(BenchError, match="not found; pass --data"):
        Project(tmp_path / "nope.json")


def test_pyramid_level_voxels_map_to_the_centre_of_their_block():
    # level-1 voxel 0 averages full-resolution voxels 0 and 1: its centre is at index 0.5
    np.testing.assert_allclose(voxel_to_angstrom([[0, 0, 0]], 10.0, level=1), [[5.0, 5.0, 5.0]])
    np.testing.assert_allclose(voxel_to_angstrom([[1, 2, 3]], 10.0, level=2), [[135.0, 95.0, 55.0]])
    xyz = np.array([[123.0, 45.6, 78.9]])
    np.testing.assert_allclose(voxel_to_angstrom(angstrom_to_voxel(xyz, 10.012, 2), 10.012, 2), xyz)


def test_a_block_cut_by_the_edge_of_an_odd_sized_volume_maps_inside_it_given_the_shape():
    # 315 voxels -> 158 at level 1: the last level-1 voxel holds only full-resolution voxel 314
    last = [[0, 157, 157]]
    assert not inside_volume(voxel_to_angstrom(last, 10.0, 1), (2, 315, 315), 10.0).any()
    np.testing.assert_allclose(voxel_to_angstrom(last, 10.0, 1, (2, 315, 315)), [[3140.0, 3140.0, 5.0]])
    np.testing.assert_allclose(voxel_to_angstrom([[0, 1, 2]], 10.0, 1, (2, 315, 315)), [[45.0, 25.0, 5.0]])
