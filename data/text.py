"""Language-model data: read text, tokenize, pack into sequences, and serve grain batches.

Flow: `load_lm_data(path, tokenizer=..., seq_len=...)` reads a file, a folder of
*.txt files, or (path '') the generated corpus of `data.corpus`; tokenizes each
document; splits the token stream into train/val; and packs each part into
[N, seq_len+1] int32 rows. `make_lm_dataset(rows, ...)` turns rows into a grain
`MapDataset` of per-process batches `{inputs, targets, mask}` whose iterator state
can be checkpointed (`it.get_state()` is `{'next_index': int}`, JSON-serializable).

Real text: e.g. tinyshakespeare,
https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
(download it yourself and pass its path; nothing is downloaded at run time).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from collections.abc import Sequence

import grain
import numpy as np

from data.batching import index_batches
from data.corpus import embedded_documents
from data.tokenizers import Tokenizer


def _read_one(path: pathlib.Path) -> str:
    """Returns the text of one UTF-8 file, or raises naming the file and the fix."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"Text file {str(path)!r} is not valid UTF-8 (bad byte at offset {e.start}); "
            "re-encode it as UTF-8 (e.g. iconv -t utf-8) or remove it."
        ) from None
    if not text.strip():
        raise ValueError(f"Text file {str(path)!r} is empty; add text to it or remove it.")
    return text


def read_text_documents(path: str) -> list[str]:
    """Returns one document per text file: `path` itself, or every *.txt below a folder."""
    p = pathlib.Path(path)
    if not p.exists():
        raise FileNotFoundError(
            f"Text path {path!r} does not exist; pass an existing .txt file or a folder "
            "of .txt files (or '' for the built-in corpus)."
        )
    if p.is_file():
        return [_read_one(p)]
    # Sorted by the path relative to `path` (as a POSIX string) so the order is the
    # same on every file system.
    files = sorted(
        (f for f in p.rglob("*.txt") if f.is_file()), key=lambda f: f.relative_to(p).as_posix()
    )
    if not files:
        raise FileNotFoundError(
            f"Folder {path!r} contains no .txt files; add UTF-8 .txt files to it "
            "(searched recursively) or pass a single text file."
        )
    return [_read_one(f) for f in files]


