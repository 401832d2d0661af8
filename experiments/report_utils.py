"""Helpers shared by the experiments' report scripts: markdown tables and splicing a
generated report into an experiment README (so no number there is typed by hand)."""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from typing import Any

BEGIN, END = "<!-- report:begin -->", "<!-- report:end -->"


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
