"""The fault battery: hostile and careless input, and processes that die, hang or race.

Each case ends in one clear line and a non-zero exit, with nothing already computed lost and nothing written
outside the folders the harness owns.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import copick
import numpy as np
import pandas as pd
import pytest
import zarr
from commands import BENCH, MATCHED_FILTER_ONLY, SMOKE_TEXT, assert_one_line_error, bench, bench_process, suite_file

import benchmark.data
import benchmark.files
import benchmark.job
from benchmark.data import Project
from benchmark.endings import UNWRITTEN, process_failure
from benchmark.errors import BenchError
from benchmark.jobspec import JobSpec
from benchmark.registry import Registry
from benchmark.results import EVERY_JOB, ResultsStore


def smoke_copy(smoke_config: Path, tmp_path: Path) -> Path:
    """A private copy of the smoke project that a test may damage."""
    folder = shutil.copytree(smoke_config.parent, tmp_path / "project")
    config = json.loads((folder / "copick.json").read_text())
    config |= {"static_root": str(folder / "static"), "overlay_root": str(folder / "overlay")}
    (folder / "copick.json").write_text(json.dumps(config))
    return folder / "copick.json"


def level_folder(config: Path, run: str, level: int = 0) -> Path:
    """The zarr folder of one pyramid level of a run's denoised tomogram."""
    static = Path(json.loads(config.read_text())["static_root"].removeprefix("local://"))
    return static / "ExperimentRuns" / run / "VoxelSpacing10.000" / "denoised.zarr" / str(level)


def chunk_files(config: Path, run: str, level: int = 0) -> list[Path]:
    """The chunk files of one pyramid level."""
    return sorted(p for p in level_folder(config, run, level).rglob("*") if p.is_file() and not p.name.startswith("."))


def no_results(root: Path) -> bool:
    """Nothing was created under a results root."""
    return not root.exists() or not any(root.rglob("manifest.json"))


# Wrong results with exit 0: refused instead


def test_a_level_with_missing_chunks_is_refused_naming_run_level_and_path(copick_project):
    config = copick_project()
    (chunk,) = chunk_files(config, "TS_1")
    chunk.unlink()
    result = bench("data", "show", "--data", config, "--run", "TS_1", "--out", config.parent / "x.png")
    assert_one_line_error(result, "tomogram TS_1/denoised level 0 is missing 1 of 1 zarr chunks", str(chunk))


def test_an_ome_zarr_scale_that_contradicts_the_voxel_spacing_is_refused_naming_both(copick_project):
    config = copick_project(true_voxel_size=20.024)
    with pytest.raises(BenchError, match=r"scale says 20\.024 Å per voxel but it sits in copick's 10 Å voxel spacing"):
        Project(config).tomogram("TS_1", voxel_size=10.0, tolerance=1.5)  # a tolerant search still checks the scale


def test_a_run_without_ground_truth_of_the_chosen_user_is_refused_before_training(smoke_config, tmp_path):
    suite = suite_file(tmp_path, MATCHED_FILTER_ONLY.replace("user_id: curation", "user_id: someone"))
    result = bench("run", "--suite", suite, "--results", tmp_path / "results")
    assert_one_line_error(result, "has no ground-truth picks of someone/0; its picks files are by", "curation/0")
    assert no_results(tmp_path / "results")


def test_data_info_warns_about_runs_without_ground_truth(copick_project):
    config = copick_project()
    result = bench_process("data", "info", "--data", config, "--user-id", "someone")
    assert result.returncode == 0
    assert result.stderr.strip().splitlines() == [
        "warning: run 'TS_1' has no ground-truth picks of someone/0; its picks files are by curation/0; set "
        "data.user_id and data.session_id in the suite (bench data info --user-id U --session-id S shows the counts)"
    ]


def test_picks_with_a_nan_coordinate_are_refused_naming_the_file(copick_project):
    config = copick_project()
    picks = next(Path(config.parent, "overlay").rglob("curation_0_ribosome.json"))
    data = json.loads(picks.read_text())
    data["points"][0]["location"]["x"] = math.nan
    picks.write_text(json.dumps(data))
    with pytest.raises(BenchError, match=re.escape("curation_0_ribosome.json has 1 pick(s) with a NaN or infinite")):
        Project(config).ground_truth("TS_1")


# Errors that came too late or as a traceback


def test_a_corrupt_chunk_is_named_in_one_line(copick_project, tmp_path):
    config = copick_project()
    (chunk,) = chunk_files(config, "TS_1")
    chunk.write_bytes(chunk.read_bytes()[:40])  # truncated
    result = bench("data", "show", "--data", config, "--run", "TS_1", "--out", tmp_path / "x.png")
    assert_one_line_error(result, "tomogram TS_1/denoised level 0: zarr chunk", str(chunk), "cannot be decoded")


def test_a_nan_volume_in_a_test_run_is_found_before_any_training(smoke_config, tmp_path):
    config = smoke_copy(smoke_config, tmp_path)
    zarr.open_array(str(level_folder(config, "TS_69_2", 1)), mode="r+")[0, 0, 0] = np.nan  # level 1 only
    result = bench("run", "--suite", "smoke", "--data", config, "--results", tmp_path / "results")
    assert_one_line_error(result, "tomogram TS_69_2/denoised level 1: zarr chunk", "contains NaN or infinite values")
    assert no_results(tmp_path / "results")


