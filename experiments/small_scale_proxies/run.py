"""The one command of the small-scale proxies reproduction: the sweep, then the report.

    python -m experiments.small_scale_proxies.run --workdir=runs/proxies
        [--variant=cpu|tiny] [--parallel=2] [--data_path=../shared/data/text/tinyshakespeare.txt]
        [--readme=experiments/small_scale_proxies/README.md]

Runs every point of `configs/small_scale_proxies.py:variant=V` with framework.sweep
(finished points are skipped, so an interrupted reproduction continues where it
stopped), then writes the report of experiments/small_scale_proxies/report.py to
WORKDIR/report. Exit codes: 0 done, 2 user error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from experiments.small_scale_proxies import report
from framework import config as config_lib, sweep

CONFIG = os.path.join(sweep.REPO, "configs", "small_scale_proxies.py")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", required=True, help="the sweep's directory")
    p.add_argument("--variant", default="cpu", help="cpu (the reproduction) | tiny (tests)")
    p.add_argument("--parallel", type=int, default=2, help="runs trained at once")
    p.add_argument("--data_path", default="", help="a text file or folder ('' = embedded)")
    p.add_argument("--readme", default="", help="splice the report into this README")
    args = p.parse_args(argv)
    if args.data_path and not os.path.exists(args.data_path):
        msg = f"error: --data_path {args.data_path!r} does not exist; give a text file."
        print(msg, file=sys.stderr)
        return 2
    overrides = {"data.path": os.path.abspath(args.data_path)} if args.data_path else {}
    start = time.time()
    try:
        sweep.run_sweep(
            CONFIG, f"variant={args.variant}", args.workdir, args.parallel, overrides=overrides
        )
    except config_lib.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report.main(
        [f"--workdir={args.workdir}"] + ([f"--readme={args.readme}"] if args.readme else [])
    )
    print(f"reproduction finished in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
