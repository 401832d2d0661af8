"""Accelerator readiness in one call: everything worth measuring on a GPU, one table.

    bash benchmarks/gpu_check.sh [--out=gpu_check.md] [--data_path=CSV] [--budget_s=510] [--smoke]
    (= python benchmarks/gpu_check.py ...; PYTHON=... picks the interpreter)

Parts, each in its own process (benchmarks/gpu_parts.py) under a time cap, so that an
exception, a crash or a hang in one is a row `error: <one line>` and the others run:
  1 train     a ~1B-parameter decoder (d_model 2048, 20 layers, 16 heads, d_ff 5504,
              vocab 32000, seq 2048, scan_layers, remat, bfloat16, cuDNN attention):
              the largest batch from --batch down (halving) whose compiled step fits
              the device (the trainer's dry-run memory check), tokens/s of the framework
              loop and of the bare step, their ratio, model TFLOP/s and MFU
              (benchmarks/train_overhead.py's functions); an out-of-memory at run time
              halves the batch, and a cuDNN attention failure is an error row, then
              the part is measured again with XLA attention
  2 decode    KV-cache greedy decoding tokens/s of the same 1B model at batch 1, 8, 64
              and 256 (benchmarks/sampling.py's functions)
  3 memory    the dry-run estimate (memory_report's per_device_bytes) next to the
              measured peak_bytes_in_use after part 1's timed steps (same process)
  4 pmformer  configs/pmformer.py:size=paper,horizon=96 on --data_path (ETTh1) with
              framework.trainer.train, then test MSE on the best-validation parameters
              (experiments/pmformer/evaluate.py) and the wall time
Each part's cap is its share of --budget_s plus what earlier parts left unused; a part
stopped at its cap keeps the rows it had. A progress line per part shows the elapsed
time; at the end one markdown table (part | setting | metric | value) is printed and
written to --out, with a JSON version beside it (.json) and each part's log (.<part>.log).

Without a GPU (jax.devices()[0].platform != 'gpu') it prints one line and exits 0,
unless --smoke: a tiny version of every part on whatever device there is (the quickstart
'tiny' LM in float32 with XLA attention, a few steps; decoding at batch 1 and 8;
PMformer size=tiny for a few steps on a small ETT-format CSV written to a temp dir
unless --data_path is given), under a minute on 2 CPU cores.
Exit codes: 0 every part measured (or no GPU), 1 some part failed, 2 missing packages.

On a lent GPU machine only the repository travels: copy ETTh1.csv into an ignored folder
of the repo that the call carries and pass it as --data_path; give the packages its
python3 lacks (ml_collections, grain with array_record and portpicker, tensorboardX) as
wheels; and write --out under $OUT so that the table, the JSON and the logs come back.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_DATA = "../shared/data/ett/ETTh1.csv"  # relative to the repository root
MODULES = ("jax", "flax", "optax", "orbax.checkpoint", "ml_collections", "grain", "absl")
MODULES += ("numpy", "tensorboardX", "matplotlib")

# The ~1B-parameter decoder of parts 1-3 (1.08B parameters with the tied embedding).
MODEL_1B = dict(
    d_model=2048,
    num_layers=20,
    num_heads=16,
    d_ff=5504,
    vocab_size=32000,
    max_len=2048,
    scan_layers=True,
    remat=True,
    dtype="bfloat16",
    attention_impl="cudnn",
)
MODEL_TINY = dict(dtype="float32", attention_impl="xla")
# (process, parts it reports, share of the budget in seconds)
PLAN = (("train", "1 train + 3 memory", 230), ("decode", "2 decode", 110))
PLAN += (("pmformer", "4 pmformer", 180),)
MIN_CAP_S = 20
# --smoke checks that every part runs, not speed: cheaper XLA compilation (about 30 % less
# CPU time on the tiny programs).
SMOKE_XLA_FLAGS = (
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
    "--xla_cpu_use_fusion_emitters=false"
)
SMOKE_ROWS = 1200  # rows of the smoke CSV: enough for lookback 48 + horizon 96 splits


def spec_for(args: argparse.Namespace, data_path: str) -> dict[str, Any]:
    """Every part's settings: the full GPU run, or the tiny --smoke run."""
    if args.smoke:
        lm = dict(quickstart_arg="size=tiny", model=MODEL_TINY)
        return dict(
            train=dict(lm, batch=8, steps=5, margin=0.9, shm_min_free_gib=1),
            decode=dict(lm, batches=[1, 8], prompt_len=16, new_tokens=8, rounds=1),
            pmformer=dict(
                arg="size=tiny,horizon=96,steps=6,evals=val",
                data_path=data_path,
                overrides={"train.plot_losses": False, "train.checkpoint_every_steps": 0},
            ),
        )
    lm = dict(quickstart_arg="size=small", model=MODEL_1B, data=dict(seq_len=2048))
    return dict(
        train=dict(lm, batch=args.batch, steps=args.steps, margin=0.9, shm_min_free_gib=40),
        decode=dict(lm, batches=[1, 8, 64, 256], prompt_len=64, new_tokens=128, rounds=3),
        pmformer=dict(
            arg="size=paper,horizon=96,evals=val",
            data_path=data_path,
            overrides={"train.plot_losses": False},
        ),
    )


