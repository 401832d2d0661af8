"""Tests for models/transformer.py on tiny configs (CPU, a few seconds)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models.attention import max_attention_logit
from models.transformer import (
    Block,
    Transformer,
    TransformerConfig,
    param_count,
    train_flops_per_token,
)

TINY = TransformerConfig(vocab_size=13, d_model=16, num_layers=2, num_heads=2, d_ff=32, max_len=16)
B, T = 2, 8

RICH = dict(
    norm="layernorm",
    use_bias=True,
    position="learned",
    tie_embeddings=False,
    mlp="gelu",
    qk_norm=True,
)
COMBOS = {
    "layernorm_bias_learned_untied_gelu_qknorm": RICH,
    "rmsnorm_rope_tied_swiglu": dict(norm="rmsnorm", position="rope", mlp="swiglu"),
    "scan_layers": dict(scan_layers=True),
    "scan_rich": dict(RICH, scan_layers=True),
    "parallel_headdim": dict(parallel_block=True, head_dim=4, use_bias=True),
    "scan_rich_parallel_headdim": dict(RICH, scan_layers=True, parallel_block=True, head_dim=4),
    "layernorm_without_bias": dict(norm="layernorm", norm_bias=False, qk_norm=True),
}


def make(seed: int = 0, **overrides) -> Transformer:
    """Builds a tiny Transformer with overrides applied to TINY."""
    return Transformer(dataclasses.replace(TINY, **overrides), rngs=nnx.Rngs(seed))


def tokens(seed: int = 0) -> jax.Array:
    """Random int32 tokens [B, T]."""
    return jax.random.randint(jax.random.key(seed), (B, T), 0, TINY.vocab_size)


def params_of(model: nnx.Module) -> dict:
    """Pure dict of the model's Params."""
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def n_params(tree) -> int:
    """Number of scalars in a pytree of arrays."""
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def unstack_into(unrolled: Transformer, scanned: Transformer) -> None:
    """Copies a scanned model's stacked block params into an unrolled model."""
    src = params_of(scanned)
    dst = dict(src)
    dst["blocks"] = {
        i: jax.tree.map(lambda a, i=i: a[i], src["blocks"]) for i in range(TINY.num_layers)
    }
    state = nnx.state(unrolled, nnx.Param)
    nnx.replace_by_pure_dict(state, dst)
    nnx.update(unrolled, state)


def loss_and_grads(model: Transformer, toks: jax.Array):
    """Mean next-token cross-entropy and its grads w.r.t. the Params."""

    def loss_fn(m):
        logits = m(toks[:, :-1])
        logp = jax.nn.log_softmax(logits)
        return -jnp.take_along_axis(logp, toks[:, 1:, None], axis=-1).mean()

    return nnx.jit(nnx.value_and_grad(loss_fn))(model)


@pytest.mark.parametrize("overrides", [{}, RICH], ids=["default", "rich"])
def test_output_shape_and_dtype(overrides):
    logits = make(**overrides)(tokens())
    assert logits.shape == (B, T, TINY.vocab_size)
    assert logits.dtype == jnp.float32
    assert np.all(np.isfinite(logits))
    assert float(jnp.std(logits)) > 0


@pytest.mark.parametrize("position", ["rope", "learned"])
def test_causality(position):
    model = make(position=position)
    toks, t = tokens(), 4
    changed = toks.at[:, t].set((toks[:, t] + 1) % TINY.vocab_size)
    before, after = model(toks), model(changed)
    np.testing.assert_allclose(before[:, :t], after[:, :t], rtol=0, atol=1e-6)
    assert float(jnp.abs(before[:, t] - after[:, t]).min(axis=-1).max()) > 0
    assert float(jnp.abs(before[:, t:] - after[:, t:]).max()) > 1e-4


