"""What every page of the web app shares (serving/web/app.py, serving/web/casework.py): the templates and their
filters, who is signed in, the top bar, each page's declared roles with the check that the page is the principal's,
and refusals as pages a person can read."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

import bentoml
import pandas as pd
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from serving.access import declared, limits
from serving.access.declared import PAGE_ROOT as BASE
from serving.access.declared import may_use
from serving.access.limits import Limiter
from serving.access.principals import OPEN, Principal
from serving.runs.answers import status_of, words
from serving.settings import get_settings

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters |= {"pounds": lambda v, places=0: "–" if missing(v) else f"£{v:,.{places}f}",
                          "percent": lambda v, places=0: "–" if missing(v) else f"{v * 100:.{places}f}%",
                          "figure": lambda v: "–" if missing(v) else f"{v:.1f}" if abs(v) >= 10 else f"{v:.3f}"}
#: The pages a person can reach from the top bar: (label, path); each shows to the roles its page declares.
NAV = (("My cases", "/my-cases"), ("Worklist", "/worklist"), ("Approvals", "/approvals"), ("Treasury", "/treasury"),
       ("Income", "/income"), ("Models and monitoring", "/models"), ("Experiments", "/experiments"))
#: Where signing in takes each role.
HOME = {"officer": "/my-cases", "supervisor": "/worklist", "admin": "/worklist", "treasury": "/treasury",
        "data_scientist": "/models"}


def missing(value) -> bool:
    return value is None or bool(pd.isna(value))


def worklister(request: Request):
    """The service's Worklister (one per worker, loaded by `ArrearsWorklist.__init__`); an app built on its own
    (`build_app`) carries its own."""
    given = getattr(request.app.state, "worklister", None)
    if given is not None:
        return given
    return bentoml.get_current_service().worklister


def signed_in(request: Request) -> Principal | None:
    """Who is signed in, as the service's door found it (None: nobody, or a token no longer valid). A page the door
    did not see (the app run on its own) has nobody signed in unless auth is open."""
    if not get_settings().auth_required:
        return OPEN
    return getattr(request.state, "principal", None)


def nav(principal: Principal | None) -> list[tuple[str, str]]:
    return [(label, BASE + path) for label, path in NAV if principal and may_use(principal, BASE + path)]


def page(request: Request, name: str, principal: Principal | None, status: int = 200, **context) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"principal": principal, "open": principal is OPEN,
                                                      "base": BASE, "nav": nav(principal), **context},
                                      status_code=status)


def message(request: Request, principal: Principal | None, status: int, title: str, message: str) -> HTMLResponse:
    return page(request, "message.html", principal, status=status, title=title, message=message)


def allowed(request: Request, path: str) -> Principal | Response:
    """The signed-in principal, if its role may open the page at `path` (below the app's root); else the page to
    answer instead: sign-in, or a refusal saying which pages are the principal's."""
    principal = signed_in(request)
    if principal is None:
        why = getattr(request.state, "signed_out_why", "")
        return RedirectResponse(f"{BASE}/signin" + (f"?ended={why}" if why else ""), status_code=303)
    if not may_use(principal, BASE + path):
        mine = ", ".join(label for label, _ in nav(principal)) or "none"
        return message(request, principal, 403, "Not a page for your role",
                       f"{principal.name} ({principal.role}) cannot open this page. Your pages: {mine}.")
    return principal


Page = Callable[[Request, Principal], Awaitable[Response]]


def page_for(path: str, *roles: str) -> Callable[[Page], Callable[[Request], Awaitable[Response]]]:
    """Declare the roles that may open the page at `path` (`serving.access.declared`) and check them before the
    page runs, which is then given the signed-in principal."""
    declared.page(path, *roles)

    def checking(handler: Page) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def checked(request: Request) -> Response:
            principal = allowed(request, path)
            if isinstance(principal, Response):
                return principal
            return await handler(request, principal)

        return checked

    return checking


#: The title of a refusal's page, by its HTTP status.
TITLES = {HTTPStatus.BAD_REQUEST: "Not done", HTTPStatus.FORBIDDEN: "Not yours to do", HTTPStatus.NOT_FOUND:
          "Not found", HTTPStatus.CONFLICT: "Not done", HTTPStatus.SERVICE_UNAVAILABLE: "Not ready yet"}


def refusal(request: Request, principal: Principal, exc: Exception) -> HTMLResponse:
    """A domain refusal as a page, with the status `serving.runs.answers` gives it; anything else is a fault."""
    status = status_of(exc)
    if status is None:
        raise exc
    said = words(exc)
    if status in (HTTPStatus.BAD_REQUEST, HTTPStatus.CONFLICT):
        said += ". Go back, change it and try again."
    return message(request, principal, status, TITLES[status], said)


async def act(request: Request, principal: Principal, work: Callable[[object, Principal, dict], str]) -> Response:
    """A form posted by a principal its page lets in: `work(settings, principal, form)` does it and names the page to
    look at next; a refusal is a page that says why. A form from another site is refused (the sign-in cookie is
    SameSite=Strict, and the Origin must be this service's)."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        return message(request, principal, 403, "Refused", "A form from another site cannot act here.")
    form = {k: str(v).strip() for k, v in (await request.form()).items() if str(v).strip()}
    try:
        then = work(worklister(request).settings, principal, form)
    except (LookupError, ValueError, PermissionError) as exc:
        return refusal(request, principal, exc)
    return RedirectResponse(then, status_code=303)


#: The limiter of an app served without the service's door (which otherwise shares its own through the request).
_OWN_LIMITER: list[Limiter] = []


def limiter(request: Request) -> Limiter:
    """The door's back-off on wrong credentials (`serving.access.limits`), for the sign-in pages to count theirs."""
    found = getattr(request.state, "limiter", None)
    if found is None:
        if not _OWN_LIMITER:
            _OWN_LIMITER.append(Limiter.from_settings(get_settings()))
        found = _OWN_LIMITER[0]
    return found


def too_many(request: Request, wait: int) -> Response:
    """The sign-in page, answered 429 with Retry-After: this address (or person) has to wait."""
    response = page(request, "signin.html", None, status=429, error=limits.too_many(wait))
    response.headers["Retry-After"] = str(wait)
    return response
