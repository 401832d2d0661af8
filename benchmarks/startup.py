"""Start-up cost: what a `python -m framework.main` process pays before it does anything.

    python benchmarks/startup.py [--repeats=5] [--module=framework.main]

Every sweep point run as a process, every CLI command and every test subprocess pays
the import of the framework (JAX, orbax, grain, ...). This runs `python -X importtime
-c "import MODULE"` `--repeats` times in fresh processes and prints the median total and
the modules with the largest own import time (median over the repeats), so a dependency
whose import becomes slow (ml_dtypes 0.7.0: ~1.4 s; see pyproject.toml) shows up by name.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_times(module: str) -> dict[str, tuple[int, int]]:
    """{module: (own µs, cumulative µs)} of one fresh `import module`."""
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-X", "importtime", "-c", f"import {module}"]
    err = subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True, text=True)
    times = {}
    for line in err.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line[len("import time:") :].split("|")
        times[name.strip()] = (int(own), int(cumulative))
    return times


def main(argv: list[str] | None = None) -> None:
    """Prints the median import time of `--module` and its ten costliest own imports."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="fresh processes measured")
    p.add_argument("--module", default="framework.main", help="the module imported")
    p.add_argument("--top", type=int, default=10, help="modules listed")
    args = p.parse_args(argv)
    runs = [import_times(args.module) for _ in range(args.repeats)]
    total = statistics.median(r[args.module][1] for r in runs) / 1e6
    own = collections.defaultdict(list)
    for r in runs:
        for name, (us, _) in r.items():
            own[name].append(us)
    ranked = sorted(own.items(), key=lambda kv: -statistics.median(kv[1]))[: args.top]
    print(f"import {args.module}: {total:.2f} s (median of {args.repeats} fresh processes)")
    print("largest own import times (median):")
    for name, us in ranked:
        print(f"  {statistics.median(us) / 1e6:6.3f} s  {name}")


if __name__ == "__main__":
    main()
