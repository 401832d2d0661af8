"""The workdir of a run: one run at a time (an exclusive lock for the run's whole life),
checks that it can be used before anything is compiled, and `--restart`'s move-aside.

The lock is `fcntl.flock` on `WORKDIR/run.lock`, so the OS releases it when the holder
dies (a kill -9 never leaves a stale lock); the file holds the holder's pid and host for
the error a second run prints. Locks are re-entrant within a process (an inline sweep
point holds its workdir's lock while `train()` takes it again), and a child process can
adopt a lock its parent took (the sweep runner passes the open file to the point's
process and names its descriptor in LOCK_FD_ENV). In a multi-process run, process 0
holds the lock and tells the others whether it got it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from typing import IO

from framework.config import ConfigError

LOCK_NAME = "run.lock"
LOCK_FD_ENV = "SHAMMIE_WORKDIR_LOCK_FD"  # an inherited descriptor that already holds a lock
SUPERSEDED = "superseded"  # --restart moves a workdir's old contents into this folder

_held: dict[str, list] = {}  # real path of a lock file -> [open file, depth]


class WorkdirBusyError(ConfigError):
    """Another process holds the workdir's lock."""


def check_usable(workdir: str) -> None:
    """Raises ConfigError if `workdir` is a file or cannot be created or written."""
    path = os.path.abspath(workdir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(
            f"--workdir {workdir!r} is an existing file, not a directory; give a directory path."
        )
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(
            f"--workdir {workdir!r} cannot be created: {existing!r} is a file, not a directory."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "is" if existing == path else f"would be created in {existing!r}, which is"
        raise ConfigError(
            f"--workdir {workdir!r} {where} not writable; choose a directory you can write to."
        )


def _holder(f: IO[str]) -> str:
    f.seek(0)
    try:
        info = json.loads(f.read() or "{}")
    except ValueError:
        info = {}
    if not info:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("time", 0)))
    return f"pid {info.get('pid')} on host {info.get('host')} (since {since})"


def _adopt_inherited(path: str) -> IO[str] | None:
    """The inherited descriptor named by LOCK_FD_ENV if it is open on `path`."""
    fd = os.environ.get(LOCK_FD_ENV, "")
    if not fd.isdigit():
        return None
    try:
        same = os.path.samestat(os.fstat(int(fd)), os.stat(path))
    except OSError:
        return None
    if not same:
        return None
    f = os.fdopen(int(fd), "a+")
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours already: succeeds at once
    return f


def _acquire(workdir: str) -> None:
    path = os.path.realpath(os.path.join(workdir, LOCK_NAME))
    if path in _held:
        _held[path][1] += 1
        return
    os.makedirs(workdir, exist_ok=True)
    f = _adopt_inherited(path) if os.path.exists(path) else None
    if f is None:
        f = open(path, "a+")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                f.close()
                raise
            holder = _holder(f)
            f.close()
            raise WorkdirBusyError(
                f"workdir {workdir!r} is in use by {holder}; wait for that run to end, "
                "or use another --workdir."
            ) from None
    f.seek(0)
    f.truncate()
    info = dict(pid=os.getpid(), host=socket.gethostname(), time=time.time(), argv=sys.argv)
    f.write(json.dumps(info))
    f.flush()
    _held[path] = [f, 1]


def _release(workdir: str) -> None:
    path = os.path.realpath(os.path.join(workdir, LOCK_NAME))
    entry = _held.get(path)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] == 0:
        del _held[path]
        entry[0].close()  # closing the descriptor releases the flock


def _agree(ok: bool) -> bool:
    """Process 0's `ok`, seen by every process of a multi-process run."""
    import jax

    if jax.process_count() == 1:
        return ok
    import numpy as np
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.int32(ok)))


@contextlib.contextmanager
def lock(workdir: str) -> Iterator[None]:
    """Holds `workdir`'s exclusive lock (process 0's in a multi-process run) while open.

    Raises WorkdirBusyError (a ConfigError: exit 2) naming the holder's pid and host."""
    import jax

    leader = jax.process_index() == 0
    error = None
    if leader:
        try:
            _acquire(workdir)
        except WorkdirBusyError as e:
            error = e
    if not _agree(error is None):
        raise error or WorkdirBusyError(
            f"workdir {workdir!r} is in use (process 0 could not lock it)."
        )
    try:
        yield
    finally:
        if leader:
            _release(workdir)


def holds_lock(workdir: str) -> bool:
    """Whether this process holds `workdir`'s lock."""
    return os.path.realpath(os.path.join(workdir, LOCK_NAME)) in _held


def try_lock_file(workdir: str) -> IO[str] | None:
    """Takes `workdir`'s lock for a child process to adopt: the open lock file (pass its
    descriptor and set LOCK_FD_ENV), or None if another process holds it."""
    try:
        _acquire(workdir)
    except WorkdirBusyError:
        return None
    return _held[os.path.realpath(os.path.join(workdir, LOCK_NAME))][0]


def release_lock_file(workdir: str) -> None:
    """Releases a lock taken by `try_lock_file`."""
    _release(workdir)


def move_aside(workdir: str) -> str | None:
    """Moves everything in `workdir` but its lock into `workdir/superseded/<time>/`
    (nothing is deleted); returns that folder, or None when there was nothing to move."""
    if not os.path.isdir(workdir):
        return None
    names = [n for n in os.listdir(workdir) if n not in (LOCK_NAME, SUPERSEDED)]
    if not names:
        return None
    target = os.path.join(workdir, SUPERSEDED, time.strftime("%Y%m%d-%H%M%S"))
    while os.path.exists(target):
        target += "_"
    os.makedirs(target)
    for name in names:
        os.replace(os.path.join(workdir, name), os.path.join(target, name))
    return target
