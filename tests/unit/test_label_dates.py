"""Training labels are dated on each tenancy's own weekday and never before the data starts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.timeline import utc, weekly_as_of_dates
from training.dataset import on_every_weekday, thin_weeks, weekday_shift


def _every_tenancy_on(ids: list[str]):
    def make(dates: pd.DatetimeIndex) -> pd.DataFrame:
        return pd.DataFrame([(t, d) for t in ids for d in utc(dates)], columns=["tenancy_id", "event_timestamp"])
    return make


def test_labels_start_with_the_grid_on_each_tenancys_weekday():
    ids = [f"T{i:04d}" for i in range(200)]
    first_posting = pd.Timestamp("2024-10-31")  # a Thursday: the grid's first Sunday is 2024-11-03
    grid = weekly_as_of_dates(first_posting, pd.Timestamp("2025-03-01"))
    labels = on_every_weekday(_every_tenancy_on(ids), grid)
    for thinned in (labels, thin_weeks(labels, grid, 2), thin_weeks(labels[1:], grid, 3)):
        assert thinned["event_timestamp"].min() >= utc(grid)[0]
    shifts = dict(zip(ids, weekday_shift(pd.Series(ids)), strict=True))
    weekdays = labels["event_timestamp"].dt.weekday.to_numpy()
    assert np.array_equal(weekdays, (6 - labels["tenancy_id"].map(shifts).to_numpy()) % 7)
    counts = labels.groupby("tenancy_id").size()
    sunday = [t for t in ids if shifts[t] == 0]
    assert sunday and (counts[sunday] == len(grid)).all()  # Sunday's tenancies keep every week
    assert (counts == len(grid) - 1).sum() > 0  # the others lose only the week that would start before the data
    assert counts.min() == len(grid) - 1


def test_no_training_label_reaches_the_validation_start():
    """The cash backtest forecasts from `valid_start` on: every training row's label window (the horizon after its
    date) must end by then, so the trees have seen none of the weeks it forecasts."""
    from training.dataset import time_split

    dates = pd.date_range("2025-01-05", periods=40, freq="14D", tz="UTC")
    frame = pd.DataFrame({"event_timestamp": np.repeat(dates, 3), "tenancy_id": np.tile(["A", "B", "C"], 40)})
    split = time_split(frame, embargo_weeks=8)
    horizon = pd.Timedelta(weeks=8)
    assert split.valid_start == split.train_end + horizon
    assert (split.train["event_timestamp"] + horizon <= split.valid_start).all()
    assert split.valid["event_timestamp"].min() == split.valid_start < split.test_start
    assert not split.train.empty and split.valid_start not in set(split.train["event_timestamp"])
