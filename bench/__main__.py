"""Benchmarks: `uv run python -m bench [--suite pipeline|features] [--tenancies N ...] [--repeats R]` (or `make bench`)
prints a table.

Suite `pipeline` (the default):

Each measurement runs in a fresh process, so its peak memory (max RSS) is its own, and is repeated `--repeats`
times; the table gives the median time and the ratio to the baseline measured in the same run:
- ingest: `arrears` ingestion of a simulated delivery vs a plain `pandas.read_csv` of the same files (the floor:
  no validation, no database);
- snapshots: the weekly snapshot build from the ledger slice;
- scoring: the champion-style booster scoring every live tenancy, with SHAP reasons vs scores alone.
Suite `features`: see `bench/feature_store.py` (full, unchanged and one-day builds, the naive pandas baseline,
historical retrieval, online lookup latency from SQLite and Redis).
Suite `models`: see `bench/models.py` (training on 1M rows, scoring 100k tenancies with and without SHAP).
Suite `ingest`: see `bench/ingest_scale.py` (one 15M-row delivery: ingestion vs pyarrow's plain read, peak memory).
Not a test: timings on a shared machine vary, so nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import statistics
import tempfile
from pathlib import Path

from bench.runner import call_in_process, run_feature_measurement, run_measurement, run_model_measurement


def _wait(process, queue, what: str) -> dict:
    """What the spawned process put on its queue; an error naming `what` if it died first (instead of waiting
    forever on a queue nobody will fill)."""
    import queue as queues

    while True:
        try:
            result = queue.get(timeout=5)
            break
        except queues.Empty:
            if not process.is_alive():
                raise RuntimeError(f"{what} failed (exit code {process.exitcode}): see the traceback above") from None
    process.join()
    if process.exitcode:
        raise RuntimeError(f"{what} failed (exit code {process.exitcode})")
    return result


def spawn(target, *args) -> dict:
    """Run `target(*args, queue)` in a freshly spawned process and return what it put on the queue."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=target, args=(*args[:2], queue, *args[2:]))
    process.start()
    return _wait(process, queue, f"measurement {args[0]}")


def measure(kind: str, workdir: Path, repeats: int, target=run_measurement, **extra) -> dict[str, float]:
    runs = [spawn(target, kind, str(workdir), *([r, extra.get("entity_rows", 0)] if extra else []))
            for r in range(repeats)]
    return {"seconds": statistics.median(r["seconds"] for r in runs), "rows": runs[0]["rows"],
            "peak_mb": max(r["peak_mb"] for r in runs), "runs": len(runs)}


def prepare(workdir: Path, tenancies: int, years: float) -> None:
    """Simulate a portfolio, write it as a delivery, and stage the inputs of the other measurements."""
    import lightgbm as lgb

    from features.feeds.ingest import ingest_delivery
    from features.ledger import open_ledger
    from features.transforms import build_snapshots, weekly_as_of_dates
    from simulator import simulate_portfolio, write_portfolio

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


def print_table(results: list[dict]) -> None:
    by_key = {(r["tenancies"], r["measure"]): r for r in results}
    header = (f"{'tenancies':>9} {'measure':<11} {'rows':>11} {'median s':>9} {'rows/s':>11} {'peak MB':>8} "
              f"{'runs':>4} {'vs baseline':>20}")
    print("\n" + header + "\n" + "-" * len(header))
    for r in results:
        ratio = ""
        if r["baseline"] and (r["tenancies"], r["baseline"]) in by_key:
            ratio = f"{r['seconds'] / by_key[(r['tenancies'], r['baseline'])]['seconds']:.3g}x {r['baseline']}"
        rate = f"{r['rows'] / r['seconds']:,.0f}" if r["rows"] and r["seconds"] > 0 else ""
        print(f"{r['tenancies']:>9,} {r['measure']:<11} {r['rows']:>11,} {r['seconds']:>9.2f} "
              f"{rate:>11} {r['peak_mb']:>8,.0f} {r.get('runs', 1):>4} {ratio:>20}")


