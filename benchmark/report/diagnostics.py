"""The report's picking diagnostics, from each job's stored candidates, its val-tuned thresholds and the references'
positions: threshold curves, localisation, the radius sweep, counts and duplicates, and what every miss looks like.

`metrics.diagnostics` and `metrics.thresholds` compute; this module gathers the stored data, averages over a row's
runs and arranges tables; `benchmark.report.diagnostic_plots` draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchmark.coords import XYZ
from benchmark.particles import ParticleTable, ParticleType
from benchmark.report import diagnostic_plots
from benchmark.report.markdown import table
from benchmark.results import JOB, ResultsStore
from benchmark.views import load_views
from metrics.diagnostics import OFFSETS, RADIUS_FRACTIONS, count_errors, localisation, nearest_picks, radius_sweep
from metrics.fbeta import DISTANCE_MULTIPLIER
from metrics.thresholds import apply_thresholds, threshold_curves

CANDIDATES = "candidates.csv"  # a job's scored candidates of every split it predicted, after its post-processing


@dataclass(frozen=True)
class JobPicks:
    """One job's evidence on the evaluated split: the references (Å), its candidates and the picks its val-tuned
    thresholds keep."""

    architecture: str
    seed: int
    fold: str
    references: pd.DataFrame  # experiment, particle_type, x, y, z
    candidates: pd.DataFrame  # experiment, particle_type, x, y, z, score
    thresholds: pd.DataFrame  # particle_type, threshold

    @cached_property
    def kept(self) -> pd.DataFrame:
        """The candidates at the val-tuned thresholds."""
        return apply_thresholds(self.candidates, self.thresholds)

    def key(self) -> dict:
        """The job's key columns."""
        return {"architecture": self.architecture, "seed": self.seed, "fold": self.fold}


def particle_table(manifest: dict) -> ParticleTable:
    """The particle table a results folder was scored with (radius and weight), from its manifest."""
    return ParticleTable(
        ParticleType(p["name"], float(p["radius"]), label, float(p["weight"]), bool(p.get("hard", False)))
        for label, p in enumerate(manifest["particles"], start=1)
    )


