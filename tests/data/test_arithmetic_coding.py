"""data/arithmetic_coding.py: quantiser, exact coder (bounds, round trip), streaming coder."""

from __future__ import annotations

import math

import numpy as np
import pytest

from data import arithmetic_coding as ac


def random_message(rng, max_len=60):
    V = int(rng.integers(2, 300))
    n = int(rng.integers(1, max_len))
    freqs = ac.quantize(rng.dirichlet(np.full(V, 0.3), size=n))
    symbols = [int(rng.choice(V, p=f / f.sum())) for f in freqs]
    return symbols, freqs


def test_quantize_sums_to_two_to_beta_every_symbol_at_least_one_deterministic():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(256, 0.05), size=50)
    p[0] = 0.0
    p[0, 3] = 1.0  # one certain symbol: the other 255 still get 1 each
    f = ac.quantize(p)
    assert f.dtype == np.int64 and f.shape == (50, 256)
    np.testing.assert_array_equal(f.sum(-1), 2**14)
    assert f.min() == 1
    assert f[0, 3] == 2**14 - 255
    np.testing.assert_array_equal(ac.quantize(p.copy()), f)
    with pytest.raises(ValueError, match="do not fit precision"):
        ac.quantize(np.ones(2**14))


def test_exact_round_trip_and_length_within_one_bit_of_ideal():
    rng = np.random.default_rng(1)
    for _ in range(200):
        symbols, freqs = random_message(rng)
        bits = ac.encode(symbols, freqs)
        ideal = math.ceil(ac.code_bits(freqs, symbols) - 1e-9)
        assert ideal <= len(bits) <= ideal + 1
        assert ac.decode(bits, len(symbols), lambda d, F=freqs: F[len(d)]) == symbols


def test_uniform_bytes_cost_exactly_eight_bits_each():
    freqs = ac.quantize(np.full((10, 256), 1 / 256))
    assert (freqs == 64).all()
    symbols = [0, 255, 7, 128, 1, 2, 3, 200, 99, 0]
    bits = ac.encode(symbols, freqs)
    assert len(bits) == 80
    # the code of a uniform byte string is the bytes themselves
    assert int("".join(map(str, bits)), 2) == int.from_bytes(bytes(symbols), "big")
    assert ac.encode([], []) == []


def test_decode_until_a_stop_condition():
    freqs = ac.quantize(np.full((8, 4), 0.25))
    bits = ac.encode([1, 2, 3], freqs[:3])
    out = ac.decode(bits + [0, 0], lambda d: len(d) == 3, lambda d: freqs[len(d)])
    assert out == [1, 2, 3]


def test_streaming_round_trip_within_two_bits_of_the_exact_coder():
    rng = np.random.default_rng(2)
    diffs = []
    for _ in range(200):
        symbols, freqs = random_message(rng, max_len=200)
        exact = ac.encode(symbols, freqs)
        stream = ac.stream_encode(symbols, freqs)
        diffs.append(len(stream) - len(exact))
        assert ac.stream_decode(stream, len(symbols), lambda d, F=freqs: F[len(d)]) == symbols
    assert max(diffs) <= 2 and min(diffs) >= -2


def test_streaming_coder_handles_long_inputs():
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.full(256, 0.1))
    freqs = ac.quantize(p)
    symbols = [int(s) for s in rng.choice(256, size=5_000, p=freqs / freqs.sum())]
    bits = ac.stream_encode(symbols, [freqs] * len(symbols))
    ideal = ac.code_bits([freqs] * len(symbols), symbols)
    assert ideal <= len(bits) <= ideal * 1.0001 + 2
    assert ac.stream_decode(bits, len(symbols), lambda d: freqs) == symbols


def test_numpy_inputs_and_bad_rows():
    freqs = ac.quantize(np.full((3, 4), 0.25))
    bits = np.array(ac.encode([1, 2, 3], freqs), np.uint8)
    assert ac.decode(bits, np.int64(3), lambda d: freqs[len(d)]) == [1, 2, 3]
    stream = np.array(ac.stream_encode([1, 2, 3], freqs), np.uint8)
    assert ac.stream_decode(stream, 3, lambda d: freqs[len(d)]) == [1, 2, 3]
    with pytest.raises(ValueError, match="finite, positive sum"):
        ac.quantize(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="finite, positive sum"):
        ac.quantize(np.array([0.5, np.nan]))
