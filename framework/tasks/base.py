"""The Task interface: what a config plugs into the trainer.

A task module (found by module path from `config.task`) defines a class
`Task` with this interface. Metrics whose names start with '_' are
bookkeeping: '_weight' weights a batch's metrics when evaluators average
over batches; none of them is logged. Metrics named '<name>_max' (or
'<name>_max/<sub>') are maxima and combine by max everywhere
(framework.metrics.reduces_by_max).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx

Batch = Mapping[str, np.ndarray]


class Task(abc.ABC):
    """Builds the model, computes the loss, provides data."""

    # What throughput counts: 'examples', or e.g. 'tokens' (see items_per_example).
    items_name: str = "examples"
    # Config keys (dotted) that no traced function of this task reads (e.g. where its
    # data comes from): runs differing only in them share compiled programs
    # (framework/programs.py). Leave a key out when in doubt.
    runtime_keys: tuple[str, ...] = ()
    # The config sections build_model reads (None: unknown, so the whole config keys the
    # init program); with them, runs of one model and optimizer share one init program.
    init_sections: tuple[str, ...] | None = None

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config

    @abc.abstractmethod
    def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
        """A freshly initialised model; its only state must be nnx.Param."""

    @abc.abstractmethod
    def loss(
        self, model: nnx.Module, batch: Batch, rng: jax.Array | None
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """(scalar loss to minimise, metrics); rng=None means evaluation mode."""

    @abc.abstractmethod
    def train_dataset(
        self, *, batch_size: int, seed: int, shard_index: int, shard_count: int
    ) -> Any:
        """An endless grain dataset of per-process batches (checkpointable iterator)."""

    def eval_batches(
        self, split: str, *, batch_size: int, shard_index: int, shard_count: int
    ) -> Iterable[Batch]:
        """A finite iterable of per-process batches of `split`."""
        raise NotImplementedError(f"{type(self).__name__} has no evaluation split {split!r}.")

    @property
    def num_train_examples(self) -> int | None:
        """Examples per epoch, if known (for *_epochs durations)."""
        return None

    def readers(self) -> tuple[int, int]:
        """(threads, processes) reading a MapDataset's batches (0 processes: in this one)."""
        return 1, 0

    def items_per_example(self) -> int:
        """Items (see items_name) per example, for throughput."""
        return 1

    def on_train_end(self, model: nnx.Module, workdir: str) -> None:
        """Called by every process with the final model (e.g. to print samples)."""
        del model, workdir  # nothing to do by default

    def describe_model(self) -> dict[str, float]:
        """Numbers worth printing at start: 'params', and 'train FLOPs/<item>' (training
        FLOPs per item of items_per_example) for the dry run's model FLOPs per step."""
        return {}
