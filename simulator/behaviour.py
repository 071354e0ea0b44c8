"""The behaviour engine: a day-by-day simulation of every rent account, vectorised across tenancies.

For each day (burn-in first, then the observation window) the engine, in this order:

1. moves each tenancy's shock pointer (a shock episode starts or ends) and, on the first day of the window,
   posts the balance built up so far as an ``adjustment`` ("Opening balance");
2. posts the rent charges due today (weekly on Mondays, fortnightly/four-weekly from the start date, monthly on
   the tenancy's day of month), at the rent of the current rent year (rents change each April); a monthly rent
   starting between two rent days (only in the monthly-statement shape, whose rent day is the portfolio's
   statement day) is charged the part month to the first rent day on its first day ("Rent to first statement");
3. posts benefit paid straight to the landlord: Housing Benefit every four weeks (two weeks in arrears, two in
   advance; new claims are assessed for 3-7 weeks and then backdated; a benefit shock suspends it), and
   Universal Credit managed payments (APA) monthly, with a fixed deduction towards arrears when in debt;
4. schedules tenants' own payments on their pay cycle (wages, pension/benefit days, the direct-debit date, or
   the UC payment date: nothing during a new claim's five-week wait) plus their personal delay (habitual
   lateness, irregularity), and rolls them to the next working day;
5. pays the payments falling due today. The amount is the tenant's share of rent for the cycle plus any
   arrangement top-up, unless the payment is missed or only part-paid (probabilities from the tenant's
   archetype, raised by a live shock, a dispute with withholding, or being in credit), plus sometimes a
   catch-up share of what is owed beyond the tenant's target (a zero balance just after payday, or, for
   tenants with the habit, rent paid in advance up to the next payday). In the monthly-statement shape, a tenant
   paid more often than monthly leaves the part of the month's rent after this pay cycle to later paydays, and
   the tenant's payment habit (`simulator.statement.PaymentHabits`) turns the sum meant into the sum paid (a round
   sum, an odd sum, now and then an overpayment). A few payments other than direct debits
   carry no reference the landlord recognises and are posted unallocated. Direct debits occasionally bounce
   (more often during shocks) and come back as a positive ``adjustment`` a few days later;
6. posts one-off payments (UC advances, deposit-like receipts at move-in, promised payments after officer
   contact, post-shock lump sums and Discretionary Housing Payments), and reversals;
7. runs the housing officer's side: contacts (more frequent the deeper the arrears; some attempts fail to reach
   the tenant and are retried within a few days), arrangements agreed at a contact that reaches the tenant when
   arrears reach three weeks (kept, broken after two missed instalments, or completed when the balance is
   cleared), breathing space (a standard one for 60 days, or a mental health crisis moratorium for the crisis
   treatment plus 30 days: no arrangement is broken and no legal step taken in either, and contact is reduced),
   disputes (some with withholding; some upheld with a credit), quarterly rent statements to tenancies in
   arrears, legal stages for large, long arrears (a notice comes with a rent statement; a possession claim
   needs a proceedings warning at least 14 days old; rarely ending in eviction), APA requests for UC arrears of
   two months, refunds of large credits, rare recharge fees;
8. handles move-outs (an apportionment credit for the unused part of the last rent period) and, some weeks
   later, a refund of any credit or (often) a write-off of the remaining former-tenant debt; former tenants
   whose debt stands sometimes pay part of it.

In the code, `AccountState` holds the mutable state of every account (balance, arrangement, breathing space,
dispute, legal stage, current shock, ...), `_simulate_day` runs one function per step above, and what is written
or queued for later days (payments, one-offs, reversals) goes through a `_Ledger`. Benefit claims are known
from the start: their events are written before the day loop. The `_Ledger` also keeps the engine's own record
of circumstances as they happen (`CIRCUMSTANCE_COLUMNS`: breathing spaces, disputes, benefit claims, contact
attempts), the source of the ground truth's periods; after the day loop, the balance the housing system reports
is drawn (`UNEXPLAINED_GAPS`).

Event amounts and notes (the contract leaves them free): ``arrangement_agreed`` carries the weekly top-up,
``arrangement_broken``, ``legal_stage``, ``rent_statement_sent`` and ``proceedings_warning_sent`` the balance at
the time, ``dispute_opened`` the sum disputed and ``dispute_resolved`` any credit given; notes come from `NOTES`
(contact channel or "home visit" for ``contact_made`` and ``contact_attempted``, the legal stage name, the
dispute topic or outcome, the benefit claimed, ...). Transaction ``method`` uses the payment-method vocabulary
for receipts (``benefit_direct`` for money from benefit) and is empty otherwise; ``reference`` comes from
`REFERENCES`; ``allocation`` is set for receipts only (``rent``, ``unallocated`` or ``deposit``).

Changes injected from a date (`simulator.changes`) reach the engine as `ChangeEffects` (None without any, and then
nothing here differs): benefit to the landlord held up for some days (queued, then posted on the day it arrives),
a rent rise (the rent in force rises; tenants' own payments stay meant for the rent without it) and an extra chance
of missing a payment (on the same draw as the usual one). An economic shock is already in the arrays, as extra
shock episodes.

The engine never reads monitoring-only attributes: it receives only the arrays drawn by
`simulator.population.draw_population` (`TenancyArrays`), and, with changes, which tenancies each one reaches.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from features.feeds.contract import ALLOCATIONS, EVENT_TYPES, TRANSACTION_TYPES
from simulator.calendar import KIND_MONTHLY, KIND_P28, KIND_PERIOD, Calendar, DayGrid, days_to_next_monthly
from simulator.changes import ChangeEffects
from simulator.population import (
    B_HB,
    B_UC,
    FAR_PAST,
    M_BENEFIT,
    M_CARD,
    M_CASH,
    M_DD,
    M_SO,
    NEVER,
    SK_BENEFIT,
    TenancyArrays,
)
from simulator.statement import DAYS_PER_YEAR, PaymentHabits

#: Code of each transaction type and event type (their position in the contract's vocabularies).
TRANSACTION_CODE = {name: i for i, name in enumerate(TRANSACTION_TYPES)}
EVENT_CODE = {name: i for i, name in enumerate(EVENT_TYPES)}

REFERENCES = (
    "Opening balance", "Rent", "Direct debit", "Standing order", "Card payment", "Cash payment",
    "Housing Benefit", "UC managed payment", "UC deduction for arrears", "Discretionary Housing Payment",
    "Returned direct debit", "Payment reversal", "End of tenancy apportionment", "Dispute settlement credit",
    "Credit refund", "Former tenant arrears written off", "Court costs", "Rechargeable repair",
    "Reference not recognised", "Deposit", "Rent to first statement",
)
REFERENCE_CODE = {name: i for i, name in enumerate(REFERENCES)}
#: Reference of a tenant payment, by payment method code.
PAYMENT_REFERENCE = np.array([REFERENCE_CODE["Direct debit"], REFERENCE_CODE["Standing order"],
                              REFERENCE_CODE["Card payment"], REFERENCE_CODE["Cash payment"],
                              REFERENCE_CODE["Card payment"]])

LEGAL_STAGES = (
    ("NOSP served", "Section 8 notice served", "Section 8 notice served", "Notice to quit served"),
    ("Possession claim issued",) * 4,
    ("Possession order granted",) * 4,
    ("Warrant of possession applied",) * 4,
    ("Eviction",) * 4,
)
CONTACT_NOTES = ("phone call", "email sent", "sms sent", "letter sent", "home visit")
DISPUTE_TOPICS = ("service charge query", "repairs and disrepair", "rent charge query", "benefit calculation query")
DISPUTE_OUTCOMES = ("upheld: account adjusted", "not upheld", "withdrawn")
NOTES = (
    *CONTACT_NOTES,
    "rent plus weekly top-up", "two instalments missed", "arrears cleared",
    "standard breathing space", "breathing space ended", "mental health crisis moratorium", "crisis treatment ended",
    "Universal Credit", "Housing Benefit", "quarterly rent statement", "rent statement with notice",
    "warning of possession proceedings",
    *DISPUTE_TOPICS, *DISPUTE_OUTCOMES,
    *sorted({label for stage in LEGAL_STAGES for label in stage}),
)
NOTE_CODE = {name: i for i, name in enumerate(NOTES)}
_LEGAL_NOTE = np.array([[NOTE_CODE[label] for label in stage] for stage in LEGAL_STAGES])  # [stage-1, tenure]
#: Daily chance of moving to the next legal stage once eligible (from stage 0, 1, 2, 3, 4).
LEGAL_HAZARD = np.array([1 / 40, 1 / 60, 1 / 60, 1 / 90, 1 / 75])
#: Arrears (weeks of rent) at which an arrangement is offered at a contact.
ARRANGEMENT_WEEKS = 3.0
#: Arrears (weeks of rent) at which legal action starts / continues.
LEGAL_WEEKS = (8.0, 6.0)
#: Court costs added to the balance when a possession claim is issued (pence).
COURT_COSTS = 35500
#: A possession claim needs a warning of proceedings at least this many days old, sent in the last ... days.
PROCEEDINGS_WARNING_DAYS = 14
PROCEEDINGS_WARNING_VALID_DAYS = 90
#: Days a standard breathing space lasts; days a mental health crisis moratorium runs on after crisis treatment.
BREATHING_SPACE_DAYS = 60
MORATORIUM_DAYS_AFTER_TREATMENT = 30
#: Share of breathing spaces that are mental health crisis moratoria, for tenants not vulnerable / vulnerable
#: (about one in five overall).
MENTAL_HEALTH_CRISIS_SHARE = np.array([0.12, 0.4])
#: Why the housing system's balance may differ from the feeds': a charge it holds but never exported (£25-£400),
#: or a payment it received after the export (half a week's to three weeks' rent); for P_UNEXPLAINED_GAP of live
#: tenancies.
UNEXPLAINED_GAPS = ("charge_not_exported", "payment_not_exported")
P_UNEXPLAINED_GAP = 0.01
#: Attempts in a row an officer makes to reach a tenant (a first one and retries a few days apart).
CONTACT_ATTEMPTS = 4

WEEKS_PER_MONTH = 52.0 / 12.0

#: Columns and dtypes of the rows the engine writes to the feeds (each also has a "day").
TRANSACTION_COLUMNS = {"tenancy": np.int32, "type": np.int8, "amount": np.int64, "method": np.int8,
                       "reference": np.int16, "allocation": np.int8}
EVENT_COLUMNS = {"tenancy": np.int32, "type": np.int8, "amount": np.float64, "note": np.int16}
#: The engine's own record of circumstances as they happen (each row also has the "day" it started), the source
#: of the ground truth's periods: breathing spaces (``until``: the first day no longer in force; a mental health
#: crisis moratorium's ``treatment_end``, -1 for a standard one), disputes (``resolve_on``: the day it is resolved),
#: new benefit claims (``benefit`` code, ``decided_on``: the first payment) and officers' contact attempts
#: (``reached``: the tenant was reached).
CIRCUMSTANCE_COLUMNS = {
    "breathing_spaces": {"tenancy": np.int32, "crisis": bool, "until": np.int64, "treatment_end": np.int64},
    "disputes": {"tenancy": np.int32, "resolve_on": np.int64},
    "benefit_claims": {"tenancy": np.int32, "benefit": np.int8, "decided_on": np.int64},
    "contacts": {"tenancy": np.int32, "reached": bool},
}

#: What a receipt paid for (the contract's ALLOCATIONS); -1 for transactions that are not receipts.
RENT, UNALLOCATED, DEPOSIT = (ALLOCATIONS.index(name) for name in ("rent", "unallocated", "deposit"))
NOT_A_RECEIPT = -1
#: Chance a tenant's payment other than a direct debit arrives without a reference the landlord recognises (it is
#: posted to the account, unallocated).
P_UNALLOCATED = 0.005

_PAYMENT = TRANSACTION_CODE["payment"]
_BENEFIT = TRANSACTION_CODE["benefit"]
_ADJUSTMENT = TRANSACTION_CODE["adjustment"]
_NO_METHOD = -1


class _Records:
    """Column buffers for rows written during the simulation; days before ``min_day`` are not kept. Columns with a
    value in ``defaults`` may be left out when adding rows."""

    def __init__(self, columns: tuple[str, ...], min_day: int, defaults: dict[str, object] | None = None):
        self.columns = columns  #: "tenancy" first
        self.min_day = min_day
        self.defaults = defaults or {}
        self.parts: dict[str, list] = {column: [] for column in columns}
        self.days: list[np.ndarray] = []

    def add(self, t: int, rows: np.ndarray, **values: object) -> None:
        """Rows on day ``t`` for the tenancies ``rows``; each value is an array (one per row) or one for all."""
        if t < self.min_day or len(rows) == 0:
            return
        self._append(np.full(len(rows), t, dtype=np.int32), rows, values)

    def add_on_days(self, days: np.ndarray, rows: np.ndarray, **values: object) -> None:
        """Rows on the days ``days`` (one per row), known in advance rather than written on the day."""
        kept = np.asarray(days) >= self.min_day
        values = {column: value[kept] if np.ndim(value) else value for column, value in values.items()}
        self._append(np.asarray(days)[kept].astype(np.int32), np.asarray(rows)[kept], values)

    def _append(self, days: np.ndarray, rows: np.ndarray, values: dict[str, object]) -> None:
        count = len(rows)
        if count == 0:
            return
        self.days.append(days)
        self.parts["tenancy"].append(np.asarray(rows, dtype=np.int32))
        for column in self.columns[1:]:
            value = values[column] if column in values else self.defaults[column]
            self.parts[column].append(value if np.ndim(value) else (value, count))

    def arrays(self, dtypes: dict[str, type]) -> dict[str, np.ndarray]:
        """The buffers as one array per column (the buffers are emptied)."""
        out = {"day": np.concatenate(self.days) if self.days else np.empty(0, np.int32)}
        self.days = []
        for column in self.columns:
            dtype = dtypes[column]
            parts = [np.full(part[1], part[0], dtype=dtype) if isinstance(part, tuple)
                     else np.asarray(part).astype(dtype) for part in self.parts[column]]
            self.parts[column] = []
            out[column] = np.concatenate(parts) if parts else np.empty(0, dtype)
        return out


@dataclass
class LedgerResult:
    """What the engine produced for one block of tenancies (tenancy indices are block-local)."""

    transactions: dict[str, np.ndarray]  #: day, tenancy, type, amount (pence), method, reference
    events: dict[str, np.ndarray]  #: day, tenancy, type, amount (pence, NaN for none), note
    end: np.ndarray  #: final end day (evictions bring it forward); NEVER while live
    evicted: np.ndarray
    apa_from: np.ndarray
    opening_balance: np.ndarray  #: pence, at the window start (0 for move-ins)
    closing_balance: np.ndarray  #: pence, at the window end
    legal_stage: np.ndarray
    written_off: np.ndarray
    last_charge: np.ndarray  #: day of the last rent charge (-1 if none)
    reported_balance: np.ndarray  #: pence, the balance the housing system reports at the window end ...
    unexplained: np.ndarray  #: ... and why it differs from the closing balance (UNEXPLAINED_GAPS code; -1: it does not)
    #: The engine's own record of circumstances (see CIRCUMSTANCE_COLUMNS), for the ground truth.
    circumstances: dict[str, dict[str, np.ndarray]]


def _enqueue(queue: dict[int, list], days: np.ndarray, *columns: np.ndarray) -> None:
    """Append rows to a day-keyed queue, grouped by day."""
    if len(days) == 0:
        return
    order = np.argsort(days, kind="stable")
    sorted_days = days[order]
    cuts = np.flatnonzero(np.diff(sorted_days)) + 1
    bounds = np.concatenate([[0], cuts, [len(sorted_days)]])
    sorted_columns = [column[order] for column in columns]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        queue[int(sorted_days[lo])].append(tuple(column[lo:hi] for column in sorted_columns))


# -- the state of the accounts and what stays fixed -----------------------------------------------------------------


@dataclass
class CurrentShock:
    """Each tenancy's current shock episode (the one it is in, or the next one), copied out of its slot."""

    start: np.ndarray
    end: np.ndarray
    kind: np.ndarray
    p_miss: np.ndarray
    income_factor: np.ndarray
    backdated: np.ndarray

    @classmethod
    def first(cls, tenancies: TenancyArrays) -> CurrentShock:
        """Every tenancy at its first slot."""
        return cls(
            start=tenancies.shock_start[:, 0].copy(), end=tenancies.shock_end[:, 0].copy(),
            kind=tenancies.shock_kind[:, 0].copy(), p_miss=tenancies.shock_p_miss[:, 0].copy(),
            income_factor=tenancies.shock_income_factor[:, 0].copy(),
            backdated=tenancies.shock_backdated[:, 0].copy(),
        )

    def move_to(self, rows: np.ndarray, slots: np.ndarray, tenancies: TenancyArrays) -> None:
        """The tenancies ``rows`` move on to the episodes in ``slots``."""
        self.start[rows] = tenancies.shock_start[rows, slots]
        self.end[rows] = tenancies.shock_end[rows, slots]
        self.kind[rows] = tenancies.shock_kind[rows, slots]
        self.p_miss[rows] = tenancies.shock_p_miss[rows, slots]
        self.income_factor[rows] = tenancies.shock_income_factor[rows, slots]
        self.backdated[rows] = tenancies.shock_backdated[rows, slots]


