"""The trainer: one jit-compiled training loop that every task and paper uses.

`train(config, workdir)` is both what the CLI runs and a library call that
experiment programs chain. Construction (`Trainer.__init__`) validates and
builds everything abstractly and writes nothing; `run()` compiles the step,
takes the workdir's lock (one run per workdir) and only then touches the disk.

The train state is a plain pytree:
  {'step': int32[], 'params': pure dict of the NNX model's Params,
   'opt_state': optax state, 'rng': uint32 key data}
plus, when they exist, 'model_state' (BatchNorm statistics, framework/variables.py) and
'ema' (an exponential moving average of the params, train.ema_decay > 0), so that orbax
checkpoints hold readable parameter paths and the jitted step is an ordinary function
of arrays (the NNX model is rebuilt inside it with `nnx.merge`, which costs nothing
after tracing). Evaluators get the model's variables: the params (the EMA when kept)
with the model state (`Trainer.variables`).

Resuming (see README "Resuming"): a re-run continues from the newest checkpoint
that reads back and matches its digests; a finished run returns its result.json
(warning if the config changed); a finished run whose checkpoints are all gone or
corrupt is refused rather than retrained over; `run(restart=True)` moves the old
files aside first.
"""

from __future__ import annotations

import os
import time
from typing import Any

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

import optim
from data import batching
from framework import (
    checkpoint,
    compilation_cache,
    config as config_lib,
    dry_run,
    early_stopping,
    evaluators as evaluators_lib,
    files,
    init_from,
    metrics as metrics_lib,
    preemption,
    programs,
    sharding,
    train_step,
    variables as variables_lib,
    workdir as workdir_lib,
)

DivergedError = metrics_lib.DivergedError
FINISHED = ("done", "early_stopped")  # result.json statuses of a run that needs no more steps


