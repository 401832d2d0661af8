"""The tiny reproduction end to end, in this process: pretraining (dense and MoE), the
needle stage, the evaluations and the report; a re-run does nothing twice. Also the
corpus writer, the needle data hook, the config's arms and the expert-load output."""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest
from flax import nnx

from configs import long_context_moe as config_file
from data import pycorpus
from experiments.long_context_moe import evaluate, needle, run
from framework import files
from models import moe, transformer


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("moe"))
    assert run.main([f"--workdir={workdir}", "--variant=tiny", "--inline"]) == 0
    return workdir


@pytest.mark.slow
def test_tiny_reproduction_writes_every_evaluation_and_the_report(tiny):
    pretrain = evaluate.run_dirs(os.path.join(tiny, "pretrain"))
    needle_runs = evaluate.run_dirs(os.path.join(tiny, "needle_lm"))
    names = ["arm=dense_seed=0", "arm=moe_seed=0"]
    assert [os.path.basename(r) for r in pretrain] == names
    assert [os.path.basename(r) for r in needle_runs] == names[1:]  # tiny: moe only
    for r in needle_runs:  # trained from scratch, 2 layers, on needle-bearing text
        config = files.read_json(os.path.join(r, "config.json"))["config"]
        assert not config["train"]["init_from"] and config["model"]["num_layers"] == 2
        assert "mode=lm" in config["data"]["prepare_spec"]
        e = files.read_json(os.path.join(r, evaluate.RESULT))
        grid = np.array(e["needle_grid"])
        assert grid.shape == (2, 2) and ((grid >= 0) & (grid <= 1)).all()
        assert len(e["multi_needle"]) == 1
        assert len(e["answer_nll"]) == 5 and all(0 < x < 10 for x in e["answer_nll"])
    for r in pretrain:
        p = files.read_json(os.path.join(r, evaluate.RESULT))["position_nll"]
        assert len(p["cumulative"]) == 2 * 128 - 1 and p["fit_upto"] == 127
        assert np.isfinite(p["fit"]["r2"]) and p["windows"] == 4
        # an untrained-ish byte model still predicts better than uniform over 259 ids
        assert p["cumulative"][-1] < np.log(259)
    load = files.read_json(os.path.join(pretrain[1], evaluate.RESULT))["expert_load"]
    assert np.array(load).shape == (2, 4)  # both layers MoE, 4 experts
    with open(os.path.join(tiny, "report", "report.md")) as f:
        text = f.read()
    for claim in ("M1 ", "M2 ", "M3 (moe)", "M4 (dense)", "M4 (moe)"):
        assert claim in text
    for name in ("val_loss.png", "expert_load.png", "needle_moe.png", "nll_position.png"):
        assert os.path.getsize(os.path.join(tiny, "report", name)) > 1000
    before = os.path.getmtime(os.path.join(needle_runs[0], evaluate.RESULT))
    assert run.main([f"--workdir={tiny}", "--variant=tiny", "--inline"]) == 0  # nothing redone
    assert os.path.getmtime(os.path.join(needle_runs[0], evaluate.RESULT)) == before


def test_arms_have_equal_active_flops_or_equal_params():
    cfgs = {
        arm: transformer.TransformerConfig(
            **config_file.get_config(f"variant=cpu,arm={arm}").model.to_dict()
        )
        for arm in config_file.ARMS
    }
    flops = {a: transformer.train_flops_per_token(c, 256) for a, c in cfgs.items()}
    counts = {a: transformer.param_count(c) for a, c in cfgs.items()}
    router = 4 * 128 * 8 * 6  # layers x D x E, six FLOPs per weight
    assert flops["moe"] - flops["dense"] == router
    assert counts["moe"]["total"] - counts["dense_params"]["total"] == 4 * 128 * 8  # routers
    assert counts["moe"]["active"] == counts["dense"]["total"] + 4 * 128 * 8
    nobalance = config_file.get_config("variant=cpu,arm=moe_nobalance")
    assert nobalance.loss.aux.moe_balance == 0.0 and nobalance.model.moe_experts == 8
    with pytest.raises(Exception, match="stage=needle needs"):
        config_file.get_config("stage=needle")


def test_corpus_split_is_stable_and_needle_data_fits_the_rows(tmp_path):
    info = pycorpus.write(str(tmp_path / "c"), train_mb=0.2, val_mb=0.05)
    assert info["train_files"] > 0 and info["val_files"] > 0
    for name in os.listdir(tmp_path / "c" / "val"):
        rel = name.removesuffix(".txt").replace("--", os.sep) + ".py"
        assert pycorpus.is_val(rel)
    path = str(tmp_path / "n.jsonl")
    needle.prepare(path, "n=50,max_len=256,haystack=,seed=3")
    rows = files.read_jsonl(path)
    assert len(rows) == 50
    for r in rows:
        assert len(r["prompt"]) + len(r["completion"]) + 2 <= 257  # BOS, EOS: one row
        assert r["completion"].isdigit() and r["completion"] in r["prompt"]
    with pytest.raises(ValueError, match="cannot hold a needle"):
        needle.prepare(str(tmp_path / "m.jsonl"), "n=1,max_len=64")


def test_expert_load_output_is_each_layers_routing_share():
    cfg = transformer.TransformerConfig(
        vocab_size=40, d_model=16, num_layers=2, num_heads=2, d_ff=32, moe_experts=4,
        moe_top_k=2, moe_every=2,
    )  # fmt: skip
    model = transformer.Transformer(cfg, rngs=nnx.Rngs(0))
    tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 40)
    _, out = nnx.jit(lambda m, t: m(t, return_aux=True))(model, tokens)
    load_LE = np.asarray(out[moe.LOAD])
    assert load_LE.shape == (2, 4)
    assert (load_LE[0] == 0).all()  # layer 0 is dense
    # f_e / (k/E) with f_e the share of the 32 tokens that have e among their top 2: each
    # expert's count of tokens is a whole number, and the counts add up to k per token
    counts = load_LE[1] * (2 / 4) * 32
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-4)
    assert round(counts.sum()) == 64
    np.testing.assert_allclose(load_LE[1].max(), float(out["aux"]["moe_load_max"]), rtol=1e-6)


def test_an_unknown_variant_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    workdir = tmp_path / "w"
    assert run.main([f"--workdir={workdir}", "--variant=huge"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --variant='huge' is unknown")
    assert not workdir.exists()


@pytest.mark.parametrize("kind", ["folder", "short", "binary"])
def test_a_bad_haystack_is_one_line_exit_2_before_any_training(tmp_path, capsys, kind):
    path = tmp_path / "haystack.txt"
    if kind == "folder":
        path.mkdir()
    elif kind == "short":
        path.write_text("Too short a haystack. " * 20)
    else:
        path.write_bytes(bytes(range(256)) * 400)
    workdir = tmp_path / "w"
    assert run.main([f"--workdir={workdir}", "--variant=tiny", f"--data_path={path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    expected = {"folder": "is not a file", "short": "too few", "binary": "not readable UTF-8"}
    assert len(err) == 1 and expected[kind] in err[0] and err[0].startswith("error: --data_path")
    assert not workdir.exists()
