"""Train the arithmetic base policy pi0 (configs/arith.py) and check its calibration gate.

    python -m experiments.arith.base --workdir=runs/arith_base [--variant=cpu|tiny]

The gate (../shared/papers/arith.md 0.4) asks for room above pi0 that sampling, search
and self-training can show: on a test set balanced over k = 1..6 drawn like the training
problems (terse, 1- and 2-digit operands, a seed of its own), greedy pass@1 in [0.25,
0.65] and falling with k (each level at most 0.03 above the one before), k=1 >= 0.8, k=6
<= 0.35, pass@16 at temperature 1 at least 0.15 above greedy pass@1, invalid answers <=
5 %. It calibrates pi0 on its training distribution, so short chains, whose small spaces
the training set covers, count as they are (182 of the 600 are training problems).
Held-out sets (`training_chains`, arith.generate's `exclude`) cannot keep that d-mix: no
1-digit k = 1 chain is left, so their low levels are harder than their high ones
(README).
Writes <workdir>/gate.json and gate.md. Re-running resumes the training (or skips it
when finished) and recomputes the gate; exit 0 whether or not the gate holds (it says
which checks fail), 2 for a user error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Collection, Sequence
from typing import Any

from data import arith
from experiments import report_utils
from experiments.arith import policy as policy_lib
from framework import config as config_lib, files, launch

GATE_SEED = 1_000_003  # test problems: a stream of their own (not held out: module doc)
VARIANTS = {
    # configs/arith.py arg, gate problems per k, samples at T=1, the gate's k levels
    "cpu": ("size=s", 100, 16, range(1, 7)),
    # Tests: a model that learns 1-2 step, 1-digit problems in seconds (not gated).
    "tiny": ("size=tiny,k=1-2,d=1,n=20000", 4, 4, range(1, 3)),
}


class PreemptedError(Exception):
    """A run stopped by SIGTERM (its checkpoint saved): what builds on it must wait."""


def gate_problems(
    per_k: int,
    seed: int = GATE_SEED,
    ks: Sequence[int] = range(1, 7),
    d: Sequence[int] = (1, 2),
    exclude: Collection[arith.Chain] | None = None,
) -> list:
    """`per_k` terse problems at each steps-count k (operand digits `d` mixed); with
    `exclude`, held out from those chains (arith.generate)."""
    return [p for k in ks for p in arith.generate(per_k, seed=seed + k, k=k, d=d, exclude=exclude)]


def training_chains(workdir: str) -> frozenset[arith.Chain]:
    """The chains of the problems pi0 in `workdir` trained on, regenerated from its saved
    config's data.prepare_spec (the spec, not the file: the file may be gone)."""
    data = config_lib.saved_config(workdir).data
    if data.get("prepare") != "data.arith" or not data.get("prepare_spec"):
        raise config_lib.ConfigError(
            f"{workdir} was not trained on generated arithmetic problems (data.prepare "
            "'data.arith'), so its training chains cannot be held out; give pi0's workdir."
        )
    knobs = arith.parse_spec(data.prepare_spec)
    problems = arith.generate(knobs.pop("n"), **knobs)
    return frozenset(p.chain for p in problems)


def gate_checks(greedy: dict[str, dict], sampled: dict[str, dict], n: int) -> dict[str, bool]:
    """The gate's checks on greedy and T=1 scores (policy.score outputs)."""
    levels = sorted(int(key[2:]) for key in greedy if key.startswith("k="))
    by_k = [greedy[f"k={k}"]["pass@1"] for k in levels]
    p1 = greedy["all"]["pass@1"]
    return {
        "greedy pass@1 in [0.25, 0.65]": 0.25 <= p1 <= 0.65,
        "greedy pass@1 falls with k (+0.03 slack)": all(
            b <= a + 0.03 for a, b in zip(by_k, by_k[1:])
        ),
        "k=1 greedy pass@1 >= 0.8": by_k[0] >= 0.8,
        "k=6 greedy pass@1 <= 0.35": greedy.get("k=6", {"pass@1": 0.0})["pass@1"] <= 0.35,
        f"pass@{n} (T=1) >= greedy pass@1 + 0.15": sampled["all"].get(f"pass@{n}", 0) >= p1 + 0.15,
        "invalid answers <= 5 %": greedy["all"]["invalid"] <= 0.05
        and sampled["all"]["invalid"] <= 0.05,
    }


def evaluate_gate(
    workdir: str, per_k: int, n: int, ks: Sequence[int], which: str | int = "latest"
) -> dict[str, Any]:
    """Greedy and T=1 scores of the run's `which` parameters on the gate problems."""
    problems = gate_problems(per_k, ks=ks)
    policy = policy_lib.load_policy(workdir, which)
    greedy = policy_lib.score(problems, policy_lib.sample(policy, problems))
    texts = policy_lib.sample(policy, problems, n=n, temperature=1.0, seed=1)
    sampled = policy_lib.score(problems, texts, ks=(1, 4, n))
    checks = gate_checks(greedy, sampled, n)
    return dict(passed=all(checks.values()), checks=checks, greedy=greedy, sampled=sampled, n=n)


