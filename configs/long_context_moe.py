"""Gemini 1.5 at CPU scale: a byte-level LM on Python sources, dense or sparse MoE.

    python -m framework.main --config=configs/long_context_moe.py:variant=cpu,arm=moe \\
        --workdir=runs/moe_one

The experiment (`python -m experiments.long_context_moe.run`) pretrains every arm, then
trains 2-layer LMs from scratch on needle-bearing text (`stage=needle_lm`). Arguments:
  variant   tiny (tests) | cpu (default)
  arm       dense | moe | moe_nobalance | dense_params
              dense          d_ff = F
              moe            E experts of width F / k, top-k: the dense arm's active
                             FLOPs per token (plus the router), E/k times its FFN params;
                             combine weights renormalised over the k chosen experts
                             (Mixtral, GShard top-2). Unnormalised (flaxformer's default)
                             a top-2-of-8 layer starts at ~1/4 of the FFN's output scale
                             and trained 0.17 nats/byte worse than dense here (README)
              moe_nobalance  moe without the load-balancing loss (its coefficient 0)
              dense_params   d_ff = E * F / k: the moe arm's total parameter count
  stage     pretrain (default) | needle (fine-tune a pretrained run on needle examples)
            | needle_lm (a lm_layers-layer LM trained from scratch, loss on every token,
            on haystack text where half the rows hold needles, the question and the
            answer: the spec's setting, where an induction circuit can form)
  pretrain  a pretraining sweep's folder: the needle stage starts from its run of the
            same arm and seed (PRETRAIN/arm=ARM_seed=SEED, latest checkpoint)
  init      or that run given directly ('WORKDIR[:best|latest|STEP]')
  data_dir  where the corpus and the needle examples are written (default runs/data)
  haystack  a text file for the needles' haystacks ('' = the embedded English corpus)
  steps     training steps (0 = the variant's)
  arms      '' | all (get_sweep: also the parameter-matched dense arm)
The corpus is the Python standard library's sources (data/pycorpus.py), written once
to DATA_DIR/pycorpus_<mb>mb; validation is its last 5 % of documents.
"""

from framework.config import ConfigError, parse_arg
from framework.sweep import product
from framework.tasks import lm

ARMS = ("dense", "moe", "moe_nobalance", "dense_params")
STAGES = ("pretrain", "needle", "needle_lm")
VARIANTS = {
    # d_model, layers, heads, F (dense d_ff), experts E, top-k, seq_len, batch, steps, lr,
    # corpus MB, needle examples, needle-stage steps; needle_lm: layers and steps
    "tiny": dict(
        d=32, layers=2, heads=2, ff=64, experts=4, k=2, seq=128, batch=8, steps=20, lr=3e-3,
        corpus_mb=0.25, needles=64, needle_steps=20, lm_layers=2, lm_steps=20,
    ),
    "cpu": dict(
        d=128, layers=4, heads=4, ff=512, experts=8, k=2, seq=256, batch=8, steps=600,
        lr=3e-3, corpus_mb=8, needles=6000, needle_steps=400, lm_layers=2, lm_steps=3000,
    ),
}  # fmt: skip


def _arg(arg: str | None):
    a = parse_arg(
        arg, variant="cpu", arm="moe", stage="pretrain", pretrain="", init="", data_dir="runs/data",
        haystack="", steps=0, seed=0, arms="",
    )  # fmt: skip
    if a.variant not in VARIANTS:
        raise ConfigError(f"variant={a.variant!r} is unknown; choose one of {sorted(VARIANTS)}.")
    if a.arm not in ARMS:
        raise ConfigError(f"arm={a.arm!r} is unknown; choose one of {', '.join(ARMS)}.")
    if a.stage not in STAGES:
        raise ConfigError(f"stage={a.stage!r} is unknown; choose one of {', '.join(STAGES)}.")
    if a.stage == "needle" and not (a.init or a.pretrain):
        raise ConfigError("stage=needle needs pretrain=SWEEP_DIR or init=RUN to start from.")
    return a


