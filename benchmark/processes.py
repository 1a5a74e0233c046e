"""Process plumbing: a job, and the `bench run` that started it, leave nothing running, whatever a plug-in does.

A plug-in's child that calls setsid leaves the job's process group, so a group kill misses it; one whose parent
exits is re-parented to init, out of reach of its job. Jobs and the runner therefore make themselves subreapers
(Linux's PR_SET_CHILD_SUBREAPER): an orphan is re-parented to the nearest of them instead, stays a descendant, and
is stopped with the job's process tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time

import psutil

PR_SET_PDEATHSIG = 1  # prctl option: a signal for this process when its parent dies
PR_SET_CHILD_SUBREAPER = 36  # prctl option: orphaned descendants are re-parented to this process, not to init
PR_GET_CHILD_SUBREAPER = 37
REAP_SECONDS = 5.0  # how long a killed child of this process is waited for
RUNNER_VARIABLE = "CRYOET_BENCH_RUNNER"  # the pid of the `bench run` that started a job, in the job's environment
#: how every job's OpenMP threads wait for work: passively (see `benchmark.launchers.Slot.environment`)
JOB_WAIT_POLICY = {"OMP_WAIT_POLICY": "PASSIVE"}


def process_age() -> float:
    """Seconds since this process started: on Linux from its start in clock ticks since boot (10 ms), where psutil's
    wall-clock start time rounds the boot time to whole seconds; elsewhere psutil's."""
    try:
        with open("/proc/self/stat") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime, after the command name
        return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time() - psutil.Process().create_time()


def wait_as_jobs_do() -> None:
    """Make this process's OpenMP threads wait as a job's do, so that what it times (`bench calibrate`, `bench tune`
    train in-process) is what a job takes: spinning threads run a step about a fifth faster alone. Takes effect only
    before torch loads its OpenMP runtime."""
    os.environ.update(JOB_WAIT_POLICY)


def _prctl(option: int, value: int = 0) -> int | None:
    """Call prctl (Linux only; None elsewhere or when it fails)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    if option == PR_GET_CHILD_SUBREAPER:
        flag = ctypes.c_int(0)
        return flag.value if libc.prctl(option, ctypes.byref(flag), 0, 0, 0) == 0 else None
    return 0 if libc.prctl(option, value, 0, 0, 0) == 0 else None


def adopt_orphans(on: bool = True) -> None:
    """Make this process (or stop it being) the subreaper of its descendants."""
    _prctl(PR_SET_CHILD_SUBREAPER, int(on))


def kill_tree(pid: int, include_root: bool = True) -> None:
    """Kill a process (or, without `include_root`, only its descendants) and every descendant, and reap those that
    are this process's children."""
    try:
        root = psutil.Process(pid)
        doomed = [*root.children(recursive=True), *([root] if include_root else [])]
    except psutil.NoSuchProcess:
        return
    for process in doomed:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    for process in doomed:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired, ChildProcessError):
            if process.ppid() == os.getpid():
                process.wait(REAP_SECONDS)


def stop_descendants() -> None:
    """Kill everything this process started, orphans it adopted included."""
    kill_tree(os.getpid(), include_root=False)


def die_with(runner: int) -> None:
    """Adopt the orphans of this job's plug-in, and have the kernel signal this job when the runner `bench run`
    process dies (Linux); the job then kills every descendant and its own process group, so nothing outlives the
    runner."""
    adopt_orphans()
    if not runner or not sys.platform.startswith("linux"):
        return
    signal.signal(signal.SIGTERM, lambda signum, frame: _die())
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != runner:  # the runner died before the request took effect
        _die()


def _die() -> None:
    """Kill every descendant, then this process's group (this job leads it)."""
    stop_descendants()
    os.killpg(0, signal.SIGKILL)


class Orphanage:
    """`bench run` as the last subreaper of the jobs it runs on this machine (`here`): the descendants of a job that
    died outright (killed by the kernel for memory, say) are re-parented to the runner, which stops them when a job
    ends and when it exits. Only processes that carry this runner's mark in their environment (`runner_mark`, which
    jobs pass on to what they start) are its jobs' orphans; the jobs still running are left alone."""

    def __init__(self, here: bool = True):
        self.here, self.was = here, None

    def __enter__(self) -> Orphanage:
        if self.here:
            self.was = _prctl(PR_GET_CHILD_SUBREAPER)
            adopt_orphans()
        return self

    def sweep(self, jobs: set[int]) -> None:
        """Kill the adopted orphans: this runner's marked children that are not running `jobs`."""
        if not self.here:
            return
        mark = runner_mark()
        for child in psutil.Process().children():
            try:
                marked = child.environ().get(RUNNER_VARIABLE) == mark[RUNNER_VARIABLE]
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            if marked and child.pid not in jobs:
                kill_tree(child.pid)

    def __exit__(self, *exc: object) -> None:
        self.sweep(set())
        if self.was == 0:
            adopt_orphans(False)


def runner_mark() -> dict[str, str]:
    """The environment variable that marks a job process (and what it starts) as this runner's."""
    return {RUNNER_VARIABLE: str(os.getpid())}
