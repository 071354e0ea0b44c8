"""Every model feature, in words: a one-line description, a unit, and how to say its value to an officer.

The reason text is what a housing officer reads next to a ranked case ("no payment for 23 days"), so it must be
plain English and never mention a protected characteristic (those are never features in the first place).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


def _money(value: float) -> str:
    return f"£{abs(value):,.0f}"


def _balance(value: float) -> str:
    if value > 0:
        return f"owes {_money(value)}"
    if value < 0:
        return f"{_money(value)} in credit"
    return "account is clear"


def _change(weeks: int) -> Callable[[float], str]:
    def say(value: float) -> str:
        if abs(value) < 1:
            return f"balance unchanged over the last {weeks} weeks"
        direction = "up" if value > 0 else "down"
        return f"balance {direction} {_money(value)} over the last {weeks} weeks"

    return say


def _days_since_payment(value: float) -> str:
    if math.isnan(value):
        return "no payment on record"
    if value < 1:
        return "paid today"
    return f"no payment for {value:.0f} days"


def _share_paid(value: float) -> str:
    if math.isnan(value):
        return "no rent charged in the last 13 weeks"
    return f"paid {value:.0%} of the rent charged over the last 13 weeks"


def _weeks_since_clear(value: float) -> str:
    if math.isnan(value):
        return "account not clear at any point on record"
    if value < 1:
        return "account is clear now"
    return f"account last clear {value:.0f} weeks ago"


@dataclass(frozen=True)
class FeatureDef:
    name: str
    description: str
    unit: str
    say: Callable[[float], str]

    def text(self, value: float | None) -> str:
        return self.say(float("nan") if value is None else float(value))


SNAPSHOT_FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("balance", "Amount owed on the rent account (negative means in credit)", "GBP", _balance),
    FeatureDef("arrears_weeks", "Arrears expressed in weeks of the current rent (0 when not in arrears)", "weeks",
               lambda v: "not in arrears" if v <= 0 else f"arrears of {v:.1f} weeks' rent"),
    FeatureDef("settled_balance", "Lowest balance in the last 5 weeks: what is still owed after recent payments",
               "GBP", lambda v: ("still owes " + _money(v) + " after recent payments") if v > 0 else
               "paid up after recent payments"),
    FeatureDef("settled_arrears_weeks", "Settled arrears (lowest balance in 5 weeks) in weeks of rent", "weeks",
               lambda v: "no arrears after recent payments" if v <= 0 else
               f"behind by {v:.1f} weeks' rent after recent payments"),
    FeatureDef("settled_change_4w", "Change in the settled balance over the last 4 weeks", "GBP",
               lambda v: "arrears steady over the last 4 weeks" if abs(v) < 1 else
               f"arrears {'up' if v > 0 else 'down'} {_money(v)} over the last 4 weeks"),
    FeatureDef("days_since_last_payment", "Days since the last payment or benefit credit was received", "days",
               _days_since_payment),
    FeatureDef("balance_change_4w", "Change in the balance over the last 4 weeks", "GBP", _change(4)),
    FeatureDef("balance_change_13w", "Change in the balance over the last 13 weeks", "GBP", _change(13)),
    FeatureDef("paid_to_charged_13w", "Money received divided by rent and fees charged, last 13 weeks", "ratio",
               _share_paid),
    FeatureDef("payments_13w", "Number of payments and benefit credits received in the last 13 weeks", "count",
               lambda v: f"{v:.0f} payments in the last 13 weeks"),
    FeatureDef("peak_arrears_weeks_26w", "Highest weekly arrears in the last 26 weeks, in weeks of rent", "weeks",
               lambda v: "no arrears in the last 26 weeks" if v <= 0 else f"arrears peaked at {v:.1f} weeks' rent "
               "in the last 26 weeks"),
    FeatureDef("weeks_since_clear", "Weeks since the account was last clear (balance zero or in credit)", "weeks",
               _weeks_since_clear),
    FeatureDef("tenancy_age_days", "Days since the tenancy started", "days",
               lambda v: f"tenancy started {v / 365.25:.1f} years ago" if v >= 365 else
               f"tenancy started {v:.0f} days ago"),
    FeatureDef("weekly_rent", "Current rent expressed per week", "GBP", lambda v: f"rent of {_money(v)} a week"),
)

FEATURES: dict[str, FeatureDef] = {f.name: f for f in SNAPSHOT_FEATURES}


def reason_text(feature: str, value: float | None, contribution: float) -> str:
    """The words an officer reads: the fact, then which way it pushed the risk."""
    fact = FEATURES[feature].text(value) if feature in FEATURES else f"{feature} = {value}"
    effect = "raises risk" if contribution > 0 else "lowers risk"
    return f"{fact} ({effect})"
