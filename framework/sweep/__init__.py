"""Sweeps: each point of a config file's `get_sweep(arg)` as its own training run.

    python -m framework.sweep --config=configs/quickstart.py:size=tiny,steps=10 \\
        --workdir=runs/qs_sweep [--parallel=2 | --inline] [--only=REGEX] [--config.a.b=v ...]

`definition` expands and names the points and checks them against `get_config(arg)`;
`runner` trains them (processes, or inline in this process) and `results` turns their
files into results.csv / results.md; `cli` is the command line (its docstring has the
details). This package re-exports what configs, experiments and tests use.
"""

from framework.sweep.cli import main
from framework.sweep.definition import (
    ARG_PREFIX,
    REPO,
    Sweep,
    SweepError,
    format_value,
    load_config_module,
    load_sweep,
    name_point,
    name_points,
    point_arg,
    product,
    short_keys,
)
from framework.sweep.results import (
    FINISHED,
    STATUS_FILE,
    STATUSES,
    collect_rows,
    point_row,
    write_results,
)
from framework.sweep.runner import launch_script, run_sweep

__all__ = [
    "ARG_PREFIX",
    "FINISHED",
    "REPO",
    "STATUSES",
    "STATUS_FILE",
    "Sweep",
    "SweepError",
    "collect_rows",
    "format_value",
    "launch_script",
    "load_config_module",
    "load_sweep",
    "main",
    "name_point",
    "name_points",
    "point_arg",
    "point_row",
    "product",
    "run_sweep",
    "short_keys",
    "write_results",
]
