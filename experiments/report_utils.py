"""Helpers shared by the experiments' report scripts: reading run outputs, markdown
tables, a headless pyplot, and splicing a generated report into an experiment README
(so no number there is typed by hand)."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from typing import Any

BEGIN, END = "<!-- report:begin -->", "<!-- report:end -->"


def read_json(path: str) -> dict:
    """A JSON file's object."""
    with open(path) as f:
        return json.load(f)


def read_metrics(run_dir: str) -> list[dict]:
    """A run's metrics.jsonl rows ([] when it has none yet)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend (reports run headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fmt(v: Any, digits: int = 4) -> str:
    """A table cell: floats to `digits` decimals, non-finite and missing values as '—'."""
    if isinstance(v, float):
        return f"{v:.{digits}f}" if math.isfinite(v) else "—"
    return "—" if v is None or v == "" else str(v)


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4) -> list[str]:
    """A markdown table's lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v, digits) for v in r) + " |" for r in rows]
    return lines


def update_readme(readme: str, text: str, out: str, figures: Sequence[str]) -> None:
    """Replaces the README's text between the report markers with `text` and copies
    `figures` (file names in `out`) to a figures/ folder beside the README."""
    with open(readme) as f:
        body = f.read()
    if BEGIN not in body or END not in body:
        raise SystemExit(f"{readme} has no '{BEGIN}' ... '{END}' markers; add them.")
    head, rest = body.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(readme, "w") as f:
        f.write(f"{head}{BEGIN}\n{text}{END}{tail}")
    fig_dir = os.path.join(os.path.dirname(readme), "figures")
    os.makedirs(fig_dir, exist_ok=True)
    for name in figures:
        src = os.path.join(out, name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(fig_dir, name))
