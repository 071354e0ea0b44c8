"""Draw the tenancy population: circumstances, hidden propensities, shock episodes and benefit timelines.

Everything here is drawn *before* any money moves, from the "population" random stream, one concern after another
(patches; sector, tenure and rent frequency; tenancy dates and re-lets; rents by year; benefits; archetypes and
propensities; pay cycles; shock episodes; benefit timelines; contact preferences and how reachable the tenant is;
deposits at move-in). The behaviour engine
(`simulator.behaviour`) then reads only these circumstance and propensity arrays (`TenancyArrays`); the
monitoring-only attributes (age band, sex, ethnicity, disability) are drawn afterwards from their own stream by
`draw_monitoring`, conditioned on circumstances, so they correlate with circumstances (and therefore with
outcomes) but never drive behaviour. `with_extra_shocks` adds shock episodes to drawn arrays (an economic shock
injected as a change, `simulator.changes`).

Day indices are relative to the simulation start (see `simulator.calendar`). ``NEVER`` marks "not in
this simulation" (no end date, no claim), ``FAR_PAST`` marks "since before the simulation started".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import NamedTuple

import numpy as np
import pandas as pd

from features.feeds.contract import PERIODS_PER_YEAR, RENT_FREQUENCIES
from simulator.calendar import (
    KIND_MONTHLY,
    KIND_P7,
    KIND_P14,
    KIND_P28,
    KIND_PERIOD,
    KIND_WEEKS,
    DayGrid,
    dom_of,
    residue_for_weekday,
    weekday_of,
)

NEVER = 10**7
FAR_PAST = -(10**7)
#: Days simulated before the observation window so that balances, arrangements and habits are already in
#: motion when the window opens (their net effect arrives as the opening-balance adjustment).
BURN_IN_DAYS = 182
#: At most this many shock episodes per tenancy are simulated.
MAX_SHOCKS = 6

SECTORS = ("social", "private", "temporary")
S_SOCIAL, S_PRIVATE, S_TEMPORARY = range(3)
TENURES = ("secure", "assured", "assured_shorthold", "licence")
METHODS = ("direct_debit", "standing_order", "card", "cash", "benefit_direct")
M_DD, M_SO, M_CARD, M_CASH, M_BENEFIT = range(5)
CHANNELS = ("phone", "email", "sms", "letter")
LANGUAGES = ("en", "pl", "ro", "ur", "bn", "so", "ar", "pa", "pt", "lt")
B_NONE, B_HB, B_UC = range(3)

ARCHETYPES = ("reliable", "habitual_late", "irregular", "shock_prone", "chronic")
A_RELIABLE, A_HABITUAL_LATE, A_IRREGULAR, A_SHOCK_PRONE, A_CHRONIC = range(5)
#: Archetype parameters: probability of missing a scheduled payment, of paying only part, the part paid
#: (uniform lo..hi), the catch-up share of arrears paid on top (uniform lo..hi) and how often it is paid,
#: the chance of honouring each arrangement instalment, of agreeing an arrangement when offered, the rate of
#: shock episodes per year, and the payment delay (base uniform lo..hi days, plus a skewed jitter).
ARCHETYPE_PARAMS = pd.DataFrame(
    {
        "share": [0.55, 0.16, 0.10, 0.14, 0.05],
        "p_skip": [0.008, 0.03, 0.14, 0.02, 0.30],
        "p_partial": [0.02, 0.08, 0.22, 0.05, 0.40],
        "partial_lo": [0.6, 0.5, 0.3, 0.5, 0.2],
        "partial_hi": [0.95, 0.9, 0.9, 0.9, 0.7],
        "catchup_lo": [0.5, 0.3, 0.1, 0.2, 0.0],
        "catchup_hi": [1.0, 0.8, 0.5, 0.6, 0.15],
        "p_catch": [0.8, 0.5, 0.35, 0.5, 0.1],
        "keep": [0.97, 0.9, 0.78, 0.9, 0.55],
        "agree": [0.9, 0.75, 0.5, 0.75, 0.3],
        "shock_rate": [0.05, 0.07, 0.10, 0.65, 0.08],
        "delay_lo": [0.0, 3.0, 1.0, 0.0, 2.0],
        "delay_hi": [1.0, 9.0, 5.0, 2.0, 8.0],
        "delay_jitter": [0.5, 1.5, 6.0, 1.0, 5.0],
    },
    index=list(ARCHETYPES),
)

SHOCK_KINDS = ("job_loss", "reduced_hours", "illness", "household_change", "benefit_change")
SK_JOB, SK_HOURS, SK_ILL, SK_HOUSE, SK_BENEFIT = range(5)
#: Per shock kind: median duration (days), probability a scheduled payment is missed, share of the usual payment
#: made when paid, and the chance of a catch-up lump (back pay, a Discretionary Housing Payment) after it ends.
SHOCK_PARAMS = pd.DataFrame(
    {
        "median_days": [56, 90, 42, 49, 35],
        "skip": [0.85, 0.15, 0.5, 0.35, 0.3],
        "factor": [0.3, 0.6, 0.5, 0.6, 0.7],
        "p_lump": [0.3, 0.15, 0.3, 0.2, 0.0],
    },
    index=list(SHOCK_KINDS),
)

#: Social rent change each April (CPI+1% settlements); other years default to 3%.
SOCIAL_RENT_RISE = {2023: 0.07, 2024: 0.077, 2025: 0.027, 2026: 0.048}
DEFAULT_RENT_RISE = 0.03

PATCH_DIRECTIONS = ("North", "South", "East", "West", "Central")


def n_patches_for(n: int) -> int:
    """8 patches for 100 tenancies, growing with log10(n) to 20 for a million."""
    return int(np.clip(round(8 + 3 * np.log10(max(n, 1) / 100)), 8, 20))


def patch_names(count: int) -> list[str]:
    """North-1, South-1, East-1, West-1, Central-1, North-2, ..."""
    return [f"{PATCH_DIRECTIONS[i % 5]}-{i // 5 + 1}" for i in range(count)]


@dataclass(frozen=True)
class TenancyArrays:
    """Everything drawn per tenancy, one array each (first axis = tenancy, in tenancy_id order).

    Money is in pence; days are day indices (``NEVER``: not in this simulation, ``FAR_PAST``: since before it
    started); codes index the vocabularies above (``SECTORS``, ``METHODS``, ...).
    """

    # -- the letting ---------------------------------------------------------------------------------------------
    patch: np.ndarray  #: index into `Population.patches`
    sector: np.ndarray
    tenure: np.ndarray
    rent_kind: np.ndarray  #: rent frequency code (RENT_FREQUENCIES order), which is also its schedule kind
    rent_residue: np.ndarray  #: when rent is due (see `simulator.calendar`)
    start: np.ndarray  #: first day of the tenancy
    end: np.ndarray  #: last day, NEVER if live at the window end
    moves_in: np.ndarray  #: moved in during the window
    property_number: np.ndarray  #: 1.. in order of first letting; a re-let has its predecessor's
    # -- rent ----------------------------------------------------------------------------------------------------
    rent_by_year: np.ndarray  #: rent per period, [tenancy, rent year] (a rent year starts at each April change)
    weekly_rent_by_year: np.ndarray  #: the same per week (float pence)
    # -- circumstances at the start ------------------------------------------------------------------------------
    benefit_at_start: np.ndarray  #: B_NONE, B_HB or B_UC
    vulnerable: np.ndarray
    hb_coverage: np.ndarray  #: share of rent Housing Benefit pays
    uc_coverage: np.ndarray  #: share of rent Universal Credit managed payments pay
    # -- hidden propensities (ARCHETYPE_PARAMS with personal noise) ----------------------------------------------
    archetype: np.ndarray
    p_skip: np.ndarray  #: chance of missing a scheduled payment
    p_partial: np.ndarray  #: chance of paying only part ...
    partial_share_low: np.ndarray  #: ... a share drawn uniformly from low to high
    partial_share_high: np.ndarray
    catchup_share: np.ndarray  #: share of what is owed beyond the target paid on top ...
    p_catchup: np.ndarray  #: ... with this chance at each payment
    p_keep_arrangement: np.ndarray  #: chance of honouring each arrangement instalment
    p_agree_arrangement: np.ndarray  #: chance of agreeing an arrangement when offered
    shock_rate: np.ndarray  #: shock episodes per year
    pays_ahead: np.ndarray  #: keeps rent paid in advance up to the next payday
    delay_base_days: np.ndarray  #: payment delay for card and cash payers: base ...
    delay_jitter_days: np.ndarray  #: ... plus this times a skewed jitter
    legacy_arrears_weeks: np.ndarray  #: balance at the simulation start in weeks of rent (0 for later starts)
    legacy_balance: np.ndarray  #: the same in pence
    # -- how the tenant pays -------------------------------------------------------------------------------------
    pay_method: np.ndarray
    round_pounds: np.ndarray  #: pays whole pounds
    bank_delay_days: np.ndarray  #: days a standing order takes to arrive (0 otherwise)
    posting_lag_days: np.ndarray  #: 1 for payments that arrive in the next day's file (cash, some cards)
    pay_cycle_kind: np.ndarray  #: the tenant's own payment schedule ("cycle A": wages, pension, DD/SO date)
    pay_cycle_residue: np.ndarray
    pay_cycle_weeks: np.ndarray  #: weeks covered by one cycle
    pay_cycle_is_rent_cycle: np.ndarray  #: the cycle is the rent schedule itself (pay the rent charged)
    # -- benefit timelines ---------------------------------------------------------------------------------------
    hb_run_residue: np.ndarray  #: the patch's four-weekly Housing Benefit run
    hb_from: np.ndarray
    hb_first_run: np.ndarray  #: first HB run that pays (new claims are assessed first)
    hb_to: np.ndarray  #: HB ends (managed migration to UC)
    uc_from: np.ndarray  #: Universal Credit claim start
    uc_claim_reason: np.ndarray  #: 0 existing, 1 move-in new claim, 2 job loss, 3 managed migration; -1 none
    uc_first_payment: np.ndarray  #: after the five-week wait for new claims
    uc_payment_dom: np.ndarray  #: day of month UC is paid
    apa_from: np.ndarray  #: managed payments (APA) to the landlord from this day
    uc_arrears_deduction: np.ndarray  #: monthly UC deduction towards arrears, paid with managed payments
    uc_advance_day: np.ndarray  #: a payment from a UC advance during the wait
    uc_advance_amount: np.ndarray
    # -- shock episodes: [tenancy, slot], by start, at most MAX_SHOCKS (the last slot is always empty) -----------
    shock_start: np.ndarray
    shock_end: np.ndarray
    shock_kind: np.ndarray  #: SHOCK_KINDS code, -1 for an empty slot
    shock_severity: np.ndarray
    shock_p_miss: np.ndarray  #: chance a scheduled payment is missed during it
    shock_income_factor: np.ndarray  #: share of the usual payment made when paid
    shock_backdated: np.ndarray  #: lost benefit is backdated afterwards
    shock_lump_day: np.ndarray  #: a catch-up lump sum after it (NEVER: none) ...
    shock_lump_share: np.ndarray  #: ... paying this share of the balance then ...
    shock_lump_is_dhp: np.ndarray  #: ... as a Discretionary Housing Payment (else from the tenant)
    shock_local_employment: np.ndarray  #: part of a patch's local employment shock
    shock_count: np.ndarray  #: episodes per tenancy
    # -- contact -------------------------------------------------------------------------------------------------
    channel: np.ndarray  #: preferred contact channel
    language: np.ndarray
    p_no_answer: np.ndarray  #: chance an officer's attempt to reach the tenant fails
    # -- move-in -------------------------------------------------------------------------------------------------
    deposit_amount: np.ndarray  #: a deposit-like receipt paid into the rent account at move-in (0: none)

    def by_name(self) -> dict[str, np.ndarray]:
        """Every array, by field name."""
        return {spec.name: getattr(self, spec.name) for spec in fields(self)}

    def rows(self, index: slice | np.ndarray) -> TenancyArrays:
        """The same rows (tenancies) of every array."""
        return TenancyArrays(**{name: array[index] for name, array in self.by_name().items()})


@dataclass
class Population:
    """The drawn population: per-tenancy arrays (first axis = tenancy, in tenancy_id order) and shared facts."""

    n: int
    grid: DayGrid
    window_start_day: int  #: day index of the window start
    last_day: int  #: day index of the window end (the last simulated day)
    patches: list[str]
    patch_table: pd.DataFrame
    rent_change_days: dict[str, np.ndarray]  #: "periodic"/"monthly" → day index of each April change
    tenancies: TenancyArrays

    def block(self, lo: int, hi: int) -> TenancyArrays:
        """The arrays of tenancies ``lo`` to ``hi - 1`` (views, not copies)."""
        return self.tenancies.rows(slice(lo, hi))

    @property
    def a(self) -> dict[str, np.ndarray]:
        """The per-tenancy arrays by name (the name tests/test_simulate.py reads them by)."""
        return self.tenancies.by_name()


def _gumbel_choice(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``logits`` (softmax probabilities)."""
    return np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)


