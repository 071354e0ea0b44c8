"""The audit trail: `audit verify` (is the chain whole?), `audit show` (what was decided), `audit head` (the anchor
to keep elsewhere)."""

from __future__ import annotations

from typing import Annotated

import typer

from arrears.render import console, fail, out, print_json, table
from casework.settings import get_settings
from casework.store import open_audit

audit_app = typer.Typer(
    help="The audit trail of every decision (drafts generated, approved, edited, rejected, released or suppressed; "
    "officer actions; reassignments; model promotions; policy changes): hash-chained, append-only, no personal "
    "data.", no_args_is_help=True)


def _anchor(head: str | None) -> tuple[int, str] | None:
    if head is None:
        return None
    seq, _, digest = head.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        fail(f"--head is SEQ:HASH as `arrears audit head` prints it (e.g. 42:{'ab' * 32}), not {head!r}")
    return int(seq), digest


@audit_app.command("verify")
def verify(
    head: Annotated[str | None, typer.Option(help="An anchor kept elsewhere (SEQ:HASH from `arrears audit head`): "
                                                  "also check the log still holds that entry unchanged.")] = None,
) -> None:
    """Check the whole chain: every entry in place, chained to the one before, its content matching its hash. Exits
    1 naming the first entry that does not hold."""
    anchor = _anchor(head)
    with open_audit(get_settings()) as log, console.status("Checking the audit chain…"):
        verdict = log.verify(head=anchor)
    if not verdict.ok:
        fail(f"the audit trail has been tampered with at entry {verdict.first_bad}: {verdict.problem} "
             f"({verdict.checked:,} entries before it hold)", 1)
    out.print(f"The audit trail holds: {verdict.checked:,} entries, each in place and unchanged"
              + (f", entry {anchor[0]} as anchored." if anchor else "."))


@audit_app.command("head")
def show_head() -> None:
    """The last entry's SEQ:HASH. Keep it somewhere the case store's users cannot write (a ticket, an email, the
    job log): `arrears audit verify --head SEQ:HASH` then also catches a cut-off or rewritten tail."""
    with open_audit(get_settings()) as log:
        seq, digest = log.head()
    typer.echo(f"{seq}:{digest}")


@audit_app.command("show")
def show(
    tenancy: Annotated[str | None, typer.Option(help="Only this tenancy's entries.")] = None,
    last: Annotated[int, typer.Option(min=1, help="How many of the latest entries.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """The latest decisions, oldest first: when, who, what, which tenancy, and the detail."""
    with open_audit(get_settings()) as log:
        seq, _ = log.head()
        entries = log.entries(tenancy_id=tenancy, since_seq=0 if tenancy else max(0, seq - last))
    entries = entries.tail(last)
    if as_json:
        print_json(entries.drop(columns=["prev_hash"]).to_dict("records"))
        return
    table("Audit trail", ["seq", "at (UTC)", "who", "action", "tenancy", "detail"],
          [[str(e["seq"]), e["at"][:19], f"{e['actor']} ({e['role']})", e["action"], e["tenancy_id"] or "",
            ", ".join(f"{k}={v}" for k, v in e["detail"].items())] for e in entries.to_dict("records")],
          right=("seq",))
