"""Small-scale proxies report: LR sensitivity, figures and tables from a sweep.

    python -m experiments.small_scale_proxies.report --workdir=runs/proxies \\
        [--out=runs/proxies/report] [--readme=experiments/small_scale_proxies/README.md]

Reads the sweep of `configs/small_scale_proxies.py` in --workdir (sweep.json and one
folder per point) and writes to --out: report.md (LR-sensitivity table, best losses,
claim checks), runs.csv (one row per point), loss_vs_lr.png (final loss vs learning
rate per size, a panel per intervention, the paper's Fig. 1 layout),
lr_sensitivity.png (LR sensitivity vs non-embedding parameters per intervention),
attn_logits.png (max attention logit vs step, high-LR run with and without
qk-layernorm), log_z.png (mean log Z vs step with and without z-loss) and
grad_rms.png (gradient RMS per tensor vs step, beside Adam's eps). --readme replaces
the README's report section with report.md and copies the figures beside it.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from experiments.report_utils import (
    LossCurve,
    PanelLayout,
    md_table,
    ordered,
    plot_loss_vs_lr,
    pyplot,
    read_sweep,
    sweep_points,
    update_readme,
    write_report_md,
)
from framework import files
from framework.metrics import read_metrics

FIGURES = ("loss_vs_lr.png", "lr_sensitivity.png", "attn_logits.png", "log_z.png", "grad_rms.png")
HIGH_LR = 0.1  # the learning rate of the attention-logit and log Z figures (or the nearest)
HIGH_LR_MIN = 0.03  # the "high-LR gap" diagnostic averages over learning rates >= this
LOSS_VS_LR_LAYOUT = PanelLayout(
    max_cols=3, panel_size=(4.2, 3.2), color_stop=0.85, legend_title="size (non-emb.)"
)
LOSS_VS_LR_TITLE = "final loss vs learning rate (x: diverged; capped at the initial loss)"


def lr_sensitivity(final_losses: Sequence[float], init_loss: float) -> float:
    """LR sensitivity (Wortsman et al. 2023, Sec. 2): mean over the sweep's learning
    rates of min(loss, init_loss) - best, where best is the lowest final loss.

    A NaN or infinite loss (a diverged run) counts as init_loss, as does any loss
    above it. Returns NaN when no run ended below init_loss (no best loss exists)."""
    if not final_losses:
        raise ValueError("lr_sensitivity needs at least one final loss.")
    if not math.isfinite(init_loss):
        raise ValueError(f"init_loss must be finite, got {init_loss}.")
    capped = [
        min(float(x), init_loss) if x is not None and math.isfinite(x) else init_loss
        for x in final_losses
    ]
    best = min(capped)
    if best >= init_loss:
        return float("nan")
    return float(np.mean([c - best for c in capped]))


def load_runs(workdir: str) -> list[dict[str, Any]]:
    """One row per sweep point: size, intervention, lr, status, losses, parameters."""
    from models import transformer

    rows = []
    for name, point, run_dir, result in sweep_points(workdir, read_sweep(workdir)):
        row: dict[str, Any] = {
            "name": name,
            "size": point["arg:size"],
            "intervention": point["arg:intervention"],
            "lr": float(point["arg:lr"]),
            "status": "pending",
            "init_loss": float("nan"),
            "final_loss": float("nan"),
            "attn_logit_max": float("nan"),
            "log_z_mean": float("nan"),
        }
        if result is not None:
            config = files.read_json(os.path.join(run_dir, "config.json"))["config"]
            model = transformer.TransformerConfig(**config["model"])
            row["non_embedding_params"] = transformer.param_count(model)["non_embedding"]
            row["status"] = result["status"]
            row["init_loss"] = float(result.get("first_loss") or float("nan"))
            val = (result.get("eval") or {}).get("val", {})
            if result["status"] == "done" and val:
                row["final_loss"] = float(val["loss"])
                row["attn_logit_max"] = float(val.get("attn_logit_max", float("nan")))
                row["log_z_mean"] = float(val.get("log_z_mean", float("nan")))
        rows.append(row)
    return rows


def sensitivity_table(rows: list[dict]) -> dict[tuple[str, str], dict[str, float]]:
    """(size, intervention) -> LR sensitivity, best loss, its LR, and counts."""
    out = {}
    for size in ordered(rows, "size"):
        for inter in ordered(rows, "intervention"):
            group = [r for r in rows if r["size"] == size and r["intervention"] == inter]
            finished = [r for r in group if r["status"] in ("done", "diverged")]
            if len(finished) < len(group) or not group:
                continue
            init = [r["init_loss"] for r in group if math.isfinite(r["init_loss"])]
            init_loss = float(np.median(init))  # equal across LRs: same seed and init
            losses = [r["final_loss"] for r in group]
            finite = [(r["final_loss"], r["lr"]) for r in group if math.isfinite(r["final_loss"])]
            best, best_lr = min(finite) if finite else (float("nan"), float("nan"))
            high = [r["final_loss"] for r in group if r["lr"] >= HIGH_LR_MIN * (1 - 1e-9)]
            capped_high = [min(x, init_loss) if math.isfinite(x) else init_loss for x in high]
            out[(size, inter)] = dict(
                sensitivity=lr_sensitivity(losses, init_loss),
                high_lr_gap=float(np.mean(capped_high)) - best if high else float("nan"),
                best=best,
                best_lr=best_lr,
                init=init_loss,
                diverged=sum(r["status"] == "diverged" for r in group),
                params=group[0].get("non_embedding_params", 0),
            )
    return out


def plot_final_loss_vs_lr(rows: list[dict], path: str) -> None:
    """Final loss vs learning rate, a line per size, a panel per intervention."""
    sizes = ordered(rows, "size")
    finite = [r["final_loss"] for r in rows if math.isfinite(r["final_loss"])]
    init = [r["init_loss"] for r in rows if math.isfinite(r["init_loss"])]
    top = max(init) if init else (max(finite) if finite else 1.0)
    panels = {}
    for inter in ordered(rows, "intervention"):
        panels[inter] = []
        for size in sizes:
            group = sorted(
                (r for r in rows if r["size"] == size and r["intervention"] == inter),
                key=lambda r: r["lr"],
            )
            label = f"{size} ({group[0].get('non_embedding_params', 0) / 1e6:.2f}M)"
            capped = [min(r["final_loss"], r["init_loss"]) for r in group]
            bad = [r["lr"] for r in group if not math.isfinite(r["final_loss"])]
            panels[inter].append(LossCurve(label, [r["lr"] for r in group], capped, bad))
    ylim = (min(finite) - 0.1, top + 0.1) if finite else None
    labels = ("learning rate", "final val loss", LOSS_VS_LR_TITLE)
    plot_loss_vs_lr(panels, path, top=top, ylim=ylim, labels=labels, layout=LOSS_VS_LR_LAYOUT)


def plot_sensitivity(table: dict, rows: list[dict], path: str) -> None:
    """LR sensitivity vs non-embedding parameters, a line per intervention."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for inter in ordered(rows, "intervention"):
        pts = sorted((v["params"], v["sensitivity"]) for (s, i), v in table.items() if i == inter)
        if pts:
            ax.plot(*zip(*pts), "o-", label=inter)
    ax.set_xscale("log")
    ax.set_xlabel("non-embedding parameters")
    ax.set_ylabel("LR sensitivity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pick(rows: list[dict], inter: str, size: str, lr: float) -> dict | None:
    group = [r for r in rows if r["intervention"] == inter and r["size"] == size]
    return min(group, key=lambda r: abs(math.log(r["lr"] / lr)), default=None)


def _curves(workdir: str, run: dict, key: str) -> tuple[list[int], list[float]]:
    train = [m for m in read_metrics(os.path.join(workdir, run["name"])) if m["split"] == "train"]
    pts = [(m["step"], m[key]) for m in train if key in m]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_pair(
    workdir: str, rows: list[dict], pairs: Sequence[tuple[str, str]], key: str, path: str
) -> dict[str, float]:
    """`key` vs step for the largest size at HIGH_LR, one line per (intervention, label);
    returns each line's last value."""
    plt = pyplot()
    size = ordered(rows, "size")[-1]
    fig, ax = plt.subplots(figsize=(6, 4))
    last = {}
    lr = float("nan")
    for inter, label in pairs:
        run = _pick(rows, inter, size, HIGH_LR)
        if run is None or run["status"] == "pending":
            continue
        lr = run["lr"]
        steps, values = _curves(workdir, run, key)
        if steps:
            ax.plot(steps, values, label=label)
            last[inter] = values[-1]
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    if key == "attn_logit_max":
        ax.set_yscale("log")
    ax.set_title(f"size {size}, lr {lr:g}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return last


def plot_grad_rms(workdir: str, rows: list[dict], path: str, eps: float = 1e-8) -> None:
    """Gradient RMS of every tensor vs step (baseline, lr nearest 1e-3, each size)."""
    plt = pyplot()
    sizes = ordered(rows, "size")
    fig, axes = plt.subplots(1, len(sizes), figsize=(3.6 * len(sizes), 3.4), squeeze=False)
    for ax, size in zip(axes.flat, sizes):
        run = _pick(rows, "baseline", size, 1e-3)
        if run is None or run["status"] == "pending":
            continue
        train = [
            m for m in read_metrics(os.path.join(workdir, run["name"])) if m["split"] == "train"
        ]
        keys = sorted({k for m in train for k in m if k.startswith("grad_rms/")})
        for k in keys:
            pts = [(m["step"], m[k]) for m in train if k in m]
            ax.plot(*zip(*pts), lw=0.8, alpha=0.6)
        ax.axhline(eps, color="k", ls="--", lw=1, label="Adam eps")
        ax.set_yscale("log")
        ax.set_title(f"{size}, lr {run['lr']:g}: {len(keys)} tensors", fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes.flat[0].set_ylabel("gradient RMS")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build(workdir: str, out: str) -> str:
    """Writes every table and figure to `out`; returns report.md's text."""
    os.makedirs(out, exist_ok=True)
    rows = load_runs(workdir)
    with open(os.path.join(out, "runs.csv"), "w", newline="") as f:
        cols = ["name", "size", "intervention", "lr", "status", "init_loss", "final_loss"]
        cols += ["attn_logit_max", "log_z_mean", "non_embedding_params"]
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    done = [r for r in rows if r["status"] != "pending"]
    if not done:
        raise SystemExit(f"no finished runs in {workdir}; run the sweep first.")
    table = sensitivity_table(rows)
    sizes, inters = ordered(rows, "size"), ordered(rows, "intervention")
    plot_final_loss_vs_lr(done, os.path.join(out, "loss_vs_lr.png"))
    plot_sensitivity(table, done, os.path.join(out, "lr_sensitivity.png"))
    logits = plot_pair(
        workdir,
        done,
        [("baseline", "baseline"), ("qk_layernorm", "qk-layernorm")],
        "attn_logit_max",
        os.path.join(out, "attn_logits.png"),
    )
    log_z = plot_pair(
        workdir,
        done,
        [("baseline", "baseline"), ("z_loss", "z-loss 1e-4")],
        "log_z_mean",
        os.path.join(out, "log_z.png"),
    )
    plot_grad_rms(workdir, done, os.path.join(out, "grad_rms.png"))

    diverged = sum(r["status"] == "diverged" for r in rows)
    md = [
        f"{len(done)} of {len(rows)} runs finished ({diverged} diverged).",
        "",
    ]
    md += _tables_md(table, sizes, inters)
    md += ["**Claims checked here:**", ""]
    md += claim_lines(table, sizes, logits, log_z)
    md += [
        "",
        "![final loss vs LR](figures/loss_vs_lr.png)",
        "![LR sensitivity vs size](figures/lr_sensitivity.png)",
        "![attention logits](figures/attn_logits.png) ![log Z](figures/log_z.png)",
        "![gradient RMS](figures/grad_rms.png)",
    ]
    return write_report_md(out, md)


def _tables_md(table: dict, sizes: list[str], inters: list[str]) -> list[str]:
    """The LR-sensitivity, high-LR-gap and best-loss tables of report.md."""
    md = [
        "**LR sensitivity** (lower is better; mean over the learning rates of",
        "min(loss, initial loss) - best loss):",
        "",
    ]
    header = ["size", "non-emb. params"] + inters
    body = []
    for size in sizes:
        vals = [table.get((size, i), {}).get("sensitivity", float("nan")) for i in inters]
        params = next((v["params"] for (s, _), v in table.items() if s == size), 0)
        body.append([size, f"{params / 1e6:.2f}M", *vals])
    md += md_table(header, body, digits=3) + [""]
    md += [
        f"**High-LR gap** (this project's diagnostic, not the paper's: mean over the LRs >= "
        f"{HIGH_LR_MIN:g} of min(loss, initial loss) - best loss):",
        "",
    ]
    body = []
    for size in sizes:
        vals = [table.get((size, i), {}).get("high_lr_gap", float("nan")) for i in inters]
        body.append([size, *vals])
    md += md_table(["size", *inters], body, digits=3) + [""]
    md += ["**Best final validation loss** (learning rate in brackets):", ""]
    body = []
    for size in sizes:
        cells = []
        for i in inters:
            v = table.get((size, i))
            cells.append(f"{v['best']:.3f} ({v['best_lr']:g})" if v else "—")
        body.append([size, *cells])
    md += md_table(["size", *inters], body) + [""]
    return md


def claim_lines(
    table: dict, sizes: Sequence[str], logits: dict[str, float], log_z: dict[str, float]
) -> list[str]:
    """One line per claim, with the numbers that decide it."""

    def sens(size: str, inter: str, key: str = "sensitivity") -> float:
        return table.get((size, inter), {}).get(key, float("nan"))

    lines = []
    for key, what in (("sensitivity", "LR sensitivity"), ("high_lr_gap", "the high-LR gap")):
        pairs = [(s, sens(s, "baseline", key), sens(s, "qk_layernorm", key)) for s in sizes]
        pairs = [p for p in pairs if math.isfinite(p[1]) and math.isfinite(p[2])]
        if pairs and key == "high_lr_gap":
            lower = sum(b > x for _, b, x in pairs)
            detail = ", ".join(f"{s} {b:.3f} -> {x:.3f}" for s, b, x in pairs)
            lines.append(
                f"- qk-layernorm lowers {what} vs baseline: {lower} of {len(pairs)} sizes "
                f"({detail})."
            )
    for inter, label in (
        ("qk_layernorm", "qk-layernorm"),
        ("z_loss", "z-loss"),
        ("qk_layernorm+z_loss", "qk-layernorm + z-loss"),
        ("long_warmup", "longer warmup"),
        ("independent_wd", "independent weight decay"),
    ):
        pairs = [(s, sens(s, "baseline"), sens(s, inter)) for s in sizes]
        pairs = [p for p in pairs if math.isfinite(p[1]) and math.isfinite(p[2])]
        if not pairs:
            continue
        lower = sum(b > x for _, b, x in pairs)
        detail = ", ".join(f"{s} {b:.3f} -> {x:.3f}" for s, b, x in pairs)
        verdict = "yes" if lower == len(pairs) else "no" if lower == 0 else "partly"
        lines.append(
            f"- {label} lowers LR sensitivity vs baseline: **{verdict}** "
            f"({lower} of {len(pairs)} sizes; {detail})."
        )
    if "baseline" in logits and "qk_layernorm" in logits:
        b, q = logits["baseline"], logits["qk_layernorm"]
        lines.append(
            f"- attention-logit growth at high LR without qk-layernorm: final max logit "
            f"baseline {b:.1f} vs qk-layernorm {q:.1f} (**{'yes' if b > 3 * q else 'no'}**, "
            "yes = more than 3x)."
        )
    if "baseline" in log_z and "z_loss" in log_z:
        b, z = log_z["baseline"], log_z["z_loss"]
        verdict = "yes" if abs(z) < 0.5 * abs(b) else "no"
        lines.append(
            f"- z-loss keeps log Z near 0: final mean log Z baseline {b:.2f} vs "
            f"z-loss {z:.2f} (**{verdict}**, yes = z-loss at most half the baseline's |log Z|)."
        )
    if len(sizes) > 1:
        first, last = sizes[0], sizes[-1]
        b0, b1 = sens(first, "baseline"), sens(last, "baseline")
        if math.isfinite(b0) and math.isfinite(b1):
            lines.append(
                f"- baseline LR sensitivity grows with size: {first} {b0:.3f} -> {last} "
                f"{b1:.3f} (**{'yes' if b1 > b0 else 'no'}**)."
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: the report of one sweep (module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", required=True, help="the sweep's directory")
    p.add_argument("--out", default="", help="default: WORKDIR/report")
    p.add_argument("--readme", default="", help="splice report.md into this README")
    args = p.parse_args(argv)
    out = args.out or os.path.join(args.workdir, "report")
    text = build(args.workdir, out)
    print(text)
    print(f"report and figures in {out}")
    if args.readme:
        update_readme(args.readme, text, out, FIGURES)
        print(f"updated {args.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
