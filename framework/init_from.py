"""Starting a run from another run's parameters (big_vision's model_init / dont_load).

`train.init_from = 'WORKDIR[:best|latest|STEP]'` loads that run's parameters before step
0; parameters whose path matches `train.init_dont_load` (a regex, e.g. a new head) keep
their fresh initialisation. Only step 0 reads the source: a run started this way that is
interrupted resumes from its own checkpoints. Checked before anything is written: a
source without a checkpoint, another architecture (the first differing parameter, both
shapes) or a dont_load regex matching nothing is a ConfigError.
"""

from __future__ import annotations

import re
from typing import Any

import jax
from absl import logging

from framework import checkpoint
from framework.config import ConfigError
from optim.param_groups import path_str

WHICH = ("best", "latest")


def parse(spec: str) -> tuple[str, str | int]:
    """'WORKDIR[:best|latest|STEP]' -> (workdir, which)."""
    head, sep, tail = spec.rpartition(":")
    if sep and (tail in WHICH or tail.isdigit()) and head:
        return head, int(tail) if tail.isdigit() else tail
    return spec, "latest"


def _split(abstract_params: Any, dont_load: str) -> tuple[Any, set[str]]:
    """(the abstract params to load, the paths left fresh) for a dont_load regex."""
    flat = jax.tree_util.tree_flatten_with_path(abstract_params)[0]
    paths = [path_str(p) for p, _ in flat]
    fresh: set[str] = set()
    if dont_load:
        try:
            pattern = re.compile(dont_load)
        except re.error as e:
            raise ConfigError(
                f"train.init_dont_load={dont_load!r} is not a valid regex: {e}."
            ) from None
        fresh = {p for p in paths if pattern.search(p)}
        if not fresh:
            raise ConfigError(
                f"train.init_dont_load={dont_load!r} matches no parameter (they are named "
                f"like {paths[0]!r}); fix the regex or remove it."
            )
    return _without(abstract_params, fresh), fresh


def _without(tree: dict, drop: set[str], prefix: str = "") -> dict:
    """The nested params dict `tree` without the leaves whose paths are in `drop` (keys
    keep their types: the checkpoint is read by the same structure)."""
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            sub = _without(value, drop, f"{path}/")
            if sub:
                out[key] = sub
        elif path not in drop:
            out[key] = value
    return out


def check(spec: str, dont_load: str, abstract_params: Any) -> None:
    """Raises ConfigError if `spec` cannot initialise these parameters (reads metadata only)."""
    workdir, which = parse(spec)
    to_load, _ = _split(abstract_params, dont_load)
    checkpoint.check_loadable(workdir, which, to_load)


def load(spec: str, dont_load: str, fresh_params: Any, abstract_params: Any) -> Any:
    """`fresh_params` with every parameter not matching `dont_load` replaced by the
    source run's (placed as `abstract_params`' shardings say)."""
    workdir, which = parse(spec)
    to_load, fresh = _split(abstract_params, dont_load)
    loaded, step = checkpoint.restore_params(workdir, which, to_load)
    flat_loaded = {path_str(p): x for p, x in jax.tree_util.tree_flatten_with_path(loaded)[0]}
    logging.info(
        "initialised %d parameters from %s (%s, step %d)%s",
        len(flat_loaded),
        workdir,
        which,
        step,
        f"; {len(fresh)} left fresh ({dont_load})" if fresh else "",
    )
    return jax.tree_util.tree_map_with_path(
        lambda p, x: flat_loaded.get(path_str(p), x), fresh_params
    )
