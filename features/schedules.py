"""The DWP's payment schedules against the ledger's frames, pure: which lines were not paid, short or late, which
tenancies are missing from a schedule they were due on, and the schedule lines still to come (for the cash forecast,
served and backtested alike). `serving.income.schedules` reads them from the ledger.

`reconcile`, `settlements`, `flagged` and `expected_schedule_lines` take frames and return frames; inputs are never
changed. Money is integer pence throughout. A line is matched to its tenancy by its `tenancy_reference` where that
names a tenancy the ledger knows, else by the one benefit posting of exactly its amount on its payment date, else by
its claimant reference (`line_reference`) as seen on the tenancy's other lines; a line matched no way is `unmatched`.

A line's posting is the tenancy's benefit (`type` benefit) posted from a day before the payment date up to
`SEARCH_DAYS` after it (each posting counts for the latest line on or before it): none is `unpaid`, less than the
line `short`, the first more than `LATE_AFTER_DAYS` after the payment date `late`. A tenancy is `missing_line`
where its regular cycle (Housing Benefit 4-weekly; Universal Credit 4-weekly or, as the simulator pays it, monthly)
expected a line and none came within `CYCLE_TOLERANCE_DAYS`: between two of its lines, or after its last one when
a settlement of the scheme has been received on (or after) the day expected and the tenancy is still live and, by
the register, still on that benefit. A cycle is known once a tenancy has two lines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: A posting more than this many days after the line's payment date is late.
LATE_AFTER_DAYS = 3
#: Postings up to this many days after a payment date count for its line; none by then: unpaid.
SEARCH_DAYS = 21
#: How far from its expected day a line may fall and still be the one expected.
CYCLE_TOLERANCE_DAYS = 3
FLAGS = ("missing_line", "unpaid", "short", "late", "unmatched")
#: Lines of a 4-weekly scheme come every 28 days; a monthly one on the same day each month.
FOUR_WEEKLY, MONTHLY = "four_weekly", "monthly"

LINE_COLUMNS = ["settlement_number", "line_reference", "scheme", "payment_date", "tenancy_id", "amount_pence",
                "posted_pence", "posted_date", *FLAGS]


def as_days(values) -> pd.Series:
    """Dates as nanosecond timestamps, whatever unit a ledger or file gave them (merge_asof wants one)."""
    return pd.to_datetime(values).astype("datetime64[ns]")


# -- lines to tenancies -----------------------------------------------------------------------------------------


def attribute_lines(schedules: pd.DataFrame, tenancy_ids, transactions: pd.DataFrame | None = None) -> pd.Series:
    """Each line's tenancy (index of `schedules`; NA where none is found): its tenancy_reference where that is a
    known tenancy id (case and spaces aside); else, with `transactions` (benefit postings), the one tenancy whose
    benefit posted on the payment date is exactly the line's amount; and then, for a line still without one, the
    tenancy its claimant reference (`line_reference`) was last seen with on a line attributed either way."""
    known = {str(t).strip().upper(): str(t) for t in tenancy_ids}
    found = schedules["tenancy_reference"].astype("string").str.strip().str.upper().map(known).astype("string")
    if transactions is not None and found.isna().any():
        posted = transactions.assign(tenancy_id=transactions["tenancy_id"].astype(str),
                                     payment_date=as_days(transactions["posted_date"]))
        posted = posted.groupby(["payment_date", "tenancy_id"], as_index=False)["amount_pence"].sum()
        posted = posted.assign(amount_pence=-posted["amount_pence"]).drop_duplicates(
            ["payment_date", "amount_pence"], keep=False)  # only an amount one tenancy got that day
        open_lines = schedules.loc[found.isna(), ["payment_date", "amount_pence"]].astype(
            {"payment_date": "datetime64[ns]", "amount_pence": "int64"}).reset_index()
        by_amount = open_lines.merge(posted, on=["payment_date", "amount_pence"]).set_index("index")["tenancy_id"]
        found = found.fillna(by_amount.reindex(found.index).astype("string"))
    seen = pd.DataFrame({"line_reference": schedules["line_reference"], "tenancy_id": found,
                         "payment_date": schedules["payment_date"]}).dropna(subset=["tenancy_id"])
    claimant = seen.sort_values("payment_date").groupby("line_reference")["tenancy_id"].last()
    return found.fillna(schedules["line_reference"].map(claimant).astype("string")).astype("string")


def _cycles(lines: pd.DataFrame) -> pd.Series:
    """Each claimant's cycle (by scheme and claimant) from its line dates: 4-weekly when every gap between its lines
    is a multiple of 28 days, else monthly."""
    gaps = lines.groupby(["scheme", "claimant"])["payment_date"].diff().dt.days
    off = (gaps - 28 * np.round(gaps / 28)).abs() > 1
    monthly = off.groupby([lines["scheme"], lines["claimant"]]).any()
    return pd.Series(np.where(monthly, MONTHLY, FOUR_WEEKLY), index=monthly.index)


def _step(days: pd.Series, monthly: np.ndarray, steps) -> pd.Series:
    """`days` moved on `steps` cycles (28 days, or calendar months where `monthly`)."""
    steps = np.broadcast_to(np.asarray(steps), len(days))
    out = days + pd.to_timedelta(28 * steps, unit="D")
    out[monthly] = [day + pd.DateOffset(months=int(n)) for day, n in zip(days[monthly], steps[monthly], strict=True)]
    return out


# -- reconciliation ---------------------------------------------------------------------------------------------


def _postings_per_line(lines: pd.DataFrame, transactions: pd.DataFrame) -> pd.DataFrame:
    """Each line's posted pence and first posting day: every benefit posting counts for the tenancy's latest line
    paid on or before the day after it, within SEARCH_DAYS."""
    postings = transactions.assign(tenancy_id=transactions["tenancy_id"].astype(str),
                                   posted_date=as_days(transactions["posted_date"]),
                                   key_date=as_days(transactions["posted_date"]) + pd.Timedelta(days=1))
    keyed = lines[["tenancy_id", "payment_date"]].dropna().astype({"tenancy_id": str}).reset_index()
    keyed = keyed.sort_values("payment_date").drop_duplicates(["tenancy_id", "payment_date"], keep="last")
    matched = pd.merge_asof(postings.sort_values("key_date"), keyed.rename(columns={"payment_date": "line_date"}),
                            left_on="key_date", right_on="line_date", by="tenancy_id",
                            tolerance=pd.Timedelta(days=SEARCH_DAYS + 1)).dropna(subset=["index"])
    per_line = matched.groupby("index").agg(posted_pence=("amount_pence", "sum"), posted_date=("posted_date", "min"))
    per_line["posted_pence"] = -per_line["posted_pence"]
    return per_line.reindex(lines.index)


def _series(lines: pd.DataFrame, unattributed: bool = False) -> pd.DataFrame:
    """Each claimant's distinct line dates in order, with its cycle and the next line's date. A claimant is a
    tenancy; with `unattributed`, a line reference no tenancy was found for is one too ("line:<reference>")."""
    own = lines if unattributed else lines.dropna(subset=["tenancy_id"])
    own = own.assign(claimant=own["tenancy_id"].astype("string").fillna("line:" + own["line_reference"].astype(str)))
    own = own.sort_values(["scheme", "claimant", "payment_date"]).drop_duplicates(
        ["scheme", "claimant", "payment_date"], keep="last").reset_index(drop=True)
    own["cycle"] = pd.MultiIndex.from_frame(own[["scheme", "claimant"]]).map(_cycles(own))
    grouped = own.groupby(["scheme", "claimant"])
    own["position"] = grouped.cumcount()
    own["following"] = grouped["payment_date"].shift(-1)
    return own


def _expected_gaps(lines: pd.DataFrame, scheme_latest: pd.Series, tenancies: pd.DataFrame) -> pd.DataFrame:
    """The lines a tenancy's cycle expected that never came (see the module docstring): scheme, tenancy_id,
    payment_date (the day expected), and the line_reference and amount_pence of the line before the gap."""
    own = _series(lines)
    own = own[own["position"] >= 1]  # a cycle is known once there are two lines
    monthly = (own["cycle"] == MONTHLY).to_numpy()
    expected = _step(own["payment_date"], monthly, 1)
    tolerance = pd.Timedelta(days=CYCLE_TOLERANCE_DAYS)
    gap_days = (own["following"] - own["payment_date"]).dt.days
    cycles = np.where(monthly, np.round(gap_days / 30.44), np.round(gap_days / 28))
    inside = (own["following"].notna() & (own["following"] > expected + tolerance)).to_numpy()
    register = tenancies.assign(tenancy_id=tenancies["tenancy_id"].astype(str), end_date=as_days(
        tenancies["end_date"])).drop_duplicates("tenancy_id", keep="last").set_index("tenancy_id")
    end = own["claimant"].map(register["end_date"])
    benefit = own["claimant"].map(register["benefit_type"])
    trailing = (own["following"].isna() & (own["scheme"].map(scheme_latest) >= expected - tolerance)
                & own["claimant"].isin(register.index) & ~(end.notna() & (end <= expected))
                & (benefit.isna() | (benefit.astype(str) == own["scheme"].astype(str)))).to_numpy()
    count = np.where(inside, np.maximum(np.nan_to_num(cycles) - 1, 1), np.where(trailing, 1, 0)).astype(int)
    rows = own.loc[np.repeat(own.index, count)]
    steps = np.concatenate([np.arange(1, n + 1) for n in count if n]) if count.sum() else np.empty(0, int)
    return pd.DataFrame({"scheme": rows["scheme"].to_numpy(), "tenancy_id": rows["claimant"].to_numpy(),
                         "payment_date": _step(rows["payment_date"], (rows["cycle"] == MONTHLY).to_numpy(),
                                               steps).to_numpy(),
                         "line_reference": rows["line_reference"].to_numpy(),
                         "amount_pence": rows["amount_pence"].astype("int64").to_numpy()})


def reconcile(schedules: pd.DataFrame, transactions: pd.DataFrame, tenancies: pd.DataFrame) -> pd.DataFrame:
    """Per schedule line (and per line a tenancy was due but did not get), its tenancy, what was posted and its
    flags (FLAGS, booleans; `flags` joins those set). `schedules` as the ledger holds them (amount_pence),
    `transactions` the benefit postings (tenancy_id, posted_date, amount_pence negative), `tenancies` the register
    (tenancy_id, end_date, benefit_type). Inputs are not changed."""
    lines = schedules.assign(payment_date=as_days(schedules["payment_date"]),
                             scheme=schedules["scheme"].astype("string").fillna("unknown"))
    lines["tenancy_id"] = attribute_lines(lines, tenancies["tenancy_id"], transactions)
    lines = lines.join(_postings_per_line(lines, transactions))
    lines["unmatched"] = lines["tenancy_id"].isna()
    lines["unpaid"] = ~lines["unmatched"] & lines["posted_pence"].isna()
    lines["short"] = lines["posted_pence"].notna() & (lines["posted_pence"] < lines["amount_pence"])
    lines["late"] = lines["posted_date"].notna() & (
        (lines["posted_date"] - lines["payment_date"]).dt.days > LATE_AFTER_DAYS)
    lines["missing_line"] = False
    latest = lines.groupby("scheme")["payment_date"].max()
    gaps = _expected_gaps(lines, latest, tenancies)
    if len(gaps):
        gaps["settlement_number"] = _settlement_near(lines, gaps)
        gaps = gaps.assign(missing_line=True, unmatched=False, unpaid=False, short=False, late=False)
        lines = pd.concat([lines, gaps], ignore_index=True)
    lines = lines[LINE_COLUMNS].sort_values(["payment_date", "scheme", "tenancy_id"], kind="stable")
    lines["posted_pence"] = lines["posted_pence"].astype("Int64")
    lines[list(FLAGS)] = lines[list(FLAGS)].astype(bool)
    lines["flags"] = [", ".join(f for f, on in zip(FLAGS, row, strict=True) if on)
                      for row in lines[list(FLAGS)].to_numpy()]
    return lines.reset_index(drop=True)


def _settlement_near(lines: pd.DataFrame, gaps: pd.DataFrame) -> list[str | None]:
    """The settlement of the scheme paid nearest the day a missing line was expected (within the tolerance)."""
    paid = lines[["scheme", "payment_date", "settlement_number"]].drop_duplicates(["scheme", "payment_date"])
    paid = paid.astype({"scheme": object, "payment_date": "datetime64[ns]"})
    wanted = gaps.drop(columns="settlement_number", errors="ignore").astype(
        {"scheme": object, "payment_date": "datetime64[ns]"}).reset_index()
    near = pd.merge_asof(wanted.sort_values("payment_date"), paid.sort_values("payment_date"),
                         on="payment_date", by="scheme", direction="nearest",
                         tolerance=pd.Timedelta(days=CYCLE_TOLERANCE_DAYS)).set_index("index")
    return near["settlement_number"].reindex(gaps.index).tolist()


def settlements(reconciled: pd.DataFrame) -> pd.DataFrame:
    """Per settlement: its scheme and payment date, lines, total and posted pence, and lines flagged."""
    real = reconciled[~reconciled["missing_line"]]
    summary = real.groupby("settlement_number").agg(
        scheme=("scheme", "first"), payment_date=("payment_date", "first"), lines=("line_reference", "size"),
        total_pence=("amount_pence", "sum"), posted_pence=("posted_pence", "sum"),
        flagged=("flags", lambda f: int((f != "").sum())))
    missing = reconciled[reconciled["missing_line"]].groupby("settlement_number").size()
    summary["missing_lines"] = missing.reindex(summary.index, fill_value=0).astype(int)
    return summary.reset_index().sort_values(["payment_date", "settlement_number"]).reset_index(drop=True)


def flagged(reconciled: pd.DataFrame) -> pd.DataFrame:
    """The lines with a flag, latest first."""
    return reconciled[reconciled["flags"] != ""].sort_values(["payment_date", "tenancy_id"], ascending=[False, True])


# -- the lines still to come ------------------------------------------------------------------------------------


def _history_rates(reconciled: pd.DataFrame) -> pd.DataFrame:
    """Per scheme, from the lines so far: the share of expected lines that came (`p_arrive`), and how much a
    claimant's line amount varies from one line to the next, with what short lines fell short by (`cv`)."""
    real = reconciled[~reconciled["missing_line"]]
    due = reconciled.groupby("scheme").size()
    came = real.groupby("scheme").size().reindex(due.index, fill_value=0)
    ordered = real.dropna(subset=["tenancy_id"]).sort_values("payment_date")
    change = pd.DataFrame({"scheme": ordered["scheme"], "x": ordered.groupby(["scheme", "tenancy_id"])[
        "amount_pence"].pct_change().astype(float)})
    shortfall = pd.DataFrame({"scheme": real["scheme"], "x": (1 - real["posted_pence"].astype(float)
                                                                / real["amount_pence"]).where(real["short"], 0.0)})
    both = pd.concat([change, shortfall], ignore_index=True).dropna()
    spread = np.sqrt((both["x"] ** 2).groupby(both["scheme"]).mean())
    return pd.DataFrame({"p_arrive": (came / due).clip(0.0, 1.0),
                         "cv": spread.reindex(due.index).fillna(0.0).clip(0.0, 0.5)})


