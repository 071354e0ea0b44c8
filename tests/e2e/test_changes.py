"""A delivery, then the next worklist run: `arrears worklist --since-last` shows exactly what that delivery caused
(readiness changes, cases leaving the ready list, the payment), and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from simulator import simulate_portfolio, write_portfolio
from tests.support.cli import ok
from tests.support.deliveries import write_delivery
from tests.support.homes import isolated_home


def ready_cases(n: int) -> list[dict]:
    rows = json.loads(ok("worklist", "--top", "400", "--json").stdout)["rows"]
    return [r for r in rows if not r["state_reasons"]][:n]  # plain cases: no arrangement to be revived by a payment


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Path:
    """A 400-tenancy portfolio ingested, featurised, trained and promoted; the module's tests act on it in turn."""
    root = tmp_path_factory.mktemp("changes")
    with isolated_home(root / "home"):
        write_portfolio(simulate_portfolio(n_tenancies=400, years=2.0, seed=21), root / "feeds")
        for verb in (["ingest", str(root / "feeds")], ["features"], ["train"], ["promote"]):
            ok(*verb)
        yield root


def test_the_changes_since_the_last_run_are_exactly_the_deliverys(served) -> None:
    tmp_path = served
    with isolated_home(tmp_path / "home"):
        payer, disputer, respite, vulnerable = (r["tenancy_id"] for r in ready_cases(4))
        as_of = json.loads(ok("worklist", "--json").stdout)["as_of"]
        register = pd.read_csv(tmp_path / "feeds" / "tenancies.csv", dtype=str, keep_default_na=False)
        paid = round(2 * float(register.set_index("tenancy_id").at[payer, "rent_amount"]), 2)  # rent and arrears
        # The housing system's register comes with the delivery: the payer's reported balance has the payment in it
        # (without it, a receipt dated before the reported balance's date would rightly make that balance ambiguous).
        resent = register[register["tenancy_id"].isin([payer, vulnerable])].copy()
        resent.loc[resent["tenancy_id"] == vulnerable, "vulnerable"] = "true"
        row = resent["tenancy_id"] == payer
        resent.loc[row, "reported_balance"] = f"{float(resent.loc[row, 'reported_balance'].iloc[0]) - paid:.2f}"
        delivery = write_delivery(
            tmp_path / "day",
            transactions=f"transaction_id,tenancy_id,posted_date,type,amount,method\n"
                         f"PAY1,{payer},{as_of},payment,-{paid:.2f},card\n",
            events=f"event_id,tenancy_id,event_date,type\nEV1,{disputer},{as_of},dispute_opened\n"
                   f"EV2,{respite},{as_of},breathing_space_started\n",
            tenancies=resent)
        ok("ingest", str(delivery))
        changes = json.loads(ok("worklist", "--since-last", "--json").stdout)
        assert "Features: incremental" in " ".join(ok("features").output.split())  # the weekly rows catch up ...
        latest = json.loads(ok("worklist", "--json").stdout)  # ... and no new run: the list already reflects it
        pages = _pages({"ready": "/worklist", "recent_payment": "/worklist?queue=recent_payment",
                        "disputed": "/worklist?queue=disputed&sort=tenancy"})
    moved = {c["tenancy_id"]: (c["before"], c["after"]) for c in changes["state_changes"]}
    assert moved == {payer: ("ready", "recent_payment"), disputer: ("ready", "disputed"),
                     respite: ("ready", "blocked"), vulnerable: ("ready", "review")}
    assert set(changes["left"]) == set(moved) and changes["entered"] == []
    assert {m["tenancy_id"] for m in changes["score_moves"]} <= set(moved)
    assert [(p["tenancy_id"], p["transaction_id"], p["amount"]) for p in changes["payments"]] == [
        (payer, "PAY1", paid)]
    assert latest["run_id"] == changes["run_id"]
    # The web app's worklist says the same on the page: the summary's counts, and each moved case's own marks.
    assert "4</strong> left it" in pages["ready"] and "0</strong> new on the ready list" in pages["ready"]
    risk = {m["tenancy_id"]: f"Risk {'up' if m['after'] > m['before'] else 'down'} from {m['before']:.0%}"
            for m in changes["score_moves"]}
    assert _marks(pages["recent_payment"], payer) == [
        "Was ready", *([risk[payer]] if payer in risk else []), f"Paid £{paid:,.2f} on {as_of}"]
    assert _marks(pages["disputed"], disputer) == ["Was ready", *([risk[disputer]] if disputer in risk else [])]


