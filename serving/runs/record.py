"""The worklist in batch: every live tenancy scored, judged by the readiness policy, ranked, its ready cases given
their arm while an experiment runs (`serving.runs.experiments`), and every case that can be listed explained, then
recorded as a run (`serving.runs.store`) the service serves from.

Run when features or the champion change (`arrears features`, `arrears ingest`, `arrears promote`, or
`arrears worklist --refresh`). Scores come from the live file: the same current snapshot the online store holds,
computed by the same build, as of the ledger's latest date. Exact SHAP costs about a millisecond a row, so only the
rows each patch's list can hold are explained.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd

from casework import restrictions
from casework.facts import load_facts
from casework.policy import Policy, load_policy, readiness
from casework.store import open_audit, open_casework
from features.db import and_in
from features.feeds.contract import RECEIPT_TYPES
from features.ledger import Ledger, open_ledger
from features.store.offline import live_tenancies
from serving.income.store import held_by_suspense, open_decisions
from serving.runs import experiments
from serving.runs.casework import actions_for_run, assign_owners
from serving.runs.explain import raw_scores, score_cases
from serving.runs.store import NoRun, RunStore, open_runs
from serving.settings import ServingSettings
from training import registry
from training.payment_date import Interval, predict_quantiles
from training.uplift import UpliftChampion, load_uplift

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    run: dict
    recorded: bool  #: False when the latest run already reflects these features, model and policy
    state_counts: dict[str, int]


def _champion_refs(settings: ServingSettings) -> tuple[registry.ModelRef, registry.ModelRef | None]:
    """Which versions are champions (a registry lookup; the boosters are loaded only if a run is computed)."""
    risk = registry.model_by_alias(settings, registry.RISK_MODEL, registry.CHAMPION)
    try:
        payment = registry.model_by_alias(settings, registry.PAYMENT_MODEL, registry.CHAMPION)
    except registry.NoChampion:
        payment = None  # the list still works; it just says nothing about when the tenant will pay
    return risk, payment


def _uplift_ref(settings: ServingSettings) -> registry.ModelRef | None:
    """The uplift champion's version, if one is (without one a run records no expected gains)."""
    try:
        return registry.model_by_alias(settings, registry.UPLIFT_MODEL, registry.CHAMPION)
    except registry.NoChampion:
        return None


def with_gains(frame: pd.DataFrame, live: pd.DataFrame,
               uplift: UpliftChampion | None) -> tuple[pd.DataFrame, int | None]:
    """The judged rows with each ready case's expected gain (£ a contact brings in over 4 weeks, from the uplift
    champion, on the same live features the risk model scored) and its rank by it within its patch, held-out cases
    queued apart as in risk order; and how many got one (None: no uplift champion, or its features are not all in
    the live file, which is logged)."""
    frame = frame.assign(expected_gain=np.nan, gain_rank=pd.array([pd.NA] * len(frame), dtype="Int64"))
    if uplift is None:
        return frame, None
    needed = [str(name) for name in uplift.model.feature_names_in_]
    if missing := [name for name in needed if name not in live.columns]:
        log.warning("No expected gains recorded: the uplift model v%s reads features the live file does not hold: %s",
                    uplift.ref.version, ", ".join(missing))
        return frame, None
    ready = frame["readiness_state"].eq("ready").to_numpy()
    features = live.set_index("tenancy_id").loc[frame.loc[ready, "tenancy_id"], needed].reset_index(drop=True)
    if len(features):
        frame.loc[ready, "expected_gain"] = np.asarray(uplift.predict(features), dtype=float)
    gained = frame[ready & frame["expected_gain"].notna().to_numpy()]
    gained = gained.sort_values(["expected_gain", "tenancy_id"], ascending=[False, True], kind="stable")
    frame.loc[gained.index, "gain_rank"] = experiments.queue_ranks(gained).to_numpy()
    return frame, int(len(gained))


def ranked(live: pd.DataFrame, risk: registry.Champion) -> pd.DataFrame:
    """Every live tenancy with its raw score and calibrated probability, highest risk first (ties by id)."""
    raw = raw_scores(live, risk.booster)
    frame = live[["tenancy_id", "patch", "balance"]].assign(raw_score=raw, risk_score=risk.calibration(raw))
    frame = frame.sort_values(["raw_score", "tenancy_id"], ascending=[False, True], kind="stable")
    return frame.assign(risk_rank=np.arange(1, len(frame) + 1)).reset_index(drop=True)


def judge(frame: pd.DataFrame, ledger: Ledger, as_of: pd.Timestamp, policy: Policy,
          actions: pd.DataFrame | None = None, suspense: pd.DataFrame | None = None) -> pd.DataFrame:
    """Readiness of every row (from the ledger's facts, the officers' `actions` and the receipts in `suspense`
    matched to a tenancy), and its rank within its (state, patch) queue."""
    facts = load_facts(ledger, frame["tenancy_id"].tolist(), as_of, policy, actions, suspense)
    states = readiness(facts, as_of, policy)
    frame = frame.merge(states.drop(columns="policy_version"), on="tenancy_id", how="left")
    frame["queue_rank"] = frame.groupby(["readiness_state", "patch"], sort=False).cumcount() + 1
    return frame


