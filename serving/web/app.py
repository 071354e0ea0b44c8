"""The web app: pages for people, served by the same process as the API (mounted at `/app`), answering from the same
code (`serving.runs.worklist.Worklister`, the forecast, KPI and monitoring functions) under the same access rules:
each page declares the roles that may open it (`serving.access.declared`), and a case list holds only the
principal's patches.

Sign-in takes a token made by `arrears users add` and starts a server-side session (`serving.access.sessions`): the
HttpOnly, SameSite=Strict cookie holds the session's id, never the token, and the service's door
(`serving.access.door.AccessGuard`) looks the session up on every page, so a revoked token, an idle or old session
or a sign-out (which ends the person's sessions everywhere) stops the pages at once. With auth open (the embedded
demo) everyone is `access.OPEN`, and every page says so. Pages are server-rendered HTML (Jinja2, autoescaped) with
SVG charts drawn on the server and no JavaScript; filters and sorting live in the URL, so a view can be bookmarked
and shared.
"""

from __future__ import annotations

import logging

import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from casework import cases, drafts
from casework.policy import QUEUES
from serving.access import limits, sessions
from serving.access.declared import PAGE_ROOT as BASE
from serving.access.declared import SESSION_COOKIE as COOKIE
from serving.access.declared import may_use
from serving.access.principals import (
    AGGREGATES,
    CASEWORK,
    MODELLING,
    SUPERVISING,
    Principal,
    open_principals,
    token_hash,
)
from serving.runs.experiments import ExperimentConfigError
from serving.runs.jobs import monitoring_status
from serving.settings import get_settings
from serving.treasury.forecast import forecast_csv as as_csv
from serving.treasury.forecast import served_forecast
from serving.treasury.kpis import kpis_now
from serving.web import casework as web_casework
from serving.web import charts, kit, pages, sso
from serving.web import income as web_income
from serving.web import models as web_models

HERE = kit.HERE

PAGE_ROWS = 200
#: Orders a worklist page can be sorted in: name → (label, sort key, descending).
SORTS = {"risk": ("Risk, highest first", lambda r: r.risk_score, True),
         "payment": ("Expected payment, latest first",
                     lambda r: (r.expected_payment and r.expected_payment.p50_days) or 999.0, True),
         "tenancy": ("Tenancy", lambda r: r.tenancy_id, False),
         # Not a re-sort of the risk list: each patch's list is its ready cases of highest expected gain (the run's).
         "gain": ("Expected gain, highest first", lambda r: r.expected_gain or 0.0, True)}
log = logging.getLogger("arrears.web")


async def signin_form(request: Request) -> Response:
    why = sessions.ended(request.query_params.get("ended", ""), get_settings())
    return kit.page(request, "signin.html", None, notice=why, sso=sso.sso_name(get_settings()))


async def signin(request: Request) -> Response:
    """Sign in with a token: a session starts (its id, not the token, in the cookie). Wrong tokens count against
    the address (`serving.access.limits`): after a few, each waits longer, answered 429."""
    settings, limiter = get_settings(), kit.limiter(request)
    address = limits.address_key(request.scope, settings)
    wait = limiter.retry_after(address)
    if wait:
        return kit.too_many(request, wait)
    form = await request.form()
    token = str(form.get("token", "")).strip()
    with open_principals(settings) as store:
        principal = store.authenticate(token) if token else None
    if principal is None:
        limiter.failed(address)
        return kit.page(request, "signin.html", None, status=401,
                     error="That token is not valid (or was revoked). Ask an admin for one: arrears users add.")
    if principal.role not in kit.HOME:  # a sending system's token: the outbox API, no pages
        return kit.page(request, "signin.html", None, status=403,
                        error=f"A {principal.role} token is for the service's API, not the web app.")
    wait = limiter.retry_after(limits.principal_key(principal.name))
    if wait:
        return kit.too_many(request, wait)
    limiter.succeeded(limits.principal_key(principal.name))
    with sessions.open_sessions(settings) as store:
        session_id = store.start(principal, via="token", token_hash=token_hash(token))
    response = RedirectResponse(BASE + kit.HOME[principal.role], status_code=303)
    sessions.set_session_cookie(response, request, session_id, settings)
    return response


async def signout(request: Request) -> Response:
    """Sign out: every session of the person ends (on every device), and the cookie goes."""
    session_id = request.cookies.get(COOKIE, "")
    if session_id:
        with sessions.open_sessions(get_settings()) as store:
            store.end_everywhere(session_id)
    response = RedirectResponse(f"{BASE}/signin?ended=signed_out" if session_id else f"{BASE}/signin",
                                status_code=303)
    sessions.clear_session_cookie(response)
    return response


async def home(request: Request) -> Response:
    """Each role's first page."""
    principal = kit.signed_in(request)
    if principal is None or principal.role not in kit.HOME:
        return RedirectResponse(f"{BASE}/signin", status_code=303)
    return RedirectResponse(BASE + kit.HOME[principal.role], status_code=303)


