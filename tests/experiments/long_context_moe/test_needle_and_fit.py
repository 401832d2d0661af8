"""Needle prompts (exact length, needle at the requested depth within a sentence, the
answer scored by exact match) and the NLL-vs-position power-law fit (recovers known
parameters; R^2 by its formula)."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest

from experiments.long_context_moe import needle, position_nll

CORPUS = " ".join(f"Sentence number {i} says something short." for i in range(400))


@pytest.mark.parametrize("depth", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("length", [200, 512])
def test_one_needle_lands_at_its_depth_and_the_prompt_has_the_length(depth, length):
    (n,) = needle.random_needles(1, random.Random(0))
    prompt, answer = needle.make_prompt(CORPUS, [n], [depth], length, offset=37)
    assert len(prompt) == length and answer == n.number and len(answer) == 5
    at = prompt.index(n.text)
    assert at == 0 or prompt[at - 2 : at] == ". "  # at a sentence start
    haystack = length - len(n.text) - len(needle.QUESTION.format(city=n.city))
    sentence = len("Sentence number 123 says something short. ")
    assert abs(at - depth * haystack) <= sentence  # within one sentence of the depth
    assert prompt.endswith(f"What is the special magic {n.city} number? ")


def test_several_needles_are_all_present_and_one_is_asked():
    needles = needle.random_needles(4, random.Random(1))
    assert len({n.city for n in needles}) == 4
    prompt, answer = needle.make_prompt(CORPUS, needles, [0.2, 0.4, 0.6, 0.8], 600, ask=2)
    assert all(n.text in prompt for n in needles) and answer == needles[2].number
    assert prompt.index(needles[0].text) < prompt.index(needles[3].text)
    with pytest.raises(ValueError, match="leaves"):
        needle.make_prompt(CORPUS, needles, [0.5] * 4, 100)


def test_scoring_is_exact_match_of_the_first_number():
    assert needle.score(" 12345 is it", "12345")
    assert not needle.score("1234", "12345") and not needle.score("123456", "12345")
    assert not needle.score("the number 12345", "12345")


def test_power_law_fit_recovers_known_parameters_and_r2_is_its_formula():
    x = np.arange(1, 513, dtype=np.float64)
    rng = np.random.default_rng(0)
    y = position_nll.power_law(x, 2.0, -0.6, 1.2) + rng.normal(0, 0.002, x.shape)
    fit = position_nll.fit_power_law(x, y)
    assert fit["alpha"] == pytest.approx(2.0, rel=0.05)
    assert fit["beta"] == pytest.approx(-0.6, rel=0.05)
    assert fit["gamma"] == pytest.approx(1.2, abs=0.01)
    assert fit["r2"] > 0.999
    assert position_nll.r_squared([1, 2, 3], [1, 2, 4]) == pytest.approx(1 - 1 / 2)
    nll = np.array([[4.0, 2.0, 0.0], [2.0, 2.0, 2.0]])
    np.testing.assert_allclose(position_nll.cumulative_nll(nll), [3.0, 2.5, 2.0])


def test_lm_examples_are_full_rows_and_half_hold_a_question_and_its_answer(tmp_path):
    path = str(tmp_path / "lm.jsonl")
    needle.prepare(path, "n=200,max_len=128,seed=3,mode=lm")
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == 200 and all(r["prompt"] == "" for r in rows)
    assert {len(r["completion"]) for r in rows} == {127}  # BOS + 127 + EOS = 129 tokens
    asked = [r["completion"] for r in rows if "What is the special magic" in r["completion"]]
    assert 0.35 < len(asked) / len(rows) < 0.65
    for text in asked:  # the question, then the asked needle's number and a newline
        city, number = re.search(
            r"What is the special magic (\w+) number\? (\d{5})\n$", text
        ).groups()
        assert f"The special magic {city} number is: {number}." in text
    with pytest.raises(ValueError, match="mode='chat' is unknown"):
        needle.prepare(path, "n=2,max_len=128,mode=chat")


def _oracle(asked_only: bool):
    """A stand-in for the sampler that reads the needle out of each prompt: the asked
    city's number (a perfect retriever), or the first needle's (one that ignores the
    question)."""

    def generate(model, tokenizer, prompts, **kw):
        texts = []
        for p in prompts:
            found = re.findall(r"special magic (\w+) number is: (\d+)", p)
            city = re.search(r"What is the special magic (\w+) number\? $", p).group(1)
            pick = [n for c, n in found if c == city] if asked_only else [found[0][1]]
            texts.append(f" {pick[0]}\n")
        return type("Out", (), {"texts": texts})()

    return generate


@pytest.mark.parametrize("asked_only", [True, False])
def test_the_needle_tables_score_a_retriever_as_one(monkeypatch, asked_only):
    from experiments.long_context_moe import evaluate

    monkeypatch.setattr(evaluate.sampling, "generate", _oracle(asked_only))
    monkeypatch.setattr(evaluate, "answer_nll", lambda *a: [0.0] * 5)
    settings = dict(
        needle_lengths=[200, 400], depths=[0.0, 0.5, 1.0], multi_length=400, counts=[1, 3],
        trials=4,
    )  # fmt: skip
    t = evaluate.needle_tables(None, None, CORPUS, settings)
    np.testing.assert_array_equal(t["needle_grid"], np.ones((2, 3)))  # one needle: either
    if asked_only:
        assert t["multi_needle"] == [1.0, 1.0]
    else:  # the first needle is the asked one in about a third of 3-needle prompts
        assert t["multi_needle"][0] == 1.0 and t["multi_needle"][1] < 1.0
