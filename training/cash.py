"""The cash forecast for treasury, pure: receipts per week simulated from the payment-date model's distributions.

Each tenancy's first payment day is drawn from its payment-date distribution (`training.payment_date`), later ones
follow at gaps drawn from its own recent gaps, each for an amount that keeps its recent money per day; a payment
due on a day the bank does not post (the weekdays the ledger shows quiet, and bank holidays when the ledger shows
them quiet) lands on the next day it does. Simulated tenants are independent, but a week's receipts also move
together (a benefit run late, a month's paydays landing in one week or the next, a season): each simulation's week
is scaled by a common factor whose spread (`CommonFactor`, wider in month-start weeks) is estimated at training
time from backtest weeks the model had not seen. Many simulations give each week's P10/P50/P90, portfolio-wide
and per patch. The backtest sets forecasts from past dates against what then came in, beside the last-4-weeks
average a finance team would otherwise use.

No I/O here: `training.train` backtests it at training time and `serving.treasury.forecast` runs it on today's
features.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import holidays
import lightgbm as lgb
import numpy as np
import pandas as pd

from features.feeds.contract import periods_per_year
from training.labels import PaymentLabelSpec, daily_receipts, qualifying_days_of
from training.payment_date import BIN_EDGES, cdf_at_edges, hazards


def period_days(tenancies: pd.DataFrame) -> np.ndarray:
    """Days in each tenancy's rent period."""
    return 365.25 / periods_per_year(tenancies["rent_frequency"])


