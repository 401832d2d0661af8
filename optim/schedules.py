"""Learning-rate schedules built from optax schedule primitives.

Step convention (optax's): ``schedule(t)`` is the learning rate of the update
applied at 0-based step ``t``, i.e. after ``t`` updates have been applied.
``optax.scale_by_learning_rate`` keeps its own update counter and calls
``schedule(count)`` with ``count = 0`` on the first update. With a warmup of
``W > 0`` steps the warmup is ``optax.linear_schedule(0, peak, W)``, so
``schedule(0) == 0`` (the first update is a no-op), ``schedule(W) == peak`` and
``schedule(t) == peak * t / W`` in between.

Decaying schedules reach ``final_lr_fraction * peak_lr`` at ``t == total_steps``
and stay there afterwards.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

SCHEDULES = ("constant", "warmup_linear", "warmup_cosine", "rsqrt")


def _with_warmup(peak_lr: float, warmup_steps: int, after: optax.Schedule) -> optax.Schedule:
    """Prefixes `after` (which sees steps counted from the end of warmup) with a 0->peak ramp."""
    if warmup_steps <= 0:
        return after
    warmup = optax.linear_schedule(0.0, peak_lr, warmup_steps)
    return optax.join_schedules([warmup, after], [warmup_steps])


def _rsqrt_after_warmup(peak_lr: float, warmup_steps: int) -> optax.Schedule:
    """Inverse square root decay, fed steps counted from the end of warmup."""
    # optax has no inverse-square-root schedule, so it is written here.
    # The floor of 1 keeps step 0 finite when there is no warmup: lr(0) = lr(1) = peak.
    w = float(max(warmup_steps, 1))

    def schedule(count: optax.ScalarOrSchedule) -> jnp.ndarray:
        step = jnp.asarray(count, jnp.float32) + warmup_steps  # undo join_schedules' offset
        return peak_lr * jnp.sqrt(w / jnp.maximum(step, w))

    return schedule


def make_schedule(
    name: str,
    *,
    peak_lr: float | jax.Array,
    total_steps: int,
    warmup_steps: int = 0,
    final_lr_fraction: float | jax.Array = 0.0,
) -> optax.Schedule:
    """Returns the named learning-rate schedule (step convention in the module docstring)."""
    if name not in SCHEDULES:
        raise ValueError(f"Unknown schedule {name!r}; valid choices are {', '.join(SCHEDULES)}.")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}.")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(
            f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}."
        )
    traced = isinstance(final_lr_fraction, jax.Array)  # the trainer's step passes it traced
    if not traced and final_lr_fraction < 0:
        raise ValueError(f"final_lr_fraction must be >= 0, got {final_lr_fraction}.")
    if not isinstance(peak_lr, jax.Array):  # a traced peak (the trainer's step) stays one
        peak_lr = float(peak_lr)
    final_lr = final_lr_fraction * peak_lr
    # Decay length after warmup; floored at 1 so warmup == total stays well defined
    # (the decay is then never reached during training).
    decay_steps = max(total_steps - warmup_steps, 1)

    if name == "constant":  # final_lr_fraction does not apply.
        after = optax.constant_schedule(peak_lr)
    elif name == "warmup_linear":
        after = optax.linear_schedule(peak_lr, final_lr, decay_steps)
    elif name == "warmup_cosine":
        after = optax.cosine_decay_schedule(peak_lr, decay_steps, alpha=final_lr_fraction)
    else:  # rsqrt; final_lr_fraction does not apply.
        after = _rsqrt_after_warmup(peak_lr, warmup_steps)
    return _with_warmup(peak_lr, warmup_steps, after)
