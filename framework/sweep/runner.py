"""Running a sweep's points: as `python -m framework.main` processes (`parallel` at a
time, the default) or inline, one after another inside this process through the same
`framework.launch.run` the CLI uses (no interpreter start-up or JAX import per point;
compiled programs shared in memory and through the persistent cache).

Either way a point trains in `DIR/<name>/` under that workdir's lock, its log goes to
`DIR/<name>/log.txt`, and how it ended is recorded in its STATUS_FILE with the exit
code the CLI would give (done/early_stopped 0, diverged 3, user error 2, crash 1 with
the traceback's last line); finished points are skipped on a re-run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

from framework import files, launch, workdir as workdir_lib
from framework.metrics import format_duration
from framework.sweep.definition import REPO, Sweep, SweepError, display_path, load_sweep, select
from framework.sweep.results import (
    FINISHED,
    STATUS_FILE,
    collect_rows,
    key_metric,
    summary,
    write_results,
)

EXIT_SIGTERM = 128 + signal.SIGTERM


@dataclasses.dataclass
class _Job:
    index: int
    proc: subprocess.Popen | None  # None for an inline point
    start: float
    log_offset: int


def _prepare(sweep: Sweep, i: int, workdir: str) -> tuple[str, IO[str]] | None:
    """Takes point `i`'s workdir lock: (its folder, the open lock file), or None if another
    process holds it (another sweep, or a run orphaned by a killed sweep)."""
    pdir = os.path.join(workdir, sweep.names[i])
    lock_file = workdir_lib.try_lock_file(pdir)
    if lock_file is None:
        return None
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(pdir, STATUS_FILE))
    return pdir, lock_file


def _launch(sweep: Sweep, i: int, workdir: str, env: dict[str, str]) -> _Job | None:
    """Starts point `i` as a process; None if another process holds its lock."""
    prepared = _prepare(sweep, i, workdir)
    if prepared is None:
        return None
    pdir, lock_file = prepared
    lock_fd = lock_file.fileno()
    config = os.path.abspath(sweep.config_path)
    cmd = sweep.command(i, os.path.abspath(workdir), sys.executable, config)
    with open(os.path.join(pdir, "log.txt"), "a") as log:
        log.write(f"# sweep {time.strftime('%Y-%m-%d %H:%M:%S')}: {shlex.join(cmd)}\n")
        log.flush()
        # The child adopts the lock (LOCK_FD_ENV) and holds it while the run lives, even
        # if this process is killed, so a re-run never starts a second copy of it.
        out = dict(stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        child_env = {**env, workdir_lib.LOCK_FD_ENV: str(lock_fd)}
        proc = subprocess.Popen(cmd, env=child_env, pass_fds=(lock_fd,), **out)
        return _Job(i, proc, time.time(), log.tell())


@contextlib.contextmanager
def _logs_to(stream: IO[str]) -> Iterator[None]:
    """While open, this process's log lines (absl's format, library INFO chatter hidden,
    as framework.main prints them) and Python prints go to `stream` only."""
    import logging

    from absl import logging as absl_logging

    from framework import metrics

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    handler = absl_logging.get_absl_handler()
    previous = handler.python_handler.stream
    metrics.quiet_library_logs()  # INFO from our code, warnings from libraries
    root.handlers = [handler]
    handler.python_handler.setStream(stream)
    try:
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            yield
    finally:
        handler.python_handler.setStream(previous)
        root.handlers, root.level = saved_handlers, saved_level


def _run_inline(sweep: Sweep, i: int, workdir: str) -> tuple[_Job, int, bool] | None:
    """Trains point `i` in this process: (job, exit code, preempted?); None if locked."""
    prepared = _prepare(sweep, i, workdir)
    if prepared is None:
        return None
    pdir, _ = prepared
    preempted = False
    try:
        with open(os.path.join(pdir, "log.txt"), "a") as log:
            cmd = shlex.join(sweep.command(i, workdir, "python"))
            log.write(f"# sweep {time.strftime('%Y-%m-%d %H:%M:%S')}: inline {cmd}\n")
            job = _Job(i, None, time.time(), log.tell())
            with _logs_to(log):
                try:
                    outcome = launch.run(sweep.config(i), pdir)
                except SweepError as e:
                    outcome = launch.Outcome(launch.EXIT_USER_ERROR, f"error: {e}")
                except Exception as e:  # noqa: BLE001 - a crash: the traceback goes to the log
                    traceback.print_exc(file=log)
                    print(f"{type(e).__name__}: {launch.first_line(e)}", file=log)
                    outcome = launch.Outcome(launch.EXIT_CRASH)
                if outcome.message:
                    print(outcome.message, file=log)
            preempted = (outcome.result or {}).get("status") == "preempted"
    except BaseException:
        workdir_lib.release_lock_file(pdir)
        raise
    return job, outcome.code, preempted


def _finish(sweep: Sweep, job: _Job, workdir: str, rc: int) -> None:
    """Records how point `job.index` ended in its STATUS_FILE and releases its lock."""
    pdir = os.path.join(workdir, sweep.names[job.index])
    result = files.read_json(os.path.join(pdir, "result.json"), {})
    status = result.get("status") if isinstance(result, dict) else None
    ended = "failed"
    if (rc, status) in ((0, "done"), (0, "early_stopped"), (launch.EXIT_DIVERGED, "diverged")):
        ended = status
    elif (rc, status) == (0, "preempted") or (rc == 0 and status is None):
        ended = "pending"  # stopped by SIGTERM: resumes on a re-run
    error = ""
    if ended == "failed":
        log_line = _last_line(os.path.join(pdir, "log.txt"), job.log_offset)
        error = f"killed by {signal.Signals(-rc).name}" if rc < 0 else log_line or f"exit {rc}"
    elapsed = time.time() - job.start
    if ended in FINISHED and os.path.getmtime(os.path.join(pdir, "result.json")) < job.start:
        elapsed = result.get("wall_time_s", elapsed)  # finished before (by another process)
    record = dict(status=ended, returncode=rc, elapsed_s=elapsed, error=error)
    files.atomic_write_json(os.path.join(pdir, STATUS_FILE), record)
    workdir_lib.release_lock_file(pdir)


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b")


def _last_line(path: str, offset: int) -> str:
    """The point's error: after a traceback, its exception line (JAX may append a note
    after it); else the log's last line written since `offset`."""
    try:
        with open(path, errors="replace") as f:
            f.seek(offset)
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ""
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        raised = [line for line in lines if _EXCEPTION_LINE.match(line)]
        if raised:
            return raised[-1][:500]
    return lines[-1][:500] if lines else ""


