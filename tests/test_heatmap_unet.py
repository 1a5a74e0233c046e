"""heatmap-unet: point and Gaussian targets, the winners' weighted cross-entropy at an output stride, tie-broken
max-pool peaks, flip test-time augmentation, its backbones, and its training on the device path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from architectures.heatmap_unet import HeatmapUNet, StridedLoss, WeightedCrossEntropy
from architectures.parts.peaks import break_ties, local_maxima, pooled_maxima
from architectures.parts.training import Optimisation
from architectures.parts.volumes import paint_gaussians, paint_points
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


@pytest.mark.parametrize("size", [1, 3, 5, 9, 27])
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
    flipped = HeatmapUNet({**whole, "tta_flips": ["z", "x", "yx"]}, PARTICLES, "cpu", 0)
    with torch.inference_mode():
        flips = [(), (0,), (2,), (1, 2)]  # none, z, x, y and x: axes of the (z, y, x) volume
        maps = [plain.heatmaps(Tomogram("TS", "denoised", VOXEL, (np.flip(volume, d).copy(),))) for d in flips]
        expected = sum(m.flip([d + 1 for d in dims]) for m, dims in zip(maps, flips, strict=True)) / 4
        torch.testing.assert_close(flipped.heatmaps(tomogram), expected, atol=1e-6, rtol=1e-5)


def test_a_pick_paints_one_voxel_the_nearest_on_its_class_channel():
    xyz = np.array([[12.4, 10.6, 8.2]]) * VOXEL
    maps = paint_points((16, 20, 24), pd.DataFrame([("thyroglobulin", *xyz[0])], columns=["particle_type", *XYZ]),
                        PARTICLES, VOXEL)  # fmt: skip
    channel = PARTICLES["thyroglobulin"].label - 1
    assert maps.sum() == 1 and maps[channel, 8, 11, 12] == 1


def test_the_weighted_cross_entropy_is_the_winners_per_channel_mean_weighted_sum():
    logits = torch.randn(2, 3, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    maps = torch.zeros(2, 2, 4, 4, 4)
    maps[0, 1, 1, 2, 3] = 1.0
    log_p = torch.log_softmax(logits, dim=1)
    expected = 10 * -(log_p[0, 1, 1, 2, 3]) / 128  # the one particle voxel, over 2 x 64 voxels, weight 10
    background = torch.ones(2, 4, 4, 4)
    background[0, 1, 2, 3] = 0
    expected += -(log_p[:, 2] * background).sum() / 128
    torch.testing.assert_close(WeightedCrossEntropy(2, 10.0)(logits, maps), expected)


def test_at_output_stride_2_a_point_pools_to_one_coarse_voxel_and_peaks_sit_at_its_centre():
    maps = torch.zeros(1, 1, 8, 8, 8)
    maps[0, 0, 5, 2, 3] = 1.0
    seen = {}
    StridedLoss(lambda logits, pooled: seen.update(t=pooled) or torch.zeros(()))(torch.zeros(1, 1, 4, 4, 4), maps)
    assert seen["t"].sum() == 1 and seen["t"][0, 0, 2, 1, 1] == 1
    model = HeatmapUNet({**TINY, "loss": "bce"}, PARTICLES, "cpu", 0)  # sigmoid maps: one channel per class
    logits = torch.full((1, 6, 4, 4, 4), -8.0)
    logits[0, 0, 2, 1, 1] = 8.0  # the coarse voxel holding input voxels 4-5, 2-3, 2-3
    upsampled = model.activation(logits)[0, 0]
    assert upsampled.shape == (8, 8, 8)
    centre = upsampled[..., None] * torch.stack(torch.meshgrid(*[torch.arange(8.0)] * 3, indexing="ij"), -1)
    torch.testing.assert_close(centre.sum((0, 1, 2)) / upsampled.sum(), torch.tensor([4.5, 2.5, 2.5]), atol=0.05,
                               rtol=0)  # fmt: skip


def test_peaks_that_tie_within_the_suppression_cube_give_one_pick():
    volume = torch.zeros(12, 12, 12)
    volume[5, 5, 5] = volume[5, 5, 7] = 0.8  # a tie two voxels apart
    volume[5, 5, 11] = 0.5  # alone
    zyx, values = pooled_maxima(volume, 5, 0.1)
    assert len(zyx) == 3  # both tied voxels are maxima of their cubes
    zyx, values = break_ties(zyx, values, 2)
    assert zyx.tolist() == [[5, 5, 5], [5, 5, 11]] and values.tolist() == pytest.approx([0.8, 0.5])


@pytest.mark.parametrize(
    "backbone",
    [{"backbone": "dynunet", "filters": [4, 8, 8]},
     {"backbone": "flexible-unet", "encoder": "resnet10", "decoder_channels": [8, 8, 8, 8, 4], "patch_size": 32,
      "roi_size": 32, "tile_size": 32}],
)  # fmt: skip
def test_the_other_monai_backbones_give_maps_of_the_window_size(backbone):
    model = HeatmapUNet({**TINY, **backbone}, PARTICLES, "cpu", 0)
    size = model.config["patch_size"]
    with torch.inference_mode():
        maps = model._outputs(torch.randn(1, 1, size, size, size))
    assert maps.shape == (1, 6, size, size, size) and float(maps.min()) >= 0 and float(maps.max()) <= 1


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
    model = HeatmapUNet({**TINY, "output_stride": 1}, PARTICLES, "cpu", 0)  # autocast pools in fp32: the bare net
    images = torch.randn(1, 1, 16, 16, 16)
    with torch.inference_mode():
        model.precision = "bf16"
        with model.autocast():
            assert model.network(images).dtype == torch.bfloat16
        assert model._outputs(images).dtype == torch.float32  # blended in float32 whatever the precision
        model.precision = "fp32"
        with model.autocast():
            assert model.network(images).dtype == torch.float32


def test_unknown_flips_choices_and_sizes_the_network_cannot_halve_are_refused_in_one_line():
    for flips in (["w"], "yx", ["xx"]):  # an unknown axis; a string, which would be read letter by letter; twice
        with pytest.raises(BenchError, match=r"tta_flips .* must be a list of strings of distinct axes z, y, x"):
            HeatmapUNet.check_config({"tta_flips": flips})  # what the runner's preflight calls
    with pytest.raises(BenchError, match="loss 'dice' must be one of weighted-ce, focal, bce"):
        HeatmapUNet.check_config({"loss": "dice"})
    with pytest.raises(BenchError, match="multiples of 4"):
        HeatmapUNet({**TINY, "patch_size": 18}, PARTICLES, "cpu", 0)
