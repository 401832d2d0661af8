"""Heads on a Transformer's final hidden state, and LMs that carry one.

`ValueLM` and `ClassifierLM` subclass `Transformer`, so their backbone parameters have
the LM's own paths (embed/..., blocks/..., final_norm/...) and `train.init_from` an LM
run loads them as they are; the head's parameters (`value_head/...`, `class_head/...`)
are new, so a config leaves them fresh with `train.init_dont_load='value_head'`. The LM's
unembedding stays (unused by these heads) so that paths match the LM run exactly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from models.layers import _normal, _zeros
from models.transformer import Transformer, TransformerConfig


class ValueHead(nnx.Module):
    """A scalar per position: hidden [B,T,D] -> float32 logits [B,T] (sigmoid = value)."""

    def __init__(self, d_model: int, *, rngs: nnx.Rngs):
        self.kernel = nnx.Param(
            _normal(d_model**-0.5, ("embed", None))(rngs.params(), (d_model, 1))
        )
        self.bias = nnx.Param(_zeros((None,))(rngs.params(), (1,)))

    def __call__(self, hidden_BTD: jax.Array) -> jax.Array:
        x_BTD = hidden_BTD.astype(jnp.float32)
        return (x_BTD @ self.kernel[...].astype(jnp.float32))[..., 0] + self.bias[...][0]


class ClassifierHead(nnx.Module):
    """Mean-pools the hidden states of the unmasked positions, then a linear map to
    float32 class logits [B,C]."""

    def __init__(self, d_model: int, num_classes: int, *, rngs: nnx.Rngs):
        init = _normal(d_model**-0.5, ("embed", None))
        self.kernel = nnx.Param(init(rngs.params(), (d_model, num_classes)))
        self.bias = nnx.Param(_zeros((None,))(rngs.params(), (num_classes,)))

    def __call__(self, hidden_BTD: jax.Array, mask_BT: jax.Array) -> jax.Array:
        w_BT = mask_BT.astype(jnp.float32)
        pooled_BD = (hidden_BTD.astype(jnp.float32) * w_BT[..., None]).sum(1)
        pooled_BD = pooled_BD / jnp.maximum(w_BT.sum(1, keepdims=True), 1.0)
        return pooled_BD @ self.kernel[...].astype(jnp.float32) + self.bias[...]


class ValueLM(Transformer):
    """A Transformer whose `values(tokens)` gives per-position value logits [B,T]."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        super().__init__(cfg, rngs=rngs)
        self.value_head = ValueHead(cfg.d_model, rngs=rngs)

    def values(self, tokens_BT: jax.Array, **kwargs) -> jax.Array:
        """Value logits [B,T] (kwargs: Transformer.encode's)."""
        hidden_BTD, _ = self.encode(tokens_BT, **kwargs)
        return self.value_head(hidden_BTD)


class ClassifierLM(Transformer):
    """A Transformer whose `classify(tokens, mask)` gives class logits [B,C]."""

    def __init__(self, cfg: TransformerConfig, num_classes: int, *, rngs: nnx.Rngs):
        super().__init__(cfg, rngs=rngs)
        self.class_head = ClassifierHead(cfg.d_model, num_classes, rngs=rngs)

    def classify(self, tokens_BT: jax.Array, mask_BT: jax.Array, **kwargs) -> jax.Array:
        """Class logits [B,C] pooled over the positions where mask_BT is set."""
        hidden_BTD, _ = self.encode(tokens_BT, **kwargs)
        return self.class_head(hidden_BTD, mask_BT)