@dataclass
class AccountState:
    """The mutable state of every account in a block (arrays indexed by block-local tenancy)."""

    end: np.ndarray  #: last day of the tenancy (an eviction brings it forward)
    balance: np.ndarray  #: pence, positive = owing
    opening_balance: np.ndarray  #: pence, posted on the first day of the window
    hb_paid_to: np.ndarray  #: Housing Benefit has paid up to (not including) this day
    apa_from: np.ndarray  #: managed payments to the landlord from this day (a request sets it)
    arrangement_on: np.ndarray
    arrangement_top_up: np.ndarray  #: pence per week on top of the rent
    arrangement_missed: np.ndarray  #: instalments missed in a row
    arrangement_broken_on: np.ndarray  #: day the last arrangement was broken (no new one for eight weeks)
    breathing_space_until: np.ndarray  #: the first day a breathing space (of either kind) is no longer in force
    dispute_until: np.ndarray  #: an open dispute is resolved on this day
    dispute_withholding: np.ndarray  #: the tenant withholds payment while it is open
    dispute_amount: np.ndarray  #: pence disputed
    legal_stage: np.ndarray  #: 0 none, else the stage reached (LEGAL_STAGES; 5 is eviction)
    legal_stage_day: np.ndarray  #: day of the last legal step
    proceedings_warning_day: np.ndarray  #: day the last warning of possession proceedings was sent
    unanswered_attempts: np.ndarray  #: the officer's attempts in a row that have not reached the tenant
    contact_retry_on: np.ndarray  #: the day the officer tries again after an attempt that failed (NEVER: none)
    last_charge_day: np.ndarray  #: -1 before the first rent charge
    last_charge_amount: np.ndarray
    settle_day: np.ndarray  #: after a move-out, the day credit is refunded or debt written off
    owing_since: np.ndarray  #: first day of the current run of a positive balance (NEVER when not owing)
    evicted: np.ndarray
    written_off: np.ndarray
    shock: CurrentShock
    shock_slot: np.ndarray  #: slot of the current shock episode
    rent_now: np.ndarray | None = None  #: rent per period in the rent year in force
    weekly_rent_now: np.ndarray | None = None  #: the same per week (float pence)
    #: The rent (per period, per week) tenants' own payments are meant for: the rent in force, but for a rent rise
    #: injected as a change (`simulator.changes`), which tenants' incomes do not follow.
    tenant_rent_now: np.ndarray | None = None
    tenant_weekly_rent_now: np.ndarray | None = None
    in_shock: np.ndarray | None = None  #: today, in a shock episode
    benefit_suspended: np.ndarray | None = None  #: today, in a benefit shock: no benefit to the landlord

    @classmethod
    def opening(cls, tenancies: TenancyArrays) -> AccountState:
        """Day 0: the legacy balances of tenancies already running; nothing else in motion."""
        n = len(tenancies.start)
        hb_from = tenancies.hb_from
        return cls(
            end=tenancies.end.copy(),
            balance=np.where(tenancies.start <= 0, tenancies.legacy_balance, 0).astype(np.int64),
            opening_balance=np.zeros(n, dtype=np.int64),
            hb_paid_to=np.where(hb_from == FAR_PAST, tenancies.hb_run_residue - 14, hb_from).astype(np.int64),
            apa_from=tenancies.apa_from.copy(),
            arrangement_on=np.zeros(n, dtype=bool),
            arrangement_top_up=np.zeros(n),
            arrangement_missed=np.zeros(n, dtype=np.int64),
            arrangement_broken_on=np.full(n, -(10**6), dtype=np.int64),
            breathing_space_until=np.full(n, -1, dtype=np.int64),
            dispute_until=np.full(n, -1, dtype=np.int64),
            dispute_withholding=np.zeros(n, dtype=bool),
            dispute_amount=np.zeros(n, dtype=np.int64),
            legal_stage=np.zeros(n, dtype=np.int64),
            legal_stage_day=np.full(n, -(10**6), dtype=np.int64),
            proceedings_warning_day=np.full(n, -(10**6), dtype=np.int64),
            unanswered_attempts=np.zeros(n, dtype=np.int64),
            contact_retry_on=np.full(n, NEVER, dtype=np.int64),
            last_charge_day=np.full(n, -1, dtype=np.int64),
            last_charge_amount=np.zeros(n, dtype=np.int64),
            settle_day=np.full(n, NEVER, dtype=np.int64),
            owing_since=np.full(n, NEVER, dtype=np.int64),
            evicted=np.zeros(n, dtype=bool),
            written_off=np.zeros(n, dtype=bool),
            shock=CurrentShock.first(tenancies),
            shock_slot=np.zeros(n, dtype=np.int64),
        )


