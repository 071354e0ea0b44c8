"""`build_snapshots` (vectorised numpy) against an independent oracle: `bench.naive_features.naive_snapshots`,
the same features written the plain way (for each as_of date, filter the ledger and group by tenancy).

The portfolio goes through the same path as production (simulated delivery -> `ingest_delivery` into a DuckDB
ledger -> `read_table`), and the snapshot dates are the ones the feature build uses (every Sunday from the first
posting to the last). Hand-made ledgers add the edge cases a simulation may not hit.
"""

from __future__ import annotations

import pandas as pd
import pytest

from bench.naive_features import naive_snapshots
from features.feeds.ingest import ingest_delivery
from features.ledger import open_ledger
from features.transforms import build_snapshots, weekly_as_of_dates
from simulator import simulate_portfolio, write_portfolio

KEYS = ["tenancy_id", "event_timestamp"]


def assert_same_snapshots(fast: pd.DataFrame, slow: pd.DataFrame) -> None:
    """Same rows, same columns, every value equal to 1e-9 (relative) and NaN in the same places."""
    fast = fast.sort_values(KEYS).reset_index(drop=True)
    slow = slow.sort_values(KEYS).reset_index(drop=True)
    assert list(fast.columns) == list(slow.columns)
    pd.testing.assert_frame_equal(fast[KEYS], slow[KEYS])
    pd.testing.assert_frame_equal(fast, slow, check_exact=False, rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def ledger_frames(tmp_path_factory) -> dict[str, pd.DataFrame]:
    """A simulated portfolio (150 tenancies, 1 year) as the feature build reads it back from the ledger."""
    root = tmp_path_factory.mktemp("oracle")
    write_portfolio(simulate_portfolio(n_tenancies=150, years=1.0, seed=7), root / "delivery")
    with open_ledger(f"duckdb:///{root / 'ledger.duckdb'}") as ledger:
        ingest_delivery(ledger, root / "delivery", root / "quarantine")
        frames = {name: ledger.read_table(name) for name in ("tenancy_register", "transactions", "events")}
        tenancies = frames["tenancy_register"]
    # A later delivery moves a tenth of the tenancies to Universal Credit from a date: the register in force.
    moved = tenancies.iloc[::10].assign(delivery_seq=99, valid_from=pd.Timestamp("2024-06-01"),
                                        benefit_type="universal_credit")
    frames["versions"] = pd.concat([tenancies, moved])[["tenancy_id", "delivery_seq", "valid_from", "benefit_type"]]
    return frames


def test_build_snapshots_matches_the_naive_oracle_on_a_simulated_portfolio(ledger_frames) -> None:
    tenancies, transactions, events = (ledger_frames[n] for n in ("tenancy_register", "transactions", "events"))
    as_of = weekly_as_of_dates(transactions["posted_date"].min(), transactions["posted_date"].max())
    assert len(as_of) >= 40  # long enough for every 26-week window to fill
    versions = ledger_frames["versions"]
    fast = build_snapshots(tenancies, transactions, as_of, events, versions)
    slow = naive_snapshots(tenancies, transactions, as_of, events, versions)
    assert_same_snapshots(fast, slow)
    # Not a vacuous agreement: the portfolio exercises every kind of feature.
    for name in ("missed_periods_26w", "partial_periods_26w", "lateness_sd_26w", "cash_share_26w",
                 "direct_debit_share_26w", "benefit_share_26w", "dispute_open", "breathing_space_active",
                 "arrangement_active", "arrangements_kept", "arrangements_broken", "legal_stage",
                 "days_since_rent_change", "weeks_since_clear", "on_housing_benefit", "on_universal_credit"):
        assert (slow[name].fillna(0) != 0).any(), name
    assert slow["days_since_contact"].isna().any()


def test_snapshots_on_dates_starting_mid_history_match_the_oracle(ledger_frames) -> None:
    tenancies, transactions, events = (ledger_frames[n] for n in ("tenancy_register", "transactions", "events"))
    as_of = weekly_as_of_dates(transactions["posted_date"].min(), transactions["posted_date"].max())[-20:]
    assert_same_snapshots(build_snapshots(tenancies, transactions, as_of, events),
                          naive_snapshots(tenancies, transactions, as_of, events))


# -- hand-made edge cases -------------------------------------------------------------------------------------------

AS_OF = weekly_as_of_dates(pd.Timestamp("2024-01-01"), pd.Timestamp("2024-06-30"))  # 26 Sundays, Jan 7 .. Jun 30

TENANCIES = pd.DataFrame({
    "tenancy_id": ["A", "B", "C", "D"],
    "patch": ["North", "South", "East", "West"],
    "start_date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-01", "2024-02-14"]),
    "end_date": pd.to_datetime([None, None, None, "2024-04-07"]),  # D ends on a snapshot date: live on it
    "rent_amount_pence": [10_000, 45_000, 12_000, 9_000],
    "rent_frequency": ["weekly", "monthly", "weekly", "weekly"],
    "benefit_type": ["none", "housing_benefit", "universal_credit", None],
})


