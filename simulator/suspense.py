"""Receipts in suspense and the DWP's payment schedules, with their hidden truth (issue 31).

`add_income_feeds` takes a simulated `Portfolio` and returns it with two more feeds (`features.feeds.contract`:
SUSPENSE, DWP_SCHEDULES), the transactions they imply, and their truth. It draws from random streams of its own
(``[seed, 7]`` and ``[seed, 8]``), so the rest of the simulation is drawn exactly as before; only the postings it
moves are different.

**DWP schedules.** Benefit paid straight to the landlord (`type` benefit, references "Housing Benefit", "UC managed
payment", "UC deduction for arrears") is grouped into settlements: one bank payment per scheme and posting day,
one line per tenancy (a UC managed payment and its deduction for arrears are one line). Housing Benefit is paid on
4-weekly runs per patch, so its settlements are 4-weekly; the simulator pays Universal Credit managed payments on
each claimant's monthly payment day (its UC timing, which the other tests and the `benefit_delay` change rely on, is
kept), so its UC settlements are daily and each tenancy's UC lines monthly, where the DWP's real UC landlord
payments are 4-weekly. A line's `line_reference` is a claimant-style reference kept for the tenancy's claim;
`tenancy_reference` is the tenancy id for most tenancies and missing for some (the DWP was never given it) and on a
few lines. Faults, kept in the truth: a line **missing** from its schedule although the tenancy was due (its
posting is removed: the landlord was not paid), a credit **late** (posted 4-12 days after the payment date), a
line **short** (the DWP paid less than the schedule says: the line states more than was posted).

**Suspense.** About 1.5% of tenants' own rent payments do not reach their account: they land in suspense with a
fault (a reference typo, a missing reference, the payer's name instead of a reference, one payment split in two, two
payments combined in one lump, a payment provider's own reference), and a few DWP credits for lines without a
tenancy reference land there too (source `dwp`, the settlement and line in the reference). Each tenancy has a
synthetic payer name, from a seeded list, that exists only in the suspense feed's `payer` column (never in the
truth). The landlord's team clears most receipts some days later: the money then reaches the tenancy as a
`payment` (or `benefit`) posted on the clearing day, allocated to rent, its reference naming the receipt; a receipt
still open at the window end is not in the transactions at all, and the housing system's reported balance agrees
(the balance it reports is its own ledger's).

Truth (`portfolio.ground_truth`): ``suspense`` (receipt_id, tenancy_id, fault, transaction_id, received_date,
cleared_date: NaT while open at the window end) and ``dwp_schedules`` (settlement_number, line_reference,
tenancy_id, fault: none, missing, late, short; posted_amount, posted_date; a missing line is in the truth only).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from features.feeds.contract import DWP_SCHEDULES, SUSPENSE
from simulator.model import Portfolio

#: Share of tenants' own rent payments that land in suspense.
SUSPENSE_SHARE = 0.015
#: What went wrong with a receipt, and how often (tenants' own payments).
RECEIPT_FAULTS: dict[str, float] = {"reference_typo": 0.28, "missing_reference": 0.14, "payer_name": 0.18,
                                    "split": 0.10, "combined": 0.10, "provider_reference": 0.20}
#: DWP credits for lines without a tenancy reference that land in suspense (share of those lines).
DWP_SUSPENSE_SHARE = 0.03
#: Receipts the landlord's team never clears (still open however long the window).
NEVER_CLEARED = 0.04
#: Schedule faults and their shares of the lines of tenancies already on a schedule.
LINE_FAULTS: dict[str, float] = {"missing": 0.005, "late": 0.01, "short": 0.01}
#: Tenancies whose DWP lines never carry the tenancy id; lines that lack it now and then.
NO_REFERENCE_TENANCIES, NO_REFERENCE_LINES = 0.10, 0.03
SCHEMES: dict[str, tuple[str, ...]] = {
    "housing_benefit": ("Housing Benefit",),
    "universal_credit": ("UC managed payment", "UC deduction for arrears"),
}
_PREFIX = {"housing_benefit": "HB", "universal_credit": "UC"}

FIRST_NAMES = ("JAMES", "MARY", "MOHAMMED", "OLIVIA", "DAVID", "AMELIA", "JOHN", "SOPHIE", "DANIEL", "GRACE",
               "ADAM", "FATIMA", "PETER", "CHLOE", "THOMAS", "AISHA", "MICHAEL", "EMMA", "RYAN", "JESSICA",
               "LIAM", "PRIYA", "KAREN", "CONNOR", "SARAH", "TOMASZ", "AGNIESZKA", "KWAME", "IFEOMA", "LEWIS")
SURNAMES = ("SMITH", "JONES", "TAYLOR", "BROWN", "WILLIAMS", "WILSON", "JOHNSON", "DAVIES", "PATEL", "WRIGHT",
            "ROBINSON", "THOMPSON", "EVANS", "WALKER", "KHAN", "HUGHES", "GREEN", "EDWARDS", "HALL", "WOOD",
            "AHMED", "CLARKE", "OKAFOR", "NOWAK", "MURPHY", "KELLY", "BEGUM", "MENSAH", "REID", "CAMPBELL")


def add_income_feeds(portfolio: Portfolio, seed: int, share: float = SUSPENSE_SHARE) -> Portfolio:
    """`portfolio` with its DWP schedules and receipts in suspense (see the module docstring)."""
    if portfolio.dirty:
        raise ValueError("add the income feeds before the export faults (a dirty portfolio is text)")
    end = pd.Timestamp(portfolio.window_end)
    transactions = portfolio.transactions.copy()
    transactions["reference"] = transactions["reference"].astype(object)
    lines, removed, unreferenced = _schedules(portfolio.tenancies, transactions, np.random.default_rng([seed, 8]),
                                              end)
    rng = np.random.default_rng([seed, 7])
    receipts, postings, taken = _suspense(portfolio.tenancies, transactions, unreferenced, rng, share, end)
    removed = pd.concat([removed, taken])
    posted = postings[postings["posted_date"] <= end]
    kept = transactions[~transactions["transaction_id"].isin(removed["transaction_id"])]
    transactions = _sorted(pd.concat([kept, posted], ignore_index=True), portfolio.transactions)
    # The housing system's balance is its own ledger's: money it never posted is not in it either (and the truth's
    # closing balance is the rent account's, as the feeds show it).
    delta = posted.groupby("tenancy_id")["amount"].sum().sub(
        removed.assign(tenancy_id=removed["tenancy_id"].astype(str)).groupby("tenancy_id")["amount"].sum(),
        fill_value=0.0)
    tenancies = portfolio.tenancies.copy()
    shift = tenancies["tenancy_id"].astype(str).map(delta).fillna(0.0).to_numpy()
    tenancies["reported_balance"] = (tenancies["reported_balance"] + shift).round(2)
    truth = dict(portfolio.ground_truth)
    for name, columns in (("tenancies", ("closing_balance",)),
                          ("reported_balances", ("reported_balance", "ledger_balance"))):
        if name in truth:
            frame = truth[name].copy()
            shift = frame["tenancy_id"].astype(str).map(delta).fillna(0.0).to_numpy()
            for column in columns:
                frame[column] = (frame[column] + shift).round(2)
            truth[name] = frame
    truth["suspense"], truth["dwp_schedules"] = receipts.attrs.pop("truth"), lines.attrs.pop("truth")
    return dataclasses.replace(portfolio, tenancies=tenancies, transactions=transactions, ground_truth=truth,
                               suspense=receipts, dwp_schedules=lines)


def _sorted(transactions: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """Transactions in the feed's order (date, tenancy, posting order), with the original column types."""
    rank = {name: i + 1 for i, name in enumerate(("charge", "benefit", "payment", "adjustment", "fee", "refund",
                                                  "write_off"))}
    order = transactions["type"].astype(object).map(rank).to_numpy()
    order[(transactions["reference"] == "Opening balance").to_numpy()] = 0
    keys = np.lexsort((order, transactions["tenancy_id"].astype(str).to_numpy(),
                       transactions["posted_date"].to_numpy()))
    out = transactions.iloc[keys].reset_index(drop=True)
    out["posted_date"] = pd.to_datetime(out["posted_date"])
    for column in ("type", "method", "allocation"):
        out[column] = pd.Categorical(out[column].astype(object), categories=like[column].cat.categories)
    references = list(like["reference"].cat.categories)
    extra = sorted(set(out["reference"].dropna().astype(str)) - set(references))
    out["reference"] = pd.Categorical(out["reference"].astype(object), categories=references + extra)
    out["tenancy_id"] = out["tenancy_id"].astype(like["tenancy_id"].dtype)
    out["transaction_id"] = out["transaction_id"].astype(like["transaction_id"].dtype)
    return out


