"""The train step the trainer jit-compiles: the task's loss and gradients (accumulated
over microbatches when asked), the optimizer update, the NaN/Inf guard and the
step's metrics (grad/param norms, learning rate, optional per-tensor RMS probes)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import optim
from framework import metrics as metrics_lib, sharding, variables
from models import partitioning


class TracedSchedule:
    """The config's learning-rate schedule, with the values a learning-rate sweep changes
    (the peak, and a final fraction a config may derive from it) as arguments of the
    compiled step rather than constants in it, so the points of such a sweep share one
    program through the persistent compilation cache. `args` are those values as the
    config sets them (replicated scalars), what the step is called with."""

    def __init__(self, config: ml_collections.ConfigDict, steps: dict[str, int], mesh: Mesh):
        self.config, self.steps = config, steps
        self.sharding = NamedSharding(mesh, PartitionSpec())
        values = {
            "peak_lr": config.optimizer.lr,
            "final_lr_fraction": config.schedule.final_lr_fraction,
        }
        self.args = {
            k: jax.make_array_from_callback((), self.sharding, lambda _, v=v: np.float32(v))
            for k, v in values.items()
        }

    def __call__(self, peak_lr: Any, final_lr_fraction: Any = None) -> optax.Schedule:
        """The schedule with peak `peak_lr` and final fraction `final_lr_fraction`
        (floats, or traced scalars; None: the config's fraction)."""
        if final_lr_fraction is None:
            final_lr_fraction = self.config.schedule.final_lr_fraction
        return optim.make_schedule(
            self.config.schedule.name,
            peak_lr=peak_lr,
            total_steps=self.steps["total"],
            warmup_steps=self.steps["warmup"],
            final_lr_fraction=final_lr_fraction,
        )

    def abstract_args(self) -> dict[str, jax.ShapeDtypeStruct]:
        """Shapes and shardings of `args` (for lowering)."""
        return {k: jax.ShapeDtypeStruct((), jnp.float32, sharding=self.sharding) for k in self.args}


class TrainStep:
    """`step(state, batch, schedule_args) -> (state, metrics)`, ready for `jax.jit`.

    `schedule_args` ({'peak_lr', 'final_lr_fraction'}: scalars) are arguments rather than
    constants, so runs that differ only in them (a learning-rate sweep) share one
    compiled program (through the persistent cache)."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        task: Any,
        merge: Callable[[Any], nnx.Module],
        make_schedule: Callable[[Any], Any],
        mesh: Mesh,
    ):
        self.config, self.task, self.merge = config, task, merge
        self.make_schedule, self.mesh = make_schedule, mesh

    def __call__(self, state: dict, batch: dict, schedule_args: dict) -> tuple[dict, dict]:
        """One optimizer step, with gradient accumulation and a NaN/Inf guard."""
        with partitioning.activation_sharding(self.mesh, sharding.ACTIVATION_RULES):
            return self._step(state, batch, schedule_args)

    def _loss(
        self,
        params: Any,
        batch: dict,
        rng: jax.Array,
        step: jax.Array,
        model_state: Any = None,
        reference: Any = None,
    ) -> Any:
        """(loss, (metrics, the model state after this forward pass))."""
        model = self.merge(variables.union(params, model_state))
        if reference is None:
            loss, metrics = self.task.loss(model, batch, rng)
        else:  # a task with a reference run gets its (frozen) model too
            ref_model = self.merge(jax.lax.stop_gradient(reference))
            loss, metrics = self.task.loss(model, batch, rng, reference=ref_model)
        nan_at = self.config.debug.nan_at_step
        if nan_at >= 0:  # fault injection, to test the NaN guard end to end
            loss = loss * jnp.where(step + 1 == nan_at, jnp.nan, 1.0)
        new_state = variables.model_state(model) if model_state is not None else None
        return loss, (metrics, new_state)

    def _step(self, state: dict, batch: dict, schedule_args: dict) -> tuple[dict, dict]:
        step, params = state["step"], state["params"]
        rng = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), step)
        loss_fn = functools.partial(self._loss, reference=state.get("reference"))
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        model_state = state.get("model_state")
        if self.config.train.grad_accum_steps == 1:
            (loss, (metrics, model_state)), grads = grad_fn(params, batch, rng, step, model_state)
        else:
            loss, metrics, grads, model_state = self._accumulate(
                grad_fn, params, batch, rng, step, model_state
            )
        if self.config.optimizer.freeze:  # frozen: no update, and not in grad_norm
            trainable = optim.trainable_mask(params, self.config.optimizer.freeze)
            grads = jax.tree.map(lambda g, t: g if t else jnp.zeros_like(g), grads, trainable)
        grad_norm = optax.tree.norm(grads)
        schedule = self.make_schedule(**schedule_args)
        tx = optim.build_optimizer(self.config.optimizer, schedule, params)
        updates, opt_state = tx.update(grads, state["opt_state"], params)
        new_params = optax.apply_updates(params, updates)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
        new_state = {
            **state,  # the rng, and a reference run's parameters, unchanged
            "step": step + 1,
            "params": keep(new_params, params),
            "opt_state": keep(opt_state, state["opt_state"]),
        }
        if model_state is not None:
            new_state["model_state"] = keep(model_state, state["model_state"])
        decay = self.config.train.ema_decay
        if decay:  # an EMA of the (guarded) params, what evaluation then uses
            new_state["ema"] = jax.tree.map(
                lambda e, p: decay * e + (1.0 - decay) * p, state["ema"], new_state["params"]
            )
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

    def _accumulate(self, grad_fn, params, batch, rng, step, model_state) -> tuple:
        """Loss, metrics and gradients summed over microbatches, weighted by each one's
        '_weight' metric (e.g. its unmasked tokens) so they equal the full-batch mean;
        maxima ('<name>_max' metrics) combine by max. The model state (BatchNorm
        statistics) passes through the microbatches in turn. Returns (loss, metrics,
        grads, model state)."""
        accum = self.config.train.grad_accum_steps
        # Microbatch i takes rows i, i+accum, ... so that every device keeps its own
        # rows (a contiguous split would move rows between devices every step).
        micro_sharding = NamedSharding(self.mesh, PartitionSpec(None, sharding.BATCH_AXES))

        def split(x):
            x = x.reshape(x.shape[0] // accum, accum, *x.shape[1:]).swapaxes(0, 1)
            return jax.lax.with_sharding_constraint(x, micro_sharding)

        is_max = metrics_lib.reduces_by_max

        def body(carry, xs):
            i, micro = xs
            c_loss, c_metrics, c_grads, c_total, c_state = carry
            (loss, (metrics, new_state)), grads = grad_fn(
                params, micro, jax.random.fold_in(rng, i), step, c_state
            )
            w = metrics.get("_weight", jnp.ones(()))
            metrics = {
                k: jnp.maximum(c_metrics[k], v) if is_max(k) else c_metrics[k] + v * w
                for k, v in metrics.items()
            }
            grads = jax.tree.map(lambda a, g: a + g * w, c_grads, grads)
            return (c_loss + loss * w, metrics, grads, c_total + w, new_state), None

        first = jax.tree.map(lambda x: x[: x.shape[0] // accum], batch)
        (loss_shape, (metric_shapes, _)), grad_shapes = jax.eval_shape(
            grad_fn, params, first, rng, step, model_state
        )
        zeros = (
            jnp.zeros(loss_shape.shape, loss_shape.dtype),
            {
                k: jnp.full(v.shape, -jnp.inf if is_max(k) else 0.0, v.dtype)
                for k, v in metric_shapes.items()
            },
            jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), grad_shapes),
            jnp.zeros(()),
            model_state,
        )
        xs = (jnp.arange(accum), jax.tree.map(split, batch))
        (loss, metrics, grads, total, model_state), _ = jax.lax.scan(body, zeros, xs)
        loss, grads = jax.tree.map(lambda x: x / total, (loss, grads))
        return loss, metrics_lib.finalize(metrics, total), grads, model_state


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
