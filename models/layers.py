"""Building blocks of models/transformer.py: parameter initializers and dense/norm
factories, the abc-scaled einsum (ScaledEinsum) and its input capture, RoPE, and the
feed-forward layer (MLP, built through make_mlp).

Shapes use nanodo-style suffixes: B batch, T sequence, D d_model, N heads, H head_dim,
F d_ff. Every initializer carries logical axis names (see models/transformer.py's table).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from flax import nnx

if TYPE_CHECKING:
    from models.transformer import TransformerConfig

# ----------------------------------------------------------------------------- params


def _normal(std: float, names: tuple[str | None, ...]) -> Any:
    """Normal(std) initializer annotated with logical axis names."""
    return nnx.with_partitioning(nnx.initializers.normal(stddev=std), names)


def _zeros(names: tuple[str | None, ...]) -> Any:
    """Zeros initializer annotated with logical axis names."""
    return nnx.with_partitioning(nnx.initializers.zeros_init(), names)


def _ones(names: tuple[str | None, ...]) -> Any:
    """Ones initializer annotated with logical axis names."""
    return nnx.with_partitioning(nnx.initializers.ones_init(), names)


def _dense(
    cfg: TransformerConfig,
    einsum_str: str,
    kernel_shape: tuple[int, ...],
    kernel_names: tuple[str, ...],
    bias_names: tuple[str, ...],
    *,
    std: float,
    rngs: nnx.Rngs,
    dtype: Any = None,
    multiplier: float = 1.0,
) -> nnx.Einsum:
    """An einsum projection whose bias covers the kernel's trailing (output) axes."""
    n_out = len(bias_names)
    return ScaledEinsum(
        einsum_str,
        kernel_shape,
        kernel_shape[-n_out:] if cfg.use_bias else None,
        dtype=dtype or jnp.dtype(cfg.dtype),
        param_dtype=jnp.dtype(cfg.param_dtype),
        kernel_init=_normal(std, kernel_names),
        bias_init=_zeros(bias_names),
        rngs=rngs,
        multiplier=multiplier,
    )


def _norm(cfg: TransformerConfig, size: int, *, rngs: nnx.Rngs) -> nnx.Module:
    """RMSNorm or LayerNorm (per cfg.norm) over the last axis; stats in float32."""
    kwargs = dict(
        epsilon=cfg.norm_eps,
        dtype=jnp.dtype(cfg.dtype),
        param_dtype=jnp.dtype(cfg.param_dtype),
        scale_init=_ones(("norm",)),
        rngs=rngs,
    )
    if cfg.norm == "rmsnorm":
        return nnx.RMSNorm(size, **kwargs)
    return nnx.LayerNorm(size, use_bias=cfg.norm_bias, bias_init=_zeros(("norm",)), **kwargs)


def _logit_dtype(cfg: TransformerConfig) -> Any:
    """float32, or float64 for a float64 model (exact-arithmetic tests)."""
    return jnp.promote_types(jnp.float32, jnp.dtype(cfg.dtype))


def _hidden_std(cfg: TransformerConfig) -> float:
    """Init std of the hidden kernels' inputs side (q, k, v, MLP up/gate)."""
    return cfg.hidden_init_std or cfg.init_std


def _out_std(cfg: TransformerConfig) -> float:
    """Init std of residual output projections: the hidden std / sqrt(2 * num_layers)."""
    return _hidden_std(cfg) / math.sqrt(2 * cfg.num_layers)


_CAPTURE_INPUTS: contextvars.ContextVar[bool] = contextvars.ContextVar("capture", default=False)


@contextlib.contextmanager
def capture_dense_inputs() -> Iterator[None]:
    """Within this context every ScaledEinsum sows its input as `nnx.Intermediate`
    'inputs'; run the model through `nnx.capture(model, nnx.Intermediate)` to get them.
    For alignment probes; unrolled blocks only (scan_layers=False)."""
    token = _CAPTURE_INPUTS.set(True)
    try:
        yield
    finally:
        _CAPTURE_INPUTS.reset(token)


