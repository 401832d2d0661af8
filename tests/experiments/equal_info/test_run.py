"""The tiny Equal-Info Windows reproduction end to end, in this process (M1, compression
with every tiny method, M2 on three, evaluation, report; a re-run does nothing twice),
the bits/byte and FLOPs/byte formulas, and the bad inputs: text that is not UTF-8 and
token ids beyond M2's vocabulary."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from configs import equal_info as config_file
from experiments.equal_info import compress, evaluate, methods as methods_lib, run
from experiments.equal_info.methods import window_cap
from framework import config as config_lib, files, launch


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("eqinfo"))
    assert run.main([f"--workdir={workdir}", "--variant=tiny", "--inline"]) == 0
    return workdir


@pytest.mark.slow
def test_tiny_reproduction_writes_tokens_evaluations_and_the_report(tiny, capsys):
    tokens = os.path.join(tiny, "tokens")
    stats = {m: compress.method_stats(tokens, m) for m in run.PLANS["tiny"].methods}
    for s in stats.values():
        assert s["train"]["tokens"] > 0 and s["val"]["bytes"] == stats["bytes"]["val"]["bytes"]
    assert stats["bytes"]["val"]["ratio"] == 1.0
    # the same b=16 windows in 16-bit tokens: exactly half the tokens
    assert stats["eq16_65k"]["val"]["ratio"] == 2 * stats["eq16"]["val"]["ratio"]
    assert stats["eq16"]["val"]["windows"] * 2 == stats["eq16"]["val"]["tokens"]
    ids = np.load(os.path.join(tokens, "eq16_65k", "val", "shard-00000.npy"))
    assert ids.dtype == np.uint16 and ids.max() > 255
    names = sorted(os.listdir(os.path.join(tiny, "m2")))
    assert [n for n in names if n.startswith("method=")] == [
        "method=ac", "method=bytes", "method=eq16"
    ]  # fmt: skip
    for method in ("ac", "bytes", "eq16"):
        e = files.read_json(os.path.join(tiny, "m2", f"method={method}", "equal_info_eval.json"))
        assert e["ratio"] == stats[method]["val"]["ratio"]
        assert e["bits_per_byte"] == pytest.approx(e["val_loss"] / math.log(2) / e["ratio"])
        assert e["uniform_bpb"] == pytest.approx(8 / e["ratio"])
        assert 0 < e["unigram_bpb"] < e["uniform_bpb"] * 1.01
    e = files.read_json(os.path.join(tiny, "m2", "method=eq16", "equal_info_eval.json"))
    assert len(e["positions"]) == 5 and all(len(p) == 2 for p in e["positions"].values())
    assert len(e["position_unigram"]) == 2 and e["version"] == evaluate.VERSION
    with open(os.path.join(tiny, "report", "report.md")) as f:
        report = f.read()
    for claim in ("**Q1**", "**Q2**", "**Q4**", "**Q5**", "**Q6**"):
        assert claim in report
    for name in ("ratio.png", "bpb.png", "positions.png"):
        assert os.path.getsize(os.path.join(tiny, "report", name)) > 1000
    check_first_byte_after_bos(os.path.join(tiny, "m1", "base"))
    capsys.readouterr()
    assert run.main([f"--workdir={tiny}", "--variant=tiny", "--inline"]) == 0
    out = capsys.readouterr().out
    # nothing trained (the M1 and M2 sweeps) or compressed twice
    assert out.count(" 0 to run") == 2 and "shard" not in out


def check_first_byte_after_bos(m1: str) -> None:
    """first_byte='bos': position t of a row gets M1's distribution after BOS and the
    row's first t bytes (the paper's convention), and EqualInfoAC round-trips with it."""
    from flax import nnx

    from data import compression
    from framework import decoding, sample

    unigram = np.full(256, 64, np.int64)
    model, _ = compress.m1_byte_model(m1, unigram, "bos")
    lm, tokenizer, _ = sample.load_run(m1)
    graphdef, params = nnx.split(lm)
    row = np.frombuffer(b"def f(x):\n", np.uint8).astype(np.int32)
    got_TV = model(row[None])[0]
    for t in (0, 3, len(row) - 1):
        ctx = np.array([[tokenizer.bos_id, *row[:t]]], np.int32)
        want_V = np.asarray(decoding.all_logprobs(graphdef, params, ctx))[0, -1, :256]
        np.testing.assert_allclose(got_TV[t], want_V, rtol=1e-5, atol=1e-5)
    coder = compression.EqualInfo(16)
    streams = [b"import os\nprint(os.sep)\n", b"x = [i * i for i in range(9)]\n"]
    windows = coder.encode(streams, model, rows=4)
    values = [[v for v, _ in w] for w in windows]
    assert coder.decode(values, [len(s) for s in streams], model, rows=4) == streams
    with pytest.raises(compress.CompressError, match="first_byte='first'"):
        compress.m1_byte_model(m1, unigram, "first")


def test_bits_and_flops_per_byte_on_hand_computed_values():
    assert evaluate.bits_per_byte(math.log(256), 2.0) == pytest.approx(4.0)  # uniform: 8 / 2
    assert evaluate.bits_per_byte(math.log(2) * 3.0, 1.5) == pytest.approx(2.0)
    assert evaluate.flops_per_byte(1000, 4.0) == 500.0
    assert evaluate.flops_per_byte(1000, 4.0, m1_params=10) == 520.0


def test_unigram_loss_overall_and_per_window_position_by_hand(tmp_path):
    np.save(tmp_path / "train.npy", np.array([1, 2, 1, 2, 1, 3], np.uint16))
    np.save(tmp_path / "val.npy", np.array([1, 2], np.uint16))
    train, val = str(tmp_path / "train.npy"), str(tmp_path / "val.npy")
    # add-1/2 counts: all tokens [.5, 3.5, 2.5, 1.5] / 8; position 0 [.5, 3.5, .5, .5] / 5;
    # position 1 [.5, .5, 2.5, 1.5] / 5
    overall = -(math.log(3.5 / 8) + math.log(2.5 / 8)) / 2
    assert evaluate.unigram_loss(train, val, 4) == pytest.approx([overall])
    by_position = [-math.log(3.5 / 5), -math.log(2.5 / 5)]
    assert evaluate.unigram_loss(train, val, 4, per_window=2) == pytest.approx(by_position)


def test_text_that_is_not_utf8_is_one_line_exit_2(tmp_path, capsys):
    for split in ("train", "val"):
        os.makedirs(tmp_path / "corpus" / split)
        (tmp_path / "corpus" / split / "a.txt").write_text("print('hi')\n")
    (tmp_path / "corpus" / "train" / "b.txt").write_bytes(b"caf\xe9\n")
    argv = [f"--corpus={tmp_path / 'corpus'}", f"--out={tmp_path / 'out'}", "--methods=bytes"]
    assert compress.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "b.txt" in err and "not UTF-8" in err
    assert not os.path.exists(tmp_path / "out" / "bytes")
    assert compress.main([*argv[:2], "--methods=zip"]) == 2
    assert "method 'zip' is unknown" in capsys.readouterr().err
    assert compress.main([*argv[:2], "--methods=bytes,eq8"]) == 2  # a window too small
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'eq8'" in err and "use bits >= 15" in err
    with pytest.raises(config_lib.ConfigError, match="cannot hold one byte"):
        config_file.get_config("stage=m2,method=eq12_65k,tokens_dir=/t")


def test_any_window_size_is_a_method_and_found_on_disk_in_order(tmp_path):
    m = methods_lib.get("eq24_65k")
    assert (m.coder, m.token_bits, m.window_bits, m.uses_m1) == ("eq24", 16, 24, True)
    assert methods_lib.get("eq16") is methods_lib.METHODS["eq16"]
    found = ["eq24", "zip", "eq16_65k", "bytes", "eq128", "eq24_65k", "notes.txt"]
    assert methods_lib.ordered(found) == ["bytes", "eq16_65k", "eq128", "eq24", "eq24_65k"]


def test_token_ids_beyond_the_vocabulary_are_one_line_exit_2(tmp_path):
    for split in ("train", "val"):
        os.makedirs(tmp_path / "eq16" / split)
        np.save(tmp_path / "eq16" / split / "a.npy", np.arange(400, dtype=np.uint16))
    config = config_file.get_config(f"variant=tiny,stage=m2,method=eq16,tokens_dir={tmp_path}")
    outcome = launch.run(config, str(tmp_path / "run"))
    assert outcome.code == 2
    assert "outside the declared vocabulary [0, 256)" in outcome.message
    assert "\n" not in outcome.message.strip()
    config.model.vocab_size = 200  # the files' declared vocabulary exceeds the model's
    outcome = launch.run(config, str(tmp_path / "run2"))
    assert outcome.code == 2 and "data.tokens_vocab_size=256" in outcome.message


def test_a_long_first_document_is_cut_at_a_character_boundary(tmp_path):
    os.makedirs(tmp_path / "train")
    (tmp_path / "train" / "a.txt").write_text("é" * 1000)
    (doc,) = compress.read_split(str(tmp_path), "train", 1001)
    assert doc.decode() == "é" * 500


def test_compressing_into_a_folder_made_with_other_settings_is_refused(tmp_path, capsys):
    for split in ("train", "val"):
        os.makedirs(tmp_path / "corpus" / split)
        (tmp_path / "corpus" / split / "a.txt").write_text("x = 1\n" * 50)
    argv = [f"--corpus={tmp_path / 'corpus'}", f"--out={tmp_path / 'out'}", "--methods=gzip"]
    assert compress.main(argv) == 0
    assert compress.main([*argv, "--example_bytes=64"]) == 2
    assert "other settings (example_bytes)" in capsys.readouterr().err


def test_bad_compress_settings_are_one_line_exit_2_and_leave_no_manifest(tmp_path, capsys):
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    for split in ("train", "val"):
        os.makedirs(corpus / split)
        (corpus / split / "a.txt").write_text("x = 1\n" * 50)
    argv = [f"--corpus={corpus}", f"--out={out}"]
    assert compress.main([*argv, "--methods=ac"]) == 2
    assert "need --m1" in capsys.readouterr().err
    assert compress.main([*argv, "--methods=gzip", "--rows=0"]) == 2
    assert "must be positive" in capsys.readouterr().err
    assert not os.path.exists(out / "manifest.json")  # nothing recorded by a failed start
    assert compress.main([*argv, "--methods=gzip"]) == 0
    assert files.read_json(str(out / "manifest.json"))["corpus"] == str(corpus)
    os.rename(corpus, tmp_path / "other")  # the same folder of shards, another corpus
    assert compress.main([f"--corpus={tmp_path / 'other'}", f"--out={out}"]) == 2
    assert "other settings (corpus)" in capsys.readouterr().err


def test_run_refuses_an_unknown_variant_and_a_corpus_without_val_before_training(tmp_path, capsys):
    assert run.main([f"--workdir={tmp_path / 'w'}", "--variant=gpu"]) == 2
    assert "--variant='gpu' is unknown" in capsys.readouterr().err
    os.makedirs(tmp_path / "corpus" / "train")
    (tmp_path / "corpus" / "train" / "a.txt").write_text("x = 1\n")
    argv = [f"--workdir={tmp_path / 'w'}", "--variant=tiny", f"--data_path={tmp_path / 'corpus'}"]
    assert run.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "val" in err and "no .txt documents" in err
    assert not os.path.exists(tmp_path / "w" / "m1")


def test_cpu_bos_variant_trains_m1_with_bos_rows_and_codes_first_bytes_after_bos():
    m1 = config_file.get_config("variant=cpu_bos,stage=m1")
    assert m1.data.bos_every_row and not config_file.get_config("stage=m1").data.bos_every_row
    sweep = config_file.get_sweep("variant=cpu_bos,stage=m2,tokens_dir=/t")
    assert [p["arg:method"] for p in sweep] == ["eq16", "eq32", "eq64"]
    assert run.PLANS["cpu_bos"].first_byte == "bos" and run.PLANS["cpu"].first_byte == "unigram"


def test_cpu_4mb_variant_compresses_4mb_with_every_method_and_adds_eq64_eq128_eq16_65k_to_m2():
    sweep = config_file.get_sweep("variant=cpu_4mb,stage=m2,tokens_dir=/t")
    cpu_sweep = config_file.get_sweep("variant=cpu,stage=m2,tokens_dir=/t")
    methods = [p["arg:method"] for p in sweep]
    assert methods == [p["arg:method"] for p in cpu_sweep] + ["eq64", "eq128", "eq16_65k"]
    plan, cpu = run.PLANS["cpu_4mb"], run.PLANS["cpu"]
    assert (plan.train_kb, cpu.train_kb) == (4096, 1536)
    assert plan.methods == (*cpu.methods, "eq64", "eq64_65k", "eq128", "eq128_65k")
    m2 = config_file.get_config("variant=cpu_4mb,stage=m2,method=eq16_65k,tokens_dir=/t")
    cpu_m2 = config_file.get_config("variant=cpu,stage=m2,method=eq16_65k,tokens_dir=/t")
    assert m2.model.vocab_size == 65536 and m2.to_dict() == cpu_m2.to_dict()


def test_windows_longer_than_the_byte_cap_get_one_byte_a_bit():
    """b <= 64 keep the 64-byte cap they were measured with; b = 128 may cover 128 bytes."""
    assert [window_cap(64, b) for b in (16, 32, 64, 128)] == [64, 64, 64, 128]
