"""What the service tells its operators, and nothing about tenants: Prometheus metrics (beside BentoML's own, on
`/metrics`) and one JSON log line per data request, with a request id (the caller's `X-Request-ID`, or a new one,
echoed on the answer). Neither carries a tenancy id, a request body, a name, an address, a contact detail or a
protected characteristic: counts, timings, endpoint, status, model version and the caller's staff name and role.
"""

from __future__ import annotations

import json
import time
import uuid

from prometheus_client import Counter, Gauge, Histogram

from features.logs import line_logger

REQUESTS = Counter("arrears_requests", "Data-endpoint requests, by endpoint and status", ["endpoint", "status"])
SECONDS = Histogram("arrears_request_seconds", "Time to answer a data request (worklist generation from the "
                    "recorded run, scoring, forecast), by endpoint", ["endpoint"])
CASES = Counter("arrears_cases_served", "Worklist rows and scores answered, by endpoint", ["endpoint"])
UNSCORED = Counter("arrears_unscored_ids", "Tenancy ids /score could not score (no features, or not the caller's)")
MODEL = Gauge("arrears_model_version_served", "1 for the risk model version a worker serves", ["version"],
              multiprocess_mode="livemax")
GENERATION = Gauge("arrears_worklist_generation_seconds", "Seconds the worklist run served last took to generate "
                   "(score every live tenancy, judge readiness, explain listable cases, record)",
                   multiprocess_mode="livemax")
POPULATION = Gauge("arrears_worklist_run_population", "Live tenancies in the worklist run served last",
                   multiprocess_mode="livemax")



def request_id(headers: dict[bytes, bytes]) -> str:
    """The caller's X-Request-ID when it is a plain token (up to 64 characters), else a new one."""
    given = headers.get(b"x-request-id", b"").decode("latin-1")
    return given if given and len(given) <= 64 and given.replace("-", "").isalnum() else uuid.uuid4().hex


def log_request(rid: str, endpoint: str, status: int, started: float, principal: str | None,
                role: str | None) -> None:
    seconds = time.perf_counter() - started
    REQUESTS.labels(endpoint, str(status)).inc()
    SECONDS.labels(endpoint).observe(seconds)
    line = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "request_id": rid, "endpoint": endpoint, "status": status,
            "ms": round(seconds * 1000, 1), "principal": principal, "role": role}
    line_logger("arrears.requests").info(json.dumps(line))


def served(endpoint: str, cases: int, unscored: int = 0) -> None:
    CASES.labels(endpoint).inc(cases)
    if unscored:
        UNSCORED.inc(unscored)


_serving: list[str] = []


def serving_model(version: str) -> None:
    """This worker now serves `version` (the one before, if any, drops to 0)."""
    for before in _serving:
        MODEL.labels(before).set(0)
    _serving[:] = [str(version)]
    MODEL.labels(str(version)).set(1)
