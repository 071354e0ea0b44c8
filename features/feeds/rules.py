"""How a feed's text becomes typed values, written as SQL so DuckDB runs it vectorised over a whole delivery.

Each contract column gets a value expression (its ledger type) and a reason expression: a sentence a person can
act on where the value cannot be trusted, NULL elsewhere. Only unambiguous repairs are made (a pound sign,
thousands separators, accounting brackets, UK day-first dates, case and stray whitespace); anything else is left
for quarantine, never guessed. The content hash is here too, written in SQL that DuckDB and PostgreSQL both run,
so a ledger on either can compute it for rows it already holds.

Expressions refer to columns by name: `r_<col>` (the raw text), `t__edge` (whether the row has a value to trim),
`s_<col>` (trimmed), `v_<col>` (the value).
"""

from __future__ import annotations

from features.feeds.contract import TRANSACTION_SIGN, Column, FeedSpec

# DuckDB (0.3 s to import) is imported only by `evaluate` (docs and tests): the ledger imports this module for the
# content hash's SQL, on Postgres as well.

#: What counts as an empty value, whatever the export wrote (case-insensitive, after trimming).
MISSING = ("", "nan", "none", "null", "na", "n/a")
#: Trimmed like Python's str.strip() for the characters exports actually produce. Trimming a set of characters costs
#: DuckDB ~5x a plain read, so values are trimmed only in rows where one starts or ends with one of them: one
#: regular expression over the row's values joined by a unit separator.
_WHITESPACE = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13) || chr(160)"
_SPACE = r"[\s\v\x{A0}]"
_EDGE_SPACE = rf"'(^|\x1f){_SPACE}|{_SPACE}(\x1f|$)'"
_NUMBER = r"[+-]?\d+(\.\d{1,2})?"
_TRUE, _FALSE = ("true", "t", "yes", "y", "1"), ("false", "f", "no", "n", "0")


