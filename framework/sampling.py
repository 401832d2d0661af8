"""Batched, jitted KV-cache generation, scoring and beam search for decoder LMs.

Every paper that generates text uses these functions; they take an NNX model with
``init_cache``/``decode`` (``models.transformer.Transformer``; ``Trainer.merge(params)``
gives one) and a ``data.tokenizers`` tokenizer.

Padding and buckets. Prompts are *left*-padded to a bucket, the next power of two at or
above the longest prompt (at least ``MIN_BUCKET``), so every row's last prompt token sits
in the same cache slot and each decode step writes one slot index shared by all rows.
Each row's positions start at 0 at its first real token; padding slots hold position -1
and are never attended to, so a row's output does not depend on its batch-mates or on
its padding (up to float summation order). The cache holds bucket + max_new_tokens slots.
Programs are compiled once per (model graph, batch, bucket, max_new_tokens): temperature,
top-k, top-p, keys and stop ids are traced values, so changing them never recompiles
(only switching top-k/top-p filtering on or off does); ``compile_counts()`` reports
compiled programs. The decode loop is a ``lax.while_loop`` that exits once every row ended.

Stops. A row ends on a stop token id (default: the tokenizer's EOS), on a token whose own
text contains a stop string, or when its newest tokens equal a stop string's encoding;
then the host cuts each text before the first stop string, which also catches a stop
string split across tokens in another way (then ``tokens``/``lengths`` are trimmed too).

Continuing. ``generate(..., keep_state=True)`` returns a ``DecodeState`` (cache, next-token
logits, next position per row); ended rows stop writing visible cache slots, so it can be
continued (pass it as ``prompts``) or its rows copied with ``fork`` -- the building
blocks of step-level (PRM) beam and lookahead search.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from framework import sharding
from models.kv_cache import CACHE_AXES

MIN_BUCKET = 16
Prompt = str | Sequence[int] | np.ndarray


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DecodeState:
    """A batch mid-generation: KV cache, next-token logits [B,V], next positions [B]."""

    cache: dict[str, Any]  # models.transformer KV cache (see CACHE_AXES)
    logits: jax.Array  # float32 [B, V]: next-token logits of each row
    next_pos: jax.Array  # int32 [B]: position of each row's next token


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


def cache_shardings(cache: Any, mesh: Mesh) -> Any:
    """NamedShardings for a KV cache: 'batch' over (data, fsdp), 'heads' over tensor."""
    table = {"batch": sharding.BATCH_AXES, "heads": ("tensor",)}

    def spec(names: tuple[str, ...], x: Any) -> NamedSharding:
        axes = [table.get(name) for name in names]
        sizes = [math.prod(mesh.shape[a] for a in axis or ()) for axis in axes]
        axes = [a if a and d % n == 0 else None for a, d, n in zip(axes, x.shape, sizes)]
        return NamedSharding(mesh, PartitionSpec(*axes))

    return {k: jax.tree.map(functools.partial(spec, CACHE_AXES[k]), v) for k, v in cache.items()}


def _check_positions(model: nnx.Module, longest: int) -> None:
    """Learned position tables bound positions by max_len; RoPE extrapolates."""
    cfg = model.cfg
    if cfg.position == "learned" and longest > cfg.max_len:
        raise ValueError(
            f"prompt + max_new_tokens reaches {longest} tokens but the model's learned "
            f"positions stop at max_len={cfg.max_len}; shorten the prompt or max_new_tokens."
        )


@functools.cache
def _token_texts(tokenizer: Any, vocab: int) -> tuple[str, ...]:
    """The text of every single token id (for stop-string containment)."""
    return tuple(tokenizer.decode([i]) for i in range(vocab))


def stop_tables(
    tokenizer: Any, vocab: int, stop_tokens: Sequence[int] | None, stop_strings: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(stop_V bool [V], stop_SK int32 [S, K]): single stop tokens and stop sequences.

    stop_SK rows are right-aligned encodings of stop strings; -1 is a wildcard (left pad)
    and an all -3 row never matches. S and K are padded to powers of two (>= 4, >= 1).
    """
    stop_V = np.zeros(vocab, bool)
    ids = [tokenizer.eos_id] if stop_tokens is None else list(stop_tokens)
    stop_V[[i for i in ids if 0 <= i < vocab]] = True
    seqs = []
    for s in stop_strings:
        if not s:
            raise ValueError("stop strings must be non-empty.")
        stop_V |= np.array([s in t for t in _token_texts(tokenizer, vocab)])
        enc = np.asarray(tokenizer.encode(s), np.int32)
        if len(enc) > 1:
            seqs.append(enc)
    K = bucket_length(max([len(q) for q in seqs], default=1), 1)
    stop_SK = np.full((bucket_length(len(seqs), 4), K), -3, np.int32)
    for i, q in enumerate(seqs):
        stop_SK[i] = -1
        stop_SK[i, K - len(q) :] = q
    return stop_V, stop_SK


