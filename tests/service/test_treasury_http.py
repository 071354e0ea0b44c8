"""The cash forecast over real HTTP (`POST /cash_forecast` and `/cash_forecast_csv` of a running `bentoml serve`),
fetched while the shared pipeline's server ran (tests/support/pipeline.py)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def treasury(pipeline: dict) -> dict:
    return pipeline["treasury"]


def test_the_forecast_is_typed_and_its_patches_add_up_to_the_portfolio(treasury, pipeline) -> None:
    answer = treasury["forecast"]
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["weeks"] == 13 and body["recorded"] and body["model_version"]
    assert body["tenancies"] == pipeline["everyone"]["population"]  # every live tenancy, no new lettings
    assert "new lettings" in body["covers"]
    rows = pd.DataFrame(body["rows"])
    assert rows["scope"].iloc[0] == "portfolio" and set(rows["week"]) == set(range(1, 14))
    assert (rows["p10"] <= rows["p50"]).all() and (rows["p50"] <= rows["p90"]).all()
    portfolio = rows[rows["scope"] == "portfolio"].set_index("week")
    patches = rows[rows["scope"] != "portfolio"]
    assert patches["scope"].nunique() > 1
    # the same simulations: the patches' expected receipts add up to the portfolio's, week by week
    pd.testing.assert_series_equal(patches.groupby("week")["mean"].sum(), portfolio["mean"], check_names=False,
                                   rtol=1e-9)
    # a band is not additive: the portfolio's is narrower than the patches' bands stacked
    stacked = patches.groupby("week")[["p10", "p90"]].sum()
    assert ((portfolio["p90"] - portfolio["p10"]) < (stacked["p90"] - stacked["p10"])).all()


def test_the_months_beside_the_weeks_add_up_and_name_their_rent_years(treasury) -> None:
    body = treasury["forecast"].json()
    months = pd.DataFrame(body["months"])
    portfolio = months[months["scope"] == "portfolio"].set_index("month")
    assert len(portfolio) in (12, 13) and portfolio["days"].between(1, 31).all()
    assert portfolio["charge_mondays"].between(0, 5).all() and (portfolio["p10"] <= portfolio["p90"]).all()
    patches = months[months["scope"] != "portfolio"].groupby("month")["mean"].sum()
    pd.testing.assert_series_equal(patches, portfolio["mean"], check_names=False, rtol=1e-6)  # pennies rounded
    assert body["rent_years"] and all(y["charge_weeks"] in (52, 53) for y in body["rent_years"])
    rows = pd.DataFrame(body["rows"])
    assert (rows["scheduled"] >= 0).all() and (rows["scheduled"] <= rows["mean"] + 0.01).all()
    assert len(body["blend_weights"]) in (0, 13) and all(0 <= w <= 1 for w in body["blend_weights"])


def test_an_april_rent_change_scales_the_months_after_it_and_is_not_recorded(treasury) -> None:
    answer = treasury["scenario"]
    assert answer.status_code == 200, answer.text
    body, today = answer.json(), treasury["forecast"].json()
    assert body["forecast_id"].endswith(":scenario") and not body["recorded"] and body["rent_change_pct"] == 10.0
    changes = pd.Timestamp(min(y["starts"] for y in body["rent_years"] if y["starts"] > body["as_of"]))
    after = pd.DataFrame(body["months"]).query("scope == 'portfolio'").set_index("month")["mean"]
    before = pd.DataFrame(today["months"]).query("scope == 'portfolio'").set_index("month")["mean"]
    month = pd.PeriodIndex(after.index, freq="M")
    # the same draws: months wholly before the rent year are as recorded, months wholly after it 10% up (pounds
    # to the penny, so within two pennies)
    assert np.allclose(after[month.end_time < changes], before[month.end_time < changes], rtol=0, atol=0.02)
    assert np.allclose(after[month.start_time > changes], 1.1 * before[month.start_time > changes], rtol=0,
                       atol=0.02)
    assert (month.start_time > changes).sum() >= 3 and (month.end_time < changes).sum() >= 3  # both are tested


def test_the_csv_is_the_same_forecast_for_one_patch(treasury, pipeline) -> None:
    answer = treasury["csv"]
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    csv = pd.read_csv(io.StringIO(answer.text))
    assert set(csv["scope"]) == {"portfolio", pipeline["patch"]}
    rows = pd.DataFrame(treasury["forecast"].json()["rows"])
    mine = rows[rows["scope"].isin(["portfolio", pipeline["patch"]])].reset_index(drop=True)
    pd.testing.assert_frame_equal(csv[mine.columns], mine.round(2), check_dtype=False, atol=0.006)
    assert (csv["as_of"] == treasury["forecast"].json()["as_of"]).all()


def test_an_unknown_patch_or_horizon_is_a_4xx_that_says_what_to_change(treasury) -> None:
    assert treasury["unknown_patch"].status_code == 404
    assert "the patches are" in treasury["unknown_patch"].text
    assert treasury["too_far"].status_code == 400 and "weeks" in treasury["too_far"].text


def test_the_openapi_spec_types_the_forecast(treasury) -> None:
    spec = treasury["openapi"].json()
    assert {"/cash_forecast", "/cash_forecast_csv"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    forecast = next(v for k, v in schemas.items() if k.startswith("CashForecastResponse"))
    assert {"as_of", "model_version", "rows", "covers"} <= set(forecast["properties"])
    assert {"mean", "p10", "p50", "p90", "week_start"} <= set(schemas["ForecastWeek"]["properties"])
    assert {"collection_rate", "days_rent_outstanding"} <= set(schemas["KpiRow"]["properties"])


def test_the_collection_kpis_are_a_plain_pandas_count_of_the_same_ledger(treasury, pipeline) -> None:
    from features.ledger import open_ledger
    from tests.support.treasury import plain_kpis

    answer = treasury["kpis"]
    assert answer.status_code == 200, answer.text
    rows = pd.DataFrame(answer.json()["rows"])
    with open_ledger(pipeline["settings"].ledger, read_only=True) as ledger:
        register, tx = ledger.read_table("tenancy_register"), ledger.read_table("transactions")
    tx = tx[tx["delivery_seq"] <= treasury["ledger_seq"]]  # the ledger as served (the fuzzer may approve a match)
    plain = plain_kpis(register.assign(rent=register["rent_amount_pence"] / 100),
                       tx.assign(amount=tx["amount_pence"] / 100)).set_index("month")
    served = rows[rows["scope"] == "portfolio"].set_index("month")[plain.columns]
    assert len(served) == len(plain) > 20 and served["rent_due"].gt(0).iloc[1:].all()  # the first month is partial
    pd.testing.assert_frame_equal(served, plain, check_dtype=False, rtol=1e-9, atol=1e-6)
    csv = pd.read_csv(io.StringIO(treasury["kpis_csv"].text))
    assert set(csv["scope"]) == {"portfolio", pipeline["patch"]} and csv["month"].nunique() == 3
