"""The scaling-exponents grid (Everett et al., ICML 2024): the studies, widths, base
learning rates and run sizes of each variant, and the arguments of one run.

configs/scaling_exponents.py builds a run's config and the sweeps from these; the
experiment's pipeline (run.py) and report (report.py) read them from here, so that
experiments never import configs.
"""

from __future__ import annotations

from typing import Any

from framework.config import ConfigError, parse_arg

# The optimizer family whose exponents optim.parameterization solves for, per optimizer.
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
EPS_STUDIES = ("mean_field", "eps_fixed", "eps_scaled", "atan2")  # the eps comparison
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
