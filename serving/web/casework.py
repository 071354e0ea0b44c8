"""The web app's casework: an officer lands on their day's cases (my cases), records what they did and writes a
draft from the case page; a supervisor reassigns a case to another officer of its patch from the case page, and
approves (as written or edited), rejects or releases drafts on the approvals page. The same work as the casework
endpoints (`serving.runs.casefile`) under the same roles; forms post back to the app, which answers with the page to
look at next. A form posted from another site is refused (the sign-in cookie is SameSite=Strict, and the Origin
must be this service's)."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from casework.cases import OfficerAction
from casework.drafts import REJECT_REASONS
from serving.access.declared import PAGE_ROOT as BASE
from serving.access.declared import may_use
from serving.access.principals import CASEWORK, SUPERVISING, Principal
from serving.privacy.access_log import record_reads
from serving.runs import casefile, mycases
from serving.runs.casework import roster
from serving.runs.store import NoRun
from serving.web import kit

#: Why a supervisor gives a case to another officer: the reason code the audit trail records with the reassignment.
REASSIGN_REASONS = ("workload", "absence", "continuity", "specialism", "other")


def case_section(request: Request, principal: Principal, tenancy_id: str):
    """The case page's casework (owner, actions, drafts, decisions), or None when it cannot be read. A read is
    recorded in the access log (docs/privacy.md: who looked)."""
    settings = kit.worklister(request).settings
    try:
        section = casefile.case_file(settings, principal, tenancy_id)
    except (casefile.NotVisible, NoRun):
        return None
    record_reads(settings, principal, [tenancy_id], "case_page")
    return section


def reassign_choices(request: Request, principal: Principal, section) -> dict | None:
    """The case page's reassignment form, for a principal the page `/case/reassign` lets in: the officers of the
    case's patch and the reasons (None: not theirs to offer, or no case file to offer it on)."""
    if section is None or not may_use(principal, BASE + "/case/reassign"):
        return None
    officers = roster(kit.worklister(request).settings).get(section.patch or "", [])
    return {"officers": sorted(officers), "reasons": REASSIGN_REASONS}


@kit.page_for("/my-cases", *CASEWORK)
async def my_cases(request: Request, principal: Principal) -> Response:
    """An officer's day (their landing page): the cases they own that want something today, the most pressing
    first, each with why and the amount due. A supervisor or an admin may look at an officer's (`?officer=NAME`)."""
    officer = request.query_params.get("officer") or None
    settings = kit.worklister(request).settings
    try:
        answer = mycases.my_cases(settings, principal, officer)
    except (LookupError, PermissionError) as exc:  # another officer's list (403), no run yet (503)
        return kit.refusal(request, principal, exc)
    officers = None
    if principal.role in SUPERVISING:
        seen = {o for patch, names in roster(settings).items() if principal.patches is None or patch in
                principal.patches for o in names}
        officers = sorted(seen)
    return kit.page(request, "my_cases.html", principal, answer=answer, officers=officers)


def _to_case(tenancy_id: str) -> str:
    return f"{BASE}/case?tenancy={quote(tenancy_id)}#casework"


@kit.page_for("/case/action", *CASEWORK)
async def record_action(request: Request, principal: Principal) -> Response:
    def work(settings, principal, form):
        tenancy_id = form.pop("tenancy", "")
        casefile.record_action(settings, principal, tenancy_id, OfficerAction(**form))
        return _to_case(tenancy_id)

    return await kit.act(request, principal, work)


@kit.page_for("/case/reassign", *SUPERVISING)
async def reassign(request: Request, principal: Principal) -> Response:
    def work(settings, principal, form):
        reason = form.get("reason", "")
        if reason not in REASSIGN_REASONS:
            raise ValueError(f"A reassignment's reason is one of {', '.join(REASSIGN_REASONS)}")
        casefile.reassign(settings, principal, form.get("tenancy", ""), form.get("to", ""), reason)
        return _to_case(form.get("tenancy", ""))

    return await kit.act(request, principal, work)


@kit.page_for("/case/draft", *CASEWORK)
async def write_draft(request: Request, principal: Principal) -> Response:
    def work(settings, principal, form):
        casefile.write_draft(settings, principal, form.get("tenancy", ""), form.get("channel"), form.get("language"))
        return _to_case(form.get("tenancy", ""))

    return await kit.act(request, principal, work)


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

    return await kit.act(request, principal, work)


@kit.page_for("/approvals/release", *SUPERVISING)
async def release(request: Request, principal: Principal) -> Response:
    def work(settings, principal, form):
        return _to_case(casefile.release(settings, principal, form.get("draft_id", "")).tenancy_id)

    return await kit.act(request, principal, work)


ROUTES = [
    Route("/my-cases", my_cases),
    Route("/case/action", record_action, methods=["POST"]),
    Route("/case/reassign", reassign, methods=["POST"]),
    Route("/case/draft", write_draft, methods=["POST"]),
    Route("/approvals", approvals),
    Route("/approvals/decide", decide, methods=["POST"]),
    Route("/approvals/release", release, methods=["POST"]),
]
