"""The yolov8 plug-in: its dataset in ultralytics' layout, the trainer it configures and drives, offline and in its
work folder, and its saved model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from architectures.parts.slices import SliceSpec, normalised_volume
from architectures.yolov8 import YOLOv8Slices, write_dataset
from benchmark.data import Project
from benchmark.errors import BenchError
from benchmark.interface import Budget, Tracker
from benchmark.job import load_samples
from benchmark.particles import ParticleTable
from benchmark.suite import DataSpec

PARTICLES = ParticleTable.czii()
REPOSITORY = Path(__file__).resolve().parents[1]
TINY = {"z_step": 2, "batch_size": 4, "mosaic": 0.0, "conf": 0.0}  # 64x64 slices: a fit takes a second or two
PICKS = {
    "ribosome": np.array([[300.0, 200.0, 100.0], [450.0, 450.0, 150.0]]),
    "apo-ferritin": np.array([[150.0, 500.0, 120.0], [500.0, 120.0, 80.0]]),
}


def samples_of(config: Path, runs: tuple[str, ...]) -> list:
    """The runs of a copick project at exactly 10 Å a voxel, with their ground truth."""
    return load_samples(Project(config), list(runs), DataSpec("none", voxel_size=10.0))


def fit(samples, workdir: Path | None, budget: Budget | None = None, seed: int = 0, tracker=None, **config):
    """A tiny yolov8 fitted on `samples`, and its tracker."""
    model = YOLOv8Slices({**TINY, **config}, PARTICLES, "cpu", seed)
    model.workdir = workdir
    budget = budget or Budget(minutes=5, epochs=1)
    tracker = tracker or Tracker(budget)
    tracker.start()
    model.fit(samples, [], budget, tracker)
    return model, tracker


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Two 24x64x64 runs of noise with two ribosomes and two apo-ferritins each, at 10 Å a voxel."""
    from conftest import add_run, write_config

    config = write_config(tmp_path_factory.mktemp("yolov8-project"))
    rng = np.random.default_rng(0)
    for run in ("TS_1", "TS_2"):
        add_run(config, run, rng.normal(size=(24, 64, 64)), PICKS, true_voxel_size=10.0)
    return config


@pytest.fixture(scope="module")
def fitted(project, tmp_path_factory):
    """The tiny yolov8 fitted once in a work folder of its own, with its tracker and first predictions."""
    work = tmp_path_factory.mktemp("work")
    samples = samples_of(project, ("TS_1", "TS_2"))
    model, tracker = fit(samples, work)
    return model, tracker, work, model.predict(samples[0].tomogram), samples


def test_the_dataset_is_ultralytics_layout_with_a_label_line_per_box(copick_project, tmp_path):
    config = copick_project(shape=(32, 64, 80), picks={"ribosome": PICKS["ribosome"][:1]}, true_voxel_size=10.0)
    samples = samples_of(config, ("TS_1",))
    spec = SliceSpec(neighbours=1, channels=3)
    options = {"z_fraction": 0.5, "box": "section", "z_step": 1}
    dataset = write_dataset(samples, PARTICLES, spec, options, tmp_path / "dataset")
    assert dataset.images == 32 and dataset.shape == (64, 80)
    data = yaml.safe_load(dataset.data.read_text())
    assert data["path"] == str(tmp_path / "dataset") and data["train"] == "images/train"
    assert data["names"] == {p.label - 1: p.name for p in PARTICLES}  # class = copick label - 1
    # the ribosome (radius 15 voxels) at voxel (z 10, y 20, x 30): the 30-pixel square around the centre pixel's middle
    label = (tmp_path / "dataset" / "labels" / "train" / "TS_1_z0010.txt").read_text()
    assert label == f"3 {30.5 / 80:.6f} {20.5 / 64:.6f} {30 / 80:.6f} {30 / 64:.6f}\n"
    assert (tmp_path / "dataset" / "labels" / "train" / "TS_1_z0000.txt").read_text() == ""  # too far off: none
    image = cv2.imread(str(tmp_path / "dataset" / "images" / "train" / "TS_1_z0010.png"), cv2.IMREAD_UNCHANGED)
    volume = normalised_volume(samples[0].tomogram, spec)
    assert image.shape == (64, 80, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, np.rint(volume[9:12] * 255).astype(np.uint8).transpose(1, 2, 0))


