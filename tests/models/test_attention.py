"""Tests for models/attention.py: the attention core against a plain softmax reference,
the non-causal / key-masked path, and the causal default left as it was."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models.attention import Attention, attend, max_attention_logit
from models.transformer import TransformerConfig

CFG = TransformerConfig(vocab_size=13, d_model=16, num_layers=2, num_heads=2, d_ff=32, max_len=16)
B, T, N, H = 2, 6, 3, 4


def reference(q, k, v, *, causal, key_mask=None):
    """softmax(q k^T / sqrt(H) masked) v in float64 numpy, one (b, n, t) at a time."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    out = np.zeros(q.shape)
    for b in range(q.shape[0]):
        for n in range(q.shape[2]):
            for t in range(q.shape[1]):
                s = k[b, :, n] @ q[b, t, n] / np.sqrt(q.shape[-1])
                keep = np.ones(k.shape[1], bool)
                if causal:
                    keep &= np.arange(k.shape[1]) <= t
                if key_mask is not None:
                    keep &= np.asarray(key_mask[b], bool)
                w = np.where(keep, np.exp(s - s[keep].max()), 0.0)
                out[b, t, n] = (w / w.sum()) @ v[b, :, n]
    return out


def qkv(seed=0, S=T):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(B, T, N, H)).astype(np.float32)
    k, v = (rng.normal(size=(B, S, N, H)).astype(np.float32) for _ in "kv")
    return q, k, v


KEY_MASK = np.array([[1, 1, 1, 1, 0, 0], [1, 0, 1, 1, 1, 1]], bool)  # [B, S]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_attend_matches_softmax_reference(causal, masked):
    q, k, v = qkv()
    key_mask = KEY_MASK if masked else None
    out = attend(q, k, v, causal=causal, key_mask_BS=key_mask, implementation="xla")
    expected = reference(q, k, v, causal=causal, key_mask=key_mask)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_attend_cross_lengths_non_causal():
    q, k, v = qkv(S=9)  # T=6 queries over S=9 keys (e.g. a padded encoder memory)
    key_mask = np.arange(9)[None, :] < np.array([[7], [9]])
    out = attend(q, k, v, causal=False, key_mask_BS=key_mask)
    np.testing.assert_allclose(out, reference(q, k, v, causal=False, key_mask=key_mask), 1e-5)


def test_padded_keys_get_zero_weight_and_non_causal_sees_the_future():
    q, k, v = qkv()
    out = attend(q, k, v, causal=False, key_mask_BS=KEY_MASK)
    # Changing keys and values at padded slots changes nothing.
    k2, v2 = k.copy(), v.copy()
    k2[~KEY_MASK], v2[~KEY_MASK] = 100.0, -100.0
    np.testing.assert_array_equal(out, attend(q, k2, v2, causal=False, key_mask_BS=KEY_MASK))
    # Changing the last (unpadded) key's value moves query 0's output when non-causal only.
    v3 = v.copy()
    v3[1, -1] += 10.0
    moved = attend(q, k, v3, causal=False, key_mask_BS=KEY_MASK)
    assert not np.allclose(moved[1, 0], out[1, 0])
    np.testing.assert_array_equal(attend(q, k, v3)[1, :-1], attend(q, k, v)[1, :-1])


def test_max_attention_logit_non_causal_and_masked():
    q, k, _ = qkv(1)
    k[0, 4, 1] *= 50.0  # a huge key at a padded slot of row 0: must not count
    s = np.einsum("btnh,bsnh->bnts", q, k) / 2.0  # sqrt(H) = 2
    keep = np.broadcast_to(KEY_MASK[:, None, None, :], s.shape)
    got = max_attention_logit(q, k, causal=False, key_mask_BS=KEY_MASK)
    np.testing.assert_allclose(float(got), s[keep].max(), rtol=1e-5)
    np.testing.assert_allclose(float(max_attention_logit(q, k, causal=False)), s.max(), 1e-5)


def test_module_non_causal_key_mask_matches_reference():
    attn = Attention(CFG, rngs=nnx.Rngs(0), causal=False)
    x = jax.random.normal(jax.random.key(1), (B, T, CFG.d_model))
    pos = jnp.broadcast_to(jnp.arange(T), (B, T))
    out, probe = attn(x, pos, probe=True, key_mask_BS=KEY_MASK)
    q, k, v = attn._qkv(x, pos)
    expected = attn.o_proj(jnp.asarray(reference(q, k, v, causal=False, key_mask=KEY_MASK)))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probe, max_attention_logit(q, k, causal=False, key_mask_BS=KEY_MASK))
    # Unpadded rows do not depend on what sits in padded slots.
    x2 = jnp.where(jnp.asarray(KEY_MASK)[..., None], x, 7.0)
    out2 = attn(x2, pos, key_mask_BS=KEY_MASK)
    np.testing.assert_allclose(out2[KEY_MASK], out[KEY_MASK], rtol=1e-5, atol=1e-6)


def test_causal_default_is_the_plain_causal_call_and_same_params():
    causal, bidir = Attention(CFG, rngs=nnx.Rngs(0)), Attention(CFG, rngs=nnx.Rngs(0), causal=False)
    paths = lambda m: [p for p, _ in nnx.to_flat_state(nnx.state(m, nnx.Param))]
    assert paths(causal) == paths(bidir)
    x = jax.random.normal(jax.random.key(1), (B, T, CFG.d_model))
    pos = jnp.broadcast_to(jnp.arange(T), (B, T))
    q, k, v = causal._qkv(x, pos)
    plain = jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="xla")
    np.testing.assert_array_equal(causal(x, pos), causal.o_proj(plain))


def test_decode_needs_causal_attention():
    attn = Attention(CFG, rngs=nnx.Rngs(0), causal=False)
    with pytest.raises(ValueError, match="causal"):
        attn.decode(jnp.zeros((1, 1, CFG.d_model)), jnp.zeros((1, 1), jnp.int32), (), ())
