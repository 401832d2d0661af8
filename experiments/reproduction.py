"""The one-command reproduction shared by the experiments: run every point of a config
file's sweep with framework.sweep, then its report script.

An experiment's run.py calls `main(CONFIG, report.main, argv, doc)`, or, for a pipeline
of sweeps, `parse_args` and `run_sweep` itself; finished points are skipped, so an
interrupted reproduction continues where it stopped. Exit codes: 0 done, 2 user error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from framework import config as config_lib, sweep


def parse_args(argv: Sequence[str] | None, description: str, default_variant: str = "cpu") -> Any:
    """The reproduction flags; exits 2 (one line) when --data_path does not exist."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--workdir", required=True, help="the sweep's directory")
    p.add_argument("--variant", default=default_variant, help="see the experiment's run.py")
    p.add_argument("--parallel", type=int, default=2, help="runs trained at once")
    p.add_argument(
        "--inline",
        action="store_true",
        help="train the runs one after another in this process (small models, tests)",
    )
    p.add_argument("--data_path", default="", help="a data file ('' = embedded)")
    p.add_argument("--only", default=None, help="run only the points whose name matches")
    p.add_argument("--readme", default="", help="splice the report into this README")
    args = p.parse_args(argv)
    if args.data_path and not os.path.exists(args.data_path):
        print(
            f"error: --data_path {args.data_path!r} does not exist; give an existing file.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return args


def known_variant(args: Any, variants: Any) -> bool:
    """Whether --variant is one of `variants`; else prints the one-line error."""
    if args.variant in variants:
        return True
    print(
        f"error: --variant={args.variant!r} is unknown; choose one of {sorted(variants)}.",
        file=sys.stderr,
    )
    return False


def run_sweep(config_path: str, arg: str, workdir: str, args: Any) -> list[dict[str, Any]]:
    """framework.sweep.run_sweep of `config_path:arg` with the flags' parallelism (or
    --inline), --only and data path (raises ConfigError for a bad sweep)."""
    overrides = {"data.path": os.path.abspath(args.data_path)} if args.data_path else {}
    return sweep.run_sweep(
        config_path,
        arg,
        workdir,
        1 if args.inline else args.parallel,
        only=args.only,
        overrides=overrides,
        inline=args.inline,
    )


def report_argv(args: Any) -> list[str]:
    """The report script's flags for this reproduction."""
    return [f"--workdir={args.workdir}"] + ([f"--readme={args.readme}"] if args.readme else [])


def main(
    config_path: str,
    report_main: Callable[[Sequence[str]], object],
    argv: Sequence[str] | None,
    description: str,
    default_variant: str = "cpu",
) -> int:
    """Parses the reproduction flags, runs the sweep, then the report (module docstring)."""
    args = parse_args(argv, description, default_variant)
    start = time.time()
    try:
        run_sweep(config_path, f"variant={args.variant}", args.workdir, args)
    except config_lib.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report_main(report_argv(args))
    print(f"reproduction finished in {time.time() - start:.0f} s")
    return 0
