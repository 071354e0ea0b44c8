"""Ingest one delivery (a folder of feed files) into the ledger, losing nothing.

Every row read ends in exactly one place: accepted into the ledger, counted as a duplicate (a re-sent row with the
same id and content), or quarantined with a reason (one quarantine row per problem, with file, line, column and
value). `read == accepted + duplicate + quarantined` for every feed, every time.

A delivery that cannot be read at all (unknown file, missing required column, wrong delimiter, empty file) is
refused whole with `DeliveryRefused`, and nothing is written. Everything else happens in one database
transaction, so a crash part-way leaves the ledger as it was.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from features.crash import crash_point
from features.feeds import contract, normalise
from features.ledger import ROW_IDENTITY, Ledger
from features.settings import FeatureSettings

SUFFIXES = (".csv", ".parquet")

QUARANTINE_COLUMNS = ["delivery_seq", "feed", "file", "line", "column", "value", "reason"]


class DeliveryRefused(ValueError):
    """The delivery cannot be read at all; nothing was written. The message says what to fix."""


@dataclass
class FeedSummary:
    feed: str
    file: str
    read: int = 0
    accepted: int = 0
    duplicate: int = 0
    quarantined: int = 0
    quarantine_file: str | None = None
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def reconciles(self) -> bool:
        return self.read == self.accepted + self.duplicate + self.quarantined


@dataclass
class IngestSummary:
    delivery: str
    delivery_seq: int
    feeds: dict[str, FeedSummary]
    #: The same files were the ledger's last delivery (an ingest run again, e.g. after a crash): nothing new
    #: was recorded; this is that delivery's summary.
    already_ingested: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "delivery": self.delivery,
            "delivery_seq": self.delivery_seq,
            "feeds": {name: asdict(summary) for name, summary in self.feeds.items()},
            "already_ingested": self.already_ingested,
        }

    @classmethod
    def recorded(cls, record: dict) -> IngestSummary:
        """The summary a delivery was recorded with (the ledger's deliveries row)."""
        stored = json.loads(record["summary_json"])
        return cls(stored["delivery"], int(record["delivery_seq"]),
                   {name: FeedSummary(**feed) for name, feed in stored["feeds"].items()}, already_ingested=True)


# -- reading ---------------------------------------------------------------------------------------------------


def discover_feeds(delivery_dir: Path) -> dict[str, Path]:
    """Map feed name → file, refusing anything that is not a known feed."""
    if not delivery_dir.is_dir():
        raise DeliveryRefused(f"{delivery_dir} is not a folder: a delivery is a folder of feed files.")
    files = sorted(p for p in delivery_dir.iterdir() if not p.name.startswith("."))
    if not files:
        raise DeliveryRefused(f"{delivery_dir} is empty: expected at least transactions.csv (see docs/feeds.md).")
    found: dict[str, Path] = {}
    for path in files:
        name = path.name.lower()
        suffix = next((s for s in SUFFIXES if name.endswith(s)), None)
        feed = name[: -len(suffix)] if suffix else None
        if feed not in contract.FEEDS:
            raise DeliveryRefused(
                f"unknown feed file {path.name}: a delivery may only hold "
                f"{', '.join(f + '.csv' for f in contract.FEEDS)} (or .parquet). Move other files elsewhere."
            )
        if feed in found:
            raise DeliveryRefused(f"two files for the {feed} feed ({found[feed].name}, {path.name}): keep one.")
        found[feed] = path
    return found


def delivery_fingerprint(files: dict[str, Path], clock: Clock) -> str:
    """What identifies a delivery's content: every file's name and bytes, and the day it is judged against (a
    row quarantined as future-dated may be accepted on a later day)."""
    digest = hashlib.sha256(f"arrears-delivery-1|{clock.today:%Y-%m-%d}".encode())
    for feed in sorted(files):
        digest.update(f"|{feed}|{files[feed].name}|".encode())
        with files[feed].open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def read_feed(path: Path, spec: contract.FeedSpec) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    """All values as text (so quarantine can show exactly what arrived), the source line of each row, and the
    ignored extra columns."""
    if path.stat().st_size == 0:
        raise DeliveryRefused(f"{path.name} is an empty file: re-export it with a header row.")
    if path.suffix.lower() == ".parquet":
        frame = pd.read_parquet(path)
        frame = frame.astype(object).where(frame.notna(), None)
        frame = frame.apply(lambda col: col.map(lambda v: None if v is None else str(v)))
        lines = pd.Series(range(1, len(frame) + 1), index=frame.index)
    else:
        try:
            frame = pd.read_csv(path, dtype="string[pyarrow]", keep_default_na=False, encoding="utf-8-sig",
                                skipinitialspace=False)
        except pd.errors.EmptyDataError as exc:
            raise DeliveryRefused(f"{path.name} has no header row: re-export it with column names.") from exc
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DeliveryRefused(
                f"{path.name} cannot be read as UTF-8 CSV ({exc}); re-export it as UTF-8 CSV.") from exc
        lines = pd.Series(range(2, len(frame) + 2), index=frame.index)  # line 1 is the header
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in spec.required if c not in frame.columns]
    if missing:
        if len(frame.columns) == 1 and any(sep in frame.columns[0] for sep in (";", "\t", "|")):
            sep = next(s for s in (";", "\t", "|") if s in frame.columns[0])
            raise DeliveryRefused(
                f"{path.name} looks {sep!r}-delimited: export it comma-separated (the contract is CSV with commas)."
            )
        raise DeliveryRefused(
            f"{path.name} lacks required column(s) {', '.join(missing)}; "
            f"the {spec.name} feed needs {', '.join(spec.required)} (see docs/feeds.md)."
        )
    ignored = [c for c in frame.columns if c not in spec.columns]
    frame = frame[[c for c in spec.columns if c in frame.columns]].copy()
    for column in spec.columns:
        if column not in frame:
            frame[column] = None
    return frame, lines, ignored


