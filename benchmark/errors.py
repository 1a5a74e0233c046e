"""The one exception type for user mistakes: the CLI prints its message as a single line."""


class BenchError(Exception):
    """A problem with the user's input; the message names the problem and the fix."""
