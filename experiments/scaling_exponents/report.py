"""Scaling-exponents report: the transfer picture, optimal-LR slopes, alignment and the
epsilon comparison, from a sweep of configs/scaling_exponents.py.

    python -m experiments.scaling_exponents.report --workdir=runs/scaling_exponents \\
        [--out=runs/scaling_exponents/report] [--readme=experiments/scaling_exponents/README.md]

Reads sweep.json and every point's result.json / metrics.jsonl in --workdir and
writes to --out: report.md (tables and claim checks), runs.csv (one row per point),
optimal_lr.csv (one row per study and width), transfer.png (final eval loss vs base LR,
a line per width, a panel per study), optimal_lr.png (the optimal hidden-layer LR vs
width with the fitted log-log slope beside the predicted exponents), alignment.png
(alpha, omega, u vs step per width) and epsilon.png (Adam with fixed eps vs scaled
eps vs Adam-atan2: best loss and gradient RMS vs width). --readme replaces the README's
report section with report.md and copies the figures beside it.

The optimal base LR of a width is the grid minimum of the final eval loss, refined by a
parabola through it and its two neighbours in log2(LR) when it is inside the grid
(moved at most half a grid step); an optimum on the grid's edge is flagged and left out
of the slope fit. The slope is a least-squares fit of log2(optimal hidden LR) against
log2(width), where the hidden LR is eta * C_hidden * (n / base)^-c_hidden.
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
    md_table,
    ordered,
    read_sweep,
    sweep_points,
    update_readme,
    write_report_md,
)
from experiments.scaling_exponents import figures, grid
from framework import files

FIGURES = ("transfer.png", "optimal_lr.png", "alignment.png", "epsilon.png")
CONSTANTS_DIR, TUNED_DIR = "constants", "tuned"  # the pipeline's later sweeps (run.py)
TUNED_STUDY = "standard_tuned"  # the standard study with the searched LR constants
TRANSFER_SLOPE = 0.25  # |residual slope of the optimal base LR| below this: "transfers"
EPS_MARGIN = 0.02  # loss gap that counts as "fixed eps hurts" at the largest width


def study_exponents(study: str, variant: str = "cpu") -> dict[str, Any]:
    """The study's settings and its hidden-layer LR exponents: 'used' (what its runs
    apply), 'full' and 'none' (the solver's, for each alignment assumption)."""
    from optim import parameterization as pz

    s = dict(grid.DEFAULTS) | {"variant": variant} | grid.STUDIES[study.removesuffix("_tuned")]
    solver = grid.SOLVER[s["optimizer"]]
    full = pz.lr_exponents(s["param"], solver, "full")["hidden"]
    none = pz.lr_exponents(s["param"], solver, "none")["hidden"]
    used = 0.0 if s["lr_scaling"] == "global" else {"full": full, "none": none}[s["alignment"]]
    return dict(settings=s, used=used, full=full, none=none)


def _point_args(manifest: dict, point: dict) -> Any:
    """A point's config-file arguments: the sweep's argument, then the point's 'arg:' keys."""
    items = [x for x in str(manifest.get("arg") or "").split(",") if x.strip()]
    items += [f"{k[4:]}={v}" for k, v in point.items() if k.startswith("arg:")]
    return grid.parse_args(",".join(items))


def load_runs(workdir: str, study: str | None = None) -> list[dict[str, Any]]:
    """One row per sweep point: study (or `study`), width, lr, LR constants, status,
    losses and final probes."""
    manifest = read_sweep(workdir)
    rows = []
    for name, point, run_dir, result in sweep_points(workdir, manifest):
        a = _point_args(manifest, point)
        row: dict[str, Any] = {
            "name": name,
            "dir": run_dir,
            "study": study or a.study,
            "width": int(a.width),
            "lr": float(a.lr),
            "c_emb": float(a.c_emb),
            "c_readout": float(a.c_readout),
            "status": "pending",
            "init_loss": math.nan,
            "final_loss": math.nan,
            "grad_rms_hidden": math.nan,
        }
        for term in ("alpha", "omega", "u"):
            for kind in ("hidden", "readout"):
                row[f"{term}_{kind}"] = math.nan
        if result is not None:
            row["status"] = result["status"]
            row["init_loss"] = float(result.get("first_loss") or math.nan)
            ev = result.get("eval") or {}
            if result["status"] == "done" and ev.get("val"):
                row["final_loss"] = float(ev["val"]["loss"])
            for term in ("alpha", "omega", "u"):
                for kind in ("hidden", "readout"):
                    row[f"{term}_{kind}"] = float(
                        ev.get("align", {}).get(f"{term}/{kind}", math.nan)
                    )
            train = result.get("train") or {}
            row["grad_rms_hidden"] = _hidden_grad_rms(train)
        rows.append(row)
    return rows


def grid_lr(lr: float, grid: Sequence[float]) -> float:
    """The grid LR nearest to `lr` in log space (the constants search reuses grid LRs)."""
    return min(grid, key=lambda g: abs(math.log(g) - math.log(lr)))


def best_constants(rows: list[dict]) -> tuple[float, float]:
    """(c_emb, c_readout) of the lowest finite final loss; (1, 1) wins ties or no data."""
    finite = [r for r in rows if math.isfinite(r["final_loss"])]
    if not finite:
        return 1.0, 1.0
    best = min(finite, key=lambda r: (r["final_loss"], (r["c_emb"], r["c_readout"]) != (1.0, 1.0)))
    return best["c_emb"], best["c_readout"]


def constants_table(rows: list[dict]) -> list[list[Any]]:
    """Rows of c_emb with the final loss at each c_readout (columns sorted)."""
    readouts = sorted(ordered(rows, "c_readout"))
    out = []
    for c_emb in sorted(ordered(rows, "c_emb")):
        cells = []
        for c_r in readouts:
            match = [r["final_loss"] for r in rows if r["c_emb"] == c_emb and r["c_readout"] == c_r]
            cells.append(match[0] if match else math.nan)
        out.append([f"{c_emb:g}"] + cells)
    return out


def _hidden_grad_rms(metrics: dict[str, float]) -> float:
    """Geometric mean of the hidden kernels' gradient RMS in one metrics row."""
    vals = [
        v
        for k, v in metrics.items()
        if k.startswith("grad_rms/blocks/") and k.endswith("/kernel") and v and v > 0
    ]
    return float(np.exp(np.mean(np.log(vals)))) if vals else math.nan


def optimum(lrs: Sequence[float], losses: Sequence[float]) -> tuple[float, float, bool]:
    """(optimal LR, its loss, on_edge) from final losses over a log-spaced LR grid.

    Non-finite losses (diverged runs) never win. An interior grid minimum is refined by
    the vertex of the parabola through it and its neighbours in log2(LR), clamped to
    half a grid step; on_edge says the minimum is the grid's first or last LR."""
    pts = sorted((float(lr), float(x)) for lr, x in zip(lrs, losses, strict=True))
    finite = [i for i, (_, x) in enumerate(pts) if math.isfinite(x)]
    if not finite:
        return math.nan, math.nan, True
    i = min(finite, key=lambda j: pts[j][1])
    lr, best = pts[i]
    if i == 0 or i == len(pts) - 1:
        return lr, best, True
    (l0, y0), (l2, y2) = pts[i - 1], pts[i + 1]
    if not (math.isfinite(y0) and math.isfinite(y2)):
        return lr, best, False
    x0, x1, x2 = math.log2(l0), math.log2(lr), math.log2(l2)
    # The vertex of the parabola through three points (x0, y0), (x1, best), (x2, y2).
    den = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (best - y0) + x1 * (y0 - y2) + x0 * (y2 - best)) / den
    b = (x2**2 * (y0 - best) + x1**2 * (y2 - y0) + x0**2 * (best - y2)) / den
    if a <= 0:
        return lr, best, False
    half = 0.5 * min(x1 - x0, x2 - x1)
    vertex = min(max(-b / (2 * a), x1 - half), x1 + half)
    return float(2.0**vertex), best, False


