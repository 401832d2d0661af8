"""Example-level LM data (`data.format='examples'`) and token files (`data.format='tokens'`).

Examples are JSONL lines `{"prompt": str, "completion": str, "weight"?: float,
"advantage"?: float}`. Each is tokenised as [BOS] + prompt + completion + [EOS]; inputs
are its tokens but the last, targets its tokens but the first, and only targets in the
completion (its EOS included) carry loss. Rows hold `seq_len` inputs:

- packed (`data.pack_examples=True`, the default): examples in file order fill a row
  while they fit (a greedy first-fit-in-order, deterministic); `segment_ids` (1, 2, ...
  per example, 0 for padding) keep attention within each example and `positions`
  restart at 0 at each, so an example's loss is the same packed or alone;
- one per row (`False`): right-padded rows; causality alone keeps padding out.

Per-token arrays of a row: inputs, targets (int32), mask (float32: the example's weight
on completion targets, 0 elsewhere), segment_ids, positions (int32), and advantage
(float32, on completion targets) when any example has one. An example longer than a row
is an error naming its line, never silently cut.

Token files: `.npy` int arrays (one file, or every *.npy below a folder, sorted), each a
document of ids below the declared vocabulary `data.tokens_vocab_size` (<= 65,536),
concatenated in order and cut into rows of seq_len + 1 (concat-and-chunk, no separator:
the files are another model's output, e.g. compressed text).

Both serve grain batches through `data.batching.index_batches`, so they are shuffled,
resumable (iterator state in the checkpoint) and sharded per host like packed text.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import pathlib
from typing import Any

import grain
import numpy as np

from data.batching import index_batches
from data.errors import DataError
from data.tokenizers import Tokenizer

MAX_TOKENS_VOCAB = 65_536


def parse_json_object(line: str | bytes, where: str) -> dict[str, Any]:
    """One JSONL line as a dict, or a DataError naming `where` (e.g. 'file:line')."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON ({e.msg}); fix or remove the line.") from None
    if not isinstance(record, dict):
        raise DataError(f"{where}: a line must be a JSON object.")
    return record


@dataclasses.dataclass(frozen=True)
class Example:
    """One JSONL example."""

    prompt: str
    completion: str
    weight: float = 1.0
    advantage: float | None = None
    line: int = 0  # its line in the file, for messages


_REQUIRED = object()


def _field(record: dict, name: str, kinds: tuple, where: str, default: Any = _REQUIRED) -> Any:
    """record[name], checked to be one of `kinds` (bool is not a number here)."""
    if name not in record:
        if default is _REQUIRED:
            raise DataError(f"{where}: the field {name!r} is missing; every line needs it.")
        return default
    value = record[name]
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise DataError(
            f"{where}: the field {name!r} must be {' or '.join(k.__name__ for k in kinds)}, "
            f"got {type(value).__name__} ({str(value)[:40]!r})."
        )
    return value


def read_records(path: str) -> list[tuple[str, dict]]:
    """(where = 'file:line', object) for every non-blank JSONL line; DataError naming the
    line for one that is not a JSON object."""
    p = pathlib.Path(path)
    if not p.is_file():
        raise DataError(f"Examples file {path!r} does not exist; pass a JSONL file.")
    out = []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            where = f"{path}:{n}"
            if not line.strip():
                continue
            out.append((where, parse_json_object(line, where)))
    if not out:
        raise DataError(f"Examples file {path!r} has no examples; add JSONL lines.")
    return out


def field(record: dict, name: str, kinds: tuple, where: str, default: Any = None) -> Any:
    """record[name] checked to be one of `kinds`; `default` when absent (None: required)."""
    return _field(record, name, kinds, where, _REQUIRED if default is None else default)


def read_examples(path: str) -> list[Example]:
    """The examples of a JSONL file; raises DataError naming file:line and the field."""
    out = []
    for where, record in read_records(path):
        weight = float(_field(record, "weight", (int, float), where, 1.0))
        if not math.isfinite(weight) or weight < 0:
            raise DataError(
                f"{where}: 'weight' must be finite and >= 0, got {weight}; signed rewards "
                "go in 'advantage'."
            )
        advantage = _field(record, "advantage", (int, float), where, None)
        if advantage is not None and not math.isfinite(advantage):
            raise DataError(f"{where}: 'advantage' must be finite, got {advantage}.")
        out.append(
            Example(
                prompt=_field(record, "prompt", (str,), where),
                completion=_field(record, "completion", (str,), where),
                weight=weight,
                advantage=None if advantage is None else float(advantage),
                line=int(where.rsplit(":", 1)[1]),
            )
        )
    return out


