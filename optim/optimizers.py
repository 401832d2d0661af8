"""Builds the optax optimizer a config asks for: AdamW, Adam-atan2, SGD(+momentum) or
Adafactor.

Every optimizer is the same ``optax.named_chain``; its state is a dict keyed by
these names (stable across clip / decay / multiplier settings, so a config
change there does not change the optimizer-state structure):

    'clip'     clip_by_global_norm(grad_clip_norm), or identity if grad_clip_norm == 0
    'core'     adamw:     scale_by_adam(b1, b2, eps)                 state ScaleByAdamState
               (with eps_multipliers ((regex, m), ...): tensor-wise eps * m, by dividing
               the gradient by m first: chain(stateless, scale_by_adam) state)
               adam_atan2: scale_by_adam_atan2(b1, b2, atan2_a, atan2_b) (no eps; same state)
               sgd:       trace(momentum, nesterov)                  state TraceState
               adafactor: chain(scale_by_factored_rms(decay_rate, min_dim_size_to_factor),
                                clip_by_block_rms(clip_threshold)[,
                                scale_by_param_block_rms()])         state (FactoredState, ...)
    then, for weight_decay_mode='decoupled' (standard AdamW):
    'decay'    add_decayed_weights(wd, mask)
    'lr_mult'  multiply by the per-parameter LR multiplier m_p
    'lr'       scale_by_learning_rate(schedule)                      state ScaleByScheduleState
               update = -lr_t * m_p * (u + wd * theta)
    or, for weight_decay_mode='independent' (Wortsman et al. 2023, "Small-scale
    proxies for large-scale Transformer training instabilities", Sec. 3.2.2):
    'lr_mult'  multiply by m_p
    'decay'    add_decayed_weights(wd / lr, mask)
    'lr'       scale_by_learning_rate(schedule)
               update = -lr_t * m_p * u - (lr_t / lr) * wd * theta
               i.e. the decay follows the schedule's shape but not its peak LR nor m_p.

With ``freeze`` (a regex), the chain is wrapped in ``optax.multi_transform``: matching
parameters get ``set_to_zero`` updates and no state at all (no Adam moments), and the
chain (its clipping norm included) sees only the trained ones.

``lr`` (cfg) must equal the schedule's peak; it is only used as eta_max for
independent decay. ``mask`` is ``decay_mask(params, decay_exclude)``: parameters
with ndim >= 2 whose path does not match ``decay_exclude``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import jax
import optax

from optim.adam_atan2 import scale_by_adam_atan2
from optim.param_groups import _all_paths, decay_mask, describe_groups, path_str, trainable_mask

OPTIMIZERS = ("adamw", "adam_atan2", "sgd", "adafactor")
WEIGHT_DECAY_MODES = ("decoupled", "independent")

# The optimizer config keys and their defaults (what configs should start from).
OPTIMIZER_DEFAULTS: dict[str, Any] = {
    "name": "adamw",
    "lr": 1e-3,
    "b1": 0.9,
    "b2": 0.95,
    "eps": 1e-8,
    "atan2_a": 1.0,
    "atan2_b": 1.0,
    "momentum": 0.9,
    "nesterov": False,
    "adafactor_decay_rate": 0.8,
    "adafactor_min_dim_to_factor": 128,
    "adafactor_clip_threshold": 1.0,
    "adafactor_param_scale": False,
    "weight_decay": 0.0,
    "weight_decay_mode": "decoupled",
    "decay_exclude": "",
    "grad_clip_norm": 1.0,
    "lr_multipliers": (),
    "eps_multipliers": (),
    "freeze": "",
}


def _read_config(cfg: Mapping[str, Any] | Any) -> dict[str, Any]:
    """Reads the optimizer keys from a dict or ConfigDict, filling defaults, rejecting unknowns."""
    keys = list(cfg.keys())
    for key in keys:
        if key not in OPTIMIZER_DEFAULTS:
            near = difflib.get_close_matches(str(key), OPTIMIZER_DEFAULTS, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else "."
            raise ValueError(f"Unknown optimizer config key {key!r}{hint}")
    out = dict(OPTIMIZER_DEFAULTS)
    for key in keys:
        try:
            out[key] = cfg[key]
        except (KeyError, TypeError):
            out[key] = getattr(cfg, key)
    return out


def _lr_multiplier_transform(params: Any, rules: Any) -> optax.GradientTransformation:
    """Stateless transform multiplying each update by its parameter's LR multiplier."""
    # Multipliers are looked up by path rather than zipped with a stored tree, so the
    # transform accepts updates in any container (dict, nnx.State) with the same paths.
    mults = describe_groups(params, [tuple(r) for r in rules])

    def scale(updates: Any, _params: Any) -> Any:
        def one(key_path: Any, u: Any) -> Any:
            path = path_str(key_path)
            if path not in mults:
                raise ValueError(
                    f"Update for parameter {path!r} has no LR multiplier: the optimizer was "
                    "built for different params (pass the same tree to build_optimizer)."
                )
            m = mults[path]
            return u if m == 1.0 else u * m

        return jax.tree_util.tree_map_with_path(one, updates)

    return optax.stateless(scale)


