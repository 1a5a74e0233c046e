"""Runner-owned resource probes: peaks above the job's baseline and of the whole process; NVML by UUID."""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import pytest
import torch

from metrics.resources import NvmlProcess, PeakMemory, device_name, nvml_names


def test_peak_above_baseline_sees_a_temporary_allocation():
    with PeakMemory("cpu") as probe:
        block = np.ones(256 * 1024**2 // 8)  # 256 MB, touched
        del block
    reading = probe.reading
    assert reading.kind == "cpu-rss"
    assert reading.peak_gb >= 0.24
    assert reading.process_peak_gb >= reading.peak_gb + 0.01  # the interpreter and numpy are the baseline
    assert reading.nvml_peak_gb is None and reading.reserved_peak_gb is None


def test_memory_held_before_the_block_is_baseline_not_peak():
    held = np.ones(256 * 1024**2 // 8)
    with PeakMemory("cpu") as quiet:
        pass
    assert quiet.reading.peak_gb < 0.1
    assert quiet.reading.process_peak_gb > 0.25
    assert quiet.reading.process_peak_gb < 64  # GB: a figure in bytes or MB would not pass
    del held


def test_cpu_device_is_named_as_cpu():
    assert device_name("cpu").startswith("CPU: ")


def test_nvml_names_a_device_as_nvml_does_from_torchs_bare_uuid():
    assert nvml_names("6f5e1c2a-0000") == ["GPU-6f5e1c2a-0000", "MIG-6f5e1c2a-0000"]
    assert nvml_names("GPU-6f5e1c2a-0000") == ["GPU-6f5e1c2a-0000"]


class FakeNvmlError(Exception):
    """pynvml's error type, faked."""


@pytest.fixture
def fake_nvml(monkeypatch):
    """A pynvml with one MIG device, whose process list the test sets, and a torch that names it by bare UUID."""
    module = types.SimpleNamespace(listed=[], NVMLError=FakeNvmlError, nvmlInit=lambda: None)

    def handle(name: str) -> str:
        if name != "MIG-6f5e1c2a-0000":
            raise FakeNvmlError("not found")
        return name

    def processes(handle: str) -> list:
        if isinstance(module.listed, Exception):
            raise module.listed
        return module.listed

    module.nvmlDeviceGetHandleByUUID, module.nvmlDeviceGetComputeRunningProcesses = handle, processes
    monkeypatch.setitem(sys.modules, "pynvml", module)
    properties = types.SimpleNamespace(uuid="6f5e1c2a-0000")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: properties)
    return module


def test_nvml_finds_the_device_by_uuid_a_mig_instance_too(fake_nvml):
    process = NvmlProcess.open("cuda:0")
    assert process.handle == "MIG-6f5e1c2a-0000" and process.problem == ""


def test_an_nvml_failure_while_sampling_is_said_not_mistaken_for_a_pid_namespace(fake_nvml):
    fake_nvml.listed = FakeNvmlError("GPU is lost")
    process = NvmlProcess.open("cuda:0")
    assert process.read() == 0
    assert process.status() == "NVML failed (GPU is lost)"


def test_nvml_figure_is_this_process_only(fake_nvml):
    fake_nvml.listed = [types.SimpleNamespace(pid=os.getpid(), usedGpuMemory=3 * 10**9),
                        types.SimpleNamespace(pid=1, usedGpuMemory=9 * 10**9)]  # fmt: skip
    process = NvmlProcess(handle="device", pid=os.getpid())
    assert process.read() == 3 * 10**9
    assert process.status() == "ok"


def test_a_process_nvml_cannot_see_is_said_so(fake_nvml):
    fake_nvml.listed = [types.SimpleNamespace(pid=4242, usedGpuMemory=3 * 10**9)]  # a host PID
    process = NvmlProcess(handle="device", pid=os.getpid())
    assert process.read() == 0
    assert process.status() == "process not visible to NVML (PID namespace?)"
    assert NvmlProcess(None, os.getpid(), "NVML unavailable (NVMLError)").status() == "NVML unavailable (NVMLError)"
