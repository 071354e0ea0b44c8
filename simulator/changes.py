"""Changes injected into a simulated portfolio from a date, so that monitoring can be tested against a known truth.

``simulate_portfolio(..., changes=[Change("economic_shock", date(2025, 6, 1), 3.0)])`` simulates the portfolio as
it would be, except that from ``start`` the change acts on the tenancies of its ``group`` (every tenancy when the
group is None). A `Change` has a ``kind`` (one of `KINDS`) and a ``size`` whose meaning depends on the kind:

* ``benefit_delay`` (size: days, a whole number 1-365): benefit paid to the landlord for the group arrives this
  many days late (then on the next working day): Housing Benefit runs, Universal Credit managed payments and their
  deductions for arrears that would be paid on or after ``start``, as in a DWP backlog. A group naming
  ``benefit_type`` delays only that benefit (``universal_credit``: UC payments; ``housing_benefit``: HB runs).
  Tenants' own payments are not delayed.
* ``rent_rise`` (size: a share, 0-1, e.g. 0.15): the group's rents rise by this share from the first charge on or
  after ``start`` (and stay that much above the usual April rises). Benefit follows the rent (it pays its share of
  the new rent), tenants' own payments do not (wages do not rise: a tenant keeps paying its share of the rent it
  would have had), so arrears build where tenants pay part of the rent.
* ``economic_shock`` (size: a rate multiplier, above 1 and at most 20, e.g. 3): from ``start`` the group's
  tenancies enter shock episodes (job loss, cut hours, illness, household change, benefit change) at this many
  times their usual rate, with the missed and part payments episodes bring. The extra episodes are drawn like the
  others and join them in the ``shocks`` truth; benefit claims stay as drawn.
* ``group_payment_drop`` (size: a probability, 0-1): the group's tenants miss each scheduled payment with this extra
  probability from ``start`` (a payment they would have missed stays missed). Meant for bias tests: keyed on a
  monitoring-only attribute it hits one group of people and nothing else.

Who is in a group: ``group`` maps attributes of the tenancies feed (`GROUP_VALUES`) to a value as the feed writes
it (``{"benefit_type": "universal_credit", "patch": "North-1"}``; ``vulnerable`` is ``true`` or ``false``), and a
tenancy is in the group when it has every one of them in the feed of the same portfolio *without* the changes. A
change alters what happens to a tenancy, not who the tenant is: the monitoring-only attributes (age_band, sex,
ethnicity, disability) of a portfolio with changes are those of the portfolio without them, so a change keyed on
one of them hits exactly the tenancies the feed shows in that group. (Circumstances a change can move, such as the
benefit type or payment method at the window end, are the feed's without the change; the truth lists the
tenancies in each group.)

Randomness: a portfolio without changes is the portfolio as before, bit for bit. With changes the simulation is
run twice, once without them (for the groups and the monitoring-only attributes) and once with them; extra shock
episodes come from their own random stream (one per change), and the other kinds draw nothing: a delayed or
dearer payment is the same payment, and an extra miss uses the same draw as the usual one with a higher chance.
Everything dated before the first change's start is therefore identical to the portfolio without changes; from
then on every tenancy's path may differ by chance (the day-by-day draws are shared across a block of tenancies),
tenancies outside the group alike in distribution only.

The truth records every change: ``changes`` (one row per change: ``change`` number, ``kind``, ``start_date``,
``group``, ``size``, ``tenancies`` in the group and live on or after the start, and its ``spec`` in the form
`parse_change` reads) and ``change_tenancies`` (``change``, ``tenancy_id``: those tenancies).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from features.feeds.contract import BENEFIT_TYPES, RENT_FREQUENCIES
from simulator.population import (
    AGE_BANDS,
    B_HB,
    B_UC,
    CHANNELS,
    DISABILITY,
    ETHNICITIES,
    LANGUAGES,
    METHODS,
    SEXES,
    TENURES,
    Population,
    with_extra_shocks,
)

#: The kinds of change, each with the meaning of its ``size``.
KINDS: dict[str, str] = {
    "benefit_delay": "days (whole, 1-365) benefit paid to the landlord (HB, UC managed payments) arrives late",
    "rent_rise": "share (0-1, e.g. 0.15) the rent rises by; tenants' own payments do not rise",
    "economic_shock": "times (above 1, at most 20, e.g. 3) the usual rate of shock episodes",
    "group_payment_drop": "extra probability (0-1) of missing each scheduled payment",
}
#: The smallest and largest size of each kind: a size is above the smallest and at most the largest, except a
#: benefit_delay, a whole number of days from the smallest to the largest.
SIZE_RANGES: dict[str, tuple[float, float]] = {
    "benefit_delay": (1, 365), "rent_rise": (0.0, 1.0), "economic_shock": (1.0, 20.0),
    "group_payment_drop": (0.0, 1.0),
}
#: The attributes of the tenancies feed a group may name, with their values (None: a patch name, checked against
#: the portfolio's patches).
GROUP_VALUES: dict[str, tuple[str, ...] | None] = {
    "patch": None, "tenure_type": TENURES, "rent_frequency": RENT_FREQUENCIES, "benefit_type": BENEFIT_TYPES,
    "payment_method": METHODS, "preferred_channel": CHANNELS, "language": LANGUAGES, "vulnerable": ("true", "false"),
    "age_band": AGE_BANDS, "sex": SEXES, "ethnicity": ETHNICITIES, "disability": DISABILITY,
}
#: The form `parse_change` reads (and the CLI's --inject takes).
SPEC_FORM = "KIND:YYYY-MM-DD[:ATTRIBUTE=VALUE]...:size=NUMBER"
#: First part of the random stream of each change that draws (an economic shock): [seed, CHANGE_STREAM, change].
CHANGE_STREAM = 6


@dataclass(frozen=True)
class Change:
    """A change injected from ``start`` into the tenancies of ``group`` (None: all); ``size`` means what `KINDS`
    says for ``kind`` (see the module docstring)."""

    kind: str
    start: date
    size: float
    group: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not isinstance(self.start, date) or hasattr(self.start, "hour"):
            raise ValueError(f"start must be a date, not {self.start!r}")
        object.__setattr__(self, "size", _checked_size(self.kind, self.size))
        group = {name: str(value).lower() if isinstance(value, bool | np.bool_) else value
                 for name, value in self.group.items()} if self.group else None
        for attribute, value in (group or {}).items():
            _check_group_value(attribute, value)
        object.__setattr__(self, "group", group)

    @property
    def group_text(self) -> str:
        """The group as ``attribute=value`` pairs joined by ':' (``all`` for every tenancy)."""
        return ":".join(f"{name}={value}" for name, value in self.group.items()) if self.group else "all"

    def __hash__(self) -> int:
        return hash((self.kind, self.start, self.size, tuple(sorted((self.group or {}).items()))))

    def spec(self) -> str:
        """The change in the form `parse_change` reads (`SPEC_FORM`)."""
        group = f"{self.group_text}:" if self.group else ""
        size = str(int(self.size)) if self.size.is_integer() else repr(self.size)
        return f"{self.kind}:{self.start.isoformat()}:{group}size={size}"


def _checked_size(kind: str, size: object) -> float:
    """``size`` as a float, if it is in the kind's range (`SIZE_RANGES`)."""
    low, high = SIZE_RANGES[kind]
    try:
        value = float(size)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"size {size!r} of {kind} is not a number") from None
    if kind == "benefit_delay":
        fits, span = value.is_integer() and low <= value <= high, f"a whole number of days from {low:g} to {high:g}"
    else:
        fits, span = low < value <= high, f"above {low:g} and at most {high:g}"
    if not (math.isfinite(value) and fits):
        raise ValueError(f"size {size!r} of {kind} must be {span} ({kind}: {KINDS[kind]})")
    return value


