"""Cash application, pure: for each receipt in suspense, the tenancies it may belong to, each with a match
probability and the reasons in plain words.

Candidates come from blocking (cheap rules that keep the true tenancy and few others): the reference a character or
two from a tenancy id (a swap of two neighbours is one edit), the payer text like the payer text of a tenancy's
cleared receipts (a name given with an initial compared as initial and surname), the amount the usual payment (or a
few of them) of a tenancy whose payment around that day is missing from the ledger or that paid this very amount
before (for one half of a split payment, the two halves' sum; one that paid it to the penny even behind a hundred
others), a DWP schedule line naming a tenancy for that amount, and a DWP claimant's line whose earlier lines were
posted to a tenancy. Each (receipt, tenancy) pair is then compared (`FEATURES`: edit distance of the reference,
payer similarity, how common it is among the candidates and whether both texts give the whole name, amount ratio to
the usual payment and to the payments unpaid since the last, days from the expected payment day, whether the usual
payment is missing, the same against the stream of the tenancy's payments like the receipt's amount (a tenancy pays
rent, benefit and top-ups in several streams), schedule agreement, and how much better than the receipt's other
candidates it is) and given a probability by a calibrated classifier trained on the ledger's own history: receipts
the landlord's team cleared at source (`cleared_tenancy_id`) are labelled pairs, the true tenancy against the other
candidates blocking found.

Everything is as of the receipt's day: a tenancy's habits from its payments before it; payer texts from the other
receipts cleared so far (never the receipt's own). A payment that is itself a cleared receipt's allocation is not the
tenancy's own habit evidence for that receipt. Payer text is compared here and nowhere else: only similarity
scores leave this module (never into logs, metrics or model artefacts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA
from rapidfuzz.utils import default_process

#: The comparison features a pair is scored on, in order.
FEATURES: tuple[str, ...] = (
    "ref_distance", "has_reference", "ref_margin", "payer_similarity", "payer_known", "payer_margin",
    "has_habit", "amount_log_ratio", "amount_margin", "amount_equal", "amount_multiple", "days_from_expected",
    "expected_margin", "usual_missing", "missing_margin", "habit_payments", "schedule_agrees", "schedule_line",
    "split_log_ratio", "candidates", "seen_log_ratio", "seen_payments", "stream_payments", "stream_days",
    "stream_missing", "split_seen_log_ratio", "split_stream_days", "seen_margin", "stream_margin", "due_log_ratio",
    "payer_ties", "payer_full")
#: A reference this many edits or fewer from a tenancy id makes it a candidate (an edit: a character typed wrong,
#: dropped or added, or two neighbours swapped).
MAX_REF_DISTANCE = 2
#: Of those, the nearest (and those one edit further), at most this many per receipt, nearest first.
MAX_REF_CANDIDATES = 80
#: A payer text at least this similar (0-100, token order ignored) to one on a tenancy's cleared receipts.
PAYER_CUTOFF = 80
#: An amount within this share of a tenancy's past payment (or 2-4 times it) makes it a candidate, if its payment
#: around the receipt's day is missing or it paid this very amount before; at most this many such candidates per
#: receipt, nearest in amount and expected day first.
AMOUNT_TOLERANCE = 0.15
MAX_AMOUNT_CANDIDATES = 100
#: Besides those, tenancies that paid this very amount to the penny (or a half, third, quarter of it) before, at
#: most this many per receipt in the same order: an uncommon amount is a key of its own even when a hundred
#: tenancies paying about as much come first.
MAX_EXACT_CANDIDATES = 20
MULTIPLES = (1, 2, 3, 4)
#: Amounts this near (|log ratio|, about 1%) are the same amount; past payments this near the receipt's amount
#: (or a half, third, quarter of it) are one stream of the tenancy's payments (its own, a benefit, a top-up).
SAME_AMOUNT = 0.01
STREAM_TOLERANCE = 0.05
#: Payments this many days back tell a tenancy's habit (usual amount and gap).
HABIT_DAYS = 182
HABIT_PAYMENTS = 6
#: A claimant's last this many DWP schedule lines tie its line reference to the tenancy they were posted to.
CLAIM_LINES = 3


@dataclass(frozen=True)
class Books:
    """What matching reads. tenancy_ids: the tenancies receipts may go to; payments: tenancy_id, posted_date,
    amount_pence (money received, positive); suspense: receipt_id, received_date, amount_pence, reference, payer,
    source, cleared_tenancy_id, cleared_date; schedules: DWP schedule lines (settlement_number, line_reference,
    payment_date, amount_pence, tenancy_reference)."""

    tenancy_ids: np.ndarray
    payments: pd.DataFrame
    suspense: pd.DataFrame
    schedules: pd.DataFrame

    @property
    def cleared(self) -> pd.DataFrame:
        return self.suspense[self.suspense["cleared_tenancy_id"].notna()]

    @property
    def open(self) -> pd.DataFrame:
        return self.suspense[self.suspense["cleared_tenancy_id"].isna()]


def _ns(days: pd.Series) -> pd.Series:
    """Dates as datetime64[ns] whatever the reader gave (DuckDB: microseconds), so they join."""
    return pd.to_datetime(days).astype("datetime64[ns]")


# -- a tenancy's habits, as of any day ------------------------------------------------------------------------------
def own_payments(payments: pd.DataFrame, suspense: pd.DataFrame) -> pd.DataFrame:
    """The tenancies' payments that were not a cleared receipt's allocation (the same tenancy and amount, posted
    from the day it was received to 3 days after it was cleared), sorted, with each one's habit so far:
    `usual_amount` (median of the last payments) and `usual_gap` (median of the gaps between them, days)."""
    paid = payments[["tenancy_id", "posted_date", "amount_pence"]].copy()
    paid["posted_date"] = _ns(paid["posted_date"])
    cleared = suspense[suspense["cleared_tenancy_id"].notna()]
    if len(cleared):
        both = paid.reset_index().merge(cleared.rename(columns={"cleared_tenancy_id": "tenancy_id"})[
            ["tenancy_id", "amount_pence", "received_date", "cleared_date"]], on=["tenancy_id", "amount_pence"])
        until = pd.to_datetime(both["cleared_date"]).fillna(pd.to_datetime(both["received_date"]))
        allocated = both[(both["posted_date"] >= pd.to_datetime(both["received_date"]))
                         & (both["posted_date"] <= until + pd.Timedelta(days=3))]["index"]
        paid = paid.drop(index=allocated.unique())
    paid = paid.sort_values(["tenancy_id", "posted_date"], kind="stable").reset_index(drop=True)
    by = paid.groupby("tenancy_id", sort=False)
    paid["usual_amount"] = by["amount_pence"].transform(
        lambda a: a.rolling(HABIT_PAYMENTS, min_periods=1).median())
    gaps = by["posted_date"].diff().dt.days
    paid["usual_gap"] = gaps.groupby(paid["tenancy_id"]).transform(
        lambda g: g.rolling(HABIT_PAYMENTS, min_periods=1).median())
    return paid


def habits_at(pairs: pd.DataFrame, paid: pd.DataFrame) -> pd.DataFrame:
    """Each pair's tenancy's habit as of the day before the receipt: last_paid, usual_amount, usual_gap (NaN
    where it has paid nothing in the habit window)."""
    left = pairs.assign(_day=_ns(pairs["received_date"]) - pd.Timedelta(days=1)).reset_index()
    right = paid.rename(columns={"posted_date": "_day"})[["tenancy_id", "_day", "usual_amount", "usual_gap"]]
    right = right.assign(last_paid=right["_day"])
    found = pd.merge_asof(left.sort_values("_day", kind="stable"), right.sort_values("_day", kind="stable"),
                          on="_day", by="tenancy_id", direction="backward").set_index("index").sort_index()
    stale = (found["_day"] - found["last_paid"]).dt.days > HABIT_DAYS
    for column in ("last_paid", "usual_amount", "usual_gap"):
        found.loc[stale, column] = np.nan if column != "last_paid" else pd.NaT
    return found[["last_paid", "usual_amount", "usual_gap"]].set_index(pairs.index)


def _paid_near(pairs: pd.DataFrame, paid: pd.DataFrame, window: np.ndarray) -> np.ndarray:
    """How many of the tenancy's own payments lie within `window` days either side of each pair's receipt day."""
    codes = {t: i for i, t in enumerate(pd.unique(pd.concat([paid["tenancy_id"], pairs["tenancy_id"]])))}
    day = lambda s: pd.to_datetime(s).to_numpy(dtype="datetime64[D]").astype(np.int64)  # noqa: E731
    keys = np.sort(paid["tenancy_id"].map(codes).to_numpy(np.int64) * 1_000_000 + day(paid["posted_date"]))
    base = pairs["tenancy_id"].map(codes).to_numpy(np.int64) * 1_000_000 + day(pairs["received_date"])
    return np.searchsorted(keys, base + window, side="right") - np.searchsorted(keys, base - window, side="left")


def _windows(pairs: pd.DataFrame, paid: pd.DataFrame, before: int, after: int) -> tuple[np.ndarray, ...]:
    """Each pair's tenancy's own payments from `before` days before its receipt's day to `after` days after, one
    row each: (pair position, amount, days from the receipt's day), in date order within a pair."""
    codes = {t: i for i, t in enumerate(pd.unique(pd.concat([paid["tenancy_id"], pairs["tenancy_id"]])))}
    day = lambda s: pd.to_datetime(s).to_numpy(dtype="datetime64[D]").astype(np.int64)  # noqa: E731
    keys = paid["tenancy_id"].map(codes).to_numpy(np.int64) * 1_000_000 + day(paid["posted_date"])
    order = np.argsort(keys, kind="stable")
    keys, amounts = keys[order], paid["amount_pence"].to_numpy(float)[order]
    base = pairs["tenancy_id"].map(codes).to_numpy(np.int64) * 1_000_000 + day(pairs["received_date"])
    low = np.searchsorted(keys, base - before, side="left")
    count = np.searchsorted(keys, base + after, side="right") - low
    at = np.repeat(np.arange(len(pairs)), count)
    position = np.repeat(low - np.cumsum(count) + count, count) + np.arange(int(count.sum()))
    return at, amounts[position], keys[position] - base[at]


def amount_history(pairs: pd.DataFrame, paid: pd.DataFrame, amount: pd.Series | None = None) -> pd.DataFrame:
    """Each pair's receipt amount (or `amount`) against its tenancy's own payments in the habit window before the
    receipt's day: `seen_log_ratio` (|log ratio| to the nearest single payment), `seen_payments` (log1p of how many
    were this amount), and the stream of payments like it (within STREAM_TOLERANCE of it, or of a half, third,
    quarter of it): `stream_payments` (log1p count), `stream_days` (days from the day the stream's next payment was
    due: its last plus a whole number of its usual gaps) and `stream_missing` (it has one, and none of it was paid
    within half a gap, 3-14 days, either side of the receipt's day)."""
    value = (pairs["amount_pence"] if amount is None else amount).to_numpy(float)
    at, past, days = _windows(pairs, paid, HABIT_DAYS, 14)
    ratio = value[at] / past
    before = days < 0
    off = np.abs(np.log(ratio / np.clip(np.rint(ratio), 1, max(MULTIPLES))))
    rows = pd.DataFrame({"at": at, "days": days, "exact": np.where(before, np.abs(np.log(ratio)), np.inf)})
    rows = rows.assign(seen=before & (rows["exact"] <= SAME_AMOUNT), stream=off <= STREAM_TOLERANCE)
    out = pd.DataFrame(index=pd.RangeIndex(len(pairs)))
    out["seen_log_ratio"] = rows.groupby("at")["exact"].min().clip(upper=3)
    out["seen_payments"] = np.log1p(rows.groupby("at")["seen"].sum())
    stream = rows[rows["stream"] & before]
    gaps = stream["days"].diff().where(stream["at"].eq(stream["at"].shift()))
    gap = gaps.groupby(stream["at"]).median().clip(1, 35)
    since = -stream.groupby("at")["days"].max()
    out["stream_payments"] = np.log1p(stream.groupby("at").size())
    periods = (since / gap).round().clip(lower=1)
    out["stream_days"] = (since - periods * gap).abs().clip(upper=28)
    window = (gap / 2).clip(3, 14).reindex(out.index).fillna(7.0).to_numpy()[at]
    near = rows["stream"] & (np.abs(days) <= window)
    out["stream_missing"] = (since.reindex(out.index).notna() & ~near.groupby(rows["at"]).any()
                             .reindex(out.index, fill_value=False)).astype(int)
    fill = {"seen_log_ratio": 3.0, "seen_payments": 0.0, "stream_payments": 0.0, "stream_days": 28.0}
    return out.fillna(fill).set_axis(pairs.index)


# -- blocking -------------------------------------------------------------------------------------------------------
def _id_shape(tenancy_ids: np.ndarray) -> tuple[str, int]:
    """The tenancy ids' usual letters and number of digits (T000917: "T", 6)."""
    found = pd.Series(tenancy_ids).astype(str).str.extract(r"^([A-Za-z]*)(\d+)$").dropna()
    if found.empty:
        return "", 0
    return str(found[0].str.upper().mode().iloc[0]), int(found[1].str.len().mode().iloc[0])


def reference_tokens(reference: pd.Series, shape: tuple[str, int]) -> pd.DataFrame:
    """The id-like tokens of each reference (letters then digits), as written and written like the ids (a missing
    prefix added, dropped leading zeros put back). One row per (receipt position, token)."""
    prefix, width = shape
    rows = []
    for position, text in enumerate(reference.fillna("").astype(str).str.upper()):
        for token in re.findall(r"[A-Z]*\d[A-Z\d]*", text):
            rows.append((position, token))
            letters, digits = re.match(r"([A-Z]*)(.*)", token).groups()
            if digits.isdigit() and len(digits) <= width:
                rows.append((position, (letters or prefix) + digits.zfill(width)))
    return pd.DataFrame(rows, columns=["position", "token"]).drop_duplicates()


def _reference_hits(receipts: pd.DataFrame, tenancy_ids: np.ndarray) -> pd.DataFrame:
    tokens = reference_tokens(receipts["reference"], _id_shape(tenancy_ids))
    if tokens.empty or not len(tenancy_ids):
        return pd.DataFrame(columns=["receipt_id", "tenancy_id", "ref_distance"])
    ids = pd.Series(tenancy_ids).astype(str).str.upper().tolist()
    distance = process.cdist(tokens["token"].tolist(), ids, scorer=OSA.distance,
                             score_cutoff=MAX_REF_DISTANCE, dtype=np.int32, workers=1)
    row, column = np.nonzero(distance <= MAX_REF_DISTANCE)
    hits = pd.DataFrame({"receipt_id": receipts["receipt_id"].to_numpy()[tokens["position"].to_numpy()[row]],
                         "tenancy_id": np.asarray(tenancy_ids)[column], "ref_distance": distance[row, column]})
    hits = hits.groupby(["receipt_id", "tenancy_id"], as_index=False)["ref_distance"].min()
    nearest = hits.groupby("receipt_id")["ref_distance"].transform("min")
    hits = hits[hits["ref_distance"] <= nearest + 1].sort_values(["receipt_id", "ref_distance", "tenancy_id"])
    return hits.groupby("receipt_id").head(MAX_REF_CANDIDATES)


#: Titles a payer text may or may not carry: not part of the comparison.
TITLES = re.compile(r"\b(MR|MRS|MISS|MS|DR|MX)\b")


def payer_words(text: str) -> str:
    """A payer text as compared: upper case, no punctuation, no titles."""
    return " ".join(TITLES.sub(" ", default_process(text).upper()).split())


def initial_form(text: str) -> tuple[str, bool]:
    """A payer text as an initial and the rest ("JAMES SMITH", "SMITH J", "MR J SMITH": "J SMITH"), and whether the
    text itself gave only an initial (a bank shows a name either way)."""
    words = payer_words(text).split()
    initials, names = [w for w in words if len(w) == 1], [w for w in words if len(w) > 1]
    if initials:
        return " ".join([initials[0], *names]), True
    if len(names) >= 2:
        return " ".join([names[0][0], *names[1:]]), False
    return " ".join(names), False


def full_name(text: str) -> bool:
    """Whether a payer text gives a whole name (two words or more, no initial): two whole names alike say more
    than an initial and a surname, which many tenancies share."""
    words = payer_words(text).split()
    return len(words) >= 2 and all(len(w) > 1 for w in words)


def payer_scores(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """Similarity (0-100) of each of `mine` to each of `theirs`, token order and titles ignored; where either gives
    only an initial, as alike as their initial forms are ("K NOWAK" and "KAREN NOWAK": 100), so two full first names
    that differ ("JAMES SMITH", "JOHN SMITH") still count against each other."""
    full = process.cdist(mine, theirs, scorer=fuzz.token_sort_ratio, processor=payer_words, dtype=np.uint8,
                         workers=1)
    mine_short, mine_initial = zip(*map(initial_form, mine), strict=True) if len(mine) else ((), ())
    theirs_short, theirs_initial = zip(*map(initial_form, theirs), strict=True) if len(theirs) else ((), ())
    short = process.cdist(list(mine_short), list(theirs_short), scorer=fuzz.token_sort_ratio, dtype=np.uint8,
                          workers=1)
    either = np.asarray(mine_initial, bool)[:, None] | np.asarray(theirs_initial, bool)[None, :]
    return np.where(either, np.maximum(full, short), full)


def _payer_hits(receipts: pd.DataFrame, cleared: pd.DataFrame) -> pd.DataFrame:
    """Pairs whose payer text is like one on the tenancy's other cleared receipts (best similarity): any the team
    has cleared so far, before or after this one's day, for who pays for a tenancy does not change with the day (an
    old receipt still open has its payer's later receipts to go by); never the receipt's own."""
    empty = pd.DataFrame(columns=["receipt_id", "tenancy_id", "payer_similarity", "payer_full"])
    texts, known = receipts["payer"].fillna("").astype(str), cleared[cleared["payer"].fillna("").astype(str) != ""]
    if known.empty or not texts.str.len().any():
        return empty
    mine, theirs = pd.unique(texts), pd.unique(known["payer"].astype(str))
    score = payer_scores(mine, theirs)
    row, column = np.nonzero(score >= PAYER_CUTOFF)
    close = pd.DataFrame({"payer": mine[row], "known_payer": theirs[column], "payer_similarity": score[row, column]})
    close = close[close["payer"] != ""]
    close["payer_full"] = [int(full_name(a) and full_name(b) and fuzz.token_sort_ratio(
        payer_words(a), payer_words(b)) >= PAYER_CUTOFF) for a, b in zip(close["payer"], close["known_payer"],
                                                                       strict=True)]
    pairs = (receipts[["receipt_id", "payer"]].merge(close, on="payer")
             .merge(known.rename(columns={"receipt_id": "known_id", "payer": "known_payer",
                                          "cleared_tenancy_id": "tenancy_id"})[
                 ["known_id", "known_payer", "tenancy_id"]], on="known_payer"))
    pairs = pairs[pairs["known_id"] != pairs["receipt_id"]]
    if pairs.empty:
        return empty
    return pairs.groupby(["receipt_id", "tenancy_id"], as_index=False)[["payer_similarity", "payer_full"]].max()


def _amount_hits(receipts: pd.DataFrame, paid: pd.DataFrame) -> pd.DataFrame:
    """Tenancies that paid about this amount (or a half, third, quarter of it) in the habit window before the
    receipt's day, with `like_log_ratio`, how near the nearest such payment is (|log ratio|): candidates to be
    narrowed to those whose payment is missing (`_narrow_amounts`)."""
    ordered = paid.sort_values("amount_pence", kind="stable")
    amounts, days = ordered["amount_pence"].to_numpy(float), ordered["posted_date"].to_numpy("datetime64[D]")
    codes, names = pd.factorize(ordered["tenancy_id"])
    found_at, found_code, found_off = [], [], []
    for at, (day, amount) in enumerate(zip(pd.to_datetime(receipts["received_date"]),
                                           receipts["amount_pence"].astype(float), strict=True)):
        start, today = np.datetime64(day.date()) - np.timedelta64(HABIT_DAYS, "D"), np.datetime64(day.date())
        for k in MULTIPLES:
            low, high = np.searchsorted(amounts, [amount / k * (1 - AMOUNT_TOLERANCE),
                                                  amount / k * (1 + AMOUNT_TOLERANCE)], side="left")
            window = (days[low:high] >= start) & (days[low:high] < today)
            found_code.append(codes[low:high][window])
            found_off.append(np.abs(np.log(amount / k / amounts[low:high][window])))
            found_at.append(np.full(int(window.sum()), at))
    if not found_at:
        return pd.DataFrame(columns=["receipt_id", "tenancy_id", "like_log_ratio"])
    hits = pd.DataFrame({"at": np.concatenate(found_at), "code": np.concatenate(found_code),
                         "like_log_ratio": np.concatenate(found_off)})
    hits = hits.groupby(["at", "code"], as_index=False, sort=False)["like_log_ratio"].min()
    return pd.DataFrame({"receipt_id": receipts["receipt_id"].to_numpy()[hits["at"].to_numpy()],
                         "tenancy_id": np.asarray(names)[hits["code"].to_numpy()],
                         "like_log_ratio": hits["like_log_ratio"].to_numpy()})


def _line_hits(receipts: pd.DataFrame, schedules: pd.DataFrame, paid: pd.DataFrame | None = None) -> pd.DataFrame:
    """Pairs whose receipt's reference names a DWP schedule line (a claimant's line reference) that other lines of
    the schedules tie to the tenancy, or whose earlier lines the ledger posted to it (`_claim_hits`)."""
    known = schedules[schedules["tenancy_reference"].notna()][["line_reference", "tenancy_reference"]]
    empty = pd.DataFrame(columns=["receipt_id", "tenancy_id", "schedule_line"])
    if schedules.empty:
        return empty
    words = receipts[["receipt_id", "reference"]].assign(
        line_reference=receipts["reference"].fillna("").astype(str).str.split()).explode("line_reference")
    hits = words.merge(known.drop_duplicates(), on="line_reference")
    hits = hits.rename(columns={"tenancy_reference": "tenancy_id"})[["receipt_id", "tenancy_id"]]
    hits = pd.concat([hits, _claim_hits(words, receipts, schedules, paid)], ignore_index=True)
    if hits.empty:
        return empty
    return hits.drop_duplicates().assign(schedule_line=1)


def _claim_hits(words: pd.DataFrame, receipts: pd.DataFrame, schedules: pd.DataFrame,
                paid: pd.DataFrame | None) -> pd.DataFrame:
    """Pairs whose receipt names a claimant's schedule line whose earlier lines (the last CLAIM_LINES paid before
    the receipt) were posted to the tenancy: the same amount within 3 days of the line's payment date. The
    tenancies posted the most of them."""
    empty = pd.DataFrame(columns=["receipt_id", "tenancy_id"])
    if paid is None or paid.empty or schedules.empty:
        return empty
    lines = words.merge(receipts[["receipt_id", "received_date"]], on="receipt_id").merge(
        schedules[["line_reference", "payment_date", "amount_pence"]], on="line_reference")
    lines = lines[_ns(lines["payment_date"]) < _ns(lines["received_date"])]
    lines = lines.sort_values("payment_date").groupby("receipt_id").tail(CLAIM_LINES)
    if lines.empty:
        return empty
    posted = lines.merge(paid[["tenancy_id", "posted_date", "amount_pence"]], on="amount_pence")
    near = (_ns(posted["posted_date"]) - _ns(posted["payment_date"])).dt.days.abs() <= 3
    count = posted[near].drop_duplicates(["receipt_id", "payment_date", "tenancy_id"]).groupby(
        ["receipt_id", "tenancy_id"]).size().rename("n").reset_index()
    if count.empty:
        return empty
    best = count[count["n"] == count.groupby("receipt_id")["n"].transform("max")]
    return best.groupby("receipt_id").head(5)[["receipt_id", "tenancy_id"]]


def _schedule_hits(receipts: pd.DataFrame, schedules: pd.DataFrame) -> pd.DataFrame:
    """Pairs a DWP schedule line agrees with: it names the tenancy, for the receipt's amount, within 7 days."""
    lines = schedules[schedules["tenancy_reference"].notna()]
    if lines.empty:
        return pd.DataFrame(columns=["receipt_id", "tenancy_id", "schedule_agrees"])
    both = receipts[["receipt_id", "received_date", "amount_pence"]].merge(
        lines[["tenancy_reference", "amount_pence", "payment_date"]], on="amount_pence")
    near = (pd.to_datetime(both["received_date"]) - pd.to_datetime(both["payment_date"])).dt.days.abs() <= 7
    hits = both[near].rename(columns={"tenancy_reference": "tenancy_id"})[["receipt_id", "tenancy_id"]]
    return hits.drop_duplicates().assign(schedule_agrees=1)


# -- candidates and their comparison --------------------------------------------------------------------------------
def candidates(receipts: pd.DataFrame, books: Books, paid: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every (receipt, candidate tenancy) pair blocking finds for `receipts`, compared (`FEATURES`), with the
    receipt's own columns and the habit the comparison used."""
    paid = own_payments(books.payments, books.suspense) if paid is None else paid
    known = set(np.asarray(books.tenancy_ids))
    refs = _reference_hits(receipts, books.tenancy_ids)
    payers = _payer_hits(receipts, books.cleared)
    schedules, lines = _schedule_hits(receipts, books.schedules), _line_hits(receipts, books.schedules, paid)
    amounts = _narrow_amounts(_amount_hits(receipts, paid), receipts, paid)
    halves = split_sums(receipts, books.suspense)
    if len(halves):
        amounts = pd.concat([amounts, _narrow_amounts(_amount_hits(halves, paid), halves, paid)], ignore_index=True)
    pairs = pd.concat([refs[["receipt_id", "tenancy_id"]], payers[["receipt_id", "tenancy_id"]],
                       schedules[["receipt_id", "tenancy_id"]], lines[["receipt_id", "tenancy_id"]], amounts],
                      ignore_index=True).drop_duplicates()
    pairs = pairs[pairs["tenancy_id"].isin(known)]
    pairs = pairs.merge(receipts, on="receipt_id").reset_index(drop=True)
    for found, column, missing in ((refs, "ref_distance", MAX_REF_DISTANCE + 1), (payers, "payer_similarity", 0),
                                   (schedules, "schedule_agrees", 0), (lines, "schedule_line", 0)):
        pairs = pairs.merge(found, on=["receipt_id", "tenancy_id"], how="left")
        pairs[column] = pd.to_numeric(pairs[column]).fillna(missing)
    pairs["payer_full"] = pd.to_numeric(pairs["payer_full"]).fillna(0).astype(int)
    return compare(pairs, books, paid)


def split_sums(receipts: pd.DataFrame, suspense: pd.DataFrame) -> pd.DataFrame:
    """Receipts that look like one payment split in two: exactly one other receipt in suspense from the same payer
    text with the same reference (or none), a day apart at most. Each with the two amounts' sum as its amount."""
    own = receipts[["receipt_id", "received_date", "amount_pence", "reference", "payer", "source"]]
    own = own[own["payer"].fillna("").astype(str).ne("") & own["source"].ne("dwp")]
    if own.empty:
        return own
    keys = lambda f: f.assign(_ref=f["reference"].fillna("").astype(str), _payer=f["payer"].astype(str))  # noqa: E731
    others = keys(suspense[suspense["payer"].notna()])[["receipt_id", "received_date", "amount_pence", "_ref",
                                                         "_payer"]]
    both = keys(own).merge(others, on=["_ref", "_payer"], suffixes=("", "_other"))
    both = both[(both["receipt_id"] != both["receipt_id_other"]) & (
        (_ns(both["received_date"]) - _ns(both["received_date_other"])).dt.days.abs() <= 1)]
    both = both[both.groupby("receipt_id")["receipt_id_other"].transform("size") == 1]
    return both.assign(amount_pence=both["amount_pence"] + both["amount_pence_other"])[
        ["receipt_id", "received_date", "amount_pence"]].reset_index(drop=True)


def _narrow_amounts(hits: pd.DataFrame, receipts: pd.DataFrame, paid: pd.DataFrame) -> pd.DataFrame:
    """Of the amount-alike tenancies, those whose own payment around the receipt's day is missing, or that paid
    this very amount before (a tenancy may pay in more than one stream: its own payments, benefit, a top-up),
    nearest in amount and expected payment day first (and those that paid this amount most often), at most
    MAX_AMOUNT_CANDIDATES per receipt; and those that paid it to the penny, at most MAX_EXACT_CANDIDATES more."""
    if hits.empty:
        return hits[["receipt_id", "tenancy_id"]]
    pairs = hits.merge(receipts[["receipt_id", "received_date", "amount_pence"]], on="receipt_id")
    pairs = pd.concat([pairs, _expected(pairs, paid)], axis=1)
    pairs = pairs[(pairs["usual_missing"] == 1) | (pairs["like_log_ratio"] <= SAME_AMOUNT)]
    seen = amount_history(pairs, paid)["seen_payments"]
    pairs = pairs.assign(_order=pairs["like_log_ratio"] / AMOUNT_TOLERANCE + pairs["days_from_expected"] / 7
                         + (1 - pairs["usual_missing"]) - seen / 2)
    pairs = pairs.sort_values(["receipt_id", "_order", "tenancy_id"])
    exact = pairs[pairs["like_log_ratio"] <= 1e-9].groupby("receipt_id").head(MAX_EXACT_CANDIDATES)
    return pd.concat([pairs.groupby("receipt_id").head(MAX_AMOUNT_CANDIDATES), exact]).drop_duplicates(
        ["receipt_id", "tenancy_id"])[["receipt_id", "tenancy_id"]]


def _expected(pairs: pd.DataFrame, paid: pd.DataFrame) -> pd.DataFrame:
    """Each pair's habit, days from its expected payment day and whether its usual payment is missing."""
    habit = habits_at(pairs, paid)
    gap = habit["usual_gap"].fillna(7.0).clip(1, 35)
    since = (pd.to_datetime(pairs["received_date"]) - habit["last_paid"]).dt.days
    periods = (since / gap).round().clip(lower=1)
    off = (since - periods * gap).abs().clip(upper=28).fillna(28.0)
    window = (gap / 2).clip(3, 14).round().astype(np.int64).to_numpy()
    missing = (_paid_near(pairs, paid, window) == 0) & habit["last_paid"].notna().to_numpy()
    expected_on = habit["last_paid"] + pd.to_timedelta(periods * gap, unit="D")
    recent = _paid_near(pairs.assign(received_date=_ns(pairs["received_date"]) - pd.Timedelta(days=HABIT_DAYS // 2)),
                        paid, np.full(len(pairs), HABIT_DAYS // 2, dtype=np.int64))
    return habit.assign(days_from_expected=off, usual_missing=missing.astype(int), expected_on=expected_on,
                        habit_payments=np.log1p(recent))


def compare(pairs: pd.DataFrame, books: Books, paid: pd.DataFrame) -> pd.DataFrame:
    """The comparison features (`FEATURES`) of pairs holding receipt columns, ref_distance, payer_similarity and
    schedule_agrees."""
    pairs = pd.concat([pairs, _expected(pairs, paid)], axis=1)
    ratio = pairs["amount_pence"].astype(float) / pairs["usual_amount"]
    pairs["has_habit"] = pairs["usual_amount"].notna().astype(int)
    pairs["amount_log_ratio"] = np.log(ratio).abs().clip(upper=3).fillna(3.0)
    pairs["amount_equal"] = ((ratio - 1).abs() <= 0.005).astype(int)
    times = ratio.round()
    sums = split_sums(pairs.drop_duplicates("receipt_id"), books.suspense).set_index("receipt_id")["amount_pence"]
    split = pairs["receipt_id"].map(sums).astype(float) / pairs["usual_amount"]
    pairs["split_log_ratio"] = np.log(split).abs().clip(upper=3).fillna(3.0)
    pairs["amount_multiple"] = ((times >= 2) & (times <= 6) & ((ratio - times).abs() <= 0.01 * times)).astype(int)
    pairs["has_reference"] = pairs["reference"].fillna("").astype(str).str.contains(r"\d").astype(int)
    cleared = books.cleared
    own = pairs["receipt_id"].map(cleared.set_index("receipt_id")["cleared_tenancy_id"]).eq(pairs["tenancy_id"])
    others = pairs["tenancy_id"].map(cleared.groupby("cleared_tenancy_id").size()).fillna(0) - own.astype(int)
    pairs["payer_known"] = (others > 0).astype(int)
    pairs["payer_similarity"] = pairs["payer_similarity"] / 100.0
    pairs["ref_margin"] = _margin(pairs, "ref_distance", best="min").clip(-3, 3)
    pairs["payer_margin"] = _margin(pairs, "payer_similarity", best="max").clip(-1, 1)
    pairs["amount_margin"] = _margin(pairs, "amount_log_ratio", best="min").clip(-3, 3)
    pairs["expected_margin"] = _margin(pairs, "days_from_expected", best="min").clip(-28, 28) / 7
    pairs["missing_margin"] = _margin(pairs, "usual_missing", best="max")
    pairs["candidates"] = np.log1p(pairs.groupby("receipt_id")["tenancy_id"].transform("size"))
    return _history_features(pairs, paid, sums)


def _history_features(pairs: pd.DataFrame, paid: pd.DataFrame, sums: pd.Series) -> pd.DataFrame:
    """The pairs with their `amount_history` (for a split half, also the two halves' sum's) and margins on it; the
    amount's ratio to the usual payment times the periods since the last (`due_log_ratio`: two payments in one);
    how many of the receipt's candidates its payer text is like (`payer_ties`: a common name)."""
    pairs = pd.concat([pairs, amount_history(pairs, paid)], axis=1)
    split = amount_history(pairs, paid, pairs["receipt_id"].map(sums).fillna(pairs["amount_pence"]))
    alone = pairs["receipt_id"].map(sums).isna()
    pairs["split_seen_log_ratio"] = split["seen_log_ratio"].where(~alone, 3.0)
    pairs["split_stream_days"] = split["stream_days"].where(~alone, 28.0)
    since = (_ns(pairs["received_date"]) - _ns(pairs["last_paid"])).dt.days
    owed = (since / pairs["usual_gap"].fillna(7.0).clip(1, 35)).round().clip(1, max(MULTIPLES))
    pairs["due_log_ratio"] = np.log(pairs["amount_pence"] / (owed * pairs["usual_amount"])).abs().clip(
        upper=3).fillna(3.0)
    named = (pairs["payer_similarity"] >= PAYER_CUTOFF / 100).groupby(pairs["receipt_id"]).transform("sum")
    pairs["payer_ties"] = np.log1p(named)
    pairs["seen_margin"] = _margin(pairs, "seen_log_ratio", best="min").clip(-3, 3)
    pairs["stream_margin"] = _margin(pairs, "stream_days", best="min").clip(-28, 28) / 7
    return pairs


def _margin(pairs: pd.DataFrame, column: str, best: str) -> pd.Series:
    """How much better a pair's `column` is than the best of its receipt's other candidates (0 when alone)."""
    sign = 1.0 if best == "max" else -1.0
    value = sign * pairs[column].astype(float)
    group = pairs["receipt_id"]
    first = value.groupby(group).transform("max")
    ties = value.eq(first).groupby(group).transform("sum")
    second = value.where(value < first).groupby(group).transform("max")
    others = np.where(value.eq(first) & ties.eq(1), second.fillna(value), first)
    alone = pairs.groupby("receipt_id")[column].transform("size").eq(1)
    return pd.Series(np.where(alone, 0.0, value - others), index=pairs.index)


def labelled_pairs(books: Books, paid: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ledger's own history as labelled pairs: each receipt cleared at source against the candidates blocking
    finds for it (`label` 1 for the tenancy it was cleared to). A receipt whose tenancy blocking misses has only
    negatives; `blocking_recall` says how often that happens."""
    cleared = books.cleared.drop(columns=["cleared_tenancy_id", "cleared_date"]).merge(
        books.cleared[["receipt_id", "cleared_tenancy_id"]], on="receipt_id")
    pairs = candidates(cleared.drop(columns="cleared_tenancy_id"), books, paid)
    truth = cleared.set_index("receipt_id")["cleared_tenancy_id"]
    return pairs.assign(label=(pairs["tenancy_id"] == pairs["receipt_id"].map(truth)).astype(int))


def blocking_recall(pairs: pd.DataFrame, receipts: int) -> float:
    """Share of labelled receipts whose true tenancy is among their candidates."""
    return float(pairs.loc[pairs["label"] == 1, "receipt_id"].nunique() / receipts) if receipts else float("nan")


# -- the model ------------------------------------------------------------------------------------------------------
#: Fewer cleared receipts than this (with their tenancy among the candidates) is too little history to learn from.
MIN_LABELLED = 30
KINDS = ("logistic", "lightgbm")


class NotEnoughHistory(ValueError):
    """The ledger holds too few receipts cleared at source to learn matching from; the message says how many."""


@dataclass(frozen=True)
class Matcher:
    """A calibrated classifier over `FEATURES`, and what it was trained on (counts only)."""

    kind: str
    estimator: object
    receipts: int
    pairs: int
    blocking_recall: float

    def probability(self, pairs: pd.DataFrame) -> np.ndarray:
        if pairs.empty:
            return np.zeros(0)
        return self.estimator.predict_proba(pairs[list(FEATURES)].to_numpy(float))[:, 1]


def _estimator(kind: str):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    if kind == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=15, min_child_samples=20,
                              subsample=0.8, subsample_freq=1, random_state=0, n_jobs=1, verbose=-1)
    raise ValueError(f"Unknown matcher {kind!r}: one of {', '.join(KINDS)}")


def fit_matcher(labelled: pd.DataFrame, kind: str = "logistic", cleared: int | None = None) -> Matcher:
    """A classifier of `kind` fitted on labelled pairs (`labelled_pairs`) and calibrated (isotonic, on folds that
    keep each receipt's pairs together)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import GroupKFold

    receipts = labelled["receipt_id"].nunique()
    positives = int(labelled["label"].sum()) if len(labelled) else 0
    if positives < MIN_LABELLED or positives == len(labelled):
        raise NotEnoughHistory(f"{positives} receipt(s) cleared at source with their tenancy among the candidates: "
                               f"matching learns from at least {MIN_LABELLED}")
    x, y = labelled[list(FEATURES)].to_numpy(float), labelled["label"].to_numpy(int)
    folds = list(GroupKFold(n_splits=3).split(x, y, groups=labelled["receipt_id"]))
    model = CalibratedClassifierCV(_estimator(kind), method="isotonic", cv=folds).fit(x, y)
    return Matcher(kind, model, receipts, len(labelled), blocking_recall(labelled, cleared or receipts))


# -- decisions ------------------------------------------------------------------------------------------------------
def scored(pairs: pd.DataFrame, matcher: Matcher) -> pd.DataFrame:
    """Pairs with their match `probability` and `rank` within their receipt (1: the most likely; ties by id)."""
    out = pairs.assign(probability=matcher.probability(pairs) if len(pairs) else np.zeros(0))
    out = out.sort_values(["receipt_id", "probability", "tenancy_id"], ascending=[True, False, True], kind="stable")
    return out.assign(rank=out.groupby("receipt_id").cumcount() + 1).reset_index(drop=True)


#: A top candidate is proposed only if no other candidate is more likely than this (measured: requiring the
#: runner-up below 1 - the threshold proposed a third as many at the same precision, bench/README.md).
RUNNER_UP_AT = 0.5


def decide(receipts: pd.DataFrame, ranked: pd.DataFrame, propose_at: float) -> pd.DataFrame:
    """One row per receipt: its top candidate and probability, the runner-up's, and the decision: `proposed` for
    one-click approval when the top candidate reaches `propose_at` and no other is above RUNNER_UP_AT, else
    `queued` (a receipt without candidates too)."""
    top = ranked[ranked["rank"] == 1].set_index("receipt_id")
    second = ranked[ranked["rank"] == 2].set_index("receipt_id")["probability"]
    out = receipts[["receipt_id", "received_date", "amount_pence", "reference", "payer", "source"]].copy()
    out["tenancy_id"] = out["receipt_id"].map(top["tenancy_id"])
    out["probability"] = out["receipt_id"].map(top["probability"]).fillna(0.0)
    out["runner_up"] = out["receipt_id"].map(second).fillna(0.0)
    sure = (out["probability"] >= propose_at) & (out["runner_up"] <= RUNNER_UP_AT)
    out["decision"] = np.where(sure, "proposed", "queued")
    out["candidates"] = out["receipt_id"].map(ranked.groupby("receipt_id").size()).fillna(0).astype(int)
    order = out.assign(_first=out["decision"] != "proposed").sort_values(
        ["_first", "probability", "received_date", "receipt_id"], ascending=[True, False, True, True])
    return order.drop(columns="_first").reset_index(drop=True)


def _pounds(pence: float) -> str:
    return f"£{pence / 100:,.2f}"


def reasons(row: dict) -> list[str]:
    """The plain-words reasons a candidate is one (payer text itself is never repeated: a similarity only)."""
    said = []
    distance = int(row["ref_distance"])
    if row["has_reference"] and distance <= MAX_REF_DISTANCE:
        said.append(f"reference names {row['tenancy_id']}" if distance == 0 else
                    f"reference {distance} character{'s' if distance > 1 else ''} from {row['tenancy_id']}")
    if row["payer_similarity"] >= PAYER_CUTOFF / 100:
        said.append(f"payer text {row['payer_similarity']:.0%} like this tenancy's earlier receipts")
    if row["amount_equal"]:
        said.append(f"{_pounds(row['amount_pence'])} = usual payment")
    elif row["amount_multiple"]:
        times = round(row["amount_pence"] / row["usual_amount"])
        said.append(f"{_pounds(row['amount_pence'])} = {times} × usual payment ({_pounds(row['usual_amount'])})")
    elif row["has_habit"] and row["amount_log_ratio"] <= 0.1:
        said.append(f"{_pounds(row['amount_pence'])} close to the usual payment ({_pounds(row['usual_amount'])})")
    if row.get("split_log_ratio", 3.0) <= 0.05 and not row["amount_equal"]:
        said.append("with the same payer's other receipt a day apart at most, the usual payment")
    if row["usual_missing"] and pd.notna(row["expected_on"]):
        said.append(f"expected payment on {pd.Timestamp(row['expected_on']):%-d %b} not received")
    if row["schedule_agrees"]:
        said.append(f"a DWP schedule line for {_pounds(row['amount_pence'])} names this tenancy")
    if row["schedule_line"]:
        said.append("the reference names a DWP schedule line of this tenancy's claim")
    return said or ["nothing in common but the blocking rule that found it"]


def queue(books: Books, matcher: Matcher, propose_at: float, rejected: pd.DataFrame | None = None,
          top: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The suspense queue: every open receipt's decision (`decide`), and its `top` candidates with probability,
    rank and reasons. Matches a person `rejected` (receipt_id, tenancy_id) are no longer candidates."""
    receipts = books.open.drop(columns=["cleared_tenancy_id", "cleared_date"])
    pairs = candidates(receipts, books) if len(receipts) else pd.DataFrame(
        columns=["receipt_id", "tenancy_id", *FEATURES])
    if rejected is not None and len(rejected) and len(pairs):
        gone = pd.MultiIndex.from_frame(rejected[["receipt_id", "tenancy_id"]])
        pairs = pairs[~pd.MultiIndex.from_frame(pairs[["receipt_id", "tenancy_id"]]).isin(gone)]
    ranked = scored(pairs, matcher)
    shown = ranked[ranked["rank"] <= top].copy()
    shown["reasons"] = [reasons(row) for row in shown.to_dict("records")]
    return decide(receipts, ranked, propose_at), shown.reindex(
        columns=["receipt_id", "rank", "tenancy_id", "probability", "reasons"]).reset_index(drop=True)


def held(decisions: pd.DataFrame, queue_at: float) -> pd.DataFrame:
    """The tenancies a receipt in suspense may belong to, for the readiness policy: each open receipt's top
    candidate at `queue_at` or above (receipt_id, tenancy_id, received_date, amount_pence)."""
    sure = decisions[decisions["tenancy_id"].notna() & (decisions["probability"] >= queue_at)]
    return sure[["receipt_id", "tenancy_id", "received_date", "amount_pence"]].reset_index(drop=True)
