"""SIGTERM as a request to stop: the trainer checks a flag between steps, saves a
checkpoint and exits 0, and a SIGTERM that arrives before training starts (while JAX
imports or the step compiles) ends the run with nothing trained and exit 0.

`install_early()` is called first thing by the CLI; `StopFlag` is what the training
loop holds (it also sees a request that arrived before it was created).
"""

from __future__ import annotations

import contextlib
import signal
from typing import Any

import numpy as np

_early_request = False


def _note_early(signum: int, frame: Any) -> None:
    global _early_request
    _early_request = True


def install_early() -> None:
    """Records a SIGTERM from now on instead of dying (call before heavy imports)."""
    with contextlib.suppress(ValueError):  # not the main thread: nothing to install
        signal.signal(signal.SIGTERM, _note_early)


def requested_early() -> bool:
    """Whether a SIGTERM arrived since `install_early()`."""
    return _early_request


class StopFlag:
    """Turns SIGTERM into a flag the loop checks between steps (main thread only)."""

    def __init__(self) -> None:
        self.requested = _early_request
        self._previous = None
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not in the main thread: no preemption handling
            self._previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def should_stop(self, step: int, every: int) -> bool:
        """Whether to stop before `step`; all processes agree, at multiples of `every`."""
        import jax

        if jax.process_count() == 1:
            return self.requested
        if step % every:
            return False
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.asarray(self.requested))
        return bool(np.any(flags))

    def restore(self) -> None:
        """Puts back the SIGTERM handler that was there before."""
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
