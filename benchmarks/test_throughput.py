"""Throughput of every deep architecture against its bare network, at the demo and full settings (CPU here).

Each test runs an architecture with its suite's configuration two ways: `harness`, as the harness runs it, and
`bare`, the network alone on the same work; the gap is the harness's share of the time. `extra_info` holds the rates
(`steps_per_second`; `voxels_per_second` of the inferred region) and what the network ran on (windows or slices).

Training, one optimisation step, on in-memory runs of noise with random picks (deep enough for any patch; for the
slice detectors, a few slices of the suite's data size):

- deepfindet, unet3d, heatmap-unet: `training_step` on patches that `PatchSampler` cuts (as `fit` builds it, the
  targets what `target_for` paints: class volumes, heatmap-unet's Gaussian maps), augments and copies to the device,
  against the same step on a batch drawn once.
- faster-rcnn: `training_step` on slices `SliceSampler` draws, augmented, with their boxes, against the same step
  on a batch drawn once; `fit` itself builds the detector.
- yolov8: a step of ultralytics' trainer, built from a dataset `write_dataset` wrote as `fit` builds both, on a batch
  of ultralytics' data loader (PNG reads, mosaic, flips, letterbox) against a batch loaded once. ultralytics runs its
  loop itself, so its body is mirrored here (ultralytics 8.4: preprocess, forward and loss, backward, the clipped
  optimiser step and the EMA update) after its private set-up (`_setup_train`); not covered are the loop's per-step
  bookkeeping (warm-up ramps, progress bar, the tracker's callbacks) and what the harness does once a fit rather than
  once a step: writing the dataset (8-bit PNG slices and label files).

Inference, of the first 92x192x192 voxels of a demo test tomogram:

- deepfindet, unet3d, heatmap-unet: `predict` (reads, standardising, tiled sliding windows with blending,
  heatmap-unet's flips, then argmax and components, or peaks) against the network on as many windows in MONAI's
  batches, tile by tile (each window once per flip for heatmap-unet).
- faster-rcnn: `predict` (reads, percentile normalisation, 2.5D slices, detection, merging across slices) against the
  detector alone on the same slices in `predict`'s batches.
- yolov8: `predict` (the same through ultralytics' predictor: 8-bit images, letterbox, NMS) against the network that
  the predictor runs (its AutoBackend: the detector fused, channels-last on CPU) on the same batches of slices at the
  letterboxed size.

The networks are untrained (yolov8's has had one epoch on noise, for the checkpoint `predict` loads): what follows
the network (components, peaks, NMS and merging) costs what the network finds, so a trained model's share of picking
may differ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import zarr

from architectures.faster_rcnn import FasterRCNNSlices, SliceSampler
from architectures.parts.patch_network import PatchNetwork
from architectures.parts.slices import normalised_volume, slice_images
from architectures.parts.training import Optimisation
from architectures.parts.volumes import PatchSampler, SlidingWindow
from architectures.yolov8 import (
    YOLOv8Slices,
    _import_ultralytics,
    _thread_keeper,
    _trainer,
    _ultralytics_running,
    eight_bit,
    write_dataset,
)
from benchmark.coords import XYZ
from benchmark.data import Project, Tomogram
from benchmark.interface import Architecture, Budget, Sample, Tracker
from benchmark.job import load_samples
from benchmark.particles import ParticleTable
from benchmark.registry import ARCHITECTURES
from benchmark.runner import resolve_data
from benchmark.suite import load_suite
from benchmark.synth.presets import PRESETS

PARTICLES = ParticleTable.czii()
SETTINGS = {"demo": 3, "full": 1}  # suite -> timed rounds (the full networks take seconds a step on a CPU)
PATHS = ["harness", "bare"]
REGION = (92, 192, 192)  # the inferred region: a demo tomogram's depth, one 192^2 window across
VOXEL = 10.012  # Å, the synthetic datasets' voxel size
DEPTH = 16  # slices of each in-memory training run of the slice detectors
BUDGET = Budget(minutes=10.0)  # what `fit` is told where it sets a model up
Steps = dict[str, Callable[[], torch.Tensor]]  # path -> one optimisation step, returning the loss


def architecture(name: str, suite_name: str) -> Architecture:
    """The suite's configuration of an architecture, untrained, on the CPU; skips the test where the suite lacks it."""
    spec = next((s for s in load_suite(suite_name).architectures if s.name == name), None)
    if spec is None:
        pytest.skip(f"suites/{suite_name}.yaml has no {name} entry yet")
    return ARCHITECTURES.get(name)(spec.config, PARTICLES, "cpu", 0)


