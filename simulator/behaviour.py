"""The behaviour engine: a day-by-day simulation of every rent account, vectorised across tenancies.

For each day (burn-in first, then the observation window) the engine, in this order:

1. moves each tenancy's shock pointer (a shock episode starts or ends) and, on the first day of the window,
   posts the balance built up so far as an ``adjustment`` ("Opening balance");
2. posts the rent charges due today (weekly on Mondays, fortnightly/four-weekly from the start date, monthly on
   the tenancy's day of month), at the rent of the current rent year (rents change each April);
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
   tenants with the habit, rent paid in advance up to the next payday). Direct debits occasionally bounce (more often during shocks) and come back as
   a positive ``adjustment`` a few days later;
6. posts one-off payments (UC advances, promised payments after officer contact, post-shock lump sums and
   Discretionary Housing Payments), and reversals;
7. runs the housing officer's side: contacts (more frequent the deeper the arrears), arrangements agreed at a
   contact when arrears reach three weeks (kept, broken after two missed instalments, or completed when the
   balance is cleared), breathing space (60 days), disputes (some with withholding; some upheld with a credit),
   legal stages for large, long arrears (rarely ending in eviction), APA requests for UC arrears of two months,
   refunds of large credits, rare recharge fees;
8. handles move-outs (an apportionment credit for the unused part of the last rent period) and, some weeks
   later, a refund of any credit or (often) a write-off of the remaining former-tenant debt.

Event amounts and notes (the contract leaves them free): ``arrangement_agreed`` carries the weekly top-up,
``arrangement_broken`` and ``legal_stage`` the balance at the time, ``dispute_opened`` the sum disputed and
``dispute_resolved`` any credit given; notes come from `NOTES` (contact channel or "home visit", the legal stage
name, the dispute topic or outcome, ...). Transaction ``method`` uses the payment-method vocabulary for receipts
(``benefit_direct`` for money from benefit) and is empty otherwise; ``reference`` comes from `REFERENCES`.

The engine never reads monitoring-only attributes: it receives only the arrays drawn by
`simulator.population.draw_population`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from features.feeds.contract import EVENT_TYPES, TRANSACTION_TYPES
from simulator.calendar import KIND_MONTHLY, KIND_P28, KIND_PERIOD, Calendar, DayGrid
from simulator.population import (
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

TX = {name: i for i, name in enumerate(TRANSACTION_TYPES)}
EV = {name: i for i, name in enumerate(EVENT_TYPES)}

REFERENCES = (
    "Opening balance", "Rent", "Direct debit", "Standing order", "Card payment", "Cash payment",
    "Housing Benefit", "UC managed payment", "UC deduction for arrears", "Discretionary Housing Payment",
    "Returned direct debit", "Payment reversal", "End of tenancy apportionment", "Dispute settlement credit",
    "Credit refund", "Former tenant arrears written off", "Court costs", "Rechargeable repair",
)
R = {name: i for i, name in enumerate(REFERENCES)}
#: Reference of a tenant payment, by payment method code.
PAYMENT_REF = np.array([R["Direct debit"], R["Standing order"], R["Card payment"], R["Cash payment"],
                        R["Card payment"]])

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
    "standard breathing space", "breathing space ended",
    *DISPUTE_TOPICS, *DISPUTE_OUTCOMES,
    *sorted({label for stage in LEGAL_STAGES for label in stage}),
)
N = {name: i for i, name in enumerate(NOTES)}
_LEGAL_NOTE = np.array([[N[label] for label in stage] for stage in LEGAL_STAGES])  # [stage-1, tenure]
#: Daily chance of moving to the next legal stage once eligible (from stage 0, 1, 2, 3, 4).
LEGAL_HAZARD = np.array([1 / 40, 1 / 60, 1 / 60, 1 / 90, 1 / 75])
#: Arrears (weeks of rent) at which an arrangement is offered at a contact.
ARRANGEMENT_WEEKS = 3.0
#: Arrears (weeks of rent) at which legal action starts / continues.
LEGAL_WEEKS = (8.0, 6.0)

WEEKS_PER_MONTH = 52.0 / 12.0


class _Records:
    """Column buffers for rows written during the simulation; days before ``min_day`` are not kept."""

    def __init__(self, columns: tuple[str, ...], min_day: int):
        self.columns = columns
        self.min_day = min_day
        self.parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
        self.days: list[np.ndarray] = []

    def add(self, t: int, idx: np.ndarray, **values: object) -> None:
        if t < self.min_day or len(idx) == 0:
            return
        k = len(idx)
        self.days.append(np.full(k, t, dtype=np.int32))
        self.parts["idx"].append(np.asarray(idx, dtype=np.int32))
        for c in self.columns:
            if c != "idx":
                v = values[c]
                self.parts[c].append(v if np.ndim(v) else (v, k))

    def arrays(self, dtypes: dict[str, type]) -> dict[str, np.ndarray]:
        """The buffers as one array per column (the buffers are emptied)."""
        out = {"day": np.concatenate(self.days) if self.days else np.empty(0, np.int32)}
        self.days = []
        for c in self.columns:
            parts = [np.full(p[1], p[0], dtype=dtypes[c]) if isinstance(p, tuple) else np.asarray(p).astype(dtypes[c])
                     for p in self.parts[c]]
            self.parts[c] = []
            out[c] = np.concatenate(parts) if parts else np.empty(0, dtypes[c])
        return out


@dataclass
class LedgerResult:
    """What the engine produced for one block of tenancies (indices are block-local)."""

    transactions: dict[str, np.ndarray]  #: day, idx, type, amount (pence), method, ref
    events: dict[str, np.ndarray]  #: day, idx, type, amount (pence, NaN for none), note
    end: np.ndarray  #: final end day (evictions bring it forward); NEVER while live
    evicted: np.ndarray
    apa_from: np.ndarray
    opening_balance: np.ndarray  #: pence, at the window start (0 for move-ins)
    closing_balance: np.ndarray  #: pence, at the window end
    legal_stage: np.ndarray
    written_off: np.ndarray
    last_charge: np.ndarray  #: day of the last rent charge (-1 if none)


def _push(queue: dict[int, list], days: np.ndarray, *cols: np.ndarray) -> None:
    """Append rows to a day-keyed queue, grouped by day."""
    if len(days) == 0:
        return
    order = np.argsort(days, kind="stable")
    d = days[order]
    cuts = np.flatnonzero(np.diff(d)) + 1
    bounds = np.concatenate([[0], cuts, [len(d)]])
    sorted_cols = [c[order] for c in cols]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        queue[int(d[lo])].append(tuple(c[lo:hi] for c in sorted_cols))


def simulate_ledger(
    tenancies: TenancyArrays,
    grid: DayGrid,
    ws_idx: int,
    end_idx: int,
    rent_change_days: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> LedgerResult:
    """Run the day loop for one block of tenancies described by ``tenancies`` (see draw_population)."""
    n = len(tenancies.start)
    D = end_idx + 1
    ar = np.arange(n)
    start = tenancies.start
    end = tenancies.end.copy()
    kind = tenancies.rent_kind
    is_m = kind == KIND_MONTHLY
    meth = tenancies.pay_method
    bank = (meth == M_DD) | (meth == M_SO)
    lenient = (meth == M_CARD) | (meth == M_CASH)
    own_method = np.where(lenient, meth, M_CARD)  # how one-off payments are made
    uc_from, uc_first_pay = tenancies.uc_from, tenancies.uc_first_payment
    hb_from, hb_to = tenancies.hb_from, tenancies.hb_to
    cov_hb, cov_uc = tenancies.hb_coverage, tenancies.uc_coverage
    vulnerable = tenancies.vulnerable
    miss_p = 1.0 - tenancies.p_keep_arrangement

    tx = _Records(("idx", "type", "amount", "method", "ref"), ws_idx)
    ev = _Records(("idx", "type", "amount", "note"), 0)

    ry_p = np.searchsorted(rent_change_days["periodic"], np.arange(D), side="right")
    ry_m = np.searchsorted(rent_change_days["monthly"], np.arange(D), side="right")

    rent_cal = Calendar(kind, tenancies.rent_residue)
    a_cal = Calendar(tenancies.pay_cycle_kind, tenancies.pay_cycle_residue, members=uc_from > start)
    uc_cal = Calendar(np.full(n, KIND_MONTHLY), tenancies.uc_payment_dom, members=uc_from < NEVER)
    hb_cal = Calendar(np.full(n, KIND_P28), tenancies.hb_run_residue, members=hb_from < NEVER)

    # -- state --------------------------------------------------------------------------------------------------
    bal = np.where(start <= 0, tenancies.legacy_balance, 0).astype(np.int64)
    opening = np.zeros(n, dtype=np.int64)
    hb_paid = np.where(hb_from == FAR_PAST, tenancies.hb_run_residue - 14, hb_from).astype(np.int64)
    apa_from = tenancies.apa_from.copy()
    arr_on = np.zeros(n, dtype=bool)
    arr_topup = np.zeros(n)  # pence per week
    arr_miss = np.zeros(n, dtype=np.int64)
    arr_cool = np.full(n, -1, dtype=np.int64)
    bs_until = np.full(n, -1, dtype=np.int64)
    disp_until = np.full(n, -1, dtype=np.int64)
    disp_withhold = np.zeros(n, dtype=bool)
    disp_amt = np.zeros(n, dtype=np.int64)
    legal = np.zeros(n, dtype=np.int64)
    legal_last = np.full(n, -(10**6), dtype=np.int64)
    last_charge = np.full(n, -1, dtype=np.int64)
    last_amt = np.zeros(n, dtype=np.int64)
    post_day = np.full(n, NEVER, dtype=np.int64)
    owing_since = np.full(n, NEVER, dtype=np.int64)  # first day of the current run of a positive balance
    evicted = np.zeros(n, dtype=bool)
    written_off = np.zeros(n, dtype=bool)

    sh = {"start": tenancies.shock_start, "end": tenancies.shock_end, "kind": tenancies.shock_kind,
          "skip": tenancies.shock_p_miss, "factor": tenancies.shock_income_factor, "backdate": tenancies.shock_backdated,
          "lump_day": tenancies.shock_lump_day, "lump_frac": tenancies.shock_lump_share,
          "lump_dhp": tenancies.shock_lump_is_dhp}
    ptr = np.zeros(n, dtype=np.int64)
    cur = {k: sh[k][:, 0].copy() for k in ("start", "end", "kind", "skip", "factor", "backdate")}

    pending: dict[int, list] = defaultdict(list)  # regular tenant payments: day -> [(idx,)]
    oneoff: dict[int, list] = defaultdict(list)  # day -> [(idx, value, frac_mode, type, ref, method)]
    reversal: dict[int, list] = defaultdict(list)  # day -> [(idx, amount, ref)]

    # UC advances (fixed amounts) and post-shock lump sums (a share of the balance then).
    adv = np.flatnonzero(tenancies.uc_advance_day < D)
    _push(oneoff, tenancies.uc_advance_day[adv], adv, tenancies.uc_advance_amount[adv].astype(float), np.zeros(len(adv), bool),
          np.full(len(adv), TX["payment"]), PAYMENT_REF[own_method[adv]], own_method[adv])
    rows, cols = np.nonzero(sh["lump_day"] < D)
    dhp = sh["lump_dhp"][rows, cols]
    _push(oneoff, sh["lump_day"][rows, cols], rows, sh["lump_frac"][rows, cols], np.ones(len(rows), bool),
          np.where(dhp, TX["benefit"], TX["payment"]),
          np.where(dhp, R["Discretionary Housing Payment"], PAYMENT_REF[own_method[rows]]),
          np.where(dhp, M_BENEFIT, own_method[rows]))

    rent_now = wk_now = None
    for t in range(D):
        dom_t = int(grid.dom[t])
        if t == 0 or ry_p[t] != ry_p[t - 1] or ry_m[t] != ry_m[t - 1]:
            ryi = np.where(is_m, ry_m[t], ry_p[t])
            rent_now = tenancies.rent_by_year[ar, ryi]
            wk_now = tenancies.weekly_rent_by_year[ar, ryi]

        # 1. shocks, opening balance -----------------------------------------------------------------------
        done = np.flatnonzero(cur["end"] < t)
        if done.size:
            lost = done[(cur["kind"][done] == SK_BENEFIT) & ~cur["backdate"][done]]
            hb_paid[lost] = np.maximum(hb_paid[lost], cur["end"][lost] + 1)
            ptr[done] += 1
            for k in cur:
                cur[k][done] = sh[k][done, ptr[done]]
        in_shock = cur["start"] <= t
        suspended = in_shock & (cur["kind"] == SK_BENEFIT)
        if t == ws_idx:
            opening = np.where(start < ws_idx, bal, 0)
            oi = np.flatnonzero(opening != 0)
            tx.add(t, oi, type=TX["adjustment"], amount=opening[oi], method=-1, ref=R["Opening balance"])

        # 2. rent charges ---------------------------------------------------------------------------------------
        idx = rent_cal.due(t, dom_t)
        if idx.size:
            idx = idx[(start[idx] <= t) & (end[idx] >= t)]
            amt = rent_now[idx]
            bal[idx] += amt
            last_charge[idx] = t
            last_amt[idx] = amt
            tx.add(t, idx, type=TX["charge"], amount=amt, method=-1, ref=R["Rent"])

        # 3. benefit paid to the landlord -----------------------------------------------------------------------
        idx = hb_cal.due(t, dom_t)
        if idx.size:
            idx = idx[(start[idx] <= t) & (tenancies.hb_first_run[idx] <= t) & ~suspended[idx]]
            upto = np.minimum(np.minimum(t + 14, hb_to[idx]), end[idx] + 1)
            days = upto - hb_paid[idx]
            ok = days > 0
            idx, upto, days = idx[ok], upto[ok], days[ok]
            amt = np.rint(cov_hb[idx] * wk_now[idx] * days / 7.0).astype(np.int64)
            hb_paid[idx] = upto
            ok = amt > 0
            bal[idx[ok]] -= amt[ok]
            tx.add(t, idx[ok], type=TX["benefit"], amount=-amt[ok], method=M_BENEFIT, ref=R["Housing Benefit"])

        sched_b = np.empty(0, dtype=np.int64)
        idx = uc_cal.due(t, dom_t)
        if idx.size:
            alive_i = (start[idx] <= t) & (t <= end[idx]) & (uc_from[idx] <= t) & (uc_first_pay[idx] <= t)
            sched_b = idx[alive_i]
            api = sched_b[(apa_from[sched_b] <= t) & ~suspended[sched_b]]
            amt = np.rint(cov_uc[api] * wk_now[api] * WEEKS_PER_MONTH).astype(np.int64)
            bal[api] -= amt
            tx.add(t, api, type=TX["benefit"], amount=-amt, method=M_BENEFIT, ref=R["UC managed payment"])
            owe = api[bal[api] > 0]
            ded = np.minimum(tenancies.uc_arrears_deduction[owe].astype(np.int64), bal[owe])
            bal[owe] -= ded
            tx.add(t, owe, type=TX["benefit"], amount=-ded, method=M_BENEFIT, ref=R["UC deduction for arrears"])

        # 4. schedule tenants' own payments ---------------------------------------------------------------------
        ia = a_cal.due(t, dom_t)
        if ia.size:
            ia = ia[(start[ia] <= t) & (t <= end[ia]) & (t < uc_from[ia])]
        sched = np.concatenate([ia, sched_b]) if sched_b.size else ia
        if sched.size:
            jitter = rng.exponential(1.0, len(sched)) - 1.0
            uc_dd = (t >= uc_from[sched]) & (meth[sched] == M_DD)
            delay = np.where(
                bank[sched],
                tenancies.bank_delay_days[sched] + 2 * uc_dd,
                np.maximum(0, np.rint(tenancies.delay_base_days[sched] + tenancies.delay_jitter_days[sched] * jitter))
                + tenancies.posting_lag_days[sched],
            ).astype(np.int64)
            pay_day = grid.roll[t + np.minimum(delay, 60)]
            _push(pending, pay_day, sched, np.arange(len(sched)) >= len(ia))  # (tenancy, paid from UC?)

        # 5. tenants' payments due today ------------------------------------------------------------------------
        due = pending.pop(t, None)
        if due:
            idx = np.concatenate([d[0] for d in due])
            from_uc = np.concatenate([d[1] for d in due])
            ok = (start[idx] <= t) & (t <= end[idx])
            if ok.any():
                _pay(t, idx[ok], from_uc[ok], tenancies, grid, rng, bal, rent_now, wk_now, in_shock, cur, arr_on, arr_topup,
                     arr_miss, arr_cool, bs_until, disp_until, disp_withhold, apa_from, miss_p, tx, ev, reversal)

        # 6. one-off payments and reversals ----------------------------------------------------------------------
        for idx, value, frac_mode, typ, ref, mth in oneoff.pop(t, ()):
            live = (start[idx] <= t) & (t <= end[idx])
            owed = np.maximum(bal[idx], 0)
            amt = np.where(frac_mode, np.rint(value * owed), np.where(live, value, 0)).astype(np.int64)
            amt = np.where(frac_mode, np.minimum(amt, owed), amt)
            ok = (amt > 0) & (start[idx] <= t) & ~written_off[idx]
            np.add.at(bal, idx[ok], -amt[ok])
            tx.add(t, idx[ok], type=typ[ok], amount=-amt[ok], method=mth[ok], ref=ref[ok])
        for idx, amt, ref in reversal.pop(t, ()):
            np.add.at(bal, idx, amt)
            tx.add(t, idx, type=TX["adjustment"], amount=amt, method=-1, ref=ref)

        # 7. the housing officer's side --------------------------------------------------------------------------
        alive = (start <= t) & (t <= end)
        arrw = bal / wk_now
        owing_since = np.where(bal > 0, np.minimum(owing_since, t), NEVER)
        persistent = t - owing_since >= 28  # owing for four weeks or more
        done = np.flatnonzero(arr_on & (bal <= 0))
        if done.size:
            arr_on[done] = False
            ev.add(t, done, type=EV["arrangement_completed"], amount=np.nan, note=N["arrears cleared"])
        bs_end = np.flatnonzero(bs_until == t)
        ev.add(t, bs_end, type=EV["breathing_space_ended"], amount=np.nan, note=N["breathing space ended"])
        dr = np.flatnonzero(disp_until == t)
        if dr.size:
            outcome = np.minimum((rng.random(dr.size)[:, None] >= np.array([0.35, 0.85])).sum(axis=1), 2)
            credit = np.where(outcome == 0, np.rint(disp_amt[dr] * rng.uniform(0.2, 1.0, dr.size)), 0).astype(np.int64)
            up = credit > 0
            bal[dr[up]] -= credit[up]
            tx.add(t, dr[up], type=TX["adjustment"], amount=-credit[up], method=-1, ref=R["Dispute settlement credit"])
            ev.add(t, dr, type=EV["dispute_resolved"], amount=np.where(up, credit, np.nan),
                   note=N[DISPUTE_OUTCOMES[0]] + outcome)
            disp_withhold[dr] = False

        u = rng.random(n)
        in_arrears = alive & (arrw >= 1) & (t - owing_since >= 7)
        h_contact = np.where(alive, 0.0012 + 0.008 * in_arrears + 0.025 * (arrw >= 3) + 0.03 * (arrw >= 6), 0.0)
        h_contact = np.where(bs_until >= t, 0.3 * h_contact, h_contact)
        c1 = h_contact
        c2 = c1 + np.where(alive & (arrw >= 2) & (bs_until < t), 0.0002 * (1 + 2 * vulnerable), 0.0)
        c3 = c2 + np.where(alive & (disp_until < t), 0.00003 + 0.00004 * in_arrears, 0.0)
        c4 = c3 + np.where(alive, 0.00002, 0.0)
        c5 = c4 + np.where(alive & (bal < -6 * wk_now), 1 / 90, 0.0)

        ci = np.flatnonzero(u < c1)
        if ci.size:
            visit = (arrw[ci] >= 3) & (rng.random(ci.size) < 0.1)
            note = np.where(visit, N["home visit"], tenancies.channel[ci])  # channel codes = first contact notes
            ev.add(t, ci, type=EV["contact_made"], amount=np.nan, note=note)
            cand = ci[(arrw[ci] >= ARRANGEMENT_WEEKS) & persistent[ci] & ~arr_on[ci] & (arr_cool[ci] <= t)
                      & (bs_until[ci] < t)]
            ok = rng.random(cand.size) < tenancies.p_agree_arrangement[cand] * np.where(in_shock[cand], 0.5, 1.0)
            ag = cand[ok]
            if ag.size:
                topup = np.clip(np.rint(bal[ag] / rng.uniform(26, 78, ag.size) / 50) * 50, 370, 4000)
                arr_on[ag] = True
                arr_topup[ag] = topup
                arr_miss[ag] = 0
                ev.add(t, ag, type=EV["arrangement_agreed"], amount=topup, note=N["rent plus weekly top-up"])
            rest = ci[(arrw[ci] >= 1) & ~in_shock[ci] & ~arr_on[ci]]
            pr = rest[rng.random(rest.size) < 0.35 * tenancies.p_agree_arrangement[rest]]
            if pr.size:
                day = grid.roll[t + rng.integers(1, 8, pr.size)]
                _push(oneoff, day, pr, rng.uniform(0.2, 0.8, pr.size), np.ones(pr.size, bool),
                      np.full(pr.size, TX["payment"]), PAYMENT_REF[own_method[pr]], own_method[pr])
        bi = np.flatnonzero((u >= c1) & (u < c2))
        if bi.size:
            bs_until[bi] = t + 60
            ev.add(t, bi, type=EV["breathing_space_started"], amount=np.nan, note=N["standard breathing space"])
        di = np.flatnonzero((u >= c2) & (u < c3))
        if di.size:
            disp_until[di] = t + rng.integers(14, 121, di.size)
            disp_withhold[di] = rng.random(di.size) < 0.3
            disp_amt[di] = np.rint(wk_now[di] * rng.uniform(0.5, 6.0, di.size)).astype(np.int64)
            ev.add(t, di, type=EV["dispute_opened"], amount=disp_amt[di],
                   note=N[DISPUTE_TOPICS[0]] + rng.integers(0, len(DISPUTE_TOPICS), di.size))
        fi = np.flatnonzero((u >= c3) & (u < c4))
        if fi.size:
            fee = (rng.integers(25, 251, fi.size) * 100).astype(np.int64)
            bal[fi] += fee
            tx.add(t, fi, type=TX["fee"], amount=fee, method=-1, ref=R["Rechargeable repair"])
        ri = np.flatnonzero((u >= c4) & (u < c5))
        if ri.size:
            amt = -bal[ri]
            bal[ri] = 0
            tx.add(t, ri, type=TX["refund"], amount=amt, method=-1, ref=R["Credit refund"])

        # Legal action (only in the window, so evictions never remove a tenancy before it is observed).
        if t >= ws_idx:
            legal[alive & (legal > 0) & (arrw < 1)] = 0  # arrears cleared: the case is closed
            thr = np.where(legal == 0, LEGAL_WEEKS[0], LEGAL_WEEKS[1])
            el = np.flatnonzero(alive & (legal < 5) & (arrw >= thr) & persistent & ~arr_on & (bs_until < t)
                                & (disp_until < t) & (t - legal_last >= 28))
            if el.size:
                go = el[rng.random(el.size) < LEGAL_HAZARD[legal[el]] * np.where(vulnerable[el], 0.5, 1.0)]
                legal[go] += 1
                legal_last[go] = t
                ev.add(t, go, type=EV["legal_stage"], amount=bal[go], note=_LEGAL_NOTE[legal[go] - 1, tenancies.tenure[go]])
                court = go[legal[go] == 2]
                bal[court] += 35500
                tx.add(t, court, type=TX["fee"], amount=35500, method=-1, ref=R["Court costs"])
                out = go[legal[go] == 5]
                end[out] = t
                evicted[out] = True

        # APA requests for UC arrears of two months.
        ap = np.flatnonzero(alive & (apa_from >= NEVER) & (uc_from <= t) & (uc_first_pay <= t) & (arrw >= 8))
        if ap.size:
            go = ap[rng.random(ap.size) < 1 / 30]
            apa_from[go] = t + rng.integers(28, 43, go.size)

        # 8. move-outs, then refunds / write-offs, former-tenant payments ----------------------------------------
        mo = np.flatnonzero(end == t)
        if mo.size:
            lc = last_charge[mo]
            period = np.where(is_m[mo], grid.dim[np.maximum(lc, 0)], KIND_PERIOD[kind[mo]])
            unused = lc + period - (t + 1)
            credit = np.where((lc >= start[mo]) & (unused > 0), np.rint(last_amt[mo] * unused / period), 0)
            credit = credit.astype(np.int64)
            ok = credit > 0
            bal[mo[ok]] -= credit[ok]
            tx.add(t, mo[ok], type=TX["adjustment"], amount=-credit[ok], method=-1,
                   ref=R["End of tenancy apportionment"])
            arr_on[mo] = False
            post_day[mo] = t + rng.integers(21, 200, mo.size)
        pe = np.flatnonzero(post_day == t)
        if pe.size:
            post_day[pe] = NEVER
            cr = pe[bal[pe] < 0]
            tx.add(t, cr, type=TX["refund"], amount=-bal[cr], method=-1, ref=R["Credit refund"])
            bal[cr] = 0
            db = pe[bal[pe] > 0]
            wo = db[rng.random(db.size) < np.where(bal[db] < 1000, 0.9, 0.55)]
            tx.add(t, wo, type=TX["write_off"], amount=-bal[wo], method=-1, ref=R["Former tenant arrears written off"])
            bal[wo] = 0
            written_off[wo] = True
        ft = np.flatnonzero((end < t) & (bal > 0) & ~written_off)
        if ft.size:
            go = ft[rng.random(ft.size) < tenancies.catchup_share[ft] / 45]
            amt = np.rint(bal[go] * rng.uniform(0.1, 1.0, go.size)).astype(np.int64)
            ok = amt > 0
            go, amt = go[ok], amt[ok]
            bal[go] -= amt
            tx.add(t, go, type=TX["payment"], amount=-amt, method=own_method[go], ref=PAYMENT_REF[own_method[go]])

    txa = tx.arrays({"idx": np.int32, "type": np.int8, "amount": np.int64, "method": np.int8, "ref": np.int16})
    eva = ev.arrays({"idx": np.int32, "type": np.int8, "amount": np.float64, "note": np.int16})
    return LedgerResult(
        transactions=txa, events=eva, end=end, evicted=evicted, apa_from=apa_from, opening_balance=opening,
        closing_balance=bal, legal_stage=legal, written_off=written_off, last_charge=last_charge,
    )


def _pay(t, idx, is_b, tenancies, grid, rng, bal, rent_now, wk_now, in_shock, cur, arr_on, arr_topup, arr_miss, arr_cool,
         bs_until, disp_until, disp_withhold, apa_from, miss_p, tx, ev, reversal) -> None:
    """Tenants' regular payments falling due on day ``t`` (``idx`` may repeat a tenancy); ``is_b`` marks those
    scheduled from a Universal Credit payment (the others from the tenant's own pay cycle)."""
    m = idx.size
    meth = tenancies.pay_method[idx]
    wk = wk_now[idx]
    apa = apa_from[idx] <= t
    hb_on = ~is_b & (tenancies.hb_from[idx] <= t) & (t < tenancies.hb_to[idx])
    share = np.where(is_b, np.where(apa, 1.0 - tenancies.uc_coverage[idx], 1.0), np.where(hb_on, 1.0 - tenancies.hb_coverage[idx], 1.0))
    same = np.where(is_b, tenancies.rent_kind[idx] == KIND_MONTHLY, tenancies.pay_cycle_is_rent_cycle[idx])
    cw = np.where(is_b, WEEKS_PER_MONTH, tenancies.pay_cycle_weeks[idx])
    arr = arr_on[idx]
    base = np.where(same, share * rent_now[idx], np.ceil(share * wk * cw))
    E = np.rint(base + np.where(arr, arr_topup[idx] * cw, 0.0))
    owed = bal[idx].astype(float)
    # A careful payer keeps the balance at a target just after paying: in advance by all but the first week of
    # the pay cycle (so it stays at or below zero until the next payday).
    # Others (no advance habit) aim at a zero balance just after payday and so run technical arrears between.
    target = -share * wk * np.maximum(cw - 1.0, 0.0) * tenancies.pays_ahead[idx]

    ps = np.where(arr, miss_p[idx], tenancies.p_skip[idx])
    ins = in_shock[idx]
    ps = np.where(ins, 1.0 - (1.0 - ps) * (1.0 - cur["skip"][idx]), ps)
    ps = np.where((disp_until[idx] >= t) & disp_withhold[idx], 0.9, ps)
    lenient = (meth == M_CARD) | (meth == M_CASH)
    ps = np.where(lenient & (owed <= target), np.maximum(ps, 0.5), ps)
    ps = np.where(lenient & (owed < target - E), np.maximum(ps, 0.95), ps)
    u = rng.random((5, m))
    miss = u[0] < ps
    partial = u[1] < np.where(arr, 0.5, 1.0) * tenancies.p_partial[idx]
    lo, hi = tenancies.partial_share_low[idx], tenancies.partial_share_high[idx]
    frac = np.where(partial, lo + (hi - lo) * u[2], 1.0) * np.where(ins, cur["factor"][idx], 1.0)
    regular = np.where(miss, 0.0, E * frac)
    behind = owed - E - target  # what would be left above the target after the regular payment
    catch = ~ins & ~miss & (u[3] < tenancies.p_catchup[idx]) & (behind > 100.0)
    extra = tenancies.catchup_share[idx] * behind
    extra = np.where(behind - extra < 500.0, behind, extra)  # a remainder under £5 is paid off too
    amt = regular + np.where(catch, extra, 0.0)
    amt = np.where(tenancies.round_pounds[idx], np.ceil(amt / 100.0) * 100.0, np.rint(amt)).astype(np.int64)

    pos = amt > 0
    bounce = pos & (((meth == M_DD) & (u[4] < np.where(ins, 0.15, 0.004))) | ((meth == M_CARD) & (u[4] < 0.001)))
    pi = idx[pos]
    np.add.at(bal, pi, -amt[pos])
    tx.add(t, pi, type=TX["payment"], amount=-amt[pos], method=meth[pos], ref=PAYMENT_REF[meth[pos]])
    if bounce.any():
        bi = idx[bounce]
        day = grid.roll[t + 3 + rng.integers(0, 3, bi.size)]
        ref = np.where(meth[bounce] == M_DD, R["Returned direct debit"], R["Payment reversal"])
        _push(reversal, day, bi, amt[bounce], ref)

    check = arr & (E > 0)
    if check.any():
        ci = idx[check]
        kept = (amt[check] >= 0.9 * E[check]) & ~bounce[check]
        arr_miss[ci] = np.where(kept, 0, arr_miss[ci] + 1)
        broken = ci[(arr_miss[ci] >= 2) & (bs_until[ci] < t)]
        broken = np.unique(broken)
        if broken.size:
            arr_on[broken] = False
            arr_cool[broken] = t + 56
            ev.add(t, broken, type=EV["arrangement_broken"], amount=bal[broken].astype(float),
                   note=N["two instalments missed"])
