"""Throughput of the 3D segmenters against their bare network, at the demo and full settings (CPU here).

Training: one optimisation step with the harness's data path (patches cut from volumes held in memory, augmented,
copied to the device) against the same step on a batch already in memory. Inference: `predict` on a tomogram
region (reads, standardising, tiled sliding windows with blending, argmax, components) against the network alone
on the same number of windows. The gaps are the harness's share of the time; `extra_info` holds the rates. The
networks are untrained: the component step's cost depends on what a network finds, so a trained model's share of
picking may differ.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from architectures.parts.segmenter import PatchSegmenter, triple
from architectures.parts.volumes import PatchSampler
from benchmark.data import Project, Tomogram
from benchmark.job import load_samples
from benchmark.particles import ParticleTable
from benchmark.registry import ARCHITECTURES
from benchmark.runner import resolve_data
from benchmark.suite import load_suite

PARTICLES = ParticleTable.czii()
SEGMENTERS = ["deepfindet", "unet3d"]
SETTINGS = {"demo": 3, "full": 1}  # suite -> timed rounds (the full networks take seconds a step on a CPU)
REGION = (92, 192, 192)  # the inferred region: a demo tomogram's depth, one 192^2 window across


def segmenter(name: str, suite_name: str) -> PatchSegmenter:
    """The suite's configuration of a segmenter, untrained, on the CPU."""
    spec = next(s for s in load_suite(suite_name).architectures if s.name == name)
    return ARCHITECTURES.get(name)(spec.config, PARTICLES, "cpu", 0)


def sampler_for(model: PatchSegmenter) -> PatchSampler:
    """Patches of the model's size from two in-memory volumes deep enough for any setting, half near a 'particle'."""
    rng = np.random.default_rng(0)
    shape = (max(184, model.config["patch_size"]), 256, 256)
    volumes = [rng.normal(size=shape).astype(np.float32) for _ in range(2)]
    targets = [np.zeros(shape, dtype=np.uint8) for _ in range(2)]
    sites = {1: np.column_stack([rng.integers(0, 2, 50), *(rng.integers(0, n, 50) for n in shape)])}
    c = model.config
    return PatchSampler(volumes, targets, sites, c["patch_size"], particle_share=0.5, jitter=c["jitter"], seed=0)


@pytest.mark.parametrize("suite_name", SETTINGS)
@pytest.mark.parametrize("name", SEGMENTERS)
@pytest.mark.parametrize("path", ["harness", "bare"])
def test_training_step(benchmark, name, suite_name, path):
    """Seconds per optimisation step; `steps_per_second` in extra_info."""
    model = segmenter(name, suite_name)
    sampler, batch = sampler_for(model), model.config["batch_size"]
    fixed = sampler.batch(batch)
    optimiser = torch.optim.Adam(model.network.parameters(), lr=model.config["lr"])
    loss_function = model.loss_function()
    model.network.train()

    def step() -> float:
        images, targets = sampler.batch(batch) if path == "harness" else fixed
        return model.training_step(images, targets, optimiser, loss_function)

    loss = benchmark.pedantic(step, rounds=SETTINGS[suite_name], warmup_rounds=1)
    benchmark.extra_info["steps_per_second"] = 1 / benchmark.stats.stats.median
    assert np.isfinite(loss)


@pytest.fixture(scope="module")
def region() -> Tomogram:
    """The first region of REGION voxels of a demo test tomogram, in memory."""
    suite = load_suite("demo")
    project = Project(resolve_data(suite, None, lambda message: None)["config"])
    (sample,) = load_samples(project, suite.split.test[:1], suite.data)
    volume = sample.tomogram.read(0)[tuple(slice(0, n) for n in REGION)]
    return Tomogram(sample.run, sample.tomogram.tomo_type, sample.tomogram.voxel_size, (volume,))


def window_count(model: PatchSegmenter, shape: tuple[int, int, int]) -> int:
    """How many sliding windows cover a volume with the model's settings."""
    window = model._window()
    return int(np.prod([len(window.window_starts(n, axis)) for axis, n in enumerate(shape)]))


@pytest.mark.parametrize("suite_name", SETTINGS)
@pytest.mark.parametrize("name", SEGMENTERS)
@pytest.mark.parametrize("path", ["harness", "bare"])
def test_inference(benchmark, region, name, suite_name, path):
    """Seconds to infer the region; `voxels_per_second` (of the region) and `windows` in extra_info."""
    model = segmenter(name, suite_name)
    roi, batch = triple(model.config["roi_size"]), model.config["sw_batch_size"]
    windows = window_count(model, region.shape)
    images = torch.randn(batch, 1, *roi)

    def bare() -> None:
        with torch.inference_mode():
            for start in range(0, windows, batch):  # MONAI's batches: full ones, then the rest
                model._probabilities(images[: min(batch, windows - start)])

    run = (lambda: model.predict(region)) if path == "harness" else bare
    benchmark.pedantic(run, rounds=SETTINGS[suite_name], warmup_rounds=1)
    benchmark.extra_info.update(voxels_per_second=np.prod(region.shape) / benchmark.stats.stats.median, windows=windows)
