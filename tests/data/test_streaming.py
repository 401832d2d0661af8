"""Streaming LM data (data/sources.py, data/streaming.py): prepared shards and tfds
datasets read lazily, every document exactly once per epoch, exact resume through a JSON
state, disjoint per-process shards, bounded memory, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from data import sources, streaming, tokenizers
from data.errors import DataError
from tests.data import corpora

BYTES = tokenizers.ByteTokenizer()


def stream(docs: sources.Documents, seq_len: int = 32, workers: int = 2) -> streaming.StreamingData:
    return streaming.StreamingData(
        docs, (0, len(docs)), docs, (0, len(docs)), BYTES, seq_len, workers
    )


def token_stream(ds, n_batches: int) -> np.ndarray:
    """The packed rows of `n_batches` batches, concatenated (rows do not overlap)."""
    it = iter(ds)
    rows = []
    for _ in range(n_batches):
        b = next(it)
        rows.append(np.concatenate([b["inputs"], b["targets"][:, -1:]], axis=1).reshape(-1))
    it.close()
    return np.concatenate(rows)


def split_docs(tokens: np.ndarray) -> list[str]:
    """The documents of a token stream (each starts with BOS)."""
    cuts = np.flatnonzero(tokens == BYTES.bos_id)
    return [BYTES.decode(tokens[a + 1 : b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def epoch_docs(data, docs, shard_index=0, shard_count=1, batch=4):
    """The documents of the first epoch of a shard's training stream, in stream order."""
    ds = data.train_dataset(
        batch_size=batch, seed=3, shard_index=shard_index, shard_count=shard_count
    )
    n = len(range(shard_index, len(docs), shard_count))
    need = sum(len(docs[i].encode()) + 1 for i in range(len(docs))) // shard_count * 3
    tokens = token_stream(ds, need // (batch * (data.seq_len + 1)) + 2)
    return split_docs(tokens)[:n]


def test_prepared_shards_give_every_document_exactly_once_per_epoch(tmp_path):
    docs = corpora.documents(150)
    shards = corpora.prepared(tmp_path, docs)
    source = sources.open_documents(f"arrayrecord:{shards}")
    assert len(source.paths) > 1 and len(source) == 150 and source[7] == docs[7]
    first = epoch_docs(stream(source), docs)
    assert sorted(first) == sorted(docs) and first != docs  # all, once, shuffled


def test_two_processes_read_disjoint_shards_that_together_are_the_corpus(tmp_path):
    docs = corpora.documents(90)
    source = sources.open_documents(f"arrayrecord:{corpora.prepared(tmp_path, docs)}")
    data = stream(source)
    parts = [epoch_docs(data, docs, i, 2) for i in (0, 1)]
    assert not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == sorted(docs)


def test_resume_from_a_json_state_mid_epoch_is_bitwise_identical(tmp_path):
    docs = corpora.documents(60)
    data = stream(sources.open_documents(f"arrayrecord:{corpora.prepared(tmp_path, docs)}"))
    ds = data.train_dataset(batch_size=2, seed=0, shard_index=0, shard_count=1)
    for k in (0, 5, 23, 61):  # 61 batches cross the first epoch
        it = iter(ds)
        for _ in range(k):
            next(it)
        state = json.loads(json.dumps(it.get_state()))  # as checkpoints store it
        expected = [next(it) for _ in range(12)]
        it.close()
        resumed = iter(ds)
        resumed.set_state(state)
        for a, b in zip(expected, [next(resumed) for _ in range(12)], strict=True):
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])
        resumed.close()


def test_a_tfds_dataset_reads_through_tfds_data_source(tmp_path):
    train, val = corpora.documents(40), corpora.documents(8, seed=1)
    corpora.write_tfds(str(tmp_path), {"train": train, "validation": val})
    docs = sources.open_documents("tfds:c4/en:3.1.0", data_dir=str(tmp_path))
    assert len(docs) == 40 and [docs[i] for i in range(40)] == train
    held = sources.open_documents("tfds:c4/en:3.1.0@validation", data_dir=str(tmp_path))
    assert [held[i] for i in range(8)] == val
    with pytest.raises(DataError, match=r"no field .body.*one of id, text"):
        sources.open_documents("tfds:c4/en:3.1.0", data_dir=str(tmp_path), text_field="body")


def test_bad_sources_are_one_sentence_naming_the_fix(tmp_path):
    empty = str(tmp_path / "empty")
    os.makedirs(empty)
    with pytest.raises(
        DataError, match=rf"not prepared as ArrayRecord in {empty}.*tfds build c4/en"
    ):
        sources.open_documents("tfds:c4/en:3.1.0", data_dir=empty)
    with pytest.raises(DataError, match="matches no files"):
        sources.open_documents(f"arrayrecord:{tmp_path}/nothing-*.array_record")
    shards = corpora.prepared(tmp_path, corpora.documents(40), shard_mb=0.001)
    victim = sorted(os.listdir(shards))[1]
    with open(os.path.join(shards, victim), "r+b") as f:
        f.truncate(os.path.getsize(f.name) // 2)
    with pytest.raises(DataError, match=rf"shard '.*{victim}' is corrupt"):
        sources.open_documents(f"arrayrecord:{shards}")


PEAK_RSS = """
import resource, sys
from data import sources, streaming, tokenizers
docs = sources.open_documents("arrayrecord:" + sys.argv[1])
byte = tokenizers.ByteTokenizer()
data = streaming.StreamingData(docs, (0, len(docs)), docs, (0, 1), byte, 256, 2)
it = iter(data.train_dataset(batch_size=8, seed=0, shard_index=0, shard_count=1))
for _ in range(300):
    next(it)
it.close()
print(len(docs), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_corpus(tmp_path, root):
    """300 batches from a 10 MB and a 100 MB corpus: the peak RSS differs by < 25 MB
    (an in-memory pipeline would hold 90 MB more tokens, 4 bytes each: 360 MB)."""
    from array_record.python.array_record_module import ArrayRecordWriter

    rng = np.random.default_rng(0)
    peaks = []
    for mb in (10, 100):
        folder = tmp_path / f"c{mb}"
        folder.mkdir()
        writer = ArrayRecordWriter(str(folder / "docs-00000.array_record"), "group_size:1")
        for _ in range(mb * 64):  # 16 KB documents
            writer.write(rng.integers(97, 123, 16 << 10, dtype=np.uint8).tobytes())
        writer.close()
        out = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, str(folder)],
            cwd=root, capture_output=True, text=True, check=True,
            env=dict(os.environ, PYTHONPATH=root),
        )  # fmt: skip
        n, peak = map(int, out.stdout.split())
        assert n == mb * 64
        peaks.append(peak)
    assert peaks[1] - peaks[0] < 25, peaks
