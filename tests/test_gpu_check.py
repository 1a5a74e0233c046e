"""`bench gpu-check`: its plumbing end to end on CPU with the smoke suite, its machine checks with fakes, and the
suite it generates."""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from commands import assert_one_line_error, bench

from benchmark.errors import BenchError
from benchmark.gpu_check import (
    CAP_SHARE,
    EPOCHS,
    STEPS,
    CheckOptions,
    _Plain,
    check_suite,
    data_gb,
    machine_lines,
    row_seconds,
)
from benchmark.results import ResultsStore
from benchmark.suite import load_suite

Usage = namedtuple("Usage", "total used free")


@pytest.mark.slow
def test_the_check_runs_end_to_end_on_cpu_with_the_smoke_suite(tmp_path, smoke_config):
    result = bench("gpu-check", "--device", "cpu", "--suite", "smoke", "--results", tmp_path / "results",
                   "--out", tmp_path / "report")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith("check: device: CPU")
    store = ResultsStore.latest("gpu-check", tmp_path / "results")
    manifest = store.manifest
    assert manifest["split"] == {"train": ["TS_6_4"], "val": ["TS_86_3"], "test": ["TS_5_4"]}
    assert manifest["compute"]["cudnn_benchmark"] is True and manifest["repeats"] == 3
    assert all(job["status"] == "ok" for job in manifest["jobs"].values()) and len(manifest["jobs"]) == 7
    latency = store.table("latency")
    assert (latency.groupby("architecture").size() == 3).all() and set(latency["run"]) == {"TS_5_4"}
    resources = store.table("resources").set_index("architecture")
    assert (resources.loc["deepfindet", "epoch_steps"] == 8) and resources.loc["deepfindet", "data_wait_share"] > 0
    assert not list(store.folder.rglob("model"))  # models are dropped: the check keeps only its figures
    assert "and its stored candidates" in resources.loc["yolo-unet3d-ensemble", "members"]
    assert len(list((tmp_path / "results" / "gpu-check" / "suites").glob("*_smoke-cpu.yaml"))) == 1
    readme = (tmp_path / "report" / "README.md").read_text()
    for heading in ("## Training", "## Inference of one tomogram", "## Beside the reference study"):
        assert heading in readme and heading in result.output
    assert "Not a benchmark of scores" in readme and "| deepfindet (study: DeepFindET) | " in readme
    row = next(line for line in readme.splitlines() if line.startswith("| deepfindet | 1 | 8 | "))
    steps_per_second = 8 / resources.loc["deepfindet", "epoch_seconds_median"]
    assert f"| {steps_per_second:.2f} |" in row


def test_without_cuda_the_check_says_so_in_one_line_and_does_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = bench("gpu-check", "--results", tmp_path / "results", "--out", tmp_path / "report")
    assert_one_line_error(result, "no CUDA device here", "--device cpu", alone=True)
    assert not (tmp_path / "results").exists() and not (tmp_path / "report").exists()


def test_a_gpu_without_bf16_in_hardware_is_refused_before_anything_runs(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(major=7))  # a V100
    monkeypatch.setattr("benchmark.environment.torch_state", lambda device: {"device_name": "an old GPU"})
    monkeypatch.setattr("shutil.disk_usage", lambda path: Usage(100e9, 50e9, 50e9))
    with pytest.raises(BenchError, match="an old GPU has no bf16 in hardware, the suite's precision"):
        machine_lines("cuda", "bf16", [tmp_path], 0.0)


def test_too_little_disk_is_refused_naming_what_is_needed(monkeypatch, tmp_path):
    monkeypatch.setattr("shutil.disk_usage", lambda path: Usage(100e9, 97e9, 3e9))
    assert data_gb("full") == pytest.approx(184 * 630 * 630 * 4 * (1 + 1 / 8 + 1 / 64) * 7 / 1e9)  # 7 runs, 3 levels
    with pytest.raises(BenchError, match=r"only 3.0 GB free under .*missing, and the check needs 4.3 GB"):
        machine_lines("cpu", "fp32", [tmp_path / "missing"], data_gb("full"))
    assert machine_lines("cpu", "fp32", [tmp_path], 0.0)[0].startswith("device: CPU")  # its data there: 2 GB do


def test_the_generated_full_suite_keeps_ensemble_members_equal_to_the_entries_they_reuse(tmp_path):
    source = load_suite("full", calibrated=False)
    options = CheckOptions(fit_seconds=30, minutes=8, root=tmp_path)
    share = row_seconds(source, options, start_minutes=1.0)
    assert share == pytest.approx(60 * (8 - 1) / 7)  # each of the 7 rows its share of what is left
    raw = check_suite(source, options, share)
    entries = {entry.get("label", entry["name"]): entry for entry in raw["architectures"]}
    members = entries["yolo-unet3d-ensemble"]["config"]["members"]
    for member in members:
        entry = entries[member["name"]]
        assert (member["config"], member["epochs"]) == (entry["config"], entry["epochs"])
    assert entries["deepfindet"]["config"]["steps_per_epoch"] == STEPS and entries["deepfindet"]["epochs"] == EPOCHS
    assert all("ablation" not in entry for entry in raw["architectures"])
    assert raw["compute"] == {"precision": "bf16", "deterministic": False, "cudnn_benchmark": True}
    path = tmp_path / "check.yaml"
    path.write_text(yaml.dump(raw, Dumper=_Plain))
    suite = load_suite(str(path), calibrated=False)  # a valid suite file
    assert suite.split.train == ["TS_6_4"] and suite.budget.minutes == pytest.approx(0.5)
    assert suite.budget.job_minutes == pytest.approx(share / 60)
    assert suite.budget.predict_minutes == pytest.approx(CAP_SHARE * share / 60)  # not given: its share's part
    assert "&id" not in path.read_text() and Path(suite.path).name == "check.yaml"


@pytest.mark.parametrize("name", sorted(p.stem for p in Path("suites").glob("*.yaml") if "." not in p.stem))
def test_every_suite_gives_a_valid_check_suite(name, tmp_path):
    source = load_suite(name, calibrated=False)
    path = tmp_path / "check.yaml"
    path.write_text(yaml.dump(check_suite(source, CheckOptions(device="cpu"), 60.0), Dumper=_Plain))
    suite = load_suite(str(path), calibrated=False)
    assert suite.name == "gpu-check" and len(suite.architectures) == len(source.architectures)
    assert all(spec.epochs <= EPOCHS for spec in suite.architectures)


def test_too_few_minutes_for_the_rows_are_refused_in_one_line():
    with pytest.raises(BenchError, match="--minutes 1 leaves 6 s for each of 7 rows"):
        row_seconds(load_suite("full", calibrated=False), CheckOptions(minutes=1), start_minutes=0.25)
