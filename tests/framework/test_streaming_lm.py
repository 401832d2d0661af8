"""The LM task on streamed data (data.source): training on prepared shards resumes
bitwise from a mid-run checkpoint, a tfds dataset trains and evaluates on its validation
split, a bad source is one line and exit 2 with nothing written, and the paper-scale
configs read C4 through tfds and dry-run here without the data."""

from __future__ import annotations

import os
import shutil

import chex
import numpy as np

from configs import quickstart, small_scale_proxies
from framework import checkpoint, files, launch, trainer as trainer_lib
from tests.data import corpora


def config(**data):
    c = quickstart.get_config("size=tiny,steps=12")
    c.train.update(checkpoint_every_steps=4, eval_every_steps=6, plot_losses=False)
    c.data.update(data)
    return c


def params(c, workdir):
    t = trainer_lib.Trainer(c, workdir)
    return checkpoint.restore_params(workdir, "latest", t.abstract_state["params"])[0]


def test_shards_train_and_resume_from_a_mid_run_checkpoint_bitwise(tmp_path):
    shards = corpora.prepared(tmp_path, corpora.documents(120))
    c = config(source=f"arrayrecord:{shards}", num_workers=2)
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    for workdir in (whole, cut):
        assert launch.run(c, workdir).code == 0
    # As if killed after step 4: later checkpoints and the result gone, then re-run.
    for step in ("8", "12"):
        shutil.rmtree(os.path.join(cut, "checkpoints", step))
    os.remove(os.path.join(cut, "result.json"))
    resumed = launch.run(c, cut)
    assert resumed.code == 0
    expected = files.read_json(os.path.join(whole, "result.json"))
    assert resumed.result["train"] == expected["train"]
    assert resumed.result["eval"] == expected["eval"]
    chex.assert_trees_all_equal(params(c, cut), params(c, whole))


def test_tfds_source_trains_and_a_bad_field_is_exit_2_writing_nothing(tmp_path):
    data_dir = str(tmp_path / "tfds")
    corpora.write_tfds(
        data_dir, {"train": corpora.documents(80), "validation": corpora.documents(20, 1)}
    )
    c = config(
        source="tfds:c4/en:3.1.0",
        val_source="tfds:c4/en:3.1.0@validation",
        tfds_dir=data_dir,
    )
    outcome = launch.run(c, str(tmp_path / "run"))
    assert outcome.code == 0 and outcome.result["eval"]["val"]["loss"] < 5.5
    c.data.text_field = "content"
    bad = str(tmp_path / "bad")
    outcome = launch.run(c, bad)
    assert outcome.code == 2 and "set data.text_field to one of id, text" in outcome.message
    assert not os.path.exists(bad) or not os.listdir(bad)


def test_paper_configs_stream_c4_and_dry_run_without_it(tmp_path):
    from configs import scaling_exponents

    for c in (
        small_scale_proxies.get_config("variant=paper,size=9M"),
        scaling_exponents.get_config("variant=paper,width=128"),
    ):
        assert c.data.source == "tfds:c4/en:3.1.0" and c.model.vocab_size == 32_000
        assert c.data.tokenizer == "sentencepiece" and c.data.sentencepiece_model
    t = trainer_lib.Trainer(c, str(tmp_path / "dry"), abstract=True)
    report = t.memory_report(t.compile_step())
    assert report["params"] > 9e6 and report["per_device_bytes"] > 1e9
    assert not os.path.exists(tmp_path / "dry")


def test_a_corrupt_record_met_while_training_is_exit_2_naming_file_and_record(tmp_path):
    from array_record.python.array_record_module import ArrayRecordWriter

    folder = tmp_path / "shards"
    folder.mkdir()
    path = str(folder / "docs-00000.array_record")
    writer = ArrayRecordWriter(path, "group_size:1")
    for doc in corpora.documents(40):
        writer.write(doc.encode())
    writer.close()
    with open(path, "r+b") as f:  # a record's bytes in the middle; the ends still read
        f.seek(1500)
        f.write(b"\xff" * 16)
    c = config(source=f"arrayrecord:{folder}", val_fraction=0.0)
    c.train.total_steps, c.evals = 400, {}
    workdir = str(tmp_path / "run")
    outcome = launch.run(c, workdir)
    assert outcome.code == 2, outcome
    assert f"of ArrayRecord shard '{path}' cannot be read" in outcome.message
    assert "\n" not in outcome.message.strip()


def test_without_a_source_the_embedded_corpus_is_read_in_memory_as_before():
    from data import text
    from framework.tasks import lm

    c = quickstart.get_config("size=tiny")
    assert c.data.source == "" and c.data.path == ""
    task = lm.Task(c)
    assert isinstance(task.data, text.LMData) and task.num_train_examples > 0
    batch = next(iter(task.train_dataset(batch_size=4, seed=0, shard_index=0, shard_count=1)))
    spec = task.batch_spec(4)
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {
        k: (shape, np.dtype(dtype)) for k, (shape, dtype) in spec.items()
    }


def test_bos_every_row_reads_rows_that_start_with_bos_and_is_refused_on_a_stream():
    import pytest

    from framework import config as config_lib
    from framework.tasks import lm

    c = quickstart.get_config("size=tiny")
    c.data.bos_every_row = True
    task = lm.Task(c)
    assert (task.data.train[:, 0] == task.tokenizer.bos_id).all()
    c.data.update(source="arrayrecord:/nowhere/*.arrayrecord")
    with pytest.raises(config_lib.ConfigError, match="data.bos_every_row applies to text"):
        lm.Task(c)
