"""Trainer: golden one-step values, gradient accumulation, library use."""

import json
import math
import os

import chex
import jax
import numpy as np
import pytest

from configs import quickstart
from framework import (
    config as config_lib,
    train_step,
    trainer as trainer_lib,
    variables as variables_lib,
)
from framework.tasks import lm


def tiny_config(**train):
    c = quickstart.get_config("size=tiny,steps=4")
    c.train.update(train)
    c.evals = {}
    return c


def first_batch(t):
    ds = t.task.train_dataset(
        batch_size=t.batch_size, seed=t.config.seed, shard_index=0, shard_count=1
    )
    return next(iter(ds))


# Golden values of one step of configs/quickstart.py:size=tiny (seed 0) on CPU.
# They pin the whole path: corpus, tokenizer, packing, shuffling, init, loss,
# optimizer. If an intended change moves them, update them in that commit.
GOLDEN_LOSS = 5.556398
GOLDEN_GRAD_NORM = 0.972782


def test_golden_one_step(tmp_path):
    t = trainer_lib.Trainer(tiny_config(), str(tmp_path))
    state = t._init()
    batch = first_batch(t)
    new_state, metrics = t._step(state, {k: jax.numpy.asarray(v) for k, v in batch.items()})
    m = jax.device_get(metrics)
    # Near uniform over 259 byte ids at init.
    assert abs(float(m["loss"]) - math.log(259)) < 0.05
    np.testing.assert_allclose(float(m["loss"]), GOLDEN_LOSS, rtol=1e-4)
    np.testing.assert_allclose(float(m["grad_norm"]), GOLDEN_GRAD_NORM, rtol=1e-3)
    assert int(new_state["step"]) == 1
    assert float(m["finite"]) == 1.0


