"""experiments/scaling_exponents/report.py: optimum search and slope fit against known
answers, the report on a synthetic sweep whose optimum moves as n^-1/2, and the tiny
variant end to end (sweep + report)."""

from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest

from experiments.scaling_exponents import grid, report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
MID = float(np.mean(np.log2(grid.LRS["cpu"])))  # the middle of the cpu LR grid, in log2


def test_optimum_refines_interior_minima_and_flags_edges():
    lrs = [2.0**-k for k in range(10, 3, -1)]
    # A parabola in log2(lr) with its vertex at 2^-6.7 (between grid points).
    loss = [2.0 + 0.1 * (math.log2(lr) + 6.7) ** 2 for lr in lrs]
    lr, best, edge = report.optimum(lrs, loss)
    assert not edge and math.log2(lr) == pytest.approx(-6.7, abs=1e-9)
    assert best == pytest.approx(min(loss))
    # Diverged runs (NaN / inf) never win; a minimum at the grid's end is flagged.
    lr, _, edge = report.optimum(lrs, [3.0, 2.9, 2.8, 2.7, 2.6, 2.5, math.nan])
    assert lr == lrs[-2] and not edge
    lr, _, edge = report.optimum(lrs, [math.inf, 2.5, 2.6, 2.7, 2.8, 2.9, 3.0])
    assert lr == lrs[1] and not edge
    assert report.optimum(lrs, [3.0 - 0.1 * i for i in range(7)])[2]
    assert math.isnan(report.optimum(lrs, [math.nan] * 7)[0])
    assert report.fit_slope([16, 32, 64], [0.4, 0.2, 0.1]) == pytest.approx(-1.0)


def _fake_sweep(tmp_path, exponent: float) -> str:
    """A sweep dir with result.json files whose optimal base LR is 2^MID (n/64)^exponent."""
    workdir = tmp_path / "sweep"
    points = {}
    for study in ("standard", "standard_global"):
        for width in grid.WIDTHS["cpu"]:
            for lr in grid.LRS["cpu"]:
                name = f"study={study}_width={width}_lr={lr}"
                points[name] = {"arg:study": study, "arg:width": width, "arg:lr": lr}
                center = MID + exponent * math.log2(width / 64)
                loss = 2.0 + 0.05 * (math.log2(lr) - center) ** 2 - 0.01 * math.log2(width)
                run = workdir / name
                run.mkdir(parents=True)
                result = {
                    "status": "done",
                    "first_loss": 5.6,
                    "eval": {"val": {"loss": loss}, "align": {"alpha/hidden": 0.7}},
                    "train": {"grad_rms/blocks/0/mlp/up/kernel": 1e-3 * width**-1.5},
                }
                (run / "result.json").write_text(json.dumps(result))
    sweep = {"config": "configs/scaling_exponents.py", "arg": "variant=cpu", "points": points}
    (workdir / "sweep.json").write_text(json.dumps(sweep))
    return str(workdir)


def test_report_recovers_a_known_optimal_lr_slope(tmp_path):
    workdir = _fake_sweep(tmp_path, exponent=-0.5)
    rows = report.load_runs(workdir)
    table = report.optimal_lr_table(rows, "cpu")
    # standard + Adam (full alignment) applies c_hidden = 1 on top of the base LR, so an
    # optimal base LR ∝ n^-1/2 is an optimal hidden LR ∝ n^-3/2; one global LR: n^-1/2.
    assert table["standard"]["base_slope"] == pytest.approx(-0.5, abs=0.02)
    assert table["standard"]["slope"] == pytest.approx(-1.5, abs=0.02)
    assert table["standard_global"]["slope"] == pytest.approx(-0.5, abs=0.02)
    assert (table["standard"]["full"], table["standard"]["none"]) == (1.0, 0.5)
    assert table["standard_global"]["fitted_points"] == 5
    text = report.write_report(workdir, str(tmp_path / "out"), "cpu")
    assert "nearer **no alignment**" in text  # the global LR's -0.5 is the none prediction
    assert "**0 of 1** parameterizations" in text  # standard's base LR slope -0.5 fails
    for name in report.FIGURES:
        assert (tmp_path / "out" / name).stat().st_size > 5_000, name
    with open(tmp_path / "out" / "optimal_lr.csv") as f:
        opt = [r for r in csv.DictReader(f) if r["study"] == "standard"]
    expected = [MID - 0.5 * math.log2(w / 64) for w in grid.WIDTHS["cpu"]]
    assert [math.log2(float(r["optimal_base_lr"])) for r in opt] == pytest.approx(expected)


