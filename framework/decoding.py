"""The jitted device programs behind framework/sampling.py: the decode state, prefill, row
copies, the sampling and beam-search loops, teacher-forced steps and full-pass scoring.

framework/sampling.py is the host side (encoding, buckets, chunks, stop strings) and
re-exports the public names defined here. Every program is compiled once per model graph
and static shape; ``compile_counts()`` counts them.

Cache growth. A decode step's attention reads every slot of the KV cache, filled or not,
and that read is the part of a step whose cost per token does not shrink as the batch
grows (each row reads its own cache). So ``prefill_program`` runs prompts through a cache
of exactly the prompt bucket's T slots and pads it afterwards (a prompt run through all
T + max_new_tokens slots costs T x (T + max_new_tokens) attention reads, most of them of
empty slots), and the sampling loop runs in up to ``MAX_PHASES`` phases (``growth_plan``):
each phase is a while_loop over a cache just large enough for the tokens it adds, and the
cache is padded with empty slots between phases.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from framework import sharding
from models.kv_cache import CACHE_AXES

MAX_PHASES = 4


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DecodeState:
    """A batch mid-generation: KV cache, next-token logits [B,V], next positions [B]."""

    cache: dict[str, Any]  # models.transformer KV cache (see CACHE_AXES)
    logits: jax.Array  # float32 [B, V]: next-token logits of each row
    next_pos: jax.Array  # int32 [B]: position of each row's next token


def cache_shardings(cache: Any, mesh: Mesh) -> Any:
    """NamedShardings for a KV cache: 'batch' over the mesh's batch axes (data, fsdp,
    expert: those it has), 'heads' over tensor."""
    batch = tuple(a for a in sharding.BATCH_AXES if a in mesh.axis_names)
    table = {"batch": batch, "heads": ("tensor",)}

    def spec(names: tuple[str, ...], x: Any) -> NamedSharding:
        axes = [table.get(name) for name in names]
        sizes = [math.prod(mesh.shape[a] for a in axis or ()) for axis in axes]
        axes = [a if a and d % n == 0 else None for a, d, n in zip(axes, x.shape, sizes)]
        return NamedSharding(mesh, PartitionSpec(*axes))

    return {k: jax.tree.map(functools.partial(spec, CACHE_AXES[k]), v) for k, v in cache.items()}


def grow_cache(cache: dict[str, Any], slots: int) -> dict[str, Any]:
    """The cache padded with empty slots (position -1) to `slots`; as is if it has that many."""
    S = cache["positions"].shape[1]
    if slots <= S:
        return cache

    def pad(x: jax.Array, axis: int, value: int) -> jax.Array:
        widths = [(0, slots - S if a == axis else 0) for a in range(x.ndim)]
        return jnp.pad(x, widths, constant_values=value)

    k, v = jax.tree.map(lambda x: pad(x, 3, 0), (cache["k"], cache["v"]))
    return dict(k=k, v=v, positions=pad(cache["positions"], 1, -1), index=cache["index"])


def growth_plan(filled: int, steps: int) -> tuple[tuple[int, int], ...]:
    """Decode phases (end step, cache slots) for `steps` new tokens after `filled` slots.

    The last phase ends at `steps` with filled + steps slots. Going back, each earlier
    phase ends at half the step count while that half is at least `filled` (a smaller
    saving is not worth another copy of the loop in the program), at most MAX_PHASES.
    E.g. filled 64, steps 256: ((64, 128), (128, 192), (256, 320)).
    """
    ends = [steps]
    while len(ends) < MAX_PHASES and ends[0] // 2 >= max(filled, 1):
        ends.insert(0, ends[0] // 2)
    return tuple((end, filled + end) for end in ends)


# ----------------------------------------------------------------------------- prefill, rows


@functools.partial(jax.jit, static_argnames=("graphdef", "capacity", "mesh"))
def prefill_program(
    graphdef: Any,
    params: Any,
    tokens_BT: jax.Array,
    positions_BT: jax.Array,
    *,
    capacity: int,
    mesh: Mesh | None = None,
) -> DecodeState:
    """Runs left-padded prompts into a fresh T-slot cache, then pads it to `capacity` slots."""
    model = nnx.merge(graphdef, params)
    B, T = tokens_BT.shape
    cache = model.init_cache(B, T)
    cache = jax.lax.optimization_barrier(cache)  # no constant folding of the empty cache
    if mesh is not None:
        cache = jax.lax.with_sharding_constraint(cache, cache_shardings(cache, mesh))
    logits_B1V, cache = model.decode(tokens_BT, positions_BT, cache, last_only=True)
    cache = grow_cache(cache, capacity)
    if mesh is not None:
        cache = jax.lax.with_sharding_constraint(cache, cache_shardings(cache, mesh))
    return DecodeState(cache, logits_B1V[:, 0], positions_BT.max(axis=1) + 1)


@jax.jit
def take_rows(state: DecodeState, rows_R: jax.Array) -> DecodeState:
    """A state whose row r is `state`'s row rows_R[r] (cache rows copied)."""
    c = state.cache
    k, v = jax.tree.map(lambda x: x[:, rows_R], (c["k"], c["v"]))
    cache = dict(k=k, v=v, positions=c["positions"][rows_R], index=c["index"])
    return DecodeState(cache, state.logits[rows_R], state.next_pos[rows_R])


