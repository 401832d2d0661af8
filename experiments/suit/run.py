"""The one command of the SuiT reproduction: every arm with two seeds, then the report.

    python -m experiments.suit.run --workdir=runs/suit \\
        --data_path=../shared/data/cifar10/cifar10-jpeg.zip [--variant=tiny|cpu|paper] \\
        [--parallel=2 | --inline] [--only=REGEX] [--readme=experiments/suit/README.md]

Stages (configs/suit.py; one framework.sweep each, finished runs are skipped, so an
interrupted reproduction continues where it stopped):
  procedural  WORKDIR/procedural: the three arms on voronoi-count (region boundaries
              carry the label: claim V3), 2 seeds;
  cifar10     WORKDIR/cifar10: the three arms on --data_path (CIFAR-10's JPEG zip or any
              split/class/image folder with train and test), 2 seeds; stem and suit
              also evaluated with fewer superpixels at the end (adaptive inference, V2).
Then experiments/suit/report.py writes WORKDIR/report.
  tiny        procedural only, one seed, one epoch of 512 images (the test)
  procedural  the procedural stage of cpu alone
  cpu         both stages: about 90 minutes on 2 cores (1.5 CIFAR-10 epochs per run)
  paper  SuiT-Tiny's ImageNet recipe (300 epochs; tfds imagenet2012 or --data_path): a
         multi-GPU job, not for this machine; `--dry_run` of its config works anywhere
Exit codes: 0 done, 1 a run failed (the report is still written), 2 user error.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

from data import images
from data.errors import DataError
from experiments import reproduction
from experiments.suit import report
from framework import config as config_lib, sweep

CONFIG = os.path.join(sweep.REPO, "configs", "suit.py")
# stage folder -> (config variant, whether it reads --data_path)
PLANS = {
    "tiny": (("procedural", "tiny", False),),
    "procedural": (("procedural", "procedural", False),),
    "cpu": (("procedural", "procedural", False), ("cifar10", "cpu", True)),
    "paper": (("imagenet", "paper", True),),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the stages (module docstring); 0 done, 1 a run failed, 2 user error."""
    args = reproduction.parse_args(argv, __doc__.split("\n")[0], default_variant="cpu")
    if not reproduction.known_variant(args, PLANS):
        return 2
    if args.data_path and not _data_path_ok(args):
        return 2
    start, failed = time.time(), 0
    for folder, variant, reads_data in PLANS[args.variant]:
        overrides = {}
        if reads_data and args.data_path:
            overrides["data.source"] = os.path.abspath(args.data_path)
        t = time.time()
        try:
            rows = sweep.run_sweep(
                CONFIG,
                f"variant={variant}",
                os.path.join(args.workdir, folder),
                1 if args.inline else args.parallel,
                only=args.only,
                overrides=overrides,
                inline=args.inline,
            )
        except config_lib.ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        failed += sum(r["status"] == "failed" for r in rows)
        print(f"stage {folder} finished in {time.time() - t:.0f} s", flush=True)
    report.main(reproduction.report_argv(args))
    print(f"reproduction finished in {time.time() - start:.0f} s")
    if failed:
        print(f"error: {failed} run(s) failed; see each stage's results.md.", file=sys.stderr)
        return 1
    return 0


def _data_path_ok(args) -> bool:
    """Whether --data_path holds the splits its stages read (listed, not decoded), so a
    wrong path stops now rather than after the procedural stage; else prints why."""
    for _, variant, reads_data in PLANS[args.variant]:
        c = sweep.load_config_module(CONFIG).get_config(f"variant={variant}")
        try:
            if reads_data:
                images.check_source(args.data_path, (c.data.train_split, c.data.eval_split))
        except DataError as e:
            print(f"error: --data_path: {e}", file=sys.stderr)
            return False
    return True


if __name__ == "__main__":
    from framework import metrics

    metrics.quiet_library_logs()
    raise SystemExit(main())