def explain_listable(frame: pd.DataFrame, live: pd.DataFrame, risk: registry.Champion,
                     payment: registry.Champion | None, capacity: int) -> pd.DataFrame:
    """Reasons (and the expected payment) of every row a patch's list can hold."""
    listable = frame["queue_rank"] <= capacity
    if "gain_rank" in frame:  # a patch's list by expected gain holds other cases too
        listable |= (frame["gain_rank"] <= capacity).fillna(False).to_numpy(dtype=bool)
    features = live.set_index("tenancy_id").loc[frame.loc[listable, "tenancy_id"]].reset_index()
    cases = pd.DataFrame([{"tenancy_id": c.tenancy_id, "reasons": [r.model_dump() for r in c.reasons],
                           "base_value": c.base_value, "other_contribution": c.other_contribution}
                          for c in score_cases(features, risk.booster, calibration=risk.calibration)],
                         columns=["tenancy_id", "reasons", "base_value", "other_contribution"])
    frame = frame.merge(cases, on="tenancy_id", how="left")
    for column in ("payment_p10", "payment_p50", "payment_p90"):
        frame[column] = np.nan
    if payment is not None and len(features):
        interval = Interval.from_tags(payment.ref.tags)
        quantiles = predict_quantiles(payment.booster, features, interval).replace(np.inf, np.nan)
        days = quantiles[["p10", "p50", "p90"]].set_axis(["payment_p10", "payment_p50", "payment_p90"], axis=1)
        frame.loc[listable, days.columns] = days.set_index(features["tenancy_id"]).loc[
            frame.loc[listable, "tenancy_id"]].to_numpy()
    return frame


def payments_since(ledger: Ledger, since_seq: int, tenancy_ids: set[str]) -> pd.DataFrame:
    """Receipts delivered after delivery `since_seq` (what has come in since the previous run)."""
    found = ledger.query(*and_in("SELECT tenancy_id, transaction_id, posted_date, -amount_pence / 100.0 AS amount "
                                "FROM transactions WHERE delivery_seq > ?", [since_seq], "type", RECEIPT_TYPES))
    found["posted_date"] = pd.to_datetime(found["posted_date"])
    return found[found["tenancy_id"].isin(tenancy_ids)]


def _latest(store: RunStore) -> dict | None:
    try:
        return store.latest()
    except NoRun:
        return None


def record_run(settings: ServingSettings, force: bool = False) -> RunSummary:
    """Compute and record a worklist run, unless the latest already reflects the same deliveries, features date,
    champions and policy (then that one is returned)."""
    started = time.perf_counter()
    policy = load_policy()
    trials = experiments.load_experiments(settings)  # a file that breaks a guardrail stops the run here
    risk_ref, payment_ref = _champion_refs(settings)
    uplift_ref = _uplift_ref(settings)
    live = live_tenancies(settings)
    as_of = pd.Timestamp(live["event_timestamp"].max()).tz_localize(None).normalize()
    trial = experiments.active(trials, as_of)
    live, restricted_mark = _unrestricted(settings, live)
    with open_ledger(settings.ledger) as ledger, open_runs(settings) as store:
        actions, casework_mark = actions_for_run(settings, ledger, as_of)
        casework_mark += restricted_mark + _suspense_mark(settings)
        run = {"as_of": as_of.date(), "model_version": risk_ref.version, "feature_service": risk_ref.feature_service,
               "payment_model_version": payment_ref.version if payment_ref else None, "policy_version": policy.version,
               "ledger_seq": ledger.last_delivery_seq(), "population": len(live),
               "patch_capacity": settings.patch_capacity, "casework_mark": casework_mark,
               "experiment": trial.name if trial else None,
               "uplift_model_version": uplift_ref.version if uplift_ref else None}
        previous = _latest(store)
        if previous is not None and not force and all(str(previous[k]) == str(v) for k, v in run.items()):
            _audit_policy(settings, previous)
            _audit_assignments(settings, store)
            assign_owners(settings, previous, store.rows(previous["run_id"], ["ready"], columns=(
                "tenancy_id", "patch", "readiness_state", "queue_rank", "risk_rank", "arm")))  # officers added since
            return RunSummary(previous, False, _counts(store, previous["run_id"]))
        risk = registry.load_version(settings, risk_ref)
        payment = registry.load_version(settings, payment_ref) if payment_ref else None
        run_id = uuid.uuid4().hex[:16]
        suspense = held_by_suspense(settings, ledger)
        frame, assigned = arms(judge(ranked(live, risk), ledger, as_of, policy, actions, suspense), live, as_of,
                               run_id, trials, store)
        frame, gains = with_gains(frame, live, load_uplift(settings) if uplift_ref else None)
        frame = explain_listable(frame, live, risk, payment, settings.patch_capacity)
        paid = (payments_since(ledger, int(previous["ledger_seq"]), set(frame["tenancy_id"])) if previous
                else pd.DataFrame(columns=["tenancy_id", "transaction_id", "posted_date", "amount"]))
        run |= {"run_id": run_id, "recorded_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
                "explained": int(frame["reasons"].notna().sum()), "expected_gains": gains,
                "generation_seconds": round(time.perf_counter() - started, 3)}
        run = store.record(run, frame, paid, assigned)
        _audit_policy(settings, run)
        _audit_assignments(settings, store)
        assign_owners(settings, run, frame)
        return RunSummary(run, True, _counts(store, run["run_id"]))


