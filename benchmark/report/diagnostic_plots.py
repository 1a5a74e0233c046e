"""The picking diagnostics' figures: threshold curves, the radius sweep and the pictures of every miss."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from benchmark.coords import XYZ
from benchmark.particles import ParticleTable
from benchmark.results import JOB
from benchmark.views import View
from metrics.diagnostics import RADIUS_FRACTIONS
from metrics.fbeta import DISTANCE_MULTIPLIER

#: how each kind of mark is drawn: Okabe-Ito colours (safe for colour-blind readers) and distinct shapes, so the
#: kinds differ in grey print too
MARKS = {
    "hit": {"marker": "o", "facecolors": "none", "edgecolors": "#009E73", "label": "hit (kept pick on a reference)"},
    "false positive": {"marker": "x", "color": "#D55E00", "label": "false positive (kept pick, no reference)"},
    "missed": {"marker": "s", "facecolors": "none", "edgecolors": "#F0E442", "label": "missed reference"},
}


PANEL_POINTS = 170  # the drawn width of a slab panel, in points


def thresholds(curves: pd.DataFrame, tuned: pd.DataFrame, particle: str, order: list[str], split: str) -> Figure:
    """One particle type: every row's precision-recall curve on one panel, and F4 against the score threshold on a
    panel per row (its own scale), the val-tuned threshold marked on each."""
    rows = [arch for arch in order if (curves["architecture"] == arch).any()]
    columns = math.ceil(len(rows) / 2)
    figure = Figure(figsize=(4.2 + 2.6 * columns, 6.0), layout="constrained")
    grid = figure.add_gridspec(2, columns + 2)
    pr = figure.add_subplot(grid[:, :2])
    for index, arch in enumerate(rows):
        colour, mine = f"C{order.index(arch)}", curves[curves["architecture"] == arch]
        points = tuned[tuned["architecture"] == arch]
        ax = figure.add_subplot(grid[index % 2, 2 + index // 2])
        for number, (_, run) in enumerate(mine.groupby(JOB)):
            run = run[np.isfinite(run["threshold"])]
            pr.plot(run["recall"], run["precision"], color=colour, lw=1, alpha=0.8, label=None if number else arch)
            ax.plot(run["threshold"], run["f4"], color=colour, lw=1, alpha=0.8)
        pr.scatter(points["recall"], points["precision"], color=colour, edgecolors="black", zorder=3, s=28)
        ax.scatter(points["threshold"], points["f4"], color=colour, edgecolors="black", zorder=3, s=20)
        for threshold in points["threshold"][np.isfinite(points["threshold"])]:
            ax.axvline(threshold, color=colour, ls="--", lw=0.8)
        ax.set_title(arch, fontsize=8)
        if not np.isfinite(mine["threshold"]).any():
            ax.text(0.5, 0.5, f"no {particle} candidates", ha="center", va="center", fontsize=7, transform=ax.transAxes)
            ax.set_xticks([])
        ax.set_ylim(0, 1.05)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
        ax.xaxis.get_offset_text().set_fontsize(7)
        ax.set_xlabel("score threshold", fontsize=7)
        ax.set_ylabel("F4", fontsize=7)
        ax.grid(alpha=0.3)
    pr.set_xlim(0, 1.02)
    pr.set_ylim(0, 1.05)
    pr.set_xlabel(f"recall ({split} runs)")
    pr.set_ylabel("precision")
    pr.grid(alpha=0.3)
    dot = Line2D([], [], marker="o", color="grey", markeredgecolor="black", ls="", label="val-tuned threshold")
    pr.legend(handles=[*pr.get_legend_handles_labels()[0], dot], fontsize=7, loc="lower left")
    figure.suptitle(f"{particle}: precision-recall as the threshold falls, and F4 against the threshold ({split} runs)")
    return figure


def radius_sweep(sweep: pd.DataFrame, order: list[str], particles: ParticleTable, split: str) -> Figure:
    """F4 against the matching radius (a fraction of the particle's radius) per type and for the competition score,
    one line per row (mean over runs)."""
    panels = [*particles.names, "weighted"]
    columns = math.ceil(len(panels) / 2)
    figure = Figure(figsize=(2.9 * columns, 5.6), layout="constrained")
    axes = figure.subplots(2, columns, sharex=True, sharey=True, squeeze=False).ravel()
    means = sweep.groupby(["architecture", "particle_type", "fraction"])["f4"].mean()
    for ax, panel in zip(axes, panels, strict=False):
        for arch in order:
            if (arch, panel) in means.index:
                line = means.loc[(arch, panel)]
                ax.plot(line.index, line.to_numpy(), marker="o", ms=3, color=f"C{order.index(arch)}", label=arch)
        ax.axvline(DISTANCE_MULTIPLIER, color="grey", ls=":", lw=1)
        ax.set_title("competition score" if panel == "weighted" else panel, fontsize=9)
        ax.set_xticks(RADIUS_FRACTIONS)
        ax.tick_params(labelbottom=True)  # every panel: the one above a missing panel has none below it
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.axis("off")
    figure.supxlabel("matching radius / particle radius", fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    if len(axes) > len(panels):  # the legend in the first empty panel
        axes[len(panels)].legend(handles, labels, loc="center", fontsize=8, frameon=False)
    else:
        figure.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)
    figure.suptitle(f"F4 against the matching radius ({split} runs; dotted: the metric's)")
    return figure


def misses(marks: dict[str, pd.DataFrame], view: View | None, run: str, order: list[str], particles: ParticleTable):
    """One tomogram: a row of slabs per architecture, its hits, false positives and missed references marked on
    them; marks are sized by the particle's radius."""
    slabs = len(view.images) if view is not None else 1
    figure = Figure(figsize=(PANEL_POINTS / 72 * slabs + 1.2, 2.5 * len(marks) + 0.9), layout="constrained")
    axes = figure.subplots(len(marks), slabs, squeeze=False)
    for row, (label, marked) in zip(axes, marks.items(), strict=True):
        xy = view.pixels(marked[XYZ].to_numpy(float)) if view is not None else marked[["x", "y"]].to_numpy(float)
        slab = view.slab_of(marked["z"].to_numpy(float)) if view is not None else np.zeros(len(marked), int)
        radius = marked["particle_type"].map(lambda name: particles[name].radius).to_numpy(float)
        # a mark as wide as the particle's radius (half its diameter: crowded particles stay apart)
        width = radius / (view.voxel_size * 2**view.level) * PANEL_POINTS / view.images.shape[2] if view else 6.0
        for index, ax in enumerate(row):
            if view is not None:
                ax.imshow(view.images[index], cmap="gray", origin="lower", interpolation="nearest")
                low, high = view.z_edges[index], view.z_edges[index + 1]
                ax.set_title(f"z {low:.0f}-{high:.0f} Å", fontsize=7)
            here = slab == index
            for kind, style in MARKS.items():
                chosen = here & (marked["mark"] == kind).to_numpy()
                drawn = {k: v for k, v in style.items() if k != "label"}
                sizes = np.broadcast_to(width, len(radius))[chosen] ** 2
                ax.scatter(xy[chosen, 0], xy[chosen, 1], s=sizes, linewidths=0.9, **drawn)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(label, fontsize=8)
        counts = marked["mark"].value_counts()
        row[-1].text(1.02, 0.5, "\n".join(f"{counts.get(kind, 0)} {kind}" for kind in MARKS), fontsize=7,
                     transform=row[-1].transAxes, va="center")  # fmt: skip
    handles = [Line2D([], [], ls="", markersize=7, marker=style["marker"], label=style["label"],
                      markerfacecolor="none", markeredgecolor=style.get("edgecolors", style.get("color")),
                      color=style.get("color", style.get("edgecolors"))) for style in MARKS.values()]  # fmt: skip
    figure.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    figure.suptitle(f"{run}: every kept pick and every reference, per z slab (x right, y up)", fontsize=10)
    return figure
