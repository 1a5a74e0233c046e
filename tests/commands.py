"""Running `bench` as the tests do: in-process through click, or as the installed console script a user types."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from benchmark.cli import cli

BENCH = Path(sys.prefix) / "bin" / "bench"


def bench(*args) -> object:
    """Run the CLI in-process."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def bench_process(*args, env: dict | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run the installed console script, as a user would, capturing its output until every process holding it has
    exited; a PYTHONPATH in `env` goes before the caller's."""
    env = {**os.environ, **(env or {})}
    if os.environ.get("PYTHONPATH") and env["PYTHONPATH"] != os.environ["PYTHONPATH"]:
        env["PYTHONPATH"] += os.pathsep + os.environ["PYTHONPATH"]
    command = [BENCH, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, check=False, env=env, timeout=timeout)


def assert_one_line_error(result, *fragments: str, alone: bool = False) -> None:
    """A user mistake: non-zero exit, a final 'Error:' line naming it (the only line when `alone`), no traceback."""
    output = result.output if hasattr(result, "output") else result.stdout + result.stderr
    assert (result.exit_code if hasattr(result, "exit_code") else result.returncode) != 0, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert not alone or len(lines) == 1, output
    assert lines[-1].startswith("Error: "), output
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


SMOKE_TEXT = Path("suites/smoke.yaml").read_text()
MATCHED_FILTER_ONLY = SMOKE_TEXT.split("  - name: deepfindet")[0]  # the smoke suite with the matched filter alone


def suite_file(tmp_path: Path, text: str, name: str = "faults") -> Path:
    """A suite file named `name` with the given text (its 'name: smoke' replaced)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace("name: smoke", f"name: {name}"))
    return path
