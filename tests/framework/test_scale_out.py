"""Scale-out on emulated CPU devices: sharding presets reproduce the 1-device
losses and lay parameters out as the rules say; 2 processes x 2 devices (fsdp) match
1 process on 1 device; the dry run reports compiled memory per device."""

import json
import os
import re
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests.conftest import MESH_STEPS, ROOT, cli_env, load_checkpoint, run_cli
from tests.framework import mesh_check

STEPS = MESH_STEPS
MESHES = mesh_check.MESHES


@pytest.fixture(scope="module")
def single_device():
    """The meshes' models trained on this process's one CPU device."""
    return {
        "dense": mesh_check.run_mesh({"data": -1}, STEPS),
        "moe": mesh_check.run_mesh({"data": -1, "model": mesh_check.MOE}, STEPS),
    }


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(MESHES)))
def test_mesh_reproduces_single_device_and_follows_rules(single_device, eight_devices, index):
    out, expected = eight_devices["meshes"][index], MESHES[index][1]
    one = single_device["moe" if "model" in MESHES[index][0] else "dense"]
    assert out["devices"] == eight_devices["devices"] == 8 and one["devices"] == 1
    np.testing.assert_allclose(out["losses"], one["losses"], rtol=2e-5)
    assert out["losses"][-1] < out["losses"][0]
    for name, spec in expected.items():
        assert out["specs"][name] == spec, name
        assert out["specs"][name + "/mu"] == spec, name  # Adam moments follow their params


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def final_params(workdir: str):
    path = os.path.join(workdir, "checkpoints", str(STEPS), "state")
    return load_checkpoint(path)["params"]


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    config = [
        f"--config=configs/quickstart.py:size=tiny,steps={STEPS}",
        "--config.mesh.data=2",
        "--config.mesh.fsdp=2",
        "--config.mesh.rules=fsdp",
        "--config.train.eval_every_steps=0",  # compare the final parameters only
        "--config.train.checkpoint_every_steps=0",
    ]
    from configs import quickstart
    from framework import launch

    single = str(tmp_path / "single")  # the same run on this process's one device
    one = quickstart.get_config(f"size=tiny,steps={STEPS}")
    one.train.update(eval_every_steps=0, checkpoint_every_steps=0)
    one.evals = {}  # the final evaluation does not touch the parameters compared
    assert launch.run(one, single).code == 0

    multi = str(tmp_path / "multi")
    port = free_port()
    env = cli_env(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "framework.main",
                *config,
                f"--workdir={multi}",
                f"--coordinator_address=127.0.0.1:{port}",
                "--num_processes=2",
                f"--process_id={i}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    # Only process 0 writes metrics; both wrote their data-iterator state.
    with open(os.path.join(multi, "metrics.jsonl")) as f:
        rows = [json.loads(x) for x in f]
    assert sum(r["split"] == "train" and r["step"] == STEPS for r in rows) == 1
    data_dir = os.path.join(multi, "checkpoints", str(STEPS), "data")
    assert {"process_0-of-2.json", "process_1-of-2.json"} <= set(os.listdir(data_dir))
    a, b = final_params(single), final_params(multi)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-7)


BIG = [  # mesh_check.BIG: a ~1.0e9-parameter decoder
    "--config=configs/quickstart.py",
    *(f"--config.model.{k}={v}" for k, v in mesh_check.BIG.items()),
    f"--config.train.batch_size={mesh_check.BIG_BATCH}",
    "--host_devices=8",
]


def dry_run_numbers(stdout: str) -> dict:
    found = re.findall(r"^(\S+(?: \S+)?)\s{2,}([\d.]+) GiB", stdout, flags=re.M)
    return {key: float(value) for key, value in found}


def test_dry_run_reports_memory_and_fsdp_divides_state(tmp_path, eight_devices):
    """The CLI's dry run on data=8; the same model's on fsdp=8 from mesh_check.py."""
    workdir = str(tmp_path / "dry")
    dp = run_cli([*BIG, f"--workdir={workdir}", "--dry_run", "--config.mesh.data=8"])
    assert dp.returncode == 0, dp.stderr[-2000:]
    assert "parameters            1,012,490,240" in dp.stdout
    a = dry_run_numbers(dp.stdout)
    fsdp = eight_devices["fsdp_dry_run"]
    assert fsdp["params"] == 1_012_490_240 and fsdp["mesh"]["fsdp"] == 8
    # params + Adam moments in fp32 = 12 bytes/param, replicated vs split 8 ways
    assert a["arguments/device"] == pytest.approx(12 * 1.0125e9 / 2**30, rel=0.02)
    ratio = a["arguments/device"] / (fsdp["argument_bytes"] / 2**30)
    assert ratio == pytest.approx(8, rel=0.05)
    assert not os.path.exists(workdir)  # a dry run writes nothing


def test_run_that_does_not_fit_says_so_before_allocating(tmp_path):
    workdir = str(tmp_path / "big")
    proc = run_cli([*BIG, f"--workdir={workdir}", "--config.mesh.data=8"])
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert "GiB per device" in last and "mesh.fsdp" in last
    assert not os.path.exists(workdir)
