"""Batched, jitted KV-cache generation, scoring, beam search and next-token log-probs for
decoder LMs.

Every paper that generates text uses these functions; they take an NNX model with
``init_cache``/``decode`` (``models.transformer.Transformer``; ``Trainer.merge(params)``
gives one) and a ``data.tokenizers`` tokenizer. The jitted programs live in
framework/decoding.py; this module is the host side and the public API.

Padding and buckets. Prompts are *left*-padded to a bucket, the next power of two at or
above the longest prompt (at least ``MIN_BUCKET``), so every row's last prompt token sits
in the same cache slot and each decode step writes one slot index shared by all rows.
Each row's positions start at 0 at its first real token; padding slots hold position -1
and are never attended to, so a row's output does not depend on its batch-mates or on
its padding (up to float summation order). Rows are padded too, to the next power of two
(at most ``max_rows``) with copies of the chunk's first row that are dropped afterwards,
so batches of 5 and 7 rows run one program. Programs are compiled once per (model graph,
row bucket, prompt bucket, max_new_tokens): temperature, top-k, top-p, keys and stop ids
are traced values, so changing them never recompiles (only switching top-k/top-p
filtering on or off does); ``compile_counts()`` reports compiled programs. The decode
loop is a ``lax.while_loop`` that exits once every row ended; the cache grows in phases
as it fills (framework/decoding.py: attention reads every slot of the cache).

Volume. ``generate(..., num_samples=N)`` prefills each prompt once and forks its cache N
ways; rows are prompt-major (prompt 0's N samples, then prompt 1's, ...). Row r of the
R = len(prompts) * N rows uses key r of ``row_keys(rng, R)``, exactly as row r of the
flat batch of every prompt repeated N times, so the two give the same samples. More than
``max_rows`` rows (default ``default_max_rows``: a KV-cache budget, on CPU about a
last-level cache) run in chunks of ``max_rows``, with the same keys and the same prompt
bucket as one call would use.

Stops. A row ends on a stop token id (default: the tokenizer's EOS), on a token whose own
text contains a stop string, or when its newest tokens equal a stop string's encoding;
then the host cuts each text before the first stop string, which also catches a stop
string split across tokens in another way (then ``tokens``/``lengths`` are trimmed too,
and a kept state is taken back to the cut: the row's later slots hidden, its last kept
token fed again).

Continuing. ``generate(..., keep_state=True)`` returns a ``DecodeState`` (cache, next-token
logits, next position per row); ended rows stop writing visible cache slots, so it can be
continued (pass it as ``prompts``) or its rows copied with ``fork`` -- the building
blocks of step-level (PRM) beam and lookahead search.

Given tokens. ``next_token_logprobs(model, tokens_BT, lengths_B)`` is the full next-token
distribution after each row's prefix (one forward pass); ``feed``/``next_logprobs`` are
its incremental form on a ``DecodeState``. Both are deterministic functions of their
inputs' values and shapes, so an arithmetic coder that makes the same calls when
encoding and decoding gets bit-identical distributions.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from framework import decoding, token_text
from framework.decoding import (
    DecodeState,
    cache_shardings as cache_shardings,  # re-exported
    compile_counts as compile_counts,  # re-exported
    take_rows,
)

MIN_BUCKET = 16
MAX_ROWS = 256  # default_max_rows never exceeds this
# default_max_rows keeps one chunk's KV cache within a budget, on CPU about a last-level
# cache: each decode step reads the whole cache. Measured (benchmarks/sampling.py, 2 cores,
# d_model 128 x 4 layers, 4 KiB per slot and row): per-token step at 320 slots 112 us at
# batch 32 (40 MiB), 190-200 us at 64-256; 256 rows 9.0k tokens/s in chunks of 16 vs 6.5k
# in one; 158 us at batch 4 (weight matmuls not amortised), hence CPU_MIN_ROWS.
CPU_CACHE_BUDGET_BYTES = 32 << 20
CPU_MIN_ROWS = 8
Prompt = str | Sequence[int] | np.ndarray


@dataclasses.dataclass(frozen=True)
class SampleOutput:
    """Generated tokens per row; positions past a row's length hold pad / 0."""

    tokens: np.ndarray  # int32 [B, max_new_tokens]
    logprobs: np.ndarray  # float32 [B, N]: log p(token) under the model (T=1, unfiltered)
    lengths: np.ndarray  # int32 [B]: generated tokens, stop token included
    finished: np.ndarray  # bool [B]: ended on a stop (False: ran out of max_new_tokens)
    texts: list[str]  # decoded generated tokens, cut before the first stop string
    state: DecodeState | None  # with keep_state=True: to continue generating or fork rows


