"""A realistic synthetic rent-arrears portfolio, written to the feed contract.

`simulate_portfolio` returns a `Portfolio` (`simulator.model`): the three feeds a housing provider would export
(tenancies, transactions, events; see `features.feeds.contract`) plus the hidden ground truth that generated them.
`simulator.write.write_portfolio` writes the feeds to a delivery folder and the truth to a separate folder.

This describes the default shape, ``shape="weekly"``. ``shape="monthly_statement"`` (`simulator.statement`) is the
same population and behaviour exported as a letting agent would: every rent monthly on one statement day (the 1st),
irregular payment sums from each tenant's payment habit, and no events feed (``events`` is empty and no events file
is written); its truth also holds ``payment_habits`` and ``unexported_events`` (below).

What the portfolio contains
---------------------------
* **Tenancies** in 8-20 named patches ("North-1", "East-2", ...): mostly social housing (secure and assured
  tenancies, weekly rent on Mondays most common), some private lets (assured shorthold, mostly monthly) and
  temporary accommodation (licences). Rents are about £80-£250 a week. Some tenancies started years before the
  observation window, others move in during it (many into properties vacated in the window), and some move
  out (voluntarily, or rarely by eviction after legal action). ``reported_balance`` is the balance the housing
  system reports at the window end (``reported_balance_date`` is the window end for every tenancy, ended ones
  included): the feeds' balance, except for about 1% of live tenancies whose figure includes a charge never
  exported or a payment received after the export.
* **Transactions**: rent charges on every due date (rents rise each April); tenants' payments on their own pay
  cycle (weekly/fortnightly/four-weekly/monthly wages, pension or benefit days, direct-debit dates, Universal
  Credit payment dates); Housing Benefit paid to the landlord every four weeks; UC managed payments; the UC
  five-week wait for new claims; late, partial and missed payments; catch-up payments; arrangements (rent plus
  a weekly top-up); bounced direct debits (a payment then a positive adjustment); refunds of credit; court
  costs and recharge fees; apportionment credits and write-offs at move-out. Tenancies that started before the
  window open with an ``adjustment`` ("Opening balance") on its first day. Receipts carry an ``allocation``:
  ``rent``, or ``unallocated`` for the few tenant payments without a reference the landlord recognises (about
  0.3%), or ``deposit`` for the deposit-like receipt some private and temporary lets pay at move-in; other
  transactions leave it empty. All of them count in the balance.
* **Events**: officer contacts (``contact_made``, or ``contact_attempted`` when the attempt did not reach the
  tenant; retried within a few days, so attempts come in bursts), arrangements agreed / broken / completed,
  breathing space (a standard one: ``breathing_space_started`` then ``breathing_space_ended`` 60 days later; a
  mental health crisis moratorium: ``mental_health_moratorium_started``, ``crisis_treatment_ended``, then
  ``breathing_space_ended`` 30 days later), disputes, new benefit claims (``benefit_claim_made`` at the claim,
  ``benefit_claim_decided`` at the first payment), quarterly ``rent_statement_sent`` to tenancies in arrears
  (and with every notice), ``proceedings_warning_sent`` before a possession claim, and legal stages ("NOSP
  served", "Possession claim issued", ...), consistent with the transactions.
* **Ground truth** (never read by the pipeline): each tenancy's archetype (reliable, habitual_late, irregular,
  shock_prone, chronic) and latent propensities, shock episodes (job loss, reduced hours, illness, household
  change, benefit change) with their dates, UC claims, arrangements, the true periods of the circumstances a
  case is routed on before contact (breathing spaces, disputes, pending benefit claims, contact attempts), the
  receipts not allocated to rent, the housing system's reported balances, patches and, in dirty mode, every
  injected export fault.

Behaviour depends only on circumstances (benefit, payment method, tenure, vulnerability, ...) and the hidden
propensities. The monitoring-only columns (age_band, sex, ethnicity, disability) are drawn afterwards, from a
separate random stream, conditioned on circumstances: they correlate with arrears through circumstances, as in
real data, but changing them changes no transaction (unless a change injected on purpose is keyed on one of them,
below).

Changes from a date
-------------------
``changes`` (`simulator.changes.Change`) inject, from a date inside the window, a delay of benefit paid to the
landlord, a rent rise, an economic shock or a drop in one group's payments, each for a group of tenancies named by
tenancies-feed attributes (see `simulator.changes` for the kinds and the meaning of their sizes), so that drift, bias
and performance monitoring can be tested against a known truth. Groups are chosen on the portfolio without the
changes, whose monitoring-only attributes the changed portfolio keeps (the same people); extra shock episodes come
from a random stream of their own. Without changes the output is what it was before changes existed; with them,
everything dated before the first change's start is unchanged too.

Time
----
The observation window is ``[end_date - years, end_date]``; every transaction and event in the feeds is dated
inside it, except the ``benefit_claim_made`` event of a claim still pending at the window start, which keeps its
true date (an event history may reach back; only claims decided in the window or pending at its end have
events). The simulation itself starts 26 weeks earlier (a burn-in, so habits, arrears and arrangements are
already in motion): what happened then reaches the feeds only as the opening-balance adjustment, and the
ground truth (shocks, arrangements, breathing spaces, disputes, claims, contacts) may hold dates from the
burn-in or before. So a breathing space or dispute that started in the burn-in and is still running in the window
shows in the feed only by its end.

Ground truth (``portfolio.ground_truth``)
-----------------------------------------
* ``tenancies``: one row per tenancy: ``archetype``, ``sector`` (social / private / temporary), the latent
  propensities (``p_skip`` chance of missing a payment, ``p_partial`` of part-paying and the share paid,
  ``catchup_share`` / ``p_catchup`` for paying off arrears, ``p_keep_arrangement``, ``p_agree_arrangement``,
  ``shock_rate_per_year``, ``delay_base_days`` / ``delay_jitter_days`` for lateness, ``p_no_answer`` the chance
  an officer's attempt fails to reach the tenant), how and when they are paid (``pays_by``, ``pay_cycle``),
  benefit coverage and UC dates, the opening and closing balances, the legal stage reached, and how the tenancy
  ended (``end_reason``: live, moved_out, evicted);
* ``shocks``: one row per shock episode: ``tenancy_id, kind, start_date, end_date``, its severity, the chance
  of missing a payment and the share of income left during it, whether lost benefit was backdated, and any
  catch-up lump sum (tenant or Discretionary Housing Payment) after it;
* ``uc_claims``: Universal Credit claims with their reason (existing, move_in_new_claim, job_loss,
  managed_migration), claim start, first payment (35 days later for new claims) and managed payments;
* ``arrangements``: every arrangement with its agreed date, weekly top-up, end date and outcome;

The circumstances the readiness policy routes on, with their true periods from the engine's own record (each
period is ``[start, end)``; an end after the window end, i.e. not yet happened then, is NaT):

* ``breathing_space``: ``tenancy_id, kind`` (standard, mental_health_crisis), ``start_date``, ``end_date`` (the
  first day no longer in force: the day of ``breathing_space_ended``), ``treatment_end_date`` (a moratorium's
  crisis treatment end; NaT for a standard one);
* ``disputes``: ``tenancy_id, opened_date, resolved_date`` (NaT: still open at the window end);
* ``benefit_claims``: new claims, ``tenancy_id, benefit`` (housing_benefit, universal_credit), ``claim_date``,
  ``decided_date`` (the first payment: 35 days after a UC claim, the first HB run after assessment; NaT: still
  pending at the window end);
* ``contact_attempts``: every officer's attempt, ``tenancy_id, date, reached`` (False: a ``contact_attempted``
  event);
* ``allocations``: every receipt not allocated to rent, ``transaction_id, tenancy_id, posted_date, allocation``
  (unallocated, deposit); every other receipt is allocated to rent;
* ``reported_balances``: one row per tenancy, ``tenancy_id, reported_date`` (the window end),
  ``reported_balance`` (as in the tenancies feed), ``ledger_balance`` (the feeds' balance then), ``explained``
  (False where the two differ) and ``unexplained_reason`` (charge_not_exported, payment_not_exported);

and:

* ``patches``: patch weights, social-housing share, rent level, HB run day and any local employment shock;
* ``dirty_faults``: every injected export fault (empty unless ``dirty=True``);

and with changes only:

* ``changes``: one row per change, ``change`` (1, 2, ... in the order given), ``kind``, ``start_date``, ``group``
  (``attribute=value`` pairs joined by ':', or ``all``), ``size``, ``tenancies`` (how many are in the group and
  live on or after the start) and ``spec`` (the change as `simulator.changes.parse_change` reads it);
* ``change_tenancies``: ``change, tenancy_id``, the tenancies each change reaches;

and in the monthly-statement shape only:

* ``payment_habits``: one row per tenancy, ``habit`` (exact, round_sum, odd_sum) and its parameters
  (``round_fineness``, ``p_round_down``, ``odd_sum_sigma``, ``p_overpay``; see `simulator.statement`);
* ``unexported_events``: the events feed the weekly shape would have exported (the same columns): what officers
  did, which shaped the payments, though the export shows none of it.

The output is deterministic: the same arguments give identical frames and byte-identical files.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.feeds.contract import (
    ALLOCATIONS,
    BENEFIT_TYPES,
    EVENT_TYPES,
    EVENTS,
    RENT_FREQUENCIES,
    TENANCIES,
    TRANSACTION_TYPES,
    TRANSACTIONS,
)
from simulator.behaviour import NOTES, REFERENCES, UNEXPLAINED_GAPS, LedgerResult, simulate_ledger
from simulator.calendar import KIND_MONTHLY
from simulator.changes import Change, ChangeEffects, affected, check_window, inject
from simulator.faults import FAULT_COLUMNS, make_dirty
from simulator.model import SHAPES, Portfolio
from simulator.population import (
    AGE_BANDS,
    ARCHETYPES,
    B_HB,
    B_NONE,
    B_UC,
    CHANNELS,
    DISABILITY,
    ETHNICITIES,
    FAR_PAST,
    LANGUAGES,
    M_BENEFIT,
    METHODS,
    NEVER,
    SECTORS,
    SEXES,
    SHOCK_KINDS,
    TENURES,
    Population,
    draw_monitoring,
    draw_population,
)
from simulator.statement import HABITS, PaymentHabits, draw_payment_habits, to_monthly_statement
from simulator.suspense import add_income_feeds

#: Tenancies simulated together in one block (each block has its own random stream, so memory stays bounded).
BLOCK_SIZE = 50_000
UC_CLAIM_REASONS = ("existing", "move_in_new_claim", "job_loss", "managed_migration")
_KIND_NAMES = ("weekly", "fortnightly", "four_weekly", "monthly")
#: Order of transactions posted on the same day for the same tenancy.
_TYPE_RANK = {"charge": 1, "benefit": 2, "payment": 3, "adjustment": 4, "fee": 5, "refund": 6, "write_off": 7}


def window_start_for(end_date: date, years: float) -> date:
    """``end_date`` minus ``years``: whole years by the calendar, any fraction as days (365.25 per year)."""
    if years <= 0:
        raise ValueError("years must be positive")
    whole = int(years)
    try:
        start = end_date.replace(year=end_date.year - whole)
    except ValueError:  # 29 February
        start = end_date.replace(year=end_date.year - whole, day=28)
    return start - timedelta(days=int(round((years - whole) * 365.25)))


def simulate_portfolio(
    n_tenancies: int,
    years: float = 2.0,
    seed: int = 0,
    end_date: date = date(2026, 10, 31),
    dirty: bool = False,
    shape: str = "weekly",
    changes: Sequence[Change] = (),
    income: bool = True,
) -> Portfolio:
    """Simulate ``n_tenancies`` rent accounts over the window ``[end_date - years, end_date]``.

    ``shape`` is ``"weekly"`` (the default, described above) or ``"monthly_statement"`` (a letting agent's export:
    monthly rent on one statement day, irregular payment sums, no events feed; see `simulator.statement`).
    ``dirty=True`` then injects realistic export faults in known quantities (see `simulator.faults`),
    recorded one per row in ``ground_truth["dirty_faults"]``. ``changes`` (`simulator.changes.Change`, each
    starting inside the window) act on a group of tenancies from a date: a benefit delay, a rent rise, an economic
    shock, a group's payments dropping; recorded in ``ground_truth["changes"]`` and ``["change_tenancies"]``.
    Without changes the portfolio is the same as before there were any. ``income`` adds the income team's feeds,
    receipts in suspense and the DWP's schedules, moving the postings they imply (`simulator.suspense`).
    """
    return _simulate(n_tenancies, years, seed, end_date, dirty, shape=shape, changes=changes, income=income)


def _simulate(
    n_tenancies: int,
    years: float,
    seed: int,
    end_date: date,
    dirty: bool,
    monitoring_seed: int | None = None,
    shape: str = "weekly",
    changes: Sequence[Change] = (),
    income: bool = True,
) -> Portfolio:
    """`simulate_portfolio`, with the monitoring-only attributes optionally drawn from another seed (for tests
    showing those attributes do not reach behaviour)."""
    if n_tenancies < 1:
        raise ValueError("n_tenancies must be at least 1")
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}, not {shape!r}")
    window_start = window_start_for(end_date, years)
    changes = tuple(changes)
    check_window(changes, window_start, end_date)
    pop = draw_population(int(n_tenancies), window_start, end_date, seed)
    habits = None
    if shape == "monthly_statement":
        pop = to_monthly_statement(pop)
        habits = draw_payment_habits(pop.tenancies, np.random.default_rng([seed, 5]))
    result = _simulate_blocks(pop, seed, habits)
    monitoring_rng = np.random.default_rng([seed if monitoring_seed is None else monitoring_seed, 3])
    monitoring = _draw_monitoring(pop, result, monitoring_rng)
    tenancies = _tenancies_frame(pop, result, monitoring)
    effects = None
    if changes:  # the same people (groups, monitoring-only attributes), what the changes make happen to them
        pop, effects = inject(pop, tenancies, changes, seed)
        result = _simulate_blocks(pop, seed, habits, effects)
        tenancies = _tenancies_frame(pop, result, monitoring, effects)
    tenancy_ids = pa.array(tenancies["tenancy_id"].array)
    tenancy_ids = tenancy_ids if isinstance(tenancy_ids, pa.ChunkedArray) else pa.chunked_array([tenancy_ids])
    transactions, allocations = _transactions_frame(pop, result.transactions, tenancy_ids)
    events = _events_frame(pop, result.events, tenancy_ids, keep_from=pop.window_start_day)
    truth = _ground_truth(pop, result, tenancy_ids, allocations)
    if effects is not None:
        truth.update(_change_truth(pop, result, effects, tenancy_ids))
    if habits is not None:  # no events feed: what the officers did stays in the truth
        truth["payment_habits"] = _payment_habit_truth(habits, tenancy_ids)
        truth["unexported_events"] = events
        events = events.iloc[:0].copy()
    portfolio = Portfolio(tenancies, transactions, events, truth, window_start=window_start, window_end=end_date,
                          shape=shape)
    if income:
        portfolio = add_income_feeds(portfolio, seed)
    if dirty:
        portfolio = make_dirty(portfolio, np.random.default_rng([seed, 4]))
    return portfolio


def _simulate_blocks(
    pop: Population, seed: int, habits: PaymentHabits | None = None, changes: ChangeEffects | None = None
) -> LedgerResult:
    """The behaviour engine run block by block (BLOCK_SIZE tenancies, each block with its own random stream)."""
    blocks: list[tuple[int, LedgerResult]] = []
    for number, lo in enumerate(range(0, pop.n, BLOCK_SIZE)):
        hi = min(pop.n, lo + BLOCK_SIZE)
        rng = np.random.default_rng([seed, 2, number])
        block_habits = None if habits is None else habits.rows(slice(lo, hi))
        block_changes = None if changes is None else changes.rows(slice(lo, hi))
        blocks.append((lo, simulate_ledger(pop.block(lo, hi), pop.grid, pop.window_start_day, pop.last_day,
                                           pop.rent_change_days, rng, block_habits, block_changes)))
    return _merge_blocks(blocks)


# -- assembly ---------------------------------------------------------------------------------------------------


def _merge_blocks(blocks: list[tuple[int, LedgerResult]]) -> LedgerResult:
    """One result for all tenancies from per-block results (block-local indices shifted by the block start)."""
    if len(blocks) == 1:
        return blocks[0][1]
    per_tenancy = {name: np.concatenate([getattr(result, name) for _, result in blocks])
                   for name in ("end", "evicted", "apa_from", "opening_balance", "closing_balance", "legal_stage",
                                "written_off", "last_charge", "reported_balance", "unexplained")}
    return LedgerResult(
        transactions=_concat_records([(lo, result.transactions) for lo, result in blocks]),
        events=_concat_records([(lo, result.events) for lo, result in blocks]),
        circumstances={name: _concat_records([(lo, result.circumstances[name]) for lo, result in blocks])
                       for name in blocks[0][1].circumstances},
        **per_tenancy,
    )


def _concat_records(parts: list[tuple[int, dict[str, np.ndarray]]]) -> dict[str, np.ndarray]:
    """Record columns of several blocks joined, each block's tenancy indices shifted by its first tenancy."""
    return {
        column: np.concatenate([records[column] + lo if column == "tenancy" else records[column]
                                for lo, records in parts])
        for column in parts[0][1]
    }


