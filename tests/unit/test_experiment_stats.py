"""Measuring a randomised holdout (monitoring/experiments.py): the report's interval is the one an independent
plain-numpy computation gives, it covers a known effect and the adjustment narrows it, balance flags what differs,
the plan's weeks follow the normal-approximation formula, the fixed horizon withholds the effect, and the outcomes
and pre-period covariates are read from transactions on the right days."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from monitoring.experiments import (
    COVARIATES,
    Definition,
    Outcome,
    accrual,
    balance,
    by_stratum,
    estimate,
    experiment_report,
    first_assignments,
    horizon,
    outcome_values,
    plan,
    pre_period,
    r_squared,
)

Z95 = 1.959963984540054  # the 97.5% normal quantile, written out rather than computed by the code under test
Z80 = 0.8416212335729143  # the 80% normal quantile
TRUE_EFFECT = 0.3


def trial(seed: int, n: int = 2000, holdout_share: float = 0.25, effect: float = TRUE_EFFECT,
          strata: tuple[str, ...] = ("low|North", "high|North", "low|South", "high|South")) -> pd.DataFrame:
    """Units of a randomised experiment: three pre-period covariates that predict the outcome (non-linearly, and
    with a slope that differs by arm, which Lin's estimator allows), a constant treatment effect `effect`."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * [300.0, 80.0, 150.0] + [500.0, 20.0, 200.0]
    treated = rng.random(n) >= holdout_share
    noise = rng.standard_t(5, n) * 0.6
    y = (0.004 * x[:, 0] - 0.01 * x[:, 1] + 0.003 * x[:, 2] + 0.000002 * (x[:, 0] - 500) ** 2
         + treated * (effect + 0.001 * (x[:, 0] - 500)) + noise)
    return pd.DataFrame({**dict(zip(COVARIATES, x.T, strict=True)), "outcome": y,
                         "arm": np.where(treated, "treatment", "holdout"), "stratum": rng.choice(strata, n)})


# -- (a) the interval by an independent plain-numpy computation ----------------------------------------------------
def arm_line_at_pooled_mean(y: np.ndarray, centred: np.ndarray) -> tuple[float, float]:
    """One arm's own OLS line of y on covariates centred at the pooled mean, by QR: its intercept (the arm's
    adjusted mean) and the HC2 variance of that intercept."""
    design = np.column_stack([np.ones(len(y)), centred])
    q, r = np.linalg.qr(design)
    beta = np.linalg.solve(r, q.T @ y)
    residual = y - design @ beta
    leverage = (q**2).sum(axis=1)
    r_inv = np.linalg.inv(r)
    bread = r_inv @ r_inv.T
    meat = design.T @ (design * (residual**2 / (1 - leverage))[:, None])
    return float(beta[0]), float((bread @ meat @ bread)[0, 0])


def test_the_interval_is_what_plain_numpy_algebra_gives() -> None:
    """Lin's estimate is the difference between the arms' own lines at the pooled covariate mean, and its HC2
    variance the sum of the two intercepts' HC2 variances (the interacted regression is the two arms' regressions
    side by side): computed here per arm by QR, with none of the report's code."""
    units = trial(7, n=600)
    found = estimate(units, "outcome")
    x = units[list(COVARIATES)].to_numpy()
    y = units["outcome"].to_numpy()
    treated = units["arm"].to_numpy() == "treatment"
    centred = x - x.mean(axis=0)
    mean_t, var_t = arm_line_at_pooled_mean(y[treated], centred[treated])
    mean_h, var_h = arm_line_at_pooled_mean(y[~treated], centred[~treated])
    effect, se = mean_t - mean_h, math.sqrt(var_t + var_h)
    assert found.method.startswith("Lin")
    assert found.covariates == COVARIATES
    assert found.effect == pytest.approx(effect, abs=1e-9)
    assert found.se == pytest.approx(se, abs=1e-9)
    assert (found.low, found.high) == pytest.approx((effect - Z95 * se, effect + Z95 * se), abs=1e-9)
    # the unadjusted difference beside it: difference in means, Neyman's variance
    raw = y[treated].mean() - y[~treated].mean()
    raw_se = math.sqrt(y[treated].var(ddof=1) / treated.sum() + y[~treated].var(ddof=1) / (~treated).sum())
    assert (found.unadjusted_effect, found.unadjusted_se) == pytest.approx((raw, raw_se), abs=1e-9)
    assert found.variance_reduction == pytest.approx(1 - se**2 / raw_se**2, abs=1e-9)
    assert (found.n_treatment, found.n_holdout) == (treated.sum(), (~treated).sum())
    assert (found.mean_treatment, found.mean_holdout) == pytest.approx((y[treated].mean(), y[~treated].mean()))


def test_the_overall_by_stratum_is_size_weighted() -> None:
    units = trial(8, n=1200)
    found = by_stratum(units, "outcome")
    sizes = units.groupby("stratum").size()
    weights = sizes / sizes.sum()
    parts = {name: estimate(part, "outcome") for name, part in units.groupby("stratum")}
    effect = sum(weights[name] * parts[name].effect for name in parts)
    se = math.sqrt(sum(weights[name] ** 2 * parts[name].se ** 2 for name in parts))
    assert found.overall.effect == pytest.approx(effect, abs=1e-9)
    assert found.overall.se == pytest.approx(se, abs=1e-9)
    assert found.overall.low == pytest.approx(effect - Z95 * se, abs=1e-9)
    assert set(found.strata) == set(sizes.index) and found.skipped == {}


def test_a_stratum_without_two_in_an_arm_is_left_out_and_named() -> None:
    units = trial(9, n=400)
    lonely = pd.DataFrame({c: [1.0] for c in COVARIATES} | {"outcome": [1.0], "arm": ["holdout"],
                                                             "stratum": ["tiny|East"]})
    found = by_stratum(pd.concat([units, lonely], ignore_index=True), "outcome")
    assert found.skipped == {"tiny|East": 1}
    assert "tiny|East" not in found.strata
    assert found.overall.n_treatment + found.overall.n_holdout == len(units)


def test_too_few_in_an_arm_to_adjust_is_estimated_unadjusted_and_says_so() -> None:
    units = trial(10, n=40, holdout_share=0.15)
    found = estimate(units, "outcome", adjust_min_per_arm=10)
    assert found.n_holdout < 10
    assert found.method.startswith("difference in means") and found.covariates == ()
    assert found.effect == found.unadjusted_effect and found.variance_reduction == 0


def test_a_covariate_constant_within_an_arm_is_left_out() -> None:
    units = trial(11, n=300).assign(pre_receipts_28d=0.0)
    found = estimate(units, "outcome")
    assert found.covariates == ("pre_balance", "pre_change_56d")


# -- (b) a known effect is covered, and the adjustment narrows the interval -------------------------------------
def test_the_interval_covers_a_known_effect_and_adjustment_narrows_it() -> None:
    found = estimate(trial(42), "outcome")
    assert found.low <= TRUE_EFFECT <= found.high
    adjusted_width = found.high - found.low
    raw_low, raw_high = found.unadjusted_interval
    assert adjusted_width < 0.8 * (raw_high - raw_low)
    assert found.variance_reduction > 0.3


def test_the_95_percent_interval_covers_the_truth_about_95_times_in_100() -> None:
    """Over 200 experiments drawn with fixed seeds (a stated truth, not a timing): coverage within what a binomial
    of 200 at 95% gives (at least 180 of 200, the lower 0.1% tail is 177)."""
    covered = sum(e.low <= TRUE_EFFECT <= e.high for e in (estimate(trial(s, n=300), "outcome") for s in range(200)))
    assert 180 <= covered <= 199


# -- (c) balance ---------------------------------------------------------------------------------------------------
def test_balance_flags_an_imbalanced_feature_and_not_a_balanced_one() -> None:
    units = trial(12, n=4000)
    treated = (units["arm"] == "treatment").to_numpy()
    units["skewed"] = np.random.default_rng(1).normal(size=len(units)) + 0.3 * treated
    table = balance(units, [*COVARIATES, "skewed"]).set_index("feature")
    assert bool(table.loc["skewed", "flagged"]) and table.loc["skewed", "smd"] > 0.2
    assert not table.loc[list(COVARIATES), "flagged"].any()
    x_t, x_h = units.loc[treated, "skewed"], units.loc[~treated, "skewed"]
    d = (x_t.mean() - x_h.mean()) / math.sqrt((x_t.var(ddof=1) + x_h.var(ddof=1)) / 2)
    assert table.loc["skewed", "smd"] == pytest.approx(d, abs=1e-12)


def test_a_feature_constant_in_both_arms_is_balanced() -> None:
    units = trial(13, n=100).assign(always=5.0)
    assert balance(units, ["always"]).iloc[0][["smd", "flagged"]].tolist() == [0.0, False]


# -- (d) planning --------------------------------------------------------------------------------------------------
def test_plan_weeks_grow_as_the_effect_to_detect_shrinks_and_follow_the_formula() -> None:
    sd, share, per_week, r2 = 0.48, 0.2, 150.0, 0.15
    weeks = []
    for mde in (0.08, 0.05, 0.03, 0.02):
        found = plan(mde, sd, share, per_week, r2)
        n = math.ceil((Z95 + Z80) ** 2 * sd**2 * (1 - r2) / (share * (1 - share) * mde**2))
        assert found.n_total == n
        assert found.n_holdout == math.ceil(n * share) and found.n_holdout + found.n_treatment == n
        assert found.weeks == math.ceil(n / per_week)
        weeks.append(found.weeks)
    assert weeks == sorted(weeks) and weeks[0] < weeks[-1]
    assert plan(0.03, sd, share, per_week, 0.5).weeks < plan(0.03, sd, share, per_week, 0.0).weeks
    # the first run's ready cases count before the weekly flow; a plan already met still takes the first week
    n = plan(0.03, sd, share, per_week, r2).n_total
    assert plan(0.03, sd, share, per_week, r2, already=1000).weeks == math.ceil((n - 1000) / per_week)
    assert plan(0.03, sd, share, per_week, r2, already=n + 1).weeks == 1


def test_plan_refuses_what_cannot_be_planned() -> None:
    with pytest.raises(ValueError):
        plan(0.03, 0.5, 1.0, 100)
    with pytest.raises(ValueError):
        plan(0.0, 0.5, 0.2, 100)


def test_r_squared_is_the_share_of_variance_explained() -> None:
    units = trial(14, n=2000)
    x = np.column_stack([np.ones(len(units)), units[list(COVARIATES)].to_numpy()])
    y = units["outcome"].to_numpy()
    residual = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    assert r_squared(units, "outcome") == pytest.approx(1 - residual.var() / y.var(), abs=1e-9)


# -- (e) the fixed horizon -----------------------------------------------------------------------------------------
DEFINITION = Definition("reminder-test", date(2027, 1, 4), date(2027, 3, 28), 0.25,
                        Outcome("paid_within_days", 28), 0.03)


def test_the_effect_is_withheld_before_the_fixed_horizon() -> None:
    units = trial(15, n=800).assign(assigned_on=date(2027, 2, 1))
    assert horizon(DEFINITION.end, 28) == date(2027, 4, 25)
    for day in (date(2027, 2, 15), date(2027, 3, 28), date(2027, 4, 24)):
        report = experiment_report(DEFINITION, units, day)
        assert report.effect is None and report.by_stratum is None and not report.final
        assert report.status == "interim: effect withheld until 2027-04-25 (fixed horizon)"
        said = report.to_dict()
        assert said["effect"] is None and said["by_stratum"] is None and said["final"] is False
        assert said["accrual"][-1] == {"stratum": "all", "treatment": int((units["arm"] == "treatment").sum()),
                                       "holdout": int((units["arm"] == "holdout").sum()), "total": 800,
                                       "holdout_share": pytest.approx((units["arm"] == "holdout").mean())}
        assert {row["feature"] for row in said["balance"]} == set(COVARIATES)
        assert "outcome" not in {row["feature"] for row in said["balance"]}
    final = experiment_report(DEFINITION, units, date(2027, 4, 25))
    assert final.final and final.status.startswith("final")
    assert final.effect == estimate(units, "outcome")
    assert final.to_dict()["by_stratum"]["overall"]["effect"] == pytest.approx(final.by_stratum.overall.effect)


def test_first_assignments_keep_a_tenancy_in_its_first_arm_and_leave_out_one_in_both() -> None:
    assignments = pd.DataFrame({
        "tenancy_id": ["T1", "T1", "T2", "T3", "T3"], "arm": ["holdout", "holdout", "treatment", "holdout",
                                                              "treatment"],
        "assigned_on": [date(2027, 1, 11), date(2027, 1, 4), date(2027, 1, 4), date(2027, 1, 4), date(2027, 1, 11)],
        "stratum": ["a", "a", "a", "b", "b"]})
    first, problems = first_assignments(assignments)
    assert first[["tenancy_id", "assigned_on"]].values.tolist() == [["T1", date(2027, 1, 4)], ["T2", date(2027, 1, 4)]]
    assert problems == ["1 tenancies were recorded in both arms and are left out (assignment must be stable)"]
    assert accrual(first).set_index("stratum").loc["all", ["treatment", "holdout", "total"]].tolist() == [1, 1, 2]


# -- outcomes and covariates from transactions ---------------------------------------------------------------------
def ledger(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["tenancy_id", "posted_date", "type", "amount_pence", "reference"]).assign(
        posted_date=lambda f: pd.to_datetime(f["posted_date"]))


TRANSACTIONS = ledger([
    ("A", "2027-01-01", "charge", 40000, None),
    ("A", "2027-02-01", "charge", 40000, None),
    ("A", "2027-02-01", "payment", -10000, None),  # on the day of assignment: before the window
    ("A", "2027-03-01", "payment", -25000, None),  # day 28: inside (assigned_on, assigned_on + 28]
    ("B", "2026-12-20", "charge", 40000, None),
    ("B", "2027-01-10", "payment", -5000, None),  # 22 days before: in the 28-day pre-period
    ("B", "2027-02-05", "payment", -30000, None),  # put back below: never counts as paid
    ("B", "2027-02-07", "adjustment", 30000, "Returned direct debit"),
    ("B", "2027-03-02", "payment", -40000, None),  # day 29: outside the window
    ("C", "2026-12-01", "charge", 20000, None),
    ("C", "2027-02-03", "benefit", -20000, None),  # a benefit credit is a receipt
])
UNITS = pd.DataFrame({"tenancy_id": ["A", "B", "C"], "assigned_on": [date(2027, 2, 1)] * 3})


def test_paid_within_days_counts_receipts_after_the_assignment_day_up_to_the_last_window_day() -> None:
    paid = outcome_values(UNITS, TRANSACTIONS, Outcome("paid_within_days", 28))
    assert paid.tolist() == [1.0, 0.0, 1.0]
    assert outcome_values(UNITS, TRANSACTIONS, Outcome("paid_within_days", 27)).tolist() == [0.0, 0.0, 1.0]


def test_arrears_change_is_the_balance_after_the_window_less_the_balance_on_the_day() -> None:
    change = outcome_values(UNITS, TRANSACTIONS, Outcome("arrears_change", 56))
    assert change.tolist() == [-250.0, -400.0, -200.0]
    clipped = outcome_values(UNITS, TRANSACTIONS, Outcome("arrears_change", 56, winsorise=0.25))
    low, high = np.quantile([-250.0, -400.0, -200.0], [0.25, 0.75])
    assert clipped.tolist() == pytest.approx([-250.0, low, high])


def test_pre_period_covariates_use_only_what_was_posted_by_the_assignment_day() -> None:
    pre = pre_period(UNITS, TRANSACTIONS)
    assert pre["pre_balance"].tolist() == [700.0, 350.0, 200.0]
    # 56 days before (7 December) A and B owed nothing yet, C its 200
    assert pre["pre_change_56d"].tolist() == [700.0, 350.0, 0.0]
    assert pre["pre_receipts_28d"].tolist() == [100.0, 50.0, 0.0]
