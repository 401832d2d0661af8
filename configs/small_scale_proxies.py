"""Small-scale proxies for large-scale Transformer training instabilities
(Wortsman et al., 2023): a learning-rate sweep over model sizes and interventions.

One run (defaults: size m, intervention baseline, lr 1e-2):
    python -m framework.main --config=configs/small_scale_proxies.py:size=s,lr=0.1 \\
        --workdir=runs/proxies_one
The whole reproduction (sweep + report) is one command, see
experiments/small_scale_proxies/README.md:
    python -m experiments.small_scale_proxies.run --workdir=runs/proxies
Arguments (`--config=configs/small_scale_proxies.py:k=v,...`):
  variant       'cpu' (default; the CPU-scale sweep), 'tiny' (tests), 'paper' (C4-scale
                settings; documented, does not fit this machine)
  size          a key of SIZES[variant] (single runs; the sweep covers all)
  intervention  a key of INTERVENTIONS (single runs)
  lr            peak learning rate (single runs)
  steps         training steps (0: the variant's default)

The model is the paper's pre-LN decoder (configs/lm_proxy.py): LayerNorm without bias,
no biases in dense layers, untied embeddings, GELU MLP (4x), learned positions, head_dim
32 here. The optimizer is AdamW b=(0.9, 0.95), eps 1e-8, global-norm clipping at 1,
linear warmup then cosine decay to 1e-5.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from configs.lm_proxy import proxy_lm_config
from framework.config import ConfigError, parse_arg

# d_model, num_layers per size; head_dim 32 (paper: 64), d_ff = 4 d_model.
# Non-embedding parameters = 12 L d^2 (+ norms): xs 0.10M, s 0.39M, m 0.62M, l 1.2M.
SIZES = {
    "tiny": {"t1": (64, 1)},  # one size: the test suite's time
    "cpu": {"xs": (64, 2), "s": (128, 2), "m": (160, 2), "l": (224, 2)},
    # Paper Fig. 1 spans 9.4M..1.2B parameters with head_dim 64; three of its sizes.
    "paper": {"9M": (256, 8), "85M": (768, 12), "1.2B": (2048, 24)},
}
# The learning-rate grid: 3e-4 .. 3e-1 in x sqrt(10) steps (7 values).
LRS = {
    "tiny": [1e-3, 3e-1],
    "cpu": [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1],
    "paper": [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1],
}
# variant -> steps, batch size, sequence length, warmup fraction, embedded corpus chars
RUN = {
    "tiny": dict(steps=20, batch=8, seq=32, chars=100_000),
    "cpu": dict(steps=200, batch=16, seq=64, chars=1_000_000),
    "paper": dict(steps=100_000, batch=256, seq=512, chars=0),
}
WARMUP_FRACTION = 0.05  # paper: 5e3 of 1e5 steps
LONG_WARMUP_FRACTION = 0.25  # the 'longer warmup' intervention
MIN_LR = 1e-5  # cosine decay floor (paper)
DECOUPLED_WD = 0.1  # AdamW's usual decay: theta -= lr_t * 0.1 * theta
INDEPENDENT_WD = 1e-4  # paper: theta -= (lr_t / lr) * 1e-4 * theta (same as above at lr=1e-3)
Z_LOSS = 1e-4

# Each intervention is a set of config overrides on top of the baseline.
INTERVENTIONS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "qk_layernorm": {"model.qk_norm": True},
    "z_loss": {"loss.z_loss": Z_LOSS},
    "qk_layernorm+z_loss": {"model.qk_norm": True, "loss.z_loss": Z_LOSS},
    "long_warmup": {"warmup": LONG_WARMUP_FRACTION},
    "independent_wd": {
        "optimizer.weight_decay_mode": "independent",
        "optimizer.weight_decay": INDEPENDENT_WD,
    },
    # muParam (simple), not in the default sweep: hidden-matrix LR x base_width / width.
    "muparam": {"muparam": True},
}
SWEEP_INTERVENTIONS = [k for k in INTERVENTIONS if k != "muparam"]
# The test suite's tiny variant: the baseline and the headline intervention, at 2 LRs.
TINY_INTERVENTIONS = ["baseline", "qk_layernorm"]
MUP_BASE_WIDTH = 64
HIDDEN_MATRICES = r"blocks/.*/(attn/(q|k|v|o)_proj|mlp/(up|down))/kernel"


def _arg(arg: str | None) -> Any:
    a = parse_arg(arg, variant="cpu", size="", intervention="baseline", lr=1e-2, steps=0)
    if a.variant not in SIZES:
        raise ConfigError(f"variant={a.variant!r} is unknown; choose one of {sorted(SIZES)}.")
    sizes = SIZES[a.variant]
    if not a.size:
        a.size = list(sizes)[min(2, len(sizes) - 1)]
    if a.size not in sizes:
        raise ConfigError(
            f"size={a.size!r} is not a size of variant {a.variant!r}; choose one of {list(sizes)}."
        )
    if a.intervention not in INTERVENTIONS:
        raise ConfigError(
            f"intervention={a.intervention!r} is unknown; choose one of {list(INTERVENTIONS)}."
        )
    return a


def apply_intervention(config: Any, name: str, *, steps: int) -> None:
    """Applies INTERVENTIONS[name] to `config` in place (warmup fractions become steps)."""
    for key, value in INTERVENTIONS[name].items():
        if key == "warmup":
            config.schedule.warmup_steps = max(1, round(value * steps))
        elif key == "muparam":
            width = config.model.d_model
            config.optimizer.lr_multipliers = ((HIDDEN_MATRICES, MUP_BASE_WIDTH / width),)
        else:
            section, field = key.split(".")
            config[section][field] = value


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """One run of the sweep: a size, an intervention and a peak learning rate."""
    a = _arg(arg)
    run = RUN[a.variant]
    steps = a.steps or run["steps"]
    d, layers = SIZES[a.variant][a.size]
    paper = a.variant == "paper"
    heads = d // (64 if paper else 32)  # head_dim 32 here, 64 at paper scale
    config = proxy_lm_config(
        run, d_model=d, num_layers=layers, num_heads=heads, steps=steps, paper=paper
    )
    config.model.qk_norm = False  # the baseline (the qk_layernorm interventions set it)
    config.train.log_every_steps = max(1, steps // 50)
    config.train.eval_every_steps = steps  # one evaluation, at the end
    config.probes.attention_logits = True
    config.evals.val.num_batches = 16
    config.optimizer.update(
        dict(
            name="adamw",
            lr=a.lr,
            b1=0.9,
            b2=0.95,
            eps=1e-8,
            grad_clip_norm=1.0,
            weight_decay=DECOUPLED_WD,
            weight_decay_mode="decoupled",
        )
    )
    config.schedule.warmup_steps = max(1, round(WARMUP_FRACTION * steps))
    config.schedule.final_lr_fraction = min(1.0, MIN_LR / a.lr)
    apply_intervention(config, a.intervention, steps=steps)
    return config


def get_sweep(arg: str | None = None) -> list[dict]:
    """sizes x interventions x learning rates of the variant (cpu: 4 x 6 x 7 = 168 runs).

    `python -m framework.sweep --config=configs/small_scale_proxies.py:variant=tiny
    --workdir=runs/proxies_tiny --parallel=2`. Points set this file's arguments
    ('arg:' keys), since a size or an intervention sets several config values."""
    from framework.sweep import product

    a = _arg(arg)
    return product(
        {"arg:size": list(SIZES[a.variant])},
        {"arg:intervention": TINY_INTERVENTIONS if a.variant == "tiny" else SWEEP_INTERVENTIONS},
        {"arg:lr": LRS[a.variant]},
    )
