"""The scaling-exponents report's figures: the transfer picture (loss vs base LR), the
optimal hidden-layer LR vs width, the alignment ratios vs step and the epsilon
comparison. experiments/scaling_exponents/report.py computes what they draw."""

from __future__ import annotations

import math

import numpy as np

from experiments.report_utils import LossCurve, PanelLayout, ordered, plot_loss_vs_lr, pyplot
from experiments.scaling_exponents.grid import EPS_STUDIES
from framework.metrics import read_metrics

TRANSFER_LAYOUT = PanelLayout(max_cols=4, panel_size=(3.8, 3.1), color_stop=0.9, log_base=2)
TRANSFER_TITLE = "transfer: final eval loss vs base LR (x: diverged, drawn at the top)"


def plot_transfer(rows: list[dict], path: str) -> None:
    """Final eval loss vs base LR, a line per width, a panel per study."""
    studies, widths = ordered(rows, "study"), sorted(ordered(rows, "width"))
    finite = [r["final_loss"] for r in rows if math.isfinite(r["final_loss"])]
    init = [r["init_loss"] for r in rows if math.isfinite(r["init_loss"])]
    top = min(max(init), np.percentile(finite, 90) + 0.5) if finite and init else 6.0
    drawn = [r for r in rows if r["status"] not in ("pending", "failed")]
    panels = {}
    for study in studies:
        panels[study] = []
        for width in widths:
            group = sorted(
                (r for r in drawn if r["study"] == study and r["width"] == width),
                key=lambda r: r["lr"],
            )
            ok = [r for r in group if math.isfinite(r["final_loss"])]
            bad = [r["lr"] for r in group if not math.isfinite(r["final_loss"])]
            losses = [min(r["final_loss"], top) for r in ok]
            panels[study].append(LossCurve(f"n={width}", [r["lr"] for r in ok], losses, bad))
    ylim = (min(finite) - 0.05, top + 0.05) if finite else None
    labels = ("base learning rate", "final eval loss", TRANSFER_TITLE)
    plot_loss_vs_lr(panels, path, top=top, ylim=ylim, labels=labels, layout=TRANSFER_LAYOUT)


def plot_optimal_lr(table: dict, path: str) -> None:
    """Optimal hidden-layer LR vs width per study, with its fit and the predictions."""
    plt = pyplot()
    studies = list(table)
    cols = min(4, len(studies))
    nrows = math.ceil(len(studies) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.8 * cols, 3.1 * nrows), squeeze=False)
    for ax, study in zip(axes.flat, studies, strict=False):
        t = table[study]
        pts = sorted(t["per_width"].items())
        if not pts:
            ax.set_title(f"{study}: no finished width", fontsize=9)
            ax.axis("off")
            continue
        ws = np.array([w for w, _ in pts], float)
        ys = np.array([v["hidden_lr"] for _, v in pts])
        edge = np.array([v["edge"] for _, v in pts])
        ax.plot(ws[~edge], ys[~edge], "o", color="C0", label="optimum")
        ax.plot(ws[edge], ys[edge], "x", color="C3", label="on grid edge")
        ok = ~edge & np.isfinite(ys)
        if ok.sum() >= 2 and math.isfinite(t["slope"]):
            w0, y0 = ws[ok][0], ys[ok][0]
            anchor = np.exp(np.mean(np.log(ys[ok]))) / np.exp(
                np.mean(t["slope"] * np.log(ws[ok] / w0))
            )
            ax.plot(
                ws,
                anchor * (ws / w0) ** t["slope"],
                "-",
                color="C0",
                lw=1,
                label=f"fit {t['slope']:+.2f}",
            )
            for key, style in (("full", "--"), ("none", ":")):
                pred = -t[key]
                ax.plot(
                    ws,
                    y0 * (ws / w0) ** pred,
                    style,
                    color="gray",
                    lw=1,
                    label=f"{key} alignment {pred:+.2f}",
                )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_title(study, fontsize=10)
        ax.set_xlabel("width n")
        ax.set_ylabel("optimal hidden-layer LR")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(studies) :]:
        ax.axis("off")
    fig.suptitle("optimal hidden-layer LR vs width: fitted slope vs predicted exponents")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def alignment_curves(rows: list[dict], study: str, table: dict) -> dict:
    """width -> [(step, {term_kind: value})] for the study's best-LR run of each width."""
    out = {}
    for width, v in sorted(table.get(study, {}).get("per_width", {}).items()):
        group = [r for r in rows if r["study"] == study and r["width"] == width]
        finite = [r for r in group if math.isfinite(r["final_loss"])]
        if not finite:
            continue
        best = min(finite, key=lambda r: r["final_loss"])
        curve = []
        for m in read_metrics(best["dir"]):
            if m.get("split") == "align":
                curve.append(
                    (
                        m["step"],
                        {
                            f"{t}_{k}": m.get(f"{t}/{k}", math.nan)
                            for t in ("alpha", "omega", "u")
                            for k in ("hidden", "readout")
                        },
                    )
                )
        out[width] = curve
        del v
    return out


