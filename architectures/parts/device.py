"""Running on the device as the runner chose: mixed precision (`Architecture.precision`) and host-to-device copies."""

from __future__ import annotations

import numpy as np
import torch


def autocast(device: str, precision: str) -> torch.autocast:
    """bf16 autocast on the device for "bf16"; a disabled (fp32) context otherwise."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


def to_device(array: np.ndarray | torch.Tensor, device: str) -> torch.Tensor:
    """An array on the device: a host one copied to a GPU through pinned memory, non-blocking (later work on the
    device's stream is ordered after the copy); on CPU shared, not copied, unless it is read-only (a pandas column's
    values can be), which torch cannot share safely."""
    if isinstance(array, np.ndarray) and not array.flags.writeable:
        array = array.copy()
    tensor = torch.as_tensor(array)
    if torch.device(device).type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)
