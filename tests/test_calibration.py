"""Equal training time: `bench calibrate` measures each learned entry here and derives the epoch bounds a suite then
reads from its calibration file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmark.calibration import calibration_record, epochs_for, fingerprint, write_calibration
from benchmark.errors import BenchError
from benchmark.report.conditions import calibrated_bounds
from benchmark.suite import load_suite
from tests.commands import assert_one_line_error, bench

SMOKE = Path(load_suite("smoke").path)


def suite_file(
    folder: Path, seconds: float = 20.0, names: tuple[str, ...] = ("unet3d", "yolov8"), curve: tuple[float, ...] = ()
) -> Path:
    """The smoke suite with a training time and a calibration file, its learned entries' bounds left to it."""
    raw = yaml.safe_load(SMOKE.read_text())
    raw["learning_curve"] = list(curve)
    raw["name"] = "calibrated"
    raw["budget"] = {**raw["budget"], "train_seconds": seconds, "calibration": "calibrated.calibration.yaml"}
    raw["architectures"] = [a for a in raw["architectures"] if a["name"] in (*names, "matched-filter", "ensemble")]
    for entry in raw["architectures"]:
        if entry["name"] in names:
            del entry["epochs"]
        for member in entry.get("config", {}).get("members", []):
            member.pop("epochs", None)
    path = folder / "calibrated.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def calibration(path: Path, bounds: dict[str, int], seconds: float = 20.0) -> None:
    """A calibration file for the suite at `path` with the given bounds, as `bench calibrate` writes it."""
    suite = load_suite(str(path), calibrated=False)
    specs = {spec.label: spec for spec in suite.architectures}
    entries = {label: {"fingerprint": fingerprint(specs[label].name, specs[label].config), "epochs": epochs}
               for label, epochs in bounds.items()}  # fmt: skip
    write_calibration(suite.calibration, "bench calibrate", {"train_seconds": seconds, "entries": entries})


def test_the_bound_is_the_whole_number_of_epochs_nearest_the_training_time():
    assert epochs_for(60.0, fixed=16.0, epoch=10.0) == 5  # 16 + 4 x 10 = 56 s; 6 epochs: 66 s
    assert epochs_for(60.0, fixed=16.0, epoch=7.0) == 7  # 58 s
    assert epochs_for(5.0, fixed=16.0, epoch=10.0) == 1  # never none


def test_a_suite_reads_its_entries_bounds_and_its_ensemble_members_from_its_calibration(tmp_path):
    path = suite_file(tmp_path)
    calibration(path, {"unet3d": 7, "yolov8": 3})
    suite = load_suite(str(path))
    bounds = {spec.label: spec.epochs for spec in suite.architectures}
    assert bounds["unet3d"] == 7 and bounds["yolov8"] == 3 and bounds["matched-filter"] is None
    members = next(s for s in suite.architectures if s.name == "ensemble").config["members"]
    assert [member["epochs"] for member in members] == [3, 7]  # equal to the entries: their models are reused


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("config", "entry unet3d changed since it was calibrated; run: bench calibrate --suite calibrated"),
        ("epochs", "entry unet3d sets epochs 4, but its bound comes from calibration"),
        ("seconds", "was made for 20.0 s of training, the suite asks for 30.0 s"),
        ("missing", "cannot be read (No such file or directory); run: bench calibrate --suite calibrated"),
    ],
)
def test_a_stale_calibration_or_a_hand_set_bound_is_refused_in_one_line(tmp_path, change, message):
    path = suite_file(tmp_path)
    calibration(path, {"unet3d": 7, "yolov8": 3})
    raw = yaml.safe_load(path.read_text())
    unet3d = next(a for a in raw["architectures"] if a["name"] == "unet3d")
    if change == "config":
        unet3d["config"]["lr"] = 0.5
    elif change == "epochs":
        unet3d["epochs"] = 4
    elif change == "seconds":
        raw["budget"]["train_seconds"] = 30.0
    else:
        (tmp_path / "calibrated.calibration.yaml").unlink()
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_suite(str(path))


def test_calibrate_measures_each_learned_entry_here_and_writes_bounds_the_suite_then_runs(smoke_config, tmp_path):
    path = suite_file(tmp_path, seconds=6.0, names=("unet3d",), curve=(0.5,))
    result = bench("calibrate", "--suite", path, "--data", smoke_config)
    assert result.exit_code == 0, result.output
    written = tmp_path / "calibrated.calibration.yaml"
    assert written.read_text().startswith("# Written by `bench calibrate --suite")
    content = yaml.safe_load(written.read_text())
    assert list(content["entries"]) == ["unet3d"]  # not the classical row, not the ensemble
    entry = content["entries"]["unet3d"]
    fixed = entry["setup_seconds"] + entry["first_epoch_seconds"] + entry["curve_point_seconds"]  # one curve point
    assert entry["curve_point_seconds"] >= 0 and entry["epochs"] == epochs_for(6.0, fixed, entry["epoch_seconds"])
    assert content["machine"]["cores"] >= 1 and content["machine"]["device"] == "cpu"
    assert next(s for s in load_suite(str(path)).architectures if s.name == "unet3d").epochs == entry["epochs"]


def test_calibrate_needs_a_calibration_file_and_a_training_time(tmp_path):
    raw = yaml.safe_load(SMOKE.read_text())
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert_one_line_error(bench("calibrate", "--suite", path), "names no budget.calibration file")


def test_a_run_refuses_a_learned_entry_its_calibration_leaves_out(smoke_config, tmp_path):
    path = suite_file(tmp_path)
    calibration(path, {"unet3d": 2})  # yolov8 would train to its cap, not for the suite's time
    result = bench("run", "--suite", path, "--data", smoke_config, "--results", tmp_path / "results")
    assert_one_line_error(result, "yolov8 not in calibration", "run: bench calibrate --suite calibrated")
    assert not (tmp_path / "results").exists()


def test_a_run_records_its_calibration_and_the_report_says_where_the_bounds_came_from(tmp_path):
    path = suite_file(tmp_path)
    calibration(path, {"unet3d": 7, "yolov8": 3})
    content = yaml.safe_load((tmp_path / "calibrated.calibration.yaml").read_text())
    content.update(measured="2026-12-03T18:00:00+00:00", git="abc1234", machine={"device_name": "CPU: test (2)"})
    write_calibration(tmp_path / "calibrated.calibration.yaml", "bench calibrate", content)
    record = calibration_record(load_suite(str(path)))
    assert record["train_seconds"] == 20.0 and record["machine"]["device_name"] == "CPU: test (2)"
    said = calibrated_bounds({"calibration": record})
    assert "derived from 20 s of training each on the reference machine (CPU: test (2), calibrated 2026-12-03" in said
    assert calibrated_bounds({}) == ""
