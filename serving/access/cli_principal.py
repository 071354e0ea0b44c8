"""Who the command line acts as: a named principal, scoped like everyone else and named in the audit trail.

The casework verbs (`arrears case …`) and user administration (`arrears users add/rotate/revoke`) find their
principal, first that found:

1. **a token**: `--token`, else `ARREARS_TOKEN`, checked against the principals exactly as the service's door
   checks a bearer token (unknown, revoked and expired tokens refused, its use recorded);
2. **the operating-system login mapped to a principal** in `ARREARS_CLI_PRINCIPALS`: a YAML file (default
   `cli_principals.yaml` under `ARREARS_HOME`, if there is one) or the same mapping inline as JSON (a value
   starting with `{`), login → name (default the login), role and patches:

       alice: {name: A. Officer, role: officer, patches: [North-1]}
       ops: {role: admin}

3. **nobody**: with `ARREARS_AUTH=required` refused with a message saying what to do; with auth open (the embedded
   demo's default) the login itself with role `cli`, which may do what it always could (every patch, every step),
   still named in the audit trail.

The principal is then held to its role and patches as over HTTP: an officer's `case show` of another patch's case
is refused, `case approve` needs a supervisor or an admin, `case outbox` the sending system or an admin
(`require`). User administration needs an admin (`administrator`), with one way in before there is one: while no
admin has a working token, the login may add principals (the first admin among them); the mapping is the other.

This names who acted; it is not a wall against someone with the database's credentials (the CLI has them and could
write the tables directly): those are for operators, and the principals are for accountability and scope.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serving.access.principals import (
    PATCH_ROLES,
    Forbidden,
    NotAuthenticated,
    Principal,
    Role,
    open_principals,
)
from serving.settings import ServingSettings

#: The role of the login acting with auth open and no mapping: today's unscoped operator.
OPEN_CLI_ROLE = "cli"
MAPPING_FILE = "cli_principals.yaml"


class NotSignedIn(PermissionError):
    """The CLI cannot tell who is acting (auth required); the message says how to say so."""


class MappedPrincipal(BaseModel):
    """One login's principal in the mapping."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=100)
    role: Role
    patches: list[str] = Field(default_factory=list)


def login() -> str:
    """The operating-system login running the command."""
    return getpass.getuser()


def mapping_source(settings: ServingSettings) -> str | None:
    """Where the login mapping comes from: `ARREARS_CLI_PRINCIPALS` (a file, or inline JSON), else the home's
    `cli_principals.yaml` if it exists, else None."""
    given = os.environ.get("ARREARS_CLI_PRINCIPALS", "").strip()
    if given:
        return given
    default = settings.home / MAPPING_FILE
    return str(default) if default.exists() else None


def mapping(settings: ServingSettings) -> dict[str, Principal]:
    """Each mapped login's principal. A mapping that cannot be read, or names a role wrongly, is a ValueError
    saying where."""
    source = mapping_source(settings)
    if source is None:
        return {}
    inline = source.startswith("{")
    where = "ARREARS_CLI_PRINCIPALS" if inline else source
    try:
        raw = json.loads(source) if inline else yaml.safe_load(Path(source).read_text())
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"The CLI's principals ({where}) cannot be read: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"The CLI's principals ({where}) map each login to {{name, role, patches}}")
    found = {}
    for who, entry in raw.items():
        try:
            mapped = MappedPrincipal.model_validate(entry)
        except ValidationError as exc:
            raise ValueError(f"The CLI's principals ({where}), login {who!r}: {exc.errors()[0]['msg']} "
                             f"({'.'.join(map(str, exc.errors()[0]['loc']))})") from exc
        patches = sorted(set(mapped.patches))
        if (mapped.role in PATCH_ROLES) != bool(patches):
            raise ValueError(f"The CLI's principals ({where}), login {who!r}: officers and supervisors are given "
                             "their patches, other roles none")
        found[str(who)] = Principal(mapped.name or str(who), mapped.role, tuple(patches) or None)
    return found


def _by_token(settings: ServingSettings, token: str) -> Principal:
    with open_principals(settings) as store:
        try:
            return store.verify(token.strip())
        except NotAuthenticated as exc:
            raise NotSignedIn(f"{exc} (the token given with --token or ARREARS_TOKEN)") from exc


def _unnamed(settings: ServingSettings, who: str) -> NotSignedIn:
    where = os.environ.get("ARREARS_CLI_PRINCIPALS") or str(settings.home / MAPPING_FILE)
    return NotSignedIn(
        f"ARREARS_AUTH=required: the CLI acts as a named principal, and the login {who!r} is not one. Give your "
        f"token with --token or ARREARS_TOKEN (an administrator makes one: `arrears users add NAME --role ROLE`), "
        f"or have an administrator map {who!r} to a principal in {where} (docs/casework.md)")


def cli_principal(settings: ServingSettings, token: str | None = None) -> Principal:
    """Who this command acts as (the module's doc says how it is found); NotSignedIn if nobody, auth required."""
    token = token or os.environ.get("ARREARS_TOKEN")
    if token and token.strip():
        return _by_token(settings, token)
    who = login()
    mapped = mapping(settings).get(who)
    if mapped is not None:
        return mapped
    if settings.auth_required:
        raise _unnamed(settings, who)
    return Principal(who, OPEN_CLI_ROLE)


def require(principal: Principal, roles: Sequence[str], doing: str) -> Principal:
    """`principal`, if its role may do `doing` (the open CLI's may do everything); else Forbidden saying who may."""
    if principal.role == OPEN_CLI_ROLE or principal.role in roles:
        return principal
    raise Forbidden(f"{principal.name} ({principal.role}) may not {doing}: that is for {', '.join(roles)}")


def administrator(settings: ServingSettings, token: str | None = None) -> Principal:
    """Who administers principals now: an admin by token or mapping; or, with auth open and nobody named, the
    login (as today); or, before any admin has a working token, the login (the bootstrap: it adds the first
    admin). Anyone else is refused, saying what to do; a token given that does not work is refused, never passed
    over for the bootstrap."""
    given = (token or os.environ.get("ARREARS_TOKEN") or "").strip()
    try:
        principal = cli_principal(settings, token)
    except NotSignedIn:
        if given:
            raise
        with open_principals(settings) as store:
            if store.has_admin():
                raise
        return Principal(login(), OPEN_CLI_ROLE)
    return require(principal, ("admin",), "administer principals (`arrears users`)")
