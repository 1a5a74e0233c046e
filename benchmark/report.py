"""`bench report`: markdown tables and PNG plots regenerated from a results folder, never edited by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchmark.errors import BenchError
from benchmark.files import write_text
from benchmark.particles import COMPETITION_WEIGHTS
from benchmark.results import ResultsStore

METRICS = ["precision", "recall", "f1", "f4"]


README_START = "<!-- bench-report:{suite}:start -->"
README_END = "<!-- bench-report:{suite}:end -->"


def build_report(store: ResultsStore, out: Path, readme: Path | None = None) -> list[Path]:
    """Write README.md and the plots for one results folder into `out` (and the summary into `readme`)."""
    report = Report(store)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in report.plots().items():
        figure.savefig(out / name, dpi=120, bbox_inches="tight")
        written.append(out / name)
    write_text(out / "README.md", report.markdown([p.name for p in written]))
    written.append(out / "README.md")
    if readme is not None:
        update_readme(readme, report, out)
        written.append(readme)
    return written


class Report:
    """The tables and plots of one results folder, from its stored tables and manifest only."""

    def __init__(self, store: ResultsStore):
        self.store = store
        self.manifest = store.manifest
        self.resources = store.table("resources")
        test = store.table("scores").query("split == 'test'")
        self.per_type = test[test["particle_type"] != "weighted"]
        self.weighted = test[test["particle_type"] == "weighted"]
        if self.weighted.empty:
            raise BenchError(
                f"no successful job in {store.folder}; nothing to report (see its manifest.json for the errors)"
            )
        self.order = list(self.weighted.groupby("architecture")["f4"].mean().sort_values(ascending=False).index)

    def per_particle_table(self) -> str:
        """Table 1: precision, recall, F1 and F4 per particle type and architecture."""
        rows = []
        for particle in dict.fromkeys(self.per_type["particle_type"]):
            for arch in self.order:
                found = self.per_type[
                    (self.per_type["particle_type"] == particle) & (self.per_type["architecture"] == arch)
                ]
                if not found.empty:
                    rows.append([particle, arch, *[_mean_std(found[m]) for m in METRICS]])
        return _markdown_table(rows, ["Particle", "Architecture", "Precision", "Recall", "F1", "F4"])

    def summary_table(self) -> str:
        """Table 2: mean recall, precision and F4 over the scored types, and the competition score."""
        weights = self.per_type["particle_type"].map(lambda name: COMPETITION_WEIGHTS.get(name, 1.0))
        scored = self.per_type[weights > 0]
        rows = []
        for arch in self.order:
            means = scored[scored["architecture"] == arch].groupby("seed")[["recall", "precision", "f4"]].mean()
            competition = self.weighted.loc[self.weighted["architecture"] == arch, "f4"]
            rows.append([arch, *[_mean_std(means[m]) for m in ("recall", "precision", "f4")],
                         f"**{_mean_std(competition)}**"])  # fmt: skip
        return _markdown_table(rows, ["Architecture", "Recall", "Precision", "Mean F4", "Competition score"])

    def resources_table(self) -> str:
        """Table 3: peak memory, time per epoch and inference time per tomogram and per slice."""
        rows = []
        for arch in self.order:
            found = self.resources[self.resources["architecture"] == arch]
            rows.append([
                arch,
                f"{_mean_std(found['peak_memory_gb'], 2)} ({found['memory_kind'].iloc[0]})",
                _mean_std(found["epoch_seconds_median"], 1),
                _mean_std(found["epochs"], 0),
                _mean_std(found["infer_seconds_per_tomogram"], 2),
                _mean_std(found["infer_seconds_per_slice"], 4),
                _mean_std(found["infer_peak_memory_gb"], 2),
            ])  # fmt: skip
        header = ["Architecture", "Peak memory (GB)", "Time per epoch (s)", "Epochs", "Inference per tomogram (s)",
                  "Inference per slice (s)", "Inference peak memory (GB)"]  # fmt: skip
        return _markdown_table(rows, header)

    def conditions(self) -> list[str]:
        """Bullet lines stating the data, split, budget, seeds, device and code of the run."""
        manifest, data = self.manifest, self.manifest["data"]
        environment, git = manifest["environment"], manifest["environment"]["git"]
        if data.get("synthetic"):
            source = f"synthetic preset `{data['preset']}` (seed {data['seed']})"
        else:
            source = f"`{data['config']}`"
        budget = ", ".join(f"{k} {v}" for k, v in manifest["budget"].items() if v is not None)
        seeds = ", ".join(map(str, manifest["seeds"]))
        return [
            f"- Data: {source}; tomogram type `{data['tomo_type']}`, voxel size {data['voxel_size']} Å",
            f"- Split: train {', '.join(manifest['split']['train'])}; val {', '.join(manifest['split']['val'])} "
            f"(score thresholds tuned here, then frozen); test {', '.join(manifest['split']['test'])} (reported)",
            f"- Budget: {budget}; seeds: {seeds}" + (" (mean ± std over seeds)" if len(manifest["seeds"]) > 1 else ""),
            f"- Device: {environment['device_name']}; torch {environment['libraries']['torch']}; "
            f"commit {git['short']}{' (uncommitted changes)' if git['dirty'] else ''}; run {manifest['created']}",
        ]

    def markdown(self, plots: list[str]) -> str:
        """The report's README: conditions, the three tables, the plots, jobs without results."""
        unfinished = [
            f"- `{key}`: {job['status']}" + (f": {job['error']}" if job.get("error") else "")
            for key, job in self.manifest["jobs"].items()
            if job["status"] != "ok"
        ]
        device = self.manifest["environment"]["device_name"]
        return "\n".join(
            [
                f"# Suite `{self.manifest['suite']['name']}`",
                "",
                f"Generated by `bench report` from `{self.store.folder}`; do not edit by hand.",
                "",
                *self.conditions(),
                "",
                "## Per-particle results (test runs)",
                "",
                self.per_particle_table(),
                "",
                "## Comparative summary (test runs)",
                "",
                "Recall, precision and F4 are means over the scored particle types (weight > 0); the competition "
                "score is the weighted F4 (weights 1/0/2/1/2/1, divided by 7).",
                "",
                self.summary_table(),
                "",
                "## Computational requirements",
                "",
                f"Measured on {device}. Peak memory during training; inference timed after a warm-up on the "
                "validation runs, median over the test tomograms; per slice = per tomogram / z slices.",
                "",
                self.resources_table(),
                "",
                "## Plots",
                "",
                *[f"![{name}]({name})" for name in plots],
                "",
                *(["## Failed or unfinished jobs", "", *unfinished, ""] if unfinished else []),
            ]
        )

    def plots(self) -> dict[str, Figure]:
        """The three figures, by file name."""
        cpu = self.manifest["device"] == "cpu"
        return {
            "f4_per_particle.png": _plot_per_particle(self.per_type, self.order),
            "f4_vs_latency.png": _plot_tradeoff(
                self.weighted, self.resources, "infer_seconds_per_slice", _latency_label(cpu), self.order
            ),
            "f4_vs_memory.png": _plot_tradeoff(
                self.weighted, self.resources, "peak_memory_gb", _memory_label(self.resources), self.order
            ),
        }


