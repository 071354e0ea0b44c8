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
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from simulator.model import Portfolio
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
    """A feed as the text columns it would be written as (see `simulator.write.to_arrow`)."""
    table = to_arrow(frame, "csv")
    return pa.table({column: pc.cast(table[column], pa.string()) for column in table.column_names})


def _money(text: str) -> float:
    """An amount as written in a clean feed ("-12.50") as a number."""
    return float(text)


def _currency(text: str) -> str:
    """Money with a pound sign and thousands separators: "-1234.50" → "-£1,234.50"."""
    amount = _money(text)
    return f"{'-' if amount < 0 else ''}£{abs(amount):,.2f}"


def _parentheses(text: str) -> str:
    """A negative amount in accounting style: "-12.50" → "(12.50)"."""
    return f"({abs(_money(text)):,.2f})"


def _uk_date(text: str) -> str:
    """An ISO date day first: "2025-03-12" → "12/03/2025"."""
    year, month, day = text.split("-")
    return f"{day}/{month}/{year}"


def _case_variant(text: str, pick: int) -> str:
    """A vocabulary value in another case or padded with spaces ("Weekly", "FOUR_WEEKLY", " payment ")."""
    spaced = text.replace("_", " ")
    variants = (spaced.title(), text.upper(), f" {text} ", spaced.capitalize() + " ")
    return variants[pick % len(variants)]


def _bad_date(text: str, pick: int) -> str:
    """A date that cannot be parsed: an impossible day or month, a two-digit year, or "TBC"."""
    year, month, day = text.split("-")
    variants = (f"31/02/{year}", f"{year}-13-{day}", f"{day}.{month}.{year[2:]}", "TBC")
    return variants[pick % len(variants)]


def _inject(feed: str, table: pa.Table, rng: np.random.Generator, n_tenancies: int) -> tuple[pa.Table, list[dict]]:
    """``table`` (a feed as text) with the feed's faults injected, and one record per injected fault."""
    n = table.num_rows
    if n == 0:
        return table, []
    columns = {column: table[column] for column in table.column_names}
    picks = _pick_rows(feed, columns, rng, n)
    edits, faults = _edit_cells(feed, columns, picks, rng, n_tenancies)
    table, position, resent_faults = _resend_rows(feed, _apply_edits(columns, edits, n), picks, rng)
    for fault in faults + resent_faults:
        source = fault["source_row"]
        fault["row"] = int(position[source] if source >= 0 else position[n + fault["resent_row"]])
        fault["line"] = fault["row"] + 2
    return table, faults + resent_faults


def _cell(columns: dict[str, pa.ChunkedArray], column: str, row: int) -> str | None:
    """The text of one cell."""
    return columns[column][int(row)].as_py()


def _pick_rows(
    feed: str, columns: dict[str, pa.ChunkedArray], rng: np.random.Generator, n: int
) -> dict[str, np.ndarray]:
    """The rows each fault kind of the feed affects (rate × rows, at least one), distinct across kinds and drawn
    only from the rows the kind can apply to (money faults need an amount, parentheses a negative one)."""
    amount_column = _AMOUNT.get(feed)
    amounts = columns[amount_column] if amount_column in columns else None
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
    for kind, rate in FAULT_RATES[feed].items():
        pool = np.flatnonzero(eligible.get(kind, np.ones(n, bool)) & ~used)
        count = min(len(pool), max(1, int(round(rate * n))))
        chosen = np.sort(rng.choice(pool, size=count, replace=False)) if count else np.empty(0, np.int64)
        used[chosen] = True
        picks[kind] = chosen
    return picks


def _cell_rewrites(
    feed: str, rng: np.random.Generator, n_tenancies: int
) -> tuple[tuple[str, str, Callable[[str], str | None]], ...]:
    """Per fault kind that edits a cell in place: the column it touches and how it rewrites the cell's text, in
    the order the kinds are injected (the order of the random draws)."""
    amount, day = _AMOUNT[feed], _DATE[feed]
    id_width = max(6, len(str(n_tenancies)))
    bad_types = _BAD_TYPES.get(feed, ())
    return (
        ("amount_currency", amount, _currency),
        ("amount_parentheses", amount, _parentheses),
        ("missing_amount", amount, lambda text: None),
        ("uk_date", day, _uk_date),
        ("bad_date", day, lambda text: _bad_date(text, int(rng.integers(0, 4)))),
        ("case_variant", _VOCAB[feed], lambda text: _case_variant(text, int(rng.integers(0, 4)))),
        ("unknown_tenancy", "tenancy_id",
         lambda text: f"T{n_tenancies + 1000 + int(rng.integers(0, 10**6)):0{id_width}d}"),
        ("unknown_type", "type", lambda text: bad_types[int(rng.integers(0, len(bad_types)))]),
    )


