"""Multivariate time series: ETT-format CSVs, standard splits, z-scoring, windows, grain.

Flow: `load_series(path, lookback=L, horizon=H)` reads a CSV whose first column is
`date` and whose other columns are numeric features (ETTh1/ETTh2/ETTm1/ETTm2,
weather, electricity, traffic, ... in the Autoformer/PatchTST layout), cuts the
community-standard train/val/test splits (`split_borders`), z-scores every split
with the training rows' mean and standard deviation, and returns a `SeriesData`.
`make_window_dataset(values, L, H, ...)` serves grain batches
`{inputs: [B, L, D], targets: [B, H, D]}` of sliding windows (stride 1) whose
iterator state can be checkpointed. `synthetic_series(...)` generates grouped
multivariate series with lead–lag structure plus distractors (the embedded default).

Real data: ETT from https://github.com/zhouhaoyi/ETDataset (ETT-small/ETTh1.csv);
other CSVs in the same layout from the Autoformer release
(https://github.com/thuml/Autoformer). Download them yourself and pass the path.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import math
import os

import grain
import numpy as np

from data.batching import index_batches
from data.errors import DataError

# ETT split lengths in rows (Zhou et al. 2021, Informer; kept by Autoformer, PatchTST,
# PMformer): 12 months train, 4 validation, 4 test; 30-day months.
ETT_HOUR_MONTH = 30 * 24
ETT_MINUTE_MONTH = 30 * 24 * 4
RATIO_SPLIT = (0.7, 0.1, 0.2)  # other datasets: train/val/test fractions of the rows


@dataclasses.dataclass
class Series:
    """A raw CSV: feature names, float32 values [T, D] and the date strings."""

    names: list[str]
    values: np.ndarray
    dates: list[str]


def read_csv(path: str) -> Series:
    """Reads an ETT-layout CSV (`date`, then numeric feature columns) into a Series."""
    if not os.path.isfile(path):
        raise DataError(
            f"CSV file {path!r} does not exist; download it (see data/timeseries.py) "
            "and pass its path as --config.data.path."
        )
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(
            f"CSV file {path!r} is not a text CSV ({str(e).splitlines()[0]}); expected an "
            "ETT-layout CSV: a 'date' column, then numeric feature columns."
        ) from None
    if not rows:
        raise DataError(f"CSV file {path!r} is empty; it needs a header 'date,<features...>'.")
    header = [h.strip() for h in rows[0]]
    if len(header) < 2 or header[0].lower() != "date":
        raise DataError(
            f"CSV file {path!r} row 1 (header): the first column must be 'date' followed by "
            f"at least one feature column, got {header!r}."
        )
    names = header[1:]
    values = np.empty((len(rows) - 1, len(names)), np.float32)
    dates = []
    for r, row in enumerate(rows[1:]):
        line = r + 2  # 1-based, the header is line 1
        if len(row) != len(header):
            missing = header[len(row)] if len(row) < len(header) else None
            what = f"column {missing!r} is missing" if missing else "it has extra cells"
            raise DataError(
                f"CSV file {path!r} row {line}: {what} ({len(row)} cells, the header has "
                f"{len(header)}); fix or remove the row."
            )
        dates.append(row[0])
        for c, cell in enumerate(row[1:]):
            try:
                v = float(cell)
            except ValueError:
                v = math.nan
            if not math.isfinite(v):
                raise DataError(
                    f"CSV file {path!r} row {line} column {names[c]!r}: {cell!r} is not a "
                    "finite number; fix the cell or remove the row."
                )
            values[r, c] = v
    return Series(names=names, values=values, dates=dates)


def split_kind(path: str) -> str:
    """'ett_hour' for ETTh*, 'ett_minute' for ETTm*, else 'ratio' (by file name)."""
    base = os.path.basename(path)
    if base.startswith("ETTh"):
        return "ett_hour"
    if base.startswith("ETTm"):
        return "ett_minute"
    return "ratio"


def split_borders(num_rows: int, lookback: int, kind: str) -> dict[str, tuple[int, int]]:
    """Row ranges [start, end) of train/val/test; val and test start `lookback` rows early.

    ETT files: 12/4/4 months of rows from the start (the rest is unused); others:
    70/10/20 % of the rows (test is the last 20 %, val what lies between), as in
    the Informer/Autoformer/PatchTST data loaders.
    """
    if kind in ("ett_hour", "ett_minute"):
        month = ETT_HOUR_MONTH if kind == "ett_hour" else ETT_MINUTE_MONTH
        b = (12 * month, 16 * month, 20 * month)
    elif kind == "ratio":
        n_train = int(num_rows * RATIO_SPLIT[0])
        n_test = int(num_rows * RATIO_SPLIT[2])
        b = (n_train, num_rows - n_test, num_rows)
    else:
        raise ValueError(f"split kind {kind!r} is unknown; use ett_hour, ett_minute or ratio.")
    return {
        "train": (0, b[0]),
        "val": (max(0, b[0] - lookback), b[1]),
        "test": (max(0, b[1] - lookback), b[2]),
    }


@dataclasses.dataclass
class SeriesData:
    """z-scored splits ([T_split, D] float32), the training statistics and names."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    names: list[str]

    @property
    def num_features(self) -> int:
        """D, the number of feature columns."""
        return self.train.shape[1]

    def split(self, name: str) -> np.ndarray:
        """The z-scored array of split `name`."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"split {name!r} is unknown; use train, val or test.")
        return getattr(self, name)


def standardize(values: np.ndarray, borders: dict[str, tuple[int, int]]) -> SeriesData:
    """Splits `values` by `borders` and z-scores every split with the train rows' stats."""
    lo, hi = borders["train"]
    train = values[lo:hi].astype(np.float64)
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 0, std, 1.0)  # a constant training column stays centred
    out = {k: ((values[a:b] - mean) / std).astype(np.float32) for k, (a, b) in borders.items()}
    return SeriesData(**out, mean=mean.astype(np.float32), std=std.astype(np.float32), names=[])


