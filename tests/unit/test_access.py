"""Principals and their tokens (serving.access.principals), on an SQLite serving database of a temporary home."""

from __future__ import annotations

import pytest

from serving.access.declared import declared, may_use
from serving.access.principals import Forbidden, Principal, open_principals, token_hash
from serving.api import service  # noqa: F401 - its endpoints declare their roles
from serving.settings import get_settings
from tests.support.homes import isolated_home


@pytest.fixture
def settings(tmp_path):
    with isolated_home(tmp_path / "home"):
        settings = get_settings()
        settings.home.mkdir(parents=True, exist_ok=True)
        yield settings


def test_a_token_authenticates_its_principal_until_revoked_and_only_its_hash_is_kept(settings) -> None:
    with open_principals(settings) as store:
        token = store.add("A. Officer", "officer", ["North-1", "North-2", "North-1"])
        assert store.authenticate(token) == Principal("A. Officer", "officer", ("North-1", "North-2"))
        assert store.authenticate(token + "x") is None and store.authenticate("") is None
        kept = store.db.query("SELECT * FROM principals")
        assert token not in kept.to_string() and kept["token_hash"].iloc[0] == token_hash(token)
        with pytest.raises(ValueError, match="revoke"):
            store.add("A. Officer", "officer", ["East-1"])
        assert store.revoke("A. Officer") == 1 and store.authenticate(token) is None
        assert store.revoke("A. Officer") == 0
        again = store.add("A. Officer", "supervisor", ["East-1", "East-2"])  # a new token after revoking
        assert store.authenticate(again).patches == ("East-1", "East-2")


@pytest.mark.parametrize(("role", "patches", "message"), [
    ("officer", [], "at least one"), ("treasury", ["North-1"], "officers and supervisors"),
    ("superuser", [], "Unknown role"), ("admin", [], None)])
def test_roles_and_patches_are_checked_when_added(settings, role, patches, message) -> None:
    with open_principals(settings) as store:
        if message is None:
            assert store.add("someone", role, patches).startswith("arr_")
        else:
            with pytest.raises(ValueError, match=message):
                store.add("someone", role, patches)


def test_a_principal_sees_only_its_patches_and_endpoints() -> None:
    officer = Principal("o", "officer", ("North-1",))
    assert officer.patch_scope(None) == ("North-1",) and officer.patch_scope("North-1") == ("North-1",)
    with pytest.raises(Forbidden, match="North-1"):
        officer.patch_scope("South-1")
    assert Principal("t", "treasury").patch_scope("South-1") == ("South-1",)
    assert Principal("a", "admin").patch_scope(None) is None
    endpoints = declared("endpoint")
    mine = {p for p in endpoints if may_use(officer, p)}
    assert mine == {"/score", "/worklist", "/worklist_changes", "/case_file", "/case_action", "/draft", "/my_cases"}
    supervisor = Principal("s", "supervisor", ("North-1", "North-2"))
    assert {p for p in endpoints if may_use(supervisor, p)} - mine \
        == {"/case_reassign", "/approval_queue", "/draft_decision", "/draft_release"}  # a second person decides
    assert [r for r in ("officer", "supervisor", "treasury", "data_scientist") if may_use(Principal("x", r),
                                                                                          "/outbox")] == []
    sender = Principal("mail-house", "sender")  # the sending system: the outbox and receipts, nothing else
    assert {p for p in endpoints if may_use(sender, p)} == {"/outbox", "/delivery_receipt"}
    assert not may_use(Principal("t", "treasury"), "/score") and may_use(Principal("a", "admin"), "/score")
    assert not may_use(Principal("a", "admin"), "/not_declared")  # closed by default, whoever asks
