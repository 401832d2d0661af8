"""A prepared tfds dataset's split opened as its ArrayRecord data source (random access,
no TensorFlow at run time), with one-sentence errors that name the fix: shared by the
text documents (data/sources.py) and the image sets (data/images.py)."""

from __future__ import annotations

import os
from typing import Any

from data.errors import DataError


def open_split(name: str, split: str, data_dir: str = "", also: str = "") -> Any:
    """`tfds.data_source(name, split=split)` from `data_dir` (else $TFDS_DATA_DIR, else
    tfds's default), never downloading; DataError when the dataset is not prepared there
    as ArrayRecord (naming the `tfds build` command; `also` adds another fix) or has no
    such split."""
    import tensorflow_datasets as tfds  # noqa: PLC0415 (~1 s import; only tfds sources need it)

    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR", "") or None
    dataset = name.split(":")[0]  # 'c4/en:3.1.0' -> 'c4/en', built as c4 config en
    build = f"tfds build {dataset} --data_dir={data_dir or 'DIR'} --file_format=array_record"
    missing = f"tfds dataset {name!r} is not prepared as ArrayRecord in "
    missing += data_dir or "tfds's default data directory"
    fix = f"prepare it with `{build}`{f' or {also}' if also else ''}."
    # For a dataset it finds no files of, tfds makes a temporary folder it never removes
    # (DatasetInfo.initialize_from_bucket); a data_dir without the dataset's folder is
    # answered here instead.
    if data_dir and not os.path.isdir(os.path.join(data_dir, dataset.split("/")[0])):
        raise DataError(f"{missing} (it has no {dataset.split('/')[0]} folder); {fix}")
    try:
        return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except (tfds.core.DatasetNotFoundError, NotImplementedError, ImportError) as e:
        raise DataError(f"{missing} ({type(e).__name__}); {fix}") from None
    except (KeyError, ValueError) as e:  # e.g. an unknown split
        raise DataError(f"tfds dataset {name!r} has no split {split!r} ({e}).") from None