def _check_group_value(attribute: str, value: object) -> None:
    """A group's attribute is one of `GROUP_VALUES` and its value one of the attribute's values."""
    if attribute not in GROUP_VALUES:
        raise ValueError(f"group attribute {attribute!r} is not one of {', '.join(GROUP_VALUES)}")
    values = GROUP_VALUES[attribute]
    if not isinstance(value, str) or (values is not None and value not in values):
        allowed = ", ".join(values) if values is not None else "a patch name such as North-1"
        raise ValueError(f"group value {value!r} of {attribute} is not one of {allowed}")


def parse_change(text: str) -> Change:
    """A `Change` from its `SPEC_FORM`, e.g. ``benefit_delay:2025-06-01:benefit_type=universal_credit:size=14``.
    Raises ValueError saying what is wrong, the form and the kinds."""
    parts = [part.strip() for part in str(text).strip().split(":")]
    kind, when, pairs = parts[0], parts[1] if len(parts) > 1 else "", parts[2:]
    try:
        if kind not in KINDS:
            raise ValueError(f"{kind!r} is not a kind")
        try:
            start = date.fromisoformat(when)
        except ValueError:
            raise ValueError(f"the start {when!r} is not a date YYYY-MM-DD") from None
        settings: dict[str, str] = {}
        for pair in pairs:
            name, equals, value = pair.partition("=")
            if not equals or not name.strip() or name.strip() in settings:
                problem = "repeats" if name.strip() in settings else "is not ATTRIBUTE=VALUE"
                raise ValueError(f"{pair!r} {problem}")
            settings[name.strip()] = value.strip()
        if "size" not in settings:
            raise ValueError("size=NUMBER is missing")
        size = settings.pop("size")
        return Change(kind, start, size, settings or None)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}; expected {SPEC_FORM} with KIND one of {', '.join(KINDS)} "
                         f"(size: {'; '.join(f'{name}: {meaning}' for name, meaning in KINDS.items())})") from None


