"""The patch networks' augmentations: which keep the missing wedge (checked in Fourier space with the simulator's
own wedge), targets moving with their images, seeded draws, and the refusal of unknown names."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import torch

from architectures.parts.augmentation import WEDGE_KEEPING, Augmentation
from architectures.unet3d import UNet3D
from benchmark.errors import BenchError
from benchmark.synth.physics import wedge

SHAPE = (24, 24, 24)  # cubic: a 90-degree turn keeps the shape, so only the spectrum can tell


def wedge_filtered_noise(tilt_max_deg: float = 50.0) -> tuple[torch.Tensor, np.ndarray]:
    """White noise limited to the simulator's wedge (tilt axis y), and the wedge's rfft mask."""
    sampled = wedge(SHAPE, tilt_max_deg)
    noise = np.random.default_rng(0).normal(size=SHAPE)
    volume = scipy.fft.irfftn(scipy.fft.rfftn(noise) * sampled, s=SHAPE)
    return torch.as_tensor(volume, dtype=torch.float32), np.broadcast_to(sampled, (*SHAPE[:2], SHAPE[2] // 2 + 1))


def outside_share(volume: torch.Tensor, sampled: np.ndarray) -> float:
    """The share of a volume's Fourier power outside the wedge's sampled region."""
    power = np.abs(scipy.fft.rfftn(volume.numpy().astype(np.float64))) ** 2
    return float(power[~sampled].sum() / power.sum())


def test_the_default_flips_keep_the_wedge_and_a_90_degree_turn_about_z_does_not():
    volume, sampled = wedge_filtered_noise()
    assert outside_share(volume, sampled) < 1e-9
    flips = Augmentation(WEDGE_KEEPING, seed=0, maps=False)
    target = torch.zeros(SHAPE, dtype=torch.uint8)
    shares = [outside_share(flips(volume, target)[0], sampled) for _ in range(16)]
    assert max(shares) < 1e-9  # float32 round-off only
    turns = Augmentation(["turn_z"], seed=0, maps=False)
    shares = [outside_share(turns(volume, target)[0], sampled) for _ in range(16)]
    assert max(shares) > 0.2  # the turned wedge lies in the k_z-k_y plane: much of its power falls outside


def test_flips_reach_all_eight_mirror_images_and_move_the_target_with_the_image():
    target = torch.zeros((6, 7, 8), dtype=torch.uint8)
    target[1, 2, 3] = 2  # no flip maps it onto itself
    augmentation = Augmentation(WEDGE_KEEPING, seed=1, maps=False)
    seen = set()
    for _ in range(100):
        image, moved = augmentation(target.float(), target)
        assert moved.dtype == torch.uint8 and moved.shape == target.shape
        torch.testing.assert_close(image, moved.float())
        seen.add(tuple(torch.nonzero(moved)[0].tolist()))
    assert len(seen) == 8  # z, y, x each flipped or not: the 180-degree turns among them


def test_the_same_seed_draws_the_same_augmentations():
    image = torch.randn(SHAPE)
    maps = torch.rand((2, *SHAPE))
    first, second = (Augmentation([*WEDGE_KEEPING, "intensity"], seed=5, maps=True) for _ in range(2))
    for _ in range(5):
        a, b = first(image, maps), second(image, maps)
        torch.testing.assert_close(a[0], b[0])
        torch.testing.assert_close(a[1], b[1])


def test_a_free_rotation_turns_about_x_and_keeps_class_indices_whole():
    target = torch.zeros(SHAPE, dtype=torch.uint8)
    target[6:18, 10:14, :] = 3  # a bar along x: a turn about x gives every x slice the same picture
    rotation = Augmentation(["rotate_x"], seed=0, maps=False)
    turned = 0
    for _ in range(6):
        _, moved = rotation(torch.zeros(SHAPE), target)
        assert set(moved.unique().tolist()) <= {0, 3}
        assert (moved == moved[..., :1]).all()
        turned += not torch.equal(moved, target)
    assert turned  # prob 0.5 over 6 draws: some did turn


def test_an_unknown_augmentation_is_refused_in_one_line():
    with pytest.raises(BenchError, match=r"augment \['spin'\] must be a list of any of flip_z"):
        UNet3D.check_config({"augment": ["spin"]})
