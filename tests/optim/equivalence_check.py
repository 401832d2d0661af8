"""Float64 check of the abc-parameterization equivalence rules on the real Transformer.

Run with JAX_ENABLE_X64=1 (tests/optim/test_parameterization.py does, in a
subprocess): for each optimizer, a model with (a, b, c) and one with every layer type
shifted to (a + theta, b - theta, c - k theta) (k = 2 SGD, 1 Adam, 0 Adafactor) have the
same logits at init and the same effective weights n^-a w and logits after three
optimizer steps (Adam with eps = 0), from the bases in CASES. Prints one JSON line of the
largest relative differences per optimizer.
"""

from __future__ import annotations

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from framework.tasks import lm
from models.transformer import Transformer, TransformerConfig
from optim import build_optimizer, make_schedule, parameterization as pz, path_str
from optim.optimizers import OPTIMIZER_DEFAULTS

# The rules hold exactly when the learning rate uses the same n as the multipliers and
# init (base width 1); with a base width b the constants C_l absorb b^(k theta_l).
WIDTH, BASE = 32, 1
THETA = {"embedding": 0.25, "hidden": 0.5, "readout": -0.25}
NAMES = {"sgd": "sgd", "adam": "adamw", "adafactor": "adafactor"}
# Each optimizer's rule shifted from one base parameterization (both bases appear).
CASES = (("sgd", "mup"), ("adam", "standard"), ("adafactor", "mup"))


def shifted(param: str) -> dict:
    p = pz.get_parameterization(param)
    return {k: (p[k][0] + THETA[k], p[k][1] - THETA[k]) for k in pz.LAYER_TYPES}


def train(param, optimizer: str) -> tuple[list, list]:
    """Logits at init and after each of 3 steps, and the final effective weights."""
    s = pz.transformer_settings(param, optimizer, "full", width=WIDTH, base_width=BASE)
    cfg = TransformerConfig(
        vocab_size=8,
        d_model=WIDTH,
        num_layers=1,  # every layer type (embedding, hidden, readout) is there
        num_heads=2,
        d_ff=64,
        max_len=8,
        norm="layernorm",
        norm_bias=False,
        mlp="gelu",
        position="learned",
        tie_embeddings=False,
        dtype="float64",
        param_dtype="float64",
        **s["model"],
    )
    graphdef, state = nnx.split(Transformer(cfg, rngs=nnx.Rngs(0)), nnx.Param)
    params = nnx.to_pure_dict(state)
    opt = dict(
        OPTIMIZER_DEFAULTS,
        name=NAMES[optimizer],
        lr=0.01,
        eps=0.0,
        grad_clip_norm=0.0,
        adafactor_param_scale=True,
        adafactor_clip_threshold=0.0,
        lr_multipliers=s["lr_multipliers"],
    )
    tx = build_optimizer(opt, make_schedule("constant", peak_lr=0.01, total_steps=10), params)
    opt_state = tx.init(params)
    # Every row holds every token, so no embedding row has a zero gradient (eps = 0).
    keys = jax.random.split(jax.random.key(1), 12)
    tokens = jnp.stack([jax.random.permutation(k, 9) % 8 for k in keys]).reshape(3, 4, 9)

    def loss(p, toks):
        logits = nnx.merge(graphdef, p)(toks[:, :-1])
        return lm.cross_entropy_loss(logits, toks[:, 1:])[0]

    # One program per model: the probe's logits for the incoming parameters and the
    # optimizer update (a fourth call only reads the logits after the third step).
    def step(p, t, o):
        updates, o = tx.update(jax.grad(loss)(p, t), o, p)
        return nnx.merge(graphdef, p)(probe), updates, o

    step = jax.jit(step)
    probe = tokens[0, :, :-1]
    logits = []
    for i in range(4):
        out, updates, new_state = step(params, tokens[i % 3], opt_state)
        logits.append(out)
        if i < 3:
            params, opt_state = jax.tree.map(jnp.add, params, updates), new_state
    effective = []
    for k, regex in pz.TRANSFORMER_LAYERS.items():
        m = s["model"][f"{k}_multiplier"]
        for path, w in jax.tree_util.tree_leaves_with_path(params):
            if re.search(regex, path_str(path)):
                effective.append(np.asarray(w) * m)
    return logits, effective


def rel(x, y) -> float:
    x, y = np.asarray(x), np.asarray(y)
    return float(np.abs(x - y).max() / max(np.abs(y).max(), 1e-300))


def main() -> None:
    assert jnp.ones(()).dtype == jnp.float64, "run with JAX_ENABLE_X64=1"
    out = {}
    for optimizer, param in CASES:
        la, ea = train(param, optimizer)
        lb, eb = train(shifted(param), optimizer)
        moved = rel(la[-1], la[0])  # the steps changed the logits
        out[f"{optimizer}/{param}"] = {
            "logits": max(rel(x, y) for x, y in zip(la, lb)),
            "weights": max(rel(x, y) for x, y in zip(ea, eb)),
            "moved": moved,
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
