"""One measurement, run in a fresh process (spawned by `python -m bench`) so its peak memory is its own."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path


def _peak_mb() -> float:
    """This process's own peak RSS. Not ru_maxrss: on Linux that survives fork+exec, so a spawned worker would
    report its parent's high-water mark."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status")


def call_in_process(function, args: tuple, queue: mp.Queue) -> None:
    """Run a preparation step in a spawned process; its result goes back on the queue."""
    queue.put({"result": function(*args)})


def run_feature_measurement(kind: str, workdir: str, queue: mp.Queue, run: int = 0, entity_rows: int = 0) -> None:
    """A measurement of the feature-store suite (`bench.feature_store`)."""
    from bench import feature_store

    if kind.startswith("latency_"):
        result = feature_store.latency(Path(workdir), kind.removeprefix("latency_"))
        queue.put({**result, "peak_mb": _peak_mb()})
        return
    seconds, rows = feature_store.measure(kind, Path(workdir), run, entity_rows)
    queue.put({"seconds": seconds, "rows": rows, "peak_mb": _peak_mb()})


def run_model_measurement(kind: str, workdir: str, queue: mp.Queue) -> None:
    """A measurement of the models suite (`bench.models`)."""
    from bench import models

    seconds, rows = models.measure(kind, Path(workdir))
    queue.put({"seconds": seconds, "rows": rows, "peak_mb": _peak_mb()})


def run_measurement(kind: str, workdir: str, queue: mp.Queue) -> None:
    import pandas as pd

    work = Path(workdir)
    start = time.perf_counter()
    rows = 0
    if kind == "read_csv":
        rows = sum(len(pd.read_csv(path)) for path in sorted((work / "delivery").glob("*.csv")))
    elif kind == "ingest":
        from features.feeds.ingest import ingest_delivery
        from features.ledger import open_ledger

        ledger_path = work / f"ledger_{time.time_ns()}.duckdb"
        start = time.perf_counter()
        with open_ledger(f"duckdb:///{ledger_path}") as ledger:
            summary = ingest_delivery(ledger, work / "delivery", work / "quarantine")
        rows = sum(f.read for f in summary.feeds.values())
        ledger_path.unlink()
    elif kind in ("snapshots", "score", "score_shap"):
        from features.transforms import build_snapshots, weekly_as_of_dates

        tenancies = pd.read_parquet(work / "tenancies.parquet")
        transactions = pd.read_parquet(work / "transactions.parquet")
        if kind == "snapshots":
            start = time.perf_counter()
            as_of = weekly_as_of_dates(transactions["posted_date"].min(), transactions["posted_date"].max())
            rows = len(build_snapshots(tenancies, transactions, as_of))
        else:
            import lightgbm as lgb

            from serving.runs.explain import score_cases

            booster = lgb.Booster(model_file=str(work / "model.txt"))
            latest = pd.read_parquet(work / "latest.parquet")
            start = time.perf_counter()
            if kind == "score":
                booster.predict(latest[booster.feature_name()].to_numpy(dtype=float))
            else:
                score_cases(latest, booster)
            rows = len(latest)
    queue.put({"seconds": time.perf_counter() - start, "rows": rows, "peak_mb": _peak_mb()})
