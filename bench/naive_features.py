"""The simplest correct pandas implementation of the weekly snapshot features: a baseline and an oracle.

`naive_snapshots(tenancies, transactions, as_of, events)` returns the same frame as
`features.transforms.build_snapshots` (same columns, same rows: one per tenancy live at each as_of date), but is
written independently of it and in the most obvious way: for each as_of date D, keep the ledger rows posted on or
before D, and compute each feature per tenancy with plain pandas filters and groupbys, straight from the feature
descriptions in `features.catalogue`. It shares no code with `features.transforms` (only the vocabulary of the feed
contract and the feature names), so `tests/test_feature_oracle.py` can use it as an oracle, and `bench/` as the
baseline the vectorised build is measured against. It is deliberately slow: clarity over speed.

Definitions, as of a date D (money in pounds = pence / 100; "day numbers" are days since 1970-01-01):

* balance: sum of every amount posted on or before D.
* "the last N weeks": postings after D - 7N days and on or before D.
* weekly rent on D: the latest rent charge posted on or before D (per period, as weekly rent), else the register's
  rent; arrears in weeks divide by the rent on the day they are measured.
* looking back week by week from D (D, D-7, D-14, ...; before the ledger began nothing was owed): settled balance
  is the lowest balance on the last 5 of those dates; "change over N weeks" is the balance on D minus the balance on
  D-7N, both without the opening balance carried in (an adjustment whose reference says so); peak is the highest
  arrears in weeks of rent over the last 26; weeks since clear counts back to the last of those dates with a
  balance of zero or in credit. None of this depends on which as_of dates were asked for.
* receipts are payments and benefit credits less reversals (an adjustment putting a receipt back, whose reference
  says returned/reversed/...): a reversal takes one payment and its amount off the window it is posted in.
* a rent charge's payment window opens 10 days (at most half the period to the next charge) before it, and closes
  when the next charge's opens (after the last charge: one period of its frequency later); a tenancy's first
  window opens at its first receipt. Going through a tenancy's charges in order, what it received in the window
  plus the credit carried from earlier periods (what they received beyond their rent) pays the charge: missed when
  that is nothing, partial when less than the charge. A charge counts in the "last 26 weeks" counts from the last
  day of its window (when its outcome is known).
* lateness of a rent charge: 0 when the credit carried in pays half of it; otherwise days from the charge until
  receipts (as they arrived, reversals aside) from its window's opening add up to the rest of that half (0 if
  before the charge), capped at 35 (35 when that never happens); it is known on the charge day plus the
  lateness. The mean and (population) standard deviation over the charges whose lateness became known in the
  last 26 weeks; NaN when there are none.
* rent changes: a rent charge whose amount differs from the tenancy's previous rent charge.
* events: counts of each event type dated on or before D.
* benefit flags: the benefit type of the latest-delivered version of the register in force on D (its
  `valid_from` on or before D, or none), else the register's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.catalogue import SNAPSHOT_FEATURES
from features.feeds.contract import EVENT_TYPES, PERIODS_PER_YEAR, RECEIPT_TYPES

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in SNAPSHOT_FEATURES)
ANCHOR_NAMES: tuple[str, ...] = ("last_payment_day", "last_contact_day", "last_rent_change_day", "start_day")
COLUMNS: tuple[str, ...] = ("tenancy_id", "event_timestamp", "patch", *FEATURE_NAMES, *ANCHOR_NAMES)

SETTLE_SNAPSHOTS = 5
PEAK_SNAPSHOTS = 26
EARLY_DAYS = 10
LATENESS_CAP_DAYS = 35
OPENING = r"opening balance|balance brought forward|brought forward|\bb/f\b"
REVERSAL = r"returned|reversal|reversed|bounced|unpaid|recalled|chargeback"
EPOCH = pd.Timestamp("1970-01-01")


def day_number(date) -> float:
    """Days since 1970-01-01 as a float; NaN for a missing date."""
    if pd.isna(date):
        return float("nan")
    return float((pd.Timestamp(date).normalize() - EPOCH).days)


def on(values: pd.Series, tenancies: pd.Index, fill: float = np.nan) -> pd.Series:
    """`values` (indexed by tenancy_id) for exactly `tenancies`, `fill` where a tenancy has none."""
    return values.reindex(tenancies, fill_value=fill).astype(float)


def latest_day(frame: pd.DataFrame, date_column: str) -> pd.Series:
    """Each tenancy's latest `date_column` in `frame`, as a day number."""
    latest = frame.groupby("tenancy_id")[date_column].max()
    return pd.Series([day_number(d) for d in latest], index=latest.index, dtype=float)


