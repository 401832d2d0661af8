"""Sweep definitions: the grid helpers (`product`), point names, and loading a config
file's `get_sweep(arg)` with every key and value checked against `get_config(arg)`.

A point is a dict of dotted config keys -> values; a key 'arg:NAME' sets the config
file's argument NAME instead of a config key ({'arg:size': 's'} runs
`--config=FILE:ARG,size=s`), for settings that `get_config` derives several values from.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib.util
import itertools
import json
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from framework import config as config_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAX_NAME = 120  # characters; longer names are cut and end in a hash
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]")
ARG_PREFIX = "arg:"  # a point key 'arg:NAME' sets get_config's argument NAME


class SweepError(config_lib.ConfigError):
    """A problem in the sweep definition or flags; the CLI prints it and exits 2."""


def product(*axes: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The cross product of `axes`; each is a dict of key -> values or a list of dicts.

    In a dict each list value is an axis (any other value, a tuple too, is fixed);
    a list of dicts is one axis of tied settings; the first axis varies slowest.
    product({'optimizer.lr': [1e-3, 3e-3]}, {'model.d_model': [32, 64]}) -> 4 points;
    product({'optimizer.lr': [1e-3]}, [{'model.d_model': 32, 'model.d_ff': 128},
    {'model.d_model': 64, 'model.d_ff': 256}]) -> 2 points (d_model, d_ff tied)."""
    expanded: list[list[dict[str, Any]]] = []
    for axis in axes:
        if isinstance(axis, Mapping):
            for key, values in axis.items():
                values = values if isinstance(values, list) else [values]
                expanded.append([{key: v} for v in values])
        elif isinstance(axis, Sequence) and all(isinstance(p, Mapping) for p in axis):
            expanded.append([dict(p) for p in axis])
        else:
            raise TypeError(f"an axis is a dict or a list of dicts, got {axis!r}")
    owner: dict[str, int] = {}
    for i, options in enumerate(expanded):
        for key in {k for option in options for k in option}:
            if owner.setdefault(key, i) != i:
                raise ValueError(f"key {key!r} appears in two axes of the product")
    return [{k: v for o in combo for k, v in o.items()} for combo in itertools.product(*expanded)]


def format_value(value: Any) -> str:
    """A value as a `--config.k=v` flag spells it (floats exact, bools lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value)


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Each dotted key's shortest dotted suffix that no other key of `keys` ends with."""
    out = {}
    for key in keys:
        if key.startswith(ARG_PREFIX):  # a config argument: its bare name
            out[key] = key[len(ARG_PREFIX) :]
            continue
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            if not any(o != key and (o == suffix or o.endswith("." + suffix)) for o in keys):
                break
        out[key] = suffix
    return out


def _canonical(overrides: Mapping[str, Any]) -> str:
    return json.dumps(sorted((k, repr(v)) for k, v in overrides.items()))


def _digest(overrides: Mapping[str, Any]) -> str:
    return hashlib.sha1(_canonical(overrides).encode()).hexdigest()[:6]


def name_point(overrides: Mapping[str, Any], key_names: Mapping[str, str] | None = None) -> str:
    """A readable, filesystem-safe directory name: {'optimizer.lr': 1e-3} -> 'lr=0.001'.

    Keys are shortened by `key_names` (default: `short_keys` of this point),
    joined with '_' in order; characters outside [A-Za-z0-9._=+-] become '-';
    names over MAX_NAME characters are cut and end in a hash. {} -> 'base'.
    """
    if not overrides:
        return "base"
    names = {**short_keys(list(overrides)), **(key_names or {})}
    name = _UNSAFE.sub("-", "_".join(f"{names[k]}={format_value(v)}" for k, v in overrides.items()))
    return f"{name[: MAX_NAME - 7]}~{_digest(overrides)}" if len(name) > MAX_NAME else name


def name_points(points: Sequence[Mapping[str, Any]]) -> list[str]:
    """Unique, stable names for a sweep's points: keys shortened sweep-wide, clashes hashed.

    Names that clash (also case-insensitively) end in '~<hash of the overrides>';
    a point listed twice is a SweepError."""
    seen: dict[str, int] = {}
    for i, p in enumerate(points):
        if seen.setdefault(_canonical(p), i) != i:
            raise SweepError(f"points {seen[_canonical(p)]} and {i} of the sweep are equal: {p}")
    keys = short_keys(list(dict.fromkeys(k for p in points for k in p)))
    names = [name_point(p, keys) for p in points]
    clashes = Counter(n.lower() for n in names)
    return [
        f"{n}~{_digest(p)}" if clashes[n.lower()] > 1 else n
        for n, p in zip(names, points, strict=True)
    ]


