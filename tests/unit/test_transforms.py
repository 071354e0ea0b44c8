"""Feature logic on tiny hand-made ledgers whose answers can be worked out by hand."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.catalogue import FEATURES, reason_text
from features.transforms import FEATURE_COLUMNS, build_snapshots, weekly_as_of_dates
from training.labels import RiskLabelSpec, arrears_growth_labels

TENANCIES = pd.DataFrame({
    "tenancy_id": ["T1", "T2"],
    "patch": ["North", "South"],
    "start_date": pd.to_datetime(["2024-01-01", "2024-01-01"]),
    "end_date": pd.to_datetime([None, "2024-02-15"]),
    "rent_amount_pence": [10_000, 20_000],
    "rent_frequency": ["weekly", "weekly"],
})


def tx(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["tenancy_id", "posted_date", "type", "amount_pence"])
    frame["posted_date"] = pd.to_datetime(frame["posted_date"])
    return frame


def weekly_rent_and_payments(tenancy: str, rent: int, weeks: int, paid_weeks: set[int]) -> list:
    start = pd.Timestamp("2024-01-01")  # a Monday
    rows = []
    for w in range(weeks):
        day = start + pd.Timedelta(weeks=w)
        rows.append((tenancy, str(day.date()), "charge", rent))
        if w in paid_weeks:
            rows.append((tenancy, str((day + pd.Timedelta(days=2)).date()), "payment", -rent))
    return rows


AS_OF = weekly_as_of_dates(pd.Timestamp("2024-01-01"), pd.Timestamp("2024-03-31"))


def test_as_of_dates_are_sundays() -> None:
    assert AS_OF[0] == pd.Timestamp("2024-01-07") and all(d.weekday() == 6 for d in AS_OF)


def test_balance_arrears_and_days_since_payment_by_hand() -> None:
    # T1 pays for weeks 0-4 (two days after each Monday charge), then stops.
    ledger = tx(weekly_rent_and_payments("T1", 10_000, 13, {0, 1, 2, 3, 4}))
    snaps = build_snapshots(TENANCIES.iloc[:1], ledger, AS_OF).set_index("event_timestamp")
    row = snaps.loc[pd.Timestamp("2024-02-25", tz="UTC")]
    # Charges on Jan 1, 8, 15, 22, 29, Feb 5, 12, 19 = 8 weeks; paid 5 → owes 3 weeks.
    assert row["balance"] == pytest.approx(300.0)
    assert row["arrears_weeks"] == pytest.approx(3.0)
    assert row["days_since_last_payment"] == (pd.Timestamp("2024-02-25") - pd.Timestamp("2024-01-31")).days
    assert row["balance_change_4w"] == pytest.approx(300.0)  # clear on Jan 28, 3 weeks behind now
    # Last clear at the Feb 4 snapshot (5 charges, 5 payments), three weeks before Feb 25.
    assert row["weeks_since_clear"] == 3
    assert row["payments_13w"] == 5
    assert row["weekly_rent"] == pytest.approx(100.0)


def test_tenancy_not_snapshotted_after_it_ends() -> None:
    ledger = tx(weekly_rent_and_payments("T2", 20_000, 7, set(range(7))))
    snaps = build_snapshots(TENANCIES.iloc[1:], ledger, AS_OF)
    assert snaps["event_timestamp"].max() == pd.Timestamp("2024-02-11", tz="UTC")


def test_inputs_are_not_modified() -> None:
    ledger = tx(weekly_rent_and_payments("T1", 10_000, 13, {0, 2}))
    before_t, before_x = TENANCIES.copy(), ledger.copy()
    build_snapshots(TENANCIES, ledger, AS_OF)
    pd.testing.assert_frame_equal(TENANCIES, before_t)
    pd.testing.assert_frame_equal(ledger, before_x)


@settings(max_examples=40, deadline=None)
@given(
    paid=st.sets(st.integers(0, 12)),
    late_week=st.integers(0, 12),
    late_amount=st.integers(1, 500_000),
)
def test_a_later_transaction_never_changes_an_earlier_snapshot(paid: set[int], late_week: int,
                                                                late_amount: int) -> None:
    ledger = tx(weekly_rent_and_payments("T1", 10_000, 13, paid))
    cutoff = AS_OF[late_week]
    later = tx([("T1", str((cutoff + pd.Timedelta(days=1)).date()), "payment", -late_amount)])
    before = build_snapshots(TENANCIES.iloc[:1], ledger, AS_OF)
    after = build_snapshots(TENANCIES.iloc[:1], pd.concat([ledger, later]), AS_OF)
    past = before["event_timestamp"] <= cutoff.tz_localize("UTC")
    pd.testing.assert_frame_equal(before[past], after[past])
    assert not before[~past]["balance"].equals(after[~past]["balance"]) or past.all()


def test_partition_by_tenancy_gives_the_same_snapshots() -> None:
    ledger = pd.concat([tx(weekly_rent_and_payments("T1", 10_000, 13, {1, 2, 5})),
                        tx(weekly_rent_and_payments("T2", 20_000, 7, {0, 3}))])
    whole = build_snapshots(TENANCIES, ledger, AS_OF)
    parts = pd.concat([build_snapshots(TENANCIES[TENANCIES.tenancy_id == t], ledger[ledger.tenancy_id == t], AS_OF)
                       for t in ("T2", "T1")])
    parts = parts.sort_values(["tenancy_id", "event_timestamp"]).reset_index(drop=True)
    whole = whole.sort_values(["tenancy_id", "event_timestamp"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(whole, parts)


LONG_AS_OF = weekly_as_of_dates(pd.Timestamp("2024-01-01"), pd.Timestamp("2024-06-30"))


def test_label_marks_persistent_growth_within_horizon() -> None:
    # T1 pays weeks 0-11, then stops from the Mar 25 charge on.
    ledger = tx(weekly_rent_and_payments("T1", 10_000, 26, set(range(12))))
    labels = arrears_growth_labels(TENANCIES.iloc[:1], ledger, LONG_AS_OF, RiskLabelSpec(horizon_weeks=8))
    by_date = labels.set_index("event_timestamp")["label"]
    # Feb 4: the next 8 weeks end on Mar 31, and the settled balance (lowest of Mar 3..Mar 31) is still 0.
    assert by_date[pd.Timestamp("2024-02-04", tz="UTC")] == 0
    # Mar 10: by May 5 the settled balance (lowest of Apr 7..May 5) is two weeks' rent.
    assert by_date[pd.Timestamp("2024-03-10", tz="UTC")] == 1
    # The last 8 as_of dates have no full horizon and are not labelled.
    assert labels["event_timestamp"].max() == LONG_AS_OF[-9].tz_localize("UTC")


def test_paying_days_after_a_monthly_charge_is_not_arrears_growth() -> None:
    monthly = TENANCIES.iloc[:1].assign(rent_amount_pence=43_333, rent_frequency="monthly")
    rows = []
    for month in pd.date_range("2024-01-01", "2024-06-01", freq="MS"):
        rows += [("T1", str(month.date()), "charge", 43_333),
                 ("T1", str((month + pd.Timedelta(days=4)).date()), "payment", -43_333)]
    labels = arrears_growth_labels(monthly, tx(rows), LONG_AS_OF, RiskLabelSpec(horizon_weeks=8))
    assert len(labels) > 5 and labels["label"].sum() == 0
    # ...while missing one month's payment is.
    missed = tx([r for r in rows if r[1] != "2024-03-05"])
    labels = arrears_growth_labels(monthly, missed, LONG_AS_OF, RiskLabelSpec(horizon_weeks=8))
    assert labels["label"].sum() > 0


def test_every_feature_has_words() -> None:
    assert set(FEATURE_COLUMNS) == set(FEATURES)
    for name in FEATURE_COLUMNS:
        assert FEATURES[name].description and FEATURES[name].unit
        for value in (0.0, 1.0, 3.0, 150.0, float("nan")):
            text = FEATURES[name].text(value)
            assert text and not re.search(r"\bnan\b", text.lower()), (name, value, text)
    assert reason_text("days_since_last_payment", 23, 0.4) == "no payment for 23 days (raises risk)"
    assert reason_text("balance", -50, -0.2) == "£50 in credit (lowers risk)"


# -- the definitions' known faults (issue 11): each of these failed before its fix ---------------------------------

def _tx_with_reference(rows: list[tuple[str, str, str, int, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["tenancy_id", "posted_date", "type", "amount_pence", "reference"])
    frame["posted_date"] = pd.to_datetime(frame["posted_date"])
    return frame


def test_a_standing_order_a_week_before_the_rent_day_pays_on_time() -> None:
    """Monthly rent on the 1st, paid every 24th of the month before: never a missed period, never late."""
    monthly = TENANCIES.iloc[:1].assign(rent_amount_pence=43_333, rent_frequency="monthly")
    rows = [("T1", "2023-12-24", "payment", -43_333)]  # January's rent, paid before the tenancy's first charge
    for month in pd.date_range("2024-01-01", "2024-06-01", freq="MS"):
        rows += [("T1", str(month.date()), "charge", 43_333),
                 ("T1", str((month + pd.Timedelta(days=23)).date()), "payment", -43_333)]
    snaps = build_snapshots(monthly, tx(rows), LONG_AS_OF).set_index("event_timestamp")
    last = snaps.iloc[-1]
    assert last["missed_periods_26w"] == 0 and last["partial_periods_26w"] == 0
    assert last["lateness_mean_26w"] == 0


def test_a_monthly_benefit_credit_pays_the_weekly_rents_it_is_for() -> None:
    """Weekly rent of £100 on Mondays, Universal Credit of £434 on the 10th of each month: no period missed."""
    rows = [("T1", str(day.date()), "charge", 10_000) for day in pd.date_range("2024-01-01", "2024-06-24", freq="7D")]
    rows += [("T1", str(day.date()), "benefit", -43_400) for day in pd.date_range("2023-12-01", "2024-06-10",
                                                                                    freq="MS") + pd.Timedelta(days=9)]
    snaps = build_snapshots(TENANCIES.iloc[:1], tx(rows), LONG_AS_OF).set_index("event_timestamp")
    last = snaps.iloc[-1]
    assert last["missed_periods_26w"] == 0
    assert last["lateness_mean_26w"] <= 14  # paid ahead for most weeks, up to a month late for a few


def test_an_opening_balance_is_not_a_change_in_arrears() -> None:
    """A history starting with £500 of arrears carried in, then rent paid in full: no balance change."""
    rows = [("T1", "2024-01-01", "adjustment", 50_000, "Opening balance")]
    rows += [(t, d, kind, amount, "") for t, d, kind, amount in weekly_rent_and_payments("T1", 10_000, 13,
                                                                                         set(range(13)))]
    snaps = build_snapshots(TENANCIES.iloc[:1], _tx_with_reference(rows), AS_OF).set_index("event_timestamp")
    first = snaps.iloc[1]  # two weeks in: the 4-week window reaches back before the history
    assert first["balance"] == pytest.approx(500.0)
    assert first["balance_change_4w"] == 0 and first["balance_change_13w"] == 0 and first["settled_change_4w"] == 0


def test_a_returned_direct_debit_is_not_a_payment() -> None:
    """Rent paid by direct debit, then the debit returned three days later: nothing was paid that month."""
    rows = [(t, d, kind, amount, "Direct debit") for t, d, kind, amount in weekly_rent_and_payments(
        "T1", 10_000, 13, set(range(13)))]
    returned = {"2024-02-14", "2024-02-21", "2024-02-28"}
    rows += [("T1", str((pd.Timestamp(d) + pd.Timedelta(days=3)).date()), "adjustment", 10_000,
              "Returned direct debit") for d in returned]
    snaps = build_snapshots(TENANCIES.iloc[:1], _tx_with_reference(rows), AS_OF).set_index("event_timestamp")
    row = snaps.loc[pd.Timestamp("2024-03-03", tz="UTC")]
    assert row["payments_4w"] == 1 and row["paid_to_charged_4w"] == pytest.approx(0.25)
    # Each return is netted in the window it is posted in: by the end of March, the three periods it emptied.
    assert snaps.loc[pd.Timestamp("2024-03-31", tz="UTC"), "missed_periods_26w"] == 3


def test_a_later_rent_rise_does_not_move_an_earlier_label() -> None:
    """The arrears threshold is judged against the rent in force at as_of, not the register's newer rent."""
    rows = weekly_rent_and_payments("T1", 10_000, 26, set(range(26)) - {9, 10, 11, 12})
    before = arrears_growth_labels(TENANCIES.iloc[:1], tx(rows), LONG_AS_OF, RiskLabelSpec(horizon_weeks=8))
    risen = TENANCIES.iloc[:1].assign(rent_amount_pence=40_000)  # the register's rent after a later rise
    after = arrears_growth_labels(risen, tx(rows), LONG_AS_OF, RiskLabelSpec(horizon_weeks=8))
    pd.testing.assert_frame_equal(before, after)
    assert before["label"].sum() > 0


