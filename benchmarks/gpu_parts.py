"""The measured parts of benchmarks/gpu_check.py, one per process.

    python benchmarks/gpu_parts.py --part=train|decode|pmformer --spec=SPEC.json --rows=ROWS.jsonl

gpu_check.py writes SPEC.json (every part's settings) and runs this once per part
under a time cap; each measured row is appended to ROWS.jsonl as soon as it is known
(so a part stopped at its cap keeps what it had), as
{"part", "setting", "metric", "value"}; an exception becomes a row whose value is
"error: <one line>" and exit code 1.
  train     parts 1 and 3: the largest batch (halving from spec's) whose compiled train
            step fits the device (Trainer.memory_report), then the framework loop and
            the bare step (benchmarks/train_overhead.py), MFU, and the dry-run memory
            estimate next to the measured peak after the timed steps
  decode    part 2: KV-cache decoding tokens/s by batch (benchmarks/sampling.py)
  pmformer  part 4: a configs/pmformer.py run (framework.trainer.train), then the test
            split on its best-validation parameters (experiments/pmformer/evaluate.py)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from typing import Any

STARTED = time.time()

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, HERE]

import jax  # noqa: E402
import ml_collections  # noqa: E402
import sampling as sampling_bench  # noqa: E402  (benchmarks/sampling.py)
import train_overhead  # noqa: E402  (benchmarks/train_overhead.py)
from absl import logging  # noqa: E402
from flax import nnx  # noqa: E402

from framework import metrics, trainer as trainer_lib  # noqa: E402
from models.transformer import Transformer, TransformerConfig  # noqa: E402

GiB = 2**30


def log(message: str) -> None:
    """Prints `message` with the seconds since this process started (to the part's log)."""
    print(f"[{time.time() - STARTED:6.1f} s] {message}", flush=True)


class Rows:
    """Appends result rows to a JSON-lines file, flushed one by one."""

    def __init__(self, path: str, part: str):
        self.path, self.part = path, part

    def add(self, setting: str, metric: str, value: Any, part: str | None = None) -> None:
        """Records one row; a float value is kept as a plain float."""
        if not isinstance(value, str):
            value = float(value)
        row = dict(part=part or self.part, setting=setting, metric=metric, value=value)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        log(f"row: {row}")


def lm_config(spec: dict[str, Any]) -> ml_collections.ConfigDict:
    """The quickstart LM config with the spec's size and model/data/train overrides."""
    from configs import quickstart

    config = quickstart.get_config(spec["quickstart_arg"])
    config.model.update(spec["model"])
    config.data.update(spec.get("data", {}))
    return config


def describe_lm(config: ml_collections.ConfigDict, params: float | None = None) -> str:
    """One line naming the LM: size, shape, sequence, dtype, attention, scan/remat."""
    m = config.model
    size = f"{params / 1e9:.2f}B-param " if params and params >= 1e8 else ""
    size = size or (f"{params / 1e6:.2f}M-param " if params else "")
    flags = "+".join(n for n in ("scan_layers", "remat") if m[n]) or "unrolled"
    return (
        f"{size}decoder d{m.d_model} L{m.num_layers} h{m.num_heads} ff{m.d_ff} "
        f"V{m.vocab_size}, seq {config.data.seq_len}, {m.dtype}, attention {m.attention_impl}, "
        f"{flags}"
    )


def peak_bytes() -> tuple[float, str]:
    """(bytes, what): the device allocator's peak, else (CPU) the process's peak RSS."""
    stats = jax.local_devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return float(stats["peak_bytes_in_use"]), "measured peak_bytes_in_use (bytes)"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return float(rss), "measured peak process RSS (bytes; no device memory stats)"


def one_line(e: BaseException) -> str:
    """'<type>: <first line of the message>', at most 300 characters."""
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"[:300]


def _is_oom(e: Exception) -> bool:
    return "RESOURCE_EXHAUSTED" in str(e) or "out of memory" in str(e).lower()


def fitting_trainers(
    config: ml_collections.ConfigDict, workdir: str, batch: int, margin: float
) -> Iterator[tuple[trainer_lib.Trainer, dict[str, Any]]]:
    """Yields (trainer, memory report) at batch, batch/2, ... down to 1, skipping
    batches whose compiled step needs more than margin x the device's memory.

    The trainer keeps its compiled step, so run() does not compile it again."""
    while batch >= 1:
        config.train.batch_size = batch
        t = trainer_lib.Trainer(config, workdir)
        log(f"batch {batch}: trainer built; compiling the train step")
        compiled = t.compile_step()
        report = t.memory_report(compiled)
        log(f"batch {batch}: compiled, {report['per_device_bytes'] / GiB:.2f} GiB per device")
        limit = report["device_limit_bytes"]
        need = report["per_device_bytes"]
        if limit is None or need <= margin * limit:
            yield t, report
        else:
            logging.warning(
                "batch %d needs %.2f GiB > %.2f x %.2f GiB: halving",
                batch,
                need / GiB,
                margin,
                limit / GiB,
            )
        del t, compiled
        gc.collect()
        batch //= 2
    raise RuntimeError("even batch 1 does not fit the device memory (see the log)")


def _workdir_root(min_free_bytes: float) -> str | None:
    """/dev/shm when it has room for the final checkpoint (faster than disk), else None."""
    try:
        if shutil.disk_usage("/dev/shm").free > min_free_bytes:
            return "/dev/shm"
    except OSError:
        pass
    return None


def measure_fitting(
    config: ml_collections.ConfigDict, workdir: str, s: dict[str, Any], rows: Rows
) -> tuple[trainer_lib.Trainer, dict[str, Any], float, float, str]:
    """(trainer, memory report, loop steps/s, bare steps/s, note) at the largest batch
    that fits, also falling back to a smaller batch after an out-of-memory at run time.

    Adds the batch and the dry-run estimate as rows before measuring (a part stopped at
    its cap keeps them)."""
    note = ""
    for t, report in fitting_trainers(config, workdir, s["batch"], s["margin"]):
        setting = describe_lm(config, report["params"])
        rows.add(setting, "parameters", report["params"])
        rows.add(setting, "batch (largest that fits, memory check)" + note, t.batch_size)
        rows.add(
            f"{setting}, batch {t.batch_size}",
            "dry-run estimate per device (bytes)",
            report["per_device_bytes"],
            part="3 memory",
        )
        try:
            loop = train_overhead.loop_rate(t)
            log(f"framework loop: {loop:.3f} steps/s")
            bare = train_overhead.bare_rate(t, s["steps"])
            log(f"bare step: {bare:.3f} steps/s")
            return t, report, loop, bare, note
        except Exception as e:
            if not _is_oom(e) or t.batch_size == 1:
                raise
            logging.warning("batch %d ran out of memory: halving", t.batch_size)
            note = f" (after an out-of-memory at batch {t.batch_size})"
            del t
            gc.collect()
    raise AssertionError("unreachable: fitting_trainers raises when nothing fits")


def part_train(spec: dict[str, Any], rows: Rows) -> None:
    """Parts 1 and 3 (module docstring); once more with XLA attention when cuDNN's fails
    (an error row says so), so that one failing kernel does not cost the MFU."""
    s = spec["train"]
    config = train_overhead.prepare(lm_config(s), s["steps"])
    try:
        measure_train(config, s, rows)
    except Exception as e:
        if config.model.attention_impl != "cudnn" or "cudnn" not in traceback.format_exc().lower():
            raise
        logging.exception("cuDNN attention failed; measuring again with XLA attention")
        rows.add(describe_lm(config), "status (cuDNN attention)", f"error: {one_line(e)}")
        config.model.attention_impl = "xla"
        gc.collect()
        measure_train(config, s, rows)


def measure_train(config: ml_collections.ConfigDict, s: dict[str, Any], rows: Rows) -> None:
    """Fits the batch, times the loop and the bare step, and adds parts 1 and 3's rows."""
    with tempfile.TemporaryDirectory(dir=_workdir_root(s["shm_min_free_gib"] * GiB)) as workdir:
        t, report, a, b, oom_note = measure_fitting(config, workdir, s, rows)
    peak, peak_name = peak_bytes()
    bs = f"{describe_lm(config, report['params'])}, batch {t.batch_size}"
    tokens = train_overhead.tokens_per_step(t)
    rows.add(bs, f"framework loop tokens/s ({s['steps']} steps)", a * tokens)
    rows.add(bs, f"bare step tokens/s ({s['steps']} steps)", b * tokens)
    rows.add(bs, "framework loop / bare step", a / b)
    flops = {"bare step": train_overhead.model_flops_per_s(t, b)}
    flops["framework loop"] = train_overhead.model_flops_per_s(t, a)
    rows.add(bs, "model TFLOP/s (bare step)", flops["bare step"] / 1e12)
    peak_flops = train_overhead.peak_flops(jax.devices()[0])
    for name, value in flops.items() if peak_flops else ():
        rows.add(bs, f"MFU, {name} (of {peak_flops / 1e12:.0f} TFLOP/s bf16)", value / peak_flops)
    mem = "3 memory"
    rows.add(bs, peak_name + oom_note, peak, part=mem)
    rows.add(bs, "measured / estimate", peak / report["per_device_bytes"], part=mem)
    if report["device_limit_bytes"]:
        rows.add(bs, "device limit (bytes)", report["device_limit_bytes"], part=mem)


def init_model(cfg: TransformerConfig) -> Transformer:
    """A randomly initialised Transformer, its parameters created by one jitted program."""
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0))))
    state = jax.jit(lambda: nnx.split(Transformer(cfg, rngs=nnx.Rngs(0)))[1])()
    return nnx.merge(graphdef, state)