class Diagnostics:
    """The diagnostics of one results folder's rows on its evaluated split."""

    def __init__(self, jobs: list[JobPicks], particles: ParticleTable, order: list[str], split: str, views: dict):
        self.jobs, self.particles, self.order, self.split, self.views = jobs, particles, order, split, views

    @classmethod
    def of(
        cls, store: ResultsStore, order: list[str], split: str, matches: pd.DataFrame, thresholds: pd.DataFrame
    ) -> Diagnostics | None:
        """Gather every row's jobs; None for results that kept no reference positions or no candidates (older
        folders)."""
        matches = matches[matches["architecture"].isin(order)]
        if matches.empty or matches[XYZ].isna().any().any():
            return None
        jobs = []
        for (label, seed, fold), references in matches.groupby(JOB, sort=False):
            path = store.predictions_dir(label, int(seed), str(fold)) / CANDIDATES
            if not path.is_file():
                return None
            candidates = pd.read_csv(path, dtype={"experiment": str, "particle_type": str})
            runs = set(references["run"])
            mine = (thresholds[JOB].astype(str) == [label, str(seed), str(fold)]).all(axis=1)
            truth = references.rename(columns={"run": "experiment"})[["experiment", "particle_type", *XYZ]]
            found = candidates[candidates["experiment"].isin(runs)].reset_index(drop=True)
            jobs.append(
                JobPicks(
                    label, int(seed), str(fold), truth, found, thresholds.loc[mine, ["particle_type", "threshold"]]
                )
            )
        return cls(jobs, particle_table(store.manifest), order, split, load_views(store.folder))

    def _each(self, compute) -> pd.DataFrame:
        """A per-job table computed for every job, with the job's key columns in front."""
        return pd.concat([compute(job).assign(**job.key()) for job in self.jobs], ignore_index=True)

    @cached_property
    def curves(self) -> pd.DataFrame:
        """Per job and type, the evaluated split's threshold curve of its candidates."""
        return self._each(lambda job: threshold_curves(job.references, job.candidates, self.particles))

    @cached_property
    def tuned_points(self) -> pd.DataFrame:
        """Per job and type, where its val-tuned threshold falls on its curve: the evaluated split's precision, recall
        and F4 at that threshold (nothing kept where it lies above every score)."""
        rows = []
        for job in self.jobs:
            for particle_type, threshold in job.thresholds.itertuples(index=False):
                curve = self.curves[(self.curves[JOB] == list(job.key().values())).all(axis=1)]
                curve = curve[(curve["particle_type"] == particle_type) & (curve["threshold"] >= threshold)]
                point = curve.iloc[0] if len(curve) else pd.Series({"precision": 0.0, "recall": 0.0, "f4": 0.0})
                rows.append({**job.key(), "particle_type": particle_type, "threshold": threshold,
                             **point[["precision", "recall", "f4"]].to_dict()})  # fmt: skip
        return pd.DataFrame(rows)

    @cached_property
    def nearest(self) -> pd.DataFrame:
        """Per job and reference, its nearest kept pick (distance, offset, hit)."""
        return self._each(lambda job: nearest_picks(job.references, job.kept, self.particles))

    @cached_property
    def sweep(self) -> pd.DataFrame:
        """Per job, matching radius and type (and `weighted`), the F4 of its kept picks."""
        return self._each(lambda job: radius_sweep(job.references, job.kept, self.particles))

    @cached_property
    def counts(self) -> pd.DataFrame:
        """Per job, tomogram and type: references, kept picks, count error and duplicates."""
        return self._each(lambda job: count_errors(job.references, job.kept, self.particles))

    def localisation_table(self) -> str:
        """Per type and row with hits, over every run's hits pooled: hits per run, the median and 90th percentile
        distance to the reference and the mean offset along z, y and x, in Å."""
        rows = []
        for particle in self.particles.names:
            for arch in self.order:
                found = self.nearest[
                    (self.nearest["architecture"] == arch) & (self.nearest["particle_type"] == particle)
                ]
                if not found["hit"].any():
                    continue
                runs = found[JOB].drop_duplicates().shape[0]
                stats = localisation(found).iloc[0]
                cells = [
                    f"{stats[c]:.1f}" for c in ("median_distance", "p90_distance", *(f"mean_{a}" for a in OFFSETS))
                ]
                rows.append([particle, arch, f"{stats['hits'] / runs:.1f} / {len(found) / runs:.0f}", *cells])
        header = ["Particle", "Architecture", "Hits / references (per run)", "Median distance (Å)",
                  "90th percentile (Å)", "Mean z offset (Å)", "Mean y offset (Å)", "Mean x offset (Å)"]  # fmt: skip
        return table(rows, header)

    def sweep_table(self) -> str:
        """Per row, the competition score (mean over runs) at each matching radius."""
        weighted = self.sweep[self.sweep["particle_type"] == "weighted"]
        means = weighted.groupby(["architecture", "fraction"])["f4"].mean()
        rows = [[arch, *(f"{means.get((arch, f), np.nan):.3f}" for f in RADIUS_FRACTIONS)] for arch in self.order]
        header = [f"{f:g} x radius" + (" (the metric's)" if f == DISTANCE_MULTIPLIER else "") for f in RADIUS_FRACTIONS]
        return table(rows, ["Architecture", *header])

    def count_table(self) -> str:
        """Per tomogram and type: its references, and per row the kept picks with the count error (means over runs)."""
        means = self.counts.groupby(["experiment", "particle_type", "architecture"])[["kept", "count_error"]].mean()
        references = self.counts.groupby(["experiment", "particle_type"])["references"].first()
        rows = []
        for (run, particle), count in references.items():
            cells = [f"{means.at[(run, particle, a), 'kept']:.1f} ({means.at[(run, particle, a), 'count_error']:+.1f})"
                     if (run, particle, a) in means.index else "-" for a in self.order]  # fmt: skip
            rows.append([run, particle, str(count), *cells])
        return table(rows, ["Run", "Particle", "References", *self.order])

    def duplicate_table(self) -> str:
        """Per row and type, the share of kept picks within one radius of a better-scored pick of the same type (over
        every run and tomogram), and the row's mean absolute count error."""
        sums = self.counts.groupby(["architecture", "particle_type"])[["duplicates", "kept"]].sum()
        error = self.counts.assign(error=self.counts["count_error"].abs()).groupby("architecture")["error"].mean()
        rows = []
        for arch in self.order:
            cells = []
            for particle in self.particles.names:
                duplicates, kept = sums.loc[(arch, particle)] if (arch, particle) in sums.index else (0, 0)
                cells.append(f"{duplicates / kept:.1%} of {kept:.0f}" if kept else "-")
            rows.append([arch, *cells, f"{error.get(arch, np.nan):.1f}"])
        return table(rows, ["Architecture", *self.particles.names, "Mean abs. count error (picks)"])

    def lines(self) -> list[str]:
        """The report's diagnostics section."""
        split, runs = self.split, len(set(self.nearest["experiment"]))
        return [
            f"## Picking diagnostics ({split} runs)",
            "",
            "From each job's stored candidates (after its post-processing), its val-tuned thresholds and the "
            "references' positions; nothing is predicted again.",
            "",
            "### Threshold behaviour",
            "",
            f"threshold_<particle>.png, one per particle type: the precision-recall curve of every row on the {split} "
            "runs as its score threshold falls, and F4 against the threshold (each row on its own axis: the rows' "
            "scores are on different scales); the dot on each curve and the dashed line mark the threshold tuned on "
            "val. A thin line per training run.",
            "",
            "### Localisation",
            "",
            "For each reference a kept pick found (the nearest kept pick of its type within the metric's reach, half "
            "the radius): its distance and its offset, pick minus reference, along z, y and x. A systematic shift "
            "(a z shift from the missing wedge, a half-voxel shift) shows as a non-zero mean; pooled over runs. A row "
            "without hits of a type is left out.",
            "",
            self.localisation_table(),
            "",
            "The competition score when a reference counts as found within a fraction of its radius (the picks kept "
            "at the val-tuned thresholds; means over runs; per type in localisation.png). A row that finds "
            "particles but places them loosely gains from 0.5 to 1.0 x radius; a row that misses them does not.",
            "",
            self.sweep_table(),
            "",
            "### Counts and duplicates",
            "",
            f"Per {split} tomogram and type: the references and each row's kept picks with the count error (kept - "
            "references) in brackets, means over runs.",
            "",
            self.count_table(),
            "",
            "Duplicates: the share of a row's kept picks that lie within one radius of a better-scored kept pick of "
            "the same type, over every run and tomogram (of how many kept picks); the mean absolute count error is "
            "over tomograms, types and runs.",
            "",
            self.duplicate_table(),
            "",
            "### Every miss",
            "",
            f"misses_<run>.png, one per {split} tomogram ({runs}): per row (its first training run), the tomogram cut "
            "along z into slabs, each shown as its mean, with every pick and reference of the slab: hits, false "
            "positives and missed references in distinct shapes and colours (named in the legend)."
            + ("" if self.views else " This results folder keeps no tomogram views: the marks stand on a blank field."),
            "",
        ]

    def plots(self) -> dict[str, Figure]:
        """The threshold figure of each type with references, the radius sweep, and each tomogram's misses."""
        figures = {}
        scored = self.curves.groupby("particle_type")["references"].max()
        for particle in self.particles.names:
            if scored.get(particle, 0) > 0:
                figures[f"threshold_{particle}.png"] = diagnostic_plots.thresholds(
                    self.curves[self.curves["particle_type"] == particle],
                    self.tuned_points[self.tuned_points["particle_type"] == particle],
                    particle, self.order, self.split,
                )  # fmt: skip
        figures["localisation.png"] = diagnostic_plots.radius_sweep(self.sweep, self.order, self.particles, self.split)
        for run in sorted(set(self.nearest["experiment"])):
            figures[f"misses_{run}.png"] = diagnostic_plots.misses(self.marks(run), self.views.get(run), run,
                                                                    self.order, self.particles)  # fmt: skip
        return figures

    def marks(self, run: str) -> dict[str, pd.DataFrame]:
        """Per row, from its first run that evaluated this tomogram: every kept pick and reference of it, marked
        hit (the nearest kept pick of a found reference), false positive, or missed (a reference none found)."""
        marks = {}
        for arch in self.order:
            jobs = sorted((job for job in self.jobs if job.architecture == arch and
                           run in set(job.references["experiment"])), key=lambda job: (job.seed, job.fold))  # fmt: skip
            if not jobs:
                continue
            job = jobs[0]
            kept = job.kept[job.kept["experiment"] == run]
            nearest = nearest_picks(job.references[job.references["experiment"] == run], kept, self.particles)
            hits = set(nearest.loc[nearest["hit"], "pick"])
            picks = kept.assign(mark=np.where(kept.index.isin(hits), "hit", "false positive"))
            missed = nearest.loc[~nearest["hit"], ["particle_type", *XYZ]].assign(mark="missed")
            marks[f"{arch} (seed {job.seed})"] = pd.concat([picks[["particle_type", *XYZ, "mark"]], missed])
        return marks
