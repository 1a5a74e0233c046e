"""YOLOv8 on 2D z-slices (ultralytics), merged into 3D picks: faster-rcnn's slice pipeline with ultralytics' detector.

The network is built from ultralytics' model yaml (`yolov8{size}.yaml`), never from downloaded weights; `pretrained`
takes a local ultralytics checkpoint. It trains with ultralytics' own trainer on a dataset written in ultralytics'
layout inside the job's work folder (8-bit PNG slices, 2.5D by default, with the shared pipeline's box targets), with
its settings, runs and checkpoints there too (a temporary folder outside a job). Nothing reaches the network or the
user's folders: ultralytics is imported offline, quiet and without auto-install, its settings folder in the work
folder; fp16 AMP (whose check downloads weights) is refused; the dataset check, which fetches a plotting font, is
replaced by our own (the dataset is ours); plots are off.

The runner's tracker drives the trainer from its callbacks: one ultralytics epoch (a pass over the training slices)
is one tracker epoch, and training stops when the tracker says the budget is spent. Ultralytics' validation passes
are skipped (the runner tunes thresholds on val) and the weights are the EMA of the last epoch, saved by ultralytics
in fp16. Augmentation keeps what matters in a tomogram: no scaling (box size tells the particles apart), no colour
(grayscale), flips of y and x only (flips keep the missing wedge about y; turns and rotations would move it); mosaic
and translation as configured.
Predictions keep every detection above a very low confidence: the merged 3D picks are all scored, for the runner.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from architectures.parts.merge import SliceBoxes, detect_slices, label_names, picks_from_detections
from architectures.parts.slices import SliceSpec, box_targets, normalised_volume, slice_images
from benchmark.data import Tomogram
from benchmark.environment import use_deterministic_kernels
from benchmark.errors import BenchError
from benchmark.interface import Architecture, Budget, Sample, Tracker
from benchmark.particles import ParticleTable
from benchmark.registry import register

DEFAULTS = {
    "size": "n",  # yolov8n, s or m, built from ultralytics' model yaml
    "level": 0,  # pyramid level of the slices
    "neighbours": 1,  # slices each side as channels (2.5D); 0 repeats the slice three times
    "percentiles": [1.0, 99.0],  # intensity clip before scaling to 8 bits
    "z_fraction": 0.5,  # target boxes on the slices within this fraction of the radius from a centre
    "box": "section",  # the cross-section's square, or "square": the full 2r square
    "z_step": 1,  # training images: every z_step-th slice of each train run (an epoch is one pass over them)
    "batch_size": 8,
    "optimizer": "AdamW",  # any of ultralytics' (SGD, Adam, AdamW, ...)
    "lr": 1.0e-3,
    "lrf": 0.01,  # last learning rate as a fraction of `lr`, reached at the budget's epoch bound
    "cos_lr": False,  # cosine rather than linear decay
    "momentum": 0.9,  # SGD momentum or Adam beta1
    "weight_decay": 5.0e-4,
    "warmup_epochs": 1.0,
    "warmup_bias_lr": 0.0,  # bias learning rate at the warmup's start (ultralytics' 0.1 suits SGD only)
    "nbs": None,  # nominal batch size: gradients accumulate over nbs / batch_size batches; None: a step per batch
    "mosaic": 1.0,  # probability of a 4-slice mosaic (at the slice size: scale stays 1)
    "close_mosaic": 1,  # last epochs without mosaic
    "translate": 0.1,
    "flip": 0.5,  # probability of each x-y flip (ultralytics' flipud and fliplr)
    "schedule_epochs": 100,  # length of the learning-rate schedule when the budget has no epoch bound
    "amp": "suite",  # GPU only: the suite's precision, False (fp32) or "bf16"; fp16 needs a check that downloads
    "workers": 0,  # dataloader processes (ultralytics uses none on CPU)
    "conf": 0.001,  # lowest detection confidence kept per slice (the runner tunes the 3D thresholds on val)
    "iou": 0.7,  # per-slice NMS
    "max_det": 300,  # detections per slice
    "merge_xy": 0.5,  # x-y distance linking detections across slices, x the radius
    "merge_z": 2,  # slices a link may span (2 bridges one missed slice)
    "predict_batch": 16,
    "pretrained": None,  # path of a local ultralytics checkpoint (.pt) to start from
}
SEARCH_SPACE = {  # what bench tune searches: settings a step's cost does not depend on
    "lr": {"low": 5.0e-4, "high": 1.0e-2, "log": True},
    "weight_decay": {"low": 1.0e-5, "high": 1.0e-2, "log": True},
    "translate": {"low": 0.0, "high": 0.3},
}
WEIGHTS = "yolov8.pt"
CONFIG = "config.json"
SIZES = ("n", "s", "m")
INTEGRATIONS = ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")


@register("yolov8")
class YOLOv8Slices(Architecture):
    """ultralytics' YOLOv8 on 2.5D z-slices, its per-slice boxes merged into 3D picks."""

    kind = "2d-detector"
    defaults = DEFAULTS
    search_space = SEARCH_SPACE

    def __init__(self, config, particles, device, seed):
        super().__init__(config, particles, device, seed)
        c = self.config
        if c["size"] not in SIZES:
            raise BenchError(f"yolov8: size '{c['size']}' is one of {', '.join(SIZES)}")
        if c["amp"] not in ("suite", False, "bf16"):
            raise BenchError(
                f"yolov8: amp {c['amp']!r} is 'suite', false or 'bf16' (fp16 AMP's check downloads weights)"
            )
        if c["pretrained"] and not Path(c["pretrained"]).is_file():
            raise BenchError(f"yolov8: pretrained '{c['pretrained']}' is not a local file (nothing is downloaded)")
        self.spec = _slice_spec(c)
        self.imgsz: int | None = None  # the network's input size (slice size up to a multiple of 32), set by fit
        self.checkpoint: bytes | None = None  # ultralytics' checkpoint of the trained network, set by fit
        self.detector = None  # ultralytics' YOLO loaded from the checkpoint
        self.last: Path | None = None  # the trainer's checkpoint of its last epoch, while fit runs

    def fit(self, train: Sequence[Sample], val: Sequence[Sample], budget: Budget, tracker: Tracker) -> None:
        """Write the train slices in ultralytics' layout and train with its trainer, epochs driven by the tracker."""
        with _work_folder(self.workdir) as folder:
            _import_ultralytics(folder)
            from ultralytics.utils.callbacks import get_default_callbacks

            dataset = write_dataset(train, self.particles, self.spec, self.config, folder / "dataset")
            self.precision = self._amp() or "fp32"  # what ultralytics' own mixed precision runs in
            self.imgsz = 32 * math.ceil(max(dataset.shape) / 32)
            clock = EpochClock(tracker, dataset.images, "x".join(map(str, dataset.shape)) + " slices")
            events = get_default_callbacks()
            for event, callback in {"on_pretrain_routine_start": _thread_keeper(), **clock.callbacks()}.items():
                events[event].append(callback)
            with _ultralytics_running():
                trainer = _trainer()(
                    overrides=self.train_arguments(dataset.data, folder / "runs", budget), _callbacks=events
                )
                self.last = trainer.last
                trainer.train()
            weights = trainer.best if trainer.best.exists() else trainer.last
            self.checkpoint = weights.read_bytes()
            self.detector = _detector(weights)
            self.last = None

    @contextmanager
    def interim(self) -> Iterator[None]:
        """`predict` on the last epoch's checkpoint (ultralytics saves it, with its weight average, before the
        tracker's epoch ends), mid-`fit`."""
        self.detector = _detector(self.last)
        yield

    def train_arguments(self, data: Path, runs: Path, budget: Budget) -> dict:
        """ultralytics' training arguments: the config's, the budget's epoch bound (the learning-rate schedule's
        length), the seed, and everything else fixed for tomograms and for the harness."""
        c = self.config
        return {
            "model": f"yolov8{c['size']}.yaml",
            "task": "detect",
            "mode": "train",
            "data": str(data),
            "epochs": budget.epochs or c["schedule_epochs"],
            "imgsz": self.imgsz,
            "batch": c["batch_size"],
            "device": self._device(),
            "workers": c["workers"],
            "seed": self.seed,
            "deterministic": True,
            "pretrained": str(c["pretrained"]) if c["pretrained"] else False,
            "amp": self._amp(),
            "optimizer": c["optimizer"],
            "lr0": c["lr"],
            "lrf": c["lrf"],
            "cos_lr": c["cos_lr"],
            "momentum": c["momentum"],
            "weight_decay": c["weight_decay"],
            "warmup_epochs": c["warmup_epochs"],
            "warmup_bias_lr": c["warmup_bias_lr"],
            "nbs": c["nbs"] or c["batch_size"],
            "mosaic": c["mosaic"],
            "close_mosaic": c["close_mosaic"],
            "translate": c["translate"],
            "flipud": c["flip"],
            "fliplr": c["flip"],
            **dict.fromkeys(("scale", "degrees", "shear", "perspective", "hsv_h", "hsv_s", "hsv_v"), 0.0),
            **dict.fromkeys(("mixup", "cutmix", "bgr", "multi_scale"), 0.0),
            "project": str(runs),
            "name": "train",
            "exist_ok": True,
            "save": True,  # last.pt each epoch: the last finished epoch's weights survive a stop by the budget
            "val": False,
            "plots": False,
            "verbose": False,
        }

    def predict(self, tomogram: Tomogram) -> pd.DataFrame:
        """Detect on every slice in batches, then merge the detections of each type across slices into 3D picks."""
        c = self.config

        def detect(images: np.ndarray) -> list[SliceBoxes]:
            results = self.detector.predict(
                list(eight_bit(images)),
                imgsz=self.imgsz,
                conf=c["conf"],
                iou=c["iou"],
                max_det=c["max_det"],
                device=self._device(),
                save=False,
                verbose=False,
            )
            return [
                (r.boxes.xyxy.cpu().numpy(), r.boxes.cls.cpu().numpy().astype(int) + 1, r.boxes.conf.cpu().numpy())
                for r in results
            ]  # class index = copick label - 1

        volume = normalised_volume(tomogram, self.spec)
        with _ultralytics_running():
            detections = detect_slices(volume, self.spec, c["predict_batch"], detect, self.particles)
        return picks_from_detections(
            detections, tomogram, self.particles, self.spec.level, c["merge_xy"], c["merge_z"], c["z_fraction"]
        )

    def save(self, directory: Path) -> None:
        """Write ultralytics' checkpoint of the trained network and the config with the input size."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / WEIGHTS).write_bytes(self.checkpoint)
        (directory / CONFIG).write_text(json.dumps({"config": self.config, "imgsz": self.imgsz}, indent=2))

    def load(self, directory: Path) -> None:
        """Restore the config and the network from the checkpoint (no dataset or work folder needed)."""
        state = json.loads((directory / CONFIG).read_text())
        self.config, self.imgsz = state["config"], state["imgsz"]
        self.spec = _slice_spec(self.config)
        self.checkpoint = (directory / WEIGHTS).read_bytes()
        with _work_folder(self.workdir) as folder:
            _import_ultralytics(folder)
        self.detector = _detector(directory / WEIGHTS)

    def _amp(self) -> str | bool:
        """ultralytics' mixed precision on this device: "bf16" (the suite's, or the config's) on a GPU, else False."""
        amp = ("bf16" if self.precision == "bf16" else False) if self.config["amp"] == "suite" else self.config["amp"]
        return False if self._device() == "cpu" else amp

    def _device(self) -> str:
        """The device as ultralytics names it: 'cpu', 'mps' or a CUDA index."""
        device = torch.device(self.device)
        return device.type if device.type in ("cpu", "mps") else str(device.index or 0)