def test_a_config_option_typo_creates_no_results_folder(smoke_config, tmp_path):
    suite = suite_file(tmp_path, SMOKE_TEXT.replace("sigma_factors:", "sigma_factor:"))
    result = bench("run", "--suite", suite, "--results", tmp_path / "results")
    assert_one_line_error(result, "suite entry 'matched-filter'", "no config option(s) 'sigma_factor'")
    assert no_results(tmp_path / "results")


def zarr_folder(config: Path, run: str = "TS_1") -> Path:
    """The OME-Zarr group of a run's denoised tomogram."""
    return level_folder(config, run).parent


def replace_level(config: Path, values: np.ndarray, level: int = 0) -> None:
    """Overwrite one pyramid level of TS_1 with another array, in copick's own chunk layout."""
    folder = level_folder(config, "TS_1", level)
    shutil.rmtree(folder)
    chunks = values.shape if values.size else None
    array = zarr.open_array(str(folder), mode="w", shape=values.shape, dtype=values.dtype, chunks=chunks,
                            dimension_separator="/")  # fmt: skip
    array[...] = values


def multiscales_naming_a_level_that_is_not_there(config: Path) -> None:
    attrs_file = zarr_folder(config) / ".zattrs"
    attrs = json.loads(attrs_file.read_text())
    datasets = attrs["multiscales"][0]["datasets"]
    datasets.append({**datasets[-1], "path": "3"})
    attrs_file.write_text(json.dumps(attrs))


def picks_file(config: Path) -> Path:
    """TS_1's ribosome ground truth."""
    return next(Path(config.parent, "overlay").rglob("curation_0_ribosome.json"))


def set_points_null(config: Path) -> None:
    path = picks_file(config)
    path.write_text(json.dumps({**json.loads(path.read_text()), "points": None}))


def make_a_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def set_radius(config: Path, radius: float) -> None:
    data = json.loads(config.read_text())
    data["pickable_objects"][3]["radius"] = radius  # ribosome
    config.write_text(json.dumps(data))


DEEP = "[" * 100_000 + "]" * 100_000  # JSON nested past Python's recursion limit


@pytest.mark.parametrize(
    ("damage", "fragments"),
    [
        (multiscales_naming_a_level_that_is_not_there, ["level 3: its OME-Zarr multiscales names array '3', which is "
                                                        "not in", "re-download or regenerate"]),
        (lambda c: shutil.rmtree(level_folder(c, "TS_1", 1)), ["level 1: its OME-Zarr multiscales names array '1'"]),
        (lambda c: (level_folder(c, "TS_1") / ".zarray").write_text("{chunks"),
         ["zarr metadata file", "0/.zarray cannot be read (not JSON)"]),
        (lambda c: (zarr_folder(c) / ".zattrs").write_text("{"), [".zattrs cannot be read (not JSON)"]),
        (lambda c: (zarr_folder(c) / ".zgroup").write_text(DEEP), [".zgroup cannot be read (nested too deeply)"]),
        (lambda c: replace_level(c, np.zeros((32, 32), np.float32)), ["level 0 is 32x32, not a 3D (z, y, x) volume"]),
        (lambda c: replace_level(c, np.zeros((2, 16, 32, 32), np.float32)), ["level 0 is 2x16x32x32, not a 3D"]),
        (lambda c: replace_level(c, np.zeros((0, 32, 32), np.float32)), ["level 0 is 0x32x32, not a 3D (z, y, x) "
                                                                          "volume with voxels"]),
        (lambda c: replace_level(c, np.zeros((16, 32, 32), np.complex64)), ["level 0 holds complex64 values; "
                                                                             "tomograms are real numbers"]),
        (lambda c: replace_level(c, np.zeros((16, 32, 32), bool)), ["level 0 holds bool values"]),
        (set_points_null, ["curation_0_ribosome.json is not valid copick picks JSON", "fix or remove it"]),
        (lambda c: make_a_directory(picks_file(c)), ["curation_0_ribosome.json cannot be read (Is a directory)"]),
        (lambda c: picks_file(c).write_text(DEEP), ["curation_0_ribosome.json is not valid copick picks JSON (nested "
                                                    "too deeply)"]),
        (lambda c: c.write_text(DEEP), ["copick.json' is not valid JSON (nested too deeply); fix the file"]),
        (lambda c: set_radius(c, 0), ["pickable object 'ribosome' has radius 0 Å", "must be a positive number"]),
        (lambda c: set_radius(c, -150), ["pickable object 'ribosome' has radius -150 Å"]),
    ],
)  # fmt: skip
def test_damaged_data_is_one_line_naming_the_file_and_the_fix(copick_project, damage, fragments):
    config = copick_project()
    damage(config)
    result = bench("data", "info", "--data", config)
    assert_one_line_error(result, *fragments)


def test_an_integer_tomogram_is_read_as_float(copick_project):
    config = copick_project()
    replace_level(config, np.arange(16 * 32 * 32, dtype=np.int16).reshape(16, 32, 32))
    volume = Project(config).tomogram("TS_1").read(0)
    assert volume.dtype == np.float32 and volume[0, 0, 5] == 5.0