def update_readme(readme: Path, report: Report, out: Path) -> None:
    """Replace the block between the suite's markers in a README with the summary table and conditions."""
    suite = report.manifest["suite"]["name"]
    start, end = README_START.format(suite=suite), README_END.format(suite=suite)
    text = readme.read_text()
    if start not in text or end not in text:
        raise BenchError(f"{readme} has no '{start}' ... '{end}' block; add the two marker lines where the table goes")
    block = "\n".join([start, report.summary_table(), "", *report.conditions(), "",
                       f"Full report: [{out}/README.md]({out}/README.md)", end])  # fmt: skip
    write_text(readme, text[: text.index(start)] + block + text[text.index(end) + len(end) :])


def _mean_std(values: pd.Series, digits: int = 3) -> str:
    """'mean' for one seed, 'mean ± std' for several."""
    values = values.dropna().astype(float)
    if values.empty:
        return "n/a"
    if len(values) == 1:
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def _markdown_table(rows: list[list[str]], header: list[str]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _latency_label(cpu: bool) -> str:
    """Axis label of the latency plot, naming CPU figures as such."""
    return "inference seconds per z-slice" + (" (CPU)" if cpu else " (GPU)")


def _memory_label(resources: pd.DataFrame) -> str:
    """Axis label of the memory plot with the kind of figure."""
    kinds = ", ".join(sorted(set(resources["memory_kind"].dropna())))
    return f"peak training memory, GB ({kinds})"


def _plot_per_particle(per_type: pd.DataFrame, order: list[str]) -> Figure:
    """Grouped bars: F4 per particle type per architecture, error bars over seeds."""
    stats = per_type.groupby(["particle_type", "architecture"], sort=False)["f4"].agg(["mean", "std"]).fillna(0.0)
    seeded = per_type["seed"].nunique() > 1
    particles = list(dict.fromkeys(per_type["particle_type"]))
    figure = Figure(figsize=(1.6 + 1.5 * len(particles), 4.2))
    ax = figure.add_subplot()
    width = 0.8 / max(1, len(order))
    for i, arch in enumerate(order):
        values = [
            stats.loc[(p, arch)] if (p, arch) in stats.index else pd.Series({"mean": 0, "std": 0}) for p in particles
        ]
        x = np.arange(len(particles)) + (i - (len(order) - 1) / 2) * width
        errors = [v["std"] for v in values] if seeded else None
        ax.bar(x, [v["mean"] for v in values], width, yerr=errors, capsize=2, label=arch)
    labels = [f"{p.replace('-', '-' + chr(10), 1)}\n(weight {COMPETITION_WEIGHTS.get(p, 1.0):g})" for p in particles]
    ax.set_xticks(np.arange(len(particles)), labels, fontsize=8)
    ax.set_ylabel("F4 (test runs)")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=min(4, len(order)), loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    ax.set_title("F4 per particle type")
    return figure


def _plot_tradeoff(
    weighted: pd.DataFrame, resources: pd.DataFrame, column: str, label: str, order: list[str]
) -> Figure:
    """Scatter of the competition score against a resource figure, one labelled point per architecture."""
    joined = weighted.merge(resources, on=["architecture", "seed"])
    figure = Figure(figsize=(5.5, 4.2))
    ax = figure.add_subplot()
    for arch in order:
        rows = joined[joined["architecture"] == arch]
        x, y = rows[column].astype(float), rows["f4"].astype(float)
        ax.errorbar(x.mean(), y.mean(), xerr=x.std() if len(x) > 1 else None, yerr=y.std() if len(y) > 1 else None,
                    fmt="o", capsize=3, label=arch)  # fmt: skip
        ax.annotate(arch, (x.mean(), y.mean()), textcoords="offset points", xytext=(6, 4), fontsize=8)
    if (joined[column] > 0).all() and joined[column].max() / max(joined[column].min(), 1e-12) > 20:
        ax.set_xscale("log")
    else:
        ax.set_xlim(left=0, right=1.15 * float(joined[column].max()))
    ax.set_xlabel(label)
    ax.set_ylabel("competition score (weighted F4, test)")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.set_title(f"Score against {label.split(',')[0].split(' (')[0]}")
    return figure
