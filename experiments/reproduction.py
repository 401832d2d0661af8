"""The one-command reproduction shared by the experiments: run every point of a config
file's sweep with framework.sweep, then its report script.

An experiment's run.py calls `main(CONFIG, report.main, argv, doc)`; finished points
are skipped, so an interrupted reproduction continues where it stopped. Exit codes:
0 done, 2 user error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence

from framework import config as config_lib, sweep


def main(
    config_path: str,
    report_main: Callable[[Sequence[str]], object],
    argv: Sequence[str] | None,
    description: str,
    default_variant: str = "cpu",
) -> int:
    """Parses the reproduction flags, runs the sweep, then the report (module docstring)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--workdir", required=True, help="the sweep's directory")
    p.add_argument("--variant", default=default_variant, help="cpu (the reproduction) | tiny")
    p.add_argument("--parallel", type=int, default=2, help="runs trained at once")
    p.add_argument("--data_path", default="", help="a text file or folder ('' = embedded)")
    p.add_argument("--only", default=None, help="run only the points whose name matches")
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
            config_path,
            f"variant={args.variant}",
            args.workdir,
            args.parallel,
            only=args.only,
            overrides=overrides,
        )
    except config_lib.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report_main(
        [f"--workdir={args.workdir}"] + ([f"--readme={args.readme}"] if args.readme else [])
    )
    print(f"reproduction finished in {time.time() - start:.0f} s")
    return 0
