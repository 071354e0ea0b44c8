"""Replay a simulated portfolio week by week through the schedule's jobs: what monitoring would have said.

The portfolio is delivered as a landlord's system exports it: first everything up to `start`, then one delivery a
week (that week's postings and events, and the register as it stands that day). Before the first week the
`retrain` job trains and promotes the models; after each weekly delivery the `refresh` job brings features up to
date and records a worklist run, then `drift`, `bias` and `performance` run, each through `arrears.schedule.run_job`
exactly as the scheduler runs them: recorded, and every breach an alert. What each week found is returned as a
table (one row a week), so alert rates can be counted against a known truth (`simulator` can inject a change).

With `Officers`, the replay closes the loop the service will close in production: each week officers contact the
cases the recorded run lists (held-out cases left alone), each contact is recorded in the case store, and the tenants
answer in the deliveries that follow (`simulator.response`: a catch-up from the persuadable, a skipped payment from
the few for whom pressure backfires), so later runs, the contact limit and the retrain all see what the list caused.

Used by `bench/monitoring.py` (26 weeks, with and without injected changes) and the e2e tests (a few weeks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from arrears.decisions import approve_recorded
from arrears.schedule import Schedule, run_job
from casework import cases
from casework.audit import AuditLog
from casework.store import open_casework
from features.feeds.ingest import Clock, ingest_delivery
from features.ledger import open_ledger
from serving.runs.experiments import HOLDOUT
from serving.runs.store import open_runs
from serving.settings import ServingSettings
from simulator import write_portfolio
from simulator.model import Portfolio
from simulator.response import contact_kinds, respond
from simulator.suspense import income_feeds_as_of
from training.promotion import TRAINED

WEEKLY_JOBS: tuple[str, ...] = ("drift", "bias", "performance")


def exported(portfolio: Portfolio, cutoff: pd.Timestamp, since: pd.Timestamp | None = None) -> Portfolio:
    """The portfolio as its housing system exports it on `cutoff`: tenancies started by then (a later move-out not
    yet known), the balance it reports that day, receipts in suspense as they stood (open if cleared later) and
    the DWP's schedules paid by then; with `since`, only the postings, events, schedule lines and receipts received
    or cleared after `since`."""
    tenancies = portfolio.tenancies
    start, end = pd.to_datetime(tenancies["start_date"]), pd.to_datetime(tenancies["end_date"])
    tenancies = tenancies[start <= cutoff].copy()
    tenancies.loc[end[start <= cutoff] > cutoff, "end_date"] = None
    posted = pd.to_datetime(portfolio.transactions["posted_date"])
    history = portfolio.transactions[posted <= cutoff]
    balance = history.groupby("tenancy_id", observed=True)["amount"].sum()
    tenancies["reported_balance"] = tenancies["tenancy_id"].map(balance).astype(float).fillna(0.0).round(2).to_numpy()
    tenancies["reported_balance_date"] = cutoff
    dated = pd.to_datetime(portfolio.events["event_date"]) if len(portfolio.events) else pd.Series(dtype="M8[ns]")
    events = portfolio.events[dated <= cutoff]
    if since is not None:
        history = history[posted[posted <= cutoff] > since]
        events = events[dated[dated <= cutoff] > since]
    return replace(portfolio, tenancies=tenancies, transactions=history, events=events,
                   **income_feeds_as_of(portfolio, cutoff, since))


@dataclass(frozen=True)
class Officers:
    """Officers working the service's own list: each week, after the `refresh` job records a run, they contact
    every case it lists (each patch's ready cases within capacity; a case an experiment holds out is not
    contacted), record each contact in the case store (so the contact limit, the next run and the retrain see it),
    and the tenants answer as `simulator.response` says, in the deliveries that follow."""

    seed: int = 0
    actor: str = "replay-officer"


def work_the_list(settings: ServingSettings, today: pd.Timestamp, officers: Officers) -> list[str]:
    """Contact the latest run's listed cases (held-out ones left alone); their tenancy ids."""
    with open_runs(settings) as runs:
        run = runs.latest()
        listed = runs.rows(run["run_id"], states=["ready"], capacity=int(run["patch_capacity"]),
                           columns=("tenancy_id", "arm"))
    contacted = listed.loc[listed["arm"].fillna("") != HOLDOUT, "tenancy_id"].astype(str).tolist()
    contact = cases.OfficerAction(kind="contact_made", channel="phone", outcome="spoke_to_tenant",
                                  happened_on=pd.Timestamp(today).date())
    with open_casework(settings) as db:
        log = AuditLog(db)
        for tenancy_id in contacted:
            cases.record_action(db, log, tenancy_id, contact, officers.actor, "officer")
    return contacted


