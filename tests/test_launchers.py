"""Launchers: submitit's local executor, SLURM through submitit, and several jobs at once.

The SLURM tests run against tests/fake_slurm: sbatch, srun, sacct, scancel and sinfo stand-ins that run each job
here with SLURM's variables and let a test set a job's state (pending, pre-empted, killed for time or memory).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from commands import MATCHED_FILTER_ONLY, assert_one_line_error, bench, suite_file
from submitit.core.utils import UncompletedJobError

import benchmark.job
from benchmark import launchers
from benchmark.errors import BenchError
from benchmark.interface import Budget
from benchmark.jobspec import JobSpec
from benchmark.launchers import Slot, SlurmLauncher, time_minutes
from benchmark.results import ResultsStore
from benchmark.suite import Launch, load_suite

FAKE_SLURM = Path(__file__).parent / "fake_slurm"
LAUNCHER_SECTION = """launcher:
  partition: gpu
  account: lab
  cpus_per_job: 2
  mem_gb: 16
  sbatch: {qos: high}
  setup: ["echo ran > SETUP_FILE"]
"""
LAUNCH = "launch"  # the suite name of the tests' suite files
SCORED = ["architecture", "seed", "fold", "split", "particle_type", "precision", "recall", "f4", "tp", "fp", "fn"]


def scores(store: ResultsStore, seed: int = 0, architectures: list[str] | None = None) -> pd.DataFrame:
    """One seed's score rows, in a fixed order."""
    rows = store.table("scores")
    rows = rows[(rows["seed"] == seed) & (architectures is None or rows["architecture"].isin(architectures))]
    return rows[SCORED].sort_values(SCORED[:5]).reset_index(drop=True)


@pytest.fixture(scope="session")
def slurm_state(tmp_path_factory) -> Path:
    """The fake cluster's folder for the session: job ids stay unique, as submitit's sacct cache expects."""
    return tmp_path_factory.mktemp("fake-slurm")


@pytest.fixture
def fake_slurm(slurm_state, monkeypatch) -> Path:
    """A fake SLURM on PATH that runs its jobs at once (create `hold` in the returned folder to keep them pending)."""
    monkeypatch.setenv("FAKE_SLURM", str(slurm_state))
    monkeypatch.setenv("PATH", f"{FAKE_SLURM}{os.pathsep}{os.environ['PATH']}")
    (slurm_state / "hold").unlink(missing_ok=True)
    return slurm_state


@pytest.fixture(scope="module")
def alone(smoke_config, tmp_path_factory) -> ResultsStore:
    """A matched-filter-only smoke run by the default launcher."""
    root = tmp_path_factory.mktemp("alone")
    suite = suite_file(root, MATCHED_FILTER_ONLY, name=LAUNCH)
    result = bench("run", "--suite", suite, "--results", root, "--no-write-picks")
    assert result.exit_code == 0, result.output
    return ResultsStore.latest("launch", root)


@pytest.fixture(scope="module")
def two_at_once(smoke_run, tmp_path_factory) -> ResultsStore:
    """Seed 0 of the smoke suite, two jobs at a time."""
    root = tmp_path_factory.mktemp("two")
    result = bench("run", "--suite", "smoke", "--seeds", "0", "--jobs", "2", "--results", root, "--no-write-picks")
    assert result.exit_code == 0, result.output
    return ResultsStore.latest("smoke", root)


def test_the_local_launcher_scores_as_the_default_one(smoke_run, tmp_path):
    # the classical floor and a network: the launcher's plumbing, not every architecture again
    arguments = ("--suite", "smoke", "--seeds", "0", "--arch", "[mu]*", "--launcher", "local", "--results", tmp_path)
    result = bench("run", *arguments)
    assert result.exit_code == 0, result.output
    store = ResultsStore.latest("smoke", tmp_path)
    both = ["matched-filter", "unet3d"]
    assert sorted(store.manifest["jobs"]) == [f"{label}-seed0-ts" for label in both]
    pd.testing.assert_frame_equal(scores(store), scores(smoke_run, architectures=both))
    assert store.manifest["launches"][-1]["launcher"] == "local"
    for key, job in store.manifest["jobs"].items():
        folder = store.job_dir(key)
        assert job["launcher"] == "local" and (folder / "result.json").is_file() and (folder / "job.json").is_file()
        assert list((folder / "submitit").glob("*_log.err"))  # the job's own output, kept