def write_smoke_csv(directory: str, rows: int = SMOKE_ROWS) -> str:
    """An ETT-format CSV (`date` + 7 numeric columns) of smooth noisy series; its path."""
    import numpy as np

    rng = np.random.default_rng(0)
    t = np.arange(rows, dtype=np.float64)[:, None]
    phase, period = rng.uniform(0, 6.3, 7), rng.uniform(12, 48, 7)
    values = np.sin(2 * np.pi * t / period + phase) + 0.1 * rng.normal(size=(rows, 7))
    start = datetime.datetime(2016, 7, 1)
    path = os.path.join(directory, "smoke_series.csv")
    with open(path, "w") as f:
        f.write("date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT\n")
        for i, row in enumerate(values):
            date = start + datetime.timedelta(hours=i)
            f.write(f"{date:%Y-%m-%d %H:%M:%S}," + ",".join(f"{v:.6f}" for v in row) + "\n")
    return path


def run_part(
    name: str, cap: float, spec_path: str, rows_path: str, log_path: str, smoke: bool
) -> str:
    """Runs one part's process for at most `cap` seconds; '' or an error line."""
    cmd = [sys.executable, os.path.join(HERE, "gpu_parts.py"), f"--part={name}"]
    cmd += [f"--spec={spec_path}", f"--rows={rows_path}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if smoke:
        env["XLA_FLAGS"] = " ".join(filter(None, (env.get("XLA_FLAGS"), SMOKE_XLA_FLAGS)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (REPO, env.get("PYTHONPATH"))))
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = proc.wait(timeout=cap)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the part and anything it started
            proc.wait()
            return f"error: timed out at its cap of {cap:.0f} s"
    if code == 0:
        return ""
    with open(log_path, errors="replace") as f:
        lines = [ln.strip() for ln in f if ln.strip()]
    return f"error: exit code {code}: {lines[-1][:300] if lines else 'no output'}"


def read_rows(path: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(rows, meta) a part wrote: its table rows and its other lines (e.g. the device)."""
    rows: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in filter(str.strip, f):
                entry = json.loads(line)
                rows.append(entry) if "part" in entry else meta.update(entry)
    return rows, meta


def fmt_value(metric: str, value: Any) -> str:
    """A cell: errors as they are, bytes with GiB, counts with commas, else 4 digits."""
    if isinstance(value, str):
        return value
    if "bytes" in metric:
        return f"{value:,.0f} ({value / 2**30:.2f} GiB)"
    if value == int(value) and abs(value) >= 1:
        return f"{value:,.0f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    """The rows as one markdown table under a header line."""
    lines = [header, "", "| part | setting | metric | value |", "|---|---|---|---|"]
    for r in rows:
        cells = (r["part"], r["setting"], r["metric"], fmt_value(r["metric"], r["value"]))
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def missing_modules() -> list[str]:
    """The packages the framework imports that this interpreter cannot find."""
    missing = []
    for name in MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


def gpu_platform() -> tuple[bool, str]:
    """(whether jax.devices()[0] is a GPU, its description). This process takes no GPU
    memory up front; the parts' processes get the environment as it was."""
    key = "XLA_PYTHON_CLIENT_PREALLOCATE"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        import jax

        device = jax.devices()[0]
    finally:
        if before is None:
            del os.environ[key]
        else:
            os.environ[key] = before
    return device.platform == "gpu", f"{device.platform} ({device.device_kind})"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny version of every part, any device")
    p.add_argument("--out", default="gpu_check.md", help="markdown table (JSON beside it)")
    p.add_argument(
        "--data_path",
        default=None,
        help=f"ETT-format CSV for part 4 (default {DEFAULT_DATA} relative to the repository; "
        "--smoke writes its own when not given)",
    )
    p.add_argument("--budget_s", type=float, default=510, help="seconds for all parts")
    p.add_argument("--batch", type=int, default=16, help="part 1's first batch to try")
    p.add_argument("--steps", type=int, default=20, help="part 1's timed steps per loop")
    p.add_argument("--only", default="", help="comma-separated parts to run (train,decode,...)")
    return p.parse_args(argv)


def run_all(args: argparse.Namespace, tmp: str, out_base: str) -> tuple[list[dict], dict]:
    """Runs the planned parts one after another: (all their rows, error rows included;
    the parts' meta lines, e.g. the device)."""
    data_path = args.data_path
    if data_path is None:
        default = os.path.normpath(os.path.join(REPO, DEFAULT_DATA))
        data_path = write_smoke_csv(tmp) if args.smoke else default
    spec_path = os.path.join(tmp, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec_for(args, os.path.abspath(data_path)), f, indent=2)
    only = [p for p in args.only.split(",") if p]
    plan = [(name, parts, share) for name, parts, share in PLAN if not only or name in only]
    scale = args.budget_s / sum(share for *_, share in PLAN)
    start, rows, meta = time.time(), [], {}
    deadline = start + scale * sum(share for *_, share in plan)
    for i, (name, parts, _) in enumerate(plan):
        # Its own share plus whatever earlier parts left unused.
        cap = deadline - time.time() - scale * sum(share for *_, share in plan[i + 1 :])
        elapsed = time.time() - start
        if cap < MIN_CAP_S:
            print(f"[{elapsed:6.1f} s] {parts}: skipped, {cap:.0f} s left", flush=True)
            rows.append(dict(part=parts, setting="-", metric="status", value="error: no time"))
            continue
        print(f"[{elapsed:6.1f} s] {parts}: start (cap {cap:.0f} s)", flush=True)
        rows_path, log_path = os.path.join(tmp, f"{name}.jsonl"), f"{out_base}.{name}.log"
        t0 = time.time()
        error = run_part(name, cap, spec_path, rows_path, log_path, args.smoke)
        part_rows, part_meta = read_rows(rows_path)
        meta.update(part_meta)
        caught = [r["value"] for r in part_rows if r["metric"] == "status"]  # its own catch
        if error and not caught:  # a timeout, a crash, or no catch
            part_rows.append(dict(part=parts, setting="-", metric="status", value=error))
        took = time.time() - t0
        part_rows.append(dict(part=parts, setting="-", metric="part wall time (s)", value=took))
        rows += part_rows
        errors = sum(isinstance(r["value"], str) for r in part_rows)
        status = "failed" if error else f"done with {errors} error row(s)" if errors else "done"
        print(
            f"[{time.time() - start:6.1f} s] {parts}: {status} in "
            f"{took:.1f} s ({len(part_rows)} rows; log {log_path})"
            + (f"\n    {caught[0] if caught else error}" if error else ""),
            flush=True,
        )
    return rows, meta


def main(argv: list[str] | None = None) -> int:
    """The whole check (module docstring)."""
    args = parse_args(argv)
    missing = missing_modules()
    if missing:
        print(
            f"error: {sys.executable} cannot import {', '.join(missing)}; install them "
            "(or set PYTHON= to an interpreter that has them).",
            file=sys.stderr,
        )
        return 2
    device = ""
    if not args.smoke:
        is_gpu, device = gpu_platform()
        if not is_gpu:
            print(
                f"no GPU found (jax.devices()[0] is {device}); nothing measured "
                "(--smoke runs a tiny version on this device)."
            )
            return 0
    out = os.path.abspath(args.out)
    out_base = os.path.splitext(out)[0]
    os.makedirs(os.path.dirname(out), exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        rows, meta = run_all(args, tmp, out_base)
    device = device or meta.get("device", "an unknown device")
    wall = time.time() - started
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    mode = "smoke" if args.smoke else "full"
    header = f"gpu_check ({mode}) on {device}, {when}, {wall:.0f} s wall"
    table = markdown(rows, header)
    with open(out, "w") as f:
        f.write(table)
    with open(out_base + ".json", "w") as f:
        json.dump(dict(mode=mode, device=device, date=when, wall_s=wall, rows=rows), f, indent=2)
    print("\n" + table)
    print(f"written: {out} and {out_base}.json")
    ok = all(not (isinstance(r["value"], str) or math.isnan(r["value"])) for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
