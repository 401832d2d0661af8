"""ReST^EM's steps on small fakes: the cap, what a kept sample teaches (the solution,
loss only there), the M-step config (reset to pi0 vs continue) and the claims' verdicts."""

import json

import numpy as np
import pytest

from data import arith, examples, tokenizers
from experiments.rest_em import loop, report

QS = arith.generate(3, seed=5, k=(1, 2), d=(1,))


def rows_for(q: int, correct: int, wrong: int) -> list[dict]:
    good = QS[q].solution.rstrip("\n")
    return [dict(q=q, text=good, correct=True, false_positive=False)] * correct + [
        dict(q=q, text="1+1=2\nA: -1", correct=False, false_positive=False)
    ] * wrong


def test_keep_enforces_the_cap_per_question_and_drops_wrong_samples():
    rows = rows_for(0, 5, 2) + rows_for(1, 2, 3) + rows_for(2, 0, 4)
    kept = loop.keep(rows, QS, cap=3)
    by_q = [sum(e["prompt"] == q.prompt for e in kept) for q in QS]
    assert by_q == [3, 2, 0]
    assert len(loop.keep(rows, QS, cap=0)) == 7  # no cap: every correct sample
    assert all(e["completion"] == QS[0].solution for e in kept if e["prompt"] == QS[0].prompt)


def test_sft_baseline_takes_one_gold_solution_per_question():
    gold = loop.gold_examples(QS)
    assert [(e["prompt"], e["completion"]) for e in gold] == [(q.prompt, q.solution) for q in QS]


def test_a_kept_sample_ends_at_its_answer_line():
    assert loop.through_answer("3+4=7\nA: 7\nQ: 1 +1 ?") == "3+4=7\nA: 7\n"
    assert loop.through_answer("3+4=7\nA: 7") == "3+4=7\nA: 7\n"


def test_loss_mask_covers_only_the_solution_tokens(tmp_path):
    kept = loop.keep(rows_for(0, 1, 0) + rows_for(1, 1, 0), QS, cap=10)
    path = tmp_path / "train.jsonl"
    loop.write_examples(kept, str(path))
    tok = tokenizers.ByteTokenizer()
    rows = examples.pack(examples.read_examples(str(path)), tok, 128, packed=True)
    targets, mask = rows["targets"][0], rows["mask"][0]
    lossy = targets[mask > 0]
    want = b"".join(e["completion"].encode() + bytes([0]) for e in kept)  # placeholder EOS
    assert len(lossy) == len(want)  # every solution byte and its EOS; no prompt byte
    text = bytes(int(t) for t in lossy if t < 256).decode()
    assert text == "".join(e["completion"] for e in kept)
    assert int(np.sum(lossy == tok.eos_id)) == len(kept)


def test_m_step_resets_to_pi0_or_continues_and_early_stops_on_val_reward(tiny_lm_run, tmp_path):
    c = loop.m_step_config(
        tiny_lm_run, f"{tiny_lm_run}:latest", str(tmp_path / "t.jsonl"), str(tmp_path / "v.jsonl"),
        steps=30, batch_size=4, lr=1e-3, eval_every=10, patience=2, max_new_tokens=40,
    )  # fmt: skip
    assert c.train.init_from == f"{tiny_lm_run}:latest"
    assert (c.train.best_metric, c.train.best_mode, c.train.early_stop_patience) == (
        "reward/accuracy",
        "max",
        2,
    )
    assert c.data.format == "examples" and c.data.prepare == ""
    assert c.evals.reward.verifier == "data.arith" and c.evals.reward.temperature == 0.0
    assert c.model.d_model == 32  # the base run's model


def test_e_step_stats_count_false_positives():
    rows = rows_for(0, 2, 2) + [dict(q=1, text="x", correct=True, false_positive=True)]
    rows[-1]["text"] = "1+1=2\nA: 3"  # a right answer after a wrong step
    s = loop.e_step_stats(rows, 1, 3)
    assert s["samples"] == 5 and s["kept"] == 2
    assert s["sample_accuracy"] == pytest.approx(3 / 5)
    assert s["questions_solved"] == pytest.approx(2 / 3)
    assert s["false_positive_rate"] == pytest.approx(1 / 2)  # among the kept
    assert s["false_positive_rate_correct"] == pytest.approx(1 / 3)


def test_only_answer_lines_in_the_taught_format_are_kept():
    good = QS[0].solution.rstrip("\n")
    sloppy = good.replace("A: ", "A:")
    rows = [dict(q=0, text=t, correct=True, false_positive=False) for t in (sloppy, good)]
    assert [e["completion"] for e in loop.keep(rows, QS, 0)] == [QS[0].solution]


def fake_eval(test: float, train: float, transfer: float = 0.5, per_k=(0.9, 0.5, 0.1)) -> dict:
    test_levels = {f"k={i + 1}": {"pass@1": v, "invalid": 0.0} for i, v in enumerate(per_k)}
    test_levels["all"] = {"pass@1": test, "invalid": 0.0}
    return dict(
        test=test_levels,
        train_t07={"all": {"pass@1": train}},
        transfer={"all": {"pass@1": transfer}},
    )


def test_claims_read_the_numbers_both_ways():
    evals = {
        "pi0": fake_eval(0.30, 0.30),
        "rest_em/iter1": fake_eval(0.40, 0.45),
        "rest_em/iter2": fake_eval(0.42, 0.55),
        "x3/iter1": fake_eval(0.43, 0.5),
    }
    verdicts = {c[:2]: ok for c, ok, _ in report.claims(dict(evals=evals))}
    assert verdicts["R1"] and verdicts["R2"]
    assert verdicts["R4"] is False  # 0.42 after two iterations < 0.43 with 3x samples
    assert verdicts["R3"] is None  # no small-set run
    evals["rest_em/iter1"] = fake_eval(0.25, 0.45)
    assert not next(ok for c, ok, _ in report.claims(dict(evals=evals)) if c.startswith("R1"))
    json.dumps(report.claims(dict(evals=evals)))  # plain values, for results files
