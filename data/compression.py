"""Text compressed into token ids: GZip, StaticAC, AC and Equal-Info Windows.

Lester et al. 2024 ("Training LLMs over Neurally Compressed Text") train LMs on the
bits of compressed text, cut into tokens of 8 or 16 bits. The byte model that drives
the arithmetic coder (M1) is any `ByteModel`: a callable mapping bytes [B, T] (int32,
0..255) to log p(byte t | bytes < t of its row) [B, T, 256]. It must be causal and
row-independent at a fixed shape, so that the decoder, which calls it with the same
shapes and rows but zeros after the decoded prefix, gets bit-identical distributions
(the experiment builds one from a trained LM; tests use small n-gram tables).

- `bits_to_tokens`: a bit string, most significant bit first, in `token_bits` chunks
  (the last zero-padded).
- GZip: zlib at its default level, header and checksum kept (as the paper).
- StaticAC: a unigram byte model (`unigram_freqs`) and the streaming coder.
- AC: M1 over the whole example and the streaming coder; M1's context restarts every
  `context` bytes (its trained length) — our choice, the paper's M1 saw 1,024 bytes.
- EqualInfoAC[b] (`EqualInfo`): greedy windows. From a window's start, a fresh exact
  coder and M1 conditioned only on the window's bytes encode byte after byte while the
  minimal code fits b bits (and at most `max_bytes` bytes); the next window starts at
  the first byte left out. The window's b bits: when a byte did not fit, a b-bit point
  of the window's interval at which the next decoded symbol does not fit b bits (and
  which is no prefix's zero-padded code); else (cap, end, or no such point) its minimal
  code zero-padded, as the paper. The decoder decodes bytes while they fit and stops at
  the first prefix whose padded code is the window's bits, or before the first symbol
  that does not fit (the end marker). Exact by construction. A zero-padded window
  covers the shortest prefix with its padded code, shorter than the greedy window when
  the last bytes did not move the code (`stats['cut']`). The paper always pads with
  zeros and decodes by look-ahead, which is ambiguous in that case.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Sequence

import numpy as np

from data import arithmetic_coding as ac

ByteModel = Callable[[np.ndarray], np.ndarray]  # bytes [B, T] -> log-probs [B, T, 256]


def bits_to_tokens(bits: Sequence[int], token_bits: int) -> np.ndarray:
    """Bits (MSB first) as ids of `token_bits` bits each, the last token zero-padded."""
    b = np.asarray(bits, np.int64)
    b = np.pad(b, (0, -len(b) % token_bits)).reshape(-1, token_bits)
    return (b << np.arange(token_bits - 1, -1, -1)).sum(axis=1).astype(np.int64)


def tokens_to_bits(tokens: np.ndarray, token_bits: int) -> list[int]:
    """The inverse of bits_to_tokens (padding included)."""
    t = np.asarray(tokens, np.int64)[:, None]
    return ((t >> np.arange(token_bits - 1, -1, -1)) & 1).reshape(-1).tolist()


def int_to_bits(value: int, n: int) -> list[int]:
    """`value` as n bits, most significant first."""
    return [(value >> (n - 1 - i)) & 1 for i in range(n)]


def gzip_bits(example: bytes) -> list[int]:
    """zlib (default level, 2-byte header and Adler-32 checksum kept) as bits."""
    return tokens_to_bits(np.frombuffer(zlib.compress(example), np.uint8), 8)


def unigram_freqs(data: bytes, beta: int = ac.BETA) -> np.ndarray:
    """Quantised byte frequencies of `data` (every byte value >= 1 / 2**beta)."""
    counts = np.bincount(np.frombuffer(data, np.uint8), minlength=256).astype(np.float64)
    return ac.quantize(counts / counts.sum(), beta)


def model_freqs(model: ByteModel, bytes_BT: np.ndarray, beta: int = ac.BETA) -> np.ndarray:
    """Quantised next-byte frequencies [B, T, 256] of M1 on bytes_BT."""
    logp = np.asarray(model(np.ascontiguousarray(bytes_BT, np.int32)), np.float64)
    return ac.quantize(np.exp(logp), beta)


def ac_bits(
    examples: Sequence[bytes], model: ByteModel, *, rows: int, context: int
) -> list[list[int]]:
    """The streaming-coder bits of each example under M1 (context restarting every
    `context` bytes), M1 run on `rows` examples at a time."""
    out = []
    for g in range(0, len(examples), rows):
        group = examples[g : g + rows]
        longest = max(len(x) for x in group)
        freqs = [[] for _ in group]
        for c in range(0, longest, context):
            ctx_BT = np.zeros((rows, context), np.int32)
            for r, x in enumerate(group):
                chunk = np.frombuffer(x[c : c + context], np.uint8)
                ctx_BT[r, : len(chunk)] = chunk
            F = model_freqs(model, ctx_BT)
            for r, x in enumerate(group):
                freqs[r].extend(F[r, : max(0, min(context, len(x) - c))])
        out += [ac.stream_encode(list(x), f) for x, f in zip(group, freqs)]
    return out


@dataclasses.dataclass
class _Window:
    """One row's window in progress: its start, the coder after each prefix (encs[j]:
    j bytes), the frequencies at each position, and whether a byte was rejected."""

    start: int
    encs: list[ac.ExactEncoder]
    freqs: list[np.ndarray] = dataclasses.field(default_factory=list)
    open: bool = True  # may still take bytes
    rejected: bool = False  # ended because the next byte did not fit (not cap or end)


@dataclasses.dataclass
class EqualInfo:
    """EqualInfoAC[b]: windows of exactly `bits` bits (module docstring)."""

    bits: int
    max_bytes: int = 64
    beta: int = ac.BETA

    def __post_init__(self) -> None:
        if self.bits < self.beta + 1:
            raise ValueError(
                f"a window of {self.bits} bits cannot hold one byte at precision beta="
                f"{self.beta} (a byte may need {self.beta + 1} bits); use bits >= {self.beta + 1}."
            )
        # The first M1 pass covers `bits` bytes (a window rarely holds more bytes than
        # bits: that needs under 1 bit a byte); longer windows take a second pass.
        self.first = min(self.max_bytes, self.bits)
        self.stats = {"windows": 0, "cut": 0, "capped": 0}

    def fits(self, enc: ac.ExactEncoder) -> bool:
        """Whether the coded prefix's minimal code has at most `bits` bits."""
        return enc.code()[0] <= self.bits

    def _extend(self, w: _Window, stream: bytes, F_TV: np.ndarray, t0: int) -> None:
        """Greedily pushes bytes at window offsets t0.. with frequencies F_TV[t]."""
        for t in range(t0, min(len(F_TV), len(stream) - w.start)):
            trial = w.encs[-1].copy()
            trial.push(stream[w.start + t], F_TV[t])
            w.freqs.append(F_TV[t])
            if not self.fits(trial):
                w.open, w.rejected = False, True
                return
            w.encs.append(trial)
        if w.start + len(w.encs) - 1 >= len(stream) or len(w.encs) - 1 >= self.max_bytes:
            w.open = False

    def _padded(self, enc: ac.ExactEncoder) -> int:
        """The coded prefix's minimal code, zero-padded to `bits` bits."""
        k, m = enc.code()
        return m << (self.bits - k)

    def _stop_point(
        self, enc: ac.ExactEncoder, f: np.ndarray, hint: int, exclude: set[int]
    ) -> int | None:
        """A b-bit point in enc's interval whose next symbol under f does not fit b bits
        (the symbol's sub-interval holds that one grid point but not the cell after it),
        or None. Symbols are prefiltered in float64 (grid units), checked exactly, `hint`
        first, then in symbol order."""
        b, beta, S = self.bits, self.beta, self.beta * (enc.n + 1)
        shift = max(S, b)  # exact integers at scale 2**shift
        A = (enc.low << beta) << (shift - S)
        W, G = enc.width << (shift - S), 1 << (shift - b)
        cum = [0, *np.cumsum(f).tolist()]

        def check(s: int) -> int | None:
            lo, hi = A + cum[s] * W, A + cum[s + 1] * W
            g = -(-lo // G)
            return g if g * G < hi < (g + 1) * G else None

        first = -(-A // G)
        cum_f = np.asarray(cum, np.float64) * (W / G) - (first * G - A) / G  # grid units
        lo, hi, eps = cum_f[:-1], cum_f[1:], 1e-6
        g = np.ceil(lo - eps)
        maybe = (hi - lo < 2 + eps) & (g < hi + eps) & (g + 1 > hi - eps)
        for s in [hint, *np.flatnonzero(maybe).tolist()] if maybe[hint] else np.flatnonzero(maybe):
            if (g := check(int(s))) is not None and g not in exclude:
                return g
        return None

    def _close(self, w: _Window, stream: bytes) -> tuple[int, int]:
        """(b-bit value, bytes) of a finished greedy window of n bytes. The decoder stops
        at the first prefix whose zero-padded code is the value, or before a decoded
        symbol that does not fit b bits. So: a stop point (a point of the window's
        interval whose next symbol does not fit, unlike any prefix's padded code) when a
        byte was rejected; else, or when there is none, the padded code of the n bytes,
        covering the shortest prefix with that padded code (then `cut` if shorter)."""
        n = len(w.encs) - 1
        padded = [self._padded(e) for e in w.encs[1:]]
        self.stats["windows"] += 1
        self.stats["capped"] += n == self.max_bytes
        if w.rejected:
            g = self._stop_point(w.encs[n], w.freqs[n], stream[w.start + n], set(padded))
            if g is not None:
                return g, n
        j = padded.index(padded[-1]) + 1
        self.stats["cut"] += j < n
        return padded[-1], j

    def _freqs(
        self, model: ByteModel, contexts: dict[int, bytes], width: int, batch: int
    ) -> dict[int, np.ndarray]:
        """Quantised frequencies [width, 256] of each row's context (zero-padded), M1 run
        on fixed [batch, width] shapes with the rows packed in key order."""
        out, keys = {}, sorted(contexts)
        for i in range(0, len(keys), batch):
            ctx_BT = np.zeros((batch, width), np.int32)
            for j, r in enumerate(keys[i : i + batch]):
                chunk = np.frombuffer(contexts[r][:width], np.uint8)
                ctx_BT[j, : len(chunk)] = chunk
            F = model_freqs(model, ctx_BT, self.beta)
            out |= {r: F[j] for j, r in enumerate(keys[i : i + batch])}
        return out

    def encode(
        self, streams: Sequence[bytes], model: ByteModel, *, rows: int
    ) -> list[list[tuple[int, int]]]:
        """Per stream, its windows as (b-bit value, bytes covered). M1 runs on [rows,
        first] and [rows // 4, max_bytes] shapes, whichever rows need them packed in
        order; for a fixed shape a row's distributions do not depend on its position or
        on the other rows (checked by decoding in tests and in compress.py)."""
        out = []
        for g in range(0, len(streams), rows):
            out += self._encode_group(list(streams[g : g + rows]), model, rows)
        return out

    def _encode_group(self, group: list[bytes], model: ByteModel, rows: int) -> list:
        pos, out = [0] * len(group), [[] for _ in group]
        while True:
            live = {r: s[p : p + self.max_bytes] for r, (s, p) in enumerate(zip(group, pos))
                    if p < len(s)}  # fmt: skip
            if not live:
                return out
            wins = {r: _Window(pos[r], [ac.ExactEncoder(self.beta)]) for r in live}
            for r, F_TV in self._freqs(model, live, self.first, rows).items():
                self._extend(wins[r], group[r], F_TV, 0)
            more = {r: live[r] for r, w in wins.items() if w.open}
            for r, F_TV in self._freqs(model, more, self.max_bytes, max(1, rows // 4)).items():
                self._extend(wins[r], group[r], F_TV, self.first)
            for r, w in wins.items():
                value, n = self._close(w, group[r])
                out[r].append((value, n))
                pos[r] += n

    def decode(
        self, windows: Sequence[Sequence[int]], lengths: Sequence[int], model: ByteModel, *,
        rows: int,
    ) -> list[bytes]:  # fmt: skip
        """The streams of `encode`'s window values (b-bit ints), given each one's length."""
        out = []
        for g in range(0, len(windows), rows):
            out += self._decode_group(windows[g : g + rows], lengths[g : g + rows], model, rows)
        return out

    def _decode_group(self, windows, lengths, model: ByteModel, rows: int) -> list[bytes]:
        done = [bytearray() for _ in windows]  # finished windows' bytes
        cur = [bytearray() for _ in windows]  # the current window's bytes so far
        enc = [ac.ExactEncoder(self.beta) for _ in windows]
        wi = [0] * len(windows)
        while True:
            live = [r for r, n in enumerate(lengths) if len(done[r]) + len(cur[r]) < n]
            if not live:
                return [bytes(d) for d in done]
            first = {r: bytes(cur[r]) for r in live if len(cur[r]) < self.first}
            later = {r: bytes(cur[r]) for r in live if len(cur[r]) >= self.first}
            F = self._freqs(model, first, self.first, rows)
            F |= self._freqs(model, later, self.max_bytes, max(1, rows // 4))
            for r in live:
                value, e, f = int(windows[r][wi[r]]), enc[r], F[r][len(cur[r])]
                s = ac.decode_symbol(value, self.bits, e.low, e.width, e.n, f, self.beta)
                trial = e.copy()
                trial.push(s, f)
                fits = self.fits(trial)
                if fits:  # else s is the stop signal, not a byte
                    enc[r] = trial
                    cur[r].append(s)
                full = len(done[r]) + len(cur[r]) >= lengths[r] or len(cur[r]) == self.max_bytes
                if full or not fits or self._padded(trial) == value:
                    done[r] += cur[r]
                    cur[r], enc[r], wi[r] = bytearray(), ac.ExactEncoder(self.beta), wi[r] + 1
