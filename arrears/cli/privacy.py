"""Tenants' privacy rights (docs/privacy.md): `privacy export` (subject access), `privacy erase` (pseudonymise a
tenancy everywhere), `privacy restrict` (stop processing and listing; `--lift`), `privacy access-log` (who read a
tenancy's data) and `privacy retention` (apply the retention schedule). Administrators' verbs: each acts as a named
admin (a token, `--token` or ARREARS_TOKEN, or the login mapped in ARREARS_CLI_PRINCIPALS; with auth open, the login)
and is recorded in the audit trail under that name."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from arrears.cli.users import TokenOption, act_as
from arrears.render import fail, out, print_json, table
from casework import restrictions
from casework.store import open_audit, open_casework
from casework.subjects import is_pseudonym, pseudonym
from serving.access.cli_principal import cli_principal, require
from serving.access.principals import ADMIN, Principal
from serving.privacy.access_log import open_access_log
from serving.privacy.holdings import archive, erase
from serving.privacy.retention import RetentionError, apply_retention, load_retention
from serving.settings import get_settings

privacy_app = typer.Typer(help="Tenants' privacy rights: subject access export, erasure, restriction, who looked, "
                          "and the retention schedule (docs/privacy.md).", no_args_is_help=True)
def _admin(token: str | None, doing: str) -> Principal:
    """The admin acting (by token or mapped login; with auth open, the login); else an error saying what to do."""
    return act_as(lambda: require(cli_principal(get_settings(), token), ADMIN, doing))


@privacy_app.command("export")
def export(
    tenancy: Annotated[str, typer.Argument(help="The tenancy whose data to export.")],
    out_file: Annotated[Path, typer.Option("--out", help="The zip to write (a CSV per store and table, "
                                                         "manifest.json).")],
    token: TokenOption = None,
) -> None:
    """Everything held about one tenancy across every store, as one zip with a manifest."""
    me = _admin(token, "export a tenancy's data")
    data, manifest = archive(get_settings(), tenancy, me.name, me.role)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_bytes(data)
    rows = sum(f["rows"] for f in manifest["files"].values())
    out.print(f"Wrote {out_file}: {rows:,} rows of {tenancy} from {len(manifest['files'])} tables.")


@privacy_app.command("erase")
def erase_verb(
    tenancy: Annotated[str, typer.Argument(help="The tenancy to erase.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows changed as JSON.")] = False,
    token: TokenOption = None,
) -> None:
    """Replace the tenancy's id by its keyed pseudonym in every store (the rows stay, naming nobody); the audit
    trail still verifies. Ask the housing system not to deliver the tenancy again, or it comes back."""
    me = _admin(token, "erase a tenancy")
    if is_pseudonym(tenancy):
        fail(f"{tenancy} is a pseudonym already: nothing to erase")
    counts = erase(get_settings(), tenancy, me.name, me.role)
    if as_json:
        print_json({"pseudonym": pseudonym(tenancy), "rows": counts})
        return
    table(f"{tenancy} erased: now {pseudonym(tenancy)}", ["store/table", "rows"],
          [[name, f"{n:,}"] for name, n in counts.items()], right=("rows",))


@privacy_app.command("restrict")
def restrict(
    tenancy: Annotated[str, typer.Argument(help="The tenancy whose processing to restrict.")],
    reason: Annotated[str, typer.Option(help="Why (a request's reference, never the tenant's words).")] = "request",
    lift: Annotated[bool, typer.Option("--lift", help="Lift the restriction instead.")] = False,
    token: TokenOption = None,
) -> None:
    """Stop processing the tenancy: not scored into the next worklist run, no drafts, in no list; `--lift` ends it.
    Lists drop it at the next run (`arrears worklist --refresh`)."""
    settings, me = get_settings(), _admin(token, "restrict a tenancy's processing")
    with open_casework(settings) as db:
        done = (restrictions.lift(db, tenancy, me.name) if lift
                else restrictions.restrict(db, tenancy, me.name, reason[:200]))
    if done:
        with open_audit(settings) as log:
            log.append(me.name, me.role, "restriction_lifted" if lift else "processing_restricted", tenancy,
                       {} if lift else {"reason": reason[:200]})
    state = "lifted" if lift else "restricted"
    out.print(f"{tenancy}: processing {state}" + ("" if done else " already") + ".")


@privacy_app.command("access-log")
def access_log(
    tenancy: Annotated[str, typer.Argument(help="The tenancy whose reads to show.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    token: TokenOption = None,
) -> None:
    """Who read the tenancy's data (case page, /case_file, /score, exports): when, who, their role, what."""
    me = _admin(token, "read the access log")
    with open_access_log(get_settings()) as log:
        entries = log.entries(tenancy)
        log.record(me.name, me.role, [tenancy], "access_log")
    if as_json:
        print_json(entries.to_dict("records"))
        return
    table(f"Reads of {tenancy}", ["at (UTC)", "who", "role", "what"],
          [[e["at"][:19], e["principal"], e["role"], e["what"]] for e in entries.to_dict("records")])


@privacy_app.command("retention")
def retention(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go, change nothing.")] = False,
    schedule_file: Annotated[Path | None, typer.Option(help="A retention schedule (default: "
                                                             "serving/privacy/retention.yaml).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    token: TokenOption = None,
) -> None:
    """Apply the retention schedule: ended tenancies past their time pseudonymised, old worklist runs, unsent
    drafts, access-log entries and log files deleted; what was done recorded in the audit trail."""
    try:
        schedule = load_retention(schedule_file)
    except (RetentionError, OSError) as exc:
        fail(str(exc))
    me = _admin(token, "apply the retention schedule")
    done = apply_retention(get_settings(), schedule, dry_run=dry_run, actor=me.name, role=me.role)
    if as_json:
        print_json(done)
        return
    verb = "would change" if dry_run else "changed"
    table(f"Retention schedule {done['schedule_version']}: rows {verb}", ["store/table", "rows"],
          [[name, f"{n:,}"] for name, n in done["counts"].items()], right=("rows",))
