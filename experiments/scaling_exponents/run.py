"""The one command of the scaling-exponents reproduction: three sweeps, then the report.

    python -m experiments.scaling_exponents.run --workdir=runs/scaling_exponents \\
        --data_path=../shared/data/text/tinyshakespeare.txt
        [--variant=cpu|tiny] [--parallel=2 | --inline] [--only=REGEX]
        [--readme=experiments/scaling_exponents/README.md]

1. WORKDIR: every study x width x base LR of `configs/scaling_exponents.py:variant=V`.
2. WORKDIR/constants: the standard study at the base width and its best base LR from 1,
   over embedding x readout LR constants (the paper's constants search at small width).
3. WORKDIR/tuned: the standard study with the best constants at every width and the 5
   grid LRs around that base LR (the paper's per-layer prescription for the standard
   parameterization).
Then experiments/scaling_exponents/report.py writes WORKDIR/report. Finished points are
skipped (framework.sweep), so an interrupted reproduction continues where it stopped.
Exit codes: 0 done, 2 user error.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Sequence

from experiments import reproduction
from experiments.scaling_exponents import grid, report
from framework import config as config_lib, sweep

CONFIG = os.path.join(sweep.REPO, "configs", "scaling_exponents.py")


def main(argv: Sequence[str] | None = None) -> int:
    """The pipeline of the module docstring."""
    args = reproduction.parse_args(argv, __doc__.split("\n")[0])
    start, base = time.time(), f"variant={args.variant}"
    try:
        reproduction.run_sweep(CONFIG, base, args.workdir, args)
        table = report.optimal_lr_table(report.load_runs(args.workdir), args.variant)
        base_width = grid.RUN[args.variant]["base"]
        best = table.get("standard", {}).get("per_width", {}).get(base_width)
        if best is None or not math.isfinite(best["lr"]):
            print("the standard study has no optimum at the base width; skipping constants")
        else:
            lr = report.grid_lr(best["lr"], grid.LRS[args.variant])
            const_dir = os.path.join(args.workdir, report.CONSTANTS_DIR)
            reproduction.run_sweep(CONFIG, f"{base},sweep=constants,lr={lr!r}", const_dir, args)
            c_emb, c_readout = report.best_constants(report.load_runs(const_dir))
            tuned = f"{base},sweep=tuned,lr={lr!r},c_emb={c_emb!r},c_readout={c_readout!r}"
            reproduction.run_sweep(
                CONFIG, tuned, os.path.join(args.workdir, report.TUNED_DIR), args
            )
    except config_lib.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report.main(reproduction.report_argv(args))
    print(f"reproduction finished in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
