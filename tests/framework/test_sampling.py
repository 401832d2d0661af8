"""Tests for framework/sampling.py (and decoding.py), the KV-cache decode path and
framework/sample.py.

Tiny random models (d_model 32, 2 layers, byte vocabulary 259) with a large init std,
so that next-token distributions are peaked and greedy outputs vary.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import Mesh, PartitionSpec

from data.tokenizers import ByteTokenizer
from framework import decoding, sampling
from models.transformer import Transformer, TransformerConfig
from tests.conftest import run_cli

TOK = ByteTokenizer()
CFG = TransformerConfig(
    vocab_size=259, d_model=32, num_layers=2, num_heads=2, d_ff=64, max_len=128, init_std=0.5
)
PROMPTS = ["hi", "hello world", "the quick brown fox"]  # buckets 16, 16, 32
N = 16


@pytest.fixture(scope="module", params=[False, True], ids=["unrolled", "scan"])
def model(request) -> Transformer:
    """A tiny random model, unrolled or scanned over layers."""
    return Transformer(dataclasses.replace(CFG, scan_layers=request.param), rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def unrolled() -> Transformer:
    """The unrolled tiny model alone (for tests that need one model)."""
    return Transformer(CFG, rngs=nnx.Rngs(0))


def greedy(model: nnx.Module, prompts=PROMPTS, **kw) -> sampling.SampleOutput:
    """Greedy generation of N tokens."""
    return sampling.generate(model, TOK, prompts, max_new_tokens=N, temperature=0.0, **kw)


forward = nnx.jit(lambda m, tokens_BT: m(tokens_BT))
decode = nnx.jit(lambda m, tokens_BT, positions_BT, cache: m.decode(tokens_BT, positions_BT, cache))


def full_recompute_greedy(model: nnx.Module, prompt: str, n: int) -> tuple[list, list]:
    """Greedy tokens and their log-probs, re-running the whole prefix every step."""
    ids, logps = list(sampling.prompt_ids(TOK, prompt)), []
    for _ in range(n):  # right-padded to 64 tokens: one compilation; causal, so exact
        padded = np.full((1, 64), TOK.pad_id, np.int32)
        padded[0, : len(ids)] = ids
        logp_V = jax.nn.log_softmax(forward(model, padded)[0, len(ids) - 1])
        ids.append(int(jnp.argmax(logp_V)))
        logps.append(float(logp_V[ids[-1]]))
    return ids[-n:], logps


def test_decode_matches_full_forward_at_every_step(model):
    toks_BT = jax.random.randint(jax.random.key(1), (2, 24), 0, 256)
    full_BTV = forward(model, toks_BT)
    # Row 1 is left-padded by 5: its positions restart at 0 after the padding.
    prompt_BT = toks_BT[:, :8].at[1].set(jnp.concatenate([jnp.full(5, 256), toks_BT[1, :3]]))
    pos_BT = jnp.array([list(range(8)), [-1] * 5 + [0, 1, 2]])
    logits_BTV, cache = decode(model, prompt_BT, pos_BT, model.init_cache(2, 32))
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    close(logits_BTV[0], full_BTV[0, :8])
    close(logits_BTV[1, 5:], full_BTV[1, :3])
    layers = [(2,)] if model.cfg.scan_layers else [(1,), (1,)]  # stacked or one per layer
    assert [c.shape for c in cache["k"]] == [(*n, 2, 2, 32, 16) for n in layers]
    assert int(cache["index"]) == 8
    next_B = jnp.array([8, 3])
    for step in range(12):
        tok_B = toks_BT[jnp.arange(2), next_B + step]
        logits_B1V, cache = decode(model, tok_B[:, None], (next_B + step)[:, None], cache)
        close(logits_B1V[:, 0], full_BTV[jnp.arange(2), next_B + step])


def test_cached_sampler_equals_full_recompute(model):
    out = greedy(model)
    for b, prompt in enumerate(PROMPTS):
        tokens, logps = full_recompute_greedy(model, prompt, N)
        np.testing.assert_array_equal(out.tokens[b], tokens)
        np.testing.assert_allclose(out.logprobs[b], logps, atol=1e-4)
    assert (out.lengths == N).all() and not out.finished.any()
    assert out.texts == [TOK.decode(t) for t in out.tokens]


def test_greedy_is_deterministic_and_limits_agree(unrolled):
    base = greedy(unrolled, rng=0).tokens
    np.testing.assert_array_equal(greedy(unrolled, rng=123).tokens, base)
    assert len({tuple(r) for r in base}) == 3 and len(set(base[1])) > 4  # non-trivial output
    gen = lambda **kw: sampling.generate(unrolled, TOK, PROMPTS, max_new_tokens=N, **kw).tokens
    for seed in range(2):
        np.testing.assert_array_equal(gen(temperature=1.0, top_k=1, rng=seed), base)
        np.testing.assert_array_equal(gen(temperature=1e-4, rng=seed), base)
        np.testing.assert_array_equal(gen(temperature=1.0, top_p=1e-6, rng=seed), base)
    sampled = gen(temperature=1.0, rng=0)
    assert (sampled != base).mean() > 0.3  # sampling at T=1 differs from greedy
    np.testing.assert_array_equal(gen(temperature=1.0, rng=0), sampled)  # same key, same draw


def test_rows_of_different_lengths_match_each_alone(unrolled):
    keys = jax.random.split(jax.random.key(7), len(PROMPTS))
    batch = sampling.generate(unrolled, TOK, PROMPTS, max_new_tokens=N, rng=keys)
    for b, prompt in enumerate(PROMPTS):  # (greedy: see test_cached_sampler_equals_...)
        alone = sampling.generate(unrolled, TOK, [prompt], max_new_tokens=N, rng=keys[b : b + 1])
        np.testing.assert_array_equal(alone.tokens[0], batch.tokens[b])
        np.testing.assert_allclose(alone.logprobs[0], batch.logprobs[b], atol=1e-4)


def test_stop_tokens_and_strings_end_rows_independently(unrolled):
    kw = dict(max_new_tokens=N, temperature=1.0, rng=3)
    free = sampling.generate(unrolled, TOK, PROMPTS, **kw)
    stop = int(free.tokens[0, 4])  # row 0 samples it at step <= 4
    stopped = sampling.generate(unrolled, TOK, PROMPTS, stop_tokens=[stop], **kw)
    for b in range(3):
        hits = np.flatnonzero(free.tokens[b] == stop)
        n = hits[0] + 1 if len(hits) else N
        assert stopped.lengths[b] == n and stopped.finished[b] == bool(len(hits))
        np.testing.assert_array_equal(stopped.tokens[b, :n], free.tokens[b, :n])
        assert (stopped.tokens[b, n:] == TOK.pad_id).all() and (stopped.logprobs[b, n:] == 0).all()
    assert stopped.finished[0] and stopped.lengths[0] <= 5 and not stopped.finished.all()
    # A two-token stop string taken from row 1's sample ends row 1 right after it.
    i = next(i for i in range(1, N) if free.tokens[1, i - 1] < 128 and free.tokens[1, i] < 128)
    text = TOK.decode(free.tokens[1, i - 1 : i + 1])
    out = sampling.generate(unrolled, TOK, PROMPTS, stop_tokens=[], stop_strings=[text], **kw)
    j = next(j for j in range(1, N) if TOK.decode(free.tokens[1, j - 1 : j + 1]) == text)
    assert out.finished[1] and out.lengths[1] == j + 1
    assert out.texts[1] == TOK.decode(free.tokens[1, : j - 1])  # cut before the stop string


def test_a_stop_found_only_by_the_host_cut_takes_the_kept_state_back_to_it(unrolled, monkeypatch):
    """When only the host's text cut finds a stop string (here the device's stop tables
    are emptied), the kept state ends where the cut does, as a run that stopped there."""
    free = greedy(unrolled, PROMPTS[:2])
    i = next(i for i in range(3, N) if free.tokens[1, i - 1] < 128 and free.tokens[1, i] < 128)
    stop = TOK.decode(free.tokens[1, i - 1 : i + 1])
    j = next(j for j in range(1, N) if TOK.decode(free.tokens[1, j - 1 : j + 1]) == stop)
    real = sampling.token_text.stop_tables
    no_device_stops = lambda tok, vocab, ids, strings: real(tok, vocab, ids, [])
    monkeypatch.setattr(sampling.token_text, "stop_tables", no_device_stops)
    cut = greedy(unrolled, PROMPTS[:2], stop_tokens=[], stop_strings=[stop], keep_state=True)
    assert cut.lengths[1] == j + 1 and cut.lengths[0] == N  # row 0: no stop in N tokens
    ref = sampling.generate(unrolled, TOK, PROMPTS[1:2], max_new_tokens=j + 1,
                            temperature=0.0, stop_tokens=[], keep_state=True)  # fmt: skip
    assert int(cut.state.next_pos[1]) == int(ref.state.next_pos[0])
    np.testing.assert_allclose(cut.state.logits[1], ref.state.logits[0], rtol=1e-5, atol=1e-5)
    more = dict(max_new_tokens=6, temperature=0.0, stop_tokens=[])
    np.testing.assert_array_equal(
        sampling.generate(unrolled, TOK, sampling.fork(cut.state, [1]), **more).tokens,
        sampling.generate(unrolled, TOK, ref.state, **more).tokens,
    )


def test_beam_search(unrolled):
    out = greedy(unrolled)
    beam1 = sampling.beam_search(unrolled, TOK, PROMPTS, width=1, max_new_tokens=N)
    np.testing.assert_array_equal(beam1.tokens[:, 0], out.tokens)
    np.testing.assert_allclose(beam1.scores[:, 0], out.logprobs.sum(1), rtol=1e-5)
    beam = sampling.beam_search(unrolled, TOK, PROMPTS, width=3, max_new_tokens=N)
    assert beam.tokens.shape == (3, 3, N) and (np.diff(beam.scores, axis=1) <= 0).all()
    assert (beam.scores[:, 0] >= out.logprobs.sum(1) - 1e-4).all()  # at least as good as greedy
    conts = [beam.tokens[b, w] for b in range(3) for w in range(3)]
    scored = sampling.score(unrolled, TOK, [p for p in PROMPTS for _ in range(3)], conts)
    np.testing.assert_allclose(scored.total, beam.scores.reshape(-1), atol=1e-4)
    assert len({tuple(t) for t in beam.tokens[0]}) == 3  # distinct hypotheses


def test_beam_search_ends_a_hypothesis_at_a_stop_only_the_host_cut_finds(unrolled, monkeypatch):
    out = greedy(unrolled, PROMPTS[:1], stop_tokens=[])
    i = next(i for i in range(3, N) if out.tokens[0, i - 1] < 128 and out.tokens[0, i] < 128)
    stop = TOK.decode(out.tokens[0, i - 1 : i + 1])
    j = next(j for j in range(1, N) if TOK.decode(out.tokens[0, j - 1 : j + 1]) == stop)
    real = sampling.token_text.stop_tables
    monkeypatch.setattr(
        sampling.token_text, "stop_tables", lambda t, v, ids, s: real(t, v, ids, [])
    )
    kw = dict(max_new_tokens=N, stop_tokens=[], stop_strings=[stop])
    beam1 = sampling.beam_search(unrolled, TOK, PROMPTS[:1], width=1, **kw)
    assert beam1.lengths[0, 0] == j + 1 and beam1.finished[0, 0]
    np.testing.assert_array_equal(beam1.tokens[0, 0, : j + 1], out.tokens[0, : j + 1])
    assert (beam1.tokens[0, 0, j + 1 :] == TOK.pad_id).all()
    np.testing.assert_allclose(beam1.scores[0, 0], out.logprobs[0, : j + 1].sum(), rtol=1e-5)
    beam = sampling.beam_search(unrolled, TOK, PROMPTS[:1], width=3, **kw)
    assert (np.diff(beam.scores, axis=1) <= 0).all()  # re-sorted after the cuts
    np.testing.assert_allclose(beam.scores, beam.logprobs.sum(-1), rtol=1e-5)
    assert all(stop not in t for t in beam.texts[0])


def test_fork_with_equal_keys_gives_identical_rows(unrolled):
    model = unrolled
    state = sampling.prefill(model, TOK, ["hello"], max_new_tokens=N)
    key = jax.random.key(5)
    forked = sampling.fork(state, 3)
    same = sampling.generate(model, TOK, forked, max_new_tokens=N, rng=jnp.stack([key] * 3))
    alone = sampling.generate(model, TOK, ["hello"], max_new_tokens=N, rng=key[None])
    for r in range(3):
        np.testing.assert_array_equal(same.tokens[r], alone.tokens[0])
    differ = sampling.generate(model, TOK, forked, max_new_tokens=N, rng=1)
    assert len({tuple(r) for r in differ.tokens}) > 1


def test_continuing_a_state_equals_one_longer_run(unrolled):
    first = greedy(unrolled, keep_state=True)
    assert greedy(unrolled).state is None  # the cache is kept only on request
    more = sampling.generate(
        unrolled, TOK, first.state, max_new_tokens=N, temperature=0.0, keep_state=True
    )
    assert more.state.cache["positions"].shape[1] == 64  # grown from 32 + N slots
    for b, prompt in enumerate(PROMPTS):
        tokens, logps = full_recompute_greedy(unrolled, prompt, 2 * N)
        np.testing.assert_array_equal(np.concatenate([first.tokens[b], more.tokens[b]]), tokens)
        np.testing.assert_allclose(more.logprobs[b], logps[N:], atol=1e-4)


def test_no_recompilation_within_a_bucket(unrolled):
    gen = lambda prompts, **kw: sampling.generate(unrolled, TOK, prompts, max_new_tokens=N, **kw)
    gen(PROMPTS, temperature=0.0)  # bucket 32
    before = sampling.compile_counts()
    for prompts, t in ((["x", "y", "z" * 20], 0.0), (["longer prompt!", "q", "r" * 30], 0.7)):
        gen(prompts, temperature=t, rng=4, stop_strings=["\n"])
    gen(PROMPTS, temperature=1, rng=jax.random.split(jax.random.key(0), 3))
    assert sampling.compile_counts() == before
    gen(["a prompt long enough for the next bucket up", "b", "c"])  # bucket 64
    after = sampling.compile_counts()
    assert after["prefill"] == before["prefill"] + 1 and after["sample"] == before["sample"] + 1


def test_score_equals_full_recompute_log_softmax(unrolled):
    prompts, conts = ["hi", "hello world", ""], [" there", "!", "abc de"]
    out = sampling.score(unrolled, TOK, prompts, conts)
    for b, (p, c) in enumerate(zip(prompts, conts)):
        p_ids, c_ids = sampling.prompt_ids(TOK, p), TOK.encode(c)
        ids = np.concatenate([p_ids, c_ids])
        padded = np.full((1, 64), TOK.pad_id, np.int32)
        padded[0, : len(ids)] = ids
        logp_TV = jax.nn.log_softmax(forward(unrolled, padded)[0])
        want = np.asarray(logp_TV[np.arange(len(p_ids) - 1, len(ids) - 1), c_ids])
        np.testing.assert_allclose(out.token_logprobs[b], want, atol=1e-5)
        np.testing.assert_allclose(out.total[b], want.sum(), rtol=1e-5)


def test_cache_sharding_on_a_mesh(unrolled):
    mesh = Mesh(np.array(jax.devices()[:1]).reshape(1, 1, 1), ("data", "fsdp", "tensor"))
    shardings = sampling.cache_shardings(unrolled.init_cache(4, 8), mesh)
    assert shardings["k"][0].spec == PartitionSpec(None, ("data", "fsdp"), "tensor", None, None)
    assert shardings["positions"].spec == PartitionSpec(("data", "fsdp"), None)
    out = greedy(unrolled, mesh=mesh)
    np.testing.assert_array_equal(out.tokens, greedy(unrolled).tokens)


@pytest.fixture(scope="module")
def workdir(tiny_lm_run) -> str:
    """A finished tiny quickstart run (the session's shared one; sampling only reads it)."""
    return tiny_lm_run


def test_sample_from_workdir_and_cli(workdir, tmp_path):
    from framework.sample import sample_from_workdir

    texts = sample_from_workdir(workdir, ["The ", "A"], num_samples=3, max_new_tokens=10)
    assert len(texts) == 6 and all(len(t) <= 10 for t in texts)
    assert len(set(texts[:3])) > 1  # three different samples of one prompt
    args = [f"--workdir={workdir}", "--prompt=The ", "--num_samples=2", "--max_new_tokens=10"]
    proc = run_cli(args, module="framework.sample", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("--- prompt 0 sample") == 2 and "\nThe " in proc.stdout
    # A missing workdir is a SampleError, which the CLI prints as one line with exit 2
    # (test_faults runs the CLI on a bad flag through that same path).
    from framework.sample import SampleError

    with pytest.raises(SampleError, match="does not exist"):
        sample_from_workdir(f"{tmp_path}/nope", ["The "])


def test_sampling_on_a_sharded_cache_matches_one_device(eight_devices):
    """2x2x2 mesh on 8 CPU devices (tests/framework/mesh_check.py): the cache splits batch
    over (data, fsdp) and heads over tensor, and greedy tokens and log-probs equal the
    unsharded run."""
    assert eight_devices["devices"] == 8
    out = eight_devices["sampling"]
    assert out["cache_k_spec"][:3] == [None, ["data", "fsdp"], "tensor"]
    assert out["meshed"] == out["plain"]
    assert len({tuple(row) for row in out["plain"]}) == 4  # rows really differ
    np.testing.assert_allclose(out["meshed_logprobs"], out["plain_logprobs"], atol=1e-4)


# ----------------------------------------------------------------------------- at volume


def test_cache_growth_phases_equal_full_recompute(unrolled):
    plan = decoding.growth_plan(16, 48)
    assert plan == ((24, 40), (48, 64))  # two phases: the cache grows from 40 to 64 slots
    kw = dict(max_new_tokens=48, temperature=0.0, stop_tokens=[])
    out = sampling.generate(unrolled, TOK, PROMPTS[:1], **kw)
    tokens, logps = full_recompute_greedy(unrolled, PROMPTS[0], 48)
    np.testing.assert_array_equal(out.tokens[0], tokens)
    np.testing.assert_allclose(out.logprobs[0], logps, atol=1e-4)


def test_num_samples_equal_flat_batch_and_separate_calls(unrolled):
    n, kw = 4, dict(max_new_tokens=N, temperature=1.0, stop_strings=["\n"])
    out = sampling.generate(unrolled, TOK, PROMPTS, num_samples=n, rng=9, **kw)
    assert out.tokens.shape == (len(PROMPTS) * n, N)
    # Key derivation: row r uses key r of row_keys(rng, R), as in the flat repeated batch.
    flat = sampling.generate(unrolled, TOK, [p for p in PROMPTS for _ in range(n)], rng=9, **kw)
    keys_R = sampling.row_keys(9, len(PROMPTS) * n)
    for s in range(n):  # n separate calls, call s gets rows s, s+n, s+2n (sample s of each)
        alone = sampling.generate(unrolled, TOK, PROMPTS, rng=keys_R[s::n], **kw)
        np.testing.assert_array_equal(out.tokens[s::n], alone.tokens)
        np.testing.assert_allclose(out.logprobs[s::n], alone.logprobs, atol=1e-4)
        np.testing.assert_array_equal(out.lengths[s::n], alone.lengths)
        assert out.texts[s::n] == alone.texts
    np.testing.assert_array_equal(out.tokens, flat.tokens)
    np.testing.assert_allclose(out.logprobs, flat.logprobs, atol=1e-4)
    np.testing.assert_array_equal(out.finished, flat.finished)
    assert len({tuple(t) for t in out.tokens[:n]}) == n  # one prompt's samples differ


def test_chunks_equal_one_call_and_buckets_share_programs(unrolled):
    kw = dict(max_new_tokens=N, temperature=1.0, rng=2, num_samples=3)
    one = sampling.generate(unrolled, TOK, PROMPTS, max_rows=16, **kw)  # 9 rows, bucket 16
    chunked = sampling.generate(unrolled, TOK, PROMPTS, max_rows=4, **kw)  # rows 4 + 4 + 1
    np.testing.assert_array_equal(chunked.tokens, one.tokens)
    np.testing.assert_allclose(chunked.logprobs, one.logprobs, atol=1e-4)
    np.testing.assert_array_equal(chunked.lengths, one.lengths)
    assert chunked.texts == one.texts
    with pytest.raises(ValueError, match="one chunk"):
        sampling.generate(unrolled, TOK, PROMPTS, max_rows=4, keep_state=True, **kw)
    # Batch buckets: 5 and 7 prompts are both padded to 8 rows and run one program.
    gen = lambda k: sampling.generate(unrolled, TOK, ["p"] * k, max_new_tokens=N, rng=0)
    five = gen(5)
    before = sampling.compile_counts()
    seven = gen(7)
    assert sampling.compile_counts() == before
    np.testing.assert_array_equal(seven.tokens.shape, (7, N))
    assert len({tuple(t) for t in five.tokens}) == 5  # padding rows dropped, keys per row
    # fixed_rows: 2 and 5 prompts both padded to max_rows=8 rows: one program, same rows.
    fixed = lambda k: sampling.generate(
        unrolled, TOK, ["p"] * k, max_new_tokens=N, rng=0, max_rows=8, fixed_rows=True
    )
    np.testing.assert_array_equal(fixed(5).tokens, five.tokens)
    before = sampling.compile_counts()
    two = fixed(2)
    assert sampling.compile_counts() == before
    np.testing.assert_array_equal(two.tokens, five.tokens[:2])


def test_next_token_logprobs_equals_full_forward_bitwise_repeatable(unrolled):
    model = unrolled  # a short name: the calls below fill lines
    tokens_BT = np.asarray(jax.random.randint(jax.random.key(3), (3, 20), 0, 256), np.int32)
    lengths_B = np.array([1, 7, 20])
    got_BV = sampling.next_token_logprobs(model, tokens_BT, lengths_B)
    assert got_BV.shape == (3, CFG.vocab_size) and got_BV.dtype == np.float32
    want_BTV = jax.nn.log_softmax(forward(model, tokens_BT), axis=-1)
    want_BV = np.asarray(want_BTV)[np.arange(3), lengths_B - 1]
    np.testing.assert_allclose(got_BV, want_BV, atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(sampling.next_token_logprobs(model, tokens_BT, lengths_B), got_BV)
    later = tokens_BT.copy()  # tokens after a row's length, or other rows, do not matter
    later[0, 1:], later[1, 7:] = 5, 6
    np.testing.assert_array_equal(sampling.next_token_logprobs(model, later, lengths_B), got_BV)
    later[2] = tokens_BT[2, ::-1]  # another row 2, same padded shapes
    mixed = sampling.next_token_logprobs(model, later, lengths_B)
    np.testing.assert_array_equal(mixed[:2], got_BV[:2])
    assert not np.array_equal(mixed[2], got_BV[2])


def test_feed_is_the_incremental_form(unrolled):
    ids = np.asarray(jax.random.randint(jax.random.key(4), (2, 12), 0, 256), np.int32)
    full_BTV = np.asarray(jax.nn.log_softmax(forward(unrolled, ids), axis=-1))

    def run() -> list[np.ndarray]:
        state = sampling.prefill(unrolled, TOK, [ids[0, :1], ids[1, :3]], max_new_tokens=2)
        steps = [sampling.next_logprobs(state)]
        for t in range(8):  # past the room prefill left: the cache grows
            state = sampling.feed(unrolled, state, [ids[0, 1 + t], ids[1, 3 + t]])
            steps.append(sampling.next_logprobs(state))
        return steps

    first, again = run(), run()
    for t, (a, b) in enumerate(zip(first, again)):
        np.testing.assert_array_equal(a, b)  # the same calls give the same bits
        np.testing.assert_allclose(a, full_BTV[[0, 1], [t, 2 + t]], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "top_k, top_p, allowed",
    [
        (0, 1.0, {0, 1, 2}),
        (2, 1.0, {0, 1}),
        (0, 0.6, {0, 1}),  # the token that crosses 0.6 (cumulative 0.8) is kept
        (0, 0.5, {0}),  # 0.5 is reached by the first token alone
        (2, 0.6, {0}),  # nucleus over the top-2 renormalised: 0.625 >= 0.6 alone
    ],
)
def test_top_k_and_top_p_keep_the_tokens_they_should(top_k, top_p, allowed):
    logits_BV = jnp.log(jnp.asarray([[0.5, 0.3, 0.2]] * 2000))
    keys_B = jax.random.split(jax.random.key(0), 2000)
    knobs = dict(temperature=jnp.float32(1.0), top_k=jnp.int32(top_k), top_p=jnp.float32(top_p))
    drawn = np.asarray(jax.jit(decoding._choose, static_argnums=3)(logits_BV, keys_B, knobs, True))
    assert set(drawn.tolist()) == allowed
    if allowed == {0, 1, 2}:  # unfiltered: the probabilities themselves
        np.testing.assert_allclose(
            np.bincount(drawn, minlength=3) / 2000, [0.5, 0.3, 0.2], atol=0.04
        )


def test_continuing_from_a_seed_does_not_repeat_the_first_calls_draws(unrolled):
    # A state whose logits are those of the prompts: with the draws of the first call
    # repeated, the continuation would sample the same tokens again.
    kw = dict(max_new_tokens=N, temperature=1.0, rng=0)
    first = sampling.generate(unrolled, TOK, PROMPTS, **kw)
    state = sampling.prefill(unrolled, TOK, PROMPTS, max_new_tokens=N)
    again = sampling.generate(unrolled, TOK, state, **kw)
    assert (again.tokens != first.tokens).mean() > 0.3
    keys = sampling.row_keys(0, len(PROMPTS))  # explicit keys: used as given
    same = sampling.generate(unrolled, TOK, state, **{**kw, "rng": keys})
    np.testing.assert_array_equal(same.tokens, first.tokens)
