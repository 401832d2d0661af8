"""Sampling throughput: KV-cache decoding versus full recompute, cached tokens/s and FLOP/s
by batch next to the train step's, and N samples per prompt versus a flat batch.

    python benchmarks/sampling.py [--batch=8] [--prompt_len=64] [--new_tokens=256] [--rounds=3]
        [--batches=1,2,4,8,16,32,64,128,256] [--prompts=64] [--samples=16]
        [--volume_new_tokens=64] [--train_steps=5]

The quickstart 'small' model (d_model 128, 4 layers, 4 heads, d_ff 512, byte vocabulary,
max_len 320), randomly initialised, all in one process, each rate after compilation:
(a) `framework.sampling.generate`, greedy, no stops: one prefill pass, then one cached
    token per step inside jitted while_loops; versus full recompute: every step re-runs
    the whole prefix (padded up to a multiple of 32, one compiled program per length) and
    appends the argmax, dispatched from Python. The ratio is printed with `speedup`.
(b) Cached tokens/s by batch (median of rounds; prefill included in the time), with the
    model FLOP/s of the generated tokens -- forward FLOPs per token at the average
    context, train_flops_per_token(cfg, context) / 3 -- next to the FLOP/s of a bare
    train step (framework.trainer, configs/quickstart.py with the same model, 6N + attn).
    Batches above the default chunk size (sampling.default_max_rows) also run as one
    chunk, to show what chunking buys.
(c) `--prompts` prompts x `--samples` samples at temperature 1 with
    generate(num_samples=...) (each prompt prefilled once, its cache forked) versus the
    same rows as one flat list of repeated prompts (each row prefilled), same chunking.
benchmarks/gpu_check.py reuses `random_prompts` and `cached_rate` on a ~1B-parameter model.
"""

from __future__ import annotations

import functools
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from flax import nnx  # noqa: E402

from data.tokenizers import ByteTokenizer  # noqa: E402
from framework import sampling  # noqa: E402
from models.transformer import Transformer, TransformerConfig, train_flops_per_token  # noqa: E402

SMALL = dict(vocab_size=259, d_model=128, num_layers=4, num_heads=4, d_ff=512, max_len=320)
RECOMPUTE_BUCKET = 32


def cached_run(
    model: Transformer, prompts_BT: np.ndarray, new_tokens: int, max_rows: int | None = None
) -> np.ndarray:
    """Greedy KV-cache decoding of every row to its full length; returns the tokens."""
    tokenizer, prompts = ByteTokenizer(), list(prompts_BT)
    opts = dict(max_new_tokens=new_tokens, temperature=0.0, stop_tokens=[], max_rows=max_rows)
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


def timed(fn, *args, **kwargs) -> tuple[float, np.ndarray]:
    """(seconds, result) of one call, waiting for the result."""
    start = time.perf_counter()
    result = jax.block_until_ready(fn(*args, **kwargs))
    return time.perf_counter() - start, result


def random_prompts(batch: int, prompt_len: int, rng: np.random.Generator) -> np.ndarray:
    """[batch, prompt_len] int32 prompts: BOS, then random byte ids."""
    bos = np.full((batch, 1), ByteTokenizer.bos_id, np.int32)
    return np.concatenate([bos, rng.integers(0, 256, (batch, prompt_len - 1), np.int32)], 1)


def cached_rate(
    model: Transformer,
    prompts_BT: np.ndarray,
    new_tokens: int,
    rounds: int,
    max_rows: int | None = None,
) -> float:
    """Tokens/s of cached decoding of `prompts_BT` (median of `rounds`, after compiling)."""
    cached_run(model, prompts_BT, new_tokens, max_rows)  # compile
    seconds = statistics.median(
        timed(cached_run, model, prompts_BT, new_tokens, max_rows)[0] for _ in range(rounds)
    )
    return prompts_BT.shape[0] * new_tokens / seconds


def decode_flops_per_token(cfg: TransformerConfig, prompt_len: int, new_tokens: int) -> float:
    """Forward FLOPs of one generated token at the average context it attends to (the
    train formula's convention: 2 FLOPs per matmul weight, QK^T and AV over the keys)."""
    context = prompt_len + (new_tokens + 1) / 2
    return train_flops_per_token(cfg, context) / 3


def train_step_flops(cfg: TransformerConfig, steps: int, rounds: int) -> tuple[float, float, int]:
    """(tokens/s, model FLOP/s, seq_len) of the bare train step of configs/quickstart.py
    with `cfg`'s model (benchmarks/train_overhead.py's bare loop, median of rounds)."""
    import train_overhead  # benchmarks/train_overhead.py

    from configs import quickstart
    from framework import metrics, trainer as trainer_lib

    metrics.quiet_library_logs()
    config = train_overhead.prepare(quickstart.get_config("size=small"), steps)
    config.model.update({k: getattr(cfg, k) for k in SMALL})
    with tempfile.TemporaryDirectory() as workdir:
        t = trainer_lib.Trainer(config, workdir)
        steps_per_s = statistics.median(train_overhead.bare_rate(t, steps) for _ in range(rounds))
        tokens_per_s = steps_per_s * train_overhead.tokens_per_step(t)
    seq_len = config.data.seq_len
    return tokens_per_s, tokens_per_s * train_flops_per_token(cfg, seq_len), seq_len


