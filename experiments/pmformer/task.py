"""PMformer's forecasting task: partial-multivariate training and inference.

Training (Lee et al. 2024, PMformer, Sec. 3): every step draws a random partition
of the D features into G = ceil(D/S) subsets of size S; when S does not divide D
the last subset is topped up with G*S - D distinct features borrowed at random
from the other subsets. All subsets of all examples go through the model as one
batch [B*G, L, S]; the loss is the MSE over every forecast (borrowed ones too).

Inference: the forecast is averaged over N_I independent random partitions; each
feature's forecast comes from the subset it was assigned to (a borrowed copy is
discarded). Missing features: a fraction of the features is dropped and only the
observed ones are partitioned (subsets of min(S, observed)); metrics cover the
observed features. `Evaluator` (named in config.evals by this module's path)
reports MSE and MAE on z-scored data, and the naive last-value forecast's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from data import timeseries
from framework import config as config_lib, evaluators, sharding
from framework.tasks import base
from models import dlinear, pmformer

MODELS = ("pmformer", "dlinear")


def default_config() -> ml_collections.ConfigDict:
    """base_config() with the forecasting task's model, data and forecast sections; locked."""
    c = config_lib.base_config()
    c.task = "experiments.pmformer.task"
    c.model = ml_collections.ConfigDict(
        dict(
            name="pmformer",  # pmformer | dlinear
            segment_len=16,
            d_model=32,
            num_heads=4,
            num_layers=2,
            d_ff=64,
            dropout=0.1,
            revin=True,
            kernel=25,  # DLinear's moving-average window
        )
    )
    c.data = ml_collections.ConfigDict(
        dict(
            path="",  # '' = the synthetic grouped series; else an ETT-layout CSV
            split="auto",  # auto (by file name) | ett_hour | ett_minute | ratio
            lookback=96,
            horizon=24,
            synth_steps=4000,
            synth_groups=2,
            synth_group_size=3,
            synth_distractors=2,
            synth_lag=16,
            synth_noise=0.1,
            synth_seed=0,
        )
    )
    c.forecast = ml_collections.ConfigDict(
        dict(
            subset_size=0,  # S; 0 = D (complete-multivariate)
            num_partitions=3,  # N_I, partitions averaged at inference
            drop_rate=0.0,  # fraction of features missing at inference
            eval_seed=0,
        )
    )
    c.evals = ml_collections.ConfigDict(
        dict(
            val=dict(kind="experiments.pmformer.task", split="val", num_batches=0, batch_size=0),
            test=dict(kind="experiments.pmformer.task", split="test", num_batches=0, batch_size=0),
        )
    )
    return config_lib.lock(c)


# ----------------------------------------------------------------------------- partitions


def partition(key: jax.Array, num_features: int, subset_size: int) -> jax.Array:
    """A random partition of range(num_features) into [G, S] subsets, G = ceil(D/S).

    Flattened, the first D entries are a permutation (each feature once, in the
    subset it belongs to); the remaining G*S - D entries top up the last subset
    with distinct features borrowed from the other subsets.
    """
    d = num_features
    s = max(1, min(subset_size, d))
    g = math.ceil(d / s)
    k_perm, k_borrow = jax.random.split(key)
    perm = jax.random.permutation(k_perm, d)
    pad = g * s - d
    if pad:
        borrow = jax.random.choice(k_borrow, (g - 1) * s, (pad,), replace=False)
        perm = jnp.concatenate([perm, perm[borrow]])
    return perm.reshape(g, s)


def forecast_subsets(model: Any, x_BLD: jax.Array, ids_GS: jax.Array, **kw) -> jax.Array:
    """The model on every subset of every example, batched: returns [B, H, G*S]."""
    b, lookback, _ = x_BLD.shape
    g, s = ids_GS.shape
    x = jnp.transpose(x_BLD[:, :, ids_GS], (0, 2, 1, 3)).reshape(b * g, lookback, s)
    ids = jnp.broadcast_to(ids_GS, (b, g, s)).reshape(b * g, s)
    y_XHS = model(x, ids, **kw)
    h = y_XHS.shape[1]
    return jnp.transpose(y_XHS.reshape(b, g, h, s), (0, 2, 1, 3)).reshape(b, h, g * s)


