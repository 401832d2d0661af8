"""The ReST^EM loop's steps (Singh et al. 2023, Algorithm 1) on the arithmetic tasks.

- E-step (`e_step`): N samples per training question from the current policy
  (temperature 0.7, top-k 40), each verified; all are written to samples.jsonl with their
  verdict and whether the oracle step labels call a correct one a false positive.
- Filter (`keep`): the correct samples, at most `cap` per question (0: no cap), in
  question order, as prompt/completion examples (the loss is on the solution only).
- M-step (`m_step_config`): fine-tune from `init` (pi0 for ReST^EM: reset to the base
  every iteration; the previous iterate for ReST) on those examples, evaluating greedy
  validation reward every `eval_every` steps, keeping the best parameters and stopping
  after `patience` evaluations without improvement.

Every step writes its outputs atomically and is skipped when they exist, so a killed
run re-run continues.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np

from data import arith
from experiments.arith import policy as policy_lib
from framework import checkpoint, config as config_lib, files

E_TEMPERATURE, E_TOP_K = 0.7, 40  # the paper's Generate settings
ANSWER_LINE = re.compile(r"A: -?\d+", re.ASCII)


def params_hash(workdir: str, which: str | int = "latest") -> str:
    """sha256 (first 16 hex digits) of a run's parameters: every path and its bytes."""
    import jax

    _, params = checkpoint.load_params(workdir, which)
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        h.update(jax.tree_util.keystr(path).encode())
        h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()[:16]


def e_step(
    policy_dir: str,
    which: str | int,
    questions: Sequence[arith.Problem],
    path: str,
    *,
    n: int,
    seed: int,
    max_new_tokens: int = 0,
    max_rows: int | None = None,
) -> list[dict[str, Any]]:
    """Samples `n` solutions per question from the run `policy_dir` (its `which`
    parameters) and writes them to `path` (JSONL); returns the rows (read back when the
    file exists). Row: q (question index), text, correct, false_positive."""
    if os.path.exists(path):
        return files.read_jsonl(path)
    policy = policy_lib.load_policy(policy_dir, which)
    texts = policy_lib.sample(
        policy,
        questions,
        n=n,
        temperature=E_TEMPERATURE,
        top_k=E_TOP_K,
        seed=seed,
        max_new_tokens=max_new_tokens,
        max_rows=max_rows,
    )
    rows = []
    for q, (problem, mine) in enumerate(zip(questions, texts)):
        for text in mine:
            ok = arith.is_correct(problem, text)
            rows.append(
                dict(
                    q=q,
                    text=text,
                    correct=ok,
                    false_positive=ok and arith.is_false_positive(problem, text),
                )
            )
    files.atomic_write_jsonl(path, rows)
    return rows


def kept_rows(rows: Sequence[dict[str, Any]], cap: int) -> list[dict[str, Any]]:
    """The correct samples whose answer line is exactly `A: <integer>`, at most `cap` per
    question (0: all), in sample order."""
    taken: dict[int, int] = {}
    out = []
    for r in rows:
        if not r["correct"] or (cap and taken.get(r["q"], 0) >= cap):
            continue
        if not ANSWER_LINE.fullmatch(through_answer(r["text"]).rsplit("\n", 2)[-2]):
            continue  # e.g. 'A:97' or 'A: 97 apples': right, but not the format taught
        taken[r["q"]] = taken.get(r["q"], 0) + 1
        out.append(r)
    return out


def keep(
    rows: Sequence[dict[str, Any]], questions: Sequence[arith.Problem], cap: int
) -> list[dict[str, Any]]:
    """kept_rows as prompt/completion examples (the completion through its answer line)."""
    return [
        dict(prompt=questions[r["q"]].prompt, completion=through_answer(r["text"]))
        for r in kept_rows(rows, cap)
    ]


def through_answer(text: str) -> str:
    """`text` up to and including its first `A:` line (and that line's newline): what a
    kept sample teaches, without whatever a sample cut at its token budget ran on into."""
    lines = text.split("\n")
    end = next((i for i, line in enumerate(lines) if line.startswith("A:")), len(lines) - 1)
    return "\n".join(lines[: end + 1]) + "\n"


def gold_examples(questions: Sequence[arith.Problem]) -> list[dict[str, str]]:
    """One gold solution per question (the SFT baseline's data)."""
    return [dict(prompt=p.prompt, completion=p.solution) for p in questions]


def write_examples(examples: Sequence[dict[str, Any]], path: str) -> None:
    """Examples JSONL for the trainer (`data.format='examples'`), atomically."""
    files.atomic_write_jsonl(path, examples)


def e_step_stats(rows: Sequence[dict[str, Any]], cap: int, n_questions: int) -> dict:
    """Sample accuracy, questions with a correct sample, kept count, and the false-positive
    rate (right answer, some wrong step) among all correct and among the kept samples."""
    correct = [r for r in rows if r["correct"]]
    kept = kept_rows(rows, cap)
    return dict(
        samples=len(rows),
        sample_accuracy=len(correct) / max(len(rows), 1),
        questions_solved=len({r["q"] for r in correct}) / max(n_questions, 1),
        kept=len(kept),
        false_positive_rate=sum(r["false_positive"] for r in kept) / max(len(kept), 1),
        false_positive_rate_correct=sum(r["false_positive"] for r in correct)
        / max(len(correct), 1),
    )


def m_step_config(
    base_dir: str,
    init: str,
    examples_path: str,
    val_path: str,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    eval_every: int,
    patience: int,
    max_new_tokens: int,
    rows: int = 0,
    compilation_cache: str = "",
) -> ml_collections.ConfigDict:
    """The M-step's config: pi0's saved config (same model and tokenizer) fine-tuned from
    `init` ('WORKDIR[:best|latest]') on `examples_path`, early-stopped on greedy
    validation reward (evals.reward: framework.generation_eval with data.arith)."""
    c = config_lib.saved_config(base_dir)
    c.data.update(
        dict(format="examples", path=os.path.abspath(examples_path), prepare="", prepare_spec="")
    )
    c.data.val_fraction = 0.0  # selection is by validation reward, not a held-out loss
    c.train.update(
        dict(
            init_from=init,
            total_steps=steps,
            batch_size=batch_size,
            eval_every_steps=eval_every,
            checkpoint_every_steps=eval_every,
            log_every_steps=max(1, eval_every // 2),
            best_metric="reward/accuracy",
            best_mode="max",
            early_stop_patience=patience,
            plot_losses=False,
            compilation_cache=compilation_cache,
        )
    )
    c.optimizer.lr = lr
    c.schedule.update(dict(warmup_steps=max(1, steps // 20), final_lr_fraction=1.0))
    with c.unlocked():
        del c.evals["val"]
        c.evals.reward = dict(
            kind="framework.generation_eval",
            prompts=os.path.abspath(val_path),
            verifier="data.arith",
            num_samples=1,
            k=(1,),
            temperature=0.0,
            max_new_tokens=max_new_tokens,
            rows=rows,
            fixed_rows=bool(rows),
        )
    return c
