"""Chunked (online-softmax) attention against the reference at T = 1k-16k: time and memory.

    python benchmarks/attention.py [--lengths=1024,2048,4096,8192,16384] [--heads=4]
                                   [--head_dim=64] [--chunk=512] [--max_gib=6]

For each length, one jitted causal forward + backward (gradients w.r.t. q, k, v of the
summed output) of models/attention.attend (jax.nn.dot_product_attention, the [T, T]
scores materialised) and of models/attention.chunked_attend, batch 1. Memory is XLA's
own account of the compiled program (temporaries + outputs, the dry run's measure);
time is the median of --rounds calls, the two implementations alternating. The
reference is only run where its compiled program needs at most --max_gib (the machine
has to hold it); above that its memory is still reported.

Then the same comparison for the sampler's prompt pass (framework/decoding.prefill_program:
one forward of the prompt into an empty KV cache) of configs/quickstart.py's small model
(d_model 128, 4 layers, RoPE) at batch 1: XLA's compiled memory only (no run).
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

from models import attention  # noqa: E402

GIB = 2**30


def grad_fn(impl: str, chunk: int):
    """jit(grad of sum(attention(q, k, v))) for 'reference' or 'chunked'."""

    def loss(q, k, v):
        if impl == "chunked":
            out = attention.chunked_attend(q, k, v, chunk=chunk, causal=True)
        else:
            out = attention.attend(q, k, v, causal=True)
        return out.astype(jnp.float32).sum()

    return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))


def main(argv: list[str] | None = None) -> None:
    """Compiles both at each length, prints memory, times what fits."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", default="1024,2048,4096,8192,16384")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--head_dim", type=int, default=64)
    p.add_argument("--chunk", type=int, default=512)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max_gib", type=float, default=6.0, help="largest program run")
    p.add_argument("--skip_prefill", action="store_true", help="no prompt-pass memory table")
    args = p.parse_args(argv)
    print(
        f"{jax.devices()[0].platform}: causal forward + backward, batch 1, "
        f"{args.heads} heads x {args.head_dim}, chunk {args.chunk}"
    )
    print("| T | reference GiB | chunked GiB | reference s | chunked s | chunked / reference |")
    print("|--:|--:|--:|--:|--:|--:|")
    for T in (int(t) for t in args.lengths.split(",")):
        shape = (1, T, args.heads, args.head_dim)
        q, k, v = (jax.random.normal(jax.random.key(i), shape) for i in range(3))
        gib, run = {}, {}
        for impl in ("reference", "chunked"):
            compiled = grad_fn(impl, args.chunk).lower(q, k, v).compile()
            mem = compiled.memory_analysis()
            gib[impl] = (mem.temp_size_in_bytes + mem.output_size_in_bytes) / GIB
            if gib[impl] <= args.max_gib:
                run[impl] = compiled
        seconds = {impl: [] for impl in run}
        for fn in run.values():  # warm up
            jax.block_until_ready(fn(q, k, v))
        for _ in range(args.rounds):
            for impl, fn in run.items():
                t0 = time.perf_counter()
                jax.block_until_ready(fn(q, k, v))
                seconds[impl].append(time.perf_counter() - t0)
        med = {impl: statistics.median(s) for impl, s in seconds.items()}
        ref = f"{med['reference']:.3f}" if "reference" in med else "not run (memory)"
        chk = f"{med['chunked']:.3f}" if "chunked" in med else "not run (memory)"
        ratio = f"{med['chunked'] / med['reference']:.2f}" if len(med) == 2 else "-"
        print(
            f"| {T:,} | {gib['reference']:.2f} | {gib['chunked']:.2f} | {ref} | {chk} | {ratio} |",
            flush=True,
        )
    if not args.skip_prefill:
        prefill_memory([int(t) for t in args.lengths.split(",")], args.chunk)


def prefill_memory(lengths: list[int], chunk: int) -> None:
    """Compiled memory of the KV-cache prompt pass, reference vs chunked attention."""
    from flax import nnx  # noqa: PLC0415

    from configs import quickstart  # noqa: PLC0415
    from framework import decoding  # noqa: PLC0415
    from models.transformer import Transformer, TransformerConfig  # noqa: PLC0415

    fields = quickstart.get_config("size=small").model.to_dict()
    print("\nKV-cache prompt pass, quickstart size=small, batch 1 (compiled memory, GiB)")
    print("| T | reference | chunked |")
    print("|--:|--:|--:|")
    for T in lengths:
        gib = {}
        for impl in ("xla", "chunked"):
            cfg = TransformerConfig(**{**fields, "attention_impl": impl, "attention_chunk": chunk})
            model = nnx.eval_shape(lambda c=cfg: Transformer(c, rngs=nnx.Rngs(0)))
            graphdef, params = nnx.split(model)
            tokens = jax.ShapeDtypeStruct((1, T), jnp.int32)
            compiled = decoding.prefill_program.lower(
                graphdef, params, tokens, tokens, capacity=T + 64
            ).compile()
            mem = compiled.memory_analysis()
            gib[impl] = (mem.temp_size_in_bytes + mem.output_size_in_bytes) / GIB
        print(f"| {T:,} | {gib['xla']:.2f} | {gib['chunked']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
