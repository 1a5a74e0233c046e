"""Running on the device as the runner chose: mixed precision (`Architecture.precision`) and host-to-device copies."""

from __future__ import annotations

import numpy as np
import torch


def autocast(device: str, precision: str) -> torch.autocast:
    """bf16 autocast on the device for "bf16"; a disabled (fp32) context otherwise."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


def to_device(array: np.ndarray | torch.Tensor, device: str) -> torch.Tensor:
    """A host array on the device: on a GPU through pinned memory with a non-blocking copy, on CPU shared."""
    tensor = torch.as_tensor(array)
    if torch.device(device).type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)
