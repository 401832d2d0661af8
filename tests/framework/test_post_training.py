"""The LM task on examples and token files: fine-tuning from a run, signed rewards."""

from __future__ import annotations

import json
import os
import shutil

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


def test_kl_to_a_reference_run_is_zero_at_the_start_and_resumes_without_it(tiny_lm_run, tmp_path):
    source = str(tmp_path / "source")
    shutil.copytree(tiny_lm_run, source)
    c = examples_config(write_examples(tmp_path, signed=True), init_from=source)
    c.train.update(total_steps=6, checkpoint_every_steps=3, eval_every_steps=0)
    c.loss.update(kl_to=source, kl_coef=0.5)
    t = trainer_lib.Trainer(c, str(tmp_path / "unused"))
    state = t._initial_state()
    chex.assert_trees_all_equal(state["reference"], state["params"])  # both the source's
    batch = sharding.put_batch(next(iter(t.train_dataset())), t.batch_sharding)
    _, m = t.apply_step(state, batch)
    assert abs(float(m["kl"])) < 1e-6  # the policy is the reference
    workdir = str(tmp_path / "kl")
    whole = launch.run(c, workdir)
    assert whole.code == 0 and whole.result["train"]["kl"] > 0  # moved away from it
    shutil.rmtree(os.path.join(workdir, "checkpoints", "6"))  # as if killed after step 3
    os.remove(os.path.join(workdir, "result.json"))
    shutil.rmtree(source)  # resuming reads neither init_from nor kl_to
    resumed = launch.run(c, workdir)
    assert resumed.code == 0 and resumed.result["train"] == whole.result["train"]