def test_grad_accumulation_matches_full_batch(tmp_path):
    t1 = trainer_lib.Trainer(tiny_config(grad_accum_steps=1), str(tmp_path / "a"))
    t2 = trainer_lib.Trainer(tiny_config(grad_accum_steps=4), str(tmp_path / "b"))
    batch = {k: jax.numpy.asarray(v) for k, v in first_batch(t1).items()}
    s1, m1 = t1._step(t1._init(), batch)
    s2, m2 = t2._step(t2._init(), batch)
    np.testing.assert_allclose(float(m1["loss"]), float(m2["loss"]), rtol=1e-5)
    np.testing.assert_allclose(float(m1["grad_norm"]), float(m2["grad_norm"]), rtol=1e-4)
    for a, b in zip(jax.tree.leaves(s1["params"]), jax.tree.leaves(s2["params"])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_maxima_and_tensor_rms_under_grad_accumulation(tmp_path):
    # '<name>_max' metrics combine by max over microbatches, the rest by weighted mean;
    # per-tensor RMS probes are computed from the accumulated gradient.
    def make(accum, name):
        c = tiny_config(grad_accum_steps=accum, log_tensor_rms=True)
        c.probes.attention_logits = True
        return trainer_lib.Trainer(c, str(tmp_path / name))

    t1, t2 = make(1, "a"), make(2, "b")
    batch = {k: jax.numpy.asarray(v) for k, v in first_batch(t1).items()}
    _, m1 = t1._step(t1._init(), batch)
    _, m2 = t2._step(t2._init(), batch)
    m1, m2 = jax.device_get((m1, m2))
    assert {"attn_logit_max", "attn_logit_max/0", "attn_logit_max/1", "log_z_max"} <= set(m1)
    for k in ("attn_logit_max", "attn_logit_max/1", "log_z_max", "log_z_mean", "loss"):
        np.testing.assert_allclose(float(m1[k]), float(m2[k]), rtol=1e-5)
    assert float(m1["log_z_max"]) > float(m1["log_z_mean"])
    assert float(m1["attn_logit_max"]) == max(
        float(m1["attn_logit_max/0"]), float(m1["attn_logit_max/1"])
    )
    path = "blocks/0/mlp/down/kernel"
    np.testing.assert_allclose(m1[f"grad_rms/{path}"], m2[f"grad_rms/{path}"], rtol=1e-4)
    assert float(m1[f"grad_rms/{path}"]) > 0
    assert len([k for k in m1 if k.startswith("update_rms/")]) == len(
        jax.tree.leaves(t1.abstract_state["params"])
    )


def test_tensor_rms_probe_values():
    grads = {"a": jax.numpy.array([3.0, -4.0]), "b": {"c": jax.numpy.ones((2, 2)) * 2.0}}
    lr = jax.numpy.float32(0.5)
    updates = jax.tree.map(lambda g: -lr * g, grads)  # plain SGD: update per unit LR = grad
    out = jax.device_get(train_step.tensor_rms(grads, updates, lr))
    np.testing.assert_allclose(out["grad_rms/a"], math.sqrt(12.5), rtol=1e-6)
    np.testing.assert_allclose(out["update_rms/a"], math.sqrt(12.5), rtol=1e-6)
    np.testing.assert_allclose(out["grad_rms/b/c"], 2.0, rtol=1e-6)
    zero = jax.device_get(train_step.tensor_rms(grads, updates, jax.numpy.float32(0.0)))
    assert float(zero["update_rms/a"]) == 0.0  # no division by a zero learning rate


def test_grad_accumulation_weights_microbatches_by_tokens(tmp_path):
    t1 = trainer_lib.Trainer(tiny_config(grad_accum_steps=1), str(tmp_path / "a"))
    t2 = trainer_lib.Trainer(tiny_config(grad_accum_steps=2), str(tmp_path / "b"))
    batch = {k: np.array(v) for k, v in first_batch(t1).items()}
    batch["mask"][0::2, 5:] = 0.0  # microbatch 0 (rows 0, 2, ...) has far fewer tokens
    batch = {k: jax.numpy.asarray(v) for k, v in batch.items()}
    s1, m1 = t1._step(t1._init(), batch)
    s2, m2 = t2._step(t2._init(), batch)
    np.testing.assert_allclose(float(m1["loss"]), float(m2["loss"]), rtol=1e-5)
    np.testing.assert_allclose(float(m1["grad_norm"]), float(m2["grad_norm"]), rtol=1e-4)


def test_tiny_validation_split_is_a_config_error(tmp_path):
    c = tiny_config()
    c.evals = {"val": {"kind": "framework.evaluators", "split": "val", "batch_size": 4096}}
    with pytest.raises(config_lib.ConfigError, match="evals.val: .*4096"):
        trainer_lib.Trainer(c, str(tmp_path))


def test_cross_entropy_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5)).astype(np.float32)
    targets = rng.integers(0, 5, size=(2, 3))
    mask = np.array([[1, 1, 0], [1, 0, 1]], np.float32)
    weights = np.array([1.0, 3.0], np.float32)
    obj, m = lm.cross_entropy_loss(logits, targets, mask, weights, z_loss=1e-4)
    log_z = np.log(np.exp(logits).sum(-1))
    ce = log_z - np.take_along_axis(logits, targets[..., None], -1)[..., 0]
    w = mask * weights[:, None]
    np.testing.assert_allclose(float(m["loss"]), (ce * w).sum() / w.sum(), rtol=1e-6)
    np.testing.assert_allclose(float(m["z_loss"]), 1e-4 * (log_z**2 * w).sum() / w.sum(), rtol=1e-5)
    np.testing.assert_allclose(float(obj), float(m["loss"]) + float(m["z_loss"]), rtol=1e-6)
    assert float(m["_weight"]) == w.sum()
    # z-loss vanishes for normalised log-probabilities (log Z = 0).
    logp = logits - log_z[..., None]
    _, m0 = lm.cross_entropy_loss(logp, targets, z_loss=1e-4)
    assert abs(float(m0["z_loss"])) < 1e-10
    # log_z_max: the largest log Z over tokens with non-zero weight.
    np.testing.assert_allclose(float(m["log_z_max"]), log_z[w > 0].max(), rtol=1e-6)


