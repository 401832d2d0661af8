"""abc-parameterizations (optim/parameterization.py): the LR-exponent solver against
published rows, its equivalence rules, stability/maximality, and the alignment ratio."""

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from optim import parameterization as pz
from tests.conftest import LEGACY_EMITTERS, ROOT
from tests.optim import equivalence_check

# (embedding, hidden, readout) exponents c, lr_l ~ n^-c_l. Adam rows and the SGD full-alignment
# rows of standard and muP as published (see experiments/scaling_exponents/README.md).
PUBLISHED = {
    ("adam", "full", "standard"): (0, 1, 1),
    ("adam", "full", "ntk"): (0, 0.5, 0.5),
    ("adam", "full", "mup"): (0.5, 1, 0.5),
    ("adam", "full", "mean_field"): (0, 0.5, 0),
    ("adam", "none", "standard"): (0, 0.5, 0.5),
    ("adam", "none", "ntk"): (0, 0, 0),
    ("adam", "none", "mup"): (0.5, 0.5, 0),
    ("adam", "none", "mean_field"): (0, 0, -0.5),
    ("sgd", "full", "standard"): (-0.5, 0.5, 1),
    ("sgd", "full", "mup"): (0, 0, 0),
    ("adafactor", "full", "mup"): (0, 0.5, 0),
    ("adafactor", "none", "mup"): (0, 0, 0),
}
SHIFT = {"sgd": 2.0, "adam": 1.0, "adafactor": 0.0}  # c -> c - SHIFT * theta


@pytest.mark.parametrize("key", PUBLISHED, ids=["-".join(k) for k in PUBLISHED])
def test_solver_matches_published_rows(key):
    optimizer, alignment, name = key
    c = pz.lr_exponents(name, optimizer, alignment)
    assert tuple(c[k] for k in pz.LAYER_TYPES) == PUBLISHED[key]


def test_readout_sums_split_the_two_equivalence_classes():
    sums = {n: sum(p["readout"]) for n, p in pz.PARAMETERIZATIONS.items()}
    assert sums == {"standard": 0.5, "ntk": 0.5, "mup": 1.0, "mean_field": 1.0}


@pytest.mark.parametrize("optimizer", pz.OPTIMIZERS)
@pytest.mark.parametrize("alignment", ["full", "none", (0.8, 0.5, 0.7)])
def test_equivalence_shift_rules(optimizer, alignment):
    # (a + theta, b - theta) per layer moves c by -2 theta (SGD), -theta (Adam), 0 (Adafactor).
    rng = np.random.default_rng(0)
    for name in pz.PARAMETERIZATIONS:
        base = pz.get_parameterization(name)
        c0 = pz.lr_exponents(base, optimizer, alignment)
        for _ in range(5):
            theta = {k: float(rng.choice([-0.5, -0.25, 0.25, 0.5, 1.0])) for k in pz.LAYER_TYPES}
            shifted = {k: (base[k][0] + theta[k], base[k][1] - theta[k]) for k in pz.LAYER_TYPES}
            c1 = pz.lr_exponents(shifted, optimizer, alignment)
            for k in pz.LAYER_TYPES:
                assert c1[k] == pytest.approx(c0[k] - SHIFT[optimizer] * theta[k]), (name, k)
            g0, g1 = pz.gradient_exponents(base), pz.gradient_exponents(shifted)
            for k in pz.LAYER_TYPES:  # gradients w.r.t. w shift by theta_l
                assert g1[k] == pytest.approx(g0[k] + theta[k])


@pytest.mark.parametrize(
    "name,optimizer,alignment",
    list(itertools.product(pz.PARAMETERIZATIONS, pz.OPTIMIZERS, ["full", "none"])),
)
def test_solution_is_stable_and_maximal(name, optimizer, alignment):
    c = pz.lr_exponents(name, optimizer, alignment)
    assert pz.is_stable(name, c, optimizer, alignment)
    r = pz.activation_change_exponents(name, c, optimizer, alignment)
    assert all(v >= 0 for v in r.values())
    for layer in pz.LAYER_TYPES:  # any larger learning rate in any layer is unstable
        bigger = dict(c, **{layer: c[layer] - 0.25})
        assert not pz.is_stable(name, bigger, optimizer, alignment), layer
    # Non-trivial (logits move by Theta(1)) except where Adafactor's c >= 0 binds.
    trivial = optimizer == "adafactor" and alignment == "none" and name in ("mup", "mean_field")
    assert pz.is_nontrivial(name, c, optimizer, alignment) != trivial


