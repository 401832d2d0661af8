"""The tiny SuiT reproduction end to end in this process (the grid ViT and SuiT arms on
voronoi-count, adaptive inference, the report with its figures; the stem arm's grid
labels are checked without training), BatchNorm statistics through checkpoints and
resume, and the config's bad inputs."""

from __future__ import annotations

import os
import shutil

import chex
import jax
import numpy as np
import pytest

from configs import suit as config_file
from experiments.suit import report, run
from framework import checkpoint, config as config_lib, files, trainer as trainer_lib
from framework.tasks import image_classify

ONLY = "--only=arm=(vit|suit)"  # the stem arm is SuiT on grid labels: test_grid_labels


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    workdir = str(tmp_path_factory.mktemp("suit"))
    assert run.main([f"--workdir={workdir}", "--variant=tiny", "--inline", ONLY]) == 0
    return workdir


@pytest.mark.slow
def test_tiny_reproduction_trains_every_arm_and_writes_the_report(tiny, tmp_path):
    data = report.load(tiny)["procedural"]
    assert sorted(r["arm"] for r in data) == ["suit", "vit"]
    for r in data:
        assert 0.0 <= r["acc"] <= 1.0 and r["steps"] == 16
        # adaptive inference: stem and suit evaluated again with 9 segments, vit not
        assert list(r["by_k"]) == ([] if r["arm"] == "vit" else [9])
    result = files.read_json(os.path.join(tiny, "procedural", "arm=suit_seed=0", "result.json"))
    assert result["eval"]["test_k9"]["loss"] != result["eval"]["test"]["loss"]
    with open(os.path.join(tiny, "report", "report.md")) as f:
        text = f.read()
    assert "**V1 not measured**" in text and "**V2" in text and "**V3" in text
    for arm in ("vit", "suit"):
        assert report.ARM_NAMES[arm] in text
    for name in report.FIGURES:
        assert os.path.getsize(os.path.join(tiny, "report", name)) > 2000
    check_batchnorm_statistics(tiny, tmp_path)


def check_batchnorm_statistics(tiny: str, tmp_path) -> None:
    """Model state that is not a parameter (framework/variables.py): SuiT's stem
    BatchNorm statistics, checkpointed, restored bit for bit by a resume from the middle
    checkpoint, and what evaluation reads."""
    run_dir = os.path.join(tiny, "procedural", "arm=suit_seed=0")
    config = config_lib.saved_config(run_dir)
    done = trainer_lib.Trainer(config, run_dir)
    variables, step = done.restore_variables("latest")
    stats = variables["tokenizer"]["stem_norm"]
    assert step == 16 and float(np.abs(stats["mean"]).max()) > 0  # moved from init
    assert not np.allclose(stats["var"], 1.0)
    saved = checkpoint.saved_tree(os.path.join(run_dir, "checkpoints", "16", "state"))
    assert "mean" in saved["model_state"]["tokenizer"]["stem_norm"]
    # Interrupted after step 8 (its later checkpoint and result gone) and resumed: the
    # same parameters and statistics, bit for bit.
    copy = str(tmp_path / "resumed")
    shutil.copytree(run_dir, copy)
    shutil.rmtree(os.path.join(copy, "checkpoints", "16"))
    os.remove(os.path.join(copy, "result.json"))
    resumed = trainer_lib.Trainer(config, copy)
    result = resumed.run()
    chex.assert_trees_all_equal(resumed.restore_variables("latest")[0], variables)
    # Evaluation reads them: the saved result again, another one with fresh statistics.
    evaluator = resumed.evaluators["test"]
    again = evaluator.run_at(variables, step)
    assert again == pytest.approx(result["eval"]["test"], rel=1e-6)
    fresh = jax.tree.map(lambda x: x, variables)
    fresh["tokenizer"]["stem_norm"].update(mean=0 * stats["mean"], var=0 * stats["var"] + 1)
    assert evaluator.run_at(fresh, step)["loss"] != pytest.approx(again["loss"], rel=1e-4)


def test_grid_labels_of_the_stem_arm():
    task = image_classify.Task(config_file.get_config("variant=tiny,arm=stem"))
    labels = np.asarray(task.segments(np.zeros((2, 32, 32, 3), np.float32), 16))
    assert labels.shape == (2, 32, 32) and task.model_config.tokenizer == "suit"
    np.testing.assert_array_equal(labels[1, ::8, ::8], np.arange(16).reshape(4, 4))
    np.testing.assert_array_equal(labels[0, 8:16, 16:24], 6)  # 8x8 cells, row-major
    assert task.describe_model()["tokens"] == 17


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
    for bad, match in (
        ("arm=deit", "arm='deit' is unknown"),
        ("variant=big", "unknown"),
        *((f"eval_segments={k}", "counts >= 1") for k in ("-3", "0", "9+x")),
    ):
        with pytest.raises(config_lib.ConfigError, match=match):
            config_file.get_config(bad)
    c = config_file.get_config("variant=tiny,arm=vit")
    c.data.reader_processes = -1
    with pytest.raises(config_lib.ConfigError, match="reader_processes=-1"):
        image_classify.Task(c).readers()
    c.data.source = "procedural:checkerboard"
    with pytest.raises(config_lib.ConfigError, match="checkerboard"):
        image_classify.Task(c)
    c.data.source, c.superpixels.kind = "procedural:voronoi-count", "watershed"
    with pytest.raises(config_lib.ConfigError, match="superpixels.kind='watershed'"):
        image_classify.Task(c)
    c.data.source, c.superpixels.kind = "procedural:voronoi-count", "slic"
    c.superpixels.num_segments = 32  # SLIC would start from 6 x 6 centres: 36 labels
    with pytest.raises(config_lib.ConfigError, match="num_segments=32: .* 6x6 grid .* use 36"):
        image_classify.Task(c)
    c.superpixels.num_segments = 36
    with pytest.raises(config_lib.ConfigError, match="evals.test_k60.num_segments=60: .*use 64"):
        image_classify.Task(c).checked_segments(60, "evals.test_k60.num_segments")
    c.model.stem_kernel = 6
    with pytest.raises(config_lib.ConfigError, match="stem_kernel=6 must be odd"):
        image_classify.Task(c)


def test_a_bad_data_path_stops_before_the_first_stage(tmp_path, capsys):
    notes = tmp_path / "cifar.txt"
    notes.write_text("not a zip")
    workdir = str(tmp_path / "w")
    assert run.main([f"--workdir={workdir}", "--variant=cpu", f"--data_path={notes}"]) == 2
    assert "error: --data_path: Image source" in capsys.readouterr().err
    assert not os.path.exists(workdir)  # the procedural stage did not start
