"""Static tokens that end (serving.access.principals): expiry, rotation with an overlap, the last use written at
most once a minute, and a database made before any of it still working, on SQLite and on the real Postgres. Time
is passed in (`now=`), never waited for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from features.db import Database, open_store
from serving.access.principals import NotAuthenticated, PrincipalStore, TokenExpired, token_hash
from tests.support.postgres import create_schema, drop_schema

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'serving.sqlite'}"
        return
    made, schema = create_schema("principals")
    yield made
    drop_schema(schema)


def _row(store: PrincipalStore, token: str) -> dict:
    return store.db.query("SELECT * FROM principals WHERE token_hash = ?", [token_hash(token)]).iloc[0].to_dict()


def test_a_token_works_until_it_expires_then_is_refused_saying_so(url) -> None:
    with open_store(url, PrincipalStore) as store:
        sender = store.add("Mail house", "sender", expires_in_days=30, now=T0)
        default = store.add("Scheduler", "admin", now=T0)
        assert store.verify(sender, now=T0 + timedelta(days=29, hours=23)).name == "Mail house"
        with pytest.raises(TokenExpired, match=r"expired at 2026-04-01 09:00 UTC.*arrears users rotate Mail house"):
            store.verify(sender, now=T0 + timedelta(days=30))
        assert store.authenticate(sender, now=T0 + timedelta(days=31)) is None
        with pytest.raises(NotAuthenticated, match="not known or was revoked") as unknown:
            store.verify("arr_not-a-token", now=T0)
        listed = store.active(now=T0 + timedelta(days=31))
        kept = store.db.query("SELECT * FROM principals")
    assert not isinstance(unknown.value, TokenExpired)
    assert _expiry(kept, "Scheduler") == "2026-05-31T09:00:00+00:00"  # 90 days by default
    assert listed["name"].tolist() == ["Scheduler"]  # an expired token is not active
    assert sender not in kept.to_json() and default not in kept.to_json()  # only hashes are kept


def _expiry(kept: pd.DataFrame, name: str) -> str:
    return str(kept.loc[kept["name"] == name, "expires_at"].iloc[0])


def test_the_last_use_is_written_at_most_once_a_minute(url) -> None:
    with open_store(url, PrincipalStore) as store:
        token = store.add("Scheduler", "admin", now=T0)
        assert _row(store, token)["last_used_at"] is None
        seen = []
        for seconds in (5, 30, 64, 65, 130):
            store.verify(token, now=T0 + timedelta(seconds=seconds))
            seen.append(_row(store, token)["last_used_at"])
        listed = store.active(now=T0 + timedelta(seconds=130))
    # 64 s: 59 s after the use recorded, not written; 65 s: a minute after it, written
    assert seen == ["2026-03-02T09:00:05+00:00"] * 3 + ["2026-03-02T09:01:05+00:00", "2026-03-02T09:02:10+00:00"]
    assert listed["last_used_at"].tolist() == ["2026-03-02T09:02:10+00:00"]


def test_a_rotated_token_works_for_the_overlap_beside_the_new_one_then_stops(url) -> None:
    with open_store(url, PrincipalStore) as store:
        old = store.add("A. Officer", "officer", ["North-1", "North-2"], now=T0)
        store.verify(old, now=T0 + timedelta(hours=1))
        new, until = store.rotate("A. Officer", overlap_hours=24, now=T0 + timedelta(days=10))
        during = store.active(now=T0 + timedelta(days=10, hours=1))
        both = [store.verify(t, now=T0 + timedelta(days=10, hours=23)) for t in (old, new)]
        with pytest.raises(TokenExpired):
            store.verify(old, now=T0 + timedelta(days=11))
        after = store.verify(new, now=T0 + timedelta(days=99, hours=23))
        with pytest.raises(ValueError, match="already has an active token"):
            store.add("A. Officer", "officer", ["North-1"], now=T0 + timedelta(days=10))
    assert until == "2026-03-13T09:00:00+00:00"
    assert len(during) == 1 and during["old_until"].iloc[0] == until  # one principal, its old token's end shown
    assert during["expires_at"].iloc[0] == "2026-06-10T09:00:00+00:00"  # the new token: 90 days from rotation
    assert during["last_used_at"].iloc[0] == "2026-03-02T10:00:00+00:00"  # the old token's use
    assert {(p.name, p.role, p.patches) for p in [*both, after]} == {("A. Officer", "officer", ("North-1", "North-2"))}


def test_rotating_with_no_overlap_stops_the_old_token_now_and_an_expired_token_can_be_rotated(url) -> None:
    with open_store(url, PrincipalStore) as store:
        leaked = store.add("Mail house", "sender", now=T0)
        fresh, until = store.rotate("Mail house", overlap_hours=0, now=T0 + timedelta(days=1))
        with pytest.raises(NotAuthenticated, match="revoked"):
            store.verify(leaked, now=T0 + timedelta(days=1))
        expired = store.add("Scheduler", "admin", expires_in_days=1, now=T0)
        renewed, ends = store.rotate("Scheduler", now=T0 + timedelta(days=5))
        with pytest.raises(TokenExpired):  # the overlap never brings an expired token back
            store.verify(expired, now=T0 + timedelta(days=5))
        assert store.verify(renewed, now=T0 + timedelta(days=5)).role == "admin"
        assert store.verify(fresh, now=T0 + timedelta(days=1)).role == "sender"
        assert store.revoke("Scheduler") == 2
        with pytest.raises(LookupError, match="no token to rotate"):
            store.rotate("Scheduler", now=T0 + timedelta(days=5))
    assert until is None and ends == "2026-03-08T09:00:00+00:00"


def test_revoking_during_an_overlap_stops_both_tokens(url) -> None:
    with open_store(url, PrincipalStore) as store:
        old = store.add("Mail house", "sender", now=T0)
        new, _ = store.rotate("Mail house", now=T0)
        assert store.revoke("Mail house") == 2
        refused = [store.authenticate(t, now=T0) for t in (old, new)]
        assert store.active(now=T0).empty and not store.has_admin(now=T0)
    assert refused == [None, None]


def test_a_database_made_before_tokens_expired_keeps_working(url) -> None:
    """The table as an earlier version made it (no expiry, last use or rotation): opening it adds the columns, its
    tokens keep working and never expire until rotated, and rotation gives them an expiry."""
    legacy = "arr_" + "x" * 43
    with Database(url) as db:
        db.execute("CREATE TABLE principals (token_hash TEXT, name TEXT, role TEXT, patches TEXT, created_at TEXT, "
                   "revoked_at TEXT, PRIMARY KEY (token_hash))")
        db.insert("principals", {"token_hash": token_hash(legacy), "name": "Old admin", "role": "admin",
                                 "patches": None, "created_at": "2024-01-01T00:00:00+00:00", "revoked_at": None})
    with open_store(url, PrincipalStore) as store:
        columns = store.db.columns_of("principals")
        works = store.verify(legacy, now=T0 + timedelta(days=3650))
        listed = store.active(now=T0)
        assert store.has_admin(now=T0)
        new, until = store.rotate("Old admin", overlap_hours=1, now=T0)
        with pytest.raises(TokenExpired):
            store.verify(legacy, now=T0 + timedelta(hours=1))
        assert store.verify(new, now=T0 + timedelta(hours=1)).name == "Old admin"
    assert {"expires_at", "last_used_at", "rotated_at"} <= set(columns)
    assert works.name == "Old admin" and listed["expires_at"].isna().all()
    assert until == "2026-03-02T10:00:00+00:00"
