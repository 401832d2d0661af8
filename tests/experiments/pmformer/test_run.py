"""run.py: the tiny variant end to end (sweep, evaluations, report) and its flags."""

from __future__ import annotations

import csv
import json
import os

import pytest

from experiments.pmformer import evaluate, run


@pytest.mark.slow
def test_tiny_reproduction_end_to_end(tmp_path, capsys):
    workdir = str(tmp_path / "pm")
    assert run.main([f"--workdir={workdir}", "--variant=tiny", "--inline"]) == 0
    out = capsys.readouterr().out
    assert "skipping stage" not in out and "reproduction finished" in out
    folder = os.path.join(workdir, "synthetic")
    runs = sorted(evaluate.finished_runs([folder]))
    assert [os.path.basename(r) for r in runs] == [f"subset_size={s}" for s in (0, 1, 2)]
    for r in runs:
        with open(os.path.join(r, evaluate.EXTRA_FILE)) as f:
            evals = json.load(f)["eval"]
        has_sweeps = not r.endswith("=1")  # the stage's ni_drop pattern: S = 2 and S = D
        assert ("test_ni8" in evals) == has_sweeps and ("test_drop80" in evals) == has_sweeps
        assert evals["test"]["mse"] < evals["test"]["naive_mse"]
    with open(os.path.join(workdir, "report", "results.csv")) as f:
        rows = list(csv.DictReader(f))
    assert sorted(int(r["S"]) for r in rows) == [1, 2, 8]
    with open(os.path.join(workdir, "report", "report.md")) as f:
        report_md = f.read()
    assert "best intermediate S = 2" in report_md and "MSE increase under feature drop" in report_md
    for fig in ("mse_vs_S.png", "mse_vs_NI.png", "drop.png"):
        assert os.path.getsize(os.path.join(workdir, "report", fig)) > 1000
    # a second invocation finds every point and evaluation finished: nothing retrains
    mtime = os.path.getmtime(os.path.join(runs[0], "result.json"))
    assert run.main([f"--workdir={workdir}", "--variant=tiny"]) == 0
    assert os.path.getmtime(os.path.join(runs[0], "result.json")) == mtime


def test_stages_without_a_csv_are_skipped_and_bad_flags_refused(tmp_path, capsys):
    assert run.main([f"--workdir={tmp_path}", "--variant=nope"]) == 2
    assert "unknown" in capsys.readouterr().err
    assert [s.csv for s in run.PLANS["reduced"]] == [True, False]
    dirs = run.stage_dirs(run.PLANS["full"][2], "w")
    assert dirs == [(s, f"w/grouped_seed{s}") for s in (0, 1, 2)]
