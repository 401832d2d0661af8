"""Sweeps: each point of a config file's `get_sweep(arg)` as its own training run.

    python -m framework.sweep --config=configs/quickstart.py:size=tiny,steps=10 \\
        --workdir=runs/qs_sweep --parallel=2 [--only=REGEX] [--config.a.b=v ...]

`get_sweep(arg)` returns a list of override dicts (dotted config keys -> values),
usually built with `product`; every key and value is checked against
`get_config(arg)` first. Each point runs as `python -m framework.main
--config=FILE:ARG --workdir=DIR/<name> --config.k=v ...` (name from `name_points`),
N at a time, output appended to `DIR/<name>/log.txt`. Finished points (result.json
done, early_stopped or diverged) are skipped, so re-running continues a sweep;
interrupted points resume from their checkpoints. `--config.a.b=v` applies to every
point. Points share JAX's persistent compilation cache in `DIR/jax_cache` (unless
JAX_COMPILATION_CACHE_DIR is set).
A key 'arg:NAME' sets the config file's argument NAME instead of a config key
({'arg:size': 's'} runs `--config=FILE:ARG,size=s`), for settings that
`get_config` derives several values from.
`DIR/results.csv` and `DIR/results.md` are rewritten after every point.
`--launch_script=FILE` writes one command per point instead; `--dry_list` lists them.
Exit codes: 0 the sweep ran (failed or diverged points included), 2 user error.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import csv
import dataclasses
import fcntl
import hashlib
import importlib.util
import io
import itertools
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from framework import config as config_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FINISHED = ("done", "early_stopped", "diverged")  # result.json statuses a re-run skips
STATUSES = ("done", "early_stopped", "diverged", "failed", "pending")
EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
MAX_NAME = 120  # characters; longer names are cut and end in a hash
STATUS_FILE = "sweep_status.json"  # how the point's last run ended, beside its result.json
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]")
ARG_PREFIX = "arg:"  # a point key 'arg:NAME' sets get_config's argument NAME


class SweepError(config_lib.ConfigError):
    """A problem in the sweep definition or flags; the CLI prints it and exits 2."""


def product(*axes: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The cross product of `axes`; each is a dict of key -> values or a list of dicts.

    In a dict each list value is an axis (any other value, a tuple too, is fixed);
    a list of dicts is one axis of tied settings; the first axis varies slowest.
    product({'optimizer.lr': [1e-3, 3e-3]}, {'model.d_model': [32, 64]}) -> 4 points;
    product({'optimizer.lr': [1e-3]}, [{'model.d_model': 32, 'model.d_ff': 128},
    {'model.d_model': 64, 'model.d_ff': 256}]) -> 2 points (d_model, d_ff tied)."""
    expanded: list[list[dict[str, Any]]] = []
    for axis in axes:
        if isinstance(axis, Mapping):
            for key, values in axis.items():
                values = values if isinstance(values, list) else [values]
                expanded.append([{key: v} for v in values])
        elif isinstance(axis, Sequence) and all(isinstance(p, Mapping) for p in axis):
            expanded.append([dict(p) for p in axis])
        else:
            raise TypeError(f"an axis is a dict or a list of dicts, got {axis!r}")
    owner: dict[str, int] = {}
    for i, options in enumerate(expanded):
        for key in {k for option in options for k in option}:
            if owner.setdefault(key, i) != i:
                raise ValueError(f"key {key!r} appears in two axes of the product")
    return [{k: v for o in combo for k, v in o.items()} for combo in itertools.product(*expanded)]


def format_value(value: Any) -> str:
    """A value as a `--config.k=v` flag spells it (floats exact, bools lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value)


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Each dotted key's shortest dotted suffix that no other key of `keys` ends with."""
    out = {}
    for key in keys:
        if key.startswith(ARG_PREFIX):  # a config argument: its bare name
            out[key] = key[len(ARG_PREFIX) :]
            continue
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            if not any(o != key and (o == suffix or o.endswith("." + suffix)) for o in keys):
                break
        out[key] = suffix
    return out


def _canonical(overrides: Mapping[str, Any]) -> str:
    return json.dumps(sorted((k, repr(v)) for k, v in overrides.items()))


