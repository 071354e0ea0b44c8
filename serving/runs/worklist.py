"""The ranked, explained worklist, served from the latest recorded run (`serving.runs.record` records runs), and scores
of named tenancies from the online store.

`Worklister` loads the champion and opens the feature store once; the BentoML service (`serving.api.service`) holds
one per worker, and `arrears worklist` makes one, so both give the same rows. A list is the ready cases (or other
readiness queues) highest risk first, each patch capped at its capacity, with the reasons in words.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from casework import cases
from casework.policy import STATES
from casework.store import open_casework
from features.store.feast import online_features, online_plan, open_store
from features.store.offline import live_path
from serving.runs.changes import changes
from serving.runs.experiments import experiment_fields
from serving.runs.explain import raw_scores, score_cases
from serving.runs.schemas import (
    ChangesResponse,
    ExpectedPayment,
    Reason,
    ScoredCase,
    ScoreResponse,
    StateReason,
    WorklistResponse,
    WorklistRow,
)
from serving.runs.store import open_runs
from serving.settings import ServingSettings
from training.registry import CHAMPION, RISK_MODEL, load_champion, model_by_alias


def top_cases(features: pd.DataFrame, booster: lgb.Booster, top: int, n_reasons: int = 3,
              calibration=None) -> list[ScoredCase]:
    """The `top` highest-risk rows, ranked and explained: everyone is scored (cheap), only the rows on the list
    are explained (exact TreeSHAP costs about a millisecond a row, a minute and a half for 100k tenancies)."""
    if features.empty or top <= 0:
        return []
    raw = raw_scores(features, booster)
    ids = features["tenancy_id"].astype(str).to_numpy()
    order = np.lexsort((ids, -raw))[:top]  # highest raw score first, ties by tenancy_id
    return score_cases(features.iloc[order], booster, n_reasons, calibration)


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) or pd.isna(value) else str(value)


def _date(value) -> str | None:
    """A stored date as YYYY-MM-DD (SQLite keeps dates as ISO timestamps)."""
    return None if _text(value) is None else str(pd.Timestamp(value).date())


def _expected(row: pd.Series, as_of: pd.Timestamp) -> ExpectedPayment | None:
    if pd.isna(row["payment_p10"]) and pd.isna(row["payment_p50"]) and pd.isna(row["payment_p90"]):
        return None
    days = {k: (None if pd.isna(row[f"payment_{k}"]) else float(row[f"payment_{k}"])) for k in ("p10", "p50", "p90")}
    p50 = days["p50"]
    return ExpectedPayment(p10_days=days["p10"], p50_days=p50, p90_days=days["p90"],
                           p50_date=None if p50 is None else str((as_of + pd.Timedelta(days=round(p50))).date()))


def worklist_row(row: pd.Series, rank: int, as_of: pd.Timestamp, policy_version: str,
                 owner: str | None = None) -> WorklistRow:
    """A recorded run's row as the service answers it, with the case's owner and its experiment arm."""
    return WorklistRow(**experiment_fields(row),
        rank=rank, tenancy_id=str(row["tenancy_id"]), patch=_text(row["patch"]),
        risk_score=float(row["risk_score"]), raw_score=float(row["raw_score"]),
        base_value=float(row["base_value"]), other_contribution=float(row["other_contribution"]),
        reasons=[Reason(**r) for r in row["reasons"]], readiness_state=str(row["readiness_state"]),
        state_reasons=[StateReason(rule=rule, text=text) for rule, text in row["state_reasons"]],
        next_action=str(row["next_action"]), protocol_step=_text(row["protocol_step"]),
        hold_until=_date(row["hold_until"]), policy_version=policy_version, expected_payment=_expected(row, as_of),
        owner=owner, expected_gain=None if pd.isna(row.get("expected_gain")) else float(row["expected_gain"]))


#: The orders a list can be in: highest risk first (the default), or highest expected gain first.
ORDERS = ("risk", "gain")


class NoUplift(ValueError):
    """A list by expected gain was asked for, but the latest run holds no expected gains; the message says why."""


def _gains_recorded(run: dict) -> None:
    """Raise `NoUplift` unless the run recorded expected gains."""
    version, gains = run.get("uplift_model_version"), run.get("expected_gains")
    if _text(version) is None:
        raise NoUplift("no uplift model is champion yet: run a randomised pilot and `register_uplift` its model "
                       "(training/uplift.py), `arrears promote --model contact_uplift`, then `arrears worklist "
                       "--refresh` (docs/experiments.md, 'Uplift')")
    if gains is None or pd.isna(gains):
        raise NoUplift(f"run {run['run_id']} holds no expected gains: the features uplift model v{version} reads "
                       "are not all in the live features (the run's log names them)")


#: Beyond this many rows, a list's owners are read whole rather than by a list of ids (a query's parameters).
OWNERS_BY_ID = 1000


def owners_of(settings: ServingSettings, tenancy_ids: list[str]) -> dict[str, str]:
    """The owner of each of `tenancy_ids` that has one: one query of the case store for a whole list."""
    if not tenancy_ids:
        return {}
    with open_casework(settings) as db:
        held = cases.owners(db, tenancy_ids if len(tenancy_ids) <= OWNERS_BY_ID else None)
    return dict(zip(held["tenancy_id"].astype(str), held["owner"].astype(str), strict=True))


def worklist_frame(rows: list[WorklistRow]) -> pd.DataFrame:
    """Flat table for CSV: one row per case with its state, next action, experiment note (a held-out case's "no
    proactive contact this week") and reasons as text columns."""
    records = []
    for row in rows:
        record = {"rank": row.rank, "tenancy_id": row.tenancy_id, "patch": row.patch,
                  "risk_score": round(row.risk_score, 4), "state": row.readiness_state,
                  "next_action": row.next_action, "owner": row.owner, "experiment_note": row.experiment_note,
                  "expected_gain": row.expected_gain}
        for k, reason in enumerate(row.reasons, start=1):
            record[f"reason_{k}"] = reason.text
        records.append(record)
    return pd.DataFrame(records)


@dataclass(frozen=True)
class WorklistFiles:
    json: Path
    csv: Path


def write_worklist(response: WorklistResponse, out_dir: Path) -> WorklistFiles:
    """The list as JSON (everything, as served) and CSV (one row per case, reasons in words)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = WorklistFiles(out_dir / "worklist.json", out_dir / "worklist.csv")
    files.json.write_text(json.dumps(response.model_dump(), indent=2))
    worklist_frame(response.rows).to_csv(files.csv, index=False)
    return files


def _known(store, run: dict, patch) -> None:
    """A single patch asked for by name must be one the run knows (a principal's own list may hold a patch with no
    tenancies yet: that is an empty answer, not an error)."""
    if isinstance(patch, str):
        patches = sorted(str(p) for p in store.queue_sizes(run["run_id"])["patch"].dropna().unique())
        if patch not in patches:
            raise LookupError(f"Unknown patch {patch!r}: the patches are {', '.join(patches)}")


@dataclass
class _Live:
    """What the live features file says, re-read only when it changes (its stamp changes after every online push:
    `features.store.refresh` writes the online store first, then the file)."""

    stamp: int
    as_of: pd.Timestamp
    patch_of: dict[str, str]


@dataclass
class _ScoreCache:
    """Scored and explained tenancies, least recently used dropped first. A case's score and reasons change only
    with its features or the model: the cache is emptied when the live file's stamp or the champion changes.
    Thread-safe (a BentoML worker answers requests on several threads)."""

    size: int
    key: tuple = ()
    cases: OrderedDict[str, ScoredCase | None] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def valid_for(self, key: tuple) -> None:
        with self.lock:
            if key != self.key:
                self.cases.clear()
                self.key = key

    def get(self, tenancy_id: str) -> tuple[bool, ScoredCase | None]:
        with self.lock:
            if tenancy_id not in self.cases:
                return False, None
            self.cases.move_to_end(tenancy_id)
            return True, self.cases[tenancy_id]

    def put(self, key: tuple, tenancy_id: str, case: ScoredCase | None) -> None:
        """Keep `case`, unless the cache moved on to another key while it was computed."""
        with self.lock:
            if self.size <= 0 or key != self.key:
                return
            self.cases[tenancy_id] = case
            self.cases.move_to_end(tenancy_id)
            while len(self.cases) > self.size:
                self.cases.popitem(last=False)


#: What comparing two runs reads of each row (serving.runs.changes).
CHANGE_COLUMNS = ("tenancy_id", "patch", "readiness_state", "queue_rank", "risk_score")


class Worklister:
    """The champion risk model and the feature store, loaded once; lists come from the latest recorded run."""

    def __init__(self, settings: ServingSettings) -> None:
        champion = load_champion(settings, RISK_MODEL)
        self.settings = settings
        self.booster, self.model, self.calibration = champion.booster, champion.ref, champion.calibration
        self._store = self._plan = None
        self._live: _Live | None = None
        self._cache = _ScoreCache(settings.score_cache)
        self._checked = time.monotonic()

    @property
    def store(self):
        """The Feast store, opened on first use (only scoring named tenancies needs it)."""
        if self._store is None:
            self._store = open_store(self.settings)
        return self._store

    @property
    def plan(self):
        """How the champion's FeatureService is fetched online, worked out once."""
        if self._plan is None:
            self._plan = online_plan(self.store, self.model.feature_service)
        return self._plan

    def reload_if_promoted(self, every_seconds: float = 0.0) -> bool:
        """Load the champion again if another version was promoted since (checked at most every `every_seconds`):
        a running service picks up a promotion without a restart. Returns whether it reloaded."""
        now = time.monotonic()
        if now - self._checked < every_seconds:
            return False
        self._checked = now
        if model_by_alias(self.settings, RISK_MODEL, CHAMPION).version == self.model.version:
            return False
        champion = load_champion(self.settings, RISK_MODEL)
        if champion.ref.feature_service != self.model.feature_service:
            self._plan = None
        self.booster, self.model, self.calibration = champion.booster, champion.ref, champion.calibration
        return True

    def check_stores(self) -> None:
        """Raise unless the online feature store answers a lookup and the runs database opens."""
        live = pd.read_parquet(live_path(self.settings), columns=["tenancy_id"])
        online_features(self.store, None, live["tenancy_id"].head(1).astype(str).tolist(), self.as_of(), self.plan)
        with open_runs(self.settings) as store:
            store.runs()

    def warm(self) -> Worklister:
        """Open the feature store and work out the online plan now (a service does this at start, not on its
        first request)."""
        _ = self.plan
        self.as_of()
        return self

    def live(self) -> _Live:
        """The ledger's latest date and each live tenancy's patch, as the live file says: re-read only when the
        file changes."""
        path = live_path(self.settings)
        stamp = os.stat(path).st_mtime_ns
        if self._live is None or self._live.stamp != stamp:
            frame = pd.read_parquet(path, columns=["tenancy_id", "patch", "event_timestamp"])
            self._live = _Live(stamp, pd.Timestamp(frame["event_timestamp"].max()).tz_localize(None).normalize(),
                               dict(zip(frame["tenancy_id"].astype(str), frame["patch"].astype(str), strict=True)))
        return self._live

    def as_of(self) -> pd.Timestamp:
        """The ledger's latest date, as the live file says."""
        return self.live().as_of

    def score(self, tenancy_ids: list[str], patches: Sequence[str] | None = None) -> ScoreResponse:
        """Risk score and reasons for the given tenancies, from the online store (fresh since the last ingest).
        With `patches`, a tenancy of any other patch is answered as unknown, like one that does not exist (and is
        not looked up). A tenancy scored since the features or the champion last changed is answered from memory
        (`score_cache`); the others are looked up and explained together."""
        live = self.live()
        key = (live.stamp, self.model.version)
        self._cache.valid_for(key)
        ids = list(dict.fromkeys(tenancy_ids))
        shown = ids if patches is None else [t for t in ids if live.patch_of.get(t) in set(patches)]
        cached = {t: self._cache.get(t) for t in shown}
        self._fill([t for t in shown if not cached[t][0]], live.as_of, cached, key)
        cases = {t: case for t, (_, case) in cached.items() if case is not None}
        return ScoreResponse(model_version=self.model.version, feature_service=self.model.feature_service,
                             as_of=str(live.as_of.date()), unknown=[t for t in ids if t not in cases],
                             scores=[cases[t] for t in ids if t in cases])

    def _fill(self, missing: list[str], as_of: pd.Timestamp, cached: dict, key: tuple) -> None:
        """Look up, score and explain the tenancies not in the cache (an unknown one is remembered as None)."""
        if not missing:
            return
        frame = online_features(self.store, None, missing, as_of, self.plan)
        found = ~np.isnan(frame[self.booster.feature_name()].to_numpy(dtype=float)).all(axis=1)
        scored = {case.tenancy_id: case for case in
                  score_cases(frame[found], self.booster, calibration=self.calibration)}
        for tenancy_id in missing:
            case = scored.get(tenancy_id)
            cached[tenancy_id] = (True, case)
            self._cache.put(key, tenancy_id, case)

    def worklist(self, top: int = 50, patch: str | Sequence[str] | None = None,
                 states: Sequence[str] = ("ready",), order: str = "risk") -> WorklistResponse:
        """The `top` highest-risk cases in the given readiness states (optionally of one patch or some), each
        patch's list capped at its capacity, from the latest recorded run. LookupError for an unknown patch. With
        `order="gain"`, the ready cases highest expected gain first, each patch's list its first cases by expected
        gain (`NoUplift` when the run holds no expected gains)."""
        if order not in ORDERS:
            raise ValueError(f"Unknown order {order!r}: use {' or '.join(ORDERS)}")
        if order == "gain" and list(states) != ["ready"]:
            raise ValueError("A list by expected gain holds ready cases only: ask for the ready state")
        with open_runs(self.settings) as store:
            run = store.latest()
            _known(store, run, patch)
            if order == "gain":
                _gains_recorded(run)
            capacity = int(run["patch_capacity"])
            rows = store.rows(run["run_id"], states, patch, capacity=capacity, top=max(0, top), order=order)
            sizes = store.queue_sizes(run["run_id"], patch)
        as_of = pd.Timestamp(run["as_of"])
        owned = owners_of(self.settings, rows["tenancy_id"].astype(str).tolist())
        shown = sizes[sizes["readiness_state"].isin(states)]
        listed = (shown["n"] - shown["held_out"].fillna(0)).groupby(shown["patch"]).sum()
        counts = sizes.groupby("readiness_state")["n"].sum()
        return WorklistResponse(
            run_id=str(run["run_id"]), model_version=str(run["model_version"]),
            feature_service=str(run["feature_service"]), policy_version=str(run["policy_version"]),
            as_of=str(as_of.date()), population=int(sizes["n"].sum()), states=list(states), order=order,
            state_counts={state: int(counts.get(state, 0)) for state in STATES},
            waiting={str(p): int(n - capacity) for p, n in listed.items() if n > capacity},
            generation_seconds=None if pd.isna(run.get("generation_seconds")) else float(run["generation_seconds"]),
            rows=[worklist_row(row, i + 1, as_of, str(run["policy_version"]), owned.get(str(row["tenancy_id"])))
                  for i, (_, row) in enumerate(rows.iterrows())])

    def changes(self, patch: str | Sequence[str] | None = None) -> ChangesResponse:
        """What changed between the latest run and the one before (optionally for one patch or some)."""
        with open_runs(self.settings) as store:
            run = store.latest()
            _known(store, run, patch)
            previous = store.previous(run["run_id"])
            rows = store.rows(run["run_id"], patch=patch, columns=CHANGE_COLUMNS)
            before = store.rows(previous["run_id"], patch=patch, columns=CHANGE_COLUMNS) if previous else rows.iloc[:0]
            payments = store.payments(run["run_id"])
        if patch is not None:
            payments = payments[payments["tenancy_id"].isin(set(rows["tenancy_id"]) | set(before["tenancy_id"]))]
        return changes(run, rows, previous, before, payments, self.settings.score_move)
