"""Helpers shared by the experiments' report scripts: reading a sweep's points, markdown
tables, a headless pyplot, the loss-vs-learning-rate figure of LR sweeps, and splicing a
generated report into an experiment README (so no number there is typed by hand).
JSON and metrics files are read with framework.files / framework.metrics."""

from __future__ import annotations

import argparse
import math
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from framework import files

BEGIN, END = "<!-- report:begin -->", "<!-- report:end -->"


def read_sweep(workdir: str) -> dict:
    """The sweep.json manifest in `workdir`; exits naming the fix when there is none."""
    path = os.path.join(workdir, "sweep.json")
    if not os.path.exists(path):
        raise SystemExit(f"{workdir} holds no sweep.json; run the sweep there first.")
    return files.read_json(path)


def sweep_points(workdir: str, manifest: dict) -> Iterator[tuple[str, dict, str, dict | None]]:
    """(name, point, run folder, result.json or None while it has none) per sweep point."""
    for name, point in manifest["points"].items():
        run_dir = os.path.join(workdir, name)
        result_path = os.path.join(run_dir, "result.json")
        result = files.read_json(result_path) if os.path.exists(result_path) else None
        yield name, point, run_dir, result


def ordered(rows: Sequence[Mapping], key: str) -> list:
    """The distinct values of `key` in `rows`, in order of first appearance."""
    return list(dict.fromkeys(r[key] for r in rows))


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


def report_flags(argv: Sequence[str] | None, doc: str) -> Any:
    """The flags of a report over one reproduction: --workdir and --readme."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--workdir", required=True, help="the reproduction's directory")
    p.add_argument("--readme", default="", help="splice the report into this README")
    return p.parse_args(argv)


def write_report_md(out: str, lines: Sequence[str]) -> str:
    """Writes `lines` (and a final newline) to `out`/report.md; returns the text."""
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(text)
    return text


class LossCurve(NamedTuple):
    """One line of a loss-vs-LR panel: finished runs' (lr, loss), NaN breaking the line,
    and the LRs of diverged runs (drawn as crosses at the figure's top)."""

    label: str
    lrs: list[float]
    losses: list[float]
    diverged: list[float]


class PanelLayout(NamedTuple):
    """A loss-vs-LR figure's grid and look: at most `max_cols` panels a row of
    `panel_size` inches, curve colours along viridis from 0 to `color_stop`, a
    log-`log_base` LR axis, and the legend's title."""

    max_cols: int
    panel_size: tuple[float, float]
    color_stop: float
    log_base: float = 10
    legend_title: str | None = None


def plot_loss_vs_lr(
    panels: Mapping[str, Sequence[LossCurve]],
    path: str,
    *,
    top: float,
    ylim: tuple[float, float] | None,
    labels: tuple[str, str, str],
    layout: PanelLayout,
) -> None:
    """Final loss vs learning rate, a panel per key of `panels`, each curve coloured by its
    position. `top`: the height of the diverged runs' crosses; `ylim`: the y range (None:
    automatic); `labels`: the x label, the y label and the figure's title."""
    xlabel, ylabel, suptitle = labels
    plt = pyplot()
    cols = min(layout.max_cols, len(panels))
    nrows = math.ceil(len(panels) / cols)
    figsize = (layout.panel_size[0] * cols, layout.panel_size[1] * nrows)
    fig, axes = plt.subplots(nrows, cols, figsize=figsize, squeeze=False)
    num_curves = len(next(iter(panels.values())))
    colors = plt.cm.viridis(np.linspace(0.0, layout.color_stop, num_curves))
    for ax, (title, curves) in zip(axes.flat, panels.items(), strict=False):
        for curve, color in zip(curves, colors, strict=True):
            if curve.lrs:
                ax.plot(curve.lrs, curve.losses, "o-", color=color, ms=3, label=curve.label)
            if curve.diverged:
                ax.plot(curve.diverged, [top] * len(curve.diverged), "x", color=color, ms=7)
        ax.set_xscale("log", base=layout.log_base)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ylim:
            ax.set_ylim(*ylim)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    legend = dict(title=layout.legend_title, title_fontsize=7) if layout.legend_title else {}
    axes.flat[0].legend(fontsize=7, **legend)
    fig.suptitle(suptitle)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
