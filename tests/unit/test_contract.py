"""The feed contract is the one source of each column: the ledger's tables and the readers derive from it."""

from __future__ import annotations

import pandas as pd
import pytest

from features.feeds import contract
from features.feeds.ingest import reader
from features.ledger import PRIMARY_KEYS, TABLES, feed_table
from features.store.refresh import FEATURE_SOURCE, fingerprint_files


@pytest.mark.parametrize("spec", list(contract.FEEDS.values()), ids=list(contract.FEEDS))
def test_every_contract_column_has_its_ledger_column(spec: contract.FeedSpec) -> None:
    table = TABLES[spec.name]
    for column in spec.schema:
        assert table[column.ledger_name] == column.sql_type
    assert list(table)[: len(spec.key)] == list(spec.key)
    assert set(table) == {c.ledger_name for c in spec.schema} | {"content_hash", "delivery_seq"}
    assert PRIMARY_KEYS[spec.name][: len(spec.key)] == spec.key


def test_a_new_column_needs_only_its_contract_line() -> None:
    """A feed gains a column: its table and its reader follow, with no other list to edit."""
    extended = contract.FeedSpec(
        name="events", key=contract.EVENTS.key,
        schema=(*contract.EVENTS.schema, contract.Column("promised_amount", "money"),
                contract.Column("channel", "vocabulary", vocabulary=("phone", "letter"))))
    table = feed_table(extended)
    assert table["promised_amount_pence"] == "BIGINT" and table["channel"] == "TEXT"
    pence, problems = reader(extended.column("promised_amount"))(pd.Series(["£12.50", "twelve"]))
    assert pence.iloc[0] == 1250 and pd.isna(problems.iloc[0]) and "promised_amount" in problems.iloc[1]
    values, problems = reader(extended.column("channel"))(pd.Series([" Letter", "fax"]))
    assert values.iloc[0] == "letter" and "expected one of phone, letter" in problems.iloc[1]


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


#: A tiny delivery and the content hashes contract version 1 gave its rows (computed by the code before the
#: contract grew). Ledgers hold these hashes: if they changed, every re-sent row would stop being a duplicate.
V1_DELIVERY = {
    "tenancies": "tenancy_id,patch,start_date,end_date,rent_amount,rent_frequency,property_id,benefit_type,"
                 "vulnerable,age_band\nT1,North,2024-01-01,,100.00,weekly,P1,housing_benefit,true,25-34\n"
                 "T2,South,2024-01-01,2024-06-30,433.33,monthly,,none,,\n",
    "transactions": "transaction_id,tenancy_id,posted_date,type,amount,method,reference\n"
                    "X1,T1,2024-01-01,charge,100.00,,Rent\nX2,T1,2024-01-03,payment,-100.00,card,Card payment\n"
                    "X3,T2,2024-01-01,charge,433.33,,\n",
    "events": "event_id,tenancy_id,event_date,type,amount,note\n"
              "E1,T1,2024-02-01,dispute_opened,50.00,rent charge query\nE2,T2,2024-02-02,contact_made,,phone call\n",
}
V1_HASHES = {
    "tenancies": {"T1": "9045ea6fd4bb5ced", "T2": "e3271c7e1f905c95"},
    "transactions": {"X1": "a406e9eda12ececb", "X2": "ba05d6d4a3f856ca", "X3": "5c1e438d481912b3"},
    "events": {"E1": "fd1ec0075f210f90", "E2": "d6ed9754fccc0a7a"},
}


def test_rows_hash_as_contract_version_1_hashed_them(tmp_path) -> None:
    from features.feeds.ingest import ingest_delivery
    from features.ledger import open_ledger
    from tests.support.deliveries import write_delivery

    delivery = write_delivery(tmp_path / "d", **V1_DELIVERY)
    with open_ledger(f"duckdb:///{tmp_path / 'ledger.duckdb'}") as ledger:
        ingest_delivery(ledger, delivery, tmp_path / "q")
        for feed, key in (("tenancies", "tenancy_id"), ("transactions", "transaction_id"), ("events", "event_id")):
            stored = ledger.query(f"SELECT {key}, content_hash FROM {feed}")
            assert dict(stored.itertuples(index=False)) == V1_HASHES[feed], feed


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
    assert stored["X1"] == V1_HASHES["transactions"]["X1"] and stored["X3"] == V1_HASHES["transactions"]["X3"]
    assert stored["X2"] != V1_HASHES["transactions"]["X2"]  # it now says where the money went
