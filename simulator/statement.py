"""The monthly-statement shape: a portfolio as letting agents' and some housing associations' exports show it.

`simulate_portfolio(..., shape="monthly_statement")` draws the same population as the default (``"weekly"``) shape,
from the same random stream, then:

* `to_monthly_statement` charges every tenancy's rent monthly on one statement day for the whole portfolio
  (`STATEMENT_DAY`, the 1st): one charge a month, at the monthly equivalent of its rent (rents still change each
  April, on the 1st). A tenancy starting between statement days is charged the rent from its start to the first
  statement on its first day (``"Rent to first statement"``, see `simulator.behaviour`). Direct debits, and
  standing orders set up for the rent day, are collected on the statement day; wages, pensions, benefit days and
  Universal Credit stay as drawn, so many tenants still pay weekly or fortnightly against a monthly rent.
* `draw_payment_habits` gives each tenant a habit (`PaymentHabits`, part of the hidden truth) that turns what the
  behaviour engine decided a payment is meant to be into the sum actually paid (`PaymentHabits.paid`). Missed and
  part payments, catch-ups, arrangements and shocks still come from the same hidden propensities; the habit only
  changes the sum: ``exact`` (to the penny; every direct debit), ``round_sum`` (a round number of the payment's
  size, e.g. £300 or £450 against £437.50, rounded down more often by tenants who often part-pay) or ``odd_sum``
  (whole pounds that vary from payment to payment around what is meant, more for irregular and chronic payers).
  Tenants not paying by direct debit now and then overpay (keen payers, those who catch up, more often).
* the export has no events feed: officers still contact tenants, agree arrangements, take legal steps (they shape
  the payments), but those events reach only the truth (``unexported_events``, see `simulator.portfolio`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

import numpy as np

from simulator.calendar import KIND_MONTHLY, KIND_WEEKS
from simulator.population import M_DD, M_SO, Population, TenancyArrays

#: The day of the month every monthly-statement rent is charged on.
STATEMENT_DAY = 1
#: A month's rent per day, as letting agents apportion it (a month's rent × 12 / 365).
DAYS_PER_YEAR = 365

HABITS = ("exact", "round_sum", "odd_sum")
H_EXACT, H_ROUND_SUM, H_ODD_SUM = range(len(HABITS))
#: Share of tenants with the ``exact`` and the ``round_sum`` habit by payment method (direct debit, standing order,
#: card, cash, benefit direct); the rest have ``odd_sum``. A direct debit collects exactly what is asked.
EXACT_SHARE = np.array([1.0, 0.35, 0.25, 0.05, 0.3])
ROUND_SUM_SHARE = np.array([0.0, 0.65, 0.35, 0.55, 0.4])
#: Round sums, in pence: a round-sum payer pays a multiple of the largest of these up to ``round_fineness`` × the
#: sum meant (so £437.50 becomes £400 or £450 at fineness 0.2, £420 or £440 at 0.1).
ROUND_UNITS = np.array([1, 2, 5, 10, 20, 25, 50, 100]) * 100
ROUND_FINENESS = np.array([0.05, 0.1, 0.2])
#: Spread (lognormal sigma) of an odd-sum payer's payments around what is meant, by archetype (reliable,
#: habitual_late, irregular, shock_prone, chronic), before personal noise.
ODD_SUM_SIGMA = np.array([0.05, 0.1, 0.3, 0.1, 0.25])
#: An overpayment pays this many times what is meant (uniform).
OVERPAY_FACTOR = (1.25, 2.0)


@dataclass(frozen=True)
class PaymentHabits:
    """Each tenant's habit for the sums paid (first axis = tenancy, in tenancy_id order)."""

    habit: np.ndarray  #: HABITS code
    round_fineness: np.ndarray  #: round_sum: the round unit is at most this share of the sum meant
    p_round_down: np.ndarray  #: round_sum: chance a sum is rounded down (else up)
    odd_sum_sigma: np.ndarray  #: odd_sum: lognormal spread of the sums around what is meant
    p_overpay: np.ndarray  #: chance a payment is an overpayment (0 for direct debits)

    def rows(self, index: slice | np.ndarray) -> PaymentHabits:
        """The same rows (tenancies) of every array."""
        return PaymentHabits(**{spec.name: getattr(self, spec.name)[index] for spec in fields(self)})

    def paid(self, rows: np.ndarray, meant: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The sums (pence) the tenants ``rows`` pay when the engine means them to pay ``meant`` (0: missed)."""
        draws = rng.random((3, rows.size))
        normal = rng.standard_normal(rows.size)
        habit = self.habit[rows]
        overpay = (meant > 0) & (draws[0] < self.p_overpay[rows])
        low, high = OVERPAY_FACTOR
        amount = meant * np.where(overpay, low + (high - low) * draws[1], 1.0)
        unit = _round_unit(amount * self.round_fineness[rows])
        down = draws[2] < self.p_round_down[rows]
        rounded = np.where(down, np.floor(amount / unit), np.ceil(amount / unit)) * unit
        sigma = self.odd_sum_sigma[rows]
        odd = np.rint(amount * np.exp(sigma * normal - sigma**2 / 2) / 100.0) * 100.0  # lognormal, mean 1
        exact = np.where(overpay, np.rint(amount / 100.0) * 100.0, np.rint(amount))  # (an overpayment: whole pounds)
        amount = np.select([habit == H_ROUND_SUM, habit == H_ODD_SUM], [rounded, odd], exact)
        return np.where(meant > 0, amount, 0).astype(np.int64)


def _round_unit(at_most: np.ndarray) -> np.ndarray:
    """The largest of ROUND_UNITS not above ``at_most`` (pence), and at least £1."""
    return ROUND_UNITS[np.maximum(np.searchsorted(ROUND_UNITS, at_most, side="right") - 1, 0)].astype(float)


def to_monthly_statement(pop: Population) -> Population:
    """The population with every rent charged monthly on STATEMENT_DAY at its monthly equivalent (rounded to the
    penny, year by year), and direct debits (and standing orders set up for the rent day) collected then."""
    tenancies = pop.tenancies
    n = len(tenancies.start)
    monthly_rent = np.rint(tenancies.weekly_rent_by_year * 52.0 / 12.0).astype(np.int64)
    kind, residue = tenancies.pay_cycle_kind.copy(), tenancies.pay_cycle_residue.copy()
    method = tenancies.pay_method
    on_rent_day = (kind == tenancies.rent_kind) & (residue == tenancies.rent_residue)
    moved = ((method == M_DD) & ((kind != KIND_MONTHLY) | on_rent_day)) | ((method == M_SO) & on_rent_day)
    kind[moved], residue[moved] = KIND_MONTHLY, STATEMENT_DAY
    shaped = dataclasses.replace(
        tenancies,
        rent_kind=np.full(n, KIND_MONTHLY, dtype=tenancies.rent_kind.dtype),
        rent_residue=np.full(n, STATEMENT_DAY, dtype=tenancies.rent_residue.dtype),
        rent_by_year=monthly_rent,
        weekly_rent_by_year=monthly_rent * (12.0 / 52.0),
        pay_cycle_kind=kind,
        pay_cycle_residue=residue,
        pay_cycle_weeks=KIND_WEEKS[kind],
        pay_cycle_is_rent_cycle=(kind == KIND_MONTHLY) & (residue == STATEMENT_DAY),
    )
    return dataclasses.replace(pop, tenancies=shaped)


def draw_payment_habits(tenancies: TenancyArrays, rng: np.random.Generator) -> PaymentHabits:
    """Each tenant's payment habit, by payment method, with its parameters tied to the hidden propensities:
    rounding down goes with part-paying, a wide spread with irregular and chronic payers, overpaying with catching
    up."""
    n = len(tenancies.start)
    method = tenancies.pay_method
    draw = rng.random(n)
    exact = draw < EXACT_SHARE[method]
    round_sum = ~exact & (draw < EXACT_SHARE[method] + ROUND_SUM_SHARE[method])
    habit = np.select([exact, round_sum], [H_EXACT, H_ROUND_SUM], H_ODD_SUM)
    fineness = ROUND_FINENESS[rng.integers(0, len(ROUND_FINENESS), n)]
    p_round_down = 0.5 + 0.4 * np.clip(tenancies.p_partial / 0.4, 0.0, 1.0)
    sigma = ODD_SUM_SIGMA[tenancies.archetype] * rng.lognormal(0.0, 0.3, n)
    p_overpay = np.where(method == M_DD, 0.0, 0.01 + 0.06 * tenancies.p_catchup)
    return PaymentHabits(habit=habit, round_fineness=fineness, p_round_down=p_round_down, odd_sum_sigma=sigma,
                         p_overpay=p_overpay)
