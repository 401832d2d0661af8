"""Optimizers, learning-rate schedules and parameter groups (pure optax; no framework imports)."""

from optim.adam_atan2 import scale_by_adam_atan2
from optim.optimizers import bakes_peak_lr, build_optimizer
from optim.param_groups import (
    decay_mask,
    describe_groups,
    lr_multiplier_tree,
    param_paths,
    path_str,
    trainable_mask,
)
from optim.schedules import make_schedule

__all__ = [
    "bakes_peak_lr",
    "build_optimizer",
    "decay_mask",
    "describe_groups",
    "lr_multiplier_tree",
    "make_schedule",
    "param_paths",
    "path_str",
    "scale_by_adam_atan2",
    "trainable_mask",
]
