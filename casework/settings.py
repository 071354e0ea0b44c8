"""Casework's settings: where the case store (cases, owners, actions, drafts, approvals, the outbox and the audit
trail) lives. Its own database, so the service's case writes never wait on an ingest: an SQLite file under home by
default, the `casework` schema of the ledger's Postgres database in the production profile."""

from __future__ import annotations

from datetime import date
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from pydantic import Field

from features.db import is_postgres
from features.settings import FeatureSettings, load_settings

#: The Postgres schema the case store keeps its tables in (production profile).
SCHEMA = "casework"


class CaseworkSettings(FeatureSettings):
    casework_url: str | None = Field(
        default=None, description="Case store database. Default: the `casework` schema of the ledger's Postgres "
        "database in the production profile, else an SQLite file under home.")
    officer_capacity: int = Field(
        default=40, gt=0, description="Open cases an officer owns at most: a ready case whose patch's officers all "
        "have this many waits unowned (and says so).")

    @property
    def casework_database(self) -> str:
        if self.casework_url:
            return self.casework_url
        if self.ledger_url and is_postgres(self.ledger_url):
            return in_schema(self.ledger_url, SCHEMA)
        return f"sqlite:///{self.home / 'casework.sqlite'}"


def in_schema(url: str, schema: str) -> str:
    """A Postgres URL whose connections look for (and create) tables in `schema` first."""
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode({"options": f"-csearch_path={schema}"})]))
    return urlunsplit(parts._replace(query=query))


def schema_of(url: str) -> str | None:
    """The schema a Postgres URL's connections look in first (its `options=-csearch_path=...`), if it names one."""
    for option in parse_qs(urlsplit(url).query).get("options", []):
        for part in option.split():
            if part.startswith("-csearch_path="):
                return part.removeprefix("-csearch_path=").split(",")[0].strip() or None
    return None


def service_day(settings: FeatureSettings) -> date:
    """The day casework acts on: an officer's action recorded without a date, a release (a contact), "due today".
    `ARREARS_TODAY` when set (a replay, or a demo whose simulated history ends before today), else today."""
    return settings.today or date.today()


def get_settings() -> CaseworkSettings:
    return load_settings(CaseworkSettings)
