"""Best-checkpoint keeping and early stopping on an evaluation metric.

`train.best_metric = 'val/loss'` (an evaluator's name / one of its metrics)
keeps the parameters of the best evaluation so far in `<workdir>/best/`
(orbax, one checkpoint) with `best.json` beside it; `train.early_stop_patience
= N` stops training after N evaluations in a row without improvement. Resumed
runs read best.json, so patience and the best value survive preemption.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from framework import checkpoint, files
from framework.config import ConfigError


class BestKeeper:
    """Tracks the best value of one evaluation metric and saves its parameters."""

    def __init__(self, workdir: str, metric: str, mode: str = "min", patience: int = 0):
        if "/" not in metric:
            raise ConfigError(
                f"train.best_metric={metric!r} must be '<evaluator>/<metric>', e.g. 'val/loss'."
            )
        if mode not in ("min", "max"):
            raise ConfigError(f"train.best_mode={mode!r} must be 'min' or 'max'.")
        self.evaluator, self.metric = metric.split("/", 1)
        self.name, self.mode, self.patience = metric, mode, patience
        self.json_path = os.path.join(workdir, "best.json")
        self.directory = os.path.abspath(os.path.join(workdir, "best"))
        self.state = {"metric": metric, "step": None, "value": None, "since_best": 0}
        saved = files.read_json_or_set_aside(self.json_path) or {}
        self._digests = saved.pop("digests", None)  # of the best params, checked on restore
        self.evaluated = saved.pop("evaluated", None)  # last step counted (a resume may redo it)
        self.state.update(saved)
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True),
        )

    def update(self, step: int, evals: dict[str, dict[str, float]], params: Any) -> bool:
        """Records an evaluation; saves params if best. Returns True to stop training."""
        if self.evaluator not in evals or self.metric not in evals[self.evaluator]:
            raise ConfigError(
                f"train.best_metric={self.name!r}: no such evaluation metric; evaluators give "
                + ", ".join(f"{e}/{m}" for e, ms in evals.items() for m in ms)
            )
        if self.evaluated is None or step > self.evaluated:  # not counted before a resume
            self._record(step, evals[self.evaluator][self.metric], params)
        return bool(self.patience) and self.state["since_best"] >= self.patience

    def _record(self, step: int, value: float, params: Any) -> None:
        self.evaluated = step
        best = self.state["value"]
        better = best is None or (value < best if self.mode == "min" else value > best)
        if better:
            self.state.update(step=step, value=value, since_best=0)
            saved = {"params": checkpoint.host_copy(params)}  # cheaper to save (checkpoint.py)
            self._manager.save(step, args=ocp.args.StandardSave(saved), force=True)
            self._manager.wait_until_finished()
            self._digests = checkpoint.digests(params)
        else:
            self.state["since_best"] += 1
        if jax.process_index() == 0:  # after the params: their digests are the integrity record
            record = {**self.state, "evaluated": step, "digests": self._digests}
            files.atomic_write_json(self.json_path, record)

    def restore(self, abstract_params: Any) -> Any:
        """The best parameters saved so far."""
        step = self._manager.latest_step()
        target = {"params": abstract_params}
        params = self._manager.restore(step, args=ocp.args.StandardRestore(target))["params"]
        problem = checkpoint.verify(params, self._digests)
        if problem:
            raise checkpoint.CorruptCheckpointError(f"{self.directory} (step {step}): {problem}")
        return params

    def close(self) -> None:
        """Releases the checkpoint manager."""
        self._manager.close()
