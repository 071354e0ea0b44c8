"""The feed contract: which feeds a delivery may hold, their columns, and the domain vocabulary.

This is the single written-down source for the shape of the data we accept; `docs/feeds.md` explains it for
people, the validators in `features.feeds.ingest` and the ledger's tables in `features.ledger` are derived from it, and
the simulator writes to it. A new column is one `Column` line here (and, if the simulator should fill it, there).
Sign convention for money: a positive `amount` raises what the tenant owes (charge, fee, refund),
a negative one lowers it (payment, benefit, write_off); adjustments go either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

RENT_FREQUENCIES: tuple[str, ...] = ("weekly", "fortnightly", "four_weekly", "monthly")
#: Rent periods per year, used to express a rent amount as weekly rent.
PERIODS_PER_YEAR: dict[str, float] = {"weekly": 52.0, "fortnightly": 26.0, "four_weekly": 13.0, "monthly": 12.0}

BENEFIT_TYPES: tuple[str, ...] = ("none", "housing_benefit", "universal_credit")

TRANSACTION_TYPES: tuple[str, ...] = ("charge", "payment", "benefit", "adjustment", "refund", "write_off", "fee")
#: The sign an amount must have for each transaction type (+1 raises the debt, -1 lowers it, 0 either way).
TRANSACTION_SIGN: dict[str, int] = {
    "charge": 1,
    "fee": 1,
    "refund": 1,
    "payment": -1,
    "benefit": -1,
    "write_off": -1,
    "adjustment": 0,
}
#: Transaction types that are money received from or on behalf of the tenant.
RECEIPT_TYPES: tuple[str, ...] = ("payment", "benefit")
#: How housing systems mark two kinds of `adjustment` by their reference (case-insensitive regular expressions):
#: the balance carried in when an account's history starts (not a change in the tenant's arrears), and a receipt
#: put back (a returned direct debit, a bounced or reversed payment: the money never arrived).
OPENING_BALANCE_REFERENCE = r"opening balance|balance brought forward|brought forward|\bb/f\b"
REVERSAL_REFERENCE = r"returned|reversal|reversed|bounced|unpaid|recalled|chargeback"

EVENT_TYPES: tuple[str, ...] = (
    "dispute_opened",
    "dispute_resolved",
    "breathing_space_started",  # a standard breathing space (Debt Respite Scheme): 60 days unless ended earlier
    "breathing_space_ended",  # either kind ended or cancelled (for a mental health crisis moratorium: the notice)
    "arrangement_agreed",
    "arrangement_broken",
    "arrangement_completed",
    "contact_made",
    "legal_stage",  # a step of possession action: 1 notice served, 2 claim issued, 3 order, 4 warrant, 5 eviction
    # -- contract version 2 -------------------------------------------------------------------------------------
    "mental_health_moratorium_started",  # lasts while crisis treatment lasts, plus 30 days
    "crisis_treatment_ended",  # the mental health professional's notice: the moratorium ends 30 days later
    "benefit_claim_made",  # a Housing Benefit or Universal Credit claim awaiting a decision or first payment
    "benefit_claim_decided",
    "contact_attempted",  # an attempt that did not reach the tenant (counts towards contact limits)
    "rent_statement_sent",  # a rent statement sent to the tenant (pre-action protocol 2.3)
    "proceedings_warning_sent",  # written warning of possession proceedings with a time limit (protocol 2.9)
)
#: Events that start a breathing space of either kind (both block collection contact and enforcement).
BREATHING_SPACE_STARTS: tuple[str, ...] = ("breathing_space_started", "mental_health_moratorium_started")

#: What a receipt paid for (transactions' optional `allocation`; empty means rent). Money not allocated to rent, or
#: held like a deposit, makes a balance ambiguous until someone has looked at it.
ALLOCATIONS: tuple[str, ...] = ("rent", "unallocated", "deposit")

#: Columns that only ever feed bias monitoring. They must never become model features.
MONITORING_ONLY_COLUMNS: tuple[str, ...] = ("age_band", "sex", "ethnicity", "disability")
#: Columns that identify or contact a person. They never reach logs, metrics or model artefacts.
PERSONAL_COLUMNS: tuple[str, ...] = ("tenant_name", "address", "email", "phone")
#: Columns the ledger keeps because the work needs them, but which may name a person (a bank credit's payer text):
#: read for matching and shown to the income team, never written to logs, metrics or model artefacts.
NAMING_COLUMNS: tuple[str, ...] = ("payer",)

#: Where a receipt in suspense came from.
SUSPENSE_SOURCES: tuple[str, ...] = ("bank", "payment_provider", "dwp")
#: The DWP schemes whose payments to landlords come with a schedule of lines.
SCHEDULE_SCHEMES: tuple[str, ...] = ("universal_credit", "housing_benefit")


#: How a column's text is read (`features.feeds.normalise`) and stored in the ledger (its SQL type).
COLUMN_KINDS: dict[str, str] = {
    "text": "TEXT", "date": "DATE", "money": "BIGINT", "vocabulary": "TEXT", "flag": "BOOLEAN", "outcome": "INTEGER",
}


@dataclass(frozen=True)
class Column:
    """One column of a feed: the single source of its ledger name, SQL type, vocabulary and how it is read.

    `required` columns must be in every file of the feed; their values must be present on every row unless
    `blank_ok` (an end date, say). Money arrives in pounds and is stored as integer pence (`<name>_pence`).
    """

    name: str
    kind: str = "text"
    required: bool = False
    vocabulary: tuple[str, ...] = ()
    blank_ok: bool = False
    label: str = ""  #: how messages name it (default: its name)
    #: The contract version that added the column. Columns added after version 1 are optional and enter a row's
    #: content hash only when set, so a row delivered again the way it was delivered before is still a duplicate.
    since: int = 1

    def __post_init__(self) -> None:
        if self.kind not in COLUMN_KINDS:
            raise ValueError(f"unknown column kind {self.kind!r}")
        if (self.kind == "vocabulary") != bool(self.vocabulary):
            raise ValueError(f"{self.name}: a vocabulary column, and only one, lists its vocabulary")

    @property
    def ledger_name(self) -> str:
        return f"{self.name}_pence" if self.kind == "money" else self.name

    @property
    def sql_type(self) -> str:
        return COLUMN_KINDS[self.kind]

    @property
    def value_required(self) -> bool:
        return self.required and not self.blank_ok

    @property
    def what(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class FeedSpec:
    """One feed of a delivery: its key (what makes two rows the same row) and its columns.

    A `versioned` feed keeps every changed version of a row (the tenancy register); the others are immutable, so
    the same key with other content is a conflict.
    """

    name: str
    key: tuple[str, ...]
    schema: tuple[Column, ...]
    is_required_feed: bool = False
    versioned: bool = False
    #: The column order a row's content hash is computed in, when it is not the schema's: ledgers already hold
    #: hashes computed in this order, so it never changes (new columns are `since` > 1 and hash separately). The
    #: protected characteristics are never hashed (`features.ledger.HASH_FORMAT` 3): they are kept apart.
    hash_order: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.schema)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.schema if c.required)

    @property
    def optional(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.schema if not c.required)

    def column(self, name: str) -> Column:
        return next(c for c in self.schema if c.name == name)

    @property
    def added_later(self) -> tuple[str, ...]:
        """Ledger names of the columns added after contract version 1."""
        return tuple(c.ledger_name for c in self.schema if c.since > 1)

    @property
    def hashed_columns(self) -> tuple[str, ...]:
        """Ledger names in the order a row's content hash reads them (version-1 columns, then later ones)."""
        first = [self.column(name) for name in self.hash_order] or [c for c in self.schema if c.since == 1]
        return tuple(c.ledger_name for c in first) + self.added_later


