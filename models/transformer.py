"""Decoder-only causal Transformer LM in Flax NNX (pre-norm; RoPE or learned positions).

Shapes use nanodo-style suffixes: B batch, T sequence, D d_model, N heads, H head_dim,
F d_ff, V vocab, L layers.

Every parameter carries logical axis names (``out_sharding`` metadata set through
``nnx.with_partitioning``); a rule table elsewhere maps them to mesh axes. With
``scan_layers=True`` every block parameter gets a leading ``'layers'`` axis.

=============================  =============================  ==========================
parameter (path)               shape                          logical names
=============================  =============================  ==========================
embed.embedding                [V, D]                         ('vocab', 'embed')
pos_embed.embedding            [max_len, D]  (learned only)   (None, 'embed')
blocks.<i>.attn_norm.scale     [D]                            ('norm',)
blocks.<i>.attn_norm.bias      [D]      (layernorm+norm_bias)  ('norm',)
blocks.<i>.attn.q_proj.kernel  [D, N, H]  (also k_/v_proj)    ('embed', 'heads', 'head_dim')
blocks.<i>.attn.q_proj.bias    [N, H]        (use_bias)       ('heads', 'head_dim')
blocks.<i>.attn.q_norm.scale   [H]           (qk_norm)        ('norm',)  (also k_norm)
blocks.<i>.attn.o_proj.kernel  [N, H, D]                      ('heads', 'head_dim', 'embed')
blocks.<i>.attn.o_proj.bias    [D]           (use_bias)       ('embed',)
blocks.<i>.mlp_norm.scale      [D]           (not parallel)   ('norm',)
blocks.<i>.mlp.gate.kernel     [D, F]        (swiglu)         ('embed', 'mlp')
blocks.<i>.mlp.up.kernel       [D, F]                         ('embed', 'mlp')
blocks.<i>.mlp.up.bias         [F]           (use_bias)       ('mlp',)  (also gate)
blocks.<i>.mlp.down.kernel     [F, D]                         ('mlp', 'embed')
blocks.<i>.mlp.down.bias       [D]           (use_bias)       ('embed',)
final_norm.scale / .bias       [D]                            ('norm',)
unembed.kernel                 [D, V]        (untied only)    ('embed', 'vocab')
unembed.bias                   [V]           (untied+bias)    ('vocab',)
=============================  =============================  ==========================

With ``parallel_block=True`` the block has one shared ``norm`` instead of
``attn_norm``/``mlp_norm``. Unrolled blocks live under ``blocks.<i>`` (an ``nnx.List``);
scanned blocks live under ``blocks`` directly (one Block whose params are stacked
``[L, ...]`` with names ``('layers', ...)``).

The pieces live beside this file: models/layers.py (initializers, ScaledEinsum, RoPE,
MLP), models/attention.py (Attention) and models/kv_cache.py (the KV cache behind
``Transformer.init_cache``/``decode``, and its layout).

abc-parameterization hooks (Everett et al. 2024): every kernel has a layer type,
embedding (``embed``, ``pos_embed``), hidden (attention and MLP kernels) or readout
(``unembed``); ``cfg.<type>_multiplier`` scales its output (the parameter multiplier
n^-a) and ``cfg.<type>_init_std`` sets its init std (n^-b); norms are not scaled.

Activations, the residual stream included, are in ``cfg.dtype``; norm statistics, RoPE
and the attention softmax are computed in float32. Logits are float32: the final hidden
state and the unembedding matrix are both cast to float32 *before* the unembedding
matmul, so the softmax input never passes through bf16 (float64 models keep float64).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from models import kv_cache, moe
from models.attention import Attention
from models.layers import _dense, _logit_dtype, _norm, _normal, make_mlp
from models.partitioning import constrain

_CHOICES = {
    "norm": ("rmsnorm", "layernorm"),
    "position": ("rope", "learned"),
    "mlp": ("swiglu", "gelu"),
    "attention_impl": ("xla", "cudnn", "auto", "chunked"),
    "dtype": ("float32", "bfloat16", "float16", "float64"),
    "param_dtype": ("float32", "bfloat16", "float16", "float64"),
}


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Hyperparameters of the decoder-only Transformer."""

    vocab_size: int = 259
    d_model: int = 128
    num_layers: int = 2
    num_heads: int = 4
    head_dim: int = 0  # 0 -> d_model // num_heads
    d_ff: int = 512
    max_len: int = 256  # learned-position table size (bounds their sequences; RoPE's not)
    norm: str = "rmsnorm"  # 'rmsnorm' | 'layernorm' (pre-norm blocks, plus a final norm)
    norm_eps: float = 1e-6
    norm_bias: bool = True  # layernorm's bias (False: no biases anywhere, as in PaLM)
    position: str = "rope"  # 'rope' | 'learned'
    rope_base: float = 10000.0
    use_bias: bool = False  # biases in all dense layers (layernorm always has a bias)
    mlp: str = "swiglu"  # 'swiglu' | 'gelu'
    tie_embeddings: bool = True
    dropout: float = 0.0  # embedding dropout + residual dropout after attention and MLP
    # jax.nn.dot_product_attention's implementation ('auto' -> None), or 'chunked': blocks
    # of attention_chunk queries and keys with an online softmax (models/attention.py),
    # for sequences whose [T, T] scores would not fit.
    attention_impl: str = "xla"
    attention_chunk: int = 512
    scan_layers: bool = False
    remat: bool = False  # rematerialize each block in the backward pass
    qk_norm: bool = False  # per-head norm of q and k over head_dim (Wortsman et al. 2023)
    parallel_block: bool = False  # x + attn(norm(x)) + mlp(norm(x)) (GPT-J / PaLM)
    dtype: str = "float32"  # compute dtype
    param_dtype: str = "float32"
    init_std: float = 0.02  # normal init std; output projections get 1/sqrt(2*num_layers)
    # abc-parameterization hooks (Everett et al. 2024; optim/parameterization.py derives
    # them from (a, b) and the width): a layer type's effective weight is multiplier * w
    # with w ~ N(0, std^2). Types: embedding (token and position tables), hidden (q, k,
    # v, o and MLP kernels), readout (unembedding). std 0 keeps the init_std default.
    embedding_multiplier: float = 1.0
    hidden_multiplier: float = 1.0
    readout_multiplier: float = 1.0
    embedding_init_std: float = 0.0
    hidden_init_std: float = 0.0
    readout_init_std: float = 0.0
    # Sparse mixture-of-experts feed-forward (models/moe.py) in every moe_every-th layer
    # (layers moe_every-1, 2*moe_every-1, ...); moe_experts 0: dense everywhere.
    moe_experts: int = 0
    moe_every: int = 2
    moe_top_k: int = 1
    moe_d_ff: int = 0  # each expert's hidden width (0: d_ff)
    moe_capacity_factor: float = 1.25  # training
    moe_eval_capacity_factor: float = 2.0  # evaluation and decoding
    moe_min_capacity: int = 4
    moe_renormalize: bool = False  # Mixtral: softmax over the chosen experts' logits
    moe_dispatch: str = "gather"  # gather | einsum | dense (models/moe.py)

    def __post_init__(self):
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ValueError(
                    f"TransformerConfig.{name}={value!r} is invalid; choose one of {choices}."
                )
        for name in ("vocab_size", "d_model", "num_layers", "num_heads", "d_ff", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"TransformerConfig.{name}={getattr(self, name)!r} is invalid; "
                    "it must be a positive integer."
                )
        if self.head_dim < 0:
            raise ValueError(
                f"TransformerConfig.head_dim={self.head_dim!r} is invalid; "
                "use a positive integer, or 0 for d_model // num_heads."
            )
        if self.head_dim == 0 and self.d_model % self.num_heads:
            raise ValueError(
                f"TransformerConfig.d_model={self.d_model} is not divisible by "
                f"num_heads={self.num_heads}; change one or set head_dim explicitly."
            )
        if self.position == "rope" and self.resolved_head_dim % 2:
            raise ValueError(
                f"TransformerConfig.head_dim={self.resolved_head_dim} is odd; "
                "position='rope' needs an even head_dim."
            )
        if self.attention_impl == "cudnn" and self.dtype == "float32":
            raise ValueError(
                "TransformerConfig.attention_impl='cudnn' needs dtype 'bfloat16' or 'float16', "
                "not 'float32'; change dtype or use attention_impl='xla'."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(
                f"TransformerConfig.dropout={self.dropout!r} is invalid; it must be in [0, 1)."
            )
        if self.tie_embeddings and (self.readout_multiplier != 1.0 or self.readout_init_std):
            raise ValueError(
                "TransformerConfig: readout_multiplier/readout_init_std need untied embeddings "
                "(tie_embeddings=False); a tied table is initialized as the embedding."
            )
        for name in ("norm_eps", "rope_base", "init_std"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"TransformerConfig.{name}={getattr(self, name)!r} is invalid; "
                    "it must be positive."
                )

        if self.moe_experts:
            if not 1 <= self.moe_top_k <= self.moe_experts or self.moe_every < 1:
                raise ValueError(
                    f"TransformerConfig: moe_top_k={self.moe_top_k} must be in [1, "
                    f"moe_experts={self.moe_experts}] and moe_every={self.moe_every} >= 1."
                )
            if self.scan_layers and self.moe_every != 1:
                raise ValueError(
                    "TransformerConfig: scan_layers needs identical layers; set moe_every=1 "
                    "(MoE in every layer) or scan_layers=False."
                )

    def is_moe_layer(self, i: int) -> bool:
        """Whether layer i (0-based) has the MoE feed-forward."""
        return bool(self.moe_experts) and (i + 1) % self.moe_every == 0

    @property
    def num_moe_layers(self) -> int:
        """How many layers have the MoE feed-forward."""
        return sum(self.is_moe_layer(i) for i in range(self.num_layers))

    @property
    def resolved_head_dim(self) -> int:
        """head_dim, with 0 resolved to d_model // num_heads."""
        return self.head_dim or self.d_model // self.num_heads


# ----------------------------------------------------------------------------- model


class Block(nnx.Module):
    """Pre-norm Transformer block, sequential or parallel (GPT-J/PaLM) form."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs, layer: int = 0):
        self.parallel = cfg.parallel_block
        self.moe = cfg.is_moe_layer(layer)
        self.moe_keys = moe.OUTPUTS if cfg.moe_experts else ()
        self.experts = cfg.moe_experts
        if self.parallel:
            self.norm = _norm(cfg, cfg.d_model, rngs=rngs)
        else:
            self.attn_norm = _norm(cfg, cfg.d_model, rngs=rngs)
            self.mlp_norm = _norm(cfg, cfg.d_model, rngs=rngs)
        self.attn = Attention(cfg, rngs=rngs)
        self.mlp = make_mlp(cfg, rngs=rngs, moe_layer=self.moe)
        self.dropout = nnx.Dropout(cfg.dropout)  # holds no rng state

    def _ffn(
        self, h_BTD: jax.Array, deterministic: bool, valid_BT: jax.Array | None = None
    ) -> tuple[jax.Array, dict]:
        """The feed-forward and, in a model with MoE layers, its outputs (zeros in a
        dense layer, so that every layer returns the same keys); `valid_BT` keeps padding
        out of the MoE routing."""
        if self.moe:
            return self.mlp(h_BTD, deterministic=deterministic, valid_BT=valid_BT)
        zeros = {k: jnp.zeros((), jnp.float32) for k in self.moe_keys}
        if self.experts:
            zeros[moe.LOAD] = jnp.zeros((self.experts,), jnp.float32)
        return self.mlp(h_BTD), zeros

    def __call__(
        self,
        x_BTD: jax.Array,
        positions_BT: jax.Array,
        *,
        deterministic: bool = True,
        key: jax.Array | None = None,
        probe: bool = False,
        segment_ids_BT: jax.Array | None = None,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Returns (the updated residual stream [B,T,D], probes); key seeds residual dropout;
        segment_ids_BT keeps attention within packed examples.

        probes is {} or, with probe=True, {'attn_logit_max': scalar}; in a model with MoE
        layers it also holds moe.OUTPUTS (aux losses and routing metrics)."""
        key_attn = key_mlp = None
        if key is not None:
            key_attn, key_mlp = jax.random.split(key)
        drop = lambda y, k: self.dropout(y, deterministic=deterministic, rngs=k)
        h_BTD = self.norm(x_BTD) if self.parallel else self.attn_norm(x_BTD)
        attn = self.attn(h_BTD, positions_BT, probe=probe, segment_ids_BT=segment_ids_BT)
        attn_BTD, probes = (attn[0], {"attn_logit_max": attn[1]}) if probe else (attn, {})
        attn_BTD = drop(attn_BTD, key_attn)
        if self.parallel:
            mlp_BTD, moe_out = self._ffn(h_BTD, deterministic)
            return x_BTD + attn_BTD + drop(mlp_BTD, key_mlp), {**probes, **moe_out}
        x_BTD = x_BTD + attn_BTD
        mlp_BTD, moe_out = self._ffn(self.mlp_norm(x_BTD), deterministic)
        return x_BTD + drop(mlp_BTD, key_mlp), {**probes, **moe_out}

    def decode(
        self, x_BTD: jax.Array, positions_BT: jax.Array, kv: Any, key_positions: Any
    ) -> tuple[jax.Array, Any]:
        """Deterministic forward through this layer's KV cache (see Attention.decode);
        padding (negative positions) takes no MoE capacity."""
        h_BTD = self.norm(x_BTD) if self.parallel else self.attn_norm(x_BTD)
        attn_BTD, kv = self.attn.decode(h_BTD, positions_BT, kv, key_positions)
        valid_BT = positions_BT >= 0
        if self.parallel:
            return x_BTD + attn_BTD + self._ffn(h_BTD, True, valid_BT)[0], kv
        x_BTD = x_BTD + attn_BTD
        return x_BTD + self._ffn(self.mlp_norm(x_BTD), True, valid_BT)[0], kv


def _run_block(
    block: Block,
    x_BTD: jax.Array,
    positions_BT: jax.Array,
    key: jax.Array | None,
    det: bool,
    probe: bool,
    segment_ids_BT: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Applies one block (a free function so that nnx.remat/nnx.scan can wrap it)."""
    x_BTD, probes = block(
        constrain(x_BTD),
        positions_BT,
        deterministic=det,
        key=key,
        probe=probe,
        segment_ids_BT=segment_ids_BT,
    )
    return constrain(x_BTD), probes


class Transformer(nnx.Module):
    """Decoder-only causal language model returning float32 logits."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        dtype, param_dtype = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
        self.embed = nnx.Embed(
            cfg.vocab_size,
            cfg.d_model,
            dtype=dtype,
            param_dtype=param_dtype,
            embedding_init=_normal(cfg.embedding_init_std or cfg.init_std, ("vocab", "embed")),
            rngs=rngs,
        )
        if cfg.position == "learned":
            self.pos_embed = nnx.Embed(
                cfg.max_len,
                cfg.d_model,
                dtype=dtype,
                param_dtype=param_dtype,
                embedding_init=_normal(cfg.embedding_init_std or cfg.init_std, (None, "embed")),
                rngs=rngs,
            )
        if cfg.scan_layers:
            self.blocks = self._stacked_blocks(cfg, rngs)
        else:
            self.blocks = nnx.List([Block(cfg, rngs=rngs, layer=i) for i in range(cfg.num_layers)])
        self.final_norm = _norm(cfg, cfg.d_model, rngs=rngs)
        if not cfg.tie_embeddings:
            self.unembed = _dense(
                cfg,
                "BTD,DV->BTV",
                (cfg.d_model, cfg.vocab_size),
                ("embed", "vocab"),
                ("vocab",),
                std=cfg.readout_init_std or cfg.init_std,
                rngs=rngs,
                dtype=_logit_dtype(cfg),  # logits in float32 (float64 for float64 models)
                multiplier=cfg.readout_multiplier,
            )
        self.embed_dropout = nnx.Dropout(cfg.dropout)

    @staticmethod
    def _stacked_blocks(cfg: TransformerConfig, rngs: nnx.Rngs) -> Block:
        """Creates num_layers blocks as one Block with params stacked on a 'layers' axis."""

        @nnx.split_rngs(splits=cfg.num_layers)
        @nnx.vmap(in_axes=0, out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
        def create(rngs: nnx.Rngs) -> Block:
            return Block(cfg, rngs=rngs)

        return create(rngs)

    def __call__(
        self,
        tokens_BT: jax.Array,
        *,
        return_probes: bool = False,
        return_aux: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Maps int tokens [B,T] to float32 next-token logits [B,T,V]; kwargs are
        `encode`'s (positions_BT, segment_ids_BT for packed examples, deterministic, rngs).

        return_probes: return (logits, out) with out['attn_logit_max'] of shape [L], each
        layer's largest attention logit (max_attention_logit). return_aux: return (logits,
        out) with out['aux'] = {name: scalar}: the auxiliary losses and metrics of the
        model's layers, averaged over the layers that have them (the MoE layers' moe.OUTPUTS;
        {} for a dense model): the task weights the losses (config.loss.aux); and in a
        model with MoE layers out['moe_load'] [L, E], each layer's expert loads (zeros in
        dense layers)."""
        hidden_BTD, out = self.encode(tokens_BT, return_probes=return_probes, **kwargs)
        logits_BTV = self.unembed_logits(hidden_BTD)
        if return_aux:
            n = max(1, self.cfg.num_moe_layers)  # dense layers contributed zeros
            aux = {k: out.pop(k).sum() / n for k in list(out) if k in moe.OUTPUTS}
            out = {**out, "aux": aux}
        return (logits_BTV, out) if (return_probes or return_aux) else logits_BTV

    def encode(
        self,
        tokens_BT: jax.Array,
        *,
        positions_BT: jax.Array | None = None,
        segment_ids_BT: jax.Array | None = None,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
        return_probes: bool = False,
        return_blocks: bool = False,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """(the final normed hidden state [B,T,D], intermediates): what heads read.

        Several examples packed in a row: segment_ids_BT (int [B,T]) keeps attention
        within each, and positions_BT restarts at 0 at each one's first token.

        intermediates: 'attn_logit_max' [L] with return_probes; 'blocks' [L,B,T,D], each
        block's output (the residual stream after it), with return_blocks."""
        cfg = self.cfg
        B, T = tokens_BT.shape
        if cfg.position == "learned" and cfg.max_len < T:  # RoPE extrapolates
            raise ValueError(
                f"Sequence length {T} exceeds TransformerConfig.max_len={cfg.max_len}, the "
                "learned position table's size; raise max_len or shorten the inputs."
            )
        if positions_BT is None:
            positions_BT = jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (B, T))
        use_dropout = cfg.dropout > 0.0 and not deterministic
        if use_dropout and rngs is None:
            raise ValueError("Transformer: deterministic=False with dropout>0 needs rngs.")
        key_emb = keys_L = None
        if use_dropout:
            key_emb, key_layers = jax.random.split(rngs.dropout())
            keys_L = jax.random.split(key_layers, cfg.num_layers)

        x_BTD = self.embed_tokens(tokens_BT, positions_BT)
        x_BTD = self.embed_dropout(x_BTD, deterministic=deterministic, rngs=key_emb)

        def block_fn(block: Block, x: jax.Array, key: jax.Array | None) -> Any:
            x, out = _run_block(
                block, x, positions_BT, key, deterministic, return_probes, segment_ids_BT
            )
            return x, ({**out, "blocks": x} if return_blocks else out)

        if cfg.remat:
            block_fn = nnx.remat(block_fn)
        if cfg.scan_layers:
            x_BTD, out = self._scan_blocks(block_fn, x_BTD, keys_L)
        else:
            per_layer = []
            for i, block in enumerate(self.blocks):
                x_BTD, o = block_fn(block, x_BTD, None if keys_L is None else keys_L[i])
                per_layer.append(o)
            out = jax.tree.map(lambda *xs: jnp.stack(xs), *per_layer)
        return self.final_norm(x_BTD), out

    def _scan_blocks(
        self, block_fn: Any, x_BTD: jax.Array, keys_L: jax.Array | None
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Runs the stacked blocks with nnx.scan, carrying the residual stream; probes [L]."""
        key_axis = None if keys_L is None else 0

        @nnx.scan(
            in_axes=(nnx.Carry, 0, key_axis),
            out_axes=(nnx.Carry, 0),
            transform_metadata={nnx.PARTITION_NAME: "layers"},
        )
        def body(x_BTD: jax.Array, block: Block, key: jax.Array | None) -> Any:
            return block_fn(block, x_BTD, key)

        return body(x_BTD, self.blocks, keys_L)

    def init_cache(self, batch: int, max_len: int, dtype: Any = None) -> dict[str, jax.Array]:
        """An empty KV cache with `max_len` slots per row (models/kv_cache.py)."""
        return kv_cache.init_cache(self, batch, max_len, dtype)

    def decode(
        self, tokens_BT: jax.Array, positions_BT: jax.Array, cache: Any, *, last_only: bool = False
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Runs T new tokens through the KV cache; returns (float32 logits, extended cache).

        Tokens fill slots [index, index+T). A query at position p attends to its row's slots
        holding positions 0..p; negative positions mark padding (stored, never attended to).
        Prefill: one call on the left-padded prompt, then one per token; last_only: [B,1,V].
        Implemented in models/kv_cache.py."""
        return kv_cache.decode(self, tokens_BT, positions_BT, cache, last_only=last_only)

    def embed_tokens(self, tokens_BT: jax.Array, positions_BT: jax.Array) -> jax.Array:
        """Token (+ learned position) embeddings [B,T,D], times the embedding multiplier."""
        x_BTD = self.embed(tokens_BT)
        if self.cfg.position == "learned":
            x_BTD = x_BTD + self.pos_embed(positions_BT)
        m = self.cfg.embedding_multiplier
        return x_BTD if m == 1.0 else x_BTD * jnp.asarray(m, x_BTD.dtype)

    def unembed_logits(self, x_BTD: jax.Array) -> jax.Array:
        """Float32 logits [B,T,V]: casts activations and weights to f32 before the matmul."""
        x_BTD = x_BTD.astype(_logit_dtype(self.cfg))
        if self.cfg.tie_embeddings:
            embedding_VD = self.embed.embedding[...].astype(x_BTD.dtype)
            return jnp.einsum("BTD,VD->BTV", x_BTD, embedding_VD)
        return self.unembed(x_BTD)


# ----------------------------------------------------------------------------- accounting


def _layer_matmul_params(cfg: TransformerConfig, layer: int = 0, active: bool = False) -> int:
    """Matmul weights of block `layer`: q, k, v, o projections plus the MLP matrices (an MoE
    layer: its router and all E experts, or with `active` the k experts a token uses)."""
    D, NH, F = cfg.d_model, cfg.num_heads * cfg.resolved_head_dim, cfg.d_ff
    matrices = 3 if cfg.mlp == "swiglu" else 2
    if not cfg.is_moe_layer(layer):
        return 4 * D * NH + matrices * D * F
    experts = cfg.moe_top_k if active else cfg.moe_experts
    return 4 * D * NH + D * cfg.moe_experts + experts * matrices * D * (cfg.moe_d_ff or F)


def _matmul_params(cfg: TransformerConfig, active: bool = False) -> int:
    """Matmul weights of all blocks (see _layer_matmul_params)."""
    return sum(_layer_matmul_params(cfg, i, active) for i in range(cfg.num_layers))


def param_count(cfg: TransformerConfig) -> dict[str, int]:
    """Parameter counts by formula: 'total', 'embedding', 'non_embedding' and 'active'
    (what one token uses: an MoE layer's k experts instead of all E)."""
    D, V, H = cfg.d_model, cfg.vocab_size, cfg.resolved_head_dim
    NH, F = cfg.num_heads * H, cfg.d_ff
    norm_params = lambda size: size * (2 if cfg.norm == "layernorm" and cfg.norm_bias else 1)

    embedding = V * D
    if cfg.position == "learned":
        embedding += cfg.max_len * D
    if not cfg.tie_embeddings:
        embedding += D * V + (V if cfg.use_bias else 0)

    layer = norm_params(D) * (1 if cfg.parallel_block else 2)
    if cfg.qk_norm:
        layer += 2 * norm_params(H)
    if cfg.use_bias:
        layer += 3 * NH + D  # q, k, v, o biases
    rest = cfg.num_layers * layer + norm_params(D)  # + final norm
    if cfg.use_bias:  # gate/up and down biases of the dense MLPs (MoE experts have none)
        dense_layers = cfg.num_layers - cfg.num_moe_layers
        rest += dense_layers * ((2 if cfg.mlp == "swiglu" else 1) * F + D)
    non_embedding = _matmul_params(cfg) + rest
    return {
        "total": embedding + non_embedding,
        "embedding": embedding,
        "non_embedding": non_embedding,
        "active": embedding + _matmul_params(cfg, active=True) + rest,
    }


def train_flops_per_token(cfg: TransformerConfig, seq_len: int) -> float:
    """Training FLOPs per token, PaLM appendix B: 6*N_matmul + 12*L*T*(N*H).

    N_matmul counts the weights of every matmul: per block the q/k/v/o projections and
    the MLP matrices, plus the unembedding matrix V*D (counted whether tied or not).
    Norms, biases, the embedding lookup and learned positions are excluded; an MoE layer
    counts its router and the k experts a token uses (active FLOPs). The second
    term is the attention score and value matmuls (QK^T and AV), forward + backward,
    counted over the full (non-causally-masked) T x T square as in PaLM.
    """
    n_matmul = _matmul_params(cfg, active=True) + cfg.vocab_size * cfg.d_model
    attn = 12 * cfg.num_layers * seq_len * cfg.num_heads * cfg.resolved_head_dim
    return float(6 * n_matmul + attn)
