"""The HTTP door of the service (an ASGI middleware on the BentoML app): every data endpoint's request is read whole
(up to `max_body_bytes`, else 413), its bearer token authenticated (401), its role checked against the endpoint
and any `patch` it names against the principal's patches (403), each refusal with a message saying what to do;
the principal then rides in the request's state for the endpoint to narrow its answer (`serving.access.principals`).

The web app's pages (`/app`, `serving.web.app`) pass the same door: their sign-in cookie holds a token, checked here
exactly as a bearer token is (same cache, so a revocation stops pages and API alike within `auth_cache_seconds`);
the principal, or None for nobody signed in, rides in the request's state and the page decides (sign-in or refusal).

With auth open (the embedded default) every caller is `access.OPEN`, and the size limit still holds.

It also keeps the service's answers true to its OpenAPI document, where BentoML 1.4 is not (both found by fuzzing
with schemathesis): an error body is one object `{"error": text, "detail": text}` (BentoML sends a one-element list
for 4xx, and pydantic's error list as `detail`), and the document marks optional inputs nullable (BentoML drops the
null of `str | None`) and declares the 401, 403 and 413 answers and the bearer scheme.
"""

from __future__ import annotations

import json
import time
from http.cookies import CookieError, SimpleCookie

from serving.access import observe
from serving.access.principals import ENDPOINT_ROLES, OPEN, Forbidden, Principal, open_principals, token_hash
from serving.settings import ServingSettings, get_settings

#: Where the web app is mounted (serving/api/service.py) and the cookie its sign-in sets.
PAGES, SESSION_COOKIE = "/app", "arrears_session"


def _is_page(path: str) -> bool:
    return (path == PAGES or path.startswith(PAGES + "/")) and not path.startswith(PAGES + "/static/")


