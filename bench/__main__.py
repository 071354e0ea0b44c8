"""Benchmarks: `uv run python -m bench [--suite pipeline|features|models|worklist|throughput|ingest] [--tenancies N
...] [--repeats R]` (or `make bench`) prints a table. Each suite's module says exactly what it times:

- `pipeline` (the default, `bench/pipeline.py`): ingestion of a simulated delivery vs a plain `pandas.read_csv`,
  the snapshot build, scoring every live tenancy with and without SHAP reasons;
- `features` (`bench/feature_store.py`): full, unchanged and one-day builds, the naive pandas baseline, historical
  retrieval, online lookup latency from SQLite and Redis;
- `models` (`bench/models.py`): training on 1M rows, scoring 100k tenancies with and without SHAP;
- `worklist` (`bench/worklist.py`): serving: ranking, recording a run, the worklist and `/score` (cold and warm)
  over HTTP against an empty endpoint, the web app's pages;
- `throughput` (`bench/throughput.py`): `/score` under concurrent clients;
- `ingest` (`bench/ingest_scale.py`): one 15M-row delivery: ingestion vs pyarrow's plain read, peak memory.

Each measurement runs in a fresh process, so its peak memory is its own; times are medians over `--repeats`, and
ratios compare with a baseline measured in the same run. Not a test: timings on a shared machine vary, so nothing
here asserts a speed (`tests/e2e/test_bench_smoke.py` runs every suite at a tiny size, so none of them rots).
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

#: Each suite's module (its `suite(args)` runs it and returns the rows of its table).
SUITES = {"pipeline": "bench.pipeline", "features": "bench.feature_store", "models": "bench.models",
          "worklist": "bench.worklist", "throughput": "bench.throughput", "ingest": "bench.ingest_scale"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenancies", type=int, nargs="+", default=[3000, 30000],
                        help="portfolio sizes to measure (default: 3000 30000)")
    parser.add_argument("--years", type=float, default=2.0, help="years of history (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the median is shown")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--suite", choices=tuple(SUITES),
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
    # Lazy on purpose: only the chosen suite's module is imported, here rather than at the top, as each loads its
    # libraries with it (Feast, MLflow, BentoML, LightGBM: seconds), which the other suites and `--help` do not need.
    suite = importlib.import_module(SUITES[args.suite]).suite
    results = suite(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
