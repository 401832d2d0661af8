"""The MoE feed-forward's three dispatches against a dense FFN of equal active FLOPs.

    python benchmarks/moe.py [--batch=8] [--seq=256] [--d_model=256] [--d_ff=512]
                             [--experts=8] [--top_k=2] [--rounds=5]

Times one jitted forward + backward (gradient of the summed output w.r.t. the input and
every weight) of (a) models/moe.MoEFeedForward with dispatch 'gather', 'einsum' and
'dense', and (b) models/layers.MLP with d_ff = top_k * d_ff_expert, which does the same
multiply-adds per token as the MoE's chosen experts (routing aside). The variants are
timed in alternating rounds in one process; tokens/s is the median over rounds and the
ratios are to the dense FFN. 'dense' runs every expert on every token (the test
oracle), so it costs about E / k times the others.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from models import moe  # noqa: E402
from models.layers import MLP  # noqa: E402
from models.transformer import TransformerConfig  # noqa: E402


def step_fn(module: nnx.Module, is_moe: bool):
    """A jitted function x -> (grads w.r.t. x and the weights) of sum(module(x))."""
    graphdef, params = nnx.split(module)

    def loss(params, x_BTD):
        y = nnx.merge(graphdef, params)(x_BTD)
        y_BTD = y[0] if is_moe else y
        return y_BTD.astype(jnp.float32).sum()

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return lambda x: grad(params, x)


def time_once(fn, x, repeats: int) -> float:
    """Seconds per call over `repeats` calls (blocking on the last)."""
    t0 = time.perf_counter()
    for _ in range(repeats):
        out = fn(x)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / repeats


def main(argv: list[str] | None = None) -> None:
    """Builds the variants, times them in alternating rounds, prints the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in [("batch", 8), ("seq", 256), ("d_model", 256), ("d_ff", 512)]:
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--top_k", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5, help="calls timed per round")
    args = p.parse_args(argv)
    rngs = nnx.Rngs(0)
    variants = {}
    for dispatch in moe.DISPATCHES:
        layer = moe.MoEFeedForward(
            args.d_model, args.d_ff, args.experts, k=args.top_k, dispatch=dispatch, rngs=rngs
        )
        variants[f"moe {dispatch}"] = step_fn(layer, True)
    cfg = TransformerConfig(d_model=args.d_model, d_ff=args.top_k * args.d_ff)
    variants["dense FFN (equal active FLOPs)"] = step_fn(MLP(cfg, rngs=rngs), False)
    x_BTD = jax.random.normal(jax.random.key(1), (args.batch, args.seq, args.d_model))
    for fn in variants.values():  # compile
        jax.block_until_ready(fn(x_BTD))
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            times[name].append(time_once(fn, x_BTD, args.repeats))
    tokens = args.batch * args.seq
    print(
        f"{jax.devices()[0].platform}: B={args.batch} T={args.seq} D={args.d_model} "
        f"F={args.d_ff} E={args.experts} k={args.top_k}; forward + backward"
    )
    dense = statistics.median(times["dense FFN (equal active FLOPs)"])
    print(f"| {'variant':<32} | tokens/s | time / dense FFN |")
    print(f"|{'-' * 34}|---------:|-----------------:|")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"| {name:<32} | {tokens / t:8,.0f} | {t / dense:16.2f} |")


if __name__ == "__main__":
    main()
