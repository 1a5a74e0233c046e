"""Any project's particles: metric weights and hard types from a suite's `metric:` section, the copick objects'
metadata or the CZII defaults, in the job's score, `hard-particle-offsets`, `bench score` and the manifest."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from commands import MATCHED_FILTER_ONLY, assert_one_line_error, bench

from benchmark.data import Project
from benchmark.errors import BenchError, BenchWarning
from benchmark.particles import Metric, ParticleTable, ParticleType
from benchmark.postprocessing import build_step
from benchmark.preflight import UNWEIGHTED_FIX
from benchmark.results import ResultsStore
from benchmark.suite import load_suite

RADII = {"alpha": 40.0, "beta": 60.0, "gamma": 50.0}
OBJECTS = [
    {"name": name, "is_particle": True, "label": label, "radius": radius, "color": [200, 0, 0, 255]}
    for label, (name, radius) in enumerate(RADII.items(), start=1)
]
WEIGHTS = {"alpha": 2.0, "beta": 0.5}  # gamma has none: weight 1, with a warning
SUITE = """name: metric-weights
description: the matched filter on a project whose particles are not the CZII ones
data: {synthetic: smoke, tomo_type: denoised, voxel_size: 10.0}
split: {train: [TS_1], val: [TS_2], test: [TS_3]}
budget: {minutes: 2, epochs: 1}
seeds: [0]
device: cpu
metric:
  weights: {alpha: 2, beta: 0.5}
  hard: [beta]
architectures:
  - name: matched-filter
    config: {level: 0, sigma_factors: [0.7, 1.1], shell_sizes: [0.8]}
    postprocess: [{step: nms, distance: 0.5}]
"""


def suite_with(tmp_path: Path, text: str) -> Path:
    """A suite file holding `text`."""
    path = tmp_path / "metric-weights.yaml"
    path.write_text(text)
    return path


def particle_volume(rng: np.random.Generator, picks: dict[str, list[list[float]]]) -> np.ndarray:
    """24x64x64 voxels of 10 Å: noise with a dark ball of 0.6 x the radius at every pick."""
    z, y, x = np.indices((24, 64, 64)) * 10.0
    volume = rng.normal(scale=0.5, size=z.shape)
    for name, points in picks.items():
        for px, py, pz in points:
            volume[(x - px) ** 2 + (y - py) ** 2 + (z - pz) ** 2 <= (0.6 * RADII[name]) ** 2] -= 1.0
    return volume


@pytest.fixture
def other_project(tmp_path: Path) -> Path:
    """A copick project (copick's own API) of three runs whose particles are alpha, beta and gamma."""
    from conftest import add_run, write_config

    config = write_config(tmp_path / "project", OBJECTS)
    rng = np.random.default_rng(3)
    for run in ("TS_1", "TS_2", "TS_3"):
        picks = {
            "alpha": [[100.0, 100.0, 120.0], [500.0, 150.0, 100.0], [300.0, 500.0, 130.0]],
            "beta": [[150.0, 400.0, 120.0], [450.0, 450.0, 110.0]],
            "gamma": [[320.0, 260.0, 120.0], [520.0, 560.0, 120.0]],
        }
        picks = {name: [[x + rng.uniform(-20, 20), y, z] for x, y, z in points] for name, points in picks.items()}
        add_run(config, run, particle_volume(rng, picks), picks, true_voxel_size=10.0)
    return config


def test_czii_particles_keep_the_competition_weights_and_the_study_hard_types():
    table = ParticleTable.czii()
    assert {p.name: p.weight for p in table} == {
        "apo-ferritin": 1.0, "beta-amylase": 0.0, "beta-galactosidase": 2.0, "ribosome": 1.0, "thyroglobulin": 2.0,
        "virus-like-particle": 1.0,
    }  # fmt: skip
    assert table.hard == ["beta-galactosidase", "thyroglobulin"]
    assert table.unweighted == []


def test_a_suite_metric_section_is_parsed_and_its_names_are_checked_against_the_project(tmp_path, other_project):
    suite = load_suite(str(suite_with(tmp_path, SUITE)))
    assert (suite.metric.weights, suite.metric.hard) == (WEIGHTS, ["beta"])
    particles = Project(other_project, suite.metric).particles
    assert [(p.name, p.weight, p.hard) for p in particles] == [
        ("alpha", 2.0, False), ("beta", 0.5, True), ("gamma", 1.0, False)
    ]  # fmt: skip
    assert particles.unweighted == ["gamma"]
    unknown = Metric(weights={"alpha": 1, "delta": 2}, hard=["epsilon"], source="suite file s.yaml: 'metric'")
    with pytest.raises(BenchError) as error:
        Project(other_project, unknown)
    assert str(error.value) == (
        "suite file s.yaml: 'metric' names unknown particle type(s) 'delta', 'epsilon'; known types: alpha, beta, gamma"
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("metric: {weight: {alpha: 1}}", "unknown field(s) metric.weight"),
        ("metric: {weights: [alpha]}", "field 'metric.weights' has the wrong type"),
        ("metric: {hard: beta}", "field 'metric.hard' has the wrong type"),
        ("metric: {hard: [1]}", "'metric' names particle types by their copick names"),
        ("metric: [alpha]", "field 'metric' has the wrong type"),
    ],
)
def test_a_malformed_metric_section_is_refused_in_one_line(tmp_path, section, message):
    text = re.sub(r"metric:\n(  .*\n)+", section + "\n", SUITE)
    with pytest.raises(BenchError, match=re.escape(message)) as error:
        load_suite(str(suite_with(tmp_path, text)))
    assert len(str(error.value).splitlines()) == 1


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"alpha": -1.0}, "gives 'alpha' weight -1.0; a weight is a number >= 0"),
        ({"alpha": float("nan")}, "gives 'alpha' weight nan"),
        ({"alpha": "heavy"}, "gives 'alpha' weight 'heavy'"),
        ({"alpha": True}, "gives 'alpha' weight True"),
        ({"alpha": 0, "beta": 0, "gamma": 0}, "leaves every particle type weight 0"),
    ],
)
def test_weights_that_are_not_numbers_at_least_zero_are_refused(weights, message):
    table = ParticleTable(
        [ParticleType(name, radius, label, 1.0) for label, (name, radius) in enumerate(RADII.items(), start=1)]
    )
    with pytest.raises(BenchError, match=re.escape(message)):
        table.with_metric(Metric(weights=weights, source="the suite"))


