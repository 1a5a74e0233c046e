"""The report's figures, from stored tables and the verdict's numbers: matplotlib `Figure`s, never shown."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from benchmark.report.costs import PARTS
from benchmark.report.verdict import UNIT, Verdict

LABELLED_POINTS = 4  # a trade-off plot names its points beside them up to this many architectures


def latency_label(cpu: bool) -> str:
    """Axis label of the latency plot, naming CPU figures as such."""
    return "model seconds per z-slice" + (" (CPU)" if cpu else " (GPU)")


def training_label(cpu: bool) -> str:
    """Axis label of the training-time plot: every row's whole training, an ensemble's summed over its members."""
    return f"training seconds ({'CPU' if cpu else 'GPU'}; an ensemble: the sum of its members')"


def memory_label(resources: pd.DataFrame) -> str:
    """Axis label of the memory plot with the kind of figure."""
    kinds = ", ".join(sorted(set(resources["memory_kind"].dropna())))
    return f"peak training memory above baseline, GB ({kinds})"


def per_particle(per_type: pd.DataFrame, order: list[str], split: str, weights: dict[str, float]) -> Figure:
    """Grouped bars: F4 per particle type per architecture, error bars (std) over runs."""
    stats = per_type.groupby(["particle_type", "architecture"], sort=False)["f4"].agg(["mean", "std"]).fillna(0.0)
    repeated = per_type.groupby("architecture")[UNIT].apply(lambda u: len(u.drop_duplicates())).max() > 1
    particles = list(dict.fromkeys(per_type["particle_type"]))
    figure = Figure(figsize=(1.6 + 1.5 * len(particles), 4.2))
    ax = figure.add_subplot()
    width = 0.8 / max(1, len(order))
    for i, arch in enumerate(order):
        values = [
            stats.loc[(p, arch)] if (p, arch) in stats.index else pd.Series({"mean": 0, "std": 0}) for p in particles
        ]
        x = np.arange(len(particles)) + (i - (len(order) - 1) / 2) * width
        errors = [v["std"] for v in values] if repeated else None
        ax.bar(x, [v["mean"] for v in values], width, yerr=errors, capsize=2, label=arch)
    labels = [f"{p.replace('-', '-' + chr(10), 1)}\n(weight {weights.get(p, 1.0):g})" for p in particles]
    ax.set_xticks(np.arange(len(particles)), labels, fontsize=8)
    ax.set_ylabel(f"F4 ({split} runs)")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=min(4, len(order)), loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    ax.set_title("F4 per particle type")
    return figure


def tradeoff(weighted: pd.DataFrame, resources: pd.DataFrame, column: str, label: str, order: list[str]) -> Figure:
    """Scatter of the competition score against a resource figure, one labelled point per architecture."""
    joined = weighted.merge(resources, on=["architecture", *UNIT])
    figure = Figure(figsize=(5.5, 4.2))
    ax = figure.add_subplot()
    for arch in order:
        rows = joined[joined["architecture"] == arch]
        x, y = rows[column].astype(float), rows["f4"].astype(float)
        ax.errorbar(x.mean(), y.mean(), xerr=x.std() if len(x) > 1 else None, yerr=y.std() if len(y) > 1 else None,
                    fmt="o", capsize=3, label=arch)  # fmt: skip
        if len(order) <= LABELLED_POINTS:
            ax.annotate(arch, (x.mean(), y.mean()), textcoords="offset points", xytext=(6, 4), fontsize=8)
    if len(order) > LABELLED_POINTS:  # names beside many points overlap: a legend instead
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2, frameon=False)
    if (joined[column] > 0).all() and joined[column].max() / max(joined[column].min(), 1e-12) > 20:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 1-2-5 ticks, plainly labelled: the default
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # minor labels ran together
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_xlim(left=0, right=1.15 * float(joined[column].max()))
    ax.set_xlabel(label)
    ax.set_ylabel("competition score (weighted F4)")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.set_title(f"Score against {label.split(',')[0].split(' (')[0]}")
    return figure


def learning_curves(runs: pd.DataFrame, points: pd.DataFrame, order: list[str], cpu: bool) -> Figure:
    """Val score against training seconds, each row in its colour of the other plots (its place in `order`): the mean
    over its jobs at each fraction of its bound (markers) and each job's own curve (faint), the legend below."""
    figure = Figure(figsize=(6.5, 4.4))
    ax = figure.add_subplot()
    for row, found in points.groupby("architecture", sort=False):
        colour = f"C{order.index(row) % 10}"  # the colour cycle the trade-off plots draw `order` in
        for _, job in runs[runs["architecture"] == row].groupby(UNIT):
            ax.plot(job["train_seconds"], job["val_score"], color=colour, alpha=0.25, linewidth=1)
        ax.plot(found["seconds"], found["score"], "o-", color=colour, markersize=5, label=row)
    if runs.groupby(["architecture", *UNIT]).ngroups > points["architecture"].nunique():
        ax.plot([], [], color="grey", alpha=0.4, label="one training run")
    ax.set_xlim(left=0)
    ax.set_ylim(0, min(1.05, 1.15 * float(runs["val_score"].max()) + 0.02))
    ax.set_xlabel("training seconds spent" + (" (CPU)" if cpu else " (GPU)"))
    ax.set_ylabel("val competition score")
    ax.grid(alpha=0.3)
    ax.set_title("Learning curves: val score against training time (mean over runs)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=3, frameon=False)
    return figure


def latency(resources: pd.DataFrame, order: list[str], cpu: bool) -> Figure:
    """Stacked horizontal bars: median read, model and post-processing seconds per tomogram."""
    figure = Figure(figsize=(6.5, 1.2 + 0.5 * len(order)))
    ax = figure.add_subplot()
    left = np.zeros(len(order))
    for part, column in PARTS.items():
        values = np.array([resources.loc[resources["architecture"] == a, column].mean() for a in order])
        ax.barh(order, values, left=left, label=part)
        left += values
    ax.invert_yaxis()
    ax.set_xlabel("median seconds per tomogram" + (" (CPU)" if cpu else " (GPU)"))
    ax.legend(
        fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.9 / (1 + 0.5 * len(order))), ncols=3, frameon=False
    )  # below the axes: inside, it covered the longest bars
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Where inference time goes")
    figure.tight_layout()
    return figure


