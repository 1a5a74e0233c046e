"""heatmap-unet: Gaussian targets, max-pool peaks, flip test-time augmentation, and its training on the device path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from architectures.heatmap_unet import HeatmapUNet
from architectures.parts.peaks import local_maxima, pooled_maxima
from architectures.parts.training import Optimisation
from architectures.parts.volumes import paint_gaussians
from benchmark.coords import XYZ
from benchmark.data import Tomogram
from benchmark.errors import BenchError
from benchmark.particles import ParticleTable

PARTICLES = ParticleTable.czii()
VOXEL = 10.012
TINY = {
    "init_filters": 4,
    "blocks_down": [1, 1, 1],
    "blocks_up": [1, 1],
    "patch_size": 16,
    "roi_size": 16,
    "tile_size": [16, 32, 32],
    "tta_flips": [],
}


def test_a_pick_paints_a_gaussian_of_its_radius_fraction_on_its_class_channel_only():
    zyx = np.array([8, 10, 12])
    xyz = zyx[::-1] * VOXEL  # a voxel centre: the Gaussian peaks at exactly 1 there
    maps = paint_gaussians((16, 20, 24), pd.DataFrame([("ribosome", *xyz)], columns=["particle_type", *XYZ]),
                           PARTICLES, VOXEL, 0.25)  # fmt: skip
    ribosome = PARTICLES["ribosome"].label - 1
    assert maps.shape == (6, 16, 20, 24) and maps.dtype == np.float16
    assert maps[ribosome][tuple(zyx)] == 1.0
    sigma = 0.25 * 150.0 / VOXEL
    assert maps[ribosome][8, 10, 14] == pytest.approx(np.exp(-4 / (2 * sigma**2)), abs=1e-3)
    assert np.unravel_index(np.argmax(maps[ribosome]), maps.shape[1:]) == tuple(zyx)
    assert not np.delete(maps, ribosome, axis=0).any()


@pytest.mark.parametrize("size", [3, 5, 9])
def test_max_pool_peaks_on_the_device_equal_scipy_local_maxima(size):
    volume = np.random.default_rng(size).random((20, 25, 30)).astype(np.float32)
    expected = local_maxima(volume, size, 0.3, max_peaks=40)
    found = pooled_maxima(torch.from_numpy(volume), size, 0.3, max_peaks=40)
    np.testing.assert_array_equal(found[0], expected[0])
    np.testing.assert_array_equal(found[1], expected[1])


def test_flip_tta_averages_the_passes_over_the_flipped_volume():
    volume = np.random.default_rng(0).normal(size=(16, 32, 32)).astype(np.float32)
    tomogram = Tomogram("TS", "denoised", VOXEL, (volume,))
    whole = {**TINY, "roi_size": [16, 32, 32], "tile_size": [16, 32, 32]}  # one window: flips move no window edge
    plain = HeatmapUNet(whole, PARTICLES, "cpu", 0)
    flipped = HeatmapUNet({**whole, "tta_flips": ["x", "y", "yx"]}, PARTICLES, "cpu", 0)
    with torch.inference_mode():
        flips = [(), (2,), (1,), (1, 2)]  # none, x, y, both: axes of the (z, y, x) volume
        maps = [plain.heatmaps(Tomogram("TS", "denoised", VOXEL, (np.flip(volume, d).copy(),))) for d in flips]
        expected = sum(m.flip([d + 1 for d in dims]) for m, dims in zip(maps, flips, strict=True)) / 4
        torch.testing.assert_close(flipped.heatmaps(tomogram), expected, atol=1e-6, rtol=1e-5)


def test_predict_puts_one_pick_on_each_heatmap_peak_scored_by_its_value(monkeypatch):
    model = HeatmapUNet(TINY, PARTICLES, "cpu", 0)
    tomogram = Tomogram("TS", "denoised", VOXEL, (np.zeros((16, 32, 32), np.float32),))
    truth = pd.DataFrame([("ribosome", 100.0, 150.0, 80.0), ("apo-ferritin", 250.0, 200.0, 60.0)],
                         columns=["particle_type", *XYZ])  # fmt: skip
    maps = torch.from_numpy(paint_gaussians(tomogram.shape, truth, PARTICLES, VOXEL, 0.25).astype(np.float32))
    monkeypatch.setattr(model, "heatmaps", lambda _: 0.9 * maps)
    picks = model.predict(tomogram)
    assert sorted(picks["particle_type"]) == ["apo-ferritin", "ribosome"]
    assert picks["score"].max() <= 0.9 and picks["score"].min() > 0.8  # near the peak: voxel-centred, not exact
    for _, row in truth.iterrows():
        found = picks[picks["particle_type"] == row["particle_type"]][XYZ].to_numpy(float)
        assert np.linalg.norm(found - row[XYZ].to_numpy(float)) < VOXEL


def test_a_few_training_steps_lower_the_loss_on_a_fixed_batch():
    model = HeatmapUNet({**TINY, "lr": 1e-2}, PARTICLES, "cpu", 0)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2, 1, 16, 16, 16, generator=generator)
    targets = torch.sigmoid(4 * images).expand(2, 6, 16, 16, 16)  # bright voxels are "particles" of every class
    optimisation = Optimisation(model.network, torch.optim.Adam(model.network.parameters(), lr=model.config["lr"]))
    model.network.train()
    losses = [float(model.training_step(images, targets, optimisation, model.loss_function())) for _ in range(8)]
    assert losses[-1] < losses[0] - 0.1, losses


def test_bf16_runs_the_network_under_autocast_and_fp32_does_not():
    model = HeatmapUNet(TINY, PARTICLES, "cpu", 0)
    images = torch.randn(1, 1, 16, 16, 16)
    with torch.inference_mode():
        model.precision = "bf16"
        with model.autocast():
            assert model.network(images).dtype == torch.bfloat16
        assert model._outputs(images).dtype == torch.float32  # blended in float32 whatever the precision
        model.precision = "fp32"
        with model.autocast():
            assert model.network(images).dtype == torch.float32


def test_unknown_flips_and_sizes_the_network_cannot_halve_are_refused_in_one_line():
    for flips in (["z"], "yx"):  # a z flip; a string, which would be read letter by letter
        with pytest.raises(BenchError, match=r"tta_flips .* must be a list of any of x, y, yx"):
            HeatmapUNet.check_config({"tta_flips": flips})  # what the runner's preflight calls
    with pytest.raises(BenchError, match="multiples of 4"):
        HeatmapUNet({**TINY, "patch_size": 18}, PARTICLES, "cpu", 0)
