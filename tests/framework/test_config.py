"""Config parsing, override checking, duration resolution and CLI config errors."""

import json
import os
from pathlib import Path

import pytest

from framework import config as config_lib
from framework.tasks import lm
from tests.conftest import run_cli


def test_parse_arg_types_and_defaults():
    arg = config_lib.parse_arg(
        "steps=12,lr=0.5,use_x=true,name=abc", steps=1, lr=1.0, use_x=False, name="z", keep=3
    )
    assert arg.steps == 12 and isinstance(arg.steps, int)
    assert arg.lr == 0.5 and isinstance(arg.lr, float)
    assert arg.use_x is True
    assert arg.name == "abc"
    assert arg.keep == 3


def test_parse_arg_errors_name_the_problem():
    with pytest.raises(config_lib.ConfigError, match="did you mean 'steps'"):
        config_lib.parse_arg("stpes=3", steps=1)
    with pytest.raises(config_lib.ConfigError, match="not a int"):
        config_lib.parse_arg("steps=abc", steps=1)
    with pytest.raises(config_lib.ConfigError, match="key=value"):
        config_lib.parse_arg("steps", steps=1)


def test_locked_config_rejects_typos_with_suggestion():
    c = lm.default_config()
    with pytest.raises(AttributeError, match='Did you mean "lr"'):
        c.optimizer.lrr = 1.0
    config_lib.check_override_keys(c, ["optimizer.lr", "model.d_model"])
    with pytest.raises(config_lib.ConfigError, match="did you mean 'optimizer.lr'"):
        config_lib.check_override_keys(c, ["optimizer.lrr"])


def test_resolve_durations_units():
    c = lm.default_config()
    c.train.batch_size = 10
    c.train.total_epochs = 2.5
    c.schedule.warmup_examples = 95
    c.train.eval_every_steps = 7
    steps = config_lib.resolve_durations(c, examples_per_epoch=100)
    assert steps == {
        "total": 25,
        "warmup": 10,
        "eval_every": 7,
        "checkpoint_every": 0,
        "log_every": 10,
    }
    c.train.total_steps = 5
    with pytest.raises(config_lib.ConfigError, match="only one of"):
        config_lib.resolve_durations(c, examples_per_epoch=100)
    c.train.total_steps = 0
    c.train.total_epochs = 0.0
    with pytest.raises(config_lib.ConfigError, match="no training length"):
        config_lib.resolve_durations(c, examples_per_epoch=100)


def test_save_config_keeps_the_original_on_change(tmp_path):
    c = lm.default_config()
    c.train.total_steps = 3
    p1 = config_lib.save_config(c, {"total": 3}, str(tmp_path), 0)
    assert p1.endswith("config.json")
    assert config_lib.save_config(c, {"total": 3}, str(tmp_path), 0) == p1
    c.train.total_steps = 6
    p2 = config_lib.save_config(c, {"total": 6}, str(tmp_path), 3)
    assert p2.endswith("config.3.json")
    assert json.loads(Path(p1).read_text())["config"]["train"]["total_steps"] == 3
    assert json.loads(Path(p2).read_text())["config"]["train"]["total_steps"] == 6


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config.optimizer.lrr=0.1"], "did you mean 'optimizer.lr'"),
        (["--config.train.batch_size=abc"], "batch_size"),
    ],
)
def test_cli_user_errors_exit_2_and_write_nothing(tmp_path, args, message):
    """Errors of the flag parsing itself, through the CLI (the other config errors below
    take the same launch.run path in-process)."""
    workdir = tmp_path / "run"
    proc = run_cli(
        ["--config=configs/quickstart.py:size=tiny,steps=2", f"--workdir={workdir}", *args]
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, proc.stderr[-2000:]
    assert not os.path.exists(workdir)


def test_config_errors_exit_2_and_write_nothing(tmp_path):
    from configs import quickstart
    from framework import launch

    with pytest.raises(config_lib.ConfigError, match="did you mean 'model.d_model'"):
        config_lib.check_override_keys(quickstart.get_config("size=tiny"), ["model.d_modle"])
    cases = {"/no/such/file.txt": ("data", "path"), "mesh.rules": ("mesh", "rules")}
    for message, (section, key) in cases.items():
        c = quickstart.get_config("size=tiny,steps=2")
        c[section][key] = "/no/such/file.txt" if key == "path" else "xyz"
        workdir = tmp_path / key
        outcome = launch.run(c, str(workdir))
        assert outcome.code == 2 and message in outcome.message, outcome
        assert outcome.message.startswith("error: ") and "\n" not in outcome.message
        assert not os.path.exists(workdir)


def test_cli_bad_config_argument_exits_2(tmp_path):
    proc = run_cli(["--config=configs/quickstart.py:sise=tiny", f"--workdir={tmp_path}/r"])
    assert proc.returncode == 2
    assert "did you mean 'size'" in proc.stderr.strip().splitlines()[-1]
