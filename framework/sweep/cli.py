"""The sweep command line.

    python -m framework.sweep --config=configs/quickstart.py:size=tiny,steps=10 \\
        --workdir=runs/qs_sweep [--parallel=2 | --inline] [--only=REGEX] [--config.a.b=v ...]

Each point of the config file's `get_sweep(arg)` trains in `DIR/<name>/`: as its own
`python -m framework.main` process, `--parallel` at a time (the default: isolation, and
parallel points on a machine with room), or with `--inline` one after another inside
this process (no start-up or compilation per point: for sweeps of small models and for
tests). `--config.a.b=v` applies to every point. `--launch_script=FILE` writes one
command per point instead; `--dry_list` lists the points and their status.
Exit codes: 0 the sweep ran (failed or diverged points included), 2 user error,
143 stopped by SIGTERM (the running points checkpointed; a re-run resumes them).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from framework import config as config_lib, files
from framework.sweep.definition import SweepError, load_sweep, select
from framework.sweep.results import point_row
from framework.sweep.runner import launch_script, run_sweep

EXIT_USER_ERROR = 2


class _ArgParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def _parser() -> argparse.ArgumentParser:
    p = _ArgParser(prog="python -m framework.sweep", description=__doc__, allow_abbrev=False)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--config", required=True, help="FILE[:arg]; FILE defines get_sweep(arg)")
    p.add_argument("--workdir", required=True, help="the sweep's directory")
    p.add_argument("--parallel", type=int, default=1, help="points trained at once")
    p.add_argument("--inline", action="store_true", help="run the points in this process")
    p.add_argument("--only", default=None, help="regex: only points whose name matches")
    p.add_argument("--launch_script", default=None, help="write this script, run nothing")
    p.add_argument("--launch_prefix", default="", help="wraps each command of the script")
    p.add_argument("--launch_python", default="python", help="interpreter in the script")
    p.add_argument("--dry_list", action="store_true", help="list the points and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from absl import flags

    if not flags.FLAGS.is_parsed():  # inline points log through absl: no pre-parse warning
        flags.FLAGS.mark_as_parsed()
    args = _parser().parse_args([a for a in argv if not a.startswith("--config.")])
    path, colon, arg = args.config.partition(":")
    arg = arg if colon else None
    try:
        overrides = {}
        for item in (a[len("--config.") :] for a in argv if a.startswith("--config.")):
            key, eq, value = item.partition("=")
            if not eq:
                raise SweepError(f"--config.{key} needs a value: --config.{key}=VALUE")
            overrides[key] = value
        if not (args.launch_script or args.dry_list):
            run_sweep(
                path,
                arg,
                args.workdir,
                args.parallel,
                args.only,
                overrides=overrides,
                inline=args.inline,
            )
            return 0
        sweep = load_sweep(path, arg, overrides)
        if args.launch_script:
            prefix, python = args.launch_prefix, args.launch_python
            text = launch_script(sweep, args.workdir, prefix, python, args.only)
            files.atomic_write_text(args.launch_script, text)
            os.chmod(args.launch_script, 0o755)
            print(f"wrote {args.launch_script}: {len(select(sweep, args.only))} commands")
        else:
            for i in select(sweep, args.only):
                row = point_row(args.workdir, sweep.names[i], sweep.points[i])
                print(f"{sweep.names[i]}  [{row['status']}]  {sweep.points[i]}")
        return 0
    except config_lib.ConfigError as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