# -- typing and domain rules -----------------------------------------------------------------------------------

Normaliser = Callable[[pd.Series], normalise.Normalised]


def reader(column: contract.Column) -> Normaliser:
    """How a contract column's text is read, from its kind (the contract is the one source of this)."""
    kind, required, what = column.kind, column.value_required, column.what
    if kind == "date":
        return lambda raw: normalise.dates(raw, required, what)
    if kind == "money":
        return lambda raw: normalise.money_pence(raw, required, what)
    if kind == "vocabulary":
        return lambda raw: normalise.vocabulary(raw, column.vocabulary, required, what)
    if kind == "flag":
        return lambda raw: normalise.boolean(raw, what)
    if kind == "outcome":
        return normalise.binary_outcome
    return lambda raw: normalise.text(raw, required, what)


def _sign_ok(frame: pd.DataFrame) -> pd.Series:
    expected = frame["type"].map(contract.TRANSACTION_SIGN).fillna(0)
    amount = frame["amount_pence"].astype("float64")
    return ((expected == 0) | (amount * expected > 0)) & (amount != 0)


#: Domain rules on typed rows. Each check's `error` is the reason a person reads in quarantine.
DOMAIN_SCHEMAS: dict[str, pa.DataFrameSchema] = {
    "tenancies": pa.DataFrameSchema(
        {
            "rent_amount_pence": pa.Column(
                "Int64", pa.Check.gt(0, error="rent_amount must be more than zero"), nullable=True),
        },
        checks=[
            pa.Check(
                lambda f: f["end_date"].isna() | (f["end_date"] >= f["start_date"]),
                name="end_date", error="end_date is before start_date",
            ),
        ],
    ),
    "transactions": pa.DataFrameSchema(
        checks=[
            pa.Check(
                _sign_ok, name="amount",
                error="amount has the wrong sign for its type: charges, fees and refunds are positive "
                "(they raise the debt), payments, benefit and write-offs negative; zero amounts are not accepted",
            ),
        ],
    ),
    "events": pa.DataFrameSchema(),
    "outcomes": pa.DataFrameSchema(),
}