def _feed(graphdef, params, state: DecodeState, token_B, live_B) -> DecodeState:
    """Appends one token per live row; ended rows write an invisible slot, keep logits."""
    model = nnx.merge(graphdef, params)
    pos_B = jnp.where(live_B, state.next_pos, -1)
    logits_B1V, cache = model.decode(token_B[:, None], pos_B[:, None], state.cache)
    logits_BV = jnp.where(live_B[:, None], logits_B1V[:, 0], state.logits)
    return DecodeState(cache, logits_BV, state.next_pos + live_B)


@functools.partial(jax.jit, static_argnames=("graphdef",), donate_argnames=("state",))
def feed_program(graphdef: Any, params: Any, state: DecodeState, token_B: jax.Array) -> DecodeState:
    """Appends the given token of every row (the state's buffers are donated)."""
    return _feed(graphdef, params, state, token_B, jnp.ones(token_B.shape, bool))


@functools.partial(jax.jit, static_argnames=("graphdef",), donate_argnames=("state",))
def rewind_program(
    graphdef: Any, params: Any, state: DecodeState, next_pos_B: jax.Array, token_B: jax.Array
) -> DecodeState:
    """Rows whose next_pos_B is below their state's go back to it: their cache slots at
    positions >= next_pos_B - 1 are hidden and token_B (the token at next_pos_B - 1) is
    fed again, giving the logits after it; other rows are unchanged."""
    back_B = next_pos_B < state.next_pos
    c = state.cache
    hide_BS = back_B[:, None] & (c["positions"] >= (next_pos_B - 1)[:, None])
    cache = dict(c, positions=jnp.where(hide_BS, -1, c["positions"]))
    at_B = jnp.where(back_B, next_pos_B - 1, state.next_pos)
    return _feed(graphdef, params, DecodeState(cache, state.logits, at_B), token_B, back_B)


@jax.jit
def log_softmax_rows(logits_BV: jax.Array) -> jax.Array:
    """float32 log-probabilities [B, V] of next-token logits [B, V]."""
    return jax.nn.log_softmax(logits_BV.astype(jnp.float32), axis=-1)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def last_logprobs(
    graphdef: Any, params: Any, tokens_BT: jax.Array, lengths_B: jax.Array
) -> jax.Array:
    """log p(next token | tokens_BT[b, :lengths_B[b]]) [B, V] from one full forward pass."""
    logits_BTV = nnx.merge(graphdef, params)(tokens_BT)
    at_B11 = (lengths_B - 1)[:, None, None]
    logits_BV = jnp.take_along_axis(logits_BTV, at_B11, axis=1)[:, 0]
    return jax.nn.log_softmax(logits_BV.astype(jnp.float32), axis=-1)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def all_logprobs(graphdef: Any, params: Any, tokens_BT: jax.Array) -> jax.Array:
    """float32 log-probabilities [B, T, V] of the next token at every position."""
    logits_BTV = nnx.merge(graphdef, params)(tokens_BT)
    return jax.nn.log_softmax(logits_BTV.astype(jnp.float32), axis=-1)