def test_library_train_writes_outputs_and_learns(tmp_path):
    c = quickstart.get_config("size=tiny,steps=60")
    result = trainer_lib.train(c, str(tmp_path))
    assert result["status"] == "done" and result["step"] == 60
    assert result["train"]["loss"] < result["first_loss"] - 1.0
    assert result["eval"]["val"]["loss"] < result["first_loss"] - 1.0
    for name in ("config.json", "metrics.jsonl", "loss.png", "result.json"):
        assert os.path.exists(tmp_path / name), name
    assert os.listdir(tmp_path / "tb")
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows} == {"train", "val"}
    assert [r["step"] for r in rows if r["split"] == "val"] == [20, 40, 60]  # eval_every 20
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 4, 8, 12, 16, 20] + list(
        range(24, 61, 4)
    )  # first step, then every log_every=4
    assert sorted(int(s) for s in os.listdir(tmp_path / "checkpoints")) == [20, 40, 60]
    # Running again finds the finished run and returns its result, rewriting nothing.
    before = (tmp_path / "metrics.jsonl").read_text()
    again = trainer_lib.train(c, str(tmp_path))
    assert again == result
    assert (tmp_path / "metrics.jsonl").read_text() == before
    # An evaluation added later runs on the newest checkpoint without training.
    with c.unlocked():
        c.evals.val2 = dict(kind="framework.evaluators", split="val", num_batches=8, batch_size=0)
    evaluated = trainer_lib.Trainer(c, str(tmp_path)).evaluate_checkpoint()
    assert set(evaluated["eval"]) == {"val", "val2"} and evaluated["step"] == 60
    assert evaluated["eval"]["val2"]["loss"] == pytest.approx(result["eval"]["val"]["loss"], 1e-3)
    assert json.loads((tmp_path / "result.json").read_text())["eval"].keys() == {"val", "val2"}
    # A changed model in the same workdir is refused, and the checkpoints stay.
    c.model.d_model = 16
    with pytest.raises(config_lib.ConfigError, match="holds another model"):
        trainer_lib.train(c, str(tmp_path))
    assert sorted(int(s) for s in os.listdir(tmp_path / "checkpoints")) == [20, 40, 60]


def test_model_with_extra_state_is_rejected(tmp_path, monkeypatch):
    from flax import nnx

    class WithRngs(nnx.Module):
        def __init__(self, rngs):
            self.w = nnx.Param(jax.numpy.ones(2))
            self.rngs = rngs

    monkeypatch.setattr(lm.Task, "build_model", lambda self, rngs: WithRngs(rngs))
    config = tiny_config()
    config.train.reuse_programs = False  # the patched model has the config of a shared one
    with pytest.raises(TypeError, match="only nnx.Param"):
        trainer_lib.Trainer(config, str(tmp_path))


def test_bf16_compute_step_close_to_fp32(tmp_path):
    c32, c16 = tiny_config(), tiny_config()
    c16.model.dtype = "bfloat16"
    t32 = trainer_lib.Trainer(c32, str(tmp_path / "a"))
    t16 = trainer_lib.Trainer(c16, str(tmp_path / "b"))
    batch = {k: jax.numpy.asarray(v) for k, v in first_batch(t32).items()}
    s16, m16 = t16._step(t16._init(), batch)
    _, m32 = t32._step(t32._init(), batch)
    assert abs(float(m16["loss"]) - float(m32["loss"])) < 0.02
    # Parameters stay in float32 (param_dtype) while the compute runs in bf16.
    assert {x.dtype for x in jax.tree.leaves(s16["params"])} == {np.dtype("float32")}


def test_sentencepiece_tokenizer_end_to_end(tmp_path):
    from data import corpus, tokenizers

    text = tmp_path / "text.txt"
    text.write_text(corpus.embedded_corpus(60_000, seed=3))
    tokenizers.main([f"--input={text}", "--vocab_size=300", f"--model_prefix={tmp_path / 'sp'}"])
    c = quickstart.get_config("size=tiny,steps=3")
    c.data.update(tokenizer="sentencepiece", sentencepiece_model=str(tmp_path / "sp.model"))
    c.data.path = str(text)
    c.model.vocab_size = 300
    result = trainer_lib.train(c, str(tmp_path / "run"))
    assert result["status"] == "done"
    # A 300-piece vocabulary starts near log(300) nats per token.
    assert abs(result["first_loss"] - math.log(300)) < 0.3