def _digest(overrides: Mapping[str, Any]) -> str:
    return hashlib.sha1(_canonical(overrides).encode()).hexdigest()[:6]


def name_point(overrides: Mapping[str, Any], key_names: Mapping[str, str] | None = None) -> str:
    """A readable, filesystem-safe directory name: {'optimizer.lr': 1e-3} -> 'lr=0.001'.

    Keys are shortened by `key_names` (default: `short_keys` of this point),
    joined with '_' in order; characters outside [A-Za-z0-9._=+-] become '-';
    names over MAX_NAME characters are cut and end in a hash. {} -> 'base'.
    """
    if not overrides:
        return "base"
    names = {**short_keys(list(overrides)), **(key_names or {})}
    name = _UNSAFE.sub("-", "_".join(f"{names[k]}={format_value(v)}" for k, v in overrides.items()))
    return f"{name[: MAX_NAME - 7]}~{_digest(overrides)}" if len(name) > MAX_NAME else name


def name_points(points: Sequence[Mapping[str, Any]]) -> list[str]:
    """Unique, stable names for a sweep's points: keys shortened sweep-wide, clashes hashed.

    Names that clash (also case-insensitively) end in '~<hash of the overrides>';
    a point listed twice is a SweepError."""
    seen: dict[str, int] = {}
    for i, p in enumerate(points):
        if seen.setdefault(_canonical(p), i) != i:
            raise SweepError(f"points {seen[_canonical(p)]} and {i} of the sweep are equal: {p}")
    keys = short_keys(list(dict.fromkeys(k for p in points for k in p)))
    names = [name_point(p, keys) for p in points]
    clashes = Counter(n.lower() for n in names)
    return [
        f"{n}~{_digest(p)}" if clashes[n.lower()] > 1 else n
        for n, p in zip(names, points, strict=True)
    ]


@dataclasses.dataclass
class Sweep:
    """A loaded sweep: the config file, its argument, the points and their names."""

    config_path: str
    arg: str | None
    points: list[dict[str, Any]]
    names: list[str]
    overrides: dict[str, Any]  # applied to every point (the CLI's --config.k=v flags)

    @property
    def keys(self) -> list[str]:
        """The swept keys, in order of first appearance."""
        return list(dict.fromkeys(k for p in self.points for k in p))

    def point_arg(self, i: int) -> str | None:
        """get_config's argument for point `i`: the sweep's, then its 'arg:' keys."""
        return point_arg(self.arg, self.points[i])

    def config_flag(self, path: str = "", i: int | None = None) -> str:
        """The `--config=` value for framework.main (for point `i` if given)."""
        path = path or self.config_path
        arg = self.arg if i is None else self.point_arg(i)
        return path if arg is None else f"{path}:{arg}"

    def command(self, i: int, workdir: str, python: str, path: str = "") -> list[str]:
        """The argv that trains point `i` in `workdir/<name>`."""
        merged = self.overrides | self.points[i]
        flags = [
            f"--config.{k}={format_value(v)}"
            for k, v in merged.items()
            if not k.startswith(ARG_PREFIX)
        ]
        config, workdir = self.config_flag(path, i), os.path.join(workdir, self.names[i])
        return [
            python,
            "-m",
            "framework.main",
            f"--config={config}",
            f"--workdir={workdir}",
            *flags,
        ]


def point_arg(arg: str | None, point: Mapping[str, Any]) -> str | None:
    """`arg` followed by the point's 'arg:NAME' values as 'NAME=value' items."""
    items = [
        f"{k[len(ARG_PREFIX) :]}={format_value(v)}"
        for k, v in point.items()
        if k.startswith(ARG_PREFIX)
    ]
    if not items:
        return arg
    return ",".join(([arg] if arg else []) + items)


