"""Streaming LM data against the in-memory text pipeline, side by side in one run.

    python benchmarks/streaming_data.py [--mb=50] [--seq_len=256] [--batch=32]

Writes a corpus of `--mb` MB of random-word documents as JSONL, prepares it with
`python -m data.prepare`'s code (timed: MB/s), then reads 200 batches through (a) the
in-memory pipeline (data.text: read, tokenise and pack everything, then serve) and (b)
the streaming pipeline (data.streaming) with 1 and 2 reader threads, printing start-up
seconds, tokens/s and the ratios. Byte tokenizer (the default), so the tokeniser's own
speed is not what is compared.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from data import prepare, sources, streaming, text, tokenizers  # noqa: E402

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and", "runs"]


def write_corpus(path: str, mb: int) -> None:
    rng = random.Random(0)
    with open(path, "w") as f:
        size = 0
        while size < mb << 20:
            doc = " ".join(rng.choice(WORDS) for _ in range(rng.randint(50, 2000)))
            line = json.dumps({"text": doc}) + "\n"
            f.write(line)
            size += len(line)


def tokens_per_s(batches, n: int, tokens_per_batch: int) -> float:
    it = iter(batches)
    next(it)  # threads started, first batch ready
    t0 = time.time()
    for _ in range(n):
        next(it)
    if hasattr(it, "close"):
        it.close()
    return n * tokens_per_batch / (time.time() - t0)


def main() -> None:
    """Prepares the corpus, reads both pipelines, prints the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mb", type=int, default=50)
    p.add_argument("--seq_len", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args()
    byte, n = tokenizers.ByteTokenizer(), 200
    per_batch = args.batch * args.seq_len
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "corpus.jsonl")
        write_corpus(src, args.mb)
        t0 = time.time()
        manifest = prepare.prepare(src, os.path.join(tmp, "shards"))
        prep_s = time.time() - t0
        print(
            f"prepare: {manifest['documents']:,} docs, {manifest['bytes'] / 1e6:.1f} MB in "
            f"{prep_s:.1f} s ({manifest['bytes'] / 1e6 / prep_s:.1f} MB/s, sha256 included)"
        )
        texts = os.path.join(tmp, "texts")
        os.makedirs(texts)
        with open(src) as f, open(os.path.join(texts, "all.txt"), "w") as out:
            out.write("\n".join(json.loads(line)["text"] for line in f))
        t0 = time.time()
        data = text.load_lm_data(texts, tokenizer=byte, seq_len=args.seq_len)
        ds = text.make_lm_dataset(
            data.train, batch_size=args.batch, seed=0, shuffle=True, num_epochs=None
        )
        rows = {"in memory": (time.time() - t0, tokens_per_s(ds, n, per_batch))}
        docs = sources.open_documents(f"arrayrecord:{tmp}/shards")
        for workers in (1, 2):
            t0 = time.time()
            sd = streaming.StreamingData(
                docs, (0, len(docs)), docs, (0, 1), byte, args.seq_len, workers
            )
            ds = sd.train_dataset(batch_size=args.batch, seed=0, shard_index=0, shard_count=1)
            rows[f"streaming x{workers}"] = (time.time() - t0, tokens_per_s(ds, n, per_batch))
    print(f"{'pipeline':<14} {'start s':>8} {'tokens/s':>12} {'vs in memory':>13}")
    base = rows["in memory"][1]
    for name, (start, tps) in rows.items():
        print(f"{name:<14} {start:8.2f} {tps:12,.0f} {tps / base:12.2f}x")


if __name__ == "__main__":
    main()
