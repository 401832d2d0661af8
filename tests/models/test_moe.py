"""The MoE feed-forward (models/moe.py): one expert is the dense FFN, the three dispatches
agree (and match a for-loop reference), capacity drops by priority, and the auxiliary
losses take their known values."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models import moe


def layer(experts=4, k=1, dispatch="gather", gated=True, **kw):
    return moe.MoEFeedForward(
        8, 16, experts, k=k, gated=gated, dispatch=dispatch, rngs=nnx.Rngs(0), **kw
    )


def call(m, x):
    return nnx.jit(lambda m, x: m(x))(m, x)


route = jax.jit(moe.route, static_argnums=(1, 2, 3, 4))


def x_BTD(seed=0, B=2, T=12):
    return jax.random.normal(jax.random.key(seed), (B, T, 8))


def loop_reference(m: moe.MoEFeedForward, x, deterministic=False):
    """Token by token, expert by expert (MaxText's for-loop pattern), with capacity in the
    same priority order: every first choice before any second choice."""
    logits = np.einsum("btd,de->bte", np.asarray(x), np.asarray(m.router[...]))
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    B, T, E = probs.shape
    C = moe.capacity(T, E, m.k, m.eval_capacity_factor if deterministic else m.capacity_factor, 4)
    top = np.argsort(-logits, axis=-1, kind="stable")[..., : m.k]
    y = np.zeros(x.shape, np.float64)
    for b in range(B):
        used = np.zeros(E, int)
        for j in range(m.k):
            for t in range(T):
                e = top[b, t, j]
                if used[e] >= C:
                    continue
                used[e] += 1
                up = np.asarray(x[b, t]) @ np.asarray(m.up[...][e])
                h = jax.nn.silu(np.asarray(x[b, t]) @ np.asarray(m.gate[...][e])) * up
                y[b, t] += probs[b, t, e] * (np.asarray(h) @ np.asarray(m.down[...][e]))
    return y


@pytest.mark.parametrize("dispatch", moe.DISPATCHES)
def test_one_expert_is_the_dense_ffn(dispatch):
    m = layer(experts=1, dispatch=dispatch)
    x = x_BTD()
    y, aux = call(m, x)
    h = jax.nn.silu(x @ m.gate[...][0]) * (x @ m.up[...][0])
    chex.assert_trees_all_close(y, h @ m.down[...][0], atol=1e-6)  # p = 1 for one expert
    assert float(aux["moe_dropped"]) == 0.0


@pytest.mark.parametrize("k", [1, 2])
def test_dispatches_agree_with_each_other_and_a_loop_reference(k):
    x = x_BTD(1)
    outs = {}
    for dispatch in moe.DISPATCHES:
        m = layer(experts=4, k=k, dispatch=dispatch, capacity_factor=0.75)  # some drops
        outs[dispatch], aux = call(m, x)
    assert 0 < float(aux["moe_dropped"]) < 0.5
    chex.assert_trees_all_close(outs["gather"], outs["dense"], atol=1e-5)
    chex.assert_trees_all_close(outs["einsum"], outs["dense"], atol=1e-5)
    np.testing.assert_allclose(outs["dense"], loop_reference(m, x), atol=1e-5)


def test_capacity_keeps_the_first_tokens_in_priority_order():
    """Every token prefers expert 0; with capacity 4 (the minimum) only the first four
    get its output, the rest get nothing; dropped fraction (T - 4) / T."""
    m = layer(experts=4, capacity_factor=0.1, eval_capacity_factor=0.1)
    m.router[...] = jnp.zeros((8, 4)).at[:, 0].set(1.0)
    x = jnp.abs(x_BTD(2, B=1, T=10)) + 0.1  # positive: expert 0 wins every token
    y, aux = call(m, x)
    assert np.all(np.abs(np.asarray(y[0, :4])).sum(-1) > 0)
    np.testing.assert_array_equal(np.asarray(y[0, 4:]), 0.0)
    assert float(aux["moe_dropped"]) == pytest.approx(6 / 10)
    routing, _ = route(jnp.zeros((1, 3, 2)).at[0, :, 0].set(1.0), 2, 0.1, 1, False)
    # top-2 with capacity 1: first choices claim the slots before any second choice
    np.testing.assert_array_equal(routing.kept[0], [[True, False, False], [True, False, False]])


def test_auxiliary_losses_and_their_gradients():
    logits = jnp.zeros((2, 6, 4))
    for k in (1, 2):
        _, aux = route(logits, k, 2.0, 1, False)
        assert float(aux["moe_balance"]) == pytest.approx(k)  # uniform router: k
        assert float(aux["moe_z"]) == pytest.approx(np.log(4) ** 2)  # zero logits
    # The balance loss's gradient flows through P only: d/dlogits of E * sum f_e P_e.
    logits = jax.random.normal(jax.random.key(3), (1, 6, 4))
    grad = jax.grad(lambda z: route(z, 1, 2.0, 1, False)[1]["moe_balance"])(logits)
    f = jax.nn.one_hot(jnp.argmax(logits, -1), 4).mean(1)  # [1, 4]

    def through_p(z):
        return 4 * (f * jax.nn.softmax(z, -1).mean(1)).sum()

    chex.assert_trees_all_close(grad, jax.grad(through_p)(logits), atol=1e-6)


def test_bad_settings_are_value_errors():
    with pytest.raises(ValueError, match="dispatch 'sort'"):
        layer(dispatch="sort")
    with pytest.raises(ValueError, match="top-k=3"):
        layer(experts=2, k=3)


# ------------------------------------------------------------------ in the Transformer


def moe_config(**kw):
    from models.transformer import TransformerConfig

    base = dict(vocab_size=13, d_model=16, num_layers=2, num_heads=2, d_ff=32, max_len=16)
    return TransformerConfig(**{**base, "moe_experts": 4, "moe_d_ff": 24, **kw})


@pytest.mark.parametrize("kw", [{}, {"use_bias": True, "mlp": "gelu", "moe_top_k": 2}])
def test_param_counts_match_the_model_and_count_k_experts_as_active(kw):
    from models.transformer import Transformer, param_count

    cfg = moe_config(**kw)
    model = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
    actual = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    counts = param_count(cfg)
    assert counts["total"] == actual
    matrices = 3 if cfg.mlp == "swiglu" else 2
    unused = (cfg.moe_experts - cfg.moe_top_k) * matrices * 16 * 24  # one MoE layer (layer 1)
    assert counts["active"] == counts["total"] - unused
    assert cfg.is_moe_layer(1) and not cfg.is_moe_layer(0)


def test_the_objective_adds_the_weighted_aux_losses_and_decoding_matches_the_forward(tmp_path):
    from configs import quickstart
    from framework import trainer as trainer_lib

    c = quickstart.get_config("size=tiny,steps=2")
    c.model.update(moe_experts=4, moe_every=1, moe_top_k=2, moe_eval_capacity_factor=4.0)
    c.evals = {}
    t = trainer_lib.Trainer(c, str(tmp_path))
    state = t.init_state()
    batch = next(iter(t.task.train_dataset(batch_size=8, seed=0, shard_index=0, shard_count=1)))
    _, m = t._step(state, {k: jnp.asarray(v) for k, v in batch.items()})
    m = {k: float(v) for k, v in m.items()}
    expected = m["loss"] + 1e-2 * m["moe_balance"] + 1e-3 * m["moe_z"]
    assert m["objective"] == pytest.approx(expected, rel=1e-6)
    assert m["moe_balance"] > 0 and 0.0 <= m["moe_dropped"] < 1.0
    model = t.merge(t.init_state()["params"])  # the step donated `state`
    tokens = jnp.asarray(batch["inputs"][:2, :12])
    full = nnx.jit(lambda m, x: m(x))(model, tokens)
    positions = jnp.broadcast_to(jnp.arange(12), (2, 12))
    decode = nnx.jit(lambda m, x, p: m.decode(x, p, m.init_cache(2, 16))[0])
    decoded = decode(model, tokens, positions)
    chex.assert_trees_all_close(decoded, full, atol=1e-4)  # eval capacity: nothing dropped


def test_padding_takes_no_capacity_and_stays_out_of_the_losses():
    # Tight capacity (3 slots per expert for 12 real tokens, top-2 of 4): drops happen.
    m = layer(k=2, eval_capacity_factor=0.5, min_capacity=1)
    x = x_BTD(B=2, T=12)
    pad = jnp.broadcast_to(x_BTD(seed=5, B=1, T=1), (2, 8, 8))  # alike: same experts
    x_pad = jnp.concatenate([pad, x], axis=1)
    valid = jnp.concatenate([jnp.zeros((2, 8), bool), jnp.ones((2, 12), bool)], axis=1)
    run = nnx.jit(lambda m, x, v: m(x, deterministic=True, valid_BT=v))
    y, out = run(m, x, None)
    y_pad, out_pad = run(m, x_pad, valid)
    assert 0.0 < float(out["moe_dropped"]) < 1.0
    chex.assert_trees_all_close(y_pad[:, 8:], y, atol=1e-6)
    np.testing.assert_array_equal(y_pad[:, :8], 0.0)  # padding gets no expert
    chex.assert_trees_all_close(out_pad, out, atol=1e-6)
    y_leak, _ = run(m, x_pad, None)  # unmasked, the padding takes slots first
    assert float(jnp.abs(y_leak[:, 8:] - y).max()) > 0.1 * float(jnp.abs(y).max())


def test_a_left_padded_prefill_routes_as_the_unpadded_forward():
    from models.transformer import Transformer

    cfg = moe_config(moe_every=1, moe_top_k=2, moe_eval_capacity_factor=0.5, moe_min_capacity=1)
    model = Transformer(cfg, rngs=nnx.Rngs(0))
    tokens = jax.random.randint(jax.random.key(1), (2, 10), 0, 13)
    full = nnx.jit(lambda m, x: m(x))(model, tokens)
    padded = jnp.concatenate([jnp.zeros((2, 6), tokens.dtype), tokens], axis=1)
    positions = jnp.concatenate(
        [jnp.full((2, 6), -1), jnp.broadcast_to(jnp.arange(10), (2, 10))], 1
    )
    decode = nnx.jit(lambda m, x, p: m.decode(x, p, m.init_cache(2, 16))[0])
    chex.assert_trees_all_close(decode(model, padded, positions)[:, 6:], full, atol=1e-4)
