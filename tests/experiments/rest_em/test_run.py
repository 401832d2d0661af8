"""ReST^EM's tiny reproduction end to end, in this process: pi0, two iterations, ReST
and SFT on gold, the evaluations and the report; then what the loop promises: every
ReST^EM M-step starts from pi0's exact parameters while each E-step samples from the
previous iterate, the cap holds, the best validation reward is the one kept, and a
re-run does nothing twice."""

import dataclasses
import json
import os

import pytest

from data import arith
from experiments.rest_em import loop, run
from framework import config as config_lib, files, init_from


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, arith_tiny_base):
    workdir = str(tmp_path_factory.mktemp("rest_em"))
    assert run.main([f"--workdir={workdir}", "--variant=tiny", f"--base={arith_tiny_base}"]) == 0
    return workdir


@pytest.mark.slow
def test_tiny_reproduction_writes_the_report(tiny):
    results = files.read_json(os.path.join(tiny, "results.json"))
    assert set(results["evals"]) == {
        "pi0", "rest_em/iter1", "rest_em/iter2", "rest/iter1", "rest/iter2"
    }  # fmt: skip
    for e in results["evals"].values():
        assert 0.0 <= e["test"]["all"]["pass@1"] <= 1.0
        assert {"k=1", "k=2"} <= set(e["test"])
    assert "pass_k" in results["evals"]["rest_em/iter2"]
    with open(os.path.join(tiny, "report.md")) as f:
        text = f.read()
    assert "R1 iteration 1 raises greedy test pass@1" in text
    sets = results["overlaps"]  # tiny's pi0 has seen nearly every chain: not held out from it
    assert all(sets[n]["questions"] == sets[n]["repeats"] == 0 for n in sets), sets
    assert "| test | 4 |" in text
    assert results["test_two_digit"] == {"k=1": 0, "k=2": 0}  # tiny: 1-digit only
    assert "Test problems with 2-digit operands, of 2 per level: k=1 0, k=2 0." in text
    for name in ("pass1_vs_iteration.png", "pass_at_k.png", "gain_per_k.png"):
        assert os.path.getsize(os.path.join(tiny, name)) > 1000


@pytest.mark.slow
def test_m_steps_reset_to_pi0_and_e_steps_use_the_previous_iterate(tiny):
    base = files.read_json(os.path.join(tiny, "results.json"))["base"]
    pi0 = loop.params_hash(*init_from.parse(base))
    rec = {
        name: files.read_json(os.path.join(tiny, name, "estep.json"))
        for name in ("rest_em/iter1", "rest_em/iter2", "rest/iter2")
    }
    assert rec["rest_em/iter1"]["init_hash"] == rec["rest_em/iter2"]["init_hash"] == pi0
    assert rec["rest_em/iter1"]["policy_hash"] == pi0
    iter1 = loop.params_hash(os.path.join(tiny, "rest_em", "iter1", "run"), "best")
    assert iter1 != pi0
    assert rec["rest_em/iter2"]["policy_hash"] == iter1  # sampled from iteration 1
    assert rec["rest/iter2"]["init_hash"] == iter1  # ReST continues from it


@pytest.mark.slow
def test_cap_best_reward_and_resume(tiny):
    cap = run.VARIANTS["tiny"].cap
    for name in ("rest_em/iter1", "rest_em/iter2"):
        kept = files.read_jsonl(os.path.join(tiny, name, "train.jsonl"))
        per_prompt = {}
        for e in kept:
            per_prompt[e["prompt"]] = per_prompt.get(e["prompt"], 0) + 1
        assert kept and max(per_prompt.values()) <= cap
    m_run = os.path.join(tiny, "rest_em", "iter1", "run")
    rewards = [
        r["accuracy"]
        for r in files.read_jsonl(os.path.join(m_run, "metrics.jsonl"))
        if r.get("split") == "reward"
    ]
    best = files.read_json(os.path.join(m_run, "best.json"))
    assert rewards and best["value"] == max(rewards)
    before = {p: os.stat(p).st_mtime_ns for p in _outputs(tiny)}
    base = files.read_json(os.path.join(tiny, "results.json"))["base"]
    assert base.endswith(":latest")  # the tiny base has no gate.json
    assert run.main([f"--workdir={tiny}", "--variant=tiny", f"--base={base}"]) == 0  # no-op
    assert {p: os.stat(p).st_mtime_ns for p in _outputs(tiny)} == before


