"""Features as of any requested date, exactly, never silently empty.

The offline store holds a weekly grid of snapshots. A training row dated between two grid dates would otherwise
get the older snapshot (or, past the views' time-to-live, nothing at all), and training would go on without a
word. Here every requested (tenancy, date) that the store does not hold at exactly that date is computed from the
ledger as of that date, with the same code as the grid (`features.transforms.build_snapshots` on a weekly grid that
ends on that date), and added to the offline store, so Feast's point-in-time join then finds a snapshot dated
exactly on the requested day. What cannot be computed is counted, with the reason:

- the date is after the ledger's latest posting (the ledger does not cover it yet) or before its first;
- the tenancy is not in the register;
- the tenancy was not live on that date (not started, or ended).

Rows computed here are marked `requested` in the offline store; a feature build (full, or the touched tenancies')
replaces them with the rest, so none outlives the ledger rows it was computed from.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.settings import FeatureSettings
from features.store.offline import (
    GRID,
    KIND_COLUMN,
    REQUESTED,
    append_offline,
    ledger_dates,
    load_ledger_slice,
    read_offline,
    snapshots,
    tenancy_partitions,
)
from features.timeline import weekly_as_of_dates

KEYS = ["tenancy_id", "event_timestamp"]


@dataclass(frozen=True)
class Coverage:
    """How the requested (tenancy, date) pairs were served."""

    requested: int  #: distinct pairs asked for
    stored: int  #: already in the offline store at exactly that date
    computed: int  #: computed from the ledger now and added to the offline store
    missing: pd.DataFrame  #: tenancy_id, event_timestamp, reason: pairs with no features at that date

    def summary(self, examples: int = 3) -> str:
        """The missing pairs by reason, with a few of their dates: what a person needs to fix them."""
        if self.missing.empty:
            return f"all {self.requested:,} (tenancy, date) pairs have features"
        parts = []
        for reason, rows in self.missing.groupby("reason", sort=True):
            dates = sorted(rows["event_timestamp"].dt.strftime("%Y-%m-%d").unique())
            shown = ", ".join(dates[:examples]) + (f" and {len(dates) - examples} more dates" if len(dates) >
                                                     examples else "")
            parts.append(f"{len(rows):,} {reason} (dated {shown})")
        return (f"{len(self.missing):,} of {self.requested:,} (tenancy, date) pairs have no features: "
                + "; ".join(parts))


def day_stamps(stamps: pd.Series) -> pd.Series:
    """Timestamps as the UTC midnight of their day (postings are dated by day; snapshots are as of a day)."""
    return pd.to_datetime(stamps, utc=True).dt.floor("D").astype("datetime64[us, UTC]")


def day_keys(entity_df: pd.DataFrame) -> pd.DataFrame:
    """The distinct (tenancy_id, day) pairs of an entity frame."""
    return pd.DataFrame({"tenancy_id": entity_df["tenancy_id"].astype(str).to_numpy(),
                         "event_timestamp": day_stamps(entity_df["event_timestamp"]).to_numpy()}
                        ).drop_duplicates().reset_index(drop=True)


def _outside_ledger(keys: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp) -> pd.Series:
    day = keys["event_timestamp"].dt.tz_localize(None)
    reason = pd.Series(None, index=keys.index, dtype=object)
    reason[day > last] = f"dated after the ledger's latest posting ({last:%Y-%m-%d}): the ledger does not cover them"
    reason[day < first] = f"dated before the ledger's first posting ({first:%Y-%m-%d})"
    return reason


def _compute(settings: FeatureSettings, wanted: pd.DataFrame) -> tuple[pd.DataFrame, set[str]]:
    """Snapshots of the `wanted` pairs, each on a weekly grid ending on its own weekday, tenancies by partition;
    and which of the wanted tenancies the register holds (to say why a pair has none)."""
    found, registered = [], set()
    weekday = wanted["event_timestamp"].dt.weekday
    for day_of_week, group in wanted.groupby(weekday):
        days = group["event_timestamp"].dt.tz_localize(None)
        grid = weekly_as_of_dates(days.min(), days.max(), weekday=int(day_of_week))
        ids = group["tenancy_id"].unique()
        size = settings.partition_tenancies
        for chunk in tenancy_partitions(ids, -(-len(ids) // size)):
            part = load_ledger_slice(settings, chunk, read_only=True)
            registered |= set(part.tenancies["tenancy_id"])
            found.append(snapshots(part, grid).merge(group[KEYS], on=KEYS, how="inner"))
    return (pd.concat(found, ignore_index=True) if found else wanted.iloc[:0]), registered


def _not_found_reason(missing: pd.DataFrame, register_ids: set[str]) -> pd.Series:
    known = missing["tenancy_id"].isin(register_ids)
    return pd.Series(["not live on that date (not started yet, or ended)" if k else "not in the tenancy register"
                      for k in known], index=missing.index, dtype=object)


def exact_snapshots(settings: FeatureSettings, entity_df: pd.DataFrame) -> Coverage:
    """Make sure the offline store holds a snapshot dated exactly on each requested day; say what cannot be."""
    keys = day_keys(entity_df)
    first, last = ledger_dates(settings)
    stored = read_offline(settings, columns=KEYS, kinds=(GRID, REQUESTED))
    have = keys.merge(stored.drop_duplicates(), on=KEYS, how="left", indicator=True)["_merge"].eq("both")
    todo = keys[~have.to_numpy()]
    outside = _outside_ledger(todo, first, last)
    missing = todo[outside.notna()].assign(reason=outside[outside.notna()])
    computed, registered = _compute(settings, todo[outside.isna()]) if outside.isna().any() else (todo.iloc[:0],
                                                                                                   set())
    not_found = todo[outside.isna()].merge(computed[KEYS], on=KEYS, how="left", indicator=True)
    not_found = not_found[not_found["_merge"] == "left_only"].drop(columns="_merge")
    if not not_found.empty:
        missing = pd.concat([missing, not_found.assign(reason=_not_found_reason(not_found, registered))])
    if not computed.empty:
        append_offline(settings, computed.assign(**{KIND_COLUMN: REQUESTED}))
    return Coverage(len(keys), int(have.sum()), len(computed), missing.reset_index(drop=True))
