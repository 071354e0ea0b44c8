"""The outbox read by sequence, on both case-store backends: messages released in the same second as a consumer
reads, over many rounds, are each read exactly once by a consumer that keeps the last sequence number it read (a
read by release time, `released_at > since`, lost the ones released in the second it read)."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from casework import drafts
from casework.audit import AuditLog
from casework.store import open_casework
from tests.support.homes import isolated_home
from tests.support.postgres import create_schema, drop_schema

FACTS = drafts.DraftFacts(
    tenancy_id="T0", as_of="2026-10-31", readiness_state="ready", protocol_step="contact", policy_version="p",
    run_id="r1", balance=400.0, arrears_weeks=4.0)
OK = drafts.ReleaseCheck(received_since_draft=0.0, readiness_state="ready", state_reasons=(), contacts_recent=0,
                         contact_limit=3)
MESSAGES = 60


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request, tmp_path):
    """A case store on the given backend with MESSAGES approved drafts, one per tenancy, waiting for release."""
    url, schema = create_schema("outbox") if request.param == "postgres" else (None, None)
    with isolated_home(tmp_path / "home", **({"ARREARS_CASEWORK_URL": url} if url else {})):
        from casework.settings import get_settings

        with open_casework(get_settings()) as db:
            log = AuditLog(db)
            for i in range(MESSAGES):
                written = drafts.generate(db, log, replace(FACTS, tenancy_id=f"T{i:04d}"), "sms", "en", "o", "officer")
                drafts.approve(db, log, written["draft_id"], "s", "supervisor")
        yield get_settings()
    drop_schema(schema)


def test_a_consumer_reading_by_sequence_while_drafts_are_released_reads_each_exactly_once(settings) -> None:
    with open_casework(settings) as db:
        waiting = drafts.drafts(db, statuses=("approved",))["draft_id"].tolist()
    read: list[str] = []
    done = threading.Event()

    def release_all() -> None:  # its own connection, as a second service worker would have
        with open_casework(settings) as db:
            log = AuditLog(db)
            for draft_id in waiting:
                drafts.release(db, log, draft_id, "s", "supervisor", OK)
        done.set()

    def consume() -> None:  # polls as fast as it can, a few at a time, keeping the last sequence it read
        last = 0
        with open_casework(settings) as db:
            while True:
                finished = done.is_set()
                page = drafts.outbox(db, last, limit=3)
                read.extend(page["draft_id"])
                last = int(page["seq"].iloc[-1]) if len(page) else last
                if finished and page.empty:
                    return

    threads = [threading.Thread(target=release_all), threading.Thread(target=consume)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    with open_casework(settings) as db:
        kept = drafts.outbox(db)
    assert sorted(read) == sorted(waiting) and len(set(read)) == len(read)  # every message, once
    assert kept["seq"].tolist() == list(range(1, MESSAGES + 1))  # numbered without gaps, in release order
    assert kept["released_at"].nunique() < MESSAGES  # several released in one second: a read by time loses them
