"""Turn text into ArrayRecord shards of documents (and optionally a SentencePiece model).

    python -m data.prepare --input=PATH --output=DIR [--text_field=text]
        [--sentencepiece_vocab=N] [--shard_mb=256] [--max_doc_mb=1]

PATH is a .txt file, a .jsonl file (one document per line, in --text_field), or a folder
of them (searched recursively, sorted). A text file is one document, cut at line ends
into pieces of at most --max_doc_mb (so one huge file streams too). DIR receives
`docs-00000.array_record`, ... (one document per record, UTF-8) and `manifest.json`
(documents, bytes, and each input's size and sha256). Train on them with
`--config.data.source=arrayrecord:DIR`.

Resumable and idempotent: finished shards are recorded as they are written, a killed
run continues after the last one, and a re-run whose inputs are unchanged (size and
modification time) does nothing. Inputs that changed since are refused rather than
mixed in. With --sentencepiece_vocab=N, a SentencePiece model (DIR/sentencepiece.model)
is trained on about --sentencepiece_sample_mb of documents spread over the corpus.
Memory holds one shard's documents at most, whatever the corpus size. Exit 2 with one
line for a bad input.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from absl import flags

from data.examples import DataError, parse_json_object

MANIFEST, STATE = "manifest.json", "prepare_state.json"
SPM_PREFIX = "sentencepiece"
FORMAT = 1  # manifest format version


def _atomic_write_json(path: str, obj: Any) -> None:
    # data/ does not import framework (framework.files holds the shared writer).
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def list_inputs(path: str) -> list[str]:
    """The input files of `path`: itself, or every .txt/.jsonl below a folder (sorted)."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise DataError(f"--input={path!r} does not exist; pass a .txt/.jsonl file or a folder.")
    found = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(path)
        for name in names
        if name.endswith((".txt", ".jsonl"))
    )
    if not found:
        raise DataError(f"folder {path!r} holds no .txt or .jsonl files; add some.")
    return found


def _fingerprint(paths: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {
            "path": os.path.abspath(p),
            "bytes": os.path.getsize(p),
            "mtime_ns": os.stat(p).st_mtime_ns,
        }
        for p in paths
    ]


def _decode(raw: bytes, path: str, offset: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path!r} is not UTF-8 (bad byte at offset {offset + e.start}); re-encode it "
            "(iconv -t utf-8) or remove it."
        ) from None


def documents(
    path: str, start: int, text_field: str, max_doc_bytes: int
) -> Iterator[tuple[str, int]]:
    """(document, byte offset after it) of one input file, from byte `start`."""
    jsonl = path.endswith(".jsonl")
    with open(path, "rb") as f:
        f.seek(start)
        offset, piece, size = start, [], 0
        for line in f:
            here = offset
            offset += len(line)
            if jsonl:
                if not line.strip():
                    continue
                record = parse_json_object(line, f"{path!r} at byte {here}")
                if text_field not in record:
                    fields = ", ".join(record)
                    raise DataError(
                        f"{path!r} at byte {here} has no field {text_field!r}; pass "
                        f"--text_field as one of: {fields}."
                    )
                yield str(record[text_field]), offset
                continue
            piece.append(line)
            size += len(line)
            if size >= max_doc_bytes:
                yield _decode(b"".join(piece), path, offset - size), offset
                piece, size = [], 0
        if piece:
            yield _decode(b"".join(piece), path, offset - size), offset


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


class _Progress:
    """One line every few seconds: documents, MB, rates and ETA by bytes read."""

    def __init__(self, total_bytes: int, done_bytes: int, docs: int) -> None:
        self.total, self.start_bytes, self.start_docs = total_bytes, done_bytes, docs
        self.t0 = self.last = time.time()

    def update(self, done_bytes: int, docs: int, final: bool = False) -> None:
        now = time.time()
        if not final and now - self.last < 2.0:
            return
        self.last, dt = now, max(now - self.t0, 1e-9)
        rate = (done_bytes - self.start_bytes) / dt
        eta = (self.total - done_bytes) / rate if rate > 0 else 0.0
        pct = 100.0 * done_bytes / max(self.total, 1)
        print(
            f"prepare: {docs:,} docs, {done_bytes / 1e6:,.1f} of {self.total / 1e6:,.1f} MB "
            f"({pct:.0f}%), {(docs - self.start_docs) / dt:,.0f} docs/s, {rate / 1e6:.1f} MB/s, "
            f"ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}",
            file=sys.stderr,
            flush=True,
        )


def _write_shard(path: str, docs: Sequence[str]) -> None:
    from array_record.python.array_record_module import ArrayRecordWriter  # noqa: PLC0415

    tmp = f"{path}.tmp"
    writer = ArrayRecordWriter(tmp, "group_size:1")  # one record a chunk: cheap random reads
    for doc in docs:
        writer.write(doc.encode("utf-8"))
    writer.close()
    os.replace(tmp, path)


def _start_state(output: str, inputs: list[dict[str, Any]], text_field: str) -> dict[str, Any]:
    """The saved progress for these inputs, a fresh one, or a DataError for others."""
    fresh = {"format": FORMAT, "inputs": inputs, "text_field": text_field, "shards": []}
    fresh.update(file=0, offset=0, documents=0, bytes=0)
    for name in (MANIFEST, STATE):
        path = os.path.join(output, name)
        if not os.path.exists(path):
            continue
        with open(path) as f:
            saved = json.load(f)
        fingerprints = [{k: i[k] for k in inputs[0]} for i in saved.get("inputs", [])]
        if fingerprints != inputs or saved.get("text_field") != text_field:
            raise DataError(
                f"{output!r} holds shards prepared from other inputs (or a changed input); "
                "choose another --output or delete that folder."
            )
        return saved
    return fresh


