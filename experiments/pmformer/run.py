"""The one command of the PMformer reproduction: its sweeps, their evaluations, the report.

    python -m experiments.pmformer.run --workdir=runs/pmformer \\
        --data_path=../shared/data/ett/ETTh1.csv [--variant=reduced|full|tiny] \\
        [--parallel=2 | --inline] [--only=REGEX] [--readme=experiments/pmformer/README.md]

Each variant is a list of stages (PLANS). A stage is one framework.sweep of
configs/pmformer.py into WORKDIR/<stage> (one folder per seed when it has several),
then experiments/pmformer/evaluate.py on its finished runs: the test split on every
run's best-validation parameters, and the N_I and feature-drop sweeps on the runs its
`ni_drop` pattern names. Stages marked `csv` need --data_path (an ETT-format CSV such
as ETTh1); without one they are skipped with a note. Then
experiments/pmformer/report.py writes WORKDIR/report from every run below WORKDIR.
Finished points and evaluations are skipped, so an interrupted reproduction continues
where it stopped. --only restricts the sweep points (by name) of every stage.

  reduced  ETTh1, lookback 512: PMformer (S = 3), S = 1, S = D and DLinear at
           H = 96/192/336/720; the sparse synthetic series: S = 1, 2, 4, 8, D,
           with N_I and feature drop. About 30 minutes on 2 cores.
  full     the published model size (size=paper) on ETTh1: the four models at the
           four horizons and S = 1..D at H = 96, N_I and feature drop; both
           synthetic series, every S, 3 seeds. Many CPU-hours; a GPU job.
  tiny     the grouped synthetic series at size=tiny, S = 1, 2, D, with N_I in {1, 8}
           and a drop rate of 0.8 (the test).
Exit codes: 0 done, 2 user error.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import time
from collections.abc import Sequence
from typing import Any

from experiments import reproduction
from experiments.pmformer import evaluate, report
from framework import config as config_lib, sweep

CONFIG = os.path.join(sweep.REPO, "configs", "pmformer.py")


@dataclasses.dataclass(frozen=True)
class Stage:
    """One sweep of configs/pmformer.py and the evaluations of its runs."""

    name: str  # folder below --workdir (with _seed<k> appended when seeds has several)
    arg: str  # the config file's argument
    only: str | None = None  # the sweep points to run (regex on point names)
    csv: bool = False  # trains on --data_path; skipped without one
    seeds: tuple[int, ...] = (0,)
    ni_drop: str = ""  # runs (regex on their folders) that get the N_I and drop sweeps
    ni: tuple[int, ...] = evaluate.NUM_PARTITIONS  # the N_I values of those sweeps
    drop: tuple[float, ...] = evaluate.DROP_RATES  # and their drop rates


_ETTH1_H96 = "horizon=96_name=pmformer_subset_size=(3|0)_"
PLANS: dict[str, list[Stage]] = {
    "tiny": [
        Stage(
            "synthetic",
            "size=tiny,sweep=S,evals=none",
            only="^subset_size=(1|2|0)$",
            ni_drop="=(2|0)$",
            ni=(1, 8),
            drop=(0.8,),
        ),
    ],
    "reduced": [
        Stage("etth1_L512", "sweep=horizon,evals=val,lookback=512", csv=True),
        Stage(
            "sparse",
            "size=synthetic,sweep=S,synth=sparse,evals=val,horizon=48",
            only="^subset_size=(1|2|4|8|0)$",
            ni_drop="subset_size=(2|4|8|0)$",
        ),
    ],
    "full": [
        Stage("etth1_paper", "size=paper,sweep=horizon,evals=val", csv=True, ni_drop=_ETTH1_H96),
        Stage(
            "etth1_paper_S",
            "size=paper,sweep=S,features=7,evals=val",
            csv=True,
            ni_drop="subset_size=(3|0)$",
        ),
        Stage(
            "grouped",
            "size=synthetic,sweep=S,evals=val,horizon=48",
            seeds=(0, 1, 2),
            ni_drop="subset_size=(2|4|0)$",
        ),
        Stage(
            "sparse",
            "size=synthetic,sweep=S,synth=sparse,evals=val,horizon=48",
            seeds=(0, 1, 2),
            ni_drop="subset_size=(2|4|8|0)$",
        ),
    ],
}


def stage_dirs(stage: Stage, workdir: str) -> list[tuple[int, str]]:
    """(seed, folder) of each of a stage's sweeps."""
    if len(stage.seeds) == 1:
        return [(stage.seeds[0], os.path.join(workdir, stage.name))]
    return [(s, os.path.join(workdir, f"{stage.name}_seed{s}")) for s in stage.seeds]


def run_stage(stage: Stage, args: Any) -> None:
    """The stage's sweeps (one per seed), then its evaluations (module docstring)."""
    for seed, folder in stage_dirs(stage, args.workdir):
        overrides: dict[str, Any] = {"seed": seed}
        if stage.csv:
            overrides["data.path"] = os.path.abspath(args.data_path)
        only = stage.only
        if args.only:  # both must match: the stage's points, then the user's
            only = f"^(?=.*(?:{args.only}))" + (f"(?=.*(?:{stage.only}))" if stage.only else "")
        parallel = 1 if args.inline else args.parallel
        sweep.run_sweep(
            CONFIG, stage.arg, folder, parallel, only=only, overrides=overrides, inline=args.inline
        )
        runs = evaluate.finished_runs([folder])
        if not runs:
            print(f"{folder}: no finished runs to evaluate")
        for run_dir in runs:  # each run's evaluations at once: one model restore per run
            sweeps = bool(stage.ni_drop) and re.search(stage.ni_drop, run_dir) is not None
            what = evaluate.WHAT if sweeps else ("test",)
            out = evaluate.evaluate_run(run_dir, what, ni=stage.ni, drop=stage.drop)
            print(evaluate.summary(run_dir, out), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """The pipeline of the module docstring."""
    args = reproduction.parse_args(argv, __doc__.split("\n")[0], default_variant="reduced")
    if args.variant not in PLANS:
        print(
            f"error: --variant={args.variant!r} is unknown; use one of {sorted(PLANS)}.",
            file=sys.stderr,
        )
        return 2
    start = time.time()
    for stage in PLANS[args.variant]:
        if stage.csv and not args.data_path:
            print(f"skipping stage {stage.name}: it needs --data_path=<an ETT-format CSV>")
            continue
        t = time.time()
        try:
            run_stage(stage, args)
        except config_lib.ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"stage {stage.name} finished in {time.time() - t:.0f} s", flush=True)
    report_argv = [f"--runs={args.workdir}", f"--out={os.path.join(args.workdir, 'report')}"]
    if args.readme:
        report_argv.append(f"--readme={args.readme}")
    code = report.main(report_argv)
    print(f"reproduction finished in {time.time() - start:.0f} s")
    return code


if __name__ == "__main__":
    from framework import metrics

    metrics.quiet_library_logs()
    raise SystemExit(main())