def test_fit_trains_with_ultralytics_as_configured_within_its_work_folder(fitted):
    _, tracker, work, predictions, _ = fitted
    assert {p.name for p in work.iterdir()} <= {"dataset", "runs", "ultralytics"}  # settings, at the first import
    arguments = yaml.safe_load((work / "runs" / "train" / "args.yaml").read_text())
    assert arguments["model"] == "yolov8n.yaml" and arguments["pretrained"] is False  # built from the yaml
    assert arguments["data"] == str(work / "dataset" / "data.yaml") and arguments["imgsz"] == 64
    assert arguments["scale"] == 0.0 and arguments["degrees"] == 0.0  # box size carries the class
    assert (arguments["hsv_h"], arguments["hsv_s"], arguments["hsv_v"]) == (0.0, 0.0, 0.0)  # grayscale
    assert (arguments["flipud"], arguments["fliplr"], arguments["mosaic"]) == (0.5, 0.5, 0.0)
    assert (arguments["plots"], arguments["val"], arguments["amp"], arguments["deterministic"]) == (
        False,
        False,
        False,
        True,
    )
    assert (arguments["seed"], arguments["epochs"], arguments["batch"], arguments["nbs"]) == (0, 1, 4, 4)
    assert (arguments["optimizer"], arguments["lr0"], arguments["warmup_bias_lr"]) == ("AdamW", 1.0e-3, 0.0)
    assert tracker.epoch_samples == 24 and tracker.epoch_unit == "64x64 slices"  # 12 of each run's 24 slices
    assert len(tracker.epoch_seconds) == 1 and tracker.stopped_by == "epochs" and np.isfinite(tracker.logs[0]["loss"])
    assert not predictions.empty and set(predictions["particle_type"]) <= set(PARTICLES.names)


def test_save_and_load_give_identical_predictions_without_the_work_folder(fitted, tmp_path):
    model, _, work, predictions, samples = fitted
    model.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json", "yolov8.pt"]
    assert json.loads((tmp_path / "model" / "config.json").read_text())["imgsz"] == 64
    hidden = shutil.move(work, tmp_path / "hidden")  # load must not need the dataset or the runs
    try:
        restored = YOLOv8Slices({}, PARTICLES, "cpu", seed=7)
        restored.load(tmp_path / "model")
        pd.testing.assert_frame_equal(restored.predict(samples[0].tomogram), predictions)
    finally:
        shutil.move(hidden, work)


def test_the_same_seed_gives_identical_predictions_on_cpu(fitted):
    _, _, _, predictions, samples = fitted
    again, _ = fit(samples, None)  # outside a job: a temporary work folder
    pd.testing.assert_frame_equal(again.predict(samples[0].tomogram), predictions)


def test_the_trainer_stops_within_an_epoch_when_the_tracker_says_the_minutes_are_spent(fitted):
    samples = fitted[4]
    now = [0.0]

    def clock() -> float:  # one second a reading: the budget's 12 s run out within the first epoch's 24 batches
        now[0] += 1.0
        return now[0]

    budget = Budget(minutes=0.2, epochs=3)
    tracker = Tracker(budget, clock=clock)
    model, _ = fit(samples, None, budget, tracker=tracker, batch_size=1)
    assert tracker.stopped_by == "minutes" and len(tracker.epoch_seconds) == 1 and len(tracker.logs) == 1
    assert tracker.epoch_seconds[0] < 24  # cut short: a whole epoch reads the clock after each of its 24 batches
    assert not model.predict(samples[0].tomogram).empty  # the weights of the epoch cut short


def test_pretrained_starts_from_a_local_checkpoint(fitted, tmp_path):
    from ultralytics import YOLO

    model, _, _, _, samples = fitted
    model.save(tmp_path / "start")
    start = str(tmp_path / "start" / "yolov8.pt")
    unchanged, _ = fit(samples, None, seed=3, pretrained=start, lr=0.0, warmup_epochs=0.0)  # trains nothing
    fresh, _ = fit(samples, None, seed=3, lr=0.0, warmup_epochs=0.0)
    (tmp_path / "unchanged.pt").write_bytes(unchanged.checkpoint)
    (tmp_path / "fresh.pt").write_bytes(fresh.checkpoint)
    weights = {
        name: dict(YOLO(str(path)).model.named_parameters()) for name, path in
        [("start", start), ("unchanged", tmp_path / "unchanged.pt"), ("fresh", tmp_path / "fresh.pt")]
    }  # fmt: skip
    for name, value in weights["start"].items():
        np.testing.assert_allclose(weights["unchanged"][name].numpy(), value.numpy(), atol=1e-3, err_msg=name)
    assert any(not np.allclose(weights["fresh"][n].numpy(), v.numpy()) for n, v in weights["start"].items())


