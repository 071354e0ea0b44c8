"""The web app's SVG charts (serving/web/charts.py): the geometry says what the figures say."""

from __future__ import annotations

import re

import pandas as pd

from serving.web import charts


def _points(path: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", path)]


def test_round_steps_and_money_labels() -> None:
    assert [charts.nice_step(v) for v in (0.7, 3, 12, 4_100, 0)] == [1, 5, 20, 5_000, 1.0]
    assert [charts.money(v) for v in (800, 35_200, 1_234_567)] == ["£800", "£35k", "£1.2m"]


def test_the_fan_charts_band_holds_its_median_and_higher_receipts_are_drawn_higher() -> None:
    weeks = pd.DataFrame({"week": [1, 2, 3], "week_start": ["2026-11-01", "2026-11-08", "2026-11-15"],
                          "mean": [110.0, 90.0, 100.0], "p10": [80.0, 70.0, 75.0], "p50": [100.0, 95.0, 98.0],
                          "p90": [140.0, 120.0, 130.0]})
    chart = charts.fan_chart(weeks)
    band, median = _points(chart.paths["band"]), _points(chart.paths["p50"])
    assert len(band) == 6 and len(median) == 3
    upper, lower = band[:3], band[3:][::-1]
    assert all(u[1] < m[1] < lo[1] for u, m, lo in zip(upper, median, lower, strict=True))  # SVG y grows downwards
    assert _points(chart.paths["mean"])[0][1] < _points(chart.paths["mean"])[1][1]  # 110 drawn above 90
    top_tick = min(chart.y_ticks)[1]
    assert top_tick == "£150" and [label for _, label in chart.x_ticks][:2] == ["1 Nov", "8 Nov"]


def test_the_statement_ends_at_the_balance_and_has_a_bar_per_week_with_receipts() -> None:
    postings = pd.DataFrame({
        "posted_date": pd.to_datetime(["2025-12-01", "2026-01-05", "2026-01-06", "2026-03-02", "2026-03-03"]),
        "type": ["charge", "charge", "payment", "charge", "benefit"],
        "amount_pence": [50_000, 50_000, -30_000, 50_000, -20_000]})  # balance £500, £1,000, £700, £1,200, £1,000
    chart = charts.statement_chart(postings, pd.Timestamp("2026-01-01"), pd.Timestamp("2026-04-01"))
    line = _points(chart.paths["balance"])
    ticks = dict((label, y) for y, label in chart.y_ticks)
    assert line[0][1] == ticks["£500"]  # carried in from before the window
    assert line[-1][1] == ticks["£1k"] and min(y for _, y in line) < ticks["£1k"]  # peaks at £1,200, ends at £1,000
    assert len(chart.bars) == 2 and chart.bars[0]["height"] > chart.bars[1]["height"]  # £300, then £200
    assert "£300.00 received" in chart.bars[0]["title"]
