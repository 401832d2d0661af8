"""data/compression.py: token packing, GZip, StaticAC and Equal-Info Windows."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from flax import nnx

from data import arithmetic_coding as ac, compression
from framework import sampling
from models import transformer

TEXT = (
    b"def add(a, b):\n    return a + b\n\n\nclass Point:\n    def __init__(self, x, y):\n"
    b"        self.x = x\n        self.y = y\n\n    def norm(self):\n        return "
    b"(self.x ** 2 + self.y ** 2) ** 0.5\n"
) * 6


def bigram_model(text: bytes = TEXT):
    """A ByteModel from add-1/4 bigram counts of `text` (row 256: after BOS)."""
    counts = np.full((257, 256), 0.25)
    prev = np.concatenate([[256], np.frombuffer(text, np.uint8)[:-1]])
    np.add.at(counts, (prev, np.frombuffer(text, np.uint8)), 1.0)
    table = np.log(counts / counts.sum(-1, keepdims=True))

    def logprobs(bytes_BT):
        prev_BT = np.concatenate([np.full((len(bytes_BT), 1), 256), bytes_BT[:, :-1]], 1)
        return table[prev_BT]

    return logprobs


STREAMS = [TEXT[i : i + 300] for i in range(0, len(TEXT), 300)]


def test_bits_to_tokens_msb_first_and_padded():
    bits = [1, 0, 0, 0, 0, 0, 0, 1, 1, 1]
    np.testing.assert_array_equal(compression.bits_to_tokens(bits, 8), [129, 192])
    np.testing.assert_array_equal(compression.bits_to_tokens(bits, 16), [0b1000000111000000])
    assert compression.tokens_to_bits(np.array([129, 192]), 8)[:10] == bits


def test_gzip_bits_decompress():
    bits = compression.gzip_bits(TEXT)
    data = bytes(compression.bits_to_tokens(bits, 8).astype(np.uint8))
    assert zlib.decompress(data) == TEXT


def test_static_ac_ratio_is_eight_over_the_unigram_entropy():
    freqs = compression.unigram_freqs(TEXT)
    q = freqs / freqs.sum()
    counts = np.bincount(np.frombuffer(TEXT, np.uint8), minlength=256)
    entropy = -(counts[counts > 0] * np.log2(q[counts > 0])).sum() / len(TEXT)
    bits = ac.stream_encode(list(TEXT), [freqs] * len(TEXT))
    ratio = len(TEXT) / (len(bits) / 8)
    assert ratio == pytest.approx(8 / entropy, rel=0.01)


def check_windows(eq, streams, windows, model, alone=True):
    """Each window: b bits; alone, it decodes to its bytes and then stops (its padded
    code, first reached at its last byte, or a next symbol that does not fit) and
    re-encodes to its own bits; maximal unless counted as cut; all decode back together."""
    cuts = 0
    for stream, wins in zip(streams, windows) if alone else ():
        assert sum(n for _, n in wins) == len(stream)
        start = 0
        for value, n in wins:
            assert 0 <= value < 2**eq.bits
            piece = stream[start : start + n + 1]
            F = compression.model_freqs(model, np.frombuffer(piece, np.uint8)[None].astype(int))[0]
            enc, ends = ac.ExactEncoder(), start + n == len(stream) or n == eq.max_bytes
            for t in range(n):
                s = ac.decode_symbol(value, eq.bits, enc.low, enc.width, enc.n, F[t])
                enc.push(s, F[t])
                assert s == piece[t] and eq.fits(enc)
                assert (eq._padded(enc) == value) <= (t == n - 1)  # no earlier stop
            if eq._padded(enc) != value:  # a stop point: the next symbol does not fit
                s = ac.decode_symbol(value, eq.bits, enc.low, enc.width, enc.n, F[n])
                stop = enc.copy()
                stop.push(s, F[n])
                assert not ends and not eq.fits(stop)
            # re-encoded alone (with the byte after it, which a stop point depends on)
            alone_eq = compression.EqualInfo(eq.bits, max_bytes=eq.max_bytes)
            assert alone_eq.encode([piece], model, rows=1)[0][0] == (value, n)
            if not ends:
                greedy = enc.copy()
                greedy.push(piece[n], F[n])
                cuts += eq.fits(greedy)  # the next byte would have fitted
            start += n
    if alone:
        assert cuts == eq.stats["cut"]
    back = eq.decode([[v for v, _ in w] for w in windows], [len(s) for s in streams], model,
                     rows=3)  # fmt: skip
    assert back == list(streams)


@pytest.mark.parametrize("bits", [16, 32, 64, 128])
def test_equal_info_windows_are_exact_and_decode(bits):
    model = bigram_model()
    eq = compression.EqualInfo(bits, max_bytes=24 if bits <= 64 else bits)  # (window_cap)
    windows = eq.encode(STREAMS, model, rows=3)
    check_windows(eq, STREAMS, windows, model)
    assert eq.stats["windows"] == sum(map(len, windows))
    assert eq.stats["cut"] <= 0.1 * eq.stats["windows"]  # a sanity bound; runs report theirs
    # a good model packs more than b/8 bytes per window
    assert sum(map(len, STREAMS)) / eq.stats["windows"] > bits / 8


def test_equal_info_with_a_transformer_through_the_sampler_api():
    cfg = transformer.TransformerConfig(
        vocab_size=259, d_model=16, num_layers=1, num_heads=2, d_ff=32, max_len=64
    )
    model = transformer.Transformer(cfg, rngs=nnx.Rngs(0))

    def logprobs(bytes_BT):
        inputs = np.concatenate([np.full((len(bytes_BT), 1), 257), bytes_BT[:, :-1]], 1)
        return sampling.all_logprobs(model, inputs)[..., :256]

    eq = compression.EqualInfo(16, max_bytes=32)
    streams = STREAMS[:2]
    windows = eq.encode(streams, logprobs, rows=2)
    check_windows(eq, streams, windows, logprobs, alone=False)  # decodes back bit for bit


def test_m1_rows_are_bitwise_independent_of_neighbours_place_and_later_bytes():
    """What the coder relies on (module docstring of data/compression.py): one pass of
    the model gives a row the same bits whatever the other rows, the row's place in the
    batch, and the bytes after each position (the decoder feeds zeros there)."""
    cfg = transformer.TransformerConfig(
        vocab_size=259, d_model=16, num_layers=2, num_heads=2, d_ff=32, max_len=64
    )
    model = transformer.Transformer(cfg, rngs=nnx.Rngs(1))
    rng = np.random.default_rng(0)
    bytes_BT = rng.integers(0, 256, (8, 48)).astype(np.int32)
    ref_BTV = np.asarray(sampling.all_logprobs(model, bytes_BT))
    order = rng.permutation(8)
    moved_BTV = np.asarray(sampling.all_logprobs(model, bytes_BT[order]))
    np.testing.assert_array_equal(moved_BTV, ref_BTV[order])
    for r, t in [(0, 5), (3, 20), (7, 47)]:
        cut_BT = rng.integers(0, 256, bytes_BT.shape).astype(np.int32)  # new neighbours
        cut_BT[r, : t + 1], cut_BT[r, t + 1 :] = bytes_BT[r, : t + 1], 0
        got_TV = np.asarray(sampling.all_logprobs(model, cut_BT))[r, : t + 1]
        np.testing.assert_array_equal(got_TV, ref_BTV[r, : t + 1])


def test_token_ratio_doubles_with_sixteen_bit_tokens_for_b16():
    eq = compression.EqualInfo(16)
    windows = eq.encode(STREAMS, bigram_model(), rows=4)
    bits = [[b for v, _ in w for b in compression.int_to_bits(v, 16)] for w in windows]
    t8 = sum(len(compression.bits_to_tokens(b, 8)) for b in bits)
    t16 = sum(len(compression.bits_to_tokens(b, 16)) for b in bits)
    n = sum(map(len, STREAMS))
    assert n / t16 == 2 * (n / t8)


def test_b24_windows_in_sixteen_bit_tokens_straddle_windows_and_round_trip():
    model = bigram_model()
    eq = compression.EqualInfo(24)
    windows = eq.encode(STREAMS, model, rows=4)
    for stream, wins in zip(STREAMS, windows, strict=True):
        bits = [b for v, _ in wins for b in compression.int_to_bits(v, 24)]
        tokens = compression.bits_to_tokens(bits, 16)
        assert len(tokens) == math.ceil(24 * len(wins) / 16)  # 3 tokens per 2 windows
        back = compression.tokens_to_bits(tokens, 16)[: 24 * len(wins)]
        values = [int("".join(map(str, back[i : i + 24])), 2) for i in range(0, len(back), 24)]
        assert values == [v for v, _ in wins]
        assert eq.decode([values], [len(stream)], model, rows=4) == [stream]
        # token 1 straddles: window 0's last 8 bits, then window 1's first 8
        assert tokens[1] == (values[0] & 0xFF) << 8 | values[1] >> 16


def test_a_window_too_small_for_one_byte_is_refused():
    with pytest.raises(ValueError, match=r"cannot hold one byte .* use bits >= 15"):
        compression.EqualInfo(12)


def test_ac_bits_decode_with_the_same_model():
    model = bigram_model()
    bits = compression.ac_bits(STREAMS[:2], model, rows=2, context=64)
    for stream, b in zip(STREAMS[:2], bits):
        F = [compression.model_freqs(model, np.frombuffer(stream[c : c + 64], np.uint8)[None]
             .astype(int))[0] for c in range(0, len(stream), 64)]  # fmt: skip
        freqs = np.concatenate(F)
        assert ac.stream_decode(b, len(stream), lambda d, F=freqs: F[len(d)]) == list(stream)
        assert len(b) < 8 * len(stream) * 0.6
