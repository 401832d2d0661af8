"""report.py: tables, claims and figures from run folders (fabricated, tiny)."""

from __future__ import annotations

import csv
import json
import os

from configs import pmformer as pm_config
from experiments import report_utils
from experiments.pmformer import report


def fake_run(
    root, name, *, s, model="pmformer", horizon=96, mse=0.5, path="", drops=None, nis=None
):
    c = pm_config.get_config("size=tiny")
    c.data.path, c.data.horizon = path, horizon
    c.model.name, c.forecast.subset_size = model, s
    evals = {"test": {"mse": mse, "mae": mse / 2, "naive_mse": 2.0}}
    for r, (v, ref) in (drops or {}).items():
        evals[f"test_drop{r}"] = {"mse": v, "mae": v, "naive_mse": 2.0, "ref_mse": ref}
    for n, v in (nis or {}).items():
        evals[f"test_ni{n}"] = {"mse": v, "mae": v, "naive_mse": 2.0}
    d = os.path.join(root, name)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"config": json.loads(c.to_json_best_effort())}, f)
    with open(os.path.join(d, "result.json"), "w") as f:
        json.dump({"status": "done", "step": 60, "eval": evals, "wall_time_s": 1.0}, f)


def test_report_tables_claims_and_figures(tmp_path):
    runs = str(tmp_path / "runs")
    fake_run(runs, "s1", s=1, mse=0.60)
    fake_run(
        runs,
        "s3",
        s=3,
        mse=0.50,
        drops={20: (0.62, 0.60), 80: (0.70, 0.50)},
        nis={1: 0.52, 4: 0.50},
    )
    fake_run(runs, "s8", s=0, mse=0.58, drops={20: (0.68, 0.58), 80: (0.75, 0.58)})
    fake_run(runs, "dl", s=1, model="dlinear", mse=0.65)
    ett = tmp_path / "ETTh1.csv"
    ett.write_text("date,a,b,c,d,e,f,g\n")
    fake_run(runs, "e96", s=3, path=str(ett), horizon=96, mse=0.40)
    fake_run(runs, "e192", s=3, path=str(ett), horizon=192, mse=0.44)
    out = str(tmp_path / "out")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{report_utils.BEGIN}\nold\n{report_utils.END}\ntail\n")
    assert report.main(["--runs", runs, "--out", out, "--readme", str(readme)]) == 0
    with open(os.path.join(out, "report.md")) as f:
        text = f.read()
    assert "| PMformer (S = 3) | 48 | 0.5000 | 0.2500 |" in text
    assert "S = 3 has test MSE 0.5000 vs S = 1 0.6000 and S = D 0.5800: **beats both**" in text
    # drop, against ref_mse: PMformer +0.02/+0.20 vs S = D +0.10/+0.17 -> 1 of 2 rates
    # (against the all-feature test MSE it would be +0.12/+0.20: 0 of 2)
    assert "**1 of 2** rates" in text
    assert "PatchTST/64 (published, not run here) | 512 | 0.3700 |" in text
    assert "averaged over only H = [96, 192] (not all four): 0.4200" in text
    for f in report.FIGURES:
        assert os.path.getsize(os.path.join(out, f)) > 1000
        assert (tmp_path / "figures" / f).exists()
    body = readme.read_text()
    assert (
        "old" not in body and body.endswith(f"{report_utils.END}\ntail\n") and "beats both" in body
    )
    with open(os.path.join(out, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {r["dataset"] for r in rows} == {"synthetic", "ETTh1"}
