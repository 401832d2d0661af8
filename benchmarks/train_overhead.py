"""Framework overhead: tokens/s of the full training loop versus a bare jitted step.

    python benchmarks/train_overhead.py [--config=configs/quickstart.py] [--steps=60] [--rounds=3]

(a) `Trainer.run()`: data pipeline, host->device copies, the step, per-step
    metric fetch, progress logging, metrics.jsonl/TensorBoard (no evals, one
    final checkpoint which is not timed);
(b) the same compiled step on one device-resident batch, in a bare loop.
Both use the same model, batch and compiled step and are measured in
alternating rounds in one process; the ratio (a)/(b) is printed per round
and as the median. On a GPU it also prints MFU from the model's FLOPs/token.
benchmarks/gpu_check.py reuses these functions on a ~1B-parameter model.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import ml_collections  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from framework import metrics, sharding, trainer as trainer_lib  # noqa: E402

# Dense bf16 peak FLOP/s per device, for MFU on accelerators (vendor datasheets).
PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12}


def prepare(config: ml_collections.ConfigDict, steps: int) -> ml_collections.ConfigDict:
    """`config` set up for timing: steps + 1 steps (warmup at most `steps`), no evals,
    samples, plots or periodic checkpoints (the trainer still writes a final checkpoint)."""
    config.train.total_steps = steps + 1
    config.schedule.warmup_steps = min(config.schedule.warmup_steps, steps)
    config.train.log_every_steps = 10
    config.train.eval_every_steps = 0
    config.train.checkpoint_every_steps = 0
    config.train.plot_losses = False
    config.evals = {}
    if "sample" in config:
        config.sample.prompts = ()
    return config


def tokens_per_step(t: trainer_lib.Trainer) -> int:
    """Items (tokens for an LM) in one global training batch."""
    return t.task.items_per_example() * t.batch_size


def loop_rate(t: trainer_lib.Trainer) -> float:
    """Steps/s of the framework's own loop (`Trainer.run()`), compilation excluded."""
    return t.run()["steps_per_s"]


def bare_rate(t: trainer_lib.Trainer, steps: int) -> float:
    """Steps/s of the same compiled step on a device-resident batch.

    The program `run()` used (compiled once per trainer)."""
    ds = t.task.train_dataset(batch_size=t.batch_size, seed=0, shard_index=0, shard_count=1)
    batch = sharding.put_batch(next(iter(ds)), t.batch_sharding)
    step = t.apply_step
    state = t.init_state()
    state, m = step(state, batch)  # compile / warm up
    jax.block_until_ready(m)
    start = time.perf_counter()
    for _ in range(steps):
        state, m = step(state, batch)
    jax.block_until_ready((state, m))
    return steps / (time.perf_counter() - start)


def peak_flops(device: Any) -> float | None:
    """The device's dense bf16 peak FLOP/s, when its kind is in PEAK_FLOPS."""
    if device.platform != "gpu":
        return None
    return next((v for k, v in PEAK_FLOPS.items() if k in device.device_kind), None)


def model_flops_per_s(t: trainer_lib.Trainer, steps_per_s: float) -> float:
    """Model FLOP/s at `steps_per_s` from the task's training FLOPs per token."""
    return t.task.describe_model()["train FLOPs/token"] * tokens_per_step(t) * steps_per_s


def main(argv) -> None:
    del argv
    FLAGS = flags.FLAGS
    metrics.quiet_library_logs()
    config = prepare(FLAGS.config, FLAGS.steps)
    tokens = config.train.batch_size * config.data.seq_len
    ratios = []
    for r in range(FLAGS.rounds):
        with tempfile.TemporaryDirectory() as workdir:
            t = trainer_lib.Trainer(config, workdir)
            a = loop_rate(t)
        b = bare_rate(t, FLAGS.steps)
        ratios.append(a / b)
        print(
            f"round {r}: framework loop {a * tokens:,.0f} tokens/s | bare step "
            f"{b * tokens:,.0f} tokens/s | ratio {a / b:.3f}",
            flush=True,
        )
    print(
        f"overhead ratio (framework / bare, median of {len(ratios)}): "
        f"{statistics.median(ratios):.3f}"
    )
    device = jax.devices()[0]
    peak = peak_flops(device)
    if peak:
        print(f"MFU (bare step, {device.device_kind}): {model_flops_per_s(t, b) / peak:.1%}")


if __name__ == "__main__":
    # Flags are defined here, not at import, so that other benchmarks can import this
    # module beside benchmarks/sampling.py (both have --rounds).
    config_flags.DEFINE_config_file("config", "configs/quickstart.py", "Config file.")
    flags.DEFINE_integer("steps", 60, "Timed steps per round (after one warm-up step).")
    flags.DEFINE_integer("rounds", 3, "Alternating rounds of (a) and (b).")
    app.run(main)