@dataclass(frozen=True)
class _Block:
    """What stays fixed while a block of tenancies is simulated: its arrays, calendars and the random stream."""

    tenancies: TenancyArrays
    grid: DayGrid
    window_start_day: int
    rng: np.random.Generator
    all_rows: np.ndarray
    rent_year_periodic: np.ndarray  #: by day: the rent year in force for periodic rents ...
    rent_year_monthly: np.ndarray  #: ... and for monthly rents
    rent_calendar: Calendar
    pay_calendar: Calendar  #: the tenants' own pay cycles (not UC: UC payment days are in uc_calendar)
    uc_calendar: Calendar
    hb_calendar: Calendar
    monthly_rent: np.ndarray
    pays_by_bank: np.ndarray  #: direct debit or standing order
    pays_card_or_cash: np.ndarray
    one_off_method: np.ndarray  #: how one-off payments are made (card or cash)
    p_miss_instalment: np.ndarray  #: chance of missing an arrangement instalment
    statement_runs: dict[int, np.ndarray]  #: day -> the patches sending quarterly rent statements that day
    #: day -> the monthly-rent tenancies starting that day between two rent days (charged the part month then)
    part_month_starts: dict[int, np.ndarray]
    habits: PaymentHabits | None  #: the monthly-statement shape's payment habits (None: sums as meant)
    changes: ChangeEffects | None = None  #: changes injected from a date (`simulator.changes`; None: none)

    @classmethod
    def prepare(
        cls, tenancies: TenancyArrays, grid: DayGrid, window_start_day: int, last_day: int,
        rent_change_days: dict[str, np.ndarray], rng: np.random.Generator, habits: PaymentHabits | None = None,
        changes: ChangeEffects | None = None,
    ) -> _Block:
        """Calendars, rent years by day and the per-tenancy facts derived once for the block."""
        n = len(tenancies.start)
        days = np.arange(last_day + 1)
        method, uc_from = tenancies.pay_method, tenancies.uc_from
        card_or_cash = (method == M_CARD) | (method == M_CASH)
        return cls(
            tenancies=tenancies, grid=grid, window_start_day=window_start_day, rng=rng, all_rows=np.arange(n),
            rent_year_periodic=np.searchsorted(rent_change_days["periodic"], days, side="right"),
            rent_year_monthly=np.searchsorted(rent_change_days["monthly"], days, side="right"),
            rent_calendar=Calendar(tenancies.rent_kind, tenancies.rent_residue),
            pay_calendar=Calendar(tenancies.pay_cycle_kind, tenancies.pay_cycle_residue,
                                  members=uc_from > tenancies.start),
            uc_calendar=Calendar(np.full(n, KIND_MONTHLY), tenancies.uc_payment_dom, members=uc_from < NEVER),
            hb_calendar=Calendar(np.full(n, KIND_P28), tenancies.hb_run_residue, members=tenancies.hb_from < NEVER),
            monthly_rent=tenancies.rent_kind == KIND_MONTHLY,
            pays_by_bank=(method == M_DD) | (method == M_SO),
            pays_card_or_cash=card_or_cash,
            one_off_method=np.where(card_or_cash, method, M_CARD),
            p_miss_instalment=1.0 - tenancies.p_keep_arrangement,
            statement_runs=_statement_runs(grid, last_day, int(tenancies.patch.max(initial=0)) + 1),
            part_month_starts=_part_month_starts(tenancies, grid, last_day),
            habits=habits,
            changes=changes,
        )


def _part_month_starts(tenancies: TenancyArrays, grid: DayGrid, last_day: int) -> dict[int, np.ndarray]:
    """Monthly-rent tenancies starting in the simulation on a day other than their rent day (none in the weekly
    shape, whose tenancies start on a rent day): day -> those tenancies."""
    start = tenancies.start
    rows = np.flatnonzero((tenancies.rent_kind == KIND_MONTHLY) & (start >= 0) & (start <= last_day))
    rows = rows[grid.dom[start[rows]] != tenancies.rent_residue[rows]]
    return {int(day): rows[start[rows] == day] for day in np.unique(start[rows])}


def _statement_runs(grid: DayGrid, last_day: int, n_patches: int) -> dict[int, np.ndarray]:
    """Each patch's quarterly rent-statement run: on its own working day in the first fortnight of January, April,
    July and October. Returns day -> the patches sending statements that day."""
    days = np.arange(last_day + 1)
    month = grid.dates[days].astype("datetime64[M]").astype(np.int64) % 12
    quarter_starts = days[(grid.dom[days] == 1) & (month % 3 == 0)]
    patch = np.arange(n_patches)
    run_day = grid.roll[quarter_starts[:, None] + (5 * patch[None, :]) % 14].ravel()
    run_patch = np.tile(patch, len(quarter_starts))
    return {int(day): run_patch[run_day == day] for day in np.unique(run_day)}


@dataclass
class _Ledger:
    """What the day loop writes (transactions, events) and what it has queued for later days."""

    transactions: _Records
    events: _Records
    circumstances: dict[str, _Records]  #: see CIRCUMSTANCE_COLUMNS
    tenant_payments: defaultdict[int, list]  #: day -> [(tenancies, paid from UC?)]
    #: day -> [(tenancies, value, share of balance?, type, reference, method, allocation)]
    one_offs: defaultdict[int, list]
    reversals: defaultdict[int, list]  #: day -> [(tenancies, amount, reference)]
    #: day -> [(tenancies, event type)]: crisis treatment ending, breathing spaces no longer in force
    breathing_space_ends: defaultdict[int, list]
    #: day -> [(tenancies, amount, reference)]: benefit to the landlord arriving late (a benefit_delay change)
    delayed_benefits: defaultdict[int, list]

    @classmethod
    def empty(cls, window_start_day: int) -> _Ledger:
        """Transactions are kept from the window start (the burn-in reaches them as the opening balance); events
        and circumstances from day 0 (arrangements agreed and breathing spaces started in the burn-in are ground
        truth)."""
        return cls(
            transactions=_Records(tuple(TRANSACTION_COLUMNS), window_start_day, {"allocation": NOT_A_RECEIPT}),
            events=_Records(tuple(EVENT_COLUMNS), 0),
            circumstances={name: _Records(tuple(columns), 0) for name, columns in CIRCUMSTANCE_COLUMNS.items()},
            tenant_payments=defaultdict(list), one_offs=defaultdict(list), reversals=defaultdict(list),
            breathing_space_ends=defaultdict(list), delayed_benefits=defaultdict(list),
        )


# -- the day loop -------------------------------------------------------------------------------------------------


def simulate_ledger(
    tenancies: TenancyArrays,
    grid: DayGrid,
    window_start_day: int,
    last_day: int,
    rent_change_days: dict[str, np.ndarray],
    rng: np.random.Generator,
    habits: PaymentHabits | None = None,
    changes: ChangeEffects | None = None,
) -> LedgerResult:
    """Run the day loop over days 0..``last_day`` for one block of tenancies (see draw_population); ``habits``
    (the monthly-statement shape, `simulator.statement`) turn the sums tenants mean to pay into the sums paid;
    ``changes`` (`simulator.changes`) are what changes injected from a date do to the block's tenancies."""
    block = _Block.prepare(tenancies, grid, window_start_day, last_day, rent_change_days, rng, habits, changes)
    state = AccountState.opening(tenancies)
    ledger = _Ledger.empty(window_start_day)
    _queue_known_one_offs(last_day + 1, block, ledger)
    _record_benefit_claims(last_day, block, ledger)
    for t in range(last_day + 1):  # t: the day index
        _simulate_day(t, block, state, ledger)
    return LedgerResult(
        transactions=ledger.transactions.arrays(TRANSACTION_COLUMNS),
        events=ledger.events.arrays(EVENT_COLUMNS),
        end=state.end, evicted=state.evicted, apa_from=state.apa_from, opening_balance=state.opening_balance,
        closing_balance=state.balance, legal_stage=state.legal_stage, written_off=state.written_off,
        last_charge=state.last_charge_day,
        **_housing_system_balances(last_day, block, state),
        circumstances={name: records.arrays(CIRCUMSTANCE_COLUMNS[name])
                       for name, records in ledger.circumstances.items()},
    )


