"""PMformer report: tables (markdown + CSV) and figures from this project's runs.

    python -m experiments.pmformer.report --runs=runs/pmformer_etth1 \\
        --runs=runs/pmformer_synth_S --out=runs/pmformer_report \\
        [--readme=experiments/pmformer/README.md]

Every finished run directory (result.json status done or early_stopped, and
config.json, at any depth below a --runs folder) becomes one row. Its evaluation
numbers are those of the best-validation parameters when the run kept them
(result.json['best']['eval'], train.best_metric), else of the final parameters,
plus extra_evals.json (experiments.pmformer.evaluate: test, N_I and feature-drop
evaluations on the same parameters); the tables say which. Writes to --out: results.csv (every run),
report.md (per dataset: an MSE/MAE table per horizon and averaged, for PMformer,
S = 1, S = D and DLinear, beside the published PatchTST numbers on ETTh1, and the
claim checks), mse_vs_S.png, mse_vs_NI.png and drop.png. --readme replaces the
text between the README's report markers with report.md and copies the figures
beside the README (figures/), so the numbers there are never typed by hand.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from experiments.pmformer.evaluate import EXTRA_FILE, FINISHED, run_dirs
from experiments.report_utils import md_table, pyplot, update_readme, write_report_md
from framework import files

# PatchTST (Nie et al., ICLR 2023), Table 3, PatchTST/64 (lookback 512) on ETTh1: MSE.
PATCHTST_ETTH1_MSE = {96: 0.370, 192: 0.413, 336: 0.422, 720: 0.447}
TARGET_ETTH1_AVG_MSE = 0.413  # issue 7's target for PMformer averaged over the 4 horizons
# figure -> x label, y label, title, log2 x axis
FIGURE_AXES = {
    "mse_vs_S.png": (
        "subset size S",
        "test MSE / MSE at S = 1",
        "MSE vs S, relative to S = 1 (S = D is the right end)",
        False,
    ),
    "mse_vs_NI.png": ("N_I (partitions averaged)", "test MSE", "MSE vs N_I", True),
    "drop.png": ("feature-drop rate", "test MSE increase", "MSE increase vs drop rate", False),
}
FIGURES = tuple(FIGURE_AXES)


def _num_features(config: dict) -> int:
    d = config["data"]
    if not d["path"]:
        return d["synth_groups"] * d["synth_group_size"] + d["synth_distractors"]
    with open(d["path"]) as f:
        return len(f.readline().strip().split(",")) - 1


def _synth_name(config: dict) -> str:
    """A synthetic series' table name: its shape (groups x size + distractors, rows)."""
    d = config["data"]
    return (
        f"synthetic {d['synth_groups']}x{d['synth_group_size']}+{d['synth_distractors']} "
        f"(D = {_num_features(config)}, {d['synth_steps']} rows)"
    )