def _text(*names: str) -> tuple[Column, ...]:
    return tuple(Column(name) for name in names)


TENANCIES = FeedSpec(
    name="tenancies",
    key=("tenancy_id",),
    schema=(
        Column("tenancy_id", required=True),
        Column("patch", required=True),
        Column("start_date", "date", required=True),
        Column("end_date", "date", required=True, blank_ok=True),
        Column("rent_amount", "money", required=True),
        Column("rent_frequency", "vocabulary", required=True, vocabulary=RENT_FREQUENCIES),
        Column("property_id"),
        Column("tenure_type"),
        Column("benefit_type", "vocabulary", vocabulary=BENEFIT_TYPES),
        *_text("payment_method", "preferred_channel", "language"),
        Column("vulnerable", "flag"),
        *_text(*MONITORING_ONLY_COLUMNS),
        # The balance the housing system itself reports, and the date it is as of: a gap the feeds cannot explain
        # makes the balance ambiguous (the case is checked before anyone is chased).
        Column("reported_balance", "money", since=2),
        Column("reported_balance_date", "date", since=2),
        # The day this version of the tenancy took effect (a move to Universal Credit, say). Features as of a date
        # use the latest-delivered version in force on it; a version without it is in force from the start.
        Column("valid_from", "date", since=3),
    ),
    is_required_feed=True,
    versioned=True,
    hash_order=("tenancy_id", "patch", "start_date", "end_date", "rent_amount", "rent_frequency", "benefit_type",
                "vulnerable", "property_id", "tenure_type", "payment_method", "preferred_channel", "language"),
)

TRANSACTIONS = FeedSpec(
    name="transactions",
    key=("transaction_id",),
    schema=(
        Column("transaction_id", required=True),
        Column("tenancy_id", required=True),
        Column("posted_date", "date", required=True),
        Column("type", "vocabulary", required=True, vocabulary=TRANSACTION_TYPES, label="transaction type"),
        Column("amount", "money", required=True),
        *_text("method", "reference"),
        Column("allocation", "vocabulary", vocabulary=ALLOCATIONS, since=2),
    ),
    is_required_feed=True,
)