def gate_table(gate: dict[str, Any]) -> list[str]:
    """The gate's markdown: per-level scores, then each check."""
    n = gate["n"]
    rows = [
        [key, g["pass@1"], s["pass@1"], s[f"pass@{n}"], s[f"maj@{n}"], g["invalid"]]
        for key, g in gate["greedy"].items()
        for s in [gate["sampled"][key]]
    ]
    head = ["level", "greedy pass@1", "T=1 pass@1", f"T=1 pass@{n}", f"maj@{n}", "invalid"]
    lines = report_utils.md_table(head, rows, digits=3)
    lines += ["", f"Gate: **{'passed' if gate['passed'] else 'FAILED'}**", ""]
    lines += [f"- {'ok  ' if ok else 'FAIL'} {name}" for name, ok in gate["checks"].items()]
    if gate.get("tried"):
        lines += ["", f"Checkpoint chosen: step {gate['step']} (newest first: "]
        lines[-1] += (
            "; ".join(
                f"step {t['step']} greedy pass@1 {t['greedy']['pass@1']:.3f} "
                f"{'passed' if t['passed'] else 'failed'}"
                for t in gate["tried"]
            )
            + ")"
        )
    return lines


def build(workdir: str, variant: str, data_dir: str, gate: bool = True) -> dict[str, Any] | None:
    """Trains pi0 in `workdir` (resuming) and, with `gate`, checks the gate on its kept
    checkpoints, newest first, until one passes (the training length is the gate's
    budget knob, arith.md 0.4); writes gate.json / gate.md (with the chosen `step`, or
    the newest step's failing checks) and returns the gate dict. Runs that use pi0 read
    the step from gate.json (`base_spec`). Raises ConfigError for a user error."""
    from configs import arith as arith_config

    arg, per_k, n, ks = VARIANTS[variant]
    config = arith_config.get_config(f"{arg},data_dir={data_dir}")
    outcome = launch.run(config, workdir)
    if outcome.code != 0:
        raise config_lib.ConfigError(outcome.message.removeprefix("error: ") or "pi0 failed")
    if outcome.result["status"] == "preempted":
        raise PreemptedError(f"pi0 in {workdir} was interrupted; re-run to continue.")
    if not gate:
        return None
    path = os.path.join(workdir, "gate.json")
    if os.path.exists(path):
        return files.read_json(path)
    results = {}
    if not saved_steps(workdir):
        raise config_lib.ConfigError(f"{workdir} holds no checkpoint to gate.")
    for step in saved_steps(workdir)[::-1]:
        results[step] = evaluate_gate(workdir, per_k, n, ks, step)
        print(f"gate at step {step}: {'passed' if results[step]['passed'] else 'failed'}")
        if results[step]["passed"]:
            break
    step = next((s for s, r in results.items() if r["passed"]), None)
    tried = [
        dict(step=s, passed=r["passed"], greedy=r["greedy"]["all"]) for s, r in results.items()
    ]
    gate = dict(results[step if step else max(results)], step=step, tried=tried)
    files.atomic_write_json(path, gate)
    files.atomic_write_text(os.path.join(workdir, "gate.md"), "\n".join(gate_table(gate)) + "\n")
    return gate


def saved_steps(workdir: str) -> list[int]:
    """The finished checkpoint steps of a run, ascending."""
    folder = os.path.join(workdir, "checkpoints")
    return sorted(int(n) for n in os.listdir(folder) if n.isdigit())


def base_spec(base: str) -> str:
    """'WORKDIR:STEP' of the checkpoint pi0's gate chose (gate.json), else `base` as given
    (a bare WORKDIR means its latest checkpoint)."""
    if ":" in os.path.basename(base):
        return base
    gate = files.read_json(os.path.join(base, "gate.json"), {})
    if gate and not gate.get("step"):
        raise config_lib.ConfigError(
            f"pi0 in {base} failed its gate at every kept checkpoint (gate.md); retrain it, "
            f"or name a checkpoint: {base}:latest."
        )
    return f"{base}:{gate['step']}" if gate else base


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI (module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", required=True, help="pi0's run directory")
    p.add_argument("--variant", default="cpu", choices=sorted(VARIANTS))
    p.add_argument("--data_dir", default="runs/data", help="where the training JSONL goes")
    args = p.parse_args(argv)
    start = time.time()
    try:
        gate = build(args.workdir, args.variant, args.data_dir)
    except config_lib.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(gate_table(gate)))
    print(f"pi0 in {args.workdir} ({time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
