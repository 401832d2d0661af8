"""Corpora the data tests make themselves: random word documents, ArrayRecord shards via
`data.prepare`, and a dataset in the real tfds format (ArrayRecord, written without
TensorFlow by a small builder) for `tfds.data_source`."""

from __future__ import annotations

import contextlib
import json
import os
import random
import tempfile

import numpy as np

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog"]
WORDS += ["while", "seven", "wizards", "quietly", "hum"]


def documents(n: int, seed: int = 0, max_words: int = 60) -> list[str]:
    """`n` distinct documents of random words (each starts with its index)."""
    rng = random.Random(seed)
    return [
        f"{i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, max_words)))
        for i in range(n)
    ]


def write_jsonl(path: str, docs: list[str], field: str = "text") -> str:
    """`docs` as a JSONL file, one {field: doc, id: i} per line."""
    with open(path, "w") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({field: d, "id": i}) + "\n")
    return path


def prepared(tmp_path, docs: list[str], shard_mb: float = 0.01) -> str:
    """`docs` written as JSONL and prepared as ArrayRecord shards; returns the folder."""
    from data import prepare

    src = write_jsonl(str(tmp_path / "docs.jsonl"), docs)
    out = str(tmp_path / "shards")
    prepare.prepare(src, out, shard_bytes=int(shard_mb * (1 << 20)))
    return out


@contextlib.contextmanager
def temporary_files_in(folder: str):
    """Python's temporary files go into `folder` meanwhile: a tfds builder of a dataset not
    yet prepared makes a temporary folder it never removes (DatasetInfo.
    initialize_from_bucket), which then stays in the test's own directory, not in /tmp."""
    os.makedirs(folder, exist_ok=True)
    old, tempfile.tempdir = tempfile.tempdir, folder
    try:
        yield
    finally:
        tempfile.tempdir = old


def write_tfds(
    data_dir: str, splits: dict[str, list[str]], name="c4", config="en", version="3.1.0"
):
    """A tfds dataset `name/config:version` with fields text and id, in data_dir."""
    import tensorflow_datasets as tfds

    configs = [tfds.core.BuilderConfig(name=config)]

    class Fake(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version(version)
        BUILDER_CONFIGS = configs
        code_path = None  # no checksums file (finding one needs importlib_resources)

        def _info(self):
            features = tfds.features.FeaturesDict({"text": tfds.features.Text(), "id": np.int64})
            return tfds.core.DatasetInfo(builder=self, features=features, disable_shuffling=True)

        def _split_generators(self, dl_manager):
            return {s: self._generate_examples(docs) for s, docs in splits.items()}

        def _generate_examples(self, docs):
            for i, d in enumerate(docs):
                yield i, {"text": d, "id": i}

    Fake.name = name
    with temporary_files_in(os.fspath(data_dir) + "_tmp"):
        builder = Fake(config=config, data_dir=os.fspath(data_dir), file_format="array_record")
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False)
        )
    return builder.data_dir