def tenant_habits(paid_days: pd.DataFrame, receipt_days: pd.DataFrame, as_of: pd.Timestamp,
                  tenancy_ids: np.ndarray, period_days: np.ndarray, started: np.ndarray | None = None,
                  lookback_days: int = 182, max_gaps: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per tenancy, from its last 26 weeks up to as_of: the amount per payment and its recent gaps between payments.

    The gaps are those between its payment days (a tenancy with fewer than two gets its rent period). The amount
    keeps the money right, not the count: the tenancy's receipts per day over the days it was live in the window,
    times its mean gap. Gaps seen only between payments miss the long silences of an irregular payer (before its
    first payment in the window, and since its last), so dividing its money by its payments instead would
    simulate one payment each period for a tenant who paid twice in six months. `started`: tenancy start dates
    (None: every tenancy was live all window).
    """
    day = pd.Timestamp(as_of).tz_localize(None).normalize() if pd.Timestamp(as_of).tz else pd.Timestamp(as_of)
    since = day - pd.Timedelta(days=lookback_days)

    def window(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[(frame["day"] <= day) & (frame["day"] > since)]

    received = window(receipt_days).groupby("tenancy_id")["amount_pence"].sum()
    groups = {t: g for t, g in window(paid_days).groupby("tenancy_id")}
    live_days = np.full(len(tenancy_ids), float(lookback_days))
    if started is not None:
        first = np.maximum(pd.to_datetime(pd.Series(started)).to_numpy(), since.to_datetime64())
        live_days = np.clip((day.to_datetime64() - first) / np.timedelta64(1, "D"), 1.0, lookback_days)
    live_days = np.maximum(live_days, period_days)  # a new tenancy's move-in receipts are not its weekly habit
    amount = np.zeros(len(tenancy_ids))
    gaps = np.zeros((len(tenancy_ids), max_gaps))
    counts = np.ones(len(tenancy_ids), dtype=int)
    gaps[:, 0] = period_days
    for i, tenancy in enumerate(tenancy_ids):
        g = groups.get(tenancy)
        if g is None:
            continue
        d = np.diff(g["day"].to_numpy(dtype="datetime64[D]").astype(np.int64))[-max_gaps:]
        if len(d):
            gaps[i, : len(d)] = d
            counts[i] = len(d)
        amount[i] = received.get(tenancy, 0.0) / live_days[i] * gaps[i, : counts[i]].mean()
    return amount, gaps, counts


#: A tenancy pays by the calendar when a qualifying payment came on one day of the month (or the Monday after it, when
#: it fell on a weekend) in at least this share of the months it was live in its last 26 weeks, in three or more.
CALENDAR_SHARE = 0.75
CALENDAR_MIN_MONTHS = 3
#: A tenancy that pays about monthly (its payments a median of this many days apart or more) may pay up to
#: `CALENDAR_LATE_DAYS` after its day: wages on the 25th, paid by card a day or three later. Paid more often, only
#: its day itself counts (a weekly payer meets any few days of every month).
CALENDAR_MONTHLY_GAP = 21
CALENDAR_LATE_DAYS = 3
#: Days late kept per tenancy (its last months'), drawn from when its payments are simulated.
CALENDAR_OFFSETS = 8


@dataclass(frozen=True)
class CalendarPayers:
    """Tenancies paid on a day of the month (wages, Universal Credit, a standing order): `dom` (1..28; 0 for the
    others), the share of recent months the payment came (`share`) and its usual amount in those months (`amount`,
    pence). A month is 28 to 31 days, so gaps between such payments drift against a week grid: simulated from its
    gaps, a payment due on the 1st lands in the week before when the 1st is a Saturday (posted the Monday after).
    `late`: how many days after its day each of its recent payments came (up to `CALENDAR_OFFSETS`, -1 padding;
    all 0 for a tenant paid on the day), drawn from when it is simulated."""

    dom: np.ndarray
    share: np.ndarray
    amount: np.ndarray
    money: np.ndarray  #: pence received on those days over the window (the rest is simulated from the gaps)
    late: np.ndarray

    @classmethod
    def none(cls, n: int) -> CalendarPayers:
        late = np.full((n, CALENDAR_OFFSETS), -1, dtype=int)
        late[:, 0] = 0
        return cls(np.zeros(n, dtype=int), np.zeros(n), np.zeros(n), np.zeros(n), late)


def rolled_due_days(dom: int, first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
    """Day `dom` of every month from `first` to `last` (inclusive), a Saturday or Sunday moved to the Monday."""
    months = pd.period_range(first.to_period("M"), last.to_period("M"), freq="M")
    due = pd.DatetimeIndex([m.to_timestamp() + pd.Timedelta(days=dom - 1) for m in months])
    due = due + pd.to_timedelta(np.where(due.weekday == 5, 2, np.where(due.weekday == 6, 1, 0)), unit="D")
    return due[(due >= first) & (due <= last)]


def _calendar_hits(window: pd.DataFrame, since: pd.Timestamp, day: pd.Timestamp) -> pd.DataFrame:
    """For every day of the month d (1..28) and tenancy, the months whose (rolled) day d a qualifying payment met:
    on the day, or up to `CALENDAR_LATE_DAYS` after it for a tenancy paying about monthly. One row per (tenancy,
    dom, due date): the money paid in that window and how late its first payment came."""
    window = window.assign(day=pd.to_datetime(window["day"])).sort_values(["tenancy_id", "day"], kind="stable")
    days = window["day"].to_numpy("datetime64[D]")
    gaps = window["day"].diff().dt.days.where(window["tenancy_id"].eq(window["tenancy_id"].shift()))
    gap = window["tenancy_id"].map(gaps.groupby(window["tenancy_id"]).median()).to_numpy()
    patience = np.where(gap >= CALENDAR_MONTHLY_GAP, CALENDAR_LATE_DAYS, 0)
    frames = []
    for d in range(1, 29):
        due = rolled_due_days(d, since, day).to_numpy("datetime64[D]")
        if not len(due):
            continue
        at = np.searchsorted(due, days, side="right") - 1
        late = (days - due[np.maximum(at, 0)]).astype(int)
        met = (at >= 0) & (late <= patience)
        frames.append(pd.DataFrame({"tenancy_id": window["tenancy_id"].to_numpy()[met], "dom": d,
                                    "due": due[at[met]], "late": late[met],
                                    "amount_pence": window["amount_pence"].to_numpy(float)[met]}))
    hits = pd.concat(frames, ignore_index=True).sort_values(["tenancy_id", "dom", "due", "late"], kind="stable")
    return hits.groupby(["tenancy_id", "dom", "due"], as_index=False, sort=False).agg(
        amount_pence=("amount_pence", "sum"), late=("late", "first"))


def calendar_payers(paid_days: pd.DataFrame, as_of: pd.Timestamp, tenancy_ids: np.ndarray,
                    started: np.ndarray | None = None, lookback_days: int = 182) -> CalendarPayers:
    """Which tenancies pay on a day of the month, from their qualifying payment days in the last 26 weeks: the day
    of month (1..28) whose dates (a weekend's moved to the Monday; for a tenancy paying about monthly, up to
    `CALENDAR_LATE_DAYS` later) met a payment in the most months (the fewest days late between equals), kept when
    it did in at least `CALENDAR_SHARE` of at least `CALENDAR_MIN_MONTHS` months live."""
    day = _day(as_of)
    since = day - pd.Timedelta(days=lookback_days - 1)
    window = paid_days[(paid_days["day"] <= day) & (paid_days["day"] >= since)]
    window = window[window["tenancy_id"].isin(set(tenancy_ids))]
    out = CalendarPayers.none(len(tenancy_ids))
    if window.empty:
        return out
    hits = _calendar_hits(window, since, day)
    stats = hits.groupby(["tenancy_id", "dom"]).agg(size=("due", "size"), mean=("amount_pence", "mean"),
                                                    sum=("amount_pence", "sum"), late=("late", "mean")).reset_index()
    best = stats.sort_values(["size", "late", "dom"], ascending=[False, True, True]).drop_duplicates("tenancy_id")
    rows = best["tenancy_id"].map({t: i for i, t in enumerate(tenancy_ids)}).to_numpy()
    first_live = (pd.to_datetime(pd.Series(started)).to_numpy()[rows] if started is not None
                  else np.full(len(rows), np.datetime64("NaT"), dtype="datetime64[ns]"))
    begin = np.where(pd.isna(first_live), since.to_datetime64(), np.maximum(first_live, since.to_datetime64()))
    months = np.zeros(len(best), dtype=int)
    doms = best["dom"].to_numpy()
    for d in np.unique(doms):  # the months live since `begin` whose day d has come by as_of
        on = doms == d
        months[on] = (rolled_due_days(int(d), since, day).to_numpy()[None, :] >= begin[on][:, None]).sum(axis=1)
    share = best["size"].to_numpy() / np.maximum(months, 1)
    keep = (months >= CALENDAR_MIN_MONTHS) & (share >= CALENDAR_SHARE)
    out.dom[rows[keep]], out.share[rows[keep]] = doms[keep], np.minimum(1.0, share[keep])
    out.amount[rows[keep]], out.money[rows[keep]] = best["mean"].to_numpy()[keep], best["sum"].to_numpy()[keep]
    chosen = hits.merge(best[["tenancy_id", "dom"]][keep], on=["tenancy_id", "dom"])
    chosen = chosen.groupby("tenancy_id", sort=False).tail(CALENDAR_OFFSETS)
    slot = chosen.groupby("tenancy_id", sort=False).cumcount().to_numpy()
    position = chosen["tenancy_id"].map({t: i for i, t in enumerate(tenancy_ids)}).to_numpy()
    out.late[position] = -1
    out.late[position, slot] = chosen["late"].to_numpy()
    return out


def _late_draws(late: np.ndarray, sims: int, rng: np.random.Generator) -> np.ndarray:
    """(sims, members): for each simulation, one of each member's recent days late, equally likely."""
    count = np.maximum((late >= 0).sum(axis=1), 1)
    pick = np.floor(rng.random((sims, len(late))) * count[None, :]).astype(int)
    return np.maximum(late[np.arange(len(late))[None, :], pick], 0)


def simulate_calendar(calendar: CalendarPayers, start: pd.Timestamp, weeks: int, sims: int, seed: int = 0,
                      posted: np.ndarray | None = None, horizon: Horizon | None = None) -> np.ndarray:
    """Receipts (sims, tenancies, weeks, or a `horizon`'s buckets) of the calendar payers: on each of their dates
    after `start`, as late as one of their recent payments came (posted as `posted` says), their usual amount,
    paid in a month with their recent months' share."""
    rng = np.random.default_rng(seed + 1)
    horizon = horizon or Horizon.weekly(weeks)
    day = _day(start)
    out = np.zeros((sims, len(calendar.dom), horizon.buckets))
    for d in np.unique(calendar.dom[calendar.dom > 0]):
        members = np.flatnonzero(calendar.dom == d)
        for date in rolled_due_days(int(d), day + pd.Timedelta(days=1), day + pd.Timedelta(days=horizon.days)):
            offset = int((date - day).days) + _late_draws(calendar.late[members], sims, rng)
            landed = np.where(offset < len(posted), posted[np.clip(offset, 0, len(posted) - 1)], offset) \
                if posted is not None else offset
            counted = landed <= horizon.days
            counted[counted] &= horizon.bucket[landed[counted]] >= 0
            paid = counted & (rng.random((sims, len(members))) < calendar.share[members][None, :])
            sim, member = np.nonzero(paid)
            np.add.at(out, (sim, members[member], horizon.bucket[landed[sim, member]]),
                      calendar.amount[members][member] * horizon.scale[landed[sim, member]])
    return out


#: Bank holidays are days the bank does not post when their receipts (over the last year) were under this share of
#: their weekdays' usual receipts.
QUIET_DAY_SHARE = 0.1
#: Days a payment may wait for a posting day (Christmas and Boxing Day on a Friday and Monday: four).
MAX_ROLL_DAYS = 7


def bank_holidays(first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
    """England and Wales bank holidays from `first` to `last` (the `holidays` package's calendar)."""
    days = holidays.country_holidays("GB", subdiv="ENG", years=range(first.year, last.year + 1))
    return pd.DatetimeIndex(sorted(pd.Timestamp(d) for d in days if first <= pd.Timestamp(d) <= last))


def _day(as_of: pd.Timestamp) -> pd.Timestamp:
    as_of = pd.Timestamp(as_of)
    return (as_of.tz_localize(None) if as_of.tz is not None else as_of).normalize()


def posting_days(daily: pd.DataFrame, as_of: pd.Timestamp, days: int, lookback_days: int = 364) -> np.ndarray:
    """For each day 0..days after `as_of` (as offsets), the offset of the day money due then is posted: itself, or
    after a bank holiday the next working day, when the ledger's last year (`daily`: day, amount_pence) shows its
    bank holidays quiet (under `QUIET_DAY_SHARE` of their weekdays' usual receipts; a year with none is taken as
    quiet). Weekends are not moved: the payment-date model learnt from posting days and the tenants' gaps are
    between posting days, and moving weekend days as well made the bench's weeks 1-2 worse (WAPE 0.065 to 0.096)."""
    day = _day(as_of)
    since = day - pd.Timedelta(days=lookback_days)
    seen = daily[(daily["day"] > since) & (daily["day"] <= day)].groupby("day")["amount_pence"].sum()
    dates = pd.date_range(since + pd.Timedelta(days=1), day)
    per_day = seen.reindex(dates, fill_value=0).astype(float)
    past = dates.isin(bank_holidays(dates[0], day))
    weekday_mean = per_day[~past].groupby(dates[~past].weekday).mean().reindex(range(7), fill_value=0.0)
    usual = weekday_mean.to_numpy()[dates[past].weekday].sum()
    future = pd.date_range(day, periods=days + 1 + MAX_ROLL_DAYS)
    posted = np.arange(len(future))
    if past.any() and per_day[past].sum() >= QUIET_DAY_SHARE * usual:
        return posted[: days + 1]  # this bank posts on bank holidays
    closed = future.isin(bank_holidays(future[0], future[-1]))
    working = ~closed & (future.weekday < 5)
    for k in np.flatnonzero(closed)[::-1]:  # a bank holiday's money is posted on the next working day
        later = np.flatnonzero(working[k + 1:])
        posted[k] = k + 1 + later[0] if len(later) else k
    return posted[: days + 1]


def month_start_weeks(week_starts) -> np.ndarray:
    """Whether each week (7 days from its start) holds the first working day of a month: the day monthly wages,
    pensions and direct debits mostly land."""
    starts = pd.DatetimeIndex(pd.to_datetime(pd.Series(week_starts)))
    first, last = starts.min() - pd.Timedelta(days=31), starts.max() + pd.Timedelta(days=7)
    closed = bank_holidays(first, last)
    working = pd.bdate_range(first, last)
    working = working[~working.isin(closed)]
    first_working = pd.Series(working).groupby(working.to_period("M")).min().to_numpy(dtype="datetime64[D]")
    begin = starts.to_numpy(dtype="datetime64[D]")
    return np.array([((first_working >= b) & (first_working < b + np.timedelta64(7, "D"))).any() for b in begin])


@dataclass(frozen=True)
class CommonFactor:
    """What moves many tenants' receipts in the same week, beyond each tenant's own uncertainty: the standard
    deviation, on the log scale, of a factor every simulated week is multiplied by (the same for every tenancy and
    patch), in month-start weeks and in the others; and its level (`*_level`): the mean log error by which the
    backtest's simulations fell short (positive) or overshot, which lifts the forecast's mean and band by
    exp(level). Estimated by `estimate_common_factor` from backtest weeks; zero (tenants' own uncertainty only, no
    lift) when too few were seen."""

    month_start: float = 0.0
    other: float = 0.0
    weeks_seen: int = 0
    month_start_level: float = 0.0
    other_level: float = 0.0

    def tags(self) -> dict[str, str]:
        return {"cash_common_factor": json.dumps({
            "month_start": round(self.month_start, 5), "other": round(self.other, 5), "weeks_seen": self.weeks_seen,
            "month_start_level": round(self.month_start_level, 5), "other_level": round(self.other_level, 5)})}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> CommonFactor:
        return cls(**json.loads(tags["cash_common_factor"])) if "cash_common_factor" in tags else cls()

    def lift(self, week_starts) -> np.ndarray:
        """exp(level) of each week, by its kind: what the forecast's mean is multiplied by."""
        return np.exp(np.where(month_start_weeks(week_starts), self.month_start_level, self.other_level))

    def draws(self, week_starts, sims: int, seed: int = 0) -> np.ndarray:
        """Factors (sims, weeks) with mean `lift`: exp(level + sd z - sd^2/2), z standard normal, sd and level by
        the week's kind."""
        sd = np.where(month_start_weeks(week_starts), self.month_start, self.other)
        z = np.random.default_rng(seed).standard_normal((sims, len(sd)))
        return np.exp(sd[None, :] * z - sd[None, :] ** 2 / 2) * self.lift(week_starts)[None, :]


#: Backtest weeks needed in a kind of week (month-start or other) before its own spread is estimated.
MIN_FACTOR_WEEKS = 8


def _shrunk_level(error: np.ndarray, weeks: np.ndarray) -> float:
    """The mean log error of backtest rows over their distinct calendar weeks (the rows of one week share its
    error), shrunk toward zero by its own noise: mean x max(0, 1 - se^2/mean^2), so a level within about one
    standard error of zero lifts nothing and a clear shortfall is corrected nearly whole."""
    by_week = pd.Series(error).groupby(weeks).mean()
    if len(by_week) < 2 or by_week.mean() == 0:
        return 0.0
    mean, se2 = float(by_week.mean()), float(by_week.var(ddof=1)) / len(by_week)
    return mean * max(0.0, 1.0 - se2 / mean**2)


def estimate_common_factor(backtest: pd.DataFrame) -> CommonFactor:
    """The common factor from backtest rows (week_start, actual, mean, sim_log_sd: the simulations' own log-scale
    spread of that week's total), for month-start weeks and the others (a kind seen in fewer than
    `MIN_FACTOR_WEEKS` rows takes the pooled figures): its level, the rows' mean log error log(actual/mean)
    (`_shrunk_level`), and its spread, what the errors hold around that level beyond the simulations' own spread,
    sqrt(mean((error - level)^2) - mean(sim_log_sd^2))."""
    rows = backtest[(backtest["actual"] > 0) & (backtest["mean"] > 0)]
    if len(rows) < MIN_FACTOR_WEEKS:
        return CommonFactor()
    error = np.log(rows["actual"] / rows["mean"]).to_numpy()
    own, weeks = rows["sim_log_sd"].to_numpy() ** 2, pd.to_datetime(rows["week_start"]).to_numpy()
    kind = month_start_weeks(rows["week_start"])

    def fit(members: np.ndarray) -> tuple[float, float]:
        level = _shrunk_level(error[members], weeks[members])
        return float(np.sqrt(max(0.0, ((error[members] - level) ** 2 - own[members]).mean()))), level

    pooled = fit(np.ones(len(rows), dtype=bool))
    month_start = fit(kind) if kind.sum() >= MIN_FACTOR_WEEKS else pooled
    other = fit(~kind) if (~kind).sum() >= MIN_FACTOR_WEEKS else pooled
    return CommonFactor(month_start[0], other[0], len(rows), month_start[1], other[1])


@dataclass(frozen=True)
class Blend:
    """Per weeks ahead, the weight of the simulation in the forecast against the naive baseline (each tenancy's
    average week over the last four): every simulated week becomes w·simulated + (1 − w)·baseline, so the mean is
    w·model + (1 − w)·baseline and the band moves with it. Estimated at training time (`estimate_blend`) from the
    backtest weeks the model had not seen; no weights (the default) is the simulation alone."""

    weights: tuple[float, ...] = ()
    origins_seen: int = 0

    def weight(self, weeks: int) -> np.ndarray:
        """Weights for weeks 1..weeks (beyond the estimated ones: the last estimated; none: 1)."""
        if not self.weights:
            return np.ones(weeks)
        return np.array([self.weights[min(w, len(self.weights) - 1)] for w in range(weeks)])

    def tags(self) -> dict[str, str]:
        return {"cash_blend": json.dumps({"weights": [round(w, 3) for w in self.weights],
                                          "origins_seen": self.origins_seen})}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Blend:
        if "cash_blend" not in tags:
            return cls()
        found = json.loads(tags["cash_blend"])
        return cls(tuple(found["weights"]), found["origins_seen"])

    def apply(self, receipts: np.ndarray, baseline: np.ndarray, week_scale: np.ndarray | None = None) -> np.ndarray:
        """`receipts` (sims, tenancies, weeks) blended with each tenancy's `baseline` (pence a week; times
        `week_scale`, a scenario's, by week)."""
        w = self.weight(receipts.shape[2])
        naive = (1.0 - w) * (1.0 if week_scale is None else week_scale)
        return receipts * w[None, None, :] + baseline[None, :, None] * naive[None, None, :]


#: Weights tried for each week ahead, and the neighbouring weeks pooled with it (the backtest has few origins).
BLEND_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)
BLEND_POOL_WEEKS = 1


def estimate_blend(backtest: pd.DataFrame) -> Blend:
    """Per week ahead, the weight in `BLEND_GRID` whose blend of the simulation's mean and the baseline has the
    least absolute error over backtest rows (week, actual, mean, baseline) of that week and its neighbours
    (`BLEND_POOL_WEEKS` either side); ties go to the simulation. Fewer than `MIN_FACTOR_WEEKS` rows: no blend."""
    if len(backtest) < MIN_FACTOR_WEEKS:
        return Blend()
    weeks = sorted(backtest["week"].unique())
    chosen = []
    for w in weeks:
        part = backtest[(backtest["week"] - w).abs() <= BLEND_POOL_WEEKS]
        errors = [np.abs(part["actual"] - g * part["mean"] - (1 - g) * part["baseline"]).sum() for g in BLEND_GRID]
        best = min(errors)
        chosen.append(float(max(g for g, e in zip(BLEND_GRID, errors, strict=True) if e <= best * (1 + 1e-9))))
    return Blend(tuple(chosen), int(backtest["origin"].nunique()))


def tenancy_baselines(daily: pd.DataFrame, as_of: pd.Timestamp, tenancy_ids: np.ndarray) -> np.ndarray:
    """Each tenancy's naive forecast: its receipts over the four weeks to `as_of`, a week (pence)."""
    day = _day(as_of)
    window = daily[(daily["day"] > day - pd.Timedelta(weeks=4)) & (daily["day"] <= day)]
    return window.groupby("tenancy_id")["amount_pence"].sum().reindex(tenancy_ids, fill_value=0.0).to_numpy() / 4


@dataclass(frozen=True)
class Horizon:
    """What a simulation counts: the money posted on each day 0..days after the origin goes to a bucket (a week,
    a month; -1: not counted), multiplied by that day's `scale` (1, or a rent change's scenario from its day)."""

    bucket: np.ndarray
    buckets: int
    scale: np.ndarray
    kind: str = "week"  #: or "month"

    @property
    def days(self) -> int:
        return len(self.bucket) - 1

    @classmethod
    def weekly(cls, weeks: int) -> Horizon:
        """Weeks of days (origin + 7(w-1), origin + 7w]."""
        d = np.arange(weeks * 7 + 1)
        return cls(np.where(d == 0, -1, (d - 1) // 7), weeks, np.ones(len(d)))

    @classmethod
    def monthly(cls, origin: pd.Timestamp, months: int) -> Horizon:
        """The rest of the origin's month (bucket 0, from the day after it) and the `months` calendar months after."""
        day = _day(origin)
        end = (day.to_period("M") + months).to_timestamp(how="end").normalize()
        dates = pd.date_range(day, end)
        index = (dates.year - day.year) * 12 + (dates.month - day.month)
        return cls(np.where(np.arange(len(dates)) == 0, -1, index), months + 1, np.ones(len(dates)), "month")

    def bucket_scale(self) -> np.ndarray:
        """Each bucket's mean day scale (what a scenario does to money spread evenly over it)."""
        days = self.bucket >= 0
        return np.bincount(self.bucket[days], self.scale[days], self.buckets) / np.bincount(self.bucket[days],
                                                                                           minlength=self.buckets)

    def with_rent_change(self, origin: pd.Timestamp, percent: float) -> Horizon:
        """Money from the first Monday of April after `origin` (the rent year's start) changed by `percent`."""
        if not percent:
            return self
        start = rent_year_start_after(origin)
        days = (start - _day(origin)).days
        scale = self.scale.copy()
        scale[days:] *= 1.0 + percent / 100.0
        return replace(self, scale=scale)


def first_monday_of_april(year: int) -> pd.Timestamp:
    april = pd.Timestamp(year=year, month=4, day=1)
    return april + pd.Timedelta(days=(7 - april.weekday()) % 7)


def rent_year_start_after(origin: pd.Timestamp) -> pd.Timestamp:
    """The first rent year (from the first Monday of April) starting after `origin`."""
    day = _day(origin)
    start = first_monday_of_april(day.year)
    return start if start > day else first_monday_of_april(day.year + 1)


def rent_years(first: pd.Timestamp, last: pd.Timestamp) -> list[dict]:
    """The rent years (first Monday of April to the day before the next's) overlapping `first`..`last`, each with
    its charge weeks: the Mondays in it, 53 in a year whose first Monday of April is late enough (2024/25,
    2030/31), when weekly rents charged on Mondays are charged 53 times."""
    first, last = _day(first), _day(last)
    year = first.year if first >= first_monday_of_april(first.year) else first.year - 1
    found = []
    while first_monday_of_april(year) <= last:
        start, end = first_monday_of_april(year), first_monday_of_april(year + 1) - pd.Timedelta(days=1)
        found.append({"rent_year": f"{year}/{str(year + 1)[-2:]}", "starts": start.date(), "ends": end.date(),
                      "charge_weeks": ((end - start).days + 1) // 7})
        year += 1
    return found


def charge_mondays(months: pd.PeriodIndex) -> list[int]:
    """Mondays in each calendar month: the weekly rent charges it holds (4 or 5)."""
    return [int((pd.date_range(m.start_time, m.end_time.normalize()).weekday == 0).sum()) for m in months]


def simulate_receipts(cdf: np.ndarray, amount: np.ndarray, gaps: np.ndarray, counts: np.ndarray, weeks: int = 13,
                      sims: int = 300, seed: int = 0, edges: tuple[int, ...] = BIN_EDGES,
                      posted: np.ndarray | None = None, horizon: Horizon | None = None) -> np.ndarray:
    """Receipts (pence) per simulation, tenancy and week: array (sims, tenancies, weeks); or per bucket of a
    `horizon` (months, a scenario's scale): (sims, tenancies, buckets).

    The first payment day is drawn from the tenancy's payment-date distribution (none within the horizon: draw
    again from the end of the horizon); later ones follow at gaps drawn from the tenancy's own recent gaps; each
    payment is the tenancy's usual amount, counted in the week of the day it is posted: `posted[d]` for one due on
    day d (`posting_days`; None: the day it is due).
    """
    rng = np.random.default_rng(seed)
    horizon = horizon or Horizon.weekly(weeks)
    n = len(amount)
    e = np.asarray(edges, dtype=float)
    horizon_days = horizon.days
    out = np.zeros((sims, n, horizon.buckets))

    def first_payment(size: tuple[int, int]) -> np.ndarray:
        u = rng.random(size)
        day = np.empty(size)
        for i in range(n):  # inverse CDF, linear within bins (vectorised over simulations)
            f = cdf[i]
            within = u[:, i] <= f[-1]
            day[within, i] = np.interp(u[within, i], f, e) if f[-1] > 0 else e[-1]
            day[~within, i] = np.nan
        return day

    t = first_payment((sims, n))
    offset = np.zeros((sims, n))
    while True:
        missing = np.isnan(t)
        while missing.any():  # no payment within the model's horizon: draw again from its end, or give up
            offset = np.where(missing, offset + e[-1], offset)
            retry = missing & (offset < horizon_days)
            t = np.where(retry, first_payment((sims, n)), np.where(missing, np.inf, t))
            missing = np.isnan(t)
        when = np.ceil(offset + t)
        active = when <= horizon_days
        if not active.any():
            break
        landed = np.where(active, when, 1).astype(int)
        if posted is not None:
            landed = posted[np.minimum(landed, len(posted) - 1)]
        landed = np.minimum(landed, horizon_days + 1)
        counted = active & (landed <= horizon_days)
        counted &= horizon.bucket[np.minimum(landed, horizon_days)] >= 0
        s_idx, t_idx = np.nonzero(counted)
        days = landed[counted]
        np.add.at(out, (s_idx, t_idx, horizon.bucket[days]), amount[t_idx] * horizon.scale[days])
        pick = (rng.random((sims, n)) * counts[None, :]).astype(int)
        gap = np.maximum(gaps[np.arange(n)[None, :], pick], 1.0)
        offset, t = when, gap
    return out


def scheduled_receipts(lines: pd.DataFrame, tenancy_ids: np.ndarray, origin: pd.Timestamp, sims: int,
                       horizon: Horizon, seed: int = 0, posted: np.ndarray | None = None) -> np.ndarray:
    """(sims, tenancies, buckets): the DWP schedule lines expected for these tenancies (`lines`: tenancy_id,
    expected_date, expected_pence, sd_pence, as `features.schedules.expected_schedule_lines` gives them),
    known lines with their own small uncertainty: each its expected value plus a normal draw of its spread
    (lines independent), on the day expected (posted as `posted` says), times the horizon's scale."""
    out = np.zeros((sims, len(tenancy_ids), horizon.buckets))
    position = pd.Series(np.arange(len(tenancy_ids)), index=pd.Index(tenancy_ids).astype(str))
    mine = lines[lines["tenancy_id"].notna()]
    mine = mine[mine["tenancy_id"].astype(str).isin(position.index)]
    if mine.empty:
        return out
    offset = (pd.to_datetime(mine["expected_date"]) - _day(origin)).dt.days.to_numpy()
    landed = np.array([posted[d] if posted is not None and 0 <= d < len(posted) else d for d in offset])
    keep = (landed >= 1) & (landed <= horizon.days)
    keep[keep] &= horizon.bucket[landed[keep]] >= 0
    rows, days = position[mine["tenancy_id"].astype(str)].to_numpy()[keep], landed[keep]
    draws = np.random.default_rng(seed + 2).standard_normal((sims, len(rows)))
    money = (mine["expected_pence"].to_numpy(float)[keep][None, :] + mine["sd_pence"].to_numpy(float)[keep][None, :]
             * draws) * horizon.scale[days][None, :]
    for k, (row, bucket) in enumerate(zip(rows, horizon.bucket[days], strict=True)):
        out[:, row, bucket] += money[:, k]
    return out


def without_scheduled_benefits(transactions: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """The ledger without the benefit credits of the tenancies the DWP's schedules cover (`lines`: their expected
    lines): their benefit is forecast from the schedules, and must not also be simulated from their habits."""
    covered = set(lines["tenancy_id"].dropna().astype(str))
    benefit = (transactions["type"] == "benefit") & transactions["tenancy_id"].astype(str).isin(covered)
    return transactions[~benefit]


def forecast_receipts(booster: lgb.Booster, features: pd.DataFrame, tenancies: pd.DataFrame, paid: pd.DataFrame,
                      daily: pd.DataFrame, origin: pd.Timestamp, weeks: int, sims: int, seed: int = 0,
                      habits: dict | None = None, blend: Blend | None = None,
                      horizon: Horizon | None = None) -> np.ndarray:
    """Simulated receipts (sims, tenancies, weeks) for the tenancies in `features`, from `origin`.

    `paid`: qualifying payment days (`training.labels.qualifying_payment_days`); `daily`: money received per day
    (`training.labels.daily_receipts`); `tenancies`: the register (rent frequency). Given a dict as `habits`, it
    is filled with what each tenancy was simulated from: `amount` (pence a payment), `cdf` (its payment-date
    distribution at the model's bin edges) and `calendar` (`CalendarPayers`). A tenancy paid on a day of the month
    has that money simulated on the calendar (`simulate_calendar`), the rest of its money from its gaps. With a
    `blend`, every simulated week is blended with the tenancy's last-4-weeks average (`Blend.apply`). With a
    `horizon`: its buckets (weeks with a scenario's scale; months, with no blend: its weights are by week ahead).
    """
    register = tenancies.set_index("tenancy_id").loc[features["tenancy_id"]]
    ids, started = features["tenancy_id"].to_numpy(), register["start_date"].to_numpy()
    cdf = cdf_at_edges(hazards(booster, features))
    amount, gaps, counts = tenant_habits(paid, daily, origin, ids, period_days(register.reset_index()), started)
    calendar = calendar_payers(paid, origin, ids, started)
    day = _day(origin)
    window = daily[(daily["day"] <= day) & (daily["day"] > day - pd.Timedelta(days=182))]
    received = window.groupby("tenancy_id")["amount_pence"].sum().reindex(ids, fill_value=0.0).to_numpy()
    rest = np.clip(1.0 - calendar.money / np.maximum(received, 1.0), 0.0, 1.0)  # what the gaps still carry
    if habits is not None:
        habits.update(amount=np.where(calendar.dom > 0, calendar.amount, amount), cdf=cdf, calendar=calendar)
    counted = horizon or Horizon.weekly(weeks)
    posted = posting_days(daily, origin, counted.days)
    simulated = (simulate_receipts(cdf, amount * rest, gaps, counts, sims=sims, seed=seed, posted=posted,
                                   horizon=counted)
                 + simulate_calendar(calendar, origin, weeks, sims, seed, posted, counted))
    if blend is None or counted.kind != "week":
        return simulated
    return blend.apply(simulated, tenancy_baselines(daily, origin, ids), counted.bucket_scale())


#: The largest rise in the rent charged that older receipts are brought up to (`at_current_rent`): April's rises
#: are a few per cent; a bigger step is a part-period or first charge, not a new rent.
MAX_RENT_RISE = 0.25


def at_current_rent(daily: pd.DataFrame, transactions: pd.DataFrame) -> pd.DataFrame:
    """`daily` (tenancy_id, day, amount_pence) with each day's money brought to the rent now charged: times the
    tenancy's latest rent charge over the charge in force that day, where the rent has since risen (by at most
    `MAX_RENT_RISE`). Tenants who pay their rent pay the new one: without this, a lookback that straddles April's
    rise reads as tenants paying less than they will. `transactions`' charges give the rents; inputs not changed."""
    charges = transactions[transactions["type"] == "charge"]
    if charges.empty or daily.empty:
        return daily
    rents = (charges.assign(day=pd.to_datetime(charges["posted_date"]))
             .groupby(["tenancy_id", "day"], sort=False)["amount_pence"].sum().rename("rent_then").reset_index()
             .sort_values("day"))
    now = rents.groupby("tenancy_id")["rent_then"].last()
    dated = daily.assign(day=pd.to_datetime(daily["day"]), row=np.arange(len(daily))).sort_values("day")
    joined = pd.merge_asof(dated, rents, on="day", by="tenancy_id", direction="backward").sort_values("row")
    ratio = (joined["tenancy_id"].map(now) / joined["rent_then"]).to_numpy(dtype=float)
    ratio = np.where((ratio > 1.0) & (ratio <= 1.0 + MAX_RENT_RISE), ratio, 1.0)
    return daily.assign(amount_pence=daily["amount_pence"].to_numpy(dtype=float) * ratio)


@dataclass(frozen=True)
class OwnMoney:
    """What the tenants' own habits are simulated from: the money received a day (`training.labels.daily_receipts`,
    brought to the rent now charged: `at_current_rent`) and the qualifying payment days, without the benefit of the
    tenancies the DWP's schedule `lines` cover (those lines are forecast as known money); `lines` None: no
    schedules, the whole ledger."""

    daily: pd.DataFrame
    paid: pd.DataFrame
    lines: pd.DataFrame | None = None

    @classmethod
    def of(cls, transactions: pd.DataFrame, tenancies: pd.DataFrame, lines: pd.DataFrame | None,
           label: PaymentLabelSpec) -> OwnMoney:
        """From the ledger's `transactions` as known on the forecast's day and the register (`tenancies`)."""
        rest = transactions if lines is None else without_scheduled_benefits(transactions, lines)
        daily = at_current_rent(daily_receipts(rest), transactions)
        return cls(daily, qualifying_days_of(tenancies, daily, label), lines)


def forecast_with_schedules(booster: lgb.Booster, features: pd.DataFrame, tenancies: pd.DataFrame, money: OwnMoney,
                            origin: pd.Timestamp, weeks: int, sims: int, seed: int, horizon: Horizon,
                            habits: dict | None = None, blend: Blend | None = None
                            ) -> tuple[np.ndarray, np.ndarray | None]:
    """The one forecast step the served forecast and the training backtest share: the tenants' own receipts
    simulated from `money` (`forecast_receipts`) and, when it holds schedule lines, the lines' known money
    (`scheduled_receipts`, posted on the days the bank posts); both (sims, tenancies, buckets), None for no lines."""
    own = forecast_receipts(booster, features, tenancies, money.paid, money.daily, origin, weeks, sims, seed,
                            habits=habits, blend=blend, horizon=horizon)
    if money.lines is None:
        return own, None
    day = _day(origin)
    known = scheduled_receipts(money.lines, features["tenancy_id"].to_numpy(), day, sims, horizon, seed,
                               posting_days(money.daily, day, horizon.days))
    return own, known


def blend_totals(blend: Blend, totals: np.ndarray, daily: pd.DataFrame, origin: pd.Timestamp) -> np.ndarray:
    """A backtest origin's simulated portfolio (sims, weeks; pence) blended with its baseline, the last four weeks'
    average of `daily` (the origin's tenancies only), as `Blend.apply` does tenancy by tenancy."""
    baseline = tenancy_baselines(daily.assign(tenancy_id="all"), origin, np.array(["all"]))
    return blend.apply(totals[:, None, :], baseline)[:, 0, :]


def weekly_bands(totals: np.ndarray, scale: np.ndarray | None = None, known: np.ndarray | None = None,
                 lift: np.ndarray | None = None) -> pd.DataFrame:
    """Mean, P10, P50 and P90 of each week's receipts over the simulations: `totals` is (simulations, weeks), plus
    `known` (the DWP's scheduled lines, with their own spread). The percentiles are of the sum times `scale` (the
    common factor: it was estimated on whole weeks' receipts, benefit runs paid late among what moves them, so it
    moves the scheduled lines too); the mean is the sum's times `lift` (the factor's expectation, `CommonFactor.lift`;
    none: 1), so means still add up across patches and tenancies exactly; `scheduled` is `known`'s mean."""
    known = np.zeros_like(totals) if known is None else known
    banded = totals + known if scale is None else (totals + known) * scale
    lift = np.ones(totals.shape[1]) if lift is None else lift
    return pd.DataFrame([{"week": w + 1, "mean": (totals[:, w].mean() + known[:, w].mean()) * lift[w],
                          "p10": np.percentile(banded[:, w], 10), "p50": np.percentile(banded[:, w], 50),
                          "p90": np.percentile(banded[:, w], 90), "scheduled": known[:, w].mean()}
                         for w in range(totals.shape[1])])


def week_starts(start: pd.Timestamp, weeks: int) -> list:
    """The first day of each forecast week: weeks are days (start + 7(w-1), start + 7w]."""
    return [(pd.Timestamp(start) + pd.Timedelta(days=7 * w + 1)).date() for w in range(weeks)]


def summarise(receipts: np.ndarray, patches: np.ndarray, start: pd.Timestamp,
              factor: CommonFactor | None = None, seed: int = 0, known: np.ndarray | None = None) -> pd.DataFrame:
    """Weekly P10/P50/P90 and mean receipts (pounds), portfolio-wide and per patch, each simulation's week scaled by
    the same common factor for every patch (`factor`; None: tenants' own uncertainty only), with the DWP's
    scheduled lines (`known`, like `receipts`) and how much of the mean they are (`scheduled`)."""
    starts = week_starts(start, receipts.shape[2])
    factor = factor or CommonFactor()
    scale, lift = factor.draws(starts, receipts.shape[0], seed), factor.lift(starts)
    scopes = [("portfolio", np.ones(len(patches), dtype=bool))] + [
        (str(p), patches == p) for p in sorted(pd.unique(patches))]
    tables = []
    for scope, members in scopes:
        lines = None if known is None else known[:, members, :].sum(axis=1) / 100.0
        bands = weekly_bands(receipts[:, members, :].sum(axis=1) / 100.0, scale, lines, lift)
        tables.append(bands.assign(scope=scope, week_start=starts))
    return pd.concat(tables, ignore_index=True)[["scope", "week", "week_start", "mean", "p10", "p50", "p90",
                                                 "scheduled"]]


def summarise_months(receipts: np.ndarray, patches: np.ndarray, start: pd.Timestamp, horizon: Horizon,
                     factor: CommonFactor | None = None, seed: int = 0, known: np.ndarray | None = None
                     ) -> pd.DataFrame:
    """Monthly P10/P50/P90 and mean receipts (pounds) from a `Horizon.monthly` simulation, portfolio-wide and per
    patch: each month's band carries one draw of the common factor at the spread and level of weeks other than
    month-start ones (a month holds its month start whichever week it lands in; a month's own spread is not
    measured), with
    the days counted and the charge Mondays among them (weekly rents' charges; the first month is the rest of
    `start`'s, left out when none of it is left)."""
    day = _day(start)
    periods = pd.period_range(day.to_period("M"), periods=horizon.buckets, freq="M")
    counted = horizon.bucket >= 0
    days = np.bincount(horizon.bucket[counted], minlength=horizon.buckets)
    monday = pd.date_range(day, periods=len(horizon.bucket)).weekday.to_numpy() == 0
    mondays = np.bincount(horizon.bucket[counted], monday[counted].astype(float), horizon.buckets).astype(int)
    factor = factor or CommonFactor()
    level = CommonFactor(factor.other, factor.other, factor.weeks_seen, factor.other_level, factor.other_level)
    month_starts = [p.start_time for p in periods]
    scale, lift = level.draws(month_starts, receipts.shape[0], seed + 7), level.lift(month_starts)
    scopes = [("portfolio", np.ones(len(patches), dtype=bool))] + [
        (str(p), patches == p) for p in sorted(pd.unique(patches))]
    tables = []
    for scope, members in scopes:
        lines = None if known is None else known[:, members, :].sum(axis=1) / 100.0
        bands = weekly_bands(receipts[:, members, :].sum(axis=1) / 100.0, scale, lines, lift).drop(columns="week")
        tables.append(bands.assign(scope=scope, month=[str(p) for p in periods], days=days,
                                   month_start=[max(p.start_time, day + pd.Timedelta(days=1)).date() for p in periods],
                                   charge_mondays=mondays))
    table = pd.concat(tables, ignore_index=True)
    return table[table["days"] > 0][["scope", "month", "month_start", "days", "mean", "p10", "p50", "p90",
                                     "scheduled", "charge_mondays"]].reset_index(drop=True)


def backtest_origin(totals: np.ndarray, daily: pd.DataFrame, origin: pd.Timestamp,
                    factor: CommonFactor | None = None, seed: int = 0) -> pd.DataFrame:
    """One past forecast date: each week's band (from `totals`, the simulated portfolio's pence (sims, weeks), with
    `factor`) beside what the same tenancies then paid, the baseline (the last four weeks' average) and the
    simulations' own log-scale spread (`sim_log_sd`, for `estimate_common_factor`). Weeks are days
    (origin + 7(w-1), origin + 7w]; `daily` holds only those tenancies."""
    day = _day(origin)
    starts = week_starts(day, totals.shape[1])
    pounds = totals / 100.0
    factor = factor or CommonFactor()
    bands = weekly_bands(pounds, factor.draws(starts, totals.shape[0], seed), lift=factor.lift(starts))
    before = daily[(daily["day"] > day - pd.Timedelta(weeks=4)) & (daily["day"] <= day)]["amount_pence"].sum()
    actual = []
    for w in range(len(bands)):
        lo, hi = day + pd.Timedelta(days=7 * w), day + pd.Timedelta(days=7 * (w + 1))
        actual.append(daily[(daily["day"] > lo) & (daily["day"] <= hi)]["amount_pence"].sum() / 100.0)
    bands = bands.assign(origin=day.date(), week_start=starts, actual=actual, baseline=before / 4 / 100.0,
                         sim_log_sd=np.log(np.maximum(pounds, 1.0)).std(axis=0))
    return bands[["origin", "week", "week_start", "actual", "mean", "p10", "p50", "p90", "baseline", "sim_log_sd"]]


def cash_metrics(backtest: pd.DataFrame) -> dict[str, float]:
    """Weekly WAPE by horizon (model and baseline) and the P10–P90 coverage over all backtest weeks."""
    metrics = {}
    if backtest.empty:
        return metrics
    for w in sorted(backtest["week"].unique()):
        part = backtest[backtest["week"] == w]
        total = part["actual"].abs().sum()
        if total > 0:
            metrics[f"wape_week{w}"] = float((part["actual"] - part["mean"]).abs().sum() / total)
            metrics[f"wape_week{w}_baseline"] = float((part["actual"] - part["baseline"]).abs().sum() / total)
    metrics["cash_p10_p90_coverage"] = float(((backtest["p10"] <= backtest["actual"])
                                              & (backtest["actual"] <= backtest["p90"])).mean())
    month_start = month_start_weeks(backtest["week_start"])
    for name, weeks in (("month_start", month_start), ("other", ~month_start)):
        part = backtest[weeks]
        if len(part):
            metrics[f"cash_p10_p90_coverage_{name}_weeks"] = float(((part["p10"] <= part["actual"])
                                                                     & (part["actual"] <= part["p90"])).mean())
    metrics["cash_backtest_origins"] = float(backtest["origin"].nunique())
    return metrics