def _knobs(tokenizer: Any, model: nnx.Module, stop_tokens, stop_strings) -> dict[str, Any]:
    """Traced loop options shared by sampling and beam search: stop tables and pad id."""
    stop_V, stop_SK = stop_tables(tokenizer, model.cfg.vocab_size, stop_tokens, stop_strings)
    return dict(stop_V=stop_V, stop_SK=stop_SK, pad_id=np.int32(tokenizer.pad_id))


def _cut_at_stop(tokenizer: Any, ids: np.ndarray, stop_strings: Sequence[str]) -> tuple[str, int]:
    """(text before the first stop string, tokens needed to reach it or len(ids))."""
    text = tokenizer.decode(ids)
    hits = [text.find(s) for s in stop_strings if s in text]
    if not hits:
        return text, len(ids)
    lo, hi = 1, len(ids)  # smallest prefix whose text contains a stop string
    while lo < hi:
        mid = (lo + hi) // 2
        prefix = tokenizer.decode(ids[:mid])
        lo, hi = (lo, mid) if any(s in prefix for s in stop_strings) else (mid + 1, hi)
    return text[: min(hits)], lo


# ----------------------------------------------------------------------------- jitted parts


@functools.partial(jax.jit, static_argnames=("graphdef", "capacity", "mesh"))
def _prefill(graphdef, params, tokens_BT, positions_BT, *, capacity, mesh=None):
    """Runs left-padded prompts into a fresh cache of `capacity` slots."""
    model = nnx.merge(graphdef, params)
    cache = model.init_cache(tokens_BT.shape[0], capacity)
    cache = jax.lax.optimization_barrier(cache)  # no constant folding of the empty cache
    if mesh is not None:
        cache = jax.lax.with_sharding_constraint(cache, cache_shardings(cache, mesh))
    logits_B1V, cache = model.decode(tokens_BT, positions_BT, cache, last_only=True)
    return DecodeState(cache, logits_B1V[:, 0], positions_BT.max(axis=1) + 1)


@jax.jit
def take_rows(state: DecodeState, rows_R: jax.Array) -> DecodeState:
    """A state whose row r is `state`'s row rows_R[r] (cache rows copied)."""
    c = state.cache
    k, v = jax.tree.map(lambda x: x[:, rows_R], (c["k"], c["v"]))
    cache = dict(k=k, v=v, positions=c["positions"][rows_R], index=c["index"])
    return DecodeState(cache, state.logits[rows_R], state.next_pos[rows_R])


def _choose(logits_BV, keys_B, knobs, filtering: bool):
    """Greedy when temperature == 0, else a sample after temperature, top-k and top-p."""
    temperature, top_k, top_p = knobs["temperature"], knobs["top_k"], knobs["top_p"]
    greedy_B = jnp.argmax(logits_BV, axis=-1)
    scaled_BV = logits_BV / jnp.where(temperature > 0, temperature, 1.0)
    if filtering:
        V = logits_BV.shape[-1]
        sorted_BV = -jnp.sort(-scaled_BV, axis=-1)
        kth_B = jnp.where(top_k > 0, sorted_BV[:, jnp.clip(top_k - 1, 0, V - 1)], -jnp.inf)
        probs_BV = jax.nn.softmax(sorted_BV, axis=-1)
        n_keep_B = jnp.maximum(((jnp.cumsum(probs_BV, -1) - probs_BV) < top_p).sum(-1), 1)
        pth_B = jnp.take_along_axis(sorted_BV, n_keep_B[:, None] - 1, axis=-1)[:, 0]
        threshold_B1 = jnp.maximum(kth_B, pth_B)[:, None]
        scaled_BV = jnp.where(scaled_BV >= threshold_B1, scaled_BV, -jnp.inf)
    sampled_B = jax.vmap(jax.random.categorical)(keys_B, scaled_BV)
    return jnp.where(temperature > 0, sampled_B, greedy_B).astype(jnp.int32)


