"""Measuring a randomised-holdout experiment: did working the list change what tenants pay? Pure functions over
DataFrames (no I/O; `monitoring.experiment_reports` reads the arms and the ledger and writes the report).

**The estimand.** The average effect of being in the treatment arm (worked as the list says) against the holdout arm
(no proactive contact), among the tenancies the experiment assigned: treatment mean minus holdout mean of the
outcome. Assignment is random (a hash of experiment and tenancy), so the plain difference in means is unbiased.

**The estimator: Lin's regression adjustment** (Lin 2013, "Agnostic notes on regression adjustments to experimental
data"). The outcome is regressed by ordinary least squares on an intercept, the arm indicator, the pre-period
covariates centred at their pooled mean and the arm × centred-covariate interactions; the arm's coefficient is the
effect. It is the same as fitting each arm's own line and comparing the two lines at the pooled covariate mean, so
no arm's slope is imposed on the other and the estimate stays consistent however the outcome depends on the
covariates. Its standard error is the HC2 sandwich (residuals inflated by 1 / (1 - leverage)), which for the
unadjusted regression is exactly Neyman's sqrt(s_t²/n_t + s_h²/n_h). The covariates come from before assignment (the
balance then, its change over the 56 days before, receipts in the 28 days before), so they cannot carry the effect;
they only explain outcome variance, which narrows the interval: the *variance reduction* reported is
1 - SE²(adjusted) / SE²(unadjusted). Covariates that do not vary within an arm, or add nothing to the others, are
left out; an arm with fewer than `ADJUST_MIN_PER_ARM` tenancies is estimated unadjusted (three slopes per arm from
a handful of rows would cost more precision than they save); the method says which was done.

**The interval** is the normal approximation, effect ± z(0.975) × SE, fine at the sizes an experiment runs to
(hundreds per arm); `plan` says how many that is.

**By stratum** (risk band × patch): the same estimator within each stratum, and an overall effect that weights each
stratum by its share of the tenancies (size weights: the overall is the portfolio's average effect, whatever the
effects' differences between strata; precision weights would answer a different question when effects differ).
SE² = Σ w² SE². A stratum with fewer than two tenancies in an arm has no estimate and is left out of the overall,
and the report says how many tenancies that leaves out.

**No peeking: a fixed horizon.** The effect is computed once, when every assigned tenancy's outcome window has
passed: the *horizon* is the experiment's end date plus the outcome window (a tenancy assigned on the last day has
its outcome then), and the effect is read only when the ledger holds data up to the horizon. Before it the report
shows accrual (counts by arm and stratum) and balance only, and says "interim: effect withheld until <horizon>
(fixed horizon)"; the outcomes are not even read. Looking at the effect every week and stopping when it looks
significant would make the 5% false-positive rate several times larger; `plan` sizes the experiment beforehand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from features.feeds.contract import RECEIPT_TYPES
from serving.runs.experiments import ARMS, HOLDOUT, TREATMENT
from training.labels import without_reversed

#: |standardised mean difference| at or above this flags a pre-period feature as imbalanced.
BALANCE_THRESHOLD = 0.1
#: Below this many tenancies in an arm, the effect is estimated without covariates.
ADJUST_MIN_PER_ARM = 10
#: The pre-period covariates read from the ledger (pounds; see `pre_period`).
COVARIATES = ("pre_balance", "pre_change_56d", "pre_receipts_28d")
#: What the outcome kinds measure, and their unit.
OUTCOME_KINDS = {"paid_within_days": "share paying", "arrears_change": "pounds"}
METHOD_ADJUSTED = "Lin regression adjustment (treatment × centred covariates), HC2 standard error"
METHOD_UNADJUSTED = "difference in means, Neyman (HC2) standard error"


# -- the estimate --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Effect:
    """Treatment minus holdout, with its 95% (or `level`) normal-approximation interval, and the unadjusted
    difference beside it."""

    effect: float
    se: float
    low: float
    high: float
    n_treatment: int
    n_holdout: int
    mean_treatment: float
    mean_holdout: float
    method: str
    covariates: tuple[str, ...] = ()
    unadjusted_effect: float = math.nan
    unadjusted_se: float = math.nan
    #: 1 - SE²/SE²(unadjusted): the share of the difference's variance the covariates removed.
    variance_reduction: float = 0.0
    level: float = 0.95

    @property
    def unadjusted_interval(self) -> tuple[float, float]:
        z = z_value(self.level)
        return self.unadjusted_effect - z * self.unadjusted_se, self.unadjusted_effect + z * self.unadjusted_se

    def to_dict(self) -> dict[str, Any]:
        low, high = self.unadjusted_interval
        return json_safe(asdict(self) | {"unadjusted_low": low, "unadjusted_high": high})


def z_value(level: float = 0.95) -> float:
    """The two-sided normal quantile of a `level` interval (1.959964 for 95%)."""
    return NormalDist().inv_cdf(0.5 + level / 2)


def _arms(frame: pd.DataFrame, arm: str, treatment: str, holdout: str) -> np.ndarray:
    values = frame[arm].astype(str)
    unknown = sorted(set(values) - {treatment, holdout})
    if unknown:
        raise ValueError(f"{arm} holds {unknown}: only {treatment!r} and {holdout!r} are arms")
    return (values == treatment).to_numpy(dtype=float)


def _usable(x: np.ndarray, t: np.ndarray) -> list[int]:
    """The covariate columns that vary within each arm and add rank to those kept before them (in each arm)."""
    kept: list[int] = []
    for j in range(x.shape[1]):
        ok = True
        for in_arm in (t == 1, t == 0):
            block = np.column_stack([np.ones(in_arm.sum()), x[in_arm][:, [*kept, j]]])
            block = block / np.maximum(np.abs(block).max(axis=0), 1e-300)
            if np.linalg.matrix_rank(block) < block.shape[1]:
                ok = False
        if ok:
            kept.append(j)
    return kept


def hc2_ols(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS coefficients of y on the columns of z and their HC2 covariance matrix."""
    zz_inv = np.linalg.inv(z.T @ z)
    beta = zz_inv @ (z.T @ y)
    residual = y - z @ beta
    leverage = np.einsum("ij,jk,ik->i", z, zz_inv, z)
    if np.any(leverage >= 1 - 1e-10):
        raise np.linalg.LinAlgError("a tenancy's leverage is 1: too few rows for these covariates")
    meat = (z * (residual**2 / (1 - leverage))[:, None]).T @ z
    return beta, zz_inv @ meat @ zz_inv


