"""Tiny deliveries written inline, so each test shows exactly what arrived."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

TENANCIES = """tenancy_id,patch,start_date,end_date,rent_amount,rent_frequency
T1,North,2024-01-01,,100.00,weekly
T2,South,2024-01-01,,433.33,monthly
"""

TRANSACTIONS = """transaction_id,tenancy_id,posted_date,type,amount
X1,T1,2024-01-01,charge,100.00
X2,T1,2024-01-03,payment,-100.00
X3,T2,2024-01-01,charge,433.33
X4,T2,2024-01-05,payment,-400.00
"""


#: A tiny delivery and the content hashes contract version 1 gave its rows (computed by the pandas code before
#: ingestion moved to SQL). Older ledgers hold these: they are recomputed when such a ledger is opened.
V1_DELIVERY = {
    "tenancies": "tenancy_id,patch,start_date,end_date,rent_amount,rent_frequency,property_id,benefit_type,"
                 "vulnerable,age_band\nT1,North,2024-01-01,,100.00,weekly,P1,housing_benefit,true,25-34\n"
                 "T2,South,2024-01-01,2024-06-30,433.33,monthly,,none,,\n",
    "transactions": "transaction_id,tenancy_id,posted_date,type,amount,method,reference\n"
                    "X1,T1,2024-01-01,charge,100.00,,Rent\nX2,T1,2024-01-03,payment,-100.00,card,Card payment\n"
                    "X3,T2,2024-01-01,charge,433.33,,\n",
    "events": "event_id,tenancy_id,event_date,type,amount,note\n"
              "E1,T1,2024-02-01,dispute_opened,50.00,rent charge query\nE2,T2,2024-02-02,contact_made,,phone call\n",
}
V1_HASHES = {
    "tenancies": {"T1": "9045ea6fd4bb5ced", "T2": "e3271c7e1f905c95"},
    "transactions": {"X1": "a406e9eda12ececb", "X2": "ba05d6d4a3f856ca", "X3": "5c1e438d481912b3"},
    "events": {"E1": "fd1ec0075f210f90", "E2": "d6ed9754fccc0a7a"},
}
KEYS = {"tenancies": "tenancy_id", "transactions": "transaction_id", "events": "event_id"}


def write_delivery(folder: Path, **feeds: pd.DataFrame | str) -> Path:
    """Write feeds (a DataFrame, or raw CSV text to reproduce an export fault exactly) into a delivery folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in feeds.items():
        path = folder / (name if "." in name else f"{name}.csv")
        if isinstance(content, str):
            path.write_text(content)
        else:
            content.to_csv(path, index=False)
    return folder
