"""Evaluators named in `config.evals`: each entry's `kind` is a module path
defining `Evaluator(name, cfg, task, ctx)`, called with the parameters to evaluate
and returning {metric: float}. `EvalContext` is what the trainer hands every
evaluator; `EvaluatorBase` reads the common config keys. This module's own
Evaluator averages the task's loss metrics over an evaluation split."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from framework import sharding
from framework.config import ConfigError
from framework.metrics import accumulate, finalize, reduces_by_max


@dataclasses.dataclass(frozen=True)
class EvalContext:
    """What the trainer gives every evaluator besides its config and the task."""

    mesh: jax.sharding.Mesh
    params_sharding: Any  # the parameters' shardings (in_shardings of a jitted eval step)
    merge: Callable[[Any], Any]  # params (a pure dict) -> the NNX model
    train_batch_size: int
    # The parameters at step 0, exactly as the trainer initializes them (its compiled
    # init program, so an evaluator comparing against W0 compiles no init of its own).
    initial_params: Callable[[], Any]


class EvaluatorBase:
    """The common part of an evaluator: its name, the task, the context, and the
    config key batch_size (0 = the training batch size)."""

    def __init__(
        self, name: str, cfg: ml_collections.ConfigDict, task: Any, ctx: EvalContext
    ) -> None:
        self.name, self.task, self.ctx = name, task, ctx
        self.batch_size = int(cfg.get("batch_size", 0)) or ctx.train_batch_size
        self.batch_sharding = sharding.batch_sharding(ctx.mesh)

    def __call__(self, params: Any) -> dict[str, float]:
        """Evaluates `params`; returns {metric: value}."""
        raise NotImplementedError


class Evaluator(EvaluatorBase):
    """Mean of task.loss metrics over `split`, weighted by the '_weight' metric
    (maxima, '<name>_max' metrics, take the max).

    Config keys: split (default 'val'), num_batches (0 = whole split),
    batch_size (0 = the training batch size).
    """

    def __init__(
        self, name: str, cfg: ml_collections.ConfigDict, task: Any, ctx: EvalContext
    ) -> None:
        super().__init__(name, cfg, task, ctx)
        self.split = cfg.get("split", "val")
        self.num_batches = int(cfg.get("num_batches", 0))
        merge = ctx.merge

        def step(params, batch):
            _, metrics = task.loss(merge(params), batch, None)
            weight = metrics.pop("_weight", jnp.ones(()))
            return {k: v if reduces_by_max(k) else v * weight for k, v in metrics.items()}, weight

        self._step = jax.jit(step, in_shardings=(ctx.params_sharding, self.batch_sharding))
        try:  # fail at start, not at the first evaluation
            first = next(iter(self._batches()), None)
        except ValueError as e:
            raise ConfigError(f"evals.{name}: {e}") from None
        if first is None:
            raise ConfigError(
                f"evals.{name}: split {self.split!r} is too small for one batch of "
                f"{self.batch_size}; lower evals.{name}.batch_size or give more data."
            )

    def _batches(self) -> Any:
        count = jax.process_count()
        return self.task.eval_batches(
            self.split,
            batch_size=self.batch_size // count,
            shard_index=jax.process_index(),
            shard_count=count,
        )

    def __call__(self, params: Any) -> dict[str, float]:
        """Evaluates `params`; returns the weighted mean of each metric."""
        batches = self._batches()
        sums: dict[str, Any] = {}
        total = 0.0
        for i, batch in enumerate(batches):
            if self.num_batches and i >= self.num_batches:
                break
            metrics, weight = self._step(params, sharding.put_batch(batch, self.batch_sharding))
            accumulate(sums, metrics, jnp.maximum)
            total = total + weight
        if not sums:
            raise ValueError(f"evaluator {self.name!r}: split {self.split!r} gave no batches.")
        host: Mapping[str, Any] = jax.device_get((sums, total))
        sums, total = host
        means = finalize(sums, max(float(total), 1e-12))
        return {k: float(np.asarray(v)) for k, v in means.items()}
