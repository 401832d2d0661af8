"""Checkpoints: orbax CheckpointManager over the train state and the grain
iterator state, with auto-resume and fallback past a corrupt checkpoint.

Every checkpoint carries a digest of each array it holds (`digests`: two position-
weighted sums of the array's bits, computed on device), saved as its own item in
the same atomic commit as the data. A restore recomputes them on what it read; a
mismatch (bytes changed on disk after the save) sets the checkpoint aside like an
unreadable one. Orbax 0.12's own crc32c covers only zarr3 shard indices, not data.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging as std_logging
import os
import shutil
from collections.abc import Iterator
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from framework import config as config_lib, files
from framework.config import ConfigError
from framework.variables import union
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
        state = host_copy(state)
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
                saved = saved_tree(state_dir)
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

    have, want = _shapes(saved), _shapes(abstract_state)
    if have == want:
        return
    diff = sorted(set(have) ^ set(want)) or [k for k in want if have[k] != want[k]]
    key = diff[0]
    raise ConfigError(
        f"the checkpoint at step {step} in {directory} holds another model or optimizer "
        f"({key}: saved {have.get(key, 'absent')}, this config {want.get(key, 'absent')}); "
        "use a new --workdir, or the config that wrote it."
    )


def _shapes(tree: Any) -> dict[str, tuple]:
    """{path: shape} of a tree of arrays (or of their metadata)."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {path_str(path): tuple(x.shape) for path, x in flat}


INTEGRITY = "integrity"  # the checkpoint item holding the digests


def _array_digest(x: jax.Array) -> jax.Array:
    """[sum of words, sum of words * (2i + 1)] mod 2^32 over the array's bits as uint32s."""
    width = x.dtype.itemsize * 8
    bits = jax.lax.bitcast_convert_type(x, jnp.dtype(f"uint{width}")) if width > 1 else x
    if width == 64:
        bits = jax.lax.bitcast_convert_type(bits, jnp.uint32)  # [..., 2]
    words = bits.astype(jnp.uint32).reshape(-1)
    odd = jnp.arange(words.shape[0], dtype=jnp.uint32) * jnp.uint32(2) + jnp.uint32(1)
    # dtype=uint32 keeps the sums mod 2^32 with jax_enable_x64 too (it would widen them)
    return jnp.stack([jnp.sum(words, dtype=jnp.uint32), jnp.sum(words * odd, dtype=jnp.uint32)])


def _host_digest(x: np.ndarray) -> list[int]:
    """`_array_digest` in numpy (uint32 arithmetic wraps mod 2^32 the same way)."""
    x = np.ascontiguousarray(x, dtype=jax.dtypes.canonicalize_dtype(x.dtype))  # as jnp would
    width = x.dtype.itemsize * 8
    words = x.view(np.uint32) if width == 64 else x.view(f"uint{width}").astype(np.uint32)
    words = words.reshape(-1)
    odd = np.arange(words.shape[0], dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    return [int(np.sum(words, dtype=np.uint32)), int(np.sum(words * odd, dtype=np.uint32))]


def _on_host(x: Any) -> bool:
    """Whether `x`'s bytes are already in host memory: numpy, or a JAX array on one CPU."""
    if not isinstance(x, jax.Array):
        return True
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.extended):  # typed PRNG keys
        return False
    devices = x.sharding.device_set
    return len(devices) == 1 and next(iter(devices)).platform == "cpu"


# Up to this size, a state held in this process's CPU memory is saved from numpy copies.
# Orbax spends ~1 ms more per array on a jax.Array than on a numpy array (replica
# slices, a device-to-host transfer): a tiny model's 94-array state saved in ~110
# instead of ~210 ms, which bounds a short run that checkpoints often (an inline sweep
# point, a test). The files are the same arrays in the same format, restored as
# jax.Arrays into the run's shardings; the copy is needed because the train step
# donates the state's buffers while the asynchronous save still reads them.
HOST_COPY_MAX_BYTES = 64 << 20


def host_copy(state: Any) -> Any:
    """`state` with its jax.Arrays as numpy copies if it is small and in this process's CPU
    memory, else as is."""
    leaves = jax.tree.leaves(state)
    if jax.process_count() > 1 or not all(_on_host(x) for x in leaves):
        return state
    if sum(getattr(x, "nbytes", 0) for x in leaves) > HOST_COPY_MAX_BYTES:
        return state
    return jax.tree.map(lambda x: np.array(x, copy=True) if isinstance(x, jax.Array) else x, state)


