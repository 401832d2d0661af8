"""Fault injection: what a user or a broken machine does to a run, and what must happen.

One run per workdir (lock; a stale lock is no obstacle), corrupt checkpoint data
detected by the digests, truncated result/config files, user errors as one sentence
with exit 2 and nothing on disk changed, a finished run whose checkpoints are all
corrupt is refused, a changed config on a finished run, --restart, resume bookkeeping,
SIGTERM during start-up, and a full disk. Subprocesses only where a process is needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import chex
import numpy as np
import pytest

from framework import config as config_lib, launch, metrics, workdir as workdir_lib
from tests.conftest import ROOT, cli_env, load_checkpoint, run_cli, tiny_lm_config

STEPS, CKPT = 20, 10
CLI = [
    f"--config=configs/quickstart.py:size=tiny,steps={STEPS}",
    f"--config.train.checkpoint_every_steps={CKPT}",
    "--config.train.eval_every_steps=10",
    "--config.train.plot_losses=false",
    "--config.train.best_metric=val/loss",
]


def tiny() -> config_lib.ConfigDict:
    """The CLI's config (the shared tiny LM run's), built in-process."""
    return tiny_lm_config()


def params(workdir: str, step: int = STEPS) -> dict:
    return load_checkpoint(os.path.join(workdir, "checkpoints", str(step), "state"))["params"]


def read(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def tree_hash(path: str) -> dict[str, str]:
    """Every file below `path` (relative name -> sha256): what 'nothing changed' means."""
    out = {}
    for dirpath, _, names in os.walk(path):
        for name in names:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, path)] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def clean(tiny_lm_run) -> str:
    """A finished 20-step run, trained in-process once per session: the reference."""
    return tiny_lm_run


def copy_run(clean: str, tmp_path, name: str = "run") -> str:
    target = str(tmp_path / name)
    shutil.copytree(clean, target)
    return target


def start(workdir: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "framework.main", *CLI, f"--workdir={workdir}", *extra],
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(predicate, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
    t0 = time.time()
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(proc.stdout.read()[-3000:])
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.01)


@pytest.mark.slow
def test_second_run_on_a_locked_workdir_exits_2_and_the_first_is_unharmed(clean, tmp_path):
    workdir = str(tmp_path / "run")
    first = start(workdir)
    lock = os.path.join(workdir, workdir_lib.LOCK_NAME)
    wait_for(lambda: os.path.exists(lock) and f'"pid": {first.pid}' in read_text(lock), first)
    os.kill(first.pid, signal.SIGSTOP)  # holds the lock, frozen
    try:
        before = tree_hash(workdir)
        second = launch.run(tiny(), workdir)  # what framework.main runs: exit 2, this line
        assert second.code == 2 and second.message.startswith("error: workdir"), second
        assert f"is in use by pid {first.pid} on host" in second.message
        assert tree_hash(workdir) == before  # the second run wrote nothing
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out[-3000:]
    chex.assert_trees_all_equal(params(workdir), params(clean))
    rows = [(r["step"], r["split"]) for r in metrics.read_metrics(workdir)]
    assert rows == [(r["step"], r["split"]) for r in metrics.read_metrics(clean)]


def test_a_lock_left_by_a_killed_process_is_no_obstacle(clean, tmp_path):
    workdir = str(tmp_path / "run")
    os.makedirs(workdir)
    holder = subprocess.Popen(  # takes the lock as a run would, then is killed -9
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
            "fcntl.flock(f, fcntl.LOCK_EX); f.write('{\"pid\": 1}'); f.flush(); "
            "print('locked', flush=True); time.sleep(600)",
            os.path.join(workdir, workdir_lib.LOCK_NAME),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    busy = pytest.raises(workdir_lib.WorkdirBusyError, match="in use by pid 1")
    with busy, workdir_lib.lock(workdir):
        pass
    holder.kill()
    holder.wait()
    outcome = launch.run(tiny(), workdir)
    assert outcome.code == 0 and outcome.result["status"] == "done"
    chex.assert_trees_all_equal(params(workdir), params(clean))


def _overwrite_middle(path: str, data: bytes = b"\xde\xad\xbe\xef" * 4) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.write(data)


def test_bytes_overwritten_in_checkpoint_data_are_detected(clean, tmp_path, caplog):
    caplog.set_level("INFO")
    workdir = copy_run(clean, tmp_path)
    os.remove(os.path.join(workdir, "result.json"))  # an interrupted run: it must resume
    state_dir = os.path.join(workdir, "checkpoints", str(STEPS), "state")
    data_files = [
        os.path.join(d, n) for d, _, names in os.walk(state_dir) for n in names if "/d/" in d + "/"
    ]
    assert data_files, sorted(tree_hash(state_dir))
    _overwrite_middle(max(data_files, key=os.path.getsize))
    outcome = launch.run(tiny(), workdir)
    assert outcome.code == 0 and outcome.result["status"] == "done"
    assert f"checkpoint at step {STEPS} is unreadable" in caplog.text
    assert os.path.isdir(os.path.join(workdir, "checkpoints_corrupt", str(STEPS)))
    assert "resumed from checkpoint at step 10" in caplog.text
    chex.assert_trees_all_equal(params(workdir), params(clean))


def test_digests_catch_values_that_read_back_wrong():
    from framework import checkpoint

    tree = {"a": jnp_array([1.0, 2.0, 3.0]), "b": {"c": jnp_array([[1, 2]], "int32")}}
    saved = checkpoint.digests(tree)
    assert checkpoint.verify(tree, saved) is None and checkpoint.verify(tree, None) is None
    swapped = {"a": jnp_array([2.0, 1.0, 3.0]), "b": tree["b"]}  # same sum, other order
    assert "array a differs" in checkpoint.verify(swapped, saved)
    huge = {"a": jnp_array([1.0, 2.0, 1e23]), "b": tree["b"]}
    assert "array a differs" in checkpoint.verify(huge, saved)
    # host (numpy) and device (jitted) digests agree, sums mod 2^32 for every dtype width
    for x in (
        tree["a"],
        tree["b"]["c"],
        jnp_array([[0.5, -7.0]], "bfloat16"),
        jnp_array([3], "int8"),
    ):
        assert checkpoint._host_digest(np.asarray(x)) == [int(v) for v in checkpoint._digest(x)]
    # digests written unwrapped (jax_enable_x64, before the sums were pinned to uint32)
    widened = {k: [v[0] + 2**32, v[1] + 5 * 2**32] for k, v in saved.items()}
    assert checkpoint.verify(tree, widened) is None


def test_small_host_states_save_from_copies_that_restore_bitwise(tmp_path, monkeypatch):
    """A small state in CPU memory is saved from numpy copies (orbax's cheaper path): the
    copies share no memory with the state (the train step donates its buffers while the
    save runs), and the checkpoint restores as jax.Arrays equal bit for bit."""
    import grain
    import jax

    from framework import checkpoint

    state = {"w": jnp_array([[1.5, -2.0, 3.25]], "bfloat16"), "step": jnp_array(7, "int32")}
    copied = checkpoint.host_copy(state)
    for x, c in zip(jax.tree.leaves(state), jax.tree.leaves(copied), strict=True):
        assert isinstance(c, np.ndarray) and c.dtype == x.dtype
        assert not np.shares_memory(c, np.asarray(x))
    ckpt = checkpoint.Checkpointer(str(tmp_path), keep=2)
    ckpt.save(3, state, iter(grain.MapDataset.range(4).to_iter_dataset()))
    ckpt.wait()
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state
    )
    restored, step = ckpt.restore_latest(
        abstract, iter(grain.MapDataset.range(4).to_iter_dataset())
    )
    ckpt.close()
    assert step == 3 and all(isinstance(x, jax.Array) for x in jax.tree.leaves(restored))
    chex.assert_trees_all_equal(restored, state)
    monkeypatch.setattr(checkpoint, "HOST_COPY_MAX_BYTES", 4)  # a large state: saved as is
    assert checkpoint.host_copy(state) is state


def jnp_array(values, dtype="float32"):
    import jax.numpy as jnp

    return jnp.asarray(values, dtype)


def test_truncated_result_and_config_are_set_aside(clean, tmp_path, caplog):
    workdir = copy_run(clean, tmp_path)
    for name in ("result.json", "config.json"):
        with open(os.path.join(workdir, name), "w") as f:
            f.write('{"status": "do')  # what a kill during a non-atomic write leaves
    outcome = launch.run(tiny(), workdir)
    assert outcome.code == 0 and outcome.result["status"] == "done", outcome.message
    assert "result.json is unreadable" in caplog.text and "config.json is unreadable" in caplog.text
    names = os.listdir(workdir)
    assert any(n.startswith("result.json.unreadable-") for n in names)
    result = read(os.path.join(workdir, "result.json"))  # rewritten, whole
    reference = read(os.path.join(clean, "result.json"))
    assert result["first_loss"] == reference["first_loss"]
    assert result["train"] == reference["train"] and result["eval"] == reference["eval"]
    rows = [(r["step"], r["split"]) for r in metrics.read_metrics(workdir)]
    assert len(rows) == len(set(rows))  # the final evaluation is logged once
    assert read(os.path.join(workdir, "config.json"))["config"]["seed"] == 0


def test_kill_after_the_last_checkpoint_leaves_a_whole_result(clean, tmp_path):
    """result.json missing (killed after the final checkpoint): the re-run reports the
    whole run (its first loss, the last train window) and logs nothing twice."""
    workdir = copy_run(clean, tmp_path)
    os.remove(os.path.join(workdir, "result.json"))
    result = launch.run(tiny(), workdir).result
    reference = read(os.path.join(clean, "result.json"))
    assert result["first_loss"] == reference["first_loss"] and result["train"]
    assert result["train"] == reference["train"] and result["eval"] == reference["eval"]
    rows = [(r["step"], r["split"]) for r in metrics.read_metrics(workdir)]
    assert len(rows) == len(set(rows))
    assert sorted(rows) == sorted((r["step"], r["split"]) for r in metrics.read_metrics(clean))


def test_finished_run_with_only_corrupt_checkpoints_is_refused(clean, tmp_path):
    workdir = copy_run(clean, tmp_path)
    for step in os.listdir(os.path.join(workdir, "checkpoints")):
        for dirpath, _, names in os.walk(os.path.join(workdir, "checkpoints", step)):
            for name in names:
                with open(os.path.join(dirpath, name), "wb") as f:
                    f.write(b"garbage")
    keep = {n: tree_hash(workdir)[n] for n in ("result.json", "metrics.jsonl")}
    outcome = launch.run(tiny(), workdir)
    assert outcome.code == 2
    assert "holds a finished run (result.json: done at step 20) but no readable checkpoint" in (
        outcome.message
    )
    assert "--restart" in outcome.message
    assert {n: tree_hash(workdir)[n] for n in keep} == keep  # results not overwritten


def test_changed_config_on_a_finished_run_warns_and_restart_moves_it_aside(clean, tmp_path, caplog):
    workdir = copy_run(clean, tmp_path)
    before = tree_hash(workdir)
    changed = tiny()
    changed.optimizer.lr, changed.seed = 1e-3, 3
    outcome = launch.run(changed, workdir)
    assert outcome.code == 0 and outcome.result == read(f"{workdir}/result.json")
    assert "config differs in optimizer.lr, seed; returning its old result" in caplog.text
    assert tree_hash(workdir) == {**before, workdir_lib.LOCK_NAME: tree_hash(workdir)["run.lock"]}
    outcome = launch.run(changed, workdir, restart=True)
    assert outcome.code == 0 and outcome.result["status"] == "done"
    (old,) = os.listdir(os.path.join(workdir, workdir_lib.SUPERSEDED))
    moved = tree_hash(os.path.join(workdir, workdir_lib.SUPERSEDED, old))
    assert {k: v for k, v in before.items() if k != "run.lock"} == moved  # nothing lost
    assert read(f"{workdir}/config.json")["config"]["seed"] == 3


def _pmformer(csv_path: str) -> config_lib.ConfigDict:
    from configs import pmformer

    c = pmformer.get_config("size=tiny")
    c.data.path = csv_path
    return c


def test_user_errors_exit_2_with_one_sentence_and_change_nothing(clean, tmp_path):
    workdir = copy_run(clean, tmp_path)
    before = tree_hash(workdir)
    (tmp_path / "bin.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00binary")
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    no_task, negative_lr = tiny(), tiny()
    no_task.task = "tests.framework.no_task"
    negative_lr.optimizer.lr = -0.1
    cases = [  # (config, workdir, the sentence): what framework.main prints, then exit 2
        (tiny(), str(a_file), "is an existing file, not a directory"),
        (no_task, workdir, "defines no `Task` class"),
        (negative_lr, workdir, "optimizer.lr=-0.1 is negative"),
        (_pmformer(f"{tmp_path}/bin.csv"), workdir, f"'{tmp_path}/bin.csv' is not a text CSV"),
    ]
    for config, where, message in cases:
        outcome = launch.run(config, where)
        assert outcome.code == 2 and outcome.message.startswith("error: "), outcome
        assert message in outcome.message and "\n" not in outcome.message, outcome.message
    assert tree_hash(workdir) == before
    assert a_file.read_text() == "not a directory"


@pytest.mark.slow
def test_cli_user_errors_exit_2_with_one_line(clean, tmp_path):
    """Errors caught before a config exists (the file, the sampler's flags), in processes.
    (A config's own errors take launch.run's path, tested in-process above; that the CLI
    exits 2 with its line: test_scale_out's step that does not fit.)"""
    workdir = copy_run(clean, tmp_path)
    before = tree_hash(workdir)
    (tmp_path / "syntax.py").write_text("def get_config(:\n")
    w = f"--workdir={workdir}"
    main, sample = "framework.main", "framework.sample"
    cases = [
        (main, ["--config=configs/nope.py", w], "config file 'configs/nope.py' does not exist"),
        (main, [f"--config={tmp_path}/syntax.py", w], "has a syntax error at line 1"),
        (sample, [w, "--top_p=1.5"], "--top_p=1.5 must be in (0, 1]"),
    ]
    # The sampler's other flag checks, in this process (the top_p case above shows that
    # the CLI turns a failed check into one line and exit 2).
    from framework.sample import check_flags

    ok = dict(max_new_tokens=8, num_samples=1, temperature=1.0, top_k=0, top_p=1.0)
    for bad, message in [
        (dict(max_new_tokens=-5), "--max_new_tokens=-5 must be >= 1"),
        (dict(num_samples=0), "--num_samples=0 must be >= 1"),
        (dict(temperature=-1.0), "--temperature=-1.0 must be >= 0"),
        (dict(top_k=-1), "--top_k=-1 must be >= 0"),
    ]:
        assert message in check_flags(**{**ok, **bad})
    assert check_flags(**ok) is None
    for module, args, message in cases:
        proc = run_cli(args, module=module)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        assert lines and lines[-1].startswith("error: ") and message in lines[-1], (args, lines)
        assert "Traceback" not in proc.stderr, args
    assert tree_hash(workdir) == before


def test_unwritable_workdir_is_refused_before_compiling(tmp_path):
    target = tmp_path / "ro"
    target.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)])
    if mounted.returncode:
        pytest.skip("cannot mount a read-only tmpfs here (needs root); the check is untested")
    try:
        t0 = time.time()
        outcome = launch.run(tiny(), str(target / "run"))
        assert outcome.code == 2 and "not writable" in outcome.message
        assert time.time() - t0 < 5  # before the step compiles
    finally:
        subprocess.run(["umount", str(target)], check=True)


