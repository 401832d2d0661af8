"""Parameter paths and per-parameter groups: LR multipliers and weight-decay masks.

A parameter's *path* is ``'/'.join(str(k) for k in keys)``, e.g.
``'blocks/0/attn/q/kernel'``; keys come from dict keys (str or int), attribute
names and sequence indices, so any pytree of arrays works. Params are meant to
be in pure form (plain arrays at the leaves, as ``nnx.as_pure(nnx.state(...))``
or ``State.to_pure_dict()`` give); a tree of ``nnx.Variable`` leaves would add a
trailing ``/value`` to every path.

Every regex a user writes must match at least one path: a typo raises instead
of silently doing nothing.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

PyTree = Any
Rules = Sequence[tuple[str, float]]


def _key_str(key: Any) -> str:
    """Converts one jax key-path entry into its path component."""
    if isinstance(key, jax.tree_util.DictKey):
        return str(key.key)
    if isinstance(key, jax.tree_util.GetAttrKey):
        return key.name
    if isinstance(key, jax.tree_util.SequenceKey):
        return str(key.idx)
    if isinstance(key, jax.tree_util.FlattenedIndexKey):
        return str(key.key)
    return str(key)


def path_str(key_path: Sequence[Any]) -> str:
    """Returns the '/'-joined path for a jax key path."""
    return "/".join(_key_str(k) for k in key_path)


def param_paths(params: PyTree) -> PyTree:
    """Returns a pytree of the same structure whose leaves are the parameters' paths."""
    return jax.tree_util.tree_map_with_path(lambda kp, _: path_str(kp), params)


def _all_paths(params: PyTree) -> list[str]:
    """Returns the paths of all leaves in flattening order."""
    return jax.tree_util.tree_leaves(param_paths(params))


def _compile(regex: str, paths: Sequence[str], what: str) -> re.Pattern[str]:
    """Compiles `regex` and checks that it matches at least one path."""
    try:
        pattern = re.compile(regex)
    except re.error as e:
        raise ValueError(f"{what} regex {regex!r} is not a valid regular expression: {e}.") from e
    if not any(pattern.search(p) for p in paths):
        closest = difflib.get_close_matches(regex, paths, n=3, cutoff=0.0)
        examples = ", ".join(repr(p) for p in closest)
        raise ValueError(
            f"{what} regex {regex!r} matches no parameter; the closest paths are {examples} "
            "(fix the regex or remove it)."
        )
    return pattern


def _validated_rules(params: PyTree, rules: Rules) -> list[tuple[re.Pattern[str], float]]:
    """Compiles and checks multiplier rules against the params' paths."""
    paths = _all_paths(params)
    compiled = []
    for rule in rules:
        if len(rule) != 2:
            raise ValueError(f"LR multiplier rule {rule!r} must be a (regex, multiplier) pair.")
        regex, mult = rule
        compiled.append((_compile(str(regex), paths, "LR multiplier"), float(mult)))
    return compiled


def _multiplier_for(path: str, compiled: Sequence[tuple[re.Pattern[str], float]]) -> float:
    """Returns the multiplier of the first rule whose regex matches `path`, else 1.0."""
    for pattern, mult in compiled:
        if pattern.search(path):
            return mult
    return 1.0


def lr_multiplier_tree(params: PyTree, rules: Rules) -> PyTree:
    """Returns a pytree of float LR multipliers: first matching rule (re.search) wins, else 1.0."""
    compiled = _validated_rules(params, rules)
    return jax.tree_util.tree_map(lambda p: _multiplier_for(p, compiled), param_paths(params))


def describe_groups(params: PyTree, rules: Rules) -> dict[str, float]:
    """Returns {path: LR multiplier} for every parameter, for logging and tests."""
    compiled = _validated_rules(params, rules)
    return {p: _multiplier_for(p, compiled) for p in _all_paths(params)}


def decay_mask(params: PyTree, exclude_regex: str = "") -> PyTree:
    """Returns a bool pytree: True where weight decay applies (ndim >= 2, path not excluded)."""
    pattern = (
        _compile(exclude_regex, _all_paths(params), "decay_exclude") if exclude_regex else None
    )

    def keep(key_path: Sequence[Any], x: Any) -> bool:
        if np.ndim(x) < 2:
            return False
        return pattern is None or not pattern.search(path_str(key_path))

    return jax.tree_util.tree_map_with_path(keep, params)


def trainable_mask(params: PyTree, freeze_regex: str = "") -> PyTree:
    """Returns a bool pytree: False where the path matches `freeze_regex` (frozen)."""
    if not freeze_regex:
        return jax.tree_util.tree_map(lambda _: True, params)
    paths = _all_paths(params)
    pattern = _compile(freeze_regex, paths, "optimizer.freeze")
    if all(pattern.search(p) for p in paths):
        raise ValueError(
            f"optimizer.freeze regex {freeze_regex!r} matches every parameter: nothing would "
            "train (narrow the regex)."
        )
    return jax.tree_util.tree_map_with_path(
        lambda key_path, _: not pattern.search(path_str(key_path)), params
    )