@kit.page_for("/worklist", *CASEWORK)
async def worklist(request: Request, principal: Principal) -> Response:
    """The signed-in person's cases in one readiness queue (default: ready), ranked, with why and what next, and
    what changed since the last run marked on each case."""
    queue, sort = request.query_params.get("queue", "ready"), request.query_params.get("sort", "risk")
    patch = request.query_params.get("patch") or None
    if queue not in QUEUES or sort not in SORTS:
        return kit.message(request, principal, 400, "Unknown queue or order",
                        f"Choose a queue of {', '.join(QUEUES)} and an order of {', '.join(SORTS)}.")
    try:
        scope = principal.patch_scope(patch)
        answer = kit.worklister(request).worklist(PAGE_ROWS, scope, [queue], "gain" if sort == "gain" else "risk")
        changed = kit.worklister(request).changes(scope)
    except (LookupError, PermissionError) as exc:  # another patch (403), no run yet (503)
        return kit.refusal(request, principal, exc)
    except ValueError as exc:  # by expected gain: no uplift champion yet, or not the ready queue
        return kit.message(request, principal, 400, "No list by expected gain", str(exc))
    _, key, descending = SORTS[sort]
    rows = sorted(answer.rows, key=key, reverse=descending) if sort not in ("risk", "gain") else answer.rows
    patches = principal.patches or sorted({r.patch for r in answer.rows if r.patch})
    return kit.page(request, "worklist.html", principal, answer=answer, rows=rows, queue=queue, queues=QUEUES,
                 patch=patch, patches=patches, sort=sort, sorts={k: v[0] for k, v in SORTS.items()},
                 marks=_marks(changed), changed=changed, gains=any(r.expected_gain is not None for r in rows))


def _marks(changed) -> dict[str, list[str]]:
    """What changed for each tenancy since the previous run, in words (the worklist marks its rows with them)."""
    marks: dict[str, list[str]] = {}
    for tenancy_id in changed.entered:
        marks.setdefault(tenancy_id, []).append("New on the ready list")
    for change in changed.state_changes:
        if change.before:
            marks.setdefault(change.tenancy_id, []).append(f"Was {change.before.replace('_', ' ')}")
    for move in changed.score_moves:
        way = "up" if move.after > move.before else "down"
        marks.setdefault(move.tenancy_id, []).append(f"Risk {way} from {move.before:.0%}")
    for payment in changed.payments:
        marks.setdefault(payment.tenancy_id, []).append(f"Paid £{payment.amount:,.2f} on {payment.posted_date}")
    return marks


@kit.page_for("/case", *CASEWORK)
async def case(request: Request, principal: Principal) -> Response:
    """One tenancy: its score and the reasons from the base value to the score, its statement over the last year,
    its events, its readiness state with the rules that fired, and its history in the recorded runs. Another
    patch's tenancy is not found, exactly like one that does not exist."""
    tenancy_id = request.query_params.get("tenancy", "")
    if not 0 < len(tenancy_id) <= 64:
        return kit.message(request, principal, 400, "Which case?",
                        "Open a case from the worklist (its address names the tenancy: case?tenancy=ID).")
    answer = kit.worklister(request).score([tenancy_id], principal.patches)
    if not answer.scores:
        return kit.message(request, principal, 404, "No such case", f"No case {tenancy_id} in the patches you see.")
    settings = kit.worklister(request).settings
    try:
        found = pages.case_history(settings, tenancy_id, pd.Timestamp(answer.as_of))
    except Exception:  # noqa: BLE001 - the score stands on its own; say the rest could not be read, and log why
        log.exception("case file not read")
        found = None
    chart = charts.statement_chart(found.transactions, found.start, found.end) if found is not None else None
    section = web_casework.case_section(request, principal, tenancy_id)
    return kit.page(request, "case.html", principal, case=answer.scores[0], as_of=answer.as_of,
                 model_version=answer.model_version, found=found, chart=chart, forms=_forms(principal),
                 casefile=section, reassign=web_casework.reassign_choices(request, principal, section),
                 latest=found.history.iloc[0].to_dict() if found is not None and len(found.history) else None)


def _forms(principal: Principal) -> dict:
    """The casework forms the case page offers this principal, and their choices."""
    return {"action": may_use(principal, BASE + "/case/action"), "draft": may_use(principal, BASE + "/case/draft"),
            "kinds": [kind for kind in cases.ACTION_KINDS
                      if kind not in cases.SUPERVISOR_ACTIONS or principal.role in SUPERVISING],
            "channels": cases.CONTACT_CHANNELS, "outcomes": cases.OUTCOMES,
            "reasons": sorted({code for codes in cases.REASONS.values() for code in codes}),
            "referrals": cases.REFERRALS, "draft_channels": drafts.DRAFT_CHANNELS, "languages": drafts.languages()}


