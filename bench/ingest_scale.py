"""Suite `ingest`: one large delivery (default 15M transaction rows) through ingestion, against pyarrow's plain read.

Preparation simulates a *dirty* portfolio (the simulator's export faults: bad dates, amounts, types, repeats and
conflicts, unknown tenancies) and tiles it into one delivery of the requested size: copy k of every row gets
`-k` after its ids, so the faults are there at scale and every key stays distinct between copies.

Measures, each in a freshly spawned process (its peak RSS its own), median of `--repeats`:
- `pyarrow_read`: `pyarrow.csv.read_csv` of every CSV in the delivery (the floor: parse only, all cores);
- `ingest`: `ingest_delivery` into a new DuckDB ledger (every check, quarantine, one transaction);
- `ingest_again`: the same delivery once more into the ledger that now holds it (every row a duplicate or
  quarantined again: the re-delivery path, joined against 15M stored rows).

Lazy on purpose: each measuring process imports this module, so its top imports only what `pyarrow_read` (the
floor) needs; the ingestion code and the simulator are imported in the functions that use them, and the floor's
peak memory is pyarrow's alone.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import pyarrow.csv as pv

from bench.runner import peak_mb, print_table, spawn_result, summary

#: The day deliveries are judged against (the simulator's portfolios end on 2026-10-31).
TODAY = date(2026, 11, 1)


def prepare(work: Path, rows: int, tenancies: int) -> dict:
    """Simulate a dirty portfolio and tile it to about `rows` transaction rows in `work/delivery`."""
    import duckdb  # here, not at the top: see the module's docstring

    from simulator import simulate_portfolio, write_portfolio

    seed = work / "seed"
    write_portfolio(simulate_portfolio(n_tenancies=tenancies, years=2, seed=1, dirty=True), seed / "delivery")
    con = duckdb.connect()
    per_copy = con.execute(f"SELECT count(*) FROM read_csv('{seed}/delivery/transactions.csv', all_varchar = true)"
                           ).fetchone()[0]
    copies = max(1, round(rows / per_copy))
    out = work / "delivery"
    out.mkdir(parents=True, exist_ok=True)
    suffixed = {"transactions": ("transaction_id", "tenancy_id"), "tenancies": ("tenancy_id",)}
    for feed, ids in suffixed.items():
        src = f"read_csv('{seed}/delivery/{feed}.csv', all_varchar = true, header = true)"
        replace = ", ".join(f"{c} || '-' || k AS {c}" for c in ids)
        con.execute(f"COPY (SELECT * REPLACE ({replace}) FROM {src}, range({copies}) r(k) ORDER BY k) "
                    f"TO '{out}/{feed}.csv' (HEADER, FORCE_QUOTE *)")
    shutil.rmtree(seed)
    return {"copies": copies, "transactions": per_copy * copies}


def measure(kind: str, workdir: str) -> dict:
    work = Path(workdir)
    delivery = work / "delivery"
    if kind == "pyarrow_read":
        start = time.perf_counter()
        rows = sum(pv.read_csv(path).num_rows for path in sorted(delivery.glob("*.csv")))
        return {"seconds": time.perf_counter() - start, "rows": rows, "peak_mb": peak_mb()}
    from features.feeds.ingest import Clock, ingest_delivery  # here, not at the top: see the module's docstring
    from features.ledger import open_ledger

    ledger_path = work / "ledger.duckdb"
    if kind == "ingest":
        for stale in work.glob("ledger.duckdb*"):
            stale.unlink()
    else:  # ingest_again: into the ledger the last `ingest` left; judged a day later, so not recognised as a rerun
        assert ledger_path.exists(), "ingest_again needs an ingest first"
    clock = Clock(TODAY if kind == "ingest" else date.fromordinal(TODAY.toordinal() + 1))
    start = time.perf_counter()
    with open_ledger(f"duckdb:///{ledger_path}") as ledger:
        summary = ingest_delivery(ledger, delivery, work / "quarantine", clock)
    seconds = time.perf_counter() - start
    feeds = {name: (f.read, f.accepted, f.duplicate, f.quarantined) for name, f in summary.feeds.items()}
    return {"seconds": seconds, "rows": sum(f.read for f in summary.feeds.values()), "peak_mb": peak_mb(),
            "feeds": feeds}


def suite(args) -> list[dict]:
    """One large delivery (`--rows`) through ingestion and pyarrow's plain read, interleaved `--repeats` times."""
    results = []
    with contextlib.ExitStack() as stack:
        work = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="arrears-bench-ingest-")))
        if (work / "delivery" / "transactions.csv").exists():
            print(f"reusing the delivery prepared in {work}", flush=True)
        else:
            print(f"preparing a delivery of ~{args.rows:,} transaction rows…", flush=True)
            print(f"  {spawn_result(prepare, work, args.rows, args.tenancies[0])}", flush=True)
        if args.prepare_only:
            return results
        runs: dict[str, list[dict]] = {}
        for _ in range(args.repeats):  # interleaved, so a slow spell of the machine hits every measure alike
            for kind in ("pyarrow_read", "ingest", "ingest_again"):
                outcome = spawn_result(measure, kind, str(work))
                runs.setdefault(kind, []).append(outcome)
                print(f"  {kind:<13} {outcome['seconds']:8.2f} s {outcome['peak_mb']:8,.0f} MB "
                      f"{outcome.get('feeds', '')}", flush=True)
        for kind, outcomes in runs.items():
            results.append(summary(outcomes) | {"tenancies": args.tenancies[0], "measure": kind,
                                                "baseline": None if kind == "pyarrow_read" else "pyarrow_read"})
    print_table(results)
    return results
