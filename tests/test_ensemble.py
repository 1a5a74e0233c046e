"""The weighted-vote ensemble: fusion on hand-made candidates, members reused from the suite run, labels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import copick
import numpy as np
import pandas as pd
import pytest
import yaml
from commands import assert_one_line_error, bench, bench_process

from architectures.ensemble import Ensemble, _simplex
from architectures.parts.fusion import fuse_candidates
from benchmark.errors import BenchError
from benchmark.evaluation import with_reused
from benchmark.particles import ParticleTable
from benchmark.results import ResultsStore

PARTICLES = ParticleTable.czii()
RIBOSOME = PARTICLES["ribosome"].radius  # 150 Å
SMOKE = yaml.safe_load(Path("suites/smoke.yaml").read_text())
MATCHED_FILTER = next(e for e in SMOKE["architectures"] if e["name"] == "matched-filter")


def picks(*rows) -> pd.DataFrame:
    """Candidates (particle_type, x, y, z, score)."""
    return pd.DataFrame(rows, columns=["particle_type", "x", "y", "z", "score"])


def test_two_members_agreeing_fuse_into_one_pick_at_their_weighted_mean():
    a = picks(("ribosome", 1000.0, 1000.0, 500.0, 0.8))
    b = picks(("ribosome", 1000.0 + 0.4 * RIBOSOME, 1000.0, 500.0, 0.4))
    fused = fuse_candidates([a, b], [1.0, 1.0], PARTICLES, distance=0.5)
    assert len(fused) == 1
    assert fused["score"].iloc[0] == pytest.approx((0.8 + 0.4) / 2)
    assert fused["x"].iloc[0] == pytest.approx(1000.0 + 0.4 * RIBOSOME * 0.4 / 1.2)  # score-weighted
    assert fused[["y", "z"]].iloc[0].tolist() == [1000.0, 500.0]


def test_a_member_alone_counts_the_others_as_zero_and_agreement_ranks_first():
    a = picks(("ribosome", 1000.0, 1000.0, 500.0, 0.9), ("ribosome", 3000.0, 1000.0, 500.0, 0.9))
    b = picks(("ribosome", 1010.0, 1000.0, 500.0, 0.9))
    fused = fuse_candidates([a, b], [1.0, 1.0], PARTICLES, distance=0.5).sort_values("x")
    assert fused["score"].tolist() == pytest.approx([0.9, 0.45])  # both voted; only a voted


def test_weights_scale_each_members_vote_and_pull():
    a = picks(("ribosome", 1000.0, 1000.0, 500.0, 1.0))
    b = picks(("ribosome", 1040.0, 1000.0, 500.0, 1.0), ("ribosome", 4000.0, 1000.0, 500.0, 1.0))
    fused = fuse_candidates([a, b], [3.0, 1.0], PARTICLES, distance=0.5).sort_values("x")
    assert fused["score"].tolist() == pytest.approx([1.0, 0.25])
    assert fused["x"].iloc[0] == pytest.approx(1010.0)  # 3 parts a, 1 part b


def test_only_candidates_of_one_type_within_the_distance_vote_together():
    a = picks(("ribosome", 1000.0, 1000.0, 500.0, 1.0), ("apo-ferritin", 1000.0, 1000.0, 500.0, 1.0))
    b = picks(("ribosome", 1000.0 + 0.6 * RIBOSOME, 1000.0, 500.0, 1.0))
    fused = fuse_candidates([a, b], [1.0, 1.0], PARTICLES, distance=0.5)
    assert sorted(fused["particle_type"]) == ["apo-ferritin", "ribosome", "ribosome"]
    assert fused["score"].tolist() == pytest.approx([0.5, 0.5, 0.5])


def test_a_member_voting_twice_in_a_cluster_counts_its_best_score_once():
    a = picks(("ribosome", 1000.0, 1000.0, 500.0, 0.6), ("ribosome", 1030.0, 1000.0, 500.0, 0.2))
    fused = fuse_candidates([a, picks()], [1.0, 1.0], PARTICLES, distance=0.5)
    assert fused["score"].tolist() == pytest.approx([0.3])


def test_the_weight_grid_puts_the_even_weighting_first():
    grid = _simplex(2, 4)
    assert grid[0] == (0.5, 0.5) and len(grid) == 5 and all(sum(w) == pytest.approx(1) for w in grid)
    assert len(_simplex(3, 2)) == 6


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "'members' must list at least one entry"),
        ({"members": [{"config": {}}]}, "member 0 must be a mapping with 'name'"),
        ({"members": [{"name": "matched-filtre"}]}, "unknown architecture 'matched-filtre'"),
        ({"members": [{"name": "matched-filter", "config": {"sigma": 1}}]}, "has no config option(s) 'sigma'"),
        ({"members": [{"name": "matched-filter", "weight": -1}]}, "weight must be a number >= 0"),
        ({"members": [{"name": "matched-filter"}, {"name": "matched-filter"}]}, "labels ['matched-filter', 'matched"),
        ({"members": [{"name": "matched-filter"}], "weights": "vote"}, "weights is 'given' or 'tune'"),
    ],
)
def test_bad_member_lists_are_refused_in_one_line(config, message):
    with pytest.raises(BenchError, match=None) as error:
        Ensemble.check_config(config)
    assert message in str(error.value) and "\n" not in str(error.value)


def suite_file(tmp_path: Path, name: str, entries: list[dict], seeds: tuple[int, ...] = (0,)) -> Path:
    """The smoke suite with other architectures and seeds."""
    suite = {**SMOKE, "name": name, "seeds": list(seeds), "architectures": entries}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


@pytest.mark.slow
def test_members_equal_to_suite_entries_are_reused_never_trained_twice(plugin_path, smoke_config, tmp_path):
    log = tmp_path / "fits.log"
    counting = {"name": "test-counting", "config": {"log": str(log)}}
    members = [
        counting,
        {"name": "example-smooth-minima"},
        {"name": "matched-filter", "config": MATCHED_FILTER["config"]},
    ]
    entries = [
        {"name": "ensemble", "label": "vote", "config": {"members": members}},  # listed first, run last
        {"name": "matched-filter", "config": MATCHED_FILTER["config"]},
        {"name": "example-smooth-minima"},  # a third-party plug-in
        counting,
        {
            "name": "ensemble",
            "label": "vote-own",  # a member unlike any entry: trained in the ensemble's job
            "config": {"members": [{**counting, "config": {"log": str(log), "score": 0.5}}, members[1]]},
        },
    ]
    suite = suite_file(tmp_path, "votes", entries, seeds=(0, 1))
    result = bench_process("run", "--suite", suite, "--results", tmp_path, env={"PYTHONPATH": plugin_path})
    assert result.returncode == 0, result.stderr
    lines = log.read_text().splitlines()
    assert sorted(line for line in lines if line.startswith("fit")) == ["fit seed 0"] * 2 + ["fit seed 1"] * 2
    # the entry predicted the val run (the warm-up) and both test runs once per seed; the ensemble took those
    # stored candidates instead of predicting them again (vote-own's member, unlike any entry, predicted its own)
    assert sum(line.startswith("predict seed 0 score 1.0 ") for line in lines) == 3
    assert sum(line.startswith("predict seed 0 score 0.5 ") for line in lines) == 3
    store = ResultsStore.latest("votes", tmp_path)
    resources = store.table("resources").set_index(["architecture", "seed"])
    assert resources.loc[("vote", 0), "members"].startswith("test-counting: reused test-counting (")
    assert resources.loc[("vote", 0), "members"].count("reused") == 3
    assert resources.loc[("vote", 0), "members"].count("and its stored candidates") == 3
    spec = json.loads((store.job_dir("vote-seed0-ts") / "job.json").read_text())
    assert spec["part_modules"]["matched-filter"] == "architectures.matched_filter"  # imported with the ensemble's
    assert set(spec["part_modules"]) == {"test-counting", "example-smooth-minima", "matched-filter"}
    assert resources.loc[("vote-own", 1), "members"].startswith("test-counting: trained here; example-smooth")
    vote = resources.loc[("vote", 1)]
    parts = sum(resources.loc[(label, 1), "train_seconds"] for label in ("matched-filter", "example-smooth-minima"))
    assert vote["train_seconds"] >= vote["reused_train_seconds"] >= parts  # the parts' training counts
    assert vote["reused_train_seconds"] > 0 and vote["overhead_seconds"] > 0  # the job's own fit, not the parts'
    latency = store.table("latency").set_index(["architecture", "seed", "run"])["model_seconds"]
    parts = sum(latency.loc[(label, 1, "TS_5_4")] for label in ("matched-filter", "example-smooth-minima",
                                                                 "test-counting"))  # fmt: skip
    own = latency.loc[("vote", 1, "TS_5_4")] - parts  # the whole pipeline's cost: its parts' latencies and fusion
    assert 0 <= own < 1.0  # fusing a few candidates: the parts' seconds are not counted twice
    assert {job["status"] for job in store.manifest["jobs"].values()} == {"ok"}
    scores = store.table("scores")
    assert {"vote", "vote-own"} <= set(scores["architecture"])


@pytest.mark.slow
def test_labels_keep_two_entries_of_one_architecture_apart_through_a_resume(smoke_config, tmp_path):
    config = MATCHED_FILTER["config"]
    entries = [
        {"name": "matched-filter", "label": "mf-narrow", "config": {**config, "sigma_factors": [0.7]}},
        {"name": "matched-filter", "label": "mf-wide", "config": {**config, "sigma_factors": [1.1]}},
    ]
    suite = suite_file(tmp_path, "labels", entries)
    assert bench("run", "--suite", suite, "--results", tmp_path).exit_code == 0
    store = ResultsStore.latest("labels", tmp_path)
    before = store.table("scores")
    narrow = store.job_dir("mf-narrow-seed0-ts") / "result.json"
    stamp = narrow.stat().st_mtime_ns
    store.update_job("mf-wide-seed0-ts", status="interrupted")
    before[before["architecture"] == "mf-narrow"].to_csv(store.folder / "scores.csv", index=False)

    result = bench("run", "--suite", suite, "--resume", store.folder)
    assert result.exit_code == 0, result.output
    assert narrow.stat().st_mtime_ns == stamp  # the other label's job was not run again
    after = store.table("scores")
    for label in ("mf-narrow", "mf-wide"):
        mine = after[after["architecture"] == label].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, before[before["architecture"] == label].reset_index(drop=True))
    assert not after[after["architecture"] == "mf-narrow"]["f4"].equals(after[after["architecture"] == "mf-wide"]["f4"])
    run = copick.from_file(str(smoke_config)).get_run("TS_5_4")
    users = {p.user_id for p in run.picks if p.session_id.startswith(store.folder.name.split("_")[0])}
    assert users == {"bench-mf-narrow", "bench-mf-wide"}


def test_an_ensemble_with_a_bad_member_is_refused_before_anything_runs(tmp_path):
    entries = [{"name": "ensemble", "config": {"members": [{"name": "deepfindet", "config": {"filter": [8]}}]}}]
    result = bench("run", "--suite", suite_file(tmp_path, "bad", entries), "--results", tmp_path)
    assert_one_line_error(result, "ensemble member 'deepfindet'", "no config option(s) 'filter'")
    assert not (tmp_path / "bad").exists()


def test_save_and_load_round_trip_every_member(smoke_config, tmp_path):
    from benchmark.data import Project
    from benchmark.interface import Tracker
    from benchmark.job import load_samples
    from benchmark.suite import load_suite

    smoke = load_suite("smoke")
    project = Project(smoke_config)
    train = load_samples(project, smoke.split.train, smoke.data)
    val = load_samples(project, smoke.split.val, smoke.data)
    members = [{"name": "matched-filter", "config": MATCHED_FILTER["config"], "weight": 2.0}]
    model = Ensemble({"members": members, "weights": "tune", "weight_steps": 2}, project.particles, "cpu", 0)
    tracker = Tracker(smoke.budget)
    tracker.start()
    model.fit(train, val, smoke.budget, tracker)
    assert model.trained_here == ["matched-filter"] and model.weights == [1.0]
    model.save(tmp_path / "model")
    again = Ensemble({"members": members}, project.particles, "cpu", 0)
    again.load(tmp_path / "model")
    assert again.weights == [1.0]
    tomogram = val[0].tomogram
    pd.testing.assert_frame_equal(model.predict(tomogram), again.predict(tomogram))
    assert np.isfinite(model.predict(tomogram)["score"]).all()
    shutil.rmtree(tmp_path / "model")


def test_only_the_runs_whose_stored_candidates_were_taken_get_the_parts_latency_added():
    latency = pd.DataFrame({"run": ["TS_1", "TS_1", "TS_2"], "repeat": [0, 1, 0], "read_seconds": 0.1,
                            "model_seconds": 0.2, "postprocess_seconds": 0.0, "total_seconds": 0.3})  # fmt: skip
    part = {"index": 0, "latency": {run: {"read_seconds": 1.0, "model_seconds": 4.0, "postprocess_seconds": 0.5,
                                          "total_seconds": 5.5} for run in ("TS_1", "TS_2")}}  # fmt: skip
    added = with_reused(latency, [part], {0: {"TS_1"}})  # TS_2 was predicted by the job itself
    assert added["model_seconds"].tolist() == pytest.approx([4.2, 4.2, 0.2])
    assert added["total_seconds"].tolist() == pytest.approx([5.8, 5.8, 0.3])
    assert with_reused(latency, [part], {}).equals(latency)  # a plug-in that took none adds none
