"""How a job that left no result ended, in the words the results record: a process's exit, or SLURM's end state."""

from __future__ import annotations

import signal
from pathlib import Path

TIME_LIMIT = "killed by SLURM (job {job_id}): it ran past its time limit"
UNWRITTEN = 75  # a job's exit status when it could not write its result (sysexits' EX_TEMPFAIL)
SLURM_QUEUED = {"PENDING", "REQUEUED", "CONFIGURING", "REQUEUE_HOLD"}  # not (or no longer) started
#: the states of a job that is not over; UNKNOWN is a job sacct does not list yet
SLURM_ACTIVE = SLURM_QUEUED | {"RUNNING", "COMPLETING", "SUSPENDED", "RESIZING", "STAGE_OUT", "SIGNALING", "UNKNOWN"}
#: SLURM end states after which the job is worth running again: `bench run --resume` re-submits it
SLURM_PREEMPTED = {"PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "CANCELLED", "DEADLINE"}


def process_failure(returncode: int | None, folder: Path) -> dict[str, str]:
    """The failure of a job process that exited with `returncode` without writing its result into `folder`."""
    if returncode == UNWRITTEN:
        return {
            "status": "failed",
            "error": f"the job could not write its result into {folder} (disk full or not writable?); free space, "
            "then bench run --resume",
        }
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:  # real-time signals have no name
            name = f"signal {-returncode}"
        hint = " (out of memory?)" if -returncode == signal.SIGKILL else ""
        return {"status": "failed", "error": f"job process killed by {name}{hint}"}
    return {"status": "failed", "error": f"job process exited with code {returncode} without a result"}


def slurm_failure(job_id: str, state: str, mem_gb: int | None, log: Path) -> dict[str, str]:
    """The status and error of a SLURM job that ended in `state` without writing its result."""
    if state == "TIMEOUT":
        return {"status": "failed", "error": TIME_LIMIT.format(job_id=job_id)}
    if state == "OUT_OF_MEMORY":
        memory = f" of {mem_gb} GB" if mem_gb else ""
        return {"status": "failed", "error": f"killed by SLURM (job {job_id}): out of memory (its limit{memory})"}
    if state in SLURM_PREEMPTED:
        return {
            "status": "interrupted",
            "error": f"SLURM job {job_id} ended {state} before it finished; bench run --resume re-submits it",
        }
    return {"status": "failed", "error": f"SLURM job {job_id} ended {state} without a result; see {log}"}
