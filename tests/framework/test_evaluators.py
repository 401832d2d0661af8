"""Per-evaluator cadence, the step an evaluator sees, per-example outputs, and the
collect-then-compute base."""

from __future__ import annotations

import json
import os

from framework import launch, metrics
from tests.conftest import tiny_lm_config


def test_each_evaluator_keeps_its_own_cadence_and_writes_per_example_rows(tmp_path):
    c = tiny_lm_config()
    c.train.update(total_steps=20, eval_every_steps=10, checkpoint_every_steps=0, best_metric="")
    base = dict(kind="framework.evaluators", split="val", num_batches=1, batch_size=0)
    c.evals = dict(
        val=base,
        often=dict(base, every_steps=5),
        end=dict(base, final_only=True),
        rows=dict(kind="tests.framework.row_loss_eval", split="val", every_steps=15),
    )
    workdir = str(tmp_path / "run")
    outcome = launch.run(c, workdir)
    assert outcome.code == 0, outcome
    steps = {}
    for r in metrics.read_metrics(workdir):
        steps.setdefault(r["split"], []).append(r["step"])
    assert steps["val"] == [10, 20]
    assert steps["often"] == [5, 10, 15, 20]
    assert steps["end"] == [20]
    assert steps["rows"] == [15, 20]
    with open(os.path.join(workdir, "eval", "rows", "15.jsonl")) as f:
        rows_at_15 = [json.loads(x) for x in f]
    assert len(rows_at_15) == outcome.result["eval"]["rows"]["rows"] > 0
    assert all(r["loss"] > 0 for r in rows_at_15)
    assert 0.9 < outcome.result["eval"]["rows"]["auroc_self"] <= 1.0