@pytest.mark.parametrize("overrides", COMBOS.values(), ids=COMBOS.keys())
def test_param_count_and_logical_names(overrides):
    cfg = dataclasses.replace(TINY, **overrides)
    # Abstract init: the real Param tree with ShapeDtypeStruct values, nothing compiled.
    model = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
    _, params, rest = nnx.split(model, nnx.Param, ...)
    assert len(jax.tree.leaves(rest)) == 0  # the model holds only Params (no rng state)
    pure = nnx.to_pure_dict(params)
    embed_keys = ("embed", "pos_embed", "unembed")
    counts = param_count(cfg)
    assert counts["total"] == n_params(pure)
    assert counts["embedding"] == n_params({k: pure[k] for k in embed_keys if k in pure})
    assert counts["non_embedding"] == counts["total"] - counts["embedding"]
    # Every Param carries one logical axis name per dimension.
    for path, var in nnx.iter_graph(model):
        if isinstance(var, nnx.Param):
            names = var.get_metadata().get("out_sharding")
            assert names is not None and len(names) == var.ndim, (path, names, var.shape)
            if cfg.scan_layers and path[0] == "blocks":
                assert names[0] == "layers" and var.shape[0] == cfg.num_layers, path


def test_concrete_model_holds_only_params():
    model = make(dropout=0.1, scan_layers=True)
    _, params, rest = nnx.split(model, nnx.Param, ...)
    assert len(jax.tree.leaves(rest)) == 0
    assert n_params(params) == param_count(model.cfg)["total"]
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(params))


def test_param_count_hand_calculation():
    # D=16, V=13, L=2, N*H=16, F=32, rmsnorm, rope, tied, swiglu, no bias.
    per_layer = 4 * 16 * 16 + 3 * 16 * 32 + 2 * 16
    assert param_count(TINY) == {
        "total": 13 * 16 + 2 * per_layer + 16,
        "embedding": 13 * 16,
        "non_embedding": 2 * per_layer + 16,
        "active": 13 * 16 + 2 * per_layer + 16,
    }


def test_abstract_init_gives_partition_specs():
    abstract = nnx.eval_shape(lambda: make(scan_layers=True))
    specs = nnx.to_pure_dict(nnx.get_partition_spec(nnx.state(abstract, nnx.Param)))
    assert specs["embed"]["embedding"] == jax.sharding.PartitionSpec("vocab", "embed")
    q_spec = specs["blocks"]["attn"]["q_proj"]["kernel"]
    assert q_spec == jax.sharding.PartitionSpec("layers", "embed", "heads", "head_dim")


@pytest.mark.parametrize("overrides", [{}, RICH], ids=["default", "rich"])
def test_scan_equals_unrolled(overrides):
    scanned = make(scan_layers=True, dropout=0.2, **overrides)
    unrolled = make(seed=1, dropout=0.2, **overrides)
    toks = tokens()
    embed_before = unrolled.embed.embedding[...]
    unstack_into(unrolled, scanned)
    assert not np.allclose(embed_before, unrolled.embed.embedding[...])  # the copy happened
    forward = nnx.jit(lambda m, t: m(t))  # one program a model, not op by op
    np.testing.assert_allclose(
        forward(scanned, toks), forward(unrolled, toks), rtol=1e-5, atol=1e-6
    )
    # Per-layer dropout keys are derived identically, so stochastic passes match too.
    dropped = nnx.jit(lambda m, t: m(t, deterministic=False, rngs=nnx.Rngs(dropout=3)))
    np.testing.assert_allclose(
        dropped(scanned, toks), dropped(unrolled, toks), rtol=1e-5, atol=1e-6
    )


def test_max_attention_logit_against_loops():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(2, 5, 3, 4)).astype(np.float32)  # [B, T, N, H]
    k = rng.normal(size=(2, 5, 3, 4)).astype(np.float32)
    k[0, 4, 1] *= 50.0  # a huge key at the last position: only the last query sees it
    expected = max(
        float(q[b, t, n] @ k[b, s, n]) / 2.0  # sqrt(H) = 2
        for b in range(2)
        for n in range(3)
        for t in range(5)
        for s in range(t + 1)
    )
    np.testing.assert_allclose(float(max_attention_logit(q, k)), expected, rtol=1e-5)
    full = float(np.einsum("btnh,bsnh->bnts", q, k).max()) / 2.0
    assert float(max_attention_logit(q, k)) <= full  # future keys are not counted


