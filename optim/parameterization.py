"""abc-parameterizations and their per-layer learning-rate exponents (Everett et al.,
ICML 2024, "Scaling Exponents Across Parameterizations and Optimizers").

Every dense or embedding layer l has a layer type (embedding, hidden, readout) and
width exponents (a_l, b_l, c_l): with n the width, its effective weight is
n^-a_l * w_l, the trainable w_l is initialized with std n^-b_l, and its learning
rate is eta * C_l * n^-c_l. A parameterization is data: the (a, b) of each layer
type (PARAMETERIZATIONS; users pass their own dict of the same shape).

`lr_exponents` computes c from the paper's stability and non-triviality
conditions. `activation_change_exponents` is the condition system itself. Write
r_l for the exponent of the change of layer l's output since init (Theta(n^-r_l)).
The layer's output change has three terms, each with an alignment exponent:
input x dW (alpha), dz x W0 (omega) and dz x dW (u). A product over a fan-in n
gains n^alignment: 1/2 for independent factors (no alignment), 1 for fully aligned
ones. With rho the exponent of the readout's effective weight entries,
rho = min(a_r + b_r, 2 a_r + c_r) for SGD, and the update exponent of layer l's
effective weight being
    Adam:       a_l + c_l                  (entries of the update are Theta(lr))
    Adafactor:  a_l + b_l + c_l            (updates relative to the parameter RMS)
    SGD:        2 a_l + c_l + rho          (embedding, hidden); 2 a_r + c_r (readout)
the conditions are:
    r_emb     = update exponent                         (fan-in is the vocabulary: fixed)
    r_hidden  = min(upd - alpha, upd + r_prev - u, a + b + r_prev - omega)
    r_readout = min(upd - alpha, upd + r_prev - u, a + b + r_prev - omega)
stable: every r_l >= 0 (and, for Adafactor, c_l >= 0: a relative update that grows
with n compounds every step); non-trivial: r_readout = 0. `lr_exponents` returns
the smallest c (the largest learning rates) meeting them, solved layer by layer
with r = 0 (maximal updates everywhere). For SGD the readout is solved first
because the other layers' gradients scale with it (rho).

Conventions, checked against the published rows listed in
experiments/scaling_exponents/README.md: full alignment is alpha = u = 1,
omega = 1/2; no alignment is alpha = omega = u = 1/2 (W0 is independent of the
data, so omega = 1/2 in both).

    python -m optim.parameterization        # prints the c table
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np

LAYER_TYPES = ("embedding", "hidden", "readout")
OPTIMIZERS = ("sgd", "adam", "adafactor")

# (a, b) per layer type: parameter multiplier n^-a, init std n^-b.
PARAMETERIZATIONS: dict[str, dict[str, tuple[float, float]]] = {
    "standard": {"embedding": (0.0, 0.0), "hidden": (0.0, 0.5), "readout": (0.0, 0.5)},
    "ntk": {"embedding": (0.0, 0.0), "hidden": (0.5, 0.0), "readout": (0.5, 0.0)},
    "mup": {"embedding": (-0.5, 0.5), "hidden": (0.0, 0.5), "readout": (0.5, 0.5)},
    "mean_field": {"embedding": (0.0, 0.0), "hidden": (0.5, 0.0), "readout": (1.0, 0.0)},
}
# Alignment exponents (alpha, omega, u) of the hidden and readout layers.
ALIGNMENTS: dict[str, tuple[float, float, float]] = {
    "full": (1.0, 0.5, 1.0),
    "none": (0.5, 0.5, 0.5),
}

Param = Mapping[str, tuple[float, float]]
Alignment = tuple[float, float, float] | Mapping[str, tuple[float, float, float]]


def get_parameterization(param: str | Param) -> dict[str, tuple[float, float]]:
    """A named parameterization's (a, b) per layer type, or a user's dict, validated.

    Activations must be Theta(1) at init (a + b = 0 for the embedding, 1/2 for
    hidden layers) and logits at most Theta(1) (a + b >= 1/2 for the readout)."""
    if isinstance(param, str):
        if param not in PARAMETERIZATIONS:
            raise ValueError(
                f"Unknown parameterization {param!r}; choose one of "
                f"{', '.join(PARAMETERIZATIONS)} or give {{layer type: (a, b)}}."
            )
        param = PARAMETERIZATIONS[param]
    if set(param) != set(LAYER_TYPES):
        raise ValueError(
            f"A parameterization gives (a, b) for exactly {LAYER_TYPES}; got {sorted(param)}."
        )
    out = {k: (float(param[k][0]), float(param[k][1])) for k in LAYER_TYPES}
    (ae, be), (ah, bh), (ar, br) = (out[k] for k in LAYER_TYPES)
    if not (math.isclose(ae + be, 0.0, abs_tol=1e-12) and math.isclose(ah + bh, 0.5)):
        raise ValueError(
            f"Parameterization {out} is unstable at init: it needs a + b = 0 for the "
            "embedding and a + b = 1/2 for hidden layers."
        )
    if ar + br < 0.5 - 1e-12:
        raise ValueError(f"Parameterization {out}: readout a + b must be >= 1/2 (logits O(1)).")
    return out


def _alignment(alignment: str | Alignment, layer: str) -> tuple[float, float, float]:
    if isinstance(alignment, str):
        if alignment not in ALIGNMENTS:
            raise ValueError(
                f"Unknown alignment {alignment!r}; choose one of {', '.join(ALIGNMENTS)} "
                "or give (alpha, omega, u)."
            )
        return ALIGNMENTS[alignment]
    if isinstance(alignment, Mapping):
        return tuple(float(x) for x in alignment[layer])  # type: ignore[return-value]
    return tuple(float(x) for x in alignment)  # type: ignore[return-value]


def _check_optimizer(optimizer: str) -> None:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}; choose one of {OPTIMIZERS}.")


def _update_exponents(
    p: Mapping[str, tuple[float, float]], c: Mapping[str, float], optimizer: str
) -> dict[str, float]:
    """Exponent of the entries of each layer's effective-weight update n^-a dw."""
    out = {}
    ar, br = p["readout"]
    rho = min(ar + br, 2 * ar + c["readout"])  # the readout's effective weight entries
    for layer in LAYER_TYPES:
        a, b = p[layer]
        if optimizer == "adam":
            out[layer] = a + c[layer]
        elif optimizer == "adafactor":
            out[layer] = a + b + c[layer]
        elif layer == "readout":
            out[layer] = 2 * a + c[layer]
        else:
            out[layer] = 2 * a + c[layer] + rho
    return out