def _problem_rows(
    problems: list[dict[str, object]], feed: str, file: str, index: pd.Index, lines: pd.Series,
    raw: pd.DataFrame, column: str | None, reason: pd.Series | str,
) -> None:
    if len(index) == 0:
        return
    reasons = reason if isinstance(reason, pd.Series) else pd.Series(reason, index=index)
    for i in index:
        problems.append({
            "feed": feed, "file": file, "line": int(lines[i]), "column": column or "",
            "value": "" if column is None or column not in raw else (raw.at[i, column] or ""),
            "reason": str(reasons[i]),
        })


@dataclass
class _Prepared:
    feed: str
    path: Path
    raw: pd.DataFrame
    lines: pd.Series
    typed: pd.DataFrame
    problems: list[dict[str, object]]
    summary: FeedSummary


#: The date column of each feed of things that happened: none of them can have happened after today.
HAPPENED_ON: dict[str, str] = {"transactions": "posted_date", "events": "event_date"}


@dataclass(frozen=True)
class Clock:
    """What "today" is for a delivery, and how far past it a date may be (a posting system a day ahead of ours)."""

    today: date
    tolerance_days: int = 1

    @property
    def latest(self) -> pd.Timestamp:
        return pd.Timestamp(self.today) + pd.Timedelta(days=self.tolerance_days)


def clock_for(settings: FeatureSettings) -> Clock:
    """Today as the settings say (`ARREARS_TODAY`, default the system date) and the tolerance past it."""
    return Clock(settings.today or date.today(), settings.future_tolerance_days)


def _future_dated(feed: str, typed: pd.DataFrame, clock: Clock) -> pd.Series:
    """Reasons for rows dated after today (beyond the tolerance): one such row would move "today" for everyone."""
    column = HAPPENED_ON.get(feed)
    if column is None:
        return pd.Series(None, index=typed.index, dtype=object)
    future = typed[column] > clock.latest
    reasons = pd.Series(None, index=typed.index, dtype=object)
    reasons[future] = (f"{column} " + typed.loc[future, column].dt.strftime("%Y-%m-%d")
                       + f" is after today ({clock.today:%Y-%m-%d}) by more than {clock.tolerance_days} day(s): "
                       "nothing can have been posted in the future; check the export's dates")
    return reasons


def _prepare(feed: str, path: Path, clock: Clock) -> _Prepared:
    """Read, type and check one feed's rows on their own (no ledger needed)."""
    spec = contract.FEEDS[feed]
    raw, lines, ignored = read_feed(path, spec)
    summary = FeedSummary(feed=feed, file=path.name, read=len(raw), ignored_columns=ignored)
    problems: list[dict[str, object]] = []
    typed = pd.DataFrame(index=raw.index)
    for column in spec.schema:
        values, reasons = reader(column)(raw[column.name])
        typed[column.ledger_name] = values
        bad = reasons.notna()
        _problem_rows(problems, feed, path.name, raw.index[bad], lines, raw, column.name, reasons[bad])
    future = _future_dated(feed, typed, clock)
    _problem_rows(problems, feed, path.name, raw.index[future.notna()], lines, raw, HAPPENED_ON.get(feed),
                  future[future.notna()])
    bad_rows = {p_line for p_line in (p["line"] for p in problems)}
    clean = typed[~lines.isin(bad_rows)]
    try:
        DOMAIN_SCHEMAS[feed].validate(clean, lazy=True)
    except pa.errors.SchemaErrors as exc:
        # A frame-level check is reported once per column; keep one problem per row and check, on the column
        # the check is named after.
        by_error = {check.error: check.name for check in DOMAIN_SCHEMAS[feed].checks}
        cases = exc.failure_cases.dropna(subset=["index"]).drop_duplicates(subset=["index", "check"])
        for _, case in cases.iterrows():
            reason = str(case["check"])
            column = by_error.get(reason) or case["column"]
            column = {c.ledger_name: c.name for c in spec.schema}.get(column, column)
            _problem_rows(problems, feed, path.name, pd.Index([case["index"]]), lines, raw,
                          column if column in spec.columns else None, reason)
    return _Prepared(feed, path, raw, lines, typed, problems, summary)