def _pages(paths: dict[str, str]) -> dict[str, str]:
    """The web app's pages, answered in-process by the app the service mounts, from a Worklister on this home."""
    from starlette.testclient import TestClient

    from serving.settings import get_settings
    from serving.web import build_app
    from serving.worklist import Worklister

    with TestClient(build_app(Worklister(get_settings()).warm())) as client:
        answers = {name: client.get(path) for name, path in paths.items()}
    assert all(a.status_code == 200 for a in answers.values()), {n: a.status_code for n, a in answers.items()}
    return {name: a.text for name, a in answers.items()}


def _marks(page: str, tenancy_id: str) -> list[str]:
    """The 'Changed' marks on a tenancy's row of a worklist page."""
    import re

    row = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*>{tenancy_id}</a>(?:(?!</tr>).)*</tr>", page, re.S)
    assert row, f"{tenancy_id} is not on the page"
    return re.findall(r'<span class="mark">([^<]*)</span>', row.group(0))


def test_officers_actions_are_judged_at_the_next_run_and_ready_cases_get_owners(served, monkeypatch) -> None:
    """A promise that is missed puts its case back on the list with that reason (and the trail says so); a hold and
    a third contact attempt hold theirs; each ready case of a patch gets an owner among its officers, none over
    capacity; the trail verifies."""
    from casework.audit import AuditLog
    from casework.cases import OfficerAction, owners, record_action
    from casework.store import open_casework
    from features.ledger import open_ledger
    from features.settings import load_settings
    from serving.settings import get_settings

    with isolated_home(served / "home", ARREARS_OFFICER_CAPACITY="3"):
        before = json.loads(ok("worklist", "--top", "400", "--json").stdout)
        as_of = pd.Timestamp(before["as_of"])
        with open_ledger(get_settings().ledger, read_only=True) as ledger:
            paid_lately = set(ledger.query("SELECT tenancy_id FROM transactions WHERE type IN ('payment', 'benefit') "
                                           "AND posted_date >= ?", [(as_of - pd.Timedelta(days=2)).date()])
                              ["tenancy_id"])
        plain = [r for r in before["rows"] if not r["state_reasons"] and r["tenancy_id"] not in paid_lately]
        patch = plain[0]["patch"]
        promiser, holder, caller = (r["tenancy_id"] for r in plain[:3])
        day = lambda n: (as_of + pd.Timedelta(days=n)).date()  # noqa: E731
        with open_casework(get_settings()) as db:
            log = AuditLog(db)
            record_action(db, log, promiser, OfficerAction(kind="promise_to_pay", amount=50, happened_on=day(-1),
                                                           due_on=day(-1)), "test-officer", "officer")
            record_action(db, log, holder, OfficerAction(kind="hold", until_on=day(14), reason="awaiting_benefit",
                                                         happened_on=day(0), note="Tenant in hospital"),
                          "test-officer", "officer")
            for _ in range(3):
                record_action(db, log, caller, OfficerAction(kind="contact_attempted", channel="phone",
                                                             happened_on=day(0)), "test-officer", "officer")
        for name in ("officer-a", "officer-b"):
            ok("users", "add", name, "--role", "officer", "--patch", patch)
        load_settings.cache_clear()
        ok("worklist", "--refresh")
        after = json.loads(ok("worklist", "--top", "400", "--json", "--state", "ready", "--state", "hold").stdout)
        with open_casework(get_settings()) as db:
            held, trail = owners(db), AuditLog(db).entries()
            verdict = AuditLog(db).verify()
    rows = {r["tenancy_id"]: r for r in after["rows"]}
    assert after["run_id"] != before["run_id"]  # the actions alone made a new run
    assert rows[promiser]["readiness_state"] == "ready"
    assert ("arrangement_broken", f"The repayment arrangement was broken on {as_of:%d %b %Y}") in [
        tuple(r.values()) for r in rows[promiser]["state_reasons"]]
    returned = trail[trail["action"] == "case_returned"]
    assert returned["tenancy_id"].tolist() == [promiser] and returned["detail"].iloc[0]["reason"] == "missed_promise"
    assert rows[holder]["readiness_state"] == "hold" and rows[holder]["hold_until"] == str(day(14))
    assert any(r["rule"] == "officer_hold" and "awaiting benefit" in r["text"] for r in rows[holder]["state_reasons"])
    assert rows[caller]["readiness_state"] == "hold"
    assert [r["rule"] for r in rows[caller]["state_reasons"]] == ["contact_limit"]
    ready_here = [r["tenancy_id"] for r in after["rows"] if r["readiness_state"] == "ready" and r["patch"] == patch]
    mine = held[held["patch"] == patch]
    assert len(mine) == min(len(ready_here), 6) and set(mine["tenancy_id"]) <= set(ready_here)
    assert mine["owner"].value_counts().max() <= 3 and set(mine["owner"]) == {"officer-a", "officer-b"}
    assigned = trail[trail["action"] == "case_assigned"]
    assert set(assigned["tenancy_id"]) == set(held["tenancy_id"])
    assert "Tenant in hospital" not in trail.to_json()  # the note stays in the case store
    assert verdict.ok and verdict.checked == len(trail)


