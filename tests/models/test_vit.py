"""models/vit.py: exact parameter counts, segment pooling, masking and SuiT's invariances."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models import attention, vit

TINY = dict(image_size=16, channels=3, num_classes=5, d_model=32, num_layers=2, num_heads=2)


def test_deit_tiny_and_suit_tiny_parameter_counts():
    deit = vit.ViTConfig(
        image_size=224, num_classes=1000, patch_size=16, d_model=192, num_layers=12, num_heads=3
    )
    assert vit.describe(deit)["params"] == 5_717_416  # timm deit_tiny_patch16_224
    suit = vit.ViTConfig(**{**deit.__dict__, "tokenizer": "suit", "downsample": 2})
    # ../shared/papers/suit.md: DeiT-Ti - patch_embed - pos_embed + stem + BN + B + proj
    assert vit.describe(suit)["params"] == 5_717_416 - 147_648 - 37_824 + 7_104 + 96 + 48 + 9_312
    assert vit.describe(suit)["params"] == 5_548_504


def test_flops_match_the_published_gmacs():
    """Forward GMACs (train FLOPs / 6) as the SuiT paper tables them: DeiT-Ti 1.26,
    SuiT-Ti with 196 superpixels 1.44 (its stem runs at 112 x 112)."""
    deit = vit.ViTConfig(
        image_size=224, num_classes=1000, patch_size=16, d_model=192, num_layers=12, num_heads=3
    )
    suit = vit.ViTConfig(**{**deit.__dict__, "tokenizer": "suit", "downsample": 2})
    gmacs = lambda cfg, k=0: vit.train_flops_per_image(cfg, k) / 6e9
    assert gmacs(deit) == pytest.approx(1.26, rel=0.01)
    assert gmacs(suit, 196) == pytest.approx(1.44, rel=0.01)
    assert gmacs(suit, 49) < gmacs(suit, 196)  # fewer tokens, fewer FLOPs


def test_segment_pool_matches_a_numpy_loop_with_empty_segments():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
    labels = rng.integers(0, 6, size=(2, 4, 5)).astype(np.int32)
    labels[labels == 2] = 0  # segment 2 empty, and 7 never used (K = 8)
    pooled, present = vit.segment_pool(jnp.asarray(f), jnp.asarray(labels), 8)
    chex.assert_shape(pooled, (2, 8, 6))
    for b in range(2):
        for k in range(8):
            pix = f[b][labels[b] == k]
            assert bool(present[b, k]) == (len(pix) > 0)
            want = np.zeros(6) if not len(pix) else np.concatenate([pix.max(0), pix.mean(0)])
            np.testing.assert_allclose(pooled[b, k], want, rtol=1e-6, atol=1e-6)


def test_masked_keys_get_exactly_zero_attention_weight():
    k0, k1, k2 = jax.random.split(jax.random.key(0), 3)
    q = jax.random.normal(k0, (2, 5, 2, 4))
    k = jax.random.normal(k1, (2, 5, 2, 4))
    v = jax.random.normal(k2, (2, 5, 2, 4))
    mask = jnp.array([[1, 1, 0, 1, 0], [1, 0, 0, 0, 1]], bool)
    out = attention.attend(q, k, v, causal=False, key_mask_BS=mask)
    # Values at masked keys changed by 1e6 change nothing, bit for bit: weight exactly 0.
    v2 = jnp.where(mask[:, :, None, None], v, 1e6)
    k2_ = jnp.where(mask[:, :, None, None], k, 1e3)
    out2 = attention.attend(q, k2_, v2, causal=False, key_mask_BS=mask)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(out2))


def _suit_and_inputs(seed=0, segments=6):
    cfg = vit.ViTConfig(**TINY, tokenizer="suit", base_dim=8)
    model = vit.ViT(cfg, rngs=nnx.Rngs(seed))
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(2, 16, 16, 3)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, segments, size=(2, 16, 16)), jnp.int32)
    return model, x, labels


def test_relabelling_and_padding_leave_logits_unchanged():
    model, x, labels = _suit_and_inputs()
    logits = nnx.jit(lambda m, x, seg, k: m(x, seg, num_segments=k), static_argnums=3)
    base = logits(model, x, labels, 6)
    perm = jnp.asarray(np.random.default_rng(1).permutation(6))
    chex.assert_trees_all_close(logits(model, x, perm[labels], 6), base, atol=1e-5)
    # More slots, all empty: the same logits (no position embedding after pooling).
    chex.assert_trees_all_close(logits(model, x, labels, 11), base, atol=1e-5)
    # Relabelled into the padded range too.
    chex.assert_trees_all_close(logits(model, x, perm[labels] + 5, 11), base, atol=1e-5)


def test_fourier_features_and_batchnorm_state():
    model, x, labels = _suit_and_inputs()
    b = model.tokenizer.fourier_b
    assert isinstance(b, nnx.Param) and b[...].shape == (2, 4)
    pe = model.tokenizer.fourier_features(16, 16)
    chex.assert_shape(pe, (16, 16, 8))
    assert float(jnp.abs(pe).max()) <= 1.0
    wide = vit.ViTConfig(**{**TINY, "num_layers": 1}, tokenizer="suit", base_dim=800)
    big = nnx.eval_shape(lambda: vit.ViT(wide, rngs=nnx.Rngs(0)))
    assert big.tokenizer.fourier_b.shape == (2, 400)
    b_wide = vit.SuitTokenizer(wide, rngs=nnx.Rngs(0)).fourier_b[...]
    assert 9.0 < float(jnp.std(b_wide)) < 11.0  # sigma 10
    stats = nnx.state(model, nnx.BatchStat)
    assert {"mean", "var"} <= set(nnx.to_pure_dict(stats)["tokenizer"]["stem_norm"])
    call = nnx.jit(
        lambda m, x, seg, train: m(x, seg, num_segments=6, train=train), static_argnums=3
    )
    before = nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))
    call(model, x, labels, True)  # training mode updates the statistics
    after = nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))
    assert not np.allclose(
        before["tokenizer"]["stem_norm"]["mean"], after["tokenizer"]["stem_norm"]["mean"]
    )
    evaluated = nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))
    call(model, x, labels, False)  # evaluation reads them only
    chex.assert_trees_all_equal(evaluated, nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)))


def test_patch_vit_shapes_and_drop_path():
    model = vit.ViT(vit.ViTConfig(**TINY, patch_size=4, drop_path=0.5), rngs=nnx.Rngs(0))
    x = jnp.ones((3, 16, 16, 3))
    call = nnx.jit(lambda m, key: m(x, key=key))
    a, b = call(model, jax.random.key(1)), call(model, jax.random.key(2))
    chex.assert_shape(a, (3, 5))
    assert not np.allclose(a, b)  # stochastic depth in training
    y = jnp.ones((20000, 1))
    kept = vit.drop_path(y, 0.25, jax.random.key(0))
    np.testing.assert_allclose(np.unique(np.asarray(kept)), [0.0, 1 / 0.75], rtol=1e-6)
    assert abs(float(kept.mean()) - 1.0) < 0.03  # unbiased
    assert vit.drop_path(y, 0.25, None) is y


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="multiple of patch_size"):
        vit.ViTConfig(image_size=30, patch_size=4)
    model, x, labels = _suit_and_inputs()
    with pytest.raises(ValueError, match="must match the features"):
        model(x, labels[:, :8], num_segments=6)
