"""One vocabulary: readiness states (and the order people see them in), action kinds, channels, stages and roles are
each defined once (casework and serving.access.principals); the HTTP schemas, the pages, the CLI's choices and the
docs say the same words, and a test (this one) fails when one of them drifts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arrears.cli import app
from casework.cases import ACTION_KINDS, CONTACT_CHANNELS, OUTCOMES, REFERRALS, SYSTEM_KINDS
from casework.drafts import DRAFT_CHANNELS, REJECT_REASONS, STAGES
from casework.policy import QUEUES, STATES
from serving.access.principals import ROLES
from serving.runs.schemas import CaseAction, Draft, WorklistRow

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _enum(model, field: str) -> list[str]:
    schema = model.model_json_schema()["properties"][field]
    options = schema.get("anyOf", [schema])
    return next(option["enum"] for option in options if "enum" in option)


def test_the_queues_are_the_states_in_another_order() -> None:
    assert sorted(QUEUES) == sorted(STATES) and len(set(QUEUES)) == len(QUEUES)
    assert QUEUES[0] == "ready" and STATES[-1] == "ready"


def test_the_http_schemas_take_their_words_from_the_vocabulary() -> None:
    assert _enum(WorklistRow, "readiness_state") == list(QUEUES)
    assert _enum(CaseAction, "kind") == [*ACTION_KINDS, *SYSTEM_KINDS]  # what was recorded, the service's too
    assert _enum(CaseAction, "channel") == list(CONTACT_CHANNELS)
    assert _enum(CaseAction, "outcome") == list(OUTCOMES)
    assert _enum(CaseAction, "referral") == list(REFERRALS)
    assert _enum(Draft, "stage") == list(STAGES) and _enum(Draft, "channel") == list(DRAFT_CHANNELS)


def test_docs_policy_lists_every_state_in_precedence_order() -> None:
    text = (DOCS / "policy.md").read_text()
    table = text.split("## States, highest precedence first", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M) == list(STATES)


def test_docs_casework_describes_every_action_kind() -> None:
    text = (DOCS / "casework.md").read_text()
    assert [kind for kind in ACTION_KINDS if not re.search(rf"^\| `{kind}`", text, flags=re.M)] == []


@pytest.mark.parametrize(("command", "words"), [
    (["worklist"], QUEUES), (["case", "act"], (*ACTION_KINDS, *CONTACT_CHANNELS, *OUTCOMES, *REFERRALS)),
    (["case", "draft"], DRAFT_CHANNELS), (["case", "reject"], REJECT_REASONS), (["users", "add"], ROLES)])
def test_the_cli_offers_exactly_the_vocabulary(command: list[str], words: tuple[str, ...]) -> None:
    shown = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
    assert shown.exit_code == 0, shown.output
    assert [word for word in words if not re.search(rf"\b{word}\b", shown.output)] == []