def last_n_weeks(frame: pd.DataFrame, date_column: str, as_of: pd.Timestamp, weeks: int) -> pd.DataFrame:
    """Rows dated after `as_of` - 7 * `weeks` days and on or before `as_of`."""
    dates = frame[date_column]
    return frame[(dates > as_of - pd.Timedelta(days=7 * weeks)) & (dates <= as_of)]


def adjustments_marked(ledger: pd.DataFrame, pattern: str) -> pd.Series:
    """Adjustments whose reference matches `pattern` (the opening balance, a reversal)."""
    if "reference" not in ledger:
        return pd.Series(False, index=ledger.index)
    said = ledger["reference"].astype("string").str.contains(pattern, case=False, regex=True).fillna(False)
    return (ledger["type"] == "adjustment") & said


def signed_receipts(ledger: pd.DataFrame) -> pd.DataFrame:
    """Receipts as positive pence and reversals (positive adjustments putting one back) as negative."""
    reversal = adjustments_marked(ledger, REVERSAL) & (ledger["amount_pence"] > 0)
    return ledger[ledger["type"].isin(RECEIPT_TYPES) | reversal].assign(
        pence=lambda f: -f["amount_pence"].astype(float), reversal=reversal)


def rent_charge_outcomes(transactions: pd.DataFrame, frequency: pd.Series) -> pd.DataFrame:
    """One row per rent charge, worked out with a plain loop over each tenancy's charges and receipts.

    Columns: tenancy_id, charge_day, amount (pence), credited (pence paid towards it: its window's receipts plus
    credit carried in), window_closes (day number of the window's last day), lateness (days, capped) and
    lateness_known (the day number from which the lateness is known).
    """
    rows = []
    for tenancy_id, ledger in transactions.groupby("tenancy_id", sort=True):
        receipts = signed_receipts(ledger).sort_values("posted_date", kind="stable")
        receipt_days = [day_number(d) for d in receipts["posted_date"]]
        receipt_pence = list(receipts["pence"])
        reversed_ = list(receipts["reversal"])
        charges = ledger[ledger["type"] == "charge"].sort_values("posted_date", kind="stable")
        days = [day_number(d) for d in charges["posted_date"]]
        amounts = [float(a) for a in charges["amount_pence"]]
        period = round(365.25 / PERIODS_PER_YEAR.get(frequency.get(tenancy_id), 52.0))
        nexts = [*days[1:], days[-1] + period] if days else []
        leads = [min(EARLY_DAYS, (n - d) // 2) for d, n in zip(days, nexts, strict=True)]
        carry = 0.0
        for k, (charge_day, amount) in enumerate(zip(days, amounts, strict=True)):
            opens = -np.inf if k == 0 else charge_day - leads[k]
            closes = days[k + 1] - leads[k + 1] if k + 1 < len(days) else nexts[k] - leads[k]
            got = sum(p for d, p in zip(receipt_days, receipt_pence, strict=True) if opens <= d < closes)
            need = amount / 2.0 - carry
            lateness = 0.0 if need <= 0 else float(LATENESS_CAP_DAYS)
            if need > 0:
                total = 0.0
                for d, p, back in zip(receipt_days, receipt_pence, reversed_, strict=True):
                    if d < opens or back:  # lateness: money as it arrived, reversals aside
                        continue
                    total += p
                    if total >= need:
                        lateness = float(min(max(d - charge_day, 0.0), LATENESS_CAP_DAYS))
                        break
            rows.append({"tenancy_id": tenancy_id, "charge_day": charge_day, "amount": amount,
                         "credited": max(min(amount, carry + got), 0.0), "window_closes": closes - 1,
                         "lateness": lateness, "lateness_known": charge_day + lateness})
            carry = max(0.0, carry + got - amount)
    columns = ["tenancy_id", "charge_day", "amount", "credited", "window_closes", "lateness", "lateness_known"]
    return pd.DataFrame(rows, columns=columns)


def naive_snapshots(
    tenancies: pd.DataFrame, transactions: pd.DataFrame, as_of, events: pd.DataFrame | None = None,
    versions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per-tenancy snapshots at each as_of date at which the tenancy is live, the plain way (see the module doc)."""
    as_of = pd.DatetimeIndex(as_of)
    if tenancies.empty or len(as_of) == 0:
        return pd.DataFrame(columns=list(COLUMNS))
    register = tenancies.set_index("tenancy_id").sort_index()
    ids = register.index
    ledger = transactions[transactions["tenancy_id"].isin(ids)]
    if "method" not in ledger:
        ledger = ledger.assign(method=None)
    if events is None:
        events = pd.DataFrame({"tenancy_id": pd.Series(dtype=object), "event_date": pd.Series(dtype="datetime64[ns]"),
                               "type": pd.Series(dtype=object)})
    events = events[events["tenancy_id"].isin(ids)]
    dates = as_of.tz_localize(None) if as_of.tz is not None else as_of
    stamps = as_of.tz_localize("UTC") if as_of.tz is None else as_of

    periods = register["rent_frequency"].map(PERIODS_PER_YEAR)
    register_rent = register["rent_amount_pence"].astype(float) * periods / 52
    rent_charges_all = ledger[ledger["type"] == "charge"].sort_values(["tenancy_id", "posted_date"], kind="stable")

    benefit = register["benefit_type"] if "benefit_type" in register else pd.Series(None, index=ids, dtype=object)

    # Balances and rents on any day (cached): the settled, lag, peak and clear features look back week by week
    # from each as_of date, to before the ledger began if need be (nothing owed then), whatever dates were asked for.
    balance_cache: dict[pd.Timestamp, pd.Series] = {}
    rent_cache: dict[pd.Timestamp, pd.Series] = {}

    opening = adjustments_marked(ledger, OPENING)

    def benefit_on(day: pd.Timestamp) -> pd.Series:
        """The benefit type of the latest-delivered register version in force on `day`, else the register's."""
        if versions is None or versions.empty:
            return benefit
        valid = pd.to_datetime(versions["valid_from"]) if "valid_from" in versions else pd.Series(pd.NaT)
        in_force = versions[valid.isna() | (valid <= day)].sort_values("delivery_seq", kind="stable")
        chosen = in_force.groupby("tenancy_id")["benefit_type"].last()
        return pd.Series([chosen.get(t, benefit.get(t)) for t in ids], index=ids, dtype=object)

    def balance_on(day: pd.Timestamp, moved: bool = False) -> pd.Series:
        """The balance on `day`; `moved`: without the opening balance carried in."""
        if (day, moved) not in balance_cache:
            posted = ledger[(ledger["posted_date"] <= day) & ~(opening & moved)]
            balance_cache[day, moved] = (posted.groupby("tenancy_id")["amount_pence"].sum()
                                         .reindex(ids, fill_value=0).astype(float))
        return balance_cache[day, moved]

    def rent_on(day: pd.Timestamp) -> pd.Series:
        """Weekly rent on `day`: the latest rent charge up to then, else the register's rent."""
        if day not in rent_cache:
            seen = rent_charges_all[rent_charges_all["posted_date"] <= day]
            latest = seen.groupby("tenancy_id")["amount_pence"].last().reindex(ids).astype(float) * periods / 52
            rent_cache[day] = latest.fillna(register_rent)
        return rent_cache[day]

    def weeks_before(day: pd.Timestamp, n: int) -> pd.Timestamp:
        return day - pd.Timedelta(days=7 * n)

    def arrears_weeks(balance: pd.Series, day: pd.Timestamp) -> pd.Series:
        return balance.clip(lower=0) / rent_on(day)

    def settled_on(day: pd.Timestamp, moved: bool = False) -> pd.Series:
        """The lowest balance on this day and the 4 weekly dates before it."""
        return pd.concat([balance_on(weeks_before(day, j), moved) for j in range(SETTLE_SNAPSHOTS)],
                         axis=1).min(axis=1)

    first_posting = ledger["posted_date"].min()

    outcomes = rent_charge_outcomes(ledger, register["rent_frequency"])
    all_receipts = signed_receipts(ledger)

    start, end = register["start_date"], register["end_date"]
    frames = []
    for k, day in enumerate(dates):
        live = ids[((start <= day) & (end.isna() | (end >= day))).to_numpy()]
        if len(live) == 0:
            continue
        today = day_number(day)
        posted = ledger[ledger["posted_date"] <= day]
        f: dict[str, pd.Series] = {}

        # -- balance and arrears
        balance, settled = balance_on(day), settled_on(day)
        f["balance"] = balance / 100
        f["arrears_weeks"] = arrears_weeks(balance, day)
        f["settled_balance"] = settled / 100
        f["settled_arrears_weeks"] = arrears_weeks(settled, day)
        f["settled_change_4w"] = (settled_on(day, True) - settled_on(weeks_before(day, 4), True)) / 100
        for n in (4, 13, 26):
            f[f"balance_change_{n}w"] = (balance_on(day, True) - balance_on(weeks_before(day, n), True)) / 100
        f["peak_arrears_weeks_26w"] = pd.concat(
            [arrears_weeks(balance_on(weeks_before(day, j)), weeks_before(day, j)) for j in range(PEAK_SNAPSHOTS)],
            axis=1).max(axis=1)
        since_clear = pd.Series(np.nan, index=ids)
        j = 0
        while since_clear.isna().any():  # back week by week; before the first posting everyone is clear
            back = weeks_before(day, j)
            clear_now = (balance_on(back) <= 0) | (back < first_posting)
            since_clear = since_clear.where(since_clear.notna() | ~clear_now, float(j))
            j += 1
        f["weeks_since_clear"] = since_clear

        # -- payment behaviour
        receipts_so_far = posted[posted["type"].isin(RECEIPT_TYPES)]
        last_payment_day = latest_day(receipts_so_far, "posted_date")
        f["last_payment_day"] = on(last_payment_day, live)
        received_by_weeks, charged_by_weeks, benefit_by_weeks = {}, {}, {}
        for n in (4, 13, 26):
            recent = last_n_weeks(posted, "posted_date", day, n)
            receipts = recent[recent["type"].isin(RECEIPT_TYPES)]
            netted = last_n_weeks(all_receipts[all_receipts["posted_date"] <= day], "posted_date", day, n)
            count = np.where(netted["reversal"], -1, 1)
            f[f"payments_{n}w"] = on(pd.Series(count, index=netted.index).groupby(netted["tenancy_id"]).sum(), live, 0)
            received = on(netted.groupby("tenancy_id")["pence"].sum(), live, 0)
            charges = recent[recent["type"].isin(["charge", "fee"])]
            charged = on(charges.groupby("tenancy_id")["amount_pence"].sum(), live, 0)
            f[f"paid_to_charged_{n}w"] = (received / charged).where(charged > 0)
            from_benefit = receipts[(receipts["type"] == "benefit") | (receipts["method"] == "benefit_direct")]
            received_by_weeks[n], charged_by_weeks[n] = received, charged
            benefit_by_weeks[n] = on(-from_benefit.groupby("tenancy_id")["amount_pence"].sum(), live, 0)
        recent = last_n_weeks(receipts_so_far, "posted_date", day, 26)
        received = received_by_weeks[26]
        for name, method in (("cash_share_26w", "cash"), ("direct_debit_share_26w", "direct_debit")):
            paid = on(-recent[recent["method"] == method].groupby("tenancy_id")["amount_pence"].sum(), live, 0)
            f[name] = (paid / received).where(received > 0)
        f["benefit_share_26w"] = (benefit_by_weeks[26] / received).where(received > 0)
        f["benefit_to_rent_13w"] = (benefit_by_weeks[13] / charged_by_weeks[13]).where(charged_by_weeks[13] > 0)

        closed = outcomes[(outcomes["window_closes"] > today - 7 * 26) & (outcomes["window_closes"] <= today)]
        missed = closed[closed["credited"] <= 0]
        partial = closed[(closed["credited"] > 0) & (closed["credited"] < closed["amount"])]
        f["missed_periods_26w"] = on(missed.groupby("tenancy_id").size(), live, 0)
        f["partial_periods_26w"] = on(partial.groupby("tenancy_id").size(), live, 0)
        judged = outcomes[(outcomes["lateness_known"] > today - 7 * 26) & (outcomes["lateness_known"] <= today)]
        f["lateness_mean_26w"] = on(judged.groupby("tenancy_id")["lateness"].mean(), live)
        f["lateness_sd_26w"] = on(judged.groupby("tenancy_id")["lateness"].std(ddof=0), live)

        # -- circumstances
        happened = events[events["event_date"] <= day]
        count = (happened.groupby(["tenancy_id", "type"]).size().unstack(fill_value=0)
                 .reindex(index=live, columns=list(EVENT_TYPES), fill_value=0).astype(float))
        f["dispute_open"] = (count["dispute_opened"] > count["dispute_resolved"]).astype(float)
        started = count["breathing_space_started"] + count["mental_health_moratorium_started"]
        f["breathing_space_active"] = (started > count["breathing_space_ended"]).astype(float)
        f["arrangement_active"] = (count["arrangement_agreed"]
                                   > count["arrangement_broken"] + count["arrangement_completed"]).astype(float)
        f["arrangements_kept"] = count["arrangement_completed"]
        f["arrangements_broken"] = count["arrangement_broken"]
        f["legal_stage"] = count["legal_stage"]
        contacts = happened[happened["type"] == "contact_made"]
        f["last_contact_day"] = on(latest_day(contacts, "event_date"), live)

        # -- tenancy
        f["weekly_rent"] = rent_on(day) / 100
        f["rent_periods_per_year"] = register["rent_frequency"].map(PERIODS_PER_YEAR).astype(float)
        on_day = benefit_on(day)
        f["on_housing_benefit"] = (on_day == "housing_benefit").astype(float)
        f["on_universal_credit"] = (on_day == "universal_credit").astype(float)
        rent_charges = posted[posted["type"] == "charge"].sort_values(["tenancy_id", "posted_date"], kind="stable")
        previous = rent_charges.groupby("tenancy_id")["amount_pence"].shift()
        changes = rent_charges[previous.notna() & (rent_charges["amount_pence"] != previous)]
        f["last_rent_change_day"] = on(latest_day(changes, "posted_date"), live)
        f["start_day"] = register["start_date"].map(day_number)

        # -- recency (days since), from the anchors
        f["days_since_last_payment"] = today - f["last_payment_day"]
        f["days_since_contact"] = today - f["last_contact_day"]
        f["days_since_rent_change"] = today - f["last_rent_change_day"]
        f["tenancy_age_days"] = today - f["start_day"].reindex(live)

        frame = pd.DataFrame({name: f[name].reindex(live).to_numpy(dtype=np.float64)
                              for name in (*FEATURE_NAMES, *ANCHOR_NAMES)})
        frame.insert(0, "patch", register.loc[live, "patch"].to_numpy())
        frame.insert(0, "event_timestamp", np.repeat(stamps[k:k + 1], len(live)))
        frame.insert(0, "tenancy_id", live.to_numpy())
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["tenancy_id", "event_timestamp"], kind="stable")[list(COLUMNS)].reset_index(drop=True)
