"""Post-processing steps, composed by name as suite files do, on hand-made candidates and tomograms."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.data import Tomogram
from benchmark.errors import BenchError
from benchmark.interface import Sample
from benchmark.particles import ParticleTable
from benchmark.postprocessing import Pipeline, Step, StepData, build_step
from benchmark.registry import register_postprocess

PARTICLES = ParticleTable.czii()


def apply_steps(picks, steps, tomogram, particles):
    """Build and apply steps that need no fitting, as a suite's `postprocess` list."""
    return Pipeline.build(steps, particles)(picks, tomogram)


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


# --- steps that can learn, and the study's three strategies ---------------------------------------------------------

VOXEL = 10.0
RIBOSOME, THYRO, APO = 150.0, 130.0, 60.0  # radii in Å


def volume_tomogram(volume: np.ndarray, run: str = "TS") -> Tomogram:
    """A hand-made single-level tomogram."""
    return Tomogram(run, "denoised", VOXEL, (volume.astype(np.float32),))


def empty_tomogram(shape=(40, 60, 60)) -> Tomogram:
    return volume_tomogram(np.zeros(shape))


def test_light_merge_replaces_close_candidates_of_a_type_by_their_score_weighted_mean():
    picks = table(
        [
            ("ribosome", 100, 100, 100, 0.6),
            ("ribosome", 160, 100, 100, 0.2),  # 60 Å < 0.5 x 150 from the best: merged into it
            ("ribosome", 220, 100, 100, 0.2),  # 60 Å from the second but 120 Å from the best: no chaining, alone
            ("ribosome", 500, 100, 100, 0.9),  # far: alone
            ("apo-ferritin", 100, 100, 100, 0.4),  # another type at the same spot: untouched
        ]
    )
    merged = apply_steps(picks, [{"step": "light-merge", "distance": 0.5}], empty_tomogram(), PARTICLES)
    assert sorted(zip(merged["particle_type"], merged["x"], merged["score"], strict=True)) == [
        ("apo-ferritin", 100, 0.4),
        ("ribosome", pytest.approx((100 * 0.6 + 160 * 0.2) / 0.8), 0.6),
        ("ribosome", 220, 0.2),
        ("ribosome", 500, 0.9),
    ]
    assert (merged[["y", "z"]] == 100).all().all()


def test_light_merge_weighs_equally_only_the_clusters_with_a_score_that_is_not_positive():
    picks = table(
        [
            ("ribosome", 100, 100, 100, 0.9),
            ("ribosome", 160, 100, 100, 0.1),
            ("thyroglobulin", 100, 500, 100, 0.0),
            ("thyroglobulin", 160, 500, 100, -1.0),
            ("apo-ferritin", 500, 500, 300, -0.5),  # alone, elsewhere: changes nothing in the other clusters
        ]
    )
    assert len(apply_steps(picks, [{"step": "light-merge", "distance": 0.3}], empty_tomogram(), PARTICLES)) == 5
    merged = apply_steps(picks, [{"step": "light-merge", "distance": 0.5}], empty_tomogram(), PARTICLES)
    x = merged.set_index("particle_type")["x"]
    assert x["ribosome"] == pytest.approx(106.0) and x["thyroglobulin"] == 130.0 and x["apo-ferritin"] == 500


def offsets(**params) -> list[dict]:
    """A hard-particle-offsets step around every candidate (no fit needed)."""
    return [{"step": "hard-particle-offsets", "parents": "all", **params}]


def test_offsets_go_along_z_first_at_a_fraction_of_the_radius_with_a_lower_score():
    picks = table([("thyroglobulin", 300, 300, 200, 0.8), ("ribosome", 100, 100, 100, 0.9)])
    out = apply_steps(picks, offsets(distance=0.5, count=2, score_factor=0.5), empty_tomogram(), PARTICLES)
    added = out.iloc[2:]
    assert sorted(map(tuple, added[["x", "y", "z", "score"]].values.tolist())) == [
        (300, 300, 200 - 0.5 * THYRO, 0.4), (300, 300, 200 + 0.5 * THYRO, 0.4)
    ]  # fmt: skip
    assert (added["particle_type"] == "thyroglobulin").all()  # the ribosome (an easy type) gets none
    pd.testing.assert_frame_equal(out.iloc[:2], picks, check_dtype=False)


