"""Chunked (flash-style) attention equals the reference attention, values and gradients,
with causal, key-padding and segment masks and lengths that are not multiples of the
chunk; a Transformer with attention_impl='chunked' gives the same logits."""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from models import attention
from models.transformer import Transformer, TransformerConfig


def qkv(T=37, S=37, seed=0):
    keys = jax.random.split(jax.random.key(seed), 3)
    q = jax.random.normal(keys[0], (2, T, 3, 8))
    k, v = (jax.random.normal(key, (2, S, 3, 8)) for key in keys[1:])
    return q, k, v


@pytest.mark.parametrize("chunk", [8, 64])
@pytest.mark.parametrize("masks", ["causal", "segments", "key_mask"])
def test_values_and_gradients_equal_the_reference(chunk, masks):
    q, k, v = qkv()
    kw = {"causal": masks != "key_mask"}
    if masks == "segments":
        kw["segment_ids_BT"] = jnp.repeat(jnp.array([[1, 2, 3], [1, 1, 2]]), 13, axis=1)[:, :37]
    if masks == "key_mask":
        kw["key_mask_BS"] = jnp.arange(37)[None, :] < jnp.array([[30], [37]])

    def loss(fn, q, k, v):
        return (fn(q, k, v, **kw) * jnp.cos(jnp.arange(8.0))).sum()

    ref = jax.jit(lambda q, k, v: attention.attend(q, k, v, **kw))(q, k, v)
    fn = jax.jit(lambda q, k, v: attention.chunked_attend(q, k, v, chunk=chunk, **kw))
    chex.assert_trees_all_close(fn(q, k, v), ref, atol=1e-5)
    grads = jax.jit(jax.grad(lambda *a: loss(attention.attend, *a), argnums=(0, 1, 2)))
    chunked = jax.grad(
        lambda *a: loss(lambda *b, **c: attention.chunked_attend(*b, chunk=chunk, **c), *a),
        argnums=(0, 1, 2),
    )
    chex.assert_trees_all_close(jax.jit(chunked)(q, k, v), grads(q, k, v), atol=1e-5)


def test_a_chunked_transformer_gives_the_reference_logits():
    cfg = TransformerConfig(vocab_size=13, d_model=16, num_layers=2, num_heads=2, d_ff=32)
    tokens = jax.random.randint(jax.random.key(1), (2, 40), 0, 13)
    logits = {}
    for impl in ("xla", "chunked"):
        c = dataclasses.replace(cfg, attention_impl=impl, attention_chunk=16)
        model = Transformer(c, rngs=nnx.Rngs(0))
        logits[impl] = nnx.jit(lambda m, t: m(t))(model, tokens)
    chex.assert_trees_all_close(logits["chunked"], logits["xla"], atol=1e-5)


def test_a_chunked_prompt_pass_equals_the_reference_prefill_and_continues_alike():
    """The KV-cache prompt pass (left-padded rows: negative positions) runs as
    chunked_attend when longer than attention_chunk: same logits and cache, and the next
    one-token step (not chunked) reads that cache alike."""
    cfg = TransformerConfig(vocab_size=13, d_model=16, num_layers=2, num_heads=2, d_ff=32)
    tokens = jax.random.randint(jax.random.key(2), (2, 21), 0, 13)
    pad = jnp.array([[0], [5]])  # row 1 has 5 padding slots on the left
    positions = jnp.arange(21)[None, :] - pad
    out = {}
    for impl in ("xla", "chunked"):
        model = Transformer(
            dataclasses.replace(cfg, attention_impl=impl, attention_chunk=8), rngs=nnx.Rngs(0)
        )

        @nnx.jit
        def run(m, tokens, positions):
            cache = m.init_cache(2, 32)
            logits, cache = m.decode(tokens, positions, cache)
            nxt, _ = m.decode(tokens[:, :1], positions[:, -1:] + 1, cache)
            return logits, cache, nxt

        out[impl] = run(model, tokens, positions)
    logits, cache, nxt = out["chunked"]
    ref_logits, ref_cache, ref_nxt = out["xla"]
    valid = positions >= 0  # padding queries see no key: their values are arbitrary
    chex.assert_trees_all_close(logits[valid], ref_logits[valid], atol=1e-5)
    chex.assert_trees_all_close(cache["positions"], ref_cache["positions"])
    slots = cache["positions"] >= 0  # [B, S]; k and v are [1, B, N, S, H] per layer
    for name in ("k", "v"):
        for x, ref in zip(cache[name], ref_cache[name], strict=True):
            keep = lambda a: jnp.moveaxis(a[0], 2, 1)[slots]  # [kept slots, N, H]
            chex.assert_trees_all_close(keep(x), keep(ref), atol=1e-5)
    chex.assert_trees_all_close(nxt, ref_nxt, atol=1e-5)
