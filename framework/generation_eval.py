"""A generic generation evaluator (`kind='framework.generation_eval'`): sample N
completions per prompt with the shared sampler, verify each, and report

    accuracy     the fraction of all samples the verifier accepts
    pass@k       for each k in `k` (<= N), the unbiased estimator averaged over prompts
    maj@N        majority vote (if the verifier defines extract_answer): the fraction of
                 prompts whose most common answer is a correct one
    invalid      the fraction of samples with no answer (extract_answer returns None)

Config keys (besides EvaluatorBase's): prompts (a JSONL file; each line an object with
'prompt' and whatever the verifier reads, e.g. 'answer'), verifier (a module path
defining `is_correct(record, text) -> bool` and optionally `extract_answer(text)`),
num_samples (N), k (a tuple), temperature, top_k, max_new_tokens, stop (stop strings),
max_prompts (0 = all), rows (rows per sampler chunk; 0 = the sampler's default),
fixed_rows (pad every chunk to exactly `rows`: one compiled program), seed.
Each prompt is prefilled once and its cache forked N ways (`generate(num_samples=N)`).
Every sample is written to `<workdir>/eval/<name>/<step>.jsonl` with its verdict and
answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np

from data import examples
from framework import config as config_lib, eval_metrics, evaluators, sampling
from framework.config import ConfigError


class Evaluator(evaluators.EvaluatorBase):
    """Samples, verifies and scores (see the module docstring)."""

    def __init__(
        self, name: str, cfg: ml_collections.ConfigDict, task: Any, ctx: evaluators.EvalContext
    ) -> None:
        super().__init__(name, cfg, task, ctx)
        where = f"evals.{name}"
        if not cfg.get("verifier"):
            raise ConfigError(f"{where}.verifier is not set; name a verifier module.")
        self.verifier = config_lib.load_module(str(cfg.verifier), f"{where}.verifier")
        if not callable(getattr(self.verifier, "is_correct", None)):
            raise ConfigError(
                f"{where}.verifier={cfg.get('verifier')!r} defines no is_correct(record, text)."
            )
        try:
            records = [r for _, r in examples.read_records(str(cfg.get("prompts", "")))]
            for n, r in enumerate(records, start=1):
                examples.field(r, "prompt", (str,), f"{cfg.get('prompts')}:{n}")
        except examples.DataError as e:
            raise ConfigError(f"{where}.prompts: {e}") from None
        self._check(cfg, where)
        self.records = records[: int(cfg.get("max_prompts", 0)) or None]
        self.n = int(cfg.get("num_samples", 1))
        self.ks = tuple(int(k) for k in cfg.get("k", (1,)))
        stop = cfg.get("stop", ())
        self.knobs = dict(
            temperature=float(cfg.get("temperature", 1.0)),
            top_k=int(cfg.get("top_k", 0)),
            max_new_tokens=int(cfg.get("max_new_tokens", 64)),
            stop_strings=(stop,) if isinstance(stop, str) else tuple(stop),
        )
        self.rows = int(cfg.get("rows", 0)) or None  # None: the sampler's default
        self.fixed_rows = bool(cfg.get("fixed_rows", False)) and self.rows is not None
        self.seed = int(cfg.get("seed", 0))

    @staticmethod
    def _check(cfg: ml_collections.ConfigDict, where: str) -> None:
        """ConfigError now (not at the first evaluation, after training) for settings
        that can only be mistakes."""
        n = cfg.get("num_samples", 1)
        ks = cfg.get("k", (1,))
        if not isinstance(ks, (list, tuple)) or not all(isinstance(k, int) for k in ks):
            raise ConfigError(f"{where}.k={ks!r} must be a list of integers, e.g. (1, 4).")
        if not isinstance(n, int) or n < 1 or any(not 1 <= k <= n for k in ks):
            raise ConfigError(
                f"{where}: num_samples={n!r} must be >= 1 and every k in {tuple(ks)} "
                "between 1 and it (pass@k needs k samples)."
            )
        for key, least in (("max_new_tokens", 1), ("rows", 0), ("max_prompts", 0)):
            if int(cfg.get(key, least)) < least:
                raise ConfigError(f"{where}.{key}={cfg.get(key)} must be >= {least}.")
        try:
            sampling.check_knobs(float(cfg.get("temperature", 1.0)), int(cfg.get("top_k", 0)), 1.0)
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None

    def _sample(self, model: Any, prompts: Sequence[str]) -> list[str]:
        """N texts per prompt, prompt-major: each prompt prefilled once, its cache forked
        N ways; the sampler chunks rows (`rows`, or its default) into bucketed batches."""
        out = sampling.generate(
            model,
            self.task.tokenizer,
            list(prompts),
            num_samples=self.n,
            max_rows=self.rows,
            fixed_rows=self.fixed_rows,
            rng=self.seed,
            **self.knobs,
        )
        return list(out.texts)

    def __call__(self, params: Any) -> dict[str, float]:
        """Samples N per prompt (prompt-major rows), verifies, scores, writes samples."""
        model = self.ctx.merge(params)
        texts = self._sample(model, [r["prompt"] for r in self.records])
        extract = getattr(self.verifier, "extract_answer", None)
        rows, correct, majority = [], [], []
        for p, record in enumerate(self.records):
            mine = texts[p * self.n : (p + 1) * self.n]
            verdicts = [bool(self.verifier.is_correct(record, t)) for t in mine]
            answers = [extract(t) for t in mine] if extract else [None] * self.n
            correct.append(verdicts)
            if extract:
                vote = eval_metrics.majority_vote(answers)
                majority.append(vote is not None and verdicts[answers.index(vote)])
            rows += [
                dict(prompt=p, sample=i, text=t, correct=v, answer=_jsonable(a))
                for i, (t, v, a) in enumerate(zip(mine, verdicts, answers))
            ]
        self.write_outputs(rows)
        out = {"accuracy": float(np.mean(correct))}
        out.update({f"pass@{k}": eval_metrics.mean_pass_at_k(correct, k) for k in self.ks})
        if extract:
            out[f"maj@{self.n}"] = float(np.mean(majority))
            out["invalid"] = float(np.mean([r["answer"] is None for r in rows]))
        return out


def _jsonable(answer: Any) -> Any:
    return answer if answer is None or isinstance(answer, int | float | str | bool) else str(answer)