@pytest.mark.slow
def test_fit_writes_nothing_outside_its_work_folder(project, tmp_path):
    """In a fresh process with HOME, the working directory and the temporary folder empty, as ultralytics resolves
    its settings at import: nothing lands there, nor in the repository."""
    home, cwd, temporary, work = (tmp_path / name for name in ("home", "cwd", "tmp", "work"))
    for folder in (home, cwd, temporary):
        folder.mkdir()
    script = textwrap.dedent(f"""
        import json, tempfile
        from pathlib import Path
        from architectures.yolov8 import YOLOv8Slices
        from benchmark.data import Project
        from benchmark.interface import Budget, Tracker
        from benchmark.job import load_samples, seed_everything
        from benchmark.particles import ParticleTable
        from benchmark.suite import DataSpec

        samples = load_samples(Project(Path({str(project)!r})), ["TS_1"], DataSpec("none", voxel_size=10.0))
        seed_everything(0)  # as a job does; torch's deterministic switch makes its compiler's cache folder in TMPDIR
        temporary = set(Path(tempfile.gettempdir()).iterdir())
        model = YOLOv8Slices({TINY!r}, ParticleTable.czii(), "cpu", 0)
        model.workdir = Path({str(work)!r})
        budget = Budget(minutes=5, epochs=1)
        tracker = Tracker(budget)
        tracker.start()
        model.fit(samples, [], budget, tracker)
        model.save(model.workdir / "model")
        picks = model.predict(samples[0].tomogram)
        new = set(Path(tempfile.gettempdir()).iterdir()) - temporary
        print(json.dumps({{"picks": len(picks), "new_temporary": sorted(map(str, new))}}))
    """)  # no pytest in that process: ultralytics behaves otherwise under pytest
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("XDG_", "YOLO_", "ULTRALYTICS_", "MPL", "TORCH_HOME", "PYTEST_"))
    }
    environment.update(HOME=str(home), TMPDIR=str(temporary), PYTHONPATH=str(REPOSITORY), PYTHONDONTWRITEBYTECODE="1")
    before = {p for p in REPOSITORY.rglob("*") if ".git" not in p.parts}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["picks"] > 0 and report["new_temporary"] == []
    assert list(home.iterdir()) == [] and list(cwd.iterdir()) == []
    assert {p for p in REPOSITORY.rglob("*") if ".git" not in p.parts} == before
    assert (work / "ultralytics" / "Ultralytics" / "settings.json").is_file()


@pytest.mark.parametrize(
    ("amp", "device", "precision", "runs_in"),
    [
        ("suite", "cuda", "bf16", "bf16"),  # the suite's mixed precision, as every deep row
        ("suite", "cuda", "fp32", False),
        (False, "cuda", "bf16", False),  # a config that says fp32 wins, and the results record it
        ("suite", "cpu", "bf16", False),  # ultralytics' AMP is GPU only
    ],
)
def test_ultralytics_mixed_precision_follows_the_suite_unless_the_config_says_otherwise(
    amp, device, precision, runs_in
):
    model = YOLOv8Slices({"amp": amp}, PARTICLES, device, seed=0)
    model.precision = precision
    assert model._amp() == runs_in


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"frobnicate": 1}, "no config option(s) 'frobnicate'"),
        ({"size": "x"}, "size 'x' is one of n, s, m"),
        ({"amp": True}, "amp True is 'suite', false or 'bf16'"),
        ({"pretrained": "missing/yolov8n.pt"}, "pretrained 'missing/yolov8n.pt' is not a local file"),
    ],
)
def test_bad_configs_are_named(config, message):
    with pytest.raises(BenchError) as error:
        YOLOv8Slices(config, PARTICLES, "cpu", seed=0)
    assert message in str(error.value)
