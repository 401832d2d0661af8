"""Compiled programs shared across Trainers (framework/programs.py): the keys it leaves
out of a program's key really leave every program unchanged, equal runs share programs
and train bitwise as unshared ones do, and a change that matters is not shared."""

from __future__ import annotations

import chex
import numpy as np
import pytest

from configs import quickstart
from framework import launch, programs, trainer as trainer_lib
from framework.tasks import lm
from tests.data import corpora


def config(**overrides):
    c = quickstart.get_config("size=tiny,steps=4")
    c.train.update(plot_losses=False, eval_every_steps=0)
    for dotted, value in overrides.items():
        section, key = dotted.rsplit(".", 1) if "." in dotted else ("", dotted)
        (c[section] if section else c)[key] = value
    return c


def lowered_texts(t: trainer_lib.Trainer) -> dict[str, str]:
    """The lowered init, train step and evaluation step of a trainer."""
    batch = t.abstract_batch()
    evaluator = t.evaluators["val"]
    return {
        "init": t._init_fn.lower(np.int64(t.config.seed)).as_text(),
        "step": t._step_fn.lower(t.abstract_state, batch, t.abstract_schedule_args()).as_text(),
        "eval": evaluator._step.lower(t.abstract_state["params"], batch).as_text(),
    }


# Values for every key that programs.RUNTIME_KEYS, SCHEDULE_KEYS and the LM task's
# runtime_keys drop (sections, and data.prepare*, which needs a module, excepted), in
# groups that can be set together (one duration unit at a time).
GROUPS = [
    {
        "seed": 7,
        "train.log_every_steps": 3,
        "train.eval_every_steps": 2,
        "train.checkpoint_every_steps": 2,
        "train.keep_checkpoints": 1,
        "train.async_checkpoints": False,
        "train.best_metric": "val/loss",
        "train.best_mode": "max",
        "train.early_stop_patience": 2,
        "train.plot_losses": True,
        "train.init_from": "/elsewhere/run",
        "train.init_dont_load": "embed",
        "train.compilation_cache": "none",
    },
    {
        "train.eval_every_epochs": 0.5,
        "train.checkpoint_every_examples": 64,
        "train.checkpoint_every_steps": 0,
        "optimizer.lr": 0.05,
        "schedule.final_lr_fraction": 0.5,
        "data.embedded_chars": 60_000,
        "data.val_fraction": 0.1,
    },
    {
        "train.eval_every_examples": 64,
        "train.checkpoint_every_epochs": 0.5,
        "train.checkpoint_every_steps": 0,
        "data.path": "CORPUS",
        "data.val_path": "CORPUS",  # token files' validation set: the data, not a program
    },
    {
        "data.source": "SHARDS",
        "data.val_source": "SHARDS",
        "data.num_workers": 3,
        "data.text_field": "body",
        "data.tfds_dir": "/elsewhere",
    },
]


def test_every_dropped_key_leaves_the_lowered_programs_identical(tmp_path):
    dropped = {*programs.RUNTIME_KEYS, *programs.SCHEDULE_KEYS, *lm.Task.runtime_keys}
    untested = {"evals", "sample", "train.reuse_programs", "data.prepare", "data.prepare_spec"}
    assert dropped - untested == {k for g in GROUPS for k in g}
    text = tmp_path / "corpus.txt"
    text.write_text("a different corpus of text for the same shapes. " * 400)
    shards = "arrayrecord:" + corpora.prepared(tmp_path, corpora.documents(300))
    base = lowered_texts(trainer_lib.Trainer(config(), str(tmp_path / "base")))
    for i, group in enumerate(GROUPS):
        paths = {"CORPUS": str(text), "SHARDS": shards}
        group = {k: paths.get(v, v) if isinstance(v, str) else v for k, v in group.items()}
        t = trainer_lib.Trainer(config(**group), str(tmp_path / str(i)))
        assert lowered_texts(t) == base, sorted(group)


def train(tmp_path, name, **overrides) -> dict:
    outcome = launch.run(config(**overrides), str(tmp_path / name))
    assert outcome.code == 0, outcome
    return outcome


def final_params(workdir: str):
    from framework import checkpoint

    t = trainer_lib.Trainer(config(**{"train.reuse_programs": False}), workdir)
    return checkpoint.restore_params(workdir, "latest", t.abstract_state["params"])[0]


