"""framework/generation_eval.py: N samples per prompt, verified, scored and written."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from framework import checkpoint, config as config_lib, eval_metrics, trainer as trainer_lib
from tests.conftest import tiny_lm_config


def gen_config(tmp_path, **overrides):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(json.dumps({"prompt": p, "answer": a}) + "\n" for p, a in [("1+1=", 2), ("a", 3)])
    )
    c = tiny_lm_config()
    gen = dict(
        kind="framework.generation_eval",
        prompts=str(prompts),
        verifier="tests.framework.digit_verifier",
        num_samples=6,
        k=(1, 4, 6),
        temperature=1.0,
        max_new_tokens=12,
        rows=8,  # chunks of 8 rows: 12 rows run as 8 + 4
    )
    gen.update(overrides)
    c.evals = dict(gen=gen)
    return c


def evaluate(tiny_lm_run, tmp_path, **overrides):
    t = trainer_lib.Trainer(gen_config(tmp_path, **overrides), str(tmp_path / "w"))
    params, step = checkpoint.restore_params(tiny_lm_run, "latest", t.abstract_state["params"])
    out = t.evaluators["gen"].run_at(params, step)
    with open(os.path.join(tmp_path, "w", "eval", "gen", f"{step}.jsonl")) as f:
        rows = [json.loads(x) for x in f]
    return out, rows


def test_scores_follow_from_the_written_samples(tiny_lm_run, tmp_path):
    out, rows = evaluate(tiny_lm_run, tmp_path)
    assert len(rows) == 12 and [r["sample"] for r in rows[:6]] == list(range(6))
    verdicts = [[r["correct"] for r in rows if r["prompt"] == p] for p in (0, 1)]
    assert out["accuracy"] == pytest.approx(np.mean(verdicts))
    for k in (1, 4, 6):
        assert out[f"pass@{k}"] == pytest.approx(eval_metrics.mean_pass_at_k(verdicts, k))
    assert out["invalid"] == pytest.approx(np.mean([r["answer"] is None for r in rows]))
    assert len({r["text"] for r in rows}) > 2  # sampled, not greedy
    majority = []
    for p in (0, 1):
        mine = [r for r in rows if r["prompt"] == p]
        vote = eval_metrics.majority_vote([r["answer"] for r in mine])
        majority.append(vote is not None and any(r["correct"] for r in mine if r["answer"] == vote))
    assert out["maj@6"] == pytest.approx(np.mean(majority))


def test_greedy_samples_agree_and_bad_verifiers_are_config_errors(tiny_lm_run, tmp_path):
    out, rows = evaluate(tiny_lm_run, tmp_path, temperature=0.0)
    for p in (0, 1):
        texts = {r["text"] for r in rows if r["prompt"] == p}
        assert len(texts) == 1
    assert out["pass@6"] == out["pass@1"] == out["accuracy"]
    with pytest.raises(config_lib.ConfigError, match="'tests.nope' is not an importable module"):
        trainer_lib.Trainer(gen_config(tmp_path, verifier="tests.nope"), str(tmp_path / "x"))
    with pytest.raises(config_lib.ConfigError, match="defines no is_correct"):
        trainer_lib.Trainer(gen_config(tmp_path, verifier="framework.files"), str(tmp_path / "y"))


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(k=6), r"\.k=6 must be a list of integers"),
        (dict(num_samples=0), "num_samples=0 must be >= 1"),
        (dict(k=(1, 8)), r"every k in \(1, 8\) between 1 and it"),
        (dict(max_new_tokens=0), "max_new_tokens=0 must be >= 1"),
        (dict(rows=-1), "rows=-1 must be >= 0"),
        (dict(temperature=-1.0), "temperature=-1.0 must be >= 0"),
    ],
)
def test_bad_sampling_settings_are_config_errors_before_training(tmp_path, overrides, match):
    with pytest.raises(config_lib.ConfigError, match=match):
        trainer_lib.Trainer(gen_config(tmp_path, **overrides), str(tmp_path / "w"))


def test_a_stop_string_is_one_string_not_its_characters(tmp_path):
    t = trainer_lib.Trainer(gen_config(tmp_path, stop="Q:"), str(tmp_path / "w"))
    assert t.evaluators["gen"].knobs["stop_strings"] == ("Q:",)
