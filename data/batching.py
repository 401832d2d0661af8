"""The one index pipeline behind every grain loader: shuffle, repeat, global batches, shard.

`index_batches(num_items, ...)` is a grain `MapDataset` of per-process int64 index
arrays; a loader maps its own gather over it (`data.text.make_lm_dataset` gathers
packed token rows, `data.timeseries.make_window_dataset` gathers windows). Walking
indices and gathering each batch with one numpy fancy index, instead of
`MapDataset.source(items).batch(...)` (which stacks items one by one), keeps the same
order and iterator state at ~1.7x less per-batch CPU (see tests/data/test_text.py).
Iterator state (`it.get_state()`) is `{'next_index': int}`, what checkpoints hold.
"""

from __future__ import annotations

from collections.abc import Sequence

import grain
import numpy as np


def spread_seed(seed: int) -> int:
    """The 32-bit shuffle seed of run seed `seed`.

    grain shuffles epoch e with seed+e, so seed 1's first epoch would equal seed 0's
    second; spreading seeds by an odd 32-bit constant keeps runs independent."""
    return (seed * 0x9E3779B1 + 0x7F4A7C15) % 2**32


def _stack_indices(indices: Sequence[int]) -> np.ndarray:
    """Returns a batch of indices as one int64 array."""
    return np.asarray(indices, dtype=np.int64)


def index_batches(
    num_items: int,
    *,
    batch_size: int,
    shard_index: int,
    shard_count: int,
    seed: int,
    shuffle: bool,
    num_epochs: int | None,
    drop_remainder: bool,
    stride: int = 1,
) -> grain.MapDataset:
    """A grain MapDataset of this process's int64 index batches [batch_size].

    Pipeline: indices 0, stride, ..., (num_items - 1) * stride -> shuffle(spread_seed(
    seed)) -> repeat(num_epochs; None = forever) -> global batches of batch_size *
    shard_count indices -> this process's slice [shard_index * batch_size, (shard_index
    + 1) * batch_size). Every process walks the same global order and reads only its
    own slice, so the global batch (the slices concatenated in process order) is the
    same for any process count, and every process yields the same number of batches.
    Shuffle comes before repeat, so grain reshuffles every epoch (deterministically).
    Batches may straddle epoch boundaries; with drop_remainder=False a finite pass keeps
    the last, smaller global batch. The caller checks its arguments (with its own
    error messages) and maps its gather over the result.
    """
    ds = grain.MapDataset.range(0, num_items * stride, stride)
    if shuffle:
        ds = ds.shuffle(seed=spread_seed(seed))
    ds = ds.repeat(num_epochs)
    ds = ds.batch(batch_size * shard_count, drop_remainder=drop_remainder, batch_fn=_stack_indices)
    lo = shard_index * batch_size
    return ds.map(lambda idx: idx[lo : lo + batch_size])


def read_ahead(dataset: object, threads: int, processes: int = 0) -> object:
    """A grain MapDataset read by `threads` reader threads a few batches ahead, and with
    `processes` > 0 by that many worker processes (CPU-heavy preprocessing); any other
    iterable unchanged. Iterator state still checkpoints exactly."""
    if not isinstance(dataset, grain.MapDataset):
        return dataset
    dataset = dataset.to_iter_dataset(
        grain.ReadOptions(num_threads=threads, prefetch_buffer_size=4)
    )
    if processes:
        dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(processes))
    return dataset
