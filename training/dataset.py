"""Training sets: labels joined point in time to features through a Feast FeatureService, and the splits.

Every model's rows are built by `point_in_time`: features come only from `features.store.feast.historical_features`
for (tenancy, as_of) pairs, so each row sees the snapshot as of its own date and nothing later. The split is by
date with an embargo of one label horizon between train and test, so no training label looks into the test period.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.feeds.contract import MONITORING_ONLY_COLUMNS
from features.protected import monitoring_attributes
from features.settings import FeatureSettings
from features.store.exact import Coverage, day_stamps, exact_snapshots
from features.store.feast import historical_features, open_store, service_feature_names
from features.timeline import utc


class MissingFeatures(ValueError):
    """Too many training rows have no features as of their date; the message says which dates and why."""


@dataclass(frozen=True)
class TrainingSet:
    frame: pd.DataFrame  #: the labels with the FeatureService's features as of each row's date
    names: list[str]  #: the features, in the service's order (the model's column order)
    store: object  #: the Feast store they came from (for later point-in-time fetches)
    coverage: Coverage | None = None  #: how the rows' features were found, and which rows had none


def point_in_time(settings: FeatureSettings, feature_service: str, labels: pd.DataFrame,
                  max_missing_share: float = 0.01) -> TrainingSet:
    """Join `labels` (tenancy_id, event_timestamp, …) to the named FeatureService's features as of each row's
    date, exactly (`features.store.exact`). Rows with no features at their date are left out and counted; more than
    `max_missing_share` of them refuses (MissingFeatures), naming the dates and the reasons."""
    labels = labels.assign(event_timestamp=day_stamps(labels["event_timestamp"]))
    coverage = exact_snapshots(settings, labels)
    lost = labels.merge(coverage.missing[["tenancy_id", "event_timestamp"]], how="left", indicator=True)["_merge"]
    lost = (lost == "both").to_numpy()
    if lost.mean() > max_missing_share:
        raise MissingFeatures(f"{coverage.summary()}: {lost.mean():.1%} of the rows, more than "
                              f"{max_missing_share:.0%}. Fix their dates or tenancies (or ingest the deliveries that "
                              "cover them), or set ARREARS_MAX_MISSING_FEATURE_SHARE to train on the rest.")
    labels = labels[~lost]
    store = open_store(settings)
    names = service_feature_names(store, feature_service)
    return TrainingSet(historical_features(store, labels, feature_service), names, store, coverage)


def coverage_record(coverage: Coverage | None) -> tuple[dict[str, float], list[str]]:
    """What a training run logs of its rows' features: counts as metrics, and a note when any row had none."""
    if coverage is None:
        return {}, []
    metrics = {"feature_rows": float(coverage.requested), "feature_rows_computed": float(coverage.computed),
               "feature_rows_missing": float(len(coverage.missing))}
    return metrics, ([f"{coverage.summary()}; those rows were left out"] if len(coverage.missing) else [])


def weekday_shift(tenancy_ids: pd.Series) -> np.ndarray:
    """Each tenancy's training weekday, as days before the weekly (Sunday) grid: 0-6, fixed by a hash of its id.

    Serving happens on whatever day the ledger ends. Training every tenancy on Sundays would teach the model one
    weekday only (and the days-since features shift with the weekday); spreading tenancies over the seven days
    puts every weekday in the training rows at the cost of one feature build, not seven."""
    ids = pd.Series(tenancy_ids).astype(str).to_numpy(dtype=object)
    return (pd.util.hash_array(ids, hash_key="arrears-weekday1") % 7).astype(np.int64)


def on_every_weekday(make_labels: Callable[[pd.DatetimeIndex], pd.DataFrame],
                     as_of: pd.DatetimeIndex) -> pd.DataFrame:
    """Labels dated on each tenancy's own weekday: `make_labels(dates)` on the weekly grid shifted back by 0-6
    days, keeping from each shift the rows of the tenancies whose `weekday_shift` it is. A shifted date before the
    grid's first is dropped: the grid starts with the data, so it would be dated before the ledger's first posting
    (with no features; whether the thinned grid kept that week used to decide if training failed)."""
    parts = []
    for shift in range(7):
        dates = as_of - pd.Timedelta(days=shift)
        dates = dates[dates >= as_of[0]]
        if dates.empty:
            continue
        labels = make_labels(dates)
        parts.append(labels[weekday_shift(labels["tenancy_id"]) == shift])
    return pd.concat(parts, ignore_index=True).sort_values(["event_timestamp", "tenancy_id"], ignore_index=True)


def thin_weeks(labels: pd.DataFrame, as_of: pd.DatetimeIndex, every_weeks: int) -> pd.DataFrame:
    """Keep the labels of every `every_weeks`-th week of the weekly grid `as_of`, counting back from the latest
    (the most recent weeks are always kept; the past is thinned out). A row belongs to the week whose grid date
    is the first on or after its own date."""
    kept = np.zeros(len(as_of), dtype=bool)
    kept[::-1][::every_weeks] = True
    week = utc(as_of).searchsorted(labels["event_timestamp"], side="left")
    in_grid = week < len(as_of)
    return labels[in_grid & kept[np.minimum(week, len(as_of) - 1)]]


def monitoring_groups(settings: FeatureSettings, tenancy_ids: pd.Series) -> pd.DataFrame:
    """The monitoring-only attributes of the tenancies (never features): the bias gate's input. May be empty."""
    return monitoring_attributes(settings, tenancy_ids, MONITORING_ONLY_COLUMNS)


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    #: The first date no training label reaches (train_end plus the embargo): from here on the trees have seen no
    #: outcome; the validation rows only chose how many trees to keep.
    valid_start: pd.Timestamp


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
    return TimeSplit(train, valid, test, train_end, test_start, valid_start)


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
    return TimeSplit(train, valid, test, stamp, stamp, stamp)
