"""The relay against a real webhook receiver (an HTTP server in a thread, checking signatures with the helper
integrators are given), a real RabbitMQ (127.0.0.1:5672, a fresh exchange and queue per test, deleted after) and a
real case store: a relay SIGKILLed at each crash point and started again loses nothing (each message arrives at
least once, exactly once to a consumer dropping repeats by id, in sequence order); failing receivers are retried
with growing waits, then dead-lettered and alerted; a tampered, stale or future signature is refused; a running
relay serves its metrics and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pika
import pytest
import yaml

from casework import drafts
from casework.audit import AuditLog
from casework.store import open_casework
from features.crash import VARIABLE
from relay import webhook
from relay.deliver import run
from relay.observe import LAGGING, alerts_firing, delivery_stats
from relay.settings import get_settings
from relay.store import DEAD_LETTERING, alerts, dead_letters, open_relay_store
from serving.api.process import free_port, stop_group
from serving.web import pages
from tests.support.homes import isolated_home

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
SECRET = "s3cret-for-tests"
FACTS = drafts.DraftFacts(
    tenancy_id="T0", as_of="2026-10-31", readiness_state="ready", protocol_step="contact", policy_version="p",
    run_id="r1", balance=400.0, arrears_weeks=4.0)
OK = drafts.ReleaseCheck(received_since_draft=0.0, readiness_state="ready", state_reasons=(), contacts_recent=0,
                         contact_limit=3)
ROOT = Path(__file__).resolve().parents[2]


class Receiver:
    """A webhook receiver: verifies each request with `relay.webhook.verify`, answers 500 to the first `fail_first`
    attempts of each message (or every attempt, `always_fail`), records every attempt."""

    def __init__(self, fail_first: int = 0, always_fail: bool = False) -> None:
        self.fail_first, self.always_fail = fail_first, always_fail
        self.attempts: list[tuple[float, str, int]] = []  # (monotonic time, message id, status answered)
        self.accepted: list[dict] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(receiver.answer(dict(self.headers.items()), body))
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        return Handler

    def answer(self, headers: dict, body: bytes) -> int:
        try:
            message = webhook.verify(SECRET, headers, body)
        except webhook.SignatureRefused:
            return 401
        with self.lock:
            tried = sum(1 for _, mid, _ in self.attempts if mid == message["message_id"])
            status = 500 if self.always_fail or tried < self.fail_first else 200
            self.attempts.append((time.monotonic(), message["message_id"], status))
            if status == 200:
                self.accepted.append(message)
        return status


@pytest.fixture
def receiver(request):
    made = Receiver(**getattr(request, "param", {}))
    made.thread.start()
    yield made
    made.server.shutdown()
    made.server.server_close()


@pytest.fixture
def broker():
    """A fresh durable exchange and queue, deleted after the test."""
    name = f"relay-test-{uuid.uuid4().hex[:8]}"
    yield {"exchange": name, "queue": name, "routing_key": "contact.released"}
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        channel = connection.channel()
        channel.queue_delete(name)
        channel.exchange_delete(name)


@pytest.fixture
def home(tmp_path, receiver, broker):
    """A case store and a destinations file naming the receiver and the broker's queue."""
    destinations = {"destinations": [
        {"name": "hook", "kind": "webhook", "url": receiver.url, "secret_env": "ARREARS_TEST_RELAY_SECRET"},
        {"name": "broker", "kind": "amqp", "url": AMQP, **broker}]}
    (tmp_path / "relay.yaml").write_text(yaml.safe_dump(destinations))
    with isolated_home(tmp_path / "home", ARREARS_RELAY_DESTINATIONS=str(tmp_path / "relay.yaml"),
                       ARREARS_TEST_RELAY_SECRET=SECRET, ARREARS_RELAY_BACKOFF_SECONDS="0.1",
                       ARREARS_RELAY_POLL_SECONDS="0.2", ARREARS_RELAY_BATCH="3") as patch:
        yield patch