def fit_slope(widths: Sequence[float], lrs: Sequence[float]) -> float:
    """Least-squares slope of log2(lr) against log2(width) (NaN with < 2 points)."""
    if len(widths) < 2:
        return math.nan
    return float(np.polyfit(np.log2(widths), np.log2(lrs), 1)[0])


def optimal_lr_table(rows: list[dict], variant: str = "cpu") -> dict[str, dict[str, Any]]:
    """study -> per-width optima, the fitted slopes and the predicted exponents."""
    base = grid.RUN[variant]["base"]
    out = {}
    for study in ordered(rows, "study"):
        ex = study_exponents(study, variant)
        per_width = {}
        for width in sorted(ordered(rows, "width")):
            group = [r for r in rows if r["study"] == study and r["width"] == width]
            if not group or any(r["status"] not in ("done", "diverged") for r in group):
                continue
            lr, loss, edge = optimum([r["lr"] for r in group], [r["final_loss"] for r in group])
            hidden_lr = lr * (width / base) ** (-ex["used"]) if math.isfinite(lr) else math.nan
            per_width[width] = dict(lr=lr, loss=loss, edge=edge, hidden_lr=hidden_lr)
        fit = [(w, v["hidden_lr"]) for w, v in per_width.items() if not v["edge"]]
        slope = fit_slope([w for w, _ in fit], [x for _, x in fit])
        out[study] = dict(
            per_width=per_width,
            slope=slope,  # of the optimal hidden-layer LR
            base_slope=slope + ex["used"] if math.isfinite(slope) else math.nan,
            fitted_points=len(fit),
            **ex,
        )
    return out


