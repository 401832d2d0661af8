"""Config handling: typed `get_config(arg)` strings, the engine's defaults,
validation with nearest-key errors, duration resolution and saving.

Configs are `ml_collections.ConfigDict`s. A config file builds on
`base_config()`, which is locked, so a misspelt key is an error where it is
written, not a silently ignored setting.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import ml_collections
from absl import logging
from ml_collections import ConfigDict

from framework import files


class ConfigError(ValueError):
    """A problem in the user's config or inputs; the CLI prints it and exits 2."""


def parse_arg(arg: str | None, **defaults: Any) -> ConfigDict:
    """Parses 'k=v,k2=v2' into a ConfigDict typed by `defaults` (big_vision's idea).

    Values take the type of their default (int, float, bool, str); a key that
    has no default is an error naming the nearest one.
    """
    out = ConfigDict(defaults)
    if not arg:
        return out
    for item in arg.split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise ConfigError(f"config argument {item!r} is not key=value; write e.g. 'steps=100'.")
        key, value = (s.strip() for s in item.split("=", 1))
        if key not in defaults:
            raise ConfigError(f"unknown config argument {key!r}{_did_you_mean(key, defaults)}")
        try:
            out[key] = coerce(value, defaults[key])
        except ConfigError:
            raise ConfigError(
                f"config argument {key}={value!r} is not a {type(defaults[key]).__name__}."
            ) from None
    return out


