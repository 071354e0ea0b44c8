"""Property-based fuzzing of a running service from its own OpenAPI document with schemathesis's own engine (what
`schemathesis run` drives), every check it has switched on, a fixed budget and a fixed seed: the examples, the
coverage phase (boundary values, missing and wrong types, undeclared and malformed content types such as a
multipart form without its boundary: the ST102 server-error probes) and the fuzzing phase (valid and invalid
inputs), for every data endpoint. Returns what was tried, what was answered, what failed and what was never
answered (a server error, a request without an answer and an error of the run itself are each a failure), for a
test to assert on."""

from __future__ import annotations

import re
from collections import Counter

import schemathesis
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events

from serving.access.declared import declared
from serving.api import service  # noqa: F401 - its endpoints declare their roles

#: Every schema-valid request is expected to be served (positive_data_acceptance), but the service's answers depend
#: on data no schema can hold: an as_of outside the ledger's dates or a tenancy not on the register is a 400 or 404,
#: another patch a 403, a draft already decided a 409, a forecast before any model a 503. Those answers count as
#: accepting valid data; anything else (a 5xx, a 401, a 415 for JSON, a 422) fails the check.
ACCEPTED = ["2XX", "400", "403", "404", "409", "503"]


def fuzz_openapi(url: str, headers: dict[str, str], examples: int = 25, seed: int = 30,
                 timeout: float = 60.0) -> dict:
    """Every phase that applies, up to `examples` generated cases per endpoint and phase, every check, against the
    service at `url` (declared data endpoints only)."""
    load_all_checks()
    checks = sorted(c.__name__ for c in CHECKS.get_all())
    config = SchemathesisConfig.from_dict({
        "seed": seed, "headers": headers, "request-timeout": timeout, "continue-on-failure": True,
        "generation": {"max-examples": examples, "deterministic": True, "mode": "all",
                       "database": "none"},
        "phases": {name: {"enabled": True} for name in ("examples", "coverage", "fuzzing", "stateful")},
        "checks": {"enabled": True, "positive_data_acceptance": {"expected-statuses": ACCEPTED}},
    })
    endpoints = "|".join(re.escape(path) for path in declared("endpoint"))
    schema = schemathesis.openapi.from_url(f"{url}/docs.json", config=config).include(path_regex=f"^({endpoints})$")
    statuses: Counter = Counter()
    failures, unanswered, errors, operations = [], [], [], set()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            operations.add(recorder.label)
            for interaction in recorder.interactions.values():
                if interaction.response is None:
                    unanswered.append(f"{recorder.label}: {interaction.request.method} {interaction.request.uri}")
                else:
                    statuses[(recorder.label, event.phase.value, interaction.response.status_code)] += 1
            for nodes in recorder.checks.values():
                for node in nodes:
                    if node.failure_info is not None:
                        failure, steps = node.failure_info.failure, node.failure_info.steps
                        sent = steps[-1].curl if steps else node.failure_info.code_sample
                        failures.append(f"{recorder.label} [{event.phase.value}] {node.name} "
                                        f"{getattr(failure, 'code', '')}: {failure.title}: {failure.message}\n"
                                        f"{sent}"[:3000])
        elif isinstance(event, events.NonFatalError):
            errors.append(f"{event.label}: {event.value!r}"[:3000])
            if "timeout" in repr(event.value).lower() or "disconnect" in repr(event.value).lower():
                unanswered.append(f"{event.label}: {event.value!r}"[:500])
        elif isinstance(event, events.FatalError):
            errors.append(f"fatal: {event.exception!r}"[:3000])
    failures = sorted(set(failures)) + [f"no answer: {u}" for u in unanswered] + [f"error: {e}" for e in errors]
    operations = {label for label in operations if label.partition(" ")[2] in declared("endpoint")}
    by_status, by_phase = Counter(), Counter()
    for (_, phase, status), n in statuses.items():
        by_status[status] += n
        by_phase[phase] += n
    cases = sum(statuses.values())
    summary = (f"{cases} answers over {len(operations)} operations, checks {', '.join(checks)}; by phase: "
               f"{dict(sorted(by_phase.items()))}; by status: {dict(sorted(by_status.items()))}")
    return {"operations": len(operations), "cases": cases, "failures": failures, "errors": errors,
            "unanswered": unanswered, "statuses": dict(statuses), "checks": checks,
            "server_errors": sum(n for (_, _, status), n in statuses.items() if status >= 500), "summary": summary}
