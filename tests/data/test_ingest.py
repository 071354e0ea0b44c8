"""Ingestion: every row ends in the ledger, in quarantine with a reason, or counted as a duplicate; bad deliveries
are refused whole; re-running is safe; a crash leaves the ledger as it was. Run on DuckDB and on real Postgres."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.feeds.ingest import DeliveryRefused, ingest_delivery
from features.ledger import _REGISTER_VIEW, open_ledger
from tests.support.deliveries import KEYS, TENANCIES, TRANSACTIONS, V1_DELIVERY, V1_HASHES, write_delivery


def ingest(ledger_url: str, folder: Path, tmp_path: Path):
    with open_ledger(ledger_url) as ledger:
        summary = ingest_delivery(ledger, folder, tmp_path / "quarantine")
        return summary, ledger.counts(), ledger.balances(), ledger.query(
            "SELECT feed, line, column_name, value, reason FROM quarantine ORDER BY feed, line")


def test_clean_delivery_is_accepted_and_reconciles(ledger_url: str, tmp_path: Path) -> None:
    folder = write_delivery(tmp_path / "d1", tenancies=TENANCIES, transactions=TRANSACTIONS)
    summary, counts, balances, quarantine = ingest(ledger_url, folder, tmp_path)
    assert summary.feeds["tenancies"].accepted == 2
    assert summary.feeds["transactions"].accepted == 4
    assert all(f.reconciles for f in summary.feeds.values())
    assert quarantine.empty
    assert dict(zip(balances["tenancy_id"], balances["balance_pence"], strict=True)) == {"T1": 0, "T2": 3333}


def test_same_delivery_twice_adds_nothing(ledger_url: str, tmp_path: Path) -> None:
    folder = write_delivery(tmp_path / "d1", tenancies=TENANCIES, transactions=TRANSACTIONS)
    first, counts_first, balances_first, _ = ingest(ledger_url, folder, tmp_path)
    # The same files again (an ingest run twice, or after a crash): recognised, nothing recorded, same summary.
    again, counts_again, _, _ = ingest(ledger_url, folder, tmp_path)
    assert again.already_ingested and not first.already_ingested
    assert again.delivery_seq == first.delivery_seq and again.feeds == first.feeds and counts_again == counts_first
    # The same rows re-sent after another delivery: each one counted as a duplicate.
    later = "transaction_id,tenancy_id,posted_date,type,amount\nX9,T1,2024-01-10,payment,-1.00\n"
    ingest(ledger_url, write_delivery(tmp_path / "later", transactions=later), tmp_path)
    summary, counts_second, balances_second, _ = ingest(
        ledger_url, write_delivery(tmp_path / "d2", tenancies=TENANCIES, transactions=TRANSACTIONS), tmp_path)
    assert not summary.already_ingested and summary.delivery_seq == first.delivery_seq + 2
    assert summary.feeds["transactions"].duplicate == 4 and summary.feeds["transactions"].accepted == 0
    assert summary.feeds["tenancies"].duplicate == 2
    assert {k: v for k, v in counts_second.items() if k not in ("deliveries", "transactions")} == {
        k: v for k, v in counts_first.items() if k not in ("deliveries", "transactions")}
    assert counts_second["transactions"] == counts_first["transactions"] + 1
    pd.testing.assert_frame_equal(balances_first.assign(balance_pence=balances_first["balance_pence"] - 100 * (
        balances_first["tenancy_id"] == "T1")), balances_second)


def test_changed_tenancy_is_a_new_version_not_an_overwrite(ledger_url: str, tmp_path: Path) -> None:
    ingest(ledger_url, write_delivery(tmp_path / "d1", tenancies=TENANCIES, transactions=TRANSACTIONS), tmp_path)
    moved_out = TENANCIES.replace("T1,North,2024-01-01,,", "T1,North,2024-01-01,2024-06-30,")
    summary, counts, _, _ = ingest(ledger_url, write_delivery(tmp_path / "d2", tenancies=moved_out), tmp_path)
    assert summary.feeds["tenancies"].accepted == 1 and summary.feeds["tenancies"].duplicate == 1
    with open_ledger(ledger_url) as ledger:
        register = ledger.read_table("tenancy_register").set_index("tenancy_id")
        assert counts["tenancies"] == 3  # both versions of T1 are kept
    assert register.loc["T1", "end_date"] == pd.Timestamp("2024-06-30")


def test_conflicting_resend_goes_to_quarantine_not_overwrite(ledger_url: str, tmp_path: Path) -> None:
    ingest(ledger_url, write_delivery(tmp_path / "d1", tenancies=TENANCIES, transactions=TRANSACTIONS), tmp_path)
    changed = TRANSACTIONS.replace("X2,T1,2024-01-03,payment,-100.00", "X2,T1,2024-01-03,payment,-90.00")
    summary, _, balances, quarantine = ingest(ledger_url, write_delivery(tmp_path / "d2", transactions=changed),
                                              tmp_path)
    feed = summary.feeds["transactions"]
    assert (feed.accepted, feed.duplicate, feed.quarantined) == (0, 3, 1)
    assert quarantine.iloc[-1]["reason"].startswith("already in the ledger with different content")
    assert dict(zip(balances["tenancy_id"], balances["balance_pence"], strict=True))["T1"] == 0  # unchanged


# One malformed row each: (transactions CSV line, the column and the start of the reason expected in quarantine).
BAD_ROWS = [
    ("X9,T1,2024-02-30,payment,-5", "posted_date", "unreadable posted_date '2024-02-30'"),
    ("X9,T1,,payment,-5", "posted_date", "missing posted_date"),
    ("X9,T1,2024-02-01,payment,abc", "amount", "unreadable amount 'abc'"),
    ("X9,T1,2024-02-01,payment,12.345", "amount", "unreadable amount '12.345'"),
    ("X9,T1,2024-02-01,payment,", "amount", "missing amount"),
    ("X9,T1,2024-02-01,bribe,-5", "type", "unknown transaction type 'bribe'"),
    ("X9,T1,2024-02-01,payment,5.00", "amount", "amount has the wrong sign"),
    ("X9,T1,2024-02-01,charge,-5.00", "amount", "amount has the wrong sign"),
    ("X9,T1,2024-02-01,payment,0", "amount", "amount has the wrong sign"),
    ("X9,T404,2024-02-01,payment,-5", "tenancy_id", "unknown tenancy_id"),
    (",T1,2024-02-01,payment,-5", "transaction_id", "missing transaction_id"),
    ("X9,,2024-02-01,payment,-5", "tenancy_id", "missing tenancy_id"),
]


@pytest.mark.parametrize(("line", "column", "reason"), BAD_ROWS, ids=[r[2][:30] for r in BAD_ROWS])
def test_bad_row_is_quarantined_with_reason(ledger_url: str, tmp_path: Path, line: str, column: str,
                                            reason: str) -> None:
    folder = write_delivery(tmp_path / "d1", tenancies=TENANCIES, transactions=TRANSACTIONS + line + "\n")
    summary, counts, balances, quarantine = ingest(ledger_url, folder, tmp_path)
    feed = summary.feeds["transactions"]
    assert (feed.read, feed.accepted, feed.duplicate, feed.quarantined) == (5, 4, 0, 1)
    problem = quarantine[quarantine["feed"] == "transactions"].iloc[0]
    assert problem["line"] == 6 and problem["column_name"] == column
    assert problem["reason"].startswith(reason), problem["reason"]
    assert Path(feed.quarantine_file).exists()
    assert dict(zip(balances["tenancy_id"], balances["balance_pence"], strict=True)) == {"T1": 0, "T2": 3333}


UNAMBIGUOUS = [
    ("X9,T1,01/02/2024,payment,-5", "2024-02-01", -500),  # UK day-first date
    ("X9,T1,2024-02-01,payment,\"-£1,234.50\"", "2024-02-01", -123450),
    ("X9,T1,2024-02-01,payment,(12.00)", "2024-02-01", -1200),  # accounting brackets
    ("X9,T1,2024-02-01, Payment ,-5", "2024-02-01", -500),  # case and whitespace
]


@pytest.mark.parametrize(("line", "date", "pence"), UNAMBIGUOUS)
def test_unambiguous_formats_are_normalised(ledger_url: str, tmp_path: Path, line: str, date: str, pence: int) -> None:
    folder = write_delivery(tmp_path / "d1", tenancies=TENANCIES, transactions=TRANSACTIONS + line + "\n")
    summary, *_ = ingest(ledger_url, folder, tmp_path)
    assert summary.feeds["transactions"].accepted == 5
    with open_ledger(ledger_url) as ledger:
        row = ledger.query("SELECT posted_date, type, amount_pence FROM transactions WHERE transaction_id = 'X9'")
    assert str(pd.Timestamp(row["posted_date"].iloc[0]).date()) == date
    assert row["type"].iloc[0] == "payment" and int(row["amount_pence"].iloc[0]) == pence


def test_same_id_twice_in_one_delivery(ledger_url: str, tmp_path: Path) -> None:
    text = TRANSACTIONS + "X1,T1,2024-01-01,charge,100.00\nX5,T1,2024-01-08,charge,100\nX5,T1,2024-01-08,charge,99\n"
    summary, *_ , quarantine = ingest(ledger_url, write_delivery(tmp_path / "d1", tenancies=TENANCIES,
                                                                  transactions=text), tmp_path)
    feed = summary.feeds["transactions"]
    assert (feed.read, feed.accepted, feed.duplicate, feed.quarantined) == (7, 4, 1, 2)
    assert set(quarantine["line"]) == {7, 8}


# Deliveries refused whole, with what the message must say.
REFUSALS = [
    ({"tenancies": TENANCIES, "notes.txt": "hello"}, "unknown feed file notes.txt"),
    ({"tenancies": TENANCIES.replace("rent_frequency", "frequency")}, "lacks required column(s) rent_frequency"),
    ({"tenancies": TENANCIES.replace(",", ";")}, "looks ';'-delimited"),
    ({"tenancies": TENANCIES, "transactions": ""}, "empty file"),
    ({"tenancies": TENANCIES, "transactions.parquet": "x", "transactions": TRANSACTIONS}, "two files"),
]


@pytest.mark.parametrize(("files", "message"), REFUSALS, ids=[r[1][:25] for r in REFUSALS])
def test_unreadable_delivery_is_refused_and_writes_nothing(ledger_url: str, tmp_path: Path, files, message) -> None:
    folder = write_delivery(tmp_path / "bad", **files)
    with open_ledger(ledger_url) as ledger:
        with pytest.raises(DeliveryRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
            ingest_delivery(ledger, folder, tmp_path / "quarantine")
        assert ledger.counts() == {"tenancies": 0, "transactions": 0, "events": 0, "outcomes": 0, "deliveries": 0}
    assert not (tmp_path / "quarantine").exists()


def test_empty_folder_is_refused(ledger_url: str, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with open_ledger(ledger_url) as ledger, pytest.raises(DeliveryRefused, match="is empty"):
        ingest_delivery(ledger, tmp_path / "empty", tmp_path / "q")


def test_crash_midway_leaves_ledger_as_it_was(ledger_url: str, tmp_path: Path, monkeypatch) -> None:
    ingest(ledger_url, write_delivery(tmp_path / "d1", tenancies=TENANCIES, transactions=TRANSACTIONS), tmp_path)
    more = TRANSACTIONS + "X9,T1,2024-02-01,payment,-5\n"
    extra_tenancy = TENANCIES + "T3,East,2024-01-01,,90,weekly\n"
    folder = write_delivery(tmp_path / "d2", tenancies=extra_tenancy, transactions=more)
    from features.feeds import ingest as ingest_module

    real_insert = ingest_module._Workspace.insert

    def insert_then_crash(self, table, columns, select_sql):
        if table == "transactions":
            raise OSError("disk full (injected)")
        return real_insert(self, table, columns, select_sql)

    with open_ledger(ledger_url) as ledger:
        before = (ledger.counts(), ledger.balances())
        monkeypatch.setattr(ingest_module._Workspace, "insert", insert_then_crash)
        with pytest.raises(OSError, match="injected"):
            ingest_delivery(ledger, folder, tmp_path / "quarantine")
        monkeypatch.setattr(ingest_module._Workspace, "insert", real_insert)
        assert ledger.counts() == before[0]  # the tenancy T3 inserted before the crash was rolled back too
        pd.testing.assert_frame_equal(ledger.balances(), before[1])


def test_personal_columns_are_not_stored(ledger_url: str, tmp_path: Path) -> None:
    with_names = TENANCIES.replace("rent_frequency\n", "rent_frequency,tenant_name\n").replace(
        ",weekly\n", ",weekly,Alice Example\n").replace(",monthly\n", ",monthly,Bob Example\n")
    summary, *_ = ingest(ledger_url, write_delivery(tmp_path / "d1", tenancies=with_names), tmp_path)
    assert summary.feeds["tenancies"].ignored_columns == ["tenant_name"]
    with open_ledger(ledger_url) as ledger:
        stored = ledger.query("SELECT * FROM tenancies")
    assert "tenant_name" not in stored.columns
    assert not stored.astype(str).apply(lambda c: c.str.contains("Example")).any().any()


# Malformed rows in the other feeds: (feed, CSV text, line, column, start of the reason).
EVENTS_HEADER = "event_id,tenancy_id,event_date,type\n"
OTHER_FEEDS_BAD = [
    ("tenancies", TENANCIES + "T3,East,2024-01-01,,90,yearly\n", 4, "rent_frequency",
     "unknown rent_frequency 'yearly'"),
    ("tenancies", TENANCIES + "T3,East,2024-01-01,,-90,weekly\n", 4, "rent_amount",
     "rent_amount must be more than zero"),
    ("tenancies", TENANCIES + "T3,East,2024-05-01,2024-01-01,90,weekly\n", 4, "end_date",
     "end_date is before start_date"),
    ("tenancies", TENANCIES + "T3,,2024-01-01,,90,weekly\n", 4, "patch", "missing patch"),
    ("tenancies", TENANCIES.replace("rent_frequency\n", "rent_frequency,vulnerable\n").replace(
        ",weekly\n", ",weekly,maybe\n").replace(",monthly\n", ",monthly,false\n"), 2, "vulnerable",
     "unreadable vulnerable"),
    ("events", EVENTS_HEADER + "E1,T1,2024-02-01,eviction_party\n", 2, "type", "unknown event type"),
    ("events", EVENTS_HEADER + "E1,T9,2024-02-01,contact_made\n", 2, "tenancy_id", "unknown tenancy_id"),
    ("outcomes", "tenancy_id,as_of_date,outcome\nT1,2024-02-04,yes\n", 2, "outcome", "outcome 'yes' is not 0 or 1"),
]


@pytest.mark.parametrize(("feed", "text", "line", "column", "reason"), OTHER_FEEDS_BAD,
                         ids=[f"{b[0]}:{b[4][:25]}" for b in OTHER_FEEDS_BAD])
def test_bad_rows_in_other_feeds(ledger_url: str, tmp_path: Path, feed, text, line, column, reason) -> None:
    feeds = {"tenancies": TENANCIES, "transactions": TRANSACTIONS, feed: text}
    summary, counts, _, quarantine = ingest(ledger_url, write_delivery(tmp_path / "d1", **feeds), tmp_path)
    assert summary.feeds[feed].quarantined == 1 and summary.feeds[feed].reconciles
    problem = quarantine[quarantine["feed"] == feed].iloc[0]
    assert (problem["line"], problem["column_name"]) == (line, column)
    assert problem["reason"].startswith(reason), problem["reason"]


def test_header_only_file_is_read_as_no_rows(ledger_url: str, tmp_path: Path) -> None:
    folder = write_delivery(tmp_path / "d1", tenancies=TENANCIES,
                            transactions="transaction_id,tenancy_id,posted_date,type,amount\n")
    summary, counts, *_ = ingest(ledger_url, folder, tmp_path)
    assert summary.feeds["transactions"].read == 0 and counts["transactions"] == 0


def test_not_utf8_is_refused(ledger_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "d1"
    folder.mkdir()
    (folder / "tenancies.csv").write_bytes(TENANCIES.encode("utf-16"))
    with open_ledger(ledger_url) as ledger, pytest.raises(DeliveryRefused):
        ingest_delivery(ledger, folder, tmp_path / "q")


def test_parquet_delivery_matches_csv(ledger_url: str, tmp_path: Path) -> None:
    import io

    folder = tmp_path / "pq"
    folder.mkdir()
    pd.read_csv(io.StringIO(TENANCIES), dtype=str).to_parquet(folder / "tenancies.parquet")
    pd.read_csv(io.StringIO(TRANSACTIONS), dtype=str).to_parquet(folder / "transactions.parquet")
    summary, _, balances, _ = ingest(ledger_url, folder, tmp_path)
    assert summary.feeds["transactions"].accepted == 4
    # The same rows as CSV are duplicates: content hashes do not depend on the file format.
    again, *_ = ingest(ledger_url, write_delivery(tmp_path / "csv", tenancies=TENANCIES, transactions=TRANSACTIONS),
                       tmp_path)
    assert again.feeds["transactions"].duplicate == 4 and again.feeds["tenancies"].duplicate == 2


def test_simulated_dirty_export_loses_nothing(tmp_path: Path) -> None:
    """The simulator's realistic export faults, through real ingestion: every fault is caught, counts reconcile,
    and every clean transaction that does not depend on a faulty row is in the ledger."""
    from simulator import simulate_portfolio, write_portfolio

    portfolio = simulate_portfolio(n_tenancies=300, years=1.0, seed=5, dirty=True)
    write_portfolio(portfolio, tmp_path / "dirty")
    with open_ledger(f"duckdb:///{tmp_path / 'l.duckdb'}") as ledger:
        summary = ingest_delivery(ledger, tmp_path / "dirty", tmp_path / "q")
        quarantine = ledger.query("SELECT feed, line, reason FROM quarantine")
        stored = ledger.query("SELECT transaction_id FROM transactions")
    for feed in summary.feeds.values():
        assert feed.reconciles, feed
    faults = portfolio.ground_truth["dirty_faults"]
    assert len(faults) > 10
    assert summary.feeds["transactions"].quarantined > 0 and summary.feeds["transactions"].duplicate > 0
    assert stored["transaction_id"].is_unique
    tx_faults = faults[faults["feed"] == "transactions"]
    assert len(set(tx_faults["kind"])) >= 8, set(tx_faults["kind"])
    tx_quarantine = quarantine[quarantine["feed"] == "transactions"]
    quarantined_lines = set(tx_quarantine["line"])
    cascaded = set(tx_quarantine.loc[tx_quarantine["reason"].str.startswith("unknown tenancy_id"), "line"])
    unrepairable = {"unknown_tenancy", "missing_amount", "bad_date", "unknown_type", "conflict"}
    repairable = {"amount_currency", "amount_parentheses", "uk_date", "case_variant"}
    for fault in tx_faults.itertuples():
        if fault.kind in unrepairable:
            assert fault.line in quarantined_lines, fault
        elif fault.kind in repairable:
            assert fault.key in set(stored["transaction_id"]) or fault.line in cascaded, fault


def test_a_later_delivery_can_be_read_on_its_own(ledger_url: str, tmp_path: Path) -> None:
    """What the feature store needs to refresh only what changed: the rows of deliveries after a known point."""
    ingest(ledger_url, write_delivery(tmp_path / "d1", tenancies=TENANCIES, transactions=TRANSACTIONS), tmp_path)
    todays_payment = "transaction_id,tenancy_id,posted_date,type,amount\nX9,T2,2024-01-09,payment,-33.33\n"
    summary, *_ = ingest(ledger_url, write_delivery(tmp_path / "d2", transactions=todays_payment), tmp_path)
    with open_ledger(ledger_url) as ledger:
        fresh = ledger.read_table("transactions", since_seq=summary.delivery_seq - 1)
        assert ledger.last_delivery_seq() == summary.delivery_seq
    assert fresh["transaction_id"].tolist() == ["X9"] and fresh["amount_pence"].tolist() == [-3333]


def test_a_posting_dated_in_the_future_is_quarantined_and_moves_no_date(ledger_url: str, tmp_path: Path) -> None:
    """One row dated 2099 must not make 2099 "today" for every tenancy: postings and events dated after today
    (plus a day's tolerance) go to quarantine with a reason."""
    from features.feeds.ingest import Clock

    clock = Clock(today=pd.Timestamp("2024-01-10").date())
    folder = write_delivery(
        tmp_path / "d", tenancies=TENANCIES,
        transactions=TRANSACTIONS + "X5,T1,2099-01-01,payment,-5.00\nX6,T1,2024-01-11,payment,-5.00\n",
        events="event_id,tenancy_id,event_date,type\nE1,T1,2024-02-01,contact_made\nE2,T1,2024-01-09,contact_made\n")
    with open_ledger(ledger_url) as ledger:
        summary = ingest_delivery(ledger, folder, tmp_path / "quarantine", clock)
        latest = ledger.query("SELECT MAX(posted_date) AS d FROM transactions")["d"].iloc[0]
        reasons = ledger.query("SELECT feed, line, reason FROM quarantine ORDER BY feed, line")
    assert summary.feeds["transactions"].quarantined == 1 and summary.feeds["transactions"].reconciles
    assert summary.feeds["events"].quarantined == 1 and summary.feeds["events"].accepted == 1
    assert str(pd.Timestamp(latest).date()) == "2024-01-11"  # a day ahead is within the tolerance
    assert list(reasons["line"]) == [2, 6]
    assert all("after today (2024-01-10)" in r for r in reasons["reason"])


def test_a_ledger_from_the_previous_contract_gains_the_new_columns(ledger_url: str, tmp_path: Path) -> None:
    """Columns the contract added since a ledger was made are appended in place; its rows and the register stay."""
    folder = write_delivery(tmp_path / "d", tenancies=TENANCIES, transactions=TRANSACTIONS)
    with open_ledger(ledger_url) as ledger:
        ingest_delivery(ledger, folder, tmp_path / "quarantine")
        ledger.execute("DROP VIEW tenancy_register")
        ledger.execute("DROP INDEX IF EXISTS transactions_tenancy")  # DuckDB drops no column under an index
        for table, column in (("tenancies", "reported_balance_pence"), ("tenancies", "reported_balance_date"),
                              ("transactions", "allocation"), ("deliveries", "fingerprint")):
            ledger.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        ledger.execute(_REGISTER_VIEW)
    with open_ledger(ledger_url) as ledger:  # as the new code opens an old ledger
        assert "allocation" in ledger.columns_of("transactions")
        assert "reported_balance_pence" in ledger.read_table("tenancy_register").columns
        again = ingest_delivery(ledger, folder, tmp_path / "quarantine")
        assert again.feeds["transactions"].duplicate == 4 and again.feeds["tenancies"].duplicate == 2


def test_a_ledger_hashed_the_old_way_is_rehashed_and_still_knows_re_sent_rows(ledger_url: str, tmp_path) -> None:
    """Ledgers made before ingestion moved to SQL hold hashes computed by pandas; opened by this code, they are
    recomputed from the rows, and rows re-sent are still duplicates."""
    delivery = write_delivery(tmp_path / "d", **V1_DELIVERY)
    with open_ledger(ledger_url) as ledger:
        ingest_delivery(ledger, delivery, tmp_path / "q")
        now = {feed: dict(ledger.query(f"SELECT {key}, content_hash FROM {feed}").itertuples(index=False))
               for feed, key in KEYS.items()}
        for feed, key in KEYS.items():  # make it the ledger contract version 1 left
            for row, old in V1_HASHES[feed].items():
                ledger.execute(f"UPDATE {feed} SET content_hash = ? WHERE {key} = ?", [old, row])
        ledger.execute("DELETE FROM ledger_meta")
    with open_ledger(ledger_url) as ledger:  # as the new code opens an old ledger
        again = {feed: dict(ledger.query(f"SELECT {key}, content_hash FROM {feed}").itertuples(index=False))
                 for feed, key in KEYS.items()}
        assert again == now
        other = "transaction_id,tenancy_id,posted_date,type,amount\nX9,T1,2024-01-10,payment,-1.00\n"
        ingest_delivery(ledger, write_delivery(tmp_path / "other", transactions=other), tmp_path / "q")
        resent = ingest_delivery(ledger, delivery, tmp_path / "q")
    assert not resent.already_ingested
    assert {f: (s.accepted, s.duplicate) for f, s in resent.feeds.items()} == {
        "tenancies": (0, 2), "transactions": (0, 3), "events": (0, 2)}


def test_quarantine_lines_are_the_files_lines_in_a_delivery_read_in_parallel(tmp_path: Path) -> None:
    """DuckDB reads a large CSV in parallel chunks; a quarantined row must still name its own line of the file."""
    n = 400_000  # ~17 MB: read as many chunks
    ids = pd.Series(range(n))
    frame = pd.DataFrame({"transaction_id": "X" + ids.astype(str), "tenancy_id": "T1", "posted_date": "2024-01-01",
                          "type": "payment", "amount": "-1.00"})
    bad = ids[ids % 65_537 == 1].tolist()  # spread through the file, in every chunk
    frame.loc[bad, "amount"] = "abc"
    frame.loc[n - 1, "transaction_id"] = "X7"  # the last row repeats the 8th with other content
    frame.loc[n - 1, "amount"] = "-2.00"
    folder = write_delivery(tmp_path / "big", tenancies=TENANCIES, transactions=frame)
    with open_ledger(f"duckdb:///{tmp_path / 'l.duckdb'}") as ledger:
        summary = ingest_delivery(ledger, folder, tmp_path / "q")
        quarantine = ledger.query("SELECT line, column_name, value FROM quarantine ORDER BY line")
    feed = summary.feeds["transactions"]
    assert (feed.read, feed.quarantined, feed.duplicate) == (n, len(bad) + 2, 0) and feed.reconciles
    expected = sorted([*(i + 2 for i in bad), 7 + 2, n + 1])  # line 1 is the header
    assert quarantine["line"].tolist() == expected
    assert set(quarantine.loc[quarantine["column_name"] == "amount", "value"]) == {"abc"}


def _protected(ledger_url: str) -> pd.DataFrame:
    from features.protected import TABLE, open_protected
    from features.settings import default_protected_url as default_url

    with open_protected(default_url(ledger_url)) as store:
        return store.db.query(f"SELECT * FROM {TABLE} ORDER BY tenancy_id").set_index("tenancy_id")


def test_protected_characteristics_are_kept_apart_from_the_ledger(ledger_url: str, tmp_path: Path) -> None:
    """They go to their own store (an owner-only file beside an embedded ledger), never a ledger column or a digest
    the register keeps; a change only in them updates that store, a re-sent older version changes nothing."""
    import stat

    from features.feeds.contract import MONITORING_ONLY_COLUMNS
    from features.settings import default_protected_url as default_url

    delivery = write_delivery(tmp_path / "d1", **V1_DELIVERY)
    first, _, _, _ = ingest(ledger_url, delivery, tmp_path)
    with open_ledger(ledger_url) as ledger:
        for table in ("tenancies", "tenancy_register"):
            assert not set(MONITORING_ONLY_COLUMNS) & set(ledger.read_table(table).columns), table
    held = _protected(ledger_url)
    assert held.loc["T1", "age_band"] == "25-34" and held.loc["T2", "age_band"] is None
    assert held["delivery_seq"].tolist() == [1, 1]
    if ledger_url.startswith("duckdb"):
        path = Path(default_url(ledger_url).removeprefix("sqlite:///"))
        assert path.parent == Path(ledger_url.removeprefix("duckdb:///")).parent
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ingest(ledger_url, delivery, tmp_path)[0].already_ingested
    pd.testing.assert_frame_equal(_protected(ledger_url), held)

    older = V1_DELIVERY["tenancies"].replace("true,25-34", "true,35-44")
    summary, _, _, _ = ingest(ledger_url, write_delivery(tmp_path / "d2", tenancies=older), tmp_path)
    assert (summary.feeds["tenancies"].accepted, summary.feeds["tenancies"].duplicate) == (0, 2)
    assert _protected(ledger_url).loc["T1", "age_band"] == "35-44"
    moved = older.replace("T1,North,2024-01-01,,", "T1,North,2024-01-01,2024-09-30,").replace("35-44", "45-54")
    summary, _, _, _ = ingest(ledger_url, write_delivery(tmp_path / "d3", tenancies=moved), tmp_path)
    assert summary.feeds["tenancies"].accepted == 1 and _protected(ledger_url).loc["T1", "age_band"] == "45-54"
    resent, _, _, _ = ingest(ledger_url, write_delivery(tmp_path / "d4", **V1_DELIVERY), tmp_path)
    assert resent.feeds["tenancies"].duplicate == 2 and all(f.reconciles for f in resent.feeds.values())
    assert _protected(ledger_url).loc["T1", "age_band"] == "45-54"  # an older version re-sent: as in the register
    variants = older + "T1,North,2024-01-01,,100.00,weekly,P1,housing_benefit,true,55-64\n"
    summary, _, _, _ = ingest(ledger_url, write_delivery(tmp_path / "d5", tenancies=variants), tmp_path)
    assert summary.feeds["tenancies"].quarantined == 2 and summary.feeds["tenancies"].reconciles


def test_a_ledger_holding_protected_columns_has_them_moved_out_at_the_next_ingest(ledger_url: str,
                                                                                  tmp_path: Path) -> None:
    from features.protected import TABLE, open_protected
    from features.settings import default_protected_url as default_url

    delivery = write_delivery(tmp_path / "d1", **V1_DELIVERY)
    with open_ledger(ledger_url) as ledger:  # made the way a ledger was before: the columns in the register
        ingest_delivery(ledger, delivery, tmp_path / "q")
        ledger.execute("DROP VIEW tenancy_register")
        for column in ("age_band", "sex"):
            ledger.execute(f"ALTER TABLE tenancies ADD COLUMN {column} TEXT")
        ledger.execute("UPDATE tenancies SET age_band = '25-34', sex = 'F' WHERE tenancy_id = 'T1'")
        ledger.execute(_REGISTER_VIEW)
        ledger.execute("UPDATE ledger_meta SET value = '2' WHERE name = 'hash_format'")
    with open_protected(default_url(ledger_url)) as store:
        store.db.execute(f"DELETE FROM {TABLE}")
    with open_ledger(ledger_url) as ledger:
        assert ledger.protected_columns() == ["age_band", "sex"]
        other = "transaction_id,tenancy_id,posted_date,type,amount\nX9,T1,2024-01-10,payment,-1.00\n"
        ingest_delivery(ledger, write_delivery(tmp_path / "other", transactions=other), tmp_path / "q")
        assert ledger.protected_columns() == [] and "age_band" not in ledger.read_table("tenancy_register")
        resent = ingest_delivery(ledger, delivery, tmp_path / "q")
    assert resent.feeds["tenancies"].duplicate == 2
    held = _protected(ledger_url)
    assert (held.loc["T1", "age_band"], held.loc["T1", "sex"]) == ("25-34", "F")