async def _reply(send, status: int, message: str, headers: tuple = ()) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class AccessGuard:
    """ASGI middleware: authenticate and authorise every call to a data endpoint (`ENDPOINT_ROLES`)."""

    def __init__(self, app, settings: ServingSettings | None = None) -> None:
        self.app = app
        self.settings = settings or get_settings()
        self._known: dict[str, tuple[float, Principal]] = {}  # token hash → (checked at, principal)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope.get("path") == "/docs.json":
            await self.app(scope, receive, _rewriting(send, lambda status: status == 200, self._document))
            return
        if scope["type"] == "http" and _is_page(scope.get("path", "")):
            scope.setdefault("state", {})["principal"] = self._page_principal(scope)
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http" or scope.get("path") not in ENDPOINT_ROLES:
            await self.app(scope, receive, send)
            return
        started, rid, seen = time.perf_counter(), observe.request_id(dict(scope.get("headers") or [])), {}
        send = _tagged(send, rid, seen)
        principal = None
        try:
            body = await self._body(receive)
            principal = self._principal(scope)
            self._authorise(principal, scope["path"], body)
        except Refused as refused:
            extra = ((b"www-authenticate", b'Bearer realm="arrears"'),) if refused.status == 401 else ()
            await _reply(send, refused.status, refused.message, extra)
            observe.log_request(rid, scope["path"], refused.status, started, principal and principal.name,
                                principal and principal.role)
            return
        scope.setdefault("state", {})["principal"] = principal
        replayed = False
        send = _rewriting(send, lambda status: status >= 400, _error_body)

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            await self.app(scope, replay, send)
        finally:
            observe.log_request(rid, scope["path"], seen.get("status", 500), started, principal.name, principal.role)

    async def _body(self, receive) -> bytes:
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
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
        return self._authenticated(token.strip())

    def _page_principal(self, scope) -> Principal | None:
        """Who is signed in to the web app (its cookie's token), or None."""
        if not self.settings.auth_required:
            return OPEN
        cookies = SimpleCookie()
        try:
            cookies.load(dict(scope.get("headers") or []).get(b"cookie", b"").decode("latin-1"))
        except CookieError:
            return None
        token = cookies[SESSION_COOKIE].value.strip() if SESSION_COOKIE in cookies else ""
        if not token:
            return None
        try:
            return self._authenticated(token)
        except Refused:
            return None

    def _authenticated(self, token: str) -> Principal:
        """The token's principal. A known token is checked against the database again after
        `auth_cache_seconds` (so a revocation takes effect within that time); an unknown one every time. The
        database is opened per check: a connection kept open between requests hung the service when an endpoint
        wrote to the same database."""
        key, now = token_hash(token), time.monotonic()
        known = self._known.get(key)
        if known is not None and now - known[0] < self.settings.auth_cache_seconds:
            return known[1]
        with open_principals(self.settings) as store:
            principal = store.authenticate(token)
        if principal is None:
            self._known.pop(key, None)
            raise Refused(401, "The token is not known or was revoked: ask an administrator for a new one")
        if len(self._known) > 10_000:  # tokens are few; never let the map grow without bound
            self._known.clear()
        self._known[key] = (now, principal)
        return principal

    def _authorise(self, principal: Principal, path: str, body: bytes) -> None:
        if not principal.may_call(path):
            raise Refused(403, f"{principal.name} ({principal.role}) may not use {path}: it is for "
                               f"{', '.join(ENDPOINT_ROLES[path])}")
        try:
            patch = json.loads(body or b"{}").get("patch") if body.strip() else None
        except (ValueError, AttributeError):
            return  # not a JSON object: the endpoint's own validation answers 400
        if isinstance(patch, str):
            try:
                principal.patch_scope(patch)
            except Forbidden as exc:
                raise Refused(403, str(exc)) from exc

    def _document(self, body: bytes) -> bytes:
        spec = json.loads(body)
        _restore_nullable(spec)
        error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/AccessError"}}}}
        spec.setdefault("components", {}).setdefault("schemas", {})["AccessError"] = {
            "type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
        for schema in spec["components"]["schemas"].values():  # BentoML's error schemas: detail is text
            if "detail" in schema.get("properties", {}):
                schema["properties"]["detail"] = {"type": "string", "title": "Error Detail"}
        spec = _nullable_unions(spec)
        if self.settings.auth_required:
            spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path, methods in spec.get("paths", {}).items():
            if path not in ENDPOINT_ROLES:
                continue
            for operation in methods.values():
                _nullable_defaults(operation)
                for status, what in (("401", "No token, or an unknown or revoked one"),
                                     ("403", "The role or patch is not the caller's"),
                                     ("413", "The request body is too large")):
                    operation.setdefault("responses", {})[status] = {"description": what, **error}
                if self.settings.auth_required:
                    operation["security"] = [{"bearer": []}]
        return json.dumps(spec).encode()


def _nullable_unions(node):
    """OpenAPI 3.0 has no null type: `anyOf: [X, {type: null}]` (pydantic's `X | None`) becomes X, nullable."""
    if isinstance(node, list):
        return [_nullable_unions(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable_unions(v) for k, v in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        merged = {k: v for k, v in node.items() if k != "anyOf"}
        if len(rest) == 1 and "$ref" not in rest[0]:
            merged |= rest[0]
        else:
            merged["anyOf"] = rest
        node = merged | {"nullable": True}
    return node


def _restore_nullable(spec: dict) -> None:
    """BentoML inlines each response model into its path without the model's nulls: put back every field of the
    component of the same title that may be null."""
    components = {c.get("title"): c for c in spec.get("components", {}).get("schemas", {}).values()}
    for methods in spec.get("paths", {}).values():
        for operation in methods.values():
            for response in operation.get("responses", {}).values():
                for media in response.get("content", {}).values():
                    inline, known = media.get("schema", {}), components.get(media.get("schema", {}).get("title"))
                    if known is not None and "properties" in inline:
                        media["schema"] = known


def _nullable_defaults(node) -> None:
    """Mark every schema property whose default is null as nullable (OpenAPI 3.0's way of saying `| None`)."""
    if isinstance(node, dict):
        for value in node.get("properties", {}).values():
            if isinstance(value, dict) and "default" in value and value["default"] is None:
                value["nullable"] = True
        for value in node.values():
            _nullable_defaults(value)
    elif isinstance(node, list):
        for value in node:
            _nullable_defaults(value)


def _error_body(body: bytes) -> bytes:
    """One error object with text fields, whatever BentoML made of it."""
    try:
        error = json.loads(body)
    except ValueError:
        return json.dumps({"error": body.decode("utf-8", "replace")[:2000]}).encode()
    if isinstance(error, list) and len(error) == 1:
        error = error[0]
    if not isinstance(error, dict):
        return json.dumps({"error": json.dumps(error)[:2000]}).encode()
    detail = error.get("detail")
    if isinstance(detail, list):  # pydantic's errors: say which input is wrong and how
        said = "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])) or 'body'}: {d.get('msg', '')}"
                         for d in detail if isinstance(d, dict))
        error = {"error": f"Invalid input ({said}): change it and send again", "detail": said}
    return json.dumps({k: v if isinstance(v, str) else json.dumps(v) for k, v in error.items()}).encode()


def _tagged(send, rid: str, seen: dict):
    """`send` that notes the answer's status in `seen` and adds the request id to its headers."""
    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
            message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
        await send(message)

    return wrapped


def _rewriting(send, when, rewrite):
    """`send` with the whole body of a response whose status passes `when` replaced by `rewrite(body)`."""
    held: dict = {}

    async def wrapped(message) -> None:
        if message["type"] == "http.response.start" and when(message["status"]):
            held["start"], held["body"] = message, []
            return
        if message["type"] == "http.response.body" and "start" in held:
            held["body"].append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = rewrite(b"".join(held["body"]))
            start = held.pop("start")
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return wrapped
