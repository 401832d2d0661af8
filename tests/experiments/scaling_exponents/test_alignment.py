"""Alignment probes (experiments/scaling_exponents/alignment.py): the ratio, and the
evaluator in a short training run."""

import math

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import quickstart
from experiments.scaling_exponents import alignment
from framework import config as config_lib, trainer
from optim.parameterization import log_alignment_ratio


def test_log_ratio_matches_the_reference_and_is_nan_for_zero():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(32, 256)), rng.normal(size=(256, 8)) * 3.0
    got = float(alignment.log_ratio(jnp.asarray(a), jnp.asarray(b)))
    assert got == pytest.approx(log_alignment_ratio(a, b), abs=1e-5)
    assert math.isnan(float(alignment.log_ratio(jnp.asarray(a), jnp.zeros((256, 8)))))


def _config(**model):
    c = quickstart.get_config("size=tiny,steps=20")
    c.model.update(dict(tie_embeddings=False, **model))
    c.train.eval_every_steps = 0  # the evaluators run once, at the end
    with c.unlocked():
        c.evals.align = ml_collections.ConfigDict(
            dict(kind="experiments.scaling_exponents.alignment", split="val")
        )
    return c


def test_alignment_evaluator_in_training(tmp_path):
    result = trainer.train(_config(), str(tmp_path))
    m = result["eval"]["align"]
    for kind in ("hidden", "readout"):
        for term in alignment.TERMS:
            assert 0.0 < m[f"{term}/{kind}"] < 1.5, (term, kind, m[f"{term}/{kind}"])
    # Every hidden kernel of both blocks has its three terms.
    per_kernel = [k for k in m if k.startswith("alpha/blocks/")]
    assert len(per_kernel) == 2 * (4 + 3)  # q, k, v, o + gate, up, down
    # Updates are correlated with the inputs that produced them: alpha is above the
    # 1/2 of independent matrices.
    assert m["alpha/hidden"] > 0.55


def test_scanned_layers_are_refused(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="scan_layers=False"):
        trainer.Trainer(_config(scan_layers=True), str(tmp_path))