def test_copick_object_metadata_gives_weights_and_hard_types_and_the_suite_wins(tmp_path, copick_project):
    objects = [
        {**OBJECTS[0], "metadata": {"metric": {"weight": 3, "hard": True}}},
        {**OBJECTS[1], "metadata": {"metric": {"weight": 0.25}, "origin": "EMPIAR"}},
        {**OBJECTS[2], "metadata": {"note": "no metric here"}},
    ]
    config = copick_project(objects=objects, picks={"alpha": [[100.0, 100.0, 80.0]]})
    particles = Project(config).particles
    assert [(p.name, p.weight, p.hard) for p in particles] == [
        ("alpha", 3.0, True), ("beta", 0.25, False), ("gamma", 1.0, False)
    ]  # fmt: skip
    assert particles.unweighted == ["gamma"]
    suite = Project(config, Metric(weights={"alpha": 1.5, "gamma": 2}, hard=["gamma"])).particles
    assert [(p.name, p.weight, p.hard) for p in suite] == [
        ("alpha", 1.5, False), ("beta", 0.25, False), ("gamma", 2.0, True)
    ]  # fmt: skip
    assert suite.unweighted == []


@pytest.mark.parametrize("given", [{"weight": -2}, {"hard": "yes"}, {"weigth": 1}, [1, 2]])
def test_bad_metric_metadata_names_the_object(copick_project, given):
    objects = [{**OBJECTS[0], "metadata": {"metric": given}}, *OBJECTS[1:]]
    with pytest.raises(BenchError, match=r"pickable object 'alpha' has metadata 'metric' .* in the copick config"):
        Project(copick_project(objects=objects, picks={}))


def test_particles_without_a_weight_get_one_warning_naming_them(copick_project):
    particles = Project(copick_project(objects=OBJECTS, picks={})).particles
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        particles.warn_unweighted(UNWEIGHTED_FIX)
        particles.with_metric(Metric(weights={"alpha": 1, "beta": 1, "gamma": 1})).warn_unweighted(UNWEIGHTED_FIX)
    assert [str(w.message) for w in caught] == [
        "particle type(s) 'alpha', 'beta', 'gamma' are not CZII particles and have no metric weight given: scored "
        "with weight 1 and, unless listed as hard, not hard; set metric.weights (and metric.hard) in the suite "
        "file, or metric in the copick object's metadata"
    ]
    assert caught[0].category is BenchWarning


def test_hard_particle_offsets_default_to_the_tables_hard_types_and_to_nothing_without_any():
    table = ParticleTable(
        [ParticleType(name, radius, label, 1.0) for label, (name, radius) in enumerate(RADII.items(), start=1)]
    )
    hard = table.with_metric(Metric(hard=["gamma", "alpha"]))
    assert build_step({"step": "hard-particle-offsets"}, hard).types == ["alpha", "gamma"]  # label order
    assert build_step({"step": "hard-particle-offsets"}, ParticleTable.czii()).types == [
        "beta-galactosidase", "thyroglobulin"
    ]  # fmt: skip
    step = build_step({"step": "hard-particle-offsets", "parents": "all"}, table)
    assert step.types == [] and step.fitted() == {"floor": {}}
    picks = pd.DataFrame([("alpha", 100.0, 100.0, 100.0, 0.9)], columns=["particle_type", "x", "y", "z", "score"])
    pd.testing.assert_frame_equal(step(picks, None), picks)


