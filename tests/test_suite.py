"""Suite files: disjoint splits and folds, labels, the budget, and what a selection suite declares."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmark.errors import BenchError
from benchmark.preflight import learned_entries
from benchmark.runner import _entry
from benchmark.suite import ArchitectureSpec, list_suites, load_suite

REPO = Path(__file__).resolve().parent.parent
SMOKE = Path("suites/smoke.yaml").read_text()


def suite_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("test: [TS_5_4, TS_69_2]", "test: [TS_5_4, TS_6_4]"), "run 'TS_6_4' is listed in both train and test"),
        (("val: [TS_86_3]", "val: [TS_86_3, TS_73_6]"), "run 'TS_73_6' is listed in both train and val"),
        (("test: [TS_5_4, TS_69_2]", "test: [TS_5_4, TS_86_3]"), "run 'TS_86_3' is listed in both val and test"),
        (("test: [TS_5_4, TS_69_2]", "test: [TS_5_4, TS_5_4]"), "run 'TS_5_4' is listed twice in test"),
    ],
)
def test_a_split_sharing_or_repeating_a_run_is_refused_naming_the_run(tmp_path, edit, message):
    with pytest.raises(BenchError) as error:
        load_suite(str(suite_file(tmp_path, SMOKE.replace(*edit))))
    assert message in str(error.value) and "must be disjoint" in str(error.value)
    assert len(str(error.value).splitlines()) == 1


def test_leave_one_out_folds_test_each_run_once_with_the_next_as_val(tmp_path):
    suite = load_suite(str(suite_file(tmp_path, SMOKE + "folds: leave-one-out\n")))
    runs = suite.split.runs()
    assert list(suite.folds) == ["ts", *(f"f{i}" for i in range(1, 8))]
    assert suite.folds["ts"] == suite.split
    folds = list(suite.folds.values())[1:]
    assert [fold.test for fold in folds] == [[run] for run in runs]
    assert [fold.val for fold in folds] == [[run] for run in runs[1:] + runs[:1]]
    for fold in folds:
        assert sorted(fold.runs()) == sorted(runs)


def test_an_explicit_fold_sharing_a_run_is_refused(tmp_path):
    folds = "folds:\n  - {train: [TS_6_4], val: [TS_86_3], test: [TS_86_3]}\n"
    with pytest.raises(BenchError, match="fold 'f1': run 'TS_86_3' is listed in both val and test"):
        load_suite(str(suite_file(tmp_path, SMOKE + folds)))


def test_labels_key_two_entries_of_one_architecture_with_their_own_epoch_bounds(tmp_path):
    entries = "  - {name: deepfindet, label: deepfindet-long, epochs: 3, config: {filters: [8, 12, 16]}}\n"
    suite = load_suite(str(suite_file(tmp_path, SMOKE + entries)))
    labels = {spec.label: spec for spec in suite.architectures}
    assert set(labels) == {spec.label for spec in load_suite("smoke").architectures} | {"deepfindet-long"}
    assert labels["deepfindet-long"].name == "deepfindet"
    assert suite.budget_for(labels["deepfindet-long"]).epochs == 3
    assert suite.budget_for(labels["deepfindet"]).epochs == 1  # the suite's bound
    assert suite.select("deepfindet-*") == [labels["deepfindet-long"]]


NEXT = len(load_suite("smoke").architectures)  # the index of an entry appended to the smoke suite


@pytest.mark.parametrize(
    ("addition", "message"),
    [
        ("  - {name: deepfindet, label: ../../x}\n", f"'architectures[{NEXT}].label' is '../../x'"),
        (
            "  - {name: deepfindet, epochs: 0, label: d2}\n",
            f"'architectures[{NEXT}].epochs' must be a positive integer",
        ),
        ("evaluate: train\n", "'evaluate' is 'train'; use test or val"),
        ("repeats: 0\n", "'repeats' must be a positive integer"),
        ("folds: k-fold\n", "'folds' is 'leave-one-out' or a list"),
        (
            "  - {name: deepfindet, label: d2, ablation: [{name: a, steps: [{step: nms}]}, {name: a, steps: []}]}\n",
            "'d2' lists ablation variant 'a' twice; rename one",
        ),
        (
            "  - {name: deepfindet, label: d2, ablation: [{name: a, steps: [{distance: 1}]}]}\n",
            f"'architectures[{NEXT}].ablation[0].steps[0]' needs a 'step' name",
        ),
        (
            "  - {name: deepfindet, label: d2, ablation: [{name: a, step: nms}]}\n",
            f"missing field 'architectures[{NEXT}].ablation[0].steps'",
        ),
        (
            "  - {name: deepfindet, label: d2, ablation: [{name: a/b, steps: []}]}\n",
            f"'architectures[{NEXT}].ablation[0].name' is 'a/b'",
        ),
    ],
)
def test_bad_suite_fields_are_named(tmp_path, addition, message):
    with pytest.raises(BenchError, match=re.escape(message)):
        load_suite(str(suite_file(tmp_path, SMOKE + addition)))


def test_a_suite_name_must_be_a_plain_folder_name(tmp_path):
    with pytest.raises(BenchError, match=r"'name' is '\.\./x'"):
        load_suite(str(suite_file(tmp_path, SMOKE.replace("name: smoke", "name: ../x"))))


@pytest.mark.parametrize("name", list_suites())
def test_committed_suites_give_every_learned_architecture_its_own_epoch_bound(name):
    """The minutes are one per suite by construction; the bound that makes results machine-independent is per entry
    (its own, or its calibration's), and an ensemble's members have theirs."""
    suite = load_suite(name)
    for spec in learned_entries(suite):
        assert spec.epochs is not None, f"{name}: {spec.label} trains up to the suite-wide bound only"
    for spec in suite.architectures:
        for member in spec.config.get("members", []):
            assert member.get("epochs") is not None, f"{name}: {spec.label}'s {member['name']} has no bound"


def test_the_full_suite_runs_three_seeds():
    assert load_suite("full").seeds == [0, 1, 2]


def test_the_study_suite_is_full_with_the_hours_to_reach_every_epoch_bound():
    full, study = load_suite("full"), load_suite("study")
    assert study.architectures == full.architectures
    assert (study.data, study.split, study.seeds, study.compute) == (full.data, full.split, full.seeds, full.compute)
    assert full.budget.minutes == 5 and study.budget.minutes >= 3.4 * 60  # the study's longest training: 3.4 h
    assert "5 minutes" in full.description and "study" in full.description


def test_the_manifest_entries_list_each_entrys_differences_from_its_plugins_defaults():
    entries = {spec.label: _entry(spec) for spec in load_suite("full").architectures}
    deepfindet = entries["deepfindet"]["differences"]
    assert "filters" not in deepfindet and "patch_size" not in deepfindet  # the study's values are the defaults
    assert deepfindet["sw_batch_size"] == {"default": 1, "value": 16}
    assert deepfindet["tile_size"] == {"default": [184, 234, 180], "value": [184, 630, 630]}
    ensemble = entries["yolo-unet3d-ensemble"]
    assert ensemble["architecture"] == "ensemble" and set(ensemble["differences"]) == {"members", "weights"}
    assert ensemble["differences"]["members"]["default"] == []
    assert [m["name"] for m in ensemble["differences"]["members"]["value"]] == ["yolov8", "unet3d"]
    assert entries["matched-filter"]["differences"] == {}
    unknown = ArchitectureSpec(name="not-installed", config={"depth": (3, 4)})
    assert _entry(unknown)["differences"] == {"depth": {"default": None, "value": [3, 4]}}


def test_the_demos_settings_were_chosen_on_val_its_learned_rows_by_the_committed_tuning():
    """Every learned demo row runs the config `bench tune` chose (the latest committed tuning, the same trials for
    each); the matched filter and every post-processing step of the ablation variants were candidates of the
    selection suites, scored on val."""
    demo, candidates, steps = load_suite("demo"), [], []
    tuned = load_suite(str(sorted((REPO / "results" / "demo-tune").glob("*/tuned.yaml"))[-1]), calibrated=False)
    chosen = {spec.label: (spec.name, spec.config, spec.postprocess) for spec in tuned.architectures}
    learned = learned_entries(demo)
    for spec in learned:
        assert (spec.name, spec.config, spec.postprocess) == chosen[spec.label], spec.label
    for name in list_suites("demo-selection*"):
        selection = load_suite(name)
        assert selection.evaluate == "val" and demo.evaluate == "test"
        assert (demo.split, demo.data) == (selection.split, selection.data)
        candidates += [(s.name, s.config, s.postprocess) for s in selection.architectures]
        steps += [(s.name, step) for s in selection.architectures for v in s.ablation for step in v["steps"]]
    for spec in demo.architectures:
        if spec not in learned and spec.name != "ensemble":  # an ensemble is its members (above) and its fusion
            assert (spec.name, spec.config, spec.postprocess) in candidates, spec.label
        for variant in spec.ablation:  # each step of a variant, with its parameters, was a candidate for this
            for step in variant["steps"]:  # architecture (its config may have changed since: the suite says so)
                assert (spec.name, step) in steps, f"{spec.label}+{variant['name']}: {step}"


@pytest.mark.parametrize(
    ("compute", "device", "expected"),
    [
        ("", "cpu", {"precision": "fp32", "deterministic": True, "cudnn_benchmark": False}),
        ("", "cuda", {"precision": "bf16", "deterministic": True, "cudnn_benchmark": False}),
        (
            "compute: {precision: fp32}\n",
            "cuda",
            {"precision": "fp32", "deterministic": True, "cudnn_benchmark": False},
        ),
        (
            "compute: {deterministic: false, cudnn_benchmark: true}\n",
            "cuda",
            {"precision": "bf16", "deterministic": False, "cudnn_benchmark": True},
        ),
    ],
)
def test_compute_settings_default_to_bf16_on_a_gpu_and_deterministic_kernels(tmp_path, compute, device, expected):
    suite = load_suite(str(suite_file(tmp_path, compute + SMOKE)))
    assert suite.compute.on(device) == expected


@pytest.mark.parametrize(
    ("compute", "message"),
    [
        ("compute: {precision: fp16}\n", "'compute.precision'"),
        ("compute: {cudnn_benchmark: true}\n", "set 'compute.deterministic: false' with it"),
        ("compute: {benchmark: true}\n", "compute.benchmark"),
    ],
)
def test_bad_compute_settings_are_named(tmp_path, compute, message):
    with pytest.raises(BenchError, match=re.escape(message)):
        load_suite(str(suite_file(tmp_path, compute + SMOKE)))