# -- the ingest ------------------------------------------------------------------------------------------------


def ingest_delivery(ledger: Ledger, delivery_dir: Path, quarantine_dir: Path,
                    clock: Clock | None = None) -> IngestSummary:
    """Load one delivery into the ledger. Raises DeliveryRefused (writing nothing) if it cannot be read.

    Postings and events dated after `clock.today` (default: the system date) by more than its tolerance are
    quarantined: the ledger's latest date is "today" for every worklist, and one such row must not move it.

    Safe to run again: if the same files (judged against the same day) were the ledger's last delivery, e.g. an
    ingest killed after its commit and run again, nothing new is recorded and that delivery's summary is returned
    (`already_ingested`), its quarantine files written if they are missing. A delivery re-sent after others is
    ingested again: its rows are duplicates, and rows quarantined for an unknown tenancy may now be accepted.
    """
    delivery_dir = Path(delivery_dir)
    clock = clock or Clock(date.today())
    files = discover_feeds(delivery_dir)
    fingerprint = delivery_fingerprint(files, clock)
    last = ledger.latest_delivery()
    if last is not None and last.get("fingerprint") == fingerprint:
        summary = IngestSummary.recorded(last)
        _write_quarantine_files(ledger, summary, quarantine_dir, delivery_dir)
        return summary
    prepared = {feed: _prepare(feed, files[feed], clock) for feed in contract.LOAD_ORDER if feed in files}

    with ledger.transaction():
        seq = ledger.next_delivery_seq()
        accepted_tenancies: set[str] = set()
        for feed, prep in prepared.items():
            rows, duplicates = _resolve(ledger, prep, seq, accepted_tenancies)
            if feed == "tenancies":
                accepted_tenancies |= set(rows["tenancy_id"])
            ledger.insert(feed, rows)
            prep.summary.accepted = len(rows)
            prep.summary.duplicate = duplicates
            prep.summary.quarantined = len({p["line"] for p in prep.problems})
            if not prep.summary.reconciles:  # an internal fault, never a data problem: roll everything back
                raise AssertionError(f"{feed}: counts do not reconcile: {prep.summary}")
            if prep.problems:
                frame = pd.DataFrame(prep.problems).assign(delivery_seq=seq)[QUARANTINE_COLUMNS]
                ledger.insert("quarantine", frame.rename(columns={"column": "column_name"}))
                prep.summary.quarantine_file = str(_quarantine_path(quarantine_dir, seq, delivery_dir, feed))
        summary = IngestSummary(str(delivery_dir), seq, {f: p.summary for f, p in prepared.items()})
        crash_point("ingest:writing")  # rows written, not committed
        ledger.insert("deliveries", pd.DataFrame([{
            "delivery_seq": seq, "delivery_id": delivery_dir.name, "source": str(delivery_dir.resolve()),
            "ingested_at": datetime.now(UTC).replace(tzinfo=None),
            "summary_json": json.dumps(summary.to_dict()), "fingerprint": fingerprint,
        }]))
    crash_point("ingest:committed")
    _write_quarantine_files(ledger, summary, quarantine_dir, delivery_dir)
    return summary