def run_row(run_dir: str) -> dict[str, Any]:
    """One run's settings and evaluation numbers: those of the best-validation
    parameters (result.json['best']['eval']) when the run kept them, else the final
    evaluation; plus extra_evals.json (experiments.pmformer.evaluate) when present."""
    config = files.read_json(os.path.join(run_dir, "config.json"))["config"]
    result = files.read_json(os.path.join(run_dir, "result.json"))
    d = _num_features(config)
    s = config["forecast"]["subset_size"] or d
    s = min(s, d)
    if config["model"]["name"] == "dlinear":
        model = "DLinear"
    elif s == 1:
        model = "S = 1 (univariate patch transformer)"
    elif s == d:
        model = "S = D (complete-multivariate)"
    else:
        model = f"PMformer (S = {s})"
    # a variant of the architecture, kept apart in every table and claim
    variant = "" if config["model"]["name"] == "dlinear" or config["model"]["revin"] else "no RevIN"
    if variant:
        model += f" [{variant}]"
    path = config["data"]["path"]
    best = result.get("best") or {}
    evals = best.get("eval") or {}
    row: dict[str, Any] = {
        "run": os.path.relpath(run_dir),
        "dataset": os.path.splitext(os.path.basename(path))[0] if path else _synth_name(config),
        "model": model,
        "variant": variant,
        "S": s if config["model"]["name"] != "dlinear" else "",
        "D": d,
        "lookback": config["data"]["lookback"],
        "horizon": config["data"]["horizon"],
        "N_I": config["forecast"]["num_partitions"],
        "seed": config.get("seed", 0),
        "steps": result.get("step"),
        "status": result.get("status"),
        "wall_s": int(round(result.get("wall_time_s") or 0)),
        "params": f"best @ {best['step']}" if evals else "final",
        "_config": config,  # for the linear probes; not written to results.csv
        "best_metric": config["train"].get("best_metric", "") if evals else "",
    }
    train_loss = (result.get("train") or {}).get("loss")
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    if train_loss is None and os.path.exists(metrics_path):  # a resumed, evaluate-only run
        with open(metrics_path) as f:
            train = [json.loads(x) for x in f if '"train"' in x]
        train_loss = next((m["loss"] for m in reversed(train) if "loss" in m), None)
    row["train_loss"] = train_loss
    last = result.get("eval") or {}
    row["last/val_mse"] = (last.get("val") or {}).get("mse")
    row["last/test_mse"] = (last.get("test") or {}).get("mse")
    extra_path = os.path.join(run_dir, EXTRA_FILE)
    extra = files.read_json(extra_path)["eval"] if os.path.exists(extra_path) else {}
    for name, metrics in sorted({**(evals or last), **extra}.items()):
        for k in ("mse", "mae", "naive_mse", "ref_mse"):
            if k in metrics:
                row[f"{name}/{k}"] = metrics[k]
    return row


def _model_order(model: str) -> tuple[int, str]:
    return (
        0
        if model.startswith("PMformer")
        else 1
        if "S = 1" in model
        else 2
        if "S = D" in model
        else 3,
        model,
    )


SETTINGS = ("dataset", "model", "variant", "S", "D", "lookback", "horizon", "N_I")


