"""Properties of ingestion for any order of deliveries, on both ledger backends (hypothesis)."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.feeds.ingest import ingest_delivery
from features.ledger import open_ledger
from tests.support.postgres import create_schema, drop_schema

TENANCY_IDS = ["T1", "T2", "T3"]
SIGN = {"charge": 1, "fee": 1, "refund": 1, "payment": -1, "benefit": -1, "write_off": -1}

transaction = st.tuples(
    st.sampled_from(TENANCY_IDS),
    st.sampled_from(sorted(SIGN)),
    st.integers(min_value=1, max_value=500_000),  # pence
    st.integers(min_value=0, max_value=400),  # day offset
)


def new_ledger_url(backend: str, folder: Path) -> tuple[str, str | None]:
    if backend == "duckdb":
        return f"duckdb:///{folder / f'{uuid.uuid4().hex}.duckdb'}", None
    return create_schema("p")


@pytest.mark.parametrize("backend", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(transaction, min_size=1, max_size=30),
    cuts=st.lists(st.integers(0, 30), max_size=3),
    order=st.randoms(use_true_random=False),
    resend=st.integers(min_value=0, max_value=3),
)
def test_balances_are_signed_sums_whatever_the_order(backend, rows, cuts, order, resend) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        frame = pd.DataFrame(rows, columns=["tenancy_id", "type", "pence", "day"])
        frame["transaction_id"] = [f"X{i}" for i in range(len(frame))]
        frame["posted_date"] = (pd.Timestamp("2024-01-01") + pd.to_timedelta(frame["day"], unit="D")).dt.strftime(
            "%Y-%m-%d")
        frame["amount"] = (frame["pence"] * frame["type"].map(SIGN) / 100).map(lambda v: f"{v:.2f}")
        tenancies = pd.DataFrame({"tenancy_id": TENANCY_IDS, "patch": "P", "start_date": "2023-01-01",
                                  "end_date": "", "rent_amount": "100", "rent_frequency": "weekly"})
        bounds = sorted({0, len(frame), *[min(c, len(frame)) for c in cuts]})
        deliveries = []
        for k, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False)):
            path = folder / f"d{k}"
            path.mkdir()
            frame.iloc[lo:hi][["transaction_id", "tenancy_id", "posted_date", "type", "amount"]].to_csv(
                path / "transactions.csv", index=False)
            deliveries.append(path)
        order.shuffle(deliveries)
        first = folder / "tenancies"
        first.mkdir()
        tenancies.to_csv(first / "tenancies.csv", index=False)

        url, schema = new_ledger_url(backend, folder)
        try:
            with open_ledger(url) as ledger:
                ingest_delivery(ledger, first, folder / "q")
                for path in deliveries:
                    ingest_delivery(ledger, path, folder / "q")
                expected = frame.assign(signed=frame["pence"] * frame["type"].map(SIGN)).groupby("tenancy_id")[
                    "signed"].sum()
                balances = ledger.balances().set_index("tenancy_id")["balance_pence"]
                assert balances.to_dict() == expected.to_dict()
                for path in deliveries[:resend]:  # re-sending changes nothing
                    summary = ingest_delivery(ledger, path, folder / "q")  # the last one again: recognised
                    assert summary.already_ingested or summary.feeds["transactions"].accepted == 0
                assert ledger.balances().set_index("tenancy_id")["balance_pence"].to_dict() == expected.to_dict()
        finally:
            drop_schema(schema)
