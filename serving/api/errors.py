"""The service always answers, and always stops (issue 30, item 4): an ASGI middleware, the outermost of the
service's own (in front of the door, `serving.access.door`).

- Every request carries a request id: the caller's `X-Request-ID` when it is a plain token, else a new one, set on
  the request before the door reads it, so the door's log line, the answer's `X-Request-ID` header and a failure's
  body all name the same id.
- A fault (an exception that is not a domain refusal, in an endpoint, the door or a page) is answered 500 with
  `{"error": what to do next, "request_id": id}`: never the exception's text (it may name a tenant or hold a
  tenant's data), never Starlette's plain-text page, never silence. The traceback is logged under the same id.
- A worker told to stop (SIGTERM or SIGINT) ends within `STOP_SECONDS` even with a request stuck in flight.
  uvicorn gives requests in flight `GRACEFUL_SECONDS` to finish (`bentoml serve --timeout-graceful-shutdown`, set
  by `serving.api.process.serve_command`), then cancels them; without that bound it waits for them for ever (a
  handler blocked on a database lock held elsewhere kept the service from stopping for minutes). Should anything
  still keep the process from exiting (a handler's thread cannot be cancelled, and the interpreter waits for its
  threads), a timer started by the signal ends the process.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading

from serving.access import observe

#: Seconds a request in flight at a stop is given to finish (uvicorn's graceful shutdown).
GRACEFUL_SECONDS = 4
#: Seconds after the stop signal by which a worker has exited, whatever its requests are doing.
STOP_SECONDS = 7.0

_log = logging.getLogger("arrears.service")
_armed = threading.Event()


def fault_body(request_id: str) -> bytes:
    return json.dumps({
        "error": "The service failed on this request: a fault on its side, not in what was sent, and nothing about "
                 "it is shown here. Try again in a minute; if it fails again, give your administrator this request "
                 f"id ({request_id}): the service's log holds what went wrong under it.",
        "request_id": request_id}).encode()


class FaultAnswer:
    """ASGI middleware: a request id on every request, a 500 with a JSON body for every fault, and a bounded stop."""

    def __init__(self, app, stop_seconds: float = STOP_SECONDS) -> None:
        self.app = app
        self.stop_seconds = stop_seconds

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            arm_stop_timer(self.stop_seconds)
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope.get("headers") or [] if k.lower() != b"x-request-id"]
        rid = observe.request_id(dict(scope.get("headers") or []))
        scope = {**scope, "headers": [*headers, (b"x-request-id", rid.encode())]}
        state = {"sent": False, "held": None}

        async def answer_fault() -> None:
            body = fault_body(rid)
            state["sent"] = True
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()), (b"x-request-id", rid.encode())]})
            await send({"type": "http.response.body", "body": body})

        async def watched(message) -> None:
            kind = message["type"]
            if kind == "http.response.start" and message["status"] == 500:
                state["held"] = message  # its body is replaced: whatever the app said may hold a tenant's data
                return
            if kind == "http.response.body" and state["held"] is not None:
                if not message.get("more_body", False):
                    await answer_fault()
                return
            if kind == "http.response.start":
                state["sent"] = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:  # noqa: BLE001 - every fault is answered; the log keeps what it was
            _log.exception("request %s to %s failed", rid, scope.get("path"))
            if state["sent"]:
                raise  # the answer had begun: uvicorn closes the connection, which the client sees as a failure
            await answer_fault()


def arm_stop_timer(seconds: float) -> None:
    """Once per process: on SIGTERM or SIGINT, end the process `seconds` later if it is still running (the signal
    is passed on to the handler it had, uvicorn's, which begins the graceful shutdown)."""
    if _armed.is_set() or threading.current_thread() is not threading.main_thread():
        return
    _armed.set()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, _chained(signal.getsignal(number), seconds))


def _chained(previous, seconds: float):
    def on_stop(number, frame) -> None:
        timer = threading.Timer(seconds, _end, args=(seconds,))
        timer.daemon = True
        timer.start()
        if callable(previous):
            previous(number, frame)
        elif previous == signal.SIG_DFL:
            signal.default_int_handler(number, frame) if number == signal.SIGINT else os._exit(128 + number)

    return on_stop


def _end(seconds: float) -> None:
    print(f"arrears: still running {seconds:g} s after the stop signal (a request stuck in flight): exiting now",
          file=sys.stderr, flush=True)
    os._exit(0)
