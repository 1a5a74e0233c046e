"""Architectures that go wrong in the ways a plug-in can: wrong columns, an exception, a dead process."""

from __future__ import annotations

import os
import signal

import pandas as pd

from benchmark.interface import Architecture
from benchmark.registry import register


class _NoModel(Architecture):
    """Fits nothing; subclasses break predict."""

    def fit(self, train, val, budget, tracker) -> None:
        for _ in tracker.epochs():
            break

    def save(self, directory) -> None:
        directory.mkdir(parents=True, exist_ok=True)

    def load(self, directory) -> None:
        pass


@register("faulty-columns")
class WrongColumns(_NoModel):
    """Returns voxel columns instead of Å picks."""

    def predict(self, tomogram) -> pd.DataFrame:
        return pd.DataFrame({"label": [1], "z": [0], "y": [0], "x": [0]})


@register("faulty-raises")
class Raises(_NoModel):
    """Raises inside predict."""

    def predict(self, tomogram) -> pd.DataFrame:
        raise RuntimeError("simulated CUDA out of memory")


@register("faulty-dies")
class Dies(_NoModel):
    """Kills its own process, as the kernel's OOM killer would."""

    def predict(self, tomogram) -> pd.DataFrame:
        os.kill(os.getpid(), signal.SIGKILL)