def _housing_system_balances(last_day: int, block: _Block, state: AccountState) -> dict[str, np.ndarray]:
    """The balance the housing system reports at the window end: the closing balance, except for about
    P_UNEXPLAINED_GAP of live tenancies whose figure includes something never exported (see UNEXPLAINED_GAPS)."""
    rng = block.rng
    n = len(state.balance)
    kind = np.where(rng.random(n) < 0.7, 0, 1)  # a charge (70%) or a payment (30%)
    unexplained = np.where((state.end > last_day) & (rng.random(n) < P_UNEXPLAINED_GAP), kind, -1)
    charge = rng.integers(25, 401, n) * 100
    payment = -np.rint(state.weekly_rent_now * rng.uniform(0.5, 3.0, n) / 100.0).astype(np.int64) * 100
    difference = np.select([unexplained == 0, unexplained == 1], [charge, payment], 0)
    return {"reported_balance": state.balance + difference, "unexplained": unexplained}


def _simulate_day(t: int, block: _Block, state: AccountState, ledger: _Ledger) -> None:
    """Day ``t``, step by step in the order of the module docstring."""
    day_of_month = int(block.grid.dom[t])
    _set_rent_now(t, block, state)
    _advance_shocks(t, block, state)  # 1.
    if t == block.window_start_day:
        _post_opening_balances(t, block, state, ledger)
    _post_rent_charges(t, day_of_month, block, state, ledger)  # 2.
    _pay_housing_benefit(t, day_of_month, block, state, ledger)  # 3.
    paid_uc = _pay_universal_credit(t, day_of_month, block, state, ledger)
    if block.changes is not None:
        _post_delayed_benefits(t, state, ledger)
    _schedule_tenant_payments(t, day_of_month, paid_uc, block, state, ledger)  # 4.
    _pay_tenant_payments_due(t, block, state, ledger)  # 5.
    _post_one_offs(t, block, state, ledger)  # 6.
    _post_reversals(t, state, ledger)
    _officer_actions(t, block, state, ledger)  # 7.
    _move_outs(t, block, state, ledger)  # 8.
    _settle_former_tenancies(t, block, state, ledger)
    _former_tenant_payments(t, block, state, ledger)


def _queue_known_one_offs(n_days: int, block: _Block, ledger: _Ledger) -> None:
    """UC advances and deposits at move-in (fixed amounts) and post-shock lump sums (a share of the balance then),
    known from the start."""
    tenancies, method = block.tenancies, block.one_off_method
    advance = np.flatnonzero(tenancies.uc_advance_day < n_days)
    _enqueue(ledger.one_offs, tenancies.uc_advance_day[advance], advance,
             tenancies.uc_advance_amount[advance].astype(float), np.zeros(len(advance), bool),
             np.full(len(advance), _PAYMENT), PAYMENT_REFERENCE[method[advance]], method[advance],
             np.full(len(advance), RENT))
    deposit = np.flatnonzero((tenancies.deposit_amount > 0) & (tenancies.start < n_days))
    _enqueue(ledger.one_offs, tenancies.start[deposit], deposit, tenancies.deposit_amount[deposit].astype(float),
             np.zeros(len(deposit), bool), np.full(len(deposit), _PAYMENT),
             np.full(len(deposit), REFERENCE_CODE["Deposit"]), method[deposit], np.full(len(deposit), DEPOSIT))
    rows, slots = np.nonzero(tenancies.shock_lump_day < n_days)
    dhp = tenancies.shock_lump_is_dhp[rows, slots]
    _enqueue(ledger.one_offs, tenancies.shock_lump_day[rows, slots], rows, tenancies.shock_lump_share[rows, slots],
             np.ones(len(rows), bool), np.where(dhp, _BENEFIT, _PAYMENT),
             np.where(dhp, REFERENCE_CODE["Discretionary Housing Payment"], PAYMENT_REFERENCE[method[rows]]),
             np.where(dhp, M_BENEFIT, method[rows]), np.full(len(rows), RENT))


def _record_benefit_claims(last_day: int, block: _Block, ledger: _Ledger) -> None:
    """New benefit claims made in the simulation, known from the start: Universal Credit claims are decided at the
    first payment after the five-week wait, Housing Benefit claims at the first run after assessment (claims running
    since before the simulation are not new). Claims decided in the window, or still pending at its end, get a
    ``benefit_claim_made`` event on the day they were made (before the window for one pending at its start) and a
    ``benefit_claim_decided`` event on the first payment."""
    tenancies = block.tenancies
    uc = np.flatnonzero((tenancies.uc_from > FAR_PAST) & (tenancies.uc_from <= last_day))
    hb = np.flatnonzero((tenancies.hb_from > FAR_PAST) & (tenancies.hb_from <= last_day))
    first_run = tenancies.hb_first_run[hb]
    rows = np.concatenate([uc, hb])
    made = np.concatenate([tenancies.uc_from[uc], tenancies.hb_from[hb]])
    first_hb_run = first_run + (tenancies.hb_run_residue[hb] - first_run) % 28  # the first run on or after it
    decided = np.concatenate([tenancies.uc_first_payment[uc], first_hb_run])
    benefit = np.concatenate([np.full(uc.size, B_UC), np.full(hb.size, B_HB)])
    ledger.circumstances["benefit_claims"].add_on_days(made, rows, benefit=benefit, decided_on=decided)
    note = np.where(benefit == B_UC, NOTE_CODE["Universal Credit"], NOTE_CODE["Housing Benefit"])
    shown = decided >= block.window_start_day
    ledger.events.add_on_days(made[shown], rows[shown], type=EVENT_CODE["benefit_claim_made"], amount=np.nan,
                              note=note[shown])
    shown &= decided <= last_day
    ledger.events.add_on_days(decided[shown], rows[shown], type=EVENT_CODE["benefit_claim_decided"], amount=np.nan,
                              note=note[shown])


def _set_rent_now(t: int, block: _Block, state: AccountState) -> None:
    """On day 0, when a rent year starts (periodic and monthly rents change on different days) and when an injected
    rent rise starts: the rent in force, and the rent tenants' own payments are meant for (the rent without any
    injected rise)."""
    periodic, monthly = block.rent_year_periodic, block.rent_year_monthly
    rises = block.changes.rent_rise_days if block.changes is not None else frozenset()
    if t == 0 or periodic[t] != periodic[t - 1] or monthly[t] != monthly[t - 1] or t in rises:
        rent_year = np.where(block.monthly_rent, monthly[t], periodic[t])
        state.rent_now = block.tenancies.rent_by_year[block.all_rows, rent_year]
        state.weekly_rent_now = block.tenancies.weekly_rent_by_year[block.all_rows, rent_year]
        state.tenant_rent_now, state.tenant_weekly_rent_now = state.rent_now, state.weekly_rent_now
        if rises:
            factor = block.changes.rent_factor(t)
            state.rent_now = np.rint(state.rent_now * factor).astype(np.int64)
            state.weekly_rent_now = state.weekly_rent_now * factor


# -- 1. shocks, opening balance -------------------------------------------------------------------------------------


def _advance_shocks(t: int, block: _Block, state: AccountState) -> None:
    """Tenancies whose shock episode has ended move on to the next; benefit lost in a benefit shock that is not
    backdated is never paid. Sets who is in a shock today and whose benefit to the landlord is suspended."""
    shock = state.shock
    done = np.flatnonzero(shock.end < t)
    if done.size:
        lost = done[(shock.kind[done] == SK_BENEFIT) & ~shock.backdated[done]]
        state.hb_paid_to[lost] = np.maximum(state.hb_paid_to[lost], shock.end[lost] + 1)
        state.shock_slot[done] += 1
        shock.move_to(done, state.shock_slot[done], block.tenancies)
    state.in_shock = shock.start <= t
    state.benefit_suspended = state.in_shock & (shock.kind == SK_BENEFIT)


def _post_opening_balances(t: int, block: _Block, state: AccountState, ledger: _Ledger) -> None:
    """On the first day of the window: the balance built up so far, as an adjustment."""
    state.opening_balance = np.where(block.tenancies.start < block.window_start_day, state.balance, 0)
    rows = np.flatnonzero(state.opening_balance != 0)
    ledger.transactions.add(t, rows, type=_ADJUSTMENT, amount=state.opening_balance[rows], method=_NO_METHOD,
                            reference=REFERENCE_CODE["Opening balance"])


# -- 2. rent charges; 3. benefit paid to the landlord ---------------------------------------------------------------


def _post_rent_charges(t: int, day_of_month: int, block: _Block, state: AccountState, ledger: _Ledger) -> None:
    """The rent charges due today on live tenancies, at the rent in force."""
    rows = block.rent_calendar.due(t, day_of_month)
    if rows.size:
        rows = rows[(block.tenancies.start[rows] <= t) & (state.end[rows] >= t)]
        amount = state.rent_now[rows]
        state.balance[rows] += amount
        state.last_charge_day[rows] = t
        state.last_charge_amount[rows] = amount
        ledger.transactions.add(t, rows, type=TRANSACTION_CODE["charge"], amount=amount, method=_NO_METHOD,
                                reference=REFERENCE_CODE["Rent"])
    if t in block.part_month_starts:
        _post_part_month_charges(t, block.part_month_starts[t], block, state, ledger)


