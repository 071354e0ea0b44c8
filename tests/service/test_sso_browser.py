"""Single sign-on in a real browser (Playwright driving Debian's chromium) through a real OpenID provider
(oidc-provider under Node.js, tests/support/oidc.py) against a real `bentoml serve` of the shared pipeline's home with
ARREARS_AUTH=required: an officer signs in at the provider and lands on their own patch; someone taken out of the
group is refused at their next sign-in, told which groups would do; the provider's JWTs work at the API, narrowed to
the officer's patch, until they expire (then 401); a session left idle past its time is signed out."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from features.db import Database
from serving.api.process import free_port, running_server
from serving.settings import get_settings
from tests.support.browser import CHROMIUM
from tests.support.homes import isolated_home
from tests.support.oidc import AUDIENCE, SHORT_CLIENT, WEB_CLIENT, local_provider

IDLE_SECONDS = 10


def _users(group: str, ann_groups: list[str] | None = None) -> dict:
    return {"ann": {"password": "ann-pw", "email": "ann@example.org", "groups": [group] if ann_groups is None
                    else ann_groups},
            "bob": {"password": "bob-pw", "email": "bob@example.org", "groups": [group]}}


@pytest.fixture(scope="module")
def sso(pipeline: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from playwright.sync_api import sync_playwright

    patches = sorted({r["patch"] for r in pipeline["everyone"]["rows"]})
    own, other = patches[0], patches[-1]
    group = f"income-officers-{own.lower()}"
    root = tmp_path_factory.mktemp("sso")
    (root / "groups.yaml").write_text(json.dumps({"rules": [
        {"group": "arrears-admins", "role": "admin"},
        {"group": group, "role": "officer", "patches": [own]}]}))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with local_provider(root / "provider", [base + "/app/sso/callback"], _users(group)) as provider:
        variables = {"ARREARS_AUTH": "required", "ARREARS_OIDC_ISSUER": provider.url,
                     "ARREARS_OIDC_CLIENT_ID": WEB_CLIENT, "ARREARS_OIDC_CLIENT_SECRET": provider.secret,
                     "ARREARS_OIDC_AUDIENCE": AUDIENCE, "ARREARS_OIDC_SCOPES": "openid profile email groups",
                     "ARREARS_OIDC_GROUPS": str(root / "groups.yaml"), "ARREARS_OIDC_REDIRECT_BASE": base,
                     "ARREARS_OIDC_PROVIDER_NAME": "Test provider", "ARREARS_OIDC_LEEWAY_SECONDS": "0",
                     "ARREARS_SESSION_IDLE_SECONDS": str(IDLE_SECONDS),
                     "ARREARS_TODAY": pipeline["payload"]["as_of"][:10]}
        with isolated_home(pipeline["home"], **variables), running_server(get_settings(), port=port) as url, \
                sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                yield {"url": url, "provider": provider, "browser": browser, "own": own, "other": other,
                       "group": group}
            finally:
                browser.close()


def _sign_in(sso: dict, user: str, password: str, lands_on: str | None = "/app/my-cases"):
    """A fresh browser signs in through the provider; returns the page where it ended: `lands_on` (the callback's
    page moves on there by itself), or with None the callback's own answer."""
    page = sso["browser"].new_context().new_page()
    page.goto(f"{sso['url']}/app/worklist")  # nobody signed in: the sign-in page
    page.get_by_role("link", name="Sign in with Test provider").click()
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation(url=f"{sso['url']}/app/**"):
        page.get_by_role("button", name="Continue").click()
    if lands_on is not None:
        try:
            page.wait_for_url(sso["url"] + lands_on, timeout=30_000)
        except Exception as exc:
            raise AssertionError(f"not signed in: {page.url} {page.locator('main').inner_text()}") from exc
    return page


def test_an_officer_signs_in_at_the_provider_and_lands_on_their_patch(sso) -> None:
    page = _sign_in(sso, "ann", "ann-pw")
    assert page.url == f"{sso['url']}/app/my-cases"
    assert page.get_by_role("heading", level=1).inner_text().startswith("My cases")
    page.goto(f"{sso['url']}/app/worklist")
    patches = set(page.locator("td[data-label=Patch]").all_inner_texts())
    assert patches == {sso["own"]}
    assert page.goto(f"{sso['url']}/app/worklist?patch={sso['other']}").status == 403
    page.context.close()


def test_someone_taken_out_of_the_group_is_refused_at_their_next_sign_in(sso) -> None:
    provider = sso["provider"]
    provider.set_users(_users(sso["group"], ann_groups=["staff"]))
    try:
        page = _sign_in(sso, "ann", "ann-pw", lands_on=None)
        refusal = page.get_by_role("alert").inner_text()
        assert "/app/sso/callback" in page.url and "ann is not in any group that may use this service" in refusal
        assert sso["group"] in refusal and "arrears-admins" in refusal
        page.goto(f"{sso['url']}/app/my-cases")
        assert page.url.startswith(f"{sso['url']}/app/signin")  # no session was started
        page.context.close()
    finally:
        provider.set_users(_users(sso["group"]))


def test_the_providers_jwt_works_at_the_api_narrowed_to_the_patch_until_it_expires(sso) -> None:
    provider, url = sso["provider"], sso["url"]
    token = provider.api_token("bob", "bob-pw", redirect_uri=f"{url}/app/sso/callback")
    short = provider.api_token("bob", "bob-pw", client=SHORT_CLIENT, redirect_uri=f"{url}/app/sso/callback")
    issued = time.time()
    with httpx.Client(base_url=url, timeout=120) as client:
        mine = client.post("/worklist", json={"top": 10_000}, headers={"Authorization": f"Bearer {token}"})
        assert mine.status_code == 200, mine.text
        assert {row["patch"] for row in mine.json()["rows"]} == {sso["own"]}
        theirs = client.post("/worklist", json={"patch": sso["other"]}, headers={"Authorization": f"Bearer {token}"})
        assert theirs.status_code == 403 and "bob (officer) does not see patch" in theirs.json()["error"]
        time.sleep(max(issued + 3.5 - time.time(), 0))  # the short client's tokens live two seconds
        expired = client.post("/worklist", json={}, headers={"Authorization": f"Bearer {short}"})
        assert expired.status_code == 401 and "has expired" in expired.json()["error"]
        forged = client.post("/worklist", json={}, headers={"Authorization": f"Bearer {token[:-4]}AAAA"})
        assert forged.status_code == 401


def test_a_session_idle_past_its_time_is_signed_out(sso) -> None:
    page = _sign_in(sso, "bob", "bob-pw")
    assert page.url == f"{sso['url']}/app/my-cases"
    # Left alone past the idle time: the session's last use moved back rather than a wait (the store's clock
    # compared with now, as after a real pause; tests/data/test_sessions.py does the same at the edges)
    with Database(get_settings().runs_database) as db:
        db.execute("UPDATE sessions SET last_seen_at = ? WHERE ended_at IS NULL AND via = 'oidc'",
                   [(datetime.now(UTC) - timedelta(seconds=IDLE_SECONDS + 2)).isoformat()])
    page.goto(f"{sso['url']}/app/my-cases")
    assert page.url == f"{sso['url']}/app/signin?ended=idle"
    assert "signed out after 10 seconds without using the service" in page.get_by_role("status").inner_text()
    page.context.close()
