"""The income team's page: the suspense queue (receipts not matched to a tenancy), proposed matches first, each
receipt with its ranked candidate tenancies, their match probabilities and the reasons in plain words, and a form
to approve a candidate (the receipt is allocated to it: a ledger delivery of its own, in the audit trail) or reject
it (it leaves the receipt's candidates). The same work as `POST /suspense_queue` and `/suspense_decide`, under the
same roles; a form posted from another site is refused (`serving.web.kit.act`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from serving.access.declared import PAGE_ROOT as BASE
from serving.access.principals import INCOME, Principal
from serving.income import allocation
from serving.income.schemas import queue_answer
from serving.income.store import queue_now
from serving.web import kit

#: Receipts listed on the page (the rest wait: the page says how many).
SHOWN = 200


@kit.page_for("/income", *INCOME)
async def income(request: Request, principal: Principal) -> Response:
    """The suspense queue, proposed first, then queued, each with its candidates."""
    settings = kit.worklister(request).settings
    try:
        answer = queue_answer(queue_now(settings), settings.suspense_propose_at, SHOWN)
    except (LookupError, ValueError) as exc:
        return kit.refusal(request, principal, exc)
    return kit.page(request, "income.html", principal, answer=answer, queue_at=settings.suspense_queue_at)


@kit.page_for("/income/decide", *INCOME)
async def decide(request: Request, principal: Principal) -> Response:
    def work(settings, principal, form):
        act = allocation.approve if form.get("decision") == "approve" else allocation.reject
        probability = form.get("probability")
        act(settings, form.get("receipt_id", ""), form.get("tenancy_id", ""), principal.name, principal.role,
            float(probability) if probability else None)
        return f"{BASE}/income"

    return await kit.act(request, principal, work)


ROUTES = [
    Route("/income", income),
    Route("/income/decide", decide, methods=["POST"]),
]
