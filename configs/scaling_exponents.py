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
Arguments (`--config=configs/scaling_exponents.py:k=v,...`):
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

Every run logs per-tensor gradient RMS (Adam's eps is compared with it) and the
alignment probes (experiments/scaling_exponents/alignment.py) with each evaluation.
"""

from __future__ import annotations

import math
from typing import Any

import ml_collections

from framework.config import ConfigError, parse_arg
from framework.tasks import lm
from optim import parameterization as pz

OPTIMIZER_NAMES = {"adam": "adamw", "adam_atan2": "adam_atan2", "sgd": "sgd"}
OPTIMIZER_NAMES["adafactor"] = "adafactor"
SOLVER = {"adam": "adam", "adam_atan2": "adam", "sgd": "sgd", "adafactor": "adafactor"}
RUN = {
    "tiny": dict(steps=20, batch=8, seq=32, chars=100_000, layers=1, head=16, base=32),
    "cpu": dict(steps=200, batch=16, seq=64, chars=1_000_000, layers=2, head=16, base=64),
    # Everett et al.: depth 8, head_dim 128, widths 128..16384 (26.8B parameters at 16384
    # with a 32k vocabulary), batch 256 x 512 tokens of C4; not runnable here.
    "paper": dict(steps=50_000, batch=256, seq=512, chars=0, layers=8, head=128, base=1024),
}
WIDTHS = {
    "tiny": [16, 32],
    "cpu": [16, 32, 64, 128, 256],
    "paper": [128, 256, 512, 1024, 2048, 4096, 8192, 16384],
}
# Base learning rates: powers of 2 (the cpu grid spans 2^-10 .. 2^-3, which holds every
# study's optimum at every width in a pilot).
LRS = {
    "tiny": [2.0**-6, 2.0**-4],
    "cpu": [2.0**-k for k in range(10, 2, -1)],
    "paper": [2.0**-k for k in range(14, 2, -1)],
}
# The epsilon demonstration (paper Sec. 5): a parameterization whose gradients shrink
# fastest with width (mean-field: g = (1, 3/2, 1) by gradient_exponents) and an eps
# of the size of its hidden-layer gradient RMS near the largest cpu width, so a fixed eps
# swamps sqrt(v) there as eps = 1e-8 does at the paper's widths (measured; README).
EPS_PARAM = "mean_field"
EPS_DEMO = 1e-5
STUDIES: dict[str, dict[str, Any]] = {
    "standard": dict(param="standard", optimizer="adam"),
    "ntk": dict(param="ntk", optimizer="adam"),
    "mup": dict(param="mup", optimizer="adam"),
    "mean_field": dict(param="mean_field", optimizer="adam"),
    "standard_global": dict(param="standard", optimizer="adam", lr_scaling="global"),
    "eps_fixed": dict(param=EPS_PARAM, optimizer="adam", eps=EPS_DEMO),
    "eps_scaled": dict(param=EPS_PARAM, optimizer="adam", eps=EPS_DEMO, eps_scaled=True),
    "atan2": dict(param=EPS_PARAM, optimizer="adam_atan2"),
}
VARIANT_STUDIES = {
    "tiny": ["standard"],
    "cpu": list(STUDIES),
    "paper": list(STUDIES),
}
# The per-layer constants search for the standard parameterization's prescription (paper
# Sec. 4: exponents from the theory, constants C_l tuned at a small width): embedding and
# readout LR constants relative to the hidden layers', at the base width and the best base
# LR of the main sweep; the winner then runs at every width (sweep=tuned).
CONSTANTS = {
    "tiny": {"arg:c_emb": [4.0], "arg:c_readout": [1.0]},
    "cpu": {"arg:c_emb": [0.25, 1.0, 4.0, 16.0], "arg:c_readout": [0.25, 1.0, 4.0]},
    "paper": {"arg:c_emb": [0.25, 1.0, 4.0, 16.0], "arg:c_readout": [0.25, 1.0, 4.0]},
}
SWEEPS = ("main", "constants", "tuned")
TUNED_LRS = 5  # base LRs of the tuned study: the grid's 5 nearest to the base-width optimum
TUNED_WIDTHS = {"tiny": [32]}  # the tuned study's widths where not every width (tests)
DEFAULTS = dict(
    variant="cpu",
    study="",
    width=0,
    param="standard",
    optimizer="adam",
    alignment="full",
    lr_scaling="per_layer",
    lr=1e-2,
    constants="base",
    c_emb=1.0,
    c_hidden=1.0,
    c_readout=1.0,
    eps_scaled=False,
    eps=1e-8,
    steps=0,
    sweep="main",
)


def parse_args(arg: str | None) -> Any:
    """The parsed, checked arguments of `arg` (a study's settings filled in)."""
    a = parse_arg(arg, **DEFAULTS)
    if a.variant not in RUN:
        raise ConfigError(f"variant={a.variant!r} is unknown; choose one of {sorted(RUN)}.")
    if a.study:
        if a.study not in STUDIES:
            raise ConfigError(f"study={a.study!r} is unknown; choose one of {list(STUDIES)}.")
        given = {item.split("=", 1)[0].strip() for item in (arg or "").split(",") if "=" in item}
        for key, value in STUDIES[a.study].items():
            if key in given and a[key] != value:
                raise ConfigError(
                    f"{key}={a[key]!r} contradicts study={a.study!r} (which sets "
                    f"{key}={value!r}); drop one of them."
                )
            a[key] = value
    if a.optimizer not in SOLVER:
        raise ConfigError(f"optimizer={a.optimizer!r} is unknown; choose one of {list(SOLVER)}.")
    head = RUN[a.variant]["head"]
    a.width = a.width or RUN[a.variant]["base"]
    if a.width % head:
        raise ConfigError(f"width={a.width} must be a multiple of the head size {head}.")
    if a.eps_scaled and a.optimizer != "adam":
        raise ConfigError("eps_scaled=true applies to optimizer=adam only.")
    if a.lr_scaling not in ("per_layer", "global"):
        raise ConfigError(f"lr_scaling={a.lr_scaling!r} is unknown; choose per_layer or global.")
    if a.constants not in ("base", "one"):
        raise ConfigError(f"constants={a.constants!r} is unknown; choose base or one.")
    if a.sweep not in SWEEPS:
        raise ConfigError(f"sweep={a.sweep!r} is unknown; choose one of {list(SWEEPS)}.")
    return a


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
    config = lm.default_config()
    config.model.update(
        dict(
            d_model=a.width,
            num_layers=run["layers"],
            num_heads=a.width // run["head"],
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
    if a.variant == "paper":
        config.model.vocab_size = 32_000
        config.data.tokenizer = "sentencepiece"  # set data.sentencepiece_model and data.path
    config.data.seq_len = run["seq"]
    config.data.embedded_chars = run["chars"] or 1_000_000
    config.train.batch_size = run["batch"]
    config.train.total_steps = steps
    config.train.log_every_steps = max(1, steps // 30)
    config.train.eval_every_steps = max(1, steps // 4)
    config.train.checkpoint_every_steps = 0
    config.train.keep_checkpoints = 1
    config.train.log_tensor_rms = True
    config.train.plot_losses = False  # ~2 s a run; the report draws the sweep's figures
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
    config.schedule.name = "warmup_cosine"
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