def coerce(raw: str, current: Any) -> Any:
    """A command-line string typed like the value it replaces (bool, int, float, str;
    anything else by `ast.literal_eval`); raises ConfigError if it cannot be."""
    try:
        if isinstance(current, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
        if isinstance(current, int | float):
            return type(current)(raw)
        return raw if isinstance(current, str) else ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        raise ConfigError(f"{raw!r} is not a valid {type(current).__name__}") from None


def _did_you_mean(key: str, valid: Iterable[str]) -> str:
    match = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    if match:
        return f"; did you mean {match[0]!r}?"
    return f"; valid keys: {', '.join(sorted(valid))}."


def leaf_paths(config: ConfigDict | Mapping, prefix: str = "") -> list[str]:
    """All dotted paths of `config`, leaves and sections."""
    paths = []
    for key, value in config.items():
        path = f"{prefix}{key}"
        paths.append(path)
        if isinstance(value, ConfigDict | Mapping):
            paths.extend(leaf_paths(value, path + "."))
    return paths


def check_config_file(path: str) -> None:
    """Raises ConfigError if the config file `path` is missing or not valid Python."""
    if not os.path.isfile(path):
        raise ConfigError(
            f"config file {path!r} does not exist; give a path such as configs/quickstart.py."
        )
    try:
        with open(path, encoding="utf-8") as f:
            compile(f.read(), path, "exec")
    except SyntaxError as e:
        raise ConfigError(
            f"config file {path!r} has a syntax error at line {e.lineno}: {e.msg}; fix it."
        ) from None
    except (UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"config file {path!r} is not Python source text ({e}).") from None


def check_override_keys(config: ConfigDict, dotted_keys: Iterable[str]) -> None:
    """Raises ConfigError naming the nearest valid key for an override of a missing key."""
    valid = leaf_paths(config)
    for key in dotted_keys:
        if key not in valid:
            raise ConfigError(f"unknown config key {key!r}{_did_you_mean(key, valid)}")


def check_dataclass_keys(cls: type, values: Mapping[str, Any], section: str) -> None:
    """Raises ConfigError if `values` has a key that `cls` (a dataclass) lacks."""
    fields = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in fields:
            raise ConfigError(f"unknown config key '{section}.{key}'{_did_you_mean(key, fields)}")


def base_config() -> ConfigDict:
    """The engine's defaults; config files change values, never add keys."""
    c = ConfigDict()
    c.seed = 0
    c.task = "framework.tasks.lm"  # module path; the module defines `Task`
    c.model = ConfigDict()  # the task's model fields (validated by the task)
    c.data = ConfigDict()  # the task's data fields (validated by the task)
    c.optimizer = ConfigDict(
        dict(
            name="adamw",  # adamw | adam_atan2 | sgd | adafactor
            lr=1e-3,  # peak learning rate
            b1=0.9,
            b2=0.95,
            eps=1e-8,
            atan2_a=1.0,  # adam_atan2: update = atan2_a * atan2(m_hat, atan2_b * sqrt(v_hat))
            atan2_b=1.0,
            momentum=0.9,
            nesterov=False,
            adafactor_decay_rate=0.8,
            adafactor_min_dim_to_factor=128,
            adafactor_clip_threshold=1.0,
            adafactor_param_scale=False,  # updates relative to each tensor's RMS
            weight_decay=0.0,
            weight_decay_mode="decoupled",  # decoupled | independent
            decay_exclude="",
            grad_clip_norm=1.0,
            lr_multipliers=(),  # ((regex, multiplier), ...)
            eps_multipliers=(),  # adamw: ((regex, m), ...): that tensor's eps is eps * m
            freeze="",  # regex: matching parameters get no updates and no optimizer state
        )
    )
    c.schedule = ConfigDict(
        dict(
            name="warmup_cosine",  # constant | warmup_linear | warmup_cosine | rsqrt
            warmup_steps=0,
            warmup_epochs=0.0,
            warmup_examples=0,
            final_lr_fraction=0.0,
        )
    )
    c.train = ConfigDict(
        dict(
            batch_size=32,  # global batch (all hosts), in examples
            grad_accum_steps=1,
            total_steps=0,
            total_epochs=0.0,
            total_examples=0,
            log_every_steps=10,
            eval_every_steps=0,
            eval_every_epochs=0.0,
            eval_every_examples=0,
            checkpoint_every_steps=0,
            checkpoint_every_epochs=0.0,
            checkpoint_every_examples=0,
            keep_checkpoints=3,
            async_checkpoints=True,
            best_metric="",  # e.g. 'val/loss': keep the best evaluation's params in best/
            best_mode="min",  # min | max
            early_stop_patience=0,  # stop after N evaluations without improvement; 0: never
            log_tensor_rms=False,  # log grad_rms/<param> and update_rms/<param> (trainer)
            plot_losses=True,  # WORKDIR/loss.png at the end (sweeps whose report draws: False)
            # Start from another run's parameters: 'WORKDIR[:best|latest|STEP]' (default
            # latest); parameters matching init_dont_load (a regex) stay freshly initialised.
            init_from="",
            init_dont_load="",
            # JAX's persistent compilation cache: '' = <workdir's parent>/jax_cache,
            # 'none' = off, or a directory (framework/compilation_cache.py).
            compilation_cache="",
            # Share compiled programs with earlier runs of this process whose programs
            # are the same (inline sweeps, loops, tests; framework/programs.py).
            reuse_programs=True,
            # > 0: keep an exponential moving average of the parameters (state 'ema',
            # checkpointed) with this decay per step; evaluation then uses it.
            ema_decay=0.0,
        )
    )
    c.mesh = ConfigDict(dict(data=-1, fsdp=1, expert=1, tensor=1, rules="dp"))
    c.evals = ConfigDict()  # name -> ConfigDict(kind=module path, split=..., ...)
    c.debug = ConfigDict(dict(nan_at_step=-1))  # fault injection for the NaN guard
    return c


def lock(config: ConfigDict) -> ConfigDict:
    """Locks `config` so that a misspelt key raises, and returns it."""
    config.lock()
    return config


DURATION_UNITS = ("steps", "epochs", "examples")
DURATIONS = {
    "total": "train",
    "warmup": "schedule",
    "eval_every": "train",
    "checkpoint_every": "train",
}


def resolve_durations(config: ConfigDict, *, examples_per_epoch: int | None) -> dict[str, int]:
    """Turns every `<name>_{steps,epochs,examples}` group into one step count.

    At most one unit of a group may be set (non-zero); 'total' must be set.
    """
    batch = config.train.batch_size
    out = {}
    for name, section in DURATIONS.items():
        given = {
            unit: config[section][f"{name}_{unit}"]
            for unit in DURATION_UNITS
            if config[section][f"{name}_{unit}"]
        }
        if len(given) > 1:
            keys = ", ".join(f"{section}.{name}_{u}" for u in given)
            raise ConfigError(f"set only one of {keys}; they say the same thing in other units.")
        if not given:
            if name == "total":
                raise ConfigError(
                    "no training length: set one of train.total_steps, "
                    "train.total_epochs or train.total_examples."
                )
            out[name] = 0
            continue
        ((unit, value),) = given.items()
        if value < 0:
            raise ConfigError(f"{section}.{name}_{unit} must be >= 0, got {value}.")
        if unit == "steps":
            out[name] = int(value)
        elif unit == "examples":
            out[name] = max(1, math.ceil(value / batch))
        else:
            if not examples_per_epoch:
                raise ConfigError(
                    f"{section}.{name}_epochs needs a dataset of known size; use _steps instead."
                )
            out[name] = max(1, math.ceil(value * examples_per_epoch / batch))
    out["log_every"] = max(1, int(config.train.log_every_steps))
    return out


def validate(config: ConfigDict) -> None:
    """Structural checks that need no data or devices."""
    if config.train.batch_size <= 0:
        raise ConfigError(f"train.batch_size must be positive, got {config.train.batch_size}.")
    accum = config.train.grad_accum_steps
    if accum < 1 or config.train.batch_size % accum:
        raise ConfigError(
            f"train.batch_size={config.train.batch_size} must be a multiple of "
            f"train.grad_accum_steps={accum}."
        )
    for key in ("lr", "weight_decay"):
        if config.optimizer[key] < 0:
            raise ConfigError(
                f"optimizer.{key}={config.optimizer[key]} is negative; it must be >= 0."
            )
    if not 0.0 <= config.train.ema_decay < 1.0:
        raise ConfigError(f"train.ema_decay={config.train.ema_decay} must be in [0, 1) (0: off).")
    if "sample" in config and config.sample.temperature < 0:
        raise ConfigError(f"sample.temperature={config.sample.temperature} must be >= 0.")
    load_class(config.task, "Task", "task")
    for name, ev in config.evals.items():
        if "kind" not in ev:
            raise ConfigError(f"evals.{name} needs a 'kind' (a module path defining Evaluator).")
        load_class(ev.kind, "Evaluator", f"evals.{name}.kind")


def load_class(path: str, name: str, what: str) -> Any:
    """The class `name` of the module named in the config (ConfigError if it lacks one)."""
    module = load_module(path, what)
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise ConfigError(
            f"{what} {path!r} defines no `{name}` class; name a module that defines "
            f"`class {name}` (see framework/tasks/base.py and framework/evaluators.py)."
        )
    return cls


def load_module(path: str, what: str) -> Any:
    """Imports a module named in the config, with a clear error if it is missing."""
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as e:
        if e.name and path.startswith(e.name):
            raise ConfigError(
                f"{what} {path!r} is not an importable module; give a module path "
                "such as 'framework.tasks.lm'."
            ) from None
        raise


def to_dict(config: ConfigDict | ml_collections.FrozenConfigDict) -> dict:
    """A JSON-friendly dict of the config."""
    return json.loads(config.to_json_best_effort())


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _newest_saved(workdir: str) -> dict | None:
    """The config dict of the workdir's newest saved config (config.json, or the newest
    config.<step>.json a resume with a changed config wrote); None when there is none."""
    saved = [n for n in os.listdir(workdir) if re.fullmatch(r"config(\.\d+)?\.json", n)]
    if not saved:
        return None
    newest = max(saved, key=lambda n: int(n.split(".")[1]) if n.count(".") == 2 else -1)
    old = files.read_json(os.path.join(workdir, newest), {})
    if not isinstance(old, dict) or not isinstance(old.get("config"), dict):
        return None
    return old["config"]


def saved_config(workdir: str) -> ConfigDict:
    """The config a run in `workdir` trained with (its newest saved one), on top of its
    task's `default_config()` (or the engine's defaults), so keys added since the run
    have their default values.

    Raises ConfigError when `workdir` is not a run's workdir."""
    if not os.path.isdir(workdir):
        raise ConfigError(f"{workdir!r} does not exist; give the workdir of a training run.")
    saved = _newest_saved(workdir)
    if saved is None:
        raise ConfigError(
            f"{workdir!r} has no readable config.json; is it a training run's workdir?"
        )
    task = load_module(str(saved.get("task", "framework.tasks.lm")), "task")
    make_default = getattr(task, "default_config", None)
    config = make_default() if callable(make_default) else base_config()
    with config.unlocked():
        config.update(saved)
    return config


def changed_keys(config: ConfigDict, workdir: str) -> list[str]:
    """Dotted keys whose values differ from the workdir's saved config.json (its newest
    config.<step>.json if a resume changed it); [] when there is none."""
    saved = _newest_saved(workdir)
    if saved is None:
        return []
    have, want = _flatten(saved), _flatten(to_dict(config))
    return sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))


