"""Experiments, uplift and the treatment-aware retrain, replayed in the causal world (`arrears.impact`; issue 29).

    uv run python -m bench.experiments                      # all three studies at the issue's sizes
    uv run python -m bench.experiments --study coverage --portfolios 20
    uv run python -m bench.experiments --study policies --seeds 10 --weeks 12
    uv run python -m bench.experiments --study retrain --seeds 3 --weeks 26
    uv run python -m bench.experiments --tiny               # every study at a tiny size (the smoke test)

Not timings: what the studies find, printed as tables and written with `--json`. Each figure is over seeds (fixed),
so a run repeats exactly. bench/README.md holds the figures of the last full run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from arrears import impact


def coverage(portfolios: int, tenancies: int) -> dict:
    table = impact.coverage_study(range(portfolios), tenancies=tenancies)
    print(table.round(3).to_string(index=False))
    found = {"portfolios": portfolios, "covered": int(table["covers"].sum()),
             "max_abs_smd": float(table["max_abs_smd"].max()),
             "mean_variance_reduction": float(1 - (table["se"] ** 2 / table["unadjusted_se"] ** 2).mean())}
    print(f"\ninterval covers the true effect in {found['covered']} of {portfolios}; largest |standardised "
          f"difference| on any pre-period feature {found['max_abs_smd']:.3f}")
    return found


def policies(seeds: int, weeks: int, tenancies: int, capacity: int, pilots: int) -> dict:
    uplift = impact.train_uplift(tuple(1001 + k for k in range(pilots)), tenancies=tenancies)
    table = impact.policy_study(range(seeds), uplift, tenancies=tenancies, weeks=weeks, capacity=capacity)
    summary = table.groupby("policy")[["incremental_pounds", "arrangements", "contacts"]].agg(["mean", "std"])
    print(summary.round(0).to_string())
    gain_vs_risk = impact.paired_interval(table, "gain", "risk")
    wide = table.pivot(index="seed", columns="policy", values="incremental_pounds")
    share = (wide["gain"] / wide["ceiling"]).to_numpy()
    found = {"seeds": seeds, "weeks": weeks, "capacity_per_patch": capacity,
             "mean_incremental_pounds": table.groupby("policy")["incremental_pounds"].mean().round(0).to_dict(),
             "gain_minus_risk": gain_vs_risk, "uplift_share_of_ceiling": float(share.mean()),
             "uplift_share_of_ceiling_min": float(share.min())}
    print(f"\nexpected-gain minus risk order: £{gain_vs_risk['difference']:,.0f} over {weeks} weeks (95% interval "
          f"over {seeds} seeds £{gain_vs_risk['low']:,.0f} to £{gain_vs_risk['high']:,.0f}); the uplift model "
          f"collects {share.mean():.0%} of the ceiling's incremental pounds (lowest seed {share.min():.0%})")
    return found


def retrain(seeds: int, weeks: int, tenancies: int, capacity: int) -> dict:
    table = impact.retrain_study(range(seeds), tenancies=tenancies, weeks=weeks, capacity=capacity)
    by_week = table.groupby(["week", "mode"])["auc_untreated"].mean().unstack()
    print(by_week.round(3).to_string())
    first, last = by_week.iloc[0], by_week.iloc[-1]
    found = {"seeds": seeds, "weeks": weeks, "auc_by_week": {m: by_week[m].round(4).tolist() for m in by_week},
             "naive_change": float(last["naive"] - first["naive"]),
             "aware_change": float(last["aware"] - first["aware"])}
    print(f"\nAUC on untreated outcomes, first model to last retrain: naive {found['naive_change']:+.3f}, "
          f"treatment-aware {found['aware_change']:+.3f}")
    return found


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", choices=("all", "coverage", "policies", "retrain"), default="all")
    parser.add_argument("--portfolios", type=int, default=20, help="coverage: simulated portfolios (default 20)")
    parser.add_argument("--seeds", type=int, default=10, help="policies: seeds (default 10); retrain uses 3")
    parser.add_argument("--weeks", type=int, default=0, help="weeks replayed (default 12 policies, 26 retrain)")
    parser.add_argument("--tenancies", type=int, default=0,
                        help="tenancies a portfolio (default 10,000 coverage, 6,000 the others)")
    parser.add_argument("--tiny", action="store_true", help="every study at a tiny size (checks it runs)")
    parser.add_argument("--json", type=Path, help="also write the findings to this JSON file")
    args = parser.parse_args(argv)
    tiny = args.tiny
    found: dict = {}
    started = time.perf_counter()
    if args.study in ("all", "coverage"):
        print("## coverage: 95% intervals against known effects\n")
        found["coverage"] = coverage(3 if tiny else args.portfolios, 2000 if tiny else args.tenancies or 10_000)
    if args.study in ("all", "policies"):
        print("\n## policies: incremental pounds at equal capacity\n")
        found["policies"] = policies(3 if tiny else args.seeds, 4 if tiny else args.weeks or 12,
                                     1500 if tiny else args.tenancies or 6000, 5 if tiny else 15, 1 if tiny else 3)
    if args.study in ("all", "retrain"):
        print("\n## retrain: AUC on untreated outcomes, naive vs treatment-aware\n")
        found["retrain"] = retrain(1 if tiny else min(args.seeds, 3), 8 if tiny else args.weeks or 26,
                                   1500 if tiny else args.tenancies or 6000, 10 if tiny else 40)
    print(f"\n({time.perf_counter() - started:,.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(found, indent=2, default=float))
    return found


if __name__ == "__main__":
    pd.set_option("display.width", 160)
    main()