def _forecast(request: Request, patch: str | None):
    rows, header = served_forecast(kit.worklister(request).settings, 13, patch)
    return rows.assign(week_start=rows["week_start"].dt.strftime("%Y-%m-%d")), header


@kit.page_for("/treasury", *AGGREGATES)
async def treasury(request: Request, principal: Principal) -> Response:
    """Expected receipts for the next 13 weeks as a fan chart (the portfolio, or one patch), each patch's total,
    the latest month's collection KPIs, and the forecast as a CSV download."""
    patch = request.query_params.get("patch") or None
    try:
        rows, header = _forecast(request, None)
        kpis = kpis_now(kit.worklister(request).settings, None, 3)
    except LookupError as exc:  # no champion payment model (503), or no ledger yet
        return kit.refusal(request, principal, exc)
    scopes = list(dict.fromkeys(rows["scope"]))
    if patch is not None and patch not in scopes:
        return kit.message(request, principal, 404, "No such patch", f"The forecast's patches are "
                        f"{', '.join(s for s in scopes if s != 'portfolio')}.")
    shown = rows[rows["scope"] == (patch or "portfolio")]
    return kit.page(request, "treasury.html", principal, header=header, weeks=shown.to_dict("records"),
                 chart=charts.fan_chart(shown), patch=patch, scopes=scopes, **pages.treasury_view(rows, kpis))


@kit.page_for("/treasury/forecast.csv", *AGGREGATES)
async def forecast_csv(request: Request, principal: Principal) -> Response:
    """The forecast as CSV: what the API's `/cash_forecast_csv` sends for the same patch."""
    patch = request.query_params.get("patch") or None
    try:
        rows, header = _forecast(request, patch)
    except LookupError as exc:
        return kit.refusal(request, principal, exc)
    return Response(as_csv(rows, header).to_csv(index=False), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="cash_forecast_{header["as_of"]}.csv"'})


@kit.page_for("/models", *MODELLING)
async def models(request: Request, principal: Principal) -> Response:
    """The champion and challenger of each model against their baselines, the promotion decisions, and the
    monitoring jobs' latest runs, reports and alerts."""
    settings = kit.worklister(request).settings
    monitoring = monitoring_status(settings, 30)
    return kit.page(request, "models.html", principal, models=pages.models_view(settings),
                 promotions=pages.promotions(settings), decisions=pages.model_decisions(settings),
                 monitoring=monitoring, reports=pages.reports(monitoring.latest_runs),
                 delivery=pages.delivery(settings))


@kit.page_for("/experiments", *MODELLING)
async def experiments(request: Request, principal: Principal) -> Response:
    """Each randomised-holdout experiment: accrual by arm and stratum and balance on pre-period features; per-arm
    means, the effect with its interval and the effect per stratum (charted) only once its fixed horizon has passed,
    from the latest report `arrears experiment report` or the weekly `experiments` job wrote."""
    try:
        shown = pages.experiments_view(kit.worklister(request).settings)
    except ExperimentConfigError as exc:
        return kit.message(request, principal, 503, "The experiments file cannot be read", str(exc))
    charts_by_name = {e["name"]: charts.interval_chart(e["effect"]["strata"], e["unit"])
                      for e in shown if e["effect"] is not None}
    return kit.page(request, "experiments.html", principal, experiments=shown, charts=charts_by_name)


@kit.page_for("/report", *MODELLING)
async def report(request: Request, principal: Principal) -> Response:
    """A monitoring job's latest report (the Evidently or bias HTML it wrote)."""
    settings = kit.worklister(request).settings
    path = pages.report_file(settings, monitoring_status(settings, 0).latest_runs,
                             request.query_params.get("job", ""), request.query_params.get("name", ""))
    if path is None:
        return kit.message(request, principal, 404, "No such report",
                        "The models and monitoring page links every report the jobs' latest runs wrote.")
    return FileResponse(path, media_type="text/html")


ROUTES = [
    Route("/", home),
    Route("/signin", signin_form, methods=["GET"]),
    Route("/signin", signin, methods=["POST"]),
    Route("/signout", signout, methods=["POST"]),
    Route("/worklist", worklist),
    Route("/case", case),  # the id in the query: BentoML's metrics label requests by path
    Route("/treasury", treasury),
    Route("/treasury/forecast.csv", forecast_csv),
    Route("/models", models),
    Route("/experiments", experiments),
    Route("/report", report),
    *sso.ROUTES,
    *web_casework.ROUTES,
    *web_income.ROUTES,
    *web_models.ROUTES,
    Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
]


def build_app(worklister=None) -> Starlette:
    """The pages as an ASGI app. The service mounts one at `/app` that answers from its own Worklister; give one
    to answer from it instead (a script, or a test without the HTTP server)."""
    built = Starlette(routes=ROUTES)
    built.state.worklister = worklister
    return built


app = build_app()