def _post_part_month_charges(t: int, rows: np.ndarray, block: _Block, state: AccountState, ledger: _Ledger) -> None:
    """Monthly-rent tenancies starting today between two rent days: the rent from today to the first rent day (a
    month's rent × 12 / DAYS_PER_YEAR a day), charged today."""
    rows = rows[state.end[rows] >= t]
    days = days_to_next_monthly(block.grid, np.full(rows.size, t), block.tenancies.rent_residue[rows])
    amount = np.rint(state.rent_now[rows] * 12.0 * days / DAYS_PER_YEAR).astype(np.int64)
    state.balance[rows] += amount
    state.last_charge_day[rows] = t
    state.last_charge_amount[rows] = amount
    ledger.transactions.add(t, rows, type=TRANSACTION_CODE["charge"], amount=amount, method=_NO_METHOD,
                            reference=REFERENCE_CODE["Rent to first statement"])


def _pay_housing_benefit(t: int, day_of_month: int, block: _Block, state: AccountState, ledger: _Ledger) -> None:
    """The four-weekly Housing Benefit run: pays each claim up to two weeks ahead (and back to where it was last
    paid, so a new claim is backdated), not during a benefit shock, never past the claim or tenancy end."""
    rows = block.hb_calendar.due(t, day_of_month)
    if rows.size:
        tenancies = block.tenancies
        rows = rows[(tenancies.start[rows] <= t) & (tenancies.hb_first_run[rows] <= t)
                    & ~state.benefit_suspended[rows]]
        upto = np.minimum(np.minimum(t + 14, tenancies.hb_to[rows]), state.end[rows] + 1)
        days = upto - state.hb_paid_to[rows]
        ok = days > 0
        rows, upto, days = rows[ok], upto[ok], days[ok]
        amount = np.rint(tenancies.hb_coverage[rows] * state.weekly_rent_now[rows] * days / 7.0).astype(np.int64)
        state.hb_paid_to[rows] = upto
        ok = amount > 0
        _post_benefit(t, rows[ok], amount[ok], "Housing Benefit", B_HB, block, state, ledger)


def _pay_universal_credit(
    t: int, day_of_month: int, block: _Block, state: AccountState, ledger: _Ledger
) -> np.ndarray:
    """UC payment day (after a new claim's five-week wait): managed payments (APA) to the landlord, with the
    deduction towards arrears when owing. Returns the claimants paid today (who then pay their own share)."""
    rows = block.uc_calendar.due(t, day_of_month)
    if not rows.size:
        return np.empty(0, dtype=np.int64)
    tenancies = block.tenancies
    paid = rows[(tenancies.start[rows] <= t) & (t <= state.end[rows]) & (tenancies.uc_from[rows] <= t)
                & (tenancies.uc_first_payment[rows] <= t)]
    managed = paid[(state.apa_from[paid] <= t) & ~state.benefit_suspended[paid]]
    amount = np.rint(tenancies.uc_coverage[managed] * state.weekly_rent_now[managed] * WEEKS_PER_MONTH).astype(np.int64)
    after = state.balance[managed] - amount  # the balance once the managed payment is in
    owing = after > 0
    deduction = np.minimum(tenancies.uc_arrears_deduction[managed[owing]].astype(np.int64), after[owing])
    _post_benefit(t, managed, amount, "UC managed payment", B_UC, block, state, ledger)
    _post_benefit(t, managed[owing], deduction, "UC deduction for arrears", B_UC, block, state, ledger)
    return paid


def _post_benefit(
    t: int, rows: np.ndarray, amount: np.ndarray, reference: str, benefit: int, block: _Block, state: AccountState,
    ledger: _Ledger,
) -> None:
    """Benefit (``amount`` pence, of ``benefit``: B_HB or B_UC) paid to the landlord today for the tenancies
    ``rows`` (no repeats), or, where a benefit_delay change holds it up, queued for the day it arrives."""
    if block.changes is not None:
        delay = block.changes.benefit_delay(t, rows, benefit)
        late = delay > 0
        if late.any():
            roll, arrives = block.grid.roll, t + delay[late]  # on the next working day (beyond the grid: never)
            arrives = np.where(arrives < len(roll), roll[np.minimum(arrives, len(roll) - 1)], arrives)
            _enqueue(ledger.delayed_benefits, arrives, rows[late], amount[late],
                     np.full(late.sum(), REFERENCE_CODE[reference]))
            rows, amount = rows[~late], amount[~late]
    state.balance[rows] -= amount
    ledger.transactions.add(t, rows, type=_BENEFIT, amount=-amount, method=M_BENEFIT,
                            reference=REFERENCE_CODE[reference], allocation=RENT)


def _post_delayed_benefits(t: int, state: AccountState, ledger: _Ledger) -> None:
    """Benefit held up by a benefit_delay change arriving today (after a move-out too: it pays for the tenancy)."""
    for rows, amount, references in ledger.delayed_benefits.pop(t, ()):
        np.add.at(state.balance, rows, -amount)
        ledger.transactions.add(t, rows, type=_BENEFIT, amount=-amount, method=M_BENEFIT, reference=references,
                                allocation=RENT)


# -- 4. scheduling tenants' own payments; 5. paying -----------------------------------------------------------------


def _schedule_tenant_payments(
    t: int, day_of_month: int, paid_uc: np.ndarray, block: _Block, state: AccountState, ledger: _Ledger
) -> None:
    """Tenants paid today (on their own pay cycle, or by UC) queue a payment: bank payments arrive a fixed few
    days later, card and cash after the tenant's habitual delay plus jitter; on the next working day."""
    tenancies = block.tenancies
    own = block.pay_calendar.due(t, day_of_month)
    if own.size:
        own = own[(tenancies.start[own] <= t) & (t <= state.end[own]) & (t < tenancies.uc_from[own])]
    rows = np.concatenate([own, paid_uc]) if paid_uc.size else own
    if rows.size:
        jitter = block.rng.exponential(1.0, len(rows)) - 1.0
        uc_direct_debit = (t >= tenancies.uc_from[rows]) & (tenancies.pay_method[rows] == M_DD)
        delay = np.where(
            block.pays_by_bank[rows],
            tenancies.bank_delay_days[rows] + 2 * uc_direct_debit,
            np.maximum(0, np.rint(tenancies.delay_base_days[rows] + tenancies.delay_jitter_days[rows] * jitter))
            + tenancies.posting_lag_days[rows],
        ).astype(np.int64)
        pay_day = block.grid.roll[t + np.minimum(delay, 60)]
        _enqueue(ledger.tenant_payments, pay_day, rows, np.arange(len(rows)) >= len(own))  # (tenancy, from UC?)


def _pay_tenant_payments_due(t: int, block: _Block, state: AccountState, ledger: _Ledger) -> None:
    """The tenants' payments queued for today, for tenancies still live."""
    due = ledger.tenant_payments.pop(t, None)
    if due:
        rows = np.concatenate([part[0] for part in due])
        from_uc = np.concatenate([part[1] for part in due])
        live = (block.tenancies.start[rows] <= t) & (t <= state.end[rows])
        if live.any():
            _pay(t, rows[live], from_uc[live], block, state, ledger)


class _PaymentDue(NamedTuple):
    """What each payment falling due is meant to be."""

    expected: np.ndarray  #: the tenant's share of rent for the cycle plus any arrangement top-up (pence)
    owed: np.ndarray  #: balance before paying (pence, float)
    target: np.ndarray  #: the balance the tenant aims to leave (zero, or in advance for those who pay ahead)
    on_arrangement: np.ndarray


def _pay(t: int, rows: np.ndarray, from_uc: np.ndarray, block: _Block, state: AccountState, ledger: _Ledger) -> None:
    """Tenants' regular payments falling due on day ``t`` (``rows`` may repeat a tenancy); ``from_uc`` marks those
    scheduled from a Universal Credit payment (the others from the tenant's own pay cycle)."""
    due = _payment_due(t, rows, from_uc, block, state)
    draws = block.rng.random((6, rows.size))
    amount = _payment_amount(t, rows, due, draws, block, state)
    if block.habits is not None:
        amount = block.habits.paid(rows, amount, block.rng)
    bounced = _post_payments(t, rows, amount, draws[4:], block, state, ledger)
    _check_instalments(t, rows, due, amount, bounced, state, ledger)


def _payment_due(t: int, rows: np.ndarray, from_uc: np.ndarray, block: _Block, state: AccountState) -> _PaymentDue:
    """The tenant's share of rent (what benefit leaves), for the rent period when paying on the rent cycle, else
    for the weeks of the pay cycle; plus any arrangement top-up."""
    tenancies = block.tenancies
    weekly_rent, rent = state.tenant_weekly_rent_now[rows], state.tenant_rent_now[rows]
    managed = state.apa_from[rows] <= t
    hb_on = ~from_uc & (tenancies.hb_from[rows] <= t) & (t < tenancies.hb_to[rows])
    share = np.where(from_uc, np.where(managed, 1.0 - tenancies.uc_coverage[rows], 1.0),
                     np.where(hb_on, 1.0 - tenancies.hb_coverage[rows], 1.0))
    rent_cycle = np.where(from_uc, tenancies.rent_kind[rows] == KIND_MONTHLY, tenancies.pay_cycle_is_rent_cycle[rows])
    cycle_weeks = np.where(from_uc, WEEKS_PER_MONTH, tenancies.pay_cycle_weeks[rows])
    on_arrangement = state.arrangement_on[rows]
    base = np.where(rent_cycle, share * rent, np.ceil(share * weekly_rent * cycle_weeks))
    expected = np.rint(base + np.where(on_arrangement, state.arrangement_top_up[rows] * cycle_weeks, 0.0))
    owed = state.balance[rows].astype(float)
    # A careful payer keeps the balance at a target just after paying: in advance by all but the first week of
    # the pay cycle (so it stays at or below zero until the next payday).
    # Others (no advance habit) aim at a zero balance just after payday and so run technical arrears between.
    target = -share * weekly_rent * np.maximum(cycle_weeks - 1.0, 0.0) * tenancies.pays_ahead[rows]
    if block.habits is not None:
        target = target + _not_yet_due(t, rows, share * rent, cycle_weeks, block)
    return _PaymentDue(expected, owed, target, on_arrangement)


