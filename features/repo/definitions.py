"""Feast declarations for the arrears service. Declarations only: `feast apply` imports every .py in this folder.

The FeatureServices are the contract between training and serving: both fetch features by service name, and
nobody else lists feature names. A new model version that needs different features gets a new service (`_v2`).

One snapshot table (weekly per-tenancy snapshots built by `arrears features build`) feeds four views, grouped by
what the features describe and how long a value may be trusted; the days-since features are computed on demand
from day-number anchors and the request's `as_of` date, so they are right on the day of the request.
"""

import os
from datetime import timedelta

import pandas as pd
from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    RequestSource,
)
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, String, UnixTimestamp
from feast.value_type import ValueType

from features.catalogue import ANCHORS, SNAPSHOT_FEATURES

_home = os.path.abspath(os.environ.get("ARREARS_HOME", "data"))

tenancy = Entity(
    name="tenancy",
    join_keys=["tenancy_id"],
    value_type=ValueType.STRING,
    description="A tenancy: one rent account, the unit officers work and the model scores.",
)

if os.environ.get("ARREARS_FEAST_OFFLINE", "file") == "postgres":
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

    tenancy_snapshot_source = PostgreSQLSource(
        name="tenancy_snapshot_source",
        table="tenancy_snapshots",
        timestamp_field="event_timestamp",
        description="Weekly per-tenancy snapshots computed from the ledger by `arrears features build`.",
    )
else:
    tenancy_snapshot_source = FileSource(
        name="tenancy_snapshot_source",
        path=os.path.join(_home, "offline", "tenancy_snapshots.parquet"),
        timestamp_field="event_timestamp",
        description="Weekly per-tenancy snapshots computed from the ledger by `arrears features build`.",
    )

tenancy_snapshot_push = PushSource(
    name="tenancy_snapshot_push",
    batch_source=tenancy_snapshot_source,
    description="Current snapshots of tenancies touched by a new delivery, pushed to the online store at ingest.",
)


def _fields(group: str) -> list[Field]:
    """The catalogue's features of one group, then the anchors (day numbers) that group's view carries."""
    return [Field(name=f.name, dtype=Float64, description=f"{f.description} ({f.unit})")
            for f in SNAPSHOT_FEATURES if f.group == group] + [
        Field(name=a.name, dtype=Float64, description=f"{a.description} (days since 1970-01-01)")
        for a in ANCHORS if a.group == group]


def _view(name: str, ttl_days: int, schema: list[Field], description: str) -> FeatureView:
    """A view over the weekly snapshot table, refreshed online by the push source."""
    return FeatureView(name=name, entities=[tenancy], ttl=timedelta(days=ttl_days), schema=schema,
                       source=tenancy_snapshot_push, description=description,
                       tags={"owner": "arrears", "grain": "tenancy x week"})


# A weekly snapshot stays valid for a little over a week: a missed build shows as missing, not silently stale.
tenancy_balance = _view("tenancy_balance", 8, _fields("balance"), "Balance and arrears, as of the snapshot date.")
tenancy_payments = _view("tenancy_payments", 8, _fields("payments"), "Payment behaviour over the last 4/13/26 weeks.")
tenancy_circumstances = _view(
    "tenancy_circumstances", 8, _fields("circumstances"),
    "Circumstances from the events feed: disputes, breathing space, arrangements, legal action.")
# Tenancy attributes change rarely; a month-old value is still right.
tenancy_profile = _view(
    "tenancy_profile", 35,
    [Field(name="patch", dtype=String, description="Team or officer area that owns the case")] + _fields("tenancy"),
    "The tenancy: rent, frequency, benefit type, patch.")

request_date = RequestSource(
    name="request_date",
    schema=[Field(name="as_of", dtype=UnixTimestamp, description="The date the features are wanted for")],
    description="Training passes each row's snapshot date; serving passes the day of the request.",
)


@on_demand_feature_view(
    sources=[tenancy_payments, tenancy_circumstances, tenancy_profile, request_date],
    # No descriptions here: Feast checks this schema against one it infers by running the function, field by field.
    schema=[Field(name=f.name, dtype=Float64) for f in SNAPSHOT_FEATURES if f.group == "recency"],
    mode="pandas",
    description="Days since the last payment, contact, rent change and tenancy start, as of the request date.",
)
def tenancy_recency(inputs: pd.DataFrame) -> pd.DataFrame:
    # Must stay inside: Feast keeps this function's source and rebuilds it in a namespace of its own (pandas and
    # numpy only) when it serves, so a name imported at the top of this file would not be there.
    from features.transforms import recency

    return recency(inputs, inputs["as_of"])


def _named(*groups: str) -> list[str]:
    return [f.name for f in SNAPSHOT_FEATURES if f.group in groups]


# Version 1 of the risk model: every feature (not `patch`, which only routes the worklist, nor the anchors).
arrears_risk_v1 = FeatureService(
    name="arrears_risk_v1",
    features=[
        tenancy_balance,
        tenancy_payments[_named("payments")],
        tenancy_circumstances[_named("circumstances")],
        tenancy_profile[_named("tenancy")],
        tenancy_recency,
    ],
    description="Features of the arrears-risk model, version 1.",
)

# Version 1 of the payment-date model: how and when the tenant pays, and what could hold a payment up.
payment_date_v1 = FeatureService(
    name="payment_date_v1",
    features=[
        tenancy_balance[["balance", "arrears_weeks", "settled_arrears_weeks", "balance_change_4w"]],
        tenancy_payments[_named("payments")],
        tenancy_circumstances[["dispute_open", "breathing_space_active", "arrangement_active"]],
        tenancy_profile[_named("tenancy")],
        tenancy_recency,
    ],
    description="Features of the payment-date model, version 1.",
)
