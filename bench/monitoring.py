"""Monitoring against a known truth: 26 simulated weeks through the schedule's jobs, with and without a change.

    uv run python -m bench.monitoring --scenario none  --tenancies 1000 --weeks 26 --seed 3
    uv run python -m bench.monitoring --scenario shift --tenancies 1000 --weeks 26 --seed 3
    uv run python -m bench.monitoring --scenario group --tenancies 1000 --weeks 26 --seed 3

Simulates the portfolio (2 years ending 2026-10-31; the replay starts `--weeks` weeks before the end), delivers it
week by week and runs `refresh`, `drift`, `bias` and `performance` after each delivery through the scheduler's own
`run_job` (`arrears.replay`), in a temporary home on the embedded defaults. Scenarios inject, from week
`--change-week` of the replay:
- none: nothing (every alert is a false alarm);
- shift: Universal Credit paid to the landlord 28 days late for every UC tenancy (a DWP processing failure);
- group: tenants recorded as `ethnicity=asian` miss each scheduled payment with an extra probability of 0.5.
Prints one row a week (drift share, score PSI, alerts, groups the bias report flags, matured AUC) and a summary:
the share of weeks with each alert before and after the change, and the first week the drift alert fired.
Not a test: one scenario takes 10-20 minutes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

from arrears.replay import replay
from arrears.schedule import schedule_settings
from simulator import parse_change, simulate_portfolio

END = pd.Timestamp("2026-10-31")
SCENARIOS = {"none": [], "shift": ["benefit_delay:{day}:benefit_type=universal_credit:size=28"],
             "group": ["group_payment_drop:{day}:ethnicity=asian:size=0.5"]}


def run(scenario: str, tenancies: int, weeks: int, seed: int, change_week: int) -> pd.DataFrame:
    start = END - pd.Timedelta(weeks=weeks)
    change_day = start + pd.Timedelta(weeks=change_week)
    changes = [parse_change(spec.format(day=change_day.date())) for spec in SCENARIOS[scenario]]
    portfolio = simulate_portfolio(n_tenancies=tenancies, years=2.0, seed=seed, end_date=END.date(), changes=changes)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ARREARS_HOME"] = str(Path(tmp) / "home")
        settings, schedule = schedule_settings()
        started = time.perf_counter()
        return replay(settings, schedule, portfolio, Path(tmp), start, weeks, progress=lambda week, row: print(
            f"week {week:2d} {row['as_of']} drift {row['drift_share']:.2f} psi {row['score_psi']:.3f} "
            f"groups {' '.join(f'{k}:{v[0]:.2f}/{v[1]:.2f}' for k, v in row['segments'].items())} alerts "
            f"{','.join(row['alerts']) or '-'} flagged {','.join(row['flagged_groups']) or '-'} "
            f"({time.perf_counter() - started:.0f} s)", flush=True))


def summary(table: pd.DataFrame, change_week: int) -> str:
    after = table["week"] >= change_week
    lines = []
    for kind in ("feature_drift", "score_drift", "segment_drift", "bias", "performance_drop", "precision_shortfall"):
        fired = table["alerts"].map(lambda alerts, k=kind: k in alerts)
        lines.append(f"{kind:<20} weeks before the change {fired[~after].sum()}/{(~after).sum()}, "
                     f"from it {fired[after].sum()}/{after.sum()}")
    drift = table["alerts"].map(lambda a: bool({"feature_drift", "score_drift", "segment_drift"} & set(a)))
    first = table.loc[after & drift, "week"]
    lines.append(f"first drift alert from the change: {'none' if first.empty else f'week {first.iloc[0]}'} "
                 f"(change in week {change_week})")
    named = sorted({g for groups in table.loc[after, "flagged_groups"] for g in groups})
    lines.append(f"groups the bias report named from the change: {', '.join(named) or 'none'}")
    if "matured_auc" in table:
        auc = table[["week", "matured_auc", "matured_auc_balance_baseline", "matured_as_of"]].dropna()
        lines.append("matured AUC by week (model / balance): " + "; ".join(
            f"w{int(r.week)} {r.matured_auc:.3f}/{r.matured_auc_balance_baseline:.3f} (run {r.matured_as_of})"
            for r in auc.itertuples()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="none")
    parser.add_argument("--tenancies", type=int, default=1000)
    parser.add_argument("--weeks", type=int, default=26)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--change-week", type=int, default=10, help="Replay week the change starts in.")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    table = run(args.scenario, args.tenancies, args.weeks, args.seed, args.change_week)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.drop(columns=["latest_as_of"], errors="ignore").to_string(index=False))
    print(summary(table, args.change_week))


if __name__ == "__main__":
    main()
