"""End to end through the CLI in subprocesses: resume after kill -9 and after
SIGTERM replays bitwise; the NaN guard halts with the checkpoint intact; a
corrupt latest checkpoint falls back to the previous one."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from tests.conftest import ROOT, cli_env, load_checkpoint

STEPS = 120
CKPT = 30
CONFIG = [
    f"--config=configs/quickstart.py:size=tiny,steps={STEPS}",
    f"--config.train.checkpoint_every_steps={CKPT}",
    "--config.train.eval_every_steps=0",
    "--config.train.log_every_steps=20",
    "--config.model.dropout=0.1",  # exercises the per-step RNG on resume
]


def final_params(workdir, step=STEPS):
    path = os.path.join(workdir, "checkpoints", str(step), "state")
    restored = load_checkpoint(path)
    return restored["params"], restored["opt_state"]


def assert_bitwise_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb) and la
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def in_process_config():
    """CONFIG's flags as the config they give (for runs in this process)."""
    from configs import quickstart

    config = quickstart.get_config(f"size=tiny,steps={STEPS}")
    config.train.update(checkpoint_every_steps=CKPT, eval_every_steps=0, log_every_steps=20)
    config.model.dropout = 0.1
    return config


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, in this process (test_sweep checks that a run in this
    process and one in a CLI process give bitwise-equal parameters)."""
    from framework import launch

    workdir = str(tmp_path_factory.mktemp("reference"))
    assert launch.run(in_process_config(), workdir).code == 0
    return workdir


def start(workdir, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "framework.main", *CONFIG, f"--workdir={workdir}", *extra],
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def read_result(workdir):
    with open(os.path.join(workdir, "result.json")) as f:
        return json.load(f)


def open_rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [line for line in f if '"split": "train"' in line]


def train_rows(workdir):
    return [json.loads(line)["step"] for line in open_rows(workdir)]


def wait_for_checkpoint(workdir, step, proc, timeout=180):
    path = os.path.join(workdir, "checkpoints", str(step))
    t0 = time.time()
    while not os.path.exists(path):
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() - t0 < timeout
        time.sleep(0.005)


@pytest.mark.slow
def test_reference_run_outputs(reference):
    ckpts = sorted(int(s) for s in os.listdir(os.path.join(reference, "checkpoints")))
    assert ckpts == [60, 90, 120]  # keep_checkpoints=3
    assert os.path.exists(os.path.join(reference, "loss.png"))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_interrupt_and_resume_is_bitwise_identical(reference, tmp_path, sig, caplog):
    from framework import launch

    caplog.set_level("INFO")
    workdir = str(tmp_path / "run")
    proc = start(workdir)
    wait_for_checkpoint(workdir, CKPT, proc)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    if sig == signal.SIGTERM:
        assert proc.returncode == 0, out[-3000:]
        assert "SIGTERM: saved a checkpoint" in out
    else:
        assert proc.returncode == -signal.SIGKILL
    steps = sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")))
    assert steps and steps[-1] < STEPS, f"run finished before the signal: {steps}"
    assert launch.run(in_process_config(), workdir).code == 0  # resumed in this process
    assert f"resumed from checkpoint at step {steps[-1]}" in caplog.text
    assert_bitwise_equal(final_params(workdir), final_params(reference))
    results = [read_result(d) for d in (workdir, reference)]
    assert results[0]["first_loss"] == results[1]["first_loss"]  # the run's, not the segment's
    assert results[0]["train"] == results[1]["train"]
    # Steps redone after the resume are logged once (the resumed run also logs its
    # first step, which the uninterrupted run did not).
    steps = train_rows(workdir)
    assert steps == sorted(set(steps))
    assert set(train_rows(reference)) <= set(steps)


def test_nan_guard_halts_and_keeps_checkpoint(tmp_path, caplog):
    from framework import launch

    config = in_process_config()
    config.debug.nan_at_step = 50
    workdir = str(tmp_path / "nan")
    outcome = launch.run(config, workdir)  # what framework.main runs; exit code 3
    assert outcome.code == 3 and outcome.result["status"] == "diverged"
    assert outcome.result["step"] == 50 and outcome.result["checkpoint_step"] == 30
    assert "NaN/Inf at step 50" in caplog.text
    assert "last good checkpoint is step 30" in caplog.text
    steps = sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")))
    assert steps == [30]
    params, _ = final_params(workdir, 30)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))


def test_corrupt_latest_checkpoint_falls_back(reference, tmp_path, caplog):
    from framework import launch

    caplog.set_level("INFO")
    workdir = str(tmp_path / "corrupt")
    shutil.copytree(reference, workdir)
    latest = os.path.join(workdir, "checkpoints", str(STEPS))
    for dirpath, _, files in os.walk(os.path.join(latest, "state")):
        for name in files:
            with open(os.path.join(dirpath, name), "wb") as f:
                f.write(b"garbage")
    assert launch.run(in_process_config(), workdir).code == 0  # what the CLI runs
    assert f"checkpoint at step {STEPS} is unreadable" in caplog.text
    assert "resumed from checkpoint at step 90" in caplog.text
    # The corrupt files are kept aside, and the retrained run matches.
    assert os.path.exists(os.path.join(workdir, "checkpoints_corrupt", str(STEPS)))
    assert_bitwise_equal(final_params(workdir), final_params(reference))
