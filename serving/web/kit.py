"""What every page of the web app shares (serving/web/app.py, serving/web/casework.py): the templates and their
filters, who is signed in, the top bar, and the check that a page is the principal's."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from serving.access.door import PAGES as BASE
from serving.access.principals import OPEN, Principal
from serving.settings import get_settings

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters |= {"pounds": lambda v, places=0: "–" if missing(v) else f"£{v:,.{places}f}",
                          "percent": lambda v, places=0: "–" if missing(v) else f"{v * 100:.{places}f}%",
                          "figure": lambda v: "–" if missing(v) else f"{v:.1f}" if abs(v) >= 10 else f"{v:.3f}"}
#: The pages a person can reach from the top bar: (label, path, the API endpoint whose roles may open it).
NAV = (("Worklist", "/worklist", "/worklist"), ("Approvals", "/approvals", "/approval_queue"),
       ("Treasury", "/treasury", "/cash_forecast"), ("Models and monitoring", "/models", "/monitoring_status"))
#: Where signing in takes each role.
HOME = {"officer": "/worklist", "supervisor": "/worklist", "admin": "/worklist", "treasury": "/treasury",
        "data_scientist": "/models"}


def missing(value) -> bool:
    return value is None or bool(pd.isna(value))


def worklister(request: Request):
    """The service's Worklister (one per worker, loaded by `ArrearsWorklist.__init__`); an app built on its own
    (`build_app`) carries its own."""
    given = getattr(request.app.state, "worklister", None)
    if given is not None:
        return given
    import bentoml

    return bentoml.get_current_service().worklister


def signed_in(request: Request) -> Principal | None:
    """Who is signed in, as the service's door found it (None: nobody, or a token no longer valid). A page the door
    did not see (the app run on its own) has nobody signed in unless auth is open."""
    if not get_settings().auth_required:
        return OPEN
    return getattr(request.state, "principal", None)


def nav(principal: Principal | None) -> list[tuple[str, str]]:
    return [(label, BASE + path) for label, path, endpoint in NAV if principal and principal.may_call(endpoint)]


def page(request: Request, name: str, principal: Principal | None, status: int = 200, **context) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"principal": principal, "open": principal is OPEN,
                                                      "base": BASE, "nav": nav(principal), **context},
                                      status_code=status)


def message(request: Request, principal: Principal | None, status: int, title: str, message: str) -> HTMLResponse:
    return page(request, "message.html", principal, status=status, title=title, message=message)


def allowed(request: Request, endpoint: str) -> Principal | Response:
    """The signed-in principal, if its role may call `endpoint` (whose data the page shows); else the page to
    answer instead: sign-in, or a refusal saying which pages are the principal's."""
    principal = signed_in(request)
    if principal is None:
        return RedirectResponse(f"{BASE}/signin", status_code=303)
    if not principal.may_call(endpoint):
        mine = ", ".join(label for label, _ in nav(principal)) or "none"
        return message(request, principal, 403, "Not a page for your role",
                        f"{principal.name} ({principal.role}) cannot open this page. Your pages: {mine}.")
    return principal


