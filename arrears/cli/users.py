"""Who may use the HTTP service: `users add` (prints the token once), `users list`, `users rotate`, `users revoke`.

Adding, rotating and revoking are an admin's (`serving.access.cli_principal.administrator`: a token or a mapped
login; before any admin exists, the login adds the first), and each goes in the audit trail naming who did it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from arrears.render import console, fail, print_json, table
from casework.store import open_audit
from serving.access.cli_principal import NotSignedIn, administrator
from serving.access.declared import declared
from serving.access.principals import Forbidden, Principal, Role, open_principals, stored_patches, token_settings
from serving.settings import get_settings

users_app = typer.Typer(
    help="Principals of the HTTP service (and of the CLI) and their bearer tokens. Roles: officer and supervisor "
    "(their patches: scores, worklists, casework), data_scientist (monitoring, forecasts, KPIs), treasury "
    "(forecasts, KPIs), sender (the sending system: the outbox), admin (all). The service checks them when "
    "ARREARS_AUTH=required (the production profile's default). Tokens expire (ARREARS_TOKEN_DAYS, 90 days) and are "
    "replaced with `rotate`. Adding, rotating and revoking need an admin: give an admin's token (--token or "
    "ARREARS_TOKEN) or be a login mapped to one (ARREARS_CLI_PRINCIPALS); until the first admin exists anyone "
    "running the CLI may add principals. Each change goes in the audit trail.",
    no_args_is_help=True)

#: The option every verb that acts as a named principal takes (casework, users, privacy).
TokenOption = Annotated[str | None, typer.Option(
    "--token", help="Act as the principal holding this token (default: ARREARS_TOKEN, else your login's mapping in "
    "ARREARS_CLI_PRINCIPALS; with ARREARS_AUTH=required one of them is needed). Prefer ARREARS_TOKEN: a command "
    "line is seen by other users of the machine.", show_default=False)]


def act_as(find: Callable[[], Principal]) -> Principal:
    """The principal `find` names (`serving.access.cli_principal`), or an error saying what to do: exit 1 for a
    principal whose role may not do this, 2 for nobody signed in or a token that does not work."""
    try:
        return find()
    except Forbidden as exc:
        fail(str(exc), code=1)
    except (NotSignedIn, ValueError) as exc:
        fail(str(exc))
    raise AssertionError  # fail exits


def _admin(token: str | None) -> Principal:
    """The admin acting, or an error saying what to do."""
    return act_as(lambda: administrator(get_settings(), token))


def _audit(by: Principal, action: str, name: str, **detail: object) -> None:
    with open_audit(get_settings()) as log:
        log.append(by.name, by.role, action, detail={"principal": name, **detail})


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A member of staff (or a system), as it should appear in logs.")],
    role: Annotated[Role, typer.Option(help="What the principal does.")],
    patch: Annotated[list[str] | None, typer.Option(
        "--patch", help="A patch the officer or supervisor sees (repeat for several: a supervisor's area).")] = None,
    expires_in: Annotated[int | None, typer.Option(
        "--expires-in", min=1, max=3650, help="Days the token works (default ARREARS_TOKEN_DAYS, 90); then it is "
        "refused (401, saying so) until `arrears users rotate NAME` gives a new one.", show_default=False)] = None,
    token: TokenOption = None,
) -> None:
    """Add a principal and print its token, once, as the last line: only its hash is kept, so copy it now. Needs an
    admin (or nobody yet being one)."""
    by = _admin(token)
    try:
        with open_principals(get_settings()) as store:
            made = store.add(name, role, patch or [], expires_in)
            expires = str(store.active(name.strip())["expires_at"].iloc[0])
    except ValueError as exc:
        fail(str(exc))
    _audit(by, "principal_added", name.strip(), role=role, patches=sorted(set(patch or [])), expires_at=expires)
    # Lazy on purpose: the endpoints declare their roles where the service defines them, and importing the service
    # (BentoML and the scoring stack) fills the registry; at the top every command would pay for it, not this verb.
    import serving.api.service  # noqa: F401

    endpoints = ", ".join(path for path, roles in declared("endpoint").items() if role in roles)
    console.print(f"Added {name} ({role}{': ' + ', '.join(sorted(set(patch or []))) if patch else ''}): may call "
                  f"{endpoints}. Send `Authorization: Bearer <token>`. It expires {_when(expires)} (rotate it "
                  "before then). The token (shown once):", highlight=False)
    typer.echo(made)


def _when(stamp: object) -> str:
    return "never" if not isinstance(stamp, str) else stamp[:16].replace("T", " ") + " UTC"


def _minute(stamp: object, otherwise: str) -> str:
    return stamp[:16].replace("T", " ") if isinstance(stamp, str) else otherwise


@users_app.command("list")
def list_users(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON (times in full, UTC).")] = False) \
        -> None:
    """The principals with a working token: when it expires, when it was last used (to the minute) and, after a
    rotation, until when the old one still works. Tokens are never shown again. A token from before tokens expired
    shows `never`: rotate it."""
    with open_principals(get_settings()) as store:
        active = store.active()
    records = [{"name": str(r["name"]), "role": str(r["role"]), "patches": list(stored_patches(r["patches"]) or []),
                **{k: r[k] if isinstance(r[k], str) else None for k in ("created_at", "expires_at", "last_used_at",
                                                                          "old_until")}}
               for r in active.to_dict("records")]
    if as_json:
        print_json(records)
        return
    table("Principals (times UTC)", ["name", "role", "patches", "expires", "last used", "old token until"],
          [[r["name"], r["role"], ", ".join(r["patches"]) or "all", (r["expires_at"] or "never")[:10],
            _minute(r["last_used_at"], "not yet"), _minute(r["old_until"], "")] for r in records])


@users_app.command("rotate")
def rotate(
    name: Annotated[str, typer.Argument(help="The principal (a machine, usually) whose token to replace.")],
    overlap_hours: Annotated[float | None, typer.Option(
        "--overlap-hours", min=0, help="Hours the old token keeps working, so the machine can be given the new one "
        "without a gap (default ARREARS_TOKEN_OVERLAP_HOURS, 24; 0: it stops now, e.g. when it leaked).",
        show_default=False)] = None,
    expires_in: Annotated[int | None, typer.Option(
        "--expires-in", min=1, max=3650, help="Days the new token works (default ARREARS_TOKEN_DAYS, 90).",
        show_default=False)] = None,
    token: TokenOption = None,
) -> None:
    """Give a principal a new token, printed once as the last line, with the same role and patches; the old one
    works for the overlap, then is refused. An expired token is rotated the same way. Needs an admin."""
    by = _admin(token)
    try:
        with open_principals(get_settings()) as store:
            made, old_until = store.rotate(name, overlap_hours, expires_in)
            expires = str(store.active(name)["expires_at"].iloc[0])
    except (LookupError, ValueError) as exc:
        fail(str(exc))
    _audit(by, "token_rotated", name, expires_at=expires, old_until=old_until)
    hours = token_settings().token_overlap_hours if overlap_hours is None else overlap_hours
    old = "stopped now" if old_until is None else f"works until {_when(old_until)} ({hours:g} h)"
    console.print(f"Rotated {name}'s token: the old one {old}; the new one expires {_when(expires)}. The new token "
                  "(shown once):", highlight=False)
    typer.echo(made)


@users_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The principal whose token stops working now.")],
           token: TokenOption = None) -> None:
    """Revoke a principal's tokens (a rotated one still in its overlap too): its next request is refused (401).
    Needs an admin."""
    by = _admin(token)
    with open_principals(get_settings()) as store:
        n = store.revoke(name)
    if not n:
        fail(f"{name!r} has no active token: `arrears users list` shows who has")
    _audit(by, "principal_revoked", name, tokens=n)
    console.print(f"Revoked {name}'s token.")
