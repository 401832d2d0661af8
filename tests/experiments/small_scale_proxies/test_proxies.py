"""Small-scale proxies (Wortsman et al. 2023): LR sensitivity, qk-layernorm's bound on
attention logits, the config's interventions, and the tiny reproduction end to end."""

from __future__ import annotations

import csv
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from configs import small_scale_proxies as proxies
from experiments.small_scale_proxies import report, run
from framework.tasks import lm
from models.transformer import Transformer, TransformerConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def test_lr_sensitivity_hand_computation():
    init = 5.5
    # Finite losses, a NaN run, an inf run, and a run that ended above the initial loss.
    losses = [3.0, 2.5, float("nan"), float("inf"), 7.0]
    # capped: 3.0, 2.5, 5.5, 5.5, 5.5; best 2.5 -> (0.5 + 0 + 3 + 3 + 3) / 5
    assert report.lr_sensitivity(losses, init) == pytest.approx(1.9)
    assert report.lr_sensitivity([2.0, 2.0, 2.0], init) == 0.0  # flat: insensitive
    assert report.lr_sensitivity([4.0, None], init) == pytest.approx(0.75)  # None = missing
    assert math.isnan(report.lr_sensitivity([float("nan"), 9.0], init))  # nothing learned
    with pytest.raises(ValueError, match="at least one"):
        report.lr_sensitivity([], init)


def _train_max_logits(qk_norm: bool, lr: float = 0.3, steps: int = 40):
    cfg = TransformerConfig(
        vocab_size=64,
        d_model=64,
        num_layers=1,
        num_heads=2,
        d_ff=256,
        max_len=32,
        norm="layernorm",
        norm_bias=False,
        mlp="gelu",
        position="learned",
        tie_embeddings=False,
        qk_norm=qk_norm,
    )
    graphdef, params = nnx.split(Transformer(cfg, rngs=nnx.Rngs(0)), nnx.Param)
    warmup = optax.linear_schedule(0.0, lr, 5)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(warmup, b2=0.95))
    toks = jax.random.randint(jax.random.key(1), (8, 33), 0, 64)

    def loss_fn(p):
        logits, probes = nnx.merge(graphdef, p)(toks[:, :-1], return_probes=True)
        return lm.cross_entropy_loss(logits, toks[:, 1:])[0], probes["attn_logit_max"][0]

    @jax.jit
    def step(p, o):
        (_, logit), g = jax.value_and_grad(loss_fn, has_aux=True)(p)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o, logit

    opt, history = tx.init(params), []
    for _ in range(steps):
        params, opt, logit = step(params, opt)
        history.append(float(logit))
    return history, params


def test_qk_layernorm_bounds_attention_logits_where_baseline_grows():
    base, _ = _train_max_logits(qk_norm=False)
    qk, params = _train_max_logits(qk_norm=True)
    assert base[0] < 1.0 and qk[0] < 10.0  # both start small
    assert base[-1] > 1000.0  # the baseline's logits grow at lr 0.3 ...
    assert base[-1] > 100 * qk[-1]  # ... qk-layernorm's do not
    # LayerNorm without bias makes |q| <= sqrt(H) max|gamma_q| (same for k), so every
    # logit q.k/sqrt(H) <= sqrt(H) max|gamma_q| max|gamma_k|.
    attn = params["blocks"][0]["attn"]
    gq = float(jnp.abs(attn["q_norm"]["scale"]).max())
    gk = float(jnp.abs(attn["k_norm"]["scale"]).max())
    assert max(qk) <= math.sqrt(32) * gq * gk * (1 + 1e-5)


def test_interventions_set_what_they_name():
    get = lambda i, lr=0.1: proxies.get_config(f"size=s,intervention={i},lr={lr}")
    base = get("baseline")
    assert (base.model.qk_norm, base.loss.z_loss, base.model.use_bias) == (False, 0.0, False)
    assert (base.model.norm, base.model.norm_bias, base.model.tie_embeddings) == (
        "layernorm",
        False,
        False,
    )
    assert base.optimizer.weight_decay_mode == "decoupled"
    assert (base.optimizer.b1, base.optimizer.b2, base.optimizer.eps) == (0.9, 0.95, 1e-8)
    assert base.schedule.warmup_steps == 10 and base.train.total_steps == 200
    np.testing.assert_allclose(base.schedule.final_lr_fraction * 0.1, proxies.MIN_LR)
    assert get("qk_layernorm").model.qk_norm and get("z_loss").loss.z_loss == 1e-4
    both = get("qk_layernorm+z_loss")
    assert both.model.qk_norm and both.loss.z_loss == 1e-4
    assert get("long_warmup").schedule.warmup_steps == 50
    ind = get("independent_wd").optimizer
    assert (ind.weight_decay_mode, ind.weight_decay) == ("independent", 1e-4)
    mup = get("muparam").optimizer.lr_multipliers
    assert mup == ((proxies.HIDDEN_MATRICES, 64 / 128),)
    points = proxies.get_sweep()
    assert len(points) == 4 * 6 * 7
    lrs = sorted({p["arg:lr"] for p in points})
    np.testing.assert_allclose(np.diff(np.log10(lrs)), 0.5, atol=0.025)  # ~x sqrt(10) steps
    assert (lrs[0], lrs[-1]) == (3e-4, 3e-1)
    with pytest.raises(ValueError, match="intervention='qk' is unknown"):
        proxies.get_config("intervention=qk")


@pytest.mark.slow
def test_tiny_reproduction_writes_table_and_figures(tmp_path):
    """The tiny variant end to end: 4 runs (2 interventions x 2 LRs) inline, the report."""
    workdir = tmp_path / "proxies"
    assert run.main([f"--workdir={workdir}", "--variant=tiny", "--inline"]) == 0
    out = workdir / "report"
    for name in report.FIGURES:
        assert (out / name).stat().st_size > 10_000, name
    with open(out / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 1 * 2 * 2
    assert all(r["status"] in ("done", "diverged") for r in runs)
    init = [float(r["init_loss"]) for r in runs]
    np.testing.assert_allclose(init, math.log(259), atol=0.1)  # near-uniform at init
    text = (out / "report.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("| t")]
    assert len(table) == 3  # one size, in the sensitivity, high-LR gap and best-loss tables
    cells = table[0].split("|")[3:-1]
    assert len(cells) == 2 and all(0.0 <= float(c) < 3.0 for c in cells)
    # The high-LR baseline's attention logits grow; qk-layernorm's stay small.
    assert "attention-logit growth at high LR without qk-layernorm" in text
    assert "(**yes**" in text.split("attention-logit growth")[1].splitlines()[0]
