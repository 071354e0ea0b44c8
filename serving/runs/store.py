"""Recorded worklist runs: every generation of the worklist, append-only, in the project's serving database.

A run is recorded when features or the champion change (`serving.runs.record.record_run`): its id, as_of, model and
policy versions, and one row per live tenancy (score, rank, readiness state and reasons, next action, expected
payment, experiment arm), plus the payments that arrived since the run before, and each tenancy's first assignment
to an experiment's arm (`serving.runs.experiments`). The service serves the latest run; monitoring will
judge recorded runs against what happened next. Nothing here updates or deletes a row.

SQLite by default (the service reads while a batch job writes: WAL mode), Postgres in the production profile.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager

import pandas as pd

from features.db import Database, and_in, open_store
from serving.settings import ServingSettings

TABLES: dict[str, dict[str, str]] = {
    "worklist_runs": {
        "run_id": "TEXT", "run_seq": "BIGINT", "recorded_at": "TIMESTAMP", "as_of": "DATE", "model_version": "TEXT",
        "feature_service": "TEXT", "payment_model_version": "TEXT", "policy_version": "TEXT",
        "ledger_seq": "BIGINT", "population": "BIGINT", "patch_capacity": "BIGINT", "explained": "BIGINT",
        "generation_seconds": "DOUBLE PRECISION", "casework_mark": "TEXT", "experiment": "TEXT",
        # The uplift champion when the run was recorded, and how many ready rows got an expected gain from it (null:
        # none computed, the model's features missing from the live file).
        "uplift_model_version": "TEXT", "expected_gains": "BIGINT",
    },
    "worklist_rows": {
        "run_id": "TEXT", "tenancy_id": "TEXT", "patch": "TEXT", "risk_rank": "BIGINT", "queue_rank": "BIGINT",
        "raw_score": "DOUBLE PRECISION", "risk_score": "DOUBLE PRECISION", "readiness_state": "TEXT",
        "state_reasons": "TEXT", "next_action": "TEXT", "protocol_step": "TEXT", "hold_until": "DATE",
        "balance": "DOUBLE PRECISION", "base_value": "DOUBLE PRECISION", "other_contribution": "DOUBLE PRECISION",
        "reasons": "TEXT", "payment_p10": "DOUBLE PRECISION", "payment_p50": "DOUBLE PRECISION",
        "payment_p90": "DOUBLE PRECISION", "experiment": "TEXT", "arm": "TEXT",
        # A ready case's expected gain (£ a contact brings in over 4 weeks, from the uplift champion) and its rank by
        # it within its patch (held-out cases queued apart), when an uplift model is champion.
        "expected_gain": "DOUBLE PRECISION", "gain_rank": "BIGINT",
    },
    "worklist_payments": {"run_id": "TEXT", "tenancy_id": "TEXT", "transaction_id": "TEXT", "posted_date": "DATE",
                          "amount": "DOUBLE PRECISION"},
    # A tenancy's first assignment to an experiment's arm, kept once (serving.runs.experiments).
    "experiment_assignments": {
        "experiment": "TEXT", "tenancy_id": "TEXT", "arm": "TEXT", "draw": "DOUBLE PRECISION",
        "holdout_share": "DOUBLE PRECISION", "stratum": "TEXT", "patch": "TEXT", "risk_band": "TEXT",
        "assigned_on": "DATE", "run_id": "TEXT", "balance_at_assignment": "DOUBLE PRECISION",
        "arrears_weeks_at_assignment": "DOUBLE PRECISION", "risk_score": "DOUBLE PRECISION",
    },
}
PRIMARY_KEYS = {"worklist_runs": ("run_id",), "worklist_rows": ("run_id", "tenancy_id"),
                "worklist_payments": ("run_id", "transaction_id"),
                "experiment_assignments": ("experiment", "tenancy_id")}
ASSIGNMENT_COLUMNS = tuple(TABLES["experiment_assignments"])
INDEXES = ("CREATE INDEX IF NOT EXISTS worklist_rows_queue ON worklist_rows (run_id, readiness_state, patch, "
           "queue_rank)", "CREATE UNIQUE INDEX IF NOT EXISTS worklist_runs_seq ON worklist_runs (run_seq)")
#: Columns stored as JSON text.
JSON_COLUMNS = ("state_reasons", "reasons")


class NoRun(LookupError):
    """No worklist run has been recorded yet; the message says how to record one."""


class RunStore:
    """The recorded runs. Use `open_runs(settings)`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_schema(self) -> None:
        self.db.ensure_tables(TABLES, PRIMARY_KEYS, INDEXES)

    def record(self, run: dict, rows: pd.DataFrame, payments: pd.DataFrame,
               assigned: pd.DataFrame | None = None) -> dict:
        """Append one run (numbered after the last), all its rows and its payments, and the experiment assignments
        it made first (one already kept is never written again), all or nothing."""
        stored = rows.assign(**{c: rows[c].map(_to_json) for c in JSON_COLUMNS})
        with self.db.transaction():
            last = self.db.query("SELECT COALESCE(MAX(run_seq), 0) AS n FROM worklist_runs")["n"].iloc[0]
            run = run | {"run_seq": int(last) + 1}
            self.db.append("worklist_runs", pd.DataFrame([run]), list(TABLES["worklist_runs"]))
            self.db.append("worklist_rows", stored.assign(run_id=run["run_id"]), list(TABLES["worklist_rows"]))
            self.db.append("worklist_payments", payments.assign(run_id=run["run_id"]),
                           list(TABLES["worklist_payments"]))
            self.db.append("experiment_assignments", self._first_assignments(assigned), list(ASSIGNMENT_COLUMNS))
        return run

    def _first_assignments(self, assigned: pd.DataFrame | None) -> pd.DataFrame:
        """The assignments not kept yet (read inside the recording transaction)."""
        if assigned is None or assigned.empty:
            return pd.DataFrame(columns=list(ASSIGNMENT_COLUMNS))
        kept = set()
        for experiment in assigned["experiment"].unique():
            found = self.db.query("SELECT tenancy_id FROM experiment_assignments WHERE experiment = ?", [experiment])
            kept |= {(experiment, t) for t in found["tenancy_id"].astype(str)}
        fresh = [(e, str(t)) not in kept for e, t in zip(assigned["experiment"], assigned["tenancy_id"], strict=True)]
        return assigned[fresh].drop_duplicates(["experiment", "tenancy_id"]).reset_index(drop=True)

    def runs(self) -> pd.DataFrame:
        return self.db.query("SELECT * FROM worklist_runs ORDER BY run_seq")

    def latest(self) -> dict:
        runs = self.runs()
        if runs.empty:
            raise NoRun("No worklist run is recorded yet: run `arrears features` (or `arrears worklist --refresh`) "
                        "once a champion model exists.")
        return runs.iloc[-1].to_dict()

    def previous(self, run_id: str) -> dict | None:
        runs = self.runs()
        position = runs.index[runs["run_id"] == run_id]
        return runs.iloc[position[0] - 1].to_dict() if len(position) and position[0] > 0 else None

    def rows(self, run_id: str, states: Sequence[str] | None = None, patch: str | Sequence[str] | None = None,
             capacity: int | None = None, top: int | None = None, columns: Sequence[str] | None = None,
             tenancy_ids: Sequence[str] | None = None, order: str = "risk") -> pd.DataFrame:
        """A run's rows, highest risk first: of some states, one patch or some, within each patch's capacity (held-out
        cases queue apart: the patch's capacity, and as many of them besides), of some tenancies; every column, or
        the given ones (reading only those is much quicker than parsing every row's reasons). With `order="gain"`,
        highest expected gain first, and a patch's capacity is its first cases by expected gain (`gain_rank`)."""
        if order not in ("risk", "gain"):
            raise ValueError(f"Unknown order {order!r}: use risk or gain")
        wanted = ", ".join(columns) if columns else "*"
        sql, params = f"SELECT {wanted} FROM worklist_rows WHERE run_id = ?", [run_id]
        sql, params = and_in(sql, params, "tenancy_id", tenancy_ids)
        sql, params = and_in(sql, params, "readiness_state", states or None)
        sql, params = and_in(sql, params, "patch", patch)
        if capacity is not None:
            sql += f" AND {'gain_rank' if order == 'gain' else 'queue_rank'} <= ?"
            params.append(int(capacity))
        sql += (" ORDER BY expected_gain IS NULL, expected_gain DESC, tenancy_id" if order == "gain"
                else " ORDER BY risk_rank") + (f" LIMIT {int(top)}" if top is not None else "")
        frame = self.db.query(sql, params)
        for column in JSON_COLUMNS:
            if column in frame:
                frame[column] = frame[column].map(_from_json)
        return frame

    def patches_of(self, run_id: str, tenancy_ids: Sequence[str]) -> dict[str, str]:
        """The patch of each of `tenancy_ids` that the run holds."""
        if not tenancy_ids:
            return {}
        found = self.db.query(*and_in("SELECT tenancy_id, patch FROM worklist_rows WHERE run_id = ?", [run_id],
                                      "tenancy_id", tenancy_ids))
        return dict(zip(found["tenancy_id"].astype(str), found["patch"].astype(str), strict=True))

    def queue_sizes(self, run_id: str, patch: str | Sequence[str] | None = None) -> pd.DataFrame:
        """How many cases each (state, patch) queue holds (`n`), and how many of them an experiment holds out
        (`held_out`: they queue apart, taking none of the patch's capacity)."""
        sql, params = and_in("SELECT readiness_state, patch, COUNT(*) AS n, SUM(CASE WHEN arm = 'holdout' THEN 1 "
                             "ELSE 0 END) AS held_out FROM worklist_rows WHERE run_id = ?", [run_id], "patch", patch)
        return self.db.query(sql + " GROUP BY readiness_state, patch", params)

    def history(self, tenancy_id: str, limit: int = 20) -> pd.DataFrame:
        """One tenancy in the latest `limit` runs that hold it, newest first: the run, its score, rank, state and
        experiment arm."""
        frame = self.db.query(
            "SELECT r.run_id, r.run_seq, r.as_of, r.model_version, r.policy_version, w.patch, w.risk_score, "
            "w.risk_rank, w.queue_rank, w.readiness_state, w.state_reasons, w.next_action, w.balance, w.experiment, "
            "w.arm "
            "FROM worklist_rows w JOIN worklist_runs r ON r.run_id = w.run_id WHERE w.tenancy_id = ? "
            f"ORDER BY r.run_seq DESC LIMIT {int(limit)}", [tenancy_id])
        frame["state_reasons"] = frame["state_reasons"].map(
            lambda text: [{"rule": rule, "text": said} for rule, said in _from_json(text) or []])
        return frame

    def payments(self, run_id: str) -> pd.DataFrame:
        return self.db.query("SELECT tenancy_id, transaction_id, posted_date, amount FROM worklist_payments "
                             "WHERE run_id = ? ORDER BY posted_date, transaction_id", [run_id])


def _to_json(value) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else json.dumps(value)


def _from_json(text):
    return None if text is None or (isinstance(text, float) and pd.isna(text)) else json.loads(text)


def open_runs(settings: ServingSettings) -> AbstractContextManager[RunStore]:
    return open_store(settings.runs_database, RunStore)
