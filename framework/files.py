"""Run files on disk: atomic writes, and the one reader of JSON and JSONL files.

Every file the engine writes that a later run reads (result.json, config.json,
best.json, sweep status, results tables) is written with `atomic_write_*`: a
temporary file in the same folder, flushed and fsync'ed, then renamed over the
target, so a kill or a full disk leaves the old file or the new one, never half
of one. `read_json` reads a JSON object; `read_jsonl` reads rows, skipping a
last line cut short by a kill.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from absl import logging

_RAISE = object()


def atomic_write_text(path: str, text: str) -> None:
    """Writes `text` to `path` atomically (temp file + fsync + rename)."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_json(path: str, value: Any, **dump_kwargs: Any) -> None:
    """Writes `value` as indented JSON to `path` atomically."""
    dump_kwargs.setdefault("indent", 2)
    atomic_write_text(path, json.dumps(value, **dump_kwargs))


def atomic_write_jsonl(path: str, rows: Any, **dump_kwargs: Any) -> None:
    """Writes `rows` (an iterable of JSON values) one per line to `path` atomically."""
    atomic_write_text(path, "".join(json.dumps(r, **dump_kwargs) + "\n" for r in rows))


def read_json(path: str, default: Any = _RAISE) -> Any:
    """The JSON value in `path`; with `default`, that value when it is missing or unreadable.

    Without a default, a missing file raises FileNotFoundError and a malformed one
    ValueError (json.JSONDecodeError)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        if default is _RAISE:
            raise
        return default


def read_json_or_set_aside(path: str) -> dict | None:
    """A JSON object file's value; None when missing. A file that is not a JSON object
    (cut short by a kill, or overwritten) is renamed to `<path>.unreadable-<time>` with a
    warning and None is returned, so that the caller carries on as if it were absent."""
    if not os.path.exists(path):
        return None
    try:
        value = read_json(path)
        if isinstance(value, dict):
            return value
        problem = f"holds a {type(value).__name__}, not an object"
    except (OSError, ValueError) as e:
        problem = str(e).splitlines()[0] if str(e) else type(e).__name__
    target = f"{path}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}"
    os.replace(path, target)
    logging.warning("%s is unreadable (%s); moved it to %s and carrying on.", path, problem, target)
    return None


def read_jsonl(path: str) -> list[dict]:
    """The rows of a JSONL file ([] when it does not exist); a line cut by a kill is skipped."""
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows
