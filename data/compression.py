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
  minimal code fits b bits (and at most `max_bytes` bytes); the code is zero-padded to
  exactly b bits; the next window starts at the first byte left out. Decoding: decode
  bytes from the window's point and stop at the first prefix whose own padded code is
  the window's bits. A greedy window whose padded code equals that of a shorter prefix
  of itself is cut to the shortest such prefix (which the rule then decodes exactly);
  the paper's decoder looks ahead instead and leaves such cases ambiguous. `stats`
  counts these cut windows.
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
    """One row's window in progress: start offset, coder, each prefix's (k, m) code."""

    start: int
    enc: ac.ExactEncoder
    codes: list[tuple[int, int]]
    open: bool = True  # may still take bytes


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

    def _padded(self, code: tuple[int, int]) -> int:
        k, m = code
        return m << (self.bits - k)

    def _extend(self, w: _Window, stream: bytes, F_TV: np.ndarray, t0: int) -> None:
        """Greedily pushes bytes at window offsets t0.. with frequencies F_TV[t]."""
        for t in range(t0, min(len(F_TV), len(stream) - w.start)):
            trial = w.enc.copy()
            trial.push(stream[w.start + t], F_TV[t])
            code = trial.code()
            if code[0] > self.bits:
                w.open = False
                return
            w.enc, w.codes = trial, w.codes + [code]
        if w.start + len(w.codes) >= len(stream) or len(w.codes) >= self.max_bytes:
            w.open = False

    def _close(self, w: _Window) -> tuple[int, int]:
        """(padded code, bytes): the shortest prefix whose padded code is the greedy one's."""
        target = self._padded(w.codes[-1])
        n = next(j for j, c in enumerate(w.codes, 1) if self._padded(c) == target)
        self.stats["windows"] += 1
        self.stats["cut"] += n < len(w.codes)
        self.stats["capped"] += n == self.max_bytes
        return target, n

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
            wins = {r: _Window(pos[r], ac.ExactEncoder(self.beta), []) for r in live}
            for r, F_TV in self._freqs(model, live, self.first, rows).items():
                self._extend(wins[r], group[r], F_TV, 0)
            more = {r: live[r] for r, w in wins.items() if w.open}
            for r, F_TV in self._freqs(model, more, self.max_bytes, max(1, rows // 4)).items():
                self._extend(wins[r], group[r], F_TV, self.first)
            for r, w in wins.items():
                value, n = self._close(w)
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
                e.push(s, f)
                cur[r].append(s)
                end = len(done[r]) + len(cur[r]) >= lengths[r]
                if end or self._padded(e.code()) == value:
                    done[r] += cur[r]
                    cur[r], enc[r], wi[r] = bytearray(), ac.ExactEncoder(self.beta), wi[r] + 1
