"""Suite files checked by their pydantic models: the printed JSON schema, `bench suite check`, the keys for
calibration, learning curves and tuning, and one-line messages naming the key path and the fix."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from commands import SMOKE_TEXT, assert_one_line_error, bench

from benchmark.errors import BenchError
from benchmark.suite import list_suites, load_suite

TOP_LEVEL = {"name", "description", "data", "split", "folds", "budget", "seeds", "device", "evaluate", "repeats",
             "compute", "launcher", "metric", "learning_curve", "tune", "architectures"}  # fmt: skip
MINUTES = "budget:\n  minutes: 2"


def suite_file(tmp_path: Path, text: str) -> Path:
    """A suite file holding `text`."""
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def refusal(tmp_path: Path, text: str) -> str:
    """The one-line message a suite file holding `text` is refused with, its path replaced by 'S'."""
    path = suite_file(tmp_path, text)
    with pytest.raises(BenchError) as error:
        load_suite(str(path), calibrated=False)
    message = str(error.value)
    assert len(message.splitlines()) == 1 and message.startswith(f"suite file {path}")
    assert "pydantic" not in message and "validation error" not in message.lower()
    return message.replace(str(path), "S")


def test_the_schema_command_prints_json_naming_every_top_level_key():
    result = bench("suite", "schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["properties"]) == TOP_LEVEL
    assert {"name", "data", "split", "budget", "architectures"} <= set(schema["required"])
    assert schema["additionalProperties"] is False
    budget = schema["$defs"]["BudgetSection"]["properties"]
    assert "calibration" in budget and "train_seconds" in budget and budget["train_seconds"]["description"]


@pytest.mark.parametrize("name", list_suites())
def test_every_shipped_suite_passes_the_check(name):
    result = bench("suite", "check", name)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: ") and f"suite '{name}'" in result.output


def test_the_check_of_a_bad_suite_file_is_one_line_and_exit_1(tmp_path):
    result = bench("suite", "check", suite_file(tmp_path, SMOKE_TEXT.replace(MINUTES, "budget:\n  minuts: 2")))
    assert result.exit_code == 1
    assert_one_line_error(result, "missing field 'budget.minutes'", alone=True)


def test_the_new_keys_flow_into_the_suite(tmp_path):
    text = SMOKE_TEXT.replace(MINUTES, f"{MINUTES}\n  train_seconds: 90\n  calibration: calibration.yaml") + (
        "learning_curve: [0.25, 0.5, 0.75]\n"
        "tune:\n"
        "  deepfindet:\n"
        "    lr: {low: 1.0e-4, high: 1.0e-2, log: true}\n"
        "    batch_size: {low: 2, high: 8, step: 2}\n"
        "    patch_size: {low: 24, high: 48}\n"
        "    jitter: {low: 0, high: 6.5}\n"
        "    filters: {choices: [[8, 12, 16], [16, 24, 32]]}\n"
    )
    suite = load_suite(str(suite_file(tmp_path, text)), calibrated=False)
    assert suite.train_seconds == 90.0 and suite.calibration == tmp_path / "calibration.yaml"
    assert suite.learning_curve == (0.25, 0.5, 0.75)
    assert suite.tune == {
        "deepfindet": {
            "lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True},
            "batch_size": {"low": 2, "high": 8, "step": 2},
            "patch_size": {"low": 24, "high": 48, "step": 1},
            "jitter": {"low": 0.0, "high": 6.5, "log": False},  # one bound a float: a range of floats
            "filters": {"choices": [[8, 12, 16], [16, 24, 32]]},
        }
    }


def test_a_suite_without_the_new_keys_has_none_of_them():
    suite = load_suite("smoke")
    assert (suite.train_seconds, suite.calibration, suite.learning_curve, suite.tune) == (None, None, (), {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SMOKE_TEXT.replace(MINUTES, f"{MINUTES}\n  train_seconds: 0"),
         "'budget.train_seconds' must be a positive number, not 0"),
        (SMOKE_TEXT.replace(MINUTES, f"{MINUTES}\n  train_seconds: .inf"),
         "'budget.train_seconds' must be a finite number"),
        (SMOKE_TEXT.replace(MINUTES, f"{MINUTES}\n  train_seconds: long"),
         "field 'budget.train_seconds' has the wrong type ('long'); it takes a number"),
        (SMOKE_TEXT.replace(MINUTES, f"{MINUTES}\n  calibration: calibration.yaml"),
         "'budget.calibration' needs 'budget.train_seconds'"),
        (SMOKE_TEXT.replace(MINUTES, f"{MINUTES}\n  train_seconds: 60\n  calibration: 3"),
         "field 'budget.calibration' has the wrong type (3); it takes a string"),
        (SMOKE_TEXT + "learning_curve: [0.5, 0.25]\n", "'learning_curve' is [0.5, 0.25]; list the fractions in "
         "increasing order"),
        (SMOKE_TEXT + "learning_curve: [0.5, 0.5]\n", "'learning_curve' is [0.5, 0.5]; list the fractions in "
         "increasing order, each once"),
        (SMOKE_TEXT + "learning_curve: [0.5, 1]\n", "'learning_curve[1]' must be less than 1, not 1"),
        (SMOKE_TEXT + "learning_curve: [0, 0.5]\n", "'learning_curve[0]' must be a positive number, not 0"),
        (SMOKE_TEXT + "learning_curve: 0.5\n", "field 'learning_curve' has the wrong type (0.5); it takes a list"),
        (SMOKE_TEXT + "tune: {deepfindet: {lr: {low: 1.0e-2, high: 1.0e-4}}}\n",
         "'tune.deepfindet.lr' needs low < high"),
        (SMOKE_TEXT + "tune: {deepfindet: {lr: {low: 0.0, high: 1.0, log: true}}}\n",
         "'tune.deepfindet.lr' needs low < high (and low > 0 with log: true)"),
        (SMOKE_TEXT + "tune: {deepfindet: {lr: {low: 1e-4, high: 1.0e-2}}}\n",
         "field 'tune.deepfindet.lr.low' has the wrong type ('1e-4'); it takes a number (YAML reads 1e-4 as text: "
         "write 1.0e-4)"),
        (SMOKE_TEXT + "tune: {deepfindet: {depth: {low: 4, high: 2}}}\n", "'tune.deepfindet.depth' needs low < high"),
        (SMOKE_TEXT + "tune: {deepfindet: {depth: {low: 1, high: 4, step: 0}}}\n",
         "'tune.deepfindet.depth.step' must be a positive integer, not 0"),
        (SMOKE_TEXT + "tune: {deepfindet: {depth: {choices: []}}}\n", "'tune.deepfindet.depth.choices' is empty"),
        (SMOKE_TEXT + "tune: {deepfindet: {depth: {low: 1}}}\n", "missing field 'tune.deepfindet.depth.high'"),
        (SMOKE_TEXT + "tune: {deepfindet: {depth: 3}}\n",
         "field 'tune.deepfindet.depth' has the wrong type (3); it takes a mapping"),
        (SMOKE_TEXT + "tune: {deepfindet: [lr]}\n", "field 'tune.deepfindet' has the wrong type (['lr'])"),
        (SMOKE_TEXT + "tune: {deepfindt: {depth: {choices: [1, 2]}}}\n",
         "'tune.deepfindt' names no entry (did you mean deepfindet?)"),
    ],
)  # fmt: skip
def test_bad_values_of_the_new_keys_are_one_line_naming_the_key(tmp_path, text, message):
    assert message in refusal(tmp_path, text)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("seeds: [0]", "seeds: [0]\nsplitt: {}"), "unknown field(s) splitt (did you mean split?); a suite file takes"),
        ((MINUTES, "budget:\n  minutes: 2\n  train_second: 60"),
         "unknown field(s) budget.train_second (did you mean budget.train_seconds?); 'budget' takes minutes"),
        (("  synthetic_seed: 0", "  synthetic_sed: 0"), "unknown field(s) data.synthetic_sed (did you mean "
         "data.synthetic_seed"),
        (("  - name: deepfindet\n    epochs: 1", "  - name: deepfindet\n    epoch: 1"),
         "unknown field(s) architectures[1].epoch (did you mean architectures[1].epochs?)"),
        (("      - name: nms\n", "      - name: nms\n        step: []\n"),
         "unknown field(s) architectures[1].ablation[3].step (did you mean architectures[1].ablation[3].steps?)"),
        (("seeds: [0]", "seeds: [0]\ntune: {deepfindet: {lr: {low: 0.1, high: 0.2, lg: true}}}"),
         "unknown field(s) tune.deepfindet.lr.lg (did you mean tune.deepfindet.lr.log?)"),
        (("seeds: [0]", "seeds: [0]\nfolds: [{train: [TS_6_4], val: [TS_86_3], test: [TS_5_4], tests: [TS_69_2]}]"),
         "unknown field(s) folds[0].tests (did you mean folds[0].test?)"),
        (("seeds: [0]", "seeds: [0]\nlauncher: {partiton: gpu}"),
         "unknown field(s) launcher.partiton (did you mean launcher.partition?)"),
    ],
)  # fmt: skip
def test_an_unknown_key_at_any_depth_suggests_the_close_known_one(tmp_path, edit, message):
    assert message in refusal(tmp_path, SMOKE_TEXT.replace(*edit, 1))


def test_a_missing_key_is_named_before_an_unknown_one_that_may_be_its_misspelling(tmp_path):
    message = refusal(tmp_path, SMOKE_TEXT.replace(MINUTES, "budget:\n  minuts: 2"))
    assert message == "suite file S: missing field 'budget.minutes'; add it (see suites/smoke.yaml)"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ((MINUTES, "budget:\n  minutes: soon"),
         "field 'budget.minutes' has the wrong type ('soon'); it takes a number"),
        (("  - name: deepfindet\n    epochs: 1", "  - name: deepfindet\n    epochs: 1.5"),
         "field 'architectures[1].epochs' has the wrong type (1.5); it takes an integer"),
        (("    config:\n      sigma_factors: [0.7, 1.1]\n      shell_sizes: [0.8]", "    config: [1]"),
         "field 'architectures[0].config' has the wrong type ([1]); it takes a mapping"),
        (("  val: [TS_86_3]", "  val: TS_86_3"), "field 'split.val' has the wrong type ('TS_86_3'); it takes a list"),
        (("  synthetic_seed: 0", "  synthetic_seed: true"),
         "field 'data.synthetic_seed' has the wrong type (True); it takes an integer"),
        (("    postprocess:\n      - {step: nms, distance: 0.5}", "    postprocess: [nms]"),
         "field 'architectures[0].postprocess[0]' has the wrong type ('nms'); it takes a mapping"),
        (("seeds: [0]", "seeds: [0]\ncompute: {deterministic: 'yes'}"),
         "field 'compute.deterministic' has the wrong type ('yes'); it takes true or false"),
        (("seeds: [0]", "seeds: [0]\nfolds: [{train: [TS_6_4], val: [TS_86_3], test: TS_5_4}]"),
         "field 'folds[0].test' has the wrong type ('TS_5_4'); it takes a list"),
    ],
)  # fmt: skip
def test_a_wrong_type_names_the_key_path(tmp_path, edit, message):
    assert message in refusal(tmp_path, SMOKE_TEXT.replace(*edit, 1))


def test_run_and_session_names_written_as_integers_are_names(tmp_path):
    text = re.sub(r'session_id: "0"', "session_id: 0", SMOKE_TEXT).replace("val: [TS_86_3]", "val: [86]")
    suite = load_suite(str(suite_file(tmp_path, text)))
    assert suite.data.session_id == "0" and suite.split.val == ["86"]