def _stop_hit(token_B, recent_BK, stop_V, stop_SK):
    """(new recent window, whether each row's newest tokens end on a stop)."""
    recent_BK = jnp.concatenate([recent_BK[:, 1:], token_B[:, None]], axis=1)
    match_BSK = (stop_SK[None] == -1) | (recent_BK[:, None, :] == stop_SK[None])
    return recent_BK, stop_V[token_B] | match_BSK.all(-1).any(-1)


def _feed(graphdef, params, state: DecodeState, token_B, live_B) -> DecodeState:
    """Appends one token per live row; ended rows write an invisible slot, keep logits."""
    model = nnx.merge(graphdef, params)
    pos_B = jnp.where(live_B, state.next_pos, -1)
    logits_B1V, cache = model.decode(token_B[:, None], pos_B[:, None], state.cache)
    logits_BV = jnp.where(live_B[:, None], logits_B1V[:, 0], state.logits)
    return DecodeState(cache, logits_BV, state.next_pos + live_B)


@functools.partial(jax.jit, static_argnames=("graphdef", "max_new_tokens", "filtering"))
def _sample_loop(graphdef, params, state, keys_B, knobs, *, max_new_tokens, filtering):
    """Samples up to max_new_tokens per row inside one while_loop (knobs: traced options)."""
    B, N = state.logits.shape[0], max_new_tokens
    stop_V, stop_SK, pad_id = knobs["stop_V"], knobs["stop_SK"], knobs["pad_id"]

    def body(c):
        step, st = c["step"], c["state"]
        keys = jax.vmap(jax.random.fold_in, (0, None))(keys_B, step)
        token_B = _choose(st.logits, keys, knobs, filtering)
        logp_B = jnp.take_along_axis(jax.nn.log_softmax(st.logits), token_B[:, None], -1)
        live_B = ~c["done"]
        token_B = jnp.where(live_B, token_B, pad_id)
        recent, hit_B = _stop_hit(token_B, c["recent"], stop_V, stop_SK)
        return dict(
            step=step + 1,
            state=_feed(graphdef, c["params"], st, token_B, live_B),
            params=c["params"],
            tokens=c["tokens"].at[:, step].set(token_B),
            logprobs=c["logprobs"].at[:, step].set(jnp.where(live_B, logp_B[:, 0], 0.0)),
            done=c["done"] | (live_B & hit_B),
            length=c["length"] + live_B,
            recent=recent,
        )

    init = dict(  # params ride in the carry: nnx.scan needs them at the loop's trace level
        step=jnp.int32(0),
        params=params,
        state=state,
        tokens=jnp.full((B, N), pad_id, jnp.int32),
        logprobs=jnp.zeros((B, N), jnp.float32),
        done=jnp.zeros(B, bool),
        length=jnp.zeros(B, jnp.int32),
        recent=jnp.full((B, stop_SK.shape[1]), -2, jnp.int32),
    )
    out = jax.lax.while_loop(lambda c: (c["step"] < N) & ~c["done"].all(), body, init)
    return out["tokens"], out["logprobs"], out["length"], out["done"], out["state"]