def check_window(changes: Sequence[Change], window_start: date, window_end: date) -> None:
    """Every change starts inside the observation window ``[window_start, window_end]``."""
    for change in changes:
        if not isinstance(change, Change):
            raise ValueError(f"changes must be Change objects, not {change!r}")
        if not window_start <= change.start <= window_end:
            raise ValueError(f"the change {change.spec()} starts outside the observation window "
                             f"{window_start.isoformat()} to {window_end.isoformat()}")


# -- a change resolved against one portfolio ------------------------------------------------------------------------


@dataclass(frozen=True)
class InjectedChange:
    """A change resolved against a portfolio: its start as a day index and the tenancies of its group."""

    change: Change
    start_day: int
    members: np.ndarray  #: per tenancy: in the group
    benefits: tuple[int, ...]  #: benefit_delay: the benefits whose payments are delayed (B_HB, B_UC)

    def rows(self, index: slice | np.ndarray) -> InjectedChange:
        """The same change for some tenancies only (a block)."""
        return dataclasses.replace(self, members=self.members[index])


@dataclass(frozen=True)
class ChangeEffects:
    """What the behaviour engine reads of the changes (arrays per tenancy of a block; see `simulator.behaviour`)."""

    changes: tuple[InjectedChange, ...]

    def rows(self, index: slice | np.ndarray) -> ChangeEffects:
        """The effects for some tenancies only (a block)."""
        return ChangeEffects(tuple(injected.rows(index) for injected in self.changes))

    def _of(self, kind: str) -> list[InjectedChange]:
        return [injected for injected in self.changes if injected.change.kind == kind]

    @property
    def rent_rise_days(self) -> frozenset[int]:
        """The days a rent rise starts (when the rent in force changes)."""
        return frozenset(injected.start_day for injected in self._of("rent_rise"))

    def rent_factor(self, days: np.ndarray | int) -> np.ndarray:
        """Per tenancy: what the rent in force on ``days`` (one day, or one per tenancy) is multiplied by."""
        factor = np.ones(len(self.changes[0].members))
        for injected in self._of("rent_rise"):
            factor = factor * np.where(injected.members & (days >= injected.start_day), 1.0 + injected.change.size,
                                       1.0)
        return factor

    def benefit_delay(self, t: int, rows: np.ndarray, benefit: int) -> np.ndarray:
        """Days late the payments of ``benefit`` (B_HB or B_UC) due on day ``t`` to the tenancies ``rows`` arrive."""
        delay = np.zeros(len(rows), dtype=np.int64)
        for injected in self._of("benefit_delay"):
            if t >= injected.start_day and benefit in injected.benefits:
                delay += np.where(injected.members[rows], int(injected.change.size), 0)
        return delay

    def with_extra_miss(self, t: int, rows: np.ndarray, p_miss: np.ndarray) -> np.ndarray:
        """The chance each payment of the tenancies ``rows`` due on day ``t`` is missed, with the extra chances."""
        for injected in self._of("group_payment_drop"):
            if t >= injected.start_day:
                extra = np.where(injected.members[rows], injected.change.size, 0.0)
                p_miss = 1.0 - (1.0 - p_miss) * (1.0 - extra)
        return p_miss