def in_memory(run: str, volume: np.ndarray, voxel_size: float = VOXEL) -> Tomogram:
    """A one-level tomogram in an in-memory zarr array: every read is a fresh copy, as from a file."""
    return Tomogram(run, "denoised", voxel_size, (zarr.array(volume),))


def noise_runs(shape: tuple[int, int, int], count: int = 2, per_type: int = 8) -> list[Sample]:
    """`count` training runs of Gaussian noise, each with `per_type` picks of every particle type at random places."""
    rng = np.random.default_rng(0)
    extent = np.array(shape[::-1]) * VOXEL  # x, y, z in Å
    names = np.repeat(PARTICLES.names, per_type)
    return [
        Sample(
            in_memory(f"TS_{index}", rng.normal(size=shape).astype(np.float32)),
            pd.DataFrame(rng.uniform(0, extent, (len(names), 3)), columns=XYZ).assign(particle_type=names),
        )
        for index in range(count)
    ]


def slice_runs(suite_name: str) -> list[Sample]:
    """Training runs for the slice detectors: DEPTH slices of the suite's data size."""
    return noise_runs((DEPTH, *PRESETS[load_suite(suite_name).data.synthetic].shape[1:]))


def paths(step: Callable[..., torch.Tensor], batch: Callable[[], Sequence[Any]]) -> Steps:
    """The harness's path, a step on a fresh batch, and the bare one, a step on a batch drawn once."""
    fixed = batch()
    return {"harness": lambda: step(*batch()), "bare": lambda: step(*fixed)}


@contextmanager
def patch_steps(model: PatchNetwork, suite_name: str, folder: Path) -> Iterator[Steps]:
    """A patch network's step on the patches of its sampler, built as `fit` builds it."""
    c = model.config
    runs = noise_runs((max(184, c["patch_size"]), 256, 256))
    sampler = PatchSampler.from_samples(
        runs,
        model.target_for,
        PARTICLES,
        size=c["patch_size"],
        particle_share=c["particle_share"],
        jitter=c["jitter"],
        seed=model.seed,
        device=model.device,
    )
    optimisation = Optimisation(model.network, torch.optim.Adam(model.network.parameters(), lr=c["lr"]), c, BUDGET)
    model.network.train()
    step = partial(model.training_step, optimisation=optimisation, loss_function=model.loss_function())
    yield paths(step, lambda: sampler.batch(c["batch_size"]))


class NoEpochs(Tracker):
    """A tracker that grants no epoch: `fit` sets its model up, trains nothing and returns."""

    def epochs(self, samples: int | None = None, unit: str = "samples") -> Iterator[int]:
        """None."""
        return iter(())


def set_up(model: Architecture, runs: Sequence[Sample]) -> None:
    """The model as `fit` sets it up on the runs, granted no epoch (faster-rcnn: statistics, slice size, anchors)."""
    model.fit(runs, [], BUDGET, NoEpochs(BUDGET))


def detector_ready(model: FasterRCNNSlices, suite_name: str, folder: Path) -> None:
    """faster-rcnn set up for the suite's slices, untrained."""
    set_up(model, slice_runs(suite_name))


@contextmanager
def detector_steps(model: FasterRCNNSlices, suite_name: str, folder: Path) -> Iterator[Steps]:
    """faster-rcnn's step on the slices of its sampler, the detector and sampler as `fit` builds them."""
    runs = slice_runs(suite_name)
    set_up(model, runs)
    c = model.config
    sampler = SliceSampler(runs, PARTICLES, model.spec, c, model.seed)
    optimisation = Optimisation(model.network, model._optimiser(), c, BUDGET)
    model.network.train()
    yield paths(
        partial(model.training_step, optimisation=optimisation), lambda: sampler.batch(c["batch_size"], model.device)
    )


def yolo_ready(model: YOLOv8Slices, suite_name: str, folder: Path) -> None:
    """yolov8 after one epoch of `fit` on the suite's slices: ultralytics' checkpoint, which `predict` loads."""
    model.workdir = folder
    budget = replace(BUDGET, epochs=1)
    model.fit(slice_runs(suite_name), [], budget, Tracker(budget))


