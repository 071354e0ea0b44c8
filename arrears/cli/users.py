"""Who may use the HTTP service: `users add` (prints the token once), `users list`, `users revoke`."""

from __future__ import annotations

from typing import Annotated

import typer

from arrears.render import console, fail, table
from serving.access.declared import declared
from serving.access.principals import Role, open_principals, stored_patches
from serving.settings import get_settings

users_app = typer.Typer(
    help="Principals of the HTTP service and their bearer tokens. Roles: officer and supervisor (their patches: "
    "scores, worklists), data_scientist (monitoring, forecasts, KPIs), treasury (forecasts, KPIs), admin (all). "
    "The service checks them when ARREARS_AUTH=required (the production profile's default).",
    no_args_is_help=True)


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A member of staff (or a system), as it should appear in logs.")],
    role: Annotated[Role, typer.Option(help="What the principal does.")],
    patch: Annotated[list[str] | None, typer.Option(
        "--patch", help="A patch the officer or supervisor sees (repeat for several: a supervisor's area).")] = None,
) -> None:
    """Add a principal and print its token, once, as the last line: only its hash is kept, so copy it now."""
    try:
        with open_principals(get_settings()) as store:
            token = store.add(name, role, patch or [])
    except ValueError as exc:
        fail(str(exc))
    # Lazy on purpose: the endpoints declare their roles where the service defines them, and importing the service
    # (BentoML and the scoring stack) fills the registry; at the top every command would pay for it, not this verb.
    import serving.api.service  # noqa: F401

    endpoints = ", ".join(path for path, roles in declared("endpoint").items() if role in roles)
    console.print(f"Added {name} ({role}{': ' + ', '.join(sorted(set(patch or []))) if patch else ''}): may call "
                  f"{endpoints}. Send `Authorization: Bearer <token>`. The token (shown once):", highlight=False)
    typer.echo(token)


@users_app.command("list")
def list_users() -> None:
    """The principals with an active token (tokens are never shown again)."""
    with open_principals(get_settings()) as store:
        active = store.active()
    table("Principals", ["name", "role", "patches", "since"],
          [[str(r["name"]), str(r["role"]), ", ".join(stored_patches(r["patches"]) or ["all"]), str(r["created_at"])]
           for r in active.to_dict("records")])


@users_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The principal whose token stops working now.")]) -> None:
    """Revoke a principal's token: its next request is refused (401)."""
    with open_principals(get_settings()) as store:
        n = store.revoke(name)
    if not n:
        fail(f"{name!r} has no active token: `arrears users list` shows who has")
    console.print(f"Revoked {name}'s token.")