def test_progress_line_fields():
    from framework import metrics

    line = metrics.progress_line(
        50, 200, {"loss": 1.23456, "grad_norm": 0.5}, 2.0, 8192.0, "tokens"
    )
    assert line == (
        "step 50/200 | loss 1.235 | grad_norm 0.5 | 2.00 steps/s | 8.2k tokens/s | ETA 0:01:15"
    )


def test_epochs_resolve_against_the_dataset(tmp_path):
    c = tiny_config()
    c.train.total_steps = 0
    c.train.total_epochs = 0.5
    t = trainer_lib.Trainer(c, str(tmp_path))
    assert t.steps["total"] == math.ceil(0.5 * t.task.num_train_examples / c.train.batch_size)


def test_seed_is_an_argument_of_the_compiled_init(tmp_path):
    """Runs that differ only in the seed share one init program, and the seed still
    decides the parameters, bitwise as a program with the seed as a constant would."""
    trainers = []
    for seed in (0, 7):
        c = tiny_config()
        c.seed = seed
        trainers.append(trainer_lib.Trainer(c, str(tmp_path / str(seed))))
    texts = [t._init_fn.lower(np.int64(0)).as_text() for t in trainers]
    assert texts[0] == texts[1]
    for seed, t in zip((0, 7), trainers):
        expected = jax.jit(lambda t=t, seed=seed: variables_lib.initial_params(t.task, seed))()
        chex.assert_trees_all_equal(t.init_state()["params"], expected)
    a, b = (t.init_state()["params"]["embed"]["embedding"] for t in trainers)
    assert not np.array_equal(a, b)


def test_schedule_values_are_arguments_of_the_compiled_step(tmp_path):
    """Runs that differ only in optimizer.lr and schedule.final_lr_fraction (an LR sweep
    whose floor is absolute, as the small-scale proxies' is) lower to the same program,
    and the step applies the configured LR exactly."""
    texts = []
    for lr in (1e-3, 4e-3):
        c = tiny_config()
        c.optimizer.lr, c.schedule.final_lr_fraction = lr, 1e-5 / lr
        t = trainer_lib.Trainer(c, str(tmp_path / f"cosine{lr}"))
        args = t.abstract_schedule_args()
        texts.append(t._step_fn.lower(t.abstract_state, t.abstract_batch(), args).as_text())
    assert texts[0] == texts[1]
    trainers = []
    for lr in (1e-3, 4e-3):
        c = tiny_config()
        c.optimizer.lr = lr
        c.optimizer.weight_decay = 0.0
        c.schedule.name = "constant"
        c.schedule.warmup_steps = 0
        trainers.append(trainer_lib.Trainer(c, str(tmp_path / str(lr))))
    texts = [
        t._step_fn.lower(t.abstract_state, t.abstract_batch(), t.abstract_schedule_args()).as_text()
        for t in trainers
    ]
    assert texts[0] == texts[1]
    # Same init and batch: the Adam update direction is the same, so the parameter change
    # scales with the learning rate (4x), and the logged learning rate is the configured one.
    batch = {k: jax.numpy.asarray(v) for k, v in first_batch(trainers[0]).items()}
    deltas = []
    for t, lr in zip(trainers, (1e-3, 4e-3), strict=True):
        state = t._init()
        before = jax.device_get(state["params"])
        new, m = t._step(state, batch)
        assert float(m["learning_rate"]) == pytest.approx(lr)
        after = jax.device_get(new["params"])
        deltas.append(
            np.concatenate(
                [
                    (np.asarray(a) - np.asarray(b)).ravel()
                    for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(before), strict=True)
                ]
            )
        )
    np.testing.assert_allclose(deltas[1], 4 * deltas[0], rtol=1e-4, atol=1e-9)
