"""Test plug-in: appends a line to the file its config names each time it is fitted or predicts; predicts the
volume's centre."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from benchmark.interface import Architecture
from benchmark.registry import register


@register("test-counting")
class Counting(Architecture):
    """Counts its fits and predictions in `config["log"]`; one candidate per particle type at the volume's centre."""

    kind = "classical"
    defaults: ClassVar[dict] = {"log": "", "score": 1.0}

    def fit(self, train, val, budget, tracker) -> None:
        """Record the fit, one epoch."""
        for _ in tracker.epochs():
            with open(self.config["log"], "a") as log:
                log.write(f"fit seed {self.seed}\n")
            break

    def predict(self, tomogram) -> pd.DataFrame:
        """One pick per type at the centre."""
        with open(self.config["log"], "a") as log:
            log.write(f"predict seed {self.seed} score {self.config['score']} {tomogram.run}\n")
        centre = np.asarray(tomogram.shape[::-1]) / 2 * tomogram.voxel_size
        rows = [(p.name, *centre, self.config["score"]) for p in self.particles]
        return pd.DataFrame(rows, columns=["particle_type", "x", "y", "z", "score"])

    def save(self, directory: Path) -> None:
        """The config is the model."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(self.config))

    def load(self, directory: Path) -> None:
        """Read the config back."""
        self.config = json.loads((directory / "config.json").read_text())
