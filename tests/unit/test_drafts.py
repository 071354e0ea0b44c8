"""Outreach templates (casework/templates/outreach): every one versioned, rendered with a case's facts to the
penny, nothing left blank; the sandbox keeps a template away from the application; each stage is chosen as the
case says; no letter says what is not true (no arrears letter without arrears, no possession wording before a notice
may be served), and an edit is held to its stage's content rules."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casework import drafts

FACTS = drafts.DraftFacts(
    tenancy_id="T000042", as_of="2026-10-31", readiness_state="ready", protocol_step="contact",
    policy_version="2026.11-1+abc", run_id="r1", balance=1234.5, arrears_weeks=6.04, tenant_name=None,
    promise={"made": "2026-10-20", "due": "2026-10-28", "amount": 50.0},
    statement=({"date": "24/10/2026", "item": "charge", "amount": "200.00", "balance": "1,234.50"},))


@pytest.mark.parametrize("path", sorted(drafts.TEMPLATES.glob("*.j2")), ids=lambda p: p.name)
def test_every_template_is_versioned_and_renders_the_facts(path) -> None:
    stage, language, channel = path.name.split(".")[:3]
    assert stage in drafts.STAGES and channel in drafts.DRAFT_CHANNELS and language in ("en", "cy")
    assert re.match(r"\d{4}\.\d{2}-\d+\+[0-9a-f]{8}$", drafts.template_version(path))
    text = drafts.render(path, FACTS)
    assert "T000042" in text and "{{" not in text and "{%" not in text
    if stage != "missed_promise":
        assert "£1,234.50" in text
    else:
        assert "£50.00" in text and ("28 October 2026" if language == "en" else "28 Hydref 2026") in text
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
    ({"protocol_step": "statement", "promise": None}, "pre_action"),
    ({"protocol_step": "notice_running", "promise": None}, "pre_action"),
    ({"protocol_step": "warning", "promise": None}, "warning"),
])
def test_the_stage_follows_the_case(changes, stage) -> None:
    assert drafts.stage_for(replace(FACTS, **changes)) == stage


def test_the_vulnerable_wording_is_chosen_where_there_is_one_and_a_missing_template_says_what_to_add() -> None:
    assert drafts.template_for("first_reminder", "en", "letter", True).name.endswith(".vulnerable.j2")
    assert drafts.template_for("first_reminder", "en", "sms", True).name == "first_reminder.en.sms.j2"
    with pytest.raises(drafts.MissingTemplate, match="add casework/templates/outreach/pre_action.pl.letter.j2"):
        drafts.template_for("pre_action", "pl", "letter", False)


def test_release_is_suppressed_by_a_payment_a_change_of_state_or_the_contact_limit() -> None:
    ok = drafts.ReleaseCheck(0.0, "ready", (), 1, 3)
    assert drafts.suppression(ok) is None

    assert drafts.suppression(replace(ok, received_since_draft=10.0)).startswith("payment_since_draft")
    assert drafts.suppression(replace(ok, readiness_state="blocked", state_reasons=("breathing_space",))) == (
        "state_changed: the case is now blocked (breathing_space)")
    assert drafts.suppression(replace(ok, contacts_recent=3)).startswith("contact_limit")


# -- no letter that says what is not true ----------------------------------------------------------------------------
READY = replace(FACTS, protocol_step="contact", promise=None, reasons=())


@pytest.mark.parametrize(("changes", "why"), [
    ({"balance": -40.0, "arrears_weeks": 0.0}, r"is £40\.00 in credit"),
    ({"balance": 0.0, "arrears_weeks": 0.0}, "owes nothing"),
    ({"balance": 60.0, "arrears_weeks": 0.5, "protocol_step": "none"}, "protocol step none"),
    ({"readiness_state": "blocked", "protocol_step": None, "reasons": ("breathing_space",)},
     r"blocked \(breathing_space\), not ready"),
    ({"arrears_weeks": 0.5}, r"0\.5 weeks' rent, under the 1 a first reminder letter needs"),
])
def test_a_case_without_arrears_or_not_ready_is_refused_a_draft_with_its_reason(changes, why) -> None:
    facts = replace(READY, **changes)
    assert re.search(why, drafts.refusal(facts, drafts.stage_for(facts), "letter"))


def test_a_statement_goes_by_letter_or_email_only() -> None:
    facts = replace(READY, protocol_step="statement")
    assert drafts.refusal(facts, "pre_action", "sms") == "A pre action goes by letter or email, not sms"
    assert drafts.refusal(facts, "pre_action", "letter") is None


def _written(stage: str, step: str, language: str = "en", channel: str = "letter") -> str:
    facts = replace(READY, protocol_step=step, reasons=(), promise=None)
    return drafts.render(drafts.template_for(stage, language, channel, False), facts)


def test_an_edit_that_drops_the_debt_advice_or_threatens_possession_before_the_notice_step_is_refused() -> None:
    text = _written("pre_action", "statement")
    assert drafts.check_content("pre_action", "en", "statement", text) == []
    dropped = re.sub(r"StepChange|National Debtline|Citizens Advice|Shelter", "an adviser", text)
    assert drafts.check_content("pre_action", "en", "statement", dropped) == [
        "missing: free, independent debt advice, by name"]
    threat = text + "\nIf you do not pay we will apply to the court.\n"
    assert drafts.check_content("pre_action", "en", "statement", threat) == [
        "not allowed: possession wording ('court') before a notice may be served"]
    assert drafts.check_content("pre_action", "en", "notice_running", threat) == []  # once a notice may be served
    assert drafts.check_content("first_reminder", "en", "contact", "Dear [NAME], you owe £{{ balance }}") == [
        "missing: the amount owed (£ and a figure)", "missing: free, independent debt advice, by name",
        "not allowed: a placeholder or template code left in ('[NAME]')"]


# Facts each stage is written from (stage_for picks the stage from them).
STAGE_FACTS = {"first_reminder": {"protocol_step": "contact"},
               "missed_promise": {"protocol_step": "arrangement", "reasons": ("arrangement_broken",)},
               "broken_arrangement": {"protocol_step": "arrangement", "reasons": ("arrangement_not_kept",)},
               "pre_action": {"protocol_step": "statement"}, "warning": {"protocol_step": "warning"}}
COMBINATIONS = [(stage, language, channel, vulnerable) for stage in drafts.STAGES for language in ("en", "cy")
                for channel in drafts.content_rules()["stages"][stage]["channels"] for vulnerable in (False, True)]
money = st.floats(min_value=0.01, max_value=20_000, allow_nan=False).map(lambda x: round(x, 2))
#: Any text as a tenant's name but the pound sign: a name "£" renders "Dear £," which the check below rightly takes
#: for money rendered without its amount (Hypothesis found it in CI's random draws).
names = st.one_of(st.none(), st.just(""), st.text(st.characters(exclude_characters="£"), min_size=1,
                                                   max_size=30).map(str.strip))
dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2035, 12, 31))
rows = st.lists(st.fixed_dictionaries({"date": dates.map(lambda d: f"{d:%d/%m/%Y}"),
                                       "item": st.sampled_from(["rent", "payment", "housing benefit", "adjustment"]),
                                       "amount": money.map("{:,.2f}".format), "balance": money.map("{:,.2f}".format)}),
                min_size=1, max_size=13)


def test_every_stage_has_its_templates_in_english_and_welsh() -> None:
    missing = [combo for combo in COMBINATIONS if not combo[3] and not _exists(*combo[:3])]
    assert missing == []


def _exists(stage: str, language: str, channel: str) -> bool:
    return (drafts.TEMPLATES / f"{stage}.{language}.{channel}.j2").exists()


@settings(max_examples=150, deadline=None)
@given(combo=st.sampled_from(COMBINATIONS), weeks=st.floats(min_value=1.0, max_value=60.0), rent=money,
       name=names,
       statement=rows, promised=money, as_of=dates, step=st.sampled_from(["contact", "arrangement", "statement"]))
def test_every_template_renders_true_complete_letters_over_random_facts(combo, weeks, rent, name, statement,
                                                                         promised, as_of, step) -> None:
    stage, language, channel, vulnerable = combo
    facts = replace(READY, as_of=str(as_of), arrears_weeks=weeks, balance=round(weeks * max(rent, 1.0), 2),
                    tenant_name=name or None, vulnerable=vulnerable, statement=tuple(statement),
                    promise={"made": str(as_of), "due": str(as_of), "amount": promised}, **STAGE_FACTS[stage]
                    | ({"protocol_step": step} if stage in ("missed_promise", "broken_arrangement") else {}))
    assert drafts.stage_for(facts) == stage and drafts.refusal(facts, stage, channel) is None
    text = drafts.render(drafts.template_for(stage, language, channel, vulnerable), facts)
    assert drafts.check_content(stage, language, facts.protocol_step, text) == []
    assert not re.search(r"£\s?(-|0\.00\b)|\bNone\b|\bnan\b|Dear\s*,|Annwyl\s*,|£\s*[,.]", text)