def _chunk(stream: np.ndarray, seq_len: int) -> np.ndarray:
    """Cuts `stream` into rows of seq_len+1 tokens with stride seq_len; drops the tail."""
    n = max(0, (len(stream) - 1) // seq_len)
    if n == 0:
        return np.zeros((0, seq_len + 1), np.int32)
    windows = np.lib.stride_tricks.sliding_window_view(stream, seq_len + 1)[::seq_len][:n]
    return np.ascontiguousarray(windows, dtype=np.int32)


def _chunk_row_bos(stream: np.ndarray, seq_len: int, bos_id: int) -> np.ndarray:
    """Cuts `stream` into rows of `bos_id` + seq_len tokens with stride seq_len (no
    overlap: each row's context starts at its BOS); drops the tail."""
    n = len(stream) // seq_len
    body = np.asarray(stream[: n * seq_len], np.int32).reshape(n, seq_len)
    return np.concatenate([np.full((n, 1), bos_id, np.int32), body], axis=1)


def _concat_with_bos(docs: Sequence[np.ndarray], bos_id: int) -> np.ndarray:
    """Returns one int32 stream: each document prefixed with `bos_id`, concatenated."""
    bos = np.array([bos_id], np.int32)
    parts = [p for d in docs for p in (bos, np.asarray(d, np.int32).reshape(-1))]
    return np.concatenate(parts) if parts else np.zeros((0,), np.int32)


def pack_documents(docs: Sequence[np.ndarray], seq_len: int, bos_id: int) -> np.ndarray:
    """Packs token documents into int32 [N, seq_len+1] training rows (concat-and-chunk).

    Concat-and-chunk packing, as in GPT-2 and nanodo: every document is prefixed
    with `bos_id` and all are concatenated into one stream; row i is
    stream[i*seq_len : i*seq_len + seq_len + 1], so consecutive rows overlap by one
    token (row i's last target is row i+1's first input) and every token is a target
    once. Documents may span rows and attention may cross a BOS inside a row; the
    incomplete tail is dropped.
    """
    if seq_len < 1:
        raise ValueError(f"pack_documents needs seq_len >= 1, got {seq_len}.")
    return _chunk(_concat_with_bos(docs, bos_id), seq_len)


@dataclasses.dataclass
class LMData:
    """Packed train/val rows ([N, seq_len+1] int32) and the tokenizer that made them."""

    train: np.ndarray
    val: np.ndarray
    tokenizer: Tokenizer

    @property
    def seq_len(self) -> int:
        """Model sequence length T (rows hold T+1 tokens)."""
        return int(self.train.shape[1]) - 1

    @property
    def num_train_examples(self) -> int:
        """Number of training sequences."""
        return len(self.train)

    @property
    def num_val_examples(self) -> int:
        """Number of validation sequences."""
        return len(self.val)


def load_lm_data(
    path: str,
    *,
    tokenizer: Tokenizer,
    seq_len: int,
    val_fraction: float = 0.05,
    embedded_chars: int = 1_000_000,
    seed: int = 0,
    bos_every_row: bool = False,
) -> LMData:
    """Reads, tokenizes, splits (last `val_fraction` of tokens is val) and packs text.

    `path` '' means the generated corpus (`embedded_chars` chars, `seed`). The split is
    by tokens of the concatenated BOS-prefixed stream, before chunking, so even one
    file yields both parts. `bos_every_row`: every row is BOS followed by the next
    seq_len tokens of the stream (rows start mid-document and see nothing before their
    BOS; Lester et al.'s M1), instead of `pack_documents`' overlapping rows.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}.")
    if path:
        docs, source = read_text_documents(path), repr(path)
    else:
        docs = embedded_documents(embedded_chars, seed)
        source = f"the embedded corpus ({embedded_chars} chars)"
    stream = _concat_with_bos([tokenizer.encode(d) for d in docs], tokenizer.bos_id)
    n_val = int(len(stream) * val_fraction)
    n_train = len(stream) - n_val
    need = seq_len + 1
    if n_train < need or (val_fraction > 0 and n_val < need):
        raise ValueError(
            f"Text from {source} has {len(stream)} tokens ({n_train} train, {n_val} val at "
            f"val_fraction={val_fraction}), but one sequence needs {need} tokens in each "
            f"part ({_tokens_needed(need, val_fraction)} tokens in total); add text or lower "
            "seq_len."
        )

    def chunk(part: np.ndarray) -> np.ndarray:
        if bos_every_row:
            return _chunk_row_bos(part, seq_len, tokenizer.bos_id)
        return _chunk(part, seq_len)

    return LMData(
        train=chunk(stream[:n_train]),
        val=chunk(stream[n_train:]),
        tokenizer=tokenizer,
    )


def _tokens_needed(need: int, val_fraction: float) -> int:
    """Smallest stream length whose train and (if any) val parts hold `need` tokens each."""
    total = need
    if val_fraction > 0:
        total = int(max(np.ceil(need / val_fraction), np.ceil(need / (1 - val_fraction))))
    while (total - int(total * val_fraction) < need) or (
        val_fraction > 0 and int(total * val_fraction) < need
    ):
        total += 1
    return total


def steps_per_epoch(num_sequences: int, global_batch_size: int) -> int:
    """Number of full global batches in one pass over `num_sequences` sequences."""
    if global_batch_size < 1:
        raise ValueError(f"global_batch_size must be >= 1, got {global_batch_size}.")
    return num_sequences // global_batch_size


def _gather_lm_batch(rows: np.ndarray, idx_B: np.ndarray) -> dict[str, np.ndarray]:
    """Gathers rows `idx_B` and splits them into `inputs`, `targets` and a `mask` of ones."""
    rows_BL = rows[idx_B]
    inputs_BT = np.ascontiguousarray(rows_BL[:, :-1], dtype=np.int32)
    targets_BT = np.ascontiguousarray(rows_BL[:, 1:], dtype=np.int32)
    return {
        "inputs": inputs_BT,
        "targets": targets_BT,
        "mask": np.ones(inputs_BT.shape, np.float32),
    }


def make_lm_dataset(
    sequences: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    shuffle: bool,
    num_epochs: int | None,
    shard_index: int = 0,
    shard_count: int = 1,
    drop_remainder: bool = True,
) -> grain.MapDataset:
    """Returns a grain MapDataset of per-process batches {inputs, targets, mask}.

    Row indices in `data.batching.index_batches` order (shuffle(seed) ->
    repeat(num_epochs; None = forever) -> global batches of batch_size * shard_count ->
    this process's slice), then the rows gathered and split into inputs/targets
    (inputs = rows[:, :-1], targets = rows[:, 1:], int32; mask float32 ones). The
    global batch (the processes' slices concatenated in process order) is the same
    for any process count: a 2-process run sees the data a 1-process run does. Every
    process yields the same number of batches (one that ran out early would hang the
    others' collectives). Grain reshuffles every epoch (deterministically). Batches
    may straddle epoch boundaries, so `num_epochs=k` gives floor(k * rows / global
    batch) batches.
    """
    sequences = np.asarray(sequences)
    if sequences.ndim != 2 or sequences.shape[1] < 2:
        raise ValueError(
            f"make_lm_dataset needs [N, seq_len+1] rows, got shape {sequences.shape}; "
            "build them with pack_documents or load_lm_data."
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index must be in [0, {shard_count}), got {shard_index}.")
    if num_epochs is not None and num_epochs < 1:
        raise ValueError(f"num_epochs must be >= 1 or None, got {num_epochs}.")
    global_batch = batch_size * shard_count
    finite_too_short = num_epochs is not None and len(sequences) * num_epochs < global_batch
    if len(sequences) == 0 or (drop_remainder and finite_too_short):
        raise ValueError(
            f"{len(sequences)} sequences are too few for one global batch of {global_batch} "
            f"({shard_count} process(es) x {batch_size}) in {num_epochs} epoch(s); "
            "add data, lower batch_size or seq_len."
        )
    ds = index_batches(
        len(sequences),
        batch_size=batch_size,
        shard_index=shard_index,
        shard_count=shard_count,
        seed=seed,
        shuffle=shuffle,
        num_epochs=num_epochs,
        drop_remainder=drop_remainder,
    )
    return ds.map(functools.partial(_gather_lm_batch, sequences))
