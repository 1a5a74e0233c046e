"""`bench data info/show`: output on good projects, one clear error line on bad ones."""

from __future__ import annotations

import json
import subprocess
import sys

import copick
import numpy as np
import pytest
import zarr
from commands import assert_one_line_error as assert_only_error
from commands import bench


def assert_one_line_error(result, *fragments: str) -> None:
    """The only output line is the error."""
    assert_only_error(result, *fragments, alone=True)


def test_info_prints_runs_shapes_voxel_size_and_counts(copick_project):
    config = copick_project(runs=("TS_1", "TS_2"), shape=(16, 32, 48))
    result = bench("data", "info", "--data", config)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[2:]}
    assert rows["TS_1"][1:6] == ["denoised", "16x32x48", "3", "10.012", "10.000"]
    assert result.output.splitlines()[2].split()[-6:] == [
        "apo-ferritin",
        "beta-amylase",
        "beta-galactosidase",
        "ribosome",
        "thyroglobulin",
        "virus-like-particle",
    ]
    assert rows["total"][1:] == ["4", "0", "0", "2", "0", "0"]


def test_info_json_is_machine_readable(copick_project):
    result = bench("data", "info", "--data", copick_project(), "--json")
    info = json.loads(result.output)
    (run,) = info["runs"]
    assert run["run"] == "TS_1"
    tomogram = run["voxel_spacings"][0]["tomograms"][0]
    assert tomogram == {"type": "denoised", "voxel_size": 10.012, "shape": [16, 32, 32], "levels": 3}
    assert run["ground_truth"]["apo-ferritin"] == 2
    assert run["ground_truth"]["thyroglobulin"] == 0


def test_show_draws_a_png(copick_project, tmp_path):
    out = tmp_path / "slices.png"
    result = bench("data", "show", "--data", copick_project(), "--run", "TS_1", "--out", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_config(tmp_path):
    assert_one_line_error(bench("data", "info", "--data", tmp_path / "nope.json"), "not found", "--data")


def test_malformed_config(tmp_path):
    config = tmp_path / "copick.json"
    config.write_text('{"pickable_objects": [{"name": "a"}]}')
    assert_one_line_error(bench("data", "info", "--data", config), "malformed")


def test_config_without_pickable_particles(copick_project):
    objects = [{"name": "membrane", "is_particle": False, "label": 1}]
    assert_one_line_error(
        bench("data", "info", "--data", copick_project(objects=objects, picks={})), "no pickable particles"
    )


def test_missing_run_suggests_close_names(copick_project, tmp_path):
    result = bench("data", "show", "--data", copick_project(), "--run", "TS_11", "--out", tmp_path / "x.png")
    assert_one_line_error(result, "run 'TS_11'", "did you mean TS_1")


def test_missing_tomogram_type(copick_project, tmp_path):
    args = ["--run", "TS_1", "--out", tmp_path / "x.png", "--tomo-type", "wbp"]
    assert_one_line_error(bench("data", "show", "--data", copick_project(), *args), "no 'wbp' tomogram", "denoised")


def test_no_voxel_spacing_within_tolerance(copick_project, tmp_path):
    args = ["--run", "TS_1", "--out", tmp_path / "x.png", "--voxel-size", "13.4"]
    assert_one_line_error(bench("data", "show", "--data", copick_project(), *args), "no voxel spacing", "13.4")


def test_volume_with_nan(copick_project, tmp_path):
    config = copick_project()
    volume = zarr.open(str(config.parent / "static/ExperimentRuns/TS_1/VoxelSpacing10.000/denoised.zarr/0"))
    volume[3, 4, 5] = np.nan
    result = bench("data", "show", "--data", config, "--run", "TS_1", "--out", tmp_path / "x.png")
    assert_one_line_error(result, "NaN")


@pytest.mark.parametrize("content", ["{broken", '{"points": []}'])
def test_picks_file_with_bad_json(copick_project, content):
    config = copick_project()
    picks = copick.from_file(str(config)).get_run("TS_1").get_picks("ribosome", "curation", "0")[0]
    with open(picks.path, "w") as f:
        f.write(content)
    assert_one_line_error(bench("data", "info", "--data", config), "curation_0_ribosome.json", "fix or remove")


def test_unknown_particle_name_in_picks(copick_project):
    config = copick_project()
    picks = copick.from_file(str(config)).get_run("TS_1").get_picks("ribosome", "curation", "0")[0]
    with open(picks.path.replace("ribosome", "mystery-complex"), "w") as f:
        json.dump({"pickable_object_name": "mystery-complex", "user_id": "curation", "session_id": "0"}, f)
    assert_one_line_error(bench("data", "info", "--data", config), "'mystery-complex'", "known types")


def test_picks_outside_volume_warn_with_a_count_through_the_console_script(copick_project, tmp_path):
    config = copick_project(picks={"ribosome": [[100.0, 100.0, 100.0], [5000.0, 100.0, 100.0]]})
    bench_script = f"{sys.prefix}/bin/bench"
    result = subprocess.run(
        [bench_script, "data", "show", "--data", config, "--run", "TS_1", "--out", tmp_path / "x.png"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines() == [
        "warning: TS_1: 1 of 2 picks of curation/0 lie outside the 16x32x32 volume; they are kept and count as misses"
    ]


def test_errors_through_the_console_script_have_no_traceback(tmp_path):
    bench_script = f"{sys.prefix}/bin/bench"
    result = subprocess.run(
        [bench_script, "data", "info", "--data", tmp_path / "nope.json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: copick config")
    assert len(result.stderr.strip().splitlines()) == 1