def model_overrides(arm: str, v: dict) -> dict:
    """The model fields an arm sets (module docstring)."""
    if arm == "dense":
        return dict(d_ff=v["ff"])
    if arm == "dense_params":
        return dict(d_ff=v["experts"] * v["ff"] // v["k"])
    return dict(
        d_ff=v["ff"],
        moe_experts=v["experts"],
        moe_top_k=v["k"],
        moe_d_ff=v["ff"] // v["k"],
        moe_every=1,
        moe_renormalize=True,
    )


def needle_examples(a, v: dict) -> int:
    """How many needle examples the stage trains on (needle_lm: one a row, one epoch)."""
    return v["batch"] * (a.steps or v["lm_steps"]) if a.stage == "needle_lm" else v["needles"]


def needle_spec(a, v: dict) -> str:
    """experiments.long_context_moe.needle.prepare's spec for this variant and stage."""
    mode = ",mode=lm" if a.stage == "needle_lm" else ""
    n = needle_examples(a, v)
    return f"n={n},max_len={v['seq']},haystack={a.haystack},seed={a.seed}{mode}"


def get_config(arg: str | None = None):
    """The config of one arm (module docstring)."""
    a = _arg(arg)
    v = VARIANTS[a.variant]
    c = lm.default_config()
    c.seed = a.seed
    c.model.update(dict(d_model=v["d"], num_layers=v["layers"], num_heads=v["heads"]))
    c.model.update(dict(max_len=v["seq"], position="rope", **model_overrides(a.arm, v)))
    if a.arm == "moe_nobalance":
        c.loss.aux.moe_balance = 0.0
    steps = a.steps or {"pretrain": v["steps"], "needle": v["needle_steps"]}.get(
        a.stage, v["lm_steps"]
    )
    if a.stage == "pretrain":
        corpus = f"{a.data_dir}/pycorpus_{v['corpus_mb']}mb"
        c.data.update(dict(path=f"{corpus}/train", prepare="data.pycorpus"))
        c.data.prepare_spec = f"train_mb={v['corpus_mb']},val_mb={v['corpus_mb'] / 8}"
    else:
        prefix = "needle_lm" if a.stage == "needle_lm" else "needles"
        name = f"{prefix}_{a.variant}_n{needle_examples(a, v)}_seed{a.seed}"
        if a.stage == "needle_lm":
            c.model.num_layers = v["lm_layers"]
        else:
            c.train.init_from = a.init or f"{a.pretrain}/arm={a.arm}_seed={a.seed}:latest"
        c.data.update(dict(path=f"{a.data_dir}/{name}.jsonl", format="examples"))
        c.data.update(
            dict(prepare="experiments.long_context_moe.needle", prepare_spec=needle_spec(a, v))
        )
    c.data.seq_len = v["seq"]
    c.train.update(
        dict(
            batch_size=v["batch"],
            total_steps=steps,
            log_every_steps=max(1, steps // 20),
            eval_every_steps=max(1, steps // (2 if a.variant == "tiny" else 5)),
            checkpoint_every_steps=steps if a.variant == "tiny" else max(1, steps // 5),
            plot_losses=a.variant != "tiny",
        )
    )
    c.evals.val.num_batches = 4 if a.variant == "tiny" else 16
    c.optimizer.lr = v["lr"] / 3 if a.stage == "needle" else v["lr"]
    c.optimizer.weight_decay = 0.1
    c.schedule.warmup_steps = max(1, steps // 20)
    c.schedule.final_lr_fraction = 0.1
    return c


def get_sweep(arg: str | None = None) -> list[dict]:
    """stage=pretrain: dense and moe at seeds 0 and 1 (M1), moe_nobalance at seed 0, and
    with arms=all dense_params at seed 0 (2.75x the FLOPs of the others: about 12 minutes
    more on 2 cores); tiny: dense and moe at seed 0. stage=needle or needle_lm: dense
    and moe at seed 0 (tiny: moe)."""
    a = _arg(arg)
    if a.variant == "tiny" and a.stage != "pretrain":
        return product({"arg:arm": ["moe"], "seed": [0]})
    if a.variant == "tiny" or a.stage != "pretrain":
        return product({"arg:arm": ["dense", "moe"], "seed": [0]})
    single = ["moe_nobalance", "dense_params"] if a.arms == "all" else ["moe_nobalance"]
    return product({"arg:arm": ["dense", "moe"], "seed": [0, 1]}) + product(
        {"arg:arm": single, "seed": [0]}
    )