def lit(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(lit(v) for v in values) + ")"


def edge_space(names: list[str]) -> str:
    """Whether any of the row's raw values starts or ends with whitespace (column `t__edge`)."""
    return f"regexp_matches(concat_ws(chr(31), {', '.join(f'r_{n}' for n in names)}), {_EDGE_SPACE})"


def trimmed(name: str) -> str:
    return f"CASE WHEN t__edge THEN trim(r_{name}, {_WHITESPACE}) ELSE r_{name} END"


def blank(name: str) -> str:
    """The raw value is absent or one of MISSING (the byte-length test keeps `lower` off most values)."""
    return f"(r_{name} IS NULL OR (strlen(s_{name}) <= 4 AND lower(s_{name}) IN {_in(MISSING)}))"


def value(column: Column) -> str:
    """The typed value of one column (NULL where it cannot be read)."""
    s = f"s_{column.name}"
    if column.kind == "date":
        uk = f"regexp_replace({s}, '[-.]', '/', 'g')"
        iso, day_first = r"'\d{4}-\d{2}-\d{2}'", r"'\d{1,2}/\d{1,2}/\d{4}'"
        return (f"CAST(CASE WHEN regexp_full_match({s}, {iso}) THEN try_strptime({s}, '%Y-%m-%d') "
                f"WHEN regexp_full_match({uk}, {day_first}) THEN try_strptime({uk}, '%d/%m/%Y') END AS DATE)")
    if column.kind == "money":
        inner = f"CASE WHEN {s} LIKE '(%)' THEN substr({s}, 2, length({s}) - 2) ELSE {s} END"
        cleaned = f"regexp_replace({inner}, '[£,\\s]', '', 'g')"
        pounds = (f"CASE WHEN regexp_full_match({s}, '{_NUMBER}') THEN TRY_CAST({s} AS DECIMAL(18, 2)) "
                  f"WHEN regexp_full_match({cleaned}, '{_NUMBER}') THEN "
                  f"CASE WHEN {s} LIKE '(%)' THEN -abs(TRY_CAST({cleaned} AS DECIMAL(18, 2))) "
                  f"ELSE TRY_CAST({cleaned} AS DECIMAL(18, 2)) END END")
        return f"CAST(({pounds}) * 100 AS BIGINT)"
    if column.kind == "vocabulary":
        allowed = _in(column.vocabulary)
        folded = f"regexp_replace(lower({s}), '[\\s-]+', '_', 'g')"
        return f"CASE WHEN {s} IN {allowed} THEN {s} WHEN {folded} IN {allowed} THEN {folded} END"
    if column.kind == "flag":
        return f"CASE WHEN lower({s}) IN {_in(_TRUE)} THEN true WHEN lower({s}) IN {_in(_FALSE)} THEN false END"
    if column.kind == "outcome":
        return f"CASE WHEN {s} IN ('0', '0.0') THEN 0 WHEN {s} IN ('1', '1.0') THEN 1 END"
    return f"CASE WHEN {blank(column.name)} THEN NULL ELSE {s} END"


_UNREADABLE = {
    "date": "': use YYYY-MM-DD or DD/MM/YYYY (UK day first)",
    "money": "': expected a number of pounds such as 12.50 or £1,234.50",
    "flag": "': expected true or false",
}


def reason(column: Column) -> str:
    """Why the column's value cannot be trusted, or NULL. Whether a value is blank is asked only where it could
    not be read (most values can), except of a required vocabulary that holds a blank word ('none')."""
    name, what = column.name, column.what
    s, v = f"s_{name}", f"v_{name}"
    if column.kind == "outcome":
        return f"CASE WHEN {v} IS NULL THEN 'outcome ''' || coalesce({s}, '') || ''' is not 0 or 1' END"
    missing = lit(f"missing {what}: every row needs one") if column.value_required else "NULL"
    if column.kind == "text":  # its value is NULL exactly where it is blank
        return f"CASE WHEN {v} IS NULL THEN {missing} END"
    if column.kind == "vocabulary":
        prefix, suffix = f"unknown {what} '", "': expected one of " + ", ".join(column.vocabulary)
    else:
        prefix, suffix = f"unreadable {what} '", _UNREADABLE[column.kind]
    unreadable = f"{lit(prefix)} || {s} || {lit(suffix)}"
    if column.value_required and set(column.vocabulary) & set(MISSING):
        return f"CASE WHEN {blank(name)} THEN {missing} WHEN {v} IS NULL THEN {unreadable} END"
    return f"CASE WHEN {v} IS NOT NULL THEN NULL WHEN {blank(name)} THEN {missing} ELSE {unreadable} END"


#: The date column of each feed of things that happened: none of them can have happened after today.
HAPPENED_ON: dict[str, str] = {"transactions": "posted_date", "events": "event_date", "suspense": "received_date",
                                "dwp_schedules": "payment_date"}


def future_reason(feed: str, latest: str, today: str, tolerance_days: int) -> str | None:
    """Rows dated after today (beyond the tolerance): one such row would move "today" for everyone."""
    column = HAPPENED_ON.get(feed)
    if column is None:
        return None
    after = (f" is after today ({today}) by more than {tolerance_days} day(s): nothing can have been posted in the "
             "future; check the export's dates")
    return (f"CASE WHEN v_{column} > DATE {lit(latest)} THEN "
            f"'{column} ' || strftime(v_{column}, '%Y-%m-%d') || {lit(after)} END")


_SIGN = ("amount has the wrong sign for its type: charges, fees and refunds are positive (they raise the debt), "
         "payments, benefit and write-offs negative; zero amounts are not accepted")
_RAISES = tuple(t for t, sign in TRANSACTION_SIGN.items() if sign > 0)
_LOWERS = tuple(t for t, sign in TRANSACTION_SIGN.items() if sign < 0)

#: Rules on a row's typed values, checked where every column could be read: (column, SQL saying it fails, reason).
DOMAIN_RULES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "tenancies": (
        ("rent_amount", "v_rent_amount <= 0", "rent_amount must be more than zero"),
        ("end_date", "v_end_date < v_start_date", "end_date is before start_date"),
    ),
    "transactions": (
        ("amount", f"v_amount = 0 OR (v_type IN {_in(_RAISES)} AND v_amount < 0) "
                   f"OR (v_type IN {_in(_LOWERS)} AND v_amount > 0)", _SIGN),
    ),
    "suspense": (
        ("amount", "v_amount <= 0", "amount must be more than zero: a receipt in suspense is money received (send a "
                                    "returned or reversed credit as an adjustment on the tenancy it was cleared to)"),
        ("cleared_date", "v_cleared_date < v_received_date", "cleared_date is before received_date"),
        ("cleared_tenancy_id", "(v_cleared_tenancy_id IS NULL) <> (v_cleared_date IS NULL)",
         "cleared_tenancy_id and cleared_date go together: both blank while the receipt is open, both set once it "
         "is cleared"),
    ),
    "dwp_schedules": (
        ("amount", "v_amount <= 0", "amount must be more than zero: a schedule line is money paid to the landlord"),
        ("period_end", "v_period_end < v_period_start", "period_end is before period_start"),
    ),
}


def content_hash(spec: FeedSpec, ref=lambda ledger_name: ledger_name) -> str:
    """A row's content fingerprint (16 hex digits: the first half of an MD5), in SQL both DuckDB and PostgreSQL run
    identically. (64 bits tell a changed row from a re-sent one with the same key; a full MD5 made a large append
    a fifth slower.)

    The canonical text of each contract column in `spec.hashed_columns` order (ISO dates, integer pence, lower-case
    booleans, '' for missing), joined by a unit separator. Columns added after contract version 1 count only where
    a row sets them, so a row delivered again the way it was before they existed is still a duplicate.
    """
    added = set(spec.added_later)
    base = [f"coalesce(CAST({ref(c)} AS VARCHAR), '')" for c in spec.hashed_columns if c not in added]
    text = f"concat_ws(chr(31), {', '.join(base)})"
    for column in spec.added_later:
        value = f"CAST({ref(column)} AS VARCHAR)"
        text += f" || CASE WHEN {ref(column)} IS NULL THEN '' ELSE chr(30) || '{column}=' || {value} END"
    return f"left(md5({text}), 16)"


def evaluate(column: Column, raw: list[str | None]) -> list[tuple[object, str | None]]:
    """(value, reason) of each raw text as ingestion reads it: the column's SQL run over a list (docs and tests)."""
    import duckdb

    name = column.name
    sql = (f"SELECT v_{name}, {reason(column)} FROM (SELECT *, {value(column)} AS v_{name} FROM "
           f"(SELECT *, {trimmed(name)} AS s_{name} FROM (SELECT *, {edge_space([name])} AS t__edge FROM "
           f"(SELECT unnest(?::VARCHAR[]) AS r_{name}))))")
    with duckdb.connect() as con:
        return [tuple(row) for row in con.execute(sql, [raw]).fetchall()]
