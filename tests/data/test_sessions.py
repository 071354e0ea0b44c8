"""Sessions that end, and wrong tokens that slow down, through the real service's door and pages (BentoML's own
ASGI app, in process) on the real session store, SQLite and PostgreSQL: the cookie holds a session id, never the
token; a session idle too long, or too old, or signed out (everywhere), or whose token was revoked lets nobody in;
wrong tokens are answered 429 with Retry-After once an address or a principal has had its free failures.

Time passing is the store's clock moved back (a session's start or last use written earlier), not a sleep."""

from __future__ import annotations

import pandas as pd
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

import serving.api.service  # noqa: F401 - its endpoints declare their roles
from features.db import Database
from serving.access.declared import PAGE_ROOT
from serving.access.door import AccessGuard
from serving.access.principals import open_principals
from serving.settings import get_settings
from serving.web.app import app as web_app
from tests.support.homes import isolated_home
from tests.support.postgres import create_schema, drop_schema

FREE = 4


def _door(settings):
    """The service's real door in front of its real web app (mounted where the service mounts it), with the
    settings of the test's home: endpoints are refused or let in by the door before anything behind it runs."""
    return AccessGuard(Starlette(routes=[Mount(PAGE_ROOT, app=web_app)]), settings)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def service(request, tmp_path):
    schema = None
    env = {"ARREARS_AUTH": "required", "ARREARS_AUTH_FAILURES_FREE": str(FREE),
           "ARREARS_SESSION_IDLE_SECONDS": "600", "ARREARS_SESSION_ABSOLUTE_SECONDS": "3600",
           "ARREARS_TRUSTED_PROXIES": '["testclient"]'}
    if request.param == "postgres":
        url, schema = create_schema("sessions")
        env["ARREARS_RUNS_URL"] = url
    try:
        with isolated_home(tmp_path / "home", **env):
            settings = get_settings()
            settings.home.mkdir(parents=True, exist_ok=True)
            with open_principals(settings) as store:
                tokens = {name: store.add(name, role, patches) for name, role, patches in (
                    ("Olu Officer", "officer", ["North-1"]), ("Ada Admin", "admin", []))}
            yield settings, tokens
    finally:
        drop_schema(schema)


def _client(settings, https: bool = False) -> TestClient:
    return TestClient(_door(settings), base_url="https://testserver" if https else "http://testserver",
                      follow_redirects=False)


def _sign_in(client: TestClient, token: str, address: str = "10.0.0.1"):
    return client.post("/app/signin", data={"token": token}, headers={"X-Forwarded-For": address})


def _signed_in(client: TestClient) -> bool:
    """Whether the app's root sends this browser to its home page (signed in) or to sign in."""
    answer = client.get("/app/")
    return answer.status_code == 303 and not answer.headers["location"].startswith("/app/signin")


def _backdate(settings, column: str, seconds: float) -> None:
    with Database(settings.runs_database) as db:
        rows = db.query(f"SELECT session_hash, {column} FROM sessions")
        for _, row in rows.iterrows():
            moved = (pd.Timestamp(row[column]) - pd.Timedelta(seconds=seconds)).isoformat()
            db.execute(f"UPDATE sessions SET {column} = ? WHERE session_hash = ?", [moved, row["session_hash"]])


def test_the_cookie_holds_a_session_id_never_the_token(service) -> None:
    settings, tokens = service
    with _client(settings, https=True) as client:
        answer = _sign_in(client, tokens["Olu Officer"])
        assert answer.status_code == 303, answer.text
        cookie = answer.headers["set-cookie"]
        value = cookie.split(";")[0].split("=", 1)[1]
        assert tokens["Olu Officer"] not in cookie and len(value) >= 40
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "secure", "path", "max-age"} <= attributes and "samesite=strict" in cookie.lower()
        assert _signed_in(client)
    with _client(settings, https=False) as plain:  # over plain HTTP (no proxy saying otherwise): not marked Secure
        cookie = _sign_in(plain, tokens["Olu Officer"]).headers["set-cookie"]
        assert "secure" not in cookie.lower()
        assert _signed_in(plain)
    with Database(settings.runs_database) as db:
        stored = db.query("SELECT * FROM sessions")
    assert len(stored) == 2 and value not in stored.to_string() and tokens["Olu Officer"] not in stored.to_string()


def test_an_idle_session_and_an_old_one_end(service) -> None:
    settings, tokens = service
    with _client(settings) as client:
        assert _sign_in(client, tokens["Olu Officer"]).status_code == 303 and _signed_in(client)
        _backdate(settings, "last_seen_at", 599)  # used just under the idle time ago: still signed in
        assert _signed_in(client)
        _backdate(settings, "last_seen_at", 601)  # then left for longer than the idle time
        answer = client.get("/app/worklist")
        assert answer.status_code == 303 and answer.headers["location"] == "/app/signin?ended=idle"
        page = client.get(answer.headers["location"])
        assert "without using the service" in page.text and "10 minutes" in page.text
        assert not _signed_in(client)  # ended for good: using it again does not revive it
        assert _sign_in(client, tokens["Olu Officer"]).status_code == 303 and _signed_in(client)
        _backdate(settings, "started_at", 3601)  # in use all along, but started longer ago than a session lasts
        assert client.get("/app/worklist").headers["location"] == "/app/signin?ended=absolute"


