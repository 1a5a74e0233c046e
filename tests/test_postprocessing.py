"""Post-processing steps, composed by name as suite files do."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmark.errors import BenchError
from benchmark.particles import ParticleTable
from benchmark.postprocessing import apply_steps

PARTICLES = ParticleTable.czii()


def table(rows):
    return pd.DataFrame(rows, columns=["particle_type", "x", "y", "z", "score"])


def test_nms_keeps_the_best_pick_within_the_distance_per_type():
    picks = table(
        [
            ("ribosome", 0, 0, 0, 0.5),
            ("ribosome", 100, 0, 0, 0.9),  # within 150 Å of the first: suppresses it
            ("ribosome", 400, 0, 0, 0.2),  # far: kept
            ("apo-ferritin", 100, 0, 0, 0.1),  # another type: untouched
        ]
    )
    kept = apply_steps(picks, [{"step": "nms", "distance": 1.0}], None, PARTICLES)
    assert sorted(zip(kept["particle_type"], kept["x"], strict=True)) == [
        ("apo-ferritin", 100), ("ribosome", 100), ("ribosome", 400)
    ]  # fmt: skip


def test_nms_distance_is_a_fraction_of_the_radius():
    picks = table([("ribosome", 0, 0, 0, 0.5), ("ribosome", 100, 0, 0, 0.9)])
    assert len(apply_steps(picks, [{"step": "nms", "distance": 0.5}], None, PARTICLES)) == 2


def test_nms_across_types_uses_the_larger_radius():
    picks = table([("ribosome", 0, 0, 0, 0.5), ("apo-ferritin", 100, 0, 0, 0.9)])
    kept = apply_steps(picks, [{"step": "nms", "across_types": True}], None, PARTICLES)
    assert kept["particle_type"].tolist() == ["apo-ferritin"]


def test_unknown_step_is_named():
    with pytest.raises(BenchError, match="unknown post-processing step 'nmx' \\(did you mean nms\\?\\)"):
        apply_steps(table([]), [{"step": "nmx"}], None, PARTICLES)