@dataclasses.dataclass
class Sweep:
    """A loaded sweep: the config file, its argument, the points and their names."""

    config_path: str
    arg: str | None
    points: list[dict[str, Any]]
    names: list[str]
    overrides: dict[str, Any]  # applied to every point (the CLI's --config.k=v flags)
    module: Any = dataclasses.field(default=None, repr=False)  # the loaded config file

    def config(self, i: int) -> ml_collections.ConfigDict:
        """Point `i`'s config, as `framework.main` would build it from `command(i)`."""
        if self.module is None:
            self.module = load_config_module(self.config_path)
        base = _get_config(self.module, self.point_arg(i))
        return _apply(base, self.overrides | self.points[i], self.names[i])

    @property
    def keys(self) -> list[str]:
        """The swept keys, in order of first appearance."""
        return list(dict.fromkeys(k for p in self.points for k in p))

    def point_arg(self, i: int) -> str | None:
        """get_config's argument for point `i`: the sweep's, then its 'arg:' keys."""
        return point_arg(self.arg, self.points[i])

    def config_flag(self, path: str = "", i: int | None = None) -> str:
        """The `--config=` value for framework.main (for point `i` if given)."""
        path = path or self.config_path
        arg = self.arg if i is None else self.point_arg(i)
        return path if arg is None else f"{path}:{arg}"

    def command(self, i: int, workdir: str, python: str, path: str = "") -> list[str]:
        """The argv that trains point `i` in `workdir/<name>`."""
        merged = self.overrides | self.points[i]
        flags = [
            f"--config.{k}={format_value(v)}"
            for k, v in merged.items()
            if not k.startswith(ARG_PREFIX)
        ]
        config, workdir = self.config_flag(path, i), os.path.join(workdir, self.names[i])
        return [
            python,
            "-m",
            "framework.main",
            f"--config={config}",
            f"--workdir={workdir}",
            *flags,
        ]


def point_arg(arg: str | None, point: Mapping[str, Any]) -> str | None:
    """`arg` followed by the point's 'arg:NAME' values as 'NAME=value' items."""
    items = [
        f"{k[len(ARG_PREFIX) :]}={format_value(v)}"
        for k, v in point.items()
        if k.startswith(ARG_PREFIX)
    ]
    if not items:
        return arg
    return ",".join(([arg] if arg else []) + items)


def load_config_module(path: str) -> Any:
    """Imports a config file by its path, as ml_collections' config flags do."""
    try:
        config_lib.check_config_file(path)
    except config_lib.ConfigError as e:
        raise SweepError(str(e)) from None
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    spec = importlib.util.spec_from_file_location(f"_sweep_config_{stem}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _get(config: Any, key: str) -> Any:
    for part in key.split(".") if key else ():
        config = config[part]
    return config


def _get_config(module: Any, arg: str | None) -> ml_collections.ConfigDict:
    return module.get_config() if arg is None else module.get_config(arg)


def _apply(config: Any, values: Mapping[str, Any], name: str) -> Any:
    """Sets the dotted config keys of `values` in `config` (skipping 'arg:' keys)."""
    for key, value in values.items():
        if key.startswith(ARG_PREFIX):
            continue
        parent, _, leaf = key.rpartition(".")
        try:
            _get(config, parent)[leaf] = value
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise SweepError(f"point {name}: {key}={value!r}: {msg}") from None
    return config


def load_sweep(config_path: str, arg: str | None, overrides: Mapping | None = None) -> Sweep:
    """Loads `get_sweep(arg)`; checks every key and value type against `get_config(arg)`.

    `overrides` apply to every point; a string for a non-string field is parsed
    as on the command line (so the CLI passes its flags as strings).
    """
    module = load_config_module(config_path)
    for fn in ("get_sweep", "get_config"):
        if not callable(getattr(module, fn, None)):
            raise SweepError(f"{config_path} defines no {fn}(arg); see README 'Sweeps'")
    points = module.get_sweep(arg)
    if not isinstance(points, list | tuple) or not all(isinstance(p, Mapping) for p in points):
        raise SweepError(f"{config_path}: get_sweep must return a list of override dicts")
    if not points:
        raise SweepError(f"{config_path}: get_sweep({arg!r}) returned no points")
    points = [dict(p) for p in points]
    bases: dict[str | None, Any] = {}

    def base_for(a: str | None) -> Any:  # get_config once per distinct argument
        if a not in bases:
            bases[a] = _get_config(module, a)
        return bases[a]

    base = base_for(arg)
    overrides = dict(overrides or {})
    config_keys = [k for p in points for k in p if not k.startswith(ARG_PREFIX)]
    config_lib.check_override_keys(base, [*overrides, *config_keys])
    for key, value in overrides.items():
        if key.startswith(ARG_PREFIX):
            raise SweepError(f"--config.{key}: config arguments go in --config=FILE:ARG")
        if any(key in p for p in points):
            raise SweepError(f"--config.{key} is also swept by get_sweep; drop one of them")
        if isinstance(value, str) and not isinstance(_get(base, key), str):
            try:
                overrides[key] = config_lib.coerce(value, _get(base, key))
            except config_lib.ConfigError as e:
                raise SweepError(f"--config.{key}={value}: {e}") from None
    names = name_points(points)
    for name, point in zip(names, points, strict=True):
        _apply(copy.deepcopy(base_for(point_arg(arg, point))), overrides | point, name)
    return Sweep(config_path, arg, points, names, overrides, module)


def display_path(path: str) -> str:
    """`path` relative to the repository when inside it (for tables and scripts)."""
    full = os.path.abspath(path)
    return os.path.relpath(full, REPO) if full.startswith(REPO + os.sep) else path


def select(sweep: Sweep, only: str | None) -> list[int]:
    """Indices of the points whose name matches the regex `only` (all when empty)."""
    if not only:
        return list(range(len(sweep.points)))
    try:
        pattern = re.compile(only)
    except re.error as e:
        raise SweepError(f"--only={only!r} is not a regular expression: {e}") from None
    selected = [i for i, n in enumerate(sweep.names) if pattern.search(n)]
    if not selected:
        raise SweepError(f"--only={only!r} matches none of: {', '.join(sweep.names)}")
    return selected