def _subprocess_env(workdir: str, parallel: int) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (REPO, env.get("PYTHONPATH"))))
    if parallel > 1:  # runs share the accelerator: no up-front memory grab
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    # Points share compiled programs through JAX's persistent cache in DIR/jax_cache: each
    # point's trainer picks it (train.compilation_cache's default: the workdir's parent).
    return env


class _Progress:
    """The per-point line: status, key metric, duration and the sweep's ETA."""

    def __init__(self, total: int, parallel: int, echo: Callable[[str], None]):
        self.total, self.parallel, self.echo = total, parallel, echo
        self.durations: list[float] = []

    def point_done(self, row: Mapping[str, Any], job: _Job, left: int, running: list[_Job]):
        self.durations.append(time.time() - job.start)
        m = sum(self.durations) / len(self.durations)
        eta = left * m + sum(max(m - time.time() + j.start, 0) for j in running)
        detail = row["error"] if row["status"] == "failed" else key_metric(row)
        self.echo(
            f"[{len(self.durations)}/{self.total}] {row['status']:<8} {row['name']}  {detail}  "
            f"{self.durations[-1]:.1f} s | ETA {format_duration(eta / self.parallel)}"
        )


def run_sweep(
    config_path: str,
    arg: str | None,
    workdir: str,
    parallel: int = 1,
    only: str | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    inline: bool = False,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Runs the unfinished points of `get_sweep(arg)` matching `only`: `parallel` processes
    at a time, or inline (one after another in this process).

    Returns one row per point (results.csv's columns, values typed); raises
    SweepError for a user error. On SIGTERM (exit 143) the running points get
    SIGTERM too: they checkpoint and stop, and a re-run resumes them.
    """
    if parallel < 1:
        raise SweepError(f"--parallel must be >= 1, got {parallel}")
    if inline and parallel > 1:
        raise SweepError("--inline runs points one after another in one process; drop --parallel")
    sweep = load_sweep(config_path, arg, overrides)
    selected = select(sweep, only)
    os.makedirs(workdir, exist_ok=True)
    manifest = dict(config=display_path(config_path), arg=arg, overrides=sweep.overrides)
    manifest["points"] = dict(zip(sweep.names, sweep.points, strict=True))
    files.atomic_write_text(
        os.path.join(workdir, "sweep.json"), json.dumps(manifest, indent=2, default=repr)
    )
    rows = collect_rows(sweep, workdir)
    queue = [i for i in selected if rows[i]["status"] not in FINISHED]
    how = "inline, one at a time" if inline else f"{parallel} at a time"
    echo(
        f"sweep {sweep.config_flag(display_path(config_path))}: {len(sweep.points)} points, "
        f"{len(selected) - len(queue)} of {len(selected)} selected already finished, "
        f"{len(queue)} to run, {how}; results in {workdir}/results.csv"
    )
    try:
        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(EXIT_SIGTERM))
    except ValueError:  # not the main thread: no SIGTERM handling
        previous = None
    progress, t0 = _Progress(len(queue), parallel, echo), time.time()
    try:
        if inline:
            rows = _run_points_inline(sweep, queue, workdir, progress)
        else:
            rows = _run_points(sweep, queue, workdir, parallel, progress)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    echo(
        f"sweep finished in {format_duration(time.time() - t0)}: {summary(rows)}; "
        f"{workdir}/results.md"
    )
    return rows


def _run_points(sweep, queue, workdir, parallel, progress) -> list[dict[str, Any]]:
    """Runs `queue`'s points as processes, `parallel` at a time."""
    env = _subprocess_env(workdir, parallel)
    running: list[_Job] = []
    try:
        while queue or running:
            while queue and len(running) < parallel:
                i = queue.pop(0)
                job = _launch(sweep, i, workdir, env)
                if job is None:
                    progress.total -= 1
                    progress.echo(f"skip {sweep.names[i]}: running in another process")
                else:
                    running.append(job)
            time.sleep(0.1)
            for job in [j for j in running if j.proc.poll() is not None]:
                running.remove(job)
                _finish(sweep, job, workdir, job.proc.returncode)
                rows = collect_rows(sweep, workdir)
                write_results(sweep, workdir, rows)
                progress.point_done(rows[job.index], job, len(queue), running)
    finally:
        for job in running:  # SIGTERM, Ctrl-C or an error here: stop the runs cleanly
            job.proc.send_signal(signal.SIGTERM)
        for job in running:
            _finish(sweep, job, workdir, job.proc.wait())
        rows = collect_rows(sweep, workdir)
        write_results(sweep, workdir, rows)
    return rows


def _run_points_inline(sweep, queue, workdir, progress) -> list[dict[str, Any]]:
    """Runs `queue`'s points one after another in this process."""
    for n, i in enumerate(queue):
        ran = _run_inline(sweep, i, workdir)
        if ran is None:
            progress.total -= 1
            progress.echo(f"skip {sweep.names[i]}: running in another process")
            continue
        job, code, preempted = ran
        _finish(sweep, job, workdir, code)
        rows = collect_rows(sweep, workdir)
        write_results(sweep, workdir, rows)
        progress.point_done(rows[i], job, len(queue) - n - 1, [])
        if preempted:  # SIGTERM reached the point: it saved a checkpoint; stop here
            sys.exit(EXIT_SIGTERM)
    rows = collect_rows(sweep, workdir)
    write_results(sweep, workdir, rows)
    return rows


def launch_script(
    sweep: Sweep, workdir: str, prefix: str = "", python: str = "python", only: str | None = None
) -> str:
    """A bash script with one command per point (matching `only`), wrapped by `prefix`.

    A `prefix` containing '{cmd}' gets the command substituted there; one ending
    in '=' gets it as one quoted argument (e.g. `gcloud ... --worker=all --command=`);
    any other prefix is followed by the command's words.
    """
    config = display_path(sweep.config_path)
    lines = [
        "#!/usr/bin/env bash",
        f"# Sweep {sweep.config_flag(config)}: one command per point (framework.sweep).",
        "# Run from the repository root; a failed point does not stop the script.",
        "set -u",
    ]
    for i in select(sweep, only):
        cmd = shlex.join(sweep.command(i, workdir, python, config))
        if "{cmd}" in prefix:
            line = prefix.replace("{cmd}", cmd)
        else:
            line = prefix + shlex.quote(cmd) if prefix.endswith("=") else f"{prefix} {cmd}".strip()
        lines += [f"# {sweep.names[i]}", line]
    return "\n".join(lines) + "\n"
