"""The report's picking diagnostics on a finished smoke run: what they draw and tabulate comes from the stored
candidates, thresholds and reference positions, and agrees with the stored counts."""

from __future__ import annotations

import json

import copick
import numpy as np
import pandas as pd
import pytest
from commands import bench

from benchmark.report.diagnostics import Diagnostics
from benchmark.results import JOB
from benchmark.views import load_views
from metrics.fbeta import DISTANCE_MULTIPLIER


def diagnostics(store) -> Diagnostics:
    """The diagnostics of every row of a results folder."""
    order = sorted(set(store.table("scores")["architecture"]) - set(store.table("ablation")["architecture"]))
    matches = store.table("matches").query("split == 'test'")
    return Diagnostics.of(store, order, "test", matches, store.table("thresholds"))


def test_the_report_draws_and_tabulates_the_diagnostics(smoke_run, tmp_path):
    result = bench("report", "--results", smoke_run.folder, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    readme = (tmp_path / "README.md").read_text()
    for heading in ("## Picking diagnostics (test runs)", "### Threshold behaviour", "### Localisation",
                    "### Counts and duplicates", "### Every miss"):  # fmt: skip
        assert heading in readme
    for name in ("localisation.png", "misses_TS_5_4.png", "misses_TS_69_2.png", "threshold_ribosome.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
        assert f"![{name}]({name})" in readme
    assert "| TS_5_4 | ribosome | " in readme.split("### Counts and duplicates")[1]


def test_the_diagnostics_agree_with_the_stored_counts(smoke_run):
    found = diagnostics(smoke_run)
    counts = smoke_run.table("counts").query("split == 'test'").set_index([*JOB, "run", "particle_type"])
    mine = found.counts.set_index([*JOB, "experiment", "particle_type"])
    assert (mine["kept"] == counts.loc[mine.index, "candidates"].to_numpy()).all()
    assert (mine["references"] == counts.loc[mine.index, "references"].to_numpy()).all()
    hits = found.nearest.groupby([*JOB, "experiment", "particle_type"])["hit"].sum()
    assert (hits.to_numpy() == counts.loc[hits.index, "tp"].to_numpy()).all()  # hits are the metric's TPs
    sweep = found.sweep.query(f"fraction == {DISTANCE_MULTIPLIER} and particle_type == 'weighted'")
    scores = smoke_run.table("scores").query("split == 'test' and particle_type == 'weighted'")
    merged = sweep.merge(scores, on=JOB, suffixes=("", "_stored"))
    assert len(merged) == len(sweep) and np.allclose(merged["f4"], merged["f4_stored"])


def test_the_tuned_point_of_each_curve_is_the_stored_test_score(smoke_run):
    found = diagnostics(smoke_run)
    scores = smoke_run.table("scores").query("split == 'test' and particle_type != 'weighted'")
    merged = found.tuned_points.merge(scores, on=[*JOB, "particle_type"], suffixes=("", "_stored"))
    kept = merged[merged["fp"] + merged["tp"] > 0]
    assert len(kept) and np.allclose(kept["f4"], kept["f4_stored"])
    assert np.allclose(kept["recall"], kept["recall_stored"])


def test_every_evaluated_tomogram_has_a_view_with_its_picks_inside(smoke_run):
    views = load_views(smoke_run.folder)
    assert sorted(views) == ["TS_5_4", "TS_69_2"]
    view = views["TS_5_4"]
    assert view.images.dtype == np.uint8 and len(view.images) == len(view.z_edges) - 1
    references = smoke_run.table("matches").query("split == 'test' and run == 'TS_5_4'")
    xy = view.pixels(references[["x", "y", "z"]].to_numpy(float))
    assert (xy >= -0.5).all() and (xy < np.array(view.images.shape[:0:-1]) - 0.5).all()
    assert set(view.slab_of(references["z"].to_numpy(float))) <= set(range(len(view.images)))


def test_what_the_run_writes_to_the_copick_overlay_opens_with_copick(smoke_run, smoke_config):
    session = json.loads((smoke_run.job_dir("deepfindet-seed0-ts") / "job.json").read_text())["session_id"]
    stored = pd.read_csv(smoke_run.predictions_dir("deepfindet", 0, "ts") / "TS_5_4.csv")
    run = copick.from_file(str(smoke_config)).get_run("TS_5_4")
    for particle, mine in stored.groupby("particle_type"):
        picks = run.get_picks(object_name=particle, user_id="bench-deepfindet", session_id=session)
        assert len(picks) == 1 and session != "0"
        points, _ = picks[0].numpy()
        assert np.allclose(np.sort(points, axis=0), np.sort(mine[["x", "y", "z"]].to_numpy(float), axis=0))


@pytest.mark.parametrize("column", ["x", "y", "z"])
def test_references_keep_their_positions(smoke_run, column):
    assert smoke_run.table("matches")[column].notna().all()
