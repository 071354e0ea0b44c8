"""Every model feature, in words: a one-line description, a unit, and how to say its value to an officer.

The reason text is what a housing officer reads next to a ranked case ("no payment for 23 days"), so it must be
plain English and never mention a protected characteristic (those are never features in the first place).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np


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


def _counted(never: str, under_one: str, counted: str) -> Callable[[float], str]:
    """A number of days or weeks in words: `never` when there is none, `under_one` below one, else `counted` with
    the number in place of {n}."""
    def say(value: float) -> str:
        if math.isnan(value):
            return never
        return under_one if value < 1 else counted.replace("{n}", f"{value:.0f}")

    return say


_days_since_payment = _counted("no payment on record", "paid today", "no payment for {n} days")
_weeks_since_clear = _counted("account not clear at any point on record", "account is clear now",
                              "account last clear {n} weeks ago")


def _weeks_rent(v: float) -> str:
    return f"{v:.1f} weeks' rent"


def _share(what: str, weeks: int) -> Callable[[float], str]:
    def say(value: float) -> str:
        if math.isnan(value):
            return f"nothing received in the last {weeks} weeks"
        return f"{value:.0%} of money received in the last {weeks} weeks came {what}"

    return say


def _paid_share(weeks: int) -> Callable[[float], str]:
    def say(value: float) -> str:
        if math.isnan(value):
            return f"no rent charged in the last {weeks} weeks"
        return f"paid {value:.0%} of the rent charged over the last {weeks} weeks"

    return say


def _count(singular: str, plural: str, span: str = "") -> Callable[[float], str]:
    def say(value: float) -> str:
        n = int(round(value))
        return f"{n} {singular if n == 1 else plural}{span}"

    return say


def _flag(yes: str, no: str) -> Callable[[float], str]:
    return lambda value: yes if value >= 0.5 else no


def _days_since(what: str, never: str) -> Callable[[float], str]:
    return _counted(never, f"{what} today", f"{what} {{n}} days ago")


_lateness = _counted("no rent period to judge lateness by in the last 26 weeks", "usually pays on the day rent is due",
                     "usually pays {n} days after rent is due")


def _legal_stage(value: float) -> str:
    n = int(round(value))
    return "no legal action" if n == 0 else f"legal action at step {n}"


@dataclass(frozen=True)
class FeatureDef:
    name: str
    description: str
    unit: str
    say: Callable[[float], str]
    #: Which Feast view serves it: balance, payments, circumstances, tenancy, or recency (computed on demand).
    group: str
    #: A recency feature's day-number anchor (an `Anchor`): the feature is the days from it to the request date.
    anchor: str | None = None

    def text(self, value: float | None) -> str:
        value = float("nan") if value is None else float(value)
        unknown = f"not known: {self.description[0].lower()}{self.description[1:]}"
        if not math.isnan(value):
            return self.say(value)
        try:  # a feature that has words for "unknown" says them; the others say they are not known
            said = self.say(value)
        except ValueError:
            return unknown
        return unknown if re.search(r"\bnan\b", said.lower()) else said


def _f(group: str, name: str, description: str, unit: str, say: Callable[[float], str],
       anchor: str | None = None) -> FeatureDef:
    if (group == "recency") != (anchor is not None):
        raise ValueError(f"{name}: a recency feature, and only one, is computed from an anchor")
    return FeatureDef(name, description, unit, say, group, anchor)


@dataclass(frozen=True)
class Anchor:
    """A day number (days since 1970-01-01) a snapshot stores, from which a recency feature is computed as of the
    request date (`features.transforms.recency`); `group` is the view that serves it."""

    name: str
    description: str
    group: str


ANCHORS: tuple[Anchor, ...] = (
    Anchor("last_payment_day", "Day of the latest payment or benefit credit", "payments"),
    Anchor("last_contact_day", "Day of the latest recorded contact", "circumstances"),
    Anchor("last_rent_change_day", "Day the rent charged last changed", "tenancy"),
    Anchor("start_day", "Day the tenancy started", "tenancy"),
)


SNAPSHOT_FEATURES: tuple[FeatureDef, ...] = (
    # -- balance and arrears -----------------------------------------------------------------------------------
    _f("balance", "balance", "Amount owed on the rent account (negative means in credit)", "GBP", _balance),
    _f("balance", "arrears_weeks", "Arrears in weeks of the rent charged at the date (0 when not in arrears)", "weeks",
       lambda v: "not in arrears" if v <= 0 else f"arrears of {_weeks_rent(v)}"),
    _f("balance", "settled_balance", "Lowest balance in the last 5 weeks: what is still owed after recent payments",
       "GBP", lambda v: ("still owes " + _money(v) + " after recent payments") if v > 0 else
       "paid up after recent payments"),
    _f("balance", "settled_arrears_weeks", "Settled arrears (lowest balance in 5 weeks) in weeks of rent", "weeks",
       lambda v: "no arrears after recent payments" if v <= 0 else
       f"behind by {_weeks_rent(v)} after recent payments"),
    _f("balance", "settled_change_4w", "Change in the settled balance over the last 4 weeks (opening balance excluded)",
       "GBP",
       lambda v: "arrears steady over the last 4 weeks" if abs(v) < 1 else
       f"arrears {'up' if v > 0 else 'down'} {_money(v)} over the last 4 weeks"),
    _f("balance", "balance_change_4w", "Change in the balance over the last 4 weeks (opening balance excluded)",
       "GBP", _change(4)),
    _f("balance", "balance_change_13w", "Change in the balance over the last 13 weeks (opening balance excluded)",
       "GBP", _change(13)),
    _f("balance", "balance_change_26w", "Change in the balance over the last 26 weeks (opening balance excluded)",
       "GBP", _change(26)),
    _f("balance", "peak_arrears_weeks_26w", "Highest weekly arrears in the last 26 weeks, in weeks of rent", "weeks",
       lambda v: "no arrears in the last 26 weeks" if v <= 0 else f"arrears peaked at {_weeks_rent(v)} "
       "in the last 26 weeks"),
    _f("balance", "weeks_since_clear", "Weeks since the account was last clear (balance zero or in credit)", "weeks",
       _weeks_since_clear),
    # -- payment behaviour -------------------------------------------------------------------------------------
    _f("recency", "days_since_last_payment", "Days since the last payment or benefit credit was received", "days",
       _days_since_payment,
       anchor="last_payment_day"),
    _f("payments", "payments_4w", "Payments and benefit credits in the last 4 weeks, less reversals", "count",
       _count("payment", "payments", " in the last 4 weeks")),
    _f("payments", "payments_13w", "Payments and benefit credits in the last 13 weeks, less reversals", "count",
       _count("payment", "payments", " in the last 13 weeks")),
    _f("payments", "payments_26w", "Payments and benefit credits in the last 26 weeks, less reversals", "count",
       _count("payment", "payments", " in the last 26 weeks")),
    _f("payments", "paid_to_charged_4w", "Money received divided by rent and fees charged, last 4 weeks", "ratio",
       _paid_share(4)),
    _f("payments", "paid_to_charged_13w", "Money received divided by rent and fees charged, last 13 weeks", "ratio",
       _paid_share(13)),
    _f("payments", "paid_to_charged_26w", "Money received divided by rent and fees charged, last 26 weeks", "ratio",
       _paid_share(26)),
    _f("payments", "missed_periods_26w", "Rent periods in the last 26 weeks paid nothing (see the payment window)",
       "count", _count("rent period", "rent periods", " missed in the last 26 weeks")),
    _f("payments", "partial_periods_26w", "Rent periods in the last 26 weeks only partly paid",
       "count", _count("rent period", "rent periods", " part-paid in the last 26 weeks")),
    _f("payments", "lateness_mean_26w", "Average days from a rent charge until half of it was paid (0 if ahead, capped "
       "at 35), last 26 weeks", "days", _lateness),
    _f("payments", "lateness_sd_26w", "Spread (standard deviation) of those days, last 26 weeks: how irregular "
       "payment is", "days", lambda v: "no payment pattern yet" if math.isnan(v) else
       ("pays at a regular time" if v < 3 else f"payment timing varies by about {v:.0f} days")),
    _f("payments", "cash_share_26w", "Share of money received in the last 26 weeks paid in cash", "ratio",
       _share("in cash", 26)),
    _f("payments", "direct_debit_share_26w", "Share of money received in the last 26 weeks paid by direct debit",
       "ratio", _share("by direct debit", 26)),
    _f("payments", "benefit_share_26w", "Share of money received in the last 26 weeks paid by a benefit body",
       "ratio", _share("from benefit", 26)),
    _f("payments", "benefit_to_rent_13w", "Benefit received divided by rent and fees charged, last 13 weeks",
       "ratio", lambda v: "no rent charged in the last 13 weeks" if math.isnan(v) else
       f"benefit met {v:.0%} of the rent over the last 13 weeks"),
    # -- circumstances (events feed) ---------------------------------------------------------------------------
    _f("circumstances", "dispute_open", "1 when a dispute about the account is open", "flag",
       _flag("dispute open", "no open dispute")),
    _f("circumstances", "breathing_space_active", "1 when a breathing space (debt respite, standard or mental health "
       "crisis) is active", "flag",
       _flag("in breathing space", "not in breathing space")),
    _f("circumstances", "arrangement_active", "1 when a repayment arrangement is in place", "flag",
       _flag("repayment arrangement in place", "no repayment arrangement")),
    _f("circumstances", "arrangements_kept", "Repayment arrangements completed, ever", "count",
       _count("arrangement kept", "arrangements kept")),
    _f("circumstances", "arrangements_broken", "Repayment arrangements broken, ever", "count",
       _count("arrangement broken", "arrangements broken")),
    _f("circumstances", "legal_stage", "Steps of legal action taken so far (0 = none)", "steps", _legal_stage),
    _f("recency", "days_since_contact", "Days since the last recorded contact with the tenant", "days",
       _days_since("last contact", "no contact on record"),
       anchor="last_contact_day"),
    # -- tenancy -----------------------------------------------------------------------------------------------
    _f("recency", "tenancy_age_days", "Days since the tenancy started", "days",
       lambda v: f"tenancy started {v / 365.25:.1f} years ago" if v >= 365 else
       f"tenancy started {v:.0f} days ago",
       anchor="start_day"),
    _f("tenancy", "weekly_rent", "Rent charged at the date (latest rent charge), per week", "GBP",
       lambda v: f"rent of {_money(v)} a week"),
    _f("tenancy", "rent_periods_per_year", "Rent frequency as periods a year (52 weekly ... 12 monthly)", "per year",
       lambda v: {52: "rent due weekly", 26: "rent due fortnightly", 13: "rent due four-weekly",
                  12: "rent due monthly"}.get(int(round(v)), f"rent due {v:.0f} times a year")),
    _f("recency", "days_since_rent_change", "Days since the rent charged last changed", "days",
       _days_since("rent last changed", "no rent change on record"),
       anchor="last_rent_change_day"),
    _f("tenancy", "on_housing_benefit", "1 when the tenancy's benefit type is housing benefit", "flag",
       _flag("on housing benefit", "not on housing benefit")),
    _f("tenancy", "on_universal_credit", "1 when the tenancy's benefit type is universal credit", "flag",
       _flag("on universal credit", "not on universal credit")),
)

FEATURES: dict[str, FeatureDef] = {f.name: f for f in SNAPSHOT_FEATURES}
#: Recency feature → the anchor it is computed from.
RECENCY_ANCHORS: dict[str, str] = {f.name: f.anchor for f in SNAPSHOT_FEATURES if f.anchor}


#: The officer concepts reasons are given in: correlated features (four measures of the arrears, six of payment
#: habit) are one reason, so the few reasons shown carry most of the score.
CONCEPTS: dict[str, str] = {"arrears": "Arrears", "change": "Recent change", "payments": "Payment pattern",
                            "circumstances": "Circumstances", "tenancy": "Tenancy"}
CONCEPT_OF: dict[str, str] = {
    **dict.fromkeys(("balance", "arrears_weeks", "settled_balance", "settled_arrears_weeks", "peak_arrears_weeks_26w",
                     "weeks_since_clear"), "arrears"),
    **dict.fromkeys(("settled_change_4w", "balance_change_4w", "balance_change_13w", "balance_change_26w"), "change"),
    **dict.fromkeys(("days_since_last_payment", "payments_4w", "payments_13w", "payments_26w", "paid_to_charged_4w",
                     "paid_to_charged_13w", "paid_to_charged_26w", "missed_periods_26w", "partial_periods_26w",
                     "lateness_mean_26w", "lateness_sd_26w", "cash_share_26w", "direct_debit_share_26w",
                     "benefit_share_26w", "benefit_to_rent_13w"), "payments"),
    **dict.fromkeys(("dispute_open", "breathing_space_active", "arrangement_active", "arrangements_kept",
                     "arrangements_broken", "legal_stage", "days_since_contact"), "circumstances"),
    **dict.fromkeys(("tenancy_age_days", "weekly_rent", "rent_periods_per_year", "days_since_rent_change",
                     "on_housing_benefit", "on_universal_credit"), "tenancy"),
}


def fact_text(feature: str, value: float | None) -> str:
    """The fact an officer reads for a feature's value."""
    return FEATURES[feature].text(value) if feature in FEATURES else f"{feature} = {value}"


def effect_text(contribution: float) -> str:
    return "raises risk" if contribution > 0 else "lowers risk"


def reason_text(feature: str, value: float | None, contribution: float) -> str:
    """The words an officer reads: the fact, then which way it pushed the risk."""
    return f"{fact_text(feature, value)} ({effect_text(contribution)})"


def concept_matrix(names: list[str]) -> tuple[list[str], np.ndarray]:
    """The concepts of `names` (in CONCEPTS order) and a features × concepts 0/1 matrix."""
    return _concept_matrix(tuple(names))


@cache
def _concept_matrix(names: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    concepts = [c for c in CONCEPTS if any(CONCEPT_OF.get(n) == c for n in names)]
    extra = sorted({n for n in names if n not in CONCEPT_OF})  # a feature outside the catalogue is its own concept
    concepts += extra
    membership = np.zeros((len(names), len(concepts)))
    for j, name in enumerate(names):
        membership[j, concepts.index(CONCEPT_OF.get(name, name))] = 1.0
    return concepts, membership