def _not_yet_due(t: int, rows: np.ndarray, rent_share: np.ndarray, cycle_weeks: np.ndarray, block: _Block
                 ) -> np.ndarray:
    """Monthly-statement shape: the month's rent is charged in advance on the statement day, and a tenant paid more
    often than monthly leaves the part of it after this pay cycle to later paydays (it is not arrears to catch up
    on, and paying it early would be paying ahead). The tenant's share of that part, in pence."""
    left = days_to_next_monthly(block.grid, np.full(rows.size, t), block.tenancies.rent_residue[rows])
    return rent_share * np.maximum(left - 7.0 * cycle_weeks, 0.0) / block.grid.dim[t]


def _p_miss(t: int, rows: np.ndarray, due: _PaymentDue, block: _Block, state: AccountState) -> np.ndarray:
    """The chance each payment is missed: the archetype's (on an arrangement: of missing an instalment), raised by
    a live shock or a dispute with withholding; card and cash payers at or beyond their target often skip."""
    p_miss = np.where(due.on_arrangement, block.p_miss_instalment[rows], block.tenancies.p_skip[rows])
    p_miss = np.where(state.in_shock[rows], 1.0 - (1.0 - p_miss) * (1.0 - state.shock.p_miss[rows]), p_miss)
    p_miss = np.where((state.dispute_until[rows] >= t) & state.dispute_withholding[rows], 0.9, p_miss)
    lenient = block.pays_card_or_cash[rows]
    p_miss = np.where(lenient & (due.owed <= due.target), np.maximum(p_miss, 0.5), p_miss)
    p_miss = np.where(lenient & (due.owed < due.target - due.expected), np.maximum(p_miss, 0.95), p_miss)
    return p_miss if block.changes is None else block.changes.with_extra_miss(t, rows, p_miss)


def _payment_amount(
    t: int, rows: np.ndarray, due: _PaymentDue, draws: np.ndarray, block: _Block, state: AccountState
) -> np.ndarray:
    """Each payment in pence: nothing if missed, else the expected amount or part of it (a partial payment, less
    during a shock), plus sometimes a catch-up share of what is owed beyond the target; whole pounds for some."""
    tenancies = block.tenancies
    missed = draws[0] < _p_miss(t, rows, due, block, state)
    in_shock = state.in_shock[rows]
    partial = draws[1] < np.where(due.on_arrangement, 0.5, 1.0) * tenancies.p_partial[rows]
    low, high = tenancies.partial_share_low[rows], tenancies.partial_share_high[rows]
    share_paid = np.where(partial, low + (high - low) * draws[2], 1.0) * np.where(
        in_shock, state.shock.income_factor[rows], 1.0)
    regular = np.where(missed, 0.0, due.expected * share_paid)
    behind = due.owed - due.expected - due.target  # what would be left above the target after the regular payment
    catch_up = ~in_shock & ~missed & (draws[3] < tenancies.p_catchup[rows]) & (behind > 100.0)
    extra = tenancies.catchup_share[rows] * behind
    extra = np.where(behind - extra < 500.0, behind, extra)  # a remainder under £5 is paid off too
    amount = regular + np.where(catch_up, extra, 0.0)
    return np.where(tenancies.round_pounds[rows], np.ceil(amount / 100.0) * 100.0, np.rint(amount)).astype(np.int64)


def _post_payments(
    t: int, rows: np.ndarray, amount: np.ndarray, draws: np.ndarray, block: _Block, state: AccountState,
    ledger: _Ledger,
) -> np.ndarray:
    """Posts the payments; a few without a reference the landlord recognises (not direct debits) are posted
    unallocated. Direct debits occasionally bounce (more often during a shock), cards rarely: they come back as a
    positive adjustment a few working days later. Returns which payments bounced."""
    method = block.tenancies.pay_method[rows]
    paid = amount > 0
    bounced = paid & (((method == M_DD) & (draws[0] < np.where(state.in_shock[rows], 0.15, 0.004)))
                      | ((method == M_CARD) & (draws[0] < 0.001)))
    np.add.at(state.balance, rows[paid], -amount[paid])
    unallocated = (method[paid] != M_DD) & (draws[1][paid] < P_UNALLOCATED)
    ledger.transactions.add(t, rows[paid], type=_PAYMENT, amount=-amount[paid], method=method[paid],
                            reference=np.where(unallocated, REFERENCE_CODE["Reference not recognised"],
                                               PAYMENT_REFERENCE[method[paid]]),
                            allocation=np.where(unallocated, UNALLOCATED, RENT))
    if bounced.any():
        returned = rows[bounced]
        day = block.grid.roll[t + 3 + block.rng.integers(0, 3, returned.size)]
        reference = np.where(method[bounced] == M_DD, REFERENCE_CODE["Returned direct debit"],
                             REFERENCE_CODE["Payment reversal"])
        _enqueue(ledger.reversals, day, returned, amount[bounced], reference)
    return bounced


def _check_instalments(
    t: int, rows: np.ndarray, due: _PaymentDue, amount: np.ndarray, bounced: np.ndarray, state: AccountState,
    ledger: _Ledger,
) -> None:
    """Arrangement instalments: one paid (90% or more, not bounced) clears the count of misses; two missed in a
    row break the arrangement (not in breathing space), and no new one is agreed for eight weeks."""
    check = due.on_arrangement & (due.expected > 0)
    if check.any():
        checked = rows[check]
        kept = (amount[check] >= 0.9 * due.expected[check]) & ~bounced[check]
        state.arrangement_missed[checked] = np.where(kept, 0, state.arrangement_missed[checked] + 1)
        broken = checked[(state.arrangement_missed[checked] >= 2) & (state.breathing_space_until[checked] <= t)]
        broken = np.unique(broken)
        if broken.size:
            state.arrangement_on[broken] = False
            state.arrangement_broken_on[broken] = t
            ledger.events.add(t, broken, type=EVENT_CODE["arrangement_broken"],
                              amount=state.balance[broken].astype(float), note=NOTE_CODE["two instalments missed"])


# -- 6. one-off payments and reversals ------------------------------------------------------------------------------


def _post_one_offs(t: int, block: _Block, state: AccountState, ledger: _Ledger) -> None:
    """One-off payments due today: fixed amounts (while the tenancy is live) or a share of what is owed (also
    after a move-out, unless the debt was written off)."""
    start = block.tenancies.start
    for rows, value, share_of_balance, types, references, methods, allocations in ledger.one_offs.pop(t, ()):
        live = (start[rows] <= t) & (t <= state.end[rows])
        owed = np.maximum(state.balance[rows], 0)
        amount = np.where(share_of_balance, np.rint(value * owed), np.where(live, value, 0)).astype(np.int64)
        amount = np.where(share_of_balance, np.minimum(amount, owed), amount)
        ok = (amount > 0) & (start[rows] <= t) & ~state.written_off[rows]
        np.add.at(state.balance, rows[ok], -amount[ok])
        ledger.transactions.add(t, rows[ok], type=types[ok], amount=-amount[ok], method=methods[ok],
                                reference=references[ok], allocation=allocations[ok])


def _post_credits(
    t: int, rows: np.ndarray, credit: np.ndarray, reference: str, state: AccountState, ledger: _Ledger
) -> np.ndarray:
    """The positive ``credit`` amounts (pence) posted to the accounts as adjustments; returns where they were."""
    posted = credit > 0
    state.balance[rows[posted]] -= credit[posted]
    ledger.transactions.add(t, rows[posted], type=_ADJUSTMENT, amount=-credit[posted], method=_NO_METHOD,
                            reference=REFERENCE_CODE[reference])
    return posted


def _post_reversals(t: int, state: AccountState, ledger: _Ledger) -> None:
    """Bounced payments coming back today, as positive adjustments."""
    for rows, amount, references in ledger.reversals.pop(t, ()):
        np.add.at(state.balance, rows, amount)
        ledger.transactions.add(t, rows, type=_ADJUSTMENT, amount=amount, method=_NO_METHOD, reference=references)


# -- 7. the housing officer's side ----------------------------------------------------------------------------------


class _Standing(NamedTuple):
    """How the accounts stand when the officer looks at them today."""

    live: np.ndarray
    arrears_weeks: np.ndarray  #: balance in weeks of rent
    persistent: np.ndarray  #: owing for four weeks or more


def _officer_actions(t: int, block: _Block, state: AccountState, ledger: _Ledger) -> None:
    """Arrangements completed, breathing space ending, disputes resolved; then today's contacts, breathing space,
    disputes, recharge fees and credit refunds; legal action (in the window) and requests for managed payments."""
    live = (block.tenancies.start <= t) & (t <= state.end)
    arrears_weeks = state.balance / state.weekly_rent_now
    state.owing_since = np.where(state.balance > 0, np.minimum(state.owing_since, t), NEVER)
    standing = _Standing(live, arrears_weeks, t - state.owing_since >= 28)
    _complete_cleared_arrangements(t, state, ledger)
    _end_breathing_spaces(t, ledger)
    _resolve_disputes(t, block, state, ledger)
    contacted, breathing, disputed, charged, refunded = _draw_officer_actions(t, block, state, standing)
    contacted = _with_retries_due(t, contacted, state, standing)
    if contacted.size:
        _contact(t, contacted, block, state, ledger, standing)
    # (not on a day an arrangement was broken: that came first, and breathing space would have prevented it)
    breathing = breathing[state.arrangement_broken_on[breathing] != t]
    if breathing.size:
        _start_breathing_spaces(t, breathing, block, state, ledger)
    if disputed.size:
        _open_disputes(t, disputed, block, state, ledger)
    if t in block.statement_runs:
        _send_rent_statements(t, block.statement_runs[t], block, state, ledger, standing)
    if charged.size:
        _charge_recharge_fees(t, charged, block, state, ledger)
    if refunded.size:
        _refund_credits(t, refunded, state, ledger)
    # Legal action only in the window, so evictions never remove a tenancy before it is observed.
    if t >= block.window_start_day:
        _legal_action(t, block, state, ledger, standing)
    _request_managed_payments(t, block, state, standing)


