"""The report of experiments/equal_info/run.py: tables, claims Q1-Q6, figures.

    python -m experiments.equal_info.report --workdir=runs/eqinfo [--readme=README.md]

Reads WORKDIR/tokens/*/ (shard counters) and WORKDIR/m2/method=*/equal_info_eval.json
(experiments/equal_info/evaluate.py) and writes WORKDIR/report/{report.md, *.png}:
ratio.png (bytes per token per method, ours beside the paper's), bpb.png (M2's bits per
byte per method with its uniform and unigram lines), window.png (bits per token and
bits per byte vs window size) and positions.png (validation loss at each token position
within a window, per checkpoint: what M2 learns first).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from experiments import report_utils
from experiments.equal_info.compress import method_stats
from experiments.equal_info.methods import WINDOW_BITS, ordered
from framework import files

# Lester et al. 2024, Table 12 (bytes per token), Tables 15-16 (bits/byte at 25m): published.
PAPER_RATIO = {
    "bytes": 1.0, "sp": 4.28, "ac": 5.49, "ac_65k": 10.98, "static_ac": 1.73,
    "static_ac_65k": 3.46, "gzip": 2.23, "gzip_65k": 4.47, "eq16": 2.66, "eq16_65k": 5.31,
    "eq32": 3.49, "eq32_65k": 6.97, "eq64": 4.16, "eq64_65k": 8.33, "eq128": 4.61,
    "eq128_65k": 9.22,
}  # fmt: skip
PAPER_BPB_25M = {
    "bytes": 1.29, "sp": 1.12, "ac": 1.46, "ac_65k": 1.46, "static_ac": 4.61, "eq16": 1.47,
    "eq16_65k": 1.25, "gzip": 2.34, "gzip_65k": 2.92, "eq32": 2.05, "eq32_65k": 1.95,
    "eq64": 1.85, "eq64_65k": 1.82, "eq128": 1.71, "eq128_65k": 1.70,
}  # fmt: skip
UNLEARNED = 0.99  # Q1: a loss above this fraction of ln(v) "learns nothing"
FIGURES = ("ratio.png", "bpb.png", "window.png", "positions.png")


def load(workdir: str) -> tuple[dict, dict]:
    """({method: compression stats}, {method: M2 evaluation}) of a reproduction."""
    tokens = os.path.join(workdir, "tokens")
    names = ordered(os.listdir(tokens)) if os.path.isdir(tokens) else []
    stats = {m: method_stats(tokens, m) for m in names}
    stats = {m: s for m, s in stats.items() if "val" in s}
    evals, m2 = {}, os.path.join(workdir, "m2")
    for name in sorted(os.listdir(m2)) if os.path.isdir(m2) else ():
        path = os.path.join(m2, name, "equal_info_eval.json")
        if name.startswith("method=") and os.path.exists(path):
            evals[name.split("=", 1)[1]] = files.read_json(path)
    return stats, evals


def bits_per_token_gain(e: dict) -> float:
    """Bits per token below the uniform model's log2(v)."""
    return math.log2(e["vocab"]) - e["val_loss"] / math.log(2)


def claims(stats: dict, evals: dict) -> list[str]:
    """Q1-Q6, each with its numbers and holds / does not hold / not measured."""
    out = []
    ln = lambda e: math.log(e["vocab"])
    q1 = [m for m in ("ac", "static_ac", "ac_65k", "static_ac_65k") if m in evals]
    if q1:
        ok = all(evals[m]["val_loss"] >= UNLEARNED * ln(evals[m]) for m in q1)
        nums = ", ".join(f"{m} {evals[m]['val_loss']:.3f} nats (uniform {ln(evals[m]):.3f})"
                         for m in q1)  # fmt: skip
        out.append(f"- **Q1** AC and StaticAC unlearnable (loss ≥ {UNLEARNED}·ln v): "
                   f"{'holds' if ok else 'does not hold'} — {nums}.")  # fmt: skip
    if "eq16" in evals:
        e = evals["eq16"]
        ok = e["bits_per_byte"] < 0.98 * min(e["uniform_bpb"], e["unigram_bpb"])
        out.append(
            f"- **Q2** EqualInfoAC[16] learnable (≥ 2 % below its uniform and unigram lines): "
            f"{'holds' if ok else 'does not hold'} — {e['bits_per_byte']:.3f} bits/byte vs "
            f"uniform {e['uniform_bpb']:.3f}, unigram {e['unigram_bpb']:.3f}."
        )
    windows = [f"eq{b}" for b in WINDOW_BITS if f"eq{b}" in evals]
    if len(windows) > 1:
        gains = [bits_per_token_gain(evals[m]) for m in windows]
        ok = all(a > b for a, b in zip(gains, gains[1:]))
        nums = ", ".join(f"{m} {g:.3f}" for m, g in zip(windows, gains))
        out.append(f"- **Q3** shorter windows more learnable per token (bits/token below "
                   f"uniform): {'holds' if ok else 'does not hold'} — {nums}.")  # fmt: skip
    ranked = sorted((e["bits_per_byte"], m) for m, e in evals.items())
    if ranked:
        order = " < ".join(f"{m} {b:.3f}" for b, m in ranked)
        out.append(
            f"- **Q4** bits/byte ordering at our scale (measured): {order}. Paper at 25m "
            "(published): sp 1.12 < eq16_65k 1.25 < bytes 1.29 < eq16 1.47."
        )
    if {"eq16", "bytes"} <= stats.keys():
        r = {m: stats[m]["val"]["ratio"] for m in ("bytes", "sp", "eq16", "eq16_65k")
             if m in stats}  # fmt: skip
        nums = ", ".join(f"{m} {1 / v:.3f}" for m, v in r.items())
        steps = lambda m, ref: f"{r[ref] / r[m]:.2f}x the M2 steps per byte of {ref}"
        line = f"- **Q5** M2 steps (tokens) per byte: {nums}; eq16 takes {steps('eq16', 'bytes')}"
        if {"eq16_65k", "sp"} <= r.keys():
            line += f", eq16_65k {steps('eq16_65k', 'sp')}"
        out.append(line + ".")
    out += _q6(evals)
    return out


def _q6(evals: dict) -> list[str]:
    """Q6: at the first checkpoint, early window positions are further below uniform."""
    cands = [m for m in ("eq64", "eq32", "eq16") if "positions" in evals.get(m, {})]
    if not cands:
        return ["- **Q6** left-to-right learning within a window: not measured."]
    e = evals[cands[0]]
    steps = sorted(e["positions"], key=int)
    first = [math.log(e["vocab"]) - x for x in e["positions"][steps[0]]]
    half = len(first) // 2
    early, late = sum(first[:half]) / half, sum(first[half:]) / (len(first) - half)
    ok = early > late
    line = (
        f"- **Q6** tokens early in a window learned first ({cands[0]}, step {steps[0]}): "
        f"{'holds' if ok else 'does not hold'} — nats below uniform by position "
        + ", ".join(f"{g:.3f}" for g in first)
        + f"; first half {early:.3f} vs second half {late:.3f}"
    )
    if "position_unigram" in e:  # each position's own token frequencies, for scale
        line += "; each position's unigram: " + ", ".join(
            f"{math.log(e['vocab']) - x:.3f}" for x in e["position_unigram"]
        )
    return [line + "."]


def tables(stats: dict, evals: dict) -> list[str]:
    """The compression-ratio and bits-per-byte tables."""
    rows = []
    for m, s in stats.items():
        v, t = s["val"], s["train"]
        cut = f"{v['cut'] / v['windows']:.3f}" if v.get("windows") else ""
        rows.append([m, t["ratio"], v["ratio"], PAPER_RATIO.get(m), cut])
    lines = ["Compression (bytes per token):", ""]
    lines += report_utils.md_table(
        ["method", "train", "val", "paper (published)", "windows cut"], rows, 3
    )
    rows = [
        [m, e["ratio"], e["val_loss"], e["bits_per_byte"], e["uniform_bpb"], e["unigram_bpb"],
         e["flops_per_byte"] / 1e6, PAPER_BPB_25M.get(m)]
        for m, e in sorted(evals.items(), key=lambda x: x[1]["bits_per_byte"])
    ]  # fmt: skip
    lines += ["", "M2 on each method's tokens (validation):", ""]
    lines += report_utils.md_table(
        ["method", "bytes/token", "loss (nats/token)", "bits/byte", "uniform", "unigram",
         "MFLOPs/byte", "paper 25m (published)"], rows, 3,
    )  # fmt: skip
    return lines


