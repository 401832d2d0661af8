"""The sweep runner: expansion and naming, user errors, a 4-point sweep of processes at
--parallel=2 killed and resumed, inline points (failed, crashed, diverged; bitwise equal
to a process point), and launch scripts."""

import csv
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import chex
import pytest

from framework import config as config_lib, sweep, workdir as workdir_lib
from framework.sweep import runner
from tests.conftest import ROOT, cli_env, load_checkpoint, run_cli

CONFIG = "--config=configs/quickstart.py:size=tiny,steps=10"
END_EVAL_ONLY = "--config.train.eval_every_steps=0"
NAMES = [
    "lr=0.001_d_model=16_d_ff=32",
    "lr=0.001_d_model=32_d_ff=64",
    "lr=0.003_d_model=16_d_ff=32",
    "lr=0.003_d_model=32_d_ff=64",
]
ONLY = "lr=0.001|d_model=16"  # selects the first three
SELECTED = NAMES[:3]


def read_csv(workdir):
    with open(os.path.join(workdir, "results.csv")) as f:
        return list(csv.DictReader(f))


def write_config(tmp_path, points_src, name="sweep_cfg.py"):
    path = tmp_path / name
    path.write_text(
        "from configs.quickstart import get_config  # noqa: F401\n\n\n"
        f"def get_sweep(arg=None):\n    return {points_src}\n"
    )
    return str(path)


def status(result_path):
    try:
        with open(result_path) as f:
            return json.load(f)["status"]
    except (OSError, ValueError):
        return None


def unlocked(pdir: str) -> bool:
    """Whether no process holds the point's workdir lock (a dead one holds none)."""
    if workdir_lib.try_lock_file(pdir) is None:
        return False
    workdir_lib.release_lock_file(pdir)
    return True


def headers(workdir, name):
    with open(os.path.join(workdir, name, "log.txt")) as f:
        return sum(line.startswith("# sweep ") for line in f)


def test_product_expands_axes_in_order():
    points = sweep.product({"optimizer.lr": [1e-3, 3e-3]}, {"model.d_model": [32, 64]})
    assert points == [
        {"optimizer.lr": 1e-3, "model.d_model": 32},
        {"optimizer.lr": 1e-3, "model.d_model": 64},
        {"optimizer.lr": 3e-3, "model.d_model": 32},
        {"optimizer.lr": 3e-3, "model.d_model": 64},
    ]
    tied = [{"model.d_model": 32, "model.d_ff": 128}, {"model.d_model": 64, "model.d_ff": 256}]
    points = sweep.product({"seed": [0, 1], "optimizer.lr_multipliers": ((".*", 2.0),)}, tied)
    assert len(points) == 4
    assert points[1] == {
        "seed": 0,
        "optimizer.lr_multipliers": ((".*", 2.0),),
        "model.d_model": 64,
        "model.d_ff": 256,
    }
    assert sweep.product() == [{}]
    with pytest.raises(ValueError, match="two axes"):
        sweep.product({"seed": [0, 1]}, [{"seed": 2}])


