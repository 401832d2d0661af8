"""JAX's persistent compilation cache, set up by the library for every run.

A program that trains in a loop (self-training, hardening, sweeps run inline) builds a
new Trainer per iteration; its jitted functions are new Python objects, so without a
persistent cache every iteration compiles again. `train.compilation_cache` chooses the
directory: '' (default) `<workdir's parent>/jax_cache` (a sweep's points and a loop's
iterations, which sit side by side, share it), 'none' (off), or a path. A cache already
configured in the process (JAX_COMPILATION_CACHE_DIR, or an earlier run) is kept: one
process, one cache. Every program is cached (no minimum compile time), so the small
programs of small models hit too.
"""

from __future__ import annotations

import os

import jax
from jax.experimental.compilation_cache import compilation_cache

OFF = "none"


def directory_for(workdir: str, setting: str) -> str | None:
    """The cache directory `setting` names for a run in `workdir` (None: off)."""
    if setting == OFF:
        return None
    if setting:
        return os.path.abspath(setting)
    return os.path.join(os.path.dirname(os.path.abspath(workdir)), "jax_cache")


def enable(workdir: str, setting: str = "") -> str | None:
    """Points JAX's persistent cache at `directory_for(workdir, setting)` unless a cache
    is configured already; returns the directory in use (None: no cache)."""
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    directory = directory_for(workdir, setting)
    if directory is None:
        return None
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.reset_cache()  # takes effect even if something compiled before
    return directory