@dataclasses.dataclass(frozen=True)
class ScoreOutput:
    """Log-likelihood of each continuation given its prompt."""

    total: np.ndarray  # float32 [B]: sum over the continuation's tokens
    token_logprobs: list[np.ndarray]  # per row, float32 [len(continuation)]


@dataclasses.dataclass(frozen=True)
class BeamOutput:
    """Beam hypotheses per prompt, best first (arrays are [B, W, ...])."""

    tokens: np.ndarray  # int32 [B, W, max_new_tokens]
    logprobs: np.ndarray  # float32 [B, W, N]
    scores: np.ndarray  # float32 [B, W]: sum log-prob / length**length_penalty
    lengths: np.ndarray  # int32 [B, W]
    finished: np.ndarray  # bool [B, W]
    texts: list[list[str]]


# ----------------------------------------------------------------------------- host helpers


def bucket_length(n: int, minimum: int = MIN_BUCKET) -> int:
    """The padded length for n tokens: the next power of two, at least `minimum`."""
    return max(minimum, 1 << max(0, math.ceil(math.log2(max(n, 1)))))


def row_bucket(n: int, max_rows: int) -> int:
    """The padded row count for n <= max_rows rows: the next power of two, at most max_rows."""
    return min(bucket_length(n, 1), max_rows)


def cache_budget_bytes() -> int:
    """KV-cache bytes for one chunk: CPU_CACHE_BUDGET_BYTES on CPU, else a quarter of the
    first device's memory (16 GiB when the backend does not report its memory)."""
    device = jax.devices()[0]
    if device.platform == "cpu":
        return CPU_CACHE_BUDGET_BYTES
    return (device.memory_stats() or {}).get("bytes_limit", 64 << 30) // 4


def default_max_rows(model: nnx.Module, slots: int) -> int:
    """Rows per chunk: the largest power of two whose KV cache of `slots` slots per row
    fits cache_budget_bytes(), at most MAX_ROWS (at least CPU_MIN_ROWS on CPU, else 1)."""
    cfg = model.cfg
    itemsize = jnp.dtype(cfg.dtype).itemsize
    row_bytes = 2 * cfg.num_layers * cfg.num_heads * cfg.resolved_head_dim * slots * itemsize
    fit = max(1, cache_budget_bytes() // max(row_bytes, 1))
    least = CPU_MIN_ROWS if jax.devices()[0].platform == "cpu" else 1
    return min(MAX_ROWS, max(least, 1 << (fit.bit_length() - 1)))


def prompt_ids(tokenizer: Any, prompt: Prompt, add_bos: bool = True) -> np.ndarray:
    """Token ids of a prompt; strings are encoded (BOS first if add_bos), ids kept as given."""
    if isinstance(prompt, str):
        ids = np.asarray(tokenizer.encode(prompt), np.int32)
        return np.concatenate([[tokenizer.bos_id], ids]).astype(np.int32) if add_bos else ids
    return np.asarray(prompt, np.int32).reshape(-1)


def row_keys(rng: int | jax.Array, batch: int) -> jax.Array:
    """One PRNG key per row: a seed or a key is split; a [B] key array is used as is."""
    if isinstance(rng, int | np.integer):
        rng = jax.random.key(int(rng))
    if not jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):  # raw uint32 key data
        rng = jax.random.wrap_key_data(rng)
    if rng.ndim == 0:
        return jax.random.split(rng, batch)
    if rng.shape != (batch,):
        raise ValueError(f"rng has shape {rng.shape}; pass one key, a seed, or [{batch}] keys.")
    return rng


