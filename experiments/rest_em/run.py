"""ReST^EM on the arithmetic tasks, end to end: pi0, the iterations, the baselines, the
evaluations and the report.

    python -m experiments.rest_em.run --workdir=runs/rest_em [--variant=cpu|tiny]
        [--base=runs/arith_base]   # reuse a trained pi0 (default: train one in WORKDIR/base)

Methods (each a chain of E-step -> filter -> M-step, experiments/rest_em/loop.py):
  rest_em   I iterations; every M-step fine-tunes pi0 (reset to the base)
  rest      iterations 2..I continue from the previous iterate (iteration 1 is shared)
  sft_gold  one M-step on one gold solution per question            (cpu variant)
  x3        one iteration with 3x the samples per question        (cpu variant)
  no_cap    iteration 1's samples, every correct one kept          (cpu variant)
  small     ReST^EM on the first `small` questions only             (cpu variant)
Each resulting policy is evaluated on the test set (greedy pass@1 per k = 1..8; k = 7, 8
never trained), the training questions (pass@1 at T = 0.7), the word-problem transfer
set (greedy; the questions are all terse) and, for pi0 and the last iterates, pass@k
at T = 1, top-p 0.95 and majority vote. Everything is resumable: a killed run re-run
continues from the last finished step. The cpu variant takes about 45-60 minutes on
2 cores; tiny is for tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from data import arith
from experiments.arith import base as base_lib, policy as policy_lib
from experiments.rest_em import loop
from framework import config as config_lib, files, init_from, launch


@dataclasses.dataclass(frozen=True)
class Variant:
    """A scale of the experiment."""

    base: str  # experiments.arith.base variant for pi0
    questions: int  # |D_q|
    val: int
    test_per_k: int  # test problems at each k = 1..8
    transfer: int  # word problems, k = 1..6
    n: int  # E-step samples per question
    cap: int  # kept correct samples per question
    iterations: int
    steps: int  # M-step steps at most
    batch: int
    lr: float
    eval_every: int
    patience: int
    pass_k_n: int  # samples per test problem for pass@k curves
    train_eval: int  # training questions scored at T = 0.7
    methods: tuple[str, ...]
    small: int = 0  # |D_q| of the small-set run
    ks: tuple[int, ...] = tuple(range(1, 7))  # steps of questions (pi0 trained on 1..6)
    test_ks: tuple[int, ...] = tuple(range(1, 9))
    d: tuple[int, ...] = (1, 2)
    rows: int = 0  # > 0: every sampler chunk padded to this many rows (one program)
    hold_out: bool = True  # evaluation sets without pi0's training chains (make_data)


VARIANTS = {
    "cpu": Variant(
        "cpu", 1000, 100, 50, 200, 16, 10, 3, 200, 32, 3e-4, 25, 2, 16, 400,
        ("rest_em", "rest", "sft_gold", "x3", "no_cap", "small"), small=100,
    ),
    "tiny": Variant(
        "tiny", 12, 4, 2, 4, 4, 2, 2, 6, 8, 1e-3, 3, 1, 4, 6, ("rest_em", "rest"),
        ks=(1, 2), test_ks=(1, 2), d=(1,), rows=32, hold_out=False,
    ),
}  # fmt: skip
SEEDS = dict(test=303, val=202, transfer=404, questions=101)
SETS = "held out"  # make_data's: evaluation sets share no chain with each other, the
# questions or (hold_out) pi0's training problems


def make_data(workdir: str, v: Variant, base: str) -> dict[str, list[arith.Problem]]:
    """The question, validation, test and transfer sets (written once, then read).

    The sets are drawn held out (arith.generate's `exclude`), in this order: test, val,
    transfer, each without the chains of the sets before it and, with `v.hold_out`, of
    pi0's training problems (run `base`); then the questions, without the evaluation
    sets' chains (they may repeat pi0's training problems, as a fine-tuning set may
    repeat pre-training data). No chain repeats within a set."""
    draws = dict(
        test=lambda ex: base_lib.gate_problems(v.test_per_k, SEEDS["test"], v.test_ks, v.d, ex),
        val=lambda ex: arith.generate(v.val, seed=SEEDS["val"], k=v.ks, d=v.d, exclude=ex),
        transfer=lambda ex: arith.generate(
            v.transfer, seed=SEEDS["transfer"], k=v.ks, d=v.d, style="words", exclude=ex
        ),
        questions=lambda ex: arith.generate(
            v.questions, seed=SEEDS["questions"], k=v.ks, d=v.d, exclude=ex
        ),
    )
    os.makedirs(os.path.join(workdir, "data"), exist_ok=True)
    out: dict[str, list[arith.Problem]] = {}
    evaluation: set[arith.Chain] = set()  # the chains of the evaluation sets drawn so far
    pi0: set[arith.Chain] | None = None  # pi0's training chains, when a set is drawn
    for name, draw in draws.items():
        path = os.path.join(workdir, "data", f"{name}.jsonl")
        if not os.path.exists(path):
            if pi0 is None:
                pi0 = set(base_lib.training_chains(base)) if v.hold_out else set()
            exclude = evaluation if name == "questions" else evaluation | pi0
            try:
                arith.write_jsonl(draw(exclude), path)
            except ValueError as e:  # a space too small for a held-out set
                raise config_lib.ConfigError(f"the {name} set: {e}") from None
        try:
            out[name] = arith.read_jsonl(path)
        except ValueError as e:  # e.g. an edited file whose answers do not parse
            raise config_lib.ConfigError(f"{e} (or delete it to regenerate it)") from None
        evaluation.update(p.chain for p in out[name])
    return out


def overlaps(data: dict[str, list[arith.Problem]], base: str) -> dict[str, dict[str, int]]:
    """For each set: how many of its problems are chains of pi0's training problems, of
    the questions, or repeat within the set (all 0 for the held-out evaluation sets)."""
    pi0 = base_lib.training_chains(base)
    questions = {p.chain for p in data["questions"]}
    out = {}
    for name in ("test", "val", "transfer", "questions"):
        chains = [p.chain for p in data[name]]
        out[name] = dict(
            n=len(chains),
            pi0_training=sum(c in pi0 for c in chains),
            questions=sum(c in questions for c in chains) if name != "questions" else 0,
            repeats=len(chains) - len(set(chains)),
        )
    return out


class Experiment:
    """The runs of one workdir: each method's iterations, resumable (module docstring)."""

    def __init__(self, workdir: str, v: Variant, base: str) -> None:
        base, self.base_which = init_from.parse(base_lib.base_spec(base))
        task = config_lib.saved_config(base).task
        if task != "framework.tasks.lm":
            raise config_lib.ConfigError(
                f"{base!r} is a {task} run, not a language model; give pi0's workdir "
                "(experiments.arith.base)."
            )
        self.workdir, self.v, self.base = workdir, v, base
        self.data = make_data(workdir, v, base)
        self.budget = policy_lib.token_budget(self.data["test"])
        self.rows = v.rows or None

    def path(self, *parts: str) -> str:
        """A path under the workdir (its folder created)."""
        p = os.path.join(self.workdir, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def iteration(
        self, method: str, i: int, policy: tuple[str, str], init: str, *, n: int, cap: int,
        questions: Sequence[arith.Problem] | None = None, samples_from: str = "",
    ) -> str:  # fmt: skip
        """One E-step (from `policy` = (workdir, which)) and M-step (from `init`); returns
        the M-step's workdir. `samples_from` reuses another iteration's samples file."""
        qs = self.data["questions"] if questions is None else questions
        name = f"{method}/iter{i}"
        samples = samples_from or self.path(name, "samples.jsonl")
        rows = loop.e_step(
            *policy, qs, samples, n=n, seed=1000 * i + n, max_new_tokens=self.budget,
            max_rows=self.rows,
        )  # fmt: skip
        kept = loop.keep(rows, qs, cap)
        record = self.path(name, "estep.json")
        if not os.path.exists(record):
            stats = loop.e_step_stats(rows, cap, len(qs))
            stats.update(policy=f"{policy[0]}:{policy[1]}", policy_hash=loop.params_hash(*policy))
            stats.update(init=init, init_hash=loop.params_hash(*init_from.parse(init)))
            files.atomic_write_json(record, stats)
        return self.m_step(name, init, kept)

    def m_step(self, name: str, init: str, examples: Sequence[dict]) -> str:
        """Fine-tunes from `init` on `examples` in <name>/run (skipped when finished)."""
        run = os.path.join(self.workdir, name, "run")
        if not examples:
            raise config_lib.ConfigError(
                f"{name}: the E-step kept no correct sample, so there is nothing to fine-tune "
                "on; train pi0 longer (experiments.arith.base) or sample more."
            )
        data = self.path(name, "train.jsonl")
        if not os.path.exists(data):
            loop.write_examples(examples, data)
        config = loop.m_step_config(
            self.base, init, data, os.path.join(self.workdir, "data", "val.jsonl"),
            steps=self.v.steps, batch_size=self.v.batch, lr=self.v.lr,
            eval_every=self.v.eval_every, patience=self.v.patience,
            max_new_tokens=self.budget, rows=self.v.rows,
            compilation_cache=os.path.join(self.workdir, "jax_cache"),  # shared by all runs
        )  # fmt: skip
        outcome = launch.run(config, run)
        if outcome.code != 0:
            message = outcome.message.removeprefix("error: ") or "the M-step failed"
            raise config_lib.ConfigError(f"{name}: {message}")
        if outcome.result["status"] == "preempted":  # SIGTERM: never sample from it
            raise base_lib.PreemptedError(f"{name} was interrupted; re-run to continue.")
        return run

    def methods(self) -> dict[str, list[str]]:
        """Runs every method of the variant; {method: [policy workdir per iteration]}."""
        v, base = self.v, (self.base, self.base_which)
        pi0 = f"{self.base}:{self.base_which}"
        chains: dict[str, list[str]] = {}
        rest_em, prev = [], base
        for i in range(1, v.iterations + 1):
            rest_em.append(self.iteration("rest_em", i, prev, pi0, n=v.n, cap=v.cap))
            prev = (rest_em[-1], "best")
        chains["rest_em"] = rest_em
        if "rest" in v.methods:  # iteration 1 is ReST^EM's (same policy, same init)
            rest, prev = [rest_em[0]], (rest_em[0], "best")
            for i in range(2, v.iterations + 1):
                # Iteration 2 samples from iteration 1 like ReST^EM's (same seed): reuse them.
                same = os.path.join(self.workdir, "rest_em", "iter2", "samples.jsonl")
                reuse = dict(samples_from=same) if i == 2 else {}
                init = f"{prev[0]}:best"
                rest.append(self.iteration("rest", i, prev, init, n=v.n, cap=v.cap, **reuse))
                prev = (rest[-1], "best")
            chains["rest"] = rest
        if "sft_gold" in v.methods:
            gold = loop.gold_examples(self.data["questions"])
            chains["sft_gold"] = [self.m_step("sft_gold/iter1", pi0, gold)]
        if "x3" in v.methods:
            chains["x3"] = [self.iteration("x3", 1, base, pi0, n=3 * v.n, cap=v.cap)]
        if "no_cap" in v.methods:
            first = os.path.join(self.workdir, "rest_em", "iter1", "samples.jsonl")
            chains["no_cap"] = [
                self.iteration("no_cap", 1, base, pi0, n=v.n, cap=0, samples_from=first)
            ]
        if "small" in v.methods:
            qs, small, prev = self.data["questions"][: v.small], [], base
            for i in range(1, v.iterations + 1):
                small.append(self.iteration("small", i, prev, pi0, n=v.n, cap=v.cap, questions=qs))
                prev = (small[-1], "best")
            chains["small"] = small
        return chains

    def evaluate(
        self, name: str, run: str, which: str, pass_k: bool, questions: int = 0
    ) -> dict[str, Any]:
        """A policy's scores (cached in evals/<name>.json); the training-set score is over
        the first `questions` training questions (0: all), at most train_eval of them."""
        out = self.path("evals", f"{name}.json")
        if os.path.exists(out):
            return files.read_json(out)
        policy, d, v = policy_lib.load_policy(run, which), self.data, self.v
        train_qs = d["questions"][: questions or None][: v.train_eval]

        def scores(problems, ks=(1,), **knobs):
            texts = policy_lib.sample(
                policy, problems, max_new_tokens=self.budget, max_rows=self.rows, **knobs
            )
            return policy_lib.score(problems, texts, ks)

        result = dict(
            test=scores(d["test"]),
            transfer=scores(d["transfer"]),
            train_t07=scores(train_qs, temperature=0.7, seed=7),
        )
        if pass_k:
            result["pass_k"] = scores(
                d["test"], (1, 4, 16), n=v.pass_k_n, temperature=1.0, top_p=0.95, seed=11
            )
        files.atomic_write_json(out, result)
        return result


def check_experiment(workdir: str, variant: str, base: str) -> None:
    """Records what a workdir's files are made from (WORKDIR/experiment.json: the variant,
    pi0 as 'DIR:STEP' and how the sets are drawn) on its first run; ConfigError on a later
    run with other settings, whose data, samples and evaluations would otherwise be reused
    (a workdir from before the held-out sets has no 'sets' and is refused too)."""
    path = os.path.join(workdir, "experiment.json")
    want = dict(variant=variant, base=base, sets=SETS)
    have = files.read_json(path, None)
    if have is None:
        os.makedirs(workdir, exist_ok=True)
        files.atomic_write_json(path, want)
    elif have != want:
        differ = ", ".join(
            f"{k}={have.get(k)!r} (now {v!r})" for k, v in want.items() if have.get(k) != v
        )
        raise config_lib.ConfigError(
            f"{workdir} holds a run made with {differ}; use a new --workdir (or the same "
            "settings to continue it)."
        )


def run_all(workdir: str, variant: str, base: str = "", data_dir: str = "") -> dict[str, Any]:
    """pi0 (unless `base`), every method and every evaluation; writes results.json."""
    v = VARIANTS[variant]
    if not base:
        base = os.path.join(workdir, "base")
        data_dir = data_dir or os.path.join(workdir, "data")
        base_lib.build(base, v.base, data_dir, gate=v.base != "tiny")  # tiny: not gated
    exp = Experiment(workdir, v, base)
    check_experiment(workdir, variant, f"{os.path.abspath(exp.base)}:{exp.base_which}")
    chains = exp.methods()
    evals: dict[str, Any] = {"pi0": exp.evaluate("pi0", exp.base, exp.base_which, pass_k=True)}
    names: dict[str, str] = {}  # run -> the name it was first evaluated under
    for method, runs in chains.items():
        for i, run in enumerate(runs, start=1):
            last = i == len(runs) and method in ("rest_em", "rest")
            if run in names and (not last or "pass_k" in evals[names[run]]):
                evals[f"{method}/iter{i}"] = evals[names[run]]  # rest/iter1 = rest_em/iter1
                continue
            names.setdefault(run, f"{method}/iter{i}")
            own = v.small if method == "small" else 0  # its training questions
            evals[f"{method}/iter{i}"] = exp.evaluate(f"{method}_iter{i}", run, "best", last, own)
    estep = {}
    for method in chains:
        for i in range(1, len(chains[method]) + 1):
            p = os.path.join(workdir, method, f"iter{i}", "estep.json")
            if os.path.exists(p):
                estep[f"{method}/iter{i}"] = files.read_json(p)
    base = f"{exp.base}:{exp.base_which}"
    results = dict(
        variant=variant,
        config=dataclasses.asdict(v),
        base=base,
        evals=evals,
        estep=estep,
        overlaps=overlaps(exp.data, exp.base),
        # Held out, the short levels lose their 1-digit chains (pi0 trained on them all).
        test_two_digit={
            f"k={k}": sum(p.d == 2 for p in exp.data["test"] if p.k == k) for k in v.test_ks
        },
    )
    files.atomic_write_json(os.path.join(workdir, "results.json"), results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI (module docstring)."""
    from experiments.rest_em import report

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--variant", default="cpu", choices=sorted(VARIANTS))
    p.add_argument("--base", default="", help="a trained pi0 run to reuse")
    p.add_argument("--readme", default="", help="splice the report into this README")
    args = p.parse_args(argv)
    start = time.time()
    try:
        if os.path.exists(args.workdir) and not os.path.isdir(args.workdir):
            raise config_lib.ConfigError(
                f"--workdir {args.workdir!r} is a file; give a directory (new or a run's)."
            )
        if args.base and not os.path.isdir(init_from.parse(args.base)[0]):
            raise config_lib.ConfigError(f"--base {args.base!r} does not exist; train pi0 first.")
        run_all(args.workdir, args.variant, args.base)
    except config_lib.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except base_lib.PreemptedError as e:
        print(str(e))
        return 0
    report.main(
        [f"--workdir={args.workdir}"] + ([f"--readme={args.readme}"] if args.readme else [])
    )
    print(f"rest_em {args.variant} finished in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