def prepare(
    input_path: str,
    output: str,
    *,
    text_field: str = "text",
    shard_bytes: int = 256 << 20,
    max_doc_bytes: int = 1 << 20,
) -> dict[str, Any]:
    """Writes the shards and manifest (module docstring); returns the manifest."""
    paths = list_inputs(input_path)
    inputs = _fingerprint(paths)
    os.makedirs(output, exist_ok=True)
    state = _start_state(output, inputs, text_field)
    if os.path.exists(os.path.join(output, MANIFEST)):  # finished before: nothing to do
        return state
    state_path = os.path.join(output, STATE)
    done_before = sum(i["bytes"] for i in inputs[: state["file"]]) + state["offset"]
    progress = _Progress(sum(i["bytes"] for i in inputs), done_before, state["documents"])
    pending: list[str] = []
    pending_bytes = 0

    def flush(file_index: int, offset: int) -> None:
        nonlocal pending, pending_bytes
        name = f"docs-{len(state['shards']):05d}.array_record"
        _write_shard(os.path.join(output, name), pending)
        state["shards"].append({"file": name, "documents": len(pending)})
        state.update(file=file_index, offset=offset)
        state["documents"] += len(pending)
        state["bytes"] += pending_bytes
        _atomic_write_json(state_path, state)
        pending, pending_bytes = [], 0

    for index in range(state["file"], len(paths)):  # a shard may span input files
        start = state["offset"] if index == state["file"] else 0
        for doc, offset in documents(paths[index], start, text_field, max_doc_bytes):
            pending.append(doc)
            pending_bytes += len(doc.encode("utf-8"))
            if pending_bytes >= shard_bytes:
                flush(index, offset)  # resuming starts after this shard's last document
            done = sum(i["bytes"] for i in inputs[:index]) + offset
            progress.update(done, state["documents"] + len(pending))
    if pending:
        flush(len(paths), 0)
    progress.update(progress.total, state["documents"], final=True)
    if not state["documents"]:
        raise DataError(f"--input={input_path!r} holds no documents; add text.")
    manifest = {k: state[k] for k in ("format", "text_field", "shards", "documents", "bytes")}
    manifest["inputs"] = [dict(i, sha256=_sha256(i["path"])) for i in inputs]
    _atomic_write_json(os.path.join(output, MANIFEST), manifest)
    os.remove(state_path)
    return manifest


def train_tokenizer(output: str, vocab_size: int, sample_bytes: int) -> str:
    """DIR/sentencepiece.model trained on ~sample_bytes of documents spread evenly over
    the shards (skipped when it exists for this vocabulary size)."""
    from data import sources, tokenizers  # noqa: PLC0415

    model = os.path.join(output, f"{SPM_PREFIX}.model")
    record = os.path.join(output, f"{SPM_PREFIX}.json")
    if os.path.exists(model) and os.path.exists(record):
        with open(record) as f:
            if json.load(f).get("vocab_size") == vocab_size:
                return model
    docs = sources.open_arrayrecord(output)
    with open(os.path.join(output, MANIFEST)) as f:
        total = json.load(f)["bytes"]
    stride = max(1, round(total / max(sample_bytes, 1)))
    sample = os.path.join(output, f"{SPM_PREFIX}.sample.txt")
    with open(sample, "w", encoding="utf-8") as f:
        for i in range(0, len(docs), stride):
            f.write(docs[i] + "\n")
    try:
        path = tokenizers.train_sentencepiece(
            [sample], vocab_size=vocab_size, model_prefix=os.path.join(output, SPM_PREFIX)
        )
    except ValueError as e:  # e.g. a vocabulary larger than the sample allows
        raise DataError(str(e)) from None
    finally:
        os.remove(sample)
    _atomic_write_json(record, {"vocab_size": vocab_size, "stride": stride})
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI (module docstring); returns the exit code."""
    fv = flags.FlagValues()
    flags.DEFINE_string("input", None, "a .txt/.jsonl file or a folder of them", flag_values=fv)
    flags.DEFINE_string("output", None, "the folder for shards and manifest", flag_values=fv)
    flags.DEFINE_string("text_field", "text", "the JSONL field holding a document", flag_values=fv)
    flags.DEFINE_integer("sentencepiece_vocab", 0, "train a SentencePiece model", flag_values=fv)
    flags.DEFINE_integer("sentencepiece_sample_mb", 100, "its training sample", flag_values=fv)
    flags.DEFINE_integer("shard_mb", 256, "bytes of text per shard", flag_values=fv)
    flags.DEFINE_integer("max_doc_mb", 1, "a text file is cut into pieces this big", flag_values=fv)
    try:
        fv(list(sys.argv if argv is None else argv))
        if not fv.input or not fv.output:
            raise DataError("--input and --output are required.")
        t0 = time.time()
        m = prepare(
            fv.input,
            fv.output,
            text_field=fv.text_field,
            shard_bytes=fv.shard_mb << 20,
            max_doc_bytes=fv.max_doc_mb << 20,
        )
        print(
            f"{m['documents']:,} documents ({m['bytes'] / 1e6:,.1f} MB) in "
            f"{len(m['shards'])} shards in {fv.output} ({time.time() - t0:.1f} s); train with "
            f"--config.data.source=arrayrecord:{fv.output}"
        )
        if fv.sentencepiece_vocab:
            path = train_tokenizer(
                fv.output, fv.sentencepiece_vocab, fv.sentencepiece_sample_mb << 20
            )
            print(f"SentencePiece model: {path}")
    except (DataError, flags.Error) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
