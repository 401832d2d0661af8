"""The tiny SuiT reproduction end to end in this process (three arms on voronoi-count,
adaptive inference, the report with its figures), and its config's bad inputs."""

from __future__ import annotations

import os

import pytest

from configs import suit as config_file
from experiments.suit import report, run
from framework import config as config_lib, files


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("suit"))
    assert run.main([f"--workdir={workdir}", "--variant=tiny", "--inline"]) == 0
    return workdir


@pytest.mark.slow
def test_tiny_reproduction_trains_every_arm_and_writes_the_report(tiny, capsys):
    data = report.load(tiny)["procedural"]
    assert sorted(r["arm"] for r in data) == ["stem", "suit", "vit"]
    for r in data:
        assert 0.0 <= r["acc"] <= 1.0 and r["steps"] == 32
        # adaptive inference: stem and suit evaluated again with 9 segments, vit not
        assert list(r["by_k"]) == ([] if r["arm"] == "vit" else [9])
    result = files.read_json(os.path.join(tiny, "procedural", "arm=suit_seed=0", "result.json"))
    assert result["eval"]["test_k9"]["accuracy"] != result["eval"]["test"]["accuracy"]
    with open(os.path.join(tiny, "report", "report.md")) as f:
        text = f.read()
    assert "**V1 not measured**" in text and "**V2" in text and "**V3" in text
    for arm in report.ARMS:
        assert report.ARM_NAMES[arm] in text
    for name in report.FIGURES:
        assert os.path.getsize(os.path.join(tiny, "report", name)) > 2000
    capsys.readouterr()
    assert run.main([f"--workdir={tiny}", "--variant=tiny", "--inline"]) == 0
    assert "0 to run" in capsys.readouterr().out  # nothing trained twice


def test_config_variants_and_bad_arguments():
    c = config_file.get_config("variant=paper,arm=suit")
    assert (c.model.d_model, c.model.num_layers, c.model.num_heads) == (192, 12, 3)
    assert c.superpixels.num_segments == 196 and c.model.downsample == 2
    assert c.augment.cutmix_alpha == 1.0 and c.augment.mixup_alpha == 0.0
    assert c.train.total_steps == 300 * round(1_281_167 / 1024) and c.train.ema_decay > 0
    assert c.optimizer.lr == pytest.approx(8e-4 * 1024 / 512)
    assert sorted(config_file.get_config("variant=cpu,arm=stem").evals) == [
        "test", "test_k16", "test_k36", "test_k49"
    ]  # fmt: skip
    assert list(config_file.get_config("variant=cpu,arm=vit").evals) == ["test"]
    assert len(config_file.get_sweep("variant=cpu")) == 6
    for bad, match in (("arm=deit", "arm='deit' is unknown"), ("variant=big", "unknown")):
        with pytest.raises(config_lib.ConfigError, match=match):
            config_file.get_config(bad)