def ledger(rows: list[tuple[str, str, str, int, str | None]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["tenancy_id", "posted_date", "type", "amount_pence", "method"])
    frame["posted_date"] = pd.to_datetime(frame["posted_date"])
    return frame


def mondays(first: str, n: int) -> list[pd.Timestamp]:
    return list(pd.date_range(first, periods=n, freq="7D"))


def no_receipts() -> list:
    """A: weekly rent charged for 20 weeks, a recharge fee, and nothing ever paid."""
    rows = [("A", str(d.date()), "charge", 10_000, None) for d in mondays("2024-01-01", 20)]
    return rows + [("A", "2024-02-20", "fee", 3_500, None)]


def monthly() -> list:
    """B: monthly rent on the 1st, paid in many ways, with a rent rise in April."""
    rows = []
    for month in pd.date_range("2024-01-01", "2024-06-01", freq="MS"):
        rows.append(("B", str(month.date()), "charge", 43_333 if month.month < 4 else 45_000, None))
    return rows + [
        ("B", "2024-01-05", "payment", -43_333, "direct_debit"),  # paid in 4 days
        ("B", "2024-02-01", "benefit", -20_000, "benefit_direct"),  # part paid on the due day...
        ("B", "2024-02-14", "payment", -10_000, "cash"),  # ...more on day 13...
        ("B", "2024-02-15", "payment", -13_333, "cash"),  # ...and the rest on day 14 (still in its window)
        ("B", "2024-03-15", "payment", -43_333, "card"),  # paid 14 days late: lateness 14
        ("B", "2024-03-31", "payment", -45_000, "standing_order"),  # the day before the April charge: on time
        ("B", "2024-05-01", "payment", -22_500, "cash"),  # exactly half on the day
        ("B", "2024-05-01", "payment", -22_500, "card"),
        ("B", "2024-06-10", "adjustment", 5_000, None),
        ("B", "2024-06-20", "refund", 1_000, None),
    ]


def with_events() -> list:
    """C: weekly rent, irregular payments; the events feed tells its story (see EVENTS)."""
    rows = [("C", str(d.date()), "charge", 12_000, None) for d in mondays("2024-01-01", 26)]
    paid = {"2024-01-03": 12_000, "2024-01-20": 24_000, "2024-03-01": 6_000, "2024-04-06": 50_000,
            "2024-05-20": 12_000, "2024-06-16": 30_000}
    return rows + [("C", day, "benefit" if amount == 12_000 else "payment", -amount,
                    "benefit_direct" if amount == 12_000 else "card") for day, amount in paid.items()]


def short_tenancy() -> list:
    """D: starts mid-week, in credit at first, ends on a snapshot date; payments on window and cap boundaries."""
    rows = [("D", str(d.date()), "charge", 9_000, None) for d in mondays("2024-02-19", 7)]
    return rows + [
        ("D", "2024-02-14", "adjustment", -2_000, None),  # starts in credit
        ("D", "2024-02-25", "payment", -9_000, "cash"),  # on a snapshot date (Sunday): counts that day
        ("D", "2024-04-01", "payment", -4_000, "direct_debit"),  # not half of Feb 26's charge: with the next
        ("D", "2024-04-07", "payment", -9_000, "card"),  # payment, 41 days on: capped at 35; last day of tenancy
        ("D", "2024-04-20", "write_off", -1_000, None),  # after it ended
        ("Z", "2024-03-01", "payment", -9_999, "cash"),  # a tenancy not in the register: ignored
    ]


EVENTS = pd.DataFrame([
    ("C", "2024-01-10", "dispute_opened"), ("C", "2024-02-01", "dispute_resolved"),
    ("C", "2024-01-20", "arrangement_agreed"), ("C", "2024-03-01", "arrangement_broken"),
    ("C", "2024-03-15", "arrangement_agreed"), ("C", "2024-05-15", "arrangement_completed"),
    ("C", "2024-02-05", "breathing_space_started"), ("C", "2024-04-05", "breathing_space_ended"),
    ("C", "2024-05-26", "breathing_space_started"),  # still open at the end
    ("C", "2024-01-14", "contact_made"), ("C", "2024-03-20", "contact_made"),
    ("C", "2024-03-05", "legal_stage"), ("C", "2024-04-21", "legal_stage"),
    ("A", "2024-02-11", "contact_made"), ("D", "2024-03-03", "dispute_opened"),
    ("Z", "2024-03-03", "legal_stage"),  # not in the register: ignored
], columns=["tenancy_id", "event_date", "type"]).assign(event_date=lambda f: pd.to_datetime(f["event_date"]))

HAND_MADE = ledger(no_receipts() + monthly() + with_events() + short_tenancy())


@pytest.mark.parametrize("events", [EVENTS, None], ids=["with_events", "without_events"])
def test_hand_made_edge_cases_match_the_oracle(events) -> None:
    assert_same_snapshots(build_snapshots(TENANCIES, HAND_MADE, AS_OF, events),
                          naive_snapshots(TENANCIES, HAND_MADE, AS_OF, events))


def snapshot(snaps: pd.DataFrame, tenancy: str, day: str) -> pd.Series:
    rows = snaps[(snaps["tenancy_id"] == tenancy) & (snaps["event_timestamp"] == pd.Timestamp(day, tz="UTC"))]
    assert len(rows) == 1, (tenancy, day)
    return rows.iloc[0]


def test_the_oracle_itself_on_values_worked_out_by_hand() -> None:
    snaps = naive_snapshots(TENANCIES, HAND_MADE, AS_OF, EVENTS)
    a = snapshot(snaps, "A", "2024-03-03")
    # Charged Jan 1 .. Feb 26 (9 weeks) and a £35 fee; never paid.
    assert a["balance"] == pytest.approx(935.0) and a["arrears_weeks"] == pytest.approx(9.35)
    assert a["payments_26w"] == 0 and a["paid_to_charged_4w"] == 0.0
    assert pd.isna(a["days_since_last_payment"]) and pd.isna(a["cash_share_26w"])
    # Weekly windows open 3 days before each Monday, so each closes 3 days after its charge: Jan 1 .. Feb 26 closed.
    assert a["missed_periods_26w"] == 9
    assert a["lateness_mean_26w"] == 35 and a["lateness_sd_26w"] == 0  # Jan 1 .. Jan 22 capped at 35 by Mar 3
    # Never clear since the first charge: clear (nothing owed) on Dec 31, before the ledger began, 9 weeks back.
    assert a["weeks_since_clear"] == 9 and a["days_since_contact"] == 21

    b = snapshot(snaps, "B", "2024-03-03")
    # Monthly windows open 10 days before the 1st. Jan: paid day 4. Feb: £200 + £100 + £133.33 by Feb 15, all in
    # its window (Jan 22 .. Feb 19): paid in full; lateness 13 (half = £216.665 reached Feb 14).
    assert b["partial_periods_26w"] == 0 and b["missed_periods_26w"] == 0
    assert b["lateness_mean_26w"] == pytest.approx((4 + 13) / 2)
    assert b["benefit_share_26w"] == pytest.approx(20_000 / 86_666)
    assert b["rent_periods_per_year"] == 12 and b["on_housing_benefit"] == 1
    b = snapshot(snaps, "B", "2024-05-19")
    # Mar charge: paid on day 14 (in its window, lateness 14); Apr charge: paid the day before (on time: 0);
    # May: paid on the day (0). Lateness over Jan .. May: (4 + 13 + 14 + 0 + 0) / 5.
    assert b["missed_periods_26w"] == 0 and b["partial_periods_26w"] == 0
    assert b["lateness_mean_26w"] == pytest.approx(31 / 5)
    assert b["days_since_rent_change"] == (pd.Timestamp("2024-05-19") - pd.Timestamp("2024-04-01")).days

    c = snapshot(snaps, "C", "2024-03-10")
    assert (c["dispute_open"], c["breathing_space_active"], c["arrangement_active"]) == (0, 1, 0)
    assert (c["arrangements_broken"], c["arrangements_kept"], c["legal_stage"]) == (1, 0, 1)
    c = snapshot(snaps, "C", "2024-06-30")
    assert (c["breathing_space_active"], c["arrangement_active"], c["arrangements_kept"], c["legal_stage"]) == (
        1, 0, 1, 2)
    assert c["days_since_contact"] == (pd.Timestamp("2024-06-30") - pd.Timestamp("2024-03-20")).days

    d = snaps[snaps["tenancy_id"] == "D"]
    assert d["event_timestamp"].min() == pd.Timestamp("2024-02-18", tz="UTC")
    assert d["event_timestamp"].max() == pd.Timestamp("2024-04-07", tz="UTC")
    assert snapshot(snaps, "D", "2024-02-18")["balance"] == -20.0
    assert snapshot(snaps, "D", "2024-02-25")["days_since_last_payment"] == 0


def test_weekly_rent_is_the_rent_at_the_snapshot_date() -> None:
    # The register, exported in May, holds the April rent (£105); until April the rent charged was £100.
    tenancy = TENANCIES.iloc[:1].assign(rent_amount_pence=10_500)
    rows = [("A", str(d.date()), "charge", 10_000 if d < pd.Timestamp("2024-04-01") else 10_500, None)
            for d in mondays("2024-01-01", 20)]
    snaps = build_snapshots(tenancy, ledger(rows), AS_OF)
    march = snapshot(snaps, "A", "2024-03-03")
    assert march["weekly_rent"] == pytest.approx(100.0)
    assert march["arrears_weeks"] == pytest.approx(9.0)  # 9 unpaid weeks of £100