def _check_positions(model: nnx.Module, longest: int) -> None:
    """Learned position tables bound positions by max_len; RoPE extrapolates."""
    cfg = model.cfg
    if cfg.position == "learned" and longest > cfg.max_len:
        raise ValueError(
            f"prompt + max_new_tokens reaches {longest} tokens but the model's learned "
            f"positions stop at max_len={cfg.max_len}; shorten the prompt or max_new_tokens."
        )


def _knobs(tokenizer: Any, model: nnx.Module, stop_tokens, stop_strings) -> dict[str, Any]:
    """Traced loop options shared by sampling and beam search: stop tables and pad id."""
    stop_V, stop_SK = token_text.stop_tables(
        tokenizer, model.cfg.vocab_size, stop_tokens, stop_strings
    )
    return dict(stop_V=stop_V, stop_SK=stop_SK, pad_id=np.int32(tokenizer.pad_id))


# ----------------------------------------------------------------------------- states


class _Prompts(NamedTuple):
    """Encoded prompts to prefill chunk by chunk, all in one prompt bucket."""

    ids: list[np.ndarray]  # int32 token ids per prompt
    T: int  # prompt bucket
    capacity: int  # cache slots right after prefill
    pad_id: int
    mesh: Mesh | None


def _encode(model, tokenizer, prompts, max_new_tokens, add_bos) -> tuple[list[np.ndarray], int]:
    """(token ids per prompt, their bucket), checked to leave room for max_new_tokens."""
    ids = [prompt_ids(tokenizer, p, add_bos) for p in prompts]
    if not ids or min(len(x) for x in ids) == 0:
        raise ValueError("generation needs at least one prompt, each with at least one token.")
    longest = max(len(x) for x in ids)
    _check_positions(model, longest + max_new_tokens)
    return ids, bucket_length(longest)


def _prefill_ids(graphdef, params, prompts: _Prompts, which: np.ndarray) -> DecodeState:
    """Prefills prompts.ids[i] for i in `which`, left-padded to the prompt bucket."""
    T = prompts.T
    tokens_BT = np.full((len(which), T), prompts.pad_id, np.int32)
    positions_BT = np.full((len(which), T), -1, np.int32)
    for b, i in enumerate(which):
        x = prompts.ids[i]
        tokens_BT[b, T - len(x) :] = x
        positions_BT[b, T - len(x) :] = np.arange(len(x))
    return decoding.prefill_program(
        graphdef, params, tokens_BT, positions_BT, capacity=prompts.capacity, mesh=prompts.mesh
    )


def prefill(
    model: nnx.Module,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    *,
    max_new_tokens: int,
    add_bos: bool = True,
    mesh: Mesh | None = None,
) -> DecodeState:
    """Encodes, left-pads to a bucket and runs the prompts in one pass (room for N more)."""
    ids, T = _encode(model, tokenizer, prompts, max_new_tokens, add_bos)
    source = _Prompts(ids, T, T + max_new_tokens, tokenizer.pad_id, mesh)
    return _prefill_ids(*nnx.split(model), source, np.arange(len(ids)))


def fork(state: DecodeState, n_or_rows: int | Sequence[int] | np.ndarray) -> DecodeState:
    """Copies cache rows: an int n repeats each row n times (row b -> rows b*n..b*n+n-1)."""
    B = state.logits.shape[0]
    if isinstance(n_or_rows, int | np.integer):
        if n_or_rows < 1:
            raise ValueError(f"fork needs n >= 1 copies of each row, got {n_or_rows}.")
        rows = np.repeat(np.arange(B), n_or_rows)
    else:
        rows = np.asarray(n_or_rows, np.int32)
    return take_rows(state, jnp.asarray(rows, jnp.int32))


def _ensure_room(state: DecodeState, max_new_tokens: int) -> DecodeState:
    """Grows the cache (to a power-of-two slot count) if N more tokens would not fit."""
    c = state.cache
    S, need = c["positions"].shape[1], int(c["index"]) + max_new_tokens
    if need <= S:
        return state
    return dataclasses.replace(state, cache=decoding.grow_cache(c, bucket_length(need)))


