"""What each refusal of the domain means over HTTP: one table, read in order (the first class an exception is an
instance of decides), by the API's endpoints (`serving.api.service`) and the web app's pages (`serving.web.kit`).
The CLI turns the same refusals into an error message that says what to do (`arrears/cli`)."""

from __future__ import annotations

from http import HTTPStatus

from casework.drafts import DraftRefused, MissingTemplate
from serving.access.principals import Forbidden
from serving.income.allocation import AlreadyAllocated
from serving.runs.casefile import NotVisible
from serving.runs.store import NoRun
from training.registry import NoChampion

#: Domain refusal → HTTP status, most specific first.
ANSWERS: tuple[tuple[type[Exception], HTTPStatus], ...] = (
    (NoRun, HTTPStatus.SERVICE_UNAVAILABLE),       # nothing recorded yet: come back after the first run
    (NoChampion, HTTPStatus.SERVICE_UNAVAILABLE),  # no model promoted yet (a LookupError too: before it)
    (NotVisible, HTTPStatus.NOT_FOUND),            # another patch's case is answered like one that does not exist
    (Forbidden, HTTPStatus.FORBIDDEN),
    (DraftRefused, HTTPStatus.CONFLICT),           # the case's state forbids it (a ValueError too: before it)
    (AlreadyAllocated, HTTPStatus.CONFLICT),       # a receipt cleared to another tenancy (a ValueError too)
    (MissingTemplate, HTTPStatus.BAD_REQUEST),     # names the template file to add (a LookupError too: before it)
    (LookupError, HTTPStatus.NOT_FOUND),
    (ValueError, HTTPStatus.BAD_REQUEST),
)


def status_of(exc: BaseException) -> HTTPStatus | None:
    """The HTTP status a refusal is answered with, or None for an exception that is not a refusal (a fault)."""
    return next((status for kind, status in ANSWERS if isinstance(exc, kind)), None)


def words(exc: Exception) -> str:
    """A refusal in words: pydantic's errors one by one, plainly; anything else as it says."""
    errors = exc.errors() if hasattr(exc, "errors") else None
    return "; ".join(e["msg"].removeprefix("Value error, ") for e in errors) if errors else str(exc)