@pytest.mark.parametrize("overrides", [{}, RICH], ids=["default", "rich"])
def test_probes_scan_equal_unrolled_and_leave_logits_alone(overrides):
    scanned = make(scan_layers=True, **overrides)
    unrolled = make(seed=1, **overrides)
    unstack_into(unrolled, scanned)
    toks = tokens()
    logits_s, probes_s = scanned(toks, return_probes=True)
    logits_u, probes_u = unrolled(toks, return_probes=True)
    assert probes_s["attn_logit_max"].shape == (TINY.num_layers,)
    np.testing.assert_allclose(probes_s["attn_logit_max"], probes_u["attn_logit_max"], rtol=1e-5)
    np.testing.assert_allclose(logits_u, unrolled(toks), rtol=1e-6)
    # Layer 0's probe equals the logit recomputed from its own q and k.
    block = unrolled.blocks[0]
    h = block.attn_norm(
        unrolled.embed(toks) + (unrolled.pos_embed(jnp.arange(T)) if "position" in overrides else 0)
    )
    q, k, _ = block.attn._qkv(h, jnp.broadcast_to(jnp.arange(T), (B, T)))
    np.testing.assert_allclose(probes_u["attn_logit_max"][0], max_attention_logit(q, k), rtol=1e-5)


@pytest.mark.parametrize("scan", [False, True])
def test_remat_same_logits_and_grads(scan):
    toks = tokens()
    loss, grads = loss_and_grads(make(scan_layers=scan), toks)
    loss_r, grads_r = loss_and_grads(make(scan_layers=scan, remat=True), toks)
    np.testing.assert_allclose(loss, loss_r, rtol=1e-6)
    flat, flat_r = jax.tree.leaves(grads), jax.tree.leaves(grads_r)
    assert len(flat) == len(flat_r) > 0
    for g, g_r in zip(flat, flat_r, strict=True):
        np.testing.assert_allclose(g, g_r, rtol=1e-5, atol=1e-7)
    assert max(float(jnp.abs(g).max()) for g in flat) > 0


def test_parallel_block_formula():
    cfg = dataclasses.replace(TINY, parallel_block=True, init_std=0.5)  # big sublayer outputs
    block = Block(cfg, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (B, T, cfg.d_model))
    pos = jnp.broadcast_to(jnp.arange(T), (B, T))
    h = block.norm(x)
    expected = x + block.attn(h, pos) + block.mlp(h)
    np.testing.assert_allclose(block(x, pos)[0], expected, rtol=1e-6, atol=1e-6)
    sequential = x + block.attn(h, pos)
    sequential = sequential + block.mlp(block.norm(sequential))
    assert float(jnp.abs(block(x, pos)[0] - sequential).max()) > 1e-2
    base = make()(tokens())
    parallel = make(parallel_block=True)(tokens())
    assert np.all(np.isfinite(parallel)) and not np.allclose(base, parallel, atol=1e-4)


def test_qk_norm_changes_outputs_and_is_scale_invariant():
    toks = tokens()
    base, qk = make(), make(qk_norm=True)
    # Give both models identical weights; only the q/k normalization differs.
    shared, qk_params = params_of(base), params_of(qk)
    for i, blk in shared["blocks"].items():
        for name in ("q_norm", "k_norm"):
            blk["attn"][name] = qk_params["blocks"][i]["attn"][name]
    state = nnx.state(qk, nnx.Param)
    nnx.replace_by_pure_dict(state, shared)
    nnx.update(qk, state)
    out_qk = qk(toks)
    assert np.all(np.isfinite(out_qk))
    assert not np.allclose(base(toks), out_qk, atol=1e-5)
    # Normalized queries/keys make attention invariant to the q/k projection scale.
    for blk in qk.blocks:
        blk.attn.q_proj.kernel[...] = blk.attn.q_proj.kernel[...] * 7.0
        blk.attn.k_proj.kernel[...] = blk.attn.k_proj.kernel[...] * 3.0
    np.testing.assert_allclose(qk(toks), out_qk, rtol=1e-4, atol=1e-5)


def test_dropout_determinism():
    model, toks = make(dropout=0.3), tokens()
    det_a = model(toks, deterministic=True, rngs=nnx.Rngs(dropout=1))
    det_b = model(toks, deterministic=True, rngs=nnx.Rngs(dropout=2))
    np.testing.assert_array_equal(det_a, det_b)
    np.testing.assert_array_equal(det_a, model(toks))
    sto_a = model(toks, deterministic=False, rngs=nnx.Rngs(dropout=1))
    sto_b = model(toks, deterministic=False, rngs=nnx.Rngs(dropout=2))
    assert float(jnp.abs(sto_a - sto_b).max()) > 1e-4
    assert float(jnp.abs(sto_a - det_a).max()) > 1e-4
    np.testing.assert_array_equal(sto_a, model(toks, deterministic=False, rngs=nnx.Rngs(dropout=1)))
    with pytest.raises(ValueError, match="rngs"):
        model(toks, deterministic=False)


