"""Compiled programs shared by the Trainers of one process.

A program that trains in a loop (an inline sweep, self-training iterations, a test
session) builds a new Trainer per run. The persistent compilation cache spares the XLA
compile, but every Trainer still traces and lowers its init, train-step and evaluation
programs and loads them from disk (1-2 s a run for a small model on CPU, more than
its ten training steps). Runs whose programs are the same share the compiled
executables kept here instead.

"The same" is decided by a key, never by guessing: the run's config with only the
keys that cannot enter a compiled program removed (`RUNTIME_KEYS`: the seed, which init
takes as an argument, and the loop's cadence and file settings; the peak learning rate
and final fraction, which the step takes as arguments, unless the optimizer bakes the
peak in; and what a task declares in `Task.runtime_keys`), plus the resolved durations,
the shapes, dtypes and shardings of the program's arguments, the mesh's devices and
JAX's numerics flags. A key holding too much costs a trace; one missing something a
program depends on would reuse a wrong program, so the removed keys are few and
tests/framework/test_programs.py checks, for each, that changing it leaves the lowered
programs identical. The init program may use a narrower key: a task that declares
`Task.init_sections` (the config sections its build_model reads) shares its init with
every run of the same model and optimizer (the optimizer's init reads no schedule), e.g.
a fine-tuning run with the run it starts from; a test checks that too.
`train.reuse_programs=False` turns sharing off for a run.
"""

from __future__ import annotations

import collections
import concurrent.futures
import copy
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections

import optim

# Config keys no compiled program reads (framework level; tasks add their own).
RUNTIME_KEYS = (
    "seed",
    "evals",  # each evaluator's own config is part of its program's key
    "sample",
    "train.log_every_steps",
    "train.eval_every_steps",
    "train.eval_every_epochs",
    "train.eval_every_examples",
    "train.checkpoint_every_steps",
    "train.checkpoint_every_epochs",
    "train.checkpoint_every_examples",
    "train.keep_checkpoints",
    "train.async_checkpoints",
    "train.best_metric",
    "train.best_mode",
    "train.early_stop_patience",
    "train.plot_losses",
    "train.init_from",
    "train.init_dont_load",
    "train.compilation_cache",
    "train.reuse_programs",
)
# The train step's arguments (Trainer.schedule_args): runtime unless the optimizer bakes
# the peak learning rate into the program (optim.bakes_peak_lr).
SCHEDULE_KEYS = ("optimizer.lr", "schedule.final_lr_fraction")

MAX_PROGRAMS = 64  # least recently used beyond this are dropped

_programs: collections.OrderedDict[str, Any] = collections.OrderedDict()
stats = {"hits": 0, "misses": 0}
# One thread: XLA's compilation releases the GIL, so it overlaps with the caller's work.
_compiler = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="compile")


def _drop(tree: dict, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        tree = tree.get(p)
        if not isinstance(tree, dict):
            return
    tree.pop(leaf, None)


def config_key(config: ml_collections.ConfigDict, task_runtime_keys: Sequence[str] = ()) -> str:
    """The part of `config` that compiled programs can depend on, as canonical JSON."""
    tree = copy.deepcopy(config.to_dict())
    removable = [*RUNTIME_KEYS, *task_runtime_keys]
    if not optim.bakes_peak_lr(config.optimizer):
        removable += SCHEDULE_KEYS
    for dotted in removable:
        _drop(tree, dotted)
    return json.dumps(tree, sort_keys=True, default=repr)


def sections_key(config: ml_collections.ConfigDict, sections: Sequence[str]) -> str:
    """Only `sections` of config_key(config) (e.g. what an init program reads), as
    canonical JSON."""
    tree = json.loads(config_key(config))
    return json.dumps({s: tree.get(s) for s in sections}, sort_keys=True)


def _describe(x: Any) -> Any:
    shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
    if shape is None:  # a Python or numpy scalar
        return repr(type(x))
    return [list(shape), str(dtype), repr(getattr(x, "sharding", None))]


def key(kind: str, base: str, *trees: Any) -> str:
    """The key of program `kind` of a run whose config_key (plus any other fixed
    context) is `base`, called on arguments shaped like `trees`."""
    args = [[str(jax.tree.structure(t)), [_describe(x) for x in jax.tree.leaves(t)]] for t in trees]
    flags = [
        jax.config.jax_enable_x64,
        str(jax.config.jax_default_matmul_precision),
        str(jax.config.jax_default_prng_impl),
        jax.process_count(),
    ]
    text = json.dumps([kind, base, args, flags], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def get_or_build(program_key: str | None, build: Callable[[], Any]) -> Any:
    """The compiled program under `program_key`, built (and kept) on first use; None as
    the key builds without keeping."""
    if program_key is None:
        return build()
    if program_key in _programs:
        stats["hits"] += 1
        _programs.move_to_end(program_key)
        return _programs[program_key]
    stats["misses"] += 1
    program = build()
    _programs[program_key] = program
    while len(_programs) > MAX_PROGRAMS:
        _programs.popitem(last=False)
    return program


def run_once_options() -> dict[str, Any]:
    """XLA compiler options for a program that runs once per run (the init).

    On CPU, XLA's LLVM backend at its default optimisation level (3) spends most of a
    small model's init compile optimising threefry kernels that run once: level 1 gives
    bitwise the same state (tests/framework/test_programs.py checks it) and compiles in
    about half the time (the tiny quickstart model: 6.2 s -> 2.9 s on a loaded machine,
    benchmarks/sweep_overhead.py has the sweep-level figure). Level 0 would change the
    values (by an ulp), so it is not used. An optimisation level already set in
    XLA_FLAGS (the test session sets 0) is respected; other backends get XLA's defaults.
    """
    if jax.default_backend() != "cpu" or "xla_backend_optimization_level" in os.environ.get(
        "XLA_FLAGS", ""
    ):
        return {}
    return {"xla_backend_optimization_level": 1}


def compile_in_background(
    program_key: str | None,
    lower: Callable[[], jax.stages.Lowered],
    compiler_options: dict[str, Any] | None = None,
) -> Callable[[], Any]:
    """Starts compiling a program on a background thread; returns the `build` to hand
    to get_or_build(program_key, build) when it is needed (it waits for the compile).

    `lower` runs here (tracing stays on the caller's thread); only XLA's compilation
    moves, so a run compiles its init while its train step compiles (~2 s of a tiny
    12-point inline sweep on two cores, README's Measured). The executable is the one a
    foreground compile gives. A program already kept is not compiled again."""
    if program_key is not None and program_key in _programs:
        return lambda: _programs[program_key]
    lowered = lower()
    return _compiler.submit(lowered.compile, compiler_options=compiler_options).result


def clear() -> None:
    """Forgets every kept program."""
    _programs.clear()