@pytest.mark.slow
def test_tiny_reproduction_end_to_end(tmp_path):
    """configs/scaling_exponents.py:variant=tiny, its three sweeps inline, then the report."""
    from experiments.scaling_exponents import run

    workdir = tmp_path / "se"
    assert run.main([f"--workdir={workdir}", "--variant=tiny", "--inline"]) == 0
    with open(workdir / "report" / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    n = len(grid.VARIANT_STUDIES["tiny"]) * len(grid.WIDTHS["tiny"]) * len(grid.LRS["tiny"])
    tuned = len(grid.TUNED_WIDTHS["tiny"]) * len(grid.LRS["tiny"])
    # The main sweep, then the study with the searched constants.
    assert len(runs) == n + tuned and all(r["status"] == "done" for r in runs)
    assert sum(r["study"] == report.TUNED_STUDY for r in runs) == tuned
    losses = np.array([float(r["final_loss"]) for r in runs])
    init = np.array([float(r["init_loss"]) for r in runs])
    assert np.all(losses < init - 1.0), (losses, init)  # every run learned
    alpha = np.array([float(r["alpha_hidden"]) for r in runs])
    assert np.all((alpha > 0.4) & (alpha < 1.2)), alpha
    # The constants search ran at the base width and the main sweep's best LR there.
    with open(workdir / "constants" / "results.csv") as f:
        constants = list(csv.DictReader(f))
    assert len(constants) == 1 and all(r["status"] == "done" for r in constants)
    text = (workdir / "report" / "report.md").read_text()
    assert f"{n + tuned} of {n + tuned} runs finished" in text
    assert "**LR constants search** (standard, Adam, width 32" in text
    # train.plot_losses=False: the points leave the plotting to the report.
    assert not list(workdir.glob("*/loss.png")) and (workdir / "report" / "transfer.png").exists()


def test_constants_search_helpers():
    lrs = grid.LRS["cpu"]
    assert report.grid_lr(2.0**-6.2, lrs) == 2.0**-6
    rows = [
        {"c_emb": ce, "c_readout": cr, "final_loss": loss}
        for ce, cr, loss in [(1.0, 1.0, 2.20), (4.0, 1.0, 2.15), (4.0, 0.25, math.nan)]
    ]
    assert report.best_constants(rows) == (4.0, 1.0)
    rows[0]["final_loss"] = 2.15  # a tie keeps the default constants
    assert report.best_constants(rows) == (1.0, 1.0)
    assert report.best_constants([]) == (1.0, 1.0)
    table = report.constants_table(rows)
    assert table[0][0] == "1" and math.isnan(table[0][1]) and table[0][2] == 2.15
    assert table[1][0] == "4" and math.isnan(table[1][1]) and table[1][2] == 2.15


def test_equivalence_gaps_compare_common_points():
    rows = [
        {"study": "standard", "width": 16, "lr": 0.01, "final_loss": 2.50},
        {"study": "ntk", "width": 16, "lr": 0.01, "final_loss": 2.503},
        {"study": "standard", "width": 32, "lr": 0.01, "final_loss": 2.40},
        {"study": "ntk", "width": 32, "lr": 0.01, "final_loss": math.nan},
        {"study": "mup", "width": 16, "lr": 0.01, "final_loss": 2.6},
    ]
    gaps = report.equivalence_gaps(rows)
    assert list(gaps) == [("standard", "ntk")]
    assert gaps[("standard", "ntk")] == pytest.approx((0.003, 0.003, 1))


def test_reproduction_rejects_a_missing_data_path(tmp_path, capsys):
    from experiments.scaling_exponents import run

    with pytest.raises(SystemExit) as e:
        run.main([f"--workdir={tmp_path / 'w'}", f"--data_path={tmp_path / 'nope.txt'}"])
    assert e.value.code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # nothing written
