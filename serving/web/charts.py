"""Charts for the web app's pages, drawn on the server as SVG geometry (no JavaScript, no chart library): the
treasury's fan chart and a tenancy's statement. Each function returns plain numbers and path strings for a template
to place; every chart sits beside a table of the same figures, which is what a screen reader reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 36, 16, 40


@dataclass
class Axis:
    """A linear map from data values to pixels, with round tick values."""

    lo: float
    hi: float
    start: float  #: the pixel of lo
    end: float  #: the pixel of hi

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo or 1.0
        return round(self.start + (value - self.lo) / span * (self.end - self.start), 1)

    def ticks(self, count: int = 4) -> list[float]:
        step = nice_step((self.hi - self.lo) / max(count, 1))
        first = math.ceil(self.lo / step) * step
        return [round(first + i * step, 6) for i in range(int((self.hi - first) / step + 1e-9) + 1)]


def nice_step(raw: float) -> float:
    """The round step (1, 2 or 5 times a power of ten) nearest above `raw`."""
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def money(value: float) -> str:
    """Pounds for an axis label: £1.2m, £35k, £800."""
    size = abs(value)
    if size >= 1e6:
        return f"£{value / 1e6:.1f}m"
    if size >= 1e3:
        return f"£{value / 1e3:.0f}k"
    return f"£{value:.0f}"


@dataclass
class Chart:
    width: int = WIDTH
    height: int = HEIGHT
    paths: dict[str, str] = field(default_factory=dict)  #: name → SVG path data
    bars: list[dict] = field(default_factory=list)  #: x, y, width, height, title
    y_ticks: list[tuple[float, str]] = field(default_factory=list)  #: pixel, label
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    zero: float | None = None  #: the pixel of 0 on the y axis, when it is in range


def _line(xs: list[float], ys: list[float]) -> str:
    return "M" + " L".join(f"{x},{y}" for x, y in zip(xs, ys, strict=True))


def _y_axis(lo: float, hi: float, top: float, bottom: float) -> Axis:
    step = nice_step((hi - lo) / 4 or 1.0)
    return Axis(math.floor(lo / step) * step, math.ceil(hi / step) * step or step, bottom, top)


def fan_chart(weeks: pd.DataFrame) -> Chart:
    """Expected receipts by week: the P10–P90 band, the P50 line and the mean (dashed), for one scope's rows
    (columns week, week_start, mean, p10, p50, p90)."""
    weeks = weeks.sort_values("week")
    chart = Chart()
    x = Axis(float(weeks["week"].min()), float(weeks["week"].max()), LEFT, WIDTH - RIGHT)
    y = _y_axis(0.0, float(weeks["p90"].max()) * 1.05, TOP, HEIGHT - BOTTOM)
    xs = [x(w) for w in weeks["week"]]
    upper, lower = [y(v) for v in weeks["p90"]], [y(v) for v in weeks["p10"]]
    chart.paths["band"] = _line(xs + xs[::-1], upper + lower[::-1]) + " Z"
    chart.paths["p50"] = _line(xs, [y(v) for v in weeks["p50"]])
    chart.paths["mean"] = _line(xs, [y(v) for v in weeks["mean"]])
    chart.y_ticks = [(y(t), money(t)) for t in y.ticks()]
    starts = pd.to_datetime(weeks["week_start"])
    every = max(1, len(weeks) // 7)
    chart.x_ticks = [(xs[i], starts.iloc[i].strftime("%-d %b")) for i in range(0, len(weeks), every)]
    return chart


def statement_chart(transactions: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> Chart:
    """A tenancy's balance over time (a step line; above zero is arrears) and what it paid each week (bars in a strip
    below), from its transactions (posted_date, type, amount_pence; charges positive, receipts negative)."""
    chart = Chart(height=HEIGHT + 70)
    ordered = transactions.sort_values("posted_date")
    running = ordered.assign(balance=ordered["amount_pence"].cumsum() / 100)
    daily = running.groupby("posted_date")["balance"].last()
    before = daily[daily.index < start]
    shown = pd.concat([pd.Series([before.iloc[-1] if len(before) else 0.0], index=[start]),
                       daily[(daily.index >= start) & (daily.index <= end)]])
    shown = pd.concat([shown, pd.Series([shown.iloc[-1]], index=[end])])
    x = Axis(0.0, float((end - start).days) or 1.0, LEFT, WIDTH - RIGHT)
    y = _y_axis(min(0.0, float(shown.min())), max(1.0, float(shown.max())), TOP, HEIGHT - BOTTOM - 40)
    points_x, points_y = [], []
    for when, balance in shown.items():  # a step line: the balance holds until the next posting
        px = x(float((when - start).days))
        if points_y:
            points_x.append(px)
            points_y.append(points_y[-1])
        points_x.append(px)
        points_y.append(y(balance))
    chart.paths["balance"] = _line(points_x, points_y)
    chart.zero = y(0.0)
    chart.y_ticks = [(y(t), money(t)) for t in y.ticks()]
    chart.bars = _receipt_bars(ordered, start, end, x, strip_top=HEIGHT - BOTTOM + 8, strip_bottom=HEIGHT + 40)
    chart.x_ticks = [(x(float((m - start).days)), m.strftime("%b %y"))
                     for m in pd.date_range(start, end, freq="MS")][::2]
    return chart


def _receipt_bars(transactions: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, x: Axis, strip_top: float,
                  strip_bottom: float) -> list[dict]:
    """One bar per week with receipts (payments and benefit credits), height by amount, in a strip of its own."""
    received = transactions[transactions["type"].isin(["payment", "benefit"]) &
                            transactions["posted_date"].between(start, end)]
    if received.empty:
        return []
    weekly = (-received["amount_pence"] / 100).groupby(received["posted_date"].dt.to_period("W-SUN")).sum()
    tallest = float(weekly.max()) or 1.0
    bars = []
    for week, amount in weekly.items():
        left = x(float((week.start_time - start).days))
        height = round(max(1.0, amount / tallest * (strip_bottom - strip_top)), 1)
        bars.append({"x": left, "y": round(strip_bottom - height, 1), "width": max(2.0, round(x(7.0) - x(0.0) - 1, 1)),
                     "height": height, "title": f"week of {week.start_time:%-d %b %Y}: £{amount:,.2f} received"})
    return bars


@dataclass
class IntervalChart:
    """Estimates with their intervals, one row each (a forest plot): `rows` hold label, y, low, high and point
    pixels and a title in words; `zero` is the pixel of no effect on the x axis."""

    width: int = WIDTH
    height: int = HEIGHT
    label_right: int = 200  #: row labels end here (right-aligned), the plot starts after
    rows: list[dict] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    zero: float | None = None


def effect_words(value: float, unit: str) -> str:
    """An effect in its unit: pounds (+£12.30), or a difference in shares as percentage points (+3.1 points)."""
    if unit == "pounds":
        return f"{'+' if value >= 0 else '-'}£{abs(value):,.2f}"
    return f"{value * 100:+.1f} points"


def interval_chart(estimates: list[dict], unit: str) -> IntervalChart:
    """Each estimate (label, effect, low, high; the overall last, marked `overall`) as a dot on its interval's
    line, against a vertical line at zero (no effect), on one x axis in the outcome's unit."""
    shown = [e for e in estimates if e.get("low") is not None and e.get("high") is not None]
    chart = IntervalChart(height=TOP + 30 * max(len(shown), 1) + BOTTOM)
    if not shown:
        return chart
    lo = min(0.0, *(float(e["low"]) for e in shown))
    hi = max(0.0, *(float(e["high"]) for e in shown))
    step = nice_step((hi - lo) / 4 or 1.0)
    x = Axis(math.floor(lo / step) * step, math.ceil(hi / step) * step or step, chart.label_right + 10,
             WIDTH - RIGHT)
    for i, e in enumerate(shown):
        words = (f"{e['label']}: {effect_words(float(e['effect']), unit)}, interval "
                 f"{effect_words(float(e['low']), unit)} to {effect_words(float(e['high']), unit)}")
        chart.rows.append({"label": e["label"], "y": TOP + 30 * i + 15, "low": x(float(e["low"])),
                           "high": x(float(e["high"])), "point": x(float(e["effect"])),
                           "overall": bool(e.get("overall")), "title": words})
    chart.zero = x(0.0)
    chart.x_ticks = [(x(t), "0" if t == 0 else effect_words(t, unit).replace(" points", "")) for t in x.ticks()]
    return chart


def level_words(value: float | None, unit: str) -> str:
    """A mean in its unit: pounds (£-12.30: a fall in arrears is negative), or a share as a percentage."""
    if value is None:
        return "–"
    return f"£{value:,.2f}" if unit == "pounds" else f"{value:.1%}"
