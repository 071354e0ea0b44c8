"""Recorded cash forecasts: every forecast run, append-only, in the project's serving database, so each one can be
set against the receipts that then came in (`monitoring.cash`).

A forecast is keyed by (as_of, payment model version, weeks): the same forecast asked for twice (a re-run of the
demo, `arrears forecast` twice in a day) is recorded once. Each run keeps every scope's (portfolio, each patch)
weekly mean and P10/P50/P90 in pounds (and its calendar months'), and the number of tenancies it covered. Nothing
here updates or deletes a row.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime

import pandas as pd

from features.db import Database, and_in, open_store
from serving.settings import ServingSettings

TABLES: dict[str, dict[str, str]] = {
    "forecast_runs": {"forecast_id": "TEXT", "recorded_at": "TEXT", "as_of": "DATE", "model_version": "TEXT",
                      "weeks": "BIGINT", "tenancies": "BIGINT"},
    "forecast_weeks": {"forecast_id": "TEXT", "scope": "TEXT", "week": "BIGINT", "week_start": "DATE",
                       "mean": "DOUBLE PRECISION", "p10": "DOUBLE PRECISION", "p50": "DOUBLE PRECISION",
                       "p90": "DOUBLE PRECISION", "scheduled": "DOUBLE PRECISION"},
    "forecast_months": {"forecast_id": "TEXT", "scope": "TEXT", "month": "TEXT", "month_start": "DATE",
                        "days": "BIGINT", "mean": "DOUBLE PRECISION", "p10": "DOUBLE PRECISION",
                        "p50": "DOUBLE PRECISION", "p90": "DOUBLE PRECISION", "scheduled": "DOUBLE PRECISION",
                        "charge_mondays": "BIGINT"},
}
PRIMARY_KEYS = {"forecast_runs": ("forecast_id",), "forecast_weeks": ("forecast_id", "scope", "week"),
                "forecast_months": ("forecast_id", "scope", "month")}


def forecast_id(as_of: pd.Timestamp, model_version: str, weeks: int) -> str:
    return f"{pd.Timestamp(as_of).date()}:v{model_version}:{int(weeks)}w"


class ForecastStore:
    """The recorded forecasts. Use `open_forecasts(settings)`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_schema(self) -> None:
        self.db.ensure_tables(TABLES, PRIMARY_KEYS)

    def record(self, as_of: pd.Timestamp, model_version: str, table: pd.DataFrame, tenancies: int,
               months: pd.DataFrame | None = None) -> tuple[str, bool]:
        """Append one forecast (`table`: scope, week, week_start, mean, p10, p50, p90; `months`: its calendar
        months, `TABLES["forecast_months"]`) unless the same one is already recorded. Returns (its id, whether it
        was new)."""
        weeks = int(table["week"].max())
        key = forecast_id(as_of, model_version, weeks)
        with self.db.transaction():
            found = self.db.query("SELECT COUNT(*) AS n FROM forecast_runs WHERE forecast_id = ?", [key])
            if int(found["n"].iloc[0]):
                return key, False
            run = {"forecast_id": key, "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
                   "as_of": pd.Timestamp(as_of).date(), "model_version": str(model_version), "weeks": weeks,
                   "tenancies": int(tenancies)}
            self.db.append("forecast_runs", pd.DataFrame([run]), list(TABLES["forecast_runs"]))
            rows = table.assign(forecast_id=key, week_start=pd.to_datetime(table["week_start"]).dt.date)
            if "scheduled" not in rows:
                rows = rows.assign(scheduled=0.0)
            self.db.append("forecast_weeks", rows, list(TABLES["forecast_weeks"]))
            if months is not None and not months.empty:
                rows = months.assign(forecast_id=key, month_start=pd.to_datetime(months["month_start"]).dt.date)
                self.db.append("forecast_months", rows, list(TABLES["forecast_months"]))
        return key, True

    def runs(self) -> pd.DataFrame:
        runs = self.db.query("SELECT * FROM forecast_runs ORDER BY as_of, recorded_at")
        return runs.assign(as_of=pd.to_datetime(runs["as_of"]))

    def weeks(self, forecast_ids: list[str] | None = None) -> pd.DataFrame:
        if forecast_ids is not None and not forecast_ids:
            return pd.DataFrame(columns=list(TABLES["forecast_weeks"]))
        sql, params = and_in("SELECT * FROM forecast_weeks WHERE 1 = 1", [], "forecast_id", forecast_ids)
        frame = self.db.query(sql + " ORDER BY forecast_id, scope, week", params)
        return frame.assign(week_start=pd.to_datetime(frame["week_start"]),
                            scheduled=pd.to_numeric(frame["scheduled"]).fillna(0.0))  # none before schedules


    def months(self, forecast_id: str) -> pd.DataFrame:
        """One forecast's calendar months (none for a forecast recorded before they were)."""
        frame = self.db.query("SELECT * FROM forecast_months WHERE forecast_id = ? ORDER BY scope, month",
                              [forecast_id])
        return frame.drop(columns=["forecast_id"]).assign(month_start=pd.to_datetime(frame["month_start"]))


def open_forecasts(settings: ServingSettings) -> AbstractContextManager[ForecastStore]:
    return open_store(settings.runs_database, ForecastStore)