#: Rows per Arrow chunk when building text columns (keeps each chunk well under Arrow's 2 GB string limit).
_CHUNK = 8_000_000


def id_strings(prefix: str, numbers: np.ndarray, width: int) -> pa.ChunkedArray:
    """``prefix`` + zero-padded numbers, e.g. T000001, as Arrow strings (vectorised, fine for 100M ids)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    chunks = []
    for lo in range(0, max(len(numbers), 1), _CHUNK):
        digits = pc.utf8_lpad(pa.array(numbers[lo:lo + _CHUNK]).cast(pa.string()), width=width, padding="0")
        chunks.append(pc.binary_join_element_wise(pa.scalar(prefix), digits, ""))
    return pa.chunked_array(chunks, type=pa.string())


def _take(values: pa.ChunkedArray, rows: np.ndarray) -> pa.ChunkedArray:
    """``values[rows]``, chunk by chunk."""
    values = values.cast(pa.string())
    values = values.combine_chunks() if values.num_chunks > 1 else values.chunk(0)
    return pa.chunked_array(
        [values.take(pa.array(rows[lo:lo + _CHUNK])) for lo in range(0, max(len(rows), 1), _CHUNK)], type=pa.string())


def _string_series(strings: pa.Array | pa.ChunkedArray) -> pd.Series:
    """Arrow strings as a ``string[pyarrow]`` series (no copy)."""
    return pd.Series(pd.arrays.ArrowStringArray(
        pa.chunked_array([strings]) if isinstance(strings, pa.Array) else strings))


def _dates(pop: Population, days: np.ndarray) -> np.ndarray:
    """Day indices as datetime64[ns]; NEVER → NaT."""
    days = np.asarray(days)
    out = (np.datetime64(pop.grid.start, "D") + np.where(days >= NEVER, 0, days)).astype("datetime64[ns]")
    out[days >= NEVER] = np.datetime64("NaT")
    return out


def _known_dates(pop: Population, days: np.ndarray) -> np.ndarray:
    """Like `_dates`, with FAR_PAST (since before the simulation: date unknown) also NaT."""
    return _dates(pop, np.where(days <= FAR_PAST, NEVER, days))


def _cat(codes: np.ndarray, categories: tuple[str, ...] | list[str]) -> pd.Categorical:
    """Codes as a categorical of the vocabulary ``categories`` (code -1: missing)."""
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int64), categories=list(categories))


def _final_state(
    pop: Population, result: LedgerResult, changes: ChangeEffects | None = None
) -> dict[str, np.ndarray]:
    """Circumstances as recorded at the end of the window (or at move-out); the rent with any injected rise."""
    tenancies = pop.tenancies
    end = result.end
    as_of = np.minimum(end, pop.last_day)
    on_uc = tenancies.uc_from <= as_of
    on_hb = ~on_uc & (tenancies.hb_from <= as_of) & (as_of < tenancies.hb_to)
    benefit = np.where(on_uc, B_UC, np.where(on_hb, B_HB, B_NONE))
    apa = on_uc & (result.apa_from <= as_of)
    full_hb = on_hb & (tenancies.hb_coverage >= 0.999)
    method = np.where(apa | full_hb, M_BENEFIT, tenancies.pay_method)
    # The rent in force: the current rent for a live tenancy, the last rent charged for one that has ended.
    rent_day = np.where((end < NEVER) & (result.last_charge >= 0), result.last_charge, as_of)
    rent_year = np.where(tenancies.rent_kind == KIND_MONTHLY,
                         np.searchsorted(pop.rent_change_days["monthly"], rent_day, side="right"),
                         np.searchsorted(pop.rent_change_days["periodic"], rent_day, side="right"))
    rent = tenancies.rent_by_year[np.arange(pop.n), rent_year]
    if changes is not None and changes.rent_rise_days:  # as the engine sets the rent in force
        rent = np.rint(rent * changes.rent_factor(rent_day)).astype(np.int64)
    return {"benefit": benefit, "payment_method": method, "rent": rent, "end": end, "apa": apa}


def _draw_monitoring(pop: Population, result: LedgerResult, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The monitoring-only attributes, drawn given the circumstances recorded at the window end."""
    tenancies = pop.tenancies
    state = _final_state(pop, result)
    return draw_monitoring(
        {"benefit": state["benefit"], "payment_method": state["payment_method"], "channel": tenancies.channel,
         "tenure": tenancies.tenure, "vulnerable": tenancies.vulnerable, "language": tenancies.language,
         "patch": tenancies.patch},
        len(pop.patches), rng,
    )