@contextmanager
def yolo_steps(model: YOLOv8Slices, suite_name: str, folder: Path) -> Iterator[Steps]:
    """yolov8's step in ultralytics' trainer, set up as `fit` sets it up (with ultralytics running as in `fit`)."""
    _import_ultralytics(folder)  # before anything imports ultralytics: offline, its settings in the folder
    from ultralytics.utils.callbacks import get_default_callbacks

    dataset = write_dataset(slice_runs(suite_name), PARTICLES, model.spec, model.config, folder / "dataset")
    model.imgsz = 32 * math.ceil(max(dataset.shape) / 32)  # as `fit` sets it
    events = get_default_callbacks()
    events["on_pretrain_routine_start"].append(_thread_keeper())
    with _ultralytics_running():
        trainer = _trainer()(overrides=model.train_arguments(dataset.data, folder / "runs", BUDGET), _callbacks=events)
        trainer._setup_train()  # the model, data loader, optimiser, scaler and EMA of ultralytics' loop
        trainer._model_train()
        loader = endless(trainer.train_loader)
        yield paths(partial(yolo_step, trainer), lambda: (next(loader),))


def endless(loader: Iterable) -> Iterator:
    """A data loader's batches, pass after pass."""
    while True:
        yield from loader


def yolo_step(trainer: Any, batch: dict) -> torch.Tensor:
    """One step of ultralytics' training loop (8.4's body, less its bookkeeping); the batch is left as it was."""
    from ultralytics.utils.torch_utils import autocast as ultralytics_autocast

    with ultralytics_autocast(torch.bfloat16 if trainer.args.amp == "bf16" else trainer.amp, trainer.device.type):
        loss, _ = trainer.model(trainer.preprocess_batch(dict(batch)))
        loss = loss.sum()
    trainer.scaler.scale(loss).backward()
    trainer.optimizer_step()
    return loss.detach()


def as_built(model: PatchNetwork, suite_name: str, folder: Path) -> None:
    """Nothing: a patch network predicts as it is built."""


def batches(counts: Sequence[int], batch: int) -> list[slice]:
    """The batches of `predict`: through each run of `counts` items, `batch` at a time (full ones, then the rest)."""
    return [slice(start, min(start + batch, count)) for count in counts for start in range(0, count, batch)]


def bare_run(forward: Callable[[slice], object], parts: Sequence[slice]) -> Callable[[], None]:
    """Inference of every batch by `forward`, as `predict` runs its network: without autograd."""

    def run() -> None:
        with torch.inference_mode():
            for part in parts:
                forward(part)

    return run


def tile_windows(window: SlidingWindow, shape: tuple[int, int, int]) -> list[int]:
    """Per tile that `predict` infers, the sliding windows MONAI runs on it."""
    return [
        math.prod(len(window.window_starts(stop - start, axis)) for axis, (start, stop, _, _) in enumerate(spans))
        for spans in window.tiles(shape)
    ]


def network_passes(model: PatchNetwork) -> int:
    """Passes of the network per window: one, and one per flip of heatmap-unet's test-time augmentation."""
    return 1 + len(model.config.get("tta_flips", ()))


def patch_bare(model: PatchNetwork, region: Tomogram) -> Callable[[], None]:
    """The activated network alone on as many windows as `predict` infers, in the same batches."""
    window = model._window()
    images = torch.randn(window.sw_batch_size, 1, *window.roi_size, device=model.device)

    def forward(part: slice) -> None:
        for _ in range(network_passes(model)):
            model._outputs(images[: part.stop - part.start])

    return bare_run(forward, batches(tile_windows(window, region.shape), window.sw_batch_size))


def patch_counts(model: PatchNetwork, region: Tomogram) -> dict[str, int]:
    """The windows of the region and the network's passes per window."""
    return {"windows": sum(tile_windows(model._window(), region.shape)), "passes": network_passes(model)}


def detector_bare(model: FasterRCNNSlices, region: Tomogram) -> Callable[[], None]:
    """The detector alone (transform, backbone, proposals, box head) on the region's slices, in `predict`'s batches."""
    network = model._network_for(region.shape[1:])
    volume = normalised_volume(region, model.spec)
    slices = torch.as_tensor(slice_images(volume, np.arange(len(volume)), model.spec), device=model.device)
    return bare_run(lambda part: network(list(slices[part])), batches([len(slices)], model.config["predict_batch"]))