def _slice_spec(config: dict) -> SliceSpec:
    """The slices of a config: three channels, the slice and its neighbours or the slice repeated."""
    return SliceSpec(config["level"], tuple(config["percentiles"]), config["neighbours"], channels=3)


@dataclass(frozen=True)
class Dataset:
    """A dataset written in ultralytics' layout: its data yaml, image count and largest slice (y, x) size."""

    data: Path
    images: int
    shape: tuple[int, int]


def write_dataset(
    samples: Sequence[Sample], particles: ParticleTable, spec: SliceSpec, config: dict, folder: Path
) -> Dataset:
    """Write every `z_step`-th slice of each sample as an 8-bit PNG (images/train) with a label file of its target
    boxes (labels/train: class = copick label - 1, then centre x, y and width, height as fractions of the slice),
    and a data yaml naming the classes; `folder` is written afresh."""
    import cv2

    shutil.rmtree(folder, ignore_errors=True)
    images, labels = folder / "images" / "train", folder / "labels" / "train"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    count, shapes = 0, set()
    for sample in samples:
        volume = normalised_volume(sample.tomogram, spec)
        boxes = box_targets(sample.picks, particles, sample.tomogram, spec.level, config["z_fraction"], config["box"])
        height, width = volume.shape[1:]
        shapes.add((height, width))
        for z in range(0, volume.shape[0], config["z_step"]):
            name = f"{sample.run}_z{z:04d}"
            cv2.imwrite(str(images / f"{name}.png"), eight_bit(slice_images(volume, np.array([z]), spec))[0])
            (labels / f"{name}.txt").write_text(label_lines(boxes[boxes["z"] == z], height, width))
            count += 1
    data = folder / "data.yaml"
    names = label_names(particles)
    classes = {label - 1: names.get(label, f"label-{label}") for label in range(1, max(names) + 1)}
    # ultralytics builds a validation loader even with val off: it gets the train images, and never runs
    data.write_text(
        yaml.safe_dump({"path": str(folder), "train": "images/train", "val": "images/train", "names": classes})
    )
    return Dataset(data, count, tuple(int(n) for n in np.max(list(shapes), axis=0)))


