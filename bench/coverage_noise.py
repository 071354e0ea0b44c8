"""How far one backtest run's P10-P90 coverage strays from 0.80 by chance alone (`python -m bench.coverage_noise`).

`bench.cash_backtest` judges 13 weekly origins, each on the 13 weeks that follow: 169 (origin, week) rows, but only
25 distinct calendar weeks, and the rows of one week share most of its error (what moves the whole portfolio that
week). Its coverage is therefore a mean over about 25 correlated draws, not 169 independent ones; and the band's
width was itself estimated at training time from a few distinct weeks (`training.cash.CommonFactor`). This Monte
Carlo asks what coverage such a run shows when the forecast is as right as it can be: each calendar week's log
error is the common factor (standard normal, optionally AR(1) across weeks with `--rho`) plus each row's own smaller
noise (`--own`, relative to the factor); the band is +-1.2816 times the spread, either the true one or one
estimated, like the training backtest's, from `--training-weeks` distinct weeks of the same process. Printed: the
mean and standard deviation of the run's coverage, and how often it falls inside 0.75-0.85 (one run, six runs at
once, and a shape's three seeds pooled).

Assumptions: normal errors, one kind of week (the service estimates month-start weeks and the others apart, each
from fewer weeks, so the real estimate is noisier than this one's). Nothing here is asserted.
"""

from __future__ import annotations

import argparse

import numpy as np

Z90 = 1.2815515655446004
GOAL = (0.75, 0.85)


def common_errors(rng: np.random.Generator, runs: int, weeks: int, rho: float) -> np.ndarray:
    """(runs, weeks) standard normal errors, AR(1) with correlation `rho` from one week to the next."""
    shocks = rng.standard_normal((runs, weeks))
    if rho == 0:
        return shocks
    out = np.empty_like(shocks)
    out[:, 0] = shocks[:, 0]
    for k in range(1, weeks):
        out[:, k] = rho * out[:, k - 1] + np.sqrt(1 - rho**2) * shocks[:, k]
    return out


def estimated_spread(rng: np.random.Generator, runs: int, weeks: int | None, rho: float) -> np.ndarray:
    """Each run's spread as the training backtest would estimate it from `weeks` distinct weeks (around their own
    mean, as the level is estimated too); exactly 1 when `weeks` is None."""
    if weeks is None:
        return np.ones(runs)
    seen = common_errors(rng, runs, weeks, rho)
    return seen.std(axis=1, ddof=1)


def coverages(rng: np.random.Generator, runs: int, origins: int, horizon: int, training_weeks: int | None,
              rho: float, own: float) -> np.ndarray:
    """Coverage of `runs` simulated backtest runs of `origins` weekly origins x `horizon` weeks."""
    calendar = origins + horizon - 1
    week = (np.arange(origins)[:, None] + np.arange(horizon)[None, :]).ravel()
    error = common_errors(rng, runs, calendar, rho)[:, week] + own * rng.standard_normal((runs, week.size))
    band = Z90 * np.sqrt(estimated_spread(rng, runs, training_weeks, rho) ** 2 + own**2)
    return (np.abs(error) <= band[:, None]).mean(axis=1)


def table(origins: list[int], training_weeks: list[int | None], horizon: int, rho: float, own: float, runs: int,
          seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for n in origins:
        for weeks in training_weeks:
            one = coverages(rng, runs, n, horizon, weeks, rho, own)
            pooled = coverages(rng, runs * 3, n, horizon, weeks, rho, own).reshape(runs, 3).mean(axis=1)
            inside = float(((one >= GOAL[0]) & (one <= GOAL[1])).mean())
            out.append({"origins": n, "training_weeks": weeks or "known", "mean": float(one.mean()),
                        "sd": float(one.std()), "inside": inside, "all_six": inside**6,
                        "pooled_inside": float(((pooled >= GOAL[0]) & (pooled <= GOAL[1])).mean())})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--origins", type=int, nargs="+", default=[13, 52],
                        help="Weekly origins a bench run judges (bench.cash_backtest --origins).")
    parser.add_argument("--training-weeks", type=int, nargs="+", default=[0, 20, 30],
                        help="Distinct weeks the band's spread is estimated from; 0: the true spread.")
    parser.add_argument("--horizon", type=int, default=13)
    parser.add_argument("--rho", type=float, default=0.0, help="Week-to-week correlation of the common error.")
    parser.add_argument("--own", type=float, default=0.3,
                        help="Each row's own noise, as a share of the common factor's spread.")
    parser.add_argument("--runs", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = table(args.origins, [w or None for w in args.training_weeks], args.horizon, args.rho, args.own,
                 args.runs, args.seed)
    print(f"coverage of one backtest run by chance alone (a forecast as right as it can be; {args.runs:,} runs, "
          f"rho {args.rho:g}, own noise {args.own:g})")
    print(f"{'origins':>8} {'spread from':>12} {'mean':>6} {'sd':>6} {'in 0.75-0.85':>13} {'all six':>8} "
          f"{'3 seeds pooled':>15}")
    for r in rows:
        spread = "known" if r["training_weeks"] == "known" else f"{r['training_weeks']} weeks"
        print(f"{r['origins']:>8} {spread:>12} {r['mean']:6.3f} {r['sd']:6.3f} {r['inside']:13.2f} "
              f"{r['all_six']:8.3f} {r['pooled_inside']:15.2f}")


if __name__ == "__main__":
    main()