def test_equal_runs_share_programs_and_train_bitwise_like_unshared_ones(tmp_path):
    programs.clear()
    train(tmp_path, "first", **{"optimizer.lr": 3e-3})
    before = dict(programs.stats)
    shared = train(tmp_path, "shared", seed=3, **{"optimizer.lr": 1e-2})
    hits = programs.stats["hits"] - before["hits"]
    assert programs.stats["misses"] == before["misses"] and hits >= 3  # init, step, eval
    alone = train(
        tmp_path, "alone", seed=3, **{"optimizer.lr": 1e-2, "train.reuse_programs": False}
    )
    assert shared.result["train"] == alone.result["train"]
    chex.assert_trees_all_equal(
        final_params(str(tmp_path / "shared")), final_params(str(tmp_path / "alone"))
    )


@pytest.mark.parametrize(
    "change",
    [
        {"model.d_ff": 48},
        {"optimizer.weight_decay": 0.2},
        {"train.total_steps": 6},
        {"optimizer.weight_decay_mode": "independent", "optimizer.weight_decay": 1e-4},
    ],
)
def test_a_change_that_enters_a_program_is_not_shared(tmp_path, change):
    keys = [
        trainer_lib.Trainer(config(**c), str(tmp_path / str(i)))._program_key("train_step")
        for i, c in enumerate([{}, change])
    ]
    assert keys[0] != keys[1]
    if "optimizer.weight_decay_mode" in change:  # the peak LR is baked in: part of the key
        lr = trainer_lib.Trainer(config(**change, **{"optimizer.lr": 0.05}), str(tmp_path / "lr"))
        assert lr._program_key("train_step") != keys[1]


def test_the_init_program_is_shared_across_everything_but_model_and_optimizer(tmp_path):
    """The LM task's init key is config.model + config.optimizer + the state's shapes:
    changing anything else leaves the lowered init identical and the key equal."""
    base = trainer_lib.Trainer(config(), str(tmp_path / "base"))
    other = config(**{"train.total_steps": 9, "train.batch_size": 4, "optimizer.lr": 0.1})
    other.schedule.warmup_steps = 3
    other.data.update(seq_len=16, val_fraction=0.2)
    other.loss.z_loss, other.schedule.name = 1e-4, "warmup_linear"
    t = trainer_lib.Trainer(other, str(tmp_path / "other"))
    seed = np.int64(0)
    assert t._init_fn.lower(seed).as_text() == base._init_fn.lower(seed).as_text()
    assert t._init_base == base._init_base
    for change in ({"model.d_ff": 48}, {"optimizer.name": "sgd"}):
        assert trainer_lib.Trainer(config(**change), str(tmp_path / "x"))._init_base != t._init_base


def test_init_and_eval_compile_in_background_and_are_taken(tmp_path, monkeypatch):
    """run() starts the init's and the evaluator's compiles on the background thread
    while the step compiles; the run takes both (their keys are the ones of the real
    arguments), and a background compile gives the foreground one's program."""
    programs.clear()
    started = []
    real = programs.compile_in_background

    def record(key, lower, compiler_options=None):
        started.append(key)
        return real(key, lower, compiler_options)

    monkeypatch.setattr(programs, "compile_in_background", record)
    t = trainer_lib.Trainer(config(), str(tmp_path / "run"))
    before = dict(programs.stats)
    t.run()
    assert len(started) == 2 and all(k in programs._programs for k in started)
    assert t.evaluators["val"]._started == {}
    assert programs.stats["misses"] - before["misses"] == 3  # step, init, eval: once each
    seed = np.int64(5)
    background = real(None, lambda: t._init_fn.lower(seed))()
    chex.assert_trees_all_equal(background(seed), t._init_fn.lower(seed).compile()(seed))


# XLA's CPU defaults, which the test session's XLA_FLAGS (tests/conftest.py) change.
XLA_CPU_DEFAULTS = {
    "xla_backend_optimization_level": 3,
    "xla_llvm_disable_expensive_passes": False,
    "xla_cpu_use_fusion_emitters": True,
}


def test_the_run_once_init_options_give_bitwise_the_default_state(tmp_path, monkeypatch):
    """The init compiled at programs.run_once_options() (cheaper LLVM optimisation) gives
    the state XLA's default options give, bit for bit; an optimisation level set in
    XLA_FLAGS is left alone."""
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    options = programs.run_once_options()
    assert options == {"xla_backend_optimization_level": 1}
    t = trainer_lib.Trainer(config(**{"model.d_model": 16, "model.d_ff": 32}), str(tmp_path))
    seed = np.int64(3)
    cheap = t._init_fn.lower(seed).compile({**XLA_CPU_DEFAULTS, **options})(seed)
    default = t._init_fn.lower(seed).compile(XLA_CPU_DEFAULTS)(seed)
    chex.assert_trees_all_equal(cheap, default)
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")
    assert programs.run_once_options() == {}
