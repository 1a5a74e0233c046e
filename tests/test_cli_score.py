"""`bench score`: text and JSON output, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmark.cli import cli

SOLUTION = """experiment,particle_type,x,y,z
TS_1,apo-ferritin,100,100,100
TS_1,ribosome,500,500,500
TS_2,ribosome,500,500,500
TS_2,thyroglobulin,900,900,900
"""
# apo-ferritin: found (10 Å < 30) -> tp 1, F4 1; ribosome: TS_1 found twice, TS_2 missed -> tp 1, fp 1, fn 1,
# P 1/2, R 1/2, F4 1/2; thyroglobulin missed -> F4 0; TS_3 is not in the solution and ignored.
# weighted = (1 * 1 + 1 * 0.5 + 2 * 0) / 7 = 1.5 / 7 = 0.214286; mean F4 = 1.5 / 6 = 0.25
SUBMISSION = """id,experiment,particle_type,x,y,z
0,TS_1,apo-ferritin,110,100,100
1,TS_1,ribosome,520,500,500
2,TS_1,ribosome,480,500,500
3,TS_3,ribosome,0,0,0
"""


@pytest.fixture
def csvs(tmp_path: Path) -> tuple[Path, Path]:
    """A solution and a submission CSV."""
    solution, submission = tmp_path / "solution.csv", tmp_path / "submission.csv"
    solution.write_text(SOLUTION)
    submission.write_text(SUBMISSION)
    return solution, submission


def run(*args: object):
    """Invoke `bench score` in-process."""
    return CliRunner().invoke(cli, ["score", *map(str, args)])


def assert_one_error_line(result, *fragments: str) -> None:
    """A non-zero exit whose output is a single 'Error: ...' line containing the fragments."""
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_text_output(csvs):
    result = run(*csvs)
    assert result.exit_code == 0, result.output
    assert "weighted F4 (competition score): 0.214286" in result.output
    assert "mean F4: 0.250000" in result.output
    ribosome = next(line for line in result.output.splitlines() if line.strip().startswith("ribosome"))
    assert ribosome.split() == ["ribosome", "1", "0.500", "0.500", "0.500", "0.500", "1", "1", "1"]
    assert "TS_3" in result.output  # the ignored experiment is mentioned


def test_json_output(csvs):
    result = run(*csvs, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["weighted"] == pytest.approx(1.5 / 7)
    assert report["mean"] == pytest.approx(0.25)
    assert report["ignored_experiments"] == ["TS_3"]
    by_type = {row["particle_type"]: row for row in report["per_type"]}
    assert len(by_type) == 6
    assert (by_type["ribosome"]["tp"], by_type["ribosome"]["fp"], by_type["ribosome"]["fn"]) == (1, 1, 1)
    assert by_type["thyroglobulin"]["fn"] == 1


def test_radii_from_a_copick_config(tmp_path: Path):
    config = tmp_path / "copick.json"
    particle = {"name": "blob", "is_particle": True, "label": 1, "radius": 20.0, "color": [255, 0, 0, 255]}
    config.write_text(
        json.dumps(
            {
                "config_type": "filesystem",
                "name": "test",
                "pickable_objects": [particle],
                "overlay_root": f"local://{tmp_path / 'overlay'}",
                "overlay_fs_args": {"auto_mkdir": True},
            }
        )
    )
    (tmp_path / "sol.csv").write_text("experiment,particle_type,x,y,z\nA,blob,0,0,0\n")
    (tmp_path / "sub.csv").write_text("experiment,particle_type,x,y,z\nA,blob,10,0,0\n")  # reach 10: found
    result = run(tmp_path / "sol.csv", tmp_path / "sub.csv", "--data", config, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["weighted"] == pytest.approx(1.0)
    # without --data the CZII table does not know 'blob'
    assert_one_error_line(run(tmp_path / "sol.csv", tmp_path / "sub.csv"), "'blob'")


def test_missing_file(csvs, tmp_path: Path):
    assert_one_error_line(run(csvs[0], tmp_path / "nope.csv"), "nope.csv", "not found")


def test_missing_config(csvs, tmp_path: Path):
    assert_one_error_line(run(*csvs, "--data", tmp_path / "nope.json"), "nope.json")


def test_missing_column(csvs):
    csvs[1].write_text("experiment,particle_type,x,y\nTS_1,ribosome,1,2\n")
    assert_one_error_line(run(*csvs), "lacks column(s) z")


@pytest.mark.parametrize("value", ["1e308", "inf", "nan", "-2e9"])
def test_coordinates_that_are_not_positions_in_a_tomogram(csvs, value):
    csvs[1].write_text(SUBMISSION + f"4,TS_1,ribosome,{value},2,3\n")
    assert_one_error_line(run(*csvs), "submission.csv' row 5 has (x, y, z) = (", "not a position in a tomogram")


def test_unknown_particle_type(csvs):
    csvs[1].write_text(SUBMISSION + "4,TS_1,proteasome,1,2,3\n")
    assert_one_error_line(run(*csvs), "'proteasome'", "known types")


def test_installed_entry_point_prints_no_traceback(csvs):
    csvs[1].write_text(SUBMISSION + "4,TS_1,proteasome,1,2,3\n")
    bench = Path(sys.executable).parent / "bench"
    done = subprocess.run([bench, "score", *csvs], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1