def plot_alignment(curves: dict, study: str, path: str) -> None:
    """alpha, omega, u vs step (hidden, readout), a line per width."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(11, 5.6), squeeze=False)
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, max(1, len(curves))))
    for i, kind in enumerate(("hidden", "readout")):
        for j, term in enumerate(("alpha", "omega", "u")):
            ax = axes[i, j]
            for (width, curve), color in zip(sorted(curves.items()), colors, strict=False):
                if curve:
                    steps = [s for s, _ in curve]
                    ax.plot(
                        steps,
                        [v[f"{term}_{kind}"] for _, v in curve],
                        "o-",
                        ms=3,
                        color=color,
                        label=f"n={width}",
                    )
            for level in (0.5, 1.0):
                ax.axhline(level, color="gray", lw=0.8, ls=":")
            ax.set_title(f"{term} ({kind})", fontsize=10)
            ax.set_xlabel("step")
            ax.set_ylim(0.3, 1.1)
            ax.grid(alpha=0.3)
    if axes[0, 0].get_legend_handles_labels()[0]:
        axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"log-alignment ratios vs step ({study}, best LR per width; 1/2 none, 1 full)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_epsilon(rows: list[dict], table: dict, eps: float, path: str) -> None:
    """Left: best loss vs width per eps treatment; right: hidden gradient RMS vs eps."""
    plt = pyplot()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.8))
    for study in EPS_STUDIES:
        if study not in table:
            continue
        pts = sorted((w, v["loss"]) for w, v in table[study]["per_width"].items())
        if pts:
            ax0.plot(*zip(*pts), "o-", label=study)
    ax0.set_xscale("log", base=2)
    ax0.set_xlabel("width n")
    ax0.set_ylabel("best final eval loss (over base LRs)")
    ax0.grid(alpha=0.3)
    if ax0.get_legend_handles_labels()[0]:
        ax0.legend(fontsize=8)
    fixed = [r for r in rows if r["study"] == "eps_fixed" and math.isfinite(r["grad_rms_hidden"])]
    if fixed:
        widths = sorted(ordered(fixed, "width"))
        med = [np.median([r["grad_rms_hidden"] for r in fixed if r["width"] == w]) for w in widths]
        ax1.plot(widths, med, "o-", label="hidden gradient RMS (eps_fixed, median over LRs)")
    ref = [r for r in rows if r["study"] == "mean_field" and math.isfinite(r["grad_rms_hidden"])]
    if ref:
        widths = sorted(ordered(ref, "width"))
        med = [np.median([r["grad_rms_hidden"] for r in ref if r["width"] == w]) for w in widths]
        ax1.plot(widths, med, "s--", label="same, mean_field with eps 1e-8")
    ax1.axhline(eps, color="C3", ls=":", label=f"fixed eps = {eps:g}")
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log")
    ax1.set_xlabel("width n")
    ax1.set_ylabel("gradient RMS at the end of training")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    fig.suptitle("Adam's epsilon: fixed vs width-scaled vs Adam-atan2 (mean-field)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
