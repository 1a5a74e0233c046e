"""Post-processing steps: plain functions registered by name and composed per architecture in suite files.

A step is called as ``step(picks, tomogram, particles, **params)`` and returns new picks (same columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from benchmark.data import Tomogram
from benchmark.particles import ParticleTable
from benchmark.registry import POSTPROCESSING


def apply_steps(
    picks: pd.DataFrame, steps: Sequence[dict[str, Any]], tomogram: Tomogram, particles: ParticleTable
) -> pd.DataFrame:
    """Run the suite's post-processing steps in order; each entry is {"step": name, **params}."""
    for entry in steps:
        params = {k: v for k, v in entry.items() if k != "step"}
        picks = POSTPROCESSING.get(entry["step"])(picks, tomogram, particles, **params)
    return picks