def _outputs(workdir):
    for dirpath, _, names in os.walk(workdir):
        for n in names:
            if n in ("samples.jsonl", "train.jsonl", "estep.json", "result.json") or (
                dirpath.endswith("evals") and n.endswith(".json")
            ):
                yield os.path.join(dirpath, n)


def test_base_that_is_not_a_language_model_is_one_line_and_exit_2(tmp_path, capsys):
    fake = tmp_path / "pm"
    fake.mkdir()
    (fake / "config.json").write_text(json.dumps({"config": {"task": "experiments.pmformer.task"}}))
    code = run.main([f"--workdir={tmp_path / 'w'}", "--variant=tiny", f"--base={fake}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not a language model" in err[0]


def test_a_question_file_whose_answers_do_not_parse_is_one_line_and_exit_2(
    tmp_path, capsys, arith_tiny_base
):
    data = tmp_path / "w" / "data"
    data.mkdir(parents=True)
    record = arith.make_problem(1, [("+", 1)]).to_json()  # well formed but the answer
    (data / "questions.jsonl").write_text(json.dumps({**record, "answer": "two"}) + "\n")
    code = run.main([f"--workdir={tmp_path / 'w'}", "--variant=tiny", f"--base={arith_tiny_base}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "questions.jsonl:1" in err[0] and err[0].startswith("error: ")
    assert "answer" in err[0] and "completion" not in err[0]


def test_a_workdir_that_is_a_file_is_one_line_and_exit_2(tmp_path, capsys, arith_tiny_base):
    path = tmp_path / "w"
    path.write_text("not a directory")
    code = run.main([f"--workdir={path}", "--variant=tiny", f"--base={arith_tiny_base}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is a file" in err[0]
    assert path.read_text() == "not a directory"


def test_a_workdir_remembers_its_variant_and_base(tmp_path):
    w = str(tmp_path / "w")
    run.check_experiment(w, "tiny", str(tmp_path / "pi0"))
    run.check_experiment(w, "tiny", str(tmp_path / "pi0"))  # the same settings: continue
    assert files.read_json(os.path.join(w, "experiment.json"))["variant"] == "tiny"
    with pytest.raises(config_lib.ConfigError, match="base=.*pi0' \\(now .*other_pi0'\\); use"):
        run.check_experiment(w, "tiny", str(tmp_path / "other_pi0"))
    with pytest.raises(config_lib.ConfigError, match="variant='tiny' \\(now 'cpu'\\)"):
        run.check_experiment(w, "cpu", str(tmp_path / "pi0"))
    old = tmp_path / "old"  # a workdir from before the held-out sets
    old.mkdir()
    (old / "experiment.json").write_text(json.dumps(dict(variant="tiny", base="b")))
    with pytest.raises(config_lib.ConfigError, match="sets=None \\(now 'held out'\\)"):
        run.check_experiment(str(old), "tiny", "b")


def fake_pi0(path, spec: str) -> str:
    """A pi0 workdir as far as make_data reads it: the saved config's generated data."""
    os.makedirs(path)
    config = {"task": "framework.tasks.lm", "data": {"prepare": "data.arith", "prepare_spec": spec}}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"config": config}, f)
    return str(path)


def test_the_sets_are_held_out_from_pi0_training_and_from_each_other(tmp_path):
    pi0 = fake_pi0(tmp_path / "pi0", "n=3000 seed=0 k=1-3 d=1,2")
    small = dict(questions=150, val=40, test_per_k=20, transfer=40, ks=(1, 2, 3), d=(1, 2))
    v = dataclasses.replace(run.VARIANTS["tiny"], test_ks=(1, 2, 3, 4), hold_out=True, **small)
    data = run.make_data(str(tmp_path / "w"), v, pi0)
    assert [len(data[n]) for n in ("test", "val", "transfer", "questions")] == [80, 40, 40, 150]
    counts = run.overlaps(data, pi0)
    assert counts["questions"]["pi0_training"] > 0  # allowed: a fine-tuning set may repeat
    counts["questions"]["pi0_training"] = 0
    assert all(c == 0 for o in counts.values() for k, c in o.items() if k != "n"), counts
    chains = {n: {p.chain for p in ps} for n, ps in data.items()}
    assert not chains["questions"] & (chains["test"] | chains["val"] | chains["transfer"])
    # Without hold_out the same seeds draw pi0's training problems, which the count shows.
    loose = run.make_data(str(tmp_path / "loose"), dataclasses.replace(v, hold_out=False), pi0)
    assert run.overlaps(loose, pi0)["test"]["pi0_training"] > 10
