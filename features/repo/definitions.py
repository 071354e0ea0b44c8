"""Feast declarations for the arrears service. Declarations only: `feast apply` imports every .py in this folder.

The FeatureServices are the contract between training and serving: both fetch features by service name, and
nobody else lists feature names. A new model version that needs different features gets a new service (`_v2`).
"""

import os
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource
from feast.types import Float64, String
from feast.value_type import ValueType

from features.catalogue import FEATURES, SNAPSHOT_FEATURES

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

# Every feature the snapshot build computes, in catalogue order (the catalogue gives each its description).
_snapshot_features = [feature.name for feature in SNAPSHOT_FEATURES]

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

# Version 1 of the risk model uses every numeric snapshot feature (not `patch`, which only routes the worklist).
# A model that needs a different set gets a new service rather than a changed one.
arrears_risk_v1 = FeatureService(
    name="arrears_risk_v1",
    features=[tenancy_snapshot[_snapshot_features]],
    description="Features of the arrears-risk model, version 1.",
)
