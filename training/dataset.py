"""Training sets: labels joined point in time to features through a Feast FeatureService, and the splits.

Every model's rows are built by `point_in_time`: features come only from `features.store.feast.historical_features`
for (tenancy, as_of) pairs, so each row sees the snapshot as of its own date and nothing later. The split is by
date with an embargo of one label horizon between train and test, so no training label looks into the test period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.feeds.contract import MONITORING_ONLY_COLUMNS
from features.ledger import open_ledger
from features.settings import FeatureSettings
from features.store.feast import historical_features, open_store, service_feature_names
from features.timeline import utc


@dataclass(frozen=True)
class TrainingSet:
    frame: pd.DataFrame  #: the labels with the FeatureService's features as of each row's date
    names: list[str]  #: the features, in the service's order (the model's column order)
    store: object  #: the Feast store they came from (for later point-in-time fetches)


def point_in_time(settings: FeatureSettings, feature_service: str, labels: pd.DataFrame) -> TrainingSet:
    """Join `labels` (tenancy_id, event_timestamp, …) to the named FeatureService's features as of each row."""
    store = open_store(settings)
    names = service_feature_names(store, feature_service)
    return TrainingSet(historical_features(store, labels, feature_service), names, store)


def thin_weeks(labels: pd.DataFrame, as_of: pd.DatetimeIndex, every_weeks: int) -> pd.DataFrame:
    """Keep the labels of every `every_weeks`-th weekly date, counting back from the latest (the most recent
    weeks are always kept; the past is thinned out)."""
    kept = as_of[::-1][::every_weeks]
    return labels[labels["event_timestamp"].isin(utc(kept))]


def monitoring_groups(settings: FeatureSettings, tenancy_ids: pd.Series) -> pd.DataFrame:
    """The monitoring-only attributes of the tenancies (never features): the bias gate's input. May be empty."""
    with open_ledger(settings.ledger) as ledger:
        register = ledger.read_table("tenancy_register")
    present = [c for c in MONITORING_ONLY_COLUMNS if c in register and register[c].notna().any()]
    return register.loc[register["tenancy_id"].isin(set(tenancy_ids)), ["tenancy_id", *present]]


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    train_end: pd.Timestamp
    test_start: pd.Timestamp


def time_split(frame: pd.DataFrame, embargo_weeks: int, valid_share: float = 0.15,
               test_share: float = 0.2) -> TimeSplit:
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
    tenancies = np.sort(frame["tenancy_id"].unique())
    rng = np.random.default_rng(seed)
    draw = pd.Series(rng.random(len(tenancies)), index=tenancies)
    part = frame["tenancy_id"].map(draw)
    test = frame[part < test_share]
    valid = frame[(part >= test_share) & (part < test_share + valid_share)]
    train = frame[part >= test_share + valid_share]
    stamp = frame["event_timestamp"].max()
    return TimeSplit(train, valid, test, stamp, stamp)
