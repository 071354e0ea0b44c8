"""What monitoring compares, read from what the other stages wrote (never recomputed by other rules here).

Drift is judged **like with like**: the current data is every tenancy live on the served date with its features
as of that date, exactly; the reference is built the same way on the same weekday some weeks earlier (by default
4 to 7 weeks back, pooled), with the same population definition (live on that day) and through the same
FeatureService. Comparing a Saturday's served snapshot with the Sundays a model was trained on made most features
"drift" by construction (the days-since features move with the weekday and trend with the calendar); a reference
of recent served days asks only whether the portfolio has moved. Both sides are scored by the champion, so the
scores drift report sees the same model on both.

The training-window comparison (`champion_drift_inputs`) is kept for `arrears monitor drift --against training`:
how far today's portfolio is from what the champion learnt from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from features.ledger import open_ledger
from features.store.feast import exact_features, open_store, service_feature_names
from features.store.offline import ledger_dates, live_tenancies
from features.timeline import population, utc
from serving.runs.explain import raw_scores
from serving.settings import ServingSettings
from training import registry

#: Weeks before the served date whose same weekday makes the reference (pooled).
REFERENCE_WEEKS: tuple[int, ...] = (4, 5, 6, 7)
#: A drift comparison tolerates this share of rows without features (the rest are counted and reported).
MAX_MISSING_SHARE = 0.05


@dataclass(frozen=True)
class DriftInputs:
    reference: pd.DataFrame  #: the reference rows' features (and `risk_score` when scored)
    current: pd.DataFrame  #: every live tenancy as of the served date
    columns: list[str]  #: the model's features
    model_version: str
    current_date: pd.Timestamp | None = None
    reference_dates: tuple[pd.Timestamp, ...] = ()
    missing: int = 0  #: rows of the population with no features as of their date (left out, counted)


def champion_drift_inputs(settings: ServingSettings) -> DriftInputs:
    """The champion's training reference sample versus the current snapshot (not like with like)."""
    champion = registry.model_by_alias(settings, registry.RISK_MODEL, registry.CHAMPION)
    reference = registry.load_reference(settings, champion.version)
    return DriftInputs(reference, live_tenancies(settings), list(reference.columns), champion.version)


def served_date(settings: ServingSettings) -> pd.Timestamp:
    """The date the served worklist is as of: the live snapshot's date."""
    live = live_tenancies(settings)
    return pd.Timestamp(live["event_timestamp"].max()).tz_localize(None).normalize()


def like_with_like_inputs(settings: ServingSettings, as_of: pd.Timestamp | None = None,
                          weeks_back: Sequence[int] = REFERENCE_WEEKS) -> DriftInputs:
    """The served date's population against the same weekday `weeks_back` weeks earlier, both through the
    champion's FeatureService as of each row's own date, both scored by the champion (`risk_score`)."""
    ref = registry.model_by_alias(settings, registry.RISK_MODEL, registry.CHAMPION)
    champion = registry.load_version(settings, ref)
    as_of = served_date(settings) if as_of is None else pd.Timestamp(as_of).normalize()
    reference_days = tuple(as_of - pd.Timedelta(weeks=int(k)) for k in weeks_back)
    first_posting, _ = ledger_dates(settings)
    reference_days = tuple(d for d in reference_days if d > first_posting)
    if not reference_days:
        raise ValueError(f"The ledger starts {first_posting.date()}: too recent for a reference {min(weeks_back)} "
                         "or more weeks before the served date. Run drift once the ledger is longer.")
    with open_ledger(settings.ledger, read_only=True) as ledger:  # the register only: who is live on each day
        register = ledger.read_table("tenancy_register")
    rows = population(register, (*reference_days, as_of))
    store = open_store(settings)
    frame, missing = exact_features(settings, store, rows, ref.feature_service)
    if len(missing) > MAX_MISSING_SHARE * len(rows):
        raise ValueError(f"{len(missing):,} of {len(rows):,} rows to compare have no features as of their date: "
                         "run `arrears features` to bring the feature store up to date with the ledger")
    frame = frame.assign(risk_score=champion.calibration(raw_scores(frame, champion.booster)))
    current_stamp = utc(pd.DatetimeIndex([as_of]))[0]
    is_current = frame["event_timestamp"] == current_stamp
    return DriftInputs(frame[~is_current].reset_index(drop=True), frame[is_current].reset_index(drop=True),
                       service_feature_names(store, ref.feature_service), ref.version, as_of, reference_days,
                       len(missing))

