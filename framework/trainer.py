"""The trainer: one jit-compiled training loop that every task and paper uses.

`train(config, workdir)` is both what the CLI runs and a library call that
experiment programs chain. Construction (`Trainer.__init__`) validates and
builds everything abstractly and writes nothing; `run()` touches the disk.

The train state is a plain pytree:
  {'step': int32[], 'params': pure dict of the NNX model's Params,
   'opt_state': optax state, 'rng': uint32 key data}
so that orbax checkpoints hold readable parameter paths and the jitted step
is an ordinary function of arrays (the NNX model is rebuilt inside it with
`nnx.merge`, which costs nothing after tracing).
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

import optim
from framework import (
    checkpoint,
    config as config_lib,
    early_stopping,
    metrics as metrics_lib,
    sharding,
)
from models import partitioning


class DivergedError(RuntimeError):
    """The loss or gradient norm became NaN/Inf."""


class Trainer:
    """Builds the task, mesh, shardings, optimizer and jitted functions."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str):
        config_lib.validate(config)
        self.config = config
        self.workdir = workdir
        self.task = config_lib.load_module(config.task, "task").Task(config)
        self.mesh = sharding.make_mesh(config.mesh)
        self.batch_size = config.train.batch_size
        dp = self.mesh.shape["data"] * self.mesh.shape["fsdp"]
        if self.batch_size % dp or self.batch_size % jax.process_count():
            raise config_lib.ConfigError(
                f"train.batch_size={self.batch_size} must be divisible by the data-parallel "
                f"size {dp} and the process count {jax.process_count()}."
            )
        if dp % jax.process_count():
            raise config_lib.ConfigError(
                f"the data-parallel size {dp} (mesh.data x mesh.fsdp) must be a multiple of "
                f"the process count {jax.process_count()}: each process feeds its own rows."
            )
        if (self.batch_size // config.train.grad_accum_steps) % dp:
            raise config_lib.ConfigError(
                f"each microbatch ({self.batch_size}/{config.train.grad_accum_steps}) must be "
                f"divisible by the data-parallel size {dp}."
            )
        self.steps = config_lib.resolve_durations(
            config, examples_per_epoch=self.task.num_train_examples
        )
        self._build_state_functions()
        self.evaluators = {
            name: config_lib.load_module(ev.kind, f"evals.{name}.kind").Evaluator(
                name,
                ev,
                self.task,
                mesh=self.mesh,
                params_sharding=self.state_sharding["params"],
                merge=self.merge,
                train_batch_size=self.batch_size,
            )
            for name, ev in config.evals.items()
        }

    # ---- building -------------------------------------------------------------

    def _build_state_functions(self) -> None:
        config, task = self.config, self.task
        abstract_model = nnx.eval_shape(lambda: task.build_model(nnx.Rngs(0)))
        self.graphdef, abstract_params, rest = nnx.split(abstract_model, nnx.Param, ...)
        if jax.tree.leaves(rest):
            raise TypeError("a task's model may hold only nnx.Param state (pass rngs at call).")
        logical = nnx.to_pure_dict(nnx.get_partition_spec(abstract_params))
        abstract_params = nnx.to_pure_dict(abstract_params)
        params_sharding = sharding.param_shardings(
            logical, abstract_params, self.mesh, config.mesh.rules
        )
        self.schedule = self._make_schedule(config.optimizer.lr)
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
        self.batch_sharding = sharding.batch_sharding(self.mesh)

        def init() -> dict[str, Any]:
            params_key, train_key = jax.random.split(jax.random.key(config.seed))
            params = initial_params(task, params_key)
            return {
                "step": jnp.zeros((), jnp.int32),
                "params": params,
                "opt_state": self.tx.init(params),
                "rng": jax.random.key_data(train_key),
            }

        self.abstract_state = jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
            jax.eval_shape(init),
            self.state_sharding,
        )
        self._init = jax.jit(init, out_shardings=self.state_sharding)
        # The peak learning rate is an argument of the compiled step, not a constant in
        # it, so runs that differ only in optimizer.lr (a learning-rate sweep) share one
        # program through the persistent compilation cache.
        self._lr_sharding = replicated
        self.peak_lr = jax.make_array_from_callback(
            (), replicated, lambda _: np.float32(config.optimizer.lr)
        )
        self._step_fn = jax.jit(
            self._train_step,
            in_shardings=(self.state_sharding, self.batch_sharding, replicated),
            out_shardings=(self.state_sharding, replicated),
            donate_argnums=0,
        )

    def _make_schedule(self, peak_lr: Any) -> Any:
        """The config's schedule with peak `peak_lr` (a float, or a traced scalar)."""
        return optim.make_schedule(
            self.config.schedule.name,
            peak_lr=peak_lr,
            total_steps=self.steps["total"],
            warmup_steps=self.steps["warmup"],
            final_lr_fraction=self.config.schedule.final_lr_fraction,
        )

    def _step(self, state: dict, batch: dict) -> tuple[dict, dict]:
        """The jitted train step at the configured peak learning rate."""
        return self._step_fn(state, batch, self.peak_lr)

    def merge(self, params: Any) -> nnx.Module:
        """The NNX model holding `params` (a pure dict)."""
        return nnx.merge(self.graphdef, params)

    def _loss(self, params, batch, rng, step):
        loss, metrics = self.task.loss(self.merge(params), batch, rng)
        nan_at = self.config.debug.nan_at_step
        if nan_at >= 0:  # fault injection, to test the NaN guard end to end
            loss = loss * jnp.where(step + 1 == nan_at, jnp.nan, 1.0)
        return loss, metrics

    def _train_step(self, state: dict, batch: dict, peak_lr: jax.Array) -> tuple[dict, dict]:
        """One optimizer step, with gradient accumulation and a NaN/Inf guard."""
        with partitioning.activation_sharding(self.mesh, sharding.ACTIVATION_RULES):
            return self._train_step_body(state, batch, peak_lr)

    def _train_step_body(self, state: dict, batch: dict, peak_lr: jax.Array) -> tuple[dict, dict]:
        step, params = state["step"], state["params"]
        rng = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), step)
        grad_fn = jax.value_and_grad(self._loss, has_aux=True)
        accum = self.config.train.grad_accum_steps
        if accum == 1:
            (loss, metrics), grads = grad_fn(params, batch, rng, step)
        else:
            # Microbatch i takes rows i, i+accum, ... so that every device keeps its own
            # rows (a contiguous split would move rows between devices every step).
            micro_sharding = NamedSharding(self.mesh, PartitionSpec(None, sharding.BATCH_AXES))

            def split(x):
                x = x.reshape(x.shape[0] // accum, accum, *x.shape[1:]).swapaxes(0, 1)
                return jax.lax.with_sharding_constraint(x, micro_sharding)

            is_max = metrics_lib.reduces_by_max

            def body(carry, xs):
                # Sum loss, metrics and gradients weighted by each microbatch's '_weight'
                # (e.g. its unmasked tokens), so the result equals the full-batch mean;
                # maxima ('<name>_max' metrics) combine by max.
                i, micro = xs
                (loss, metrics), grads = grad_fn(params, micro, jax.random.fold_in(rng, i), step)
                w = metrics.get("_weight", jnp.ones(()))
                c_loss, c_metrics, c_grads, c_total = carry
                metrics = {
                    k: jnp.maximum(c_metrics[k], v) if is_max(k) else c_metrics[k] + v * w
                    for k, v in metrics.items()
                }
                grads = jax.tree.map(lambda a, g: a + g * w, c_grads, grads)
                return (c_loss + loss * w, metrics, grads, c_total + w), None

            (loss_shape, metric_shapes), grad_shapes = jax.eval_shape(
                grad_fn, params, batch, rng, step
            )
            zeros = (
                jnp.zeros(loss_shape.shape, loss_shape.dtype),
                {
                    k: jnp.full(v.shape, -jnp.inf if is_max(k) else 0.0, v.dtype)
                    for k, v in metric_shapes.items()
                },
                jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), grad_shapes),
                jnp.zeros(()),
            )
            xs = (jnp.arange(accum), jax.tree.map(split, batch))
            (loss, metrics, grads, total), _ = jax.lax.scan(body, zeros, xs)
            loss, grads = jax.tree.map(lambda x: x / total, (loss, grads))
            metrics = metrics_lib.finalize(metrics, total)
        grad_norm = optax.tree.norm(grads)
        schedule = self._make_schedule(peak_lr)
        tx = optim.build_optimizer(self.config.optimizer, schedule, params)
        updates, opt_state = tx.update(grads, state["opt_state"], params)
        new_params = optax.apply_updates(params, updates)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
        new_state = {
            "step": step + 1,
            "params": keep(new_params, params),
            "opt_state": keep(opt_state, state["opt_state"]),
            "rng": state["rng"],
        }
        metrics = {k: v for k, v in metrics.items() if not k.startswith("_")}
        if self.config.train.log_tensor_rms:
            metrics.update(tensor_rms(grads, updates, schedule(step)))
        metrics.update(
            objective=loss,
            grad_norm=grad_norm,
            param_norm=optax.tree.norm(new_state["params"]),
            learning_rate=schedule(step),
            finite=finite.astype(jnp.float32),
        )
        return new_state, metrics

    # ---- running --------------------------------------------------------------

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
        """Lowers and compiles the train step ahead of time, allocating nothing."""
        lr = jax.ShapeDtypeStruct((), jnp.float32, sharding=self._lr_sharding)
        compiled = self._step_fn.lower(self.abstract_state, self.abstract_batch(), lr).compile()
        return compiled

    def memory_report(self, compiled: Any) -> dict[str, Any]:
        """Compiled per-device memory of the train step, and whether it fits."""
        stats = compiled.memory_analysis()
        per_device = (
            stats.argument_size_in_bytes
            + stats.output_size_in_bytes
            + stats.temp_size_in_bytes
            - stats.alias_size_in_bytes
        )
        limit = device_memory_limit()
        counts = self.task.describe_model()
        cost = compiled.cost_analysis() or {}
        return {
            "mesh": dict(self.mesh.shape),
            "rules": self.config.mesh.rules,
            "params": counts.get("params"),
            "flops_per_step_xla": float(cost.get("flops", float("nan"))),
            "flops_per_step_model": counts.get("train FLOPs/token", float("nan"))
            * self.task.items_per_example()
            * self.batch_size,
            "argument_bytes": stats.argument_size_in_bytes,
            "temp_bytes": stats.temp_size_in_bytes,
            "per_device_bytes": per_device,
            "device_limit_bytes": limit,
            "fits": limit is None or per_device <= limit,
        }

    def evaluate_checkpoint(self) -> dict[str, Any]:
        """Runs config.evals on the newest checkpoint without training.

        Writes the metrics to metrics.jsonl and merges them into result.json's
        'eval' (e.g. evaluations added to a finished run's config).
        """
        if not os.path.isdir(os.path.join(self.workdir, "checkpoints")):
            raise config_lib.ConfigError(f"{self.workdir} has no checkpoints to evaluate.")
        ckpt = checkpoint.Checkpointer(self.workdir, keep=self.config.train.keep_checkpoints)
        try:
            restored = ckpt.restore_latest(self.abstract_state, iter(self.train_dataset()))
        finally:
            ckpt.close()
        if restored is None:
            raise config_lib.ConfigError(f"{self.workdir} has no readable checkpoint.")
        state, step = restored
        writer = metrics_lib.MetricWriter(self.workdir)
        results = {}
        for name, evaluator in self.evaluators.items():
            results[name] = evaluator(state["params"])
            writer.write(step, name, results[name])
            logging.info("eval %s @ %d: %s", name, step, _fmt(results[name]))
        writer.close()
        path = os.path.join(self.workdir, "result.json")
        result = {"status": "evaluated", "step": step, "eval": {}}
        if os.path.exists(path):
            with open(path) as f:
                result = json.load(f)
        result["eval"] = {**result.get("eval", {}), **results}
        if jax.process_index() == 0:
            with open(path, "w") as f:
                json.dump(result, f, indent=2)
        return result

    def run(self) -> dict[str, Any]:
        """Trains to the configured length (resuming if possible); returns the result.

        The step is compiled before anything is allocated or written, and a run
        whose compiled memory exceeds the device's raises ConfigError.
        """
        compiled = self.compile_step()
        report = self.memory_report(compiled)
        if not report["fits"]:
            raise config_lib.ConfigError(
                f"the train step needs {report['per_device_bytes'] / 2**30:.2f} GiB per device "
                f"but a device has {report['device_limit_bytes'] / 2**30:.2f} GiB; shard "
                "parameters (mesh.fsdp, mesh.rules=fsdp) or lower train.batch_size "
                "(train.grad_accum_steps keeps the effective batch)."
            )
        self._compiled_step = compiled
        os.makedirs(self.workdir, exist_ok=True)
        ckpt = checkpoint.Checkpointer(
            self.workdir,
            keep=self.config.train.keep_checkpoints,
            async_save=self.config.train.async_checkpoints,
        )
        dataset = self.train_dataset()
        if isinstance(dataset, grain.MapDataset):  # one reader thread, a few batches ahead
            dataset = dataset.to_iter_dataset(
                grain.ReadOptions(num_threads=1, prefetch_buffer_size=4)
            )
        data_iter = iter(dataset)
        restored = ckpt.restore_latest(self.abstract_state, data_iter)
        if restored is None:
            state, start = self._init(), 0
            data_iter = iter(dataset)  # untouched by any failed restore
        else:
            state, start = restored
            logging.info("resumed from checkpoint at step %d", start)
        result_path = os.path.join(self.workdir, "result.json")
        if os.path.exists(result_path):
            with open(result_path) as f:
                previous = json.load(f)
            if start >= self.steps["total"] or previous.get("status") == "early_stopped":
                ckpt.close()
                logging.info("finished at step %d before; see %s", start, result_path)
                return previous
        if jax.process_index() == 0:
            config_lib.save_config(self.config, self.steps, self.workdir, start)
            metrics_lib.truncate_metrics(self.workdir, start)  # steps redone after a resume
        logging.info("%s", self.describe())
        writer = metrics_lib.MetricWriter(self.workdir)
        stop = _StopFlag()
        try:
            result = self._loop(state, start, data_iter, ckpt, writer, stop)
        finally:
            stop.restore()
            ckpt.close()
            writer.close()
        if self.config.train.plot_losses:
            metrics_lib.plot_losses(self.workdir)
        if jax.process_index() == 0:
            with open(os.path.join(self.workdir, "result.json"), "w") as f:
                json.dump(result, f, indent=2)
        return result

    def _loop(self, state, start, data_iter, ckpt, writer, stop) -> dict[str, Any]:
        total, every = self.steps["total"], self.steps
        items = self.task.items_per_example() * self.batch_size
        window: dict[str, float] = {}
        window_steps, window_start = 0, None
        last_train: dict[str, float] = {}
        eval_results: dict[str, dict[str, float]] = {}
        first_loss = None
        pending = None
        status = "done"
        t_start = time.time()
        timing = {"first": None, "paused": 0.0, "steps": 0}

        def consume(done_step: int, metrics: Any) -> None:
            """Host-side handling of a finished step's metrics (one step behind)."""
            nonlocal window_steps, window_start, last_train, first_loss, window
            m = {k: float(v) for k, v in jax.device_get(metrics).items()}
            if not m.pop("finite"):
                raise DivergedError(done_step)
            if first_loss is None:
                first_loss = m["loss"]
            if window_start is None:  # the first step includes compilation
                window_start = timing["first"] = time.time()
                writer.write(done_step, "train", m)
                logging.info(
                    "step %d/%d | loss %.4g | first step took %.1f s (not in the speeds)",
                    done_step,
                    total,
                    m["loss"],
                    window_start - t_start,
                )
                return
            metrics_lib.accumulate(window, m)
            window_steps += 1
            if done_step % every["log_every"] == 0 or done_step == total:
                mean = metrics_lib.finalize(window, window_steps)
                elapsed = time.time() - window_start
                rate = window_steps / elapsed if elapsed > 0 else 0.0
                writer.write(done_step, "train", mean)
                logging.info(
                    "%s",
                    metrics_lib.progress_line(
                        done_step, total, mean, rate, rate * items, self.task.items_name
                    ),
                )
                last_train, window, window_steps = mean, {}, 0
                window_start = time.time()

        def flush() -> None:
            nonlocal pending
            if pending is not None:
                consume(*pending)
                pending = None

        def evaluate(step: int) -> bool:
            """Runs the evaluators; True when early stopping says to stop."""
            for name, evaluator in self.evaluators.items():
                result = evaluator(state["params"])
                eval_results[name] = result
                writer.write(step, name, result)
                logging.info("eval %s @ %d: %s", name, step, _fmt(result))
            writer.flush()
            return best is not None and best.update(step, eval_results, state["params"])

        tcfg = self.config.train
        best = None
        if tcfg.best_metric:
            best = early_stopping.BestKeeper(
                self.workdir, tcfg.best_metric, tcfg.best_mode, tcfg.early_stop_patience
            )

        try:
            for step in range(start, total):
                if stop.should_stop(step, every["log_every"]):
                    flush()
                    ckpt.save(step, state, data_iter)
                    logging.info("SIGTERM: saved a checkpoint at step %d and stopping.", step)
                    status = "preempted"
                    break
                batch = sharding.put_batch(next(data_iter), self.batch_sharding)
                state, metrics = self._compiled_step(state, batch, self.peak_lr)
                timing["steps"] += 1
                flush()
                pending = (step + 1, metrics)
                done = step + 1
                ckpt_due = every["checkpoint_every"] and done % every["checkpoint_every"] == 0
                eval_due = every["eval_every"] and done % every["eval_every"] == 0 and done < total
                if ckpt_due or eval_due:
                    flush()  # never checkpoint a state that has not passed the guard
                    t_pause = time.time()
                    if ckpt_due:
                        ckpt.save(done, state, data_iter)
                    if eval_due and evaluate(done):
                        logging.info("early stopping at step %d: %s", done, best.state)
                        status = "early_stopped"
                        break
                    paused = time.time() - t_pause
                    timing["paused"] += paused
                    if window_start is not None:  # speeds count training time only
                        window_start += paused
            flush()
            timing["end"] = time.time()
        except DivergedError as e:
            ckpt.wait()
            good = ckpt.latest_step()
            where = (
                f"the last good checkpoint is step {good} in {ckpt.directory} (left intact)"
                if good is not None
                else "no checkpoint was written before it"
            )
            logging.error("loss or gradient is NaN/Inf at step %d; halting; %s.", e.args[0], where)
            return self._result(
                "diverged", int(e.args[0]), last_train, eval_results, first_loss, t_start, good
            )
        final_step = int(jax.device_get(state["step"]))
        if status != "preempted":
            ckpt.save(final_step, state, data_iter)
            if self.evaluators and status == "done":
                evaluate(final_step)
            self.task.on_train_end(self.merge(state["params"]), self.workdir)
        ckpt.wait()
        result = self._result(
            status, final_step, last_train, eval_results, first_loss, t_start, ckpt.latest_step()
        )
        if best is not None and best.state["step"] is not None and status != "preempted":
            params = best.restore(self.abstract_state["params"])
            result["best"] = dict(best.state)
            result["best"]["eval"] = {n: e(params) for n, e in self.evaluators.items()}
            for name, metrics in result["best"]["eval"].items():
                writer.write(best.state["step"], f"{name}@best", metrics)
        if best is not None:
            best.close()
        if timing["first"] is not None and timing["steps"] > 1:  # compilation excluded
            busy = timing["end"] - timing["first"] - timing["paused"]
            result["steps_per_s"] = (timing["steps"] - 1) / busy
        return result

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


