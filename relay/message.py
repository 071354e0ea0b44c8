"""The message a destination receives for an outbox row: JSON, the same body for every destination (the JSON
Schema is in docs/delivery.md)."""

from __future__ import annotations

import json

#: The message format's version, in every message (`schema`).
SCHEMA = "arrears.contact/1"
FIELDS = ("tenancy_id", "channel", "language", "text", "released_at", "released_by")


def message_of(row: dict) -> dict:
    """An outbox row as a message: its stable id is the draft's id (a consumer drops a repeat by it)."""
    return {"schema": SCHEMA, "message_id": str(row["draft_id"]), "seq": int(row["seq"]),
            **{name: (None if row.get(name) is None else str(row[name])) for name in FIELDS}}


def body_of(message: dict) -> bytes:
    """The bytes sent (and signed): compact JSON, keys sorted, UTF-8."""
    return json.dumps(message, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
