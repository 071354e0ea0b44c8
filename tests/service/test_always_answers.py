"""A service that always answers, and always stops (issue 30, item 4), against a real `arrears serve` with
ARREARS_AUTH=required on the shared pipeline's home (its runs and case databases copied, so what is done to them
here touches no other test):

- bodies nested up to 100,000 deep, odd content types and odd headers, with a valid token, a wrong one and none:
  each answered 4xx in under a second;
- a real fault (the runs database corrupted under the running service) is a 500 with a JSON body that says what to
  do and names the request id, and holds nothing of the exception or of any tenant;
- SIGTERM to `arrears serve` while a request is stuck in flight (its handler blocked on the case database's write
  lock, which the test holds): it and every process it started are gone within 10 seconds.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from serving.api.process import free_port, stop_group, wait_ready
from serving.settings import get_settings
from tests.support.cli import ok
from tests.support.homes import isolated_home

DEPTHS = (33, 1_000, 10_000, 100_000)
ENDPOINTS = ("/worklist", "/score", "/case_action")
CONTENT_TYPES = ("text/plain", "multipart/form-data", "multipart/form-data; boundary=x",
                 "application/x-www-form-urlencoded", "application/xml", "application/json; charset=utf-16", "",
                 "*/*", "application/json, text/plain", "application/" + "x" * 2000)
ODD_HEADERS = ({"Authorization": "Bearer " + "x" * 8000}, {"Authorization": "Bearer"}, {"Authorization": "Basic ???"},
               {"X-Request-ID": "<script>" * 20}, {"Cookie": "arrears_session=" + "%" * 4000},
               {"Content-Length-Extra": "1" * 10_000}, {"Accept": "application/xml"},
               {"Content-Type": "application/json\tx"})


def _copy(source: Path, target: Path) -> str:
    """A consistent copy of an SQLite database (its write-ahead log included): its URL."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return f"sqlite:///{target}"


def _nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b'{"top": ' + b"[" * depth + b"]" * depth + b"}"
    return b'{"top": ' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"


def _alive(processes: list[psutil.Process]) -> list[int]:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process.pid)
        except psutil.NoSuchProcess:
            continue
    return alive