def _tenancies_frame(
    pop: Population, result: LedgerResult, monitoring: dict[str, np.ndarray], changes: ChangeEffects | None = None
) -> pd.DataFrame:
    """The tenancies feed: circumstances as at the window end, with the monitoring attributes given."""
    tenancies = pop.tenancies
    state = _final_state(pop, result, changes)
    ids = id_strings("T", np.arange(1, pop.n + 1), max(6, len(str(pop.n))))
    n_properties = int(tenancies.property_number.max())
    property_ids = id_strings("P", tenancies.property_number, max(6, len(str(n_properties))))
    frame = pd.DataFrame({
        "tenancy_id": _string_series(ids),
        "patch": _cat(tenancies.patch, pop.patches),
        "start_date": _dates(pop, tenancies.start),
        "end_date": _dates(pop, state["end"]),
        "rent_amount": state["rent"] / 100.0,
        "rent_frequency": _cat(tenancies.rent_kind, RENT_FREQUENCIES),
        "property_id": _string_series(property_ids),
        "tenure_type": _cat(tenancies.tenure, TENURES),
        "benefit_type": _cat(state["benefit"], BENEFIT_TYPES),
        "payment_method": _cat(state["payment_method"], METHODS),
        "preferred_channel": _cat(tenancies.channel, CHANNELS),
        "language": _cat(tenancies.language, LANGUAGES),
        "vulnerable": tenancies.vulnerable.astype(bool),
        "age_band": _cat(monitoring["age_band"], AGE_BANDS),
        "sex": _cat(monitoring["sex"], SEXES),
        "ethnicity": _cat(monitoring["ethnicity"], ETHNICITIES),
        "disability": _cat(monitoring["disability"], DISABILITY),
        "reported_balance": result.reported_balance / 100.0,
        "reported_balance_date": _dates(pop, np.full(pop.n, pop.last_day)),
    })
    # Every contract column but the register's version date: a simulated tenancy is exported as one version.
    assert list(frame.columns) == [c for c in TENANCIES.columns if c != "valid_from"]
    return frame


