"""The collection KPIs on the worked example of docs/treasury.md: three tenancies in two patches over two months."""

from __future__ import annotations

import pandas as pd
import pytest

from serving.treasury.kpis import collection_kpis

REGISTER = pd.DataFrame({
    "tenancy_id": ["T1", "T2", "T3"], "patch": ["A", "A", "B"],
    "start_date": pd.to_datetime(["2026-01-01", "2025-06-01", "2025-12-01"]),
    "end_date": pd.to_datetime([None, "2026-01-20", None]),
    "rent_amount_pence": [10_000, 50_000, 8_000], "rent_frequency": ["weekly", "monthly", "weekly"],
})


def posting(tenancy: str, day: str, kind: str, pounds: float, reference: str = "") -> dict:
    return {"tenancy_id": tenancy, "posted_date": pd.Timestamp(day), "type": kind,
            "amount_pence": round(pounds * 100), "reference": reference}


TRANSACTIONS = pd.DataFrame(
    [posting("T1", f"2026-01-{d:02d}", "charge", 100) for d in (5, 12, 19, 26)]
    + [posting("T1", f"2026-01-{d:02d}", "payment", -100) for d in (6, 13, 20)]
    + [posting("T1", "2026-01-27", "payment", -50),
       posting("T1", "2026-01-29", "adjustment", 50, "Returned direct debit")]
    + [posting("T2", "2026-01-01", "charge", 500), posting("T2", "2026-01-10", "payment", -200),
       posting("T2", "2026-02-05", "write_off", -100)]
    + [posting("T3", "2026-01-02", "payment", -500)]
    + [posting("T3", f"2026-01-{d:02d}", "charge", 80) for d in (5, 12, 19, 26)]
    + [posting(t, f"2026-02-{d:02d}", "charge", rent) for t, rent in (("T1", 100), ("T3", 80)) for d in (2, 9, 16, 23)]
    + [posting("T1", "2026-02-03", "payment", -150), posting("T1", "2026-02-10", "payment", -150),
       posting("T1", "2026-02-17", "payment", -100)]
).assign(transaction_id=lambda f: [f"X{i}" for i in range(len(f))])

#: docs/treasury.md's table, figure by figure.
EXPECTED = {
    ("2026-01", "portfolio"): dict(rent_due=1220, collected=1000, collection_rate=1000 / 1220, current_tenancies=2,
                                   current_arrears=100, annual_rent_roll=9360, former_arrears=300, written_off=0,
                                   days_rent_outstanding=100 / (9360 / 365)),
    ("2026-02", "portfolio"): dict(rent_due=720, collected=400, collection_rate=400 / 720, current_tenancies=2,
                                   current_arrears=240, annual_rent_roll=9360, former_arrears=200, written_off=100,
                                   days_rent_outstanding=240 / (9360 / 365)),
    ("2026-01", "A"): dict(rent_due=900, collected=500, current_arrears=100, annual_rent_roll=5200,
                           former_arrears=300, current_arrears_pct_of_roll=100 / 5200),
    ("2026-01", "B"): dict(rent_due=320, collected=500, collection_rate=500 / 320, current_arrears=0),
    ("2026-02", "B"): dict(rent_due=320, collected=0, current_arrears=140, former_arrears=0),
}


def test_the_worked_example_of_the_docs() -> None:
    table = collection_kpis(REGISTER, TRANSACTIONS).set_index(["month", "scope"])
    assert sorted(table.index) == sorted((m, s) for m in ("2026-01", "2026-02") for s in ("A", "B", "portfolio"))
    for key, figures in EXPECTED.items():
        for column, value in figures.items():
            assert table.loc[key, column] == pytest.approx(value), (key, column)


def test_patches_add_up_to_the_portfolio() -> None:
    table = collection_kpis(REGISTER, TRANSACTIONS)
    additive = ["rent_due", "collected", "current_tenancies", "current_arrears", "annual_rent_roll", "former_arrears",
                "written_off"]
    patches = table[table["scope"] != "portfolio"].groupby("month")[additive].sum()
    portfolio = table[table["scope"] == "portfolio"].set_index("month")[additive]
    pd.testing.assert_frame_equal(patches, portfolio, check_dtype=False)