# -- DWP schedules --------------------------------------------------------------------------------------------


def _claimant_references(tenancy_ids: pd.Series, rng: np.random.Generator, prefix: str) -> dict[str, str]:
    """A claimant-style reference per tenancy (unique, stable across its lines)."""
    numbers = 10_000_000 + rng.choice(90_000_000, size=len(tenancy_ids), replace=False)
    return {tenancy: f"{prefix}{number:08d}" for tenancy, number in zip(tenancy_ids, numbers, strict=True)}


def _schedule_lines(transactions: pd.DataFrame) -> pd.DataFrame:
    """One line per scheme, posting day and tenancy, from the benefit paid straight to the landlord."""
    scheme_of = {reference: scheme for scheme, references in SCHEMES.items() for reference in references}
    benefit = transactions[transactions["type"].astype(object).eq("benefit")
                           & transactions["reference"].isin(scheme_of)]
    postings = pd.DataFrame({"scheme": benefit["reference"].map(scheme_of), "posted_date": benefit["posted_date"],
                             "tenancy_id": benefit["tenancy_id"].astype(str), "amount": -benefit["amount"],
                             "transaction_id": benefit["transaction_id"].astype(str)})
    postings = postings.sort_values(["posted_date", "scheme", "tenancy_id", "transaction_id"], kind="stable")
    key = postings[["posted_date", "scheme", "tenancy_id"]]
    first, last = ~key.duplicated().to_numpy(), ~key.duplicated(keep="last").to_numpy()
    lines = postings[first].reset_index(drop=True)
    lines["amount"] = np.bincount(np.cumsum(first) - 1, weights=postings["amount"].to_numpy()).round(2)
    # A managed payment and its deduction for arrears (the only postings a line can have) are one line.
    ends = postings["transaction_id"].to_numpy()[last]
    lines["transaction_ids"] = [[a] if a == b else [a, b] for a, b in zip(lines.pop("transaction_id"), ends,
                                                                          strict=True)]
    return lines


