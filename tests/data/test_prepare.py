"""`python -m data.prepare`: text and JSONL into ArrayRecord shards with a manifest,
idempotent, resumable after a crash with the same shards, one-line errors that write
nothing, and an optional SentencePiece model."""

from __future__ import annotations

import json
import os

import pytest

from data import prepare, sources
from tests.data import corpora


def shard_bytes(folder: str) -> dict[str, bytes]:
    return {
        n: open(os.path.join(folder, n), "rb").read()
        for n in sorted(os.listdir(folder))
        if n.endswith(".array_record")
    }


def test_jsonl_round_trip_and_a_rerun_does_nothing(tmp_path):
    docs = corpora.documents(200)
    src = corpora.write_jsonl(str(tmp_path / "in.jsonl"), docs)
    out = str(tmp_path / "out")
    manifest = prepare.prepare(src, out, shard_bytes=4000)
    assert manifest["documents"] == 200 and len(manifest["shards"]) > 3
    assert manifest["bytes"] == sum(len(d.encode()) for d in docs)
    assert len(manifest["inputs"][0]["sha256"]) == 64
    read = sources.open_documents(f"arrayrecord:{out}")
    assert [read[i] for i in range(len(read))] == docs
    mtimes = {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in os.listdir(out)}
    assert prepare.prepare(src, out, shard_bytes=4000) == manifest
    assert {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in os.listdir(out)} == mtimes


def test_a_crash_resumes_after_the_last_shard_with_the_same_shards(tmp_path, monkeypatch):
    folder = tmp_path / "texts"
    folder.mkdir()
    for i, doc in enumerate(corpora.documents(12, max_words=400)):
        (folder / f"{i:02d}.txt").write_text(doc.replace(" ", "\n"))  # many lines
    clean = str(tmp_path / "clean")
    prepare.prepare(str(folder), clean, shard_bytes=3000, max_doc_bytes=1000)
    real, written = prepare._write_shard, []

    def crash_on_the_fourth(path, docs):
        if len(written) == 3:
            raise KeyboardInterrupt  # killed while writing
        written.append(path)
        real(path, docs)

    monkeypatch.setattr(prepare, "_write_shard", crash_on_the_fourth)
    out = str(tmp_path / "out")
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare(str(folder), out, shard_bytes=3000, max_doc_bytes=1000)
    assert os.path.exists(os.path.join(out, prepare.STATE))
    monkeypatch.setattr(prepare, "_write_shard", real)
    prepare.prepare(str(folder), out, shard_bytes=3000, max_doc_bytes=1000)
    assert shard_bytes(out) == shard_bytes(clean) and not os.path.exists(
        os.path.join(out, prepare.STATE)
    )
    docs = sources.open_documents(f"arrayrecord:{out}")
    texts = [p.read_text() for p in sorted(folder.iterdir())]
    assert "".join(docs[i] for i in range(len(docs))) == "".join(texts)  # pieces, in order
    assert len(docs) > len(texts)  # files cut at line ends


def test_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert prepare.main(["prog", f"--input={tmp_path}/missing.txt", f"--output={out}"]) == 2
    assert "does not exist" in capsys.readouterr().err and not os.path.exists(out)
    src = str(tmp_path / "in.jsonl")
    corpora.write_jsonl(src, corpora.documents(3), field="body")
    assert prepare.main(["prog", f"--input={src}", f"--output={out}"]) == 2
    err = capsys.readouterr().err
    assert "no field 'text'" in err and "--text_field as one of: body, id" in err
    assert not [n for n in os.listdir(out) if not n.startswith(".")]
    assert prepare.main(["prog", f"--input={src}", f"--output={out}", "--text_field=body"]) == 0
    with open(src, "a") as f:
        f.write(json.dumps({"body": "one more"}) + "\n")
    assert prepare.main(["prog", f"--input={src}", f"--output={out}", "--text_field=body"]) == 2
    assert "prepared from other inputs" in capsys.readouterr().err


def test_sentencepiece_model_from_the_shards_and_its_vocabulary_checked(tmp_path):
    from configs import quickstart
    from framework import config as config_lib
    from framework.tasks import lm

    src = corpora.write_jsonl(str(tmp_path / "in.jsonl"), corpora.documents(300))
    out = str(tmp_path / "out")
    assert prepare.main(["p", f"--input={src}", f"--output={out}", "--sentencepiece_vocab=60"]) == 0
    model = os.path.join(out, "sentencepiece.model")
    c = quickstart.get_config("size=tiny")
    c.data.update(source=f"arrayrecord:{out}", tokenizer="sentencepiece", sentencepiece_model=model)
    c.model.vocab_size = 64
    task = lm.Task(c)
    assert task.tokenizer.vocab_size == 60
    c.model.vocab_size = 48
    with pytest.raises(config_lib.ConfigError, match="smaller than the sentencepiece"):
        lm.Task(c)
