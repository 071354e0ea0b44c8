"""The web app's casework: an officer records what they did and writes a draft from the case page; a supervisor
approves (as written or edited), rejects or releases drafts on the approvals page. The same work as the casework
endpoints (`serving.runs.requests`) under the same roles; forms post back to the app, which answers with the page to
look at next. A form posted from another site is refused (the sign-in cookie is SameSite=Strict, and the Origin
must be this service's)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from serving.access.door import PAGES as BASE
from serving.access.principals import Principal
from serving.runs import requests as casework_api
from serving.web import kit


def case_section(request: Request, principal: Principal, tenancy_id: str):
    """The case page's casework (owner, actions, drafts, decisions), or None when it cannot be read."""
    from serving.runs.store import NoRun

    try:
        return casework_api.case_file(kit.worklister(request).settings, principal, tenancy_id)
    except (casework_api.NotVisible, NoRun):
        return None


async def _posted(request: Request, endpoint: str) -> tuple[Principal, dict] | Response:
    """The signed-in principal allowed `endpoint`, and the form; or the page to answer instead."""
    principal = kit.allowed(request, endpoint)
    if isinstance(principal, Response):
        return principal
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        return kit.message(request, principal, 403, "Refused", "A form from another site cannot act here.")
    form = await request.form()
    return principal, {k: str(v).strip() for k, v in form.items() if str(v).strip()}


def _refused(request: Request, principal: Principal, exc: Exception) -> Response:
    from casework.drafts import DraftRefused

    if isinstance(exc, casework_api.NotVisible):
        return kit.message(request, principal, 404, "Not found", str(exc))
    if isinstance(exc, PermissionError):
        return kit.message(request, principal, 403, "Not yours to decide", str(exc))
    status = 409 if isinstance(exc, DraftRefused) else 400
    return kit.message(request, principal, status, "Not done",
                       f"{casework_api.words(exc)}. Go back, change it and try again.")


def _to_case(tenancy_id: str) -> str:
    return f"{BASE}/case?tenancy={quote(tenancy_id)}#casework"


async def _act(request: Request, endpoint: str, work) -> Response:
    """A casework form: the principal allowed `endpoint` posts it, `work(settings, principal, form)` does it and
    names the page to look at next; a refusal is a page that says why."""
    posted = await _posted(request, endpoint)
    if isinstance(posted, Response):
        return posted
    principal, form = posted
    try:
        then = work(kit.worklister(request).settings, principal, form)
    except (LookupError, ValueError, PermissionError) as exc:
        return _refused(request, principal, exc)
    return RedirectResponse(then, status_code=303)


async def record_action(request: Request) -> Response:
    from casework.cases import OfficerAction

    def work(settings, principal, form):
        tenancy_id = form.pop("tenancy", "")
        casework_api.record_action(settings, principal, tenancy_id, OfficerAction(**form))
        return _to_case(tenancy_id)

    return await _act(request, "/case_action", work)


async def write_draft(request: Request) -> Response:
    def work(settings, principal, form):
        casework_api.write_draft(settings, principal, form.get("tenancy", ""), form.get("channel", "letter"),
                                 form.get("language", "en"))
        return _to_case(form.get("tenancy", ""))

    return await _act(request, "/draft", work)


async def approvals(request: Request) -> Response:
    """Drafts waiting for a decision, each with its text to approve as written or edited, or to reject; approved
    drafts waiting to be released."""
    from casework.drafts import REJECT_REASONS

    principal = kit.allowed(request, "/approval_queue")
    if isinstance(principal, Response):
        return principal
    queue = casework_api.approval_queue(kit.worklister(request).settings, principal, None)
    return kit.page(request, "approvals.html", principal, drafts=queue.drafts, reasons=REJECT_REASONS)


async def decide(request: Request) -> Response:
    def work(settings, principal, form):
        decision = "reject" if form.get("decision") == "reject" else "approve"
        casework_api.decide(settings, principal, form.get("draft_id", ""), decision, form.get("text"),
                            form.get("reason"))
        return f"{BASE}/approvals"

    return await _act(request, "/draft_decision", work)


async def release(request: Request) -> Response:
    def work(settings, principal, form):
        return _to_case(casework_api.release(settings, principal, form.get("draft_id", "")).tenancy_id)

    return await _act(request, "/draft_release", work)


ROUTES = [
    Route("/case/action", record_action, methods=["POST"]),
    Route("/case/draft", write_draft, methods=["POST"]),
    Route("/approvals", approvals),
    Route("/approvals/decide", decide, methods=["POST"]),
    Route("/approvals/release", release, methods=["POST"]),
]
