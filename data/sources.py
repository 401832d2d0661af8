"""Document sources for streaming language-model data: random access to documents on disk.

`data.source` names one:

    tfds:NAME[/CONFIG][:VERSION][@SPLIT]   a prepared tfds dataset (e.g. tfds:c4/en:3.1.0),
        read with `tfds.data_source` from its ArrayRecord files: no TensorFlow at run
        time. The directory is data.tfds_dir, else $TFDS_DATA_DIR, else tfds's default;
        the document is the record's data.text_field. Give the version: without it tfds
        may match its own dataset code instead of the files.
    arrayrecord:GLOB                       ArrayRecord shards whose records are UTF-8
        documents, in sorted path order (`python -m data.prepare` writes them).

`open_documents(spec, ...)` returns `Documents`: `len()` and `docs[i] -> str`, read when
asked (nothing is loaded up front, so memory does not grow with the corpus). Problems a
user can fix (a dataset that is not prepared, a glob matching nothing, a missing text
field, a corrupt shard) raise `DataError` with one sentence naming the fix.
"""

from __future__ import annotations

import bisect
import glob
import os
from collections.abc import Sequence
from typing import Any

from data import tfds_source
from data.errors import DataError

KINDS = ("tfds", "arrayrecord")


def is_source(spec: str) -> bool:
    """Whether `spec` names a document source (rather than a plain path)."""
    return spec.split(":", 1)[0] in KINDS and ":" in spec


class Documents:
    """Random access to the documents of a source (`len`, `[i] -> str`)."""

    def __init__(self, records: Any, describe: str, field: str | None = None) -> None:
        self.records, self.describe, self.field = records, describe, field

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> str:
        record = self._read(int(i))
        if self.field is not None:
            record = record[self.field]
        if isinstance(record, bytes):
            try:
                return record.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(
                    f"document {i} of {self.describe} is not valid UTF-8; re-prepare the data."
                ) from None
        return str(record)

    def _read(self, i: int) -> Any:
        return self.records[i]


class _Shards(Documents):
    """ArrayRecord shards: a corrupt record names its file and index."""

    def __init__(self, paths: Sequence[str], describe: str) -> None:
        import grain  # noqa: PLC0415 (heavy; only sources need it)

        self.paths = list(paths)
        readers, self.starts = [], [0]
        for path in self.paths:
            try:
                reader = grain.sources.ArrayRecordDataSource([path])
                n = len(reader)
                if n:
                    reader[0], reader[n - 1]  # noqa: B018 (reads the ends: fail at start)
            except Exception as e:  # array_record raises RuntimeError/OSError variants
                raise DataError(
                    f"ArrayRecord shard {path!r} is corrupt or not an ArrayRecord file "
                    f"({type(e).__name__}); re-run python -m data.prepare or remove it."
                ) from None
            readers.append(reader)
            self.starts.append(self.starts[-1] + n)
        self.readers = readers
        super().__init__(None, describe)

    def __len__(self) -> int:
        return self.starts[-1]

    def _read(self, i: int) -> Any:
        if not 0 <= i < len(self):
            raise IndexError(i)
        f = bisect.bisect_right(self.starts, i) - 1
        try:
            return self.readers[f][i - self.starts[f]]
        except Exception as e:
            why = str(e).split(";")[0][:100]
            raise DataError(
                f"record {i - self.starts[f]} of ArrayRecord shard {self.paths[f]!r} cannot be "
                f"read ({why}); prepare the data again (python -m data.prepare)."
            ) from None


def open_arrayrecord(pattern: str) -> Documents:
    """The documents of the ArrayRecord shards matching `pattern` (a glob or a folder)."""
    if os.path.isdir(pattern):
        pattern = os.path.join(pattern, "*.array_record")
    paths = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    if not paths:
        raise DataError(
            f"arrayrecord:{pattern} matches no files; prepare shards with "
            "python -m data.prepare --input=... --output=DIR and pass arrayrecord:DIR."
        )
    return _Shards(paths, f"arrayrecord:{pattern} ({len(paths)} shards)")


def parse_tfds(spec: str) -> tuple[str, str | None]:
    """'c4/en:3.1.0@validation' -> ('c4/en:3.1.0', 'validation')."""
    name, _, split = spec.partition("@")
    return name, split or None


def open_tfds(name: str, split: str, data_dir: str = "", text_field: str = "text") -> Documents:
    """The `text_field` of every record of tfds dataset `name`'s `split`."""
    source = tfds_source.open_split(name, split, data_dir, also="set data.tfds_dir")
    fields = sorted(source.dataset_info.features.keys())
    if text_field not in fields:
        raise DataError(
            f"tfds dataset {name!r} has no field {text_field!r}; set data.text_field to "
            f"one of {', '.join(fields)}."
        )
    return Documents(source, f"tfds:{name}@{split}", field=text_field)


def open_documents(
    spec: str, *, split: str = "train", data_dir: str = "", text_field: str = "text"
) -> Documents:
    """The documents `spec` names (module docstring); `split` applies to tfds sources
    without an '@SPLIT' of their own."""
    kind, _, rest = spec.partition(":")
    if kind == "arrayrecord":
        return open_arrayrecord(rest)
    if kind == "tfds":
        name, own_split = parse_tfds(rest)
        return open_tfds(name, own_split or split, data_dir, text_field)
    raise DataError(f"data.source={spec!r} is not one of tfds:NAME or arrayrecord:GLOB.")