def test_explicit_positions_and_rope_shift_invariance():
    toks = tokens()
    pos = jnp.broadcast_to(jnp.arange(T), (B, T))
    rope, learned = make(), make(position="learned")
    np.testing.assert_allclose(rope(toks, positions_BT=pos), rope(toks), rtol=0, atol=0)
    # RoPE attention depends only on relative positions; learned positions do not.
    np.testing.assert_allclose(rope(toks, positions_BT=pos + 5), rope(toks), atol=1e-5)
    assert not np.allclose(learned(toks, positions_BT=pos + 5), learned(toks), atol=1e-4)
    with pytest.raises(ValueError, match="max_len"):
        learned(jnp.zeros((1, TINY.max_len + 1), jnp.int32))
    beyond = rope(jnp.zeros((1, 2 * TINY.max_len), jnp.int32))  # RoPE: beyond max_len
    assert beyond.shape == (1, 2 * TINY.max_len, TINY.vocab_size)
    assert np.all(np.isfinite(beyond))


def test_bf16_compute_close_to_fp32():
    toks = tokens()
    fp32 = make()(toks)
    bf16 = make(dtype="bfloat16")(toks)  # same param_dtype and seed -> same params
    assert bf16.dtype == jnp.float32
    assert not np.array_equal(fp32, bf16)  # the computation really ran in bf16
    scale = float(jnp.abs(fp32).max())
    assert float(jnp.abs(fp32 - bf16).max()) < 0.05 * scale


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(norm="batchnorm"), "norm"),
        (dict(position="alibi"), "position"),
        (dict(mlp="relu"), "mlp"),
        (dict(attention_impl="flash"), "attention_impl"),
        (dict(dtype="int8"), "dtype"),
        (dict(d_model=30, num_heads=4), "d_model"),
        (dict(d_model=12, num_heads=4), "head_dim"),  # head_dim 3 is odd: invalid with rope
        (dict(dropout=1.5), "dropout"),
        (dict(num_layers=0), "num_layers"),
    ],
)
def test_invalid_config_raises(overrides, field):
    with pytest.raises(ValueError, match=rf"TransformerConfig\.{field}=") as err:
        dataclasses.replace(TINY, **overrides)
    assert str(next(iter(overrides.values()))) in str(err.value) or field == "head_dim"


def test_train_flops_per_token_hand_calculation():
    cfg = TransformerConfig(
        vocab_size=100,
        d_model=64,
        num_layers=3,
        num_heads=4,
        head_dim=8,
        d_ff=256,
        mlp="gelu",
        tie_embeddings=False,
        use_bias=True,
        norm="layernorm",
    )
    seq_len = 32
    attn_proj = 4 * 64 * (4 * 8)  # q, k, v, o
    mlp = 2 * 64 * 256
    n_matmul = 3 * (attn_proj + mlp) + 100 * 64
    expected = 6 * n_matmul + 12 * 3 * seq_len * (4 * 8)
    assert train_flops_per_token(cfg, seq_len) == expected == 812_544
    swiglu = dataclasses.replace(cfg, mlp="swiglu", tie_embeddings=True)
    assert train_flops_per_token(swiglu, seq_len) == expected + 6 * 3 * 64 * 256


@pytest.mark.parametrize("scan", [False, True])
def test_encode_returns_the_hidden_state_and_each_blocks_output(scan):
    cfg = TransformerConfig(
        vocab_size=32, d_model=16, num_heads=2, num_layers=3, d_ff=32, max_len=8, scan_layers=scan
    )
    model = Transformer(cfg, rngs=nnx.Rngs(0))
    tokens = jnp.arange(10, dtype=jnp.int32).reshape(2, 5) % 32
    hidden, out = model.encode(tokens, return_blocks=True)
    assert hidden.shape == (2, 5, 16) and out["blocks"].shape == (3, 2, 5, 16)
    np.testing.assert_allclose(model.final_norm(out["blocks"][-1]), hidden, rtol=1e-6)
    np.testing.assert_allclose(model.unembed_logits(hidden), model(tokens), rtol=1e-6)
