"""Needle-in-a-haystack prompts and their scoring (the Gemini 1.5 protocol, byte level).

A needle is the sentence "The special magic {city} number is: {number}." inserted into a
haystack of real text at depth d (0-100 % of the haystack, moved back to the start of
the sentence it falls in, as the original NIAH code moves it to a sentence boundary;
at 100 % the start of the haystack's last sentence); the question "What is the special
magic {city} number?" ends the prompt. `make_prompt` makes a prompt of exactly `length`
characters (bytes for ASCII text: the byte LM's tokens) by trimming the haystack.
Several needles (distinct cities) make the multi-needle variant; one of them is asked.
Scoring is exact match of the number the model writes first (no judge model), as
Gemini 1.5 scores it.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import json
import math
import os
import random
import re
from collections.abc import Sequence

CITIES = (
    "Paris", "Lagos", "Lima", "Oslo", "Cairo", "Delhi", "Quito", "Perth", "Seoul", "Dakar",
    "Hanoi", "Tunis", "Sofia", "Minsk", "Riga", "Kyiv", "Baku", "Doha", "Accra", "Malmo",
    "Porto", "Turin", "Bern", "Graz", "Cork", "Leeds", "Bonn", "Pisa", "Nice", "Lyon",
    "Rome", "Milan", "Kobe", "Osaka", "Dubai", "Muscat", "Male", "Suva", "Apia", "Nuuk",
    "Reno", "Austin", "Boise", "Tampa", "Miami", "Dallas", "Denver", "Omaha", "Fargo", "Salem",
)  # fmt: skip
NEEDLE = "The special magic {city} number is: {number}. "
QUESTION = "\nWhat is the special magic {city} number? "
SENTENCE_END = re.compile(r"[.!?]\s+")


@dataclasses.dataclass(frozen=True)
class Needle:
    """One fact hidden in the haystack."""

    city: str
    number: str  # digits

    @property
    def text(self) -> str:
        """The needle sentence."""
        return NEEDLE.format(city=self.city, number=self.number)


def random_needles(count: int, rng: random.Random, digits: int = 5) -> list[Needle]:
    """`count` needles with distinct cities and random `digits`-digit numbers."""
    if not 1 <= count <= len(CITIES):
        raise ValueError(f"needle count {count} must be in [1, {len(CITIES)}].")
    cities = rng.sample(CITIES, count)
    low, high = 10 ** (digits - 1), 10**digits - 1
    return [Needle(c, str(rng.randint(low, high))) for c in cities]


@functools.lru_cache(maxsize=4)  # the corpus's, for every prompt made from it
def sentence_starts(text: str) -> tuple[int, ...]:
    """Offsets where a sentence starts (0 and after every '.', '!' or '?' + whitespace)."""
    return (0, *(m.end() for m in SENTENCE_END.finditer(text) if m.end() < len(text)))


def insertion_point(text: str, depth: float) -> int:
    """The start of the sentence at fraction `depth` of `text` (at depth 1 the last one:
    the trimmed haystack may end inside a sentence)."""
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth {depth} must be in [0, 1].")
    at = int(depth * len(text))
    return max(s for s in sentence_starts(text) if s <= at)


def make_prompt(
    corpus: str,
    needles: Sequence[Needle],
    depths: Sequence[float],
    length: int,
    ask: int = 0,
    offset: int = 0,
) -> tuple[str, str]:
    """(prompt of exactly `length` characters, the answer): the haystack is `corpus` from
    the first sentence start at or after `offset`, trimmed to make room for the needles
    (needle i at depths[i]) and the question about needles[ask]."""
    if len(needles) != len(depths):
        raise ValueError(f"{len(needles)} needles but {len(depths)} depths.")
    question = QUESTION.format(city=needles[ask].city)
    room = length - len(question) - sum(len(n.text) for n in needles)
    starts = sentence_starts(corpus)
    i = bisect.bisect_left(starts, offset)
    start = starts[i] if i < len(starts) else 0
    if room < 1 or len(corpus) - start < room:
        raise ValueError(
            f"a prompt of {length} characters leaves {room} for the haystack; the corpus "
            f"from offset {offset} has {len(corpus) - start}: lengthen or shorten."
        )
    haystack = corpus[start : start + room]
    points = [insertion_point(haystack, d) for d in depths]
    pieces, last = [], 0
    for point, needle in sorted(zip(points, needles, strict=True), key=lambda p: p[0]):
        pieces += [haystack[last:point], needle.text]
        last = point
    prompt = "".join(pieces) + haystack[last:] + question
    assert len(prompt) == length, (len(prompt), length)
    return prompt, needles[ask].number


def score(completion: str, answer: str) -> bool:
    """Exact match: the first number the model writes is the answer."""
    found = re.match(r"\s*(\d+)", completion)
    return found is not None and found.group(1) == answer


# ----------------------------------------------------------------------------- data


def haystack_text(path: str = "") -> str:
    """The haystack corpus: a text file, or '' for the embedded English corpus (on every
    machine; sentences of a small synthetic world)."""
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read()
    from data.corpus import embedded_corpus  # noqa: PLC0415 (only needed here)

    return embedded_corpus(400_000, seed=1)


def check_haystack(path: str, row_length: int, longest_prompt: int) -> str:
    """'' if the text file at `path` can serve as the haystack (UTF-8; its training part
    holds two rows of `row_length` characters, its evaluation part two prompts of
    `longest_prompt`), else the problem in one sentence (checked before any training)."""
    if not os.path.isfile(path):
        return f"haystack {path!r} is not a file; give a text file (e.g. tinyshakespeare.txt)."
    try:
        train, held_out = split_haystack(haystack_text(path))
    except (UnicodeDecodeError, OSError) as e:
        return f"haystack {path!r} is not readable UTF-8 text ({e.__class__.__name__})."
    if len(train) <= 2 * row_length or len(held_out) < 2 * longest_prompt:
        need = max(math.ceil((2 * row_length + 1) / 0.9), 20 * longest_prompt)
        return (
            f"haystack {path!r} has {len(train) + len(held_out):,} characters, too few for "
            f"rows of {row_length} and prompts of {longest_prompt}; give one of at least "
            f"{need:,}."
        )
    return ""


def split_haystack(text: str) -> tuple[str, str]:
    """(training part, evaluation part): the first 90 % and the last 10 % of `text`, so
    evaluation prompts hide needles in text the needle stage never saw."""
    cut = int(0.9 * len(text))
    return text[:cut], text[cut:]


def max_needles(length: int) -> int:
    """How many needles (and the question) fit in a `length`-character prompt with at
    least a quarter of it left as haystack."""
    question, needle = (
        len(QUESTION.format(city="Muscat")),
        len(NEEDLE.format(city="Muscat", number="12345")),
    )
    return max(0, (3 * length // 4 - question) // needle)


def training_example(corpus: str, length: int, rng: random.Random, most: int = 3) -> dict:
    """One fine-tuning example: a `length`-character prompt with 1..`most` needles (as
    many as fit) at random depths, one of them asked; the completion is its number."""
    count = rng.randint(1, max(1, min(most, max_needles(length))))
    needles = random_needles(count, rng)
    depths = [rng.random() for _ in needles]
    offset = rng.randrange(max(1, len(corpus) - 2 * length))
    prompt, answer = make_prompt(corpus, needles, depths, length, rng.randrange(count), offset)
    return {"prompt": prompt, "completion": answer}


def lm_example(corpus: str, length: int, rng: random.Random, p_needle: float = 0.5) -> dict:
    """One sequence of `length` characters for training from scratch with the loss on
    every token: with probability `p_needle` a needle prompt (1-3 needles) followed by
    the asked number and a newline, else plain haystack text."""
    if rng.random() < p_needle:
        example = training_example(corpus, length - 6, rng)  # 5 digits + newline follow
        text = example["prompt"] + example["completion"] + "\n"
    else:
        offset = rng.randrange(len(corpus) - length)
        text = corpus[offset : offset + length]
    return {"prompt": "", "completion": text}


def prepare(path: str, spec: str) -> None:
    """data.prepare hook: writes `n` examples (JSONL) that fit rows of `max_len` tokens.
    spec: 'n=N,max_len=T,haystack=PATH,seed=S[,mode=finetune|lm]'. finetune: prompts
    of lengths uniform in [max_len/4, max_len - 7], the answer as the completion (the
    loss on it alone); lm: `lm_example`s of max_len - 1 characters (one a row)."""
    values = dict(item.split("=", 1) for item in spec.split(",") if item)
    n, max_len, seed = int(values["n"]), int(values["max_len"]), int(values.get("seed", 0))
    mode = values.get("mode", "finetune")
    if mode not in ("finetune", "lm"):
        raise ValueError(f"needle data mode={mode!r} is unknown; choose finetune or lm.")
    corpus, _ = split_haystack(haystack_text(values.get("haystack", "")))
    rng = random.Random(seed)
    longest = max_len - 7  # BOS + 5 digits + EOS: the row holds max_len + 1 tokens
    if max_needles(longest) < 1:
        raise ValueError(f"rows of {max_len} tokens cannot hold a needle and its question.")
    shortest = max(longest // 4, min(longest, 120))
    tmp = f"{path}.partial{os.getpid()}"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(tmp, "w") as f:
        for _ in range(n):
            if mode == "lm":  # BOS + text + EOS = max_len + 1 tokens
                example = lm_example(corpus, max_len - 1, rng)
            else:
                example = training_example(corpus, rng.randint(shortest, longest), rng)
            f.write(json.dumps(example) + "\n")
    os.replace(tmp, path)
