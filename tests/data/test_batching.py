"""Tests for data/batching.py: the one index pipeline both loaders (text, time series) use."""

import numpy as np
import pytest

from data import batching, text, timeseries


def _take(ds, n: int | None = None) -> list:
    """The first `n` items of `ds` (all of them when n is None)."""
    it = iter(ds)
    return [next(it) for _ in range(n)] if n else list(it)


def _ids(ds, n: int | None = None) -> list[list[int]]:
    return [list(b) for b in _take(ds, n)]


def test_index_batches_shards_one_global_order_and_resumes():
    kw = dict(seed=3, shuffle=True, num_epochs=2, drop_remainder=True)
    one = _ids(batching.index_batches(10, batch_size=4, shard_index=0, shard_count=1, **kw))
    two = [
        _ids(batching.index_batches(10, batch_size=2, shard_index=i, shard_count=2, **kw))
        for i in range(2)
    ]
    assert [a + b for a, b in zip(*two)] == one  # the global batch ignores the process count
    assert len(one) == 5 and sorted(sum(one, [])) == sorted(list(range(10)) * 2)
    assert sorted(sum(one, [])[:10]) != sum(one, [])[:10]  # shuffled
    it = iter(batching.index_batches(10, batch_size=4, shard_index=0, shard_count=1, **kw))
    next(it)
    state = it.get_state()
    assert state == {"next_index": 1}  # what the trainer's checkpoints hold
    rest = [list(b) for b in it]
    it2 = iter(batching.index_batches(10, batch_size=4, shard_index=0, shard_count=1, **kw))
    it2.set_state(state)
    assert [list(b) for b in it2] == rest


def test_index_batches_stride_and_remainder():
    kw = dict(shard_index=0, shard_count=1, seed=0, shuffle=False, num_epochs=1)
    ds = batching.index_batches(4, batch_size=3, drop_remainder=False, stride=3, **kw)
    assert _ids(ds) == [[0, 3, 6], [9]]
    # grain shuffles epoch e with seed + e: seed 1's first epoch is not seed 0's second.
    assert batching.spread_seed(1) != batching.spread_seed(0) + 1


@pytest.mark.parametrize("shuffle,epochs", [(True, None), (False, 2)])
def test_both_loaders_serve_the_index_batches_stream(shuffle, epochs):
    """Row i of the text rows and window i of the series hold the value i, so a batch's
    first input column is its index stream: both equal index_batches'."""
    n, kw = 23, dict(batch_size=3, seed=5, shuffle=shuffle, num_epochs=epochs)
    kw |= dict(shard_index=1, shard_count=2)
    want = _ids(batching.index_batches(n, drop_remainder=True, **kw), 7)
    rows = np.repeat(np.arange(n, dtype=np.int32)[:, None], 4, axis=1)
    got_text = [list(b["inputs"][:, 0]) for b in _take(text.make_lm_dataset(rows, **kw), 7)]
    values = np.arange(n + 5, dtype=np.float32)[:, None]  # lookback 4 + horizon 2: n windows
    series = timeseries.make_window_dataset(values, lookback=4, horizon=2, **kw)
    got_series = [list(b["inputs"][:, 0, 0].astype(int)) for b in _take(series, 7)]
    assert got_text == want and got_series == want
