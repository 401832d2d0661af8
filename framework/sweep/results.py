"""Sweep results: one row per point read from the files its run left (result.json,
metrics.jsonl, the sweep's status record), and the results.csv / results.md tables.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from framework import files
from framework.sweep.definition import Sweep, display_path, format_value

FINISHED = ("done", "early_stopped", "diverged")  # result.json statuses a re-run skips
STATUSES = ("done", "early_stopped", "diverged", "failed", "pending")
STATUS_FILE = "sweep_status.json"  # how the point's last run ended, beside its result.json


def _read_object(path: str) -> dict:
    value = files.read_json(path, {})
    return value if isinstance(value, dict) else {}


def point_row(workdir: str, name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """One results row for the point in `workdir/name`, read from its files."""
    pdir = os.path.join(workdir, name)
    result = _read_object(os.path.join(pdir, "result.json"))
    ran = _read_object(os.path.join(pdir, STATUS_FILE))
    metrics = files.read_jsonl(os.path.join(pdir, "metrics.jsonl"))
    status = result.get("status")
    if status not in FINISHED:
        status = "failed" if ran.get("status") == "failed" else "pending"
    row: dict[str, Any] = {"name": name, **overrides, "status": status}
    train = [r for r in metrics if r.get("split") == "train"]
    evals: dict[str, dict] = {}
    best: dict[str, float] = {}
    for r in metrics:
        split, loss = r.get("split"), r.get("loss")
        if split and split != "train":
            evals[split] = {k: v for k, v in r.items() if k not in ("step", "split", "time")}
            if isinstance(loss, int | float) and math.isfinite(loss):
                best[split] = min(best.get(split, loss), loss)
    if status in FINISHED:  # the final values the trainer reported
        row["steps"], row["train/loss"] = result.get("step"), result.get("train", {}).get("loss")
        evals = result.get("eval") or evals
    else:
        row["steps"] = train[-1]["step"] if train else None
    if row.get("train/loss") is None and train:
        row["train/loss"] = train[-1].get("loss")
    for split in sorted(set(evals) | set(best)):
        values = evals.get(split, {})
        row[f"{split}/loss"], row[f"{split}/best_loss"] = values.get("loss"), best.get(split)
        row.update({f"{split}/{k}": v for k, v in sorted(values.items()) if k != "loss"})
    row["wall_s"] = ran.get("elapsed_s", result.get("wall_time_s"))
    row["error"] = ran.get("error", "") if status == "failed" else ""
    return row


def collect_rows(sweep: Sweep, workdir: str) -> list[dict[str, Any]]:
    """Rows for every point of `sweep`, read from the files under `workdir`."""
    return [point_row(workdir, n, p) for n, p in zip(sweep.names, sweep.points, strict=True)]


def _cell(value: Any, markdown: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and markdown:
        return f"{value:.4g}"
    text = format_value(value)
    return text.replace("|", "\\|")[:100] if markdown else text


def summary(rows: Sequence[Mapping[str, Any]]) -> str:
    """'N done, N early_stopped, ...' over the rows."""
    counts = Counter(r["status"] for r in rows)
    return ", ".join(f"{counts[s]} {s}" for s in STATUSES)


def write_results(sweep: Sweep, workdir: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Writes `workdir/results.csv` and `workdir/results.md` (one row per point)."""
    metrics = dict.fromkeys(k for r in rows for k in r if "/" in k and k != "train/loss")
    columns = ["name", *sweep.keys, "status", "steps", "train/loss", *metrics, "wall_s", "error"]
    buf = io.StringIO()
    csv.writer(buf).writerows([columns, *([_cell(r.get(c), False) for c in columns] for r in rows)])
    files.atomic_write_text(os.path.join(workdir, "results.csv"), buf.getvalue())
    # The markdown table keeps '<evaluator>/<metric>' columns; per-tensor or per-layer
    # metrics ('align/alpha/blocks/0/...', 'train/grad_rms/...') stay in the CSV only.
    md_columns = [c for c in columns if c.count("/") <= 1]
    dropped = len(columns) - len(md_columns)
    lines = [
        f"# Sweep `{sweep.config_flag(display_path(sweep.config_path))}`\n",
        f"{len(rows)} points: {summary(rows)}. Updated {time.strftime('%Y-%m-%d %H:%M:%S')}.\n",
        *(
            [f"{dropped} per-tensor or per-layer metric columns are in results.csv only.\n"]
            if dropped
            else []
        ),
        "| " + " | ".join(md_columns) + " |",
        "|" + "|".join("---" for _ in md_columns) + "|",
        *("| " + " | ".join(_cell(r.get(c), True) for c in md_columns) + " |" for r in rows),
    ]
    files.atomic_write_text(os.path.join(workdir, "results.md"), "\n".join(lines) + "\n")


def key_metric(row: Mapping[str, Any]) -> str:
    """The row's first evaluation loss (else its train loss) as 'name value'."""
    for key in [k for k in row if k.endswith("/loss") and k != "train/loss"] + ["train/loss"]:
        if isinstance(row.get(key), int | float):
            return f"{key} {row[key]:.4g}"
    return ""