def _write_quarantine_files(ledger: Ledger, summary: IngestSummary, quarantine_dir: Path, delivery_dir: Path) -> None:
    """The ledger's quarantine table is the record; these files are the copy a person opens, written from it (each
    whole or not at all) wherever one is missing."""
    for feed, feed_summary in summary.feeds.items():
        path = _quarantine_path(quarantine_dir, summary.delivery_seq, delivery_dir, feed)
        if not feed_summary.quarantined or path.exists():
            continue
        frame = ledger.quarantined(summary.delivery_seq, feed).rename(columns={"column_name": "column"})
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        frame[QUARANTINE_COLUMNS].to_csv(partial, index=False, quoting=csv.QUOTE_NONNUMERIC)
        os.replace(partial, path)


def _quarantine_path(quarantine_dir: Path, seq: int, delivery_dir: Path, feed: str) -> Path:
    return Path(quarantine_dir) / f"{seq:05d}_{delivery_dir.name}" / f"{feed}.csv"


def _resolve(
    ledger: Ledger, prep: _Prepared, seq: int, accepted_tenancies: set[str]
) -> tuple[pd.DataFrame, int]:
    """Decide each clean row: accepted (returned), duplicate (counted) or quarantined (added to prep.problems)."""
    feed, typed, lines = prep.feed, prep.typed, prep.lines
    bad_lines = {p["line"] for p in prep.problems}
    rows = typed[~lines.isin(bad_lines)].copy()
    identity = list(ROW_IDENTITY[feed])
    spec = contract.FEEDS[feed]
    rows["content_hash"] = normalise.content_hash(rows[list(spec.hashed_columns)], spec.added_later)

    def quarantine(mask: pd.Series, reason: str | pd.Series, column: str | None = None) -> None:
        nonlocal rows
        _problem_rows(prep.problems, feed, prep.path.name, rows.index[mask], lines, prep.raw, column,
                      reason if isinstance(reason, str) else reason[mask])
        rows = rows[~mask]

    # References to tenancies must resolve to the ledger or to this delivery.
    if feed != "tenancies" and not rows.empty:
        known = ledger.known_tenancy_ids(rows["tenancy_id"]) | accepted_tenancies
        quarantine(~rows["tenancy_id"].isin(known),
                   "unknown tenancy_id: no such tenancy in the ledger or this delivery; send its tenancies row first",
                   "tenancy_id")

    # Within the delivery: identical repeats are duplicates; the same id with different content is untrustworthy.
    variants = rows.groupby(identity, dropna=False)["content_hash"].transform("nunique")
    quarantine(variants > 1, "the same id appears more than once in this delivery with different content; "
               "send one corrected row", identity[0])
    repeats = rows.duplicated(subset=identity)
    duplicates = int(repeats.sum())
    rows = rows[~repeats]

    # Against the ledger.
    stored = ledger.known_hashes(feed, rows)
    if not stored.empty:
        merged = rows.reset_index().merge(stored, on=identity, how="left", suffixes=("", "_stored"))
        same = merged.groupby("index")["content_hash_stored"].apply(lambda s: s.notna().any()).reindex(rows.index)
        matches = merged[merged["content_hash"] == merged["content_hash_stored"]]["index"]
        is_duplicate = rows.index.isin(matches)
        duplicates += int(is_duplicate.sum())
        if feed == "tenancies":
            rows = rows[~is_duplicate]  # a changed tenancy is a new version of the register
        else:
            conflict = same.fillna(False).to_numpy() & ~is_duplicate
            quarantine(pd.Series(conflict, index=rows.index),
                       "already in the ledger with different content: ledger rows are never overwritten; "
                       "correct it at source with a new row (e.g. an adjustment)", identity[0])
            rows = rows[~rows.index.isin(matches)]
    rows["delivery_seq"] = seq
    return rows, duplicates


def quarantine_reasons(ledger: Ledger) -> pd.DataFrame:
    return ledger.query("SELECT feed, reason, COUNT(*) AS n FROM quarantine GROUP BY feed, reason ORDER BY n DESC")