def portal_config(tmp_path: Path) -> Path:
    """A CryoET Data Portal copick config."""
    config = tmp_path / "portal.json"
    config.write_text(json.dumps({"config_type": "cryoet_data_portal", "name": "portal", "pickable_objects": [],
                                  "overlay_root": f"local://{tmp_path}", "dataset_ids": [10440]}))  # fmt: skip
    return config


def test_a_portal_config_without_network_says_so_at_once(tmp_path, monkeypatch):
    from cryoet_data_portal import _client

    monkeypatch.setattr(_client, "DEFAULT_URL", "http://127.0.0.1:9/graphql")  # a port nothing listens on
    result = bench("data", "info", "--data", portal_config(tmp_path))
    assert_one_line_error(result, "reads the CryoET Data Portal, which needs network access, and 127.0.0.1 cannot "
                          "be reached from here", "download the data and use a filesystem copick config")  # fmt: skip


def test_a_portal_whose_name_lookup_hangs_is_refused_within_the_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: time.sleep(30))  # a resolver that never answers
    monkeypatch.setattr(benchmark.data, "PORTAL_TIMEOUT", 1.0)
    started = time.monotonic()
    result = bench("data", "info", "--data", portal_config(tmp_path))
    assert time.monotonic() - started < 5  # not the 30 s the lookup would take
    assert_one_line_error(result, "cannot be reached from here (no answer within 1 s)")


def replace_test_level(config: Path, values: np.ndarray) -> None:
    """Overwrite level 0 of the smoke copy's test run TS_69_2 (copick's chunk layout)."""
    folder = level_folder(config, "TS_69_2")
    old = zarr.open_array(str(folder), mode="r")
    shutil.rmtree(folder)
    zarr.open_array(str(folder), mode="w", shape=values.shape, dtype=values.dtype, chunks=old.chunks,
                    dimension_separator="/")[...] = values  # fmt: skip


BOMB = (
    "bomb: [&a [x, x, x, x, x, x, x, x, x, x], &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a], "
    + ", ".join(
        f"&{name} [" + ", ".join([f"*{previous}"] * 10) + "]" for previous, name in zip("bcde", "cdef", strict=True)
    )
    + "]"
)  # each level ten times the one before: about a million values once the aliases are substituted


@pytest.mark.parametrize(
    ("edit", "options", "fragments"),
    [
        ("project", lambda c: set_radius(c, 0), ["pickable object 'ribosome' has radius 0 Å"]),
        ("project", lambda c: replace_test_level(c, np.zeros((48, 128, 128), np.complex64)),
         ["tomogram TS_69_2/denoised level 0 holds complex64 values"]),
        ("project", lambda c: replace_test_level(c, np.zeros((0, 128, 128), np.float32)),
         ["tomogram TS_69_2/denoised level 0 is 0x128x128, not a 3D (z, y, x) volume with voxels"]),
        ("suite", lambda t: t.replace("seeds: [0]", "seeds: [-1]"), ["seed -1 is outside 0..4294967295"]),
        ("options", ["--seeds", "0,4294967296"], ["--seeds 0,4294967296: seed 4294967296 is outside 0..4294967295"]),
        ("options", ["--seeds", "0,1,0"], ["--seeds 0,1,0: seed 0 is listed twice; list each seed once"]),
        ("suite", lambda t: t.replace("{step: nms, distance: 0.5}", "{step: nms, distance: far}"),
         ["suite entry 'matched-filter', postprocess: post-processing step 'nms': parameter 'distance' is 'far', "
          "not float"]),
        ("suite", lambda t: t.replace("minutes: 2 ", "minutes: .inf "), ["has an infinite or NaN number of minutes"]),
        ("suite", lambda t: t.replace("minutes: 2 ", "minutes: .nan "), ["has an infinite or NaN number of minutes"]),
        ("suite", lambda t: t.replace("    config:\n", f"    config:\n      {BOMB}\n", 1),
         ["expands to more than 100,000 values once its YAML aliases are substituted"]),
        ("suite", lambda t: t + "    label: " + "l" * 210 + "\n",
         ["label 'llll", "makes the file name bench-llll", "longer than its file system takes (255); give the entry "
          "a shorter label, or pass --no-write-picks"]),
    ],
)  # fmt: skip
def test_nonsense_is_refused_before_a_results_folder_exists(smoke_config, tmp_path, edit, options, fragments):
    config, text, extra = smoke_copy(smoke_config, tmp_path), MATCHED_FILTER_ONLY, []
    if edit == "project":
        options(config)
    elif edit == "suite":
        text = options(text)
    else:
        extra = options
    suite = suite_file(tmp_path, text)
    result = bench("run", "--suite", suite, "--data", config, "--results", tmp_path / "results", *extra)
    assert_one_line_error(result, *fragments)
    assert no_results(tmp_path / "results")


