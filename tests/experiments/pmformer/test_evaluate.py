"""evaluate.py: extra evaluations run on a finished run's best-validation parameters."""

from __future__ import annotations

import json
import os

import pytest

from configs import pmformer as pm_config
from experiments.pmformer import evaluate


def test_extra_evals_use_the_best_validation_parameters(tmp_path):
    from framework.trainer import train

    c = pm_config.get_config("size=tiny,steps=20")
    c.train.checkpoint_every_steps = 0
    c.train.eval_every_steps = 5
    c.train.best_metric = "val/mse"
    c.train.best_mode = "max"  # the *worst* validation: an early step, not the final one
    run = str(tmp_path / "run")
    result = train(c, run)
    best_step = result["best"]["step"]
    assert result["status"] == "done" and best_step < 20
    best_test = result["best"]["eval"]["test"]["mse"]
    assert abs(best_test - result["eval"]["test"]["mse"]) > 1e-4  # best != final params

    out = evaluate.evaluate_run(run, what=("test",))  # the trainer's test evaluator, again
    assert out["params"] == "best" and out["step"] == best_step
    assert sorted(out["eval"]) == ["test"]
    assert out["eval"]["test"]["mse"] == pytest.approx(best_test, rel=1e-5)
    with open(os.path.join(run, evaluate.EXTRA_FILE)) as f:
        assert json.load(f) == out
    assert evaluate.evaluate_run(run, what=("test",)) == out  # done: not redone
    assert {f"test_ni{n}" for n in evaluate.NUM_PARTITIONS} == set(evaluate.extra_evals(["ni"]))
    assert len(evaluate.extra_evals(["ni", "drop"])) == 6 + 4
    assert evaluate.extra_evals(["drop"])["test_drop40"]["drop_rate"] == 0.4
    assert evaluate.main(["--runs", str(tmp_path / "none")]) == 2
    with pytest.raises(ValueError, match="unknown parts"):
        evaluate.extra_evals(["nope"])