def _edit_cells(
    feed: str, columns: dict[str, pa.ChunkedArray], picks: dict[str, np.ndarray], rng: np.random.Generator,
    n_tenancies: int,
) -> tuple[dict[str, dict[int, str | None]], list[dict]]:
    """The cells rewritten by in-place faults (column → row → new text) and one fault record per cell."""
    edits: dict[str, dict[int, str | None]] = {}
    faults: list[dict] = []
    for kind, column, rewrite in _cell_rewrites(feed, rng, n_tenancies):
        for row in picks.get(kind, ()):
            original = _cell(columns, column, row)
            new = rewrite(original)
            edits.setdefault(column, {})[int(row)] = new
            faults.append({"feed": feed, "source_row": int(row), "resent_row": -1,
                           "key": _cell(columns, _KEY[feed], row), "column": column, "kind": kind,
                           "original": original, "value": new})
    return edits, faults


def _apply_edits(columns: dict[str, pa.ChunkedArray], edits: dict[str, dict[int, str | None]], n: int) -> pa.Table:
    """The table of ``columns`` with the edited cells replaced."""
    columns = dict(columns)
    for column, changes in edits.items():
        positions = np.array(sorted(changes), dtype=np.int64)
        mask = np.zeros(n, bool)
        mask[positions] = True
        replacements = pa.array([changes[int(position)] for position in positions], type=pa.string())
        columns[column] = pc.replace_with_mask(columns[column].combine_chunks(), pa.array(mask), replacements)
    return pa.table(columns)


def _resend_rows(
    feed: str, table: pa.Table, picks: dict[str, np.ndarray], rng: np.random.Generator
) -> tuple[pa.Table, np.ndarray, list[dict]]:
    """Re-sent rows: exact duplicates and conflicting versions (another amount or date), inserted later in the file
    than their source. Returns the new table, where each row of ``table`` then of the re-sent rows ended up, and
    one fault record per re-sent row."""
    n = table.num_rows
    duplicates = picks.get("duplicate", np.empty(0, np.int64))
    sources = np.concatenate([duplicates, picks.get("conflict", np.empty(0, np.int64))]).astype(np.int64)
    if not len(sources):
        return table, np.arange(n), []
    resent = table.take(pa.array(sources))
    values = {column: resent[column].to_pylist() for column in resent.column_names}
    faults: list[dict] = []
    for j in range(len(sources)):
        column = original = new = ""
        if j >= len(duplicates):
            column, original, new = _conflicting_cell(feed, values, j, rng)
            values[column][j] = new
        faults.append({"feed": feed, "source_row": -1, "resent_row": j, "key": values[_KEY[feed]][j],
                       "column": column, "kind": "duplicate" if j < len(duplicates) else "conflict",
                       "original": original, "value": new})
    resent = pa.table({column: pa.array(texts, type=pa.string()) for column, texts in values.items()})
    table, position = _insert_later(table, resent, sources, rng)
    return table, position, faults


def _conflicting_cell(feed: str, values: dict[str, list], j: int, rng: np.random.Generator) -> tuple[str, str, str]:
    """A changed amount (60%) or date for re-sent row ``j``: the column, its text before and after."""
    if rng.random() < 0.6:
        column = _AMOUNT[feed]
        old = values[column][j]
        amount = _money(old)
        bump = float(rng.integers(1, 51))
        return column, old, f"{amount + bump if amount > 0 else amount - bump:.2f}"
    column = _DATE[feed]
    old = values[column][j]
    return column, old, str((pd.Timestamp(old) + pd.Timedelta(days=int(rng.integers(1, 4)))).date())


def _insert_later(
    table: pa.Table, resent: pa.Table, sources: np.ndarray, rng: np.random.Generator
) -> tuple[pa.Table, np.ndarray]:
    """``table`` with each re-sent row placed somewhere after its source; also the new position of each row of
    ``table`` followed by each re-sent row."""
    n = table.num_rows
    insert_at = sources + 1 + (rng.random(len(sources)) * (n - sources)).astype(np.int64)  # before row insert_at
    slot = np.concatenate([np.arange(n), insert_at])
    resent_first = np.concatenate([np.ones(n, np.int64), np.zeros(len(sources), np.int64)])
    tie = np.arange(n + len(sources))
    order = np.lexsort((tie, resent_first, slot))
    position = np.empty(len(order), np.int64)
    position[order] = np.arange(len(order))
    return pa.concat_tables([table, resent]).take(pa.array(order)), position


def make_dirty(portfolio: Portfolio, rng: np.random.Generator) -> Portfolio:
    """A copy of ``portfolio`` whose feeds are text with faults injected; the faults are in
    ``ground_truth["dirty_faults"]``."""
    n_tenancies = len(portfolio.tenancies)
    frames = {}
    rows: list[dict] = []
    for feed, frame in portfolio.frames().items():  # (an empty events frame gets no faults)
        table, faults = _inject(feed, _text_table(frame), rng, n_tenancies)
        frames[feed] = pd.DataFrame({column: pd.Series(pd.arrays.ArrowStringArray(table[column]))
                                     for column in table.column_names})
        rows.extend(faults)
    faults = pd.DataFrame(rows, columns=list(FAULT_COLUMNS))
    faults = faults.sort_values(["feed", "row"], kind="stable").reset_index(drop=True)
    faults = faults.astype({"row": np.int64, "line": np.int64})
    truth = dict(portfolio.ground_truth)
    truth["dirty_faults"] = faults
    return dataclasses.replace(portfolio, tenancies=frames["tenancies"], transactions=frames["transactions"],
                               events=frames["events"], ground_truth=truth, dirty=True)
