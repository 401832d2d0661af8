"""Streaming language-model batches: documents read, tokenised and packed as they are needed.

For corpora that do not fit in memory (data.source, data/sources.py). Training:

    document ids [lo, hi) -> shuffle (a new order every epoch) -> this process's shard
    (ids i, i + P, ...: each process reads only its documents) -> repeat forever
    -> read + tokenise each document in `num_workers` threads, BOS in front
    -> concatenate and cut into rows of seq_len + 1 tokens (grain's ConcatThenSplit;
       a document's rest continues the next row) -> batches {inputs, targets, mask}

Every token of every document of the shard appears exactly once per epoch, and memory
holds a few batches, never the corpus. The iterator's state (grain's, a small dict) is
what checkpoints hold, so a resumed run reads exactly the batches it would have.
Evaluation is one ordered pass over [lo, hi) without shuffling; the last row is padded
and its padding masked.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import grain
import numpy as np

from data.batching import spread_seed
from data.errors import DataError
from data.sources import Documents
from data.tokenizers import Tokenizer


def _as_tuples(state: Any) -> Any:
    """A state read back from JSON with its tuples restored (JSON has only lists)."""
    if isinstance(state, dict):
        return {k: _as_tuples(v) for k, v in state.items()}
    if isinstance(state, list):
        return tuple(_as_tuples(v) for v in state)
    return state


class _JsonStateIterator(grain.DatasetIterator):
    """Passes elements through; set_state turns JSON lists back into tuples.

    Checkpoints hold iterator states as JSON (grain.checkpoint), but ConcatThenSplit
    marks "nothing left over" with the tuple (-1, -1), which JSON turns into a list that
    no longer compares equal: restored as is, the packer drops one document."""

    def __next__(self) -> Any:
        return next(self._parent)

    def get_state(self) -> dict[str, Any]:
        return self._parent.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self._parent.set_state(_as_tuples(state))


class _JsonSafeState(grain.IterDataset):
    def __iter__(self) -> _JsonStateIterator:
        return _JsonStateIterator(self._parent.__iter__())


def _split_rows(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rows of seq_len + 1 tokens -> inputs, targets and a mask (0 on padding)."""
    rows_BL = batch["tokens"]
    real_BL = batch["tokens_segment_ids"] > 0
    return {
        "inputs": np.ascontiguousarray(rows_BL[:, :-1], np.int32),
        "targets": np.ascontiguousarray(rows_BL[:, 1:], np.int32),
        "mask": real_BL[:, 1:].astype(np.float32),
    }


@dataclasses.dataclass
class StreamingData:
    """Train and validation documents and how to turn them into batches."""

    train: Documents
    train_range: tuple[int, int]
    val: Documents
    val_range: tuple[int, int]
    tokenizer: Tokenizer
    seq_len: int
    num_workers: int = 1

    @property
    def num_train_examples(self) -> None:
        """Unknown without reading the corpus: durations are in steps."""
        return None

    def _tokens(self, docs: Documents) -> Any:
        bos = np.array([self.tokenizer.bos_id], np.int32)
        return lambda i: {"tokens": np.concatenate([bos, self.tokenizer.encode(docs[i])])}

    def _rows(self, ids: grain.MapDataset, docs: Documents, prefetch: int) -> grain.IterDataset:
        ds = ids.map(self._tokens(docs)).to_iter_dataset(
            grain.ReadOptions(num_threads=max(1, self.num_workers), prefetch_buffer_size=prefetch)
        )
        return grain.experimental.ConcatThenSplitIterDataset(
            ds, length_struct={"tokens": self.seq_len + 1}
        )

    def train_dataset(
        self, *, batch_size: int, seed: int, shard_index: int, shard_count: int
    ) -> grain.IterDataset:
        """Endless, shuffled, packed batches of this process's documents."""
        lo, hi = self.train_range
        if hi - lo < shard_count:
            raise DataError(
                f"{self.train.describe} has {hi - lo} training documents, fewer than the "
                f"{shard_count} processes that read it; give more documents."
            )
        ids = grain.MapDataset.range(lo, hi).shuffle(seed=spread_seed(seed))
        ids = ids[shard_index::shard_count].repeat(None)
        rows = self._rows(ids, self.train, prefetch=4 * batch_size)
        batches = rows.batch(batch_size, drop_remainder=True).map(_split_rows)
        return _JsonSafeState(batches)

    def eval_dataset(
        self, *, batch_size: int, shard_index: int, shard_count: int
    ) -> grain.IterDataset:
        """One ordered pass over this process's validation documents (full batches)."""
        lo, hi = self.val_range
        ids = grain.MapDataset.range(lo, hi)[shard_index::shard_count]
        rows = self._rows(ids, self.val, prefetch=2 * batch_size)
        return rows.batch(batch_size, drop_remainder=True).map(_split_rows)


def split_documents(n: int, val_fraction: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """Train and validation id ranges when one source holds both: the last
    `val_fraction` of the documents (at least one) are validation."""
    n_val = max(1, int(n * val_fraction)) if val_fraction > 0 else 0
    if n - n_val < 1 or (val_fraction > 0 and n_val < 1):
        raise DataError(f"{n} documents cannot be split at val_fraction={val_fraction}.")
    return (0, n - n_val), (n - n_val, n)