def _transactions_frame(
    pop: Population, records: dict[str, np.ndarray], tenancy_ids: pa.ChunkedArray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The transactions feed from the engine's ``records``, sorted by date, tenancy and posting order, and the
    ``allocations`` truth: the engine's allocation of every receipt not allocated to rent. Consumes (empties)
    ``records``."""
    rank = np.array([_TYPE_RANK[name] for name in TRANSACTION_TYPES], dtype=np.int64)[records["type"]]
    rank[records["reference"] == REFERENCES.index("Opening balance")] = 0
    key = (records["day"].astype(np.int64) * (pop.n + 1) + records["tenancy"]) * 8 + rank
    del rank
    order = np.argsort(key, kind="stable")
    del key
    count = len(order)
    numbers = np.arange(1, count + 1)
    id_width = max(9, len(str(count)))
    tenancy, day, allocation = (records.pop(column)[order] for column in ("tenancy", "day", "allocation"))
    columns = {
        "transaction_id": _string_series(id_strings("X", numbers, id_width)),
        "tenancy_id": _string_series(_take(tenancy_ids, tenancy)),
        "posted_date": _dates(pop, day),
        "type": _cat(records.pop("type")[order], TRANSACTION_TYPES),
        "amount": records.pop("amount")[order] / 100.0,
        "method": _cat(records.pop("method")[order], METHODS),
        "reference": _cat(records.pop("reference")[order], REFERENCES),
        "allocation": _cat(allocation, ALLOCATIONS),
    }
    frame = pd.DataFrame(columns, copy=False)
    assert list(frame.columns) == list(TRANSACTIONS.columns)
    other = np.flatnonzero(allocation > ALLOCATIONS.index("rent"))
    allocations = pd.DataFrame({
        "transaction_id": _string_series(id_strings("X", numbers[other], id_width)),
        "tenancy_id": _string_series(_take(tenancy_ids, tenancy[other])),
        "posted_date": _dates(pop, day[other]),
        "allocation": _cat(allocation[other], ALLOCATIONS),
    })
    return frame, allocations


def _events_frame(
    pop: Population, events: dict[str, np.ndarray], tenancy_ids: pa.ChunkedArray, keep_from: int
) -> pd.DataFrame:
    """The events feed (events from day ``keep_from`` on, and claims still pending then), sorted by date, tenancy
    and event type."""
    kept = np.flatnonzero((events["day"] >= keep_from) | (events["type"] == EVENT_TYPES.index("benefit_claim_made")))
    key = ((events["day"][kept].astype(np.int64) * (pop.n + 1) + events["tenancy"][kept]) * len(EVENT_TYPES)
           + events["type"][kept])
    order = kept[np.argsort(key, kind="stable")]
    count = len(order)
    amount = events["amount"][order] / 100.0
    frame = pd.DataFrame({
        "event_id": _string_series(id_strings("E", np.arange(1, count + 1), max(8, len(str(count))))),
        "tenancy_id": _string_series(_take(tenancy_ids, events["tenancy"][order])),
        "event_date": _dates(pop, events["day"][order]),
        "type": _cat(events["type"][order], EVENT_TYPES),
        "amount": np.round(amount, 2),
        "note": _cat(events["note"][order], NOTES),
    })
    assert list(frame.columns) == list(EVENTS.columns)
    return frame


# -- ground truth -------------------------------------------------------------------------------------------------


def _ground_truth(
    pop: Population, result: LedgerResult, tenancy_ids: pa.ChunkedArray, allocations: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """The hidden truth behind the feeds (see the module docstring); ``dirty_faults`` is filled by make_dirty."""
    circumstances = {name: _by_tenancy(records) for name, records in result.circumstances.items()}
    return {
        "tenancies": _tenancy_truth(pop, result, tenancy_ids),
        "shocks": _shock_truth(pop, tenancy_ids),
        "uc_claims": _uc_claim_truth(pop, result, tenancy_ids),
        "arrangements": _arrangements(pop, result.events, tenancy_ids),
        "breathing_space": _breathing_space_truth(pop, circumstances["breathing_spaces"], tenancy_ids),
        "disputes": _dispute_truth(pop, circumstances["disputes"], tenancy_ids),
        "benefit_claims": _benefit_claim_truth(pop, circumstances["benefit_claims"], tenancy_ids),
        "contact_attempts": _contact_truth(pop, circumstances["contacts"], tenancy_ids),
        "allocations": allocations,
        "reported_balances": _reported_balance_truth(pop, result, tenancy_ids),
        "patches": pop.patch_table.copy(),
        "dirty_faults": pd.DataFrame({column: pd.Series(dtype=np.int64 if column in ("row", "line") else object)
                                      for column in FAULT_COLUMNS}),
    }


def _change_truth(
    pop: Population, result: LedgerResult, effects: ChangeEffects, tenancy_ids: pa.ChunkedArray
) -> dict[str, pd.DataFrame]:
    """The injected changes (``changes``: one row each) and the tenancies each reaches (``change_tenancies``)."""
    reached = [np.flatnonzero(affected(injected, result.end)) for injected in effects.changes]
    numbers = np.arange(1, len(effects.changes) + 1)
    changes = [injected.change for injected in effects.changes]
    return {
        "changes": pd.DataFrame({
            "change": numbers,
            "kind": [change.kind for change in changes],
            "start_date": _dates(pop, np.array([injected.start_day for injected in effects.changes])),
            "group": [change.group_text for change in changes],
            "size": np.array([change.size for change in changes], dtype=float),
            "tenancies": np.array([len(rows) for rows in reached], dtype=np.int64),
            "spec": [change.spec() for change in changes],
        }),
        "change_tenancies": pd.DataFrame({
            "change": np.repeat(numbers, [len(rows) for rows in reached]).astype(np.int64),
            "tenancy_id": _string_series(_take(tenancy_ids, np.concatenate(reached).astype(np.int64))),
        }),
    }


def _tenancy_truth(pop: Population, result: LedgerResult, tenancy_ids: pa.ChunkedArray) -> pd.DataFrame:
    """One row per tenancy: archetype, propensities, how and when it is paid, balances and how it ended."""
    tenancies = pop.tenancies
    claimed_uc = tenancies.uc_from < NEVER
    end_reason = np.where(result.evicted, "evicted", np.where(result.end < NEVER, "moved_out", "live"))
    return pd.DataFrame({
        "tenancy_id": _string_series(tenancy_ids),
        "archetype": _cat(tenancies.archetype, ARCHETYPES),
        "sector": _cat(tenancies.sector, SECTORS),
        "p_skip": tenancies.p_skip,
        "p_partial": tenancies.p_partial,
        "partial_share_low": tenancies.partial_share_low,
        "partial_share_high": tenancies.partial_share_high,
        "catchup_share": tenancies.catchup_share,
        "p_catchup": tenancies.p_catchup,
        "p_keep_arrangement": tenancies.p_keep_arrangement,
        "p_agree_arrangement": tenancies.p_agree_arrangement,
        "shock_rate_per_year": tenancies.shock_rate,
        "shock_count": tenancies.shock_count,
        "delay_base_days": tenancies.delay_base_days,
        "delay_jitter_days": tenancies.delay_jitter_days,
        "p_no_answer": tenancies.p_no_answer,
        "pays_in_advance": tenancies.pays_ahead,
        "pays_by": _cat(tenancies.pay_method, METHODS),
        "pay_cycle": _cat(np.where(tenancies.uc_from <= FAR_PAST, 4, tenancies.pay_cycle_kind),
                          (*_KIND_NAMES, "uc_monthly")),
        "benefit_at_start": _cat(tenancies.benefit_at_start, BENEFIT_TYPES),
        "hb_coverage": np.where(tenancies.hb_from < NEVER, tenancies.hb_coverage, np.nan),
        "uc_coverage": np.where(claimed_uc, tenancies.uc_coverage, np.nan),
        "uc_claim_start": _known_dates(pop, tenancies.uc_from),
        "uc_first_payment": _known_dates(pop, tenancies.uc_first_payment),
        "managed_payment_from": _known_dates(pop, result.apa_from),
        "legacy_arrears_weeks": tenancies.legacy_arrears_weeks,
        "opening_balance": result.opening_balance / 100.0,
        "closing_balance": result.closing_balance / 100.0,
        "legal_stage": result.legal_stage,
        "evicted": result.evicted,
        "written_off": result.written_off,
        "end_reason": pd.Categorical(end_reason, categories=["live", "moved_out", "evicted"]),
    })


def _payment_habit_truth(habits: PaymentHabits, tenancy_ids: pa.ChunkedArray) -> pd.DataFrame:
    """One row per tenancy of a monthly-statement portfolio: its payment habit and the habit's parameters."""
    return pd.DataFrame({
        "tenancy_id": _string_series(tenancy_ids),
        "habit": _cat(habits.habit, HABITS),
        "round_fineness": habits.round_fineness,
        "p_round_down": habits.p_round_down,
        "odd_sum_sigma": habits.odd_sum_sigma,
        "p_overpay": habits.p_overpay,
    })


def _shock_truth(pop: Population, tenancy_ids: pa.ChunkedArray) -> pd.DataFrame:
    """One row per shock episode, with any catch-up lump sum after it."""
    tenancies = pop.tenancies
    rows, slots = np.nonzero(tenancies.shock_kind >= 0)
    lump_day = tenancies.shock_lump_day[rows, slots]
    lump_type = np.where(lump_day >= NEVER, None, np.where(tenancies.shock_lump_is_dhp[rows, slots],
                                                           "discretionary_housing_payment", "tenant_lump_sum"))
    return pd.DataFrame({
        "tenancy_id": _string_series(_take(tenancy_ids, rows)),
        "kind": _cat(tenancies.shock_kind[rows, slots], SHOCK_KINDS),
        "start_date": _dates(pop, tenancies.shock_start[rows, slots]),
        "end_date": _dates(pop, tenancies.shock_end[rows, slots]),
        "severity": tenancies.shock_severity[rows, slots],
        "p_miss_payment": tenancies.shock_p_miss[rows, slots],
        "income_factor": tenancies.shock_income_factor[rows, slots],
        "benefit_backdated": tenancies.shock_backdated[rows, slots],
        "local_employment_shock": tenancies.shock_local_employment[rows, slots],
        "catch_up_date": _dates(pop, lump_day),
        "catch_up_type": pd.Categorical(lump_type, categories=["tenant_lump_sum", "discretionary_housing_payment"]),
    })


def _uc_claim_truth(pop: Population, result: LedgerResult, tenancy_ids: pa.ChunkedArray) -> pd.DataFrame:
    """One row per Universal Credit claim."""
    tenancies = pop.tenancies
    claim = np.flatnonzero(tenancies.uc_from < NEVER)
    return pd.DataFrame({
        "tenancy_id": _string_series(_take(tenancy_ids, claim)),
        "benefit": "universal_credit",
        "reason": _cat(tenancies.uc_claim_reason[claim], UC_CLAIM_REASONS),
        "claim_start": _known_dates(pop, tenancies.uc_from[claim]),
        "first_payment": _known_dates(pop, tenancies.uc_first_payment[claim]),
        "managed_payment_from": _known_dates(pop, result.apa_from[claim]),
        "advance_repaid_date": _known_dates(pop, tenancies.uc_advance_day[claim]),
    })


def _arrangements(pop: Population, events: dict[str, np.ndarray], tenancy_ids: pa.ChunkedArray) -> pd.DataFrame:
    """Every arrangement (including ones agreed before the window) with how it ended: each agreed event is closed
    by the tenancy's next arrangement event if that is a broken or completed one."""
    types = [EVENT_TYPES.index(name) for name in ("arrangement_agreed", "arrangement_broken", "arrangement_completed")]
    selected = np.flatnonzero(np.isin(events["type"], types))
    order = selected[np.lexsort((events["type"][selected], events["day"][selected], events["tenancy"][selected]))]
    tenancy, day, kind, amount = (events[column][order] for column in ("tenancy", "day", "type", "amount"))
    agreed = np.flatnonzero(kind == types[0])
    following = agreed + 1
    has_following = following < len(tenancy)
    following = np.minimum(following, max(len(tenancy) - 1, 0))
    closes = has_following & (tenancy[following] == tenancy[agreed]) & (kind[following] != types[0])
    outcome = np.where(closes, np.where(kind[following] == types[1], "broken", "completed"), "open")
    ended = np.where(closes, day[following], NEVER)
    return pd.DataFrame({
        "tenancy_id": _string_series(_take(tenancy_ids, tenancy[agreed])),
        "agreed_date": _dates(pop, day[agreed]),
        "weekly_top_up": amount[agreed] / 100.0,
        "ended_date": _dates(pop, ended),
        "outcome": pd.Categorical(outcome, categories=["open", "broken", "completed"]),
    })


def _by_tenancy(records: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Record columns in tenancy then day order."""
    order = np.lexsort((records["day"], records["tenancy"]))
    return {column: values[order] for column, values in records.items()}


def _happened(pop: Population, days: np.ndarray) -> np.ndarray:
    """Days as dates, NaT for days after the window end (what had not happened by then); negative (none) → NaT."""
    days = np.asarray(days)
    return _dates(pop, np.where((days > pop.last_day) | (days < 0), NEVER, days))


def _breathing_space_truth(pop: Population, spaces: dict[str, np.ndarray], tenancy_ids: pa.ChunkedArray
                           ) -> pd.DataFrame:
    """One row per breathing space, from the engine's record of them (see the module docstring)."""
    return pd.DataFrame({
        "tenancy_id": _string_series(_take(tenancy_ids, spaces["tenancy"])),
        "kind": pd.Categorical(np.where(spaces["crisis"], "mental_health_crisis", "standard"),
                               categories=["standard", "mental_health_crisis"]),
        "start_date": _dates(pop, spaces["day"]),
        "end_date": _happened(pop, spaces["until"]),
        "treatment_end_date": _happened(pop, spaces["treatment_end"]),
    })


def _dispute_truth(pop: Population, disputes: dict[str, np.ndarray], tenancy_ids: pa.ChunkedArray) -> pd.DataFrame:
    """One row per dispute, from the engine's record of them: opened, and resolved (NaT: still open at the window
    end)."""
    return pd.DataFrame({
        "tenancy_id": _string_series(_take(tenancy_ids, disputes["tenancy"])),
        "opened_date": _dates(pop, disputes["day"]),
        "resolved_date": _happened(pop, disputes["resolve_on"]),
    })


def _benefit_claim_truth(pop: Population, claims: dict[str, np.ndarray], tenancy_ids: pa.ChunkedArray
                         ) -> pd.DataFrame:
    """One row per new benefit claim made in the simulation: made, and decided (its first payment; NaT: still
    pending at the window end)."""
    return pd.DataFrame({
        "tenancy_id": _string_series(_take(tenancy_ids, claims["tenancy"])),
        "benefit": pd.Categorical(np.asarray(BENEFIT_TYPES)[claims["benefit"]],
                                  categories=["housing_benefit", "universal_credit"]),
        "claim_date": _dates(pop, claims["day"]),
        "decided_date": _happened(pop, claims["decided_on"]),
    })


def _contact_truth(pop: Population, contacts: dict[str, np.ndarray], tenancy_ids: pa.ChunkedArray) -> pd.DataFrame:
    """One row per officer's contact attempt: its date and whether it reached the tenant."""
    return pd.DataFrame({
        "tenancy_id": _string_series(_take(tenancy_ids, contacts["tenancy"])),
        "date": _dates(pop, contacts["day"]),
        "reached": contacts["reached"],
    })


def _reported_balance_truth(pop: Population, result: LedgerResult, tenancy_ids: pa.ChunkedArray) -> pd.DataFrame:
    """One row per tenancy: the balance the housing system reports, the ledger's (the feeds') balance, and whether
    the feeds explain the difference (and if not, why they do not)."""
    return pd.DataFrame({
        "tenancy_id": _string_series(tenancy_ids),
        "reported_date": _dates(pop, np.full(pop.n, pop.last_day)),
        "reported_balance": result.reported_balance / 100.0,
        "ledger_balance": result.closing_balance / 100.0,
        "explained": result.unexplained < 0,
        "unexplained_reason": _cat(result.unexplained, UNEXPLAINED_GAPS),
    })


__all__ = ["Portfolio", "simulate_portfolio", "window_start_for"]
