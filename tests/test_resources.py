"""Runner-owned resource probes on CPU."""

from __future__ import annotations

import numpy as np

from metrics.resources import PeakMemory, device_name


def test_peak_rss_sees_a_temporary_allocation():
    with PeakMemory("cpu") as probe:
        block = np.ones(256 * 1024**2 // 8)  # 256 MB, touched
        del block
    reading = probe.reading
    assert reading.kind == "cpu-rss"
    assert reading.peak_gb - reading.baseline_gb >= 0.24
    assert reading.nvml_peak_gb is None


def test_peak_is_reset_between_blocks():
    with PeakMemory("cpu"):
        block = np.ones(256 * 1024**2 // 8)
        del block
    with PeakMemory("cpu") as quiet:
        pass
    assert quiet.reading.peak_gb - quiet.reading.baseline_gb < 0.1
    assert quiet.reading.peak_gb < 64  # GB: a figure in bytes or MB would not pass


def test_cpu_device_is_named_as_cpu():
    assert device_name("cpu").startswith("CPU: ")
