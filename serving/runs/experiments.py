"""Randomised holdouts as configuration (docs/experiments.md): which discretionary contact is held out, from when to
when, for what share of the ready cases, and how the effect is to be measured; and the arms the worklist run assigns.

An experiment is declared in a versioned YAML file (`experiments.yaml` beside this module, or the file
`ARREARS_EXPERIMENTS` names) and checked when it is read: only a discretionary outreach stage may be held out (never a
step of the pre-action protocol, vulnerability support, Breathing Space or a dispute), only `ready` cases are eligible.

A tenancy's arm is a deterministic hash of (experiment, tenancy_id): the same on every run, on every machine, so it
keeps its arm for the experiment's life. Its first assignment (the run, its stratum, its balance and arrears then)
is kept once in the runs store's `experiment_assignments` table, in the same transaction as the run that made it,
and written once to the audit trail (`experiment_assigned`). `assignments()` is what the effect report reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from casework.drafts import content_rules
from casework.policy import STATES
from casework.policy.protocol import ACTIONS as PROTOCOL_STEPS
from features.db import Database
from serving.runs.store import ASSIGNMENT_COLUMNS, RunStore, open_runs

#: The file shipped with the code (one documented example, disabled).
DEFAULT_FILE = Path(__file__).resolve().with_name("experiments.yaml")
#: The configuration's format version: a file of another version is refused, not half-read.
VERSION = 1
TREATMENT, HOLDOUT = "treatment", "holdout"
ARMS = (TREATMENT, HOLDOUT)
#: The only readiness state a case may be assigned in.
ELIGIBLE_STATES = ("ready",)
STRATA = ("risk_band", "patch")
#: Outcome kinds, and the fields each takes besides `kind`.
OUTCOMES = {"paid_within_days": ("days",), "arrears_change": ("days", "winsorise")}
FIELDS = ("name", "enabled", "description", "start", "end", "held_out_action", "eligible_states", "holdout_share",
          "strata", "outcome", "minimum_detectable_effect", "alpha", "power")
#: Actions never held out, with why (anything else that is not a discretionary outreach stage is refused too).
NEVER_HELD_OUT = {
    "vulnerability_support": "support for a vulnerable tenant is never withheld",
    "breathing_space": "a Breathing Space (Debt Respite Scheme) moratorium is the law, not a contact to test",
    "dispute": "a disputed balance is resolved, never experimented on",
    "referral": "a referral for advice or support is never withheld",
}
#: What an officer reads on a held-out case (the experiment's name follows).
NOTE = "no proactive contact this week (experiment {name})"


class ExperimentConfigError(ValueError):
    """The experiments file cannot be used; the message names the file, the experiment and what to change."""


@dataclass(frozen=True)
class Outcome:
    kind: str  #: paid_within_days or arrears_change
    days: int
    winsorise: float | None = None  #: arrears_change: the share cut off each tail before averaging


@dataclass(frozen=True)
class Experiment:
    name: str
    enabled: bool
    start: date
    end: date
    held_out_action: str  #: a discretionary outreach stage (casework/templates/outreach/content.yaml)
    eligible_states: tuple[str, ...]
    holdout_share: float  #: probability of the holdout arm
    risk_band_cuts: tuple[float, ...]  #: risk-score cut points between bands, ascending
    strata: tuple[str, ...]  #: risk_band, patch or both
    outcome: Outcome
    minimum_detectable_effect: float
    alpha: float = 0.05
    power: float = 0.8
    description: str = ""

    def active_on(self, day) -> bool:
        """Whether a run dated `day` assigns arms for this experiment."""
        return self.enabled and self.start <= pd.Timestamp(day).date() <= self.end

    def following_on(self, day) -> bool:
        """Whether `day` falls after enrolment ended but before the last outcome window closes (end + the outcome's
        days): the tenancies already assigned keep their arms (a held-out case still gets no held-out contact),
        and nobody new is assigned."""
        return self.enabled and self.end < pd.Timestamp(day).date() <= self.end + timedelta(days=self.outcome.days)

    @property
    def note(self) -> str:
        return NOTE.format(name=self.name)

    def risk_bands(self, scores: pd.Series) -> pd.Series:
        """Each score's band, named by its bounds (`0.00-0.30`, `0.30-0.60`, `0.60-1.00`)."""
        edges = (0.0, *self.risk_band_cuts, 1.0)
        labels = [f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
        index = np.searchsorted(np.asarray(self.risk_band_cuts, dtype=float),
                                pd.to_numeric(scores, errors="coerce").fillna(0).to_numpy(dtype=float), side="right")
        return pd.Series(np.asarray(labels, dtype=object)[index], index=scores.index)


def discretionary_actions() -> tuple[str, ...]:
    """The outreach stages that may be held out: those that record no protocol step (content.yaml's `records`)."""
    return tuple(stage for stage, rules in content_rules()["stages"].items() if not rules.get("records"))


# -- configuration ---------------------------------------------------------------------------------------------------
def read_experiments(path: Path | str) -> tuple[Experiment, ...]:
    """Every experiment the file declares, checked (ExperimentConfigError says what to change)."""
    path = Path(path)
    if not path.is_file():
        raise ExperimentConfigError(f"{path}: no such experiments file (set ARREARS_EXPERIMENTS to an existing file, "
                                    f"or unset it to use {DEFAULT_FILE.name} shipped with the service)")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ExperimentConfigError(f"{path}: not valid YAML ({exc})") from exc
    return parse(document, str(path))


def load_experiments(settings) -> tuple[Experiment, ...]:
    """The experiments of the file the settings name (`ARREARS_EXPERIMENTS`), else of the shipped file."""
    return read_experiments(getattr(settings, "experiments", None) or DEFAULT_FILE)


def parse(document, source: str = "experiments") -> tuple[Experiment, ...]:
    """The experiments of a parsed configuration document, each checked; enabled ones may not overlap in time (a
    run's row carries one experiment's arm)."""
    if not isinstance(document, dict) or document.get("version") != VERSION:
        found = document.get("version") if isinstance(document, dict) else None
        raise ExperimentConfigError(f"{source}: `version: {VERSION}` is required at the top (found {found!r}); this "
                                    f"service reads version {VERSION} files")
    unknown = set(document) - {"version", "experiments"}
    if unknown:
        raise ExperimentConfigError(f"{source}: unknown top-level keys {sorted(unknown)}: only version and experiments")
    listed = document.get("experiments") or []
    if not isinstance(listed, list):
        raise ExperimentConfigError(f"{source}: `experiments` must be a list of experiments (each starting `- name:`)")
    found = tuple(_experiment(item, f"{source}: experiment {i + 1}") for i, item in enumerate(listed))
    names = [e.name for e in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ExperimentConfigError(f"{source}: experiment names must be unique ({', '.join(twice)} is declared "
                                    "twice): an experiment's name is part of every tenancy's assignment hash")
    enabled = sorted((e for e in found if e.enabled), key=lambda e: e.start)
    for before, after in zip(enabled, enabled[1:], strict=False):
        if after.start <= before.end:
            raise ExperimentConfigError(
                f"{source}: enabled experiments {before.name!r} ({before.start} to {before.end}) and {after.name!r} "
                f"({after.start} to {after.end}) overlap: run one at a time (end one before the next starts, or "
                "disable one)")
    return found


def _experiment(item, where: str) -> Experiment:
    if not isinstance(item, dict):
        raise ExperimentConfigError(f"{where}: an experiment is a mapping of {', '.join(FIELDS)}")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip() or not all(c.isalnum() or c in "-_." for c in name):
        raise ExperimentConfigError(f"{where}: `name` is required: letters, digits, '-', '_' or '.' (found {name!r})")
    where = f"{where} ({name})"
    unknown = set(item) - set(FIELDS)
    if unknown:
        raise ExperimentConfigError(f"{where}: unknown fields {sorted(unknown)}: the fields are {', '.join(FIELDS)}")
    missing = [f for f in ("start", "end", "held_out_action", "holdout_share", "outcome",
                           "minimum_detectable_effect") if item.get(f) is None]
    if missing:
        raise ExperimentConfigError(f"{where}: required fields missing: {', '.join(missing)} (docs/experiments.md)")
    enabled = item.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ExperimentConfigError(f"{where}: `enabled` is true or false (found {enabled!r})")
    start, end = _day(item["start"], "start", where), _day(item["end"], "end", where)
    if end < start:
        raise ExperimentConfigError(f"{where}: `end` ({end}) is before `start` ({start})")
    strata = item.get("strata") or {}
    if not isinstance(strata, dict):
        raise ExperimentConfigError(f"{where}: `strata` is a mapping: by (risk_band and/or patch) and "
                                    "risk_band_cuts (ascending scores between 0 and 1)")
    return Experiment(
        name=name, enabled=enabled, start=start, end=end,
        held_out_action=_held_out_action(item["held_out_action"], where),
        eligible_states=_eligible(item.get("eligible_states", list(ELIGIBLE_STATES)), where),
        holdout_share=_share(item["holdout_share"], where), risk_band_cuts=_cuts(strata, where),
        strata=_strata(strata, where), outcome=_outcome(item["outcome"], where),
        minimum_detectable_effect=_positive(item["minimum_detectable_effect"], "minimum_detectable_effect", where),
        alpha=_probability(item.get("alpha", 0.05), "alpha", where),
        power=_probability(item.get("power", 0.8), "power", where),
        description=str(item.get("description") or "").strip())


def _day(value, field: str, where: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ExperimentConfigError(f"{where}: `{field}` is a date, YYYY-MM-DD (found {value!r})") from exc


def _held_out_action(value, where: str) -> str:
    allowed = discretionary_actions()
    action = str(value).strip()
    if action in allowed:
        return action
    if action in content_rules()["stages"] or action in PROTOCOL_STEPS:
        why = f"{action!r} is a step of the pre-action protocol: statutory steps are never held out"
    elif any(word in action.lower() for word in ("vulnerab", "support")):
        why = f"{action!r}: {NEVER_HELD_OUT['vulnerability_support']}"
    elif "breathing" in action.lower():
        why = f"{action!r}: {NEVER_HELD_OUT['breathing_space']}"
    elif "disput" in action.lower():
        why = f"{action!r}: {NEVER_HELD_OUT['dispute']}"
    elif "referr" in action.lower():
        why = f"{action!r}: {NEVER_HELD_OUT['referral']}"
    else:
        why = f"{action!r} is not an outreach stage"
    raise ExperimentConfigError(f"{where}: `held_out_action` {why}. Hold out one discretionary outreach stage: "
                                f"{', '.join(allowed)}")


def _eligible(value, where: str) -> tuple[str, ...]:
    states = [value] if isinstance(value, str) else list(value or [])
    refused = [s for s in states if s not in ELIGIBLE_STATES]
    if refused or not states:
        named = ", ".join(f"{s!r}" + ("" if s in STATES else " (not a readiness state)") for s in refused)
        raise ExperimentConfigError(
            f"{where}: `eligible_states` may hold only 'ready' (found {named or 'none'}): blocked, disputed, review, "
            "hold and every other state are never assigned to an arm (a case that cannot be chased now is not an "
            "experiment's to withhold from). Write `eligible_states: [ready]`")
    return tuple(dict.fromkeys(states))


def _share(value, where: str) -> float:
    try:
        share = float(value)
    except (TypeError, ValueError) as exc:
        raise ExperimentConfigError(f"{where}: `holdout_share` is a number between 0 and 1 (found {value!r})") from exc
    if not 0 < share < 1:
        raise ExperimentConfigError(f"{where}: `holdout_share` must be strictly between 0 and 1 (found {share}): "
                                    "the share of ready cases held out, e.g. 0.2")
    return share


def _cuts(strata: dict, where: str) -> tuple[float, ...]:
    cuts = strata.get("risk_band_cuts", [0.3, 0.6])
    try:
        cuts = tuple(float(c) for c in cuts)
    except (TypeError, ValueError) as exc:
        raise ExperimentConfigError(f"{where}: `strata.risk_band_cuts` is a list of risk scores (found "
                                    f"{cuts!r})") from exc
    if any(not 0 < c < 1 for c in cuts) or list(cuts) != sorted(set(cuts)):
        raise ExperimentConfigError(f"{where}: `strata.risk_band_cuts` must be distinct scores between 0 and 1, "
                                    f"ascending (found {list(cuts)}), e.g. [0.3, 0.6]")
    return cuts


def _strata(strata: dict, where: str) -> tuple[str, ...]:
    by = strata.get("by", list(STRATA))
    by = [by] if isinstance(by, str) else list(by or [])
    if not by or any(b not in STRATA for b in by):
        raise ExperimentConfigError(f"{where}: `strata.by` lists {' and/or '.join(STRATA)} (found {by!r})")
    return tuple(b for b in STRATA if b in by)


def _outcome(value, where: str) -> Outcome:
    kinds = "; ".join(f"{{kind: {k}, {', '.join(f'{f}: ...' for f in fs)}}}" for k, fs in OUTCOMES.items())
    if not isinstance(value, dict) or value.get("kind") not in OUTCOMES:
        raise ExperimentConfigError(f"{where}: `outcome` is one of {kinds} (found {value!r})")
    kind = value["kind"]
    unknown = set(value) - {"kind", *OUTCOMES[kind]}
    if unknown:
        raise ExperimentConfigError(f"{where}: outcome {kind} takes {', '.join(OUTCOMES[kind])} (not "
                                    f"{', '.join(sorted(unknown))})")
    days = value.get("days")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365:
        raise ExperimentConfigError(f"{where}: outcome `days` is a whole number of days, 1 to 365 (found {days!r})")
    winsorise = None
    if kind == "arrears_change":
        winsorise = value.get("winsorise", 0.01)
        if not isinstance(winsorise, (int, float)) or not 0 <= winsorise < 0.5:
            raise ExperimentConfigError(f"{where}: outcome `winsorise` is the share cut off each tail, at least 0 "
                                        f"and under 0.5 (found {winsorise!r}), e.g. 0.01")
        winsorise = float(winsorise)
    return Outcome(kind, days, winsorise)


def _positive(value, field: str, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ExperimentConfigError(f"{where}: `{field}` is a positive number (found {value!r})") from exc
    if not number > 0:
        raise ExperimentConfigError(f"{where}: `{field}` must be above 0 (found {number}): the smallest effect worth "
                                    "detecting, in the outcome's unit (a share for paid_within_days, pounds for "
                                    "arrears_change)")
    return number


def _probability(value, field: str, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ExperimentConfigError(f"{where}: `{field}` is a number between 0 and 1 (found {value!r})") from exc
    if not 0 < number < 1:
        raise ExperimentConfigError(f"{where}: `{field}` must be strictly between 0 and 1 (found {number})")
    return number


# -- assignment ------------------------------------------------------------------------------------------------------
def draw(experiment: str, tenancy_id: str) -> float:
    """A tenancy's uniform draw in [0, 1) for an experiment: the first 8 bytes of SHA-256 of the two, over 2**64."""
    digest = hashlib.sha256(f"{experiment}\x1f{tenancy_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def arm_for(drawn, holdout_share: float):
    """The arm of a draw (or an array of draws): held out below the share."""
    return np.where(np.asarray(drawn, dtype=float) < holdout_share, HOLDOUT, TREATMENT)


def arm_of(experiment: Experiment, tenancy_id: str) -> str:
    return str(arm_for(draw(experiment.name, tenancy_id), experiment.holdout_share))


def active(experiments: Sequence[Experiment], day) -> Experiment | None:
    """The enabled experiment whose window holds `day` (enabled ones never overlap)."""
    return next((e for e in experiments if e.active_on(day)), None)


def in_force(experiments: Sequence[Experiment], day) -> Experiment | None:
    """The experiment whose arms a run dated `day` carries: the one enrolling, else one whose outcome windows are
    still open (`Experiment.following_on`)."""
    return active(experiments, day) or next((e for e in experiments if e.following_on(day)), None)


def assign(frame: pd.DataFrame, experiments: Sequence[Experiment], as_of, run_id: str,
           known: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The run's rows with `experiment` and `arm` (None where not assigned), and the first assignments this run
    makes. Only rows in an eligible state (ready) on a day inside an enabled experiment's window are assigned; a
    tenancy assigned before (`known`: its experiment, tenancy_id and arm) keeps the arm it was first given.
    `frame`: tenancy_id, patch, readiness_state, risk_score, balance, arrears_weeks. Inputs are not changed."""
    rows = frame.assign(experiment=None, arm=None).astype({"experiment": object, "arm": object})
    experiment = in_force(experiments, as_of)
    if experiment is None:
        return rows, pd.DataFrame(columns=list(ASSIGNMENT_COLUMNS))
    before = {} if known is None or known.empty else dict(zip(
        known.loc[known["experiment"] == experiment.name, "tenancy_id"].astype(str),
        known.loc[known["experiment"] == experiment.name, "arm"].astype(str), strict=True))
    eligible = rows["readiness_state"].isin(experiment.eligible_states).to_numpy()
    if not experiment.active_on(as_of):  # enrolment over, outcomes still open: the assigned keep their arms
        eligible &= rows["tenancy_id"].astype(str).isin(before).to_numpy()
    ids = rows.loc[eligible, "tenancy_id"].astype(str)
    draws = ids.map(lambda t: draw(experiment.name, t))
    arms = pd.Series(arm_for(draws, experiment.holdout_share), index=ids.index, dtype=object)
    arms = arms.where(~ids.isin(before), ids.map(before))
    rows.loc[eligible, "experiment"] = experiment.name
    rows.loc[eligible, "arm"] = arms
    fresh = rows.loc[eligible].loc[~ids.isin(before).to_numpy()]
    bands = experiment.risk_bands(fresh["risk_score"])
    patches = fresh["patch"].astype(str)
    parts = {"risk_band": bands, "patch": patches}
    stratum = pd.Series(["|".join(values) for values in zip(*(parts[s] for s in experiment.strata), strict=True)],
                        index=fresh.index, dtype=object)
    assigned = pd.DataFrame({
        "experiment": experiment.name, "tenancy_id": fresh["tenancy_id"].astype(str), "arm": fresh["arm"],
        "draw": draws.loc[fresh.index], "holdout_share": experiment.holdout_share, "stratum": stratum,
        "patch": patches, "risk_band": bands, "assigned_on": pd.Timestamp(as_of).date(), "run_id": run_id,
        "balance_at_assignment": fresh["balance"].astype(float),
        "arrears_weeks_at_assignment": fresh["arrears_weeks"].astype(float),
        "risk_score": fresh["risk_score"].astype(float)}, columns=list(ASSIGNMENT_COLUMNS))
    return rows, assigned.reset_index(drop=True)


def queue_ranks(frame: pd.DataFrame) -> pd.Series:
    """Each row's rank within its (state, patch) queue, highest risk first, held-out cases queued apart: capacity is
    the officers' proactive contacts, and a held-out case takes none of it (`frame` in risk order)."""
    held = frame["arm"].eq(HOLDOUT) if "arm" in frame else pd.Series(False, index=frame.index)
    return frame.assign(_held=held.to_numpy()).groupby(["readiness_state", "patch", "_held"], sort=False,
                                                       dropna=False).cumcount() + 1


def held_out(experiments: Sequence[Experiment], experiment: str | None, arm: str | None) -> Experiment | None:
    """The experiment holding a case out, from its row in the latest run (its experiment and arm), while that
    experiment is still configured and enabled; else None."""
    if arm != HOLDOUT or not experiment:
        return None
    return next((e for e in experiments if e.name == experiment and e.enabled), None)


def held_out_detail(experiment: Experiment | None) -> dict | None:
    """What a draft and a release check carry of the holdout (casework.drafts refuses the held-out stage)."""
    return None if experiment is None else {"experiment": experiment.name, "action": experiment.held_out_action,
                                            "note": experiment.note}


def experiment_fields(row) -> dict:
    """A run's row's experiment and arm (None where it has none), and the note an officer reads on a held-out case."""
    def text(value):
        return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)
    experiment, arm = text(row.get("experiment")), text(row.get("arm"))
    return {"experiment": experiment, "arm": arm,
            "experiment_note": NOTE.format(name=experiment) if arm == HOLDOUT and experiment else None}


# -- what was assigned -----------------------------------------------------------------------------------------------
def assignments(source, experiment: str | None = None) -> pd.DataFrame:
    """Every first assignment (of one experiment, or all), oldest first: experiment, tenancy_id, arm, draw,
    holdout_share, stratum, patch, risk_band, assigned_on (a date), run_id, balance_at_assignment,
    arrears_weeks_at_assignment, risk_score. `source`: serving settings (the runs store is opened), a RunStore or
    its Database."""
    if not isinstance(source, (RunStore, Database)):
        with open_runs(source) as store:
            return assignments(store, experiment)
    db = source.db if isinstance(source, RunStore) else source
    sql, params = f"SELECT {', '.join(ASSIGNMENT_COLUMNS)} FROM experiment_assignments", []
    if experiment is not None:
        sql, params = sql + " WHERE experiment = ?", [experiment]
    frame = db.query(sql + " ORDER BY experiment, assigned_on, tenancy_id", params)
    frame = frame.reindex(columns=list(ASSIGNMENT_COLUMNS))
    frame["assigned_on"] = pd.to_datetime(frame["assigned_on"]).dt.date
    for column in ("draw", "holdout_share", "balance_at_assignment", "arrears_weeks_at_assignment", "risk_score"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame
