"""Where a suite's jobs run: child processes of `bench run` (the default), submitit's local executor, or a SLURM
cluster through submitit. Each job is `benchmark.job` on its spec file and leaves the same files whichever runs it."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmark.endings import SLURM_ACTIVE, SLURM_QUEUED, process_failure, slurm_failure
from benchmark.errors import BenchError
from benchmark.interface import Budget
from benchmark.jobspec import PHASES
from benchmark.processes import JOB_WAIT_POLICY, kill_tree, runner_mark
from benchmark.suite import Launch

LAUNCHERS = ("process", "local", "slurm")
START_MINUTES = 2  # added to a SLURM job's time limit: the interpreter and submitit starting on the node
SACCT_SECONDS = 30  # how often the state of a SLURM job without a result is asked of sacct
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class Slot:
    """What one job may use of a machine: one GPU (None: every GPU it sees), its CPU threads (None: as many as a job
    alone has), and whether it shares the cores with other jobs."""

    gpu: str | None = None  # a CUDA_VISIBLE_DEVICES entry
    threads: int | None = None
    shared: bool = False

    def environment(self) -> dict[str, str]:
        """The variables that pin a job process to its slot. Jobs that share the cores keep the thread count of a
        job alone (a thread count changes the order of floating-point sums, and so scores). Every job's OpenMP
        threads wait passively: spinning threads take the cores from any other process (another job, or anything
        else running on the machine) and lose them back, which slowed epochs 4x beside one busy process where waiting
        passively slowed them 1.5x (benchmarks/test_contention.py), for about a fifth more time alone."""
        pinned = {} if self.gpu is None else {"CUDA_VISIBLE_DEVICES": self.gpu}
        threads = {} if self.threads is None else dict.fromkeys(THREAD_VARIABLES, str(self.threads))
        return pinned | threads | JOB_WAIT_POLICY


class Running(ABC):
    """A launched job."""

    job_id: str  # the pid or the scheduler's job id
    pid: int | None = None  # the process on this machine that runs the job (None: it runs elsewhere)
    result_grace = 0.0  # seconds the runner waits for the result of a job that is over, before calling it lost

    @abstractmethod
    def ended(self) -> bool:
        """Whether the job is over (with or without a result)."""

    def queued(self) -> bool:
        """Whether the job waits in a queue (its budget's clock is not running)."""
        return False

    @abstractmethod
    def stop(self) -> None:
        """Stop the job and everything it started."""

    @abstractmethod
    def failure(self) -> dict[str, str]:
        """How a job that left no result ended: its status and error."""


class Launcher(ABC):
    """Starts jobs: at most `jobs` at once, each in one of its slots."""

    name: str
    owns_jobs = False  # whether a job dies with the `bench run` that started it
    runs_here = True  # whether its jobs run as descendants of the `bench run` that started them

    def __init__(self, jobs: int, device: str, settings: Launch):
        if jobs < 1:
            raise BenchError(f"--jobs {jobs}: run at least one job at a time")
        self.jobs, self.device, self.settings = jobs, device, settings

    def slots(self) -> list[Slot]:
        """One slot per job running at once on this machine: its own GPU on cuda; the cores shared (see Slot)."""
        if self.jobs == 1:
            return [Slot()]
        cores = len(os.sched_getaffinity(0))
        if self.jobs > cores:
            raise BenchError(
                f"--jobs {self.jobs} on {cores} cores would give a job less than a core; use --jobs {cores} or fewer"
            )
        if not self.device.startswith("cuda"):
            return [Slot(shared=True)] * self.jobs
        if self.device != "cuda":
            raise BenchError(f"--jobs pins each job to its own GPU; use --device cuda, not {self.device}")
        gpus = visible_gpus()
        if self.jobs > len(gpus):
            raise BenchError(
                f"--jobs {self.jobs} needs a GPU per job and this machine shows {len(gpus)}; use --jobs {len(gpus)} "
                "or fewer"
            )
        return [Slot(gpu, shared=True) for gpu in gpus[: self.jobs]]

    @property
    def sharing(self) -> int:
        """How many jobs share this machine's cores at most."""
        return self.jobs

    def record(self) -> dict[str, Any]:
        """The launch as the manifest records it."""
        return {"launcher": self.name, "jobs": self.jobs, "slots": [asdict(slot) for slot in self.slots()]}

    @abstractmethod
    def launch(self, spec: Path, slot: Slot, budget: Budget) -> Running:
        """Start the job of a spec file."""


class ProcessLauncher(Launcher):
    """Each job a child process of `bench run`, in its own process group, dying with it."""

    name = "process"
    owns_jobs = True

    def launch(self, spec: Path, slot: Slot, budget: Budget) -> Running:
        """Start `python -m benchmark.job SPEC`."""
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmark.job", str(spec)],
            start_new_session=True,
            env={**os.environ, **slot.environment(), **runner_mark()},
        )
        return ChildProcess(process)


class ChildProcess(Running):
    """A job run by the process launcher."""

    def __init__(self, process: subprocess.Popen):
        self.process, self.job_id, self.pid = process, str(process.pid), process.pid

    def ended(self) -> bool:
        """Whether the process has exited."""
        return self.process.poll() is not None

    def stop(self) -> None:
        """Kill the job's process tree (with the orphans it adopted) and its process group (it leads its own
        session), and reap it."""
        if self.process.poll() is None:
            kill_tree(self.process.pid, include_root=False)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def failure(self) -> dict[str, str]:
        """How the process died."""
        return process_failure(self.process.returncode, Path(self.process.args[-1]).parent)


class SubmititLauncher(Launcher):
    """Jobs submitted through a submitit executor, its logs in the job's `submitit/` folder."""

    def launch(self, spec: Path, slot: Slot, budget: Budget) -> Running:
        """Submit `benchmark.job.main([SPEC])`."""
        from submitit.core.utils import FailedJobError

        from benchmark.job import main

        executor = self.executor(spec.parent / "submitit", slot, budget)
        try:
            return self.running(executor.submit(main, [str(spec)]))
        except FailedJobError as err:
            refusal = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            raise BenchError(
                f"{self.name} refused job {spec.parent.name} ({refusal}); fix the launcher settings, then resume"
            ) from None

    @abstractmethod
    def executor(self, folder: Path, slot: Slot, budget: Budget) -> Any:
        """A submitit executor for one job."""

    @abstractmethod
    def running(self, job: Any) -> Running:
        """The submitted job."""