def _core(c: dict[str, Any]) -> optax.GradientTransformation:
    """The optimizer's gradient-scaling transform (no learning rate, no decay)."""
    name = c["name"]
    if name == "adamw":
        return optax.scale_by_adam(b1=c["b1"], b2=c["b2"], eps=c["eps"])
    if name == "adam_atan2":
        return scale_by_adam_atan2(b1=c["b1"], b2=c["b2"], a=c["atan2_a"], b=c["atan2_b"])
    if name == "sgd":
        return optax.trace(decay=c["momentum"], nesterov=bool(c["nesterov"]))
    if name == "adafactor":
        threshold = c["adafactor_clip_threshold"]
        return optax.chain(
            optax.scale_by_factored_rms(
                decay_rate=c["adafactor_decay_rate"],
                min_dim_size_to_factor=int(c["adafactor_min_dim_to_factor"]),
            ),
            optax.clip_by_block_rms(threshold) if threshold > 0 else optax.identity(),
            # Updates relative to each tensor's RMS (floored at 1e-3), as in Adafactor's paper.
            optax.scale_by_param_block_rms() if c["adafactor_param_scale"] else optax.identity(),
        )
    raise ValueError(f"Unknown optimizer {name!r}; valid choices are {', '.join(OPTIMIZERS)}.")


def bakes_peak_lr(cfg: Mapping[str, Any] | Any) -> bool:
    """Whether `build_optimizer(cfg, ...)` uses cfg's `lr` itself (a constant in the
    compiled step) rather than only through the schedule: weight_decay_mode='independent'
    divides the decay by it."""
    return _read_config(cfg)["weight_decay_mode"] == "independent"


def build_optimizer(
    cfg: Mapping[str, Any] | Any, schedule: optax.Schedule, params: Any
) -> optax.GradientTransformation:
    """Returns the optax chain described in the module docstring for `cfg` and `params`."""
    c = _read_config(cfg)
    if c["name"] not in OPTIMIZERS:
        raise ValueError(
            f"Unknown optimizer {c['name']!r}; valid choices are {', '.join(OPTIMIZERS)}."
        )
    mode = c["weight_decay_mode"]
    if mode not in WEIGHT_DECAY_MODES:
        choices = ", ".join(WEIGHT_DECAY_MODES)
        raise ValueError(f"Unknown weight_decay_mode {mode!r}; valid choices are {choices}.")
    if not _all_paths(params):
        raise ValueError("build_optimizer got params with no array leaves.")
    wd = float(c["weight_decay"])
    if wd < 0:
        raise ValueError(f"weight_decay must be >= 0, got {wd}.")
    clip = float(c["grad_clip_norm"])
    if clip < 0:
        raise ValueError(f"grad_clip_norm must be >= 0 (0 disables clipping), got {clip}.")

    exclude = str(c["decay_exclude"])
    decay_mask(params, exclude)  # Validates the regex now rather than inside jit.
    mask = lambda tree: decay_mask(tree, exclude)
    lr_mult = _lr_multiplier_transform(params, c["lr_multipliers"])

    if mode == "decoupled":
        tail = [
            ("decay", optax.add_decayed_weights(wd, mask=mask)),
            ("lr_mult", lr_mult),
        ]
    else:
        lr_max = float(c["lr"])
        if lr_max <= 0:
            raise ValueError(f"weight_decay_mode='independent' needs lr > 0, got lr={lr_max}.")
        tail = [
            ("lr_mult", lr_mult),
            ("decay", optax.add_decayed_weights(wd / lr_max, mask=mask)),
        ]
    core = _core(c)
    if c["eps_multipliers"]:
        if c["name"] != "adamw":
            raise ValueError("eps_multipliers apply to optimizer 'adamw' only (its eps).")
        # Adam is invariant to the scale of a tensor's gradient except through eps, so
        # dividing the gradient by m before it is exactly Adam with eps * m for that tensor
        # (the moments are stored divided by m and m^2). optax's Adam has one scalar eps.
        inverse = [(regex, 1.0 / float(m)) for regex, m in c["eps_multipliers"]]
        core = optax.chain(_lr_multiplier_transform(params, inverse), core)
    chain = optax.named_chain(
        ("clip", optax.clip_by_global_norm(clip) if clip > 0 else optax.identity()),
        ("core", core),
        *tail,
        ("lr", optax.scale_by_learning_rate(schedule)),
    )
    if not c["freeze"]:
        return chain
    # Frozen parameters: zero updates and no state (the chain sees them as MaskedNodes,
    # so they hold no moments and do not count in the clipping norm).
    trainable = trainable_mask(params, str(c["freeze"]))
    labels = lambda tree: jax.tree.map(lambda t: "train" if t else "frozen", trainable)
    return optax.multi_transform({"train": chain, "frozen": optax.set_to_zero()}, labels)