def test_offsets_follow_the_configured_directions_and_count():
    picks = table([("beta-galactosidase", 300, 300, 200, 1.0)])
    added = apply_steps(picks, offsets(directions=["y", "x"], count=3, distance=1.0), empty_tomogram(), PARTICLES)
    assert sorted(added.iloc[1:][["x", "y", "z"]].values.tolist()) == [
        [300, 210, 200],
        [300, 390, 200],
        [390, 300, 200],
    ]


def test_offsets_never_leave_the_volume():
    picks = table([("thyroglobulin", 300, 300, 50, 1.0)])  # z = 50 Å: the -z offset (-54 Å) is outside
    out = apply_steps(picks, offsets(count=2, distance=0.8), empty_tomogram(), PARTICLES)
    assert out["z"].tolist() == [50, 50 + 0.8 * THYRO]


def test_offsets_skip_spots_a_better_candidate_covers_but_not_their_own_parent():
    picks = table([("thyroglobulin", 300, 300, 200, 1.0), ("thyroglobulin", 300, 300, 310, 0.9)])
    # with a clearance of 1 x 130 Å: the first's +z offset (z = 304, score 0.5) lies 6 Å from the second (0.9):
    # not added; its -z offset (z = 96) is added although its own parent lies within the clearance. The second's
    # -z offset (z = 206, score 0.45) lies 6 Å from the first (1.0): not added; its +z offset (z = 414) is added.
    out = apply_steps(picks, offsets(count=2, distance=0.8, clearance=1.0), empty_tomogram((60, 60, 60)), PARTICLES)
    assert sorted(out.iloc[2:]["z"].tolist()) == [200 - 0.8 * THYRO, 310 + 0.8 * THYRO]


def test_offsets_of_nearby_parents_do_not_stack_on_each_other():
    picks = table([("thyroglobulin", 100, 300, 200, 1.0), ("thyroglobulin", 100, 330, 200, 0.8)])  # 30 Å apart
    out = apply_steps(picks, offsets(count=2, distance=0.8, clearance=0.5), empty_tomogram(), PARTICLES)
    assert out.iloc[2:][["y", "score"]].values.tolist() == [[300, 0.5], [300, 0.5]]  # the first's +z and -z only


def test_offsets_around_kept_candidates_only_go_around_those_that_val_thresholds_keep():
    data, _ = intensity_data(val_contrast=2.0)  # apo-ferritin val candidates: a particle (0.9) and a decoy (0.95)
    step = build_step({"step": "hard-particle-offsets", "types": ["apo-ferritin"], "count": 2}, PARTICLES)
    with pytest.raises(BenchError, match="must be fitted"):
        step(table([]), empty_tomogram())
    step.fit(data)
    assert step.fitted() == {"floor": {"apo-ferritin": 0.9}}  # keeping 0.9 and up finds the particle
    picks = table([("apo-ferritin", 300, 300, 200, 0.95), ("apo-ferritin", 100, 100, 200, 0.5)])
    added = step(picks, empty_tomogram()).iloc[2:]
    assert len(added) == 2 and (added["x"] == 300).all()  # none around the candidate below the floor
    every = build_step({"step": "hard-particle-offsets", "parents": "all"}, PARTICLES)
    assert every.fitted() == {"floor": {"thyroglobulin": None, "beta-galactosidase": None}}  # JSON-safe