def expected_schedule_lines(schedules: pd.DataFrame, as_of, weeks: int, tenancies: pd.DataFrame | None = None,
                            transactions: pd.DataFrame | None = None) -> pd.DataFrame:
    """The DWP lines expected after `as_of` and up to `weeks` weeks on: one row per claimant and expected payment
    date (tenancy_id, NA where no line was ever matched; line_reference, scheme, expected_date), the amount of its
    latest line (`amount_pence`), the chance it arrives (`p_arrive`: the scheme's share of expected lines that came),
    its expected value (`expected_pence`) and spread (`sd_pence`: arriving or not, and how much amounts vary and
    short lines fall short). Claimants whose latest line is more than a cycle old, and tenancies the register shows
    ended by the date, expect nothing. `tenancies` (the register) and `transactions` (benefit postings, for the
    history of short lines) are optional. Inputs are not changed."""
    as_of = pd.Timestamp(as_of)
    register = tenancies if tenancies is not None else pd.DataFrame(
        {"tenancy_id": pd.Series(dtype="string"), "end_date": pd.Series(dtype="datetime64[ns]"),
         "benefit_type": pd.Series(dtype="string")})
    postings = transactions if transactions is not None else pd.DataFrame(
        {"tenancy_id": pd.Series(dtype="string"), "posted_date": pd.Series(dtype="datetime64[ns]"),
         "amount_pence": pd.Series(dtype="int64")})
    history = schedules[as_days(schedules["payment_date"]) <= as_of]
    columns = ["tenancy_id", "line_reference", "scheme", "expected_date", "amount_pence", "p_arrive",
               "expected_pence", "sd_pence"]
    if history.empty:
        return pd.DataFrame(columns=columns)
    reconciled = reconcile(history, postings, register)
    expected = _next_lines(reconciled[~reconciled["missing_line"]], register, as_of, weeks)
    rates = _history_rates(reconciled)
    p = expected["scheme"].map(rates["p_arrive"]).fillna(1.0).astype(float)
    cv = expected["scheme"].map(rates["cv"]).fillna(0.0).astype(float)
    amount = expected["amount_pence"].astype(float)
    expected["p_arrive"] = p
    expected["expected_pence"] = (amount * p).round().astype("int64")
    expected["sd_pence"] = (amount * np.sqrt(p * (1 - p) + p * cv**2)).round().astype("int64")
    return expected.sort_values(["expected_date", "scheme", "line_reference"]).reset_index(drop=True)[columns]


