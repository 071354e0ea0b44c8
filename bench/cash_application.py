"""Cash application against a known truth: how often the matcher's proposals are right, and how many receipts in
suspense it matches in all (`python -m bench.cash_application`).

Simulated portfolios (`simulator.suspense`: receipts with a mistyped or missing reference, a payer's name instead
of one, a payment provider's own reference, a payment split in two or two combined, DWP credits without a tenancy
reference; the truth of each kept apart) on seeds the tests do not use. The ledger is replayed at weekly origins up
to the window's end: at each, matching sees only what was known then (payments posted, receipts received,
cleared only if cleared by then, schedule lines paid), learns from the receipts cleared so far and judges the
receipts still open, each receipt once (at the first origin it is open). Measured, for each matcher: the share of
open receipts whose true tenancy blocking finds (`recall`), whose top candidate is right (`top1`: auto-proposed plus
queued top candidate, the issue's "correctly matched in total"), and for each proposal threshold the share proposed
and how many proposals are right (`precision`, the issue's goal: at least 0.99); and by fault kind at the default
threshold. Nothing here is asserted; the tests use other seeds.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from serving.income import matching

THRESHOLDS = (0.8, 0.9, 0.95, 0.97, 0.99)
DEFAULT_AT = 0.95
#: How sure the runner-up may be for the top candidate to be proposed: the service's rule (less likely than not,
#: `matching.RUNNER_UP_AT`) and a stricter one (below 1 - the threshold).
RUNNER_UP = {"strict": lambda at: 1 - at, "loose": lambda at: matching.RUNNER_UP_AT}


def books_of(portfolio) -> tuple[matching.Books, pd.DataFrame]:
    """A simulated portfolio's books as the ledger would hold them (pence, receipts positive), and the truth."""
    tx = portfolio.transactions
    paid = tx[tx["type"].astype(object).isin(["payment", "benefit"]) & (tx["amount"] < 0)]
    payments = pd.DataFrame({"tenancy_id": paid["tenancy_id"].astype(str).to_numpy(),
                             "posted_date": pd.to_datetime(paid["posted_date"]).to_numpy(),
                             "amount_pence": (-paid["amount"] * 100).round().astype(np.int64).to_numpy()})
    suspense = portfolio.suspense.assign(amount_pence=(portfolio.suspense["amount"] * 100).round().astype(np.int64))
    suspense = suspense.drop(columns="amount").astype({c: object for c in (
        "receipt_id", "reference", "payer", "source", "cleared_tenancy_id")})
    for column in ("reference", "payer", "cleared_tenancy_id"):
        suspense[column] = suspense[column].where(suspense[column].notna(), None)
    lines = portfolio.dwp_schedules.assign(
        amount_pence=(portfolio.dwp_schedules["amount"] * 100).round().astype(np.int64))
    lines["payment_date"] = pd.to_datetime(lines["payment_date"])
    lines["tenancy_reference"] = lines["tenancy_reference"].astype(object).where(lines["tenancy_reference"].notna(),
                                                                                  None)
    books = matching.Books(portfolio.tenancies["tenancy_id"].astype(str).to_numpy(), payments, suspense, lines)
    return books, portfolio.ground_truth["suspense"].set_index("receipt_id")


def as_of(books: matching.Books, day: pd.Timestamp) -> matching.Books:
    """The books as known on `day`: later postings, receipts and lines unknown, later clearing not yet done."""
    suspense = books.suspense[pd.to_datetime(books.suspense["received_date"]) <= day].copy()
    later = pd.to_datetime(suspense["cleared_date"]) > day
    suspense.loc[later, ["cleared_tenancy_id", "cleared_date"]] = [None, pd.NaT]
    return matching.Books(books.tenancy_ids, books.payments[books.payments["posted_date"] <= day], suspense,
                          books.schedules[books.schedules["payment_date"] <= day])


@dataclass
class Judged:
    """Per open receipt: its truth, fault, whether blocking found it, and each matcher's top candidate, its
    probability and the runner-up's."""

    rows: list[dict]


def judge_origin(books: matching.Books, truth: pd.DataFrame, day: pd.Timestamp, seen: set[str],
                 kinds: tuple[str, ...]) -> tuple[list[dict], dict]:
    known = as_of(books, day)
    receipts = known.open.drop(columns=["cleared_tenancy_id", "cleared_date"])
    receipts = receipts[~receipts["receipt_id"].isin(seen)]
    started = time.perf_counter()
    labelled = matching.labelled_pairs(known)
    pairs = matching.candidates(receipts, known)
    timing = {"pairs_s": time.perf_counter() - started, "cleared": len(known.cleared), "open": len(receipts)}
    rows = {r: {"receipt_id": r, "tenancy_id": truth.at[r, "tenancy_id"], "fault": truth.at[r, "fault"],
                "origin": str(day.date())} for r in receipts["receipt_id"]}
    found = set(pairs.loc[pairs["tenancy_id"] == pairs["receipt_id"].map(truth["tenancy_id"]), "receipt_id"])
    for r in rows.values():
        r["found"] = r["receipt_id"] in found
    for kind in kinds:
        started = time.perf_counter()
        matcher = matching.fit_matcher(labelled, kind, len(known.cleared))
        timing[f"fit_{kind}_s"] = time.perf_counter() - started
        ranked = matching.scored(pairs, matcher)
        decided = matching.decide(receipts, ranked, 1.0).set_index("receipt_id")
        for receipt, r in rows.items():
            r[f"{kind}_top"] = decided.at[receipt, "tenancy_id"]
            r[f"{kind}_p"] = float(decided.at[receipt, "probability"])
            r[f"{kind}_p2"] = float(decided.at[receipt, "runner_up"])
    seen.update(rows)
    return list(rows.values()), timing