@pytest.mark.slow
def test_runs_with_non_ascii_and_long_names_are_accepted_and_too_long_ones_refused(copick_project, tmp_path):
    long_run = "TS_" + "x" * 242  # 245 characters: its CSV's name fits in 255 bytes
    config = copick_project(runs=("TS_Ä1", "TS_Ä2", long_run), shape=(16, 64, 64))
    text = MATCHED_FILTER_ONLY.replace("train: [TS_6_4, TS_73_6, TS_6_6, TS_99_9]", "train: [TS_Ä1]")
    text = text.replace("val: [TS_86_3]", "val: [TS_Ä2]").replace("test: [TS_5_4, TS_69_2]", f"test: [{long_run}]")
    result = bench("run", "--suite", suite_file(tmp_path, text), "--data", config, "--results", tmp_path / "results")
    assert result.exit_code == 0, result.output
    store = ResultsStore.latest("faults", tmp_path / "results")
    assert (store.predictions_dir("matched-filter", 0, "ts") / f"{long_run}.csv").is_file()
    assert list(Path(config.parent, "overlay", "ExperimentRuns", "TS_Ä2", "Picks").glob("bench-matched-filter_*"))
    too_long = copick_project(runs=("TS_Ä1", "TS_Ä2", "TS_" + "x" * 250), shape=(16, 64, 64))
    result = bench("run", "--suite", suite_file(tmp_path, text.replace(long_run, "TS_" + "x" * 250)), "--data",
                   too_long, "--results", tmp_path / "refused")  # fmt: skip
    assert_one_line_error(result, "run name 'TS_xxx", "makes the file name TS_xxx", "(257 bytes), longer than its "
                          "file system takes (255); rename the run in the copick project")  # fmt: skip
    assert no_results(tmp_path / "refused")


@pytest.fixture(scope="module")
def finished(smoke_config, tmp_path_factory) -> ResultsStore:
    """A finished matched-filter-only smoke run (seeds 0 and 1) that the tests copy before damaging."""
    root = tmp_path_factory.mktemp("finished")
    suite = suite_file(root, MATCHED_FILTER_ONLY)
    result = bench("run", "--suite", suite, "--results", root, "--seeds", "0,1")
    assert result.exit_code == 0, result.output
    return ResultsStore.latest("faults", root)


def copy_of(store: ResultsStore, tmp_path: Path) -> ResultsStore:
    """A copy of a results folder (under the same suite name)."""
    return ResultsStore(shutil.copytree(store.folder, tmp_path / "faults" / store.folder.name))


def edit_manifest(folder: Path, **fields: object) -> None:
    """Overwrite fields of a results folder's manifest."""
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, **fields}))


def edit_scores(folder: Path, column: str, value: object) -> None:
    """Put a value into the first row of scores.csv."""
    scores = pd.read_csv(folder / "scores.csv")
    scores[column] = scores[column].astype(object)
    scores.loc[0, column] = value
    scores.to_csv(folder / "scores.csv", index=False)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda folder: (folder / "scores.csv").write_text("architecture,seed\n\x00\x01,\n"), "scores.csv is damaged"),
        (lambda folder: (folder / "resources.csv").write_text(""), "resources.csv is damaged"),
        (lambda folder: (folder / "manifest.json").write_text('{"suite": '), "manifest.json is damaged"),
        (lambda folder: (folder / "manifest.json").write_text(DEEP), "manifest.json is damaged (nested too deeply)"),
        (lambda folder: edit_manifest(folder, seeds="0,1"), "manifest.json is damaged (seeds: Input should be a valid "
                                                            "list)"),
        (lambda folder: edit_manifest(folder, jobs=[]), "manifest.json is damaged (jobs: Input should be a valid "
                                                        "dictionary)"),
        (lambda folder: edit_manifest(folder, compute={"precision": 16}), "manifest.json is damaged (compute."
                                                                          "precision: Input should be a valid string)"),
        (lambda folder: edit_scores(folder, "f4", "high"), "scores.csv is damaged (column f4, row 1: 'high' is not a "
                                                           "number)"),
        (lambda folder: (folder / "scores.csv").unlink(), "scores.csv is missing, though 1 finished job(s) stored rows "
                                                          "in it"),
        (lambda folder: make_a_directory(folder / "scores.csv"), "scores.csv is a folder, not a table"),
    ],
)  # fmt: skip
def test_a_damaged_table_or_manifest_is_named_before_a_resume_runs_anything(finished, tmp_path, damage, message):
    store = copy_of(finished, tmp_path)
    store.update_job("matched-filter-seed1-ts", status="interrupted")
    damage(store.folder)
    before = sorted(p.stat().st_mtime_ns for p in store.folder.rglob("result.json"))
    result = bench("run", "--suite", suite_file(tmp_path, MATCHED_FILTER_ONLY), "--resume", store.folder)
    assert_one_line_error(result, message, "restore it")
    assert sorted(p.stat().st_mtime_ns for p in store.folder.rglob("result.json")) == before
    report = bench("report", "--results", store.folder, "--out", tmp_path / "report")
    assert_one_line_error(report, message)


