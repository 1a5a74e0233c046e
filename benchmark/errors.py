"""The exception types for user mistakes and interruptions, and warnings as single lines."""

from __future__ import annotations

import sys
import warnings

from tqdm.auto import tqdm


class BenchError(Exception):
    """A problem with the user's input; the message names the problem and the fix."""


class Interrupted(BenchError):
    """Ctrl-C or SIGTERM stopped a run; finished work is kept and the message says how to resume."""


class BenchWarning(UserWarning):
    """Something in the input is suspicious but usable; the CLI prints it as one line."""


def one_line_warnings() -> None:
    """Show every warning as a single 'warning:' line on stderr (not Python's two-line format)."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        tqdm.write(f"warning: {message}", file=sys.stderr)  # above any progress bar, not inside it

    warnings.showwarning = show