def activation_change_exponents(
    param: str | Param,
    c: Mapping[str, float],
    optimizer: str,
    alignment: str | Alignment = "full",
) -> dict[str, float]:
    """r per layer type: each layer's output change is Theta(n^-r) (module docstring).

    Stable when every r >= 0; non-trivial when r['readout'] == 0."""
    _check_optimizer(optimizer)
    p = get_parameterization(param)
    upd = _update_exponents(p, c, optimizer)
    r = {"embedding": upd["embedding"]}
    prev = r["embedding"]
    for layer in ("hidden", "readout"):
        alpha, omega, u = _alignment(alignment, layer)
        a, b = p[layer]
        r[layer] = min(upd[layer] - alpha, upd[layer] + prev - u, a + b + prev - omega)
        prev = r[layer]
    return r


def is_stable(
    param: str | Param, c: Mapping[str, float], optimizer: str, alignment: str | Alignment = "full"
) -> bool:
    """Whether (a, b, c) is stable under `optimizer` and `alignment`: every r >= 0 and,
    for Adafactor, every c >= 0."""
    r = activation_change_exponents(param, c, optimizer, alignment)
    relative_ok = optimizer != "adafactor" or all(c[k] >= -1e-12 for k in LAYER_TYPES)
    return all(v >= -1e-12 for v in r.values()) and relative_ok


def is_nontrivial(
    param: str | Param, c: Mapping[str, float], optimizer: str, alignment: str | Alignment = "full"
) -> bool:
    """Whether the logits move by Theta(1) (r['readout'] == 0)."""
    return abs(activation_change_exponents(param, c, optimizer, alignment)["readout"]) < 1e-12


