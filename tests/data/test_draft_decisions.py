"""Drafts on a real case store: a language without templates is written in English and marked for translation
(never silently English); an edit that drops the debt-advice contacts or threatens possession before a notice may be
served is refused approval naming what is wrong, and the draft stays pending; a good edit is approved beside the
original."""

from __future__ import annotations

import pandas as pd
import pytest

from casework import drafts
from casework.audit import AuditLog
from casework.store import open_casework
from serving.runs.casework import preferences
from tests.support.homes import isolated_home

FACTS = drafts.DraftFacts(
    tenancy_id="T000042", as_of="2026-10-31", readiness_state="ready", protocol_step="statement",
    policy_version="p", run_id="r1", balance=812.4, arrears_weeks=6.2, tenant_name="Sam",
    statement=({"date": "26/10/2026", "item": "rent", "amount": "131.00", "balance": "812.40"},))


@pytest.fixture()
def store(tmp_path):
    with isolated_home(tmp_path / "home"):
        from casework.settings import get_settings

        with open_casework(get_settings()) as db:
            yield db


def test_a_language_without_templates_gets_english_marked_for_translation_and_welsh_gets_welsh(store) -> None:
    log = AuditLog(store)
    polish = drafts.generate(store, log, FACTS, "letter", "pl", "officer-1", "officer")
    assert (polish["language"], polish["needs_translation"], polish["template"]) == (
        "en", "pl", "pre_action.en.letter.j2")
    assert drafts.drafts(store, ["T000042"])["needs_translation"].tolist() == ["pl"]
    drafts.reject(store, log, polish["draft_id"], "supervisor-1", "supervisor", "not_now")
    welsh = drafts.generate(store, log, FACTS, "letter", "cy", "officer-1", "officer")
    assert (welsh["language"], welsh["needs_translation"]) == ("cy", None)
    assert "Lle i Anadlu" in welsh["text"] and "31 Hydref 2026" in welsh["text"]
    assert AuditLog(store).entries(tenancy_id="T000042")["detail"].iloc[0]["needs_translation"] == "pl"


def test_an_edit_against_the_stages_rules_is_refused_approval_and_a_good_one_is_approved(store) -> None:
    log = AuditLog(store)
    written = drafts.generate(store, log, FACTS, "letter", "en", "officer-1", "officer")
    no_advice = written["text"].replace("StepChange", "an adviser").replace("Shelter", "a charity").replace(
        "Citizens Advice", "a service").replace("National Debtline", "a line")
    with pytest.raises(drafts.DraftRefused, match="missing: free, independent debt advice, by name"):
        drafts.approve(store, log, written["draft_id"], "supervisor-1", "supervisor", no_advice)
    threat = written["text"] + "\nOtherwise we will seek possession of your home.\n"
    with pytest.raises(drafts.DraftRefused, match="possession wording \\('possession'\\) before a notice may be"):
        drafts.approve(store, log, written["draft_id"], "supervisor-1", "supervisor", threat)
    assert drafts.draft(store, written["draft_id"])["status"] == "pending"  # nothing was decided
    kinder = written["text"].replace("Yours sincerely", "With best wishes")
    approved = drafts.approve(store, log, written["draft_id"], "supervisor-1", "supervisor", kinder)
    assert approved["version"] == 2 and drafts.draft(store, written["draft_id"])["status"] == "edited"


@pytest.mark.parametrize(("preferred", "language", "stage", "asked", "expected"), [
    ("email", "cy", "first_reminder", (None, None), ("email", "cy")),
    ("sms", "pl", "first_reminder", (None, None), ("sms", "pl")),
    ("sms", "en", "pre_action", (None, None), ("letter", "en")),  # a statement does not go by SMS
    ("phone", None, "first_reminder", (None, None), ("letter", "en")),  # no draft by phone; no language: English
    ("email", "cy", "first_reminder", ("letter", "en"), ("letter", "en")),  # what a person asks for wins
])
def test_a_draft_goes_by_the_tenants_channel_and_language_unless_asked_otherwise(preferred, language, stage, asked,
                                                                                  expected) -> None:
    register = pd.DataFrame({"tenancy_id": ["T1"], "preferred_channel": [preferred], "language": [language]})
    assert preferences(register, stage, *asked) == expected
