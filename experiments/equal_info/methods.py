"""The compression methods of the Equal-Info Windows reproduction, by name.

A method is a coder (how an example becomes bits, or tokens directly) and a token
width: 'eq16' is EqualInfoAC[b=16] in 8-bit tokens (v = 256), 'eq16_65k' the same
windows in 16-bit tokens (v = 65,536). Methods sharing a coder are written from one
pass of it (experiments/equal_info/compress.py). `get` also builds EqualInfoAC at any
other window size, 'eq24' or 'eq24_65k' (the paper's A.1), refusing one too small to
hold a byte.
"""

from __future__ import annotations

import dataclasses
import re

from data import compression


@dataclasses.dataclass(frozen=True)
class Method:
    """How text becomes M2's tokens."""

    name: str
    coder: str  # bytes | sp | gzip | static_ac | ac | eq16 | eq32 | eq64 | eq128
    token_bits: int  # 8 or 16 (sp: its vocabulary; bytes: 8)
    window_bits: int = 0  # EqualInfoAC's b (0: not windowed)

    @property
    def uses_m1(self) -> bool:
        return self.coder == "ac" or self.window_bits > 0

    def vocab(self, sp_vocab: int) -> int:
        """M2's vocabulary for this method."""
        return sp_vocab if self.coder == "sp" else 2**self.token_bits

    @property
    def tokens_per_window(self) -> int:
        """Tokens each window fills (0: not windowed or not a whole number)."""
        w, t = self.window_bits, self.token_bits
        return w // t if w and w % t == 0 else 0


WINDOW_BITS = (16, 32, 64, 128)  # EqualInfoAC's b, the paper's Table 16 sweep


def window_cap(max_window_bytes: int, window_bits: int) -> int:
    """The most bytes one window of `window_bits` may cover: `max_window_bytes`, raised to
    one byte a bit for windows longer than it (b = 128 holds ~64-70 bytes on average here,
    and a 64-byte cap would cut most of its windows; b <= 64 keep the cap they were
    measured with)."""
    return max(max_window_bytes, window_bits)


def _all() -> dict[str, Method]:
    methods = [Method("bytes", "bytes", 8), Method("sp", "sp", 0)]
    for coder in ("gzip", "static_ac", "ac"):
        methods += [Method(coder, coder, 8), Method(f"{coder}_65k", coder, 16)]
    for b in WINDOW_BITS:
        methods += [Method(f"eq{b}", f"eq{b}", 8, b), Method(f"eq{b}_65k", f"eq{b}", 16, b)]
    return {m.name: m for m in methods}


METHODS = _all()
SP_VOCAB = {"tiny": 512, "cpu": 4096, "cpu_bos": 4096, "cpu_4mb": 4096}  # per variant


def get(name: str) -> Method:
    """The method called `name`: one of METHODS, or eq<b>[_65k] for another window size.
    Raises ValueError (one sentence) for an unknown name or a window too small."""
    if name in METHODS:
        return METHODS[name]
    m = re.fullmatch(r"eq(\d+)(_65k)?", name)
    if not m:
        raise ValueError(
            f"method {name!r} is unknown; choose one of {', '.join(METHODS)}, or "
            "eq<b>[_65k] for EqualInfoAC at another window size b."
        )
    b = int(m.group(1))
    try:
        compression.EqualInfo(b)  # refuses b too small to hold one byte
    except ValueError as e:
        raise ValueError(f"method {name!r}: {e}") from None
    return Method(name, f"eq{b}", 16 if m.group(2) else 8, b)


def ordered(names: list[str]) -> list[str]:
    """Method names (e.g. folders found on disk) that `get` knows, METHODS' order first."""
    known = [n for n in names if _known(n)]
    return [n for n in METHODS if n in known] + sorted(set(known) - METHODS.keys())


def _known(name: str) -> bool:
    try:
        get(name)
    except ValueError:
        return False
    return True