def load_series(path: str, *, lookback: int, horizon: int, kind: str = "auto") -> SeriesData:
    """Reads `path`, splits it (kind 'auto' = by file name) and z-scores with train stats."""
    series = read_csv(path)
    kind = split_kind(path) if kind == "auto" else kind
    borders = split_borders(len(series.values), lookback, kind)
    check_split_lengths(borders, len(series.values), lookback, horizon, f"CSV file {path!r}")
    data = standardize(series.values, borders)
    data.names = series.names
    return data


def check_split_lengths(
    borders: dict[str, tuple[int, int]], num_rows: int, lookback: int, horizon: int, source: str
) -> None:
    """Raises DataError unless every split holds at least one lookback + horizon window."""
    for name, (a, b) in borders.items():
        b_eff = min(b, num_rows)
        if b_eff - a < lookback + horizon:
            raise DataError(
                f"{source} has {num_rows} rows; its {name} split (rows {a + 2}..{b + 1}) "
                f"holds {max(0, b_eff - a)} rows but one window needs lookback + horizon = "
                f"{lookback + horizon}; use a longer file or lower lookback/horizon."
            )


# ----------------------------------------------------------------------------- synthetic


def synthetic_series(
    num_steps: int = 4000,
    *,
    num_groups: int = 2,
    group_size: int = 3,
    num_distractors: int = 2,
    lag: int = 16,
    noise: float = 0.1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Grouped multivariate series [T, D] float32 and each feature's group id (-1 distractor).

    Each group has a latent process: a smooth AR(2) random walk plus two random
    sinusoids. Member j of a group is the latent delayed by j*lag steps, scaled and
    offset, plus noise: member 0 leads, so its present tells the others' future
    (lead–lag). Distractors are independent AR(1) noise. Columns are shuffled so
    that groups are not contiguous.
    """
    rng = np.random.default_rng(seed)
    pad = lag * max(group_size - 1, 0) + 64
    t = np.arange(num_steps + pad, dtype=np.float64)
    cols, groups = [], []
    for g in range(num_groups):
        eps = rng.normal(size=t.size)
        z = np.zeros(t.size)
        for i in range(2, t.size):  # AR(2): smooth, hard to extrapolate without a leader
            z[i] = 1.6 * z[i - 1] - 0.68 * z[i - 2] + 0.3 * eps[i]
        z = z / (z.std() + 1e-8)
        for _ in range(2):
            period = rng.uniform(12, 60)
            z = z + 0.5 * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        for j in range(group_size):
            d = j * lag
            x = z[pad - d : pad - d + num_steps]
            cols.append(
                rng.uniform(0.5, 2.0) * x + rng.normal() + noise * rng.normal(size=num_steps)
            )
            groups.append(g)
    for _ in range(num_distractors):
        e = rng.normal(size=num_steps)
        x = np.zeros(num_steps)
        for i in range(1, num_steps):
            x[i] = 0.9 * x[i - 1] + e[i]
        cols.append(x)
        groups.append(-1)
    order = rng.permutation(len(cols))
    values = np.stack([cols[i] for i in order], axis=1).astype(np.float32)
    return values, np.asarray(groups)[order]


def synthetic_data(*, lookback: int, horizon: int, **kwargs) -> SeriesData:
    """`synthetic_series(**kwargs)` split 70/10/20 and z-scored with train statistics."""
    values, _ = synthetic_series(**kwargs)
    borders = split_borders(len(values), lookback, "ratio")
    check_split_lengths(borders, len(values), lookback, horizon, "the synthetic series")
    data = standardize(values, borders)
    data.names = [f"x{i}" for i in range(values.shape[1])]
    return data


# ----------------------------------------------------------------------------- windows


def num_windows(length: int, lookback: int, horizon: int) -> int:
    """Stride-1 windows of lookback + horizon rows in `length` rows."""
    return max(0, length - lookback - horizon + 1)


def windows(values: np.ndarray, lookback: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """All stride-1 windows as views: inputs [N, L, D], targets [N, H, D]."""
    w = np.lib.stride_tricks.sliding_window_view(values, lookback + horizon, axis=0)
    w = np.moveaxis(w, -1, 1)  # [N, L+H, D]
    return w[:, :lookback], w[:, lookback:]


def _gather(values: np.ndarray, lookback: int, horizon: int, idx_B: np.ndarray) -> dict:
    """The windows starting at rows `idx_B`: {inputs [B, L, D], targets [B, H, D]}."""
    span = idx_B[:, None] + np.arange(lookback + horizon)[None, :]
    w = values[span]  # [B, L+H, D]
    return {
        "inputs": np.ascontiguousarray(w[:, :lookback], np.float32),
        "targets": np.ascontiguousarray(w[:, lookback:], np.float32),
    }


def make_window_dataset(
    values: np.ndarray,
    *,
    lookback: int,
    horizon: int,
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    num_epochs: int | None = None,
    shard_index: int = 0,
    shard_count: int = 1,
    drop_remainder: bool = True,
    stride: int = 1,
) -> grain.MapDataset:
    """A grain MapDataset of per-process window batches {inputs, targets}.

    Window starts (every `stride`-th of the stride-1 windows) in
    `data.batching.index_batches` order (shuffle(seed) -> repeat(num_epochs; None =
    forever) -> global batches of batch_size * shard_count -> this process's slice),
    then the windows gathered.
    Its iterator state ({'next_index'}) is what checkpoints hold. With
    drop_remainder=False a finite pass keeps the last, smaller batch (evaluation).
    """
    values = np.asarray(values, np.float32)
    if stride < 1:
        raise ValueError(f"stride={stride} must be >= 1.")
    n = -(-num_windows(len(values), lookback, horizon) // stride)  # windows kept
    global_batch = batch_size * shard_count
    if n == 0 or (num_epochs is not None and drop_remainder and n * num_epochs < global_batch):
        raise DataError(
            f"{len(values)} rows give {n} windows of lookback {lookback} + horizon {horizon}, "
            f"too few for a global batch of {global_batch}; lower batch_size, lookback or horizon."
        )
    ds = index_batches(
        n,
        batch_size=batch_size,
        shard_index=shard_index,
        shard_count=shard_count,
        seed=seed,
        shuffle=shuffle,
        num_epochs=num_epochs,
        drop_remainder=drop_remainder,
        stride=stride,
    )
    return ds.map(functools.partial(_gather, values, lookback, horizon))
