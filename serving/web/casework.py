"""The web app's casework: an officer records what they did and writes a draft from the case page; a supervisor
approves (as written or edited), rejects or releases drafts on the approvals page. The same work as the casework
endpoints (`serving.runs.casefile`) under the same roles; forms post back to the app, which answers with the page to
look at next. A form posted from another site is refused (the sign-in cookie is SameSite=Strict, and the Origin
must be this service's)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from casework.cases import OfficerAction
from casework.drafts import REJECT_REASONS
from serving.access.declared import PAGE_ROOT as BASE
from serving.access.principals import CASEWORK, SUPERVISING, Principal
from serving.runs import casefile
from serving.runs.store import NoRun
from serving.web import kit


def case_section(request: Request, principal: Principal, tenancy_id: str):
    """The case page's casework (owner, actions, drafts, decisions), or None when it cannot be read."""
    try:
        return casefile.case_file(kit.worklister(request).settings, principal, tenancy_id)
    except (casefile.NotVisible, NoRun):
        return None


def _to_case(tenancy_id: str) -> str:
    return f"{BASE}/case?tenancy={quote(tenancy_id)}#casework"


async def _act(request: Request, principal: Principal, work) -> Response:
    """A casework form, posted by a principal its page lets in: `work(settings, principal, form)` does it and names
    the page to look at next; a refusal is a page that says why. A form from another site is refused."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        return kit.message(request, principal, 403, "Refused", "A form from another site cannot act here.")
    form = {k: str(v).strip() for k, v in (await request.form()).items() if str(v).strip()}
    try:
        then = work(kit.worklister(request).settings, principal, form)
    except (LookupError, ValueError, PermissionError) as exc:
        return kit.refusal(request, principal, exc)
    return RedirectResponse(then, status_code=303)


@kit.page_for("/case/action", *CASEWORK)
async def record_action(request: Request, principal: Principal) -> Response:
    def work(settings, principal, form):
        tenancy_id = form.pop("tenancy", "")
        casefile.record_action(settings, principal, tenancy_id, OfficerAction(**form))
        return _to_case(tenancy_id)

    return await _act(request, principal, work)


@kit.page_for("/case/draft", *CASEWORK)
async def write_draft(request: Request, principal: Principal) -> Response:
    def work(settings, principal, form):
        casefile.write_draft(settings, principal, form.get("tenancy", ""), form.get("channel", "letter"),
                             form.get("language", "en"))
        return _to_case(form.get("tenancy", ""))

    return await _act(request, principal, work)


@kit.page_for("/approvals", *SUPERVISING)
async def approvals(request: Request, principal: Principal) -> Response:
    """Drafts waiting for a decision, each with its text to approve as written or edited, or to reject; approved
    drafts waiting to be released."""
    queue = casefile.approval_queue(kit.worklister(request).settings, principal, None)
    return kit.page(request, "approvals.html", principal, drafts=queue.drafts, reasons=REJECT_REASONS)


@kit.page_for("/approvals/decide", *SUPERVISING)
async def decide(request: Request, principal: Principal) -> Response:
    def work(settings, principal, form):
        decision = "reject" if form.get("decision") == "reject" else "approve"
        casefile.decide(settings, principal, form.get("draft_id", ""), decision, form.get("text"),
                        form.get("reason"))
        return f"{BASE}/approvals"

    return await _act(request, principal, work)


@kit.page_for("/approvals/release", *SUPERVISING)
async def release(request: Request, principal: Principal) -> Response:
    def work(settings, principal, form):
        return _to_case(casefile.release(settings, principal, form.get("draft_id", "")).tenancy_id)

    return await _act(request, principal, work)


ROUTES = [
    Route("/case/action", record_action, methods=["POST"]),
    Route("/case/draft", write_draft, methods=["POST"]),
    Route("/approvals", approvals),
    Route("/approvals/decide", decide, methods=["POST"]),
    Route("/approvals/release", release, methods=["POST"]),
]