def release(count: int) -> list[str]:
    """Release `count` messages (one per new tenancy) to the outbox; their ids, in sequence order."""
    with open_casework(get_settings()) as db:
        log, done = AuditLog(db), []
        start = len(drafts.outbox(db))
        for i in range(start, start + count):
            written = drafts.generate(db, log, replace(FACTS, tenancy_id=f"T{i:04d}"), "sms", "en", "o", "officer")
            drafts.approve(db, log, written["draft_id"], "s", "supervisor")
            drafts.release(db, log, written["draft_id"], "s", "supervisor", OK)
            done.append(written["draft_id"])
    return done


def consume(queue: str) -> list[tuple[str, dict, pika.BasicProperties]]:
    """Everything waiting in the queue: (message_id property, body, properties), acknowledged."""
    got = []
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        channel = connection.channel()
        while (taken := channel.basic_get(queue, auto_ack=True))[0] is not None:
            got.append((taken[1].message_id, json.loads(taken[2]), taken[1]))
    return got


def relay_process(*args: str, crash_at: str | None = None, **variables: str) -> subprocess.Popen:
    env = {**os.environ, **variables, **({VARIABLE: crash_at} if crash_at else {})}
    env.pop(VARIABLE, None) if not crash_at else None
    return subprocess.Popen([sys.executable, "-m", "relay", *args], env=env, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(process: subprocess.Popen, timeout: float = 60) -> tuple[int, str]:
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        stop_group(process)
    return process.returncode, output


def first_seen(ids: list[str]) -> list[str]:
    """A consumer dropping repeats by message id: what it acts on, in arrival order."""
    seen: dict[str, None] = {}
    for message_id in ids:
        seen.setdefault(message_id, None)
    return list(seen)


def cursor_of(destination: str) -> int:
    with open_relay_store(get_settings()) as db:
        found = delivery_stats(db).set_index("destination")
    return int(found.loc[destination, "cursor"]) if destination in found.index else 0


@pytest.mark.parametrize("point", ["before-publish", "published", "mid-batch"])
def test_a_killed_relay_resumes_and_loses_nothing(home, receiver, broker, point) -> None:
    released = []
    for destination in ("hook", "broker"):  # killed at the point on the second message of a page of three
        released += release(7)
        crash_at = f"relay:{point}:{destination}:{cursor_of(destination) + 2}"
        code, output = finished(relay_process("--once", crash_at=crash_at))
        assert code == -signal.SIGKILL, f"{crash_at} was not reached:\n{output}"
    code, output = finished(relay_process("--once"))
    assert code == 0, output
    hooked = [m["message_id"] for m in receiver.accepted]
    queued = consume(broker["queue"])
    for ids in (hooked, [message_id for message_id, _, _ in queued]):
        assert set(ids) == set(released)  # each at least once
        assert first_seen(ids) == released  # exactly once after dropping repeats, in sequence order
    if point == "published":  # confirmed but not recorded: sent again, and dropped by id
        assert len(hooked) > len(released)
    assert all(p.delivery_mode == 2 and p.message_id == body["message_id"] for _, body, p in queued)
    with open_relay_store(get_settings()) as db:
        stats = delivery_stats(db).set_index("destination")
    assert stats.loc["hook", "cursor"] == stats.loc["broker", "cursor"] == 14
    assert stats["depth"].tolist() == [0, 0] and not alerts_firing(stats.reset_index(), get_settings())


@pytest.mark.parametrize("receiver", [{"fail_first": 3}], indirect=True)
def test_a_failing_receiver_is_retried_with_growing_waits(home, receiver, broker) -> None:
    home.setenv("ARREARS_RELAY_MAX_ATTEMPTS", "5")  # before any settings are read (they are read once)
    (message_id,) = release(1)
    run(get_settings(), once=True)
    tries = [(at, status) for at, mid, status in receiver.attempts if mid == message_id]
    assert [status for _, status in tries] == [500, 500, 500, 200]
    waits = [later[0] - earlier[0] for earlier, later in zip(tries, tries[1:], strict=False)]
    assert waits[0] >= 0.05 and waits[0] < waits[2] and waits[1] < waits[2] * 1.05, waits  # 0.05-0.1, 0.1-0.2, …
    assert [m["message_id"] for m in receiver.accepted] == [message_id]
    with open_relay_store(get_settings()) as db:
        hook = delivery_stats(db).set_index("destination").loc["hook"]
    assert (hook["delivered"], hook["failed"], hook["dead_letters"], hook["depth"]) == (1, 3, 0, 0)


@pytest.mark.parametrize("receiver", [{"always_fail": True}], indirect=True)
def test_an_always_failing_receiver_dead_letters_and_alerts_and_the_relay_moves_on(home, receiver, broker) -> None:
    home.setenv("ARREARS_RELAY_MAX_ATTEMPTS", "3")
    released = release(2)
    run(get_settings(), once=True)
    assert len(receiver.attempts) == 6 and not receiver.accepted
    assert [mid for mid, _, _ in consume(broker["queue"])] == released  # the broker is not held back
    with open_relay_store(get_settings()) as db:
        dead, raised, stats = dead_letters(db, "hook"), alerts(db), delivery_stats(db)
    assert dead["draft_id"].tolist() == released and dead["attempts"].tolist() == [3, 3]
    assert raised["kind"].tolist() == [DEAD_LETTERING] * 2 and set(raised["destination"]) == {"hook"}
    assert (DEAD_LETTERING, "hook") in [(a, d) for a, d, _ in alerts_firing(stats, get_settings())]
    assert stats.set_index("destination").loc["hook", "cursor"] == 2  # moved on past them
    shown = pages.delivery(get_settings())  # the models page's view for operators
    assert ("hook", 2) in {(d["destination"], d["dead_letters"]) for d in shown["destinations"]}
    assert (DEAD_LETTERING, "hook") in [(a, d) for a, d, _ in shown["alerts"]]


def test_the_receiver_helper_refuses_tampered_stale_and_future_requests() -> None:
    body, now = b'{"message_id":"d1","seq":1}', 1_800_000_000
    headers = webhook.signed_headers(SECRET.encode(), body, "d1", now=now)
    assert webhook.verify(SECRET, headers, body, now=now + 299)["message_id"] == "d1"
    refused = {"tampered": (SECRET, headers, body.replace(b"d1", b"d2"), now),
               "wrong secret": ("other", headers, body, now),
               "stale": (SECRET, headers, body, now + 301), "future": (SECRET, headers, body, now - 301),
               "unsigned": (SECRET, {"X-Arrears-Timestamp": str(now)}, body, now)}
    for why, (secret, given, sent, at) in refused.items():
        with pytest.raises(webhook.SignatureRefused):
            webhook.verify(secret, given, sent, now=at)
            pytest.fail(f"{why} was accepted")


def test_a_running_relay_delivers_new_messages_serves_metrics_and_stops_on_sigterm(home, receiver, broker) -> None:
    port = free_port()
    process = relay_process(ARREARS_RELAY_METRICS_PORT=str(port))
    try:
        released = release(4)
        deadline = time.monotonic() + 60
        while len(receiver.accepted) < 4 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        code, output = finished(process, timeout=20)
    assert code == 0, output  # a clean stop on SIGTERM
    assert [m["message_id"] for m in receiver.accepted] == released
    assert 'arrears_relay_delivered_total{destination="hook",kind="webhook"} 4.0' in metrics
    assert 'arrears_relay_outbox_depth{destination="hook",kind="webhook"} 0.0' in metrics
    with open_relay_store(get_settings()) as db:
        stats = delivery_stats(db)
    release(1)  # nothing running now: it waits, and ages
    with open_relay_store(get_settings()) as db:
        waiting = delivery_stats(db)
    assert waiting["depth"].tolist() == [1, 1] and stats["depth"].tolist() == [0, 0]
    late = waiting.assign(oldest_undelivered_seconds=get_settings().relay_lag_alert_seconds + 1)
    assert {(a, d) for a, d, _ in alerts_firing(late, get_settings())} == {(LAGGING, "hook"), (LAGGING, "broker")}
