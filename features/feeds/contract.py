"""The feed contract: which feeds a delivery may hold, their columns, and the domain vocabulary.

This is the single written-down source for the shape of the data we accept; `docs/feeds.md` explains it for
people, the validators in `features.feeds.ingest` enforce it, and the simulator writes to it.
Sign convention for money: a positive `amount` raises what the tenant owes (charge, fee, refund),
a negative one lowers it (payment, benefit, write_off); adjustments go either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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

EVENT_TYPES: tuple[str, ...] = (
    "dispute_opened",
    "dispute_resolved",
    "breathing_space_started",
    "breathing_space_ended",
    "arrangement_agreed",
    "arrangement_broken",
    "arrangement_completed",
    "contact_made",
    "legal_stage",
)

#: Columns that only ever feed bias monitoring. They must never become model features.
MONITORING_ONLY_COLUMNS: tuple[str, ...] = ("age_band", "sex", "ethnicity", "disability")
#: Columns that identify or contact a person. They never reach logs, metrics or model artefacts.
PERSONAL_COLUMNS: tuple[str, ...] = ("tenant_name", "address", "email", "phone")


@dataclass(frozen=True)
class FeedSpec:
    """One feed of a delivery: its key, required and optional columns."""

    name: str
    key: tuple[str, ...]
    required: tuple[str, ...]
    optional: tuple[str, ...] = field(default_factory=tuple)
    is_required_feed: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


TENANCIES = FeedSpec(
    name="tenancies",
    key=("tenancy_id",),
    required=("tenancy_id", "patch", "start_date", "end_date", "rent_amount", "rent_frequency"),
    optional=(
        "property_id",
        "tenure_type",
        "benefit_type",
        "payment_method",
        "preferred_channel",
        "language",
        "vulnerable",
        *MONITORING_ONLY_COLUMNS,
    ),
    is_required_feed=True,
)

TRANSACTIONS = FeedSpec(
    name="transactions",
    key=("transaction_id",),
    required=("transaction_id", "tenancy_id", "posted_date", "type", "amount"),
    optional=("method", "reference"),
    is_required_feed=True,
)

EVENTS = FeedSpec(
    name="events",
    key=("event_id",),
    required=("event_id", "tenancy_id", "event_date", "type"),
    optional=("amount", "note"),
)

OUTCOMES = FeedSpec(
    name="outcomes",
    key=("tenancy_id", "as_of_date"),
    required=("tenancy_id", "as_of_date", "outcome"),
)

FEEDS: dict[str, FeedSpec] = {spec.name: spec for spec in (TENANCIES, TRANSACTIONS, EVENTS, OUTCOMES)}
#: The order feeds are loaded in: transactions and events refer to tenancies.
LOAD_ORDER: tuple[str, ...] = ("tenancies", "transactions", "events", "outcomes")


def weekly_rent(rent_amount: float, rent_frequency: str) -> float:
    """Rent per week for a rent charged `rent_amount` per `rent_frequency` period."""
    return rent_amount * PERIODS_PER_YEAR[rent_frequency] / 52.0
