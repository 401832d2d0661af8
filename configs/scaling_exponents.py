"""Scaling exponents across parameterizations and optimizers (Everett et al., ICML 2024):
one run of a width x base-LR x parameterization x optimizer sweep.

    python -m framework.main --config=configs/scaling_exponents.py:width=128,param=mup,lr=0.01 \\
        --workdir=runs/se_one
Arguments (`--config=configs/scaling_exponents.py:k=v,...`):
  variant    'cpu' (default) | 'tiny' (tests)
  width      d_model (the width n); head_dim 16, d_ff = 4 n, 2 blocks
  param      standard | ntk | mup | mean_field  (optim/parameterization.py)
  optimizer  adam | adam_atan2 | sgd | adafactor
  alignment  full | none: which per-layer LR exponents c to use
  lr         the base learning rate eta; layer l gets eta * C_l * (n / 64)^-c_l
  eps_scaled per-layer Adam eps eps * (n / 64)^-g_l instead of a fixed eps
  eps        Adam's eps (fixed, or at the base width when scaled)
  steps      training steps (0: the variant's default)

The alignment probes (experiments/scaling_exponents/alignment.py) run with every
evaluation. Status: the config and its settings are tested; the sweep, report and
measured results are issue 6's remaining work (experiments/scaling_exponents/README.md).
"""

from __future__ import annotations

from typing import Any

import ml_collections

from framework.config import ConfigError, parse_arg
from framework.tasks import lm
from optim import parameterization as pz

BASE_WIDTH = 64  # where the per-layer constants C_l are 1 and LRs are compared
OPTIMIZER_NAMES = {"adam": "adamw", "adam_atan2": "adam_atan2", "sgd": "sgd"}
OPTIMIZER_NAMES["adafactor"] = "adafactor"
SOLVER = {"adam": "adam", "adam_atan2": "adam", "sgd": "sgd", "adafactor": "adafactor"}
RUN = {
    "tiny": dict(steps=20, batch=8, seq=32, chars=100_000, layers=1),
    "cpu": dict(steps=300, batch=16, seq=64, chars=1_000_000, layers=2),
}


def _arg(arg: str | None) -> Any:
    a = parse_arg(
        arg,
        variant="cpu",
        width=64,
        param="standard",
        optimizer="adam",
        alignment="full",
        lr=1e-2,
        eps_scaled=False,
        eps=1e-8,
        steps=0,
    )
    if a.variant not in RUN:
        raise ConfigError(f"variant={a.variant!r} is unknown; choose one of {sorted(RUN)}.")
    if a.optimizer not in SOLVER:
        raise ConfigError(f"optimizer={a.optimizer!r} is unknown; choose one of {list(SOLVER)}.")
    if a.width % 16:
        raise ConfigError(f"width={a.width} must be a multiple of the head size 16.")
    if a.eps_scaled and a.optimizer != "adam":
        raise ConfigError("eps_scaled=true applies to optimizer=adam only.")
    return a


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """One run: a width, a parameterization, an optimizer and a base learning rate."""
    a = _arg(arg)
    run = RUN[a.variant]
    steps = a.steps or run["steps"]
    try:
        settings = pz.transformer_settings(
            a.param,
            SOLVER[a.optimizer],
            a.alignment,
            width=a.width,
            base_width=BASE_WIDTH,
            scale_eps=a.eps_scaled,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from None
    config = lm.default_config()
    config.model.update(
        dict(
            d_model=a.width,
            num_layers=run["layers"],
            num_heads=a.width // 16,
            d_ff=4 * a.width,
            max_len=run["seq"],
            norm="layernorm",
            norm_bias=False,
            use_bias=False,
            mlp="gelu",
            position="learned",
            tie_embeddings=False,
            **settings["model"],
        )
    )
    config.data.seq_len = run["seq"]
    config.data.embedded_chars = run["chars"]
    config.train.batch_size = run["batch"]
    config.train.total_steps = steps
    config.train.log_every_steps = max(1, steps // 30)
    config.train.eval_every_steps = max(1, steps // 5)
    config.train.checkpoint_every_steps = 0
    config.train.keep_checkpoints = 1
    config.train.log_tensor_rms = True
    config.evals.val.num_batches = 16
    with config.unlocked():
        config.evals.align = ml_collections.ConfigDict(
            dict(kind="experiments.scaling_exponents.alignment", split="val")
        )
    config.optimizer.update(
        dict(
            name=OPTIMIZER_NAMES[a.optimizer],
            lr=a.lr,
            b1=0.9,
            b2=0.95,
            eps=a.eps,
            momentum=0.9,
            grad_clip_norm=0.0,  # clipping would change the gradient scale the rules assume
            weight_decay=0.0,
            adafactor_param_scale=True,
            adafactor_clip_threshold=0.0,
            lr_multipliers=settings["lr_multipliers"],
            eps_multipliers=settings["eps_multipliers"],
        )
    )
    config.schedule.name = "warmup_cosine"
    config.schedule.warmup_steps = max(1, steps // 10)
    config.schedule.final_lr_fraction = 0.1
    return config