def ablation(evaluated: pd.DataFrame, particles: list[str], variants: dict[str, list[str]], split: str) -> Figure:
    """Per entry with variants, the change of F4 per particle type and of the competition score, per variant
    (`evaluated`: the split's per-type and weighted score rows of the entries and their variants)."""
    means = evaluated.groupby(["architecture", "particle_type"])["f4"].mean()
    particles = [*particles, "weighted"]
    figure = Figure(figsize=(1.6 + 1.3 * len(particles), 0.6 + 3.2 * len(variants)))
    for row, (base, names) in enumerate(variants.items()):
        ax = figure.add_subplot(len(variants), 1, row + 1)
        width = 0.8 / len(names)
        colours = colormaps["tab10" if len(names) <= 10 else "tab20"].colors  # distinct up to 20 variants
        for i, variant in enumerate(names):
            change = [means.get((f"{base}+{variant}", p), np.nan) - means.get((base, p), np.nan) for p in particles]
            x = np.arange(len(particles)) + (i - (len(names) - 1) / 2) * width
            ax.bar(x, change, width, label=variant, color=colours[i % len(colours)])
        ax.axhline(0, color="black", linewidth=0.8)
        labels = [("competition\nscore" if p == "weighted" else p.replace("-", "-\n", 1)) for p in particles]
        ax.set_xticks(np.arange(len(particles)), labels, fontsize=8)
        ax.set_ylabel(f"change of F4 ({split})")
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(f"{base}: post-processing variants against the entry alone", fontsize=10)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    figure.tight_layout()
    return figure


def verdict(found: Verdict, seeds: pd.DataFrame, tomograms: pd.DataFrame, split: str) -> Figure:
    """Per row, best at the top: its interval (the bar), its statistic (the dot), each training run's score (open
    circles) and its score on each tomogram (crosses), so that both sources of uncertainty are seen."""
    rows = found.order
    figure = Figure(figsize=(7.0, 1.3 + 0.55 * len(rows)))
    ax = figure.add_subplot()
    y = np.arange(len(rows))
    for i, row in enumerate(rows):
        low, high = found.replicates.interval(row)
        ax.plot([low, high], [i, i], color="tab:blue", linewidth=6, alpha=0.35, solid_capstyle="butt",
                label="95% interval" if i == 0 else None)  # fmt: skip
        ax.plot(found.replicates.observed[row], i, "o", color="tab:blue", label="score" if i == 0 else None)
        mine = seeds.loc[seeds["architecture"] == row, "f4"].to_numpy(float)
        ax.plot(mine, np.full(len(mine), i - 0.18), "o", mfc="none", color="black", markersize=5,
                label="one training run" if i == 0 else None)  # fmt: skip
        per_run = tomograms[row].dropna().to_numpy(float) if row in tomograms else np.empty(0)
        ax.plot(per_run, np.full(len(per_run), i + 0.18), "x", color="tab:orange", markersize=5,
                label="one tomogram (mean over runs)" if i == 0 else None)  # fmt: skip
    ax.set_yticks(y, [f"{row} (group {found.groups[row]})" for row in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"competition score ({split})")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Score, interval, training runs and tomograms; rows sharing a letter are not told apart", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.5 / (1 + 0.3 * len(rows))), ncols=4,
              frameon=False)  # fmt: skip
    figure.tight_layout()
    return figure
