"""Casework from the command line, as the service does it (`serving.runs.casefile`, `serving.runs.mycases`): `case
show`, `case mine`, `case act`, `case draft`, `case approve`, `case reject`, `case release`, `case outbox`. Each verb
acts as a named principal (`serving.access.cli_principal`: a token, or the login mapped to a principal), held to its
role and patches as over HTTP and named with its role in the audit trail like the web app's; with auth open and no
token or mapping, the login acts with role `cli`, every patch and every step, as before principals."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from arrears.cli.users import TokenOption, act_as
from arrears.render import console, fail, out, print_json, table
from casework.cases import OfficerAction
from serving.access.cli_principal import cli_principal, require
from serving.access.principals import CASEWORK, SENDING, SUPERVISING, Forbidden, Principal
from serving.runs import casefile, mycases
from serving.runs.answers import words
from serving.runs.casefile import NotVisible
from serving.runs.schemas import ActionKind, ContactChannel, ContactOutcome, DraftChannel, Referral, RejectReason
from serving.settings import get_settings

case_app = typer.Typer(help="Casework: a case's owner, actions, drafts and decisions; officers' actions; drafts, "
                       "approvals and release to the outbox (docs/casework.md). Each verb acts as a named principal, "
                       "held to its role and patches and named in the audit trail: your token (ARREARS_TOKEN, or "
                       "--token), else your login mapped to a principal in ARREARS_CLI_PRINCIPALS. With "
                       "ARREARS_AUTH=required one of them is needed; with auth open your login acts on every patch.",
                       no_args_is_help=True)


def _me(token: str | None, roles: tuple[str, ...], doing: str) -> Principal:
    """Who acts, if their role may do this; else an error saying what to do."""
    return act_as(lambda: require(cli_principal(get_settings(), token), roles, doing))


def _do(work, me: Principal | None = None):
    """Run a casework step; a refusal is an error that says what to do."""
    try:
        return work(casefile)
    except NotVisible as exc:
        seen = f" ({me.name} sees {', '.join(me.patches)})" if me is not None and me.patches else ""
        fail(f"{words(exc)}{seen}", code=1)
    except Forbidden as exc:
        fail(str(exc), code=1)
    except (LookupError, ValueError) as exc:
        fail(words(exc))


@case_app.command("show")
def show(tenancy: Annotated[str, typer.Argument(help="The tenancy id.")],
         as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
         token: TokenOption = None) -> None:
    """Who owns the next action, the officers' actions, every draft version and every decision about a case (of
    your patches)."""
    me = _me(token, CASEWORK, "open case files")
    found = _do(lambda api: api.case_file(get_settings(), me, tenancy), me)
    if as_json:
        print_json(found.model_dump())
        return
    out.print(f"{tenancy} ({found.patch}, {found.readiness_state}): {found.owner_note}.", highlight=False)
    table("Actions", ["day", "action", "by", "settled"],
          [[a.happened_on, a.kind, a.actor, a.settled_as or ""] for a in found.actions])
    table("Drafts", ["draft", "version", "stage", "channel", "status", "reason"],
          [[d.draft_id, str(d.version), d.stage, d.channel, d.status, d.reason or ""] for d in found.drafts])
    table("Decisions", ["seq", "at (UTC)", "who", "decision"],
          [[str(e.seq), e.at[:19], f"{e.actor} ({e.role})", e.action] for e in found.audit], right=("seq",))


@case_app.command("mine")
def mine(officer: Annotated[str | None, typer.Option(
             help="The officer whose cases to list (their principal's name; default: yours). Naming another is a "
             "supervisor's or an admin's.")] = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
         token: TokenOption = None) -> None:
    """An officer's cases that want something today: ready ones, ones a missed promise or instalment returned, and
    promises and instalments due today (ARREARS_TODAY, else the system date), each with why and the amount due."""
    me = _me(token, CASEWORK, "list cases")
    if officer is None and me.role == "cli":
        fail("Whose cases? Name the officer with --officer (or act as them: --token or ARREARS_TOKEN)")
    found = _do(lambda _: mycases.my_cases(get_settings(), me, officer), me)
    if as_json:
        print_json(found.model_dump())
        return
    columns = ["tenancy", "patch", "state", "step", "why", "due"]
    table(f"{officer or me.name}'s cases on {found.day} (run of {found.as_of})", columns,
          [[c.tenancy_id, c.patch or "", c.readiness_state or "", c.protocol_step or "",
            "; ".join(w.text for w in c.why), "" if c.amount_due is None else f"£{c.amount_due:,.2f}"]
           for c in found.cases], right=("due",))


@case_app.command("act")
def act(
    tenancy: Annotated[str, typer.Argument(help="The tenancy id.")],
    kind: Annotated[ActionKind, typer.Option(help="What was done or decided (docs/casework.md).")],
    happened_on: Annotated[str | None, typer.Option(
        help="The day (YYYY-MM-DD; default the service's day: ARREARS_TODAY, else today).")] = None,
    channel: Annotated[ContactChannel | None, typer.Option(help="A contact's channel.")] = None,
    outcome: Annotated[ContactOutcome | None, typer.Option(help="A contact's outcome.")] = None,
    amount: Annotated[float | None, typer.Option(
        help="Pounds promised, or per instalment; for income_expenditure, what the tenant can afford a week.")] = None,
    due_on: Annotated[str | None, typer.Option(help="A promise's day.")] = None,
    instalments: Annotated[int | None, typer.Option(help="An arrangement's number of payments.")] = None,
    every_days: Annotated[int | None, typer.Option(help="Days between an arrangement's payments (default 7).")]
    = None,
    until_on: Annotated[str | None, typer.Option(help="A hold's last day.")] = None,
    reason: Annotated[str | None, typer.Option(
        help="A reason code: a hold's, a dismissal's, a dispute's (dispute_opened) or its resolution's.")] = None,
    referral: Annotated[Referral | None, typer.Option(help="Where the tenant was referred.")] = None,
    note: Annotated[str | None, typer.Option(help="Free text (kept in the case store only).")] = None,
    token: TokenOption = None,
) -> None:
    """Record what was done or decided about a case, the protocol's own steps included (dispute_opened,
    dispute_resolved, rent_statement_sent, warning_sent, income_expenditure, benefit_claim_help; notice_served and
    review_cleared are a supervisor's). `arrears case show` then shows what it implies now; the next run records it."""
    given = {k: v for k, v in {"kind": kind, "happened_on": happened_on, "channel": channel, "outcome": outcome,
                               "amount": amount, "due_on": due_on, "instalments": instalments, "every_days": every_days,
                               "until_on": until_on, "reason": reason, "referral": referral,
                               "note": note}.items() if v is not None}
    me = _me(token, CASEWORK, "record actions")
    recorded = _do(lambda api: api.record_action(get_settings(), me, tenancy, OfficerAction(**given)), me)
    console.print(f"Recorded {recorded.kind} ({recorded.action_id}) on {recorded.happened_on}.")


