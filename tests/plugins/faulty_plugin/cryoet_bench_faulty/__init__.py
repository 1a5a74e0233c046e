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


def _daemon(pid_file: str) -> None:
    """Leave a process behind as a daemon does: fork, setsid (out of the job's process group), fork again and let the
    middle process exit (the grandchild is orphaned); it holds the job's stdout and stderr open and sleeps."""
    middle = os.fork()
    if middle == 0:
        os.setsid()
        if os.fork() == 0:
            Path(pid_file).write_text(str(os.getpid()))
            time.sleep(600)
        os._exit(0)
    os.waitpid(middle, 0)
    while not Path(pid_file).exists():
        time.sleep(0.01)


@register("faulty-escapes")
class Escapes(_NoModel):
    """Leaves a daemon behind in fit (its pid in `config['pid_file']`), then dies by SIGKILL there with
    `config['then']` "dies", or goes on as if nothing happened."""

    def fit(self, train, val, budget, tracker) -> None:
        for _ in tracker.epochs():
            _daemon(self.config["pid_file"])
            if self.config.get("then") == "dies":
                os.kill(os.getpid(), signal.SIGKILL)
            break

    def predict(self, tomogram) -> pd.DataFrame:
        return pd.DataFrame(columns=["particle_type", "x", "y", "z", "score"])


@register("faulty-interrupts")
class Interrupts(_NoModel):
    """Raises KeyboardInterrupt inside fit, as a plug-in that catches Ctrl-C badly might."""

    def fit(self, train, val, budget, tracker) -> None:
        raise KeyboardInterrupt("the plug-in gave up")

    def predict(self, tomogram) -> pd.DataFrame:
        raise AssertionError("never reached")
