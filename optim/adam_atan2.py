"""Adam-atan2 (Everett et al., ICML 2024, "Scaling Exponents Across Parameterizations
and Optimizers", Sec. 5): Adam with the division m / (sqrt(v) + eps) replaced by
a * atan2(m, b * sqrt(v)).

    m_t = b1 m_{t-1} + (1 - b1) g_t         m_hat = m_t / (1 - b1^t)
    v_t = b2 v_{t-1} + (1 - b2) g_t^2       v_hat = v_t / (1 - b2^t)
    u_t = a * atan2(m_hat, b * sqrt(v_hat))

There is no epsilon: atan2(0, 0) = 0, so a zero gradient gives a zero update instead
of an eps-dominated one, and the update is unchanged when every gradient is scaled
by any c > 0 (atan2(c x, c y) = atan2(x, y)), so no width-dependent eps is needed.
|u_t| <= a * pi / 2 always. For |m_hat| << b sqrt(v_hat), u_t ~ (a / b) m_hat /
sqrt(v_hat), i.e. Adam with step a / b.

Defaults a = b = 1 are the paper's definition. With them, a constant gradient
(m_hat = sqrt(v_hat)) gives pi/4 instead of Adam's 1; a = 4/pi makes those equal.
optax has no Adam-atan2, so it is written here as a GradientTransformation with the
same state as optax.scale_by_adam, so checkpoints and sharding rules carry over.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def scale_by_adam_atan2(
    b1: float = 0.9, b2: float = 0.95, a: float = 1.0, b: float = 1.0
) -> optax.GradientTransformation:
    """Rescales updates by Adam-atan2 (module docstring); state: optax.ScaleByAdamState."""
    if a <= 0 or b <= 0:
        raise ValueError(f"Adam-atan2 needs a > 0 and b > 0, got a={a}, b={b}.")

    def init_fn(params: optax.Params) -> optax.ScaleByAdamState:
        zeros = optax.tree.zeros_like(params)
        return optax.ScaleByAdamState(
            count=jnp.zeros([], jnp.int32), mu=zeros, nu=optax.tree.zeros_like(params)
        )

    def update_fn(updates, state, params=None):
        del params
        mu = optax.tree.update_moment(updates, state.mu, b1, 1)
        nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
        count = optax.safe_increment(state.count)
        mu_hat = optax.tree.bias_correction(mu, b1, count)
        nu_hat = optax.tree.bias_correction(nu, b2, count)
        new = jax.tree.map(lambda m, v: a * jnp.arctan2(m, b * jnp.sqrt(v)), mu_hat, nu_hat)
        return new, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)