@case_app.command("draft")
def draft(tenancy: Annotated[str, typer.Argument(help="The tenancy id (a ready case).")],
          channel: Annotated[DraftChannel | None, typer.Option(
              help="How it would be sent. Default: the tenant's preferred channel (the register's), else letter.")]
          = None,
          language: Annotated[str | None, typer.Option(
              help="A language of the templates (en, cy). Default: the tenant's (the register's); one without "
              "templates gives an English draft marked needs_translation.")] = None,
          token: TokenOption = None) -> None:
    """Write a draft for a ready case; it waits for someone else's approval."""
    me = _me(token, CASEWORK, "write drafts")
    written = _do(lambda api: api.write_draft(get_settings(), me, tenancy, channel, language), me)
    translate = f" and translation into {written.needs_translation}" if written.needs_translation else ""
    console.print(f"Draft {written.draft_id} ({written.stage}, {written.channel}, {written.language}) waits for "
                  f"approval{translate}:")
    typer.echo(written.text)


@case_app.command("approve")
def approve(draft_id: Annotated[str, typer.Argument(help="The draft's id.")],
            text_file: Annotated[Path | None, typer.Option(help="The text as edited (the original is kept).")]
            = None,
            token: TokenOption = None) -> None:
    """Approve a draft someone else wrote, as written or edited (a supervisor's or an admin's)."""
    me = _me(token, SUPERVISING, "approve drafts")
    text = text_file.read_text() if text_file else None
    done = _do(lambda api: api.decide(get_settings(), me, draft_id, "approve", text, None), me)
    console.print(f"Draft {done.draft_id} (version {done.version}) approved: release it with "
                  f"`arrears case release {done.draft_id}`.")


@case_app.command("reject")
def reject(draft_id: Annotated[str, typer.Argument(help="The draft's id.")],
           reason: Annotated[RejectReason, typer.Option(help="Why it is rejected.")],
           token: TokenOption = None) -> None:
    """Reject a draft someone else wrote, with a reason (a supervisor's or an admin's)."""
    me = _me(token, SUPERVISING, "reject drafts")
    _do(lambda api: api.decide(get_settings(), me, draft_id, "reject", None, reason), me)
    console.print(f"Draft {draft_id} rejected ({reason}).")


@case_app.command("release")
def release(draft_id: Annotated[str, typer.Argument(help="An approved draft's id.")],
            token: TokenOption = None) -> None:
    """Release an approved draft to the outbox, unless the case has changed since (then it is suppressed); a
    supervisor's or an admin's."""
    me = _me(token, SUPERVISING, "release drafts")
    done = _do(lambda api: api.release(get_settings(), me, draft_id), me)
    said = "released to the outbox" if done.status == "released" else f"suppressed: {done.reason}"
    console.print(f"Draft {draft_id} {said}.")


@case_app.command("outbox")
def outbox(after_seq: Annotated[int, typer.Option(
        help="The last sequence number read: print the messages after it (0: from the first).")] = 0,
           token: TokenOption = None) -> None:
    """The released messages for the landlord's own sending system, as JSON (nothing here sends them); the sending
    system's (role sender) or an admin's."""
    _me(token, SENDING, "read the outbox")
    print_json(_do(lambda api: api.outbox(get_settings(), after_seq)).model_dump()["messages"])
