"""An officer's day: the cases they own (`casework.cases.owners`) that want something of them today, under the
caller's patches like every case list. A case is on the list when it is ready in the latest worklist run, when a
missed promise or instalment returned it (`casework.cases.settle_commitments` wrote `case_returned`) and nobody
has acted on it since, or when a promise or an arrangement's instalment falls due on the service's day
(`casework.settings.service_day`).
Shared by the `/my_cases` endpoint, the page `/app/my-cases` and `arrears case mine`."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd

from casework import cases
from casework.audit import TABLE as AUDIT_TABLE
from casework.settings import service_day
from casework.store import open_casework
from features.db import Database, and_in
from serving.access.principals import Forbidden, Principal
from serving.runs.experiments import experiment_fields
from serving.runs.schemas import MyCase, MyCaseReason, MyCases
from serving.runs.store import open_runs
from serving.settings import ServingSettings

#: The order reasons (and so cases) come in: what slipped first, then what is due today, then the ready list.
PRIORITY = {"returned": 0, "promise_due": 1, "instalment_due": 2, "ready": 3}
#: What the latest run says of each case on the list.
RUN_COLUMNS = ("tenancy_id", "patch", "readiness_state", "protocol_step", "next_action", "risk_rank", "experiment",
               "arm")
#: Actions that are not dealing with a returned case (a note alone leaves it on the list).
NOT_ACTING = ("note",)


def _pounds(pence) -> float | None:
    return None if pence is None or pd.isna(pence) else int(pence) / 100


def due_today(recorded: pd.DataFrame, day: date) -> dict[str, list[MyCaseReason]]:
    """The open (unsettled) promises due on `day` and the open arrangements with an instalment due on it, by
    tenancy (pure)."""
    found: dict[str, list[MyCaseReason]] = {}
    today = pd.Timestamp(day)
    open_ones = recorded[recorded["kind"].isin(["promise_to_pay", "arrangement_agreed"])
                         & recorded["settled_on"].isna()]
    for action in open_ones.to_dict("records"):
        first, every, count = cases._terms(action)  # the one reading of a commitment's terms
        days = (today - first).days
        if days < 0 or days % every or days // every >= count:
            continue
        amount = _pounds(action["amount_pence"])
        if action["kind"] == "promise_to_pay":
            reason = MyCaseReason(code="promise_due", text=f"Promise of £{amount:,.2f} due today",
                                  due_on=str(day), amount_due=amount)
        else:
            reason = MyCaseReason(code="instalment_due", due_on=str(day), amount_due=amount,
                                  text=f"Instalment {days // every + 1} of {count} (£{amount:,.2f}) due today")
        found.setdefault(str(action["tenancy_id"]), []).append(reason)
    return found


def still_returned(returns: pd.DataFrame, recorded: pd.DataFrame) -> dict[str, list[MyCaseReason]]:
    """Each tenancy's latest return to the list (`returns`: tenancy_id, at, detail as the audit trail holds them)
    that no action was recorded after (but a note, or the missed commitment itself), as a reason with the shortfall
    (pure). Actions are stamped to the second: one recorded in the second of the return counts as after it."""
    found: dict[str, list[MyCaseReason]] = {}
    if returns.empty:
        return found
    acted = recorded[~recorded["kind"].isin(NOT_ACTING)]
    acted = acted.assign(recorded_at=pd.to_datetime(acted["recorded_at"], utc=True))
    at = pd.to_datetime(returns["at"], utc=True).dt.floor("s")
    latest = returns.assign(at=at).sort_values("at").groupby("tenancy_id").tail(1)
    for entry in latest.to_dict("records"):
        tenancy_id, detail = str(entry["tenancy_id"]), entry["detail"]
        since = acted[(acted["tenancy_id"] == tenancy_id) & (acted["action_id"] != detail.get("action_id"))
                      & (acted["recorded_at"] >= entry["at"])]
        if len(since):
            continue
        short = _pounds(max(0, int(detail.get("expected_pence", 0)) - int(detail.get("received_pence", 0))))
        what = "promise" if detail.get("reason") == "missed_promise" else "instalment"
        found[tenancy_id] = [MyCaseReason(
            code="returned", due_on=detail.get("due_on"), amount_due=short,
            text=f"Returned: missed {what} due {detail.get('due_on')} (£{short:,.2f} not received)")]
    return found


def commitments(db: Database, tenancy_ids: list[str], day: date) -> dict[str, list[MyCaseReason]]:
    """For the given tenancies, what their promises and arrangements ask of an officer on `day`: returned cases
    and payments due today (two queries of the case store, whatever the number of tenancies)."""
    recorded = cases.actions(db, tenancy_ids)
    returns = db.query(*and_in(f"SELECT tenancy_id, at, detail FROM {AUDIT_TABLE} WHERE action = ?",
                               ["case_returned"], "tenancy_id", tenancy_ids))
    returns["detail"] = returns["detail"].map(json.loads)
    found = still_returned(returns, recorded)
    for tenancy_id, reasons in due_today(recorded, day).items():
        found.setdefault(tenancy_id, []).extend(reasons)
    return found


def _whose(principal: Principal, officer: str | None) -> str:
    """Whose list: the caller's own; a supervisor or an admin (or the CLI) may name an officer."""
    if officer is None or officer == principal.name:
        return principal.name
    if principal.role not in ("supervisor", "admin", "cli"):
        raise Forbidden(f"{principal.name} ({principal.role}) sees their own cases only: leave officer out")
    return officer