def average_seeds(rows: list[dict]) -> list[dict]:
    """One row per setting (SETTINGS): every metric ('<eval>/<name>') averaged over the
    runs (seeds) that have it; 'seeds' counts the runs, 'n' each metric's runs and
    'test/mse_sd' is the seeds' sample standard deviation of test MSE (None for one)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in SETTINGS)].append(r)
    out = []
    for rs in groups.values():
        row = {k: rs[0][k] for k in SETTINGS}
        row.update(seeds=len(rs), n={})
        for key in dict.fromkeys(k for r in rs for k in r if "/" in k):
            vals = [r[key] for r in rs if isinstance(r.get(key), int | float)]
            if vals:
                row[key], row["n"][key] = sum(vals) / len(vals), len(vals)
        mses = [r["test/mse"] for r in rs if "test/mse" in r]
        row["test/mse_sd"] = None
        if len(mses) > 1:
            mean = sum(mses) / len(mses)
            row["test/mse_sd"] = (sum((v - mean) ** 2 for v in mses) / (len(mses) - 1)) ** 0.5
        out.append(row)
    return out


def _n_seeds(r: dict, key: str = "test/mse") -> int:
    return r.get("n", {}).get(key, 1)


def _seeds(r: dict, key: str = "test/mse") -> str:
    """' (mean of n seeds)' when a metric averages more than one run, else ''."""
    n = r.get("n", {}).get(key, 1)
    return f" (mean of {n} seeds)" if n > 1 else ""


def horizon_table(rows: list[dict], dataset: str) -> tuple[list[str], list[list[Any]]]:
    """Header and rows: test MSE/MAE per horizon and their average, per model (rows as
    average_seeds gives them; 'seeds' is the number of runs averaged per horizon)."""
    mine = [r for r in rows if r["dataset"] == dataset and "test/mse" in r]
    horizons = sorted({r["horizon"] for r in mine})
    header = ["model", "lookback"]
    for h in horizons:
        header += [f"MSE H={h}", f"MAE H={h}"]
    header += ["avg MSE", "avg MAE", "horizons", "seeds"]
    table = []
    by_model: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for r in mine:
        by_model[(r["model"], r["lookback"])][r["horizon"]] = r
    for (model, lookback), hs in sorted(by_model.items(), key=lambda kv: _model_order(kv[0][0])):
        line: list[Any] = [model, lookback]
        for h in horizons:
            r = hs.get(h)
            line += [r["test/mse"], r["test/mae"]] if r else [None, None]
        mses = [hs[h]["test/mse"] for h in hs]
        maes = [hs[h]["test/mae"] for h in hs]
        seeds = sorted({hs[h].get("n", {}).get("test/mse", 1) for h in hs})
        seeds_txt = f"{seeds[0]}–{seeds[-1]}" if len(seeds) > 1 else seeds[0]
        line += [sum(mses) / len(mses), sum(maes) / len(maes), len(hs), seeds_txt]
        table.append(line)
    naive = {h: next(r["test/naive_mse"] for r in mine if r["horizon"] == h) for h in horizons}
    line = ["naive last value (measured)", ""]
    for h in horizons:
        line += [naive[h], None]
    line += [sum(naive.values()) / len(naive), None, len(naive), None]
    table.append(line)
    if dataset == "ETTh1":
        pub = [PATCHTST_ETTH1_MSE[h] for h in horizons if h in PATCHTST_ETTH1_MSE]
        line = ["PatchTST/64 (published, not run here)", 512]
        for h in horizons:
            line += [PATCHTST_ETTH1_MSE.get(h), None]
        line += [sum(pub) / len(pub) if pub else None, None, len(pub), None]
        table.append(line)
    return header, table


def _plot(
    path: str,
    series: dict[str, tuple[list, list]],
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
) -> bool:
    if not series:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    colors = plt.cm.tab20.colors  # more series than the default cycle's 10 colors
    for i, (label, (xs, ys)) in enumerate(sorted(series.items())):
        style = "--" if "S = D" in label else "-"  # drop figure: S = D dashed
        ax.plot(xs, ys, style, marker="o", color=colors[i % len(colors)], label=label)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _params_note(rows: list[dict]) -> str:
    """Which parameters a table's test numbers come from (best-validation or final)."""
    best = [r for r in rows if r["params"].startswith("best")]
    metrics = sorted({r["best_metric"] for r in best})
    if len(best) == len(rows):
        return (
            f"Test metrics of every run are those of its best-validation parameters "
            f"(lowest {', '.join(metrics)} over the periodic evaluations; see the Runs table)."
        )
    if not best:
        return "Test metrics are those of the final parameters (no best checkpoint was kept)."
    return (
        f"Test metrics of {len(best)} of {len(rows)} runs are those of their best-validation "
        f"parameters (lowest {', '.join(metrics)}); the others' are final (see the Runs table)."
    )


def _best_partial(rows: list[dict]) -> dict | None:
    part = [r for r in rows if r["model"].startswith("PMformer") and "test/mse" in r]
    return min(part, key=lambda r: r["test/mse"]) if part else None


def etth1_target_claims(rows: list[dict]) -> list[str]:
    """The ETTh1 target, per PMformer setting (S, lookback): its test MSE averaged over
    the horizons it has, and which setting validation (average val MSE) would pick."""
    settings: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for r in rows:
        if r["dataset"] == "ETTh1" and r["model"].startswith("PMformer"):
            settings[(r["model"], r["lookback"])][r["horizon"]] = r
    lines, complete = [], {}
    for (model, lookback), hs in sorted(settings.items()):
        avg = sum(r["test/mse"] for r in hs.values()) / len(hs)
        scope = "all four horizons" if len(hs) == 4 else f"only H = {sorted(hs)} (not all four)"
        pub = sum(PATCHTST_ETTH1_MSE[h] for h in hs) / len(hs)
        met = "**met**" if len(hs) == 4 and avg <= TARGET_ETTH1_AVG_MSE else "**not met**"
        lines.append(
            f"- ETTh1, {model}, lookback {lookback}: test MSE averaged over {scope}: "
            f"{avg:.4f} (target ≤ {TARGET_ETTH1_AVG_MSE}: {met}; PatchTST/64 published "
            f"average over the same horizons {pub:.3f})."
        )
        vals = [r.get("val/mse") for r in hs.values()]
        if len(hs) == 4 and all(isinstance(v, float) for v in vals):
            complete[(model, lookback)] = (sum(vals) / 4, avg)
    if len(complete) > 1:
        (model, lookback), (val, test) = min(complete.items(), key=lambda kv: kv[1][0])
        lines.append(
            f"- ETTh1: of the PMformer settings with all four horizons, validation (average "
            f"val MSE {val:.4f}) picks {model}, lookback {lookback}: test {test:.4f}."
        )
    return lines


