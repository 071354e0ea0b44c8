"""Column normalisers: turn the text of an export into typed values, or say exactly why a value cannot be trusted.

Each normaliser takes a Series of raw strings and returns `(values, problems)`: `problems` holds a reason a
person can act on where a value could not be read, and is empty (None) elsewhere. Only unambiguous repairs are
made (a pound sign, thousands separators, accounting brackets, UK day-first dates, case and stray whitespace);
anything else is left for quarantine, never guessed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

Normalised = tuple[pd.Series, pd.Series]

_MISSING = {"", "nan", "none", "null", "na", "n/a"}


def _blank(raw: pd.Series) -> pd.Series:
    return raw.str.strip().str.lower().isin(_MISSING) | raw.isna()


def _no_problems(raw: pd.Series) -> pd.Series:
    return pd.Series(None, index=raw.index, dtype=object)


def text(raw: pd.Series, required: bool = False, what: str = "value") -> Normalised:
    values = raw.str.strip()
    blank = _blank(raw)
    values = values.where(~blank, None)
    problems = _no_problems(raw)
    if required:
        problems[blank] = f"missing {what}: every row needs one"
    return values, problems


def dates(raw: pd.Series, required: bool = False, what: str = "date") -> Normalised:
    """ISO `2025-03-12` or UK day-first `12/03/2025` (also `12-03-2025`, `12.03.2025`)."""
    stripped = raw.str.strip()
    blank = _blank(raw)
    iso = pd.to_datetime(stripped.where(stripped.str.match(r"^\d{4}-\d{2}-\d{2}$", na=False)),
                         format="%Y-%m-%d", errors="coerce")
    uk_text = stripped.str.replace(r"[-.]", "/", regex=True)
    uk = pd.to_datetime(uk_text.where(uk_text.str.match(r"^\d{1,2}/\d{1,2}/\d{4}$", na=False)),
                        format="%d/%m/%Y", errors="coerce")
    values = iso.fillna(uk)
    problems = _no_problems(raw)
    unreadable = values.isna() & ~blank
    problems[unreadable] = (
        f"unreadable {what} '" + stripped[unreadable] + "': use YYYY-MM-DD or DD/MM/YYYY (UK day first)"
    )
    if required:
        problems[blank] = f"missing {what}: every row needs one"
    return values, problems


def money_pence(raw: pd.Series, required: bool = False, what: str = "amount") -> Normalised:
    """`1234.5`, `£1,234.50`, `-£5`, `(12.00)` (accounting negative) → integer pence."""
    stripped = raw.str.strip()
    blank = _blank(raw)
    bracketed = stripped.str.match(r"^\(.*\)$", na=False)
    cleaned = stripped.str.replace(r"^\((.*)\)$", r"\1", regex=True).str.replace(r"[£,\s]", "", regex=True)
    well_formed = cleaned.str.match(r"^[+-]?\d+(\.\d{1,2})?$", na=False)
    number = pd.to_numeric(cleaned.where(well_formed), errors="coerce")
    number = number.where(~bracketed, -number.abs())
    values = (number * 100).round().astype("Int64")
    problems = _no_problems(raw)
    unreadable = ~well_formed & ~blank
    problems[unreadable] = (
        f"unreadable {what} '" + stripped[unreadable] + "': expected a number of pounds such as 12.50 or £1,234.50"
    )
    if required:
        problems[blank] = f"missing {what}: every row needs one"
    return values, problems


def vocabulary(raw: pd.Series, allowed: tuple[str, ...], required: bool = False, what: str = "value") -> Normalised:
    """Case, whitespace and `Four Weekly`/`four-weekly` spellings are folded; anything else is a problem."""
    blank = _blank(raw)
    folded = raw.str.strip().str.lower().str.replace(r"[\s-]+", "_", regex=True)
    known = folded.isin(allowed)
    values = folded.where(known, None)
    problems = _no_problems(raw)
    unknown = ~known & ~blank
    problems[unknown] = (
        f"unknown {what} '" + raw[unknown].str.strip() + f"': expected one of {', '.join(allowed)}"
    )
    if required:
        problems[blank] = f"missing {what}: every row needs one"
    return values, problems


def boolean(raw: pd.Series, what: str = "flag") -> Normalised:
    folded = raw.str.strip().str.lower()
    mapping = {"true": True, "t": True, "yes": True, "y": True, "1": True,
               "false": False, "f": False, "no": False, "n": False, "0": False}
    values = folded.map(mapping).astype("boolean")
    blank = _blank(raw)
    problems = _no_problems(raw)
    unreadable = values.isna() & ~blank
    problems[unreadable] = f"unreadable {what} '" + raw[unreadable].str.strip() + "': expected true or false"
    return values, problems


def binary_outcome(raw: pd.Series) -> Normalised:
    folded = raw.str.strip()
    values = folded.map({"0": 0, "1": 1, "0.0": 0, "1.0": 1}).astype("Int64")
    problems = _no_problems(raw)
    bad = values.isna()
    problems[bad] = "outcome '" + folded[bad].fillna("") + "' is not 0 or 1"
    return values, problems


def canonical_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every value as canonical text (ISO dates, integer pence, lower-case booleans, '' for missing), so that the
    same row hashes the same whether it came from CSV or Parquet."""
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_datetime64_any_dtype(series):
            out[column] = series.dt.strftime("%Y-%m-%d").fillna("")
        elif pd.api.types.is_bool_dtype(series) or str(series.dtype) == "boolean":
            out[column] = series.map({True: "true", False: "false"}).fillna("").astype(str)
        else:
            out[column] = series.astype(object).where(series.notna(), "").astype(str)
    return out


def content_hash(frame: pd.DataFrame, added_later: tuple[str, ...] = ()) -> pd.Series:
    """A stable fingerprint of each row's contract content (hex), used to tell a re-sent row from a changed one.

    Columns `added_later` to the contract count only where a row sets them: a row without them hashes exactly as
    it did before they existed, so a ledger keeps recognising re-sent rows across contract versions.
    """
    base = frame[[c for c in frame.columns if c not in added_later]]
    hashed = pd.util.hash_pandas_object(canonical_text(base), index=False, hash_key="arrears-ledger-1").to_numpy()
    added = [c for c in added_later if c in frame]
    if added:
        extra = frame[added]
        has_extra = extra.notna().any(axis=1).to_numpy()
        if has_extra.any():
            text = canonical_text(extra[has_extra]).assign(_base=hashed[has_extra].astype(str))
            hashed = hashed.copy()
            hashed[has_extra] = pd.util.hash_pandas_object(text, index=False, hash_key="arrears-ledger-2").to_numpy()
    return pd.Series(np.char.mod("%016x", hashed), index=frame.index)
