"""The one command of the Gemini 1.5 (MoE, long context) reproduction at CPU scale.

    python -m experiments.long_context_moe.run --workdir=runs/moe [--variant=cpu|tiny]
        [--data_path=HAYSTACK.txt] [--parallel=2 | --inline]

Stages (configs/long_context_moe.py; finished runs and evaluations are skipped, so an
interrupted reproduction continues where it stopped):
  1 pretrain  WORKDIR/pretrain: byte-level LMs on the Python standard library's sources,
              each arm (dense, moe, and in `cpu` moe_nobalance, dense_params; dense and
              moe at 2 seeds);
  2 needle    WORKDIR/needle_lm: 2-layer LMs (dense and moe, seed 0) trained from scratch
              on haystack text where half the rows hide 1-3 needles and end with the
              question and the answer (loss on every byte; `stage=needle_lm`);
  3 evaluate  each needle run: the depth x length recall grid (lengths up to 4x the
              trained length) and multi-needle recall; each pretrained run: NLL vs token
              position on held-out sources (within and beyond the trained length) with the
              power-law fit, and the MoE runs' expert loads;
  4 report    WORKDIR/report (experiments/long_context_moe/report.py).
`cpu` takes about 65 minutes on 2 cores (measured by stage, README); `tiny` (the test)
about 30 s.
`--data_path` is the needles' haystack (a UTF-8 text file, e.g.
../shared/data/text/tinyshakespeare.txt; default the embedded English corpus), checked
before any training.
Exit codes: 0 done, 1 a run failed (the report is still written), 2 user error.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Sequence

from experiments import reproduction
from experiments.long_context_moe import evaluate, needle, report
from framework import config as config_lib, sweep

CONFIG = os.path.join(sweep.REPO, "configs", "long_context_moe.py")


@dataclasses.dataclass(frozen=True)
class Plan:
    """The evaluation settings of a variant (lengths in bytes = tokens)."""

    trained: int  # the trained sequence length
    depths: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    length_factors: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    counts: tuple[int, ...] = (1, 2, 3)
    trials: int = 10
    nll_factor: int = 4  # NLL scored over nll_factor x the trained length
    nll_docs: int = 200  # windows

    def needle_settings(self) -> dict:
        lengths = [int(f * self.trained) - 8 for f in self.length_factors]
        return (
            dict(
                needle_lengths=lengths,
                depths=list(self.depths),
                multi_length=self.trained - 8,
                counts=list(self.counts),
                trials=self.trials,
            )
            | self.nll_settings()
        )

    def nll_settings(self) -> dict:
        return dict(
            nll_len=self.nll_factor * self.trained, nll_docs=self.nll_docs, load_len=self.trained
        )


PLANS = {
    "tiny": Plan(
        trained=128,
        depths=(0.0, 1.0),
        length_factors=(1.0, 2.0),
        counts=(1,),
        trials=2,
        nll_factor=2,
        nll_docs=4,
    ),
    "cpu": Plan(trained=256),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the stages (module docstring); 0 done, 1 a run failed, 2 user error."""
    args = reproduction.parse_args(argv, __doc__.split("\n")[0])
    if not reproduction.known_variant(args, PLANS):
        return 2
    start, plan = time.time(), PLANS[args.variant]
    workdir = os.path.abspath(args.workdir)
    data_dir = os.path.join(workdir, "data")
    haystack = os.path.abspath(args.data_path) if args.data_path else ""
    base = f"variant={args.variant},data_dir={data_dir},haystack={haystack}"
    # --data_path is the needles' haystack, not the corpus: not a data.path override
    sweep_args = argparse.Namespace(**{**vars(args), "data_path": ""})
    longest = max(plan.needle_settings()["needle_lengths"])
    problem = args.data_path and needle.check_haystack(args.data_path, plan.trained, longest)
    if problem:
        print(f"error: --data_path: {problem}", file=sys.stderr)
        return 2
    try:
        pretrain = os.path.join(workdir, "pretrain")
        rows = reproduction.run_sweep(CONFIG, base, pretrain, sweep_args)
        rows += reproduction.run_sweep(
            CONFIG,
            f"{base},stage=needle_lm",
            os.path.join(workdir, "needle_lm"),
            sweep_args,
        )
    except config_lib.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _, eval_haystack = needle.split_haystack(needle.haystack_text(args.data_path))
    corpus_dir = os.path.dirname(os.path.normpath(_corpus_train(pretrain)))
    docs = [text for _, text in _val_documents(corpus_dir)]
    for run_dir in evaluate.run_dirs(os.path.join(workdir, "needle_lm")):
        print(f"evaluating {os.path.relpath(run_dir, workdir)} (needles, NLL)", flush=True)
        evaluate.evaluate(run_dir, plan.needle_settings(), eval_haystack, docs)
    for run_dir in evaluate.run_dirs(pretrain):
        print(f"evaluating {os.path.relpath(run_dir, workdir)} (NLL, expert load)", flush=True)
        evaluate.evaluate(run_dir, plan.nll_settings(), eval_haystack, docs)
    report.main([f"--workdir={workdir}"] + ([f"--readme={args.readme}"] if args.readme else []))
    print(f"long_context_moe {args.variant} finished in {time.time() - start:.0f} s")
    failed = sum(r["status"] == "failed" for r in rows)
    if failed:
        print(f"error: {failed} run(s) failed; see each stage's results.md.", file=sys.stderr)
        return 1
    return 0


def _corpus_train(pretrain: str) -> str:
    """The corpus train folder the pretraining runs read (from one run's saved config)."""
    run = evaluate.run_dirs(pretrain)[0]
    return config_lib.saved_config(run).data.path


def _val_documents(corpus_dir: str):
    """(name, text) of the corpus's held-out documents, sorted by name."""
    val = os.path.join(corpus_dir, "val")
    for name in sorted(os.listdir(val)):
        with open(os.path.join(val, name), encoding="utf-8") as f:
            yield name, f.read()


if __name__ == "__main__":
    sys.exit(main())
