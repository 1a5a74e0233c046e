"""Slab pictures of the evaluated tomograms, stored with the results so that `bench report` can draw every pick
and miss on the data without reopening the copick project."""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.coords import angstrom_to_voxel
from benchmark.data import Tomogram
from benchmark.errors import BenchError
from benchmark.files import inside, write_bytes

VIEWS = "views"  # the results folder's subfolder: one <run>.npz per evaluated tomogram
SLABS = 3  # the z range is cut into this many slabs, so that every pick and every reference lies in exactly one
LEVEL = 1  # the pyramid level pictured (twice binned: small files, particles still several pixels wide)


@dataclass(frozen=True)
class View:
    """A tomogram's slabs at one pyramid level: each the mean over its z range, as 8-bit grey; `z_edges` (Å) bound
    them; `voxel_size` is level 0's, in Å."""

    images: np.ndarray  # (slabs, y, x) uint8
    z_edges: np.ndarray  # (slabs + 1,) Å
    voxel_size: float
    level: int

    def slab_of(self, z: np.ndarray) -> np.ndarray:
        """The slab index of each z (Å); positions beyond the outer edges go to the outer slabs."""
        return np.clip(np.searchsorted(self.z_edges, z, side="right") - 1, 0, len(self.images) - 1)

    def pixels(self, xyz: np.ndarray) -> np.ndarray:
        """Å (x, y, z) rows as (x, y) pixel positions of the pictured level."""
        return angstrom_to_voxel(xyz, self.voxel_size, self.level)[:, [2, 1]]


def picture(tomogram: Tomogram, slabs: int = SLABS) -> View:
    """The slab means of a tomogram at the pictured level, each stretched between its 1st and 99th percentiles."""
    level = min(LEVEL, len(tomogram.levels) - 1)
    volume = tomogram.read(level)
    edges = np.linspace(0, volume.shape[0], slabs + 1).round().astype(int)
    images = []
    for low, high in itertools.pairwise(edges):
        mean = volume[low:high].mean(axis=0)
        lo, hi = np.percentile(mean, [1, 99])
        images.append((255 * np.clip((mean - lo) / max(hi - lo, 1e-12), 0, 1)).astype(np.uint8))
    z_edges = (edges * 2**level - 0.5) * tomogram.voxel_size  # the outer faces of the slabs' full-resolution voxels
    return View(np.stack(images), z_edges, tomogram.voxel_size, level)


def store_view(tomogram: Tomogram, results: Path) -> None:
    """Write a tomogram's view into the results folder, unless a job already did."""
    path = inside(results / VIEWS, f"{tomogram.run}.npz")
    if path.exists():
        return
    view, buffer = picture(tomogram), io.BytesIO()
    np.savez_compressed(buffer, images=view.images, z_edges=view.z_edges, voxel_size=view.voxel_size, level=view.level)
    write_bytes(path, buffer.getvalue())


def load_views(results: Path) -> dict[str, View]:
    """The stored views of a results folder, by run (none for results from before views were kept)."""
    views = {}
    for path in sorted((results / VIEWS).glob("*.npz")):
        try:
            with np.load(path) as stored:
                views[path.stem] = View(
                    stored["images"], stored["z_edges"], float(stored["voxel_size"]), int(stored["level"])
                )
        except (OSError, ValueError, KeyError) as err:
            raise BenchError(f"{path} is damaged ({err}); restore it (e.g. git checkout) or re-run the suite") from None
    return views
