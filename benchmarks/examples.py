"""Example-level training: packed rows (several examples per row, segment ids) versus one
example per row, on the same examples, in one run.

    python benchmarks/examples.py [--steps=20] [--rounds=3] [--seq_len=128] [--batch=16]

The data: 2,000 generated prompt/completion pairs of mixed lengths (a few to ~60 byte
tokens, like multi-step arithmetic solutions); the model: configs/quickstart.py's 'small'
LM. Each mode builds its trainer (data.format='examples', data.pack_examples on/off),
compiles its step, then times `--steps` steps on the same fixed device batches, in
alternating rounds; printed per mode: examples/s and real (non-padding) tokens/s, and
the packed / one-per-row ratio of examples/s (the work that matters: each example's
tokens are trained once either way).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from configs import quickstart  # noqa: E402
from framework import sharding, trainer as trainer_lib  # noqa: E402


def write_examples(path: str, n: int = 2000, seed: int = 0) -> None:
    """Prompt/completion pairs whose lengths vary like short worked solutions."""
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for _ in range(n):
            terms = rng.integers(1, 99, size=int(rng.integers(2, 7)))
            prompt = "+".join(str(t) for t in terms) + "="
            steps = np.cumsum(terms)[1:]
            completion = " ".join(f"{s}" for s in steps) + f"\nA: {int(steps[-1])}"
            f.write(json.dumps({"prompt": prompt, "completion": completion}) + "\n")


def build(path: str, workdir: str, packed: bool, seq_len: int, batch: int):
    """A trainer, its compiled step, a state and a few device batches for one mode."""
    c = quickstart.get_config("size=small,steps=10")
    c.data.update(format="examples", path=path, pack_examples=packed, seq_len=seq_len)
    c.data.val_fraction = 0.0
    c.evals = {}
    c.train.batch_size = batch
    t = trainer_lib.Trainer(c, workdir)
    step = t.compile_step()
    it = iter(t.train_dataset())
    batches = [sharding.put_batch(next(it), t.batch_sharding) for _ in range(8)]
    return t, step, batches


def count(batch: dict) -> tuple[int, int]:
    """(examples, real tokens) in a batch: segments that carry loss, non-padding inputs."""
    seg = np.asarray(batch["segment_ids"])
    return int(sum(len(set(row[row > 0].tolist())) for row in seg)), int((seg > 0).sum())


def time_mode(t, step, batches, steps: int) -> float:
    """Seconds for `steps` steps cycling over the device batches (state donated)."""
    state = t.init_state()
    state, m = step(state, batches[0], t.schedule_args)  # warm
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for i in range(steps):
        state, m = step(state, batches[i % len(batches)], t.schedule_args)
    jax.block_until_ready(m)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seq_len", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "examples.jsonl")
        write_examples(path)
        modes = {
            name: build(path, os.path.join(tmp, name), packed, args.seq_len, args.batch)
            for name, packed in (("packed", True), ("one per row", False))
        }
        rates: dict[str, list[tuple[float, float]]] = {name: [] for name in modes}
        for _ in range(args.rounds):
            for name, (t, step, batches) in modes.items():
                wall = time_mode(t, step, batches, args.steps)
                per = [count(jax.device_get(batches[i % len(batches)])) for i in range(args.steps)]
                rates[name].append((sum(e for e, _ in per) / wall, sum(k for _, k in per) / wall))
    for name, r in rates.items():
        ex = statistics.median(x for x, _ in r)
        tok = statistics.median(y for _, y in r)
        print(f"{name:<12} {ex:8.1f} examples/s  {tok:9.0f} real tokens/s  (median of {len(r)})")
    ratio = statistics.median(x for x, _ in rates["packed"]) / statistics.median(
        x for x, _ in rates["one per row"]
    )
    print(f"packed / one per row examples/s = {ratio:.2f}x")


if __name__ == "__main__":
    main()
