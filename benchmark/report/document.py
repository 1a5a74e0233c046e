"""`bench report`: markdown tables and PNG plots regenerated from a results folder, never edited by hand."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from benchmark.errors import BenchError
from benchmark.files import write_figure, write_text
from benchmark.particles import COMPETITION_WEIGHTS
from benchmark.results import RESULTS_ROOT, ResultsStore
from metrics.spread import CONFIDENCE, Spread, paired_difference

METRICS = ["precision", "recall", "f1", "f4"]
UNIT = ["seed", "fold"]  # one run of an architecture: the spread is over these
PARTS = {"read": "infer_read_seconds", "model": "infer_model_seconds", "post-processing": "infer_postprocess_seconds"}
OVERHEAD_TARGET = 0.05  # the harness's share of a job it aims to stay under
LABELLED_POINTS = 4  # a trade-off plot names its points beside them up to this many architectures

README_START = "<!-- bench-report:{suite}:start -->"
README_END = "<!-- bench-report:{suite}:end -->"


def suites_with_results(root: Path = RESULTS_ROOT) -> list[str]:
    """Names of the suites that have at least one results folder under `root`."""
    return sorted(p.name for p in root.glob("*") if any(p.glob("*_*/manifest.json")))


def build_report(store: ResultsStore, out: Path, readme: Path | None = None) -> list[Path]:
    """Write README.md and the plots for one results folder into `out` (and the summary into `readme`)."""
    report = Report(store)
    written = []
    for name, figure in report.plots().items():
        write_figure(out / name, figure)
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
        self.split = self.manifest.get("evaluate", "test")
        self.resources = store.table("resources")
        self.ablation = store.table("ablation")
        scores = store.table("scores")
        is_variant = scores["architecture"].isin(self.ablation["architecture"])
        self.variant_scores, scores = scores[is_variant], scores[~is_variant]
        self.val = scores.query("split == 'val' and particle_type == 'weighted'")
        evaluated = scores[scores["split"] == self.split]
        self.per_type = evaluated[evaluated["particle_type"] != "weighted"]
        self.weighted = evaluated[evaluated["particle_type"] == "weighted"]
        if self.weighted.empty:
            raise BenchError(
                f"no successful job in {store.folder}; nothing to report (see its manifest.json for the errors)"
            )
        self.order = list(self.weighted.groupby("architecture")["f4"].mean().sort_values(ascending=False).index)
        self.runs = self.weighted.groupby("architecture").size().max()

    def competition(self, architecture: str, table: pd.DataFrame | None = None) -> pd.Series:
        """The competition score of each run (seed, fold) of an architecture."""
        table = self.weighted if table is None else table
        return table[table["architecture"] == architecture].set_index(UNIT)["f4"]

    def per_particle_table(self) -> str:
        """Precision, recall, F1 and F4 per particle type and architecture."""
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
        """Mean recall, precision and F4 over the scored types, and the competition score with its interval."""
        weights = self.per_type["particle_type"].map(lambda name: COMPETITION_WEIGHTS.get(name, 1.0))
        scored = self.per_type[weights > 0]
        rows = []
        for arch in self.order:
            means = scored[scored["architecture"] == arch].groupby(UNIT)[["recall", "precision", "f4"]].mean()
            spread = Spread.of(self.competition(arch))
            rows.append([arch, *[_mean_std(means[m]) for m in ("recall", "precision", "f4")],
                         f"**{_format(spread)}**", _interval(spread), str(spread.runs)])  # fmt: skip
        header = ["Architecture", "Recall", "Precision", "Mean F4", "Competition score", _ci_header(), "Runs"]
        return _markdown_table(rows, header)

    def paired_table(self) -> str | None:
        """For each pair of architectures, the difference of their competition scores over the runs both have."""
        if len(self.order) < 2:
            return None
        rows = []
        for first, second in combinations(self.order, 2):
            spread = paired_difference(self.competition(first), self.competition(second))
            difference = [f"{spread.mean:+.3f}", _interval(spread, signed=True), str(spread.runs)]
            rows.append([f"{first} - {second}", *difference])
        return _markdown_table(rows, ["Pair", "Mean difference", _ci_header(), "Paired runs"])

    def validation_table(self) -> str | None:
        """The val competition score per architecture: the figure settings are chosen by (absent in a val suite)."""
        if self.split == "val" or self.val.empty:
            return None
        rows = []
        for arch in self.order:
            spread = Spread.of(self.competition(arch, self.val))
            rows.append([arch, _format(spread), _interval(spread), str(spread.runs)])
        return _markdown_table(rows, ["Architecture", "Val competition score", _ci_header(), "Runs"])

    def ablated(self) -> list[str]:
        """The entries with ablation variants, best first."""
        return [arch for arch in self.order if (self.ablation["base"] == arch).any()]

    def variants(self, base: str) -> list[str]:
        """The ablation variants of an entry, in the suite's order."""
        return list(dict.fromkeys(self.ablation.loc[self.ablation["base"] == base, "variant"]))

    def ablation_particle_table(self, base: str) -> str:
        """The study's table for one entry: per particle type, the base F4 and each variant's F4 with its change
        (means over runs), and the same for the competition score."""
        scores = pd.concat(
            [self.per_type, self.weighted, self.variant_scores[self.variant_scores["split"] == self.split]]
        )
        means = scores.groupby(["architecture", "particle_type"])["f4"].mean()
        rows = []
        for particle in [*dict.fromkeys(self.per_type["particle_type"]), "weighted"]:
            name = "**competition score**" if particle == "weighted" else particle
            weight = "" if particle == "weighted" else f" ({COMPETITION_WEIGHTS.get(particle, 1.0):g})"
            start = means.get((base, particle), np.nan)
            cells = [f"{means.get((f'{base}+{v}', particle), np.nan) - start:+.3f}" for v in self.variants(base)]
            values = [f"{means.get((f'{base}+{v}', particle), np.nan):.3f} ({cell})" for v, cell in
                      zip(self.variants(base), cells, strict=True)]  # fmt: skip
            rows.append([name + weight, f"{start:.3f}", *values])
        header = ["Particle (weight)", f"{base} F4", *(f"+{v}: F4 (change)" for v in self.variants(base))]
        return _markdown_table(rows, header)

    def ablation_variant_table(self, base: str) -> str:
        """Each variant of an entry: its steps, the change of the competition score with its paired interval, the
        change on val (what chose the settings), its extra post-processing time and its candidates."""
        rows = []
        variant_val = self.variant_scores.query("split == 'val' and particle_type == 'weighted'")
        variant_weighted = self.variant_scores.query("split == @self.split and particle_type == 'weighted'")
        for variant in self.variants(base):
            label = f"{base}+{variant}"
            found = self.ablation[self.ablation["architecture"] == label]
            change = paired_difference(self.competition(label, variant_weighted), self.competition(base))
            val_change = paired_difference(self.competition(label, variant_val), self.competition(base, self.val))
            candidates = f"{found['candidates_before'].mean():.0f} → {found['candidates_after'].mean():.0f}"
            rows.append([
                f"+{variant}",
                _steps(found["steps"].iloc[0]),
                f"{change.mean:+.3f}",
                _interval(change, signed=True),
                f"{val_change.mean:+.3f}" if self.split == "test" else "(scored on val)",
                _mean_std(found["postprocess_seconds"], 3),
                _mean_std(found["fit_seconds"], 2),
                candidates,
            ])  # fmt: skip
        header = ["Variant", "Steps", f"Change of the {self.split} score", _ci_header(), "Change of the val score",
                  "Extra post-processing per tomogram (s)", "Fit (s)", "Candidates before → after"]  # fmt: skip
        return _markdown_table(rows, header)

    def ablation_lines(self) -> list[str]:
        """The ablation section: per entry with variants, the two tables."""
        if not self.ablated():
            return []
        lines = [
            "## Post-processing ablation",
            "",
            "Each variant applies more steps to the same candidates of the same fitted model (no retraining), and "
            "its score thresholds are tuned on val separately. Changes are against the entry without the variant, "
            "paired by run; extra post-processing is the median per tomogram of the variant's steps (their fit "
            "once per job, on the train runs and the val candidates, is separate); candidates are totals over the "
            f"{self.split} runs before the thresholds.",
            "",
        ]
        for base in self.ablated():
            lines += [
                f"### `{base}`",
                "",
                self.ablation_particle_table(base),
                "",
                self.ablation_variant_table(base),
                "",
            ]
        return lines

    def training_table(self) -> str:
        """The budget each architecture had, what ended its training, what an epoch is, and how long it took."""
        rows = []
        for arch in self.order:
            found = self.resources[self.resources["architecture"] == arch]
            bound = found["epoch_bound"].dropna()
            low, high = int(found["epochs"].min()), int(found["epochs"].max())
            epochs = (f"{low}" if low == high else f"{low}-{high}") + (f" / {int(bound.iloc[0])}" if len(bound) else "")
            rows.append([
                arch,
                f"{found['minutes'].iloc[0]:g}",
                epochs + _cut_note(found),
                _epoch_definition(found),
                _median_iqr(found["epoch_seconds_median"], found["epoch_seconds_iqr"], 1),
                _data_wait(found),
                _mean_std(found["train_seconds"], 0),
            ])  # fmt: skip
        header = ["Architecture", "Budget (min)", "Epochs run / bound", "One epoch", "Time per epoch (s)",
                  "Data wait", "Training (s)"]  # fmt: skip
        return _markdown_table(rows, header)

    def parts_notes(self) -> list[str]:
        """For entries built from other entries (ensembles), which parts they reused and which they trained, per
        seed: their training time above includes the parts'."""
        notes = []
        for arch in self.order:
            found = self.resources[self.resources["architecture"] == arch].dropna(subset=["members"])
            for _, row in found.iterrows():
                notes.append(f"- `{arch}` seed {row['seed']}, fold {row['fold']}: {row['members']}")
        if not notes:
            return []
        lead = ("Entries built from others (ensembles): their training time includes their parts', whether reused "
                "from the entry that trained them in this run or trained in their own job.")  # fmt: skip
        return ["", lead, "", *notes]

    def memory_table(self) -> str:
        """Peak memory above the job's baseline and of the whole process, in training and in inference."""
        gpu = (self.resources["memory_kind"] == "cuda-allocator").any()
        rows = []
        for arch in self.order:
            found = self.resources[self.resources["architecture"] == arch]
            row = [arch, found["memory_kind"].iloc[0]]
            for prefix in ("", "infer_"):
                row += [_mean_std(found[f"{prefix}{c}"], 2) for c in ("peak_memory_gb", "process_peak_memory_gb")]
                if gpu:
                    row += [_mean_std(found[f"{prefix}reserved_peak_memory_gb"], 2), _nvml(found, prefix)]
            rows.append(row)
        extra = ["reserved", "NVML process"] if gpu else []
        header = ["Architecture", "Kind"]
        for phase in ("training", "inference"):
            header += [f"{phase}: above baseline", f"{phase}: whole process", *(f"{phase}: {e}" for e in extra)]
        return _markdown_table(rows, header)

    def latency_table(self) -> str:
        """Inference seconds per tomogram split into read, model and post-processing, and per z-slice."""
        rows = []
        for arch in self.order:
            found = self.resources[self.resources["architecture"] == arch]
            rows.append([
                arch,
                *[_mean_std(found[column], 2) for column in PARTS.values()],
                _median_iqr(found["infer_seconds_per_tomogram"], found["infer_seconds_per_tomogram_iqr"], 2),
                _median_iqr(found["infer_seconds_per_slice"], found["infer_seconds_per_slice_iqr"], 4),
            ])  # fmt: skip
        header = ["Architecture", "Read (s)", "Model (s)", "Post-processing (s)", "Total per tomogram (s)",
                  "Model per slice (s)"]  # fmt: skip
        return _markdown_table(rows, header)

    def overhead_table(self) -> str:
        """The job's wall time split into fit, predict, scoring and the harness's own overhead."""
        rows = []
        for arch in self.order:
            found = self.resources[self.resources["architecture"] == arch]
            found = found.assign(own_fit=found["train_seconds"] - found["reused_train_seconds"].fillna(0))
            share = (found["overhead_seconds"] / found["job_seconds"]).mean()
            rows.append([
                arch,
                *[_mean_std(found[c], 1) for c in ("job_seconds", "own_fit", "predict_seconds", "postprocess_seconds",
                                                    "score_seconds", "overhead_seconds")],
                f"{share:.1%}" + ("" if share <= OVERHEAD_TARGET else " (over target)"),
            ])  # fmt: skip
        header = ["Architecture", "Job (s)", "Fit (s)", "Predict (s)", "Post-processing (s)", "Scoring (s)",
                  "Harness overhead (s)", "Share"]  # fmt: skip
        return _markdown_table(rows, header)

    @property
    def device(self) -> str:
        """The device the jobs ran on, as they recorded it (on a cluster, the nodes'), else as the run recorded it."""
        names = [
            (job.get("environment") or {}).get("device_name")
            for job in self.manifest["jobs"].values()
            if job["status"] == "ok"
        ]
        return " / ".join(dict.fromkeys(filter(None, names))) or self.manifest["environment"]["device_name"]

    @property
    def cpu_kernels(self) -> str:
        """The CPU kernels torch ran, as the jobs (else the run) recorded them: its CPU capability and the CPU's flags
        that change speed and rounding."""
        environments = [
            job.get("environment") or {} for job in self.manifest["jobs"].values() if job["status"] == "ok"
        ] or [self.manifest["environment"]]
        said = [
            f"torch CPU capability {env.get('cpu_capability') or '?'} (flags {' '.join(flags) or 'none'})"
            for env in environments
            if (flags := env.get("cpu_flags")) is not None
        ]
        return " / ".join(dict.fromkeys(said)) or "CPU kernels not recorded"

    def conditions(self) -> list[str]:
        """Bullet lines stating the data, split, budget, seeds, runs, device and code of the run."""
        manifest, data = self.manifest, self.manifest["data"]
        environment, git = manifest["environment"], manifest["environment"]["git"]
        if data.get("synthetic"):
            source = f"synthetic preset `{data['preset']}` (seed {data['seed']})"
        else:
            source = f"`{data['config']}`"
        budget = manifest["budget"]
        bounds = ", ".join(f"{arch} {bound or '-'}" for arch, bound in manifest["epoch_bounds"].items())
        folds = [name for name in manifest["folds"] if name != "ts"]
        scored = "val (a selection suite: test never read)" if self.split == "val" else "test (reported)"
        return [
            f"- Data: {source}; tomogram type `{data['tomo_type']}`, voxel size {data['voxel_size']} Å",
            f"- Split: train {', '.join(manifest['split']['train'])}; val {', '.join(manifest['split']['val'])} "
            f"(score thresholds tuned here, then frozen); test {', '.join(manifest['split']['test'])}; scored: {scored}"
            + (f"; plus {len(folds)} folds ({', '.join(folds)}: see the manifest)" if folds else ""),
            f"- Budget: every fit capped at {budget['minutes']:g} min of wall clock from the call of `fit` to its "
            f"return (stopped at +{budget['grace_minutes']:g} min); epoch bounds: {bounds}",
            f"- Runs: seeds {', '.join(map(str, manifest['seeds']))} x {len(manifest['folds'])} fold(s); "
            + (
                f"mean ± std and {CONFIDENCE:.0%} t-intervals over {self.runs} runs"
                + ("; folds share training runs, so intervals over them are optimistic" if folds else "")
                if self.runs > 1
                else "single run: no spread or interval"
            ),
            *_launches(manifest.get("launches", [])),
            f"- Device: {self.device}; {self.cpu_kernels}; torch {environment['libraries']['torch']} with "
            f"{environment.get('num_threads')} threads; {_compute(manifest.get('compute'))}; commit {git['short']}"
            f"{' (uncommitted changes)' if git['dirty'] else ''}; run {manifest['created']}",
        ]

    def markdown(self, plots: list[str]) -> str:
        """The report's README: conditions, the tables, the plots, jobs without results."""
        unfinished = [
            f"- `{key}`: {job['status']}" + (f": {job['error']}" if job.get("error") else "")
            for key, job in self.manifest["jobs"].items()
            if job["status"] != "ok"
        ]
        device, repeats = self.device, self.manifest["repeats"]
        warm_up = "the val runs" if self.split == "test" else "the first val run"
        paired, validation = self.paired_table(), self.validation_table()
        return "\n".join(
            [
                f"# Suite `{self.manifest['suite']['name']}`",
                "",
                f"Generated by `bench report` from `{self.store.folder}`; do not edit by hand.",
                "",
                *self.conditions(),
                "",
                f"## Per-particle results ({self.split} runs)",
                "",
                self.per_particle_table(),
                "",
                f"## Comparative summary ({self.split} runs)",
                "",
                "Recall, precision and F4 are means over the scored particle types (weight > 0); the competition "
                "score is the weighted F4 (weights 1/0/2/1/2/1, divided by 7).",
                "",
                self.summary_table(),
                "",
                *(["### Paired differences of the competition score", "", paired, ""] if paired else []),
                *(
                    [
                        "## Validation scores",
                        "",
                        "The competition score on the val runs (thresholds tuned there): the figure suite settings "
                        "are chosen by.",
                        "",
                        validation,
                        "",
                    ]
                    if validation
                    else []
                ),
                *self.ablation_lines(),
                "## Training under the budget",
                "",
                "One budget for every architecture: wall-clock minutes from the call of `fit` (data preparation "
                "included) to its return. When an architecture's epoch bound ends its training first, its result does "
                "not depend on the machine's speed; a run the cap cut short says so below. Time per epoch: the median "
                "epoch, ± its IQR for one run or ± the std of the medians over runs. Data wait: the share of the "
                "epochs' time the training steps waited for their batch (host time: cutting, loading, copying), mean "
                "over runs, with the precision the plug-in trained in; '-' where a plug-in times no batches.",
                "",
                self.training_table(),
                *self.parts_notes(),
                "",
                "## Memory (GB)",
                "",
                "Peaks above the job's baseline (taken after imports and data opening, before the model is built; for "
                "inference, with the fitted model, before the first prediction) are the figures to compare; the whole "
                "process's peak stands beside them. "
                "CPU: resident memory; GPU: torch's allocator.",
                "",
                self.memory_table(),
                "",
                "## Inference latency",
                "",
                f"Measured on {device}. Each {self.split} tomogram predicted {repeats} time(s) after a warm-up on "
                f"{warm_up}; medians over tomograms x repeats, spread (±) the IQR. Read: time in `Tomogram.read` "
                "(zarr decoding and checks); model: predict less its reads (the plug-in's own peak finding "
                "included); post-processing: the harness's checks and the suite's steps (timed once per tomogram, "
                "not per repeat). Per slice = model seconds / z-slices (the reference study's unit).",
                "",
                self.latency_table(),
                "",
                "## Harness overhead",
                "",
                "Job: the job process's wall time, from its start to its result; fit (the job's own, without the "
                "parts it reused), predict (every prediction: warm-up and repeats), post-processing (the suite's "
                "steps and ablation variants: fitted, then applied to every predicted tomogram) and scoring "
                "(threshold tuning and the metric, per variant too) are the work measured; the rest "
                f"is the harness's overhead (process start, imports, data opening, model save, write-back), "
                f"target at most {OVERHEAD_TARGET:.0%}. Over every job of the suite: "
                f"{self.resources['overhead_seconds'].sum() / self.resources['job_seconds'].sum():.1%}.",
                "",
                self.overhead_table(),
                "",
                "## Plots",
                "",
                *[f"![{name}]({name})" for name in plots],
                "",
                *(["## Failed or unfinished jobs", "", *unfinished, ""] if unfinished else []),
            ]
        )

    def plots(self) -> dict[str, Figure]:
        """The figures, by file name."""
        cpu = self.manifest["device"] == "cpu"
        return {
            "f4_per_particle.png": _plot_per_particle(self.per_type, self.order, self.split),
            "f4_vs_latency.png": _plot_tradeoff(
                self.weighted, self.resources, "infer_seconds_per_slice", _latency_label(cpu), self.order
            ),
            "f4_vs_memory.png": _plot_tradeoff(
                self.weighted, self.resources, "peak_memory_gb", _memory_label(self.resources), self.order
            ),
            "latency_breakdown.png": _plot_latency(self.resources, self.order, cpu),
            **({"ablation.png": self.ablation_plot()} if self.ablated() else {}),
        }

    def ablation_plot(self) -> Figure:
        """Per entry with variants, the change of F4 per particle type and of the competition score, per variant."""
        evaluated = pd.concat(
            [self.per_type, self.weighted, self.variant_scores[self.variant_scores["split"] == self.split]]
        )
        means = evaluated.groupby(["architecture", "particle_type"])["f4"].mean()
        particles = [*dict.fromkeys(self.per_type["particle_type"]), "weighted"]
        bases = self.ablated()
        figure = Figure(figsize=(1.6 + 1.3 * len(particles), 0.6 + 3.2 * len(bases)))
        for row, base in enumerate(bases):
            ax = figure.add_subplot(len(bases), 1, row + 1)
            variants = self.variants(base)
            width = 0.8 / len(variants)
            colours = colormaps["tab10" if len(variants) <= 10 else "tab20"].colors  # distinct up to 20 variants
            for i, variant in enumerate(variants):
                change = [means.get((f"{base}+{variant}", p), np.nan) - means.get((base, p), np.nan) for p in particles]
                x = np.arange(len(particles)) + (i - (len(variants) - 1) / 2) * width
                ax.bar(x, change, width, label=variant, color=colours[i % len(colours)])
            ax.axhline(0, color="black", linewidth=0.8)
            labels = [("competition\nscore" if p == "weighted" else p.replace("-", "-\n", 1)) for p in particles]
            ax.set_xticks(np.arange(len(particles)), labels, fontsize=8)
            ax.set_ylabel(f"change of F4 ({self.split})")
            ax.grid(axis="y", alpha=0.3)
            ax.set_title(f"{base}: post-processing variants against the entry alone", fontsize=10)
            ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        figure.tight_layout()
        return figure


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
    """'mean' for one run, 'mean ± std' for several."""
    values = values.dropna().astype(float)
    if values.empty:
        return "n/a"
    if len(values) == 1:
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def _median_iqr(medians: pd.Series, iqrs: pd.Series, digits: int) -> str:
    """A median with its IQR (one run), or the mean ± std of the medians over runs."""
    if len(medians.dropna()) != 1:
        return _mean_std(medians, digits)
    iqr = iqrs.dropna()
    return f"{medians.dropna().iloc[0]:.{digits}f}" + (f" ± {iqr.iloc[0]:.{digits}f}" if len(iqr) else "")