def _lin(y: np.ndarray, t: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """Lin's estimate and its HC2 standard error (x: covariates, at least one column)."""
    centred = x - x.mean(axis=0)
    centred = centred / np.where(centred.std(axis=0) > 0, centred.std(axis=0), 1.0)  # conditioning only
    z = np.column_stack([np.ones(len(y)), t, centred, t[:, None] * centred])
    beta, cov = hc2_ols(z, y)
    return float(beta[1]), float(math.sqrt(cov[1, 1]))


def estimate(frame: pd.DataFrame, outcome: str, arm: str = "arm", covariates: Sequence[str] = COVARIATES, *,
             treatment: str = TREATMENT, holdout: str = HOLDOUT, level: float = 0.95,
             adjust_min_per_arm: int = ADJUST_MIN_PER_ARM) -> Effect:
    """The effect of `treatment` against `holdout` on `outcome`, adjusted for `covariates` by Lin's regression
    adjustment with an HC2 standard error (the module's docstring), with the unadjusted difference in means and
    the variance reduction achieved. Needs at least two tenancies in each arm and no missing values."""
    columns = [outcome, *covariates]
    if frame[columns].isna().any().any():
        raise ValueError(f"missing values in {[c for c in columns if frame[c].isna().any()]}")
    t = _arms(frame, arm, treatment, holdout)
    y = frame[outcome].to_numpy(dtype=float)
    n_t, n_h = int(t.sum()), int(len(t) - t.sum())
    if min(n_t, n_h) < 2:
        raise ValueError(f"an effect needs at least 2 tenancies in each arm ({n_t} treatment, {n_h} holdout)")
    y_t, y_h = y[t == 1], y[t == 0]
    raw = float(y_t.mean() - y_h.mean())
    raw_se = float(math.sqrt(y_t.var(ddof=1) / n_t + y_h.var(ddof=1) / n_h))
    effect, se, method, used = raw, raw_se, METHOD_UNADJUSTED, ()
    x = frame[list(covariates)].to_numpy(dtype=float).reshape(len(frame), len(covariates))
    kept = _usable(x, t) if len(covariates) and min(n_t, n_h) >= adjust_min_per_arm else []
    if kept:
        try:
            effect, se = _lin(y, t, x[:, kept])
            method, used = METHOD_ADJUSTED, tuple(covariates[j] for j in kept)
        except np.linalg.LinAlgError:
            pass
    z = z_value(level)
    reduction = 1 - se**2 / raw_se**2 if raw_se > 0 else 0.0
    return Effect(effect, se, effect - z * se, effect + z * se, n_t, n_h, float(y_t.mean()), float(y_h.mean()),
                  method, used, raw, raw_se, float(reduction), level)


def r_squared(frame: pd.DataFrame, outcome: str, covariates: Sequence[str] = COVARIATES) -> float:
    """The share of the outcome's variance the covariates explain (OLS with an intercept, one pooled fit): about the
    variance reduction the adjustment will achieve, which `plan` takes."""
    y = frame[outcome].to_numpy(dtype=float)
    z = np.column_stack([np.ones(len(y)), frame[list(covariates)].to_numpy(dtype=float)])
    fitted = z @ np.linalg.lstsq(z, y, rcond=None)[0]
    total = float(((y - y.mean()) ** 2).sum())
    return 0.0 if total == 0 else max(0.0, 1 - float(((y - fitted) ** 2).sum()) / total)


# -- by stratum ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StratifiedEffect:
    """Each stratum's effect and the overall effect weighted by stratum size (`weights`); `skipped` names the
    strata without an estimate (too few in an arm) and how many tenancies they hold."""

    overall: Effect
    strata: dict[str, Effect]
    weights: dict[str, float]
    skipped: dict[str, int] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        rows = [{"stratum": name, "weight": self.weights[name], **asdict(e)} for name, e in self.strata.items()]
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return json_safe({"overall": self.overall.to_dict(), "weighting": "size (share of the estimated tenancies)",
                          "strata": [{"stratum": name, "weight": self.weights[name], **e.to_dict()}
                                     for name, e in self.strata.items()],
                          "skipped": [{"stratum": name, "tenancies": n} for name, n in self.skipped.items()]})


def by_stratum(frame: pd.DataFrame, outcome: str, arm: str = "arm", covariates: Sequence[str] = COVARIATES,
               stratum: str = "stratum", *, treatment: str = TREATMENT, holdout: str = HOLDOUT, level: float = 0.95,
               adjust_min_per_arm: int = ADJUST_MIN_PER_ARM) -> StratifiedEffect:
    """`estimate` within each stratum, and their size-weighted overall: effect Σ w_s τ_s and SE sqrt(Σ w_s² SE_s²),
    w_s the stratum's share of the tenancies of the strata with an estimate (as is the unadjusted overall)."""
    strata, skipped = {}, {}
    for name, part in frame.groupby(stratum, sort=True):
        arms = part[arm].astype(str)
        if min((arms == treatment).sum(), (arms == holdout).sum()) < 2:
            skipped[str(name)] = len(part)
            continue
        strata[str(name)] = estimate(part, outcome, arm, covariates, treatment=treatment, holdout=holdout,
                                     level=level, adjust_min_per_arm=adjust_min_per_arm)
    if not strata:
        raise ValueError("no stratum has 2 tenancies in each arm")
    sizes = pd.Series({name: e.n_treatment + e.n_holdout for name, e in strata.items()}, dtype=float)
    weights = (sizes / sizes.sum()).to_dict()
    return StratifiedEffect(_size_weighted(strata, weights, level), strata, weights, skipped)


def _size_weighted(strata: Mapping[str, Effect], weights: Mapping[str, float], level: float) -> Effect:
    """The overall of stratum estimates: Σ w τ and sqrt(Σ w² SE²), for the adjusted and the unadjusted alike."""
    def pooled(value) -> float:
        return float(sum(weights[name] * value(e) for name, e in strata.items()))

    def pooled_se(se) -> float:
        return math.sqrt(sum(weights[name] ** 2 * se(e) ** 2 for name, e in strata.items()))

    effect, se = pooled(lambda e: e.effect), pooled_se(lambda e: e.se)
    raw, raw_se = pooled(lambda e: e.unadjusted_effect), pooled_se(lambda e: e.unadjusted_se)
    z = z_value(level)
    return Effect(effect, se, effect - z * se, effect + z * se, sum(e.n_treatment for e in strata.values()),
                  sum(e.n_holdout for e in strata.values()), pooled(lambda e: e.mean_treatment),
                  pooled(lambda e: e.mean_holdout),
                  "size-weighted over strata: " + "; ".join(sorted({e.method for e in strata.values()})),
                  tuple(dict.fromkeys(c for e in strata.values() for c in e.covariates)),
                  raw, raw_se, 1 - se**2 / raw_se**2 if raw_se > 0 else 0.0, level)


# -- balance -------------------------------------------------------------------------------------------------------
def balance(frame: pd.DataFrame, features: Sequence[str], arm: str = "arm", *, treatment: str = TREATMENT,
            holdout: str = HOLDOUT, threshold: float = BALANCE_THRESHOLD) -> pd.DataFrame:
    """Are the arms alike before treatment? Per pre-period feature: each arm's mean and the standardised mean
    difference d = (mean_t - mean_h) / sqrt((var_t + var_h) / 2) (sample variances), flagged when |d| >= threshold.
    A feature constant in both arms has d = 0 when the means agree (and infinite when they do not)."""
    t = _arms(frame, arm, treatment, holdout)
    rows = []
    for feature in features:
        values = frame[feature].to_numpy(dtype=float)
        treated, held = values[t == 1], values[t == 0]
        treated, held = treated[~np.isnan(treated)], held[~np.isnan(held)]
        difference = treated.mean() - held.mean() if len(treated) and len(held) else math.nan
        spread = math.sqrt((_var(treated) + _var(held)) / 2)
        d = difference / spread if spread > 0 else (0.0 if difference == 0 else math.copysign(math.inf, difference))
        rows.append({"feature": feature, "mean_treatment": treated.mean() if len(treated) else math.nan,
                     "mean_holdout": held.mean() if len(held) else math.nan, "smd": d,
                     "flagged": bool(abs(d) >= threshold) if not math.isnan(d) else False})
    return pd.DataFrame(rows, columns=["feature", "mean_treatment", "mean_holdout", "smd", "flagged"])


def _var(values: np.ndarray) -> float:
    return float(values.var(ddof=1)) if len(values) > 1 else 0.0


# -- planning ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """How long the experiment must enrol to detect `mde` with `power` at two-sided `alpha`."""

    mde: float
    sd: float
    r_squared: float
    holdout_share: float
    entrants_per_week: float
    power: float
    alpha: float
    n_total: int
    n_holdout: int
    n_treatment: int
    weeks: int
    already: int = 0  #: tenancies counted before the weekly entrants (the first run's ready cases, or assigned so far)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def plan(mde: float, sd: float, holdout_share: float, entrants_per_week: float, r_squared: float = 0.0, *,
         power: float = 0.8, alpha: float = 0.05, already: int = 0) -> Plan:
    """Sample size and weeks of enrolment for a two-arm comparison of means (normal approximation):

        n = (z(1 - alpha/2) + z(power))² × sd² × (1 - R²) / (p (1 - p) × mde²)

    tenancies in all, p the holdout share (n·p held out), R² the share of the outcome's variance the pre-period
    covariates explain (the adjustment's variance reduction); weeks = ceil((n - already) / eligible entrants per
    week), at least 1, where `already` counts tenancies in before the weekly flow (the first run assigns every case
    ready then). The effect is read after those weeks plus the outcome window (the fixed horizon)."""
    if not (mde > 0 and sd > 0 and 0 < holdout_share < 1 and entrants_per_week > 0 and 0 <= r_squared < 1):
        raise ValueError("plan needs mde > 0, sd > 0, 0 < holdout_share < 1, entrants_per_week > 0, 0 <= R² < 1")
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    n = math.ceil(z**2 * sd**2 * (1 - r_squared) / (holdout_share * (1 - holdout_share) * mde**2))
    n_holdout = math.ceil(n * holdout_share)
    weeks = max(1, math.ceil(max(n - already, 0) / entrants_per_week))
    return Plan(mde, sd, r_squared, holdout_share, entrants_per_week, power, alpha, n, n_holdout, n - n_holdout,
                weeks, already)