SOLUTION = "experiment,particle_type,x,y,z\nTS_1,apo-ferritin,100,100,100\nTS_1,ribosome,500,500,500\n"
SUBMISSION = "id,experiment,particle_type,x,y,z\n0,TS_1,apo-ferritin,110,100,100\n"  # apo-ferritin F4 1, ribosome 0


@pytest.fixture
def csvs(tmp_path: Path) -> list[Path]:
    """A solution and a submission CSV."""
    (tmp_path / "solution.csv").write_text(SOLUTION)
    (tmp_path / "submission.csv").write_text(SUBMISSION)
    return [tmp_path / "solution.csv", tmp_path / "submission.csv"]


def test_bench_score_takes_weights_and_hard_types(csvs):
    result = bench(
        "score", *csvs, "--json", "--weight", "ribosome=3", "--weight", "thyroglobulin=0", "--hard", "ribosome"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["weighted"] == pytest.approx(1 / (1 + 0 + 2 + 3 + 0 + 1))  # apo-ferritin's F4 1 over the weights
    assert {row["particle_type"]: row["weight"] for row in report["per_type"]}["ribosome"] == 3.0
    assert report["hard"] == ["ribosome"]
    text = bench("score", *csvs)
    assert "weighted F4 (competition score): 0.142857" in text.output  # 1 / 7
    assert "hard types: beta-galactosidase, thyroglobulin" in text.output


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--weight", "ribosome"], ["--weight 'ribosome' is not NAME=W"]),
        (["--weight", "ribosome=heavy"], ["--weight 'ribosome=heavy' is not NAME=W"]),
        (["--weight", "ribosome=-1"], ["gives 'ribosome' weight -1.0; a weight is a number >= 0"]),
        (["--weight", "proteasome=2"], ["unknown particle type(s) 'proteasome'", "known types: apo-ferritin"]),
        (["--hard", "proteasome"], ["bench score --weight/--hard names unknown particle type(s) 'proteasome'"]),
    ],
)
def test_bench_score_refuses_bad_weights_in_one_line(csvs, args, fragments):
    assert_one_line_error(bench("score", *csvs, *args), *fragments, alone=True)


def test_a_metric_naming_a_particle_the_project_lacks_is_refused_before_a_results_folder_exists(tmp_path):
    from conftest import add_run, write_config

    config = write_config(tmp_path / "project")  # the CZII particles
    add_run(config, "TS_1", np.zeros((8, 16, 16)), {})
    text = MATCHED_FILTER_ONLY.replace("seeds: [0]", "seeds: [0]\nmetric: {weights: {ribosome: 1, proteasome: 2}}")
    result = bench("run", "--suite", suite_with(tmp_path, text), "--data", config, "--results", tmp_path / "results")
    assert_one_line_error(result, "'metric' names unknown particle type(s) 'proteasome'", "known types: apo-ferritin")
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_a_suite_on_other_particles_scores_with_its_weights(tmp_path, other_project):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = bench("run", "--suite", suite_with(tmp_path, SUITE), "--data", other_project, "--results",
                       tmp_path / "results")  # fmt: skip
    assert result.exit_code == 0, result.output
    about_gamma = [str(w.message) for w in caught if "'gamma'" in str(w.message)]
    assert len(about_gamma) == 1 and "\n" not in about_gamma[0] and "'alpha'" not in about_gamma[0]
    store = ResultsStore.latest("metric-weights", tmp_path / "results")
    assert store.manifest["particles"] == [
        {"name": "alpha", "radius": 40.0, "weight": 2.0, "hard": False},
        {"name": "beta", "radius": 60.0, "weight": 0.5, "hard": True},
        {"name": "gamma", "radius": 50.0, "weight": 1.0, "hard": False},
    ]
    assert store.manifest["entries"] == {
        "matched-filter": {
            "architecture": "matched-filter",
            "differences": {
                "level": {"default": 1, "value": 0},
                "sigma_factors": {"default": [0.5, 0.7, 0.9, 1.1, 1.3], "value": [0.7, 1.1]},
                "shell_sizes": {"default": [0.6, 0.8, 1.0], "value": [0.8]},
            },
        }
    }
    scores = store.table("scores")
    test = scores[scores["split"] == "test"].set_index("particle_type")
    f4 = test.loc[["alpha", "beta", "gamma"], "f4"]
    assert abs(test.at["weighted", "f4"] - f4.mean()) > 0.01  # the types score differently: the weights matter
    by_hand = (2.0 * f4["alpha"] + 0.5 * f4["beta"] + 1.0 * f4["gamma"]) / 3.5
    assert test.at["weighted", "f4"] == pytest.approx(by_hand, abs=1e-12)
