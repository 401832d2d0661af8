"""Checkpoints: orbax CheckpointManager over the train state and the grain
iterator state, with auto-resume and fallback past a corrupt checkpoint.

Every checkpoint carries a digest of each array it holds (`digests`: two position-
weighted sums of the array's bits, computed on device), saved as its own item in
the same atomic commit as the data. A restore recomputes them on what it read; a
mismatch (bytes changed on disk after the save) sets the checkpoint aside like an
unreadable one. Orbax 0.12's own crc32c covers only zarr3 shard indices, not data.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
from typing import Any

import grain
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

from framework.config import ConfigError
from optim.param_groups import path_str


class CorruptCheckpointError(ValueError):
    """A checkpoint's data does not match the digests saved with it."""


class Checkpointer:
    """Saves and restores {train state, data iterator} under `<workdir>/checkpoints`."""

    def __init__(self, workdir: str, *, keep: int, async_save: bool = True):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        self.quarantine = os.path.abspath(os.path.join(workdir, "checkpoints_corrupt"))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save
        )
        self.manager = ocp.CheckpointManager(
            self.directory, item_names=("state", "data", INTEGRITY), options=options
        )

    def all_steps(self) -> list[int]:
        """Finished checkpoint steps, ascending."""
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest finished checkpoint step, or None."""
        return self.manager.latest_step()

    def save(self, step: int, state: Any, data_iter: Any) -> None:
        """Saves (asynchronously if enabled) state and iterator position at `step`.

        Raises OSError(ENOSPC) before writing anything when the disk has less room
        than the state's size: a failed asynchronous write would leave a half-written
        checkpoint and a cascade of errors from orbax's threads instead of one line."""
        if step in self.manager.all_steps():
            return
        self.manager.wait_until_finished()  # the previous save's space is now used
        need = int(1.05 * sum(x.nbytes for x in jax.tree.leaves(state))) + (256 << 10)
        free = shutil.disk_usage(self.directory).free
        if free < need:
            raise OSError(
                errno.ENOSPC,
                f"No space left on device: a checkpoint needs about {need / 2**20:.1f} MiB, "
                f"{free / 2**20:.1f} MiB are free",
                self.directory,
            )
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=grain.checkpoint.CheckpointSave(data_iter),
                **{INTEGRITY: ocp.args.JsonSave(digests(state))},
            ),
            force=True,
        )

    def restore_latest(self, abstract_state: Any, data_iter: Any) -> tuple[Any, int] | None:
        """Restores the newest readable checkpoint; corrupt ones are moved aside.

        Returns (state, step), or None when there is no usable checkpoint.
        `data_iter` is restored in place. A readable checkpoint of another
        model or optimizer (the config changed) raises ConfigError and moves
        nothing.
        """
        for step in reversed(self.all_steps()):
            state_dir = os.path.join(self.directory, str(step), "state")
            try:
                saved = ocp.StandardCheckpointer().metadata(state_dir).item_metadata.tree
            except Exception as e:  # noqa: BLE001 - unreadable metadata means corrupt
                self._set_aside(step, e)
                continue
            check_compatible(saved, abstract_state, self.directory, step)
            try:
                restored = self.manager.restore(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(abstract_state),
                        data=grain.checkpoint.CheckpointRestore(data_iter),
                    ),
                )
                saved_digests = self._saved_digests(step)
            except Exception as e:  # noqa: BLE001 - any read failure means "unusable"
                self._set_aside(step, e)
                continue
            problem = verify(restored["state"], saved_digests)
            if problem:
                self._set_aside(step, ValueError(problem))
                continue
            return restored["state"], step
        return None

    def _saved_digests(self, step: int) -> dict | None:
        """The digests saved with `step`; None for a checkpoint from before they existed."""
        if not os.path.isdir(os.path.join(self.directory, str(step), INTEGRITY)):
            logging.warning(
                "checkpoint at step %d has no digests (older format); not verified.", step
            )
            return None
        args = ocp.args.Composite(**{INTEGRITY: ocp.args.JsonRestore()})
        return self.manager.restore(step, args=args)[INTEGRITY]

    def _set_aside(self, step: int, error: Exception) -> None:
        """Moves an unreadable checkpoint out of the manager's way, keeping its files."""
        target = os.path.join(self.quarantine, str(step))
        if jax.process_index() == 0:
            os.makedirs(self.quarantine, exist_ok=True)
            while os.path.exists(target):
                target += "_"
            shutil.move(os.path.join(self.directory, str(step)), target)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"set_aside_{step}")
        logging.warning(
            "checkpoint at step %d is unreadable (%s: %s); moved it to %s and "
            "falling back to the previous one.",
            step,
            type(error).__name__,
            str(error).splitlines()[0][:200] if str(error) else "",
            target,
        )
        self.manager.reload()

    def wait(self) -> None:
        """Blocks until pending asynchronous saves are on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases the manager."""
        self.manager.wait_until_finished()
        self.manager.close()


def check_compatible(saved: Any, abstract_state: Any, directory: str, step: int) -> None:
    """Raises ConfigError if a checkpoint's arrays differ in paths or shapes from the run's."""

    def shapes(tree: Any) -> dict[str, tuple]:
        flat = jax.tree_util.tree_flatten_with_path(tree)[0]
        return {path_str(path): tuple(x.shape) for path, x in flat}

    have, want = shapes(saved), shapes(abstract_state)
    if have == want:
        return
    diff = sorted(set(have) ^ set(want)) or [k for k in want if have[k] != want[k]]
    key = diff[0]
    raise ConfigError(
        f"the checkpoint at step {step} in {directory} holds another model or optimizer "
        f"({key}: saved {have.get(key, 'absent')}, this config {want.get(key, 'absent')}); "
        "use a new --workdir, or the config that wrote it."
    )


INTEGRITY = "integrity"  # the checkpoint item holding the digests


def _array_digest(x: jax.Array) -> jax.Array:
    """[sum of words, sum of words * (2i + 1)] mod 2^32 over the array's bits as uint32s."""
    width = x.dtype.itemsize * 8
    bits = jax.lax.bitcast_convert_type(x, jnp.dtype(f"uint{width}")) if width > 1 else x
    if width == 64:
        bits = jax.lax.bitcast_convert_type(bits, jnp.uint32)  # [..., 2]
    words = bits.astype(jnp.uint32).reshape(-1)
    odd = jnp.arange(words.shape[0], dtype=jnp.uint32) * jnp.uint32(2) + jnp.uint32(1)
    return jnp.stack([jnp.sum(words), jnp.sum(words * odd)])


@functools.cache
def _digest_fn() -> Any:
    return jax.jit(lambda tree: jax.tree.map(_array_digest, tree))


def digests(tree: Any) -> dict[str, list[int]]:
    """A digest of every array of `tree` (sharded arrays included), keyed by path."""
    values = jax.device_get(_digest_fn()(tree))
    flat = jax.tree_util.tree_flatten_with_path(values)[0]
    return {path_str(path): [int(v) for v in d] for path, d in flat}


def verify(tree: Any, saved: dict | None) -> str | None:
    """None if `tree`'s digests equal `saved` (or nothing was saved), else the problem."""
    if saved is None:
        return None
    now = digests(tree)
    for path, digest in now.items():
        if saved.get(path) != digest:
            return (
                f"array {path} differs from what was saved (digest mismatch): data changed on disk"
            )
    missing = sorted(set(saved) - set(now))
    return f"the saved digests name arrays it lacks: {missing[:3]}" if missing else None
