"""Evaluators named in `config.evals`: each entry's `kind` is a module path
defining `Evaluator(name, cfg, task, ctx)`, called with the parameters to evaluate
and returning {metric: float}. `EvalContext` is what the trainer hands every
evaluator; `EvaluatorBase` reads the common config keys:

    batch_size   0 = the training batch size
    every_steps  0 = train.eval_every's cadence; N = every N steps (and at the end)
    final_only   True: only when training ends

and knows the step it evaluates (`self.step`), so it can write per-example outputs to
`<workdir>/eval/<name>/<step>.jsonl` (`write_outputs`). This module's own Evaluator
averages the task's loss metrics over an evaluation split; `CollectingEvaluator` is the
base for metrics that are not batch means (AUROC, pass@k): it collects per-example
values over the split, then computes."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from framework import files, programs, sharding
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
    workdir: str = ""  # the run's workdir: per-example outputs go below it
    # What the run's compiled programs depend on (framework/programs.py); None: its
    # programs are not shared with other runs.
    program_base: str | None = None


class EvaluatorBase:
    """The common part of an evaluator: its name, the task, the context, and the
    config key batch_size (0 = the training batch size)."""

    def __init__(
        self, name: str, cfg: ml_collections.ConfigDict, task: Any, ctx: EvalContext
    ) -> None:
        self.name, self.task, self.ctx = name, task, ctx
        self.batch_size = int(cfg.get("batch_size", 0)) or ctx.train_batch_size
        self.batch_sharding = sharding.batch_sharding(ctx.mesh)
        self.every_steps = int(cfg.get("every_steps", 0))
        self.final_only = bool(cfg.get("final_only", False))
        if self.every_steps < 0:
            raise ConfigError(f"evals.{name}.every_steps={self.every_steps} must be >= 0.")
        self.step: int | None = None  # the step being evaluated (the trainer sets it)

    def due(self, step: int, default_every: int) -> bool:
        """Whether this evaluator runs at `step` during training (all run at the end)."""
        every = self.every_steps or default_every
        return not self.final_only and bool(every) and step % every == 0

    def prepare(self, abstract_params: Any) -> None:
        """Starts compiling what the first evaluation will run (on the background
        compile thread, framework/programs.py); the default prepares nothing."""

    def run_at(self, params: Any, step: int) -> dict[str, float]:
        """Evaluates `params` as the parameters of `step`."""
        self.step = step
        return self(params)

    def output_path(self) -> str:
        """`<workdir>/eval/<name>/<step>.jsonl`: this evaluation's per-example outputs."""
        step = "unknown" if self.step is None else str(self.step)
        return os.path.join(self.ctx.workdir, "eval", self.name, f"{step}.jsonl")

    def write_outputs(self, rows: Sequence[Mapping[str, Any]]) -> str | None:
        """Writes per-example rows (JSON objects) atomically; returns the path (process 0)."""
        if jax.process_index() != 0 or not self.ctx.workdir:
            return None
        path = self.output_path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        files.atomic_write_jsonl(path, rows, sort_keys=True)
        return path

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
            metrics = self.batch_metrics(merge(params), batch)
            weight = metrics.pop("_weight", jnp.ones(()))
            return {k: v if reduces_by_max(k) else v * weight for k, v in metrics.items()}, weight

        self._step = jax.jit(step, in_shardings=(ctx.params_sharding, self.batch_sharding))
        self._compiled: dict[tuple, Any] = {}
        self._started: dict[str, Callable[[], Any]] = {}  # program key -> its compile
        self._cfg_json = json.dumps(cfg.to_dict(), sort_keys=True, default=repr)
        try:  # fail at start, not at the first evaluation
            first = next(iter(self._batches()), None)
        except ValueError as e:
            raise ConfigError(f"evals.{name}: {e}") from None
        if first is None:
            raise ConfigError(
                f"evals.{name}: split {self.split!r} is too small for one batch of "
                f"{self.batch_size}; lower evals.{name}.batch_size or give more data."
            )
        count = jax.process_count()  # each process holds 1/count of the global batch
        self._first_batch = {
            k: jax.ShapeDtypeStruct(
                (np.shape(v)[0] * count, *np.shape(v)[1:]),
                np.asarray(v).dtype,
                sharding=self.batch_sharding,
            )
            for k, v in first.items()
        }

    def prepare(self, abstract_params: Any) -> None:
        """Starts compiling the step for the split's first batch shape. Only a shared
        program (its key names every argument's shape, dtype and sharding) is started:
        the first evaluation takes it only when its real arguments give the same key."""
        key = self._program_key(abstract_params, self._first_batch)
        if key is not None and key not in self._started:
            self._started[key] = programs.compile_in_background(
                key, lambda: self._step.lower(abstract_params, self._first_batch)
            )

    def batch_metrics(self, model: Any, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """One batch's metrics (traced): the task's evaluation-mode loss metrics; a
        subclass may evaluate otherwise (e.g. with another setting of the model)."""
        return dict(self.task.loss(model, batch, None)[1])

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
            batch = sharding.put_batch(batch, self.batch_sharding)
            shapes = tuple((k, v.shape) for k, v in sorted(batch.items()))
            if shapes not in self._compiled:  # e.g. a smaller last batch
                self._compiled[shapes] = self._compile(params, batch)
            metrics, weight = self._compiled[shapes](params, batch)
            accumulate(sums, metrics, jnp.maximum)
            total = total + weight
        if not sums:
            raise ValueError(f"evaluator {self.name!r}: split {self.split!r} gave no batches.")
        host: Mapping[str, Any] = jax.device_get((sums, total))
        sums, total = host
        means = finalize(sums, max(float(total), 1e-12))
        return {k: float(np.asarray(v)) for k, v in means.items()}

    def _program_key(self, params: Any, batch: Any) -> str | None:
        if self.ctx.program_base is None:
            return None
        base = f"{self.ctx.program_base}|{type(self).__name__}|{self._cfg_json}"
        return programs.key("eval_step", base, params, batch)

    def _compile(self, params: Any, batch: Any) -> Any:
        """The eval step compiled for these shapes (started by `prepare`, or now), shared
        with earlier runs' identical ones when the run shares programs."""
        program_key = self._program_key(params, batch)
        build = self._started.pop(program_key, None) if program_key else None
        build = build or (lambda: self._step.lower(params, batch).compile())
        return programs.get_or_build(program_key, build)


class CollectingEvaluator(EvaluatorBase):
    """Collects per-example values over a split, then computes metrics from all of them.

    Subclasses define `collect(model, batch) -> {name: [B, ...] array}` (traced, jitted;
    a '_valid' [B] entry marks real rows, padding rows are dropped) and `compute(values:
    {name: np.ndarray}) -> {metric: float}` (host side, e.g. eval_metrics.auroc)."""

    def __init__(
        self, name: str, cfg: ml_collections.ConfigDict, task: Any, ctx: EvalContext
    ) -> None:
        super().__init__(name, cfg, task, ctx)
        self.split = cfg.get("split", "val")
        merge = ctx.merge
        self._collect = jax.jit(
            lambda params, batch: self.collect(merge(params), batch),
            in_shardings=(ctx.params_sharding, self.batch_sharding),
        )

    def collect(self, model: Any, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """Per-example values of one batch (see the class docstring)."""
        raise NotImplementedError

    def compute(self, values: dict[str, np.ndarray]) -> dict[str, float]:
        """Metrics from every example's values."""
        raise NotImplementedError

    def __call__(self, params: Any) -> dict[str, float]:
        """Collects over the split (this process's rows; one process) and computes."""
        count = jax.process_count()
        batches = self.task.eval_batches(
            self.split,
            batch_size=self.batch_size // count,
            shard_index=jax.process_index(),
            shard_count=count,
        )
        parts: dict[str, list[np.ndarray]] = {}
        for batch in batches:
            out = jax.device_get(
                self._collect(params, sharding.put_batch(batch, self.batch_sharding))
            )
            valid = np.asarray(out.pop("_valid", np.ones(len(next(iter(out.values())))))) > 0
            for k, v in out.items():
                parts.setdefault(k, []).append(np.asarray(v)[valid])
        if not parts:
            raise ValueError(f"evaluator {self.name!r}: split {self.split!r} gave no batches.")
        return self.compute({k: np.concatenate(v) for k, v in parts.items()})
