"""The report of one results folder: its verdict tables and the cost tables, assembled into markdown; every number
comes from the folder's stored tables (`verdict` and `costs` compute, this module arranges)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchmark.errors import BenchError
from benchmark.report import costs, plots
from benchmark.report.conditions import conditions, device
from benchmark.report.curves import END, Pace, curve_points, curve_runs
from benchmark.report.diagnostics import Diagnostics
from benchmark.report.markdown import interval, mean_std, steps, table
from benchmark.report.verdict import (
    UNIT,
    Verdict,
    evaluated_references,
    families_of,
    metric_weights,
    threshold_transfer,
    tomogram_scores,
)
from benchmark.results import ResultsStore
from metrics.bootstrap import CONFIDENCE, REPLICATES
from metrics.comparison import ALPHA, Difference

METRICS = ["precision", "recall", "f1", "f4"]
EVIDENCE = ["counts", "matches"]


class Report:
    """The tables and plots of one results folder, from its stored tables and manifest only."""

    def __init__(self, store: ResultsStore):
        self.store = store
        self.manifest = store.manifest
        self.split = self.manifest.get("evaluate", "test")
        self.resources = store.table("resources")
        self.ablation = store.table("ablation")
        scores, thresholds = store.table("scores"), store.table("thresholds")
        evidence = {name: store.table(name) for name in EVIDENCE}
        variant = scores["architecture"].isin(self.ablation["architecture"])
        self.variant_scores, scores = scores[variant], scores[~variant]
        self.val = scores.query("split == 'val' and particle_type == 'weighted'")
        evaluated = scores[scores["split"] == self.split]
        self.per_type = evaluated[evaluated["particle_type"] != "weighted"]
        self.weighted = evaluated[evaluated["particle_type"] == "weighted"]
        if self.weighted.empty:
            raise BenchError(
                f"no successful job in {store.folder}; nothing to report (see its manifest.json for the errors)"
            )
        missing = _without_evidence(self.weighted, evidence["counts"])
        if missing:
            raise BenchError(
                f"{store.folder} stores no per-tomogram counts for {missing} (counts.csv: results from before they "
                "were kept); re-run its suite with bench run"
            )
        names = [p["name"] for p in self.manifest.get("particles", [])] or list(
            dict.fromkeys(self.per_type["particle_type"])
        )
        self.weights = metric_weights(self.manifest, names)
        self.hard = [p["name"] for p in self.manifest.get("particles", []) if p.get("hard")]
        self.evidence = {split: {name: frame[frame["split"] == split] for name, frame in evidence.items()}
                         for split in ("val", "test")}  # fmt: skip
        self.families = families_of(self.resources)  # an ensemble and the entries whose models it reused
        self.verdict = self._verdict(self.split, set(self.weighted["architecture"]), self.families)
        self.order = self.verdict.order
        self.thresholds = thresholds[~thresholds["architecture"].isin(self.ablation["architecture"])]
        self.curves = curve_runs(store.table("curves"), self.order)
        self.diagnostics = Diagnostics.of(store, self.order, self.split, self.evidence[self.split]["matches"],
                                          self.thresholds)  # fmt: skip

    def _verdict(
        self, split: str, rows: set[str], families: dict[str, str], candidates: dict[str, str] | None = None
    ) -> Verdict:
        """The verdict over some rows of one split's evidence."""
        counts, matches = (self.evidence[split][name] for name in EVIDENCE)
        return Verdict.of(counts[counts["architecture"].isin(rows)], matches[matches["architecture"].isin(rows)],
                          self.weights, families, candidates)  # fmt: skip

    @property
    def runs(self) -> int:
        """The most training runs (seeds x folds) any row has."""
        return max(self.verdict.replicates.runs.values())

    def with_variants(self) -> pd.DataFrame:
        """The evaluated split's per-type and weighted score rows of the entries and their ablation variants."""
        variants = self.variant_scores[self.variant_scores["split"] == self.split]
        return pd.concat([self.per_type, self.weighted, variants])

    def per_particle_table(self) -> str:
        """Precision, recall, F1 and F4 per particle type and architecture (mean ± std over runs)."""
        rows = []
        for particle in dict.fromkeys(self.per_type["particle_type"]):
            for arch in self.order:
                found = self.per_type[
                    (self.per_type["particle_type"] == particle) & (self.per_type["architecture"] == arch)
                ]
                if not found.empty:
                    rows.append([particle, arch, *[mean_std(found[m]) for m in METRICS]])
        return table(rows, ["Particle", "Architecture", "Precision", "Recall", "F1", "F4"])

    def summary(self) -> pd.DataFrame:
        """One row per architecture, best first: the statistic, its interval, its group, its training runs and the
        median training seconds it cost, an ensemble's its members' (the machine-readable summary, summary.csv)."""
        found, training = self.verdict, costs.training_seconds(self.resources)
        return pd.DataFrame(
            [
                {
                    "architecture": row,
                    "mean": found.replicates.observed[row],
                    **dict(zip(("low", "high"), found.replicates.interval(row), strict=True)),
                    "group": found.groups[row],
                    "runs": found.replicates.runs[row],
                    "train_seconds_total": training.get(row, np.nan),
                }
                for row in found.order
            ]
        )

    def summary_table(self) -> str:
        """Per architecture: its group, mean recall, precision and F4 over the scored types, the competition score
        with its interval and the training seconds it cost; bold only for a best row the suite tells apart from every
        other."""
        scored = self.per_type[self.per_type["particle_type"].map(self.weights).fillna(1.0) > 0]
        best, rows = self.verdict.resolved_best(), []
        for _, row in self.summary().iterrows():
            arch = row["architecture"]
            means = scored[scored["architecture"] == arch].groupby(UNIT)[["recall", "precision", "f4"]].mean()
            score = f"{row['mean']:.3f}"
            rows.append([str(row["group"]), arch, *[mean_std(means[m]) for m in ("recall", "precision", "f4")],
                         f"**{score}**" if arch == best else score, interval(row["low"], row["high"]),
                         f"{row['train_seconds_total']:.0f}", str(row["runs"])])  # fmt: skip
        header = ["Group", "Architecture", "Recall", "Precision", "Mean F4", "Competition score",
                  f"{CONFIDENCE:.0%} interval", "Training (s)", "Runs"]  # fmt: skip
        return table(rows, header)

    def training_note(self) -> str:
        """What the summary's training seconds are: an ensemble's cost is the sum of its members' training."""
        return (f"Training (s): the median over runs of the seconds a row spent training, on {device(self.manifest)}; "
                "an ensemble's is the sum of its members' training, reused from the entries that trained them or "
                "trained in its own job, so every row stands at its real cost (as in f4_vs_training.png).")  # fmt: skip

    def curve_lines(self) -> list[str]:
        """The learning-curve section: what the curves show, which row learns fastest, whether a longer budget could
        change the order, and each row's val score at each fraction of its bound; nothing when no job stored curves."""
        if self.curves.empty:
            return []
        points = curve_points(self.curves)
        return [
            "## Learning curves",
            "",
            "Learning curves: val score against training seconds (learning_curves.png). Each row that records them is "
            "scored on val (thresholds tuned there) after each fraction of its epoch bound, against the training "
            "seconds spent by then (the evaluation's own seconds excluded: see Harness overhead); the lines are means "
            "over runs, the faint ones each run. Which architecture learns fastest and whether a longer budget would "
            "change the order:",
            "",
            *_pace_lines(Pace.of(points)),
            "",
            _curve_table(points),
            "",
        ]

    def verdict_lines(self) -> list[str]:
        """What the interval covers, how the rows group, and what this suite's size can resolve."""
        found = self.verdict
        tomograms, references = evaluated_references(self.evidence[self.split]["counts"], self.weights)
        best, leaders = found.resolved_best(), found.leaders()
        lines = [
            f"Interval: the {CONFIDENCE:.0%} percentile interval of a hierarchical bootstrap ({REPLICATES:,} "
            f"replicates) that redraws the {self.split} tomograms, the particles within them (Poisson weights on "
            "every reference and false positive) and each row's training runs (seeds) at once; a training run's "
            "score pools its tomograms (micro), a row's is the mean over its runs. With n seeds the bootstrap "
            "shrinks their spread by (n - 1) / n, and a row that found every reference (or none) without false "
            "positives gets an interval of zero width."
        ]
        if len(found.order) < 2:
            return lines
        said = (f"`{best}` is resolved as the best row." if best else
                f"The suite cannot tell apart the best rows: {', '.join(f'`{r}`' for r in leaders)} "
                "(group a).")  # fmt: skip
        return [
            lines[0] + f" Groups: rows sharing a letter cannot be told apart (their paired difference is not resolved "
            f"at {ALPHA:.0%} family-wise error, Holm-corrected over every pair); bold marks a best row resolved from "
            f"every other. {said}",
            "",
            f"What this suite can resolve: with {tomograms} {self.split} tomogram(s) holding {references} references "
            f"of scored types and up to {self.runs} training run(s) per row, a paired difference must exceed about "
            f"{found.resolvable:.3f} to be resolved (median over pairs of the half-width of the difference's "
            f"interval at Holm's strictest level, {ALPHA:.0%} / {len(found.differences)} pairs).",
        ]

    def paired_table(self) -> str | None:
        """Each pair of rows: the difference on the same test tomograms, its interval, the probability of
        improvement and the Holm-adjusted p-value."""
        if len(self.order) < 2:
            return None
        rows = [[f"{d.first} - {d.second}", f"{d.mean:+.3f}", interval(d.low, d.high, signed=True),
                 f"{d.improvement:.2f}", f"{d.adjusted:.3f}", "yes" if d.resolved else "no"]
                for d in self.verdict.differences]  # fmt: skip
        header = ["Pair", "Difference", f"{CONFIDENCE:.0%} interval (unadjusted)", "P(first beats second)",
                  "Holm-adjusted p", "Resolved"]  # fmt: skip
        return table(rows, header)

    def tomogram_table(self) -> str:
        """The competition score of each architecture on each evaluated tomogram, with its references of scored
        types."""
        counts = self.evidence[self.split]["counts"]
        scores = tomogram_scores(counts, self.weights)
        folds = scores.index.get_level_values("fold").nunique() > 1
        rows = []
        for fold, run in scores.index:
            references = evaluated_references(counts[counts["run"] == run], self.weights)[1]
            rows.append([*([fold] if folds else []), run, str(references),
                         *[f"{scores.at[(fold, run), arch]:.3f}" for arch in self.order]])  # fmt: skip
        return table(rows, [*(["Fold"] if folds else []), "Run", "References", *self.order])

    def transfer_table(self) -> str | None:
        """Per architecture: the score at the val-tuned thresholds beside the oracle's (best on the evaluated split)."""
        if self.split == "val":
            return None
        transfer = threshold_transfer(self.weighted, self.thresholds, self.weights)
        rows = [[arch, f"{transfer.at[arch, 'tuned']:.3f}", f"{transfer.at[arch, 'oracle']:.3f}",
                 f"{transfer.at[arch, 'price']:+.3f}"] for arch in self.order if arch in transfer.index]  # fmt: skip
        return table(rows, ["Architecture", "At the val-tuned thresholds", "Oracle: best thresholds on test (never "
                            "used)", "Price of tuning on val"])  # fmt: skip

    def configuration_table(self) -> str:
        """Per row: its plug-in, the options it ran that differ from the plug-in's defaults, its epoch bound and the
        precision it trained in."""
        entries, rows = self.manifest.get("entries", {}), []
        for arch in self.order:
            entry = entries.get(arch, {})
            changed = entry.get("differences")
            said = ("not recorded" if changed is None else
                    "; ".join(f"`{k}` {v['value']} (default {v['default']})" for k, v in changed.items())
                    or "none")  # fmt: skip
            precision = ", ".join(sorted(set(self.resources.loc[self.resources["architecture"] == arch,
                                                                "compute_precision"].dropna()))) or "-"  # fmt: skip
            bound = self.manifest["epoch_bounds"].get(arch)
            rows.append([arch, f"`{entry.get('architecture', '?')}`", said, str(bound or "-"), precision])
        return table(rows, ["Architecture", "Plug-in", "Differences from its defaults", "Epoch bound", "Precision"])

    def precision_note(self) -> str:
        """Which rows trained in a precision other than the suite's, named; or that none did."""
        suite = self.manifest.get("compute", {}).get("precision")
        ran = self.resources.dropna(subset=["compute_precision"]).groupby("architecture")["compute_precision"]
        other = {arch: ", ".join(sorted(set(found) - {suite})) for arch, found in ran if set(found) - {suite}}
        if suite is None or not other:
            return f"Every row trained in the suite's precision ({suite or 'not recorded'})."
        named = "; ".join(f"{arch} in {found}" for arch, found in other.items())
        return (f"Not in the suite's precision ({suite}): {named}; the plug-in chose it (its config or its library), "
                "so under a binding cap these rows got another number of steps.")  # fmt: skip

    def validation_table(self) -> str | None:
        """The val competition score per architecture with its interval: the figure settings are chosen by."""
        if self.split == "val" or self.evidence["val"]["counts"].empty:
            return None
        found = self._verdict("val", set(self.order), self.families)
        rows = [[arch, f"{found.replicates.observed[arch]:.3f}", interval(*found.replicates.interval(arch)),
                 str(found.groups[arch])] for arch in self.order]  # fmt: skip
        return table(rows, ["Architecture", "Val competition score", f"{CONFIDENCE:.0%} interval", "Val group"])

    def ablated(self) -> list[str]:
        """The entries with ablation variants, best first."""
        return [arch for arch in self.order if (self.ablation["base"] == arch).any()]

    def variants(self, base: str) -> list[str]:
        """The ablation variants of an entry, in the suite's order."""
        return list(dict.fromkeys(self.ablation.loc[self.ablation["base"] == base, "variant"]))

    def ablation_particle_table(self, base: str) -> str:
        """The study's table for one entry: per particle type, the base F4 and each variant's F4 with its change
        (means over runs), and the same for the competition score."""
        means = self.with_variants().groupby(["architecture", "particle_type"])["f4"].mean()
        rows = []
        for particle in [*dict.fromkeys(self.per_type["particle_type"]), "weighted"]:
            name = "**competition score**" if particle == "weighted" else particle
            weight = "" if particle == "weighted" else f" ({self.weights.get(particle, 1.0):g})"
            start = means.get((base, particle), np.nan)
            cells = [f"{means.get((f'{base}+{v}', particle), np.nan) - start:+.3f}" for v in self.variants(base)]
            values = [f"{means.get((f'{base}+{v}', particle), np.nan):.3f} ({cell})" for v, cell in
                      zip(self.variants(base), cells, strict=True)]  # fmt: skip
            rows.append([name + weight, f"{start:.3f}", *values])
        header = ["Particle (weight)", f"{base} F4", *(f"+{v}: F4 (change)" for v in self.variants(base))]
        return table(rows, header)

    def ablation_variant_table(self, base: str) -> str:
        """Each variant of an entry: its steps, the change of the competition score with its interval (paired on the
        same fitted models and tomograms), the change on val (what chose the settings), its extra post-processing
        time and its candidates."""
        rows, family = [], [base, *(f"{base}+{v}" for v in self.variants(base))]
        same = {label: base for label in family}  # the same fitted models and, before the variant's steps, candidates
        evaluated = self._verdict(self.split, set(family), same, same)
        val = self._verdict("val", set(family), same, same) if self.split == "test" else None
        for variant in self.variants(base):
            label = f"{base}+{variant}"
            found = self.ablation[self.ablation["architecture"] == label]
            change = _change(evaluated, label, base)
            candidates = f"{found['candidates_before'].mean():.0f} → {found['candidates_after'].mean():.0f}"
            rows.append([
                f"+{variant}",
                steps(found["steps"].iloc[0]),
                f"{change.mean:+.3f}",
                interval(change.low, change.high, signed=True),
                f"{_change(val, label, base).mean:+.3f}" if val else "(scored on val)",
                mean_std(found["postprocess_seconds"], 3),
                mean_std(found["fit_seconds"], 2),
                candidates,
            ])  # fmt: skip
        header = ["Variant", "Steps", f"Change of the {self.split} score", f"{CONFIDENCE:.0%} interval",
                  "Change of the val score", "Extra post-processing per tomogram (s)", "Fit (s)",
                  "Candidates before → after"]  # fmt: skip
        return table(rows, header)

    def ablation_lines(self) -> list[str]:
        """The ablation section: per entry with variants, the two tables."""
        if not self.ablated():
            return []
        lines = [
            "## Post-processing ablation",
            "",
            "Each variant applies more steps to the same candidates of the same fitted model (no retraining), and "
            "its score thresholds are tuned on val separately. Changes are against the entry without the variant, "
            "paired on the same fitted models and tomograms, with the interval of the verdict; extra "
            "post-processing is the median per tomogram of the variant's steps (their fit "
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

    def markdown(self, plots: list[str]) -> str:
        """The report's README: conditions, the verdict, the per-particle and per-tomogram evidence, the costs, the
        plots, jobs without results."""
        unfinished = [
            f"- `{key}`: {job['status']}" + (f": {job['error']}" if job.get("error") else "")
            for key, job in self.manifest["jobs"].items()
            if job["status"] != "ok"
        ]
        repeats = self.manifest["repeats"]
        warm_up = "the val runs" if self.split == "test" else "the first val run"
        paired, validation, transfer = self.paired_table(), self.validation_table(), self.transfer_table()
        val_tomograms, val_references = evaluated_references(self.evidence["val"]["counts"], self.weights)
        return "\n".join(
            [
                f"# Suite `{self.manifest['suite']['name']}`",
                "",
                f"Generated by `bench report` from `{self.store.folder}`; do not edit by hand.",
                "",
                *self.conditions(),
                "",
                f"## Comparative summary ({self.split} runs)",
                "",
                "Recall, precision and F4 are means over the scored particle types (weight > 0) and over runs; the "
                "competition score is the weighted F4 (see Metric above).",
                "",
                self.summary_table(),
                "",
                self.training_note(),
                "",
                *self.verdict_lines(),
                "",
                *(
                    [
                        "### Paired differences of the competition score",
                        "",
                        f"Each difference is computed on the same bootstrap draws of the {self.split} tomograms and "
                        "their particles (paired on them, not on seed numbers: the seeds of two architectures share "
                        "nothing but the number; an ensemble shares its seeds' draws with the entries whose models it "
                        "reused). The interval is the plain 95% one; Resolved: the Holm-adjusted p (two-sided, over "
                        "every pair) is below 5%. P(first beats second): the probability that a new training run of "
                        "the first scores higher than one of the second on a new draw of the test set (ties count "
                        "half, as rliable's probability of improvement).",
                        "",
                        paired,
                        "",
                    ]
                    if paired
                    else []
                ),
                "## What each row ran",
                "",
                "The options each row's plug-in ran with that differ from its defaults, its epoch bound and the "
                "precision it trained in.",
                "",
                self.configuration_table(),
                "",
                self.precision_note(),
                "",
                f"## Per-tomogram scores ({self.split} runs)",
                "",
                "The competition score of each architecture on each tomogram alone (mean over runs), from the stored "
                "per-tomogram counts (counts.csv); a type without references in a tomogram scores F4 0 there, as in "
                "the competition's metric, so a perfect picker scores below 1 on a tomogram that lacks a type.",
                "",
                self.tomogram_table(),
                "",
                *(
                    [
                        "## Threshold transfer",
                        "",
                        f"Score thresholds are tuned per particle type on the val runs ({val_tomograms} tomogram(s), "
                        f"{val_references} references of scored types), pooled, then frozen. Beside the test score at "
                        "those thresholds "
                        "stands the test score at the thresholds that would have been best on test: an oracle, shown "
                        "for the price of tuning on val and never used for any choice (means over runs).",
                        "",
                        transfer,
                        "",
                    ]
                    if transfer
                    else []
                ),
                f"## Per-particle results ({self.split} runs)",
                "",
                self.per_particle_table(),
                "",
                *(self.diagnostics.lines() if self.diagnostics else []),
                *(
                    [
                        "## Validation scores",
                        "",
                        "The competition score on the val runs (thresholds tuned there), with the same bootstrap: the "
                        "figure suite settings are chosen by.",
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
                costs.training_table(self.resources, self.order),
                *costs.parts_notes(self.resources, self.order),
                "",
                *self.curve_lines(),
                "## Memory (GB)",
                "",
                "Peaks above the job's baseline (taken after imports and data opening, before the model is built; for "
                "inference, with the fitted model, before the first prediction) are the figures to compare; the whole "
                "process's peak stands beside them. "
                "CPU: resident memory; GPU: torch's allocator.",
                "",
                costs.memory_table(self.resources, self.order),
                "",
                "## Inference latency",
                "",
                f"Measured on {device(self.manifest)}. Each {self.split} tomogram predicted {repeats} time(s) after "
                "a warm-up on "
                f"{warm_up}; medians over tomograms x repeats, spread (±) the IQR. Read: time in `Tomogram.read` "
                "(zarr decoding and checks); model: predict less its reads (the plug-in's own peak finding "
                "included); post-processing: the harness's checks and the suite's steps (timed once per tomogram, "
                "not per repeat). Per slice = model seconds / z-slices (the reference study's unit).",
                "",
                costs.latency_table(self.resources, self.order),
                "",
                "## Harness overhead",
                "",
                "Job: the job process's wall time, from its start to its result; fit (the job's own, without the "
                "parts it reused), curve evaluation (scoring val at each learning-curve point, kept out of the "
                "training time; shown when a job recorded curves), predict (every prediction: warm-up and "
                "repeats), post-processing (the suite's "
                "steps and ablation variants: fitted, then applied to every predicted tomogram) and scoring "
                "(threshold tuning and the metric, per variant too) are the work measured; the rest "
                f"is the harness's overhead (process start, imports, data opening, model save, write-back), "
                "of which the process's start and the imports of the harness and the plug-in are shown apart: "
                "a floor every job pays, whatever it does. "
                f"Target at most {costs.OVERHEAD_TARGET:.0%}. Over every job of the suite: "
                f"{self.resources['overhead_seconds'].sum() / self.resources['job_seconds'].sum():.1%}.",
                "",
                costs.overhead_table(self.resources, self.order),
                "",
                "## Plots",
                "",
                *[f"![{name}]({name})" for name in plots],
                "",
                *(["## Failed or unfinished jobs", "", *unfinished, ""] if unfinished else []),
            ]
        )

    def conditions(self) -> list[str]:
        """Bullet lines stating the data, split, budget, seeds, metric, device and code of the run."""
        return conditions(self.manifest, self.split, self.runs, self.weights, self.hard)

    def plots(self) -> dict[str, Figure]:
        """The figures, by file name."""
        cpu = self.manifest["device"] == "cpu"
        tomograms = tomogram_scores(self.evidence[self.split]["counts"], self.weights)
        return {
            "verdict.png": plots.verdict(self.verdict, self.weighted, tomograms, self.split),
            "f4_per_particle.png": plots.per_particle(self.per_type, self.order, self.split, self.weights),
            "f4_vs_latency.png": plots.tradeoff(
                self.weighted, self.resources, "infer_seconds_per_slice", plots.latency_label(cpu), self.order
            ),
            "f4_vs_memory.png": plots.tradeoff(
                self.weighted, self.resources, "peak_memory_gb", plots.memory_label(self.resources), self.order
            ),
            "f4_vs_training.png": plots.tradeoff(
                self.weighted, self.resources, "train_seconds", plots.training_label(cpu), self.order
            ),
            "latency_breakdown.png": plots.latency(self.resources, self.order, cpu),
            **({"ablation.png": self.ablation_plot()} if self.ablated() else {}),
            **({"learning_curves.png": self.curve_plot(cpu)} if not self.curves.empty else {}),
            **(self.diagnostics.plots() if self.diagnostics else {}),
        }

    def curve_plot(self, cpu: bool) -> Figure:
        """Val score against training seconds for every row with learning curves."""
        return plots.learning_curves(self.curves, curve_points(self.curves), self.order, cpu)

    def ablation_plot(self) -> Figure:
        """Per entry with variants, the change of F4 per particle type and of the competition score, per variant."""
        particles = list(dict.fromkeys(self.per_type["particle_type"]))
        return plots.ablation(
            self.with_variants(), particles, {base: self.variants(base) for base in self.ablated()}, self.split
        )


def _pace_lines(pace: Pace) -> list[str]:
    """Bullet lines: the row that reached the score every row reaches soonest, the order at the end of the bounds,
    and whether a longer budget could reorder the rows."""
    rows = pace.final_order
    if len(rows) < 2:
        return [f"- Only `{rows[0]}` records a curve: nothing to compare it with."]
    soonest = sorted(rows, key=pace.seconds_to_target.__getitem__)
    reached = ", ".join(f"`{row}` {pace.seconds_to_target[row]:.0f} s" for row in soonest)
    final = " > ".join(f"`{row}` {pace.final_score[row]:.3f}" for row in rows)
    return [
        f"- Fastest: `{pace.fastest}` first reached val score {pace.target:.3f} (the best every row reaches; "
        f"DAWNBench's time to accuracy): {reached}.",
        f"- At the end of their bounds: {final}.",
        f"- {_longer_budget(pace)}.",
    ]


def _longer_budget(pace: Pace) -> str:
    """Whether a longer budget could change the order: each row's gain over its last step, and the rows below that
    gained faster than a row above, with the time they would take to pass it at those rates."""
    gains = ", ".join(f"`{row}` {60 * pace.last_gain[row]:+.3f}" for row in pace.final_order if row in pace.last_gain)
    passes = [f"`{low}` passes `{high}` after {seconds / 60:.1f} more minutes" for low, high, seconds in pace.closing()]
    beyond = "linear at the last step's rate, which a flattening curve does not keep; the curves cannot say more"
    said = f"gain of val score per training minute over the last step: {gains}"
    if passes:
        return f"A longer budget could change the order ({said}): {'; '.join(passes)} ({beyond})"
    return f"No sign that a longer budget would change the order: no row gained faster than a row above it ({said})"


def _curve_table(points: pd.DataFrame) -> str:
    """Per row, its mean val score (± std over runs), epochs and mean training seconds at each of its points: the
    rows' n-th points side by side (headed by the fractions of their bounds they fall at), their ends last."""
    places = sorted(points["place"].unique())
    cells = points.set_index(["architecture", "place"])
    rows = [[row, *(_curve_cell(cells.loc[(row, p)]) if (row, p) in cells.index else "-" for p in places)]
            for row in dict.fromkeys(points["architecture"])]  # fmt: skip
    return table(rows, ["Row", *(_curve_header(points[points["place"] == p], p == END) for p in places)])


def _curve_header(column: pd.DataFrame, end: bool) -> str:
    """A column's heading: the fractions of their bounds its points fall at (rows' bounds differ)."""
    low, high = column["fraction"].min(), column["fraction"].max()
    said = f"{low:.0%}" if round(100 * low) == round(100 * high) else f"{low:.0%}-{high:.0%}"
    return f"End ({said} of the bound)" if end else f"{said} of the bound"


def _curve_cell(point: pd.Series) -> str:
    """A curve point as 'score ± std (epoch e, seconds s)'."""
    spread = f" ± {point['spread']:.3f}" if point["jobs"] > 1 else ""
    return f"{point['score']:.3f}{spread} (epoch {point['epoch']:.0f}, {point['seconds']:.0f} s)"


def _change(found: Verdict, variant: str, base: str) -> Difference:
    """The difference variant - base from a verdict that compared them in either order."""
    try:
        return found.difference(variant, base)
    except KeyError:
        return found.difference(base, variant).reversed()


def _without_evidence(weighted: pd.DataFrame, counts: pd.DataFrame) -> str | None:
    """The jobs (label, seed, fold) with scores but no per-tomogram counts, named, or None."""
    have = set(zip(counts["architecture"], counts["seed"].astype(int), counts["fold"].astype(str), strict=True))
    jobs = zip(weighted["architecture"], weighted["seed"].astype(int), weighted["fold"].astype(str), strict=True)
    missing = [f"{label} seed {seed} fold {fold}" for label, seed, fold in jobs if (label, seed, fold) not in have]
    return ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "") if missing else None