def test_names_are_readable_unique_stable_and_safe():
    assert sweep.name_point({"optimizer.lr": 0.001, "model.d_model": 32}) == "lr=0.001_d_model=32"
    assert sweep.name_point({}) == "base"
    assert sweep.name_point({"model.qk_norm": True}) == "qk_norm=true"
    # keys that share a last part keep enough of their path to tell them apart
    assert sweep.name_point({"model.dropout": 0.1, "data.dropout": 0.2}) == (
        "model.dropout=0.1_data.dropout=0.2"
    )
    points = [
        {"optimizer.lr": 1e-3, "data.path": "a/b"},
        {"optimizer.lr": 1e-3, "data.path": "a-b"},  # same name once made safe
        {"optimizer.lr": 1e-3, "data.path": "A-B"},  # clashes case-insensitively
        {"optimizer.lr": 1e-3, "data.path": "x" * 300},  # too long
        {"optimizer.lr": 1e-5, "data.path": "c d"},
        {"optimizer.lr": 1e-5, "data.path": "0.1"},
        {"optimizer.lr": 1e-5, "data.path": 0.1},
    ]
    names = sweep.name_points(points)
    assert len({n.lower() for n in names}) == len(points)
    assert all(re.fullmatch(r"[A-Za-z0-9._=+~-]+", n) and len(n) <= 130 for n in names)
    assert names[4] == "lr=1e-05_path=c-d"
    assert names[0].startswith("lr=0.001_path=a-b~") and names[1].startswith("lr=0.001_path=a-b~")
    # stable: the same point gets the same name in another order or another call
    again = sweep.name_points(points[::-1])[::-1]
    assert again == names
    with pytest.raises(sweep.SweepError, match="equal"):
        sweep.name_points([{"seed": 1}, {"seed": 1}])


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    bad = write_config(tmp_path, "[{'optimizer.lrr': 1e-3}]")
    proc = run_cli(
        [f"--config={bad}:size=tiny", f"--workdir={tmp_path}/w"], module="framework.sweep"
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: unknown config key 'optimizer.lrr'; did you mean 'optimizer.lr'?"
    ]
    assert not os.path.exists(tmp_path / "w")

    bad_value = write_config(tmp_path, "[{'optimizer.lr': 'x'}]", "bad_value.py")
    no_sweep = tmp_path / "plain.py"
    no_sweep.write_text("from configs.quickstart import get_config  # noqa: F401\n")
    cases = [
        ([f"--config={no_sweep}"], "defines no get_sweep"),
        ([CONFIG, "--config.train.total_step=5"], "did you mean 'train.total_steps'"),
        ([CONFIG, "--config.train.total_steps=abc"], "'abc' is not a valid int"),
        ([CONFIG, "--config.optimizer.lr=0.1"], "also swept"),
        ([f"--config={bad_value}"], "point lr=x: optimizer.lr='x'"),
        ([CONFIG, "--only=nomatch"], "matches none"),
    ]
    for args, message in cases:
        assert sweep.main([*args, f"--workdir={tmp_path}/w"]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not os.path.exists(tmp_path / "w")


@pytest.mark.slow
def test_killed_parallel_sweep_resumes_only_unfinished_points(tmp_path, capsys):
    """3 points of the 4-point sweep (--only), as processes 2 at a time, killed (sweep and
    runs) after a point finished; the re-run (inline) trains only the others; the results
    table lists all 4 points (the unselected one pending)."""
    workdir = str(tmp_path / "sweep")
    args = [CONFIG, f"--workdir={workdir}", "--parallel=2", END_EVAL_ONLY, f"--only={ONLY}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "framework.sweep", *args],
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def finished():  # points whose result.json is complete and says done
        paths = {n: os.path.join(workdir, n, "result.json") for n in SELECTED}
        return {n: os.stat(p).st_mtime_ns for n, p in paths.items() if status(p) == "done"}

    deadline = time.time() + 300
    while not finished() and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and the runs it started
    proc.wait()
    while not all(unlocked(os.path.join(workdir, n)) for n in SELECTED):  # killed runs exit
        assert time.time() < deadline
        time.sleep(0.05)
    done = finished()
    assert 1 <= len(done) < 3, done

    capsys.readouterr()
    # The re-run inline (resuming is the same code for both kinds of points; the kill
    # above was of processes): it trains only the unfinished points.
    inline = [a for a in args if not a.startswith("--parallel")] + ["--inline"]
    assert sweep.main(inline) == 0
    rerun = capsys.readouterr().out
    ran = re.findall(r"^\[\d/\d\] \w+\s+(\S+)", rerun, flags=re.M)
    assert sorted(ran) == sorted(set(SELECTED) - set(done))
    lines = [x for x in rerun.splitlines() if re.match(r"\[\d/\d\] done", x)]
    assert len(lines) == len(ran) and all("val/loss" in x and "ETA" in x for x in lines)
    for name, mtime in done.items():  # finished points were not touched
        assert os.stat(os.path.join(workdir, name, "result.json")).st_mtime_ns == mtime
        assert headers(workdir, name) == 1
    rows = read_csv(workdir)
    assert [r["name"] for r in rows] == NAMES
    assert [r["status"] for r in rows] == ["done", "done", "done", "pending"]
    for r in rows[:3]:
        assert r["steps"] == "10" and r["error"] == ""
        for key in ("train/loss", "val/loss", "val/best_loss", "wall_s"):
            assert math.isfinite(float(r[key])) and float(r[key]) > 0, (key, r)
        assert 4.0 < float(r["train/loss"]) < 6.0
        assert float(r["val/best_loss"]) == float(r["val/loss"])  # evaluated at the end only
    assert [r["optimizer.lr"] for r in rows] == ["0.001", "0.001", "0.003", "0.003"]
    assert [r["model.d_model"] for r in rows] == ["16", "32", "16", "32"]
    with open(os.path.join(workdir, "results.md")) as f:
        md = f.read()
    assert "4 points: 3 done, 0 early_stopped, 0 diverged, 0 failed, 1 pending" in md
    assert sum(line.startswith("| lr=") for line in md.splitlines()) == 4
    # A third run finds everything selected finished and runs nothing.
    started = [headers(workdir, n) for n in SELECTED]
    assert sweep.main(args) == 0
    assert "3 of 3 selected already finished, 0 to run" in capsys.readouterr().out
    assert [headers(workdir, n) for n in SELECTED] == started


def test_failed_crashed_and_diverged_inline_points_do_not_stop_the_sweep(tmp_path, capsys):
    points = (
        "[{'model.norm': 'bad'}, {'task': 'tests.framework.fake_tasks'}, {'debug.nan_at_step': 2}]"
    )
    config = write_config(tmp_path, points)
    workdir = str(tmp_path / "sweep")
    args = [f"--config={config}:size=tiny,steps=10", f"--workdir={workdir}", END_EVAL_ONLY]
    assert sweep.main([*args, "--inline"]) == 0
    out = capsys.readouterr().out
    failed, crashed, diverged = read_csv(workdir)
    assert failed["name"] == "norm=bad" and failed["status"] == "failed"
    assert failed["error"].startswith("error: model: TransformerConfig.norm='bad' is invalid")
    assert crashed["status"] == "failed"
    assert crashed["error"] == "RuntimeError: boom: this task always fails to build its model"
    assert diverged["name"] == "nan_at_step=2" and diverged["status"] == "diverged"
    assert diverged["steps"] == "2" and diverged["error"] == ""
    codes = []
    for name in (failed["name"], crashed["name"], diverged["name"]):
        with open(os.path.join(workdir, name, sweep.STATUS_FILE)) as f:
            codes.append(json.load(f)["returncode"])
    assert codes == [2, 1, 3]  # the exit codes framework.main would give
    with open(os.path.join(workdir, crashed["name"], "log.txt")) as f:
        log = f.read()
    assert "Traceback (most recent call last)" in log and log.count("# sweep ") == 1
    assert "[1/3] failed" in out and "[3/3] diverged" in out
    with open(os.path.join(workdir, "results.md")) as f:
        assert "0 done, 0 early_stopped, 1 diverged, 2 failed, 0 pending" in f.read()
    # A re-run skips the diverged point and runs the failed ones again.
    assert sweep.main([*args, "--inline"]) == 0
    assert "1 of 3 selected already finished, 2 to run" in capsys.readouterr().out


@pytest.mark.slow
def test_inline_point_equals_subprocess_point_bitwise(tmp_path):
    """The guard for --inline: one 10-step point trained in this process and as a
    `framework.main` process gives bitwise-equal parameters and the same losses."""
    config = write_config(tmp_path, "[{'optimizer.lr': 0.003}]")
    arg, name = "size=tiny,steps=10", "lr=0.003"
    inline = sweep.run_sweep(config, arg, str(tmp_path / "inline"), inline=True, echo=print)
    proc = sweep.run_sweep(config, arg, str(tmp_path / "proc"), echo=print)
    assert [r["status"] for r in inline + proc] == ["done", "done"]
    results = []
    for mode in ("inline", "proc"):
        with open(tmp_path / mode / name / "result.json") as f:
            results.append(json.load(f))
    a, b = results
    assert a["first_loss"] == b["first_loss"] and a["train"] == b["train"]
    assert a["eval"] == b["eval"] and a["step"] == b["step"] == 10
    ckpt = lambda mode: load_checkpoint(str(tmp_path / mode / name / "checkpoints/10/state"))
    chex.assert_trees_all_equal(ckpt("inline")["params"], ckpt("proc")["params"])


def test_launch_script_writes_one_command_per_point(tmp_path, capsys):
    script = tmp_path / "launch.sh"
    prefix = "gcloud compute tpus tpu-vm ssh my-tpu --worker=all --command="
    workdir = str(tmp_path / "qs")
    args = [CONFIG, f"--workdir={workdir}", END_EVAL_ONLY, f"--launch_script={script}"]
    assert sweep.main([*args, f"--launch_prefix={prefix}"]) == 0
    assert "4 commands" in capsys.readouterr().out
    assert os.access(script, os.X_OK) and not os.path.exists(workdir)
    lines = [x for x in script.read_text().splitlines() if x.startswith("gcloud")]
    assert len(lines) == 4
    for name, line in zip(NAMES, lines):
        words = shlex.split(line)
        assert words[:-1] == shlex.split(prefix)[:-1]
        assert words[-1].startswith("--command=python -m framework.main ")
        cmd = shlex.split(words[-1][len("--command=") :])
        assert cmd[3:6] == [
            "--config=configs/quickstart.py:size=tiny,steps=10",
            f"--workdir={workdir}/{name}",
            "--config.train.eval_every_steps=0",
        ]
        lr, d = re.match(r"lr=([\d.]+)_d_model=(\d+)", name).groups()
        assert f"--config.optimizer.lr={lr}" in cmd and f"--config.model.d_model={d}" in cmd
    assert sweep.main([*args, "--only=lr=0.003", "--launch_prefix=srun -N2"]) == 0
    lines = [x for x in script.read_text().splitlines() if not x.startswith(("#", "set "))]
    assert len(lines) == 2 and all(x.startswith("srun -N2 python -m framework.main") for x in lines)
    assert sweep.main([CONFIG, f"--workdir={workdir}", "--dry_list"]) == 0
    listed = capsys.readouterr().out.splitlines()[-4:]
    assert [x.split()[0] for x in listed] == NAMES and all("[pending]" in x for x in listed)


def test_arg_keys_set_the_config_files_arguments(tmp_path):
    path = write_config(
        tmp_path,
        "[{'arg:size': 'tiny', 'arg:steps': 7, 'optimizer.lr': 0.01}, {'arg:size': 'small'}]",
    )
    s = sweep.load_sweep(path, "steps=3")
    assert s.names == ["size=tiny_steps=7_lr=0.01", "size=small"]
    cmd = s.command(0, "runs/x", "python")
    assert f"--config={path}:steps=3,size=tiny,steps=7" in cmd  # later items win
    assert "--config.optimizer.lr=0.01" in cmd and not any("arg:" in c for c in cmd)
    assert s.command(1, "runs/x", "python")[3] == f"--config={path}:steps=3,size=small"
    # Each point's config is built from its own argument and checked before anything runs.
    bad = write_config(tmp_path, "[{'arg:size': 'huge'}]", name="bad_cfg.py")
    with pytest.raises(config_lib.ConfigError, match="size='huge' is unknown"):
        sweep.load_sweep(bad, None)
    typo = write_config(tmp_path, "[{'arg:stepz': 3}]", name="typo_cfg.py")
    with pytest.raises(config_lib.ConfigError, match="did you mean 'steps'"):
        sweep.load_sweep(typo, None)


def test_early_stopped_points_count_as_finished(tmp_path):
    """A run that early-stopped (exit 0, status early_stopped) is finished, not failed."""
    import types

    workdir = str(tmp_path)
    os.makedirs(os.path.join(workdir, "p"))
    result = {"status": "early_stopped", "step": 7, "train": {"loss": 1.5}}
    result["eval"] = {"val": {"loss": 2.0}}
    with open(os.path.join(workdir, "p", "result.json"), "w") as f:
        json.dump(result, f)
    job = runner._Job(index=0, proc=None, start=time.time(), log_offset=0)
    runner._finish(types.SimpleNamespace(names=["p"]), job, workdir, 0)
    with open(os.path.join(workdir, "p", sweep.STATUS_FILE)) as f:
        assert json.load(f)["status"] == "early_stopped"
    row = sweep.point_row(workdir, "p", {"optimizer.lr": 0.1})
    assert (row["status"], row["steps"], row["val/loss"]) == ("early_stopped", 7, 2.0)
    assert row["status"] in sweep.FINISHED and row["error"] == ""


def test_a_point_finished_by_another_process_keeps_its_own_wall_time(tmp_path):
    """A sweep job that finds its run already finished (another sweep trained it after
    this one queued it) records the run's wall time, not the seconds the job took."""
    import types

    workdir = str(tmp_path)
    os.makedirs(os.path.join(workdir, "p"))
    with open(os.path.join(workdir, "p", "result.json"), "w") as f:
        json.dump({"status": "done", "step": 7, "wall_time_s": 708.5}, f)
    job = runner._Job(index=0, proc=None, start=time.time() + 1, log_offset=0)
    runner._finish(types.SimpleNamespace(names=["p"]), job, workdir, 0)
    assert sweep.point_row(workdir, "p", {})["wall_s"] == 708.5
    job = runner._Job(index=0, proc=None, start=time.time() - 60, log_offset=0)  # trained it
    runner._finish(types.SimpleNamespace(names=["p"]), job, workdir, 0)
    assert sweep.point_row(workdir, "p", {})["wall_s"] == pytest.approx(60, abs=5)


def test_results_markdown_keeps_evaluator_metrics_and_csv_keeps_all(tmp_path):
    sw = sweep.Sweep("configs/quickstart.py", None, [{"optimizer.lr": 0.1}], ["lr=0.1"], {})
    row = {"name": "lr=0.1", "optimizer.lr": 0.1, "status": "done", "steps": 5}
    row.update({"train/loss": 2.0, "val/loss": 2.5, "align/alpha/blocks/0/mlp/up": 0.7})
    sweep.write_results(sw, str(tmp_path), [row])
    md = (tmp_path / "results.md").read_text()
    assert "| val/loss |" in md and "align/alpha" not in md
    assert "1 per-tensor or per-layer metric columns are in results.csv only." in md
    assert "align/alpha/blocks/0/mlp/up" in (tmp_path / "results.csv").read_text()
