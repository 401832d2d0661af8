"""Alignment probes (Everett et al. 2024, Sec. 3): an evaluator logging, for every
hidden and readout kernel of models/transformer.py, the log-alignment ratios of the
three terms of its output change since init, on a fixed batch:

    alpha   z0 x dW     (layer input at init) x (change of the effective weight)
    omega   dz x W0     (change of the layer input) x (effective weight at init)
    u       dz x dW

each log_K(RMS(A B) / (RMS(A) RMS(B))) with K the kernel's fan-in (1/2: independent,
1: fully aligned; optim.parameterization.log_alignment_ratio). Effective weights
include the parameter multiplier. W0 is rebuilt from the config seed exactly as the
trainer initializes (the trainer's init program, EvalContext.initial_params).

    --config.evals.align.kind=experiments.scaling_exponents.alignment
    --config.evals.align.split=val   (its first batch is the probe batch)

Metrics: '<term>/<kernel path>' per kernel and '<term>/hidden', '<term>/readout'
(means over the kernels of that type). Embedding tables are skipped: their fan-in
(the vocabulary) does not grow with width. Needs scan_layers=False.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from framework import evaluators
from framework.config import ConfigError
from models import layers, transformer
from optim import path_str

TERMS = ("alpha", "omega", "u")


def log_ratio(a_mk: jax.Array, b_kn: jax.Array) -> jax.Array:
    """log_K(RMS(A B) / (RMS(A) RMS(B))), K = the contracted size (NaN if A or B is 0)."""
    ms = lambda x: jnp.mean(jnp.square(x))
    num = ms(a_mk @ b_kn)
    den = ms(a_mk) * ms(b_kn)
    ok = (num > 0) & (den > 0)
    value = 0.5 * (jnp.log(jnp.where(ok, num, 1.0)) - jnp.log(jnp.where(ok, den, 1.0)))
    return jnp.where(ok, value / jnp.log(a_mk.shape[-1]), jnp.nan)


def _dense_layers(model: nnx.Module) -> dict[str, Any]:
    """path -> ScaledEinsum for every hidden and readout kernel."""
    out = {}
    for path, node in nnx.iter_graph(model):
        if isinstance(node, layers.ScaledEinsum):
            out[path_str(path)] = node
    return out


def _captured_inputs(model: nnx.Module, tokens: jax.Array) -> dict[str, jax.Array]:
    """kernel path -> the input that kernel saw in one forward pass of `model`."""
    with layers.capture_dense_inputs():
        _, inter = nnx.capture(model, nnx.Intermediate)(tokens)
    suffix = "/inputs/0"
    return {
        path_str(kp)[: -len(suffix)]: v
        for kp, v in jax.tree_util.tree_leaves_with_path(nnx.to_pure_dict(inter))
    }


def alignment_ratios(model_t: nnx.Module, model_0: nnx.Module, tokens: jax.Array) -> dict:
    """The three ratios per kernel path, from one forward pass of each model."""
    inputs_t, inputs_0 = _captured_inputs(model_t, tokens), _captured_inputs(model_0, tokens)
    layers_t, layers_0 = _dense_layers(model_t), _dense_layers(model_0)
    out = {}
    for path, lt in layers_t.items():
        l0 = layers_0[path]
        zt, z0 = inputs_t[path], inputs_0[path]
        contracted = zt.ndim - 2  # inputs are [B, T, ...fan-in dims]
        fan_in = int(np.prod(zt.shape[2:]))
        kernel_shape = (fan_in, int(np.prod(lt.kernel.shape[contracted:])))
        w_t = (lt.kernel[...] * lt.multiplier).reshape(kernel_shape).astype(jnp.float32)
        w_0 = (l0.kernel[...] * l0.multiplier).reshape(kernel_shape).astype(jnp.float32)
        z0 = z0.reshape(-1, fan_in).astype(jnp.float32)
        dz = zt.reshape(-1, fan_in).astype(jnp.float32) - z0
        dw = w_t - w_0
        out[path] = {
            "alpha": log_ratio(z0, dw),
            "omega": log_ratio(dz, w_0),
            "u": log_ratio(dz, dw),
        }
    return out


class Evaluator(evaluators.EvaluatorBase):
    """Logs the alignment ratios of the current params against those at init."""

    def __init__(
        self, name: str, cfg: ml_collections.ConfigDict, task: Any, ctx: evaluators.EvalContext
    ) -> None:
        model_cfg = getattr(task, "model_config", None)
        if not isinstance(model_cfg, transformer.TransformerConfig) or model_cfg.scan_layers:
            raise ConfigError(
                f"evals.{name}: alignment probes need the Transformer with model.scan_layers=False."
            )
        super().__init__(name, cfg, task, ctx)
        split, batch_size, merge = cfg.get("split", "val"), self.batch_size, ctx.merge
        batch = next(
            iter(task.eval_batches(split, batch_size=batch_size, shard_index=0, shard_count=1)),
            None,
        )
        if batch is None:
            raise ConfigError(f"evals.{name}: split {split!r} has no batch of {batch_size}.")
        self.tokens = jnp.asarray(batch["inputs"])
        self.params0 = ctx.initial_params()  # W0, from the trainer's own init program

        def ratios(params, params0, tokens):
            per_layer = alignment_ratios(merge(params), merge(params0), tokens)
            metrics = {f"{t}/{p}": v[t] for p, v in per_layer.items() for t in TERMS}
            for kind, test in (
                ("readout", lambda p: p.startswith("unembed")),
                ("hidden", lambda p: not p.startswith("unembed")),
            ):
                paths = [p for p in per_layer if test(p)]
                for t in TERMS:
                    if paths:
                        metrics[f"{t}/{kind}"] = jnp.nanmean(
                            jnp.stack([per_layer[p][t] for p in paths])
                        )
            return metrics

        self._ratios = jax.jit(ratios)  # one probe batch, replicated

    def __call__(self, params: Any) -> dict[str, float]:
        """The ratios for `params` (NaN where nothing changed yet)."""
        return {
            k: float(v)
            for k, v in jax.device_get(self._ratios(params, self.params0, self.tokens)).items()
        }