def label_lines(boxes: pd.DataFrame, height: int, width: int) -> str:
    """Box targets (x1, y1, x2, y2 pixels and copick label) as ultralytics' label lines."""
    return "".join(
        f"{label - 1} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
        f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n"
        for x1, y1, x2, y2, label in boxes[["x1", "y1", "x2", "y2", "label"]].itertuples(index=False)
    )


def eight_bit(images: np.ndarray) -> np.ndarray:
    """Slice images (n, channels, y, x) in [0, 1] as 8-bit (n, y, x, channels) arrays, as ultralytics reads images
    (its BGR-to-RGB swap only reverses the z order of the channels, the same in training and prediction)."""
    return np.ascontiguousarray(np.rint(images * 255).astype(np.uint8).transpose(0, 2, 3, 1))


class EpochClock:
    """The tracker's epochs, driven from ultralytics' trainer callbacks: one trainer epoch is one tracker epoch."""

    def __init__(self, tracker: Tracker, samples: int, unit: str):
        self.tracker, self.samples, self.unit = tracker, samples, unit
        self.running: Iterator[int] | None = None
        self.waiting_since: float | None = None

    def callbacks(self) -> dict[str, Callable]:
        """The trainer events and what each does."""
        return {
            "on_train_start": self.start,
            "on_train_epoch_start": self.mark,
            "on_train_batch_start": self.fetched,
            "on_train_batch_end": self.check,
            "on_fit_epoch_end": self.end,
        }

    def mark(self, trainer) -> None:
        """Where a wait for the next batch starts: the epoch's start, or the end of the step before."""
        self.waiting_since = self.tracker.clock()

    def fetched(self, trainer) -> None:
        """The trainer has its batch (ultralytics calls this right after its DataLoader yields): the wait ends."""
        if self.waiting_since is not None:
            self.tracker.waited(self.tracker.clock() - self.waiting_since)

    def start(self, trainer) -> None:
        """Before the first epoch: ask the tracker for it."""
        self.running = self.tracker.epochs(samples=self.samples, unit=self.unit)
        self._next(trainer)

    def check(self, trainer) -> None:
        """After each batch: stop within the epoch once the budget's minutes are spent; the next wait starts."""
        if self.tracker.exhausted():
            trainer.stop = True
        self.mark(trainer)

    def end(self, trainer) -> None:
        """After an epoch (and its checkpoint): log its loss, end it, and stop the trainer unless another may start."""
        if self.running is None:
            return
        loss = sum(float(v) for v in trainer.tloss.values()) if trainer.tloss else float("nan")
        self.tracker.log(loss=loss)
        bound = self.tracker.budget.epochs
        at_bound = bound is not None and len(self.tracker.epoch_seconds) + 1 >= bound
        if trainer.stop and not (at_bound or self.tracker.exhausted()):  # ultralytics ends on its own
            self.running.close()  # the epoch ends with it, and no other is asked for
            self.running = None
        else:
            self._next(trainer)

    def _next(self, trainer) -> None:
        """Start the next tracker epoch, or stop the trainer when the tracker says no more."""
        try:
            next(self.running)
        except StopIteration:
            self.running = None
            trainer.stop = True