class Trainer:
    """Builds the task, mesh, shardings, optimizer and jitted functions."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str, abstract: bool = False):
        """abstract=True (dry runs): a task that can (`data_free_dry_run`) is built without
        its data, and no evaluators are; only compile_step and describe make sense."""
        config_lib.validate(config)
        workdir_lib.check_usable(workdir)
        compilation_cache.enable(workdir, config.train.compilation_cache)
        self.config = config
        self.workdir = workdir
        task_class = config_lib.load_class(config.task, "Task", "task")
        if abstract and getattr(task_class, "data_free_dry_run", False):
            self.task = task_class(config, abstract=True)
        else:
            self.task = task_class(config)
        self.mesh = sharding.make_mesh(config.mesh)
        self.batch_size = config.train.batch_size
        sharding.check_batch(self.mesh, self.batch_size, config.train.grad_accum_steps)
        self.steps = config_lib.resolve_durations(
            config, examples_per_epoch=self.task.num_train_examples
        )
        self._program_base = self._init_base = None
        if config.train.reuse_programs:
            runtime = programs.config_key(config, self.task.runtime_keys)
            schedule = (self.steps["total"], self.steps["warmup"])  # the step's constants
            self._program_base = f"{runtime}|{schedule}|{self.mesh!r}"
            sections = self.task.init_sections
            if sections is not None:  # + the optimizer (its init) and the state's shapes
                narrow = programs.sections_key(config, (*sections, "optimizer"))
                task_class = f"{type(self.task).__module__}.{type(self.task).__qualname__}"
                self._init_base = f"{task_class}|{narrow}|{self.mesh!r}"
        self._build_state_functions()
        self._compiled_step, self._step_key = None, None  # the compiled step and its key
        self._init_build: Any = None  # a background compile of the init (run)
        ctx = evaluators_lib.EvalContext(
            mesh=self.mesh,
            params_sharding=self.variables_sharding,
            merge=self.merge,
            train_batch_size=self.batch_size,
            initial_params=lambda: self.variables(self._init()),
            workdir=workdir,
            program_base=self._program_base,
        )
        self.evaluators = {
            name: config_lib.load_class(ev.kind, "Evaluator", f"evals.{name}.kind")(
                name, ev, self.task, ctx
            )
            for name, ev in ({} if abstract else config.evals).items()
        }

    # ---- building -------------------------------------------------------------

    def _shapes(self, kind: str, build: Any) -> Any:
        """`build()` (a traced structure: shapes, no values), shared in-process by runs of
        the same model and optimizer like their init program (framework/programs.py);
        its containers copied, so no run sees another's edits."""
        base = self._init_base or self._program_base
        ema = bool(self.config.train.ema_decay)
        kind = f"{kind} shapes, reference={bool(self.reference)}, ema={ema}"
        program_key = None if base is None else programs.key(kind, base)
        return jax.tree.map(lambda x: x, programs.get_or_build(program_key, build))

    def _build_state_functions(self) -> None:
        config, task = self.config, self.task
        # A task with a reference run (e.g. a KL penalty to it) carries its parameters
        # in the state: frozen, sharded like the params, checkpointed (exact resume).
        self.reference = getattr(task, "reference_run", "")
        self.graphdef, abstract_params, logical, abstract_ms, ms_logical = self._shapes(
            "model", lambda: variables_lib.abstract_model(task)
        )
        params_sharding = sharding.param_shardings(
            logical, abstract_params, self.mesh, config.mesh.rules
        )
        self.has_model_state = bool(jax.tree.leaves(abstract_ms))
        self.ema_decay = float(config.train.ema_decay)
        self.traced_schedule = train_step.TracedSchedule(config, self.steps, self.mesh)
        self.schedule = self.traced_schedule(config.optimizer.lr)
        self.tx = optim.build_optimizer(config.optimizer, self.schedule, abstract_params)
        abstract_opt = jax.eval_shape(self.tx.init, abstract_params)
        replicated = NamedSharding(self.mesh, PartitionSpec())
        self.state_sharding = {
            "step": replicated,
            "params": params_sharding,
            "opt_state": sharding.mirror_shardings(
                abstract_opt, abstract_params, params_sharding, self.mesh
            ),
            "rng": replicated,
        }
        if self.reference:
            self.state_sharding["reference"] = params_sharding
        ms_sharding = None
        if self.has_model_state:
            ms_sharding = sharding.param_shardings(
                ms_logical, abstract_ms, self.mesh, config.mesh.rules
            )
            self.state_sharding["model_state"] = ms_sharding
        if self.ema_decay:
            self.state_sharding["ema"] = params_sharding
        self.variables_sharding = variables_lib.union(params_sharding, ms_sharding)
        self.batch_sharding = sharding.batch_sharding(self.mesh)

        # The seed is an argument of the compiled init (not a constant in it), so the points
        # of a seed sweep share one init program through the persistent compilation cache.
        def init(seed: jax.Array) -> dict[str, Any]:
            params_key, train_key = jax.random.split(jax.random.key(seed))
            params, model_state = variables_lib.initial_variables(task, params_key)
            state = {
                "step": jnp.zeros((), jnp.int32),
                "params": params,
                "opt_state": self.tx.init(params),
                "rng": jax.random.key_data(train_key),
            }
            if self.reference:  # filled from the reference run by _initial_state
                state["reference"] = params
            if self.has_model_state:
                state["model_state"] = model_state
            if self.ema_decay:
                state["ema"] = params
            return state

        self.abstract_state = jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
            self._shapes("state", lambda: jax.eval_shape(init, np.int64(0))),
            self.state_sharding,
        )
        self._init_fn = jax.jit(init, out_shardings=self.state_sharding)
        self.abstract_variables = self.variables(self.abstract_state)
        self.schedule_args = self.traced_schedule.args
        step = train_step.TrainStep(config, task, self.merge, self.traced_schedule, self.mesh)
        self._step_fn = jax.jit(
            step,
            in_shardings=(self.state_sharding, self.batch_sharding, replicated),
            out_shardings=(self.state_sharding, replicated),
            donate_argnums=0,
        )

    def _step(self, state: dict, batch: dict) -> tuple[dict, dict]:
        """The jitted train step at the configured schedule."""
        return self._step_fn(state, batch, self.schedule_args)

    def _program_key(self, kind: str, *args: Any) -> str | None:
        """The key of this run's program `kind` on `args` (framework/programs.py); None
        when train.reuse_programs is off."""
        if self._program_base is None:
            return None
        return programs.key(kind, self._program_base, *args)

    def _init_program(self) -> tuple[np.int64, str | None]:
        """(seed, program key) of the compiled init, which takes the seed as its argument."""
        seed = np.int64(self.config.seed)
        if self._init_base is not None:  # a narrow key: the output's shapes join it
            return seed, programs.key("init", self._init_base, seed, self.abstract_state)
        return seed, self._program_key("init", seed)

    def _init(self) -> dict[str, Any]:
        """The state at step 0 from the compiled init (started early by `run`, or now)."""
        seed, key = self._init_program()
        build, self._init_build = self._init_build, None
        options = programs.run_once_options()
        build = build or (lambda: self._init_fn.lower(seed).compile(compiler_options=options))
        return programs.get_or_build(key, build)(seed)

    def abstract_schedule_args(self) -> dict[str, jax.ShapeDtypeStruct]:
        """Shapes and shardings of the step's schedule arguments (for lowering)."""
        return self.traced_schedule.abstract_args()

    def init_state(self) -> dict[str, Any]:
        """A freshly initialised train state, sharded as the trainer shards it."""
        return self._init()

    def apply_step(self, state: dict, batch: dict) -> tuple[dict, dict]:
        """One step of the compiled train step (`compile_step`) on a global batch:
        (new state, device metrics); `state` is donated. For benchmarks and tools."""
        return self.compile_step()(state, batch, self.schedule_args)

    def merge(self, variables: Any) -> nnx.Module:
        """The NNX model holding `variables` (a pure dict: params, or their union with the
        model state; see `variables`)."""
        return nnx.merge(self.graphdef, variables)

    def variables(self, state: dict) -> dict:
        """What evaluation uses of a train state: the params (their EMA when
        train.ema_decay > 0) with the model state (e.g. BatchNorm statistics)."""
        params = state["ema"] if self.ema_decay else state["params"]
        return variables_lib.union(params, state.get("model_state"))

    def restore_variables(self, which: str | int = "latest") -> tuple[dict, int]:
        """(variables, step) of this run's checkpoint `which` ('latest', 'best', a step),
        placed as the trainer places them (see checkpoint.restore_variables)."""
        parts = {"ema" if self.ema_decay else "params": self.abstract_state["params"]}
        if self.has_model_state:
            parts["model_state"] = self.abstract_state["model_state"]
        return checkpoint.restore_variables(self.workdir, which, parts)

    # ---- inspecting -------------------------------------------------------------

    def describe(self) -> str:
        """A few lines about the run: model size, mesh, durations."""
        lines = [
            f"task {self.config.task}; mesh {dict(self.mesh.shape)} rules={self.config.mesh.rules}"
        ]
        lines.append(
            "model: " + ", ".join(f"{k} {v:,.0f}" for k, v in self.task.describe_model().items())
        )
        lines.append("steps: " + ", ".join(f"{k} {v}" for k, v in self.steps.items()))
        return "\n".join(lines)

    def train_dataset(self) -> Any:
        """This process's part of the training data, as the task provides it."""
        count = jax.process_count()
        return self.task.train_dataset(
            batch_size=self.batch_size // count,
            seed=self.config.seed,
            shard_index=jax.process_index(),
            shard_count=count,
        )

    def abstract_batch(self) -> dict[str, jax.ShapeDtypeStruct]:
        """Shapes, dtypes and shardings of a global training batch."""
        spec = getattr(self.task, "batch_spec", lambda _: None)(self.batch_size)
        if spec is not None:  # known without reading data
            return {
                k: jax.ShapeDtypeStruct(shape, dtype, sharding=self.batch_sharding)
                for k, (shape, dtype) in spec.items()
            }
        ds = self.train_dataset()
        local = ds[0] if isinstance(ds, grain.MapDataset) else next(iter(ds))
        return {
            k: jax.ShapeDtypeStruct(
                (self.batch_size, *np.shape(v)[1:]),
                np.asarray(v).dtype,
                sharding=self.batch_sharding,
            )
            for k, v in local.items()
        }

    def compile_step(self) -> Any:
        """The train step lowered and compiled ahead of time (allocating nothing), once:
        later calls, `run()` included, reuse it."""
        if self._compiled_step is None:
            args = (self.abstract_state, self.abstract_batch(), self.abstract_schedule_args())
            self._step_key = self._program_key("train_step", *args)
            self._compiled_step = programs.get_or_build(
                self._step_key, lambda: self._step_fn.lower(*args).compile()
            )
        return self._compiled_step

    def memory_report(self, compiled: Any) -> dict[str, Any]:
        """Compiled per-device memory of the train step, and whether it fits."""
        key = self._step_key if compiled is self._compiled_step else None
        return dry_run.memory_report(self, compiled, key)

    # ---- evaluating a finished run --------------------------------------------

    def evaluate_checkpoint(self) -> dict[str, Any]:
        """Runs config.evals on the newest checkpoint without training.

        Writes the metrics to metrics.jsonl and merges them into result.json's
        'eval' (e.g. evaluations added to a finished run's config).
        """
        with workdir_lib.lock(self.workdir):
            variables, step = self.restore_variables("latest")
            writer = metrics_lib.MetricWriter(self.workdir)
            results = {}
            for name, evaluator in self.evaluators.items():
                results[name] = evaluator.run_at(variables, step)
                writer.write(step, name, results[name])
                logging.info(
                    "eval %s @ %d: %s", name, step, metrics_lib.format_metrics(results[name])
                )
            writer.close()
            path = os.path.join(self.workdir, "result.json")
            result = files.read_json_or_set_aside(path) or {"status": "evaluated", "step": step}
            result["eval"] = {**result.get("eval", {}), **results}
            if jax.process_index() == 0:
                files.atomic_write_json(path, result)
        return result

    # ---- training ---------------------------------------------------------------

    def run(self, *, restart: bool = False) -> dict[str, Any]:
        """Trains to the configured length (resuming if possible); returns the result.

        The step is compiled before anything is allocated or written; a run whose
        compiled memory exceeds the device's, or whose workdir another run holds,
        raises ConfigError. restart=True first moves the workdir's files into
        `superseded/<time>/` (never deleting them) and starts from step 0.
        """
        stop = preemption.StopFlag()
        try:
            cfg = self.config.train
            if restart or not self._has_checkpoints():  # sources checked before compiling
                if cfg.init_from:
                    init_from.check(
                        cfg.init_from, cfg.init_dont_load, self.abstract_state["params"]
                    )
                if self.reference:
                    init_from.check(self.reference, "", self.abstract_state["params"])
                seed, key = self._init_program()  # compiles while the step compiles
                self._init_build = programs.compile_in_background(
                    key, lambda: self._init_fn.lower(seed), programs.run_once_options()
                )
            for evaluator in self.evaluators.values():
                evaluator.prepare(self.abstract_variables)
            report = self.memory_report(self.compile_step())
            if not report["fits"]:
                raise config_lib.ConfigError(dry_run.fit_error(report))
            with workdir_lib.lock(self.workdir):
                if restart and jax.process_index() == 0:
                    moved = workdir_lib.move_aside(self.workdir)
                    if moved:
                        logging.info("--restart: moved the previous run's files to %s", moved)
                return self._run_locked(stop)
        finally:
            stop.restore()

    def _run_locked(self, stop: preemption.StopFlag) -> dict[str, Any]:
        os.makedirs(self.workdir, exist_ok=True)
        result_path = os.path.join(self.workdir, "result.json")
        if jax.process_index() == 0:
            previous = files.read_json_or_set_aside(result_path)
        else:
            previous = files.read_json(result_path, None)
        ckpt = checkpoint.Checkpointer(
            self.workdir,
            keep=self.config.train.keep_checkpoints,
            async_save=self.config.train.async_checkpoints,
        )
        writer = None
        try:
            state, start, data_iter = self._restore(ckpt, previous)
            stopped_early = previous and previous.get("status") == "early_stopped"
            if previous and (start >= self.steps["total"] or stopped_early):
                config_lib.log_resume(self.config, self.workdir, start, finished=True)
                return previous
            if stop.requested:
                logging.info(
                    "SIGTERM before training started: nothing was trained (step %d).", start
                )
                return self._result("preempted", start, {}, {}, None, time.time(), start or None)
            if start:
                config_lib.log_resume(self.config, self.workdir, start, finished=False)
            history: list[dict] = []
            if jax.process_index() == 0:
                config_lib.save_config(self.config, self.steps, self.workdir, start)
                metrics_lib.truncate_metrics(self.workdir, start)  # steps redone after a resume
                history = metrics_lib.read_metrics(self.workdir) if start else []
            logging.info("%s", self.describe())
            writer = metrics_lib.MetricWriter(self.workdir)
            result = self._loop(state, start, data_iter, ckpt, writer, stop, history)
        finally:
            ckpt.close()
            if writer is not None:
                writer.close()
        if jax.process_index() == 0:
            files.atomic_write_json(result_path, result)
        return result

    def _restore(self, ckpt: checkpoint.Checkpointer, previous: dict | None) -> tuple:
        """(state, step, data iterator) from the newest usable checkpoint, or fresh."""
        dataset = batching.read_ahead(self.train_dataset(), *self.task.readers())
        data_iter = iter(dataset)
        had_checkpoints = bool(ckpt.all_steps())
        restored = ckpt.restore_latest(self.abstract_state, data_iter)
        if restored is not None:
            logging.info("resumed from checkpoint at step %d", restored[1])
            return (*restored, data_iter)
        if previous and previous.get("status") in FINISHED:
            raise config_lib.ConfigError(
                f"{self.workdir} holds a finished run (result.json: {previous['status']} at step "
                f"{previous.get('step')}) but no readable checkpoint; its results are kept. "
                "Re-run with --restart to train it again (the old files are moved aside)."
            )
        if had_checkpoints:
            logging.warning("no readable checkpoint in %s; starting from scratch.", ckpt.directory)
        return self._initial_state(), 0, iter(dataset)  # untouched by any failed restore

    def _has_checkpoints(self) -> bool:
        """Whether the workdir holds checkpoints of its own (a resume, not a start)."""
        directory = os.path.join(self.workdir, "checkpoints")
        return os.path.isdir(directory) and any(n.isdigit() for n in os.listdir(directory))

    def _initial_state(self) -> dict[str, Any]:
        """The state at step 0: fresh, with train.init_from's parameters loaded."""
        state = self._init()
        cfg = self.config.train
        if cfg.init_from:
            state["params"] = init_from.load(
                cfg.init_from, cfg.init_dont_load, state["params"], self.abstract_state["params"]
            )
        if self.reference:
            state["reference"] = init_from.load(
                self.reference, "", state["reference"], self.abstract_state["params"]
            )
        return state

    def _loop(self, state, start, data_iter, ckpt, writer, stop, history) -> dict[str, Any]:
        log = metrics_lib.TrainLog(
            writer,
            self.steps["total"],
            self.steps["log_every"],
            self.task.items_per_example() * self.batch_size,
            self.task.items_name,
            history,
        )
        evals: dict[str, dict[str, float]] = {}
        tcfg = self.config.train
        best = None
        if tcfg.best_metric:
            best = early_stopping.BestKeeper(
                self.workdir, tcfg.best_metric, tcfg.best_mode, tcfg.early_stop_patience
            )
        status = "done"
        if start and self._eval_due(start) and self._evaluate(start, state, evals, writer, best):
            status = "early_stopped"  # the evaluation the interruption cut off said stop
        try:
            if status == "done":
                state, status = self._train_steps(
                    state, start, data_iter, ckpt, stop, log, evals, best
                )
            log.flush()
        except DivergedError as e:
            if best is not None:
                best.close()
            self._plot(writer)
            return self._diverged(int(e.args[0]), ckpt, log, evals)
        t_end = time.time()
        final_step = int(jax.device_get(state["step"]))
        if status != "preempted":
            ckpt.save(final_step, state, data_iter)
            if self.evaluators and status == "done":
                self._evaluate(final_step, state, evals, writer, best, final=True)
            self.task.on_train_end(self.merge(self.variables(state)), self.workdir)
        self._plot(writer)
        ckpt.wait()
        result = self._result(
            status, final_step, log.last, evals, log.first_loss, log.t_start, ckpt.latest_step()
        )
        if best is not None:
            if best.state["step"] is not None and status != "preempted":
                result["best"] = self._best_result(best, writer)
            best.close()
        steps_per_s = log.steps_per_s(t_end)
        if steps_per_s is not None:  # compilation excluded
            result["steps_per_s"] = steps_per_s
        return result

    def _plot(self, writer: metrics_lib.MetricWriter) -> None:
        """loss.png (train.plot_losses), drawn while the last checkpoint is being written."""
        if self.config.train.plot_losses:
            writer.flush()
            metrics_lib.plot_losses(self.workdir)

    def _eval_due(self, step: int) -> bool:
        """Whether any evaluator runs at `step` before the end (see EvaluatorBase.due)."""
        every = self.steps["eval_every"]
        return step < self.steps["total"] and any(
            e.due(step, every) for e in self.evaluators.values()
        )

    def _train_steps(
        self, state, start, data_iter, ckpt, stop, log, evals, best
    ) -> tuple[Any, str]:
        """Steps from `start` to the end, checkpointing and evaluating when due; returns
        (state, status) where status is done, early_stopped or preempted (SIGTERM)."""
        every = self.steps
        for step in range(start, every["total"]):
            if stop.should_stop(step, every["log_every"]):
                log.flush()
                ckpt.save(step, state, data_iter)
                logging.info("SIGTERM: saved a checkpoint at step %d and stopping.", step)
                return state, "preempted"
            batch = sharding.put_batch(next(data_iter), self.batch_sharding)
            state, metrics = self._compiled_step(state, batch, self.schedule_args)
            log.push(step + 1, metrics)
            done = step + 1
            ckpt_due = every["checkpoint_every"] and done % every["checkpoint_every"] == 0
            if ckpt_due or self._eval_due(done):
                log.flush()  # never checkpoint a state that has not passed the guard
                with log.paused():
                    if ckpt_due:
                        ckpt.save(done, state, data_iter)
                    if self._eval_due(done) and self._evaluate(
                        done, state, evals, log.writer, best
                    ):
                        logging.info("early stopping at step %d: %s", done, best.state)
                        return state, "early_stopped"
        return state, "done"

    def _evaluate(self, step, state, evals, writer, best, final=False) -> bool:
        """Runs the evaluators due at `step` (all of them when `final`); True when early
        stopping says to stop."""
        ran = {}
        for name, evaluator in self.evaluators.items():
            if final or evaluator.due(step, self.steps["eval_every"]):
                ran[name] = evals[name] = evaluator.run_at(self.variables(state), step)
                writer.write(step, name, ran[name])
                logging.info("eval %s @ %d: %s", name, step, metrics_lib.format_metrics(ran[name]))
        writer.flush()
        if best is None or best.evaluator not in ran:
            return False
        return best.update(step, ran, self.variables(state))

    def _best_result(self, best: early_stopping.BestKeeper, writer) -> dict[str, Any]:
        """result.json's 'best': the best evaluation and the evaluators re-run on its params."""
        params = best.restore(self.abstract_variables)
        out = dict(best.state)
        out["eval"] = {n: e.run_at(params, best.state["step"]) for n, e in self.evaluators.items()}
        for name, metrics in out["eval"].items():
            writer.write(best.state["step"], f"{name}@best", metrics)
        return out

    def _diverged(self, step, ckpt, log, evals) -> dict[str, Any]:
        ckpt.wait()
        good = ckpt.latest_step()
        where = (
            f"the last good checkpoint is step {good} in {ckpt.directory} (left intact)"
            if good is not None
            else "no checkpoint was written before it"
        )
        logging.error("loss or gradient is NaN/Inf at step %d; halting; %s.", step, where)
        return self._result("diverged", step, log.last, evals, log.first_loss, log.t_start, good)

    def _result(self, status, step, train, evals, first_loss, t_start, checkpoint_step):
        """The dict that train() returns and result.json holds."""
        return {
            "status": status,
            "step": step,
            "first_loss": first_loss,
            "train": train,
            "eval": evals,
            "checkpoint_step": checkpoint_step,
            "wall_time_s": time.time() - t_start,
            "workdir": os.path.abspath(self.workdir),
        }


def train(
    config: ml_collections.ConfigDict, workdir: str, *, restart: bool = False
) -> dict[str, Any]:
    """Trains `config` in `workdir` (resuming if it holds a checkpoint); returns the result."""
    return Trainer(config, workdir).run(restart=restart)
