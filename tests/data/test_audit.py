"""The audit trail on both backends (SQLite, the embedded default; Postgres, the production profile): appends chain,
the table refuses UPDATE, DELETE (and on Postgres TRUNCATE), and `arrears audit verify` names the first entry of
every kind of tampering someone who gets past the triggers could do."""

from __future__ import annotations

import json

import pytest

from casework.audit import GENESIS, PersonalData, entry_hash
from casework.store import open_audit
from tests.support.cli import invoke as run_cli
from tests.support.homes import isolated_home
from tests.support.postgres import create_schema, drop_schema


@pytest.fixture(params=["sqlite", "postgres"])
def home(request, tmp_path):
    """A home whose case store is on the given backend, with 10 entries in its audit trail."""
    schema = None
    variables = {}
    if request.param == "postgres":
        url, schema = create_schema("audit")
        variables["ARREARS_CASEWORK_URL"] = url
    with isolated_home(tmp_path / "home", **variables):
        from casework.settings import get_settings

        with open_audit(get_settings()) as log:
            for i in range(1, 11):
                log.append(f"officer-{i % 3}", "officer", "action_recorded", f"T{i:06d}",
                           {"kind": "contact_attempted", "channel": "phone", "n": i})
        yield request.param
    drop_schema(schema)


def _tamper(*statements: tuple[str, list]) -> None:
    """Run statements on the case store as someone who first switched the append-only triggers off."""
    from casework.settings import get_settings

    with open_audit(get_settings()) as log:
        db = log.db
        if db.backend == "postgres":
            db.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        else:
            db.execute("DROP TRIGGER audit_log_no_update")
            db.execute("DROP TRIGGER audit_log_no_delete")
        for sql, params in statements:
            db.execute(sql, params)


def _verify(*args: str):
    result = run_cli("audit", "verify", *args)
    return result.exit_code, " ".join(result.output.split())


def _entry(seq: int) -> dict:
    from casework.settings import get_settings

    with open_audit(get_settings()) as log:
        return log.entries(since_seq=seq - 1, limit=1).iloc[0].to_dict()


def test_an_untouched_trail_verifies_and_every_entry_chains_to_the_one_before(home) -> None:
    assert _verify() == (0, "The audit trail holds: 10 entries, each in place and unchanged.")
    first, second = _entry(1), _entry(2)
    assert first["prev_hash"] == GENESIS and second["prev_hash"] == first["hash"]
    assert first["hash"] == entry_hash(GENESIS, {**first, "detail": json.dumps(first["detail"], sort_keys=True,
                                                                                  separators=(",", ":"))})


def test_the_table_refuses_updates_and_deletes(home) -> None:
    from casework.settings import get_settings

    refused = []
    with open_audit(get_settings()) as log:
        statements = ["UPDATE audit_log SET actor = 'someone' WHERE seq = 3", "DELETE FROM audit_log WHERE seq = 3"]
        if home == "postgres":
            statements.append("TRUNCATE audit_log")
        for sql in statements:
            with pytest.raises(Exception, match="append-only") as caught:
                log.db.execute(sql)
            refused.append(type(caught.value).__name__)
        assert len(log.entries()) == 10 and log.verify().ok
    assert len(refused) == (3 if home == "postgres" else 2)


@pytest.mark.parametrize(("kind", "first_bad", "says"), [
    ("edited", 5, "entry 5 was changed after it was written"),
    ("edited, its hash recomputed", 6, "entry 6 does not follow entry 5"),
    ("deleted", 5, "entry 5 is missing: the log goes from entry 4 to entry 6"),
    ("deleted, the rest renumbered", 5, "entry 5 does not follow entry 4"),
    ("inserted, the rest renumbered", 6, "entry 6 does not follow entry 5"),
    ("reordered", 4, "entry 4 does not follow entry 3"),
    ("added before the first", 0, "entries with a seq below 1"),
])
def test_verify_names_the_first_entry_of_each_kind_of_tampering(home, kind, first_bad, says) -> None:
    fifth = _entry(5)
    forged_detail = json.dumps({"kind": "contact_made", "channel": "phone", "n": 5}, sort_keys=True,
                               separators=(",", ":"))
    statements = {
        "edited": [("UPDATE audit_log SET detail = ? WHERE seq = 5", [forged_detail])],
        "edited, its hash recomputed": [("UPDATE audit_log SET detail = ?, hash = ? WHERE seq = 5", [
            forged_detail, entry_hash(fifth["prev_hash"], {**fifth, "detail": forged_detail})])],
        "deleted": [("DELETE FROM audit_log WHERE seq = 5", [])],
        "deleted, the rest renumbered": [("DELETE FROM audit_log WHERE seq = 5", []),
                                         *[("UPDATE audit_log SET seq = ? WHERE seq = ?", [s - 1, s])
                                           for s in range(6, 11)]],
        "inserted, the rest renumbered": [*[("UPDATE audit_log SET seq = ? WHERE seq = ?", [s + 1, s])
                                            for s in range(10, 4, -1)], _forged_insert(5, fifth["prev_hash"])],
        "reordered": [("UPDATE audit_log SET seq = 100 WHERE seq = 4", []),
                      ("UPDATE audit_log SET seq = 4 WHERE seq = 5", []),
                      ("UPDATE audit_log SET seq = 5 WHERE seq = 100", [])],
        "added before the first": [_forged_insert(0, GENESIS)],
    }[kind]
    _tamper(*statements)
    code, said = _verify()
    assert code == 1, said
    assert f"tampered with at entry {first_bad}:" in said and says in said


def _forged_insert(seq: int, prev_hash: str) -> tuple[str, list]:
    """A well-formed entry at `seq`, chained to `prev_hash` as a forger who knows the scheme would make it."""
    entry = {"seq": seq, "at": "2026-10-01T09:00:00.000000+00:00", "actor": "officer-1", "role": "officer",
             "action": "draft_approved", "tenancy_id": "T000005", "detail": "{}"}
    return ("INSERT INTO audit_log (seq, at, actor, role, action, tenancy_id, detail, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [*entry.values(), prev_hash, entry_hash(prev_hash, entry)])


def test_a_cut_off_or_rewritten_tail_is_caught_by_the_head_kept_elsewhere(home) -> None:
    head = run_cli("audit", "head").output.strip()
    assert head.startswith("10:")
    _tamper(("DELETE FROM audit_log WHERE seq > 8", []))
    assert _verify()[0] == 0  # the chain alone cannot tell a cut-off tail ...
    code, said = _verify("--head", head)  # ... the anchor can
    assert code == 1 and "entries 9 to 10 were cut off" in said


def test_personal_data_never_enters_the_trail(home) -> None:
    from casework.settings import get_settings

    with open_audit(get_settings()) as log:
        for detail in ({"tenant_name": "A. Person"}, {"draft": {"address": "1 High St"}}, {"items": [{"phone": "0"}]},
                       {"ethnicity": "x"}):
            with pytest.raises(PersonalData):
                log.append("officer-1", "officer", "action_recorded", "T000001", detail)
        with pytest.raises(ValueError, match="Unknown audit action"):
            log.append("officer-1", "officer", "deleted_everything")
        assert len(log.entries()) == 10
