"""The arithmetic base policy's pieces: the generated-data hook (data.prepare), the
config, and the calibration gate's checks."""

import os

from configs import arith as arith_config
from data import arith
from experiments.arith import base, policy
from framework import launch


def test_prepare_writes_once_and_refuses_a_file_from_another_spec(tmp_path):
    path = str(tmp_path / "train.jsonl")
    arith.prepare(path, "n=50 seed=3 k=1-2 d=1")
    problems = arith.read_jsonl(path)
    assert len(problems) == 50 and {p.k for p in problems} == {1, 2}
    mtime = os.stat(path).st_mtime_ns
    arith.prepare(path, "seed=3 n=50 d=1 k=1,2")  # the same spec, spelled differently
    assert os.stat(path).st_mtime_ns == mtime
    try:
        arith.prepare(path, "n=60 seed=3 k=1-2 d=1")
        raise AssertionError("a file from another spec was accepted")
    except ValueError as e:
        assert "delete it or choose another data.path" in str(e)
    assert os.stat(path).st_mtime_ns == mtime


def test_a_bad_generator_spec_is_one_line_and_exit_2(tmp_path):
    c = arith_config.get_config(f"size=tiny,data_dir={tmp_path}/data")
    c.data.prepare_spec = "n=10 k=1-9"
    outcome = launch.run(c, str(tmp_path / "run"))
    assert outcome.code == 2 and "data.prepare='data.arith'" in outcome.message
    assert "k" in outcome.message and "\n" not in outcome.message
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_config_generates_terse_and_word_problems_that_fit_a_row(tmp_path):
    c = arith_config.get_config(f"size=s,n=2000,data_dir={tmp_path}")
    arith.prepare(c.data.path, c.data.prepare_spec)
    problems = arith.read_jsonl(c.data.path)
    words = sum(p.style == "words" for p in problems) / len(problems)
    assert 0.06 < words < 0.14 and max(p.k for p in problems) == 6
    longest = max(len((p.prompt + p.solution).encode()) + 2 for p in problems)
    assert longest <= c.data.seq_len + 1
    assert policy.token_budget(problems) >= max(len(p.solution) for p in problems) + 1


def scores(by_k: list[float], sampled: float, invalid: float = 0.0) -> tuple[dict, dict]:
    greedy = {f"k={i + 1}": {"pass@1": v, "invalid": invalid} for i, v in enumerate(by_k)}
    greedy["all"] = {"pass@1": sum(by_k) / len(by_k), "invalid": invalid}
    return greedy, {"all": {"pass@16": sampled, "invalid": invalid}}


def test_gate_checks_pass_a_calibrated_policy_and_name_what_fails():
    ok = base.gate_checks(*scores([0.9, 0.7, 0.5, 0.4, 0.3, 0.2], 0.75), n=16)
    assert all(ok.values()), ok
    bad = base.gate_checks(*scores([0.5, 0.7, 0.5, 0.4, 0.3, 0.5], 0.55, invalid=0.1), n=16)
    failed = {name for name, passed in bad.items() if not passed}
    assert failed == {
        "greedy pass@1 falls with k (+0.03 slack)",
        "k=1 greedy pass@1 >= 0.8",
        "k=6 greedy pass@1 <= 0.35",
        "pass@16 (T=1) >= greedy pass@1 + 0.15",
        "invalid answers <= 5 %",
    }


def test_gate_on_the_tiny_artifact_scores_a_real_model_and_reports_each_check(arith_tiny_base):
    """The tiny pi0 (seconds of training) is far below the gate; the real one, trained
    by `python -m experiments.arith.base`, passes it (README)."""
    gate = base.evaluate_gate(arith_tiny_base, per_k=4, n=4, ks=(1, 2))
    p1 = gate["greedy"]["all"]["pass@1"]
    assert set(gate["greedy"]) == {"all", "k=1", "k=2"} and 0 <= p1 <= 1
    assert gate["sampled"]["all"]["pass@4"] >= gate["sampled"]["all"]["pass@1"]
    assert gate["checks"]["greedy pass@1 in [0.25, 0.65]"] == (0.25 <= p1 <= 0.65)
    assert gate["passed"] == all(gate["checks"].values())
    assert "Gate: **" in "\n".join(base.gate_table(gate))
