"""Test evaluations of finished PMformer runs, on their best-validation parameters.

    python -m experiments.pmformer.evaluate --runs=runs/pmformer_etth1 [--only=REGEX] \\
        [--what=test,ni,drop] [--force]

The trainer runs every configured evaluator at every periodic evaluation, so a
sweep trains with validation only (configs/pmformer.py `evals=val`) and this
program evaluates each finished run's kept parameters once: `test` (the test split,
stride-1 windows, forecast.num_partitions partitions), `ni` (the N_I sweep: N_I in
1..32 partitions averaged) and `drop` (20..80 % of the features missing at
inference). It runs them once per finished run (result.json
status done or early_stopped, at any depth below a --runs folder) on the
parameters the trainer kept in `best/` (train.best_metric; the newest checkpoint
when the run kept none) and writes `extra_evals.json` beside result.json:
{"params": "best" | "final", "step": N, "eval": {name: metrics}}. report.py reads
it. Runs that already have every requested evaluation are skipped (--force redoes
them). Exit codes: 0 done, 2 no finished runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import ml_collections

FINISHED = ("done", "early_stopped")
NUM_PARTITIONS = (1, 2, 4, 8, 16, 32)  # the N_I sweep (PMformer paper, Fig. 5)
DROP_RATES = (0.2, 0.4, 0.6, 0.8)  # the missing-feature sweep (PMformer paper, Table 4)
EXTRA_FILE = "extra_evals.json"
WHAT = ("test", "ni", "drop")


def extra_evals(
    what: Sequence[str] = WHAT,
    ni: Sequence[int] = NUM_PARTITIONS,
    drop: Sequence[float] = DROP_RATES,
) -> dict[str, dict[str, Any]]:
    """Evaluator configs by name: 'test' (the test split with forecast.num_partitions),
    the N_I sweep ('ni', over `ni`) and the feature-drop sweep ('drop', over `drop`)."""
    kind = "experiments.pmformer.task"
    out: dict[str, dict[str, Any]] = {}
    if "test" in what:
        out["test"] = dict(kind=kind, split="test", batch_size=256)
    if "ni" in what:
        for n in ni:
            out[f"test_ni{n}"] = dict(kind=kind, split="test", batch_size=256, num_partitions=n)
    if "drop" in what:
        for r in drop:
            out[f"test_drop{round(r * 100)}"] = dict(
                kind=kind, split="test", batch_size=256, drop_rate=r
            )
    unknown = set(what) - set(WHAT)
    if unknown:
        raise ValueError(f"--what has unknown parts {sorted(unknown)}; use {', '.join(WHAT)}.")
    return out


def run_dirs(roots: Sequence[str]) -> list[str]:
    """Directories at any depth below `roots` holding both result.json and config.json."""
    out = []
    for root in roots:
        for dirpath, _, files in os.walk(root):
            if "result.json" in files and "config.json" in files:
                out.append(dirpath)
    return sorted(out)


def finished_runs(roots: Sequence[str]) -> list[str]:
    """Run directories below `roots` whose result.json says done or early_stopped."""
    out = []
    for run_dir in run_dirs(roots):
        with open(os.path.join(run_dir, "result.json")) as f:
            if json.load(f).get("status") in FINISHED:
                out.append(run_dir)
    return out


def _params(trainer: Any, run_dir: str) -> tuple[Any, str, int]:
    """The best-validation parameters if the run kept them, else the newest checkpoint's."""
    from framework import checkpoint, files

    best = files.read_json(os.path.join(run_dir, "best.json"), None)
    kept = isinstance(best, dict) and best.get("step") is not None
    which = "best" if trainer.config.train.best_metric and kept else "latest"
    params, step = checkpoint.restore_params(run_dir, which, trainer.abstract_state["params"])
    return params, {"best": "best", "latest": "final"}[which], step


def evaluate_run(
    run_dir: str,
    what: Sequence[str] = WHAT,
    force: bool = False,
    ni: Sequence[int] = NUM_PARTITIONS,
    drop: Sequence[float] = DROP_RATES,
) -> dict:
    """Runs the extra evaluations `what` on `run_dir`; writes and returns
    extra_evals.json's dict."""
    from framework.trainer import Trainer

    path = os.path.join(run_dir, EXTRA_FILE)
    wanted = extra_evals(what, ni, drop)
    previous: dict[str, Any] = {}
    if os.path.exists(path) and not force:
        with open(path) as f:
            previous = json.load(f)
        if set(wanted) <= set(previous.get("eval", {})):
            return previous
    with open(os.path.join(run_dir, "config.json")) as f:
        saved = json.load(f)["config"]
    config = ml_collections.ConfigDict(saved)
    config.evals = ml_collections.ConfigDict(wanted)
    trainer = Trainer(ml_collections.FrozenConfigDict(config), run_dir)
    params, which, step = _params(trainer, run_dir)
    results = {name: ev(params) for name, ev in trainer.evaluators.items()}
    keep = previous.get("eval", {}) if previous.get("step") == step else {}
    out = {"params": which, "step": step, "eval": {**keep, **results}}
    with open(path + ".tmp", "w") as f:  # replaced whole: an interruption keeps the old
        json.dump(out, f, indent=2)
    os.replace(path + ".tmp", path)
    return out


def summary(run_dir: str, out: dict) -> str:
    """One line: the run, which parameters were evaluated, and each evaluation's MSE."""
    test = {k: round(v["mse"], 4) for k, v in sorted(out["eval"].items())}
    return f"{run_dir} ({out['params']} @ step {out['step']}): {test}"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", action="append", required=True, help="a folder of runs (repeat)")
    p.add_argument("--only", default="", help="evaluate only runs whose path matches REGEX")
    p.add_argument(
        "--what", default="test", help="test (the test split), ni (N_I sweep), drop (feature drop)"
    )
    p.add_argument("--force", action="store_true", help="redo evaluations already written")
    p.add_argument("--ni", default=",".join(map(str, NUM_PARTITIONS)), help="N_I values")
    p.add_argument("--drop", default=",".join(map(str, DROP_RATES)), help="drop rates")
    args = p.parse_args(argv)
    what = [w for w in args.what.split(",") if w]
    try:
        ni = [int(n) for n in args.ni.split(",") if n]
        drop = [float(r) for r in args.drop.split(",") if r]
        extra_evals(what, ni, drop)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    runs = [r for r in finished_runs(args.runs) if re.search(args.only, r)]
    if not runs:
        print(f"error: no finished runs under {args.runs}", file=sys.stderr)
        return 2
    for run in runs:
        out = evaluate_run(run, what, args.force, ni, drop)
        print(summary(run, out), flush=True)
    return 0


if __name__ == "__main__":
    from framework import metrics

    metrics.quiet_library_logs()
    raise SystemExit(main())