def yolo_bare(model: YOLOv8Slices, region: Tomogram) -> Callable[[], None]:
    """The network ultralytics' predictor runs alone on `predict`'s batches of letterboxed slices (the network, not
    the input, decides the time: one batch of the region's first slices serves for all)."""
    model.predict(region)  # the predictor, with its fused copy of the network, comes with the first call
    predictor, batch = model.detector.predictor, model.config["predict_batch"]
    volume = normalised_volume(region, model.spec)
    images = predictor.preprocess(list(eight_bit(slice_images(volume, np.arange(min(batch, len(volume))), model.spec))))
    return bare_run(lambda part: predictor.model(images[: part.stop - part.start]), batches([len(volume)], batch))


def slice_counts(model: FasterRCNNSlices | YOLOv8Slices, region: Tomogram) -> dict[str, int]:
    """The slices of the region."""
    return {"slices": region.shape[0]}


@dataclass(frozen=True)
class Drive:
    """How the tests run one kind of architecture, each function given the model (as built) and the region or the
    suite's name and a folder of the test's own."""

    training: Callable[[Any, str, Path], AbstractContextManager[Steps]]  # its harness and bare steps, set up
    ready: Callable[[Any, str, Path], None]  # brings it to where `predict` runs
    bare: Callable[[Any, Tomogram], Callable[[], None]]  # its network alone on what `predict` runs it on
    counts: Callable[[Any, Tomogram], dict[str, int]]  # what `predict` runs the network on


PATCH_NETWORK = Drive(patch_steps, as_built, patch_bare, patch_counts)
DRIVES = {
    "deepfindet": PATCH_NETWORK,
    "unet3d": PATCH_NETWORK,
    "heatmap-unet": PATCH_NETWORK,
    "faster-rcnn": Drive(detector_steps, detector_ready, detector_bare, slice_counts),
    "yolov8": Drive(yolo_steps, yolo_ready, yolo_bare, slice_counts),
}


def every_setting(test: Callable) -> Callable:
    """Parametrise a test by suite, architecture and path."""
    for argument, values in (("path", PATHS), ("name", list(DRIVES)), ("suite_name", list(SETTINGS))):
        test = pytest.mark.parametrize(argument, values)(test)
    return test


def record(benchmark: Any, rate: str, amount: float, **counts: int) -> None:
    """The counts and, when timed (--benchmark-disable runs once, untimed), `amount` per second of the median round
    as `rate`, in extra_info."""
    benchmark.extra_info.update(counts)
    if benchmark.stats is not None:
        benchmark.extra_info[rate] = amount / benchmark.stats.stats.median


@every_setting
def test_training_step(benchmark, tmp_path, name, suite_name, path):
    """Seconds per optimisation step; `steps_per_second` in extra_info."""
    model = architecture(name, suite_name)
    with DRIVES[name].training(model, suite_name, tmp_path) as steps:
        loss = benchmark.pedantic(steps[path], rounds=SETTINGS[suite_name], warmup_rounds=1)
    record(benchmark, "steps_per_second", 1.0)
    assert torch.isfinite(loss)


@pytest.fixture(scope="module")
def region() -> Tomogram:
    """The first REGION voxels of a demo test tomogram, in memory.

    The demo dataset is read where `bench run` keeps it (generated there on first use), not from the fresh cache the
    root conftest gives each session, where it would be generated anew every time.
    """
    suite = load_suite("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("CRYOET_BENCH_CACHE", raising=False)
        project = Project(resolve_data(suite, None, lambda message: None)["config"])
    (sample,) = load_samples(project, suite.split.test[:1], suite.data)
    volume = sample.tomogram.read(0, tuple(slice(0, n) for n in REGION))
    return in_memory(sample.run, volume, sample.tomogram.voxel_size)


@every_setting
def test_inference(benchmark, region, tmp_path, name, suite_name, path):
    """Seconds to infer the region; `voxels_per_second` (of the region) and the windows or slices in extra_info."""
    model, drive = architecture(name, suite_name), DRIVES[name]
    drive.ready(model, suite_name, tmp_path)
    run = partial(model.predict, region) if path == "harness" else drive.bare(model, region)
    benchmark.pedantic(run, rounds=SETTINGS[suite_name], warmup_rounds=1)
    record(benchmark, "voxels_per_second", math.prod(region.shape), **drive.counts(model, region))
