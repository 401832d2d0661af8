"""Scaling exponents across parameterizations and optimizers (Everett et al., ICML 2024):
width x base LR sweeps of one decoder for each (parameterization, optimizer, epsilon) study.

The reproduction (sweep + report) is one command, see experiments/scaling_exponents/README.md:
    python -m experiments.scaling_exponents.run --workdir=runs/scaling_exponents \\
        --data_path=../shared/data/text/tinyshakespeare.txt
Expected (measured on 2 CPU cores, 79 min, 357 runs): the optimal base LR flat in width for
all four parameterizations; best eval loss at width 256 about 2.19 (standard, per-layer),
2.13 (standard, searched constants), 2.37 (muP).
One run (muP, Adam, per-layer LRs for full alignment, width 128):
    python -m framework.main --config=configs/scaling_exponents.py:width=128,param=mup,lr=0.01 \\
        --workdir=runs/se_one
Arguments (`--config=configs/scaling_exponents.py:k=v,...`; the grid they index, STUDIES,
RUN, WIDTHS, LRS, is in experiments/scaling_exponents/grid.py):
  variant    'cpu' (default; the CPU-scale reproduction) | 'tiny' (tests) | 'paper' (the
             published scale; documented, does not fit this machine)
  study      a key of STUDIES: sets param, optimizer, lr_scaling, eps, eps_scaled (the sweep
             runs every study of the variant; an explicit argument may not contradict it)
  width      d_model (the width n; 0: the variant's base width, cpu 64); d_ff = 4 n,
             head_dim and depth fixed per variant (RUN)
  param      standard | ntk | mup | mean_field  (optim/parameterization.py)
  optimizer  adam | adam_atan2 | sgd | adafactor
  alignment  full | none: the alignment the per-layer LR exponents c are solved for
  lr_scaling per_layer (lr_l = eta C_l (n / base)^-c_l) | global (c = 0: one LR for all layers)
  lr         the base learning rate eta
  constants  base (C_l = base^(k a_l): every parameterization trains like its a = 0
             equivalent at the base width; optim.parameterization.base_width_constants) | one
  c_emb, c_hidden, c_readout   extra per-layer LR constants, multiplying the above
  eps_scaled per-layer Adam eps eps * (n / base)^-g_l (g_l: the layer's gradient exponent)
  eps        Adam's eps (fixed, or at the base width when scaled)
  steps      training steps (0: the variant's default)

The model is the proxy decoder of configs/lm_proxy.py (width n, depth and head size of RUN).
Every run logs per-tensor gradient RMS (Adam's eps is compared with it) and the
alignment probes (experiments/scaling_exponents/alignment.py) with each evaluation.
"""

from __future__ import annotations

import math

import ml_collections

from configs.lm_proxy import proxy_lm_config
from experiments.scaling_exponents.grid import (
    CONSTANTS,
    LRS,
    RUN,
    SOLVER,
    TUNED_LRS,
    TUNED_WIDTHS,
    VARIANT_STUDIES,
    WIDTHS,
    parse_args,
)
from framework.config import ConfigError
from optim import parameterization as pz

OPTIMIZER_NAMES = {"adam": "adamw", "adam_atan2": "adam_atan2", "sgd": "sgd"}
OPTIMIZER_NAMES["adafactor"] = "adafactor"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """One run: a width, a parameterization, an optimizer and a base learning rate."""
    a = parse_args(arg)
    run = RUN[a.variant]
    steps = a.steps or run["steps"]
    try:
        constants = (
            pz.base_width_constants(a.param, SOLVER[a.optimizer], run["base"])
            if a.constants == "base"
            else {k: 1.0 for k in pz.LAYER_TYPES}
        )
        extra = dict(embedding=a.c_emb, hidden=a.c_hidden, readout=a.c_readout)
        settings = pz.transformer_settings(
            a.param,
            SOLVER[a.optimizer],
            a.alignment,
            width=a.width,
            base_width=run["base"],
            lr_constants={k: constants[k] * extra[k] for k in pz.LAYER_TYPES},
            scale_eps=a.eps_scaled,
            per_layer=a.lr_scaling == "per_layer",
        )
    except ValueError as e:
        raise ConfigError(str(e)) from None
    paper, heads = a.variant == "paper", a.width // run["head"]
    config = proxy_lm_config(
        run, d_model=a.width, num_layers=run["layers"], num_heads=heads, steps=steps, paper=paper
    )
    config.model.update(settings["model"])
    config.train.log_every_steps = max(1, steps // 30)
    config.train.eval_every_steps = max(1, steps // 4)
    config.evals.val.num_batches = 8  # the same 8 x 16 x 64 tokens for every run
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
    config.schedule.warmup_steps = max(1, steps // 10)
    config.schedule.final_lr_fraction = 0.1
    return config


def get_sweep(arg: str | None = None) -> list[dict]:
    """The variant's points (cpu: 8 studies x 5 widths x 8 base LRs = 320 runs).

        python -m framework.sweep --config=configs/scaling_exponents.py:variant=tiny \\
            --workdir=runs/se_tiny --parallel=2
    sweep=main: studies x widths x base LRs. sweep=constants (with lr=): the standard
    study at the base width with embedding x readout LR constants (CONSTANTS).
    sweep=tuned (with lr=, c_emb=, c_readout=): the standard study with those constants at
    every width and the TUNED_LRS grid LRs around lr. Points set this file's arguments
    ('arg:' keys): a study or a width sets several config values.
    experiments/scaling_exponents/run.py chains the three."""
    from framework.sweep import product

    a = parse_args(arg)
    widths, lrs = {"arg:width": WIDTHS[a.variant]}, {"arg:lr": LRS[a.variant]}
    if a.sweep == "constants":
        return product({"arg:study": "standard"}, CONSTANTS[a.variant])
    if a.sweep == "tuned":  # the TUNED_LRS grid LRs nearest to lr= (the base-width optimum)
        grid = LRS[a.variant]
        i = min(range(len(grid)), key=lambda j: abs(math.log(grid[j] / a.lr)))
        lo = min(max(0, i - TUNED_LRS // 2), max(0, len(grid) - TUNED_LRS))
        tuned_widths = {"arg:width": TUNED_WIDTHS.get(a.variant, WIDTHS[a.variant])}
        return product(
            {"arg:study": "standard"}, tuned_widths, {"arg:lr": grid[lo : lo + TUNED_LRS]}
        )
    return product({"arg:study": VARIANT_STUDIES[a.variant]}, widths, lrs)