def _next_lines(lines: pd.DataFrame, register: pd.DataFrame, as_of: pd.Timestamp, weeks: int) -> pd.DataFrame:
    """Each claimant's lines to come after `as_of` up to `weeks` on, by its cycle from its latest line, while its
    tenancy has not ended; none for a claimant whose latest line is more than a cycle (and the tolerance) old."""
    own = _series(lines, unattributed=True)
    last = own[own["following"].isna()]
    monthly = (last["cycle"] == MONTHLY).to_numpy()
    current = (_step(last["payment_date"], monthly, 1) + pd.Timedelta(days=CYCLE_TOLERANCE_DAYS) >= as_of).to_numpy()
    last, monthly = last[current], monthly[current]
    most = weeks // 4 + 3
    rows = last.loc[np.repeat(last.index, most)]
    steps = np.tile(np.arange(1, most + 1), len(last))
    day = _step(rows["payment_date"], np.repeat(monthly, most), steps)
    ended = register.assign(tenancy_id=register["tenancy_id"].astype(str), end_date=as_days(
        register["end_date"])).drop_duplicates("tenancy_id", keep="last").set_index("tenancy_id")["end_date"]
    end = rows["tenancy_id"].astype(str).map(ended)
    keep = ((day > as_of) & (day <= as_of + pd.Timedelta(weeks=weeks)) & ~(end.notna() & (day >= end))).to_numpy()
    return pd.DataFrame({"tenancy_id": rows["tenancy_id"].to_numpy()[keep],
                         "line_reference": rows["line_reference"].to_numpy()[keep],
                         "scheme": rows["scheme"].to_numpy()[keep], "expected_date": day.to_numpy()[keep],
                         "amount_pence": rows["amount_pence"].astype("int64").to_numpy()[keep]})


def lines_known_on(schedules: pd.DataFrame, tenancies: pd.DataFrame, transactions: pd.DataFrame, day,
                   weeks: int) -> pd.DataFrame | None:
    """`expected_schedule_lines` after `day` for `weeks` from what was known on `day` (a backtest's origin): the
    schedule lines paid by then, the benefit postings (`transactions` of type benefit) posted by then, and the
    register (`tenancies`: tenancy_id, end_date, benefit_type) without the end dates still to come. None when no
    line is expected (a forecast is then as it would be without the schedules). Inputs are not changed."""
    day = pd.Timestamp(day)
    day = (day.tz_localize(None) if day.tz is not None else day).normalize()
    benefit = transactions[transactions["type"] == "benefit"]
    posted = benefit.loc[as_days(benefit["posted_date"]) <= day, ["tenancy_id", "posted_date", "amount_pence"]]
    ends = as_days(tenancies["end_date"])
    register = tenancies[["tenancy_id", "benefit_type"]].assign(end_date=ends.where(ends <= day))
    lines = expected_schedule_lines(schedules, day, weeks, register, posted)
    return None if lines.empty else lines
