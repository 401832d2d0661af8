"""The one command of the small-scale proxies reproduction: the sweep, then the report.

    python -m experiments.small_scale_proxies.run --workdir=runs/proxies
        [--variant=cpu|tiny] [--parallel=2 | --inline] [--only=REGEX]
        [--data_path=../shared/data/text/tinyshakespeare.txt]
        [--readme=experiments/small_scale_proxies/README.md]

Runs every point of `configs/small_scale_proxies.py:variant=V` with framework.sweep
(finished points are skipped, so an interrupted reproduction continues where it
stopped), then writes the report of experiments/small_scale_proxies/report.py to
WORKDIR/report (experiments/reproduction.py). Exit codes: 0 done, 2 user error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from experiments import reproduction
from experiments.small_scale_proxies import report
from framework import sweep

CONFIG = os.path.join(sweep.REPO, "configs", "small_scale_proxies.py")


def main(argv: Sequence[str] | None = None) -> int:
    """Sweep, then report (module docstring)."""
    return reproduction.main(CONFIG, report.main, argv, __doc__.split("\n")[0])


if __name__ == "__main__":
    raise SystemExit(main())
