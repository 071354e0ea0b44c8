"""The HTTP door of the service (an ASGI middleware on the BentoML app), closed by default: a path is answered only
if it is public (health, metrics, the OpenAPI document, sign-in, static files) or declared with its roles where it
is defined (`serving.access.declared`); anything else is refused (401 without a token when authentication is
required, else 403), whatever the service behind the door would have done with it.

Every declared endpoint's request is read whole (up to `max_body_bytes`, else 413), its bearer token authenticated
(401), its role checked against the endpoint's declaration and any `patch` it names against the principal's patches
(403), each refusal with a message saying what to do; the principal then rides in the request's state for the
endpoint to narrow its answer (`serving.access.principals`).

The web app's pages (`/app`, `serving.web.app`) pass the same door: their cookie holds a server-side session's id
(`serving.access.sessions`: never the token; idle and absolute timeouts; a revoked token ends its sessions), looked
up here on every page; the principal, or None for nobody signed in (and why, for the sign-in page to say), rides in
the request's state, and each page's own check (declared with the page, `serving.web.kit.page`) answers with the
sign-in page or a refusal a person can read.

Wrong tokens are slowed, then locked out, per address and per principal (`serving.access.limits`): a blocked caller
is answered 429 with `Retry-After` before its token is even looked at.

A body must arrive whole within `body_timeout_seconds` (else 408: a client that stops part-way no longer holds a
worker, and the service's shutdown, for ever). It is judged before anything parses it: one that is not JSON (a
`Content-Type` other than `application/json` or `…+json`, a multipart form without its boundary included) is
refused 415, and one nested deeper than `MAX_JSON_DEPTH` is refused 400 (Python's JSON parser recurses: brackets
nested 1,000 deep raised RecursionError, which nothing caught, and the request was never answered).

With auth open (the embedded default) every caller is `OPEN`, and the size and shape limits still hold. Keeping the
answers true to the OpenAPI document is another middleware's work (`serving.api.openapi`).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from http.cookies import CookieError, SimpleCookie

import anyio.to_thread

from serving.access import observe, oidc
from serving.access.declared import SESSION_COOKIE, STATIC_PREFIX, declaration, is_page, is_public
from serving.access.limits import Limiter, address_key, principal_key, too_many
from serving.access.principals import OPEN, Forbidden, NotAuthenticated, Principal, open_principals, token_hash
from serving.access.sessions import open_sessions
from serving.settings import ServingSettings, get_settings

#: No request of this service nests deeper than a few levels; a body nested deeper is refused before it is parsed.
MAX_JSON_DEPTH = 32
_STRINGS = re.compile(rb'"(?:\\.|[^"\\])*"')
_BRACKETS = re.compile(rb"[\[\]{}]")


def too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a JSON text nests arrays and objects deeper than `limit` (strings skipped; a loop, no recursion,
    stopping at the first bracket past the limit)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for bracket in _BRACKETS.finditer(_STRINGS.sub(b"", body)):
        depth += 1 if bracket.group() in (b"[", b"{") else -1
        if depth > limit:
            return True
    return False


def _media_type(scope) -> str | None:
    raw = dict(scope.get("headers") or []).get(b"content-type")
    return None if raw is None else raw.decode("latin-1").partition(";")[0].strip().lower()


async def _reply(send, status: int, message: str, headers: tuple = ()) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class Refused(Exception):
    def __init__(self, status: int, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


class AccessGuard:
    """ASGI middleware: let in what is public or declared, authenticated and authorised; refuse the rest."""

    def __init__(self, app, settings: ServingSettings | None = None) -> None:
        self.app = app
        self.settings = settings or get_settings()
        self._known: dict[str, tuple[float, Principal]] = {}  # token hash → (checked at, principal)
        self.limiter = Limiter.from_settings(self.settings)  # shared with the sign-in page (the scope's state)

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif is_page(path) and not path.startswith(STATIC_PREFIX) and (is_public(path) or declaration(path)):
            state = scope.setdefault("state", {})
            state["principal"], state["signed_out_why"] = ((OPEN, "") if not self.settings.auth_required else
                                                           await _off_loop(self._page_principal, scope))
            state["limiter"] = self.limiter
            await self.app(scope, receive, send)
        elif is_public(path):
            await self.app(scope, receive, send)
        else:
            await self._endpoint(scope, receive, send)

    async def _endpoint(self, scope, receive, send) -> None:
        """A declared endpoint, answered once its caller is let in; or anything undeclared, refused."""
        path = scope["path"]
        started, rid, seen = time.perf_counter(), observe.request_id(dict(scope.get("headers") or [])), {}
        send = _tagged(send, rid, seen)
        principal = None
        try:
            body = await self._body(receive)
            principal = OPEN if not self.settings.auth_required else await _off_loop(self._principal, scope)
            self._authorise(principal, path, body, scope)
        except Refused as refused:
            extra = ((b"www-authenticate", b'Bearer realm="arrears"'),) if refused.status == 401 else ()
            if refused.retry_after:
                extra = (*extra, (b"retry-after", str(refused.retry_after).encode()))
            await _reply(send, refused.status, refused.message, extra)
            observe.log_request(rid, path, refused.status, started, principal and principal.name,
                                principal and principal.role)
            return
        scope.setdefault("state", {})["principal"] = principal
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            await self.app(scope, replay, send)
        finally:
            observe.log_request(rid, path, seen.get("status", 500), started, principal.name, principal.role)

    async def _body(self, receive) -> bytes:
        chunks, size, more = [], 0, True
        deadline = time.monotonic() + self.settings.body_timeout_seconds
        while more:
            try:
                message = await asyncio.wait_for(receive(), timeout=max(deadline - time.monotonic(), 0.0))
            except TimeoutError as exc:
                raise Refused(408, f"The request body did not arrive within {self.settings.body_timeout_seconds:g} "
                                   "seconds: send it whole, at once") from exc
            if message["type"] == "http.disconnect":
                raise Refused(400, "The client went away before its request was read")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.settings.max_body_bytes:
                raise Refused(413, f"The request body is over {self.settings.max_body_bytes:,} bytes: ask for fewer "
                                   "tenancies at a time (up to 1,000 ids a request)")
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    def _principal(self, scope) -> Principal:
        if not self.settings.auth_required:
            return OPEN
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"").decode("latin-1").strip()
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(401, "This service needs a token: send `Authorization: Bearer <token>` (an administrator "
                               "makes one with `arrears users add NAME --role ROLE`)")
        address = address_key(scope, self.settings)
        wait = self.limiter.retry_after(address)
        if wait:
            raise Refused(429, too_many(wait), wait)
        try:
            principal = self._authenticated(token.strip())
        except Refused as refused:
            self.limiter.failed(address, *self._holder_keys(token.strip()))
            raise refused
        wait = self.limiter.retry_after(principal_key(principal.name))
        if wait:
            raise Refused(429, too_many(wait), wait)
        self.limiter.succeeded(principal_key(principal.name))
        return principal

    def _holder_keys(self, token: str) -> tuple[str, ...]:
        """The principal a wrong token names, if it is one of theirs (revoked or expired), as a limiter key."""
        with open_principals(self.settings) as store:
            found = store.db.query("SELECT DISTINCT name FROM principals WHERE token_hash = ?", [token_hash(token)])
        return tuple(principal_key(str(name)) for name in found["name"])

    def _page_principal(self, scope) -> tuple[Principal | None, str]:
        """Who is signed in to the web app (its cookie's session), or None and why not ("" when nobody was)."""
        if not self.settings.auth_required:
            return OPEN, ""
        cookies = SimpleCookie()
        try:
            cookies.load(dict(scope.get("headers") or []).get(b"cookie", b"").decode("latin-1"))
        except CookieError:
            return None, ""
        session_id = cookies[SESSION_COOKIE].value.strip() if SESSION_COOKIE in cookies else ""
        if not session_id:
            return None, ""
        with open_sessions(self.settings) as sessions:
            found = sessions.find(session_id)
        return found.principal, found.why

    def _authenticated(self, token: str) -> Principal:
        """The token's principal. A known token is checked against the database again after
        `auth_cache_seconds` (so a revocation takes effect within that time); an unknown one every time. The
        database is opened per check: a connection kept open between requests hung the service when an endpoint
        wrote to the same database."""
        if oidc.configured(self.settings) and oidc.looks_like_jwt(token):
            try:  # the identity provider's token: checked against its published keys each time, never cached
                return oidc.principal_from_jwt(token, self.settings)
            except oidc.InvalidToken as exc:
                raise Refused(401, str(exc)) from exc
        key, now = token_hash(token), time.monotonic()
        known = self._known.get(key)
        if known is not None and now - known[0] < self.settings.auth_cache_seconds:
            return known[1]
        try:
            with open_principals(self.settings) as store:
                principal = store.verify(token)
        except NotAuthenticated as exc:  # not known, revoked, or expired: the message says which and what to do
            self._known.pop(key, None)
            raise Refused(401, str(exc)) from exc
        if len(self._known) > 10_000:  # tokens are few; never let the map grow without bound
            self._known.clear()
        self._known[key] = (now, principal)
        return principal

    def _authorise(self, principal: Principal, path: str, body: bytes, scope) -> None:
        declared = declaration(path)
        if declared is None or declared.kind != "endpoint":
            raise Refused(403, f"{path} is not an endpoint of this service that anyone may use: every endpoint "
                               "declares its roles (serving.access.declared)")
        if principal.role not in declared.roles:
            raise Refused(403, f"{principal.name} ({principal.role}) may not use {path}: it is for "
                               f"{', '.join(declared.roles)}")
        if not body.strip():
            return
        media = _media_type(scope)
        if media is not None and media != "application/json" and not media.endswith("+json"):
            raise Refused(415, f"This service reads JSON: send the body as `Content-Type: application/json`, not "
                               f"{media or 'an empty type'}")
        if too_deep(body):
            raise Refused(400, f"The request body nests arrays or objects deeper than {MAX_JSON_DEPTH} levels: no "
                               "request of this service needs more than three")
        try:
            patch = json.loads(body).get("patch")
        except (ValueError, AttributeError, RecursionError):
            return  # not a JSON object: the endpoint's own validation answers 400
        if isinstance(patch, str):
            try:
                principal.patch_scope(patch)
            except Forbidden as exc:
                raise Refused(403, str(exc)) from exc


async def _off_loop(check, scope):
    """A check that may wait on a database or the identity provider, run in a worker thread: a locked database
    then holds one request, not the event loop (and with it every other request, and the shutdown's signals)."""
    return await anyio.to_thread.run_sync(check, scope)


def _tagged(send, rid: str, seen: dict):
    """`send` that notes the answer's status in `seen` and adds the request id to its headers."""
    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
            message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
        await send(message)

    return wrapped


