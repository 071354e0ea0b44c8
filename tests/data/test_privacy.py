"""Privacy rights on real stores, on both profiles (embedded: DuckDB ledger, SQLite runs and case store; production:
all on Postgres): the subject access export holds every row each store returns for the tenancy, erasure leaves no
store returning the old id while the audit trail verifies, a restriction stops drafts and scoring, and the
retention schedule removes exactly what it says (a record just inside its limit stays, just outside goes). The
protected characteristics' own store (an owner-only SQLite file beside the ledger; on Postgres the URL set apart) is
one of the stores, and the features, the worklist rows and the case file never carry them.

The direct queries here are written apart from `serving.privacy.holdings`, table by table, so the export and the
erasure are checked against the stores, not against themselves."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from casework.subjects import is_pseudonym, pseudonym
from features.db import Database
from simulator import simulate_portfolio, write_portfolio
from tests.support.cli import invoke as run_cli
from tests.support.homes import isolated_home
from tests.support.postgres import create_schema, drop_schema

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
#: Each store's tables with a tenancy_id column, and a column that tells their rows apart.
LEDGER = {"tenancies": "content_hash", "transactions": "transaction_id", "events": "event_id", "outcomes": "as_of_date"}
RUNS = {"worklist_rows": "run_id", "worklist_payments": "transaction_id", "experiment_assignments": "experiment",
        "access_log": "access_id", "suspense_decisions": "decision", "suspense_candidates": "candidate_key"}
#: Ledger tables that name a tenancy in another column: table → (that column, a column telling rows apart).
LEDGER_NAMED = {"suspense": ("cleared_tenancy_id", "content_hash"),
                "dwp_schedules": ("tenancy_reference", "line_reference")}
CASEWORK = {"case_owners": "owner", "case_actions": "action_id", "drafts": "draft_id", "outbox": "draft_id",
            "delivery_receipts": "message_id", "privacy_restrictions": "restricted_at", "audit_log": "seq"}
PROTECTED = {"protected_characteristics": "delivery_seq"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def profile(request, tmp_path_factory):
    schemas, variables = [], {}
    if request.param == "postgres":
        ledger_url, schema = create_schema("privacy")
        case_url, case_schema = create_schema("privacy_case")
        protected_url, protected_schema = create_schema("privacy_protected")
        schemas += [schema, case_schema, protected_schema]
        variables = {"ARREARS_LEDGER_URL": ledger_url, "ARREARS_CASEWORK_URL": case_url,
                     "ARREARS_PROTECTED_URL": protected_url}
    root = tmp_path_factory.mktemp(f"privacy_{request.param}")
    with isolated_home(root / "home", ARREARS_AUTH="open", **variables):
        yield request.param, root
    for schema in schemas:
        drop_schema(schema)


@pytest.fixture(scope="module")
def portfolio(profile):
    """40 simulated tenancies ingested and featurised (offline store and live file), and for the first live one:
    a quarantined line, a recorded run row and payment, an experiment assignment, an owner, an officer's action, a
    draft and its letter in the outbox, a delivery receipt, audit entries and a read in the access log."""
    from features.feeds.ingest import ingest_delivery
    from features.ledger import open_ledger
    from features.store.offline import build_offline, live_tenancies
    from serving.settings import get_settings

    name, root = profile
    settings = get_settings()
    write_portfolio(simulate_portfolio(n_tenancies=40, years=1.0, seed=7, end_date=NOW.date() - timedelta(days=2)),
                    root / "feeds")
    with open_ledger(settings.ledger) as ledger:
        ingest_delivery(ledger, root / "feeds", root / "quarantine")
    build_offline(settings)
    target = str(live_tenancies(settings)["tenancy_id"].iloc[0])
    with open_ledger(settings.ledger) as ledger:  # a line quarantined for its amount: its tenancy named beside it
        ledger.insert("quarantine", pd.DataFrame([
            {"delivery_seq": 1, "feed": "transactions", "file": "transactions.csv", "line": 9999,
             "column_name": col, "value": value, "reason": "test line"} for col, value in [
                ("tenancy_id", target), ("amount", "12..0")]]))
    _case_and_run_rows(settings, target)
    return settings, target


def _case_and_run_rows(settings, target: str) -> None:
    from casework.store import open_audit, open_casework
    from serving.privacy.access_log import open_access_log
    from serving.runs.store import TABLES, open_runs

    run_id = "r" * 16
    with open_runs(settings) as store, store.db.transaction():
        store.db.insert("worklist_runs", {"run_id": run_id, "run_seq": 1, "recorded_at": "2026-11-01T02:30:00",
                                          "as_of": "2026-10-31", "model_version": "1"})
        store.db.append("worklist_rows", pd.DataFrame([{"run_id": run_id, "tenancy_id": t, "patch": "North-1",
                                                         "risk_score": 0.5, "reasons": "[]"}
                                                        for t in (target, target + "0")]),
                        list(TABLES["worklist_rows"]))
        store.db.insert("worklist_payments", {"run_id": run_id, "tenancy_id": target, "transaction_id": "X1",
                                              "posted_date": "2026-10-30", "amount": 10.0})
        store.db.insert("experiment_assignments", {"experiment": "trial", "tenancy_id": target, "arm": "holdout"})
    _income_rows(settings, target)
    with open_casework(settings) as db:
        db.insert("case_owners", {"tenancy_id": target, "patch": "North-1", "owner": "A. Officer"})
        db.insert("case_actions", {"action_id": "a1", "tenancy_id": target, "kind": "note", "note": "rang",
                                   "happened_on": "2026-10-30", "actor": "A. Officer"})
        db.insert("drafts", {"draft_id": "d1", "tenancy_id": target, "version": 1, "status": "released",
                             "text": f"Your rent account {target}: please call (not {target}0).",
                             "facts": f"{{\"tenancy_id\": \"{target}\"}}", "stage": "first_reminder", "language": "en",
                             "channel": "letter", "template": "first_reminder", "template_version": "1",
                             "created_by": "A. Officer", "created_at": "2026-10-30T10:00:00"})
        db.insert("outbox", {"draft_id": "d1", "tenancy_id": target, "text": f"Your rent account {target}.",
                             "seq": 1})
        db.insert("delivery_receipts", {"message_id": "d1", "status": "sent", "tenancy_id": target})
    with open_audit(settings) as log:
        log.append("A. Officer", "officer", "action_recorded", target, {"kind": "note"})
        log.append("A. Officer", "officer", "draft_released", target, {"draft_id": "d1"})
        log.append("arrears", "system", "policy_changed", detail={"version": "1"})
    with open_access_log(settings) as log:
        log.record("A. Officer", "officer", [target], "case_page")


def _income_rows(settings, target: str) -> None:
    """A receipt in suspense cleared to the tenancy (its payer text a name), a DWP schedule line naming it, the
    income team's decision on the match and an open receipt's scored candidate (its reason quoting the id)."""
    from features.ledger import open_ledger
    from serving.income.store import Scoring, open_decisions
    with open_ledger(settings.ledger) as ledger:
        ledger.insert("suspense", pd.DataFrame([{
            "receipt_id": "S1", "content_hash": "h1", "delivery_seq": 1, "received_date": pd.Timestamp("2026-10-20"),
            "amount_pence": 41250, "reference": "rent", "payer": "J SMITH", "source": "bank",
            "cleared_tenancy_id": target, "cleared_date": pd.Timestamp("2026-10-22")}]))
        ledger.insert("dwp_schedules", pd.DataFrame([{
            "settlement_number": "UC1", "line_reference": "L1", "content_hash": "h2", "delivery_seq": 1,
            "payment_date": pd.Timestamp("2026-10-20"), "amount_pence": 30000, "tenancy_reference": target,
            "scheme": "universal_credit", "period_start": None, "period_end": None}]))
    with open_decisions(settings) as decisions:
        decisions.record("S1", target, "approved", "A. Income", "treasury", probability=0.97, delivery_seq=2)
        decisions.keep(Scoring(2, "lightgbm", 40, None, pd.DataFrame([{
            "receipt_id": "S2", "tenancy_id": target, "rank": 1, "probability": 0.6,
            "reasons": [f"reference 1 character from {target}"]}])), seconds=1.0)


def _direct(settings, target: str) -> dict[str, pd.DataFrame]:
    """Each store's rows of the tenancy, asked of the store directly."""
    found = {}
    for store, url, tables in (("ledger", settings.ledger, LEDGER), ("runs", settings.runs_database, RUNS),
                               ("casework", settings.casework_database, CASEWORK),
                               ("protected", settings.protected_database, PROTECTED)):
        with Database(url) as db:
            for table in tables:
                found[f"{store}/{table}"] = db.query(f"SELECT * FROM {table} WHERE tenancy_id = ?", [target])
    with Database(settings.ledger) as db:
        for table, (column, _) in LEDGER_NAMED.items():
            found[f"ledger/{table}"] = db.query(f"SELECT * FROM {table} WHERE {column} = ?", [target])
    with Database(settings.ledger) as db:
        lines = db.query("SELECT delivery_seq, line FROM quarantine WHERE value = ?", [target])
        found["ledger/quarantine"] = pd.concat([db.query(
            "SELECT * FROM quarantine WHERE delivery_seq = ? AND line = ?", [int(s), int(n)])
            for s, n in lines.itertuples(index=False)]) if len(lines) else lines
    snapshots = pd.read_parquet(settings.offline_dir / "tenancy_snapshots.parquet")
    found["features/offline_snapshots"] = snapshots[snapshots["tenancy_id"] == target]
    live = pd.read_parquet(settings.offline_dir / "live_tenancies.parquet")
    found["features/live"] = live[live["tenancy_id"] == target]
    return found


KEYS = {**{f"ledger/{t}": k for t, k in LEDGER.items()},
        **{f"ledger/{t}": k for t, (_, k) in LEDGER_NAMED.items()}, **{f"runs/{t}": k for t, k in RUNS.items()},
        **{f"casework/{t}": k for t, k in CASEWORK.items()}, **{f"protected/{t}": k for t, k in PROTECTED.items()},
        "ledger/quarantine": "column_name",
        "features/offline_snapshots": "event_timestamp", "features/live": "event_timestamp"}


def test_the_export_holds_every_row_each_store_returns_for_the_tenancy(portfolio, tmp_path) -> None:
    from serving.privacy.holdings import read_archive

    settings, target = portfolio
    direct = _direct(settings, target)
    result = run_cli("privacy", "export", target, "--out", str(tmp_path / "export.zip"))
    assert result.exit_code == 0, result.output
    exported = read_archive((tmp_path / "export.zip").read_bytes())
    for name, rows in direct.items():
        assert name in exported, name
        key = KEYS[name]
        assert len(exported[name]) == len(rows), name
        assert sorted(exported[name][key].astype(str)) == sorted(rows[key].astype(str).str.replace(
            " 00:00:00", "") if key != "event_timestamp" else rows[key].astype(str)), name
    assert len(direct["ledger/transactions"]) > 10 and len(direct["ledger/quarantine"]) == 2
    assert len(direct["features/offline_snapshots"]) > 40 and len(direct["runs/worklist_rows"]) == 1
    assert len(direct["protected/protected_characteristics"]) == 1
    assert exported["protected/protected_characteristics"]["ethnicity"].iloc[0] == str(
        direct["protected/protected_characteristics"]["ethnicity"].iloc[0])


def test_protected_characteristics_stay_in_their_own_store(portfolio) -> None:
    """Held apart (an owner-only file on the embedded profile, the URL set apart on Postgres), and never in the
    ledger's register, the features (offline snapshots, the live file), the worklist rows or the case file."""
    import stat

    from features.feeds.contract import MONITORING_ONLY_COLUMNS
    from features.protected import TABLE
    from serving.access.principals import Principal
    from serving.runs.casefile import case_file

    settings, target = portfolio
    protected = set(MONITORING_ONLY_COLUMNS)
    with Database(settings.protected_database) as db:
        held = db.query(f"SELECT * FROM {TABLE}")
    assert len(held) >= 35 and held[list(MONITORING_ONLY_COLUMNS)].notna().all(axis=None)
    if settings.protected_database.startswith("sqlite:///"):
        path = settings.protected_database.removeprefix("sqlite:///")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    else:
        assert settings.protected_database not in (settings.ledger, settings.casework_database)
    with Database(settings.ledger) as db:
        assert not protected & set(db.columns_of("tenancies"))
    with Database(settings.runs_database) as db:
        assert not protected & set(db.columns_of("worklist_rows"))
    for name in ("tenancy_snapshots.parquet", "live_tenancies.parquet"):
        assert not protected & set(pd.read_parquet(settings.offline_dir / name).columns), name
    found = case_file(settings, Principal("An Admin", "admin"), target).model_dump(mode="json")
    keys, values = set(), set()

    def walk(node) -> None:
        if isinstance(node, dict):
            keys.update(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        else:
            values.add(str(node))

    walk(found)
    assert found["tenancy_id"] == target and not protected & keys
    mine = held.loc[held["tenancy_id"] == target, ["ethnicity", "age_band"]].iloc[0]
    assert not {v for v in mine if len(str(v)) > 4} & values

    # The one reader (the bias gate's and the bias and drift jobs'): the protected columns beside the register's.
    from features.protected import monitoring_attributes
    from monitoring.bias import ATTRIBUTES

    ids = list(dict.fromkeys([target, *held["tenancy_id"].head(9)]))
    groups = monitoring_attributes(settings, ids, ATTRIBUTES).set_index("tenancy_id")
    assert sorted(groups.index) == sorted(ids) and protected | {"benefit_type"} <= set(groups.columns)
    assert groups.loc[target, "ethnicity"] == mine["ethnicity"]


def test_restriction_stops_drafts_and_scoring_until_lifted(portfolio) -> None:
    from casework import restrictions
    from casework.drafts import DraftFacts, DraftRefused, generate
    from casework.store import open_audit, open_casework
    from features.store.offline import live_tenancies
    from serving.runs.record import _unrestricted

    settings, target = portfolio
    assert run_cli("privacy", "restrict", target, "--reason", "REQ-1").exit_code == 0
    facts = DraftFacts(tenancy_id=target, as_of="2026-10-31", readiness_state="ready", protocol_step=None,
                       policy_version="1", run_id="r", balance=500.0, arrears_weeks=4.0)
    with open_casework(settings) as db, open_audit(settings) as log:
        assert restrictions.restricted(db) == {target}
        with pytest.raises(DraftRefused, match="restricted"):
            generate(db, log, facts, "letter", "en", "A. Officer", "officer")
    live = live_tenancies(settings)
    kept, mark = _unrestricted(settings, live)
    assert target not in set(kept["tenancy_id"]) and len(kept) == len(live) - 1 and mark
    assert run_cli("privacy", "restrict", target, "--lift").exit_code == 0
    kept, lifted_mark = _unrestricted(settings, live)
    assert len(kept) == len(live) and lifted_mark != mark  # the next run is recomputed with it


def test_after_erasure_no_store_returns_the_old_id_and_the_audit_trail_verifies(portfolio) -> None:
    settings, target = portfolio
    before = {name: len(rows) for name, rows in _direct(settings, target).items()}
    result = run_cli("privacy", "erase", target, "--json")
    assert result.exit_code == 0, result.output
    assert all(len(rows) == 0 for rows in _direct(settings, target).values())
    after = {name: len(rows) for name, rows in _direct(settings, pseudonym(target)).items()}
    assert after["ledger/transactions"] == before["ledger/transactions"]
    assert after["casework/audit_log"] == before["casework/audit_log"] + 1  # + the erasure's own
    for url, texts in ((settings.casework_database, {"drafts": ("text", "facts"), "outbox": ("text",),
                                                     "audit_log": ("detail",)}),):
        with Database(url) as db:
            for table, columns in texts.items():
                for column in columns:
                    found = db.query(f"SELECT {column} FROM {table} WHERE {column} LIKE ?", [f"%{target}%"])
                    assert all(f"{target}0" in v for v in found[column]), (table, column)  # another id, kept
    with Database(settings.runs_database) as db:
        reasons = db.query("SELECT reasons FROM suspense_candidates WHERE tenancy_id = ?", [pseudonym(target)])
        assert len(reasons) == 1 and target not in reasons["reasons"].iloc[0]
    with Database(settings.ledger) as db:
        assert db.query("SELECT * FROM quarantine WHERE value = ?", [target]).empty
    assert after["protected/protected_characteristics"] == before["protected/protected_characteristics"] == 1
    assert after["ledger/suspense"] == before["ledger/suspense"] == 1
    with Database(settings.ledger) as db:  # the payer's name went with the id
        payer = db.query("SELECT payer FROM suspense WHERE cleared_tenancy_id = ?", [pseudonym(target)])["payer"]
        assert payer.isna().all()
    verified = run_cli("audit", "verify")
    assert verified.exit_code == 0, verified.output


def test_the_retention_schedule_removes_exactly_what_it_says(portfolio) -> None:
    from casework.store import open_audit, open_casework
    from features.ledger import open_ledger
    from serving.privacy.access_log import open_access_log
    from serving.privacy.retention import Retention, apply_retention
    from serving.runs.store import open_runs

    settings, _ = portfolio
    schedule = Retention("test", ended_after_years=6, runs_after_days=400, keep_latest_runs=2,
                         drafts_after_days=730, access_after_days=730, logs_after_days=90, payer_after_days=730)
    with open_ledger(settings.ledger) as ledger:
        register = ledger.query("SELECT tenancy_id, end_date FROM tenancy_register WHERE end_date IS NOT NULL")
    register = register[~register["tenancy_id"].map(is_pseudonym)]
    register["end_date"] = pd.to_datetime(register["end_date"]).dt.date
    limit = sorted(register["end_date"])[len(register) // 2]
    assert (register["end_date"] < limit).any() and (register["end_date"] == limit).any()
    today = (pd.Timestamp(limit) + pd.DateOffset(years=6)).date()
    expected_erased = set(register.loc[register["end_date"] < limit, "tenancy_id"])

    _aged_records(settings)
    _aged_payers(settings, today)
    settings = settings.model_copy(update={"today": today})
    dry = apply_retention(settings, schedule, dry_run=True, now=NOW)
    done = apply_retention(settings, schedule, now=NOW)
    counts = done["counts"]
    assert dry["counts"]["tenancies erased"] == counts["tenancies erased"] == len(expected_erased) > 0
    assert counts["runs/worklist_runs"] == 1 and counts["casework/drafts"] == 1
    assert counts["runs/access_log"] == 1 and counts["files/logs"] == 1
    with open_ledger(settings.ledger) as ledger:
        left = set(ledger.query("SELECT tenancy_id FROM tenancy_register")["tenancy_id"])
    assert not expected_erased & left
    assert {pseudonym(t) for t in expected_erased} <= left
    assert set(register.loc[register["end_date"] >= limit, "tenancy_id"]) <= left
    with Database(settings.protected_database) as db:  # treated like the ledger's ended tenancies
        protected = set(db.query("SELECT tenancy_id FROM protected_characteristics")["tenancy_id"])
    assert not expected_erased & protected and {pseudonym(t) for t in expected_erased} <= protected
    assert counts["protected/protected_characteristics"] == len(expected_erased)
    with open_runs(settings) as store:
        assert set(store.db.query("SELECT run_id FROM worklist_runs WHERE run_seq >= 10")["run_id"]) == {
            "old_in", "latest_1", "latest_2"}
        assert store.db.query("SELECT * FROM worklist_rows WHERE run_id = 'old_out'").empty
    with open_casework(settings) as db:
        assert set(db.query("SELECT draft_id FROM drafts WHERE tenancy_id = 'T-any'")["draft_id"]) == {
            "rej_in", "sent_out"}
    with open_access_log(settings) as log:
        assert log.entries("T-out").empty and len(log.entries("T-in")) == 1
    assert sorted(p.name for p in settings.logs_dir.iterdir()) == ["in.log"]
    with open_ledger(settings.ledger) as ledger:  # an open receipt's payer text, past its time, is gone
        payers = ledger.query("SELECT receipt_id, payer FROM suspense WHERE receipt_id LIKE 'AGED-%'")
    assert payers.set_index("receipt_id")["payer"].to_dict() == {"AGED-OUT": None, "AGED-IN": "A N OTHER"}
    assert dry["counts"]["ledger/suspense payer"] == counts["ledger/suspense payer"] >= 1
    with open_audit(settings) as log:
        assert log.latest("retention_applied")["counts"] == counts
        assert log.verify().ok


def _aged_payers(settings, today) -> None:
    """Two receipts still open in suspense, received just outside and just inside the payer text's limit."""
    from features.ledger import open_ledger
    limit = pd.Timestamp(today) - pd.Timedelta(days=730)
    with open_ledger(settings.ledger) as ledger:
        ledger.insert("suspense", pd.DataFrame([{
            "receipt_id": f"AGED-{name}", "content_hash": f"aged-{name}", "delivery_seq": 1, "received_date": day,
            "amount_pence": 5000, "reference": "rent", "payer": "A N OTHER", "source": "bank",
            "cleared_tenancy_id": None, "cleared_date": None}
            for name, day in (("OUT", limit - pd.Timedelta(days=1)), ("IN", limit))]))


def _aged_records(settings) -> None:
    """Runs, drafts, access-log reads and log files each just inside and just outside their limit."""
    from casework.store import open_casework
    from serving.privacy.access_log import open_access_log
    from serving.runs.store import open_runs

    hour = timedelta(hours=1)
    stamp = {"inside": NOW - timedelta(days=400) + hour, "outside": NOW - timedelta(days=400) - hour}
    with open_runs(settings) as store:
        for seq, (name, at) in enumerate([("old_out", stamp["outside"]), ("old_in", stamp["inside"]),
                                          ("latest_1", NOW - hour), ("latest_2", NOW)], start=10):
            store.db.insert("worklist_runs", {"run_id": name, "run_seq": seq,
                                              "recorded_at": at.replace(tzinfo=None).isoformat()})
            store.db.insert("worklist_rows", {"run_id": name, "tenancy_id": "T-any", "patch": "p"})
    with open_casework(settings) as db:
        for draft_id, status, at in [("rej_out", "rejected", NOW - timedelta(days=730) - hour),
                                     ("rej_in", "rejected", NOW - timedelta(days=730) + hour),
                                     ("sent_out", "released", NOW - timedelta(days=730) - hour)]:
            db.insert("drafts", {"draft_id": draft_id, "tenancy_id": "T-any", "status": status,
                                 "created_at": at.isoformat()})
    with open_access_log(settings) as log:
        log.record("A", "officer", ["T-out"], "score", at=NOW - timedelta(days=730) - hour)
        log.record("A", "officer", ["T-in"], "score", at=NOW - timedelta(days=730) + hour)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    for name, age in (("out.log", timedelta(days=90) + hour), ("in.log", timedelta(days=90) - hour)):
        path = settings.logs_dir / name
        path.write_text("{}\n")
        os.utime(path, (time.time(), (NOW - age).timestamp()))
