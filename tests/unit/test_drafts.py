"""Outreach templates (casework/templates/outreach): every one versioned, rendered with a case's facts to the
penny, nothing left blank; the sandbox keeps a template away from the application; each stage is chosen as the
case says."""

from __future__ import annotations

import re

import pytest

from casework import drafts

FACTS = drafts.DraftFacts(
    tenancy_id="T000042", as_of="2026-10-31", readiness_state="ready", protocol_step="contact",
    policy_version="2026.11-1+abc", run_id="r1", balance=1234.5, arrears_weeks=6.04, tenant_name=None,
    promise={"made": "2026-10-20", "due": "2026-10-28", "amount": 50.0},
    statement=({"date": "24/10/2026", "item": "charge", "amount": "200.00", "balance": "1,234.50"},))


@pytest.mark.parametrize("path", sorted(drafts.TEMPLATES.glob("*.j2")), ids=lambda p: p.name)
def test_every_template_is_versioned_and_renders_the_facts(path) -> None:
    stage, language, channel = path.name.split(".")[:3]
    assert stage in drafts.STAGES and channel in drafts.DRAFT_CHANNELS and language == "en"
    assert re.match(r"\d{4}\.\d{2}-\d+\+[0-9a-f]{8}$", drafts.template_version(path))
    text = drafts.render(path, FACTS)
    assert "T000042" in text and "{{" not in text and "{%" not in text
    if stage != "missed_promise":
        assert "£1,234.50" in text
    else:
        assert "£50.00" in text and "28 October 2026" in text
    if channel == "sms":
        assert len(text) <= 320  # two SMS segments at most


def test_a_template_cannot_leave_a_blank_nor_reach_the_application(tmp_path) -> None:
    from jinja2.exceptions import SecurityError, UndefinedError

    blank = tmp_path / "x.en.letter.j2"
    blank.write_text("Dear {{ tenant_nmae }}")
    with pytest.raises(UndefinedError):
        drafts.render(blank, FACTS)
    escape = tmp_path / "y.en.letter.j2"
    escape.write_text("{{ tenancy_id.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(SecurityError):
        drafts.render(escape, FACTS)


@pytest.mark.parametrize(("changes", "stage"), [
    ({}, "first_reminder"),
    ({"reasons": ("arrangement_broken",)}, "missed_promise"),
    ({"reasons": ("arrangement_not_kept",), "promise": None}, "broken_arrangement"),
    ({"protocol_step": "warning", "promise": None}, "pre_action"),
])
def test_the_stage_follows_the_case(changes, stage) -> None:
    from dataclasses import replace

    assert drafts.stage_for(replace(FACTS, **changes)) == stage


def test_the_vulnerable_wording_is_chosen_where_there_is_one_and_a_missing_template_says_what_to_add() -> None:
    assert drafts.template_for("first_reminder", "en", "letter", True).name.endswith(".vulnerable.j2")
    assert drafts.template_for("first_reminder", "en", "sms", True).name == "first_reminder.en.sms.j2"
    with pytest.raises(drafts.MissingTemplate, match="add casework/templates/outreach/pre_action.cy.letter.j2"):
        drafts.template_for("pre_action", "cy", "letter", False)


def test_release_is_suppressed_by_a_payment_a_change_of_state_or_the_contact_limit() -> None:
    ok = drafts.ReleaseCheck(0.0, "ready", (), 1, 3)
    assert drafts.suppression(ok) is None
    from dataclasses import replace

    assert drafts.suppression(replace(ok, received_since_draft=10.0)).startswith("payment_since_draft")
    assert drafts.suppression(replace(ok, readiness_state="blocked", state_reasons=("breathing_space",))) == (
        "state_changed: the case is now blocked (breathing_space)")
    assert drafts.suppression(replace(ok, contacts_recent=3)).startswith("contact_limit")
