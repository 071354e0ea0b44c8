"""A realistic synthetic rent-arrears portfolio, written to the feed contract.

`simulate_portfolio` returns a `Portfolio` (`simulator.model`): the three feeds a housing provider would export
(tenancies, transactions, events; see `features.feeds.contract`) plus the hidden ground truth that generated them.
`simulator.write.write_portfolio` writes the feeds to a delivery folder and the truth to a separate folder.

What the portfolio contains
---------------------------
* **Tenancies** in 8-20 named patches ("North-1", "East-2", ...): mostly social housing (secure and assured
  tenancies, weekly rent on Mondays most common), some private lets (assured shorthold, mostly monthly) and
  temporary accommodation (licences). Rents are about £80-£250 a week. Some tenancies started years before the
  observation window, others move in during it (many into properties vacated in the window), and some move
  out (voluntarily, or rarely by eviction after legal action).
* **Transactions**: rent charges on every due date (rents rise each April); tenants' payments on their own pay
  cycle (weekly/fortnightly/four-weekly/monthly wages, pension or benefit days, direct-debit dates, Universal
  Credit payment dates); Housing Benefit paid to the landlord every four weeks; UC managed payments; the UC
  five-week wait for new claims; late, partial and missed payments; catch-up payments; arrangements (rent plus
  a weekly top-up); bounced direct debits (a payment then a positive adjustment); refunds of credit; court
  costs and recharge fees; apportionment credits and write-offs at move-out. Tenancies that started before the
  window open with an ``adjustment`` ("Opening balance") on its first day.
* **Events**: officer contacts, arrangements agreed / broken / completed, breathing space, disputes, and legal
  stages ("NOSP served", "Possession claim issued", ...), consistent with the transactions.
* **Ground truth** (never read by the pipeline): each tenancy's archetype (reliable, habitual_late, irregular,
  shock_prone, chronic) and latent propensities, shock episodes (job loss, reduced hours, illness, household
  change, benefit change) with their dates, UC claims, arrangements, patches and, in dirty mode, every injected
  export fault.

Behaviour depends only on circumstances (benefit, payment method, tenure, vulnerability, ...) and the hidden
propensities. The monitoring-only columns (age_band, sex, ethnicity, disability) are drawn afterwards, from a
separate random stream, conditioned on circumstances: they correlate with arrears through circumstances, as in
real data, but changing them changes no transaction.

Time
----
The observation window is ``[end_date - years, end_date]``; every transaction and event in the feeds is dated
inside it. The simulation itself starts 26 weeks earlier (a burn-in, so habits, arrears and arrangements are
already in motion): what happened then reaches the feeds only as the opening-balance adjustment, and the
ground truth (shocks, arrangements, claims) may hold dates from the burn-in or before.

Ground truth (``portfolio.ground_truth``)
-----------------------------------------
* ``tenancies``: one row per tenancy: ``archetype``, ``sector`` (social / private / temporary), the latent
  propensities (``p_skip`` chance of missing a payment, ``p_partial`` of part-paying and the share paid,
  ``catchup_share`` / ``p_catchup`` for paying off arrears, ``p_keep_arrangement``, ``p_agree_arrangement``,
  ``shock_rate_per_year``, ``delay_base_days`` / ``delay_jitter_days`` for lateness), how and when they are paid
  (``pays_by``, ``pay_cycle``), benefit coverage and UC dates, the opening and closing balances, the legal
  stage reached, and how the tenancy ended (``end_reason``: live, moved_out, evicted);
* ``shocks``: one row per shock episode: ``tenancy_id, kind, start_date, end_date``, its severity, the chance
  of missing a payment and the share of income left during it, whether lost benefit was backdated, and any
  catch-up lump sum (tenant or Discretionary Housing Payment) after it;
* ``uc_claims``: Universal Credit claims with their reason (existing, move_in_new_claim, job_loss,
  managed_migration), claim start, first payment (35 days later for new claims) and managed payments;
* ``arrangements``: every arrangement with its agreed date, weekly top-up, end date and outcome;
* ``patches``: patch weights, social-housing share, rent level, HB run day and any local employment shock;
* ``dirty_faults``: every injected export fault (empty unless ``dirty=True``).

The output is deterministic: the same arguments give identical frames and byte-identical files.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.feeds.contract import (
    BENEFIT_TYPES,
    EVENT_TYPES,
    EVENTS,
    RENT_FREQUENCIES,
    TENANCIES,
    TRANSACTION_TYPES,
    TRANSACTIONS,
)
from simulator.behaviour import NOTES, REFERENCES, LedgerResult, simulate_ledger
from simulator.calendar import KIND_MONTHLY
from simulator.faults import FAULT_COLUMNS, make_dirty
from simulator.model import Portfolio
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

#: Tenancies simulated together in one block (each block has its own random stream, so memory stays bounded).
BLOCK_SIZE = 50_000
FEEDS = ("tenancies", "transactions", "events")
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
) -> Portfolio:
    """Simulate ``n_tenancies`` rent accounts over the window ``[end_date - years, end_date]``.

    ``dirty=True`` then injects realistic export faults in known quantities (see `simulator.faults`),
    recorded one per row in ``ground_truth["dirty_faults"]``.
    """
    return _simulate(n_tenancies, years, seed, end_date, dirty)


def _simulate(
    n_tenancies: int,
    years: float,
    seed: int,
    end_date: date,
    dirty: bool,
    monitoring_seed: int | None = None,
) -> Portfolio:
    """`simulate_portfolio`, with the monitoring-only attributes optionally drawn from another seed (for tests
    showing those attributes do not reach behaviour)."""
    if n_tenancies < 1:
        raise ValueError("n_tenancies must be at least 1")
    ws = window_start_for(end_date, years)
    pop = draw_population(int(n_tenancies), ws, end_date, seed)
    blocks: list[tuple[int, LedgerResult]] = []
    for b, lo in enumerate(range(0, pop.n, BLOCK_SIZE)):
        hi = min(pop.n, lo + BLOCK_SIZE)
        rng = np.random.default_rng([seed, 2, b])
        blocks.append((lo, simulate_ledger(pop.block(lo, hi), pop.grid, pop.window_start_day, pop.last_day,
                                           pop.rent_change_days, rng)))
    result = _merge_blocks(blocks, pop.n)
    del blocks
    mon_rng = np.random.default_rng([seed if monitoring_seed is None else monitoring_seed, 3])
    tenancies, state = _tenancies_frame(pop, result, mon_rng)
    ten_ids = pa.array(tenancies["tenancy_id"].array)
    ten_ids = ten_ids if isinstance(ten_ids, pa.ChunkedArray) else pa.chunked_array([ten_ids])
    transactions = _transactions_frame(pop, result.transactions, ten_ids)
    events_all = _events_frame(pop, result.events, ten_ids, keep_from=pop.window_start_day)
    truth = _ground_truth(pop, result, state, ten_ids)
    portfolio = Portfolio(tenancies, transactions, events_all, truth, window_start=ws, window_end=end_date)
    if dirty:
        portfolio = make_dirty(portfolio, np.random.default_rng([seed, 4]))
    return portfolio


# -- assembly ---------------------------------------------------------------------------------------------------


def _merge_blocks(blocks: list[tuple[int, LedgerResult]], n: int) -> LedgerResult:
    """One result for all tenancies from per-block results (block-local indices shifted by the block start)."""
    if len(blocks) == 1:
        return blocks[0][1]

    def cat(getter, offset_idx: bool = False) -> dict[str, np.ndarray]:
        keys = getter(blocks[0][1]).keys()
        out = {}
        for k in keys:
            parts = []
            for lo, res in blocks:
                arr = getter(res)[k]
                parts.append(arr + lo if (offset_idx and k == "tenancy") else arr)
            out[k] = np.concatenate(parts)
        return out

    per_tenancy = {f: np.concatenate([getattr(res, f) for _, res in blocks])
                   for f in ("end", "evicted", "apa_from", "opening_balance", "closing_balance", "legal_stage",
                             "written_off", "last_charge")}
    return LedgerResult(
        transactions=cat(lambda r: r.transactions, True), events=cat(lambda r: r.events, True), **per_tenancy
    )


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


def _take(values: pa.ChunkedArray, idx: np.ndarray) -> pa.ChunkedArray:
    """``values[idx]``, chunk by chunk."""
    values = values.cast(pa.string())
    values = values.combine_chunks() if values.num_chunks > 1 else values.chunk(0)
    return pa.chunked_array([values.take(pa.array(idx[lo:lo + _CHUNK])) for lo in range(0, max(len(idx), 1), _CHUNK)],
                            type=pa.string())


def _string_series(arr: pa.Array | pa.ChunkedArray) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([arr]) if isinstance(arr, pa.Array) else arr))


def _dates(pop: Population, days: np.ndarray) -> np.ndarray:
    days = np.asarray(days)
    out = (np.datetime64(pop.grid.start, "D") + np.where(days >= NEVER, 0, days)).astype("datetime64[ns]")
    out[days >= NEVER] = np.datetime64("NaT")
    return out


def _cat(codes: np.ndarray, categories: tuple[str, ...] | list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int64), categories=list(categories))


def _final_state(pop: Population, result: LedgerResult) -> dict[str, np.ndarray]:
    """Circumstances as recorded at the end of the window (or at move-out)."""
    tenancies = pop.tenancies
    end = result.end
    f = np.minimum(end, pop.last_day)
    on_uc = tenancies.uc_from <= f
    on_hb = ~on_uc & (tenancies.hb_from <= f) & (f < tenancies.hb_to)
    benefit = np.where(on_uc, B_UC, np.where(on_hb, B_HB, B_NONE))
    apa = on_uc & (result.apa_from <= f)
    full_hb = on_hb & (tenancies.hb_coverage >= 0.999)
    method = np.where(apa | full_hb, M_BENEFIT, tenancies.pay_method)
    # The rent in force: the current rent for a live tenancy, the last rent charged for one that has ended.
    f_rent = np.where((end < NEVER) & (result.last_charge >= 0), result.last_charge, f)
    is_m = tenancies.rent_kind == KIND_MONTHLY
    ry = np.where(is_m, np.searchsorted(pop.rent_change_days["monthly"], f_rent, side="right"),
                  np.searchsorted(pop.rent_change_days["periodic"], f_rent, side="right"))
    rent = tenancies.rent_by_year[np.arange(pop.n), ry]
    return {"benefit": benefit, "payment_method": method, "rent": rent, "end": end, "apa": apa}


def _tenancies_frame(pop: Population, result: LedgerResult, mon_rng: np.random.Generator):
    tenancies = pop.tenancies
    n = pop.n
    state = _final_state(pop, result)
    width = max(6, len(str(n)))
    ids = id_strings("T", np.arange(1, n + 1), width)
    n_props = int(tenancies.property_number.max())
    props = id_strings("P", tenancies.property_number, max(6, len(str(n_props))))
    monitoring = draw_monitoring(
        {"benefit": state["benefit"], "payment_method": state["payment_method"], "channel": tenancies.channel,
         "tenure": tenancies.tenure, "vulnerable": tenancies.vulnerable, "language": tenancies.language,
         "patch": tenancies.patch},
        len(pop.patches), mon_rng,
    )
    frame = pd.DataFrame({
        "tenancy_id": _string_series(ids),
        "patch": _cat(tenancies.patch, pop.patches),
        "start_date": _dates(pop, tenancies.start),
        "end_date": _dates(pop, state["end"]),
        "rent_amount": state["rent"] / 100.0,
        "rent_frequency": _cat(tenancies.rent_kind, RENT_FREQUENCIES),
        "property_id": _string_series(props),
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
    })
    assert list(frame.columns) == list(TENANCIES.columns)
    return frame, state


def _transactions_frame(pop: Population, t: dict[str, np.ndarray], ten_ids: pa.ChunkedArray) -> pd.DataFrame:
    """The transactions feed, sorted by date, tenancy and posting order. Consumes (empties) ``t``."""
    rank = np.array([_TYPE_RANK[name] for name in TRANSACTION_TYPES], dtype=np.int64)[t["type"]]
    rank[t["reference"] == REFERENCES.index("Opening balance")] = 0
    key = (t["day"].astype(np.int64) * (pop.n + 1) + t["tenancy"]) * 8 + rank
    del rank
    order = np.argsort(key, kind="stable")
    del key
    m = len(order)
    cols = {
        "transaction_id": _string_series(id_strings("X", np.arange(1, m + 1), max(9, len(str(m))))),
        "tenancy_id": _string_series(_take(ten_ids, t.pop("tenancy")[order])),
        "posted_date": _dates(pop, t.pop("day")[order]),
        "type": _cat(t.pop("type")[order], TRANSACTION_TYPES),
        "amount": t.pop("amount")[order] / 100.0,
        "method": _cat(t.pop("method")[order], METHODS),
        "reference": _cat(t.pop("reference")[order], REFERENCES),
    }
    frame = pd.DataFrame(cols, copy=False)
    assert list(frame.columns) == list(TRANSACTIONS.columns)
    return frame


def _events_frame(pop: Population, e: dict[str, np.ndarray], ten_ids: pa.ChunkedArray, keep_from: int) -> pd.DataFrame:
    sel = np.flatnonzero(e["day"] >= keep_from)
    key = (e["day"][sel].astype(np.int64) * (pop.n + 1) + e["tenancy"][sel]) * 16 + e["type"][sel]
    order = sel[np.argsort(key, kind="stable")]
    m = len(order)
    amount = e["amount"][order] / 100.0
    frame = pd.DataFrame({
        "event_id": _string_series(id_strings("E", np.arange(1, m + 1), max(8, len(str(m))))),
        "tenancy_id": _string_series(_take(ten_ids, e["tenancy"][order])),
        "event_date": _dates(pop, e["day"][order]),
        "type": _cat(e["type"][order], EVENT_TYPES),
        "amount": np.round(amount, 2),
        "note": _cat(e["note"][order], NOTES),
    })
    assert list(frame.columns) == list(EVENTS.columns)
    return frame


def _ground_truth(pop: Population, result: LedgerResult, state: dict, ten_ids: pa.ChunkedArray) -> dict[str, pd.DataFrame]:
    tenancies = pop.tenancies
    tid = _string_series(ten_ids)
    end = result.end
    never_claim = tenancies.uc_from >= NEVER

    def day_or_nat(days: np.ndarray) -> np.ndarray:
        days = np.where(days <= FAR_PAST, NEVER, days)
        return _dates(pop, days)

    tenancy_truth = pd.DataFrame({
        "tenancy_id": tid,
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
        "pays_in_advance": tenancies.pays_ahead,
        "pays_by": _cat(tenancies.pay_method, METHODS),
        "pay_cycle": _cat(np.where(tenancies.uc_from <= FAR_PAST, 4, tenancies.pay_cycle_kind),
                          (*_KIND_NAMES, "uc_monthly")),
        "benefit_at_start": _cat(tenancies.benefit_at_start, BENEFIT_TYPES),
        "hb_coverage": np.where(tenancies.hb_from < NEVER, tenancies.hb_coverage, np.nan),
        "uc_coverage": np.where(~never_claim, tenancies.uc_coverage, np.nan),
        "uc_claim_start": day_or_nat(tenancies.uc_from),
        "uc_first_payment": day_or_nat(tenancies.uc_first_payment),
        "managed_payment_from": day_or_nat(result.apa_from),
        "legacy_arrears_weeks": tenancies.legacy_arrears_weeks,
        "opening_balance": result.opening_balance / 100.0,
        "closing_balance": result.closing_balance / 100.0,
        "legal_stage": result.legal_stage,
        "evicted": result.evicted,
        "written_off": result.written_off,
        "end_reason": pd.Categorical(np.where(result.evicted, "evicted", np.where(end < NEVER, "moved_out", "live")),
                                     categories=["live", "moved_out", "evicted"]),
    })

    kinds = tenancies.shock_kind
    rows, cols = np.nonzero(kinds >= 0)
    shocks = pd.DataFrame({
        "tenancy_id": _string_series(_take(ten_ids, rows)),
        "kind": _cat(kinds[rows, cols], SHOCK_KINDS),
        "start_date": _dates(pop, tenancies.shock_start[rows, cols]),
        "end_date": _dates(pop, tenancies.shock_end[rows, cols]),
        "severity": tenancies.shock_severity[rows, cols],
        "p_miss_payment": tenancies.shock_p_miss[rows, cols],
        "income_factor": tenancies.shock_income_factor[rows, cols],
        "benefit_backdated": tenancies.shock_backdated[rows, cols],
        "local_employment_shock": tenancies.shock_local_employment[rows, cols],
        "catch_up_date": _dates(pop, tenancies.shock_lump_day[rows, cols]),
        "catch_up_type": pd.Categorical(
            np.where(tenancies.shock_lump_day[rows, cols] >= NEVER, None,
                     np.where(tenancies.shock_lump_is_dhp[rows, cols], "discretionary_housing_payment",
                              "tenant_lump_sum")),
            categories=["tenant_lump_sum", "discretionary_housing_payment"]),
    })

    claim = np.flatnonzero(~never_claim)
    claims = pd.DataFrame({
        "tenancy_id": _string_series(_take(ten_ids, claim)),
        "benefit": "universal_credit",
        "reason": _cat(tenancies.uc_claim_reason[claim], UC_CLAIM_REASONS),
        "claim_start": day_or_nat(tenancies.uc_from[claim]),
        "first_payment": day_or_nat(tenancies.uc_first_payment[claim]),
        "managed_payment_from": day_or_nat(result.apa_from[claim]),
        "advance_repaid_date": day_or_nat(tenancies.uc_advance_day[claim]),
    })

    arrangements = _arrangements(pop, result.events, ten_ids)
    return {
        "tenancies": tenancy_truth,
        "shocks": shocks,
        "uc_claims": claims,
        "arrangements": arrangements,
        "patches": pop.patch_table.copy(),
        "dirty_faults": pd.DataFrame({c: pd.Series(dtype=np.int64 if c in ("row", "line") else object)
                                      for c in FAULT_COLUMNS}),
    }


def _arrangements(pop: Population, e: dict[str, np.ndarray], ten_ids: pa.ChunkedArray) -> pd.DataFrame:
    """Every arrangement (including ones agreed before the window) with how it ended."""
    types = [EVENT_TYPES.index(x) for x in ("arrangement_agreed", "arrangement_broken", "arrangement_completed")]
    sel = np.flatnonzero(np.isin(e["type"], types))
    order = sel[np.lexsort((e["type"][sel], e["day"][sel], e["tenancy"][sel]))]
    idx, day, typ, amt = e["tenancy"][order], e["day"][order], e["type"][order], e["amount"][order]
    agreed = np.flatnonzero(typ == types[0])
    nxt = agreed + 1
    has_next = (nxt < len(idx))
    nxt_c = np.minimum(nxt, max(len(idx) - 1, 0))
    closes = has_next & (idx[nxt_c] == idx[agreed]) & (typ[nxt_c] != types[0])
    outcome = np.where(closes, np.where(typ[nxt_c] == types[1], "broken", "completed"), "open")
    ended = np.where(closes, day[nxt_c], NEVER)
    return pd.DataFrame({
        "tenancy_id": _string_series(_take(ten_ids, idx[agreed])),
        "agreed_date": _dates(pop, day[agreed]),
        "weekly_top_up": amt[agreed] / 100.0,
        "ended_date": _dates(pop, ended),
        "outcome": pd.Categorical(outcome, categories=["open", "broken", "completed"]),
    })


__all__ = ["Portfolio", "simulate_portfolio", "window_start_for"]