# -- the fixed horizon ---------------------------------------------------------------------------------------------
def horizon(end: date, outcome_days: int) -> date:
    """The day the last assigned tenancy's outcome window closes: the experiment's end plus the window."""
    return pd.Timestamp(end).date() + timedelta(days=int(outcome_days))


def effect_readable(end: date, outcome_days: int, data_end: date) -> bool:
    """The fixed-horizon rule: the effect may be computed only when the data (the ledger's last posting) reach
    the horizon, so every assigned tenancy's outcome is complete. Never before, whatever it would show."""
    return pd.Timestamp(data_end).date() >= horizon(end, outcome_days)


def horizon_words(end: date, outcome_days: int, data_end: date) -> str:
    day = horizon(end, outcome_days)
    if effect_readable(end, outcome_days, data_end):
        return f"final: every outcome window closed by {day} (fixed horizon); data to {pd.Timestamp(data_end).date()}"
    return f"interim: effect withheld until {day} (fixed horizon)"


# -- outcomes and pre-period covariates from the ledger's transactions (pure) -------------------------------------
@dataclass(frozen=True)
class Outcome:
    """An experiment's primary outcome: `paid_within_days` (1 when any receipt, a payment or a benefit credit not
    put back, is posted in (assigned_on, assigned_on + days]) or `arrears_change` (balance at assigned_on + days
    minus balance at assigned_on, pounds, winsorised at the `winsorise` and 1 - `winsorise` quantiles of both arms
    together)."""

    kind: str
    days: int
    winsorise: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in OUTCOME_KINDS:
            raise ValueError(f"outcome kind {self.kind!r} is not one of {', '.join(OUTCOME_KINDS)}")
        if self.days <= 0 or (self.winsorise is not None and not 0 <= self.winsorise < 0.5):
            raise ValueError("an outcome needs days > 0 and 0 <= winsorise < 0.5")

    @property
    def unit(self) -> str:
        return OUTCOME_KINDS[self.kind]


