"""Multi-head self-attention of models/transformer.py: the Attention module (training
path and its KV-cache `decode` step), the attention core `attend` and the
`max_attention_logit` instability probe.

Attention is causal by default (the LM); `Attention(cfg, causal=False)` with a key mask
gives the bidirectional, key-padding-masked attention of an encoder (e.g. a ViT). Shapes:
B batch, T queries, S keys, D d_model, N heads, H head_dim.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from flax import nnx

from models.layers import _dense, _hidden_std, _norm, _out_std, apply_rope

if TYPE_CHECKING:
    from models.transformer import TransformerConfig


def key_mask(
    key_mask_BS: jax.Array | None = None, segment_ids_BT: jax.Array | None = None
) -> jax.Array | None:
    """bool [B,1,T,S]: the keys each query may see besides causality (unmasked keys of its
    own segment), or None when every key may be seen."""
    mask_B1TS = None
    if key_mask_BS is not None:
        mask_B1TS = key_mask_BS[:, None, None, :].astype(bool)
    if segment_ids_BT is not None:  # packed examples: a block-diagonal mask
        same_B1TS = (segment_ids_BT[:, :, None] == segment_ids_BT[:, None, :])[:, None]
        mask_B1TS = same_B1TS if mask_B1TS is None else mask_B1TS & same_B1TS
    return mask_B1TS


def attend(
    q_BTNH: jax.Array,
    k_BSNH: jax.Array,
    v_BSNH: jax.Array,
    *,
    causal: bool = True,
    key_mask_BS: jax.Array | None = None,
    segment_ids_BT: jax.Array | None = None,
    implementation: str | None = None,
) -> jax.Array:
    """Scaled dot-product attention of queries over keys and values; returns [B,T,N,H].

    causal: query t sees keys 0..t only (T == S). key_mask_BS: bool [B,S], False keys get
    zero weight (a query with no unmasked key gets an arbitrary finite mix).
    segment_ids_BT: int [B,T] (T == S), a query sees only keys of its own segment (several
    examples packed in one row). The softmax is in float32; implementation:
    jax.nn.dot_product_attention's ('xla', 'cudnn', None).
    """
    return jax.nn.dot_product_attention(
        q_BTNH,
        k_BSNH,
        v_BSNH,
        mask=key_mask(key_mask_BS, segment_ids_BT),
        is_causal=causal,
        implementation=implementation,
    )


def chunked_attend(
    q_BTNH: jax.Array,
    k_BSNH: jax.Array,
    v_BSNH: jax.Array,
    *,
    chunk: int,
    causal: bool = True,
    key_mask_BS: jax.Array | None = None,
    segment_ids_BT: jax.Array | None = None,
    positions: tuple[jax.Array, jax.Array] | None = None,
) -> jax.Array:
    """`attend` without the [T, S] score matrix: query blocks of `chunk` rows (lax.map)
    each scan the key blocks with an online softmax (running max and denominator, in
    float32, as flash attention does), the block rematerialised in the backward pass, so
    memory grows as T * chunk rather than T * S. Equal to `attend` up to float rounding;
    T and S are padded to multiples of `chunk` (padding keys masked).

    positions: (q_pos_BT, k_pos_BS) instead of causal: a query at position p sees the
    keys at positions 0..p (negative positions are padding), as the KV-cache prefill
    masks its slots (models/kv_cache.py)."""
    B, T, N, H = q_BTNH.shape
    S = k_BSNH.shape[1]
    Tp, Sp = -(-T // chunk) * chunk, -(-S // chunk) * chunk
    pad = lambda x, n: jnp.pad(x, [(0, 0), (0, n - x.shape[1])] + [(0, 0)] * (x.ndim - 2))
    q, k, v = pad(q_BTNH, Tp), pad(k_BSNH, Sp), pad(v_BSNH, Sp)
    valid_BS = pad(jnp.ones((B, S), bool) if key_mask_BS is None else key_mask_BS.astype(bool), Sp)
    seg_q = seg_k = None
    if segment_ids_BT is not None:
        seg_q, seg_k = pad(segment_ids_BT, Tp), pad(segment_ids_BT, Sp)
    pos_q = pos_k = None
    if positions is not None:
        pos_q, pos_k = pad(positions[0], Tp), pad(positions[1], Sp)
    scale, f32 = H**-0.5, jnp.float32
    blocks = lambda x, n: x.reshape(B, n // chunk, chunk, *x.shape[2:]).swapaxes(0, 1)
    k_KBCNH, v_KBCNH, valid_KBC = blocks(k, Sp), blocks(v, Sp), blocks(valid_BS, Sp)
    seg_k_KBC = None if seg_k is None else blocks(seg_k, Sp)
    pos_k_KBC = None if pos_k is None else blocks(pos_k, Sp)

    def one_query_block(args):
        qi, q_BCNH, seg_q_BC, pos_q_BC = args

        @jax.checkpoint
        def step(carry, key_block):
            m_BNC, l_BNC, acc_BNCH = carry
            kj, k_BDNH, v_BDNH, valid_BD, seg_k_BD, pos_k_BD = key_block
            s_BNCD = jnp.einsum("BCNH,BDNH->BNCD", q_BCNH, k_BDNH, preferred_element_type=f32)
            keep = valid_BD[:, None, None, :]
            if causal:
                rows, cols = qi * chunk + jnp.arange(chunk), kj * chunk + jnp.arange(chunk)
                keep = keep & (rows[:, None] >= cols[None, :])[None, None]
            if seg_k_BD is not None:
                keep = keep & (seg_q_BC[:, None, :, None] == seg_k_BD[:, None, None, :])
            if pos_k_BD is not None:
                k_pos = pos_k_BD[:, None, None, :]
                keep = keep & (k_pos >= 0) & (k_pos <= pos_q_BC[:, None, :, None])
            s_BNCD = jnp.where(keep, s_BNCD * scale, -jnp.inf)
            m_new = jnp.maximum(m_BNC, s_BNCD.max(-1))
            safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
            p_BNCD = jnp.exp(s_BNCD - safe[..., None])
            correction = jnp.exp(jnp.where(jnp.isfinite(m_BNC), m_BNC - safe, -jnp.inf))
            l_new = l_BNC * correction + p_BNCD.sum(-1)
            pv = jnp.einsum("BNCD,BDNH->BNCH", p_BNCD.astype(v_BDNH.dtype), v_BDNH)
            acc_new = acc_BNCH * correction[..., None] + pv.astype(f32)
            return (m_new, l_new, acc_new), None

        init = (
            jnp.full((B, N, chunk), -jnp.inf, f32),
            jnp.zeros((B, N, chunk), f32),
            jnp.zeros((B, N, chunk, H), f32),
        )
        key_blocks = (jnp.arange(Sp // chunk), k_KBCNH, v_KBCNH, valid_KBC, seg_k_KBC, pos_k_KBC)
        (_, l_BNC, acc_BNCH), _ = jax.lax.scan(step, init, key_blocks)
        out_BNCH = acc_BNCH / jnp.maximum(l_BNC, 1e-30)[..., None]
        return out_BNCH.transpose(0, 2, 1, 3).astype(q_BTNH.dtype)

    seg_q_QBC = None if seg_q is None else blocks(seg_q, Tp)
    pos_q_QBC = None if pos_q is None else blocks(pos_q, Tp)
    query_blocks = (jnp.arange(Tp // chunk), blocks(q, Tp), seg_q_QBC, pos_q_QBC)
    out_QBCNH = jax.lax.map(one_query_block, query_blocks)
    return out_QBCNH.swapaxes(0, 1).reshape(B, Tp, N, H)[:, :T]


def max_attention_logit(
    q_BTNH: jax.Array,
    k_BSNH: jax.Array,
    *,
    causal: bool = True,
    key_mask_BS: jax.Array | None = None,
    segment_ids_BT: jax.Array | None = None,
) -> jax.Array:
    """Largest attention logit q.k/sqrt(H) over batch, heads and attended positions.

    The instability probe of Wortsman et al. (2023, Sec. 3.1.1): without qk-norm these
    logits grow at high learning rates until the softmax saturates. Recomputes the
    scores (the fused attention call does not return them); no gradient flows. Counts
    the keys `attend` would weigh with the same causal/key_mask_BS/segment_ids_BT."""
    H, T, S = q_BTNH.shape[-1], q_BTNH.shape[1], k_BSNH.shape[1]
    s_BNTS = jnp.einsum("BTNH,BSNH->BNTS", q_BTNH, k_BSNH, preferred_element_type=jnp.float32)
    keep_TS = jnp.tril(jnp.ones((T, S), bool)) if causal else jnp.ones((T, S), bool)
    mask_B1TS = key_mask(key_mask_BS, segment_ids_BT)
    if mask_B1TS is not None:
        keep_TS = keep_TS & mask_B1TS  # -> [B,1,T,S]
    return jax.lax.stop_gradient(jnp.max(jnp.where(keep_TS, s_BNTS, -jnp.inf)) * H**-0.5)


class Attention(nnx.Module):
    """Multi-head self-attention, causal unless causal=False (optional RoPE and QK-norm)."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs, causal: bool = True):
        D, N, H = cfg.d_model, cfg.num_heads, cfg.resolved_head_dim
        self.cfg = cfg
        self.causal = causal
        in_names, head_names = ("embed", "heads", "head_dim"), ("heads", "head_dim")
        dense = functools.partial(_dense, cfg, rngs=rngs, multiplier=cfg.hidden_multiplier)
        in_proj = lambda: dense(
            "BTD,DNH->BTNH", (D, N, H), in_names, head_names, std=_hidden_std(cfg)
        )
        self.q_proj, self.k_proj, self.v_proj = in_proj(), in_proj(), in_proj()
        out_names = ("heads", "head_dim", "embed")
        self.o_proj = dense("BTNH,NHD->BTD", (N, H, D), out_names, ("embed",), std=_out_std(cfg))
        if cfg.qk_norm:
            self.q_norm = _norm(cfg, H, rngs=rngs)
            self.k_norm = _norm(cfg, H, rngs=rngs)

    def _qkv(self, x_BTD: jax.Array, positions_BT: jax.Array) -> tuple[jax.Array, ...]:
        """Queries, keys and values [B,T,N,H] (QK-normed and rotated as configured)."""
        q_BTNH, k_BTNH, v_BTNH = self.q_proj(x_BTD), self.k_proj(x_BTD), self.v_proj(x_BTD)
        if self.cfg.qk_norm:
            q_BTNH, k_BTNH = self.q_norm(q_BTNH), self.k_norm(k_BTNH)
        if self.cfg.position == "rope":
            q_BTNH = apply_rope(q_BTNH, positions_BT, self.cfg.rope_base)
            k_BTNH = apply_rope(k_BTNH, positions_BT, self.cfg.rope_base)
        return q_BTNH, k_BTNH, v_BTNH

    def __call__(
        self,
        x_BTD: jax.Array,
        positions_BT: jax.Array,
        probe: bool = False,
        *,
        key_mask_BS: jax.Array | None = None,
        segment_ids_BT: jax.Array | None = None,
    ) -> Any:
        """Attends over the sequence (causally unless causal=False); returns the
        out-projection [B,T,D].

        key_mask_BS: optional bool [B,T], False marks padding keys (given zero weight).
        segment_ids_BT: optional int [B,T]: attention stays within each segment.
        probe: also return the largest attention logit (see max_attention_logit)."""
        q_BTNH, k_BTNH, v_BTNH = self._qkv(x_BTD, positions_BT)
        impl = None if self.cfg.attention_impl == "auto" else self.cfg.attention_impl
        mask = dict(causal=self.causal, key_mask_BS=key_mask_BS, segment_ids_BT=segment_ids_BT)
        if impl == "chunked":  # long sequences: no [T, T] scores (chunked_attend)
            chunk = min(self.cfg.attention_chunk, x_BTD.shape[1])
            out_BTNH = chunked_attend(q_BTNH, k_BTNH, v_BTNH, chunk=chunk, **mask)
        else:
            out_BTNH = attend(q_BTNH, k_BTNH, v_BTNH, **mask, implementation=impl)
        out_BTD = self.o_proj(out_BTNH)
        if not probe:
            return out_BTD
        return out_BTD, max_attention_logit(q_BTNH, k_BTNH, **mask)

    def decode(
        self, x_BTD: jax.Array, positions_BT: jax.Array, kv: Any, key_positions: Any
    ) -> tuple[jax.Array, Any]:
        """Attends over the layer cache kv=(k_BNSH, v_BNSH) plus the T new tokens.

        key_positions: (cache_pos_BS, new_pos_BT), the positions the cache slots and the
        new tokens hold (negative: padding): a new token at position p sees the keys at
        0..p. Reads kv only; returns the new (k_BNTH, v_BNTH). With
        attention_impl='chunked' a prompt pass longer than attention_chunk runs as
        chunked_attend (no [T, S + T] scores)."""
        if not self.causal:
            raise ValueError("Attention.decode needs a causal Attention (causal=True).")
        q_BTNH, k_BTNH, v_BTNH = self._qkv(x_BTD, jnp.maximum(positions_BT, 0))
        dt, f32, scale = q_BTNH.dtype, jnp.float32, q_BTNH.shape[-1] ** -0.5
        k_BNSH, v_BNSH = (c.astype(dt) for c in kv)
        new_kv = (k_BTNH.transpose(0, 2, 1, 3), v_BTNH.transpose(0, 2, 1, 3))
        cache_pos_BS, new_pos_BT = key_positions
        new_tokens, chunk = q_BTNH.shape[1], self.cfg.attention_chunk
        if self.cfg.attention_impl == "chunked" and new_tokens > chunk:
            keys = jnp.concatenate([k_BNSH.transpose(0, 2, 1, 3), k_BTNH], axis=1)
            values = jnp.concatenate([v_BNSH.transpose(0, 2, 1, 3), v_BTNH], axis=1)
            k_pos_BX = jnp.concatenate([cache_pos_BS, new_pos_BT], axis=1)
            out_BTNH = chunked_attend(
                q_BTNH, keys, values, chunk=chunk, causal=False, positions=(new_pos_BT, k_pos_BX)
            )
            return self.o_proj(out_BTNH), new_kv
        q_pos_B1T1 = new_pos_BT[:, None, :, None]
        key_pos = (cache_pos_BS[:, None, None, :], new_pos_BT[:, None, None, :])
        masks = [(p >= 0) & (p <= q_pos_B1T1) for p in key_pos]  # [B,1,T,S], [B,1,T,T]
        s_BNTS = jnp.einsum("BTNH,BNSH->BNTS", q_BTNH, k_BNSH, preferred_element_type=f32)
        s_BNTU = jnp.einsum("BTNH,BUNH->BNTU", q_BTNH, k_BTNH, preferred_element_type=f32)
        s_BNTX = jnp.concatenate(
            [jnp.where(m, s * scale, -1e30) for m, s in zip(masks, (s_BNTS, s_BNTU))], axis=-1
        )
        p_BNTX = jax.nn.softmax(s_BNTX, axis=-1).astype(dt)
        S = k_BNSH.shape[2]
        out_BTNH = jnp.einsum("BNTS,BNSH->BTNH", p_BNTX[..., :S], v_BNSH)
        out_BTNH += jnp.einsum("BNTU,BUNH->BTNH", p_BNTX[..., S:], v_BTNH)
        return self.o_proj(out_BTNH), new_kv
