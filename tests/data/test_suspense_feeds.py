"""The receipts-in-suspense and DWP schedule feeds: every row accepted, quarantined with a reason or counted as a
duplicate; a receipt delivered open and again cleared is a new version, and `suspense_register` is the current one.
Run on DuckDB and on real Postgres."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.feeds.ingest import Clock, ingest_delivery
from features.ledger import open_ledger
from tests.support.deliveries import TENANCIES, write_delivery

CLOCK = Clock(date(2024, 3, 1))

SUSPENSE = """receipt_id,received_date,amount,reference,payer,source,cleared_tenancy_id,cleared_date
R1,2024-01-08,100.00,T1 RENT,,bank,,
R2,2024-01-09,£433.33,,A PAYER,bank,T2,2024-01-12
R3,2024-01-10,250.00,DWP 7001,,dwp,,
"""

SCHEDULES = """settlement_number,line_reference,payment_date,amount,tenancy_reference,scheme,period_start,period_end
7001,UC-001,2024-01-10,150.00,T1,universal_credit,2023-12-11,2024-01-07
7001,UC-002,2024-01-10,100.00,,universal_credit,2023-12-11,2024-01-07
7001,UC-003,2024-01-10,80.00,NOT-A-TENANCY,universal_credit,2023-12-11,2024-01-07
"""


def ingest(ledger_url: str, folder: Path, tmp_path: Path):
    with open_ledger(ledger_url) as ledger:
        summary = ingest_delivery(ledger, folder, tmp_path / "quarantine", clock=CLOCK)
        quarantine = ledger.query("SELECT feed, line, column_name, value, reason FROM quarantine "
                                  "WHERE delivery_seq = ? ORDER BY feed, line, column_name", [summary.delivery_seq])
        return summary, quarantine


def test_clean_feeds_are_accepted_and_the_dwp_reference_is_kept_as_delivered(ledger_url: str, tmp_path: Path) -> None:
    folder = write_delivery(tmp_path / "d1", tenancies=TENANCIES, suspense=SUSPENSE, dwp_schedules=SCHEDULES)
    summary, quarantine = ingest(ledger_url, folder, tmp_path)
    assert quarantine.empty
    assert (summary.feeds["suspense"].accepted, summary.feeds["dwp_schedules"].accepted) == (3, 3)
    assert all(feed.reconciles for feed in summary.feeds.values())
    with open_ledger(ledger_url) as ledger:
        lines = ledger.read_table("dwp_schedules").set_index("line_reference")
        receipts = ledger.read_table("suspense_register").set_index("receipt_id")
    assert lines.loc["UC-003", "tenancy_reference"] == "NOT-A-TENANCY"  # free text from the DWP, not a foreign key
    assert pd.isna(lines.loc["UC-002", "tenancy_reference"])
    assert lines.loc["UC-001", "amount_pence"] == 15000
    assert lines.loc["UC-001", "period_end"] == pd.Timestamp("2024-01-07")
    assert receipts.loc["R2", "amount_pence"] == 43333 and receipts.loc["R2", "cleared_tenancy_id"] == "T2"
    assert receipts.loc["R2", "payer"] == "A PAYER" and receipts.loc["R3", "source"] == "dwp"


BAD_RECEIPTS = [
    ("R9,2024-01-08,0,T1,,bank,,", "amount", "amount must be more than zero"),
    ("R9,2024-01-08,-5.00,T1,,bank,,", "amount", "amount must be more than zero"),
    ("R9,2024-01-08,5.00,T1,,bank,T1,2024-01-07", "cleared_date", "cleared_date is before received_date"),
    ("R9,2024-01-08,5.00,T1,,bank,T1,", "cleared_tenancy_id", "cleared_tenancy_id and cleared_date go together"),
    ("R9,2024-01-08,5.00,T1,,bank,,2024-01-09", "cleared_tenancy_id",
     "cleared_tenancy_id and cleared_date go together"),
    ("R9,2024-01-08,5.00,T1,,bank,T7,2024-01-09", "cleared_tenancy_id", "unknown cleared_tenancy_id"),
    ("R9,2024-03-05,5.00,T1,,bank,,", "received_date", "received_date 2024-03-05 is after today (2024-03-01)"),
    ("R9,2024-01-08,5.00,T1,,cheque,,", "source", "unknown source 'cheque'"),
    ("R9,,5.00,T1,,bank,,", "received_date", "missing received_date"),
]


@pytest.mark.parametrize(("row", "column", "reason"), BAD_RECEIPTS, ids=[r for _, _, r in BAD_RECEIPTS])
def test_a_bad_receipt_is_quarantined_with_its_reason(ledger_url: str, tmp_path: Path, row: str, column: str,
                                                      reason: str) -> None:
    folder = write_delivery(tmp_path / "d1", tenancies=TENANCIES, suspense=SUSPENSE + row + "\n")
    summary, quarantine = ingest(ledger_url, folder, tmp_path)
    feed = summary.feeds["suspense"]
    assert (feed.accepted, feed.duplicate, feed.quarantined) == (3, 0, 1) and feed.reconciles
    assert quarantine[["feed", "line", "column_name"]].values.tolist() == [["suspense", 5, column]]
    assert quarantine["reason"].iloc[0].startswith(reason)


def test_an_unknown_cleared_tenancy_says_what_to_do_and_shows_the_tenancy(ledger_url: str, tmp_path: Path) -> None:
    row = "R9,2024-01-08,5.00,T1,,bank, T7 ,2024-01-09\n"
    summary, quarantine = ingest(ledger_url, write_delivery(tmp_path / "d1", tenancies=TENANCIES,
                                                            suspense=SUSPENSE + row), tmp_path)
    assert quarantine["value"].tolist() == [" T7 "]  # as delivered
    assert "send that tenancy's register row first" in quarantine["reason"].iloc[0]


BAD_LINES = [
    ("7001,UC-009,2024-01-10,0,T1,universal_credit,2023-12-11,2024-01-07", "amount", "amount must be more than zero"),
    ("7001,UC-009,2024-01-10,5,T1,universal_credit,2024-01-07,2023-12-11", "period_end",
     "period_end is before period_start"),
    ("7001,UC-009,2024-03-09,5,T1,universal_credit,2023-12-11,2024-01-07", "payment_date",
     "payment_date 2024-03-09 is after today"),
    ("7001,UC-009,2024-01-10,5,T1,pension_credit,2023-12-11,2024-01-07", "scheme", "unknown scheme 'pension_credit'"),
    ("7001,,2024-01-10,5,T1,universal_credit,2023-12-11,2024-01-07", "line_reference", "missing line_reference"),
]


@pytest.mark.parametrize(("row", "column", "reason"), BAD_LINES, ids=[r for _, _, r in BAD_LINES])
def test_a_bad_schedule_line_is_quarantined_with_its_reason(ledger_url: str, tmp_path: Path, row: str, column: str,
                                                            reason: str) -> None:
    folder = write_delivery(tmp_path / "d1", dwp_schedules=SCHEDULES + row + "\n")
    summary, quarantine = ingest(ledger_url, folder, tmp_path)
    feed = summary.feeds["dwp_schedules"]
    assert (feed.accepted, feed.duplicate, feed.quarantined) == (3, 0, 1) and feed.reconciles
    assert quarantine[["feed", "line", "column_name"]].values.tolist() == [["dwp_schedules", 5, column]]
    assert quarantine["reason"].iloc[0].startswith(reason)


def test_a_schedule_line_is_identified_by_its_settlement_and_its_reference(ledger_url: str, tmp_path: Path) -> None:
    """The same line reference in another settlement is another line; the same line twice with other content in one
    delivery is untrustworthy, and a stored line re-sent with other content is a conflict."""
    next_settlement = SCHEDULES.replace("7001,", "7002,").replace("2024-01-10", "2024-02-07").split("\n", 1)[1]
    twice = "7003,UC-001,2024-02-07,150.00,T1,,,\n7003,UC-001,2024-02-07,151.00,T1,,,\n"
    summary, quarantine = ingest(ledger_url, write_delivery(tmp_path / "d1", dwp_schedules=SCHEDULES + next_settlement
                                                            + twice), tmp_path)
    feed = summary.feeds["dwp_schedules"]
    assert (feed.accepted, feed.duplicate, feed.quarantined) == (6, 0, 2)
    assert set(quarantine["value"]) == {"7003 / UC-001"} and set(quarantine["line"]) == {8, 9}
    assert quarantine["reason"].str.startswith("the same id appears more than once").all()
    changed = SCHEDULES.replace("7001,UC-002,2024-01-10,100.00", "7001,UC-002,2024-01-10,99.00")
    summary, quarantine = ingest(ledger_url, write_delivery(tmp_path / "d2", dwp_schedules=changed), tmp_path)
    feed = summary.feeds["dwp_schedules"]
    assert (feed.accepted, feed.duplicate, feed.quarantined) == (0, 2, 1)
    assert quarantine[["line", "value"]].values.tolist() == [[3, "7001 / UC-002"]]
    assert quarantine["reason"].iloc[0].startswith("already in the ledger with different content")


def test_a_receipt_cleared_later_is_its_new_current_version(ledger_url: str, tmp_path: Path) -> None:
    ingest(ledger_url, write_delivery(tmp_path / "d1", tenancies=TENANCIES, suspense=SUSPENSE), tmp_path)
    cleared = SUSPENSE.replace("R1,2024-01-08,100.00,T1 RENT,,bank,,",
                               "R1,2024-01-08,100.00,T1 RENT,,bank,T1,2024-01-15")
    summary, _ = ingest(ledger_url, write_delivery(tmp_path / "d2", suspense=cleared), tmp_path)
    feed = summary.feeds["suspense"]
    assert (feed.accepted, feed.duplicate, feed.quarantined) == (1, 2, 0)
    # The open version re-sent after the cleared one (an older export) changes nothing: it is a duplicate.
    summary, _ = ingest(ledger_url, write_delivery(tmp_path / "d3", suspense=SUSPENSE), tmp_path)
    assert (summary.feeds["suspense"].accepted, summary.feeds["suspense"].duplicate) == (0, 3)
    with open_ledger(ledger_url) as ledger:
        versions = ledger.query("SELECT receipt_id, count(*) AS n FROM suspense GROUP BY receipt_id")
        current = ledger.read_table("suspense_register").set_index("receipt_id")
    assert dict(zip(versions["receipt_id"], versions["n"], strict=True)) == {"R1": 2, "R2": 1, "R3": 1}
    assert len(current) == 3 and current.loc["R1", "cleared_tenancy_id"] == "T1"
    assert current.loc["R1", "cleared_date"] == pd.Timestamp("2024-01-15")
    assert pd.isna(current.loc["R3", "cleared_date"])


def test_the_same_feeds_sent_again_add_nothing(ledger_url: str, tmp_path: Path) -> None:
    folder = write_delivery(tmp_path / "d1", tenancies=TENANCIES, suspense=SUSPENSE, dwp_schedules=SCHEDULES)
    ingest(ledger_url, folder, tmp_path)
    again = write_delivery(tmp_path / "d2", suspense=SUSPENSE, dwp_schedules=SCHEDULES)
    summary, quarantine = ingest(ledger_url, again, tmp_path)
    assert quarantine.empty and not summary.already_ingested
    assert {name: (f.accepted, f.duplicate) for name, f in summary.feeds.items()} == {
        "suspense": (0, 3), "dwp_schedules": (0, 3)}
    with open_ledger(ledger_url) as ledger:
        assert ledger.query("SELECT count(*) AS n FROM dwp_schedules")["n"].iloc[0] == 3
        assert ledger.query("SELECT count(*) AS n FROM suspense")["n"].iloc[0] == 3
