"""configs/scaling_exponents.py: the parameterization reaches the model and optimizer,
bad arguments are one-line errors, and a tiny run trains with the alignment probes."""

import pytest

from configs import scaling_exponents as se
from experiments.scaling_exponents import grid
from framework import config as config_lib, trainer
from optim import parameterization as pz


def test_mup_adam_settings_reach_model_and_optimizer():
    c = se.get_config("width=256,param=mup,optimizer=adam,lr=0.01,eps_scaled=true")
    assert (c.model.d_model, c.model.num_heads, c.model.d_ff) == (256, 16, 1024)
    assert c.model.embedding_multiplier == 16.0 and c.model.readout_multiplier == 1 / 16
    assert c.model.hidden_init_std == 1 / 16 and not c.model.tie_embeddings
    lrs = dict(c.optimizer.lr_multipliers)
    # muP + Adam, full alignment: c = (1/2, 1, 1/2) at n / 64 = 4, times the constants
    # C_l = 64^a_l = (1/8, 1, 8) that make width 64 train like its a = 0 equivalent.
    emb, hidden, readout = (lrs[pz.TRANSFORMER_LAYERS[k]] for k in pz.LAYER_TYPES)
    assert (emb, hidden, readout) == pytest.approx((1 / 16, 1 / 4, 4.0))
    one = dict(se.get_config("width=256,param=mup,constants=one").optimizer.lr_multipliers)
    assert sorted(one.values()) == pytest.approx([0.25, 0.5, 0.5])
    assert sorted(dict(c.optimizer.eps_multipliers).values()) == pytest.approx([0.25, 0.5, 0.5])
    assert c.optimizer.name == "adamw" and c.optimizer.grad_clip_norm == 0.0
    assert c.evals.align.kind == "experiments.scaling_exponents.alignment"
    # At the base width every multiplier is 1: per-layer LRs differ only away from it.
    base = se.get_config("width=64,param=standard,optimizer=sgd")
    assert all(m == pytest.approx(1.0) for _, m in base.optimizer.lr_multipliers)


@pytest.mark.parametrize(
    "arg,match",
    [
        ("optimizer=lion", "optimizer='lion' is unknown"),
        ("width=40", "multiple of the head size 16"),
        ("param=mu", "Unknown parameterization 'mu'"),
        ("optimizer=sgd,eps_scaled=true", "eps_scaled=true applies to optimizer=adam only"),
        ("study=mupp", "study='mupp' is unknown"),
        ("study=mup,param=ntk", "param='ntk' contradicts study='mup'"),
        ("lr_scaling=layerwise", "lr_scaling='layerwise' is unknown"),
        ("constants=tuned", "constants='tuned' is unknown"),
    ],
)
def test_bad_arguments_are_config_errors(arg, match):
    with pytest.raises(config_lib.ConfigError, match=match):
        se.get_config(arg)


def test_tiny_adam_atan2_run_learns_and_logs_alignment(tmp_path):
    c = se.get_config("variant=tiny,width=32,param=mup,optimizer=adam_atan2,lr=0.01,steps=8")
    result = trainer.train(c, str(tmp_path))
    assert result["eval"]["val"]["loss"] < result["first_loss"] - 0.1
    assert 0.3 < result["eval"]["align"]["alpha/hidden"] < 1.2


def test_base_width_constants_make_every_parameterization_equal_at_the_base_width():
    # At n = base every layer's effective update equals the a = 0 model's: for Adam the
    # LR multiplier times the parameter multiplier is 1 for every layer type.
    for param in ("standard", "ntk", "mup", "mean_field"):
        c = se.get_config(f"width=64,param={param}")
        lrs = dict(c.optimizer.lr_multipliers)
        for k in pz.LAYER_TYPES:
            product = lrs[pz.TRANSFORMER_LAYERS[k]] * c.model[f"{k}_multiplier"]
            assert product == pytest.approx(1.0), (param, k)
    # SGD's gradient carries the multiplier too: C_l = base^(2 a_l).
    sgd = pz.base_width_constants("mean_field", "sgd", 64)
    assert (sgd["hidden"], sgd["readout"]) == pytest.approx((64.0, 64.0**2))
    assert pz.base_width_constants("mup", "adafactor", 64) == {
        "embedding": 1.0,
        "hidden": 1.0,
        "readout": 1.0,
    }


def test_studies_and_global_lr_scaling():
    c = se.get_config("study=standard_global,width=256")
    assert all(m == pytest.approx(1.0) for _, m in c.optimizer.lr_multipliers)
    per_layer = dict(se.get_config("study=standard,width=256").optimizer.lr_multipliers)
    # standard + Adam, full alignment: c = (0, 1, 1) -> (1, 1/4, 1/4) at n / 64 = 4.
    assert sorted(per_layer.values()) == pytest.approx([0.25, 0.25, 1.0])
    fixed = se.get_config("study=eps_fixed,width=256")
    assert fixed.optimizer.eps == grid.EPS_DEMO and fixed.optimizer.eps_multipliers == ()
    scaled = se.get_config("study=eps_scaled,width=256").optimizer.eps_multipliers
    # mean-field gradient exponents g = (1, 3/2, 1): eps_l = eps * 4^-g.
    assert sorted(dict(scaled).values()) == pytest.approx([4**-1.5, 4**-1.0, 4**-1.0])
    assert se.get_config("study=atan2").optimizer.name == "adam_atan2"
    # The sweep: every study x width x LR of the variant, each a valid config.
    points = se.get_sweep("variant=tiny")
    assert len(points) == len(grid.VARIANT_STUDIES["tiny"]) * 2 * 2
    for p in points:
        arg = ",".join(f"{k[4:]}={v}" for k, v in p.items())
        se.get_config(f"variant=tiny,{arg}")
    assert len(se.get_sweep()) == len(grid.STUDIES) * 5 * 8


def test_paper_variant_has_the_published_size():
    """Everett et al.: depth 8, widths up to 16384, 26.8B parameters at the largest."""
    from models import transformer

    c = se.get_config("variant=paper,width=16384,study=mup")
    assert (c.model.num_layers, c.model.d_model // c.model.num_heads) == (8, 128)
    assert (c.train.batch_size, c.data.seq_len, c.model.vocab_size) == (256, 512, 32_000)
    total = transformer.param_count(transformer.TransformerConfig(**c.model.to_dict()))["total"]
    assert round(total / 1e9, 1) == 26.8
    assert len(se.get_sweep("variant=paper")) == len(grid.STUDIES) * 8 * 12
