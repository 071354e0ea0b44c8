"""Point-in-time training sets through a Feast FeatureService, and the time-based split.

Features come only from `features.store.feast.historical_features` for (tenancy, as_of) pairs, so each row sees the snapshot
as of its own date and nothing later. The split is by date with an embargo of one label horizon between train
and test, so no training label looks into the test period.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    train_end: pd.Timestamp
    test_start: pd.Timestamp


def time_split(frame: pd.DataFrame, embargo_weeks: int, valid_share: float = 0.15, test_share: float = 0.2) -> TimeSplit:
    """Train on the earliest dates, validate and test on later ones, leaving `embargo_weeks` between them."""
    dates = pd.Index(sorted(frame["event_timestamp"].unique()))
    n = len(dates)
    n_test = max(1, round(n * test_share))
    n_valid = max(1, round(n * valid_share))
    test_start = dates[n - n_test]
    valid_start = dates[n - n_test - n_valid]
    embargo = pd.Timedelta(weeks=embargo_weeks)
    train_end = valid_start - embargo
    valid_end = test_start - embargo
    train = frame[frame["event_timestamp"] < train_end]
    valid = frame[(frame["event_timestamp"] >= valid_start) & (frame["event_timestamp"] < valid_end)]
    test = frame[frame["event_timestamp"] >= test_start]
    if train.empty or valid.empty or test.empty:
        raise ValueError(
            f"Not enough history for a time split with a {embargo_weeks}-week embargo ({n} labelled weeks): "
            "simulate or ingest a longer period (two years is plenty)."
        )
    return TimeSplit(train, valid, test, train_end, test_start)


def tenancy_split(frame: pd.DataFrame, seed: int = 0, valid_share: float = 0.15, test_share: float = 0.2) -> TimeSplit:
    """Fallback when every label shares one date: hold out whole tenancies (never split one across sets)."""
    import numpy as np

    tenancies = np.sort(frame["tenancy_id"].unique())
    rng = np.random.default_rng(seed)
    draw = pd.Series(rng.random(len(tenancies)), index=tenancies)
    part = frame["tenancy_id"].map(draw)
    test = frame[part < test_share]
    valid = frame[(part >= test_share) & (part < test_share + valid_share)]
    train = frame[part >= test_share + valid_share]
    stamp = frame["event_timestamp"].max()
    return TimeSplit(train, valid, test, stamp, stamp)
