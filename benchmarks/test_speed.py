"""pytest-benchmark regressions: `make bench` saves a run and compares it with the previous one (25% on median)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from architectures.deepfindet import DeepFindET, tversky_loss
from architectures.faster_rcnn import FasterRCNNSlices
from architectures.parts.training import Optimisation
from benchmark.data import Project
from benchmark.interface import Tracker
from benchmark.job import build, load_samples
from benchmark.particles import ParticleTable
from benchmark.suite import load_suite
from benchmark.synth import generate
from metrics.fbeta import score_picks
from metrics.thresholds import tune_thresholds

PARTICLES = ParticleTable.czii()


@pytest.fixture(scope="module")
def picks() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A solution of 7 runs x 6 types x 50 references and 10x as many scored candidates."""
    rng = np.random.default_rng(0)
    rows = [(f"TS_{r}", p, *rng.uniform(0, 6000, 3)) for r in range(7) for p in PARTICLES.names for _ in range(50)]
    solution = pd.DataFrame(rows, columns=["experiment", "particle_type", "x", "y", "z"])
    candidates = pd.concat([solution] * 10, ignore_index=True)
    candidates[["x", "y", "z"]] += rng.normal(0, 40, size=(len(candidates), 3))
    return solution, candidates.assign(score=rng.random(len(candidates)))


def test_score_picks(benchmark, picks):
    solution, candidates = picks
    result = benchmark(score_picks, solution, candidates, PARTICLES)
    assert 0 < result.weighted <= 1


def test_tune_thresholds(benchmark, picks):
    solution, candidates = picks
    thresholds = benchmark(tune_thresholds, solution, candidates, PARTICLES)
    assert len(thresholds) == len(PARTICLES)


def test_generate_smoke_dataset(benchmark, tmp_path):
    outs = iter(range(100))
    benchmark.pedantic(lambda: generate(tmp_path / str(next(outs)), "smoke", progress=False), rounds=3)


@pytest.mark.parametrize("name", [spec.name for spec in load_suite("smoke").architectures])
def test_predict_smoke_tomogram(benchmark, smoke_config, name):
    suite = load_suite("smoke")
    spec = next(s for s in suite.architectures if s.name == name)
    project = Project(smoke_config)
    train, val, test = (
        load_samples(project, runs, suite.data) for runs in (suite.split.train, suite.split.val, suite.split.test)
    )
    model = build(spec, project, "cpu", 0)
    model.fit(train, val, suite.budget_for(spec), Tracker(suite.budget_for(spec)))
    picks = benchmark.pedantic(model.predict, args=(test[0].tomogram,), rounds=3, warmup_rounds=1)
    assert not picks.empty


@pytest.mark.parametrize(("suite_name", "rounds"), [("demo", 5), ("full", 2)])
def test_deepfindet_training_step(benchmark, suite_name, rounds):
    """CPU seconds per optimisation step with the suite's network, patch and batch (72^3 x 5, 48/64/80 in full)."""
    spec = next(s for s in load_suite(suite_name).architectures if s.name == "deepfindet")
    model = DeepFindET(spec.config, PARTICLES, "cpu", seed=0)
    c = model.config
    rng = np.random.default_rng(0)
    shape = (c["batch_size"], 1, *(c["patch_size"],) * 3)
    images = rng.normal(size=shape).astype(np.float32)
    targets = rng.integers(0, 7, size=shape)
    model.network.train()
    optimisation = Optimisation(model.network, torch.optim.Adam(model.network.parameters(), lr=c["lr"]), c)
    loss = benchmark.pedantic(
        model.training_step, args=(images, targets, optimisation, tversky_loss(c)), rounds=rounds, warmup_rounds=1
    )
    assert np.isfinite(loss)


def faster_rcnn_for(backbone: str, batch: int) -> tuple[FasterRCNNSlices, list, list]:
    """The demo's Faster R-CNN with `backbone`, built for 315x315 slices, and a batch of slices with boxes."""
    spec = next(s for s in load_suite("demo").architectures if s.name == "faster-rcnn")
    model = FasterRCNNSlices({**spec.config, "backbone": backbone}, PARTICLES, "cpu", seed=0)
    model.shape, model.statistics, model.pixel = (315, 315), (0.5, 0.2), 10.012 * 2 ** model.config["level"]
    model.network = model._build()
    rng = np.random.default_rng(0)
    images = [torch.from_numpy(rng.random((3, 315, 315), dtype=np.float32)) for _ in range(batch)]
    corners = rng.uniform(0, 280, size=(batch, 8, 2))
    targets = [
        {"boxes": torch.tensor(np.hstack([c, c + 20]), dtype=torch.float32), "labels": torch.randint(1, 7, (8,))}
        for c in corners
    ]
    return model, images, targets


@pytest.mark.parametrize("backbone", ["mobilenet_v3_large_fpn", "resnet50_fpn_v2"])
def test_faster_rcnn_training_step(benchmark, backbone):
    """CPU seconds per training step of 4 slices at the demo's size (315x315); slices per second beside it."""
    model, images, targets = faster_rcnn_for(backbone, batch=4)
    model.network.train()
    optimiser = model._optimiser()

    def step() -> None:
        loss = sum(model.network(images, targets).values())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    benchmark.pedantic(step, rounds=3, warmup_rounds=1)
    benchmark.extra_info["slices_per_second"] = 4 / benchmark.stats.stats.median


@pytest.mark.parametrize("backbone", ["mobilenet_v3_large_fpn", "resnet50_fpn_v2"])
def test_faster_rcnn_inference(benchmark, backbone):
    """CPU seconds to detect on 8 slices at the demo's size (315x315); milliseconds per slice beside it."""
    model, images, _ = faster_rcnn_for(backbone, batch=8)
    model.network.eval()
    with torch.inference_mode():
        benchmark.pedantic(model.network, args=(images,), rounds=3, warmup_rounds=1)
    benchmark.extra_info["ms_per_slice"] = 1000 * benchmark.stats.stats.median / 8
