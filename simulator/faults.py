"""Realistic export faults, injected in known quantities into a clean portfolio.

`make_dirty` turns every feed into text (as it would be written to CSV) and then injects, for each feed, a fixed
number of faults of each kind (rate × rows, at least one), on distinct rows:

================== ============================================================ =================================
kind               what the row looks like                                       repairable by ingestion?
================== ============================================================ =================================
duplicate          an exact copy of a row, re-sent later in the file              yes (counted as duplicate)
conflict           the same id again, later in the file, with a different        no (quarantined)
                   amount or date
amount_currency    money as "£1,234.50" / "-£12.00"                               yes
amount_parentheses a negative amount in accounting style "(12.00)"               yes
uk_date            a date as "12/03/2025" (day first)                             yes
case_variant       vocabulary as "Weekly", " payment ", "FOUR WEEKLY"             yes
unknown_tenancy    a tenancy_id that is not in the tenancies feed                 no
missing_amount     an empty amount                                               no
bad_date           an unparseable date ("31/02/2025", "2025-13-01", "TBC")       no
unknown_type       a type outside the vocabulary ("DD PAYMNT", "misc")           no
================== ============================================================ =================================

Every injected fault is one row of ``ground_truth["dirty_faults"]`` (columns `FAULT_COLUMNS`): the feed, the
0-based data ``row`` in the dirty frame (``line`` = row + 2 in the CSV, after the header), the row's ``key``
(its id), the ``column`` touched, the ``kind``, and the ``original`` and new ``value`` as text.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from simulator.write import to_arrow

FAULT_COLUMNS = ("feed", "row", "line", "key", "column", "kind", "original", "value")

#: Per feed and fault kind: the share of rows affected (at least one row each when the feed has rows).
FAULT_RATES: dict[str, dict[str, float]] = {
    "tenancies": {"duplicate": 0.005, "amount_currency": 0.01, "uk_date": 0.01, "case_variant": 0.02,
                  "bad_date": 0.002},
    "transactions": {"duplicate": 0.004, "conflict": 0.0015, "amount_currency": 0.004, "amount_parentheses": 0.002,
                     "uk_date": 0.004, "case_variant": 0.003, "unknown_tenancy": 0.001, "missing_amount": 0.001,
                     "bad_date": 0.001, "unknown_type": 0.001},
    "events": {"duplicate": 0.005, "uk_date": 0.01, "case_variant": 0.005, "unknown_tenancy": 0.003,
               "unknown_type": 0.002},
}
_KEY = {"tenancies": "tenancy_id", "transactions": "transaction_id", "events": "event_id"}
_DATE = {"tenancies": "start_date", "transactions": "posted_date", "events": "event_date"}
_AMOUNT = {"tenancies": "rent_amount", "transactions": "amount", "events": "amount"}
_VOCAB = {"tenancies": "rent_frequency", "transactions": "type", "events": "type"}
_BAD_TYPES = {"transactions": ("DD PAYMNT", "misc", "transfer", "hb credit"),
              "events": ("phone call logged", "visit", "note")}


def _text_table(frame: pd.DataFrame) -> pa.Table:
    table = to_arrow(frame, "csv")
    return pa.table({c: pc.cast(table[c], pa.string()) for c in table.column_names})


def _money(text: str) -> float:
    return float(text)


def _currency(text: str) -> str:
    v = _money(text)
    return f"{'-' if v < 0 else ''}£{abs(v):,.2f}"


def _parentheses(text: str) -> str:
    return f"({abs(_money(text)):,.2f})"


def _uk_date(text: str) -> str:
    y, m, d = text.split("-")
    return f"{d}/{m}/{y}"


def _case_variant(text: str, pick: int) -> str:
    spaced = text.replace("_", " ")
    variants = (spaced.title(), text.upper(), f" {text} ", spaced.capitalize() + " ")
    return variants[pick % len(variants)]


def _bad_date(text: str, pick: int) -> str:
    y, m, d = text.split("-")
    variants = (f"31/02/{y}", f"{y}-13-{d}", f"{d}.{m}.{y[2:]}", "TBC")
    return variants[pick % len(variants)]


def _inject(feed: str, table: pa.Table, rng: np.random.Generator, n_tenancies: int) -> tuple[pa.Table, list[dict]]:
    rates = FAULT_RATES[feed]
    n = table.num_rows
    if n == 0:
        return table, []
    cols = {c: table[c] for c in table.column_names}
    def value(col: str, i: int) -> str | None:
        return cols[col][int(i)].as_py()

    amount_col = _AMOUNT.get(feed)
    amounts = cols[amount_col] if amount_col in cols else None
    negative = (pc.starts_with(amounts, "-").fill_null(False).to_numpy(zero_copy_only=False)
                if amounts is not None else np.zeros(n, bool))
    has_amount = (pc.is_valid(amounts).to_numpy(zero_copy_only=False) if amounts is not None else np.zeros(n, bool))
    eligible = {
        "amount_currency": has_amount,
        "amount_parentheses": has_amount & negative,
        "missing_amount": has_amount,
        "conflict": has_amount if feed == "transactions" else np.ones(n, bool),
    }
    used = np.zeros(n, bool)
    picks: dict[str, np.ndarray] = {}
    for kind, rate in rates.items():
        pool = np.flatnonzero(eligible.get(kind, np.ones(n, bool)) & ~used)
        k = min(len(pool), max(1, int(round(rate * n))))
        chosen = np.sort(rng.choice(pool, size=k, replace=False)) if k else np.empty(0, np.int64)
        used[chosen] = True
        picks[kind] = chosen

    faults: list[dict] = []
    edits: dict[str, dict[int, str | None]] = {}

    def edit(kind: str, col: str, i: int, new: str | None) -> None:
        edits.setdefault(col, {})[int(i)] = new
        faults.append({"feed": feed, "src": int(i), "extra": -1, "key": value(_KEY[feed], i),
                       "column": col, "kind": kind, "original": value(col, i), "value": new})

    for i in picks.get("amount_currency", ()):
        edit("amount_currency", amount_col, i, _currency(value(amount_col, i)))
    for i in picks.get("amount_parentheses", ()):
        edit("amount_parentheses", amount_col, i, _parentheses(value(amount_col, i)))
    for i in picks.get("missing_amount", ()):
        edit("missing_amount", amount_col, i, None)
    for i in picks.get("uk_date", ()):
        edit("uk_date", _DATE[feed], i, _uk_date(value(_DATE[feed], i)))
    for j, i in enumerate(picks.get("bad_date", ())):
        edit("bad_date", _DATE[feed], i, _bad_date(value(_DATE[feed], i), int(rng.integers(0, 4))))
    for i in picks.get("case_variant", ()):
        edit("case_variant", _VOCAB[feed], i, _case_variant(value(_VOCAB[feed], i), int(rng.integers(0, 4))))
    for j, i in enumerate(picks.get("unknown_tenancy", ())):
        ghost = f"T{n_tenancies + 1000 + int(rng.integers(0, 10**6)):0{max(6, len(str(n_tenancies)))}d}"
        edit("unknown_tenancy", "tenancy_id", i, ghost)
    for i in picks.get("unknown_type", ()):
        options = _BAD_TYPES[feed]
        edit("unknown_type", "type", i, options[int(rng.integers(0, len(options)))])

    for col, changes in edits.items():
        positions = np.array(sorted(changes), dtype=np.int64)
        mask = np.zeros(n, bool)
        mask[positions] = True
        replacements = pa.array([changes[int(p)] for p in positions], type=pa.string())
        cols[col] = pc.replace_with_mask(cols[col].combine_chunks(), pa.array(mask), replacements)
    table = pa.table(cols)

    # Re-sent rows: exact duplicates and conflicting versions, inserted later in the file than their source.
    dup = picks.get("duplicate", np.empty(0, np.int64))
    con = picks.get("conflict", np.empty(0, np.int64))
    sources = np.concatenate([dup, con]).astype(np.int64)
    is_conflict = np.concatenate([np.zeros(len(dup), bool), np.ones(len(con), bool)])
    if len(sources):
        extra = table.take(pa.array(sources))
        extra_cols = {c: extra[c].to_pylist() for c in extra.column_names}
        for j, (src, conflict) in enumerate(zip(sources, is_conflict)):
            if not conflict:
                faults.append({"feed": feed, "src": -1, "extra": j, "key": extra_cols[_KEY[feed]][j], "column": "",
                               "kind": "duplicate", "original": "", "value": ""})
                continue
            if rng.random() < 0.6:
                col = amount_col
                old = extra_cols[col][j]
                v = _money(old)
                bump = float(rng.integers(1, 51))
                new = f"{v + bump if v > 0 else v - bump:.2f}"
            else:
                col = _DATE[feed]
                old = extra_cols[col][j]
                new = str((pd.Timestamp(old) + pd.Timedelta(days=int(rng.integers(1, 4)))).date())
            extra_cols[col][j] = new
            faults.append({"feed": feed, "src": -1, "extra": j, "key": extra_cols[_KEY[feed]][j], "column": col,
                           "kind": "conflict", "original": old, "value": new})
        extra = pa.table({c: pa.array(v, type=pa.string()) for c, v in extra_cols.items()})
        insert_at = sources + 1 + (rng.random(len(sources)) * (n - sources)).astype(np.int64)  # before row insert_at
        slot = np.concatenate([np.arange(n), insert_at])
        sub = np.concatenate([np.ones(n, np.int64), np.zeros(len(sources), np.int64)])
        tie = np.arange(n + len(sources))
        order = np.lexsort((tie, sub, slot))
        table = pa.concat_tables([table, extra]).take(pa.array(order))
        position = np.empty(len(order), np.int64)
        position[order] = np.arange(len(order))
    else:
        position = np.arange(n)
    for f in faults:
        f["row"] = int(position[f["src"]] if f["src"] >= 0 else position[n + f["extra"]])
        f["line"] = f["row"] + 2
    return table, faults


def make_dirty(portfolio, rng: np.random.Generator):
    """A copy of ``portfolio`` whose feeds are text with faults injected; the faults are in
    ``ground_truth["dirty_faults"]``."""
    n_ten = len(portfolio.tenancies)
    frames = {}
    rows: list[dict] = []
    for feed, frame in portfolio.feeds().items():
        table, faults = _inject(feed, _text_table(frame), rng, n_ten)
        frames[feed] = pd.DataFrame({c: pd.Series(pd.arrays.ArrowStringArray(table[c])) for c in table.column_names})
        rows.extend(faults)
    faults = pd.DataFrame(rows, columns=list(FAULT_COLUMNS) + ["src", "extra"])[list(FAULT_COLUMNS)]
    faults = faults.sort_values(["feed", "row"], kind="stable").reset_index(drop=True)
    faults = faults.astype({"row": np.int64, "line": np.int64})
    truth = dict(portfolio.ground_truth)
    truth["dirty_faults"] = faults
    return dataclasses.replace(portfolio, tenancies=frames["tenancies"], transactions=frames["transactions"],
                               events=frames["events"], ground_truth=truth, dirty=True)
