"""Vision Transformers: a ViT over grid patches (DeiT shapes) and SuiT's superpixel
tokenizer (Jang et al. 2024, "Superpixel Tokenization for Vision Transformers").

Both share the encoder: pre-norm blocks (LayerNorm eps 1e-6, qkv and MLP biases, GELU)
of bidirectional attention with a key-padding mask (models/attention.py), stochastic
depth (drop-path, rates rising linearly over the blocks), a CLS token and a linear head
on its final LayerNormed state.

Tokenizers (`ViTConfig.tokenizer`):
  patch  grid patches by a linear map of each p x p patch + a learned position table
         (DeiT). Tokens: (H/p)(W/p).
  suit   SuiT: a 7x7 replicate-padded conv stem (stride `downsample`) + BatchNorm + GELU
         gives pixel features; trainable Fourier features of the (x, y) coordinates in
         [0, 1] are concatenated; a 1x1 conv maps them to D/2; each segment of a label map
         (superpixels, or the square grid) becomes one token: [max, mean] of its pixels'
         features (D). Empty segments give zero tokens masked as keys (the CLS token never
         is); no position embedding follows the pooling, so the model is invariant to
         relabelling segments and to extra empty slots, and the number of segments K is a
         call argument (fewer superpixels at inference need no retraining).

Shapes: B batch, H/W image, C channels, K segments, T tokens (K + 1), D d_model.
BatchNorm's statistics are nnx.BatchStat (model state, framework/variables.py).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from models.attention import Attention
from models.layers import MLP, _norm, _normal, _zeros
from models.transformer import TransformerConfig

TOKENIZERS = ("patch", "suit")


@dataclasses.dataclass(frozen=True)
class ViTConfig:
    """A ViT or SuiT classifier; DeiT-Ti is d_model 192, 12 layers, 3 heads, mlp 4."""

    image_size: int = 32
    channels: int = 3
    num_classes: int = 10
    tokenizer: str = "patch"  # patch | suit
    patch_size: int = 4  # patch: the grid's patch side
    d_model: int = 128
    num_layers: int = 4
    num_heads: int = 4
    mlp_ratio: int = 4
    drop_path: float = 0.0  # the last block's rate (linear from 0)
    # suit: stem width (0 = d_model / 4), its stride, kernel, the Fourier features' init std
    base_dim: int = 0
    downsample: int = 1
    stem_kernel: int = 7
    fourier_sigma: float = 10.0
    init_std: float = 0.02
    dtype: str = "float32"

    def __post_init__(self):
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"ViTConfig.tokenizer={self.tokenizer!r}; choose one of {TOKENIZERS}.")
        if self.tokenizer == "patch" and self.image_size % self.patch_size:
            raise ValueError(
                f"ViTConfig: image_size={self.image_size} is not a multiple of "
                f"patch_size={self.patch_size}."
            )
        if self.tokenizer == "suit" and (self.d_model % 2 or self.stem_dim % 2):
            raise ValueError(
                f"ViTConfig: suit needs an even d_model and base_dim, got {self.d_model}, "
                f"{self.stem_dim}."
            )
        if self.image_size % self.downsample:
            raise ValueError(
                f"ViTConfig: image_size={self.image_size} is not a multiple of "
                f"downsample={self.downsample}."
            )
        if self.tokenizer == "suit" and self.stem_kernel % 2 == 0:
            raise ValueError(
                f"ViTConfig.stem_kernel={self.stem_kernel} must be odd (an even kernel's "
                "'same' padding shifts the feature grid off the superpixel labels)."
            )
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"ViTConfig.drop_path={self.drop_path} must be in [0, 1).")

    @property
    def stem_dim(self) -> int:
        """SuiT's base_dim (d_model / 4 unless set)."""
        return self.base_dim or self.d_model // 4

    @property
    def feature_size(self) -> int:
        """Side of SuiT's pixel-feature grid (and of its label maps)."""
        return self.image_size // self.downsample

    @property
    def num_patches(self) -> int:
        """Grid tokens of the patch tokenizer."""
        return (self.image_size // self.patch_size) ** 2

    def transformer(self) -> TransformerConfig:
        """The encoder blocks' settings in models/transformer.py's terms."""
        return TransformerConfig(
            vocab_size=1,
            d_model=self.d_model,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            d_ff=self.mlp_ratio * self.d_model,
            norm="layernorm",
            norm_eps=1e-6,
            position="learned",  # no RoPE: positions enter through the tokenizer
            use_bias=True,
            mlp="gelu",
            tie_embeddings=False,
            init_std=self.init_std,
            dtype=self.dtype,
        )


def drop_path(x_B: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Stochastic depth: zeroes whole examples' residual branch with probability `rate`
    and scales the rest by 1/(1 - rate); the identity without a key or at rate 0."""
    if key is None or rate == 0.0:
        return x_B
    keep = jax.random.bernoulli(key, 1.0 - rate, (x_B.shape[0],) + (1,) * (x_B.ndim - 1))
    return jnp.where(keep, x_B / (1.0 - rate), 0.0).astype(x_B.dtype)


class EncoderBlock(nnx.Module):
    """x + drop_path(attn(LN(x))), then x + drop_path(mlp(LN(x))); bidirectional
    attention with a key-padding mask."""

    def __init__(self, cfg: TransformerConfig, drop_rate: float, *, rngs: nnx.Rngs):
        self.attn_norm = _norm(cfg, cfg.d_model, rngs=rngs)
        self.attn = Attention(cfg, rngs=rngs, causal=False)
        self.mlp_norm = _norm(cfg, cfg.d_model, rngs=rngs)
        self.mlp = MLP(cfg, rngs=rngs)
        self.drop_rate = drop_rate

    def __call__(
        self, x_BTD: jax.Array, key_mask_BT: jax.Array | None, key: jax.Array | None
    ) -> jax.Array:
        """The block on [B,T,D]; `key` (training) draws drop-path."""
        k1 = k2 = None
        if key is not None:
            k1, k2 = jax.random.split(key)
        positions_BT = jnp.zeros(x_BTD.shape[:2], jnp.int32)  # unused without RoPE
        h_BTD = self.attn(self.attn_norm(x_BTD), positions_BT, key_mask_BS=key_mask_BT)
        x_BTD = x_BTD + drop_path(h_BTD, self.drop_rate, k1)
        return x_BTD + drop_path(self.mlp(self.mlp_norm(x_BTD)), self.drop_rate, k2)


def segment_pool(
    features_BHWC: jax.Array, labels_BHW: jax.Array, num_segments: int
) -> tuple[jax.Array, jax.Array]:
    """Per-segment [max, mean] of the features ([B,K,2C], zeros for empty segments) and
    whether each segment has pixels ([B,K] bool). Labels outside [0, K) are ignored."""
    B, H, W, C = features_BHWC.shape
    f_BNC = features_BHWC.reshape(B, H * W, C).astype(jnp.float32)
    l_BN = labels_BHW.reshape(B, H * W)

    def one(f_NC, l_N):
        count_K = jax.ops.segment_sum(jnp.ones_like(l_N, jnp.float32), l_N, num_segments)
        max_KC = jax.ops.segment_max(f_NC, l_N, num_segments)
        sum_KC = jax.ops.segment_sum(f_NC, l_N, num_segments)
        present_K = count_K > 0
        max_KC = jnp.where(present_K[:, None], max_KC, 0.0)
        mean_KC = sum_KC / jnp.maximum(count_K, 1.0)[:, None]
        return jnp.concatenate([max_KC, mean_KC], axis=-1), present_K

    return jax.vmap(one)(f_BNC, l_BN)


class SuitTokenizer(nnx.Module):
    """SuiT's superpixel tokens: stem, Fourier positional features, 1x1 projection and
    per-segment max/mean pooling."""

    def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
        base, k = cfg.stem_dim, cfg.stem_kernel
        self.cfg = cfg
        self.stem = nnx.Conv(
            cfg.channels,
            base,
            (k, k),
            strides=cfg.downsample,
            padding="VALID",  # replicate padding is applied first (as SuiT's conv)
            kernel_init=_normal(math.sqrt(2.0 / (k * k * cfg.channels)), (None, None, None, None)),
            bias_init=_zeros((None,)),
            rngs=rngs,
        )
        self.stem_norm = nnx.BatchNorm(base, momentum=0.9, epsilon=1e-5, rngs=rngs)
        init_b = nnx.initializers.normal(cfg.fourier_sigma)
        self.fourier_b = nnx.Param(init_b(rngs.params(), (2, base // 2)))  # trainable
        self.proj = nnx.Conv(
            2 * base,
            cfg.d_model // 2,
            (1, 1),
            kernel_init=_normal(cfg.init_std, (None, None, None, "embed")),
            bias_init=_zeros(("embed",)),
            rngs=rngs,
        )

    def fourier_features(self, height: int, width: int) -> jax.Array:
        """[H, W, base]: [sin(pB), cos(pB)] of coordinates p = (x, y) in [0, 1]."""
        ys = jnp.linspace(0.0, 1.0, height)
        xs = jnp.linspace(0.0, 1.0, width)
        p_HW2 = jnp.stack(jnp.meshgrid(xs, ys, indexing="xy"), axis=-1)
        pb_HWF = p_HW2 @ self.fourier_b[...]
        return jnp.concatenate([jnp.sin(pb_HWF), jnp.cos(pb_HWF)], axis=-1)

    def __call__(
        self, images_BHWC: jax.Array, labels_BHW: jax.Array, num_segments: int, train: bool
    ) -> tuple[jax.Array, jax.Array]:
        """(tokens [B,K,D], present [B,K]); labels are on the feature grid."""
        pad = self.cfg.stem_kernel // 2
        x = jnp.pad(images_BHWC, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
        x = jax.nn.gelu(self.stem_norm(self.stem(x), use_running_average=not train))
        B, H, W, _ = x.shape
        if labels_BHW.shape != (B, H, W):
            raise ValueError(f"label maps {labels_BHW.shape} must match the features {(B, H, W)}.")
        pe = jnp.broadcast_to(self.fourier_features(H, W), (B, H, W, self.cfg.stem_dim))
        x = self.proj(jnp.concatenate([x, pe.astype(x.dtype)], axis=-1))
        return segment_pool(x, labels_BHW, num_segments)


class ViT(nnx.Module):
    """A ViT classifier over grid patches or SuiT superpixel tokens; returns logits."""

    def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        tcfg = cfg.transformer()
        D = cfg.d_model
        if cfg.tokenizer == "patch":
            p = cfg.patch_size
            self.patch_embed = nnx.Linear(
                p * p * cfg.channels,
                D,
                kernel_init=_normal(cfg.init_std, (None, "embed")),
                bias_init=_zeros(("embed",)),
                rngs=rngs,
            )
            init = _normal(cfg.init_std, (None, "embed"))
            self.pos_embed = nnx.Param(init(rngs.params(), (cfg.num_patches + 1, D)))
        else:
            self.tokenizer = SuitTokenizer(cfg, rngs=rngs)
        self.cls_token = nnx.Param(_zeros((None, "embed"))(rngs.params(), (1, D)))
        rates = [cfg.drop_path * i / max(cfg.num_layers - 1, 1) for i in range(cfg.num_layers)]
        self.blocks = nnx.List([EncoderBlock(tcfg, r, rngs=rngs) for r in rates])
        self.final_norm = _norm(tcfg, D, rngs=rngs)
        self.head = nnx.Linear(
            D,
            cfg.num_classes,
            kernel_init=_normal(cfg.init_std, ("embed", None)),
            bias_init=_zeros((None,)),
            rngs=rngs,
        )

    def tokens(
        self,
        images_BHWC: jax.Array,
        labels_BHW: jax.Array | None = None,
        num_segments: int = 0,
        train: bool = False,
    ) -> tuple[jax.Array, jax.Array | None]:
        """(the input sequence [B,T,D] with CLS first, its key mask [B,T] or None)."""
        B = images_BHWC.shape[0]
        cls_B1D = jnp.broadcast_to(self.cls_token[...][None], (B, 1, self.cfg.d_model))
        if self.cfg.tokenizer == "patch":
            p, (H, W, C) = self.cfg.patch_size, images_BHWC.shape[1:]
            x = images_BHWC.reshape(B, H // p, p, W // p, p, C).transpose(0, 1, 3, 2, 4, 5)
            x_BKD = self.patch_embed(x.reshape(B, (H // p) * (W // p), p * p * C))
            x_BTD = jnp.concatenate([cls_B1D, x_BKD], axis=1) + self.pos_embed[...][None]
            return x_BTD, None
        if labels_BHW is None or num_segments < 1:
            raise ValueError("the suit tokenizer needs label maps and num_segments >= 1.")
        x_BKD, present_BK = self.tokenizer(images_BHWC, labels_BHW, num_segments, train)
        mask_BT = jnp.concatenate([jnp.ones((B, 1), bool), present_BK], axis=1)
        return jnp.concatenate([cls_B1D, x_BKD.astype(cls_B1D.dtype)], axis=1), mask_BT

    def __call__(
        self,
        images_BHWC: jax.Array,
        labels_BHW: jax.Array | None = None,
        *,
        num_segments: int = 0,
        train: bool = False,
        key: jax.Array | None = None,
    ) -> jax.Array:
        """Logits [B, classes] of normalised images; labels_BHW (suit) are segment ids on
        the feature grid; train=True updates BatchNorm statistics; `key` draws drop-path."""
        x_BTD, mask_BT = self.tokens(images_BHWC, labels_BHW, num_segments, train)
        keys = [None] * len(self.blocks) if key is None else jax.random.split(key, len(self.blocks))
        for block, k in zip(self.blocks, keys):
            x_BTD = block(x_BTD, mask_BT, k)
        return self.head(self.final_norm(x_BTD[:, 0])).astype(jnp.float32)

    def cls_attention(
        self, images_BHWC: jax.Array, labels_BHW: jax.Array | None = None, num_segments: int = 0
    ) -> jax.Array:
        """The last block's attention weights of the CLS query over the tokens [B, T-1]
        (averaged over heads; masked tokens 0): what the classifier reads."""
        x_BTD, mask_BT = self.tokens(images_BHWC, labels_BHW, num_segments)
        for block in self.blocks[:-1]:
            x_BTD = block(x_BTD, mask_BT, None)
        last = self.blocks[-1]
        positions_BT = jnp.zeros(x_BTD.shape[:2], jnp.int32)
        q_BTNH, k_BTNH, _ = last.attn._qkv(last.attn_norm(x_BTD), positions_BT)
        logits_BNS = jnp.einsum("bnh,bsnh->bns", q_BTNH[:, 0], k_BTNH) / jnp.sqrt(q_BTNH.shape[-1])
        if mask_BT is not None:
            logits_BNS = jnp.where(mask_BT[:, None, :], logits_BNS, -jnp.inf)
        return jax.nn.softmax(logits_BNS.astype(jnp.float32), axis=-1).mean(1)[:, 1:]


def param_count(model: nnx.Module) -> int:
    """Trainable parameters (nnx.Param; BatchNorm statistics are state, not counted)."""
    return sum(int(x.size) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def train_flops_per_image(cfg: ViTConfig, num_segments: int = 0) -> float:
    """Training FLOPs per image (3x the forward's; a multiply-add is 2 FLOPs): the
    tokenizer's matmuls (patch embedding, or SuiT's stem conv and 1x1 projection at every
    feature pixel), the blocks' weights at every token, attention's QK^T and AV over the
    full T x T square (as train_flops_per_token counts them) and the head on CLS.
    Norms, activations, pooling and the Fourier features are left out."""
    D, L = cfg.d_model, cfg.num_layers
    if cfg.tokenizer == "patch":
        tokens = cfg.num_patches
        tokenizer = tokens * cfg.patch_size**2 * cfg.channels * D
    else:
        tokens = num_segments or cfg.num_patches
        base, pixels = cfg.stem_dim, cfg.feature_size**2
        tokenizer = pixels * (cfg.stem_kernel**2 * cfg.channels * base + 2 * base * D // 2)
    T = tokens + 1
    blocks = T * L * (4 * D * D + 2 * D * cfg.mlp_ratio * D)
    attention = 2 * L * T * T * D
    return float(3 * 2 * (tokenizer + blocks + attention + D * cfg.num_classes))


def describe(cfg: ViTConfig, num_segments: int = 0) -> dict[str, Any]:
    """Parameter count of the model `cfg` builds (abstractly, no allocation) and its
    training FLOPs per image (with `num_segments` superpixel tokens for SuiT)."""
    model = nnx.eval_shape(lambda: ViT(cfg, rngs=nnx.Rngs(0)))
    return {
        "params": param_count(model),
        "train FLOPs/image": train_flops_per_image(cfg, num_segments),
    }
