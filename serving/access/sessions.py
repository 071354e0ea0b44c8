"""Server-side sessions of the web app: signing in (with a token, or through the landlord's identity provider) starts
a session whose id, 256 random bits, is all the browser's cookie holds; the principal, when the session started and
when it was last used are kept here, in the serving database beside the principals. The token itself never reaches
the cookie.

A session ends when it has been idle for `session_idle_seconds`, when it is older than `session_absolute_seconds`,
when its person signs out (which ends every session of that person, on every device), or when the token it was
started with is revoked or expires. Only the SHA-256 of a session id is stored: a copy of the database lets nobody
in. A session's last use is written at most every `touch_seconds` (a page view is not a database write), so idleness
is judged to within that.

The cookie is `HttpOnly`, `SameSite=Strict`, scoped to the app's path, and `Secure` when the service is reached over
HTTPS (the request's scheme, or `X-Forwarded-Proto: https` from a proxy in `ARREARS_TRUSTED_PROXIES`) or when
`ARREARS_COOKIE_SECURE=true` says so.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from features.db import Database, open_store
from serving.access.declared import PAGE_ROOT, SESSION_COOKIE
from serving.access.principals import Principal, PrincipalStore, stamp, stored_patches
from serving.settings import ServingSettings

TABLES = {"sessions": {"session_hash": "TEXT", "name": "TEXT", "role": "TEXT", "patches": "TEXT", "via": "TEXT",
                       "token_hash": "TEXT", "started_at": "TEXT", "last_seen_at": "TEXT", "ended_at": "TEXT",
                       "ended_why": "TEXT"}}
PRIMARY_KEYS = {"sessions": ("session_hash",)}
INDEXES = ("CREATE INDEX IF NOT EXISTS sessions_by_name ON sessions (name, ended_at)",)
Via = Literal["token", "oidc"]


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Found:
    """What a session cookie leads to: the principal, or None and why not (a key of `ENDED`, for the sign-in page
    to say; "" when the cookie leads nowhere)."""
    principal: Principal | None
    why: str = ""


def ended(why: str, settings: ServingSettings) -> str:
    """Why a session ended, in words for the sign-in page ("" for a reason it does not know)."""
    return {"signed_out": "You were signed out. Sign in again.",
            "revoked": "Your token was revoked or has expired: ask an admin for a new one.",
            "absolute": f"Sessions last at most {_span(settings.session_absolute_seconds)}: sign in again.",
            "idle": f"You were signed out after {_span(settings.session_idle_seconds)} without using the service. "
                    "Sign in again."}.get(why, "")


class SessionStore:
    """The sessions. Use `open_sessions(settings)`."""

    def __init__(self, db: Database, settings: ServingSettings) -> None:
        self.db, self.settings = db, settings

    def ensure_schema(self) -> None:
        self.db.ensure_tables(TABLES, PRIMARY_KEYS, INDEXES)

    def start(self, principal: Principal, via: Via, token_hash: str | None = None) -> str:
        """Start a session for `principal` and return its id (the cookie's value; only its hash is kept).
        `token_hash`: the principal's token, for a session started with one (its revocation ends the session)."""
        session_id, now = secrets.token_urlsafe(32), _iso(_now())
        self.db.insert("sessions", {
            "session_hash": _hash(session_id), "name": principal.name, "role": principal.role,
            "patches": None if principal.patches is None else json.dumps(list(principal.patches)), "via": via,
            "token_hash": token_hash, "started_at": now, "last_seen_at": now, "ended_at": None, "ended_why": None})
        return session_id

    def find(self, session_id: str) -> Found:
        """The session's principal if it is live (and its last use noted), else None and why."""
        found = self.db.query("SELECT s.name, s.role, s.patches, s.via, s.token_hash, s.started_at, s.last_seen_at, "
                              "s.ended_at, p.revoked_at, p.expires_at, p.token_hash AS known_token FROM sessions s "
                              "LEFT JOIN principals p ON p.token_hash = s.token_hash WHERE s.session_hash = ?",
                              [_hash(session_id)])
        if found.empty:
            return Found(None, "")
        row, now = found.iloc[0], _now()
        if isinstance(row["ended_at"], str):
            return Found(None, "signed_out")
        why = ""
        age, idle = now - datetime.fromisoformat(row["started_at"]), now - datetime.fromisoformat(row["last_seen_at"])
        token_gone = (not isinstance(row["known_token"], str) or isinstance(row["revoked_at"], str)
                      or (isinstance(row["expires_at"], str) and row["expires_at"] <= stamp(now)))
        if row["via"] == "token" and token_gone:
            why = "revoked"
        elif age > timedelta(seconds=self.settings.session_absolute_seconds):
            why = "absolute"
        elif idle > timedelta(seconds=self.settings.session_idle_seconds):
            why = "idle"
        if why:
            self._end("session_hash = ?", [_hash(session_id)], why)
            return Found(None, why)
        if idle > timedelta(seconds=self.touch_seconds):
            self.db.execute("UPDATE sessions SET last_seen_at = ? WHERE session_hash = ?",
                            [_iso(now), _hash(session_id)])
        return Found(Principal(str(row["name"]), str(row["role"]), stored_patches(row["patches"])))

    @property
    def touch_seconds(self) -> float:
        """How stale a session's last use may be before a request writes it again."""
        return min(60.0, self.settings.session_idle_seconds / 10)

    def end_everywhere(self, session_id: str) -> int:
        """Sign-out: end every live session of the person whose session this is; returns how many."""
        found = self.db.query("SELECT name FROM sessions WHERE session_hash = ?", [_hash(session_id)])
        if found.empty:
            return 0
        return self.end_all(str(found.iloc[0]["name"]), "signed_out")

    def end_all(self, name: str, why: str) -> int:
        """End every live session of `name`; `why` a key of `ended`'s (signed_out, revoked…)."""
        return self._end("name = ?", [name], why)

    def live(self, name: str | None = None) -> int:
        sql, params = "SELECT COUNT(*) AS n FROM sessions WHERE ended_at IS NULL", []
        if name is not None:
            sql, params = sql + " AND name = ?", [name]
        return int(self.db.query(sql, params)["n"].iloc[0])

    def _end(self, where: str, params: list, why: str) -> int:
        with self.db.transaction():
            n = int(self.db.query(f"SELECT COUNT(*) AS n FROM sessions WHERE ended_at IS NULL AND {where}",
                                  params)["n"].iloc[0])
            self.db.execute(f"UPDATE sessions SET ended_at = ?, ended_why = ? WHERE ended_at IS NULL AND {where}",
                            [_iso(_now()), why, *params])
        return n


def _span(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return f"{hours} hour{'s' if hours != 1 else ''}"
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} seconds"


def open_sessions(settings: ServingSettings) -> AbstractContextManager[SessionStore]:
    # The principals table is joined on every lookup: make sure it exists too (a service with no users yet).
    def both(db: Database) -> SessionStore:
        PrincipalStore(db).ensure_schema()
        return SessionStore(db, settings)

    return open_store(settings.runs_database, both, once=True)  # the door opens it on every page


def served_over_https(scope, settings: ServingSettings) -> bool:
    """Whether this request reached the service over HTTPS (directly, or through a trusted proxy that says so)."""
    if scope.get("scheme") == "https":
        return True
    client = (scope.get("client") or ("",))[0]
    if client in settings.trusted_proxies:
        forwarded = dict(scope.get("headers") or []).get(b"x-forwarded-proto", b"").decode("latin-1")
        return forwarded.split(",")[0].strip().lower() == "https"
    return False


def set_session_cookie(response, request, session_id: str, settings: ServingSettings) -> None:
    """Put the session's id in the app's cookie: HttpOnly, SameSite=Strict, the app's path only, Secure over HTTPS
    (or when configured), kept by the browser no longer than a session may last."""
    secure = settings.cookie_secure if settings.cookie_secure is not None else served_over_https(request.scope,
                                                                                              settings)
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="strict", path=PAGE_ROOT, secure=secure,
                        max_age=int(settings.session_absolute_seconds))


def clear_session_cookie(response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=PAGE_ROOT)
