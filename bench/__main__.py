"""Benchmarks: `uv run python -m bench [--tenancies N ...] [--repeats R]` (or `make bench`) prints a table.

Each measurement runs in a fresh process, so its peak memory (max RSS) is its own, and is repeated `--repeats`
times; the table gives the median time and the ratio to the baseline measured in the same run:
- ingest: `arrears` ingestion of a simulated delivery vs a plain `pandas.read_csv` of the same files (the floor:
  no validation, no database);
- snapshots: the weekly snapshot build from the ledger slice (no baseline yet: issue 4 adds the simplest pandas
  implementation);
- scoring: the champion-style booster scoring every live tenancy, with SHAP reasons vs scores alone.
Not a test: timings on a shared machine vary, so nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import tempfile
from pathlib import Path

from bench.runner import run_measurement


def measure(kind: str, workdir: Path, repeats: int) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    runs = []
    for _ in range(repeats):
        queue = ctx.Queue()
        process = ctx.Process(target=run_measurement, args=(kind, str(workdir), queue))
        process.start()
        runs.append(queue.get())
        process.join()
    return {"seconds": statistics.median(r["seconds"] for r in runs), "rows": runs[0]["rows"],
            "peak_mb": max(r["peak_mb"] for r in runs)}


def prepare(workdir: Path, tenancies: int, years: float) -> None:
    """Simulate a portfolio, write it as a delivery, and stage the inputs of the other measurements."""
    import lightgbm as lgb

    from features.feeds.ingest import ingest_delivery
    from features.ledger import open_ledger
    from features.simulate import simulate_portfolio, write_portfolio
    from features.transforms import build_snapshots, weekly_as_of_dates

    write_portfolio(simulate_portfolio(n_tenancies=tenancies, years=years, seed=1), workdir / "delivery")
    with open_ledger(f"duckdb:///{workdir / 'staging.duckdb'}") as ledger:
        ingest_delivery(ledger, workdir / "delivery", workdir / "quarantine")
        register, transactions = ledger.read_table("tenancy_register"), ledger.read_table("transactions")
    register.to_parquet(workdir / "tenancies.parquet")
    transactions.to_parquet(workdir / "transactions.parquet")
    as_of = weekly_as_of_dates(transactions["posted_date"].min(), transactions["posted_date"].max())
    snaps = build_snapshots(register, transactions, as_of)
    names = [c for c in snaps.columns if c not in ("tenancy_id", "event_timestamp", "patch")]
    train = snaps.sample(n=min(200_000, len(snaps)), random_state=0)
    label = (train["balance_change_4w"] > 0).astype(int)  # any label will do: this measures speed, not skill
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 31, "seed": 0},
                        lgb.Dataset(train[names], label=label), num_boost_round=300)
    booster.save_model(str(workdir / "model.txt"))
    snaps[snaps["event_timestamp"] == snaps["event_timestamp"].max()].to_parquet(workdir / "latest.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenancies", type=int, nargs="+", default=[3000, 30000],
                        help="portfolio sizes to measure (default: 3000 30000)")
    parser.add_argument("--years", type=float, default=2.0, help="years of history (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the median is shown")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()

    results = []
    for n in args.tenancies:
        with tempfile.TemporaryDirectory(prefix="arrears-bench-") as tmp:
            work = Path(tmp)
            print(f"preparing {n:,} tenancies x {args.years:g} years…", flush=True)
            prepare(work, n, args.years)
            for kind, baseline in (("read_csv", None), ("ingest", "read_csv"), ("snapshots", None),
                                   ("score", None), ("score_shap", "score")):
                result = measure(kind, work, args.repeats)
                result |= {"tenancies": n, "measure": kind, "baseline": baseline}
                results.append(result)
                print(f"  {kind:<11} {result['seconds']:8.2f} s", flush=True)
    by_key = {(r["tenancies"], r["measure"]): r for r in results}
    header = f"{'tenancies':>9} {'measure':<11} {'rows':>11} {'median s':>9} {'rows/s':>11} {'peak MB':>8} {'vs baseline':>14}"
    print("\n" + header + "\n" + "-" * len(header))
    for r in results:
        ratio = ""
        if r["baseline"]:
            ratio = f"{r['seconds'] / by_key[(r['tenancies'], r['baseline'])]['seconds']:.1f}x {r['baseline']}"
        print(f"{r['tenancies']:>9,} {r['measure']:<11} {r['rows']:>11,} {r['seconds']:>9.2f} "
              f"{r['rows'] / r['seconds']:>11,.0f} {r['peak_mb']:>8,.0f} {ratio:>14}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
