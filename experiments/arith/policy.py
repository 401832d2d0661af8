"""Policies on the arithmetic task family: load a trained LM run, sample solutions for
problems with the shared sampler, and score them per difficulty (steps k).

Shared by the arithmetic papers (the base-policy gate, ReST^EM, test-time compute):

    policy = load_policy("runs/arith_base")
    texts = sample(policy, problems, n=16, temperature=1.0)   # 16 per problem
    metrics = score(problems, texts, ks=(1, 4, 16))           # pass@k, maj@n, invalid
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from data import arith
from framework import eval_metrics, sampling


@dataclasses.dataclass(frozen=True)
class Policy:
    """A trained LM ready to sample: its model (params merged), tokenizer and mesh."""

    model: Any
    tokenizer: Any
    mesh: Any
    workdir: str = ""


def load_policy(workdir: str, which: str | int = "latest") -> Policy:
    """The LM run at `workdir` with its `which` parameters ('latest', 'best' or a step),
    built from its saved config without its data pipeline (which may be large) on this
    program's devices; ConfigError if it is not a language-model run."""
    from flax import nnx

    from data import tokenizers
    from framework import checkpoint, config as config_lib, sharding
    from models import transformer

    config, params = checkpoint.load_params(workdir, which)
    if config.task != "framework.tasks.lm":
        raise config_lib.ConfigError(
            f"{workdir!r} is a {config.task} run, not a language model; give an LM run."
        )
    model_config = transformer.TransformerConfig(**config.model.to_dict())
    abstract = nnx.eval_shape(lambda: transformer.Transformer(model_config, rngs=nnx.Rngs(0)))
    graphdef = nnx.split(abstract, nnx.Param, ...)[0]
    tokenizer = tokenizers.make_tokenizer(config.data.tokenizer, config.data.sentencepiece_model)
    mesh = sharding.make_mesh(dict(data=-1, fsdp=1, tensor=1, rules="dp"))
    return Policy(nnx.merge(graphdef, params), tokenizer, mesh, workdir)


def token_budget(problems: Sequence[arith.Problem]) -> int:
    """New tokens a solution may take: the longest gold solution among `problems` plus
    half again (room for a wrong, longer one) and its EOS."""
    return int(1.5 * max(len(p.solution.encode()) for p in problems)) + 2


def sample(
    policy: Policy,
    problems: Sequence[arith.Problem],
    *,
    n: int = 1,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
    max_rows: int | None = None,
    max_new_tokens: int = 0,
) -> list[list[str]]:
    """`n` completions of each problem's prompt (temperature 0: greedy), problem-major.
    max_new_tokens: 0 = token_budget(problems). Pass one max_new_tokens and one max_rows
    (every chunk is then padded to exactly max_rows) to all the calls of an experiment and
    they share compiled programs."""
    out = sampling.generate(
        policy.model,
        policy.tokenizer,
        [p.prompt for p in problems],
        max_new_tokens=max_new_tokens or token_budget(problems),
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        rng=seed,
        mesh=policy.mesh,
        num_samples=n,
        max_rows=max_rows,
        fixed_rows=max_rows is not None,
    )
    texts = list(out.texts)
    return [texts[i * n : (i + 1) * n] for i in range(len(problems))]


def _scores(
    problems: Sequence[arith.Problem], texts: Sequence[Sequence[str]], ks: Sequence[int]
) -> dict[str, float]:
    correct = [[arith.is_correct(p, t) for t in ts] for p, ts in zip(problems, texts)]
    n = len(texts[0])
    out = {"n": float(len(problems)), "accuracy": float(np.mean(correct))}
    out.update({f"pass@{k}": eval_metrics.mean_pass_at_k(correct, k) for k in ks if k <= n})
    answers = [[arith.extract_answer(t) for t in ts] for ts in texts]
    votes = [eval_metrics.majority_vote(a) for a in answers]
    out[f"maj@{n}"] = float(
        np.mean([v is not None and v == p.answer for v, p in zip(votes, problems)])
    )
    out["invalid"] = float(np.mean([a is None for row in answers for a in row]))
    return out


def score(
    problems: Sequence[arith.Problem],
    texts: Sequence[Sequence[str]],
    ks: Sequence[int] = (1,),
) -> dict[str, dict[str, float]]:
    """Metrics over all problems ('all') and per steps k ('k=1', ...): accuracy (the mean
    over samples), unbiased pass@k for each k <= n, maj@n (the most common answer is
    right) and invalid (the fraction of samples without an `A:` answer)."""
    if len(problems) != len(texts) or not problems:
        raise ValueError(f"{len(problems)} problems but {len(texts)} sample lists.")
    out = {"all": _scores(problems, texts, ks)}
    for k in sorted({p.k for p in problems}):
        idx = [i for i, p in enumerate(problems) if p.k == k]
        out[f"k={k}"] = _scores([problems[i] for i in idx], [texts[i] for i in idx], ks)
    return out
