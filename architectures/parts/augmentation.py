"""The patch networks' training augmentations: MONAI dictionary transforms applied to each patch on its device.

Which ones keep the missing wedge. A tilt series about the y axis samples the Fourier region
|k_z| <= tan(tilt_max) |k_x| (`benchmark.synth.physics.wedge`), for every k_y; the region is unchanged when any of
k_z, k_y, k_x changes sign. A flip of z, y or x mirrors the spectrum along that axis (the shift a flip of a grid
brings only moves phases), so the flips and their products, which include the 180-degree turns about each axis, keep
the wedge: a flipped patch is one the microscope could have recorded. A 90-degree turn about z swaps k_y and k_x and
moves the wedge into the k_z-k_y plane (a tilt axis along x), and a free rotation tilts it: both show the network
wedges it never meets at inference, so they are options, named for what they change. The 1st place of the CZII
competition flipped all three axes, turned 90 degrees about z and rotated by up to 45 degrees about x (MONAI's
`RandRotate90d` on axes (0, 1) and `RandRotated` with `range_x` of its (x, y, z) volumes).

Targets move with their images: class indices (nearest neighbour under a rotation) or per-class maps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    RandFlipd,
    RandRotate90d,
    RandRotated,
    RandScaleIntensityd,
    RandShiftIntensityd,
)

from benchmark.errors import BenchError

KEYS = ("image", "target")
#: what each augmentation does to the missing wedge about y, for the docs and the refusal of unknown names
AUGMENTATIONS: dict[str, str] = {
    "flip_z": "keeps the wedge",
    "flip_y": "keeps the wedge",
    "flip_x": "keeps the wedge",
    "intensity": "keeps the wedge (scales and shifts the standardised values by up to 10%)",
    "turn_z": "changes the wedge (90-degree turns about z move it to the k_z-k_y plane)",
    "rotate_x": "changes the wedge (free rotation in the z-y plane by up to 45 degrees, as the 1st place)",
}
#: the default set: every symmetry that keeps a wedge about y
WEDGE_KEEPING = ["flip_z", "flip_y", "flip_x"]


def check_augmentations(names: object, where: str) -> None:
    """Refuse a setting that is not a list of AUGMENTATIONS' names, before any job runs."""
    if not isinstance(names, list) or any(name not in AUGMENTATIONS for name in names):
        raise BenchError(f"{where}: augment {names!r} must be a list of any of {', '.join(AUGMENTATIONS)}")


def _transform(name: str, maps: bool) -> Callable:
    """The MONAI dictionary transform of one augmentation (on image and target; intensity on the image only)."""
    target_mode = "bilinear" if maps else "nearest"
    return {
        "flip_z": lambda: RandFlipd(KEYS, prob=0.5, spatial_axis=0),
        "flip_y": lambda: RandFlipd(KEYS, prob=0.5, spatial_axis=1),
        "flip_x": lambda: RandFlipd(KEYS, prob=0.5, spatial_axis=2),
        "intensity": lambda: Compose(
            [RandScaleIntensityd("image", factors=0.1, prob=0.5), RandShiftIntensityd("image", offsets=0.1, prob=0.5)]
        ),
        "turn_z": lambda: RandRotate90d(KEYS, prob=0.75, max_k=3, spatial_axes=(1, 2)),
        "rotate_x": lambda: RandRotated(  # MONAI's range_z turns about the third spatial axis: x here
            KEYS, range_z=math.pi / 4, prob=0.5, mode=("bilinear", target_mode), padding_mode="reflection"
        ),
    }[name]()


class Augmentation:
    """The configured augmentations of a patch (z, y, x) and its target, seeded: the same seed, the same draws."""

    def __init__(self, names: Sequence[str], seed: int, maps: bool):
        self.names = list(names)
        self.transform = Compose([_transform(name, maps) for name in self.names])
        self.transform.set_random_state(seed=seed)

    def __call__(self, image: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The augmented image (z, y, x) and target (z, y, x class indices, or channels first), as plain tensors."""
        if not self.names:
            return image, target
        indices = target.dim() == image.dim()
        dtype = target.dtype
        out = self.transform({"image": image[None], "target": target[None] if indices else target})
        image, target = (_plain(out[key]) for key in KEYS)
        if indices:
            target = target[0]
        return image[0], target.to(dtype) if target.dtype != dtype else target


def _plain(value: torch.Tensor) -> torch.Tensor:
    """A MONAI MetaTensor as the plain tensor it holds."""
    return value.as_tensor() if isinstance(value, MetaTensor) else torch.as_tensor(value)
