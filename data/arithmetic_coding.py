"""Arithmetic coding with bit-exact termination: an exact coder and a streaming one.

Written here rather than taken from a library: `constriction` (the maintained Python
range coder) always terminates on 32-bit words and re-quantises probabilities, so it
cannot produce the minimal, bit-exact codes that Equal-Info Windows need (a window is
exactly b bits, and its bits must re-encode to themselves).

- `quantize(probs)`: integer frequencies at precision beta (sum 2**beta, each >= 1,
  deterministic): f = 1 + floor(p * (2**beta - V)), the remainder to the argmax.
- Exact coder (`ExactEncoder`, `encode`, `decode`): the interval [l, l + w) at scale
  2**(beta * n) as Python integers. The code is the shortest bit string b whose dyadic
  interval [0.b, 0.b + 2**-|b|) lies inside the final interval, the leftmost of that
  length; its length is within [ceil(-log2 q), ceil(-log2 q) + 1] for q = prod f / 2**beta.
  Exact, but the integers grow with the message: for windows and short examples.
- Streaming coder (`stream_encode`, `stream_decode`): Witten-Neal-Cleary with 32-bit
  low/high and pending bits, the same quantised frequencies; constant memory per
  symbol, for whole examples. Its range splitting rounds, so its bits differ from the
  exact coder's; its length stays within a few bits of it.

Bits are lists of 0/1 ints, most significant first. A `freqs` argument is one int64 row
of V frequencies (`quantize` output); `freqs_fn(prefix)` gives the row for the next
symbol after `prefix` (a model conditioned on what was decoded so far).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import numpy as np

BETA = 14  # the paper's precision: frequencies sum to 2**14, one symbol needs <= 15 bits


def quantize(probs: np.ndarray, beta: int = BETA) -> np.ndarray:
    """int64 frequencies [..., V] from probabilities [..., V]: sum 2**beta, every one >= 1."""
    p = np.asarray(probs, np.float64)
    V = p.shape[-1]
    if 2**beta <= V:
        raise ValueError(f"{V} symbols do not fit precision beta={beta} (need V < 2**beta).")
    p = np.clip(p, 0.0, None)
    total = p.sum(axis=-1, keepdims=True)
    if not (np.isfinite(total).all() and (total > 0).all()):
        raise ValueError("quantize needs probabilities with a finite, positive sum per row.")
    p = p / total
    f = 1 + np.floor(p * (2**beta - V)).astype(np.int64)
    top = p.argmax(axis=-1)[..., None]
    rest = (2**beta - f.sum(axis=-1))[..., None]
    np.put_along_axis(f, top, np.take_along_axis(f, top, axis=-1) + rest, axis=-1)
    return f


def code_bits(freqs: Sequence[np.ndarray], symbols: Sequence[int], beta: int = BETA) -> float:
    """-log2 of the quantised probability of `symbols` (the ideal code length)."""
    return float(sum(beta - np.log2(f[s]) for f, s in zip(freqs, symbols)))


def _cum(freqs: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(freqs)])


class ExactEncoder:
    """The exact interval after each symbol; `bits()` terminates minimally at any point."""

    def __init__(self, beta: int = BETA) -> None:
        self.beta, self.low, self.width, self.n = beta, 0, 1, 0

    def push(self, symbol: int, freqs: np.ndarray) -> None:
        """Narrows the interval to `symbol`'s share under `freqs`."""
        lo = int(np.sum(freqs[:symbol]))
        self.low = (self.low << self.beta) + lo * self.width
        self.width *= int(freqs[symbol])
        self.n += 1

    def num_bits(self) -> int:
        """The length of the minimal terminating code now."""
        return self.code()[0]

    def bits(self) -> list[int]:
        """The minimal terminating code now (the leftmost of the shortest ones)."""
        k, m = self.code()
        return [(m >> (k - 1 - i)) & 1 for i in range(k)]

    def copy(self) -> ExactEncoder:
        """An independent encoder in the same state."""
        new = ExactEncoder(self.beta)
        new.low, new.width, new.n = self.low, self.width, self.n
        return new

    def code(self) -> tuple[int, int]:
        """(k, m): the minimal code is m written in k bits."""
        shift = self.beta * self.n  # the interval is [low, low + width) / 2**shift
        k = ((-(-(1 << shift) // self.width)) - 1).bit_length()  # min k: width * 2**k >= 2**shift
        while True:  # k or k + 1
            m = -((-(self.low << k)) >> shift)  # ceil(low * 2**k / 2**shift)
            if (m + 1) << shift <= (self.low + self.width) << k:
                return k, m
            k += 1


def encode(symbols: Sequence[int], freqs: Sequence[np.ndarray], beta: int = BETA) -> list[int]:
    """The exact minimal code of `symbols`, symbol i coded with frequency row freqs[i]."""
    enc = ExactEncoder(beta)
    for s, f in zip(symbols, freqs, strict=True):
        enc.push(int(s), f)
    return enc.bits()


def decode_symbol(
    value: int, nbits: int, low: int, width: int, n: int, freqs: np.ndarray, beta: int = BETA
) -> int:
    """The symbol whose sub-interval of [low, low + width) (scale 2**(beta*n)) holds the
    point value / 2**nbits."""
    num = (value << (beta * (n + 1))) - ((low << beta) << nbits)
    c = num // (width << nbits)
    return int(np.searchsorted(_cum(freqs), c, side="right") - 1)


def decode(
    bits: Sequence[int],
    n_or_stop: int | Callable[[list[int]], bool],
    freqs_fn: Callable[[list[int]], np.ndarray],
    beta: int = BETA,
) -> list[int]:
    """Decodes the point 0.bits: n symbols, or until `stop(decoded)` is true."""
    value, nbits = int("".join(map(str, bits)) or "0", 2), len(bits)
    enc, out = ExactEncoder(beta), []
    if isinstance(n_or_stop, numbers.Integral):
        n = int(n_or_stop)
        done = lambda d: len(d) >= n
    else:
        done = n_or_stop
    while not done(out):
        f = freqs_fn(out)
        s = decode_symbol(value, nbits, enc.low, enc.width, enc.n, f, beta)
        enc.push(s, f)
        out.append(s)
    return out


# ----------------------------------------------------------------------------- streaming

_PREC = 32
_TOP, _HALF, _QUARTER = (1 << _PREC) - 1, 1 << (_PREC - 1), 1 << (_PREC - 2)


def _split(low: int, high: int, lo: int, f: int, beta: int) -> tuple[int, int]:
    span = high - low + 1
    return low + (span * lo >> beta), low + (span * (lo + f) >> beta) - 1


def stream_encode(
    symbols: Sequence[int], freqs: Sequence[np.ndarray], beta: int = BETA
) -> list[int]:
    """Witten-Neal-Cleary encoding (32-bit registers) with a two-bit termination."""
    low, high, pending, out = 0, _TOP, 0, []

    def emit(bit: int) -> None:
        nonlocal pending
        out.append(bit)
        out.extend([1 - bit] * pending)
        pending = 0

    for s, f in zip(symbols, freqs, strict=True):
        low, high = _split(low, high, int(np.sum(f[:s])), int(f[s]), beta)
        while True:
            if high < _HALF:
                emit(0)
            elif low >= _HALF:
                emit(1)
                low, high = low - _HALF, high - _HALF
            elif low >= _QUARTER and high < _HALF + _QUARTER:
                pending += 1
                low, high = low - _QUARTER, high - _QUARTER
            else:
                break
            low, high = 2 * low, 2 * high + 1
    pending += 1
    emit(0 if low < _QUARTER else 1)
    return out


def stream_decode(
    bits: Sequence[int],
    n: int,
    freqs_fn: Callable[[list[int]], np.ndarray],
    beta: int = BETA,
) -> list[int]:
    """Decodes n symbols of `stream_encode` output (bits past the end read as 0)."""
    it = iter(bits)
    value = 0
    for _ in range(_PREC):
        value = 2 * value + int(next(it, 0))
    low, high, out = 0, _TOP, []
    while len(out) < n:
        f = freqs_fn(out)
        cum = _cum(f)
        span = high - low + 1
        target = ((value - low + 1) << beta) - 1
        s = int(np.searchsorted(cum, target // span, side="right") - 1)
        while low + (span * int(cum[s + 1]) >> beta) - 1 < value:  # guard rounding
            s += 1
        while low + (span * int(cum[s]) >> beta) > value:
            s -= 1
        low, high = _split(low, high, int(cum[s]), int(f[s]), beta)
        out.append(s)
        while True:
            if high < _HALF:
                pass
            elif low >= _HALF:
                low, high, value = low - _HALF, high - _HALF, value - _HALF
            elif low >= _QUARTER and high < _HALF + _QUARTER:
                low, high, value = low - _QUARTER, high - _QUARTER, value - _QUARTER
            else:
                break
            low, high, value = 2 * low, 2 * high + 1, 2 * value + int(next(it, 0))
    return out
