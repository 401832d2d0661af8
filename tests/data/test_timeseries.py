"""Time-series loader: splits, train-only scaling, malformed CSVs, windows, synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from data import timeseries


def write_csv(path, values, names=None, dates=True):
    """An ETT-layout CSV of `values` [T, D]; returns the values as parsed floats."""
    names = names or [f"f{i}" for i in range(values.shape[1])]
    lines = ["date," + ",".join(names)]
    for t, row in enumerate(values):
        lines.append(f"2020-01-01 {t:05d}," + ",".join(repr(float(v)) for v in row))
    path.write_text("\n".join(lines) + "\n")
    return np.asarray(values, np.float32)


def test_ratio_splits_and_train_only_scaling_match_hand_computation(tmp_path):
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(100, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, -3.0]
    raw[80:] += 50.0  # the test period is shifted: train-only statistics must not see it
    raw = write_csv(tmp_path / "weather.csv", raw)
    data = timeseries.load_series(str(tmp_path / "weather.csv"), lookback=5, horizon=3)
    # 70/10/20 by rows; val and test start `lookback` rows early.
    assert timeseries.split_borders(100, 5, "ratio") == {
        "train": (0, 70),
        "val": (65, 80),
        "test": (75, 100),
    }
    mean = raw[:70].astype(np.float64).mean(0)
    std = raw[:70].astype(np.float64).std(0)
    np.testing.assert_allclose(data.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(data.std, std, rtol=1e-6)
    np.testing.assert_allclose(data.train, (raw[:70] - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(data.val, (raw[65:80] - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(data.test, (raw[75:100] - mean) / std, rtol=1e-5, atol=1e-5)
    assert abs(data.train.mean()) < 1e-5 and data.test.mean() > 5  # test not re-centred
    assert data.names == ["f0", "f1", "f2"] and data.num_features == 3


def test_ett_hour_and_minute_borders():
    assert timeseries.split_kind("/x/ETTh1.csv") == "ett_hour"
    assert timeseries.split_kind("ETTm2.csv") == "ett_minute"
    assert timeseries.split_kind("traffic.csv") == "ratio"
    assert timeseries.split_borders(17420, 336, "ett_hour") == {
        "train": (0, 8640),
        "val": (8640 - 336, 11520),
        "test": (11520 - 336, 14400),
    }
    assert timeseries.split_borders(69680, 96, "ett_minute")["test"] == (46080 - 96, 57600)


def test_malformed_csvs_name_file_row_and_column(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("date,a,b\n2020,1,2\n2020,3,oops\n")
    with pytest.raises(timeseries.DataError, match=r"bad\.csv.*row 3 column 'b'.*'oops'"):
        timeseries.read_csv(str(p))
    p.write_text("date,a,b\n2020,1,2\n2020,3\n")
    with pytest.raises(timeseries.DataError, match=r"bad\.csv.*row 3: column 'b' is missing"):
        timeseries.read_csv(str(p))
    p.write_text("time,a\n2020,1\n")
    with pytest.raises(timeseries.DataError, match=r"row 1 \(header\).*'date'"):
        timeseries.read_csv(str(p))
    p.write_text("date,a\n2020,nan\n")
    with pytest.raises(timeseries.DataError, match=r"row 2 column 'a'"):
        timeseries.read_csv(str(p))
    with pytest.raises(timeseries.DataError, match=r"missing\.csv.*does not exist"):
        timeseries.read_csv(str(tmp_path / "missing.csv"))
    write_csv(tmp_path / "short.csv", np.zeros((40, 2)))
    with pytest.raises(timeseries.DataError, match=r"short\.csv.*40 rows.*val split.*needs"):
        timeseries.load_series(str(tmp_path / "short.csv"), lookback=8, horizon=5)


def test_windows_are_stride_one_and_the_iterator_resumes():
    values = np.arange(30, dtype=np.float32).reshape(15, 2)
    inputs, targets = timeseries.windows(values, 4, 2)
    assert inputs.shape == (10, 4, 2) and timeseries.num_windows(15, 4, 2) == 10
    np.testing.assert_array_equal(inputs[3, :, 0], [6, 8, 10, 12])
    np.testing.assert_array_equal(targets[3, :, 1], [15, 17])
    ds = timeseries.make_window_dataset(
        values,
        lookback=4,
        horizon=2,
        batch_size=3,
        shuffle=False,
        num_epochs=1,
        drop_remainder=False,
    )
    batches = list(ds)
    assert [len(b["inputs"]) for b in batches] == [3, 3, 3, 1]
    np.testing.assert_array_equal(batches[1]["inputs"][0], inputs[3])
    np.testing.assert_array_equal(batches[3]["targets"][0], targets[9])
    strided = timeseries.make_window_dataset(
        values,
        lookback=4,
        horizon=2,
        batch_size=3,
        shuffle=False,
        num_epochs=1,
        drop_remainder=False,
        stride=3,
    )
    got = np.concatenate([b["inputs"] for b in strided])
    np.testing.assert_array_equal(got, inputs[[0, 3, 6, 9]])  # every 3rd, the last kept
    train = timeseries.make_window_dataset(values, lookback=4, horizon=2, batch_size=3, seed=1)
    it = iter(train)
    for _ in range(5):
        next(it)
    state = it.get_state()
    expected = [next(it)["inputs"] for _ in range(3)]
    it2 = iter(train)
    it2.set_state(state)
    for e in expected:
        np.testing.assert_array_equal(next(it2)["inputs"], e)


def test_synthetic_series_has_lead_lag_groups_and_distractors():
    values, groups = timeseries.synthetic_series(
        2000, num_groups=2, group_size=3, num_distractors=2, lag=5, seed=3
    )
    assert values.shape == (2000, 8) and values.dtype == np.float32
    assert sorted(groups.tolist()) == [-1, -1, 0, 0, 0, 1, 1, 1]
    corr = lambda a, b: abs(np.corrcoef(a, b)[0, 1])
    g0 = np.flatnonzero(groups == 0)
    # some pair of group members is (nearly) a 5-step shift of the other
    best = max(corr(values[:-5, i], values[5:, j]) for i in g0 for j in g0 if i != j)
    assert best > 0.95
    g1 = np.flatnonzero(groups == 1)
    distractors = np.flatnonzero(groups == -1)
    assert corr(values[:, g0[0]], values[:, g1[0]]) < 0.2
    assert max(corr(values[:, d], values[:, g0[0]]) for d in distractors) < 0.2
    again, _ = timeseries.synthetic_series(
        2000, num_groups=2, group_size=3, num_distractors=2, lag=5, seed=3
    )
    np.testing.assert_array_equal(values, again)


def test_synthetic_data_is_split_and_scaled():
    data = timeseries.synthetic_data(lookback=16, horizon=8, num_steps=500)
    assert data.train.shape == (350, 8) and data.test.shape == (100 + 16, 8)
    np.testing.assert_allclose(data.train.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(data.train.std(0), 1, atol=1e-3)


def test_ett_hour_file_splits_by_months_and_scales_with_the_first_year(tmp_path):
    rng = np.random.default_rng(1)
    raw = rng.normal(size=(14500, 2)) + np.linspace(0, 30, 14500)[:, None]  # a trend
    raw = write_csv(tmp_path / "ETTh1.csv", raw)
    data = timeseries.load_series(str(tmp_path / "ETTh1.csv"), lookback=24, horizon=12)
    train = raw[:8640].astype(np.float64)  # 12 months of 30 days x 24 hours
    mean, std = train.mean(0), train.std(0)
    np.testing.assert_allclose(data.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(data.val, (raw[8640 - 24 : 11520] - mean) / std, atol=1e-4)
    np.testing.assert_allclose(data.test, (raw[11520 - 24 : 14400] - mean) / std, atol=1e-4)
    assert len(data.test) == 2880 + 24  # rows after 20 months are not used