def read_only(monkeypatch, root: Path) -> None:
    """Make writes under `root` fail as on a read-only file system (permissions would not stop root)."""
    mkdir, open_ = Path.mkdir, Path.open

    def guard(path: Path) -> None:
        if path.resolve().is_relative_to(root.resolve()):
            raise PermissionError(13, "Read-only file system", str(path))

    def guarded_mkdir(self, *args, **kwargs):
        guard(self)
        return mkdir(self, *args, **kwargs)

    def guarded_open(self, mode="r", *args, **kwargs):
        if set(mode) & set("wax+"):
            guard(self)
        return open_(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", guarded_mkdir)
    monkeypatch.setattr(Path, "open", guarded_open)


def test_an_unwritable_results_root_is_one_line(smoke_config, tmp_path, monkeypatch):
    read_only(monkeypatch, tmp_path / "results")
    result = bench("run", "--suite", suite_file(tmp_path, MATCHED_FILTER_ONLY), "--results", tmp_path / "results")
    assert_one_line_error(result, "cannot create results folder", "Read-only file system", "pass --results a folder")


def test_resuming_a_read_only_folder_is_one_line(finished, tmp_path, monkeypatch):
    store = copy_of(finished, tmp_path)
    read_only(monkeypatch, store.folder)
    result = bench("run", "--suite", suite_file(tmp_path, MATCHED_FILTER_ONLY), "--resume", store.folder)
    assert_one_line_error(result, f"results folder {store.folder} is not writable", "copy it somewhere writable")


def full_disk(monkeypatch) -> None:
    """Make every atomic write of the harness fail as on a full disk, after its temporary file got some bytes."""
    real = benchmark.files.NamedTemporaryFile

    def filling(*args, **kwargs):
        handle = real(*args, **kwargs)

        def write(data: bytes) -> int:
            handle.file.write(data[:10])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        handle.write = write
        return handle

    monkeypatch.setattr(benchmark.files, "NamedTemporaryFile", filling)


def test_files_written_atomically_have_the_mode_open_gives(tmp_path):
    benchmark.files.write_text(tmp_path / "atomic.txt", "x")
    (tmp_path / "plain.txt").write_text("x")
    assert (tmp_path / "atomic.txt").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode  # not private 0600


def test_a_full_disk_while_the_report_saves_a_plot_is_one_line_and_leaves_no_file(finished, tmp_path, monkeypatch):
    full_disk(monkeypatch)
    out = tmp_path / "report"
    result = bench("report", "--results", finished.folder, "--out", out)
    assert_one_line_error(result, f"cannot write {out}/", ".png (No space left on device); make its folder writable "
                          "or free space")  # fmt: skip
    assert not [path for path in out.rglob("*") if path.is_file()]  # no partial plot, no temporary file


def test_a_full_disk_when_a_job_writes_its_result_is_one_line_and_leaves_no_file(tmp_path, monkeypatch, capsys):
    JobSpec("k", str(tmp_path), str(tmp_path), "smoke", "copick.json", {}, "", 0, "ts", "cpu", 1, None).save(
        tmp_path / "job.json"
    )
    monkeypatch.setattr(benchmark.job, "die_with", lambda runner: None)  # the test process neither adopts nor dies
    monkeypatch.setattr(benchmark.job, "stop_descendants", lambda: None)
    monkeypatch.setattr(benchmark.job, "_result", lambda job, folder, entered: {"status": "ok"})
    full_disk(monkeypatch)
    assert benchmark.job.main([str(tmp_path / "job.json")]) == UNWRITTEN
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: k: cannot write {tmp_path}/result.json (No space left on device); make its folder writable or free "
        "space"
    ]
    assert [path.name for path in tmp_path.iterdir()] == ["job.json"]  # no temporary file left
    assert process_failure(UNWRITTEN, tmp_path)["error"] == (
        f"the job could not write its result into {tmp_path} (disk full or not writable?); free space, then bench run "
        "--resume"
    )


def test_a_static_root_that_points_nowhere_says_so(copick_project, tmp_path):
    config = copick_project()
    data = json.loads(config.read_text())
    data["static_root"] = f"local://{tmp_path / 'nowhere'}"
    config.write_text(json.dumps(data))
    result = bench("data", "show", "--data", config, "--run", "TS_1", "--out", tmp_path / "x.png")
    assert_one_line_error(result, "run 'TS_1' has no tomograms: none were found under static_root", "nowhere")


@pytest.mark.slow
def test_a_suite_whose_plugin_failed_to_import_says_why(plugin_path, tmp_path):
    suite = suite_file(tmp_path, SMOKE_TEXT.replace("  - name: deepfindet", "  - name: faulty-import-architecture"))
    result = bench_process("run", "--suite", suite, "--results", tmp_path, env={"PYTHONPATH": plugin_path})
    assert_one_line_error(
        result,
        "unknown architecture 'faulty-import-architecture'",
        "plug-in 'faulty-import' failed to import (ModuleNotFoundError: No module named "
        "'a_dependency_that_is_not_installed')",
    )


@pytest.mark.slow
def test_warnings_of_a_job_are_one_line_each(smoke_config, tmp_path):
    config = smoke_copy(smoke_config, tmp_path)
    run = copick.from_file(str(config)).get_run("TS_6_4")
    picks = run.get_picks(object_name="ribosome", user_id="curation", session_id="0")[0]
    xyz, _ = picks.numpy()
    picks.from_numpy(np.vstack([xyz, [[99999.0, 10.0, 10.0]]]))  # a pick outside the volume: warned, then a miss
    suite = suite_file(tmp_path, MATCHED_FILTER_ONLY)
    result = bench_process("run", "--suite", suite, "--data", config, "--results", tmp_path / "results")
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "lie outside" in line]
    assert warned[0].startswith("warning: TS_6_4: 1 of 15 picks")  # the runner's pre-flight
    assert warned[1].startswith("warning: matched-filter-seed0-ts: TS_6_4: 1 of 15 picks")  # the job's, passed on
    assert len(warned) == 2
    assert "samples.append(" not in result.stderr  # Python's second warning line