def part_decode(spec: dict[str, Any], rows: Rows) -> None:
    """Part 2: cached greedy decoding tokens/s at each of the spec's batches."""
    import numpy as np

    s = spec["decode"]
    config = lm_config(s)
    cfg = TransformerConfig(**config.model.to_dict())
    model = init_model(cfg)
    log("model initialised")
    params = sum(x.size for x in jax.tree.leaves(nnx.state(model)))
    P, N = s["prompt_len"], s["new_tokens"]
    setting = (
        describe_lm(config, params).split(", seq")[0]
        + f", {cfg.dtype} compute, {cfg.param_dtype} params, random init; greedy, "
        f"prompt {P}, {N} new tokens, median of {s['rounds']}"
    )
    rng = np.random.default_rng(0)
    for b in s["batches"]:
        prompts = sampling_bench.random_prompts(b, P, rng)
        rate = sampling_bench.cached_rate(model, prompts, N, s["rounds"])
        rows.add(setting, f"KV-cache decode tokens/s, batch {b}", rate)


def part_pmformer(spec: dict[str, Any], rows: Rows) -> None:
    """Part 4: train configs/pmformer.py on the CSV, then test its best-validation params."""
    from configs import pmformer as pmformer_config
    from experiments.pmformer import evaluate

    s = spec["pmformer"]
    config = pmformer_config.get_config(s["arg"])
    config.data.path = s["data_path"]
    for key, value in s.get("overrides", {}).items():  # e.g. 'train.plot_losses'
        section, name = key.split(".")
        config[section][name] = value
    setting = f"configs/pmformer.py:{s['arg']} on {os.path.basename(s['data_path'])}"
    start = time.time()
    with tempfile.TemporaryDirectory() as workdir:
        result = trainer_lib.train(config, workdir)
        log(f"trained: {result['status']} at step {result['step']}")
        if result["status"] not in evaluate.FINISHED:
            raise RuntimeError(f"the run ended with status {result['status']!r}")
        train_s = time.time() - start
        out = evaluate.evaluate_run(workdir, what=("test",))
    test = out["eval"]["test"]
    rows.add(setting, f"test MSE ({out['params']} params, step {out['step']})", test["mse"])
    if "mae" in test:
        rows.add(setting, "test MAE", test["mae"])
    best_val = result.get("best", {}).get("eval", {}).get("val", {}).get("mse")
    if best_val is not None:
        rows.add(setting, "best validation MSE", best_val)
    rows.add(setting, "steps trained", result["step"])
    rows.add(setting, "train wall time (s)", train_s)
    rows.add(setting, "train + test wall time (s)", time.time() - start)


PARTS = {"train": part_train, "decode": part_decode, "pmformer": part_pmformer}
PART_NAMES = {"train": "1 train", "decode": "2 decode", "pmformer": "4 pmformer"}


def main(argv: list[str] | None = None) -> int:
    """Runs one part; 0 when it finished, 1 when it raised (an error row says why)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", required=True, choices=sorted(PARTS))
    p.add_argument("--spec", required=True, help="the JSON settings gpu_check.py wrote")
    p.add_argument("--rows", required=True, help="JSON-lines file the rows are appended to")
    args = p.parse_args(argv)
    with open(args.spec) as f:
        spec = json.load(f)
    metrics.quiet_library_logs()
    logging.set_verbosity(logging.INFO)
    rows = Rows(args.rows, PART_NAMES[args.part])
    device = jax.devices()[0]
    described = f"{device.platform} ({device.device_kind})"
    log(f"part {args.part} on {described}")
    with open(args.rows, "a") as f:
        f.write(json.dumps(dict(device=described)) + "\n")
    try:
        PARTS[args.part](spec, rows)
    except Exception as e:  # reported as a row; gpu_check.py carries on with other parts
        logging.exception("part %s failed", args.part)
        rows.add("-", "status", f"error: {one_line(e)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
