"""Drift within groups catches a change that hits one group, within two weekly runs, where the whole portfolio's
drift does not: bench/monitoring.py's `shift` scenario (1,000 tenancies, seed 3; Universal Credit paid 28 days late
from week 10 of a 26-week replay), judged on the days of its weekly runs.

Instead of replaying every week, the portfolio is delivered as the replay first delivers it (everything up to the
replay's start), the risk model is trained and promoted there as the replay's `retrain` job does, then the rest is
delivered at once: features are point in time, so the drift job as of a run's day sees exactly what that week's run
saw (the bench's week 12 row: benefit_direct 0.37 drifted, score PSI 0.29).
"""

from __future__ import annotations

import warnings

import pandas as pd

from arrears.replay import deliver, exported
from arrears.schedule import run_job, schedule_settings
from monitoring.jobs import drift_job
from simulator import parse_change, simulate_portfolio
from tests.support.homes import isolated_home
from training.promotion import promote
from training.registry import RISK_MODEL
from training.train import train_risk_model

END = pd.Timestamp("2026-10-31")
START = END - pd.Timedelta(weeks=26)
CHANGE = START + pd.Timedelta(weeks=10)


def test_a_benefit_paid_late_is_a_segment_drift_alert_by_the_second_weekly_run(tmp_path) -> None:
    change = parse_change(f"benefit_delay:{CHANGE.date()}:benefit_type=universal_credit:size=28")
    portfolio = simulate_portfolio(n_tenancies=1000, years=2.0, seed=3, end_date=END.date(), changes=[change])
    with isolated_home(tmp_path / "home"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        settings, schedule = schedule_settings()
        deliver(settings, exported(portfolio, START), tmp_path / "delivery_000", START)
        assert run_job(settings, schedule, "refresh")["status"] == "succeeded"
        train_risk_model(settings)  # as the replay's `retrain` job trains it (drift needs no payment model)
        assert promote(settings, RISK_MODEL).promoted
        deliver(settings, exported(portfolio, END, since=START), tmp_path / "delivery_001", END)
        assert run_job(settings, schedule, "refresh")["status"] == "succeeded"
        found = {week: drift_job(settings, schedule.thresholds, as_of=START + pd.Timedelta(weeks=week))
                 for week in (9, 12)}
    before, second = found[9], found[12]
    assert not before.breaches, [b.message for b in before.breaches]  # a week before the change: quiet
    kinds = {b.kind for b in second.breaches}
    assert kinds == {"segment_drift"}, [b.message for b in second.breaches]  # the portfolio's own drift is quiet
    named = " ".join(b.message for b in second.breaches)
    assert "payment_method=benefit_direct" in named or "benefit_type=universal_credit" in named
    assert second.outputs["drifted_share"] < schedule.thresholds.drift_share
