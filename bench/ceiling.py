"""Model, baselines and ceiling side by side on a simulated portfolio of either shape.

    uv run python -m bench.ceiling --shape weekly --tenancies 3000 --seed 42
    uv run python -m bench.ceiling --shape monthly_statement --tenancies 3000 --seed 42

Simulates the portfolio (2 years), ingests it, builds the features and trains both models with the simulator's
truth (`training.ceiling`) in a temporary home, then prints one table: the risk model, highest-balance-first, the
stage list and the ceiling (AUC, precision and arrears growth captured at capacity, the model's share of the
achievable lift over balance-first), and the payment-date model's P50 MAE and P10–P90 coverage against the
tenant's own habit and the ceiling. The figures are the ones logged to MLflow with each version. Not a test.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

from features.feeds.ingest import ingest_delivery
from features.ledger import open_ledger
from features.settings import load_settings
from features.store.refresh import refresh
from serving.settings import get_settings
from simulator import simulate_portfolio, write_portfolio
from training.train import train_payment_model, train_risk_model


def _home(home: Path) -> None:
    """This process's state in a fresh home, on the embedded defaults whatever the shell says."""
    os.environ["ARREARS_HOME"] = str(home)
    for name in ("ARREARS_LEDGER_URL", "ARREARS_MLFLOW_TRACKING_URI", "ARREARS_FEAST_PROFILE",
                 "ARREARS_FEAST_POSTGRES_URL", "ARREARS_FEAST_PROJECT", "ARREARS_DASK_SCHEDULER"):
        os.environ.pop(name, None)
    load_settings.cache_clear()


def measure(shape: str, tenancies: int, seed: int, years: float = 2.0) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = Path(tmp)
        _home(root / "home")
        settings = get_settings()
        write_portfolio(simulate_portfolio(n_tenancies=tenancies, years=years, seed=seed, shape=shape),
                        root / "feeds")
        with open_ledger(settings.ledger) as ledger:
            ingest_delivery(ledger, root / "feeds", root / "quarantine")
        refresh(settings)
        started = time.perf_counter()
        risk = train_risk_model(settings, truth=root / "feeds_truth").metrics
        payment = train_payment_model(settings, truth=root / "feeds_truth").metrics
        return {**risk, **{f"payment_{k}": v for k, v in payment.items()},
                "train_seconds": time.perf_counter() - started}


def table(shape: str, m: dict[str, float]) -> str:
    rows = [("model", ""), ("highest balance", "_balance_baseline"), ("stage list", "_rule_baseline")]
    lines = [f"{shape}: risk model (test weeks)",
             f"{'':18}{'AUC':>8}{'precision@cap':>15}{'captured@cap':>14}"]
    for label, suffix in rows:
        lines.append(f"{label:18}{m[f'auc{suffix}']:>8.3f}{m[f'precision_at_capacity{suffix}']:>15.3f}"
                     f"{m[f'captured_at_capacity{suffix}']:>14.3f}")
    lines.append(f"{'ceiling':18}{m['ceiling_auc']:>8.3f}{m['ceiling_precision_at_capacity']:>15.3f}"
                 f"{m['ceiling_captured_at_capacity']:>14.3f}")
    lines.append(f"share of the achievable lift over balance-first: precision "
                 f"{m['ceiling_share_of_lift_precision_at_capacity']:.0%}, captured "
                 f"{m['ceiling_share_of_lift_captured_at_capacity']:.0%}; precision "
                 f"{m['precision_at_capacity'] / m['precision_at_capacity_balance_baseline']:.2f}x balance-first")
    lines.append(f"payment date: P50 MAE {m['payment_mae_days']:.2f} days (own habit "
                 f"{m['payment_mae_days_naive_baseline']:.2f}, ratio "
                 f"{m['payment_mae_days'] / m['payment_mae_days_naive_baseline']:.2f}; ceiling "
                 f"{m['payment_ceiling_mae_days']:.2f}), P10-P90 coverage {m['payment_p10_p90_coverage']:.3f}")
    lines.append(f"training both models: {m['train_seconds']:.0f} s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=["weekly", "monthly_statement"], default="weekly")
    parser.add_argument("--tenancies", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--years", type=float, default=2.0)
    args = parser.parse_args()
    print(table(args.shape, measure(args.shape, args.tenancies, args.seed, args.years)))


if __name__ == "__main__":
    main()