def _source(model, tokenizer, prompts, max_new_tokens, add_bos, mesh) -> tuple[Any, tuple]:
    """(prompts to prefill or a state with room for N tokens, the sampling loop's plan)."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 1.")
    if isinstance(prompts, DecodeState):
        _check_positions(model, int(prompts.next_pos.max()) + max_new_tokens)
        state = _ensure_room(prompts, max_new_tokens)
        return state, ((max_new_tokens, state.cache["positions"].shape[1]),)
    ids, T = _encode(model, tokenizer, prompts, max_new_tokens, add_bos)
    plan = decoding.growth_plan(T, max_new_tokens)
    return _Prompts(ids, T, plan[0][1], tokenizer.pad_id, mesh), plan


def _rows_state(graphdef, params, source, of_R: np.ndarray, bucket: int) -> tuple[Any, bool]:
    """(a state whose row r continues source row of_R[r], padded to `bucket` rows with
    copies of row 0; whether it was made here, so that the sampling loop may consume it)."""
    rows = np.concatenate([of_R, np.full(bucket - len(of_R), of_R[0])]).astype(np.int32)
    if isinstance(source, DecodeState):
        if np.array_equal(rows, np.arange(source.logits.shape[0])):
            return source, False
        return take_rows(source, jnp.asarray(rows)), True
    first, count = int(of_R[0]), int(of_R[-1]) + 1 - int(of_R[0])
    if count == len(of_R):  # one row per prompt: prefill exactly these rows
        return _prefill_ids(graphdef, params, source, rows), True
    which = np.arange(first, first + count)  # each prompt once, then fork
    which = np.concatenate([which, np.full(row_bucket(count, bucket) - count, first)])
    state = _prefill_ids(graphdef, params, source, which)
    return take_rows(state, jnp.asarray(rows - first)), True


def check_knobs(temperature: float, top_k: int, top_p: float) -> None:
    """Raises ValueError for sampling settings that can only be mistakes."""
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0 (0 is greedy).")
    if top_k < 0:
        raise ValueError(f"top_k={top_k} must be >= 0 (0 keeps every token).")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p={top_p} must be in (0, 1] (1 turns nucleus sampling off).")


# ----------------------------------------------------------------------------- sampling


def _fetch(out: tuple, n: int, keep_state: bool) -> tuple:
    """A chunk's (tokens, logprobs, lengths, finished) on the host and its state, first n rows."""
    tokens, logprobs, lengths, done, state = out
    host = tuple(np.array(x)[:n] for x in (tokens, logprobs, lengths, done))
    if keep_state and state.logits.shape[0] > n:
        state = take_rows(state, jnp.arange(n))
    return host + ((state if keep_state else None),)


def _rewind_host_cuts(model: nnx.Module, out: SampleOutput, lengths: np.ndarray) -> SampleOutput:
    """The kept state of rows that the host cut (a stop string the device did not match)
    taken back to the cut, as if generation had ended there; `lengths` before the cut."""
    cut_B = out.lengths < lengths
    if out.state is None or not cut_B.any():
        return out
    next_B = np.asarray(out.state.next_pos) - (lengths - out.lengths) * cut_B
    last_B = out.tokens[np.arange(len(cut_B)), np.maximum(out.lengths - 1, 0)]
    state = _ensure_room(out.state, 1)
    state = decoding.rewind_program(
        *nnx.split(model), state, jnp.asarray(next_B, jnp.int32), jnp.asarray(last_B)
    )
    return dataclasses.replace(out, state=state)


def _finish(tokenizer: Any, parts: list[tuple], stop_strings: Sequence[str]) -> SampleOutput:
    """Joins the chunks and cuts each row's text (and tokens) before its first stop string."""
    tokens, logprobs, lengths, stopped = (np.concatenate(x) for x in list(zip(*parts))[:4])
    texts = []
    for b in range(len(tokens)):
        text, cut = token_text.cut_at_stop(tokenizer, tokens[b, : lengths[b]], stop_strings)
        if cut < lengths[b]:
            stopped[b], lengths[b] = True, cut
            tokens[b, cut:], logprobs[b, cut:] = tokenizer.pad_id, 0.0
        texts.append(text)
    return SampleOutput(tokens, logprobs, lengths, stopped, texts, parts[-1][4])