def feature_suite(args) -> list[dict]:
    from bench import feature_store

    results, latencies = [], []
    for n in args.tenancies:
        with tempfile.TemporaryDirectory(prefix="arrears-bench-fs-") as tmp:
            work = Path(tmp)
            print(f"preparing {n:,} tenancies x {args.years:g} years…", flush=True)
            deliveries = spawn_result(feature_store.simulate_deliveries, work, n, args.years)
            for k in range(deliveries):
                spawn_prepare(feature_store.ingest_one, work, k)
            spawn_prepare(feature_store.prepare, work, args.repeats)
            plan = [("full_build", None), ("unchanged", "full_build"), ("one_day", "full_build"),
                    ("historical", None)]
            if n <= args.naive_max:  # the whole-portfolio pure build and its naive baseline (both in memory)
                plan[:0] = [("snapshots", "naive"), ("naive", None)]
            for kind, baseline in plan:
                repeats = 1 if kind == "naive" else args.repeats
                result = measure(kind, work, repeats, target=run_feature_measurement, entity_rows=args.entity_rows)
                result |= {"tenancies": n, "measure": kind, "baseline": baseline}
                results.append(result)
                print(f"  {kind:<11} {result['seconds']:8.2f} s", flush=True)
            if args.latency:
                try:
                    spawn_prepare(feature_store.prepare_production, work)
                    for profile in ("sqlite", "redis"):
                        kind = f"latency_{'local' if profile == 'sqlite' else 'production'}"
                        res = spawn(run_feature_measurement, kind, str(work))
                        latencies.append({"tenancies": n, "store": profile, **res})
                        print(f"  latency {profile}: {res}", flush=True)
                finally:
                    spawn_prepare(feature_store.cleanup_production, work)
    print_table(results)
    if latencies:
        header = (f"{'tenancies':>9} {'online store':<12} {'p50 1 ms':>9} {'p99 1 ms':>9} {'p50 100 ms':>11} "
                  f"{'p99 100 ms':>11}")
        print("\n" + header + "\n" + "-" * len(header))
        for r in latencies:
            print(f"{r['tenancies']:>9,} {r['store']:<12} {r['p50_1']:>9.2f} {r['p99_1']:>9.2f} "
                  f"{r['p50_100']:>11.2f} {r['p99_100']:>11.2f}")
    return results + latencies


def spawn_result(function, *args):
    """Run a preparation step in a spawned process and return its result."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=call_in_process, args=(function, args, queue))
    process.start()
    return _wait(process, queue, function.__name__)["result"]


def spawn_prepare(function, *args) -> None:
    """Preparation in its own process too, so the measuring processes start from a clean parent."""
    spawn_result(function, *args)


def worklist_suite(args) -> list[dict]:
    from bench import worklist

    n = args.tenancies[0]
    results = []
    with contextlib.ExitStack() as stack:
        work = _portfolio(args, stack)
        if args.prepare_only:
            return results
        plan = [("pure_ranking", None, args.repeats), ("record_run", "pure_ranking", args.repeats),
                ("worklist_http", "pure_ranking", 1), ("empty_http", None, 1), ("score_http", "empty_http", 1),
                ("score_inprocess", "empty_http", 1), ("web_page", None, 1), ("web_case", None, 1),
                ("web_treasury", None, 1), ("web_models", None, 1)]
        for kind, baseline, runs in plan:
            outcomes = [spawn_result(worklist.measured, kind, str(work), args.explain, args.repeats)
                        for _ in range(runs)]
            result = {"seconds": statistics.median(o["seconds"] for o in outcomes), "rows": outcomes[0]["rows"],
                      "peak_mb": max(o["peak_mb"] for o in outcomes), "runs": runs, "tenancies": n,
                      "measure": kind, "baseline": baseline}
            results.append(result)
            print(f"  {kind:<15} {result['seconds'] * 1000:10.1f} ms", flush=True)
    header = (f"{'tenancies':>9} {'measure':<16} {'rows':>8} {'median ms':>10} {'peak MB':>8} {'runs':>4} "
              f"{'vs baseline':>22}")
    print("\n" + header + "\n" + "-" * len(header))
    by_measure = {r["measure"]: r for r in results}
    for r in results:
        ratio = (f"{r['seconds'] / by_measure[r['baseline']]['seconds']:.3g}x {r['baseline']}"
                 if r["baseline"] else "")
        print(f"{r['tenancies']:>9,} {r['measure']:<16} {r['rows']:>8,} {r['seconds'] * 1000:>10.1f} "
              f"{r['peak_mb']:>8,.0f} {r['runs']:>4} {ratio:>22}")
    return results


def _portfolio(args, stack: contextlib.ExitStack) -> Path:
    """The worklist and throughput suites' portfolio: prepared in --workdir (or a temporary one), reused if there."""
    from bench import worklist

    work = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="arrears-bench-worklist-")))
    if (work / "capacity.txt").exists():
        print(f"reusing the portfolio prepared in {work}", flush=True)
    elif work.exists() and any(work.iterdir()):
        raise SystemExit(f"{work} holds an unfinished preparation (no capacity.txt): remove it and run again")
    else:
        n = args.tenancies[0]
        print(f"preparing {n:,} tenancies x {args.years:g} years: ingest, features, champion models…", flush=True)
        spawn_prepare(worklist.prepare, work, n, args.years, args.explain)
    return work


