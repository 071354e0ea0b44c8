"""Protected characteristics, kept apart: the one store of the tenancy register's monitoring-only columns
(`features.feeds.contract.MONITORING_ONLY_COLUMNS`: age band, sex, ethnicity, disability) and its one reader.

They are used only to monitor for bias, so they live in a database of their own, never in the ledger that serving
reads: `ARREARS_PROTECTED_URL`, by default an SQLite file beside the ledger (`ARREARS_HOME/protected.sqlite`, made
owner-only, 0600), and beside a Postgres ledger a schema of its own (`<ledger schema>_protected`, or set the URL to
a database or role only the bias job and admins hold). One row per tenancy (`TABLE`): its latest delivered values,
the delivery they came with and when they were recorded. Ingestion writes it (`features.feeds.ingest`), and moves
them out of a ledger that still holds them as register columns (`move_from_ledger`).

Who reads it: `monitoring_attributes` is the bias gate's (training) and the bias and drift jobs' (monitoring) one
way in; the subject access export and erasure (`serving.privacy.holdings`, admins) read and pseudonymise a
tenancy's row through `ProtectedStore`. No other module imports this one (tests/unit/test_architecture.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pandas as pd

from features.db import Database
from features.feeds.contract import MONITORING_ONLY_COLUMNS
from features.ledger import Ledger, register_attributes

TABLE = "protected_characteristics"
COLUMNS: dict[str, str] = {"tenancy_id": "TEXT", **{c: "TEXT" for c in MONITORING_ONLY_COLUMNS},
                           "delivery_seq": "BIGINT", "recorded_at": "TEXT"}


def _owner_only(url: str) -> None:
    """An SQLite file made (or kept) readable by its owner only; SQLite gives its journal files the same mode."""
    if not url.startswith("sqlite:///"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


class ProtectedStore:
    """The protected characteristics' database (a `features.db.Database`), its table made sure of."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_schema(self) -> None:
        if self.db.backend == "postgres":
            schema = _search_path(self.db.url)
            if schema:
                self.db.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        self.db.ensure_tables({TABLE: COLUMNS}, {TABLE: ("tenancy_id",)})

    def record(self, rows: pd.DataFrame, delivery_seq: int, carried: Sequence[str] = MONITORING_ONLY_COLUMNS) -> int:
        """Each tenancy's values as delivered (tenancy_id and the columns), replacing what an earlier delivery
        left in the `carried` columns (those its file had); a row from an earlier delivery than the one held changes
        nothing. Running it again changes nothing."""
        if rows.empty:
            return 0
        frame = rows.reindex(columns=["tenancy_id", *MONITORING_ONLY_COLUMNS]).astype(object)
        frame = frame.where(frame.notna(), None).drop_duplicates("tenancy_id", keep="last")
        frame["delivery_seq"] = int(delivery_seq)
        frame["recorded_at"] = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
        names = list(COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in [*carried, "delivery_seq", "recorded_at"])
        with self.db.transaction(), self.db.frame_as_table("_protected_in", frame[names], COLUMNS) as incoming:
            self.db.execute(f"INSERT INTO {TABLE} ({', '.join(names)}) SELECT {', '.join(names)} FROM {incoming} "
                            f"WHERE true ON CONFLICT (tenancy_id) DO UPDATE SET {updates} "
                            f"WHERE excluded.delivery_seq >= {TABLE}.delivery_seq")
        return len(frame)

    def rows(self, tenancy_ids: Sequence[str]) -> pd.DataFrame:
        """The rows held for these tenancies (admins: the subject access export)."""
        ids = list(dict.fromkeys(str(t) for t in tenancy_ids))
        if not ids:
            return pd.DataFrame(columns=list(COLUMNS))
        found = [self.db.query(f"SELECT * FROM {TABLE} WHERE tenancy_id IN ({', '.join('?' * len(part))})", part)
                 for part in (ids[i:i + 500] for i in range(0, len(ids), 500))]
        return pd.concat(found, ignore_index=True)


def _search_path(url: str) -> str:
    options = unquote(parse_qs(urlsplit(url).query).get("options", [""])[0])
    return options.split("search_path=", 1)[1].split(",")[0].strip() if "search_path=" in options else ""


@contextmanager
def open_protected(url: str) -> Iterator[ProtectedStore]:
    """The store at `url` (an SQLite file is made owner-only first), its table made sure of, for the block."""
    _owner_only(url)
    with Database(url) as db:
        store = ProtectedStore(db)
        store.ensure_schema()
        yield store


def move_from_ledger(ledger: Ledger, url: str) -> int:
    """A ledger made before the characteristics were kept apart holds them as register columns: each tenancy's
    latest values are copied here (skipping tenancies with none), then the columns are dropped from the ledger.
    Copying first means a move cut short is finished by the next one. Returns the tenancies moved."""
    held = ledger.protected_columns()
    if not held:
        return 0
    register = ledger.query(f"SELECT tenancy_id, delivery_seq, {', '.join(held)} FROM tenancy_register")
    register = register[register[held].notna().any(axis=1)]
    with open_protected(url) as store:
        for seq, rows in register.groupby("delivery_seq"):
            store.record(rows, int(seq))
    ledger.drop_protected_columns()
    return len(register)


def monitoring_attributes(settings, tenancy_ids: Sequence[str], columns: Sequence[str]) -> pd.DataFrame:
    """tenancy_id and those of `columns` held with any value for the given tenancies: the protected ones from this
    store, the others (vulnerable, benefit type…) from the ledger's register. The groups bias checks cut by (the
    training bias gate, the bias and drift jobs); never a model's input. `settings`: a `FeatureSettings`."""
    wanted = set(tenancy_ids)
    protected = [c for c in columns if c in MONITORING_ONLY_COLUMNS]
    register = register_attributes(settings.ledger, sorted(wanted), [c for c in columns if c not in protected])
    if not protected:
        return register
    with open_protected(settings.protected_database) as store:
        held = store.rows(sorted(wanted))
    present = [c for c in protected if c in held and held[c].notna().any()]
    merged = register.merge(held[["tenancy_id", *present]], on="tenancy_id", how="left")
    return merged[["tenancy_id", *[c for c in columns if c in merged]]]