@pytest.mark.slow
def test_sigterm_during_startup_trains_nothing_and_exits_0(tmp_path):
    workdir = str(tmp_path / "run")
    proc = start(workdir)
    time.sleep(1.0)  # JAX is still importing or the step compiling
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:]
    assert "SIGTERM before training started: nothing was trained" in out
    assert not os.path.exists(os.path.join(workdir, "checkpoints", "0"))
    assert not os.path.exists(os.path.join(workdir, "result.json"))


@pytest.mark.slow
def test_full_disk_is_one_line_and_resume_after_freeing_space_is_exact(clean, tmp_path, caplog):
    caplog.set_level("INFO")
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(disk)]
    if subprocess.run(mount, capture_output=True).returncode:
        print("skipped: cannot mount a small tmpfs here (needs root)")
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        workdir = str(disk / "run")
        args = [*CLI, f"--workdir={workdir}", "--config.train.checkpoint_every_steps=5"]
        args.append("--config.train.keep_checkpoints=20")  # the checkpoints fill the disk
        proc = run_cli(args)
        assert proc.returncode == 1, proc.stderr[-3000:]
        lines = proc.stderr.strip().splitlines()
        assert lines[-1].startswith("error: no space left on device: a checkpoint needs")
        assert f"({workdir}/checkpoints)" in lines[-1] and "re-run the same command" in lines[-1]
        info = re.compile(r"I\d{4} |model: |steps: ")  # absl INFO lines and their tails
        noise = [x for x in lines[:-1] if not info.match(x)]
        assert not noise and "Traceback" not in proc.stderr, noise  # progress, then one line
        kept = sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")))
        assert kept and kept[-1] < STEPS and all(s.isdigit() for s in map(str, kept))
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        config = tiny()
        config.train.update(checkpoint_every_steps=5, keep_checkpoints=20)
        assert launch.run(config, workdir).code == 0  # resumed in this process
        assert f"resumed from checkpoint at step {kept[-1]}" in caplog.text
        chex.assert_trees_all_equal(params(workdir), params(clean))
    finally:
        subprocess.run(["umount", str(disk)], check=True)