def _suspense_mark(settings: ServingSettings) -> str:
    """A mark that changes with every match the income team rejects (an approval is a delivery: the ledger's
    sequence moves), so a run is recomputed when the receipts in suspense point elsewhere."""
    with open_decisions(settings) as decisions:
        rejected = len(decisions.rejected())
    return f":suspense_rejected {rejected}" if rejected else ""


def _unrestricted(settings: ServingSettings, live: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The live tenancies whose processing is not restricted (docs/privacy.md: a restricted tenancy is neither
    scored nor listed), and a mark that changes with every restriction made or lifted (a run is then recomputed)."""
    with open_casework(settings) as db:
        held = restrictions.restricted(db)
        made = db.query("SELECT COUNT(*) AS n, COUNT(lifted_at) AS lifted FROM privacy_restrictions").iloc[0]
    mark = f":restrictions {int(made['n'])}/{int(made['lifted'])}" if int(made["n"]) else ""
    return live[~live["tenancy_id"].isin(held)].reset_index(drop=True), mark


def arms(frame: pd.DataFrame, live: pd.DataFrame, as_of: pd.Timestamp, run_id: str,
         trials: tuple[experiments.Experiment, ...], store: RunStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The judged rows with their experiment and arm (ready rows on a day an enabled experiment runs; a tenancy
    assigned before keeps its first arm) and their queues re-ranked so that held-out cases take no capacity; and the
    first assignments this run makes, with each tenancy's arrears then (from the live features)."""
    trial = experiments.in_force(trials, as_of)
    known = experiments.assignments(store, trial.name) if trial else None
    weeks = frame["tenancy_id"].map(live.set_index("tenancy_id")["arrears_weeks"])
    rows, assigned = experiments.assign(frame.assign(arrears_weeks=weeks.to_numpy()), trials, as_of, run_id, known)
    rows = rows.drop(columns="arrears_weeks")
    return rows.assign(queue_rank=experiments.queue_ranks(rows)), assigned


def _audit_policy(settings: ServingSettings, run: dict) -> None:
    """The audit trail records each policy version the worklist starts judging by (checked at every run, so one
    missed by a crash after the run was recorded is recorded at the next)."""
    with open_audit(settings) as log:
        last = log.latest("policy_changed")
        if last is None or last.get("to") != str(run["policy_version"]):
            log.append("arrears", "system", "policy_changed", detail={
                "from": last.get("to") if last else None, "to": str(run["policy_version"]),
                "first_run": str(run["run_id"]), "as_of": str(run["as_of"])})


def _audit_assignments(settings: ServingSettings, store: RunStore) -> None:
    """Each first assignment kept in the runs store is in the audit trail once (`experiment_assigned`): the run's
    new ones, and any a crash after the run was recorded left out. Every run asks, so the usual answer (all there:
    as many events as assignments) is two counts, not a read of every assignment and every event."""
    kept_n = int(store.db.query("SELECT COUNT(*) AS n FROM experiment_assignments")["n"].iloc[0])
    if kept_n == 0:
        return
    with open_audit(settings) as log:
        if log.count("experiment_assigned") == kept_n:
            return
        kept = experiments.assignments(store)
        logged = log.entries(action="experiment_assigned")
        done = {(str(d.get("experiment")), str(t)) for t, d in zip(logged["tenancy_id"], logged["detail"], strict=True)}
        missing = [row for row in kept.to_dict("records") if (row["experiment"], row["tenancy_id"]) not in done]
        log.append_many("arrears", "system", "experiment_assigned", [(row["tenancy_id"], {
            "experiment": row["experiment"], "arm": row["arm"], "stratum": row["stratum"],
            "risk_band": row["risk_band"], "draw": round(float(row["draw"]), 6),
            "holdout_share": float(row["holdout_share"]), "assigned_on": str(row["assigned_on"]),
            "run_id": row["run_id"]}) for row in missing])


def _counts(store: RunStore, run_id: str) -> dict[str, int]:
    sizes = store.queue_sizes(run_id)
    return {str(k): int(v) for k, v in sizes.groupby("readiness_state")["n"].sum().items()}
