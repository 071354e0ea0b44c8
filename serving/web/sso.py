"""Signing in to the web app through the landlord's OpenID Connect provider (`serving.access.oidc`): the
authorization code flow with PKCE, by Authlib.

`/app/sso/login` sends the browser to the provider with a fresh state, nonce and PKCE code verifier, kept until the
provider sends it back in a short-lived cookie signed with a key derived from the client secret (HttpOnly,
SameSite=Lax so that it survives the provider's redirect, scoped to `/app/sso`). `/app/sso/callback` checks the state,
exchanges the code (with the verifier) for tokens, checks the ID token (signature against the provider's published
keys, issuer, audience, expiry, nonce), maps the person's groups to a role and patches, and starts a server-side
session (`serving.access.sessions`), as signing in with a token does. A person in no mapped group is refused with the
groups that would let them in.

The callback answers with a page that moves on to the role's first page itself rather than with a redirect: the
session cookie is SameSite=Strict, and a browser would not send it on a redirect that a navigation from the provider's
site started.
"""

from __future__ import annotations

import json
import logging
import time

from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from serving.access import limits, oidc, sessions
from serving.access.declared import PAGE_ROOT as BASE
from serving.settings import ServingSettings, get_settings
from serving.web import kit

LOGIN, CALLBACK = "/sso/login", "/sso/callback"
#: The pending sign-in's cookie, and how long a person has at the provider to sign in.
PENDING_COOKIE, PENDING_SECONDS = "arrears_sso", 600
log = logging.getLogger("arrears.web")


def _redirect_uri(request: Request, settings: ServingSettings) -> str:
    base = settings.oidc_redirect_base or f"{request.url.scheme}://{request.url.netloc}"
    return base.rstrip("/") + BASE + CALLBACK


def _client(settings: ServingSettings, redirect_uri: str) -> OAuth2Session:
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
    return OAuth2Session(settings.oidc_client_id, secret, scope=settings.oidc_scopes, redirect_uri=redirect_uri,
                         code_challenge_method="S256", default_timeout=oidc.HTTP_TIMEOUT)


def _refused(request: Request, status: int, error: str) -> Response:
    response = kit.page(request, "signin.html", None, status=status, error=error, sso=sso_name(get_settings()))
    response.delete_cookie(PENDING_COOKIE, path=BASE + "/sso")
    return response


def sso_name(settings: ServingSettings) -> str | None:
    """The provider's name for the sign-in page's button, or None when single sign-on is not configured."""
    return settings.oidc_provider_name if oidc.configured(settings) else None


async def login(request: Request) -> Response:
    settings = get_settings()
    if not oidc.configured(settings):
        return kit.message(request, None, 404, "Single sign-on is not set up",
                           "This service has no identity provider configured: sign in with a token.")
    try:
        endpoint = (await run_in_threadpool(oidc.discovery, settings.oidc_issuer))["authorization_endpoint"]
    except Exception as exc:  # the provider is down or misconfigured: say so, never a 500
        log.warning("single sign-on: the provider's discovery failed: %s", type(exc).__name__)
        return _refused(request, 503, f"{settings.oidc_provider_name} cannot be reached just now: try again in a "
                                      "minute, or sign in with a token")
    redirect_uri = _redirect_uri(request, settings)
    state, nonce, verifier = generate_token(32), generate_token(32), generate_token(48)
    url, _ = _client(settings, redirect_uri).create_authorization_url(endpoint, state=state, code_verifier=verifier,
                                                                      nonce=nonce)
    pending = json.dumps({"state": state, "nonce": nonce, "verifier": verifier, "redirect_uri": redirect_uri,
                          "until": time.time() + PENDING_SECONDS}, separators=(",", ":"))
    response = RedirectResponse(url, status_code=303)
    secure = settings.cookie_secure if settings.cookie_secure is not None else sessions.served_over_https(
        request.scope, settings)
    response.set_cookie(PENDING_COOKIE, oidc.sign(pending, settings), max_age=PENDING_SECONDS, path=BASE + "/sso",
                        httponly=True, samesite="lax", secure=secure)
    return response


def _pending(request: Request, settings: ServingSettings) -> dict | None:
    signed = request.cookies.get(PENDING_COOKIE, "")
    value = oidc.unsign(signed, settings) if signed else None
    if value is None:
        return None
    pending = json.loads(value)
    return pending if pending.get("until", 0) > time.time() else None


def _exchange(settings: ServingSettings, pending: dict, code: str) -> dict:
    endpoint = oidc.discovery(settings.oidc_issuer)["token_endpoint"]
    return _client(settings, pending["redirect_uri"]).fetch_token(endpoint, code=code,
                                                                  code_verifier=pending["verifier"])


async def callback(request: Request) -> Response:
    settings = get_settings()
    if not oidc.configured(settings):
        return kit.message(request, None, 404, "Single sign-on is not set up",
                           "This service has no identity provider configured: sign in with a token.")
    counter, address = kit.limiter(request), limits.address_key(request.scope, settings)
    wait = counter.retry_after(address)
    if wait:
        return kit.too_many(request, wait)
    pending = _pending(request, settings)
    given = request.query_params
    if pending is None or not given.get("state") or given.get("state") != pending["state"]:
        counter.failed(address)
        return _refused(request, 400, "That sign-in was not started here, or took longer than ten minutes: start "
                                      "again")
    if given.get("error"):
        return _refused(request, 401, f"{settings.oidc_provider_name} did not sign you in "
                                      f"({given.get('error')[:100]}): try again")
    try:
        tokens = await run_in_threadpool(_exchange, settings, pending, given.get("code", ""))
        claims = await run_in_threadpool(oidc.verified_claims, tokens.get("id_token", ""), settings,
                                         str(settings.oidc_client_id), nonce=pending["nonce"])
        principal = oidc.mapping(settings).principal(claims)
    except oidc.NotMapped as exc:
        return _refused(request, 403, str(exc))
    except oidc.InvalidToken as exc:  # a forged or replayed answer: counted like a wrong token
        counter.failed(address)
        return _refused(request, 401, f"The sign-in could not be checked: {exc}")
    except Exception as exc:  # the provider refused the code (a forged or replayed one is counted), or is down
        counter.failed(address)
        log.warning("single sign-on: the code exchange failed: %s", type(exc).__name__)
        return _refused(request, 401, f"{settings.oidc_provider_name} did not confirm the sign-in: start again")
    if principal.role not in kit.HOME:
        return _refused(request, 403, f"A {principal.role} is for the service's API, not the web app.")
    with sessions.open_sessions(settings) as store:
        session_id = store.start(principal, via="oidc")
    home = BASE + kit.HOME[principal.role]
    response = HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta http-equiv="refresh" content="0;url={home}">'
        f'<title>Signed in</title></head><body><main><p><a href="{home}">Continue</a></p></main></body></html>')
    sessions.set_session_cookie(response, request, session_id, settings)
    response.delete_cookie(PENDING_COOKIE, path=BASE + "/sso")
    return response


ROUTES = [Route(LOGIN, login, methods=["GET"]), Route(CALLBACK, callback, methods=["GET"])]
