"""PMformer (partial-multivariate forecasting) and its baselines on one task.

    python -m framework.main --config=configs/pmformer.py --workdir=runs/pmformer_synth

The whole reproduction (sweeps, evaluations, report) is
`python -m experiments.pmformer.run`; see experiments/pmformer/README.md.

Arguments (`--config=configs/pmformer.py:model=dlinear,horizon=192`):
  model     pmformer (default) | patch (PMformer with S = 1) | full (S = D) | dlinear
  S         subset size for model=pmformer (default 3; clamped to D)
  horizon   forecast length H (default 96)
  lookback  L (default 0 = per size: tiny 48, small 336, synthetic 96, paper 512)
  size      tiny (tests) | small (default, CPU, ETTh1) | synthetic (CPU, the synthetic
            series: lookback 96, lr 1e-3, dropout 0.1, no RevIN) | paper (the
            published scale)
  steps     training steps (default 0 = per size; early stopping may end a run sooner)
  evals     both (default: validation and test at every evaluation) | val (validation
            only, cheaper; sweeps use it: experiments.pmformer.evaluate then tests
            the best-validation parameters once) | none (no evaluation while training,
            for sizes without early stopping: the tiny test's pipeline evaluates after)
  synth     the synthetic series when no data.path is given: grouped (default; D = 8) |
            sparse (D = 16: 2 groups of 4, 8 distractors, 1,500 rows)
  sweep     for get_sweep: S | horizon
  features  D used to list S = 1..D in the S sweep (default 0 = the synthetic D)
Every size but tiny evaluates on validation every `eval_every` steps, keeps the
best-validation parameters (train.best_metric=val/mse) and stops after `patience`
evaluations without improvement; result.json['best']['eval'] holds the test metrics
of those parameters. The N_I and feature-drop evaluations run once per finished run,
on its best parameters: `python -m experiments.pmformer.evaluate --runs=DIR`.
"""

from framework.config import ConfigError, parse_arg
from framework.sweep import product

# eval_every: steps between validations; patience: validations without improvement
# before early stopping (0 with eval_every 0: train to the end, no best checkpoint).
SIZES = {
    "tiny": dict(
        segment_len=8,
        d_model=16,
        num_heads=2,
        num_layers=1,
        d_ff=32,
        dropout=0.0,
        batch=16,
        steps=20,
        lr=3e-3,
        lookback=48,
        eval_every=0,
        patience=0,
        revin=True,
    ),
    "small": dict(
        segment_len=16,
        d_model=32,
        num_heads=4,
        num_layers=2,
        d_ff=64,
        dropout=0.3,
        batch=32,
        steps=1500,
        lr=3e-4,
        lookback=336,
        eval_every=100,
        patience=3,
        revin=True,
    ),
    # PatchTST's ETTh1 training setting (patch 16, 3 layers, 4 heads, d_ff 128, dropout
    # 0.3, lr 1e-4, batch 128; its d_model there is 16), lookback 512 as in the
    # published PatchTST/64 row.
    "paper": dict(
        segment_len=16,
        d_model=64,
        num_heads=4,
        num_layers=3,
        d_ff=128,
        dropout=0.3,
        batch=128,
        steps=20000,
        lr=1e-4,
        lookback=512,
        eval_every=500,
        patience=10,
        revin=True,
    ),
}
# The synthetic series are stationary, so RevIN only removes information (each
# window's level): on the grouped series validation MSE is 0.82-0.84 without it and
# 0.84-0.88 with it (experiments/pmformer/README.md). Lookback 96 (6 segments) covers
# the lead-lag of 16 rows several times; lr and dropout were not grid-searched.
SIZES["synthetic"] = dict(
    SIZES["small"], dropout=0.1, steps=2000, lr=1e-3, lookback=96, revin=False
)
MODELS = ("pmformer", "patch", "full", "dlinear")
VAL_STRIDE = 4  # validation windows used for model selection: every 4th (hourly data)
HORIZONS = (96, 192, 336, 720)
# The synthetic series (data/timeseries.py synthetic_series), as data.synth_* keys.
SYNTH = {
    "grouped": dict(steps=4000, groups=2, group_size=3, distractors=2, lag=16, noise=0.1),
    "sparse": dict(steps=1500, groups=2, group_size=4, distractors=8, lag=16, noise=0.1),
}