def _format(spread: Spread) -> str:
    """'mean' or 'mean ± std'."""
    return f"{spread.mean:.3f}" if spread.std is None else f"{spread.mean:.3f} ± {spread.std:.3f}"


def _interval(spread: Spread, signed: bool = False) -> str:
    """The interval of a spread, or 'single run'."""
    if spread.low is None:
        return "single run"
    sign = "+" if signed else ""
    return f"[{spread.low:{sign}.3f}, {spread.high:{sign}.3f}]"


def _ci_header() -> str:
    """Header of an interval column."""
    return f"{CONFIDENCE:.0%} interval"


def _steps(steps: str) -> str:
    """A variant's steps (stored as JSON) as `name(param=value, ...)` in order."""
    parts = []
    for step in json.loads(steps):
        params = ", ".join(f"{k}={v}" for k, v in step.items() if k != "step")
        parts.append(f"`{step['step']}({params})`")
    return " → ".join(parts) or "none"


def _cut_note(found: pd.DataFrame) -> str:
    """How many of an architecture's jobs the minutes cap cut short, and how many of those shared the cores."""
    cut = found["stopped_by"] == "minutes"
    if not cut.any():
        return ""
    shared = int((cut & (found["parallel_jobs"].fillna(1) > 1)).sum())
    sharing = f"; {shared} of them sharing the cores with other jobs, so trained less than alone" if shared else ""
    return f" (cut by the cap in {int(cut.sum())} of {len(found)}{sharing})"


