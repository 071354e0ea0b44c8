"""The door is closed by default: a test build of the real service, with one endpoint added that declares no roles,
served in-process through BentoML's own ASGI app (`to_asgi`) with authentication required. The door refuses the
undeclared endpoint (401 without a token, 403 with any token, an admin's included) and its body never runs; the
declared endpoints keep their roles."""

from __future__ import annotations

import asyncio

import bentoml
import pytest
from starlette.testclient import TestClient

from serving.access.door import AccessGuard
from serving.access.principals import open_principals
from serving.api.service import ArrearsWorklist
from serving.settings import get_settings
from tests.support.homes import isolated_home

REACHED: list[str] = []


@bentoml.service(name="arrears_door_test")
class WithAnUndeclaredEndpoint(ArrearsWorklist.inner):
    def __init__(self) -> None:  # no model, no stores: nothing behind the door is needed to refuse
        pass

    @bentoml.api
    def leak(self) -> dict:
        """Declares no roles: anyone it answered would read this."""
        REACHED.append("leak")
        return {"tenants": "every one of them"}


for middleware, options in ArrearsWorklist.middlewares:  # the same door, and the same pages behind it
    WithAnUndeclaredEndpoint.add_asgi_middleware(middleware, **options)
for mounted, path, name in ArrearsWorklist.mount_apps:
    WithAnUndeclaredEndpoint.mount_asgi_app(mounted, path=path, name=name)


@pytest.fixture(scope="module")
def door(tmp_path_factory):
    with isolated_home(tmp_path_factory.mktemp("door") / "home", ARREARS_AUTH="required"):
        settings = get_settings()
        settings.home.mkdir(parents=True, exist_ok=True)
        with open_principals(settings) as store:
            tokens = {role: store.add(f"door-{role}", role, ["North-1"] if role == "officer" else [])
                      for role in ("officer", "admin")}
        with TestClient(WithAnUndeclaredEndpoint.to_asgi()) as client:
            yield client, tokens


def test_an_endpoint_without_declared_roles_is_refused_and_never_answered(door) -> None:
    client, tokens = door
    assert "leak" in WithAnUndeclaredEndpoint.apis  # the test build really has it
    anonymous = client.post("/leak", json={})
    assert anonymous.status_code == 401 and "token" in anonymous.json()["error"]
    for role, token in tokens.items():
        answer = client.post("/leak", json={}, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 403, (role, answer.text)
        assert "not an endpoint" in answer.json()["error"] and "every one" not in answer.text
    assert REACHED == []


def test_declared_endpoints_keep_their_roles_and_public_paths_stay_open(door) -> None:
    client, tokens = door
    officer = {"Authorization": f"Bearer {tokens['officer']}"}
    assert client.post("/outbox", json={}, headers=officer).status_code == 403  # admins only
    assert client.post("/outbox", json={}).status_code == 401
    assert client.get("/livez").status_code == 200 and client.get("/docs.json").status_code == 200
    assert client.get("/app/signin").status_code == 200
    assert client.get("/app/no_such_page").status_code == 401  # an undeclared page is closed too


@pytest.mark.parametrize("depth", [33, 1_000, 100_000])
def test_a_body_nested_too_deep_is_refused_before_anything_parses_it(door, depth) -> None:
    """Brackets nested 1,000 deep once raised RecursionError in the door's parser and the request was never
    answered; now any depth past the bound is a 400 that says why, and a string holding brackets is not nesting."""
    client, tokens = door
    officer = {"Authorization": f"Bearer {tokens['officer']}", "Content-Type": "application/json"}
    answer = client.post("/worklist", content=b"[" * depth + b"]" * depth, headers=officer)
    assert answer.status_code == 400 and "deeper than 32 levels" in answer.json()["error"], answer.text
    quoted = b'{"patch": "North-1", "note": "' + b"[" * depth + b'"}'
    passed = client.post("/worklist", content=quoted, headers=officer)
    assert "deeper than" not in passed.text and passed.status_code != 415


@pytest.mark.parametrize("content_type", ["multipart/form-data", "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_json_is_refused_415(door, content_type) -> None:
    client, tokens = door
    answer = client.post("/worklist", content=b'{"top": 5}', headers={
        "Authorization": f"Bearer {tokens['officer']}", "Content-Type": content_type})
    assert answer.status_code == 415 and "application/json" in answer.json()["error"], answer.text
    json_with_charset = client.post("/worklist", content=b'{"top": 5}', headers={
        "Authorization": f"Bearer {tokens['officer']}", "Content-Type": "application/json; charset=utf-8"})
    assert json_with_charset.status_code != 415


def test_a_body_that_stops_arriving_is_answered_408(tmp_path) -> None:
    """A client that sends part of a body and then nothing: the door answers 408 once the body timeout passes,
    instead of waiting for ever (the request held a worker, and the service's shutdown, until the client gave up)."""
    reached = []

    async def behind(scope, receive, send) -> None:  # the service behind the door: must never be reached
        reached.append(scope["path"])

    async def stalled_client():
        yield {"type": "http.request", "body": b'{"top": ', "more_body": True}
        await asyncio.sleep(3600)

    with isolated_home(tmp_path / "home", ARREARS_BODY_TIMEOUT_SECONDS="0.5"):
        guard = AccessGuard(behind, get_settings())
        stream, sent = stalled_client(), []

        async def receive():
            return await stream.__anext__()

        async def send(message) -> None:
            sent.append(message)

        scope = {"type": "http", "path": "/worklist", "method": "POST", "headers": [
            (b"content-type", b"application/json")]}
        asyncio.run(asyncio.wait_for(guard(scope, receive, send), timeout=30))
    assert sent[0]["status"] == 408 and b"did not arrive within 0.5 seconds" in sent[1]["body"]
    assert reached == []


def test_the_openapi_document_keeps_a_models_own_detail_and_types_bentomls_error_detail(door) -> None:
    """BentoML's error bodies' `detail` is text; an audit entry's `detail` is an object, and the document says so
    (a case file with an audit entry was once answered against a text `detail`: the fuzzer's ST108)."""
    client, _ = door
    schemas = client.get("/docs.json").json()["components"]["schemas"]
    assert schemas["AuditEntry"]["properties"]["detail"]["type"] == "object"
    assert schemas["InvalidArgument"]["properties"]["detail"] == {"type": "string", "title": "Error Detail"}
