"""PMformer task: partitions, N_I averaging, feature drop, config, end to end."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import pmformer as pm_config
from experiments.pmformer import task as pm_task
from framework import config as config_lib


@pytest.mark.parametrize("d,s", [(7, 1), (7, 2), (7, 3), (7, 7), (8, 3), (5, 4), (3, 9)])
def test_partition_covers_every_feature_and_tops_up_the_last_subset(d, s):
    part = jax.jit(pm_task.partition, static_argnums=(1, 2))
    seen_first = set()
    for i in range(20):
        p = np.asarray(part(jax.random.key(i), d, s))
        s_eff = min(s, d)
        g = math.ceil(d / s_eff)
        assert p.shape == (g, s_eff)
        flat = p.reshape(-1)
        assert sorted(flat[:d].tolist()) == list(range(d))  # every feature once, in order
        assert len(set(p[-1].tolist())) == s_eff  # the last subset has distinct features
        borrowed = flat[d:]
        assert set(borrowed.tolist()) <= set(p[:-1].reshape(-1).tolist())  # from others
        seen_first.add(tuple(flat[:d].tolist()))
    assert len(seen_first) > 1 or d == 1  # partitions are random


class SubsetModel:
    """Forecast = own last value + 10 * mean of the subset's last values (subset-aware)."""

    def __call__(self, x_BLS, ids_BS, **kw):
        last = x_BLS[:, -1, :]
        y = last + 10 * last.mean(-1, keepdims=True)
        return jnp.broadcast_to(y[:, None, :], (x_BLS.shape[0], 2, x_BLS.shape[2]))


def test_forecast_averages_over_independent_partitions():
    x = jax.random.normal(jax.random.key(0), (2, 4, 5))
    feats = jnp.arange(5)
    model, key = SubsetModel(), jax.random.key(3)
    avg = pm_task.forecast_averaged(model, x, feats, key, 2, 4)
    expected = []
    for k in jax.random.split(key, 4):
        part = np.asarray(pm_task.partition(k, 5, 2))
        last = np.asarray(x[:, -1, :])
        y = np.zeros((2, 5))
        for row in part[:-1]:  # complete subsets
            y[:, row] = last[:, row] + 10 * last[:, row].mean(-1, keepdims=True)
        own = [f for f in part[-1] if f not in part[:-1]]  # the last subset's own features
        y[:, own] = last[:, own] + 10 * last[:, part[-1]].mean(-1, keepdims=True)
        expected.append(y)
    np.testing.assert_allclose(avg[:, 0], np.mean(expected, 0), rtol=1e-5, atol=1e-5)
    # different partitions really give different forecasts, so averaging is not vacuous
    assert np.abs(expected[0] - expected[1]).max() + np.abs(expected[0] - expected[2]).max() > 0
    # forecasting a subset of features (feature drop) indexes the right columns
    sub = pm_task.forecast_averaged(model, x, jnp.array([1, 3]), key, 2, 1)
    last = np.asarray(x[:, -1, [1, 3]])
    np.testing.assert_allclose(sub[:, 0], last + 10 * last.mean(-1, keepdims=True), rtol=1e-5)


def test_config_arguments_and_sweeps():
    c = pm_config.get_config("model=patch,size=tiny")
    assert c.forecast.subset_size == 1 and c.model.name == "pmformer"
    assert pm_config.get_config("model=full").forecast.subset_size == 0
    assert pm_config.get_config("model=dlinear").model.name == "dlinear"
    small = pm_config.get_config("")  # periodic validation, best checkpoint, early stopping
    assert small.train.best_metric == "val/mse" and small.train.best_mode == "min"
    assert small.train.eval_every_steps == 100 and small.train.early_stop_patience == 3
    assert small.evals.val.num_partitions == 1 and small.forecast.num_partitions == 3
    tiny = pm_config.get_config("size=tiny")
    assert tiny.train.best_metric == "" and tiny.train.eval_every_steps == 0
    s_points = pm_config.get_sweep("sweep=S,features=7")
    assert [p["forecast.subset_size"] for p in s_points] == [1, 2, 3, 4, 5, 6, 0]
    assert len(pm_config.get_sweep("sweep=S")) == 8  # the grouped synthetic series, D = 8
    sparse = pm_config.get_config("synth=sparse")
    d = sparse.data
    assert d.synth_groups * d.synth_group_size + d.synth_distractors == 16
    assert len(pm_config.get_sweep("sweep=S,synth=sparse")) == 16
    assert len(pm_config.get_sweep("sweep=horizon")) == 16
    with pytest.raises(config_lib.ConfigError, match="size"):
        pm_config.get_config("size=huge")


def test_bad_data_path_is_a_config_error(tmp_path):
    c = pm_config.get_config("size=tiny")
    c.data.path = str(tmp_path / "nope.csv")
    with pytest.raises(config_lib.ConfigError, match="nope.csv"):
        pm_task.Task(c)
    c = pm_config.get_config("size=tiny")
    c.train.batch_size = 100_000
    with pytest.raises(config_lib.ConfigError, match="fewer than train.batch_size=100000"):
        pm_task.Task(c)


def test_tiny_train_and_evaluate_beats_naive_last_value(tmp_path):
    from framework.trainer import train

    c = pm_config.get_config("size=tiny,steps=60")
    c.train.checkpoint_every_steps = 0
    with c.unlocked():
        del c.evals["val"]  # one compile less; test is what the assertions read
        c.evals.test_drop50 = dict(kind=pm_task.__name__, split="test", drop_rate=0.5)
    result = train(c, str(tmp_path / "run"))
    test = result["eval"]["test"]
    assert result["status"] == "done" and result["step"] == 60
    assert test["mse"] < 0.8 * test["naive_mse"], test
    assert test["mae"] < test["naive_mae"]
    assert result["train"]["loss"] < result["first_loss"]
    drop = result["eval"]["test_drop50"]
    assert drop["mse"] < drop["naive_mse"] and drop["mse"] != test["mse"]
    assert "ref_mse" not in test and drop["ref_mse"] < drop["naive_mse"]


def test_tiny_dlinear_on_a_csv(tmp_path):
    from framework.trainer import train

    t = np.arange(600)
    values = np.stack([np.sin(t / 7), np.cos(t / 11), 0.01 * t], 1)
    lines = ["date,a,b,c"] + [f"{i},{v[0]},{v[1]},{v[2]}" for i, v in enumerate(values)]
    (tmp_path / "toy.csv").write_text("\n".join(lines) + "\n")
    c = pm_config.get_config("size=tiny,model=dlinear,steps=80,horizon=8")
    c.data.path = str(tmp_path / "toy.csv")
    c.train.checkpoint_every_steps = 0
    c.optimizer.lr = 1e-2
    with c.unlocked():
        del c.evals["val"]
    result = train(c, str(tmp_path / "run"))
    test = result["eval"]["test"]
    assert test["mse"] < test["naive_mse"], test