def generate(
    model: nnx.Module,
    tokenizer: Any,
    prompts: Sequence[Prompt] | DecodeState,
    *,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    rng: int | jax.Array = 0,
    stop_tokens: Sequence[int] | None = None,
    stop_strings: Sequence[str] = (),
    add_bos: bool = True,
    mesh: Mesh | None = None,
    keep_state: bool = False,
    num_samples: int = 1,
    max_rows: int | None = None,
    fixed_rows: bool = False,
) -> SampleOutput:
    """Samples num_samples continuations of each prompt (or row of a DecodeState).

    Rows are prompt-major: row r continues prompt r // num_samples. temperature 0 is
    greedy; top_k 0 and top_p 1 disable those filters. `rng` is a seed or key, split into
    one key per output row (row r gets key r of row_keys(rng, R)), or R keys, so a row's
    sample depends only on its prompt and key, not on its batch, chunk or num_samples.
    Continuing a DecodeState from an integer seed folds each row's next position into
    its key, so successive calls with one seed do not repeat their draws (keys passed
    explicitly are used as given). stop_tokens=None stops on the tokenizer's EOS. Rows
    run in chunks of at most max_rows (default: default_max_rows); fixed_rows=True pads
    every chunk to exactly max_rows, so calls with any number of rows share one compiled
    program (else a chunk is padded to the next power of two). keep_state=True returns
    the DecodeState (the whole KV cache, on device); its rows run as one chunk (a given
    max_rows must hold them all).
    """
    check_knobs(temperature, top_k, top_p)
    if num_samples < 1 or (max_rows is not None and max_rows < 1):
        raise ValueError(f"num_samples={num_samples} and max_rows={max_rows} must be >= 1.")
    source, plan = _source(model, tokenizer, prompts, max_new_tokens, add_bos, mesh)
    count = source.logits.shape[0] if isinstance(source, DecodeState) else len(source.ids)
    R = count * num_samples
    if max_rows is None:  # keep_state: one chunk, since the state holds every row
        max_rows = bucket_length(R, 1) if keep_state else default_max_rows(model, plan[-1][1])
    if keep_state and max_rows < R:
        raise ValueError(f"keep_state needs all {R} rows in one chunk; raise max_rows.")
    knobs = _knobs(tokenizer, model, stop_tokens, stop_strings)
    knobs.update(
        temperature=np.float32(temperature), top_k=np.int32(top_k), top_p=np.float32(top_p)
    )
    knobs = jax.tree.map(jnp.asarray, knobs)
    opts = dict(plan=plan, filtering=bool(top_k > 0 or top_p < 1.0))
    keys_R, (graphdef, params) = row_keys(rng, R), nnx.split(model)
    if isinstance(source, DecodeState) and isinstance(rng, int | np.integer):
        pos_R = np.repeat(np.asarray(source.next_pos), num_samples)
        keys_R = jax.vmap(jax.random.fold_in)(keys_R, jnp.asarray(pos_R, jnp.uint32))
    parts, pending = [], None
    for start in range(0, R, max_rows):
        rows = np.arange(start, min(start + max_rows, R))
        bucket = max_rows if fixed_rows else row_bucket(len(rows), max_rows)
        state, made = _rows_state(graphdef, params, source, rows // num_samples, bucket)
        keys = keys_R[np.concatenate([rows, np.full(bucket - len(rows), start)])]
        loop = decoding.sample_loop_donating if made and len(plan) == 1 else decoding.sample_loop
        out = loop(graphdef, params, state, keys, knobs, **opts)
        if pending is not None:  # fetch the previous chunk while this one runs
            parts.append(_fetch(*pending))
        pending = (out, len(rows), keep_state)
    parts.append(_fetch(*pending))
    lengths = np.concatenate([p[2] for p in parts])
    return _rewind_host_cuts(model, _finish(tokenizer, parts, stop_strings), lengths)


# ----------------------------------------------------------------------------- search, scoring


def beam_search(
    model: nnx.Module,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    *,
    width: int,
    max_new_tokens: int = 64,
    length_penalty: float = 0.0,
    stop_tokens: Sequence[int] | None = None,
    stop_strings: Sequence[str] = (),
    add_bos: bool = True,
) -> BeamOutput:
    """Beam search: keeps the `width` best hypotheses by sum log-prob / length**penalty.

    Ended hypotheses stay in the beam with their score and compete with live ones;
    the search stops when all ended or after max_new_tokens. Width 1 is greedy. A stop
    string that only the host's text cut finds ends its hypothesis there afterwards
    (tokens trimmed, score recomputed, hypotheses re-sorted).
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 1.")
    state = prefill(model, tokenizer, prompts, max_new_tokens=max_new_tokens, add_bos=add_bos)
    B = state.logits.shape[0]
    if not 1 <= width <= model.cfg.vocab_size:
        raise ValueError(f"width={width} must be between 1 and the vocabulary size.")
    knobs = _knobs(tokenizer, model, stop_tokens, stop_strings) | {
        "alpha": np.float32(length_penalty)
    }
    out = decoding.beam_loop(
        *nnx.split(model),
        fork(state, width),
        jax.tree.map(jnp.asarray, knobs),
        width=width,
        max_new_tokens=max_new_tokens,
    )
    out = {k: np.array(out[k]) for k in ("cum", "length", "done", "tokens", "logprobs")}
    tokens = out["tokens"].reshape(B, width, -1)
    logprobs = out["logprobs"].reshape(B, width, -1)
    lengths, finished, cum = out["length"], out["done"], out["cum"]
    texts = [[""] * width for _ in range(B)]
    for b, w in np.ndindex(B, width):  # a stop only the host's text cut finds ends it there
        texts[b][w], cut = token_text.cut_at_stop(tokenizer, tokens[b, w, : lengths[b, w]],
                                                  stop_strings)  # fmt: skip
        if cut < lengths[b, w]:
            tokens[b, w, cut:], logprobs[b, w, cut:] = tokenizer.pad_id, 0.0
            lengths[b, w], finished[b, w] = cut, True
            cum[b, w] = logprobs[b, w, :cut].sum()
    scores = cum / np.maximum(lengths, 1).astype(np.float32) ** length_penalty
    order = np.argsort(-scores, axis=1, kind="stable")
    pick = lambda x: np.take_along_axis(x, order.reshape(order.shape + (1,) * (x.ndim - 2)), 1)
    tokens, logprobs, scores, lengths, finished = map(
        pick, (tokens, logprobs, scores, lengths, finished)
    )
    texts = [[texts[b][w] for w in order[b]] for b in range(B)]
    return BeamOutput(tokens, logprobs, scores, lengths, finished, texts)


def score(
    model: nnx.Module,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    continuations: Sequence[Prompt],
    *,
    add_bos: bool = True,
) -> ScoreOutput:
    """Log-likelihood of each continuation given its prompt, one full forward pass.

    Rows are right-padded to a bucket (causal attention never sees the padding).
    String continuations are encoded as they follow their string prompts (without BOS).
    """
    if len(prompts) != len(continuations) or not prompts:
        raise ValueError("score needs equally many (>= 1) prompts and continuations.")
    rows = []
    for p, c in zip(prompts, continuations):
        p_ids, c_ids = prompt_ids(tokenizer, p, add_bos), prompt_ids(tokenizer, c, False)
        if isinstance(p, str) and isinstance(c, str):  # c's ids as they follow p's
            c_ids = token_text.continuation_ids(tokenizer, p, c)
        if len(p_ids) == 0:
            raise ValueError("score needs at least one prompt token (e.g. add_bos=True).")
        rows.append((len(p_ids), len(c_ids), np.concatenate([p_ids, c_ids])))
    longest = max(len(r[2]) for r in rows)
    _check_positions(model, longest)
    T = bucket_length(longest)
    if longest <= model.cfg.max_len:  # the model rejects inputs longer than max_len
        T = min(T, model.cfg.max_len)
    tokens_BT = np.full((len(rows), T), tokenizer.pad_id, np.int32)
    for b, (_, _, ids) in enumerate(rows):
        tokens_BT[b, : len(ids)] = ids
    graphdef, params = nnx.split(model)
    logp_BT = np.asarray(decoding.score_tokens(graphdef, params, tokens_BT))
    per_token = [logp_BT[b, n_p - 1 : n_p - 1 + n_c] for b, (n_p, n_c, _) in enumerate(rows)]
    return ScoreOutput(np.array([x.sum() for x in per_token], np.float32), per_token)


# ----------------------------------------------------------------------------- given tokens


def next_token_logprobs(
    model: nnx.Module,
    tokens_BT: np.ndarray | Sequence[Sequence[int]],
    lengths_B: np.ndarray | Sequence[int],
    *,
    pad_to: int | None = None,
) -> np.ndarray:
    """log p(next token | tokens_BT[b, :lengths_B[b]]) for every row b: float32 [B, V].

    One causal forward pass over the rows right-padded to `pad_to` tokens (default: the
    bucket of the longest length, at most the model's max_len), rows padded to a power of
    two. Tokens at or after a row's length are replaced by 0 before the pass, so the result
    is a deterministic function of each row's prefix, its row index and these two padded
    shapes (and not of later tokens or, for the same shapes, of other rows): the same call
    at encode and decode time (same backend) gives bit-identical distributions.
    """
    tokens_BT = np.asarray(tokens_BT, np.int32)
    lengths_B = np.asarray(lengths_B, np.int32).reshape(-1)
    if tokens_BT.ndim != 2 or len(lengths_B) != len(tokens_BT) or not len(lengths_B):
        raise ValueError(
            f"need tokens [B, T] and lengths [B], got {tokens_BT.shape}, [{len(lengths_B)}]."
        )
    B, width = tokens_BT.shape
    longest, max_len = int(lengths_B.max()), model.cfg.max_len
    T = pad_to or min(bucket_length(longest), max_len)
    if lengths_B.min() < 1 or longest > min(width, T) or max_len < T:
        raise ValueError(
            f"lengths must be in [1, {min(width, T)}] (tokens {width} wide, padded to {T}) "
            f"and the padded width at most the model's max_len={max_len}."
        )
    rows = bucket_length(B, 1)
    keep_BT = np.arange(T)[None] < lengths_B[:, None]
    buf_BT = np.zeros((rows, T), np.int32)
    buf_BT[:B] = np.where(keep_BT, np.pad(tokens_BT[:, :T], ((0, 0), (0, max(0, T - width)))), 0)
    buf_BT[B:], lens_B = buf_BT[0], np.concatenate([lengths_B, np.full(rows - B, lengths_B[0])])
    graphdef, params = nnx.split(model)
    return np.asarray(decoding.last_logprobs(graphdef, params, buf_BT, lens_B))[:B]


def all_logprobs(model: nnx.Module, tokens_BT: np.ndarray) -> np.ndarray:
    """log p(token t+1 | tokens_BT[b, :t+1]) at every t, float32 [B, T, V], in one causal
    pass: for a fixed shape, a decoder that fills the unknown tail with any tokens gets
    the encoder's distributions bit for bit (what a model-driven coder needs)."""
    tokens_BT = np.asarray(tokens_BT, np.int32)
    if tokens_BT.ndim != 2 or tokens_BT.shape[1] > model.cfg.max_len:
        raise ValueError(
            f"need tokens [B, T] with T <= max_len={model.cfg.max_len}, got {tokens_BT.shape}."
        )
    return np.asarray(decoding.all_logprobs(*nnx.split(model), jnp.asarray(tokens_BT)))


def feed(
    model: nnx.Module, state: DecodeState, tokens_B: np.ndarray | Sequence[int]
) -> DecodeState:
    """Appends one given token per row (instead of a sampled one) and returns the new state.

    `state` is consumed: its device buffers are donated to the result (keep using the
    returned state). The cache grows to the next power of two when it is full. With
    `prefill`, this is the incremental form of next_token_logprobs (next_logprobs reads
    each row's distribution after the fed tokens): the same prefill and feeds give
    bit-identical distributions (close to next_token_logprobs', not bit-identical).
    """
    tokens_B = np.asarray(tokens_B, np.int32).reshape(-1)
    if len(tokens_B) != state.logits.shape[0]:
        raise ValueError(
            f"feed needs one token per row: {state.logits.shape[0]}, got {len(tokens_B)}."
        )
    _check_positions(model, int(state.next_pos.max()) + 1)
    state = _ensure_room(state, 1)
    return decoding.feed_program(*nnx.split(model), state, jnp.asarray(tokens_B))


def next_logprobs(state: DecodeState) -> np.ndarray:
    """float32 [B, V]: the log-probabilities of each row's next token after `state`."""
    return np.asarray(decoding.log_softmax_rows(state.logits))