def _arg(arg):
    return parse_arg(
        arg,
        model="pmformer",
        S=3,
        horizon=96,
        lookback=0,
        size="small",
        steps=0,
        evals="both",
        synth="grouped",
        sweep="S",
        features=0,
    )


def get_config(arg: str | None = None):
    """The forecasting config for `arg` (see the module docstring)."""
    from experiments.pmformer import task

    a = _arg(arg)
    if a.size not in SIZES:
        raise ConfigError(f"size={a.size!r} is unknown; choose one of {sorted(SIZES)}.")
    if a.model not in MODELS:
        raise ConfigError(f"model={a.model!r} is unknown; choose one of {MODELS}.")
    if a.evals not in ("both", "val", "none"):
        raise ConfigError(f"evals={a.evals!r} is unknown; choose both, val or none.")
    if a.synth not in SYNTH:
        raise ConfigError(f"synth={a.synth!r} is unknown; choose one of {sorted(SYNTH)}.")
    z = SIZES[a.size]
    c = task.default_config()
    c.model.update(
        dict(
            name="dlinear" if a.model == "dlinear" else "pmformer",
            segment_len=z["segment_len"],
            d_model=z["d_model"],
            num_heads=z["num_heads"],
            num_layers=z["num_layers"],
            d_ff=z["d_ff"],
            dropout=z["dropout"],
            revin=z["revin"],
        )
    )
    c.data.lookback = a.lookback or z["lookback"]
    c.data.horizon = a.horizon
    c.data.update({f"synth_{k}": v for k, v in SYNTH[a.synth].items()})
    if a.size == "tiny":
        c.data.synth_steps = 1200
    c.forecast.subset_size = {"patch": 1, "full": 0}.get(a.model, a.S)
    # S = 1 and S = D partitions are all alike (the model is permutation-equivariant)
    c.forecast.num_partitions = 3 if a.model == "pmformer" else 1
    steps = a.steps or z["steps"]
    c.train.batch_size = z["batch"]
    c.train.total_steps = steps
    c.train.log_every_steps = max(1, steps // 10)
    c.train.checkpoint_every_steps = max(1, steps // 2)
    # Periodic validation keeps the best-validation parameters (best/) and stops
    # after `patience` validations without improvement. For model selection,
    # validation averages one partition (N_I = 1) over every VAL_STRIDE-th window;
    # test uses forecast.num_partitions over every stride-1 window.
    c.train.eval_every_steps = z["eval_every"]
    c.train.best_metric = "val/mse" if z["eval_every"] else ""
    c.train.early_stop_patience = z["patience"]
    c.optimizer.lr = z["lr"]
    c.optimizer.weight_decay = 1e-4
    c.schedule.warmup_steps = max(1, steps // 20)
    c.schedule.final_lr_fraction = 0.01
    with c.unlocked():
        c.evals.val.update(num_partitions=1, stride=VAL_STRIDE if z["eval_every"] else 1)
        if a.evals in ("val", "none"):
            del c.evals["test"]
    c.evals.val.batch_size = 256
    if "test" in c.evals:
        c.evals.test.batch_size = 256
    if a.evals == "none":
        if z["eval_every"]:
            raise ConfigError(f"evals=none: size={a.size} validates for early stopping.")
        with c.unlocked():
            del c.evals["val"]
    return c


def get_sweep(arg: str | None = None) -> list[dict]:
    """sweep=S: S = 1..D (0 means D); sweep=horizon: H in 96..720 x {pmformer, S=1, S=D, DLinear}.

        python -m framework.sweep --config=configs/pmformer.py:sweep=S \\
            --workdir=runs/pmformer_S --parallel=1
    """
    a = _arg(arg)
    if a.sweep == "S":
        s = SYNTH.get(a.synth, SYNTH["grouped"])
        d = a.features or s["groups"] * s["group_size"] + s["distractors"]
        return product({"forecast.subset_size": list(range(1, d)) + [0]})
    if a.sweep == "horizon":
        models = [
            {"model.name": "pmformer", "forecast.subset_size": a.S, "forecast.num_partitions": 3},
            {"model.name": "pmformer", "forecast.subset_size": 1, "forecast.num_partitions": 1},
            {"model.name": "pmformer", "forecast.subset_size": 0, "forecast.num_partitions": 1},
            {"model.name": "dlinear", "forecast.subset_size": 1, "forecast.num_partitions": 1},
        ]
        return product({"data.horizon": list(HORIZONS)}, models)
    raise ConfigError(f"sweep={a.sweep!r} is unknown; choose S or horizon.")