def encode(example: Example, tokenizer: Tokenizer, path: str = "") -> tuple[np.ndarray, int]:
    """(tokens [BOS] + prompt + completion + [EOS], number of prompt tokens with BOS)."""
    prompt = [tokenizer.bos_id, *tokenizer.encode(example.prompt)]
    completion = list(tokenizer.encode(example.completion))
    if not completion:
        raise DataError(
            f"{path}:{example.line}: the completion {example.completion[:40]!r} tokenises to "
            "nothing; give it text or remove the line."
        )
    return np.asarray(prompt + completion + [tokenizer.eos_id], np.int32), len(prompt)


ROW_KEYS = ("inputs", "targets", "mask", "segment_ids", "positions")


def pack(
    examples: list[Example], tokenizer: Tokenizer, seq_len: int, *, packed: bool, path: str = ""
) -> dict[str, np.ndarray]:
    """Rows [N, seq_len] of every per-token array (see the module docstring)."""
    encoded = [encode(ex, tokenizer, path) for ex in examples]
    rows: list[list[int]] = []  # example indices per row
    used = seq_len  # forces a first row
    for i, (tokens, _) in enumerate(encoded):
        need = len(tokens) - 1
        if need > seq_len:
            raise DataError(
                f"{path}:{examples[i].line}: the example has {len(tokens)} tokens (BOS + prompt "
                f"+ completion + EOS), more than data.seq_len + 1 = {seq_len + 1}; raise "
                "data.seq_len or shorten it."
            )
        if not packed or used + need > seq_len:
            rows.append([])
            used = 0
        rows[-1].append(i)
        used += need
    out = {k: np.zeros((len(rows), seq_len), np.int32) for k in ROW_KEYS}
    out["mask"] = np.zeros((len(rows), seq_len), np.float32)
    signed = any(ex.advantage is not None for ex in examples)
    if signed:
        out["advantage"] = np.zeros((len(rows), seq_len), np.float32)
    for r, members in enumerate(rows):
        at = 0
        for segment, i in enumerate(members, start=1):
            tokens, n_prompt = encoded[i]
            n = len(tokens) - 1
            span = slice(at, at + n)
            out["inputs"][r, span] = tokens[:-1]
            out["targets"][r, span] = tokens[1:]
            out["segment_ids"][r, span] = segment
            out["positions"][r, span] = np.arange(n)
            completion = np.arange(n) >= n_prompt - 1  # targets from the first completion token
            out["mask"][r, span] = completion * examples[i].weight
            if signed:
                out["advantage"][r, span] = completion * (examples[i].advantage or 0.0)
            at += n
        out["inputs"][r, at:] = tokenizer.pad_id
    return out


@dataclasses.dataclass
class ExampleData:
    """Train/val rows (dicts of [N, seq_len] arrays) of an examples or tokens file."""

    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]

    @property
    def num_train_examples(self) -> int:
        """Rows per epoch."""
        return len(self.train["inputs"])


def split_rows(rows: dict[str, np.ndarray], val_fraction: float, source: str) -> ExampleData:
    """The last `val_fraction` of the rows (at least one when > 0) are validation."""
    n = len(rows["inputs"])
    n_val = math.ceil(n * val_fraction) if val_fraction > 0 else 0
    if n - n_val < 1:
        raise DataError(
            f"{source} gives {n} rows, too few for training with data.val_fraction="
            f"{val_fraction}; add data or lower val_fraction."
        )
    return ExampleData(
        train={k: v[: n - n_val] for k, v in rows.items()},
        val={k: v[n - n_val :] for k, v in rows.items()},
    )


