"""Model state that is not a parameter (BatchNorm statistics) and the parameter EMA:
carried by the train state, checkpointed, restored bit for bit on resume, and what
evaluation uses (framework/variables.py)."""

from __future__ import annotations

import os
import shutil

import chex
import jax
import numpy as np
import pytest

from configs import suit as config_file
from framework import checkpoint, sharding, trainer as trainer_lib


def _config(steps: int, **train):
    c = config_file.get_config(f"variant=tiny,arm=stem,steps={steps},eval_segments=")
    c.data.source = "procedural:voronoi-count:256"
    c.train.update(dict(checkpoint_every_steps=4, keep_checkpoints=3, **train))
    c.train.async_checkpoints = False
    c.evals.test.batch_size = 64
    return c


def _stats(variables):
    return variables["tokenizer"]["stem_norm"]


@pytest.mark.slow
def test_batchnorm_statistics_are_trained_saved_resumed_exactly_and_used(tmp_path):
    straight = trainer_lib.Trainer(_config(8), str(tmp_path / "a"))
    result = straight.run()
    variables, step = straight.restore_variables("latest")
    assert step == 8
    stats = _stats(variables)
    assert float(np.abs(stats["mean"]).max()) > 0  # moved from their init (0 and 1)
    assert not np.allclose(stats["var"], 1.0)
    # Interrupted after step 4 (its later checkpoint and result gone) and resumed: the
    # same parameters and statistics, bit for bit.
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "8")
    os.remove(tmp_path / "b" / "result.json")
    resumed = trainer_lib.Trainer(_config(8), str(tmp_path / "b"))
    resumed.run()
    chex.assert_trees_all_equal(resumed.restore_variables("latest")[0], variables)
    # Evaluation reads them: the saved result, and another result with fresh statistics.
    evaluator = straight.evaluators["test"]
    again = evaluator.run_at(variables, 8)
    assert again == pytest.approx(result["eval"]["test"], rel=1e-6)
    fresh = jax.tree.map(lambda x: x, variables)
    fresh["tokenizer"]["stem_norm"].update(mean=0 * stats["mean"], var=0 * stats["var"] + 1)
    assert evaluator.run_at(fresh, 8)["loss"] != pytest.approx(again["loss"], rel=1e-4)
    saved = checkpoint.saved_tree(str(tmp_path / "a" / "checkpoints" / "8" / "state"))
    assert set(saved) >= {"params", "model_state", "opt_state"}
    assert "mean" in saved["model_state"]["tokenizer"]["stem_norm"]


@pytest.mark.slow
def test_ema_of_parameters_is_what_evaluation_uses(tmp_path):
    t = trainer_lib.Trainer(_config(4, ema_decay=0.5), str(tmp_path / "ema"))
    state = t.init_state()
    params0 = jax.tree.map(np.asarray, state["params"])
    batch = next(iter(t.train_dataset()))
    state, _ = t.apply_step(state, sharding.put_batch(batch, t.batch_sharding))
    want = jax.tree.map(lambda e, p: 0.5 * e + 0.5 * np.asarray(p), params0, state["params"])
    chex.assert_trees_all_close(state["ema"], want, rtol=1e-6, atol=1e-7)
    used = t.variables(state)
    chex.assert_trees_all_equal(used["head"], state["ema"]["head"])
    bn, state_bn = used["tokenizer"]["stem_norm"], state["model_state"]["tokenizer"]["stem_norm"]
    chex.assert_trees_all_equal((bn["mean"], bn["var"]), (state_bn["mean"], state_bn["var"]))
    chex.assert_trees_all_equal(bn["scale"], state["ema"]["tokenizer"]["stem_norm"]["scale"])
