"""Shared pytest setup: CPU only, one JAX compilation cache for the whole session,
slow tests scheduled first, helpers to run the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests check values, not speed: XLA's CPU backend at its cheapest optimisation level
# compiles the tiny test programs in about 40 % less time (a PMformer tiny reproduction:
# 58 s -> 34 s on one core, cold cache), and without the MLIR fusion emitters (the
# older LLVM IR emitters) in about 40 % less again (3 steps of the tiny LM plus three
# eagerly built models: 15.2 s -> 9.3 s). HLO optimisations (fusion, layout) still run;
# in-process and subprocess runs of the session use the same flags, so bitwise
# comparisons between them hold. Benchmarks run with XLA's defaults.
LEGACY_EMITTERS = "--xla_cpu_use_fusion_emitters=false"
FAST_COMPILE_FLAGS = (
    f"--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true {LEGACY_EMITTERS}"
)
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_FLAGS}".strip()


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for a CLI subprocess: CPU, repo on the path, the session's XLA flags
    (an XLA_FLAGS in `extra` is appended to them)."""
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    if "XLA_FLAGS" in extra:  # added to the session's flags, not replacing them
        extra["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {extra['XLA_FLAGS']}".strip()
    env.update(extra)
    return env


def run_cli(args: list[str], *, module: str = "framework.main", timeout: float = 300, **env):
    """Runs `python -m module args` and returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def load_checkpoint(state_dir: str) -> dict:
    """A checkpoint's train state as host arrays, whatever topology saved it."""
    import jax
    import numpy as np
    import orbax.checkpoint as ocp

    path = os.path.abspath(state_dir)
    ckptr = ocp.StandardCheckpointer()
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
        ckptr.metadata(path).item_metadata.tree,
    )
    return jax.tree.map(np.asarray, ckptr.restore(path, target))


@pytest.fixture(scope="session", autouse=True)
def jax_compilation_cache(tmp_path_factory) -> str:
    """One persistent compilation cache shared by every test, xdist worker and CLI
    subprocess of the session, so the tiny programs many tests compile are cache hits
    after the first (SHAMMIE_TEST_JAX_CACHE names a cache that outlives the session)."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers' temp dirs share a parent
        base = base.parent
    cache = os.environ.get("SHAMMIE_TEST_JAX_CACHE") or str(base / "jax_cache")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache  # for subprocesses (cli_env copies it)
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.reset_cache()  # in case something compiled while tests were collected
    return cache


def session_artifact(tmp_path_factory, name: str, build) -> str:
    """A directory built once per test session and shared by the xdist workers:
    `build(path)` runs under a file lock in the first worker that asks; the others wait
    and reuse it. For shared artifacts (a trained tiny LM, generated data); tests must
    treat it as read-only (copy it to change it)."""
    import fcntl

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    path = base / "artifacts" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / ".built").exists():
            build(str(path))
            (path / ".built").touch()
    return str(path)


def tiny_lm_config():
    """The shared tiny LM run's config: quickstart size=tiny, 20 steps, checkpoints and
    an evaluation every 10 steps, the best validation loss's parameters kept."""
    from configs import quickstart

    c = quickstart.get_config("size=tiny,steps=20")
    c.train.update(checkpoint_every_steps=10, eval_every_steps=10, plot_losses=False)
    c.train.best_metric = "val/loss"
    return c


@pytest.fixture(scope="session")
def tiny_lm_run(tmp_path_factory) -> str:
    """A finished tiny LM run (tiny_lm_config), trained once per session; read-only."""

    def build(path: str) -> None:
        from framework import launch

        outcome = launch.run(tiny_lm_config(), path)
        assert outcome.code == 0 and outcome.result["status"] == "done", outcome

    return session_artifact(tmp_path_factory, "tiny_lm_run", build)


@pytest.fixture(scope="session")
def arith_tiny_base(tmp_path_factory) -> str:
    """The arithmetic base policy at the tiny variant (experiments.arith.base: 100 steps on
    1-2 step, 1-digit problems), trained once per session; read-only."""

    def build(path: str) -> None:
        from experiments.arith import base

        base.build(path, "tiny", f"{path}_data", gate=False)

    return session_artifact(tmp_path_factory, "arith_tiny_base", build)


MESH_STEPS = 5  # steps each mesh of the eight_devices check trains


@pytest.fixture(scope="session")
def eight_devices(tmp_path_factory) -> dict:
    """tests/framework/mesh_check.py's checks on 8 emulated CPU devices, in one subprocess
    per session (meshes trained 5 steps, sampling on a sharded cache, an fsdp dry run)."""

    def build(path: str) -> None:
        proc = subprocess.run(
            [sys.executable, "tests/framework/mesh_check.py", str(MESH_STEPS)],
            cwd=ROOT,
            env=cli_env(XLA_FLAGS="--xla_force_host_platform_device_count=8"),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "out.json"), "w") as f:
            f.write(proc.stdout.strip().splitlines()[-1])

    import json

    path = session_artifact(tmp_path_factory, "eight_devices", build)
    with open(os.path.join(path, "out.json")) as f:
        return json.load(f)


def pytest_collection_modifyitems(config, items) -> None:
    """Slow tests first, so that the xdist workers do not end on one long test."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def root() -> str:
    """The repository root."""
    return ROOT