def lr_exponents(
    param: str | Param, optimizer: str, alignment: str | Alignment = "full"
) -> dict[str, float]:
    """The per-layer LR exponents c (lr_l = eta C_l n^-c_l): the smallest c (largest
    learning rates) for which training is stable, solved layer by layer for maximal
    updates (r = 0). Check `is_nontrivial` for the rare case where a constraint (e.g.
    Adafactor's c >= 0) leaves the logits' change vanishing with width."""
    _check_optimizer(optimizer)
    p = get_parameterization(param)
    need = {"embedding": 0.0}  # the update exponent that makes r = 0 (with r_prev = 0)
    for layer in ("hidden", "readout"):
        alpha, _, u = _alignment(alignment, layer)
        need[layer] = max(alpha, u)
    c: dict[str, float] = {}
    if optimizer == "adam":
        c = {k: need[k] - p[k][0] for k in LAYER_TYPES}
    elif optimizer == "adafactor":
        c = {k: max(need[k] - p[k][0] - p[k][1], 0.0) for k in LAYER_TYPES}
    else:  # SGD: the readout first; the others' gradients scale with it.
        ar, br = p["readout"]
        c["readout"] = need["readout"] - 2 * ar
        rho = min(ar + br, 2 * ar + c["readout"])
        for k in ("embedding", "hidden"):
            c[k] = need[k] - 2 * p[k][0] - rho
    c = {k: c[k] + 0.0 for k in LAYER_TYPES}  # -0.0 -> 0.0
    if not is_stable(p, c, optimizer, alignment):
        r = activation_change_exponents(p, c, optimizer, alignment)
        raise ValueError(
            f"No stable learning rates for {p} under {optimizer} with alignment "
            f"{alignment}: the init-weight term alone gives r = {r}."
        )
    return c


def gradient_exponents(param: str | Param) -> dict[str, float]:
    """Exponent of each layer's gradient entries (w.r.t. the trainable w) at init.

    Readout: a_r (its input is Theta(1)); embedding and hidden: a_l + a_r + b_r (the
    backward signal passes through the readout's weights). Adam's eps_l should scale
    as n^-g_l so that it keeps its size relative to sqrt(v) at every width."""
    p = get_parameterization(param)
    ar, br = p["readout"]
    return {k: (ar if k == "readout" else p[k][0] + ar + br) for k in LAYER_TYPES}


# Parameter-path regexes of each layer type in models/transformer.py (norm scales are
# in no type: multiplier 1, the base learning rate and eps).
TRANSFORMER_LAYERS = {
    "embedding": r"^(embed|pos_embed)/embedding$",
    "hidden": r"^blocks/.*(q_proj|k_proj|v_proj|o_proj|gate|up|down)/kernel$",
    "readout": r"^unembed/kernel$",
}


# How the LR exponent c moves under the shift (a, b) -> (a + theta, b - theta) that
# leaves training unchanged: c -> c - SHIFT[optimizer] * theta (Everett et al., Sec. 2).
SHIFT = {"sgd": 2.0, "adam": 1.0, "adafactor": 0.0}


def base_width_constants(param: str | Param, optimizer: str, base_width: int) -> dict[str, float]:
    """LR constants C_l = base_width^(k a_l), k = SHIFT[optimizer]: with them every layer
    trains at the base width exactly as its a = 0 equivalent (same b + a) does with the
    base learning rate, so one base-LR grid fits every parameterization and they differ
    only in how their learning rates and multipliers scale away from the base width.

    By the shift rule, (a, b, c) with lr eta C (n/B)^-c trains like (0, a + b, c + k a)
    with lr eta C B^-(k a) (n/B)^-(c + k a); at n = B that is eta when C = B^(k a)."""
    _check_optimizer(optimizer)
    p = get_parameterization(param)
    return {k: float(base_width ** (SHIFT[optimizer] * p[k][0])) for k in LAYER_TYPES}