# Arrays in host memory are digested by numpy (no program to compile: a tiny model's
# state took ~1 s of compiles for 8 array shapes). Arrays on one accelerator take one
# small program per (shape, dtype), shared by a state's arrays and the runs of a
# process. Arrays over several devices take one whole-tree program: separate programs'
# collectives could interleave across processes.
_digest = jax.jit(_array_digest)
_tree_digest = jax.jit(lambda arrays: [_array_digest(x) for x in arrays])


def digests(tree: Any) -> dict[str, list[int]]:
    """A digest of every array of `tree` (sharded arrays included), keyed by path."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    arrays = [x for _, x in flat]
    if all(_on_host(x) for x in arrays):
        values = [_host_digest(np.asarray(x)) for x in arrays]
    elif all(not isinstance(x, jax.Array) or len(x.sharding.device_set) == 1 for x in arrays):
        values = jax.device_get([_digest(x) for x in arrays])
    else:
        values = jax.device_get(_tree_digest(arrays))
    return {path_str(path): [int(v) for v in d] for (path, _), d in zip(flat, values)}


def verify(tree: Any, saved: dict | None, partial: bool = False) -> str | None:
    """None if `tree`'s digests equal `saved` (or nothing was saved), else the problem.
    partial: `tree` may be a subset of what was saved."""
    if not saved:
        return None
    now = digests(tree)
    for path, digest in now.items():
        # mod 2^32: digests written under jax_enable_x64 before the sums were pinned to
        # uint32 hold the same sums unwrapped
        if [v % 2**32 for v in saved.get(path) or []] != digest:
            return (
                f"array {path} differs from what was saved (digest mismatch): data changed on disk"
            )
    missing = [] if partial else sorted(set(saved) - set(now))
    return f"the saved digests name arrays it lacks: {missing[:3]}" if missing else None


# ---- loading a run's parameters ------------------------------------------------------


def saved_tree(path: str) -> Any:
    """The metadata tree (shapes, dtypes) of the pytree checkpoint at `path`."""
    # the item's handler reads the tree's own metadata (a Checkpointer would also look for
    # a step-level metadata file, absent inside `state/`, and warn)
    return ocp.PyTreeCheckpointHandler().metadata(epath.Path(path)).tree


def _replicated_target(tree_metadata: Any) -> Any:
    """ShapeDtypeStructs of saved arrays, replicated on every device of this program."""
    mesh = jax.sharding.Mesh(jax.devices(), ("all",))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=replicated),
        tree_metadata,
    )


def _restore_subtree(path: str, key: str, target: Any | None) -> Any:
    """The `key` subtree of the pytree checkpoint at `path` (no other array is read),
    restored into `target` (abstract arrays with shardings; None: the saved shapes,
    replicated). Raises ConfigError naming the first path or shape that differs."""
    path = epath.Path(path)
    saved = saved_tree(path)[key]
    if target is None:
        target = _replicated_target(saved)
    else:
        check_params_match(saved, target, path)
    restore_args = ocp.checkpoint_utils.construct_restore_args({key: target})
    args = ocp.args.PyTreeRestore(
        item={key: target}, restore_args=restore_args, partial_restore=True
    )
    with ocp.PyTreeCheckpointer() as checkpointer:
        return checkpointer.restore(path, args=args)[key]


def check_params_match(saved: Any, target: Any, where: str) -> None:
    """Raises ConfigError unless every array of `target` is in `saved` with its shape."""
    have = _shapes(saved)
    for name, shape in _shapes(target).items():
        if have.get(name) != shape:
            raise ConfigError(
                f"{where} holds another architecture: parameter {name} is "
                f"{have.get(name, 'absent')} there and {shape} here; load a run of the same "
                "model, or leave that parameter freshly initialised (train.init_dont_load)."
            )


def saved_steps(workdir: str) -> list[int]:
    """The finished checkpoint steps of a run, ascending (ConfigError without any folder)."""
    directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    if not os.path.isdir(directory):
        raise ConfigError(f"{workdir!r} has no checkpoints; train the run first.")
    options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
    with _without_read_only_notice():
        manager = ocp.CheckpointManager(directory, item_names=("state",), options=options)
    steps = sorted(manager.all_steps())
    manager.close()
    return steps


@contextlib.contextmanager
def _without_read_only_notice() -> Iterator[None]:
    """Drops orbax's warning that a manager opened read-only is read-only (one per
    evaluated checkpoint otherwise)."""

    def keep(record: std_logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Given directory is read only")

    logger = logging.get_absl_logger()
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _sources(workdir: str, which: str | int) -> list[tuple[str, int]]:
    """(pytree checkpoint directory, step) holding `which` parameters, in the order to try."""
    if which == "best":
        record = files.read_json(os.path.join(workdir, "best.json"), None)
        directory = os.path.abspath(os.path.join(workdir, "best"))
        if not isinstance(record, dict) or record.get("step") is None:
            raise ConfigError(
                f"{workdir!r} kept no best parameters (train.best_metric was not set, or no "
                "evaluation has run); use :latest or a step."
            )
        return [(os.path.join(directory, str(record["step"]), "default"), int(record["step"]))]
    if which != "latest" and not str(which).isdigit():
        raise ConfigError(f"which={which!r} must be 'best', 'latest' or a step number.")
    directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    steps = saved_steps(workdir)[::-1]
    if which != "latest":
        if int(which) not in steps:
            raise ConfigError(
                f"{workdir!r} has no checkpoint at step {which}; it has {sorted(steps) or 'none'}."
            )
        steps = [int(which)]
    if not steps:
        raise ConfigError(f"{workdir!r} has no finished checkpoint; train the run first.")
    return [(os.path.join(directory, str(s), "state"), s) for s in steps]


def _saved_param_digests(source: str, workdir: str, key: str = "params") -> dict:
    """The digests saved with the state's subtree `key` at `source` (keyed by path)."""
    if source.endswith("default"):  # best/<step>/default: best.json holds them
        return (files.read_json(os.path.join(workdir, "best.json"), {}) or {}).get("digests") or {}
    path = os.path.join(os.path.dirname(source), INTEGRITY)
    if not os.path.isdir(path):
        return {}
    saved = ocp.JsonCheckpointHandler().restore(epath.Path(path)) or {}
    prefix = f"{key}/"
    return {k[len(prefix) :]: v for k, v in saved.items() if k.startswith(prefix)}