EVENTS = FeedSpec(
    name="events",
    key=("event_id",),
    schema=(
        Column("event_id", required=True),
        Column("tenancy_id", required=True),
        Column("event_date", "date", required=True),
        Column("type", "vocabulary", required=True, vocabulary=EVENT_TYPES, label="event type"),
        Column("amount", "money"),
        Column("note"),
    ),
)

OUTCOMES = FeedSpec(
    name="outcomes",
    key=("tenancy_id", "as_of_date"),
    schema=(
        Column("tenancy_id", required=True),
        Column("as_of_date", "date", required=True),
        Column("outcome", "outcome", required=True),
    ),
)

#: Receipts in suspense (contract version 4): bank or payment-provider credits the landlord could not match to a
#: tenancy. Money received is positive. A receipt the landlord's own team has since cleared at source carries the
#: tenancy it went to and the day (`cleared_tenancy_id`, `cleared_date`): that history is what matching learns from.
#: Versioned like the tenancy register: a receipt is first delivered open and later again, cleared; the ledger keeps
#: both and its `suspense_register` view is the latest delivered version of each receipt.
SUSPENSE = FeedSpec(
    name="suspense",
    key=("receipt_id",),
    schema=(
        Column("receipt_id", required=True),
        Column("received_date", "date", required=True),
        Column("amount", "money", required=True),
        Column("reference"),
        Column("payer"),
        Column("source", "vocabulary", required=True, vocabulary=SUSPENSE_SOURCES),
        Column("cleared_tenancy_id"),
        Column("cleared_date", "date"),
    ),
    versioned=True,
)

#: The DWP's payment schedules (contract version 4): one row per line of a schedule. A settlement is one bank
#: payment covering many tenants (Universal Credit managed payments and deductions every 28 days in arrears;
#: Housing Benefit on 4-weekly runs); each line is one claimant's amount for a period. `tenancy_reference` is the
#: landlord's tenancy id when the DWP was given it (often missing).
DWP_SCHEDULES = FeedSpec(
    name="dwp_schedules",
    key=("settlement_number", "line_reference"),
    schema=(
        Column("settlement_number", required=True),
        Column("line_reference", required=True),
        Column("payment_date", "date", required=True),
        Column("amount", "money", required=True),
        Column("tenancy_reference"),
        Column("scheme", "vocabulary", vocabulary=SCHEDULE_SCHEMES),
        Column("period_start", "date"),
        Column("period_end", "date"),
    ),
)

FEEDS: dict[str, FeedSpec] = {spec.name: spec for spec in (TENANCIES, TRANSACTIONS, EVENTS, OUTCOMES, SUSPENSE,
                                                           DWP_SCHEDULES)}
#: The order feeds are loaded in: transactions and events refer to tenancies.
LOAD_ORDER: tuple[str, ...] = ("tenancies", "transactions", "events", "outcomes", "suspense", "dwp_schedules")
#: Feeds whose rows belong to a tenancy that must already be known (`tenancy_id`, a foreign key).
TENANCY_FEEDS: tuple[str, ...] = ("transactions", "events", "outcomes")
#: The column of each feed that names a tenancy the ledger must know: every row's `tenancy_id` in the tenancy feeds;
#: a suspense receipt's `cleared_tenancy_id` only where it is set (an open receipt names none). The DWP's
#: `tenancy_reference` is not one: it is the DWP's free text, kept as delivered and matched softly.
TENANCY_REFERENCE: dict[str, str] = {**{feed: "tenancy_id" for feed in TENANCY_FEEDS},
                                     "suspense": "cleared_tenancy_id"}


def marked(transactions: pd.DataFrame, pattern: str) -> np.ndarray:
    """Adjustments whose reference matches `pattern` (OPENING_BALANCE_REFERENCE, REVERSAL_REFERENCE)."""
    if "reference" not in transactions:
        return np.zeros(len(transactions), dtype=bool)
    reference = transactions["reference"].astype("string").str.contains(pattern, case=False, regex=True)
    return (transactions["type"].eq("adjustment") & reference.fillna(False)).to_numpy(dtype=bool)


def periods_per_year(rent_frequency) -> np.ndarray:
    """Rent periods a year for each frequency (any array shape; NaN outside the vocabulary)."""
    frequencies = np.asarray(rent_frequency, dtype=object)
    periods = pd.Series(frequencies.ravel()).map(PERIODS_PER_YEAR).to_numpy(dtype=float)
    return periods.reshape(frequencies.shape)


def weekly_rent(rent_amount, rent_frequency):
    """Rent per week for rents charged `rent_amount` per `rent_frequency` period, in the rent's own unit.

    One rent, or arrays that broadcast (a Series keeps its index): the one place a rent becomes a weekly rent.
    """
    if isinstance(rent_frequency, str):
        return float(rent_amount) * PERIODS_PER_YEAR[rent_frequency] / 52.0
    weekly = np.asarray(rent_amount, dtype=float) * periods_per_year(rent_frequency) / 52.0
    return pd.Series(weekly, index=rent_amount.index) if isinstance(rent_amount, pd.Series) else weekly
