"""The feed contract is the one source of each column: the ledger's tables and the readers derive from it."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from features.feeds import contract
from features.feeds.rules import evaluate
from features.ledger import PRIMARY_KEYS, TABLES, feed_table
from features.store.refresh import FEATURE_SOURCE, fingerprint_files
from tests.support.deliveries import KEYS, V1_DELIVERY


@pytest.mark.parametrize("spec", list(contract.FEEDS.values()), ids=list(contract.FEEDS))
def test_every_contract_column_has_its_ledger_column(spec: contract.FeedSpec) -> None:
    table = TABLES[spec.name]
    kept = [c for c in spec.schema if c.name not in contract.MONITORING_ONLY_COLUMNS]  # kept apart: features.protected
    for column in kept:
        assert table[column.ledger_name] == column.sql_type
    assert list(table)[: len(spec.key)] == list(spec.key)
    assert set(table) == {c.ledger_name for c in kept} | {"content_hash", "delivery_seq"}
    assert PRIMARY_KEYS[spec.name][: len(spec.key)] == spec.key


def test_a_new_column_needs_only_its_contract_line() -> None:
    """A feed gains a column: its table and its reader follow, with no other list to edit."""
    extended = contract.FeedSpec(
        name="events", key=contract.EVENTS.key,
        schema=(*contract.EVENTS.schema, contract.Column("promised_amount", "money"),
                contract.Column("channel", "vocabulary", vocabulary=("phone", "letter"))))
    table = feed_table(extended)
    assert table["promised_amount_pence"] == "BIGINT" and table["channel"] == "TEXT"
    (pence, fine), (unread, problem) = evaluate(extended.column("promised_amount"), ["£12.50", "twelve"])
    assert (pence, fine, unread) == (1250, None, None) and "promised_amount 'twelve'" in problem
    (value, fine), (unread, problem) = evaluate(extended.column("channel"), [" Letter", "fax"])
    assert (value, fine, unread) == ("letter", None, None) and "expected one of phone, letter" in problem


def test_a_vocabulary_column_must_list_its_vocabulary() -> None:
    with pytest.raises(ValueError, match="vocabulary"):
        contract.Column("channel", "vocabulary")


def test_weekly_rent_is_one_function_for_one_rent_or_many() -> None:
    assert contract.weekly_rent(520.0, "monthly") == pytest.approx(120.0)
    rents = pd.Series([100.0, 200.0, 433.33], index=["a", "b", "c"])
    weekly = contract.weekly_rent(rents, pd.Series(["weekly", "fortnightly", "monthly"], index=rents.index))
    assert list(weekly.index) == ["a", "b", "c"] and weekly.tolist() == pytest.approx([100.0, 100.0, 433.33 * 12 / 52])


def test_the_freshness_fingerprint_covers_everything_the_build_reads() -> None:
    covered = {str(p.relative_to(FEATURE_SOURCE)) for p in fingerprint_files()}
    assert {"feeds/contract.py", "ledger.py", "db.py", "timeline.py", "transforms.py", "catalogue.py",
            "store/offline.py", "repo/definitions.py", "repo/feature_store.yaml",
            "repo/feature_store.production.yaml"} <= covered


def md5(*canonical: str, added: str = "") -> str:
    """The documented content hash, computed independently of the SQL: the first 16 hex digits of the MD5 of the
    canonical values joined by a unit separator, then each column added later that the row sets."""
    return hashlib.md5(("\x1f".join(canonical) + added).encode()).hexdigest()[:16]


def test_a_rows_hash_is_md5_of_its_canonical_values(tmp_path) -> None:
    from features.feeds.ingest import ingest_delivery
    from features.ledger import open_ledger
    from tests.support.deliveries import write_delivery

    with open_ledger(f"duckdb:///{tmp_path / 'ledger.duckdb'}") as ledger:
        ingest_delivery(ledger, write_delivery(tmp_path / "d", **V1_DELIVERY), tmp_path / "q")
        stored = {feed: dict(ledger.query(f"SELECT {key}, content_hash FROM {feed}").itertuples(index=False))
                  for feed, key in KEYS.items()}
    # tenancies hash in their historical order: id, patch, dates, rent, frequency, benefit, vulnerable, property…
    # and never the protected characteristics (hash format 3: they are kept apart)
    assert stored["tenancies"]["T2"] == md5("T2", "South", "2024-01-01", "2024-06-30", "43333", "monthly", "none",
                                            *[""] * 6)
    assert stored["transactions"]["X1"] == md5("X1", "T1", "2024-01-01", "charge", "10000", "", "Rent")
    assert stored["transactions"]["X3"] == md5("X3", "T2", "2024-01-01", "charge", "43333", "", "")
    assert stored["events"]["E1"] == md5("E1", "T1", "2024-02-01", "dispute_opened", "5000", "rent charge query")


def test_a_column_added_later_changes_the_hash_only_where_it_is_set(tmp_path) -> None:
    from features.feeds.ingest import ingest_delivery
    from features.ledger import open_ledger
    from tests.support.deliveries import write_delivery

    transactions = V1_DELIVERY["transactions"].replace("method,reference\n", "method,reference,allocation\n")
    transactions = transactions.replace(",Rent\n", ",Rent,\n").replace("Card payment\n", "Card payment,unallocated\n")
    transactions = transactions.replace("433.33,,\n", "433.33,,,\n")
    delivery = write_delivery(tmp_path / "d", **{**V1_DELIVERY, "transactions": transactions})
    with open_ledger(f"duckdb:///{tmp_path / 'ledger.duckdb'}") as ledger:
        ingest_delivery(ledger, delivery, tmp_path / "q")
        stored = dict(ledger.query("SELECT transaction_id, content_hash FROM transactions").itertuples(index=False))
    assert stored["X1"] == md5("X1", "T1", "2024-01-01", "charge", "10000", "", "Rent")  # as if it did not exist
    # it now says where the money went
    assert stored["X2"] == md5("X2", "T1", "2024-01-03", "payment", "-10000", "card", "Card payment",
                               added="\x1eallocation=unallocated")


def test_every_versioned_feed_has_a_current_view_and_every_tenancy_reference_its_column() -> None:
    from features.feeds.rules import DOMAIN_RULES, HAPPENED_ON
    from features.ledger import CURRENT_VIEWS

    assert sorted(CURRENT_VIEWS.values()) == sorted(name for name, spec in contract.FEEDS.items() if spec.versioned)
    assert set(contract.TENANCY_FEEDS) <= set(contract.TENANCY_REFERENCE)
    for feed, column in contract.TENANCY_REFERENCE.items():
        assert column in contract.FEEDS[feed].columns
    assert "tenancy_reference" not in contract.TENANCY_REFERENCE.values()  # the DWP's free text, matched softly
    for feed in ("suspense", "dwp_schedules"):
        assert HAPPENED_ON[feed] in contract.FEEDS[feed].columns
        assert {column for column, _, _ in DOMAIN_RULES[feed]} <= set(contract.FEEDS[feed].columns)
    assert set(contract.LOAD_ORDER) == set(contract.FEEDS)
