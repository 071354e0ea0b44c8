"""The feature stage's edges: ledger → offline snapshots → `feast apply` → online store, and keeping them fresh.

The logic lives in `features.transforms`; these modules only read, write, schedule and call Feast:

- `offline`: the snapshot build, partition by partition on one process or a Dask cluster, and the offline store
  (Parquet under `ARREARS_HOME`, or the `tenancy_snapshots` table in Postgres) plus the live file (one current
  snapshot per live tenancy: the population a worklist ranks);
- `feast`: every call into Feast (apply, open, push, online and point-in-time retrieval through a FeatureService);
- `refresh`: doing as little as is correct after new deliveries (nothing, the touched tenancies, or everything).
"""
