"""benchmarks/gpu_check.sh: the no-GPU exit, a failing part as a row, the time cap, --smoke."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pytest

from tests.benchmarks import load_benchmark
from tests.conftest import ROOT, cli_env

SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.sh")


def gpu_check(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs the wrapper on the CPU with this interpreter."""
    return subprocess.run(
        ["bash", SCRIPT, *args],
        cwd=ROOT,
        env=cli_env(PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def load_module():
    """benchmarks/gpu_check.py as a module."""
    return load_benchmark("gpu_check")


def test_without_gpu_prints_one_line_and_runs_nothing(tmp_path):
    out = tmp_path / "table.md"
    start = time.time()
    proc = gpu_check([f"--out={out}"], timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("no GPU found"), proc.stdout
    assert "cpu" in lines[0]
    assert not os.listdir(tmp_path)  # no table, no JSON, no part logs
    assert time.time() - start < 60


def test_failing_part_is_an_error_row(tmp_path):
    out = tmp_path / "table.md"
    missing = tmp_path / "missing.csv"
    proc = gpu_check(["--smoke", "--only=pmformer", f"--data_path={missing}", f"--out={out}"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = json.loads((tmp_path / "table.json").read_text())["rows"]
    errors = [r for r in rows if isinstance(r["value"], str)]
    assert len(errors) == 1 and errors[0]["part"] == "4 pmformer"
    message = errors[0]["value"]
    assert message.startswith("error: ") and "missing.csv' does not exist" in message
    assert f"| {message} |" in out.read_text()
    assert "4 pmformer: failed" in proc.stdout
    assert (tmp_path / "table.pmformer.log").exists()


def test_part_over_its_cap_is_killed(tmp_path):
    gc = load_module()
    start = time.time()
    error = gc.run_part(
        "decode",
        1.0,
        str(tmp_path / "spec.json"),
        str(tmp_path / "rows.jsonl"),
        str(tmp_path / "decode.log"),
        smoke=True,
    )
    assert error == "error: timed out at its cap of 1 s"
    assert time.time() - start < 15


def test_smoke_csv_loads_as_ett_layout(tmp_path):
    from data import timeseries

    gc = load_module()
    path = gc.write_smoke_csv(str(tmp_path))
    series = timeseries.read_csv(path)
    assert series.values.shape == (gc.SMOKE_ROWS, 7)
    data = timeseries.load_series(path, lookback=48, horizon=96)
    assert data.num_features == 7 and len(data.val) >= 48 + 96


def test_markdown_formats_values():
    gc = load_module()
    rows = [
        dict(part="1 train", setting="s", metric="bare step tokens/s", value=12345.6),
        dict(part="3 memory", setting="s", metric="peak (bytes)", value=2.0 * 2**30),
        dict(part="4 pmformer", setting="a|b", metric="test MSE", value=0.41234),
        dict(part="2 decode", setting="-", metric="status", value="error: boom"),
    ]
    table = gc.markdown(rows, "header")
    assert "| 1 train | s | bare step tokens/s | 12,346 |" in table
    assert "2,147,483,648 (2.00 GiB)" in table
    assert "| 4 pmformer | a/b | test MSE | 0.4123 |" in table
    assert "| error: boom |" in table


@pytest.mark.slow
def test_smoke_measures_decode_and_pmformer(tmp_path):
    """The wrapper end to end on the decode and PMformer parts (the train + memory part
    runs in test_train_part_falls_back_from_cudnn_and_measures_memory)."""
    out = tmp_path / "gpu_check.md"
    start = time.time()
    proc = gpu_check(["--smoke", "--only=decode,pmformer", f"--out={out}"])
    wall = time.time() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for part in ("2 decode", "4 pmformer"):
        assert f"{part}: done" in proc.stdout
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    rows = result["rows"]
    assert result["mode"] == "smoke" and result["device"].startswith("cpu")
    for row in rows:  # every row a finite positive number: no error, no NaN
        assert isinstance(row["value"], float), row
        assert math.isfinite(row["value"]) and row["value"] > 0, row
    values = {(r["part"], r["metric"]): r["value"] for r in rows}
    metrics = {m for _, m in values}
    assert {"test MAE", "KV-cache decode tokens/s, batch 1"} <= metrics
    assert "KV-cache decode tokens/s, batch 8" in metrics
    mse = next(v for (p, m), v in values.items() if m.startswith("test MSE"))
    assert 0.01 < mse < 10  # z-scored series: about 1 for a barely trained model
    assert values[("4 pmformer", "steps trained")] == 6
    # The same rows in the markdown file and at the end of the output.
    table = out.read_text()
    assert table.count("\n| ") == len(rows) + 1  # the header row, then one per row
    assert table.splitlines()[2] in proc.stdout and table.splitlines()[-1] in proc.stdout
    walls = sum(v for (_, m), v in values.items() if m == "part wall time (s)")
    assert walls <= wall


@pytest.mark.slow
def test_train_part_falls_back_from_cudnn_and_measures_memory(tmp_path):
    gc = load_module()
    spec = gc.spec_for(gc.parse_args(["--smoke"]), "unused.csv")
    spec["train"]["model"] = dict(dtype="bfloat16", attention_impl="cudnn")  # no cuDNN on CPU
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    rows_path = tmp_path / "rows.jsonl"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "gpu_parts.py"), "--part=train"]
        + [f"--spec={tmp_path / 'spec.json'}", f"--rows={rows_path}"],
        cwd=ROOT,
        env=cli_env(XLA_FLAGS=gc.SMOKE_XLA_FLAGS),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
    rows = [r for r in rows if "part" in r]
    assert rows[0]["metric"] == "status (cuDNN attention)"
    assert rows[0]["value"].startswith("error: ") and "attention cudnn" in rows[0]["setting"]
    for row in rows[1:]:  # after the fallback: finite positive numbers
        assert isinstance(row["value"], float) and math.isfinite(row["value"]), row
        assert row["value"] > 0, row
    values = {(r["part"], r["metric"]): r["value"] for r in rows}
    ratio = next(r for r in rows if r["metric"] == "framework loop / bare step")
    assert "attention xla" in ratio["setting"] and 0 < ratio["value"] < 10
    assert values[("1 train", "batch (largest that fits, memory check)")] == 8
    assert values[("1 train", "parameters")] == 28928  # quickstart size=tiny
    assert "measured / estimate" in {m for _, m in values}
    estimate = values[("3 memory", "dry-run estimate per device (bytes)")]
    assert 1e5 < estimate < 1e9