def test_a_draft_is_written_for_a_ready_case_approved_as_edited_and_suppressed_by_a_payment_since(served) -> None:
    """A draft for each of two ready cases; a supervisor approves one as edited (the original kept beside it) and
    the other as written; a payment for the first arrives in the next delivery, so its release is suppressed with
    that reason while the second goes to the outbox. Nothing goes out unapproved, and the trail verifies."""
    import hashlib

    from casework import drafts
    from casework.audit import AuditLog
    from casework.store import open_casework
    from serving.casework_runs import release_draft, write_draft
    from serving.settings import get_settings

    with isolated_home(served / "home"):
        listed = json.loads(ok("worklist", "--top", "400", "--json", "--state", "ready", "--state", "hold").stdout)
        settings = get_settings()
        plain = [r["tenancy_id"] for r in listed["rows"] if r["readiness_state"] == "ready" and not r["state_reasons"]]
        held = next(r["tenancy_id"] for r in listed["rows"] if r["readiness_state"] == "hold")
        payer, quiet = plain[-1], plain[-2]
        letter = write_draft(settings, payer, "letter", "en", "officer-a", "officer")
        sms = write_draft(settings, quiet, "sms", "en", "officer-a", "officer")
        refused = []
        for tenancy, why in ((payer, "already has draft"), (held, "not ready")):
            with pytest.raises(drafts.DraftRefused, match=why):
                write_draft(settings, tenancy, "letter", "en", "officer-a", "officer")
            refused.append(tenancy)
        with open_casework(settings) as db:
            log = AuditLog(db)
            with pytest.raises(drafts.DraftRefused, match="another person"):
                drafts.approve(db, log, letter["draft_id"], "officer-a", "officer")
            edited_text = letter["text"].replace("Income Team", "Income Team (your officer: A. Officer)")
            edited = drafts.approve(db, log, letter["draft_id"], "super-1", "supervisor", text=edited_text)
            drafts.approve(db, log, sms["draft_id"], "super-1", "supervisor")
            assert drafts.outbox(db).empty  # approved is not sent: release is its own step
        paid_on = pd.Timestamp(listed["as_of"]) + pd.Timedelta(days=1)
        ok("ingest", str(write_delivery(served / "payment", transactions=(
            "transaction_id,tenancy_id,posted_date,type,amount,method\n"
            f"PAYX,{payer},{paid_on.date()},payment,-25.00,card\n"))))
        suppressed = release_draft(settings, edited["draft_id"], "super-1", "supervisor")
        released = release_draft(settings, sms["draft_id"], "super-1", "supervisor")
        with open_casework(settings) as db:
            sent, versions = drafts.outbox(db), drafts.drafts(db, [payer])
            trail, verdict = AuditLog(db).entries(), AuditLog(db).verify()
    facts = json.loads(letter["facts"])
    assert facts["as_of"] == listed["as_of"] and f"£{facts['balance']:,.2f}" in letter["text"]
    assert letter["stage"] == "first_reminder" and letter["template_version"].startswith("2026.12-1+")
    assert suppressed["status"] == "suppressed" and suppressed["reason"].startswith("payment_since_draft: £25.00")
    assert released["status"] == "released" and sent["tenancy_id"].tolist() == [quiet]
    assert sent["text"].iloc[0] == sms["text"] and sent["channel"].iloc[0] == "sms"
    assert versions[["version", "status"]].values.tolist() == [[1, "edited"], [2, "suppressed"]]
    assert versions["text"].tolist() == [letter["text"], edited_text.strip() + "\n"]  # the original kept beside
    mine = trail[trail["tenancy_id"] == payer]
    assert mine["action"].tolist()[-4:] == ["draft_generated", "draft_edited", "draft_approved", "draft_suppressed"]
    edit = mine[mine["action"] == "draft_edited"]["detail"].iloc[0]
    digest = lambda text: hashlib.sha256(text.encode()).hexdigest()  # noqa: E731
    assert edit["original_sha256"] == digest(letter["text"]) and edit["edited_sha256"] == digest(versions["text"][1])
    assert "A. Officer" not in trail.to_json() and verdict.ok
