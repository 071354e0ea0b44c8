"""The runs store keeps each tenancy's first experiment assignment once, with the run that made it, on SQLite (the
embedded default) and Postgres (the production profile): a later run's assignment of the same tenancy is not
written again, `assignments()` reads them back typed, and held-out rows are counted apart in each queue. The audit
trail's `append_many` chains exactly as appends one by one."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from casework.audit import AuditLog
from casework.store import open_audit
from features.db import open_store
from serving.runs import experiments
from serving.runs.record import _audit_assignments
from serving.runs.store import RunStore
from serving.settings import get_settings
from tests.support.homes import isolated_home
from tests.support.postgres import create_schema, drop_schema

TRIAL = experiments.parse({"version": 1, "experiments": [{
    "name": "reminders-store", "enabled": True, "start": "2026-09-01", "end": "2026-12-31",
    "held_out_action": "first_reminder", "holdout_share": 0.5, "outcome": {"kind": "paid_within_days", "days": 28},
    "minimum_detectable_effect": 0.05}]})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'serving.sqlite'}"
        return
    url, schema = create_schema("exp")
    yield url
    drop_schema(schema)


def judged(n: int) -> pd.DataFrame:
    states = ["ready", "ready", "hold", "ready", "review"] * (n // 5)
    return pd.DataFrame({"tenancy_id": [f"T{i:04d}" for i in range(len(states))], "patch": ["North", "South"] * (
        len(states) // 2) + ["North"] * (len(states) % 2), "readiness_state": states,
        "risk_score": [0.9 - i / (2 * len(states)) for i in range(len(states))], "balance": 250.0,
        "arrears_weeks": 2.5, "queue_rank": 1, "state_reasons": [[] for _ in states], "reasons": None})


def record(store: RunStore, frame: pd.DataFrame, day: str, run_id: str, known: bool = True) -> pd.DataFrame:
    """Assign and record a run; without `known`, every ready row is offered as a first assignment, and the store
    alone must keep the ones it holds."""
    rows, assigned = experiments.assign(frame, TRIAL, pd.Timestamp(day), run_id,
                                        experiments.assignments(store, "reminders-store") if known else None)
    store.record({"run_id": run_id, "as_of": pd.Timestamp(day).date(), "recorded_at": pd.Timestamp(day),
                  "experiment": "reminders-store"}, rows.assign(queue_rank=experiments.queue_ranks(rows)),
                 pd.DataFrame(columns=["tenancy_id", "transaction_id", "posted_date", "amount"]), assigned)
    return rows


def test_the_first_assignment_is_kept_once_on_both_backends(store_url) -> None:
    with open_store(store_url, RunStore) as store:
        record(store, judged(40), "2026-09-07", "run-1")
        first = experiments.assignments(store)
        later = judged(50).assign(balance=999.0)  # ten more tenancies; the first forty owe more now
        rows = record(store, later, "2026-09-14", "run-2", known=False)
        kept = experiments.assignments(store)
        sizes = store.queue_sizes("run-2")
        stored = store.rows("run-2", ["ready"], columns=("tenancy_id", "experiment", "arm"))
    assert len(first) == 24 and len(kept) == 30  # three ready in every five rows
    pd.testing.assert_frame_equal(kept[kept["run_id"] == "run-1"].reset_index(drop=True), first)
    assert kept.loc[kept["run_id"] == "run-1", "balance_at_assignment"].eq(250.0).all()  # not overwritten
    assert kept.loc[kept["run_id"] == "run-2", "assigned_on"].eq(date(2026, 9, 14)).all()
    assert kept["assigned_on"].map(type).eq(date).all() and kept["risk_score"].dtype == float
    assert stored.set_index("tenancy_id")["arm"].to_dict() == rows.dropna(subset=["arm"]).set_index(
        "tenancy_id")["arm"].to_dict()
    ready = sizes[sizes["readiness_state"] == "ready"]
    assert ready["held_out"].astype(int).sum() == (rows["arm"] == "holdout").sum()
    assert sizes.loc[sizes["readiness_state"] != "ready", "held_out"].astype(int).eq(0).all()


def test_append_many_chains_as_appends_one_by_one(store_url) -> None:
    with open_store(store_url.replace("serving.sqlite", "cases.sqlite"), AuditLog) as log:
        log.append("arrears", "system", "policy_changed", detail={"to": "p1"})
        written = log.append_many("arrears", "system", "experiment_assigned",
                                  [(f"T{i}", {"experiment": "e", "arm": "holdout"}) for i in range(5)])
        assert log.append_many("arrears", "system", "experiment_assigned", []) == []
        log.append("arrears", "system", "policy_changed", detail={"to": "p2"})
        assert [e["seq"] for e in written] == [2, 3, 4, 5, 6]
        assert log.verify().ok and log.verify().checked == 7
        assert log.entries(action="experiment_assigned")["tenancy_id"].tolist() == [f"T{i}" for i in range(5)]


def test_a_run_writes_the_assignment_events_a_crash_left_out_and_no_more(tmp_path) -> None:
    """After each run, every kept first assignment is in the audit trail exactly once: the run's own, and any a
    crash between recording a run and auditing it left out (found by counting; written by the next run)."""
    with isolated_home(tmp_path / "home"), open_store(f"sqlite:///{tmp_path / 'runs.sqlite'}", RunStore) as store:
        settings = get_settings()
        record(store, judged(40), "2026-09-07", "run-1")
        _audit_assignments(settings, store)
        record(store, judged(50), "2026-09-14", "run-2")  # six more first assignments, then a crash: not audited
        with open_audit(settings) as log:
            assert log.count("experiment_assigned") == 24
        _audit_assignments(settings, store)
        _audit_assignments(settings, store)  # nothing left to write
        with open_audit(settings) as log:
            events = log.entries(action="experiment_assigned")
            verdict = log.verify()
    assert len(events) == 30 and events["tenancy_id"].is_unique
    assert events.tail(6)["detail"].map(lambda d: d["run_id"]).eq("run-2").all()
    assert verdict.ok