def check_loadable(workdir: str, which: str | int, target: Any) -> None:
    """Raises ConfigError unless `workdir` has `which` parameters that hold every array of
    `target` with its shape (reads metadata only)."""
    source, _ = _sources(workdir, which)[0]
    try:
        saved = saved_tree(source)
    except Exception as e:  # noqa: BLE001 - an unreadable checkpoint is the user's to fix
        raise ConfigError(f"cannot read {source}: {type(e).__name__}: {e}") from None
    check_params_match(saved["params"], target, source)


def restore_params(
    workdir: str, which: str | int = "latest", target: Any = None
) -> tuple[Any, int]:
    """(params, step) of the run in `workdir`; see load_params for `which` and `target`."""
    return restore_variables(workdir, which, {"params": target})


def restore_variables(workdir: str, which: str | int, parts: dict[str, Any]) -> tuple[Any, int]:
    """(variables, step): the union of the train state's subtrees named in `parts` ({key:
    target}, e.g. {'params': ..., 'model_state': ...}; framework/variables.py), each
    restored into its target as restore_params does. `best/` holds the evaluated
    variables already united, under 'params'."""
    for source, step in _sources(workdir, which):
        try:
            if source.endswith("default"):  # best/: one tree
                targets = list(parts.values())
                target = None if targets[0] is None else functools.reduce(union, targets)
                params = _restore_subtree(source, "params", target)
                problem = verify(params, _saved_param_digests(source, workdir), partial=True)
            else:
                params, problem = {}, None
                for key, target in parts.items():
                    part = _restore_subtree(source, key, target)
                    digests_ = _saved_param_digests(source, workdir, key)
                    problem = problem or verify(part, digests_, partial=True)
                    params = union(params, part)
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001 - unreadable: the previous one, if allowed
            problem = f"unreadable ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        if problem is None:
            return params, step
        if which != "latest":
            raise ConfigError(f"the parameters at step {step} in {source}: {problem}.")
        logging.warning("checkpoint at step %d is %s; trying the previous one.", step, problem)
    raise ConfigError(f"{workdir!r} has no readable checkpoint; train the run first.")


def load_params(workdir: str, which: str | int = "latest", target: Any = None) -> tuple[Any, Any]:
    """(config, params) of a finished or interrupted run, without building its task, data
    pipeline or evaluators.

    which: 'best' (the parameters train.best_metric kept), 'latest' (the newest checkpoint
    whose digests verify; older ones are tried past an unreadable one, and nothing on disk
    is moved), or a step. target: abstract parameters with shardings to restore into
    (e.g. a trainer's, to place them on its mesh); only the arrays it names are read.
    Default: the saved tree, replicated on this program's devices. Every problem is a
    ConfigError naming it."""
    config = config_lib.saved_config(workdir)
    params, _ = restore_params(workdir, which, target)
    return config, params