@functools.partial(jax.jit, static_argnames=("graphdef", "width", "max_new_tokens"))
def _beam_loop(graphdef, params, state, knobs, *, width, max_new_tokens):
    """Beam search over `width` hypotheses per prompt (rows b*W .. b*W+W-1)."""
    stop_V, stop_SK, pad_id, alpha = (knobs[k] for k in ("stop_V", "stop_SK", "pad_id", "alpha"))
    BW, V = state.logits.shape
    W, N = width, max_new_tokens
    B = BW // W

    def body(c):
        step, st, done_BW = c["step"], c["state"], c["done"]
        logp_BWV = jax.nn.log_softmax(st.logits).reshape(B, W, V)
        alive_BWV = c["cum"][..., None] + logp_BWV
        keep_BWV = jnp.where(jnp.arange(V) == pad_id, c["cum"][..., None], -jnp.inf)
        cand_BWV = jnp.where(done_BW[..., None], keep_BWV, alive_BWV)
        cand_len_BW = c["length"] + ~done_BW
        norm_BWV = cand_BWV / jnp.maximum(cand_len_BW, 1)[..., None].astype(jnp.float32) ** alpha
        _, idx_BW = jax.lax.top_k(norm_BWV.reshape(B, W * V), W)
        parent_BW, token_BW = idx_BW // V, (idx_BW % V).astype(jnp.int32)
        rows = (parent_BW + jnp.arange(B)[:, None] * W).reshape(-1)
        live = ~done_BW.reshape(-1)[rows]
        token = jnp.where(live, token_BW.reshape(-1), pad_id)
        recent, hit = _stop_hit(token, c["recent"][rows], stop_V, stop_SK)
        logp = logp_BWV.reshape(BW, V)[rows, token]
        st = _feed(graphdef, c["params"], take_rows(st, rows), token, live)
        return dict(
            step=step + 1,
            state=st,
            params=c["params"],
            cum=jnp.take_along_axis(cand_BWV.reshape(B, W * V), idx_BW, axis=1),
            length=cand_len_BW.reshape(-1)[rows].reshape(B, W),
            done=(~live | hit).reshape(B, W),
            tokens=c["tokens"][rows].at[:, step].set(token),
            logprobs=c["logprobs"][rows].at[:, step].set(jnp.where(live, logp, 0.0)),
            recent=recent,
        )

    cum_W = jnp.where(jnp.arange(W) == 0, 0.0, -jnp.inf)
    init = dict(  # params ride in the carry: nnx.scan needs them at the loop's trace level
        step=jnp.int32(0),
        params=params,
        state=state,
        cum=jnp.broadcast_to(cum_W, (B, W)),
        length=jnp.zeros((B, W), jnp.int32),
        done=jnp.zeros((B, W), bool),
        tokens=jnp.full((BW, N), pad_id, jnp.int32),
        logprobs=jnp.zeros((BW, N), jnp.float32),
        recent=jnp.full((BW, stop_SK.shape[1]), -2, jnp.int32),
    )
    out = jax.lax.while_loop(lambda c: (c["step"] < N) & ~c["done"].all(), body, init)
    return out


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _score_tokens(graphdef, params, tokens_BT):
    """log p(tokens_BT[:, t+1] | tokens_BT[:, :t+1]) for every t, [B, T-1], full recompute."""
    logits_BTV = nnx.merge(graphdef, params)(tokens_BT[:, :-1])
    logp_BTV = jax.nn.log_softmax(logits_BTV, axis=-1)
    return jnp.take_along_axis(logp_BTV, tokens_BT[:, 1:, None], axis=-1)[..., 0]


def compile_counts() -> dict[str, int]:
    """Compiled programs per jitted sampler function (for recompilation tests)."""
    fns = dict(
        prefill=_prefill,
        sample=_sample_loop,
        beam=_beam_loop,
        score=_score_tokens,
        take_rows=take_rows,
    )
    return {name: fn._cache_size() for name, fn in fns.items()}


# ----------------------------------------------------------------------------- public API


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
    ids = [prompt_ids(tokenizer, p, add_bos) for p in prompts]
    if not ids or min(len(x) for x in ids) == 0:
        raise ValueError("prefill needs at least one prompt, each with at least one token.")
    longest = max(len(x) for x in ids)
    _check_positions(model, longest + max_new_tokens)
    T = bucket_length(longest)
    tokens_BT = np.full((len(ids), T), tokenizer.pad_id, np.int32)
    positions_BT = np.full((len(ids), T), -1, np.int32)
    for b, x in enumerate(ids):
        tokens_BT[b, T - len(x) :] = x
        positions_BT[b, T - len(x) :] = np.arange(len(x))
    graphdef, params = nnx.split(model)
    capacity = T + max_new_tokens
    return _prefill(graphdef, params, tokens_BT, positions_BT, capacity=capacity, mesh=mesh)


def fork(state: DecodeState, n_or_rows: int | Sequence[int] | np.ndarray) -> DecodeState:
    """Copies cache rows: an int n repeats each row n times (row b -> rows b*n..b*n+n-1)."""
    B = state.logits.shape[0]
    if isinstance(n_or_rows, int):
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
    grow = lambda x, axis, v: jnp.pad(
        x,
        [(0, bucket_length(need) - S if a == axis else 0) for a in range(x.ndim)],
        constant_values=v,
    )
    k, v = jax.tree.map(lambda x: grow(x, 3, 0), (c["k"], c["v"]))
    positions = grow(c["positions"], 1, -1)
    cache = dict(k=k, v=v, positions=positions, index=c["index"])
    return DecodeState(cache, state.logits, state.next_pos)


