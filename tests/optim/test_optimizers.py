"""Tests for optim.optimizers and optim.param_groups against hand computations in numpy."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from optim import (
    build_optimizer,
    decay_mask,
    describe_groups,
    lr_multiplier_tree,
    make_schedule,
    param_paths,
)
from optim.optimizers import OPTIMIZER_DEFAULTS


def cfg(**overrides):
    """An optimizer config: the defaults with clipping off unless asked for."""
    return {**OPTIMIZER_DEFAULTS, "grad_clip_norm": 0.0, **overrides}


def run(tx, params, grad_fn, steps):
    """Applies `steps` jitted updates; returns the params after each step."""
    state = tx.init(params)
    update = jax.jit(tx.update)
    history = []
    for _ in range(steps):
        updates, state = update(grad_fn(params), state, params)
        params = optax.apply_updates(params, updates)
        history.append(jax.tree.map(np.asarray, params))
    return history


def one_update(tx, params, grads):
    """The first update `tx` produces for `grads`."""
    updates, _ = tx.update(grads, tx.init(params), params)
    return jax.tree.map(np.asarray, updates)


def zeros_like(tree):
    return jax.tree.map(jnp.zeros_like, tree)


TWO_PARAMS = {
    "w": jnp.array([[1.0, -2.0], [0.5, 3.0]], jnp.float32),
    "b": jnp.array([0.3, -0.7], jnp.float32),
}
TARGET = {"w": np.array([[0.0, 1.0], [2.0, -1.0]]), "b": np.array([1.0, 0.0])}


def quadratic_grad(params):
    """Gradient of 0.5 * ||theta - target||^2."""
    return jax.tree.map(lambda p, t: p - jnp.asarray(t, p.dtype), params, TARGET)


def quadratic_loss(params):
    return sum(0.5 * float(np.sum((np.asarray(params[k]) - TARGET[k]) ** 2)) for k in TARGET)


# ----------------------------------------------------------------------------- AdamW


def test_adamw_matches_numpy_adam_with_decoupled_decay():
    b1, b2, eps, wd = 0.9, 0.95, 1e-8, 0.1
    schedule = make_schedule("warmup_linear", peak_lr=0.1, total_steps=3)  # 0.1, 0.0667, 0.0333
    tx = build_optimizer(
        cfg(name="adamw", b1=b1, b2=b2, eps=eps, weight_decay=wd), schedule, TWO_PARAMS
    )
    got = run(tx, TWO_PARAMS, quadratic_grad, 3)

    theta = {k: np.asarray(v, np.float64) for k, v in TWO_PARAMS.items()}
    m = {k: np.zeros_like(v) for k, v in theta.items()}
    v = {k: np.zeros_like(x) for k, x in theta.items()}
    for t in range(3):
        lr_t = 0.1 * (1 - t / 3)
        for k in theta:
            g = theta[k] - TARGET[k]
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g**2
            m_hat = m[k] / (1 - b1 ** (t + 1))
            v_hat = v[k] / (1 - b2 ** (t + 1))
            u = m_hat / (np.sqrt(v_hat) + eps)
            if theta[k].ndim >= 2:  # 1-D 'b' is not decayed
                u = u + wd * theta[k]
            theta[k] = theta[k] - lr_t * u
        for k in theta:
            np.testing.assert_allclose(got[t][k], theta[k], rtol=1e-5, atol=1e-6)
    assert quadratic_loss(got[-1]) < quadratic_loss(TWO_PARAMS)


# ----------------------------------------------------------------------------- SGD


@pytest.mark.parametrize(
    "nesterov, expected_total_step",
    [
        # trace_1 = 1, trace_2 = 2 + 0.9*1 = 2.9, trace_3 = -1 + 0.9*2.9 = 1.61; sum 5.51.
        (False, 5.51),
        # u_k = g_k + 0.9*trace_k: 1.9, 4.61, 0.449; sum 6.959.
        (True, 6.959),
    ],
)
def test_sgd_momentum_matches_hand(nesterov, expected_total_step):
    grads = iter([1.0, 2.0, -1.0])
    params = {"x": jnp.array([5.0, -3.0], jnp.float32)}
    schedule = make_schedule("constant", peak_lr=0.1, total_steps=3)
    tx = build_optimizer(cfg(name="sgd", momentum=0.9, nesterov=nesterov), schedule, params)
    got = run(tx, params, lambda p: {"x": jnp.full((2,), next(grads), jnp.float32)}, 3)
    np.testing.assert_allclose(
        got[-1]["x"], np.array([5.0, -3.0]) - 0.1 * expected_total_step, rtol=1e-6
    )


# ----------------------------------------------------------------------------- Adafactor


def test_adafactor_matches_hand_factored_computation():
    # Checked by hand (numpy) rather than against optax.adafactor: our chain is assembled
    # from the same optax pieces, so comparing to optax would only re-run them. The numpy
    # version follows Shazeer & Stern (2018), Alg. 4: beta2_t = 1 - (t+1)^-0.8, factored
    # row/column second moments, update clipped to block RMS <= d.
    decay, threshold, eps, lr = 0.8, 0.5, 1e-30, 0.05
    params = {
        "w": jnp.array([[1.0, -2.0, 0.5], [0.3, 3.0, -1.0], [2.0, 0.1, 0.7], [-0.4, 1.5, 1.0]]),
        "b": jnp.array([0.3, -0.7, 0.2]),
    }
    target = {"w": np.zeros((4, 3)), "b": np.ones(3)}

    def grad_fn(p):
        return {k: 2.0 * (p[k] - target[k]) for k in p}  # a different quadratic, scale 2

    schedule = make_schedule("constant", peak_lr=lr, total_steps=100)
    c = cfg(
        name="adafactor",
        adafactor_decay_rate=decay,
        adafactor_min_dim_to_factor=2,
        adafactor_clip_threshold=threshold,
    )
    tx = build_optimizer(c, schedule, params)
    factored_state = tx.init(params)["core"][0]
    assert factored_state.v_row["w"].shape == (3,)  # factored: O(n + m) statistics
    assert factored_state.v_col["w"].shape == (4,)
    got = run(tx, params, grad_fn, 20)

    theta = {k: np.asarray(v, np.float64) for k, v in params.items()}
    r, col = np.zeros(3), np.zeros(4)  # mean of g^2 over axis 0 / over axis 1
    v_b = np.zeros(3)
    for t in range(20):
        beta2 = 1.0 - (t + 1.0) ** -decay
        g = grad_fn(theta)
        g2 = g["w"] ** 2 + eps
        r = beta2 * r + (1 - beta2) * g2.mean(axis=0)
        col = beta2 * col + (1 - beta2) * g2.mean(axis=1)
        v_hat = np.outer(col, r) / r.mean()
        v_b = beta2 * v_b + (1 - beta2) * (g["b"] ** 2 + eps)
        u = {"w": g["w"] / np.sqrt(v_hat), "b": g["b"] / np.sqrt(v_b)}
        for k in u:
            rms = np.sqrt(np.mean(u[k] ** 2))
            theta[k] = theta[k] - lr * u[k] / max(1.0, rms / threshold)
        for k in theta:
            np.testing.assert_allclose(got[t][k], theta[k], rtol=2e-5, atol=1e-6)

    def loss(p):
        return sum(float(np.sum((np.asarray(p[k]) - target[k]) ** 2)) for k in p)

    assert loss(got[-1]) < 0.5 * loss(params)


# ----------------------------------------------------------------------------- clipping


def test_global_norm_clipping_caps_huge_gradients():
    params = {"a": jnp.zeros((2, 2)), "b": jnp.zeros(3)}
    direction = {"a": jnp.array([[1.0, 2.0], [0.0, -2.0]]), "b": jnp.array([4.0, 0.0, 0.0])}
    norm = 5.0  # sqrt(1 + 4 + 4 + 16)
    schedule = make_schedule("constant", peak_lr=1.0, total_steps=1)
    tx = build_optimizer(cfg(name="sgd", momentum=0.0, grad_clip_norm=1.0), schedule, params)

    huge = one_update(tx, params, jax.tree.map(lambda d: 1e6 * d, direction))
    for k in params:
        np.testing.assert_allclose(huge[k], -np.asarray(direction[k]) / norm, rtol=1e-6)
    small = one_update(tx, params, jax.tree.map(lambda d: 0.1 * d, direction))  # norm 0.5
    for k in params:
        np.testing.assert_allclose(small[k], -0.1 * np.asarray(direction[k]), rtol=1e-6)


# ----------------------------------------------------------------------------- weight decay

DECAY_SCHEDULE = dict(total_steps=6, warmup_steps=2, final_lr_fraction=0.1)


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_independent_decay_ignores_peak_lr_and_multipliers(name):
    wd, steps = 0.1, 6
    params = {"w": jnp.full((3, 2), 2.0), "v": jnp.full((2, 2), -1.0)}
    results = []
    for peak in [1e-3, 0.3]:
        schedule = make_schedule("warmup_cosine", peak_lr=peak, **DECAY_SCHEDULE)
        c = cfg(
            name=name,
            lr=peak,
            weight_decay=wd,
            weight_decay_mode="independent",
            lr_multipliers=(("^w$", 0.1),),
            grad_clip_norm=1.0,
        )
        tx = build_optimizer(c, schedule, params)
        final = run(tx, params, zeros_like, steps)[-1]
        factor = np.prod([1 - wd * float(schedule(t)) / peak for t in range(steps)])
        for k in params:
            np.testing.assert_allclose(final[k], np.asarray(params[k]) * factor, rtol=1e-5)
        results.append(final)
    for k in params:
        np.testing.assert_allclose(results[0][k], results[1][k], rtol=1e-5)
    assert factor < 0.75  # the decay did something


def test_decoupled_decay_scales_with_lr():
    wd, peak, steps = 0.1, 0.5, 6
    params = {"w": jnp.full((2, 2), 2.0)}
    schedule = make_schedule("warmup_cosine", peak_lr=peak, **DECAY_SCHEDULE)
    tx = build_optimizer(cfg(name="adamw", lr=peak, weight_decay=wd), schedule, params)
    final = run(tx, params, zeros_like, steps)[-1]
    factor = np.prod([1 - float(schedule(t)) * wd for t in range(steps)])
    np.testing.assert_allclose(final["w"], 2.0 * factor, rtol=1e-6)
    assert factor < 0.9


def test_decay_skips_vectors_and_excluded_paths():
    params = {
        "embed": {"embedding": jnp.ones((4, 3))},
        "blocks": {0: {"kernel": jnp.ones((3, 3)), "bias": jnp.ones(3)}},
        "scale": jnp.ones(()),
    }
    assert decay_mask(params, "embed") == {
        "embed": {"embedding": False},
        "blocks": {0: {"kernel": True, "bias": False}},
        "scale": False,
    }
    schedule = make_schedule("constant", peak_lr=1.0, total_steps=1)
    c = cfg(name="sgd", momentum=0.0, weight_decay=0.5, decay_exclude="^embed/")
    updates = one_update(build_optimizer(c, schedule, params), params, zeros_like(params))
    np.testing.assert_array_equal(updates["blocks"][0]["kernel"], -0.5 * np.ones((3, 3)))
    np.testing.assert_array_equal(updates["blocks"][0]["bias"], np.zeros(3))
    np.testing.assert_array_equal(updates["embed"]["embedding"], np.zeros((4, 3)))
    np.testing.assert_array_equal(updates["scale"], 0.0)


# ----------------------------------------------------------------------------- groups


def nested_params():
    def attn():
        return {n: {"kernel": jnp.ones((2, 2))} for n in ["q", "k", "v", "o"]}

    return {
        "embed": {"embedding": jnp.ones((5, 2))},
        "blocks": {
            0: {"attn": attn(), "mlp": {"embed_proj": {"kernel": jnp.ones((2, 2))}}},
            1: {"attn": attn(), "mlp": {"embed_proj": {"kernel": jnp.ones((2, 2))}}},
        },
        "norm": {"scale": jnp.ones(2)},
    }


RULES = (("attn/(q|k)/", 0.1), ("blocks/1/attn", 0.5), ("^embed", 2.0))


def test_param_paths_join_keys_with_slashes():
    paths = param_paths(nested_params())
    assert paths["blocks"][1]["attn"]["q"]["kernel"] == "blocks/1/attn/q/kernel"
    assert paths["embed"]["embedding"] == "embed/embedding"
    # Attribute and sequence keys too.
    assert param_paths([optax.ScaleByScheduleState(count=jnp.zeros(()))]) == [
        optax.ScaleByScheduleState(count="0/count")
    ]


def test_describe_groups_first_match_wins():
    groups = describe_groups(nested_params(), RULES)
    expected = {"embed/embedding": 2.0, "norm/scale": 1.0}
    for i in [0, 1]:
        expected[f"blocks/{i}/mlp/embed_proj/kernel"] = 1.0  # '^embed' is anchored
        for n in ["q", "k"]:
            expected[f"blocks/{i}/attn/{n}/kernel"] = 0.1  # before 'blocks/1/attn'
        for n in ["v", "o"]:
            expected[f"blocks/{i}/attn/{n}/kernel"] = 0.5 if i == 1 else 1.0
    assert groups == expected
    tree = lr_multiplier_tree(nested_params(), RULES)
    assert tree["blocks"][1]["attn"]["v"]["kernel"] == 0.5
    assert jax.tree.structure(tree) == jax.tree.structure(nested_params())


def test_lr_multiplier_scales_sgd_update_exactly():
    params = nested_params()
    grads = jax.tree.map(
        lambda p: jnp.arange(p.size, dtype=jnp.float32).reshape(p.shape) / 7.0 + 0.3, params
    )
    schedule = make_schedule("constant", peak_lr=0.5, total_steps=1)
    plain = one_update(build_optimizer(cfg(name="sgd"), schedule, params), params, grads)
    scaled_tx = build_optimizer(cfg(name="sgd", lr_multipliers=RULES), schedule, params)
    scaled = one_update(scaled_tx, params, grads)
    groups = describe_groups(params, RULES)
    paths = jax.tree.leaves(param_paths(params))
    flat_plain = dict(zip(paths, jax.tree.leaves(plain), strict=True))
    flat_scaled = dict(zip(paths, jax.tree.leaves(scaled), strict=True))
    q = "blocks/0/attn/q/kernel"
    np.testing.assert_array_equal(flat_scaled[q], np.float32(0.1) * flat_plain[q])
    assert np.all(flat_plain[q] != 0)
    for path, m in groups.items():
        np.testing.assert_array_equal(flat_scaled[path], np.float32(m) * flat_plain[path])


@pytest.mark.parametrize(
    "call",
    [
        lambda p: lr_multiplier_tree(p, [("attn/qq", 0.1)]),
        lambda p: describe_groups(p, [("^embed", 2.0), ("attn/qq", 0.1)]),
        lambda p: decay_mask(p, "attn/qq"),
        lambda p: build_optimizer(cfg(lr_multipliers=(("attn/qq", 0.1),)), lambda t: 1.0, p),
        lambda p: build_optimizer(cfg(decay_exclude="attn/qq"), lambda t: 1.0, p),
    ],
)
def test_regex_matching_nothing_raises(call):
    with pytest.raises(ValueError, match=r"'attn/qq' matches no parameter.*attn/q/kernel"):
        call(nested_params())


# ----------------------------------------------------------------------------- config


def test_unknown_name_mode_and_key_raise():
    params, schedule = TWO_PARAMS, lambda t: 1.0
    with pytest.raises(ValueError, match="adamw, adam_atan2, sgd, adafactor"):
        build_optimizer(cfg(name="adam"), schedule, params)
    with pytest.raises(ValueError, match="decoupled, independent"):
        build_optimizer(cfg(weight_decay_mode="coupled"), schedule, params)
    with pytest.raises(ValueError, match="did you mean 'weight_decay'"):
        build_optimizer({"weight_decy": 0.1}, schedule, params)


def test_accepts_config_dict_and_has_stable_state_names():
    c = ml_collections.ConfigDict(cfg(name="sgd", lr_multipliers=(("^w$", 0.5),)))
    tx = build_optimizer(c, make_schedule("constant", peak_lr=1.0, total_steps=1), TWO_PARAMS)
    state = tx.init(TWO_PARAMS)
    assert list(state) == ["clip", "core", "decay", "lr_mult", "lr"]
    updates = one_update(tx, TWO_PARAMS, TWO_PARAMS)
    np.testing.assert_allclose(updates["w"], -0.5 * np.asarray(TWO_PARAMS["w"]))
    np.testing.assert_allclose(updates["b"], -np.asarray(TWO_PARAMS["b"]))


def test_works_with_nnx_optimizer():
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.blocks = nnx.List([nnx.Linear(2, 2, rngs=rngs) for _ in range(2)])

        def __call__(self, x):
            for block in self.blocks:
                x = block(x)
            return x

    model = Net(nnx.Rngs(0))
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    rules = (("blocks/1/", 0.0),)
    assert describe_groups(params, rules)["blocks/1/kernel"] == 0.0
    schedule = make_schedule("constant", peak_lr=0.1, total_steps=1)
    tx = build_optimizer(cfg(lr_multipliers=rules, weight_decay=0.1), schedule, params)
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, x):
        opt.update(model, nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model))

    step(model, opt, jnp.ones((3, 2)))
    after = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    np.testing.assert_array_equal(after["blocks"][1]["kernel"], params["blocks"][1]["kernel"])
    assert not np.allclose(after["blocks"][0]["kernel"], params["blocks"][0]["kernel"])


def test_eps_multipliers_are_adam_with_a_per_tensor_eps():
    params = {"w": jnp.zeros((3, 2)), "v": jnp.zeros((2,))}
    grads = {"w": jnp.full((3, 2), 1e-3), "v": jnp.full((2,), 1e-3)}
    schedule = make_schedule("constant", peak_lr=1.0, total_steps=4)
    c = cfg(name="adamw", eps=1e-3, eps_multipliers=(("^w$", 10.0),))
    updates = one_update(build_optimizer(c, schedule, params), params, grads)
    for name, eps in (("w", 1e-2), ("v", 1e-3)):  # w: eps * 10; v: unchanged
        ref = one_update(optax.scale_by_adam(b1=0.9, b2=0.95, eps=eps), params, grads)[name]
        np.testing.assert_allclose(updates[name], -np.asarray(ref), rtol=1e-5)
    assert float(updates["w"][0, 0]) == pytest.approx(-1e-3 / (1e-3 + 1e-2), rel=1e-4)
    with pytest.raises(ValueError, match="eps_multipliers apply to optimizer 'adamw' only"):
        build_optimizer(cfg(name="sgd", eps_multipliers=(("^w$", 2.0),)), schedule, params)


def test_adafactor_param_scale_makes_updates_relative():
    params = {"w": jnp.full((4, 4), 0.5)}
    grads = {"w": jnp.ones((4, 4))}
    schedule = make_schedule("constant", peak_lr=0.1, total_steps=4)
    plain = one_update(build_optimizer(cfg(name="adafactor"), schedule, params), params, grads)
    scaled_cfg = cfg(name="adafactor", adafactor_param_scale=True)
    scaled = one_update(build_optimizer(scaled_cfg, schedule, params), params, grads)
    np.testing.assert_allclose(scaled["w"], plain["w"] * 0.5, rtol=1e-5)  # x RMS(w) = 0.5
