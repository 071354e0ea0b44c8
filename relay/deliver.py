"""The relay's loop: per destination (a thread each, so a failing webhook never holds back the broker), read the
outbox after the destination's cursor in sequence order, send each message until the destination confirms it, and
only then move the cursor to it. A message a destination keeps refusing is retried with exponential backoff and
jitter, then dead-lettered (recorded, alerted) and passed. A relay killed at any point resumes at the cursor: the
message it was sending may arrive twice (at least once), none is skipped.

Crash points (`features.crash`, for tests/e2e/test_relay.py), each named with the destination and the message's
sequence number: `relay:before-publish:<destination>:<seq>`, `relay:published:<destination>:<seq>` (the destination
confirmed, the cursor not yet moved) and `relay:mid-batch:<destination>:<seq>` (the cursor moved, more of the page
to send)."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable

from casework import drafts
from features.crash import crash_point
from features.db import Database
from features.logs import line_logger
from relay import store, webhook
from relay.amqp import Publisher
from relay.destinations import Destination, load_destinations
from relay.message import body_of, message_of
from relay.settings import RelaySettings
from relay.webhook import DeliveryFailed

Send = Callable[[bytes, dict], None]

def _say(**fields) -> None:
    """One JSON log line (ids, sequence numbers and counts: never a tenant's details)."""
    line_logger("arrears.relay").info(json.dumps(fields))


def backoff(attempt: int, settings: RelaySettings, rng: random.Random) -> float:
    """The wait after failed attempt `attempt` (1, 2, …): base × 2^(attempt-1), capped, with "equal jitter" (between
    half and all of it), so waits grow while relays retrying together spread out."""
    ceiling = min(settings.relay_backoff_max_seconds, settings.relay_backoff_seconds * 2 ** (attempt - 1))
    return ceiling / 2 + rng.random() * ceiling / 2


class Courier:
    """Delivers the outbox to one destination."""

    def __init__(self, destination: Destination, settings: RelaySettings, stop: threading.Event,
                 rng: random.Random | None = None) -> None:
        self.destination, self.settings, self.stop = destination, settings, stop
        self.rng = rng or random.Random()
        self._publisher: Publisher | None = None
        self.send: Send = self._sender()

    def _sender(self) -> Send:
        d, timeout = self.destination, self.settings.relay_timeout_seconds
        if d.kind == "amqp":
            self._publisher = Publisher(d, timeout)
            return self._publisher.publish
        secret = d.secret()
        return lambda body, message: webhook.post(d.url, secret, body, message["message_id"], timeout)

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()

    def deliver_waiting(self, db: Database) -> int:
        """Send every message after the cursor; returns how many were confirmed (stops early when told to stop)."""
        name, sent = self.destination.name, 0
        last = store.cursor(db, name, self.destination.kind)
        while not self.stop.is_set():
            page = drafts.outbox(db, last, self.settings.relay_batch).to_dict("records")
            if not page:
                break
            for position, row in enumerate(page):
                message = message_of(row)
                if not self.deliver_one(db, message):
                    return sent
                sent, last = sent + 1, message["seq"]
                if position < len(page) - 1:
                    crash_point(f"relay:mid-batch:{name}:{last}")
        return sent

    def deliver_one(self, db: Database, message: dict) -> bool:
        """Send `message` until confirmed or dead-lettered (True), or until told to stop (False)."""
        name, seq, body = self.destination.name, message["seq"], body_of(message)
        for attempt in range(1, self.settings.relay_max_attempts + 1):
            crash_point(f"relay:before-publish:{name}:{seq}")
            try:
                self.send(body, message)
            except DeliveryFailed as exc:
                store.failed(db, name)
                _say(event="failed", destination=name, message_id=message["message_id"], seq=seq, attempt=attempt,
                     error=str(exc)[:200])
                if attempt == self.settings.relay_max_attempts:
                    store.dead_letter(db, name, message, attempt, str(exc))
                    _say(event="dead_letter", destination=name, message_id=message["message_id"], seq=seq)
                    return True
                if self.stop.wait(backoff(attempt, self.settings, self.rng)):
                    return False
                continue
            crash_point(f"relay:published:{name}:{seq}")
            store.delivered(db, name, seq)
            _say(event="delivered", destination=name, message_id=message["message_id"], seq=seq, attempt=attempt)
            return True
        return True


def _courier_loop(courier: Courier, once: bool, failures: list[BaseException]) -> None:
    try:
        with store.open_relay_store(courier.settings) as db:
            while not courier.stop.is_set():
                courier.deliver_waiting(db)
                if once or courier.stop.wait(courier.settings.relay_poll_seconds):
                    break
    except BaseException as exc:  # noqa: BLE001 - reported by run(), after the other destinations stop
        failures.append(exc)
        courier.stop.set()
    finally:
        courier.close()


def run(settings: RelaySettings, once: bool = False, stop: threading.Event | None = None) -> None:
    """Deliver the outbox to every destination in the destinations file: what is waiting, then exit (`once`), or
    until `stop` is set (SIGTERM, in `arrears relay`). A destination's failure to be reached is retried; an error of
    the relay itself (the case store unreachable) stops every destination and is raised."""
    stop = stop or threading.Event()
    with store.open_relay_store(settings):  # the relay's tables, made once before the threads share the store
        pass
    couriers = [Courier(d, settings, stop) for d in load_destinations(settings.destinations_file)]
    failures: list[BaseException] = []
    threads = [threading.Thread(target=_courier_loop, args=(c, once, failures), name=f"relay-{c.destination.name}",
                                daemon=True) for c in couriers]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.5)
    if failures:
        raise failures[0]