def _start(model, tokenizer, prompts, max_new_tokens, add_bos, mesh) -> DecodeState:
    """A DecodeState for prompts (prefilled) or a given state (with room for N tokens)."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 1.")
    if isinstance(prompts, DecodeState):
        _check_positions(model, int(prompts.next_pos.max()) + max_new_tokens)
        return _ensure_room(prompts, max_new_tokens)
    opts = dict(max_new_tokens=max_new_tokens, add_bos=add_bos, mesh=mesh)
    return prefill(model, tokenizer, prompts, **opts)


def check_knobs(temperature: float, top_k: int, top_p: float) -> None:
    """Raises ValueError for sampling settings that can only be mistakes."""
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0 (0 is greedy).")
    if top_k < 0:
        raise ValueError(f"top_k={top_k} must be >= 0 (0 keeps every token).")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p={top_p} must be in (0, 1] (1 turns nucleus sampling off).")


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
) -> SampleOutput:
    """Samples continuations of a batch of prompts (or continues a DecodeState).

    temperature 0 is greedy; top_k 0 and top_p 1 disable those filters. `rng` is a seed
    or key (split per row) or one key per row, so a row's sample does not depend on the
    batch when its key is given. stop_tokens=None stops on the tokenizer's EOS.
    keep_state=True returns the DecodeState (it holds the whole KV cache on device).
    """
    check_knobs(temperature, top_k, top_p)
    state = _start(model, tokenizer, prompts, max_new_tokens, add_bos, mesh)
    B = state.logits.shape[0]
    knobs = _knobs(tokenizer, model, stop_tokens, stop_strings)
    knobs.update(
        temperature=np.float32(temperature), top_k=np.int32(top_k), top_p=np.float32(top_p)
    )
    tokens, logprobs, lengths, done, state = _sample_loop(
        *nnx.split(model),
        state,
        row_keys(rng, B),
        jax.tree.map(jnp.asarray, knobs),
        max_new_tokens=max_new_tokens,
        filtering=bool(top_k > 0 or top_p < 1.0),
    )
    tokens, logprobs, lengths, stopped = (np.array(x) for x in (tokens, logprobs, lengths, done))
    texts = []
    for b in range(B):
        text, cut = _cut_at_stop(tokenizer, tokens[b, : lengths[b]], stop_strings)
        if cut < lengths[b]:
            stopped[b], lengths[b] = True, cut
            tokens[b, cut:], logprobs[b, cut:] = tokenizer.pad_id, 0.0
        texts.append(text)
    return SampleOutput(tokens, logprobs, lengths, stopped, texts, state if keep_state else None)


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
    the search stops when all ended or after max_new_tokens. Width 1 is greedy.
    """
    state = _start(model, tokenizer, prompts, max_new_tokens, add_bos, None)
    B = state.logits.shape[0]
    if not 1 <= width <= model.cfg.vocab_size:
        raise ValueError(f"width={width} must be between 1 and the vocabulary size.")
    knobs = _knobs(tokenizer, model, stop_tokens, stop_strings) | {
        "alpha": np.float32(length_penalty)
    }
    out = _beam_loop(
        *nnx.split(model),
        fork(state, width),
        jax.tree.map(jnp.asarray, knobs),
        width=width,
        max_new_tokens=max_new_tokens,
    )
    out = {k: np.array(out[k]) for k in ("cum", "length", "done", "tokens", "logprobs")}
    tokens = out["tokens"].reshape(B, width, -1)
    logprobs = out["logprobs"].reshape(B, width, -1)
    lengths, finished = out["length"], out["done"]
    scores = out["cum"] / np.maximum(lengths, 1).astype(np.float32) ** length_penalty
    order = np.argsort(-scores, axis=1, kind="stable")
    pick = lambda x: np.take_along_axis(x, order.reshape(order.shape + (1,) * (x.ndim - 2)), 1)
    tokens, logprobs, scores, lengths, finished = map(
        pick, (tokens, logprobs, scores, lengths, finished)
    )
    texts = [
        [
            _cut_at_stop(tokenizer, tokens[b, w, : lengths[b, w]], stop_strings)[0]
            for w in range(width)
        ]
        for b in range(B)
    ]
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
    String continuations are encoded without BOS.
    """
    if len(prompts) != len(continuations) or not prompts:
        raise ValueError("score needs equally many (>= 1) prompts and continuations.")
    rows = []
    for p, c in zip(prompts, continuations):
        p_ids, c_ids = prompt_ids(tokenizer, p, add_bos), prompt_ids(tokenizer, c, False)
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
    logp_BT = np.asarray(_score_tokens(graphdef, params, tokens_BT))
    per_token = [logp_BT[b, n_p - 1 : n_p - 1 + n_c] for b, (n_p, n_c, _) in enumerate(rows)]
    return ScoreOutput(np.array([x.sum() for x in per_token], np.float32), per_token)
