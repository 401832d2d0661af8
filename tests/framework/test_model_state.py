"""The parameter EMA (train.ema_decay): carried by the train state beside the model state
(BatchNorm statistics), and what evaluation uses (framework/variables.py). The model
state's checkpointing and exact resume are tested on the tiny SuiT reproduction
(tests/experiments/suit/test_run.py)."""

from __future__ import annotations

import chex
import jax
import numpy as np

from configs import suit as config_file
from framework import sharding, trainer as trainer_lib


def _config(steps: int, **train):
    c = config_file.get_config(f"variant=tiny,arm=stem,steps={steps},eval_segments=")
    c.data.source = "procedural:voronoi-count:256"
    c.train.update(train)
    c.evals.test.batch_size = 64
    return c


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