def _slope_rows(table: dict) -> list[list[Any]]:
    out = []
    for study, t in table.items():
        s = t["settings"]
        lrs = " ".join(
            f"{w}:{v['lr']:.2g}{'*' if v['edge'] else ''}"
            for w, v in sorted(t["per_width"].items())
        )
        out.append(
            [
                study,
                s["param"],
                s["optimizer"],
                "global" if s["lr_scaling"] == "global" else f"per-layer ({s['alignment']})",
                lrs,
                t["base_slope"],
                t["slope"],
                -t["full"],
                -t["none"],
                t["fitted_points"],
            ]
        )
    return out


def _nearer(t: dict) -> str:
    if not math.isfinite(t["slope"]):
        return "no fit"
    if t["full"] == t["none"]:
        return "full = none"
    full_gap, none_gap = abs(t["slope"] + t["full"]), abs(t["slope"] + t["none"])
    return "full alignment" if full_gap < none_gap else "no alignment"


# Pairs that the shift rule makes one model under Adam with the per-layer exponents:
# (a, b, c) -> (a + 1/2, b - 1/2, c - 1/2) on the hidden and readout layers (and the
# embedding for muP) maps the first onto the second, with eps the only difference.
ADAM_EQUIVALENT = (("standard", "ntk"), ("mup", "mean_field"))
EQUIVALENT_TOL = 0.01  # final-loss difference that still counts as "the same training"


def equivalence_gaps(rows: list[dict]) -> dict[tuple[str, str], tuple[float, float, int]]:
    """(study, study) -> (median and largest |final loss difference| over their common
    finished points, number of points compared), for ADAM_EQUIVALENT pairs."""
    out = {}
    for a, b in ADAM_EQUIVALENT:
        la = {(r["width"], r["lr"]): r["final_loss"] for r in rows if r["study"] == a}
        lb = {(r["width"], r["lr"]): r["final_loss"] for r in rows if r["study"] == b}
        diffs = [
            abs(la[k] - lb[k])
            for k in la.keys() & lb.keys()
            if math.isfinite(la[k]) and math.isfinite(lb[k])
        ]
        if diffs:
            out[(a, b)] = (float(np.median(diffs)), max(diffs), len(diffs))
    return out


