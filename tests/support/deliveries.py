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