def forecast_averaged(
    model: Any,
    x_BLD: jax.Array,
    features_K: jax.Array,
    key: jax.Array,
    subset_size: int,
    num_partitions: int,
) -> jax.Array:
    """Forecasts [B, H, K] of the K features `features_K`, averaged over N_I partitions."""
    k = features_K.shape[0]

    def one(key):
        part_GS = partition(key, k, subset_size)  # positions into features_K
        y = forecast_subsets(model, x_BLD, features_K[part_GS])
        first = part_GS.reshape(-1)[:k]  # each feature's own subset, not a borrowed copy
        return jnp.zeros(y.shape[:2] + (k,), y.dtype).at[:, :, first].set(y[:, :, :k])

    keys = jax.random.split(key, num_partitions)
    return jax.lax.map(one, keys).mean(0)


def error_sums(pred_BHK, target_BHK, weight_B) -> dict[str, jax.Array]:
    """Weighted sums of squared and absolute errors, and the weight (element count)."""
    w = weight_B[:, None, None]
    err = pred_BHK - target_BHK
    return {
        "se": (jnp.square(err) * w).sum(),
        "ae": (jnp.abs(err) * w).sum(),
        "n": (jnp.ones_like(err) * w).sum(),
    }


# ----------------------------------------------------------------------------- task


def load_data(d: Mapping[str, Any]) -> timeseries.SeriesData:
    """The z-scored splits that the data config `d` (config.data, or its JSON) names:
    the CSV at d['path'], else the synthetic series of the synth_* keys."""
    if d["path"]:
        return timeseries.load_series(
            d["path"], lookback=d["lookback"], horizon=d["horizon"], kind=d["split"]
        )
    return timeseries.synthetic_data(
        lookback=d["lookback"],
        horizon=d["horizon"],
        num_steps=d["synth_steps"],
        num_groups=d["synth_groups"],
        group_size=d["synth_group_size"],
        num_distractors=d["synth_distractors"],
        lag=d["synth_lag"],
        noise=d["synth_noise"],
        seed=d["synth_seed"],
    )


