"""Device meshes and logical-axis sharding rules.

Models name their parameter axes logically ('embed', 'mlp', 'heads', 'expert', ...);
a rule table maps logical names to mesh axes ('data', 'fsdp', 'expert', 'tensor').
Every rule set shards MoE experts over the 'expert' axis (expert parallelism), which
also splits the batch, so outside the MoE layers it is data parallelism.
The mesh uses Auto axis types: XLA's sharding propagation places
intermediates, and the trainer pins only parameters, optimizer state and
batches. (Explicit axes would need an out-sharding on every matmul whose
contracting axis is sharded; Auto keeps models free of sharding code.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from framework.config import ConfigError
from optim.param_groups import path_str

MESH_AXES = ("data", "fsdp", "expert", "tensor")
BATCH_AXES = ("data", "fsdp", "expert")  # the batch dimension is split over all three

# Logical parameter axis -> mesh axis (None: replicated).
RULES: dict[str, dict[str, str | None]] = {
    "dp": {"expert": "expert"},
    "fsdp": {"embed": "fsdp", "expert": "expert"},
    "fsdp_tp": {
        "expert": "expert",
        "embed": "fsdp",
        "vocab": "tensor",
        "heads": "tensor",
        "mlp": "tensor",
    },
}


# Logical activation axis -> mesh axes, for models.partitioning.constrain: the
# residual stream is split over the batch axes at every block boundary.
ACTIVATION_RULES: dict[str, object] = {
    "act_batch": BATCH_AXES,
    "act_length": None,
    "act_embed": None,
}


def make_mesh(mesh_cfg: Mapping[str, Any], devices: Sequence[Any] | None = None) -> Mesh:
    """Builds a (data, fsdp, expert, tensor) mesh; one axis may be -1 to take the rest."""
    devices = list(devices if devices is not None else jax.devices())
    shape = [int(mesh_cfg.get(a, 1)) for a in MESH_AXES]  # an axis not given: 1
    if mesh_cfg["rules"] not in RULES:
        raise ConfigError(
            f"mesh.rules={mesh_cfg['rules']!r} is unknown; choose one of {sorted(RULES)}."
        )
    if shape.count(-1) > 1:
        raise ConfigError(f"mesh {dict(zip(MESH_AXES, shape))}: at most one axis may be -1.")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if len(devices) % known:
            raise ConfigError(f"mesh {shape} cannot be filled from {len(devices)} devices.")
        shape[shape.index(-1)] = len(devices) // known
    if math.prod(shape) != len(devices):
        raise ConfigError(
            f"mesh {dict(zip(MESH_AXES, shape))} needs {math.prod(shape)} devices, "
            f"but {len(devices)} are available; set one axis to -1 to auto-fill."
        )
    grid = np.asarray(devices).reshape(shape)
    return Mesh(grid, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES))


def logical_to_mesh_spec(
    logical: PartitionSpec, shape: Sequence[int], mesh: Mesh, rules: Mapping[str, str | None]
) -> PartitionSpec:
    """Maps a logical PartitionSpec to mesh axes; undivisible dims stay replicated."""
    out = []
    for dim, name in zip(shape, tuple(logical) + (None,) * (len(shape) - len(logical))):
        axis = rules.get(name) if isinstance(name, str) else None
        if axis is not None and (mesh.shape[axis] == 1 or dim % mesh.shape[axis]):
            if dim % mesh.shape[axis]:
                logging.warning("dim %d (%s) not divisible by mesh.%s; replicated", dim, name, axis)
            axis = None
        out.append(axis)
    return PartitionSpec(*out)


def param_shardings(logical_specs: Any, abstract_params: Any, mesh: Mesh, rules_name: str) -> Any:
    """NamedShardings for a params tree from its logical PartitionSpecs."""
    rules = RULES[rules_name]
    return jax.tree.map(
        lambda spec, x: NamedSharding(mesh, logical_to_mesh_spec(spec, x.shape, mesh, rules)),
        logical_specs,
        abstract_params,
        is_leaf=lambda x: isinstance(x, PartitionSpec),
    )


def mirror_shardings(abstract_tree: Any, params_abstract: Any, params_shardings: Any, mesh: Mesh):
    """Shardings for a tree (e.g. optimizer state) whose leaves mirror params.

    A leaf whose key path ends with a parameter's path and has its shape
    takes that parameter's sharding (Adam's mu and nu); any other leaf
    (counts, factored Adafactor statistics) is replicated.
    """
    table = {}
    for (path, x), s in zip(
        jax.tree_util.tree_flatten_with_path(params_abstract)[0],
        jax.tree.leaves(params_shardings),
    ):
        table[tuple(path_str(path).split("/"))] = (x.shape, s)
    replicated = NamedSharding(mesh, PartitionSpec())

    def pick(path, x):
        names = tuple(path_str(path).split("/"))
        for i in range(len(names)):
            hit = table.get(names[i:])
            if hit is not None and hit[0] == x.shape:
                return hit[1]
        return replicated

    return jax.tree_util.tree_map_with_path(pick, abstract_tree)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding of a batch: leading axis split over data, fsdp and expert."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def put_batch(batch: Mapping[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
    """Assembles the global batch from this process's local part."""
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()
    }


def check_batch(mesh: Mesh, batch_size: int, accum: int) -> None:
    """ConfigError unless the global batch (and each of `accum` microbatches) splits
    evenly over the mesh's batch axes and the processes."""
    dp = math.prod(mesh.shape[a] for a in BATCH_AXES if a in mesh.shape)
    processes = jax.process_count()
    if batch_size % dp or batch_size % processes:
        raise ConfigError(
            f"train.batch_size={batch_size} must be divisible by the data-parallel "
            f"size {dp} and the process count {processes}."
        )
    if dp % processes:
        raise ConfigError(
            f"the data-parallel size {dp} (mesh.data x fsdp x expert) must be a multiple of "
            f"the process count {processes}: each process feeds its own rows."
        )
    if (batch_size // accum) % dp:
        raise ConfigError(
            f"each microbatch ({batch_size}/{accum}) must be divisible by the data-parallel "
            f"size {dp}."
        )
