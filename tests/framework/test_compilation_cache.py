"""framework/compilation_cache.py: a second in-process train() compiles nothing new."""

from __future__ import annotations

import os
import subprocess
import sys

import jax

from framework import compilation_cache, launch
from tests.conftest import ROOT, cli_env, tiny_lm_config


def test_second_in_process_train_hits_the_persistent_cache(tmp_path):
    c = tiny_lm_config()
    c.train.update(total_steps=2, checkpoint_every_steps=0, eval_every_steps=0, best_metric="")
    c.train.reuse_programs = False  # else the second run reuses the first's programs
    c.evals = {}
    c.seed = 11  # programs of their own, not compiled by another test of the session
    c.model.d_ff = 40
    events: list[str] = []
    jax.monitoring.register_event_listener(lambda name, **_: events.append(name))
    assert launch.run(c, str(tmp_path / "first")).code == 0
    first = list(events)
    events.clear()
    assert launch.run(c, str(tmp_path / "second")).code == 0
    hits = events.count("/jax/compilation_cache/cache_hits")
    assert "/jax/compilation_cache/cache_misses" in first  # the first run compiled
    assert hits >= 2 and "/jax/compilation_cache/cache_misses" not in events, events  # init, step


def test_library_sets_the_cache_beside_the_workdir(tmp_path):
    workdir = tmp_path / "runs" / "a"
    assert compilation_cache.directory_for(str(workdir), "") == str(tmp_path / "runs/jax_cache")
    assert compilation_cache.directory_for(str(workdir), "none") is None
    assert compilation_cache.directory_for(str(workdir), "c") == os.path.abspath("c")
    code = (
        "import jax, jax.numpy as jnp\n"
        "from framework import compilation_cache as cc\n"
        f"print(cc.enable({str(workdir)!r}))\n"
        "jax.jit(lambda x: x * 2 + 1)(jnp.ones(3)).block_until_ready()\n"
    )
    env = cli_env()
    env.pop("JAX_COMPILATION_CACHE_DIR")  # as on a user's machine
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "runs" / "jax_cache")
    assert os.listdir(tmp_path / "runs" / "jax_cache")  # the program was written there