# ----------------------------------------------------------------------------- loops


def _choose(logits_BV, keys_B, knobs, filtering: bool):
    """Greedy when temperature == 0, else a sample after temperature, top-k and top-p
    (nucleus over the top-k survivors, renormalised, as HF and vLLM do)."""
    temperature, top_k, top_p = knobs["temperature"], knobs["top_k"], knobs["top_p"]
    greedy_B = jnp.argmax(logits_BV, axis=-1)
    scaled_BV = logits_BV / jnp.where(temperature > 0, temperature, 1.0)
    if filtering:
        V = logits_BV.shape[-1]
        sorted_BV = -jnp.sort(-scaled_BV, axis=-1)
        kth_B = jnp.where(top_k > 0, sorted_BV[:, jnp.clip(top_k - 1, 0, V - 1)], -jnp.inf)
        in_top_k_BV = (top_k <= 0) | (jnp.arange(V)[None] < top_k)
        probs_BV = jax.nn.softmax(jnp.where(in_top_k_BV, sorted_BV, -jnp.inf), axis=-1)
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


def _sample_loop(
    graphdef: Any,
    params: Any,
    state: DecodeState,
    keys_B: jax.Array,
    knobs: dict[str, jax.Array],
    *,
    plan: tuple[tuple[int, int], ...],
    filtering: bool,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, DecodeState]:
    """Samples up to plan[-1][0] tokens per row (knobs: traced options); phase i runs
    while_loop steps up to plan[i][0] with the cache grown to plan[i][1] slots."""
    B, N = state.logits.shape[0], plan[-1][0]
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

    c = dict(  # params ride in the carry: nnx.scan needs them at the loop's trace level
        step=jnp.int32(0),
        params=params,
        state=state,
        tokens=jnp.full((B, N), pad_id, jnp.int32),
        logprobs=jnp.zeros((B, N), jnp.float32),
        done=jnp.zeros(B, bool),
        length=jnp.zeros(B, jnp.int32),
        recent=jnp.full((B, stop_SK.shape[1]), -2, jnp.int32),
    )
    for end, slots in plan:
        c["state"] = dataclasses.replace(c["state"], cache=grow_cache(c["state"].cache, slots))
        cond = lambda c, end=end: (c["step"] < end) & ~c["done"].all()
        c = jax.lax.while_loop(cond, body, c)
    return c["tokens"], c["logprobs"], c["length"], c["done"], c["state"]


_LOOP_STATIC = ("graphdef", "plan", "filtering")
sample_loop = jax.jit(_sample_loop, static_argnames=_LOOP_STATIC)
# For states made by the sampler itself, single-phase plans: the loop updates the cache in
# place instead of first copying it (and the caller's copy is freed).
sample_loop_donating = jax.jit(
    _sample_loop, static_argnames=_LOOP_STATIC, donate_argnames=("state",)
)


@functools.partial(jax.jit, static_argnames=("graphdef", "width", "max_new_tokens"))
def beam_loop(
    graphdef: Any,
    params: Any,
    state: DecodeState,
    knobs: dict[str, jax.Array],
    *,
    width: int,
    max_new_tokens: int,
) -> dict[str, Any]:
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
def score_tokens(graphdef: Any, params: Any, tokens_BT: jax.Array) -> jax.Array:
    """log p(tokens_BT[:, t+1] | tokens_BT[:, :t+1]) for every t, [B, T-1], full recompute."""
    logits_BTV = nnx.merge(graphdef, params)(tokens_BT[:, :-1])
    logp_BTV = jax.nn.log_softmax(logits_BTV, axis=-1)
    return jnp.take_along_axis(logp_BTV, tokens_BT[:, 1:, None], axis=-1)[..., 0]


def compile_counts() -> dict[str, int]:
    """Compiled programs per jitted sampler function (for recompilation tests)."""
    fns = dict(
        prefill=(prefill_program,),
        sample=(sample_loop, sample_loop_donating),
        beam=(beam_loop,),
        score=(score_tokens,),
        take_rows=(take_rows,),
        feed=(feed_program,),
        next_token_logprobs=(last_logprobs,),
    )
    return {name: sum(f._cache_size() for f in fs) for name, fs in fns.items()}