class Task(base.Task):
    """Multivariate forecasting with random feature subsets (PMformer)."""

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        d, m = config.data, config.model
        if m.name not in MODELS:
            raise config_lib.ConfigError(
                f"model.name={m.name!r} is unknown; choose one of {MODELS}."
            )
        try:
            self.data = load_data(d)
        except timeseries.DataError as e:
            raise config_lib.ConfigError(str(e)) from None
        self.num_features = self.data.num_features
        n_train = timeseries.num_windows(len(self.data.train), d.lookback, d.horizon)
        if n_train < config.train.batch_size:
            raise config_lib.ConfigError(
                f"the training split gives {n_train} windows (lookback {d.lookback} + horizon "
                f"{d.horizon}), fewer than train.batch_size={config.train.batch_size}; lower "
                "the batch size, lookback or horizon, or use more data."
            )
        f = config.forecast
        if f.subset_size < 0 or not 0.0 <= f.drop_rate < 1.0 or f.num_partitions < 1:
            raise config_lib.ConfigError(
                "forecast.subset_size must be >= 0 (0 = D), forecast.drop_rate in [0, 1) and "
                f"forecast.num_partitions >= 1; got {f.subset_size}, {f.drop_rate}, "
                f"{f.num_partitions}."
            )
        self.subset_size = min(f.subset_size or self.num_features, self.num_features)
        try:
            if m.name == "pmformer":
                self.model_config = pmformer.PMformerConfig(
                    num_features=self.num_features,
                    lookback=d.lookback,
                    horizon=d.horizon,
                    segment_len=m.segment_len,
                    d_model=m.d_model,
                    num_heads=m.num_heads,
                    num_layers=m.num_layers,
                    d_ff=m.d_ff,
                    dropout=m.dropout,
                    revin=m.revin,
                )
            else:
                self.model_config = dlinear.DLinearConfig(
                    lookback=d.lookback, horizon=d.horizon, kernel=m.kernel
                )
        except ValueError as e:
            raise config_lib.ConfigError(f"model: {e}") from None

    def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
        """PMformer or DLinear for this data's D, L and H."""
        if isinstance(self.model_config, pmformer.PMformerConfig):
            return pmformer.PMformer(self.model_config, rngs=rngs)
        return dlinear.DLinear(self.model_config, rngs=rngs)

    def loss(self, model, batch, rng):
        """Training: MSE over one random partition's subsets. Evaluation (rng None): the
        N_I-averaged forecast's MSE/MAE with a fixed key."""
        x_BLD, y_BHD = batch["inputs"], batch["targets"]
        weight_B = batch.get("weight", jnp.ones(x_BLD.shape[:1], jnp.float32))
        if rng is None:
            f = self.config.forecast
            key = jax.random.key(f.eval_seed)
            pred = forecast_averaged(
                model,
                x_BLD,
                jnp.arange(self.num_features),
                key,
                self.subset_size,
                f.num_partitions,
            )
            sums = error_sums(pred, y_BHD, weight_B)
            n = jnp.maximum(sums["n"], 1.0)
            mse = sums["se"] / n
            return mse, {"loss": mse, "mae": sums["ae"] / n, "_weight": sums["n"]}
        k_part, k_drop = jax.random.split(rng)
        ids_GS = partition(k_part, self.num_features, self.subset_size)
        pred = forecast_subsets(
            model, x_BLD, ids_GS, deterministic=False, rngs=nnx.Rngs(dropout=k_drop)
        )
        target = y_BHD[:, :, ids_GS.reshape(-1)]
        mse = jnp.mean(jnp.square(pred - target))
        return mse, {"loss": mse}

    def train_dataset(self, *, batch_size, seed, shard_index, shard_count):
        """Shuffled, endlessly repeated training windows."""
        d = self.config.data
        return timeseries.make_window_dataset(
            self.data.train,
            lookback=d.lookback,
            horizon=d.horizon,
            batch_size=batch_size,
            seed=seed,
            shuffle=True,
            num_epochs=None,
            shard_index=shard_index,
            shard_count=shard_count,
        )

    def eval_batches(
        self, split, *, batch_size, shard_index, shard_count, stride: int = 1
    ) -> Iterator[Any]:
        """Every `stride`-th window of `split` (1: all stride-1 windows) once, in order;
        the last batch is padded with weight-0 rows so that every batch has the same
        shape."""
        if split not in ("val", "test"):
            return super().eval_batches(
                split, batch_size=batch_size, shard_index=shard_index, shard_count=shard_count
            )
        d = self.config.data
        ds = timeseries.make_window_dataset(
            self.data.split(split),
            lookback=d.lookback,
            horizon=d.horizon,
            batch_size=batch_size,
            shuffle=False,
            num_epochs=1,
            shard_index=shard_index,
            shard_count=shard_count,
            drop_remainder=False,
            stride=stride,
        )

        def padded():
            for batch in ds:
                n = len(batch["inputs"])
                out = {"weight": np.zeros(batch_size, np.float32)}
                out["weight"][:n] = 1.0
                for k, v in batch.items():
                    out[k] = np.zeros((batch_size, *v.shape[1:]), np.float32)
                    out[k][:n] = v
                yield out

        return padded()

    @property
    def num_train_examples(self) -> int:
        """Training windows per epoch."""
        d = self.config.data
        return timeseries.num_windows(len(self.data.train), d.lookback, d.horizon)

    def describe_model(self) -> dict[str, float]:
        """Parameter count, D and S."""
        model = nnx.eval_shape(lambda: self.build_model(nnx.Rngs(0)))
        return {
            "params": pmformer.param_count(model),
            "features D": self.num_features,
            "subset size S": self.subset_size,
        }


# ----------------------------------------------------------------------------- evaluator


@dataclasses.dataclass
class _Settings:
    split: str
    num_batches: int
    batch_size: int
    num_partitions: int
    drop_rate: float
    seed: int
    stride: int


