"""Compress a text corpus into token files, one folder per method (methods.py).

    python -m experiments.equal_info.compress --corpus=DIR --out=DIR [--m1=RUN]
        [--methods=bytes,gzip,eq16,...] [--train_kb=2048] [--val_kb=256]
        [--example_bytes=2048] [--rows=64] [--sp_vocab=4096] [--first_byte=unigram|bos]

DIR (the corpus) holds train/ and val/ folders of UTF-8 .txt documents (data/pycorpus.py
writes one). Each split's documents, in name order, are concatenated up to --train_kb /
--val_kb and cut into examples of --example_bytes, each compressed on its own (the
paper's examples; SentencePiece tokenises whole documents). OUT/METHOD/SPLIT/ receives
shard-NNNNN.npy (uint16 token ids, the engine's `tokens` format) and shard-NNNNN.json
(bytes covered, tokens, windows). M1-driven methods (ac, eq*) need --m1, a byte-level
LM run (configs/equal_info.py stage=m1); its next-byte distributions drive the coder.
Before its first shard, each EqualInfoAC coder encodes the first 512 bytes of a group
of examples and decodes them back through M1, byte for byte (M1 must be exact).
Resumable: finished shards are kept and a rerun continues; a progress line shows
the rate and the time left. Text that is not UTF-8 is refused (exit 2, naming the file):
every method then covers the same characters. Exit codes: 0 done, 2 user error.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from data import arithmetic_coding as ac, compression, tokenizers
from experiments.equal_info import methods as methods_lib
from experiments.equal_info.methods import Method, window_cap
from framework import files
from framework.metrics import format_duration

SHARD_ROWS = 4  # groups of `rows` examples per shard
FIRST_BYTE = ("unigram", "bos")  # how M1 codes a row's first byte (m1_byte_model)


class CompressError(ValueError):
    """A user error (bad corpus, unknown method, missing M1)."""


def read_split(corpus: str, split: str, limit_bytes: int) -> list[bytes]:
    """The split's documents in name order up to limit_bytes (whole ones; the first one
    alone is cut at a character boundary when it is longer)."""
    files = sorted(glob.glob(os.path.join(corpus, split, "*.txt")))
    if not files:
        raise CompressError(f"{os.path.join(corpus, split)!r} holds no .txt documents.")
    docs, total = [], 0
    for path in files:
        with open(path, "rb") as f:
            raw = f.read()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CompressError(
                f"{path!r} is not UTF-8 (byte {e.start}); convert it or remove it "
                "(every method must cover the same text)."
            ) from None
        if docs and total + len(raw) > limit_bytes:
            break
        if not docs and len(raw) > limit_bytes:
            raw = raw[:limit_bytes].decode("utf-8", "ignore").encode()
        docs.append(raw)
        total += len(docs[-1])
    if not total:
        raise CompressError(f"{os.path.join(corpus, split)!r} holds only empty documents.")
    return docs


def examples_of(docs: Sequence[bytes], example_bytes: int) -> list[bytes]:
    """The concatenated documents cut into examples of example_bytes (the last shorter)."""
    text = b"".join(docs)
    return [text[i : i + example_bytes] for i in range(0, len(text), example_bytes)]


def m1_byte_model(
    run_dir: str, first_freqs: np.ndarray, first_byte: str = "unigram"
) -> tuple[compression.ByteModel, int]:
    """(ByteModel, non-embedding parameters) of a byte-level LM run's latest checkpoint.

    Position t > 0 of a row gets M1's next-byte distribution after bytes 0..t-1 of the
    row (renormalised over the 256 bytes). Position 0, with first_byte='unigram',
    `first_freqs` (the corpus's byte frequencies): an M1 trained on packed rows sees
    BOS only before a document's start, so its distribution after BOS is a document
    opening's, not that of a byte somewhere in the text as a window's first byte is (it
    cost ~8 bits). With first_byte='bos', M1's distribution after BOS, and BOS starts
    the context of every position (the paper's M1, trained with data.bos_every_row)."""
    if first_byte not in FIRST_BYTE:
        raise CompressError(f"first_byte={first_byte!r}; choose one of {', '.join(FIRST_BYTE)}.")
    from flax import nnx

    from framework import decoding, sample
    from models import transformer

    try:
        model, tokenizer, _ = sample.load_run(run_dir)
    except sample.SampleError as e:
        raise CompressError(f"--m1: {e}") from None
    if not isinstance(tokenizer, tokenizers.ByteTokenizer):
        raise CompressError(f"--m1={run_dir!r} is not a byte-level LM (data.tokenizer='byte').")
    graphdef, params = nnx.split(model)
    first_V = np.log(first_freqs / first_freqs.sum()).astype(np.float32)

    def logprobs(bytes_BT: np.ndarray) -> np.ndarray:
        if first_byte == "bos":
            bos_B1 = np.full((len(bytes_BT), 1), tokenizer.bos_id, np.int32)
            inputs_BT = np.concatenate([bos_B1, bytes_BT[:, :-1]], axis=1)
            return np.asarray(decoding.all_logprobs(graphdef, params, inputs_BT))[..., :256]
        logp_BTV = np.asarray(decoding.all_logprobs(graphdef, params, bytes_BT[:, :-1]))
        first_B1V = np.broadcast_to(first_V, (len(bytes_BT), 1, 256))
        return np.concatenate([first_B1V, logp_BTV[..., :256]], axis=1)

    return logprobs, transformer.param_count(model.cfg)["non_embedding"]


def _coder_bits(coder: str, group: list[bytes], ctx: dict) -> tuple[list[list[int]], dict]:
    """Bits of each example of a group under `coder`, and counters (windows, cut)."""
    if coder == "gzip":
        return [compression.gzip_bits(x) for x in group], {}
    if coder == "static_ac":
        return [ac.stream_encode(list(x), [ctx["unigram"]] * len(x)) for x in group], {}
    if coder == "ac":
        bits = compression.ac_bits(group, ctx["m1"], rows=ctx["rows"], context=ctx["context"])
        return bits, {}
    b = int(coder[2:])
    eq = compression.EqualInfo(b, max_bytes=window_cap(ctx["max_window_bytes"], b))
    windows = eq.encode(group, ctx["m1"], rows=ctx["rows"])
    bits = [[b for v, _ in w for b in compression.int_to_bits(v, eq.bits)] for w in windows]
    if ctx.get("verify"):  # once per coder: the first group's first 512 bytes
        ctx["verify"] = False
        head = [x[:512] for x in group[: ctx["rows"]]]
        check = compression.EqualInfo(eq.bits, max_bytes=eq.max_bytes)
        values = [[v for v, _ in w] for w in check.encode(head, ctx["m1"], rows=ctx["rows"])]
        back = check.decode(values, [len(x) for x in head], ctx["m1"], rows=ctx["rows"])
        if back != head:
            raise RuntimeError(f"{coder}: decoding did not give the text back (M1 not exact).")
        print(f"  {coder}: {len(head)} examples' first 512 bytes decoded back exactly", flush=True)
    return bits, {k: eq.stats[k] for k in ("windows", "cut", "capped")}


def _save_npy(path: str, ids: np.ndarray) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        np.save(f, ids)
    os.replace(tmp, path)


def _compress_split(
    coder: str, methods: list[Method], split: str, docs: list[bytes], out: str, ctx: dict
) -> None:
    """Writes the shards of one coder's methods for one split (skipping finished ones)."""
    # SentencePiece reads whole documents (whole characters); the coders examples
    whole = coder in ("bytes", "sp")
    units = list(docs) if whole else examples_of(docs, ctx["example_bytes"])
    per_shard = ctx["rows"] * SHARD_ROWS
    shards = range(0, len(units), per_shard)
    start, done_bytes, total = time.time(), 0, sum(map(len, units))
    for i, s in enumerate(shards):
        group = units[s : s + per_shard]
        paths = [os.path.join(out, m.name, split, f"shard-{i:05d}") for m in methods]
        if all(os.path.exists(p + ".json") for p in paths):
            continue
        if coder == "bytes":
            toks, stats = [np.frombuffer(b"".join(group), np.uint8)], {}
        elif coder == "sp":
            toks = [np.concatenate([ctx["sp"].encode(x.decode()) for x in group])]
            stats = {}
        else:
            bits, stats = _coder_bits(coder, group, ctx)
        for m, p in zip(methods, paths):
            if coder not in ("bytes", "sp"):
                toks = [compression.bits_to_tokens(b, m.token_bits) for b in bits]
            ids = np.concatenate(toks).astype(np.uint16)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            _save_npy(p + ".npy", ids)
            files.atomic_write_json(
                p + ".json", dict(bytes=sum(map(len, group)), tokens=len(ids), **stats)
            )
        done_bytes += sum(map(len, group))
        rate = done_bytes / max(time.time() - start, 1e-9)
        left = sum(map(len, units[s + per_shard :])) / rate
        print(
            f"  {coder} {split}: shard {i + 1}/{len(shards)}, {rate / 1024:.1f} KB/s, "
            f"{format_duration(left)} left of {total / 1024:.0f} KB",
            flush=True,
        )


def method_stats(out: str, method: str) -> dict:
    """Summed shard counters of a method per split, with bytes per token (the ratio)."""
    res = {}
    for split in ("train", "val"):
        tot: dict = {}
        for path in sorted(glob.glob(os.path.join(out, method, split, "shard-*.json"))):
            for k, v in files.read_json(path).items():
                tot[k] = tot.get(k, 0) + v
        if tot:
            tot["ratio"] = tot["bytes"] / tot["tokens"]
            res[split] = tot
    return res


def compress(
    corpus: str,
    out: str,
    methods: Sequence[str],
    *,
    m1: str = "",
    train_bytes: int = 2 << 20,
    val_bytes: int = 256 << 10,
    example_bytes: int = 2048,
    rows: int = 64,
    sp_vocab: int = 4096,
    max_window_bytes: int = 64,
    first_byte: str = "unigram",
    log: Callable[[str], None] = print,
) -> dict[str, dict]:
    """Writes every method's token shards (module docstring); returns method_stats.
    `first_byte`: how M1 codes a row's first byte (m1_byte_model)."""
    try:
        chosen = [methods_lib.get(m) for m in methods]
    except ValueError as e:
        raise CompressError(str(e)) from None
    sizes = dict(
        train_bytes=train_bytes, val_bytes=val_bytes, rows=rows, example_bytes=example_bytes
    )
    for name, value in sizes.items():
        if value < 1:
            raise CompressError(
                f"{name}={value}: --train_kb, --val_kb, --example_bytes and --rows must be "
                "positive."
            )
    if any(m.uses_m1 for m in chosen) and not m1:
        raise CompressError("methods ac and eq* need --m1, a byte-level LM run.")
    splits = {"train": read_split(corpus, "train", train_bytes)}
    splits["val"] = read_split(corpus, "val", val_bytes)
    ctx = dict(rows=rows, example_bytes=example_bytes, max_window_bytes=max_window_bytes)
    settings = dict(ctx, m1=os.path.abspath(m1) if m1 else "", sp_vocab=sp_vocab,
                    train_bytes=train_bytes, val_bytes=val_bytes,
                    corpus=os.path.abspath(corpus))  # fmt: skip
    if first_byte != "unigram":  # (manifests written before the option stay valid)
        settings["first_byte"] = first_byte
    _check_manifest(out, settings, record=False)  # refuse early; record once M1 and SP load
    ctx["unigram"] = compression.unigram_freqs(b"".join(splits["train"]))
    if any(m.uses_m1 for m in chosen):
        ctx["context"] = _m1_context(m1)
        ctx["m1"], ctx["m1_params"] = m1_byte_model(m1, ctx["unigram"], first_byte)
    if any(m.coder == "sp" for m in chosen):
        ctx["sp"] = _sentencepiece(out, splits["train"], sp_vocab)
    _check_manifest(out, settings)
    if "m1" in ctx:
        record = dict(run=os.path.abspath(m1), non_embedding=ctx["m1_params"])
        files.atomic_write_json(os.path.join(out, "m1.json"), record)
    for coder in dict.fromkeys(m.coder for m in chosen):
        group = [m for m in chosen if m.coder == coder]
        for split, docs in splits.items() if group else ():
            log(f"compressing {split} with {coder} -> {', '.join(m.name for m in group)}")
            ctx["verify"] = split == "train"  # the first group: a failure shows early
            _compress_split(coder, group, split, docs, out, ctx)
    return {m: method_stats(out, m) for m in methods}


def _check_manifest(out: str, settings: dict, record: bool = True) -> None:
    """Refuses OUT written with other settings; records them in OUT/manifest.json (if
    `record`). A manifest without the corpus (written before it was kept) stays valid."""
    path = os.path.join(out, "manifest.json")
    if os.path.exists(path):
        old = files.read_json(path)
        keys = settings.keys() | old.keys()
        if "corpus" not in old:  # written before the corpus was recorded
            keys -= {"corpus"}
        diff = sorted(k for k in keys if settings.get(k) != old.get(k))
        if diff:
            raise CompressError(
                f"{out!r} holds shards made with other settings ({', '.join(diff)}); "
                "give a new --out or delete it."
            )
        return
    if record:
        os.makedirs(out, exist_ok=True)
        files.atomic_write_json(path, settings)


def _m1_context(run_dir: str) -> int:
    from framework import config as config_lib

    return int(config_lib.saved_config(run_dir).data.seq_len)


def _sentencepiece(out: str, train_docs: list[bytes], vocab: int) -> tokenizers.Tokenizer:
    """A SentencePiece model trained on the train split (once; byte fallback on)."""
    prefix = os.path.join(out, "sp", f"sentencepiece_{vocab}")
    if not os.path.exists(prefix + ".model"):
        os.makedirs(os.path.dirname(prefix), exist_ok=True)
        text = os.path.join(out, "sp", "train.txt")
        with open(text, "wb") as f:
            f.write(b"".join(train_docs))
        try:
            tokenizers.train_sentencepiece(
                [text], vocab_size=vocab, model_prefix=prefix, byte_fallback=True,
                character_coverage=0.9995,
            )  # fmt: skip
        except ValueError as e:
            raise CompressError(str(e)) from None
    return tokenizers.SentencePieceTokenizer(prefix + ".model")


def main(argv: Sequence[str] | None = None) -> int:
    """Parses the flags and compresses (module docstring); 0 done, 2 user error."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--m1", default="")
    p.add_argument("--methods", default="bytes,gzip,static_ac")
    p.add_argument("--train_kb", type=int, default=2048)
    p.add_argument("--val_kb", type=int, default=256)
    p.add_argument("--example_bytes", type=int, default=2048)
    p.add_argument("--rows", type=int, default=64)
    p.add_argument("--sp_vocab", type=int, default=4096)
    p.add_argument("--first_byte", default="unigram", choices=FIRST_BYTE)
    args = p.parse_args(argv)
    try:
        stats = compress(
            args.corpus, args.out, args.methods.split(","), m1=args.m1,
            train_bytes=args.train_kb << 10, val_bytes=args.val_kb << 10,
            example_bytes=args.example_bytes, rows=args.rows, sp_vocab=args.sp_vocab,
            first_byte=args.first_byte,
        )  # fmt: skip
    except CompressError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for m, s in stats.items():
        print(f"{m:12s} bytes/token {s['val']['ratio']:.3f} (val), {s['train']['ratio']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
