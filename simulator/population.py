"""Draw the tenancy population: circumstances, hidden propensities, shock episodes and benefit timelines.

Everything here is drawn *before* any money moves, from the "population" random stream. The behaviour engine
(`simulator.behaviour`) then reads only these circumstance and propensity arrays; the monitoring-only
attributes (age band, sex, ethnicity, disability) are drawn afterwards from their own stream by
`draw_monitoring`, conditioned on circumstances, so they correlate with circumstances (and therefore with
outcomes) but never drive behaviour.

Day indices are relative to the simulation start (see `simulator.calendar`). ``NEVER`` marks "not in
this simulation" (no end date, no claim), ``FAR_PAST`` marks "since before the simulation started".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from features.feeds.contract import PERIODS_PER_YEAR, RENT_FREQUENCIES
from simulator.calendar import (
    KIND_MONTHLY,
    KIND_P7,
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
TENURES = ("secure", "assured", "assured_shorthold", "licence")
METHODS = ("direct_debit", "standing_order", "card", "cash", "benefit_direct")
M_DD, M_SO, M_CARD, M_CASH, M_BENEFIT = range(5)
CHANNELS = ("phone", "email", "sms", "letter")
LANGUAGES = ("en", "pl", "ro", "ur", "bn", "so", "ar", "pa", "pt", "lt")
B_NONE, B_HB, B_UC = range(3)

ARCHETYPES = ("reliable", "habitual_late", "irregular", "shock_prone", "chronic")
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
    return [f"{PATCH_DIRECTIONS[i % 5]}-{i // 5 + 1}" for i in range(count)]


@dataclass
class Population:
    """The drawn population: per-tenancy arrays (first axis = tenancy, in tenancy_id order) and shared facts."""

    n: int
    grid: DayGrid
    ws_idx: int  #: day index of the window start
    end_idx: int  #: day index of the window end (last simulated day)
    patches: list[str]
    patch_table: pd.DataFrame
    rent_change_days: dict[str, np.ndarray]  #: "periodic"/"monthly" → day index of each April change
    a: dict[str, np.ndarray] = field(default_factory=dict)

    def block(self, lo: int, hi: int) -> dict[str, np.ndarray]:
        return {k: v[lo:hi] for k, v in self.a.items()}


def _gumbel_choice(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``logits`` (softmax probabilities)."""
    return np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)


