"""Keeps the service's answers true to its OpenAPI document, where BentoML 1.4 is not (both found by fuzzing with
schemathesis): an ASGI middleware, apart from the door's authentication (`serving.access.door`).

- An error body of a declared endpoint is one object `{"error": text, "detail": text}` (BentoML sends a one-element
  list for 4xx, and pydantic's error list as `detail`).
- The document (`/docs.json`) marks optional inputs nullable (BentoML drops the null of `str | None`), puts back
  the nulls of inlined response models, and declares the door's 401, 403, 408, 413, 415 and 429 answers, the 409
  of a draft's state, the 503 of a service not yet ready, the 500 of a fault (`serving.api.errors`: an error and
  the request id) and the bearer scheme.
"""

from __future__ import annotations

import json

from serving.access.declared import declaration, declared
from serving.settings import ServingSettings, get_settings

#: Endpoints that change a draft: one already decided, released or refused by its case's state is a 409.
CONFLICTING = ("/draft", "/draft_decision", "/draft_release")


class OpenApiTruth:
    """ASGI middleware: the OpenAPI document as the service really answers, and one error-body shape."""

    def __init__(self, app, settings: ServingSettings | None = None) -> None:
        self.app = app
        self.settings = settings or get_settings()

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path") if scope["type"] == "http" else None
        if path == "/docs.json":
            send = _rewriting(send, lambda status: status == 200, self._document)
        elif (found := declaration(path)) is not None and found.kind == "endpoint":  # one lookup a request
            send = _rewriting(send, lambda status: status >= 400, _error_body)
        await self.app(scope, receive, send)

    def _document(self, body: bytes) -> bytes:
        spec, endpoints = json.loads(body), declared("endpoint")
        _restore_nullable(spec)
        error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/AccessError"}}}}
        spec.setdefault("components", {}).setdefault("schemas", {})["AccessError"] = {
            "type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
        fault = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Fault"}}}}
        spec["components"]["schemas"]["Fault"] = {  # serving.api.errors: what to do, and the id the log is under
            "type": "object", "required": ["error", "request_id"],
            "properties": {"error": {"type": "string"}, "request_id": {"type": "string"}}}
        for schema in spec["components"]["schemas"].values():  # BentoML's error schemas: detail is text
            detail = schema.get("properties", {}).get("detail")
            if detail is not None and detail.get("title") == "Error Detail":  # not a model's own `detail` (an
                schema["properties"]["detail"] = {"type": "string", "title": "Error Detail"}  # audit entry's)
        spec = _nullable_unions(spec)
        if self.settings.auth_required:
            spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path, methods in spec.get("paths", {}).items():
            if path not in endpoints:
                continue
            for operation in methods.values():
                _nullable_defaults(operation)
                for status, what in (("401", "No token, or an unknown or revoked one"),
                                     ("403", "The role or patch is not the caller's"),
                                     ("408", "The request body did not arrive in time"),
                                     ("413", "The request body is too large"),
                                     ("415", "The request body is not JSON"),
                                     ("429", "Too many wrong tokens from this address or for this principal: wait "
                                             "the Retry-After seconds"),
                                     ("503", "Not ready: no worklist run recorded or no model promoted yet"),
                                     *((("409", "The case's or draft's state forbids it now"),)
                                       if path in CONFLICTING else ())):
                    operation.setdefault("responses", {})[status] = {"description": what, **error}
                operation["responses"]["500"] = {"description": "A fault of the service's own: try again; if it "
                                                 "fails again, give the administrator the request id", **fault}
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
