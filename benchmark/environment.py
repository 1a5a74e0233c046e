"""Everything that could make two runs differ, captured for the manifest."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from metrics.resources import cpu_flags, device_name

LIBRARIES = (
    "cryoet-bench", "torch", "torchvision", "monai", "ultralytics", "copick", "zarr",
    "numpy", "scipy", "pandas", "nvidia-ml-py",
)  # fmt: skip
REPO = Path(__file__).resolve().parent.parent


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries a result depends on (None when absent)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def _git(*args: str, cwd: Path = REPO) -> str | None:
    """What a git command prints, or None where it fails (no git, not a repository)."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_state() -> dict[str, str | bool | None]:
    """Commit, short sha and whether the working tree had uncommitted changes."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "short": commit[:7] if commit else None, "dirty": bool(status) if commit else None}


def tracked(path: Path) -> bool:
    """Whether the git repository that holds a file tracks it (it is committed, or staged to be)."""
    return _git("ls-files", "--error-unmatch", path.name, cwd=path.parent) is not None


def torch_state(device: str) -> dict[str, object]:
    """Torch build, CUDA/cuDNN versions and flags, and the device's name."""
    import torch

    return {
        "device": device,
        "device_name": device_name(device),
        "torch_cuda": torch.version.cuda,
        "driver_version": driver_version() if torch.cuda.is_available() else None,
        "cuda_available": torch.cuda.is_available(),
        "cudnn_version": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "num_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the kernels torch dispatches to: AVX2, AVX512...
        "cpu_flags": cpu_flags(),
    }


def use_deterministic_kernels(mode: bool, warn_only: bool = True) -> None:
    """torch.use_deterministic_algorithms for eager kernels, without its import of torch._inductor's config (about a
    second of every job's start) to set a flag that only torch.compile reads: nothing here compiles."""
    import torch

    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:  # a torch without the private setter: the public call, import and all
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
        return
    setter(mode, warn_only=warn_only)
    compiler = sys.modules.get("torch._inductor.config")
    if compiler is not None:  # already imported (by a library that called the public function): keep it in step
        compiler.deterministic = mode


def driver_version() -> str | None:
    """The NVIDIA driver's version as NVML gives it (None without NVML)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return str(pynvml.nvmlSystemGetDriverVersion())
    except Exception:  # no driver library, no NVML: the manifest says nothing rather than fail the run
        return None


def job_environment(device: str) -> dict[str, object]:
    """A job's code (commit, uncommitted changes), how its OpenMP threads wait, and its torch state, or only its
    device when its plug-in never loaded torch."""
    common = {"git": git_state(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    if "torch" in sys.modules:
        return {**common, **torch_state(device)}
    return {**common, "device": device, "device_name": device_name(device), "cpu_flags": cpu_flags(),
            "torch_loaded": False}  # fmt: skip


def environment(device: str) -> dict[str, object]:
    """The manifest's environment block."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "libraries": library_versions(),
        "git": git_state(),
        **torch_state(device),
    }