def transformer_settings(
    param: str | Param,
    optimizer: str,
    alignment: str | Alignment = "full",
    *,
    width: int,
    base_width: int,
    lr_constants: Mapping[str, float] | None = None,
    init_constants: Mapping[str, float] | None = None,
    scale_eps: bool = False,
    per_layer: bool = True,
) -> dict[str, Any]:
    """Config values that realize `param` at `width` for models/transformer.py.

    Returns {'model': {<type>_multiplier: width^-a, <type>_init_std: C_init width^-b},
    'lr_multipliers': ((regex, C_l (width/base_width)^-c_l), ...),
    'eps_multipliers': ((regex, (width/base_width)^-g_l), ...) if scale_eps else (),
    'c': the exponents used}:
    the parameter multiplier and init std use the absolute width, as in the paper; the
    learning rate is relative to `base_width`, where the constants C_l are tuned; eps
    follows each layer's gradient scale (gradient_exponents), so eps_l / sqrt(v_l) does
    not drift with width. `per_layer=False` uses c = 0 for every layer (one global LR,
    not scaled with width: the usual practice the per-layer exponents are compared
    with). The optimizer name is the solver's ('sgd', 'adam', 'adafactor')."""
    p = get_parameterization(param)
    c = lr_exponents(p, optimizer, alignment)
    if not per_layer:
        c = {k: 0.0 for k in LAYER_TYPES}
    g = gradient_exponents(p)
    lr_c = {k: 1.0 for k in LAYER_TYPES} | dict(lr_constants or {})
    init_c = {k: 1.0 for k in LAYER_TYPES} | dict(init_constants or {})
    rel = width / base_width
    model = {}
    for k in LAYER_TYPES:
        a, b = p[k]
        model[f"{k}_multiplier"] = float(width ** (-a))
        model[f"{k}_init_std"] = float(init_c[k] * width ** (-b))
    lrs = tuple((TRANSFORMER_LAYERS[k], float(lr_c[k] * rel ** (-c[k]))) for k in LAYER_TYPES)
    eps = tuple((TRANSFORMER_LAYERS[k], float(rel ** (-g[k]))) for k in LAYER_TYPES)
    return {
        "model": model,
        "lr_multipliers": lrs,
        "eps_multipliers": eps if scale_eps else (),
        "c": c,
    }


def log_alignment_ratio(a_mk: Any, b_kn: Any) -> float:
    """log_K(RMS(A B) / (RMS(A) RMS(B))) with K the contracted (fan-in) size.

    About 1/2 for independent random A and B and 1 for rank-one aligned ones."""
    a = np.asarray(a_mk, np.float64)
    b = np.asarray(b_kn, np.float64)
    k = a.shape[-1]
    if b.shape[0] != k or k < 2:
        raise ValueError(
            f"log_alignment_ratio needs A [m, K] and B [K, n], K >= 2; got {a.shape}, {b.shape}."
        )
    rms = lambda x: np.sqrt(np.mean(np.square(x)))
    return float(np.log(rms(a @ b) / (rms(a) * rms(b))) / np.log(k))


def _frac(x: float) -> str:
    return str(Fraction(x).limit_denominator(8))


def table(optimizers=OPTIMIZERS, alignments=tuple(ALIGNMENTS)) -> str:
    """The c table (embedding, hidden, readout) for every parameterization, as markdown."""
    lines = [
        "(* the logits' change vanishes with width: no stable c keeps it Theta(1))",
        "",
        "| optimizer | alignment | " + " | ".join(PARAMETERIZATIONS) + " |",
        "|---|---|" + "---|" * len(PARAMETERIZATIONS),
    ]
    for opt in optimizers:
        for align in alignments:
            cells = []
            for name in PARAMETERIZATIONS:
                c = lr_exponents(name, opt, align)
                mark = "" if is_nontrivial(name, c, opt, align) else " *"
                cells.append("(" + ", ".join(_frac(c[k]) for k in LAYER_TYPES) + ")" + mark)
            lines.append(f"| {opt} | {align} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print("Per-layer learning-rate exponents c (embedding, hidden, readout); lr_l ∝ n^-c_l\n")
    print(table())
    print("\nParameterizations (a, b) per layer type:")
    for name, p in PARAMETERIZATIONS.items():
        print(f"  {name:<11}" + "  ".join(f"{k} {p[k]}" for k in LAYER_TYPES))
