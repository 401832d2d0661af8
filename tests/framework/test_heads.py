"""Value and classifier heads on an LM run: init_from with the head left fresh."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from data import examples, tokenizers
from framework import config as config_lib, launch, trainer as trainer_lib
from framework.tasks import heads
from tests.conftest import tiny_lm_config


def value_file(tmp_path, n=64) -> str:
    """Solutions whose steps are 'good' (soft target 0.9) or 'bad' (0.1)."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        kinds = rng.choice(["good", "bad"], size=int(rng.integers(1, 4)))
        steps = [f"{k} step {j}\n" for j, k in enumerate(kinds)]
        labels = [0.9 if k == "good" else 0.1 for k in kinds]
        lines.append(json.dumps({"prompt": f"problem {i}: ", "steps": steps, "labels": labels}))
    path = tmp_path / "values.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def head_config(task_config, path: str, tiny_lm_run: str, head: str):
    c = task_config()
    c.model.update(tiny_lm_config().model.to_dict())
    c.data.update(path=path, seq_len=64, val_fraction=0.25)
    c.train.update(
        batch_size=16,
        total_steps=40,
        eval_every_steps=20,
        checkpoint_every_steps=0,
        init_from=tiny_lm_run,
        init_dont_load=head,
        plot_losses=False,
    )
    c.optimizer.lr = 1e-2
    c.schedule.warmup_steps = 2
    return c


def test_value_head_from_an_lm_run_reaches_the_soft_targets(tiny_lm_run, tmp_path):
    c = head_config(heads.value_default_config, value_file(tmp_path), tiny_lm_run, "value_head")
    outcome = launch.run(c, str(tmp_path / "prm"))
    assert outcome.code == 0, outcome
    val = outcome.result["eval"]["val"]
    # BCE against soft targets 0.9/0.1 is at least their entropy, 0.325 nats
    assert val["accuracy"] == 1.0 and val["value_mae"] < 0.1, val
    assert 0.325 < val["loss"] < 0.4, val


def test_classifier_head_separates_a_toy(tiny_lm_run, tmp_path):
    rng = np.random.default_rng(1)
    lines = []
    for _ in range(64):
        label = int(rng.integers(0, 2))
        word = "yes" if label else "no"
        lines.append(json.dumps({"text": f"{word} " * int(rng.integers(1, 5)), "label": label}))
    (tmp_path / "cls.jsonl").write_text("\n".join(lines) + "\n")
    path = str(tmp_path / "cls.jsonl")
    c = head_config(heads.classify_default_config, path, tiny_lm_run, "class_head")
    c.train.update(total_steps=20, eval_every_steps=0)
    outcome = launch.run(c, str(tmp_path / "cls"))
    assert outcome.code == 0, outcome
    assert outcome.result["eval"]["val"]["accuracy"] == 1.0, outcome.result["eval"]


def test_head_starts_fresh_and_the_backbone_is_the_lm_runs(tiny_lm_run, tmp_path):
    c = head_config(heads.value_default_config, value_file(tmp_path, 8), tiny_lm_run, "value_head")
    t = trainer_lib.Trainer(c, str(tmp_path / "w"))
    params = jax.device_get(t._initial_state()["params"])
    fresh = jax.device_get(t.init_state()["params"])
    _, lm_params = __import__("framework.checkpoint").checkpoint.load_params(tiny_lm_run)
    np.testing.assert_array_equal(params["value_head"]["kernel"], fresh["value_head"]["kernel"])
    np.testing.assert_array_equal(
        params["embed"]["embedding"], np.asarray(lm_params["embed"]["embedding"])
    )


def test_value_file_errors_name_the_line(tmp_path):
    tok = tokenizers.make_tokenizer("byte", "")
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "p", "steps": ["a\n", "b\n"], "labels": [1]}) + "\n")
    with pytest.raises(examples.DataError, match=r"bad\.jsonl:1: 'steps' and 'labels'"):
        heads.load_value_rows(str(path), tok, 32)
    path.write_text(json.dumps({"prompt": "p", "steps": ["a\n"], "labels": [1.5]}) + "\n")
    with pytest.raises(examples.DataError, match=r"bad\.jsonl:1: step 0 .* label in \[0, 1\]"):
        heads.load_value_rows(str(path), tok, 32)
    c = heads.classify_default_config()
    c.data.path = str(tmp_path / "none.jsonl")
    with pytest.raises(config_lib.ConfigError, match="does not exist"):
        trainer_lib.Trainer(c, str(tmp_path / "w"))