def summary(judged: pd.DataFrame, kinds: tuple[str, ...]) -> dict:
    out = {"receipts": len(judged), "recall": float(judged["found"].mean())}
    for kind in kinds:
        right = judged[f"{kind}_top"].eq(judged["tenancy_id"])
        out[kind] = {"top1": float(right.mean())}
        for rule, runner_up in RUNNER_UP.items():
            out[kind][rule] = {}
            for at in THRESHOLDS:
                proposed = (judged[f"{kind}_p"] >= at) & (judged[f"{kind}_p2"] <= runner_up(at))
                out[kind][rule][str(at)] = {
                    "proposed": float(proposed.mean()), "n": int(proposed.sum()),
                    "precision": float(right[proposed].mean()) if proposed.any() else float("nan")}
    return out


def by_fault(judged: pd.DataFrame, kind: str, at: float) -> pd.DataFrame:
    right = judged[f"{kind}_top"].eq(judged["tenancy_id"])
    proposed = (judged[f"{kind}_p"] >= at) & (judged[f"{kind}_p2"] <= matching.RUNNER_UP_AT)
    frame = judged.assign(right=right, proposed=proposed, proposed_right=proposed & right)
    table = frame.groupby("fault").agg(receipts=("right", "size"), recall=("found", "mean"), top1=("right", "mean"),
                                       proposed=("proposed", "mean"), proposed_right=("proposed_right", "sum"),
                                       proposed_n=("proposed", "sum"))
    return table.assign(precision=table["proposed_right"] / table["proposed_n"].where(table["proposed_n"] > 0))


def run(tenancies: int, years: float, seeds: list[int], origins: int, kinds: tuple[str, ...]) -> dict:
    from simulator import simulate_portfolio

    judged, timings = [], []
    for seed in seeds:
        portfolio = simulate_portfolio(n_tenancies=tenancies, years=years, seed=seed)
        books, truth = books_of(portfolio)
        end = pd.Timestamp(portfolio.window_end)
        seen: set[str] = set()
        for k in range(origins - 1, -1, -1):
            rows, timing = judge_origin(books, truth, end - pd.Timedelta(weeks=k), seen, kinds)
            judged += [r | {"seed": seed} for r in rows]
            timings.append(timing | {"seed": seed})
    frame = pd.DataFrame(judged)
    return {"tenancies": tenancies, "years": years, "seeds": seeds, "origins": origins,
            "summary": summary(frame, kinds), "by_fault": {kind: by_fault(frame, kind, DEFAULT_AT).reset_index()
                                                           .to_dict("records") for kind in kinds},
            "timings": timings, "rows": frame.drop(columns=[c for c in frame if c.endswith("_top")]).assign(
                **{f"{k}_right": frame[f"{k}_top"].eq(frame["tenancy_id"]) for k in kinds}).to_dict("records")}


def show(result: dict, kinds: tuple[str, ...]) -> None:
    s = result["summary"]
    print(f"cash application: {result['tenancies']:,} tenancies x {result['years']:g} years, seeds "
          f"{result['seeds']}, {result['origins']} weekly origins; {s['receipts']:,} open receipts judged; "
          f"blocking recall {s['recall']:.3f}")
    print(f"{'matcher':<10} {'rule':<7} {'top1':>6} " + " ".join(f"{'p>=' + str(a):>22}" for a in THRESHOLDS))
    for kind in kinds:
        for rule in RUNNER_UP:
            cells = [f"{t['proposed']:.3f} prop, {t['precision']:.3f} ok" for t in s[kind][rule].values()]
            print(f"{kind:<10} {rule:<7} {s[kind]['top1']:>6.3f} " + " ".join(f"{c:>22}" for c in cells))
    for kind in kinds:
        print(f"\nby fault ({kind}, proposals at {DEFAULT_AT}):")
        print(pd.DataFrame(result["by_fault"][kind]).round(3).to_string(index=False))
    fit = {k: np.median([t[f"fit_{k}_s"] for t in result["timings"]]) for k in kinds}
    pairs = np.median([t["pairs_s"] for t in result["timings"]])
    print(f"\nmedian seconds per origin: candidates and labelled pairs {pairs:.1f}, "
          + ", ".join(f"fit {k} {v:.1f}" for k, v in fit.items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenancies", type=int, default=3000)
    parser.add_argument("--years", type=float, default=2.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    parser.add_argument("--origins", type=int, default=13, help="Replay origins, a week apart, up to the end")
    parser.add_argument("--kinds", nargs="+", default=list(matching.KINDS), choices=matching.KINDS)
    parser.add_argument("--json", help="Also write the result here")
    args = parser.parse_args(argv)
    kinds = tuple(args.kinds)
    result = run(args.tenancies, args.years, args.seeds, args.origins, kinds)
    show(result, kinds)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2, default=str)


if __name__ == "__main__":
    main()