def volume_rates(model: Transformer, prompts_BT: np.ndarray, n: int, new_tokens: int, rounds: int):
    """(tokens/s with num_samples=n, tokens/s of the same rows as a flat batch, fraction
    of equal tokens): temperature 1, no stops, medians of `rounds` after a compiling run."""
    tokenizer, prompts = ByteTokenizer(), list(prompts_BT)
    opts = dict(max_new_tokens=new_tokens, temperature=1.0, stop_tokens=[], rng=0)
    forked = lambda: sampling.generate(model, tokenizer, prompts, num_samples=n, **opts).tokens
    flat_prompts = [p for p in prompts for _ in range(n)]
    flat = lambda: sampling.generate(model, tokenizer, flat_prompts, **opts).tokens
    rates, tokens = [], []
    for fn in (forked, flat):
        tokens.append(fn())  # compile
        seconds = statistics.median(timed(fn)[0] for _ in range(rounds))
        rates.append(len(flat_prompts) * new_tokens / seconds)
    return rates[0], rates[1], float((tokens[0] == tokens[1]).mean())


def compare_recompute(model: Transformer, prompts_BT: np.ndarray, N: int, rounds: int) -> None:
    """Prints recompute vs cached tokens/s at one batch, the speedup and token agreement."""
    B, P = prompts_BT.shape
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
    print(f"greedy tokens identical in both: {agree:.1%}\n", flush=True)


def main(argv) -> None:
    """Prints (a) recompute vs cached, (b) the batch curve with FLOP/s, (c) num_samples."""
    del argv
    FLAGS = flags.FLAGS
    P, N, rounds = FLAGS.prompt_len, FLAGS.new_tokens, FLAGS.rounds
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
    compare_recompute(model, prompts(FLAGS.batch), N, rounds)

    train_tps, train_flops, seq = train_step_flops(cfg, FLAGS.train_steps, rounds)
    print(
        f"train step (configs/quickstart.py, this model, seq {seq}, bare loop): "
        f"{train_tps:10.1f} tokens/s, {train_flops / 1e9:6.2f} GFLOP/s"
    )
    per_token = decode_flops_per_token(cfg, P, N)
    width = cfg.num_heads * cfg.resolved_head_dim
    itemsize = jnp.dtype(cfg.dtype).itemsize
    mib = lambda rows: rows * 2 * cfg.num_layers * width * (P + N) * itemsize / 2**20  # k, v
    chunk = sampling.default_max_rows(model, P + N)
    print(f"decode: {per_token / 1e6:.2f} MFLOP per generated token (average context)")
    print(f"default chunks: at most {chunk} rows (KV cache at most {mib(chunk):.1f} MiB)")
    for b in (int(x) for x in FLAGS.batches):
        rate = cached_rate(model, prompts(b), N, rounds)
        line = (
            f"cached decoding, batch {b:3d}: {rate:10.1f} tokens/s ({b * N / rate:.2f} s) | "
            f"{rate * per_token / 1e9:6.2f} GFLOP/s = {rate * per_token / train_flops:5.1%} "
            f"of the train step's"
        )
        if b > chunk:  # the same rows as one chunk, its whole KV cache read every step
            one = cached_rate(model, prompts(b), N, rounds, max_rows=b)
            line += f" | as one chunk ({mib(b):5.1f} MiB): {one:10.1f} tokens/s"
        print(line, flush=True)

    n, V = FLAGS.samples, FLAGS.volume_new_tokens
    forked, flat, agree = volume_rates(model, prompts(FLAGS.prompts), n, V, rounds)
    rows = FLAGS.prompts * n
    print(f"\n{FLAGS.prompts} prompts x {n} samples, {V} new tokens, temperature 1, no stops:")
    print(f"num_samples={n} (prefill once, fork): {forked:10.1f} tokens/s")
    print(f"flat batch of {rows} rows:           {flat:10.1f} tokens/s")
    print(f"ratio (num_samples / flat): {forked / flat:.2f}x; tokens identical: {agree:.1%}")


if __name__ == "__main__":
    # Flags are defined here, not at import, so that other benchmarks can import this
    # module beside benchmarks/train_overhead.py (both have --rounds).
    flags.DEFINE_integer("batch", 8, "Batch for the cached vs full-recompute comparison.")
    flags.DEFINE_integer("prompt_len", 64, "Prompt tokens per row.")
    flags.DEFINE_integer("new_tokens", 256, "Generated tokens per row.")
    flags.DEFINE_integer("rounds", 3, "Timed repetitions of each measurement (median).")
    flags.DEFINE_bool("scan_layers", False, "Scan over layers instead of unrolling.")
    flags.DEFINE_list("batches", "1,2,4,8,16,32,64,128,256", "Batches of the cached curve.")
    flags.DEFINE_integer("prompts", 64, "Prompts of the num_samples comparison.")
    flags.DEFINE_integer("samples", 16, "Samples per prompt of the num_samples comparison.")
    flags.DEFINE_integer("volume_new_tokens", 64, "New tokens per row, num_samples comparison.")
    flags.DEFINE_integer("train_steps", 5, "Timed bare train steps per round (after a warm-up).")
    app.run(main)