def my_cases(settings: ServingSettings, principal: Principal, officer: str | None = None) -> MyCases:
    """The cases `officer` (default: the caller) owns that are on their list today, of the caller's patches, with
    why, the amount due and the latest run's state and protocol step."""
    name, day = _whose(principal, officer), service_day(settings)
    with open_casework(settings) as db:
        held = cases.owners(db)
        owned = held[held["owner"] == name]
        ids = owned["tenancy_id"].astype(str).tolist()
        pending = commitments(db, ids, day) if ids else {}
    with open_runs(settings) as store:
        run = store.latest()
        rows = store.rows(run["run_id"], columns=RUN_COLUMNS, tenancy_ids=ids) if ids else pd.DataFrame(
            columns=RUN_COLUMNS)
    in_run = {str(r["tenancy_id"]): r for r in rows.to_dict("records")}
    listed = []
    for case in owned.to_dict("records"):
        tenancy_id = str(case["tenancy_id"])
        row = in_run.get(tenancy_id, {})
        patch = row.get("patch") or case["patch"]
        if principal.patches is not None and patch not in principal.patches:
            continue
        why = list(pending.get(tenancy_id, []))
        if row.get("readiness_state") == "ready":
            note = experiment_fields(row)["experiment_note"]  # a held-out case says so
            why.append(MyCaseReason(code="ready", text=f"Ready: {row['next_action']}"
                                    + (f" ({note}: its statutory steps still go ahead)" if note else "")))
        if why:
            listed.append((_case(tenancy_id, patch, row, why), row.get("risk_rank")))
    listed.sort(key=lambda c: (PRIORITY[c[0].why[0].code], c[1] if c[1] is not None and not pd.isna(c[1])
                               else float("inf"), c[0].tenancy_id))
    return MyCases(officer=name, day=str(day), run_id=str(run["run_id"]), as_of=str(pd.Timestamp(run["as_of"]).date()),
                   cases=[c for c, _ in listed])


def _case(tenancy_id: str, patch, row: dict, why: list[MyCaseReason]) -> MyCase:
    why = sorted(why, key=lambda r: PRIORITY[r.code])
    step = row.get("protocol_step")
    return MyCase(tenancy_id=tenancy_id, patch=None if patch is None else str(patch),
                  readiness_state=row.get("readiness_state"),
                  protocol_step=None if step is None or pd.isna(step) else str(step), why=why,
                  amount_due=next((r.amount_due for r in why if r.amount_due is not None), None))
