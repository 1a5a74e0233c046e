"""Orthogonal central slices of a tomogram with its picks circled in their class colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle

from benchmark.coords import XYZ, angstrom_to_voxel
from benchmark.data import Tomogram
from benchmark.particles import ParticleTable

# (axis cut, label, the two (z, y, x) axes drawn as (vertical, horizontal))
PLANES = ((0, "XY (z = {})", (1, 2)), (1, "XZ (y = {})", (0, 2)), (2, "YZ (x = {})", (0, 1)))


def draw_orthoslices(tomogram: Tomogram, picks: pd.DataFrame, particles: ParticleTable, out: Path) -> None:
    """Save a PNG of the three central slices; a particle is circled where the slice cuts its sphere."""
    volume = tomogram.read()
    centre = [s // 2 for s in volume.shape]
    low, high = np.percentile(volume[::2, ::2, ::2], [1, 99])
    zyx = angstrom_to_voxel(picks[XYZ].to_numpy(), tomogram.voxel_size)
    nz, ny, nx = volume.shape
    fig = Figure(figsize=(12, 12 * (ny + nz) / (nx + nz)), dpi=100)
    grid = fig.add_gridspec(2, 2, width_ratios=[nx, nz], height_ratios=[ny, nz], wspace=0.04, hspace=0.06)
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[0, 1])]
    for ax, (axis, title, (vertical, horizontal)) in zip(axes, PLANES, strict=True):
        image = np.take(volume, centre[axis], axis=axis)
        if axis == 2:  # show YZ with y vertical, so it shares the XY panel's rows
            image, vertical, horizontal = image.T, horizontal, vertical
        ax.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        ax.set_title(title.format(centre[axis]), fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        for particle_type, point in zip(picks["particle_type"], zyx, strict=True):
            radius = particles[particle_type].radius / tomogram.voxel_size
            distance = abs(point[axis] - centre[axis])
            if distance < radius:
                ax.add_patch(
                    Circle(
                        (point[horizontal], point[vertical]),
                        np.sqrt(radius**2 - distance**2),
                        fill=False,
                        linewidth=1.2,
                        edgecolor=_rgb(particles[particle_type].color),
                    )
                )
    legend = fig.add_subplot(grid[1, 1])
    legend.axis("off")
    counts = picks["particle_type"].value_counts()
    legend.legend(
        handles=[
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markerfacecolor="none",
                markersize=10,
                markeredgecolor=_rgb(p.color),
                label=f"{p.name} ({counts.get(p.name, 0)})",
            )
            for p in particles
        ],
        loc="center",
        fontsize=9,
        frameon=False,
        title=f"{tomogram.run} {tomogram.tomo_type}\n{tomogram.voxel_size:.3f} Å/voxel",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")


def _rgb(color: tuple[int, int, int, int]) -> tuple[float, float, float]:
    """Opaque matplotlib colour from copick's 0-255 RGBA."""
    return tuple(c / 255 for c in color[:3])
