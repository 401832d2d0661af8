"""configs/scaling_exponents.py: the parameterization reaches the model and optimizer,
bad arguments are one-line errors, and a tiny run trains with the alignment probes."""

import pytest

from configs import scaling_exponents as se
from framework import config as config_lib, trainer


def test_mup_adam_settings_reach_model_and_optimizer():
    c = se.get_config("width=256,param=mup,optimizer=adam,lr=0.01,eps_scaled=true")
    assert (c.model.d_model, c.model.num_heads, c.model.d_ff) == (256, 16, 1024)
    assert c.model.embedding_multiplier == 16.0 and c.model.readout_multiplier == 1 / 16
    assert c.model.hidden_init_std == 1 / 16 and not c.model.tie_embeddings
    lrs = dict(c.optimizer.lr_multipliers)
    # muP + Adam, full alignment: c = (1/2, 1, 1/2) at n / 64 = 4.
    assert sorted(lrs.values()) == pytest.approx([0.25, 0.5, 0.5])
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