def test_two_jobs_at_once_score_as_one_at_a_time_and_overlap(smoke_run, two_at_once):
    pd.testing.assert_frame_equal(scores(two_at_once), scores(smoke_run))
    launch = two_at_once.manifest["launches"][-1]
    assert launch["jobs"] == 2 and all(slot["shared"] and slot["threads"] is None for slot in launch["slots"])
    assert set(two_at_once.table("resources")["parallel_jobs"]) == {2}
    spans = [(job["started"], job["finished"]) for job in two_at_once.manifest["jobs"].values()]
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1 :])


def test_an_ensemble_waits_for_the_jobs_that_train_its_members(two_at_once):
    resources = two_at_once.table("resources").set_index("architecture")
    members = resources.loc["yolo-unet3d-ensemble", "members"]
    assert members.count("reused") == 2 and "trained here" not in members
    jobs = two_at_once.manifest["jobs"]
    ensemble = jobs["yolo-unet3d-ensemble-seed0-ts"]["started"]
    assert all(jobs[f"{member}-seed0-ts"]["finished"] <= ensemble for member in ("yolov8", "unet3d"))


def test_the_report_marks_jobs_cut_by_the_cap_while_sharing_the_cores(two_at_once, tmp_path):
    folder = shutil.copytree(two_at_once.folder, tmp_path / "cut")
    resources = pd.read_csv(folder / "resources.csv")
    resources.loc[resources["architecture"] == "unet3d", "stopped_by"] = "minutes"
    resources.to_csv(folder / "resources.csv", index=False)
    result = bench("report", "--results", folder, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    readme = (tmp_path / "report" / "README.md").read_text()
    training = readme.split("## Training under the budget")[1]
    row = next(line for line in training.splitlines() if line.startswith("| unet3d | "))
    assert "cut by the cap in 1 of 1; 1 of them sharing the cores with other jobs" in row
    assert "- Launch: process launcher, 2 job(s) at once; jobs shared the cores" in readme


def test_slurm_jobs_are_submitted_with_the_suite_settings_and_score_as_alone(alone, fake_slurm, tmp_path):
    text = MATCHED_FILTER_ONLY.replace("seeds:", LAUNCHER_SECTION + "seeds:").replace("SETUP_FILE", str(tmp_path / "s"))
    suite = suite_file(tmp_path, text, name=LAUNCH)
    result = bench("run", "--suite", suite, "--launcher", "slurm", "--sbatch", "constraint=a100", "--results", tmp_path,
                   "--no-write-picks")  # fmt: skip
    assert result.exit_code == 0, result.output
    store = ResultsStore.latest("launch", tmp_path)
    pd.testing.assert_frame_equal(scores(store), scores(alone))
    job = store.manifest["jobs"]["matched-filter-seed0-ts"]
    assert job["launcher"] == "slurm" and job["status"] == "ok"
    script = (fake_slurm / f"{job['launcher_job_id']}.sbatch").read_text()
    minutes = time_minutes(load_suite(str(suite)).budget)
    for line in ("--partition=gpu", "--account=lab", "--cpus-per-task=2", "--mem=16GB", "--qos=high",
                 "--constraint=a100", f"--time={minutes}", "--job-name=matched-filter-seed0-ts"):  # fmt: skip
        assert f"#SBATCH {line}\n" in script
    assert "--gpus" not in script  # a CPU suite asks for no GPU
    assert "export OMP_NUM_THREADS=2\n" in script and (tmp_path / "s").read_text() == "ran\n"
    launch = store.manifest["launches"][-1]
    assert launch["slurm"]["partition"] == "gpu" and launch["slurm"]["sbatch"] == {"qos": "high", "constraint": "a100"}
    assert "--launcher slurm --sbatch constraint=a100" in store.manifest["command"]


@pytest.mark.slow
def test_a_slurm_job_on_cuda_asks_for_one_gpu_and_the_time_of_its_budget(fake_slurm, tmp_path):
    launcher = SlurmLauncher(1, "cuda", Launch(partition="gpu"))
    budget = Budget(minutes=5, grace_minutes=0.5, predict_minutes=1.5)
    parameters = launcher.executor(tmp_path / "job" / "submitit", Slot(), budget).parameters
    assert parameters["gpus_per_node"] == 1 and parameters["partition"] == "gpu"
    assert parameters["time"] == 21  # set-up, fit and scoring 5.5 min each, predictions 2, and 2 to start
    assert parameters["job_name"] == "job"


def run_held(suite: Path, results: Path, slurm: Path, state: str, monkeypatch) -> tuple[ResultsStore, str]:
    """`bench run --launcher slurm` whose job is held pending and then ends in `state` before it ran; returns the
    results folder and the runner's last line."""
    monkeypatch.setattr(launchers, "SACCT_SECONDS", 0.2)
    (slurm / "hold").touch()
    last = int((slurm / "last").read_text()) if (slurm / "last").exists() else 1000
    submitted = slurm / f"{last + 1}.state"

    def end_it() -> None:
        for _ in range(600):
            if submitted.exists():
                break
            time.sleep(0.1)
        submitted.write_text(f"{state}\n")

    ender = threading.Thread(target=end_it)
    ender.start()
    result = bench("run", "--suite", suite, "--launcher", "slurm", "--results", results, "--no-write-picks")
    ender.join()
    (slurm / "hold").unlink()
    assert result.exit_code != 0, result.output
    return ResultsStore.latest("launch", results), result.output.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_preempted_slurm_job_is_resubmitted_by_resume(alone, fake_slurm, tmp_path, monkeypatch):
    suite = suite_file(tmp_path, MATCHED_FILTER_ONLY, name=LAUNCH)
    store, last = run_held(suite, tmp_path, fake_slurm, "PREEMPTED", monkeypatch)
    job = store.manifest["jobs"]["matched-filter-seed0-ts"]
    assert job["status"] == "interrupted" and "ended PREEMPTED" in job["error"] and "--resume" in job["error"]
    assert last.startswith("Error: 1 job(s) failed")
    result = bench("run", "--suite", suite, "--resume", store.folder, "--no-write-picks")  # the launcher it had
    assert result.exit_code == 0, result.output
    again = store.manifest["jobs"]["matched-filter-seed0-ts"]
    assert again["status"] == "ok" and again["launcher"] == "slurm"
    assert again["launcher_job_id"] != job["launcher_job_id"]
    assert [launch["launcher"] for launch in store.manifest["launches"]] == ["slurm", "slurm"]
    pd.testing.assert_frame_equal(scores(store), scores(alone))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("state", "reason"),
    [("TIMEOUT", "it ran past its time limit"), ("OUT_OF_MEMORY", "out of memory (its limit of 16 GB)")],
)
def test_a_job_slurm_kills_is_recorded_with_the_reason(fake_slurm, tmp_path, monkeypatch, state, reason):
    suite = suite_file(tmp_path, MATCHED_FILTER_ONLY.replace("seeds:", "launcher: {mem_gb: 16}\nseeds:"), name=LAUNCH)
    store, _ = run_held(suite, tmp_path, fake_slurm, state, monkeypatch)
    job = store.manifest["jobs"]["matched-filter-seed0-ts"]
    assert job["status"] == "failed" and job["error"] == f"killed by SLURM (job {job['launcher_job_id']}): {reason}"


