"""How the recorded cash forecasts did: each forecast week set against the receipts that then came in.

Every forecast kept in the history (`serving.treasury.history`, recorded by the nightly `refresh` job and by `arrears
forecast`) covers the tenancies live on its date (no new lettings). Once the ledger holds a whole forecast week,
that week has **matured**: its actual receipts are those tenancies' receipts on the week's seven days (payments and
benefit credits, less reversals: `training.labels.daily_receipts`), per patch and for the portfolio. Beside each
week stands the baseline a finance team would otherwise use: the same tenancies' average weekly receipts over the
four weeks before the forecast date.

By horizon (weeks ahead), over matured weeks: **WAPE** = sum |actual − forecast mean| / sum actual (the model's,
then the baseline's), and **P10–P90 coverage**, the share of weeks whose actual fell inside the band (about 0.8
for an honest band).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from features.timeline import live_at
from monitoring.outcomes import OutcomeLedger, read_outcome_ledger
from monitoring.performance import html_cell
from serving.settings import ServingSettings
from serving.treasury.history import open_forecasts
from training.labels import daily_receipts

ACCURACY_COLUMNS = ["forecast_id", "as_of", "model_version", "scope", "week", "week_start", "matured", "actual",
                    "baseline", "mean", "p10", "p50", "p90"]


def receipts_of(register: pd.DataFrame, daily: pd.DataFrame, as_of: pd.Timestamp, weeks: int) -> pd.DataFrame:
    """(scope, week, actual, baseline) for the tenancies live on `as_of`: receipts in each forecast week and the
    four weeks' average before it, per patch and for the portfolio."""
    live = register[live_at(register, pd.DatetimeIndex([as_of]))[:, 0]]
    patch = live.set_index("tenancy_id")["patch"].astype(str)
    mine = daily[daily["tenancy_id"].isin(patch.index)]
    days = (mine["day"] - as_of).dt.days
    ahead = mine[(days > 0) & (days <= 7 * weeks)].assign(week=lambda f: (f["day"] - as_of).dt.days.sub(1) // 7 + 1)
    before = mine[(days > -28) & (days <= 0)]
    frames = []
    for scope, members in [("portfolio", patch.index), *patch.groupby(patch).groups.items()]:
        got = ahead[ahead["tenancy_id"].isin(members)].groupby("week")["amount_pence"].sum() / 100.0
        base = before[before["tenancy_id"].isin(members)]["amount_pence"].sum() / 100.0 / 4
        frames.append(pd.DataFrame({"scope": str(scope), "week": np.arange(1, weeks + 1),
                                    "actual": got.reindex(np.arange(1, weeks + 1), fill_value=0.0).to_numpy(),
                                    "baseline": base}))
    return pd.concat(frames, ignore_index=True)


def forecast_accuracy(settings: ServingSettings, ledger: OutcomeLedger | None = None) -> pd.DataFrame:
    """One row per recorded forecast, scope and week: its band, whether the week has matured, and (when it has)
    what came in and the baseline. Empty when no forecast is recorded. `ledger`: the ledger as already read by the
    caller (read here otherwise)."""
    with open_forecasts(settings) as store:
        runs, weeks = store.runs(), store.weeks()
    if runs.empty:
        return pd.DataFrame(columns=ACCURACY_COLUMNS)
    ledger = ledger or read_outcome_ledger(settings)
    end = pd.Timestamp(ledger.end)
    daily = daily_receipts(ledger.transactions).assign(day=lambda f: pd.to_datetime(f["day"]))
    frames = []
    for run in runs.itertuples():
        as_of = pd.Timestamp(run.as_of).normalize()
        got = receipts_of(ledger.tenancies, daily, as_of, int(run.weeks))
        band = weeks[weeks["forecast_id"] == run.forecast_id]
        joined = band.merge(got, on=["scope", "week"], how="left")
        matured = (as_of + pd.to_timedelta(7 * joined["week"], unit="D")) <= end
        frames.append(joined.assign(as_of=as_of, model_version=run.model_version, matured=matured.to_numpy()))
    table = pd.concat(frames, ignore_index=True)[ACCURACY_COLUMNS]
    table.loc[~table["matured"], ["actual", "baseline"]] = np.nan
    return table


def accuracy_by_horizon(table: pd.DataFrame, portfolio_only: bool = True) -> pd.DataFrame:
    """WAPE (model and baseline) and P10–P90 coverage by weeks ahead over the matured weeks; the portfolio alone,
    or every patch pooled (`portfolio_only=False`)."""
    done = table[table["matured"].astype(bool)]
    done = done[(done["scope"] == "portfolio") if portfolio_only else (done["scope"] != "portfolio")]
    rows = []
    for week, part in done.groupby("week"):
        total = part["actual"].abs().sum()
        inside = (part["p10"] <= part["actual"]) & (part["actual"] <= part["p90"])
        rows.append({"week": int(week), "weeks_judged": len(part),
                     "wape": float((part["actual"] - part["mean"]).abs().sum() / total) if total else np.nan,
                     "wape_baseline": float((part["actual"] - part["baseline"]).abs().sum() / total)
                     if total else np.nan, "p10_p90_coverage": float(inside.mean())})
    return pd.DataFrame(rows, columns=["week", "weeks_judged", "wape", "wape_baseline", "p10_p90_coverage"])


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html_cell(c, v)}</td>" for c, v in zip(frame.columns, row, strict=True))
                   + "</tr>" for row in frame.itertuples(index=False))
    return f"<table><tr>{head}</tr>{body}</table>"


def write_cash_report(table: pd.DataFrame, out_dir: Path, name: str = "cash_forecast_accuracy") -> tuple[Path, Path]:
    """`name.json` (every forecast week, matured or not: no tenancy ids) and `name.html` (accuracy by horizon, the
    portfolio and the patches pooled). Returns (html, json)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, json_path = out_dir / f"{name}.html", out_dir / f"{name}.json"
    dated = table.assign(as_of=pd.to_datetime(table["as_of"]).dt.strftime("%Y-%m-%d"),
                         week_start=pd.to_datetime(table["week_start"]).dt.strftime("%Y-%m-%d"))
    json_path.write_text(json.dumps(json.loads(dated.to_json(orient="records")), indent=1))
    forecasts = table["forecast_id"].nunique()
    style = ("body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}")
    html_path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>Cash forecast accuracy</title><style>{style}</style>"
        f"</head><body><h1>Cash forecast accuracy by weeks ahead</h1><p>{forecasts} recorded forecasts; "
        f"{int(table['matured'].astype(bool).sum())} forecast weeks have matured (the ledger holds all seven days). "
        "WAPE is sum |actual − forecast| / sum actual; the baseline is the same tenancies' average week over the "
        "four weeks before the forecast date; coverage is the share of matured weeks inside P10–P90 (about 0.8 "
        "for an honest band). The forecast covers the tenancies live on its date: new lettings are not in it, "
        "and are not in the actuals either.</p><h2>Portfolio</h2>"
        f"{_html_table(accuracy_by_horizon(table))}<h2>Patches (pooled)</h2>"
        f"{_html_table(accuracy_by_horizon(table, portfolio_only=False))}</body></html>")
    return html_path, json_path