# Processes and concurrency


HANGS = SMOKE_TEXT.split("architectures:")[0] + "architectures:\n  - {name: faulty-hangs, config: {pid_file: PID}}\n"


def start_hanging_run(tmp_path: Path, plugin_path: str, minutes: float = 1) -> tuple[subprocess.Popen, Path, dict]:
    """`bench run` of a plug-in that hangs in fit, started as a user would from `tmp_path`, with the suite given by a
    relative path whose file name is not the suite's name; returns once the job is fitting."""
    budget = f"  minutes: {minutes}\n  grace_minutes: {minutes} "
    text = HANGS.replace("PID", str(tmp_path / "helper.pid")).replace("  minutes: 2 ", budget)
    (tmp_path / "my-suite.yaml").write_text(text.replace("name: smoke", "name: hangs"))
    env = {**os.environ, "PYTHONPATH": plugin_path}
    command = [BENCH, "run", "--suite", "my-suite.yaml", "--results", "results"]
    with (tmp_path / "stderr").open("w") as stderr:  # a file, not a pipe: orphans holding it cannot block a read
        runner = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr, cwd=tmp_path)
    for _ in range(600):
        folders = list((tmp_path / "results").glob("hangs/*/jobs/faulty-hangs-seed0-ts/phase.json"))
        if folders and json.loads(folders[0].read_text())["phase"] == "fit" and (tmp_path / "helper.pid").exists():
            store = ResultsStore(folders[0].parents[2])
            return runner, store.folder, store.manifest["jobs"]["faulty-hangs-seed0-ts"]
        time.sleep(0.1)
    runner.kill()
    raise AssertionError("the hanging job never started fitting")