def test_submitits_time_limit_signal_is_recorded_as_the_time_limit(smoke_config, tmp_path, monkeypatch):
    def warned(job):
        raise UncompletedJobError("Job not requeued because: timed-out and not checkpointable.")

    monkeypatch.setattr(benchmark.job, "run_job", warned)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    spec = JobSpec("k", str(tmp_path), str(tmp_path), "smoke", str(smoke_config), {}, "", 0, "ts", "cpu",
                                 1, None)  # fmt: skip
    result = benchmark.job._result(spec, tmp_path, entered=0.0)
    assert result == {"status": "failed", "error": "killed by SLURM (job 4242): it ran past its time limit"}


def test_a_resume_refuses_while_a_slurm_job_of_the_folder_still_runs(alone, fake_slurm, tmp_path):
    store = ResultsStore(shutil.copytree(alone.folder, tmp_path / "launch" / alone.folder.name))
    store.update_job("matched-filter-seed0-ts", status="running", launcher="slurm", launcher_job_id="99999")
    (fake_slurm / "99999.state").write_text("RUNNING\n")
    result = bench("run", "--suite", suite_file(tmp_path, MATCHED_FILTER_ONLY, name=LAUNCH), "--resume", store.folder)
    assert_one_line_error(result, "job matched-filter-seed0-ts of", "is still running as SLURM job 99999 (RUNNING)")


