"""A weighted-vote ensemble of any registered architectures: the reference study's YOLOv8 + 3D U-Net row as a config.

`members` lists suite-style entries (`name`, `config`, `weight`, optional `epochs` and `label`) of any registered
architectures, third-party ones included. A member equal (name, config, epoch bound) to another entry of the same
suite run reuses that entry's saved model: the runner runs such entries first and hands their models over. Other
members are trained here, each under its own tracker with the suite's cap (the job's cap is then counted once per
member trained here, plus once). Each member predicts its candidates (where a reused member's entry has no
post-processing steps, its job stored them for the tomograms it predicted: those are taken instead); they are
fused by weighted voting in 3D
(`architectures.parts.fusion`): candidates of one type within `distance` x its radius form one cluster, the fused
score is the weighted sum of the members' best scores divided by the sum of weights, so agreement raises it.

Weights are the members' (`weights: given`) or chosen on the val runs (`weights: tune`): every weighting of a grid on
the simplex is fused, thresholded at its own val-tuned thresholds and scored with the competition metric; the best
val score wins (ties: the most even weighting).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from architectures.parts.fusion import fuse_candidates
from benchmark.data import Tomogram
from benchmark.errors import BenchError
from benchmark.files import SAFE_NAME
from benchmark.interface import Architecture, Budget, Sample, Tracker, check_predictions
from benchmark.registry import ARCHITECTURES, register
from metrics.fbeta import score_picks
from metrics.thresholds import apply_thresholds, tune_thresholds

DEFAULTS = {
    "members": [],  # suite-style entries: name, config, weight (default 1), epochs and label (default the name)
    "distance": 0.5,  # candidates within this fraction of the radius vote together
    "weights": "given",  # or "tune": chosen on val over a grid of `weight_steps` steps per unit
    "weight_steps": 4,
}
MEMBER_KEYS = {"name", "config", "weight", "epochs", "label"}
STATE = "ensemble.json"


@register("ensemble")
class Ensemble(Architecture):
    """Members' candidates fused by weighted voting in 3D; members reused from the suite run where they match."""

    kind = "ensemble"
    defaults = DEFAULTS

    def __init__(self, config, particles, device, seed):
        super().__init__(config, particles, device, seed)
        self._build_members()
        self.trained_here: list[str] = []  # labels of the members this ensemble fitted itself

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        """Refuse unknown options, and members that are malformed, unknown or configured with unknown options."""
        super().check_config(config)
        cls.reusable_entries({**DEFAULTS, **config})
        if config.get("weights", "given") not in ("given", "tune"):
            raise BenchError(f"ensemble: weights is 'given' or 'tune', not {config['weights']!r}")

    @classmethod
    def reusable_entries(cls, config: dict[str, Any]) -> list[dict[str, Any]]:
        """The members, checked: each a mapping with a registered `name`, a known config and a weight >= 0."""
        members = config.get("members")
        if not isinstance(members, list) or not members:
            raise BenchError("ensemble: 'members' must list at least one entry (name, config, weight)")
        labels = []
        for index, entry in enumerate(members):
            if not isinstance(entry, dict) or "name" not in entry or set(entry) - MEMBER_KEYS:
                raise BenchError(
                    f"ensemble: member {index} must be a mapping with 'name' and optional "
                    f"{', '.join(sorted(MEMBER_KEYS - {'name'}))}; got {entry!r}"
                )
            weight = entry.get("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
                raise BenchError(f"ensemble: member '{entry['name']}' weight must be a number >= 0, not {weight!r}")
            factory = ARCHITECTURES.get(entry["name"])
            if isinstance(factory, type) and issubclass(factory, Architecture):
                try:
                    factory.check_config(entry.get("config") or {})
                except BenchError as err:
                    raise BenchError(f"ensemble member '{entry['name']}': {err}") from None
            labels.append(str(entry.get("label", entry["name"])))
            if not SAFE_NAME.match(labels[-1]):
                raise BenchError(f"ensemble: member label {labels[-1]!r} must be letters, digits, '.', '_' and '-'")
        if len(set(labels)) != len(labels):
            raise BenchError(f"ensemble: member labels {labels} repeat; give each member a distinct 'label'")
        if sum(float(e.get("weight", 1.0)) for e in members) <= 0:
            raise BenchError("ensemble: the members' weights sum to 0; give at least one a positive weight")
        return members

    @property
    def labels(self) -> list[str]:
        """The members' labels."""
        return [str(e.get("label", e["name"])) for e in self.entries]

    def fit(self, train: Sequence[Sample], val: Sequence[Sample], budget: Budget, tracker: Tracker) -> None:
        """Load the members the runner handed over, train the others under trackers of their own, then (with
        `weights: tune`) choose the weights on val: one epoch."""
        for index, (member, entry, label) in enumerate(zip(self.members, self.entries, self.labels, strict=True)):
            member.workdir = self.workdir / label if self.workdir is not None else None
            member.precision = self.precision
            saved = self.saved_models.get(index)
            if saved is not None:
                member.load(saved.folder)
                continue
            own = Tracker(replace(budget, epochs=entry.get("epochs") or budget.epochs), tracker.synchronize)
            own.start()
            member.fit(train, val, own.budget, own)
            self.trained_here.append(label)
        self.precision = ", ".join(sorted({member.precision for member in self.members}))  # what the members ran in
        for _ in tracker.epochs(samples=len(val), unit="val tomograms"):
            if self.config["weights"] == "tune":
                self.weights = self._tuned_weights(val)
            tracker.log(**{f"weight_{label}": weight for label, weight in zip(self.labels, self.weights, strict=True)})
            break

    def predict(self, tomogram: Tomogram) -> pd.DataFrame:
        """Every member's checked candidates, fused by weighted voting."""
        return fuse_candidates(self._candidates(tomogram), self.weights, self.particles, self.config["distance"])

    def save(self, directory: Path) -> None:
        """Each member in a folder of its own, and the weights with the config."""
        directory.mkdir(parents=True, exist_ok=True)
        for member, label in zip(self.members, self.labels, strict=True):
            member.save(directory / label)
        state = {"config": self.config, "weights": self.weights, "trained_here": self.trained_here}
        (directory / STATE).write_text(json.dumps(state, indent=2))

    def load(self, directory: Path) -> None:
        """Rebuild the members from the saved config and restore each."""
        state = json.loads((directory / STATE).read_text())
        self.config = state["config"]
        self._build_members()
        self.weights, self.trained_here = state["weights"], state["trained_here"]
        for member, label in zip(self.members, self.labels, strict=True):
            member.load(directory / label)

    def _build_members(self) -> None:
        """The members of the config, untrained, and their given weights."""
        self.entries = self.reusable_entries(self.config)
        self.members = [
            ARCHITECTURES.get(e["name"])(e.get("config") or {}, self.particles, self.device, self.seed)
            for e in self.entries
        ]
        self.weights = [float(e.get("weight", 1.0)) for e in self.entries]

    def _candidates(self, tomogram: Tomogram) -> list[pd.DataFrame]:
        """Each member's candidate picks of a tomogram, checked as the runner checks an architecture's: those the
        job of a reused member stored for this tomogram, else the member's prediction."""
        found = []
        for index, (member, label) in enumerate(zip(self.members, self.labels, strict=True)):
            saved = self.saved_models.get(index)
            stored = saved.candidates(tomogram.run) if saved is not None else None
            picks = member.predict(tomogram) if stored is None else stored
            found.append(check_predictions(picks, f"ensemble member {label}", tomogram, self.particles))
        return found

    def _tuned_weights(self, val: Sequence[Sample]) -> list[float]:
        """The grid weighting with the best val competition score, each weighting at its own val thresholds."""
        per_run = [self._candidates(sample.tomogram) for sample in val]
        truth = pd.concat([sample.picks for sample in val], ignore_index=True)
        best, chosen = -1.0, self.weights
        for weights in _simplex(len(self.members), self.config["weight_steps"]):
            fused = pd.concat(
                [
                    fuse_candidates(c, weights, self.particles, self.config["distance"]).assign(experiment=s.run)
                    for c, s in zip(per_run, val, strict=True)
                ],
                ignore_index=True,
            )
            kept = apply_thresholds(fused, tune_thresholds(truth, fused, self.particles))
            score = score_picks(truth, kept, self.particles).weighted
            if score > best + 1e-12:
                best, chosen = score, list(weights)
        return chosen


def _simplex(members: int, steps: int) -> list[tuple[float, ...]]:
    """Weightings on a grid of the simplex (steps per unit), the most even first (it wins ties), none all zero."""
    grid = [c for c in itertools.product(range(steps + 1), repeat=members) if sum(c) == steps]
    grid.sort(key=lambda c: np.ptp(c))
    return [tuple(v / steps for v in c) for c in grid]
