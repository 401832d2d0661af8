"""A model's variables as the trainer holds them: parameters (nnx.Param, trained by the
optimizer) and model state (nnx.BatchStat: BatchNorm's running statistics, updated by
the forward pass in training mode, never by the optimizer).

Both are pure nested dicts with disjoint leaf paths; their union ("variables") is what
`nnx.merge` needs to rebuild the model, what evaluators evaluate and what `best/` keeps.
A model without state has variables == params, so nothing changes for it.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

STATE_TYPES = (nnx.BatchStat,)  # the non-parameter state a model may hold


def union(params: dict, model_state: dict | None) -> dict:
    """The nested dict holding the leaves of both (their paths are disjoint)."""
    if not model_state:
        return params
    out = dict(params)
    for k, v in model_state.items():
        if k in out:
            if not isinstance(out[k], dict) or not isinstance(v, dict):
                raise ValueError(f"variable {k!r} is both a parameter and model state.")
            out[k] = union(out[k], v)
        else:
            out[k] = v
    return out


def split(model: nnx.Module) -> tuple[Any, dict, dict, Any]:
    """(graphdef, params, model state, anything else) of `model`; the first three as
    nnx.State, the state possibly empty; a model may hold nothing else."""
    graphdef, params, state, rest = nnx.split(model, nnx.Param, STATE_TYPES, ...)
    return graphdef, params, state, rest


def model_state(model: nnx.Module) -> dict:
    """The model's state (e.g. BatchNorm statistics) as a pure dict ({} if none)."""
    return nnx.to_pure_dict(nnx.state(model, STATE_TYPES))


def initial_variables(task: Any, key: jax.Array | int) -> tuple[dict, dict]:
    """(params, model state) of the task's model at init (pure dicts; the state {} for a
    model without), as the trainer creates them.

    An int is a config seed: the params key is then derived as the trainer does."""
    if isinstance(key, int):
        key = jax.random.split(jax.random.key(key))[0]
    model = task.build_model(nnx.Rngs(key))
    return nnx.to_pure_dict(nnx.state(model, nnx.Param)), model_state(model)


def initial_params(task: Any, key: jax.Array | int) -> dict:
    """The task model's parameters at init (a pure dict), as the trainer creates them."""
    return initial_variables(task, key)[0]


def abstract_model(task: Any) -> tuple[Any, dict, dict, dict, dict]:
    """(graphdef, abstract params, their logical axis names, abstract model state, its
    logical axis names) of the task's model, built without allocating it."""
    abstract = nnx.eval_shape(lambda: task.build_model(nnx.Rngs(0)))
    graphdef, params, state, rest = split(abstract)
    if jax.tree.leaves(rest):
        raise TypeError(
            "a task's model may hold only nnx.Param and nnx.BatchStat state (pass rngs at call)."
        )
    spec = lambda s: nnx.to_pure_dict(nnx.get_partition_spec(s))
    pure = nnx.to_pure_dict
    return graphdef, pure(params), spec(params), pure(state), spec(state)