def gone(pid: int, within: float = 5.0) -> bool:
    """Whether a process has exited (or is a zombie awaiting its reaper) within a few seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status")
        if not status.exists() or "State:\tZ" in status.read_text():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_stop_the_job_say_one_line_and_leave_a_resumable_folder(
    plugin_path, smoke_config, tmp_path, signum, status
):
    runner, folder, job = start_hanging_run(tmp_path, plugin_path)
    runner.send_signal(signum)
    runner.wait(timeout=30)
    stderr = (tmp_path / "stderr").read_text()
    assert runner.returncode == status
    assert "Traceback" not in stderr
    relative = folder.relative_to(tmp_path)
    assert stderr.strip().splitlines()[-1] == (
        f"Error: interrupted; finished jobs are kept in {relative}; "
        f"complete them with: bench run --suite my-suite.yaml --resume {relative}"
    )
    assert gone(int(job["launcher_job_id"])) and gone(int((tmp_path / "helper.pid").read_text()))
    assert ResultsStore(folder).manifest["jobs"]["faulty-hangs-seed0-ts"]["status"] == "interrupted"


@pytest.mark.slow
def test_the_printed_resume_command_runs_as_printed_from_the_same_folder(plugin_path, smoke_config, tmp_path):
    runner, folder, _ = start_hanging_run(tmp_path, plugin_path, minutes=0.05)
    runner.send_signal(signal.SIGINT)
    runner.wait(timeout=30)
    printed = (tmp_path / "stderr").read_text().strip().splitlines()[-1].split("complete them with: ")[1]
    command = shlex.split(printed)
    assert command[0] == "bench"
    env = {**os.environ, "PYTHONPATH": plugin_path}
    resumed = subprocess.run([BENCH, *command[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert_one_line_error(resumed, "1 job(s) failed: faulty-hangs-seed0-ts")  # it ran: over budget this time
    job = ResultsStore(folder).manifest["jobs"]["faulty-hangs-seed0-ts"]
    assert job["status"] == "over budget"
    with contextlib.suppress(ProcessLookupError):
        os.kill(int((tmp_path / "helper.pid").read_text()), signal.SIGKILL)


@pytest.mark.slow
def test_a_job_dies_with_its_runner_and_a_resume_sees_it_is_dead(plugin_path, smoke_config, tmp_path):
    runner, folder, job = start_hanging_run(tmp_path, plugin_path, minutes=0.05)
    assert job["status"] == "running" and int(job["launcher_job_id"]) > 0
    runner.kill()
    runner.wait(timeout=30)
    helper = int((tmp_path / "helper.pid").read_text())  # the plug-in's own child process
    try:
        assert gone(int(job["launcher_job_id"])) and gone(helper)
        result = bench_process(
            "run", "--suite", tmp_path / "my-suite.yaml", "--resume", folder, env={"PYTHONPATH": plugin_path}
        )
        assert_one_line_error(result, "1 job(s) failed: faulty-hangs-seed0-ts")  # run again, over budget this time
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(helper, signal.SIGKILL)


@pytest.mark.slow
def test_a_resume_keeps_every_setting_of_its_run_and_refuses_a_change(smoke_config, tmp_path):
    config = smoke_copy(smoke_config, tmp_path)
    written = set(config.parent.rglob("bench-*"))  # by other tests' runs on the smoke project, before the copy
    suite = suite_file(tmp_path, MATCHED_FILTER_ONLY)
    root = tmp_path / "results"
    options = ("--data", config, "--arch", "matched-filter", "--seeds", "1,0", "--no-write-picks")
    first = bench("run", "--suite", suite, "--results", root, *options)
    assert first.exit_code == 0, first.output
    assert "reference: no committed run of suite 'faults'" in first.output
    store = ResultsStore.latest("faults", root)

    def interrupt(seed: int) -> None:
        """As if the job of `seed` had been stopped before it finished."""
        (store.job_dir(f"matched-filter-seed{seed}-ts") / "result.json").unlink()
        store.update_job(f"matched-filter-seed{seed}-ts", status="interrupted")

    interrupt(1)
    for option, message in [
        (["--write-picks"], "was run --no-write-picks, and a resume keeps every setting of its run; resume without "
                            "--write-picks, or start a new run"),
        (["--seeds", "0,1,2"], "was run with --seeds 1,0, and a resume keeps"),
        (["--arch", "*"], "was run with --arch matched-filter, and a resume keeps"),
        (["--data", smoke_config], f"was run with --data {config}, and a resume keeps"),
        (["--device", "cuda"], "was run with --device cpu, and a resume keeps"),
    ]:  # fmt: skip
        assert_one_line_error(bench("run", "--suite", suite, "--resume", store.folder, *option), message)
    result = bench("run", "--suite", suite, "--resume", store.folder)  # nothing given: everything kept
    assert result.exit_code == 0, result.output
    assert "recovered" not in result.output and store.manifest["jobs"]["matched-filter-seed1-ts"]["status"] == "ok"
    assert store.manifest["options"] == {
        "data": str(config), "arch": "matched-filter", "device": "cpu", "seeds": [1, 0], "write_picks": False,
        "keep_models": True,
    }  # fmt: skip
    interrupt(0)
    result = bench("run", "--suite", suite, "--resume", store.folder, "--seeds", "0,1")  # the same seeds: no change
    assert result.exit_code == 0, result.output
    assert store.manifest["jobs"]["matched-filter-seed0-ts"]["status"] == "ok"
    assert set(config.parent.rglob("bench-*")) == written  # no run wrote picks into the project


def test_a_resume_refuses_while_a_job_of_the_folder_still_runs(finished, tmp_path):
    store = copy_of(finished, tmp_path)
    spec = store.job_dir("matched-filter-seed1-ts") / "job.json"
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(spec)])  # as the runner starts one
    try:
        store.update_job("matched-filter-seed1-ts", status="running", launcher="process", launcher_job_id=str(job.pid))
        result = bench("run", "--suite", suite_file(tmp_path, MATCHED_FILTER_ONLY), "--resume", store.folder)
    finally:
        job.kill()
        job.wait()
    assert_one_line_error(result, f"job matched-filter-seed1-ts of {store.folder} is still running as pid {job.pid}")


def test_a_second_run_on_a_folder_in_use_is_refused_naming_the_pid(finished, tmp_path):
    store = copy_of(finished, tmp_path)
    with store.lock():
        result = bench("run", "--suite", suite_file(tmp_path, MATCHED_FILTER_ONLY), "--resume", store.folder)
    assert_one_line_error(result, f"results folder {store.folder} is in use by pid {os.getpid()}")


def test_a_result_finished_before_the_runner_died_is_kept_on_resume(finished, tmp_path):
    store = copy_of(finished, tmp_path)
    result_file = store.job_dir("matched-filter-seed1-ts") / "result.json"
    before = result_file.stat().st_mtime_ns
    # the runner died before storing
    store.update_job("matched-filter-seed1-ts", status="running", launcher="process", launcher_job_id=str(2**22 + 1))
    for table in EVERY_JOB:
        rows = store.table(table)
        rows[rows["seed"] == 0].to_csv(store.folder / f"{table}.csv", index=False)
    result = bench("run", "--suite", suite_file(tmp_path, MATCHED_FILTER_ONLY), "--resume", store.folder)
    assert result.exit_code == 0, result.output
    assert "recovered: matched-filter-seed1-ts" in result.output
    assert result_file.stat().st_mtime_ns == before  # not run again
    assert sorted(store.table("scores")["seed"].unique()) == [0, 1]
    for table in ("thresholds", "counts"):
        pd.testing.assert_frame_equal(store.table(table), finished.table(table))


ESCAPES = SMOKE_TEXT.split("architectures:")[0] + (
    "architectures:\n"
    "  - {name: faulty-escapes, label: returns, config: {pid_file: DIR/returns.pid}}\n"
    "  - {name: faulty-escapes, label: dies, config: {pid_file: DIR/dies.pid, then: dies}}\n"
)


@pytest.mark.slow
def test_daemons_a_plugin_leaves_behind_are_stopped_and_the_output_is_released(plugin_path, smoke_config, tmp_path):
    suite = suite_file(tmp_path, ESCAPES.replace("DIR", str(tmp_path)), "escapes")
    arguments = ("run", "--suite", suite, "--results", tmp_path / "results", "--no-write-picks")
    # the daemons sleep 600 s holding bench's stdout and stderr: the capture ends only when they are gone
    result = bench_process(*arguments, env={"PYTHONPATH": plugin_path}, timeout=180)
    assert_one_line_error(result, "1 job(s) failed: dies-seed0-ts")
    jobs = ResultsStore.latest("escapes", tmp_path / "results").manifest["jobs"]
    assert jobs["returns-seed0-ts"]["status"] == "ok"  # its job stopped the daemon as it ended
    assert "killed by SIGKILL" in jobs["dies-seed0-ts"]["error"]  # the runner adopted its daemon and stopped it
    assert gone(int((tmp_path / "returns.pid").read_text())) and gone(int((tmp_path / "dies.pid").read_text()))


@pytest.mark.slow
def test_a_fit_past_its_budget_is_stopped_with_its_children_and_the_suite_goes_on(plugin_path, smoke_config, tmp_path):
    pid_file = tmp_path / "helper.pid"
    text = SMOKE_TEXT.replace("  minutes: 2 ", "  minutes: 0.05\n  grace_minutes: 0.05 ")
    entries = (
        f"  - {{name: faulty-hangs, config: {{pid_file: {pid_file}}}}}\n"
        f"  - {{name: faulty-hangs, label: hangs-in-setup, config: {{pid_file: {pid_file}.init, hang_in: init}}}}\n"
        "  - name: example-smooth-minima\n"
    )
    suite = suite_file(tmp_path, text.split("architectures:")[0] + "architectures:\n" + entries, "hangs")
    result = bench_process("run", "--suite", suite, "--results", tmp_path, env={"PYTHONPATH": plugin_path})
    assert_one_line_error(result, "2 job(s) failed: faulty-hangs-seed0-ts")
    jobs = ResultsStore.latest("hangs", tmp_path).manifest["jobs"]
    assert jobs["faulty-hangs-seed0-ts"]["status"] == jobs["hangs-in-setup-seed0-ts"]["status"] == "over budget"
    assert jobs["faulty-hangs-seed0-ts"]["error"].startswith(
        "fit had not returned 0.1 minutes after it started (budget 0.05 min + 0.05 min grace)"
    )
    assert jobs["hangs-in-setup-seed0-ts"]["error"].startswith("the job's set-up (imports, data, model) had not ended")
    assert jobs["example-smooth-minima-seed0-ts"]["status"] == "ok"
    assert gone(int(pid_file.read_text())) and gone(int(Path(f"{pid_file}.init").read_text()))


# Paths


def test_a_suite_named_like_a_path_is_refused_before_anything_is_written(tmp_path):
    suite = tmp_path / "x.yaml"
    suite.write_text(MATCHED_FILTER_ONLY.replace("name: smoke", "name: ../../../x"))
    result = bench("run", "--suite", suite, "--results", tmp_path / "a" / "b" / "results")
    assert_one_line_error(result, "'name' is '../../../x'; use letters, digits")
    assert not any(tmp_path.rglob("manifest.json"))


def test_a_plugin_name_that_is_a_path_is_refused_at_registration():
    registry = Registry("architecture", "architectures", "none")
    with pytest.raises(ValueError, match=re.escape("'../../x' must be letters, digits")):
        registry.register("../../x")


def test_report_refuses_a_manifest_whose_suite_name_is_a_path(finished, tmp_path, monkeypatch):
    store = copy_of(finished, tmp_path)
    manifest = store.manifest
    store.write_manifest({**manifest, "suite": {**manifest["suite"], "name": "../../escaped"}})
    monkeypatch.chdir(tmp_path)
    result = bench("report", "--results", store.folder)
    assert_one_line_error(result, "names its suite '../../escaped', not a plain folder name")
    assert not (tmp_path.parent / "escaped").exists() and not (tmp_path / "reports").exists()


def test_job_folders_stay_inside_the_results_folder(finished):
    with pytest.raises(BenchError, match="would write outside"):
        finished.job_dir("../../x")
    with pytest.raises(BenchError, match="would write outside"):
        finished.predictions_dir("../x", 0, "ts")


def test_a_suite_cannot_escape_the_results_root(tmp_path):
    with pytest.raises(BenchError, match="would write outside"):
        ResultsStore.create("../../x", "abc", tmp_path / "results")


@pytest.mark.slow
def test_a_job_past_its_whole_limit_is_stopped_whatever_its_phase(plugin_path, smoke_config, tmp_path):
    pid_file = tmp_path / "helper.pid"
    text = SMOKE_TEXT.replace("  minutes: 2 ", "  minutes: 5\n  job_minutes: 0.4 ")  # phases may last 5 min; jobs not
    entries = f"  - {{name: faulty-hangs, config: {{pid_file: {pid_file}}}}}\n  - name: example-smooth-minima\n"
    suite = suite_file(tmp_path, text.split("architectures:")[0] + "architectures:\n" + entries, "whole")
    result = bench_process("run", "--suite", suite, "--results", tmp_path, env={"PYTHONPATH": plugin_path},
                           timeout=120)  # fmt: skip
    assert_one_line_error(result, "1 job(s) failed: faulty-hangs-seed0-ts")
    jobs = ResultsStore.latest("whole", tmp_path).manifest["jobs"]
    assert jobs["faulty-hangs-seed0-ts"]["status"] == "over budget"
    assert jobs["faulty-hangs-seed0-ts"]["error"] == "stopped 0.4 min after it started (the job's limit)"
    assert jobs["example-smooth-minima-seed0-ts"]["status"] == "ok"
    assert gone(int(pid_file.read_text()))