@pytest.mark.parametrize(
    ("options", "suite_text", "message"),
    [
        (["--launcher", "slurm"], "", "--launcher slurm needs SLURM's sbatch and sacct and scancel"),
        (["--launcher", "slurm", "--partition", "gpus"], "", "unknown SLURM partition 'gpus'; this cluster has cpu"),
        ([], "launcher: {partiton: gpu}\n", "unknown field(s) launcher.partiton"),
        (["--partition", "gpu"], "", "--partition is a SLURM setting; add --launcher slurm"),
        (["--jobs", "999"], "", "--jobs 999 on"),
        (["--launcher", "slurm", "--sbatch", "time=10"], "", "'time' is set by the launcher"),
        ([], "launcher: {sbatch: {job_name: x}}\n", "'job-name' is set by the launcher"),
    ],
)
def test_bad_launcher_input_is_one_line_and_writes_nothing(slurm_state, tmp_path, monkeypatch, options, suite_text,
                                                            message):  # fmt: skip
    if "needs SLURM's" in message:
        monkeypatch.setenv("PATH", os.defpath)
    else:
        monkeypatch.setenv("PATH", f"{FAKE_SLURM}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("FAKE_SLURM", str(slurm_state))
    suite = suite_file(tmp_path, MATCHED_FILTER_ONLY.replace("seeds:", suite_text + "seeds:"), name=LAUNCH)
    result = bench("run", "--suite", suite, "--results", tmp_path / "results", *options)
    assert_one_line_error(result, message)
    assert not (tmp_path / "results").exists()


def test_slots_pin_a_gpu_per_job_and_every_job_waits_passively():
    assert Slot().environment() == {"OMP_WAIT_POLICY": "PASSIVE"}
    environment = Slot(gpu="1", shared=True).environment()
    assert environment == {"CUDA_VISIBLE_DEVICES": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    threads = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    assert Slot(threads=2).environment() == {**dict.fromkeys(threads, "2"), "OMP_WAIT_POLICY": "PASSIVE"}


def test_jobs_alone_or_sharing_the_cores_ran_waiting_passively(smoke_run, two_at_once):
    for store in (smoke_run, two_at_once):  # as each job recorded it
        assert {job["environment"]["omp_wait_policy"] for job in store.manifest["jobs"].values()} == {"PASSIVE"}


def test_jobs_on_cuda_take_the_gpus_this_process_may_use_one_each(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    slots = launchers.ProcessLauncher(2, "cuda", Launch()).slots()
    assert [slot.gpu for slot in slots] == ["2", "3"] and all(slot.shared for slot in slots)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with pytest.raises(BenchError, match="--jobs 2 needs a GPU per job and this machine shows 1; use --jobs 1"):
        launchers.ProcessLauncher(2, "cuda", Launch()).slots()
    with pytest.raises(BenchError, match="use --device cuda, not cuda:1"):
        launchers.ProcessLauncher(2, "cuda:1", Launch()).slots()
