"""KV-cache decoding for models/transformer.py: the cache layout (CACHE_AXES),
`init_cache` and `decode`, as functions of a Transformer (its `init_cache`/`decode`
methods delegate here; framework/sampling.py calls those methods).

The cache is a plain dict of arrays, not NNX state; ``CACHE_AXES`` gives each leaf's
logical names (shard 'batch' like activations, 'heads' like the attention heads).
``k``, ``v``: tuples of [L_i, B, N, S, H] arrays, one stacked array (L_0 = L) when
scan_layers, else one per layer (L_i = 1, each its own buffer so it updates in place);
``positions``: int32 [B, S], the position held by each slot, -1 for empty or padding
slots (never attended to); ``index``: int32 [], the next slot to write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from flax import nnx

if TYPE_CHECKING:
    from models.transformer import Block, Transformer

_KV_AXES = ("layers", "batch", "heads", "cache_len", "head_dim")
CACHE_AXES = dict(k=_KV_AXES, v=_KV_AXES, positions=("batch", "cache_len"), index=())


def init_cache(
    model: Transformer, batch: int, max_len: int, dtype: Any = None
) -> dict[str, jax.Array]:
    """An empty KV cache for `model` with `max_len` slots per row (layout: module doc)."""
    cfg, L = model.cfg, model.cfg.num_layers
    shape = (batch, cfg.num_heads, max_len, cfg.resolved_head_dim)
    zeros = lambda n: jnp.zeros((n, *shape), jnp.dtype(dtype or cfg.dtype))
    k, v = (tuple(map(zeros, (L,) if cfg.scan_layers else (1,) * L)) for _ in "kv")
    positions = jnp.full((batch, max_len), -1, jnp.int32)
    return dict(k=k, v=v, positions=positions, index=jnp.int32(0))


def decode(
    model: Transformer,
    tokens_BT: jax.Array,
    positions_BT: jax.Array,
    cache: Any,
    *,
    last_only: bool = False,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Runs T new tokens through `model` and its KV cache; returns (float32 logits,
    extended cache).

    Tokens fill slots [index, index+T). A query at position p attends to its row's slots
    holding positions 0..p; negative positions mark padding (stored, never attended to).
    Prefill: one call on the left-padded prompt, then one per token; last_only: [B,1,V].
    """
    cfg = model.cfg
    positions_BT, index = positions_BT.astype(jnp.int32), cache["index"]
    key_positions = (cache["positions"], positions_BT)  # what each attention layer masks by
    x_BTD = model.embed_tokens(tokens_BT, jnp.maximum(positions_BT, 0))
    write = lambda c, x, at: jax.lax.dynamic_update_slice_in_dim(c, x.astype(c.dtype), at, 3)
    if cfg.scan_layers:

        @nnx.scan(
            in_axes=(nnx.Carry, 0, 0),
            out_axes=(nnx.Carry, 0),
            transform_metadata={nnx.PARTITION_NAME: "layers"},
        )
        def body(x_BTD: jax.Array, block: Block, kv: Any) -> tuple[jax.Array, Any]:
            return block.decode(x_BTD, positions_BT, kv, key_positions)

        x_BTD, (k_LBNTH, v_LBNTH) = body(x_BTD, model.blocks, (cache["k"][0], cache["v"][0]))
        k, v = (write(cache["k"][0], k_LBNTH, index),), (write(cache["v"][0], v_LBNTH, index),)
    else:
        k, v = (), ()
        for i, block in enumerate(model.blocks):
            kv = (cache["k"][i][0], cache["v"][i][0])
            x_BTD, (k_BNTH, v_BNTH) = block.decode(x_BTD, positions_BT, kv, key_positions)
            # Always 0, but depends on the layer output: XLA then writes in place, no copy.
            at = index + (jnp.abs(x_BTD[0, 0, 0]) < -1).astype(jnp.int32)
            k += (write(cache["k"][i], k_BNTH[None], at),)
            v += (write(cache["v"][i], v_BNTH[None], at),)
    if last_only:
        x_BTD = x_BTD[:, -1:]
    logits_BTV = model.unembed_logits(model.final_norm(x_BTD))
    positions = jax.lax.dynamic_update_slice_in_dim(cache["positions"], positions_BT, index, 1)
    return logits_BTV, dict(k=k, v=v, positions=positions, index=index + tokens_BT.shape[1])
