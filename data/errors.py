"""The one exception every data module raises for bad data, so that the launcher answers
any of them with one line and exit code 2 (framework/launch.py)."""


class DataError(ValueError):
    """Malformed, missing or too-small data; the message names the file (line, row or
    column where it applies) and the fix."""