def gradient_slopes(rows: list[dict], variant: str = "cpu") -> dict[str, tuple[float, float]]:
    """study -> (fitted log-log slope of the hidden kernels' gradient RMS vs width, median
    over the base LRs, at the end of training; the predicted -g_hidden), for the studies
    with eps = 1e-8 and Adam."""
    from optim import parameterization as pz

    out = {}
    for study in ("standard", "ntk", "mup", "mean_field"):
        pts = []
        for width in sorted(ordered(rows, "width")):
            vals = [
                r["grad_rms_hidden"]
                for r in rows
                if r["study"] == study
                and r["width"] == width
                and math.isfinite(r["grad_rms_hidden"])
            ]
            if vals:
                pts.append((width, float(np.median(vals))))
        if len(pts) >= 2:
            param = study_exponents(study, variant)["settings"]["param"]
            predicted = -pz.gradient_exponents(param)["hidden"]
            out[study] = (fit_slope([w for w, _ in pts], [g for _, g in pts]), predicted)
    return out


def claims(table: dict, rows: list[dict]) -> list[str]:
    """Claim checks, each a line naming the numbers it rests on."""
    lines = []
    grads = gradient_slopes(rows)
    if grads:
        detail = ", ".join(f"{s} n^{v[0]:+.2f} (predicted n^{v[1]:+.2f})" for s, v in grads.items())
        lines.append(
            "- Hidden-kernel gradient RMS vs width at the end of training (median over the "
            f"base LRs): {detail}."
        )
    for (a, b), (median, largest, count) in equivalence_gaps(rows).items():
        same = "yes" if median < EQUIVALENT_TOL else "no"
        lines.append(
            f"- {a} and {b} train alike under Adam with eps = 1e-8 (the shift rule makes "
            f"them one model but for eps and rounding): final-loss difference median "
            f"{median:.4f}, largest {largest:.4f} over {count} (width, LR) points "
            f"(**{same}**, yes = median below {EQUIVALENT_TOL})."
        )
    widths = sorted(ordered(rows, "width"))
    if not widths:
        return lines
    top, bottom = widths[-1], widths[0]
    per_layer = [
        s
        for s, t in table.items()
        if t["settings"]["lr_scaling"] == "per_layer"
        and s in ("standard", "ntk", "mup", "mean_field")
    ]
    transfer = [s for s in per_layer if abs(table[s]["base_slope"]) < TRANSFER_SLOPE]
    if per_layer:
        detail = ", ".join(f"{s} {table[s]['base_slope']:+.2f}" for s in per_layer)
        lines.append(
            f"- With per-layer exponents (full alignment) the optimal base LR is flat in width "
            f"(|slope| < {TRANSFER_SLOPE}) for **{len(transfer)} of {len(per_layer)}** "
            f"parameterizations ({detail})."
        )
    for s, t in table.items():
        if math.isfinite(t["slope"]):
            lines.append(
                f"- {s}: optimal hidden-layer LR ∝ n^{t['slope']:+.2f} (predicted "
                f"n^{-t['full']:+.2f} full, n^{-t['none']:+.2f} no alignment): nearer "
                f"**{_nearer(t)}**."
            )

    def cmp(a: str, b: str, width: int, text: str) -> None:
        la, lb = _best_loss(table, a, width), _best_loss(table, b, width)
        if math.isfinite(la) and math.isfinite(lb):
            verdict = "yes" if la < lb else "no"
            lines.append(f"- {text} at n={width}: {la:.4f} vs {lb:.4f} (**{verdict}**).")

    cmp("standard", "mup", top, "Per-layer standard parameterization beats muP (best loss)")
    cmp(TUNED_STUDY, "mup", top, "Per-layer standard with searched constants beats muP")
    cmp(TUNED_STUDY, "standard", top, "Searched constants beat C_l = 1 for per-layer standard")
    cmp(
        "standard",
        "standard_global",
        top,
        "Per-layer LRs beat one global LR for the standard parameterization (best loss)",
    )
    return lines + _eps_claims(table, bottom, top)


def _best_loss(table: dict, study: str, width: int) -> float:
    """The study's best final loss at `width` (NaN when it has none)."""
    return table.get(study, {}).get("per_width", {}).get(width, {}).get("loss", math.nan)