def _row_choice(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a probability matrix."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None] * cum[:, -1:]
    return np.minimum((u >= cum).sum(axis=1), probs.shape[1] - 1)


def _by_group(rng: np.random.Generator, group: np.ndarray, table: dict[int, list[float]], n_out: int) -> np.ndarray:
    """Draw a category for each row from the probability list of its group."""
    probs = np.zeros((len(group), n_out))
    for g, p in table.items():
        probs[group == g] = p
    return _row_choice(rng, probs)


def draw_population(n: int, window_start: date, end_date: date, seed: int) -> Population:
    """Draw ``n`` tenancies live at some point in ``[window_start, end_date]``."""
    rng = np.random.default_rng([seed, 1])
    sim_start = window_start - timedelta(days=BURN_IN_DAYS)
    ws_idx = BURN_IN_DAYS
    end_idx = (end_date - sim_start).days
    grid = DayGrid(sim_start, end_idx + 1)
    window_days = end_idx - ws_idx + 1
    years = window_days / 365.25

    # -- patches ---------------------------------------------------------------------------------------------
    n_patch = n_patches_for(n)
    names = patch_names(n_patch)
    patch_weight = rng.dirichlet(np.full(n_patch, 4.0))
    social_share = rng.beta(9, 2, n_patch)
    private_heavy = rng.choice(n_patch, size=max(1, n_patch // 6), replace=False)
    social_share[private_heavy] = rng.beta(2, 4, len(private_heavy))
    rent_mult = rng.lognormal(0.0, 0.1, n_patch)
    hb_res = residue_for_weekday(np.zeros(n_patch, dtype=np.int64), sim_start, 28, rng.integers(0, 4, n_patch))
    # One or two patches suffer a local employment shock (an employer closing) for about three months.
    cluster = np.zeros(n_patch, dtype=bool)
    cluster[rng.choice(n_patch, size=1 if n_patch < 12 else 2, replace=False)] = True
    cluster_start = ws_idx + rng.integers(0, max(1, window_days - 90), n_patch)
    cluster_end = cluster_start + 90
    cluster_start[~cluster] = NEVER
    cluster_end[~cluster] = NEVER

    patch = rng.choice(n_patch, size=n, p=patch_weight)

    # -- sector, tenure, rent frequency ---------------------------------------------------------------------
    u = rng.random(n)
    sector = np.where(u < social_share[patch], 0, np.where(rng.random(n) < 0.8, 1, 2))
    tenure = np.select(
        [sector == 1, sector == 2],
        [np.full(n, 2), np.full(n, 3)],
        _row_choice(rng, np.tile([0.45, 0.45, 0.10], (n, 1))),
    )
    freq = _by_group(rng, sector, {0: [0.72, 0.05, 0.08, 0.15], 1: [0.08, 0.02, 0.05, 0.85],
                                   2: [0.8, 0.0, 0.0, 0.2]}, 4)
    kind = freq.copy()  # rent frequency code == schedule kind (weekly P7, fortnightly P14, four_weekly P28, monthly)

    # Weekly-equivalent rent (pence) at simulation start.
    median = np.array([108.0, 185.0, 170.0])[sector]
    sigma = np.array([0.16, 0.14, 0.18])[sector]
    lo = np.array([78.0, 120.0, 100.0])[sector]
    hi = np.array([195.0, 212.0, 212.0])[sector]
    weekly0 = np.clip(median * rng.lognormal(0.0, sigma) * rent_mult[patch], lo, hi) * 100.0

    # -- tenancy dates (day indices) --------------------------------------------------------------------------
    hazard = np.array([0.08, 0.25, 0.6])[sector]  # move-outs per year
    f_movein = hazard * years / (1 + hazard * years)
    movein = rng.random(n) < f_movein
    age = np.minimum(rng.exponential(365.25 / hazard), 40 * 365.25).astype(np.int64)
    start = np.where(movein, rng.integers(ws_idx, end_idx + 1, n), ws_idx - 1 - age)
    stay = np.maximum(rng.exponential(365.25 / hazard), np.where(sector == 2, 14, 28)).astype(np.int64)
    end = np.where(movein, start + stay, ws_idx + (rng.exponential(365.25 / hazard)).astype(np.int64))

    # Re-lets: move-ins take over properties vacated in the window (same patch and sector), after a void.
    prop = np.arange(n)
    vac = np.flatnonzero(~movein & (end <= end_idx - 21))
    void = 7 + rng.exponential(20.0, len(vac)).astype(np.int64)
    ready = end[vac] + 1 + void
    vac, ready = vac[ready <= end_idx - 7], ready[ready <= end_idx - 7]
    mov = np.flatnonzero(movein)
    if len(vac) and len(mov):
        gv = pd.DataFrame({"row": vac, "ready": ready, "g": patch[vac] * 3 + sector[vac], "r": rng.random(len(vac))})
        gm = pd.DataFrame({"row": mov, "g": patch[mov] * 3 + sector[mov], "r": rng.random(len(mov))})
        gv = gv.sort_values(["g", "r"], kind="stable")
        gm = gm.sort_values(["g", "r"], kind="stable")
        gv["k"] = gv.groupby("g").cumcount()
        gm["k"] = gm.groupby("g").cumcount()
        pairs = gm.merge(gv, on=["g", "k"], suffixes=("", "_vac"))
        new_rows = pairs["row"].to_numpy()
        old_rows = pairs["row_vac"].to_numpy()
        start[new_rows] = pairs["ready"].to_numpy()
        end[new_rows] = start[new_rows] + stay[new_rows]
        prop[new_rows] = prop[old_rows]
        weekly0[new_rows] = weekly0[old_rows] * np.where(sector[new_rows] == 0, 1.0, 1.05)

    # Periodic rents start on a Monday (forward for move-ins so they stay in the window); monthly rents on
    # day 1..28 of the month (40% of older monthly tenancies on the 1st).
    periodic = kind != KIND_MONTHLY
    wd = weekday_of(start, sim_start)
    fwd = (7 - wd) % 7
    start = np.where(periodic & movein, start + fwd, np.where(periodic, start - wd, start))
    dom = dom_of(start, sim_start)
    first_of_month = ~movein & (rng.random(n) < 0.4)
    start = np.where(~periodic & first_of_month, start - (dom - 1), start)
    dom = dom_of(start, sim_start)
    # Monthly tenancies falling on the 29th-31st: move-ins move to the next month's first days, older ones to
    # the 28th.
    over = ~periodic & (dom > 28)
    start = np.where(over & movein, start + (32 - dom), np.where(over, start - (dom - 28), start))
    # Move-ins pushed past the window end move back a week.
    start = np.where(start > end_idx, start - 7, start)
    dom = dom_of(start, sim_start)
    end = np.maximum(end, start + 1)
    end = np.where(end > end_idx, NEVER, end)
    rent_res = np.where(periodic, np.mod(start, np.maximum(KIND_PERIOD[kind], 1)), dom)

    # -- order tenancies by start date: T000001 is the oldest -------------------------------------------------
    order = np.lexsort((rng.random(n), start))
    inv_cols = {}
    for name, arr in dict(patch=patch, sector=sector, tenure=tenure, kind=kind, weekly0=weekly0, start=start,
                          end=end, prop=prop, movein=movein, rent_res=rent_res).items():
        inv_cols[name] = arr[order]
    patch, sector, tenure, kind, weekly0 = (inv_cols[k] for k in ("patch", "sector", "tenure", "kind", "weekly0"))
    start, end, prop, movein, rent_res = (inv_cols[k] for k in ("start", "end", "prop", "movein", "rent_res"))
    _, prop_num = np.unique(prop, return_inverse=True)
    first_seen = np.full(prop_num.max() + 1, n)
    np.minimum.at(first_seen, prop_num, np.arange(n))
    prop_rank = np.empty_like(first_seen)
    prop_rank[np.argsort(first_seen, kind="stable")] = np.arange(len(first_seen))
    property_number = prop_rank[prop_num] + 1

    # -- rent by rent year ------------------------------------------------------------------------------------
    change_years = [y for y in range(sim_start.year, end_date.year + 1)
                    if 0 < (date(y, 4, 1) - sim_start).days <= end_idx]
    monthly_change = np.array([(date(y, 4, 1) - sim_start).days for y in change_years], dtype=np.int64)
    periodic_change = monthly_change + (7 - weekday_of(monthly_change, sim_start)) % 7
    n_years = len(change_years) + 1
    ppy = np.array([PERIODS_PER_YEAR[f] for f in RENT_FREQUENCIES])[kind]
    rent = np.zeros((n, n_years), dtype=np.int64)
    rent[:, 0] = np.rint(weekly0 * 52.0 / ppy)
    for k, y in enumerate(change_years):
        social_rate = SOCIAL_RENT_RISE.get(y, DEFAULT_RENT_RISE)
        private_rate = np.clip(rng.normal(0.035, 0.015, n), 0.0, 0.07)
        rate = np.where(sector == 1, private_rate, social_rate)
        rent[:, k + 1] = np.rint(rent[:, k] * (1.0 + rate))
    weekly = rent * (ppy / 52.0)[:, None]  # float pence per week, by rent year

    # -- benefits and vulnerability ---------------------------------------------------------------------------
    benefit0 = _by_group(rng, sector, {0: [0.45, 0.22, 0.33], 1: [0.72, 0.06, 0.22], 2: [0.10, 0.35, 0.55]}, 3)
    vulnerable = rng.random(n) < 0.05 + 0.08 * (benefit0 != B_NONE) + 0.10 * (sector == 2)
    cov_choices = np.array([1.0, 0.86, 0.75])
    cov_pick = _row_choice(rng, np.tile([0.62, 0.22, 0.05, 0.11], (n, 1)))
    cov_social = np.where(cov_pick < 3, cov_choices[np.minimum(cov_pick, 2)], rng.uniform(0.6, 0.95, n))
    cov_private = np.where(rng.random(n) < 0.35, 1.0, rng.uniform(0.6, 0.98, n))
    cov_hb = np.where(sector == 1, cov_private, cov_social)
    cov_uc = cov_hb.copy()

    # -- archetypes and propensities --------------------------------------------------------------------------
    logits = np.log(ARCHETYPE_PARAMS["share"].to_numpy())[None, :].repeat(n, axis=0)
    # Provisional tenant payment method (used for archetype odds and pay cycles): refined below.
    meth_social = _row_choice(rng, np.tile([0.35, 0.10, 0.35, 0.20], (n, 1)))
    meth_private = _row_choice(rng, np.tile([0.60, 0.30, 0.10, 0.00], (n, 1)))
    meth_temp = _row_choice(rng, np.tile([0.10, 0.00, 0.50, 0.40], (n, 1)))
    meth_uc = _row_choice(rng, np.tile([0.25, 0.10, 0.45, 0.20], (n, 1)))
    pay_method = np.select([sector == 1, sector == 2], [meth_private, meth_temp], meth_social)
    pay_method = np.where((benefit0 == B_UC) & (sector != 1), meth_uc, pay_method)
    bank = (pay_method == M_DD) | (pay_method == M_SO)
    logits[:, 0] += 0.6 * bank + 0.3 * (sector == 1) - 0.3 * (benefit0 == B_UC)
    logits[:, 1] += -1.5 * bank + 0.6 * (pay_method == M_CASH)
    logits[:, 2] += -0.5 * bank + 0.5 * (pay_method == M_CASH) + 0.4 * (benefit0 == B_UC) + 0.5 * (sector == 2)
    logits[:, 3] += 0.4 * (benefit0 == B_UC) + 0.3 * vulnerable
    logits[:, 4] += -0.5 * bank + 0.4 * (benefit0 == B_UC) + 0.5 * (sector == 2) + 0.3 * vulnerable
    archetype = _gumbel_choice(rng, logits)
    P = ARCHETYPE_PARAMS.iloc[archetype]

    def noisy(col: str, cap: float = 0.95) -> np.ndarray:
        return np.clip(P[col].to_numpy() * rng.lognormal(0.0, 0.35, n), 0.0, cap)

    p_skip = noisy("p_skip")
    p_partial = noisy("p_partial")
    partial_lo = P["partial_lo"].to_numpy()
    partial_hi = P["partial_hi"].to_numpy()
    catchup = rng.uniform(P["catchup_lo"].to_numpy(), P["catchup_hi"].to_numpy())
    p_catch = noisy("p_catch", 1.0)
    keep = 1.0 - noisy_keep(rng, P["keep"].to_numpy())
    agree = np.clip(P["agree"].to_numpy() + rng.normal(0, 0.08, n), 0.02, 0.98)
    shock_rate = P["shock_rate"].to_numpy() * rng.lognormal(0.0, 0.3, n)
    delay_base = rng.uniform(P["delay_lo"].to_numpy(), P["delay_hi"].to_numpy())
    delay_jitter = P["delay_jitter"].to_numpy() * rng.lognormal(0.0, 0.2, n)
    pays_ahead = rng.random(n) < np.where(archetype == 0, 0.8, 0.5)
    round_pounds = (pay_method == M_CASH) | ((pay_method == M_CARD) & (rng.random(n) < 0.5))
    # Standing orders (bank transfers) reach the rent account one or two working days after they are sent.
    fixed_delay = np.where(pay_method == M_SO, rng.integers(1, 4, n), 0)
    # Cash (PayPoint, Post Office) and some card payments arrive in the next day's file.
    next_day_file = rng.random(n) < 0.5

    # Opening (legacy) balance at simulation start, in weeks of rent, for tenancies already running.
    r = rng.random(n)
    legacy_weeks = np.select(
        [archetype == 4, archetype == 2, archetype == 1, archetype == 3],
        [rng.uniform(2, 12, n), np.where(r < 0.6, rng.exponential(1.2, n), 0.0),
         np.where(r < 0.6, rng.exponential(0.6, n), 0.0), np.where(r < 0.4, rng.exponential(0.8, n), 0.0)],
        np.where(r < 0.08, rng.exponential(0.3, n), np.where(r > 0.93, -rng.uniform(0, 1.5, n), 0.0)),
    )
    legacy = np.where(start < 0, np.rint(legacy_weeks * weekly[:, 0]), 0).astype(np.int64)

    # -- tenant pay cycle ("cycle A": wages, pension/legacy benefits, or the direct debit date) ----------------
    a_kind = np.full(n, KIND_P7)
    a_res = np.zeros(n, dtype=np.int64)
    cyc = rng.random(n)
    # Earners: weekly (Fri/Thu), fortnightly (Fri), four-weekly (Fri), monthly (1st, 15th or 25th-28th).
    fri_or_thu = np.where(rng.random(n) < 0.8, 4, 3)
    earner_kind = np.select([cyc < 0.35, cyc < 0.55, cyc < 0.65], [0, 1, 2], 3)
    phase = rng.integers(0, 4, n)
    earner_res = np.where(
        earner_kind == 3,
        rng.choice([1, 15, 25, 26, 27, 28], size=n, p=[0.15, 0.1, 0.2, 0.15, 0.15, 0.25]),
        residue_for_weekday(fri_or_thu, sim_start, 7, 0) + 7 * (phase % np.array([1, 2, 4, 1])[earner_kind]),
    )
    # Pension and legacy-benefit incomes (HB shortfall payers): fortnightly / weekly / four-weekly, Mon-Fri.
    bw = rng.integers(0, 5, n)
    ben_kind = np.select([cyc < 0.5, cyc < 0.8], [1, 0], 2)
    ben_res = residue_for_weekday(bw, sim_start, 7, 0) + 7 * (phase % np.array([1, 2, 4])[ben_kind])
    a_kind = np.where(benefit0 == B_HB, ben_kind, earner_kind)
    a_res = np.where(benefit0 == B_HB, ben_res, earner_res)
    # Direct debits: on the rent date, or monthly on one of the landlord's collection dates.
    dd_monthly = (kind == KIND_MONTHLY) | (rng.random(n) < 0.5)
    dd_dom = np.where(kind == KIND_MONTHLY, rent_res, rng.choice([1, 8, 15, 22, 28], size=n))
    dd_kind = np.where(dd_monthly, KIND_MONTHLY, kind)
    dd_res = np.where(dd_monthly, dd_dom, rent_res)
    # Weekly direct debits for weekly rent: on the rent day, or on a Friday to match wages.
    dd_friday = ~dd_monthly & (kind == KIND_P7) & (rng.random(n) < 0.7)
    dd_res = np.where(dd_friday, residue_for_weekday(np.full(n, 4), sim_start, 7), dd_res)
    so_monthly = rng.random(n) < 0.6
    so_kind = np.where(so_monthly, KIND_MONTHLY, kind)
    so_res = np.where(so_monthly, rng.integers(1, 29, n), rent_res)
    a_kind = np.select([pay_method == M_DD, pay_method == M_SO], [dd_kind, so_kind], a_kind)
    a_res = np.select([pay_method == M_DD, pay_method == M_SO], [dd_res, so_res], a_res)
    a_weeks = KIND_WEEKS[a_kind]
    a_same_as_rent = (a_kind == kind) & (a_res == rent_res)

    # -- shock episodes ---------------------------------------------------------------------------------------
    sim_days = end_idx + 1
    span_lo = np.maximum(start, 0)
    span_hi = np.minimum(end, end_idx)
    span = np.maximum(span_hi - span_lo, 0)
    counts = rng.poisson(shock_rate * span / 365.25)
    owner = np.repeat(np.arange(n), counts)
    s_start = span_lo[owner] + (rng.random(len(owner)) * span[owner]).astype(np.int64)
    s_cluster = np.zeros(len(owner), dtype=bool)
    # Local employment shock: extra job losses and cut hours for earners in the affected patches.
    earner = benefit0 == B_NONE
    c_lo = np.maximum(cluster_start[patch], span_lo)
    c_hi = np.minimum(cluster_end[patch], span_hi)
    c_span = np.where(earner & (c_hi > c_lo), c_hi - c_lo, 0)
    c_counts = rng.poisson(1.6 * c_span / 365.25)
    c_owner = np.repeat(np.arange(n), c_counts)
    c_start = c_lo[c_owner] + (rng.random(len(c_owner)) * c_span[c_owner]).astype(np.int64)
    owner = np.concatenate([owner, c_owner])
    s_start = np.concatenate([s_start, c_start])
    s_cluster = np.concatenate([s_cluster, np.ones(len(c_owner), dtype=bool)])
    m = len(owner)
    is_earner = earner[owner]
    s_kind = np.where(
        is_earner,
        rng.choice([SK_JOB, SK_HOURS, SK_ILL, SK_HOUSE], size=m, p=[0.35, 0.30, 0.20, 0.15]),
        rng.choice([SK_BENEFIT, SK_ILL, SK_HOUSE], size=m, p=[0.45, 0.25, 0.30]),
    )
    s_kind = np.where(s_cluster, np.where(rng.random(m) < 0.6, SK_JOB, SK_HOURS), s_kind)
    SP = SHOCK_PARAMS.iloc[s_kind]
    dur = np.clip(SP["median_days"].to_numpy() * rng.lognormal(0.0, 0.5, m), 14, 240).astype(np.int64)
    s_end = s_start + dur
    severity = rng.uniform(0.6, 1.2, m)
    s_skip = np.clip(SP["skip"].to_numpy() * severity, 0.0, 0.98)
    s_factor = np.clip(1.0 - (1.0 - SP["factor"].to_numpy()) * severity, 0.05, 1.0)
    s_backdate = (s_kind == SK_BENEFIT) & (rng.random(m) < 0.6)
    has_lump = rng.random(m) < SP["p_lump"].to_numpy()
    s_lump_day = np.where(has_lump, s_end + rng.integers(7, 43, m), NEVER)
    s_lump_frac = rng.uniform(0.4, 1.0, m)
    s_lump_dhp = rng.random(m) < 0.35
    # Sort by tenancy then start; drop episodes starting inside an earlier one; keep the first MAX_SHOCKS.
    o = np.lexsort((s_start, owner))
    owner, s_start, s_end, s_kind = owner[o], s_start[o], s_end[o], s_kind[o]
    severity, s_skip, s_factor, s_backdate = severity[o], s_skip[o], s_factor[o], s_backdate[o]
    s_lump_day, s_lump_frac, s_lump_dhp, s_cluster = s_lump_day[o], s_lump_frac[o], s_lump_dhp[o], s_cluster[o]
    big = np.int64(4 * NEVER)
    key_end = owner.astype(np.int64) * big + s_end
    run_max = np.maximum.accumulate(key_end) if m else key_end
    prev_max = np.concatenate([[np.int64(-1)], run_max[:-1]]) if m else run_max
    same_owner_prev = np.concatenate([[False], owner[1:] == owner[:-1]]) if m else np.zeros(0, bool)
    overlap = same_owner_prev & (owner.astype(np.int64) * big + s_start <= prev_max)
    keepm = ~overlap
    owner, s_start, s_end, s_kind = owner[keepm], s_start[keepm], s_end[keepm], s_kind[keepm]
    severity, s_skip, s_factor, s_backdate = severity[keepm], s_skip[keepm], s_factor[keepm], s_backdate[keepm]
    s_lump_day, s_lump_frac, s_lump_dhp = s_lump_day[keepm], s_lump_frac[keepm], s_lump_dhp[keepm]
    s_cluster = s_cluster[keepm]
    firsts = np.concatenate([[True], owner[1:] != owner[:-1]]) if len(owner) else np.zeros(0, bool)
    group_start = np.maximum.accumulate(np.where(firsts, np.arange(len(owner)), 0)) if len(owner) else owner
    rank = np.arange(len(owner)) - group_start
    sel = rank < MAX_SHOCKS
    owner, rank = owner[sel], rank[sel]
    shocks = {
        "start": s_start[sel], "end": s_end[sel], "kind": s_kind[sel], "severity": severity[sel],
        "skip": s_skip[sel], "factor": s_factor[sel], "backdate": s_backdate[sel], "lump_day": s_lump_day[sel],
        "lump_frac": s_lump_frac[sel], "lump_dhp": s_lump_dhp[sel], "cluster": s_cluster[sel],
    }
    K = MAX_SHOCKS + 1  # last column always empty
    sh = {}
    for name, fill, dtype in (("start", NEVER, np.int64), ("end", NEVER, np.int64), ("kind", -1, np.int64),
                              ("skip", 0.0, float), ("factor", 1.0, float), ("backdate", False, bool),
                              ("lump_day", NEVER, np.int64), ("lump_frac", 0.0, float), ("lump_dhp", False, bool),
                              ("severity", 0.0, float), ("cluster", False, bool)):
        arr = np.full((n, K), fill, dtype=dtype)
        arr[owner, rank] = shocks[name]
        sh[name] = arr

    # -- benefit timelines ------------------------------------------------------------------------------------
    hb_from = np.where(benefit0 == B_HB, np.where(start <= 0, FAR_PAST, start), NEVER)
    hb_first_run = np.where(benefit0 == B_HB, np.where(start <= 0, FAR_PAST, start + rng.integers(21, 50, n)), NEVER)
    hb_to = np.full(n, NEVER)
    uc_from = np.where(benefit0 == B_UC, FAR_PAST, NEVER)
    uc_reason = np.where(benefit0 == B_UC, 0, -1)  # 0 existing, 1 move-in new claim, 2 job loss, 3 migration
    # UC tenants moving in during the simulation: half are new claims with the five-week wait.
    new_uc = (benefit0 == B_UC) & (start > 0) & (rng.random(n) < 0.5)
    uc_from = np.where(new_uc, start, uc_from)
    uc_reason = np.where(new_uc, 1, uc_reason)
    # Earners whose first shock in the simulation is a job loss often claim UC.
    first_kind = sh["kind"][:, 0]
    p_claim = np.where(sector == 1, 0.4, 0.6)
    job_claim = earner & (first_kind == SK_JOB) & (rng.random(n) < p_claim)
    uc_from = np.where(job_claim, sh["start"][:, 0] + rng.integers(0, 15, n), uc_from)
    uc_reason = np.where(job_claim, 2, uc_reason)
    # Working-age Housing Benefit claimants move to UC (managed migration); HB runs on for two weeks.
    mig_lo = np.maximum(start, 0) + 30
    mig_hi = np.minimum(end, end_idx)
    migrate = (benefit0 == B_HB) & (mig_hi > mig_lo) & (rng.random(n) < 1 - np.exp(-0.15 * sim_days / 365.25))
    mig_day = mig_lo + (rng.random(n) * np.maximum(mig_hi - mig_lo, 1)).astype(np.int64)
    uc_from = np.where(migrate, mig_day, uc_from)
    hb_to = np.where(migrate, mig_day + 14, hb_to)
    uc_reason = np.where(migrate, 3, uc_reason)
    uc_first_pay = np.where(uc_from == FAR_PAST, FAR_PAST, np.where(uc_from >= NEVER, NEVER, uc_from + 35))
    uc_dom = np.where(uc_from == FAR_PAST, rng.integers(1, 29, n), np.minimum(dom_of(np.where(
        uc_first_pay >= NEVER, 0, uc_first_pay), sim_start), 28))
    # Managed payments (APA, paid to the landlord): some existing claimants, some new claims.
    apa_existing = (uc_from == FAR_PAST) & (rng.random(n) < np.where(sector == 1, 0.05, 0.15 + 0.25 * vulnerable))
    apa_new = (uc_from > FAR_PAST) & (uc_from < NEVER) & (rng.random(n) < 0.2 + 0.3 * vulnerable + 0.2 * migrate)
    apa_from = np.where(apa_existing, FAR_PAST, np.where(apa_new, uc_first_pay + rng.integers(25, 40, n), NEVER))
    # UC deduction for rent arrears paid alongside managed payments (pence per month).
    tpd = np.rint(rng.uniform(20.0, 60.0, n)) * 100
    # UC advances: some new claimants pay something from the advance during the wait.
    has_adv = (uc_from > FAR_PAST) & (uc_from < NEVER) & (rng.random(n) < 0.2)
    adv_day = np.where(has_adv, uc_from + rng.integers(7, 22, n), NEVER)
    adv_amt = np.rint(rng.uniform(0.3, 0.6, n) * weekly[:, 0] * 52.0 / 12.0 / 100.0) * 100
    # The tenant's own payments when the landlord is paid by benefit directly.
    full_hb = (benefit0 == B_HB) & (cov_hb >= 0.999)
    tenant_method = np.where(rng.random(n) < 0.6, M_CARD, M_CASH)
    pay_method = np.where(full_hb | apa_existing, tenant_method, pay_method)
    round_pounds = np.where(full_hb | apa_existing, pay_method == M_CASH, round_pounds)
    fixed_delay = np.where(full_hb | apa_existing, 0, fixed_delay)
    posting_lag = ((pay_method == M_CASH) | ((pay_method == M_CARD) & next_day_file)).astype(np.int64)
    a_kind = np.where(full_hb & ~np.isin(pay_method, [M_DD, M_SO]), ben_kind, a_kind)
    a_res = np.where(full_hb & ~np.isin(pay_method, [M_DD, M_SO]), ben_res, a_res)
    a_weeks = KIND_WEEKS[a_kind]
    a_same_as_rent = (a_kind == kind) & (a_res == rent_res)

    # -- contact preferences, language ------------------------------------------------------------------------
    ch_p = np.tile([0.40, 0.20, 0.25, 0.15], (n, 1))
    ch_p[pay_method == M_DD] = [0.30, 0.35, 0.25, 0.10]
    ch_p[pay_method == M_CASH] = [0.45, 0.05, 0.25, 0.25]
    ch_p[sector == 1] = [0.25, 0.45, 0.25, 0.05]
    channel = _row_choice(rng, ch_p)
    language = np.where(rng.random(n) < 0.9, 0, rng.choice(np.arange(1, len(LANGUAGES)), size=n))

    patch_table = pd.DataFrame({
        "patch": names, "weight": patch_weight, "social_share": social_share, "rent_multiplier": rent_mult,
        "hb_run_residue": hb_res,
        "local_shock_start": _maybe_dates(grid, cluster_start), "local_shock_end": _maybe_dates(grid, cluster_end),
    })

    a = dict(
        patch=patch, sector=sector, tenure=tenure, kind=kind, rent_res=rent_res, start=start, end=end,
        movein=movein, property_number=property_number, rent=rent, weekly=weekly,
        benefit0=benefit0, vulnerable=vulnerable, cov_hb=cov_hb, cov_uc=cov_uc,
        archetype=archetype, p_skip=p_skip, p_partial=p_partial, partial_lo=partial_lo, partial_hi=partial_hi,
        catchup=catchup, p_catch=p_catch, keep=keep, agree=agree, shock_rate=shock_rate,
        pays_ahead=pays_ahead, posting_lag=posting_lag, delay_base=delay_base, delay_jitter=delay_jitter,
        round_pounds=round_pounds, fixed_delay=fixed_delay,
        pay_method=pay_method, legacy=legacy, legacy_weeks=np.where(start < 0, legacy_weeks, 0.0),
        a_kind=a_kind, a_res=a_res, a_weeks=a_weeks, a_same_as_rent=a_same_as_rent,
        hb_res=hb_res[patch], hb_from=hb_from, hb_first_run=hb_first_run, hb_to=hb_to,
        uc_from=uc_from, uc_first_pay=uc_first_pay, uc_dom=uc_dom, uc_reason=uc_reason, apa_from=apa_from, tpd=tpd,
        adv_day=adv_day, adv_amt=adv_amt, channel=channel, language=language,
        **{f"sh_{k}": v for k, v in sh.items()},
    )
    a["shock_count"] = (sh["kind"] >= 0).sum(axis=1)
    return Population(
        n=n, grid=grid, ws_idx=ws_idx, end_idx=end_idx, patches=names, patch_table=patch_table,
        rent_change_days={"periodic": periodic_change, "monthly": monthly_change}, a=a,
    )


def noisy_keep(rng: np.random.Generator, keep: np.ndarray) -> np.ndarray:
    """Per-tenancy chance of *missing* an arrangement instalment, spread around the archetype's."""
    return np.clip((1.0 - keep) * rng.lognormal(0.0, 0.4, len(keep)), 0.005, 0.8)


def _maybe_dates(grid: DayGrid, days: np.ndarray) -> pd.Series:
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
    ben = circumstances["benefit"]
    meth = circumstances["payment_method"]
    chan = circumstances["channel"]
    ten = circumstances["tenure"]
    vul = circumstances["vulnerable"]
    lang = circumstances["language"]
    patch = circumstances["patch"]
    n = len(ben)
    logits = np.tile(np.array([-0.8, 0.3, 0.4, 0.4, 0.2, 0.0]), (n, 1))
    logits += np.array([[0.0, 0.2, 0.3, 0.2, 0.0, -0.5], [-1.5, -1.0, -0.7, -0.3, 0.3, 2.2],
                        [0.6, 0.6, 0.4, 0.1, -0.2, -2.5]])[ben]
    logits += np.array([[-0.6, -0.2, 0.1, 0.2, 0.3, 0.3], [-0.3, -0.1, 0.1, 0.2, 0.2, 0.2],
                        [0.4, 0.3, 0.1, 0.0, -0.2, -0.5], [0.3, -0.1, -0.2, -0.1, 0.2, 0.6],
                        [-0.3, -0.2, 0.0, 0.0, 0.1, 0.5]])[meth]
    logits += np.array([[0.0] * 6, [0.2, 0.4, 0.3, 0.1, -0.2, -0.6], [0.5, 0.4, 0.2, 0.0, -0.3, -0.8],
                        [-1.0, -0.7, -0.4, 0.0, 0.5, 1.3]])[chan]
    logits += np.array([[-1.2, -0.6, -0.1, 0.2, 0.5, 0.9], [0.0] * 6, [0.6, 0.6, 0.2, -0.1, -0.4, -0.8],
                        [0.9, 0.5, 0.1, -0.2, -0.6, -1.2]])[ten]
    age = _gumbel_choice(rng, logits)

    p_female = 0.54 + 0.08 * (ben == B_UC) + 0.05 * (ten == 3)
    u = rng.random(n)
    sex = np.where(u < 0.02, 2, np.where(u < 0.02 + 0.98 * p_female, 0, 1))

    # Patches differ in the mix of their tenants' backgrounds.
    eth_mix = rng.dirichlet(np.array([0.78, 0.04, 0.09, 0.06, 0.03]) * 25, n_patches)
    probs = eth_mix[patch].copy()
    # Language spoken shifts the likely ethnic background.
    shift = {1: 0, 2: 0, 8: 0, 9: 0, 3: 2, 4: 2, 7: 2, 5: 3, 6: 4}
    for code, group in shift.items():
        rows = lang == code
        probs[rows] *= 0.15
        probs[rows, group] += 0.85
    probs = np.hstack([probs * 0.96, np.full((n, 1), 0.04)])
    ethnicity = _row_choice(rng, probs)

    dis_logit = -2.2 + 1.8 * vul + 0.7 * (ben != B_NONE) + 0.6 * (age >= 4) + 0.4 * (meth == M_BENEFIT)
    u = rng.random(n)
    disability = np.where(u < 0.03, 2, np.where(rng.random(n) < 1 / (1 + np.exp(-dis_logit)), 0, 1))
    return {"age_band": age, "sex": sex, "ethnicity": ethnicity, "disability": disability}