def group_members(change: Change, feed: pd.DataFrame) -> np.ndarray:
    """Per tenancy of the tenancies ``feed``: in the change's group (every tenancy when it has none)."""
    members = np.ones(len(feed), dtype=bool)
    for attribute, value in (change.group or {}).items():
        column = feed[attribute]
        if attribute == "patch" and value not in set(column.astype(str)):
            raise ValueError(f"the group of {change.spec()} names patch {value!r}, not one of this portfolio's "
                             f"patches: {', '.join(column.cat.categories)}")
        text = column.map({True: "true", False: "false"}) if attribute == "vulnerable" else column.astype(str)
        members &= text.to_numpy() == value
    return members


def inject(
    pop: Population, feed: pd.DataFrame, changes: Sequence[Change], seed: int
) -> tuple[Population, ChangeEffects]:
    """The changes resolved against a portfolio's population and its tenancies ``feed`` without them: the population
    with any economic shock's extra episodes (each change its own stream), and what the behaviour engine reads."""
    injected = []
    for number, change in enumerate(changes):
        start_day = pop.grid.day(change.start)
        members = group_members(change, feed)
        benefit_type = (change.group or {}).get("benefit_type")
        benefits = {"housing_benefit": (B_HB,), "universal_credit": (B_UC,)}.get(benefit_type, (B_HB, B_UC))
        injected.append(InjectedChange(change, start_day, members, benefits))
        if change.kind == "economic_shock":
            tenancies = pop.tenancies
            rate = np.where(members, (change.size - 1.0) * tenancies.shock_rate, 0.0)
            first_day = np.maximum(np.maximum(tenancies.start, 0), start_day)
            last_day = np.minimum(tenancies.end, pop.last_day)
            rng = np.random.default_rng([seed, CHANGE_STREAM, number])
            tenancies, _ = with_extra_shocks(rng, tenancies, rate, first_day, last_day)
            pop = dataclasses.replace(pop, tenancies=tenancies)
    return pop, ChangeEffects(tuple(injected))


def affected(injected: InjectedChange, end: np.ndarray) -> np.ndarray:
    """The tenancies a change reaches: in its group and live on or after its start (``end``: each tenancy's last
    day, NEVER while live; every tenancy starts by the window end)."""
    return injected.members & (end >= injected.start_day)


__all__ = ["GROUP_VALUES", "KINDS", "SIZE_RANGES", "SPEC_FORM", "Change", "ChangeEffects", "InjectedChange",
           "affected", "check_window", "group_members", "inject", "parse_change"]