def _cumulative_at(ledger: pd.DataFrame, value: str, units: pd.DataFrame, day: pd.Series) -> np.ndarray:
    """Each unit's running total of `value` (of its tenancy's rows in `ledger`, columns tenancy_id, posted_date)
    up to and including `day`; 0 before its first row."""
    if ledger.empty:
        return np.zeros(len(units))
    running = ledger.sort_values(["tenancy_id", "posted_date"], kind="stable")
    running = running.assign(_total=running.groupby("tenancy_id")[value].cumsum())
    running = running.drop_duplicates(["tenancy_id", "posted_date"], keep="last")
    asked = pd.DataFrame({"tenancy_id": units["tenancy_id"].astype(str).to_numpy(),
                          "posted_date": pd.to_datetime(day).to_numpy().astype("datetime64[ns]"),
                          "_row": np.arange(len(units))})
    running = running[["tenancy_id", "posted_date", "_total"]].astype({"tenancy_id": str,
                                                                       "posted_date": "datetime64[ns]"})
    found = pd.merge_asof(asked.sort_values("posted_date"), running.sort_values("posted_date"), on="posted_date",
                          by="tenancy_id", direction="backward")
    return found.sort_values("_row")["_total"].fillna(0).to_numpy(dtype=float)


def _receipts(transactions: pd.DataFrame) -> pd.DataFrame:
    """Receipts (payments and benefit credits) less those put back, as positive pence and a count of one each."""
    kept = without_reversed(transactions)
    kept = kept[kept["type"].isin(RECEIPT_TYPES)]
    return pd.DataFrame({"tenancy_id": kept["tenancy_id"], "posted_date": kept["posted_date"],
                         "pence": -kept["amount_pence"].astype(float), "count": 1.0})