def load_examples(
    path: str, tokenizer: Tokenizer, seq_len: int, *, packed: bool, val_fraction: float
) -> ExampleData:
    """Reads, tokenises and packs a JSONL file; the last val_fraction of rows is val."""
    rows = pack(read_examples(path), tokenizer, seq_len, packed=packed, path=path)
    return split_rows(rows, val_fraction, repr(path))


def read_token_files(path: str, vocab_size: int) -> list[np.ndarray]:
    """The int token documents of a .npy file or of every *.npy below a folder."""
    if not 1 < vocab_size <= MAX_TOKENS_VOCAB:
        raise DataError(
            f"data.tokens_vocab_size={vocab_size} must be in [2, {MAX_TOKENS_VOCAB}]; declare "
            "the vocabulary the token files use."
        )
    p = pathlib.Path(path)
    if not p.exists():
        raise DataError(f"Token path {path!r} does not exist; pass a .npy file or a folder.")
    files = [p] if p.is_file() else sorted(p.rglob("*.npy"), key=lambda f: f.as_posix())
    if not files:
        raise DataError(f"Token folder {path!r} holds no .npy files.")
    docs = []
    for f in files:
        try:
            ids = np.load(f, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"Token file {str(f)!r} is not a .npy array ({e}).") from None
        if not np.issubdtype(ids.dtype, np.integer):
            raise DataError(f"Token file {str(f)!r} holds {ids.dtype}, not integer ids.")
        ids = ids.reshape(-1)
        bad = np.flatnonzero((ids < 0) | (ids >= vocab_size))
        if bad.size:
            raise DataError(
                f"Token file {str(f)!r} has id {int(ids[bad[0]])} at index {int(bad[0])}, "
                f"outside the declared vocabulary [0, {vocab_size}) (data.tokens_vocab_size)."
            )
        docs.append(ids.astype(np.int32))
    return docs


def token_rows(path: str, vocab_size: int, seq_len: int) -> dict[str, np.ndarray]:
    """Token files cut into rows; inputs/targets shifted by one, every target counted."""
    stream = np.concatenate(read_token_files(path, vocab_size))
    n = (len(stream) - 1) // seq_len
    if n < 1:
        raise DataError(
            f"Token data {path!r} has {len(stream)} tokens; one row needs {seq_len + 1}."
        )
    idx = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)[None, :]
    chunks = stream[idx]
    return {
        "inputs": chunks[:, :-1],
        "targets": chunks[:, 1:],
        "mask": np.ones((n, seq_len), np.float32),
    }


def load_tokens(
    path: str, vocab_size: int, seq_len: int, *, val_fraction: float, val_path: str = ""
) -> ExampleData:
    """Training and validation rows of token files: validation is `val_path`'s rows when
    given, else the last `val_fraction` of `path`'s."""
    rows = token_rows(path, vocab_size, seq_len)
    if val_path:
        return ExampleData(train=rows, val=token_rows(val_path, vocab_size, seq_len))
    return split_rows(rows, val_fraction, f"token data {path!r}")


def _gather(rows: dict[str, np.ndarray], batch_size: int, idx_B: np.ndarray) -> dict:
    """Rows `idx_B`; a short final batch of a finite pass is padded with rows that carry
    no loss (mask 0), so evaluation covers every row with full, shardable batches."""
    out = {k: np.ascontiguousarray(v[idx_B]) for k, v in rows.items()}
    short = batch_size - len(idx_B)
    if short:
        for k, v in out.items():
            filler = np.zeros((short, *v.shape[1:]), v.dtype)
            out[k] = np.concatenate([v, filler])
    return out


def make_dataset(
    rows: dict[str, np.ndarray],
    *,
    batch_size: int,
    seed: int,
    shuffle: bool,
    num_epochs: int | None,
    shard_index: int = 0,
    shard_count: int = 1,
) -> grain.MapDataset:
    """A grain MapDataset of this process's batches of `rows` (index_batches order);
    a finite pass (num_epochs set) keeps every row (the last batch padded, see _gather)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    ds = index_batches(
        len(rows["inputs"]),
        batch_size=batch_size,
        shard_index=shard_index,
        shard_count=shard_count,
        seed=seed,
        shuffle=shuffle,
        num_epochs=num_epochs,
        drop_remainder=num_epochs is None,
    )
    return ds.map(functools.partial(_gather, rows, batch_size))
