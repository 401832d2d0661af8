"""The one command of the Equal-Info Windows reproduction at CPU scale.

    python -m experiments.equal_info.run --workdir=runs/eqinfo [--variant=cpu|cpu_bos|cpu_4mb|tiny]
        [--data_path=CORPUS] [--parallel=2 | --inline]

Stages (configs/equal_info.py; finished runs, shards and evaluations are skipped, so an
interrupted reproduction continues where it stopped):
  1 m1        WORKDIR/m1/base: a byte-level LM on the corpus (M1);
  2 compress  WORKDIR/tokens/METHOD: the corpus's first train/val bytes compressed by
              every method (experiments/equal_info/compress.py), EqualInfoAC's
              decoding checked on a group of examples;
  3 m2        WORKDIR/m2/method=METHOD: an LM on each method's tokens, same steps;
  4 evaluate  bits/byte, uniform and unigram lines, FLOPs/byte, per-window-position loss;
  5 report    WORKDIR/report (experiments/equal_info/report.py).
The corpus is the Python standard library's sources (written to WORKDIR/data), or with
--data_path a folder holding train/ and val/ folders of UTF-8 .txt documents.
`cpu` takes about 1 h 45 min on 2 cores (M1 12 min, compression ~25, M2 ~65 for seven
runs two at a time); `cpu_bos` (M1 trained with BOS before every row, which codes each
window's first byte after BOS as the paper's M1 did; EqualInfoAC[16], [32], [64] only)
about 40 min; `cpu_4mb` (every method from 4 MB of training text, M2 also on
EqualInfoAC[64], [128] and [16, 65k]: the README's results) about 3 h 20 min; `tiny` (the test)
well under a minute. Exit codes: 0 done, 1 M1 did not finish (diverged or crashed),
2 user error.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Sequence

from experiments import reproduction
from experiments.equal_info import compress, evaluate, report
from experiments.equal_info.methods import SP_VOCAB
from framework import config as config_lib, files, sweep

CONFIG = os.path.join(sweep.REPO, "configs", "equal_info.py")


@dataclasses.dataclass(frozen=True)
class Plan:
    """How much of the corpus each method compresses, and which methods."""

    train_kb: int
    val_kb: int
    example_bytes: int
    rows: int  # examples coded at once (M1's batch)
    methods: tuple[str, ...]  # compressed (M2 trains on the config's subset)
    first_byte: str = "unigram"  # how M1 codes a window's first byte (compress.py)


PLANS = {
    "tiny": Plan(24, 8, 512, 8, ("bytes", "sp", "gzip", "static_ac", "ac", "eq16", "eq16_65k")),
    "cpu": Plan(
        1536, 192, 2048, 64,
        ("bytes", "sp", "gzip", "gzip_65k", "static_ac", "static_ac_65k", "ac", "ac_65k",
         "eq16", "eq16_65k", "eq32", "eq32_65k"),
    ),
    "cpu_bos": Plan(1536, 192, 2048, 64, ("eq16", "eq32", "eq64"), first_byte="bos"),
    "cpu_4mb": Plan(
        4096, 192, 2048, 64,
        ("bytes", "sp", "gzip", "gzip_65k", "static_ac", "static_ac_65k", "ac", "ac_65k",
         "eq16", "eq16_65k", "eq32", "eq32_65k", "eq64", "eq64_65k", "eq128", "eq128_65k"),
    ),
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the stages (module docstring); 0 done, 2 user error."""
    args = reproduction.parse_args(argv, __doc__.split("\n")[0])
    if not reproduction.known_variant(args, PLANS):
        return 2
    start, plan = time.time(), PLANS[args.variant]
    workdir = os.path.abspath(args.workdir)
    corpus = os.path.abspath(args.data_path) if args.data_path else ""
    base = f"variant={args.variant},data_dir={os.path.join(workdir, 'data')}"
    tokens_dir = os.path.join(workdir, "tokens")
    # --data_path is a corpus folder (train/, val/), passed as M1's data.path below
    sweep_args = argparse.Namespace(**{**vars(args), "data_path": ""})
    m1_args = argparse.Namespace(**{**vars(sweep_args), "only": None})
    try:
        if corpus:
            # before M1 trains, the text the methods will compress: a bad file fails now
            compress.read_split(corpus, "train", plan.train_kb << 10)
            compress.read_split(corpus, "val", plan.val_kb << 10)
            m1_args.data_path = os.path.join(corpus, "train")
        m1_dir = os.path.join(workdir, "m1", "base")
        [m1] = reproduction.run_sweep(
            CONFIG, f"{base},stage=m1", os.path.join(workdir, "m1"), m1_args
        )
        if m1["status"] not in sweep.FINISHED:
            print(f"error: M1 ended {m1['status']}; see {m1_dir}/log.txt.", file=sys.stderr)
            return 1
        corpus = corpus or os.path.dirname(config_lib.saved_config(m1_dir).data.path)
        compress.compress(
            corpus, tokens_dir, plan.methods, m1=m1_dir, train_bytes=plan.train_kb << 10,
            val_bytes=plan.val_kb << 10, example_bytes=plan.example_bytes, rows=plan.rows,
            sp_vocab=SP_VOCAB[args.variant], first_byte=plan.first_byte,
        )  # fmt: skip
        m2 = os.path.join(workdir, "m2")
        reproduction.run_sweep(CONFIG, f"{base},stage=m2,tokens_dir={tokens_dir}", m2, sweep_args)
    except (config_lib.ConfigError, compress.CompressError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name in sorted(n for n in os.listdir(m2) if n.startswith("method=")):
        result = files.read_json(os.path.join(m2, name, "result.json"), None)
        status = result.get("status") if isinstance(result, dict) else "not finished"
        if status not in sweep.FINISHED:
            print(f"not evaluating m2/{name}: {status}", flush=True)
            continue
        print(f"evaluating m2/{name}", flush=True)
        evaluate.evaluate(os.path.join(m2, name), name.split("=", 1)[1], tokens_dir)
    report.main(reproduction.report_argv(args))
    print(f"equal_info {args.variant} finished in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