def load_config_module(path: str) -> Any:
    """Imports a config file by its path, as ml_collections' config flags do."""
    if not os.path.isfile(path):
        raise SweepError(f"config file {path!r} does not exist")
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    spec = importlib.util.spec_from_file_location(f"_sweep_config_{stem}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _get(config: Any, key: str) -> Any:
    for part in key.split(".") if key else ():
        config = config[part]
    return config


def coerce(raw: str, current: Any) -> Any:
    """A command-line string typed like the config value it replaces."""
    try:
        if isinstance(current, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
        if isinstance(current, int | float):
            return type(current)(raw)
        return raw if isinstance(current, str) else ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        raise SweepError(f"{raw!r} is not a valid {type(current).__name__}") from None


def load_sweep(config_path: str, arg: str | None, overrides: Mapping | None = None) -> Sweep:
    """Loads `get_sweep(arg)`; checks every key and value type against `get_config(arg)`.

    `overrides` apply to every point; a string for a non-string field is parsed
    as on the command line (so the CLI passes its flags as strings).
    """
    module = load_config_module(config_path)
    for fn in ("get_sweep", "get_config"):
        if not callable(getattr(module, fn, None)):
            raise SweepError(f"{config_path} defines no {fn}(arg); see README 'Sweeps'")
    points = module.get_sweep(arg)
    if not isinstance(points, list | tuple) or not all(isinstance(p, Mapping) for p in points):
        raise SweepError(f"{config_path}: get_sweep must return a list of override dicts")
    if not points:
        raise SweepError(f"{config_path}: get_sweep({arg!r}) returned no points")
    points = [dict(p) for p in points]
    bases: dict[str | None, Any] = {}

    def base_for(a: str | None) -> Any:  # get_config once per distinct argument
        if a not in bases:
            bases[a] = module.get_config() if a is None else module.get_config(a)
        return bases[a]

    base = base_for(arg)
    overrides = dict(overrides or {})
    config_keys = [k for p in points for k in p if not k.startswith(ARG_PREFIX)]
    config_lib.check_override_keys(base, [*overrides, *config_keys])
    for key, value in overrides.items():
        if key.startswith(ARG_PREFIX):
            raise SweepError(f"--config.{key}: config arguments go in --config=FILE:ARG")
        if any(key in p for p in points):
            raise SweepError(f"--config.{key} is also swept by get_sweep; drop one of them")
        if isinstance(value, str) and not isinstance(_get(base, key), str):
            try:
                overrides[key] = coerce(value, _get(base, key))
            except SweepError as e:
                raise SweepError(f"--config.{key}={value}: {e}") from None
    names = name_points(points)
    for name, point in zip(names, points, strict=True):
        config = copy.deepcopy(base_for(point_arg(arg, point)))
        for key, value in (overrides | point).items():
            if key.startswith(ARG_PREFIX):
                continue
            parent, _, leaf = key.rpartition(".")
            try:
                _get(config, parent)[leaf] = value
            except (TypeError, ValueError, KeyError, AttributeError) as e:
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise SweepError(f"point {name}: {key}={value!r}: {msg}") from None
    return Sweep(config_path, arg, points, names, overrides)


def _display_path(path: str) -> str:
    full = os.path.abspath(path)
    return os.path.relpath(full, REPO) if full.startswith(REPO + os.sep) else path


def _select(sweep: Sweep, only: str | None) -> list[int]:
    if not only:
        return list(range(len(sweep.points)))
    try:
        pattern = re.compile(only)
    except re.error as e:
        raise SweepError(f"--only={only!r} is not a regular expression: {e}") from None
    selected = [i for i, n in enumerate(sweep.names) if pattern.search(n)]
    if not selected:
        raise SweepError(f"--only={only!r} matches none of: {', '.join(sweep.names)}")
    return selected


def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            value = json.load(f)
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def _read_jsonl(path: str) -> list[dict]:
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                with contextlib.suppress(ValueError):  # a line cut by a kill
                    rows.append(json.loads(line))
    return rows


def point_row(workdir: str, name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """One results row for the point in `workdir/name`, read from its files."""
    pdir = os.path.join(workdir, name)
    result = _read_json(os.path.join(pdir, "result.json"))
    ran = _read_json(os.path.join(pdir, STATUS_FILE))
    metrics = _read_jsonl(os.path.join(pdir, "metrics.jsonl"))
    status = result.get("status")
    if status not in FINISHED:
        status = "failed" if ran.get("status") == "failed" else "pending"
    row: dict[str, Any] = {"name": name, **overrides, "status": status}
    train = [r for r in metrics if r.get("split") == "train"]
    evals: dict[str, dict] = {}
    best: dict[str, float] = {}
    for r in metrics:
        split, loss = r.get("split"), r.get("loss")
        if split and split != "train":
            evals[split] = {k: v for k, v in r.items() if k not in ("step", "split", "time")}
            if isinstance(loss, int | float) and math.isfinite(loss):
                best[split] = min(best.get(split, loss), loss)
    if status in FINISHED:  # the final values the trainer reported
        row["steps"], row["train/loss"] = result.get("step"), result.get("train", {}).get("loss")
        evals = result.get("eval") or evals
    else:
        row["steps"] = train[-1]["step"] if train else None
    if row.get("train/loss") is None and train:
        row["train/loss"] = train[-1].get("loss")
    for split in sorted(set(evals) | set(best)):
        values = evals.get(split, {})
        row[f"{split}/loss"], row[f"{split}/best_loss"] = values.get("loss"), best.get(split)
        row.update({f"{split}/{k}": v for k, v in sorted(values.items()) if k != "loss"})
    row["wall_s"] = ran.get("elapsed_s", result.get("wall_time_s"))
    row["error"] = ran.get("error", "") if status == "failed" else ""
    return row


def collect_rows(sweep: Sweep, workdir: str) -> list[dict[str, Any]]:
    """Rows for every point of `sweep`, read from the files under `workdir`."""
    return [point_row(workdir, n, p) for n, p in zip(sweep.names, sweep.points, strict=True)]


def _cell(value: Any, markdown: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and markdown:
        return f"{value:.4g}"
    text = format_value(value)
    return text.replace("|", "\\|")[:100] if markdown else text


def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def _summary(rows: Sequence[Mapping[str, Any]]) -> str:
    counts = Counter(r["status"] for r in rows)
    return ", ".join(f"{counts[s]} {s}" for s in STATUSES)


def write_results(sweep: Sweep, workdir: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Writes `workdir/results.csv` and `workdir/results.md` (one row per point)."""
    metrics = dict.fromkeys(k for r in rows for k in r if "/" in k and k != "train/loss")
    columns = ["name", *sweep.keys, "status", "steps", "train/loss", *metrics, "wall_s", "error"]
    buf = io.StringIO()
    csv.writer(buf).writerows([columns, *([_cell(r.get(c), False) for c in columns] for r in rows)])
    _atomic_write(os.path.join(workdir, "results.csv"), buf.getvalue())
    # The markdown table keeps '<evaluator>/<metric>' columns; per-tensor or per-layer
    # metrics ('align/alpha/blocks/0/...', 'train/grad_rms/...') stay in the CSV only.
    md_columns = [c for c in columns if c.count("/") <= 1]
    dropped = len(columns) - len(md_columns)
    lines = [
        f"# Sweep `{sweep.config_flag(_display_path(sweep.config_path))}`\n",
        f"{len(rows)} points: {_summary(rows)}. Updated {time.strftime('%Y-%m-%d %H:%M:%S')}.\n",
        *(
            [f"{dropped} per-tensor or per-layer metric columns are in results.csv only.\n"]
            if dropped
            else []
        ),
        "| " + " | ".join(md_columns) + " |",
        "|" + "|".join("---" for _ in md_columns) + "|",
        *("| " + " | ".join(_cell(r.get(c), True) for c in md_columns) + " |" for r in rows),
    ]
    _atomic_write(os.path.join(workdir, "results.md"), "\n".join(lines) + "\n")


def _hms(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _last_line(path: str, offset: int) -> str:
    try:
        with open(path, errors="replace") as f:
            f.seek(offset)
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ""
    return lines[-1][:500] if lines else ""


@dataclasses.dataclass
class _Job:
    index: int
    proc: subprocess.Popen
    lock: Any
    start: float
    log_offset: int


def _launch(sweep: Sweep, i: int, workdir: str, env: dict[str, str]) -> _Job | None:
    """Starts point `i`; None if another process holds its lock."""
    pdir = os.path.join(workdir, sweep.names[i])
    os.makedirs(pdir, exist_ok=True)
    lock = open(os.path.join(pdir, "sweep.lock"), "w")  # noqa: SIM115 (the child holds it too)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # another sweep process, or a run orphaned by a killed sweep
        lock.close()
        return None
    if os.path.exists(os.path.join(pdir, STATUS_FILE)):
        os.remove(os.path.join(pdir, STATUS_FILE))
    config = os.path.abspath(sweep.config_path)
    cmd = sweep.command(i, os.path.abspath(workdir), sys.executable, config)
    with open(os.path.join(pdir, "log.txt"), "a") as log:
        log.write(f"# sweep {time.strftime('%Y-%m-%d %H:%M:%S')}: {shlex.join(cmd)}\n")
        log.flush()
        # The child inherits the lock, held while the run lives even if this
        # process is killed, so a re-run never starts a second copy of it.
        out = dict(stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        proc = subprocess.Popen(cmd, env=env, pass_fds=(lock.fileno(),), **out)
        return _Job(i, proc, lock, time.time(), log.tell())


def _finish(sweep: Sweep, job: _Job, workdir: str, rc: int) -> None:
    """Records how point `job.index` ended in its STATUS_FILE."""
    pdir = os.path.join(workdir, sweep.names[job.index])
    status, result = _read_json(os.path.join(pdir, "result.json")).get("status"), "failed"
    if (rc, status) in ((0, "done"), (0, "early_stopped"), (EXIT_DIVERGED, "diverged")):
        result = status
    elif (rc, status) == (0, "preempted"):  # stopped by SIGTERM: resumes on a re-run
        result = "pending"
    error = ""
    if result == "failed":
        log_line = _last_line(os.path.join(pdir, "log.txt"), job.log_offset)
        error = f"killed by {signal.Signals(-rc).name}" if rc < 0 else log_line or f"exit {rc}"
    record = dict(status=result, returncode=rc, elapsed_s=time.time() - job.start, error=error)
    _atomic_write(os.path.join(pdir, STATUS_FILE), json.dumps(record, indent=2))
    job.lock.close()


def _key_metric(row: Mapping[str, Any]) -> str:
    for key in [k for k in row if k.endswith("/loss") and k != "train/loss"] + ["train/loss"]:
        if isinstance(row.get(key), int | float):
            return f"{key} {row[key]:.4g}"
    return ""


def run_sweep(
    config_path: str,
    arg: str | None,
    workdir: str,
    parallel: int = 1,
    only: str | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Runs the unfinished points of `get_sweep(arg)` matching `only`, `parallel` at a time.

    Returns one row per point (results.csv's columns, values typed); raises
    SweepError for a user error. On SIGTERM (exit 143) the running points get
    SIGTERM too: they checkpoint and stop, and a re-run resumes them.
    """
    if parallel < 1:
        raise SweepError(f"--parallel must be >= 1, got {parallel}")
    sweep = load_sweep(config_path, arg, overrides)
    selected = _select(sweep, only)
    os.makedirs(workdir, exist_ok=True)
    manifest = dict(config=_display_path(config_path), arg=arg, overrides=sweep.overrides)
    manifest["points"] = dict(zip(sweep.names, sweep.points, strict=True))
    _atomic_write(os.path.join(workdir, "sweep.json"), json.dumps(manifest, indent=2, default=repr))
    rows = collect_rows(sweep, workdir)
    queue = [i for i in selected if rows[i]["status"] not in FINISHED]
    echo(
        f"sweep {sweep.config_flag(_display_path(config_path))}: {len(sweep.points)} points, "
        f"{len(selected) - len(queue)} of {len(selected)} selected already finished, "
        f"{len(queue)} to run, {parallel} at a time; results in {workdir}/results.csv"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (REPO, env.get("PYTHONPATH"))))
    if parallel > 1:  # runs share the accelerator: no up-front memory grab
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    # Points share compiled programs through JAX's persistent cache (e.g. init and eval,
    # which do not depend on a swept learning rate): about 1.5 s less per point on CPU.
    env.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.abspath(workdir), "jax_cache"))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    try:
        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    except ValueError:  # not the main thread: no SIGTERM handling
        previous = None
    running: list[_Job] = []
    durations: list[float] = []
    total, t0 = len(queue), time.time()
    try:
        while queue or running:
            while queue and len(running) < parallel:
                i = queue.pop(0)
                job = _launch(sweep, i, workdir, env)
                if job is None:
                    total -= 1
                    echo(f"skip {sweep.names[i]}: running in another process")
                else:
                    running.append(job)
            time.sleep(0.1)
            for job in [j for j in running if j.proc.poll() is not None]:
                running.remove(job)
                _finish(sweep, job, workdir, job.proc.returncode)
                durations.append(time.time() - job.start)
                rows = collect_rows(sweep, workdir)
                write_results(sweep, workdir, rows)
                row, m = rows[job.index], sum(durations) / len(durations)
                left = len(queue) * m + sum(max(m - time.time() + j.start, 0) for j in running)
                detail = row["error"] if row["status"] == "failed" else _key_metric(row)
                echo(
                    f"[{len(durations)}/{total}] {row['status']:<8} {row['name']}  {detail}  "
                    f"{durations[-1]:.1f} s | ETA {_hms(left / parallel)}"
                )
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        for job in running:  # SIGTERM, Ctrl-C or an error here: stop the runs cleanly
            job.proc.send_signal(signal.SIGTERM)
        for job in running:
            _finish(sweep, job, workdir, job.proc.wait())
        rows = collect_rows(sweep, workdir)
        write_results(sweep, workdir, rows)
    echo(f"sweep finished in {_hms(time.time() - t0)}: {_summary(rows)}; {workdir}/results.md")
    return rows


def launch_script(
    sweep: Sweep, workdir: str, prefix: str = "", python: str = "python", only: str | None = None
) -> str:
    """A bash script with one command per point (matching `only`), wrapped by `prefix`.

    A `prefix` containing '{cmd}' gets the command substituted there; one ending
    in '=' gets it as one quoted argument (e.g. `gcloud ... --worker=all --command=`);
    any other prefix is followed by the command's words.
    """
    config = _display_path(sweep.config_path)
    lines = [
        "#!/usr/bin/env bash",
        f"# Sweep {sweep.config_flag(config)}: one command per point (framework.sweep).",
        "# Run from the repository root; a failed point does not stop the script.",
        "set -u",
    ]
    for i in _select(sweep, only):
        cmd = shlex.join(sweep.command(i, workdir, python, config))
        if "{cmd}" in prefix:
            line = prefix.replace("{cmd}", cmd)
        else:
            line = prefix + shlex.quote(cmd) if prefix.endswith("=") else f"{prefix} {cmd}".strip()
        lines += [f"# {sweep.names[i]}", line]
    return "\n".join(lines) + "\n"


class _ArgParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def _parser() -> argparse.ArgumentParser:
    p = _ArgParser(prog="python -m framework.sweep", description=__doc__, allow_abbrev=False)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--config", required=True, help="FILE[:arg]; FILE defines get_sweep(arg)")
    p.add_argument("--workdir", required=True, help="the sweep's directory")
    p.add_argument("--parallel", type=int, default=1, help="points trained at once")
    p.add_argument("--only", default=None, help="regex: only points whose name matches")
    p.add_argument("--launch_script", default=None, help="write this script, run nothing")
    p.add_argument("--launch_prefix", default="", help="wraps each command of the script")
    p.add_argument("--launch_python", default="python", help="interpreter in the script")
    p.add_argument("--dry_list", action="store_true", help="list the points and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args([a for a in argv if not a.startswith("--config.")])
    path, colon, arg = args.config.partition(":")
    arg = arg if colon else None
    try:
        overrides = {}
        for item in (a[len("--config.") :] for a in argv if a.startswith("--config.")):
            key, eq, value = item.partition("=")
            if not eq:
                raise SweepError(f"--config.{key} needs a value: --config.{key}=VALUE")
            overrides[key] = value
        if not (args.launch_script or args.dry_list):
            run_sweep(path, arg, args.workdir, args.parallel, args.only, overrides=overrides)
            return 0
        sweep = load_sweep(path, arg, overrides)
        if args.launch_script:
            prefix, python = args.launch_prefix, args.launch_python
            text = launch_script(sweep, args.workdir, prefix, python, args.only)
            _atomic_write(args.launch_script, text)
            os.chmod(args.launch_script, 0o755)
            print(f"wrote {args.launch_script}: {len(_select(sweep, args.only))} commands")
        else:
            for i in _select(sweep, args.only):
                row = point_row(args.workdir, sweep.names[i], sweep.points[i])
                print(f"{sweep.names[i]}  [{row['status']}]  {sweep.points[i]}")
        return 0
    except config_lib.ConfigError as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
