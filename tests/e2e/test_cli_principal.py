"""The CLI as a named principal (serving.access.cli_principal, `arrears users`, `arrears case`): user administration
by an admin (or, before any, the bootstrap), tokens that expire and rotate, casework scoped to the principal's
role and patches, and every step named in the audit trail; on a real serving database and case store with a small
recorded run (two patches), as a user types the verbs."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from casework.store import open_audit
from serving.access.principals import open_principals, token_hash
from serving.runs.store import open_runs
from tests.support.cli import invoke, ok, words
from tests.support.deliveries import write_delivery
from tests.support.homes import isolated_home

AS_OF = "2026-03-02"
TENANCIES = "tenancy_id,patch,start_date,end_date,rent_amount,rent_frequency\n" + "".join(
    f"{t},{p},2025-01-06,,100.00,weekly\n" for t, p in (("N1", "North-1"), ("N2", "North-1"), ("S1", "South-1"),
                                                        ("S2", "South-1")))
TRANSACTIONS = "transaction_id,tenancy_id,posted_date,type,amount\n" + "".join(
    f"X{t},{t},2026-02-23,charge,100.00\n" for t in ("N1", "N2", "S1", "S2"))


def _record_run() -> None:
    """Four tenancies, two in each of North-1 and South-1, ingested (the case file judges a case now from the
    ledger), and a run of them recorded straight into the runs store."""
    from serving.settings import get_settings

    ok("ingest", str(write_delivery(get_settings().home.parent / "delivery", tenancies=TENANCIES,
                                    transactions=TRANSACTIONS)))

    rows = pd.DataFrame({"tenancy_id": ["N1", "N2", "S1", "S2"], "patch": ["North-1", "North-1", "South-1", "South-1"],
                         "readiness_state": "ready", "risk_score": [0.9, 0.8, 0.7, 0.6], "queue_rank": [1, 2, 1, 2],
                         "state_reasons": [[] for _ in range(4)], "reasons": None, "protocol_step": "contact"})
    with open_runs(get_settings()) as store:
        store.record({"run_id": "run-1", "as_of": pd.Timestamp(AS_OF).date(), "recorded_at": pd.Timestamp(AS_OF)},
                     rows, pd.DataFrame(columns=["tenancy_id", "transaction_id", "posted_date", "amount"]))


def _token(*args: str) -> str:
    return ok("users", "add", *args).stdout.strip().splitlines()[-1]


def _trail() -> pd.DataFrame:
    from serving.settings import get_settings

    with open_audit(get_settings()) as log:
        assert log.verify().ok
        return log.entries()


@pytest.fixture
def required(tmp_path: Path):
    """A fresh home with auth required and a recorded run."""
    with isolated_home(tmp_path / "home", ARREARS_AUTH="required", ARREARS_TODAY=AS_OF) as env:
        env.delenv("ARREARS_TOKEN", raising=False)
        env.delenv("ARREARS_CLI_PRINCIPALS", raising=False)
        _record_run()
        yield env


def test_user_administration_needs_an_admin_after_the_first_and_names_who_did_it(required) -> None:
    login = getpass.getuser()
    wrong = invoke("users", "add", "Ops admin", "--role", "admin", "--token", "arr_not-a-token")
    admin = _token("Ops admin", "--role", "admin")  # the bootstrap: no admin yet
    refused = invoke("users", "add", "Mail house", "--role", "sender")
    officer = _token("A. Officer", "--role", "officer", "--patch", "North-1", "--token", admin)
    by_officer = invoke("users", "add", "Mail house", "--role", "sender", "--token", officer)
    required.setenv("ARREARS_TOKEN", admin)
    sender = _token("Mail house", "--role", "sender", "--expires-in", "30")
    rotated = ok("users", "rotate", "Mail house", "--overlap-hours", "2")
    listed = json.loads(ok("users", "list", "--json").stdout)
    shown = words(ok("users", "list"))
    ok("users", "revoke", "A. Officer")
    required.delenv("ARREARS_TOKEN")
    bad = invoke("users", "revoke", "Ops admin", "--token", "arr_not-a-token")
    trail = _trail()
    assert refused.exit_code == 2 and f"the login {login!r} is not one" in words(refused)
    assert "ARREARS_TOKEN" in words(refused) and "users add NAME --role ROLE" in words(refused)
    assert by_officer.exit_code == 1 and "A. Officer (officer) may not administer principals" in words(by_officer)
    for refusal in (wrong, bad):  # a token that does not work is refused, even before any admin exists
        assert refusal.exit_code == 2 and "not known or was revoked" in words(refusal)
    new = rotated.stdout.strip().splitlines()[-1]
    assert new.startswith("arr_") and new != sender and "the old one works until" in words(rotated)
    assert [(p["name"], p["role"], p["patches"], p["last_used_at"] is None) for p in listed] == [
        ("A. Officer", "officer", ["North-1"], False), ("Mail house", "sender", [], True),
        ("Ops admin", "admin", [], False)]  # the officer's and the admin's tokens were used; the sender's not yet
    mail = listed[1]
    assert mail["old_until"] is not None and mail["old_until"] < mail["expires_at"]
    assert mail["old_until"][:13] == (datetime.fromisoformat(mail["created_at"]) + timedelta(hours=2)).isoformat()[:13]
    done = [(e["actor"], e["role"], e["action"], e["detail"]["principal"]) for e in trail.to_dict("records")]
    assert done == [(login, "cli", "principal_added", "Ops admin"), ("Ops admin", "admin", "principal_added",
                                                                      "A. Officer"),
                    ("Ops admin", "admin", "principal_added", "Mail house"),
                    ("Ops admin", "admin", "token_rotated", "Mail house"),
                    ("Ops admin", "admin", "principal_revoked", "A. Officer")]
    added = trail[trail["action"] == "principal_added"]["detail"].tolist()
    assert added[1]["patches"] == ["North-1"] and added[1]["role"] == "officer"
    assert added[2]["expires_at"] < added[1]["expires_at"]  # 30 days, not the default 90
    assert "Principals (times UTC)" in shown and "Mail house" in shown.replace("│ ", "")
    assert all(t not in trail.to_json() for t in (admin, officer, sender, new))  # tokens never in the trail
    assert all(token_hash(t) not in trail.to_json() for t in (admin, officer, sender, new))


def test_an_expired_token_is_refused_saying_to_ask_for_a_rotation_and_rotation_brings_it_back(required) -> None:
    from serving.settings import get_settings

    admin = _token("Ops admin", "--role", "admin")
    officer = _token("A. Officer", "--role", "officer", "--patch", "North-1", "--token", admin)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    with open_principals(get_settings()) as store:  # as if its 90 days had passed
        store.db.execute("UPDATE principals SET expires_at = ? WHERE token_hash = ?", [past, token_hash(officer)])
    expired = invoke("case", "show", "N1", "--token", officer)
    listed = [p["name"] for p in json.loads(ok("users", "list", "--json").stdout)]
    renewed = ok("users", "rotate", "A. Officer", "--token", admin).stdout.strip().splitlines()[-1]
    shown = ok("case", "show", "N1", "--json", "--token", renewed)
    assert expired.exit_code == 2 and "The token expired at" in words(expired)
    assert "arrears users rotate A. Officer" in words(expired)
    assert "A. Officer" not in listed  # an expired token is not active
    assert json.loads(shown.stdout)["patch"] == "North-1"


def test_casework_from_the_cli_is_scoped_like_the_service_and_named_in_the_trail(required) -> None:
    admin = _token("Ops admin", "--role", "admin")
    officer = _token("A. Officer", "--role", "officer", "--patch", "North-1", "--token", admin)
    supervisor = _token("A. Supervisor", "--role", "supervisor", "--patch", "North-1", "--token", admin)
    nobody = invoke("case", "show", "N1")
    required.setenv("ARREARS_TOKEN", officer)
    own = ok("case", "act", "N1", "--kind", "contact_attempted", "--channel", "phone")
    other = invoke("case", "act", "S1", "--kind", "contact_attempted", "--channel", "phone")
    other_file = invoke("case", "show", "S1")
    approve = invoke("case", "approve", "D-any")
    outbox = invoke("case", "outbox")
    clearance = invoke("case", "act", "N1", "--kind", "review_cleared", "--reason", "approach_agreed")
    cleared = ok("case", "act", "N2", "--kind", "review_cleared", "--reason", "approach_agreed", "--token",
                 supervisor)
    shown = words(ok("case", "show", "N1"))
    trail = _trail()
    assert nobody.exit_code == 2 and "ARREARS_AUTH=required" in words(nobody)
    assert "Recorded contact_attempted" in own.output
    for refused in (other, other_file):
        assert refused.exit_code == 1
        assert "No such case in the patches you see (A. Officer sees North-1)" in words(refused)
    assert approve.exit_code == 1 and "A. Officer (officer) may not approve drafts: that is for supervisor, admin" \
        in words(approve)
    assert outbox.exit_code == 1 and "may not read the outbox: that is for sender, admin" in words(outbox)
    assert clearance.exit_code == 1 and "officer may not record review_cleared" in words(clearance)
    assert "Recorded review_cleared" in cleared.output
    assert "│ A. Officer (officer) │ action_recorded" in shown
    recorded = trail[trail["action"] == "action_recorded"]
    assert list(zip(recorded["actor"], recorded["role"], recorded["tenancy_id"], strict=True)) == [
        ("A. Officer", "officer", "N1"), ("A. Supervisor", "supervisor", "N2")]


def test_a_mapped_login_acts_as_its_principal_without_a_token(required, tmp_path: Path) -> None:
    login = getpass.getuser()
    mapping = tmp_path / "cli_principals.yaml"
    mapping.write_text(f"{login}:\n  name: B. Officer\n  role: officer\n  patches: [South-1]\n")
    admin = _token("Ops admin", "--role", "admin")
    required.setenv("ARREARS_CLI_PRINCIPALS", str(mapping))
    acted = ok("case", "act", "S1", "--kind", "note", "--note", "Left a card")
    refused = invoke("case", "show", "N1")
    admin_refused = invoke("users", "add", "C. Officer", "--role", "officer", "--patch", "South-1")
    required.setenv("ARREARS_CLI_PRINCIPALS", json.dumps({login: {"role": "admin", "name": "Mapped admin"}}))
    ok("users", "add", "C. Officer", "--role", "officer", "--patch", "South-1")
    by_token = ok("case", "show", "S1", "--json", "--token", admin)  # a token wins over the mapping
    required.setenv("ARREARS_CLI_PRINCIPALS", json.dumps({login: {"role": "officer"}}))
    bad_mapping = invoke("case", "show", "S1")
    trail = _trail()
    assert "Recorded note" in acted.output
    assert refused.exit_code == 1 and "B. Officer sees South-1" in words(refused)
    assert admin_refused.exit_code == 1 and "B. Officer (officer) may not administer principals" in words(
        admin_refused)
    assert bad_mapping.exit_code == 2 and "officers and supervisors are given their patches" in words(bad_mapping)
    assert json.loads(by_token.stdout)["patch"] == "South-1"
    named = [(e["actor"], e["role"], e["action"]) for e in trail.to_dict("records")]
    assert ("B. Officer", "officer", "action_recorded") in named
    assert ("Mapped admin", "admin", "principal_added") in named


def test_with_auth_open_the_cli_acts_as_before_under_the_login(tmp_path: Path) -> None:
    login = getpass.getuser()
    with isolated_home(tmp_path / "home", ARREARS_AUTH="open", ARREARS_TODAY=AS_OF) as env:
        env.delenv("ARREARS_TOKEN", raising=False)
        env.delenv("ARREARS_CLI_PRINCIPALS", raising=False)
        _record_run()
        ok("users", "add", "Ops admin", "--role", "admin")
        ok("users", "add", "Mail house", "--role", "sender")  # open: administration as before
        ok("case", "act", "S1", "--kind", "review_cleared", "--reason", "approach_agreed")  # every patch and step
        ok("case", "outbox")
        trail = _trail()
    assert set(zip(trail["actor"], trail["role"], strict=True)) == {(login, "cli")}


def test_privacy_verbs_are_an_admins_and_name_the_admin_in_the_audit_trail(required, tmp_path: Path) -> None:
    admin = _token("Ops admin", "--role", "admin")  # the bootstrap
    officer = _token("A. Officer", "--role", "officer", "--patch", "North-1", "--token", admin)
    nobody = invoke("privacy", "export", "N1", "--out", str(tmp_path / "n1.zip"))
    by_officer = invoke("privacy", "export", "N1", "--out", str(tmp_path / "n1.zip"), "--token", officer)
    log_by_officer = invoke("privacy", "access-log", "N1", "--token", officer)
    assert nobody.exit_code == 2 and "ARREARS_TOKEN" in words(nobody)
    assert by_officer.exit_code == 1 and "A. Officer (officer) may not export a tenancy's data" in words(by_officer)
    assert log_by_officer.exit_code == 1 and not (tmp_path / "n1.zip").exists()
    ok("privacy", "export", "N1", "--out", str(tmp_path / "n1.zip"), "--token", admin)
    ok("privacy", "restrict", "N1", "--reason", "REQ-7", "--token", admin)
    reads = json.loads(ok("privacy", "access-log", "N1", "--json", "--token", admin).stdout)
    assert [(r["principal"], r["role"], r["what"]) for r in reads] == [("Ops admin", "admin", "export")]
    trail = _trail()
    mine = trail[trail["action"].isin(["subject_access_export", "processing_restricted"])]
    assert set(zip(mine["actor"], mine["role"], mine["action"], strict=True)) == {
        ("Ops admin", "admin", "subject_access_export"), ("Ops admin", "admin", "processing_restricted")}