def test_benefit_flags_are_the_register_version_in_force_at_the_date() -> None:
    """Housing Benefit until a move to Universal Credit dated 1 March (delivered later, as a new version): snapshots
    before March say Housing Benefit, after it Universal Credit (the register's latest version says UC throughout)."""
    latest = TENANCIES.iloc[:1].assign(benefit_type="universal_credit")
    versions = pd.DataFrame({"tenancy_id": ["T1", "T1"], "delivery_seq": [1, 2],
                             "valid_from": pd.to_datetime([None, "2024-03-01"]),
                             "benefit_type": ["housing_benefit", "universal_credit"]})
    ledger = tx(weekly_rent_and_payments("T1", 10_000, 13, set(range(13))))
    snaps = build_snapshots(latest, ledger, AS_OF, versions=versions).set_index("event_timestamp")
    before, after = snaps.loc[pd.Timestamp("2024-02-25", tz="UTC")], snaps.loc[pd.Timestamp("2024-03-03", tz="UTC")]
    assert (before["on_housing_benefit"], before["on_universal_credit"]) == (1, 0)
    assert (after["on_housing_benefit"], after["on_universal_credit"]) == (0, 1)
    # Without versions (a caller with only the register), the register's latest, as before.
    plain = build_snapshots(latest, ledger, AS_OF).set_index("event_timestamp")
    assert (plain["on_universal_credit"] == 1).all()