def throughput_suite(args) -> list[dict]:
    from bench import throughput

    results = []
    with contextlib.ExitStack() as stack:
        work = _portfolio(args, stack)
        if args.prepare_only:
            return results
        plan = [(kind, args.clients, args.seconds) for kind in ("empty", "score_open", "score_nocache",
                                                                 "score_auth")]
        runs: dict[str, list[dict]] = {}
        for _ in range(args.repeats):  # interleaved, so a slow spell of the machine hits every measure alike
            for kind, clients, seconds in plan:
                result = spawn_result(throughput.measure, kind, str(work), clients, seconds)
                runs.setdefault(kind, []).append(result)
                print(f"  {kind:<13} {result['rps']:8.1f} req/s, {result['errors']} errors", flush=True)
        soak = spawn_result(throughput.measure, "soak", str(work), args.soak_clients, args.soak_seconds)
        print(f"  soak          {soak['rps']:8.1f} req/s, {soak['errors']} errors", flush=True)
        for kind, clients, seconds in plan + [("soak", args.soak_clients, args.soak_seconds)]:
            outcomes = runs.get(kind, [soak])
            median = sorted(outcomes, key=lambda r: r["rps"])[len(outcomes) // 2]
            results.append(median | {"measure": kind, "clients": clients, "seconds": seconds, "runs": len(outcomes),
                                     "errors": sum(r["errors"] for r in outcomes), "tenancies": args.tenancies[0],
                                     "all_rps": [round(r["rps"], 1) for r in outcomes]})
    throughput.print_table(results)
    return results


def model_suite(args) -> list[dict]:
    from bench import models

    n = args.tenancies[0]
    results = []
    with tempfile.TemporaryDirectory(prefix="arrears-bench-models-") as tmp:
        work = Path(tmp)
        print(f"preparing {n:,} tenancies x {args.years:g} years, {args.training_rows:,} training rows…", flush=True)
        spawn_prepare(models.prepare, work, n, args.years, args.training_rows, args.payment_cases, args.score_rows)
        for kind, baseline in (("fit_risk", None), ("fit_payment", None), ("score", None), ("score_shap", "score"),
                               ("worklist_top50", "score")):
            result = measure(kind, work, args.repeats, target=run_model_measurement)
            result |= {"tenancies": n, "measure": kind, "baseline": baseline}
            results.append(result)
            print(f"  {kind:<11} {result['seconds']:8.2f} s", flush=True)
    print_table(results)
    return results


def ingest_suite(args) -> list[dict]:
    """One large delivery (`--rows`) through ingestion and pyarrow's plain read (bench/ingest_scale.py)."""
    from bench import ingest_scale

    results = []
    with contextlib.ExitStack() as stack:
        work = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="arrears-bench-ingest-")))
        if (work / "delivery" / "transactions.csv").exists():
            print(f"reusing the delivery prepared in {work}", flush=True)
        else:
            print(f"preparing a delivery of ~{args.rows:,} transaction rows…", flush=True)
            print(f"  {spawn_result(ingest_scale.prepare, work, args.rows, args.tenancies[0])}", flush=True)
        if args.prepare_only:
            return results
        runs: dict[str, list[dict]] = {}
        for _ in range(args.repeats):  # interleaved, so a slow spell of the machine hits every measure alike
            for kind in ("pyarrow_read", "ingest", "ingest_again"):
                outcome = spawn_result(ingest_scale.measure, kind, str(work))
                runs.setdefault(kind, []).append(outcome)
                print(f"  {kind:<13} {outcome['seconds']:8.2f} s {outcome['peak_mb']:8,.0f} MB "
                      f"{outcome.get('feeds', '')}", flush=True)
        for kind, outcomes in runs.items():
            results.append({"seconds": statistics.median(o["seconds"] for o in outcomes), "rows": outcomes[0]["rows"],
                            "peak_mb": max(o["peak_mb"] for o in outcomes), "runs": len(outcomes),
                            "tenancies": args.tenancies[0], "measure": kind,
                            "baseline": None if kind == "pyarrow_read" else "pyarrow_read"})
    print_table(results)
    return results


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenancies", type=int, nargs="+", default=[3000, 30000],
                        help="portfolio sizes to measure (default: 3000 30000)")
    parser.add_argument("--years", type=float, default=2.0, help="years of history (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the median is shown")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--suite", choices=("pipeline", "features", "models", "worklist", "throughput", "ingest"),
                        default="pipeline",
                        help="pipeline: ingest, snapshots, scoring; features: the feature store; models: training "
                             "and scoring; worklist: serving; throughput: /score under concurrent clients; "
                             "ingest: one large delivery (see bench/README.md)")
    parser.add_argument("--rows", type=int, default=15_000_000,
                        help="ingest suite: transaction rows in the delivery (a simulated portfolio of the first "
                             "--tenancies, tiled; default 15,000,000)")
    parser.add_argument("--training-rows", type=int, default=1_000_000, help="models suite: risk training rows")
    parser.add_argument("--payment-cases", type=int, default=200_000, help="models suite: payment-date cases")
    parser.add_argument("--score-rows", type=int, default=100_000, help="models suite: tenancies scored")
    parser.add_argument("--naive-max", type=int, default=10_000,
                        help="features suite: run the naive pandas baseline only up to this many tenancies")
    parser.add_argument("--entity-rows", type=int, default=1_000_000,
                        help="features suite: (tenancy, as_of) rows for the historical retrieval")
    parser.add_argument("--no-latency", dest="latency", action="store_false",
                        help="features suite: skip the online latency (needs Postgres and Redis)")
    parser.add_argument("--explain", type=int, default=5_000,
                        help="worklist suite: cases listed (and explained) and asked for over HTTP")
    parser.add_argument("--workdir", type=Path,
                        help="worklist, throughput and ingest suites: keep the prepared portfolio (or delivery) "
                             "here, and reuse it if already prepared")
    parser.add_argument("--prepare-only", action="store_true",
                        help="worklist, throughput and ingest suites: prepare in --workdir and stop (measure "
                             "later, on a quiet machine)")
    parser.add_argument("--clients", type=int, default=32, help="throughput suite: concurrent clients (default 32)")
    parser.add_argument("--seconds", type=float, default=30, help="throughput suite: seconds per load (default 30)")
    parser.add_argument("--soak-clients", type=int, default=50, help="throughput suite: clients of the soak run")
    parser.add_argument("--soak-seconds", type=float, default=60, help="throughput suite: seconds of the soak run")
    return parser


def main() -> None:
    args = _parser().parse_args()
    if args.suite in ("features", "models", "worklist", "throughput", "ingest"):
        suites = {"features": feature_suite, "models": model_suite, "worklist": worklist_suite,
                  "throughput": throughput_suite, "ingest": ingest_suite}
        results = suites[args.suite](args)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))
        return

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
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
