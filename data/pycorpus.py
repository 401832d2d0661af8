"""A code corpus that every machine has: the Python standard library's own sources.

`python_sources()` lists the `.py` files under the running interpreter's standard
library (site-packages and test data excluded), sorted, so the list depends only on the
Python version. `write(directory, train_mb, val_mb)` writes them as documents, one file
per document, into `directory/train/*.txt` and `directory/val/*.txt` (the LM task's
folder-of-text format); a file goes to val when a hash of its relative path says so
(1 in 20), so the split does not move when the size limits change. Files that are not
UTF-8 are skipped (a handful in the stdlib's test data). `prepare(path, spec)` is the
`data.prepare` hook: spec 'train_mb=8,val_mb=1'.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sysconfig
from collections.abc import Iterator

EXCLUDE = ("site-packages", "dist-packages", "test", "tests", "idlelib", "__pycache__")


def python_sources(root: str | None = None) -> list[str]:
    """Relative paths of the stdlib's .py files (sorted; tests and site-packages out)."""
    root = root or sysconfig.get_paths()["stdlib"]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDE)
        rel = os.path.relpath(dirpath, root)
        found += [os.path.normpath(os.path.join(rel, f)) for f in filenames if f.endswith(".py")]
    return sorted(found)


def is_val(rel_path: str) -> bool:
    """Whether a file belongs to the validation split (1 in 20, by path hash)."""
    return hashlib.sha256(rel_path.encode()).digest()[0] % 20 == 0


def documents(root: str | None = None) -> Iterator[tuple[str, str]]:
    """(relative path, UTF-8 text) of every source file, in sorted order."""
    root = root or sysconfig.get_paths()["stdlib"]
    for rel in python_sources(root):
        try:
            with open(os.path.join(root, rel), encoding="utf-8") as f:
                yield rel, f.read()
        except (UnicodeDecodeError, OSError):
            continue


def write(directory: str, train_mb: float, val_mb: float, root: str | None = None) -> dict:
    """Writes train/ and val/ (at most train_mb / val_mb MB each); returns the counts."""
    limits = {"train": train_mb * 2**20, "val": val_mb * 2**20}
    sizes, counts = {"train": 0, "val": 0}, {"train": 0, "val": 0}
    tmp = f"{directory}.partial{os.getpid()}"
    for split in limits:
        os.makedirs(os.path.join(tmp, split), exist_ok=True)
    for rel, text in documents(root):
        split = "val" if is_val(rel) else "train"
        size = len(text.encode())
        if not text.strip() or sizes[split] + size > limits[split]:
            continue
        name = rel.replace(os.sep, "--").removesuffix(".py") + ".txt"  # xml--dom--minidom.txt
        with open(os.path.join(tmp, split, name), "w", encoding="utf-8") as f:
            f.write(text)
        sizes[split] += size
        counts[split] += 1
    try:
        os.replace(tmp, directory)  # whole or absent
    except OSError:  # another process wrote it first: theirs is the same
        shutil.rmtree(tmp)
    return {f"{s}_files": counts[s] for s in counts} | {f"{s}_bytes": sizes[s] for s in sizes}


def prepare(path: str, spec: str) -> None:
    """data.prepare hook: `path` is the corpus folder's train/ (or val/) subfolder."""
    values = dict(item.split("=", 1) for item in spec.split(",") if item)
    unknown = set(values) - {"train_mb", "val_mb"}
    if unknown:
        raise ValueError(f"unknown pycorpus spec keys {sorted(unknown)}; use train_mb, val_mb.")
    directory = os.path.dirname(os.path.normpath(path))
    if not os.path.exists(directory):
        write(directory, float(values.get("train_mb", 8)), float(values.get("val_mb", 1)))