class ScaledEinsum(nnx.Einsum):
    """nnx.Einsum whose output is multiplied by a constant (the abc parameter multiplier;
    with a bias, multiplier * (x w + b)). Same params and paths as nnx.Einsum."""

    def __init__(self, *args: Any, multiplier: float = 1.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.multiplier = multiplier

    def __call__(self, inputs: jax.Array, einsum_str: str | None = None) -> jax.Array:
        if _CAPTURE_INPUTS.get():
            self.sow(nnx.Intermediate, "inputs", inputs)
        y = super().__call__(inputs, einsum_str)
        return y if self.multiplier == 1.0 else y * jnp.asarray(self.multiplier, y.dtype)


# ----------------------------------------------------------------------------- layers


def apply_rope(x_BTNH: jax.Array, positions_BT: jax.Array, base: float) -> jax.Array:
    """Rotary position embedding (rotate-half form) applied over the last axis."""
    H = x_BTNH.shape[-1]
    fraction_K = 2.0 * jnp.arange(H // 2, dtype=jnp.float32) / H
    inv_freq_K = base**-fraction_K
    angle_BTK = positions_BT.astype(jnp.float32)[..., None] * inv_freq_K
    sin_BT1K = jnp.sin(angle_BTK)[:, :, None, :]
    cos_BT1K = jnp.cos(angle_BTK)[:, :, None, :]
    x1_BTNK, x2_BTNK = jnp.split(x_BTNH.astype(jnp.float32), 2, axis=-1)
    out_BTNH = jnp.concatenate(
        [x1_BTNK * cos_BT1K - x2_BTNK * sin_BT1K, x2_BTNK * cos_BT1K + x1_BTNK * sin_BT1K],
        axis=-1,
    )
    return out_BTNH.astype(x_BTNH.dtype)


class MLP(nnx.Module):
    """Position-wise feed-forward: SwiGLU (gate, up, down) or GELU (up, down)."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        D, F = cfg.d_model, cfg.d_ff
        self.gated = cfg.mlp == "swiglu"
        dense = functools.partial(_dense, cfg, rngs=rngs, multiplier=cfg.hidden_multiplier)
        in_proj = lambda: dense(
            "BTD,DF->BTF", (D, F), ("embed", "mlp"), ("mlp",), std=_hidden_std(cfg)
        )
        if self.gated:
            self.gate = in_proj()
        self.up = in_proj()
        self.down = dense("BTF,FD->BTD", (F, D), ("mlp", "embed"), ("embed",), std=_out_std(cfg))

    def __call__(self, x_BTD: jax.Array) -> jax.Array:
        """Applies the feed-forward network to [B,T,D]."""
        if self.gated:
            h_BTF = jax.nn.silu(self.gate(x_BTD)) * self.up(x_BTD)
        else:
            h_BTF = jax.nn.gelu(self.up(x_BTD))
        return self.down(h_BTF)


def make_mlp(cfg: TransformerConfig, *, rngs: nnx.Rngs, moe_layer: bool = False) -> nnx.Module:
    """Builds a block's feed-forward layer (param paths mlp.*): the dense MLP, called as
    `mlp(x_BTD) -> [B,T,D]`, or in an MoE layer models/moe.py's MoEFeedForward, called as
    `mlp(x_BTD, deterministic=...) -> ([B,T,D], {aux losses and metrics})`."""
    if not moe_layer:
        return MLP(cfg, rngs=rngs)
    from models import moe  # noqa: PLC0415 (moe imports nothing of this module's)

    return moe.MoEFeedForward(
        cfg.d_model,
        cfg.moe_d_ff or cfg.d_ff,
        cfg.moe_experts,
        k=cfg.moe_top_k,
        gated=cfg.mlp == "swiglu",
        capacity_factor=cfg.moe_capacity_factor,
        eval_capacity_factor=cfg.moe_eval_capacity_factor,
        min_capacity=cfg.moe_min_capacity,
        renormalize=cfg.moe_renormalize,
        dispatch=cfg.moe_dispatch,
        init_std=_hidden_std(cfg),
        out_std=_out_std(cfg),
        dtype=jnp.dtype(cfg.dtype),
        param_dtype=jnp.dtype(cfg.param_dtype),
        rngs=rngs,
    )
