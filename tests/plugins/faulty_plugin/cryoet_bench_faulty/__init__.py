"""Architectures that go wrong in the ways a plug-in can: wrong columns, an exception, a dead process, a hang."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

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


@register("faulty-hangs")
class Hangs(_NoModel):
    """Starts a helper process, writes its pid to `config['pid_file']`, then never returns from fit (or from its
    constructor, with `config['hang_in']` "init")."""

    def __init__(self, config, particles, device, seed):
        super().__init__(config, particles, device, seed)
        if self.config.get("hang_in") == "init":
            self.fit(None, None, None, None)

    def fit(self, train, val, budget, tracker) -> None:
        helper = subprocess.Popen(["sleep", "600"])
        Path(self.config["pid_file"]).write_text(str(helper.pid))
        while True:
            time.sleep(0.1)

    def predict(self, tomogram) -> pd.DataFrame:
        raise AssertionError("never reached")
