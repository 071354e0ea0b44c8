"""What every suite shares: running a step or a measurement in a freshly spawned process (so its peak memory is its
own), medians over repeats, and the table. Also the pipeline suite's measurements.

Every measuring process imports this module, so it imports nothing beyond the standard library at its top: a
measurement's peak memory is then its own libraries' and data's, not those of the other suites.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queues
import statistics
import time
from pathlib import Path


def peak_mb() -> float:
    """This process's own peak RSS. Not ru_maxrss: on Linux that survives fork+exec, so a spawned worker would
    report its parent's high-water mark."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status")


def call_in_process(function, args: tuple, queue: mp.Queue) -> None:
    """Run a step in a spawned process; its result goes back on the queue."""
    queue.put({"result": function(*args)})


def _wait(process, queue, what: str) -> dict:
    """What the spawned process put on its queue; an error naming `what` if it died first (instead of waiting
    forever on a queue nobody will fill)."""
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


def spawn(target, kind: str, workdir: str, *rest) -> dict:
    """Run `target(kind, workdir, queue, *rest)` in a freshly spawned process and return what it put on the queue."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=target, args=(kind, workdir, queue, *rest))
    process.start()
    return _wait(process, queue, f"measurement {kind}")


def spawn_result(function, *args):
    """Run a step (a preparation, or a measurement that returns its figures) in a spawned process; its result."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=call_in_process, args=(function, args, queue))
    process.start()
    return _wait(process, queue, function.__name__)["result"]


def summary(runs: list[dict]) -> dict[str, float]:
    """Runs of one measurement as one row: the median time, the rows of the first, the highest peak memory."""
    return {"seconds": statistics.median(r["seconds"] for r in runs), "rows": runs[0]["rows"],
            "peak_mb": max(r["peak_mb"] for r in runs), "runs": len(runs)}


def measure(kind: str, workdir: Path, repeats: int, target, *rest) -> dict[str, float]:
    """`repeats` runs of `target(kind, workdir, queue, *rest)`, each in a fresh process, as one row."""
    return summary([spawn(target, kind, str(workdir), *rest) for _ in range(repeats)])


def print_table(results: list[dict]) -> None:
    """Rows/s, peak memory and the ratio to each row's baseline (measured in the same run, same size)."""
    by_key = {(r["tenancies"], r["measure"]): r for r in results}
    header = (f"{'tenancies':>9} {'measure':<14} {'rows':>11} {'median s':>9} {'rows/s':>11} {'peak MB':>8} "
              f"{'runs':>4} {'vs baseline':>20}")
    print("\n" + header + "\n" + "-" * len(header))
    for r in results:
        ratio = ""
        if r["baseline"] and (r["tenancies"], r["baseline"]) in by_key:
            ratio = f"{r['seconds'] / by_key[(r['tenancies'], r['baseline'])]['seconds']:.3g}x {r['baseline']}"
        rate = f"{r['rows'] / r['seconds']:,.0f}" if r["rows"] and r["seconds"] > 0 else ""
        print(f"{r['tenancies']:>9,} {r['measure']:<14} {r['rows']:>11,} {r['seconds']:>9.2f} "
              f"{rate:>11} {r['peak_mb']:>8,.0f} {r.get('runs', 1):>4} {ratio:>20}")


def run_measurement(kind: str, workdir: str, queue: mp.Queue) -> None:
    """One measurement of the pipeline suite (`bench/pipeline.py`). Lazy on purpose: each kind imports only what it
    uses, here rather than at the top, because `read_csv` is the floor the others are compared with and its peak
    memory should not carry LightGBM or the serving code it never runs."""
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
    elif kind == "snapshots":
        from features.transforms import build_snapshots, weekly_as_of_dates

        tenancies = pd.read_parquet(work / "tenancies.parquet")
        transactions = pd.read_parquet(work / "transactions.parquet")
        start = time.perf_counter()
        as_of = weekly_as_of_dates(transactions["posted_date"].min(), transactions["posted_date"].max())
        rows = len(build_snapshots(tenancies, transactions, as_of))
    elif kind in ("score", "score_shap"):
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
    queue.put({"seconds": time.perf_counter() - start, "rows": rows, "peak_mb": peak_mb()})
