"""Sparse mixture-of-experts feed-forward (Switch, GShard, ST-MoE, Mixtral), a drop-in for
models/layers.MLP that also returns its auxiliary losses and routing metrics.

Per group of tokens (one sequence row: x_GTD with G = B groups of T tokens):
  router     logits = x . W_r in float32, p = softmax(logits) over E experts
  choice     the top-k experts of each token; combine weight p_e (Switch/GShard) or, with
             `renormalize`, softmax over the k chosen logits (Mixtral)
  capacity   C = max(min_capacity, ceil(capacity_factor * k * T / E)) slots per expert and
             group; assignments claim slots in priority order, every token's first choice
             before any second choice, in sequence order within a choice (flaxformer).
             Assignments past C are dropped: the token gets nothing from that expert (the
             residual carries it).
  losses     load balance L_B = E * sum_e f_e P_e (f_e: fraction of tokens with e among
             their top-k, before drops; P_e: mean router probability), = k for a uniform
             router; router z-loss L_z = mean_t logsumexp(logits_t)^2. Both per group, then
             averaged; the task weights them (config.loss.aux).
  metrics    dropped fraction of assignments, max expert load (f_e max / (k/E): 1 when
             balanced), router entropy; and each expert's load (LOAD, a vector).

Three dispatches give the same outputs when nothing differs in what is dropped:
  'gather'   (default) slots filled by scatter and read by gather: work ~ C*E per group
             (measured fastest on CPU in the spec, also the GPU default);
  'einsum'   one-hot dispatch/combine tensors [G,T,E,C] (GShard/MaxText dense_matmul;
             the TPU-friendly form);
  'dense'    every expert on every token, weighted by the kept assignments (the oracle).
Written here rather than taken from a library: flax and optax have no MoE layer, and
MaxText's is tied to its own config and sharding system.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

DISPATCHES = ("gather", "einsum", "dense")
# What an MoE layer returns besides its output: the auxiliary losses (weighted by the task,
# config.loss.aux) and routing metrics.
OUTPUTS = ("moe_balance", "moe_z", "moe_dropped", "moe_load_max", "moe_router_entropy")
# Also returned, not logged: each expert's load f_e / (k/E) ([E]; 1 everywhere when balanced),
# stacked per layer by the Transformer (out['moe_load'], [L, E]) for load histograms.
LOAD = "moe_load"


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Routing:
    """The routing of one call: which expert slot each (choice, token) got."""

    expert: jax.Array  # [G, K, T] int32: the expert of each token's k-th choice
    gate: jax.Array  # [G, K, T]: its combine weight
    slot: jax.Array  # [G, K, T] int32: position in the expert's slots (valid where kept)
    kept: jax.Array  # [G, K, T] bool: within capacity
    capacity: int = dataclasses.field(metadata=dict(static=True))


def capacity(tokens: int, experts: int, k: int, factor: float, minimum: int) -> int:
    """Slots per expert for a group of `tokens` (at most k * tokens are ever needed)."""
    c = max(minimum, math.ceil(factor * k * tokens / experts))
    return min(c, k * tokens)


def route(
    logits_GTE: jax.Array,
    k: int,
    capacity_factor: float,
    min_capacity: int,
    renormalize: bool,
    valid_GT: jax.Array | None = None,
) -> tuple[Routing, dict[str, jax.Array]]:
    """Top-k routing with capacity (module docstring); also (aux losses and metrics).

    `valid_GT` (bool) marks real tokens among padding: padding claims no slot, gets no
    expert, and is left out of the losses and metrics, and each group's capacity is that
    of its real tokens alone, so a padded row routes exactly as the row without padding
    (the sampler's left-padded prompts)."""
    G, T, E = logits_GTE.shape
    probs_GTE = jax.nn.softmax(logits_GTE, axis=-1)
    top_logits_GTK, expert_GTK = jax.lax.top_k(logits_GTE, k)
    if renormalize:
        gate_GTK = jax.nn.softmax(top_logits_GTK, axis=-1)
    else:
        gate_GTK = jnp.take_along_axis(probs_GTE, expert_GTK, axis=-1)
    expert_GKT = jnp.swapaxes(expert_GTK, 1, 2)  # priority: all first choices first
    onehot_GAE = jax.nn.one_hot(expert_GKT.reshape(G, k * T), E, dtype=jnp.int32)
    if valid_GT is not None:  # padding claims no slot
        valid_GKT = jnp.broadcast_to(valid_GT[:, None, :], (G, k, T))
        onehot_GAE = onehot_GAE * valid_GKT.reshape(G, k * T, 1)
    slot_GAE = jnp.cumsum(onehot_GAE, axis=1) - 1
    slot_GKT = (slot_GAE * onehot_GAE).sum(-1).reshape(G, k, T)
    C = capacity(T, E, k, capacity_factor, min_capacity)  # static: all T tokens real
    if valid_GT is None:
        kept_GKT = slot_GKT < C
    else:  # `capacity` of each group's real tokens
        n_G = valid_GT.sum(-1)
        c_G = jnp.ceil(capacity_factor * k * n_G / E).astype(jnp.int32)
        c_G = jnp.minimum(jnp.maximum(min_capacity, c_G), k * n_G)
        kept_GKT = valid_GKT & (slot_GKT < c_G[:, None, None])
    routing = Routing(expert_GKT, jnp.swapaxes(gate_GTK, 1, 2), slot_GKT, kept_GKT, C)
    return routing, _routing_outputs(logits_GTE, probs_GTE, expert_GTK, kept_GKT, valid_GT)


def _routing_outputs(logits_GTE, probs_GTE, expert_GTK, kept_GKT, valid_GT):
    """The aux losses and routing metrics, means over the real tokens (`route`)."""
    E, k = logits_GTE.shape[-1], expert_GTK.shape[-1]
    if valid_GT is None:
        mean_T = lambda x_GT: x_GT.mean(axis=1)
        mean = lambda x_GT: x_GT.mean()
        dropped = 1.0 - kept_GKT.mean()
    else:
        w_GT = valid_GT.astype(jnp.float32)
        count_G = jnp.maximum(w_GT.sum(1), 1)
        w_GTE = w_GT[..., None]
        mean_T = lambda x_GTE: (x_GTE * w_GTE).sum(1) / count_G[:, None]
        mean = lambda x_GT: (x_GT * w_GT).sum() / jnp.maximum(w_GT.sum(), 1)
        dropped = 1.0 - kept_GKT.sum() / jnp.maximum(k * w_GT.sum(), 1)
    chosen_GTE = jax.nn.one_hot(expert_GTK, E).sum(axis=2)  # 1 where e is among the top-k
    f_GE = jax.lax.stop_gradient(mean_T(chosen_GTE))
    p_GE = mean_T(probs_GTE)
    log_z_GT = jax.nn.logsumexp(logits_GTE, axis=-1)
    load_E = f_GE.mean(axis=0)
    aux = {
        "moe_balance": (E * (f_GE * p_GE).sum(-1)).mean(),
        "moe_z": mean(jnp.square(log_z_GT)),
    }
    metrics = {
        "moe_dropped": dropped,
        "moe_load_max": load_E.max() / (k / E),
        LOAD: load_E / (k / E),
        "moe_router_entropy": mean(-(probs_GTE * jnp.log(probs_GTE + 1e-9)).sum(-1)),
    }
    return {**aux, **metrics}


def _expert_ffn(x_ECD: jax.Array, w: dict[str, jax.Array], gated: bool) -> jax.Array:
    """Each expert's FFN on its own rows: [E, C, D] -> [E, C, D]."""
    up_ECF = jnp.einsum("ECD,EDF->ECF", x_ECD, w["up"])
    if gated:
        h_ECF = jax.nn.silu(jnp.einsum("ECD,EDF->ECF", x_ECD, w["gate"])) * up_ECF
    else:
        h_ECF = jax.nn.gelu(up_ECF)
    return jnp.einsum("ECF,EFD->ECD", h_ECF, w["down"])


def dispatch_gather(x_GTD, r: Routing, w, gated: bool) -> jax.Array:
    """Slots filled by scatter, outputs read back by gather (module docstring)."""
    G, T, D = x_GTD.shape
    E, C = w["up"].shape[0], r.capacity
    K = r.expert.shape[1]
    g_GKT = jnp.broadcast_to(jnp.arange(G)[:, None, None], (G, K, T))
    t_GKT = jnp.broadcast_to(jnp.arange(T)[None, None, :], (G, K, T))
    slot = jnp.where(r.kept, r.slot, C)  # dropped -> an overflow slot, cut below
    token_EGC = jnp.full((E, G, C + 1), T, jnp.int32)  # T: an all-zero padding row
    token_EGC = token_EGC.at[r.expert, g_GKT, slot].set(t_GKT)[:, :, :C]
    x_pad_GTD = jnp.concatenate([x_GTD, jnp.zeros((G, 1, D), x_GTD.dtype)], axis=1)
    x_EGCD = x_pad_GTD[jnp.arange(G)[None, :, None], token_EGC]
    out_EGCD = _expert_ffn(x_EGCD.reshape(E, G * C, D), w, gated).reshape(E, G, C, D)
    out_pad = jnp.concatenate([out_EGCD, jnp.zeros((E, G, 1, D), out_EGCD.dtype)], axis=2)
    y_GKTD = out_pad[r.expert, g_GKT, slot]
    weight_GKT = jnp.where(r.kept, r.gate, 0.0).astype(x_GTD.dtype)
    return (y_GKTD * weight_GKT[..., None]).sum(axis=1)


def _combine_GTEC(r: Routing, E: int) -> jax.Array:
    """Combine weights [G, T, E, C] (zero where nothing is kept)."""
    onehot_GKTEC = (
        jax.nn.one_hot(r.expert, E)[..., None] * jax.nn.one_hot(r.slot, r.capacity)[..., None, :]
    )
    weight_GKT = jnp.where(r.kept, r.gate, 0.0)
    return (onehot_GKTEC * weight_GKT[..., None, None]).sum(axis=1)


def dispatch_einsum(x_GTD, r: Routing, w, gated: bool) -> jax.Array:
    """One-hot dispatch and combine tensors (module docstring)."""
    G, T, D = x_GTD.shape
    E, C = w["up"].shape[0], r.capacity
    combine_GTEC = _combine_GTEC(r, E).astype(x_GTD.dtype)
    dispatch_GTEC = (combine_GTEC > 0).astype(x_GTD.dtype)
    x_EGCD = jnp.einsum("GTEC,GTD->EGCD", dispatch_GTEC, x_GTD)
    out_EGCD = _expert_ffn(x_EGCD.reshape(E, G * C, D), w, gated).reshape(E, G, C, D)
    return jnp.einsum("GTEC,EGCD->GTD", combine_GTEC, out_EGCD)


def dispatch_dense(x_GTD, r: Routing, w, gated: bool) -> jax.Array:
    """Every expert on every token, weighted by the kept assignments (the test oracle)."""
    G, T, D = x_GTD.shape
    E = w["up"].shape[0]
    x_ETD = jnp.broadcast_to(x_GTD.reshape(1, G * T, D), (E, G * T, D))
    out_GTED = _expert_ffn(x_ETD, w, gated).reshape(E, G, T, D).transpose(1, 2, 0, 3)
    weight_GKT = jnp.where(r.kept, r.gate, 0.0)
    weight_GTE = (jax.nn.one_hot(r.expert, E) * weight_GKT[..., None]).sum(axis=1)
    return jnp.einsum("GTED,GTE->GTD", out_GTED, weight_GTE.astype(x_GTD.dtype))


DISPATCH = {"gather": dispatch_gather, "einsum": dispatch_einsum, "dense": dispatch_dense}


class MoEFeedForward(nnx.Module):
    """E expert FFNs (SwiGLU or GELU, width F) behind a float32 top-k router."""

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        experts: int,
        *,
        k: int = 1,
        gated: bool = True,
        capacity_factor: float = 1.25,
        eval_capacity_factor: float = 2.0,
        min_capacity: int = 4,
        renormalize: bool = False,
        dispatch: str = "gather",
        init_std: float = 0.02,
        out_std: float = 0.02,
        dtype: Any = jnp.float32,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if dispatch not in DISPATCHES:
            raise ValueError(f"moe dispatch {dispatch!r} is not one of {', '.join(DISPATCHES)}.")
        if not 1 <= k <= experts:
            raise ValueError(f"moe top-k={k} must be between 1 and the {experts} experts.")
        D, F, E = d_model, d_ff, experts
        self.k, self.gated, self.dispatch, self.dtype = k, gated, dispatch, dtype
        self.capacity_factor, self.eval_capacity_factor = capacity_factor, eval_capacity_factor
        self.min_capacity, self.renormalize = min_capacity, renormalize

        def param(shape, names, std):
            init = nnx.with_partitioning(nnx.initializers.normal(stddev=std), names)
            return nnx.Param(init(rngs.params(), shape, param_dtype))

        self.router = param((D, E), ("embed", None), 0.02)  # flaxformer: N(0, 0.02)
        self.up = param((E, D, F), ("expert", "embed", "mlp"), init_std)
        if gated:
            self.gate = param((E, D, F), ("expert", "embed", "mlp"), init_std)
        self.down = param((E, F, D), ("expert", "mlp", "embed"), out_std)

    def __call__(
        self, x_BTD: jax.Array, *, deterministic: bool = False, valid_BT: jax.Array | None = None
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """(y [B,T,D], {moe_balance, moe_z, and routing metrics}); `deterministic`
        (evaluation) uses the eval capacity factor; `valid_BT` masks padding (`route`)."""
        logits_BTE = jnp.einsum(
            "BTD,DE->BTE", x_BTD.astype(jnp.float32), self.router[...].astype(jnp.float32)
        )
        factor = self.eval_capacity_factor if deterministic else self.capacity_factor
        routing, aux = route(
            logits_BTE, self.k, factor, self.min_capacity, self.renormalize, valid_BT
        )
        w = {"up": self.up[...], "down": self.down[...]}
        if self.gated:
            w["gate"] = self.gate[...]
        w = {name: v.astype(self.dtype) for name, v in w.items()}
        y_BTD = DISPATCH[self.dispatch](x_BTD.astype(self.dtype), routing, w, self.gated)
        return y_BTD.astype(x_BTD.dtype), aux
