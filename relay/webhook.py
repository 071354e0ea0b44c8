"""Webhooks: a message POSTed as JSON, signed with HMAC-SHA256 over `timestamp + "." + body` with the destination's
secret. A receiver checks it with `verify` (docs/delivery.md gives it to integrators), which refuses a body changed
on the way, a wrong secret, and a timestamp outside the replay window (stale or from the future)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping

import httpx

SIGNATURE = "X-Arrears-Signature"
TIMESTAMP = "X-Arrears-Timestamp"
MESSAGE_ID = "X-Arrears-Message-Id"
#: Seconds a signed request stays acceptable (either side of the receiver's clock).
REPLAY_WINDOW = 300


class SignatureRefused(ValueError):
    """The request is not one the sender signed now: the message says why. Answer 401 and drop it."""


class DeliveryFailed(RuntimeError):
    """The destination did not confirm the message (no answer, or not 2xx)."""


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signed_headers(secret: bytes, body: bytes, message_id: str, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    return {"Content-Type": "application/json", TIMESTAMP: timestamp, SIGNATURE: signature(secret, timestamp, body),
            MESSAGE_ID: message_id}


def verify(secret: bytes | str, headers: Mapping[str, str], body: bytes, now: float | None = None,
           window: int = REPLAY_WINDOW) -> dict:
    """The message in a webhook request, if it carries the sender's signature over this body and a timestamp within
    `window` seconds of `now`; else `SignatureRefused`. `headers` may be any mapping (names compared without case)."""
    secret = secret.encode() if isinstance(secret, str) else secret
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    timestamp, given = lower.get(TIMESTAMP.lower()), lower.get(SIGNATURE.lower())
    if not timestamp or not given:
        raise SignatureRefused(f"missing {TIMESTAMP} or {SIGNATURE}")
    try:
        sent = int(timestamp)
    except ValueError as exc:
        raise SignatureRefused("the timestamp is not a whole number of seconds") from exc
    if not hmac.compare_digest(signature(secret, timestamp, body), given):
        raise SignatureRefused("the signature does not match the body")
    if abs((time.time() if now is None else now) - sent) > window:
        raise SignatureRefused(f"the timestamp is more than {window} s from now (a replay, or a wrong clock)")
    return json.loads(body)


def post(url: str, secret: bytes, body: bytes, message_id: str, timeout: float) -> None:
    """POST one signed message; returns when the receiver answered 2xx, else `DeliveryFailed`."""
    try:
        answer = httpx.post(url, content=body, headers=signed_headers(secret, body, message_id), timeout=timeout)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
    if not 200 <= answer.status_code < 300:
        raise DeliveryFailed(f"HTTP {answer.status_code}")
