"""Sampling throughput: KV-cache decoding versus full recompute, and cached tokens/s by batch.

    python benchmarks/sampling.py [--batch=8] [--prompt_len=64] [--new_tokens=256] [--rounds=3]

The quickstart 'small' model (d_model 128, 4 layers, 4 heads, d_ff 512, byte vocabulary,
max_len 320), randomly initialised, decodes greedily with no stop tokens:
(a) `framework.sampling.generate`: one prefill pass, then one cached token per step
    inside a jitted while_loop;
(b) full recompute: every step re-runs the whole prefix (padded up to a multiple of 32,
    one compiled program per length) and appends the argmax, dispatched from Python.
Both are measured in one process after compilation; the ratio is printed with the word
`speedup`, then cached tokens/s at batch 1, 8 and 64.
benchmarks/gpu_check.py reuses `random_prompts` and `cached_rate` on a ~1B-parameter model.
"""

from __future__ import annotations

import functools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from flax import nnx  # noqa: E402

from data.tokenizers import ByteTokenizer  # noqa: E402
from framework import sampling  # noqa: E402
from models.transformer import Transformer, TransformerConfig  # noqa: E402

SMALL = dict(vocab_size=259, d_model=128, num_layers=4, num_heads=4, d_ff=512, max_len=320)
RECOMPUTE_BUCKET = 32


def cached_run(model: Transformer, prompts_BT: np.ndarray, new_tokens: int) -> np.ndarray:
    """Greedy KV-cache decoding of every row to its full length; returns the tokens."""
    tokenizer, prompts = ByteTokenizer(), list(prompts_BT)
    opts = dict(max_new_tokens=new_tokens, temperature=0.0, stop_tokens=[])
    return sampling.generate(model, tokenizer, prompts, **opts).tokens


@functools.partial(jax.jit, static_argnames=("graphdef", "length"))
def _full_step(graphdef, params, buf_BS, t, *, length):
    """Runs the model over buf[:, :length] and writes the argmax after position t-1 at t."""
    logits_BTV = nnx.merge(graphdef, params)(buf_BS[:, :length])
    next_B = jnp.argmax(logits_BTV[:, t - 1], axis=-1).astype(jnp.int32)
    return buf_BS.at[:, t].set(next_B)


def recompute_run(model: Transformer, prompts_BT: np.ndarray, new_tokens: int) -> np.ndarray:
    """Greedy decoding that re-runs the whole prefix every step; returns the new tokens."""
    graphdef, params = nnx.split(model)
    P = prompts_BT.shape[1]
    buf_BS = jnp.asarray(np.pad(prompts_BT, ((0, 0), (0, new_tokens))))
    for t in range(P, P + new_tokens):
        length = min(-(-(t + 1) // RECOMPUTE_BUCKET) * RECOMPUTE_BUCKET, buf_BS.shape[1])
        buf_BS = _full_step(graphdef, params, buf_BS, t, length=length)
    return np.asarray(buf_BS[:, P:])


def timed(fn, *args) -> tuple[float, np.ndarray]:
    """(seconds, result) of one call, waiting for the result."""
    start = time.perf_counter()
    result = jax.block_until_ready(fn(*args))
    return time.perf_counter() - start, result


def random_prompts(batch: int, prompt_len: int, rng: np.random.Generator) -> np.ndarray:
    """[batch, prompt_len] int32 prompts: BOS, then random byte ids."""
    bos = np.full((batch, 1), ByteTokenizer.bos_id, np.int32)
    return np.concatenate([bos, rng.integers(0, 256, (batch, prompt_len - 1), np.int32)], 1)


def cached_rate(model: Transformer, prompts_BT: np.ndarray, new_tokens: int, rounds: int) -> float:
    """Tokens/s of cached decoding of `prompts_BT` (median of `rounds`, after compiling)."""
    cached_run(model, prompts_BT, new_tokens)  # compile
    seconds = statistics.median(
        timed(cached_run, model, prompts_BT, new_tokens)[0] for _ in range(rounds)
    )
    return prompts_BT.shape[0] * new_tokens / seconds


def main(argv) -> None:
    """Prints recompute vs cached tokens/s, the speedup, and cached tokens/s by batch."""
    del argv
    FLAGS = flags.FLAGS
    B, P, N, rounds = FLAGS.batch, FLAGS.prompt_len, FLAGS.new_tokens, FLAGS.rounds
    cfg = TransformerConfig(**SMALL, scan_layers=FLAGS.scan_layers)
    model = Transformer(cfg, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    prompts = lambda b: random_prompts(b, P, rng)
    print(
        f"model: quickstart 'small' (d_model {cfg.d_model}, {cfg.num_layers} layers, "
        f"{cfg.num_heads} heads, d_ff {cfg.d_ff}, vocab {cfg.vocab_size}, scan_layers="
        f"{cfg.scan_layers}), random init; backend {jax.default_backend()}, "
        f"{jax.device_count()} device(s)"
    )
    print(f"greedy, prompt {P} tokens, {N} new tokens per row, no stops\n")

    prompts_BT = prompts(B)
    cached_run(model, prompts_BT, N)  # compile
    cached_s = []
    for _ in range(rounds):
        seconds, cached_tokens = timed(cached_run, model, prompts_BT, N)
        cached_s.append(seconds)
    graphdef, params = nnx.split(model)
    for length in range(RECOMPUTE_BUCKET, P + N + RECOMPUTE_BUCKET, RECOMPUTE_BUCKET):
        buf_BS = jnp.zeros((B, P + N), jnp.int32)  # compile every prefix length up front
        jax.block_until_ready(_full_step(graphdef, params, buf_BS, 1, length=min(length, P + N)))
    full_s, full_tokens = timed(recompute_run, model, prompts_BT, N)
    cached = statistics.median(cached_s)
    agree = float((full_tokens == cached_tokens).mean())
    print(f"batch {B}: full recompute {B * N / full_s:10.1f} tokens/s ({full_s:.2f} s)")
    print(f"batch {B}: KV cache       {B * N / cached:10.1f} tokens/s ({cached:.2f} s, median)")
    print(f"speedup (KV cache / full recompute, batch {B}): {full_s / cached:.1f}x")
    print(f"greedy tokens identical in both: {agree:.1%}\n")

    for b in (1, 8, 64):
        rate = cached_rate(model, prompts(b), N, rounds)
        print(f"cached decoding, batch {b:3d}: {rate:10.1f} tokens/s ({b * N / rate:.2f} s)")


if __name__ == "__main__":
    # Flags are defined here, not at import, so that other benchmarks can import this
    # module beside benchmarks/train_overhead.py (both have --rounds).
    flags.DEFINE_integer("batch", 8, "Batch for the cached vs full-recompute comparison.")
    flags.DEFINE_integer("prompt_len", 64, "Prompt tokens per row.")
    flags.DEFINE_integer("new_tokens", 256, "Generated tokens per row.")
    flags.DEFINE_integer("rounds", 3, "Timed repetitions of cached decoding (median).")
    flags.DEFINE_bool("scan_layers", False, "Scan over layers instead of unrolling.")
    app.run(main)