def probe_table(runs: list[dict]) -> list[str]:
    """Markdown lines: the linear probes (experiments/pmformer/probe.py) of every
    (dataset, lookback, horizon) among `runs`; settings whose data cannot be read
    (e.g. a CSV that is not here) are left out."""
    from data import timeseries
    from experiments.pmformer import probe

    seen: dict[tuple, dict] = {}
    for r in runs:
        seen.setdefault((r["dataset"], r["lookback"], r["horizon"]), r["_config"])
    table = []
    for (ds, lookback, horizon), config in sorted(seen.items()):
        try:
            p = probe.ridge_probe(
                probe.data_from_config(config, lookback, horizon), lookback, horizon
            )
        except (timeseries.DataError, OSError):
            continue
        ratio = p["multivariate_mse"] / p["univariate_mse"]
        table.append([ds, lookback, horizon, p["univariate_mse"], p["multivariate_mse"], ratio])
    if not table:
        return []
    header = ["dataset", "lookback", "horizon", "univariate test MSE", "multivariate test MSE"]
    return [
        "#### Linear probes (ridge regression on the same windows; not trained runs)",
        "",
        "Univariate: one map from a feature's own lookback to its horizon, shared by the "
        "features (like S = 1). Multivariate: each feature's horizon from all D lookbacks "
        "(like S = D). Ridge strength picked on validation; test MSE (z-scored). A ratio "
        "below 1 means the other features help a linear forecaster; above 1, that using "
        "them all over-fits at this amount of data.",
        "",
        *md_table(header + ["multivariate / univariate"], table),
        "",
    ]


def build(rows: list[dict], out: str, probes: bool = True) -> str:
    """Writes results.csv, report.md and the figures to `out`; returns report.md's text."""
    os.makedirs(out, exist_ok=True)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys and not k.startswith("_")]
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    runs, rows = rows, average_seeds(rows)
    md = _dataset_tables_md(rows, runs, out)
    claims, series = _claims_and_series(rows)
    if probes:
        md += probe_table(runs)
    if claims:
        md += ["#### Claims, checked on these runs", ""] + claims + [""]
    figs = [
        name
        for name, (xlabel, ylabel, title, logx) in FIGURE_AXES.items()
        if _plot(os.path.join(out, name), series[name], xlabel, ylabel, title, logx=logx)
    ]
    if figs:
        md += ["#### Figures", ""] + [f"![{f}](figures/{f})" for f in figs] + [""]
    return write_report_md(out, md + _runs_md(runs))


