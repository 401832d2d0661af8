"""Runs that build on runs: load_params, train.init_from / init_dont_load, optimizer.freeze."""

from __future__ import annotations

import json
import os
import shutil

import chex
import jax
import numpy as np
import pytest

from framework import checkpoint, config as config_lib, launch, sharding, trainer as trainer_lib
from optim import path_str
from tests.conftest import load_checkpoint, tiny_lm_config


def final_params(workdir: str, step: int = 20) -> dict:
    """A checkpoint's parameters as host arrays, read the way the resume tests read them."""
    return load_checkpoint(os.path.join(workdir, "checkpoints", str(step), "state"))["params"]


def host(tree) -> dict[str, np.ndarray]:
    """{path: host array}: trees compare by path, whatever their key types (int or str)."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {path_str(p): np.asarray(x) for p, x in flat}


def assert_same(a, b) -> None:
    chex.assert_trees_all_equal(host(a), host(b))


def test_load_params_latest_step_and_best(tiny_lm_run):
    config, params = checkpoint.load_params(tiny_lm_run)
    assert config.model.d_model == tiny_lm_config().model.d_model
    assert config.train.init_from == ""  # keys the run predates get the engine's defaults
    assert_same(params, final_params(tiny_lm_run))
    _, at_10 = checkpoint.load_params(tiny_lm_run, 10)
    assert_same(at_10, final_params(tiny_lm_run, 10))
    _, best = checkpoint.load_params(tiny_lm_run, "best")  # val/loss at step 10 or 20
    with open(os.path.join(tiny_lm_run, "best.json")) as f:
        best_step = json.load(f)["step"]
    assert_same(best, final_params(tiny_lm_run, best_step))
    with pytest.raises(config_lib.ConfigError, match="no checkpoint at step 7; it has"):
        checkpoint.load_params(tiny_lm_run, 7)
    with pytest.raises(config_lib.ConfigError, match="does not exist"):
        checkpoint.load_params(tiny_lm_run + "_nope")


def test_load_params_skips_a_corrupt_latest_checkpoint_without_moving_it(tiny_lm_run, tmp_path):
    workdir = str(tmp_path / "copy")
    shutil.copytree(tiny_lm_run, workdir)
    state_dir = os.path.join(workdir, "checkpoints", "20", "state")
    for d, _, names in os.walk(state_dir):  # bytes changed all through the data files
        for name in names if "/d/" in d + "/" else ():
            path = os.path.join(d, name)
            with open(path, "r+b") as f:
                for offset in range(64, os.path.getsize(path) - 64, 512):
                    f.seek(offset)
                    f.write(b"\xde\xad\xbe\xef")
    _, params = checkpoint.load_params(workdir)
    assert_same(params, final_params(tiny_lm_run, 10))
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["10", "20"]
    with pytest.raises(config_lib.ConfigError, match="step 20.*(digest mismatch|unreadable)"):
        checkpoint.load_params(workdir, 20)


def head_config(**train):
    """The tiny LM fine-tuned for 6 steps from another run."""
    c = tiny_lm_config()
    c.train.update({"total_steps": 6, "checkpoint_every_steps": 3, "eval_every_steps": 0, **train})
    c.train.best_metric = ""
    c.evals = {}
    c.seed = 1
    return c


def test_init_from_loads_the_source_and_dont_load_stays_fresh(tiny_lm_run, tmp_path):
    c = head_config(init_from=f"{tiny_lm_run}:10", init_dont_load="final_norm")
    t = trainer_lib.Trainer(c, str(tmp_path / "ft"))
    state = t._initial_state()
    source = final_params(tiny_lm_run, 10)
    fresh = trainer_lib.Trainer(head_config(), str(tmp_path / "unused")).init_state()["params"]
    got = state["params"]
    assert_same(got["final_norm"], fresh["final_norm"])
    assert_same(got["blocks"], source["blocks"])
    assert_same(got["embed"], source["embed"])
    assert not np.array_equal(got["embed"]["embedding"], fresh["embed"]["embedding"])
    assert int(state["step"]) == 0 and all(  # a fresh optimizer
        not np.any(np.asarray(x)) for x in jax.tree.leaves(state["opt_state"])
    )


def test_interrupted_init_from_run_resumes_from_its_own_checkpoint(tiny_lm_run, tmp_path):
    source = str(tmp_path / "source")
    shutil.copytree(tiny_lm_run, source)
    c = head_config(init_from=source)
    whole = launch.run(c, str(tmp_path / "whole"))
    assert whole.code == 0
    part = str(tmp_path / "part")
    assert launch.run(c, part).code == 0
    shutil.rmtree(os.path.join(part, "checkpoints", "6"))  # as if killed after step 3's save
    os.remove(os.path.join(part, "result.json"))
    shutil.rmtree(source)  # resuming must not need (or re-read) the source
    resumed = launch.run(c, part)
    assert resumed.code == 0 and resumed.result["step"] == 6
    assert_same(final_params(part, 6), final_params(str(tmp_path / "whole"), 6))
    assert whole.result["train"]["loss"] == resumed.result["train"]["loss"]


def test_bad_sources_and_freeze_regexes_are_one_line_errors_and_write_nothing(
    tiny_lm_run, tmp_path
):
    cases = {
        "holds another architecture: parameter blocks/0/attn/k_proj/kernel is (32,": dict(
            model=dict(d_model=16)
        ),
        "matches no parameter": dict(train=dict(init_dont_load="no_such_param")),
        "has no checkpoint at step 3": dict(train=dict(init_from=f"{tiny_lm_run}:3")),
        "kept no best parameters": dict(train=dict(init_from=f"{tmp_path}/empty:best")),
        "has no checkpoints": dict(train=dict(init_from=str(tmp_path / "empty"))),
        "optimizer.freeze regex 'no_such' matches no parameter": dict(
            optimizer=dict(freeze="no_such")
        ),
    }
    (tmp_path / "empty").mkdir()
    for i, (message, change) in enumerate(cases.items()):
        c = head_config(init_from=tiny_lm_run)
        for section, values in change.items():
            c[section].update(values)
        workdir = str(tmp_path / f"w{i}")
        outcome = launch.run(c, workdir)
        assert outcome.code == 2, (message, outcome)
        assert message in outcome.message, outcome.message
        assert "\n" not in outcome.message
        assert not os.path.exists(workdir) or os.listdir(workdir) == ["run.lock"], message


def test_frozen_parameters_get_no_updates_and_no_optimizer_state(tmp_path):
    c = head_config(checkpoint_every_steps=0)
    c.optimizer.freeze = r"^embed/|final_norm"
    t = trainer_lib.Trainer(c, str(tmp_path / "frozen"))
    plain = trainer_lib.Trainer(head_config(), str(tmp_path / "plain"))
    leaves = lambda tr: len(jax.tree.leaves(tr.abstract_state["opt_state"]))
    frozen_leaves = 2  # embed/embedding and final_norm/scale
    assert leaves(plain) - leaves(t) == 2 * frozen_leaves  # no Adam mu, nu for them
    state = t.init_state()
    before = jax.tree.map(np.asarray, state["params"])
    it = iter(t.train_dataset())
    for _ in range(3):
        batch = sharding.put_batch(next(it), t.batch_sharding)
        state, _ = t.apply_step(state, batch)
    after = jax.tree.map(np.asarray, state["params"])
    assert_same(after["embed"], before["embed"])
    assert_same(after["final_norm"], before["final_norm"])
    blocks = zip(jax.tree.leaves(after["blocks"]), jax.tree.leaves(before["blocks"]))
    assert all(not np.array_equal(a, b) for a, b in blocks)
    with pytest.raises(ValueError, match="matches every parameter"):
        c.optimizer.freeze = "."
        trainer_lib.Trainer(c, str(tmp_path / "all"))
