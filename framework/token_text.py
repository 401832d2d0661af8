"""Text of token ids in context, for the sampler: continuations, stop strings, the cut.

A tokenizer may encode and decode the start of a text differently from its middle:
SentencePiece adds a word-boundary piece ("▁") in front of a text on `encode` and drops
a leading one on `decode`, so the ids of "2" alone differ from those of "2" after "1+1=",
and generated ids decoded alone lose their leading space. The sampler therefore decodes
a continuation after a fixed one-token context and encodes a continuation together with
its prompt. With the byte tokenizer both are the plain encode/decode.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

CONTEXT = "a"  # what a continuation is decoded after (its text is then cut off)


def continuation_text(tokenizer: Any, ids: Sequence[int] | np.ndarray) -> str:
    """The text `ids` add when they follow other text (leading spaces kept)."""
    context = [int(i) for i in tokenizer.encode(CONTEXT)]
    head = tokenizer.decode(context)
    text = tokenizer.decode(context + [int(i) for i in np.asarray(ids).reshape(-1)])
    return text[len(head) :] if text.startswith(head) else tokenizer.decode(ids)


def _after(tokenizer: Any, before: str, text: str) -> np.ndarray | None:
    """The ids `text` gets after `before` (None when `before`'s ids are not a prefix of
    the ids of both together, i.e. the tokenizer merges across the boundary)."""
    head = np.asarray(tokenizer.encode(before), np.int32)
    full = np.asarray(tokenizer.encode(before + text), np.int32)
    if len(full) < len(head) or not np.array_equal(full[: len(head)], head):
        return None
    return full[len(head) :]


def continuation_ids(tokenizer: Any, prompt: str, continuation: str) -> np.ndarray:
    """The ids `continuation` has after `prompt` (what a model scoring it predicts);
    its ids alone when the tokenizer merges across the boundary."""
    ids = _after(tokenizer, prompt, continuation)
    return np.asarray(tokenizer.encode(continuation), np.int32) if ids is None else ids


@functools.cache  # one decode per id, once per tokenizer
def _token_texts(tokenizer: Any, vocab: int) -> tuple[str, ...]:
    """The text of every single token id (for stop-string containment)."""
    return tuple(tokenizer.decode([i]) for i in range(vocab))


def stop_tables(
    tokenizer: Any, vocab: int, stop_tokens: Sequence[int] | None, stop_strings: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(stop_V bool [V], stop_SK int32 [S, K]): single stop tokens and stop sequences.

    stop_SK rows are right-aligned encodings of stop strings, both as a text starts and
    after other text (they differ for SentencePiece); -1 is a wildcard (left pad) and an
    all -3 row never matches. S and K are padded to powers of two (>= 4, >= 1).
    """
    stop_V = np.zeros(vocab, bool)
    ids = [tokenizer.eos_id] if stop_tokens is None else list(stop_tokens)
    bad = [i for i in ids if not 0 <= i < vocab]
    if bad:
        raise ValueError(f"stop tokens {bad} are outside the vocabulary of {vocab} ids.")
    stop_V[ids] = True
    seqs: list[np.ndarray] = []
    for s in stop_strings:
        if not s:
            raise ValueError("stop strings must be non-empty.")
        stop_V |= np.array([s in t for t in _token_texts(tokenizer, vocab)])
        forms = (np.asarray(tokenizer.encode(s), np.int32), _after(tokenizer, CONTEXT, s))
        for enc in forms:
            if enc is not None and len(enc) > 1 and not any(np.array_equal(enc, q) for q in seqs):
                seqs.append(enc)
    from framework.sampling import bucket_length  # noqa: PLC0415 (sampling imports us)

    K = bucket_length(max([len(q) for q in seqs], default=1), 1)
    stop_SK = np.full((bucket_length(len(seqs), 4), K), -3, np.int32)
    for i, q in enumerate(seqs):
        stop_SK[i] = -1
        stop_SK[i, K - len(q) :] = q
    return stop_V, stop_SK


def cut_at_stop(tokenizer: Any, ids: np.ndarray, stop_strings: Sequence[str]) -> tuple[str, int]:
    """(continuation text before the first stop string, tokens needed to reach it or
    len(ids))."""
    text = continuation_text(tokenizer, ids)
    hits = [text.find(s) for s in stop_strings if s in text]
    if not hits:
        return text, len(ids)
    lo, hi = 1, len(ids)  # smallest prefix whose text contains a stop string
    while lo < hi:
        mid = (lo + hi) // 2
        prefix = continuation_text(tokenizer, ids[:mid])
        lo, hi = (lo, mid) if any(s in prefix for s in stop_strings) else (mid + 1, hi)
    return text[: min(hits)], lo
