"""Sweep start-up overhead: a 12-point tiny sweep with --inline against one process a point.

    python benchmarks/sweep_overhead.py [--steps=10] [--parallel=1] [--repeats=3] [--widths=2]

The sweep is configs/quickstart.py at size=tiny (3 learning rates x 2 widths x 2 seeds,
`--steps` steps each, evaluation at the end); `--widths=1` makes it 6 learning rates x
2 seeds of one width (one set of programs to compile instead of two). Each mode runs as
the user would run it, `python -m framework.sweep ...` from a fresh workdir (so each
pays its own JAX import and builds its own compilation cache in DIR/jax_cache), one
after the other in this run; the wall times and their ratio are printed, with the
points' final losses checked equal between the modes. This machine's wall times drift
by 10-20 % from one minute to the next, so `--repeats` pairs are run (inline then
process, each pair side by side) and the median of the pairs' ratios is the result.
The points' own wall times (results.csv) split each mode into the first point of each
width (it compiles that width's programs: paid in both modes) and the rest (the
per-point start-up the inline mode removes).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SWEEP = """
from configs.quickstart import get_config  # noqa: F401
from framework.sweep import product


def get_sweep(arg=None):
    widths = [{"model.d_model": 16, "model.d_ff": 32}, {"model.d_model": 32, "model.d_ff": 64}]
    return product({"optimizer.lr": [1e-3, 3e-3, 1e-2], "seed": [0, 1]}, widths)
"""
SWEEP_ONE_WIDTH = """
from configs.quickstart import get_config  # noqa: F401
from framework.sweep import product


def get_sweep(arg=None):
    return product({"optimizer.lr": [1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2], "seed": [0, 1]})
"""


def run_mode(
    config: str, workdir: str, steps: int, extra: list[str]
) -> tuple[float, dict, tuple[float, float]]:
    """Wall seconds of one `framework.sweep` command, its points' final train losses, and
    (seconds of the first point of each width, which compiles its programs; the median
    seconds of the other points)."""
    cmd = [sys.executable, "-m", "framework.sweep", f"--config={config}:size=tiny,steps={steps}"]
    cmd += [f"--workdir={workdir}", "--config.train.eval_every_steps=0", *extra]
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # each mode builds its own, in DIR/jax_cache
    t0 = time.time()
    subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True, text=True)
    wall = time.time() - t0
    with open(os.path.join(workdir, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    assert all(r["status"] == "done" for r in rows), rows
    first, rest, widths = 0.0, [], set()
    for r in rows:  # in the order the points ran
        width = r.get("model.d_model", "")  # absent: the sweep has one width
        if width in widths:
            rest.append(float(r["wall_s"]))
        else:
            widths.add(width)
            first += float(r["wall_s"])
    losses = {r["name"]: r["train/loss"] for r in rows}
    return wall, losses, (first, statistics.median(rest))


def main(argv: list[str] | None = None) -> None:
    """Runs both modes `--repeats` times and prints the table and the median ratio."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=10, help="training steps per point")
    p.add_argument("--parallel", type=int, default=1, help="processes at once (process mode)")
    p.add_argument("--repeats", type=int, default=3, help="pairs of runs; the median counts")
    p.add_argument("--widths", type=int, default=2, choices=(1, 2), help="model widths swept")
    args = p.parse_args(argv)
    process_mode = f"process x{args.parallel}"
    modes = {"inline": ["--inline"], process_mode: [f"--parallel={args.parallel}"]}
    ratios, same, split = [], True, {name: [] for name in modes}
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "sweep12.py")
        with open(config, "w") as f:
            f.write(SWEEP if args.widths == 2 else SWEEP_ONE_WIDTH)
        for rep in range(args.repeats):
            walls, losses = {}, {}
            for name, extra in modes.items():
                workdir = os.path.join(tmp, f"{rep}_{name.replace(' ', '_')}")
                walls[name], losses[name], times = run_mode(config, workdir, args.steps, extra)
                split[name].append(times)
            ratios.append(walls[process_mode] / walls["inline"])
            same = same and losses["inline"] == losses[process_mode]
            print(
                f"pair {rep + 1}: inline {walls['inline']:5.1f} s, {process_mode} "
                f"{walls[process_mode]:5.1f} s for 12 points: {ratios[-1]:.2f}x",
                flush=True,
            )
    print(f"final train losses identical in both modes: {same}")
    for name, times in split.items():
        first = statistics.median(t[0] for t in times)
        rest = statistics.median(t[1] for t in times)
        print(f"{name}: first point of each width (compiles) {first:5.1f} s, others {rest:.2f} s")
    per_point = statistics.median(t[1] for t in split[process_mode]) / statistics.median(
        t[1] for t in split["inline"]
    )
    print(f"process / inline per point after the compiles: {per_point:.2f}x")
    print(
        f"process / inline wall time, median of {args.repeats} pairs = "
        f"{statistics.median(ratios):.2f}x (inline is faster by this)"
    )


if __name__ == "__main__":
    main()