def test_offsets_refuse_unknown_directions_types_counts_and_parents():
    with pytest.raises(BenchError, match="directions are among x, y, z"):
        Pipeline.build(offsets(directions=["w"]), PARTICLES)
    with pytest.raises(BenchError, match="count is 1 to twice"):
        Pipeline.build(offsets(count=3, directions=["z"]), PARTICLES)
    with pytest.raises(BenchError, match="parents is kept or all"):
        Pipeline.build([{"step": "hard-particle-offsets", "parents": "best"}], PARTICLES)
    with pytest.raises(BenchError, match=r"unknown particle type.*'thyro'"):
        Pipeline.build(offsets(types=["thyro"]), PARTICLES)


def test_a_function_step_with_keyword_catch_all_takes_any_parameter():
    def scale(picks, tomogram, particles, **params):
        return picks.assign(score=picks["score"] * params["factor"])

    register_postprocess("test-scale")(scale)
    picks = table([("ribosome", 0, 0, 0, 0.5)])
    assert apply_steps(picks, [{"step": "test-scale", "factor": 2}], None, PARTICLES)["score"].tolist() == [1.0]


def test_a_parameter_the_step_does_not_take_is_named_with_those_it_takes():
    with pytest.raises(BenchError, match="step 'light-merge' has no parameter 'radius' \\(it takes: distance\\)"):
        Pipeline.build([{"step": "light-merge", "radius": 1}], PARTICLES)


def test_a_parameter_of_the_wrong_type_is_refused_when_the_step_is_built():
    def window(picks, tomogram, particles, size: tuple[int, int] = (1, 1), weight: float = 1.0):
        return picks

    register_postprocess("test-window")(window)
    build_step({"step": "test-window", "size": [2, 3], "weight": 2}, PARTICLES)  # a YAML list stands for a tuple
    for bad, message in [({"weight": "far"}, "parameter 'weight' is 'far', not float"),
                         ({"weight": True}, "parameter 'weight' is True, not float"),
                         ({"size": [2, "x"]}, "parameter 'size' is [2, 'x'], not tuple[int, int]")]:  # fmt: skip
        with pytest.raises(BenchError, match=re.escape(f"post-processing step 'test-window': {message}")):
            build_step({"step": "test-window", **bad}, PARTICLES)


def blob_volume(centres_zyx, radius_vox: float, contrasts, shape=(40, 60, 60), seed=0) -> np.ndarray:
    """Noise with a ball of the given contrast added at each centre."""
    rng = np.random.default_rng(seed)
    volume = rng.normal(0, 0.3, shape)
    grid = np.indices(shape).transpose(1, 2, 3, 0)
    for centre, contrast in zip(centres_zyx, contrasts, strict=True):
        volume[np.linalg.norm(grid - np.asarray(centre), axis=-1) <= radius_vox] += contrast
    return volume


def sample_with_blobs(run: str, centres_zyx, contrasts, seed: int) -> Sample:
    """A tomogram with bright apo-ferritin balls and their ground truth."""
    volume = blob_volume(centres_zyx, APO / VOXEL, contrasts, seed=seed)
    truth = table([("apo-ferritin", x * VOXEL, y * VOXEL, z * VOXEL, 1.0) for z, y, x in centres_zyx])
    return Sample(volume_tomogram(volume, run), truth.drop(columns="score").assign(experiment=run))


