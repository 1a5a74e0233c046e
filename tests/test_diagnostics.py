"""The picking diagnostics on hand-made picks with known answers: threshold curves, localisation, the radius sweep,
count errors and duplicates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.particles import ParticleTable, ParticleType
from metrics.diagnostics import count_errors, duplicates, localisation, nearest_picks, radius_sweep
from metrics.thresholds import threshold_curves

PARTICLES = ParticleTable([ParticleType("ribosome", 100.0, 1, 1.0), ParticleType("apo-ferritin", 60.0, 2, 1.0)])


def picks(rows: list[tuple], score: bool = False) -> pd.DataFrame:
    """Picks from (experiment, particle_type, x, y, z[, score]) tuples."""
    columns = ["experiment", "particle_type", "x", "y", "z", *(["score"] if score else [])]
    return pd.DataFrame(rows, columns=columns)


REFERENCES = picks([
    ("TS_1", "ribosome", 1000.0, 1000.0, 500.0),
    ("TS_1", "ribosome", 2000.0, 1000.0, 500.0),
    ("TS_2", "ribosome", 1000.0, 3000.0, 800.0),
    ("TS_2", "apo-ferritin", 500.0, 500.0, 300.0),
])  # fmt: skip


def test_a_known_offset_gives_that_mean_offset_and_distance():
    shift = np.array([12.0, -6.0, 30.0])  # x, y, z in Å, inside ribosome's reach (50 Å)
    kept = REFERENCES[REFERENCES["particle_type"] == "ribosome"].copy()
    kept[["x", "y", "z"]] += shift
    found = localisation(nearest_picks(REFERENCES, kept.assign(score=1.0), PARTICLES)).loc["ribosome"]
    assert found["hits"] == 3
    assert found[["mean_dz", "mean_dy", "mean_dx"]].tolist() == pytest.approx([30.0, -6.0, 12.0])
    assert found["median_distance"] == pytest.approx(np.linalg.norm(shift))


def test_a_pick_beyond_reach_is_no_hit_and_a_type_without_picks_has_none():
    kept = picks([("TS_1", "ribosome", 1000.0, 1000.0, 560.0, 0.9)], score=True)  # 60 Å off: beyond 50
    nearest = nearest_picks(REFERENCES, kept, PARTICLES)
    assert not nearest["hit"].any()
    assert nearest.loc[0, "distance"] == pytest.approx(60.0) and nearest.loc[0, "pick"] == 0
    assert (nearest.loc[nearest["experiment"] == "TS_2", "pick"] == -1).all()
    assert localisation(nearest)["hits"].tolist() == [0, 0]


def test_the_radius_sweep_finds_a_loose_pick_only_at_wider_radii():
    kept = picks([("TS_1", "ribosome", 1000.0, 1000.0, 560.0, 0.9)], score=True)  # 0.6 x the radius away
    sweep = radius_sweep(REFERENCES, kept, PARTICLES).set_index(["fraction", "particle_type"])
    assert sweep.loc[(0.5, "ribosome"), "tp"] == 0 and sweep.loc[(0.75, "ribosome"), "tp"] == 1
    assert sweep.loc[(1.0, "ribosome"), ["tp", "fp", "fn"]].tolist() == [1, 0, 2]
    recall, precision = 1 / 3, 1.0
    expected = 17 * precision * recall / (16 * precision + recall)
    assert sweep.loc[(1.0, "ribosome"), "f4"] == pytest.approx(expected)
    assert sweep.loc[(1.0, "weighted"), "f4"] == pytest.approx(expected / 2)  # apo-ferritin scores 0


def test_one_duplicate_among_three_ribosome_picks_gives_a_rate_of_a_third():
    kept = picks(
        [
            ("TS_1", "ribosome", 1000.0, 1000.0, 500.0, 0.9),
            ("TS_1", "ribosome", 1050.0, 1000.0, 500.0, 0.5),  # within one radius of the better pick
            ("TS_1", "ribosome", 2000.0, 1000.0, 500.0, 0.8),
            ("TS_1", "apo-ferritin", 1050.0, 1000.0, 500.0, 0.7),
        ],
        score=True,
    )  # another type: no duplicate
    assert duplicates(kept, PARTICLES).tolist() == [False, True, False, False]
    counts = count_errors(REFERENCES, kept, PARTICLES).set_index(["experiment", "particle_type"])
    assert counts.loc[("TS_1", "ribosome")].to_dict() == pytest.approx(
        {"references": 2, "kept": 3, "duplicates": 1, "count_error": 1, "duplicate_rate": 1 / 3}
    )
    assert counts.loc[("TS_2", "ribosome"), "count_error"] == -1
    assert np.isnan(counts.loc[("TS_2", "ribosome"), "duplicate_rate"])  # nothing kept: no rate


def test_the_threshold_curve_of_known_scores():
    candidates = picks([("TS_1", "ribosome", 1000.0, 1000.0, 500.0, 0.9),  # hits reference 1
                        ("TS_1", "ribosome", 3000.0, 3000.0, 500.0, 0.7),  # a false positive
                        ("TS_1", "ribosome", 2000.0, 1010.0, 500.0, 0.4)], score=True)  # hits reference 2  # fmt: skip
    truth = REFERENCES[REFERENCES["experiment"] == "TS_1"]
    curve = threshold_curves(truth, candidates, PARTICLES)
    ribosome = curve[curve["particle_type"] == "ribosome"]
    assert ribosome["threshold"].tolist() == [0.4, 0.7, 0.9]
    assert ribosome["precision"].tolist() == pytest.approx([2 / 3, 1 / 2, 1.0])
    assert ribosome["recall"].tolist() == pytest.approx([1.0, 0.5, 0.5])
    assert curve[curve["particle_type"] == "apo-ferritin"][["kept", "f4"]].values.tolist() == [[0, 0.0]]