def _launches(launches: list[dict]) -> list[str]:
    """A bullet line on how the jobs were launched, when any run launched more than one at a time or not as child
    processes (the default states nothing)."""
    said = [
        f"{launch['launcher']} launcher, {launch['jobs']} job(s) at once"
        + ("; jobs shared the cores, each with the threads of a job alone" if launch["slots"][0]["shared"] else "")
        for launch in launches
    ]
    if all(launch["launcher"] == "process" and launch["jobs"] == 1 for launch in launches):
        return []
    return [f"- Launch: {'; then '.join(dict.fromkeys(said))} (see the manifest's `launches`)"]


def _compute(compute: dict | None) -> str:
    """The manifest's compute settings in words (older manifests have none)."""
    if not compute:
        return "compute settings not recorded"
    kernels = "deterministic kernels" if compute["deterministic"] else "non-deterministic kernels"
    return f"{compute['precision']} precision, {kernels}" + (", cudnn autotuner" if compute["cudnn_benchmark"] else "")


def _data_wait(found: pd.DataFrame) -> str:
    """The share of the epochs' time the steps waited for data (mean over jobs), with the precision they ran in."""
    shares = found["data_wait_share"].dropna()
    precision = ", ".join(sorted(set(found["compute_precision"].dropna())))
    share = f"{100 * shares.mean():.1f}%" if len(shares) else "-"
    return f"{share} ({precision})" if precision else share


