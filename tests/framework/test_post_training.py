"""The LM task on examples and token files: fine-tuning from a run, signed rewards."""

from __future__ import annotations

import json

import chex
import jax
import numpy as np

from framework import launch, metrics, sharding, trainer as trainer_lib
from tests.conftest import tiny_lm_config


def write_examples(tmp_path, n=48, signed=False) -> str:
    """Arithmetic-flavoured prompt/completion pairs (mixed-sign advantages if signed)."""
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(n):
        a, b = (int(x) for x in rng.integers(0, 50, 2))
        line = {"prompt": f"{a}+{b}=", "completion": str(a + b)}
        if signed:
            line["advantage"] = float(rng.choice([-1.0, 0.5, 2.0]))
        lines.append(json.dumps(line))
    path = tmp_path / ("signed.jsonl" if signed else "sums.jsonl")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def examples_config(path: str, **train):
    c = tiny_lm_config()
    c.data.update(format="examples", path=path, seq_len=32, val_fraction=0.25)
    c.train.update({"total_steps": 20, "checkpoint_every_steps": 0, "batch_size": 8, **train})
    c.train.update(eval_every_steps=10, best_metric="")
    c.optimizer.lr = 3e-3
    return c


def test_fine_tune_a_run_on_examples_lowers_the_completion_loss(tiny_lm_run, tmp_path):
    c = examples_config(write_examples(tmp_path), init_from=tiny_lm_run)
    outcome = launch.run(c, str(tmp_path / "ft"))
    assert outcome.code == 0, outcome
    rows = metrics.read_metrics(str(tmp_path / "ft"))
    val = [r["loss"] for r in rows if r["split"] == "val"]
    assert len(val) == 2 and val[1] < val[0] - 0.3, val  # completions only: digits + EOS


def test_accumulation_is_exact_with_mixed_sign_advantages(tmp_path):
    path = write_examples(tmp_path, signed=True)
    states = []
    for accum in (1, 2):
        c = examples_config(path, grad_accum_steps=accum)
        t = trainer_lib.Trainer(c, str(tmp_path / f"a{accum}"))
        batch = next(iter(t.train_dataset()))
        assert set(np.unique(batch["advantage"])) >= {-1.0, 2.0}
        state, metrics = t.apply_step(t.init_state(), sharding.put_batch(batch, t.batch_sharding))
        states.append((jax.device_get(state["params"]), jax.device_get(metrics)))
    (p1, m1), (p2, m2) = states
    chex.assert_trees_all_close(p1, p2, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(m1["pg_objective"], m2["pg_objective"], rtol=1e-5)
    np.testing.assert_allclose(m1["grad_norm"], m2["grad_norm"], rtol=1e-5)
