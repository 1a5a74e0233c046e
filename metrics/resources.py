"""Resource probes owned by the runner: peak memory (torch allocator, NVML, RSS) and synchronised timing."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

GB = 1e9  # decimal gigabytes, as the `_gb` columns and the reports say
NVML_INTERVAL = 0.1  # seconds between NVML polls: each holds the GIL, which would disturb timed GPU work


def synchronizer(device: str) -> Callable[[], None]:
    """A function that waits for queued device work (CUDA) before a clock is read; a no-op on CPU."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def device_name(device: str) -> str:
    """Human-readable name of the device figures are measured on (GPU model or CPU model)."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():  # a cluster's login node, its jobs on GPU nodes
            return "CUDA (no GPU where this was recorded)"
        return torch.cuda.get_device_name(torch.device(device))
    model = re.search(r"model name\s*:\s*(.+)", _cpuinfo())
    return f"CPU: {model.group(1).strip() if model else 'unknown CPU'} ({os.cpu_count()} logical cores)"


#: CPU flags that decide which kernels torch, oneDNN and MKL run: their speed, and how their sums round
SPEED_FLAGS = (
    "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "amx_tile", "amx_bf16", "amx_int8",
)  # fmt: skip


def cpu_flags() -> list[str]:
    """The speed-deciding flags this CPU has (from /proc/cpuinfo; empty where it cannot be read)."""
    found = re.search(r"^flags\s*:\s*(.+)$", _cpuinfo(), re.MULTILINE)
    have = set(found.group(1).split()) if found else set()
    return [flag for flag in SPEED_FLAGS if flag in have]


def _cpuinfo() -> str:
    """/proc/cpuinfo's text ('' where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


@dataclass
class MemoryReading:
    """Peak memory of a measured block: above the baseline at its start (what a reader compares), and the whole
    process's; on CUDA also the allocator's reserved peak and NVML's view of the process."""

    peak_gb: float
    process_peak_gb: float
    kind: str
    reserved_peak_gb: float | None = None
    nvml_peak_gb: float | None = None
    nvml_status: str = "not a GPU"


class PeakMemory:
    """Context manager: on CPU the resident-set peak; on CUDA the torch allocator's peaks and NVML's process peak.

    The baseline is what the process holds when the block starts (imports, opened data): `peak_gb` is the peak
    above it, `process_peak_gb` the peak of the whole process.
    """

    def __init__(self, device: str, interval: float = 0.02):
        self.device = device
        self.interval = interval
        self.reading: MemoryReading | None = None
        self._stop = threading.Event()
        self._sampled = 0
        self._thread: threading.Thread | None = None
        self._nvml: NvmlProcess | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)
            self._baseline = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._nvml = NvmlProcess.open(self.device)
            if self._nvml.handle is not None:
                self._start_sampler(self._nvml.read, NVML_INTERVAL)
        else:
            self._baseline = _rss_bytes()
            if not _reset_peak_rss():
                self._start_sampler(_rss_bytes)
        return self

    def __exit__(self, kind, value, trace) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        if kind is not None:  # the block failed: its error, not a second one from the device, is the story
            return
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            self.reading = MemoryReading(
                (peak - self._baseline) / GB,
                peak / GB,
                "cuda-allocator",
                torch.cuda.max_memory_reserved(self.device) / GB,
                self._sampled / GB if self._nvml.seen else None,
                self._nvml.status(),
            )
        else:
            peak = max(_peak_rss_bytes() if self._thread is None else self._sampled, self._baseline)
            self.reading = MemoryReading((peak - self._baseline) / GB, peak / GB, "cpu-rss")

    def _start_sampler(self, read: Callable[[], int], interval: float | None = None) -> None:
        """Poll `read` in a background thread, keeping the maximum."""

        def sample() -> None:
            while not self._stop.is_set():
                self._sampled = max(self._sampled, read())
                time.sleep(interval or self.interval)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()


def _rss_bytes() -> int:
    """Current resident set size of this process."""
    return psutil.Process().memory_info().rss


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux clear_refs 5); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    """The kernel's peak RSS (VmHWM) of this process since the last reset."""
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)\s+kB", f.read()).group(1)) * 1024


@dataclass
class NvmlProcess:
    """This process's memory on one GPU as NVML sees it, the GPU found by UUID (immune to CUDA_VISIBLE_DEVICES).

    In a PID namespace (a container) NVML lists host PIDs, so it may not see the process at all: `seen` says.
    """

    handle: object | None
    pid: int
    problem: str = ""
    seen: bool = False

    @classmethod
    def open(cls, device: str) -> NvmlProcess:
        """Find the NVML handle of a torch CUDA device by its UUID (a GPU's, else a MIG instance's)."""
        try:
            import pynvml
            import torch

            pynvml.nvmlInit()
            uuid = str(torch.cuda.get_device_properties(torch.device(device)).uuid)
        except Exception as err:  # no driver, no NVML: the allocator figures stand alone
            return cls(None, os.getpid(), f"NVML unavailable ({type(err).__name__})")
        for name in nvml_names(uuid):
            try:
                return cls(pynvml.nvmlDeviceGetHandleByUUID(name), os.getpid())
            except pynvml.NVMLError:
                continue
        return cls(None, os.getpid(), f"NVML has no device with UUID {uuid}")

    def read(self) -> int:
        """Bytes NVML attributes to this process on the device (0 when it does not list the process, or fails)."""
        import pynvml

        try:
            processes = pynvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
        except pynvml.NVMLError as err:
            self.problem = self.problem or f"NVML failed ({err})"
            return 0
        mine = [p.usedGpuMemory or 0 for p in processes if p.pid == self.pid]
        self.seen = self.seen or bool(mine)
        return sum(mine)

    def status(self) -> str:
        """'ok', or why there is no NVML figure."""
        if self.problem:
            return self.problem
        return "ok" if self.seen else "process not visible to NVML (PID namespace?)"


def nvml_names(torch_uuid: str) -> list[str]:
    """NVML's possible names of a device from torch's UUID, which has no prefix: a GPU's ('GPU-'), a MIG instance's."""
    if torch_uuid.startswith(("GPU-", "MIG-")):
        return [torch_uuid]
    return [f"GPU-{torch_uuid}", f"MIG-{torch_uuid}"]
