"""Post-processing steps, composed by name as suite files do."""

from __future__ import annotations

import numpy as np
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


def greedy_reference(points, reach, same) -> list[int]:
    """Textbook greedy NMS over picks sorted by descending score: a loop, for checking the vectorised one."""
    kept = []
    for i in range(len(points)):
        conflicts = [k for k in kept if same[i, k] and np.linalg.norm(points[i] - points[k]) <= max(reach[i], reach[k])]
        if not conflicts:
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("across_types", [False, True])
def test_nms_equals_textbook_greedy_suppression(seed, across_types):
    rng = np.random.default_rng(seed)
    names = ["apo-ferritin", "ribosome", "thyroglobulin"]
    picks = table(
        [(names[rng.integers(3)], *rng.uniform(0, 1500, 3), float(rng.integers(0, 50))) for _ in range(300)]
    )  # crowded, with tied scores
    kept = apply_steps(picks, [{"step": "nms", "distance": 1.0, "across_types": across_types}], None, PARTICLES)
    ordered = picks.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    types = ordered["particle_type"].to_numpy()
    same = np.ones((len(types),) * 2, bool) if across_types else types[:, None] == types[None, :]
    reach = ordered["particle_type"].map({p.name: p.radius for p in PARTICLES}).to_numpy()
    expected = ordered.iloc[greedy_reference(ordered[["x", "y", "z"]].to_numpy(), reach, same)]
    assert 0 < len(kept) < len(picks)
    pd.testing.assert_frame_equal(kept, expected.reset_index(drop=True))


def test_nms_of_no_picks_is_no_picks():
    assert apply_steps(table([]), [{"step": "nms"}], None, PARTICLES).empty