def _eps_claims(table: dict, bottom: int, top: int) -> list[str]:
    """The epsilon comparison's claim lines at the smallest and largest widths."""
    lines = []
    for width in (bottom, top):
        vals = {s: _best_loss(table, s, width) for s in grid.EPS_STUDIES}
        if all(math.isfinite(v) for v in vals.values()):
            lines.append(
                f"- eps at n={width}: best loss Adam eps 1e-8 {vals['mean_field']:.4f}, fixed "
                f"eps {vals['eps_fixed']:.4f}, scaled eps {vals['eps_scaled']:.4f}, Adam-atan2 "
                f"{vals['atan2']:.4f}."
            )
    slopes = {k: table.get(k, {}).get("base_slope", math.nan) for k in grid.EPS_STUDIES}
    if all(math.isfinite(v) for v in slopes.values()):
        lines.append(
            "- Optimal base-LR slope vs width (0 = transfers), mean-field: eps 1e-8 "
            f"{slopes['mean_field']:+.2f}, fixed eps {slopes['eps_fixed']:+.2f}, scaled eps "
            f"{slopes['eps_scaled']:+.2f}, Adam-atan2 {slopes['atan2']:+.2f}."
        )
    f, s, a = (_best_loss(table, k, top) for k in ("eps_fixed", "eps_scaled", "atan2"))
    if all(math.isfinite(x) for x in (f, s, a)):
        hurt = f - min(s, a) > EPS_MARGIN
        lines.append(
            f"- A fixed eps hurts at the largest width and scaled eps / Adam-atan2 cure it "
            f"(gap > {EPS_MARGIN}): {f:.4f} vs {s:.4f} / {a:.4f} (**{'yes' if hurt else 'no'}**)."
        )
    return lines


ALIGNMENT_STUDIES = ("standard", "mup", "standard_global")  # the others are equivalent


def alignment_table(rows: list[dict], table: dict) -> list[list[Any]]:
    """Final alignment ratios of the best-LR run at every width of ALIGNMENT_STUDIES."""
    out = []
    for study, t in table.items():
        if study not in ALIGNMENT_STUDIES:
            continue
        for width in sorted(t["per_width"]):
            group = [
                r
                for r in rows
                if r["study"] == study and r["width"] == width and math.isfinite(r["final_loss"])
            ]
            if not group:
                continue
            r = min(group, key=lambda r: r["final_loss"])
            out.append(
                [study, width, r["lr"]]
                + [
                    r.get(f"{term}_{kind}", math.nan)
                    for kind in ("hidden", "readout")
                    for term in ("alpha", "omega", "u")
                ]
            )
    return out


def write_report(workdir: str, out: str, variant: str = "cpu") -> str:
    """Writes report.md, the CSVs and the figures to `out`; returns the markdown."""
    rows = load_runs(workdir)
    const_rows: list[dict] = []
    if os.path.exists(os.path.join(workdir, CONSTANTS_DIR, "sweep.json")):
        const_rows = load_runs(os.path.join(workdir, CONSTANTS_DIR))
    if os.path.exists(os.path.join(workdir, TUNED_DIR, "sweep.json")):
        rows += load_runs(os.path.join(workdir, TUNED_DIR), study=TUNED_STUDY)
    os.makedirs(out, exist_ok=True)
    table = optimal_lr_table(rows, variant)
    _write_csvs(rows, table, out)
    finished = sum(r["status"] in ("done", "diverged") for r in rows)
    diverged = sum(r["status"] == "diverged" for r in rows)
    lines = [f"{finished} of {len(rows)} runs finished ({diverged} diverged).", ""]
    lines += _tables_md(rows, table)
    if const_rows:
        lines += _constants_md(const_rows)
    lines += ["", "**Claims checked here:**", ""] + claims(table, rows)
    figures.plot_transfer(rows, os.path.join(out, "transfer.png"))
    figures.plot_optimal_lr(table, os.path.join(out, "optimal_lr.png"))
    align_study = "standard" if "standard" in table else next(iter(table), "")
    figures.plot_alignment(
        figures.alignment_curves(rows, align_study, table),
        align_study,
        os.path.join(out, "alignment.png"),
    )
    figures.plot_epsilon(rows, table, grid.EPS_DEMO, os.path.join(out, "epsilon.png"))
    lines += [""] + [f"![{n}](figures/{n})" for n in FIGURES]
    return write_report_md(out, lines)