def _complete_cleared_arrangements(t: int, state: AccountState, ledger: _Ledger) -> None:
    """Arrangements whose balance is cleared are completed."""
    done = np.flatnonzero(state.arrangement_on & (state.balance <= 0))
    if done.size:
        state.arrangement_on[done] = False
        ledger.events.add(t, done, type=EVENT_CODE["arrangement_completed"], amount=np.nan,
                          note=NOTE_CODE["arrears cleared"])


def _end_breathing_spaces(t: int, ledger: _Ledger) -> None:
    """Crisis treatment ending today (the moratorium then runs 30 more days); breathing spaces of either kind no
    longer in force from today."""
    for rows, types in ledger.breathing_space_ends.pop(t, ()):
        ledger.events.add(t, rows, type=types, amount=np.nan, note=np.where(
            types == EVENT_CODE["crisis_treatment_ended"], NOTE_CODE["crisis treatment ended"],
            NOTE_CODE["breathing space ended"]))


def _start_breathing_spaces(t: int, rows: np.ndarray, block: _Block, state: AccountState, ledger: _Ledger) -> None:
    """Breathing spaces (Debt Respite Scheme) starting today: a standard one lasts BREATHING_SPACE_DAYS; a mental
    health crisis moratorium (MENTAL_HEALTH_CRISIS_SHARE of them, more for vulnerable tenants) lasts while the
    crisis treatment does (lognormal, median 60 days, 14-240) and MORATORIUM_DAYS_AFTER_TREATMENT after it."""
    rng = block.rng
    crisis = rng.random(rows.size) < MENTAL_HEALTH_CRISIS_SHARE[block.tenancies.vulnerable[rows].astype(np.int64)]
    treatment_days = np.clip(np.rint(60 * rng.lognormal(0.0, 0.55, rows.size)), 14, 240).astype(np.int64)
    treatment_end = np.where(crisis, t + treatment_days, -1)
    until = np.where(crisis, treatment_end + MORATORIUM_DAYS_AFTER_TREATMENT, t + BREATHING_SPACE_DAYS)
    state.breathing_space_until[rows] = until
    ledger.events.add(t, rows, type=np.where(crisis, EVENT_CODE["mental_health_moratorium_started"],
                                             EVENT_CODE["breathing_space_started"]),
                      amount=np.nan, note=np.where(crisis, NOTE_CODE["mental health crisis moratorium"],
                                                   NOTE_CODE["standard breathing space"]))
    ledger.circumstances["breathing_spaces"].add(t, rows, crisis=crisis, until=until, treatment_end=treatment_end)
    _enqueue(ledger.breathing_space_ends, np.concatenate([treatment_end[crisis], until]),
             np.concatenate([rows[crisis], rows]),
             np.repeat([EVENT_CODE["crisis_treatment_ended"], EVENT_CODE["breathing_space_ended"]],
                       [crisis.sum(), rows.size]))


def _resolve_disputes(t: int, block: _Block, state: AccountState, ledger: _Ledger) -> None:
    """Disputes due today are upheld (35%, with a credit of part of the sum disputed), not upheld or withdrawn."""
    rows = np.flatnonzero(state.dispute_until == t)
    if rows.size:
        rng = block.rng
        outcome = np.minimum((rng.random(rows.size)[:, None] >= np.array([0.35, 0.85])).sum(axis=1), 2)
        credit = np.where(outcome == 0, np.rint(state.dispute_amount[rows] * rng.uniform(0.2, 1.0, rows.size)), 0)
        credit = credit.astype(np.int64)
        upheld = _post_credits(t, rows, credit, "Dispute settlement credit", state, ledger)
        ledger.events.add(t, rows, type=EVENT_CODE["dispute_resolved"], amount=np.where(upheld, credit, np.nan),
                          note=NOTE_CODE[DISPUTE_OUTCOMES[0]] + outcome)
        state.dispute_withholding[rows] = False


