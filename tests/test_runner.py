"""`bench run` / `bench report` / `bench list` end to end on the smoke suite, plug-ins included."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import copick
import pandas as pd
import pytest
from commands import assert_one_line_error, bench, bench_process

from benchmark.data import Project
from benchmark.reference import reference_line
from benchmark.results import EVERY_JOB, JOB, TABLES, ResultsStore
from benchmark.submission import read_submission
from benchmark.suite import load_suite
from metrics.fbeta import score_picks


def test_run_writes_manifest_tables_and_predictions(smoke_run, smoke_config):
    manifest = smoke_run.manifest
    assert smoke_run.folder.name.endswith(manifest["environment"]["git"]["short"] or "nogit")
    assert manifest["suite"]["name"] == "smoke" and len(manifest["suite"]["sha256"]) == 64
    assert manifest["data"]["synthetic"] is True and manifest["data"]["preset"] == "smoke"
    assert manifest["split"]["test"] == ["TS_5_4", "TS_69_2"]
    assert manifest["seeds"] == [0, 1]
    assert manifest["environment"]["device_name"].startswith("CPU")
    assert manifest["environment"]["libraries"]["torch"]
    assert "bench run --suite smoke" in manifest["command"]
    assert {job["status"] for job in manifest["jobs"].values()} == {"ok"}

    assert manifest["budget"] == {"minutes": 2.0, "epochs": 1, "grace_minutes": 1.0, "predict_minutes": None,
                                  "job_minutes": None}  # fmt: skip
    assert manifest["repeats"] == 1 and manifest["folds"] == {"ts": manifest["split"]}
    assert manifest["compute"] == {"precision": "fp32", "deterministic": True, "cudnn_benchmark": False}

    scores = smoke_run.table("scores")
    assert list(scores.columns) == TABLES["scores"]
    weighted = scores[scores["particle_type"] == "weighted"]
    for architecture in ("matched-filter", "deepfindet"):
        rows = weighted[weighted["architecture"] == architecture]
        assert sorted(zip(rows["seed"], rows["fold"], rows["split"], strict=True)) == [
            (0, "ts", "test"), (0, "ts", "val"), (1, "ts", "test"), (1, "ts", "val")
        ]  # fmt: skip
    assert weighted["f4"].between(0, 1).all()


def test_resources_measure_what_their_columns_say(smoke_run):
    resources = smoke_run.table("resources")
    assert list(resources.columns) == TABLES["resources"]
    assert (resources["memory_kind"] == "cpu-rss").all()
    # above the job's baseline (interpreter, libraries, opened data), next to the whole process
    assert (resources["peak_memory_gb"] < resources["process_peak_memory_gb"] - 0.1).all()
    assert (resources["infer_peak_memory_gb"] < resources["infer_process_peak_memory_gb"]).all()
    assert (resources["stopped_by"].isin(["epochs", "plug-in"])).all() and (resources["minutes"] == 2).all()
    deepfindet = resources[resources["architecture"] == "deepfindet"].iloc[0]
    assert (deepfindet["epochs"], deepfindet["epoch_samples"], deepfindet["epoch_unit"]) == (1, 32, "32x32x32 patches")
    assert (resources["compute_precision"] == "fp32").all()
    learned = resources.set_index("architecture")["data_wait_share"]
    assert learned[["deepfindet", "unet3d", "heatmap-unet", "faster-rcnn", "yolov8"]].between(0, 1).all()
    assert learned[["matched-filter"]].isna().all()  # it times no batches
    assert (resources["infer_read_seconds"] > 0).all()
    per_slice = resources["infer_seconds_per_slice"].to_numpy()
    assert per_slice * 48 == pytest.approx(resources["infer_model_seconds"].to_numpy(), rel=0.05)  # 48 z-slices
    latency = smoke_run.table("latency")
    assert list(latency.columns) == TABLES["latency"]
    assert sorted(set(latency["run"])) == ["TS_5_4", "TS_69_2"] and (latency["repeat"] == 0).all()


def test_run_writes_predictions_as_csv_and_copick_picks(smoke_run, smoke_config):
    predictions = smoke_run.predictions_dir("matched-filter", 0, "ts")
    for run in ("TS_86_3", "TS_5_4", "TS_69_2"):
        assert (predictions / f"{run}.csv").read_text().startswith("id,experiment,particle_type,x,y,z")
    stored = copick.from_file(str(smoke_config)).get_run("TS_5_4").get_picks(user_id="bench-matched-filter")
    assert stored and all(p.session_id != "0" for p in stored)


def test_report_renders_its_tables_and_plots_with_intervals_over_seeds(smoke_run, tmp_path):
    result = bench("report", "--results", smoke_run.folder, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    readme = (tmp_path / "README.md").read_text()
    for heading in ("Per-particle results (test runs)", "Comparative summary (test runs)", "Validation scores",
                    "What each row ran", "Per-tomogram scores (test runs)", "Threshold transfer",
                    "Training under the budget", "Memory (GB)", "Inference latency", "Harness overhead"):  # fmt: skip
        assert f"## {heading}" in readme
    assert "hierarchical bootstrap" in readme and "a paired difference must exceed about" in readme
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary.columns) == ["architecture", "mean", "low", "high", "group", "runs", "train_seconds_total"]
    scores = smoke_run.table("scores").query("split == 'test' and particle_type == 'weighted'")
    mine = summary.set_index("architecture").loc["matched-filter"]
    assert mine["mean"] == pytest.approx(scores[scores["architecture"] == "matched-filter"]["f4"].mean())
    assert 0 <= mine["low"] <= mine["high"] <= 1 and mine["runs"] == 2
    line = next(line for line in readme.splitlines() if line.startswith(f"| {mine['group']} | matched-filter | "))
    assert f"[{mine['low']:.3f}, {mine['high']:.3f}]" in line
    assert "| matched-filter - deepfindet | " in readme or "| deepfindet - matched-filter | " in readme
    assert "| TS_5_4 | " in readme.split("## Per-tomogram scores")[1]
    assert "| deepfindet | `deepfindet` | `filters` [8, 12, 16] (default [48, 64, 80]);" in readme
    assert "Per slice = model seconds / z-slices" in readme and "CPU" in readme
    for plot in ("verdict.png", "f4_per_particle.png", "f4_vs_latency.png", "f4_vs_memory.png",
                 "latency_breakdown.png"):  # fmt: skip
        assert (tmp_path / plot).read_bytes()[:4] == b"\x89PNG"


def test_report_of_one_seed_still_has_intervals_from_the_test_set(smoke_run, tmp_path):
    folder = shutil.copytree(smoke_run.folder, tmp_path / "one")
    for table in ("scores", "resources", "ablation", "thresholds", "counts", "matches"):
        frame = pd.read_csv(folder / f"{table}.csv")
        frame[frame["seed"] == 0].to_csv(folder / f"{table}.csv", index=False)
    result = bench("report", "--results", folder, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    readme = (tmp_path / "report" / "README.md").read_text()
    assert "a single training run: its interval covers test-set sampling only" in readme
    summary = pd.read_csv(tmp_path / "report" / "summary.csv").set_index("architecture")
    assert (summary["runs"] == 1).all()
    assert summary.loc["matched-filter", "low"] < summary.loc["matched-filter", "high"]  # the test set's spread


def test_every_job_stores_per_tomogram_counts_that_add_up_to_its_scores(smoke_run):
    scores, counts, matches = (smoke_run.table(name) for name in ("scores", "counts", "matches"))
    per_type = scores[scores["particle_type"] != "weighted"].set_index([*JOB, "split", "particle_type"])
    summed = counts.groupby([*JOB, "split", "particle_type"])[["tp", "fp", "fn"]].sum()
    assert len(summed) == len(per_type) and set(counts["run"]) == {"TS_86_3", "TS_5_4", "TS_69_2"}
    pd.testing.assert_frame_equal(summed, per_type.loc[summed.index, ["tp", "fp", "fn"]], check_dtype=False)
    found = matches.groupby([*JOB, "split", "run", "particle_type"])["matched"].agg(["sum", "size"])
    keyed = counts.set_index([*JOB, "split", "run", "particle_type"])
    assert (found["sum"] == keyed.loc[found.index, "tp"]).all()
    assert (found["size"] == keyed.loc[found.index, "references"]).all()
    assert (counts["candidates"] == counts["tp"] + counts["fp"]).all()
    thresholds = smoke_run.table("thresholds")
    assert thresholds["oracle_f4"].notna().all()
    test = per_type.xs("test", level="split")["f4"]
    oracle = thresholds.set_index([*JOB, "particle_type"])["oracle_f4"]
    assert (oracle.loc[test.index] >= test - 1e-12).all()  # the best thresholds on test are at least as good there


def test_report_without_options_regenerates_every_suite_with_results(smoke_run, tmp_path, monkeypatch):
    root = tmp_path / "results"
    for suite in ("smoke", "other"):
        folder = shutil.copytree(smoke_run.folder, root / suite / smoke_run.folder.name)
        ResultsStore(folder).write_manifest(
            {**smoke_run.manifest, "suite": {**smoke_run.manifest["suite"], "name": suite}}
        )
    (root / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    result = bench("report", "--results-root", root)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["other", "smoke"]
    result = bench("report", "--results-root", root, "--suite", "other")
    assert [line for line in result.output.splitlines() if "README" in line] == ["wrote reports/other/README.md"]


def test_resume_redoes_only_unfinished_jobs(smoke_run, tmp_path):
    store = ResultsStore(shutil.copytree(smoke_run.folder, tmp_path / smoke_run.folder.name))
    untouched = [store.job_dir(key) / "result.json" for key in ("matched-filter-seed0-ts", "deepfindet-seed1-ts")]
    before = [path.stat().st_mtime_ns for path in untouched]
    store.update_job("matched-filter-seed1-ts", status="interrupted")
    scores = store.table("scores")
    scores[scores["seed"] == 0].to_csv(store.folder / "scores.csv", index=False)

    result = bench("run", "--suite", "smoke", "--resume", store.folder)
    assert result.exit_code == 0, result.output
    assert [path.stat().st_mtime_ns for path in untouched] == before
    assert store.manifest["jobs"]["matched-filter-seed1-ts"]["status"] == "ok"
    assert sorted(store.table("scores")["seed"].unique()) == [0, 1]


def test_bench_run_says_how_long_the_committed_run_took_and_whether_its_kernels_match(smoke_run, tmp_path):
    folder = shutil.copytree(smoke_run.folder, tmp_path / "smoke" / smoke_run.folder.name)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["environment"]["git"]["dirty"] = False  # as a committed run is
    manifest["finished"] = (datetime.fromisoformat(manifest["created"]) + timedelta(seconds=754)).isoformat()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    here, smoke = manifest["environment"], load_suite("smoke")
    assert reference_line(smoke, here, tmp_path) == "reference: no committed run of suite 'smoke'"  # not yet in git
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "smoke"], cwd=tmp_path, check=True)
    line = reference_line(smoke, here, tmp_path)
    assert line.startswith(f"reference: this suite took 12 min 34 s on {here['device_name']} (torch CPU capability ")
    assert line.endswith("a slower or busier machine takes longer, and scores the same")
    elsewhere = {**here, "cpu_capability": "AVX2", "num_threads": 7}
    assert reference_line(smoke, elsewhere, tmp_path).endswith(
        "this machine differs in torch CPU capability, threads, so its learned rows may round differently and not "
        "match the committed scores exactly"
    )
    manifest["suite"]["sha256"] = "another version"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    line = reference_line(smoke, here, tmp_path)
    assert line.endswith("ran another version of this suite file, so its time is not this one's")


def test_report_refuses_a_folder_without_successful_jobs(smoke_run, tmp_path):
    store = ResultsStore(shutil.copytree(smoke_run.folder, tmp_path / "failed"))
    for key in store.manifest["jobs"]:
        store.update_job(key, status="failed", error="simulated")
    folder = store.folder
    for table in EVERY_JOB:
        (folder / f"{table}.csv").unlink()
    result = bench("report", "--results", folder, "--out", tmp_path / "report")
    assert_one_line_error(result, "no successful job in", "nothing to report")


def test_resume_refuses_a_folder_of_another_suite(smoke_run):
    result = bench("run", "--suite", "demo", "--resume", smoke_run.folder)
    assert_one_line_error(result, "suite 'smoke', not 'demo'")


def test_unknown_suite_and_architecture_suggest_close_names(tmp_path):
    assert_one_line_error(bench("run", "--suite", "smok"), "unknown suite 'smok'", "did you mean smoke")
    assert_one_line_error(bench("run", "--suite", "smoke", "--arch", "matched-filtr"), "did you mean matched-filter")
    suite = tmp_path / "typo.yaml"
    suite.write_text(Path("suites/smoke.yaml").read_text().replace("name: matched-filter", "name: matched-filtre"))
    assert_one_line_error(bench("run", "--suite", suite), "unknown architecture 'matched-filtre'", "matched-filter")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace("  val: [TS_86_3]\n", ""), "missing field 'split.val'"),
        (lambda text: text.replace("budget:\n  minutes: 2", "budget:\n  hours: 2"), "missing field 'budget.minutes'"),
        (lambda text: text + "extra_field: 1\n", "unknown field(s) extra_field"),
        (lambda text: text.replace("device: cpu", "device: [cpu"), "not valid YAML"),
        (lambda text: text.replace("seeds: [0]", "seeds: [a]"), "'seeds' must be a non-empty list of integers"),
        (lambda text: text.replace("seeds: [0]", "seeds: []"), "'seeds' must be a non-empty list of integers"),
        (lambda text: text + "  - name: matched-filter\n", "lists 'matched-filter' twice"),
    ],
)
def test_bad_suite_files(tmp_path, edit, message):
    suite = tmp_path / "bad.yaml"
    suite.write_text(edit(Path("suites/smoke.yaml").read_text()))
    assert_one_line_error(bench("run", "--suite", suite), message)


@pytest.mark.slow
def test_list_shows_third_party_plugins_and_skips_broken_ones(plugin_path):
    result = bench_process("list", env={"PYTHONPATH": plugin_path})
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  ")}
    assert rows["example-smooth-minima"].endswith("from cryoet-bench-example")
    assert rows["matched-filter"].endswith("from cryoet-bench")
    assert "smoke" in rows and "nms" in rows
    assert result.stderr.strip().splitlines() == [
        "warning: architecture plug-in 'faulty-import' failed to import and was skipped: "
        "ModuleNotFoundError: No module named 'a_dependency_that_is_not_installed'"
    ]
    assert "example-smooth-minima" in bench_process("list", "example-*", env={"PYTHONPATH": plugin_path}).stdout


@pytest.mark.slow
def test_run_records_failing_plugins_and_keeps_the_rest(plugin_path, smoke_config, tmp_path):
    suite = tmp_path / "plugins.yaml"
    text = Path("suites/smoke.yaml").read_text().replace("name: smoke", "name: plugins")
    faulty = ("faulty-columns", "faulty-raises", "faulty-dies", "faulty-interrupts")
    entries = "".join(f"  - name: {name}\n" for name in faulty)
    suite.write_text(text.split("architectures:")[0] + "architectures:\n  - name: example-smooth-minima\n" + entries)
    result = bench_process("run", "--suite", suite, "--results", tmp_path, env={"PYTHONPATH": plugin_path})
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("Error: 4 job(s) failed")
    assert "Traceback" not in result.stderr
    jobs = ResultsStore.latest("plugins", tmp_path).manifest["jobs"]
    assert jobs["example-smooth-minima-seed0-ts"]["status"] == "ok"
    assert "predict() returned columns ['label', 'z', 'y', 'x']" in jobs["faulty-columns-seed0-ts"]["error"]
    assert jobs["faulty-raises-seed0-ts"]["error"] == "RuntimeError: simulated CUDA out of memory"
    assert "killed by SIGKILL" in jobs["faulty-dies-seed0-ts"]["error"]
    assert jobs["faulty-interrupts-seed0-ts"]["error"] == "KeyboardInterrupt: the plug-in gave up"  # not SIGINT
    scores = pd.read_csv(ResultsStore.latest("plugins", tmp_path).folder / "scores.csv")
    assert set(scores["architecture"]) == {"example-smooth-minima"}
    json.loads((ResultsStore.latest("plugins", tmp_path).folder / "manifest.json").read_text())


def test_report_refreshes_the_readme_block_between_markers(smoke_run, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- bench-report:smoke:start -->\nold table\n<!-- bench-report:smoke:end -->\noutro\n")
    result = bench("report", "--results", smoke_run.folder, "--out", tmp_path / "r", "--readme", readme)
    assert result.exit_code == 0, result.output
    text = readme.read_text()
    assert text.startswith("intro\n<!-- bench-report:smoke:start -->\n| Group | Architecture | Recall |")
    assert "old table" not in text and text.endswith("<!-- bench-report:smoke:end -->\noutro\n")
    readme.write_text("no markers\n")
    result = bench("report", "--results", smoke_run.folder, "--out", tmp_path / "r", "--readme", readme)
    assert_one_line_error(result, "no '<!-- bench-report:smoke:start -->'")


def test_ablation_variants_score_the_same_candidates_after_more_steps(smoke_run, smoke_config):
    variants = [v["name"] for v in load_suite("smoke").architectures[1].ablation]
    ablation = smoke_run.table("ablation")
    assert list(ablation.columns) == TABLES["ablation"]
    expected = sorted((f"deepfindet+{variant}", seed) for variant in variants for seed in (0, 1))
    assert sorted(zip(ablation["architecture"], ablation["seed"], strict=True)) == expected
    assert (ablation["base"] == "deepfindet").all() and (ablation["postprocess_seconds"] > 0).all()
    resources = smoke_run.table("resources")
    assert not resources["architecture"].str.contains("+", regex=False).any()  # one fit per job, variants none
    assert smoke_run.manifest["jobs"]["matched-filter-seed0-ts"]["postprocess_fitted"] == [{}]  # its nms step
    scores, thresholds = smoke_run.table("scores"), smoke_run.table("thresholds")
    for variant in variants:
        mine = scores[(scores["architecture"] == f"deepfindet+{variant}") & (scores["particle_type"] == "weighted")]
        assert sorted(zip(mine["seed"], mine["split"], strict=True)) == [
            (0, "test"),
            (0, "val"),
            (1, "test"),
            (1, "val"),
        ]
        assert len(thresholds[thresholds["architecture"] == f"deepfindet+{variant}"]) == 2 * 6

    # every variant starts from the entry's own candidates of the test runs, and its stored picks score as stored
    test_runs = ["TS_5_4", "TS_69_2"]
    folder = smoke_run.predictions_dir("deepfindet", 0, "ts")
    base = pd.read_csv(folder / "candidates.csv")
    rows = ablation[ablation["seed"] == 0].set_index("variant")
    assert (rows["candidates_before"] == base["experiment"].isin(test_runs).sum()).all()
    assert rows.loc["light-merge", "candidates_after"] <= rows.loc["light-merge", "candidates_before"]
    assert rows.loc["offsets", "candidates_after"] >= rows.loc["offsets", "candidates_before"]
    project = Project(str(smoke_config))
    truth = pd.concat([project.ground_truth(run) for run in test_runs], ignore_index=True)
    for variant in variants:
        found = pd.read_csv(folder / "ablation" / variant / "candidates.csv")
        assert found["experiment"].isin(test_runs).sum() == rows.loc[variant, "candidates_after"]
        picks = pd.concat([read_submission(folder / "ablation" / variant / f"{run}.csv") for run in test_runs])
        mine = scores[(scores["architecture"] == f"deepfindet+{variant}") & (scores["seed"] == 0)]
        stored = mine.query("split == 'test' and particle_type == 'weighted'")["f4"]
        assert score_picks(truth, picks, project.particles).weighted == pytest.approx(stored.iloc[0])


def test_report_has_the_ablation_table_of_each_entry_with_variants(smoke_run, tmp_path):
    result = bench("report", "--results", smoke_run.folder, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    readme = (tmp_path / "README.md").read_text()
    section = readme.split("## Post-processing ablation")[1].split("## Training")[0]
    assert "### `deepfindet`" in section and "### `matched-filter`" not in section
    assert "| Particle (weight) | deepfindet F4 | +intensity: F4 (change) |" in section
    assert "| thyroglobulin (2) |" in section and "| **competition score** |" in section
    assert "`light-merge(distance=0.5)`" in section
    assert "deepfindet+light-merge" not in readme.split("## Post-processing ablation")[0]  # not an architecture row
    assert (tmp_path / "ablation.png").read_bytes()[:4] == b"\x89PNG"