class LocalLauncher(SubmititLauncher):
    """submitit's local executor: each job under a submitit controller process on this machine."""

    name = "local"

    def executor(self, folder: Path, slot: Slot, budget: Budget) -> Any:
        """A local executor with the slot's GPU and threads and the job's time limit."""
        import submitit

        executor = submitit.LocalExecutor(folder, max_num_timeout=0)
        environment = {**slot.environment(), **runner_mark()}
        if slot.gpu is None and "CUDA_VISIBLE_DEVICES" in os.environ:  # submitit would replace it
            environment["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
        exports = [f"export {key}={value}" for key, value in environment.items()]  # after submitit's own variables
        gpus = len(visible_gpus()) if self.device.startswith("cuda") else 0
        executor.update_parameters(timeout_min=time_minutes(budget), setup=exports, gpus_per_node=gpus)
        return executor

    def running(self, job: Any) -> Running:
        """The local job."""
        return LocalJob(job)


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries."""
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        return [entry.strip() for entry in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if entry.strip()]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


class LocalJob(Running):
    """A job under submitit's local controller."""

    def __init__(self, job: Any):
        self.job, self.job_id, self.pid = job, str(job.job_id), int(job.job_id)

    def ended(self) -> bool:
        """Whether the controller has exited."""
        return self.job.done()

    def stop(self) -> None:
        """Kill the controller and its tasks, and reap the controller (once reaped, its pid may be another's)."""
        if not self.job.done():  # an exited controller stays a zombie, its pid held, until done() reaps it
            kill_tree(self.pid, include_root=False)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        while not self.job.done():
            time.sleep(0.05)

    def failure(self) -> dict[str, str]:
        """How the controller ended, and where its log is."""
        return {
            "status": "failed",
            "error": f"the submitit job ended {self.job.state} without a result; see {self.job.paths.stderr}",
        }


class SlurmLauncher(SubmititLauncher):
    """SLURM through submitit: one sbatch job per benchmark job, at most `jobs` queued or running at once."""

    name = "slurm"

    def __init__(self, jobs: int, device: str, settings: Launch):
        super().__init__(jobs, device, settings)
        missing = [command for command in ("sbatch", "sacct", "scancel") if shutil.which(command) is None]
        if missing:
            raise BenchError(
                f"--launcher slurm needs SLURM's {' and '.join(missing)}, and this machine's PATH has none; run bench "
                "on a cluster's login node, or use --launcher local"
            )
        if settings.partition is not None:
            known = partitions()
            if settings.partition not in known:
                raise BenchError(
                    f"unknown SLURM partition '{settings.partition}'; this cluster has {', '.join(known) or 'none'}: "
                    "set launcher.partition in the suite or pass --partition"
                )

    def slots(self) -> list[Slot]:
        """The cluster places each job: its threads are its CPUs, its GPUs SLURM's."""
        return [Slot(threads=self.settings.cpus_per_job)] * self.jobs

    runs_here = False

    @property
    def sharing(self) -> int:
        """One: each job has its own allocation."""
        return 1

    def record(self) -> dict[str, Any]:
        """The launch with its SLURM settings."""
        return {**super().record(), "slurm": asdict(self.settings), "gpus_per_job": self.gpus_per_job}

    @property
    def gpus_per_job(self) -> int:
        """The GPUs each job asks for: the setting, else one on cuda and none on CPU."""
        if self.settings.gpus_per_job is not None:
            return self.settings.gpus_per_job
        return 1 if self.device.startswith("cuda") else 0

    def executor(self, folder: Path, slot: Slot, budget: Budget) -> Any:
        """A SLURM executor with the suite's settings and a time limit of the job's budget plus grace."""
        import submitit

        settings = self.settings
        executor = submitit.SlurmExecutor(folder, max_num_timeout=0)
        optional = {
            "partition": settings.partition,
            "account": settings.account,
            "cpus_per_task": settings.cpus_per_job,
            "mem": None if settings.mem_gb is None else f"{settings.mem_gb}GB",
            "gpus_per_node": self.gpus_per_job or None,
        }
        exports = [f"export {key}={value}" for key, value in slot.environment().items()]
        executor.update_parameters(
            job_name=folder.parent.name,
            time=time_minutes(budget),
            setup=[*settings.setup, *exports],
            additional_parameters=dict(settings.sbatch),
            **{key: value for key, value in optional.items() if value is not None},
        )
        return executor

    def running(self, job: Any) -> Running:
        """The SLURM job."""
        return SlurmJob(job, self.settings)


class SlurmJob(Running):
    """A job submitted to SLURM."""

    result_grace = 10.0  # the node's write may reach this machine's view of a shared file system late

    def __init__(self, job: Any, settings: Launch):
        self.job, self.job_id, self.settings = job, str(job.job_id), settings
        self.asked, self.state = 0.0, "UNKNOWN"

    def ended(self) -> bool:
        """Whether it has returned, or sacct (asked every SACCT_SECONDS) says it is over; a pre-empted job counts as
        over (submitit would wait for SLURM to requeue it; it is cancelled instead and re-submitted on resume)."""
        if self.job.paths.result_pickle.exists():
            return True
        if time.monotonic() - self.asked > SACCT_SECONDS:
            self.asked, self.state = time.monotonic(), slurm_state(self.job)
        return self.state not in SLURM_ACTIVE

    def queued(self) -> bool:
        """Whether SLURM last said it waits to (re)start."""
        return self.state in SLURM_QUEUED

    def stop(self) -> None:
        """scancel it (nothing happens to a job that is over)."""
        self.job.cancel(check=False)

    def failure(self) -> dict[str, str]:
        """Why SLURM ended it without a result."""
        return slurm_failure(self.job_id, slurm_state(self.job), self.settings.mem_gb, self.job.paths.stderr)


def slurm_state(job: Any) -> str:
    """A SLURM job's state as sacct tells it now ("CANCELLED by 123" is CANCELLED)."""
    return str(job.get_info(mode="force").get("State", "UNKNOWN")).split()[0]


def partitions() -> list[str]:
    """The cluster's partitions, from sinfo (the default one loses its '*')."""
    try:
        listed = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise BenchError(f"cannot list SLURM partitions with sinfo ({err}); check that SLURM answers here") from None
    return sorted({line.strip().rstrip("*") for line in listed.splitlines() if line.strip()})


def time_minutes(budget: Budget) -> int:
    """A job's time limit: every phase's limit (its cap plus grace), and the minutes a job takes to start."""
    return math.ceil(sum(budget.limit(phase) for phase in PHASES) / 60) + START_MINUTES


def make_launcher(name: str, jobs: int, device: str, settings: Launch) -> Launcher:
    """The launcher called `name`, checked against this machine."""
    kinds = dict(zip(LAUNCHERS, (ProcessLauncher, LocalLauncher, SlurmLauncher), strict=True))
    launcher = kinds[name](jobs, device, settings)
    launcher.slots()  # refuse what this machine cannot give now, before any job runs
    return launcher


def still_running(entry: dict, folder: Path) -> str | None:
    """What still runs the job of a manifest entry marked running (None when nothing does), by the launcher that
    started it."""
    launcher, job_id = entry.get("launcher", "process"), str(entry.get("launcher_job_id", entry.get("pid")))
    if launcher == "slurm":
        return _slurm_running(job_id, folder / "submitit")
    wanted = str(folder / ("job.json" if launcher == "process" else "submitit"))
    try:
        return f"pid {job_id}" if any(wanted in part for part in psutil.Process(int(job_id)).cmdline()) else None
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return None


def _slurm_running(job_id: str, folder: Path) -> str | None:
    """Whether a SLURM job is queued or running, as sacct says (a job sacct no longer lists is not); without sacct,
    an error."""
    if shutil.which("sacct") is None:
        raise BenchError(
            f"SLURM job {job_id} of this results folder was running, and its state cannot be read here (no sacct); "
            "resume it on the cluster that ran it"
        )
    import submitit

    state = slurm_state(submitit.SlurmJob(folder, job_id))
    return f"SLURM job {job_id} ({state})" if state in SLURM_ACTIVE - {"UNKNOWN"} else None
