"""The web app's model decisions: a data scientist (or an admin) approves or refuses, on the models page, the
challenger the monthly retrain left waiting. The same work as `arrears promote --approve/--refuse`
(`training.approval`): approving still runs the gates, and each decision goes in the audit trail with who decided,
in which role, and why. Forms post back to the app, which answers with the models page; a form posted from another
site is refused (the sign-in cookie is SameSite=Strict, and the Origin must be this service's)."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from casework.store import open_audit
from serving.access.declared import PAGE_ROOT as BASE
from serving.access.principals import MODELLING, Principal
from serving.web import kit
from training import approval


def _to_model(model: str) -> str:
    return f"{BASE}/models#model-{quote(model)}"


@kit.page_for("/models/approve", *MODELLING)
async def approve(request: Request, principal: Principal) -> Response:
    """Approve the waiting challenger (the version the page showed): champion if its gates pass too; if they do
    not, the models page shows the refusal and the gates that failed."""
    def work(settings, principal, form):
        with open_audit(settings) as log:
            approval.approve(settings, log, form.get("model", ""), principal.name, principal.role,
                             form.get("version"), form.get("reason", ""))
        return _to_model(form.get("model", ""))

    return await kit.act(request, principal, work)


@kit.page_for("/models/refuse", *MODELLING)
async def refuse(request: Request, principal: Principal) -> Response:
    """Refuse the waiting challenger, with a reason: the champion stays."""
    def work(settings, principal, form):
        with open_audit(settings) as log:
            approval.refuse(settings, log, form.get("model", ""), principal.name, principal.role,
                            form.get("reason", ""), form.get("version"))
        return _to_model(form.get("model", ""))

    return await kit.act(request, principal, work)


ROUTES = [
    Route("/models/approve", approve, methods=["POST"]),
    Route("/models/refuse", refuse, methods=["POST"]),
]
