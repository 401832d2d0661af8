"""The long-context evaluations of one trained run, written to RUN/long_context.json.

- needle grid: recall (exact match, greedy) per prompt length x needle depth, over
  `trials` prompts per cell (each its own needle and haystack offset) in the evaluation
  part of the haystack corpus; lengths within and beyond the trained length (RoPE
  positions past it are allowed);
- multi-needle: recall vs number of needles at one length (needles at random depths,
  one of them asked at random);
- NLL vs position: windows of `nll_len` tokens of held-out text (each from a line start
  inside a file, not at its header) scored in one forward pass; the mean NLL per
  position, its cumulative average and the power-law fit (position_nll.py);
- expert load: each MoE layer's per-expert load f_e / (k/E) on validation text.
Deterministic given the run and the settings; a finished file is not recomputed.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

from experiments.long_context_moe import needle, position_nll
from framework import decoding, files, sampling
from framework.sample import load_run
from models import moe

RESULT = "long_context.json"


def run_dirs(folder: str) -> list[str]:
    """The finished runs below a sweep folder (those with a result.json), sorted."""
    if not os.path.isdir(folder):
        return []
    return sorted(
        os.path.join(folder, n)
        for n in os.listdir(folder)
        if os.path.exists(os.path.join(folder, n, "result.json"))
    )


def needle_prompts(corpus: str, length: int, count: int, depths, seed: int) -> tuple[str, str]:
    """(prompt, answer) with `count` needles at `depths` (None: random), one asked."""
    rng = random.Random(seed)
    needles = needle.random_needles(count, rng)
    depths = depths if depths is not None else [rng.random() for _ in needles]
    offset = rng.randrange(max(1, len(corpus) - 2 * length))
    return needle.make_prompt(corpus, needles, depths, length, rng.randrange(count), offset)


def recall(model, tokenizer, cases: Sequence[tuple[str, str]]) -> np.ndarray:
    """Greedy exact match per (prompt, answer), all prompts in one sampler call."""
    out = sampling.generate(
        model, tokenizer, [p for p, _ in cases], max_new_tokens=6, temperature=0.0, max_rows=32
    )
    return np.array([needle.score(t, a) for t, (_, a) in zip(out.texts, cases, strict=True)])


def answer_nll(model, tokenizer, cases: Sequence[tuple[str, str]]) -> list[float]:
    """Mean teacher-forced NLL of each answer digit, prompt and answer scored in one pass
    (equal-length prompts and answers): ln 10 = 2.30 is a guess among the digits, near 0
    is retrieval (and only digits 2-5 low is copying once the number has started)."""
    rows = np.stack([sampling.prompt_ids(tokenizer, p + a) for p, a in cases]).astype(np.int32)
    graphdef, params = nnx.split(model)
    logp_BT = np.asarray(decoding.score_tokens(graphdef, params, rows))
    return (-logp_BT[:, -len(cases[0][1]) :]).mean(axis=0).tolist()


def needle_tables(model, tokenizer, corpus: str, s: dict[str, Any]) -> dict[str, Any]:
    """The single-needle grid [lengths, depths], the multi-needle curve (one recall per
    count at s['multi_length']), `trials` prompts per cell, and the answer digits' NLL
    over `trials` single-needle prompts at s['multi_length']."""
    cells = [(length, 1, [depth]) for length in s["needle_lengths"] for depth in s["depths"]] + [
        (s["multi_length"], n, None) for n in s["counts"]
    ]
    cases = [
        needle_prompts(corpus, length, count, depths, seed=1000 * c + t)
        for c, (length, count, depths) in enumerate(cells)
        for t in range(s["trials"])
    ]
    hits = recall(model, tokenizer, cases).reshape(len(cells), s["trials"]).mean(axis=1)
    grid = len(s["needle_lengths"]) * len(s["depths"])
    single = [
        needle_prompts(corpus, s["multi_length"], 1, None, seed=10**6 + t)
        for t in range(s["trials"])
    ]
    return dict(
        needle_grid=hits[:grid].reshape(len(s["needle_lengths"]), len(s["depths"])).tolist(),
        multi_needle=hits[grid:].tolist(),
        answer_nll=answer_nll(model, tokenizer, single),
    )


def windows_tokens(tokenizer, docs: Sequence[str], length: int, count: int) -> np.ndarray:
    """[N <= count, length] token ids (BOS first) of windows of held-out text, each starting
    at a line start past its document's first `length` characters (so no window starts
    at a file's predictable header), taken round-robin over the documents so that they
    come from as many files as possible; deterministic."""
    per_doc = []
    for d in docs:
        starts, at = [], d.find("\n", length) + 1
        while at > 0 and at + length <= len(d):
            starts.append(at)
            at = d.find("\n", at + length) + 1
        per_doc.append([d[a : a + length] for a in starts])
    rows = []
    for k in range(max((len(w) for w in per_doc), default=0)):
        for w in per_doc:
            if k < len(w) and len(rows) < count:
                ids = sampling.prompt_ids(tokenizer, w[k])[:length]
                if len(ids) == length:
                    rows.append(ids)
    if not rows:
        raise ValueError(f"no held-out document has a {length}-character window; lower nll_len.")
    return np.stack(rows).astype(np.int32)


def position_curve(model, tokens_NT: np.ndarray, fit_upto: int, batch: int = 8) -> dict[str, Any]:
    """Mean NLL per predicted position 1..T-1, its cumulative average, and the power-law
    fit of the cumulative average over positions 1..fit_upto (the trained length)."""
    graphdef, params = nnx.split(model)
    nll = []
    for start in range(0, len(tokens_NT), batch):
        logp_BT = decoding.score_tokens(graphdef, params, tokens_NT[start : start + batch])
        nll.append(-np.asarray(logp_BT))  # [B, T-1]: positions 1..T-1
    nll_NT = np.concatenate(nll)
    cumulative = position_nll.cumulative_nll(nll_NT)
    x = np.arange(1, fit_upto + 1)
    return dict(
        windows=len(nll_NT),
        nll=nll_NT.mean(0).tolist(),
        cumulative=cumulative.tolist(),
        fit_upto=fit_upto,
        fit=position_nll.fit_power_law(x, cumulative[:fit_upto]),
    )


def expert_load(model, tokens_NT: np.ndarray, batch: int = 8) -> list[list[float]] | None:
    """Mean per-expert load [L, E] (None for a dense model), deterministic routing."""
    if not model.cfg.moe_experts:
        return None
    graphdef, params = nnx.split(model)

    @jax.jit
    def load(params, tokens_BT):
        _, out = nnx.merge(graphdef, params)(tokens_BT, return_aux=True)
        return out[moe.LOAD]

    loads = [
        np.asarray(load(params, tokens_NT[s : s + batch])) for s in range(0, len(tokens_NT), batch)
    ]
    layers = [model.cfg.is_moe_layer(i) for i in range(model.cfg.num_layers)]
    return np.mean(loads, axis=0)[np.array(layers)].tolist()


NEEDLE_KEYS = ("needle_lengths", "depths", "multi_length", "counts", "trials")


def evaluate(run_dir: str, settings: dict[str, Any], corpus: str, docs: Sequence[str]) -> dict:
    """Every evaluation of the run (module docstring), cached in RUN/long_context.json:
    the needle tables and the NLL/load part each recomputed only when their settings
    change."""
    path = os.path.join(run_dir, RESULT)
    cached = files.read_json(path) if os.path.exists(path) else {}
    if cached.get("settings") == settings:
        return cached
    model, tokenizer, _ = load_run(run_dir, settings.get("which", "latest"))
    s, old = settings, cached.get("settings", {})
    result: dict[str, Any] = {"settings": s}
    same = lambda keys: all(s.get(k) == old.get(k) for k in keys)
    if s.get("needle_lengths"):
        if same(NEEDLE_KEYS) and "needle_grid" in cached:
            result |= {k: cached[k] for k in ("needle_grid", "multi_needle", "answer_nll")}
        else:
            result |= needle_tables(model, tokenizer, corpus, s)
    tokens_NT = windows_tokens(tokenizer, docs, s["nll_len"], s["nll_docs"])
    result["position_nll"] = position_curve(model, tokens_NT, s["load_len"] - 1)
    result["expert_load"] = expert_load(model, tokens_NT[:, : s["load_len"]])
    files.atomic_write_json(path, result)
    return result
