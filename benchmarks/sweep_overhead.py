"""Sweep start-up overhead: a 12-point tiny sweep with --inline against one process a point.

    python benchmarks/sweep_overhead.py [--steps=10] [--parallel=1]

The sweep is configs/quickstart.py at size=tiny (3 learning rates x 2 widths x 2 seeds,
`--steps` steps each, evaluation at the end). Each mode runs as the user would run it,
`python -m framework.sweep ...` from a fresh workdir (so each pays its own JAX import
and builds its own compilation cache in DIR/jax_cache), one after the other in this
run; the wall times and their ratio are printed, with the points' final losses checked
equal between the modes.
"""

from __future__ import annotations

import argparse
import csv
import os
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


def run_mode(config: str, workdir: str, steps: int, extra: list[str]) -> tuple[float, dict]:
    """Wall seconds of one `framework.sweep` command, and its points' final train losses."""
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
    return wall, {r["name"]: r["train/loss"] for r in rows}


def main(argv: list[str] | None = None) -> None:
    """Runs both modes and prints the table and the ratio."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=10, help="training steps per point")
    p.add_argument("--parallel", type=int, default=1, help="processes at once (process mode)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "sweep12.py")
        with open(config, "w") as f:
            f.write(SWEEP)
        modes = {
            "inline": ["--inline"],
            f"process x{args.parallel}": [f"--parallel={args.parallel}"],
        }
        walls, losses = {}, {}
        for name, extra in modes.items():
            workdir = os.path.join(tmp, name.replace(" ", "_"))
            walls[name], losses[name] = run_mode(config, workdir, args.steps, extra)
            print(f"{name:<12} 12 points in {walls[name]:6.1f} s", flush=True)
    inline, process = walls["inline"], walls[f"process x{args.parallel}"]
    same = losses["inline"] == losses[f"process x{args.parallel}"]
    print(f"final train losses identical in both modes: {same}")
    print(f"process / inline wall time = {process / inline:.2f}x (inline is faster by this)")


if __name__ == "__main__":
    main()