def _epoch_definition(found: pd.DataFrame) -> str:
    """What one epoch is, as the plug-in told the tracker."""
    row = found.iloc[0]
    if pd.isna(row["epoch_samples"]):
        return "not stated"
    return f"{int(row['epoch_samples'])} {row['epoch_unit']}"


def _nvml(found: pd.DataFrame, prefix: str) -> str:
    """The NVML process peak, or why NVML gave none."""
    values = found[f"{prefix}nvml_peak_memory_gb"].dropna()
    return _mean_std(values, 2) if len(values) else str(found["nvml_status"].iloc[0])


def _markdown_table(rows: list[list[str]], header: list[str]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _latency_label(cpu: bool) -> str:
    """Axis label of the latency plot, naming CPU figures as such."""
    return "model seconds per z-slice" + (" (CPU)" if cpu else " (GPU)")


def _memory_label(resources: pd.DataFrame) -> str:
    """Axis label of the memory plot with the kind of figure."""
    kinds = ", ".join(sorted(set(resources["memory_kind"].dropna())))
    return f"peak training memory above baseline, GB ({kinds})"


def _plot_per_particle(per_type: pd.DataFrame, order: list[str], split: str) -> Figure:
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
    labels = [f"{p.replace('-', '-' + chr(10), 1)}\n(weight {COMPETITION_WEIGHTS.get(p, 1.0):g})" for p in particles]
    ax.set_xticks(np.arange(len(particles)), labels, fontsize=8)
    ax.set_ylabel(f"F4 ({split} runs)")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=min(4, len(order)), loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    ax.set_title("F4 per particle type")
    return figure


def _plot_tradeoff(
    weighted: pd.DataFrame, resources: pd.DataFrame, column: str, label: str, order: list[str]
) -> Figure:
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
    else:
        ax.set_xlim(left=0, right=1.15 * float(joined[column].max()))
    ax.set_xlabel(label)
    ax.set_ylabel("competition score (weighted F4)")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.set_title(f"Score against {label.split(',')[0].split(' (')[0]}")
    return figure


def _plot_latency(resources: pd.DataFrame, order: list[str], cpu: bool) -> Figure:
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
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Where inference time goes")
    return figure
