"""The unit tier uses no servers: a test here that opens a network connection fails, saying where it belongs."""

from __future__ import annotations

import socket

import pytest

MESSAGE = "unit tests use no servers: a test that needs PostgreSQL, Redis or HTTP belongs in another tier"


@pytest.fixture(autouse=True)
def no_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self, address, *args, **kwargs):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise RuntimeError(f"{MESSAGE} (connection to {address})")
        return real_connect(self, address, *args, **kwargs)

    def refuse_postgres(*args, **kwargs):
        raise RuntimeError(f"{MESSAGE} (psycopg.connect)")

    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr("psycopg.connect", refuse_postgres)