def test_user_defined_parameterization_and_errors():
    mine = {"embedding": (0.25, -0.25), "hidden": (0.25, 0.25), "readout": (0.25, 0.5)}
    c = pz.lr_exponents(mine, "adam", "full")
    assert c == {"embedding": -0.25, "hidden": 0.75, "readout": 0.75}
    with pytest.raises(ValueError, match="unstable at init"):
        pz.get_parameterization({"embedding": (0, 0), "hidden": (0, 0), "readout": (0, 0.5)})
    with pytest.raises(ValueError, match="readout a \\+ b must be >= 1/2"):
        pz.get_parameterization({"embedding": (0, 0), "hidden": (0, 0.5), "readout": (0, 0)})
    with pytest.raises(ValueError, match="Unknown parameterization 'mu'"):
        pz.lr_exponents("mu", "adam")
    with pytest.raises(ValueError, match="Unknown alignment"):
        pz.lr_exponents("mup", "adam", "partial")


def test_table_command_lists_every_cell():
    text = pz.table()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 3 * 2  # header + optimizers x alignments
    assert "| adam | full | (0, 1, 1) | (0, 1/2, 1/2) | (1/2, 1, 1/2) | (0, 1/2, 0) |" in text


def test_log_alignment_ratio():
    rng = np.random.default_rng(0)
    k = 4096
    a, b = rng.normal(size=(64, k)), rng.normal(size=(k, 64))
    assert pz.log_alignment_ratio(a, b) == pytest.approx(0.5, abs=0.02)
    u, v, w = rng.normal(size=(64, 1)), rng.normal(size=(1, k)), rng.normal(size=(1, 64))
    aligned = pz.log_alignment_ratio(u @ v, v.T @ w)  # rows of A parallel to columns of B
    assert aligned == pytest.approx(1.0, abs=0.02)
    with pytest.raises(ValueError, match="K >= 2"):
        pz.log_alignment_ratio(np.ones((3, 4)), np.ones((5, 2)))


def test_shift_rules_hold_exactly_in_float64_on_the_transformer():
    """equivalence_check.py: (a + theta, b - theta, c - k theta) gives the same logits and
    effective weights through three steps of SGD, Adam (eps = 0) and Adafactor."""
    script = os.path.join(os.path.dirname(__file__), "equivalence_check.py")
    # XLA's default (MLIR) emitters here: under the session's legacy emitters the Adam and
    # Adafactor cases differ by 1e-8 (SGD still by 1e-15; every float64 op alone is exact
    # to 1e-16 under both), their normalisations amplifying a different rounding order.
    flags = os.environ.get("XLA_FLAGS", "").replace(LEGACY_EMITTERS, "").strip()
    env = dict(
        os.environ, JAX_ENABLE_X64="1", PYTHONPATH=ROOT, JAX_PLATFORMS="cpu", XLA_FLAGS=flags
    )
    proc = subprocess.run(
        [sys.executable, script], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result) == {f"{o}/{p}" for o, p in equivalence_check.CASES}
    assert {o for o, _ in equivalence_check.CASES} == set(pz.OPTIMIZERS)
    for key, r in result.items():
        assert r["logits"] < 1e-12 and r["weights"] < 1e-12, (key, r)
        assert r["moved"] > 1e-3, key  # the optimizer steps did change the model


def test_transformer_settings_for_mup_adam():
    s = pz.transformer_settings("mup", "adam", "full", width=64, base_width=16, scale_eps=True)
    assert s["model"] == {
        "embedding_multiplier": 8.0,  # 64^(1/2)
        "hidden_multiplier": 1.0,
        "readout_multiplier": 0.125,
        "embedding_init_std": 0.125,  # 64^(-1/2)
        "hidden_init_std": 0.125,
        "readout_init_std": 0.125,
    }
    lrs = dict((pz.TRANSFORMER_LAYERS[k], k) for k in pz.LAYER_TYPES)
    got = {lrs[regex]: m for regex, m in s["lr_multipliers"]}
    assert got == pytest.approx({"embedding": 0.5, "hidden": 0.25, "readout": 0.5})  # 4^-c
    eps = {lrs[regex]: m for regex, m in s["eps_multipliers"]}
    assert eps == pytest.approx({"embedding": 0.5, "hidden": 0.25, "readout": 0.5})  # 4^-g
    assert pz.transformer_settings("mup", "adam", width=64, base_width=16)["eps_multipliers"] == ()