@pytest.fixture(scope="module")
def answers(pipeline: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    home, own = pipeline["home"], tmp_path_factory.mktemp("always-answers")
    runs = _copy(home / "serving.sqlite", own / "serving.sqlite")
    casework = _copy(home / "casework.sqlite", own / "casework.sqlite")
    tenancy = pipeline["payload"]["rows"][0]["tenancy_id"]
    found: dict = {}
    stores = {"ARREARS_RUNS_URL": runs, "ARREARS_CASEWORK_URL": casework}
    with isolated_home(home, **stores):  # the administrator's own login makes the tokens
        token, spare = (ok("users", "add", name, "--role", "admin").stdout.strip().splitlines()[-1]
                        for name in ("always-answers", "always-answers-2"))
    # a token the door has checked is trusted for 10 minutes; wrong tokens are not locked out here (that is tested
    # apart): every answer below is the service's judgement of the request, not of the address
    with isolated_home(home, ARREARS_AUTH="required", ARREARS_AUTH_CACHE_SECONDS="600",
                       ARREARS_AUTH_FAILURES_FREE="100000", **stores):
        server, url, log_path = _arrears_serve(get_settings())
        family = [psutil.Process(server.pid)]
        try:
            wait_ready(url, server)
            family = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
            callers = {"token": {"Authorization": f"Bearer {token}"}, "none": {},
                       "wrong": {"Authorization": "Bearer arr_not-a-token"}}
            with httpx.Client(base_url=url, timeout=30) as client:
                found |= _probe(client, callers)
                found["fault"] = _fault(client, Path(runs.removeprefix("sqlite:///")), callers["token"],
                                        {"Authorization": f"Bearer {spare}"}, tenancy)
            found["stop"] = _stop_while_stuck(server, url, Path(casework.removeprefix("sqlite:///")),
                                              callers["token"], tenancy)
        finally:
            stop_group(server, timeout=5)
            for pid in _alive(family):  # never leave a worker behind
                os.kill(pid, signal.SIGKILL)
        found["log"] = log_path.read_text(errors="replace")
    return found


def _arrears_serve(settings) -> tuple[subprocess.Popen, str, Path]:
    """`arrears serve` as a person starts it, in a session of its own: (the process, its URL, its log)."""
    port = free_port()
    log_path = settings.logs_dir / "always-answers.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    arrears = Path(sys.executable).with_name("arrears")
    with open(log_path, "ab") as log:
        server = subprocess.Popen([str(arrears), "serve", "--port", str(port)], env=settings.child_process_env(),
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return server, f"http://127.0.0.1:{port}", log_path


def _probe(client: httpx.Client, callers: dict[str, dict]) -> dict:
    """Nested bodies to every endpoint of ENDPOINTS by each caller, then odd content types and headers: each
    answer's status and how long it took."""
    found: dict = {"nested": [], "odd": []}
    found["plain"] = client.post("/worklist", json={"top": 1}, headers=callers["token"]).status_code
    for depth in DEPTHS:
        for kind in ("array", "object"):
            body = _nested(depth, kind)
            for path in ENDPOINTS:
                for caller, headers in callers.items():
                    started = time.perf_counter()
                    response = client.post(path, content=body, headers={
                        **headers, "Content-Type": "application/json"})
                    found["nested"].append((depth, kind, path, caller, response.status_code,
                                            time.perf_counter() - started, response.text[:200]))
    deep = _nested(100_000, "array")
    odd = [(f"content-type {kind[:40]!r}", {**callers["token"], "Content-Type": kind})
           for kind in CONTENT_TYPES]
    odd += [(f"header {name} ({len(value)} chars)", {**callers["token"], "Content-Type":
                                                      "application/json", name: value})
            for header in ODD_HEADERS for name, value in header.items()]
    for label, headers in odd:
        for size, body in (("flat", b'{"top": 1}'), ("deep", deep)):
            started = time.perf_counter()
            response = client.post("/worklist", content=body, headers=headers)
            found["odd"].append((f"{label}, {size}", response.status_code, time.perf_counter() - started))
    return found


def _fault(client: httpx.Client, runs: Path, caller: dict, uncached: dict, tenancy: str) -> dict:
    """The runs database overwritten with garbage under the running service (its pages unreadable, as after a disk
    fault): a request whose token the door trusts from its cache fails in the endpoint, one whose token it must
    look up fails in the door itself."""
    seen = client.post("/case_file", json={"tenancy_id": tenancy}, headers=caller)
    kept = runs.with_name("kept.sqlite")
    _copy(runs, kept)
    for leftover in (runs.with_name(runs.name + "-wal"), runs.with_name(runs.name + "-shm")):
        leftover.unlink(missing_ok=True)
    runs.write_bytes(os.urandom(runs.stat().st_size))
    try:
        asked = {"endpoint": client.post("/worklist", json={"top": 5},
                                         headers={**caller, "X-Request-ID": "fault-0001"}),
                 "case": client.post("/case_file", json={"tenancy_id": tenancy}, headers=caller),
                 "door": client.post("/worklist", json={"top": 5}, headers=uncached)}
    finally:
        os.replace(kept, runs)  # the service opens the database afresh for each request
    return {"before": seen.status_code,
            **{name: {"status": r.status_code, "type": r.headers.get("content-type"), "text": r.text,
                      "header": r.headers.get("x-request-id")} for name, r in asked.items()}}


def _stop_while_stuck(server: subprocess.Popen, url: str, casework: Path, caller: dict, tenancy: str) -> dict:
    """Hold the case database's write lock, send an officer's note (its handler waits on the lock: up to 30 s, the
    store's busy timeout), then SIGTERM to `arrears serve` (the process `bentoml serve` runs as): how long until
    neither it nor any process it started is left."""
    holder = sqlite3.connect(casework, timeout=1, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    stuck: dict = {}

    def send() -> None:
        try:
            stuck["status"] = httpx.post(f"{url}/case_action", json={"tenancy_id": tenancy, "kind": "note",
                                                                     "note": "stuck"}, headers=caller,
                                         timeout=60).status_code
        except httpx.HTTPError as exc:
            stuck["error"] = type(exc).__name__

    request = threading.Thread(target=send, daemon=True)
    try:
        request.start()
        time.sleep(2.0)  # the request is in its handler, waiting on the lock
        in_flight = request.is_alive()
        # `bentoml serve`'s arbiter starts each worker in a session of its own: its descendants, not its group
        family = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
        group = [p.pid for p in family]
        started = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        alive = group
        while alive and time.monotonic() - started < 30:
            time.sleep(0.1)
            server.poll()
            alive = _alive(family)
        gone_after = time.monotonic() - started
        request.join(timeout=5)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    return {"in_flight": in_flight, "group": group, "left": alive, "seconds": gone_after, "stuck": stuck}


def test_nested_bodies_up_to_100000_deep_are_answered_4xx_in_under_a_second(answers) -> None:
    assert answers["plain"] == 200
    nested = answers["nested"]
    assert len(nested) == len(DEPTHS) * 2 * len(ENDPOINTS) * 3
    wrong = [n for n in nested if not 400 <= n[4] < 500]
    assert not wrong, wrong
    slow = [n[:6] for n in nested if n[5] >= 1.0]
    assert not slow, slow
    with_token = {n[4] for n in nested if n[3] == "token"}
    assert with_token == {400}, with_token  # judged for its depth, not refused for its caller


def test_odd_content_types_and_headers_are_answered_4xx_in_under_a_second(answers) -> None:
    """A deep body is refused whatever comes with it; a small valid one is refused 415 for a type that is not JSON
    and may be served with odd headers (an unusable token is a 401)."""
    odd = answers["odd"]
    assert len(odd) == 2 * (len(CONTENT_TYPES) + len(ODD_HEADERS))
    deep = [o for o in odd if o[0].endswith("deep")]
    assert len(deep) == len(odd) / 2 and all(400 <= o[1] < 500 for o in deep), deep
    not_json = [o for o in odd if o[0].endswith("flat") and o[0].startswith("content-type")
                and "application/json" not in o[0]]
    assert not_json and {o[1] for o in not_json} == {415}, not_json
    wrong = [o for o in odd if not (400 <= o[1] < 500 or o[1] == 200)]
    assert not wrong, wrong
    tokens = {o[0]: o[1] for o in odd if o[0].startswith("header Authorization") and o[0].endswith("flat")}
    assert set(tokens.values()) == {401}, tokens
    slow = [o for o in odd if o[2] >= 1.0]
    assert not slow, slow


def test_a_fault_is_a_500_with_a_json_body_naming_the_request_and_nothing_else(answers) -> None:
    fault = answers["fault"]
    assert fault["before"] == 200
    for name in ("endpoint", "case", "door"):
        answer = fault[name]
        assert answer["status"] == 500, (name, answer)
        assert answer["type"] == "application/json"
        body = json.loads(answer["text"])
        assert set(body) == {"error", "request_id"} and body["request_id"] == answer["header"]
        assert "Try again" in body["error"] and body["request_id"] in body["error"]
        assert "sqlite" not in answer["text"].lower() and "database" not in answer["text"].lower()
    assert fault["endpoint"]["header"] == "fault-0001"  # the caller's id, as the door logs it
    assert "fault-0001" in answers["log"]  # the log holds what went wrong under that id


def test_sigterm_with_a_request_stuck_in_flight_ends_every_process_of_the_service_within_10_seconds(answers) -> None:
    stop = answers["stop"]
    assert stop["in_flight"], stop  # really stuck: no answer 2 s after it was sent
    assert len(stop["group"]) >= 2, stop  # bentoml serve's arbiter and its worker
    assert not stop["left"], stop
    assert stop["seconds"] < 10, stop
