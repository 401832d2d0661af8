"""One training run as the CLI runs it, with its exit code and one-line message, so
that `framework.main` and in-process (inline) sweep points behave the same.

Exit codes: 0 done, early-stopped or preempted (SIGTERM), 2 a user error (bad config,
missing or malformed input, a workdir in use...), 3 diverged (NaN/Inf), 1 the disk
filled up (one line naming the path; the last good checkpoint stays intact). Any other
exception propagates (a crash: traceback, exit 1).
"""

from __future__ import annotations

import dataclasses
import errno
from typing import Any

import ml_collections

from data.errors import DataError
from framework import config as config_lib

EXIT_OK = 0
EXIT_CRASH = 1
EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3


@dataclasses.dataclass
class Outcome:
    """How a run ended: exit code, one line for the user ('' when fine), the result."""

    code: int
    message: str = ""
    result: dict[str, Any] | None = None


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def disk_full(error: BaseException) -> str | None:
    """'no space left on device writing PATH' if `error` (or what caused it) is ENOSPC."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            text = error.strerror or "No space left on device"
            where = f" ({error.filename})" if error.filename else ""
            return f"{text[0].lower()}{text[1:]}{where}"
        if "No space left on device" in str(error) or "ENOSPC" in str(error):
            return "no space left on device (" + first_line(error)[:200] + ")"
        error = error.__cause__ or error.__context__
    return None


def run(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    eval_only: bool = False,
    restart: bool = False,
) -> Outcome:
    """Builds the trainer and trains (or evaluates) `config` in `workdir`."""
    from framework import trainer  # imported late: keeps `--help` fast

    config = ml_collections.FrozenConfigDict(config)  # nothing changes it from here
    try:
        runner = trainer.Trainer(config, workdir)
    except (config_lib.ConfigError, FileNotFoundError, ValueError) as e:
        return Outcome(EXIT_USER_ERROR, f"error: {first_line(e)}")
    try:
        result = runner.evaluate_checkpoint() if eval_only else runner.run(restart=restart)
    except config_lib.ConfigError as e:  # raised before anything is written
        return Outcome(EXIT_USER_ERROR, f"error: {first_line(e)}")
    except DataError as e:  # e.g. a corrupt record met while training: checkpoints kept
        return Outcome(EXIT_USER_ERROR, f"error: {first_line(e)}")
    except Exception as e:
        full = disk_full(e)
        if full is None:
            raise
        return Outcome(
            EXIT_CRASH,
            f"error: {full}; free some space and re-run the same command to resume from "
            "the last checkpoint.",
        )
    code = EXIT_DIVERGED if result.get("status") == "diverged" else EXIT_OK
    return Outcome(code, "", result)
