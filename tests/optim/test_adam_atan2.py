"""Adam-atan2 (optim/adam_atan2.py): hand computation, gradient-scale invariance,
the a*pi/2 bound on the update, and its place in build_optimizer."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optim import build_optimizer, make_schedule, scale_by_adam_atan2
from optim.optimizers import OPTIMIZER_DEFAULTS


def grads_at(t: int):
    """A fixed, sign-changing sequence of gradients for step t (magnitudes 1e-3..1)."""
    rng = np.random.default_rng(t)
    return {
        "w": jnp.asarray(rng.normal(size=(4, 3)) * 10.0 ** rng.uniform(-3, 0, (4, 3)), jnp.float32),
        "b": jnp.asarray(rng.normal(size=(3,)), jnp.float32),
    }


def run_updates(tx, steps: int, scale: float = 1.0):
    params = jax.tree.map(jnp.zeros_like, grads_at(0))
    state, out = tx.init(params), []
    for t in range(steps):
        updates, state = tx.update(jax.tree.map(lambda g: g * scale, grads_at(t)), state, params)
        out.append(jax.tree.map(np.asarray, updates))
    return out


def test_matches_hand_computation():
    b1, b2, a, b = 0.9, 0.95, 1.3, 0.7
    got = run_updates(scale_by_adam_atan2(b1, b2, a, b), 5)
    m = v = np.zeros((4, 3))
    for t in range(5):
        g = np.asarray(grads_at(t)["w"], np.float64)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** (t + 1)), v / (1 - b2 ** (t + 1))
        np.testing.assert_allclose(
            got[t]["w"], a * np.arctan2(m_hat, b * np.sqrt(v_hat)), rtol=1e-5
        )
    # The first update is a * atan(1 / b) * sign(g): m_hat = g, sqrt(v_hat) = |g|.
    g0 = np.asarray(grads_at(0)["b"])
    np.testing.assert_allclose(got[0]["b"], a * math.atan(1 / b) * np.sign(g0), rtol=1e-6)


@pytest.mark.parametrize("k", [-8, -4, 4, 8])
def test_invariant_to_gradient_scale(k):
    tx = scale_by_adam_atan2()
    base, scaled = run_updates(tx, 6), run_updates(tx, 6, scale=10.0**k)
    for u, s in zip(base, scaled):
        for name in u:
            np.testing.assert_allclose(s[name], u[name], rtol=1e-5, atol=1e-7)
    # Adam with its eps is not: at 1e-8 the eps dominates and the update collapses.
    if k == -8:
        adam = run_updates(optax.scale_by_adam(b1=0.9, b2=0.95, eps=1e-8), 6, scale=1e-8)
        assert np.abs(adam[-1]["w"]).max() < 0.7 * np.abs(base[-1]["w"]).max()


def test_update_bounded_by_a_pi_over_2_times_lr():
    lr, a = 0.05, 1.27
    schedule = make_schedule("constant", peak_lr=lr, total_steps=10)
    c = {**OPTIMIZER_DEFAULTS, "name": "adam_atan2", "atan2_a": a, "grad_clip_norm": 0.0}
    params = jax.tree.map(jnp.zeros_like, grads_at(0))
    tx = build_optimizer(c, schedule, params)
    state = tx.init(params)
    assert set(state) == {"clip", "core", "decay", "lr_mult", "lr"}
    assert isinstance(state["core"], optax.ScaleByAdamState)  # same state as AdamW
    largest = 0.0
    for t in range(10):  # huge, alternating gradients push |m_hat|/sqrt(v_hat) around
        factor = 1e6 if t % 2 else -1e-6
        g = jax.tree.map(lambda x, f=factor: x * f, grads_at(t))
        updates, state = tx.update(g, state, params)
        largest = max(largest, max(float(jnp.abs(u).max()) for u in jax.tree.leaves(updates)))
    assert 0.5 * lr < largest <= a * math.pi / 2 * lr


def test_invalid_constants_raise():
    with pytest.raises(ValueError, match="a > 0 and b > 0"):
        scale_by_adam_atan2(a=0.0)