@cache
def _trainer() -> type:
    """ultralytics' detection trainer, less what the harness does itself or must not do offline."""
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils.torch_utils import strip_optimizer

    class SliceTrainer(DetectionTrainer):
        """Reads our data yaml as written (ultralytics' dataset check also fetches a plotting font), prints no model
        summary (its FLOPs count runs the network), runs no validation (the runner tunes thresholds on val) and only
        strips the optimizer from the checkpoints."""

        def get_dataset(self) -> dict:
            data = yaml.safe_load(Path(self.args.data).read_text())
            root = Path(data["path"])
            paths = {split: str(root / data[split]) for split in ("train", "val")}
            return {**data, **paths, "path": root, "nc": len(data["names"]), "channels": 3}

        def get_model(self, cfg=None, weights=None, verbose=True):
            return super().get_model(cfg, weights, verbose=False)

        def validate(self) -> tuple:
            return self.metrics, None  # no fitness: every checkpoint is the last one, as with val off

        def final_eval(self) -> None:
            for weights in (self.last, self.best):
                if weights.exists():
                    strip_optimizer(weights)

    return SliceTrainer


def _detector(weights: Path):
    """ultralytics' YOLO loaded from a checkpoint, predicting with the process's torch thread count."""
    from ultralytics import YOLO

    with _ultralytics_running():
        detector = YOLO(str(weights), task="detect")
    detector.add_callback("on_predict_start", _thread_keeper())
    return detector


