"""The multi-device checks that need no process of their own, run in one subprocess with
8 emulated CPU devices (tests/conftest.py's `eight_devices` fixture runs `python
tests/framework/mesh_check.py STEPS` and reads the JSON it prints), so JAX starts once:

- `run_mesh`: a few steps of the tiny quickstart model on each mesh of MESHES (data,
  fsdp, tensor and expert axes; also called in-process on one device), with the
  shardings of selected parameters and Adam moments;
- `sample_on_mesh`: greedy sampling of a tiny random Transformer with its KV cache on a
  data x fsdp x tensor = 2 x 2 x 2 mesh versus no mesh;
- `fsdp_dry_run`: the compiled per-device memory of a ~1e9-parameter decoder on an
  fsdp=8 mesh (test_scale_out compares it with the data=8 dry run of the CLI).
"""

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
# Expert parallelism: 4 experts in every layer, one per device of the expert axis.
MOE = {"moe_experts": 4, "moe_every": 1, "moe_top_k": 2}
MESHES = [  # (mesh, the specs its rules give the selected parameters)
    (
        {"data": 1, "fsdp": 8, "tensor": 1, "rules": "fsdp"},
        {
            "embedding": [None, "fsdp"],
            "q_kernel": ["fsdp", None, None],
            "mlp_up": ["fsdp", None],
            "mlp_down": [None, "fsdp"],
        },
    ),
    (
        {"data": 2, "fsdp": 2, "tensor": 2, "rules": "fsdp_tp"},
        {
            # vocab 259 is not divisible by tensor=2, so it stays replicated
            "embedding": [None, "fsdp"],
            "q_kernel": ["fsdp", "tensor", None],
            "mlp_up": ["fsdp", "tensor"],
            "mlp_down": ["tensor", "fsdp"],
        },
    ),
    (  # data parallelism with the expert axis: the dense weights replicated
        {"data": 2, "fsdp": 1, "expert": 4, "tensor": 1, "rules": "dp", "model": MOE},
        {
            "expert_up": ["expert", None, None],
            "expert_down": ["expert", None, None],
            "router": [None, None],
        },
    ),
]
BIG = dict(d_model=2048, num_layers=20, num_heads=16, d_ff=5504, scan_layers=True)  # ~1.0e9
BIG_BATCH = 8


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


def sample_on_mesh() -> dict:
    """Greedy tokens and log-probs with and without a 2 x 2 x 2 mesh, and the cache's
    sharding."""
    from flax import nnx

    from data.tokenizers import ByteTokenizer
    from framework import sampling
    from models.transformer import Transformer, TransformerConfig

    cfg = TransformerConfig(
        d_model=32, num_layers=2, num_heads=2, d_ff=64, max_len=128, init_std=0.3
    )
    model = Transformer(cfg, rngs=nnx.Rngs(0))
    tok = ByteTokenizer()
    prompts = ["Alice lives in ", "17 plus", "Hello there, ", "x"]
    mesh = sharding.make_mesh(dict(data=2, fsdp=2, tensor=2, rules="fsdp_tp"))
    plain = sampling.generate(model, tok, prompts, max_new_tokens=12, temperature=0.0)
    state = sampling.prefill(model, tok, prompts, max_new_tokens=12, mesh=mesh)
    meshed = sampling.generate(model, tok, state, max_new_tokens=12, temperature=0.0)
    k = state.cache["k"][0]
    return {
        "plain": plain.tokens.tolist(),
        "meshed": meshed.tokens.tolist(),
        "plain_logprobs": plain.logprobs.tolist(),
        "meshed_logprobs": meshed.logprobs.tolist(),
        "cache_k_spec": [list(a) if isinstance(a, tuple) else a for a in k.sharding.spec],
    }


def fsdp_dry_run() -> dict:
    """The dry-run memory report of the BIG decoder on an fsdp=8 mesh (nothing allocated)."""
    config = quickstart.get_config()
    config.model.update(BIG)
    config.train.batch_size = BIG_BATCH
    config.mesh.update(data=1, fsdp=8, rules="fsdp")
    t = trainer_lib.Trainer(config, "/nonexistent-unused", abstract=True)
    return t.memory_report(t.compile_step())


def main() -> None:
    steps = int(sys.argv[1])
    out = {
        "devices": jax.device_count(),
        "meshes": [run_mesh(mesh, steps) for mesh, _ in MESHES],
        "sampling": sample_on_mesh(),
        "fsdp_dry_run": fsdp_dry_run(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