def _write_csvs(rows: list[dict], table: dict, out: str) -> None:
    """runs.csv (one row per point) and optimal_lr.csv (one per study and width)."""
    with open(os.path.join(out, "runs.csv"), "w", newline="") as f:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(out, "optimal_lr.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["study", "width", "optimal_base_lr", "best_loss", "on_edge", "hidden_lr"])
        for study, t in table.items():
            for width, v in sorted(t["per_width"].items()):
                w.writerow([study, width, v["lr"], v["loss"], v["edge"], v["hidden_lr"]])


def _tables_md(rows: list[dict], table: dict) -> list[str]:
    """The optimal-LR, best-loss and alignment tables of report.md."""
    lines = [
        "**Optimal base LR per width** (`*`: on the grid's edge, left out of the fit) and the "
        "fitted log-log slopes; the predicted exponents are the solver's hidden-layer c "
        "(lr_hidden ∝ n^-c) under full and no alignment:",
        "",
    ]
    lines += md_table(
        [
            "study",
            "param",
            "optimizer",
            "LR exponents",
            "optimal base LR (width:lr)",
            "slope base LR",
            "slope hidden LR",
            "predicted full",
            "predicted none",
            "fit points",
        ],
        _slope_rows(table),
        digits=2,
    )
    widths = sorted(ordered(rows, "width"))
    lines += ["", "**Best final eval loss** (over the base LRs) per width:", ""]
    lines += md_table(
        ["study"] + [f"n={w}" for w in widths],
        [
            [s] + [t["per_width"].get(w, {}).get("loss", math.nan) for w in widths]
            for s, t in table.items()
        ],
    )
    lines += [
        "",
        "**Alignment at the end of training** (best-LR run of each width; ntk and mean_field "
        "train as standard and mup do):",
        "",
    ]
    header = ["study", "width", "lr"]
    header += [f"{t} {kind}" for kind in ("hidden", "readout") for t in ("α", "ω", "u")]
    return lines + md_table(header, alignment_table(rows, table), digits=3)


def _constants_md(const_rows: list[dict]) -> list[str]:
    """The LR-constants search's paragraph and table."""
    c_emb, c_readout = best_constants(const_rows)
    lr = const_rows[0]["lr"]
    lines = [
        "",
        f"**LR constants search** (standard, Adam, width {const_rows[0]['width']}, base LR "
        f"{lr:.3g}): final eval loss by embedding constant (rows) and readout constant "
        f"(columns), relative to the hidden layers'; best c_emb = {c_emb:g}, c_readout = "
        f"{c_readout:g}, run at every width as `{TUNED_STUDY}`:",
        "",
    ]
    readouts = sorted(ordered(const_rows, "c_readout"))
    return lines + md_table(
        ["c_emb \\ c_readout"] + [f"{c:g}" for c in readouts], constants_table(const_rows)
    )


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: the report of one sweep (module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--out", default="")
    p.add_argument("--variant", default="", help="the sweep's variant (default: from sweep.json)")
    p.add_argument("--readme", default="")
    args = p.parse_args(argv)
    out = args.out or os.path.join(args.workdir, "report")
    variant = args.variant or _variant(args.workdir)
    text = write_report(args.workdir, out, variant)
    print(text)
    if args.readme:
        update_readme(args.readme, text, out, FIGURES)
    return 0


def _variant(workdir: str) -> str:
    """The variant the sweep in `workdir` was run with (its config argument)."""
    path = os.path.join(workdir, "sweep.json")
    if not os.path.exists(path):
        return "cpu"
    arg = str(files.read_json(path).get("arg") or "")
    for item in arg.split(","):
        key, _, value = item.partition("=")
        if key.strip() == "variant":
            return value.strip()
    return "cpu"


if __name__ == "__main__":
    raise SystemExit(main())