def test_sign_out_ends_every_session_of_the_person_and_revocation_ends_theirs(service) -> None:
    settings, tokens = service
    with _client(settings) as laptop, _client(settings) as tablet, _client(settings) as admin:
        for browser in (laptop, tablet):
            assert _sign_in(browser, tokens["Olu Officer"]).status_code == 303
        assert _sign_in(admin, tokens["Ada Admin"]).status_code == 303
        out = laptop.post("/app/signout")
        assert out.status_code == 303 and out.headers["location"] == "/app/signin?ended=signed_out"
        assert not _signed_in(laptop) and not _signed_in(tablet)  # everywhere
        assert _signed_in(admin)  # nobody else's
        assert _sign_in(tablet, tokens["Olu Officer"]).status_code == 303 and _signed_in(tablet)
        with open_principals(settings) as store:
            store.revoke("Olu Officer")
        assert tablet.get("/app/worklist").headers["location"] == "/app/signin?ended=revoked"
        assert _signed_in(admin)
        with Database(settings.runs_database) as db:  # the admin's token reaches its expiry (a rotation's overlap)
            db.execute("UPDATE principals SET expires_at = ? WHERE name = ?", ["2000-01-01T00:00:00+00:00",
                                                                            "Ada Admin"])
        assert admin.get("/app/worklist").headers["location"] == "/app/signin?ended=revoked"


def test_wrong_tokens_back_off_per_address_then_the_right_one_waits_too(service) -> None:
    settings, tokens = service
    with _client(settings) as client:
        for _ in range(FREE + 1):
            assert _sign_in(client, "arr_guess", "10.0.0.7").status_code == 401
        blocked = _sign_in(client, tokens["Olu Officer"], "10.0.0.7")  # even the right token waits its turn
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
        assert "try again in" in blocked.text
        assert _sign_in(client, tokens["Olu Officer"], "10.0.0.8").status_code == 303  # another address: not blocked
        api = {"X-Forwarded-For": "10.0.0.9"}
        for _ in range(FREE + 1):
            answer = client.post("/worklist", json={}, headers={**api, "Authorization": "Bearer arr_guess"})
            assert answer.status_code == 401
        answer = client.post("/worklist", json={}, headers={**api, "Authorization": f"Bearer {tokens['Ada Admin']}"})
        assert answer.status_code == 429 and int(answer.headers["retry-after"]) >= 1
        assert "try again" in answer.json()["error"]
        no_token = client.post("/worklist", json={}, headers={"X-Forwarded-For": "10.0.0.10"})
        assert no_token.status_code == 401  # a missing token is not a guess: never counted
        for _ in range(3 * FREE):
            client.post("/worklist", json={}, headers={"X-Forwarded-For": "10.0.0.10"})
        assert client.post("/worklist", json={}, headers={"X-Forwarded-For": "10.0.0.10"}).status_code == 401


def test_a_principal_whose_old_token_is_replayed_is_locked_from_every_address(service) -> None:
    settings, tokens = service
    old = tokens["Ada Admin"]
    with open_principals(settings) as store:
        store.revoke("Ada Admin")
        new = store.add("Ada Admin", "admin")
    with _client(settings) as client:
        for n in range(FREE + 1):  # each try from a new address: only the principal's count grows
            answer = client.post("/worklist", json={},
                                 headers={"X-Forwarded-For": f"10.1.0.{n}", "Authorization": f"Bearer {old}"})
            assert answer.status_code == 401
        answer = client.post("/worklist", json={},
                             headers={"X-Forwarded-For": "10.2.0.1", "Authorization": f"Bearer {new}"})
        assert answer.status_code == 429


def test_forged_single_sign_on_answers_count_like_wrong_tokens(tmp_path) -> None:
    """Callbacks the service never started (no pending sign-in, or another state) are refused and counted against
    the address; past the free ones, even a real sign-in's answer from there waits (no provider is needed to see
    it: the state is checked before anything is sent to one)."""
    env = {"ARREARS_AUTH": "required", "ARREARS_AUTH_FAILURES_FREE": str(FREE), "ARREARS_OIDC_ISSUER":
           "https://login.example.org/tenant", "ARREARS_OIDC_CLIENT_ID": "arrears", "ARREARS_TRUSTED_PROXIES":
           '["testclient"]'}
    with isolated_home(tmp_path / "home", **env):
        settings = get_settings()
        settings.home.mkdir(parents=True, exist_ok=True)
        with _client(settings) as client:
            forged = [client.get("/app/sso/callback", params={"state": f"s{n}", "code": "c"},
                                 headers={"X-Forwarded-For": "10.3.0.1"}) for n in range(FREE + 1)]
            assert [a.status_code for a in forged] == [400] * (FREE + 1)
            blocked = client.get("/app/sso/callback", params={"state": "s", "code": "c"},
                                 headers={"X-Forwarded-For": "10.3.0.1"})
            assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
            elsewhere = client.get("/app/sso/callback", params={"state": "s", "code": "c"},
                                   headers={"X-Forwarded-For": "10.3.0.2"})
            assert elsewhere.status_code == 400