def _draw_officer_actions(
    t: int, block: _Block, state: AccountState, standing: _Standing
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One draw per account, split by daily hazards into: a contact (more likely the deeper and longer the arrears,
    less in breathing space), breathing space, a dispute, a recharge fee, a refund of a large credit (or none).
    Returns the tenancies of each action."""
    live, weeks = standing.live, standing.arrears_weeks
    draw = block.rng.random(len(live))
    in_arrears = live & (weeks >= 1) & (t - state.owing_since >= 7)
    contact = np.where(live, 0.0012 + 0.008 * in_arrears + 0.025 * (weeks >= 3) + 0.03 * (weeks >= 6), 0.0)
    contact = np.where(state.breathing_space_until > t, 0.3 * contact, contact)
    upto_contact = contact
    upto_breathing = upto_contact + np.where(live & (weeks >= 2) & (state.breathing_space_until <= t),
                                             0.0002 * (1 + 2 * block.tenancies.vulnerable), 0.0)
    upto_dispute = upto_breathing + np.where(live & (state.dispute_until < t), 0.00003 + 0.00004 * in_arrears, 0.0)
    upto_fee = upto_dispute + np.where(live, 0.00002, 0.0)
    upto_refund = upto_fee + np.where(live & (state.balance < -6 * state.weekly_rent_now), 1 / 90, 0.0)
    bounds = (upto_contact, upto_breathing, upto_dispute, upto_fee, upto_refund)
    between = (np.flatnonzero((draw >= low) & (draw < high)) for low, high in zip(bounds[:-1], bounds[1:], strict=True))
    return np.flatnonzero(draw < upto_contact), *between


def _with_retries_due(t: int, contacted: np.ndarray, state: AccountState, standing: _Standing) -> np.ndarray:
    """Today's contacts: those drawn and the retries due today of attempts that failed, for tenancies still live,
    in arrears and not in breathing space."""
    retried = np.flatnonzero(state.contact_retry_on == t)
    if not retried.size:
        return contacted
    retried = retried[standing.live[retried] & (standing.arrears_weeks[retried] >= 1)
                      & (state.breathing_space_until[retried] <= t)]
    return np.union1d(contacted, retried)


def _contact(
    t: int, rows: np.ndarray, block: _Block, state: AccountState, ledger: _Ledger, standing: _Standing
) -> None:
    """Officer contacts (by the tenant's preferred channel; a home visit for some deep arrears). An attempt fails
    to reach the tenant with the tenant's ``p_no_answer``: it is retried 1-3 days later (on a working day), up to
    CONTACT_ATTEMPTS in a row. At a contact that reaches the tenant an arrangement may be agreed or a payment
    promised."""
    rng = block.rng
    visit = (standing.arrears_weeks[rows] >= 3) & (rng.random(rows.size) < 0.1)
    note = np.where(visit, NOTE_CODE["home visit"], block.tenancies.channel[rows])  # channel codes = contact notes
    reached = rng.random(rows.size) >= block.tenancies.p_no_answer[rows]
    ledger.events.add(t, rows, type=np.where(reached, EVENT_CODE["contact_made"], EVENT_CODE["contact_attempted"]),
                      amount=np.nan, note=note)
    ledger.circumstances["contacts"].add(t, rows, reached=reached)
    attempt = np.where(state.contact_retry_on[rows] == t, state.unanswered_attempts[rows] + 1, 1)
    state.unanswered_attempts[rows] = np.where(reached, 0, attempt)
    retry = ~reached & (attempt < CONTACT_ATTEMPTS)
    state.contact_retry_on[rows] = np.where(retry, block.grid.roll[t + rng.integers(1, 4, rows.size)], NEVER)
    rows = rows[reached]
    _agree_arrangements(t, rows, block, state, ledger, standing)
    _take_payment_promises(t, rows, block, state, ledger, standing)


def _agree_arrangements(
    t: int, rows: np.ndarray, block: _Block, state: AccountState, ledger: _Ledger, standing: _Standing
) -> None:
    """An arrangement (rent plus a weekly top-up clearing the arrears in 6-18 months) is offered to contacted
    tenants whose arrears reach ARRANGEMENT_WEEKS and persist, and agreed by some (half as often during a shock)."""
    rng = block.rng
    offered = rows[(standing.arrears_weeks[rows] >= ARRANGEMENT_WEEKS) & standing.persistent[rows]
                   & ~state.arrangement_on[rows] & (t - state.arrangement_broken_on[rows] >= 56)
                   & (state.breathing_space_until[rows] <= t)]
    p_agree = block.tenancies.p_agree_arrangement[offered] * np.where(state.in_shock[offered], 0.5, 1.0)
    agreed = offered[rng.random(offered.size) < p_agree]
    if agreed.size:
        top_up = np.clip(np.rint(state.balance[agreed] / rng.uniform(26, 78, agreed.size) / 50) * 50, 370, 4000)
        state.arrangement_on[agreed] = True
        state.arrangement_top_up[agreed] = top_up
        state.arrangement_missed[agreed] = 0
        ledger.events.add(t, agreed, type=EVENT_CODE["arrangement_agreed"], amount=top_up,
                          note=NOTE_CODE["rent plus weekly top-up"])


def _take_payment_promises(
    t: int, rows: np.ndarray, block: _Block, state: AccountState, ledger: _Ledger, standing: _Standing
) -> None:
    """Other contacted tenants in arrears (not in a shock) sometimes promise a payment of part of what they owe
    within a week."""
    rng = block.rng
    rest = rows[(standing.arrears_weeks[rows] >= 1) & ~state.in_shock[rows] & ~state.arrangement_on[rows]]
    promised = rest[rng.random(rest.size) < 0.35 * block.tenancies.p_agree_arrangement[rest]]
    if promised.size:
        day = block.grid.roll[t + rng.integers(1, 8, promised.size)]
        method = block.one_off_method[promised]
        _enqueue(ledger.one_offs, day, promised, rng.uniform(0.2, 0.8, promised.size), np.ones(promised.size, bool),
                 np.full(promised.size, _PAYMENT), PAYMENT_REFERENCE[method], method, np.full(promised.size, RENT))


def _open_disputes(t: int, rows: np.ndarray, block: _Block, state: AccountState, ledger: _Ledger) -> None:
    """Disputes opened today: resolved in 2-17 weeks, some with the tenant withholding payment meanwhile."""
    rng = block.rng
    state.dispute_until[rows] = t + rng.integers(14, 121, rows.size)
    ledger.circumstances["disputes"].add(t, rows, resolve_on=state.dispute_until[rows])
    state.dispute_withholding[rows] = rng.random(rows.size) < 0.3
    amount = np.rint(state.weekly_rent_now[rows] * rng.uniform(0.5, 6.0, rows.size)).astype(np.int64)
    state.dispute_amount[rows] = amount
    ledger.events.add(t, rows, type=EVENT_CODE["dispute_opened"], amount=state.dispute_amount[rows],
                      note=NOTE_CODE[DISPUTE_TOPICS[0]] + rng.integers(0, len(DISPUTE_TOPICS), rows.size))


def _send_rent_statements(
    t: int, patches: np.ndarray, block: _Block, state: AccountState, ledger: _Ledger, standing: _Standing
) -> None:
    """The quarterly run of the ``patches`` sending statements today: to live tenancies a week or more in arrears."""
    rows = np.flatnonzero(standing.live & (standing.arrears_weeks >= 1) & np.isin(block.tenancies.patch, patches))
    ledger.events.add(t, rows, type=EVENT_CODE["rent_statement_sent"], amount=state.balance[rows],
                      note=NOTE_CODE["quarterly rent statement"])


def _charge_recharge_fees(t: int, rows: np.ndarray, block: _Block, state: AccountState, ledger: _Ledger) -> None:
    """Rechargeable repairs (£25-£250) added to the balance."""
    fee = (block.rng.integers(25, 251, rows.size) * 100).astype(np.int64)
    state.balance[rows] += fee
    ledger.transactions.add(t, rows, type=TRANSACTION_CODE["fee"], amount=fee, method=_NO_METHOD,
                            reference=REFERENCE_CODE["Rechargeable repair"])


def _refund_credits(t: int, rows: np.ndarray, state: AccountState, ledger: _Ledger) -> None:
    """The credit on these accounts paid back to the tenant."""
    amount = -state.balance[rows]
    state.balance[rows] = 0
    ledger.transactions.add(t, rows, type=TRANSACTION_CODE["refund"], amount=amount, method=_NO_METHOD,
                            reference=REFERENCE_CODE["Credit refund"])


def _legal_action(t: int, block: _Block, state: AccountState, ledger: _Ledger, standing: _Standing) -> None:
    """Cases close when the arrears are cleared. Large, persistent arrears (LEGAL_WEEKS) outside an arrangement,
    breathing space or a dispute are eligible for the next stage, at most every four weeks (a claim only after a
    proceedings warning, see `_warn_before_claims`)."""
    live, weeks, stage = standing.live, standing.arrears_weeks, state.legal_stage
    stage[live & (stage > 0) & (weeks < 1)] = 0  # arrears cleared: the case is closed
    threshold = np.where(stage == 0, LEGAL_WEEKS[0], LEGAL_WEEKS[1])
    eligible = np.flatnonzero(live & (stage < 5) & (weeks >= threshold) & standing.persistent & ~state.arrangement_on
                              & (state.breathing_space_until <= t) & (state.dispute_until < t)
                              & (t - state.legal_stage_day >= 28))
    if eligible.size:
        eligible = _warn_before_claims(t, eligible, state, ledger)
        _take_legal_steps(t, eligible, block, state, ledger)


def _warn_before_claims(t: int, eligible: np.ndarray, state: AccountState, ledger: _Ledger) -> np.ndarray:
    """Before a possession claim the landlord warns in writing, with a time limit: an eligible case at notice
    (stage 1) without a current warning (sent since the notice, in the last PROCEEDINGS_WARNING_VALID_DAYS) is sent
    one, and a claim may follow once it is PROCEEDINGS_WARNING_DAYS old. Returns the cases that may move on."""
    at_notice = state.legal_stage[eligible] == 1
    sent = state.proceedings_warning_day[eligible]
    current = (sent > state.legal_stage_day[eligible]) & (t - sent < PROCEEDINGS_WARNING_VALID_DAYS)
    warned = eligible[at_notice & ~current]
    if warned.size:
        state.proceedings_warning_day[warned] = t
        ledger.events.add(t, warned, type=EVENT_CODE["proceedings_warning_sent"], amount=state.balance[warned],
                          note=NOTE_CODE["warning of possession proceedings"])
    return eligible[~at_notice | (current & (t - sent >= PROCEEDINGS_WARNING_DAYS))]


def _take_legal_steps(t: int, eligible: np.ndarray, block: _Block, state: AccountState, ledger: _Ledger) -> None:
    """Eligible cases move a stage on at LEGAL_HAZARD (half for vulnerable tenants): a notice comes with a rent
    statement, the possession claim adds court costs, the fifth stage is eviction."""
    tenancies, stage = block.tenancies, state.legal_stage
    p_step = LEGAL_HAZARD[stage[eligible]] * np.where(tenancies.vulnerable[eligible], 0.5, 1.0)
    moved = eligible[block.rng.random(eligible.size) < p_step]
    stage[moved] += 1
    state.legal_stage_day[moved] = t
    ledger.events.add(t, moved, type=EVENT_CODE["legal_stage"], amount=state.balance[moved],
                      note=_LEGAL_NOTE[stage[moved] - 1, tenancies.tenure[moved]])
    noticed = moved[stage[moved] == 1]
    ledger.events.add(t, noticed, type=EVENT_CODE["rent_statement_sent"], amount=state.balance[noticed],
                      note=NOTE_CODE["rent statement with notice"])
    court = moved[stage[moved] == 2]
    state.balance[court] += COURT_COSTS
    ledger.transactions.add(t, court, type=TRANSACTION_CODE["fee"], amount=COURT_COSTS, method=_NO_METHOD,
                            reference=REFERENCE_CODE["Court costs"])
    evicted = moved[stage[moved] == 5]
    state.end[evicted] = t
    state.evicted[evicted] = True


def _request_managed_payments(t: int, block: _Block, state: AccountState, standing: _Standing) -> None:
    """UC claimants two months in arrears: the landlord requests managed payments (APA), which start 4-6 weeks on."""
    tenancies = block.tenancies
    rows = np.flatnonzero(standing.live & (state.apa_from >= NEVER) & (tenancies.uc_from <= t)
                          & (tenancies.uc_first_payment <= t) & (standing.arrears_weeks >= 8))
    if rows.size:
        requested = rows[block.rng.random(rows.size) < 1 / 30]
        state.apa_from[requested] = t + block.rng.integers(28, 43, requested.size)


# -- 8. move-outs, refunds and write-offs, former tenants' payments -------------------------------------------------


def _move_outs(t: int, block: _Block, state: AccountState, ledger: _Ledger) -> None:
    """Tenancies ending today: an apportionment credit for the unused part of the last rent period; any
    arrangement ends; 3-28 weeks later any credit is refunded or the debt (often) written off."""
    rows = np.flatnonzero(state.end == t)
    if rows.size:
        tenancies = block.tenancies
        last = state.last_charge_day[rows]
        period = np.where(block.monthly_rent[rows],
                          days_to_next_monthly(block.grid, np.maximum(last, 0), tenancies.rent_residue[rows]),
                          KIND_PERIOD[tenancies.rent_kind[rows]])
        unused = last + period - (t + 1)
        credit = np.where((last >= tenancies.start[rows]) & (unused > 0),
                          np.rint(state.last_charge_amount[rows] * unused / period), 0)
        _post_credits(t, rows, credit.astype(np.int64), "End of tenancy apportionment", state, ledger)
        state.arrangement_on[rows] = False
        state.settle_day[rows] = t + block.rng.integers(21, 200, rows.size)


def _settle_former_tenancies(t: int, block: _Block, state: AccountState, ledger: _Ledger) -> None:
    """Ended tenancies due to be settled today: credit is refunded; debt is written off (most small debts, about
    half of the larger ones) or left to be collected."""
    rows = np.flatnonzero(state.settle_day == t)
    if rows.size:
        state.settle_day[rows] = NEVER
        _refund_credits(t, rows[state.balance[rows] < 0], state, ledger)
        owing = rows[state.balance[rows] > 0]
        written = owing[block.rng.random(owing.size) < np.where(state.balance[owing] < 1000, 0.9, 0.55)]
        ledger.transactions.add(t, written, type=TRANSACTION_CODE["write_off"], amount=-state.balance[written],
                                method=_NO_METHOD, reference=REFERENCE_CODE["Former tenant arrears written off"])
        state.balance[written] = 0
        state.written_off[written] = True


def _former_tenant_payments(t: int, block: _Block, state: AccountState, ledger: _Ledger) -> None:
    """Former tenants with debt not written off now and then pay some of it (more often the keener payers)."""
    rows = np.flatnonzero((state.end < t) & (state.balance > 0) & ~state.written_off)
    if rows.size:
        rng = block.rng
        paying = rows[rng.random(rows.size) < block.tenancies.catchup_share[rows] / 45]
        amount = np.rint(state.balance[paying] * rng.uniform(0.1, 1.0, paying.size)).astype(np.int64)
        ok = amount > 0
        paying, amount = paying[ok], amount[ok]
        state.balance[paying] -= amount
        method = block.one_off_method[paying]
        ledger.transactions.add(t, paying, type=_PAYMENT, amount=-amount, method=method,
                                reference=PAYMENT_REFERENCE[method], allocation=RENT)
