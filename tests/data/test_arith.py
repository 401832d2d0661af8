"""data/arith.py: generator determinism and ranges, gold solutions, the verifier's labels,
JSONL round trip and errors, the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
import subprocess
import sys

import pytest

from data import arith
from tests.conftest import ROOT

CHAIN = [("*", 2), ("*", 2), ("-", 43), ("*", 2)]  # the spec's example: 70 -> 474
GOLD = "70*2=140\n140*2=280\n280-43=237\n237*2=474\nA: 474\n"


def digest(problems: list[arith.Problem]) -> str:
    return hashlib.sha256(json.dumps([p.to_json() for p in problems]).encode()).hexdigest()


def test_the_spec_example_prompt_solution_and_level():
    p = arith.make_problem(70, CHAIN)
    assert p.prompt == "Q: 70 *2 *2 -43 *2 ?\n"
    assert p.solution == GOLD
    assert p.values == (70, 140, 280, 237, 474) and p.answer == 474
    assert (p.k, p.d, arith.level(p)) == (4, 2, 8)
    assert arith.level(arith.make_problem(5, [("+", 3)])) == 1
    words = arith.make_problem(70, CHAIN, style="words", seed=3)
    assert re.fullmatch(
        r"\w+ has 70 \w+\. Then doubles them\. Then doubles them\. "
        r"Then (gives away|loses|eats) 43\. Then doubles them\. How many now\?\n",
        words.prompt,
    )
    assert words.solution == GOLD


def test_same_seed_same_problems_and_another_seed_differs():
    first = arith.generate(100, seed=0)
    assert digest(first) == digest(arith.generate(100, seed=0))
    assert digest(first) == digest(arith.generate(1000, seed=0)[:100])  # a prefix
    assert digest(first) != digest(arith.generate(100, seed=1))
    mixed = dict(k=range(1, 9), words_fraction=0.5)
    assert digest(arith.generate(100, seed=5, **mixed)) == digest(
        arith.generate(100, seed=5, **mixed)
    )
    # Pinned: a change here changes every cached data set and checkpoint built on it.
    assert first[0].prompt + first[0].solution == (
        "Q: 84 +74 +46 +22 *3 ?\n84+74=158\n158+46=204\n204+22=226\n226*3=678\nA: 678\n"
    )


def test_ten_thousand_gold_solutions_verify_with_all_good_labels():
    problems = arith.generate(10_000, seed=1, k=range(1, 9), d=(1, 2), words_fraction=0.5)
    assert {p.k for p in problems} == set(range(1, 9)) and {p.d for p in problems} == {1, 2}
    assert {p.style for p in problems} == {"terse", "words"}
    for p in problems:
        assert arith.extract_answer(p.solution) == p.answer
        assert arith.is_correct(p, p.solution)
        assert arith.step_labels(p, p.solution) == [True] * p.k
        assert arith.arith_ok(p.solution) == [True] * p.k
        assert not arith.is_false_positive(p, p.solution)


def corrupt_rhs(solution: str, i: int) -> str:
    lines = solution.split("\n")
    lhs, rhs = lines[i].split("=")
    lines[i] = f"{lhs}={int(rhs) + 1}"
    return "\n".join(lines)


def test_a_wrong_rhs_at_step_i_is_bad_from_i_on():
    for p in arith.generate(20, seed=2, k=6):
        for i in range(p.k):
            text = corrupt_rhs(p.solution, i)
            assert arith.step_labels(p, text) == [True] * i + [False] * (p.k - i)
            assert arith.arith_ok(text) == [j != i for j in range(p.k)]
            assert arith.is_correct(p, text) and arith.is_false_positive(p, text)


def test_dropped_extra_and_unparsable_steps():
    p = arith.make_problem(70, CHAIN)
    label = lambda text: arith.step_labels(p, text)
    lines = GOLD.splitlines(keepends=True)
    dropped_middle = "".join(lines[:1] + lines[2:])
    assert label(dropped_middle) == [True, False, False]
    dropped_last = "".join(lines[:3] + lines[4:])
    assert label(dropped_last) == [True, True, True]
    extra = "".join(lines[:4]) + "474+0=474\nA: 474\n"
    assert label(extra) == [True] * 4 + [False]
    for text in (dropped_middle, dropped_last, extra):
        assert arith.is_correct(p, text) and arith.is_false_positive(p, text)
    unparsable = "".join(lines[:2]) + "hmm, double it\n" + "".join(lines[2:])
    assert label(unparsable) == [True, True, False, False, False]
    assert arith.parse_steps(unparsable)[2] == arith.Step("hmm, double it")
    assert label("".join(lines[:2]) + "\n" + "".join(lines[2:]))[2:] == [False] * 3  # blank
    assert label("70+2=72\n") == [False] and arith.arith_ok("70+2=72\n") == [True]  # wrong op
    assert label("71*2=142\n") == [False]  # wrong lhs (copy error)
    assert label(GOLD + "474*2=948\n") == [True] * 4  # lines after the answer are ignored
    truncated = "".join(lines[:4])  # no answer line
    assert label(truncated) == [True] * 4 and arith.extract_answer(truncated) is None
    assert not arith.is_correct(p, truncated) and not arith.is_false_positive(p, truncated)
    assert label("") == [] and label("A: 474\n") == []
    assert arith.is_false_positive(p, "A: 474\n")  # right answer, no steps


def test_false_positive_with_a_wrong_intermediate_step():
    p = arith.make_problem(70, CHAIN)
    text = "70*2=140\n140*2=281\n281-43=238\n237*2=474\nA: 474\n"
    assert arith.is_correct(p, text)
    assert arith.step_labels(p, text) == [True, False, False, False]
    assert arith.arith_ok(text) == [True, False, True, True]
    assert arith.is_false_positive(p, text)
    assert not arith.is_false_positive(p, text.replace("A: 474", "A: 475"))  # wrong: not FP
    assert not arith.is_false_positive(p, GOLD)


@pytest.mark.parametrize(
    "text, answer",
    [
        ("70*2=140\n", None),  # no answer line
        ("A: x\n", None),
        ("A: x\nA: 5\n", None),  # the first A: line decides
        ("A:  -12\n", -12),
        ("A:474", 474),
        ("A: 474 stamps\n", 474),  # trailing text after the number is ignored
        ("1+1=2\nA: 2\nA: 3\n", 2),
        (" A: 2\n", None),  # the line must start with A:
        ("Answer: 2\n", None),
        ("", None),
        ("A: " + "9" * 5000 + "\n", None),  # beyond Python's int digit limit
    ],
)
def test_extract_answer(text, answer):
    assert arith.extract_answer(text) == answer


def test_terse_fits_128_tokens_and_words_256():
    problems = arith.generate(5000, seed=3, k=range(1, 7), d=(1, 2))
    assert max(len((p.prompt + p.solution).encode()) + 2 for p in problems) <= 128
    words = arith.generate(2000, seed=3, k=range(1, 7), style="words")
    assert max(len((p.prompt + p.solution).encode()) + 2 for p in words) <= 256


def test_mean_solution_length_grows_with_k_and_d():
    def mean_len(**kw) -> float:
        return statistics.mean(len(p.solution) for p in arith.generate(400, seed=4, **kw))

    by_k = [mean_len(k=k) for k in range(1, 9)]
    assert all(a < b for a, b in zip(by_k, by_k[1:])), by_k
    for k in (1, 4, 8):
        assert mean_len(k=k, d=1) < mean_len(k=k, d=2)


@pytest.mark.parametrize("max_value", [999, 150])
def test_values_stay_in_range_and_follow_the_operand_rules(max_value):
    problems = arith.generate(3000, seed=5, k=range(1, 9), max_value=max_value)
    for p in problems:
        lo, hi = arith.OPERAND_RANGE[p.d]
        assert lo <= p.x0 <= hi and len(p.ops) == len(p.values) - 1 == p.k
        assert all(0 <= v <= max_value for v in p.values)
        for v, (op, y) in zip(p.values, p.ops):
            if op == "*":
                assert y in (2, 3) and v < arith.MUL_BELOW
            else:
                assert lo <= y <= hi
    ops = {op for p in problems for op, _ in p.ops}
    assert ops == {"+", "-", "*"}
    only_plus_minus = arith.generate(200, seed=5, ops="+-", mul_factors=(2,))
    assert {op for p in only_plus_minus for op, _ in p.ops} == {"+", "-"}
    fours = arith.generate(200, seed=5, ops="*", d=1, k=2, mul_factors=[4])
    assert {y for p in fours for _, y in p.ops} == {4}


def test_knob_draws_and_style_mix():
    problems = arith.generate(2000, seed=6, k=[2, 7], d=2, words_fraction=0.1)
    assert {p.k for p in problems} == {2, 7} and {p.d for p in problems} == {2}
    assert 0.07 < sum(p.style == "words" for p in problems) / len(problems) < 0.13
    assert {p.style for p in arith.generate(50, seed=6, style="words")} == {"words"}
    assert arith.generate(0, seed=0) == []
    for p in arith.generate(300, seed=7, style="words"):
        numbers = [int(x) for x in re.findall(r"\d+", p.prompt)]
        assert numbers == [p.x0, *(y for op, y in p.ops if op != "*")]
        assert p.prompt.count("Then ") == p.k and p.prompt.endswith(" How many now?\n")


@pytest.mark.parametrize(
    "knobs, words",
    [
        (dict(k=0), ["k=0", "1..8"]),
        (dict(k=[1, 9]), ["k=9", "1..8"]),
        (dict(k=[]), ["k is empty", "1..8"]),
        (dict(k="1-6"), ["k='1-6'", "1..8"]),
        (dict(d=3), ["d=3", "1 or 2"]),
        (dict(ops="+/"), ["ops='+/'", "'+-*'"]),
        (dict(ops=""), ["ops=''", "'+-*'"]),
        (dict(ops="++"), ["ops='++'", "distinct"]),
        (dict(style="fancy"), ["style='fancy'", "'terse', 'words'"]),
        (dict(n=-1), ["n=-1", ">= 0"]),
        (dict(max_value=50), ["max_value=50", ">= 99"]),
        (dict(max_value=5, d=1), ["max_value=5", ">= 9"]),
        (dict(words_fraction=1.5), ["words_fraction=1.5", "[0, 1]"]),
        (dict(mul_factors=[1]), ["mul_factors=1", "2..9"]),
        (dict(ops="-", k=8, d=2, max_value=99), ["no chain", "k=8", "[0, 99]"]),
    ],
)
def test_bad_knobs_raise_one_sentence(knobs, words):
    knobs = dict(dict(n=10, seed=0), **knobs)
    with pytest.raises(ValueError) as e:
        arith.generate(knobs.pop("n"), **knobs)
    message = str(e.value)
    assert "\n" not in message and message.endswith("."), message
    for w in words:
        assert w in message, message


def test_jsonl_round_trip_is_an_examples_file(tmp_path):
    problems = arith.generate(50, seed=8, k=range(1, 9), words_fraction=0.5)
    path = tmp_path / "sub" / "arith.jsonl"
    arith.write_jsonl(problems, path)
    assert os.listdir(path.parent) == ["arith.jsonl"]  # no temp file left behind
    assert arith.read_jsonl(path) == problems
    record = json.loads(path.read_text().splitlines()[0])
    assert record["prompt"] == problems[0].prompt and record["completion"] == problems[0].solution
    assert {"answer", "k", "d", "ops", "x0", "style"} <= set(record)
    assert arith.Problem.from_json(dict(record, answer=str(record["answer"]))) == problems[0]
    from data import examples  # the framework's `data.format='examples'` reader

    exs = examples.read_examples(str(path))
    assert [(e.prompt, e.completion) for e in exs] == [(p.prompt, p.solution) for p in problems]
    arith.write_jsonl([], path)
    assert arith.read_jsonl(path) == []


@pytest.mark.parametrize(
    "line, words",
    [
        ("{not json", ["not valid JSON"]),
        ("[1, 2]", ["JSON object"]),
        (dict(answer="abc"), ["'abc'", "integer"]),
        (dict(answer=1.5), ["'answer'", "1.5"]),
        (dict(answer=475), ["475", "474"]),
        (dict(ops=[["/", 2]]), ["op", "/"]),
        (dict(k=3), ["k=3", "4 ops"]),
        (dict(completion="A: 474\n"), ["completion", "gold"]),
        ("drop:ops", ["'ops' is missing"]),
        ("drop:prompt", ["'prompt' is missing"]),
    ],
)
def test_read_jsonl_errors_name_the_line(tmp_path, line, words):
    good = arith.make_problem(70, CHAIN).to_json()
    if isinstance(line, dict):
        line = json.dumps(dict(good, **line))
    elif line.startswith("drop:"):
        line = json.dumps({k: v for k, v in good.items() if k != line[5:]})
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + line + "\n")
    with pytest.raises(ValueError) as e:
        arith.read_jsonl(path)
    message = str(e.value)
    assert message.startswith(f"{path}:3: ") and "\n" not in message, message
    for w in words:
        assert w in message, message
    with pytest.raises(ValueError, match="does not exist"):
        arith.read_jsonl(tmp_path / "missing.jsonl")


def run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, "-m", "data.arith", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_writes_n_lines_and_exits_2_on_a_bad_knob(tmp_path):
    out = tmp_path / "a.jsonl"
    bad = run(f"--output={out}", "--n=10", "--k=1-9")
    assert bad.returncode == 2 and not out.exists()
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    assert bad.stderr.startswith("error: k=9 is outside the allowed range 1..8.")
    assert "Traceback" not in bad.stderr
    good = run(f"--output={out}", "--n=25", "--seed=3", "--k=2-4,7", "--d=2", "--ops=+-*")
    assert good.returncode == 0, good.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 25
    expected = arith.generate(25, seed=3, k=[2, 3, 4, 7], d=[2], ops="+-*")
    assert arith.read_jsonl(out) == expected
    mixed = run(f"--output={out}", "--n=40", "--words_fraction=0.5")
    assert mixed.returncode == 0 and {p.style for p in arith.read_jsonl(out)} == {
        "terse",
        "words",
    }


@pytest.mark.parametrize(
    "args, words",
    [
        (["--n=5"], "--output is required"),
        (["--output=x.jsonl", "--n=abc"], "abc"),
        (["--output=x.jsonl", "--bogus=1"], "bogus"),
        (["--output=x.jsonl", "--k=a-b"], "--k='a-b'"),
        (["--output=x.jsonl", "--k=6-1"], "--k='6-1'"),
        (["--output=x.jsonl", "--style=prose"], "style='prose'"),
        (["--output=x.jsonl", "--ops=+x"], "ops='+x'"),
        (["--output=x.jsonl", "stray"], "'stray'"),
    ],
)
def test_cli_flag_errors_in_process(tmp_path, capsys, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    assert arith.main(["arith", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.jsonl").exists()


def test_parse_int_list():
    assert arith.parse_int_list("k", "1-6") == [1, 2, 3, 4, 5, 6]
    assert arith.parse_int_list("k", "1,3, 5") == [1, 3, 5]
    assert arith.parse_int_list("k", "1-2,7") == [1, 2, 7]
    assert arith.parse_int_list("d", "2") == [2]


def test_parse_int_list_refuses_huge_ranges_before_expanding_them():
    with pytest.raises(ValueError, match="values above 1000"):
        arith.parse_int_list("k", "1-99999999999")


def test_held_out_draws_avoid_the_excluded_chains_and_each_other():
    seen = {p.chain for p in arith.generate(3000, seed=0, k=(1, 2), d=(1, 2))}
    plain = arith.generate(200, seed=9, k=(1, 2), d=(1, 2))
    assert sum(p.chain in seen for p in plain) > 50  # small spaces repeat without exclude
    held = arith.generate(200, seed=9, k=(1, 2), d=(1, 2), exclude=seen)
    chains = [p.chain for p in held]
    assert len(held) == 200 and not set(chains) & seen and len(set(chains)) == 200
    assert digest(held) == digest(arith.generate(200, seed=9, k=(1, 2), d=(1, 2), exclude=seen))
    assert digest(held[:50]) == digest(
        arith.generate(50, seed=9, k=(1, 2), d=(1, 2), exclude=seen)
    )  # still a prefix of a longer draw


def test_a_held_out_draw_that_runs_out_of_chains_says_so():
    every = arith.generate(144, seed=1, k=1, d=1, exclude=())  # all k = 1, 1-digit chains
    assert len({p.chain for p in every}) == 144
    with pytest.raises(ValueError, match="only 144 of 145 held-out problems .* ask for fewer"):
        arith.generate(145, seed=1, k=1, d=1, exclude=())
    with pytest.raises(ValueError, match="only 0 of 1 held-out"):
        arith.generate(1, seed=2, k=1, d=1, exclude={p.chain for p in every})