def _row_choice(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a probability matrix."""
    cumulative = np.cumsum(probs, axis=1)
    draw = rng.random(len(probs))[:, None] * cumulative[:, -1:]
    return np.minimum((draw >= cumulative).sum(axis=1), probs.shape[1] - 1)


def _by_group(rng: np.random.Generator, group: np.ndarray, table: dict[int, list[float]], n_out: int) -> np.ndarray:
    """Draw a category for each row from the probability list of its group."""
    probs = np.zeros((len(group), n_out))
    for code, row_probs in table.items():
        probs[group == code] = row_probs
    return _row_choice(rng, probs)


def draw_population(n: int, window_start: date, end_date: date, seed: int) -> Population:
    """Draw ``n`` tenancies live at some point in ``[window_start, end_date]``.

    Each step draws one concern from the population stream; the order of the steps is the order of the draws.
    """
    rng = np.random.default_rng([seed, 1])
    span = _Span.ending(window_start, end_date)
    patches = _draw_patches(rng, n, span)
    patch = rng.choice(len(patches.names), size=n, p=patches.weight)
    lettings, weekly_rent_at_start = _draw_lettings(rng, span, patch, patches)
    change_years, monthly_change, periodic_change = _rent_changes(span)
    rents = _draw_rents(rng, change_years, lettings.sector, lettings.rent_kind, weekly_rent_at_start)
    benefits = _draw_benefits(rng, lettings.sector)
    sector, benefit, vulnerable = lettings.sector, benefits.benefit_at_start, benefits.vulnerable
    provisional_method = _draw_provisional_pay_method(rng, sector, benefit)
    archetype = _draw_archetype(rng, sector, benefit, vulnerable, provisional_method)
    propensities = _draw_propensities(rng, archetype)
    habits = _draw_payment_habits(rng, provisional_method)
    legacy = _draw_legacy_arrears(rng, archetype, lettings.start, rents.weekly_rent_by_year[:, 0])
    cycles = _draw_pay_cycles(rng, span, lettings, benefit, provisional_method)
    earner = benefit == B_NONE
    shocks = _draw_shocks(rng, span, lettings, propensities.shock_rate, earner, patches)
    housing_benefit = _draw_housing_benefit(rng, benefit, lettings.start, patches.hb_run_residue[lettings.patch])
    uc_claims, migrated = _draw_uc_claims(rng, span, lettings, benefit, earner, shocks)
    uc_payments, apa_existing = _draw_uc_payments(
        rng, span, uc_claims.uc_from, sector, vulnerable, migrated, rents.weekly_rent_by_year[:, 0])
    payments = _settle_payments(rng, lettings, benefits, apa_existing, habits, cycles)
    contact = _draw_contact(rng, sector, payments.pay_method, archetype)
    deposits = _draw_deposits(rng, lettings, rents.weekly_rent_by_year[:, 0])
    groups = (lettings, rents, benefits, propensities, legacy, payments, housing_benefit, uc_claims, uc_payments,
              shocks, contact, deposits)
    tenancies = TenancyArrays(**{name: array for group in groups for name, array in group._asdict().items()})
    grid = DayGrid(span.sim_start, span.last_day + 1)
    return Population(
        n=n, grid=grid, window_start_day=span.window_start_day, last_day=span.last_day, patches=patches.names,
        patch_table=patches.table(grid), rent_change_days={"periodic": periodic_change, "monthly": monthly_change},
        tenancies=tenancies,
    )


@dataclass(frozen=True)
class _Span:
    """The simulated days: a burn-in, then the observation window; day 0 is ``sim_start``."""

    sim_start: date
    window_start_day: int
    last_day: int  #: the window end
    end_date: date

    @classmethod
    def ending(cls, window_start: date, end_date: date) -> _Span:
        """The burn-in before ``window_start``, then the window to ``end_date``."""
        sim_start = window_start - timedelta(days=BURN_IN_DAYS)
        return cls(sim_start, BURN_IN_DAYS, (end_date - sim_start).days, end_date)

    @property
    def window_days(self) -> int:
        """Days in the observation window."""
        return self.last_day - self.window_start_day + 1


# -- patches ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Patches:
    """Per patch: its share of tenancies, social-housing share, rent level, HB run and local employment shock."""

    names: list[str]
    weight: np.ndarray
    social_share: np.ndarray
    rent_multiplier: np.ndarray
    hb_run_residue: np.ndarray
    local_shock_start: np.ndarray  #: NEVER for patches without one
    local_shock_end: np.ndarray

    def table(self, grid: DayGrid) -> pd.DataFrame:
        """The patches as the ``patches`` ground-truth table."""
        return pd.DataFrame({
            "patch": self.names, "weight": self.weight, "social_share": self.social_share,
            "rent_multiplier": self.rent_multiplier, "hb_run_residue": self.hb_run_residue,
            "local_shock_start": _maybe_dates(grid, self.local_shock_start),
            "local_shock_end": _maybe_dates(grid, self.local_shock_end),
        })


def _draw_patches(rng: np.random.Generator, n: int, span: _Span) -> _Patches:
    """The patches: mostly social housing, a few (about one in six) mostly private."""
    count = n_patches_for(n)
    weight = rng.dirichlet(np.full(count, 4.0))
    social_share = rng.beta(9, 2, count)
    private_heavy = rng.choice(count, size=max(1, count // 6), replace=False)
    social_share[private_heavy] = rng.beta(2, 4, len(private_heavy))
    rent_multiplier = rng.lognormal(0.0, 0.1, count)
    hb_run_residue = residue_for_weekday(np.zeros(count, dtype=np.int64), span.sim_start, 28,
                                         rng.integers(0, 4, count))
    # One or two patches suffer a local employment shock (an employer closing) for about three months.
    shocked = np.zeros(count, dtype=bool)
    shocked[rng.choice(count, size=1 if count < 12 else 2, replace=False)] = True
    shock_start = span.window_start_day + rng.integers(0, max(1, span.window_days - 90), count)
    shock_end = shock_start + 90
    shock_start[~shocked] = NEVER
    shock_end[~shocked] = NEVER
    return _Patches(patch_names(count), weight, social_share, rent_multiplier, hb_run_residue, shock_start, shock_end)


# -- lettings: sector, tenure, rent frequency, dates, re-lets -----------------------------------------------------


class _Lettings(NamedTuple):
    patch: np.ndarray
    sector: np.ndarray
    tenure: np.ndarray
    rent_kind: np.ndarray
    rent_residue: np.ndarray
    start: np.ndarray
    end: np.ndarray
    moves_in: np.ndarray
    property_number: np.ndarray


def _draw_lettings(
    rng: np.random.Generator, span: _Span, patch: np.ndarray, patches: _Patches
) -> tuple[_Lettings, np.ndarray]:
    """Sector, tenure, rent frequency and dates of each tenancy (re-lets included), ordered by start date so that
    T000001 is the oldest; and, in the same order, the weekly rent (pence) at the simulation start."""
    sector, tenure, rent_kind = _draw_sector_tenure_frequency(rng, patches.social_share[patch])
    weekly_rent = _draw_weekly_rent(rng, sector, patches.rent_multiplier[patch])
    moves_in, start, end, stay = _draw_tenancy_dates(rng, span, sector)
    property_index = _relet_vacated_properties(rng, span, patch, sector, moves_in, start, end, stay, weekly_rent)
    start, end, rent_residue = _align_rent_days(rng, span, rent_kind, moves_in, start, end)
    order = np.lexsort((rng.random(len(patch)), start))
    lettings = _Lettings(
        patch=patch[order], sector=sector[order], tenure=tenure[order], rent_kind=rent_kind[order],
        rent_residue=rent_residue[order], start=start[order], end=end[order], moves_in=moves_in[order],
        property_number=_property_numbers(property_index[order]),
    )
    return lettings, weekly_rent[order]


def _draw_sector_tenure_frequency(
    rng: np.random.Generator, social_share: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sector (social with the patch's social share, else mostly private), tenure and rent frequency code (which
    is the schedule kind: weekly P7, fortnightly P14, four_weekly P28, monthly)."""
    n = len(social_share)
    draw = rng.random(n)
    sector = np.where(draw < social_share, S_SOCIAL, np.where(rng.random(n) < 0.8, S_PRIVATE, S_TEMPORARY))
    tenure = np.select(
        [sector == S_PRIVATE, sector == S_TEMPORARY],
        [np.full(n, 2), np.full(n, 3)],  # assured shorthold, licence
        _row_choice(rng, np.tile([0.45, 0.45, 0.10], (n, 1))),
    )
    rent_kind = _by_group(rng, sector, {S_SOCIAL: [0.72, 0.05, 0.08, 0.15], S_PRIVATE: [0.08, 0.02, 0.05, 0.85],
                                        S_TEMPORARY: [0.8, 0.0, 0.0, 0.2]}, 4)
    return sector, tenure, rent_kind


def _draw_weekly_rent(rng: np.random.Generator, sector: np.ndarray, rent_multiplier: np.ndarray) -> np.ndarray:
    """Weekly-equivalent rent (pence) at the simulation start, by sector, scaled by the patch's rent level."""
    median = np.array([108.0, 185.0, 170.0])[sector]
    sigma = np.array([0.16, 0.14, 0.18])[sector]
    low = np.array([78.0, 120.0, 100.0])[sector]
    high = np.array([195.0, 212.0, 212.0])[sector]
    return np.clip(median * rng.lognormal(0.0, sigma) * rent_multiplier, low, high) * 100.0


def _draw_tenancy_dates(
    rng: np.random.Generator, span: _Span, sector: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Who moves in during the window; start and end days; how long a move-in stays (move-outs at the sector's
    rate: rarely in social housing, often in temporary accommodation)."""
    n = len(sector)
    years = span.window_days / 365.25
    hazard = np.array([0.08, 0.25, 0.6])[sector]  # move-outs per year
    share_moving_in = hazard * years / (1 + hazard * years)
    moves_in = rng.random(n) < share_moving_in
    age = np.minimum(rng.exponential(365.25 / hazard), 40 * 365.25).astype(np.int64)
    start = np.where(moves_in, rng.integers(span.window_start_day, span.last_day + 1, n),
                     span.window_start_day - 1 - age)
    stay = np.maximum(rng.exponential(365.25 / hazard), np.where(sector == S_TEMPORARY, 14, 28)).astype(np.int64)
    end = np.where(moves_in, start + stay, span.window_start_day + (rng.exponential(365.25 / hazard)).astype(np.int64))
    return moves_in, start, end, stay


def _relet_vacated_properties(
    rng: np.random.Generator, span: _Span, patch: np.ndarray, sector: np.ndarray, moves_in: np.ndarray,
    start: np.ndarray, end: np.ndarray, stay: np.ndarray, weekly_rent: np.ndarray,
) -> np.ndarray:
    """Re-lets: move-ins take over properties vacated in the window (same patch and sector), after a void.

    Updates the move-ins' ``start``, ``end`` and ``weekly_rent`` in place and returns each tenancy's property as a
    row index (its own row, or the vacating tenancy's for a re-let)."""
    property_index = np.arange(len(start))
    vacated = np.flatnonzero(~moves_in & (end <= span.last_day - 21))
    void = 7 + rng.exponential(20.0, len(vacated)).astype(np.int64)
    ready = end[vacated] + 1 + void
    vacated, ready = vacated[ready <= span.last_day - 7], ready[ready <= span.last_day - 7]
    incoming = np.flatnonzero(moves_in)
    if len(vacated) and len(incoming):
        new_rows, old_rows, ready_day = _pair_relets(rng, patch * 3 + sector, vacated, ready, incoming)
        start[new_rows] = ready_day
        end[new_rows] = start[new_rows] + stay[new_rows]
        property_index[new_rows] = property_index[old_rows]
        weekly_rent[new_rows] = weekly_rent[old_rows] * np.where(sector[new_rows] == S_SOCIAL, 1.0, 1.05)
    return property_index


def _pair_relets(
    rng: np.random.Generator, group: np.ndarray, vacated: np.ndarray, ready: np.ndarray, incoming: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Within each group (patch and sector), the k-th move-in takes the k-th vacancy, both in a random order.
    Returns the move-in rows, the vacated rows they take over and the days those properties are ready."""
    vacancies = pd.DataFrame({"row": vacated, "ready": ready, "group": group[vacated],
                              "shuffle": rng.random(len(vacated))})
    movers = pd.DataFrame({"row": incoming, "group": group[incoming], "shuffle": rng.random(len(incoming))})
    vacancies = vacancies.sort_values(["group", "shuffle"], kind="stable")
    movers = movers.sort_values(["group", "shuffle"], kind="stable")
    vacancies["rank"] = vacancies.groupby("group").cumcount()
    movers["rank"] = movers.groupby("group").cumcount()
    pairs = movers.merge(vacancies, on=["group", "rank"], suffixes=("", "_vacated"))
    return pairs["row"].to_numpy(), pairs["row_vacated"].to_numpy(), pairs["ready"].to_numpy()


def _align_rent_days(
    rng: np.random.Generator, span: _Span, rent_kind: np.ndarray, moves_in: np.ndarray, start: np.ndarray,
    end: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start days moved onto the rent schedule, end days after them (NEVER after the window), and the rent residue.

    Periodic rents start on a Monday (forward for move-ins so they stay in the window); monthly rents on day 1..28
    of the month (40% of older monthly tenancies on the 1st)."""
    periodic = rent_kind != KIND_MONTHLY
    weekday = weekday_of(start, span.sim_start)
    start = np.where(periodic & moves_in, start + (7 - weekday) % 7, np.where(periodic, start - weekday, start))
    day_of_month = dom_of(start, span.sim_start)
    first_of_month = ~moves_in & (rng.random(len(start)) < 0.4)
    start = np.where(~periodic & first_of_month, start - (day_of_month - 1), start)
    day_of_month = dom_of(start, span.sim_start)
    # Monthly tenancies falling on the 29th-31st: move-ins move to the next month's first days, older ones to
    # the 28th.
    over = ~periodic & (day_of_month > 28)
    start = np.where(over & moves_in, start + (32 - day_of_month),
                     np.where(over, start - (day_of_month - 28), start))
    # Move-ins pushed past the window end move back a week.
    start = np.where(start > span.last_day, start - 7, start)
    day_of_month = dom_of(start, span.sim_start)
    end = np.maximum(end, start + 1)
    end = np.where(end > span.last_day, NEVER, end)
    rent_residue = np.where(periodic, np.mod(start, np.maximum(KIND_PERIOD[rent_kind], 1)), day_of_month)
    return start, end, rent_residue


def _property_numbers(property_index: np.ndarray) -> np.ndarray:
    """Properties numbered 1.. in order of their first tenancy (``property_index`` given in tenancy order)."""
    n = len(property_index)
    _, property_code = np.unique(property_index, return_inverse=True)
    first_seen = np.full(property_code.max() + 1, n)
    np.minimum.at(first_seen, property_code, np.arange(n))
    rank = np.empty_like(first_seen)
    rank[np.argsort(first_seen, kind="stable")] = np.arange(len(first_seen))
    return rank[property_code] + 1


# -- rents by rent year -------------------------------------------------------------------------------------------


class _Rents(NamedTuple):
    rent_by_year: np.ndarray
    weekly_rent_by_year: np.ndarray


def _rent_changes(span: _Span) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The years whose April rent change falls in the simulation, and the day of each change for monthly rents
    (1 April) and for periodic rents (the first Monday on or after it)."""
    years = [year for year in range(span.sim_start.year, span.end_date.year + 1)
             if 0 < (date(year, 4, 1) - span.sim_start).days <= span.last_day]
    monthly = np.array([(date(year, 4, 1) - span.sim_start).days for year in years], dtype=np.int64)
    periodic = monthly + (7 - weekday_of(monthly, span.sim_start)) % 7
    return years, monthly, periodic


def _draw_rents(
    rng: np.random.Generator, change_years: list[int], sector: np.ndarray, rent_kind: np.ndarray,
    weekly_rent: np.ndarray,
) -> _Rents:
    """Rent per period (pence) in each rent year, and per week (float pence): social rents follow the April
    settlements, private rents rise by a drawn 0-7%."""
    n = len(sector)
    periods_per_year = np.array([PERIODS_PER_YEAR[frequency] for frequency in RENT_FREQUENCIES])[rent_kind]
    rent = np.zeros((n, len(change_years) + 1), dtype=np.int64)
    rent[:, 0] = np.rint(weekly_rent * 52.0 / periods_per_year)
    for k, year in enumerate(change_years):
        social_rate = SOCIAL_RENT_RISE.get(year, DEFAULT_RENT_RISE)
        private_rate = np.clip(rng.normal(0.035, 0.015, n), 0.0, 0.07)
        rate = np.where(sector == S_PRIVATE, private_rate, social_rate)
        rent[:, k + 1] = np.rint(rent[:, k] * (1.0 + rate))
    return _Rents(rent, rent * (periods_per_year / 52.0)[:, None])


# -- benefits and vulnerability -----------------------------------------------------------------------------------


class _Benefits(NamedTuple):
    benefit_at_start: np.ndarray
    vulnerable: np.ndarray
    hb_coverage: np.ndarray
    uc_coverage: np.ndarray


def _draw_benefits(rng: np.random.Generator, sector: np.ndarray) -> _Benefits:
    """Benefit at the start (by sector), vulnerability (likelier with benefit and in temporary accommodation) and
    the share of rent benefit covers (social: full or a common deduction; private: often partial)."""
    n = len(sector)
    benefit = _by_group(rng, sector, {S_SOCIAL: [0.45, 0.22, 0.33], S_PRIVATE: [0.72, 0.06, 0.22],
                                      S_TEMPORARY: [0.10, 0.35, 0.55]}, 3)
    vulnerable = rng.random(n) < 0.05 + 0.08 * (benefit != B_NONE) + 0.10 * (sector == S_TEMPORARY)
    common_coverage = np.array([1.0, 0.86, 0.75])
    pick = _row_choice(rng, np.tile([0.62, 0.22, 0.05, 0.11], (n, 1)))
    social = np.where(pick < 3, common_coverage[np.minimum(pick, 2)], rng.uniform(0.6, 0.95, n))
    private = np.where(rng.random(n) < 0.35, 1.0, rng.uniform(0.6, 0.98, n))
    hb_coverage = np.where(sector == S_PRIVATE, private, social)
    return _Benefits(benefit, vulnerable, hb_coverage, hb_coverage.copy())


# -- archetypes and propensities ----------------------------------------------------------------------------------


def _draw_provisional_pay_method(rng: np.random.Generator, sector: np.ndarray, benefit: np.ndarray) -> np.ndarray:
    """The tenant's payment method by sector (UC claimants outside private lets have their own mix): used for the
    archetype odds and pay cycles, and refined by `_settle_payments` once benefit timelines are known."""
    n = len(sector)
    social = _row_choice(rng, np.tile([0.35, 0.10, 0.35, 0.20], (n, 1)))
    private = _row_choice(rng, np.tile([0.60, 0.30, 0.10, 0.00], (n, 1)))
    temporary = _row_choice(rng, np.tile([0.10, 0.00, 0.50, 0.40], (n, 1)))
    universal_credit = _row_choice(rng, np.tile([0.25, 0.10, 0.45, 0.20], (n, 1)))
    pay_method = np.select([sector == S_PRIVATE, sector == S_TEMPORARY], [private, temporary], social)
    return np.where((benefit == B_UC) & (sector != S_PRIVATE), universal_credit, pay_method)


def _draw_archetype(
    rng: np.random.Generator, sector: np.ndarray, benefit: np.ndarray, vulnerable: np.ndarray,
    pay_method: np.ndarray,
) -> np.ndarray:
    """Archetype codes: the population shares, with odds shifted by payment method, sector, benefit and
    vulnerability (bank payers are more often reliable, cash payers habitually late, ...)."""
    logits = np.log(ARCHETYPE_PARAMS["share"].to_numpy())[None, :].repeat(len(sector), axis=0)
    bank = (pay_method == M_DD) | (pay_method == M_SO)
    cash = pay_method == M_CASH
    on_uc = benefit == B_UC
    logits[:, A_RELIABLE] += 0.6 * bank + 0.3 * (sector == S_PRIVATE) - 0.3 * on_uc
    logits[:, A_HABITUAL_LATE] += -1.5 * bank + 0.6 * cash
    logits[:, A_IRREGULAR] += -0.5 * bank + 0.5 * cash + 0.4 * on_uc + 0.5 * (sector == S_TEMPORARY)
    logits[:, A_SHOCK_PRONE] += 0.4 * on_uc + 0.3 * vulnerable
    logits[:, A_CHRONIC] += -0.5 * bank + 0.4 * on_uc + 0.5 * (sector == S_TEMPORARY) + 0.3 * vulnerable
    return _gumbel_choice(rng, logits)


class _Propensities(NamedTuple):
    archetype: np.ndarray
    p_skip: np.ndarray
    p_partial: np.ndarray
    partial_share_low: np.ndarray
    partial_share_high: np.ndarray
    catchup_share: np.ndarray
    p_catchup: np.ndarray
    p_keep_arrangement: np.ndarray
    p_agree_arrangement: np.ndarray
    shock_rate: np.ndarray
    pays_ahead: np.ndarray
    delay_base_days: np.ndarray
    delay_jitter_days: np.ndarray


def _draw_propensities(rng: np.random.Generator, archetype: np.ndarray) -> _Propensities:
    """Each tenancy's hidden propensities: its archetype's parameters with personal noise."""
    n = len(archetype)
    params = ARCHETYPE_PARAMS.iloc[archetype]

    def noisy(column: str, cap: float = 0.95) -> np.ndarray:
        """The archetype's value scaled by personal (lognormal) noise, capped."""
        return np.clip(params[column].to_numpy() * rng.lognormal(0.0, 0.35, n), 0.0, cap)

    p_skip = noisy("p_skip")
    p_partial = noisy("p_partial")
    catchup_share = rng.uniform(params["catchup_lo"].to_numpy(), params["catchup_hi"].to_numpy())
    p_catchup = noisy("p_catch", 1.0)
    p_keep = 1.0 - noisy_keep(rng, params["keep"].to_numpy())
    p_agree = np.clip(params["agree"].to_numpy() + rng.normal(0, 0.08, n), 0.02, 0.98)
    shock_rate = params["shock_rate"].to_numpy() * rng.lognormal(0.0, 0.3, n)
    delay_base = rng.uniform(params["delay_lo"].to_numpy(), params["delay_hi"].to_numpy())
    delay_jitter = params["delay_jitter"].to_numpy() * rng.lognormal(0.0, 0.2, n)
    pays_ahead = rng.random(n) < np.where(archetype == A_RELIABLE, 0.8, 0.5)
    return _Propensities(
        archetype=archetype, p_skip=p_skip, p_partial=p_partial, partial_share_low=params["partial_lo"].to_numpy(),
        partial_share_high=params["partial_hi"].to_numpy(), catchup_share=catchup_share, p_catchup=p_catchup,
        p_keep_arrangement=p_keep, p_agree_arrangement=p_agree, shock_rate=shock_rate, pays_ahead=pays_ahead,
        delay_base_days=delay_base, delay_jitter_days=delay_jitter,
    )


class _PaymentHabits(NamedTuple):
    pay_method: np.ndarray
    round_pounds: np.ndarray
    bank_delay_days: np.ndarray
    next_day_file: np.ndarray  #: card payments that arrive in the next day's file


def _draw_payment_habits(rng: np.random.Generator, pay_method: np.ndarray) -> _PaymentHabits:
    """Who pays whole pounds (cash payers, half of card payers), how long standing orders take to arrive and
    whose card payments arrive a day late."""
    n = len(pay_method)
    round_pounds = (pay_method == M_CASH) | ((pay_method == M_CARD) & (rng.random(n) < 0.5))
    # Standing orders (bank transfers) reach the rent account one or two working days after they are sent.
    bank_delay = np.where(pay_method == M_SO, rng.integers(1, 4, n), 0)
    # Cash (PayPoint, Post Office) and some card payments arrive in the next day's file.
    next_day_file = rng.random(n) < 0.5
    return _PaymentHabits(pay_method, round_pounds, bank_delay, next_day_file)


class _Legacy(NamedTuple):
    legacy_arrears_weeks: np.ndarray
    legacy_balance: np.ndarray


def _draw_legacy_arrears(
    rng: np.random.Generator, archetype: np.ndarray, start: np.ndarray, weekly_rent: np.ndarray
) -> _Legacy:
    """The opening (legacy) balance at the simulation start of tenancies already running, in weeks of rent (by
    archetype: chronic payers owe 2-12 weeks, a few reliable ones are in credit) and in pence."""
    n = len(archetype)
    draw = rng.random(n)
    weeks = np.select(
        [archetype == A_CHRONIC, archetype == A_IRREGULAR, archetype == A_HABITUAL_LATE, archetype == A_SHOCK_PRONE],
        [rng.uniform(2, 12, n), np.where(draw < 0.6, rng.exponential(1.2, n), 0.0),
         np.where(draw < 0.6, rng.exponential(0.6, n), 0.0), np.where(draw < 0.4, rng.exponential(0.8, n), 0.0)],
        np.where(draw < 0.08, rng.exponential(0.3, n), np.where(draw > 0.93, -rng.uniform(0, 1.5, n), 0.0)),
    )
    balance = np.where(start < 0, np.rint(weeks * weekly_rent), 0).astype(np.int64)
    return _Legacy(np.where(start < 0, weeks, 0.0), balance)


# -- the tenant's pay cycle ---------------------------------------------------------------------------------------


class _PayCycles(NamedTuple):
    kind: np.ndarray  #: "cycle A": wages, pension/legacy benefits, or the direct-debit / standing-order date
    residue: np.ndarray
    income_kind: np.ndarray  #: the pension / legacy-benefit cycle (for tenants on full Housing Benefit)
    income_residue: np.ndarray


def _draw_pay_cycles(
    rng: np.random.Generator, span: _Span, lettings: _Lettings, benefit: np.ndarray, pay_method: np.ndarray
) -> _PayCycles:
    """When each tenant pays: on payday (wages, or pension and benefit days for Housing Benefit claimants), or
    on the direct-debit or standing-order date."""
    cycle_draw = rng.random(len(benefit))
    wage_kind, wage_residue, phase = _draw_wage_days(rng, span, cycle_draw)
    income_kind, income_residue = _draw_benefit_income_days(rng, span, cycle_draw, phase)
    kind = np.where(benefit == B_HB, income_kind, wage_kind)
    residue = np.where(benefit == B_HB, income_residue, wage_residue)
    (dd_kind, dd_residue), (so_kind, so_residue) = _draw_bank_payment_days(
        rng, span, lettings.rent_kind, lettings.rent_residue)
    by_bank = [pay_method == M_DD, pay_method == M_SO]
    kind = np.select(by_bank, [dd_kind, so_kind], kind)
    residue = np.select(by_bank, [dd_residue, so_residue], residue)
    return _PayCycles(kind, residue, income_kind, income_residue)


def _draw_wage_days(
    rng: np.random.Generator, span: _Span, cycle_draw: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Earners' paydays: weekly (Fri/Thu), fortnightly (Fri), four-weekly (Fri), monthly (1st, 15th or 25th-28th);
    also the week (phase) in which a fortnightly or four-weekly cycle falls."""
    n = len(cycle_draw)
    friday_or_thursday = np.where(rng.random(n) < 0.8, 4, 3)
    kind = np.select([cycle_draw < 0.35, cycle_draw < 0.55, cycle_draw < 0.65],
                     [KIND_P7, KIND_P14, KIND_P28], KIND_MONTHLY)
    phase = rng.integers(0, 4, n)
    residue = np.where(
        kind == KIND_MONTHLY,
        rng.choice([1, 15, 25, 26, 27, 28], size=n, p=[0.15, 0.1, 0.2, 0.15, 0.15, 0.25]),
        residue_for_weekday(friday_or_thursday, span.sim_start, 7, 0) + 7 * (phase % np.array([1, 2, 4, 1])[kind]),
    )
    return kind, residue, phase


def _draw_benefit_income_days(
    rng: np.random.Generator, span: _Span, cycle_draw: np.ndarray, phase: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pension and legacy-benefit paydays (HB shortfall payers): fortnightly / weekly / four-weekly, Mon-Fri."""
    weekday = rng.integers(0, 5, len(cycle_draw))
    kind = np.select([cycle_draw < 0.5, cycle_draw < 0.8], [KIND_P14, KIND_P7], KIND_P28)
    residue = residue_for_weekday(weekday, span.sim_start, 7, 0) + 7 * (phase % np.array([1, 2, 4])[kind])
    return kind, residue


def _draw_bank_payment_days(
    rng: np.random.Generator, span: _Span, rent_kind: np.ndarray, rent_residue: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The (kind, residue) schedules of a direct debit and of a standing order, for every tenancy."""
    n = len(rent_kind)
    monthly_rent = rent_kind == KIND_MONTHLY
    # Direct debits: on the rent date, or monthly on one of the landlord's collection dates.
    dd_monthly = monthly_rent | (rng.random(n) < 0.5)
    dd_day_of_month = np.where(monthly_rent, rent_residue, rng.choice([1, 8, 15, 22, 28], size=n))
    dd_kind = np.where(dd_monthly, KIND_MONTHLY, rent_kind)
    dd_residue = np.where(dd_monthly, dd_day_of_month, rent_residue)
    # Weekly direct debits for weekly rent: on the rent day, or on a Friday to match wages.
    dd_friday = ~dd_monthly & (rent_kind == KIND_P7) & (rng.random(n) < 0.7)
    dd_residue = np.where(dd_friday, residue_for_weekday(np.full(n, 4), span.sim_start, 7), dd_residue)
    so_monthly = rng.random(n) < 0.6
    so_kind = np.where(so_monthly, KIND_MONTHLY, rent_kind)
    so_residue = np.where(so_monthly, rng.integers(1, 29, n), rent_residue)
    return (dd_kind, dd_residue), (so_kind, so_residue)


# -- shock episodes -----------------------------------------------------------------------------------------------


class _Episodes(NamedTuple):
    """Shock episodes as a flat list (one entry per episode)."""

    owner: np.ndarray  #: the tenancy
    start: np.ndarray
    end: np.ndarray
    kind: np.ndarray
    severity: np.ndarray
    p_miss: np.ndarray
    income_factor: np.ndarray
    backdated: np.ndarray
    lump_day: np.ndarray
    lump_share: np.ndarray
    lump_is_dhp: np.ndarray
    local_employment: np.ndarray

    def take(self, index: np.ndarray) -> _Episodes:
        """The episodes selected by ``index`` (positions or a mask)."""
        return _Episodes._make(column[index] for column in self)


#: Value and dtype of an empty shock slot, per episode field.
_EMPTY_SLOT = {
    "start": (NEVER, np.int64), "end": (NEVER, np.int64), "kind": (-1, np.int64), "severity": (0.0, float),
    "p_miss": (0.0, float), "income_factor": (1.0, float), "backdated": (False, bool), "lump_day": (NEVER, np.int64),
    "lump_share": (0.0, float), "lump_is_dhp": (False, bool), "local_employment": (False, bool),
}


class _ShockSlots(NamedTuple):
    shock_start: np.ndarray
    shock_end: np.ndarray
    shock_kind: np.ndarray
    shock_severity: np.ndarray
    shock_p_miss: np.ndarray
    shock_income_factor: np.ndarray
    shock_backdated: np.ndarray
    shock_lump_day: np.ndarray
    shock_lump_share: np.ndarray
    shock_lump_is_dhp: np.ndarray
    shock_local_employment: np.ndarray
    shock_count: np.ndarray


def _draw_shocks(
    rng: np.random.Generator, span: _Span, lettings: _Lettings, shock_rate: np.ndarray, earner: np.ndarray,
    patches: _Patches,
) -> _ShockSlots:
    """Each tenancy's shock episodes while it runs in the simulation: its own, at its shock rate, and for earners
    in a patch hit by a local employment shock, extra job losses and cut hours during it."""
    live_from = np.maximum(lettings.start, 0)
    live_to = np.minimum(lettings.end, span.last_day)
    live_days = np.maximum(live_to - live_from, 0)
    owner, start = _poisson_starts(rng, shock_rate, live_from, live_days)
    local_from = np.maximum(patches.local_shock_start[lettings.patch], live_from)
    local_to = np.minimum(patches.local_shock_end[lettings.patch], live_to)
    local_days = np.where(earner & (local_to > local_from), local_to - local_from, 0)
    local_owner, local_start = _poisson_starts(rng, 1.6, local_from, local_days)
    local = np.concatenate([np.zeros(len(owner), dtype=bool), np.ones(len(local_owner), dtype=bool)])
    episodes = _draw_episodes(rng, earner, np.concatenate([owner, local_owner]),
                              np.concatenate([start, local_start]), local)
    episodes, slot = _first_episodes(_without_overlaps(episodes))
    return _shock_slots(episodes, slot, len(earner))


def _poisson_starts(
    rng: np.random.Generator, rate_per_year: np.ndarray | float, first_day: np.ndarray, days: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Episodes arriving at ``rate_per_year`` over each tenancy's ``days`` from ``first_day``: the tenancy and
    start day of each."""
    counts = rng.poisson(rate_per_year * days / 365.25)
    owner = np.repeat(np.arange(len(days)), counts)
    return owner, first_day[owner] + (rng.random(len(owner)) * days[owner]).astype(np.int64)


def _draw_episodes(
    rng: np.random.Generator, earner: np.ndarray, owner: np.ndarray, start: np.ndarray, local: np.ndarray
) -> _Episodes:
    """What each episode is: its kind (earners lose work, others lose benefit; local shocks are job losses or cut
    hours), duration, severity and effect on payments (SHOCK_PARAMS), and any catch-up lump sum after it."""
    count = len(owner)
    kind = np.where(
        earner[owner],
        rng.choice([SK_JOB, SK_HOURS, SK_ILL, SK_HOUSE], size=count, p=[0.35, 0.30, 0.20, 0.15]),
        rng.choice([SK_BENEFIT, SK_ILL, SK_HOUSE], size=count, p=[0.45, 0.25, 0.30]),
    )
    kind = np.where(local, np.where(rng.random(count) < 0.6, SK_JOB, SK_HOURS), kind)
    params = SHOCK_PARAMS.iloc[kind]
    duration = np.clip(params["median_days"].to_numpy() * rng.lognormal(0.0, 0.5, count), 14, 240).astype(np.int64)
    end = start + duration
    severity = rng.uniform(0.6, 1.2, count)
    p_miss = np.clip(params["skip"].to_numpy() * severity, 0.0, 0.98)
    income_factor = np.clip(1.0 - (1.0 - params["factor"].to_numpy()) * severity, 0.05, 1.0)
    backdated = (kind == SK_BENEFIT) & (rng.random(count) < 0.6)
    has_lump = rng.random(count) < params["p_lump"].to_numpy()
    lump_day = np.where(has_lump, end + rng.integers(7, 43, count), NEVER)
    lump_share = rng.uniform(0.4, 1.0, count)
    lump_is_dhp = rng.random(count) < 0.35
    return _Episodes(owner, start, end, kind, severity, p_miss, income_factor, backdated, lump_day, lump_share,
                     lump_is_dhp, local)


def _without_overlaps(episodes: _Episodes) -> _Episodes:
    """The episodes sorted by tenancy then start, without those starting inside an earlier one."""
    episodes = episodes.take(np.lexsort((episodes.start, episodes.owner)))
    owner = episodes.owner
    # Episodes as keys (tenancy, day) in one int64 so that a running maximum of ends spans only one tenancy.
    big = np.int64(4 * NEVER)
    key_end = owner.astype(np.int64) * big + episodes.end
    run_max = np.maximum.accumulate(key_end) if len(owner) else key_end
    prev_max = np.concatenate([[np.int64(-1)], run_max[:-1]]) if len(owner) else run_max
    same_owner_prev = np.concatenate([[False], owner[1:] == owner[:-1]]) if len(owner) else np.zeros(0, bool)
    overlap = same_owner_prev & (owner.astype(np.int64) * big + episodes.start <= prev_max)
    return episodes.take(~overlap)


def _first_episodes(episodes: _Episodes) -> tuple[_Episodes, np.ndarray]:
    """The first MAX_SHOCKS episodes of each tenancy (``episodes`` sorted by tenancy), with each one's slot."""
    owner = episodes.owner
    firsts = np.concatenate([[True], owner[1:] != owner[:-1]]) if len(owner) else np.zeros(0, bool)
    group_start = np.maximum.accumulate(np.where(firsts, np.arange(len(owner)), 0)) if len(owner) else owner
    slot = np.arange(len(owner)) - group_start
    kept = slot < MAX_SHOCKS
    return episodes.take(kept), slot[kept]


def _shock_slots(episodes: _Episodes, slot: np.ndarray, n: int) -> _ShockSlots:
    """The episodes as [tenancy, slot] arrays with MAX_SHOCKS + 1 slots (the last always empty)."""
    slots = {}
    for name, (empty, dtype) in _EMPTY_SLOT.items():
        column = np.full((n, MAX_SHOCKS + 1), empty, dtype=dtype)
        column[episodes.owner, slot] = getattr(episodes, name)
        slots[f"shock_{name}"] = column
    return _ShockSlots(**slots, shock_count=(slots["shock_kind"] >= 0).sum(axis=1))


def with_extra_shocks(
    rng: np.random.Generator, tenancies: TenancyArrays, rate_per_year: np.ndarray, first_day: np.ndarray,
    last_day: np.ndarray,
) -> tuple[TenancyArrays, int]:
    """The tenancies with extra shock episodes arriving at ``rate_per_year`` from ``first_day`` to ``last_day``
    (per tenancy), drawn from ``rng`` like the others (earners at the start lose work, others lose benefit), and
    the number drawn. They join the tenancy's own episodes by start; as for those, an episode starting inside an
    earlier one is dropped and at most MAX_SHOCKS are kept, so episodes before ``first_day`` keep their slots.
    Used by `simulator.changes` (an economic shock); the benefit claims drawn before stay as they were."""
    owner, start = _poisson_starts(rng, rate_per_year, first_day, np.maximum(last_day - first_day, 0))
    earner = tenancies.benefit_at_start == B_NONE
    extra = _draw_episodes(rng, earner, owner, start, np.zeros(len(owner), dtype=bool))
    rows, slots = np.nonzero(tenancies.shock_kind >= 0)
    own = _Episodes(rows, *(getattr(tenancies, f"shock_{name}")[rows, slots] for name in _EMPTY_SLOT))
    both = _Episodes._make(np.concatenate([mine, more]) for mine, more in zip(own, extra, strict=True))
    episodes, slot = _first_episodes(_without_overlaps(both))
    return dataclasses.replace(tenancies, **_shock_slots(episodes, slot, len(earner))._asdict()), len(owner)


# -- benefit timelines --------------------------------------------------------------------------------------------


class _HousingBenefit(NamedTuple):
    hb_run_residue: np.ndarray
    hb_from: np.ndarray
    hb_first_run: np.ndarray


def _draw_housing_benefit(
    rng: np.random.Generator, benefit: np.ndarray, start: np.ndarray, hb_run_residue: np.ndarray
) -> _HousingBenefit:
    """Housing Benefit claims: running since before the simulation, or from the start of a later tenancy, whose
    claim is assessed for 3-7 weeks before a run first pays it."""
    on_hb = benefit == B_HB
    hb_from = np.where(on_hb, np.where(start <= 0, FAR_PAST, start), NEVER)
    hb_first_run = np.where(on_hb, np.where(start <= 0, FAR_PAST, start + rng.integers(21, 50, len(start))), NEVER)
    return _HousingBenefit(hb_run_residue, hb_from, hb_first_run)


class _UcClaims(NamedTuple):
    uc_from: np.ndarray
    uc_claim_reason: np.ndarray
    hb_to: np.ndarray


def _draw_uc_claims(
    rng: np.random.Generator, span: _Span, lettings: _Lettings, benefit: np.ndarray, earner: np.ndarray,
    shocks: _ShockSlots,
) -> tuple[_UcClaims, np.ndarray]:
    """Universal Credit claims (existing ones, new claims at move-in, after a job loss, by managed migration from
    Housing Benefit), and who migrated."""
    n = len(benefit)
    start = lettings.start
    uc_from = np.where(benefit == B_UC, FAR_PAST, NEVER)
    reason = np.where(benefit == B_UC, 0, -1)
    # UC tenants moving in during the simulation: half are new claims with the five-week wait.
    new_claim = (benefit == B_UC) & (start > 0) & (rng.random(n) < 0.5)
    uc_from = np.where(new_claim, start, uc_from)
    reason = np.where(new_claim, 1, reason)
    # Earners whose first shock in the simulation is a job loss often claim UC.
    p_claim = np.where(lettings.sector == S_PRIVATE, 0.4, 0.6)
    job_claim = earner & (shocks.shock_kind[:, 0] == SK_JOB) & (rng.random(n) < p_claim)
    uc_from = np.where(job_claim, shocks.shock_start[:, 0] + rng.integers(0, 15, n), uc_from)
    reason = np.where(job_claim, 2, reason)
    # Working-age Housing Benefit claimants move to UC (managed migration); HB runs on for two weeks.
    migration_from = np.maximum(start, 0) + 30
    migration_to = np.minimum(lettings.end, span.last_day)
    p_migrate = 1 - np.exp(-0.15 * (span.last_day + 1) / 365.25)
    migrated = (benefit == B_HB) & (migration_to > migration_from) & (rng.random(n) < p_migrate)
    migration_day = migration_from + (rng.random(n) * np.maximum(migration_to - migration_from, 1)).astype(np.int64)
    uc_from = np.where(migrated, migration_day, uc_from)
    hb_to = np.where(migrated, migration_day + 14, np.full(n, NEVER))
    reason = np.where(migrated, 3, reason)
    return _UcClaims(uc_from, reason, hb_to), migrated


class _UcPayments(NamedTuple):
    uc_first_payment: np.ndarray
    uc_payment_dom: np.ndarray
    apa_from: np.ndarray
    uc_arrears_deduction: np.ndarray
    uc_advance_day: np.ndarray
    uc_advance_amount: np.ndarray


def _draw_uc_payments(
    rng: np.random.Generator, span: _Span, uc_from: np.ndarray, sector: np.ndarray, vulnerable: np.ndarray,
    migrated: np.ndarray, weekly_rent: np.ndarray,
) -> tuple[_UcPayments, np.ndarray]:
    """When UC is paid (after the five-week wait for new claims), managed payments to the landlord, the deduction
    for arrears and advances; also who had managed payments from before the simulation."""
    n = len(uc_from)
    existing = uc_from == FAR_PAST
    new_claim = (uc_from > FAR_PAST) & (uc_from < NEVER)
    first_payment = np.where(existing, FAR_PAST, np.where(uc_from >= NEVER, NEVER, uc_from + 35))
    payment_dom = np.where(existing, rng.integers(1, 29, n), np.minimum(dom_of(np.where(
        first_payment >= NEVER, 0, first_payment), span.sim_start), 28))
    # Managed payments (APA, paid to the landlord): some existing claimants, some new claims.
    apa_existing = existing & (rng.random(n) < np.where(sector == S_PRIVATE, 0.05, 0.15 + 0.25 * vulnerable))
    apa_new = new_claim & (rng.random(n) < 0.2 + 0.3 * vulnerable + 0.2 * migrated)
    apa_from = np.where(apa_existing, FAR_PAST, np.where(apa_new, first_payment + rng.integers(25, 40, n), NEVER))
    # UC deduction for rent arrears paid alongside managed payments (pence per month).
    arrears_deduction = np.rint(rng.uniform(20.0, 60.0, n)) * 100
    # UC advances: some new claimants pay something from the advance during the wait.
    has_advance = new_claim & (rng.random(n) < 0.2)
    advance_day = np.where(has_advance, uc_from + rng.integers(7, 22, n), NEVER)
    advance_amount = np.rint(rng.uniform(0.3, 0.6, n) * weekly_rent * 52.0 / 12.0 / 100.0) * 100
    payments = _UcPayments(first_payment, payment_dom, apa_from, arrears_deduction, advance_day, advance_amount)
    return payments, apa_existing


# -- how the tenant pays, finally; contact preferences ------------------------------------------------------------


class _Payments(NamedTuple):
    pay_method: np.ndarray
    round_pounds: np.ndarray
    bank_delay_days: np.ndarray
    posting_lag_days: np.ndarray
    pay_cycle_kind: np.ndarray
    pay_cycle_residue: np.ndarray
    pay_cycle_weeks: np.ndarray
    pay_cycle_is_rent_cycle: np.ndarray


def _settle_payments(
    rng: np.random.Generator, lettings: _Lettings, benefits: _Benefits, apa_existing: np.ndarray,
    habits: _PaymentHabits, cycles: _PayCycles,
) -> _Payments:
    """How each tenant pays, now that benefit is known: where benefit pays the landlord directly (full Housing
    Benefit, or managed payments from the start) the tenant pays any shortfall by card or cash; full-HB tenants
    not paying by bank pay on their pension / benefit cycle."""
    full_hb = (benefits.benefit_at_start == B_HB) & (benefits.hb_coverage >= 0.999)
    tenant_method = np.where(rng.random(len(full_hb)) < 0.6, M_CARD, M_CASH)
    landlord_paid = full_hb | apa_existing
    pay_method = np.where(landlord_paid, tenant_method, habits.pay_method)
    round_pounds = np.where(landlord_paid, pay_method == M_CASH, habits.round_pounds)
    bank_delay = np.where(landlord_paid, 0, habits.bank_delay_days)
    posting_lag = ((pay_method == M_CASH) | ((pay_method == M_CARD) & habits.next_day_file)).astype(np.int64)
    on_income_cycle = full_hb & ~np.isin(pay_method, [M_DD, M_SO])
    kind = np.where(on_income_cycle, cycles.income_kind, cycles.kind)
    residue = np.where(on_income_cycle, cycles.income_residue, cycles.residue)
    return _Payments(
        pay_method=pay_method, round_pounds=round_pounds, bank_delay_days=bank_delay, posting_lag_days=posting_lag,
        pay_cycle_kind=kind, pay_cycle_residue=residue, pay_cycle_weeks=KIND_WEEKS[kind],
        pay_cycle_is_rent_cycle=(kind == lettings.rent_kind) & (residue == lettings.rent_residue),
    )


class _Contact(NamedTuple):
    channel: np.ndarray
    language: np.ndarray
    p_no_answer: np.ndarray


#: Per archetype: the share of tenants who avoid contact (most attempts to reach them fail).
AVOIDS_CONTACT_SHARE = np.array([0.03, 0.08, 0.2, 0.06, 0.35])


def _draw_contact(
    rng: np.random.Generator, sector: np.ndarray, pay_method: np.ndarray, archetype: np.ndarray
) -> _Contact:
    """Preferred contact channel (by payment method; private tenants mostly email), language, and how often the
    officer's attempts fail to reach the tenant (most often for those who avoid contact, more of them among
    chronic and irregular payers)."""
    n = len(sector)
    channel_probs = np.tile([0.40, 0.20, 0.25, 0.15], (n, 1))
    channel_probs[pay_method == M_DD] = [0.30, 0.35, 0.25, 0.10]
    channel_probs[pay_method == M_CASH] = [0.45, 0.05, 0.25, 0.25]
    channel_probs[sector == S_PRIVATE] = [0.25, 0.45, 0.25, 0.05]
    channel = _row_choice(rng, channel_probs)
    language = np.where(rng.random(n) < 0.9, 0, rng.choice(np.arange(1, len(LANGUAGES)), size=n))
    avoids_contact = rng.random(n) < AVOIDS_CONTACT_SHARE[archetype]
    p_no_answer = np.where(avoids_contact, rng.uniform(0.55, 0.85, n), rng.uniform(0.05, 0.3, n))
    return _Contact(channel, language, p_no_answer)


class _Deposits(NamedTuple):
    deposit_amount: np.ndarray


#: Share of private / temporary lets starting in the simulation whose tenant pays a deposit-like receipt at move-in.
DEPOSIT_SHARE = {S_PRIVATE: 0.3, S_TEMPORARY: 0.2}


def _draw_deposits(rng: np.random.Generator, lettings: _Lettings, weekly_rent: np.ndarray) -> _Deposits:
    """Deposit-like receipts paid into the rent account at move-in by some private tenants (a week's holding
    deposit, or a deposit of four or five weeks' rent) and temporary-accommodation licensees (rent in advance, one
    or two weeks), in whole pounds (pence)."""
    n = len(lettings.sector)
    share = np.select([lettings.sector == S_PRIVATE, lettings.sector == S_TEMPORARY],
                      [DEPOSIT_SHARE[S_PRIVATE], DEPOSIT_SHARE[S_TEMPORARY]], 0.0)
    pays = (lettings.start > 0) & (rng.random(n) < share)
    weeks = np.where(lettings.sector == S_PRIVATE, rng.choice([1, 4, 5], size=n, p=[0.4, 0.3, 0.3]),
                     rng.integers(1, 3, n))
    return _Deposits(np.where(pays, np.rint(weeks * weekly_rent / 100.0) * 100, 0).astype(np.int64))


def noisy_keep(rng: np.random.Generator, keep: np.ndarray) -> np.ndarray:
    """Per-tenancy chance of *missing* an arrangement instalment, spread around the archetype's."""
    return np.clip((1.0 - keep) * rng.lognormal(0.0, 0.4, len(keep)), 0.005, 0.8)


def _maybe_dates(grid: DayGrid, days: np.ndarray) -> pd.Series:
    """Day indices as dates, NEVER as missing."""
    out = pd.Series(np.datetime64(grid.start, "D") + np.where(days >= NEVER, 0, days)).astype("datetime64[ns]")
    return out.where(days < NEVER)


# -- monitoring-only attributes ---------------------------------------------------------------------------------

AGE_BANDS = ("16-24", "25-34", "35-44", "45-54", "55-64", "65+")
SEXES = ("female", "male", "prefer_not_to_say")
ETHNICITIES = ("white", "mixed", "asian", "black", "other", "prefer_not_to_say")
DISABILITY = ("yes", "no", "prefer_not_to_say")


def draw_monitoring(
    circumstances: dict[str, np.ndarray], n_patches: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Draw age band, sex, ethnicity and disability *given* a tenancy's recorded circumstances.

    ``circumstances`` holds codes for benefit_type, payment_method, preferred_channel, tenure, vulnerable,
    language and patch as they appear in the tenancies feed. The result correlates with those (e.g. Housing
    Benefit claimants and letter-preferrers are older, Universal Credit claimants younger; disability goes with
    vulnerability and benefit receipt) but is drawn after, and never read by, the behaviour engine.
    """
    benefit, method = circumstances["benefit"], circumstances["payment_method"]
    tenure, vulnerable = circumstances["tenure"], circumstances["vulnerable"]
    n = len(benefit)
    age = _draw_age_band(rng, benefit, method, circumstances["channel"], tenure)
    p_female = 0.54 + 0.08 * (benefit == B_UC) + 0.05 * (tenure == 3)
    draw = rng.random(n)
    sex = np.where(draw < 0.02, 2, np.where(draw < 0.02 + 0.98 * p_female, 0, 1))
    ethnicity = _draw_ethnicity(rng, circumstances["patch"], circumstances["language"], n_patches)
    disability_logit = (-2.2 + 1.8 * vulnerable + 0.7 * (benefit != B_NONE) + 0.6 * (age >= 4)
                        + 0.4 * (method == M_BENEFIT))
    draw = rng.random(n)
    disability = np.where(draw < 0.03, 2, np.where(rng.random(n) < 1 / (1 + np.exp(-disability_logit)), 0, 1))
    return {"age_band": age, "sex": sex, "ethnicity": ethnicity, "disability": disability}


def _draw_age_band(
    rng: np.random.Generator, benefit: np.ndarray, method: np.ndarray, channel: np.ndarray, tenure: np.ndarray
) -> np.ndarray:
    """Age band codes: HB claimants, letter-preferrers and secure tenants older, UC claimants and licensees younger."""
    logits = np.tile(np.array([-0.8, 0.3, 0.4, 0.4, 0.2, 0.0]), (len(benefit), 1))
    logits += np.array([[0.0, 0.2, 0.3, 0.2, 0.0, -0.5], [-1.5, -1.0, -0.7, -0.3, 0.3, 2.2],
                        [0.6, 0.6, 0.4, 0.1, -0.2, -2.5]])[benefit]
    logits += np.array([[-0.6, -0.2, 0.1, 0.2, 0.3, 0.3], [-0.3, -0.1, 0.1, 0.2, 0.2, 0.2],
                        [0.4, 0.3, 0.1, 0.0, -0.2, -0.5], [0.3, -0.1, -0.2, -0.1, 0.2, 0.6],
                        [-0.3, -0.2, 0.0, 0.0, 0.1, 0.5]])[method]
    logits += np.array([[0.0] * 6, [0.2, 0.4, 0.3, 0.1, -0.2, -0.6], [0.5, 0.4, 0.2, 0.0, -0.3, -0.8],
                        [-1.0, -0.7, -0.4, 0.0, 0.5, 1.3]])[channel]
    logits += np.array([[-1.2, -0.6, -0.1, 0.2, 0.5, 0.9], [0.0] * 6, [0.6, 0.6, 0.2, -0.1, -0.4, -0.8],
                        [0.9, 0.5, 0.1, -0.2, -0.6, -1.2]])[tenure]
    return _gumbel_choice(rng, logits)


def _draw_ethnicity(rng: np.random.Generator, patch: np.ndarray, language: np.ndarray, n_patches: int) -> np.ndarray:
    """Ethnicity codes: each patch has its own mix of backgrounds, shifted by the language spoken."""
    ethnic_mix = rng.dirichlet(np.array([0.78, 0.04, 0.09, 0.06, 0.03]) * 25, n_patches)
    probs = ethnic_mix[patch].copy()
    shift = {1: 0, 2: 0, 8: 0, 9: 0, 3: 2, 4: 2, 7: 2, 5: 3, 6: 4}  # language code -> likely background
    for code, group in shift.items():
        rows = language == code
        probs[rows] *= 0.15
        probs[rows, group] += 0.85
    probs = np.hstack([probs * 0.96, np.full((len(patch), 1), 0.04)])
    return _row_choice(rng, probs)