def initial_params(task: Any, key: jax.Array | int) -> dict:
    """The task model's parameters at init (a pure dict), as the trainer creates them.

    An int is a config seed: the params key is then derived as the trainer does."""
    if isinstance(key, int):
        key = jax.random.split(jax.random.key(key))[0]
    model = task.build_model(nnx.Rngs(key))
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def _rms(x: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.mean(jnp.square(x.astype(jnp.float32))))


def tensor_rms(grads: Any, updates: Any, lr: jax.Array) -> dict[str, jax.Array]:
    """Per-tensor probes: 'grad_rms/<path>' and 'update_rms/<path>'.

    grad_rms is the RMS of the (accumulated, unclipped) gradient; update_rms is the RMS
    of the applied update divided by the learning rate of the step (0 when it is 0),
    i.e. the optimizer's direction per unit LR: about 1 for Adam while the gradient RMS
    is far above eps, shrinking as it nears eps (Wortsman et al. 2023, Sec. 3.4)."""
    out = {}
    safe_lr = jnp.where(lr > 0, lr, 1.0)
    for (key_path, g), u in zip(
        jax.tree_util.tree_leaves_with_path(grads), jax.tree.leaves(updates), strict=True
    ):
        path = optim.path_str(key_path)
        out[f"grad_rms/{path}"] = _rms(g)
        out[f"update_rms/{path}"] = jnp.where(lr > 0, _rms(u) / safe_lr, 0.0)
    return out


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))


class _StopFlag:
    """Turns SIGTERM into a flag the loop checks between steps."""

    def __init__(self):
        self.requested = False
        self._previous = None
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not in the main thread: no preemption handling
            self._previous = None

    def _handle(self, signum, frame):
        self.requested = True

    def should_stop(self, step: int, every: int) -> bool:
        """Whether to stop before `step`; all processes agree, at multiples of `every`."""
        if jax.process_count() == 1:
            return self.requested
        if step % every:
            return False
        flags = multihost_utils.process_allgather(np.asarray(self.requested))
        return bool(np.any(flags))

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains `config` in `workdir` (resuming if it holds a checkpoint); returns the result."""
    return Trainer(config, workdir).run()


def device_memory_limit() -> int | None:
    """Bytes one local device may use: the accelerator's limit, or RAM / devices on CPU."""
    device = jax.local_devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        return stats.get("bytes_limit")
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None
    return ram // jax.local_device_count()