class Evaluator(evaluators.EvaluatorBase):
    """MSE/MAE over a split's stride-1 windows, with N_I partitions and feature drop.

    Config keys: split ('test'), num_batches (0 = all), batch_size (0 = training
    batch), num_partitions (0 = forecast.num_partitions), drop_rate (-1 =
    forecast.drop_rate), seed (-1 = forecast.eval_seed), stride (1 = every
    stride-1 window, the benchmark convention; k = every k-th window, a cheaper
    estimate for model selection on validation). Reports loss (= mse), mse,
    mae and the naive last-value forecast's naive_mse / naive_mae, all over the
    observed features of z-scored data; with features dropped also ref_mse, the
    same features' MSE when all D features are observed (so mse - ref_mse is the
    cost of the missing features on identical targets).
    """

    def __init__(self, name, cfg, task, ctx: evaluators.EvalContext):
        super().__init__(name, cfg, task, ctx)
        f = task.config.forecast
        merge = ctx.merge
        self.s = _Settings(
            split=cfg.get("split", "test"),
            num_batches=int(cfg.get("num_batches", 0)),
            batch_size=self.batch_size,
            num_partitions=int(cfg.get("num_partitions", 0)) or f.num_partitions,
            drop_rate=float(cfg.get("drop_rate", -1.0)),
            seed=int(cfg.get("seed", -1)),
            stride=int(cfg.get("stride", 1)),
        )
        if self.s.drop_rate < 0:
            self.s.drop_rate = f.drop_rate
        if self.s.seed < 0:
            self.s.seed = f.eval_seed
        d = task.num_features
        if self.s.stride < 1:
            raise config_lib.ConfigError(f"evals.{name}.stride={self.s.stride} must be >= 1.")
        if not 0.0 <= self.s.drop_rate < 1.0:
            raise config_lib.ConfigError(
                f"evals.{name}.drop_rate={self.s.drop_rate} must be in [0, 1)."
            )
        observed = max(1, d - int(round(self.s.drop_rate * d)))
        s = self.s
        # With S = 1 or S >= the observed features every partition gives the same forecast
        # (the model is equivariant to permuting a subset), so one is exact and N_I x cheaper.
        partitions = 1 if task.subset_size == 1 or task.subset_size >= observed else None
        num_partitions = partitions or s.num_partitions
        ref_partitions = 1 if task.subset_size in (1, d) else s.num_partitions

        def step(params, batch, key):
            k_drop, k_part = jax.random.split(key)
            features_K = jnp.sort(jax.random.permutation(k_drop, d)[:observed])
            pred = forecast_averaged(
                merge(params),
                batch["inputs"],
                features_K,
                k_part,
                task.subset_size,
                num_partitions,
            )
            target = batch["targets"][:, :, features_K]
            last = batch["inputs"][:, -1:, features_K]
            out = error_sums(pred, target, batch["weight"])
            naive = error_sums(jnp.broadcast_to(last, target.shape), target, batch["weight"])
            out.update(naive_se=naive["se"], naive_ae=naive["ae"])
            if observed < d:  # the same features forecast from all D inputs: the reference
                full = forecast_averaged(
                    merge(params),
                    batch["inputs"],
                    jnp.arange(d),
                    k_part,
                    task.subset_size,
                    ref_partitions,
                )
                out["ref_se"] = error_sums(full[:, :, features_K], target, batch["weight"])["se"]
            return out

        self._step = jax.jit(step, in_shardings=(ctx.params_sharding, self.batch_sharding, None))

    def __call__(self, params: Any) -> dict[str, float]:
        """Evaluates `params`; returns loss, mse, mae, naive_mse, naive_mae."""
        count = jax.process_count()
        batches = self.task.eval_batches(
            self.s.split,
            batch_size=self.s.batch_size // count,
            shard_index=jax.process_index(),
            shard_count=count,
            stride=self.s.stride,
        )
        base_key = jax.random.key(self.s.seed)
        sums: dict[str, Any] = {}
        for i, batch in enumerate(batches):
            if self.s.num_batches and i >= self.s.num_batches:
                break
            out = self._step(
                params,
                sharding.put_batch(batch, self.batch_sharding),
                jax.random.fold_in(base_key, i),
            )
            sums = {k: sums.get(k, 0.0) + v for k, v in out.items()}
        if not sums:
            raise ValueError(f"evaluator {self.name!r}: split {self.s.split!r} gave no batches.")
        host = {k: float(np.asarray(v)) for k, v in jax.device_get(sums).items()}
        n = max(host["n"], 1e-12)
        mse = host["se"] / n
        out = {
            "loss": mse,
            "mse": mse,
            "mae": host["ae"] / n,
            "naive_mse": host["naive_se"] / n,
            "naive_mae": host["naive_ae"] / n,
        }
        if "ref_se" in host:
            out["ref_mse"] = host["ref_se"] / n
        return out