def _balances(transactions: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"tenancy_id": transactions["tenancy_id"], "posted_date": transactions["posted_date"],
                         "pence": transactions["amount_pence"].astype(float)})


def pre_period(units: pd.DataFrame, transactions: pd.DataFrame) -> pd.DataFrame:
    """The pre-period covariates of each unit (tenancy_id, assigned_on), in pounds, from its tenancy's
    transactions (tenancy_id, posted_date, type, amount_pence, reference) posted on or before assigned_on:
    `pre_balance` (the balance then), `pre_change_56d` (its change over the 56 days before) and `pre_receipts_28d`
    (received in the 28 days before)."""
    day = pd.to_datetime(units["assigned_on"])
    balances, receipts = _balances(transactions), _receipts(transactions)
    now = _cumulative_at(balances, "pence", units, day)
    before = _cumulative_at(balances, "pence", units, day - pd.Timedelta(days=56))
    received = (_cumulative_at(receipts, "pence", units, day)
                - _cumulative_at(receipts, "pence", units, day - pd.Timedelta(days=28)))
    return pd.DataFrame({"pre_balance": now / 100, "pre_change_56d": (now - before) / 100,
                         "pre_receipts_28d": received / 100}, index=units.index)


def outcome_values(units: pd.DataFrame, transactions: pd.DataFrame, outcome: Outcome) -> pd.Series:
    """Each unit's outcome over (assigned_on, assigned_on + days] (see `Outcome`). Only call it once the data
    reach every unit's window end: a window cut short would read as "did not pay"."""
    day = pd.to_datetime(units["assigned_on"])
    then = day + pd.Timedelta(days=outcome.days)
    if outcome.kind == "paid_within_days":
        receipts = _receipts(transactions)
        paid = _cumulative_at(receipts, "count", units, then) - _cumulative_at(receipts, "count", units, day)
        return pd.Series((paid > 0).astype(float), index=units.index, name="outcome")
    balances = _balances(transactions)
    change = (_cumulative_at(balances, "pence", units, then) - _cumulative_at(balances, "pence", units, day)) / 100
    return pd.Series(winsorise(change, outcome.winsorise), index=units.index, name="outcome")