def _dataset_tables_md(rows: list[dict], runs: list[dict], out: str) -> list[str]:
    """Per dataset: the horizon table (markdown, and table_<dataset>.csv in `out`)."""
    md: list[str] = []
    for dataset in sorted({r["dataset"] for r in rows}):
        header, table = horizon_table(rows, dataset)
        if not table:
            continue
        md += [f"#### {dataset}: test MSE / MAE (z-scored), stride-1 windows", ""]
        md += [_params_note([r for r in runs if r["dataset"] == dataset]), ""]
        md += md_table(header, table) + [""]
        slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", dataset).strip("_")
        with open(os.path.join(out, f"table_{slug}.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(table)
    return md


def _claims_and_series(rows: list[dict]) -> tuple[list[str], dict[str, dict]]:
    """The claim lines and each figure's series (FIGURE_AXES), per (dataset, horizon,
    lookback) of the seed-averaged rows with a subset size."""
    series: dict[str, dict] = {name: {} for name in FIGURE_AXES}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["S"] != "" and "test/mse" in r:
            ds = r["dataset"] + (f" [{r['variant']}]" if r["variant"] else "")
            groups[(ds, r["horizon"], r["lookback"])].append(r)
    claims = []
    for (ds, h, lb), rs in sorted(groups.items()):
        claims += _subset_claims(ds, h, lb, rs, series["mse_vs_S.png"])
        claims += _partition_claims(ds, h, lb, rs, series["mse_vs_NI.png"])
        claims += _drop_claims(ds, h, lb, rs, series["drop.png"])
    return claims + etth1_target_claims(rows), series


def _subset_claims(ds: str, h: int, lb: int, rs: list[dict], s_series: dict) -> list[str]:
    """MSE vs S (into `s_series`) and whether an intermediate S beats S = 1 and S = D."""
    by_s = {r["S"]: r["test/mse"] for r in rs}
    row_s = {r["S"]: r for r in rs}
    if len(by_s) <= 1:
        return []
    s_sorted = sorted(by_s)
    base = by_s.get(1, by_s[s_sorted[0]])  # relative, so datasets share an axis
    s_series[f"{ds} H={h} L={lb}"] = (s_sorted, [by_s[s] / base for s in s_sorted])
    d = rs[0]["D"]
    # compare like with like: only S with as many seeds as S = 1 and S = D
    n_ref = {_n_seeds(row_s[x]) for x in (1, d) if x in row_s}
    inter = {s: v for s, v in by_s.items() if 1 < s < d and {_n_seeds(row_s[s])} == n_ref}
    fewer = sorted(s for s in by_s if 1 < s < d and s not in inter)
    if not (1 in by_s and d in by_s and inter):
        return []
    best = min(inter, key=inter.get)
    ok = inter[best] < min(by_s[1], by_s[d])
    sds = [row_s[x]["test/mse_sd"] for x in (1, best, d)]
    spread = (
        f"; seed s.d. of test MSE up to {max(v for v in sds if v is not None):.4f}"
        if any(v is not None for v in sds)
        else ""
    )
    left_out = f" (S = {', '.join(map(str, fewer))} left out: fewer seeds)." if fewer else "."
    return [
        f"- {ds}, L={lb}, H={h}: best intermediate S = {best} has test MSE "
        f"{inter[best]:.4f} vs S = 1 {by_s[1]:.4f} and S = D {by_s[d]:.4f}"
        f"{_seeds(row_s[best])}{spread}: "
        f"**{'beats both' if ok else 'does not beat both'}**" + left_out
    ]


def _partition_claims(ds: str, h: int, lb: int, rs: list[dict], ni_series: dict) -> list[str]:
    """Test MSE vs the number of partitions N_I averaged (into `ni_series`), per run."""
    claims = []
    for r in rs:
        ni = sorted(
            (int(m.group(1)), v)
            for k, v in r.items()
            if (m := re.fullmatch(r"test_ni(\d+)/mse", k))
        )
        if ni and r["model"].startswith("PMformer"):
            ni_series[f"{ds} H={h} {r['model']}"] = ([n for n, _ in ni], [v for _, v in ni])
            if len(ni) > 1:
                claims.append(
                    f"- {ds}, L={lb}, H={h}, {r['model']}: test MSE with N_I = {ni[0][0]} "
                    f"partitions {ni[0][1]:.4f}, best {min(v for _, v in ni):.4f} "
                    f"(N_I = {min(ni, key=lambda t: t[1])[0]}), N_I = {ni[-1][0]}: "
                    f"{ni[-1][1]:.4f}{_seeds(r, f'test_ni{ni[0][0]}/mse')}."
                )
    return claims


def _drop_claims(ds: str, h: int, lb: int, rs: list[dict], drop_series: dict) -> list[str]:
    """MSE increase vs feature-drop rate (into `drop_series`) of the best PMformer and
    S = D, and at how many rates PMformer degrades less."""
    d = rs[0]["D"]
    dropped = [r for r in rs if any(k.startswith("test_drop") for k in r)]
    for r in [_best_partial(dropped), next((r for r in dropped if r["S"] == d), None)]:
        if r is None:
            continue
        # increase on identical targets: the observed features' MSE with all D inputs
        # (ref_mse) as the baseline, else (older runs) the all-feature test MSE
        dr = sorted(
            (
                int(m.group(1)) / 100,
                v - r.get(f"test_drop{m.group(1)}/ref_mse", r["test/mse"]),
            )
            for k, v in r.items()
            if (m := re.fullmatch(r"test_drop(\d+)/mse", k))
        )
        if dr:
            drop_series[f"{ds} H={h} {r['model']}"] = (
                [0.0] + [x for x, _ in dr],
                [0.0] + [y for _, y in dr],
            )
    part = _best_partial(dropped)
    full = next((r for r in dropped if r["S"] == d), None)
    if not (part and full):
        return []
    pk = f"{ds} H={h} {part['model']}"
    fk = f"{ds} H={h} {full['model']}"
    if pk not in drop_series or fk not in drop_series:
        return []
    p_inc, f_inc = drop_series[pk][1][1:], drop_series[fk][1][1:]
    rates = drop_series[pk][0][1:]
    wins = sum(a < b for a, b in zip(p_inc, f_inc))
    detail = ", ".join(f"{x:.1f}: {a:+.4f} vs {b:+.4f}" for x, a, b in zip(rates, p_inc, f_inc))
    return [
        f"- {ds}, L={lb}, H={h}: MSE increase under feature drop, "
        f"{part['model']} vs S = D (rate: PMformer vs S = D): {detail}; "
        f"PMformer degrades less at "
        f"**{wins} of {len(rates)}** rates."
    ]


def _runs_md(runs: list[dict]) -> list[str]:
    """The Runs section: one table row per run."""
    md = ["#### Runs", ""]
    md += [
        "*params*: the parameters the test numbers come from (best @ step = the "
        "best-validation checkpoint); *last test MSE*: the test MSE at the run's last "
        "evaluation, for comparison; *status* early_stopped: stopped by "
        "train.early_stop_patience.",
        "",
    ]
    md += md_table(
        [
            "run",
            "model",
            "horizon",
            "lookback",
            "seed",
            "steps",
            "status",
            "params",
            "final train loss",
            "val MSE",
            "test MSE",
            "test MAE",
            "last test MSE",
            "wall s",
        ],
        [
            [
                r["run"],
                r["model"],
                r["horizon"],
                r["lookback"],
                r["seed"],
                r["steps"],
                r["status"],
                r["params"],
                r.get("train_loss"),
                r.get("val/mse"),
                r.get("test/mse"),
                r.get("test/mae"),
                r.get("last/test_mse"),
                r["wall_s"],
            ]
            for r in runs
        ],
    )
    return md


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: the report of the runs under --runs (module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", action="append", required=True, help="a folder of runs (repeat)")
    p.add_argument("--out", default="runs/pmformer_report")
    p.add_argument("--readme", default="")
    p.add_argument(
        "--probes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="compute the linear probes (experiments/pmformer/probe.py)",
    )
    args = p.parse_args(argv)
    rows = [run_row(d) for d in run_dirs(args.runs)]
    unfinished = [r["run"] for r in rows if r["status"] not in FINISHED or "test/mse" not in r]
    if unfinished:
        print(f"skipping {len(unfinished)} unfinished run(s): {', '.join(unfinished)}")
    rows = [r for r in rows if r["run"] not in unfinished]
    if not rows:
        print(f"no finished runs (result.json + config.json) under {args.runs}")
        return 2
    text = build(rows, args.out, probes=args.probes)
    if args.readme:
        update_readme(args.readme, text, args.out, FIGURES)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
