"""Run in a subprocess by test_scale_out.py: trains a few steps of the tiny
quickstart model on each mesh of the JSON list in argv[1] (one process, so JAX
starts once) and prints a JSON list with each run's losses and the shardings of
selected parameters and optimizer moments. `run_mesh` is also called in-process."""

import json
import sys

import jax

from configs import quickstart
from framework import sharding, trainer as trainer_lib

PARAMS = {
    "embedding": ("embed", "embedding"),
    "q_kernel": ("blocks", 0, "attn", "q_proj", "kernel"),
    "mlp_up": ("blocks", 0, "mlp", "up", "kernel"),
    "mlp_down": ("blocks", 0, "mlp", "down", "kernel"),
}
MOE_PARAMS = {  # an MoE layer's expert weights and router
    "expert_up": ("blocks", 0, "mlp", "up"),
    "expert_down": ("blocks", 0, "mlp", "down"),
    "router": ("blocks", 0, "mlp", "router"),
}


def run_mesh(mesh: dict, steps: int) -> dict:
    """Losses of `steps` steps on `mesh` (its 'model' entry: model overrides) and the
    selected parameters' shardings."""
    config = quickstart.get_config(f"size=tiny,steps={steps}")
    config.evals = {}
    mesh = dict(mesh)
    config.model.update(mesh.pop("model", {}))
    config.mesh.update(mesh)
    t = trainer_lib.Trainer(config, "/nonexistent-unused")
    data = iter(t.train_dataset())
    state = t._init()
    losses = []
    for _ in range(steps):
        state, m = t._step(state, sharding.put_batch(next(data), t.batch_sharding))
        losses.append(float(m["loss"]))
    specs = {}
    for name, path in (MOE_PARAMS if config.model.moe_experts else PARAMS).items():
        x = state["params"]
        for k in path:
            x = x[k]
        specs[name] = list(x.sharding.spec)
        mu = state["opt_state"]["core"].mu
        for k in path:
            mu = mu[k]
        specs[name + "/mu"] = list(mu.sharding.spec)
    return {"devices": jax.device_count(), "losses": losses, "specs": specs}


def main() -> None:
    meshes, steps = json.loads(sys.argv[1]), int(sys.argv[2])
    print(json.dumps([run_mesh(mesh, steps) for mesh in meshes]))


if __name__ == "__main__":
    main()
