"""The web app: pages for people, served by the same process as the API (mounted at `/app`), answering from the same
code (`serving.worklist.Worklister`) under the same access rules (`serving.access`).

Sign-in takes a token made by `arrears users add`; the page keeps it in an HttpOnly, SameSite=Strict cookie and
checks it on every request, so a revoked token stops working at the next page. With auth open (the embedded demo)
everyone is `access.OPEN`, and every page says so. Pages are server-rendered HTML (Jinja2, autoescaped); filters
live in the URL, so a view can be bookmarked and shared.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from serving.access import OPEN, Forbidden, Principal, open_principals
from serving.settings import get_settings

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
COOKIE = "arrears_session"
#: Where the service mounts the app (serving/service.py). Links are written with it: BentoML mounts the app without
#: telling it its root path, so Starlette's url_for would drop it.
BASE = "/app"
#: Readiness queues in the order a page lists them (docs/policy.md).
QUEUES = ("ready", "hold", "review", "disputed", "recent_payment", "payment_plan", "ambiguous_balance", "blocked")
#: Roles whose pages list cases (the others get the pages of their own issues: treasury, models).
CASE_ROLES = ("officer", "supervisor", "admin")
PAGE_ROWS = 200


def _worklister():
    import bentoml

    return bentoml.get_current_service().worklister


def _principal(request: Request) -> Principal | None:
    """Who is signed in (None: nobody, or a token no longer valid); everyone is OPEN when auth is open."""
    settings = get_settings()
    if not settings.auth_required:
        return OPEN
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    with open_principals(settings) as store:
        return store.authenticate(token)


def _page(request: Request, name: str, principal: Principal | None, status: int = 200, **context) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"principal": principal, "open": principal is OPEN,
                                                      "base": BASE, **context}, status_code=status)


async def signin_form(request: Request) -> Response:
    return _page(request, "signin.html", None, error=request.query_params.get("error"))


async def signin(request: Request) -> Response:
    form = await request.form()
    token = str(form.get("token", "")).strip()
    with open_principals(get_settings()) as store:
        principal = store.authenticate(token) if token else None
    if principal is None:
        return _page(request, "signin.html", None, status=401,
                     error="That token is not valid (or was revoked). Ask an admin for one: arrears users add.")
    response = RedirectResponse(f"{BASE}/worklist", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path=BASE)
    return response


async def signout(request: Request) -> Response:
    response = RedirectResponse(f"{BASE}/signin", status_code=303)
    response.delete_cookie(COOKIE, path=BASE)
    return response


def _case_reader(request: Request) -> Principal | Response:
    """The signed-in principal, if its role reads cases; else the page to answer instead (sign-in, or a refusal)."""
    principal = _principal(request)
    if principal is None:
        return RedirectResponse(f"{BASE}/signin", status_code=303)
    if principal.role not in CASE_ROLES:
        return _page(request, "message.html", principal, status=403, title="No cases for your role",
                     message=f"{principal.role} sees aggregated data only; case lists are for officers, "
                             "supervisors and admins.")
    return principal


async def home(request: Request) -> Response:
    return RedirectResponse(f"{BASE}/worklist", status_code=303)


async def worklist(request: Request) -> Response:
    """The signed-in person's cases in one readiness queue (default: ready), ranked, with why and what next."""
    principal = _case_reader(request)
    if isinstance(principal, Response):
        return principal
    queue = request.query_params.get("queue", "ready")
    patch = request.query_params.get("patch") or None
    if queue not in QUEUES:
        return _page(request, "message.html", principal, status=400, title="Unknown queue",
                     message=f"There is no queue {queue!r}: choose one of {', '.join(QUEUES)}.")
    try:
        scope = principal.patch_scope(patch)
    except Forbidden as exc:
        return _page(request, "message.html", principal, status=403, title="Not your patch", message=str(exc))
    answer = _worklister().worklist(PAGE_ROWS, patch if patch else scope, [queue])
    patches = principal.patches or sorted({r.patch for r in answer.rows if r.patch})
    return _page(request, "worklist.html", principal, answer=answer, queue=queue, queues=QUEUES, patch=patch,
                 patches=patches)


async def case(request: Request) -> Response:
    """One tenancy: its score, the reasons from the base value to the score. Another patch's tenancy is not found,
    exactly like one that does not exist."""
    principal = _case_reader(request)
    if isinstance(principal, Response):
        return principal
    tenancy_id = request.query_params.get("tenancy", "")
    if not 0 < len(tenancy_id) <= 64:
        return _page(request, "message.html", principal, status=400, title="Which case?",
                     message="Open a case from the worklist (its address names the tenancy: case?tenancy=ID).")
    answer = _worklister().score([tenancy_id], principal.patches)
    if not answer.scores:
        return _page(request, "message.html", principal, status=404, title="No such case",
                     message=f"No case {tenancy_id} in the patches you see.")
    return _page(request, "case.html", principal, case=answer.scores[0], as_of=answer.as_of,
                 model_version=answer.model_version)


app = Starlette(routes=[
    Route("/", home),
    Route("/signin", signin_form, methods=["GET"], name="signin_form"),
    Route("/signin", signin, methods=["POST"]),
    Route("/signout", signout, methods=["POST"], name="signout"),
    Route("/worklist", worklist, name="worklist"),
    Route("/case", case, name="case"),  # the id in the query: BentoML's metrics label requests by path
    Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
])
