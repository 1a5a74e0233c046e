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

        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo") as f:
            model = re.search(r"model name\s*:\s*(.+)", f.read())
        name = model.group(1).strip() if model else "unknown CPU"
    except OSError:
        name = "unknown CPU"
    return f"CPU: {name} ({os.cpu_count()} logical cores)"


@dataclass
class MemoryReading:
    """Peak memory of a measured block, with the kind of figure it is."""

    peak_gb: float
    kind: str
    nvml_peak_gb: float | None = None
    baseline_gb: float = 0.0


class PeakMemory:
    """Context manager: on CUDA the torch allocator peak and NVML process peak; on CPU the peak RSS."""

    def __init__(self, device: str, interval: float = 0.02):
        self.device = device
        self.interval = interval
        self.reading: MemoryReading | None = None
        self._stop = threading.Event()
        self._sampled = 0
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start_sampler(_nvml_process_bytes())
        else:
            self._baseline = _rss_bytes()
            if not _reset_peak_rss():
                self._start_sampler(_rss_bytes)
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            nvml = self._sampled / GB if self._sampled else None
            self.reading = MemoryReading(torch.cuda.max_memory_allocated() / GB, "cuda-allocator", nvml)
        else:
            peak = _peak_rss_bytes() if self._thread is None else self._sampled
            self.reading = MemoryReading(peak / GB, "cpu-rss", None, self._baseline / GB)

    def _start_sampler(self, read: Callable[[], int] | None) -> None:
        """Poll `read` in a background thread, keeping the maximum."""
        if read is None:
            return

        def sample() -> None:
            while not self._stop.is_set():
                self._sampled = max(self._sampled, read())
                time.sleep(self.interval)

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


def _nvml_process_bytes() -> Callable[[], int] | None:
    """A reader of this process's GPU memory as NVML sees it, or None without NVML."""
    import torch

    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
    except Exception:  # no driver, no NVML, no handle: the allocator figure stands alone
        return None
    pid = os.getpid()

    def read() -> int:
        processes = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        return sum(p.usedGpuMemory or 0 for p in processes if p.pid == pid)

    return read