def _schedules(tenancies: pd.DataFrame, transactions: pd.DataFrame, rng: np.random.Generator,
               end: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The schedule feed (its truth in ``attrs["truth"]``), after its faults; the postings a missing line removes
    or a late one moves past the window end (transaction_id, tenancy_id, amount; a late posting is moved in
    `transactions` itself); and the lines without a tenancy reference (the DWP credits that may land in suspense)."""
    lines = _schedule_lines(transactions)
    settlements = lines[["scheme", "posted_date"]].drop_duplicates().reset_index(drop=True)
    settlements["settlement_number"] = [f"{_PREFIX[s]}{i + 1:06d}" for i, s in enumerate(settlements["scheme"])]
    lines = lines.merge(settlements, on=["scheme", "posted_date"])
    claimants = {scheme: _claimant_references(lines.loc[lines["scheme"] == scheme, "tenancy_id"].drop_duplicates(),
                                              rng, _PREFIX[scheme]) for scheme in SCHEMES}
    lines["line_reference"] = [claimants[s][t] for s, t in zip(lines["scheme"], lines["tenancy_id"], strict=True)]
    ids = tenancies["tenancy_id"].astype(str)
    unreferenced = set(ids[rng.random(len(ids)) < NO_REFERENCE_TENANCIES])
    referenced = ~lines["tenancy_id"].isin(unreferenced) & (rng.random(len(lines)) >= NO_REFERENCE_LINES)
    lines["tenancy_reference"] = lines["tenancy_id"].where(referenced)
    fault = _line_faults(lines, rng)
    posted = lines["amount"].copy()
    lines["posted_date_true"] = lines["posted_date"]
    short = fault == "short"
    lines.loc[short, "amount"] = (posted[short] / rng.uniform(0.5, 0.95, short.sum())).round(2)
    late = fault == "late"
    moved = lines.loc[late, "posted_date"] + pd.to_timedelta(rng.integers(4, 13, late.sum()), unit="D")
    lines.loc[late, "posted_date_true"] = moved
    moved_to = {t: day for ids_, day in zip(lines.loc[late, "transaction_ids"], moved, strict=True) for t in ids_}
    is_late = transactions["transaction_id"].isin(moved_to)
    transactions.loc[is_late, "posted_date"] = transactions.loc[is_late, "transaction_id"].map(moved_to)
    missing = fault == "missing"
    removed_ids = [t for ids_ in lines.loc[missing, "transaction_ids"] for t in ids_]
    removed = transactions.loc[transactions["transaction_id"].isin(removed_ids), ["transaction_id", "tenancy_id",
                                                                                  "amount"]].copy()
    removed["tenancy_id"] = removed["tenancy_id"].astype(str)
    removed = pd.concat([removed, transactions.loc[transactions["posted_date"] > end, ["transaction_id",
                                                                                       "tenancy_id", "amount"]]])
    truth = pd.DataFrame({"settlement_number": lines["settlement_number"], "line_reference": lines["line_reference"],
                          "tenancy_id": lines["tenancy_id"], "fault": fault, "posted_amount": posted.where(~missing),
                          "posted_date": lines["posted_date_true"].where(~missing)})
    feed = _schedule_feed(lines[~missing])
    feed.attrs["truth"] = truth
    unreferenced = lines[(fault == "none") & lines["tenancy_reference"].isna()]
    return feed, removed, unreferenced


def _line_faults(lines: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """A fault per line (none, missing, late, short), only on lines of tenancies with two earlier lines of the
    scheme and a later one (a missing line is then a gap in a regular series, as a landlord would see it)."""
    order = lines.groupby(["scheme", "tenancy_id"]).cumcount()
    remaining = lines.groupby(["scheme", "tenancy_id"])["posted_date"].transform("size") - order - 1
    eligible = ((order >= 2) & (remaining >= 1)).to_numpy()
    draw = rng.random(len(lines))
    fault = np.full(len(lines), "none", dtype=object)
    edge = 0.0
    for kind, share in LINE_FAULTS.items():
        fault[eligible & (draw >= edge) & (draw < edge + share)] = kind
        edge += share
    # No two missing lines in a row for one tenancy: each gap is one line.
    missing = pd.Series(fault == "missing")
    after_missing = missing.groupby([lines["scheme"], lines["tenancy_id"]]).shift(1, fill_value=False).to_numpy()
    fault[(fault == "missing") & after_missing] = "none"
    return fault


def _schedule_feed(lines: pd.DataFrame) -> pd.DataFrame:
    """The lines as the DWP_SCHEDULES feed (periods: Housing Benefit two weeks in arrears and two in advance;
    Universal Credit the month before, in arrears)."""
    hb = lines["scheme"].eq("housing_benefit")
    start = lines["posted_date"] - pd.to_timedelta(np.where(hb, 14, 35), unit="D")
    frame = pd.DataFrame({
        "settlement_number": lines["settlement_number"].astype("string"),
        "line_reference": lines["line_reference"].astype("string"),
        "payment_date": pd.to_datetime(lines["posted_date"]),
        "amount": lines["amount"].round(2).astype(float),
        "tenancy_reference": lines["tenancy_reference"].astype("string"),
        "scheme": pd.Categorical(lines["scheme"], categories=DWP_SCHEDULES.column("scheme").vocabulary),
        "period_start": start,
        "period_end": start + pd.Timedelta(days=27),
    })
    assert list(frame.columns) == list(DWP_SCHEDULES.columns)
    return frame.sort_values(["payment_date", "settlement_number", "line_reference"]).reset_index(drop=True)


# -- receipts in suspense -------------------------------------------------------------------------------------


def payer_names(tenancy_ids: pd.Series, rng: np.random.Generator) -> pd.Series:
    """A synthetic payer name per tenancy (first name, surname) from the seeded lists; indexed by tenancy id."""
    first = np.asarray(FIRST_NAMES)[rng.integers(0, len(FIRST_NAMES), len(tenancy_ids))]
    last = np.asarray(SURNAMES)[rng.integers(0, len(SURNAMES), len(tenancy_ids))]
    return pd.Series([f"{f} {s}" for f, s in zip(first, last, strict=True)], index=tenancy_ids.astype(str).to_numpy())


def _as_bank_shows(name: str, pick: int) -> str:
    """A payer's name as a bank statement shows it: initial and surname, with a title, surname first, or whole."""
    first, last = name.split(" ", 1)
    title = ("MR", "MRS", "MS", "MISS")[pick // 4 % 4]
    return (f"{first[0]} {last}", f"{title} {first[0]} {last}", f"{last} {first[0]}", name)[pick % 4]


def mistyped(reference: str, rng: np.random.Generator) -> str:
    """A tenancy id with one slip: two neighbouring characters swapped, one dropped, or one digit wrong."""
    digits = [i for i, c in enumerate(reference) if c.isdigit()]
    kind = int(rng.integers(0, 3))
    for _ in range(10):
        at = int(rng.choice(digits[:-1] if kind == 0 else digits))
        if kind == 0:
            typed = reference[:at] + reference[at + 1] + reference[at] + reference[at + 2:]
        elif kind == 1:
            typed = reference[:at] + reference[at + 1:]
        else:
            typed = reference[:at] + str((int(reference[at]) + int(rng.integers(1, 10))) % 10) + reference[at + 1:]
        if typed != reference:
            return typed
        kind = 2  # a swap of two equal digits changes nothing: a wrong digit always does
    return reference[:-1]


def _reference(fault: str, tenancy_id: str, payer: str, rng: np.random.Generator) -> tuple[str | None, str | None,
                                                                                            str]:
    """(reference, payer text, source) of a tenant's payment in suspense with this fault."""
    shown = _as_bank_shows(payer, int(rng.integers(0, 16)))
    if fault == "reference_typo":
        typed = mistyped(tenancy_id, rng)
        return (typed, f"RENT {typed}", typed.lower())[int(rng.integers(0, 3))], shown, "bank"
    if fault == "missing_reference":
        return None, shown, "bank"
    if fault == "payer_name":
        return (shown, f"RENT {shown}")[int(rng.integers(0, 2))], shown, "bank"
    if fault == "provider_reference":
        code = "".join(rng.choice(list("ABCDEFGHJKLMNPQRSTUVWXYZ23456789"), 10))
        return f"{('PAYPOINT', 'ALLPAY', 'PAYZONE')[int(rng.integers(0, 3))]} {code}", (
            shown if rng.random() < 0.5 else None), "payment_provider"
    return (tenancy_id if rng.random() < 0.5 else None), shown, "bank"  # split, combined: the amount is the puzzle


def _chosen_payments(transactions: pd.DataFrame, rng: np.random.Generator, share: float) -> pd.DataFrame:
    """Tenants' own rent payments that land in suspense, each with its fault (and, for a combined lump, the
    tenancy's next payment it absorbs)."""
    payments = transactions[transactions["type"].astype(object).eq("payment")
                            & transactions["allocation"].astype(object).eq("rent") & (transactions["amount"] < 0)]
    payments = payments.assign(tenancy_id=payments["tenancy_id"].astype(str)).sort_values(
        ["tenancy_id", "posted_date"], kind="stable")
    following = payments.groupby("tenancy_id")["transaction_id"].shift(-1)
    chosen = payments[rng.random(len(payments)) < share].copy()
    kinds, weights = list(RECEIPT_FAULTS), np.array(list(RECEIPT_FAULTS.values()))
    chosen["fault"] = rng.choice(kinds, size=len(chosen), p=weights / weights.sum())
    chosen["absorbs"] = following.reindex(chosen.index).where(chosen["fault"] == "combined")
    clash = chosen["absorbs"].isin(chosen["transaction_id"]) | (chosen["fault"].eq("combined")
                                                                & chosen["absorbs"].isna())
    chosen.loc[clash, ["fault", "absorbs"]] = ["missing_reference", None]
    return chosen


def _receipt_rows(tenancies: pd.DataFrame, transactions: pd.DataFrame, dwp_lines: pd.DataFrame,
                  rng: np.random.Generator, share: float, end: pd.Timestamp) -> pd.DataFrame:
    """One row per receipt in suspense (before ids): its truth and the transactions it came from."""
    chosen = _chosen_payments(transactions, rng, share)
    names = payer_names(tenancies["tenancy_id"], rng)
    by_id = transactions.set_index("transaction_id")
    rows = []
    for payment in chosen.itertuples(index=False):
        reference, payer, source = _reference(payment.fault, payment.tenancy_id, names[payment.tenancy_id], rng)
        base = {"tenancy_id": payment.tenancy_id, "fault": payment.fault, "reference": reference, "payer": payer,
                "source": source, "type": "payment", "method": payment.method}
        amount, received = -float(payment.amount), pd.Timestamp(payment.posted_date)
        if payment.fault == "combined":
            absorbed = by_id.loc[payment.absorbs]
            rows.append(base | {"amount": round(amount - float(absorbed["amount"]), 2), "received_date":
                                pd.Timestamp(absorbed["posted_date"]), "from_ids": [payment.transaction_id,
                                                                                    payment.absorbs]})
        elif payment.fault == "split" and amount >= 2:
            first = round(amount * float(rng.uniform(0.3, 0.7)), 2)
            later = min(received + pd.Timedelta(days=int(rng.integers(0, 2))), end)
            rows.append(base | {"amount": first, "received_date": received, "from_ids": [payment.transaction_id]})
            rows.append(base | {"amount": round(amount - first, 2), "received_date": later, "from_ids": []})
        else:
            rows.append(base | {"amount": amount, "received_date": received, "from_ids": [payment.transaction_id]})
    picked = dwp_lines[rng.random(len(dwp_lines)) < DWP_SUSPENSE_SHARE]
    for line in picked.itertuples(index=False):
        rows.append({"tenancy_id": line.tenancy_id, "fault": "dwp_unreferenced", "source": "dwp",
                     "reference": f"DWP {line.settlement_number} {line.line_reference}", "payer": "DWP",
                     "type": "benefit", "method": by_id.loc[line.transaction_ids[0], "method"],
                     "amount": round(float(line.amount), 2), "received_date": pd.Timestamp(line.posted_date),
                     "from_ids": list(line.transaction_ids)})
    columns = ["tenancy_id", "fault", "reference", "payer", "source", "type", "method", "amount", "received_date",
               "from_ids"]
    return pd.DataFrame(rows, columns=columns).astype({"amount": float, "received_date": "datetime64[ns]"})


def _suspense(tenancies: pd.DataFrame, transactions: pd.DataFrame, dwp_lines: pd.DataFrame, rng: np.random.Generator,
              share: float, end: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The suspense feed (its truth in ``attrs["truth"]``); the postings its cleared receipts make (dated on the
    clearing day, some after the window end); the original postings it takes out of the ledger."""
    rows = _receipt_rows(tenancies, transactions, dwp_lines, rng, share, end)
    rows = rows.sort_values(["received_date", "tenancy_id", "amount"], kind="stable").reset_index(drop=True)
    rows["receipt_id"] = pd.Series([f"R{i + 1:07d}" for i in range(len(rows))], index=rows.index, dtype=object)
    delay = pd.to_timedelta(1 + rng.geometric(1 / 6, len(rows)), unit="D")
    cleared = (rows["received_date"] + delay).where(rng.random(len(rows)) >= NEVER_CLEARED)
    rows["cleared_date"] = cleared.where(cleared <= end)
    taken_ids = [t for ids in rows["from_ids"] for t in ids]
    taken = transactions.loc[transactions["transaction_id"].isin(taken_ids), ["transaction_id", "tenancy_id",
                                                                              "amount"]].copy()
    width = len(str(transactions["transaction_id"].iloc[0])) - 1
    next_number = int(transactions["transaction_id"].astype(str).str[1:].astype(np.int64).max()) + 1
    new_ids = iter(f"X{n:0{width}d}" for n in range(next_number, next_number + len(rows)))
    postings = pd.DataFrame({
        "transaction_id": [ids[0] if ids else next(new_ids) for ids in rows["from_ids"]],
        "tenancy_id": rows["tenancy_id"], "posted_date": cleared.fillna(end + pd.Timedelta(days=1)),
        "type": rows["type"], "amount": -rows["amount"], "method": rows["method"],
        "reference": "Suspense " + rows["receipt_id"], "allocation": "rent",
    })
    feed = pd.DataFrame({
        "receipt_id": rows["receipt_id"].astype("string"),
        "received_date": pd.to_datetime(rows["received_date"]),
        "amount": rows["amount"].astype(float),
        "reference": rows["reference"].astype("string"),
        "payer": rows["payer"].astype("string"),
        "source": pd.Categorical(rows["source"], categories=SUSPENSE.column("source").vocabulary),
        "cleared_tenancy_id": rows["tenancy_id"].where(rows["cleared_date"].notna()).astype("string"),
        "cleared_date": pd.to_datetime(rows["cleared_date"]),
    })
    assert list(feed.columns) == list(SUSPENSE.columns)
    feed.attrs["truth"] = pd.DataFrame({
        "receipt_id": rows["receipt_id"], "tenancy_id": rows["tenancy_id"], "fault": rows["fault"],
        "transaction_id": postings["transaction_id"], "received_date": feed["received_date"],
        "cleared_date": feed["cleared_date"]})
    return feed, postings, taken


def income_feeds_as_of(portfolio: Portfolio, cutoff: pd.Timestamp, since: pd.Timestamp | None = None
                       ) -> dict[str, pd.DataFrame | None]:
    """The suspense and schedule feeds as the housing system exports them on `cutoff`: receipts received by then
    (open if cleared after it), schedule lines paid by then; with `since`, only receipts received or cleared, and
    lines paid, after `since`."""
    cutoff = pd.Timestamp(cutoff)
    out: dict[str, pd.DataFrame | None] = {"suspense": portfolio.suspense, "dwp_schedules": portfolio.dwp_schedules}
    if portfolio.suspense is not None:
        receipts = portfolio.suspense[pd.to_datetime(portfolio.suspense["received_date"]) <= cutoff].copy()
        cleared = pd.to_datetime(receipts["cleared_date"])
        receipts.loc[cleared > cutoff, ["cleared_tenancy_id", "cleared_date"]] = None
        if since is not None:
            changed = (pd.to_datetime(receipts["received_date"]) > since) | ((cleared > since) & (cleared <= cutoff))
            receipts = receipts[changed]
        out["suspense"] = receipts
    if portfolio.dwp_schedules is not None:
        paid = pd.to_datetime(portfolio.dwp_schedules["payment_date"])
        out["dwp_schedules"] = portfolio.dwp_schedules[(paid <= cutoff) & (paid > (since or pd.Timestamp.min))]
    return out