def deliver(settings: ServingSettings, portfolio: Portfolio, folder: Path, today: pd.Timestamp) -> None:
    """Write one delivery and ingest it with `today` as the clock's date."""
    write_portfolio(portfolio, folder)
    with open_ledger(settings.ledger) as ledger:
        ingest_delivery(ledger, folder, folder.parent / "quarantine", clock=Clock(pd.Timestamp(today).date()))


def _week_row(week: int, as_of: pd.Timestamp, records: dict[str, dict]) -> dict:
    """The headline of what the week's jobs found (their full outputs are in the job log)."""
    drift = records.get("drift", {}).get("outputs", {})
    bias = records.get("bias", {}).get("outputs", {})
    performance = records.get("performance", {}).get("outputs", {})
    return {
        "week": week, "as_of": as_of.date(),
        "failed": [name for name, r in records.items() if r.get("status") == "failed"],
        "alerts": sorted({kind for r in records.values() for kind in r.get("alert_kinds", [])}),
        "drift_share": drift.get("drifted_share"), "score_psi": drift.get("score_psi"),
        "segments": {s["segment"]: (round(s["drifted_share"], 2), round(s["score_psi"], 3))
                     for s in drift.get("segments", []) if s["can_alert"]},  # the groups judged
        "flagged_groups": bias.get("flagged_groups", []),
        **{k: v for k, v in performance.items() if k.startswith(("matured_", "latest_"))},
    }


def replay(settings: ServingSettings, schedule: Schedule, portfolio: Portfolio, root: Path, start: pd.Timestamp,
           weeks: int, jobs: Sequence[str] = WEEKLY_JOBS,
           progress: Callable[[int, dict], None] | None = None, officers: Officers | None = None) -> pd.DataFrame:
    """Deliver the portfolio up to `start`, retrain, then `weeks` weekly deliveries each followed by `refresh` and
    `jobs`; returns one row a week (see the module docstring). Every job runs through `run_job`. With `officers`,
    each week's list is worked and what the contacts caused reaches the following deliveries (`Officers`)."""
    kinds = contact_kinds(portfolio.ground_truth["tenancies"], officers.seed) if officers else None
    start = pd.Timestamp(start).normalize()
    deliver(settings, exported(portfolio, start), root / "delivery_000", start)
    for name in ("refresh", "retrain"):
        record = run_job(settings, schedule, name)
        if record["status"] != "succeeded":
            raise RuntimeError(f"replay: the initial {name} job {record['status']}: {record.get('error')}")
    if not settings.retrain_promotes:  # the challengers wait for a person: the replay stands for one who approves
        for model in TRAINED:
            try:
                approve_recorded(settings, model, reason="replay: the first models", actor="replay",
                                 role="data_scientist")
            except (LookupError, ValueError):  # not trained, or refused by its gates: the replay goes on without it
                continue
    rows = []
    for week in range(1, weeks + 1):
        today, before = start + pd.Timedelta(weeks=week), start + pd.Timedelta(weeks=week - 1)
        deliver(settings, exported(portfolio, today, since=before), root / f"delivery_{week:03d}", today)
        records = {name: run_job(settings, schedule, name) for name in ("refresh", *jobs)}
        row = _week_row(week, today, records)
        if officers is not None:
            contacted = work_the_list(settings, today, officers)
            transactions, caused = respond(portfolio.transactions, kinds, contacted, today, officers.seed)
            portfolio = replace(portfolio, transactions=transactions)
            row |= {"contacted": len(contacted), "catch_ups": int((caused["change"] == "catch_up").sum()),
                    "caught_up_pounds": float(caused.loc[caused["change"] == "catch_up", "amount"].sum()),
                    "skipped_payments": int((caused["change"] == "skipped").sum())}
        rows.append(row)
        if progress is not None:
            progress(week, row)
    return pd.DataFrame(rows)
