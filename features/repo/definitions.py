"""Feast declarations for the arrears service. Declarations only: `feast apply` imports every .py in this folder.

The FeatureServices are the contract between training and serving: both fetch features by service name, and
nobody else lists feature names. A new model version that needs different features gets a new service (`_v2`).
"""

import os
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource
from feast.types import Float64, String
from feast.value_type import ValueType

from features.catalogue import FEATURES

_home = os.path.abspath(os.environ.get("ARREARS_HOME", "data"))

tenancy = Entity(
    name="tenancy",
    join_keys=["tenancy_id"],
    value_type=ValueType.STRING,
    description="A tenancy: one rent account, the unit officers work and the model scores.",
)

tenancy_snapshot_source = FileSource(
    name="tenancy_snapshot_source",
    path=os.path.join(_home, "offline", "tenancy_snapshots.parquet"),
    timestamp_field="event_timestamp",
    description="Weekly per-tenancy snapshots computed from the ledger by `arrears features build`.",
)

tenancy_snapshot_push = PushSource(
    name="tenancy_snapshot_push",
    batch_source=tenancy_snapshot_source,
    description="Fresh snapshots of tenancies touched by a new delivery, pushed without a full rebuild.",
)

_snapshot_features = [
    "balance",
    "arrears_weeks",
    "settled_balance",
    "settled_arrears_weeks",
    "settled_change_4w",
    "days_since_last_payment",
    "balance_change_4w",
    "balance_change_13w",
    "paid_to_charged_13w",
    "payments_13w",
    "peak_arrears_weeks_26w",
    "weeks_since_clear",
    "tenancy_age_days",
    "weekly_rent",
]

tenancy_snapshot = FeatureView(
    name="tenancy_snapshot",
    entities=[tenancy],
    # A weekly snapshot stays valid for a little over a week; older ones are stale, not silently reused.
    ttl=timedelta(days=10),
    schema=[Field(name="patch", dtype=String, description="Team or officer area that owns the case")]
    + [Field(name=name, dtype=Float64, description=FEATURES[name].description) for name in _snapshot_features],
    online=True,
    source=tenancy_snapshot_push,
    tags={"owner": "arrears", "grain": "tenancy x week"},
)

arrears_risk_v1 = FeatureService(
    name="arrears_risk_v1",
    features=[
        tenancy_snapshot[
            [
                "balance",
                "arrears_weeks",
                "settled_balance",
                "settled_arrears_weeks",
                "settled_change_4w",
                "days_since_last_payment",
                "balance_change_4w",
                "balance_change_13w",
                "paid_to_charged_13w",
                "payments_13w",
                "peak_arrears_weeks_26w",
                "weeks_since_clear",
                "tenancy_age_days",
                "weekly_rent",
            ]
        ]
    ],
    description="Features of the arrears-risk model, version 1.",
)