TRAIN_CENTRES = [(10 + 16 * (i % 2), 10 + 13 * (i // 4), 10 + 13 * (i % 4)) for i in range(14)]


def intensity_data(val_contrast: float) -> tuple[StepData, pd.DataFrame]:
    """Train runs with balls of contrast 1.5 to 2.5, a val run with one ball of `val_contrast`, and val candidates:
    the ball and an empty spot scored higher (no threshold separates them)."""
    contrasts = np.linspace(1.5, 2.5, len(TRAIN_CENTRES))
    train = [sample_with_blobs(f"T{i}", TRAIN_CENTRES, contrasts, seed=i) for i in range(2)]
    val = sample_with_blobs("V", [(25, 30, 30)], [val_contrast], seed=9)
    candidates = table([("apo-ferritin", 300, 300, 250, 0.9), ("apo-ferritin", 100, 500, 300, 0.95)])
    return StepData(train, [val], candidates.assign(experiment="V")), candidates


def test_intensity_validation_drops_candidates_without_the_contrast_train_references_have():
    data, candidates = intensity_data(val_contrast=2.0)
    step = build_step({"step": "intensity-validation"}, PARTICLES)
    with pytest.raises(BenchError, match="must be fitted"):
        step(candidates, data.val[0].tomogram)
    step.fit(data)
    kept = step(candidates, data.val[0].tomogram)
    assert kept[["x", "y", "z"]].values.tolist() == [[300, 300, 250]]  # the ball; the empty spot is dropped
    assert set(step.fitted()["ranges"]) == {"apo-ferritin"}  # the other types have no train references: kept


def test_intensity_validation_keeps_types_it_cannot_fit():
    data, _ = intensity_data(val_contrast=2.0)
    step = build_step({"step": "intensity-validation"}, PARTICLES)
    step.fit(data)
    ribosome = table([("ribosome", 100, 500, 300, 0.8)])
    assert len(step(ribosome, data.val[0].tomogram)) == 1


def test_intensity_validation_ignores_references_outside_the_volume(recwarn):
    data, candidates = intensity_data(val_contrast=2.0)
    first = data.train[0]
    outside = pd.concat([first.picks, first.picks.iloc[:1].assign(x=5000.0)], ignore_index=True)  # no contrast
    step = build_step({"step": "intensity-validation"}, PARTICLES)
    step.fit(replace(data, train=[Sample(first.tomogram, outside), *data.train[1:]]))
    assert np.isfinite(step.fitted()["ranges"]["apo-ferritin"]).all()
    assert step(candidates, data.val[0].tomogram)[["x", "y", "z"]].values.tolist() == [[300, 300, 250]]
    assert not recwarn.list


def test_intensity_validation_tunes_its_margin_on_val():
    data, candidates = intensity_data(val_contrast=1.0)  # the val particle is fainter than every train one
    fixed = build_step({"step": "intensity-validation", "margin": 0.0}, PARTICLES)
    fixed.fit(data)
    assert fixed(candidates, data.val[0].tomogram).empty  # too strict: the particle is dropped too
    tuned = build_step({"step": "intensity-validation", "margin": [0.0, 1.0, 3.0, 40.0]}, PARTICLES)
    tuned.fit(data)
    # 0 and 1 drop the particle; 3 keeps it and drops the empty spot; 40 keeps both (a false positive)
    assert tuned.fitted()["margin"] == 3.0
    assert tuned(candidates, data.val[0].tomogram)[["x", "y", "z"]].values.tolist() == [[300, 300, 250]]


class Recording(Step):
    """A step that records the val candidates it was fitted on and drops the last candidate."""

    def fit(self, data):
        self.seen = len(data.val_candidates)

    def __call__(self, picks, tomogram):
        return picks.iloc[:-1]


register_postprocess("test-recording")(Recording)


def test_a_pipeline_fits_each_step_on_what_the_steps_before_it_leave():
    data, candidates = intensity_data(val_contrast=2.0)
    pipeline = Pipeline.build([{"step": "test-recording"}, {"step": "test-recording"}], PARTICLES)
    pipeline.fit(data)
    assert [step.seen for step in pipeline.steps] == [2, 1]
    assert pipeline(candidates, data.val[0].tomogram).empty


def test_the_readme_step_examples_work_as_documented():
    section = Path("README.md").read_text().split("### Writing a post-processing step")[1].split("\n## ")[0]
    examples = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(examples) == 2
    for code in examples:
        exec(code, {})  # registers "top-k" and "min-score" as a third-party module would
    data, candidates = intensity_data(val_contrast=2.0)  # val candidates scored 0.9 (the ball) and 0.95
    pipeline = Pipeline.build([{"step": "top-k", "k": 1}, {"step": "min-score"}], PARTICLES)
    pipeline.fit(data)
    assert pipeline.steps[1].fitted() == {"floor": pytest.approx(0.95)}  # fitted on what top-k left
    assert pipeline(candidates, data.val[0].tomogram)["score"].tolist() == [0.95]