def figures(stats: dict, evals: dict, out: str) -> None:
    """ratio.png, bpb.png, window.png, positions.png (module docstring)."""
    plt = report_utils.pyplot()
    names = list(stats)
    fig, ax = plt.subplots(figsize=(9, 3.5))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [stats[m]["val"]["ratio"] for m in names], 0.4, label="ours")
    ax.bar([x + 0.2 for x in xs], [PAPER_RATIO.get(m, 0) for m in names], 0.4,
           label="paper, C4 (published)")  # fmt: skip
    ax.set_xticks(list(xs), names, rotation=45, ha="right")
    ax.set_ylabel("bytes per token")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "ratio.png"), dpi=120)
    plt.close(fig)
    _bpb_figure(plt, evals, out)
    _window_figure(plt, evals, out)
    _positions_figure(plt, evals, out)


def _bpb_figure(plt, evals: dict, out: str) -> None:
    names = sorted(evals, key=lambda m: evals[m]["bits_per_byte"])
    fig, ax = plt.subplots(figsize=(8, 3.5))
    xs = list(range(len(names)))
    ax.bar(xs, [evals[m]["bits_per_byte"] for m in names], 0.6, label="M2")
    ax.scatter(xs, [evals[m]["uniform_bpb"] for m in names], marker="_", s=400, c="k",
               label="uniform")  # fmt: skip
    paper = [(x, PAPER_BPB_25M[m]) for x, m in zip(xs, names) if m in PAPER_BPB_25M]
    if paper:
        ax.scatter(*zip(*paper), marker="*", s=60, c="g", label="paper 25m (published)")
    ax.scatter(xs, [evals[m]["unigram_bpb"] for m in names], marker="_", s=400, c="r",
               label="unigram")  # fmt: skip
    ax.set_xticks(xs, names, rotation=45, ha="right")
    ax.set_ylabel("bits per byte (validation)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "bpb.png"), dpi=120)
    plt.close(fig)


def _window_figure(plt, evals: dict, out: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for suffix, label in (("", "v=256"), ("_65k", "v=65,536")):
        bs = [b for b in WINDOW_BITS if f"eq{b}{suffix}" in evals]
        if bs:
            es = [evals[f"eq{b}{suffix}"] for b in bs]
            axes[0].plot(bs, [bits_per_token_gain(e) for e in es], "o-", label=label)
            axes[1].plot(bs, [e["bits_per_byte"] for e in es], "o-", label=label)
    axes[0].set_ylabel("bits/token below uniform")
    axes[1].set_ylabel("bits/byte")
    for ax in axes:
        ax.set_xlabel("window bits b")
        ax.set_xscale("log", base=2)
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "window.png"), dpi=120)
    plt.close(fig)


def _positions_figure(plt, evals: dict, out: str) -> None:
    cands = [m for m in ("eq64", "eq32", "eq16") if "positions" in evals.get(m, {})]
    if not cands:
        return
    e = evals[cands[0]]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for step in sorted(e["positions"], key=int):
        ax.plot(range(1, len(e["positions"][step]) + 1), e["positions"][step], "o-",
                label=f"step {step}")  # fmt: skip
    ax.axhline(math.log(e["vocab"]), c="k", ls=":", label="uniform")
    if "position_unigram" in e:
        unigram = e["position_unigram"]
        ax.plot(range(1, len(unigram) + 1), unigram, "k--", label="position's unigram")
    ax.set_xlabel(f"token position within the window ({cands[0]})")
    ax.set_ylabel("validation loss (nats)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "positions.png"), dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> str:
    """Writes the report (module docstring); returns report.md's text."""
    args = report_utils.report_flags(argv, __doc__)
    out = os.path.join(args.workdir, "report")
    os.makedirs(out, exist_ok=True)
    stats, evals = load(args.workdir)
    lines = ["### Claims", ""] + claims(stats, evals) + [""] + tables(stats, evals)
    figures(stats, evals, out)
    lines += [""] + [f"![{f}](figures/{f})" for f in FIGURES if os.path.exists(
        os.path.join(out, f))]  # fmt: skip
    text = report_utils.write_report_md(out, lines)
    if args.readme:
        report_utils.update_readme(args.readme, text, out, FIGURES)
    return text


if __name__ == "__main__":
    main()