def winsorise(values: np.ndarray, share: float | None) -> np.ndarray:
    """Values clipped to their `share` and 1 - `share` quantiles (nothing clipped when share is None or 0)."""
    values = np.asarray(values, dtype=float)
    if not share or len(values) == 0:
        return values
    low, high = np.quantile(values, [share, 1 - share])
    return np.clip(values, low, high)


# -- the report ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Definition:
    """What the report needs of an experiment's configuration (the YAML the runs room loads)."""

    name: str
    start: date
    end: date
    holdout_share: float
    outcome: Outcome
    minimum_detectable_effect: float | None = None
    alpha: float = 0.05  #: the interval is 1 - alpha (95% by default)
    power: float = 0.8

    @property
    def horizon(self) -> date:
        return horizon(self.end, self.outcome.days)


def first_assignments(assignments: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """One row per tenancy: its first assignment within the experiment (a tenancy stays in its arm for the
    experiment's life), and the problems found: tenancies recorded in both arms are left out and counted."""
    ordered = assignments.sort_values(["assigned_on", "tenancy_id"], kind="stable")
    arms = ordered.groupby("tenancy_id")["arm"].nunique()
    both = arms.index[arms > 1]
    problems = [f"{len(both)} tenancies were recorded in both arms and are left out (assignment must be stable)"] \
        if len(both) else []
    first = ordered[~ordered["tenancy_id"].isin(both)].drop_duplicates("tenancy_id", keep="first")
    return first.reset_index(drop=True), problems


def accrual(units: pd.DataFrame, stratum: str = "stratum", arm: str = "arm") -> pd.DataFrame:
    """Tenancies assigned per stratum and arm, with each stratum's holdout share, and a total row."""
    counts = pd.crosstab(units[stratum].astype(str), units[arm].astype(str)).reindex(columns=list(ARMS),
                                                                                     fill_value=0)
    counts.loc["all"] = counts.sum()
    counts["total"] = counts[TREATMENT] + counts[HOLDOUT]
    counts["holdout_share"] = counts[HOLDOUT] / counts["total"].where(counts["total"] > 0)
    return counts.rename_axis(index="stratum", columns=None).reset_index()


#: Pre-period features of the assignment record the balance table also checks, when the arms carry them.
RECORDED_FEATURES = ("risk_score", "arrears_weeks_at_assignment", "balance_at_assignment")


@dataclass(frozen=True)
class ExperimentReport:
    """An experiment as measured at `data_end`. `effect` and `by_stratum` are None until the fixed horizon."""

    definition: Definition
    data_end: date
    status: str
    accrual: pd.DataFrame
    balance: pd.DataFrame
    effect: Effect | None = None
    by_stratum: StratifiedEffect | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.effect is not None

    def to_dict(self) -> dict[str, Any]:
        d = self.definition
        return json_safe({
            "experiment": d.name, "start": str(d.start), "end": str(d.end), "holdout_share": d.holdout_share,
            "outcome": {"kind": d.outcome.kind, "days": d.outcome.days, "winsorise": d.outcome.winsorise,
                        "unit": d.outcome.unit}, "minimum_detectable_effect": d.minimum_detectable_effect,
            "level": 1 - d.alpha,
            "horizon": str(d.horizon), "data_end": str(self.data_end), "final": self.final, "status": self.status,
            "rule": "fixed horizon: the effect is computed once, when the data reach the experiment's end plus the "
                    "outcome window; before, only accrual and balance are shown",
            "accrual": self.accrual.to_dict("records"), "balance": self.balance.to_dict("records"),
            "effect": None if self.effect is None else self.effect.to_dict(),
            "by_stratum": None if self.by_stratum is None else self.by_stratum.to_dict(),
            "problems": self.problems,
        })


def experiment_report(definition: Definition, units: pd.DataFrame, data_end: date,
                      problems: Sequence[str] = ()) -> ExperimentReport:
    """The report of one experiment from its units (one row per assigned tenancy: arm, stratum, the pre-period
    covariates, the recorded features, and `outcome` once the horizon has passed). Before the horizon the outcome
    column is ignored if present and the effect is withheld (the fixed-horizon rule)."""
    features = [*COVARIATES, *(c for c in RECORDED_FEATURES if c in units and units[c].notna().any())]
    status = horizon_words(definition.end, definition.outcome.days, data_end)
    common = {"definition": definition, "data_end": pd.Timestamp(data_end).date(), "status": status,
              "accrual": accrual(units), "balance": balance(units, features) if len(units) else
              pd.DataFrame(columns=["feature", "mean_treatment", "mean_holdout", "smd", "flagged"])}
    problems = [*problems] + [f"{feature} differs between the arms (standardised difference {smd:+.2f})"
                for feature, smd in common["balance"].loc[common["balance"]["flagged"], ["feature", "smd"]].values]
    if not effect_readable(definition.end, definition.outcome.days, data_end):
        return ExperimentReport(**common, problems=problems)
    level = 1 - definition.alpha
    try:
        overall = estimate(units, "outcome", level=level)
        strata = by_stratum(units, "outcome", level=level)
    except ValueError as exc:
        return ExperimentReport(**common, problems=[*problems, f"no effect estimated: {exc}"])
    return ExperimentReport(**common, effect=overall, by_stratum=strata, problems=problems)


def json_safe(value: Any) -> Any:
    """Plain JSON: NaN and infinities None, numpy scalars plain numbers, dates and tuples as text and lists."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, date | pd.Timestamp):
        return str(pd.Timestamp(value).date())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
