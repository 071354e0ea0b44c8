"""The cash forecast against what came in, from many weekly origins, out of sample: treasury's accuracy table.

    uv run python -m bench.cash_backtest --tenancies 1000 --seed 3 --origins 13

Simulates the portfolio (2 years ending 2026-10-31), delivers it up to the first origin, trains and promotes the
models there (the `retrain` job), then delivers the rest: every origin's forecast (`serving.treasury.forecast`, with
`as_of`) uses only the tenancies live then and their data as of then, with a model that has seen nothing after the
first origin. Each forecast week is set against the same tenancies' receipts (`monitoring.cash`) and the last-4-weeks
baseline. Prints, by weeks ahead, the WAPE of the forecast's mean and of the baseline and the P10-P90 coverage, for
the portfolio and the patches pooled; then month-start weeks against the others, each patch's coverage, and the
common factor the champion carries (estimated at training time from its own backtest over its validation and test
periods, before the first origin). `--home DIR` reuses a home built by an earlier run (or by the replay).
Not a test: a run takes some minutes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

from arrears.decisions import approve_recorded
from arrears.replay import deliver, exported
from arrears.schedule import run_job, schedule_settings
from monitoring.cash import accuracy_by_horizon, receipts_of
from monitoring.outcomes import read_outcome_ledger
from serving.settings import get_settings
from serving.treasury.forecast import forecast_now
from simulator import simulate_portfolio
from training import registry
from training.cash import month_start_weeks
from training.labels import daily_receipts
from training.promotion import TRAINED

END = pd.Timestamp("2026-10-31")


def build(home: Path, tenancies: int, seed: int, first_origin: pd.Timestamp, years: float = 2.0,
          shape: str = "weekly") -> None:
    portfolio = simulate_portfolio(n_tenancies=tenancies, years=years, seed=seed, end_date=END.date(), shape=shape)
    settings, schedule = schedule_settings()

    def job(name: str) -> None:
        record = run_job(settings, schedule, name)
        if record["status"] != "succeeded":
            raise SystemExit(f"{name} {record['status']}: {record.get('error')}")

    deliver(settings, exported(portfolio, first_origin), home.parent / "delivery_000", first_origin)
    job("refresh")
    job("retrain")
    if not settings.retrain_promotes:  # the challengers wait for a person: the bench stands for one who approves
        for model in TRAINED:
            approve_recorded(settings, model, reason="bench: the first models", actor="bench", role="data_scientist")
    deliver(settings, exported(portfolio, END, since=first_origin), home.parent / "delivery_001", END)
    job("refresh")


def backtest(origins: list[pd.Timestamp], weeks: int) -> pd.DataFrame:
    """One row per origin, scope and week: the forecast's band and mean, what came in, the baseline."""
    settings = get_settings()
    ledger = read_outcome_ledger(settings)
    daily = daily_receipts(ledger.transactions).assign(day=lambda f: pd.to_datetime(f["day"]))
    frames = []
    for k, origin in enumerate(origins):
        started = time.perf_counter()
        made = forecast_now(settings, weeks=weeks, as_of=origin, months=0)
        got = receipts_of(ledger.tenancies, daily, origin, weeks)
        frames.append(made.table.drop(columns=["as_of"]).merge(got, on=["scope", "week"]).assign(
            as_of=origin, matured=True, forecast_id=str(origin.date())))
        print(f"origin {k + 1}/{len(origins)} {origin.date()} ({time.perf_counter() - started:.0f} s)", flush=True)
    return pd.concat(frames, ignore_index=True)


def by_kind(table: pd.DataFrame) -> pd.DataFrame:
    """Coverage and WAPE (model, baseline) in month-start weeks and the others, for the portfolio and the patches
    pooled; and the range of the patches' own coverage."""
    rows = []
    for scope, part in (("portfolio", table[table["scope"] == "portfolio"]),
                        ("patches", table[table["scope"] != "portfolio"])):
        inside = (part["p10"] <= part["actual"]) & (part["actual"] <= part["p90"])
        month_start = month_start_weeks(part["week_start"])
        for kind, weeks in (("month-start", month_start), ("other", ~month_start), ("all", month_start | True)):
            got = part["actual"][weeks]
            rows.append({"scope": scope, "weeks": kind, "n": int(weeks.sum()), "coverage": inside[weeks].mean(),
                         "wape": (got - part["mean"][weeks]).abs().sum() / got.sum(),
                         "wape_baseline": (got - part["baseline"][weeks]).abs().sum() / got.sum()})
        if scope == "patches":
            each = inside.groupby(part["scope"]).mean()
            rows.append({"scope": "patches", "weeks": f"each patch: {each.min():.2f}-{each.max():.2f}",
                         "n": int(len(each))})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenancies", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--origins", type=int, default=13, help="Weekly origins, the last 13 weeks before the end.")
    parser.add_argument("--weeks", type=int, default=13)
    parser.add_argument("--years", type=float, default=2.0, help="Years of history the portfolio is simulated over.")
    parser.add_argument("--shape", choices=("weekly", "monthly_statement"), default="weekly",
                        help="The portfolio's shape (simulator.portfolio): a landlord's weekly feeds, or a letting "
                             "agent's monthly statement (every rent monthly on the 1st, no events feed).")
    parser.add_argument("--home", type=Path, default=None,
                        help="Reuse this ARREARS_HOME (built by an earlier run); built there when it does not exist.")
    parser.add_argument("--save", type=Path, default=None, help="Write the backtest's rows to this CSV.")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    last = END - pd.Timedelta(weeks=args.weeks)
    origins = [last - pd.Timedelta(weeks=k) for k in range(args.origins - 1, -1, -1)]
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        os.environ["ARREARS_HOME"] = str(home)
        if args.home is None or not home.exists():
            build(home, args.tenancies, args.seed, origins[0], args.years, args.shape)
        table = backtest(origins, args.weeks)
        if args.save is not None:
            table.to_csv(args.save, index=False)
        tags = registry.model_by_alias(get_settings(), registry.PAYMENT_MODEL, registry.CHAMPION).tags
    with pd.option_context("display.width", 200):
        print(f"\n{len(origins)} origins {origins[0].date()}..{origins[-1].date()}, {args.tenancies} tenancies, "
              f"{args.years:g} years, seed {args.seed}, {args.shape}")
        print("portfolio\n" + accuracy_by_horizon(table).round(3).to_string(index=False))
        print("patches (pooled)\n" + accuracy_by_horizon(table, portfolio_only=False).round(3).to_string(index=False))
        print("by kind of week\n" + by_kind(table).round(3).fillna("").to_string(index=False))
        print(f"common factor (log-scale sd): {tags.get('cash_common_factor', 'none')}")
        print(f"blend (weight of the simulation by week ahead): {tags.get('cash_blend', 'none')}")


if __name__ == "__main__":
    main()
