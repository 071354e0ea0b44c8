"""What each tenancy's readiness should be on a date, from the simulator's own record of every circumstance (its
ground-truth tables: the engine's true periods, not the events feed the policy reads), with the policy's
parameters and precedence. Tests compare the served states with this."""

from __future__ import annotations

import pandas as pd

from casework.policy import STATES, Policy
from features.feeds.contract import RECEIPT_TYPES, weekly_rent


def _in_force(frame: pd.DataFrame, start: str, end: str, day: pd.Timestamp) -> set[str]:
    starts, ends = pd.to_datetime(frame[start]), pd.to_datetime(frame[end])
    return set(frame.loc[(starts <= day) & (ends.isna() | (ends > day)), "tenancy_id"])


def _receipts(transactions: pd.DataFrame, day: pd.Timestamp, days: int) -> pd.Series:
    tx = transactions.assign(posted_date=pd.to_datetime(transactions["posted_date"]),
                             amount=transactions["amount"].astype(float))
    recent = tx[tx["type"].astype(str).isin(RECEIPT_TYPES) & (tx["posted_date"] > day - pd.Timedelta(days=days))
                & (tx["posted_date"] <= day)]
    return -recent.groupby("tenancy_id")["amount"].sum()


def _recently_paid(received: pd.Series, balance: pd.Series, rent_period: pd.Series, weekly: pd.Series,
                   policy: Policy) -> set[str]:
    rules = policy.recent_payment
    rent, week = rent_period.reindex(received.index), weekly.reindex(received.index)
    arrears_weeks = balance.reindex(received.index).fillna(0).clip(lower=0) / week
    covers = received >= rules["covers_share"] * rent
    return set(received.index[covers & ((arrears_weeks < rules["arrears_weeks"])
                                        | (received > week * rules["window_days"] / 7.0))])


def unexplained_balances(portfolio) -> set[str]:
    """Tenancies whose reported balance (at the window end) the feeds cannot explain."""
    reported = portfolio.ground_truth["reported_balances"]
    return set(reported.loc[~reported["explained"].astype(bool), "tenancy_id"])


def open_in_suspense(portfolio, day: pd.Timestamp) -> set[str]:
    """The tenancies whose own payment sits in suspense on `day` (received, not yet cleared), by the truth."""
    truth = portfolio.ground_truth.get("suspense")
    if truth is None or truth.empty:
        return set()
    received, cleared = pd.to_datetime(truth["received_date"]), pd.to_datetime(truth["cleared_date"])
    return set(truth["tenancy_id"][(received <= day) & (cleared.isna() | (cleared > day))].astype(str))


def circumstances(portfolio, day: pd.Timestamp, policy: Policy, unexplained: set[str],
                  suspense: frozenset[str] = frozenset()) -> dict[str, set[str]]:
    """For each state a policy rule can set: the tenancies it is true of on `day`, by the simulator's truth.
    `unexplained`: the tenancies whose reported balance the delivery cannot explain; `suspense`: those the
    service's matcher holds as the likely owner of a receipt in suspense (a model's judgement, not a truth)."""
    truth, tx = portfolio.ground_truth, portfolio.transactions
    register = portfolio.tenancies.assign(tenancy_id=portfolio.tenancies["tenancy_id"].astype(str)).set_index(
        "tenancy_id")
    rent_period = register["rent_amount"].astype(float)
    weekly = weekly_rent(rent_period, register["rent_frequency"].astype(str))
    balance = tx[pd.to_datetime(tx["posted_date"]) <= day].groupby("tenancy_id")["amount"].sum()
    odd = truth["allocations"][pd.to_datetime(truth["allocations"]["posted_date"]).between(
        day - pd.Timedelta(days=policy.ambiguous_balance["receipt_lookback_days"] - 1), day)]
    attempts = truth["contact_attempts"][pd.to_datetime(truth["contact_attempts"]["date"]).between(
        day - pd.Timedelta(days=policy.contact_limit["days"] - 1), day)]
    plans = truth["arrangements"].rename(columns={"agreed_date": "start", "ended_date": "end"})
    last_receipt = tx[tx["type"].astype(str).isin(RECEIPT_TYPES) & (pd.to_datetime(tx["posted_date"]) <= day)]
    last_receipt = pd.to_datetime(last_receipt.groupby("tenancy_id")["posted_date"].max())
    active = _in_force(plans, "start", "end", day)
    agreed = pd.to_datetime(plans.groupby("tenancy_id")["start"].max())
    # Silent since the later of the last receipt and the agreement: silence before an arrangement is not its breach.
    kept = {t for t in active if (day - max(last_receipt.get(t, agreed.get(t)), agreed.get(t))).days
            < policy.payment_plan["silent_days"]}
    received = _receipts(tx, day, policy.recent_payment["window_days"])
    return {
        "blocked": _in_force(truth["breathing_space"], "start_date", "end_date", day),
        "disputed": _in_force(truth["disputes"], "opened_date", "resolved_date", day),
        "ambiguous_balance": (set(balance.index[balance < -policy.ambiguous_balance["credit_weeks"]
                                                * weekly.reindex(balance.index)])
                              | set(odd["tenancy_id"]) | unexplained | set(suspense)),
        "hold": (_in_force(truth["benefit_claims"], "claim_date", "decided_date", day)
                 | set(attempts.groupby("tenancy_id").size().pipe(lambda n: n[n >= policy.contact_limit["attempts"]])
                       .index)),
        "payment_plan": kept,
        "recent_payment": _recently_paid(received, balance, rent_period, weekly, policy),
        "review": set(register.index[register["vulnerable"].astype(bool)]),
    }


def expected_states(portfolio, live: set[str], day: pd.Timestamp, policy: Policy,
                    unexplained: set[str], suspense: frozenset[str] = frozenset()) -> dict[str, str]:
    """The readiness state of every live tenancy on `day`, by the truth and the policy's precedence."""
    found = circumstances(portfolio, day, policy, unexplained, suspense)
    states = {}
    for tenancy in live:
        states[tenancy] = next((state for state in STATES[:-1] if tenancy in found[state]), "ready")
    return states