def save_config(config: ConfigDict, resolved: Mapping[str, int], workdir: str, step: int) -> str:
    """Writes config.json; a resumed run with a changed config gets config.<step>.json."""
    payload = dict(config=to_dict(config), resolved_steps=dict(resolved))
    text = json.dumps(payload, indent=2, sort_keys=True)
    path = os.path.join(workdir, "config.json")
    if files.read_json_or_set_aside(path) is not None:
        with open(path) as f:
            if f.read() == text:
                return path
        path = os.path.join(workdir, f"config.{step}.json")
    files.atomic_write_text(path, text)
    return path


def log_resume(config: ConfigDict, workdir: str, step: int, *, finished: bool) -> None:
    """Logs how a re-run in `workdir` relates to the saved config: a finished run returns
    its old result (warning when the config changed), a resumed one continues with the
    new values (warning which keys changed)."""
    changed = ", ".join(changed_keys(config, workdir))
    result_path = os.path.join(workdir, "result.json")
    if finished and changed:
        logging.warning(
            "this workdir holds a finished run (step %d) whose config differs in %s; "
            "returning its old result from %s. Re-run with --restart to train with "
            "this config (the old files are moved aside).",
            step,
            changed,
            result_path,
        )
    elif finished:
        logging.info("finished at step %d before; see %s", step, result_path)
    elif changed:
        logging.warning(
            "resuming at step %d with a config that differs from the saved one in %s; "
            "the new values apply from here (saved as config.%d.json). Re-run with "
            "--restart to start over instead.",
            step,
            changed,
            step,
        )