def _thread_keeper() -> Callable:
    """A callback restoring torch's present thread count (ultralytics sets the cores less one when it picks a device:
    its trainer before "on_pretrain_routine_start", its predictor before "on_predict_start")."""
    threads = torch.get_num_threads()
    return lambda _: torch.set_num_threads(threads)


@contextmanager
def _work_folder(workdir: Path | None) -> Iterator[Path]:
    """The job's work folder, or a temporary one (removed afterwards) outside a job."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
        return
    with tempfile.TemporaryDirectory(prefix="cryoet-bench-yolov8-") as folder:
        yield Path(folder)


def _import_ultralytics(folder: Path) -> None:
    """Import ultralytics for the first time with its settings in `folder`/ultralytics, offline (no hub, sync,
    telemetry, update or download checks), quiet and without pip auto-install: it reads these once, at import (a
    process that fits several models keeps the first one's settings folder; the runner runs one job a process). Its
    runs, datasets and weights folders point into `folder` and its logging integrations are off. The environment and
    numpy's print options are left as they were."""
    if "ultralytics" in sys.modules:
        return
    environment, printing = dict(os.environ), np.get_printoptions()
    os.environ.update(
        YOLO_CONFIG_DIR=str(folder / "ultralytics"), YOLO_OFFLINE="1", YOLO_VERBOSE="0", YOLO_AUTOINSTALL="0"
    )
    try:
        from ultralytics.utils import SETTINGS

        folders = {"runs_dir": "runs", "datasets_dir": "dataset", "weights_dir": "weights"}
        SETTINGS.update(
            {key: str(folder / name) for key, name in folders.items()}, sync=False, **dict.fromkeys(INTEGRATIONS, False)
        )
    finally:
        _restore_environment(environment)
        np.set_printoptions(**printing)


@contextmanager
def _ultralytics_running() -> Iterator[None]:
    """While ultralytics trains or predicts: its logger and progress bars quiet (out of the harness's display), no
    Platform API key in reach; afterwards torch's thread count and determinism flags (its trainer sets and unsets
    them) and the environment are as they were."""
    from ultralytics.utils import LOGGER

    environment, level, threads = dict(os.environ), LOGGER.level, torch.get_num_threads()
    flags = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.utils.deterministic.fill_uninitialized_memory,
    )
    os.environ.pop("ULTRALYTICS_API_KEY", None)
    LOGGER.setLevel(logging.ERROR)
    try:
        yield
    finally:
        LOGGER.setLevel(level)
        torch.set_num_threads(threads)
        use_deterministic_kernels(flags[0], warn_only=flags[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[2:4]
        torch.utils.deterministic.fill_uninitialized_memory = flags[4]
        _restore_environment(environment)


def _restore_environment(saved: dict[str, str]) -> None:
    """Make os.environ what it was when `saved` was taken."""
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    os.environ.update(saved)
